//! Scoring a method's anomalies against the verified ground truth (pure): the paper's detection
//! (Table I: CDA, AD, FAR) and identification (Table II: AI, CIA, IIA, FAR) metrics, time to
//! detect, the confusion matrix of levels and culprit accuracy, each proportion with its 95 %
//! Wilson interval. Definitions: `docs/analysis.md`, "Metrics".
//!
//! An **episode** is one verified attack: its containers are the affected ones and its culprit
//! container. An anomaly **belongs** to an episode when it opened on one of those containers
//! between the episode's actual start and [`TAIL`] seconds after its end. `load_surge` is not a
//! fault: an anomaly in it is right only at level `load`; its time counts as fault-free. An
//! anomaly on a container that calls one of an episode's (its `felt`) is explained by it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::anomaly::AnomalyRecord;
use super::stats::wilson;
use super::{Culprit, Level};

/// Seconds after an episode's end in which an opening still belongs to it.
pub const TAIL: f64 = 15.0;
/// Episodes shorter than this are not scored: no confirmation over several periods can see a
/// blip of a second or two, and users hardly do (the paper's faults last minutes).
pub const MIN_EPISODE: f64 = 5.0;

/// One attack of the ground truth, as scoring reads it (times in Unix seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    pub kind: String,
    /// The simulated host the attack ran on.
    pub host: String,
    pub level: Level,
    pub culprit: Option<Culprit>,
    /// Names of the containers whose users feel it.
    pub affected: Vec<String>,
    /// Containers that depend on one of its containers: their users feel it through the call,
    /// so an anomaly on them is no false alarm (nor scored as the episode's verdict).
    pub felt: Vec<String>,
    pub start: f64,
    pub end: f64,
}

impl Episode {
    fn containers(&self) -> BTreeSet<&str> {
        let mut c: BTreeSet<&str> = self.affected.iter().map(String::as_str).collect();
        if let Some(name) = self.culprit.as_ref().and_then(|c| c.container.as_deref()) {
            c.insert(name);
        }
        c
    }

    fn covers(&self, name: &str, at: f64) -> bool {
        at >= self.start && at <= self.end + TAIL && self.containers().contains(name)
    }

    /// Whether an anomaly of `name` opened at `at` is the episode's effect, through a call too.
    fn explains(&self, name: &str, at: f64) -> bool {
        self.covers(name, at) || (at >= self.start && at <= self.end + TAIL && self.felt.iter().any(|f| f == name))
    }

    /// The right level of an anomaly on `name`: the episode's for its victims; `container` for
    /// a culprit container that is no victim (a slowed dependency, a hogging sibling: the
    /// cause of its own slowness is inside it).
    fn level_of(&self, name: &str) -> Level {
        let culprit = self.culprit.as_ref().and_then(|c| c.container.as_deref());
        if culprit == Some(name) && !self.affected.iter().any(|a| a == name) { Level::Container } else { self.level }
    }

    fn is_fault(&self) -> bool {
        self.level != Level::Load
    }

    /// Whether it burns CPU (a hog or more users): on a machine that simulates several hosts,
    /// the other hosts share its cores.
    fn burns_cpu(&self) -> bool {
        matches!(self.kind.as_str(), "cpu_hog" | "sibling_hog" | "node_hog" | "dependency_slow" | "load_surge")
    }
}

/// An anomaly as scoring reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub name: String,
    pub host: String,
    pub level: Level,
    pub culprit: Option<Culprit>,
    pub opened: f64,
    pub closed: Option<f64>,
}

impl Found {
    /// From a record; `None` when its times do not parse.
    pub fn from_record(r: &AnomalyRecord) -> Option<Self> {
        let t = |s: &str| crate::antagonist::truth::parse_time(s).ok().map(|t| t.unix_timestamp_nanos() as f64 / 1e9);
        Some(Self {
            name: r.name.clone(),
            host: r.host.clone(),
            level: r.level,
            culprit: r.culprit.clone(),
            opened: t(&r.detected_at)?,
            closed: r.resolved_at.as_deref().and_then(t),
        })
    }
}

/// A proportion with its 95 % Wilson interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Share {
    pub hits: u64,
    pub n: u64,
    pub value: Option<f64>,
    pub low: f64,
    pub high: f64,
}

impl Share {
    pub fn of(hits: u64, n: u64) -> Self {
        let (low, high) = wilson(hits, n);
        Self { hits, n, value: (n > 0).then(|| hits as f64 / n as f64), low, high }
    }

