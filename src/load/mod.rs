//! `hms load`: an open-loop HTTP load generator with a rate schedule, the workload driver of the
//! analysis experiment and of the antagonist's `load_surge`.
//!
//! - [`schedule`]: constant, steps, ramp and periodic rates (pure);
//! - [`generator`]: the run on a thread of its own, latency from each request's scheduled time,
//!   an HDR histogram, per-second rows and a summary.

pub mod generator;
pub mod schedule;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::config::parse_secs;
use generator::{LoadSpec, Second, Summary, Target};
use schedule::Schedule;

/// Options of `hms load`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadOpts {
    /// A target, `http://HOST:PORT/PATH`; repeat for several (each gets the whole schedule).
    #[arg(long = "target", required = true, value_parser = |s: &str| s.parse::<Target>())]
    pub targets: Vec<Target>,
    /// Requests per second per target: RATE, steps:RATE@SECS,…, ramp:FROM-TO@SECS or
    /// periodic:LOW-HIGH@SECSxLEVELS.
    #[arg(long, default_value = "10", value_parser = |s: &str| s.parse::<Schedule>())]
    pub schedule: Schedule,
    /// How long to send, in seconds (at most a day); the run stops by itself.
    #[arg(long, value_parser = parse_secs)]
    pub duration: Duration,
    /// A request not answered within this many seconds counts as timed out.
    #[arg(long, default_value = "5", value_parser = parse_secs)]
    pub timeout: Duration,
    /// Requests in flight at most; a send due past it is counted as dropped.
    #[arg(long, default_value_t = 10_000)]
    pub max_in_flight: usize,
    /// Write one CSV row per second here.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Write the JSON summary here (it is also printed).
    #[arg(long)]
    pub summary: Option<PathBuf>,
}

/// `hms load`: runs the schedule, stops at its end or on SIGINT/SIGTERM, prints the summary.
pub async fn run(opts: LoadOpts) -> anyhow::Result<()> {
    let spec = LoadSpec {
        targets: opts.targets.clone(),
        schedule: opts.schedule.clone(),
        duration: opts.duration,
        timeout: opts.timeout,
        max_in_flight: opts.max_in_flight,
    };
    spec.validate().map_err(anyhow::Error::msg)?;
    let mut csv = match &opts.csv {
        Some(path) => {
            let mut f = std::fs::File::create(path).with_context(|| format!("--csv {}", path.display()))?;
            writeln!(f, "{}", Second::CSV_HEADER)?;
            Some(f)
        }
        None => None,
    };
    let on_second = move |s: &Second| {
        if let Some(f) = csv.as_mut()
            && let Err(e) = writeln!(f, "{}", s.csv())
        {
            tracing::warn!(error = %e, "cannot write the CSV row");
        }
        let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
        eprintln!(
            "{:>5} s  wanted {:>7.1}/s  sent {:>6}  ok {:>6}  failed {:>4}  p50 {:>7} ms  p99 {:>7} ms",
            s.second,
            s.wanted_rate,
            s.sent,
            s.ok,
            s.failed,
            ms(s.p50_ms),
            ms(s.p99_ms)
        );
    };
    let handle = generator::spawn(spec, on_second).context("cannot start the load thread")?;
    let stop = handle.stop_flag();
    let finished = handle.finished();
    tokio::pin!(finished);
    let summary = tokio::select! {
        s = &mut finished => s,
        () = crate::shutdown::signal() => {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            finished.await
        }
    };
    print_summary(&summary);
    let json = serde_json::to_string_pretty(&summary)?;
    if let Some(path) = &opts.summary {
        std::fs::write(path, &json).with_context(|| format!("--summary {}", path.display()))?;
    }
    println!("{json}");
    Ok(())
}

fn print_summary(s: &Summary) {
    println!("| measure | value |\n|---|---|");
    println!("| targets | {} |", s.targets.join(", "));
    println!("| schedule (per target) | {} |", s.schedule);
    println!("| sent for | {:.1} s |", s.duration_s);
    println!("| scheduled / sent / dropped | {} / {} / {} |", s.scheduled, s.sent, s.dropped);
    println!("| achieved rate | {:.1}/s |", s.achieved_rate);
    if let (Some(p99), Some(max)) = (s.send_lag_p99_ms, s.send_lag_max_ms) {
        println!("| send lag ms p99 / max | {p99:.2} / {max:.2} |");
    }
    println!("| ok / failed (timed out) | {} / {} ({}) |", s.ok, s.failed, s.timed_out);
    if let Some(l) = &s.latency {
        println!(
            "| latency ms p50 / p90 / p99 / p99.9 / max | {:.2} / {:.2} / {:.2} / {:.2} / {:.2} |",
            l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms
        );
    }
}
