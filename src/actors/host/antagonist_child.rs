//! The manager's antagonist child: spawned idle as a linked child, fed the eligible targets
//! (in scope, not ignored) whenever they change, handed the antagonist commands, and spawned
//! again by the manager when it dies.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorCell, ActorId, ActorRef, RpcReplyPort};

use super::antagonist::{Antagonist, AntagonistMsg};
use super::state::HostState;
use crate::actors::protocol::{Command, CommandError, CommandReply};
use crate::antagonist::exec::{SCHEDULE_LABEL, Target};
use crate::antagonist::inject::SystemInjector;
use crate::config::AntagonistSetup;
use crate::resources::sensors::Sensors;
use crate::runtime::ContainerRuntime;

/// The antagonist of one host manager, while it lives.
#[derive(Default)]
pub struct AntagonistChild {
    actor: Option<ActorRef<AntagonistMsg>>,
    /// The targets last sent to it, by id (`None`: none sent yet).
    targets: Option<HashMap<String, Target>>,
}

impl AntagonistChild {
    /// Spawns a fresh idle antagonist linked to `supervisor` and sends it its targets.
    pub async fn spawn(
        &mut self,
        host: &HostState,
        runtime: Arc<dyn ContainerRuntime>,
        setup: &AntagonistSetup,
        sensors: Arc<dyn Sensors>,
        supervisor: ActorCell,
    ) {
        let injector = setup.injector.clone().unwrap_or_else(|| SystemInjector::detect(&setup.table));
        let log_dir = setup.log_dir.clone();
        let actor = Antagonist { host: host.name.clone(), runtime, injector, log_dir, sensors: Some(sensors) };
        match Actor::spawn_linked(None, actor, Default::default(), supervisor).await {
            Ok((a, _)) => {
                self.actor = Some(a);
                self.targets = None;
                self.send_targets(host, &[]);
            }
            Err(e) => tracing::error!(host = %host.name, error = %e, "cannot spawn the antagonist"),
        }
    }

    /// Whether the actor `id` is this antagonist.
    pub fn is(&self, id: Option<ActorId>) -> bool {
        id.is_some() && id == self.actor.as_ref().map(|a| a.get_id())
    }

    /// It died: commands are refused until the next one is spawned.
    pub fn exited(&mut self) {
        self.actor = None;
    }

    /// Tells the antagonist the eligible containers when one of the `changed` containers (ids,
    /// gone ones included) was added, removed, renamed, re-addressed, re-keyed or (un)ignored.
    /// Most changes are of signals or states: only the changed containers are compared, so a busy
    /// host does not walk every container on every change.
    pub fn send_targets(&mut self, host: &HostState, changed: &[String]) {
        let Some(a) = &self.actor else { return };
        if let Some(sent) = &self.targets {
            let same = |id: &String| {
                let now = host.containers.get(id).filter(|t| !host.is_ignored(&t.obs));
                match (now, sent.get(id)) {
                    (None, None) => true,
                    (Some(t), Some(s)) => {
                        let key = t.obs.labels.get(SCHEDULE_LABEL).unwrap_or(&t.obs.name);
                        s.name == t.obs.name && s.ip == t.obs.ip && s.key == *key
                    }
                    _ => false,
                }
            };
            if changed.iter().all(same) {
                return;
            }
        }
        let targets: HashMap<String, Target> = (host.containers.values().filter(|t| !host.is_ignored(&t.obs)))
            .map(|t| (t.obs.id.clone(), Target::new(t.obs.id.clone(), t.obs.name.clone(), &t.obs.labels, t.obs.ip)))
            .collect();
        if self.targets.as_ref() != Some(&targets) {
            let mut list: Vec<Target> = targets.values().cloned().collect();
            list.sort();
            let _ = a.cast(AntagonistMsg::Targets(list));
            self.targets = Some(targets);
        }
    }

    /// Hands an antagonist command over; the antagonist answers it.
    pub fn forward(&self, cmd: Command, reply: RpcReplyPort<CommandReply>) {
        match &self.actor {
            Some(a) => {
                let _ = a.cast(AntagonistMsg::Command(Box::new(cmd), reply));
            }
            None => {
                let _ = reply.send(Err(CommandError::Conflict("the antagonist is restarting".to_owned())));
            }
        }
    }

    /// Stops it (its stop undoes every attack in progress).
    pub async fn stop(&mut self) {
        if let Some(a) = self.actor.take() {
            let _ = a.stop_and_wait(None, Some(Duration::from_secs(2))).await;
        }
    }
}
