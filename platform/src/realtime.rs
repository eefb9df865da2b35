//! Hardening of the pet path (`[watchdog] realtime = true`): lock bbwd's memory and run its main
//! loop at a real-time priority, so that memory pressure (pages of bbwd swapped or dropped) or a
//! runaway JVM (every CPU busy) cannot starve the loop that pets the hardware watchdog.
//!
//! Owns `mlockall(2)` and `sched_setscheduler(2)` for bbwd itself, and the reset of both in a
//! child before exec. Must not decide whether to harden (the daemon does, from the config).
//!
//! # Invariants
//! * Nothing bbwd starts inherits the hardening. The real-time policy is set with
//!   `SCHED_RESET_ON_FORK`, so every child (Bitbucket, `notify.command`, hooks) is created with
//!   `SCHED_OTHER`, nice 0, by the kernel; `reset_before_exec` sets `SCHED_OTHER` again in the
//!   child as a second line of defence. Memory locks are never inherited by `fork(2)` and
//!   `MCL_FUTURE` is cleared by `execve(2)` (mlockall(2)), so the JVM's heap is not locked.
//! * `SCHED_FIFO` applies to the calling thread (and threads it creates later, which
//!   `SCHED_RESET_ON_FORK` also resets): call `set_fifo` on the thread that runs the loop.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// bbwd's real-time priority (`SCHED_FIFO`, 1..=99): above every normal task (the JVM), below
/// the kernel's threaded interrupt handlers (50) and the migration/watchdog threads (99), so a
/// busy bbwd can never starve the devices it depends on.
pub const FIFO_PRIORITY: i32 = 10;

/// A hardening step that failed.
#[derive(Debug)]
pub enum Error {
    /// `mlockall(MCL_CURRENT|MCL_FUTURE)` failed (ENOMEM: `RLIMIT_MEMLOCK`; EPERM: no
    /// `CAP_IPC_LOCK`).
    LockMemory(io::Error),
    /// `sched_setscheduler(SCHED_FIFO)` failed (EPERM: no `CAP_SYS_NICE`/`RLIMIT_RTPRIO`, or a
    /// cgroup without real-time budget).
    SetScheduler { priority: i32, source: io::Error },
    /// `sched_getscheduler` failed.
    GetScheduler { pid: i32, source: io::Error },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::LockMemory(e) => write!(
                f,
                "mlockall(MCL_CURRENT|MCL_FUTURE): {e} (needs CAP_IPC_LOCK or a large enough \
                 LimitMEMLOCK=)"
            ),
            Error::SetScheduler { priority, source } => write!(
                f,
                "sched_setscheduler(SCHED_FIFO, priority {priority}): {source} (needs \
                 CAP_SYS_NICE, and under cgroup v1 a real-time budget)"
            ),
            Error::GetScheduler { pid, source } => {
                write!(f, "sched_getscheduler(pid {pid}): {source}")
            }
        }
    }
}

impl std::error::Error for Error {}

/// A scheduling policy as `sched_getscheduler` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Other,
    Fifo,
    RoundRobin,
    Batch,
    Idle,
    Deadline,
    Unknown(i32),
}

impl Policy {
    fn from_raw(p: i32) -> Policy {
        match p & !libc::SCHED_RESET_ON_FORK {
            libc::SCHED_OTHER => Policy::Other,
            libc::SCHED_FIFO => Policy::Fifo,
            libc::SCHED_RR => Policy::RoundRobin,
            libc::SCHED_BATCH => Policy::Batch,
            libc::SCHED_IDLE => Policy::Idle,
            6 => Policy::Deadline,
            other => Policy::Unknown(other),
        }
    }
}

/// Locks all of bbwd's current and future pages in memory.
pub fn lock_memory() -> Result<(), Error> {
    // SAFETY: mlockall takes only a flags word and changes no memory contents.
    let ret = unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) };
    if ret != 0 {
        return Err(Error::LockMemory(io::Error::last_os_error()));
    }
    Ok(())
}

