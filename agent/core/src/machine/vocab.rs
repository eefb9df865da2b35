//! What the supervisor and its event loop say to each other: the [`Settings`] it runs with, the
//! [`Input`]s it is told, the [`Action`]s it asks for (with the [`Sig`]nals), and the
//! [`Report`]s it gives the pair layer in pair mode.
//!
//! Owns the types only. Must not: decide anything (that is [`super::Machine`]'s).

use std::time::Duration;

use crate::probe::{ExitKind, ProbeOutcome};

use super::{Detail, EventKind};

/// The timing and limits the machine works with (from `[bitbucket]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Settings {
    pub monitor_interval: Duration,
    pub startup_timeout: Duration,
    pub failures_before_action: u32,
    pub stop_timeout: Duration,
    pub kill_timeout: Duration,
    pub max_restarts: u32,
    pub restart_window: Duration,
    /// Whether `[database]` is configured (a database check accompanies every probe).
    pub database: bool,
    /// Pair mode: Bitbucket runs only while the pair layer permits it (`Input::Permit`), and
    /// exhausted restarts escalate to it (`Report::Escalate`) instead of failing the node.
    pub pair: bool,
    /// A hardware watchdog will reset the node once petting stops (`[watchdog] device` is not
    /// "none"). Without one, an unkillable group that finally goes lets `Reset` recover.
    pub watchdog_resets: bool,
}

/// What the machine is told.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Input {
    /// Time passed (the loop woke up); deadlines are checked.
    Tick,
    /// The process asked for by `Spawn` runs.
    Started { pid: i32 },
    /// `Spawn` could not start the command.
    SpawnFailed { detail: Detail },
    /// A check asked for by `Check` completed: the probe's outcome and, when a database is
    /// configured, whether it accepted a connection.
    Checked {
        probe: ProbeOutcome,
        db_up: Option<bool>,
    },
    /// The group leader exited.
    Exited { kind: ExitKind },
    /// The whole process group is gone (leader collected, no member left).
    Gone,
    /// The answer to `CheckFree`: `Some(what)` when something answers on `status_url`'s
    /// address (an escaped or foreign Bitbucket), `None` when the port is free.
    FreeChecked { occupied: Option<Detail> },
    /// Bitbucket's JVM reported an `OutOfMemoryError` in its own words (`output::classify`).
    OomeLine,
    /// Operator: `bbwd maintenance on|off`.
    Maintenance { on: bool, reason: Detail },
    /// Operator: `bbwd reset` (clear `failed`, start again).
    Reset,
    /// SIGTERM/SIGINT: stop Bitbucket gracefully, then exit.
    Shutdown,
    /// Pair mode: the pair layer allows Bitbucket to run here (takeover) or takes that back
    /// (release). Answered with `Report::Healthy` / `Report::Stopped`.
    // Sent by the pair layer once it is wired into the daemon (pair issue); tested here.
    #[cfg_attr(not(test), allow(dead_code))]
    Permit { run: bool },
}

/// What the supervisor tells the pair layer (pair mode only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Report {
    /// Bitbucket became healthy after a start.
    Healthy,
    /// Nothing runs any more after `Permit { run: false }`.
    Stopped,
    /// Restarts exhausted: fail over (the seeds: restart at least once, then fail over).
    Escalate,
    /// The process group survived SIGKILL: the node must self-fence.
    Unkillable,
    /// Bitbucket fails to start: manual intervention, no failover (it would fail there too).
    StartFailed,
}

/// What the machine asks the loop to do.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// Start Bitbucket; answer with `Started` or `SpawnFailed`.
    Spawn,
    /// Before any start and after a stop: does anything answer on `status_url`'s address?
    /// Answer with `FreeChecked`.
    CheckFree,
    /// An unkillable group went away on a node without a hardware watchdog and the operator
    /// reset it: the systemd keep-alive may be sent again.
    ResumePetting,
    /// Send a signal to Bitbucket's process group.
    Signal(Sig),
    /// Run a `/status` probe (and the database check); answer with `Checked`.
    Check,
    /// Record the event (ring, event log, `notify.command`).
    Event(EventKind, Detail),
    /// The node can no longer correct itself: stop petting the watchdog so it resets.
    StopPetting,
    /// Everything is stopped after `Shutdown`: exit.
    Exit,
    /// Pair mode: tell the pair layer.
    Report(Report),
}

/// Signals for the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sig {
    Term,
    Kill,
}
