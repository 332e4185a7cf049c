//! The bounded per-container history a host manager keeps: one compact point per probe period,
//! [`SPAN`] back (ten minutes at the default one-second period), 24 bytes a point.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::signals::{Signals, WorkloadUnit};
use crate::model;

/// How far back a series reaches.
pub const SPAN: Duration = Duration::from_secs(600);
/// Fewest and most points a series keeps, whatever the probe period.
const MIN_POINTS: usize = 60;
const MAX_POINTS: usize = 6000;

/// One period, compact: f32 values (`NaN`: not measured), percentages in a byte (`u8::MAX`: not
/// measured), memory in KiB, time in tenths of a second after the series' base.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Point {
    at_ds: u32,
    response_ms: f32,
    workload: f32,
    cpu_percent: f32,
    memory_kib: u32,
    failed_pct: u8,
    throttled_pct: u8,
    loss_pct: u8,
}

const NONE_U8: u8 = u8::MAX;
const NONE_U32: u32 = u32::MAX;

/// One point as REST shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SeriesPoint {
    /// RFC 3339 start of the period, to a tenth of a second.
    pub at: String,
    pub response_ms: Option<f64>,
    /// Share (0–1) of the period's response-time requests that failed.
    pub response_failed: Option<f64>,
    pub workload: Option<f64>,
    /// Percent of one core.
    pub cpu_percent: Option<f64>,
    /// Share (0–1) of CFS periods throttled.
    pub cpu_throttled: Option<f64>,
    pub memory_bytes: Option<u64>,
    /// Packet loss of the period's ICMP window, 0–100.
    pub packet_loss: Option<f64>,
}

/// A container's kept series as REST shows it (`GET /containers/{address}/{id}/series`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SeriesRecord {
    pub host: String,
    /// 12-character short id.
    pub container: String,
    pub name: String,
    /// Seconds between points.
    pub period_secs: f64,
    /// What `workload` counts per second: `requests` or `packets`.
    pub workload_unit: String,
    /// The container's memory limit, or null without one.
    pub memory_limit_bytes: Option<u64>,
    /// Oldest first.
    pub points: Vec<SeriesPoint>,
}

/// Which points a reader wants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeriesQuery {
    /// Points at or after this instant.
    pub since: Option<OffsetDateTime>,
    /// At most this many, the latest.
    pub last: Option<u32>,
}

/// The history of one container.
#[derive(Debug, Clone)]
pub struct Series {
    base: OffsetDateTime,
    period: Duration,
    points: VecDeque<Point>,
    cap: usize,
    unit: WorkloadUnit,
    memory_limit: Option<u64>,
}

impl Series {
    /// An empty series for a probe period; points count from `base`'s whole second.
    pub fn new(period: Duration, base: OffsetDateTime) -> Self {
        Self {
            base: base.replace_nanosecond(0).unwrap_or(base),
            period,
            points: VecDeque::new(),
            cap: capacity(period),
            unit: WorkloadUnit::default(),
            memory_limit: None,
        }
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Appends a period measured at `at`, dropping the oldest beyond the capacity.
    pub fn push(&mut self, at: OffsetDateTime, s: &Signals, packet_loss: Option<f64>) {
        if self.points.capacity() == 0 {
            self.points.reserve_exact(self.cap);
        }
        let ds = ((at - self.base).whole_milliseconds() / 100).clamp(0, i128::from(u32::MAX - 1));
        let f = |v: Option<f64>| v.map_or(f32::NAN, |v| v as f32);
        let pct = |v: Option<f64>| v.map_or(NONE_U8, |v| v.round().clamp(0.0, 100.0) as u8);
        let point = Point {
            at_ds: u32::try_from(ds).unwrap_or(u32::MAX - 1),
            response_ms: f(s.response_ms),
            workload: f(s.workload),
            cpu_percent: f(s.cpu_percent),
            memory_kib: s.memory_bytes.map_or(NONE_U32, |b| u32::try_from(b / 1024).unwrap_or(NONE_U32 - 1)),
            failed_pct: pct(s.response_failed.map(|v| v * 100.0)),
            throttled_pct: pct(s.cpu_throttled.map(|v| v * 100.0)),
            loss_pct: pct(packet_loss),
        };
        if self.points.len() == self.cap {
            self.points.pop_front();
        }
        self.points.push_back(point);
        self.unit = s.workload_unit;
        self.memory_limit = s.memory_limit_bytes;
    }

    /// The points a query asks for, oldest first.
    pub fn points(&self, q: SeriesQuery) -> Vec<SeriesPoint> {
        let since_ds = q.since.map(|t| (t - self.base).whole_milliseconds() / 100);
        let kept = self.points.iter().filter(|p| since_ds.is_none_or(|s| i128::from(p.at_ds) >= s));
        let mut out: Vec<SeriesPoint> = kept.map(|p| self.show(p)).collect();
        if let Some(last) = q.last {
            let drop = out.len().saturating_sub(last as usize);
            out.drain(..drop);
        }
        out
    }

    /// The whole record for REST.
    pub fn record(&self, host: &str, id: &str, name: &str, q: SeriesQuery) -> SeriesRecord {
        SeriesRecord {
            host: host.to_owned(),
            container: model::short_id(id).to_owned(),
            name: name.to_owned(),
            period_secs: self.period.as_secs_f64(),
            workload_unit: self.unit.as_str().to_owned(),
            memory_limit_bytes: self.memory_limit,
            points: self.points(q),
        }
    }

    fn show(&self, p: &Point) -> SeriesPoint {
        let f = |v: f32| (!v.is_nan()).then_some(f64::from(v));
        let share = |v: u8| (v != NONE_U8).then(|| f64::from(v) / 100.0);
        SeriesPoint {
            at: model::rfc3339(self.base + time::Duration::milliseconds(i64::from(p.at_ds) * 100)),
            response_ms: f(p.response_ms).map(|v| (v * 100.0).round() / 100.0),
            response_failed: share(p.failed_pct),
            workload: f(p.workload).map(|v| (v * 100.0).round() / 100.0),
            cpu_percent: f(p.cpu_percent).map(|v| (v * 100.0).round() / 100.0),
            cpu_throttled: share(p.throttled_pct),
            memory_bytes: (p.memory_kib != NONE_U32).then(|| u64::from(p.memory_kib) * 1024),
            packet_loss: (p.loss_pct != NONE_U8).then_some(f64::from(p.loss_pct)),
        }
    }
}

/// Points kept at a probe period: [`SPAN`] of them, within bounds.
fn capacity(period: Duration) -> usize {
    let n = SPAN.as_secs_f64() / period.as_secs_f64().max(1e-3);
    (n.ceil() as usize).clamp(MIN_POINTS, MAX_POINTS)
}

/// Bytes a series holds per point (for the memory budget in docs/benchmarks.md).
pub const POINT_BYTES: usize = std::mem::size_of::<Point>();

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    fn sig(ms: f64) -> Signals {
        Signals {
            response_ms: Some(ms),
            response_failed: Some(1.0 / 3.0),
            workload: Some(12.5),
            workload_unit: WorkloadUnit::Requests,
            cpu_percent: Some(42.25),
            cpu_throttled: None,
            memory_bytes: Some(10 << 20),
            memory_limit_bytes: Some(64 << 20),
            memory_failures: Some(0),
        }
    }

