//! The whole analysis over a fleet's recorded signals: detection per container and
//! identification with every host in view, by either method, on identical inputs. `hms analyze
//! --replay` and the analysis experiment run both methods through it on the same recording.
//!
//! A recording is one JSON line per container and probe period ([`Line`]), written by a manager
//! started with `--record DIR` (`signals-<host>.jsonl`). The engine takes lines in time order;
//! at each new second it first advances the hosts' and the cluster's chains (method `seed`'s
//! hierarchy) and re-identifies the open anomalies no cause of their own explained (a
//! dependency may have turned anomalous since); then a line feeds its container's detector,
//! and an anomaly that opens is identified at once:
//!
//! - method `hms`: the decision table (`identify`) over every host's last signals;
//! - method `seed`: the hierarchy of 3-state chains (`hhmm`) read top-down.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::anomaly::AnomalyRecord;
use super::detect::{AnalysisSettings, Change, Detector, HmsDetector, Method, Observation, SeedDetector};
use super::hhmm::{self, Chain};
use super::identify::{self, HostView, Member, NO_OTHER_CAUSE};
use super::stats;
use super::{Culprit, Level};

/// One container's probe period as recorded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// Unix time of the period's end, in seconds.
    pub at: f64,
    pub host: String,
    /// Short container id.
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub response_ms: Option<f64>,
    #[serde(default)]
    pub workload: Option<f64>,
    #[serde(default)]
    pub cpu_percent: Option<f64>,
    #[serde(default)]
    pub cpu_throttled: Option<f64>,
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    #[serde(default)]
    pub memory_limit_bytes: Option<u64>,
    /// Names of the containers it declares it depends on.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// The host's CPU budget (CPUs), and the share of its CFS periods throttled.
    #[serde(default)]
    pub host_cpus: Option<f64>,
    #[serde(default)]
    pub host_throttled: Option<f64>,
}

impl Line {
    fn observation(&self) -> Observation {
        Observation {
            response_ms: self.response_ms,
            workload: self.workload,
            cpu_percent: self.cpu_percent,
            cpu_throttled: self.cpu_throttled,
            memory_bytes: self.memory_bytes,
            memory_limit_bytes: self.memory_limit_bytes,
        }
    }

    fn memory_share(&self) -> Option<f64> {
        match (self.memory_bytes, self.memory_limit_bytes) {
            (Some(m), Some(l)) if l > 0 => Some(m as f64 / l as f64),
            _ => None,
        }
    }
}

/// Appends lines to a recording (buffered; flushed by [`Recorder::flush`] and on drop).
pub struct Recorder {
    out: std::io::BufWriter<std::fs::File>,
}

impl Recorder {
    /// Opens `dir/signals-<host>.jsonl` for appending (creating `dir`).
    pub fn open(dir: &Path, host: &str) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let file =
            std::fs::OpenOptions::new().create(true).append(true).open(dir.join(format!("signals-{host}.jsonl")))?;
        Ok(Self { out: std::io::BufWriter::new(file) })
    }

    pub fn write(&mut self, line: &Line) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, line).map_err(std::io::Error::other)?;
        self.out.write_all(b"\n")
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Reads every `signals-*.jsonl` of `dir`, in time order; a line that does not parse is an
/// error naming its file and line.
pub fn read_recording(dir: &Path) -> anyhow::Result<Vec<Line>> {
    use anyhow::Context;
    let mut lines = Vec::new();
    let entries = std::fs::read_dir(dir).with_context(|| format!("cannot read the recording {}", dir.display()))?;
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("signals-") && n.ends_with(".jsonl"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        anyhow::bail!("no signals-*.jsonl in {} (record with `hms manager --record DIR`)", dir.display());
    }
    for path in files {
        let f = std::fs::File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        for (i, text) in std::io::BufReader::new(f).lines().enumerate() {
            let text = text.with_context(|| format!("cannot read {}", path.display()))?;
            if text.trim().is_empty() {
                continue;
            }
            // a crash may cut the last line short: skip it, refuse anything else
            match serde_json::from_str::<Line>(&text) {
                Ok(l) => lines.push(l),
                Err(e) if e.is_eof() => {}
                Err(e) => anyhow::bail!("{}:{}: not a signals line: {e}", path.display(), i + 1),
            }
        }
    }
    lines.sort_by(|a, b| a.at.total_cmp(&b.at));
    Ok(lines)
}

