//! The open response-time windows of the engine (`response.rs`) as pure bookkeeping: which
//! request is due, which ones are past their timeout, when a window is complete and what it
//! measured. Time is passed in and no socket is touched, so every rule is tested here.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

/// What one request ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Outcome {
    /// 2xx/3xx (http) or connected (tcp).
    pub ok: bool,
    /// From the start of the connect to the end of the response.
    pub took: Duration,
    /// The TCP handshake completed: the container counted a connection of ours.
    pub connected: bool,
}

/// The shape of one response-time window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseSpec {
    /// Requests per window.
    pub count: u16,
    /// Gap between the starts of two requests.
    pub interval: Duration,
    /// A request not answered by then is a failure at this time.
    pub timeout: Duration,
}

impl Default for ResponseSpec {
    /// Three requests 100 ms apart, each given a second.
    fn default() -> Self {
        Self { count: 3, interval: Duration::from_millis(100), timeout: Duration::from_secs(1) }
    }
}

/// What one window measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResponseStats {
    pub sent: u16,
    /// Requests that timed out, failed to connect, or answered other than 2xx/3xx.
    pub failed: u16,
    /// Requests whose TCP handshake completed: connections the container itself counted.
    pub connected: u16,
    /// Median time over every request, a failure counting at the timeout.
    pub median: Option<Duration>,
}

impl ResponseStats {
    pub(super) fn from_outcomes(outcomes: &[Outcome], timeout: Duration) -> Self {
        let count = |f: fn(&Outcome) -> bool| u16::try_from(outcomes.iter().filter(|o| f(o)).count()).unwrap_or(0);
        let mut times: Vec<Duration> = outcomes.iter().map(|o| if o.ok { o.took } else { timeout }).collect();
        times.sort_unstable();
        let median = match times.len() {
            0 => None,
            n if n % 2 == 1 => Some(times[n / 2]),
            n => Some((times[n / 2 - 1] + times[n / 2]) / 2),
        };
        Self {
            sent: u16::try_from(outcomes.len()).unwrap_or(u16::MAX),
            failed: count(|o| !o.ok),
            connected: count(|o| o.connected),
            median,
        }
    }

    /// Share (0–1) of the window's requests that failed; `None` for an empty window.
    pub fn failed_share(&self) -> Option<f64> {
        (self.sent > 0).then(|| f64::from(self.failed) / f64::from(self.sent))
    }
}

/// One request of a window: not sent, in flight since an instant, or ended.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Slot {
    Waiting,
    InFlight(Instant),
    Ended(Outcome),
}

struct Window<P, D> {
    spec: ResponseSpec,
    /// When each request is due.
    sends: Vec<Instant>,
    payload: P,
    slots: Vec<Slot>,
    done: D,
}

impl<P, D> Window<P, D> {
    fn send_time(&self, i: usize) -> Instant {
        self.sends[i]
    }

    fn next_event(&self) -> Option<Instant> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Slot::Waiting => Some(self.send_time(i)),
                Slot::InFlight(at) => Some(*at + self.spec.timeout),
                Slot::Ended(_) => None,
            })
            .min()
    }

    fn complete(&self) -> bool {
        self.slots.iter().all(|s| matches!(s, Slot::Ended(_)))
    }

    fn stats(&self) -> ResponseStats {
        let outcomes: Vec<Outcome> =
            self.slots.iter().filter_map(|s| if let Slot::Ended(o) = s { Some(*o) } else { None }).collect();
        ResponseStats::from_outcomes(&outcomes, self.spec.timeout)
    }
}