    #[test]
    fn a_point_is_small_and_ten_minutes_fit_in_under_twenty_kib() {
        assert_eq!(POINT_BYTES, 24);
        assert_eq!(capacity(Duration::from_secs(1)), 600);
        assert!(capacity(Duration::from_secs(1)) * POINT_BYTES < 20 * 1024);
        assert_eq!(capacity(Duration::from_millis(1)), MAX_POINTS);
        assert_eq!(capacity(Duration::from_secs(60)), MIN_POINTS);
    }

    #[test]
    fn points_come_back_as_measured_oldest_first() {
        let mut s = Series::new(Duration::from_secs(1), t0());
        s.push(t0() + time::Duration::milliseconds(1234), &sig(20.0), Some(5.0));
        s.push(t0() + time::Duration::seconds(2), &Signals::default(), None);
        let rec = s.record("vm1", &"a".repeat(64), "web", SeriesQuery::default());
        assert_eq!((rec.container.as_str(), rec.workload_unit.as_str()), ("aaaaaaaaaaaa", "packets"));
        let [first, second] = rec.points.try_into().unwrap();
        assert_eq!(first.at, "2027-01-15T08:00:01.2Z");
        assert_eq!(first.response_ms, Some(20.0));
        assert_eq!(first.response_failed, Some(0.33));
        assert_eq!((first.workload, first.cpu_percent), (Some(12.5), Some(42.25)));
        assert_eq!((first.memory_bytes, first.packet_loss, first.cpu_throttled), (Some(10 << 20), Some(5.0), None));
        assert_eq!(second.response_ms, None, "not measured stays null");
        assert_eq!(second.memory_bytes, None);
    }

    #[test]
    fn times_show_to_a_tenth_of_a_second_whatever_the_first_point_s_instant() {
        let first = t0() + time::Duration::nanoseconds(193_114_816);
        let mut s = Series::new(Duration::from_secs(1), first);
        s.push(first, &sig(1.0), None);
        s.push(first + time::Duration::seconds(1), &sig(1.0), None);
        let at: Vec<String> = s.points(SeriesQuery::default()).into_iter().map(|p| p.at).collect();
        assert_eq!(at, ["2027-01-15T08:00:00.1Z", "2027-01-15T08:00:01.1Z"]);
    }

    #[test]
    fn a_series_keeps_its_span_and_answers_since_and_last() {
        let mut s = Series::new(Duration::from_secs(1), t0());
        for i in 0..700 {
            s.push(t0() + time::Duration::seconds(i), &sig(i as f64), None);
        }
        assert_eq!(s.len(), 600, "the oldest 100 dropped");
        let all = s.points(SeriesQuery::default());
        assert_eq!(all[0].response_ms, Some(100.0));
        let since = s.points(SeriesQuery { since: Some(t0() + time::Duration::seconds(690)), last: None });
        assert_eq!(since.len(), 10);
        let last = s.points(SeriesQuery { since: None, last: Some(3) });
        assert_eq!(last.iter().map(|p| p.response_ms.unwrap()).collect::<Vec<_>>(), [697.0, 698.0, 699.0]);
        assert!(s.points(SeriesQuery { since: Some(t0() + time::Duration::hours(1)), last: None }).is_empty());
    }
}
