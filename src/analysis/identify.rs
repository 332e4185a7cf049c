//! Identification, method `hms`: at which level the cause of a container's anomaly lies, from
//! ordered evidence (pure; the controller runs it on the compact views hosts send). Each rule
//! names the figures that decided it; the first rule that holds wins:
//!
//! | # | rule | level | culprit |
//! |---|---|---|---|
//! | 1 | most anomalous containers of the fleet carry ≥ ×2 their baseline workload | `load` | none |
//! | 2 | the victim's workload ≥ ×2 its baseline | `load` | none |
//! | 3 | a dependency of the victim is on an offline host, or every online host (≥ 2) has most of its containers anomalous | `cluster` | the offline host / none |
//! | 4 | the victim's memory ≥ 75 % of its limit, its own CPU limit throttles it (≥ 30 % of periods), or it uses ≥ 40 % of the host's CPU budget itself | `container` | the victim |
//! | 5 | a sibling on the victim's host uses ≥ 40 % of the host's CPU budget | `sibling` | the busiest sibling |
//! | 6 | the host's budget is throttled (≥ 30 % of periods) with its containers using < half of it, its link loses packets, or half of its containers (≥ 2) are anomalous | `node` | the host |
//! | 7 | a dependency of the victim on another host is anomalous | `neighbour` | that dependency |
//! | 8 | none of the above | `container` | the victim |

use std::collections::BTreeMap;

use super::{Culprit, Level};

/// A container as identification sees it: what its host reported in its last anomaly event or
/// heartbeat.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Member {
    pub name: String,
    /// Whether its detector has an anomaly open.
    pub anomalous: bool,
    pub cpu_percent: Option<f64>,
    /// Share of its own CFS periods throttled (its own limit biting), 0–1.
    pub cpu_throttled: Option<f64>,
    /// Workload over its baseline median.
    pub workload_ratio: Option<f64>,
    /// Memory over its limit.
    pub memory_share: Option<f64>,
    /// The names of the containers it declares it depends on.
    pub depends_on: Vec<String>,
}

/// A host as identification sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostView {
    pub name: String,
    pub online: bool,
    /// The CPUs its containers may use together (a simulated host's budget, else its cores).
    pub cpus: Option<f64>,
    /// Share of its budget's CFS periods throttled, 0–1.
    pub throttled: Option<f64>,
    /// Whether its link loses packets (most of its containers losing at once).
    pub link_loss: bool,
    pub members: Vec<Member>,
}

/// A level, who caused it, and the figures that decided it.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub level: Level,
    pub culprit: Option<Culprit>,
    /// The rule that held, as in the table above.
    pub rule: &'static str,
    pub evidence: BTreeMap<String, f64>,
}

/// The rule of the last row: nothing but the container itself explains it.
pub const NO_OTHER_CAUSE: &str = "no other cause";

/// Thresholds of the table.
pub const LOAD_RATIO: f64 = 2.0;
pub const SELF_THROTTLED: f64 = 0.3;
pub const MEMORY_SHARE: f64 = super::detect::MEMORY_NEAR;
pub const SIBLING_SHARE: f64 = 0.4;
pub const HOST_THROTTLED: f64 = 0.3;

