//! Text for events: [`detail`] (a [`super::Detail`] cut at capacity, never an allocation) and
//! the human wording of a probe outcome ([`ProbeText`]) and of an exit ([`ExitText`]).
//!
//! Must not: allocate; a detail that does not fit is cut on a character boundary.

use core::fmt::Write as _;

use crate::probe::{ExitKind, ProbeFailure, ProbeOutcome};

use super::Detail;

/// Writes into a `heapless::String`, silently cutting at capacity (on a char boundary).
pub(super) struct CutWriter<'a>(pub(super) &'a mut Detail);

impl core::fmt::Write for CutWriter<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for c in s.chars() {
            if self.0.push(c).is_err() {
                break;
            }
        }
        Ok(())
    }
}

/// Builds a `Detail` from text (cut at capacity).
pub fn detail(text: &str) -> Detail {
    let mut d = Detail::new();
    let _ = CutWriter(&mut d).write_str(text);
    d
}

/// Human text for a probe outcome (`HTTP 500 ERROR`, `connection refused`, ...).
pub struct ProbeText<'a>(pub &'a ProbeOutcome);

impl core::fmt::Display for ProbeText<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self.0 {
            ProbeOutcome::Reply {
                http_status,
                state: Some(s),
            } => write!(f, "HTTP {http_status} {}", s.as_str()),
            ProbeOutcome::Reply {
                http_status,
                state: None,
            } => write!(f, "HTTP {http_status} without a state"),
            ProbeOutcome::Failed(ProbeFailure::Refused) => f.write_str("connection refused"),
            ProbeOutcome::Failed(ProbeFailure::Timeout) => {
                f.write_str("no reply within monitor_timeout")
            }
            ProbeOutcome::Failed(ProbeFailure::Io(e)) => write!(f, "socket error (errno {e})"),
            ProbeOutcome::Failed(ProbeFailure::Truncated) => f.write_str("reply cut short"),
            ProbeOutcome::Failed(ProbeFailure::Malformed) => {
                f.write_str("malformed reply (not HTTP)")
            }
            ProbeOutcome::Failed(ProbeFailure::TooLarge) => f.write_str("reply too large"),
        }
    }
}

/// Human text for an exit.
pub struct ExitText(pub ExitKind);

impl core::fmt::Display for ExitText {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            ExitKind::Exited(c) => write!(f, "exited with status {c}"),
            ExitKind::Signaled(s) => write!(f, "killed by signal {s}"),
            ExitKind::Unknown => f.write_str("exited (status unknown: not our child)"),
        }
    }
}
