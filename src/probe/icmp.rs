//! [`Prober`] over one raw ICMP socket (surge-ping's socket and packet codec), one per process.
//!
//! Every window of the process is driven by one engine task on a dedicated thread: at each
//! point of a shared grid it sends the due echo of every open window, and one receive loop
//! drains all replies and matches them by source, identifier and sequence. There is no future,
//! timer or channel per echo — the per-echo cost is a `sendto`, a `recvfrom` and a table lookup,
//! which is what keeps probing a hundred containers cheap (docs/benchmarks.md).

use std::collections::HashMap;
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

use super::{ProbeError, Prober, WindowSpec, WindowStats};

/// ICMP type of an echo reply: the only answer that counts as received.
const ECHO_REPLY: u8 = 0;
/// Receive buffer for the shared socket, so bursts from many containers are not dropped.
const RECV_BUFFER: usize = 4 << 20;
const PAYLOAD: [u8; 16] = *b"hms-probe-window";

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
    #[allow(unsafe_code)]
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

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
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

/// One open window.
struct Window {
    target: Ipv4Addr,
    spec: WindowSpec,
    ident: u16,
    /// Sequence number of the first echo; the window's echoes are `base..base + count`.
    base: u16,
    start: Instant,
    /// Echoes sent so far.
    sent: u16,
    sent_at: Vec<Instant>,
    rtts: Vec<Option<Duration>>,
    done: oneshot::Sender<WindowStats>,
}

impl Window {
    fn send_time(&self, i: u16) -> Instant {
        self.start + self.spec.interval * u32::from(i)
    }

    /// When the last echo's reply stops counting.
    fn deadline(&self) -> Instant {
        self.send_time(self.spec.count.saturating_sub(1)) + self.spec.timeout
    }

    fn answered(&self) -> usize {
        self.rtts.iter().filter(|r| r.is_some()).count()
    }

    fn complete(&self, now: Instant) -> bool {
        self.sent == self.spec.count && (self.answered() == usize::from(self.sent) || now >= self.deadline())
    }
}

/// The open windows of the process: pure bookkeeping, time passed in.
///
/// A target keeps its echo identifier from window to window (the low 16 bits of its address,
/// salted per process): netfilter tracks an ICMP echo flow by address and identifier, so a fresh
/// identifier per window made the kernel create (and NAT-check, and later expire) one conntrack
/// entry per window. A random one is drawn only while the stable one is in use by an open window.
/// Sequence numbers run on across windows (one counter for the process), so a late reply to a
/// target's last window never counts for its next one.
struct Windows {
    open: HashMap<u16, Window>,
    salt: u16,
    next_seq: u16,
}

impl Default for Windows {
    fn default() -> Self {
        Self { open: HashMap::new(), salt: rand::random(), next_seq: rand::random() }
    }
}

impl Windows {
    fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Opens a window whose first echo is due at `start`; returns its identifier.
    fn open(&mut self, target: Ipv4Addr, spec: WindowSpec, start: Instant, done: oneshot::Sender<WindowStats>) -> u16 {
        let [.., a, b] = target.octets();
        let mut ident = u16::from_be_bytes([a, b]) ^ self.salt;
        while self.open.contains_key(&ident) {
            ident = rand::random();
        }
        let count = usize::from(spec.count);
        let base = self.next_seq;
        self.next_seq = base.wrapping_add(spec.count);
        let window = Window {
            target,
            spec,
            ident,
            base,
            start,
            sent: 0,
            sent_at: Vec::with_capacity(count),
            rtts: vec![None; count],
            done,
        };
        self.open.insert(ident, window);
        ident
    }

    /// The earliest instant at which an echo is due or a window may end.
    fn next_event(&self) -> Option<Instant> {
        self.open.values().map(|w| if w.sent < w.spec.count { w.send_time(w.sent) } else { w.deadline() }).min()
    }

    /// The echo packets due by `now`, marked as sent.
    fn due(&mut self, now: Instant) -> Vec<(Ipv4Addr, Vec<u8>)> {
        let mut out = Vec::new();
        for w in self.open.values_mut() {
            while w.sent < w.spec.count && w.send_time(w.sent) <= now {
                out.push((w.target, echo_request(w.ident, w.base.wrapping_add(w.sent))));
                w.sent += 1;
                w.sent_at.push(now);
            }
        }
        out
    }

