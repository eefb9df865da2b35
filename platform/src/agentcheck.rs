//! HAProxy's agent-check protocol, server side: HAProxy connects to `agent-port`, reads one
//! ASCII line, and the agent closes. bbwd answers every connection with the line the agent set
//! last (`set_reply`), e.g. `up ready #RUNNING` or `down ready #correcting`.
//!
//! The protocol (HAProxy configuration manual, "agent-check"): one line of words separated by
//! spaces, tabs or commas, in any order, terminated by `\n` (HAProxy waits for the line end and
//! ignores an unterminated line). Words: `up`; `down`, `stopped`, `fail` (operational state);
//! `ready`, `drain`, `maint` (administrative state; `ready` cancels a `drain`/`maint` the agent
//! set earlier); `NN%` (weight); `maxconn:N`. After a `#` comes a free-text description, which
//! HAProxy shows only when the line announces an operational state (`up`/`down`/...).
//! HAProxy may first send an `agent-send` string; it is read and discarded.
//!
//! Owns: the listening TCP socket and at most `MAX_CONNS` connections. Must not: decide the
//! reply (the agent builds it from the node's state), or block the caller's event loop.
//!
//! # Theory of operation
//! ```text
//!  accept ──reply written at once──> Writing ──all sent──> shutdown(WR) ──> Lingering
//!    │            (non-blocking)        │                                  │  reads and discards
//!    │                                  └─ error ─────────────> closed     │  what the peer sends
//!    │                                                                     ├─ EOF / error ─> closed
//!    │                                                                     └─ > MAX_INPUT bytes ─> closed
//!    └─ all MAX_CONNS slots busy ──> the oldest connection is closed      (any state) now >= deadline ─> closed
//! ```
//! Writing the reply before reading anything means a client gets its answer even if it is
//! evicted or expired a moment later. Lingering (reading until the peer closes) before closing
//! keeps the kernel from answering unread input with a reset that could discard the reply in
//! the peer's receive queue.
//!
//! # Invariants
//! * At most `MAX_CONNS` connections are held; each holds a copy of the reply (`MAX_REPLY`
//!   bytes, fixed), so a reply changed mid-write never mixes two lines.
//! * A connection never outlives its deadline (`conn_timeout` after accept, as seen by `now`).
//! * A peer is read at most `MAX_INPUT` bytes in all, in `DISCARD_CHUNK` pieces on the stack:
//!   a flooding client costs bounded time and no memory.
//! * `service` never blocks: every socket is non-blocking, and accepts per call are bounded.
//! * No allocation after `bind`: accept, write, read and close use fixed buffers only.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

/// Connections held at once. HAProxy opens one per server line per `agent-inter`; a few load
/// balancers checking one node need far fewer.
pub const MAX_CONNS: usize = 8;
/// Longest reply line, bytes, the terminating `\n` included.
pub const MAX_REPLY: usize = 128;
/// Most bytes read from one peer (HAProxy sends at most its short `agent-send` string).
pub const MAX_INPUT: usize = 4096;
/// Default per-connection deadline: HAProxy's own agent timeout is `agent-inter` (2 s default)
/// or `timeout check`; a peer still connected after this is not HAProxy waiting for a line.
pub const CONN_TIMEOUT: Duration = Duration::from_secs(2);
/// Bytes read per `read(2)` while discarding input (a stack buffer).
const DISCARD_CHUNK: usize = 512;
/// Accepts per `service` call at most, so a connect flood cannot hold the loop in accept.
const MAX_ACCEPTS_PER_SERVICE: usize = 4 * MAX_CONNS;
/// How long accepting pauses after accept(2) fails for lack of resources (EMFILE, ENOBUFS...),
/// so that a listener that stays readable does not spin the loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// One reply line with its `\n`.
pub type Line = heapless::Vec<u8, MAX_REPLY>;

