//! Short-lived helper commands: `notify.command` on every event (`CommandQueue`) and the
//! `[hooks]` steps of a takeover or release (`Sequence`).
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
//! A `Sequence` runs an ordered list of commands (`before_start`, `after_stop`) once per
//! `start`, one after another, each step with its own time limit (same kill rule as above), in
//! one of two modes: `StopAtFirstFailure` (a failed, killed or unstartable step ends the run and
//! the rest are not run: the takeover is aborted) or `BestEffort` (every step runs; every
//! failure is collected). `service` returns the whole run's `SequenceOutcome` (each step's
//! argv[0] and result, plus how many were skipped) once, at the end, so the caller reports all
//! errors together. An empty list finishes at once (`deadline()` is the start moment). The
//! steps get `BBWD_NODE` and `BBWD_PHASE` in their environment.
//! ```text
//!   start ──► Step{0} ─ends─► record ─ok or BestEffort─► Step{1} ... ─► Finished{at}
//!                               └─failed and StopAtFirstFailure─► Finished (rest skipped)
//!   service(now) on Finished: hands back the SequenceOutcome once, back to Idle.
//! ```
//!
//! Each job (and each step) runs in its own process group (pgid = its pid), stdin `/dev/null`,
//! stdout/stderr inherited (the journal), bbwd's environment minus systemd's variables for
//! bbwd, plus the job's variables.
//!
//! # Invariants
//! * At most one job runs; only its pid is ever `waitpid`ed (never `waitpid(-1)`, which would
//!   steal Bitbucket's exit).
//! * The group signal on timeout goes to a group whose leader we have not reaped yet, so the
//!   pgid cannot have been recycled.
//! * A `Sequence` runs at most one step at a time, in list order, and never starts a step after a
//!   failure in `StopAtFirstFailure` mode; a new `start` is refused until the outcome of the
//!   previous run was taken by `service`.
//! * Memory is fixed: the pending queue is a `heapless::Deque` allocated once in `new`.
//! * Dropping the queue (or a sequence) neither kills nor reaps a running job (it runs to its
//!   end; it stays a zombie until bbwd exits).

use std::fmt;
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
            Slot::Running(r) => check_running(r, now, &self.argv, self.limit),
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
        spawn_job(&self.argv, job)
    }
}

/// Reaps `r` if it ended, else SIGKILLs its group once its deadline has passed (and moves the
/// deadline to the next re-check). Some(outcome) once it has ended.
fn check_running(
    r: &mut Running,
    now: Instant,
    argv: &[String],
    limit: Duration,
) -> Option<Outcome> {
    let program = argv.first().map(String::as_str).unwrap_or("");
    match wait_nohang(r.pid) {
        Ok(Some(kind)) => Some(outcome_of(kind, r.killed)),
        Ok(None) => {
            if now >= r.deadline {
                if !r.killed {
                    log::warn!(
                        "{} (pid {}) exceeded its time limit of {:?}; killing its group",
                        program,
                        r.pid,
                        limit
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
            log::warn!("waitpid({}) for {} failed: {e}", r.pid, program);
            Some(Outcome::Failed(-1))
        }
    }
}

/// Starts `argv` with `job`'s variables in its own process group; its pid and pidfd.
fn spawn_job(argv: &[String], job: &Job) -> std::io::Result<(i32, OwnedFd)> {
    let Some(program) = argv.first() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "empty command",
        ));
    };
    let mut cmd = Command::new(program);
    cmd.args(&argv[1..])
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

fn outcome_of(kind: ExitKind, killed_by_us: bool) -> Outcome {
    match kind {
        _ if killed_by_us => Outcome::TimedOut,
        ExitKind::Exited(0) => Outcome::Success,
        ExitKind::Exited(code) => Outcome::Failed(code),
        ExitKind::Signaled(sig) => Outcome::Signaled(sig),
        ExitKind::Unknown => Outcome::Failed(-1),
    }
}

// ---- Sequence: the `[hooks]` steps -------------------------------------------------------------

/// How a [`Sequence`] treats a failed step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceMode {
    /// `before_start`: the first failed step ends the sequence; the later ones are not run
    /// (the takeover is aborted).
    StopAtFirstFailure,
    /// `after_stop`: every step runs whatever happened before; every failure is collected.
    BestEffort,
}

