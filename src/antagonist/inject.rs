//! The executor's edge for packet loss: [`Injector`] puts a loss rule at a [`LossSite`].
//!
//! [`SystemInjector`] uses netem when the kernel has `sch_netem`, nftables random drop otherwise:
//! - `link` scope: the host-side [`LossInjector`] ([`NftLossInjector`] or [`NetemLossInjector`])
//!   matches the container's address, so the rule survives a restart of the container;
//! - `container` scope: a rule inside the container's network namespace (`nsenter -t PID -n`),
//!   dropping what the container sends; a restart gives it a fresh namespace, clearing it.
//!
//! Every nftables rule lives in one table named by the injector (default `hms_antagonist`), on
//! the host and in each attacked namespace. [`SystemInjector::clear_all`] removes all of them;
//! [`undo_all_blocking`] does the same synchronously for every live injector at process exit
//! (signal or panic of the main thread, see [`install_panic_hook`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Weak};

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

use super::config::LossScope;
use super::loss::{InjectError, LossInjector, NftLossInjector};
use super::netem::NetemLossInjector;

/// The default name of the table owned by the antagonist.
pub const DEFAULT_TABLE: &str = "hms_antagonist";

/// Where one loss attack drops packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LossSite {
    pub ip: IpAddr,
    pub scope: LossScope,
    /// The container's main process (its network namespace), for `container` scope.
    pub pid: Option<u32>,
}

/// Puts and removes loss rules.
#[async_trait]
pub trait Injector: Send + Sync {
    /// `nftables` or `netem`.
    fn method(&self) -> &'static str;
    /// Drops `percent` % of the site's packets (replacing an earlier rule there).
    async fn inject(&self, site: &LossSite, percent: u8) -> Result<(), InjectError>;
    /// Removes the rule of a site.
    async fn clear(&self, site: &LossSite) -> Result<(), InjectError>;
    /// Removes every rule this injector made (host side and namespaces).
    async fn clear_all(&self) -> Result<(), InjectError>;
    /// Removes our table from the namespaces of `pids` (leftovers of a crashed process), leaving
    /// the host side alone.
    async fn clear_leftovers(&self, pids: &[u32]) -> Result<(), InjectError>;
}

