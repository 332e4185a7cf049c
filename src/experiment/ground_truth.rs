//! Reading the antagonist's ground truth (`attacks.jsonl` in every manager's data dir) into the
//! faults that scoring uses.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use anyhow::Context;

use super::sampler::secs_since;
use super::score::{Fault, FaultKind};
use crate::antagonist::plan::LossScope;
use crate::antagonist::truth::{self, AttackKind, AttackRecord, Outcome};

/// Faults of every host, in seconds since `t0`; `names` maps full container ids to the names the
/// samples use. Attacks that failed (the engine or the injector refused them) injected nothing.
pub fn read_faults(
    dir: &Path,
    hosts: &[String],
    t0: SystemTime,
    names: &BTreeMap<String, String>,
) -> anyhow::Result<Vec<Fault>> {
    let mut faults = Vec::new();
    for host in hosts {
        let path = dir.join(host).join(truth::FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let rec: AttackRecord =
                serde_json::from_str(line).with_context(|| format!("bad line in {}: {line}", path.display()))?;
            if let Some(f) = fault_of(&rec, t0, names)? {
                faults.push(f);
            }
        }
    }
    faults.sort_by(|a, b| a.start.total_cmp(&b.start));
    Ok(faults)
}

/// One record as a fault, unless it injected nothing.
pub fn fault_of(rec: &AttackRecord, t0: SystemTime, names: &BTreeMap<String, String>) -> anyhow::Result<Option<Fault>> {
    if rec.outcome == Outcome::Failed {
        return Ok(None);
    }
    let at = |s: &str| -> anyhow::Result<f64> {
        let t = truth::parse_time(s).map_err(anyhow::Error::msg)?;
        Ok(secs_since(t0, SystemTime::from(t)))
    };
    let kind = match (rec.kind, rec.scope) {
        (AttackKind::Shutdown, _) => FaultKind::Shutdown,
        (AttackKind::Loss, Some(LossScope::Container)) => FaultKind::ContainerLoss,
        (AttackKind::Loss, _) => FaultKind::LinkLoss,
    };
    let container = names.get(&rec.container_id).cloned().unwrap_or_else(|| rec.container_name.clone());
    let loss = rec.loss.map_or(0.0, f64::from);
    Ok(Some(Fault { container, kind, loss, start: at(&rec.actual_start)?, end: at(&rec.actual_end)? }))
}