/// One step that ran (or could not be started).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepResult {
    /// Position in the configured list, from 0.
    pub index: usize,
    /// The step's argv[0] ("" for an empty command).
    pub program: String,
    pub outcome: Outcome,
}

impl fmt::Display for StepResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let program = &self.program;
        match &self.outcome {
            Outcome::Success => write!(f, "{program}: succeeded"),
            Outcome::Failed(-1) => write!(f, "{program}: exit status lost"),
            Outcome::Failed(code) => write!(f, "{program}: exit status {code}"),
            Outcome::Signaled(sig) => write!(f, "{program}: killed by signal {sig}"),
            Outcome::TimedOut => write!(f, "{program}: exceeded its time limit, killed"),
            Outcome::SpawnFailed(message) => f.write_str(message),
        }
    }
}

/// The end of a [`Sequence`] run: every step that ran, in order, and how many were not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceOutcome {
    pub steps: Vec<StepResult>,
    /// Steps after a failure in [`SequenceMode::StopAtFirstFailure`] mode, not run.
    pub skipped: usize,
}

impl SequenceOutcome {
    /// Every step ran and succeeded (an empty list succeeds).
    pub fn succeeded(&self) -> bool {
        self.skipped == 0 && self.steps.iter().all(|s| s.outcome == Outcome::Success)
    }

    /// The steps that did not succeed, in order.
    pub fn failures(&self) -> impl Iterator<Item = &StepResult> {
        self.steps.iter().filter(|s| s.outcome != Outcome::Success)
    }
}

impl fmt::Display for SequenceOutcome {
    /// "3 steps succeeded", or every failure: "2 of 3 steps failed: a: exit status 1; b: ...".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let failed = self.failures().count();
        if failed == 0 && self.skipped == 0 {
            return write!(f, "{} steps succeeded", self.steps.len());
        }
        let total = self.steps.len() + self.skipped;
        write!(f, "{failed} of {total} steps failed")?;
        for (i, step) in self.failures().enumerate() {
            f.write_str(if i == 0 { ": " } else { "; " })?;
            write!(f, "{step}")?;
        }
        if self.skipped > 0 {
            write!(f, "; {} not run", self.skipped)?;
        }
        Ok(())
    }
}

enum SeqState {
    Idle,
    /// Step `index` runs (or failed to start, to be recorded by the next `service`).
    Step {
        index: usize,
        slot: Slot,
    },
    /// All done; reported by the next `service`.
    Finished {
        at: Instant,
    },
}

/// An ordered list of commands (`[hooks] before_start` / `after_stop`), run one after another,
/// each with its own time limit: see the module doc.
pub struct Sequence {
    steps: Vec<Vec<String>>,
    step_limit: Duration,
    mode: SequenceMode,
    /// BBWD_NODE and BBWD_PHASE, built once.
    job: Job,
    state: SeqState,
    results: Vec<StepResult>,
    skipped: usize,
}

impl Sequence {
    /// `steps` in order (each argv[0] the program); `step_limit` is the time each step may take;
    /// `phase` (e.g. "before_start") and `node` reach the commands as `BBWD_PHASE` and
    /// `BBWD_NODE` (cut to 255 bytes).
    pub fn new(
        phase: &str,
        node: &str,
        steps: Vec<Vec<String>>,
        step_limit: Duration,
        mode: SequenceMode,
    ) -> Self {
        let mut job = Job::default();
        for (key, value) in [("BBWD_NODE", node), ("BBWD_PHASE", phase)] {
            // Cannot fail: the job has room for 4 variables and the value is cut to fit.
            let _ = job.env.push((key, truncated(value)));
        }
        let results = Vec::with_capacity(steps.len());
        Sequence {
            steps,
            step_limit,
            mode,
            job,
            state: SeqState::Idle,
            results,
            skipped: 0,
        }
    }

    /// Starts the first step (an empty list finishes at once: `deadline` is `now`). Returns
    /// false, and does nothing, while a run is in progress or not yet reported by `service`.
    pub fn start(&mut self, now: Instant) -> bool {
        if !matches!(self.state, SeqState::Idle) {
            return false;
        }
        self.results.clear();
        self.skipped = 0;
        self.start_step(0, now);
        true
    }

    /// A run is in progress (or finished and not yet reported by `service`).
    pub fn is_running(&self) -> bool {
        !matches!(self.state, SeqState::Idle)
    }

