//! What a run is and what it produced: the records `summary.json` holds, shared by the run
//! itself, the antagonist control, the charts and the table.

use serde::{Deserialize, Serialize};

use super::score::Score;
use crate::actors::controller::Stats;
use crate::config::HealMode;

/// What one run does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSpec {
    pub scenario: String,
    pub aggregation: f64,
    pub mode: HealMode,
    pub duration: f64,
    pub managers: usize,
    pub containers: usize,
    pub seed: u64,
    pub loss_scope: String,
    pub threshold: u8,
}

impl RunSpec {
    /// Folder name of the run under `--out`.
    pub fn dir_name(&self) -> String {
        format!("{}-agg{}-{}", self.scenario, self.aggregation, serde_json::to_string(&self.mode).unwrap_or_default())
            .replace('"', "")
    }
}

/// Bandwidth between managers and controller over the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Bandwidth {
    /// Mean payload bytes/s on the controller's cluster port (TCP, both directions).
    pub bytes_per_sec: f64,
    /// Highest one-second value.
    pub peak_bytes_per_sec: f64,
    /// Mean messages/s counted by the controller (notices, heartbeats, pulls, commands).
    pub messages_per_sec: f64,
    pub peak_messages_per_sec: f64,
    /// Bytes/s of the HMS messages themselves (bincode size), as the controller counts them.
    pub payload_bytes_per_sec: f64,
    /// The part of `payload_bytes_per_sec` that carries updates (notices, pulls, contents,
    /// commands): all of it but heartbeats — what the seed's bandwidth counted.
    #[serde(default)]
    pub update_bytes_per_sec: f64,
    /// Messages/s other than heartbeats.
    #[serde(default)]
    pub update_messages_per_sec: f64,
    /// Aggregation windows opened per second.
    #[serde(default)]
    pub windows_per_sec: f64,
    /// Update notices received per second.
    #[serde(default)]
    pub notices_per_sec: f64,
    /// Host pulls per second.
    #[serde(default)]
    pub pulls_per_sec: f64,
}

/// Everything a run produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub spec: RunSpec,
    pub score: Score,
    /// Fraction of the run in which the controller's view had no unpulled update (the seed's
    /// "availability").
    pub view_freshness: f64,
    /// The best view freshness this run's fault schedule allows under its aggregation time
    /// ([`super::score::freshness_bound`]).
    #[serde(default)]
    pub view_freshness_bound: f64,
    pub bandwidth: Bandwidth,
    /// Mean bare `docker start` measured before the run, on a quiet engine (seconds).
    pub bare_start: f64,
    /// Mean bare `docker start` of an unmonitored, unattacked container measured every 2 s
    /// during the run, under the same load (seconds): the baseline of the downtime ratio and the
    /// bound.
    #[serde(default)]
    pub bare_start_loaded: f64,
    pub samples_per_container: usize,
}

impl Bandwidth {
    /// The bandwidth of a run of `secs` seconds from its one-second series of (cluster-port bytes,
    /// controller messages) and the controller's counters at its start (`s0`) and end (`s1`).
    pub fn measured(series: &[(u64, u64)], s0: &Stats, s1: &Stats, secs: f64) -> Bandwidth {
        let deltas = |f: fn(&(u64, u64)) -> u64| -> Vec<f64> {
            series.windows(2).map(|w| f(&w[1]).saturating_sub(f(&w[0])) as f64).collect()
        };
        let (bytes, msgs) = (deltas(|p| p.0), deltas(|p| p.1));
        let mean = |v: &[f64]| if v.is_empty() { 0.0 } else { v.iter().sum::<f64>() / v.len() as f64 };
        let peak = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
        Bandwidth {
            bytes_per_sec: mean(&bytes),
            peak_bytes_per_sec: peak(&bytes),
            messages_per_sec: mean(&msgs),
            peak_messages_per_sec: peak(&msgs),
            payload_bytes_per_sec: s1.bytes.saturating_sub(s0.bytes) as f64 / secs,
            update_bytes_per_sec: (s1.bytes - s1.heartbeat_bytes).saturating_sub(s0.bytes - s0.heartbeat_bytes) as f64
                / secs,
            update_messages_per_sec: (s1.messages - s1.heartbeats).saturating_sub(s0.messages - s0.heartbeats) as f64
                / secs,
            windows_per_sec: s1.windows.saturating_sub(s0.windows) as f64 / secs,
            notices_per_sec: s1.notices.saturating_sub(s0.notices) as f64 / secs,
            pulls_per_sec: s1.pulls.saturating_sub(s0.pulls) as f64 / secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bandwidth_is_the_mean_and_peak_of_the_series_and_updates_leave_heartbeats_out() {
        let series = [(0, 0), (1000, 10), (4000, 20), (5000, 40)];
        let s0 = Stats { messages: 10, heartbeats: 4, bytes: 1000, heartbeat_bytes: 400, ..Stats::default() };
        let s1 = Stats { messages: 30, heartbeats: 14, bytes: 3000, heartbeat_bytes: 1400, ..Stats::default() };
        let b = Bandwidth::measured(&series, &s0, &s1, 10.0);
        assert_eq!((b.bytes_per_sec, b.peak_bytes_per_sec), (5000.0 / 3.0, 3000.0));
        assert_eq!((b.messages_per_sec, b.peak_messages_per_sec), (40.0 / 3.0, 20.0));
        assert_eq!(b.payload_bytes_per_sec, 200.0);
        assert_eq!(b.update_bytes_per_sec, 100.0);
        assert_eq!(b.update_messages_per_sec, 1.0);
    }
}