    /// `0.974 [0.93, 0.99] (37/38)`, or `– (0/0)`.
    pub fn show(&self) -> String {
        match self.value {
            Some(v) => format!("{v:.3} [{:.3}, {:.3}] ({}/{})", self.low, self.high, self.hits, self.n),
            None => format!("– ({}/{})", self.hits, self.n),
        }
    }
}

/// Per kind: verified episodes, detected ones, and (for `load_surge`) those with no fault verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KindScore {
    pub episodes: u64,
    pub detected: u64,
    pub correct_level: u64,
    pub ttd_p50: Option<f64>,
}

/// Everything a method scores on one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scores {
    /// Correct anomalies over all anomalies raised (the paper's CDA).
    pub cda: Share,
    /// Detected fault episodes over verified fault episodes (the paper's AD).
    pub ad: Share,
    /// Fault-free container-seconds with a false anomaly open over all fault-free ones.
    pub far_window: Share,
    /// False anomalies opened, fault-free container-hours, and the rate per container-hour.
    pub false_alarms: u64,
    /// Of those, the ones opened while another simulated host burned CPU (a hog or a surge):
    /// the simulated hosts share the machine's cores.
    pub false_alarms_crosstalk: u64,
    pub fault_free_hours: f64,
    pub far_per_hour: Option<f64>,
    /// Time to detect (s), p50 and p95, over detected fault episodes.
    pub ttd_p50: Option<f64>,
    pub ttd_p95: Option<f64>,
    /// Right level over detected fault episodes (the paper's CIA).
    pub cia: Share,
    /// Affected containers left without an anomaly over all affected ones (the paper's IIA).
    pub iia: Share,
    /// Right level over all verified fault episodes (the paper's AI).
    pub ai: Share,
    /// Innocent containers flagged with a fault during an episode over all innocent ones.
    pub ident_far: Share,
    /// Right culprit over detected fault episodes whose truth has one.
    pub culprit_at_1: Share,
    /// Load surges with no fault verdict over load surges.
    pub load_right: Share,
    /// Truth level → predicted level (`none`: not detected) → episodes.
    pub confusion: BTreeMap<String, BTreeMap<String, u64>>,
    pub kinds: BTreeMap<String, KindScore>,
    /// Verified episodes shorter than [`MIN_EPISODE`], not scored.
    pub too_short: u64,
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.max(1) - 1).copied()
}

