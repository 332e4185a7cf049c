//! Scoring an experiment run: pure functions from what was sampled, what the engine reported and
//! what the antagonist really injected (its ground truth) to the metrics of `docs/experiments.md`.
//! Times are seconds since the start of the measured run.
//!
//! One file on purpose, past 400 lines: the measured metrics and their bounds (what instant
//! detection and a bare start would have scored on the same fault schedule) read the same
//! [`RunData`] through the same helpers (`die_of`, [`union_len`]), and the tests build one run and
//! check a metric against its bound. Split, each half would import the other's internals. It
//! holds no I/O: the run's files are read by `ground_truth.rs` and `run.rs`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One availability sample of one container, taken independently of HMS.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub t: f64,
    /// Docker says running.
    pub running: bool,
    /// It answered the reachability echoes.
    pub reachable: bool,
}

impl Sample {
    pub fn up(&self) -> bool {
        self.running && self.reachable
    }
}

/// What kind of fault the antagonist injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    Shutdown,
    LinkLoss,
    ContainerLoss,
}

/// One injected fault, from the ground truth.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub container: String,
    pub kind: FaultKind,
    /// Injected loss in percent (loss faults).
    pub loss: f64,
    pub start: f64,
    pub end: f64,
}

/// Engine events of one container that matter here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineEvent {
    Die,
    Start,
}

/// The inputs of scoring.
#[derive(Debug, Clone, Default)]
pub struct RunData {
    /// Measured seconds.
    pub duration: f64,
    /// Container → its samples in time order.
    pub samples: BTreeMap<String, Vec<Sample>>,
    pub faults: Vec<Fault>,
    /// Container → (time, event) in time order.
    pub events: BTreeMap<String, Vec<(f64, EngineEvent)>>,
    /// Loss threshold of the managers (percent).
    pub threshold: f64,
    /// Mean bare `docker start` of the same image, measured in the same run (seconds).
    pub bare_start: f64,
}

/// A fault's actions are attributed to it up to this long after it ended (seconds).
pub const ATTRIBUTION_GRACE: f64 = 3.0;

/// Mean, count and maximum of a series.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    pub n: usize,
    pub mean: f64,
    pub max: f64,
}

impl Stat {
    pub fn of(values: &[f64]) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        Self { n: values.len(), mean, max: values.iter().copied().fold(f64::MIN, f64::max) }
    }
}

/// Detections scored against the ground truth.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detections {
    /// Faults that called for action and got at least one.
    pub true_positives: usize,
    /// Actions outside every fault of their container.
    pub false_positives: usize,
    /// Faults that called for action and got none.
    pub missed: usize,
}

/// Every metric of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// Mean over containers of the fraction of samples where it was running and reachable.
    pub availability: f64,
    /// Fraction of sampling instants where every container was up.
    pub all_up: f64,
    /// The same schedule with instant detection and a bare start (link-scope loss counted down).
    pub availability_bound: f64,
    pub faults: BTreeMap<FaultKind, usize>,
    /// Shutdown faults: `die` → `start` (seconds).
    pub shutdown_downtime: Stat,
    /// Time to running-and-reachable per fault kind (seconds), from the fault (shutdown: its
    /// `die`) to the first up sample after it.
    pub mttr: BTreeMap<FaultKind, Stat>,
    /// Starts and restarts ordered by the healer (every engine `start` event: the antagonist
    /// never starts anything).
    pub actions: usize,
    pub restarts_per_fault: f64,
    /// Restarts during link-scope loss, which a restart cannot cure.
    pub futile_restarts: usize,
    pub detections: Detections,
}

/// Scores a run.
pub fn score(run: &RunData) -> Score {
    let mut s = Score {
        availability: availability(run),
        all_up: all_up(run),
        availability_bound: bound(run),
        ..Score::default()
    };
    for f in &run.faults {
        *s.faults.entry(f.kind).or_default() += 1;
    }
    s.shutdown_downtime = Stat::of(&shutdown_downtimes(run));
    s.mttr = mttr(run);
    s.actions = run.events.values().flatten().filter(|(_, e)| *e == EngineEvent::Start).count();
    s.restarts_per_fault = if run.faults.is_empty() { 0.0 } else { s.actions as f64 / run.faults.len() as f64 };
    s.futile_restarts = futile(run);
    s.detections = detections(run);
    s
}

