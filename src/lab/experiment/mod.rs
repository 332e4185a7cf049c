//! `hms experiment`: the seed's availability and bandwidth experiment, reproduced with HMS and
//! measured the way it should have been (see `docs/experiments.md`).
//!
//! Each run ([`run`], recorded as a [`spec::RunResult`]) starts a controller in this process and
//! N `hms manager` processes, each scoped by label to its own M containers on the local engine,
//! starts the antagonist on every host (`control`) with a scenario and a fixed seed, and
//! samples every container through Docker and ICMP at 4 Hz, independently of HMS. Scoring
//! ([`score`]) is pure. A grid (`--all`) runs the four seed scenarios × three aggregation times ×
//! the chosen healing modes and draws the charts.

pub mod analysis;
pub mod chart;
mod control;
mod ground_truth;
mod procs;
pub mod run;
pub mod sampler;
pub mod score;
pub mod spec;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};

use crate::antagonist::config::SCENARIOS;
use crate::config::HealMode;
use crate::probe::icmp::IcmpProber;
use spec::{RunResult, RunSpec};

/// Aggregation times of the seed's grid.
pub const GRID_AGGREGATIONS: [f64; 3] = [0.1, 1.0, 2.5];
/// The scenario name of a run without the antagonist: every restart in it is a false one.
pub const FAULT_FREE: &str = "none";
/// Seconds per run in `--short` mode.
pub const SHORT_SECS: f64 = 8.0;

/// Options of `hms experiment`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExperimentOpts {
    /// Antagonist scenario: test_low_low, test_low_high, test_high_low or test_high_high; none
    /// runs without the antagonist (a fault-free run).
    #[arg(long, default_value = "test_low_low")]
    pub scenario: String,
    /// Aggregation time of the controller, in seconds.
    #[arg(long, default_value_t = 1.0)]
    pub aggregation: f64,
    /// Measured seconds per run.
    #[arg(long, default_value_t = 120.0)]
    pub duration: f64,
    /// Output folder (CSV of samples, JSON summaries, PNG charts).
    #[arg(long)]
    pub out: PathBuf,
    /// Host managers (separate processes).
    #[arg(long, default_value_t = 5)]
    pub managers: usize,
    /// Containers per manager.
    #[arg(long, default_value_t = 5)]
    pub containers: usize,
    /// Seed of the antagonist (host i uses seed + i).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Healing modes to run, side by side: hms, seed (seed-faithful), off (no healing).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "hms,seed,off")]
    pub modes: Vec<HealMode>,
    /// Run the seed's whole grid: 4 scenarios × aggregation 0.1, 1 and 2.5 s.
    #[arg(long)]
    pub all: bool,
    /// CI mode: 8 s per run.
    #[arg(long)]
    pub short: bool,
    /// Where loss attacks drop packets: link (host side, survives a restart) or container.
    #[arg(long, default_value = "link")]
    pub loss_scope: String,
    /// Packet-loss threshold of the managers.
    #[arg(long, default_value_t = 30)]
    pub threshold: u8,
    /// The analysis experiment instead: simulated hosts with CPU budgets, services under a
    /// periodic workload, every analysis fault kind, both methods scored (docs/analysis.md);
    /// `--managers` simulated hosts × `--containers` services, `--duration` seconds of attacks.
    #[arg(long)]
    pub analysis: bool,
}

impl ExperimentOpts {
    /// The runs to make, validated.
    pub fn specs(&self) -> anyhow::Result<Vec<RunSpec>> {
        if self.scenario != FAULT_FREE && !SCENARIOS.iter().any(|s| s.name == self.scenario) {
            let names: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
            bail!("--scenario must be one of {names:?} or {FAULT_FREE:?}, got {:?}", self.scenario);
        }
        if !(self.aggregation.is_finite() && self.aggregation > 0.0 && self.aggregation <= 60.0) {
            bail!("--aggregation must be within (0, 60] seconds, got {}", self.aggregation);
        }
        let duration = if self.short { SHORT_SECS } else { self.duration };
        if !(duration.is_finite() && (1.0..=3600.0).contains(&duration)) {
            bail!("--duration must be within [1, 3600] seconds, got {duration}");
        }
        if !(1..=20).contains(&self.managers) || !(1..=50).contains(&self.containers) {
            bail!("--managers must be 1–20 and --containers 1–50");
        }
        if !["link", "container"].contains(&self.loss_scope.as_str()) {
            bail!("--loss-scope must be link or container, got {:?}", self.loss_scope);
        }
        if self.modes.is_empty() || self.threshold > 100 {
            bail!("--modes must name at least one mode and --threshold be 0–100");
        }
        let cells: Vec<(String, f64)> = if self.all {
            SCENARIOS.iter().flat_map(|s| GRID_AGGREGATIONS.map(|a| (s.name.to_owned(), a))).collect()
        } else {
            vec![(self.scenario.clone(), self.aggregation)]
        };
        let spec = |(scenario, aggregation): (String, f64), mode: HealMode| RunSpec {
            scenario,
            aggregation,
            mode,
            duration,
            managers: self.managers,
            containers: self.containers,
            seed: self.seed,
            loss_scope: self.loss_scope.clone(),
            threshold: self.threshold,
        };
        Ok(cells.into_iter().flat_map(|c| self.modes.iter().map(move |m| spec(c.clone(), *m))).collect())
    }
}

