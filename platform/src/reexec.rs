//! Re-executing bbwd in place (`systemctl reload bbwd`, a package upgrade): the same PID runs the
//! binary now installed at bbwd's path, with the same arguments.
//!
//! Owns the exec and what crosses it: Bitbucket's output pipe (its close-on-exec flag cleared,
//! its number passed in [`OUTPUT_ENV`]), and the environment systemd's socket activation left
//! (`LISTEN_*`, which named fds of the *first* start and would be misread after the exec).
//! Everything else bbwd holds is close-on-exec (Rust opens every fd with `O_CLOEXEC`), so the
//! kernel closes it: heartbeat and control sockets, the BMC session, the hardware watchdog
//! device — closed without the magic character, so its countdown goes on until the new run
//! opens it and pets it again.
//!
//! Must not: decide anything (the daemon decides when; the new run re-adopts Bitbucket from the
//! pid file and the node resumes its role from what it finds).
//!
//! Bitbucket stays bbwd's child across the exec (the PID does not change), so the new run can
//! still collect its exit status.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use nix::fcntl::{fcntl, FcntlArg, FdFlag};

/// `FD:PID`: Bitbucket's output pipe (read end) and the pid it belongs to.
pub const OUTPUT_ENV: &str = "BBWD_REEXEC_OUTPUT";

/// Set in the new run: it was re-executed (for the log and status).
pub const MARK_ENV: &str = "BBWD_REEXEC";

/// The path of the binary to run: this process's executable as installed now. After a package
/// upgrade `/proc/self/exe` names the replaced file with a ` (deleted)` suffix; the new binary
/// is at the same path without it.
pub fn binary() -> io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let s = exe.to_string_lossy();
    Ok(match s.strip_suffix(" (deleted)") {
        Some(p) => PathBuf::from(p),
        None => exe,
    })
}

/// Replaces this process with `binary` run with this process's arguments, passing `output`
/// (Bitbucket's pipe, for `pid`) across. Returns only on failure, with the reason.
pub fn exec(binary: &std::path::Path, output: Option<(BorrowedFd<'_>, i32)>) -> io::Error {
    let mut cmd = std::process::Command::new(binary);
    cmd.args(std::env::args_os().skip(1));
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", OUTPUT_ENV] {
        cmd.env_remove(var);
    }
    cmd.env(MARK_ENV, "1");
    if let Some((fd, pid)) = output {
        if let Err(e) = fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty())) {
            return io::Error::other(format!("Bitbucket's output pipe: clearing FD_CLOEXEC: {e}"));
        }
        let value: OsString = format!("{}:{pid}", fd.as_raw_fd()).into();
        cmd.env(OUTPUT_ENV, value);
    }
    cmd.exec()
}

/// In a re-executed run: Bitbucket's output pipe for `pid`, if the previous run passed it. Takes
/// the variable out of the environment (children must not see it) and marks the fd
/// close-on-exec again.
pub fn inherited_output(pid: i32) -> Option<OwnedFd> {
    let value = std::env::var(OUTPUT_ENV).ok()?;
    // SAFETY: single-threaded at this point of start-up (before any worker thread is spawned),
    // so no other thread reads the environment concurrently.
    unsafe { std::env::remove_var(OUTPUT_ENV) };
    let (fd, owner) = value.split_once(':')?;
    let fd: RawFd = fd.parse().ok()?;
    let owner: i32 = owner.parse().ok()?;
    if owner != pid || fd < 3 {
        return None;
    }
    // The fd must be open and a pipe (FIFO): never adopt an unrelated descriptor.
    // SAFETY: fstat(2) only writes into `st`, a plain C struct we own; a closed `fd` is EBADF.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::fstat(fd, &mut st) } != 0 || st.st_mode & libc::S_IFMT != libc::S_IFIFO {
        return None;
    }
    // SAFETY: the previous run of this process left `fd` open for us (the variable names it and
    // fstat just showed it open and a pipe); nothing else in this process owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let _ = fcntl(&owned, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
    Some(owned)
}

/// Whether this run was started by [`exec`].
pub fn reexecuted() -> bool {
    std::env::var_os(MARK_ENV).is_some()
}