/// Errors of the agent-check server, naming the address or the offending reply.
#[derive(Debug)]
pub enum Error {
    /// `bind(2)`/`listen(2)` on the configured address failed.
    Bind { addr: SocketAddr, source: io::Error },
    /// The reply does not fit in `MAX_REPLY` bytes with its `\n`.
    ReplyTooLong { len: usize },
    /// The reply holds a byte that is not printable ASCII (space to `~`) at `at`: a line
    /// break would end the line early, anything else is not the protocol's ASCII.
    ReplyNotPrintable { at: usize },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Bind { addr, source } => {
                write!(
                    f,
                    "cannot listen for HAProxy agent checks on {addr}: {source}"
                )
            }
            Error::ReplyTooLong { len } => write!(
                f,
                "agent-check reply of {len} bytes does not fit in {} bytes with its newline",
                MAX_REPLY
            ),
            Error::ReplyNotPrintable { at } => write!(
                f,
                "agent-check reply has a byte that is not printable ASCII at offset {at}"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Bind { source, .. } => Some(source),
            Error::ReplyTooLong { .. } | Error::ReplyNotPrintable { .. } => None,
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
    /// Connections whose reply was written in full.
    pub replied: u64,
    /// Connections closed to make room for a new one.
    pub evicted: u64,
    /// Connections closed at their deadline.
    pub expired: u64,
    /// Connections closed for sending more than `MAX_INPUT` bytes.
    pub flooded: u64,
}

/// The listening socket and its connections.
pub struct AgentServer {
    listener: TcpListener,
    addr: SocketAddr,
    reply: Line,
    conn_timeout: Duration,
    conns: [Option<Conn>; MAX_CONNS],
    accept_paused_until: Option<Instant>,
    accept_failing: bool,
    counters: Counters,
}

struct Conn {
    stream: TcpStream,
    accepted_at: Instant,
    deadline: Instant,
    reply: Line,
    sent: usize,
    /// Bytes read from the peer and discarded.
    input: usize,
    phase: Phase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Writing,
    Lingering,
}

/// Checks a reply line (without its `\n`) and returns it with the `\n` appended.
pub fn line(text: &str) -> Result<Line, Error> {
    let bytes = text.as_bytes();
    if let Some(at) = bytes.iter().position(|b| !(b' '..=b'~').contains(b)) {
        return Err(Error::ReplyNotPrintable { at });
    }
    let mut out = Line::new();
    if out.extend_from_slice(bytes).is_err() || out.push(b'\n').is_err() {
        return Err(Error::ReplyTooLong { len: bytes.len() });
    }
    Ok(out)
}

impl AgentServer {
    /// Listens on `addr` (SO_REUSEADDR, non-blocking). The initial reply is `down #starting`:
    /// until the agent says otherwise, the node takes no traffic.
    pub fn bind(addr: SocketAddr, conn_timeout: Duration) -> Result<AgentServer, Error> {
        let bind_err = |source| Error::Bind { addr, source };
        let listener = TcpListener::bind(addr).map_err(bind_err)?;
        listener.set_nonblocking(true).map_err(bind_err)?;
        let bound = listener.local_addr().map_err(bind_err)?;
        Ok(AgentServer {
            listener,
            addr: bound,
            // Cannot fail: a short printable constant.
            reply: line("down #starting").unwrap_or_default(),
            conn_timeout,
            conns: Default::default(),
            accept_paused_until: None,
            accept_failing: false,
            counters: Counters::default(),
        })
    }

    /// The address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets the line given to connections accepted from now on. `text` is without the `\n`.
    /// On error the previous reply stays.
    pub fn set_reply(&mut self, text: &str) -> Result<(), Error> {
        self.reply = line(text)?;
        Ok(())
    }

