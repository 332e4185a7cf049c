//! `hms experiment`: the seed's availability and bandwidth experiment, reproduced with HMS and
//! measured the way it should have been (see `docs/experiments.md`).
//!
//! Each run ([`run`]) starts a controller in this process and N `hms manager` processes, each
//! scoped by label to its own M containers on the local engine, starts the antagonist on every
//! host with a scenario and a fixed seed, and samples every container through Docker and ICMP at
//! 4 Hz, independently of HMS. Scoring ([`score`]) is pure. A grid (`--all`) runs the four seed
//! scenarios × three aggregation times × the chosen healing modes and draws the charts.

pub mod chart;
mod control;
mod ground_truth;
mod procs;
pub mod run;
pub mod sampler;
pub mod score;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};

use crate::antagonist::plan::SCENARIOS;
use crate::config::HealMode;
use crate::probe::icmp::IcmpProber;
use run::{RunResult, RunSpec};

/// Aggregation times of the seed's grid.
pub const GRID_AGGREGATIONS: [f64; 3] = [0.1, 1.0, 2.5];
/// Seconds per run in `--short` mode.
pub const SHORT_SECS: f64 = 8.0;

/// Options of `hms experiment`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExperimentOpts {
    /// Antagonist scenario: test_low_low, test_low_high, test_high_low or test_high_high.
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
}

impl ExperimentOpts {
    /// The runs to make, validated.
    pub fn specs(&self) -> anyhow::Result<Vec<RunSpec>> {
        if !SCENARIOS.iter().any(|s| s.name == self.scenario) {
            let names: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
            bail!("--scenario must be one of {names:?}, got {:?}", self.scenario);
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
    let specs = opts.specs()?;
    std::fs::create_dir_all(&opts.out).with_context(|| format!("create {}", opts.out.display()))?;
    let prober: Arc<dyn crate::probe::Prober> = Arc::new(IcmpProber::new().context("icmp probing")?);
    let image = format!("hms-experiment:{}", std::process::id());
    crate::testimage::build(&image).map_err(anyhow::Error::msg)?;
    let mut results: Vec<RunResult> = Vec::new();
    let mut failure = None;
    for spec in &specs {
        tracing::info!(scenario = %spec.scenario, aggregation = spec.aggregation, mode = ?spec.mode, "run");
        match run::run(spec, &image, &opts.out, prober.clone()).await {
            Ok(r) => results.push(r),
            Err(e) => {
                failure = Some(e.context(format!("run {}", spec.dir_name())));
                break;
            }
        }
    }
    crate::testimage::remove(&image);
    std::fs::write(opts.out.join("summary.json"), serde_json::to_vec_pretty(&results)?)?;
    if !results.is_empty() {
        chart::availability(&results, &opts.out.join("availability.png"))?;
        chart::bandwidth(&results, &opts.out.join("bandwidth.png"))?;
    }
    print!("{}", table(&results));
    failure.map_or(Ok(()), Err)
}

/// The results as a markdown table.
pub fn table(results: &[RunResult]) -> String {
    let mut out = String::from(
        "| scenario | agg s | mode | avail % | bound % | all-up % | freshness % | seed % | shutdown downtime s (×bare) | MTTR shutdown s | restarts/fault | futile | TP/FP/missed | kbit/s (peak) | msg/s |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
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
            "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {seed} | {:.2} ({:.2}) | {mttr} | {:.2} | {} | {}/{}/{} | {:.2} ({:.2}) | {:.2} |\n",
            r.spec.scenario.trim_start_matches("test_"),
            r.spec.aggregation,
            serde_json::to_string(&r.spec.mode).unwrap_or_default().replace('"', ""),
            100.0 * s.availability,
            100.0 * s.availability_bound,
            100.0 * s.all_up,
            100.0 * r.view_freshness,
            s.shutdown_downtime.mean,
            if r.bare_start > 0.0 { s.shutdown_downtime.mean / r.bare_start } else { 0.0 },
            s.restarts_per_fault,
            s.futile_restarts,
            d.true_positives,
            d.false_positives,
            d.missed,
            r.bandwidth.bytes_per_sec * 8.0 / 1000.0,
            r.bandwidth.peak_bytes_per_sec * 8.0 / 1000.0,
            r.bandwidth.messages_per_sec,
        ));
    }
    out
}