/// Runs every cell, writes the summaries and charts, prints the table.
pub async fn run(opts: ExperimentOpts) -> anyhow::Result<()> {
    if opts.analysis {
        return analysis::run(&opts).await;
    }
    let specs = opts.specs()?;
    std::fs::create_dir_all(&opts.out).with_context(|| format!("create {}", opts.out.display()))?;
    let prober: Arc<dyn crate::probe::Prober> = Arc::new(IcmpProber::new().context("icmp probing")?);
    let image = format!("hms-experiment:{}", std::process::id());
    crate::lab::testimage::build(&image).map_err(anyhow::Error::msg)?;
    let summary = opts.out.join("summary.json");
    let previous = read_summary(&summary)?;
    let mut results: Vec<RunResult> = Vec::new();
    let mut failure = None;
    for spec in &specs {
        tracing::info!(scenario = %spec.scenario, aggregation = spec.aggregation, mode = ?spec.mode, "run");
        // on SIGINT/SIGTERM the run is dropped: its guards stop the managers (which undo their
        // rules) and remove its containers; the runs already done are still written
        let outcome = tokio::select! {
            r = run::run(spec, &image, &opts.out, prober.clone()) => r,
            () = crate::shutdown::signal() => Err(anyhow::anyhow!("interrupted by a signal")),
        };
        match outcome {
            Ok(r) => results.push(r),
            Err(e) => {
                failure = Some(e.context(format!("run {}", spec.dir_name())));
                break;
            }
        }
    }
    crate::lab::testimage::remove(&image);
    let results = merge(previous, results);
    std::fs::write(&summary, serde_json::to_vec_pretty(&results)?)?;
    if !results.is_empty() {
        chart::availability(&results, &opts.out.join("availability.png"))?;
        chart::bandwidth(&results, &opts.out.join("bandwidth.png"))?;
    }
    print!("{}", table(&results));
    failure.map_or(Ok(()), Err)
}

/// The runs an earlier invocation left in `path` (none when it does not exist).
fn read_summary(path: &std::path::Path) -> anyhow::Result<Vec<RunResult>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a summary of earlier runs; choose another --out", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
    }
}

/// Earlier runs and new ones, a new run replacing an earlier one of the same cell and mode, in
/// grid order (scenario, aggregation time, mode).
pub fn merge(previous: Vec<RunResult>, new: Vec<RunResult>) -> Vec<RunResult> {
    let mut all: Vec<RunResult> =
        previous.into_iter().filter(|p| !new.iter().any(|n| n.spec.dir_name() == p.spec.dir_name())).collect();
    all.extend(new);
    let scenario = |r: &RunResult| SCENARIOS.iter().position(|s| s.name == r.spec.scenario).unwrap_or(usize::MAX);
    all.sort_by(|a, b| {
        (scenario(a).cmp(&scenario(b)))
            .then(a.spec.aggregation.total_cmp(&b.spec.aggregation))
            .then((a.spec.mode as u8).cmp(&(b.spec.mode as u8)))
    });
    all
}

