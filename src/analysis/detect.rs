//! Detection: whether a container misbehaves, one period at a time, by two methods computed on
//! the same inputs (pure; the manager feeds them every period, the replay feeds them recorded
//! signals).
//!
//! - [`SeedDetector`], the paper's: Spearman's rank correlation between workload and response
//!   time over a sliding window. The paper gives `DD = 15` without its scale; we read it as a
//!   percentage: the *dissociation degree* is the rise of the response time over its fault-free
//!   reference, in percent, weighted by how little the workload explains it,
//!   `D = 100·(r_now/r_ref − 1)·(1 − max(ρ, 0))`, and an anomaly is `D > DD`. A rise that moves
//!   with the workload (`ρ → 1`) is not dissociated; one with no or a negative correlation
//!   counts in full. No confirmation: open at the first period over, closed at the first under.
//! - [`HmsDetector`], ours: a robust baseline of response time *conditioned on workload* (the
//!   fault-free periods of similar workload: their median, and their MAD as the spread), a period
//!   abnormal when it is both far (`Z` robust deviations) and clearly (`RATIO`×) above what that
//!   workload costs, or when memory nears its limit while growing; an anomaly opens after `K`
//!   abnormal periods of the last `N` and closes after `CLEAR` normal ones in a row. The baseline
//!   learns only from periods judged normal while nothing is open.

use std::collections::VecDeque;

use super::stats;

/// One period of one container, as the detectors see it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Observation {
    /// Mean response time (ms); `None` when the period had no answered request.
    pub response_ms: Option<f64>,
    /// Requests (or connections) a second.
    pub workload: Option<f64>,
    /// CPU used, % of one core.
    pub cpu_percent: Option<f64>,
    /// Share of CFS periods throttled, 0–1.
    pub cpu_throttled: Option<f64>,
    pub memory_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
}

/// What a detector says after a period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Nothing changed.
    None,
    /// An anomaly opened this period.
    Opened,
    /// The open anomaly closed this period.
    Closed,
}

/// The figures behind the last judgement, published as an anomaly's `evidence`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Figures {
    /// The response time judged (ms).
    pub response_ms: Option<f64>,
    /// What the baseline expects at this workload (ms).
    pub expected_ms: Option<f64>,
    /// Robust deviations above the expectation (method `hms`).
    pub score: Option<f64>,
    /// The workload over its baseline median.
    pub workload_ratio: Option<f64>,
    /// Spearman's ρ of workload and response time over the window (method `seed`).
    pub rho: Option<f64>,
    /// The dissociation degree D (method `seed`).
    pub dissociation: Option<f64>,
    /// Memory over its limit, when it weighed.
    pub memory_share: Option<f64>,
}

/// Where a detector stands after its last period.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Status {
    /// Whether an anomaly is open.
    pub open: bool,
    /// The figures behind the last judgement.
    pub figures: Figures,
}

/// A detection method over one container's periods.
pub trait Detector: Send {
    /// Judges one period.
    fn observe(&mut self, obs: &Observation) -> Change;
    fn status(&self) -> &Status;
}

/// Periods of fault-free history a baseline keeps.
pub const BASELINE_LEN: usize = 300;
/// Periods a baseline needs before it judges.
pub const WARM_UP: usize = 20;

/// Method `hms`'s parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HmsParams {
    /// Robust deviations (1.4826·MAD) above the expectation.
    pub z: f64,
    /// And at least this many times the expectation.
    pub ratio: f64,
    /// `k` abnormal periods of the last `n` open an anomaly.
    pub k: usize,
    pub n: usize,
    /// Normal periods in a row that close it.
    pub clear: usize,
    /// Neighbours in workload an expectation is the median of.
    pub neighbours: usize,
}

impl Default for HmsParams {
    fn default() -> Self {
        Self { z: 4.0, ratio: 4.0, k: 3, n: 5, clear: 5, neighbours: 25 }
    }
}

