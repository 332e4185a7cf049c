//! `hms experiment --analysis`: detection and identification measured on real faults.
//!
//! Simulated hosts share the local engine, each a cgroup budget (`resources::budget`) with
//! service containers under it and its own `hms manager` process recording its signals
//! (`--record`). Two kinds of host alternate:
//!
//! - **limited** hosts (even numbers): a budget of [`LIMITED_BUDGET`] CPUs that one container's
//!   own limit ([`CONTAINER_CPUS`]) cannot fill, so a fault inside a container stays its own —
//!   `cpu_hog`, `cpu_starve`, `dependency_slow`, `load_surge`;
//! - **shared** hosts (odd numbers): a budget of [`SHARED_BUDGET`] CPUs and containers with no
//!   CPU limit of their own, so a sibling or the host can starve them — `sibling_hog`,
//!   `node_hog`, `memory_leak`.
//!
//! Each container of a shared host depends on the one of the limited host before it
//! (`hms.depends_on` and the service image's `DEPENDS`), across hosts. `hms load` drives every
//! service with a periodic rate between [`LOW_RATE`] and [`HIGH_RATE`] requests a second. After
//! a fault-free warm-up the antagonists attack for `--duration` seconds, one simulated host at
//! a time in rounds of [`ROUND_SECS`] (they share the machine's cores: a hog on one would slow
//! the others for real, a cross-talk no fleet of real hosts has); a fault-free tail lets the
//! last episodes end. Both methods are then replayed on the recording and scored against
//! the verified ground truth (`lab::analyze`), into `OUT/analysis.md`.
//!
//! Everything created — containers, the image tag, the budgets — is removed at the end, on
//! error and on a signal.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use super::ExperimentOpts;
use super::procs::Managers;
use crate::analysis::detect::{AnalysisSettings, Method};
use crate::antagonist::config::{ConfigPatch, FaultKind};
use crate::cluster::ControllerNode;
use crate::config::ControllerConfig;
use crate::lab::analyze;
use crate::lab::serviceimage::{self, DEPENDS_ENV, SERVICE_PORT, WORK_PATH};
use crate::load::generator::{self, LoadSpec, Target};
use crate::load::schedule::Schedule;
use crate::resources::budget::Budget;

/// CPUs of a limited host's budget, and each of its containers' own limit.
pub const LIMITED_BUDGET: f64 = 0.6;
pub const CONTAINER_CPUS: &str = "0.2";
/// CPUs of a shared host's budget.
pub const SHARED_BUDGET: f64 = 0.3;
/// Every container's memory limit (a leak needs one).
const MEMORY: &str = "48m";
/// The workload per service: a triangle between these rates (not 5: see docs/antagonist.md).
pub const LOW_RATE: f64 = 1.7;
pub const HIGH_RATE: f64 = 4.7;
/// Loop iterations a request costs (~6.8 ms of CPU: more than a starved container's 5 ms of
/// quota a CFS period, so a `cpu_starve` is felt; see `lab::serviceimage`).
pub const WORK: &str = "WORK=2000";
const LOAD_PERIOD: Duration = Duration::from_secs(240);
/// Fault-free seconds before the attacks — one whole cycle of the workload, so that the
/// detectors' baselines have seen every rate before they judge — and after them.
const WARM_UP: Duration = LOAD_PERIOD;
const TAIL: Duration = Duration::from_secs(30);
/// Mean fault duration, and the mean quiet time after one on a host (s).
const FAULT_SECS: f64 = 12.0;
const QUIET_SECS: f64 = 13.0;
/// Seconds of attacks in `--short` mode (CI: structure, not scores).
pub const SHORT_ATTACK_SECS: f64 = 30.0;
/// Mean seconds one simulated host is attacked before the next one's turn (a host's round is
/// in proportion to its number of kinds).
const ROUND_SECS: f64 = 120.0;
/// Shortest fault (s): shorter ones are over before a confirmation over periods sees them and
/// are not scored (`analysis::score::MIN_EPISODE`).
const MIN_FAULT_SECS: f64 = 8.0;

/// Kinds of a limited and a shared host (each kind on one kind of host only, so that rounds
/// of a length in proportion to their count give every kind about as many episodes).
const LIMITED_KINDS: [FaultKind; 4] =
    [FaultKind::CpuHog, FaultKind::CpuStarve, FaultKind::DependencySlow, FaultKind::LoadSurge];
/// (no `load_surge` on a shared host: its users would starve the siblings, a sibling fault for
/// them that the ground truth, which names only the surged container, does not record)
const SHARED_KINDS: [FaultKind; 3] = [FaultKind::SiblingHog, FaultKind::NodeHog, FaultKind::MemoryLeak];

/// What one run made, removed on drop.
struct Setup {
    image: String,
    containers: Vec<String>,
    budgets: Vec<Budget>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        for name in self.containers.drain(..) {
            let _ = docker(&["rm", "-f", &name]);
        }
        for b in self.budgets.drain(..) {
            if let Err(e) = b.remove() {
                tracing::warn!(error = %e, "cannot remove a simulated host's budget");
            }
        }
        serviceimage::remove(&self.image);
    }
}

