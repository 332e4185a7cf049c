//! Response time as users feel it: a few HTTP GETs (or TCP connects) per probe period against a
//! container's service, like the paper's httping, behind [`ResponseProber`].
//!
//! - [`ResponseTarget`]: what to probe, from the `hms.probe` label (`http://:PORT/PATH`,
//!   `tcp://:PORT`) or a REST call.
//! - [`ResponseEngine`]: the process's one engine. Every request of every window is a future in
//!   one `FuturesUnordered` on a dedicated thread, with one timer for the next send or timeout
//!   of all of them (the pure table in `response_windows.rs`), not a task and a timer per request.
//!   Each request is its own connection (HTTP/1.0, `Connection: close`): no keep-alive hides a
//!   slow accept.
//! - [`FakeResponder`]: per-address response times, for deterministic actor tests.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::future::{AbortHandle, Abortable};
use futures::stream::FuturesUnordered;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::response_windows::{Outcome, SEND_GRID, Windows, on_grid, spaced};
pub use super::response_windows::{ResponseSpec, ResponseStats};
use super::{ProbeError, sleep_until};

/// Label naming a container's response-time probe.
pub const PROBE_LABEL: &str = "hms.probe";

/// What a response-time probe asks of a container, at the container's own address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ResponseTarget {
    /// `GET PATH` on `PORT`; a 2xx or 3xx status is a success.
    Http { port: u16, path: String },
    /// A TCP connect to `PORT`; its time is the response time.
    Tcp { port: u16 },
}

/// Longest probe text accepted.
pub const MAX_TARGET_LEN: usize = 1040;

/// A probe text that is not `http://:PORT/PATH` or `tcp://:PORT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("probe must be http://:PORT/PATH or tcp://:PORT (PORT 1-65535, at most 1040 characters), got {0:?}")]
pub struct TargetError(pub String);

impl std::str::FromStr for ResponseTarget {
    type Err = TargetError;
    fn from_str(s: &str) -> Result<Self, TargetError> {
        let bad = || TargetError(s.to_owned());
        if s.len() > MAX_TARGET_LEN {
            return Err(bad());
        }
        let (scheme, rest) = s.split_once("://:").ok_or_else(bad)?;
        let (port, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        // digits only, no sign nor leading zero: one spelling per port
        let digits = !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
        let port = port.parse::<u16>().ok().filter(|p| digits && *p > 0 && !port.starts_with('0')).ok_or_else(bad)?;
        let printable = path.bytes().all(|b| b.is_ascii_graphic());
        match scheme.to_ascii_lowercase().as_str() {
            "http" if printable => {
                let path = if path.is_empty() { "/".to_owned() } else { path.to_owned() };
                Ok(Self::Http { port, path })
            }
            "tcp" if path.is_empty() || path == "/" => Ok(Self::Tcp { port }),
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for ResponseTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Http { port, path } => write!(f, "http://:{port}{path}"),
            Self::Tcp { port } => write!(f, "tcp://:{port}"),
        }
    }
}

impl ResponseTarget {
    fn port(&self) -> u16 {
        match self {
            Self::Http { port, .. } | Self::Tcp { port } => *port,
        }
    }
}

/// Measures a container's response time with one window of requests.
#[async_trait]
pub trait ResponseProber: Send + Sync + 'static {
    async fn window(
        &self,
        ip: IpAddr,
        target: &ResponseTarget,
        spec: ResponseSpec,
    ) -> Result<ResponseStats, ProbeError>;
}

/// One window asked of the engine.
struct Request {
    /// Where to connect, and what to send there (nothing: connect only).
    to: (SocketAddr, Arc<[u8]>),
    spec: ResponseSpec,
    done: oneshot::Sender<ResponseStats>,
}

static ENGINE: OnceLock<Result<mpsc::UnboundedSender<Request>, String>> = OnceLock::new();

/// Sends real requests through the process's one engine. Cheap to clone.
#[derive(Clone)]
pub struct ResponseEngine {
    engine: mpsc::UnboundedSender<Request>,
}

