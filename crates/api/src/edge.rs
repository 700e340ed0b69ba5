//! The connection edge: the accept loop and each connection's HTTP/1.1 life, with the limits
//! that keep a node answering when clients misbehave (docs/deploy.md, "Limits").
//!
//! Every connection is in one of three phases, tracked from its bytes and its requests:
//! - **idle**: waiting for a request (just accepted, or after a response). Closed after
//!   `idle_timeout` without a byte.
//! - **head**: the first byte of a request arrived; the whole head (request line and headers)
//!   must follow within `header_read_timeout` (a slowloris sending a byte at a time is cut off
//!   then, however steady it is).
//! - **busy**: the head was read and the request is being served. Its body must arrive within
//!   `body_read_timeout`, and the response must be ready within `request_timeout`; either one
//!   ends the request with `408 RequestTimeoutException` and the connection closes.
//!
//! One sweeper task checks every connection four times a second. At most `max_connections`
//! connections are open at once (bounded below the process's file-descriptor limit, which is
//! raised to its hard limit at start): a connection beyond it takes the place of the open
//! connection that has been idle (or reading a head) the longest, so a flood of idle sockets
//! cannot lock out a real client; when every connection is busy, the new one is answered
//! `503` and closed at once. Every limit that bites is logged (a warning per kind at most every
//! 10 s, with how often it bit meanwhile).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// The edge's limits; each one is a config key of `coffer serve` (docs/configuration.md).
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: usize,
    pub max_header_bytes: usize,
    /// The largest body of an API call (`POST /`); the replication endpoint has its own bound
    /// (`replication_max_message_bytes`) and the console its own for forms.
    pub max_body_bytes: usize,
    /// Proxies whose `X-Forwarded-For` / `X-Forwarded-Proto` are believed (for `aws:SourceIp`,
    /// `aws:SecureTransport` and the audit log's `sourceIPAddress`); from anyone else they are
    /// ignored.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(60),
            max_connections: 4096,
            max_header_bytes: 32 * 1024,
            max_body_bytes: crate::MAX_BODY_BYTES,
            trusted_proxies: Vec::new(),
        }
    }
}

/// What a request learns of its client, as a request extension: whether the client's request
/// travelled over TLS (to this node, or to a trusted proxy that says so in
/// `X-Forwarded-Proto`). The client's address is axum's `ConnectInfo<SocketAddr>`: the TCP
/// peer, or the client a trusted proxy names in `X-Forwarded-For`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Transport {
    pub tls: bool,
}

/// The client of a request: its address and whether it used TLS. Forwarding headers count only
/// when the TCP peer is a trusted proxy. `X-Forwarded-For` is read from the right: the first
/// address that is not itself a trusted proxy is the client (addresses further left were
/// written by the client and prove nothing); `X-Forwarded-Proto` is the last value (set by the
/// nearest proxy).
pub fn client_of(
    peer: SocketAddr,
    tls: bool,
    headers: &http::HeaderMap,
    trusted: &[ipnet::IpNet],
) -> (SocketAddr, bool) {
    let is_trusted = |ip: std::net::IpAddr| trusted.iter().any(|n| n.contains(&ip.to_canonical()));
    if trusted.is_empty() || !is_trusted(peer.ip()) {
        return (peer, tls);
    }
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect()
    };
    let mut client = peer.ip();
    for hop in values("x-forwarded-for").iter().rev() {
        let Some(ip) = parse_hop(hop) else { break };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    let secure = match values("x-forwarded-proto").last() {
        Some(proto) => proto.eq_ignore_ascii_case("https"),
        None => tls,
    };
    (SocketAddr::new(client.to_canonical(), peer.port()), secure)
}

/// An `X-Forwarded-For` entry: an address, `[v6]`, or either with a port.
fn parse_hop(hop: &str) -> Option<std::net::IpAddr> {
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Ok(addr) = hop.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    hop.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .and_then(|h| h.parse().ok())
}

