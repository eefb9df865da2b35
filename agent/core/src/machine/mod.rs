//! The decision logic: a pure state machine that supervises one Bitbucket process.
//!
//! # Theory of operation
//!
//! The machine is driven by [`Machine::step`]`(now, input)`, which returns the [`Action`]s the
//! event loop must carry out. It performs no I/O, never reads a clock (time is `now`), and
//! never fails: every platform failure comes back to it as an input (`SpawnFailed`, a failed
//! `Checked`). The event loop around it is thin: it turns file-descriptor readiness into inputs
//! and actions into system calls.
//!
//! The process lifecycle (`Proc`, in `state`) and three overlays decide everything:
//!
//! ```text
//!                 reconcile(): want running, database not down
//!      +------+  ------------------------------------------->  +----------+
//!      | Down |                  Spawn / Started               | Starting |--- healthy /status --+
//!      +------+  <---+                                         +----------+                      |
//!         ^          |  Gone (then: Restart / Fail / Shutdown /     | exits, or unhealthy past   v
//!         |          |        StayDown)                             | startup_timeout       +--------+
//!         |     +-----------+   stop_timeout   +---------+          +---------------------->|   Up   |
//!         |     | Stopping  |----------------->| Killing |                                  +--------+
//!         |     | (SIGTERM) |     SIGKILL      |         |---- kill_timeout ----+              |   |
//!         |     +-----------+                  +---------+                      v              |   |
//!         |          ^   failures_before_action failed checks, OOME line  +------------+       |   |
//!         |          +----------------------------------------------------|            |<------+   |
//!         |                                                               | Unkillable |           |
//!         |     +-----------+  leader exited on its own (crash, OOME):    | (stop      |           |
//!         +-----| Reaping   |<-- SIGKILL to what is left of the group ----|  petting)  |     crash |
//!               +-----------+                                             +------------+<--+-------+
//!                     |  kill_timeout with members left ------------------------^
//! ```
//!
//! Overlays: `failed` (manual intervention needed: no automatic start until `Reset`),
//! `maintenance` (operator: no correction, no automatic start), and the database state
//! (`Down` = holding: no correction at all, Bitbucket is left as it is; the seeds: "Nothing.
//! Stash will recover when the database comes back"). Whenever the process is `Down`, the
//! machine *reconciles*: it starts Bitbucket if it should run and the database is not known to
//! be down.
//!
//! Monitoring: while Bitbucket runs (and while the database must be watched), a check is due
//! every `monitor_interval`, one at a time (a slow check is never overlapped). The loop runs the
//! `/status` probe and the database connect check together and answers with one `Checked`, so a
//! failed probe is always judged with a fresh database state.
//!
//! # Invariants
//! * Never two instances: `Spawn` is only returned from `Down`, and `Down` is only entered once
//!   the whole process group is gone (`Gone`).
//! * Every stop is graceful first: SIGTERM, `stop_timeout`, SIGKILL, `kill_timeout`; a group
//!   that survives that makes the node unable to correct itself: `StopPetting`, state `failed`.
//! * No correction while holding (database down), in maintenance, failed, or shutting down.
//! * Restarts are bounded: at most `max_restarts` within `restart_window`; beyond that the
//!   machine stops Bitbucket and waits for an operator (no flapping).
//! * `step` never allocates: actions and event details have fixed capacity.
//!
//! # Where it is
//! * `vocab`: the settings, inputs, actions and reports to the pair layer; `kind`: event kinds.
//! * `boot`: what a (re)started bbwd starts from (persisted `failed` and maintenance).
//! * `state`: the process lifecycle and the machine's data; `view`: what `bbwd status` shows.
//! * `step`: the input dispatch, the tick, and the reconciliation after every step.
//! * `start`: the free-port check, spawning, failing; `stop`: the graceful stop ladder, exits,
//!   corrections and the restart budget; `monitor`: judging checks and the database.
//! * `commands`: the operator's maintenance and reset, shutdown, the pair layer's permission.
//! * `text`: details cut to capacity, human text for probes and exits.

#![forbid(unsafe_code)]

use core::fmt::Write as _;

mod boot;
mod commands;
mod kind;
mod monitor;
mod start;
mod state;
mod step;
mod stop;
mod text;
mod view;
mod vocab;

pub use boot::{boot_failed, boot_maintenance, Boot, FailReason, Persisted};
pub use kind::EventKind;
pub use state::{Db, Machine};
pub use text::{detail, ExitText, ProbeText};
pub use view::{ResetRefused, State, View};
pub use vocab::{Action, Input, Report, Settings, Sig};

use text::CutWriter;

/// Exit status of a JVM started with `-XX:+ExitOnOutOfMemoryError`.
pub const OOME_EXIT_CODE: i32 = 3;

/// Longest event detail kept, bytes (longer details are cut).
pub const DETAIL_CAPACITY: usize = 160;

/// Most actions one step can return.
pub const MAX_ACTIONS: usize = 12;

/// A short human-readable explanation attached to events and states.
pub type Detail = heapless::String<DETAIL_CAPACITY>;

/// Actions returned by one step.
pub type Actions = heapless::Vec<Action, MAX_ACTIONS>;

/// Appends an action. Capacity is sized for the longest step; overflowing it is a bug.
fn push(out: &mut Actions, a: Action) {
    if out.push(a).is_err() {
        debug_assert!(false, "MAX_ACTIONS too small");
    }
}

/// Appends an event, formatting its detail into fixed capacity (cut when longer).
fn event(out: &mut Actions, kind: EventKind, args: core::fmt::Arguments<'_>) {
    let mut d = Detail::new();
    let _ = CutWriter(&mut d).write_fmt(args);
    push(out, Action::Event(kind, d));
}

#[cfg(test)]
mod tests;
