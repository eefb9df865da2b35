//! The database check: a non-blocking TCP connect with a deadline. Success = the three-way
//! handshake completed. Must not: speak the database protocol or block.
//!
//! Also home of the non-blocking connect primitives the `/status` probe (`http`) shares:
//! `begin_connect` (socket + connect, `EINPROGRESS` is the normal answer) and `poll_connected`
//! (a zero-timeout poll for writability, then `SO_ERROR`).
//!
//! # Theory of operation
//! ```text
//!   start ──connect()──┬─ EINPROGRESS ──> in flight ──advance: writable, SO_ERROR = 0──> Ok
//!                      │                      │     └─advance: SO_ERROR = e──────────> Err(e)
//!                      │                      └─advance(now >= deadline)─────────────> Timeout
//!                      └─ done at once (Ok / refused / unreachable) ──────────────────> result
//! ```
//! The deadline is final: `advance` with `now` at or past it reports `Timeout` without looking
//! at the socket, so a result is never credited to a check that ran out of time.
//!
//! # Invariants
//! * At most one socket open; it is closed as soon as the result is known or the check is
//!   cancelled or restarted.
//! * No allocation: sockets and addresses live on the stack or in the kernel.

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage};

/// A reusable connect check; one in flight at most. No allocation.
pub struct ConnectCheck {
    pending: Option<Pending>,
}

struct Pending {
    fd: OwnedFd,
    deadline: Instant,
}

/// Why the connect failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectFailure {
    Refused,
    Timeout,
    Unreachable,
    Io(i32),
}

impl std::fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectFailure::Refused => f.write_str("connection refused"),
            ConnectFailure::Timeout => f.write_str("connect timed out"),
            ConnectFailure::Unreachable => f.write_str("network or host unreachable"),
            ConnectFailure::Io(errno) => write!(f, "connect failed: {}", Errno::from_raw(*errno)),
        }
    }
}

impl ConnectCheck {
    pub fn new() -> Self {
        ConnectCheck { pending: None }
    }
    /// Begins a connect; an immediate result (success on loopback, refused) is returned at once.
    /// A check still in flight is abandoned first.
    pub fn start(
        &mut self,
        addr: SocketAddr,
        now: Instant,
        timeout: Duration,
    ) -> Option<Result<(), ConnectFailure>> {
        self.cancel();
        match begin_connect(addr) {
            Ok(Connecting::Done(_fd)) => Some(Ok(())),
            Ok(Connecting::InProgress(fd)) => {
                self.pending = Some(Pending {
                    fd,
                    deadline: deadline_after(now, timeout),
                });
                None
            }
            Err(errno) => Some(Err(classify(errno))),
        }
    }
    pub fn in_flight(&self) -> bool {
        self.pending.is_some()
    }
    /// Poll for writability.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.pending.as_ref().map(|p| p.fd.as_fd())
    }
    pub fn deadline(&self) -> Option<Instant> {
        self.pending.as_ref().map(|p| p.deadline)
    }
    /// After writability or the deadline: the result, once. `None` while the connect is still
    /// in progress (or nothing is in flight).
    pub fn advance(&mut self, now: Instant) -> Option<Result<(), ConnectFailure>> {
        let pending = self.pending.as_ref()?;
        let result = if now >= pending.deadline {
            Err(ConnectFailure::Timeout)
        } else {
            match poll_connected(pending.fd.as_fd()) {
                Ok(false) => return None,
                Ok(true) => Ok(()),
                Err(errno) => Err(classify(errno)),
            }
        };
        self.pending = None;
        Some(result)
    }
    /// Abandons a check in flight (closes the socket).
    pub fn cancel(&mut self) {
        self.pending = None;
    }
}

impl Default for ConnectCheck {
    fn default() -> Self {
        Self::new()
    }
}

fn classify(errno: Errno) -> ConnectFailure {
    match errno {
        Errno::ECONNREFUSED => ConnectFailure::Refused,
        Errno::ETIMEDOUT => ConnectFailure::Timeout,
        Errno::ENETUNREACH | Errno::EHOSTUNREACH | Errno::ENETDOWN | Errno::EHOSTDOWN => {
            ConnectFailure::Unreachable
        }
        other => ConnectFailure::Io(other as i32),
    }
}