fn availability(run: &RunData) -> f64 {
    let per: Vec<f64> = run
        .samples
        .values()
        .filter(|v| !v.is_empty())
        .map(|v| v.iter().filter(|s| s.up()).count() as f64 / v.len() as f64)
        .collect();
    if per.is_empty() { 0.0 } else { per.iter().sum::<f64>() / per.len() as f64 }
}

/// Samples are taken for every container at the same instants: the i-th sample of each.
fn all_up(run: &RunData) -> f64 {
    let n = run.samples.values().map(Vec::len).min().unwrap_or(0);
    if n == 0 {
        return 0.0;
    }
    let up = (0..n).filter(|&i| run.samples.values().all(|v| v[i].up())).count();
    up as f64 / n as f64
}

fn starts<'a>(run: &'a RunData, container: &str) -> impl Iterator<Item = f64> + 'a {
    let evs = run.events.get(container).map(Vec::as_slice).unwrap_or_default();
    evs.iter().filter(|(_, e)| *e == EngineEvent::Start).map(|(t, _)| *t)
}

fn first_event(run: &RunData, container: &str, kind: EngineEvent, after: f64) -> Option<f64> {
    let evs = run.events.get(container)?;
    evs.iter().find(|(t, e)| *e == kind && *t >= after).map(|(t, _)| *t)
}

/// The `die` of a shutdown fault: the first one from its start to a little after its end.
fn die_of(run: &RunData, f: &Fault) -> Option<f64> {
    first_event(run, &f.container, EngineEvent::Die, f.start).filter(|t| *t <= f.end + ATTRIBUTION_GRACE)
}

fn shutdown_downtimes(run: &RunData) -> Vec<f64> {
    let shutdowns = run.faults.iter().filter(|f| f.kind == FaultKind::Shutdown);
    shutdowns
        .filter_map(|f| {
            let die = die_of(run, f)?;
            Some(first_event(run, &f.container, EngineEvent::Start, die)? - die)
        })
        .collect()
}

fn first_up(run: &RunData, container: &str, after: f64) -> Option<f64> {
    run.samples.get(container)?.iter().find(|s| s.t >= after && s.up()).map(|s| s.t)
}

fn mttr(run: &RunData) -> BTreeMap<FaultKind, Stat> {
    let mut by: BTreeMap<FaultKind, Vec<f64>> = BTreeMap::new();
    for f in &run.faults {
        let from = match f.kind {
            FaultKind::Shutdown => die_of(run, f),
            FaultKind::ContainerLoss if f.loss > run.threshold => Some(f.start),
            FaultKind::LinkLoss | FaultKind::ContainerLoss => None,
        };
        if let Some(from) = from {
            // the first up sample after the container was seen down
            let down = run.samples.get(&f.container).and_then(|v| v.iter().find(|s| s.t >= from && !s.up()));
            if let Some(up) = down.and_then(|d| first_up(run, &f.container, d.t)) {
                by.entry(f.kind).or_default().push(up - from);
            }
        }
    }
    by.into_iter().map(|(k, v)| (k, Stat::of(&v))).collect()
}

fn futile(run: &RunData) -> usize {
    let link = run.faults.iter().filter(|f| f.kind == FaultKind::LinkLoss);
    link.map(|f| starts(run, &f.container).filter(|t| *t >= f.start && *t <= f.end).count()).sum()
}

/// Whether a fault calls for an action: every shutdown, and loss above the threshold.
fn actionable(f: &Fault, threshold: f64) -> bool {
    f.kind == FaultKind::Shutdown || f.loss > threshold
}

