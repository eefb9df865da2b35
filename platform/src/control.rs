//! The control socket: a Unix stream socket (mode 0600) where `bbwd status`, `bbwd maintenance`
//! and friends talk to the daemon. One request line (at most `MAX_REQUEST` bytes, ending in
//! `\n`) per connection, one reply, then close.
//!
//! The server side is non-blocking and bounded: at most `MAX_CLIENTS` connections at once (more
//! are accepted and closed at once), each with a deadline, so a slow or hostile client can
//! neither stall the event loop nor grow memory. Peer credentials (SO_PEERCRED) are checked:
//! root or the daemon's own uid; others get an error reply.
//!
//! Must not: interpret requests (the agent's handler does).

use std::os::fd::BorrowedFd;
use std::path::Path;
use std::time::{Duration, Instant};

/// Largest accepted request line, bytes.
pub const MAX_REQUEST: usize = 4096;
/// Concurrent connections served.
pub const MAX_CLIENTS: usize = 8;
/// How long a client has to send its request and take its reply.
pub const CLIENT_DEADLINE: Duration = Duration::from_secs(2);

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub pid: i32,
}

/// What the server hands to the handler.
#[derive(Debug)]
pub enum Request<'a> {
    /// A complete request line (without the newline) from an authorised peer.
    Line(&'a [u8], Peer),
}

/// Errors of the server and client sides, naming the socket.
#[derive(Debug)]
pub enum Error {
    Bind { path: std::path::PathBuf, source: std::io::Error },
    /// Another daemon answers on this socket already.
    InUse(std::path::PathBuf),
    Connect { path: std::path::PathBuf, source: std::io::Error },
    Io(std::io::Error),
    Timeout,
    /// The reply exceeded the client's limit.
    ReplyTooLarge,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let _ = f;
        todo!()
    }
}
impl std::error::Error for Error {}

/// A poll registration: fd + readable/writable.
#[derive(Debug, Clone, Copy)]
pub struct PollItem<'a> {
    pub fd: BorrowedFd<'a>,
    pub writable: bool,
}

/// The listening socket and its connections.
pub struct ControlServer {
    _private: (),
}

impl ControlServer {
    /// Binds `path` (creating its directory with mode 0755 if missing), mode 0600. A stale socket
    /// file (nobody answers) is replaced; a live one is `Error::InUse`.
    pub fn bind(path: &Path) -> Result<ControlServer, Error> {
        let _ = path;
        todo!()
    }
    /// Everything to poll: the listener and each connection (readable while reading the request,
    /// writable while sending the reply).
    pub fn poll_items(&self, out: &mut dyn FnMut(PollItem<'_>)) {
        let _ = out;
        todo!()
    }
    /// Earliest client deadline.
    pub fn deadline(&self) -> Option<Instant> {
        todo!()
    }
    /// Accepts, reads, writes and expires connections; for each complete request line calls
    /// `handler`, whose return value is the reply (a newline is appended). Oversized or
    /// unauthorised requests get an error reply without calling `handler`.
    pub fn service(&mut self, now: Instant, handler: &mut dyn FnMut(Request<'_>) -> Vec<u8>) {
        let _ = (now, handler);
        todo!()
    }
    /// Removes the socket file (on clean exit).
    pub fn remove(&self) {
        todo!()
    }
}

/// Client side (the CLI): sends one request line, returns the reply without its newline.
pub fn request(path: &Path, line: &[u8], timeout: Duration) -> Result<Vec<u8>, Error> {
    let _ = (path, line, timeout);
    todo!()
}
