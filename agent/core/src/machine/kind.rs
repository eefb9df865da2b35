//! The supervisor's event kinds ([`EventKind`], also those the daemon emits): their names in
//! status and `BBWD_EVENT`, and how much each matters to an operator.
//!
//! Must not: decide when an event is emitted or what its detail says.

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
