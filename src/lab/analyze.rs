//! `hms analyze --replay DIR`: both analysis methods over one recording, scored against its
//! ground truth — the same signals for both, so their figures compare.
//!
//! `DIR` holds the managers' recordings (`signals-<host>.jsonl`, `hms manager --record DIR`) and
//! the antagonists' ground truth (`attacks*.jsonl`, copied there by the analysis experiment).
//! Each method's anomalies are written to `DIR/anomalies-<method>.jsonl`, its scores to
//! `DIR/scores-<method>.json`, and the tables (`docs/analysis.md`'s form) are printed. Several
//! `--replay` folders (runs of several seeds) are scored together: their containers' names
//! carry each run's id, so nothing of one run explains another's.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::analysis::detect::{AnalysisConfig, AnalysisPatch, AnalysisSettings, Method};
use crate::analysis::engine::{self, Line};
use crate::analysis::score::{self, Episode, Found, Scores};
use crate::antagonist::truth::{AttackRecord, Outcome, parse_time};

/// Options of `hms analyze`.
#[derive(Debug, Clone, clap::Args)]
pub struct AnalyzeOpts {
    /// The folder of a recording (`signals-*.jsonl`) and its ground truth (`attacks*.jsonl`);
    /// repeated, the recordings' episodes are scored together (runs of several seeds pooled).
    #[arg(long, required = true)]
    pub replay: Vec<PathBuf>,
    /// The methods to run, side by side.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "hms,seed")]
    pub method: Vec<MethodArg>,
    /// The seed method's dissociation degree.
    #[arg(long, default_value_t = 15.0)]
    pub dd: f64,
    /// The seed method's window, in periods.
    #[arg(long, default_value_t = 30)]
    pub window: usize,
    /// Method hms: how many times its expectation a response time must be (tuning only).
    #[arg(long, hide = true)]
    pub hms_ratio: Option<f64>,
    /// Method hms: robust deviations over the expectation (tuning only).
    #[arg(long, hide = true)]
    pub hms_z: Option<f64>,
}

/// A method on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MethodArg {
    Hms,
    Seed,
}

impl From<MethodArg> for Method {
    fn from(m: MethodArg) -> Self {
        match m {
            MethodArg::Hms => Method::Hms,
            MethodArg::Seed => Method::Seed,
        }
    }
}

/// One method's outcome on a recording.
pub struct Evaluation {
    pub method: Method,
    pub scores: Scores,
}

/// The verified, scorable attacks of every `attacks*.jsonl` in `dir` (the analysis kinds only:
/// `shutdown` and `loss` are healing's business).
pub fn read_episodes(dir: &Path) -> anyhow::Result<(Vec<Episode>, usize)> {
    let mut episodes = Vec::new();
    let mut unverified = 0;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("attacks") && n.ends_with(".jsonl"))
        })
        .collect();
    files.sort();
    for path in files {
        let f = std::fs::File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let a: AttackRecord = serde_json::from_str(&line)
                .with_context(|| format!("{}:{}: not a ground-truth line", path.display(), i + 1))?;
            let Some(level) = a.level else { continue };
            if matches!(a.kind.name(), "shutdown" | "loss") || a.outcome == Outcome::Failed {
                continue;
            }
            if a.verified != Some(true) {
                unverified += 1;
                continue;
            }
            let t = |s: &str| parse_time(s).map(|t| t.unix_timestamp_nanos() as f64 / 1e9).map_err(anyhow::Error::msg);
            episodes.push(Episode {
                kind: a.kind.name().to_owned(),
                host: a.host.clone(),
                level,
                culprit: a.culprit,
                affected: a.affected,
                felt: Vec::new(),
                start: t(&a.actual_start)?,
                end: t(&a.actual_end)?,
            });
        }
    }
    episodes.sort_by(|a, b| a.start.total_cmp(&b.start));
    Ok((episodes, unverified))
}

/// Each container's observed span `(name, first, last)` in the recording.
pub fn exposure(lines: &[Line]) -> Vec<(String, f64, f64)> {
    let mut spans: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for l in lines {
        let e = spans.entry(&l.name).or_insert((l.at, l.at));
        e.0 = e.0.min(l.at);
        e.1 = e.1.max(l.at);
    }
    spans.into_iter().map(|(n, (a, b))| (n.to_owned(), a, b)).collect()
}

