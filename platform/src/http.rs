//! The `/status` probe: one HTTP/1.0 GET over a non-blocking TCP socket, with a deadline, read
//! into a fixed buffer.
//!
//! Must not: classify the answer (healthy or not is the state machine's call): it reports the
//! HTTP status and the `state` field it found, or why it found none.
//!
//! # Theory of operation
//! ```text
//!          start                   writable,            request          reply complete
//!   Idle ─────────> Connecting ──SO_ERROR = 0──> Sending ──all sent──> Reading ─────────────> Idle
//!                       │                          │ (partial writes)     │ (EOF, Content-Length   + outcome
//!                       │                          │                      │  met, or last chunk)
//!                       └───── socket error, now >= deadline, malformed/oversized reply ─────> Idle
//!                                                                                           + Failed(..)
//! ```
//! The event loop polls `interest()` until `deadline()` and calls `advance(now)` after each
//! wake-up; `advance` returns the outcome exactly once. The deadline is final: `advance` with
//! `now` at or past it reports `Timeout` without looking at the socket.
//!
//! The request says `HTTP/1.0` and `Connection: close`, so the reply ends at `Content-Length`
//! or at EOF. A server that sends `Transfer-Encoding: chunked` anyway is tolerated: the chunks
//! are decoded (into a stack copy) and the reply ends at the last chunk; trailers are ignored.
//!
//! # Invariants
//! * No allocation after `HttpProbe::new`: the request bytes are built once per `StatusTarget`
//!   and the reply is read into the probe's own buffer. The JSON body is read by a small
//!   scanner (`body_state`), not serde_json, because serde_json allocates to skip a nested
//!   value it ignores (e.g. a `progress` object next to `"state":"STARTING"`).
//! * A reply larger than `REPLY_CAPACITY` is a failure (`TooLarge`), never a partial parse.
//! * The probe never blocks: `start` only begins a connect; progress happens in `advance`.
//! * At most one socket is open; it is closed when the outcome is returned, on `cancel`, and
//!   when `start` begins a new probe.

use std::net::{SocketAddr, ToSocketAddrs};

use bbwd_core::status_url::{Host, StatusUrl};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{self, MsgFlags};

use crate::tcp::{self, Connecting};

pub use bbwd_core::probe::REPLY_CAPACITY;

/// Most response headers looked at; more is `Malformed` (Tomcat sends under ten).
const MAX_HEADERS: usize = 32;

/// Where to probe, parsed from `bitbucket.status_url` once.
#[derive(Debug, Clone)]
pub struct StatusTarget {
    pub addr: SocketAddr,
    /// The complete request, at most `REPLY_CAPACITY` bytes (it is staged in the probe's
    /// buffer while sending).
    request: Box<[u8]>,
}

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlError(pub String);

impl std::fmt::Display for UrlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for UrlError {}

impl StatusTarget {
    /// Parses `http://HOST[:PORT]/PATH` with the one parser of the URL
    /// ([`bbwd_core::status_url`]: its rules and reasons), then resolves a host name once, here,
    /// blocking, at start-up: the first address the resolver gives is probed from then on.
    pub fn parse(url: &str) -> Result<StatusTarget, UrlError> {
        let err = |why: &str| UrlError(format!("status_url {url:?}: {why}"));
        let parsed = StatusUrl::parse(url).map_err(|why| err(&why))?;
        let ip = match &parsed.host {
            Host::Ip(ip) => *ip,
            Host::Name(host) => match (host.as_str(), parsed.port).to_socket_addrs() {
                Ok(mut addrs) => match addrs.next() {
                    Some(addr) => addr.ip(),
                    None => return Err(err(&format!("host {host} resolves to no address"))),
                },
                Err(e) => return Err(err(&format!("cannot resolve host {host}: {e}"))),
            },
        };
        Ok(StatusTarget {
            addr: SocketAddr::new(ip, parsed.port),
            request: parsed.request().into_bytes().into_boxed_slice(),
        })
    }

    /// The request bytes sent for each probe.
    pub fn request(&self) -> &[u8] {
        &self.request
    }
}

pub use bbwd_core::probe::{BbState, ProbeFailure, ProbeOutcome};

/// A reusable probe; one request in flight at most.
pub struct HttpProbe {
    /// While sending: the request in `[..request_len]`. While reading: the reply in `[..len]`.
    buf: Box<[u8; REPLY_CAPACITY]>,
    request_len: usize,
    len: usize,
    flight: Option<InFlight>,
}

struct InFlight {
    fd: OwnedFd,
    deadline: Instant,
    phase: Phase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    Sending { sent: usize },
    Reading,
}

