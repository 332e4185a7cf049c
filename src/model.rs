//! Domain types shared by the actors, the HTTP layer and the store.
//!
//! `Observed*` types are what the edges (Docker, ICMP) report; `*Record` types are what HMS publishes.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A packet-loss threshold in percent, 0–100: validated once, where it enters (a flag, a body,
/// a label, a wire frame); everything past that edge holds a valid one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(into = "u8")]
pub struct Threshold(u8);

/// A threshold outside 0–100, or not an integer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("threshold must be an integer from 0 to 100, got {0}")]
pub struct ThresholdError(pub String);

impl Threshold {
    /// The seed's default, 30 %.
    pub const DEFAULT: Self = Self(30);

    pub fn new(percent: u8) -> Result<Self, ThresholdError> {
        if percent <= 100 { Ok(Self(percent)) } else { Err(ThresholdError(percent.to_string())) }
    }

    /// The percentage, 0–100.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl Default for Threshold {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl TryFrom<u8> for Threshold {
    type Error = ThresholdError;
    fn try_from(percent: u8) -> Result<Self, ThresholdError> {
        Self::new(percent)
    }
}

impl From<Threshold> for u8 {
    fn from(t: Threshold) -> u8 {
        t.0
    }
}

impl std::str::FromStr for Threshold {
    type Err = ThresholdError;
    fn from_str(s: &str) -> Result<Self, ThresholdError> {
        let n = s.trim().parse::<u8>().map_err(|_| ThresholdError(format!("{s:?}")))?;
        Self::new(n).map_err(|_| ThresholdError(format!("{s:?}")))
    }
}

/// Reads a `u8` from a binary frame, and any JSON number with an integral value (`40` or `40.0`)
/// from a body; anything else is a [`ThresholdError`] naming the value.
impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_u8(ThresholdVisitor)
    }
}

struct ThresholdVisitor;

impl ThresholdVisitor {
    fn check<E: serde::de::Error>(value: impl std::fmt::Display, n: Option<u8>) -> Result<Threshold, E> {
        n.ok_or_else(|| ThresholdError(value.to_string())).and_then(Threshold::new).map_err(E::custom)
    }
}

impl serde::de::Visitor<'_> for ThresholdVisitor {
    type Value = Threshold;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an integer from 0 to 100")
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Threshold, E> {
        Self::check(v, u8::try_from(v).ok())
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Threshold, E> {
        Self::check(v, u8::try_from(v).ok())
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Threshold, E> {
        let integral = v.fract() == 0.0 && (0.0..=255.0).contains(&v);
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "integral and within 0..=255 (checked above)"
        )]
        Self::check(v, integral.then_some(v as u8))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Threshold, E> {
        Err(E::custom(ThresholdError(format!("{v:?}"))))
    }
}

/// The controller's aggregation window in seconds, validated where it enters: finite, at least
/// a millisecond (it is stored in milliseconds, so less would round to zero) and at most an hour.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Aggregation(f64);

/// An aggregation window outside [0.001, 3600] seconds, or not a number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("aggregation must be a number of seconds from 0.001 to 3600, got {0}")]
pub struct AggregationError(pub String);

impl Aggregation {
    /// Smallest window: one millisecond.
    pub const MIN_SECS: f64 = 0.001;
    /// Largest window: one hour.
    pub const MAX_SECS: f64 = 3600.0;

    pub fn new(secs: f64) -> Result<Self, AggregationError> {
        if secs.is_finite() && (Self::MIN_SECS..=Self::MAX_SECS).contains(&secs) {
            Ok(Self(secs))
        } else {
            Err(AggregationError(secs.to_string()))
        }
    }

    /// The window in seconds.
    pub fn secs(self) -> f64 {
        self.0
    }

    /// The window as a duration (never zero).
    pub fn duration(self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.0)
    }
}

impl TryFrom<f64> for Aggregation {
    type Error = AggregationError;
    fn try_from(secs: f64) -> Result<Self, AggregationError> {
        Self::new(secs)
    }
}

impl std::fmt::Display for Threshold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The Docker-level state of a container, reduced to what healing needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DockerState {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
    Unknown,
}

