//! The antagonist's pure, seeded attack planner.
//!
//! Per target, the planner yields [`Step`]s: wait `gap` (exponential with mean `frequency`), then
//! with probability `heavy` % attack; the attack is a shutdown with probability `balance` %,
//! otherwise packet loss of a gaussian percentage around `loss` (clamped to 0–100) for an
//! exponential duration with mean `duration`. No I/O and no clock: the same seed and target name
//! give the same steps, and the executor decides when they happen. What it reads is
//! [`super::config`].

use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Bernoulli, Distribution, Exp, Normal};

/// The configuration lived here before [`super::config`]: these paths stay until the importers
/// outside `antagonist/` and `lab/` move to it.
pub use super::config::{AntagonistConfig, ConfigPatch, FaultKind, LossScope};
use super::config::{ConfigError, MAX_SECS};

/// What the planner decided for one attack.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AttackPlan {
    /// Stop (or kill) the container.
    Shutdown,
    /// Drop `percent` % of the container's packets for `duration`.
    Loss { percent: u8, duration: Duration },
    /// One of the timed kinds beyond the seed's (not `Shutdown` or `Loss`) for `duration`.
    Fault { kind: FaultKind, duration: Duration },
}

impl AttackPlan {
    pub fn kind(&self) -> FaultKind {
        match self {
            AttackPlan::Shutdown => FaultKind::Shutdown,
            AttackPlan::Loss { .. } => FaultKind::Loss,
            AttackPlan::Fault { kind, .. } => *kind,
        }
    }
}

/// One iteration of a target's loop: wait `gap`, then carry out `attack` if any.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    pub gap: Duration,
    pub attack: Option<AttackPlan>,
}

/// The seeded planner of one target.
#[derive(Debug, Clone)]
pub struct Planner {
    rng: StdRng,
    gap: Exp<f64>,
    heavy: Bernoulli,
    shutdown: Bernoulli,
    loss: Normal<f64>,
    duration: Exp<f64>,
    min_duration: f64,
    kinds: Option<Vec<FaultKind>>,
}

/// FNV-1a: a stable hash of the target's name (std's hasher may change between releases).
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn clamp_secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.clamp(0.0, MAX_SECS))
}

impl Planner {
    /// The planner of target `target` (a container name: stable across restarts and runs).
    pub fn new(config: &AntagonistConfig, target: &str) -> Result<Self, ConfigError> {
        config.validate()?;
        let bad = |field: &'static str| move |e: String| ConfigError { field, reason: e };
        Ok(Self {
            rng: StdRng::seed_from_u64(config.seed ^ fnv1a(target)),
            gap: Exp::new(1.0 / config.frequency).map_err(|e| bad("frequency")(e.to_string()))?,
            heavy: Bernoulli::new(config.heavy / 100.0).map_err(|e| bad("heavy")(e.to_string()))?,
            shutdown: Bernoulli::new(config.balance / 100.0).map_err(|e| bad("balance")(e.to_string()))?,
            loss: Normal::new(config.loss, config.loss_stddev).map_err(|e| bad("loss_stddev")(e.to_string()))?,
            duration: Exp::new(1.0 / config.duration).map_err(|e| bad("duration")(e.to_string()))?,
            min_duration: config.min_duration,
            kinds: config.kinds.clone(),
        })
    }

    /// A timed attack's duration: the exponential draw, at least `min_duration` (the draws
    /// themselves stay the same, so a schedule keeps its gaps and kinds).
    fn draw_duration(&mut self) -> Duration {
        clamp_secs(self.duration.sample(&mut self.rng).max(self.min_duration))
    }