impl ResponseEngine {
    /// Starts (once per process) the engine's thread, which outlives any runtime probing
    /// through it.
    pub fn new() -> Result<Self, ProbeError> {
        let engine = ENGINE.get_or_init(spawn_engine).clone();
        engine.map(|engine| Self { engine }).map_err(|e| ProbeError::Socket(std::io::Error::other(e)))
    }
}

#[async_trait]
impl ResponseProber for ResponseEngine {
    async fn window(
        &self,
        ip: IpAddr,
        target: &ResponseTarget,
        spec: ResponseSpec,
    ) -> Result<ResponseStats, ProbeError> {
        let (done, stats) = oneshot::channel();
        let addr = SocketAddr::new(ip, target.port());
        let to = (addr, Arc::from(request_bytes(addr, target)));
        let stopped = || ProbeError::Socket(std::io::Error::other("the response-time engine has stopped"));
        self.engine.send(Request { to, spec, done }).map_err(|_| stopped())?;
        stats.await.map_err(|_| stopped())
    }
}

fn spawn_engine() -> Result<mpsc::UnboundedSender<Request>, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("hms-response".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => return drop(tx.send(Err(e.to_string()))),
            };
            let (requests, inbox) = mpsc::unbounded_channel();
            let _ = tx.send(Ok(requests));
            rt.block_on(engine(inbox));
        })
        .map_err(|e| e.to_string())?;
    rx.recv().unwrap_or_else(|_| Err("the response-time thread died".to_owned()))
}

/// A request in flight: how to abort it and whether its handshake completed.
struct Flight {
    abort: AbortHandle,
    connected: Rc<std::cell::Cell<bool>>,
}

/// The engine: opens windows, starts due requests, ends overdue ones, answers finished windows.
async fn engine(mut inbox: mpsc::UnboundedReceiver<Request>) {
    type Done = oneshot::Sender<ResponseStats>;
    let mut table: Windows<(SocketAddr, Arc<[u8]>), Done> = Windows::default();
    let mut flights: HashMap<(u64, usize), Flight> = HashMap::new();
    let mut running = FuturesUnordered::new();
    let mut inbox_open = true;
    let epoch = Instant::now();
    loop {
        let wake = table.next_event();
        tokio::select! {
            request = inbox.recv(), if inbox_open => match request {
                Some(Request { to, spec, done }) => {
                    let sends = spaced(Instant::now(), spec, rand::random::<f64>);
                    let sends = sends.into_iter().map(|t| on_grid(t, epoch, SEND_GRID)).collect();
                    table.open_at(spec, sends, to, done);
                }
                None => inbox_open = false,
            },
            Some(ended) = running.next(), if !running.is_empty() => {
                if let Ok((key, i, outcome)) = ended {
                    flights.remove(&(key, i));
                    table.ended(key, i, outcome);
                }
            }
            () = sleep_until(wake) => {}
        }
        let now = Instant::now();
        for (key, i) in table.overdue(now) {
            let connected = flights.remove(&(key, i)).is_some_and(|f| {
                f.abort.abort();
                f.connected.get()
            });
            table.timed_out(key, i, connected);
        }
        for (key, i, (addr, target)) in table.due(now) {
            let connected = Rc::new(std::cell::Cell::new(false));
            let (abort, registration) = AbortHandle::new_pair();
            let flag = connected.clone();
            let request = async move { (key, i, attempt(addr, &target, &flag).await) };
            running.push(Abortable::new(request, registration));
            flights.insert((key, i), Flight { abort, connected });
        }
        for (done, stats) in table.finished() {
            let _ = done.send(stats);
        }
        if !inbox_open && table.is_empty() {
            return;
        }
    }
}

/// Largest response read; the rest of a bigger body is not waited for.
const MAX_RESPONSE: usize = 64 * 1024;

/// One request on its own connection.
/// The bytes of one request to `target` at `addr`, made once per window: an HTTP/1.0 GET that
/// asks the server to close, or nothing for a connect-only probe.
pub(crate) fn request_bytes(addr: SocketAddr, target: &ResponseTarget) -> Vec<u8> {
    match target {
        ResponseTarget::Tcp { .. } => Vec::new(),
        ResponseTarget::Http { path, .. } => {
            format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: hms-probe\r\nConnection: close\r\n\r\n")
                .into_bytes()
        }
    }
}