    /// Records a reply from `source`; `ident` is `None` when the socket cannot tell it.
    fn reply(&mut self, source: Ipv4Addr, ident: Option<u16>, seq: u16, now: Instant) {
        let matches = |w: &&mut Window| w.target == source && ident.is_none_or(|i| i == w.ident);
        let candidates: Box<dyn Iterator<Item = &mut Window>> = match ident {
            Some(i) => Box::new(self.open.get_mut(&i).into_iter()),
            None => Box::new(self.open.values_mut()),
        };
        for w in candidates.filter(matches) {
            let i = seq.wrapping_sub(w.base);
            if i >= w.sent {
                continue;
            }
            let sent_at = w.sent_at[usize::from(i)];
            let rtt = now.saturating_duration_since(sent_at);
            let slot = &mut w.rtts[usize::from(i)];
            if slot.is_none() && rtt <= w.spec.timeout {
                *slot = Some(rtt);
            }
            return;
        }
    }

    /// Removes the windows that are complete at `now`: (reply channel, stats, duration).
    fn finished(&mut self, now: Instant) -> Vec<(oneshot::Sender<WindowStats>, WindowStats, Duration)> {
        let done: Vec<u16> = self.open.iter().filter(|(_, w)| w.complete(now)).map(|(i, _)| *i).collect();
        done.into_iter()
            .filter_map(|i| self.open.remove(&i))
            .map(|w| {
                let rtts: Vec<Duration> = w.rtts.iter().flatten().copied().collect();
                let took = now.saturating_duration_since(w.start);
                (w.done, WindowStats::from_rtts(w.spec.count, &rtts), took)
            })
            .collect()
    }
}

/// An ICMP echo request: type 8, code 0, checksum, identifier, sequence, payload. (On a datagram
/// socket the kernel rewrites the identifier and the checksum.)
fn echo_request(ident: u16, seq: u16) -> Vec<u8> {
    let mut packet = Vec::with_capacity(8 + PAYLOAD.len());
    packet.extend_from_slice(&[8, 0, 0, 0]);
    packet.extend_from_slice(&ident.to_be_bytes());
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(&PAYLOAD);
    let checksum = internet_checksum(&packet);
    packet[2..4].copy_from_slice(&checksum.to_be_bytes());
    packet
}

