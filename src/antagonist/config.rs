//! The antagonist's configuration: the validated [`AntagonistConfig`], the partial
//! [`ConfigPatch`] that REST, the CLI and the wire carry, and the seed's built-in scenarios. The
//! planner that draws from it is [`super::plan`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Longest gap or loss duration the planner yields (one day).
pub const MAX_SECS: f64 = 86_400.0;
/// Shortest accepted `frequency` and `duration` (1 ms).
pub const MIN_SECS: f64 = 0.001;
/// Longest accepted `stop_timeout`: the Docker client gives up 30 s after the manager's own.
pub const MAX_STOP_TIMEOUT: f64 = 20.0;

/// Where a loss attack drops packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LossScope {
    /// On the host side, for the container's address: survives a restart of the container.
    Link,
    /// Inside the container's network namespace: a restart clears it.
    Container,
}

/// What an attack does. Without `kinds` in the configuration an attack is the seed's: a
/// `shutdown` with probability `balance`, else a `loss`; with `kinds`, each attack draws one of
/// them with equal probability (list a kind twice to weigh it double).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// `docker stop` (or kill) of the container.
    Shutdown,
    /// Packet loss of the container (`loss`, `loss_scope`).
    Loss,
    /// A busy loop inside the container (`docker exec`), bounded by the container's CPU limit
    /// (a container without one is not attacked) and in time.
    CpuHog,
    /// Memory growing inside the container (a file in its `/dev/shm`, charged to its memory
    /// cgroup) toward 90 % of its limit (a container without a limit is not attacked).
    MemoryLeak,
    /// The container's CPU limit cut to a quarter (`docker update --cpus`), restored after.
    CpuStarve,
    /// A busy loop in a sibling: another target of the same host sharing its CPU budget (the
    /// same cgroup parent, a simulated host's), which bounds the hog; the container attacked is
    /// the victim, the sibling the culprit.
    SiblingHog,
    /// Processes of the host itself (not of a container) eating the budget of the container's
    /// simulated host (its cgroup parent's quota), one busy loop per CPU in a group of their own
    /// under it; every container of that host is affected, the host is the culprit. A container
    /// without a budget is not attacked.
    NodeHog,
    /// The container, a dependency of containers on other simulated hosts (their
    /// `hms.depends_on` or Compose `depends_on` names it), slowed by a busy loop inside it as for
    /// `cpu_hog`; the dependents are the affected, the container the culprit. A container no
    /// other host's container depends on is not attacked.
    DependencySlow,
    /// The container's workload ×5 (`hms load` at four times its measured rate against its
    /// `hms.probe` path): more users, not a fault.
    LoadSurge,
}

impl FaultKind {
    pub const ALL: [FaultKind; 9] = [
        FaultKind::Shutdown,
        FaultKind::Loss,
        FaultKind::CpuHog,
        FaultKind::MemoryLeak,
        FaultKind::CpuStarve,
        FaultKind::SiblingHog,
        FaultKind::NodeHog,
        FaultKind::DependencySlow,
        FaultKind::LoadSurge,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Shutdown => "shutdown",
            FaultKind::Loss => "loss",
            FaultKind::CpuHog => "cpu_hog",
            FaultKind::MemoryLeak => "memory_leak",
            FaultKind::CpuStarve => "cpu_starve",
            FaultKind::SiblingHog => "sibling_hog",
            FaultKind::NodeHog => "node_hog",
            FaultKind::DependencySlow => "dependency_slow",
            FaultKind::LoadSurge => "load_surge",
        }
    }
}

/// Most entries of `kinds`.
pub const MAX_KINDS: usize = 64;

/// A validated antagonist configuration (seconds are real numbers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AntagonistConfig {
    /// Probability (%) that an attempt attacks.
    pub heavy: f64,
    /// Probability (%) that an attack is a shutdown rather than packet loss.
    pub balance: f64,
    /// Mean packet loss (%) of a loss attack.
    pub loss: f64,
    /// Standard deviation (percentage points) of the loss around `loss`.
    pub loss_stddev: f64,
    /// Mean gap between attempts on one target, in seconds.
    pub frequency: f64,
    /// Mean duration of a loss attack, in seconds.
    pub duration: f64,
    /// Seed of every target's random stream.
    pub seed: u64,
    pub loss_scope: LossScope,
    /// Grace of `docker stop` in a shutdown attack, in seconds (0: `docker kill`).
    pub stop_timeout: f64,
    /// Stop by itself after this many seconds (`None`: run until stopped).
    pub run_time: Option<f64>,
    /// The kinds each attack draws from (`None`: the seed's shutdown or loss by `balance`).
    pub kinds: Option<Vec<FaultKind>>,
    /// At most one attack in progress on the host: a target's attack waits for the one in
    /// progress to end and 10 s of quiet after it (clean ground truth for the analysis
    /// experiment; the seed's is `false`).
    #[serde(default)]
    pub exclusive: bool,
    /// Shortest duration of a timed attack (s; a shorter draw is raised to it, 0: none): a
    /// fault of a second or two is over before any confirmation can see it.
    #[serde(default)]
    pub min_duration: f64,
}

