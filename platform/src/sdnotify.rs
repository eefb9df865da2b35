//! systemd notification (`sd_notify(3)` protocol): READY, STATUS, WATCHDOG, STOPPING.
//!
//! Owns the datagram socket to `$NOTIFY_SOCKET` (a path or an abstract `@name`), opened once.
//! The keep-alive (`WATCHDOG=1`) is a prebuilt message on that open socket, so the hot path
//! neither allocates nor opens anything. Must not: decide when to notify (the watchdog crate's
//! policy and the agent do).

use std::time::Duration;

/// A connection to the service manager, or nothing when not run under `Type=notify`.
pub struct SdNotify {
    _private: (),
}

impl SdNotify {
    /// Reads `$NOTIFY_SOCKET`; when unset, every method is a no-op.
    pub fn from_env() -> Self {
        todo!()
    }
    /// Whether a notify socket is configured.
    pub fn enabled(&self) -> bool {
        todo!()
    }
    /// `READY=1` (plus `MAINPID=` of this process).
    pub fn ready(&self) {
        todo!()
    }
    /// `STATUS=<text>`; text is truncated at a newline.
    pub fn status(&self, text: &str) {
        let _ = text;
        todo!()
    }
    /// `STOPPING=1`.
    pub fn stopping(&self) {
        todo!()
    }
    /// `WATCHDOG=1`. No allocation.
    pub fn watchdog(&self) {
        todo!()
    }
    /// `WATCHDOG_USEC` when set for this process (`WATCHDOG_PID` absent or ours).
    pub fn watchdog_timeout() -> Option<Duration> {
        todo!()
    }
}
