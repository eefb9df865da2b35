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
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use bbwd_core::status_url::{Host, StatusUrl};
use nix::errno::Errno;
use nix::sys::socket::{self, MsgFlags};

use crate::tcp::{self, Connecting};

mod reply;
#[cfg(test)]
mod tests;

pub use reply::parse_reply;

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

/// One probe, waited for: for the command line and the OCF agent, which may block; the
/// daemon's loop never calls this (it drives an [`HttpProbe`] itself).
pub fn probe_once(target: &StatusTarget, timeout: Duration) -> ProbeOutcome {
    use crate::poll::{PollSet, Want};
    let mut probe = HttpProbe::new();
    let now = Instant::now();
    if let Err(outcome) = probe.start(target, now, timeout) {
        return outcome;
    }
    let mut set = PollSet::new();
    loop {
        set.clear();
        if let Some((fd, i)) = probe.interest() {
            let want = match i {
                Interest::Readable => Want::Read,
                Interest::Writable => Want::Write,
            };
            let _ = set.add(fd, want);
        }
        let now = Instant::now();
        let wait = probe.deadline().map(|d| d.saturating_duration_since(now));
        let _ = set.wait(wait);
        if let Some(o) = probe.advance(Instant::now()) {
            return o;
        }
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
