//! `hms bench probe --monitor`: what the analysis Monitor (response-time probes, counters,
//! series) costs on top of ICMP probing, for many service containers.
//!
//! The service containers are started once; then each pair runs two child processes of this
//! binary (`hms bench probe-run`) against them, one probing ICMP only (`--no-monitor`'s
//! configuration) and one with the Monitor, in alternating order so that the machine's drift
//! falls alike on both. Each child measures its own CPU and resident memory over the same
//! number of seconds after the same warm-up, so the two differ only by the Monitor.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{Bench, cpu_time, rss_kib, threads_cpu};
use crate::actors::host::manager::HostMsg;
use crate::lab::serviceimage::{SERVICE_PORT, STATIC_PATH};
use crate::runtime::ContainerRuntime;

/// What one child measured.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct RunFigures {
    pub monitor: bool,
    /// User + kernel CPU of the whole process, percent of one core.
    pub cpu_percent: f64,
    /// Of which the response-time engine's thread.
    pub response_thread_percent: f64,
    pub rss_kib: u64,
    /// Containers whose record showed a response time at the end.
    pub with_response: usize,
}

impl Bench {
    /// Parent: service containers, then `pairs` pairs of child runs; prints the table.
    pub(super) async fn monitor_ab(
        &mut self,
        containers: usize,
        seconds: u64,
        pairs: usize,
        requests: u16,
    ) -> anyhow::Result<()> {
        let label = self.label.clone();
        let probe = format!("http://:{SERVICE_PORT}{STATIC_PATH}");
        let ids = self.spawn_labelled(containers, &label, &[("hms.probe", &probe)]).await?;
        let mut addrs = Vec::new();
        for id in &ids {
            let ip = self.rt.inspect(id).await?.and_then(|c| c.ip).context("a service container has no address")?;
            addrs.push(std::net::SocketAddr::new(ip, SERVICE_PORT));
        }
        let rate = f64::from(requests) * containers as f64;
        let floor = request_floor(addrs, rate).await?;
        let mut runs = Vec::new();
        for pair in 0..pairs {
            let order = if pair % 2 == 0 { [false, true] } else { [true, false] };
            for monitor in order {
                let run = child(&label, containers, seconds, monitor, requests).await?;
                eprintln!("pair {pair}: {run:?}");
                runs.push((pair, run));
            }
        }
        println!(
            "| pair | probing | CPU % of one core | of which response engine % | RSS MiB | RSS KiB per container | records with response_ms |"
        );
        println!("|---|---|---|---|---|---|---|");
        for (pair, r) in &runs {
            println!(
                "| {pair} | {} | {:.2} | {:.2} | {:.1} | {:.0} | {} |",
                if r.monitor { "ICMP + Monitor" } else { "ICMP only" },
                r.cpu_percent,
                r.response_thread_percent,
                r.rss_kib as f64 / 1024.0,
                r.rss_kib as f64 / containers.max(1) as f64,
                r.with_response
            );
        }
        let mut cpu = Vec::new();
        let mut rss = Vec::new();
        for pair in 0..pairs {
            let of = |m: bool| runs.iter().find(|(p, r)| *p == pair && r.monitor == m).map(|(_, r)| *r);
            if let (Some(on), Some(off)) = (of(true), of(false)) {
                cpu.push(on.cpu_percent - off.cpu_percent);
                rss.push((on.rss_kib as f64 - off.rss_kib as f64) / containers.max(1) as f64);
            }
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let requests = f64::from(requests) * containers as f64;
        let floor_pct = floor.as_secs_f64() * requests * 100.0;
        println!(
            "\nbaseline, same run: a bare HTTP/1.0 GET of {STATIC_PATH} on its own connection (blocking socket, one \
             thread, {FLOOR_REQUESTS} paced at {requests:.0}/s round the {containers} containers, as the Monitor sends \
             them) costs {:.1} µs of CPU (user + kernel, waits included), so {requests:.0} requests/s cost at least \
             {floor_pct:.2} % of one core",
            floor.as_secs_f64() * 1e6
        );
        println!(
            "\nthe Monitor's cost for {containers} containers, same run, mean of {} pairs: {:+.2} % of one core \
             (pairs: {}), {:+.1} KiB of RSS per container (pairs: {})",
            cpu.len(),
            mean(&cpu),
            cpu.iter().map(|c| format!("{c:+.2}")).collect::<Vec<_>>().join(", "),
            mean(&rss),
            rss.iter().map(|r| format!("{r:+.1}")).collect::<Vec<_>>().join(", "),
        );
        Ok(())
    }

    /// Child: a node over the parent's containers, measured for `seconds` after a warm-up;
    /// prints one JSON line.
    pub(super) async fn probe_run(
        &self,
        containers: usize,
        seconds: u64,
        monitor: bool,
        requests: u16,
    ) -> anyhow::Result<()> {
        let node = self.node_with(containers, monitor, requests).await?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while monitor && with_response(&node).await? < containers && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (cpu0, engine0, t0) = (cpu_time()?, threads_cpu("hms-response")?, Instant::now());
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let (cpu1, engine1, elapsed) = (cpu_time()?, threads_cpu("hms-response")?, t0.elapsed());
        let rss_kib = rss_kib()?;
        let with_response = with_response(&node).await?;
        node.stop().await;
        let pct = |d: Duration| 100.0 * d.as_secs_f64() / elapsed.as_secs_f64();
        let figures = RunFigures {
            monitor,
            cpu_percent: pct(cpu1.0 - cpu0.0) + pct(cpu1.1 - cpu0.1),
            response_thread_percent: pct(engine1.0 - engine0.0) + pct(engine1.1 - engine0.1),
            rss_kib,
            with_response,
        };
        println!("{}", serde_json::to_string(&figures)?);
        Ok(())
    }
}

/// Requests of the baseline.
const FLOOR_REQUESTS: u32 = 3000;

/// CPU per request of a plain client sending what the Monitor sends: [`FLOOR_REQUESTS`] GETs on
/// fresh blocking connections from one thread, round the containers at `rate` a second (paced,
/// so its caches and wake-ups are the Monitor's, not those of a hot loop on one address), timed
/// by the thread's own scheduler clock (ns).
async fn request_floor(addrs: Vec<std::net::SocketAddr>, rate: f64) -> anyhow::Result<Duration> {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let on_cpu = || -> anyhow::Result<u64> {
            let text = std::fs::read_to_string("/proc/thread-self/schedstat")?;
            Ok(text.split_whitespace().next().context("schedstat")?.parse()?)
        };
        let requests: Vec<String> = addrs
            .iter()
            .map(|a| format!("GET {STATIC_PATH} HTTP/1.0\r\nHost: {a}\r\nConnection: close\r\n\r\n"))
            .collect();
        let mut buf = Vec::with_capacity(1024);
        let (start, gap) = (std::time::Instant::now(), Duration::from_secs_f64(1.0 / rate.max(1.0)));
        let t0 = on_cpu()?;
        for k in 0..FLOOR_REQUESTS {
            let due = start + gap * k;
            #[allow(clippy::disallowed_methods, reason = "a blocking thread of its own, pacing a baseline")]
            std::thread::sleep(due.saturating_duration_since(std::time::Instant::now()));
            let i = k as usize % addrs.len().max(1);
            let mut s = std::net::TcpStream::connect_timeout(&addrs[i], Duration::from_secs(1))?;
            s.write_all(requests[i].as_bytes())?;
            buf.clear();
            s.read_to_end(&mut buf)?;
        }
        Ok(Duration::from_nanos((on_cpu()? - t0) / u64::from(FLOOR_REQUESTS)))
    })
    .await?
}

async fn with_response(node: &crate::node::Node) -> anyhow::Result<usize> {
    match node.manager.call(HostMsg::Records, Some(Duration::from_secs(5))).await? {
        ractor::rpc::CallResult::Success(recs) => Ok(recs.iter().filter(|r| r.response_ms.is_some()).count()),
        _ => bail!("the manager did not answer"),
    }
}

/// Runs one child measurement and reads its figures.
async fn child(
    label: &str,
    containers: usize,
    seconds: u64,
    monitor: bool,
    requests: u16,
) -> anyhow::Result<RunFigures> {
    let exe = std::env::current_exe().context("own executable")?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.args(["bench", "probe-run", "--label", label])
        .args(["--containers", &containers.to_string(), "--seconds", &seconds.to_string()])
        .args(["--response-requests", &requests.to_string()])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if monitor {
        cmd.arg("--monitor");
    }
    let out =
        tokio::time::timeout(Duration::from_secs(seconds + 120), cmd.output()).await.context("child timed out")??;
    if !out.status.success() {
        bail!("child run failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| l.starts_with('{')).context("child printed no figures")?;
    Ok(serde_json::from_str(line)?)
}
