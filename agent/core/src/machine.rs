//! The decision logic: a pure state machine that supervises one Bitbucket process.
//!
//! # Theory of operation
//!
//! The machine is driven by [`Machine::step`]`(now, input)`, which returns the [`Action`]s the
//! event loop must carry out. It performs no I/O, never reads a clock (time is `now`), and
//! never fails: every platform failure comes back to it as an input (`SpawnFailed`, a failed
//! `Checked`). The event loop around it is thin: it turns file-descriptor readiness into inputs
//! and actions into system calls.
//!
//! The process lifecycle ([`Proc`]) and three overlays decide everything:
//!
//! ```text
//!                 reconcile(): want running, database not down
//!      +------+  ------------------------------------------->  +----------+
//!      | Down |                  Spawn / Started               | Starting |--- healthy /status --+
//!      +------+  <---+                                         +----------+                      |
//!         ^          |  Gone (then: Restart / Fail / Shutdown /     | exits, or unhealthy past   v
//!         |          |        StayDown)                             | startup_timeout       +--------+
//!         |     +-----------+   stop_timeout   +---------+          +---------------------->|   Up   |
//!         |     | Stopping  |----------------->| Killing |                                  +--------+
//!         |     | (SIGTERM) |     SIGKILL      |         |---- kill_timeout ----+              |   |
//!         |     +-----------+                  +---------+                      v              |   |
//!         |          ^   failures_before_action failed checks, OOME line  +------------+       |   |
//!         |          +----------------------------------------------------|            |<------+   |
//!         |                                                               | Unkillable |           |
//!         |     +-----------+  leader exited on its own (crash, OOME):    | (stop      |           |
//!         +-----| Reaping   |<-- SIGKILL to what is left of the group ----|  petting)  |     crash |
//!               +-----------+                                             +------------+<--+-------+
//!                     |  kill_timeout with members left ------------------------^
//! ```
//!
//! Overlays: `failed` (manual intervention needed: no automatic start until `Reset`),
//! `maintenance` (operator: no correction, no automatic start), and the database state
//! (`Down` = holding: no correction at all, Bitbucket is left as it is; the seeds: "Nothing.
//! Stash will recover when the database comes back"). Whenever the process is `Down`, the
//! machine *reconciles*: it starts Bitbucket if it should run and the database is not known to
//! be down.
//!
//! Monitoring: while Bitbucket runs (and while the database must be watched), a check is due
//! every `monitor_interval`, one at a time (a slow check is never overlapped). The loop runs the
//! `/status` probe and the database connect check together and answers with one `Checked`, so a
//! failed probe is always judged with a fresh database state.
//!
//! # Invariants
//! * Never two instances: `Spawn` is only returned from `Down`, and `Down` is only entered once
//!   the whole process group is gone (`Gone`).
//! * Every stop is graceful first: SIGTERM, `stop_timeout`, SIGKILL, `kill_timeout`; a group
//!   that survives that makes the node unable to correct itself: `StopPetting`, state `failed`.
//! * No correction while holding (database down), in maintenance, failed, or shutting down.
//! * Restarts are bounded: at most `max_restarts` within `restart_window`; beyond that the
//!   machine stops Bitbucket and waits for an operator (no flapping).
//! * `step` never allocates: actions and event details have fixed capacity.

#![forbid(unsafe_code)]

use core::fmt::Write as _;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::probe::ExitKind;
use crate::probe::{BbState, ProbeFailure, ProbeOutcome};

/// Exit status of a JVM started with `-XX:+ExitOnOutOfMemoryError`.
pub const OOME_EXIT_CODE: i32 = 3;

/// Longest event detail kept, bytes (longer details are cut).
pub const DETAIL_CAPACITY: usize = 160;

/// Most actions one step can return.
pub const MAX_ACTIONS: usize = 12;

/// A short human-readable explanation attached to events and states.
pub type Detail = heapless::String<DETAIL_CAPACITY>;

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

