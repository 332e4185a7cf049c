//! `hms bench cluster`: one `hms controller` process and many `hms manager --simulate` processes
//! (in-memory engines, real cluster sessions), measured from outside through REST and `/proc`.
//!
//! Phases: (1) start everything and wait for the whole fleet in `GET /containers`; (2) idle
//! (heartbeats only): controller CPU and socket bytes; (3) changes: a threshold set on one host
//! at a time, timed from the host's OK to the change being visible in
//! `GET /containers/{host}/{id}` (host change → notice → aggregation window → pull → view);
//! (4) `GET /containers` latency on the full fleet.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::{percentile, process_cpu, process_rss_kib};
use crate::runtime::Selector;
use crate::runtime::fake::FakeRuntime;

/// An in-memory engine holding `n` running containers (labelled to match `select`).
pub fn simulated_engine(n: usize, select: Option<&Selector>) -> FakeRuntime {
    let rt = FakeRuntime::new();
    let labels: Vec<(&str, &str)> = select.map(|s| (s.key.as_str(), s.value.as_str())).into_iter().collect();
    for i in 0..n {
        rt.add(&format!("sim-{i}"), &labels);
    }
    rt
}

#[derive(Debug, Clone, clap::Args)]
pub struct ClusterBench {
    /// Simulated hosts (one `hms manager` process each).
    #[arg(long, default_value_t = 50)]
    hosts: usize,
    /// Containers per host.
    #[arg(long, default_value_t = 100)]
    containers: usize,
    /// Aggregation window of the controller, in seconds.
    #[arg(long, default_value_t = 0.5)]
    aggregation: f64,
    /// Timed changes.
    #[arg(long, default_value_t = 100)]
    changes: usize,
    /// Seconds of the idle phase.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// `GET /containers` requests.
    #[arg(long, default_value_t = 100)]
    requests: usize,
}

/// Child processes, killed on drop.
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn spawn(args: &[&str], cookie: &str) -> anyhow::Result<Child> {
    Command::new(std::env::current_exe()?)
        .args(args)
        .env("HMS_COOKIE", cookie)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("spawn hms")
}

/// Payload bytes sent and received on the TCP connections of local port `port` (the cluster
/// port of the controller), from the kernel's `tcp_info` as `ss` reports it.
pub(crate) fn cluster_bytes(port: &str) -> anyhow::Result<u64> {
    let out = Command::new("ss").args(["-tinH", &format!("( sport = :{port} )")]).output().context("run ss")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let sum = |key: &str| -> u64 {
        text.split_whitespace().filter_map(|w| w.strip_prefix(key)).filter_map(|v| v.parse::<u64>().ok()).sum()
    };
    Ok(sum("bytes_sent:") + sum("bytes_received:"))
}

/// One HTTP/1.1 request on a fresh connection: (status, body, bytes received).
async fn http(addr: &str, method: &str, path: &str, body: &str) -> anyhow::Result<(u16, String, u64)> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(rest) } else { rest.into() };
    Ok((status, body, raw.len() as u64))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

impl ClusterBench {
    pub async fn run(self) -> anyhow::Result<()> {
        let cookie = format!("bench-{}", rand::random::<u64>());
        let (http_addr, listen) = (format!("127.0.0.1:{}", free_port()?), format!("127.0.0.1:{}", free_port()?));
        let agg = self.aggregation.to_string();
        let controller =
            spawn(&["controller", "--http", &http_addr, "--listen", &listen, "--aggregation", &agg], &cookie)?;
        let cpid = controller.id();
        let mut procs = Procs(vec![controller]);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let n = self.containers.to_string();
        for h in 0..self.hosts {
            let name = format!("sim{h}");
            procs.0.push(spawn(&["manager", "--name", &name, "--controller", &listen, "--simulate", &n], &cookie)?);
        }
        let t0 = Instant::now();
        let first = self.until_full(&http_addr).await?;
        let full_after = t0.elapsed();

        let port = listen.rsplit(':').next().unwrap_or_default().to_owned();
        let (cpu0, io0, i0) = (process_cpu(cpid)?, cluster_bytes(&port)?, Instant::now());
        let mut offline_seen = 0;
        while i0.elapsed() < Duration::from_secs(self.seconds) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Ok((200, body, _)) = http(&http_addr, "GET", "/hosts", "").await {
                offline_seen = offline_seen.max(body.matches("\"offline\"").count());
            }
        }
        let idle_secs = i0.elapsed().as_secs_f64();
        let idle_cpu = (process_cpu(cpid)? - cpu0).as_secs_f64() / idle_secs * 100.0;
        let idle_bps = cluster_bytes(&port)?.saturating_sub(io0) as f64 / idle_secs;