fn detections(run: &RunData) -> Detections {
    let mut d = Detections::default();
    for f in run.faults.iter().filter(|f| actionable(f, run.threshold)) {
        let hit = starts(run, &f.container).any(|t| t >= f.start && t <= f.end + ATTRIBUTION_GRACE);
        if hit { d.true_positives += 1 } else { d.missed += 1 }
    }
    for c in run.events.keys() {
        let covered = |t: f64| {
            run.faults.iter().any(|f| {
                &f.container == c && actionable(f, run.threshold) && t >= f.start && t <= f.end + ATTRIBUTION_GRACE
            })
        };
        d.false_positives += starts(run, c).filter(|t| !covered(*t)).count();
    }
    d
}

/// Length of the union of intervals, each clipped to `[0, limit]`.
pub fn union_len(mut spans: Vec<(f64, f64)>, limit: f64) -> f64 {
    spans.iter_mut().for_each(|(a, b)| (*a, *b) = (a.clamp(0.0, limit), b.clamp(0.0, limit)));
    spans.retain(|(a, b)| b > a);
    spans.sort_by(|x, y| x.0.total_cmp(&y.0));
    crate::analysis::score::union_len(&spans)
}

/// Probability that a reachability check (3 echoes, at least 2 answered) passes at `loss` %.
pub fn reach_probability(loss: f64) -> f64 {
    let p = (loss / 100.0).clamp(0.0, 1.0);
    let q = 1.0 - p;
    q * q * q + 3.0 * p * q * q
}

/// Availability with instant detection and a bare start: a shutdown costs its `die` → bare
/// start, container-scope loss above threshold costs a bare start, and loss nothing can or should
/// cure (link scope, or container scope at or below the threshold) costs the expected unreachable
/// fraction of its duration.
fn bound(run: &RunData) -> f64 {
    if run.samples.is_empty() || run.duration <= 0.0 {
        return 0.0;
    }
    let per: Vec<f64> = run
        .samples
        .keys()
        .map(|c| {
            let mine = || run.faults.iter().filter(|f| &f.container == c);
            let hard = mine().filter_map(|f| match f.kind {
                FaultKind::Shutdown => die_of(run, f).map(|d| (d, d + run.bare_start)),
                FaultKind::ContainerLoss if f.loss > run.threshold => Some((f.start, f.start + run.bare_start)),
                FaultKind::LinkLoss | FaultKind::ContainerLoss => None,
            });
            let hard_spans: Vec<(f64, f64)> = hard.collect();
            let hard = union_len(hard_spans.clone(), run.duration);
            // Uncurable loss while the container is down anyway costs nothing more.
            let outside_hard = |span: (f64, f64)| {
                let mut with = hard_spans.clone();
                with.push(span);
                union_len(with, run.duration) - hard
            };
            let soft: f64 = mine()
                .filter(|f| {
                    f.kind == FaultKind::LinkLoss || (f.kind == FaultKind::ContainerLoss && f.loss <= run.threshold)
                })
                .map(|f| outside_hard((f.start, f.end)) * (1.0 - reach_probability(f.loss)))
                .sum();
            1.0 - ((hard + soft) / run.duration).min(1.0)
        })
        .collect();
    per.iter().sum::<f64>() / per.len() as f64
}