    /// The pidfd of the running step, to poll for readability.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.state {
            SeqState::Step {
                slot: Slot::Running(r),
                ..
            } => Some(r.pidfd.as_fd()),
            _ => None,
        }
    }

    /// When `service` must be called: the running step's time limit (or its kill re-check), or
    /// the (past) moment a step failed to start or the run finished.
    pub fn deadline(&self) -> Option<Instant> {
        match &self.state {
            SeqState::Idle => None,
            SeqState::Step { slot, .. } => match slot {
                Slot::Running(r) => Some(r.deadline),
                Slot::Failed { at, .. } => Some(*at),
                Slot::Idle => None,
            },
            SeqState::Finished { at } => Some(*at),
        }
    }

    /// Records a finished step, kills an overdue one, starts the next. Call when `fd` is
    /// readable or `deadline` has passed (other times are harmless). Returns the whole run's
    /// outcome once the last step is done (or the first failure ends it).
    pub fn service(&mut self, now: Instant) -> Option<SequenceOutcome> {
        loop {
            let (index, outcome) = match &mut self.state {
                SeqState::Idle => return None,
                SeqState::Finished { .. } => {
                    self.state = SeqState::Idle;
                    return Some(SequenceOutcome {
                        steps: std::mem::take(&mut self.results),
                        skipped: self.skipped,
                    });
                }
                SeqState::Step { index, slot } => {
                    let argv = &self.steps[*index];
                    let outcome = match slot {
                        Slot::Running(r) => check_running(r, now, argv, self.step_limit)?,
                        Slot::Failed { message, .. } => {
                            Outcome::SpawnFailed(std::mem::take(message))
                        }
                        Slot::Idle => Outcome::Failed(-1),
                    };
                    (*index, outcome)
                }
            };
            let program = self.steps[index].first().cloned().unwrap_or_default();
            let failed = outcome != Outcome::Success;
            self.results.push(StepResult {
                index,
                program,
                outcome,
            });
            if let (true, Some(step)) = (failed, self.results.last()) {
                log::warn!("{} step {}: {step}", self.phase(), index + 1);
            }
            if failed && self.mode == SequenceMode::StopAtFirstFailure {
                self.skipped = self.steps.len() - index - 1;
                self.state = SeqState::Finished { at: now };
            } else {
                self.start_step(index + 1, now);
            }
        }
    }

    fn phase(&self) -> &str {
        self.job
            .env
            .iter()
            .find(|(k, _)| *k == "BBWD_PHASE")
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    fn start_step(&mut self, index: usize, now: Instant) {
        let Some(argv) = self.steps.get(index) else {
            self.state = SeqState::Finished { at: now };
            return;
        };
        let slot = match spawn_job(argv, &self.job) {
            Ok((pid, pidfd)) => Slot::Running(Running {
                pid,
                pidfd,
                deadline: now + self.step_limit,
                killed: false,
            }),
            Err(e) => {
                let program = argv.first().map(String::as_str).unwrap_or("");
                Slot::Failed {
                    message: format!("cannot start {program}: {e}"),
                    at: now,
                }
            }
        };
        self.state = SeqState::Step { index, slot };
    }
}