impl HttpProbe {
    pub fn new() -> Self {
        HttpProbe {
            buf: Box::new([0; REPLY_CAPACITY]),
            request_len: 0,
            len: 0,
            flight: None,
        }
    }
    /// Begins a probe. An immediate failure (e.g. refused on a local connect) is returned and
    /// nothing is in flight. A probe still in flight is abandoned first.
    pub fn start(
        &mut self,
        target: &StatusTarget,
        now: Instant,
        timeout: Duration,
    ) -> Result<(), ProbeOutcome> {
        self.cancel();
        // `parse` guarantees the request fits; `min` keeps a hand-made target from panicking.
        let request_len = target.request.len().min(REPLY_CAPACITY);
        self.buf[..request_len].copy_from_slice(&target.request[..request_len]);
        self.request_len = request_len;
        self.len = 0;
        let (fd, phase) = match tcp::begin_connect(target.addr) {
            Ok(Connecting::InProgress(fd)) => (fd, Phase::Connecting),
            Ok(Connecting::Done(fd)) => (fd, Phase::Sending { sent: 0 }),
            Err(errno) => return Err(ProbeOutcome::Failed(connect_failure(errno))),
        };
        self.flight = Some(InFlight {
            fd,
            deadline: tcp::deadline_after(now, timeout),
            phase,
        });
        Ok(())
    }
    pub fn in_flight(&self) -> bool {
        self.flight.is_some()
    }
    /// The socket and whether to wait for writability (connecting/sending) or readability.
    pub fn interest(&self) -> Option<(BorrowedFd<'_>, Interest)> {
        let flight = self.flight.as_ref()?;
        let interest = match flight.phase {
            Phase::Connecting | Phase::Sending { .. } => Interest::Writable,
            Phase::Reading => Interest::Readable,
        };
        Some((flight.fd.as_fd(), interest))
    }
    pub fn deadline(&self) -> Option<Instant> {
        self.flight.as_ref().map(|f| f.deadline)
    }
    /// Advances the probe after poll said the socket is ready, or the deadline passed.
    /// Returns the outcome once, when done. Calling it spuriously is harmless.
    pub fn advance(&mut self, now: Instant) -> Option<ProbeOutcome> {
        let deadline = self.flight.as_ref()?.deadline;
        let outcome = if now >= deadline {
            ProbeOutcome::Failed(ProbeFailure::Timeout)
        } else {
            match self.step() {
                Ok(None) => return None,
                Ok(Some(outcome)) => outcome,
                Err(failure) => ProbeOutcome::Failed(failure),
            }
        };
        self.cancel();
        Some(outcome)
    }
    /// Abandons a probe in flight (closes the socket).
    pub fn cancel(&mut self) {
        self.flight = None;
    }

    /// Makes all the progress the socket allows now. `Ok(None)`: wait for `interest()` again.
    fn step(&mut self) -> Result<Option<ProbeOutcome>, ProbeFailure> {
        let HttpProbe {
            buf,
            request_len,
            len,
            flight,
        } = self;
        let Some(flight) = flight.as_mut() else {
            return Ok(None);
        };
        loop {
            match flight.phase {
                Phase::Connecting => match tcp::poll_connected(flight.fd.as_fd()) {
                    Ok(false) => return Ok(None),
                    Ok(true) => flight.phase = Phase::Sending { sent: 0 },
                    Err(errno) => return Err(connect_failure(errno)),
                },
                Phase::Sending { sent } if sent >= *request_len => {
                    *len = 0;
                    flight.phase = Phase::Reading;
                }
                Phase::Sending { sent } => {
                    match socket::send(
                        flight.fd.as_raw_fd(),
                        &buf[sent..*request_len],
                        MsgFlags::MSG_NOSIGNAL,
                    ) {
                        Ok(n) => flight.phase = Phase::Sending { sent: sent + n },
                        Err(Errno::EAGAIN) => return Ok(None),
                        Err(Errno::EINTR) => {}
                        Err(errno) => return Err(io_failure(errno)),
                    }
                }
                Phase::Reading => {
                    // Once the buffer is full, one more byte (or EOF) decides between a reply
                    // of exactly REPLY_CAPACITY bytes and TooLarge.
                    let mut overflow = [0u8; 1];
                    let full = *len >= REPLY_CAPACITY;
                    let dst: &mut [u8] = if full {
                        &mut overflow
                    } else {
                        &mut buf[*len..]
                    };
                    match socket::recv(flight.fd.as_raw_fd(), dst, MsgFlags::empty()) {
                        Ok(0) => {
                            return parse_reply(&buf[..*len], true)?
                                .map(Some)
                                .ok_or(ProbeFailure::Truncated);
                        }
                        Ok(_) if full => return Err(ProbeFailure::TooLarge),
                        Ok(n) => {
                            *len += n;
                            if let Some(outcome) = parse_reply(&buf[..*len], false)? {
                                return Ok(Some(outcome));
                            }
                        }
                        Err(Errno::EAGAIN) => return Ok(None),
                        Err(Errno::EINTR) => {}
                        Err(errno) => return Err(io_failure(errno)),
                    }
                }
            }
        }
    }
}

impl Default for HttpProbe {
    fn default() -> Self {
        Self::new()
    }
}

fn connect_failure(errno: Errno) -> ProbeFailure {
    match errno {
        Errno::ECONNREFUSED => ProbeFailure::Refused,
        other => io_failure(other),
    }
}

fn io_failure(errno: Errno) -> ProbeFailure {
    match errno {
        Errno::ETIMEDOUT => ProbeFailure::Timeout,
        other => ProbeFailure::Io(other as i32),
    }
}

/// Readiness a socket waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    Readable,
    Writable,
}