const IDLE: u8 = 0;
const HEAD: u8 = 1;
const BUSY: u8 = 2;
const CLOSING: u8 = 3;

/// The limits that can bite, for the log.
#[derive(Clone, Copy)]
enum Bite {
    Idle,
    Header,
    Body,
    Request,
    Evicted,
    Refused,
    Accept,
}

impl Bite {
    const ALL: usize = 7;

    fn name(self) -> &'static str {
        match self {
            Bite::Idle => "idle_timeout_secs",
            Bite::Header => "header_read_timeout_secs",
            Bite::Body => "body_read_timeout_secs",
            Bite::Request => "request_timeout_secs",
            Bite::Evicted => "max_connections (an idle connection closed for a new one)",
            Bite::Refused => "max_connections (every connection busy: 503)",
            Bite::Accept => "accept failed (file descriptors?)",
        }
    }
}

/// Counts each limit's bites and logs them, a line per kind at most every 10 s.
struct Bites {
    counts: [AtomicU64; Bite::ALL],
    last_logged: Mutex<[Option<Instant>; Bite::ALL]>,
}

impl Bites {
    fn new() -> Bites {
        Bites {
            counts: Default::default(),
            last_logged: Mutex::new([None; Bite::ALL]),
        }
    }

    fn bite(&self, kind: Bite, peer: Option<SocketAddr>) {
        let i = kind as usize;
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut last = self.last_logged.lock().expect("bites lock");
        if last[i].is_some_and(|t| now.duration_since(t) < Duration::from_secs(10)) {
            return;
        }
        last[i] = Some(now);
        drop(last);
        let times = self.counts[i].swap(0, Ordering::Relaxed);
        tracing::warn!(
            limit = kind.name(),
            times,
            peer = peer.map(|p| p.to_string()).unwrap_or_default(),
            "Connection limit applied"
        );
    }
}

/// One open connection, as the sweeper sees it.
struct Conn {
    peer: SocketAddr,
    phase: AtomicU8,
    /// When the current phase began (ms since the edge started).
    since_ms: AtomicU64,
    close: Notify,
    closed_for: Mutex<Option<Bite>>,
}

struct Edge {
    limits: Limits,
    started: Instant,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    bites: Bites,
}

impl Edge {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn set_phase(&self, conn: &Conn, phase: u8) {
        if conn.phase.load(Ordering::Relaxed) == CLOSING {
            return;
        }
        conn.since_ms.store(self.now_ms(), Ordering::Relaxed);
        conn.phase.store(phase, Ordering::Relaxed);
    }

    fn close(&self, conn: &Conn, why: Bite) {
        conn.phase.store(CLOSING, Ordering::Relaxed);
        *conn.closed_for.lock().expect("conn lock") = Some(why);
        conn.close.notify_one();
        self.bites.bite(why, Some(conn.peer));
    }

    /// Makes room for one more connection: `true` when there is room (possibly by closing the
    /// connection idle or reading a head the longest), `false` when every one is busy.
    fn admit(&self) -> bool {
        let conns = self.conns.lock().expect("conns lock");
        let open = conns
            .values()
            .filter(|c| c.phase.load(Ordering::Relaxed) != CLOSING)
            .count();
        if open < self.limits.max_connections {
            return true;
        }
        let victim = conns
            .values()
            .filter(|c| matches!(c.phase.load(Ordering::Relaxed), IDLE | HEAD))
            .min_by_key(|c| c.since_ms.load(Ordering::Relaxed))
            .cloned();
        drop(conns);
        match victim {
            Some(v) => {
                self.close(&v, Bite::Evicted);
                true
            }
            None => false,
        }
    }

    /// The connections open now.
    fn open(&self) -> Vec<Arc<Conn>> {
        let conns = self.conns.lock().expect("conns lock");
        conns.values().cloned().collect()
    }

