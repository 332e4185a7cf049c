//! `hms bench service`: the calibration of the service image ([`crate::lab::serviceimage`]).
//! Response time of its static page and of its CGI at several loop counts, in one container
//! unconstrained and one under `--cpus`, each idle and then with a busy loop started inside it by
//! `docker exec` (bounded by busybox `timeout 20`, stopped after each cell). Rows are measured one
//! after the other, each in all four configurations in turn, so that the host's load drifts alike
//! for every column. Requests go one at a time, 0–90 ms apart at random so that they do not lock
//! onto the 100 ms CFS period; the CPU per request comes from the container's cgroup. The containers and the image tag are removed on
//! every path (a drop guard).

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, sleep};

use super::percentile;
use crate::lab::serviceimage::{self, DEFAULT_WORK, SERVICE_PORT, STATIC_PATH, WORK_PATH};
use crate::resources::cgroup::{Cgroups, CpuSample, throttled_share};

/// Options of `hms bench service`.
#[derive(Debug, clap::Args)]
pub struct ServiceBench {
    /// Requests per cell; a cell also stops after 15 s, within the busy loop's 20 s.
    #[arg(long, default_value_t = 30)]
    pub requests: usize,
    /// Loop iterations measured (`?n=`), besides the static page and the image's default `WORK`.
    #[arg(long, value_delimiter = ',', default_value = "0,1000,5000,10000,20000")]
    pub work: Vec<u32>,
    /// CPU limit of the constrained container (`docker run --cpus`).
    #[arg(long, default_value_t = 0.5)]
    pub cpus: f64,
}

/// The in-container busy loop, bounded by busybox `timeout` should the bench die. `timeout` execs
/// the loop in its own process, so the pid written is the loop's (Debian's busybox has no `pkill`).
const BUSY: [&str; 3] = ["sh", "-c", "echo $$ >/busy.pid; exec timeout 20 sh -c 'while :; do :; done'"];

/// Stops the busy loop (`timeout`'s watcher notices within a second and exits).
const STOP: [&str; 3] = ["sh", "-c", "kill $(cat /busy.pid)"];

/// A cell stops after this long, well within the busy loop's 20 s.
const CELL_BUDGET: Duration = Duration::from_secs(15);

/// One request path of the table: its label and the path requested.
struct Row {
    label: String,
    path: String,
}

/// One measured cell: the latencies, sorted, and the container's CPU counters around them.
struct Cell {
    sorted: Vec<Duration>,
    before: CpuSample,
    after: CpuSample,
}

impl ServiceBench {
    pub async fn run(self) -> anyhow::Result<()> {
        let mut lab = Lab { tag: format!("hms-bench-service:{}", std::process::id()), containers: Vec::new() };
        serviceimage::build_service(&lab.tag).map_err(anyhow::Error::msg)?;
        let rows = self.rows();
        let limits = [None, Some(self.cpus)];
        let targets = [lab.start(limits[0]).await?, lab.start(limits[1]).await?];
        let configs = [(0, false), (0, true), (1, false), (1, true)];
        let mut columns: Vec<(String, Vec<Cell>)> =
            configs.iter().map(|&(t, busy)| (heading(limits[t], busy), Vec::new())).collect();
        let load_before = load_average();
        // Row by row, every configuration in turn: the host's load drifts alike for all columns.
        for row in &rows {
            for (column, &(t, busy)) in columns.iter_mut().zip(&configs) {
                column.1.push(self.cell(&targets[t], &row.path, busy).await?);
            }
        }
        print(&rows, &columns, self.work.iter().copied().max().unwrap_or(0));
        println!("host load average (1 min): {load_before} before, {} after", load_average());
        Ok(())
    }

    fn rows(&self) -> Vec<Row> {
        let mut rows = vec![Row { label: format!("`{STATIC_PATH}`"), path: STATIC_PATH.into() }];
        rows.extend(self.work.iter().map(|n| Row { label: format!("n={n}"), path: format!("{WORK_PATH}?n={n}") }));
        rows.push(Row { label: format!("no n (WORK={DEFAULT_WORK})"), path: WORK_PATH.into() });
        rows
    }

    /// `requests` GETs of `path` (fewer past [`CELL_BUDGET`]), with the busy loop running if `busy`.
    async fn cell(&self, target: &Target, path: &str, busy: bool) -> anyhow::Result<Cell> {
        if busy {
            docker(&[&["exec", "-d", &target.name][..], &BUSY].concat())?;
            sleep(Duration::from_millis(300)).await;
        }
        let cgroups = Cgroups::detect("/sys/fs/cgroup");
        let before = cgroups.cpu(&target.id)?;
        let t0 = Instant::now();
        let mut sorted = Vec::new();
        while sorted.len() < self.requests && t0.elapsed() < CELL_BUDGET {
            let (status, took) = get(target.addr, path).await?;
            if status != 200 {
                bail!("GET {path} answered {status}");
            }
            sorted.push(took);
            sleep(Duration::from_millis(rand::random_range(0..90))).await;
        }
        let after = cgroups.cpu(&target.id)?;
        if busy {
            let _ = docker(&[&["exec", &target.name][..], &STOP].concat()); // fails if `timeout` ended it
            sleep(Duration::from_millis(200)).await;
        }
        sorted.sort();
        Ok(Cell { sorted, before, after })
    }
}