    /// The next step of this target's loop.
    pub fn next_step(&mut self) -> Step {
        let gap = clamp_secs(self.gap.sample(&mut self.rng));
        if !self.heavy.sample(&mut self.rng) {
            return Step { gap, attack: None };
        }
        if let Some(kinds) = &self.kinds {
            // the seed's draws are untouched without `kinds`, so its schedules stay the same
            let kind = kinds[rand::Rng::random_range(&mut self.rng, 0..kinds.len())];
            let attack = match kind {
                FaultKind::Shutdown => AttackPlan::Shutdown,
                FaultKind::Loss => {
                    let percent = self.loss.sample(&mut self.rng).round().clamp(0.0, 100.0) as u8;
                    AttackPlan::Loss { percent, duration: self.draw_duration() }
                }
                kind => AttackPlan::Fault { kind, duration: self.draw_duration() },
            };
            return Step { gap, attack: Some(attack) };
        }
        if self.shutdown.sample(&mut self.rng) {
            return Step { gap, attack: Some(AttackPlan::Shutdown) };
        }
        let percent = self.loss.sample(&mut self.rng).round().clamp(0.0, 100.0) as u8;
        let duration = self.draw_duration();
        Step { gap, attack: Some(AttackPlan::Loss { percent, duration }) }
    }
}

