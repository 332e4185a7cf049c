//! The probing edge: one ICMP echo window → loss and round-trip times, behind [`Prober`].
//!
//! - [`icmp::IcmpProber`] sends real echo requests through one shared raw socket (surge-ping's
//!   codec); `echo_windows` is its pure table of open windows.
//! - [`fake::FakeProber`] answers from a table of per-address loss, for deterministic tests.
//! - [`response`]: the other probe, response time over HTTP or TCP (`hms.probe`), with its own
//!   one engine per process (`response_windows` is its pure table) and a fake.

pub mod counting;
mod echo_windows;
pub mod fake;
pub mod icmp;
pub mod response;
mod response_windows;

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;

/// The shape of one probe window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowSpec {
    /// Echo requests per window (seed: 20).
    pub count: u16,
    /// Gap between requests (seed: 10 ms).
    pub interval: Duration,
    /// Per-request timeout (seed: 100 ms).
    pub timeout: Duration,
}

impl Default for WindowSpec {
    fn default() -> Self {
        Self { count: 20, interval: Duration::from_millis(10), timeout: Duration::from_millis(100) }
    }
}

/// The outcome of one window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowStats {
    pub sent: u16,
    pub received: u16,
    pub rtt_min: Option<Duration>,
    pub rtt_avg: Option<Duration>,
    pub rtt_max: Option<Duration>,
}

impl WindowStats {
    /// Builds stats from the round-trip times of the replies that arrived.
    pub fn from_rtts(sent: u16, rtts: &[Duration]) -> Self {
        let received = u16::try_from(rtts.len()).unwrap_or(u16::MAX).min(sent);
        let total: Duration = rtts.iter().sum();
        Self {
            sent,
            received,
            rtt_min: rtts.iter().min().copied(),
            rtt_avg: (!rtts.is_empty()).then(|| total / rtts.len() as u32),
            rtt_max: rtts.iter().max().copied(),
        }
    }

    /// Packet loss in percent, 0–100.
    pub fn loss(&self) -> f64 {
        if self.sent == 0 {
            return 0.0;
        }
        100.0 * f64::from(self.sent - self.received) / f64::from(self.sent)
    }
}

/// Errors of the probing edge.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("raw ICMP sockets are not permitted (run as root or grant CAP_NET_RAW): {0}")]
    NotPermitted(#[source] std::io::Error),
    #[error("icmp socket error: {0}")]
    Socket(#[source] std::io::Error),
}

/// Measures reachability of one address with one window of echo requests.
#[async_trait]
pub trait Prober: Send + Sync + 'static {
    async fn window(&self, target: IpAddr, spec: WindowSpec) -> Result<WindowStats, ProbeError>;
}

/// Sleeps until `at`, or forever without one: the one timer of an engine's loop (ICMP and
/// response time), which wakes for the next event of all its windows.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_is_a_percentage_of_sent() {
        let rtts = vec![Duration::from_millis(1); 14];
        let s = WindowStats::from_rtts(20, &rtts);
        assert_eq!(s.received, 14);
        assert!((s.loss() - 30.0).abs() < 1e-9);
        assert_eq!(WindowStats::from_rtts(20, &[]).loss(), 100.0);
        assert_eq!(WindowStats::from_rtts(0, &[]).loss(), 0.0);
    }

    #[test]
    fn rtt_summary_covers_min_avg_max() {
        let rtts = [1, 2, 6].map(Duration::from_millis);
        let s = WindowStats::from_rtts(3, &rtts);
        assert_eq!(s.rtt_min, Some(Duration::from_millis(1)));
        assert_eq!(s.rtt_avg, Some(Duration::from_millis(3)));
        assert_eq!(s.rtt_max, Some(Duration::from_millis(6)));
    }
}
