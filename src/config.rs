//! Typed, validated configuration of the manager and the controller.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::antagonist::inject::{DEFAULT_TABLE, Injector};

use crate::policy::RestartPolicy;
use crate::probe::WindowSpec;
use crate::runtime::Selector;

/// How a manager heals: HMS's own way, the seed's way (the experiments' baseline), or not at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealMode {
    /// Engine events, probe windows, restart policy with back-off and quarantine.
    #[default]
    Hms,
    /// Seed-faithful: a listing sweep every 0.2 s instead of events, a restart on the first window
    /// over threshold, stop-then-start with a 10 s grace, no back-off, full content on every pull.
    Seed,
    /// Watch and report, never restart (what the antagonist alone does to availability).
    Off,
}

/// Everything a host manager needs to know, validated at start-up.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// The host's name in the fleet.
    pub name: String,
    /// Only containers with this label are in scope.
    pub select: Option<Selector>,
    /// Default packet-loss threshold (percent), until one is stored.
    pub threshold: u8,
    /// Consecutive windows over threshold before a restart.
    pub confirm: u32,
    pub window: WindowSpec,
    /// One probe window per period.
    pub probe_period: Duration,
    pub policy: RestartPolicy,
    /// Stop timeout of policy-ordered restarts (kill-fast).
    pub stop_timeout: Duration,
    /// Full listing every period, besides events.
    pub resync: Duration,
    pub heartbeat: Duration,
    pub heal: HealMode,
    pub antagonist: AntagonistSetup,
    /// Measure response time, workload and resources besides ICMP (the analysis Monitor); off,
    /// a manager probes as before it existed.
    pub monitor: bool,
    /// The response-time window: requests per period, their gap and timeout.
    pub response: crate::probe::response::ResponseSpec,
    /// Detection and identification on the Monitor's signals (only with `monitor`).
    pub analysis: crate::analysis::detect::AnalysisSettings,
    /// Append every period's signals to `<dir>/signals-<host>.jsonl` (`hms analyze --replay`).
    pub record: Option<std::path::PathBuf>,
}

/// How the host's antagonist injects faults and where it logs them.
#[derive(Clone)]
pub struct AntagonistSetup {
    /// The nftables table owned by this process's antagonist (one per instance).
    pub table: String,
    /// Data dir of the ground-truth log (`None`: kept in memory only).
    pub log_dir: Option<PathBuf>,
    /// The injector to use (`None`: netem or nftables, detected).
    pub injector: Option<Arc<dyn Injector>>,
}

impl Default for AntagonistSetup {
    fn default() -> Self {
        Self { table: DEFAULT_TABLE.to_owned(), log_dir: None, injector: None }
    }
}

impl std::fmt::Debug for AntagonistSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AntagonistSetup")
            .field("table", &self.table)
            .field("log_dir", &self.log_dir)
            .field("injector", &self.injector.as_ref().map(|i| i.method()))
            .finish()
    }
}

impl ManagerConfig {
    /// Defaults of the design, for a host named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            select: None,
            threshold: 30,
            confirm: 2,
            window: WindowSpec::default(),
            probe_period: Duration::from_secs(1),
            policy: RestartPolicy::default(),
            stop_timeout: Duration::from_secs(1),
            resync: Duration::from_secs(10),
            heartbeat: Duration::from_secs(1),
            heal: HealMode::Hms,
            antagonist: AntagonistSetup::default(),
            monitor: true,
            response: crate::probe::response::ResponseSpec::default(),
            analysis: crate::analysis::detect::AnalysisSettings::default(),
            record: None,
        }
    }

    /// Switches to a healing mode, with the settings that mode implies.
    pub fn with_heal(mut self, heal: HealMode) -> Self {
        self.heal = heal;
        if heal == HealMode::Seed {
            self.resync = Duration::from_millis(200);
            self.confirm = 1;
            self.stop_timeout = Duration::from_secs(10);
            self.policy = RestartPolicy::unlimited();
        }
        self
    }
}

/// Everything the controller needs to know.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Default aggregation window, until one is stored.
    pub aggregation: Duration,
    /// Expected heartbeat period of managers.
    pub heartbeat: Duration,
    /// Missed heartbeats before a host is offline.
    pub missed_heartbeats: u32,
    /// How long a pull or a command may take.
    pub call_timeout: Duration,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            aggregation: Duration::from_millis(500),
            heartbeat: Duration::from_secs(1),
            missed_heartbeats: 3,
            call_timeout: Duration::from_secs(3),
        }
    }
}

/// Parses a threshold given as text: an integer 0–100.
pub fn parse_threshold(s: &str) -> Result<u8, String> {
    s.parse::<crate::model::Threshold>().map(u8::from).map_err(|e| e.to_string())
}

/// Parses a positive duration in (fractional) seconds.
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 86_400.0 => Ok(Duration::from_secs_f64(v)),
        _ => Err(format!("expected a positive number of seconds (at most 86400), got {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_parsing_rejects_out_of_range_and_garbage() {
        assert_eq!(parse_threshold("30"), Ok(30));
        assert_eq!(parse_threshold("100"), Ok(100));
        assert!(parse_threshold("101").is_err());
        assert!(parse_threshold("-1").is_err());
        assert!(parse_threshold("x").is_err());
    }

    #[test]
    fn seconds_parsing_accepts_fractions_only_when_positive() {
        assert_eq!(parse_secs("0.1"), Ok(Duration::from_millis(100)));
        assert!(parse_secs("0").is_err());
        assert!(parse_secs("NaN").is_err());
        assert!(parse_secs("-2").is_err());
    }
}
