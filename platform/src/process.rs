//! The supervised Bitbucket process: spawn it in its own process group, adopt one left running
//! by an earlier bbwd, learn of its exit at once (a pidfd to poll), signal its whole group, and
//! capture its output without ever blocking it.
//!
//! Must not: decide when to signal or restart (the state machine does), or wait: every call
//! returns at once (the one exception is the clean-up of a child whose set-up failed half-way
//! in `spawn`, which SIGKILLs and reaps it).
//!
//! # Theory of operation
//! ```text
//!   spawn ──► leader Running ──(pidfd readable)──► try_collect_exit ──► Some(ExitKind), once
//!               │                                        │
//!               │ signal_group(Term|Kill) = kill(-pgid)  ▼
//!               └──────────────────────────────► group_alive: leader collected
//!                                                   && kill(-pgid, 0) == ESRCH  => gone
//! ```
//! The leader is started with `process_group(0)`, so its pgid is its pid and everything it
//! starts (the JVM, helper shells) stays in that group unless it calls `setsid`/`setpgid`.
//! A pid file (`pid pgid start_ticks`) lets a restarted bbwd `adopt` the same process; the
//! start time (field 22 of `/proc/PID/stat`) tells a recycled pid apart.
//!
//! # Invariants
//! * A `Supervised` refers to exactly one process, identified by (pid, start time), so a
//!   recycled pid is never mistaken for Bitbucket.
//! * The group is "gone" only when the leader has been reaped (or, for an adopted process, its
//!   pidfd reported exit) *and* `kill(-pgid, 0)` says no member is left.
//! * The output pipe is drained by the event loop; it is never read with a blocking call, and the
//!   child never holds the read end (it is `O_CLOEXEC` from its creation).
//! * Only the one pid we started is ever `waitpid`ed: never `waitpid(-1)`, which would steal the
//!   exits of `command` jobs.
//! * A group signal is never sent to pgid 0 or 1 or to bbwd's own process group.
//! * Dropping a `Supervised` neither signals nor reaps: Bitbucket outlives a bbwd restart, and
//!   the next bbwd adopts it from the pid file.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Size of the output line buffer. A line longer than this is passed to the caller in pieces
/// of this size (the OutOfMemoryError line is far shorter).
pub const OUTPUT_BUF_BYTES: usize = 4096;

/// At most this many `read`s per `drain_output` call (256 KiB with a 4 KiB buffer), so a child
/// that writes without pause cannot keep the event loop in one call; the fd stays readable and
/// the loop comes back.
const DRAIN_MAX_READS: usize = 64;

/// A pid file larger than this is corrupt (a valid one is at most ~80 bytes).
const PIDFILE_MAX_BYTES: u64 = 128;

/// Variables systemd sets for bbwd itself; a child must not see them (it would otherwise be
/// able to talk to systemd in bbwd's name, or mistake bbwd's sockets for its own).
pub(crate) const SYSTEMD_ONLY_ENV: [&str; 6] = [
    "NOTIFY_SOCKET",
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
];

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
    /// Supplementary groups (as `initgroups(3)` would set them, primary gid included),
    /// resolved by `lookup` so that spawning needs no name-service call.
    pub groups: Vec<u32>,
}

impl RunAs {
    /// Looks a user name up in the passwd database. Errors name the user.
    pub fn lookup(name: &str) -> Result<RunAs, Error> {
        let lookup_err = |source: io::Error| Error::UserLookup {
            user: name.to_string(),
            source,
        };
        let user = match nix::unistd::User::from_name(name) {
            Ok(Some(user)) => user,
            Ok(None) => return Err(Error::UnknownUser(name.to_string())),
            Err(e) => return Err(lookup_err(e.into())),
        };
        let cname = CString::new(name)
            .map_err(|_| lookup_err(io::Error::from(io::ErrorKind::InvalidInput)))?;
        let groups = nix::unistd::getgrouplist(&cname, user.gid)
            .map_err(|e| lookup_err(e.into()))?
            .into_iter()
            .map(|g| g.as_raw())
            .collect();
        Ok(RunAs {
            name: name.to_string(),
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            home: user.dir,
            groups,
        })
    }
}