fn docker(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("docker").args(args).stdin(Stdio::null()).output().context("run the docker CLI")?;
    if !out.status.success() {
        bail!("docker {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// One service container of the run.
struct Service {
    name: String,
    ip: String,
}

/// The seconds of attacks of a run.
pub fn attack_secs(opts: &ExperimentOpts) -> f64 {
    if opts.short { SHORT_ATTACK_SECS } else { opts.duration }
}

/// Checks the options the analysis experiment reads.
pub fn validate(opts: &ExperimentOpts) -> anyhow::Result<()> {
    let secs = attack_secs(opts);
    if !(secs.is_finite() && (10.0..=4.0 * 3600.0).contains(&secs)) {
        bail!("--duration must be within [10, 14400] seconds with --analysis, got {secs}");
    }
    if !(2..=8).contains(&opts.managers) || !(2..=6).contains(&opts.containers) {
        bail!("--analysis needs --managers 2–8 (simulated hosts) and --containers 2–6 (services per host)");
    }
    Ok(())
}

/// Runs the analysis experiment and writes `OUT/analysis.md`.
pub async fn run(opts: &ExperimentOpts) -> anyhow::Result<()> {
    validate(opts)?;
    let out = &opts.out;
    let signals = out.join("signals");
    if signals.exists() {
        std::fs::remove_dir_all(&signals).with_context(|| format!("clear {}", signals.display()))?;
    }
    std::fs::create_dir_all(&signals).with_context(|| format!("create {}", signals.display()))?;
    let run_id = format!("a{}", std::process::id());
    let mut setup = Setup { image: format!("hms-service:{run_id}"), containers: Vec::new(), budgets: Vec::new() };
    serviceimage::build_service(&setup.image).map_err(anyhow::Error::msg)?;
    let hosts = create_fleet(&mut setup, opts, &run_id)?;

    let cookie = format!("exp-{}", rand::random::<u64>());
    let listen: std::net::SocketAddr = format!("127.0.0.1:{}", super::run::free_port()?).parse()?;
    let node = ControllerNode::start(ControllerConfig::default(), None, listen, cookie.clone()).await?;
    let mut managers = Managers::default();
    let res = async {
        spawn_managers(&mut managers, &hosts, &run_id, &listen, &cookie, out, &signals)?;
        let total = hosts.iter().map(|(_, s)| s.len()).sum();
        super::run::wait_for_fleet(&node.controller, total).await?;
        tokio::select! {
            r = drive(opts, &node.controller, &hosts) => r,
            () = crate::shutdown::signal() => Err(anyhow::anyhow!("interrupted by a signal")),
        }
    }
    .await;
    managers.stop(Duration::from_secs(10)).await;
    node.stop().await;
    drop(setup);
    res?;
    for (h, _) in &hosts {
        let from = out.join("data").join(h).join(crate::antagonist::truth::FILE);
        if from.exists() {
            std::fs::copy(&from, signals.join(format!("attacks-{h}.jsonl")))?;
        }
    }
    let methods = [Method::Hms, Method::Seed];
    let evals = analyze::evaluate(&signals, &methods, AnalysisSettings::default())?;
    let (episodes, unverified) = analyze::read_episodes(&signals)?;
    let report = format!(
        "# Analysis experiment\n\n{} simulated hosts × {} services, {} s of attacks (seed {}), {} verified episodes ({unverified} not verified)\n\n{}",
        hosts.len(),
        opts.containers,
        attack_secs(opts),
        opts.seed,
        episodes.len(),
        analyze::report(&evals)
    );
    std::fs::write(out.join("analysis.md"), &report)?;
    print!("{report}");
    Ok(())
}

/// Budgets and services of every simulated host: `(host, services)`.
fn create_fleet(setup: &mut Setup, opts: &ExperimentOpts, run_id: &str) -> anyhow::Result<Vec<(String, Vec<Service>)>> {
    let probe = format!("hms.probe=http://:{SERVICE_PORT}{WORK_PATH}");
    let mut hosts: Vec<(String, Vec<Service>)> = Vec::new();
    for h in 0..opts.managers {
        let host = format!("{run_id}-vm{h}");
        let limited = h % 2 == 0;
        let budget = Budget::create("/sys/fs/cgroup", &host, if limited { LIMITED_BUDGET } else { SHARED_BUDGET })?;
        let parent = budget.cgroup_parent();
        setup.budgets.push(budget);
        let mut services = Vec::new();
        for i in 0..opts.containers {
            let name = format!("hms-{host}-c{i}");
            let key = format!("hms.antagonist.key=vm{h}-c{i}");
            let host_label = format!("hms.host={host}");
            let run_label = format!("hms.exp={run_id}");
            let mut args =
                vec!["run", "-d", "--name", &name, "--cgroup-parent", &parent, "--memory", MEMORY, "--env", WORK];
            args.extend(["--label", &probe, "--label", &key, "--label", &host_label, "--label", &run_label]);
            if limited {
                args.extend(["--cpus", CONTAINER_CPUS]);
            }
            // each service of a shared host calls the one of the limited host before it
            let dependency = (!limited).then(|| hosts[h - 1].1.get(i)).flatten();
            let (dep_label, dep_env);
            if let Some(d) = dependency {
                dep_label = format!("hms.depends_on={}", d.name);
                dep_env = format!("{DEPENDS_ENV}=http://{}:{SERVICE_PORT}{WORK_PATH}", d.ip);
                args.extend(["--label", &dep_label, "--env", &dep_env]);
            }
            let image = setup.image.clone();
            args.push(&image);
            setup.containers.push(name.clone());
            docker(&args)?;
            let ip = docker(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", &name])?;
            services.push(Service { name, ip });
        }
        hosts.push((host, services));
    }
    Ok(hosts)
}

fn spawn_managers(
    m: &mut Managers,
    hosts: &[(String, Vec<Service>)],
    run_id: &str,
    controller: &std::net::SocketAddr,
    cookie: &str,
    out: &Path,
    signals: &Path,
) -> anyhow::Result<()> {
    let controller = controller.to_string();
    let record = signals.to_string_lossy().into_owned();
    std::fs::create_dir_all(out.join("logs"))?;
    for (i, (host, _)) in hosts.iter().enumerate() {
        let data: PathBuf = out.join("data").join(host);
        if data.exists() {
            std::fs::remove_dir_all(&data)?;
        }
        std::fs::create_dir_all(&data)?;
        let data = data.to_string_lossy().into_owned();
        let select = format!("hms.host={host}");
        let table = format!("hms_{run_id}_vm{i}");
        let args = [
            "--name",
            host.as_str(),
            "--controller",
            &controller,
            "--select",
            &select,
            "--data-dir",
            &data,
            "--record",
            &record,
            "--antagonist-table",
            &table,
        ];
        m.spawn(&args, cookie, &out.join("logs").join(format!("{host}.log")))?;
    }
    Ok(())
}

/// The workload, the warm-up, the attacks and the tail.
async fn drive(
    opts: &ExperimentOpts,
    controller: &ractor::ActorRef<crate::actors::controller::ControllerMsg>,
    hosts: &[(String, Vec<Service>)],
) -> anyhow::Result<()> {
    let attack = attack_secs(opts);
    let targets = hosts
        .iter()
        .flat_map(|(_, s)| s)
        .map(|s| format!("http://{}:{SERVICE_PORT}{WORK_PATH}", s.ip).parse::<Target>())
        .collect::<Result<Vec<_>, _>>()?;
    let (warm_up, tail) = if opts.short { (Duration::from_secs(30), Duration::from_secs(10)) } else { (WARM_UP, TAIL) };
    let spec = LoadSpec {
        targets,
        schedule: Schedule::Periodic { low: LOW_RATE, high: HIGH_RATE, period: LOAD_PERIOD, levels: 4 },
        duration: warm_up + Duration::from_secs_f64(attack) + tail + Duration::from_secs(10),
        timeout: Duration::from_secs(5),
        max_in_flight: 512,
    };
    spec.validate().map_err(anyhow::Error::msg)?;
    let load = generator::spawn(spec, |_| {})?;
    tokio::time::sleep(warm_up).await;
    // one simulated host attacked at a time, in rounds: they share the machine's two cores, so
    // a hog on one would slow the others for real (cross-talk no real fleet has); within a
    // round one attack at a time (`exclusive`) and the next one queued: each container
    // attempts every (containers × (fault + quiet) / 2) seconds on average
    let frequency = opts.containers as f64 * (FAULT_SECS + QUIET_SECS) / 2.0;
    let names: Vec<String> = hosts.iter().map(|(h, _)| h.clone()).collect();
    let mut left = attack;
    for (round, host) in (0u64..).zip(names.iter().enumerate().cycle()) {
        // not `<= 0.0`: the rounds' float subtraction leaves residues like 5e-13 s
        if left < 1.0 {
            break;
        }
        let (i, host) = host;
        let kinds = if i % 2 == 0 { LIMITED_KINDS.to_vec() } else { SHARED_KINDS.to_vec() };
        let mean_kinds = (LIMITED_KINDS.len() + SHARED_KINDS.len()) as f64 / 2.0;
        let secs = left.min(ROUND_SECS * kinds.len() as f64 / mean_kinds);
        left -= secs;
        let patch = ConfigPatch {
            heavy: Some(100.0),
            frequency: Some(frequency),
            duration: Some(FAULT_SECS),
            seed: Some(opts.seed.wrapping_mul(1000).wrapping_add(round)),
            run_time: Some(secs),
            kinds: Some(kinds),
            exclusive: Some(true),
            min_duration: Some(MIN_FAULT_SECS),
            ..ConfigPatch::default()
        };
        super::control::start_with(controller, host, patch).await?;
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        // undoes an attack still in progress
        super::control::stop_antagonists(controller, std::slice::from_ref(host)).await?;
    }
    tokio::time::sleep(tail).await;
    load.stop();
    let _summary = load.finished().await;
    Ok(())
}