/// Whether the kernel can do netem (module loaded, built in, or loadable).
pub fn netem_available() -> bool {
    if std::path::Path::new("/sys/module/sch_netem").exists() {
        return true;
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let dir = format!("/lib/modules/{}", release.trim());
    ["modules.builtin", "modules.dep"]
        .iter()
        .any(|f| std::fs::read_to_string(format!("{dir}/{f}")).is_ok_and(|t| t.contains("sch_netem")))
}

/// The real injector: netem or nftables on the host and in container namespaces.
pub struct SystemInjector {
    table: String,
    netem: bool,
    link: Box<dyn LossInjector>,
    /// Namespaces (by pid) holding a rule of ours.
    netns: Mutex<BTreeSet<u32>>,
}

static LIVE: Mutex<Vec<Weak<SystemInjector>>> = Mutex::new(Vec::new());

impl SystemInjector {
    /// An injector owning `table` (sanitised to letters, digits and `_`); netem when `netem`.
    pub fn new(table: &str, netem: bool) -> Arc<Self> {
        let table: String = table.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        let link: Box<dyn LossInjector> =
            if netem { Box::new(NetemLossInjector::new()) } else { Box::new(NftLossInjector::new(&table)) };
        let me = Arc::new(Self { table, netem, link, netns: Mutex::new(BTreeSet::new()) });
        let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
        live.retain(|w| w.strong_count() > 0);
        live.push(Arc::downgrade(&me));
        me
    }

    /// netem when the kernel has it, nftables otherwise.
    pub fn detect(table: &str) -> Arc<Self> {
        Self::new(table, netem_available())
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn netns(&self) -> std::sync::MutexGuard<'_, BTreeSet<u32>> {
        self.netns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The nft script that (re)places the container-scope table in a namespace.
    pub fn netns_script(table: &str, percent: u8) -> String {
        format!(
            "{}table inet {table} {{\n  chain output {{\n    type filter hook output priority 0; policy accept;\n    \
             oifname != \"lo\" {}\n  }}\n}}\n",
            NftLossInjector::delete_script(table),
            super::loss::drop_statement(percent)
        )
    }

    /// Removes our rules synchronously (process exit): host table, namespaces, netem qdiscs.
    pub fn undo_blocking(&self) {
        let del = NftLossInjector::delete_script(&self.table);
        let _ = nft_blocking(None, &del);
        for pid in std::mem::take(&mut *self.netns()) {
            if self.netem {
                let _ = std::process::Command::new("nsenter")
                    .args(["-t", &pid.to_string(), "-n", "tc", "qdisc", "del", "dev", "eth0", "root"])
                    .output();
            }
            let _ = nft_blocking(Some(pid), &del);
        }
        if self.netem {
            NetemLossInjector::undo_blocking();
        }
    }
}

fn site_pid(site: &LossSite) -> Result<u32, InjectError> {
    site.pid.ok_or_else(|| InjectError::Nft("container scope needs the container's pid".to_owned()))
}

#[async_trait]
impl Injector for SystemInjector {
    fn method(&self) -> &'static str {
        if self.netem { "netem" } else { "nftables" }
    }

    async fn inject(&self, site: &LossSite, percent: u8) -> Result<(), InjectError> {
        if percent > 100 {
            return Err(InjectError::Range(percent));
        }
        match site.scope {
            LossScope::Link => self.link.inject(site.ip, percent).await,
            LossScope::Container => {
                let pid = site_pid(site)?;
                self.netns().insert(pid);
                if self.netem {
                    let loss = format!("{percent}%");
                    let args = ["qdisc", "replace", "dev", "eth0", "root", "netem", "loss", loss.as_str()];
                    run_in(Some(pid), "tc", &args, None).await
                } else {
                    run_in(Some(pid), "nft", &["-f", "-"], Some(&Self::netns_script(&self.table, percent))).await
                }
            }
        }
    }

    async fn clear(&self, site: &LossSite) -> Result<(), InjectError> {
        match site.scope {
            LossScope::Link => self.link.clear(site.ip).await,
            LossScope::Container => {
                let pid = site_pid(site)?;
                self.netns().remove(&pid);
                if !std::path::Path::new(&format!("/proc/{pid}/ns/net")).exists() {
                    return Ok(()); // the container restarted: its namespace, and our rule, are gone
                }
                if self.netem {
                    let _ = run_in(Some(pid), "tc", &["qdisc", "del", "dev", "eth0", "root"], None).await;
                }
                run_in(Some(pid), "nft", &["-f", "-"], Some(&NftLossInjector::delete_script(&self.table))).await
            }
        }
    }

    async fn clear_all(&self) -> Result<(), InjectError> {
        let known: Vec<u32> = std::mem::take(&mut *self.netns()).into_iter().collect();
        self.clear_leftovers(&known).await?;
        let del = NftLossInjector::delete_script(&self.table);
        if self.netem {
            // a crashed nftables run may have left its host table too
            let _ = run_in(None, "nft", &["-f", "-"], Some(&del)).await;
        }
        self.link.clear_all().await
    }

    async fn clear_leftovers(&self, pids: &[u32]) -> Result<(), InjectError> {
        let del = NftLossInjector::delete_script(&self.table);
        for &pid in pids.iter().filter(|p| std::path::Path::new(&format!("/proc/{p}/ns/net")).exists()) {
            if self.netem {
                let _ = run_in(Some(pid), "tc", &["qdisc", "del", "dev", "eth0", "root"], None).await;
            }
            if let Err(e) = run_in(Some(pid), "nft", &["-f", "-"], Some(&del)).await {
                tracing::warn!(pid, error = %e, "cannot remove the loss table of a container namespace");
            }
        }
        Ok(())
    }
}

/// Runs a command in the host's or a container's network namespace, with `stdin` when given.
async fn run_in(pid: Option<u32>, prog: &str, args: &[&str], stdin: Option<&str>) -> Result<(), InjectError> {
    let mut cmd = match pid {
        Some(pid) => {
            let mut c = tokio::process::Command::new("nsenter");
            c.args(["-t", &pid.to_string(), "-n", prog]);
            c
        }
        None => tokio::process::Command::new(prog),
    };
    cmd.args(args)
        .stdin(if stdin.is_some() { std::process::Stdio::piped() } else { std::process::Stdio::null() })
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(InjectError::Spawn)?;
    if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
        input.write_all(text.as_bytes()).await.map_err(InjectError::Spawn)?;
    }
    let out = child.wait_with_output().await.map_err(InjectError::Spawn)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(InjectError::Nft(format!("{prog}: {}", String::from_utf8_lossy(&out.stderr).trim())))
    }
}