/// A connect just begun.
pub(crate) enum Connecting {
    /// Connected during `connect()` itself (rare for TCP, even on loopback).
    Done(OwnedFd),
    /// The normal case: wait for writability, then `poll_connected`.
    InProgress(OwnedFd),
}

/// Opens a non-blocking, close-on-exec TCP socket and begins connecting it to `addr`.
pub(crate) fn begin_connect(addr: SocketAddr) -> Result<Connecting, Errno> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket::socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let sockaddr = SockaddrStorage::from(addr);
    match socket::connect(fd.as_raw_fd(), &sockaddr) {
        Ok(()) => Ok(Connecting::Done(fd)),
        // EINTR on a non-blocking connect: the handshake goes on asynchronously, as for
        // EINPROGRESS.
        Err(Errno::EINPROGRESS) | Err(Errno::EINTR) => Ok(Connecting::InProgress(fd)),
        Err(errno) => Err(errno),
    }
}

/// Whether a connect begun by `begin_connect` has finished: `Ok(true)` connected, `Ok(false)`
/// still in progress, `Err` the connect's error (`SO_ERROR`). Never blocks (zero-timeout poll).
pub(crate) fn poll_connected(fd: BorrowedFd<'_>) -> Result<bool, Errno> {
    let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
    match nix::poll::poll(&mut fds, PollTimeout::ZERO) {
        Ok(0) | Err(Errno::EINTR) => return Ok(false),
        Ok(_) => {}
        Err(errno) => return Err(errno),
    }
    let revents = fds[0].revents().unwrap_or(PollFlags::empty());
    let so_error = socket::getsockopt(&fd, sockopt::SocketError)?;
    if so_error != 0 {
        return Err(Errno::from_raw(so_error));
    }
    if revents.contains(PollFlags::POLLOUT) {
        Ok(true)
    } else if revents.intersects(PollFlags::POLLERR | PollFlags::POLLHUP) {
        // Hung up without a pending error: the connection did not survive.
        Err(Errno::ENOTCONN)
    } else {
        Ok(false)
    }
}