/// The verdict for container `victim` of host `host` in the fleet `hosts`; `None` when either
/// is unknown.
pub fn identify(hosts: &[HostView], host: &str, victim: &str) -> Option<Verdict> {
    let h = hosts.iter().find(|h| h.name == host)?;
    let v = h.members.iter().find(|m| m.name == victim)?;
    let mut evidence = BTreeMap::new();
    let verdict = |level, culprit, rule, evidence| Some(Verdict { level, culprit, rule, evidence });
    let on = |host: &str, name: Option<&str>| Culprit { host: host.to_owned(), container: name.map(str::to_owned) };

    // 1–2: more users, not a fault
    let anomalous: Vec<&Member> = hosts.iter().flat_map(|h| &h.members).filter(|m| m.anomalous).collect();
    let loaded = anomalous.iter().filter(|m| m.workload_ratio.is_some_and(|r| r >= LOAD_RATIO)).count();
    if anomalous.len() >= 2 && loaded * 2 > anomalous.len() {
        evidence.insert("anomalous".into(), anomalous.len() as f64);
        evidence.insert("anomalous_with_workload_x2".into(), loaded as f64);
        return verdict(Level::Load, None, "most anomalous containers carry twice their workload", evidence);
    }
    if let Some(r) = v.workload_ratio.filter(|r| *r >= LOAD_RATIO) {
        evidence.insert("workload_ratio".into(), r);
        return verdict(Level::Load, None, "the container carries twice its workload", evidence);
    }

    // 3: the cluster
    let dependency =
        |name: &String| hosts.iter().find_map(|h| h.members.iter().find(|m| &m.name == name).map(|m| (h, m)));
    if let Some((dh, _)) = v.depends_on.iter().filter_map(dependency).find(|(dh, _)| !dh.online) {
        evidence.insert("dependency_host_online".into(), 0.0);
        return verdict(Level::Cluster, Some(on(&dh.name, None)), "a dependency's host is disconnected", evidence);
    }
    let online: Vec<&HostView> = hosts.iter().filter(|h| h.online && !h.members.is_empty()).collect();
    let degraded = |h: &HostView| h.members.iter().filter(|m| m.anomalous).count() * 2 > h.members.len();
    if online.len() >= 2 && online.iter().all(|h| degraded(h)) {
        evidence.insert("hosts_degraded".into(), online.len() as f64);
        return verdict(Level::Cluster, None, "every host has most of its containers anomalous", evidence);
    }

    // 4: the container saturates itself
    if let Some(m) = v.memory_share.filter(|m| *m >= MEMORY_SHARE) {
        evidence.insert("memory_share".into(), m);
        return verdict(Level::Container, Some(on(host, Some(victim))), "memory near its limit", evidence);
    }
    if let Some(t) = v.cpu_throttled.filter(|t| *t >= SELF_THROTTLED) {
        evidence.insert("cpu_throttled".into(), t);
        return verdict(Level::Container, Some(on(host, Some(victim))), "its own CPU limit throttles it", evidence);
    }
    let budget = h.cpus.map(|c| c * 100.0);
    if let (Some(cpu), Some(budget)) = (v.cpu_percent, budget)
        && cpu >= SIBLING_SHARE * budget
    {
        evidence.insert("cpu_percent".into(), cpu);
        evidence.insert("host_cpu_percent".into(), budget);
        return verdict(Level::Container, Some(on(host, Some(victim))), "it takes the host's CPU itself", evidence);
    }

    // 5: a busy sibling
    let busiest = h
        .members
        .iter()
        .filter(|m| m.name != victim)
        .filter_map(|m| Some((m, m.cpu_percent?)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    if let (Some((sibling, cpu)), Some(budget)) = (busiest, budget)
        && cpu >= SIBLING_SHARE * budget
    {
        evidence.insert("sibling_cpu_percent".into(), cpu);
        evidence.insert("host_cpu_percent".into(), budget);
        return verdict(
            Level::Sibling,
            Some(on(host, Some(&sibling.name))),
            "a sibling takes the host's CPU",
            evidence,
        );
    }

    // 6: the host
    let used: f64 = h.members.iter().filter_map(|m| m.cpu_percent).sum();
    if let (Some(t), Some(budget)) = (h.throttled.filter(|t| *t >= HOST_THROTTLED), budget)
        && used < 0.5 * budget
    {
        evidence.insert("host_throttled".into(), t);
        evidence.insert("containers_cpu_percent".into(), used);
        evidence.insert("host_cpu_percent".into(), budget);
        return verdict(Level::Node, Some(on(host, None)), "the host's CPU goes outside its containers", evidence);
    }
    if h.link_loss {
        evidence.insert("link_loss".into(), 1.0);
        return verdict(Level::Node, Some(on(host, None)), "the host's link loses packets", evidence);
    }
    let sick = h.members.iter().filter(|m| m.anomalous).count();
    if sick >= 2 && sick * 2 >= h.members.len() {
        evidence.insert("host_anomalous".into(), sick as f64);
        evidence.insert("host_containers".into(), h.members.len() as f64);
        return verdict(Level::Node, Some(on(host, None)), "half of the host's containers are anomalous", evidence);
    }

    // 7: a dependency elsewhere
    if let Some((dh, dm)) = v.depends_on.iter().filter_map(dependency).find(|(dh, dm)| dh.name != host && dm.anomalous)
    {
        evidence.insert("dependency_anomalous".into(), 1.0);
        return verdict(
            Level::Neighbour,
            Some(on(&dh.name, Some(&dm.name))),
            "a dependency on another host is anomalous",
            evidence,
        );
    }

    // 8: nothing else explains it
    verdict(Level::Container, Some(on(host, Some(victim))), NO_OTHER_CAUSE, evidence)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str) -> Member {
        Member {
            name: name.into(),
            cpu_percent: Some(5.0),
            cpu_throttled: Some(0.0),
            workload_ratio: Some(1.0),
            ..Member::default()
        }
    }

    fn host(name: &str, members: Vec<Member>) -> HostView {
        HostView { name: name.into(), online: true, cpus: Some(1.0), throttled: Some(0.0), link_loss: false, members }
    }

    /// Two hosts: `a` runs web (depending on `db`) and `cache`; `b` runs `db` and `worker`.
    fn fleet() -> Vec<HostView> {
        let web = Member { depends_on: vec!["db".into()], ..member("web") };
        vec![host("a", vec![web, member("cache")]), host("b", vec![member("db"), member("worker")])]
    }

    fn judge(hosts: &[HostView]) -> (Level, Option<Culprit>) {
        let v = identify(hosts, "a", "web").unwrap();
        (v.level, v.culprit)
    }

    fn culprit(host: &str, name: Option<&str>) -> Option<Culprit> {
        Some(Culprit { host: host.into(), container: name.map(Into::into) })
    }

    fn at(hosts: &mut [HostView], h: usize, m: usize) -> &mut Member {
        &mut hosts[h].members[m]
    }

    #[test]
    fn a_container_throttled_by_its_own_limit_is_its_own_cause() {
        let mut f = fleet();
        at(&mut f, 0, 0).anomalous = true;
        at(&mut f, 0, 0).cpu_throttled = Some(0.8);
        assert_eq!(judge(&f), (Level::Container, culprit("a", Some("web"))));
        let v = identify(&f, "a", "web").unwrap();
        assert_eq!(v.evidence.get("cpu_throttled"), Some(&0.8));
    }

    #[test]
    fn memory_near_the_limit_is_the_containers_own() {
        let mut f = fleet();
        at(&mut f, 0, 0).anomalous = true;
        at(&mut f, 0, 0).memory_share = Some(0.9);
        assert_eq!(judge(&f).0, Level::Container);
    }

    #[test]
    fn a_busy_sibling_is_the_culprit_and_not_the_victim() {
        let mut f = fleet();
        at(&mut f, 0, 0).anomalous = true;
        at(&mut f, 0, 1).cpu_percent = Some(70.0);
        assert_eq!(judge(&f), (Level::Sibling, culprit("a", Some("cache"))));
        // the busy one, slowed by its own work under the host's budget, is its own cause
        at(&mut f, 0, 1).anomalous = true;
        f[0].throttled = Some(0.9);
        let v = identify(&f, "a", "cache").unwrap();
        assert_eq!((v.level, v.culprit), (Level::Container, culprit("a", Some("cache"))));
        assert_eq!(judge(&f), (Level::Sibling, culprit("a", Some("cache"))), "still the victim's sibling");
    }

    #[test]
    fn a_throttled_host_whose_containers_are_idle_is_the_node() {
        let mut f = fleet();
        at(&mut f, 0, 0).anomalous = true;
        f[0].throttled = Some(0.9);
        assert_eq!(judge(&f), (Level::Node, culprit("a", None)));
        let mut f = fleet();
        at(&mut f, 0, 0).anomalous = true;
        at(&mut f, 0, 1).anomalous = true;
        assert_eq!(judge(&f).0, Level::Node, "both containers of the host");
        let mut f = fleet();
        at(&mut f, 0, 0).anomalous = true;
        f[0].link_loss = true;
        assert_eq!(judge(&f).0, Level::Node);
    }

    #[test]
    fn an_anomalous_dependency_on_another_host_is_the_neighbour() {
        let mut f = fleet();
        at(&mut f, 0, 0).anomalous = true;
        at(&mut f, 1, 0).anomalous = true;
        at(&mut f, 1, 0).cpu_throttled = Some(0.9);
        assert_eq!(judge(&f), (Level::Neighbour, culprit("b", Some("db"))));
        // and the dependency itself is its own cause
        assert_eq!(identify(&f, "b", "db").unwrap().level, Level::Container);
    }

    #[test]
    fn more_users_is_load_not_a_fault() {
        let mut f = fleet();
        at(&mut f, 0, 0).anomalous = true;
        at(&mut f, 0, 0).workload_ratio = Some(5.0);
        at(&mut f, 0, 0).cpu_throttled = Some(0.9);
        assert_eq!(judge(&f), (Level::Load, None), "saturated by its users, not by a fault");
        // every service under a surge: each verdict is load
        let mut f = fleet();
        for (h, m) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            at(&mut f, h, m).anomalous = true;
            at(&mut f, h, m).workload_ratio = Some(4.0);
        }
        for (h, n) in [("a", "web"), ("a", "cache"), ("b", "db"), ("b", "worker")] {
            assert_eq!(identify(&f, h, n).unwrap().level, Level::Load, "{n}");
        }
    }

    #[test]
    fn every_host_degraded_or_a_disconnected_dependency_is_the_cluster() {
        let mut f = fleet();
        for (h, m) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            at(&mut f, h, m).anomalous = true;
        }
        assert_eq!(judge(&f), (Level::Cluster, None));
        let mut f = fleet();
        at(&mut f, 0, 0).anomalous = true;
        f[1].online = false;
        assert_eq!(judge(&f), (Level::Cluster, culprit("b", None)));
    }

    #[test]
    fn nothing_else_left_is_the_container_and_unknowns_are_none() {
        let mut f = fleet();
        at(&mut f, 0, 0).anomalous = true;
        let v = identify(&f, "a", "web").unwrap();
        assert_eq!((v.level, v.rule), (Level::Container, "no other cause"));
        assert!(identify(&f, "a", "nobody").is_none());
        assert!(identify(&f, "z", "web").is_none());
    }
}
