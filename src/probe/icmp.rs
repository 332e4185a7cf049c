//! [`Prober`] over one raw ICMP socket (surge-ping's socket and packet codec), one per process.
//!
//! Every window of the process is driven by one engine task on a dedicated thread: at each
//! point of a shared grid it sends the due echo of every open window, and one receive loop
//! drains all replies and matches them by source, identifier and sequence. There is no future,
//! timer or channel per echo — the per-echo cost is a `sendto`, a `recvfrom` and a table lookup,
//! which is what keeps probing a hundred containers cheap (docs/benchmarks.md).
//!
//! This file is the shell: the socket, its thread and the send and receive loops. What is due,
//! which reply counts and when a window ends is the pure table in `echo_windows.rs`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::BorrowedFd;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use async_trait::async_trait;
use socket2::{SockAddr, SockRef, Type as SockType};
use surge_ping::{AsyncSocket, Config, ICMP, Icmpv4Packet};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::echo_windows::{ECHO_REPLY, Windows, grid_start};
use super::{ProbeError, Prober, WindowSpec, WindowStats, sleep_until};

/// Receive buffer for the shared socket, so bursts from many containers are not dropped.
const RECV_BUFFER: usize = 4 << 20;

/// Windows completed by this process, and their summed duration in microseconds.
static WINDOWS: AtomicU64 = AtomicU64::new(0);
static WINDOW_MICROS: AtomicU64 = AtomicU64::new(0);

/// `(windows completed, their total duration)` since the process started.
pub fn window_totals() -> (u64, Duration) {
    (WINDOWS.load(Relaxed), Duration::from_micros(WINDOW_MICROS.load(Relaxed)))
}

/// One window asked of the engine.
struct Request {
    target: Ipv4Addr,
    spec: WindowSpec,
    done: oneshot::Sender<WindowStats>,
}

/// The process's one engine, or why it could not be made.
static ENGINE: OnceLock<Result<mpsc::UnboundedSender<Request>, (std::io::ErrorKind, String)>> = OnceLock::new();

/// Sends real echo requests. Cheap to clone; all clones share the process's one socket.
#[derive(Clone)]
pub struct IcmpProber {
    engine: mpsc::UnboundedSender<Request>,
}

impl IcmpProber {
    /// Opens (once per process) the raw ICMP socket. Fails clearly without CAP_NET_RAW.
    ///
    /// The socket and its engine live on a dedicated thread with its own runtime, so they
    /// outlive any runtime that probes through them (tests run one runtime per test).
    pub fn new() -> Result<Self, ProbeError> {
        let engine = ENGINE.get_or_init(spawn_engine).clone();
        engine.map(|engine| Self { engine }).map_err(|(kind, msg)| {
            let e = std::io::Error::new(kind, msg);
            match kind {
                std::io::ErrorKind::PermissionDenied => ProbeError::NotPermitted(e),
                _ => ProbeError::Socket(e),
            }
        })
    }
}

#[async_trait]
impl Prober for IcmpProber {
    async fn window(&self, target: IpAddr, spec: WindowSpec) -> Result<WindowStats, ProbeError> {
        let IpAddr::V4(target) = target else {
            return Err(ProbeError::Socket(std::io::Error::other(format!("{target}: only IPv4 targets are probed"))));
        };
        let (done, stats) = oneshot::channel();
        self.engine
            .send(Request { target, spec, done })
            .map_err(|_| ProbeError::Socket(std::io::Error::other("the icmp engine has stopped")))?;
        stats.await.map_err(|_| ProbeError::Socket(std::io::Error::other("the icmp engine dropped a window")))
    }
}

fn spawn_engine() -> Result<mpsc::UnboundedSender<Request>, (std::io::ErrorKind, String)> {
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new().name("hms-icmp".into()).spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => return drop(tx.send(Err((e.kind(), e.to_string())))),
        };
        rt.block_on(async move {
            let config = Config::builder().kind(ICMP::V4).sock_type_hint(SockType::RAW).build();
            let socket = match AsyncSocket::new(&config) {
                Ok(socket) => socket,
                Err(e) => return drop(tx.send(Err((e.kind(), e.to_string())))),
            };
            raise_recv_buffer(&socket);
            let (requests, inbox) = mpsc::unbounded_channel();
            let _ = tx.send(Ok(requests));
            engine(socket, inbox).await;
        });
    });
    if let Err(e) = spawned {
        return Err((e.kind(), e.to_string()));
    }
    rx.recv().unwrap_or_else(|_| Err((std::io::ErrorKind::Other, "icmp thread died".to_owned())))
}

