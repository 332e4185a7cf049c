//! [`Prober`] over raw ICMP sockets with surge-ping: one client per process, random identifiers.

use std::net::IpAddr;
use std::sync::OnceLock;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use surge_ping::{Client, Config, ICMP, IcmpPacket, PingIdentifier, PingSequence};
use tokio::runtime::Handle;
use tokio::time::Instant;

use super::{ProbeError, Prober, WindowSpec, WindowStats};

/// ICMP type of an echo reply: the only answer that counts as received.
const ECHO_REPLY: u8 = 0;
/// Receive buffer for the shared socket, so bursts from many containers are not dropped.
const RECV_BUFFER: usize = 4 << 20;
const PAYLOAD: [u8; 16] = *b"hms-probe-window";

/// Windows completed by this process, and their summed duration in microseconds.
static WINDOWS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static WINDOW_MICROS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// `(windows completed, their total duration)` since the process started.
pub fn window_totals() -> (u64, std::time::Duration) {
    use std::sync::atomic::Ordering::Relaxed;
    (WINDOWS.load(Relaxed), std::time::Duration::from_micros(WINDOW_MICROS.load(Relaxed)))
}

/// The process's one client, or why it could not be made.
static CLIENT: OnceLock<Result<(Client, Handle), (std::io::ErrorKind, String)>> = OnceLock::new();

/// Sends real echo requests. Cheap to clone; all clones share the process's one client.
#[derive(Clone)]
pub struct IcmpProber {
    client: Client,
    /// The ICMP thread's runtime: windows run there, next to the socket's receive task, so the
    /// thousands of per-echo timers and reply wake-ups never cross threads.
    handle: Handle,
}

impl IcmpProber {
    /// Opens (once per process) the raw ICMP socket. Fails clearly without CAP_NET_RAW.
    ///
    /// The client and its receive task live on a dedicated thread with its own runtime, so they
    /// outlive any runtime that probes through them (tests run one runtime per test).
    pub fn new() -> Result<Self, ProbeError> {
        let client = CLIENT.get_or_init(spawn_client).clone();
        client.map(|(client, handle)| Self { client, handle }).map_err(|(kind, msg)| {
            let e = std::io::Error::new(kind, msg);
            match kind {
                std::io::ErrorKind::PermissionDenied => ProbeError::NotPermitted(e),
                _ => ProbeError::Socket(e),
            }
        })
    }
}

fn spawn_client() -> Result<(Client, Handle), (std::io::ErrorKind, String)> {
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new().name("hms-icmp".into()).spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => return drop(tx.send(Err((e.kind(), e.to_string())))),
        };
        rt.block_on(async move {
            let config = Config::builder().kind(ICMP::V4).sock_type_hint(socket2::Type::RAW).build();
            let made = Client::new(&config).map_err(|e| (e.kind(), e.to_string()));
            if let Ok(client) = &made {
                raise_recv_buffer(client);
            }
            let made = made.map(|client| (client, Handle::current()));
            let _ = tx.send(made);
            std::future::pending::<()>().await;
        });
    });
    if let Err(e) = spawned {
        return Err((e.kind(), e.to_string()));
    }
    rx.recv().unwrap_or_else(|_| Err((std::io::ErrorKind::Other, "icmp thread died".to_owned())))
}

fn raise_recv_buffer(client: &Client) {
    use std::os::fd::BorrowedFd;
    // SAFETY: the fd belongs to `client`, which outlives this borrow.
    #[allow(unsafe_code)]
    let fd = unsafe { BorrowedFd::borrow_raw(client.get_socket().get_native_sock()) };
    let sock = socket2::SockRef::from(&fd);
    if let Err(e) = sock.set_recv_buffer_size(RECV_BUFFER) {
        tracing::warn!(error = %e, "could not raise the icmp receive buffer");
    }
}

#[async_trait]
impl Prober for IcmpProber {
    async fn window(&self, target: IpAddr, spec: WindowSpec) -> Result<WindowStats, ProbeError> {
        let client = self.client.clone();
        let stats = self.handle.spawn(run_window(client, target, spec)).await;
        stats.map_err(|e| ProbeError::Socket(std::io::Error::other(e.to_string())))
    }
}

/// Sends `spec.count` echo requests `spec.interval` apart, each awaited up to `spec.timeout`.
async fn run_window(client: Client, target: IpAddr, spec: WindowSpec) -> WindowStats {
    let ident = PingIdentifier(rand::random());
    let start = grid_start(Instant::now(), spec.interval);
    let mut pending: FuturesUnordered<_> = (0..spec.count)
        .map(|seq| {
            let client = client.clone();
            async move {
                let mut pinger = client.pinger(target, ident).await;
                tokio::time::sleep_until(start + spec.interval * u32::from(seq)).await;
                pinger.timeout(spec.timeout);
                pinger.ping(PingSequence(seq), &PAYLOAD).await
            }
        })
        .collect();
    let mut rtts = Vec::with_capacity(usize::from(spec.count));
    while let Some(result) = pending.next().await {
        if let Ok((IcmpPacket::V4(packet), rtt)) = result
            && packet.get_icmp_type().0 == ECHO_REPLY
        {
            rtts.push(rtt);
        }
    }
    WINDOWS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    WINDOW_MICROS.fetch_add(start.elapsed().as_micros() as u64, std::sync::atomic::Ordering::Relaxed);
    WindowStats::from_rtts(spec.count, &rtts)
}

/// The first point of the process-wide grid of step `interval` at or after `now`.
///
/// Windows of all containers send on the same grid, so one timer wake-up sends the echoes of
/// every window due then instead of one wake-up per window (kernel time dominates probing cost).
fn grid_start(now: Instant, interval: std::time::Duration) -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    let step = interval.as_nanos().max(1);
    let since = now.saturating_duration_since(epoch).as_nanos();
    let steps = since.div_ceil(step);
    epoch + std::time::Duration::from_nanos(u64::try_from(steps * step).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn windows_start_on_a_shared_grid_within_one_interval() {
        let step = Duration::from_millis(10);
        let a = grid_start(Instant::now(), step);
        let b = grid_start(Instant::now() + Duration::from_millis(3), step);
        let gap = b.saturating_duration_since(a).max(a.saturating_duration_since(b));
        assert_eq!(gap.as_nanos() % step.as_nanos(), 0, "starts differ by a whole number of steps");
        let now = Instant::now();
        assert!(grid_start(now, step) >= now && grid_start(now, step) < now + step);
    }
}
