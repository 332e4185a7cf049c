//! User commands on one host (threshold, ignore, monitor) and their persistence: what a
//! manager starts from and what it keeps in its store.

use tokio::time::Instant;

use super::state::HostState;
use crate::actors::protocol::{Command, CommandError};
use crate::config::ManagerConfig;
use crate::store::{Store, StoreError};

const KEY_THRESHOLD: &str = "threshold";
const KEY_IGNORED: &str = "ignored";
const KEY_MONITORED: &str = "monitored";

/// The state a manager starts from: its configuration, with what its store kept.
pub fn load(config: &ManagerConfig, store: Option<&Store>) -> Result<HostState, StoreError> {
    let c = config;
    let mut host = HostState::new(c.name.clone(), c.threshold, c.confirm, c.select.clone());
    host.loss_evidence = c.probe_period;
    if let Some(store) = store {
        host.threshold = store.get(KEY_THRESHOLD)?.unwrap_or(c.threshold);
        host.ignored = store.get(KEY_IGNORED)?.unwrap_or_default();
        host.monitored = store.get(KEY_MONITORED)?.unwrap_or_default();
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
    fn a_command_on_an_unknown_container_is_not_found() {
        let mut host = load(&config(), None).unwrap();
        let res = apply(&mut host, None, &Command::Monitor("nobody".into()), Instant::now());
        assert!(matches!(res, Err(CommandError::NotFound(_))), "{res:?}");
    }
}