/// `value` cut to the capacity of a job variable, at a character boundary.
fn truncated(value: &str) -> heapless::String<256> {
    let mut end = value.len().min(255);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = heapless::String::new();
    // Cannot fail: at most 255 bytes.
    let _ = out.push_str(&value[..end]);
    out
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
        let out = tmp.join("out");
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
        let out = tmp.join("out");
        let lock = tmp.join("lock");
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
        let pidfile = tmp.join("grandchild");
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
        let out = tmp.join("out");
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

    // ---- Sequence ----

    fn drive(seq: &mut Sequence, timeout: Duration) -> SequenceOutcome {
        let end = Instant::now() + timeout;
        loop {
            assert!(Instant::now() < end, "sequence did not finish in time");
            let wait = seq
                .deadline()
                .map(|d| d.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(1));
            if let Some(fd) = seq.fd() {
                let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
                let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
                nix::poll::poll(&mut fds, PollTimeout::from(ms)).unwrap();
            } else {
                std::thread::sleep(wait);
            }
            if let Some(outcome) = seq.service(Instant::now()) {
                assert!(!seq.is_running());
                assert!(seq.fd().is_none() && seq.deadline().is_none());
                return outcome;
            }
        }
    }

    fn programs(outcome: &SequenceOutcome) -> Vec<(usize, &str, &Outcome)> {
        outcome
            .steps
            .iter()
            .map(|s| (s.index, s.program.as_str(), &s.outcome))
            .collect()
    }

    #[test]
    fn sequence_runs_steps_in_order_one_at_a_time_with_env() {
        let tmp = TempDir::new("seqorder");
        let out = tmp.join("out");
        let lock = tmp.join("lock");
        let step = |n: u32| {
            sh(format!(
                "mkdir {lock} || exit 3; echo \"$BBWD_PHASE $BBWD_NODE {n}\" >> {out}; sleep 0.05; rmdir {lock}",
                lock = lock.display(),
                out = out.display()
            ))
        };
        let mut seq = Sequence::new(
            "before_start",
            "bb1",
            vec![step(1), step(2), step(3)],
            Duration::from_secs(10),
            SequenceMode::StopAtFirstFailure,
        );
        assert!(!seq.is_running());
        assert!(seq.start(Instant::now()));
        assert!(seq.is_running());
        assert!(
            !seq.start(Instant::now()),
            "a second start is refused while running"
        );
        let outcome = drive(&mut seq, Duration::from_secs(20));
        assert!(outcome.succeeded(), "{outcome}");
        assert_eq!(
            programs(&outcome),
            [
                (0, "/bin/sh", &Outcome::Success),
                (1, "/bin/sh", &Outcome::Success),
                (2, "/bin/sh", &Outcome::Success)
            ]
        );
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "before_start bb1 1\nbefore_start bb1 2\nbefore_start bb1 3\n"
        );
        // The same sequence runs again on the next start.
        assert!(seq.start(Instant::now()));
        assert!(drive(&mut seq, Duration::from_secs(20)).succeeded());
        assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 6);
    }

    #[test]
    fn sequence_stops_at_the_first_failure() {
        let tmp = TempDir::new("seqabort");
        let marker = tmp.join("marker");
        let mut seq = Sequence::new(
            "before_start",
            "bb1",
            vec![
                vec!["/bin/true".into()],
                sh("exit 3".into()),
                vec!["/usr/bin/touch".into(), marker.display().to_string()],
            ],
            Duration::from_secs(10),
            SequenceMode::StopAtFirstFailure,
        );
        seq.start(Instant::now());
        let outcome = drive(&mut seq, Duration::from_secs(20));
        assert!(!outcome.succeeded());
        assert_eq!(
            programs(&outcome),
            [
                (0, "/bin/true", &Outcome::Success),
                (1, "/bin/sh", &Outcome::Failed(3))
            ]
        );
        assert_eq!(outcome.skipped, 1);
        assert_eq!(outcome.failures().count(), 1);
        assert!(!marker.exists(), "the step after the failure never ran");
        assert_eq!(
            outcome.to_string(),
            "1 of 3 steps failed: /bin/sh: exit status 3; 1 not run"
        );
    }

    #[test]
    fn best_effort_sequence_runs_everything_and_collects_every_error() {
        let tmp = TempDir::new("seqbest");
        let marker = tmp.join("marker");
        let mut seq = Sequence::new(
            "after_stop",
            "bb2",
            vec![
                sh("exit 4".into()),
                vec!["/usr/bin/touch".into(), marker.display().to_string()],
                vec!["/nonexistent/bbwd-hook".into()],
                vec!["/bin/true".into()],
            ],
            Duration::from_secs(10),
            SequenceMode::BestEffort,
        );
        seq.start(Instant::now());
        let outcome = drive(&mut seq, Duration::from_secs(20));
        assert!(!outcome.succeeded());
        assert_eq!(outcome.skipped, 0);
        assert_eq!(outcome.steps.len(), 4);
        assert!(marker.exists(), "the step after a failure ran");
        let failures: Vec<&StepResult> = outcome.failures().collect();
        assert_eq!(failures.len(), 2);
        assert_eq!(
            (failures[0].index, &failures[0].outcome),
            (0, &Outcome::Failed(4))
        );
        assert_eq!(failures[1].index, 2);
        assert_eq!(failures[1].program, "/nonexistent/bbwd-hook");
        assert!(
            matches!(&failures[1].outcome, Outcome::SpawnFailed(m) if m.contains("/nonexistent/bbwd-hook"))
        );
        assert_eq!(outcome.steps[3].outcome, Outcome::Success);
        let text = outcome.to_string();
        assert!(
            text.starts_with(
                "2 of 4 steps failed: /bin/sh: exit status 4; cannot start /nonexistent/bbwd-hook"
            ),
            "{text}"
        );
    }

    #[test]
    fn overdue_step_and_its_group_are_killed_and_the_next_step_gets_its_own_limit() {
        let tmp = TempDir::new("seqtimeout");
        let pidfile = tmp.join("grandchild");
        let marker = tmp.join("marker");
        let limit = Duration::from_millis(300);
        let mut seq = Sequence::new(
            "after_stop",
            "bb1",
            vec![
                sh(format!("sleep 30 & echo $! > {}; wait", pidfile.display())),
                // Killed at once if it inherited the first step's (passed) deadline;
                // fits in its own.
                sh(format!("sleep 0.2; touch {}", marker.display())),
            ],
            limit,
            SequenceMode::BestEffort,
        );
        let started = Instant::now();
        seq.start(started);
        assert_eq!(seq.deadline(), Some(started + limit));
        let grandchild = read_pid_file(&pidfile);
        assert_eq!(
            seq.service(started),
            None,
            "nothing is due before the limit"
        );
        assert!(!dead(grandchild));
        let outcome = drive(&mut seq, Duration::from_secs(20));
        let gone = eventually(Duration::from_secs(5), || dead(grandchild));
        if !gone {
            kill_pid(grandchild);
        }
        assert_eq!(outcome.steps[0].outcome, Outcome::TimedOut);
        assert_eq!(outcome.steps[1].outcome, Outcome::Success);
        assert!(marker.exists());
        assert!(started.elapsed() >= limit);
        assert!(gone, "the whole group of the overdue step is killed");
    }

    #[test]
    fn missing_program_aborts_at_once() {
        let tmp = TempDir::new("seqmissing");
        let marker = tmp.join("marker");
        let mut seq = Sequence::new(
            "before_start",
            "bb1",
            vec![
                vec!["/nonexistent/drbdadm".into(), "primary".into()],
                vec!["/usr/bin/touch".into(), marker.display().to_string()],
            ],
            Duration::from_secs(10),
            SequenceMode::StopAtFirstFailure,
        );
        let now = Instant::now();
        seq.start(now);
        assert!(seq.fd().is_none());
        assert_eq!(seq.deadline(), Some(now), "due at once");
        let outcome = seq.service(now).expect("finished in one call");
        assert_eq!(outcome.steps.len(), 1);
        assert_eq!(outcome.steps[0].program, "/nonexistent/drbdadm");
        assert!(
            matches!(&outcome.steps[0].outcome, Outcome::SpawnFailed(m) if m.contains("/nonexistent/drbdadm"))
        );
        assert_eq!(outcome.skipped, 1);
        assert!(!marker.exists());
        // An empty argv is a failed step too, not a panic.
        let mut empty_argv = Sequence::new(
            "after_stop",
            "bb1",
            vec![Vec::new()],
            Duration::from_secs(1),
            SequenceMode::BestEffort,
        );
        empty_argv.start(now);
        let outcome = empty_argv.service(now).expect("finished in one call");
        assert!(matches!(&outcome.steps[0].outcome, Outcome::SpawnFailed(_)));
    }

    #[test]
    fn empty_list_succeeds_at_once() {
        for mode in [SequenceMode::StopAtFirstFailure, SequenceMode::BestEffort] {
            let mut seq = Sequence::new(
                "before_start",
                "bb1",
                Vec::new(),
                Duration::from_secs(1),
                mode,
            );
            let now = Instant::now();
            assert_eq!(seq.service(now), None, "idle before start");
            assert!(seq.start(now));
            assert!(seq.fd().is_none());
            assert_eq!(seq.deadline(), Some(now));
            let outcome = seq.service(now).expect("done at once");
            assert!(outcome.succeeded());
            assert!(outcome.steps.is_empty());
            assert_eq!(outcome.to_string(), "0 steps succeeded");
            assert_eq!(seq.service(now), None, "reported once");
        }
    }

    #[test]
    fn long_node_names_are_cut_not_refused() {
        let long = "é".repeat(200); // 400 bytes
        let cut = truncated(&long);
        assert!(cut.len() <= 255 && long.starts_with(cut.as_str()));
    }
}
