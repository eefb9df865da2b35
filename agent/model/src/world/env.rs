//! The environment's truth about each node ([`Env`]): powered or not, bbwd running, paused or
//! down ([`Bbwd`]), Bitbucket ([`Bb`]), the VIP, storage and its record in `state_dir`, the
//! persisted overlays, the node's BMC ([`BmcMode`]), witness and public link; datagrams in flight
//! ([`Packet`], with the ghost run that sent them) and the work the environment owes ([`Item`]).
//!
//! Must not: hold beliefs; what the nodes believe is in their `Node`s.

use std::time::Duration;

use bbwd_core::fence::Op;
use bbwd_core::heartbeat as hb;
use bbwd_core::machine::FailReason;
use bbwd_core::node::Node;
use bbwd_core::pair::Hooks;

/// Bitbucket on one node (the environment's truth).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bb {
    pub pid: i32,
    /// Answers RUNNING from then on (503 STARTING before).
    pub(super) ready_at: Duration,
    /// The leader exited; the group lingers until the supervisor's SIGKILL reaps it.
    pub(super) leader_gone: bool,
    /// Checks time out (a hung JVM); SIGTERM is ignored.
    pub(super) hung: bool,
    /// Survives SIGKILL.
    pub(super) unkillable: bool,
}

/// How a node's BMC answers (the BMC *of* that node, used by its peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BmcMode {
    Truthful,
    /// Every operation fails.
    Unreachable,
    /// Operations take effect, but their answer is lost (timed out).
    Slow,
    /// Gives one stale "off" reading of a node that is on (a glitch, a reading taken before
    /// a power-on), then answers truthfully; commands are carried out. One reading must never
    /// be a fence (mutant `one-reading-fence`).
    Lying {
        off_once: bool,
    },
}

/// bbwd on one node.
#[derive(Debug, Clone, Hash)]
pub enum Bbwd {
    Running(Box<Node>),
    Paused(Box<Node>),
    /// Crashed (or not yet started after power-on); systemd restarts it at `restart_at`.
    Down,
}

/// One node and its surroundings.
#[derive(Debug, Clone, Hash)]
pub struct Env {
    pub powered: bool,
    pub bbwd: Bbwd,
    /// Runs of bbwd so far (the boot id derives from it).
    pub runs: u8,
    pub boot_id: hb::BootId,
    pub bb: Option<Bb>,
    pub vip: bool,
    pub storage: bool,
    /// `state_dir`'s "before_start hooks in effect" record: survives crashes and power-off.
    pub storage_record: bool,
    /// Persisted supervisor overlays (`state_dir`).
    pub(super) failed_record: Option<FailReason>,
    pub(super) maint_record: bool,
    pub bmc: BmcMode,
    /// This node's outstanding BMC op against the peer's BMC.
    pub(super) bmc_op: Option<Op>,
    /// Bitbucket fails to start here (every start stays STARTING): a fault for good.
    pub(super) fails_start: bool,
    pub witness_ok: bool,
    pub public_up: bool,
    pub(super) next_ping: Duration,
    /// systemd restarts bbwd / the node finishes booting / the watchdog fires.
    pub(super) restart_at: Option<Duration>,
    pub(super) reset_at: Option<Duration>,
    pub(super) next_pid: i32,
}

/// A datagram in flight.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Packet {
    pub to: u8,
    pub link: u8,
    pub bytes: Box<[u8]>,
    /// Ghost: the sender's boot id and what the packet claims (for traces and invariants).
    pub from_run: hb::BootId,
}

impl std::fmt::Debug for Packet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "n{}->n{} link{} v{} ({}b)",
            2 - self.to,
            self.to + 1,
            self.link,
            self.bytes[4],
            self.bytes.len()
        )
    }
}

/// Work the environment owes a node, in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Item {
    Deliver(Packet),
    /// Node `n`'s BMC operation answered.
    Bmc(u8),
    Hooks(u8, Hooks),
    VipAdd(u8),
    VipRemove(u8),
    Tick(u8),
}

impl Item {
    pub(super) fn node(&self) -> u8 {
        match self {
            Item::Deliver(p) => p.to,
            Item::Bmc(n)
            | Item::Hooks(n, _)
            | Item::VipAdd(n)
            | Item::VipRemove(n)
            | Item::Tick(n) => *n,
        }
    }
    pub(super) fn is_packet(&self) -> bool {
        matches!(self, Item::Deliver(_))
    }
}