/// Method `hms` for one container.
#[derive(Debug, Clone)]
pub struct HmsDetector {
    params: HmsParams,
    /// Fault-free (workload, response, memory) points, newest last.
    baseline: VecDeque<(f64, f64, Option<u64>)>,
    recent: VecDeque<bool>,
    normal_run: usize,
    status: Status,
}

impl HmsDetector {
    pub fn new(params: HmsParams) -> Self {
        Self {
            params,
            baseline: VecDeque::with_capacity(BASELINE_LEN),
            recent: VecDeque::new(),
            normal_run: 0,
            status: Status::default(),
        }
    }

    /// The baseline's median workload, when warm.
    pub fn baseline_workload(&self) -> Option<f64> {
        if self.baseline.len() < WARM_UP {
            return None;
        }
        let w: Vec<f64> = self.baseline.iter().map(|p| p.0).collect();
        stats::median(&w)
    }

    /// What the baseline expects at `workload`: the median response of the points within ×1.5
    /// of it in workload (the `neighbours` nearest of them, log scale) — of the `neighbours`
    /// nearest at all when fewer than 5 are that close (a workload never seen is judged against
    /// the nearest one seen) — and the spread (1.4826·MAD, at least 10 % of the median and
    /// 0.5 ms).
    fn expect(&self, workload: f64) -> Option<(f64, f64)> {
        if self.baseline.len() < WARM_UP {
            return None;
        }
        let key = |w: f64| (w.max(0.0) + 1.0).ln();
        let mut by_distance: Vec<(f64, f64)> =
            self.baseline.iter().map(|&(w, r, _)| ((key(w) - key(workload)).abs(), r)).collect();
        by_distance.sort_by(|a, b| a.0.total_cmp(&b.0));
        let band = 1.5f64.ln();
        let within = by_distance.iter().take_while(|p| p.0 <= band).count();
        let take = if within >= 5 { within.min(self.params.neighbours) } else { self.params.neighbours };
        let near: Vec<f64> = by_distance.iter().take(take).map(|p| p.1).collect();
        let median = stats::median(&near)?;
        let spread = (1.4826 * stats::mad(&near)?).max(0.1 * median).max(0.5);
        Some((median, spread))
    }

    /// Whether memory nears its limit while above its baseline: [`MEMORY_NEAR`] of the limit and
    /// at least 20 % of it over the baseline's median use.
    fn memory_abnormal(&self, obs: &Observation) -> Option<f64> {
        let (used, limit) = (obs.memory_bytes? as f64, obs.memory_limit_bytes? as f64);
        if limit <= 0.0 {
            return None;
        }
        let base: Vec<f64> = self.baseline.iter().filter_map(|p| p.2).map(|m| m as f64).collect();
        let base = stats::median(&base)?;
        (used >= MEMORY_NEAR * limit && used - base >= 0.2 * limit).then_some(used / limit)
    }
}

impl Detector for HmsDetector {
    fn status(&self) -> &Status {
        &self.status
    }

    fn observe(&mut self, obs: &Observation) -> Change {
        let workload = obs.workload.unwrap_or(0.0);
        let memory = self.memory_abnormal(obs);
        let mut figures = Figures {
            response_ms: obs.response_ms,
            workload_ratio: self.baseline_workload().filter(|b| *b > 0.0).map(|b| workload / b),
            memory_share: memory,
            ..Figures::default()
        };
        let slow = match (obs.response_ms, self.expect(workload)) {
            (Some(r), Some((expected, spread))) => {
                let score = (r - expected) / spread;
                figures.expected_ms = Some(expected);
                figures.score = Some(score);
                score >= self.params.z && r >= self.params.ratio * expected
            }
            _ => false,
        };
        let abnormal = slow || memory.is_some();
        self.recent.push_back(abnormal);
        while self.recent.len() > self.params.n {
            self.recent.pop_front();
        }
        self.normal_run = if abnormal { 0 } else { self.normal_run + 1 };
        // learn only from what is normal and while nothing is open
        if !abnormal
            && !self.status.open
            && let Some(r) = obs.response_ms
        {
            if self.baseline.len() == BASELINE_LEN {
                self.baseline.pop_front();
            }
            self.baseline.push_back((workload, r, obs.memory_bytes));
        }
        self.status.figures = figures;
        let hits = self.recent.iter().filter(|a| **a).count();
        if !self.status.open && hits >= self.params.k {
            self.status.open = true;
            return Change::Opened;
        }
        if self.status.open && self.normal_run >= self.params.clear {
            self.status.open = false;
            self.recent.clear();
            return Change::Closed;
        }
        Change::None
    }
}