impl DockerState {
    /// Whether the container is down and should be started again.
    pub fn is_down(self) -> bool {
        matches!(self, Self::Exited | Self::Dead | Self::Created)
    }
}

/// Docker's health-check verdict, when the image defines one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    None,
    Starting,
    Healthy,
    Unhealthy,
}

/// One container as the runtime sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedContainer {
    /// Full 64-hex id.
    pub id: String,
    /// Name without the leading slash.
    pub name: String,
    pub image: String,
    pub ip: Option<IpAddr>,
    pub labels: BTreeMap<String, String>,
    pub state: DockerState,
    pub health: Health,
}

impl ObservedContainer {
    /// The 12-character short id used in every published record.
    pub fn short_id(&self) -> &str {
        short_id(&self.id)
    }
}

/// The 12-character prefix of a container id.
pub fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// The state HMS publishes for a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    Running,
    Restarting,
    Stopped,
    Ignored,
    Quarantined,
    Unknown,
}

/// A published container record (the REST contract's field names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ContainerRecord {
    /// 12-character short id.
    pub id: String,
    pub name: String,
    pub image: String,
    pub host: String,
    pub ip: Option<String>,
    pub state: ContainerState,
    /// Loss of the probe windows, 0–100, or null before the first window: the last window's
    /// when it moved at least 10 points from the value shown, crossed the threshold or came back
    /// to 0 (`health::published_loss`), so loss jitter does not flood the fleet view.
    pub packet_loss: Option<f64>,
    pub threshold: u8,
    pub restarts: u64,
    /// RFC 3339.
    pub last_restart: Option<String>,
    /// The response-time probe (`http://:PORT/PATH` or `tcp://:PORT`), or null.
    pub probe: Option<String>,
    /// Median response time of a recent probe period in milliseconds, or null (no probe, not
    /// running). Moves when the measured value moved by 10 % and 1 ms; the series has every period.
    pub response_ms: Option<f64>,
    /// Requests per second (with a probe) or packets per second (without) reaching the
    /// container, HMS's own probes excluded; moves by 10 % and 1/s.
    pub workload: Option<f64>,
    /// CPU used, in percent of one core; moves by 10 % and 2 points.
    pub cpu_percent: Option<f64>,
    /// Memory in use; moves by 10 % and 1 MiB.
    pub memory_bytes: Option<u64>,
    /// The level of the container's open anomaly (`GET /anomalies` has its record), or null.
    pub anomaly: Option<crate::analysis::Level>,
    /// Full id, so lookups by any prefix work.
    pub full_id: String,
}

/// Whether a host is reachable from the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HostStatus {
    Online,
    Offline,
}

/// A published host record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HostRecord {
    pub name: String,
    pub status: HostStatus,
    /// RFC 3339, or null before the first heartbeat.
    pub last_heartbeat: Option<String>,
    pub threshold: u8,
    pub endpoint: Option<String>,
    pub containers: usize,
    /// Share of all the host's CPUs busy, percent (0–100), from its last heartbeat; null when
    /// offline or unknown. Likewise the fields below.
    pub cpu_busy_percent: Option<f64>,
    pub memory_available_bytes: Option<u64>,
    pub memory_total_bytes: Option<u64>,
    /// One-minute load average.
    pub load1: Option<f64>,
    /// Pressure stall information, `some avg10` in percent, where the kernel has PSI.
    pub cpu_pressure: Option<f64>,
    pub memory_pressure: Option<f64>,
}

impl HostRecord {
    /// Shows a host's signals (all null: unknown).
    pub fn show_signals(&mut self, s: &crate::analysis::signals::HostSignals) {
        self.cpu_busy_percent = s.cpu_busy_percent.map(|v| (v * 10.0).round() / 10.0);
        self.memory_available_bytes = s.memory_available_bytes;
        self.memory_total_bytes = s.memory_total_bytes;
        self.load1 = s.load1;
        self.cpu_pressure = s.cpu_pressure;
        self.memory_pressure = s.memory_pressure;
    }
}