/// Parses a complete reply held in `buf` (exposed for tests and fuzzing).
///
/// `Ok(None)`: need more bytes (only when `eof` is false). `eof` says the peer closed after
/// `buf`: a reply without `Content-Length` ends there, and anything incomplete is `Truncated`.
/// A `Content-Length` that cannot fit in `REPLY_CAPACITY` is `TooLarge` at once. Never panics
/// and never allocates.
pub fn parse_reply(buf: &[u8], eof: bool) -> Result<Option<ProbeOutcome>, ProbeFailure> {
    let need_more = if eof {
        Err(ProbeFailure::Truncated)
    } else {
        Ok(None)
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let header_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return need_more,
        Err(_) => return Err(ProbeFailure::Malformed),
    };
    let http_status = response.code.ok_or(ProbeFailure::Malformed)?;

    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = parse_decimal(header.value).ok_or(ProbeFailure::Malformed)?;
            if content_length.is_some_and(|seen| seen != value) {
                return Err(ProbeFailure::Malformed);
            }
            content_length = Some(value);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            for coding in header.value.split(|&b| b == b',') {
                let coding = coding.trim_ascii();
                if coding.eq_ignore_ascii_case(b"chunked") {
                    chunked = true;
                } else if !coding.eq_ignore_ascii_case(b"identity") && !coding.is_empty() {
                    return Err(ProbeFailure::Malformed);
                }
            }
        }
    }
    let rest = &buf[header_len..];
    let reply = |state| Ok(Some(ProbeOutcome::Reply { http_status, state }));

    // 1xx, 204 and 304 replies have no body whatever the headers say.
    if http_status < 200 || http_status == 204 || http_status == 304 {
        return reply(None);
    }
    if chunked {
        // Chunked wins over Content-Length (RFC 9112 6.3).
        let mut decoded = [0u8; REPLY_CAPACITY];
        return match dechunk(rest, &mut decoded)? {
            Some(body_len) => reply(body_state(&decoded[..body_len])),
            None => need_more,
        };
    }
    match content_length {
        Some(length) if header_len.saturating_add(length) > REPLY_CAPACITY => {
            Err(ProbeFailure::TooLarge)
        }
        Some(length) if rest.len() < length => need_more,
        Some(length) => reply(body_state(&rest[..length])),
        None if eof => reply(body_state(rest)),
        None => Ok(None),
    }
}

/// A `Content-Length` value: ASCII digits only (no sign, no spaces inside), no overflow.
fn parse_decimal(value: &[u8]) -> Option<usize> {
    let value = value.trim_ascii();
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0usize, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(usize::from(b - b'0'))
        } else {
            None
        }
    })
}

/// Decodes a chunked body from `src` into `out`. `Ok(Some(len))` once the last (zero-size)
/// chunk is seen, `Ok(None)` if more bytes are needed.
fn dechunk(src: &[u8], out: &mut [u8]) -> Result<Option<usize>, ProbeFailure> {
    let mut pos = 0;
    let mut out_len = 0;
    loop {
        let (size_line_len, size) = match httparse::parse_chunk_size(&src[pos..]) {
            Ok(httparse::Status::Complete(found)) => found,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(ProbeFailure::Malformed),
        };
        pos += size_line_len;
        if size == 0 {
            return Ok(Some(out_len));
        }
        let size = usize::try_from(size).map_err(|_| ProbeFailure::TooLarge)?;
        let data_end = pos.checked_add(size).ok_or(ProbeFailure::TooLarge)?;
        if out_len.saturating_add(size) > out.len() {
            return Err(ProbeFailure::TooLarge);
        }
        let Some(data) = src.get(pos..data_end) else {
            return Ok(None);
        };
        out[out_len..out_len + size].copy_from_slice(data);
        out_len += size;
        match src.get(data_end..data_end + 2) {
            Some(b"\r\n") => pos = data_end + 2,
            Some(_) => return Err(ProbeFailure::Malformed),
            // Not all of the CRLF after the data yet (or only the CR).
            None if src[data_end..].iter().all(|&b| b == b'\r') => return Ok(None),
            None => return Err(ProbeFailure::Malformed),
        }
    }
}

/// The `state` field of a JSON object body; `None` for anything else (HTML error pages,
/// garbage, a missing, duplicated or non-string `state`, text after the object). Other fields
/// are skipped, nested or not. A state string is compared as sent: one with escapes is `Other`.
///
/// A scanner rather than serde_json so that no body, however nested, costs an allocation.
/// It is looser than a JSON parser inside skipped values (brackets are counted, not matched,
/// and literals are not spelled out), which cannot change the answer for the top-level key.
fn body_state(body: &[u8]) -> Option<BbState> {
    let mut json = JsonScan { bytes: body, at: 0 };
    json.eat(b'{')?;
    let mut state: Option<&[u8]> = None;
    let mut seen_state = false;
    if json.eat(b'}').is_none() {
        loop {
            let key = json.string()?;
            json.eat(b':')?;
            if key == b"state" {
                if seen_state {
                    return None;
                }
                seen_state = true;
                json.skip_ws();
                if json.peek() == Some(b'"') {
                    state = Some(json.string()?);
                } else {
                    json.skip_value()?;
                }
            } else {
                json.skip_value()?;
            }
            if json.eat(b',').is_none() {
                json.eat(b'}')?;
                break;
            }
        }
    }
    json.skip_ws();
    if json.at != body.len() {
        return None;
    }
    let raw = state?;
    Some(std::str::from_utf8(raw).map_or(BbState::Other, BbState::from_status))
}

/// A cursor over JSON text. Every method returns `None` on bad or missing input, never panics
/// (indexes are checked with `get`), and never allocates.
struct JsonScan<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> JsonScan<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }
    /// Skips whitespace, then consumes `byte`.
    fn eat(&mut self, byte: u8) -> Option<()> {
        self.skip_ws();
        (self.peek() == Some(byte)).then(|| self.at += 1)
    }
    /// Skips whitespace, then consumes a string; returns its raw content (escapes as sent).
    fn string(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.at;
        loop {
            match self.peek()? {
                b'"' => {
                    let raw = self.bytes.get(start..self.at)?;
                    self.at += 1;
                    return Some(raw);
                }
                b'\\' => self.at += 2,
                byte if byte < 0x20 => return None,
                _ => self.at += 1,
            }
        }
    }
    /// Skips whitespace and one value of any kind, nested objects and arrays included.
    fn skip_value(&mut self) -> Option<()> {
        self.skip_ws();
        let mut depth = 0usize;
        loop {
            match self.peek()? {
                b'"' => {
                    self.string()?;
                }
                b'{' | b'[' => {
                    depth += 1;
                    self.at += 1;
                }
                b'}' | b']' => {
                    depth = depth.checked_sub(1)?;
                    self.at += 1;
                }
                b',' | b':' | b' ' | b'\t' | b'\n' | b'\r' if depth > 0 => self.at += 1,
                byte if is_literal_byte(byte) => {
                    while self.peek().is_some_and(is_literal_byte) {
                        self.at += 1;
                    }
                }
                _ => return None,
            }
            if depth == 0 {
                return Some(());
            }
        }
    }
}

