//! Anomaly records: what a manager detected and identified for one of its containers, kept in a
//! bounded book and answered to `GET /anomalies`; and the controller's refinement of the records
//! of every host together (what one host cannot see: a dependency anomalous on another host, or
//! every host degraded). Pure.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Culprit, Level};

/// An action taken on an anomaly (recovery by cause).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AnomalyAction {
    /// `restart`, `rescale`, `throttle`, `pause`, `migrate`, `backup`, `terminate` or `none`.
    pub action: String,
    /// RFC 3339.
    pub at: String,
    pub outcome: String,
}

/// One anomaly of one container. Plain serde: crosses nodes in bincode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AnomalyRecord {
    /// `HOST/SHORT_ID/N`: unique per host and container.
    pub id: String,
    pub host: String,
    /// Short id of the anomalous container.
    pub container: Option<String>,
    /// Its name.
    pub name: String,
    pub level: Level,
    pub culprit: Option<Culprit>,
    /// RFC 3339.
    pub detected_at: String,
    /// RFC 3339, or null while open.
    pub resolved_at: Option<String>,
    /// `hms` or `seed`.
    pub method: String,
    /// The identification rule that held.
    pub rule: String,
    /// The figures that decided it (detection's and identification's).
    pub evidence: BTreeMap<String, f64>,
    pub actions: Vec<AnomalyAction>,
    /// Names of the containers the anomalous one declares it depends on (for the controller's
    /// refinement).
    pub depends_on: Vec<String>,
}

impl AnomalyRecord {
    pub fn is_open(&self) -> bool {
        self.resolved_at.is_none()
    }
}

/// Records a book keeps (open ones are never dropped).
pub const BOOK_LEN: usize = 1000;

/// A manager's anomalies: the open one of each container and the recent resolved ones.
#[derive(Debug, Clone, Default)]
pub struct AnomalyBook {
    records: Vec<AnomalyRecord>,
    opened: u64,
}

impl AnomalyBook {
    /// Opens an anomaly (the record's `id` is set here); a container's open one is resolved
    /// first.
    pub fn open(&mut self, mut record: AnomalyRecord) -> &AnomalyRecord {
        if let Some(c) = record.container.clone() {
            self.resolve(&c, &record.detected_at);
        }
        self.opened += 1;
        record.id = format!("{}/{}/{}", record.host, record.container.as_deref().unwrap_or("-"), self.opened);
        self.records.push(record);
        if self.records.len() > BOOK_LEN
            && let Some(i) = self.records.iter().position(|r| !r.is_open())
        {
            self.records.remove(i);
        }
        self.records.last().expect("just pushed")
    }

    /// Resolves container `container`'s open anomaly at `at`; whether there was one.
    pub fn resolve(&mut self, container: &str, at: &str) -> bool {
        match self.records.iter_mut().find(|r| r.is_open() && r.container.as_deref() == Some(container)) {
            Some(r) => {
                r.resolved_at = Some(at.to_owned());
                true
            }
            None => false,
        }
    }

    /// Gives container `container`'s open anomaly the level, culprit, rule and evidence of
    /// `again` (identified again); whether there was one.
    pub fn relabel(&mut self, container: &str, again: &AnomalyRecord) -> bool {
        match self.records.iter_mut().find(|r| r.is_open() && r.container.as_deref() == Some(container)) {
            Some(r) => {
                (r.level, r.culprit, r.rule) = (again.level, again.culprit.clone(), again.rule.clone());
                r.evidence.clone_from(&again.evidence);
                true
            }
            None => false,
        }
    }

    /// The open anomaly of `container`.
    pub fn open_of(&self, container: &str) -> Option<&AnomalyRecord> {
        self.records.iter().find(|r| r.is_open() && r.container.as_deref() == Some(container))
    }

    /// Records detected at or after `since` (RFC 3339 strings of one format compare in time
    /// order), only the open ones with `open_only`.
    pub fn list(&self, since: Option<time::OffsetDateTime>, open_only: bool) -> Vec<AnomalyRecord> {
        let after = |r: &AnomalyRecord| {
            since.is_none_or(|s| {
                time::OffsetDateTime::parse(&r.detected_at, &time::format_description::well_known::Rfc3339)
                    .is_ok_and(|t| t >= s)
            })
        };
        self.records.iter().filter(|r| (!open_only || r.is_open()) && after(r)).cloned().collect()
    }
}