/// Scores `found` against `episodes` (verified only) over `exposure`: each container's observed
/// span `(name, first, last)` in Unix seconds.
pub fn score(all: &[Episode], found: &[Found], exposure: &[(String, f64, f64)]) -> Scores {
    // a blip explains what it causes but is not scored as an episode
    let episodes: Vec<Episode> = all.iter().filter(|e| e.end - e.start >= MIN_EPISODE).cloned().collect();
    let episodes = episodes.as_slice();
    let short = all.len() - episodes.len();
    let belongs = |f: &Found, e: &Episode| e.covers(&f.name, f.opened);
    // detection: every anomaly is right if some episode explains it at its level's sense
    let right =
        |f: &Found| all.iter().any(|e| e.explains(&f.name, f.opened) && (e.is_fault() || f.level == Level::Load));
    let correct = found.iter().filter(|f| right(f)).count() as u64;
    let false_alarms: Vec<&Found> = found.iter().filter(|f| !right(f)).collect();

    let faults: Vec<&Episode> = episodes.iter().filter(|e| e.is_fault()).collect();
    let mut ttd = Vec::new();
    let (mut detected, mut level_ok, mut culprit_ok, mut culprit_n) = (0u64, 0u64, 0u64, 0u64);
    let (mut comp_tp, mut comp_fn) = (0u64, 0u64);
    let (mut innocent_fp, mut innocent_n) = (0u64, 0u64);
    let mut confusion: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut kinds: BTreeMap<String, KindScore> = BTreeMap::new();
    let mut kind_ttd: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let names: BTreeSet<&str> = exposure.iter().map(|(n, _, _)| n.as_str()).collect();
    for e in episodes {
        let mut mine: Vec<&Found> = found.iter().filter(|f| belongs(f, e)).collect();
        mine.sort_by(|a, b| a.opened.total_cmp(&b.opened));
        // the verdict scored is the first on a victim (an affected container), else the first
        let first = mine.iter().find(|f| e.affected.contains(&f.name)).or(mine.first()).copied();
        let k = kinds.entry(e.kind.clone()).or_insert(KindScore {
            episodes: 0,
            detected: 0,
            correct_level: 0,
            ttd_p50: None,
        });
        k.episodes += 1;
        let predicted = first.map_or("none", |f| f.level.name());
        let truth = first.map_or(e.level, |f| e.level_of(&f.name));
        *confusion.entry(truth.name().to_owned()).or_default().entry(predicted.to_owned()).or_default() += 1;
        if !e.is_fault() {
            let fine = mine.iter().all(|f| f.level == Level::Load);
            k.correct_level += u64::from(fine);
            k.detected += u64::from(first.is_some());
            continue;
        }
        for name in &e.affected {
            if mine.iter().any(|f| &f.name == name && f.level != Level::Load) {
                comp_tp += 1;
            } else {
                comp_fn += 1;
            }
        }
        let involved: BTreeSet<&str> = episodes
            .iter()
            .filter(|o| o.start <= e.end + TAIL && e.start <= o.end + TAIL)
            .flat_map(|o| o.containers().into_iter().chain(o.felt.iter().map(String::as_str)))
            .collect();
        for name in names.iter().filter(|n| !involved.contains(*n)) {
            innocent_n += 1;
            let flagged = found
                .iter()
                .any(|f| &f.name == name && f.level != Level::Load && f.opened >= e.start && f.opened <= e.end + TAIL);
            innocent_fp += u64::from(flagged);
        }
        let Some(f) = first else { continue };
        detected += 1;
        k.detected += 1;
        let t = (f.opened - e.start).max(0.0);
        ttd.push(t);
        kind_ttd.entry(e.kind.clone()).or_default().push(t);
        if f.level == e.level_of(&f.name) {
            level_ok += 1;
            k.correct_level += 1;
        }
        if let Some(truth) = &e.culprit {
            culprit_n += 1;
            culprit_ok += u64::from(f.culprit.as_ref() == Some(truth));
        }
    }
    for (kind, mut ts) in kind_ttd {
        ts.sort_by(f64::total_cmp);
        if let Some(k) = kinds.get_mut(&kind) {
            k.ttd_p50 = percentile(&ts, 0.5);
        }
    }
    ttd.sort_by(f64::total_cmp);

    // fault-free time: each container's span less the windows of the fault episodes (blips
    // too) it is in or feels through a call
    let mut free = 0.0;
    let mut alarm = 0.0;
    for (name, first, last) in exposure {
        let mut busy: Vec<(f64, f64)> = all
            .iter()
            .filter(|e| e.is_fault() && (e.containers().contains(name.as_str()) || e.felt.contains(name)))
            .map(|e| (e.start.max(*first), (e.end + TAIL).min(*last)))
            .filter(|(a, b)| b > a)
            .collect();
        busy.sort_by(|a, b| a.0.total_cmp(&b.0));
        let covered = union_len(&busy);
        free += (last - first - covered).max(0.0);
        for f in false_alarms.iter().filter(|f| &f.name == name) {
            let (a, b) = (f.opened.max(*first), f.closed.unwrap_or(*last).min(*last));
            if b > a {
                let mut spans = busy.clone();
                let in_fault: f64 = union_len(&clip(&mut spans, a, b));
                alarm += (b - a - in_fault).max(0.0);
            }
        }
    }
    let hours = free / 3600.0;
    let crosstalk = false_alarms
        .iter()
        .filter(|f| {
            all.iter().any(|e| e.burns_cpu() && e.host != f.host && f.opened >= e.start && f.opened <= e.end + TAIL)
        })
        .count() as u64;
    let load_n = episodes.iter().filter(|e| !e.is_fault()).count() as u64;
    let load_ok = kinds.get("load_surge").map_or(0, |k| k.correct_level);
    Scores {
        cda: Share::of(correct, found.len() as u64),
        ad: Share::of(detected, faults.len() as u64),
        far_window: Share::of(alarm.round() as u64, free.round() as u64),
        false_alarms: false_alarms.len() as u64,
        false_alarms_crosstalk: crosstalk,
        fault_free_hours: hours,
        far_per_hour: (hours > 0.0).then(|| false_alarms.len() as f64 / hours),
        ttd_p50: percentile(&ttd, 0.5),
        ttd_p95: percentile(&ttd, 0.95),
        cia: Share::of(level_ok, detected),
        iia: Share::of(comp_fn, comp_fn + comp_tp),
        ai: Share::of(level_ok, faults.len() as u64),
        ident_far: Share::of(innocent_fp, innocent_n),
        culprit_at_1: Share::of(culprit_ok, culprit_n),
        load_right: Share::of(load_ok, load_n),
        confusion,
        kinds,
        too_short: short as u64,
    }
}

