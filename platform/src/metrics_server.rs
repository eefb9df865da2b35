//! The Prometheus scrape endpoint, server side: a minimal HTTP/1.x server that answers
//! `GET /metrics` (and `HEAD`) with a body the caller renders, one request per connection.
//!
//! Owns: the listening TCP socket, at most `MAX_CONNS` connections, and their fixed request and
//! response buffers (allocated once, at `bind`). Must not: know what the metrics are (the caller
//! renders them into a [`Body`]), or block the caller's event loop.
//!
//! # Theory of operation
//! ```text
//!  accept ─> Reading ──request head complete──> render into the slot's buffer ─> Writing
//!              │  (fixed MAX_REQUEST bytes)                                        │ all sent
//!              ├─ head does not fit / malformed ─> 400 ──────────────────────────> │
//!              ├─ not GET/HEAD ─> 405, not /metrics ─> 404 ──────────────────────> │
//!              └─ EOF / error ─> closed                                            ▼
//!                                                  shutdown(WR) ─> Lingering (read, discard)
//!                                                                    ├─ EOF / error ─> closed
//!                                                                    └─ > MAX_INPUT ─> closed
//!  all MAX_CONNS slots busy ─> a new connection replaces the oldest one still Reading
//!                              (else the oldest)            (any state) now >= deadline ─> closed
//! ```
//! Every reply says `Connection: close`: one request per connection keeps a slot's life short
//! and bounded (Prometheus opens a new connection on its next scrape). Lingering before the
//! close, as the agent-check server does, keeps unread input from turning the close into a
//! reset that could discard the reply in the peer's receive queue.
//!
//! # Invariants
//! * At most `MAX_CONNS` connections are held; each has its own request buffer (`MAX_REQUEST`)
//!   and response buffer (`MAX_RESPONSE`), so a slow reader never holds up another scrape and a
//!   reply is never rewritten while it is being sent.
//! * A connection never outlives its deadline (`conn_timeout` after accept, as seen by `now`).
//! * `service` never blocks: every socket is non-blocking, and accepts per call are bounded.
//! * No allocation after `bind`: accept, parse (`httparse` over a stack header array), render,
//!   write, read and close use the fixed buffers only.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

/// Connections held at once. One or two Prometheus servers scrape a node (an HA pair of them);
/// the rest is room for `curl` and for replacing idle connections.
pub const MAX_CONNS: usize = 4;
/// Largest request head (request line and headers), bytes. Prometheus sends about 300 bytes
/// (`Accept`, `User-Agent`, `X-Prometheus-Scrape-Timeout-Seconds`...).
pub const MAX_REQUEST: usize = 2048;
/// Largest response, head included, bytes. A pair node's exposition is about 5.5 KiB; the
/// largest there can be (every event kind, eight links, every counter at its maximum) is
/// about 13.4 KiB (`metrics::tests::the_largest_output_fits_the_response_buffer` in the agent).
pub const MAX_RESPONSE: usize = 16 * 1024;
/// Room kept for the response head in front of the body.
const HEAD_ROOM: usize = 256;
/// Most bytes read from one peer after its request (a body nobody asked for), then it is cut off.
pub const MAX_INPUT: usize = 4096;
/// Default per-connection deadline: Prometheus' default `scrape_timeout` is 10 s; a connection
/// that has not sent its request and read the reply by then is not a scrape that will succeed.
pub const CONN_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes read per `read(2)` while discarding input (a stack buffer).
const DISCARD_CHUNK: usize = 512;
/// Accepts per `service` call at most, so a connect flood cannot hold the loop in accept.
const MAX_ACCEPTS_PER_SERVICE: usize = 4 * MAX_CONNS;
/// How long accepting pauses after accept(2) fails for lack of resources (EMFILE, ENOBUFS...),
/// so that a listener that stays readable does not spin the loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Headers parsed at most; a request with more is answered 400.
const MAX_HEADERS: usize = 32;
/// The exposition format's content type (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Errors of the metrics server, naming the address.
#[derive(Debug)]
pub enum Error {
    /// `bind(2)`/`listen(2)` on the configured address failed.
    Bind { addr: SocketAddr, source: io::Error },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Bind { addr, source } => {
                write!(
                    f,
                    "cannot listen for Prometheus scrapes on {addr}: {source}"
                )
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Bind { source, .. } => Some(source),
        }
    }
}