        let (cpu0, io0, c0) = (process_cpu(cpid)?, cluster_bytes(&port)?, Instant::now());
        let mut lat = self.changes(&http_addr, &first).await?;
        let change_secs = c0.elapsed().as_secs_f64();
        let change_cpu = (process_cpu(cpid)? - cpu0).as_secs_f64() / change_secs * 100.0;
        let change_bps = cluster_bytes(&port)?.saturating_sub(io0) as f64 / change_secs;

        let (mut gets, size) = self.get_all(&http_addr).await?;
        let rss = process_rss_kib(&cpid.to_string())? as f64 / 1024.0;
        drop(procs);
        lat.sort();
        gets.sort();
        self.print(full_after, (idle_cpu, idle_bps), (change_cpu, change_bps), &lat, &gets, size, rss);
        println!("most hosts offline at once during the idle phase (sampled each second): {offline_seen}");
        Ok(())
    }

    /// Waits for every container of every host in `GET /containers`; returns one (host, id) per host.
    async fn until_full(&self, addr: &str) -> anyhow::Result<Vec<(String, String)>> {
        let want = self.hosts * self.containers;
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if let Ok((200, body, _)) = http(addr, "GET", "/containers", "").await {
                let all: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap_or_default();
                if all.len() >= want {
                    let mut first: Vec<(String, String)> = Vec::new();
                    for c in &all {
                        let (h, id) = (c["host"].as_str().unwrap_or_default(), c["id"].as_str().unwrap_or_default());
                        if !first.iter().any(|(fh, _)| fh == h) {
                            first.push((h.to_owned(), id.to_owned()));
                        }
                    }
                    return Ok(first);
                }
            }
            if Instant::now() > deadline {
                bail!("the fleet did not reach {want} containers within 180 s");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Sets thresholds one host at a time; returns the latencies.
    async fn changes(&self, addr: &str, first: &[(String, String)]) -> anyhow::Result<Vec<Duration>> {
        let mut lat = Vec::new();
        for i in 0..self.changes {
            let (host, id) = &first[i % first.len()];
            let value = 31 + (i / first.len()) % 2 * 10;
            let (status, body, _) =
                http(addr, "POST", &format!("/containers/{host}"), &format!("{{\"threshold\": {value}}}")).await?;
            if status != 200 {
                bail!("setting the threshold of {host} answered {status}: {body}");
            }
            let t0 = Instant::now();
            let want = format!("\"threshold\":{value}");
            loop {
                let (_, body, _) = http(addr, "GET", &format!("/containers/{host}/{id}"), "").await?;
                if body.contains(&want) {
                    break;
                }
                if t0.elapsed() > Duration::from_secs(30) {
                    bail!("the change on {host} was not visible within 30 s");
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            lat.push(t0.elapsed());
        }
        Ok(lat)
    }

    async fn get_all(&self, addr: &str) -> anyhow::Result<(Vec<Duration>, usize)> {
        let (mut out, mut size) = (Vec::new(), 0);
        for _ in 0..self.requests {
            let t0 = Instant::now();
            let (status, body, _) = http(addr, "GET", "/containers", "").await?;
            out.push(t0.elapsed());
            if status != 200 {
                bail!("GET /containers answered {status}");
            }
            size = body.len();
        }
        Ok((out, size))
    }

    #[allow(clippy::too_many_arguments, reason = "one table row: each argument is one of its measured columns")]
    fn print(
        &self,
        full_after: Duration,
        idle: (f64, f64),
        change: (f64, f64),
        lat: &[Duration],
        gets: &[Duration],
        size: usize,
        rss: f64,
    ) {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{} hosts × {} containers, aggregation {} s; whole fleet visible {:.1} s after start\n",
            self.hosts,
            self.containers,
            self.aggregation,
            full_after.as_secs_f64()
        );
        println!("| measure | n | p50 ms | p99 ms | max ms |");
        println!("|---|---|---|---|---|");
        let row = |name: &str, s: &[Duration]| {
            let p = |q| ms(percentile(s, q));
            println!("| {name} | {} | {:.1} | {:.1} | {:.1} |", s.len(), p(50.0), p(99.0), p(100.0));
        };
        row("update latency: host change → visible in REST", lat);
        row(&format!("`GET /containers` ({:.1} MiB of JSON)", size as f64 / (1 << 20) as f64), gets);
        println!("\n| phase | controller CPU % of one core | cluster bytes/s (TCP payload, both ways) |");
        println!("|---|---|---|");
        println!("| idle (heartbeats) | {:.1} | {:.0} |", idle.0, idle.1);
        println!("| one change at a time (timed above) | {:.1} | {:.0} |", change.0, change.1);
        println!("\ncontroller RSS at the end: {rss:.1} MiB");
        let target = self.aggregation * 1000.0 + 50.0;
        println!("update latency p99 / (aggregation + 50 ms): {:.2}", ms(percentile(lat, 99.0)) / target);
    }
}