/// A verdict: level, culprit, rule and evidence.
type Judgement = (Level, Option<Culprit>, String, BTreeMap<String, f64>);

/// One container as the engine follows it.
struct Track {
    line: Line,
    detector: Box<dyn Detector>,
    response: Chain,
    workload: Chain,
    open: Option<AnomalyRecord>,
}

/// One host: its containers by id, and its chain.
struct HostTrack {
    members: BTreeMap<String, Track>,
    chain: Chain,
}

/// What a line (or the second it started) changed.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineEvent {
    /// An anomaly opened: its record.
    Opened(AnomalyRecord),
    /// Container `id` of `host`'s anomaly was identified again at another level.
    Relabelled(AnomalyRecord),
    /// Container `id` of `host`'s anomaly closed at `at` (RFC 3339).
    Closed { host: String, id: String, at: String },
}

/// The analysis of a fleet.
pub struct Engine {
    settings: AnalysisSettings,
    hosts: BTreeMap<String, HostTrack>,
    cluster: Chain,
    second: Option<i64>,
    /// Anomalies opened so far (numbers the records' ids).
    opened: u64,
    /// Whether any anomaly is open (the cluster's chain trains only on quiet periods).
    any_open: usize,
}

impl Engine {
    pub fn new(settings: AnalysisSettings) -> Self {
        Self {
            settings,
            hosts: BTreeMap::new(),
            cluster: Chain::new(settings.seed.window),
            second: None,
            opened: 0,
            any_open: 0,
        }
    }

    pub fn settings(&self) -> AnalysisSettings {
        self.settings
    }

    /// The open anomaly of container `id` of `host`.
    pub fn open_of(&self, host: &str, id: &str) -> Option<&AnomalyRecord> {
        self.hosts.get(host)?.members.get(id)?.open.as_ref()
    }

    /// Forgets a container that is gone; answers its open anomaly, if any.
    pub fn forget(&mut self, host: &str, id: &str) -> Option<AnomalyRecord> {
        let t = self.hosts.get_mut(host)?.members.remove(id)?;
        self.any_open -= usize::from(t.open.is_some());
        t.open
    }

    /// Feeds one line (lines come in time order); answers what changed.
    pub fn feed(&mut self, line: &Line) -> Vec<EngineEvent> {
        let mut events = Vec::new();
        let second = line.at.floor() as i64;
        if self.second.is_some_and(|s| s < second) {
            events.extend(self.tick());
        }
        self.second = Some(second);
        let settings = self.settings;
        let host = self
            .hosts
            .entry(line.host.clone())
            .or_insert_with(|| HostTrack { members: BTreeMap::new(), chain: Chain::new(settings.seed.window) });
        let track = host.members.entry(line.id.clone()).or_insert_with(|| Track {
            line: line.clone(),
            detector: match settings.method {
                Method::Hms => Box::new(HmsDetector::new(settings.hms)),
                Method::Seed => Box::new(SeedDetector::new(settings.seed)),
            },
            response: Chain::new(settings.seed.window),
            workload: Chain::new(settings.seed.window),
            open: None,
        });
        track.line = line.clone();
        let change = track.detector.observe(&line.observation());
        let normal = track.open.is_none() && change == Change::None;
        if let Some(r) = line.response_ms {
            track.response.push(r, normal);
        }
        if let Some(w) = line.workload {
            track.workload.push(w, normal);
        }
        let closed = if change == Change::Closed { track.open.take() } else { None };
        if closed.is_some() {
            self.any_open -= 1;
            events.push(EngineEvent::Closed { host: line.host.clone(), id: line.id.clone(), at: stamp(line.at) });
        }
        if change == Change::Opened
            && let Some(r) = self.open(&line.host, &line.id, line.at)
        {
            events.push(EngineEvent::Opened(r));
        }
        events
    }