/// The best view freshness any healer can have under the controller's aggregation (a window of
/// `aggregation` seconds opened by the first notice, DESIGN.md): every fault changes what its
/// host reports at least twice — a shutdown when the container has stopped and when it runs
/// again (a bare start later), a loss fault (of 10 points or more, what the published loss
/// shows) when it starts and when it ends — and the view is stale for one window from the first
/// of those changes that finds no window open. Pull time counts as zero, so this is an upper
/// bound on freshness for this schedule.
pub fn freshness_bound(faults: &[Fault], aggregation: f64, duration: f64, bare_start: f64) -> f64 {
    if duration <= 0.0 {
        return 0.0;
    }
    let mut changes: Vec<f64> = faults
        .iter()
        .flat_map(|f| match f.kind {
            FaultKind::Shutdown => vec![f.end, f.end + bare_start],
            _ if f.loss >= 10.0 => vec![f.start, f.end],
            _ => vec![],
        })
        .filter(|t| (0.0..duration).contains(t))
        .collect();
    changes.sort_by(f64::total_cmp);
    let mut windows = Vec::new();
    let mut open_until = f64::NEG_INFINITY;
    for t in changes {
        if t >= open_until {
            open_until = t + aggregation;
            windows.push((t, open_until));
        }
    }
    1.0 - union_len(windows, duration) / duration
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fault(kind: FaultKind, start: f64, end: f64, loss: f64) -> Fault {
        Fault { container: "c".into(), kind, loss, start, end }
    }

    #[test]
    fn freshness_bound_counts_one_window_per_burst_of_changes() {
        let faults = [fault(FaultKind::LinkLoss, 10.0, 20.0, 80.0), fault(FaultKind::Shutdown, 10.2, 11.0, 0.0)];
        // Changes at 10, 11, 11.5 and 20: windows [10, 11), [11, 12) and [20, 21).
        let b = freshness_bound(&faults, 1.0, 100.0, 0.5);
        assert!((b - 0.97).abs() < 1e-9, "{b}");
        // Loss under the published deadband changes nothing; no faults, always fresh.
        assert_eq!(freshness_bound(&[fault(FaultKind::LinkLoss, 1.0, 2.0, 5.0)], 1.0, 10.0, 0.5), 1.0);
        assert_eq!(freshness_bound(&[], 2.5, 10.0, 0.5), 1.0);
    }

    proptest! {
        #[test]
        fn freshness_bound_falls_with_the_aggregation_time(
            starts in proptest::collection::vec(0.0f64..100.0, 0..40), a in 0.05f64..3.0,
        ) {
            let faults: Vec<Fault> = starts.iter().map(|&t| fault(FaultKind::LinkLoss, t, t + 1.0, 80.0)).collect();
            let short = freshness_bound(&faults, a, 100.0, 0.3);
            let long = freshness_bound(&faults, a * 2.0, 100.0, 0.3);
            prop_assert!((0.0..=1.0).contains(&short));
            prop_assert!(long <= short + 1e-9);
        }
    }

    fn samples(up: &[(f64, bool)]) -> Vec<Sample> {
        up.iter().map(|&(t, u)| Sample { t, running: u, reachable: u }).collect()
    }

    fn run_with_one_shutdown() -> RunData {
        let mut run = RunData { duration: 10.0, threshold: 30.0, bare_start: 0.3, ..RunData::default() };
        let ups: Vec<(f64, bool)> = (0..40).map(|i| (f64::from(i) * 0.25, !(16..18).contains(&i))).collect();
        run.samples.insert("a".into(), samples(&ups));
        run.samples.insert("b".into(), samples(&ups.iter().map(|&(t, _)| (t, true)).collect::<Vec<_>>()));
        run.faults.push(Fault { container: "a".into(), kind: FaultKind::Shutdown, loss: 0.0, start: 3.0, end: 4.0 });
        run.events.insert("a".into(), vec![(4.0, EngineEvent::Die), (4.4, EngineEvent::Start)]);
        run
    }

    #[test]
    fn a_healed_shutdown_scores_its_downtime_mttr_and_one_true_positive() {
        let s = score(&run_with_one_shutdown());
        assert!((s.availability - (1.0 - 2.0 / 80.0)).abs() < 1e-9, "{}", s.availability);
        assert!((s.all_up - 38.0 / 40.0).abs() < 1e-9);
        assert!((s.shutdown_downtime.mean - 0.4).abs() < 1e-9);
        assert!((s.mttr[&FaultKind::Shutdown].mean - 0.5).abs() < 1e-9, "die at 4.0, up again at 4.5");
        assert_eq!(s.detections, Detections { true_positives: 1, false_positives: 0, missed: 0 });
        assert!((s.availability_bound - (1.0 - 0.3 / 20.0)).abs() < 1e-9, "{}", s.availability_bound);
        assert_eq!((s.actions, s.futile_restarts), (1, 0));
    }

    #[test]
    fn restarts_during_link_loss_are_futile_and_unrelated_starts_are_false_positives() {
        let mut run = run_with_one_shutdown();
        run.faults.push(Fault { container: "b".into(), kind: FaultKind::LinkLoss, loss: 80.0, start: 5.0, end: 8.0 });
        run.events.insert("b".into(), vec![(6.0, EngineEvent::Start), (9.5, EngineEvent::Start)]);
        let s = score(&run);
        assert_eq!(s.futile_restarts, 1);
        assert_eq!(s.detections, Detections { true_positives: 2, false_positives: 0, missed: 0 });
        run.events.get_mut("b").unwrap().push((12.0, EngineEvent::Start));
        assert_eq!(score(&run).detections.false_positives, 1);
    }

    #[test]
    fn loss_at_or_below_the_threshold_calls_for_nothing() {
        let mut run = run_with_one_shutdown();
        run.faults.push(Fault {
            container: "b".into(),
            kind: FaultKind::ContainerLoss,
            loss: 30.0,
            start: 1.0,
            end: 2.0,
        });
        assert_eq!(score(&run).detections.missed, 0);
        run.events.insert("b".into(), vec![(1.5, EngineEvent::Start)]);
        assert_eq!(score(&run).detections, Detections { true_positives: 1, false_positives: 1, missed: 0 });
        run.faults[1].loss = 31.0;
        assert_eq!(score(&run).detections, Detections { true_positives: 2, false_positives: 0, missed: 0 });
        run.events.clear();
        run.events.insert("a".into(), vec![(4.0, EngineEvent::Die), (4.4, EngineEvent::Start)]);
        assert_eq!(score(&run).detections.missed, 1);
    }

    #[test]
    fn the_bound_counts_uncurable_loss_by_its_expected_unreachable_time() {
        assert!((reach_probability(0.0) - 1.0).abs() < 1e-12 && reach_probability(100.0).abs() < 1e-12);
        assert!((reach_probability(50.0) - 0.5).abs() < 1e-12);
        let mut run = run_with_one_shutdown();
        run.faults.push(Fault { container: "b".into(), kind: FaultKind::LinkLoss, loss: 50.0, start: 0.0, end: 4.0 });
        let b = score(&run).availability_bound;
        // a: 0.3 s of a shutdown; b: half of 4 s of link loss at 50 %
        assert!((b - (1.0 - (0.3 / 10.0 + 2.0 / 10.0) / 2.0)).abs() < 1e-9, "{b}");
        // loss on `a` while it is down after its shutdown (4.0–4.3) counts only outside that span
        run.faults.push(Fault { container: "a".into(), kind: FaultKind::LinkLoss, loss: 50.0, start: 4.1, end: 5.3 });
        let b = score(&run).availability_bound;
        assert!((b - (1.0 - ((0.3 + 0.5) / 10.0 + 2.0 / 10.0) / 2.0)).abs() < 1e-9, "{b}");
    }

    #[test]
    fn union_merges_overlaps_and_clips() {
        assert_eq!(union_len(vec![(1.0, 3.0), (2.0, 4.0), (6.0, 7.0)], 10.0), 4.0);
        assert_eq!(union_len(vec![(-1.0, 1.0), (9.0, 12.0)], 10.0), 2.0);
        assert_eq!(union_len(vec![], 10.0), 0.0);
    }

    proptest! {
        #[test]
        fn union_is_within_zero_and_the_sum_and_the_limit(
            spans in proptest::collection::vec((0.0f64..100.0, 0.0f64..20.0), 0..20)
        ) {
            let spans: Vec<(f64, f64)> = spans.into_iter().map(|(a, l)| (a, a + l)).collect();
            let sum: f64 = spans.iter().map(|(a, b)| (b.min(100.0) - a.min(100.0)).max(0.0)).sum();
            let u = union_len(spans, 100.0);
            prop_assert!((0.0..=100.0 + 1e-9).contains(&u) && u <= sum + 1e-9);
        }
    }
}