/// The share of its memory limit at which a container's memory is near it (a leak growing
/// toward the limit is a fault before it slows anything).
pub const MEMORY_NEAR: f64 = 0.75;

/// Method `seed`'s parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeedParams {
    /// The dissociation degree over which a period is anomalous (the paper's 15).
    pub dd: f64,
    /// Periods of the sliding window (and of the fault-free reference).
    pub window: usize,
}

impl Default for SeedParams {
    fn default() -> Self {
        Self { dd: 15.0, window: 30 }
    }
}

/// Method `seed` for one container.
#[derive(Debug, Clone)]
pub struct SeedDetector {
    params: SeedParams,
    window: VecDeque<(f64, f64)>,
    reference: Option<f64>,
    status: Status,
}

/// Periods whose median is "now" in the seed's rise (a single period is too noisy to compare).
const SEED_NOW: usize = 3;

impl SeedDetector {
    pub fn new(params: SeedParams) -> Self {
        let window = params.window.max(SEED_NOW + 2);
        Self {
            params: SeedParams { window, ..params },
            window: VecDeque::with_capacity(window),
            reference: None,
            status: Status::default(),
        }
    }
}

impl Detector for SeedDetector {
    fn status(&self) -> &Status {
        &self.status
    }

    /// Judges one period; the first full window (assumed fault-free) sets the reference.
    fn observe(&mut self, obs: &Observation) -> Change {
        let Some(r) = obs.response_ms else { return Change::None };
        if self.window.len() == self.params.window {
            self.window.pop_front();
        }
        self.window.push_back((obs.workload.unwrap_or(0.0), r));
        if self.window.len() < self.params.window {
            return Change::None;
        }
        let (ws, rs): (Vec<f64>, Vec<f64>) = self.window.iter().copied().unzip();
        let reference = *self.reference.get_or_insert_with(|| stats::median(&rs).unwrap_or(r));
        let now = stats::median(&rs[rs.len() - SEED_NOW..]).unwrap_or(r);
        let rho = stats::spearman(&ws, &rs);
        let rise = if reference > 0.0 { 100.0 * (now / reference - 1.0) } else { 0.0 };
        let d = rise * (1.0 - rho.unwrap_or(0.0).max(0.0));
        self.status.figures = Figures {
            response_ms: Some(r),
            expected_ms: Some(reference),
            rho,
            dissociation: Some(d),
            ..Figures::default()
        };
        let over = d > self.params.dd;
        match (self.status.open, over) {
            (false, true) => {
                self.status.open = true;
                Change::Opened
            }
            (true, false) => {
                self.status.open = false;
                Change::Closed
            }
            _ => Change::None,
        }
    }
}

/// Which detection method runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Ours: a workload-conditioned robust baseline, confirmed k of n.
    #[default]
    Hms,
    /// The paper's: Spearman dissociation over a window against `dd`.
    Seed,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Hms => "hms",
            Method::Seed => "seed",
        }
    }
}

/// The analysis settings of a manager.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnalysisSettings {
    pub enabled: bool,
    pub method: Method,
    pub hms: HmsParams,
    pub seed: SeedParams,
}

impl Default for AnalysisSettings {
    fn default() -> Self {
        Self { enabled: true, method: Method::Hms, hms: HmsParams::default(), seed: SeedParams::default() }
    }
}