    /// The current reply without its `\n`.
    pub fn reply(&self) -> &str {
        let bytes = self.reply.strip_suffix(b"\n").unwrap_or(&self.reply);
        // Only printable ASCII gets in (`line`).
        std::str::from_utf8(bytes).unwrap_or("")
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Connections held right now.
    pub fn connections(&self) -> usize {
        self.conns.iter().filter(|c| c.is_some()).count()
    }

    /// Everything to poll: the listener (unless accepting is paused) and each connection.
    pub fn poll_items<'a>(&'a self, out: &mut dyn FnMut(BorrowedFd<'a>, Interest)) {
        if self.accept_paused_until.is_none() {
            out(self.listener.as_fd(), Interest::Read);
        }
        for c in self.conns.iter().flatten() {
            let i = match c.phase {
                Phase::Writing => Interest::Write,
                Phase::Lingering => Interest::Read,
            };
            out(c.stream.as_fd(), i);
        }
    }

    /// The earliest moment `service` has something to do without readiness: a connection's
    /// deadline or the end of an accept pause.
    pub fn deadline(&self) -> Option<Instant> {
        self.conns
            .iter()
            .flatten()
            .map(|c| c.deadline)
            .chain(self.accept_paused_until)
            .min()
    }

    /// Expires, accepts, writes and reads; never blocks. Call it after every poll (readiness is
    /// not needed: every operation is a non-blocking attempt).
    pub fn service(&mut self, now: Instant) {
        for slot in self.conns.iter_mut() {
            if slot.as_ref().is_some_and(|c| now >= c.deadline) {
                *slot = None;
                self.counters.expired += 1;
            }
        }
        self.accept(now);
        for slot in self.conns.iter_mut() {
            if let Some(c) = slot.as_mut() {
                if !c.progress(&mut self.counters) {
                    *slot = None;
                }
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
                            "HAProxy agent check on {}: accept failed ({e}); pausing accepts",
                            self.addr
                        );
                    }
                    self.accept_failing = true;
                    self.accept_paused_until = Some(now + ACCEPT_BACKOFF);
                    return;
                }
            };
            if self.accept_failing {
                log::info!("HAProxy agent check on {}: accepting again", self.addr);
                self.accept_failing = false;
            }
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            self.counters.accepted += 1;
            let mut conn = Conn {
                stream,
                accepted_at: now,
                deadline: now + self.conn_timeout,
                reply: self.reply.clone(),
                sent: 0,
                input: 0,
                phase: Phase::Writing,
            };
            // The line goes out at once; a peer that is already gone needs no slot.
            if !conn.progress(&mut self.counters) {
                continue;
            }
            let slot = match self.conns.iter().position(|c| c.is_none()) {
                Some(i) => i,
                None => {
                    // Full: the oldest connection has normally had its line already (lines go
                    // out at accept), so closing it early costs a well-behaved peer nothing.
                    let oldest = self
                        .conns
                        .iter()
                        .enumerate()
                        .filter_map(|(i, c)| c.as_ref().map(|c| (c.accepted_at, i)))
                        .min()
                        .map_or(0, |(_, i)| i);
                    self.counters.evicted += 1;
                    oldest
                }
            };
            self.conns[slot] = Some(conn);
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

impl Conn {
    /// Moves the connection on as far as it goes without blocking. `false`: close it.
    fn progress(&mut self, counters: &mut Counters) -> bool {
        if self.phase == Phase::Writing {
            while self.sent < self.reply.len() {
                match self.stream.write(&self.reply[self.sent..]) {
                    Ok(0) => return false,
                    Ok(n) => self.sent += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return false,
                }
            }
            counters.replied += 1;
            // FIN after the line: HAProxy sees the end even if it waits for the close.
            if self.stream.shutdown(Shutdown::Write).is_err() {
                return false;
            }
            self.phase = Phase::Lingering;
        }
        let mut scratch = [0u8; DISCARD_CHUNK];
        loop {
            match self.stream.read(&mut scratch) {
                Ok(0) => return false,
                Ok(n) => {
                    self.input += n;
                    if self.input > MAX_INPUT {
                        counters.flooded += 1;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind;

    fn loopback() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }

    /// Per-connection deadline of the test servers: long, so that a slow, shared machine never
    /// expires a connection before the test looks (expiry is driven by passing a later `now`).
    const TEST_TIMEOUT: Duration = Duration::from_secs(60);

    fn server(reply: &str) -> AgentServer {
        let mut s = AgentServer::bind(loopback(), TEST_TIMEOUT).unwrap();
        s.set_reply(reply).unwrap();
        s
    }

    fn connect(s: &AgentServer) -> TcpStream {
        let c = TcpStream::connect(s.local_addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c
    }

    /// Services until `cond` holds, waiting on the real sockets (bounded).
    fn service_until(s: &mut AgentServer, what: &str, mut cond: impl FnMut(&AgentServer) -> bool) {
        let give_up = Instant::now() + Duration::from_secs(10);
        loop {
            s.service(Instant::now());
            if cond(s) {
                return;
            }
            assert!(Instant::now() < give_up, "gave up waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn answers_one_line_and_closes() {
        let mut s = server("up ready #RUNNING");
        let mut c = connect(&s);
        service_until(&mut s, "the reply", |s| s.counters().replied == 1);
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"up ready #RUNNING\n");
        drop(c);
        service_until(&mut s, "the close", |s| s.connections() == 0);
        assert_eq!(s.counters().accepted, 1);
        assert_eq!(s.counters().expired, 0);
    }

    #[test]
    fn reads_and_discards_an_agent_send_string() {
        // `agent-send "backend/srv\n"`: the peer writes first, then reads; the unread input must
        // not turn the close into a reset that loses the reply.
        let mut s = server("down ready #correcting");
        let mut c = connect(&s);
        c.write_all(b"mirrors/m1\n").unwrap();
        service_until(&mut s, "the reply", |s| s.counters().replied == 1);
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"down ready #correcting\n");
        drop(c);
        service_until(&mut s, "the close", |s| s.connections() == 0);
    }

    #[test]
    fn a_reply_change_applies_to_new_connections() {
        let mut s = server("up ready #RUNNING");
        let mut first = connect(&s);
        service_until(&mut s, "first accept", |s| s.counters().accepted == 1);
        s.set_reply("up drain #Bitbucket MAINTENANCE").unwrap();
        assert_eq!(s.reply(), "up drain #Bitbucket MAINTENANCE");
        let mut second = connect(&s);
        service_until(&mut s, "second accept", |s| s.counters().accepted == 2);
        let mut a = String::new();
        let mut b = String::new();
        first.read_to_string(&mut a).unwrap();
        second.read_to_string(&mut b).unwrap();
        assert_eq!(a, "up ready #RUNNING\n");
        assert_eq!(b, "up drain #Bitbucket MAINTENANCE\n");
    }

    #[test]
    fn clients_that_never_read_or_close_are_bounded_and_expire() {
        let mut s = server("up ready #RUNNING");
        // Twice as many silent clients as slots: they connect and then do nothing at all.
        let silent: Vec<TcpStream> = (0..2 * MAX_CONNS).map(|_| connect(&s)).collect();
        service_until(&mut s, "all accepted", |s| {
            s.counters().accepted == 2 * MAX_CONNS as u64
        });
        assert!(s.connections() <= MAX_CONNS);
        assert_eq!(s.counters().evicted, MAX_CONNS as u64);
        // A well-behaved client is still answered while the slots are full.
        let mut c = connect(&s);
        service_until(&mut s, "the new client", |s| {
            s.counters().accepted == 2 * MAX_CONNS as u64 + 1
        });
        let mut got = String::new();
        c.read_to_string(&mut got).unwrap();
        assert_eq!(got, "up ready #RUNNING\n");
        // Every silent client got its line too (written at accept), evicted or not.
        for mut sc in silent {
            let mut buf = [0u8; 64];
            let n = sc.read(&mut buf).unwrap_or(0);
            assert_eq!(&buf[..n], b"up ready #RUNNING\n");
        }
        // At the deadline, whatever is left goes.
        s.service(Instant::now() + TEST_TIMEOUT + Duration::from_millis(1));
        assert_eq!(s.connections(), 0);
        assert!(s.counters().expired >= 1);
        assert_eq!(s.deadline(), None);
    }

    #[test]
    fn a_flooding_client_is_cut_off_without_stalling_the_loop() {
        let mut s = server("up ready #RUNNING");
        let c = connect(&s);
        c.set_nonblocking(true).unwrap();
        let flood = std::thread::spawn(move || {
            let mut c = c;
            let chunk = [b'x'; 8192];
            let mut sent = 0usize;
            let give_up = Instant::now() + Duration::from_secs(10);
            // Until the server closes on us (a reset or a broken pipe).
            while Instant::now() < give_up {
                match c.write(&chunk) {
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(1))
                    }
                    Err(_) => return sent,
                }
            }
            panic!("the server never closed the flooding connection ({sent} bytes sent)");
        });
        service_until(&mut s, "the flood cut-off", |s| s.counters().flooded == 1);
        assert_eq!(s.connections(), 0);
        let sent = flood.join().unwrap();
        assert!(sent > MAX_INPUT, "{sent}");
        // Still serving.
        let mut c = connect(&s);
        service_until(&mut s, "the next client", |s| s.counters().replied == 2);
        let mut got = String::new();
        c.read_to_string(&mut got).unwrap();
        assert_eq!(got, "up ready #RUNNING\n");
    }

    #[test]
    fn poll_items_and_deadline_follow_the_connections() {
        let mut s = server("up ready #RUNNING");
        let mut n = 0;
        s.poll_items(&mut |_, i| {
            assert_eq!(i, Interest::Read);
            n += 1;
        });
        assert_eq!(n, 1, "just the listener");
        assert_eq!(s.deadline(), None);
        let before = Instant::now();
        let _c = connect(&s);
        service_until(&mut s, "accept", |s| s.connections() == 1);
        let mut items = Vec::new();
        s.poll_items(&mut |_, i| items.push(i));
        assert_eq!(
            items,
            [Interest::Read, Interest::Read],
            "listener + lingering"
        );
        let d = s.deadline().unwrap();
        assert!(d >= before + TEST_TIMEOUT && d <= Instant::now() + TEST_TIMEOUT);
    }

    #[test]
    fn replies_must_be_one_printable_ascii_line_that_fits() {
        for ok in [
            "up",
            "up 100%",
            "drain",
            "down #why",
            "maint",
            "up ready #a b, c",
        ] {
            assert_eq!(line(ok).unwrap().as_slice(), format!("{ok}\n").as_bytes());
        }
        let longest = "x".repeat(MAX_REPLY - 1);
        assert_eq!(line(&longest).unwrap().len(), MAX_REPLY);
        assert!(matches!(
            line(&"x".repeat(MAX_REPLY)),
            Err(Error::ReplyTooLong { len }) if len == MAX_REPLY
        ));
        for (bad, at) in [
            ("up\n", 2),
            ("up\r", 2),
            ("down #a\nup", 7),
            ("up\t", 2),
            ("up \u{e9}", 3),
            ("\0", 0),
        ] {
            assert!(
                matches!(line(bad), Err(Error::ReplyNotPrintable { at: a }) if a == at),
                "{bad:?}"
            );
        }
        let mut s = server("up ready #RUNNING");
        assert!(s.set_reply("up\ndown").is_err());
        assert_eq!(
            s.reply(),
            "up ready #RUNNING",
            "a bad reply leaves the old one"
        );
    }

    #[test]
    fn starts_by_saying_down_until_told() {
        let s = AgentServer::bind(loopback(), CONN_TIMEOUT).unwrap();
        assert_eq!(s.reply(), "down #starting");
    }

    #[test]
    fn bind_errors_name_the_address() {
        let taken = TcpListener::bind(loopback()).unwrap();
        let addr = taken.local_addr().unwrap();
        let err = AgentServer::bind(addr, CONN_TIMEOUT).err().unwrap();
        assert!(matches!(err, Error::Bind { addr: a, .. } if a == addr));
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }
}