    /// Closes the connections whose phase has lasted too long.
    fn sweep(&self) {
        let now = self.now_ms();
        let over =
            |since: u64, limit: Duration| now.saturating_sub(since) > limit.as_millis() as u64;
        let conns = self.open();
        for conn in conns {
            let since = conn.since_ms.load(Ordering::Relaxed);
            match conn.phase.load(Ordering::Relaxed) {
                IDLE if over(since, self.limits.idle_timeout) => self.close(&conn, Bite::Idle),
                HEAD if over(since, self.limits.header_read_timeout) => {
                    self.close(&conn, Bite::Header)
                }
                // The request's own timeout answers it; this only reaps a connection whose
                // response cannot be written (a client that reads nothing).
                BUSY if over(
                    since,
                    self.limits.request_timeout + self.limits.idle_timeout,
                ) =>
                {
                    self.close(&conn, Bite::Request)
                }
                _ => {}
            }
        }
    }
}

/// A connection's I/O, marking the start of each request's head when its first byte arrives.
struct Tracked<T> {
    inner: T,
    conn: Arc<Conn>,
    edge: Arc<Edge>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before && self.conn.phase.load(Ordering::Relaxed) == IDLE {
            self.edge.set_phase(&self.conn, HEAD);
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The body-read deadline, raised as this error from the request body (see
/// [`is_body_timeout`]).
#[derive(Debug)]
pub struct BodyReadTimeout;

impl std::fmt::Display for BodyReadTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body was not received in time")
    }
}

impl std::error::Error for BodyReadTimeout {}

/// Whether reading a body failed because its deadline passed.
pub fn is_body_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut e: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(cur) = e {
        if cur.is::<BodyReadTimeout>() {
            return true;
        }
        e = cur.source();
    }
    false
}

/// A request body that fails with [`BodyReadTimeout`] when it has not ended by its deadline.
struct TimedBody {
    inner: Incoming,
    /// When the body must have ended; its timer is made only once the body is awaited.
    deadline_at: tokio::time::Instant,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    edge: Arc<Edge>,
    peer: SocketAddr,
    done: bool,
}

impl hyper::body::Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        // The body first: a body already received (the usual case: it came with the head)
        // never makes a timer, which costs an allocation and a lock of the timer wheel to
        // insert and again to remove. The timer is made and armed only while the body is
        // still awaited.
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                self.done = true;
                return Poll::Ready(None);
            }
            Poll::Ready(Some(r)) => return Poll::Ready(Some(r.map_err(Into::into))),
            Poll::Pending => {}
        }
        let at = self.deadline_at;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if deadline.as_mut().poll(cx).is_ready() {
            self.done = true;
            self.edge.bites.bite(Bite::Body, Some(self.peer));
            return Poll::Ready(Some(Err(Box::new(BodyReadTimeout))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// `408 RequestTimeoutException` (a code the AWS SDKs retry), closing the connection.
pub fn request_timeout_response(message: &str) -> Response<Body> {
    let body = serde_json::json!({"__type": "RequestTimeoutException", "Message": message});
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = StatusCode::REQUEST_TIMEOUT;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::JSON_CONTENT_TYPE),
    );
    headers.insert(
        "x-amzn-ErrorType",
        HeaderValue::from_static("RequestTimeoutException"),
    );
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

const BUSY_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/x-amz-json-1.1\r\nx-amzn-ErrorType: ServiceUnavailable\r\nConnection: close\r\nContent-Length: 95\r\n\r\n{\"__type\":\"ServiceUnavailable\",\"Message\":\"The node has too many open connections. Try again.\"}";

/// Raises the soft limit on open files to the hard limit; returns the soft limit in force.
pub fn raise_fd_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::warn!(error = %e, "Cannot raise the open-file limit");
            rlimit::Resource::NOFILE.get().ok().map(|(soft, _)| soft)
        }
    }
}

