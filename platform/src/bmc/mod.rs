//! The worker thread that holds one BMC conversation off the caller's loop, for any protocol
//! that can open a session, run an [`Op`] on it and close it: IPMI ([`crate::ipmi`]) and
//! Redfish ([`crate::redfish`]) are the two. Each protocol implements [`Protocol`] on the type
//! that says where its BMC is; [`BmcClient`] is the caller's handle on that protocol's worker
//! (`ipmi::IpmiClient` and `redfish::RedfishClient` are `BmcClient`s).
//!
//! Files: `mod.rs` the [`Protocol`] trait and the types both sides share; `client.rs` the
//! caller's [`BmcClient`]; `worker.rs` the thread; `wake.rs` the eventfd it signals.
//!
//! Owns: the thread and the request/reply channels; every operation's deadline; the one retry on
//! a fresh session; the background keep-alive and its reconnect backoff; the shared [`Health`];
//! containing panics. Must not: know any protocol (what a session is, how an operation is sent,
//! how a failure is named is the [`Protocol`]'s), decide anything (whether a failure matters is
//! the caller's), or block the caller: the daemon submits an operation, polls
//! [`BmcClient::fd`] and collects the outcome with [`BmcClient::try_result`]; only the CLI's
//! [`BmcClient::call`] waits.
//!
//! # Theory of operation
//! ```text
//!  caller's loop                          worker thread (one per BmcClient)
//!  ─────────────                          ─────────────────────────────────
//!  submit(op, now, timeout) ──Request::Run{id, op, deadline}──► attempt: open a session if none,
//!    in_flight = (id, op, deadline)                               run op; any failure drops it
//!                                                               retry once on a fresh session if
//!                                                               the failure is not final and time
//!                                                               is left
//!  poll fd ◄──────────── eventfd ◄──── Completion{id, ...} ────┘
//!  try_result(now): the completion with id, or `timeout` once now >= deadline (a later
//!                   completion of that id is discarded)
//!                                       idle: keep-alive every `Settings::keepalive`, or a
//!                                       reconnect after BACKOFF_MIN, doubling to BACKOFF_MAX
//!  close / drop ──────── Request::Shutdown ──────────────────► close the session, exit
//! ```
//!
//! # Invariants
//! * At most one session per [`BmcClient`], owned by its worker thread; a session that failed
//!   once is never used again.
//! * No panic crosses the worker's boundary: each conversation runs inside `catch_unwind`
//!   (`guarded`), a panic is a failed operation (`protocol error`) and drops the session; the
//!   thread's body has a last `catch_unwind` too, and a dead worker is replaced at the next
//!   submit.
//! * Every submitted operation completes (with its result or `timeout`) by its deadline, as seen
//!   by [`BmcClient::try_result`]; results of abandoned operations are discarded by [`OpId`].
//! * One operation in flight at a time ([`SubmitError::Busy`]).

mod client;
mod wake;
mod worker;

pub use client::BmcClient;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crate::ipmi::{Error, Failure, Op, Reply, KEEPALIVE, REPLY_TIMEOUT};

/// First and longest wait between background reconnects after a failure (doubling).
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// One protocol's way to a BMC, implemented by the type that says where the BMC is (it is
/// cloned into each worker). All three conversations run on the worker thread, inside
/// `guarded`; each may block, but for no longer than the reply timeout per wait.
pub trait Protocol: Clone + Send + 'static {
    /// An open session (and whatever connection carries it).
    type Session: Send;

    /// The protocol's words and timings in the worker.
    const PROFILE: Profile;

    /// Opens a session, ready for [`run`](Self::run). `deadline` is the operation's that
    /// needs the session (a protocol that cannot bound its opening by it sets
    /// [`Profile::deadline_after_open`]).
    fn open(&self, reply_timeout: Duration, deadline: Instant) -> Result<Self::Session, Failure>;

    /// Runs `op` on an open session. After an `Err` the worker drops the session.
    fn run(
        &self,
        session: &mut Self::Session,
        op: Op,
        reply_timeout: Duration,
        deadline: Instant,
    ) -> Result<Reply, Failure>;

    /// Best effort: ends the session on the BMC, so that its slot is freed at once.
    fn close(&self, session: &mut Self::Session, reply_timeout: Duration);

    /// The operation's name in errors (`chassis power off`, `ComputerSystem.Reset ForceOff`).
    fn op_name(op: Op) -> &'static str;
}

