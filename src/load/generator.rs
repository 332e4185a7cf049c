//! The open-loop generator: requests leave at the times the [`Schedule`] says, whatever the
//! responses do, and each one's latency counts from its *scheduled* time, so a slow server (or a
//! late sender) cannot hide its slowness (no coordinated omission).
//!
//! It runs on a thread of its own with a one-thread runtime: every request is a future in one
//! `FuturesUnordered`, one timer waits for the next send, one for the next second's report.
//! Bounded: it stops at its duration, at [`LoadHandle::stop`], or when dropped, and waits for the
//! requests in flight at most their timeout.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::time::Instant;

use super::schedule::Schedule;
use crate::probe::response::{ResponseTarget, exchange, request_bytes};

/// Longest run accepted.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// One target: `http://HOST:PORT/PATH`, resolved when parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub url: String,
    pub addr: SocketAddr,
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("target must be http://HOST:PORT/PATH with a host that resolves, got {0:?}")]
pub struct TargetError(pub String);

impl std::str::FromStr for Target {
    type Err = TargetError;
    fn from_str(s: &str) -> Result<Self, TargetError> {
        let bad = || TargetError(s.to_owned());
        let rest = s.strip_prefix("http://").ok_or_else(bad)?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if !path.bytes().all(|b| b.is_ascii_graphic()) || path.len() > 1024 {
            return Err(bad());
        }
        let (host, port) = authority.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().ok().filter(|p| *p > 0).ok_or_else(bad)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addr = (host, port).to_socket_addrs().ok().and_then(|mut a| a.next()).ok_or_else(bad)?;
        Ok(Self { url: s.to_owned(), addr, path: path.to_owned() })
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Each target gets the whole schedule (rates are per target).
    pub targets: Vec<Target>,
    pub schedule: Schedule,
    pub duration: Duration,
    /// A request not answered by then counts as timed out.
    pub timeout: Duration,
    /// Requests in flight at most; a send due past it is counted as dropped, never delayed.
    pub max_in_flight: usize,
}

impl LoadSpec {
    pub fn validate(&self) -> Result<(), String> {
        if self.targets.is_empty() {
            return Err("at least one target is needed".into());
        }
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            return Err(format!("duration must be more than 0 and at most {} s", MAX_DURATION.as_secs()));
        }
        if self.timeout.is_zero() || self.timeout > Duration::from_secs(600) {
            return Err("timeout must be more than 0 and at most 600 s".into());
        }
        if self.max_in_flight == 0 {
            return Err("max in flight must be at least 1".into());
        }
        Ok(())
    }
}

/// One second of a run (by completion time for answers, by send time for sends).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Second {
    pub second: u64,
    /// The schedule's rate at the start of this second, per target.
    pub wanted_rate: f64,
    pub sent: u64,
    pub ok: u64,
    /// Answered with another status, refused, reset or timed out.
    pub failed: u64,
    pub timed_out: u64,
    pub dropped: u64,
    /// Latency of the successful answers of this second; null without any.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

impl Second {
    pub const CSV_HEADER: &'static str = "second,wanted_rate,sent,ok,failed,timed_out,dropped,p50_ms,p99_ms,max_ms";

    pub fn csv(&self) -> String {
        let o = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_default();
        format!(
            "{},{},{},{},{},{},{},{},{},{}",
            self.second,
            self.wanted_rate,
            self.sent,
            self.ok,
            self.failed,
            self.timed_out,
            self.dropped,
            o(self.p50_ms),
            o(self.p99_ms),
            o(self.max_ms)
        )
    }
}

/// Latency percentiles of successful answers, in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// The whole run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    pub targets: Vec<String>,
    pub schedule: String,
    /// How long requests were sent, in seconds (less than asked when stopped).
    pub duration_s: f64,
    /// Sends the schedule asked for over `duration_s`, all targets.
    pub scheduled: u64,
    pub sent: u64,
    pub ok: u64,
    pub failed: u64,
    pub timed_out: u64,
    pub dropped: u64,
    /// `sent / duration_s`, all targets.
    pub achieved_rate: f64,
    /// Null when nothing succeeded.
    pub latency: Option<Latency>,
    /// How late requests left against their scheduled times (the generator's own lag, already
    /// inside `latency`), in milliseconds: p99 and max; null when nothing was sent.
    pub send_lag_p99_ms: Option<f64>,
    pub send_lag_max_ms: Option<f64>,
}

/// A running generator.
pub struct LoadHandle {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Summary>>,
}

impl LoadHandle {
    /// Stops sending now; [`LoadHandle::join`] then waits for the requests in flight.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// The flag [`LoadHandle::stop`] sets, for a caller that gives the handle away.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Waits for the end of the run.
    pub fn join(mut self) -> Summary {
        let thread = self.thread.take();
        thread.and_then(|t| t.join().ok()).unwrap_or_else(|| Summary::empty(&[], ""))
    }

