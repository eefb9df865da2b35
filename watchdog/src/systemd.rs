//! systemd's watchdog (`WatchdogSec=`): `WATCHDOG=1` every `WATCHDOG_USEC / 2`, sent by the main
//! loop at the end of a pass (so a hung loop is caught by systemd, which kills and restarts
//! bbwd; `KillMode=process` leaves Bitbucket running for re-adoption).
//!
//! Owns the pacing only; the datagram goes through `bbwd_platform::sdnotify`. Must not send from
//! anywhere but the main loop.

use std::time::{Duration, Instant};

use bbwd_platform::sdnotify::SdNotify;

/// Paces keep-alives for systemd.
pub struct SystemdWatchdog {
    /// Half of `WATCHDOG_USEC`: systemd's own recommendation.
    interval: Duration,
    next: Instant,
    sent: u64,
}

impl SystemdWatchdog {
    /// `None` when systemd asked for no watchdog for this process.
    pub fn from_env(now: Instant) -> Option<SystemdWatchdog> {
        SdNotify::watchdog_timeout().map(|t| SystemdWatchdog::with_timeout(t, now))
    }

    /// A pacer for a watchdog `timeout` (tests, and `from_env`).
    pub fn with_timeout(timeout: Duration, now: Instant) -> SystemdWatchdog {
        SystemdWatchdog {
            interval: timeout / 2,
            next: now,
            sent: 0,
        }
    }

    /// When the next keep-alive is due (the loop wakes up for it).
    pub fn next_due(&self) -> Instant {
        self.next
    }

    /// Sends `WATCHDOG=1` if due; returns whether it did.
    pub fn pet_if_due(&mut self, sd: &SdNotify, now: Instant) -> bool {
        if now < self.next {
            return false;
        }
        sd.watchdog();
        self.sent += 1;
        self.next = now + self.interval;
        true
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Keep-alives sent since start.
    pub fn sent(&self) -> u64 {
        self.sent
    }
}