/// When each request of a window starting at `start` is due: request `i` at a point of its own
/// slot `[start + i·interval, start + (i+1)·interval)`, placed by `unit` (a draw from [0, 1)).
///
/// Random places keep the probes from locking onto the kernel's 100 ms CFS period: with requests
/// exactly 100 ms apart and windows on a 1 s grid, every request of a throttled container met the
/// same phase of the throttling cycle, and a busy loop sharing its quota went unseen in some runs.
pub(super) fn spaced(start: Instant, spec: ResponseSpec, mut unit: impl FnMut() -> f64) -> Vec<Instant> {
    (0..u32::from(spec.count))
        .map(|i| start + spec.interval * i + spec.interval.mul_f64(unit().clamp(0.0, 0.999_999)))
        .collect()
}

/// A request to start now: its window's key, its index, and the window's payload.
/// The grid sends are put on ([`on_grid`]): 10 places per 100 ms slot still keep the probes off the
/// CFS period's phase, and the requests of all windows due within one step wake the engine once
/// (300 requests a second were 300 wake-ups, now at most 100).
pub(super) const SEND_GRID: Duration = Duration::from_millis(10);

/// `t` rounded up to the grid of `step` counted from `epoch` (`t` itself before the epoch).
pub(super) fn on_grid(t: Instant, epoch: Instant, step: Duration) -> Instant {
    let step = step.as_nanos().max(1);
    let since = t.saturating_duration_since(epoch).as_nanos();
    let up = since.div_ceil(step) * step;
    epoch + Duration::from_nanos(u64::try_from(up).unwrap_or(u64::MAX))
}

pub(super) type Launch<P> = (u64, usize, P);

/// The open windows of the process. `P` is what a request needs to be sent (the address and
/// target), `D` where the finished window's stats go.
pub(super) struct Windows<P, D> {
    open: HashMap<u64, Window<P, D>>,
    next_key: u64,
}

impl<P, D> Default for Windows<P, D> {
    fn default() -> Self {
        Self { open: HashMap::new(), next_key: 0 }
    }
}

impl<P: Clone, D> Windows<P, D> {
    pub(super) fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Opens a window whose requests are due `interval` apart from `start`; returns its key.
    #[cfg(test)]
    pub(super) fn open(&mut self, spec: ResponseSpec, start: Instant, payload: P, done: D) -> u64 {
        self.open_at(spec, spaced(start, spec, || 0.0), payload, done)
    }

    /// Opens a window whose request `i` is due at `sends[i]`; returns its key.
    pub(super) fn open_at(&mut self, spec: ResponseSpec, sends: Vec<Instant>, payload: P, done: D) -> u64 {
        let key = self.next_key;
        self.next_key += 1;
        let slots = vec![Slot::Waiting; sends.len()];
        self.open.insert(key, Window { spec, sends, payload, slots, done });
        key
    }

    /// The earliest instant at which a request is due or one times out.
    pub(super) fn next_event(&self) -> Option<Instant> {
        self.open.values().filter_map(Window::next_event).min()
    }

    /// The requests due by `now`, marked in flight from `now`.
    pub(super) fn due(&mut self, now: Instant) -> Vec<Launch<P>> {
        let mut out = Vec::new();
        for (key, w) in &mut self.open {
            for i in 0..w.slots.len() {
                if w.slots[i] == Slot::Waiting && w.send_time(i) <= now {
                    w.slots[i] = Slot::InFlight(now);
                    out.push((*key, i, w.payload.clone()));
                }
            }
        }
        out
    }

    /// The requests in flight past their timeout at `now` (still in flight: the caller ends
    /// each with [`Self::timed_out`]).
    pub(super) fn overdue(&self, now: Instant) -> Vec<(u64, usize)> {
        let mut out = Vec::new();
        for (key, w) in &self.open {
            for (i, s) in w.slots.iter().enumerate() {
                if matches!(s, Slot::InFlight(at) if *at + w.spec.timeout <= now) {
                    out.push((*key, i));
                }
            }
        }
        out
    }

