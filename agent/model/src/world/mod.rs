//! The world: two real [`Node`]s and the environment around them (power, processes, the VIP,
//! storage, BMCs, the network, operators), its transitions ([`Choice`]) and its invariants.
//!
//! Owns the shell semantics the checker assumes (see the crate doc) and the ghost facts the
//! invariants need (who is really powered, what really runs, which run sent a packet). Must
//! not: reimplement a decision of `bbwd-core`; every decision is the real `Node`'s.
//!
//! # Where it is
//! * `config` and `mutant`: what a run explores (faults, settings, the defect re-introduced).
//! * `env`: the environment's truth per node (power, bbwd, Bitbucket, VIP, storage, BMC, links)
//!   and the work it owes (`Item`).
//! * `choices`: the transitions enabled in a state, faults and recoveries; `apply`: one
//!   transition, then the invariants.
//! * `schedule`: what is ready and when time moves; `items`: the environment's answers (datagram
//!   delivery, ticks, the BMC, hooks, the VIP); `shell`: a node's actions carried out as
//!   `agent/src/daemon/` does.
//! * `lifecycle`: the cold start, power off and on, bbwd crashes and restarts.
//! * `invariants`: safety, justified takeovers, progress (the crate doc states them).
//! * `trace`: states and choices as the lines of a counterexample.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use bbwd_core::heartbeat::Key;
use bbwd_core::node::Node;

mod apply;
mod choices;
mod config;
mod env;
mod invariants;
mod items;
mod lifecycle;
mod mutant;
mod schedule;
mod shell;
mod trace;

pub use choices::{is_fault, Choice};
pub use config::Config;
pub use env::{Bb, Bbwd, BmcMode, Env, Item, Packet};
pub use mutant::Mutant;

/// Heartbeat links.
pub const LINKS: usize = 2;
/// Packets kept for replay / delayed, at most.
const POOL: usize = 2;
/// Most items processed at one instant before the world counts as live-locked.
const SAME_INSTANT_LIMIT: u32 = 400;

/// Milliseconds, for the scaled-down timings.
const MS: fn(u64) -> Duration = Duration::from_millis;

/// The world's state.
#[derive(Debug, Clone, Hash)]
pub struct World {
    pub now: Duration,
    pub env: [Env; 2],
    pub pending: VecDeque<Item>,
    /// Delayed packets (delivered later, in any order).
    pub late: Vec<Packet>,
    /// Captured authentic packets (replayable).
    pub captured: Vec<Packet>,
    /// `cut[from][link]`: datagrams from `from` on `link` are lost.
    pub cut: [[bool; LINKS]; 2],
    pub faults: u8,
    /// When the last fault was injected.
    pub last_fault: Duration,
    /// A fault that needs an operator happened (Bitbucket fails to start, unkillable).
    pub needs_operator: bool,
    same_instant: u32,
    /// The instant a node was last ticked with its deadline left in the past (a spin).
    spun: [Option<Duration>; 2],
}

/// A broken invariant.
#[derive(Debug, Clone)]
pub struct Violation {
    pub what: String,
}

/// The outcome of one transition.
pub enum Outcome {
    Ok(World),
    Bad(World, Violation),
}

/// Fixed parts of a run (settings, the base instant).
pub struct Model {
    pub cfg: Config,
    base: Instant,
    key: Key,
}

impl Model {
    pub fn new(cfg: Config) -> Model {
        Model {
            cfg,
            base: Instant::now(),
            key: Key::new(&[0x5a; 32]).expect("key"),
        }
    }

    fn at(&self, t: Duration) -> Instant {
        self.base + t
    }
}

/// How a node came to act (what its takeover must be justified by, see `invariants`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    Fence,
    Operator,
    Packet,
    Other,
}

/// The node of a bbwd that runs or is paused (its state exists).
fn running(e: &Env) -> Option<&Node> {
    match &e.bbwd {
        Bbwd::Running(nd) | Bbwd::Paused(nd) => Some(nd),
        Bbwd::Down => None,
    }
}

/// The node of a bbwd that runs (a paused one takes no input).
fn active(e: &Env) -> Option<&Node> {
    match &e.bbwd {
        Bbwd::Running(nd) => Some(nd),
        _ => None,
    }
}

/// The state's fingerprint.
pub fn fingerprint(w: &World) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    w.hash(&mut h);
    h.finish()
}
