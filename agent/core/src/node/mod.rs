//! One node's every decision: the supervisor ([`crate::machine`]), and in pair mode the pair
//! machine ([`crate::pair`]), the heartbeat tracker and sender ([`crate::heartbeat`]) and the
//! fencing procedure ([`crate::fence`]), composed into one machine driven by
//! [`Node::step`]`(now, input)`.
//!
//! Owns what the event loops used to decide: how supervisor reports reach the pair and the
//! pair's permission reaches the supervisor; the role, state and flags advertised in heartbeats
//! and when a heartbeat must go out at once; what the heartbeat's view of the peer means for the
//! pair; which BMC operation comes next and what counts as a confirmed fence; that a node found
//! serving at start (Bitbucket adopted, VIP held, storage recorded) resumes instead of
//! advertising "not serving"; that a self-fenced node is silent.
//!
//! Must not: do I/O or read a clock. The shell turns readiness into [`Input`]s (and datagrams
//! into [`Node::receive`]), and carries out [`Action`]s; heartbeats are encoded by
//! [`Node::encode`] into the shell's buffer when [`Action::SendHeartbeats`] says so. The model
//! checker drives two of these through every interleaving.
//!
//! # Invariants
//! * Inputs produced inside (supervisor reports, the pair's permission, the pair's exit) are
//!   settled before `step` returns: the shell sees only external work.
//! * `SendHeartbeats` is never returned while the pair machine is silent (self-fenced).
//! * `AddVip` raises `vip_held` at once (a VIP being added counts as held); only a successful
//!   `VipRemoved` lowers it. `RunHooks(BeforeStart)` raises `storage_held`; only a successful
//!   `after_stop` lowers it. Both are serving facts the node reports and resumes from.
//!
//! # Where it is
//! * `state`: the node, its pair-mode parts, how it starts, what is read off it.
//! * `step`: the shell's inputs, each to the part it concerns.
//! * `settle`: the internal exchanges (supervisor reports to the pair, the pair's permission and
//!   exit to the supervisor, the overlays), run to a standstill after every input.
//! * `hear`: datagrams into the tracker, and the tracker's view into the pair's `PeerView`.
//! * `advertise`: what this node's heartbeats say, and when one must go out at once.
//! * `bmc`: the fencing procedure behind the pair's `Fence` actions (and `cycle`'s power-on).
//! * `pause`: a pause of this node (SIGSTOP, a freeze) is not taken for the peer's silence.

use std::time::Duration;

mod advertise;
mod bmc;
mod hear;
mod pause;
mod settle;
mod state;
mod step;

pub use state::Node;

use crate::fence;
use crate::heartbeat::{self as hb, Key, NodeName};
use crate::machine::{self, Detail};
use crate::pair::{self, Hooks};

/// Most actions one step returns.
pub const MAX_ACTIONS: usize = 32;

pub type Actions = heapless::Vec<Action, MAX_ACTIONS>;

/// Pair mode's settings.
#[derive(Debug, Clone)]
pub struct PairSettings {
    pub pair: pair::Settings,
    pub heartbeat_interval: Duration,
    /// Heartbeat links (1..=8).
    pub links: usize,
    pub key: Key,
    pub me: NodeName,
    pub peer: NodeName,
    /// This run's random id and the first heartbeat sequence (the wall clock in µs at start).
    pub boot_id: hb::BootId,
    pub first_sequence: u64,
    /// `[fencing] timeout`: each fencing procedure's limit.
    pub fence_timeout: Duration,
    /// `[fencing] action = "cycle"`: power the peer back on after a confirmed off.
    pub fence_cycle: bool,
    /// `preferred_active`, advertised.
    pub preferred: bool,
}

/// What the node starts from, besides the supervisor's persisted state.
#[derive(Debug, Clone, Default)]
pub struct Boot {
    pub sup: machine::Boot,
    /// The VIP is on this node's interface (left by an earlier run).
    pub vip_held: bool,
    /// `state_dir` records `before_start` hooks run without a successful `after_stop`.
    pub storage_held: bool,
}

/// Inputs from the shell.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Input {
    Tick,
    /// The process and probe side: `Started`, `SpawnFailed`, `Checked`, `Exited`, `Gone`,
    /// `OomeLine`, and the operator's `Maintenance` and `Reset`. (`Permit` and `Shutdown` are
    /// the node's own.)
    Sup(machine::Input),
    /// The reply to the outstanding [`Action::Bmc`].
    Bmc(fence::Reply),
    HooksDone {
        phase: Hooks,
        ok: bool,
        detail: Detail,
    },
    VipAdded {
        ok: bool,
        detail: Detail,
    },
    VipRemoved {
        ok: bool,
        detail: Detail,
    },
    Witness {
        reachable: bool,
    },
    PublicLink {
        up: bool,
    },
    Switchover,
    ConfirmPeerDown,
    /// SIGTERM/SIGINT.
    Shutdown,
}

/// Work for the shell.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// The supervisor's: `Spawn`, `Signal`, `Check`, `Event`, `StopPetting` (never `Report`
    /// or `Exit`: those are settled here).
    Sup(machine::Action),
    /// One BMC operation against the peer's BMC, within `timeout`; answer `Input::Bmc`.
    Bmc {
        op: fence::Op,
        timeout: Duration,
    },
    RunHooks(Hooks),
    AddVip,
    RemoveVip,
    /// Stop petting the hardware watchdog (the node must reset).
    SelfFence,
    /// Encode (`Node::encode`) and send a heartbeat on every link, in every version of
    /// `Node::versions`, now.
    SendHeartbeats,
    /// A pair event.
    Event(pair::Kind, Detail),
    /// Everything is stopped after `Shutdown`: exit.
    Exit,
}

fn push(out: &mut Actions, a: Action) {
    if out.push(a).is_err() {
        debug_assert!(false, "node::MAX_ACTIONS too small");
    }
}

fn ev(out: &mut Actions, kind: pair::Kind, args: core::fmt::Arguments<'_>) {
    let mut d = Detail::new();
    let _ = core::fmt::Write::write_fmt(&mut d, args);
    push(out, Action::Event(kind, d));
}

#[cfg(test)]
mod tests;