    /// Ends a request with what it measured. A request already ended (timed out) or of a
    /// closed window is left alone; a success slower than the timeout is a failure at the timeout.
    pub(super) fn ended(&mut self, key: u64, i: usize, outcome: Outcome) {
        let Some(w) = self.open.get_mut(&key) else { return };
        let timeout = w.spec.timeout;
        if let Some(slot @ Slot::InFlight(_)) = w.slots.get_mut(i) {
            let late = outcome.took >= timeout;
            *slot = Slot::Ended(Outcome { ok: outcome.ok && !late, took: outcome.took.min(timeout), ..outcome });
        }
    }

    /// Ends a request that ran out of time: a failure at the timeout.
    pub(super) fn timed_out(&mut self, key: u64, i: usize, connected: bool) {
        let Some(w) = self.open.get_mut(&key) else { return };
        let took = w.spec.timeout;
        self.ended(key, i, Outcome { ok: false, took, connected });
    }

    /// Removes the windows whose every request ended: (reply channel, stats).
    pub(super) fn finished(&mut self) -> Vec<(D, ResponseStats)> {
        let done: Vec<u64> = self.open.iter().filter(|(_, w)| w.complete()).map(|(k, _)| *k).collect();
        done.into_iter()
            .filter_map(|k| self.open.remove(&k))
            .map(|w| {
                let stats = w.stats();
                (w.done, stats)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn spec(count: u16) -> ResponseSpec {
        ResponseSpec { count, interval: ms(100), timeout: ms(500) }
    }

    fn ok(took: u64) -> Outcome {
        Outcome { ok: true, took: ms(took), connected: true }
    }

    #[test]
    fn each_request_is_due_within_its_own_slot() {
        let t0 = Instant::now();
        let mut draws = [0.0, 0.5, 0.999_999_9, 7.0].into_iter();
        let sends = spaced(t0, ResponseSpec { count: 4, ..spec(4) }, || draws.next().unwrap());
        assert_eq!(sends[0], t0);
        assert_eq!(sends[1], t0 + ms(150));
        assert!(sends[2] >= t0 + ms(299) && sends[2] < t0 + ms(300));
        assert!(sends[3] >= t0 + ms(399) && sends[3] < t0 + ms(400), "out-of-range draws stay in the slot");
    }

    #[test]
    fn sends_round_up_to_the_grid_of_the_engine() {
        let e = Instant::now();
        assert_eq!(on_grid(e, e, ms(10)), e);
        assert_eq!(on_grid(e + Duration::from_micros(1), e, ms(10)), e + ms(10));
        assert_eq!(on_grid(e + ms(10), e, ms(10)), e + ms(10));
        assert_eq!(on_grid(e + ms(157), e, ms(10)), e + ms(160));
    }

    proptest! {
        #[test]
        fn a_send_on_the_grid_is_at_most_one_step_late(since in 0u64..10_000_000_000, step_us in 1u64..100_000) {
            let (e, step) = (Instant::now(), Duration::from_micros(step_us));
            let t = e + Duration::from_nanos(since);
            let g = on_grid(t, e, step);
            prop_assert!(g >= t && g - t < step);
            prop_assert_eq!((g - e).as_nanos() % step.as_nanos(), 0);
        }
    }

    #[test]
    fn requests_are_due_one_interval_apart() {
        let t0 = Instant::now();
        let mut w: Windows<&str, u8> = Windows::default();
        let key = w.open(spec(3), t0, "svc", 1);
        assert_eq!(w.next_event(), Some(t0));
        assert_eq!(w.due(t0), vec![(key, 0, "svc")]);
        assert_eq!(w.next_event(), Some(t0 + ms(100)), "the next send comes before the first timeout");
        assert!(w.due(t0 + ms(99)).is_empty());
        assert_eq!(w.due(t0 + ms(250)).len(), 2, "a late engine sends every request that fell due");
        assert!(w.due(t0 + ms(300)).is_empty(), "each request is sent once");
    }

    #[test]
    fn a_window_ends_when_every_request_ended_and_its_median_counts_failures_at_the_timeout() {
        let t0 = Instant::now();
        let mut w: Windows<(), u8> = Windows::default();
        let key = w.open(spec(3), t0, (), 7);
        let _ = w.due(t0 + ms(200));
        w.ended(key, 0, ok(10));
        w.ended(key, 1, Outcome { ok: false, took: ms(2), connected: false });
        assert!(w.finished().is_empty(), "one request still in flight");
        w.ended(key, 2, ok(30));
        let [(done, stats)] = w.finished().try_into().unwrap();
        assert_eq!(done, 7);
        assert_eq!((stats.sent, stats.failed, stats.connected), (3, 1, 2));
        // 10, 30 and the failure at 500: the median is 30
        assert_eq!(stats.median, Some(ms(30)));
        assert!(w.is_empty());
    }

    #[test]
    fn overdue_requests_fail_at_the_timeout_and_a_late_answer_is_ignored() {
        let t0 = Instant::now();
        let mut w: Windows<(), ()> = Windows::default();
        let key = w.open(spec(1), t0, (), ());
        let _ = w.due(t0);
        assert!(w.overdue(t0 + ms(499)).is_empty());
        assert_eq!(w.next_event(), Some(t0 + ms(500)));
        assert_eq!(w.overdue(t0 + ms(500)), vec![(key, 0)]);
        w.timed_out(key, 0, true);
        w.ended(key, 0, ok(1));
        let [((), stats)] = w.finished().try_into().unwrap();
        assert_eq!((stats.failed, stats.connected, stats.median), (1, 1, Some(ms(500))));
    }

    #[test]
    fn a_success_slower_than_the_timeout_is_a_failure_at_the_timeout() {
        let t0 = Instant::now();
        let mut w: Windows<(), ()> = Windows::default();
        let key = w.open(spec(1), t0, (), ());
        let _ = w.due(t0);
        w.ended(key, 0, ok(900));
        let [((), stats)] = w.finished().try_into().unwrap();
        assert_eq!((stats.failed, stats.median), (1, Some(ms(500))));
    }

    #[test]
    fn answers_for_unknown_windows_or_requests_change_nothing() {
        let t0 = Instant::now();
        let mut w: Windows<(), ()> = Windows::default();
        let key = w.open(spec(2), t0, (), ());
        w.ended(key + 1, 0, ok(1));
        w.ended(key, 5, ok(1));
        w.ended(key, 1, ok(1)); // not sent yet
        assert!(w.finished().is_empty());
        assert_eq!(w.next_event(), Some(t0));
    }

    proptest! {
        #[test]
        fn every_window_finishes_once_all_its_requests_ended_or_timed_out(
            counts in proptest::collection::vec(1u16..6, 1..8),
            answers in proptest::collection::vec((0u64..800, any::<bool>()), 0..64),
        ) {
            let t0 = Instant::now();
            let mut w: Windows<(), usize> = Windows::default();
            for (n, c) in counts.iter().enumerate() {
                w.open(spec(*c), t0 + ms(n as u64 * 37), (), n);
            }
            let mut now = t0;
            let mut finished = Vec::new();
            let mut answers = answers.into_iter();
            while !w.is_empty() {
                let next = w.next_event().expect("an open window has a next event");
                prop_assert!(next >= now || w.due(now).is_empty() && w.overdue(now).is_empty());
                now = now.max(next);
                for (key, i, ()) in w.due(now) {
                    if let Some((took, ok_)) = answers.next() {
                        w.ended(key, i, Outcome { ok: ok_, took: ms(took), connected: ok_ });
                    }
                }
                for (key, i) in w.overdue(now) {
                    w.timed_out(key, i, false);
                }
                finished.extend(w.finished());
            }
            finished.sort_by_key(|(n, _)| *n);
            prop_assert_eq!(finished.len(), counts.len());
            for ((n, stats), c) in finished.iter().zip(&counts) {
                prop_assert_eq!(stats.sent, *c, "window {}", n);
                prop_assert!(stats.failed <= stats.sent);
                prop_assert!(stats.median.is_some_and(|m| m <= ms(500)));
            }
        }
    }
}
