//! `hms bench rest`: throughput and latency of the REST API with `wrk` (Debian) against an
//! in-process standalone node monitoring real containers, then the MTTR of killed containers
//! while `wrk` keeps loading the API.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};

use super::{Bench, EventKind, Mttr, percentile, since, wait_for};
use crate::http::{self, Api};
use crate::runtime::ContainerRuntime;

/// Options of `hms bench rest`.
#[derive(Debug, clap::Args)]
pub struct RestBench {
    /// Monitored containers.
    #[arg(long, default_value_t = 50)]
    pub containers: usize,
    /// Seconds of each `wrk` run.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// `wrk` connections.
    #[arg(long, default_value_t = 16)]
    pub connections: u32,
    /// `wrk` threads.
    #[arg(long, default_value_t = 1)]
    pub threads: u32,
    /// Containers killed (each once) while `wrk` loads the API.
    #[arg(long, default_value_t = 30)]
    pub kills: usize,
}

/// What `wrk --latency` reports.
#[derive(Debug, Clone, PartialEq)]
pub struct WrkResult {
    pub requests_per_sec: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub non_2xx: u64,
}

/// Parses `wrk --latency` output.
pub fn parse_wrk(out: &str) -> Option<WrkResult> {
    let field = |prefix: &str| {
        out.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(|v| v.split_whitespace().next().unwrap_or(""))
    };
    let requests_per_sec = field("Requests/sec:")?.parse().ok()?;
    let p50 = parse_latency(field("50%")?)?;
    let p99 = parse_latency(field("99%")?)?;
    let non_2xx = field("Non-2xx or 3xx responses:").and_then(|v| v.parse().ok()).unwrap_or(0);
    Some(WrkResult { requests_per_sec, p50, p99, non_2xx })
}

fn parse_latency(v: &str) -> Option<Duration> {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic())?);
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "us" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

impl RestBench {
    fn wrk(&self, url: &str, seconds: u64) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("wrk");
        cmd.args(["--latency", "-t", &self.threads.to_string(), "-c", &self.connections.to_string()])
            .args(["-d", &format!("{seconds}s"), url])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    async fn load(&self, url: &str) -> anyhow::Result<WrkResult> {
        let out = self.wrk(url, self.seconds).output().await.context("wrk (apt-get install wrk)")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let res = parse_wrk(&text).with_context(|| format!("cannot read wrk's output: {text}"))?;
        if res.non_2xx > 0 {
            bail!("{} answers were errors: {text}", res.non_2xx);
        }
        Ok(res)
    }
}

impl Bench {
    pub(super) async fn rest(&mut self, b: &RestBench) -> anyhow::Result<()> {
        let label = self.label.clone();
        let base_id = self.spawn(1, "baseline").await?.remove(0);
        let targets = self.spawn(b.containers, &label).await?;
        let mut events = self.starts();
        let node = self.node(b.containers).await?;
        let api = Api::connect(node.controller.clone(), Duration::from_secs(5), None).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(http::serve(listener, api.clone(), async move {
            let _ = stopped.await;
        }));
        let snapshot = api.snapshot();
        let one = snapshot.containers().next().context("no container published")?.clone();
        let published = snapshot.containers().count();
        let single = format!("http://{addr}/containers/bench/{}", one.id);
        let all = format!("http://{addr}/containers");

        println!(
            "{published} containers published; wrk -t{} -c{} -d{}s --latency\n",
            b.threads, b.connections, b.seconds
        );
        println!("| endpoint | requests/s | p50 ms | p99 ms |");
        println!("|---|---|---|---|");
        for (name, url) in [("GET /containers/{host}/{id}", &single), ("GET /containers (every record)", &all)] {
            let r = b.load(url).await?;
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            println!("| `{name}` | {:.0} | {:.2} | {:.2} |", r.requests_per_sec, ms(r.p50), ms(r.p99));
        }

        let kills = b.kills.min(targets.len());
        let mut load = b.wrk(&single, 3600).spawn().context("wrk (apt-get install wrk)")?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut m = Mttr::default();
        for id in &targets[..kills] {
            let t0 = SystemTime::now();
            self.rt.kill(id, "KILL").await?;
            let died = wait_for(&mut events, id, EventKind::Die, t0).await?;
            let started = wait_for(&mut events, id, EventKind::Start, died).await?;
            m.hms.push(since(died, started));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for _ in 0..kills {
            self.rt.kill(&base_id, "KILL").await?;
            super::wait_exited(&self.rt, &base_id).await?;
            let t0 = SystemTime::now();
            self.rt.start(&base_id).await?;
            m.bare.push(since(t0, wait_for(&mut events, &base_id, EventKind::Start, t0).await?));
        }
        let _ = load.kill().await;
        let _ = stop.send(());
        api.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
        node.stop().await;
        m.hms.sort();
        m.bare.sort();
        let ms = |s: &[Duration], p| percentile(s, p).as_secs_f64() * 1000.0;
        println!("\nUnder load (wrk keeps loading GET /containers/{{host}}/{{id}}), {kills} samples each:\n");
        println!("| measure | p50 ms | p99 ms | max ms |");
        println!("|---|---|---|---|");
        let rows = [
            ("**HMS MTTR**: `die` → `start` event", &m.hms),
            ("bare `docker start` (API call → `start` event)", &m.bare),
        ];
        for (name, s) in rows {
            println!("| {name} | {:.0} | {:.0} | {:.0} |", ms(s, 50.0), ms(s, 99.0), ms(s, 100.0));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_latency_output() {
        let out = "Running 10s test @ http://127.0.0.1:1/containers\n  1 threads and 16 connections\n  \
            Latency Distribution\n     50%  512.00us\n     75%  0.90ms\n     90%    1.20ms\n     99%    3.45ms\n  \
            200000 requests in 10.00s, 50.00MB read\nRequests/sec:  20012.34\nTransfer/sec:      5.00MB\n";
        let r = parse_wrk(out).unwrap();
        assert_eq!(r.requests_per_sec, 20012.34);
        assert_eq!(r.p50, Duration::from_micros(512));
        assert_eq!(r.p99, Duration::from_micros(3450));
        assert_eq!(r.non_2xx, 0);
    }
}
