//! Command-line options shared by the `hms` subcommands, each also read from an `HMS_*` variable,
//! and their validation into typed configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::antagonist::inject::DEFAULT_TABLE;
use crate::antagonist::plan::ConfigPatch;
use crate::config::HealMode;
use crate::config::{ControllerConfig, ManagerConfig, parse_secs, parse_threshold};
use crate::policy::{PolicyParams, RestartPolicy};
use crate::probe::WindowSpec;
use crate::runtime::Selector;

/// Log output format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Initialises logging once: `RUST_LOG` filters (default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Options of a host manager.
#[derive(Debug, Clone, Args)]
pub struct ManagerOpts {
    /// This host's name in the fleet (default: the machine's hostname).
    #[arg(long, env = "HMS_NAME")]
    pub name: Option<String>,
    /// Watch only containers with this label (KEY=VALUE).
    #[arg(long, env = "HMS_SELECT", value_parser = |s: &str| s.parse::<Selector>())]
    pub select: Option<Selector>,
    /// Packet-loss threshold in percent (0–100), until one is set at run time.
    #[arg(long, env = "HMS_THRESHOLD", default_value = "30", value_parser = parse_threshold)]
    pub threshold: u8,
    /// Consecutive probe windows over threshold before a restart.
    #[arg(long, env = "HMS_CONFIRM", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub confirm: u32,
    /// Echo requests per probe window.
    #[arg(long, env = "HMS_PROBE_COUNT", default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub probe_count: u16,
    /// Gap between echo requests, in seconds.
    #[arg(long, env = "HMS_PROBE_INTERVAL", default_value = "0.01", value_parser = parse_secs)]
    pub probe_interval: Duration,
    /// Per-request timeout, in seconds.
    #[arg(long, env = "HMS_PROBE_TIMEOUT", default_value = "0.1", value_parser = parse_secs)]
    pub probe_timeout: Duration,
    /// One probe window per period, in seconds.
    #[arg(long, env = "HMS_PROBE_PERIOD", default_value = "1", value_parser = parse_secs)]
    pub probe_period: Duration,
    /// Probe ICMP only: no response time, workload, resources nor series (the analysis Monitor).
    #[arg(long, env = "HMS_NO_MONITOR")]
    pub no_monitor: bool,
    /// Record every period's signals to DIR/signals-<host>.jsonl, for `hms analyze --replay DIR`.
    #[arg(long, env = "HMS_RECORD")]
    pub record: Option<PathBuf>,
    /// Response-time requests per probe period, each on its own connection (1-20).
    #[arg(long, env = "HMS_RESPONSE_REQUESTS", default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=20))]
    pub response_requests: u16,
    /// Stop timeout of policy-ordered restarts, in seconds.
    #[arg(long, env = "HMS_STOP_TIMEOUT", default_value = "1", value_parser = parse_secs)]
    pub stop_timeout: Duration,
    /// First restart back-off, in seconds.
    #[arg(long, env = "HMS_RESTART_BACKOFF", default_value = "0.5", value_parser = parse_secs)]
    pub restart_backoff: Duration,
    /// Longest restart back-off, in seconds.
    #[arg(long, env = "HMS_RESTART_BACKOFF_MAX", default_value = "30", value_parser = parse_secs)]
    pub restart_backoff_max: Duration,
    /// Restarts allowed within the restart window before quarantine.
    #[arg(long, env = "HMS_MAX_RESTARTS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_restarts: u32,
    /// The restart window, in seconds.
    #[arg(long, env = "HMS_RESTART_WINDOW", default_value = "60", value_parser = parse_secs)]
    pub restart_window: Duration,
    /// Quarantine length, in seconds.
    #[arg(long, env = "HMS_QUARANTINE", default_value = "300", value_parser = parse_secs)]
    pub quarantine: Duration,
    /// Full listing period, in seconds.
    #[arg(long, env = "HMS_RESYNC", default_value = "10", value_parser = parse_secs)]
    pub resync: Duration,
    /// How to heal: `hms`, `seed` (the seed's polling sweep, for experiments) or `off`.
    #[arg(long, env = "HMS_HEAL_MODE", value_enum, default_value = "hms")]
    pub heal_mode: HealMode,
    /// The nftables table owned by this process's antagonist (unique per process on a host).
    #[arg(long, env = "HMS_ANTAGONIST_TABLE", default_value = DEFAULT_TABLE, value_parser = parse_table)]
    pub antagonist_table: String,
}

