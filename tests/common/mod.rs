//! Test harness: an in-process fleet over the fake runtime and prober, a real-Docker fixture
//! that cleans up after itself, nftables packet loss, real `hms` processes, and `eventually`.
#![allow(dead_code, reason = "each test binary uses a different part of the harness")]

use std::future::Future;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use hms::actors::host::manager::HostMsg;
use hms::actors::host::probe::Monitor;
use hms::config::{ControllerConfig, ManagerConfig};
use hms::model::ContainerRecord;
use hms::node::{Node, NodeParts};
use hms::policy::{PolicyParams, RestartPolicy};
use hms::probe::Prober;
use hms::probe::fake::FakeProber;
use hms::probe::response::FakeResponder;
use hms::resources::sensors::FakeSensors;
use hms::runtime::fake::FakeRuntime;
use hms::runtime::{ContainerRuntime, Selector};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst))
}

/// How much longer than nominal tests may wait (`HMS_TEST_PATIENCE`, default 1).
pub fn patience() -> u32 {
    std::env::var("HMS_TEST_PATIENCE").ok().and_then(|v| v.parse().ok()).unwrap_or(1).max(1)
}

/// Polls `check` every 20 ms until it holds or `within` (× patience) passes; panics with `what`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within * patience();
    loop {
        if check().await {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A restart policy with short back-offs, for tests.
pub fn quick_policy(max_restarts: u32) -> RestartPolicy {
    RestartPolicy::try_new(PolicyParams {
        base: Duration::from_millis(100),
        max: Duration::from_secs(2),
        jitter: 0.2,
        max_restarts,
        window: Duration::from_secs(60),
        stable: Duration::from_secs(30),
        quarantine: Duration::from_secs(300),
    })
    .unwrap()
}

/// Manager settings for tests: the design's probe windows, short resync, quick policy.
pub fn test_manager_config(name: &str, select: Option<Selector>) -> ManagerConfig {
    let mut c = ManagerConfig::new(name);
    c.select = select;
    c.policy = quick_policy(5);
    c.resync = Duration::from_secs(2);
    c.antagonist.table = unique_table();
    c
}

/// An nftables table name unique to this process and call.
pub fn unique_table() -> String {
    unique("hms_t").replace('-', "_")
}

/// Sends a command to a manager and waits for its answer.
pub async fn command(
    manager: &ractor::ActorRef<HostMsg>,
    cmd: hms::actors::protocol::Command,
) -> hms::actors::protocol::CommandReply {
    match manager.call(|r| HostMsg::Command(cmd, r), Some(Duration::from_secs(5))).await {
        Ok(ractor::rpc::CallResult::Success(r)) => r,
        other => panic!("manager did not answer: {other:?}"),
    }
}

/// The antagonist's status through its manager.
pub async fn antagonist_status(manager: &ractor::ActorRef<HostMsg>) -> hms::actors::protocol::AntagonistStatus {
    let ok = command(manager, hms::actors::protocol::Command::AntagonistStatus).await.expect("status answers");
    ok.antagonist.expect("a status")
}

/// Every record the manager publishes.
pub async fn records(manager: &ractor::ActorRef<HostMsg>) -> Vec<ContainerRecord> {
    match manager.call(HostMsg::Records, Some(Duration::from_secs(5))).await {
        Ok(ractor::rpc::CallResult::Success(r)) => r,
        other => panic!("manager did not answer: {other:?}"),
    }
}

/// One record by container name.
pub async fn record(manager: &ractor::ActorRef<HostMsg>, name: &str) -> Option<ContainerRecord> {
    records(manager).await.into_iter().find(|r| r.name == name)
}

/// An in-process node over the fake runtime and prober.
pub struct FakeFleet {
    pub runtime: FakeRuntime,
    pub prober: FakeProber,
    pub responder: FakeResponder,
    pub sensors: FakeSensors,
    pub node: Node,
}

impl FakeFleet {
    pub async fn start(config: ManagerConfig) -> Self {
        Self::start_with(config, ControllerConfig::default(), None).await
    }

    pub async fn start_with(mut config: ManagerConfig, controller: ControllerConfig, data_dir: Option<&Path>) -> Self {
        // the fake engine's pids are made up: never let a real injector act on them
        if config.antagonist.injector.is_none() {
            config.antagonist.injector = Some(Arc::new(hms::antagonist::inject::FakeInjector::default()));
        }
        let (runtime, prober) = (FakeRuntime::new(), FakeProber::new());
        let (responder, sensors) = (FakeResponder::new(), FakeSensors::new());
        let parts = NodeParts {
            runtime: Arc::new(runtime.clone()),
            prober: Arc::new(prober.clone()),
            monitor: Monitor::fakes(responder.clone(), sensors.clone()),
            manager: config,
            controller,
        };
        let node = Node::standalone(parts, data_dir).await.expect("node starts");
        Self { runtime, prober, responder, sensors, node }
    }

    pub async fn record(&self, name: &str) -> Option<ContainerRecord> {
        record(&self.node.manager, name).await
    }

    /// The IP the fake runtime gave a container.
    pub async fn ip(&self, id: &str) -> IpAddr {
        self.runtime.inspect(id).await.unwrap().unwrap().ip.unwrap()
    }
}

/// A REST `Api` on the fleet's controller (`token`: the API token, if any), once the controller
/// has published `containers` containers.
pub async fn fleet_api(fleet: &FakeFleet, token: Option<&str>, containers: usize) -> hms::http::Api {
    let api =
        hms::http::Api::connect(fleet.node.controller.clone(), Duration::from_millis(800), token.map(str::to_owned))
            .await
            .expect("api connects");
    let probe = api.clone();
    eventually(Duration::from_secs(10), &format!("{containers} containers published"), || {
        let n = probe.snapshot().containers().count();
        async move { n == containers }
    })
    .await;
    api
}

/// A REST server over the fleet on `127.0.0.1:0` (`token`: the API token, if any), serving once
/// the controller has published `containers` containers: its address, and a sender that stops it.
pub async fn serve_fleet(
    fleet: &FakeFleet,
    token: Option<&str>,
    containers: usize,
) -> (String, tokio::sync::oneshot::Sender<()>) {
    let api = fleet_api(fleet, token, containers).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(hms::http::serve(listener, api, async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

/// Fails (never skips) when the Docker engine is not usable.
pub fn require_docker() {
    let ok = Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"]).output();
    match ok {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!("docker engine unavailable: {}", String::from_utf8_lossy(&out.stderr)),
        Err(e) => panic!("docker CLI unavailable: {e}"),
    }
}

/// Runs `docker` with args; panics with its stderr on failure.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).stdin(Stdio::null()).output().expect("docker runs");
    assert!(out.status.success(), "docker {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The live processes of container `name` whose command line holds `tag`, as `ps` lists them
/// (a zombie has no command line and is not listed). Fails when `ps` cannot run, so a missing
/// tool is never read as "nothing left".
pub fn tagged_processes(name: &str, tag: &str) -> Vec<String> {
    let ps = docker(&["exec", name, "ps", "-o", "pid,args"]);
    ps.lines().filter(|l| l.contains(tag)).map(str::to_owned).collect()
}

/// The container's state as `docker inspect` says.
pub fn docker_state(name: &str) -> String {
    docker(&["inspect", "-f", "{{.State.Status}}", name])
}

/// `docker inspect` restart counter of HMS's own restarts: the container's start time.
pub fn started_at(name: &str) -> String {
    docker(&["inspect", "-f", "{{.State.StartedAt}}", name])
}

/// A locally built test (or service) image (no registry) and the containers started from it, all
/// labelled `hms.test=<label>`. Everything is removed on drop, also when the test fails.
pub struct DockerFixture {
    pub image: String,
    pub label: String,
    containers: Vec<String>,
}

impl DockerFixture {
    pub fn new() -> Self {
        require_docker();
        let label = unique("t");
        let image = format!("hms-test:{label}");
        hms::lab::testimage::build(&image).expect("test image builds");
        Self { image, label, containers: Vec::new() }
    }

    /// The same fixture over the service image (busybox `httpd`, see `hms::lab::serviceimage`).
    pub fn service() -> Self {
        require_docker();
        let label = unique("t");
        let image = format!("hms-service:{label}");
        hms::lab::serviceimage::build_service(&image).expect("service image builds");
        Self { image, label, containers: Vec::new() }
    }

    /// The selector matching this fixture's containers.
    pub fn selector(&self) -> Selector {
        Selector { key: "hms.test".into(), value: self.label.clone() }
    }

    /// Starts a container running the default command; returns its name.
    pub fn run(&mut self, labels: &[(&str, &str)]) -> String {
        self.run_cmd(labels, &[])
    }

    /// Starts a container with extra `docker run` args before the image and a command after it.
    pub fn run_with(&mut self, labels: &[(&str, &str)], run_args: &[&str], cmd: &[&str]) -> String {
        let name = unique("hms-c");
        let mut args = vec!["run".to_owned(), "-d".into(), "--name".into(), name.clone()];
        args.push("--label".into());
        args.push(format!("hms.test={}", self.label));
        for (k, v) in labels {
            args.push("--label".into());
            args.push(format!("{k}={v}"));
        }
        args.extend(run_args.iter().map(|s| (*s).to_owned()));
        args.push(self.image.clone());
        args.extend(cmd.iter().map(|s| (*s).to_owned()));
        self.containers.push(name.clone());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        docker(&refs);
        name
    }

    fn run_cmd(&mut self, labels: &[(&str, &str)], cmd: &[&str]) -> String {
        self.run_with(labels, &[], cmd)
    }

    /// The container's IPv4 address on the default bridge.
    pub fn ip(&self, name: &str) -> IpAddr {
        docker(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", name]).parse().expect("container has an ip")
    }
}

impl Drop for DockerFixture {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = Command::new("docker").args(["rm", "-f", c]).output();
        }
        hms::lab::testimage::remove(&self.image);
    }
}

/// A standalone node on the real engine, watching one fixture's containers.
pub async fn docker_node(fixture: &DockerFixture, config: Option<ManagerConfig>) -> Node {
    let runtime =
        hms::runtime::docker::DockerRuntime::connect(Duration::from_secs(10)).await.expect("docker reachable");
    let prober = hms::probe::icmp::IcmpProber::new().expect("raw icmp permitted (tests run as root)");
    let config = config.unwrap_or_else(|| test_manager_config("local", Some(fixture.selector())));
    let parts = NodeParts {
        runtime: Arc::new(runtime) as Arc<dyn ContainerRuntime>,
        prober: Arc::new(prober) as Arc<dyn Prober>,
        monitor: Monitor::real().expect("response-time engine starts"),
        manager: config,
        controller: ControllerConfig::default(),
    };
    Node::standalone(parts, None).await.expect("node starts")
}

/// Packet loss towards one address with nftables, in a table of its own; removed on drop.
pub struct Loss {
    injector: hms::antagonist::loss::NftLossInjector,
}

impl Loss {
    pub async fn inject(ip: IpAddr, percent: u8) -> Self {
        use hms::antagonist::loss::LossInjector;
        let injector = hms::antagonist::loss::NftLossInjector::new(&unique("hms_test").replace('-', "_"));
        injector.inject(ip, percent).await.expect("nft accepts the loss rule");
        Self { injector }
    }
}

impl Drop for Loss {
    fn drop(&mut self) {
        let script = hms::antagonist::loss::NftLossInjector::delete_script(self.injector.table());
        let child = Command::new("nft").args(["-f", "-"]).stdin(Stdio::piped()).spawn();
        if let Ok(mut child) = child {
            if let Some(mut stdin) = child.stdin.take() {
                use std::io::Write;
                let _ = stdin.write_all(script.as_bytes());
            }
            let _ = child.wait();
        }
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One HTTP/1.1 request over a fresh connection: `(status, body)`.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let body = body.unwrap_or("");
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(rest) } else { rest.to_owned() };
    Ok((status, body))
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

/// A real `hms` process; killed on drop if still running.
pub struct HmsProcess {
    pub child: std::process::Child,
    pub log: std::path::PathBuf,
}

impl HmsProcess {
    /// Starts `hms` with the given arguments, logging to a file in `log_dir`.
    pub fn start(args: &[&str], log_dir: &Path, envs: &[(&str, &str)]) -> Self {
        let log = log_dir.join(format!("{}.log", unique("hms")));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_hms"))
            .args(args)
            .envs(envs.iter().copied())
            .env_remove("HMS_API_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("hms starts");
        Self { child, log }
    }

    /// Sends a signal with `kill`.
    pub fn signal(&self, sig: &str) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill").args([&format!("-{sig}"), &pid]).status().map(|s| s.success()).unwrap_or(false);
        assert!(ok, "kill -{sig} {pid} failed");
    }

    /// Waits for exit up to `within`; returns the exit status.
    pub fn wait(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + within * patience();
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            #[allow(clippy::disallowed_methods, reason = "a synchronous poll of a child process, outside any runtime")]
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for HmsProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One request through the REST routes (warp's test client, no socket): status and JSON body
/// (a string when the body is not JSON).
pub async fn call(api: &hms::http::Api, method: &str, path: &str, body: Option<&str>) -> (u16, serde_json::Value) {
    let mut req = warp::test::request().method(method).path(path);
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    let res = req.reply(&hms::http::routes(api.clone())).await;
    let text = String::from_utf8_lossy(res.body()).into_owned();
    (res.status().as_u16(), serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}

/// Requests a second of the response-time medians the fault tests take: about 5, but not a
/// divisor of the CFS period's 10 a second. An open loop at exactly 5 a second sends every request
/// at the same phase of the 100 ms period, so under a quota all of them met the throttled part or
/// none did, depending on the run (a `cpu_starve` measured ×1.1 in one run and ×18 in the next);
/// at 4.7 each request lands 12.8 ms later in the period than the one before, and a median covers
/// every phase.
pub const RATE: f64 = 4.7;

/// The median response time (ms) of `url` at `rate` requests a second for `secs` seconds, sent open
/// loop by `hms load`'s generator.
pub async fn median_ms(url: &str, rate: f64, secs: f64) -> f64 {
    let spec = hms::load::generator::LoadSpec {
        targets: vec![url.parse().unwrap()],
        schedule: hms::load::schedule::Schedule::Constant(rate),
        duration: Duration::from_secs_f64(secs),
        timeout: Duration::from_secs(5),
        max_in_flight: 100,
    };
    let s = hms::load::generator::spawn(spec, |_| ()).unwrap().finished().await;
    s.latency.expect("the service answers").p50_ms
}

/// Records an executor reported, newest last.
pub type Reported = Arc<std::sync::Mutex<Vec<hms::antagonist::truth::AttackRecord>>>;

/// An antagonist executor on `runtime` (default configuration, its own nft table, its undo
/// journal in `dir`) over `peers`, and what it reports.
pub fn executor(
    runtime: Arc<dyn ContainerRuntime>,
    sensors: Option<Arc<dyn hms::resources::sensors::Sensors>>,
    dir: &Path,
    peers: Vec<hms::antagonist::exec::Target>,
) -> (Arc<hms::antagonist::exec::Executor>, Reported) {
    let records: Reported = Arc::default();
    let sink = records.clone();
    let exec = hms::antagonist::exec::Executor {
        host: "local".into(),
        runtime,
        injector: hms::antagonist::inject::SystemInjector::detect(&unique_table()),
        config: hms::antagonist::config::AntagonistConfig::default(),
        active: hms::antagonist::exec::Active::default(),
        report: Box::new(move |r| sink.lock().unwrap().push(r)),
        moves: tokio::sync::broadcast::channel(16).0,
        sensors,
        journal: hms::antagonist::faults::UndoJournal::new(Some(dir)),
        peers: Arc::new(std::sync::Mutex::new(peers)),
        turn: Arc::default(),
    };
    (Arc::new(exec), records)
}

/// A simulated host's CPU budget, removed when dropped. Declare it before the fixture whose
/// containers run under it: it is dropped after them (the engine clears their groups a moment
/// after, hence the retries).
pub struct BudgetGuard(pub hms::resources::budget::Budget);

impl Drop for BudgetGuard {
    fn drop(&mut self) {
        for _ in 0..50 {
            if self.0.remove().is_ok() {
                return;
            }
            #[allow(clippy::disallowed_methods, reason = "a test's drop, waiting for the engine's cleanup")]
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("budget {} left behind", self.0.cgroup_parent());
    }
}

/// A budget of `cpus` for a new simulated host (a unique name, `vm…`).
pub fn budget(cpus: f64) -> BudgetGuard {
    let host = unique("vm").replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "-");
    BudgetGuard(
        hms::resources::budget::Budget::create("/sys/fs/cgroup", &host, cpus).expect("cgroup files writable as root"),
    )
}

/// The simulated host's name of a budget (`hms-NAME` → `NAME`).
pub fn budget_host(b: &BudgetGuard) -> String {
    b.0.cgroup_parent().trim_start_matches('/').trim_start_matches(hms::resources::budget::PREFIX).to_owned()
}