    /// A new second: the hosts' and the cluster's chains take their period, and the open
    /// anomalies nothing of their own explained are identified again.
    fn tick(&mut self) -> Vec<EngineEvent> {
        let mut node_ratios = Vec::new();
        for host in self.hosts.values_mut() {
            let normal = host.members.values().all(|t| t.open.is_none());
            let mut ratios: Vec<f64> = host.members.values().filter_map(ratio).collect();
            // the lower median: a node is slow when most of its containers are (2 of 2, 2 of 3)
            ratios.sort_by(f64::total_cmp);
            if let Some(m) = ratios.get(ratios.len().saturating_sub(1) / 2).copied() {
                host.chain.push(m, normal);
                node_ratios.push(m);
            }
        }
        if let Some(m) = stats::median(&node_ratios) {
            self.cluster.push(m, self.any_open == 0);
        }
        let again: Vec<(String, String)> = self
            .hosts
            .iter()
            .flat_map(|(h, t)| {
                let open = t.members.iter().filter(|(_, m)| m.open.as_ref().is_some_and(|r| r.rule == NO_OTHER_CAUSE));
                open.map(move |(id, _)| (h.clone(), id.clone()))
            })
            .collect();
        let mut events = Vec::new();
        for (host, id) in again {
            let Some((level, culprit, rule, evidence)) = self.identify(&host, &id) else { continue };
            let Some(r) = self.hosts.get_mut(&host).and_then(|h| h.members.get_mut(&id)).and_then(|t| t.open.as_mut())
            else {
                continue;
            };
            if r.level != level || r.culprit != culprit {
                (r.level, r.culprit, r.rule) = (level, culprit, rule);
                r.evidence.extend(evidence.into_iter().filter(|(_, v)| v.is_finite()));
                events.push(EngineEvent::Relabelled(r.clone()));
            }
        }
        events
    }

    fn open(&mut self, host: &str, id: &str, at: f64) -> Option<AnomalyRecord> {
        let (level, culprit, rule, mut evidence) = self.identify(host, id)?;
        let track = self.hosts.get_mut(host).and_then(|h| h.members.get_mut(id))?;
        let f = track.detector.status().figures.clone();
        for (k, v) in [
            ("response_ms", f.response_ms),
            ("expected_ms", f.expected_ms),
            ("score", f.score),
            ("workload_ratio", f.workload_ratio),
            ("rho", f.rho),
            ("dissociation", f.dissociation),
            ("memory_share", f.memory_share),
        ] {
            if let Some(v) = v {
                evidence.entry(k.to_owned()).or_insert(v);
            }
        }
        evidence.retain(|_, v| v.is_finite());
        let record = AnomalyRecord {
            id: format!("{host}/{id}/{}", self.opened + 1),
            host: host.to_owned(),
            container: Some(id.to_owned()),
            name: track.line.name.clone(),
            level,
            culprit,
            detected_at: stamp(at),
            resolved_at: None,
            method: self.settings.method.name().to_owned(),
            rule,
            evidence,
            actions: Vec::new(),
            depends_on: track.line.depends_on.clone(),
        };
        track.open = Some(record.clone());
        self.opened += 1;
        self.any_open += 1;
        Some(record)
    }

    /// The level, culprit, rule and evidence of container `id` of `host`, by the method.
    fn identify(&mut self, host: &str, id: &str) -> Option<Judgement> {
        match self.settings.method {
            Method::Hms => {
                let views = self.views(host, id);
                let name = self.hosts.get(host)?.members.get(id)?.line.name.clone();
                let v = identify::identify(&views, host, &name)?;
                Some((v.level, v.culprit, v.rule.to_owned(), v.evidence))
            }
            Method::Seed => self.decode(host, id),
        }
    }

    /// Every host as the decision table sees it; `victim` (of `host`) counts as anomalous.
    fn views(&self, host: &str, victim: &str) -> Vec<HostView> {
        self.hosts
            .iter()
            .map(|(name, h)| {
                let any = h.members.values().next().map(|t| &t.line);
                HostView {
                    name: name.clone(),
                    online: true,
                    cpus: any.and_then(|l| l.host_cpus),
                    throttled: any.and_then(|l| l.host_throttled),
                    link_loss: false,
                    members: h
                        .members
                        .iter()
                        .map(|(id, t)| Member {
                            name: t.line.name.clone(),
                            anomalous: t.open.is_some() || (name == host && id == victim),
                            cpu_percent: t.line.cpu_percent,
                            cpu_throttled: t.line.cpu_throttled,
                            workload_ratio: t.detector.status().figures.workload_ratio,
                            memory_share: t.line.memory_share(),
                            depends_on: t.line.depends_on.clone(),
                        })
                        .collect(),
                }
            })
            .collect()
    }

