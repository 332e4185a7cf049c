//! Charts of a grid run in the layout of the seed's Figures 17–19: one panel per aggregation
//! time, one group of bars per scenario, the seed's published values as reference bars. The font
//! is bundled (DejaVu Sans), so no system font is needed.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::FontStyle;

use super::spec::RunResult;
use crate::config::HealMode;

/// The seed's published availability (%, its "view freshness"), per aggregation time, in the
/// order of [`crate::antagonist::config::SCENARIOS`].
pub const SEED_AVAILABILITY: [(f64, [f64; 4]); 3] =
    [(0.1, [96.0, 89.3, 89.2, 85.4]), (1.0, [73.0, 65.2, 66.8, 57.8]), (2.5, [45.6, 36.8, 42.7, 29.5])];
/// The seed's published bandwidth range, in kbit/s.
pub const SEED_BANDWIDTH_KBPS: (f64, f64) = (6.2, 10.5);

static FONT: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_err() {
            tracing::warn!("bundled chart font rejected");
        }
    });
}

/// The value of a series for (scenario, aggregation), when it was measured.
type ValueOf<'a> = Box<dyn Fn(&str, f64) -> Option<f64> + 'a>;

/// One bar series: its legend, colour and values.
struct Series<'a> {
    label: &'a str,
    color: RGBColor,
    value: ValueOf<'a>,
}

fn find<'a>(results: &'a [RunResult], mode: HealMode, scenario: &str, agg: f64) -> Option<&'a RunResult> {
    results
        .iter()
        .find(|r| r.spec.mode == mode && r.spec.scenario == scenario && (r.spec.aggregation - agg).abs() < 1e-9)
}

fn aggregations(results: &[RunResult]) -> Vec<f64> {
    let mut aggs: Vec<f64> = results.iter().map(|r| r.spec.aggregation).collect();
    aggs.sort_by(f64::total_cmp);
    aggs.dedup();
    aggs
}

fn seed_published(scenario: &str, agg: f64) -> Option<f64> {
    let i = crate::antagonist::config::SCENARIOS.iter().position(|s| s.name == scenario)?;
    SEED_AVAILABILITY.iter().find(|(a, _)| (a - agg).abs() < 1e-9).map(|(_, v)| v[i])
}

/// `availability.png`: container availability of each mode and view freshness, against the seed.
pub fn availability(results: &[RunResult], path: &Path) -> anyhow::Result<()> {
    let pct = |f: fn(&RunResult) -> f64, mode: HealMode| {
        move |s: &str, a: f64| find(results, mode, s, a).map(|r| 100.0 * f(r))
    };
    let series = vec![
        Series {
            label: "seed, published (view freshness)",
            color: RGBColor(150, 150, 150),
            value: Box::new(seed_published),
        },
        Series {
            label: "HMS view freshness",
            color: RGBColor(120, 170, 230),
            value: Box::new(pct(|r| r.view_freshness, HealMode::Hms)),
        },
        Series {
            label: "HMS container availability",
            color: RGBColor(30, 90, 180),
            value: Box::new(pct(|r| r.score.availability, HealMode::Hms)),
        },
        Series {
            label: "seed-faithful container availability",
            color: RGBColor(230, 140, 40),
            value: Box::new(pct(|r| r.score.availability, HealMode::Seed)),
        },
        Series {
            label: "no healing",
            color: RGBColor(200, 60, 60),
            value: Box::new(pct(|r| r.score.availability, HealMode::Off)),
        },
    ];
    bars(results, path, "availability %", 100.0, &series)
}

/// `bandwidth.png`: kbit/s between managers and controller, per mode, against the seed's range.
pub fn bandwidth(results: &[RunResult], path: &Path) -> anyhow::Result<()> {
    let kbps = |mode: HealMode| {
        move |s: &str, a: f64| find(results, mode, s, a).map(|r| r.bandwidth.bytes_per_sec * 8.0 / 1000.0)
    };
    let series = vec![
        Series {
            label: "seed, published (upper end)",
            color: RGBColor(150, 150, 150),
            value: Box::new(|_, _| Some(SEED_BANDWIDTH_KBPS.1)),
        },
        Series { label: "HMS", color: RGBColor(30, 90, 180), value: Box::new(kbps(HealMode::Hms)) },
        Series { label: "seed-faithful", color: RGBColor(230, 140, 40), value: Box::new(kbps(HealMode::Seed)) },
    ];
    let top = results.iter().map(|r| r.bandwidth.bytes_per_sec * 8.0 / 1000.0).fold(SEED_BANDWIDTH_KBPS.1, f64::max);
    bars(results, path, "kbit/s", top * 1.15, &series)
}

fn bars(results: &[RunResult], path: &Path, y_desc: &str, y_max: f64, series: &[Series<'_>]) -> anyhow::Result<()> {
    register_font();
    let aggs = aggregations(results);
    let scenarios: Vec<&str> = crate::antagonist::config::SCENARIOS.iter().map(|s| s.name).collect();
    let root = BitMapBackend::new(path, (420 * aggs.len().max(1) as u32, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let (legend_area, panels_area) = root.split_vertically(110);
    for (i, s) in series.iter().enumerate() {
        let (x, y) = (10 + 330 * (i as i32 % 3), 10 + 30 * (i as i32 / 3));
        legend_area.draw(&Rectangle::new([(x, y), (x + 18, y + 18)], s.color.filled()))?;
        legend_area.draw(&Text::new(s.label.to_owned(), (x + 24, y + 2), ("sans-serif", 15)))?;
    }
    let panels = panels_area.split_evenly((1, aggs.len().max(1)));
    let width = 0.8 / series.len() as f64;
    for (panel, agg) in panels.iter().zip(&aggs) {
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("aggregation {agg} s"), ("sans-serif", 18))
            .margin(8)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..scenarios.len() as f64, 0f64..y_max)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(scenarios.len() * 2 + 1)
            .x_label_formatter(&|x| label_at(&scenarios, *x))
            .y_desc(y_desc)
            .label_style(("sans-serif", 13))
            .draw()?;
        for (si, scenario) in scenarios.iter().enumerate() {
            for (bi, s) in series.iter().enumerate() {
                let Some(v) = (s.value)(scenario, *agg) else { continue };
                let x0 = si as f64 + 0.1 + bi as f64 * width;
                chart.draw_series(std::iter::once(Rectangle::new([(x0, 0.0), (x0 + width, v)], s.color.filled())))?;
            }
        }
    }
    root.present()?;
    Ok(())
}

/// Scenario names under the middle of their group, shortened (`low_low`).
fn label_at(scenarios: &[&str], x: f64) -> String {
    let i = x.floor();
    if (x - i - 0.5).abs() > 0.01 || i < 0.0 {
        return String::new();
    }
    scenarios.get(i as usize).map(|s| s.trim_start_matches("test_").to_owned()).unwrap_or_default()
}
