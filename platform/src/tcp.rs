//! The database check: a non-blocking TCP connect with a deadline. Success = the three-way
//! handshake completed. Must not: speak the database protocol or block.

use std::net::SocketAddr;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

/// A reusable connect check; one in flight at most. No allocation.
pub struct ConnectCheck {
    _private: (),
}

/// Why the connect failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectFailure {
    Refused,
    Timeout,
    Unreachable,
    Io(i32),
}

impl ConnectCheck {
    pub fn new() -> Self {
        todo!()
    }
    /// Begins a connect; an immediate result (success on loopback, refused) is returned at once.
    pub fn start(&mut self, addr: SocketAddr, now: Instant, timeout: Duration) -> Option<Result<(), ConnectFailure>> {
        let _ = (addr, now, timeout);
        todo!()
    }
    pub fn in_flight(&self) -> bool {
        todo!()
    }
    /// Poll for writability.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        todo!()
    }
    pub fn deadline(&self) -> Option<Instant> {
        todo!()
    }
    /// After writability or the deadline: the result, once.
    pub fn advance(&mut self, now: Instant) -> Option<Result<(), ConnectFailure>> {
        let _ = now;
        todo!()
    }
}

impl Default for ConnectCheck {
    fn default() -> Self {
        Self::new()
    }
}
