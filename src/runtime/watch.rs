//! Follows the engine's event stream forever: reconnects with back-off and asks for a resync
//! after every (re)connection, so no event lost while disconnected goes unnoticed.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use tokio::task::JoinHandle;

use super::{ContainerRuntime, RuntimeEvent};
use crate::policy::Backoff;

/// What the watcher hands to its owner.
#[derive(Debug)]
pub enum Watched {
    /// The stream was (re)opened: list everything again.
    Resync,
    Event(RuntimeEvent),
}

/// Back-off between reconnections: 100 ms doubling to 5 s.
pub const RECONNECT_BACKOFF: Backoff = Backoff::constant(Duration::from_millis(100), Duration::from_secs(5), 0.0);

/// The delay before reconnection attempt `failures + 1`.
pub fn reconnect_delay(failures: u32) -> Duration {
    RECONNECT_BACKOFF.delay(failures, 0.0)
}

/// Spawns the watcher. It stops when `deliver` returns false (the owner is gone) or when aborted.
pub fn spawn<F>(runtime: Arc<dyn ContainerRuntime>, deliver: F) -> JoinHandle<()>
where
    F: Fn(Watched) -> bool + Send + 'static,
{
    tokio::spawn(async move {
        // Replay from slightly before the first listing, so nothing between the two is lost.
        let mut since = SystemTime::now().checked_sub(Duration::from_secs(1));
        let mut failures = 0u32;
        loop {
            let mut stream = runtime.events(since);
            if !deliver(Watched::Resync) {
                return;
            }
            while let Some(item) = stream.next().await {
                match item {
                    Ok(ev) => {
                        failures = 0;
                        since = ev.time.or(since);
                        if !deliver(Watched::Event(ev)) {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "docker event stream failed");
                        break;
                    }
                }
            }
            let delay = reconnect_delay(failures);
            failures = failures.saturating_add(1);
            tracing::info!(delay_ms = delay.as_millis() as u64, "reconnecting docker event stream");
            tokio::time::sleep(delay).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_delay_doubles_up_to_five_seconds() {
        let got: Vec<u64> = (0..8).map(|n| reconnect_delay(n).as_millis() as u64).collect();
        assert_eq!(got, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    }
}