/// What a registration waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    Read,
    Write,
}

/// Counters since `bind` (for tests and the status report).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Connections accepted.
    pub accepted: u64,
    /// `GET /metrics` answered 200 (the body rendered).
    pub scrapes: u64,
    /// Requests answered 400, 404, 405 or 500.
    pub refused: u64,
    /// Connections closed to make room for a new one.
    pub evicted: u64,
    /// Connections closed at their deadline.
    pub expired: u64,
    /// Bodies that did not fit in `MAX_RESPONSE` (answered 500).
    pub overflowed: u64,
}

/// A response body being rendered: `fmt::Write` into the slot's fixed buffer. Writing past
/// the end fails (and marks the body overflowed) instead of allocating.
pub struct Body<'a> {
    buf: &'a mut [u8],
    len: usize,
    overflow: bool,
}

impl<'a> Body<'a> {
    /// A body over `buf` (also for rendering outside the server, e.g. into a file buffer).
    pub fn new(buf: &'a mut [u8]) -> Body<'a> {
        Body {
            buf,
            len: 0,
            overflow: false,
        }
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Something did not fit.
    pub fn overflowed(&self) -> bool {
        self.overflow
    }
}

impl fmt::Write for Body<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            self.overflow = true;
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The listening socket and its connections.
pub struct MetricsServer {
    listener: TcpListener,
    addr: SocketAddr,
    conn_timeout: Duration,
    slots: Vec<Slot>,
    accept_paused_until: Option<Instant>,
    accept_failing: bool,
    counters: Counters,
}

/// One connection's place: its buffers live as long as the server.
struct Slot {
    req: Box<[u8]>,
    out: Box<[u8]>,
    conn: Option<Conn>,
}

struct Conn {
    stream: TcpStream,
    accepted_at: Instant,
    deadline: Instant,
    /// Request bytes read into the slot's `req`.
    req_len: usize,
    /// The response is `out[start..end]`; `sent` bytes of it are written.
    start: usize,
    end: usize,
    sent: usize,
    /// Bytes read from the peer after its request and discarded.
    input: usize,
    phase: Phase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Reading,
    Writing,
    Lingering,
}

/// What a request head asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Read more.
    Incomplete,
    /// `GET /metrics` (`head_only` for `HEAD`).
    Metrics { head_only: bool },
    /// An error status with its reason phrase.
    Refuse(u16, &'static str),
}

/// Judges the request head in `req` (no allocation: the headers are parsed into a stack array).
fn judge(req: &[u8], full: bool) -> Verdict {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut r = httparse::Request::new(&mut headers);
    match r.parse(req) {
        Ok(httparse::Status::Partial) if full => Verdict::Refuse(400, "Bad Request"),
        Ok(httparse::Status::Partial) => Verdict::Incomplete,
        Err(_) => Verdict::Refuse(400, "Bad Request"),
        Ok(httparse::Status::Complete(_)) => {
            let head_only = match r.method {
                Some("GET") => false,
                Some("HEAD") => true,
                _ => return Verdict::Refuse(405, "Method Not Allowed"),
            };
            // The query string (Prometheus sends none unless `params` is set) is ignored.
            let path = r.path.unwrap_or("");
            let path = path.split_once('?').map_or(path, |(p, _)| p);
            if path == "/metrics" {
                Verdict::Metrics { head_only }
            } else {
                Verdict::Refuse(404, "Not Found")
            }
        }
    }
}

impl MetricsServer {
    /// Listens on `addr` (SO_REUSEADDR, non-blocking) and allocates every buffer it will use.
    pub fn bind(addr: SocketAddr, conn_timeout: Duration) -> Result<MetricsServer, Error> {
        let bind_err = |source| Error::Bind { addr, source };
        let listener = TcpListener::bind(addr).map_err(bind_err)?;
        listener.set_nonblocking(true).map_err(bind_err)?;
        let bound = listener.local_addr().map_err(bind_err)?;
        let slots = (0..MAX_CONNS)
            .map(|_| Slot {
                req: vec![0u8; MAX_REQUEST].into_boxed_slice(),
                out: vec![0u8; MAX_RESPONSE].into_boxed_slice(),
                conn: None,
            })
            .collect();
        Ok(MetricsServer {
            listener,
            addr: bound,
            conn_timeout,
            slots,
            accept_paused_until: None,
            accept_failing: false,
            counters: Counters::default(),
        })
    }

    /// The address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Connections held right now.
    pub fn connections(&self) -> usize {
        self.slots.iter().filter(|s| s.conn.is_some()).count()
    }

    /// Everything to poll: the listener (unless accepting is paused) and each connection.
    pub fn poll_items<'a>(&'a self, out: &mut dyn FnMut(BorrowedFd<'a>, Interest)) {
        if self.accept_paused_until.is_none() {
            out(self.listener.as_fd(), Interest::Read);
        }
        for c in self.slots.iter().filter_map(|s| s.conn.as_ref()) {
            let i = match c.phase {
                Phase::Writing => Interest::Write,
                Phase::Reading | Phase::Lingering => Interest::Read,
            };
            out(c.stream.as_fd(), i);
        }
    }

    /// The earliest moment `service` has something to do without readiness: a connection's
    /// deadline or the end of an accept pause.
    pub fn deadline(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter_map(|s| s.conn.as_ref())
            .map(|c| c.deadline)
            .chain(self.accept_paused_until)
            .min()
    }

    /// Expires, accepts, reads requests, renders and writes replies; never blocks. Call it after
    /// every poll (every operation is a non-blocking attempt). `render` is called once per
    /// `GET` or `HEAD /metrics` (`HEAD` renders too, for its `Content-Length`).
    pub fn service(&mut self, now: Instant, render: &mut dyn FnMut(&mut Body<'_>)) {
        for slot in self.slots.iter_mut() {
            if slot.conn.as_ref().is_some_and(|c| now >= c.deadline) {
                slot.conn = None;
                self.counters.expired += 1;
            }
        }
        self.accept(now);
        for slot in self.slots.iter_mut() {
            if slot.conn.is_some() && !slot.progress(&mut self.counters, render) {
                slot.conn = None;
            }
        }
    }

    fn accept(&mut self, now: Instant) {
        if let Some(until) = self.accept_paused_until {
            if now < until {
                return;
            }
            self.accept_paused_until = None;
        }
        for _ in 0..MAX_ACCEPTS_PER_SERVICE {
            let stream = match self.listener.accept() {
                Ok((stream, _peer)) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if is_transient(&e) => continue,
                Err(e) => {
                    if !self.accept_failing {
                        log::warn!(
                            "metrics on {}: accept failed ({e}); pausing accepts",
                            self.addr
                        );
                    }
                    self.accept_failing = true;
                    self.accept_paused_until = Some(now + ACCEPT_BACKOFF);
                    return;
                }
            };
            if self.accept_failing {
                log::info!("metrics on {}: accepting again", self.addr);
                self.accept_failing = false;
            }
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            self.counters.accepted += 1;
            let i = match self.slots.iter().position(|s| s.conn.is_none()) {
                Some(i) => i,
                None => {
                    // Full: the oldest connection that has not even sent its request is the
                    // likeliest idle or abusive one; one that is being answered goes last.
                    let oldest = |reading: bool| {
                        self.slots
                            .iter()
                            .enumerate()
                            .filter_map(|(i, s)| s.conn.as_ref().map(|c| (c, i)))
                            .filter(|(c, _)| !reading || c.phase == Phase::Reading)
                            .map(|(c, i)| (c.accepted_at, i))
                            .min()
                            .map(|(_, i)| i)
                    };
                    self.counters.evicted += 1;
                    oldest(true).or_else(|| oldest(false)).unwrap_or(0)
                }
            };
            self.slots[i].conn = Some(Conn {
                stream,
                accepted_at: now,
                deadline: now + self.conn_timeout,
                req_len: 0,
                start: 0,
                end: 0,
                sent: 0,
                input: 0,
                phase: Phase::Reading,
            });
        }
    }
}

/// accept(2) failures that concern one connection only (the next accept may succeed).
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ECONNABORTED | libc::EINTR | libc::EPROTO | libc::EPERM)
    )
}