/// Undoes `lock_memory` (tests; best-effort).
pub fn unlock_memory() {
    // SAFETY: munlockall takes no arguments and changes no memory contents.
    unsafe { libc::munlockall() };
}

/// A `sched_param` with `priority` and every other field zero (musl's has more fields than
/// glibc's: the sporadic-server ones, unused by Linux).
fn sched_param(priority: i32) -> libc::sched_param {
    // SAFETY: `sched_param` is a plain C struct of integers (and, on musl, timespecs): all
    // zeroes is a valid value of it.
    let mut param: libc::sched_param = unsafe { std::mem::zeroed() };
    param.sched_priority = priority;
    param
}

/// `sched_setscheduler(2)` as the system call. glibc's wrapper is the system call; musl's
/// returns ENOSYS on purpose (POSIX calls it per process, Linux per thread), so the call goes
/// to the kernel directly on both.
///
/// # Safety
/// `param` must point to a live `sched_param`.
unsafe fn sched_setscheduler(
    pid: libc::pid_t,
    policy: libc::c_int,
    param: *const libc::sched_param,
) -> libc::c_int {
    // SAFETY: the caller passes a live `sched_param`; the kernel only reads it.
    unsafe { libc::syscall(libc::SYS_sched_setscheduler, pid, policy, param) as libc::c_int }
}

