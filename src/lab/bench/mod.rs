//! Benchmarks run through `hms bench`; each prints a markdown table.
//!
//! - `mttr`: kills monitored containers and measures kill → `start` event, next to a bare
//!   `docker start` of the same image measured the same way in the same run.
//! - `probe`: CPU and resident memory of probing many containers at one window per second.
//! - `cluster`: one controller process and many simulated manager processes ([`cluster`]).
//! - `rest`: REST throughput and latency with `wrk`, and MTTR while the API is loaded ([`rest`]).
//! - `analysis`: CPU of detection and identification per period, by method ([`analysis`]).
//! - `service`: the calibration of the service image: response time by CPU cost, limit and
//!   in-container load ([`service`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::actors::host::manager::HostMsg;
use crate::config::{ControllerConfig, ManagerConfig};
use crate::node::{Node, NodeParts};
use crate::probe::icmp::{IcmpProber, window_totals};
use crate::runtime::docker::DockerRuntime;
use crate::runtime::{ContainerRuntime, EventKind, Selector};

mod analysis;
mod cluster;
mod monitor;
mod rest;
mod service;

pub(crate) use cluster::cluster_bytes;
pub use cluster::simulated_engine;

#[derive(Debug, clap::Subcommand)]
pub enum BenchCmd {
    /// MTTR of killed containers against a bare `docker start`.
    Mttr {
        /// Containers to kill (each once, so back-off never applies).
        #[arg(long, default_value_t = 50)]
        kills: usize,
        /// Bare `docker start` samples.
        #[arg(long, default_value_t = 50)]
        baseline: usize,
    },
    /// Update latency, CPU, memory and bandwidth of a controller with many simulated hosts.
    Cluster(cluster::ClusterBench),
    /// CPU of detection and identification per period, by method, for N containers.
    Analysis(analysis::AnalysisBench),
    /// REST requests/s and p99 with wrk, and MTTR under REST load.
    Rest(rest::RestBench),
    /// Response time of the service image by CPU cost, `--cpus` limit and in-container load.
    Service(service::ServiceBench),
    /// CPU and memory of probing many containers.
    Probe {
        #[arg(long, default_value_t = 100)]
        containers: usize,
        /// Measured seconds (after a warm-up).
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Service containers with response-time probes: the Monitor's cost against ICMP only,
        /// in pairs of child processes of the same run.
        #[arg(long)]
        monitor: bool,
        /// Pairs of runs with `--monitor`.
        #[arg(long, default_value_t = 2)]
        pairs: usize,
        /// Response-time requests per period with `--monitor`.
        #[arg(long, default_value_t = 3)]
        response_requests: u16,
    },
    /// One measured child run of `probe --monitor` against its containers (internal).
    #[command(hide = true)]
    ProbeRun {
        #[arg(long)]
        label: String,
        #[arg(long)]
        containers: usize,
        #[arg(long)]
        seconds: u64,
        #[arg(long)]
        monitor: bool,
        #[arg(long, default_value_t = 3)]
        response_requests: u16,
    },
}

pub async fn run(cmd: BenchCmd) -> anyhow::Result<()> {
    match cmd {
        BenchCmd::Cluster(b) => return b.run().await,
        BenchCmd::Service(b) => return b.run().await,
        BenchCmd::Analysis(b) => return b.run(),
        _ => {}
    }
    let rt = DockerRuntime::connect(Duration::from_secs(10)).await.context("docker engine")?;
    if let BenchCmd::ProbeRun { label, containers, seconds, monitor, response_requests } = cmd {
        let bench = Bench { rt, tag: String::new(), ids: Vec::new(), label };
        return bench.probe_run(containers, seconds, monitor, response_requests).await;
    }
    let service = matches!(cmd, BenchCmd::Probe { monitor: true, .. });
    let tag = format!("hms-bench:{}", std::process::id());
    let built =
        if service { crate::lab::serviceimage::build_service(&tag) } else { crate::lab::testimage::build(&tag) };
    built.map_err(anyhow::Error::msg)?;
    let mut bench = Bench { rt, tag, ids: Vec::new(), label: format!("bench-{}", std::process::id()) };
    let result = match cmd {
        BenchCmd::Mttr { kills, baseline } => bench.mttr(kills, baseline).await,
        BenchCmd::Probe { containers, seconds, monitor: true, pairs, response_requests } => {
            bench.monitor_ab(containers, seconds, pairs, response_requests).await
        }
        BenchCmd::Probe { containers, seconds, .. } => bench.probe(containers, seconds).await,
        BenchCmd::Rest(ref b) => bench.rest(b).await,
        BenchCmd::Cluster(_) | BenchCmd::Service(_) | BenchCmd::Analysis(_) | BenchCmd::ProbeRun { .. } => Ok(()),
    };
    bench.cleanup().await;
    result
}

