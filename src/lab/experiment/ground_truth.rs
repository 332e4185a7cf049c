//! Reading the antagonist's ground truth (`attacks.jsonl` in every manager's data dir) into the
//! faults that scoring uses.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use anyhow::Context;

use super::sampler::secs_since;
use super::score::{Fault, FaultKind};
use crate::antagonist::config::LossScope;
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

/// One record as a fault, unless it injected nothing or hit a container that is not one of
/// this run's (`names`).
pub fn fault_of(rec: &AttackRecord, t0: SystemTime, names: &BTreeMap<String, String>) -> anyhow::Result<Option<Fault>> {
    let Some(container) = names.get(&rec.container_id) else { return Ok(None) };
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
        // the analysis kinds: not scored by the availability experiment
        _ => return Ok(None),
    };
    let container = container.clone();
    let loss = rec.loss.map_or(0.0, f64::from);
    Ok(Some(Fault { container, kind, loss, start: at(&rec.actual_start)?, end: at(&rec.actual_end)? }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::antagonist::truth::stamp;
    use time::OffsetDateTime;

    fn record(id: &str, outcome: Outcome) -> AttackRecord {
        let at = stamp(OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(12));
        AttackRecord {
            time: at.clone(),
            host: "vm0".into(),
            container_id: id.into(),
            container_name: format!("name-of-{id}"),
            kind: AttackKind::Shutdown,
            loss: None,
            scope: None,
            method: None,
            planned_start: at.clone(),
            planned_end: at.clone(),
            actual_start: at.clone(),
            actual_end: at,
            outcome,
            error: None,
            level: None,
            culprit: None,
            affected: Vec::new(),
            verified: None,
        }
    }

    #[test]
    fn only_this_runs_containers_and_only_what_was_injected_are_faults() {
        let names = BTreeMap::from([("a".to_owned(), "c-a".to_owned())]);
        let t0 = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(10);
        let f = fault_of(&record("a", Outcome::Done), t0, &names).unwrap().unwrap();
        assert_eq!((f.container.as_str(), f.kind, f.start), ("c-a", FaultKind::Shutdown, 2.0));
        assert_eq!(fault_of(&record("a", Outcome::Failed), t0, &names).unwrap(), None);
        // a record left by an earlier run in the same folder
        assert_eq!(fault_of(&record("old", Outcome::Done), t0, &names).unwrap(), None);
    }
}
