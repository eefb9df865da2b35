//! Short-lived helper commands: `notify.command` on every event (and, later, hooks).
//!
//! A `CommandQueue` runs one command at a time, in order, each with a time limit (SIGKILL to its
//! process group when exceeded), without ever blocking the caller: a pidfd tells the loop when
//! the running one ends. Pending jobs wait in a fixed-capacity queue; when it is full the oldest
//! pending job is dropped and counted (a notification storm must not grow memory).
//!
//! Must not: interpret the command's result beyond reporting it.

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

/// Capacity of the pending queue.
pub const QUEUE_CAPACITY: usize = 32;

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
    /// Non-zero exit status.
    Failed(i32),
    /// Killed by a signal (not by us).
    Signaled(i32),
    /// Exceeded the time limit and was killed.
    TimedOut,
    /// Could not be started (message names the program and the error).
    SpawnFailed(String),
}

/// Runs jobs of one command line in order.
pub struct CommandQueue {
    _private: (),
}

impl CommandQueue {
    /// `argv` is the command (argv[0] the program); `limit` the time each run may take.
    pub fn new(argv: Vec<String>, limit: Duration) -> Self {
        let _ = (argv, limit);
        todo!()
    }
    /// Queues a job; starts it at once when nothing runs. Returns false when an older pending job
    /// had to be dropped to make room.
    pub fn submit(&mut self, job: Job, now: Instant) -> bool {
        let _ = (job, now);
        todo!()
    }
    /// The pidfd of the running job, to poll for readability.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        todo!()
    }
    /// When the running job's time limit ends.
    pub fn deadline(&self) -> Option<Instant> {
        todo!()
    }
    /// Reaps a finished job, kills an overdue one, starts the next. Call when `fd` is readable
    /// or `deadline` has passed (calling it at other times is harmless). Returns the outcome of
    /// a job that ended during this call.
    pub fn service(&mut self, now: Instant) -> Option<Outcome> {
        let _ = now;
        todo!()
    }
    /// Jobs dropped because the queue was full, since start.
    pub fn dropped(&self) -> u64 {
        todo!()
    }
    /// Running + pending jobs.
    pub fn len(&self) -> usize {
        todo!()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
