//! A [`Prober`] answering from a table: per-address loss, unreachable addresses, panics on demand.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{ProbeError, Prober, WindowSpec, WindowStats};

#[derive(Default)]
struct Table {
    loss: HashMap<IpAddr, f64>,
    panic_on: HashMap<IpAddr, u32>,
    windows: HashMap<IpAddr, u64>,
}

/// Deterministic prober: every address answers all echoes unless told otherwise.
#[derive(Clone, Default)]
pub struct FakeProber {
    table: Arc<Mutex<Table>>,
}

impl FakeProber {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Table) -> T) -> T {
        f(&mut self.table.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Sets the loss (percent) every later window to `ip` reports.
    pub fn set_loss(&self, ip: IpAddr, loss: f64) {
        self.with(|t| t.loss.insert(ip, loss));
    }

    /// Makes the next `times` windows to `ip` panic (a crashing probe).
    pub fn panic_next(&self, ip: IpAddr, times: u32) {
        self.with(|t| t.panic_on.insert(ip, times));
    }

    /// How many windows were run against `ip`.
    pub fn windows(&self, ip: IpAddr) -> u64 {
        self.with(|t| t.windows.get(&ip).copied().unwrap_or(0))
    }
}

#[async_trait]
impl Prober for FakeProber {
    async fn window(&self, target: IpAddr, spec: WindowSpec) -> Result<WindowStats, ProbeError> {
        tokio::time::sleep(spec.interval * u32::from(spec.count)).await;
        let (loss, panics) = self.with(|t| {
            *t.windows.entry(target).or_default() += 1;
            let panics = t.panic_on.get_mut(&target).is_some_and(|n| {
                let hit = *n > 0;
                *n = n.saturating_sub(1);
                hit
            });
            (t.loss.get(&target).copied().unwrap_or(0.0), panics)
        });
        assert!(!panics, "fake prober told to panic for {target}");
        let lost = (f64::from(spec.count) * loss.clamp(0.0, 100.0) / 100.0).round() as u16;
        let received = spec.count - lost.min(spec.count);
        let rtts = vec![std::time::Duration::from_micros(50); usize::from(received)];
        Ok(WindowStats::from_rtts(spec.count, &rtts))
    }
}
