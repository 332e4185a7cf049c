//! Rate schedules of the load generator: what rate (requests per second, per target) is wanted
//! at each instant of a run, and the open-loop send times that follow from it. Pure: time is an
//! offset from the run's start, passed in.
//!
//! | spelling | schedule |
//! |---|---|
//! | `100` | constant 100/s |
//! | `steps:10@0,50@20,10@40` | 10/s from 0 s, 50/s from 20 s, 10/s from 40 s |
//! | `ramp:10-200@60` | linear from 10/s to 200/s over 60 s, then 200/s |
//! | `periodic:5-100@120x4` | the paper's changing user counts scaled: a level every `120/4` s, cycling up and down between 5 and 100 in 4 levels per half-cycle |

use std::time::Duration;

/// The largest rate accepted, per target (the generator's own limit on this class of machine is
/// far lower; this only keeps arithmetic sane).
pub const MAX_RATE: f64 = 100_000.0;

/// A wanted rate over time.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    Constant(f64),
    /// `(from, rate)`, sorted by `from`, the first at 0.
    Steps(Vec<(Duration, f64)>),
    Ramp {
        from: f64,
        to: f64,
        over: Duration,
    },
    /// A triangle of `levels` steps up then down between `low` and `high`, one cycle per `period`.
    Periodic {
        low: f64,
        high: f64,
        period: Duration,
        levels: u32,
    },
}

/// Why a schedule spelling was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "schedule must be RATE, steps:RATE@SECS,…, ramp:FROM-TO@SECS or periodic:LOW-HIGH@SECSxLEVELS \
     (rates 0-{MAX_RATE}/s, steps starting at 0 in increasing order), got {0:?}"
)]
pub struct ScheduleError(pub String);

impl std::str::FromStr for Schedule {
    type Err = ScheduleError;
    fn from_str(s: &str) -> Result<Self, ScheduleError> {
        let bad = || ScheduleError(s.to_owned());
        let rate = |t: &str| t.trim().parse::<f64>().ok().filter(|r| r.is_finite() && (0.0..=MAX_RATE).contains(r));
        let secs = |t: &str| {
            let v = t.trim().parse::<f64>().ok().filter(|v| v.is_finite() && (0.0..=1e7).contains(v))?;
            Some(Duration::from_secs_f64(v))
        };
        let pair = |t: &str| {
            let (a, b) = t.split_once('-')?;
            Some((rate(a)?, rate(b)?))
        };
        let schedule = match s.split_once(':') {
            None => Self::Constant(rate(s).ok_or_else(bad)?),
            Some(("steps", list)) => {
                let steps: Vec<(Duration, f64)> = list
                    .split(',')
                    .map(|step| {
                        let (r, at) = step.split_once('@')?;
                        Some((secs(at)?, rate(r)?))
                    })
                    .collect::<Option<_>>()
                    .ok_or_else(bad)?;
                let ordered = steps.windows(2).all(|w| w[0].0 < w[1].0);
                if steps.first().map(|s| s.0) != Some(Duration::ZERO) || !ordered {
                    return Err(bad());
                }
                Self::Steps(steps)
            }
            Some(("ramp", spec)) => {
                let (rates, over) = spec.split_once('@').ok_or_else(bad)?;
                let (from, to) = pair(rates).ok_or_else(bad)?;
                Self::Ramp { from, to, over: secs(over).ok_or_else(bad)? }
            }
            Some(("periodic", spec)) => {
                let (rates, rest) = spec.split_once('@').ok_or_else(bad)?;
                let (period, levels) = rest.split_once('x').ok_or_else(bad)?;
                let (low, high) = pair(rates).filter(|(l, h)| l <= h).ok_or_else(bad)?;
                let period = secs(period).filter(|p| !p.is_zero()).ok_or_else(bad)?;
                let levels = levels.trim().parse().ok().filter(|l| (1..=1000).contains(l)).ok_or_else(bad)?;
                Self::Periodic { low, high, period, levels }
            }
            Some(_) => return Err(bad()),
        };
        Ok(schedule)
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Constant(r) => write!(f, "{r}"),
            Self::Steps(steps) => {
                let list: Vec<String> = steps.iter().map(|(at, r)| format!("{r}@{}", at.as_secs_f64())).collect();
                write!(f, "steps:{}", list.join(","))
            }
            Self::Ramp { from, to, over } => write!(f, "ramp:{from}-{to}@{}", over.as_secs_f64()),
            Self::Periodic { low, high, period, levels } => {
                write!(f, "periodic:{low}-{high}@{}x{levels}", period.as_secs_f64())
            }
        }
    }
}

