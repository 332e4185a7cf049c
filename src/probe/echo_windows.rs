//! The open echo windows of the ICMP engine (`icmp.rs`) as pure bookkeeping: which echo
//! is due, which window a reply belongs to, when a window is complete, and the echo request's
//! bytes. Time is passed in and no socket is touched, so every rule is tested here without one.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{WindowSpec, WindowStats};

/// ICMP type of an echo reply: the only answer that counts as received.
pub(super) const ECHO_REPLY: u8 = 0;
const PAYLOAD: [u8; 16] = *b"hms-probe-window";

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
pub(super) struct Windows {
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
    pub(super) fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Opens a window whose first echo is due at `start`; returns its identifier.
    pub(super) fn open(
        &mut self,
        target: Ipv4Addr,
        spec: WindowSpec,
        start: Instant,
        done: oneshot::Sender<WindowStats>,
    ) -> u16 {
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
    pub(super) fn next_event(&self) -> Option<Instant> {
        self.open.values().map(|w| if w.sent < w.spec.count { w.send_time(w.sent) } else { w.deadline() }).min()
    }

    /// The echo packets due by `now`, marked as sent.
    pub(super) fn due(&mut self, now: Instant) -> Vec<(Ipv4Addr, Vec<u8>)> {
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
    pub(super) fn reply(&mut self, source: Ipv4Addr, ident: Option<u16>, seq: u16, now: Instant) {
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
    pub(super) fn finished(&mut self, now: Instant) -> Vec<(oneshot::Sender<WindowStats>, WindowStats, Duration)> {
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
pub(super) fn grid_start(now: Instant, interval: Duration) -> Instant {
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
    use socket2::Type as SockType;
    use surge_ping::Icmpv4Packet;

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
