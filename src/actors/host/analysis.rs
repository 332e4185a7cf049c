//! The manager's analysis: every probe period, each monitored container's signals go through the
//! analysis engine (`analysis::engine`: detection, and identification on the host's own view —
//! cheap; no raw series leave the host), the anomalies it opens are kept in the book `GET
//! /anomalies` reads, and their level is shown in the container's record. What needs several
//! hosts (a dependency elsewhere, every host degraded) the controller adds when it merges the
//! hosts' books (`analysis::anomaly::refine`). With `--record DIR` every period is also appended
//! to `DIR/signals-<host>.jsonl` for `hms analyze --replay`.

use std::path::PathBuf;

use time::OffsetDateTime;

use super::state::{HostState, Tracked};
use crate::analysis::anomaly::{AnomalyBook, AnomalyRecord};
use crate::analysis::deps::{self, Dependency};
use crate::analysis::detect::AnalysisSettings;
use crate::analysis::engine::{Engine, EngineEvent, Line, Recorder};
use crate::analysis::signals::Signals;
use crate::model::{rfc3339, short_id};
use crate::resources::budget;

/// The engine, the book, and the host budget's last throttling reading.
pub struct AnalysisStore {
    engine: Engine,
    book: AnomalyBook,
    cgroup_root: PathBuf,
    /// The host budget's `(periods, throttled)` at the previous period, and the share since.
    budget: Option<(u64, u64)>,
    budget_share: Option<f64>,
    /// Where every period's signals are appended (`--record DIR`), for `hms analyze --replay`.
    recorder: Option<Recorder>,
}

impl AnalysisStore {
    pub fn new(settings: AnalysisSettings) -> Self {
        Self {
            engine: Engine::new(settings),
            book: AnomalyBook::default(),
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            budget: None,
            budget_share: None,
            recorder: None,
        }
    }

