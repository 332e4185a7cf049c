//! Host-side packet loss with netem, for kernels that have `sch_netem` (like the seed's
//! `tc qdisc … netem loss N%` on `docker0`).
//!
//! The bridge carrying a container's address gets an `htb` root whose default class passes
//! traffic untouched; each attacked address gets its own class with a `netem loss N%` leaf and a
//! `u32` filter on the destination address. The bridge's configuration is rebuilt on every
//! change and removed (root qdisc deleted) when its last rule goes.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;

use async_trait::async_trait;

use super::loss::{InjectError, LossInjector};

/// Bridges whose root qdisc we replaced, for the synchronous undo at exit.
static DEVICES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// netem on the bridge carrying each container's address.
#[derive(Default)]
pub struct NetemLossInjector {
    /// address → (bridge, percent)
    rules: Mutex<BTreeMap<IpAddr, (String, u8)>>,
}

impl NetemLossInjector {
    pub fn new() -> Self {
        Self::default()
    }

    /// The `tc` invocations that configure `dev` for the given rules (empty: only the removal).
    pub fn commands(dev: &str, rules: &[(IpAddr, u8)]) -> Vec<Vec<String>> {
        let w = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        let mut out = vec![w(&format!("qdisc del dev {dev} root"))];
        if rules.is_empty() {
            return out;
        }
        out.push(w(&format!("qdisc add dev {dev} root handle 1: htb default 1")));
        out.push(w(&format!("class add dev {dev} parent 1: classid 1:1 htb rate 100gbit")));
        for (i, (ip, pct)) in rules.iter().enumerate() {
            let class = 10 + i;
            let (proto, field) = if ip.is_ipv4() { ("ip", "ip dst") } else { ("ipv6", "ip6 dst") };
            let prefix = if ip.is_ipv4() { 32 } else { 128 };
            out.push(w(&format!("class add dev {dev} parent 1: classid 1:{class} htb rate 100gbit")));
            out.push(w(&format!("qdisc add dev {dev} parent 1:{class} handle {class}: netem loss {pct}%")));
            out.push(w(&format!(
                "filter add dev {dev} parent 1: protocol {proto} prio 1 u32 match {field} {ip}/{prefix} flowid 1:{class}"
            )));
        }
        out
    }

    async fn device_of(ip: IpAddr) -> Result<String, InjectError> {
        let out = tokio::process::Command::new("ip")
            .args(["-o", "route", "get", &ip.to_string()])
            .output()
            .await
            .map_err(InjectError::Spawn)?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut words = text.split_whitespace();
        words
            .by_ref()
            .find(|w| *w == "dev")
            .and_then(|_| words.next())
            .map(str::to_owned)
            .ok_or_else(|| InjectError::Nft(format!("no route to {ip}")))
    }

    async fn apply(&self, dev: &str) -> Result<(), InjectError> {
        let rules: Vec<(IpAddr, u8)> = {
            let g = self.rules.lock().unwrap_or_else(|p| p.into_inner());
            g.iter().filter(|(_, (d, p))| d == dev && *p > 0).map(|(ip, (_, p))| (*ip, *p)).collect()
        };
        {
            let mut devs = DEVICES.lock().unwrap_or_else(|p| p.into_inner());
            if !devs.iter().any(|d| d == dev) {
                devs.push(dev.to_owned());
            }
        }
        for (i, args) in Self::commands(dev, &rules).into_iter().enumerate() {
            let out = tokio::process::Command::new("tc").args(&args).output().await.map_err(InjectError::Spawn)?;
            // deleting a root that is not ours (the bridge's default) may fail: that is fine
            if !out.status.success() && i > 0 {
                return Err(InjectError::Nft(format!("tc: {}", String::from_utf8_lossy(&out.stderr).trim())));
            }
        }
        Ok(())
    }

    /// Deletes the root qdisc of every bridge we configured (process exit).
    pub fn undo_blocking() {
        for dev in DEVICES.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            let _ = std::process::Command::new("tc").args(["qdisc", "del", "dev", &dev, "root"]).output();
        }
    }
}

#[async_trait]
impl LossInjector for NetemLossInjector {
    async fn inject(&self, target: IpAddr, percent: u8) -> Result<(), InjectError> {
        if percent > 100 {
            return Err(InjectError::Range(percent));
        }
        let dev = Self::device_of(target).await?;
        self.rules.lock().unwrap_or_else(|p| p.into_inner()).insert(target, (dev.clone(), percent));
        self.apply(&dev).await
    }

    async fn clear(&self, target: IpAddr) -> Result<(), InjectError> {
        let removed = self.rules.lock().unwrap_or_else(|p| p.into_inner()).remove(&target);
        match removed {
            Some((dev, _)) => self.apply(&dev).await,
            None => Ok(()),
        }
    }

    async fn clear_all(&self) -> Result<(), InjectError> {
        let devs: Vec<String> = {
            let mut g = self.rules.lock().unwrap_or_else(|p| p.into_inner());
            let devs = g.values().map(|(d, _)| d.clone()).collect();
            g.clear();
            devs
        };
        for dev in devs {
            self.apply(&dev).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_class_leaf_and_filter_per_address_under_a_passing_default() {
        let rules = [("172.17.0.2".parse().unwrap(), 80u8), ("fd00::2".parse().unwrap(), 10)];
        let cmds: Vec<String> = NetemLossInjector::commands("docker0", &rules).iter().map(|c| c.join(" ")).collect();
        assert_eq!(cmds[0], "qdisc del dev docker0 root");
        assert_eq!(cmds[1], "qdisc add dev docker0 root handle 1: htb default 1");
        assert!(cmds.contains(&"qdisc add dev docker0 parent 1:10 handle 10: netem loss 80%".to_owned()));
        assert!(cmds.iter().any(|c| c.ends_with("match ip dst 172.17.0.2/32 flowid 1:10")));
        assert!(cmds.iter().any(|c| c.contains("protocol ipv6") && c.ends_with("fd00::2/128 flowid 1:11")));
        assert_eq!(NetemLossInjector::commands("docker0", &[]).len(), 1, "no rule: only the removal");
    }
}
