//! The restart policy: a pure decision over a container's restart history.
//!
//! Back-off table with the defaults (`base` 500 ms, `max` 30 s), before jitter:
//!
//! | restarts in the last `stable` period | delay after the previous restart |
//! |---|---|
//! | 0 | 0 (restart at once) |
//! | 1 | 500 ms |
//! | 2 | 1 s |
//! | 3 | 2 s |
//! | 4 | 4 s |
//! | n | min(30 s, 500 ms × 2^(n-1)) |
//!
//! Jitter shortens a delay by up to `jitter` × delay, so delays stay within `[min, max]` and
//! containers that failed together do not restart in lock-step. Past `max_restarts` restarts
//! within `window`, the container is quarantined for `quarantine`: reported, never restarted,
//! until that expires or a user releases it.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::backoff::{Backoff, BackoffError};

/// An invalid restart-policy parameter.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PolicyError {
    #[error("restart back-off base must be positive and at most the maximum ({base:?} > {max:?})")]
    Backoff { base: Duration, max: Duration },
    #[error("restart jitter must be within 0..=1, got {0}")]
    Jitter(f64),
    #[error("max restarts must be at least 1")]
    MaxRestarts,
    #[error("restart window must be positive")]
    Window,
}

/// Parameters of the restart policy, validated by [`RestartPolicy::try_new`].
#[derive(Debug, Clone, PartialEq)]
pub struct RestartPolicy {
    backoff: Backoff,
    max_restarts: u32,
    window: Duration,
    stable: Duration,
    quarantine: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            backoff: Backoff::constant(Duration::from_millis(500), Duration::from_secs(30), 0.2),
            max_restarts: 5,
            window: Duration::from_secs(60),
            stable: Duration::from_secs(30),
            quarantine: Duration::from_secs(300),
        }
    }
}

/// Builder-style inputs of [`RestartPolicy::try_new`].
#[derive(Debug, Clone)]
pub struct PolicyParams {
    pub base: Duration,
    pub max: Duration,
    pub jitter: f64,
    pub max_restarts: u32,
    pub window: Duration,
    pub stable: Duration,
    pub quarantine: Duration,
}

impl RestartPolicy {
    /// Validates the parameters once, at start-up.
    pub fn try_new(p: PolicyParams) -> Result<Self, PolicyError> {
        if p.base.is_zero() || p.base > p.max {
            return Err(PolicyError::Backoff { base: p.base, max: p.max });
        }
        let backoff = Backoff::try_new(p.base, p.max, p.jitter).map_err(|e| match e {
            BackoffError::MinAboveMax { .. } => PolicyError::Backoff { base: p.base, max: p.max },
            BackoffError::Jitter(j) => PolicyError::Jitter(j),
        })?;
        if p.max_restarts == 0 {
            return Err(PolicyError::MaxRestarts);
        }
        if p.window.is_zero() {
            return Err(PolicyError::Window);
        }
        Ok(Self { backoff, max_restarts: p.max_restarts, window: p.window, stable: p.stable, quarantine: p.quarantine })
    }

    /// No back-off and no quarantine: every restart at once (the seed's behaviour).
    pub fn unlimited() -> Self {
        Self {
            backoff: Backoff::constant(Duration::ZERO, Duration::ZERO, 0.0),
            max_restarts: u32::MAX,
            window: Duration::from_secs(1),
            stable: Duration::from_secs(1),
            quarantine: Duration::ZERO,
        }
    }

    pub fn max_restarts(&self) -> u32 {
        self.max_restarts
    }

    /// The delay owed after the previous restart, given how many restarts happened recently.
    /// `unit` is a random sample in `[0, 1)`.
    pub fn backoff(&self, recent: u32, unit: f64) -> Duration {
        match recent {
            0 => Duration::ZERO,
            n => self.backoff.delay(n - 1, unit),
        }
    }
}

/// What the policy allows for a container that needs a (re)start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Restart now.
    Now,
    /// Ask again after this delay.
    After(Duration),
    /// A restart is already in flight.
    InFlight,
    /// Too many restarts: quarantine until the given instant.
    Quarantine { until: Instant },
    /// Quarantined, not yet expired.
    Quarantined,
}