/// What differs between two protocols' workers: the words in errors and logs, and the timings.
#[derive(Debug, Clone, Copy)]
pub struct Profile {
    /// The worker thread's name (`bbwd-ipmi`).
    pub thread_name: &'static str,
    /// The worker thread's stack in bytes; `None`: the standard library's (2 MiB).
    pub stack_bytes: Option<usize>,
    /// The protocol's name in logs (`IPMI`).
    pub protocol: &'static str,
    /// Who failed when a conversation panics (`the IPMI library`).
    pub panicked: &'static str,
    /// What a retry opens afresh and a panic drops (`session`, `connection`).
    pub session: &'static str,
    /// The operation a failed background (re)connect is reported as (`open session`).
    pub reconnect_op: &'static str,
    /// A background keep-alive or reconnect may take this many reply timeouts.
    pub keepalive_reply_timeouts: u32,
    /// A retry on a fresh session is tried only while more than the reply timeout, capped at
    /// this, is left before the deadline (`Duration::MAX`: no cap).
    pub retry_room_cap: Duration,
    /// `open` is bounded per reply, not by the deadline, and may end past it: the worker checks
    /// the deadline again after opening (the session stays; only the operation timed out).
    pub deadline_after_open: bool,
}

/// A submitted operation's handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpId(pub(crate) u64);

/// A finished operation.
#[derive(Debug, Clone)]
pub struct Completion {
    pub id: OpId,
    pub op: Op,
    pub result: Result<Reply, Error>,
    /// How long the BMC conversation took (the worker's view).
    pub elapsed: Duration,
}

/// Why [`BmcClient::submit`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitError {
    /// An operation is in flight: one at a time.
    Busy,
}

/// What the background keep-alive knows about the session.
#[derive(Debug, Clone, Default)]
pub struct Health {
    /// A session is open and its last use succeeded.
    pub up: bool,
    /// The last failure (cleared by the next success).
    pub last_error: Option<Error>,
    /// Sessions opened since start (a steady daemon opens one).
    pub sessions_opened: u64,
    /// Operations completed successfully / failed (including keep-alives).
    pub ok: u64,
    pub failed: u64,
}

/// Client-side tuning.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub reply_timeout: Duration,
    /// `Some`: keep a session open and check it this often while idle, reconnecting with
    /// backoff (the daemon). `None`: a session only for submitted operations (the CLI).
    pub keepalive: Option<Duration>,
    /// The operation that checks the session (power status for a fencer, get watchdog for the
    /// watchdog).
    pub keepalive_op: Op,
}

impl Default for Settings {
    /// IPMI's timings ([`crate::ipmi::REPLY_TIMEOUT`], [`crate::ipmi::KEEPALIVE`]), power status.
    fn default() -> Settings {
        Settings {
            reply_timeout: REPLY_TIMEOUT,
            keepalive: Some(KEEPALIVE),
            keepalive_op: Op::PowerStatus,
        }
    }
}

/// Runs `f`, turning a panic into a protocol failure that names `profile`'s culprit.
pub(crate) fn guarded<T>(
    profile: &Profile,
    f: impl FnOnce() -> Result<T, Failure>,
) -> Result<T, Failure> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(Failure::Protocol(format!(
                "{} failed (panicked: {msg}); the {} was dropped",
                profile.panicked, profile.session
            )))
        }
    }
}

#[cfg(test)]
mod tests;