/// `now + timeout`, saturating at a day past `now` for absurd timeouts (no panic on overflow).
pub(crate) fn deadline_after(now: Instant, timeout: Duration) -> Instant {
    const LONGEST: Duration = Duration::from_secs(86_400);
    now.checked_add(timeout.min(LONGEST)).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv6Addr, TcpListener};

    /// Polls the check's socket until it reports, or 5 s pass (a test failure).
    fn run_to_completion(check: &mut ConnectCheck) -> Result<(), ConnectFailure> {
        let limit = Instant::now() + Duration::from_secs(5);
        while Instant::now() < limit {
            if let Some(fd) = check.fd() {
                let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
                nix::poll::poll(&mut fds, PollTimeout::from(50u16)).expect("poll");
            }
            if let Some(result) = check.advance(Instant::now()) {
                return result;
            }
        }
        panic!("connect check did not finish within 5 s");
    }

    #[test]
    fn connects_to_a_listener() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut check = ConnectCheck::new();
        let result = match check.start(addr, Instant::now(), Duration::from_secs(5)) {
            Some(result) => result,
            None => {
                assert!(check.in_flight());
                assert!(check.fd().is_some());
                run_to_completion(&mut check)
            }
        };
        assert_eq!(result, Ok(()));
        assert!(!check.in_flight());
        assert!(check.fd().is_none());
        assert!(check.deadline().is_none());
        // The result is reported once.
        assert_eq!(check.advance(Instant::now()), None);
    }

    #[test]
    fn connects_over_ipv6_loopback() {
        let listener = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut check = ConnectCheck::new();
        let result = match check.start(addr, Instant::now(), Duration::from_secs(5)) {
            Some(result) => result,
            None => run_to_completion(&mut check),
        };
        assert_eq!(result, Ok(()));
    }

    #[test]
    fn refused_when_nobody_listens() {
        // Bind to learn a free port, then close it: nothing listens there any more.
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut check = ConnectCheck::new();
        let result = match check.start(addr, Instant::now(), Duration::from_secs(5)) {
            Some(result) => result,
            None => run_to_completion(&mut check),
        };
        assert_eq!(result, Err(ConnectFailure::Refused));
        assert!(!check.in_flight());
    }

    #[test]
    fn deadline_passed_is_a_timeout() {
        // A listener that never accepts: the connect is in progress after `start` (Linux answers
        // EINPROGRESS even on loopback), and `advance` past the deadline must report Timeout
        // whatever the socket says.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut check = ConnectCheck::new();
        let t0 = Instant::now();
        let timeout = Duration::from_millis(300);
        assert_eq!(
            check.start(addr, t0, timeout),
            None,
            "connect should be in progress"
        );
        assert_eq!(check.deadline(), Some(t0 + timeout));
        assert_eq!(
            check.advance(t0 + timeout),
            Some(Err(ConnectFailure::Timeout))
        );
        assert!(!check.in_flight());
        assert_eq!(check.advance(t0 + timeout * 2), None);
    }

    #[test]
    fn before_the_deadline_an_unfinished_connect_reports_nothing() {
        // Listener with a full accept queue (backlog 0 holds one connection): a second SYN is
        // dropped by Linux, so the second connect stays in progress.
        let listener = socket::socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        let any = SockaddrStorage::from(SocketAddr::from(([127, 0, 0, 1], 0)));
        socket::bind(listener.as_raw_fd(), &any).unwrap();
        socket::listen(&listener, socket::Backlog::new(0).unwrap()).unwrap();
        let local: SockaddrStorage = socket::getsockname(listener.as_raw_fd()).unwrap();
        let addr = SocketAddr::from(*local.as_sockaddr_in().unwrap());

        let mut first = ConnectCheck::new();
        let first_result = match first.start(addr, Instant::now(), Duration::from_secs(5)) {
            Some(result) => result,
            None => run_to_completion(&mut first),
        };
        assert_eq!(first_result, Ok(()));
        // `first` closed its socket, but the kernel keeps the completed connection queued on the
        // listener until accept: the queue stays full.
        let mut second = ConnectCheck::new();
        let t0 = Instant::now();
        assert_eq!(second.start(addr, t0, Duration::from_secs(30)), None);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(second.advance(Instant::now()), None);
        assert!(second.in_flight());
        second.cancel();
        assert!(!second.in_flight());
        assert_eq!(second.advance(Instant::now()), None);
    }

    #[test]
    fn restart_abandons_the_previous_check() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut check = ConnectCheck::new();
        let t0 = Instant::now();
        assert_eq!(check.start(addr, t0, Duration::from_millis(100)), None);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(check.start(addr, t1, Duration::from_secs(5)), None);
        assert_eq!(check.deadline(), Some(t1 + Duration::from_secs(5)));
    }

    #[test]
    fn errno_classification() {
        assert_eq!(classify(Errno::ECONNREFUSED), ConnectFailure::Refused);
        assert_eq!(classify(Errno::ETIMEDOUT), ConnectFailure::Timeout);
        assert_eq!(classify(Errno::ENETUNREACH), ConnectFailure::Unreachable);
        assert_eq!(classify(Errno::EHOSTUNREACH), ConnectFailure::Unreachable);
        assert_eq!(classify(Errno::EACCES), ConnectFailure::Io(libc::EACCES));
        assert_eq!(
            ConnectFailure::Io(libc::EACCES).to_string(),
            "connect failed: EACCES: Permission denied"
        );
    }

    #[test]
    fn absurd_timeouts_do_not_overflow() {
        let now = Instant::now();
        assert_eq!(
            deadline_after(now, Duration::MAX),
            now + Duration::from_secs(86_400)
        );
        assert_eq!(
            deadline_after(now, Duration::from_millis(5)),
            now + Duration::from_millis(5)
        );
    }
}