/// Replays `methods` over the recording in `dir`, writes their anomalies and scores there, and
/// answers the scores.
pub fn evaluate(dir: &Path, methods: &[Method], settings: AnalysisSettings) -> anyhow::Result<Vec<Evaluation>> {
    let evals = evaluate_pooled(&[dir.to_path_buf()], methods, settings)?;
    for e in &evals {
        std::fs::write(dir.join(format!("scores-{}.json", e.method.name())), serde_json::to_vec_pretty(&e.scores)?)?;
    }
    Ok(evals)
}

/// Replays `methods` over each recording in `dirs` (writing each one's anomalies there) and
/// scores all their episodes together.
pub fn evaluate_pooled(
    dirs: &[PathBuf],
    methods: &[Method],
    settings: AnalysisSettings,
) -> anyhow::Result<Vec<Evaluation>> {
    let mut episodes: Vec<Episode> = Vec::new();
    let mut exposed: Vec<(String, f64, f64)> = Vec::new();
    let mut found: Vec<Vec<Found>> = vec![Vec::new(); methods.len()];
    for dir in dirs {
        let lines = engine::read_recording(dir)?;
        let (mut mine, _) = read_episodes(dir)?;
        let depends: BTreeMap<&str, &[String]> =
            lines.iter().map(|l| (l.name.as_str(), l.depends_on.as_slice())).collect();
        for e in &mut mine {
            let names: Vec<&String> =
                e.affected.iter().chain(e.culprit.iter().filter_map(|c| c.container.as_ref())).collect();
            e.felt = depends
                .iter()
                .filter(|(n, d)| !names.iter().any(|m| m == n) && d.iter().any(|x| names.contains(&x)))
                .map(|(n, _)| (*n).to_owned())
                .collect();
        }
        for (&method, found) in methods.iter().zip(&mut found) {
            let records = engine::replay(&lines, AnalysisSettings { method, ..settings });
            let mut text = String::new();
            for r in &records {
                text.push_str(&serde_json::to_string(r)?);
                text.push('\n');
            }
            std::fs::write(dir.join(format!("anomalies-{}.jsonl", method.name())), text)?;
            found.extend(records.iter().filter_map(Found::from_record));
        }
        episodes.extend(mine);
        exposed.extend(exposure(&lines));
    }
    let out = methods
        .iter()
        .zip(&found)
        .map(|(&method, found)| Evaluation { method, scores: score::score(&episodes, found, &exposed) })
        .collect();
    Ok(out)
}

/// The printed report: the main table, per kind, and each method's confusion matrix.
pub fn report(evals: &[Evaluation]) -> String {
    let cols: Vec<(&str, &Scores)> = evals.iter().map(|e| (e.method.name(), &e.scores)).collect();
    let mut out = score::table(&cols);
    out.push('\n');
    out.push_str(&score::kinds_table(&cols));
    for e in evals {
        out.push_str(&format!("\nConfusion of levels, method `{}`:\n\n", e.method.name()));
        out.push_str(&score::confusion_table(&e.scores));
    }
    out
}

