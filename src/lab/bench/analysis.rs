//! `hms bench analysis`: what the analysis costs a manager — detection and identification of
//! N containers, every probe period, by each method, on synthetic signals with faults in them
//! (so identification runs too). Measured as the process's CPU time over the periods, against
//! the same periods fed through nothing but building the lines (the baseline of the same run).

use std::time::Duration;

use crate::analysis::detect::{AnalysisSettings, Method};
use crate::analysis::engine::{Engine, EngineEvent, Line};

/// Options of `hms bench analysis`.
#[derive(Debug, Clone, clap::Args)]
pub struct AnalysisBench {
    /// Containers analysed (spread over hosts of 5).
    #[arg(long, default_value_t = 50)]
    pub containers: usize,
    /// Periods fed (one a second in production).
    #[arg(long, default_value_t = 3600)]
    pub periods: usize,
}

/// This process's CPU time (the bench runs on one thread; the runtime's others are idle).
fn thread_cpu() -> Duration {
    super::process_cpu(std::process::id()).unwrap_or_default()
}

/// Container `i`'s line at period `t`: a steady service with noise, a hog in every tenth
/// container for 30 of every 300 periods.
pub fn line(i: usize, t: usize) -> Line {
    let hog = i.is_multiple_of(10) && (200..230).contains(&(t % 300));
    let noise = ((t * 31 + i * 17) % 11) as f64 * 0.2;
    Line {
        at: 1_800_000_000.0 + t as f64 + i as f64 * 1e-3,
        host: format!("h{}", i / 5),
        id: format!("c{i:011}"),
        name: format!("c{i}"),
        response_ms: Some(if hog { 40.0 + noise } else { 8.0 + noise }),
        workload: Some(4.0 + ((t / 60) % 3) as f64),
        cpu_percent: Some(if hog { 30.0 } else { 3.0 }),
        cpu_throttled: Some(if hog { 0.7 } else { 0.0 }),
        memory_bytes: Some(10 << 20),
        memory_limit_bytes: Some(64 << 20),
        depends_on: Vec::new(),
        host_cpus: Some(1.0),
        host_throttled: Some(0.0),
    }
}

/// CPU seconds to feed `periods` of `containers` through `method` (`None`: only build them).
fn cost(containers: usize, periods: usize, method: Option<Method>) -> (Duration, usize) {
    let mut engine = method.map(|m| Engine::new(AnalysisSettings { method: m, ..AnalysisSettings::default() }));
    let start = thread_cpu();
    let (mut sink, mut opened) = (0usize, 0usize);
    for t in 0..periods {
        for i in 0..containers {
            let l = std::hint::black_box(line(i, t));
            match engine.as_mut() {
                Some(e) => opened += e.feed(&l).iter().filter(|e| matches!(e, EngineEvent::Opened(_))).count(),
                None => sink += l.name.len(),
            }
        }
    }
    std::hint::black_box(sink);
    (thread_cpu() - start, opened)
}

impl AnalysisBench {
    pub fn run(&self) -> anyhow::Result<()> {
        if !(1..=10_000).contains(&self.containers) || !(60..=1_000_000).contains(&self.periods) {
            anyhow::bail!("--containers must be 1–10000 and --periods 60–1000000");
        }
        let (base, _) = cost(self.containers, self.periods, None);
        println!("| method | containers | periods | CPU s | % of one core at one period a second | anomalies |");
        println!("|---|---|---|---|---|---|");
        for m in [Method::Hms, Method::Seed] {
            let (cpu, found) = cost(self.containers, self.periods, Some(m));
            let net = cpu.saturating_sub(base).as_secs_f64();
            let share = 100.0 * net / self.periods as f64;
            println!("| {} | {} | {} | {net:.3} | {share:.3} % | {found} |", m.name(), self.containers, self.periods);
        }
        println!("\n(the lines' own construction, {:.3} s, is subtracted)", base.as_secs_f64());
        Ok(())
    }
}
