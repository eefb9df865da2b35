//! Signal delivery to the event loop through a `signalfd`: SIGTERM, SIGINT, SIGHUP.
//! The signals are blocked for the process so they arrive only through the fd; children get
//! an empty mask again (std's `Command` resets it before exec).

use std::os::fd::BorrowedFd;

/// What the loop can be told by a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// SIGTERM or SIGINT: stop Bitbucket gracefully and exit.
    Shutdown,
    /// SIGHUP: reopen the event log (logrotate).
    Reopen,
}

/// The signalfd.
pub struct Signals {
    _private: (),
}

impl Signals {
    /// Blocks SIGTERM, SIGINT, SIGHUP and opens a non-blocking signalfd for them.
    pub fn install() -> std::io::Result<Self> {
        todo!()
    }
    /// The fd to poll for readability.
    pub fn fd(&self) -> BorrowedFd<'_> {
        todo!()
    }
    /// Drains one pending signal, if any.
    pub fn read(&mut self) -> Option<Received> {
        todo!()
    }
}