/// Total length of intervals sorted by start, overlaps counted once.
pub fn union_len(spans: &[(f64, f64)]) -> f64 {
    let mut total = 0.0;
    let mut cur: Option<(f64, f64)> = None;
    for &(a, b) in spans {
        cur = match cur {
            Some((ca, cb)) if a <= cb => Some((ca, cb.max(b))),
            Some((ca, cb)) => {
                total += cb - ca;
                Some((a, b))
            }
            None => Some((a, b)),
        };
    }
    total + cur.map_or(0.0, |(a, b)| b - a)
}

/// The parts of `spans` inside `[a, b]`.
fn clip(spans: &mut [(f64, f64)], a: f64, b: f64) -> Vec<(f64, f64)> {
    spans.iter().map(|&(x, y)| (x.max(a), y.min(b))).filter(|(x, y)| y > x).collect()
}

/// A row of the table: metric, the paper's figure, and how to show a method's.
type Row<'a> = (&'a str, &'a str, Box<dyn Fn(&Scores) -> String>);

/// The scores of several methods side by side as a Markdown table, with the paper's figures.
pub fn table(columns: &[(&str, &Scores)]) -> String {
    let mut out = String::from("| metric | paper (HHMM) |");
    for (name, _) in columns {
        out.push_str(&format!(" {name} |"));
    }
    out.push_str("\n|---|---|");
    out.push_str(&"---|".repeat(columns.len()));
    out.push('\n');
    let secs = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.1} s"));
    let rows: [Row; 14] = [
        ("CDA (correct / raised)", "96.12 %", Box::new(|s: &Scores| s.cda.show())),
        ("AD (detected / faults)", "0.94", Box::new(|s: &Scores| s.ad.show())),
        ("FAR per window (fault-free seconds)", "0.27", Box::new(|s: &Scores| s.far_window.show())),
        (
            "false alarms per container-hour",
            "–",
            Box::new(|s: &Scores| {
                format!(
                    "{} ({} in {:.2} h)",
                    s.far_per_hour.map_or("–".to_owned(), |v| format!("{v:.2}")),
                    s.false_alarms,
                    s.fault_free_hours
                )
            }),
        ),
        (
            "… of them while another host burned CPU",
            "–",
            Box::new(|s: &Scores| format!("{} of {}", s.false_alarms_crosstalk, s.false_alarms)),
        ),
        ("time to detect p50", "–", Box::new(move |s: &Scores| secs(s.ttd_p50))),
        ("time to detect p95", "–", Box::new(move |s: &Scores| secs(s.ttd_p95))),
        ("CIA (right level / detected)", "94.73 %", Box::new(|s: &Scores| s.cia.show())),
        ("IIA (affected left normal)", "4.56 %", Box::new(|s: &Scores| s.iia.show())),
        ("AI (right level / faults)", "0.94", Box::new(|s: &Scores| s.ai.show())),
        ("identification FAR (innocents flagged)", "0.12", Box::new(|s: &Scores| s.ident_far.show())),
        ("culprit accuracy at 1", "–", Box::new(|s: &Scores| s.culprit_at_1.show())),
        ("load surges without a fault verdict", "–", Box::new(|s: &Scores| s.load_right.show())),
        ("episodes (faults + surges)", "–", Box::new(|s: &Scores| format!("{} + {}", s.ad.n, s.load_right.n))),
    ];
    for (name, paper, f) in rows.iter() {
        out.push_str(&format!("| {name} | {paper} |"));
        for (_, s) in columns {
            out.push_str(&format!(" {} |", f(s)));
        }
        out.push('\n');
    }
    out
}

/// The confusion matrix of one method as a Markdown table (rows: truth; columns: verdict).
pub fn confusion_table(s: &Scores) -> String {
    let cols: Vec<&str> = Level::ALL.iter().map(|l| l.name()).chain(["none"]).collect();
    let mut out = format!("| truth \\ verdict | {} |\n|---|{}\n", cols.join(" | "), "---|".repeat(cols.len()));
    for truth in Level::ALL.iter().map(|l| l.name()) {
        let Some(row) = s.confusion.get(truth) else { continue };
        let cells: Vec<String> = cols.iter().map(|c| row.get(*c).copied().unwrap_or(0).to_string()).collect();
        out.push_str(&format!("| {truth} | {} |\n", cells.join(" | ")));
    }
    out
}