/// Kinds of events (the `kind` field of status events and `BBWD_EVENT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    DaemonStart,
    Adopted,
    Start,
    Healthy,
    CheckFailed,
    Recovered,
    Correcting,
    Stop,
    Kill,
    Exited,
    Crash,
    Oome,
    Restart,
    StartFailed,
    RestartsExhausted,
    Failed,
    Unkillable,
    WatchdogStop,
    DbDown,
    DbUp,
    MaintenanceOn,
    MaintenanceOff,
    Reset,
    Shutdown,
    Stopped,
    /// The hardware watchdog was armed (emitted by the daemon, not the machine).
    WatchdogArmed,
    /// The hardware watchdog says it caused the node's last reset (daemon).
    WatchdogResetLastBoot,
    /// A loop pass came within half the watchdog timeout of a reset (daemon).
    WatchdogLatePass,
    /// The hardware watchdog was disarmed on a clean stop (daemon).
    WatchdogDisarmed,
    /// Mirror-farm node: the kernel says the clock is not synchronised (daemon, adjtimex).
    ClockUnsynced,
    /// Mirror-farm node: the kernel clock is synchronised again (daemon).
    ClockSynced,
    /// A start was refused: something already answers on `status_url`.
    StartRefused,
    /// Our process group is gone but `/status` still answers: something escaped the group.
    Escaped,
    /// The loop itself fell behind (daemon): a pass or a wait took far longer than planned.
    LoopStall,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::DaemonStart => "daemon_start",
            EventKind::Adopted => "adopted",
            EventKind::Start => "start",
            EventKind::Healthy => "healthy",
            EventKind::CheckFailed => "check_failed",
            EventKind::Recovered => "recovered",
            EventKind::Correcting => "correcting",
            EventKind::Stop => "stop",
            EventKind::Kill => "kill",
            EventKind::Exited => "exited",
            EventKind::Crash => "crash",
            EventKind::Oome => "oome",
            EventKind::Restart => "restart",
            EventKind::StartFailed => "start_failed",
            EventKind::RestartsExhausted => "restarts_exhausted",
            EventKind::Failed => "failed",
            EventKind::Unkillable => "unkillable",
            EventKind::WatchdogStop => "watchdog_stop",
            EventKind::DbDown => "db_down",
            EventKind::DbUp => "db_up",
            EventKind::MaintenanceOn => "maintenance_on",
            EventKind::MaintenanceOff => "maintenance_off",
            EventKind::Reset => "reset",
            EventKind::Shutdown => "shutdown",
            EventKind::Stopped => "stopped",
            EventKind::WatchdogArmed => "watchdog_armed",
            EventKind::WatchdogResetLastBoot => "watchdog_reset_last_boot",
            EventKind::WatchdogLatePass => "watchdog_late_pass",
            EventKind::WatchdogDisarmed => "watchdog_disarmed",
            EventKind::ClockUnsynced => "clock_unsynced",
            EventKind::ClockSynced => "clock_synced",
            EventKind::StartRefused => "start_refused",
            EventKind::Escaped => "escaped",
            EventKind::LoopStall => "loop_stall",
        }
    }

    /// How much it matters to an operator (`BBWD_SEVERITY`): critical when Bitbucket is down
    /// until a person acts, warning when something went wrong and is being corrected.
    pub fn severity(self) -> crate::severity::Severity {
        use crate::severity::Severity;
        match self {
            EventKind::RestartsExhausted
            | EventKind::Failed
            | EventKind::Unkillable
            | EventKind::StartFailed
            | EventKind::WatchdogStop
            | EventKind::StartRefused
            | EventKind::Escaped => Severity::Critical,
            k if k.is_problem() => Severity::Warning,
            _ => Severity::Info,
        }
    }

    /// Events that mean something is wrong (logged as warnings).
    pub fn is_problem(self) -> bool {
        matches!(
            self,
            EventKind::CheckFailed
                | EventKind::Correcting
                | EventKind::Kill
                | EventKind::Crash
                | EventKind::Oome
                | EventKind::StartFailed
                | EventKind::RestartsExhausted
                | EventKind::Failed
                | EventKind::Unkillable
                | EventKind::WatchdogStop
                | EventKind::WatchdogResetLastBoot
                | EventKind::WatchdogLatePass
                | EventKind::ClockUnsynced
                | EventKind::DbDown
                | EventKind::StartRefused
                | EventKind::Escaped
                | EventKind::LoopStall
        )
    }
}

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

