//! The `/status` probe: one HTTP/1.0 GET over a non-blocking TCP socket, with a deadline, read
//! into a fixed buffer.
//!
//! Must not: classify the answer (healthy or not is the state machine's call): it reports the
//! HTTP status and the `state` field it found, or why it found none.
//!
//! # Invariants
//! * No allocation after `HttpProbe::new`: the request bytes are built once per `StatusTarget`
//!   and the reply is read into the probe's own buffer.
//! * A reply larger than `REPLY_CAPACITY` is a failure (`TooLarge`), never a partial parse.
//! * The probe never blocks: `start` only begins a connect; progress happens in `on_ready`.

use std::net::SocketAddr;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

/// Size of the reply buffer (status line + headers + body).
pub const REPLY_CAPACITY: usize = 4096;

/// Where to probe, parsed from `bitbucket.status_url` once.
#[derive(Debug, Clone)]
pub struct StatusTarget {
    pub addr: SocketAddr,
    _private: (),
}

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlError(pub String);

impl StatusTarget {
    /// Parses `http://HOST[:PORT]/PATH` (HOST an IP literal, `[v6]`, or a name resolved now,
    /// blocking, at start-up). `https` is refused with a clear message.
    pub fn parse(url: &str) -> Result<StatusTarget, UrlError> {
        let _ = url;
        todo!()
    }
}

/// The `state` values Bitbucket's `/status` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BbState {
    Running,
    Maintenance,
    FirstRun,
    Starting,
    Stopping,
    Error,
    /// A `state` string not in the list above.
    Other,
}

impl BbState {
    pub fn as_str(self) -> &'static str {
        match self {
            BbState::Running => "RUNNING",
            BbState::Maintenance => "MAINTENANCE",
            BbState::FirstRun => "FIRST_RUN",
            BbState::Starting => "STARTING",
            BbState::Stopping => "STOPPING",
            BbState::Error => "ERROR",
            BbState::Other => "OTHER",
        }
    }
}

/// Why a probe got no HTTP reply, or a reply it could not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeFailure {
    /// Connection refused (Tomcat not listening).
    Refused,
    /// No complete reply within the timeout.
    Timeout,
    /// Another socket error (errno).
    Io(i32),
    /// The peer closed before a complete status line and headers.
    Truncated,
    /// Not HTTP, or a malformed status line/headers.
    Malformed,
    /// The reply exceeded `REPLY_CAPACITY`.
    TooLarge,
}

/// What a probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// An HTTP reply: its status code and the `state` field of a JSON body, if there was one.
    Reply { http_status: u16, state: Option<BbState> },
    Failed(ProbeFailure),
}

/// A reusable probe; one request in flight at most.
pub struct HttpProbe {
    _private: (),
}

impl HttpProbe {
    pub fn new() -> Self {
        todo!()
    }
    /// Begins a probe. An immediate failure (e.g. refused on a local connect) is returned and
    /// nothing is in flight.
    pub fn start(&mut self, target: &StatusTarget, now: Instant, timeout: Duration) -> Result<(), ProbeOutcome> {
        let _ = (target, now, timeout);
        todo!()
    }
    pub fn in_flight(&self) -> bool {
        todo!()
    }
    /// The socket and whether to wait for writability (connecting/sending) or readability.
    pub fn interest(&self) -> Option<(BorrowedFd<'_>, Interest)> {
        todo!()
    }
    pub fn deadline(&self) -> Option<Instant> {
        todo!()
    }
    /// Advances the probe after poll said the socket is ready, or the deadline passed.
    /// Returns the outcome once, when done.
    pub fn advance(&mut self, now: Instant) -> Option<ProbeOutcome> {
        let _ = now;
        todo!()
    }
    /// Abandons a probe in flight (closes the socket).
    pub fn cancel(&mut self) {
        todo!()
    }
}

impl Default for HttpProbe {
    fn default() -> Self {
        Self::new()
    }
}

/// Readiness a socket waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    Readable,
    Writable,
}

/// Parses a complete reply held in `buf` (exposed for tests and fuzzing).
pub fn parse_reply(buf: &[u8], eof: bool) -> Result<Option<ProbeOutcome>, ProbeFailure> {
    let _ = (buf, eof);
    todo!("Ok(None) = need more bytes")
}
