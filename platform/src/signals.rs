//! Signal delivery to the event loop through a `signalfd`: SIGTERM, SIGINT, SIGHUP, and every
//! other signal whose default action would end or stop bbwd (SIGUSR1, SIGUSR2, SIGALRM, SIGQUIT,
//! the real-time signals...), which are read and reported as `Ignored` so that a stray `kill`
//! never takes the supervisor down silently. SIGPIPE is ignored by Rust's runtime; SIGCHLD's
//! default is to ignore; SIGKILL and SIGSTOP cannot be caught; the synchronous faults (SIGSEGV,
//! SIGBUS, SIGFPE, SIGILL, SIGSYS, SIGTRAP, SIGABRT) keep their default: they are bugs.
//! The signals are blocked for the process so they arrive only through the fd; children get
//! an empty mask again (std's `Command` resets it before exec).
//!
//! Must not: act on a signal (the loop decides), or install signal handlers.
//!
//! # Invariants
//! * `install` blocks the signals with `pthread_sigmask`, which acts on the *calling thread*;
//!   threads inherit the mask of the thread that creates them. So `install` must run on the
//!   main thread before any other thread is started: otherwise a thread that does not block
//!   SIGTERM would receive it and the default action (exit) would bypass the graceful stop.
//! * The fd is read on the thread that called `install` (a signalfd returns the process's
//!   pending signals and the reading thread's own).

use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// What the loop can be told by a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// SIGTERM or SIGINT: stop Bitbucket gracefully and exit.
    Shutdown,
    /// SIGHUP: reopen the event log (logrotate).
    Reopen,
    /// Any other signal in the mask: logged and otherwise ignored, on purpose.
    Ignored(i32),
}

/// Signals that would end (or stop) bbwd by default and mean nothing to it: ignored on purpose.
const IGNORED: [Signal; 13] = [
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
    Signal::SIGVTALRM,
    Signal::SIGPROF,
    Signal::SIGIO,
    Signal::SIGPWR,
    Signal::SIGSTKFLT,
    Signal::SIGXCPU,
    Signal::SIGXFSZ,
    Signal::SIGQUIT,
    Signal::SIGTSTP,
    Signal::SIGTTIN,
];

/// The signalfd.
#[derive(Debug)]
pub struct Signals {
    fd: SignalFd,
}

fn mask() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.add(Signal::SIGHUP);
    set.add(Signal::SIGTTOU);
    for sig in IGNORED {
        set.add(sig);
    }
    // The real-time signals (nix's `Signal` has no variants for them). libc's bounds leave out
    // the ones glibc keeps for itself.
    let mut raw: libc::sigset_t = *set.as_ref();
    for n in libc::SIGRTMIN()..=libc::SIGRTMAX() {
        // SAFETY: sigaddset on a sigset_t we own, with a signal number within libc's bounds.
        unsafe { libc::sigaddset(&mut raw, n) };
    }
    // SAFETY: `raw` was initialised from a valid SigSet and only extended by sigaddset.
    unsafe { SigSet::from_sigset_t_unchecked(raw) }
}

impl Signals {
    /// Blocks SIGTERM, SIGINT, SIGHUP and the ignored ones, and opens a non-blocking signalfd
    /// for them.
    pub fn install() -> std::io::Result<Self> {
        let set = mask();
        nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        Ok(Signals { fd })
    }

    /// The fd to poll for readability.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Drains one pending signal, if any.
    pub fn read(&mut self) -> Option<Received> {
        loop {
            match self.fd.read_signal() {
                Ok(Some(info)) => match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGTERM | Signal::SIGINT) => return Some(Received::Shutdown),
                    Ok(Signal::SIGHUP) => return Some(Received::Reopen),
                    _ => return Some(Received::Ignored(info.ssi_signo as i32)),
                },
                Ok(None) => return None,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    log::warn!("reading the signalfd failed: {e}");
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::poll::{PollFd, PollFlags, PollTimeout};
    use nix::sys::signal::raise;

    // Why thread-directed signals: the test harness runs tests on several threads, and only this
    // test's thread blocks the signals. A process-directed signal (`kill(getpid(), ..)`) could be
    // delivered to another thread that does not block it, whose default action would end the
    // whole test binary. `raise` is thread-directed (POSIX: in a multi-threaded process it is
    // `pthread_kill(pthread_self(), sig)`; glibc uses tgkill), so the signal is pending on this
    // thread only, where it is blocked, and a signalfd read on this thread returns it. The test
    // thread ends with the signals still blocked, which affects no other test.
    #[test]
    fn signals_arrive_through_the_fd_in_order() {
        let mut signals = Signals::install().unwrap();
        assert_eq!(signals.read(), None, "nothing pending yet");

        raise(Signal::SIGHUP).unwrap();
        let mut fds = [PollFd::new(signals.fd(), PollFlags::POLLIN)];
        assert_eq!(
            nix::poll::poll(&mut fds, PollTimeout::from(5000u16)).unwrap(),
            1
        );
        assert_eq!(signals.read(), Some(Received::Reopen));
        assert_eq!(signals.read(), None);

        raise(Signal::SIGTERM).unwrap();
        assert_eq!(signals.read(), Some(Received::Shutdown));
        raise(Signal::SIGINT).unwrap();
        assert_eq!(signals.read(), Some(Received::Shutdown));
        assert_eq!(signals.read(), None);

        // Still blocked: a second pending SIGHUP waits in the fd, not in a handler.
        let mut current = SigSet::empty();
        nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, None, Some(&mut current)).unwrap();
        assert!(current.contains(Signal::SIGHUP) && current.contains(Signal::SIGTERM));

        // A child started from this thread gets an empty mask again.
        let out = std::process::Command::new("/bin/sh")
            .args(["-c", "grep '^SigBlk:' /proc/self/status"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let blocked = text.trim().strip_prefix("SigBlk:").unwrap().trim();
        assert_eq!(u64::from_str_radix(blocked, 16).unwrap(), 0, "{text}");
    }

    #[test]
    fn sigusr1_sigusr2_and_realtime_signals_are_read_not_fatal() {
        let mut signals = Signals::install().unwrap();
        for sig in [
            Signal::SIGUSR1,
            Signal::SIGUSR2,
            Signal::SIGALRM,
            Signal::SIGQUIT,
        ] {
            raise(sig).unwrap();
            assert_eq!(signals.read(), Some(Received::Ignored(sig as i32)));
        }
        let rt = libc::SIGRTMIN() + 3;
        // SAFETY: raise with a valid real-time signal number, blocked on this thread.
        assert_eq!(unsafe { libc::raise(rt) }, 0);
        assert_eq!(signals.read(), Some(Received::Ignored(rt)));
        assert_eq!(signals.read(), None);
    }
}
