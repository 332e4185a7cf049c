//! The processes and containers of one experiment run, removed on drop whatever happens.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::runtime::docker::DockerRuntime;

/// `hms manager` processes: SIGTERM first (so they undo their antagonist's rules), then SIGKILL.
#[derive(Default)]
pub struct Managers(pub Vec<Child>);

impl Managers {
    /// Starts `hms manager` with `args`, logging to `log`.
    pub fn spawn(&mut self, args: &[&str], cookie: &str, log: &Path) -> anyhow::Result<()> {
        let file = std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
        let child = Command::new(std::env::current_exe()?)
            .arg("manager")
            .args(args)
            .env("HMS_COOKIE", cookie)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .context("spawn hms manager")?;
        self.0.push(child);
        Ok(())
    }

    /// Asks every manager to stop and waits up to `grace` for each, without blocking the runtime.
    pub async fn stop(&mut self, grace: Duration) {
        self.terminate();
        for mut c in self.0.drain(..) {
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline && !exited(&mut c) {
                tokio::time::sleep(POLL).await;
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM to every manager, so that each undoes its antagonist's rules.
    fn terminate(&self) {
        for c in &self.0 {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        }
    }
}

/// How often a stopping manager is checked for its exit.
const POLL: Duration = Duration::from_millis(50);

fn exited(c: &mut Child) -> bool {
    matches!(c.try_wait(), Ok(Some(_)))
}

impl Drop for Managers {
    /// Reached with managers left only when the run failed or was interrupted.
    fn drop(&mut self) {
        self.terminate();
        for mut c in self.0.drain(..) {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && !exited(&mut c) {
                #[allow(
                    clippy::disallowed_methods,
                    reason = "drop cannot await, and the managers need their grace to undo their rules"
                )]
                std::thread::sleep(POLL);
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Containers created for a run.
pub struct Containers {
    pub rt: DockerRuntime,
    pub ids: Vec<String>,
}

impl Containers {
    pub async fn remove_all(&mut self) {
        for id in self.ids.drain(..) {
            let _ = self.rt.remove_container(&id).await;
        }
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        // the async path ran unless the run failed half-way: fall back to the CLI
        for id in self.ids.drain(..) {
            let _ = Command::new("docker").args(["rm", "-f", &id]).stdout(Stdio::null()).stderr(Stdio::null()).status();
        }
    }
}