    /// [`LoadHandle::join`] from async code.
    pub async fn finished(self) -> Summary {
        tokio::task::spawn_blocking(move || self.join()).await.unwrap_or_else(|_| Summary::empty(&[], ""))
    }
}

impl Drop for LoadHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts a run of a validated `spec` on its own thread; `on_second` gets every second as it
/// closes.
pub fn spawn(spec: LoadSpec, on_second: impl FnMut(&Second) + Send + 'static) -> std::io::Result<LoadHandle> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new().name("hms-load".into()).spawn(move || {
        match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt.block_on(run(&spec, &flag, on_second)),
            Err(_) => Summary::empty(&spec.targets, &spec.schedule.to_string()),
        }
    })?;
    Ok(LoadHandle { stop, thread: Some(thread) })
}

impl Summary {
    fn empty(targets: &[Target], schedule: &str) -> Self {
        Self {
            targets: targets.iter().map(|t| t.url.clone()).collect(),
            schedule: schedule.to_owned(),
            duration_s: 0.0,
            scheduled: 0,
            sent: 0,
            ok: 0,
            failed: 0,
            timed_out: 0,
            dropped: 0,
            achieved_rate: 0.0,
            latency: None,
            send_lag_p99_ms: None,
            send_lag_max_ms: None,
        }
    }
}

/// How a request ended.
enum Ended {
    Ok(Duration),
    Failed,
    TimedOut,
}

/// Counts of one second, closed into a [`Second`].
struct Tally {
    second: u64,
    wanted_rate: f64,
    sent: u64,
    ok: u64,
    failed: u64,
    timed_out: u64,
    dropped: u64,
    latency: Histogram<u64>,
}