/// File descriptors kept for everything but client connections (stores, logs, peers).
const FD_RESERVE: u64 = 128;

/// The connection cap in force: `max_connections`, bounded below the open-file limit.
pub fn effective_max_connections(configured: usize, fd_limit: Option<u64>) -> usize {
    match fd_limit {
        Some(limit) => configured.min(limit.saturating_sub(FD_RESERVE).max(16) as usize),
        None => configured,
    }
}

/// A function making a connection's byte stream from an accepted TCP stream (TLS or not).
pub type Handshake = Arc<
    dyn Fn(TcpStream) -> Pin<Box<dyn Future<Output = Option<(Box<dyn Io>, Transport)>> + Send>>
        + Send
        + Sync,
>;

/// A connection's byte stream.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Plain HTTP: the TCP stream as it is.
pub fn plaintext() -> Handshake {
    Arc::new(|stream| {
        Box::pin(async move { Some((Box::new(stream) as Box<dyn Io>, Transport { tls: false })) })
    })
}

/// The API's own handler of `POST /`, called straight from the connection: the hottest route
/// skips the router (its matching, boxing and response mapping cost about a microsecond per
/// call). Every other request goes through the router, which routes `POST /` to the same
/// handler (so taking it out would change nothing but speed).
pub type Api = Arc<
    dyn Fn(Request<Body>) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> + Send + Sync,
>;

