//! One experiment run: a controller (in this process), N `hms manager` processes scoped to their
//! own labelled containers on the local engine, the antagonist on every host, and the samplers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use ractor::ActorRef;
use tokio::time::Instant;

use super::ground_truth;
use super::procs::{Containers, Managers};
use super::sampler::{self, Target, secs_since};
use super::score::{self, RunData, Sample};
use super::spec::{Bandwidth, RunResult, RunSpec};
use crate::actors::controller::{ControllerMsg, Stats};
use crate::antagonist::exec::SCHEDULE_LABEL;
use crate::cluster::ControllerNode;
use crate::config::ControllerConfig;
use crate::probe::Prober;
use crate::runtime::docker::DockerRuntime;
use crate::runtime::{ContainerRuntime, Selector};

/// The label every container of a run carries, with the run id as its value.
const RUN_LABEL: &str = "hms.exp";

/// Runs one cell and writes its files under `out/<dir_name>/`.
pub async fn run(spec: &RunSpec, image: &str, out: &Path, prober: Arc<dyn Prober>) -> anyhow::Result<RunResult> {
    let dir = out.join(spec.dir_name());
    // A run's folder holds that run only: the managers append to their ground-truth logs.
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let docker = DockerRuntime::connect(Duration::from_secs(10)).await.context("docker engine")?;
    let run_id = format!("x{}-{}", std::process::id(), rand::random::<u32>());
    let mut containers = Containers { rt: docker.clone(), ids: Vec::new() };
    let targets = create_containers(&mut containers, spec, &run_id, image).await?;
    let (bare_start, baseline) = bare_start(&docker, image, &run_id, &mut containers).await?;

    let cookie = format!("exp-{}", rand::random::<u64>());
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let config = ControllerConfig { aggregation: Duration::from_secs_f64(spec.aggregation), ..Default::default() };
    let node = ControllerNode::start(config, None, listen, cookie.clone()).await.context("controller")?;
    let mut managers = Managers::default();
    let hosts = spawn_managers(&mut managers, spec, &run_id, &listen, &cookie, &dir)?;
    let bare = Bare { idle: bare_start, baseline };
    let res = measure(spec, &run_id, &node.controller, &hosts, &targets, &docker, prober, bare, &listen, &dir).await;
    managers.stop(Duration::from_secs(5)).await;
    node.stop().await;
    containers.remove_all().await;
    let (result, samples) = res?;
    write_samples(&dir.join("samples.csv"), &samples)?;
    std::fs::write(dir.join("summary.json"), serde_json::to_vec_pretty(&result)?)?;
    Ok(result)
}

async fn create_containers(
    c: &mut Containers,
    spec: &RunSpec,
    run_id: &str,
    image: &str,
) -> anyhow::Result<Vec<Target>> {
    let mut targets = Vec::new();
    for h in 0..spec.managers {
        let host_label = format!("{run_id}-vm{h}");
        for i in 0..spec.containers {
            let name = format!("hms-{run_id}-vm{h}-c{i}");
            // the same schedule for every mode of a cell: the key leaves the run id out
            let key = format!("vm{h}-c{i}");
            let labels = [("hms.host", host_label.as_str()), (RUN_LABEL, run_id), (SCHEDULE_LABEL, key.as_str())];
            let id = c.rt.run_container(&name, image, &labels).await?;
            c.ids.push(id.clone());
            targets.push(Target { id, name });
        }
    }
    Ok(targets)
}

/// Mean time of a bare `docker start` (API call until it returns) of the same image, 10 samples,
/// and the id of the (unmonitored) baseline container.
async fn bare_start(
    rt: &DockerRuntime,
    image: &str,
    run_id: &str,
    c: &mut Containers,
) -> anyhow::Result<(f64, String)> {
    let id = rt.run_container(&format!("hms-{run_id}-baseline"), image, &[(RUN_LABEL, run_id)]).await?;
    c.ids.push(id.clone());
    let mut total = Duration::ZERO;
    for _ in 0..10 {
        total += time_start(rt, &id).await?;
    }
    Ok((total.as_secs_f64() / 10.0, id))
}