fn histogram() -> Histogram<u64> {
    // microseconds, 1 µs to one hour, 3 significant digits
    #[allow(clippy::expect_used, reason = "constant bounds that the crate accepts")]
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl Tally {
    fn new(second: u64, wanted_rate: f64) -> Self {
        Self { second, wanted_rate, sent: 0, ok: 0, failed: 0, timed_out: 0, dropped: 0, latency: histogram() }
    }

    fn close(&self) -> Second {
        let h = &self.latency;
        let some = |v: u64| (!h.is_empty()).then(|| ms(v));
        Second {
            second: self.second,
            wanted_rate: self.wanted_rate,
            sent: self.sent,
            ok: self.ok,
            failed: self.failed,
            timed_out: self.timed_out,
            dropped: self.dropped,
            p50_ms: some(h.value_at_quantile(0.5)),
            p99_ms: some(h.value_at_quantile(0.99)),
            max_ms: some(h.max()),
        }
    }
}

async fn run(spec: &LoadSpec, stop: &AtomicBool, mut on_second: impl FnMut(&Second)) -> Summary {
    let requests: Vec<(SocketAddr, Vec<u8>)> = spec
        .targets
        .iter()
        .map(|t| {
            let target = ResponseTarget::Http { port: t.addr.port(), path: t.path.clone() };
            (t.addr, request_bytes(t.addr, &target))
        })
        .collect();
    let start = Instant::now();
    let mut total = histogram();
    let mut lag = histogram();
    let (mut sent, mut ok, mut failed, mut timed_out, mut dropped) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut tally = Tally::new(0, spec.schedule.rate_at(Duration::ZERO));
    let mut next_send = Duration::ZERO;
    let mut sending = true;
    let mut sent_for = Duration::ZERO;
    let mut running = FuturesUnordered::new();
    loop {
        let now = start.elapsed();
        if sending && (now >= spec.duration || stop.load(Ordering::Relaxed)) {
            sending = false;
            sent_for = now.min(spec.duration);
        }
        // close the seconds that ended
        while now >= Duration::from_secs(tally.second + 1) {
            on_second(&tally.close());
            let second = tally.second + 1;
            tally = Tally::new(second, spec.schedule.rate_at(Duration::from_secs(second)));
        }
        if !sending && running.is_empty() {
            break;
        }
        // every send due by now leaves now: a late sender catches up, it never skips
        while sending && next_send <= now && next_send < spec.duration {
            if spec.schedule.rate_at(next_send) > 0.0 {
                for (addr, request) in &requests {
                    if running.len() >= spec.max_in_flight {
                        dropped += 1;
                        tally.dropped += 1;
                        continue;
                    }
                    let (addr, due) = (*addr, start + next_send);
                    lag.saturating_record(u64::try_from(due.elapsed().as_micros()).unwrap_or(u64::MAX).max(1));
                    let timeout = spec.timeout;
                    running.push(async move {
                        match tokio::time::timeout_at(due + timeout, exchange(addr, request, || ())).await {
                            Ok(Ok(true)) => Ended::Ok(due.elapsed()),
                            Ok(_) => Ended::Failed,
                            Err(_) => Ended::TimedOut,
                        }
                    });
                    sent += 1;
                    tally.sent += 1;
                }
            }
            next_send = spec.schedule.next_send(next_send);
        }
        let next_second = start + Duration::from_secs(tally.second + 1);
        let wake = if sending { (start + next_send).min(next_second) } else { next_second };
        // at least every 100 ms, to see a stop
        let wake = wake.min(Instant::now() + Duration::from_millis(100));
        tokio::select! {
            Some(ended) = running.next(), if !running.is_empty() => {
                match ended {
                    Ended::Ok(took) => {
                        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
                        total.saturating_record(us);
                        tally.latency.saturating_record(us);
                        ok += 1;
                        tally.ok += 1;
                    }
                    Ended::Failed => {
                        failed += 1;
                        tally.failed += 1;
                    }
                    Ended::TimedOut => {
                        failed += 1;
                        timed_out += 1;
                        tally.failed += 1;
                        tally.timed_out += 1;
                    }
                }
            }
            () = tokio::time::sleep_until(wake) => {}
        }
    }
    if tally.sent + tally.ok + tally.failed + tally.dropped > 0 {
        on_second(&tally.close());
    }
    // every send that came due left or was dropped: no second walk over the schedule
    let scheduled = sent + dropped;
    let secs = sent_for.as_secs_f64();
    let latency = (!total.is_empty()).then(|| Latency {
        count: total.len(),
        mean_ms: total.mean() / 1000.0,
        p50_ms: ms(total.value_at_quantile(0.5)),
        p90_ms: ms(total.value_at_quantile(0.9)),
        p99_ms: ms(total.value_at_quantile(0.99)),
        p999_ms: ms(total.value_at_quantile(0.999)),
        max_ms: ms(total.max()),
    });
    Summary {
        targets: spec.targets.iter().map(|t| t.url.clone()).collect(),
        schedule: spec.schedule.to_string(),
        duration_s: secs,
        scheduled,
        sent,
        ok,
        failed,
        timed_out,
        dropped,
        achieved_rate: if secs > 0.0 { sent as f64 / secs } else { 0.0 },
        latency,
        send_lag_p99_ms: (!lag.is_empty()).then(|| ms(lag.value_at_quantile(0.99))),
        send_lag_max_ms: (!lag.is_empty()).then(|| ms(lag.max())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_resolve() {
        let t: Target = "http://127.0.0.1:8080/cgi-bin/work?n=5".parse().unwrap();
        assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(t.path, "/cgi-bin/work?n=5");
        assert_eq!("http://localhost:80".parse::<Target>().unwrap().path, "/");
        assert_eq!("http://[::1]:80/".parse::<Target>().unwrap().addr, "[::1]:80".parse().unwrap());
        for bad in ["", "https://127.0.0.1:1/", "http://127.0.0.1/", "http://127.0.0.1:0/", "http://1.2.3.4:80/a b"] {
            let e = bad.parse::<Target>().unwrap_err();
            assert!(e.to_string().starts_with("target must be"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_spec_out_of_bounds_is_refused() {
        let spec = LoadSpec {
            targets: vec!["http://127.0.0.1:1/".parse().unwrap()],
            schedule: Schedule::Constant(1.0),
            duration: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            max_in_flight: 10,
        };
        assert!(spec.validate().is_ok());
        assert!(LoadSpec { targets: vec![], ..spec.clone() }.validate().is_err());
        assert!(LoadSpec { duration: Duration::ZERO, ..spec.clone() }.validate().is_err());
        assert!(LoadSpec { duration: MAX_DURATION * 2, ..spec.clone() }.validate().is_err());
        assert!(LoadSpec { timeout: Duration::ZERO, ..spec.clone() }.validate().is_err());
        assert!(LoadSpec { max_in_flight: 0, ..spec }.validate().is_err());
    }

    #[test]
    fn a_second_prints_as_one_csv_row() {
        let mut t = Tally::new(3, 50.0);
        t.sent = 50;
        t.ok = 49;
        t.failed = 1;
        t.latency.saturating_record(12_000);
        let row = t.close().csv();
        assert_eq!(row.split(',').count(), Second::CSV_HEADER.split(',').count());
        assert!(row.starts_with("3,50,50,49,1,0,0,12.0"), "{row}");
        assert_eq!(Tally::new(0, 1.0).close().csv(), "0,1,0,0,0,0,0,,,");
    }
}