/// The attacks planned for `target` within `horizon`, as (offset from the start, attack),
/// assuming a shutdown takes no time and a loss attack lasts its duration.
pub fn schedule(
    config: &AntagonistConfig,
    target: &str,
    horizon: Duration,
) -> Result<Vec<(Duration, AttackPlan)>, ConfigError> {
    let mut planner = Planner::new(config, target)?;
    let (mut t, mut out) = (Duration::ZERO, Vec::new());
    loop {
        let step = planner.next_step();
        t += step.gap;
        if t > horizon {
            return Ok(out);
        }
        if let Some(a) = step.attack {
            out.push((t, a));
            if let AttackPlan::Loss { duration, .. } | AttackPlan::Fault { duration, .. } = a {
                t += duration;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::antagonist::config::MIN_SECS;
    use proptest::prelude::*;

    fn steps(config: &AntagonistConfig, target: &str, n: usize) -> Vec<Step> {
        let mut p = Planner::new(config, target).unwrap();
        (0..n).map(|_| p.next_step()).collect()
    }

    #[test]
    fn same_seed_and_target_give_the_same_schedule() {
        let c = AntagonistConfig { seed: 42, ..AntagonistConfig::default() };
        assert_eq!(steps(&c, "web", 200), steps(&c, "web", 200));
        let h = Duration::from_secs(600);
        assert_eq!(schedule(&c, "web", h).unwrap(), schedule(&c, "web", h).unwrap());
        assert!(!schedule(&c, "web", h).unwrap().is_empty());
    }

    #[test]
    fn another_seed_or_target_gives_another_schedule() {
        let c = AntagonistConfig { seed: 42, ..AntagonistConfig::default() };
        let other = AntagonistConfig { seed: 43, ..c.clone() };
        assert_ne!(steps(&c, "web", 50), steps(&other, "web", 50));
        assert_ne!(steps(&c, "web", 50), steps(&c, "db", 50));
    }

    #[test]
    fn rates_and_means_follow_the_configuration() {
        let c = AntagonistConfig {
            heavy: 40.0,
            balance: 70.0,
            loss: 60.0,
            loss_stddev: 10.0,
            frequency: 0.5,
            duration: 3.0,
            seed: 7,
            ..AntagonistConfig::default()
        };
        let all = steps(&c, "t", 40_000);
        let n = all.len() as f64;
        let mean_gap = all.iter().map(|s| s.gap.as_secs_f64()).sum::<f64>() / n;
        assert!((mean_gap - 0.5).abs() < 0.02, "mean gap {mean_gap}");
        let attacks: Vec<AttackPlan> = all.iter().filter_map(|s| s.attack).collect();
        let heavy = attacks.len() as f64 / n;
        assert!((heavy - 0.40).abs() < 0.015, "attack rate {heavy}");
        let shutdowns = attacks.iter().filter(|a| **a == AttackPlan::Shutdown).count() as f64;
        let balance = shutdowns / attacks.len() as f64;
        assert!((balance - 0.70).abs() < 0.015, "shutdown share {balance}");
        let losses: Vec<(f64, f64)> = attacks
            .iter()
            .filter_map(|a| match a {
                AttackPlan::Loss { percent, duration } => Some((f64::from(*percent), duration.as_secs_f64())),
                AttackPlan::Shutdown | AttackPlan::Fault { .. } => None,
            })
            .collect();
        let m = losses.len() as f64;
        let mean_loss = losses.iter().map(|l| l.0).sum::<f64>() / m;
        let sd = (losses.iter().map(|l| (l.0 - mean_loss).powi(2)).sum::<f64>() / m).sqrt();
        let mean_duration = losses.iter().map(|l| l.1).sum::<f64>() / m;
        assert!((mean_loss - 60.0).abs() < 0.6, "mean loss {mean_loss}");
        assert!((sd - 10.0).abs() < 0.6, "loss sd {sd}");
        assert!((mean_duration - 3.0).abs() < 0.15, "mean duration {mean_duration}");
    }

    #[test]
    fn extremes_never_or_always_attack() {
        let never = AntagonistConfig { heavy: 0.0, ..AntagonistConfig::default() };
        assert!(steps(&never, "t", 1000).iter().all(|s| s.attack.is_none()));
        let always_loss = AntagonistConfig { heavy: 100.0, balance: 0.0, ..AntagonistConfig::default() };
        let all = steps(&always_loss, "t", 1000);
        assert!(all.iter().all(|s| matches!(s.attack, Some(AttackPlan::Loss { .. }))));
    }

    fn with_kinds(kinds: &[FaultKind], seed: u64) -> AntagonistConfig {
        AntagonistConfig { heavy: 100.0, seed, kinds: Some(kinds.to_vec()), ..AntagonistConfig::default() }
    }

    #[test]
    fn with_kinds_each_attack_draws_one_of_them_about_evenly() {
        let kinds = [FaultKind::CpuHog, FaultKind::MemoryLeak, FaultKind::CpuStarve, FaultKind::LoadSurge];
        let all = steps(&with_kinds(&kinds, 3), "svc", 8_000);
        for kind in kinds {
            let share = all.iter().filter(|s| s.attack.map(|a| a.kind()) == Some(kind)).count() as f64 / 8_000.0;
            assert!((share - 0.25).abs() < 0.02, "{kind:?}: {share}");
        }
        assert!(all.iter().all(|s| matches!(s.attack, Some(AttackPlan::Fault { .. }))));
        // listing a kind twice weighs it double
        let weighed = steps(&with_kinds(&[FaultKind::CpuHog, FaultKind::CpuHog, FaultKind::Shutdown], 3), "svc", 6_000);
        let hogs = weighed.iter().filter(|s| s.attack.map(|a| a.kind()) == Some(FaultKind::CpuHog)).count();
        assert!((hogs as f64 / 6_000.0 - 2.0 / 3.0).abs() < 0.03, "{hogs}");
        assert!(weighed.iter().any(|s| s.attack == Some(AttackPlan::Shutdown)));
    }

    #[test]
    fn min_duration_raises_short_draws_and_changes_nothing_else() {
        let kinds = [FaultKind::CpuHog, FaultKind::LoadSurge];
        let free = with_kinds(&kinds, 5);
        let floored = AntagonistConfig { min_duration: 8.0, ..free.clone() };
        let (a, b) = (steps(&free, "svc", 2_000), steps(&floored, "svc", 2_000));
        let mut raised = 0;
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.gap, y.gap);
            let (
                Some(AttackPlan::Fault { kind: k1, duration: d1 }),
                Some(AttackPlan::Fault { kind: k2, duration: d2 }),
            ) = (&x.attack, &y.attack)
            else {
                panic!("every step attacks with heavy 100: {x:?} {y:?}");
            };
            assert_eq!(k1, k2);
            assert_eq!(*d2, (*d1).max(Duration::from_secs(8)));
            raised += usize::from(d1 < d2);
        }
        assert!(raised > 1_000, "four in five draws of mean 5 s are under 8 s: {raised}");
        let bad = ConfigPatch { min_duration: Some(-1.0), ..ConfigPatch::default() };
        assert_eq!(AntagonistConfig::default().patched(&bad).unwrap_err().field, "min_duration");
    }

    #[test]
    fn without_kinds_the_seeds_schedules_are_unchanged_and_an_empty_list_goes_back_to_them() {
        let seed = AntagonistConfig { seed: 9, ..AntagonistConfig::default() };
        let patched = seed.patched(&ConfigPatch { kinds: Some(vec![]), ..ConfigPatch::default() }).unwrap();
        assert_eq!(patched.kinds, None);
        assert_eq!(steps(&seed, "web", 300), steps(&patched, "web", 300));
        let too_many = ConfigPatch { kinds: Some(vec![FaultKind::CpuHog; 65]), ..ConfigPatch::default() };
        assert_eq!(too_many.validate().unwrap_err().field, "kinds");
    }

    #[test]
    fn kinds_parse_by_their_contract_names() {
        let p: ConfigPatch = serde_json::from_str(
            r#"{"kinds":["cpu_hog","memory_leak","cpu_starve","sibling_hog","node_hog","dependency_slow","load_surge","shutdown","loss"]}"#,
        )
        .unwrap();
        assert_eq!(
            p.kinds.unwrap(),
            FaultKind::ALL
                .iter()
                .copied()
                .filter(|k| *k != FaultKind::Shutdown && *k != FaultKind::Loss)
                .chain([FaultKind::Shutdown, FaultKind::Loss])
                .collect::<Vec<_>>()
        );
        assert!(serde_json::from_str::<ConfigPatch>(r#"{"kinds":["fork_bomb"]}"#).is_err());
        for k in FaultKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), serde_json::json!(k.name()));
        }
    }

    proptest! {
        #[test]
        fn with_kinds_the_planner_is_deterministic_per_seed_and_draws_only_listed_kinds(
            seed in any::<u64>(),
            picks in proptest::collection::vec(0usize..FaultKind::ALL.len(), 1..6),
            name in "[a-z]{1,12}",
        ) {
            let kinds: Vec<FaultKind> = picks.iter().map(|&i| FaultKind::ALL[i]).collect();
            let config = with_kinds(&kinds, seed);
            let a = steps(&config, &name, 50);
            prop_assert_eq!(&a, &steps(&config, &name, 50));
            for s in &a {
                let kind = s.attack.map(|a| a.kind());
                prop_assert!(kind.is_some_and(|k| kinds.contains(&k)), "{:?} not in {:?}", kind, kinds);
                if let Some(AttackPlan::Fault { duration, .. } | AttackPlan::Loss { duration, .. }) = s.attack {
                    prop_assert!(duration <= Duration::from_secs_f64(MAX_SECS));
                }
            }
        }
    }

    proptest! {
        #[test]
        fn every_step_respects_the_parameter_bounds(
            heavy in 0.0..=100.0f64, balance in 0.0..=100.0f64, loss in 0.0..=100.0f64,
            sd in 0.0..=100.0f64, frequency in MIN_SECS..=100.0f64, duration in MIN_SECS..=100.0f64,
            seed: u64,
        ) {
            let c = AntagonistConfig { heavy, balance, loss, loss_stddev: sd, frequency, duration, seed,
                ..AntagonistConfig::default() };
            for s in steps(&c, "p", 200) {
                prop_assert!(s.gap.as_secs_f64() <= MAX_SECS);
                if let Some(AttackPlan::Loss { percent, duration }) = s.attack {
                    prop_assert!(percent <= 100);
                    prop_assert!(duration.as_secs_f64() <= MAX_SECS);
                }
                if heavy == 0.0 { prop_assert!(s.attack.is_none()); }
                let is_loss = matches!(s.attack, Some(AttackPlan::Loss { .. }));
                if balance == 100.0 { prop_assert!(!is_loss); }
            }
        }
    }
}