/// A container's restart history: the mutable half of the policy.
#[derive(Debug, Clone, Default)]
pub struct RestartTracker {
    history: VecDeque<Instant>,
    in_flight: bool,
    quarantined_until: Option<Instant>,
}

impl RestartTracker {
    /// Decides whether a restart may happen now. Pure: call [`Self::begin`] to act on `Now`.
    pub fn decide(&self, policy: &RestartPolicy, now: Instant, unit: f64) -> Decision {
        if self.in_flight {
            return Decision::InFlight;
        }
        if self.quarantined_until.is_some_and(|until| now < until) {
            return Decision::Quarantined;
        }
        let in_window = self.count_since(now, policy.window);
        if in_window >= policy.max_restarts as usize {
            return Decision::Quarantine { until: now + policy.quarantine };
        }
        let recent = self.count_since(now, policy.stable) as u32;
        let Some(&last) = self.history.back() else {
            return Decision::Now;
        };
        let due = last + policy.backoff(recent, unit);
        if now >= due { Decision::Now } else { Decision::After(due - now) }
    }

    /// Decides for a start after a stop someone else ordered: at once, unless a restart is in
    /// flight or the container is quarantined. Such starts are not counted by [`Self::decide`].
    /// Not even a quarantine holds it back: quarantine stops restarts that do not help (a crash
    /// loop, loss a restart cannot cure), while a container someone stopped is of no use stopped.
    /// The quarantine stays in force for every other reason to act.
    pub fn decide_external(&self, _now: Instant) -> Decision {
        if self.in_flight { Decision::InFlight } else { Decision::Now }
    }

    /// Records the start of a start ordered after an external stop (not part of the history).
    pub fn begin_external(&mut self) {
        self.in_flight = true;
    }

    /// Records the start of a restart ordered at `now`.
    pub fn begin(&mut self, policy: &RestartPolicy, now: Instant) {
        self.in_flight = true;
        self.quarantined_until = None;
        self.history.push_back(now);
        let keep = policy.window.max(policy.stable);
        while self.history.front().is_some_and(|&t| now.duration_since(t) >= keep) {
            self.history.pop_front();
        }
    }

    /// Records that the restart in flight has ended (successfully or not).
    pub fn finish(&mut self) {
        self.in_flight = false;
    }

    /// Puts the container in quarantine.
    pub fn quarantine(&mut self, until: Instant) {
        self.quarantined_until = Some(until);
        self.history.clear();
    }

    /// A user took the container back: forget quarantine and history.
    pub fn release(&mut self) {
        self.quarantined_until = None;
        self.history.clear();
    }

    pub fn is_quarantined(&self, now: Instant) -> bool {
        self.quarantined_until.is_some_and(|until| now < until)
    }

    pub fn in_flight(&self) -> bool {
        self.in_flight
    }