/// RFC 1071 checksum: one's complement of the one's-complement sum of 16-bit words.
fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The first point of the process-wide grid of step `interval` at or after `now`.
///
/// Windows of all containers send on the same grid, so one wake-up of the engine sends the
/// echoes of every window due then.
fn grid_start(now: Instant, interval: Duration) -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    let step = interval.as_nanos().max(1);
    let since = now.saturating_duration_since(epoch).as_nanos();
    let steps = since.div_ceil(step);
    epoch + Duration::from_nanos(u64::try_from(steps * step).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    const ADDR: Ipv4Addr = Ipv4Addr::new(172, 17, 0, 2);

    #[test]
    fn windows_start_on_a_shared_grid_within_one_interval() {
        let step = ms(10);
        let a = grid_start(Instant::now(), step);
        let b = grid_start(Instant::now() + ms(3), step);
        let gap = b.saturating_duration_since(a).max(a.saturating_duration_since(b));
        assert_eq!(gap.as_nanos() % step.as_nanos(), 0, "starts differ by a whole number of steps");
        let now = Instant::now();
        assert!(grid_start(now, step) >= now && grid_start(now, step) < now + step);
    }

    fn spec(count: u16) -> WindowSpec {
        WindowSpec { count, interval: ms(10), timeout: ms(100) }
    }

    /// Drives one window: sends every echo at its time, answers those `answer` picks after
    /// `rtt`, and returns the stats it ends with.
    fn drive(count: u16, answer: impl Fn(u16) -> bool, rtt: Duration) -> (WindowStats, Duration) {
        let t0 = Instant::now();
        let mut table = Windows::default();
        let (done, mut rx) = oneshot::channel();
        let ident = table.open(ADDR, spec(count), t0, done);
        let mut now = t0;
        let mut finished = Vec::new();
        while finished.is_empty() {
            for (target, packet) in table.due(now) {
                assert_eq!(target, ADDR);
                let seq = u16::from_be_bytes([packet[6], packet[7]]);
                let i = seq.wrapping_sub(table.open[&ident].base);
                if answer(i) {
                    table.reply(ADDR, Some(ident), seq, now + rtt);
                }
            }
            now += ms(1);
            finished = table.finished(now);
        }
        assert!(table.is_empty());
        let (tx, stats, took) = finished.pop().unwrap();
        drop(tx);
        assert!(rx.try_recv().is_err(), "the engine, not the table, answers");
        (stats, took)
    }

    #[test]
    fn a_clean_link_ends_the_window_at_the_last_reply() {
        let (stats, took) = drive(20, |_| true, ms(1));
        assert_eq!((stats.sent, stats.received), (20, 20));
        assert_eq!(stats.loss(), 0.0);
        assert!(took < ms(200), "ended early: {took:?}");
    }

    #[test]
    fn lost_echoes_count_and_the_window_waits_for_the_last_timeout() {
        let (stats, took) = drive(20, |i| i % 4 != 0, ms(1));
        assert_eq!(stats.received, 15);
        assert!((stats.loss() - 25.0).abs() < 1e-9);
        assert!(took >= ms(190 + 100), "waited the last echo's timeout: {took:?}");
    }

    #[test]
    fn late_replies_do_not_count() {
        let (stats, _) = drive(5, |_| true, ms(150));
        assert_eq!(stats.received, 0);
    }

    /// A table with one window of `count` echoes to `ADDR` opened now: (table, identifier,
    /// sequence base, start).
    fn one_window(count: u16) -> (Windows, u16, u16, Instant) {
        let t0 = Instant::now();
        let mut table = Windows::default();
        let ident = table.open(ADDR, spec(count), t0, oneshot::channel().0);
        let base = table.open[&ident].base;
        (table, ident, base, t0)
    }

    #[test]
    fn replies_from_another_address_identifier_or_sequence_do_not_count() {
        let (mut table, ident, base, t0) = one_window(1);
        assert_eq!(table.due(t0).len(), 1);
        table.reply(Ipv4Addr::new(10, 0, 0, 9), Some(ident), base, t0);
        table.reply(ADDR, Some(ident.wrapping_add(1)), base, t0);
        table.reply(ADDR, Some(ident), base.wrapping_add(1), t0);
        table.reply(ADDR, Some(ident), base.wrapping_sub(1), t0);
        let (_, stats, _) = table.finished(t0 + ms(100)).pop().unwrap();
        assert_eq!(stats.received, 0);
    }

    #[test]
    fn a_datagram_socket_matches_by_address_and_sequence() {
        let (mut table, _, base, t0) = one_window(2);
        table.due(t0 + ms(10));
        table.reply(ADDR, None, base, t0 + ms(11));
        table.reply(ADDR, None, base.wrapping_add(1), t0 + ms(12));
        let (_, stats, _) = table.finished(t0 + ms(12)).pop().unwrap();
        assert_eq!(stats.received, 2);
    }

    #[test]
    fn a_target_keeps_its_identifier_across_windows_unless_it_is_in_use() {
        let t0 = Instant::now();
        let mut table = Windows::default();
        let first = table.open(ADDR, spec(1), t0, oneshot::channel().0);
        let overlapping = table.open(ADDR, spec(1), t0, oneshot::channel().0);
        assert_ne!(first, overlapping, "two open windows never share an identifier");
        let neighbour = table.open(Ipv4Addr::new(10, 0, 1, 2), spec(1), t0, oneshot::channel().0);
        assert!(neighbour != first && neighbour != overlapping);
        table.due(t0);
        assert_eq!(table.finished(t0 + ms(100)).len(), 3);
        let next = table.open(ADDR, spec(1), t0 + ms(1000), oneshot::channel().0);
        assert_eq!(next, first, "the next window of a target reuses its flow");
        let late = table.open[&next].base.wrapping_sub(3);
        table.due(t0 + ms(1000));
        table.reply(ADDR, Some(next), late, t0 + ms(1001));
        assert_eq!(table.finished(t0 + ms(1100)).pop().unwrap().1.received, 0, "a late reply of an earlier window");
    }

    #[test]
    fn echo_requests_carry_a_valid_checksum() {
        let packet = echo_request(0x1234, 0xfffe);
        assert_eq!(&packet[..2], &[8, 0]);
        assert_eq!(&packet[4..8], &[0x12, 0x34, 0xff, 0xfe]);
        assert_eq!(internet_checksum(&packet), 0, "a packet with its checksum sums to zero");
        // The surge-ping codec reads what we write (as the reply it would be).
        let mut reply = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 172, 17, 0, 2, 172, 17, 0, 1];
        reply.extend_from_slice(&packet);
        reply[3] = u8::try_from(reply.len()).unwrap();
        reply[20] = ECHO_REPLY;
        let parsed = Icmpv4Packet::decode(&reply, SockType::RAW, Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED).unwrap();
        assert_eq!((parsed.get_identifier().0, parsed.get_sequence().0), (0x1234, 0xfffe));
        assert_eq!(parsed.get_real_dest(), ADDR);
    }

    #[test]
    fn next_event_is_the_next_send_then_the_deadline() {
        let t0 = Instant::now();
        let mut table = Windows::default();
        assert_eq!(table.next_event(), None);
        let (done, _rx) = oneshot::channel();
        table.open(ADDR, spec(2), t0, done);
        assert_eq!(table.next_event(), Some(t0));
        table.due(t0);
        assert_eq!(table.next_event(), Some(t0 + ms(10)));
        table.due(t0 + ms(10));
        assert_eq!(table.next_event(), Some(t0 + ms(110)));
    }
}
