//! Short-lived helper commands: `notify.command` on every event (and, later, hooks).
//!
//! A `CommandQueue` runs one command at a time, in order, each with a time limit (SIGKILL to its
//! process group when exceeded), without ever blocking the caller: a pidfd tells the loop when
//! the running one ends. Pending jobs wait in a fixed-capacity queue; when it is full the oldest
//! pending job is dropped and counted (a notification storm must not grow memory).
//!
//! Must not: interpret the command's result beyond reporting it.
//!
//! # Theory of operation
//! ```text
//!   submit ──► pending (≤ 32, oldest dropped) ──► slot: Idle ─spawn ok──► Running{pidfd, deadline}
//!                                                   │                       │ exit / deadline: SIGKILL -pgid
//!                                                   └─spawn failed──► Failed{at}  (deadline = at)
//!   service(now): reports the slot's outcome, frees it, starts the next pending job.
//! ```
//! A spawn failure is reported through `service` like any other outcome; until then
//! `deadline()` returns the (past) moment of the failure, so the loop calls `service` at once.
//!
//! Each job runs in its own process group (pgid = its pid), stdin `/dev/null`, stdout/stderr
//! inherited (the journal), bbwd's environment minus systemd's variables for bbwd, plus the
//! job's variables.
//!
//! # Invariants
//! * At most one job runs; only its pid is ever `waitpid`ed (never `waitpid(-1)`, which would
//!   steal Bitbucket's exit).
//! * The group signal on timeout goes to a group whose leader we have not reaped yet, so the
//!   pgid cannot have been recycled.
//! * Memory is fixed: the pending queue is a `heapless::Deque` allocated once in `new`.
//! * Dropping the queue neither kills nor reaps a running job (it runs to its end; it stays a
//!   zombie until bbwd exits).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use crate::process::{pidfd_open, wait_nohang, ExitKind, SYSTEMD_ONLY_ENV};

/// Capacity of the pending queue.
pub const QUEUE_CAPACITY: usize = 32;

/// After the SIGKILL of an overdue job, `deadline()` asks to be serviced again this long
/// later, in case the pidfd wake-up was missed (a process in uninterruptible sleep dies late).
const KILL_RECHECK: Duration = Duration::from_secs(1);

/// One job: environment variables added for the command (e.g. BBWD_EVENT, BBWD_NODE, BBWD_DETAIL).
#[derive(Debug, Clone, Default)]
pub struct Job {
    pub env: heapless::Vec<(&'static str, heapless::String<256>), 4>,
}

/// How a finished job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Exit status 0.
    Success,
    /// Non-zero exit status (-1: the status was lost, `waitpid` failed).
    Failed(i32),
    /// Killed by a signal (not by us).
    Signaled(i32),
    /// Exceeded the time limit and was killed.
    TimedOut,
    /// Could not be started (message names the program and the error).
    SpawnFailed(String),
}

struct Running {
    pid: i32,
    pidfd: OwnedFd,
    /// The time limit, then (once killed) the next re-check.
    deadline: Instant,
    killed: bool,
}

enum Slot {
    Idle,
    Running(Running),
    /// A job that could not start, to be reported by the next `service`.
    Failed {
        message: String,
        at: Instant,
    },
}

/// Runs jobs of one command line in order.
pub struct CommandQueue {
    argv: Vec<String>,
    limit: Duration,
    pending: Box<heapless::Deque<Job, QUEUE_CAPACITY>>,
    slot: Slot,
    dropped: u64,
}

impl CommandQueue {
    /// `argv` is the command (argv[0] the program); `limit` the time each run may take.
    pub fn new(argv: Vec<String>, limit: Duration) -> Self {
        CommandQueue {
            argv,
            limit,
            pending: Box::new(heapless::Deque::new()),
            slot: Slot::Idle,
            dropped: 0,
        }
    }