impl Slot {
    /// Moves the connection on as far as it goes without blocking. `false`: close it.
    fn progress(&mut self, counters: &mut Counters, render: &mut dyn FnMut(&mut Body<'_>)) -> bool {
        let Some(c) = self.conn.as_mut() else {
            return false;
        };
        if c.phase == Phase::Reading {
            loop {
                if c.req_len == self.req.len() {
                    break;
                }
                match c.stream.read(&mut self.req[c.req_len..]) {
                    Ok(0) => return false,
                    Ok(n) => {
                        c.req_len += n;
                        if judge(&self.req[..c.req_len], false) != Verdict::Incomplete {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return false,
                }
            }
            let full = c.req_len == self.req.len();
            match judge(&self.req[..c.req_len], full) {
                Verdict::Incomplete => return true,
                Verdict::Metrics { head_only } => {
                    let (start, end, ok) = respond_metrics(&mut self.out, head_only, render);
                    if ok {
                        counters.scrapes += 1;
                    } else {
                        counters.overflowed += 1;
                        counters.refused += 1;
                    }
                    (c.start, c.end) = (start, end);
                }
                Verdict::Refuse(code, reason) => {
                    counters.refused += 1;
                    (c.start, c.end) = respond_error(&mut self.out, code, reason);
                }
            }
            c.sent = c.start;
            c.phase = Phase::Writing;
        }
        if c.phase == Phase::Writing {
            while c.sent < c.end {
                match c.stream.write(&self.out[c.sent..c.end]) {
                    Ok(0) => return false,
                    Ok(n) => c.sent += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return false,
                }
            }
            if c.stream.shutdown(Shutdown::Write).is_err() {
                return false;
            }
            c.phase = Phase::Lingering;
        }
        let mut scratch = [0u8; DISCARD_CHUNK];
        loop {
            match c.stream.read(&mut scratch) {
                Ok(0) => return false,
                Ok(n) => {
                    c.input += n;
                    if c.input > MAX_INPUT {
                        return false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }
}

/// Renders the body behind `HEAD_ROOM`, then writes the head just in front of it. Returns the
/// response's range in `out` and whether the body fit (else a 500 is there instead).
fn respond_metrics(
    out: &mut [u8],
    head_only: bool,
    render: &mut dyn FnMut(&mut Body<'_>),
) -> (usize, usize, bool) {
    let (len, fit) = {
        let mut body = Body::new(&mut out[HEAD_ROOM..]);
        render(&mut body);
        (body.len(), !body.overflowed())
    };
    if !fit {
        let (s, e) = respond_error(out, 500, "Internal Server Error");
        return (s, e, false);
    }
    let mut head = heapless::String::<HEAD_ROOM>::new();
    // Cannot fail: the head is well under HEAD_ROOM bytes.
    let _ = fmt::Write::write_fmt(
        &mut head,
        format_args!(
            "HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {len}\r\n\
             Connection: close\r\n\r\n"
        ),
    );
    let start = HEAD_ROOM - head.len();
    out[start..HEAD_ROOM].copy_from_slice(head.as_bytes());
    let end = if head_only {
        HEAD_ROOM
    } else {
        HEAD_ROOM + len
    };
    (start, end, true)
}

/// An error response with a one-line text body.
fn respond_error(out: &mut [u8], code: u16, reason: &str) -> (usize, usize) {
    let mut r = Body::new(out);
    let allow = if code == 405 {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let body_len = reason.len() + 1;
    // Cannot fail: a few hundred bytes into MAX_RESPONSE.
    let _ = fmt::Write::write_fmt(
        &mut r,
        format_args!(
            "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: {body_len}\r\n{allow}Connection: close\r\n\r\n{reason}\n"
        ),
    );
    (0, r.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write as _;

    fn loopback() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }

    /// Per-connection deadline of the test servers: long, so that a slow, shared machine never
    /// expires a connection before the test looks (expiry is driven by passing a later `now`).
    const TEST_TIMEOUT: Duration = Duration::from_secs(60);

    fn render(b: &mut Body<'_>) {
        let _ = b.write_str("# TYPE x gauge\nx 1\n");
    }

    fn connect(s: &MetricsServer) -> TcpStream {
        let c = TcpStream::connect(s.local_addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c
    }

    /// Services until `cond` holds, waiting on the real sockets (bounded).
    fn service_until(
        s: &mut MetricsServer,
        what: &str,
        mut cond: impl FnMut(&MetricsServer) -> bool,
    ) {
        let give_up = Instant::now() + Duration::from_secs(10);
        loop {
            s.service(Instant::now(), &mut render);
            if cond(s) {
                return;
            }
            assert!(Instant::now() < give_up, "gave up waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends `request`, services until the peer has its whole reply, returns it.
    fn exchange(s: &mut MetricsServer, request: &[u8]) -> String {
        let mut c = connect(s);
        c.write_all(request).unwrap();
        c.set_nonblocking(true).unwrap();
        let mut got = Vec::new();
        let give_up = Instant::now() + Duration::from_secs(10);
        loop {
            s.service(Instant::now(), &mut render);
            let mut buf = [0u8; 4096];
            match c.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
            assert!(Instant::now() < give_up, "no complete reply: {got:?}");
            std::thread::sleep(Duration::from_millis(2));
        }
        String::from_utf8(got).unwrap()
    }

    #[test]
    fn answers_get_metrics_with_the_rendered_body() {
        let mut s = MetricsServer::bind(loopback(), TEST_TIMEOUT).unwrap();
        let got = exchange(
            &mut s,
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n",
        );
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
        assert!(got.contains(&format!("Content-Type: {CONTENT_TYPE}\r\n")));
        assert!(got.contains("Content-Length: 19\r\n"), "{got}");
        assert!(got.ends_with("\r\n\r\n# TYPE x gauge\nx 1\n"), "{got}");
        assert_eq!(s.counters().scrapes, 1);
    }

    #[test]
    fn head_has_the_length_but_no_body() {
        let mut s = MetricsServer::bind(loopback(), TEST_TIMEOUT).unwrap();
        let got = exchange(&mut s, b"HEAD /metrics HTTP/1.0\r\n\r\n");
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
        assert!(got.contains("Content-Length: 19\r\n"));
        assert!(got.ends_with("\r\n\r\n"), "{got}");
    }

    #[test]
    fn other_requests_are_refused_with_their_status() {
        let mut s = MetricsServer::bind(loopback(), TEST_TIMEOUT).unwrap();
        for (req, status) in [
            (&b"GET / HTTP/1.1\r\n\r\n"[..], "404 Not Found"),
            (b"GET /metricsx HTTP/1.1\r\n\r\n", "404 Not Found"),
            (b"POST /metrics HTTP/1.1\r\n\r\n", "405 Method Not Allowed"),
            (b"garbage\r\n\r\n", "400 Bad Request"),
            (b"GET /metrics HTTP/9.9\r\n\r\n", "400 Bad Request"),
        ] {
            let got = exchange(&mut s, req);
            assert!(
                got.starts_with(&format!("HTTP/1.1 {status}\r\n")),
                "{req:?}: {got}"
            );
        }
        let got = exchange(&mut s, b"PUT /metrics HTTP/1.1\r\n\r\n");
        assert!(got.contains("Allow: GET, HEAD\r\n"), "{got}");
        assert_eq!(s.counters().refused, 6);
        assert_eq!(s.counters().scrapes, 0);
    }

    #[test]
    fn a_request_head_larger_than_the_buffer_is_refused() {
        let mut s = MetricsServer::bind(loopback(), TEST_TIMEOUT).unwrap();
        let mut req = b"GET /metrics HTTP/1.1\r\nX-Pad: ".to_vec();
        req.resize(MAX_REQUEST + 10, b'a');
        let got = exchange(&mut s, &req);
        assert!(got.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{got}");
    }

    #[test]
    fn a_request_in_pieces_is_answered_when_complete() {
        let mut s = MetricsServer::bind(loopback(), TEST_TIMEOUT).unwrap();
        let mut c = connect(&s);
        c.write_all(b"GET /metr").unwrap();
        service_until(&mut s, "accept", |s| s.connections() == 1);
        s.service(Instant::now(), &mut render);
        assert_eq!(s.counters().scrapes, 0);
        c.write_all(b"ics HTTP/1.1\r\n\r\n").unwrap();
        service_until(&mut s, "the scrape", |s| s.counters().scrapes == 1);
        let mut got = String::new();
        c.read_to_string(&mut got).unwrap();
        assert!(got.starts_with("HTTP/1.1 200 OK"), "{got}");
    }

    #[test]
    fn idle_clients_are_bounded_and_a_fresh_scrape_is_still_answered() {
        let mut s = MetricsServer::bind(loopback(), TEST_TIMEOUT).unwrap();
        // Three times as many silent clients as slots: they connect and then send nothing.
        let _silent: Vec<TcpStream> = (0..3 * MAX_CONNS).map(|_| connect(&s)).collect();
        service_until(&mut s, "all accepted", |s| {
            s.counters().accepted == 3 * MAX_CONNS as u64
        });
        assert_eq!(s.connections(), MAX_CONNS);
        assert_eq!(s.counters().evicted, 2 * MAX_CONNS as u64);
        let got = exchange(&mut s, b"GET /metrics HTTP/1.1\r\n\r\n");
        assert!(got.starts_with("HTTP/1.1 200 OK"), "{got}");
        // At the deadline, whatever is left goes.
        s.service(
            Instant::now() + TEST_TIMEOUT + Duration::from_millis(1),
            &mut render,
        );
        assert_eq!(s.connections(), 0);
        assert!(s.counters().expired >= 1);
        assert_eq!(s.deadline(), None);
    }

    #[test]
    fn a_body_that_does_not_fit_is_a_500_not_an_allocation() {
        let mut s = MetricsServer::bind(loopback(), TEST_TIMEOUT).unwrap();
        let mut c = connect(&s);
        c.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        let big = "x".repeat(1000);
        let give_up = Instant::now() + Duration::from_secs(10);
        while s.counters().overflowed == 0 {
            s.service(Instant::now(), &mut |b: &mut Body<'_>| {
                while b.write_str(&big).is_ok() {}
            });
            assert!(Instant::now() < give_up);
            std::thread::sleep(Duration::from_millis(2));
        }
        // The 500 went out, with the FIN, in the same call.
        let mut got = String::new();
        c.read_to_string(&mut got).unwrap();
        assert!(got.starts_with("HTTP/1.1 500"), "{got}");
    }

    #[test]
    fn bind_errors_name_the_address() {
        let taken = TcpListener::bind(loopback()).unwrap();
        let addr = taken.local_addr().unwrap();
        let err = MetricsServer::bind(addr, CONN_TIMEOUT).err().unwrap();
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }
}
