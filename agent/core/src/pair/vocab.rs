//! What the pair machine and its caller say to each other: the [`Settings`] it runs with, the
//! [`PeerView`] the heartbeat feeds it, the [`Input`]s and [`Action`]s of one step, and the words
//! they are made of ([`Role`], [`ReleaseWhy`], [`Hooks`], [`FenceResult`]).
//!
//! Owns the types, and the one rule that belongs to a word: which releases hand over
//! ([`ReleaseWhy`]). Must not: decide anything; the decisions are [`super::Pair`]'s.

use std::time::Duration;

use crate::fence::Goal;
use crate::machine::Detail;

use super::Kind;

/// Timing and preferences (from `[cluster]`, `[fencing]`, `[bitbucket]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Settings {
    /// The peer is dead to us after this long without a valid heartbeat on any link.
    pub peer_timeout: Duration,
    /// This node wins the fence race and starts active on a cold boot.
    pub preferred_active: bool,
    /// This node's name sorts before the peer's: the tie-break when both or neither prefer.
    pub name_first: bool,
    /// How long the node *not* holding the service waits before fencing (priority delay): longer
    /// than a whole fence attempt of the other node (`timing` rule R2).
    pub fence_delay: Duration,
    /// How long a booting node waits to hear its peer before fencing it (wait-for-all).
    pub boot_wait: Duration,
    /// Whether a witness address is configured.
    pub witness: bool,
    /// Consecutive missed witness pings before the witness counts as unreachable.
    pub witness_misses: u32,
    /// How long the public link must stay down before the active fails over.
    pub link_hold: Duration,
    /// Longest a hook sequence or the VIP step may take before it counts as failed.
    pub step_timeout: Duration,
    /// Longest the release may wait for Bitbucket to be gone (stop_timeout + kill_timeout +
    /// margin): past it the node cannot prove it stopped serving and self-fences.
    pub release_timeout: Duration,
    /// How often the peer's BMC is asked for its power while the peer is heard (a BMC that says
    /// "off" for a live peer is a misconfiguration found before it is needed).
    pub bmc_watch: Duration,
}

/// What the heartbeat says about the peer (fed on every change).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerView {
    /// Alive: a link is up both ways and it answered our current challenge since the last loss.
    pub alive: bool,
    /// Its latest word answers our current challenge: it may be taken as consent.
    pub consent: bool,
    /// The role the peer advertises.
    pub role: Role,
    /// The peer's Bitbucket is healthy (switchover: the peer must be able to take over).
    pub healthy: bool,
    /// The peer's supervisor is `failed` (manual intervention): it must not be handed anything,
    /// and its failure is not a reason to fail over.
    pub failed: bool,
    /// The peer released the service for us after a clean release.
    pub handed_over: bool,
    /// The peer has `preferred_active`.
    pub preferred: bool,
    /// The peer is in maintenance: failover is paused.
    pub maintenance: bool,
}

impl PeerView {
    /// Nothing heard.
    pub const UNKNOWN: PeerView = PeerView {
        alive: false,
        consent: false,
        role: Role::Booting,
        healthy: false,
        failed: false,
        handed_over: false,
        preferred: false,
        maintenance: false,
    };
}

/// A node's advertised role (also what this node advertises).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Booting,
    Standby,
    Fencing,
    TakingOver,
    Active,
    Releasing,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Booting => "booting",
            Role::Standby => "standby",
            Role::Fencing => "fencing",
            Role::TakingOver => "taking_over",
            Role::Active => "active",
            Role::Releasing => "releasing",
        }
    }
    /// Roles in which a node may run Bitbucket or hold the VIP.
    pub fn serving(self) -> bool {
        matches!(self, Role::TakingOver | Role::Active | Role::Releasing)
    }
}

/// Why a release happens (decides where it ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReleaseWhy {
    /// Restarts exhausted: hand over to the peer.
    Escalation,
    /// The public link stayed down: hand over.
    PublicLinkLost,
    /// Neither peer nor witness reachable: we are the isolated one.
    Isolated,
    /// Operator's planned move, by handshake.
    Switchover,
    /// The takeover failed halfway (a hook, the start or the VIP failed).
    TakeoverFailed,
    /// bbwd is stopping: hand over, then exit.
    Shutdown,
}

impl ReleaseWhy {
    /// A clean release for this reason tells the peer it may take over without a fence.
    pub(super) fn hands_over(self) -> bool {
        matches!(
            self,
            ReleaseWhy::Switchover
                | ReleaseWhy::Escalation
                | ReleaseWhy::PublicLinkLost
                | ReleaseWhy::Shutdown
        )
    }
}

/// Hook phases (`[hooks]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hooks {
    /// Run before Bitbucket starts; the shell records "storage may be held" in `state_dir`
    /// *before* running them (a failure to record is a failed hook).
    BeforeStart,
    /// Run after Bitbucket is gone; on success the shell removes that record.
    AfterStop,
}

/// How a fence or power query the pair asked for ended (from [`crate::fence::Outcome`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FenceResult {
    OffConfirmed(Detail),
    Power { on: bool, detail: Detail },
    Failed(Detail),
}

/// Inputs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Input {
    Tick,
    /// The heartbeat's view of the peer changed (or is re-stated).
    Peer(PeerView),
    /// The fence or query asked for finished.
    Fence(FenceResult),
    HooksDone {
        phase: Hooks,
        ok: bool,
        detail: Detail,
    },
    /// `AddVip` finished (address added and GARPs sent), or failed, or the ARP probe found
    /// another holder.
    VipAdded {
        ok: bool,
        detail: Detail,
    },
    /// `RemoveVip` finished (already gone counts as done).
    VipRemoved {
        ok: bool,
        detail: Detail,
    },
    /// The supervisor reached RUNNING after `Permit { run: true }`.
    SupervisorHealthy,
    /// The supervisor's Bitbucket is stopped and its group gone after `Permit { run: false }`.
    SupervisorStopped,
    /// The supervisor gave up: restarts exhausted (pair mode escalates instead of failing).
    SupervisorEscalates,
    /// The supervisor cannot stop Bitbucket (it survived SIGKILL).
    SupervisorUnkillable,
    /// The start failed for good (exits during startup, never healthy).
    SupervisorStartFailed,
    /// The local supervisor's overlays: `failed` (manual intervention) and maintenance.
    Local {
        failed: bool,
        maintenance: bool,
    },
    /// One witness ping's result (only with a witness configured).
    Witness {
        reachable: bool,
    },
    /// The public link (the VIP's interface) has carrier / is up.
    PublicLink {
        up: bool,
    },
    /// Operator: `bbwd switchover`.
    Switchover,
    /// Operator: `bbwd confirm-peer-down`.
    ConfirmPeerDown,
    Shutdown,
}

/// Actions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// Run the fencing procedure with this goal against the peer's BMC; answer `Fence`.
    Fence(Goal),
    /// Run the hooks of a phase in order; answer `HooksDone`.
    RunHooks(Hooks),
    /// Tell the supervisor whether Bitbucket may run.
    Permit {
        run: bool,
    },
    /// Probe, add the VIP (already held: announce only), send GARPs; answer `VipAdded`.
    AddVip,
    /// Remove the VIP; answer `VipRemoved`.
    RemoveVip,
    /// Stop petting the hardware watchdog and stop heartbeating: the node must reset, and the
    /// peer may only come in by fencing it.
    SelfFence,
    Event(Kind, Detail),
    /// Everything released after `Shutdown`: the daemon may exit.
    Exit,
}