    /// Queues a job; starts it at once when nothing runs. Returns false when an older pending job
    /// had to be dropped to make room.
    pub fn submit(&mut self, job: Job, now: Instant) -> bool {
        let mut kept_all = true;
        if self.pending.is_full() {
            self.pending.pop_front();
            self.dropped += 1;
            kept_all = false;
        }
        // Cannot fail: there is room now.
        let _ = self.pending.push_back(job);
        if matches!(self.slot, Slot::Idle) {
            self.start_next(now);
        }
        kept_all
    }

    /// The pidfd of the running job, to poll for readability.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.slot {
            Slot::Running(r) => Some(r.pidfd.as_fd()),
            Slot::Idle | Slot::Failed { .. } => None,
        }
    }

    /// When the running job's time limit ends.
    ///
    /// Also: the moment a job failed to start (already past), so that `service` reports it.
    pub fn deadline(&self) -> Option<Instant> {
        match &self.slot {
            Slot::Running(r) => Some(r.deadline),
            Slot::Failed { at, .. } => Some(*at),
            Slot::Idle => None,
        }
    }

    /// Reaps a finished job, kills an overdue one, starts the next. Call when `fd` is readable
    /// or `deadline` has passed (calling it at other times is harmless). Returns the outcome of
    /// a job that ended during this call.
    pub fn service(&mut self, now: Instant) -> Option<Outcome> {
        let outcome = match &mut self.slot {
            Slot::Idle => None,
            Slot::Failed { message, .. } => Some(Outcome::SpawnFailed(std::mem::take(message))),
            Slot::Running(r) => match wait_nohang(r.pid) {
                Ok(Some(kind)) => Some(outcome_of(kind, r.killed)),
                Ok(None) => {
                    if now >= r.deadline {
                        if !r.killed {
                            log::warn!(
                                "{} (pid {}) exceeded its time limit of {:?}; killing its group",
                                self.argv[0],
                                r.pid,
                                self.limit
                            );
                            // ESRCH cannot happen (the leader is not reaped); nothing else to do
                            // on another error but to try again at the re-check.
                            let _ = kill(Pid::from_raw(-r.pid), Signal::SIGKILL);
                            r.killed = true;
                        }
                        r.deadline = now + KILL_RECHECK;
                    }
                    None
                }
                Err(e) => {
                    log::warn!("waitpid({}) for {} failed: {e}", r.pid, self.argv[0]);
                    Some(Outcome::Failed(-1))
                }
            },
        };
        if outcome.is_some() {
            self.slot = Slot::Idle;
        }
        if matches!(self.slot, Slot::Idle) {
            self.start_next(now);
        }
        outcome
    }

    /// Jobs dropped because the queue was full, since start.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Running + pending jobs (a failed start not yet reported counts as running).
    pub fn len(&self) -> usize {
        let current = usize::from(!matches!(self.slot, Slot::Idle));
        current + self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Starts the oldest pending job, if any, into the (idle) slot.
    fn start_next(&mut self, now: Instant) {
        let Some(job) = self.pending.pop_front() else {
            return;
        };
        self.slot = match self.spawn(&job) {
            Ok((pid, pidfd)) => Slot::Running(Running {
                pid,
                pidfd,
                deadline: now + self.limit,
                killed: false,
            }),
            Err(e) => {
                let program = self.argv.first().map(String::as_str).unwrap_or("");
                Slot::Failed {
                    message: format!("cannot start {program}: {e}"),
                    at: now,
                }
            }
        };
    }

    fn spawn(&self, job: &Job) -> std::io::Result<(i32, OwnedFd)> {
        let Some(program) = self.argv.first() else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "empty command",
            ));
        };
        let mut cmd = Command::new(program);
        cmd.args(&self.argv[1..])
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit());
        crate::process::reset_signals_before_exec(&mut cmd);
        for key in SYSTEMD_ONLY_ENV {
            cmd.env_remove(key);
        }
        for (key, value) in &job.env {
            cmd.env(key, value.as_str());
        }
        let child = cmd.spawn()?;
        let pid = child.id() as i32;
        // Reaped only through `waitpid(pid)` from here on.
        drop(child);
        match pidfd_open(pid) {
            Ok(fd) => Ok((pid, fd)),
            Err(e) => {
                // Without a pidfd the loop would never hear of it: do not leave it running.
                let _ = kill(Pid::from_raw(-pid), Signal::SIGKILL);
                let _ = waitpid(Pid::from_raw(pid), None);
                Err(std::io::Error::new(e.kind(), format!("pidfd_open: {e}")))
            }
        }
    }
}