/// The fleet-wide analysis settings as `GET/PUT /config` carry them (`analysis`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AnalysisConfig {
    /// Detection and identification on (the Monitor's signals are measured either way).
    pub enabled: bool,
    pub method: Method,
    /// Method `seed`'s dissociation degree (percent over the reference; the paper's 15).
    #[schema(minimum = 0.1, maximum = 10000)]
    pub dd: f64,
    /// Method `seed`'s sliding window, in probe periods.
    #[schema(minimum = 5, maximum = 3600)]
    pub window: u32,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        let s = AnalysisSettings::default();
        Self { enabled: s.enabled, method: s.method, dd: s.seed.dd, window: s.seed.window as u32 }
    }
}

/// A partial [`AnalysisConfig`]: unspecified fields keep their value.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalysisPatch {
    pub enabled: Option<bool>,
    pub method: Option<Method>,
    #[schema(minimum = 0.1, maximum = 10000)]
    pub dd: Option<f64>,
    #[schema(minimum = 5, maximum = 3600)]
    pub window: Option<u32>,
}

impl AnalysisConfig {
    /// The configuration with `patch` applied, validated; the error names the field.
    pub fn patched(&self, patch: &AnalysisPatch) -> Result<Self, String> {
        let next = Self {
            enabled: patch.enabled.unwrap_or(self.enabled),
            method: patch.method.unwrap_or(self.method),
            dd: patch.dd.unwrap_or(self.dd),
            window: patch.window.unwrap_or(self.window),
        };
        if !(next.dd.is_finite() && (0.1..=10_000.0).contains(&next.dd)) {
            return Err(format!("analysis.dd must be within 0.1–10000, got {}", next.dd));
        }
        if !(5..=3600).contains(&next.window) {
            return Err(format!("analysis.window must be within 5–3600 periods, got {}", next.window));
        }
        Ok(next)
    }