/// Per kind: episodes, detected, right level, time to detect p50.
pub fn kinds_table(columns: &[(&str, &Scores)]) -> String {
    let mut out = String::from("| kind |");
    for (name, _) in columns {
        out.push_str(&format!(" {name}: detected / right level / TTD p50 |"));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(columns.len()));
    out.push('\n');
    let kinds: BTreeSet<&String> = columns.iter().flat_map(|(_, s)| s.kinds.keys()).collect();
    for kind in kinds {
        out.push_str(&format!("| {kind} |"));
        for (_, s) in columns {
            match s.kinds.get(kind) {
                Some(k) => out.push_str(&format!(
                    " {}/{} · {}/{} · {} |",
                    k.detected,
                    k.episodes,
                    k.correct_level,
                    k.episodes,
                    k.ttd_p50.map_or("–".to_owned(), |t| format!("{t:.1} s"))
                )),
                None => out.push_str(" – |"),
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(kind: &str, level: Level, affected: &[&str], culprit: Option<(&str, Option<&str>)>, start: f64) -> Episode {
        Episode {
            kind: kind.into(),
            host: "h1".into(),
            level,
            culprit: culprit.map(|(h, c)| Culprit { host: h.into(), container: c.map(Into::into) }),
            affected: affected.iter().map(|s| (*s).to_owned()).collect(),
            felt: Vec::new(),
            start,
            end: start + 20.0,
        }
    }

    fn found(name: &str, level: Level, culprit: Option<(&str, Option<&str>)>, opened: f64, closed: f64) -> Found {
        Found {
            name: name.into(),
            host: "h1".into(),
            level,
            culprit: culprit.map(|(h, c)| Culprit { host: h.into(), container: c.map(Into::into) }),
            opened,
            closed: Some(closed),
        }
    }

    #[test]
    fn a_perfect_method_scores_one_everywhere() {
        let eps = [
            ep("cpu_hog", Level::Container, &["a"], Some(("h1", Some("a"))), 100.0),
            ep("sibling_hog", Level::Sibling, &["b"], Some(("h1", Some("c"))), 200.0),
            ep("load_surge", Level::Load, &["a"], None, 300.0),
        ];
        let f = [
            found("a", Level::Container, Some(("h1", Some("a"))), 103.0, 125.0),
            found("b", Level::Sibling, Some(("h1", Some("c"))), 205.0, 225.0),
            found("a", Level::Load, None, 304.0, 320.0),
        ];
        let exposure = [("a".into(), 0.0, 3600.0), ("b".into(), 0.0, 3600.0), ("c".into(), 0.0, 3600.0)];
        let blip = Episode { end: 502.0, ..ep("cpu_hog", Level::Container, &["c"], Some(("h1", Some("c"))), 500.0) };
        let mut with_blip = eps.to_vec();
        with_blip.push(blip);
        assert_eq!(score(&with_blip, &f, &exposure).too_short, 1, "a 2 s blip is not scored");
        assert_eq!(score(&with_blip, &f, &exposure).ad, score(&eps, &f, &exposure).ad);
        // what a blip causes is explained by it: no false alarm, and its time is not fault-free
        let mut f_blip = f.to_vec();
        f_blip.push(found("c", Level::Container, Some(("h1", Some("c"))), 504.0, 510.0));
        let sb = score(&with_blip, &f_blip, &exposure);
        assert_eq!((sb.false_alarms, sb.cda.hits, sb.cda.n), (0, 4, 4));
        assert!((sb.fault_free_hours - (3.0 * 3600.0 - 35.0 * 3.0 - 17.0) / 3600.0).abs() < 1e-9);
        let s = score(&eps, &f, &exposure);
        assert_eq!((s.cda.hits, s.cda.n), (3, 3));
        assert_eq!((s.ad.hits, s.ad.n), (2, 2));
        assert_eq!((s.cia.hits, s.ai.hits, s.culprit_at_1.hits), (2, 2, 2));
        assert_eq!((s.iia.hits, s.iia.n), (0, 2));
        assert_eq!(s.false_alarms, 0);
        assert_eq!(s.far_window.hits, 0);
        assert_eq!((s.load_right.hits, s.load_right.n), (1, 1));
        assert_eq!((s.ttd_p50, s.ttd_p95), (Some(3.0), Some(5.0)));
        assert_eq!(s.confusion["sibling"]["sibling"], 1);
        assert_eq!(s.confusion["load"]["load"], 1);
        // an hour of three containers, less the two fault windows of 35 s on a, b and c
        assert!((s.fault_free_hours - (3.0 * 3600.0 - 35.0 * 3.0) / 3600.0).abs() < 1e-9, "{}", s.fault_free_hours);
    }

    #[test]
    fn misses_false_alarms_and_wrong_levels_count_where_they_should() {
        let eps = [
            ep("cpu_hog", Level::Container, &["a"], Some(("h1", Some("a"))), 100.0),
            ep("node_hog", Level::Node, &["a", "b"], Some(("h1", None)), 200.0),
            ep("load_surge", Level::Load, &["b"], None, 300.0),
        ];
        let f = [
            // the node hog seen on a only, and called a sibling
            found("a", Level::Sibling, Some(("h1", Some("b"))), 210.0, 230.0),
            // a false alarm in quiet time, 50 s open
            found("c", Level::Container, Some(("h1", Some("c"))), 1000.0, 1050.0),
            // the surge called a container fault
            found("b", Level::Container, Some(("h1", Some("b"))), 305.0, 320.0),
        ];
        let exposure = [("a".into(), 0.0, 3600.0), ("b".into(), 0.0, 3600.0), ("c".into(), 0.0, 3600.0)];
        let s = score(&eps, &f, &exposure);
        assert_eq!((s.ad.hits, s.ad.n), (1, 2), "the cpu hog was missed");
        assert_eq!((s.cda.hits, s.cda.n), (1, 3));
        assert_eq!((s.cia.hits, s.cia.n), (0, 1));
        assert_eq!((s.iia.hits, s.iia.n), (2, 3), "a of the hog and b of the node hog were left normal");
        assert_eq!((s.culprit_at_1.hits, s.culprit_at_1.n), (0, 1));
        assert_eq!(s.false_alarms, 2, "the quiet one and the surge's");
        assert_eq!(s.far_window.hits, 65, "50 s + 15 s open in fault-free time");
        assert_eq!((s.load_right.hits, s.load_right.n), (0, 1));
        assert_eq!(s.confusion["container"]["none"], 1);
        assert_eq!(s.confusion["node"]["sibling"], 1);
        assert_eq!((s.ident_far.hits, s.ident_far.n), (0, 3), "c is innocent of both faults and was quiet then");
        let t = table(&[("hms", &s), ("seed", &s)]);
        assert!(t.contains("| AD (detected / faults) | 0.94 | 0.500"), "{t}");
        assert!(confusion_table(&s).contains("| node | 0 | 1 |"), "{}", confusion_table(&s));
        assert!(kinds_table(&[("hms", &s)]).contains("| cpu_hog | 0/1"));
    }

    #[test]
    fn a_culprit_container_that_is_no_victim_is_right_at_level_container() {
        // a dependency d on h2 slowed; its dependent a on h1 is the victim
        let e = Episode {
            host: "h2".into(),
            ..ep("dependency_slow", Level::Neighbour, &["a"], Some(("h2", Some("d"))), 100.0)
        };
        let exposure = [("a".into(), 0.0, 3600.0), ("d".into(), 0.0, 3600.0)];
        let only_d = [found("d", Level::Container, Some(("h2", Some("d"))), 102.0, 120.0)];
        let s = score(std::slice::from_ref(&e), &only_d, &exposure);
        assert_eq!((s.cia.hits, s.culprit_at_1.hits, s.iia.hits), (1, 1, 1), "right about d; a left normal");
        assert_eq!(s.confusion["container"]["container"], 1);
        // with the victim flagged, its verdict is the one scored: neighbour is right, container not
        let both = [only_d[0].clone(), found("a", Level::Container, Some(("h1", Some("a"))), 103.0, 120.0)];
        let s = score(std::slice::from_ref(&e), &both, &exposure);
        assert_eq!((s.cia.hits, s.cia.n), (0, 1));
        assert_eq!(s.confusion["neighbour"]["container"], 1);
    }

    #[test]
    fn union_counts_overlaps_once() {
        assert_eq!(union_len(&[(0.0, 10.0), (5.0, 15.0), (20.0, 25.0)]), 20.0);
        assert_eq!(union_len(&[]), 0.0);
    }
}