/// Kills the container, waits until it is stopped, and times a bare `docker start`.
async fn time_start(rt: &DockerRuntime, id: &str) -> anyhow::Result<Duration> {
    rt.kill(id, "KILL").await?;
    wait_stopped(rt, id).await?;
    let t = Instant::now();
    rt.start(id).await?;
    Ok(t.elapsed())
}

/// The bare-start baseline: measured on a quiet engine, and the container to measure it again
/// under the run's load.
struct Bare {
    idle: f64,
    baseline: String,
}

/// Mean bare start of the baseline container every 2 s until `until` (the idle mean if none).
async fn bare_start_under_load(rt: DockerRuntime, id: String, until: Instant, idle: f64) -> f64 {
    let mut times = Vec::new();
    while Instant::now() + Duration::from_secs(3) < until {
        match time_start(&rt, &id).await {
            Ok(d) => times.push(d.as_secs_f64()),
            Err(e) => tracing::warn!(error = %e, "baseline start under load"),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    if times.is_empty() { idle } else { times.iter().sum::<f64>() / times.len() as f64 }
}

async fn wait_stopped(rt: &DockerRuntime, id: &str) -> anyhow::Result<()> {
    for _ in 0..100 {
        let running = rt.inspect(id).await?.is_some_and(|o| o.state == crate::model::DockerState::Running);
        if !running {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("container {id} did not stop")
}

fn spawn_managers(
    m: &mut Managers,
    spec: &RunSpec,
    run_id: &str,
    controller: &SocketAddr,
    cookie: &str,
    dir: &Path,
) -> anyhow::Result<Vec<String>> {
    let mode = serde_json::to_string(&spec.mode)?.replace('"', "");
    let (controller, threshold) = (controller.to_string(), spec.threshold.to_string());
    let mut hosts = Vec::new();
    for h in 0..spec.managers {
        let (name, data) = (format!("vm{h}"), dir.join(format!("vm{h}")));
        std::fs::create_dir_all(&data)?;
        let select = format!("hms.host={run_id}-vm{h}");
        let table = format!("hms_{}_vm{h}", run_id.replace('-', "_"));
        let data_s = data.to_string_lossy().into_owned();
        let args = [
            "--name",
            &name,
            "--controller",
            &controller,
            "--select",
            &select,
            "--heal-mode",
            &mode,
            "--data-dir",
            &data_s,
            "--threshold",
            &threshold,
            "--antagonist-table",
            &table,
        ];
        m.spawn(&args, cookie, &dir.join(format!("vm{h}.log")))?;
        hosts.push(name);
    }
    Ok(hosts)
}

#[allow(clippy::too_many_arguments, reason = "the run's pieces, each owned by `run` and borrowed for the measurement")]
async fn measure(
    spec: &RunSpec,
    run_id: &str,
    controller: &ActorRef<ControllerMsg>,
    hosts: &[String],
    targets: &[Target],
    docker: &DockerRuntime,
    prober: Arc<dyn Prober>,
    bare: Bare,
    listen: &SocketAddr,
    dir: &Path,
) -> anyhow::Result<(RunResult, BTreeMap<String, Vec<Sample>>)> {
    wait_for_fleet(controller, targets.len()).await?;
    let rt: Arc<dyn ContainerRuntime> = Arc::new(docker.clone());
    let (mut events, recorder) = sampler::record_events(&rt, targets);
    let (t0, wall0) = (Instant::now(), SystemTime::now());
    let attacked = spec.scenario != super::FAULT_FREE;
    if attacked {
        super::control::start_antagonists(controller, hosts, spec).await?;
    }
    let until = t0 + Duration::from_secs_f64(spec.duration);
    let stats0 = stats(controller).await?;
    let run_containers = Selector { key: RUN_LABEL.to_owned(), value: run_id.to_owned() };
    let sampling = sampler::sample(rt, prober, targets, &run_containers, t0, Duration::from_millis(250), until);
    let loaded = bare_start_under_load(docker.clone(), bare.baseline, until, bare.idle);
    let (samples, series, bare_start_loaded) =
        tokio::join!(sampling, bandwidth_series(controller, listen.port(), until), loaded);
    let stats1 = stats(controller).await?;
    if attacked {
        super::control::stop_antagonists(controller, hosts).await?;
    }
    recorder.abort();
    let mut run = RunData {
        duration: spec.duration,
        samples,
        threshold: f64::from(spec.threshold),
        bare_start: bare_start_loaded,
        ..RunData::default()
    };
    while let Ok((name, ev, at)) = events.try_recv() {
        run.events.entry(name).or_default().push((secs_since(wall0, at), ev));
    }
    write_events(&dir.join("events.csv"), &run.events)?;
    run.faults = ground_truth::read_faults(dir, hosts, wall0, &targets_by_id(targets))?;
    let freshness = 1.0 - ((stats1.stale_seconds - stats0.stale_seconds) / spec.duration).clamp(0.0, 1.0);
    let bandwidth = Bandwidth::measured(&series?, &stats0, &stats1, spec.duration);
    let samples_per_container = run.samples.values().map(Vec::len).min().unwrap_or(0);
    let result = RunResult {
        spec: spec.clone(),
        score: score::score(&run),
        view_freshness: freshness,
        view_freshness_bound: score::freshness_bound(&run.faults, spec.aggregation, spec.duration, bare.idle),
        bandwidth,
        bare_start: bare.idle,
        bare_start_loaded,
        samples_per_container,
    };
    Ok((result, run.samples))
}

fn targets_by_id(targets: &[Target]) -> BTreeMap<String, String> {
    targets.iter().map(|t| (t.id.clone(), t.name.clone())).collect()
}

async fn stats(controller: &ActorRef<ControllerMsg>) -> anyhow::Result<Stats> {
    Ok(ractor::call_t!(controller, ControllerMsg::Stats, 5000)?)
}

pub(super) async fn wait_for_fleet(controller: &ActorRef<ControllerMsg>, n: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let fleet = ractor::call_t!(controller, ControllerMsg::Fleet, 5000)?;
        if fleet.containers.values().map(Vec::len).sum::<usize>() >= n {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("the fleet did not show all {n} containers within 30 s")
}

/// One point a second: (cluster-port bytes, controller messages).
async fn bandwidth_series(
    controller: &ActorRef<ControllerMsg>,
    port: u16,
    until: Instant,
) -> anyhow::Result<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while Instant::now() < until {
        tick.tick().await;
        let bytes = crate::lab::bench::cluster_bytes(&port.to_string())?;
        out.push((bytes, stats(controller).await?.messages));
    }
    Ok(out)
}

fn write_samples(path: &PathBuf, samples: &BTreeMap<String, Vec<Sample>>) -> anyhow::Result<()> {
    let mut out = String::from("t,container,running,reachable\n");
    for (name, v) in samples {
        for s in v {
            out.push_str(&format!("{:.3},{name},{},{}\n", s.t, u8::from(s.running), u8::from(s.reachable)));
        }
    }
    std::fs::write(path, out).with_context(|| format!("write {}", path.display()))
}

/// The engine's `die`/`start` events of the run, as scored.
fn write_events(path: &Path, events: &BTreeMap<String, Vec<(f64, score::EngineEvent)>>) -> anyhow::Result<()> {
    let mut out = String::from("t,container,event\n");
    for (name, v) in events {
        for (t, ev) in v {
            let ev = match ev {
                score::EngineEvent::Die => "die",
                score::EngineEvent::Start => "start",
            };
            out.push_str(&format!("{t:.3},{name},{ev}\n"));
        }
    }
    std::fs::write(path, out).with_context(|| format!("write {}", path.display()))
}

pub(super) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