    fn count_since(&self, now: Instant, span: Duration) -> usize {
        self.history.iter().filter(|&&t| now.duration_since(t) < span).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn no_jitter() -> RestartPolicy {
        RestartPolicy { backoff: Backoff::constant(ms(500), ms(30_000), 0.0), ..RestartPolicy::default() }
    }

    #[test]
    fn backoff_follows_the_documented_table() {
        let p = no_jitter();
        let got: Vec<_> = (0..9).map(|n| p.backoff(n, 0.5)).collect();
        let want = [0, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000].map(ms);
        assert_eq!(got, want);
    }

    #[test]
    fn an_external_stop_is_started_even_in_quarantine_which_stays() {
        let now = Instant::now();
        let mut t = RestartTracker::default();
        t.quarantine(now + Duration::from_secs(300));
        assert_eq!(t.decide_external(now), Decision::Now);
        t.begin_external();
        assert_eq!(t.decide_external(now), Decision::InFlight);
        t.finish();
        assert_eq!(t.decide(&RestartPolicy::default(), now + ms(10), 0.0), Decision::Quarantined);
    }

    #[test]
    fn first_restart_is_immediate() {
        let now = Instant::now();
        let t = RestartTracker::default();
        assert_eq!(t.decide(&RestartPolicy::default(), now, 0.3), Decision::Now);
    }

    #[test]
    fn second_restart_waits_for_the_backoff() {
        let p = no_jitter();
        let now = Instant::now();
        let mut t = RestartTracker::default();
        t.begin(&p, now);
        assert_eq!(t.decide(&p, now, 0.0), Decision::InFlight);
        t.finish();
        assert_eq!(t.decide(&p, now + ms(100), 0.0), Decision::After(ms(400)));
        assert_eq!(t.decide(&p, now + ms(500), 0.0), Decision::Now);
    }

    #[test]
    fn quarantines_after_max_restarts_in_window() {
        let p = no_jitter();
        let start = Instant::now();
        let mut t = RestartTracker::default();
        let mut now = start;
        for _ in 0..p.max_restarts {
            loop {
                match t.decide(&p, now, 0.0) {
                    Decision::Now => break,
                    Decision::After(d) => now += d,
                    other => panic!("unexpected {other:?}"),
                }
            }
            t.begin(&p, now);
            t.finish();
        }
        let Decision::Quarantine { until } = t.decide(&p, now + ms(8000), 0.0) else {
            panic!("expected quarantine");
        };
        t.quarantine(until);
        assert_eq!(t.decide(&p, until - ms(1), 0.0), Decision::Quarantined);
        assert_eq!(t.decide(&p, until, 0.0), Decision::Now);
    }

    #[test]
    fn backoff_resets_after_a_stable_period() {
        let p = no_jitter();
        let now = Instant::now();
        let mut t = RestartTracker::default();
        t.begin(&p, now);
        t.finish();
        t.begin(&p, now + ms(500));
        t.finish();
        let later = now + ms(500) + Duration::from_secs(30);
        assert_eq!(t.decide(&p, later, 0.0), Decision::Now);
    }

    #[test]
    fn release_clears_quarantine() {
        let p = no_jitter();
        let now = Instant::now();
        let mut t = RestartTracker::default();
        t.quarantine(now + Duration::from_secs(300));
        t.release();
        assert_eq!(t.decide(&p, now, 0.0), Decision::Now);
    }

    #[test]
    fn try_new_rejects_bad_parameters() {
        let ok = PolicyParams {
            base: ms(500),
            max: ms(30_000),
            jitter: 0.2,
            max_restarts: 5,
            window: Duration::from_secs(60),
            stable: Duration::from_secs(30),
            quarantine: Duration::from_secs(300),
        };
        assert!(RestartPolicy::try_new(ok.clone()).is_ok());
        let bad_jitter = PolicyParams { jitter: 1.5, ..ok.clone() };
        assert_eq!(RestartPolicy::try_new(bad_jitter), Err(PolicyError::Jitter(1.5)));
        let bad_base = PolicyParams { base: ms(40_000), ..ok.clone() };
        assert!(matches!(RestartPolicy::try_new(bad_base), Err(PolicyError::Backoff { .. })));
        let zero = PolicyParams { max_restarts: 0, ..ok };
        assert_eq!(RestartPolicy::try_new(zero), Err(PolicyError::MaxRestarts));
    }

    proptest! {
        #[test]
        fn backoff_stays_within_bounds(n in 1u32..64, unit in 0.0f64..1.0, jitter in 0.0f64..=1.0) {
            let p = RestartPolicy { backoff: Backoff::try_new(ms(500), ms(30_000), jitter).unwrap(), ..RestartPolicy::default() };
            let d = p.backoff(n, unit);
            prop_assert!(d >= p.backoff.min() && d <= p.backoff.max());
        }

        #[test]
        fn never_more_than_max_restarts_in_a_window(gaps in proptest::collection::vec(0u64..20_000, 1..60)) {
            let p = RestartPolicy::default();
            let mut now = Instant::now();
            let mut t = RestartTracker::default();
            let mut done: Vec<Instant> = Vec::new();
            for gap in gaps {
                now += ms(gap);
                match t.decide(&p, now, 0.5) {
                    Decision::Now => { t.begin(&p, now); t.finish(); done.push(now); }
                    Decision::Quarantine { until } => t.quarantine(until),
                    _ => {}
                }
                let in_window = done.iter().filter(|&&d| now.duration_since(d) < p.window).count();
                prop_assert!(in_window <= p.max_restarts as usize);
            }
        }
    }
}