/// An nftables table name: letters, digits and `_`, at most 64.
pub fn parse_table(s: &str) -> Result<String, String> {
    let ok = !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok { Ok(s.to_owned()) } else { Err(format!("expected letters, digits and _ (at most 64), got {s:?}")) }
}

impl ManagerOpts {
    /// Validates into a manager configuration.
    pub fn to_config(&self) -> Result<ManagerConfig, String> {
        let policy = RestartPolicy::try_new(PolicyParams {
            base: self.restart_backoff,
            max: self.restart_backoff_max,
            jitter: 0.2,
            max_restarts: self.max_restarts,
            window: self.restart_window,
            stable: self.restart_window / 2,
            quarantine: self.quarantine,
        })
        .map_err(|e| format!("--restart-backoff/--max-restarts: {e}"))?;
        let window = WindowSpec { count: self.probe_count, interval: self.probe_interval, timeout: self.probe_timeout };
        let name = match &self.name {
            Some(n) if !n.trim().is_empty() => n.trim().to_owned(),
            Some(_) => return Err("--name must not be empty".to_owned()),
            None => hostname(),
        };
        let mut c = ManagerConfig::new(name);
        c.select = self.select.clone();
        c.threshold = self.threshold;
        c.confirm = self.confirm;
        c.window = window;
        c.probe_period = self.probe_period;
        c.monitor = !self.no_monitor;
        c.record = self.record.clone();
        c.response.count = self.response_requests;
        c.policy = policy;
        c.stop_timeout = self.stop_timeout;
        c.resync = self.resync;
        c.antagonist.table = self.antagonist_table.clone();
        Ok(c.with_heal(self.heal_mode))
    }
}

/// The machine's hostname, or `localhost`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Options of `hms standalone`.
#[derive(Debug, Clone, Args)]
pub struct StandaloneOpts {
    /// REST listen address (loopback only, unless HMS_API_TOKEN is set).
    #[arg(long, env = "HMS_HTTP", default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// Aggregation window of the controller, in seconds, until one is set at run time.
    #[arg(long, env = "HMS_AGGREGATION", default_value = "0.5", value_parser = parse_secs)]
    pub aggregation: Duration,
    /// Directory of the durable settings (default: not persisted).
    #[arg(long, env = "HMS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Bearer token required on mutating REST requests.
    #[arg(long, env = "HMS_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// Log format.
    #[arg(long, env = "HMS_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub manager: ManagerOpts,
}

impl StandaloneOpts {
    pub fn controller_config(&self) -> ControllerConfig {
        ControllerConfig { aggregation: self.aggregation, ..ControllerConfig::default() }
    }
}

/// Cluster options shared by `hms controller` and `hms manager`.
#[derive(Debug, Clone, Args)]
pub struct ClusterOpts {
    /// Shared secret of the cluster: nodes with another cookie are refused.
    #[arg(long, env = "HMS_COOKIE", hide_env_values = true)]
    pub cookie: Option<String>,
    /// Run without a cookie (an empty one): only on a trusted, isolated network.
    #[arg(long, env = "HMS_INSECURE")]
    pub insecure: bool,
}

impl ClusterOpts {
    /// The cookie to use; refuses to go on without one unless `--insecure`.
    pub fn cookie(&self) -> Result<String, String> {
        match self.cookie.as_deref().map(str::trim) {
            Some(c) if !c.is_empty() => Ok(c.to_owned()),
            _ if self.insecure => Ok(String::new()),
            _ => Err("a cluster cookie is required: set --cookie or HMS_COOKIE (or --insecure on a trusted network)"
                .to_owned()),
        }
    }
}