/// What the controller adds knowing every host's open anomalies: an anomaly whose container
/// depends on a container anomalous on another host is `neighbour` (that one the culprit) unless
/// its host found a cause of its own (a rule other than "no other cause"); when every online host
/// (at least two) has an open anomaly that is not `load`, each becomes `cluster`.
pub fn refine(records: &mut [AnomalyRecord], online_hosts: &[String]) {
    let open: Vec<(String, String, String)> = records
        .iter()
        .filter(|r| r.is_open())
        .map(|r| (r.host.clone(), r.name.clone(), r.container.clone().unwrap_or_default()))
        .collect();
    for r in records.iter_mut().filter(|r| r.is_open() && r.rule == super::identify::NO_OTHER_CAUSE) {
        if let Some((host, name, _)) = open.iter().find(|(h, n, _)| h != &r.host && r.depends_on.iter().any(|d| d == n))
        {
            r.level = Level::Neighbour;
            r.culprit = Some(Culprit { host: host.clone(), container: Some(name.clone()) });
            r.rule = "a dependency on another host is anomalous".into();
            r.evidence.insert("dependency_anomalous".into(), 1.0);
        }
    }
    let faulty = |h: &String| records.iter().any(|r| r.is_open() && &r.host == h && r.level != Level::Load);
    if online_hosts.len() >= 2 && online_hosts.iter().all(faulty) {
        for r in records.iter_mut().filter(|r| r.is_open() && r.level != Level::Load) {
            r.level = Level::Cluster;
            r.culprit = None;
            r.rule = "every host has an open anomaly".into();
            r.evidence.insert("hosts_degraded".into(), online_hosts.len() as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(host: &str, name: &str, level: Level, rule: &str) -> AnomalyRecord {
        AnomalyRecord {
            id: String::new(),
            host: host.into(),
            container: Some(format!("{name}-id")),
            name: name.into(),
            level,
            culprit: Some(Culprit { host: host.into(), container: Some(name.into()) }),
            detected_at: "2026-12-02T10:00:00Z".into(),
            resolved_at: None,
            method: "hms".into(),
            rule: rule.into(),
            evidence: BTreeMap::new(),
            actions: Vec::new(),
            depends_on: Vec::new(),
        }
    }

    #[test]
    fn a_book_keeps_one_open_anomaly_per_container_and_resolves_it() {
        let mut book = AnomalyBook::default();
        let id = book.open(record("a", "web", Level::Container, "x")).id.clone();
        assert_eq!(id, "a/web-id/1");
        assert!(book.open_of("web-id").is_some());
        book.open(record("a", "web", Level::Sibling, "y"));
        assert_eq!(book.list(None, true).len(), 1, "the first was resolved by the second");
        assert_eq!(book.list(None, false).len(), 2);
        assert!(book.resolve("web-id", "2026-12-02T10:01:00Z"));
        assert!(!book.resolve("web-id", "2026-12-02T10:02:00Z"), "nothing open any more");
        assert!(book.open_of("web-id").is_none());
        let later = time::OffsetDateTime::parse("2026-12-02T11:00:00Z", &time::format_description::well_known::Rfc3339)
            .unwrap();
        assert!(book.list(Some(later), false).is_empty());
    }

    #[test]
    fn a_book_is_bounded_but_keeps_what_is_open() {
        let mut book = AnomalyBook::default();
        book.open(record("a", "keep", Level::Container, "x"));
        for i in 0..BOOK_LEN + 10 {
            book.open(record("a", &format!("c{i}"), Level::Container, "x"));
            book.resolve(&format!("c{i}-id"), "2026-12-02T10:01:00Z");
        }
        assert_eq!(book.list(None, false).len(), BOOK_LEN);
        assert!(book.open_of("keep-id").is_some());
    }

    #[test]
    fn a_dependency_anomalous_on_another_host_makes_a_neighbour() {
        let no_cause = crate::analysis::identify::NO_OTHER_CAUSE;
        let web = AnomalyRecord { depends_on: vec!["db".into()], ..record("a", "web", Level::Container, no_cause) };
        let mut all = vec![web, record("b", "db", Level::Container, "its own CPU limit throttles it")];
        refine(&mut all, &["a".into(), "b".into(), "c".into()]);
        assert_eq!(all[0].level, Level::Neighbour);
        assert_eq!(all[0].culprit, Some(Culprit { host: "b".into(), container: Some("db".into()) }));
        assert_eq!(all[1].level, Level::Container, "the dependency is its own cause");
    }

    #[test]
    fn a_host_cause_is_kept_and_every_host_degraded_is_the_cluster() {
        let web = AnomalyRecord { depends_on: vec!["db".into()], ..record("a", "web", Level::Sibling, "a sibling") };
        let mut all = vec![web.clone(), record("b", "db", Level::Container, "x")];
        refine(&mut all, &["a".into(), "b".into(), "c".into()]);
        assert_eq!(all[0].level, Level::Sibling, "its host found a cause of its own");
        refine(&mut all, &["a".into(), "b".into()]);
        assert!(all.iter().all(|r| r.level == Level::Cluster && r.culprit.is_none()));
        let mut loads = vec![record("a", "web", Level::Load, "x"), record("b", "db", Level::Load, "x")];
        refine(&mut loads, &["a".into(), "b".into()]);
        assert!(loads.iter().all(|r| r.level == Level::Load), "more users everywhere is not a cluster fault");
    }
}