/// Formats a timestamp as RFC 3339 (UTC).
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Why a container lookup failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    NotFound,
    /// The query is a prefix of several ids; carries their short ids.
    Ambiguous(Vec<String>),
}

/// Finds the one container a query names: full id, short id, unique id prefix, or name.
/// `items` yields `(full_id, name)`; an exact name or full id wins over prefixes.
pub fn resolve<'a>(items: impl IntoIterator<Item = (&'a str, &'a str)>, query: &str) -> Result<&'a str, LookupError> {
    let query = query.trim_start_matches('/');
    if query.is_empty() {
        return Err(LookupError::NotFound);
    }
    let mut prefixed = Vec::new();
    for (id, name) in items {
        if id == query || name == query {
            return Ok(id);
        }
        if id.starts_with(query) {
            prefixed.push(id);
        }
    }
    match prefixed.as_slice() {
        [] => Err(LookupError::NotFound),
        [one] => Ok(one),
        many => Err(LookupError::Ambiguous(many.iter().map(|id| short_id(id).to_owned()).collect())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_is_validated_at_every_entry() {
        assert_eq!("40".parse::<Threshold>().map(Threshold::get), Ok(40));
        assert!("101".parse::<Threshold>().is_err());
        assert!(" x".parse::<Threshold>().is_err());
        assert!(Threshold::new(101).is_err());
        assert!(serde_json::from_str::<Threshold>("101").is_err());
        assert_eq!(serde_json::to_string(&Threshold::new(7).unwrap()).unwrap(), "7");
        let wire = crate::actors::protocol::wire::encode(&Threshold::new(100).unwrap()).unwrap();
        assert_eq!(crate::actors::protocol::wire::decode::<Threshold>(&wire).unwrap().get(), 100);
    }

    #[test]
    fn a_json_threshold_is_any_integral_number_from_0_to_100() {
        assert_eq!(serde_json::from_str::<Threshold>("40.0").map(Threshold::get).ok(), Some(40));
        assert_eq!(serde_json::from_str::<Threshold>("0").map(Threshold::get).ok(), Some(0));
        for bad in ["40.5", "-1", "256", "1e300", "\"7\"", "null"] {
            let e = serde_json::from_str::<Threshold>(bad).unwrap_err().to_string();
            assert!(e.contains("threshold") || e.contains("0 to 100"), "{bad}: {e}");
        }
    }

    #[test]
    fn aggregation_is_finite_and_within_a_millisecond_and_an_hour() {
        assert_eq!(Aggregation::new(0.2).map(Aggregation::secs), Ok(0.2));
        assert_eq!(Aggregation::new(3600.0).map(Aggregation::secs), Ok(3600.0));
        assert!(!Aggregation::new(0.001).unwrap().duration().is_zero());
        for bad in [0.0, -1.0, 3.9e-91, 0.000_999, 3600.5, f64::NAN, f64::INFINITY] {
            let e = Aggregation::new(bad).unwrap_err().to_string();
            assert!(e.starts_with("aggregation must be"), "{bad}: {e}");
        }
    }

    const ITEMS: [(&str, &str); 3] = [("abc111", "web"), ("abc222", "db"), ("def333", "abc")];

    #[test]
    fn resolves_by_name_full_id_and_unique_prefix() {
        assert_eq!(resolve(ITEMS, "web"), Ok("abc111"));
        assert_eq!(resolve(ITEMS, "abc222"), Ok("abc222"));
        assert_eq!(resolve(ITEMS, "def"), Ok("def333"));
        assert_eq!(resolve(ITEMS, "/db"), Ok("abc222"));
    }

    #[test]
    fn exact_name_beats_prefix_and_ambiguity_names_candidates() {
        assert_eq!(resolve(ITEMS, "abc"), Ok("def333"));
        assert_eq!(resolve(ITEMS, "ab"), Err(LookupError::Ambiguous(vec!["abc111".into(), "abc222".into()])));
        assert_eq!(resolve(ITEMS, "zz"), Err(LookupError::NotFound));
        assert_eq!(resolve(ITEMS, ""), Err(LookupError::NotFound));
    }
}
