//! `bbwd-watchdog`: the watchdogs that reset the node (or restart bbwd) when bbwd hangs or the
//! node can no longer correct itself, and the policy that decides when to pet them.
//!
//! Owns: the petting policy (`policy`, pure), the keep-alive pacing of each watchdog
//! (`systemd`), the hardware watchdogs behind one trait ([`HardwareWatchdog`]): the
//! `/dev/watchdog` character device (`device`) and the BMC's IPMI watchdog (`ipmi`). Must not:
//! decide anything about Bitbucket (the agent's state machine does and tells the policy through
//! `policy::Inputs`), or touch the OS except the watchdog devices themselves (everything else
//! goes through `bbwd_platform`).
//!
//! Keep-alives are sent from the main loop itself, at the end of a pass, never from a helper
//! thread: a hung loop must stop them.
//!
//! # The hardware watchdog contract
//! The daemon holds a `Box<dyn HardwareWatchdog>` and does not know which kind it is:
//!
//! * construction (each implementation's own `open`/`arm` function) arms the watchdog with the
//!   configured timeout and reads back the timeout it really uses and whether the last reset was
//!   caused by it; from then on the node resets unless `pet` is called often enough;
//! * `pet` at most every `effective_timeout() / 3` (the policy's pacing), from the main loop;
//! * `disarm` only on a clean stop, after Bitbucket is gone (and, in pair mode, the VIP released).
//!
//! # Invariants
//! * An armed watchdog is never disarmed by dropping it: `Drop` must leave it running (a crash of
//!   bbwd is exactly what it is there for). Only `disarm` stops it.
//! * `pet` and `time_left` return within a bounded time (a local ioctl, or one BMC round trip
//!   bounded by the implementation's own timeout): they run on the main loop.

use std::fmt;
use std::time::Duration;

pub mod device;
pub mod ipmi;
pub mod policy;
pub mod systemd;

/// A hardware watchdog that resets the node when not petted: `/dev/watchdog` or the BMC's.
///
/// Implemented by `device::DeviceWatchdog` and the IPMI watchdog. The daemon uses only this
/// trait. Keep it stable: both implementations and the daemon depend on it.
pub trait HardwareWatchdog {
    /// What it is, for logs, events and status: e.g. `/dev/watchdog (i6300ESB timer)` or
    /// `ipmi (BMC 10.0.1.1:623)`.
    fn describe(&self) -> &str;

    /// The countdown the watchdog really uses (the driver or BMC may round the configured one).
    /// All pacing is derived from this, never from the configured value.
    fn effective_timeout(&self) -> Duration;

    /// Sends one keep-alive: the countdown restarts from `effective_timeout()`.
    fn pet(&mut self) -> Result<(), Error>;

    /// How long until the watchdog fires, where it can tell (`None`: the driver cannot say, or
    /// asking failed; never an error, it is for status only).
    fn time_left(&mut self) -> Option<Duration>;

    /// Whether the node's last reset was caused by this watchdog, read when it was armed
    /// (`None`: the hardware cannot tell).
    fn last_reset_by_watchdog(&self) -> Option<bool>;

    /// Clean stop: disarms the watchdog so the node is not reset. Consumes it: a disarmed
    /// watchdog cannot be petted. An `Err` means the watchdog may still be running (e.g. a
    /// `nowayout` driver): the caller must say so loudly.
    fn disarm(self: Box<Self>) -> Result<(), Error>;
}

/// A watchdog operation that failed, naming the operation and the watchdog.
#[derive(Debug)]
pub enum Error {
    /// Someone else holds the watchdog (EBUSY on open): another watchdog daemon, or systemd's
    /// `RuntimeWatchdogSec`.
    Busy { device: String },
    /// A system call on the watchdog failed (`op`: "open", "WDIOC_KEEPALIVE", ...).
    Io {
        op: &'static str,
        device: String,
        source: std::io::Error,
    },
    /// The watchdog refused or cannot do what was asked (no settable timeout, nowayout on
    /// disarm, a BMC completion code...).
    Refused {
        op: &'static str,
        device: String,
        detail: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Busy { device } => write!(
                f,
                "{device}: busy: another process holds the watchdog (another watchdog daemon, or \
                 systemd's RuntimeWatchdogSec= in /etc/systemd/system.conf); only one may drive it"
            ),
            Error::Io { op, device, source } => write!(f, "{device}: {op}: {source}"),
            Error::Refused { op, device, detail } => write!(f, "{device}: {op}: {detail}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
