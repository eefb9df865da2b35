//! What a (re)started bbwd's supervisor starts from ([`Boot`]): a Bitbucket left running, and
//! the persisted overlays read back from `state_dir` ([`boot_failed`], [`boot_maintenance`]),
//! with the reasons a node can be `failed` for ([`FailReason`]).
//!
//! Corrupt state fails safe: an unreadable or unknown `failed` file stays failed, an unreadable
//! `maintenance` file keeps maintenance. Must not: read the files (the loop does, and hands
//! over what it found as [`Persisted`]).

use super::Detail;

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