/// A running service container.
struct Target {
    name: String,
    id: String,
    addr: SocketAddr,
}

/// The image tag and the containers made from it, all removed on drop.
struct Lab {
    tag: String,
    containers: Vec<String>,
}

impl Lab {
    /// Runs a container (under `--cpus` if given) and waits until its static page answers.
    async fn start(&mut self, cpus: Option<f64>) -> anyhow::Result<Target> {
        let name = format!("hms-bench-service-{}-{}", std::process::id(), self.containers.len());
        self.containers.push(name.clone());
        let limit = cpus.map(|c| c.to_string());
        let mut args = vec!["run", "-d", "--name", &name, "--label", "hms.bench=service"];
        if let Some(limit) = &limit {
            args.extend(["--cpus", limit]);
        }
        args.push(&self.tag);
        let id = docker(&args)?;
        let ip = docker(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", &name])?;
        let addr = SocketAddr::new(ip.parse().with_context(|| format!("container ip {ip:?}"))?, SERVICE_PORT);
        let t0 = Instant::now();
        while !matches!(get(addr, STATIC_PATH).await, Ok((200, _))) {
            if t0.elapsed() > Duration::from_secs(5) {
                bail!("httpd in {name} not answering after 5 s");
            }
            sleep(Duration::from_millis(50)).await;
        }
        Ok(Target { name, id, addr })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for name in &self.containers {
            let _ = Command::new("docker").args(["rm", "-f", name]).output();
        }
        serviceimage::remove(&self.tag);
    }
}

/// Runs the docker CLI; its trimmed stdout, or its stderr as the error.
fn docker(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("docker").args(args).output().context("cannot run docker")?;
    if !out.status.success() {
        bail!("docker {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// One HTTP/1.0 `GET path` on a fresh connection: the status and the time to the last byte.
async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, Duration)> {
    let t0 = Instant::now();
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), exchange).await.context("no answer within 10 s")??;
    let took = t0.elapsed();
    let status = String::from_utf8_lossy(&raw).split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((status, took))
}

/// The host's 1-minute load average (this machine is shared: it says how quiet the run was).
fn load_average() -> String {
    let avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    avg.split(' ').next().unwrap_or("?").to_owned()
}

fn heading(cpus: Option<f64>, busy: bool) -> String {
    let limit = cpus.map_or("unconstrained".to_owned(), |c| format!("`--cpus {c}`"));
    if busy { format!("{limit} + busy loop") } else { format!("{limit}, idle") }
}

/// CPU milliseconds per request of a cell.
fn cpu_ms(cell: &Cell) -> f64 {
    let ns = cell.after.usage_ns.saturating_sub(cell.before.usage_ns);
    ns as f64 / 1e6 / cell.sorted.len().max(1) as f64
}

/// `mean / p50 / p90` in ms, and the share of CFS periods throttled when there was a quota.
fn latency(cell: &Cell) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mean = cell.sorted.iter().map(|d| ms(*d)).sum::<f64>() / cell.sorted.len().max(1) as f64;
    let (p50, p90) = (ms(percentile(&cell.sorted, 50.0)), ms(percentile(&cell.sorted, 90.0)));
    let throttled = throttled_share(cell.before, cell.after).map(|s| format!(", thr {:.0} %", s * 100.0));
    format!("{mean:.1} / {p50:.1} / {p90:.1}{}", throttled.unwrap_or_default())
}

/// The table (rows: requests; columns: container and load), then the CPU cost per 1,000 iterations.
fn print(rows: &[Row], columns: &[(String, Vec<Cell>)], max_n: u32) {
    let headings: Vec<&str> = columns.iter().map(|(h, _)| h.as_str()).collect();
    println!("Response time, mean / p50 / p90 ms (thr: CFS periods throttled)\n");
    println!("| request | CPU ms per request (unconstrained, idle) | {} |", headings.join(" | "));
    println!("|---|---|{}", "---|".repeat(columns.len()));
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = columns.iter().map(|(_, c)| latency(&c[i])).collect();
        println!("| {} | {:.2} | {} |", row.label, cpu_ms(&columns[0].1[i]), cells.join(" | "));
    }
    let idle = &columns[0].1;
    let n_cpu = |n: u32| rows.iter().position(|r| r.label == format!("n={n}")).map(|i| cpu_ms(&idle[i]));
    if let (Some(zero), Some(max), true) = (n_cpu(0), n_cpu(max_n), max_n > 0) {
        println!(
            "\nCPU per 1,000 iterations: {:.2} ms (n={max_n} against n=0, unconstrained, idle)",
            (max - zero) * 1000.0 / f64::from(max_n)
        );
    }
}