    /// Method `seed`: the hierarchy read top-down — the cluster overloaded, then the victim's
    /// workload (more users), its node, a dependency elsewhere, a sibling, the container itself.
    fn decode(&mut self, host: &str, id: &str) -> Option<Judgement> {
        let mut evidence = BTreeMap::new();
        let on = |h: &str, c: Option<&str>| Some(Culprit { host: h.to_owned(), container: c.map(str::to_owned) });
        let cluster = self.cluster.state();
        evidence.insert("cluster_state".to_owned(), cluster.unwrap_or(hhmm::NL) as f64);
        if cluster == Some(hhmm::OL) {
            return Some((Level::Cluster, None, "the cluster's chain is in overload".into(), evidence));
        }
        let h = self.hosts.get_mut(host)?;
        let node = h.chain.state();
        let victim = h.members.get_mut(id)?;
        let name = victim.line.name.clone();
        let depends_on = victim.line.depends_on.clone();
        let workload = victim.workload.state();
        evidence.insert("workload_state".to_owned(), workload.unwrap_or(hhmm::NL) as f64);
        evidence.insert("node_state".to_owned(), node.unwrap_or(hhmm::NL) as f64);
        if workload == Some(hhmm::OL) {
            return Some((Level::Load, None, "the container's workload chain is in overload".into(), evidence));
        }
        if node == Some(hhmm::OL) {
            return Some((Level::Node, on(host, None), "the node's chain is in overload".into(), evidence));
        }
        for (hname, other) in self.hosts.iter_mut().filter(|(n, _)| n.as_str() != host) {
            for t in other.members.values_mut().filter(|t| depends_on.contains(&t.line.name)) {
                if t.response.state() == Some(hhmm::OL) {
                    let culprit = on(hname, Some(&t.line.name));
                    return Some((Level::Neighbour, culprit, "a dependency's chain is in overload".into(), evidence));
                }
            }
        }
        let h = self.hosts.get_mut(host)?;
        let mut loaded: Vec<(f64, String)> = Vec::new();
        for (sid, t) in h.members.iter_mut().filter(|(sid, _)| sid.as_str() != id) {
            if t.response.state() == Some(hhmm::OL) {
                loaded.push((ratio(t).unwrap_or(0.0), sid.clone()));
            }
        }
        if let Some((r, sid)) = loaded.into_iter().max_by(|a, b| a.0.total_cmp(&b.0)) {
            let sibling = h.members.get(&sid).map(|t| t.line.name.clone());
            evidence.insert("sibling_ratio".to_owned(), r);
            return Some((
                Level::Sibling,
                on(host, sibling.as_deref()),
                "a sibling's chain is in overload".into(),
                evidence,
            ));
        }
        Some((Level::Container, on(host, Some(&name)), NO_OTHER_CAUSE.into(), evidence))
    }
}

/// A container's last response time over its reference.
fn ratio(t: &Track) -> Option<f64> {
    Some(t.line.response_ms? / t.response.reference()?)
}

fn stamp(at: f64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp_nanos((at * 1e9) as i128).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    crate::model::rfc3339(t)
}

