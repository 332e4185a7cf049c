//! Packet loss injection behind [`LossInjector`], implemented with nftables random drop
//! (`numgen random mod 100 < N drop`): these kernels have no `sch_netem`.
//!
//! Every rule lives in one table that the injector owns. The table is rewritten atomically on
//! every change, so a rule never outlives its entry, and [`NftLossInjector::clear_all`] removes
//! the whole table.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

/// Errors of loss injection.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    #[error("loss must be within 0..=100, got {0}")]
    Range(u8),
    #[error("cannot run nft: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("nft refused the rules: {0}")]
    Nft(String),
}

/// Injects packet loss towards containers.
#[async_trait]
pub trait LossInjector: Send + Sync {
    /// Drops `percent` % of the packets sent to `target` (replacing any earlier loss for it).
    async fn inject(&self, target: IpAddr, percent: u8) -> Result<(), InjectError>;
    /// Removes the loss for `target`.
    async fn clear(&self, target: IpAddr) -> Result<(), InjectError>;
    /// Removes every rule this injector made.
    async fn clear_all(&self) -> Result<(), InjectError>;
}

/// nftables random drop on the host side of the container's link (hooks `output` and `forward`).
pub struct NftLossInjector {
    table: String,
    rules: Mutex<BTreeMap<IpAddr, u8>>,
}

impl NftLossInjector {
    /// An injector owning the `inet` table `table` (letters, digits and `_` only).
    pub fn new(table: &str) -> Self {
        let table: String = table.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        Self { table, rules: Mutex::new(BTreeMap::new()) }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The nft script that replaces the table with the given rules.
    pub fn script(table: &str, rules: &BTreeMap<IpAddr, u8>) -> String {
        let mut s = format!("table inet {table} {{}}\ndelete table inet {table}\ntable inet {table} {{\n");
        for hook in ["output", "forward"] {
            s += &format!("  chain {hook} {{\n    type filter hook {hook} priority 0; policy accept;\n");
            for (ip, pct) in rules.iter().filter(|(_, p)| **p > 0) {
                let fam = if ip.is_ipv4() { "ip" } else { "ip6" };
                s += &format!("    {fam} daddr {ip} {}\n", drop_statement(*pct));
            }
            s += "  }\n";
        }
        s + "}\n"
    }

    /// The script removing the table, whether or not it exists.
    pub fn delete_script(table: &str) -> String {
        format!("table inet {table} {{}}\ndelete table inet {table}\n")
    }

    async fn apply(&self, script: String) -> Result<(), InjectError> {
        run_nft(&script).await
    }

    fn snapshot(&self, f: impl FnOnce(&mut BTreeMap<IpAddr, u8>)) -> BTreeMap<IpAddr, u8> {
        let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut rules);
        rules.clone()
    }
}

/// Runs `nft -f -` with the script on stdin.
pub async fn run_nft(script: &str) -> Result<(), InjectError> {
    let mut child = tokio::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(InjectError::Spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).await.map_err(InjectError::Spawn)?;
    }
    let out = child.wait_with_output().await.map_err(InjectError::Spawn)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(InjectError::Nft(String::from_utf8_lossy(&out.stderr).trim().to_owned()))
    }
}

#[async_trait]
impl LossInjector for NftLossInjector {
    async fn inject(&self, target: IpAddr, percent: u8) -> Result<(), InjectError> {
        if percent > 100 {
            return Err(InjectError::Range(percent));
        }
        let rules = self.snapshot(|r| {
            r.insert(target, percent);
        });
        self.apply(Self::script(&self.table, &rules)).await
    }

    async fn clear(&self, target: IpAddr) -> Result<(), InjectError> {
        let rules = self.snapshot(|r| {
            r.remove(&target);
        });
        self.apply(Self::script(&self.table, &rules)).await
    }

    async fn clear_all(&self) -> Result<(), InjectError> {
        self.snapshot(BTreeMap::clear);
        self.apply(Self::delete_script(&self.table)).await
    }
}

/// The nft statement dropping `percent` % of the matched packets: `numgen random mod 100 < N`
/// accepts 0–99 only, so 100 % is a plain drop.
pub fn drop_statement(percent: u8) -> String {
    if percent >= 100 { "counter drop".to_owned() } else { format!("numgen random mod 100 < {percent} counter drop") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_replaces_the_table_atomically_with_one_rule_per_hook() {
        let rules = BTreeMap::from([("172.17.0.2".parse().unwrap(), 60u8), ("172.17.0.3".parse().unwrap(), 0)]);
        let s = NftLossInjector::script("hms_t", &rules);
        assert!(s.starts_with("table inet hms_t {}\ndelete table inet hms_t\n"));
        assert_eq!(s.matches("ip daddr 172.17.0.2 numgen random mod 100 < 60 counter drop").count(), 2);
        assert_eq!(drop_statement(100), "counter drop", "nft refuses `mod 100 < 100`");
        assert_eq!(drop_statement(99), "numgen random mod 100 < 99 counter drop");
        assert!(!s.contains("172.17.0.3"), "zero loss needs no rule");
    }

    #[test]
    fn table_name_is_sanitised() {
        assert_eq!(NftLossInjector::new("hms;drop-1").table(), "hmsdrop1");
    }
}