impl Schedule {
    /// The wanted rate (per second) at `t` after the start.
    pub fn rate_at(&self, t: Duration) -> f64 {
        match self {
            Self::Constant(r) => *r,
            Self::Steps(steps) => steps.iter().take_while(|(from, _)| *from <= t).last().map_or(0.0, |s| s.1),
            Self::Ramp { from, to, over } => {
                let share = if over.is_zero() { 1.0 } else { (t.as_secs_f64() / over.as_secs_f64()).min(1.0) };
                from + (to - from) * share
            }
            Self::Periodic { low, high, period, levels } => {
                // 2·levels slots per cycle: levels 0, 1, …, levels−1, then back down levels−1, …, 0
                let slots = 2 * u64::from(*levels);
                let slot_len = period.as_secs_f64() / slots as f64;
                let slot = (t.as_secs_f64() / slot_len) as u64 % slots;
                let level = if slot < u64::from(*levels) { slot } else { slots - 1 - slot };
                let share = if *levels > 1 { level as f64 / f64::from(levels - 1) } else { 1.0 };
                low + (high - low) * share
            }
        }
    }

    /// The next send after one at `t`: one interval of the rate at `t` later (a rate of 0 waits
    /// a tenth of a second and looks again). Open loop: it depends on the schedule only, never on
    /// responses.
    pub fn next_send(&self, t: Duration) -> Duration {
        let rate = self.rate_at(t);
        if rate <= 0.0 { t + Duration::from_millis(100) } else { t + Duration::from_secs_f64(1.0 / rate) }
    }

    /// How many sends fall in `[0, until)` (what a run of that length schedules).
    pub fn sends_until(&self, until: Duration) -> u64 {
        let (mut t, mut n) = (Duration::ZERO, 0u64);
        while t < until {
            if self.rate_at(t) > 0.0 {
                n += 1;
            }
            t = self.next_send(t);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(n: f64) -> Duration {
        Duration::from_secs_f64(n)
    }

    #[test]
    fn schedules_parse_and_print_back() {
        for text in ["100", "steps:10@0,50@20,10@40", "ramp:10-200@60", "periodic:5-100@120x4", "0"] {
            let schedule: Schedule = text.parse().unwrap();
            assert_eq!(schedule.to_string().parse::<Schedule>().unwrap(), schedule, "{text}");
        }
        for bad in [
            "",
            "-5",
            "nan",
            "1e9",
            "steps:",
            "steps:10@5",
            "steps:10@0,5@0",
            "steps:10@0,5@x",
            "ramp:10@5",
            "ramp:10-20",
            "periodic:100-5@10x2",
            "periodic:5-100@0x2",
            "periodic:5-100@10x0",
            "sine:1",
        ] {
            let e = bad.parse::<Schedule>().unwrap_err();
            assert!(e.to_string().starts_with("schedule must be"), "{bad}: {e}");
        }
    }

    #[test]
    fn each_schedule_gives_its_rate_over_time() {
        let steps: Schedule = "steps:10@0,50@20,10@40".parse().unwrap();
        assert_eq!((steps.rate_at(s(0.0)), steps.rate_at(s(19.9)), steps.rate_at(s(20.0))), (10.0, 10.0, 50.0));
        assert_eq!(steps.rate_at(s(100.0)), 10.0);
        let ramp: Schedule = "ramp:10-210@100".parse().unwrap();
        assert_eq!((ramp.rate_at(s(0.0)), ramp.rate_at(s(50.0)), ramp.rate_at(s(500.0))), (10.0, 110.0, 210.0));
        // 4 levels up then down over 80 s: a level every 10 s
        let p: Schedule = "periodic:10-40@80x4".parse().unwrap();
        let levels: Vec<f64> = (0..9).map(|i| p.rate_at(s(f64::from(i) * 10.0 + 1.0))).collect();
        assert_eq!(levels, vec![10.0, 20.0, 30.0, 40.0, 40.0, 30.0, 20.0, 10.0, 10.0]);
    }

    #[test]
    fn a_constant_rate_schedules_rate_times_seconds_sends() {
        assert_eq!("500".parse::<Schedule>().unwrap().sends_until(s(4.0)), 2000);
        assert_eq!("0".parse::<Schedule>().unwrap().sends_until(s(4.0)), 0);
        let steps: Schedule = "steps:10@0,50@2".parse().unwrap();
        assert_eq!(steps.sends_until(s(4.0)), 120);
    }

    proptest! {
        #[test]
        fn sends_move_forward_and_rates_stay_in_their_bounds(
            low in 0.0f64..1000.0, extra in 0.0f64..1000.0, secs in 1u32..1000, levels in 1u32..20, t in 0.0f64..5000.0,
        ) {
            let high = low + extra;
            let period = Duration::from_secs(u64::from(secs));
            for schedule in [
                Schedule::Periodic { low, high, period, levels },
                Schedule::Ramp { from: low, to: high, over: period },
                Schedule::Ramp { from: high, to: low, over: period },
            ] {
                let r = schedule.rate_at(s(t));
                prop_assert!(r >= low - 1e-9 && r <= high + 1e-9, "{schedule}: {r}");
                prop_assert!(schedule.next_send(s(t)) > s(t));
            }
        }
    }
}