/// Runs the calling thread under `SCHED_FIFO` at `priority`, with `SCHED_RESET_ON_FORK`.
pub fn set_fifo(priority: i32) -> Result<(), Error> {
    let param = sched_param(priority);
    // SAFETY: pid 0 is the calling thread; `param` is a live, initialised `sched_param` that the
    // kernel only reads.
    let ret =
        unsafe { sched_setscheduler(0, libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK, &param) };
    if ret != 0 {
        return Err(Error::SetScheduler {
            priority,
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Puts the calling thread back on `SCHED_OTHER` (tests; a daemon that gives up hardening).
pub fn set_normal() -> Result<(), Error> {
    let param = sched_param(0);
    // SAFETY: as in `set_fifo`.
    let ret = unsafe { sched_setscheduler(0, libc::SCHED_OTHER, &param) };
    if ret != 0 {
        return Err(Error::SetScheduler {
            priority: 0,
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// The scheduling policy of `pid` (a thread id; 0 = the calling thread).
pub fn policy_of(pid: i32) -> Result<Policy, Error> {
    // SAFETY: sched_getscheduler takes a pid and returns a policy or -1; no memory is passed.
    let ret = unsafe { libc::syscall(libc::SYS_sched_getscheduler, pid) } as libc::c_int;
    if ret < 0 {
        return Err(Error::GetScheduler {
            pid,
            source: io::Error::last_os_error(),
        });
    }
    Ok(Policy::from_raw(ret))
}

/// Registers a `pre_exec` step that puts the child on `SCHED_OTHER` before exec, whatever the
/// parent runs under. (`SCHED_RESET_ON_FORK` already did; this keeps the guarantee even if the
/// parent's policy was set without that flag by someone else, e.g. systemd's
/// `CPUSchedulingPolicy=fifo`.) A child running as an unprivileged user may not be allowed to
/// change its policy back *up*, but it may always lower it to `SCHED_OTHER`.
pub(crate) fn reset_before_exec(cmd: &mut Command) {
    // SAFETY: runs in the forked child before exec; sched_getscheduler and sched_setscheduler
    // are plain system calls (async-signal-safe), on a local `sched_param`, with no lock or
    // state shared with other threads.
    unsafe {
        cmd.pre_exec(|| {
            let current = libc::syscall(libc::SYS_sched_getscheduler, 0) as libc::c_int;
            if current >= 0 && current & !libc::SCHED_RESET_ON_FORK != libc::SCHED_OTHER {
                let param = sched_param(0);
                if sched_setscheduler(0, libc::SCHED_OTHER, &param) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::{SpawnSpec, Supervised};

    fn in_ci() -> bool {
        std::env::var_os("CI").is_some()
    }

    #[test]
    fn policy_decoding() {
        assert_eq!(Policy::from_raw(libc::SCHED_OTHER), Policy::Other);
        assert_eq!(
            Policy::from_raw(libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK),
            Policy::Fifo
        );
        assert_eq!(Policy::from_raw(libc::SCHED_RR), Policy::RoundRobin);
        assert_eq!(Policy::from_raw(42), Policy::Unknown(42));
    }

    /// The child of a SCHED_FIFO, mlockall'ed bbwd (Bitbucket, started through
    /// `Supervised::spawn`) runs SCHED_OTHER and has no locked memory. Needs root
    /// (CAP_SYS_NICE, CAP_IPC_LOCK).
    ///
    /// Runs on a thread of its own: the policy is per thread, and the test harness's other
    /// threads must not become real-time. The memory lock is per process: it is held only
    /// around the spawn.
    #[test]
    fn a_child_of_a_realtime_parent_runs_sched_other_unlocked() {
        if !nix::unistd::geteuid().is_root() {
            assert!(!in_ci(), "CI runs as root: this test must run");
            eprintln!("skipped: needs root");
            return;
        }
        let (policy, status) = std::thread::spawn(|| {
            set_fifo(FIFO_PRIORITY).expect("set SCHED_FIFO (root)");
            let me = policy_of(0);
            let locked = lock_memory();
            let spec = SpawnSpec {
                argv: vec!["sleep".into(), "30".into()],
                user: None,
                env: Vec::new(),
                capture_output: false,
            };
            // std's spawn returns once the child has exec'd (or failed to).
            let spawned = Supervised::spawn(&spec);
            // Undo before any assertion can unwind.
            unlock_memory();
            set_normal().unwrap();
            assert_eq!(me.unwrap(), Policy::Fifo);
            locked.expect("mlockall (root)");
            let mut child = spawned.expect("spawn sleep");
            let pid = child.pid();
            let policy = policy_of(pid);
            let status = std::fs::read_to_string(format!("/proc/{pid}/status"));
            let _ = child.signal_group(crate::process::GroupSignal::Kill);
            let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while child.try_collect_exit().is_none() && std::time::Instant::now() < end {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            (policy.unwrap(), status.unwrap())
        })
        .join()
        .unwrap();
        assert_eq!(
            policy,
            Policy::Other,
            "Bitbucket must not inherit SCHED_FIFO"
        );
        let locked = status
            .lines()
            .find(|l| l.starts_with("VmLck:"))
            .expect("VmLck in /proc/PID/status");
        assert_eq!(
            locked.split_whitespace().nth(1),
            Some("0"),
            "Bitbucket must not inherit locked memory: {locked}"
        );
    }

    /// The `pre_exec` reset alone (a parent set to SCHED_FIFO *without* SCHED_RESET_ON_FORK, as
    /// systemd's CPUSchedulingPolicy=fifo would do) still gives the child SCHED_OTHER.
    #[test]
    fn the_pre_exec_reset_works_without_reset_on_fork() {
        if !nix::unistd::geteuid().is_root() {
            assert!(!in_ci(), "CI runs as root: this test must run");
            eprintln!("skipped: needs root");
            return;
        }
        let policy = std::thread::spawn(|| {
            let param = libc::sched_param {
                sched_priority: FIFO_PRIORITY,
            };
            // SAFETY: pid 0 = this test thread; `param` is a live local.
            let ret = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
            assert_eq!(ret, 0, "{}", io::Error::last_os_error());
            let mut cmd = Command::new("sleep");
            cmd.arg("30");
            reset_before_exec(&mut cmd);
            let spawned = cmd.spawn();
            set_normal().unwrap();
            let mut child = spawned.expect("spawn sleep");
            let policy = policy_of(child.id() as i32);
            let _ = child.kill();
            let _ = child.wait();
            policy.unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(policy, Policy::Other);
    }
}