    /// The settings a manager runs with.
    pub fn settings(&self) -> AnalysisSettings {
        let d = AnalysisSettings::default();
        AnalysisSettings {
            enabled: self.enabled,
            method: self.method,
            hms: d.hms,
            seed: SeedParams { dd: self.dd, window: self.window as usize },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(workload: f64, response: f64) -> Observation {
        Observation { workload: Some(workload), response_ms: Some(response), ..Observation::default() }
    }

    /// A steady service: ~10 ms at ~5 req/s with a little noise.
    fn steady(i: usize) -> Observation {
        obs(5.0 + (i % 3) as f64 * 0.5, 10.0 + (i % 5) as f64 * 0.4)
    }

    #[test]
    fn hms_opens_after_k_of_n_slow_periods_and_closes_after_clear_normal_ones() {
        let mut d = HmsDetector::new(HmsParams::default());
        for i in 0..60 {
            assert_eq!(d.observe(&steady(i)), Change::None, "period {i}");
        }
        assert_eq!(d.observe(&obs(5.0, 60.0)), Change::None);
        assert_eq!(d.observe(&obs(5.0, 61.0)), Change::None);
        assert_eq!(d.observe(&obs(5.0, 65.0)), Change::Opened, "the third slow period of five");
        assert!(d.status().figures.score.unwrap() > 4.0, "{:?}", d.status().figures);
        for i in 0..4 {
            assert_eq!(d.observe(&steady(i)), Change::None);
        }
        assert_eq!(d.observe(&steady(4)), Change::Closed);
    }

    #[test]
    fn hms_ignores_isolated_spikes() {
        let mut d = HmsDetector::new(HmsParams::default());
        for i in 0..200 {
            let o = if i % 7 == 0 && i > 30 { obs(5.0, 80.0) } else { steady(i) };
            assert_eq!(d.observe(&o), Change::None, "period {i}");
        }
    }

    #[test]
    fn hms_expects_more_at_a_higher_workload_it_has_seen() {
        // the baseline holds two regimes: 5 req/s at 10 ms and 50 req/s at 30 ms
        let mut d = HmsDetector::new(HmsParams::default());
        for i in 0..100 {
            let o = if i % 2 == 0 { steady(i) } else { obs(50.0, 30.0 + (i % 3) as f64) };
            d.observe(&o);
        }
        for _ in 0..5 {
            assert_eq!(d.observe(&obs(50.0, 31.0)), Change::None, "30 ms is normal at 50 req/s");
        }
        assert!((d.status().figures.expected_ms.unwrap() - 31.0).abs() < 2.0, "{:?}", d.status().figures);
    }

    #[test]
    fn hms_flags_memory_near_its_limit() {
        const MIB: u64 = 1 << 20;
        let mut d = HmsDetector::new(HmsParams::default());
        let with_mem = |m: u64| Observation { memory_bytes: Some(m), memory_limit_bytes: Some(48 * MIB), ..steady(0) };
        for _ in 0..30 {
            d.observe(&with_mem(4 * MIB));
        }
        let changes: Vec<Change> = (0..3).map(|_| d.observe(&with_mem(44 * MIB))).collect();
        assert_eq!(changes.last(), Some(&Change::Opened), "{changes:?}");
        assert!(d.status().figures.memory_share.unwrap() > 0.9);
    }

    #[test]
    fn hms_does_not_judge_before_its_warm_up() {
        // the warm-up is taken as fault-free: slow periods in it are learnt, never flagged
        let mut d = HmsDetector::new(HmsParams::default());
        for _ in 0..WARM_UP - 3 {
            d.observe(&obs(5.0, 10.0));
        }
        for _ in 0..3 {
            assert_eq!(d.observe(&obs(5.0, 100.0)), Change::None);
            assert_eq!(d.status().figures.score, None);
        }
        assert!(d.status().figures.expected_ms.is_none());
    }

    #[test]
    fn seed_reads_dd_as_a_percent_rise_the_workload_does_not_explain() {
        let mut d = SeedDetector::new(SeedParams { dd: 15.0, window: 10 });
        for i in 0..10 {
            assert_eq!(d.observe(&steady(i)), Change::None);
        }
        // the workload flat, the response time doubled: dissociated
        let mut opened = false;
        for _ in 0..3 {
            opened |= d.observe(&obs(5.0, 20.0)) == Change::Opened;
        }
        assert!(opened, "{:?}", d.status().figures);
        assert!(d.status().figures.dissociation.unwrap() > 15.0);
    }

    #[test]
    fn seed_does_not_flag_a_rise_that_moves_with_the_workload() {
        let mut d = SeedDetector::new(SeedParams { dd: 15.0, window: 10 });
        for i in 0..10 {
            d.observe(&obs(5.0 + i as f64 * 0.01, 10.0 + i as f64 * 0.01));
        }
        // both rise together, period after period: ρ near 1
        for i in 0..10 {
            let w = 6.0 + i as f64;
            assert_eq!(d.observe(&obs(w, 10.0 + w)), Change::None, "{:?}", d.status().figures);
        }
    }
}

#[cfg(test)]
mod config_tests {
    use super::*;

    #[test]
    fn a_patch_keeps_what_it_leaves_out_and_names_a_bad_field() {
        let c = AnalysisConfig::default();
        assert_eq!((c.enabled, c.method, c.dd, c.window), (true, Method::Hms, 15.0, 30));
        let seed = c.patched(&AnalysisPatch { method: Some(Method::Seed), ..AnalysisPatch::default() }).unwrap();
        assert_eq!((seed.method, seed.dd, seed.window), (Method::Seed, 15.0, 30));
        assert_eq!(seed.settings().seed.window, 30);
        let err = c.patched(&AnalysisPatch { window: Some(2), ..AnalysisPatch::default() }).unwrap_err();
        assert!(err.contains("analysis.window"), "{err}");
        let err = c.patched(&AnalysisPatch { dd: Some(f64::NAN), ..AnalysisPatch::default() }).unwrap_err();
        assert!(err.contains("analysis.dd"), "{err}");
        let bad = serde_json::from_str::<AnalysisPatch>(r#"{"methd":"seed"}"#);
        assert!(bad.is_err(), "unknown fields are refused");
    }
}