struct Bench {
    rt: DockerRuntime,
    tag: String,
    ids: Vec<String>,
    label: String,
}

/// Containers created or removed at once (the engine serialises much of it; more buys nothing).
const PARALLEL: usize = 8;

/// `start` and `die` events: container id, kind, engine time of the event.
type Starts = mpsc::UnboundedReceiver<(String, EventKind, SystemTime)>;

impl Bench {
    /// Runs `count` containers, [`PARALLEL`] at a time; every one created is kept for the clean-up,
    /// even when another failed.
    async fn spawn(&mut self, count: usize, label: &str) -> anyhow::Result<Vec<String>> {
        self.spawn_labelled(count, label, &[]).await
    }

    /// [`Self::spawn`] with more labels.
    async fn spawn_labelled(
        &mut self,
        count: usize,
        label: &str,
        more: &[(&str, &str)],
    ) -> anyhow::Result<Vec<String>> {
        let (rt, tag, pid) = (&self.rt, &self.tag, std::process::id());
        let runs = futures::stream::iter(0..count).map(|i| async move {
            let name = format!("hms-bench-{pid}-{label}-{i}");
            let labels: Vec<(&str, &str)> = [("hms.bench", label)].into_iter().chain(more.iter().copied()).collect();
            rt.run_container(&name, tag, &labels).await
        });
        let results: Vec<_> = runs.buffered(PARALLEL).collect().await;
        let mut out = Vec::new();
        let mut first_error = None;
        for r in results {
            match r {
                Ok(id) => out.push(id),
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        self.ids.extend(out.iter().cloned());
        match first_error {
            Some(e) => Err(e.into()),
            None => Ok(out),
        }
    }

    async fn cleanup(&mut self) {
        let rt = &self.rt;
        let removals = futures::stream::iter(self.ids.drain(..)).map(|id| async move {
            let _ = rt.remove_container(&id).await;
        });
        removals.buffer_unordered(PARALLEL).collect::<Vec<()>>().await;
        if !self.tag.is_empty() {
            crate::lab::testimage::remove(&self.tag);
        }
    }

    fn starts(&self) -> Starts {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut events = self.rt.events(None);
        tokio::spawn(async move {
            while let Some(Ok(ev)) = events.next().await {
                let wanted = matches!(ev.kind, EventKind::Start | EventKind::Die);
                let at = ev.time.unwrap_or_else(SystemTime::now);
                if wanted && tx.send((ev.id, ev.kind, at)).is_err() {
                    return;
                }
            }
        });
        rx
    }

    async fn node(&self, containers: usize) -> anyhow::Result<Node> {
        self.node_with(containers, true, 3).await
    }

    /// A standalone node over this bench's containers, with or without the Monitor, once every
    /// container has been probed.
    async fn node_with(&self, containers: usize, monitor: bool, requests: u16) -> anyhow::Result<Node> {
        let mut config = ManagerConfig::new("bench");
        config.monitor = monitor;
        config.response.count = requests;
        config.select = Some(Selector { key: "hms.bench".into(), value: self.label.clone() });
        let parts = NodeParts {
            runtime: Arc::new(self.rt.clone()),
            prober: Arc::new(IcmpProber::new()?),
            monitor: crate::actors::host::probe::Monitor::real()?,
            manager: config,
            controller: ControllerConfig::default(),
        };
        let node = Node::standalone(parts, None).await?;
        let wait = Duration::from_secs(30) + Duration::from_millis(30) * u32::try_from(containers).unwrap_or(u32::MAX);
        let deadline = Instant::now() + wait;
        loop {
            let recs = node.manager.call(HostMsg::Records, Some(Duration::from_secs(5))).await?;
            let recs = match recs {
                ractor::rpc::CallResult::Success(r) => r,
                _ => Vec::new(),
            };
            let probed = recs.iter().filter(|r| r.packet_loss.is_some()).count();
            if probed >= containers {
                return Ok(node);
            }
            if Instant::now() > deadline {
                bail!("only {probed} of {containers} containers were probed within {wait:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Times are engine timestamps of `die` and `start` events (same clock as ours, no client
    /// latency); the bare start is timed from just before the API call.
    async fn mttr(&mut self, kills: usize, baseline: usize) -> anyhow::Result<()> {
        let base_id = self.spawn(1, "baseline").await?.remove(0);
        let label = self.label.clone();
        let targets = self.spawn(kills, &label).await?;
        let mut events = self.starts();
        // every series runs under the same load: the node probing all targets
        let node = self.node(kills).await?;
        let mut m = Mttr::default();
        for _ in 0..baseline {
            self.rt.kill(&base_id, "KILL").await?;
            wait_exited(&self.rt, &base_id).await?;
            let t0 = SystemTime::now();
            self.rt.start(&base_id).await?;
            m.bare.push(since(t0, wait_for(&mut events, &base_id, EventKind::Start, t0).await?));
        }
        for _ in 0..baseline {
            let t0 = SystemTime::now();
            self.rt.kill(&base_id, "KILL").await?;
            let died = wait_for(&mut events, &base_id, EventKind::Die, t0).await?;
            self.rt.start(&base_id).await?;
            m.scripted.push(since(died, wait_for(&mut events, &base_id, EventKind::Start, died).await?));
        }
        for id in &targets {
            let t0 = SystemTime::now();
            self.rt.kill(id, "KILL").await?;
            let died = wait_for(&mut events, id, EventKind::Die, t0).await?;
            let started = wait_for(&mut events, id, EventKind::Start, died).await?;
            m.hms.push(since(died, started));
            m.hms_from_kill.push(since(t0, started));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        node.stop().await;
        m.print();
        Ok(())
    }

    async fn probe(&mut self, containers: usize, seconds: u64) -> anyhow::Result<()> {
        let label = self.label.clone();
        let ids = self.spawn(containers, &label).await?;
        let node = self.node(containers).await?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (cpu0, icmp0, (w0, d0), t0) = (cpu_time()?, threads_cpu("hms-icmp")?, window_totals(), Instant::now());
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let (cpu1, icmp1, (w1, d1), elapsed) = (cpu_time()?, threads_cpu("hms-icmp")?, window_totals(), t0.elapsed());
        let rss = rss_kib()?;
        node.stop().await;
        let floor = self.kernel_floor(&ids[0]).await?;
        let pct = |d: Duration| 100.0 * d.as_secs_f64() / elapsed.as_secs_f64();
        let (user, sys) = (pct(cpu1.0 - cpu0.0), pct(cpu1.1 - cpu0.1));
        let (icmp_user, icmp_sys) = (pct(icmp1.0 - icmp0.0), pct(icmp1.1 - icmp0.1));
        let windows = w1 - w0;
        let mean_window = (d1 - d0).as_secs_f64() * 1000.0 / windows.max(1) as f64;
        println!(
            "| containers | seconds | windows/s | echoes/s | mean window ms | CPU % of one core (user + kernel) | ICMP thread: user / kernel % | rest of the node % | µs of CPU per echo | RSS MiB | RSS KiB per container |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
        let rate = windows as f64 / elapsed.as_secs_f64();
        let echoes = rate * 20.0;
        println!(
            "| {containers} | {:.1} | {rate:.1} | {echoes:.0} | {mean_window:.1} | {:.2} ({user:.2} + {sys:.2}) | {icmp_user:.2} / {icmp_sys:.2} | {:.2} | {:.1} | {:.1} | {:.0} |",
            elapsed.as_secs_f64(),
            user + sys,
            user + sys - icmp_user - icmp_sys,
            (user + sys) / 100.0 / echoes.max(1.0) * 1e6,
            rss as f64 / 1024.0,
            rss as f64 / containers.max(1) as f64,
        );
        let floor_pct = floor.as_secs_f64() * echoes * 100.0;
        println!(
            "\nbaseline, same run: `busybox ping -A` costs {:.1} µs of CPU per echo (user + kernel), \
             so {:.0} echoes/s cost at least {floor_pct:.2} % of one core; HMS / baseline {:.2}",
            floor.as_secs_f64() * 1e6,
            echoes,
            (user + sys) / floor_pct.max(f64::EPSILON)
        );
        Ok(())
    }

    /// CPU per echo of `busybox ping` flooding one container: the kernel's own round-trip cost.
    async fn kernel_floor(&self, id: &str) -> anyhow::Result<Duration> {
        const ECHOES: u32 = 10_000;
        let ip = self.rt.inspect(id).await?.and_then(|c| c.ip).context("baseline container has no address")?;
        let before = children_cpu()?;
        let out = tokio::process::Command::new("busybox")
            .args(["ping", "-A", "-q", "-c", &ECHOES.to_string(), &ip.to_string()])
            .output()
            .await
            .context("busybox ping (apt-get install busybox-static)")?;
        if !out.status.success() {
            bail!("busybox ping failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok((children_cpu()? - before) / ECHOES)
    }
}

async fn wait_exited(rt: &DockerRuntime, id: &str) -> anyhow::Result<()> {
    for _ in 0..500 {
        if rt.inspect(id).await?.is_some_and(|c| c.state.is_down()) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bail!("container {id} did not exit")
}

/// Waits for the event `kind` of `id` not older than `after`; returns its engine time.
async fn wait_for(events: &mut Starts, id: &str, kind: EventKind, after: SystemTime) -> anyhow::Result<SystemTime> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some((got, k, at))) if got == id && k == kind && at >= after => return Ok(at),
            Ok(Some(_)) => {}
            Ok(None) => bail!("docker event stream ended"),
            Err(_) => bail!("no {kind:?} event of container {id} within 10 s"),
        }
    }
}

fn since(from: SystemTime, to: SystemTime) -> Duration {
    to.duration_since(from).unwrap_or_default()
}

/// The `p`-th percentile (nearest rank) of sorted samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Samples of the MTTR benchmark.
#[derive(Default)]
struct Mttr {
    bare: Vec<Duration>,
    scripted: Vec<Duration>,
    hms: Vec<Duration>,
    hms_from_kill: Vec<Duration>,
}

impl Mttr {
    fn print(mut self) {
        for s in [&mut self.bare, &mut self.scripted, &mut self.hms, &mut self.hms_from_kill] {
            s.sort();
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!("| measure | n | p50 ms | p95 ms | p99 ms | max ms |");
        println!("|---|---|---|---|---|---|");
        let rows = [
            ("bare `docker start` of a stopped container (API call → `start` event)", &self.bare),
            ("scripted reactor: `die` event → `docker start` → `start` event", &self.scripted),
            ("**HMS MTTR**: `die` → running (`start` event)", &self.hms),
            ("HMS, from the `docker kill` call → running", &self.hms_from_kill),
        ];
        for (name, s) in rows {
            let row = [50.0, 95.0, 99.0, 100.0].map(|p| ms(percentile(s, p)));
            println!("| {name} | {} | {:.1} | {:.1} | {:.1} | {:.1} |", s.len(), row[0], row[1], row[2], row[3]);
        }
        let ratio = |a: &[Duration], p| ms(percentile(a, p)) / ms(percentile(&self.bare, p)).max(f64::EPSILON);
        println!(
            "\nHMS MTTR / bare start: p50 {:.2}, p99 {:.2}; from the kill call: p50 {:.2}; scripted reactor: p50 {:.2}",
            ratio(&self.hms, 50.0),
            ratio(&self.hms, 99.0),
            ratio(&self.hms_from_kill, 50.0),
            ratio(&self.scripted, 50.0),
        );
    }
}

/// CPU time of this process: (user, system).
pub(crate) fn cpu_time() -> anyhow::Result<(Duration, Duration)> {
    Ok((stat_ticks("self", 11)?, stat_ticks("self", 12)?))
}

/// CPU time (user, system) summed over this process's threads named `comm`.
pub(crate) fn threads_cpu(comm: &str) -> anyhow::Result<(Duration, Duration)> {
    let mut total = (Duration::ZERO, Duration::ZERO);
    for task in std::fs::read_dir("/proc/self/task")? {
        let tid = task?.file_name().to_string_lossy().into_owned();
        let name = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).unwrap_or_default();
        if name.trim_end() == comm {
            let pid = format!("self/task/{tid}");
            total.0 += stat_ticks(&pid, 11)?;
            total.1 += stat_ticks(&pid, 12)?;
        }
    }
    Ok(total)
}

/// CPU time (user + system) of process `pid`.
pub(crate) fn process_cpu(pid: u32) -> anyhow::Result<Duration> {
    let pid = pid.to_string();
    Ok(stat_ticks(&pid, 11)? + stat_ticks(&pid, 12)?)
}

/// CPU time (user + system) of this process's waited-for children.
fn children_cpu() -> anyhow::Result<Duration> {
    Ok(stat_ticks("self", 13)? + stat_ticks("self", 14)?)
}

/// A clock-tick field of `/proc/<pid>/stat`, counted after the command name.
fn stat_ticks(pid: &str, i: usize) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(") ").map(|(_, r)| r).context("malformed /proc/self/stat")?;
    let field = after.split_whitespace().nth(i).context("short /proc/self/stat")?;
    Ok(Duration::from_millis(10 * field.parse::<u64>()?))
}

/// Resident memory of this process, in KiB.
pub(crate) fn rss_kib() -> anyhow::Result<u64> {
    process_rss_kib("self")
}

/// Resident memory of process `pid` ("self" for this one), in KiB.
pub(crate) fn process_rss_kib(pid: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS")?;
    Ok(line.split_whitespace().nth(1).context("VmRSS value")?.parse()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_uses_nearest_rank() {
        let s: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&s, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&s, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&s, 100.0), Duration::from_millis(100));
        assert_eq!(percentile(&s[..1], 99.0), Duration::from_millis(1));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }
}