impl Default for AntagonistConfig {
    /// The seed's `test_low_low`, a fixed seed, link scope and the seed's 10 s stop grace.
    fn default() -> Self {
        let s = &SCENARIOS[0];
        Self {
            heavy: s.heavy,
            balance: s.balance,
            loss: s.loss,
            loss_stddev: 10.0,
            frequency: s.frequency,
            duration: s.duration,
            seed: 0,
            loss_scope: LossScope::Link,
            stop_timeout: 10.0,
            run_time: None,
            kinds: None,
            exclusive: false,
            min_duration: 0.0,
        }
    }
}

/// A partial configuration: `None` keeps the current value. `scenario` (alias `name`) first
/// applies a built-in scenario, then the other fields override it. `run_time: 0` removes the bound.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigPatch {
    #[serde(alias = "name")]
    pub scenario: Option<String>,
    pub heavy: Option<f64>,
    pub balance: Option<f64>,
    pub loss: Option<f64>,
    pub loss_stddev: Option<f64>,
    pub frequency: Option<f64>,
    pub duration: Option<f64>,
    pub seed: Option<u64>,
    pub loss_scope: Option<LossScope>,
    pub stop_timeout: Option<f64>,
    pub run_time: Option<f64>,
    /// `[]` goes back to the seed's shutdown or loss.
    pub kinds: Option<Vec<FaultKind>>,
    pub exclusive: Option<bool>,
    pub min_duration: Option<f64>,
}

/// An invalid configuration value, naming its field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ConfigError {
    pub field: &'static str,
    pub reason: String,
}

/// One of the seed's scenarios ("Antagonist test results").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scenario {
    pub name: &'static str,
    pub loss: f64,
    pub balance: f64,
    pub heavy: f64,
    pub frequency: f64,
    pub duration: f64,
}

/// The four built-in scenarios.
pub const SCENARIOS: [Scenario; 4] = [
    Scenario { name: "test_low_low", loss: 80.0, balance: 70.0, heavy: 25.0, frequency: 1.0, duration: 5.0 },
    Scenario { name: "test_low_high", loss: 80.0, balance: 70.0, heavy: 25.0, frequency: 0.1, duration: 5.0 },
    Scenario { name: "test_high_low", loss: 80.0, balance: 70.0, heavy: 90.0, frequency: 1.0, duration: 20.0 },
    Scenario { name: "test_high_high", loss: 80.0, balance: 70.0, heavy: 90.0, frequency: 0.1, duration: 20.0 },
];

/// A built-in scenario by name.
pub fn scenario(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.name == name)
}

fn check(field: &'static str, v: f64, ok: bool, range: &str) -> Result<(), ConfigError> {
    if v.is_finite() && ok { Ok(()) } else { Err(ConfigError { field, reason: format!("must be {range}, got {v}") }) }
}

fn percent(field: &'static str, v: f64) -> Result<(), ConfigError> {
    check(field, v, (0.0..=100.0).contains(&v), "within 0..=100")
}

fn secs(field: &'static str, v: f64) -> Result<(), ConfigError> {
    check(field, v, (MIN_SECS..=MAX_SECS).contains(&v), "a number of seconds within 0.001..=86400")
}

impl AntagonistConfig {
    /// Checks every field; the error names the first invalid one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        percent("heavy", self.heavy)?;
        percent("balance", self.balance)?;
        percent("loss", self.loss)?;
        check("loss_stddev", self.loss_stddev, (0.0..=100.0).contains(&self.loss_stddev), "within 0..=100")?;
        secs("frequency", self.frequency)?;
        secs("duration", self.duration)?;
        let md = self.min_duration;
        check("min_duration", md, (0.0..=MAX_SECS).contains(&md), "a number of seconds within 0..=86400")?;
        let st = self.stop_timeout;
        check("stop_timeout", st, (0.0..=MAX_STOP_TIMEOUT).contains(&st), "a number of seconds within 0..=20")?;
        if let Some(rt) = self.run_time {
            secs("run_time", rt)?;
        }
        if let Some(kinds) = &self.kinds
            && (kinds.is_empty() || kinds.len() > MAX_KINDS)
        {
            let reason = format!("must list 1 to {MAX_KINDS} kinds, got {}", kinds.len());
            return Err(ConfigError { field: "kinds", reason });
        }
        Ok(())
    }

    /// A built-in scenario over this configuration (seed, scope, stop grace and run time kept).
    pub fn with_scenario(&self, s: &Scenario) -> Self {
        let (loss, balance, heavy, frequency, duration) = (s.loss, s.balance, s.heavy, s.frequency, s.duration);
        Self { loss, balance, heavy, frequency, duration, ..self.clone() }
    }

    /// This configuration with a patch applied, validated.
    pub fn patched(&self, p: &ConfigPatch) -> Result<Self, ConfigError> {
        let mut c = match &p.scenario {
            Some(name) => self.with_scenario(scenario(name).ok_or_else(|| ConfigError {
                field: "scenario",
                reason: format!("unknown scenario {name:?} (known: {})", scenario_names().join(", ")),
            })?),
            None => self.clone(),
        };
        let set = |dst: &mut f64, v: Option<f64>| *dst = v.unwrap_or(*dst);
        set(&mut c.heavy, p.heavy);
        set(&mut c.balance, p.balance);
        set(&mut c.loss, p.loss);
        set(&mut c.loss_stddev, p.loss_stddev);
        set(&mut c.frequency, p.frequency);
        set(&mut c.duration, p.duration);
        set(&mut c.stop_timeout, p.stop_timeout);
        set(&mut c.min_duration, p.min_duration);
        c.seed = p.seed.unwrap_or(c.seed);
        c.loss_scope = p.loss_scope.unwrap_or(c.loss_scope);
        match p.run_time {
            Some(0.0) => c.run_time = None,
            Some(v) => c.run_time = Some(v),
            None => {}
        }
        if let Some(kinds) = &p.kinds {
            c.kinds = (!kinds.is_empty()).then(|| kinds.clone());
        }
        c.exclusive = p.exclusive.unwrap_or(c.exclusive);
        c.validate()?;
        Ok(c)
    }

    pub fn stop_grace(&self) -> Duration {
        Duration::from_secs_f64(self.stop_timeout)
    }
}

