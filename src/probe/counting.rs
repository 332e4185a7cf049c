//! [`CountingProber`]: counts the probe windows another prober runs, for `/metrics`.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use super::{ProbeError, Prober, WindowSpec, WindowStats};

/// Windows run and windows that failed (socket errors), since start.
#[derive(Debug, Default)]
pub struct ProbeCounters {
    pub windows: AtomicU64,
    pub failures: AtomicU64,
}

/// A prober that counts every window of the prober it wraps.
pub struct CountingProber {
    inner: Arc<dyn Prober>,
    counters: Arc<ProbeCounters>,
}

impl CountingProber {
    pub fn new(inner: Arc<dyn Prober>) -> Self {
        Self { inner, counters: Arc::default() }
    }

    pub fn counters(&self) -> Arc<ProbeCounters> {
        self.counters.clone()
    }
}

#[async_trait]
impl Prober for CountingProber {
    async fn window(&self, target: IpAddr, spec: WindowSpec) -> Result<WindowStats, ProbeError> {
        let res = self.inner.window(target, spec).await;
        self.counters.windows.fetch_add(1, Ordering::Relaxed);
        if res.is_err() {
            self.counters.failures.fetch_add(1, Ordering::Relaxed);
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::fake::FakeProber;

    #[tokio::test]
    async fn counts_every_window() {
        let p = CountingProber::new(Arc::new(FakeProber::new()));
        let ip: IpAddr = [10, 0, 0, 1].into();
        let _ = p.window(ip, WindowSpec::default()).await;
        let _ = p.window(ip, WindowSpec::default()).await;
        assert_eq!(p.counters().windows.load(Ordering::Relaxed), 2);
    }
}