/// Serves `app` on `listener` until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    api: Api,
    limits: Limits,
    handshake: Handshake,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let edge = Arc::new(Edge {
        limits,
        started: Instant::now(),
        conns: Mutex::new(HashMap::new()),
        bites: Bites::new(),
    });
    let stopping = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(Notify::new());
    let sweeper = {
        let edge = edge.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    _ = tick.tick() => edge.sweep(),
                    _ = stop.notified() => return,
                }
            }
        })
    };
    let mut tasks = tokio::task::JoinSet::new();
    let mut next_id = 0u64;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: wait a moment instead of spinning.
                    edge.bites.bite(Bite::Accept, None);
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        if !edge.admit() {
            edge.bites.bite(Bite::Refused, Some(peer));
            tasks.spawn(async move {
                let mut stream = stream;
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), stream.write_all(BUSY_RESPONSE))
                        .await;
            });
            continue;
        }
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let id = next_id;
        let conn = Arc::new(Conn {
            peer,
            phase: AtomicU8::new(IDLE),
            since_ms: AtomicU64::new(edge.now_ms()),
            close: Notify::new(),
            closed_for: Mutex::new(None),
        });
        edge.conns
            .lock()
            .expect("conns lock")
            .insert(id, conn.clone());
        tasks.spawn(connection(
            edge.clone(),
            id,
            conn,
            stream,
            app.clone(),
            api.clone(),
            handshake.clone(),
            stopping.clone(),
        ));
    }
    drop(listener);
    stopping.store(true, Ordering::Relaxed);
    // Every connection: finish what is in flight, then close.
    stop.notify_waiters();
    let conns = edge.open();
    for conn in conns {
        conn.close.notify_one();
    }
    while tasks.join_next().await.is_some() {}
    sweeper.abort();
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn connection(
    edge: Arc<Edge>,
    id: u64,
    conn: Arc<Conn>,
    stream: TcpStream,
    app: Router,
    api: Api,
    handshake: Handshake,
    stopping: Arc<AtomicBool>,
) {
    let peer = conn.peer;
    // The handshake (TLS) counts as reading the head: it must end in header_read_timeout.
    edge.set_phase(&conn, HEAD);
    let established = tokio::select! {
        io = handshake(stream) => io,
        _ = conn.close.notified() => None,
    };
    let Some((io, transport)) = established else {
        edge.conns.lock().expect("conns lock").remove(&id);
        return;
    };
    edge.set_phase(&conn, IDLE);
    let io = TokioIo::new(Tracked {
        inner: io,
        conn: conn.clone(),
        edge: edge.clone(),
    });
    let service = {
        let edge = edge.clone();
        let conn = conn.clone();
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let edge = edge.clone();
            let conn = conn.clone();
            let app = app.clone();
            let api = api.clone();
            async move {
                edge.set_phase(&conn, BUSY);
                let limits = &edge.limits;
                let mut request = request.map(|inner| {
                    Body::new(TimedBody {
                        inner,
                        deadline_at: tokio::time::Instant::now() + limits.body_read_timeout,
                        deadline: None,
                        edge: edge.clone(),
                        peer,
                        done: false,
                    })
                });
                let (client, secure) = client_of(
                    peer,
                    transport.tls,
                    request.headers(),
                    &limits.trusted_proxies,
                );
                request.extensions_mut().insert(ConnectInfo(client));
                request.extensions_mut().insert(Transport { tls: secure });
                let call = async move {
                    if request.method() == http::Method::POST && request.uri().path() == "/" {
                        return api(request).await;
                    }
                    match tower::ServiceExt::oneshot(app, request).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    }
                };
                let response = match tokio::time::timeout(limits.request_timeout, call).await {
                    Ok(response) => response,
                    Err(_) => {
                        edge.bites.bite(Bite::Request, Some(peer));
                        request_timeout_response(&format!(
                            "The request was not served within {} seconds.",
                            limits.request_timeout.as_secs()
                        ))
                    }
                };
                edge.set_phase(&conn, IDLE);
                Ok::<_, std::convert::Infallible>(response)
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // The sweeper enforces the head's deadline (from its first byte, not from the end
        // of the previous response, so an idle keep-alive connection has idle_timeout).
        .header_read_timeout(None)
        .keep_alive(true)
        .max_buf_size(edge.limits.max_header_bytes.max(8192));
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut graceful = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                break;
            }
            _ = conn.close.notified(), if !graceful => {
                if stopping.load(Ordering::Relaxed) {
                    // Shutdown: finish the request in flight, then close.
                    graceful = true;
                    connection.as_mut().graceful_shutdown();
                } else {
                    // A limit: close now (dropping the connection closes the socket).
                    let why = conn.closed_for.lock().expect("conn lock").take();
                    tracing::debug!(%peer, limit = why.map(Bite::name).unwrap_or_default(), "connection closed");
                    break;
                }
            }
        }
    }
    edge.conns.lock().expect("conns lock").remove(&id);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let h = headers(&[
            ("x-forwarded-for", "1.1.1.1, 203.0.113.7"),
            ("x-forwarded-proto", "https"),
        ]);
        let proxy: SocketAddr = "10.1.2.3:5000".parse().unwrap();
        let (client, secure) = client_of(proxy, false, &h, &trusted);
        // The client-written 1.1.1.1 is not believed: the proxy saw 203.0.113.7.
        assert_eq!(client.ip().to_string(), "203.0.113.7");
        assert!(secure);
        let stranger: SocketAddr = "192.0.2.9:5000".parse().unwrap();
        assert_eq!(client_of(stranger, false, &h, &trusted), (stranger, false));
        assert_eq!(client_of(proxy, false, &h, &[]), (proxy, false));
        // A chain of trusted proxies is walked; an IPv4-mapped peer counts as IPv4.
        let h = headers(&[("x-forwarded-for", "198.51.100.1, 10.9.9.9")]);
        let mapped: SocketAddr = "[::ffff:10.1.2.3]:1".parse().unwrap();
        let (client, secure) = client_of(mapped, true, &h, &trusted);
        assert_eq!(client.ip().to_string(), "198.51.100.1");
        assert!(secure, "no X-Forwarded-Proto: the connection's own TLS");
        let h = headers(&[("x-forwarded-proto", "http")]);
        assert!(!client_of(proxy, true, &h, &trusted).1);
    }
}