/// The results as a markdown table.
pub fn table(results: &[RunResult]) -> String {
    let mut out = String::from(
        "| scenario | agg s | mode | avail % | bound % | all-up % | freshness % (bound) | seed % | shutdown downtime s (× bare start under load) | MTTR shutdown s | restarts/fault | futile | TP/FP/missed | kbit/s (peak) | update kbit/s | msg/s |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        let s = &r.score;
        let seed = chart::SEED_AVAILABILITY
            .iter()
            .find(|(a, _)| (a - r.spec.aggregation).abs() < 1e-9)
            .zip(SCENARIOS.iter().position(|x| x.name == r.spec.scenario))
            .map_or("–".to_owned(), |((_, v), i)| format!("{:.1}", v[i]));
        let mttr = s.mttr.get(&score::FaultKind::Shutdown).map_or("–".to_owned(), |m| format!("{:.2}", m.mean));
        let d = &s.detections;
        out.push_str(&format!(
            "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} ({:.1}) | {seed} | {:.2} ({:.2}) | {mttr} | {:.2} | {} | {}/{}/{} | {:.2} ({:.2}) | {:.2} | {:.2} |\n",
            r.spec.scenario.trim_start_matches("test_"),
            r.spec.aggregation,
            serde_json::to_string(&r.spec.mode).unwrap_or_default().replace('"', ""),
            100.0 * s.availability,
            100.0 * s.availability_bound,
            100.0 * s.all_up,
            100.0 * r.view_freshness,
            100.0 * r.view_freshness_bound,
            s.shutdown_downtime.mean,
            if r.bare_start_loaded > 0.0 { s.shutdown_downtime.mean / r.bare_start_loaded } else { 0.0 },
            s.restarts_per_fault,
            s.futile_restarts,
            d.true_positives,
            d.false_positives,
            d.missed,
            r.bandwidth.bytes_per_sec * 8.0 / 1000.0,
            r.bandwidth.peak_bytes_per_sec * 8.0 / 1000.0,
            r.bandwidth.update_bytes_per_sec * 8.0 / 1000.0,
            r.bandwidth.messages_per_sec,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(scenario: &str, aggregation: f64, mode: HealMode, availability: f64) -> RunResult {
        RunResult {
            spec: RunSpec {
                scenario: scenario.into(),
                aggregation,
                mode,
                duration: 8.0,
                managers: 1,
                containers: 1,
                seed: 1,
                loss_scope: "link".into(),
                threshold: 30,
            },
            score: score::Score { availability, ..score::Score::default() },
            view_freshness: 1.0,
            view_freshness_bound: 1.0,
            bandwidth: spec::Bandwidth::default(),
            bare_start: 0.3,
            bare_start_loaded: 0.4,
            samples_per_container: 32,
        }
    }

    #[test]
    fn a_new_run_replaces_the_same_cell_and_the_grid_order_is_kept() {
        let previous = vec![
            result("test_high_high", 0.1, HealMode::Hms, 0.5),
            result("test_low_low", 1.0, HealMode::Off, 0.2),
            result("test_low_low", 1.0, HealMode::Hms, 0.9),
        ];
        let new =
            vec![result("test_low_low", 1.0, HealMode::Hms, 0.95), result("test_low_low", 0.1, HealMode::Seed, 0.7)];
        let merged = merge(previous, new);
        let keys: Vec<String> = merged.iter().map(|r| r.spec.dir_name()).collect();
        assert_eq!(
            keys,
            ["test_low_low-agg0.1-seed", "test_low_low-agg1-hms", "test_low_low-agg1-off", "test_high_high-agg0.1-hms"]
        );
        assert_eq!(merged[1].score.availability, 0.95);
    }

    #[test]
    fn a_summary_survives_a_round_trip_and_a_foreign_file_is_refused() {
        let dir = std::env::temp_dir().join(format!("hms-summary-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("summary.json");
        assert!(read_summary(&path).unwrap().is_empty());
        let runs = vec![result("test_low_high", 2.5, HealMode::Seed, 0.4)];
        std::fs::write(&path, serde_json::to_vec(&runs).unwrap()).unwrap();
        assert_eq!(read_summary(&path).unwrap()[0].spec.dir_name(), runs[0].spec.dir_name());
        std::fs::write(&path, b"{\"not\": \"a summary\"}").unwrap();
        let err = read_summary(&path).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(err.contains("choose another --out"), "{err}");
    }

    #[test]
    fn the_fault_free_scenario_is_accepted_and_unknown_ones_are_not() {
        let mut opts = ExperimentOpts {
            scenario: FAULT_FREE.into(),
            aggregation: 1.0,
            duration: 60.0,
            out: "x".into(),
            managers: 5,
            containers: 5,
            seed: 1,
            modes: vec![HealMode::Hms],
            all: false,
            short: false,
            loss_scope: "link".into(),
            threshold: 30,
            analysis: false,
        };
        assert_eq!(opts.specs().unwrap().len(), 1);
        opts.scenario = "test_medium".into();
        assert!(opts.specs().unwrap_err().to_string().contains("--scenario must be one of"));
    }
}
