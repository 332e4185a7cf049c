//! `KnownHosts`: the hosts a controller supervises, durable across its restarts, and when to
//! dial each one that has an endpoint. Pure: time is passed in.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::policy::backoff::dial_delay;

/// One known host, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownHost {
    /// Where its manager node listens, when the controller should dial it.
    pub endpoint: Option<String>,
}

#[derive(Debug, Default)]
struct DialState {
    failures: u32,
    next: Option<Instant>,
}

/// Known hosts and their dialling schedule.
#[derive(Debug, Default)]
pub struct KnownHosts {
    hosts: BTreeMap<String, KnownHost>,
    dial: BTreeMap<String, DialState>,
}

impl KnownHosts {
    pub fn new(hosts: BTreeMap<String, KnownHost>) -> Self {
        Self { hosts, dial: BTreeMap::new() }
    }

    pub fn hosts(&self) -> &BTreeMap<String, KnownHost> {
        &self.hosts
    }

    /// Adds or updates a host; true when what is stored changed. An endpoint already known is
    /// kept when the host registers by itself (`endpoint` = None).
    pub fn upsert(&mut self, host: &str, endpoint: Option<String>) -> bool {
        let Some(known) = self.hosts.get_mut(host) else {
            self.hosts.insert(host.to_owned(), KnownHost { endpoint });
            return true;
        };
        match endpoint {
            Some(e) if known.endpoint.as_deref() != Some(e.as_str()) => {
                known.endpoint = Some(e);
                self.dial.remove(host);
                true
            }
            _ => false,
        }
    }

    /// Forgets a host; true when it was known.
    pub fn remove(&mut self, host: &str) -> bool {
        self.dial.remove(host);
        self.hosts.remove(host).is_some()
    }

    /// The host connected: dial it again at once next time it is lost.
    pub fn connected(&mut self, host: &str) {
        self.dial.remove(host);
    }

    /// Hosts to dial now (endpoint known, not `online`), each scheduled for its next attempt with
    /// back-off and jitter (`unit` in [0, 1)).
    pub fn due(&mut self, now: Instant, online: impl Fn(&str) -> bool, unit: f64) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (host, known) in &self.hosts {
            let Some(endpoint) = &known.endpoint else { continue };
            if online(host) {
                continue;
            }
            let d = self.dial.entry(host.clone()).or_default();
            if d.next.is_some_and(|t| now < t) {
                continue;
            }
            d.failures += 1;
            d.next = Some(now + dial_delay(d.failures, unit).max(Duration::from_millis(100)));
            out.push((host.clone(), endpoint.clone()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(endpoint: Option<&str>) -> KnownHost {
        KnownHost { endpoint: endpoint.map(str::to_owned) }
    }

    #[test]
    fn offline_hosts_with_an_endpoint_are_dialled_with_back_off() {
        let mut k = KnownHosts::new(BTreeMap::from([
            ("vm1".to_owned(), known(Some("10.0.0.1:7947"))),
            ("vm2".to_owned(), known(None)),
        ]));
        let t0 = Instant::now();
        assert_eq!(k.due(t0, |_| false, 0.0), vec![("vm1".to_owned(), "10.0.0.1:7947".to_owned())]);
        assert!(k.due(t0 + Duration::from_millis(50), |_| false, 0.0).is_empty(), "waits 100 ms");
        assert_eq!(k.due(t0 + Duration::from_millis(100), |_| false, 0.0).len(), 1);
        assert!(k.due(t0 + Duration::from_millis(250), |_| false, 0.0).is_empty(), "then 200 ms");
        assert!(k.due(t0 + Duration::from_secs(60), |_| true, 0.0).is_empty(), "online hosts are not dialled");
    }

    #[test]
    fn a_connection_resets_the_back_off() {
        let mut k = KnownHosts::new(BTreeMap::from([("vm1".to_owned(), known(Some("a:1")))]));
        let t0 = Instant::now();
        for i in 0..5 {
            k.due(t0 + Duration::from_secs(10 * i), |_| false, 0.0);
        }
        k.connected("vm1");
        assert_eq!(k.due(t0 + Duration::from_secs(50), |_| false, 0.0).len(), 1);
        assert_eq!(k.due(t0 + Duration::from_secs(50) + Duration::from_millis(150), |_| false, 0.0).len(), 1);
    }

    #[test]
    fn upsert_reports_what_must_be_stored() {
        let mut k = KnownHosts::default();
        assert!(k.upsert("vm0", None), "a new host is stored");
        assert!(k.upsert("vm1", Some("a:1".into())));
        assert!(!k.upsert("vm1", Some("a:1".into())));
        assert!(k.upsert("vm1", Some("a:2".into())));
        assert!(!k.upsert("vm1", None), "a self-registration keeps the endpoint");
        assert_eq!(k.hosts()["vm1"], known(Some("a:2")));
        assert!(k.remove("vm1"));
        assert!(!k.remove("vm1"));
    }
}