    /// Records every period's signals under `dir` (`signals-<host>.jsonl`); a file that cannot
    /// be opened is logged and not recorded.
    pub fn record_to(&mut self, dir: &std::path::Path, host: &str) {
        match Recorder::open(dir, host) {
            Ok(r) => self.recorder = Some(r),
            Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "cannot record the signals"),
        }
    }

    /// Runs with `settings` from now on. A change of method, of its parameters or of `enabled`
    /// starts the engine afresh and resolves the open anomalies (their judgement was the old
    /// settings'); answers the containers whose `anomaly` changed.
    pub fn configure(&mut self, host: &mut HostState, settings: AnalysisSettings, at: OffsetDateTime) -> Vec<String> {
        if settings == self.engine.settings() {
            return Vec::new();
        }
        tracing::info!(host = %host.name, enabled = settings.enabled, method = settings.method.name(), "analysis settings applied");
        self.engine = Engine::new(settings);
        let mut changed = Vec::new();
        for (id, t) in host.containers.iter_mut() {
            if self.book.resolve(short_id(id), &rfc3339(at)) || t.anomaly.is_some() {
                t.anomaly = None;
                changed.push(id.clone());
            }
        }
        changed
    }

    /// Reads the simulated host's budget throttling (its group is `/hms-<host>`), once a period.
    pub fn on_tick(&mut self, host: &str) {
        let now = budget::throttling(&self.cgroup_root, &format!("/{}{host}", budget::PREFIX));
        self.budget_share = match (self.budget, now) {
            (Some((p0, t0)), Some((p1, t1))) if p1 > p0 => Some((t1.saturating_sub(t0)) as f64 / (p1 - p0) as f64),
            _ => None,
        };
        self.budget = now;
        if let Some(Err(e)) = self.recorder.as_mut().map(Recorder::flush) {
            tracing::warn!(error = %e, "cannot record the signals: recording stops");
            self.recorder = None;
        }
    }

    /// Feeds container `id`'s period (full id) at `at`; answers the containers whose record's
    /// `anomaly` changed (an anomaly opened, closed or was identified again).
    pub fn on_period(&mut self, host: &mut HostState, id: &str, s: &Signals, at: OffsetDateTime) -> Vec<String> {
        let Some(t) = host.containers.get(id) else { return Vec::new() };
        let line = Line {
            at: at.unix_timestamp_nanos() as f64 / 1e9,
            host: host.name.clone(),
            id: id.to_owned(),
            name: t.obs.name.clone(),
            response_ms: s.response_ms,
            workload: s.workload,
            cpu_percent: s.cpu_percent,
            cpu_throttled: s.cpu_throttled,
            memory_bytes: s.memory_bytes,
            memory_limit_bytes: s.memory_limit_bytes,
            depends_on: depends_on(host, t),
            host_cpus: Some(self.host_cpus(&host.name)),
            host_throttled: self.budget_share,
        };
        if let Some(r) = self.recorder.as_mut() {
            let short = Line { id: short_id(id).to_owned(), ..line.clone() };
            if let Err(e) = r.write(&short) {
                tracing::warn!(error = %e, "cannot record the signals: recording stops");
                self.recorder = None;
            }
        }
        if !self.engine.settings().enabled {
            return Vec::new();
        }
        let mut changed = Vec::new();
        for event in self.engine.feed(&line) {
            match event {
                EngineEvent::Opened(mut r) => {
                    let full = r.container.clone().unwrap_or_default();
                    r.container = Some(short_id(&full).to_owned());
                    tracing::info!(container.id = %short_id(&full), container.name = %r.name, level = r.level.name(), rule = %r.rule, "anomaly opened");
                    if let Some(t) = host.containers.get_mut(&full) {
                        t.anomaly = Some(r.level);
                    }
                    self.book.open(r);
                    changed.push(full);
                }
                EngineEvent::Relabelled(r) => {
                    let full = r.container.clone().unwrap_or_default();
                    self.book.relabel(short_id(&full), &r);
                    if let Some(t) = host.containers.get_mut(&full) {
                        t.anomaly = Some(r.level);
                    }
                    changed.push(full);
                }
                EngineEvent::Closed { id: full, at, .. } => {
                    self.book.resolve(short_id(&full), &at);
                    tracing::info!(container.id = %short_id(&full), "anomaly resolved");
                    if let Some(t) = host.containers.get_mut(&full) {
                        t.anomaly = None;
                    }
                    changed.push(full);
                }
            }
        }
        changed
    }

    /// The simulated host's CPU budget, or the machine's CPUs.
    fn host_cpus(&self, host: &str) -> f64 {
        let budget_cpus = budget::quota_cpus(&self.cgroup_root, &format!("/{}{host}", budget::PREFIX));
        budget_cpus.unwrap_or_else(|| std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64))
    }

    /// Forgets a container that is gone (its open anomaly is resolved).
    pub fn forget(&mut self, host: &str, id: &str, at: OffsetDateTime) {
        if self.engine.forget(host, id).is_some() {
            self.book.resolve(short_id(id), &rfc3339(at));
        }
    }

    /// The book's records detected at or after `since`, only the open ones with `open_only`.
    pub fn list(&self, since: Option<OffsetDateTime>, open_only: bool) -> Vec<AnomalyRecord> {
        self.book.list(since, open_only)
    }
}

/// The names of the containers `t` declares it depends on (a Compose service: the containers of
/// it in the same project, on this host).
fn depends_on(host: &HostState, t: &Tracked) -> Vec<String> {
    deps::depends_on(&t.obs.labels)
        .into_iter()
        .flat_map(|d| match d {
            Dependency::Container(n) => vec![n],
            Dependency::Service(_) => host
                .containers
                .values()
                .filter(|o| deps::names(&d, &t.obs.labels, &o.obs.name, &o.obs.labels))
                .map(|o| o.obs.name.clone())
                .collect(),
        })
        .collect()
}
