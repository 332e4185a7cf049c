//! The manager's antagonist child: spawned idle as a linked child, fed the eligible targets
//! (in scope, not ignored) whenever they change, handed the antagonist commands, and spawned
//! again by the manager when it dies.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorCell, ActorId, ActorRef, RpcReplyPort};

use super::antagonist::{Antagonist, AntagonistMsg};
use super::state::HostState;
use crate::actors::protocol::{Command, CommandError, CommandReply};
use crate::antagonist::exec::Target;
use crate::antagonist::inject::SystemInjector;
use crate::config::AntagonistSetup;
use crate::runtime::ContainerRuntime;

/// The antagonist of one host manager, while it lives.
#[derive(Default)]
pub struct AntagonistChild {
    actor: Option<ActorRef<AntagonistMsg>>,
    /// The targets last sent to it (`None`: none sent yet).
    targets: Option<Vec<Target>>,
    /// [`targets_key`] of the host when they were built.
    targets_key: u64,
}

impl AntagonistChild {
    /// Spawns a fresh idle antagonist linked to `supervisor` and sends it its targets.
    pub async fn spawn(
        &mut self,
        host: &HostState,
        runtime: Arc<dyn ContainerRuntime>,
        setup: &AntagonistSetup,
        supervisor: ActorCell,
    ) {
        let injector = setup.injector.clone().unwrap_or_else(|| SystemInjector::detect(&setup.table));
        let actor = Antagonist { host: host.name.clone(), runtime, injector, log_dir: setup.log_dir.clone() };
        match Actor::spawn_linked(None, actor, Default::default(), supervisor).await {
            Ok((a, _)) => {
                self.actor = Some(a);
                self.targets = None;
                self.send_targets(host);
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

    /// Tells the antagonist the eligible containers when they changed.
    pub fn send_targets(&mut self, host: &HostState) {
        let Some(a) = &self.actor else { return };
        // most changes are of signals or states, not of targets: compare a hash first, so a busy
        // host does not rebuild every target on every change
        let key = targets_key(host);
        if self.targets.is_some() && self.targets_key == key {
            return;
        }
        self.targets_key = key;
        let targets: Vec<Target> = (host.containers.values().filter(|t| !host.is_ignored(&t.obs)))
            .map(|t| Target::new(t.obs.id.clone(), t.obs.name.clone(), &t.obs.labels, t.obs.ip))
            .collect();
        if self.targets.as_ref() != Some(&targets) {
            let _ = a.cast(AntagonistMsg::Targets(targets.clone()));
            self.targets = Some(targets);
        }
    }

    /// Hands an antagonist command over; the antagonist answers it.
    pub fn forward(&self, cmd: Command, reply: RpcReplyPort<CommandReply>) {
        match &self.actor {
            Some(a) => {
                let _ = a.cast(AntagonistMsg::Command(cmd, reply));
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

/// A hash of what the targets are made of: eligible containers' ids, names, labels and addresses.
fn targets_key(host: &HostState) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for t in host.containers.values().filter(|t| !host.is_ignored(&t.obs)) {
        (&t.obs.id, &t.obs.name, &t.obs.labels, t.obs.ip).hash(&mut h);
    }
    h.finish()
}
