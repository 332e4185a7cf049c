//! The processes and containers of one experiment run, removed on drop whatever happens.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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

    /// Asks every manager to stop and waits up to `grace` for each.
    pub fn stop(&mut self, grace: Duration) {
        for c in &self.0 {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        }
        for mut c in self.0.drain(..) {
            let deadline = std::time::Instant::now() + grace;
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Managers {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
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
