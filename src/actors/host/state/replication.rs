//! Replication: the versioned records the controller pulls. Every change to a published record
//! bumps the host's version; a pull gets a full snapshot or what changed since a version, with
//! tombstones for removed containers.

use tokio::time::Instant;

use super::HostState;
use crate::actors::protocol::{ContainerPatch, Content};
use crate::model::{self, ContainerRecord};

/// How many removals are remembered for delta pulls.
const TOMBSTONES: usize = 1024;

impl HostState {
    /// The record published for a container.
    pub fn record(&self, id: &str, now: Instant) -> Option<ContainerRecord> {
        let t = self.containers.get(id)?;
        // signals are shown only while they are being measured
        let live = self.probe_target(id).and_then(|(ip, _)| ip).map(|_| ());
        Some(ContainerRecord {
            id: t.obs.short_id().to_owned(),
            name: t.obs.name.clone(),
            image: t.obs.image.clone(),
            host: self.name.clone(),
            ip: t.obs.ip.map(|ip| ip.to_string()),
            state: self.published_state(t, now),
            packet_loss: t.shown_loss,
            threshold: self.threshold_of(&t.obs),
            restarts: t.restarts,
            last_restart: t.last_restart.map(model::rfc3339),
            probe: self.response_probe(&t.obs).map(|p| p.to_string()),
            response_ms: live.and(t.shown.response_ms),
            workload: live.and(t.shown.workload),
            cpu_percent: live.and(t.shown.cpu_percent),
            memory_bytes: live.and(t.shown.memory_bytes),
            anomaly: t.anomaly,
            full_id: t.obs.id.clone(),
        })
    }

    /// Every record, in id order.
    pub fn records(&self, now: Instant) -> Vec<ContainerRecord> {
        self.containers.keys().filter_map(|id| self.record(id, now)).collect()
    }

    /// Re-derives every record; bumps the version for each that changed. True when any did.
    pub fn touch_all(&mut self, now: Instant) -> bool {
        let ids: Vec<String> = self.containers.keys().cloned().collect();
        let before = self.version;
        ids.iter().for_each(|id| {
            self.touch(id, now);
        });
        self.version != before
    }

    /// Re-derives one record; bumps the version when it changed.
    pub fn touch(&mut self, id: &str, now: Instant) -> bool {
        let Some(rec) = self.record(id, now) else { return false };
        let Some(t) = self.containers.get_mut(id) else { return false };
        if t.published.as_ref() == Some(&rec) {
            return false;
        }
        self.version += 1;
        t.version = self.version;
        t.published = Some(rec);
        true
    }

    /// The content for a pull: everything, or what changed after `since` — as patches of the
    /// records the puller holds when `since` is the version of the last answer.
    pub fn content(&mut self, since: Option<u64>) -> Content {
        let delta_from = since.filter(|&v| v >= self.pruned_upto && v <= self.version);
        let patchable = delta_from.is_some() && delta_from == self.sent_version;
        let (mut containers, mut patches) = (Vec::new(), Vec::new());
        let changed = self.containers.values().filter(|t| delta_from.is_none_or(|v| t.version > v));
        for rec in changed.filter_map(|t| t.published.as_ref()) {
            let base = self.sent.get(&rec.full_id).filter(|_| patchable);
            match base.map(|old| ContainerPatch::diff(old, rec)) {
                Some(Some(patch)) if patch.is_empty() => {}
                Some(Some(patch)) => patches.push(patch),
                _ => containers.push(rec.clone()),
            }
        }
        let removed = match delta_from {
            Some(v) => self.tombstones.iter().filter(|(_, tv)| *tv > v).map(|(id, _)| id.clone()).collect(),
            None => Vec::new(),
        };
        self.sent =
            self.containers.values().filter_map(|t| t.published.clone()).map(|r| (r.full_id.clone(), r)).collect();
        self.sent_version = Some(self.version);
        Content {
            host: self.name.clone(),
            version: self.version,
            threshold: self.threshold,
            full: delta_from.is_none(),
            containers,
            patches,
            removed,
        }
    }

    /// Remembers a removal for delta pulls, as a change of its own version.
    pub(super) fn tombstone(&mut self, id: &str) {
        self.version += 1;
        self.tombstones.push((id.to_owned(), self.version));
        if self.tombstones.len() > TOMBSTONES {
            let (_, v) = self.tombstones.remove(0);
            self.pruned_upto = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::obs;
    use super::*;
    use crate::model::DockerState;

    #[test]
    fn a_delta_from_the_last_answer_patches_fields_and_an_older_one_sends_records() {
        let id = "a".repeat(64);
        let mut h = HostState::new("h".into(), 30, 2, None);
        let t0 = Instant::now();
        h.observe(obs(DockerState::Running), t0);
        h.touch(&id, t0);
        let first = h.content(None);
        assert!(first.full && first.containers.len() == 1 && first.patches.is_empty());
        let v1 = first.version;
        // the container dies: the answer to a pull from v1 is a patch of its state
        h.observe(obs(DockerState::Exited), t0);
        h.touch(&id, t0);
        let delta = h.content(Some(v1));
        assert!(!delta.full && delta.containers.is_empty(), "{delta:?}");
        assert_eq!(delta.patches.len(), 1);
        assert_eq!(delta.patches[0].id, "a".repeat(12));
        assert!(delta.patches[0].state.is_some() && delta.patches[0].restarts.is_none());
        let mut rec = first.containers[0].clone();
        delta.patches[0].apply(&mut rec);
        assert_eq!(Some(&rec), h.containers[&id].published.as_ref());
        // a puller that missed that answer asks from v1 again: whole records, not patches
        h.observe(obs(DockerState::Running), t0);
        h.touch(&id, t0);
        let again = h.content(Some(v1));
        assert_eq!((again.containers.len(), again.patches.len()), (1, 0));
        // nothing changed since the last answer: an empty delta
        let none = h.content(Some(again.version));
        assert!(none.containers.is_empty() && none.patches.is_empty() && none.removed.is_empty());
    }
}