async fn attempt(addr: SocketAddr, request: &[u8], connected: &std::cell::Cell<bool>) -> Outcome {
    let start = Instant::now();
    let ok = exchange(addr, request, || connected.set(true)).await.unwrap_or(false);
    Outcome { ok, took: start.elapsed(), connected: connected.get() }
}

/// One exchange on a fresh connection: connect, send `request` (nothing: connect only), read
/// until the server closes. `Ok(true)` when connected and (with a request) the status is 2xx or
/// 3xx; `on_connect` runs once the connection is up. Also the load generator's request.
pub(crate) async fn exchange(addr: SocketAddr, request: &[u8], on_connect: impl FnOnce()) -> std::io::Result<bool> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    on_connect();
    if request.is_empty() {
        return Ok(true);
    }
    stream.write_all(request).await?;
    // in the future itself: no allocation per request
    let mut buf = [0u8; 2048];
    let mut head = [0u8; 16];
    let (mut filled, mut total) = (0, 0);
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        let take = n.min(head.len() - filled);
        head[filled..filled + take].copy_from_slice(&buf[..take]);
        filled += take;
        total += n;
        if total >= MAX_RESPONSE {
            break;
        }
    }
    Ok(success_status(&head[..filled]))
}

fn success_status(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    let mut parts = text.split_ascii_whitespace();
    let version = parts.next().unwrap_or("");
    let status = parts.next().unwrap_or("");
    version.starts_with("HTTP/") && status.len() == 3 && (status.starts_with('2') || status.starts_with('3'))
}

/// A [`ResponseProber`] answering from a table of per-address response times.
#[derive(Clone, Default)]
pub struct FakeResponder {
    table: Arc<Mutex<HashMap<IpAddr, Option<Duration>>>>,
}

impl FakeResponder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every later window to `ip` measures `time` (`None`: every request fails).
    pub fn set(&self, ip: IpAddr, time: Option<Duration>) {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).insert(ip, time);
    }
}

