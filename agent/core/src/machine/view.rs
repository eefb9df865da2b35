//! What can be read off the supervisor without changing it: the operator-facing [`State`], the
//! [`View`] `bbwd status` shows, whether the watchdog may be petted, and why an operator's reset
//! would be refused ([`ResetRefused`]).
//!
//! Must not: change the machine.

use crate::probe::{BbState, ProbeOutcome};

use super::state::Proc;
use super::{Db, Detail, FailReason, Machine};

/// The state reported to operators (SPEC `state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Starting,
    Running,
    Correcting,
    Holding,
    Failed,
    Maintenance,
    Stopped,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Running => "running",
            State::Correcting => "correcting",
            State::Holding => "holding",
            State::Failed => "failed",
            State::Maintenance => "maintenance",
            State::Stopped => "stopped",
        }
    }
}

/// The machine's view for `bbwd status`.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub state: State,
    pub pid: Option<i32>,
    pub last_probe: Option<ProbeOutcome>,
    pub consecutive_failures: u32,
    pub restarts: u32,
    pub failed: Option<FailReason>,
    pub maintenance: Option<Detail>,
    pub db: Db,
    pub petting: bool,
}

/// Why `Reset` is refused (`Machine::reset_refused`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetRefused {
    /// Not failed: nothing to reset.
    NotFailed,
    /// The group survived SIGKILL and is still there.
    StillThere,
    /// The watchdog will reset the node (petting stopped, a hardware watchdog counts down).
    WatchdogResets,
}

impl Machine {
    /// What `bbwd status` shows.
    pub fn view(&self) -> View {
        View {
            state: self.state(),
            pid: self.pid(),
            last_probe: self.last_probe,
            consecutive_failures: self.consecutive_failures,
            restarts: self.restarts.len() as u32,
            failed: self.failed,
            maintenance: self.maintenance.clone(),
            db: self.db,
            petting: self.petting,
        }
    }

    /// The operator-facing state.
    pub fn state(&self) -> State {
        if self.failed.is_some() {
            return State::Failed;
        }
        if self.maintenance.is_some() {
            return State::Maintenance;
        }
        if self.shutting_down {
            return State::Stopped;
        }
        if self.db == Db::Down {
            return State::Holding;
        }
        match self.proc {
            // Pair standby: nothing runs because nothing may.
            Proc::Down if !self.permitted => State::Stopped,
            Proc::Down | Proc::Verifying { .. } | Proc::Spawning { .. } | Proc::Starting { .. } => {
                State::Starting
            }
            // Re-adopted in the middle of a start: it says so itself.
            Proc::Up { .. } if self.last_probe_starting() => State::Starting,
            Proc::Up { .. } => State::Running,
            Proc::Stopping { .. } | Proc::Killing { .. } | Proc::Reaping { .. } => {
                State::Correcting
            }
            Proc::Unkillable { .. } => State::Failed,
        }
    }

    /// Whether the watchdog may still be petted on the machine's account.
    pub fn petting(&self) -> bool {
        self.petting
    }

    /// Why an operator's `Reset` would be refused now; `None` when it would clear `failed`.
    pub fn reset_refused(&self) -> Option<ResetRefused> {
        if self.failed.is_none() {
            return Some(ResetRefused::NotFailed);
        }
        if self.petting {
            return None;
        }
        if self.s.watchdog_resets {
            Some(ResetRefused::WatchdogResets)
        } else if matches!(self.proc, Proc::Unkillable { .. }) {
            Some(ResetRefused::StillThere)
        } else {
            None
        }
    }

    fn last_probe_starting(&self) -> bool {
        matches!(
            self.last_probe,
            Some(ProbeOutcome::Reply {
                http_status: 503,
                state: Some(BbState::Starting)
            })
        )
    }
}