impl ConfigPatch {
    /// Validates the patch on its own (each field has its own bounds), naming the invalid field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        AntagonistConfig::default().patched(self).map(|_| ())
    }
}

/// The names of the built-in scenarios.
pub fn scenario_names() -> Vec<&'static str> {
    SCENARIOS.iter().map(|s| s.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn scenarios_are_the_seed_table() {
        let names = scenario_names();
        assert_eq!(names, ["test_low_low", "test_low_high", "test_high_low", "test_high_high"]);
        let hh = scenario("test_high_high").unwrap();
        assert_eq!((hh.loss, hh.balance, hh.heavy, hh.frequency, hh.duration), (80.0, 70.0, 90.0, 0.1, 20.0));
        let lh = scenario("test_low_high").unwrap();
        assert_eq!((lh.heavy, lh.frequency, lh.duration), (25.0, 0.1, 5.0));
    }

    #[test]
    fn a_patch_keeps_unspecified_fields_and_names_the_invalid_one() {
        let base = AntagonistConfig { seed: 9, loss_scope: LossScope::Container, ..AntagonistConfig::default() };
        let p = ConfigPatch { frequency: Some(0.05), ..ConfigPatch::default() };
        let c = base.patched(&p).unwrap();
        assert_eq!(c, AntagonistConfig { frequency: 0.05, ..base.clone() });
        let bad = ConfigPatch { heavy: Some(150.0), ..ConfigPatch::default() };
        assert_eq!(base.patched(&bad).unwrap_err().field, "heavy");
        let bad = ConfigPatch { frequency: Some(0.0), ..ConfigPatch::default() };
        assert_eq!(base.patched(&bad).unwrap_err().field, "frequency");
        let bad = ConfigPatch { stop_timeout: Some(-1.0), ..ConfigPatch::default() };
        assert_eq!(bad.validate().unwrap_err().field, "stop_timeout");
        let bad = ConfigPatch { scenario: Some("nope".into()), ..ConfigPatch::default() };
        assert_eq!(bad.validate().unwrap_err().field, "scenario");
    }

    #[test]
    fn a_scenario_patch_keeps_seed_and_scope_and_fields_override_it() {
        let base = AntagonistConfig { seed: 5, loss_scope: LossScope::Container, ..AntagonistConfig::default() };
        let p = ConfigPatch { scenario: Some("test_high_high".into()), heavy: Some(50.0), ..ConfigPatch::default() };
        let c = base.patched(&p).unwrap();
        assert_eq!((c.heavy, c.frequency, c.duration, c.seed), (50.0, 0.1, 20.0, 5));
        assert_eq!(c.loss_scope, LossScope::Container);
        let unbounded = base.patched(&ConfigPatch { run_time: Some(0.0), ..ConfigPatch::default() }).unwrap();
        assert_eq!(unbounded.run_time, None);
    }

    #[test]
    fn patch_json_uses_the_design_field_names() {
        let p: ConfigPatch = serde_json::from_str(r#"{"name":"test_low_high","loss_scope":"container"}"#).unwrap();
        assert_eq!(p.scenario.as_deref(), Some("test_low_high"));
        assert_eq!(p.loss_scope, Some(LossScope::Container));
        assert!(serde_json::from_str::<ConfigPatch>(r#"{"heavyy":1}"#).is_err());
    }

    proptest! {
        #[test]
        fn out_of_range_values_are_refused_by_name(v in prop_oneof![-1e6..-0.001f64, 100.001..1e6f64]) {
            for field in ["heavy", "balance", "loss"] {
                let mut p = ConfigPatch::default();
                match field { "heavy" => p.heavy = Some(v), "balance" => p.balance = Some(v), _ => p.loss = Some(v) }
                prop_assert_eq!(p.validate().unwrap_err().field, field);
            }
        }
    }
}
