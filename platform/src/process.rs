//! The supervised Bitbucket process: spawn it in its own process group, adopt one left running
//! by an earlier bbwd, learn of its exit at once (a pidfd to poll), signal its whole group, and
//! capture its output without ever blocking it.
//!
//! Must not: decide when to signal or restart (the state machine does), or wait: every call
//! returns at once.
//!
//! # Invariants
//! * A `Supervised` refers to exactly one process, identified by (pid, start time), so a
//!   recycled pid is never mistaken for Bitbucket.
//! * The group is "gone" only when the leader has been reaped (or, for an adopted process, its
//!   pidfd reported exit) *and* `kill(-pgid, 0)` says no member is left.
//! * The output pipe is drained by the event loop; it is never read with a blocking call, and the
//!   child never holds the read end.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

/// How to start Bitbucket. Resolved once at start-up (user lookup included).
#[derive(Debug, Clone)]
pub struct SpawnSpec {
    /// argv[0] is the program (absolute path or found in PATH).
    pub argv: Vec<String>,
    /// Run as this user (uid, primary gid, supplementary groups, HOME, USER, LOGNAME).
    pub user: Option<RunAs>,
    /// Extra environment, on top of bbwd's own environment.
    pub env: Vec<(String, String)>,
    /// Capture stdout+stderr through a pipe drained by bbwd (for the OutOfMemoryError line);
    /// otherwise the child inherits bbwd's stdout/stderr (the journal).
    pub capture_output: bool,
}

/// A resolved user to run as.
#[derive(Debug, Clone)]
pub struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: std::path::PathBuf,
}

impl RunAs {
    /// Looks a user name up in the passwd database. Errors name the user.
    pub fn lookup(name: &str) -> Result<RunAs, Error> {
        let _ = name;
        todo!()
    }
}

/// What is recorded in the pid file so that a restarted bbwd can re-adopt Bitbucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidRecord {
    pub pid: i32,
    pub pgid: i32,
    /// Field 22 of /proc/PID/stat (clock ticks since boot): tells a recycled pid apart.
    pub start_ticks: u64,
}

/// How the leader ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// exit(code).
    Exited(i32),
    /// Killed by this signal number.
    Signaled(i32),
    /// Not our child (adopted): it is gone, but its status is unknowable.
    Unknown,
}

/// Errors, each naming the operation.
#[derive(Debug)]
pub enum Error {
    Spawn { program: String, source: std::io::Error },
    UnknownUser(String),
    Pidfd(std::io::Error),
    Signal(std::io::Error),
    PidFile { path: std::path::PathBuf, source: std::io::Error },
    PidFileCorrupt { path: std::path::PathBuf, reason: String },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let _ = f;
        todo!()
    }
}
impl std::error::Error for Error {}

/// Signals the state machine may send to the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupSignal {
    Term,
    Kill,
}

/// The supervised process.
pub struct Supervised {
    _private: (),
}

impl Supervised {
    /// Spawns `spec` as the leader of a new process group and opens a pidfd on it.
    pub fn spawn(spec: &SpawnSpec) -> Result<Supervised, Error> {
        let _ = spec;
        todo!()
    }

    /// Re-adopts the process in `record` when it still runs and is the same process (same
    /// start time). `Ok(None)` when it is gone or the pid now belongs to another process.
    pub fn adopt(record: &PidRecord) -> Result<Option<Supervised>, Error> {
        let _ = record;
        todo!()
    }

    pub fn pid(&self) -> i32 {
        todo!()
    }

    /// What to write into the pid file.
    pub fn record(&self) -> PidRecord {
        todo!()
    }

    /// Whether bbwd is the parent (false for an adopted process).
    pub fn is_child(&self) -> bool {
        todo!()
    }

    /// Readable when the leader has exited. `None` once the exit has been collected.
    pub fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        todo!()
    }

    /// Collects the leader's exit if it has happened (non-blocking). Returns it once.
    pub fn try_collect_exit(&mut self) -> Option<ExitKind> {
        todo!()
    }

    /// Sends `sig` to the whole process group. ESRCH (nobody left) is not an error.
    pub fn signal_group(&self, sig: GroupSignal) -> Result<(), Error> {
        let _ = sig;
        todo!()
    }

    /// True while the leader runs or any member of its group is left.
    pub fn group_alive(&mut self) -> bool {
        todo!()
    }

    /// The read end of the output pipe, when capturing (non-blocking).
    pub fn output_fd(&self) -> Option<BorrowedFd<'_>> {
        todo!()
    }

    /// Drains what the output pipe holds now, calling `line` for each complete line (a line
    /// longer than the internal buffer is passed in pieces). Never blocks. Returns false at
    /// EOF (the writers are gone), after which `output_fd` is `None`.
    pub fn drain_output(&mut self, line: &mut dyn FnMut(&[u8])) -> bool {
        let _ = line;
        todo!()
    }

    /// Hands over the output pipe's read end (for systemd's fd store), keeping a duplicate.
    pub fn output_dup(&self) -> Option<OwnedFd> {
        todo!()
    }

    /// Attaches an output pipe read end recovered after a bbwd restart to an adopted process.
    pub fn attach_output(&mut self, fd: OwnedFd) {
        let _ = fd;
        todo!()
    }
}

/// Writes the pid file atomically (temp file + rename, mode 0644).
pub fn write_pidfile(path: &Path, record: &PidRecord) -> Result<(), Error> {
    let _ = (path, record);
    todo!()
}

/// Reads the pid file; `Ok(None)` when it does not exist; a corrupt file is an error naming it.
pub fn read_pidfile(path: &Path) -> Result<Option<PidRecord>, Error> {
    let _ = path;
    todo!()
}

/// Removes the pid file; a missing file is fine.
pub fn remove_pidfile(path: &Path) -> Result<(), Error> {
    let _ = path;
    todo!()
}
