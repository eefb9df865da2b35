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

mod detached;
mod pidfile;
mod procfs;
#[cfg(test)]
pub(crate) mod tests;

pub use pidfile::*;
pub use procfs::group_members;
use procfs::*;

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