fn outcome_of(kind: ExitKind, killed_by_us: bool) -> Outcome {
    match kind {
        _ if killed_by_us => Outcome::TimedOut,
        ExitKind::Exited(0) => Outcome::Success,
        ExitKind::Exited(code) => Outcome::Failed(code),
        ExitKind::Signaled(sig) => Outcome::Signaled(sig),
        ExitKind::Unknown => Outcome::Failed(-1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::tests::{dead, eventually, kill_pid, read_pid_file, TempDir};
    use nix::poll::{PollFd, PollFlags, PollTimeout};

    fn job(event: &str) -> Job {
        let mut job = Job::default();
        job.env
            .push(("BBWD_EVENT", event.try_into().unwrap()))
            .unwrap();
        job.env
            .push(("BBWD_NODE", "bb1".try_into().unwrap()))
            .unwrap();
        job
    }

    fn sh(script: String) -> Vec<String> {
        vec!["/bin/sh".into(), "-c".into(), script]
    }

    /// The event loop in miniature: poll the pidfd until the deadline, then service.
    fn run_all(q: &mut CommandQueue, timeout: Duration) -> Vec<Outcome> {
        let end = Instant::now() + timeout;
        let mut outcomes = Vec::new();
        while !q.is_empty() {
            assert!(Instant::now() < end, "queue did not drain in time");
            let wait = q
                .deadline()
                .map(|d| d.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(1));
            if let Some(fd) = q.fd() {
                let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
                let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
                nix::poll::poll(&mut fds, PollTimeout::from(ms)).unwrap();
            }
            if let Some(outcome) = q.service(Instant::now()) {
                outcomes.push(outcome);
            }
        }
        outcomes
    }

    #[test]
    fn env_reaches_the_command() {
        let tmp = TempDir::new("cmdenv");
        let out = tmp.path("out");
        let mut q = CommandQueue::new(
            sh(format!(
                "printf '%s %s %s\\n' \"$BBWD_EVENT\" \"$BBWD_NODE\" \"${{NOTIFY_SOCKET-unset}}\" > {}",
                out.display()
            )),
            Duration::from_secs(10),
        );
        assert!(q.submit(job("restart"), Instant::now()));
        assert_eq!(q.len(), 1);
        assert!(q.fd().is_some());
        assert_eq!(run_all(&mut q, Duration::from_secs(10)), [Outcome::Success]);
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "restart bb1 unset\n"
        );
        assert!(q.fd().is_none());
        assert!(q.deadline().is_none());
    }

    #[test]
    fn jobs_run_in_order_one_at_a_time() {
        let tmp = TempDir::new("cmdorder");
        let out = tmp.path("out");
        let lock = tmp.path("lock");
        // mkdir is atomic: a second concurrent job would fail with status 3.
        let mut q = CommandQueue::new(
            sh(format!(
                "mkdir {lock} || exit 3; echo \"$BBWD_EVENT\" >> {out}; sleep 0.05; rmdir {lock}; [ \"$BBWD_EVENT\" != c ] || exit 5",
                lock = lock.display(),
                out = out.display()
            )),
            Duration::from_secs(10),
        );
        let now = Instant::now();
        for e in ["a", "b", "c"] {
            assert!(q.submit(job(e), now));
        }
        assert_eq!(q.len(), 3);
        assert_eq!(
            run_all(&mut q, Duration::from_secs(20)),
            [Outcome::Success, Outcome::Success, Outcome::Failed(5)]
        );
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "a\nb\nc\n");
        assert_eq!(q.dropped(), 0);
    }

    #[test]
    fn overdue_job_and_its_group_are_killed() {
        let tmp = TempDir::new("cmdtimeout");
        let pidfile = tmp.path("grandchild");
        let mut q = CommandQueue::new(
            sh(format!("sleep 30 & echo $! > {}; wait", pidfile.display())),
            Duration::from_millis(300),
        );
        let started = Instant::now();
        q.submit(job("x"), started);
        assert_eq!(q.deadline(), Some(started + Duration::from_millis(300)));
        let grandchild = read_pid_file(&pidfile);
        // Before the deadline, service does nothing.
        assert_eq!(q.service(started), None);
        assert!(!dead(grandchild));
        let outcomes = run_all(&mut q, Duration::from_secs(10));
        let gone = eventually(Duration::from_secs(5), || dead(grandchild));
        if !gone {
            kill_pid(grandchild);
        }
        assert_eq!(outcomes, [Outcome::TimedOut]);
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(gone, "the whole group is killed");
    }

    #[test]
    fn signal_from_elsewhere_is_not_a_timeout() {
        let mut q = CommandQueue::new(sh("kill -TERM $$".into()), Duration::from_secs(10));
        q.submit(Job::default(), Instant::now());
        assert_eq!(
            run_all(&mut q, Duration::from_secs(10)),
            [Outcome::Signaled(libc::SIGTERM)]
        );
    }

    #[test]
    fn missing_program_is_reported_and_the_queue_goes_on() {
        let mut q = CommandQueue::new(
            vec!["/nonexistent/bbwd-notify".into()],
            Duration::from_secs(10),
        );
        let now = Instant::now();
        assert!(q.submit(job("a"), now));
        assert!(q.submit(job("b"), now));
        assert!(q.fd().is_none());
        assert_eq!(q.deadline(), Some(now), "due at once");
        assert_eq!(q.len(), 2);
        let outcomes = run_all(&mut q, Duration::from_secs(5));
        assert_eq!(outcomes.len(), 2);
        for outcome in outcomes {
            match outcome {
                Outcome::SpawnFailed(msg) => assert!(msg.contains("/nonexistent/bbwd-notify")),
                other => panic!("{other:?}"),
            }
        }
        let mut empty = CommandQueue::new(Vec::new(), Duration::from_secs(1));
        empty.submit(Job::default(), now);
        assert!(matches!(empty.service(now), Some(Outcome::SpawnFailed(_))));
        assert!(empty.is_empty());
    }

    #[test]
    fn full_queue_drops_the_oldest_pending_and_counts() {
        let tmp = TempDir::new("cmdoverflow");
        let out = tmp.path("out");
        let mut q = CommandQueue::new(
            sh(format!("echo \"$BBWD_EVENT\" >> {}", out.display())),
            Duration::from_secs(10),
        );
        let now = Instant::now();
        let extra = 3;
        let total = 1 + QUEUE_CAPACITY + extra;
        // Nothing is serviced while submitting, so job 0 stays "running" and the rest pile up.
        let kept: Vec<bool> = (0..total)
            .map(|i| q.submit(job(&i.to_string()), now))
            .collect();
        assert!(kept[..1 + QUEUE_CAPACITY].iter().all(|&k| k));
        assert!(kept[1 + QUEUE_CAPACITY..].iter().all(|&k| !k));
        assert_eq!(q.dropped(), extra as u64);
        assert_eq!(q.len(), 1 + QUEUE_CAPACITY);
        let outcomes = run_all(&mut q, Duration::from_secs(60));
        assert_eq!(outcomes.len(), 1 + QUEUE_CAPACITY);
        assert!(outcomes.iter().all(|o| *o == Outcome::Success));
        // Job 0 ran; jobs 1..=3 (the oldest pending) were dropped.
        let ran: Vec<usize> = std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect();
        let want: Vec<usize> = std::iter::once(0).chain(1 + extra..total).collect();
        assert_eq!(ran, want);
    }
}