/// What is recorded in the pid file so that a restarted bbwd can re-adopt Bitbucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidRecord {
    pub pid: i32,
    pub pgid: i32,
    /// Field 22 of /proc/PID/stat (clock ticks since boot): tells a recycled pid apart.
    pub start_ticks: u64,
    /// `/proc/sys/kernel/random/boot_id` when the record was made: a record from an earlier
    /// boot (a `state_dir` that survived a reboot) names nothing that runs now. `None` in pid
    /// files of older bbwd versions: such a record may be adopted, but its group is never
    /// signalled on its word alone.
    pub boot_id: Option<u128>,
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`), read once.
pub fn boot_id() -> Option<u128> {
    static ID: std::sync::OnceLock<Option<u128>> = std::sync::OnceLock::new();
    *ID.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .and_then(|t| parse_boot_id(&t))
    })
}

fn parse_boot_id(text: &str) -> Option<u128> {
    let hex: String = text.trim().chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    u128::from_str_radix(&hex, 16).ok()
}

impl PidRecord {
    /// Whether the record was made during this boot (never true for an old-format record).
    pub fn this_boot(&self) -> bool {
        self.boot_id.is_some() && self.boot_id == boot_id()
    }
}

pub use bbwd_core::probe::ExitKind;

/// Errors, each naming the operation.
#[derive(Debug)]
pub enum Error {
    Spawn {
        program: String,
        source: std::io::Error,
    },
    UnknownUser(String),
    /// The passwd/group lookup itself failed (NSS down, ...).
    UserLookup {
        user: String,
        source: std::io::Error,
    },
    Pidfd(std::io::Error),
    /// Reading `/proc/PID/stat` failed.
    Stat {
        pid: i32,
        source: std::io::Error,
    },
    Signal(std::io::Error),
    PidFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    PidFileCorrupt {
        path: std::path::PathBuf,
        reason: String,
    },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Spawn { program, source } => write!(f, "cannot start {program}: {source}"),
            Error::UnknownUser(user) if cfg!(target_env = "musl") => write!(
                f,
                "unknown user {user:?} (this bbwd is linked statically with musl: users come from \
                 /etc/passwd, or nscd if it runs, never from NSS modules such as sssd or LDAP)"
            ),
            Error::UnknownUser(user) => write!(f, "unknown user {user:?}"),
            Error::UserLookup { user, source } => {
                write!(f, "cannot look up user {user:?}: {source}")
            }
            Error::Pidfd(source) => write!(
                f,
                "cannot open a pidfd (pidfd_open needs Linux 5.3 or later): {source}"
            ),
            Error::Stat { pid, source } => write!(f, "cannot read /proc/{pid}/stat: {source}"),
            Error::Signal(source) => write!(f, "cannot signal the process group: {source}"),
            Error::PidFile { path, source } => {
                write!(f, "pid file {}: {source}", path.display())
            }
            Error::PidFileCorrupt { path, reason } => {
                write!(f, "pid file {} is corrupt: {reason}", path.display())
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Spawn { source, .. }
            | Error::UserLookup { source, .. }
            | Error::Stat { source, .. }
            | Error::PidFile { source, .. } => Some(source),
            Error::Pidfd(source) | Error::Signal(source) => Some(source),
            Error::UnknownUser(_) | Error::PidFileCorrupt { .. } => None,
        }
    }
}

/// Signals the state machine may send to the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupSignal {
    Term,
    Kill,
}

impl GroupSignal {
    fn to_nix(self) -> Signal {
        match self {
            GroupSignal::Term => Signal::SIGTERM,
            GroupSignal::Kill => Signal::SIGKILL,
        }
    }
}

/// Where the leader's exit stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leader {
    Running,
    /// Reaped (or, adopted, seen gone) but not yet returned by `try_collect_exit`.
    Ended(ExitKind),
    /// Returned by `try_collect_exit`; the pidfd is closed.
    Reported,
}

/// The read end of the output pipe with its line buffer.
struct Output {
    fd: OwnedFd,
    buf: Box<[u8]>,
    /// Bytes of an unfinished line at the start of `buf`. Always `< buf.len()` between calls.
    filled: usize,
}

/// What one `read` on the output pipe gave.
enum ReadResult {
    Data,
    Empty,
    Closed,
}

impl Output {
    fn new(fd: OwnedFd) -> Output {
        Output {
            fd,
            buf: vec![0u8; OUTPUT_BUF_BYTES].into_boxed_slice(),
            filled: 0,
        }
    }

    fn read_once(&mut self, line: &mut dyn FnMut(&[u8])) -> ReadResult {
        loop {
            match nix::unistd::read(&self.fd, &mut self.buf[self.filled..]) {
                Ok(0) => {
                    self.flush(line);
                    return ReadResult::Closed;
                }
                Ok(n) => {
                    self.filled += n;
                    self.split(line);
                    return ReadResult::Data;
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return ReadResult::Empty,
                Err(e) => {
                    log::warn!("reading Bitbucket's output pipe failed: {e}; closing it");
                    self.flush(line);
                    return ReadResult::Closed;
                }
            }
        }
    }

    /// Passes each complete line (without its `\n`), keeps the unfinished rest at the front,
    /// and passes a full buffer without a newline as one piece.
    fn split(&mut self, line: &mut dyn FnMut(&[u8])) {
        let mut start = 0;
        while let Some(i) = self.buf[start..self.filled]
            .iter()
            .position(|&b| b == b'\n')
        {
            line(&self.buf[start..start + i]);
            start += i + 1;
        }
        if start > 0 {
            self.buf.copy_within(start..self.filled, 0);
            self.filled -= start;
        }
        if self.filled == self.buf.len() {
            line(&self.buf[..]);
            self.filled = 0;
        }
    }

    /// At EOF: an unfinished last line is still a line.
    fn flush(&mut self, line: &mut dyn FnMut(&[u8])) {
        if self.filled > 0 {
            line(&self.buf[..self.filled]);
            self.filled = 0;
        }
    }
}

/// The supervised process.
pub struct Supervised {
    pid: i32,
    pgid: i32,
    start_ticks: u64,
    is_child: bool,
    leader: Leader,
    /// `Some` until the exit has been reported.
    pidfd: Option<OwnedFd>,
    output: Option<Output>,
}

impl std::fmt::Debug for Supervised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervised")
            .field("pid", &self.pid)
            .field("pgid", &self.pgid)
            .field("start_ticks", &self.start_ticks)
            .field("is_child", &self.is_child)
            .field("leader", &self.leader)
            .field("capturing", &self.output.is_some())
            .finish()
    }
}

impl Supervised {
    /// Spawns `spec` as the leader of a new process group and opens a pidfd on it.
    pub fn spawn(spec: &SpawnSpec) -> Result<Supervised, Error> {
        let program = spec.argv.first().cloned().unwrap_or_default();
        let spawn_err = |source: io::Error| Error::Spawn {
            program: program.clone(),
            source,
        };
        if program.is_empty() {
            return Err(spawn_err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "empty command",
            )));
        }
        let mut cmd = Command::new(&program);
        cmd.args(&spec.argv[1..])
            .process_group(0)
            .stdin(Stdio::null());
        reset_signals_before_exec(&mut cmd);
        apply_spec(&mut cmd, spec);

        let mut read_end = None;
        if spec.capture_output {
            // Both ends O_CLOEXEC: std dup2()s the write end onto fds 1 and 2 in the child
            // (dup2 clears the flag on the copies); the read end never crosses exec.
            let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| spawn_err(e.into()))?;
            set_nonblocking(&r).map_err(spawn_err)?;
            let w2 = w.try_clone().map_err(spawn_err)?;
            cmd.stdout(Stdio::from(w)).stderr(Stdio::from(w2));
            read_end = Some(r);
        }

        // Our copies of the write end go with `cmd`, so EOF comes when the child's group is done.
        let (pid, pidfd, stat) = start_supervised(cmd, spawn_err)?;
        Ok(Supervised {
            pid,
            pgid: pid,
            start_ticks: stat.start_ticks,
            is_child: true,
            leader: Leader::Running,
            pidfd: Some(pidfd),
            output: read_end.map(Output::new),
        })
    }

    /// Re-adopts the process in `record` when it still runs and is the same process (same
    /// start time). `Ok(None)` when it is gone or the pid now belongs to another process.
    ///
    /// An adopted process is never treated as our child (`is_child` false), even if it is one.
    /// A zombie with the right start time is adopted: its exit is reported at once, and the
    /// group check then covers members it left behind.
    pub fn adopt(record: &PidRecord) -> Result<Option<Supervised>, Error> {
        let pid = record.pid;
        if pid <= 1 {
            return Ok(None);
        }
        // Recorded before a reboot: whatever holds the pid now is not it.
        if record.boot_id.is_some() && record.boot_id != boot_id() {
            return Ok(None);
        }
        let stat_err = |source: io::Error| Error::Stat { pid, source };
        let first = match read_stat(pid) {
            Ok(stat) => stat,
            Err(e) if is_gone(&e) => return Ok(None),
            Err(e) => return Err(stat_err(e)),
        };
        if first.start_ticks != record.start_ticks {
            return Ok(None);
        }
        let pidfd = match pidfd_open(pid) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(None),
            Err(e) => return Err(Error::Pidfd(e)),
        };
        // The pid may have been recycled between the first read and pidfd_open: the pidfd now
        // pins whatever holds the pid, so a second read tells whether that is still our process.
        let second = match read_stat(pid) {
            Ok(stat) => stat,
            Err(e) if is_gone(&e) => return Ok(None),
            Err(e) => return Err(stat_err(e)),
        };
        if second.start_ticks != record.start_ticks {
            return Ok(None);
        }
        if matches!(second.state, b'Z' | b'X') {
            // Dead, not yet reaped (its parent, an earlier bbwd, died with it): nothing to
            // adopt, and nothing that serves.
            return Ok(None);
        }
        if second.pgid != record.pgid {
            log::warn!(
                "adopted pid {pid} is now in process group {} (pid file said {}); using the current one",
                second.pgid,
                record.pgid
            );
        }
        Ok(Some(Supervised {
            pid,
            pgid: second.pgid,
            start_ticks: record.start_ticks,
            is_child: false,
            leader: Leader::Running,
            pidfd: Some(pidfd),
            output: None,
        }))
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// What to write into the pid file.
    pub fn record(&self) -> PidRecord {
        PidRecord {
            pid: self.pid,
            pgid: self.pgid,
            start_ticks: self.start_ticks,
            boot_id: boot_id(),
        }
    }

    /// Whether bbwd is the parent (false for an adopted process).
    pub fn is_child(&self) -> bool {
        self.is_child
    }

    /// Readable when the leader has exited. `None` once the exit has been collected.
    pub fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.pidfd.as_ref().map(|fd| fd.as_fd())
    }

    /// Collects the leader's exit if it has happened (non-blocking). Returns it once.
    pub fn try_collect_exit(&mut self) -> Option<ExitKind> {
        self.poll_leader();
        match self.leader {
            Leader::Ended(kind) => {
                self.leader = Leader::Reported;
                self.pidfd = None;
                Some(kind)
            }
            Leader::Running | Leader::Reported => None,
        }
    }

    /// Sends `sig` to the whole process group. ESRCH (nobody left) is not an error.
    pub fn signal_group(&self, sig: GroupSignal) -> Result<(), Error> {
        if self.pgid <= 1 || self.pgid == nix::unistd::getpgrp().as_raw() {
            return Err(Error::Signal(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "refusing to signal process group {} (init's or bbwd's own)",
                    self.pgid
                ),
            )));
        }
        match kill(Pid::from_raw(-self.pgid), sig.to_nix()) {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(e) => Err(Error::Signal(e.into())),
        }
    }

    /// True while the leader runs or any member of its group is left.
    ///
    /// Reaps the leader when it has exited (the exit is kept for `try_collect_exit`, and the
    /// pidfd stays open and readable until then).
    pub fn group_alive(&mut self) -> bool {
        self.poll_leader();
        if self.leader == Leader::Running {
            return true;
        }
        if self.pgid <= 1 {
            return false;
        }
        // Signal 0 checks existence only. EPERM: a member exists that we may not signal.
        if matches!(kill(Pid::from_raw(-self.pgid), None), Err(Errno::ESRCH)) {
            return false;
        }
        // `kill` also finds zombies: members that are dead and wait for their parent to reap
        // them. An adopted leader's parent is init (or a subreaper), which may take a while;
        // a dead member is not an instance of Bitbucket, so only live members count.
        group_has_live_member(self.pgid)
    }

    /// The read end of the output pipe, when capturing (non-blocking).
    pub fn output_fd(&self) -> Option<BorrowedFd<'_>> {
        self.output.as_ref().map(|o| o.fd.as_fd())
    }

    /// Drains what the output pipe holds now, calling `line` for each complete line (a line
    /// longer than the internal buffer is passed in pieces). Never blocks. Returns false at
    /// EOF (the writers are gone), after which `output_fd` is `None`.
    ///
    /// Lines are passed without their `\n`. An unfinished line stays buffered until its newline
    /// arrives, the buffer fills, or EOF. At most `DRAIN_MAX_READS` reads per call: when it
    /// returns true the fd may still be readable, and the loop's next poll says so.
    pub fn drain_output(&mut self, line: &mut dyn FnMut(&[u8])) -> bool {
        let Some(output) = self.output.as_mut() else {
            return false;
        };
        for _ in 0..DRAIN_MAX_READS {
            match output.read_once(line) {
                ReadResult::Data => {}
                ReadResult::Empty => return true,
                ReadResult::Closed => {
                    self.output = None;
                    return false;
                }
            }
        }
        true
    }

    /// Hands over the output pipe's read end (for systemd's fd store), keeping a duplicate.
    pub fn output_dup(&self) -> Option<OwnedFd> {
        let output = self.output.as_ref()?;
        match output.fd.try_clone() {
            Ok(fd) => Some(fd),
            Err(e) => {
                log::warn!("cannot duplicate Bitbucket's output pipe: {e}");
                None
            }
        }
    }

    /// Attaches an output pipe read end recovered after a bbwd restart to an adopted process.
    /// The fd is made non-blocking and close-on-exec.
    pub fn attach_output(&mut self, fd: OwnedFd) {
        if let Err(e) = set_nonblocking(&fd) {
            log::warn!("cannot make the recovered output pipe non-blocking: {e}; dropping it");
            return;
        }
        if let Err(e) = fcntl(&fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)) {
            log::warn!("cannot set close-on-exec on the recovered output pipe: {e}");
        }
        self.output = Some(Output::new(fd));
    }

    /// Moves the leader from Running to Ended when it has exited.
    fn poll_leader(&mut self) {
        if self.leader != Leader::Running {
            return;
        }
        if self.is_child {
            match wait_nohang(self.pid) {
                Ok(Some(kind)) => self.leader = Leader::Ended(kind),
                Ok(None) => {}
                Err(e) => {
                    // ECHILD: someone else reaped it; it is gone, status unknown.
                    log::warn!("waitpid({}) failed: {e}; treating it as exited", self.pid);
                    self.leader = Leader::Ended(ExitKind::Unknown);
                }
            }
        } else if self
            .pidfd
            .as_ref()
            .is_none_or(|fd| pidfd_exited(fd.as_fd()))
        {
            self.leader = Leader::Ended(ExitKind::Unknown);
        }
    }
}

/// Sets the credentials of `user` in the child, after fork and before exec.
///
/// Everything is done in `pre_exec` (not `CommandExt::uid/gid`): std changes uid before running
/// `pre_exec` closures, after which `setgroups` would no longer be permitted, and
/// `CommandExt::groups` is unstable.
fn set_credentials(cmd: &mut Command, user: &RunAs) {
    let uid = user.uid as libc::uid_t;
    let gid = user.gid as libc::gid_t;
    let groups: Vec<libc::gid_t> = user.groups.iter().map(|&g| g as libc::gid_t).collect();
    // Only root may (and needs to) change supplementary groups. Decided here, in the parent.
    let as_root = nix::unistd::geteuid().is_root();
    // SAFETY: the closure runs in the forked child before exec, where only async-signal-safe
    // calls are allowed: it calls setgroups/setgid/setuid (all async-signal-safe system calls)
    // on data prepared in the parent, and builds its errors with `last_os_error`, which does
    // not allocate. It takes no lock and touches no state shared with other threads.
    unsafe {
        cmd.pre_exec(move || {
            if as_root && libc::setgroups(groups.len(), groups.as_ptr()) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::setgid(gid) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::setuid(uid) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The child's environment and credentials from `spec`: systemd's variables removed (they are
/// bbwd's, not Bitbucket's), the user's HOME/USER/LOGNAME and uid/gid/groups, then `spec.env`.
fn apply_spec(cmd: &mut Command, spec: &SpawnSpec) {
    for key in SYSTEMD_ONLY_ENV {
        cmd.env_remove(key);
    }
    if let Some(user) = &spec.user {
        cmd.env("HOME", &user.home)
            .env("USER", &user.name)
            .env("LOGNAME", &user.name);
        set_credentials(cmd, user);
    }
    for (key, value) in &spec.env {
        cmd.env(key, value);
    }
}

/// Spawns `cmd` and takes hold of the child: a pidfd and its /proc stat (start time, group).
/// `cmd` is consumed, so the parent's copies of pipe ends it holds are closed. The `Child` is
/// dropped without waiting: from here on only `waitpid(pid)` reaps it. Until then the pid
/// cannot be recycled, so both reads are race-free. If either fails, the half-set-up child's
/// group is killed and reaped: never an unsupervised Bitbucket.
fn start_supervised(
    mut cmd: Command,
    spawn_err: impl Fn(io::Error) -> Error,
) -> Result<(i32, OwnedFd, ProcStat), Error> {
    let child = cmd.spawn().map_err(spawn_err)?;
    drop(cmd);
    let pid = child.id() as i32;
    drop(child);
    let setup = pidfd_open(pid).map_err(Error::Pidfd).and_then(|fd| {
        read_stat(pid)
            .map_err(|source| Error::Stat { pid, source })
            .map(|stat| (fd, stat))
    });
    match setup {
        Ok((fd, stat)) => Ok((pid, fd, stat)),
        Err(e) => {
            let _ = kill(Pid::from_raw(-pid), Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(pid), None);
            Err(e)
        }
    }
}

/// Gives the child a clean signal state before exec: an empty signal mask (bbwd blocks SIGTERM,
/// SIGINT and SIGHUP for its signalfd, and a blocked mask is inherited across exec, so Bitbucket
/// would never see our SIGTERM) and default SIGPIPE (Rust ignores it; the JVM and shells expect
/// the default). Must be registered before any other `pre_exec` closure.
pub(crate) fn reset_signals_before_exec(cmd: &mut Command) {
    // SAFETY: runs in the forked child before exec; sigemptyset, pthread_sigmask and signal are
    // async-signal-safe, operate on a local sigset_t, and share no state with other threads.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            if libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            Ok(())
        });
    }
    // Nor bbwd's real-time scheduling (`[watchdog] realtime`).
    crate::realtime::reset_before_exec(cmd);
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    let flags = fcntl(fd, FcntlArg::F_GETFL)?;
    let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
    fcntl(fd, FcntlArg::F_SETFL(flags))?;
    Ok(())
}

/// `pidfd_open(2)`: an fd that becomes readable when `pid` exits. Close-on-exec.
pub(crate) fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and a flags word (0) and returns a new fd or -1; no memory
    // is passed. libc has no wrapper in all versions, hence the raw syscall.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0 as libc::c_uint) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on success the syscall returned a new fd that nothing else owns; pidfds are
    // always created with O_CLOEXEC.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as libc::c_int) })
}

/// Whether a pidfd reports its process gone (readable), without waiting.
pub(crate) fn pidfd_exited(fd: BorrowedFd<'_>) -> bool {
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    loop {
        match nix::poll::poll(&mut fds, PollTimeout::ZERO) {
            Ok(n) => return n > 0,
            Err(Errno::EINTR) => continue,
            Err(e) => {
                log::warn!("poll on pidfd {} failed: {e}", fd.as_raw_fd());
                return false;
            }
        }
    }
}

/// `waitpid(pid, WNOHANG)` for one child of ours. `Ok(None)` while it runs.
pub(crate) fn wait_nohang(pid: i32) -> Result<Option<ExitKind>, Errno> {
    loop {
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(Some(ExitKind::Exited(code))),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(Some(ExitKind::Signaled(sig as i32))),
            // StillAlive, or a stop/continue report we did not ask for.
            Ok(_) => return Ok(None),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The fields of `/proc/PID/stat` we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcStat {
    state: u8,
    pgid: i32,
    start_ticks: u64,
}

/// Whether any process in group `pgid` is alive, i.e. not a zombie (`Z`) or dead (`X`).
/// Scans /proc: only called while waiting for a group to empty, never in steady state.
/// A /proc that cannot be read counts as alive (never start a second instance on a guess).
fn group_has_live_member(pgid: i32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return true;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        // A process that vanished meanwhile is not a member any more.
        if let Ok(st) = read_stat(pid) {
            if st.pgid == pgid && !matches!(st.state, b'Z' | b'X') {
                return true;
            }
        }
    }
    false
}

fn read_stat(pid: i32) -> io::Result<ProcStat> {
    let text = std::fs::read(format!("/proc/{pid}/stat"))?;
    parse_stat(&text).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unparsable"))
}

fn is_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}

/// Parses `pid (comm) state ppid pgrp ... starttime(22) ...`. `comm` may hold spaces and ')',
/// so fields are counted from the *last* ')'.
fn parse_stat(text: &[u8]) -> Option<ProcStat> {
    let close = text.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&text[close + 1..]).ok()?;
    // rest starts at field 3 (state): field N is at index N - 3.
    let mut fields = rest.split_ascii_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    let pgid = fields.nth(5 - 4)?.parse().ok()?;
    let start_ticks = fields.nth(22 - 5 - 1)?.parse().ok()?;
    Some(ProcStat {
        state,
        pgid,
        start_ticks,
    })
}

/// Writes the pid file atomically (temp file + rename, mode 0644).
///
/// Not fsynced: the file only matters while the processes it names run, which a power loss
/// ends anyway (and a stale record is refused by its start time).
pub fn write_pidfile(path: &Path, record: &PidRecord) -> Result<(), Error> {
    let pid_err = |source: io::Error| Error::PidFile {
        path: path.to_path_buf(),
        source,
    };
    let tmp = temp_path(path).ok_or_else(|| {
        pid_err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "path has no file name",
        ))
    })?;
    let mut text = format!("{} {} {}", record.pid, record.pgid, record.start_ticks);
    if let Some(b) = record.boot_id {
        text.push_str(&format!(" {b:032x}"));
    }
    text.push('\n');
    let result = (|| {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        file.write_all(text.as_bytes())?;
        drop(file);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(pid_err)
}

fn temp_path(path: &Path) -> Option<PathBuf> {
    let mut name = path.file_name()?.to_os_string();
    name.push(".tmp");
    Some(path.with_file_name(name))
}

/// Reads the pid file; `Ok(None)` when it does not exist; a corrupt file is an error naming it.
pub fn read_pidfile(path: &Path) -> Result<Option<PidRecord>, Error> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::PidFile {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let mut bytes = Vec::new();
    file.take(PIDFILE_MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| Error::PidFile {
            path: path.to_path_buf(),
            source,
        })?;
    parse_pidfile(&bytes)
        .map(Some)
        .map_err(|reason| Error::PidFileCorrupt {
            path: path.to_path_buf(),
            reason,
        })
}

fn parse_pidfile(bytes: &[u8]) -> Result<PidRecord, String> {
    if bytes.len() as u64 > PIDFILE_MAX_BYTES {
        return Err(format!("longer than {PIDFILE_MAX_BYTES} bytes"));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let fields: Vec<&str> = text.split_ascii_whitespace().collect();
    let (pid, pgid, start, boot) = match fields[..] {
        [pid, pgid, start] => (pid, pgid, start, None),
        [pid, pgid, start, boot] => (pid, pgid, start, Some(boot)),
        _ => {
            return Err(format!(
                "expected \"pid pgid start_ticks boot_id\", found {} fields",
                fields.len()
            ))
        }
    };
    let boot_id = match boot {
        None => None,
        Some(b) => Some(parse_boot_id(b).ok_or_else(|| format!("bad boot_id {b:?}"))?),
    };
    let pid: i32 = pid.parse().map_err(|_| format!("bad pid {pid:?}"))?;
    let pgid: i32 = pgid.parse().map_err(|_| format!("bad pgid {pgid:?}"))?;
    let start_ticks: u64 = start
        .parse()
        .map_err(|_| format!("bad start_ticks {start:?}"))?;
    if pid <= 1 || pgid <= 1 {
        return Err(format!("pid {pid} / pgid {pgid} out of range"));
    }
    Ok(PidRecord {
        pid,
        pgid,
        start_ticks,
        boot_id,
    })
}

/// Kills (SIGKILL) what is left of a recorded process group whose leader is gone, as found at
/// start-up before anything new is started: never two instances of Bitbucket.
///
/// Returns true when members were found and signalled. The group is only touched when no
/// process with the leader's pid exists: while members remain, the kernel does not hand the
/// pgid out again, so a live group without a leader is the recorded one; a live process with
/// that pid is a recycled pid (the caller's `adopt` said it is not ours) and is left alone.
///
/// The group is only touched when it is provably the recorded one (`stale_members`): recorded
/// during this boot, and every live member started no earlier than the recorded leader. A pid
/// file that survived a reboot, or an old-format one, never gets a group killed.
pub fn kill_stale_group(record: &PidRecord) -> bool {
    if record.pgid == nix::unistd::getpgrp().as_raw() {
        return false;
    }
    match stale_members(record) {
        Some(members) if !members.is_empty() => {
            log::warn!(
                "SIGKILL to what is left of Bitbucket's old process group {}: pids {members:?}",
                record.pgid
            );
            kill(Pid::from_raw(-record.pgid), Signal::SIGKILL).is_ok()
        }
        _ => false,
    }
}

/// The live members of a recorded group whose leader is gone, when the group is provably the
/// recorded one; `None` when it is not (another boot, an old-format record, a live process
/// holding the leader's pid, or a member older than the recorded leader: the pgid was handed
/// out again).
pub fn stale_members(record: &PidRecord) -> Option<Vec<i32>> {
    if record.pgid <= 1 || !record.this_boot() {
        return None;
    }
    if Path::new(&format!("/proc/{}", record.pgid)).exists() {
        return None;
    }
    if matches!(kill(Pid::from_raw(-record.pgid), None), Err(Errno::ESRCH)) {
        return Some(Vec::new());
    }
    let mut members = Vec::new();
    for (pid, st) in live_stats() {
        if st.pgid == record.pgid {
            if st.start_ticks < record.start_ticks {
                return None;
            }
            members.push(pid);
        }
    }
    Some(members)
}

/// Live members (not zombies) of process group `pgid`, for log lines that say what is killed.
pub fn group_members(pgid: i32) -> Vec<i32> {
    live_stats()
        .filter(|(_, st)| st.pgid == pgid)
        .map(|(pid, _)| pid)
        .collect()
}

/// Every live process's stat (zombies and vanished ones left out).
fn live_stats() -> impl Iterator<Item = (i32, ProcStat)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| read_stat(pid).ok().map(|st| (pid, st)))
        .filter(|(_, st)| !matches!(st.state, b'Z' | b'X'))
}

/// Removes the pid file; a missing file is fine.
pub fn remove_pidfile(path: &Path) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::PidFile {
            path: path.to_path_buf(),
            source,
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Detached start, for bbwd's OCF resource agent mode (`bbwd ocf start`): the agent starts
// Bitbucket and exits; Pacemaker, not bbwd, supervises it from then on.

impl Supervised {
    /// Spawns `spec` detached from the caller, which is about to exit: the leader of a new
    /// session (hence of a new process group, pgid = pid, and with no controlling terminal),
    /// stdin from /dev/null, stdout and stderr appended to `output` (created mode 0640).
    /// `spec.capture_output` is ignored: a pipe would outlive its reader.
    ///
    /// The child is ours (`is_child`) until the caller exits; then init or a subreaper reaps it,
    /// and a later caller finds it again through the pid file and `adopt`.
    pub fn spawn_detached(spec: &SpawnSpec, output: &Path) -> Result<Supervised, Error> {
        let program = spec.argv.first().cloned().unwrap_or_default();
        let spawn_err = |source: io::Error| Error::Spawn {
            program: program.clone(),
            source,
        };
        if program.is_empty() {
            return Err(spawn_err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "empty command",
            )));
        }
        let out = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .custom_flags(libc::O_CLOEXEC)
            .open(output)
            .map_err(|source| Error::Spawn {
                program: format!("{program} (output file {})", output.display()),
                source,
            })?;
        let err_out = out.try_clone().map_err(spawn_err)?;
        let mut cmd = Command::new(&program);
        cmd.args(&spec.argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err_out));
        reset_signals_before_exec(&mut cmd);
        // SAFETY: runs in the forked child before exec; setsid(2) is async-signal-safe and
        // touches no memory. Not combined with `process_group`, whose setpgid would make the
        // child a group leader and setsid fail with EPERM.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        apply_spec(&mut cmd, spec);
        let (pid, pidfd, stat) = start_supervised(cmd, spawn_err)?;
        Ok(Supervised {
            pid,
            pgid: stat.pgid,
            start_ticks: stat.start_ticks,
            is_child: true,
            leader: Leader::Running,
            pidfd: Some(pidfd),
            output: None,
        })
    }
}

/// How long ago the process recorded in `record` started: its start time (clock ticks since
/// boot, from the record) against `/proc/uptime`. `None` when either cannot be read.
pub fn started_ago(record: &PidRecord) -> Option<std::time::Duration> {
    // SAFETY: sysconf takes an integer name and returns a value; no memory is involved.
    let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks_per_s <= 0 {
        return None;
    }
    let uptime = std::fs::read_to_string("/proc/uptime").ok()?;
    let uptime_s: f64 = uptime.split_ascii_whitespace().next()?.parse().ok()?;
    let started_s = record.start_ticks as f64 / ticks_per_s as f64;
    Some(std::time::Duration::from_secs_f64(
        (uptime_s - started_s).max(0.0),
    ))
}

/// Whether live members remain of a recorded group whose leader is gone (`adopt` said so):
/// the check `kill_stale_group` acts on, without signalling. A live process holding the
/// leader's pid means the pgid was handed out again, so the recorded group is empty.
/// Members of a group that is not provably the recorded one do not count.
pub fn stale_group_alive(record: &PidRecord) -> bool {
    stale_members(record).is_some_and(|m| !m.is_empty())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{Duration, Instant};

    /// A unique temp dir, removed on drop.
    pub(crate) struct TempDir(pub PathBuf);

    impl TempDir {
        pub(crate) fn new(tag: &str) -> TempDir {
            static N: AtomicU32 = AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "bbwd-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
        pub(crate) fn path(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn sh(script: &str) -> SpawnSpec {
        SpawnSpec {
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            user: None,
            env: Vec::new(),
            capture_output: false,
        }
    }

    fn captured(script: &str) -> SpawnSpec {
        SpawnSpec {
            capture_output: true,
            ..sh(script)
        }
    }

    /// Polls `fd` for readability for up to `timeout`.
    pub(crate) fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> bool {
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        nix::poll::poll(&mut fds, PollTimeout::from(ms)).unwrap() > 0
    }

    /// Waits on the pidfd, then collects the exit.
    fn wait_exit(p: &mut Supervised, timeout: Duration) -> ExitKind {
        let fd = p.pidfd().expect("pidfd before the exit is collected");
        assert!(wait_readable(fd, timeout), "leader did not exit in time");
        p.try_collect_exit().expect("readable pidfd means an exit")
    }

    /// Regression: bbwd blocks SIGTERM for its signalfd, and the mask was inherited, so
    /// Bitbucket never saw the graceful stop and was always SIGKILLed after stop_timeout.
    #[test]
    fn the_child_starts_with_an_empty_signal_mask_although_we_block_sigterm() {
        use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow};
        let mut set = SigSet::empty();
        set.add(Signal::SIGTERM);
        pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None).unwrap();
        // `exec grep` reads its own mask, which is the one the spawned process started with
        // (a shell may block signals for itself while it waits for a child).
        let mut p = Supervised::spawn(&sh(
            r#"exec grep -q '^SigBlk:[[:space:]]*0*$' /proc/self/status"#,
        ))
        .unwrap();
        let exit = wait_exit(&mut p, Duration::from_secs(10));
        pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None).unwrap();
        assert_eq!(
            exit,
            ExitKind::Exited(0),
            "the child inherited a blocked signal"
        );
    }

    /// Repeats `cond` until true or `timeout`.
    pub(crate) fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if cond() {
                return true;
            }
            if Instant::now() > end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Gone, or a zombie waiting for its new parent (init) to reap it: either way, dead.
    pub(crate) fn dead(pid: i32) -> bool {
        match std::fs::read(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(text) => {
                let close = text.iter().rposition(|&b| b == b')').unwrap();
                text.get(close + 2) == Some(&b'Z')
            }
        }
    }

    /// Reads a pid written by a test script, waiting for the file to be complete.
    pub(crate) fn read_pid_file(path: &Path) -> i32 {
        let mut pid = 0;
        assert!(eventually(Duration::from_secs(5), || {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            match text.strip_suffix('\n').map(str::parse::<i32>) {
                Some(Ok(p)) => {
                    pid = p;
                    true
                }
                _ => false,
            }
        }));
        pid
    }

    /// Kills a test-started process by pid (best-effort clean-up).
    pub(crate) fn kill_pid(pid: i32) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }

    /// Drains until EOF, with a deadline; returns the lines.
    fn drain_all(p: &mut Supervised, timeout: Duration) -> Vec<Vec<u8>> {
        let end = Instant::now() + timeout;
        let mut lines = Vec::new();
        while let Some(fd) = p.output_fd() {
            assert!(wait_readable(fd, Duration::from_secs(5)));
            if !p.drain_output(&mut |l| lines.push(l.to_vec())) {
                break;
            }
            assert!(Instant::now() < end, "output never reached EOF");
        }
        assert!(p.output_fd().is_none());
        lines
    }

    #[test]
    fn spawn_reports_exit_code_once() {
        let mut p = Supervised::spawn(&sh("exit 7")).unwrap();
        assert!(p.is_child());
        assert_eq!(p.record().pgid, p.pid(), "own process group");
        assert_eq!(
            wait_exit(&mut p, Duration::from_secs(5)),
            ExitKind::Exited(7)
        );
        assert!(p.pidfd().is_none());
        assert_eq!(p.try_collect_exit(), None, "reported only once");
    }

    #[test]
    fn spawn_of_missing_program_names_it() {
        let err = Supervised::spawn(&SpawnSpec {
            argv: vec!["/nonexistent/bbwd-test-prog".into()],
            ..sh("")
        })
        .unwrap_err();
        assert!(
            matches!(&err, Error::Spawn { program, .. } if program == "/nonexistent/bbwd-test-prog")
        );
        assert!(err.to_string().contains("/nonexistent/bbwd-test-prog"));
        let err = Supervised::spawn(&SpawnSpec {
            argv: Vec::new(),
            ..sh("")
        })
        .unwrap_err();
        assert!(matches!(err, Error::Spawn { .. }));
    }

    #[test]
    fn sigkill_is_reported_as_signaled_9() {
        let mut p = Supervised::spawn(&sh("exec sleep 30")).unwrap();
        assert_eq!(p.try_collect_exit(), None, "still running");
        assert!(p.group_alive());
        p.signal_group(GroupSignal::Kill).unwrap();
        assert_eq!(
            wait_exit(&mut p, Duration::from_secs(5)),
            ExitKind::Signaled(9)
        );
        assert!(eventually(Duration::from_secs(5), || !p.group_alive()));
        // Nobody left: ESRCH is not an error.
        p.signal_group(GroupSignal::Term).unwrap();
    }

    #[test]
    fn group_kill_reaches_grandchild() {
        let tmp = TempDir::new("grandkill");
        let pidfile = tmp.path("grandchild");
        let mut p = Supervised::spawn(&sh(&format!(
            "sleep 30 & echo $! > {}; wait",
            pidfile.display()
        )))
        .unwrap();
        let grandchild = read_pid_file(&pidfile);
        assert!(!dead(grandchild));
        p.signal_group(GroupSignal::Kill).unwrap();
        assert_eq!(
            wait_exit(&mut p, Duration::from_secs(5)),
            ExitKind::Signaled(9)
        );
        let gone = eventually(Duration::from_secs(5), || dead(grandchild));
        if !gone {
            kill_pid(grandchild);
        }
        assert!(gone, "SIGKILL to the group must reach the grandchild");
    }

    #[test]
    fn group_alive_while_grandchild_outlives_leader() {
        let tmp = TempDir::new("grandalive");
        let pidfile = tmp.path("grandchild");
        // The leader exits at once, leaving a member of its group behind.
        let mut p = Supervised::spawn(&sh(&format!(
            "sleep 30 & echo $! > {}; exit 0",
            pidfile.display()
        )))
        .unwrap();
        let grandchild = read_pid_file(&pidfile);
        assert_eq!(
            wait_exit(&mut p, Duration::from_secs(5)),
            ExitKind::Exited(0)
        );
        let alive = p.group_alive();
        kill_pid(grandchild);
        assert!(alive, "a group member outlives the leader");
        // Relies on init reaping the orphan (a zombie still counts as a group member).
        assert!(eventually(Duration::from_secs(5), || !p.group_alive()));
    }

    #[test]
    fn group_alive_reaps_but_keeps_the_exit_for_collection() {
        let mut p = Supervised::spawn(&sh("exit 3")).unwrap();
        assert!(eventually(Duration::from_secs(5), || !p.group_alive()));
        // The pidfd stays open (and readable) until the exit is collected.
        let fd = p.pidfd().expect("pidfd kept until the exit is collected");
        assert!(wait_readable(fd, Duration::ZERO));
        assert_eq!(p.try_collect_exit(), Some(ExitKind::Exited(3)));
    }

    #[test]
    fn adopt_non_child_and_see_it_exit() {
        // Double fork: `sh` (its own group) starts `sleep` in the background and exits, so
        // `sleep` is reparented to init and is not our child.
        let mut starter = Command::new("/bin/sh");
        starter
            .args(["-c", "sleep 30 >/dev/null 2>&1 & echo $!"])
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        let out = starter.output().unwrap();
        assert!(out.status.success());
        let pid: i32 = String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let stat = read_stat(pid).unwrap();
        let record = PidRecord {
            pid,
            pgid: stat.pgid,
            start_ticks: stat.start_ticks,
            boot_id: boot_id(),
        };

        let wrong = PidRecord {
            start_ticks: record.start_ticks + 1,
            ..record
        };
        let refused = Supervised::adopt(&wrong);
        let adopted = Supervised::adopt(&record);
        let Ok(Some(mut adopted)) = adopted else {
            kill_pid(pid);
            panic!("adopt of a live process failed: {adopted:?}");
        };
        assert!(
            matches!(refused, Ok(None)),
            "other start time => other process"
        );
        assert!(!adopted.is_child());
        assert_eq!(adopted.record(), record);
        assert_eq!(adopted.try_collect_exit(), None);
        assert!(adopted.group_alive());

        adopted.signal_group(GroupSignal::Kill).unwrap();
        assert_eq!(
            wait_exit(&mut adopted, Duration::from_secs(5)),
            ExitKind::Unknown
        );
        assert!(eventually(Duration::from_secs(5), || !adopted.group_alive()));
        // And once fully gone, the record adopts nothing.
        assert!(eventually(Duration::from_secs(5), || matches!(
            Supervised::adopt(&record),
            Ok(None)
        )));
    }

    #[test]
    fn adopt_of_own_child_record_by_second_supervised() {
        let mut child = Supervised::spawn(&sh("exec sleep 30")).unwrap();
        let mut adopted = Supervised::adopt(&child.record()).unwrap().unwrap();
        assert!(!adopted.is_child());
        assert_eq!(adopted.pid(), child.pid());
        adopted.signal_group(GroupSignal::Kill).unwrap();
        // The parent sees the real status, the adopter only that it is gone (a zombie is gone).
        assert_eq!(
            wait_exit(&mut child, Duration::from_secs(5)),
            ExitKind::Signaled(9)
        );
        assert_eq!(
            wait_exit(&mut adopted, Duration::from_secs(5)),
            ExitKind::Unknown
        );
    }

    #[test]
    fn adopt_refuses_dead_pid_and_own_group_signal() {
        let mut p = Supervised::spawn(&sh("exit 0")).unwrap();
        let record = p.record();
        wait_exit(&mut p, Duration::from_secs(5));
        // Reaped: the pid is free (or reused by a process with another start time).
        assert!(matches!(Supervised::adopt(&record), Ok(None)));

        // A process in bbwd's own group must never get a group signal.
        let mut same_group = Command::new("/bin/sleep")
            .arg("30")
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let pid = same_group.id() as i32;
        let stat = read_stat(pid).unwrap();
        let adopted = Supervised::adopt(&PidRecord {
            pid,
            pgid: stat.pgid,
            start_ticks: stat.start_ticks,
            boot_id: None,
        })
        .unwrap()
        .unwrap();
        let refused = adopted.signal_group(GroupSignal::Term);
        same_group.kill().unwrap();
        same_group.wait().unwrap();
        assert!(matches!(refused, Err(Error::Signal(_))));
    }

    #[test]
    fn capture_lines_and_a_long_line_in_pieces() {
        let long = OUTPUT_BUF_BYTES * 2 + 100;
        let mut p = Supervised::spawn(&captured(&format!(
            "echo hello; echo world >&2; head -c {long} /dev/zero | tr '\\0' a; echo; printf tail"
        )))
        .unwrap();
        let lines = drain_all(&mut p, Duration::from_secs(10));
        assert_eq!(lines[0], b"hello");
        assert_eq!(lines[1], b"world", "stderr goes to the same pipe");
        assert_eq!(lines[2].len(), OUTPUT_BUF_BYTES);
        assert_eq!(lines[3].len(), OUTPUT_BUF_BYTES);
        assert_eq!(lines[4].len(), 100);
        assert!(lines[2..5].iter().flatten().all(|&b| b == b'a'));
        assert_eq!(lines[5], b"tail", "unfinished last line is passed at EOF");
        assert_eq!(lines.len(), 6);
        assert_eq!(
            wait_exit(&mut p, Duration::from_secs(5)),
            ExitKind::Exited(0)
        );
        assert!(!p.drain_output(&mut |_| panic!("no output after EOF")));
    }

    #[test]
    fn child_never_holds_the_read_end() {
        let mut p = Supervised::spawn(&captured("exec sleep 30")).unwrap();
        let ours = nix::sys::stat::fstat(p.output_fd().unwrap()).unwrap();
        let link = format!("pipe:[{}]", ours.st_ino);
        let mut write_ends = 0;
        for entry in std::fs::read_dir(format!("/proc/{}/fd", p.pid())).unwrap() {
            let entry = entry.unwrap();
            if std::fs::read_link(entry.path()).unwrap().to_str() != Some(&link) {
                continue;
            }
            let fd = entry.file_name().into_string().unwrap();
            let info = std::fs::read_to_string(format!("/proc/{}/fdinfo/{fd}", p.pid())).unwrap();
            let flags = info
                .lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .map(|f| u32::from_str_radix(f.trim(), 8).unwrap())
                .unwrap();
            assert_eq!(
                flags & libc::O_ACCMODE as u32,
                libc::O_WRONLY as u32,
                "fd {fd} of the child is the read end"
            );
            write_ends += 1;
        }
        p.signal_group(GroupSignal::Kill).unwrap();
        wait_exit(&mut p, Duration::from_secs(5));
        assert_eq!(write_ends, 2, "stdout and stderr");
        // Our read end is non-blocking and close-on-exec.
        let fd = p.output_fd().unwrap();
        let fl = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL).unwrap());
        assert!(fl.contains(OFlag::O_NONBLOCK));
        let fdfl = FdFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFD).unwrap());
        assert!(fdfl.contains(FdFlag::FD_CLOEXEC));
    }

    #[test]
    fn one_mib_of_output_never_blocks_the_child() {
        const TOTAL: usize = 1 << 20;
        let mut p = Supervised::spawn(&captured(&format!("head -c {TOTAL} /dev/zero"))).unwrap();
        let mut bytes = 0;
        let end = Instant::now() + Duration::from_secs(30);
        while let Some(fd) = p.output_fd() {
            assert!(wait_readable(fd, Duration::from_secs(5)), "writer stalled");
            let started = Instant::now();
            let open = p.drain_output(&mut |l| bytes += l.len());
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "drain_output took too long"
            );
            if !open {
                break;
            }
            assert!(Instant::now() < end, "1 MiB not drained in time");
        }
        assert_eq!(bytes, TOTAL);
        assert_eq!(
            wait_exit(&mut p, Duration::from_secs(5)),
            ExitKind::Exited(0)
        );
    }

    #[test]
    fn output_dup_and_attach_output_keep_reading() {
        let tmp = TempDir::new("attach");
        let go = tmp.path("go");
        let mut p = Supervised::spawn(&captured(&format!(
            "echo before; while [ ! -e {} ]; do sleep 0.01; done; echo after",
            go.display()
        )))
        .unwrap();
        let mut lines = Vec::new();
        assert!(wait_readable(
            p.output_fd().unwrap(),
            Duration::from_secs(5)
        ));
        assert!(p.drain_output(&mut |l| lines.push(l.to_vec())));
        let dup = p.output_dup().unwrap();
        // A "restarted bbwd": adopt the process and attach the kept pipe.
        let mut adopted = Supervised::adopt(&p.record()).unwrap().unwrap();
        assert!(adopted.output_fd().is_none());
        adopted.attach_output(dup);
        drop(p.output.take());
        std::fs::write(&go, b"").unwrap();
        lines.extend(drain_all(&mut adopted, Duration::from_secs(10)));
        assert_eq!(lines, [b"before".to_vec(), b"after".to_vec()]);
        assert_eq!(
            wait_exit(&mut p, Duration::from_secs(5)),
            ExitKind::Exited(0)
        );
    }

    #[test]
    fn run_as_sets_ids_groups_and_env() {
        // Runs as root here (switches to `nobody`); as another user, runs as that user.
        let name = if nix::unistd::geteuid().is_root() {
            "nobody".to_string()
        } else {
            nix::unistd::User::from_uid(nix::unistd::geteuid())
                .unwrap()
                .unwrap()
                .name
        };
        let user = RunAs::lookup(&name).unwrap();
        let mut spec = captured(
            "grep -E '^(Uid|Gid|Groups):' /proc/self/status; echo \"$HOME $USER $LOGNAME $EXTRA\"",
        );
        spec.user = Some(user.clone());
        spec.env = vec![("EXTRA".into(), "x y".into())];
        let mut p = Supervised::spawn(&spec).unwrap();
        let lines: Vec<String> = drain_all(&mut p, Duration::from_secs(10))
            .into_iter()
            .map(|l| String::from_utf8(l).unwrap())
            .collect();
        assert_eq!(
            wait_exit(&mut p, Duration::from_secs(5)),
            ExitKind::Exited(0)
        );
        let ids = |l: &str| -> Vec<u32> {
            l.split_ascii_whitespace()
                .skip(1)
                .map(|v| v.parse().unwrap())
                .collect()
        };
        assert_eq!(ids(&lines[0]), [user.uid; 4]);
        assert_eq!(ids(&lines[1]), [user.gid; 4]);
        let mut groups = ids(&lines[2]);
        groups.sort_unstable();
        let mut want = user.groups.clone();
        want.sort_unstable();
        want.dedup();
        assert_eq!(groups, want, "supplementary groups of the user, not ours");
        assert_eq!(
            lines[3],
            format!("{} {name} {name} x y", user.home.display())
        );
    }

    #[test]
    fn unknown_user_is_named() {
        let err = RunAs::lookup("bbwd-no-such-user-x").unwrap_err();
        assert!(matches!(&err, Error::UnknownUser(u) if u == "bbwd-no-such-user-x"));
        assert!(err.to_string().contains("bbwd-no-such-user-x"));
    }

    /// Regression: a crashed adopted Bitbucket stays a zombie until init reaps it, and
    /// `kill(-pgid, 0)` still finds it: bbwd took that for a group surviving SIGKILL.
    #[test]
    fn a_group_whose_only_member_is_a_zombie_is_gone() {
        let dir = TempDir::new("zombie");
        let f = dir.path("zpid");
        // `sleep 0.05` gets its own group (setsid) and dies; its parent then execs `sleep 30`,
        // which never reaps it: a zombie alone in its group.
        let script = format!(
            "setsid sleep 0.05 & echo $! > {}; exec sleep 30",
            f.display()
        );
        let mut p = Supervised::spawn(&sh(&script)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let zpid: i32 = loop {
            if let Ok(t) = std::fs::read_to_string(&f) {
                if let Ok(z) = t.trim().parse() {
                    if read_stat(z).map(|s| s.state == b'Z').unwrap_or(false) {
                        break z;
                    }
                }
            }
            assert!(Instant::now() < deadline, "no zombie appeared");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(
            kill(Pid::from_raw(-zpid), None).is_ok(),
            "kill(2) still sees the zombie's group"
        );
        assert!(!group_has_live_member(zpid));
        assert!(
            group_has_live_member(p.pid()),
            "the live leader's group is alive"
        );
        p.signal_group(GroupSignal::Kill).unwrap();
        wait_exit(&mut p, Duration::from_secs(10));
    }

    #[test]
    fn parse_stat_with_hostile_comm() {
        let line = b"4242 (a) b (c) d) S 1 4240 4240 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100 18446744073709551615\n";
        assert_eq!(
            parse_stat(line),
            Some(ProcStat {
                state: b'S',
                pgid: 4240,
                start_ticks: 987654
            })
        );
        assert_eq!(parse_stat(b"4242 (x) S 1 2"), None);
        assert_eq!(parse_stat(b"garbage"), None);
        assert_eq!(parse_stat(b""), None);
        // Our own stat parses, and the start time is stable.
        let me = std::process::id() as i32;
        assert_eq!(read_stat(me).unwrap(), read_stat(me).unwrap());
        assert_eq!(read_stat(me).unwrap().pgid, nix::unistd::getpgrp().as_raw());
    }

    #[test]
    fn pidfile_round_trip_and_missing() {
        let tmp = TempDir::new("pidfile");
        let path = tmp.path("bitbucket.pid");
        assert!(read_pidfile(&path).unwrap().is_none());
        let record = PidRecord {
            pid: 1234,
            pgid: 1234,
            start_ticks: 98_765_432_100,
            boot_id: Some(0x0123_4567_89ab_cdef_0011_2233_4455_6677),
        };
        write_pidfile(&path, &record).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "1234 1234 98765432100 0123456789abcdef0011223344556677\n"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        assert_eq!(read_pidfile(&path).unwrap(), Some(record));
        let newer = PidRecord { pid: 99, ..record };
        write_pidfile(&path, &newer).unwrap();
        assert_eq!(read_pidfile(&path).unwrap(), Some(newer));
        assert!(
            !temp_path(&path).unwrap().exists(),
            "temp file renamed away"
        );
        remove_pidfile(&path).unwrap();
        remove_pidfile(&path).unwrap();
        assert!(read_pidfile(&path).unwrap().is_none());
    }

    #[test]
    fn corrupt_pidfile_names_the_path() {
        let tmp = TempDir::new("pidcorrupt");
        let path = tmp.path("bitbucket.pid");
        for bad in [
            &b""[..],
            b"1234\n",
            b"1234 1234\n",
            b"1234 1234 12 13\n",
            b"1234 1234 12 13 14\n",
            b"abc 1234 12\n",
            b"1234 1234 -5\n",
            b"0 0 12\n",
            b"1 1 12\n",
            b"\xff\xfe 1 2\n",
            &[b'1'; 200],
        ] {
            std::fs::write(&path, bad).unwrap();
            match read_pidfile(&path) {
                Err(Error::PidFileCorrupt { path: p, reason }) => {
                    assert_eq!(p, path);
                    assert!(!reason.is_empty());
                }
                other => panic!("{bad:?} => {other:?}"),
            }
            let msg = read_pidfile(&path).unwrap_err().to_string();
            assert!(msg.contains(&*path.to_string_lossy()), "{msg}");
        }
        // Unreadable path (a directory) is an I/O error naming it.
        assert!(matches!(read_pidfile(&tmp.0), Err(Error::PidFile { .. })));
        assert!(matches!(
            write_pidfile(
                &tmp.path("no/such/dir/x.pid"),
                &PidRecord {
                    pid: 2,
                    pgid: 2,
                    start_ticks: 1,
                    boot_id: None,
                }
            ),
            Err(Error::PidFile { .. })
        ));
    }

    #[test]
    fn spawn_detached_makes_a_session_leader_writing_to_a_file() {
        let tmp = TempDir::new("detached");
        let out = tmp.path("out");
        std::fs::write(&out, b"earlier\n").unwrap();
        // Prints its session and group ids (fields 6 and 5 of /proc/self/stat: `ps` may be
        // missing), then exits once told to.
        let go = tmp.path("go");
        let script = format!(
            "read -r _ _ _ _ pgrp sid _ < /proc/self/stat; echo \"$pgrp $sid $$\"; echo err >&2; \
             while [ ! -e {} ]; do sleep 0.01; done",
            go.display()
        );
        let mut p = Supervised::spawn_detached(&sh(&script), &out).unwrap();
        assert!(p.is_child());
        assert_eq!(p.record().pgid, p.pid(), "leader of its own group");
        assert!(eventually(Duration::from_secs(10), || {
            std::fs::read_to_string(&out).unwrap().lines().count() == 3
        }));
        let age = started_ago(&p.record()).expect("start time readable");
        assert!(age < Duration::from_secs(3600), "{age:?}");
        std::fs::write(&go, b"").unwrap();
        assert_eq!(
            wait_exit(&mut p, Duration::from_secs(10)),
            ExitKind::Exited(0)
        );
        let text = std::fs::read_to_string(&out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "earlier", "appended, not truncated");
        let ids: Vec<&str> = lines[1].split(' ').collect();
        assert_eq!(ids[0], ids[2], "pgid = pid");
        assert_eq!(ids[1], ids[2], "sid = pid: a new session");
        assert_eq!(lines[2], "err", "stderr to the same file");
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644, "an existing file keeps its mode");
        assert!(
            !stale_group_alive(&p.record()),
            "leader reaped, group empty"
        );
    }

    #[test]
    fn stale_group_alive_sees_members_left_by_a_dead_leader() {
        let tmp = TempDir::new("stale");
        let f = tmp.path("member");
        // The leader starts a member in its group and exits; the member lives on.
        let script = format!("sleep 30 & echo $! > {}; exit 0", f.display());
        let mut p = Supervised::spawn(&sh(&script)).unwrap();
        assert_eq!(
            wait_exit(&mut p, Duration::from_secs(10)),
            ExitKind::Exited(0)
        );
        let record = p.record();
        assert!(stale_group_alive(&record));
        assert!(kill_stale_group(&record));
        assert!(eventually(Duration::from_secs(10), || !stale_group_alive(
            &record
        )));
        let member: i32 = std::fs::read_to_string(&f).unwrap().trim().parse().unwrap();
        assert!(eventually(Duration::from_secs(10), || read_stat(member)
            .map(|s| matches!(s.state, b'Z' | b'X'))
            .unwrap_or(true)));
    }

    /// A group of the test's own whose leader is gone: `sh` starts a `sleep` and exits.
    fn orphan_group() -> (i32, i32) {
        let out = Command::new("/bin/sh")
            .args(["-c", "sleep 30 </dev/null >/dev/null 2>&1 & echo $$ $!"])
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let mut it = text.split_whitespace().map(|w| w.parse::<i32>().unwrap());
        (it.next().unwrap(), it.next().unwrap())
    }

    #[test]
    fn stale_pid_file_never_kills_an_unrelated_group_whose_number_matches() {
        let (pgid, member) = orphan_group();
        let member_start = read_stat(member).unwrap().start_ticks;
        let unrelated = [
            // Written before a reboot: another boot id.
            PidRecord {
                pid: pgid,
                pgid,
                start_ticks: 1,
                boot_id: Some(boot_id().unwrap() ^ 1),
            },
            // An older bbwd's record: no boot id, no proof.
            PidRecord {
                pid: pgid,
                pgid,
                start_ticks: 1,
                boot_id: None,
            },
            // This boot, but the member is older than the recorded leader: the number was
            // handed out again after our group was gone.
            PidRecord {
                pid: pgid,
                pgid,
                start_ticks: member_start + 1,
                boot_id: boot_id(),
            },
        ];
        for record in unrelated {
            assert!(!stale_group_alive(&record), "{record:?}");
            assert!(!kill_stale_group(&record), "{record:?}");
            assert!(
                read_stat(member).is_ok_and(|s| s.state != b'Z'),
                "member killed on {record:?}"
            );
            assert!(matches!(Supervised::adopt(&record), Ok(None)));
        }
        // The provable one: this boot, leader no older than the member.
        let ours = PidRecord {
            pid: pgid,
            pgid,
            start_ticks: member_start,
            boot_id: boot_id(),
        };
        assert_eq!(stale_members(&ours), Some(vec![member]));
        assert!(kill_stale_group(&ours));
        assert!(eventually(Duration::from_secs(10), || !stale_group_alive(
            &ours
        )));
    }
}