/// `hms analyze`.
pub fn run(opts: &AnalyzeOpts) -> anyhow::Result<()> {
    if opts.method.is_empty() {
        anyhow::bail!("--method must name hms, seed or both");
    }
    let window = u32::try_from(opts.window).unwrap_or(u32::MAX);
    let patch = AnalysisPatch { dd: Some(opts.dd), window: Some(window), ..AnalysisPatch::default() };
    let mut settings = AnalysisConfig::default().patched(&patch).map_err(anyhow::Error::msg)?.settings();
    if let Some(r) = opts.hms_ratio.filter(|r| r.is_finite() && *r >= 1.0) {
        settings.hms.ratio = r;
    }
    if let Some(z) = opts.hms_z.filter(|z| z.is_finite() && *z > 0.0) {
        settings.hms.z = z;
    }
    let methods: Vec<Method> = opts.method.iter().map(|m| Method::from(*m)).collect();
    let (mut verified, mut unverified) = (0, 0);
    for dir in &opts.replay {
        let (episodes, not) = read_episodes(dir)?;
        (verified, unverified) = (verified + episodes.len(), unverified + not);
    }
    let evals = if let [dir] = opts.replay.as_slice() {
        evaluate(dir, &methods, settings)?
    } else {
        evaluate_pooled(&opts.replay, &methods, settings)?
    };
    println!("{verified} verified episodes ({unverified} not verified, not scored)\n");
    print!("{}", report(&evals));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::engine::Recorder;

    #[test]
    fn a_recording_with_its_truth_is_replayed_and_scored_by_both_methods() {
        let dir = tempfile::tempdir().unwrap();
        let mut rec = Recorder::open(dir.path(), "h").unwrap();
        let t0 = 1_800_000_000.0;
        for t in 0..300 {
            for name in ["a", "b", "c"] {
                let hog = name == "a" && (200..240).contains(&t);
                rec.write(&Line {
                    at: t0 + t as f64,
                    host: "h".into(),
                    id: format!("{name}-id"),
                    name: name.into(),
                    response_ms: Some(if hog { 60.0 } else { 10.0 + (t % 4) as f64 * 0.3 }),
                    workload: Some(4.7),
                    cpu_percent: Some(if hog { 30.0 } else { 3.0 }),
                    cpu_throttled: Some(if hog { 0.8 } else { 0.0 }),
                    host_cpus: Some(1.0),
                    ..Line::default()
                })
                .unwrap();
            }
        }
        rec.flush().unwrap();
        let stamp = |s: f64| crate::model::rfc3339(time::OffsetDateTime::from_unix_timestamp(s as i64).unwrap());
        let truth = AttackRecord {
            time: stamp(t0 + 240.0),
            host: "h".into(),
            container_id: "a-id".into(),
            container_name: "a".into(),
            kind: crate::antagonist::config::FaultKind::CpuHog,
            loss: None,
            scope: None,
            method: None,
            planned_start: stamp(t0 + 200.0),
            planned_end: stamp(t0 + 240.0),
            actual_start: stamp(t0 + 200.0),
            actual_end: stamp(t0 + 240.0),
            outcome: Outcome::Done,
            error: None,
            level: Some(crate::analysis::Level::Container),
            culprit: Some(crate::analysis::Culprit { host: "h".into(), container: Some("a".into()) }),
            affected: vec!["a".into()],
            verified: Some(true),
        };
        let unverified = AttackRecord { verified: Some(false), ..truth.clone() };
        let text =
            format!("{}\n{}\n", serde_json::to_string(&truth).unwrap(), serde_json::to_string(&unverified).unwrap());
        std::fs::write(dir.path().join("attacks-h.jsonl"), text).unwrap();
        let (episodes, skipped) = read_episodes(dir.path()).unwrap();
        assert_eq!((episodes.len(), skipped), (1, 1));
        let evals = evaluate(dir.path(), &[Method::Hms, Method::Seed], AnalysisSettings::default()).unwrap();
        for e in &evals {
            assert_eq!((e.scores.ad.hits, e.scores.ad.n), (1, 1), "{}", e.method.name());
            assert_eq!(e.scores.cia.hits, 1, "{}: {:?}", e.method.name(), e.scores.confusion);
            assert!(dir.path().join(format!("anomalies-{}.jsonl", e.method.name())).exists());
        }
        let text = report(&evals);
        assert!(text.contains("| cpu_hog |") && text.contains("method `seed`"), "{text}");

        // two runs pooled: their episodes and fault-free time add up
        let copy = tempfile::tempdir().unwrap();
        for f in ["signals-h.jsonl", "attacks-h.jsonl"] {
            std::fs::copy(dir.path().join(f), copy.path().join(f)).unwrap();
        }
        let dirs = [dir.path().to_path_buf(), copy.path().to_path_buf()];
        let pooled = evaluate_pooled(&dirs, &[Method::Hms], AnalysisSettings::default()).unwrap();
        let one = &evals[0].scores;
        assert_eq!((pooled[0].scores.ad.hits, pooled[0].scores.ad.n), (2, 2));
        assert!((pooled[0].scores.fault_free_hours - 2.0 * one.fault_free_hours).abs() < 1e-9);
        assert!(copy.path().join("anomalies-hms.jsonl").exists());
    }
}