fn nft_blocking(pid: Option<u32>, script: &str) -> std::io::Result<std::process::ExitStatus> {
    use std::io::Write;
    let mut cmd = match pid {
        Some(pid) => {
            let mut c = std::process::Command::new("nsenter");
            c.args(["-t", &pid.to_string(), "-n", "nft"]);
            c
        }
        None => std::process::Command::new("nft"),
    };
    let mut child = cmd
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    if let Some(mut input) = child.stdin.take() {
        input.write_all(script.as_bytes())?;
    }
    child.wait()
}

/// Synchronously removes the rules of every live [`SystemInjector`] (process exit).
pub fn undo_all_blocking() {
    let live: Vec<Arc<SystemInjector>> =
        LIVE.lock().unwrap_or_else(|p| p.into_inner()).iter().filter_map(Weak::upgrade).collect();
    for injector in live {
        injector.undo_blocking();
    }
}

/// Removes every antagonist rule when the main thread panics (the process is going down), then
/// runs the previous hook. Panics of other threads are caught by their actor or task, so their
/// rules stay until the antagonist undoes them.
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().name() == Some("main") {
            undo_all_blocking();
        }
        previous(info);
    }));
}

/// A fake injector recording the rules in force, for tests without privileges.
#[derive(Default)]
pub struct FakeInjector {
    rules: Mutex<BTreeMap<(IpAddr, Option<u32>), u8>>,
    /// Every injection ever made: (site, percent).
    pub history: Mutex<Vec<(LossSite, u8)>>,
}

impl FakeInjector {
    /// The rules in force: (address, pid) → percent.
    pub fn rules(&self) -> BTreeMap<(IpAddr, Option<u32>), u8> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn history(&self) -> Vec<(LossSite, u8)> {
        self.history.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait]
impl Injector for FakeInjector {
    fn method(&self) -> &'static str {
        "fake"
    }

    async fn inject(&self, site: &LossSite, percent: u8) -> Result<(), InjectError> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner()).insert((site.ip, site.pid), percent);
        self.history.lock().unwrap_or_else(|p| p.into_inner()).push((site.clone(), percent));
        Ok(())
    }

    async fn clear(&self, site: &LossSite) -> Result<(), InjectError> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner()).remove(&(site.ip, site.pid));
        Ok(())
    }

    async fn clear_all(&self) -> Result<(), InjectError> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner()).clear();
        Ok(())
    }

    async fn clear_leftovers(&self, pids: &[u32]) -> Result<(), InjectError> {
        self.rules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(_, pid), _| pid.is_none_or(|p| !pids.contains(&p)));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_namespace_script_replaces_one_output_rule_in_our_table() {
        let s = SystemInjector::netns_script("hms_x", 35);
        assert!(s.starts_with("table inet hms_x {}\ndelete table inet hms_x\n"));
        assert_eq!(s.matches("numgen random mod 100 < 35 counter drop").count(), 1);
        assert!(s.contains("hook output") && s.contains("oifname != \"lo\""));
    }

    #[test]
    fn the_table_name_is_sanitised_and_the_method_follows_netem() {
        let i = SystemInjector::new("hms ant;1", false);
        assert_eq!((i.table(), i.method()), ("hmsant1", "nftables"));
        assert_eq!(SystemInjector::new("t", true).method(), "netem");
    }
}