#[async_trait]
impl ResponseProber for FakeResponder {
    async fn window(
        &self,
        ip: IpAddr,
        _target: &ResponseTarget,
        spec: ResponseSpec,
    ) -> Result<ResponseStats, ProbeError> {
        let time = self.table.lock().unwrap_or_else(|p| p.into_inner()).get(&ip).copied();
        let time = time.unwrap_or(Some(Duration::from_millis(5)));
        let outcome = Outcome { ok: time.is_some(), took: time.unwrap_or(spec.timeout), connected: time.is_some() };
        Ok(ResponseStats::from_outcomes(&vec![outcome; usize::from(spec.count)], spec.timeout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_labels_parse_and_print_back() {
        let http: ResponseTarget = "http://:8080/cgi-bin/work?n=10".parse().unwrap();
        assert_eq!(http, ResponseTarget::Http { port: 8080, path: "/cgi-bin/work?n=10".into() });
        assert_eq!(http.to_string(), "http://:8080/cgi-bin/work?n=10");
        assert_eq!("HTTP://:80".parse::<ResponseTarget>().unwrap().to_string(), "http://:80/");
        assert_eq!("tcp://:5432".parse::<ResponseTarget>().unwrap(), ResponseTarget::Tcp { port: 5432 });
        for bad in [
            "",
            "http://",
            "http://:0/",
            "http://:70000/",
            "http://host:80/",
            "udp://:53",
            "tcp://:22/x",
            "http://:80/a b",
            "8080",
        ] {
            let e = bad.parse::<ResponseTarget>().unwrap_err();
            assert!(e.to_string().starts_with("probe must be"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_port_has_one_spelling_and_a_probe_text_a_bounded_length() {
        let long = format!("http://:80/{}", "a".repeat(MAX_TARGET_LEN));
        for bad in ["http://:080/", "http://:+80/", " http://:80/", "http://:80/ ", long.as_str()] {
            assert!(bad.parse::<ResponseTarget>().is_err(), "{bad}");
        }
        assert!("http://:65535/x".parse::<ResponseTarget>().is_ok());
    }

    #[test]
    fn only_2xx_and_3xx_status_lines_succeed() {
        assert!(success_status(b"HTTP/1.0 200 OK\r\n"));
        assert!(success_status(b"HTTP/1.1 302 Found"));
        assert!(!success_status(b"HTTP/1.0 404 Not Found"));
        assert!(!success_status(b"HTTP/1.0 500 x"));
        assert!(!success_status(b"SSH-2.0-OpenSSH"));
        assert!(!success_status(b""));
    }

    #[test]
    fn the_median_of_an_even_window_is_the_mean_of_its_middle_pair() {
        let o = |ms| Outcome { ok: true, took: Duration::from_millis(ms), connected: true };
        let stats = ResponseStats::from_outcomes(&[o(10), o(40), o(20), o(30)], Duration::from_secs(1));
        assert_eq!(stats.median, Some(Duration::from_millis(25)));
        assert_eq!(stats.failed_share(), Some(0.0));
        assert_eq!(ResponseStats::default().failed_share(), None);
    }

    /// A loopback server answering `status` after `delay`, counting connections.
    async fn server(status: &'static str, delay: Duration) -> (SocketAddr, Arc<std::sync::atomic::AtomicU32>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf).await;
                    tokio::time::sleep(delay).await;
                    let _ = s.write_all(format!("HTTP/1.0 {status}\r\n\r\nok").as_bytes()).await;
                });
            }
        });
        (addr, accepted)
    }

    fn spec(timeout_ms: u64) -> ResponseSpec {
        ResponseSpec { count: 3, interval: Duration::from_millis(10), timeout: Duration::from_millis(timeout_ms) }
    }

    #[tokio::test]
    async fn the_engine_measures_a_slow_server_and_counts_its_connections() {
        let (addr, accepted) = server("200 OK", Duration::from_millis(60)).await;
        let engine = ResponseEngine::new().unwrap();
        let target = ResponseTarget::Http { port: addr.port(), path: "/".into() };
        let stats = engine.window(addr.ip(), &target, spec(1000)).await.unwrap();
        assert_eq!((stats.sent, stats.failed, stats.connected), (3, 0, 3));
        let median = stats.median.unwrap();
        assert!(median >= Duration::from_millis(60) && median < Duration::from_millis(600), "{median:?}");
        assert_eq!(accepted.load(std::sync::atomic::Ordering::Relaxed), 3, "one connection per request");
    }

    #[tokio::test]
    async fn errors_timeouts_and_refusals_are_failures_at_the_timeout() {
        let engine = ResponseEngine::new().unwrap();
        let (addr, _) = server("503 Busy", Duration::ZERO).await;
        let target = ResponseTarget::Http { port: addr.port(), path: "/".into() };
        let stats = engine.window(addr.ip(), &target, spec(300)).await.unwrap();
        assert_eq!((stats.failed, stats.connected, stats.median), (3, 3, Some(Duration::from_millis(300))));

        let (slow, _) = server("200 OK", Duration::from_secs(5)).await;
        let target = ResponseTarget::Http { port: slow.port(), path: "/".into() };
        let started = Instant::now();
        let stats = engine.window(slow.ip(), &target, spec(200)).await.unwrap();
        assert_eq!((stats.failed, stats.connected), (3, 3), "connected, then timed out");
        assert!(started.elapsed() < Duration::from_secs(2), "a timed-out request is not waited for");

        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let stats = engine.window(closed.ip(), &ResponseTarget::Tcp { port: closed.port() }, spec(200)).await.unwrap();
        assert_eq!((stats.failed, stats.connected), (3, 0), "refused: no connection reached the container");
    }

    #[tokio::test]
    async fn a_tcp_probe_measures_the_connect() {
        let (addr, accepted) = server("200 OK", Duration::ZERO).await;
        let engine = ResponseEngine::new().unwrap();
        let stats = engine.window(addr.ip(), &ResponseTarget::Tcp { port: addr.port() }, spec(1000)).await.unwrap();
        assert_eq!((stats.failed, stats.connected), (0, 3));
        assert!(stats.median.unwrap() < Duration::from_millis(100));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(accepted.load(std::sync::atomic::Ordering::Relaxed), 3);
    }
}
