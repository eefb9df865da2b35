//! The cold-standby pair's decision logic: which node serves, and in what order a node takes
//! the service over or gives it up. A pure state machine like `machine` (no I/O, time passed
//! in, actions returned); it sits *above* the single-node supervisor, which it tells whether
//! Bitbucket may run (`Permit`) and which tells it when Bitbucket is healthy, gone, or beyond
//! saving (`Supervisor*` inputs). [`crate::node::Node`] composes the two with the heartbeat and
//! the fencing procedure.
//!
//! # Theory of operation
//!
//! ```text
//!            serving found at start (bbwd restarted: Bitbucket, VIP or storage still held)
//!   Booting ───────────────────────────────────────────────────────────► TakingOver (resume)
//!      │ peer heard: serving, or we are not the winner ───────────────► Standby
//!      │ peer heard not serving, with consent, we are the winner ─────► TakingOver
//!      │ peer's BMC says off ──► Fencing (at once)                          │  ▲
//!      └─ silent for boot_wait ─► Fencing (winner at once, else after fence_delay)
//!                                                                            │  │
//!   Standby ── peer lost (+ fence_delay) ──► Fencing ──confirmed off──► TakingOver:
//!      ▲   ── peer handed over, with consent ───────────────────────►   before_start hooks
//!      │   ── peer not serving, with consent, we are the winner ────►   -> Permit(run)
//!      │                                      │ failed                  -> healthy -> AddVip
//!      │                                      ▼                            │
//!      │                                FenceBlocked (retry, backoff,      ▼
//!      │                                 CRITICAL; operator)            Active ── peer lost:
//!      │                                                                  │   fence at once
//!      │  released: handed over (only if every step succeeded)           │
//!      └────────── Releasing: RemoveVip -> Permit(stop) -> after_stop ◄───┘ restarts exhausted,
//!                    │ a step failed or Bitbucket not gone in time          public link down past
//!                    ▼                                                      link_hold, isolated,
//!                 SelfFenced: silent (no heartbeats), watchdog not petted   switchover, shutdown
//! ```
//!
//! **The safety rule: never two nodes serving.** A node *serves* while Bitbucket may run on it,
//! while it holds the VIP, or while its `before_start` hooks (storage) may be in effect. A node
//! starts serving only on one of these proofs that the other side does not serve:
//! 1. a **confirmed fence** of the peer (`fence::Outcome::OffConfirmed`: an off reading after an
//!    acknowledged power-off; one reading is never enough), unless the peer's BMC has been seen
//!    to report off while the peer heartbeats (a `[fencing]` host pointing at another machine:
//!    then no fence is trusted, CRITICAL);
//! 2. the peer's **consent**: an authenticated heartbeat that answers this run's current
//!    challenge (`PeerTracker::consent`, so never a replay or a word from an earlier run) saying
//!    it handed the service over (`handed_over`, only sent after a release in which every step
//!    succeeded), or that it does not serve and we are the **winner** (the `preferred_active`
//!    node; with both or neither preferred, the node whose name sorts first: both nodes compute
//!    the same winner, so at most one takes over on consent);
//! 3. an operator's `confirm-peer-down` while the peer is silent (the operator's word that it
//!    is off);
//! 4. **resumption**: at start the node finds itself already serving (bbwd was restarted with
//!    Bitbucket left running): it was serving before, by one of the proofs above, and since no
//!    packet of the new run ever says "not serving", the peer cannot have taken over meanwhile
//!    without fencing this node.
//!
//! A node that cannot prove it stopped serving (a release step failed, Bitbucket survives its
//! stop) never says "not serving" again: it goes **silent** and stops petting the watchdog
//! (`SelfFenced`), so the peer's only way in is a confirmed fence.
//!
//! **Liveness** (the checker's progress property): faults over, one healthy node, and a working
//! path to the other's BMC (or the other truly off) ⇒ one node serves within `boot_wait` +
//! `fence_delay` + the fence, start and VIP times. Paused on purpose: maintenance on either node,
//! an isolated node (neither peer nor witness reachable), a public link that is down, a failed
//! start (manual intervention), and a fence that cannot be confirmed (CRITICAL, retried).
//!
//! **Hysteresis.** The witness counts as unreachable only after [`Settings::witness_misses`]
//! consecutive missed pings, and the public link as lost only after it stayed down for
//! [`Settings::link_hold`]: a switch port renegotiating must not move the service. A standby
//! whose peer is silent re-evaluates on every tick, so a blip that once held a takeover back does
//! not hold it back for good; a fence already requested is followed to its end.
//!
//! # Invariants
//! * `Permit { run: true }` is only returned in `TakingOver`, which is only entered on one of the
//!   four proofs above; `AddVip` only after the supervisor reported Bitbucket healthy.
//! * Leaving `TakingOver`/`Active` always passes through `Releasing`, which returns `RemoveVip`
//!   before `Permit { run: false }`, and `after_stop` hooks only after Bitbucket is gone.
//! * `handed_over` is advertised only in `Standby` after a release with no failed step.
//! * In `SelfFenced` the node sends nothing (see `Pair::silent`).
//!
//! # Where it is
//! * `vocab`: the settings, the heartbeat's view of the peer, inputs and actions.
//! * `kind`: the event kinds and their severity.
//! * `state`: the state with its data, how a machine starts, what is read off it.
//! * `step`: the input dispatch, and what time and the standing conditions decide.
//! * `peer`: hearing and losing the peer; a takeover on its consent (proof 2).
//! * `fencing`: the BMC: fences, power queries, the operator's `confirm-peer-down` (proofs 1, 3).
//! * `takeover` and `release`: the two ordered procedures, and the ways out of service.

use std::time::{Duration, Instant};

mod fencing;
mod kind;
mod peer;
mod release;
mod state;
mod step;
mod takeover;
mod vocab;

pub use kind::Kind;
pub use state::Pair;
pub use vocab::{Action, FenceResult, Hooks, Input, PeerView, ReleaseWhy, Role, Settings};

use crate::machine::Detail;

/// Most actions one step returns.
pub const MAX_ACTIONS: usize = 10;

/// Actions of one step.
pub type Actions = heapless::Vec<Action, MAX_ACTIONS>;

/// First retry of a failed fence or takeover; doubled each time up to [`BACKOFF_MAX`].
pub const BACKOFF_START: Duration = Duration::from_secs(1);
/// Longest wait between fence (or takeover) attempts: an operator is told at the first failure;
/// retrying faster only loads a BMC that is not answering.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// A deadline that never comes (the step is governed by the supervisor's own timeouts).
fn far(now: Instant) -> Instant {
    now + Duration::from_secs(10 * 365 * 24 * 3600)
}

/// The wait before retry `attempt` (0-based): [`BACKOFF_START`] doubled per attempt, at most
/// [`BACKOFF_MAX`].
fn backoff(attempt: u32) -> Duration {
    BACKOFF_START
        .saturating_mul(1 << attempt.min(16))
        .min(BACKOFF_MAX)
}

fn push(out: &mut Actions, a: Action) {
    if out.push(a).is_err() {
        debug_assert!(false, "pair::MAX_ACTIONS too small");
    }
}

/// Appends an event; the detail is formatted into fixed capacity (cut when longer).
fn ev(out: &mut Actions, kind: Kind, args: core::fmt::Arguments<'_>) {
    let mut d = Detail::new();
    let _ = core::fmt::Write::write_fmt(&mut d, args);
    push(out, Action::Event(kind, d));
}

#[cfg(test)]
mod tests;