/// Runs `method` over `lines` (in time order) and answers every anomaly it found, in the order
/// they opened (an open one with its last level).
pub fn replay(lines: &[Line], settings: AnalysisSettings) -> Vec<AnomalyRecord> {
    let mut engine = Engine::new(settings);
    let mut records: Vec<AnomalyRecord> = Vec::new();
    let mut index: BTreeMap<(String, String), usize> = BTreeMap::new();
    for l in lines {
        for e in engine.feed(l) {
            match e {
                EngineEvent::Opened(r) => {
                    let key = (r.host.clone(), r.container.clone().unwrap_or_default());
                    index.insert(key, records.len());
                    records.push(r);
                }
                EngineEvent::Relabelled(r) => {
                    if let Some(&i) = index.get(&(r.host.clone(), r.container.clone().unwrap_or_default())) {
                        records[i] = r;
                    }
                }
                EngineEvent::Closed { host, id, at } => {
                    if let Some(i) = index.remove(&(host, id)) {
                        records[i].resolved_at = Some(at);
                    }
                }
            }
        }
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three hosts × two containers at 1 Hz for `secs`, `web-a` on host `a` depending on
    /// `db-b` on host `b`; `slow(t, name)` multiplies a response time.
    pub(crate) fn fleet(
        secs: usize,
        slow: impl Fn(usize, &str) -> f64,
        busy: impl Fn(usize, &str) -> f64,
    ) -> Vec<Line> {
        let mut lines = Vec::new();
        for t in 0..secs {
            for (host, names) in [("a", ["web-a", "api-a"]), ("b", ["db-b", "api-b"]), ("c", ["web-c", "api-c"])] {
                for name in names {
                    let jitter = ((t * 7 + name.len() * 3) % 5) as f64 * 0.3;
                    lines.push(Line {
                        at: 1_800_000_000.0 + t as f64 + 0.1,
                        host: host.into(),
                        id: format!("{name}-id"),
                        name: name.into(),
                        response_ms: Some((10.0 + jitter) * slow(t, name)),
                        workload: Some(4.7),
                        cpu_percent: Some(busy(t, name)),
                        cpu_throttled: Some(0.0),
                        memory_bytes: Some(10 << 20),
                        memory_limit_bytes: Some(64 << 20),
                        depends_on: if name == "web-a" { vec!["db-b".into()] } else { vec![] },
                        host_cpus: Some(0.6),
                        host_throttled: Some(0.0),
                    });
                }
            }
        }
        lines
    }

    fn settings(method: Method) -> AnalysisSettings {
        AnalysisSettings { method, ..AnalysisSettings::default() }
    }

    #[test]
    fn a_quiet_fleet_raises_nothing_by_either_method() {
        let lines = fleet(400, |_, _| 1.0, |_, _| 5.0);
        assert!(replay(&lines, settings(Method::Hms)).is_empty());
        assert!(replay(&lines, settings(Method::Seed)).is_empty());
    }

    #[test]
    fn a_self_hog_is_a_container_anomaly_naming_it_by_both_methods() {
        let hog = |t: usize, n: &str| if n == "api-c" && (200..240).contains(&t) { 4.0 } else { 1.0 };
        let cpu = |t: usize, n: &str| if n == "api-c" && (200..240).contains(&t) { 55.0 } else { 5.0 };
        let lines = fleet(300, hog, cpu);
        for method in [Method::Hms, Method::Seed] {
            let found = replay(&lines, settings(method));
            assert_eq!(found.len(), 1, "{method:?}: {found:?}");
            let r = &found[0];
            assert_eq!((r.name.as_str(), r.level), ("api-c", Level::Container), "{method:?}: {r:?}");
            assert!(r.resolved_at.is_some(), "{method:?}: closes after the hog");
            assert_eq!(r.method, method.name());
        }
    }

    #[test]
    fn a_slow_dependency_elsewhere_makes_its_dependent_a_neighbour_victim() {
        let slow = |t: usize, n: &str| if (n == "db-b" || n == "web-a") && (200..240).contains(&t) { 4.0 } else { 1.0 };
        let cpu = |t: usize, n: &str| if n == "db-b" && (200..240).contains(&t) { 55.0 } else { 5.0 };
        let lines = fleet(300, slow, cpu);
        let found = replay(&lines, settings(Method::Hms));
        let web = found.iter().find(|r| r.name == "web-a").expect("the dependent is anomalous");
        assert_eq!(web.level, Level::Neighbour, "{web:?}");
        assert_eq!(web.culprit, Some(Culprit { host: "b".into(), container: Some("db-b".into()) }));
        let db = found.iter().find(|r| r.name == "db-b").expect("the dependency too");
        assert_eq!(db.level, Level::Container, "{db:?}");
    }

    #[test]
    fn recordings_round_trip_and_a_bad_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let lines = fleet(3, |_, _| 1.0, |_, _| 5.0);
        let mut rec = Recorder::open(dir.path(), "a").unwrap();
        for l in &lines {
            rec.write(l).unwrap();
        }
        rec.flush().unwrap();
        drop(rec);
        assert_eq!(read_recording(dir.path()).unwrap(), lines);
        std::fs::write(dir.path().join("signals-b.jsonl"), "{\"at\": \"x\"}\n").unwrap();
        let err = read_recording(dir.path()).unwrap_err().to_string();
        assert!(err.contains("signals-b.jsonl:1"), "{err}");
        assert!(read_recording(&dir.path().join("nothing")).is_err());
    }
}