/// The socket's descriptor, for non-blocking `sendto`/`read` through socket2.
fn fd(socket: &AsyncSocket) -> BorrowedFd<'_> {
    // SAFETY: the fd belongs to `socket` and stays open while the borrow lives.
    #[allow(unsafe_code, reason = "surge-ping exposes only the raw descriptor; the borrow cannot outlive the socket")]
    unsafe {
        BorrowedFd::borrow_raw(socket.get_native_sock())
    }
}

fn raise_recv_buffer(socket: &AsyncSocket) {
    if let Err(e) = SockRef::from(&fd(socket)).set_recv_buffer_size(RECV_BUFFER) {
        tracing::warn!(error = %e, "could not raise the icmp receive buffer");
    }
}

/// The engine: takes window requests, sends due echoes at grid points, drains replies.
async fn engine(socket: AsyncSocket, mut inbox: mpsc::UnboundedReceiver<Request>) {
    let kind = socket.get_type();
    let mut table = Windows::default();
    let mut buf = vec![0u8; 2048];
    let mut inbox_open = true;
    loop {
        let wake = table.next_event();
        tokio::select! {
            request = inbox.recv(), if inbox_open => match request {
                Some(Request { target, spec, done }) => {
                    let now = Instant::now();
                    table.open(target, spec, grid_start(now, spec.interval), done);
                }
                None => inbox_open = false,
            },
            received = socket.recv_from(&mut buf) => {
                let now = Instant::now();
                if let Ok((n, from)) = received {
                    on_packet(&mut table, &buf[..n], from, kind, now);
                }
                drain(&socket, &mut table, &mut buf, kind, now);
            }
            () = sleep_until(wake) => {}
        }
        let now = Instant::now();
        let fd = fd(&socket);
        let sock = SockRef::from(&fd);
        for (target, packet) in table.due(now) {
            // A full send buffer or an unreachable route counts as a lost echo.
            if let Err(e) = sock.send_to(&packet, &SockAddr::from(SocketAddr::new(target.into(), 0))) {
                tracing::trace!(%target, error = %e, "echo request not sent");
            }
        }
        for (done, stats, took) in table.finished(now) {
            WINDOWS.fetch_add(1, Relaxed);
            WINDOW_MICROS.fetch_add(took.as_micros() as u64, Relaxed);
            let _ = done.send(stats);
        }
        if !inbox_open && table.is_empty() {
            return;
        }
    }
}

/// Reads every reply already queued on the socket without waiting. A raw socket's packets carry
/// their IPv4 header, so the source needs no address from the kernel; a datagram socket's replies
/// are read one per wake-up instead.
fn drain(socket: &AsyncSocket, table: &mut Windows, buf: &mut [u8], kind: SockType, now: Instant) {
    if kind != SockType::RAW {
        return;
    }
    let fd = fd(socket);
    let mut sock: &socket2::Socket = &SockRef::from(&fd);
    while let Ok(n) = std::io::Read::read(&mut sock, buf) {
        on_packet(table, &buf[..n], SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0), kind, now);
    }
}

fn on_packet(table: &mut Windows, bytes: &[u8], from: SocketAddr, kind: SockType, now: Instant) {
    let IpAddr::V4(source) = from.ip() else { return };
    // A raw socket's packet starts with the IPv4 header, from which the codec takes the source.
    // Echo requests (our own, looped back), malformed packets and other ICMP are not answers.
    let Ok(packet) = Icmpv4Packet::decode(bytes, kind, source, Ipv4Addr::UNSPECIFIED) else { return };
    if packet.get_icmp_type().0 != ECHO_REPLY {
        return;
    }
    // On a datagram (ping) socket the kernel owns the identifier; the sequence base still tells
    // windows apart.
    let ident = (kind == SockType::RAW).then_some(packet.get_identifier().0);
    table.reply(packet.get_real_dest(), ident, packet.get_sequence().0, now);
}
