//! A fixed-capacity `poll(2)` set for the event loop: register fds each pass, wait once, read
//! back each registration's readiness by its token.
//!
//! Owns only the `pollfd` array. Must not: own the fds it watches (callers do), or allocate
//! (the array is fixed; registrations beyond `CAPACITY` are refused, a programming error the
//! caller reports).

use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

/// Most fds watched at once: signals, Bitbucket's pidfd and output, probe, database and port
/// checks, the log, the notify command (8); the control listener and its 8 clients (9); pair
/// mode's up to 8 heartbeat links, BMC, VIP probe and watch, hooks, witness and link watch (14)
/// or mirror mode's agent-check listener and its 8 connections (9); the metrics listener and its
/// 4 connections (5). 36 at most; 48 leaves room (a `pollfd` is 8 bytes).
pub const CAPACITY: usize = 48;

/// A registration's handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token(usize);

/// What to wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    Read,
    Write,
}

/// Readiness reported for a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ready {
    pub readable: bool,
    pub writable: bool,
    /// Error or hang-up: the owner should look (a read or `SO_ERROR` tells what).
    pub error: bool,
}

impl Ready {
    /// Anything at all happened.
    pub fn any(self) -> bool {
        self.readable || self.writable || self.error
    }
}

/// The set. Clear it, register, wait, then query by token.
pub struct PollSet {
    fds: [libc::pollfd; CAPACITY],
    len: usize,
}

impl PollSet {
    pub fn new() -> PollSet {
        PollSet {
            fds: [libc::pollfd {
                fd: -1,
                events: 0,
                revents: 0,
            }; CAPACITY],
            len: 0,
        }
    }

    /// Forgets all registrations.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Registers `fd`. `None` when the set is full.
    pub fn add(&mut self, fd: BorrowedFd<'_>, want: Want) -> Option<Token> {
        if self.len == CAPACITY {
            return None;
        }
        let events = match want {
            Want::Read => libc::POLLIN,
            Want::Write => libc::POLLOUT,
        };
        self.fds[self.len] = libc::pollfd {
            fd: fd.as_raw_fd(),
            events,
            revents: 0,
        };
        self.len += 1;
        Some(Token(self.len - 1))
    }

    /// Waits until a registration is ready or `timeout` passes (`None` = no limit). EINTR is a
    /// normal return with nothing ready.
    pub fn wait(&mut self, timeout: Option<Duration>) -> std::io::Result<usize> {
        let timeout_ms: libc::c_int = match timeout {
            None => -1,
            // Round up so a deadline 0.4 ms away does not spin.
            Some(d) => d.as_micros().div_ceil(1000).min(libc::c_int::MAX as u128) as libc::c_int,
        };
        // SAFETY: `fds[..len]` is an initialised array of `pollfd` owned by `self`, valid for
        // the duration of the call; the kernel writes only `revents` within it.
        let n = unsafe { libc::poll(self.fds.as_mut_ptr(), self.len as libc::nfds_t, timeout_ms) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                return Ok(0);
            }
            return Err(e);
        }
        Ok(n as usize)
    }

    /// Readiness of a registration after `wait`.
    pub fn ready(&self, token: Option<Token>) -> Ready {
        let Some(Token(i)) = token else {
            return Ready::default();
        };
        if i >= self.len {
            return Ready::default();
        }
        let r = self.fds[i].revents;
        Ready {
            readable: r & libc::POLLIN != 0,
            writable: r & libc::POLLOUT != 0,
            error: r & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0,
        }
    }
}

impl Default for PollSet {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn reports_readiness_per_token() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let mut set = PollSet::new();
        let tb = set.add(b.as_fd(), Want::Read);
        let ta = set.add(a.as_fd(), Want::Write);
        assert_eq!(set.wait(Some(Duration::from_millis(0))).unwrap(), 1);
        assert!(!set.ready(tb).readable);
        assert!(set.ready(ta).writable);
        a.write_all(b"x").unwrap();
        set.clear();
        let tb = set.add(b.as_fd(), Want::Read);
        assert_eq!(set.wait(Some(Duration::from_secs(5))).unwrap(), 1);
        assert!(set.ready(tb).readable);
        assert_eq!(set.ready(None), Ready::default());
    }

    #[test]
    fn refuses_more_than_capacity() {
        let (a, _b) = UnixStream::pair().unwrap();
        let mut set = PollSet::new();
        for _ in 0..CAPACITY {
            assert!(set.add(a.as_fd(), Want::Read).is_some());
        }
        assert!(set.add(a.as_fd(), Want::Read).is_none());
    }

    #[test]
    fn times_out_with_nothing_ready() {
        let (_a, b) = UnixStream::pair().unwrap();
        let mut set = PollSet::new();
        let t = set.add(b.as_fd(), Want::Read);
        assert_eq!(set.wait(Some(Duration::from_millis(10))).unwrap(), 0);
        assert!(!set.ready(t).any());
    }
}