/// Why the machine gave up and waits for an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailReason {
    /// Exited, or stayed unhealthy past `startup_timeout`, after a start.
    StartFailed,
    /// More than `max_restarts` within `restart_window`.
    RestartsExhausted,
    /// The process group survived SIGKILL.
    Unkillable,
    /// The command could not be executed at all.
    SpawnFailed,
    /// Something else already answers on `status_url`: starting would make two Bitbuckets.
    AlreadyServing,
    /// The persisted `failed` file could not be read or understood: fail safe, stay failed.
    UnreadableState,
}

impl FailReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailReason::StartFailed => "start_failed",
            FailReason::RestartsExhausted => "restarts_exhausted",
            FailReason::Unkillable => "unkillable",
            FailReason::SpawnFailed => "spawn_failed",
            FailReason::AlreadyServing => "already_serving",
            FailReason::UnreadableState => "unreadable_state",
        }
    }
    /// Reasons that survive a bbwd restart (persisted in `state_dir`). An unkillable process
    /// ends with a watchdog reset, after which starting again is the right thing to do.
    /// Whatever answered on `status_url` is checked again at the next start.
    pub fn persistent(self) -> bool {
        !matches!(self, FailReason::Unkillable | FailReason::AlreadyServing)
    }
    pub fn parse(s: &str) -> Option<FailReason> {
        [
            FailReason::StartFailed,
            FailReason::RestartsExhausted,
            FailReason::Unkillable,
            FailReason::SpawnFailed,
            FailReason::AlreadyServing,
            FailReason::UnreadableState,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// A persisted state file as the loop found it at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Persisted<'a> {
    Missing,
    /// It exists but could not be read (I/O error, not UTF-8).
    Unreadable,
    Text(&'a str),
}

/// The `failed` a restarted bbwd starts from. Corrupt state fails safe, as a corrupt
/// `maintenance` file keeps maintenance: an unreadable or unknown `failed` file stays failed
/// (`UnreadableState`) until an operator resets it; it never silently starts Bitbucket.
pub fn boot_failed(file: Persisted<'_>) -> Option<FailReason> {
    match file {
        Persisted::Missing => None,
        Persisted::Unreadable => Some(FailReason::UnreadableState),
        Persisted::Text(t) => {
            Some(FailReason::parse(t.trim()).unwrap_or(FailReason::UnreadableState))
        }
    }
}

/// Whether a persisted `maintenance` file keeps maintenance on: present in any form (readable
/// or not) keeps it; only a missing file means none.
pub fn boot_maintenance(file: Persisted<'_>) -> bool {
    !matches!(file, Persisted::Missing)
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

/// What comes after `CheckFree` is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum AfterCheck {
    /// Start (a restart when `restart`), if nothing answers.
    Spawn { restart: bool },
    /// bbwd is shutting down: say whether the stop really stopped Bitbucket, then exit.
    Exit,
}

/// What to do once the process group is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Then {
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
enum Proc {
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

/// How a `/status` reply is judged at a given moment (SPEC failure table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Verdict {
    /// RUNNING, MAINTENANCE, FIRST_RUN.
    Healthy,
    /// 503 STARTING within `startup_timeout` of a start: not a failure, not yet healthy.
    Grace,
    Failed,
}

/// What persisted state the machine starts from.
#[derive(Debug, Clone, Default)]
pub struct Boot {
    /// A Bitbucket left running by an earlier bbwd, re-adopted.
    pub adopted_pid: Option<i32>,
    /// `failed` persisted by an earlier bbwd.
    pub failed: Option<FailReason>,
    /// Operator maintenance persisted by an earlier bbwd, with its reason.
    pub maintenance: Option<Detail>,
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

/// The supervisor. See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Machine {
    s: Settings,
    proc: Proc,
    failed: Option<FailReason>,
    maintenance: Option<Detail>,
    db: Db,
    shutting_down: bool,
    consecutive_failures: u32,
    next_check: Instant,
    check_in_flight: bool,
    /// Start times of restarts within the window, oldest first; capacity fixed at creation.
    restarts: VecDeque<Instant>,
    last_probe: Option<ProbeOutcome>,
    petting: bool,
    /// Pair mode: the pair layer allows Bitbucket to run on this node. Always true alone.
    permitted: bool,
    /// Pair mode: permitted while an adopted Bitbucket already runs (a resumed service): the
    /// next healthy check is reported as `Healthy`, as a start's would be.
    report_healthy: bool,
}

/// Actions returned by one step.
pub type Actions = heapless::Vec<Action, MAX_ACTIONS>;

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

    /// Feeds one input at `now`; returns what to do.
    pub fn step(&mut self, now: Instant, input: Input) -> Actions {
        let mut out = Actions::new();
        match input {
            Input::Tick => self.on_tick(now, &mut out),
            Input::Started { pid } => self.on_started(now, pid, &mut out),
            Input::SpawnFailed { detail } => self.on_spawn_failed(detail, &mut out),
            Input::Checked { probe, db_up } => self.on_checked(now, probe, db_up, &mut out),
            Input::Exited { kind } => self.on_exited(now, kind, &mut out),
            Input::Gone => self.on_gone(&mut out),
            Input::FreeChecked { occupied } => self.on_free_checked(occupied, &mut out),
            Input::OomeLine => self.on_oome_line(now, &mut out),
            Input::Maintenance { on, reason } => self.on_maintenance(now, on, reason, &mut out),
            Input::Reset => self.on_reset(now, &mut out),
            Input::Shutdown => self.on_shutdown(now, &mut out),
            Input::Permit { run } => self.on_permit(now, run, &mut out),
        }
        self.after_step(&mut out);
        out
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

    fn pid(&self) -> Option<i32> {
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
    fn wants_running(&self) -> bool {
        self.permitted && self.failed.is_none() && self.maintenance.is_none() && !self.shutting_down
    }

    fn report(&self, out: &mut Actions, r: Report) {
        if self.s.pair {
            push(out, Action::Report(r));
        }
    }

    fn on_permit(&mut self, now: Instant, run: bool, out: &mut Actions) {
        self.permitted = run;
        if run {
            // A takeover starts afresh: the budget counts restarts on this node's watch.
            self.restarts.clear();
            // Already running (adopted by a restarted bbwd): the pair hears of its health at the
            // next good check.
            self.report_healthy = matches!(self.proc, Proc::Up { .. });
            return;
        }
        self.report_healthy = false;
        match &mut self.proc {
            Proc::Starting { .. } | Proc::Up { .. } => self.stop(now, Then::StayDown, out),
            Proc::Stopping { then, .. }
            | Proc::Killing { then, .. }
            | Proc::Reaping { then, .. } => {
                if *then == Then::Restart {
                    *then = Then::StayDown;
                }
            }
            Proc::Down => self.report(out, Report::Stopped),
            // Spawning: `Started` stops it (not permitted any more). Verifying: `FreeChecked`
            // does not start it. Unkillable: reported.
            Proc::Spawning { .. } | Proc::Verifying { .. } | Proc::Unkillable { .. } => {}
        }
    }

    /// Automatic correction is allowed now.
    fn may_correct(&self) -> bool {
        self.wants_running() && self.db != Db::Down
    }

    /// Checks are due while Bitbucket runs, and while a down process waits for the database.
    fn wants_checks(&self) -> bool {
        match self.proc {
            Proc::Starting { .. } | Proc::Up { .. } => true,
            Proc::Down => self.wants_running() && matches!(self.db, Db::Unknown | Db::Down),
            _ => false,
        }
    }

    fn on_tick(&mut self, now: Instant, out: &mut Actions) {
        match self.proc {
            Proc::Starting { deadline, .. } if now >= deadline => {
                if self.may_correct() {
                    let d = self.s.startup_timeout;
                    event(
                        out,
                        EventKind::StartFailed,
                        format_args!("not healthy within startup_timeout {d:?}"),
                    );
                    self.stop(now, Then::Fail(FailReason::StartFailed), out);
                } else if let Proc::Starting { deadline, .. } = &mut self.proc {
                    // Holding or maintenance: no verdict on the start while that lasts.
                    *deadline = now + self.s.startup_timeout;
                }
            }
            Proc::Stopping {
                pid,
                deadline,
                then,
                ..
            } if now >= deadline => {
                let d = self.s.stop_timeout;
                event(
                    out,
                    EventKind::Kill,
                    format_args!("pid {pid} still running {d:?} after SIGTERM: SIGKILL"),
                );
                push(out, Action::Signal(Sig::Kill));
                self.proc = Proc::Killing {
                    pid,
                    deadline: now + self.s.kill_timeout,
                    then,
                };
            }
            Proc::Killing { pid, deadline, .. } if now >= deadline => self.unkillable(pid, out),
            Proc::Reaping {
                pid,
                deadline,
                then,
            } if now >= deadline => {
                let d = self.s.stop_timeout;
                event(
                    out,
                    EventKind::Kill,
                    format_args!(
                        "members of pid {pid}'s process group still run {d:?} after it exited: SIGKILL"
                    ),
                );
                push(out, Action::Signal(Sig::Kill));
                self.proc = Proc::Killing {
                    pid,
                    deadline: now + self.s.kill_timeout,
                    then,
                };
            }
            _ => {}
        }
        if self.wants_checks() && !self.check_in_flight && now >= self.next_check {
            self.check_in_flight = true;
            self.next_check = now + self.s.monitor_interval;
            push(out, Action::Check);
        }
    }

    fn unkillable(&mut self, pid: i32, out: &mut Actions) {
        let d = self.s.kill_timeout;
        event(
            out,
            EventKind::Unkillable,
            format_args!("process group of pid {pid} survived SIGKILL for {d:?}"),
        );
        self.proc = Proc::Unkillable { pid };
        self.fail(FailReason::Unkillable, out);
        self.report(out, Report::Unkillable);
        if self.petting {
            self.petting = false;
            push(out, Action::StopPetting);
            event(
                out,
                EventKind::WatchdogStop,
                format_args!("the node cannot correct itself: watchdog no longer petted"),
            );
        }
    }

    fn on_started(&mut self, now: Instant, pid: i32, out: &mut Actions) {
        let restart = match self.proc {
            Proc::Spawning { restart } => restart,
            // A stray answer: the loop only spawns on request.
            _ => return,
        };
        self.consecutive_failures = 0;
        self.proc = Proc::Starting {
            pid,
            started_at: now,
            deadline: now + self.s.startup_timeout,
        };
        // The first check comes one interval after the start (Bitbucket needs time to bind).
        self.next_check = now + self.s.monitor_interval;
        if restart {
            let (n, max, w) = (
                self.restarts.len(),
                self.s.max_restarts,
                self.s.restart_window,
            );
            event(
                out,
                EventKind::Restart,
                format_args!("restart {n}/{max} within {w:?}: pid {pid}"),
            );
        } else {
            event(out, EventKind::Start, format_args!("started pid {pid}"));
        }
        if self.shutting_down {
            self.stop(now, Then::Shutdown, out);
        } else if !self.permitted {
            // The pair layer took the permission back while we were spawning.
            self.stop(now, Then::StayDown, out);
        }
    }

    fn on_spawn_failed(&mut self, detail: Detail, out: &mut Actions) {
        if !matches!(self.proc, Proc::Spawning { .. }) {
            return;
        }
        self.proc = Proc::Down;
        event(out, EventKind::StartFailed, format_args!("{detail}"));
        self.fail(FailReason::SpawnFailed, out);
        if self.shutting_down {
            self.finish_shutdown(out);
        }
    }

    fn on_checked(
        &mut self,
        now: Instant,
        probe: ProbeOutcome,
        db_up: Option<bool>,
        out: &mut Actions,
    ) {
        self.check_in_flight = false;
        self.last_probe = Some(probe);
        match (db_up, self.db) {
            (Some(false), Db::Unknown | Db::Up) => {
                self.db = Db::Down;
                event(
                    out,
                    EventKind::DbDown,
                    format_args!("database unreachable: holding, no correction"),
                );
            }
            (Some(true), Db::Down) => {
                self.db = Db::Up;
                self.consecutive_failures = 0;
                event(
                    out,
                    EventKind::DbUp,
                    format_args!("database reachable again: correction resumes"),
                );
                if let Proc::Starting { deadline, .. } = &mut self.proc {
                    *deadline = now + self.s.startup_timeout;
                }
            }
            (Some(true), Db::Unknown) => self.db = Db::Up,
            _ => {}
        }
        match self.proc {
            Proc::Starting {
                pid, started_at, ..
            } if self.verdict(now, started_at, &probe) == Verdict::Healthy => {
                self.proc = Proc::Up { pid, started_at };
                self.report(out, Report::Healthy);
                self.consecutive_failures = 0;
                event(
                    out,
                    EventKind::Healthy,
                    format_args!("pid {pid}: {}", ProbeText(&probe)),
                );
            }
            Proc::Up { started_at, .. } => match self.verdict(now, started_at, &probe) {
                Verdict::Healthy | Verdict::Grace => {
                    if self.report_healthy
                        && self.verdict(now, started_at, &probe) == Verdict::Healthy
                    {
                        self.report_healthy = false;
                        self.report(out, Report::Healthy);
                    }
                    if self.consecutive_failures > 0 {
                        let n = self.consecutive_failures;
                        event(
                            out,
                            EventKind::Recovered,
                            format_args!("{} after {n} failed checks", ProbeText(&probe)),
                        );
                    }
                    self.consecutive_failures = 0;
                }
                Verdict::Failed => {
                    self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                    let (n, max) = (self.consecutive_failures, self.s.failures_before_action);
                    if n <= max {
                        event(
                            out,
                            EventKind::CheckFailed,
                            format_args!("{} ({n}/{max})", ProbeText(&probe)),
                        );
                    }
                    if n >= max && self.may_correct() {
                        self.correct(
                            now,
                            EventKind::Correcting,
                            format_args!("{n} failed checks: {}", ProbeText(&probe)),
                            out,
                        );
                    }
                }
            },
            _ => {}
        }
    }

    /// Judges a probe against the SPEC failure table.
    fn verdict(&self, now: Instant, started_at: Instant, probe: &ProbeOutcome) -> Verdict {
        match *probe {
            ProbeOutcome::Reply {
                http_status: 200,
                state: Some(BbState::Running | BbState::Maintenance | BbState::FirstRun),
            } => Verdict::Healthy,
            ProbeOutcome::Reply {
                http_status: 503,
                state: Some(BbState::Starting),
            } if now < started_at + self.s.startup_timeout => Verdict::Grace,
            // STOPPING is only expected during our own stop, when no check runs.
            _ => Verdict::Failed,
        }
    }

    /// Begins a correction: graceful stop, then restart, within the restart budget.
    fn correct(
        &mut self,
        now: Instant,
        kind: EventKind,
        why: core::fmt::Arguments<'_>,
        out: &mut Actions,
    ) {
        event(out, kind, why);
        let then = self.restart_or_escalate(now, out);
        self.stop(now, then, out);
    }

    /// Counts a restart if the budget allows one; otherwise escalates.
    fn restart_or_escalate(&mut self, now: Instant, out: &mut Actions) -> Then {
        while let Some(&t) = self.restarts.front() {
            if now.saturating_duration_since(t) >= self.s.restart_window {
                self.restarts.pop_front();
            } else {
                break;
            }
        }
        if (self.restarts.len() as u32) < self.s.max_restarts {
            self.restarts.push_back(now);
            Then::Restart
        } else if self.s.pair {
            let (max, w) = (self.s.max_restarts, self.s.restart_window);
            event(
                out,
                EventKind::RestartsExhausted,
                format_args!("{max} restarts within {w:?} already: failing over to the peer"),
            );
            // Stop here and let the pair layer hand the service over.
            self.permitted = false;
            self.report(out, Report::Escalate);
            Then::StayDown
        } else {
            let (max, w) = (self.s.max_restarts, self.s.restart_window);
            event(
                out,
                EventKind::RestartsExhausted,
                format_args!("{max} restarts within {w:?} already: giving up"),
            );
            Then::Fail(FailReason::RestartsExhausted)
        }
    }

    /// SIGTERM to the group (or, if the leader is already gone, straight to reaping).
    fn stop(&mut self, now: Instant, then: Then, out: &mut Actions) {
        let Some(pid) = self.pid() else { return };
        event(
            out,
            EventKind::Stop,
            format_args!("SIGTERM to process group {pid}"),
        );
        push(out, Action::Signal(Sig::Term));
        self.proc = Proc::Stopping {
            pid,
            deadline: now + self.s.stop_timeout,
            then,
            leader_gone: false,
        };
    }

    fn on_exited(&mut self, now: Instant, kind: ExitKind, out: &mut Actions) {
        event(out, EventKind::Exited, format_args!("{}", ExitText(kind)));
        match self.proc {
            Proc::Starting { .. } => {
                let then = if self.shutting_down {
                    Then::Shutdown
                } else if self.may_correct() {
                    event(
                        out,
                        EventKind::StartFailed,
                        format_args!("{} during startup", ExitText(kind)),
                    );
                    Then::Fail(FailReason::StartFailed)
                } else {
                    Then::StayDown
                };
                self.reap(now, then, out);
            }
            Proc::Up { .. } => {
                let oome = kind == ExitKind::Exited(OOME_EXIT_CODE);
                let then = if self.shutting_down {
                    Then::Shutdown
                } else if self.may_correct() {
                    if oome {
                        event(
                            out,
                            EventKind::Oome,
                            format_args!("{} (OutOfMemoryError): restart", ExitText(kind)),
                        );
                    } else {
                        event(
                            out,
                            EventKind::Crash,
                            format_args!("{}: restart at once", ExitText(kind)),
                        );
                    }
                    self.restart_or_escalate(now, out)
                } else {
                    Then::StayDown
                };
                self.reap(now, then, out);
            }
            Proc::Stopping {
                ref mut leader_gone,
                ..
            } => *leader_gone = true,
            _ => {}
        }
    }

    /// The leader is gone by itself: what is left of its group gets the same graceful stop as
    /// any stop (SIGTERM, `stop_timeout`, SIGKILL, `kill_timeout`); wait for `Gone`. An empty
    /// group (the usual case) is `Gone` at once and the SIGTERM reaches nobody.
    fn reap(&mut self, now: Instant, then: Then, out: &mut Actions) {
        push(out, Action::Signal(Sig::Term));
        self.proc = Proc::Reaping {
            pid: self.pid().unwrap_or(0),
            deadline: now + self.s.stop_timeout,
            then,
        };
    }

    fn on_gone(&mut self, out: &mut Actions) {
        let then = match self.proc {
            Proc::Stopping { then, .. }
            | Proc::Killing { then, .. }
            | Proc::Reaping { then, .. } => then,
            // Died on its own at last; still failed (the watchdog decision stands).
            Proc::Unkillable { .. } => Then::StayDown,
            // Starting/Up: `Exited` precedes `Gone` and moves to Reaping; anything else is stale.
            _ => return,
        };
        // A check still in flight stays so until its `Checked` arrives (each has its own
        // timeout): checks never overlap. The last reply belonged to the process that is gone.
        self.proc = Proc::Down;
        self.last_probe = None;
        match then {
            Then::Restart if self.may_correct() => {
                self.verify(AfterCheck::Spawn { restart: true }, out);
            }
            Then::Fail(reason) => self.fail(reason, out),
            Then::Restart | Then::StayDown | Then::Shutdown => {}
        }
        if !self.permitted && !self.shutting_down {
            // Pair mode: the release's "stop Bitbucket" step is done.
            self.report(out, Report::Stopped);
        }
        if then == Then::Shutdown || self.shutting_down {
            // "Bitbucket stopped" only once /status says so too.
            self.verify(AfterCheck::Exit, out);
        }
    }

    /// Asks whether anything answers on `status_url` before `next`.
    fn verify(&mut self, next: AfterCheck, out: &mut Actions) {
        self.proc = Proc::Verifying { next };
        push(out, Action::CheckFree);
    }

    fn on_free_checked(&mut self, occupied: Option<Detail>, out: &mut Actions) {
        let Proc::Verifying { next } = self.proc else {
            // A stray answer: the loop only checks on request.
            return;
        };
        self.proc = Proc::Down;
        match (next, occupied) {
            (AfterCheck::Exit, None) => self.finish_shutdown(out),
            (AfterCheck::Exit, Some(what)) => {
                event(
                    out,
                    EventKind::Escaped,
                    format_args!(
                        "Bitbucket's process group is gone but {what}: a process escaped the group"
                    ),
                );
                push(out, Action::Exit);
            }
            (AfterCheck::Spawn { .. }, _) if self.shutting_down => self.finish_shutdown(out),
            (AfterCheck::Spawn { .. }, _) if !self.wants_running() => {
                if !self.permitted {
                    self.report(out, Report::Stopped);
                }
            }
            (AfterCheck::Spawn { restart }, None) => {
                self.proc = Proc::Spawning { restart };
                push(out, Action::Spawn);
            }
            (AfterCheck::Spawn { .. }, Some(what)) => {
                event(
                    out,
                    EventKind::StartRefused,
                    format_args!("not starting a second Bitbucket: {what}"),
                );
                self.fail(FailReason::AlreadyServing, out);
            }
        }
    }

    fn fail(&mut self, reason: FailReason, out: &mut Actions) {
        if self.failed.is_none() {
            if matches!(reason, FailReason::StartFailed | FailReason::SpawnFailed) {
                self.report(out, Report::StartFailed);
            }
            self.failed = Some(reason);
            event(
                out,
                EventKind::Failed,
                format_args!(
                    "{}: manual intervention needed (bbwd reset)",
                    reason.as_str()
                ),
            );
        }
    }

    fn on_oome_line(&mut self, now: Instant, out: &mut Actions) {
        if matches!(self.proc, Proc::Up { .. } | Proc::Starting { .. }) && self.may_correct() {
            self.correct(
                now,
                EventKind::Oome,
                format_args!("OutOfMemoryError in Bitbucket's output: restart"),
                out,
            );
        }
    }

    fn on_maintenance(&mut self, now: Instant, on: bool, reason: Detail, out: &mut Actions) {
        if on {
            // No reason given: keep the one of a maintenance already on (a `--maint` relabel
            // must not lose "upgrade to 9.4"), else say who asked.
            let reason = match (reason.is_empty(), &self.maintenance) {
                (true, Some(current)) => current.clone(),
                (true, None) => detail("operator"),
                (false, _) => reason,
            };
            if self.maintenance.is_none() {
                event(out, EventKind::MaintenanceOn, format_args!("{reason}"));
            }
            self.maintenance = Some(reason);
        } else if self.maintenance.take().is_some() {
            self.consecutive_failures = 0;
            self.next_check = now;
            event(
                out,
                EventKind::MaintenanceOff,
                format_args!("automatic correction resumes"),
            );
        }
    }

    fn on_reset(&mut self, now: Instant, out: &mut Actions) {
        // A node that stopped petting its watchdog is about to be reset: nothing to clear.
        // Without a hardware watchdog, nothing will reset it: once the group is really gone,
        // the operator's reset recovers.
        if self.reset_refused().is_some() {
            return;
        }
        if !self.petting {
            self.petting = true;
            push(out, Action::ResumePetting);
        }
        self.failed = None;
        self.restarts.clear();
        self.consecutive_failures = 0;
        self.next_check = now;
        event(
            out,
            EventKind::Reset,
            format_args!("operator cleared the failure"),
        );
    }

    fn on_shutdown(&mut self, now: Instant, out: &mut Actions) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        event(
            out,
            EventKind::Shutdown,
            format_args!("stopping Bitbucket, then bbwd"),
        );
        match &mut self.proc {
            Proc::Starting { .. } | Proc::Up { .. } => self.stop(now, Then::Shutdown, out),
            Proc::Stopping { then, .. }
            | Proc::Killing { then, .. }
            | Proc::Reaping { then, .. } => *then = Then::Shutdown,
            Proc::Down => self.finish_shutdown(out),
            // Spawning: `Started` stops it at once. Verifying: `FreeChecked` ends it.
            // Unkillable: wait for the watchdog.
            Proc::Spawning { .. } | Proc::Verifying { .. } | Proc::Unkillable { .. } => {}
        }
    }

    fn finish_shutdown(&mut self, out: &mut Actions) {
        event(out, EventKind::Stopped, format_args!("Bitbucket stopped"));
        push(out, Action::Exit);
    }

    /// Reconciles after every step: start Bitbucket when it should run and nothing runs.
    fn after_step(&mut self, out: &mut Actions) {
        if self.proc == Proc::Down
            && self.wants_running()
            && matches!(self.db, Db::NotConfigured | Db::Up)
        {
            self.verify(AfterCheck::Spawn { restart: false }, out);
        }
    }
}

/// Appends an action. Capacity is sized for the longest step; overflowing it is a bug.
fn push(out: &mut Actions, a: Action) {
    if out.push(a).is_err() {
        debug_assert!(false, "MAX_ACTIONS too small");
    }
}

/// Appends an event, formatting its detail into fixed capacity (cut when longer).
fn event(out: &mut Actions, kind: EventKind, args: core::fmt::Arguments<'_>) {
    let mut d = Detail::new();
    let _ = CutWriter(&mut d).write_fmt(args);
    push(out, Action::Event(kind, d));
}

/// Writes into a `heapless::String`, silently cutting at capacity (on a char boundary).
struct CutWriter<'a>(&'a mut Detail);

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

#[cfg(test)]
mod tests;
