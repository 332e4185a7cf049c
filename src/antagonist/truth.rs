//! The ground truth: one JSON line per attack in `<data-dir>/attacks.jsonl`, so every detection
//! and restart can be scored against what was really injected.
//!
//! A line is written when the attack is over (done, failed, or interrupted by a stop). Times are
//! RFC 3339 (UTC). The most recent [`KEPT`] records are also kept in memory (loaded from the file
//! at start) to answer `GET /attacks`.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::config::LossScope;

/// File name of the log under the data dir.
pub const FILE: &str = "attacks.jsonl";
/// Records kept in memory (and the most a host returns per query).
pub const KEPT: usize = 5_000;

/// What kind of fault an attack injected (the configuration's kinds).
pub use super::config::FaultKind as AttackKind;

pub use crate::analysis::{Culprit, Level};

/// How an attack ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Carried out as planned.
    Done,
    /// The engine or the injector refused it (see `error`).
    Failed,
    /// Cut short by a stop, a reconfiguration, or the target leaving the scope.
    Interrupted,
}

/// One attack, as injected. Plain serde (crosses nodes in bincode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttackRecord {
    /// When the line was written (RFC 3339).
    pub time: String,
    pub host: String,
    /// Full container id.
    pub container_id: String,
    pub container_name: String,
    pub kind: AttackKind,
    /// Injected loss (%), for loss attacks.
    pub loss: Option<u8>,
    /// Where the loss was injected, for loss attacks.
    pub scope: Option<LossScope>,
    /// How the loss was injected (`nftables` or `netem`), for loss attacks.
    pub method: Option<String>,
    pub planned_start: String,
    /// A shutdown is planned as instantaneous: its planned end is its planned start.
    pub planned_end: String,
    pub actual_start: String,
    /// When the container had stopped (shutdown) or the loss was removed.
    pub actual_end: String,
    pub outcome: Outcome,
    pub error: Option<String>,
    /// The fault's root-cause level (ground truth for the analysis).
    #[serde(default)]
    pub level: Option<Level>,
    /// Who caused it.
    #[serde(default)]
    pub culprit: Option<Culprit>,
    /// Names of the containers whose users feel it.
    #[serde(default)]
    pub affected: Vec<String>,
    /// Whether the fault was seen to take effect (the container stopped, the rule was in place,
    /// the hog used its CPU, the memory reached 80 % of the limit, the limit was cut, the rate
    /// rose); an injection that did nothing must not be scored as a missed detection.
    #[serde(default)]
    pub verified: Option<bool>,
}

/// Formats a wall-clock time for the log.
pub fn stamp(t: OffsetDateTime) -> String {
    crate::model::rfc3339(t)
}

/// Parses an RFC 3339 time (as given to `?since=`).
pub fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|e| format!("expected an RFC 3339 time, got {s:?}: {e}"))
}

impl AttackRecord {
    /// Whether the attack started at or after `since`.
    pub fn started_since(&self, since: OffsetDateTime) -> bool {
        parse_time(&self.actual_start).is_ok_and(|t| t >= since)
    }
}

/// Errors of the ground-truth log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot write the attack log {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// The log: an append-only file (when a data dir is given) and the most recent records.
#[derive(Debug, Default)]
pub struct AttackLog {
    path: Option<PathBuf>,
    recent: VecDeque<AttackRecord>,
}

impl AttackLog {
    /// A log in `dir` (created if missing), loading the most recent records; in memory without a dir.
    pub fn open(dir: Option<&Path>) -> Self {
        let Some(dir) = dir else { return Self::default() };
        let path = dir.join(FILE);
        let mut recent = VecDeque::new();
        if let Ok(text) = std::fs::read_to_string(&path) {
            for r in text.lines().filter_map(|l| serde_json::from_str::<AttackRecord>(l).ok()) {
                if recent.len() == KEPT {
                    recent.pop_front();
                }
                recent.push_back(r);
            }
        }
        Self { path: Some(path), recent }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Appends one record (one `write` of one line, flushed).
    pub fn append(&mut self, r: AttackRecord) -> Result<(), LogError> {
        let res = match &self.path {
            Some(path) => Self::write_line(path, &r).map_err(|source| LogError::Write { path: path.clone(), source }),
            None => Ok(()),
        };
        if self.recent.len() == KEPT {
            self.recent.pop_front();
        }
        self.recent.push_back(r);
        res
    }

    fn write_line(path: &Path, r: &AttackRecord) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut line = serde_json::to_vec(r).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        f.write_all(&line)?;
        f.flush()
    }

    /// Records whose attack started at or after `since` (all without it), oldest first.
    pub fn since(&self, since: Option<OffsetDateTime>) -> Vec<AttackRecord> {
        self.recent.iter().filter(|r| since.is_none_or(|s| r.started_since(s))).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn record(start: &str) -> AttackRecord {
        AttackRecord {
            time: start.to_owned(),
            host: "vm1".into(),
            container_id: "a".repeat(64),
            container_name: "web".into(),
            kind: AttackKind::Loss,
            loss: Some(80),
            scope: Some(LossScope::Link),
            method: Some("nftables".into()),
            planned_start: start.to_owned(),
            planned_end: start.to_owned(),
            actual_start: start.to_owned(),
            actual_end: start.to_owned(),
            outcome: Outcome::Done,
            error: None,
            level: None,
            culprit: None,
            affected: Vec::new(),
            verified: None,
        }
    }

    #[test]
    fn appended_lines_are_reloaded_and_filtered_by_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = AttackLog::open(Some(dir.path()));
        log.append(record("2026-01-01T00:00:00Z")).unwrap();
        log.append(record("2026-01-01T00:00:10Z")).unwrap();
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.lines().next().unwrap().contains(r#""kind":"loss""#));
        let again = AttackLog::open(Some(dir.path()));
        assert_eq!(again.since(None).len(), 2);
        let since = parse_time("2026-01-01T00:00:05Z").unwrap();
        assert_eq!(again.since(Some(since)), vec![record("2026-01-01T00:00:10Z")]);
    }

    #[test]
    fn records_round_trip_through_bincode() {
        let r = record("2026-01-01T00:00:00Z");
        let bytes = bincode::serde::encode_to_vec(&r, bincode::config::standard()).unwrap();
        let (back, _): (AttackRecord, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
        assert_eq!(back, r);
    }
}