/// Bytes of `true`, `false`, `null` and numbers.
fn is_literal_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'+' | b'.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::poll::{PollFd, PollFlags, PollTimeout};
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;
    use std::thread::{self, JoinHandle};

    // ---- helpers -------------------------------------------------------------------------

    /// How a test server answers after reading the request.
    enum Answer {
        /// Write these bytes in pieces of at most `piece` bytes (1 = byte by byte), then close.
        Bytes { reply: Vec<u8>, piece: usize },
        /// Write these bytes, then keep the connection open until the test ends.
        BytesThenHold(Vec<u8>),
        /// Read the request and never answer (until the test ends).
        Nothing,
    }

    struct TestServer {
        target: StatusTarget,
        /// The request the server received.
        handle: JoinHandle<Vec<u8>>,
        /// Dropped (or sent to) to release a holding server.
        release: mpsc::Sender<()>,
    }

    impl TestServer {
        fn finish(self) -> Vec<u8> {
            drop(self.release);
            self.handle.join().expect("server thread")
        }
    }

    fn serve(bind: &str, answer: Answer) -> TestServer {
        let listener = TcpListener::bind(bind).unwrap();
        let addr = listener.local_addr().unwrap();
        let url = format!("http://{addr}/status");
        let target = StatusTarget::parse(&url).unwrap();
        let (release, released) = mpsc::channel::<()>();
        let handle = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            stream.set_nodelay(true).unwrap();
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") {
                match stream.read(&mut byte) {
                    Ok(1) => request.push(byte[0]),
                    _ => return request,
                }
            }
            match answer {
                Answer::Bytes { reply, piece } => {
                    for part in reply.chunks(piece) {
                        if stream.write_all(part).is_err() {
                            break;
                        }
                        if piece < reply.len() {
                            thread::sleep(Duration::from_micros(300));
                        }
                    }
                }
                Answer::BytesThenHold(reply) => {
                    stream.write_all(&reply).unwrap();
                    let _ = released.recv();
                }
                Answer::Nothing => {
                    let _ = released.recv();
                }
            }
            request
        });
        TestServer {
            target,
            handle,
            release,
        }
    }

    /// Drives `probe` with poll and the real clock until it reports (bounded: 10 s).
    fn drive(probe: &mut HttpProbe) -> ProbeOutcome {
        let limit = Instant::now() + Duration::from_secs(10);
        while Instant::now() < limit {
            if let (Some((fd, interest)), Some(deadline)) = (probe.interest(), probe.deadline()) {
                let events = match interest {
                    Interest::Readable => PollFlags::POLLIN,
                    Interest::Writable => PollFlags::POLLOUT,
                };
                let wait_ms = deadline
                    .saturating_duration_since(Instant::now())
                    .as_millis()
                    .min(1000) as u16;
                let mut fds = [PollFd::new(fd, events)];
                nix::poll::poll(&mut fds, PollTimeout::from(wait_ms)).expect("poll");
            }
            if let Some(outcome) = probe.advance(Instant::now()) {
                assert!(!probe.in_flight());
                assert!(probe.interest().is_none());
                return outcome;
            }
        }
        panic!("probe did not finish within 10 s");
    }

    fn probe_once(target: &StatusTarget, timeout: Duration) -> ProbeOutcome {
        let mut probe = HttpProbe::new();
        match probe.start(target, Instant::now(), timeout) {
            Ok(()) => drive(&mut probe),
            Err(outcome) => outcome,
        }
    }

    fn json_reply(code: u16, reason: &str, body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json;charset=UTF-8\r\n\
             Content-Length: {}\r\nDate: Sun, 22 Nov 2026 14:00:00 GMT\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    fn reply(http_status: u16, state: Option<BbState>) -> ProbeOutcome {
        ProbeOutcome::Reply { http_status, state }
    }

    // ---- URL parsing -----------------------------------------------------------------------

    #[test]
    fn url_with_port_and_path() {
        let t = StatusTarget::parse("http://127.0.0.1:7990/status").unwrap();
        assert_eq!(t.addr, "127.0.0.1:7990".parse().unwrap());
        assert_eq!(
            t.request(),
            b"GET /status HTTP/1.0\r\nHost: 127.0.0.1:7990\r\nUser-Agent: bbwd\r\n\
              Accept: application/json\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn url_defaults_port_80() {
        let t = StatusTarget::parse("http://10.1.2.3/").unwrap();
        assert_eq!(t.addr, "10.1.2.3:80".parse().unwrap());
        assert!(t
            .request()
            .starts_with(b"GET / HTTP/1.0\r\nHost: 10.1.2.3:80\r\n"));
    }

    #[test]
    fn url_ipv6_literal() {
        let t = StatusTarget::parse("http://[::1]:7990/bitbucket/status").unwrap();
        assert_eq!(t.addr, "[::1]:7990".parse().unwrap());
        assert!(t
            .request()
            .starts_with(b"GET /bitbucket/status HTTP/1.0\r\nHost: [::1]:7990\r\n"));
        assert_eq!(
            StatusTarget::parse("http://[::1]/").unwrap().addr.port(),
            80
        );
    }

    #[test]
    fn url_query_kept() {
        let t = StatusTarget::parse("http://127.0.0.1:1/?a=b").unwrap();
        assert!(t.request().starts_with(b"GET /?a=b HTTP/1.0\r\n"));
    }

    #[test]
    fn url_host_name_is_resolved() {
        let t = StatusTarget::parse("http://localhost:7990/status").unwrap();
        assert!(t.addr.ip().is_loopback(), "{:?}", t.addr);
        assert_eq!(t.addr.port(), 7990);
        assert!(t
            .request()
            .starts_with(b"GET /status HTTP/1.0\r\nHost: localhost:7990\r\n"));
    }

    #[test]
    fn url_https_is_refused_with_a_reason() {
        let e = StatusTarget::parse("https://bitbucket.example.com/status").unwrap_err();
        assert!(e.0.contains("https is not supported"), "{e}");
        assert!(e.0.contains("plain-HTTP connector"), "{e}");
        assert!(
            e.0.contains("https://bitbucket.example.com/status"),
            "names the url: {e}"
        );
    }

    #[test]
    fn url_errors() {
        for bad in [
            "",
            "127.0.0.1:7990/status",
            "ftp://127.0.0.1/",
            "http://",
            "http:///status",
            "http://:7990/status",
            "http://127.0.0.1:0/",
            "http://127.0.0.1:65536/",
            "http://127.0.0.1:+80/",
            "http://127.0.0.1:80x/",
            "http://user:pw@127.0.0.1/",
            "http://::1/status",
            "http://[::1/status",
            "http://[::1]x/status",
            "http://[127.0.0.1]/status",
            "http://127.0.0.1/a b",
            "http://127.0.0.1/a\r\nX-Injected: 1",
            "http://127.0.0.1/caf\u{e9}",
            "http://bad\rhost/",
            "http://bad host/",
        ] {
            assert!(
                StatusTarget::parse(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
        let long = format!("http://127.0.0.1/{}", "a".repeat(REPLY_CAPACITY));
        assert!(StatusTarget::parse(&long)
            .unwrap_err()
            .0
            .contains("too long"));
    }

    // ---- the probe against real loopback servers -------------------------------------------

    #[test]
    fn running_200() {
        let server = serve(
            "127.0.0.1:0",
            Answer::Bytes {
                reply: json_reply(200, "OK", r#"{"state":"RUNNING"}"#),
                piece: usize::MAX,
            },
        );
        assert_eq!(
            probe_once(&server.target, Duration::from_secs(5)),
            reply(200, Some(BbState::Running))
        );
        server.finish();
    }

    #[test]
    fn the_server_receives_exactly_the_target_request() {
        let server = serve(
            "127.0.0.1:0",
            Answer::Bytes {
                reply: json_reply(200, "OK", r#"{"state":"RUNNING"}"#),
                piece: usize::MAX,
            },
        );
        let expected = server.target.request().to_vec();
        assert_eq!(
            probe_once(&server.target, Duration::from_secs(5)),
            reply(200, Some(BbState::Running))
        );
        assert_eq!(server.finish(), expected);
    }

    #[test]
    fn every_state_over_the_wire() {
        for (code, name, state) in [
            (200, "RUNNING", BbState::Running),
            (200, "MAINTENANCE", BbState::Maintenance),
            (200, "FIRST_RUN", BbState::FirstRun),
            (503, "STARTING", BbState::Starting),
            (503, "STOPPING", BbState::Stopping),
            (500, "ERROR", BbState::Error),
            (200, "SOMETHING_NEW", BbState::Other),
        ] {
            let body = format!(r#"{{"state":"{name}"}}"#);
            let server = serve(
                "127.0.0.1:0",
                Answer::Bytes {
                    reply: json_reply(code, "X", &body),
                    piece: usize::MAX,
                },
            );
            assert_eq!(
                probe_once(&server.target, Duration::from_secs(5)),
                reply(code, Some(state)),
                "{name}"
            );
            server.finish();
            if state != BbState::Other {
                assert_eq!(state.as_str(), name);
                assert_eq!(BbState::from_status(state.as_str()), state);
            }
        }
    }

    #[test]
    fn not_found_with_html_body_has_no_state() {
        let html = "<html><head><title>404</title></head><body>Not Found</body></html>";
        let raw = format!(
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{html}",
            html.len()
        );
        let server = serve(
            "127.0.0.1:0",
            Answer::Bytes {
                reply: raw.into_bytes(),
                piece: usize::MAX,
            },
        );
        assert_eq!(
            probe_once(&server.target, Duration::from_secs(5)),
            reply(404, None)
        );
        server.finish();
    }

    #[test]
    fn error_500() {
        let body = r#"{"state":"ERROR","results":[{"description":"The database is unreachable"}]}"#;
        let server = serve(
            "127.0.0.1:0",
            Answer::Bytes {
                reply: json_reply(500, "Internal Server Error", body),
                piece: usize::MAX,
            },
        );
        assert_eq!(
            probe_once(&server.target, Duration::from_secs(5)),
            reply(500, Some(BbState::Error))
        );
        server.finish();
    }

    #[test]
    fn garbage_is_malformed() {
        let server = serve(
            "127.0.0.1:0",
            Answer::Bytes {
                reply: b"SSH-2.0-OpenSSH_9.2\r\n\x00\xff garbage\r\n\r\n".to_vec(),
                piece: usize::MAX,
            },
        );
        assert_eq!(
            probe_once(&server.target, Duration::from_secs(5)),
            ProbeOutcome::Failed(ProbeFailure::Malformed)
        );
        server.finish();
    }

    #[test]
    fn reply_in_one_byte_writes() {
        let server = serve(
            "127.0.0.1:0",
            Answer::Bytes {
                reply: json_reply(200, "OK", r#"{"state":"FIRST_RUN"}"#),
                piece: 1,
            },
        );
        assert_eq!(
            probe_once(&server.target, Duration::from_secs(5)),
            reply(200, Some(BbState::FirstRun))
        );
        server.finish();
    }

    #[test]
    fn reply_without_length_ends_at_eof_in_one_byte_writes() {
        let raw = b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n\r\n{\"state\":\"STARTING\"}";
        let server = serve(
            "127.0.0.1:0",
            Answer::Bytes {
                reply: raw.to_vec(),
                piece: 1,
            },
        );
        assert_eq!(
            probe_once(&server.target, Duration::from_secs(5)),
            reply(503, Some(BbState::Starting))
        );
        server.finish();
    }

    #[test]
    fn content_length_completes_without_waiting_for_eof() {
        // The server keeps the connection open: the probe must finish on Content-Length alone.
        let server = serve(
            "127.0.0.1:0",
            Answer::BytesThenHold(json_reply(200, "OK", r#"{"state":"RUNNING"}"#)),
        );
        let started = Instant::now();
        assert_eq!(
            probe_once(&server.target, Duration::from_secs(5)),
            reply(200, Some(BbState::Running))
        );
        assert!(started.elapsed() < Duration::from_secs(4));
        server.finish();
    }

    #[test]
    fn oversized_reply_without_length_is_too_large() {
        let mut raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n".to_vec();
        raw.extend(std::iter::repeat_n(b' ', REPLY_CAPACITY));
        raw.extend_from_slice(br#"{"state":"RUNNING"}"#);
        let server = serve(
            "127.0.0.1:0",
            Answer::Bytes {
                reply: raw,
                piece: usize::MAX,
            },
        );
        assert_eq!(
            probe_once(&server.target, Duration::from_secs(5)),
            ProbeOutcome::Failed(ProbeFailure::TooLarge)
        );
        server.finish();
    }

    #[test]
    fn oversized_content_length_fails_early() {
        // Only the headers arrive and the connection stays open: TooLarge must not wait.
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n{".to_vec();
        let server = serve("127.0.0.1:0", Answer::BytesThenHold(raw));
        assert_eq!(
            probe_once(&server.target, Duration::from_secs(5)),
            ProbeOutcome::Failed(ProbeFailure::TooLarge)
        );
        server.finish();
    }

    #[test]
    fn reply_of_exactly_the_capacity_is_accepted() {
        let head = "HTTP/1.0 200 OK\r\n\r\n";
        let state = r#"{"state":"MAINTENANCE"}"#;
        let padding = REPLY_CAPACITY - head.len() - state.len();
        let raw = format!("{head}{state}{}", " ".repeat(padding)).into_bytes();
        assert_eq!(raw.len(), REPLY_CAPACITY);
        let server = serve(
            "127.0.0.1:0",
            Answer::Bytes {
                reply: raw,
                piece: usize::MAX,
            },
        );
        assert_eq!(
            probe_once(&server.target, Duration::from_secs(5)),
            reply(200, Some(BbState::Maintenance))
        );
        server.finish();
    }

    #[test]
    fn silent_server_times_out() {
        let server = serve("127.0.0.1:0", Answer::Nothing);
        let started = Instant::now();
        let outcome = probe_once(&server.target, Duration::from_millis(200));
        let elapsed = started.elapsed();
        assert_eq!(outcome, ProbeOutcome::Failed(ProbeFailure::Timeout));
        assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
        // The request was fully sent before the wait.
        let expected = server.target.request().to_vec();
        assert_eq!(server.finish(), expected);
    }

    #[test]
    fn timeout_is_final_even_if_the_reply_is_there() {
        let server = serve(
            "127.0.0.1:0",
            Answer::BytesThenHold(json_reply(200, "OK", r#"{"state":"RUNNING"}"#)),
        );
        let mut probe = HttpProbe::new();
        let t0 = Instant::now();
        probe
            .start(&server.target, t0, Duration::from_millis(50))
            .unwrap();
        assert_eq!(probe.deadline(), Some(t0 + Duration::from_millis(50)));
        thread::sleep(Duration::from_millis(100));
        assert_eq!(
            probe.advance(t0 + Duration::from_millis(50)),
            Some(ProbeOutcome::Failed(ProbeFailure::Timeout))
        );
        assert!(!probe.in_flight());
        assert_eq!(
            probe.advance(t0 + Duration::from_secs(1)),
            None,
            "the outcome is reported once"
        );
        server.finish();
    }

    #[test]
    fn refused_port() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let target = StatusTarget::parse(&format!("http://{addr}/status")).unwrap();
        assert_eq!(
            probe_once(&target, Duration::from_secs(5)),
            ProbeOutcome::Failed(ProbeFailure::Refused)
        );
    }

    #[test]
    fn peer_closing_mid_headers_is_truncated() {
        let server = serve(
            "127.0.0.1:0",
            Answer::Bytes {
                reply: b"HTTP/1.1 200 OK\r\nContent-Type: applic".to_vec(),
                piece: usize::MAX,
            },
        );
        assert_eq!(
            probe_once(&server.target, Duration::from_secs(5)),
            ProbeOutcome::Failed(ProbeFailure::Truncated)
        );
        server.finish();
    }

    #[test]
    fn peer_closing_mid_body_is_truncated() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 19\r\n\r\n{\"state\":\"RUN".to_vec();
        let server = serve(
            "127.0.0.1:0",
            Answer::Bytes {
                reply: raw,
                piece: usize::MAX,
            },
        );
        assert_eq!(
            probe_once(&server.target, Duration::from_secs(5)),
            ProbeOutcome::Failed(ProbeFailure::Truncated)
        );
        server.finish();
    }

    #[test]
    fn peer_closing_without_a_byte_is_truncated() {
        let server = serve(
            "127.0.0.1:0",
            Answer::Bytes {
                reply: Vec::new(),
                piece: usize::MAX,
            },
        );
        assert_eq!(
            probe_once(&server.target, Duration::from_secs(5)),
            ProbeOutcome::Failed(ProbeFailure::Truncated)
        );
        server.finish();
    }

    #[test]
    fn ipv6_loopback() {
        let server = serve(
            "[::1]:0",
            Answer::Bytes {
                reply: json_reply(200, "OK", r#"{"state":"RUNNING"}"#),
                piece: 3,
            },
        );
        assert!(server.target.addr.is_ipv6());
        assert_eq!(
            probe_once(&server.target, Duration::from_secs(5)),
            reply(200, Some(BbState::Running))
        );
        server.finish();
    }

    #[test]
    fn one_probe_serves_many_requests_and_can_be_cancelled() {
        let mut probe = HttpProbe::new();
        for state in ["RUNNING", "STOPPING", "RUNNING"] {
            let server = serve(
                "127.0.0.1:0",
                Answer::Bytes {
                    reply: json_reply(200, "OK", &format!(r#"{{"state":"{state}"}}"#)),
                    piece: usize::MAX,
                },
            );
            probe
                .start(&server.target, Instant::now(), Duration::from_secs(5))
                .unwrap();
            assert_eq!(
                drive(&mut probe),
                reply(200, Some(BbState::from_status(state)))
            );
            server.finish();
        }
        let server = serve("127.0.0.1:0", Answer::Nothing);
        probe
            .start(&server.target, Instant::now(), Duration::from_secs(5))
            .unwrap();
        assert!(probe.in_flight());
        assert_eq!(probe.interest().map(|(_, i)| i), Some(Interest::Writable));
        probe.cancel();
        assert!(!probe.in_flight());
        assert!(probe.deadline().is_none());
        assert_eq!(probe.advance(Instant::now()), None);
        server.finish();
    }

    #[test]
    fn interest_is_readable_once_the_request_is_sent() {
        let server = serve("127.0.0.1:0", Answer::Nothing);
        let mut probe = HttpProbe::new();
        probe
            .start(&server.target, Instant::now(), Duration::from_secs(5))
            .unwrap();
        let limit = Instant::now() + Duration::from_secs(5);
        while probe.interest().map(|(_, i)| i) != Some(Interest::Readable) {
            assert!(Instant::now() < limit, "request never sent");
            assert_eq!(probe.advance(Instant::now()), None);
            thread::sleep(Duration::from_millis(1));
        }
        // A spurious advance while nothing has arrived changes nothing.
        assert_eq!(probe.advance(Instant::now()), None);
        assert!(probe.in_flight());
        probe.cancel();
        server.finish();
    }

    // ---- parse_reply, pure -----------------------------------------------------------------

    #[test]
    fn parse_needs_more_until_complete() {
        let full = json_reply(200, "OK", r#"{"state":"RUNNING"}"#);
        for cut in 0..full.len() {
            assert_eq!(parse_reply(&full[..cut], false), Ok(None), "cut at {cut}");
            assert_eq!(
                parse_reply(&full[..cut], true),
                Err(ProbeFailure::Truncated),
                "cut at {cut} + eof"
            );
        }
        assert_eq!(
            parse_reply(&full, false),
            Ok(Some(reply(200, Some(BbState::Running))))
        );
        assert_eq!(
            parse_reply(&full, true),
            Ok(Some(reply(200, Some(BbState::Running))))
        );
    }

    #[test]
    fn parse_bodies_without_a_state() {
        let cases: &[(&str, Option<BbState>)] = &[
            ("", None),
            ("not json", None),
            ("{", None),
            ("{}", None),
            (r#"{"status":"RUNNING"}"#, None),
            (r#"{"state":null}"#, None),
            (r#"{"state":42}"#, None),
            (r#"["RUNNING"]"#, None),
            (r#""RUNNING""#, None),
            (r#"{"state":"RUNNING"} trailing"#, None),
            (r#"{"state":"RUN\u004eING"}"#, Some(BbState::Other)),
            (r#"{"state":"RUNNING","state":"RUNNING"}"#, None),
            (r#"{"state":"RUNNING",}"#, None),
            (r#"{"state":"RUNNING" "x":1}"#, None),
            (r#"{"state":"RUNNING","x":}"#, None),
            (r#"{"state":"RUNNING","x":[1,2}"#, None),
            (
                r#"{"x":"\"state\":\"ERROR\"","state":"STARTING"}"#,
                Some(BbState::Starting),
            ),
            (
                r#"{"state":"STARTING","progress":{"message":"Starting","percentage":40}}"#,
                Some(BbState::Starting),
            ),
            (
                r#"{"state" : "RUNNING" , "n" : -1.5e3 , "b" : [true, false, null] }"#,
                Some(BbState::Running),
            ),
            (
                r#"  {"other":{"state":"ERROR"},"list":[1,2,{"a":"b"}],"state":"RUNNING"}  "#,
                Some(BbState::Running),
            ),
            (r#"{"state":"running"}"#, Some(BbState::Other)),
            (r#"{"state":""}"#, Some(BbState::Other)),
        ];
        for (body, state) in cases {
            let raw = format!("HTTP/1.0 200 OK\r\n\r\n{body}");
            assert_eq!(
                parse_reply(raw.as_bytes(), true),
                Ok(Some(reply(200, *state))),
                "{body:?}"
            );
        }
    }

    /// A deterministic xorshift generator for the mutation tests.
    fn xorshift(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    #[test]
    fn body_scanner_agrees_with_serde_json() {
        #[derive(serde::Deserialize)]
        struct Body<'a> {
            #[serde(borrow, default)]
            state: Option<&'a str>,
        }
        let bases: [&[u8]; 4] = [
            br#"{"state":"RUNNING"}"#,
            br#"{"state":"STARTING","progress":{"message":"Starting","percentage":40}}"#,
            br#" {"results":[{"a":1.5e3,"b":[true,false,null]},"s\"t"],"state":"ERROR"} "#,
            br#"{"x":{},"y":[],"state":null}"#,
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let (mut compared, mut with_state) = (0, 0);
        for round in 0..40_000 {
            let mut body = bases[round % bases.len()].to_vec();
            for _ in 0..(xorshift(&mut seed) % 3) {
                let at = (xorshift(&mut seed) as usize) % (body.len() + 1);
                let byte = b"{}[]\",: \"\\0ae-"[(xorshift(&mut seed) % 14) as usize];
                match xorshift(&mut seed) % 3 {
                    0 if at < body.len() => body[at] = byte,
                    1 if at < body.len() => {
                        body.remove(at);
                    }
                    _ => body.insert(at, byte),
                }
            }
            let ours = body_state(&body);
            // serde_json also accepts a struct as an array; the scanner wants an object.
            if body.trim_ascii_start().first() != Some(&b'{') {
                assert_eq!(ours, None, "{:?}", String::from_utf8_lossy(&body));
                continue;
            }
            // Where serde_json reads the body, the scanner must read the same state.
            if let Ok(parsed) = serde_json::from_slice::<Body<'_>>(&body) {
                compared += 1;
                with_state += usize::from(parsed.state.is_some());
                assert_eq!(
                    ours,
                    parsed.state.map(BbState::from_status),
                    "{:?}",
                    String::from_utf8_lossy(&body)
                );
            }
        }
        // The mutations must leave enough valid bodies for the comparison to mean something.
        assert!(
            compared > 10_000 && with_state > 5_000,
            "compared {compared}, with state {with_state}"
        );
    }

    #[test]
    fn parse_status_without_body() {
        assert_eq!(
            parse_reply(b"HTTP/1.1 204 No Content\r\n\r\n", false),
            Ok(Some(reply(204, None)))
        );
        assert_eq!(
            parse_reply(
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
                false
            ),
            Ok(Some(reply(304, None)))
        );
    }

    #[test]
    fn parse_bare_lf_and_missing_reason() {
        assert_eq!(
            parse_reply(
                b"HTTP/1.1 200 OK\nContent-Length: 19\n\n{\"state\":\"RUNNING\"}",
                false
            ),
            Ok(Some(reply(200, Some(BbState::Running))))
        );
        assert_eq!(
            parse_reply(b"HTTP/1.1 503\r\n\r\n{\"state\":\"STOPPING\"}", true),
            Ok(Some(reply(503, Some(BbState::Stopping))))
        );
    }

    #[test]
    fn parse_malformed() {
        for raw in [
            &b"garbage\r\n\r\n"[..],
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 OK\r\n\r\n",
            b"HTTP/9 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
            b"\x00\x01\x02\x03",
        ] {
            assert_eq!(
                parse_reply(raw, true),
                Err(ProbeFailure::Malformed),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse_reply(&many, true), Err(ProbeFailure::Malformed));
    }

    #[test]
    fn parse_duplicate_equal_content_length_is_fine() {
        assert_eq!(
            parse_reply(
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\n{}",
                false
            ),
            Ok(Some(reply(200, None)))
        );
    }

    #[test]
    fn parse_content_length_beyond_capacity_is_too_large() {
        let raw = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            REPLY_CAPACITY
        );
        assert_eq!(
            parse_reply(raw.as_bytes(), false),
            Err(ProbeFailure::TooLarge)
        );
    }

    #[test]
    fn parse_chunked() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                    6\r\n{\"stat\r\n9;ext=1\r\ne\":\"RUNNI\r\n4\r\nNG\"}\r\n0\r\n\r\n";
        assert_eq!(
            parse_reply(raw, false),
            Ok(Some(reply(200, Some(BbState::Running))))
        );
        // Every prefix before the last chunk needs more, or is truncated at EOF.
        let last_chunk = raw.len() - b"0\r\n\r\n".len();
        for cut in 0..last_chunk + 2 {
            assert_eq!(parse_reply(&raw[..cut], false), Ok(None), "cut at {cut}");
            assert_eq!(
                parse_reply(&raw[..cut], true),
                Err(ProbeFailure::Truncated),
                "cut at {cut} + eof"
            );
        }
        // Bad framing.
        assert_eq!(
            parse_reply(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                false
            ),
            Err(ProbeFailure::Malformed)
        );
        assert_eq!(
            parse_reply(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n",
                false
            ),
            Err(ProbeFailure::Malformed)
        );
        // A chunk bigger than the buffer.
        assert_eq!(
            parse_reply(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffff\r\n{",
                false
            ),
            Err(ProbeFailure::TooLarge)
        );
    }

    #[test]
    fn parse_never_panics_on_mutations() {
        // A small deterministic fuzz: flip, drop and insert bytes of a valid reply.
        let base = json_reply(
            503,
            "Service Unavailable",
            r#"{"state":"STARTING","progress":{"percentage":40}}"#,
        );
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || xorshift(&mut seed);
        for _ in 0..5000 {
            let mut raw = base.clone();
            for _ in 0..(next() % 4 + 1) {
                let at = (next() as usize) % raw.len().max(1);
                match next() % 3 {
                    0 => raw[at] = next() as u8,
                    1 => {
                        raw.remove(at);
                    }
                    _ => raw.insert(at, next() as u8),
                }
            }
            let _ = parse_reply(&raw, false);
            let _ = parse_reply(&raw, true);
        }
    }
}
