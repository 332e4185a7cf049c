//! User commands on one host (threshold, ignore, monitor) and their persistence: what a
//! manager starts from and what it keeps in its store.

use tokio::time::Instant;

use super::state::HostState;
use crate::actors::protocol::{Command, CommandError, ProbeSetting};
use crate::config::ManagerConfig;
use crate::probe::response::ResponseTarget;
use crate::store::{Store, StoreError};

const KEY_THRESHOLD: &str = "threshold";
const KEY_IGNORED: &str = "ignored";
const KEY_MONITORED: &str = "monitored";
const KEY_PROBES: &str = "response_probes";

/// The state a manager starts from: its configuration, with what its store kept.
pub fn load(config: &ManagerConfig, store: Option<&Store>) -> Result<HostState, StoreError> {
    let c = config;
    let mut host = HostState::new(c.name.clone(), c.threshold, c.confirm, c.select.clone());
    host.loss_evidence = c.probe_period;
    if let Some(store) = store {
        host.threshold = store.get(KEY_THRESHOLD)?.unwrap_or(c.threshold);
        host.ignored = store.get(KEY_IGNORED)?.unwrap_or_default();
        host.monitored = store.get(KEY_MONITORED)?.unwrap_or_default();
        host.response_probes = store.get(KEY_PROBES)?.unwrap_or_default();
    }
    Ok(host)
}

/// Applies a command to the state and persists it; returns the affected container (`None`:
/// every container).
pub fn apply(
    host: &mut HostState,
    store: Option<&Store>,
    cmd: &Command,
    now: Instant,
) -> Result<Option<String>, CommandError> {
    let (id, key) = match cmd {
        Command::SetThreshold(t) => {
            host.threshold = t.get();
            (None, KEY_THRESHOLD)
        }
        Command::Ignore(q) => (Some(host.ignore(q)?), KEY_IGNORED),
        Command::Monitor(q) => (Some(host.monitor(q, now)?), KEY_MONITORED),
        Command::SetProbe { container, probe } => {
            let probe = match probe {
                ProbeSetting::Label => None,
                ProbeSetting::Off => Some(None),
                ProbeSetting::Probe(text) => {
                    Some(Some(text.parse::<ResponseTarget>().map_err(|e| CommandError::Invalid(e.to_string()))?))
                }
            };
            (Some(host.set_response_probe(container, probe)?), KEY_PROBES)
        }
        other => return Err(CommandError::Invalid(format!("not a manager command: {other:?}"))),
    };
    tracing::info!(host = %host.name, command = ?cmd, "command applied");
    persist(host, store, key).map_err(|e| CommandError::Storage(e.to_string()))?;
    Ok(id)
}

fn persist(host: &HostState, store: Option<&Store>, key: &str) -> Result<(), StoreError> {
    let Some(store) = store else { return Ok(()) };
    match key {
        KEY_THRESHOLD => store.put(KEY_THRESHOLD, &host.threshold),
        KEY_PROBES => store.put(KEY_PROBES, &host.response_probes),
        _ => {
            store.put(KEY_IGNORED, &host.ignored)?;
            store.put(KEY_MONITORED, &host.monitored)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::{DockerState, Health, ObservedContainer};

    fn config() -> ManagerConfig {
        ManagerConfig::new("h")
    }

    fn web() -> ObservedContainer {
        ObservedContainer {
            id: "a".repeat(64),
            name: "web".into(),
            image: "img".into(),
            ip: None,
            labels: BTreeMap::new(),
            state: DockerState::Running,
            health: Health::None,
        }
    }

    #[test]
    fn applied_commands_survive_a_restart_of_the_manager() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "manager.redb").unwrap();
        let mut host = load(&config(), Some(&store)).unwrap();
        host.observe(web(), Instant::now());
        let threshold = crate::model::Threshold::new(55).unwrap();
        assert_eq!(apply(&mut host, Some(&store), &Command::SetThreshold(threshold), Instant::now()), Ok(None));
        let ignored = apply(&mut host, Some(&store), &Command::Ignore("web".into()), Instant::now());
        assert_eq!(ignored, Ok(Some("a".repeat(64))));
        let again = load(&config(), Some(&store)).unwrap();
        assert_eq!(again.threshold, 55);
        assert!(again.ignored.contains("web"));
    }

    #[test]
    fn a_response_probe_set_by_a_user_beats_the_label_survives_a_restart_and_is_validated() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "manager.redb").unwrap();
        let mut host = load(&config(), Some(&store)).unwrap();
        let mut obs = web();
        obs.labels.insert("hms.probe".into(), "tcp://:80".into());
        host.observe(obs.clone(), Instant::now());
        assert_eq!(host.response_probe(&obs), Some(ResponseTarget::Tcp { port: 80 }));
        let set = |probe| Command::SetProbe { container: "web".into(), probe };
        let now = Instant::now();
        apply(&mut host, Some(&store), &set(ProbeSetting::Probe("http://:8080/x".into())), now).unwrap();
        assert_eq!(host.response_probe(&obs), Some(ResponseTarget::Http { port: 8080, path: "/x".into() }));
        let bad = apply(&mut host, Some(&store), &set(ProbeSetting::Probe("ftp://:1".into())), now);
        assert!(matches!(&bad, Err(CommandError::Invalid(m)) if m.starts_with("probe must be")), "{bad:?}");
        let mut again = load(&config(), Some(&store)).unwrap();
        assert_eq!(again.response_probe(&obs), Some(ResponseTarget::Http { port: 8080, path: "/x".into() }));
        again.observe(obs.clone(), now);
        apply(&mut again, Some(&store), &set(ProbeSetting::Off), now).unwrap();
        assert_eq!(again.response_probe(&obs), None, "off beats the label");
        apply(&mut again, Some(&store), &set(ProbeSetting::Label), now).unwrap();
        assert_eq!(again.response_probe(&obs), Some(ResponseTarget::Tcp { port: 80 }), "back to the label");
    }

    #[test]
    fn a_command_on_an_unknown_container_is_not_found() {
        let mut host = load(&config(), None).unwrap();
        let res = apply(&mut host, None, &Command::Monitor("nobody".into()), Instant::now());
        assert!(matches!(res, Err(CommandError::NotFound(_))), "{res:?}");
    }
}
