//! The supervisor's state: [`Machine`], its process lifecycle `Proc` (each state carries what
//! it needs; see the diagram in the module doc of [`super`]), what comes after a stop (`Then`)
//! or a free-port check (`AfterCheck`), the database as last seen ([`Db`]); how a machine
//! starts (re-adopting a Bitbucket left running), and the conditions the transitions test.
//!
//! Must not: change the state outside the transitions (`step`, `start`, `stop`, `monitor`,
//! `commands`).

use std::collections::VecDeque;
use std::time::Instant;

use crate::probe::ProbeOutcome;

use super::{event, push, Action, Actions, Boot, Detail, EventKind, FailReason, Report, Settings};

/// What comes after `CheckFree` is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum AfterCheck {
    /// Start (a restart when `restart`), if nothing answers.
    Spawn { restart: bool },
    /// bbwd is shutting down: say whether the stop really stopped Bitbucket, then exit.
    Exit,
}

/// What to do once the process group is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Then {
    /// Start again (a correction or a crash restart; already counted).
    Restart,
    /// Give up: state `failed`.
    Fail(FailReason),
    /// Leave it down (maintenance or holding began meanwhile, or it died while holding).
    StayDown,
    /// bbwd is shutting down: exit.
    Shutdown,
}

/// The process lifecycle. Each state carries what it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Proc {
    /// Nothing runs.
    Down,
    /// Nothing of ours runs; `CheckFree` was returned, `FreeChecked` comes next.
    Verifying { next: AfterCheck },
    /// `Spawn` was returned; `Started`/`SpawnFailed` comes next.
    Spawning { restart: bool },
    /// Started, not yet healthy; unhealthy past `deadline` is a failed start.
    Starting {
        pid: i32,
        started_at: Instant,
        deadline: Instant,
    },
    /// Seen healthy (or adopted).
    Up { pid: i32, started_at: Instant },
    /// SIGTERM sent; SIGKILL at `deadline`.
    Stopping {
        pid: i32,
        deadline: Instant,
        then: Then,
        leader_gone: bool,
    },
    /// SIGKILL sent; unkillable at `deadline`.
    Killing {
        pid: i32,
        deadline: Instant,
        then: Then,
    },
    /// The leader exited by itself; SIGTERM went to the rest of the group; SIGKILL at
    /// `deadline` (`stop_timeout`), as for any stop.
    Reaping {
        pid: i32,
        deadline: Instant,
        then: Then,
    },
    /// The group survived SIGKILL. Only `Gone` leaves this state.
    Unkillable { pid: i32 },
}

/// Database reachability as last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Db {
    NotConfigured,
    Unknown,
    Up,
    Down,
}

/// The supervisor. See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Machine {
    pub(super) s: Settings,
    pub(super) proc: Proc,
    pub(super) failed: Option<FailReason>,
    pub(super) maintenance: Option<Detail>,
    pub(super) db: Db,
    pub(super) shutting_down: bool,
    pub(super) consecutive_failures: u32,
    pub(super) next_check: Instant,
    pub(super) check_in_flight: bool,
    /// Start times of restarts within the window, oldest first; capacity fixed at creation.
    pub(super) restarts: VecDeque<Instant>,
    pub(super) last_probe: Option<ProbeOutcome>,
    pub(super) petting: bool,
    /// Pair mode: the pair layer allows Bitbucket to run on this node. Always true alone.
    pub(super) permitted: bool,
    /// Pair mode: permitted while an adopted Bitbucket already runs (a resumed service): the
    /// next healthy check is reported as `Healthy`, as a start's would be.
    pub(super) report_healthy: bool,
}

impl Machine {
    /// A machine at `now`, starting from `boot`. Returns the first actions.
    pub fn new(s: Settings, now: Instant, boot: Boot) -> (Machine, Actions) {
        let capacity = s.max_restarts as usize + 1;
        let s_pair = s.pair;
        let mut m = Machine {
            db: if s.database {
                Db::Unknown
            } else {
                Db::NotConfigured
            },
            s,
            proc: Proc::Down,
            failed: boot.failed,
            maintenance: boot.maintenance,
            shutting_down: false,
            consecutive_failures: 0,
            next_check: now,
            check_in_flight: false,
            restarts: VecDeque::with_capacity(capacity),
            last_probe: None,
            petting: true,
            permitted: !s_pair,
            report_healthy: false,
        };
        let mut out = Actions::new();
        if let Some(pid) = boot.adopted_pid {
            m.proc = Proc::Up {
                pid,
                started_at: now,
            };
            event(
                &mut out,
                EventKind::Adopted,
                format_args!("re-adopted running Bitbucket pid {pid}"),
            );
        }
        m.after_step(&mut out);
        (m, out)
    }

    /// The earliest moment the machine needs a `Tick`.
    pub fn next_deadline(&self) -> Option<Instant> {
        let proc_deadline = match self.proc {
            Proc::Starting { deadline, .. }
            | Proc::Stopping { deadline, .. }
            | Proc::Killing { deadline, .. }
            | Proc::Reaping { deadline, .. } => Some(deadline),
            _ => None,
        };
        let check = (self.wants_checks() && !self.check_in_flight).then_some(self.next_check);
        match (proc_deadline, check) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub(super) fn pid(&self) -> Option<i32> {
        match self.proc {
            Proc::Starting { pid, .. }
            | Proc::Up { pid, .. }
            | Proc::Stopping { pid, .. }
            | Proc::Killing { pid, .. }
            | Proc::Unkillable { pid } => Some(pid),
            Proc::Down | Proc::Verifying { .. } | Proc::Spawning { .. } | Proc::Reaping { .. } => {
                None
            }
        }
    }

    /// Bitbucket should be running (given the database lets it).
    pub(super) fn wants_running(&self) -> bool {
        self.permitted && self.failed.is_none() && self.maintenance.is_none() && !self.shutting_down
    }

    /// Automatic correction is allowed now.
    pub(super) fn may_correct(&self) -> bool {
        self.wants_running() && self.db != Db::Down
    }

    /// Checks are due while Bitbucket runs, and while a down process waits for the database.
    pub(super) fn wants_checks(&self) -> bool {
        match self.proc {
            Proc::Starting { .. } | Proc::Up { .. } => true,
            Proc::Down => self.wants_running() && matches!(self.db, Db::Unknown | Db::Down),
            _ => false,
        }
    }

    pub(super) fn report(&self, out: &mut Actions, r: Report) {
        if self.s.pair {
            push(out, Action::Report(r));
        }
    }
}