/// Options of `hms controller`.
#[derive(Debug, Clone, Args)]
pub struct ControllerOpts {
    /// REST listen address (loopback only, unless HMS_API_TOKEN is set).
    #[arg(long, env = "HMS_HTTP", default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// Cluster listen address (host managers connect here).
    #[arg(long, env = "HMS_LISTEN", default_value = "127.0.0.1:7946")]
    pub listen: SocketAddr,
    /// Aggregation window, in seconds, until one is set at run time.
    #[arg(long, env = "HMS_AGGREGATION", default_value = "0.5", value_parser = parse_secs)]
    pub aggregation: Duration,
    /// Directory of the durable settings (known hosts, aggregation).
    #[arg(long, env = "HMS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Bearer token required on mutating REST requests.
    #[arg(long, env = "HMS_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// Log format.
    #[arg(long, env = "HMS_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub cluster: ClusterOpts,
}

impl ControllerOpts {
    pub fn controller_config(&self) -> ControllerConfig {
        ControllerConfig { aggregation: self.aggregation, ..ControllerConfig::default() }
    }
}

/// Options of `hms manager`.
#[derive(Debug, Clone, Args)]
pub struct ManagerNodeOpts {
    /// The controller's cluster address (HOST:PORT) to dial; without it, wait to be dialled.
    #[arg(long, env = "HMS_CONTROLLER")]
    pub controller: Option<String>,
    /// Cluster listen address of this node (the controller may dial it here).
    #[arg(long, env = "HMS_LISTEN", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Directory of the durable settings (threshold, ignore list).
    #[arg(long, env = "HMS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "HMS_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub cluster: ClusterOpts,
    /// Benchmarks only: simulate this many containers on an in-memory engine instead of Docker.
    #[arg(long, hide = true)]
    pub simulate: Option<usize>,
    #[command(flatten)]
    pub manager: ManagerOpts,
}

/// Options of `hms antagonist`: a local run without a controller.
#[derive(Debug, Clone, Args)]
pub struct AntagonistOpts {
    /// A built-in scenario: test_low_low, test_low_high, test_high_low, test_high_high.
    #[arg(long, conflicts_with = "config")]
    pub scenario: Option<String>,
    /// A configuration as JSON (the REST body: heavy, balance, loss, frequency, duration, seed,
    /// loss_scope, stop_timeout, …); unspecified fields keep their defaults.
    #[arg(long)]
    pub config: Option<String>,
    /// Attack only containers with this label (KEY=VALUE).
    #[arg(long, env = "HMS_SELECT", value_parser = |s: &str| s.parse::<Selector>())]
    pub select: Option<Selector>,
    /// Stop after this many seconds (default: until SIGINT/SIGTERM).
    #[arg(long, value_parser = parse_secs)]
    pub duration: Option<Duration>,
    /// Directory of the ground-truth log (attacks.jsonl).
    #[arg(long, env = "HMS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The host's name in the log (default: the machine's hostname).
    #[arg(long, env = "HMS_NAME")]
    pub name: Option<String>,
    /// The nftables table owned by this run.
    #[arg(long, env = "HMS_ANTAGONIST_TABLE", default_value = DEFAULT_TABLE, value_parser = parse_table)]
    pub antagonist_table: String,
    /// Log format.
    #[arg(long, env = "HMS_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

impl AntagonistOpts {
    /// The configuration patch of the run, validated (errors name the flag and the field).
    pub fn patch(&self) -> Result<ConfigPatch, String> {
        let mut p = match &self.config {
            Some(json) => serde_json::from_str::<ConfigPatch>(json).map_err(|e| format!("--config: {e}"))?,
            None => ConfigPatch::default(),
        };
        if let Some(s) = &self.scenario {
            p.scenario = Some(s.clone());
        }
        if let Some(d) = self.duration {
            p.run_time = Some(d.as_secs_f64());
        }
        p.validate().map_err(|e| format!("--scenario/--config/--duration: {e}"))?;
        Ok(p)
    }
}
