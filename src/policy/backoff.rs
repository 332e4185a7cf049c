//! `Backoff`: the one exponential back-off of HMS, used by every retry (restarts, dialling the
//! controller or a host, re-spawning a probe, reconnecting the engine's event stream).
//!
//! Attempt `n` (0-based) waits `min × 2^n`, capped at `max`, then shortened by up to `jitter` of
//! itself with the random sample passed in, and never below `min`: `min ≤ delay ≤ max` always.
//! With `min` 100 ms, `max` 2 s and no jitter:
//!
//! | attempt | 0      | 1      | 2      | 3      | 4     | 5+  |
//! |---------|--------|--------|--------|--------|-------|-----|
//! | delay   | 100 ms | 200 ms | 400 ms | 800 ms | 1.6 s | 2 s |
//!
//! The parameters are validated once ([`Backoff::try_new`], or at compile time for constants
//! built with [`Backoff::constant`]); the random source is the caller's (`unit` in `[0, 1)`), so
//! every delay is a pure function and tests pass fixed samples.

use std::time::Duration;

/// Invalid back-off parameters.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BackoffError {
    #[error("back-off minimum {min:?} is above its maximum {max:?}")]
    MinAboveMax { min: Duration, max: Duration },
    #[error("back-off jitter must be within 0..=1, got {0}")]
    Jitter(f64),
}

/// A validated exponential back-off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    jitter: f64,
}

impl Backoff {
    /// Validates the parameters: `min ≤ max`, `jitter` within `0..=1`.
    pub fn try_new(min: Duration, max: Duration, jitter: f64) -> Result<Self, BackoffError> {
        if min > max {
            return Err(BackoffError::MinAboveMax { min, max });
        }
        if !(0.0..=1.0).contains(&jitter) {
            return Err(BackoffError::Jitter(jitter));
        }
        Ok(Self { min, max, jitter })
    }

    /// A back-off fixed in the code; invalid parameters fail the build when used in a `const`.
    pub const fn constant(min: Duration, max: Duration, jitter: f64) -> Self {
        assert!(min.as_nanos() <= max.as_nanos(), "back-off minimum above its maximum");
        assert!(jitter >= 0.0 && jitter <= 1.0, "back-off jitter outside 0..=1");
        Self { min, max, jitter }
    }

    pub fn min(&self) -> Duration {
        self.min
    }

    pub fn max(&self) -> Duration {
        self.max
    }

    /// The delay before retry `attempt` (0-based); `unit` is a random sample in `[0, 1)`.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let raw = self.min.saturating_mul(2u32.saturating_pow(attempt.min(31))).min(self.max);
        let cut = raw.mul_f64(self.jitter * unit.clamp(0.0, 1.0));
        raw.saturating_sub(cut).max(self.min)
    }
}

/// Back-off of dialling a peer node (the controller, or a known host): 100 ms doubling to 2 s,
/// minus up to 20 % jitter.
pub const DIAL_BACKOFF: Backoff = Backoff::constant(Duration::from_millis(100), Duration::from_secs(2), 0.2);

/// Delay before dial attempt `failures + 1`: none at first, then [`DIAL_BACKOFF`] (`unit` in
/// [0, 1)).
///
/// | failures | 0 | 1      | 2      | 3      | 4      | 5      | 6+  |
/// |----------|---|--------|--------|--------|--------|--------|-----|
/// | delay    | 0 | 100 ms | 200 ms | 400 ms | 800 ms | 1.6 s  | 2 s |
pub fn dial_delay(failures: u32, unit: f64) -> Duration {
    match failures {
        0 => Duration::ZERO,
        n => DIAL_BACKOFF.delay(n - 1, unit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn delays_follow_the_table() {
        let b = Backoff::try_new(MS(100), MS(2000), 0.0).unwrap();
        let got: Vec<u128> = (0..7).map(|n| b.delay(n, 0.5).as_millis()).collect();
        assert_eq!(got, [100, 200, 400, 800, 1600, 2000, 2000]);
    }

    #[test]
    fn jitter_shortens_but_never_below_min() {
        let b = Backoff::try_new(MS(100), MS(2000), 0.2).unwrap();
        assert_eq!(b.delay(3, 1.0), MS(640));
        assert_eq!(b.delay(0, 1.0), MS(100));
        assert_eq!(b.delay(3, 0.0), MS(800));
    }

    #[test]
    fn invalid_parameters_are_refused() {
        assert!(matches!(Backoff::try_new(MS(5), MS(1), 0.0), Err(BackoffError::MinAboveMax { .. })));
        assert_eq!(Backoff::try_new(MS(1), MS(5), 1.5), Err(BackoffError::Jitter(1.5)));
        assert!(Backoff::try_new(MS(1), MS(5), f64::NAN).is_err());
        assert!(Backoff::try_new(Duration::ZERO, Duration::ZERO, 0.0).is_ok());
    }

    #[test]
    fn dial_delay_follows_the_table() {
        let ms = |f| dial_delay(f, 0.0).as_millis();
        assert_eq!([ms(0), ms(1), ms(2), ms(3), ms(4), ms(5), ms(30)], [0, 100, 200, 400, 800, 1600, 2000]);
        assert_eq!(dial_delay(3, 1.0), Duration::from_millis(320));
    }

    proptest! {
        #[test]
        fn delay_stays_within_min_and_max(
            min in 0u64..10_000, extra in 0u64..100_000, jitter in 0.0f64..=1.0,
            attempt in 0u32..200, unit in 0.0f64..1.0,
        ) {
            let b = Backoff::try_new(MS(min), MS(min + extra), jitter).unwrap();
            let d = b.delay(attempt, unit);
            prop_assert!(b.min() <= d && d <= b.max(), "{d:?} outside [{:?}, {:?}]", b.min(), b.max());
        }

        #[test]
        fn delay_never_shrinks_without_jitter(min in 1u64..1000, extra in 0u64..100_000, attempt in 0u32..100) {
            let b = Backoff::try_new(MS(min), MS(min + extra), 0.0).unwrap();
            prop_assert!(b.delay(attempt, 0.0) <= b.delay(attempt + 1, 0.0));
        }
    }
}
