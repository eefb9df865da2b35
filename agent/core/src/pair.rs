//! The cold-standby pair's decision logic: which node serves, and in what order a node takes
//! the service over or gives it up. A pure state machine like `machine.rs` (no I/O, time passed
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

use std::time::{Duration, Instant};

use crate::fence::Goal;
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
    fn hands_over(self) -> bool {
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

/// Pair events (the `kind` of status events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    PeerLost,
    PeerSeen,
    Fence,
    Fenced,
    FenceFailed,
    PeerConfirmedDown,
    TakeoverStep,
    TakeoverFailed,
    Resumed,
    Active,
    Release,
    ReleaseStep,
    ReleaseError,
    Standby,
    SelfFence,
    SwitchoverRefused,
    Isolated,
    VipConflict,
    BothPreferred,
    NeitherPreferred,
    FailoverPaused,
    BmcMismatch,
    BmcMatches,
    PublicLink,
    LinkDown,
    LinkUp,
    PeerRestarted,
    PeerPowerOff,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::PeerLost => "peer_lost",
            Kind::PeerSeen => "peer_seen",
            Kind::Fence => "fence",
            Kind::Fenced => "fenced",
            Kind::FenceFailed => "fence_failed",
            Kind::PeerConfirmedDown => "peer_confirmed_down",
            Kind::TakeoverStep => "takeover_step",
            Kind::TakeoverFailed => "takeover_failed",
            Kind::Resumed => "resumed",
            Kind::Active => "active",
            Kind::Release => "release",
            Kind::ReleaseStep => "release_step",
            Kind::ReleaseError => "release_error",
            Kind::Standby => "standby",
            Kind::SelfFence => "self_fence",
            Kind::SwitchoverRefused => "switchover_refused",
            Kind::Isolated => "isolated",
            Kind::VipConflict => "vip_conflict",
            Kind::BothPreferred => "both_preferred",
            Kind::NeitherPreferred => "neither_preferred",
            Kind::FailoverPaused => "failover_paused",
            Kind::BmcMismatch => "fencing_bmc_mismatch",
            Kind::BmcMatches => "fencing_bmc_matches",
            Kind::PublicLink => "public_link",
            Kind::LinkDown => "link_down",
            Kind::LinkUp => "link_up",
            Kind::PeerRestarted => "peer_restarted",
            Kind::PeerPowerOff => "peer_power_off",
        }
    }

    /// How much it matters to an operator (`BBWD_SEVERITY`): critical when the service is down
    /// or the pair's safety needs a person (a fence that fails, a takeover that cannot finish, a
    /// release that failed, a BMC that is not the peer's, two preferred nodes); warning when a
    /// redundancy is lost or a fence happened (the fenced node needs a look).
    pub fn severity(self) -> crate::severity::Severity {
        use crate::severity::Severity;
        match self {
            Kind::FenceFailed
            | Kind::TakeoverFailed
            | Kind::ReleaseError
            | Kind::SelfFence
            | Kind::Isolated
            | Kind::VipConflict
            | Kind::BothPreferred
            | Kind::BmcMismatch => Severity::Critical,
            Kind::Fenced | Kind::PeerConfirmedDown | Kind::PeerPowerOff => Severity::Warning,
            k if k.is_problem() => Severity::Warning,
            _ => Severity::Info,
        }
    }

    /// Events that mean something is wrong (a WARNING or worse; logged as warnings).
    pub fn is_problem(self) -> bool {
        matches!(
            self,
            Kind::PeerLost
                | Kind::FenceFailed
                | Kind::TakeoverFailed
                | Kind::ReleaseError
                | Kind::SelfFence
                | Kind::SwitchoverRefused
                | Kind::Isolated
                | Kind::VipConflict
                | Kind::BothPreferred
                | Kind::NeitherPreferred
                | Kind::FailoverPaused
                | Kind::BmcMismatch
                | Kind::PublicLink
                | Kind::LinkDown
        )
    }
}

/// Takeover steps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum TakeStep {
    Hooks,
    Starting,
    Vip,
}

/// Release steps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum RelStep {
    Vip,
    Stopping,
    Hooks,
}

/// Why the pair asked for a power reading (what its answer decides).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Query {
    /// Booting or fencing: a peer already off needs no wait (the fence still confirms it).
    FastPath,
    /// The peer is heard: its BMC must say on.
    Watch,
}

/// The state, carrying its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum St {
    /// Listening for the peer until `until` (wait-for-all).
    Booting {
        until: Instant,
    },
    Standby,
    /// Fence requested (or waiting `not_before` for the priority delay).
    Fencing {
        not_before: Instant,
        requested: bool,
        attempt: u32,
    },
    /// A fence failed; retry at `retry_at`. Only the peer reappearing or an operator ends it.
    FenceBlocked {
        retry_at: Instant,
        attempt: u32,
    },
    TakingOver {
        step: TakeStep,
        deadline: Instant,
    },
    Active,
    Releasing {
        step: RelStep,
        deadline: Instant,
        why: ReleaseWhy,
        errors: u8,
    },
    /// The node could not prove it stopped serving: silent, waiting for the watchdog (or the
    /// peer's fence) to reset it.
    SelfFenced,
}

/// The pair machine.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pair {
    s: Settings,
    st: St,
    peer: PeerView,
    /// Consecutive missed witness pings.
    witness_misses: u32,
    /// When the public link went down (raw), if it is down.
    public_down_since: Option<Instant>,
    /// The local supervisor is failed / in maintenance.
    local_failed: bool,
    local_maintenance: bool,
    shutting_down: bool,
    /// We released cleanly for the peer and stay out of its way until it serves: advertised as
    /// `handed_over`.
    handed_over_done: bool,
    /// The query (or fence) outstanding, if any; at most one BMC procedure at a time.
    bmc_busy: Option<Option<Query>>,
    /// A fence asked for while a query ran: it starts when the query ends.
    fence_queued: bool,
    /// Active: the peer is being fenced (at once on loss); a failed fence is retried at `.1`.
    active_fence: Option<Option<Instant>>,
    active_fence_attempt: u32,
    /// The peer's BMC reported off while the peer was heard: no fence is trusted.
    bmc_mismatch: bool,
    next_bmc_watch: Instant,
    /// A failed takeover holds further attempts back until then (CRITICAL meanwhile).
    takeover_retry: Option<Instant>,
    takeover_attempt: u32,
    /// Reported once per episode.
    paused_reported: bool,
    preference_reported: bool,
    /// When the wait-for-all at start ends.
    boot_until: Instant,
}

/// A deadline that never comes (the step is governed by the supervisor's own timeouts).
fn far(now: Instant) -> Instant {
    now + Duration::from_secs(10 * 365 * 24 * 3600)
}

impl Pair {
    /// A pair machine at `now`. `serving`: the node found itself serving at start (Bitbucket
    /// adopted, the VIP on its interface, or storage recorded as held): it resumes.
    pub fn new(s: Settings, now: Instant, serving: Option<&str>) -> (Pair, Actions) {
        let mut out = Actions::new();
        let s_boot_wait = s.boot_wait;
        let mut p = Pair {
            st: St::Booting {
                until: now + s.boot_wait,
            },
            next_bmc_watch: now + s.bmc_watch,
            s,
            peer: PeerView::UNKNOWN,
            witness_misses: 0,
            public_down_since: None,
            local_failed: false,
            local_maintenance: false,
            shutting_down: false,
            handed_over_done: false,
            bmc_busy: None,
            fence_queued: false,
            active_fence: None,
            active_fence_attempt: 0,
            bmc_mismatch: false,
            takeover_retry: None,
            takeover_attempt: 0,
            paused_reported: false,
            preference_reported: false,
            boot_until: now + s_boot_wait,
        };
        match serving {
            Some(what) => {
                ev(
                    &mut out,
                    Kind::Resumed,
                    format_args!("resuming the service found on this node ({what})"),
                );
                p.st = St::TakingOver {
                    step: TakeStep::Starting,
                    deadline: far(now),
                };
                push(&mut out, Action::Permit { run: true });
            }
            None => p.query(Query::FastPath, &mut out),
        }
        (p, out)
    }

    /// The role this node advertises and reports.
    pub fn role(&self) -> Role {
        match self.st {
            St::Booting { .. } => Role::Booting,
            St::Standby => Role::Standby,
            St::Fencing { .. } | St::FenceBlocked { .. } => Role::Fencing,
            St::TakingOver { .. } => Role::TakingOver,
            St::Active => Role::Active,
            St::Releasing { .. } | St::SelfFenced => Role::Releasing,
        }
    }

    /// The node must send no heartbeat (it self-fenced).
    pub fn silent(&self) -> bool {
        self.st == St::SelfFenced
    }

    /// The hand-over flag: we released cleanly for the peer and it may take over unfenced.
    pub fn handed_over(&self) -> bool {
        self.handed_over_done && self.st == St::Standby
    }

    /// A fence failed and nothing has resolved it: CRITICAL in status.
    pub fn fence_blocked(&self) -> bool {
        matches!(self.st, St::FenceBlocked { .. })
    }

    /// A takeover failed and no later one has succeeded yet: CRITICAL in status.
    pub fn takeover_blocked(&self) -> bool {
        self.takeover_attempt > 0
    }

    /// The peer's BMC says off while the peer is heard: CRITICAL.
    pub fn bmc_mismatch(&self) -> bool {
        self.bmc_mismatch
    }

    /// Both nodes have `preferred_active` (or neither): a misconfiguration, reported.
    pub fn preference_conflict(&self) -> Option<bool> {
        (self.peer.alive && self.peer.preferred == self.s.preferred_active)
            .then_some(self.s.preferred_active)
    }

    /// Failover is paused (maintenance here or on the peer).
    pub fn paused(&self) -> bool {
        self.local_maintenance || self.peer.maintenance
    }

    /// The peer as last heard.
    pub fn peer(&self) -> &PeerView {
        &self.peer
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        // Only deadlines that `evaluate` acts on when they come: a deadline left in the past
        // would have the shell spin (found by the model checker).
        let st = match self.st {
            St::Booting { until } if !self.peer.alive => Some(until),
            St::Fencing {
                not_before,
                requested: false,
                ..
            } => Some(not_before),
            St::FenceBlocked { retry_at, .. } => Some(retry_at),
            St::TakingOver { deadline, .. } | St::Releasing { deadline, .. } => Some(deadline),
            _ => None,
        };
        let serving = matches!(self.st, St::Active | St::TakingOver { .. });
        let public = self
            .public_down_since
            .filter(|_| serving)
            .map(|t| t + self.s.link_hold);
        let retry = self.active_fence.flatten().filter(|_| {
            self.st == St::Active && !self.peer.alive && self.public_down_since.is_none()
        });
        let watch = (self.peer.alive && self.bmc_busy.is_none() && self.st != St::SelfFenced)
            .then_some(self.next_bmc_watch);
        [st, public, retry, watch, self.takeover_retry]
            .into_iter()
            .flatten()
            .min()
    }

    /// This node is the one that serves when both are alive and neither serves.
    fn winner(&self) -> bool {
        if crate::mutant::active(crate::mutant::Mutant::BothPreferred) {
            return self.s.preferred_active;
        }
        if self.peer.alive && self.peer.preferred != self.s.preferred_active {
            self.s.preferred_active
        } else if self.peer.alive {
            self.s.name_first
        } else {
            self.s.preferred_active
        }
    }

    fn witness_down(&self) -> bool {
        let needed = if crate::mutant::active(crate::mutant::Mutant::WitnessOneMiss) {
            1
        } else {
            self.s.witness_misses.max(1)
        };
        self.s.witness && self.witness_misses >= needed
    }

    fn public_lost(&self, now: Instant) -> bool {
        self.public_down_since
            .is_some_and(|t| now.saturating_duration_since(t) >= self.s.link_hold)
    }

    pub fn step(&mut self, now: Instant, input: Input) -> Actions {
        let mut out = Actions::new();
        match input {
            Input::Tick => {}
            Input::Peer(v) => self.on_peer(now, v, &mut out),
            Input::Fence(r) => self.on_fence(now, r, &mut out),
            Input::HooksDone { phase, ok, detail } => {
                self.on_hooks(now, phase, ok, detail, &mut out)
            }
            Input::VipAdded { ok, detail } => self.on_vip_added(now, ok, detail, &mut out),
            Input::VipRemoved { ok, detail } => self.on_vip_removed(now, ok, detail, &mut out),
            Input::SupervisorHealthy => self.on_healthy(now, &mut out),
            Input::SupervisorStopped => self.on_stopped(now, &mut out),
            Input::SupervisorEscalates => self.release(now, ReleaseWhy::Escalation, &mut out),
            Input::SupervisorStartFailed => {
                if let St::TakingOver { .. } | St::Active = self.st {
                    // The seeds: a Bitbucket that fails to start fails on the other node too:
                    // release, stay failed, no hand-over (manual intervention).
                    self.release(now, ReleaseWhy::TakeoverFailed, &mut out);
                }
            }
            Input::SupervisorUnkillable => self.self_fence(&mut out),
            Input::Local {
                failed,
                maintenance,
            } => {
                self.local_failed = failed;
                self.local_maintenance = maintenance;
            }
            Input::Witness { reachable } => {
                self.witness_misses = if reachable {
                    0
                } else {
                    self.witness_misses.saturating_add(1)
                };
            }
            Input::PublicLink { up } => {
                if up {
                    if self.public_down_since.take().is_some() {
                        ev(&mut out, Kind::PublicLink, format_args!("public link up"));
                    }
                } else if self.public_down_since.is_none() {
                    self.public_down_since = Some(now);
                    ev(
                        &mut out,
                        Kind::PublicLink,
                        format_args!(
                            "public link down; failing over if it stays down for {:?}",
                            self.s.link_hold
                        ),
                    );
                }
            }
            Input::Switchover => self.on_switchover(now, &mut out),
            Input::ConfirmPeerDown => self.on_confirm_peer_down(now, &mut out),
            Input::Shutdown => self.on_shutdown(now, &mut out),
        }
        self.evaluate(now, &mut out);
        out
    }

    /// What time and the standing conditions decide, after every input: timeouts, the isolated
    /// or cut-off active, a silent peer re-evaluated, the BMC watch.
    fn evaluate(&mut self, now: Instant, out: &mut Actions) {
        if self.takeover_retry.is_some_and(|t| now >= t) {
            // The wait is over (the attempts count stays, CRITICAL, until one succeeds).
            self.takeover_retry = None;
        }
        match self.st {
            St::Booting { until } if now >= until && !self.peer.alive => {
                ev(
                    out,
                    Kind::PeerLost,
                    format_args!("no heartbeat from the peer within boot_wait"),
                );
                self.begin_fence(now, true, out);
            }
            St::Standby
                if !self.peer.alive
                    && !crate::mutant::active(crate::mutant::Mutant::WitnessOneMiss) =>
            {
                self.begin_fence(now, false, out)
            }
            St::Fencing {
                not_before,
                requested: false,
                attempt,
            } if now >= not_before => {
                if self.witness_down() {
                    self.isolated(now, out);
                } else if self.public_down_since.is_some() || !self.may_take_over(now) {
                    // What held at the start of the wait no longer does.
                    self.stand_by(out);
                } else {
                    self.request_fence(now, attempt, out);
                }
            }
            St::FenceBlocked { retry_at, attempt } if now >= retry_at => {
                self.request_fence(now, attempt, out);
            }
            St::TakingOver { step, deadline } if now >= deadline => {
                ev(
                    out,
                    Kind::TakeoverFailed,
                    format_args!("takeover step {step:?} timed out"),
                );
                self.release(now, ReleaseWhy::TakeoverFailed, out);
            }
            St::Releasing { step, deadline, .. } if now >= deadline => {
                if step == RelStep::Stopping {
                    // Bitbucket is not confirmed gone: this node cannot say it stopped serving.
                    ev(
                        out,
                        Kind::ReleaseError,
                        format_args!("Bitbucket not gone within the release deadline"),
                    );
                    self.self_fence(out);
                } else {
                    ev(
                        out,
                        Kind::ReleaseError,
                        format_args!("release step {step:?} timed out"),
                    );
                    self.release_next(now, step, false, out);
                }
            }
            St::Active | St::TakingOver { .. } if self.public_lost(now) => {
                ev(
                    out,
                    Kind::Release,
                    format_args!("public link down for {:?}: failing over", self.s.link_hold),
                );
                self.release(now, ReleaseWhy::PublicLinkLost, out);
            }
            St::Active if !self.peer.alive && self.witness_down() => self.isolated(now, out),
            St::Active => {
                if let Some(Some(at)) = self.active_fence {
                    if now >= at && !self.peer.alive && self.public_down_since.is_none() {
                        self.active_fence = Some(None);
                        self.fence(Goal::Off, out);
                    }
                }
            }
            _ => {}
        }
        if self.peer.alive
            && self.bmc_busy.is_none()
            && now >= self.next_bmc_watch
            && !matches!(self.st, St::SelfFenced)
        {
            self.next_bmc_watch = now + self.s.bmc_watch;
            self.query(Query::Watch, out);
        }
    }

    fn on_peer(&mut self, now: Instant, v: PeerView, out: &mut Actions) {
        let was = self.peer;
        self.peer = v;
        if v.alive && v.role.serving() {
            // The peer serves now: our hand-over is complete.
            self.handed_over_done = false;
        }
        if v.alive && !was.alive {
            ev(
                out,
                Kind::PeerSeen,
                format_args!("peer heard: {}", v.role.as_str()),
            );
            self.paused_reported = false;
        } else if !v.alive && was.alive {
            ev(
                out,
                Kind::PeerLost,
                format_args!("no valid heartbeat on any link for peer_timeout"),
            );
        }
        if v.alive && !self.preference_reported && v.preferred == self.s.preferred_active {
            self.preference_reported = true;
            if v.preferred {
                ev(out, Kind::BothPreferred, format_args!("both nodes have preferred_active = true; the node whose name sorts first wins"));
            } else {
                ev(out, Kind::NeitherPreferred, format_args!("neither node has preferred_active = true; the node whose name sorts first wins"));
            }
        }
        if !v.alive {
            if let St::Active = self.st {
                if was.alive && self.public_down_since.is_some() {
                    // Cut off from both peer and clients: this node cannot serve and must not
                    // fence a peer that may well serve; it releases (no hand-over: the peer is
                    // not heard, it will fence this node).
                    ev(
                        out,
                        Kind::Release,
                        format_args!("public link down and peer lost: releasing, not fencing"),
                    );
                    self.release(now, ReleaseWhy::Isolated, out);
                    return;
                }
                if was.alive && self.active_fence.is_none() && !self.witness_down() {
                    // We hold the service: fence at once, keep serving meanwhile.
                    ev(
                        out,
                        Kind::Fence,
                        format_args!("peer lost while active: fencing it at once"),
                    );
                    self.active_fence = Some(None);
                    self.active_fence_attempt = 0;
                    self.fence(Goal::Off, out);
                }
            }
            return;
        }
        match self.st {
            St::Booting { .. } | St::Standby => {
                if v.role.serving() || v.role == Role::Fencing {
                    self.stand_by(out);
                } else if v.consent
                    && v.role == Role::Standby
                    && v.handed_over
                    && self.may_take_over(now)
                {
                    // The peer released for us (switchover, escalation, shutdown) and says so.
                    ev(
                        out,
                        Kind::TakeoverStep,
                        format_args!("the peer handed the service over"),
                    );
                    self.take_over(now, out);
                } else if v.consent
                    && !v.handed_over
                    && !v.failed
                    && !self.handed_over_done
                    && self.winner()
                    && self.may_take_over(now)
                {
                    // Both alive, neither serving, and the peer says so itself: the winner serves.
                    ev(
                        out,
                        Kind::TakeoverStep,
                        format_args!("the peer does not serve and this node is the winner"),
                    );
                    self.take_over(now, out);
                } else {
                    self.stand_by(out);
                }
            }
            St::Fencing {
                requested: false, ..
            }
            | St::FenceBlocked { .. } => {
                // The peer is back before we fenced it: no takeover.
                ev(
                    out,
                    Kind::PeerSeen,
                    format_args!("peer answered again before the fence: standing by"),
                );
                self.stand_by(out);
            }
            St::Active => {
                // A fence of a peer that is back is not needed any more.
                if let Some(Some(_)) = self.active_fence {
                    self.active_fence = None;
                }
                self.on_both_serving(now, v, out);
            }
            St::TakingOver { .. } => self.on_both_serving(now, v, out),
            _ => {}
        }
    }

    /// Defence in depth: the peer says it serves while this node does too. The proofs rule this
    /// out, but a node resuming from stale facts (a pid file or storage record that outlived
    /// what it recorded) must not hold on: the node still taking over yields to an active peer,
    /// and of two nodes in the same role the loser of the tie-break yields. Releasing is always
    /// safe; the hand-over flag is not set (the peer already serves).
    fn on_both_serving(&mut self, now: Instant, v: PeerView, out: &mut Actions) {
        if !v.alive || !matches!(v.role, Role::Active | Role::TakingOver) {
            return;
        }
        let yields = match self.st {
            St::TakingOver { .. } => v.role == Role::Active || !self.winner(),
            St::Active => v.role == Role::Active && !self.winner(),
            _ => false,
        };
        if yields {
            ev(
                out,
                Kind::Release,
                format_args!(
                    "the peer serves too ({}): this node yields and releases",
                    v.role.as_str()
                ),
            );
            self.release(now, ReleaseWhy::TakeoverFailed, out);
        }
    }

    /// Conditions under which this node may begin serving at all (beyond the proof).
    fn may_take_over(&mut self, now: Instant) -> bool {
        !self.local_failed
            && !self.local_maintenance
            && !self.shutting_down
            && !self.public_lost(now)
            && self.takeover_retry.is_none_or(|t| now >= t)
    }

    /// Starts fencing the silent peer, from `Booting` or `Standby` (the active node fences from
    /// `Active` directly, at once). Who waits: in `Standby` we do not hold the service, so the
    /// active node (if it is alive and only the links are cut) gets the first shot; at boot
    /// nobody holds it, and the winner goes first.
    fn begin_fence(&mut self, now: Instant, booting: bool, out: &mut Actions) {
        if self.paused() {
            if !self.paused_reported {
                self.paused_reported = true;
                ev(
                    out,
                    Kind::FailoverPaused,
                    format_args!(
                        "peer silent, but failover is paused: maintenance on {}",
                        if self.local_maintenance {
                            "this node"
                        } else {
                            "the peer"
                        }
                    ),
                );
            }
            self.stand_by(out);
            return;
        }
        if self.witness_down() {
            // Neither peer nor witness: we are the isolated one; never fence from here.
            self.isolated(now, out);
            return;
        }
        if !self.may_take_over(now) {
            self.stand_by(out);
            return;
        }
        let first_shot = booting && self.winner();
        let wait = if first_shot {
            Duration::ZERO
        } else {
            self.s.fence_delay
        };
        self.st = St::Fencing {
            not_before: now + wait,
            requested: false,
            attempt: 0,
        };
        if wait.is_zero() {
            self.request_fence(now, 0, out);
        } else {
            // A peer whose BMC already reports it off needs no race (the fence still confirms
            // it). Only a peer still powered (maybe alive behind cut links) gets the delay.
            self.query(Query::FastPath, out);
        }
    }

    fn request_fence(&mut self, now: Instant, attempt: u32, out: &mut Actions) {
        self.st = St::Fencing {
            not_before: now,
            requested: true,
            attempt,
        };
        ev(
            out,
            Kind::Fence,
            format_args!("fencing the peer (attempt {})", attempt + 1),
        );
        self.fence(Goal::Off, out);
    }

    /// Asks for a fence procedure (queued behind a query that is running).
    fn fence(&mut self, goal: Goal, out: &mut Actions) {
        match self.bmc_busy {
            Some(Some(_)) => self.fence_queued = true,
            Some(None) => {} // a fence is already running: its result serves
            None => {
                self.bmc_busy = Some(None);
                push(out, Action::Fence(goal));
            }
        }
    }

    fn query(&mut self, why: Query, out: &mut Actions) {
        if self.bmc_busy.is_none() {
            self.bmc_busy = Some(Some(why));
            push(out, Action::Fence(Goal::Status));
        }
    }

    fn on_fence(&mut self, now: Instant, r: FenceResult, out: &mut Actions) {
        let Some(running) = self.bmc_busy.take() else {
            return;
        };
        match running {
            Some(why) => {
                if let FenceResult::Power { on, detail } = &r {
                    self.on_power(now, why, *on, detail, out);
                }
                if std::mem::take(&mut self.fence_queued) {
                    self.fence(Goal::Off, out);
                }
            }
            None => self.on_fenced(now, r, out),
        }
    }

    fn on_power(&mut self, now: Instant, why: Query, on: bool, d: &Detail, out: &mut Actions) {
        if self.peer.alive && !on {
            if !self.bmc_mismatch {
                self.bmc_mismatch = true;
                ev(out, Kind::BmcMismatch, format_args!("the peer's BMC reports it off while it heartbeats ({d}): [fencing] points at another machine; no fence is trusted"));
            }
            return;
        }
        if self.peer.alive && on && self.bmc_mismatch {
            self.bmc_mismatch = false;
            ev(
                out,
                Kind::BmcMatches,
                format_args!(
                    "the peer's BMC reports it on while it heartbeats: fencing trusted again"
                ),
            );
        }
        if why == Query::FastPath && !on && !self.peer.alive {
            match self.st {
                St::Fencing {
                    requested: false,
                    attempt,
                    ..
                } => {
                    ev(
                        out,
                        Kind::Fence,
                        format_args!("the peer's BMC reports it off ({d}): fencing to confirm"),
                    );
                    self.request_fence(now, attempt, out);
                }
                St::Booting { .. } if !self.paused() && !self.witness_down() => {
                    // Confirmed by reading it again, not by a command: an operator may be
                    // powering the peer on right now, and a booting node must not undo that.
                    ev(
                        out,
                        Kind::PeerPowerOff,
                        format_args!("booting: the peer's BMC reports it off ({d}): confirming"),
                    );
                    self.st = St::Fencing {
                        not_before: now,
                        requested: true,
                        attempt: 0,
                    };
                    self.fence(Goal::ConfirmOff, out);
                }
                _ => {}
            }
        }
    }

    fn on_fenced(&mut self, now: Instant, r: FenceResult, out: &mut Actions) {
        // One event per outcome, saying what follows from it.
        let mut why = Detail::new();
        let confirmed = match &r {
            FenceResult::OffConfirmed(d) if self.bmc_mismatch => {
                let _ = core::fmt::Write::write_fmt(&mut why, format_args!("{d}, but this BMC has reported the peer off while it heartbeated: not trusted (fix [fencing] or bbwd confirm-peer-down)"));
                false
            }
            FenceResult::OffConfirmed(d) => {
                ev(out, Kind::Fenced, format_args!("peer confirmed off: {d}"));
                true
            }
            FenceResult::Power { on: true, detail } => {
                ev(
                    out,
                    Kind::PeerSeen,
                    format_args!("the peer's BMC reports it on again ({detail}): not fenced"),
                );
                false
            }
            FenceResult::Failed(d) | FenceResult::Power { detail: d, .. } => {
                let _ = core::fmt::Write::write_str(&mut why, d);
                false
            }
        };
        let failed = !confirmed && !matches!(r, FenceResult::Power { on: true, .. });
        match self.st {
            St::Fencing { attempt, .. } => {
                if confirmed {
                    self.take_over(now, out);
                } else if !failed {
                    // `ConfirmOff` (only a booting node asks for it) found the peer powered on
                    // meanwhile: it is booting too; wait for it as a booting node does.
                    self.st = St::Booting {
                        until: self.boot_until,
                    };
                } else {
                    let wait = backoff(attempt);
                    ev(out, Kind::FenceFailed, format_args!("{why}; retry in {wait:?}; no takeover without a confirmed fence (bbwd confirm-peer-down)"));
                    self.st = St::FenceBlocked {
                        retry_at: now + wait,
                        attempt: attempt + 1,
                    };
                }
            }
            St::Active if self.active_fence.is_some() => {
                if confirmed || self.peer.alive {
                    self.active_fence = None;
                } else {
                    // The active retries a failed fence (it keeps serving meanwhile).
                    let wait = backoff(self.active_fence_attempt);
                    self.active_fence_attempt += 1;
                    self.active_fence = Some(Some(now + wait));
                    ev(
                        out,
                        Kind::FenceFailed,
                        format_args!("{why}; still serving; retry in {wait:?}"),
                    );
                }
            }
            _ if failed => ev(out, Kind::FenceFailed, format_args!("{why}")),
            _ => {}
        }
    }

    fn on_confirm_peer_down(&mut self, now: Instant, out: &mut Actions) {
        if matches!(
            self.st,
            St::Fencing { .. } | St::FenceBlocked { .. } | St::Booting { .. } | St::Standby
        ) && !self.peer.alive
        {
            ev(
                out,
                Kind::PeerConfirmedDown,
                format_args!("operator confirmed the peer is down"),
            );
            self.takeover_retry = None;
            if self.may_take_over(now) {
                self.take_over(now, out);
            }
        } else {
            ev(
                out,
                Kind::SwitchoverRefused,
                format_args!(
                    "no takeover is waiting on a fence of a silent peer (the peer is heard, or \
                     this node serves)"
                ),
            );
        }
    }

    fn take_over(&mut self, now: Instant, out: &mut Actions) {
        self.handed_over_done = false;
        self.paused_reported = false;
        ev(out, Kind::TakeoverStep, format_args!("before_start hooks"));
        self.st = St::TakingOver {
            step: TakeStep::Hooks,
            deadline: now + self.s.step_timeout,
        };
        push(out, Action::RunHooks(Hooks::BeforeStart));
    }

    fn on_hooks(&mut self, now: Instant, phase: Hooks, ok: bool, d: Detail, out: &mut Actions) {
        match (self.st, phase) {
            (
                St::TakingOver {
                    step: TakeStep::Hooks,
                    ..
                },
                Hooks::BeforeStart,
            ) => {
                if ok {
                    ev(out, Kind::TakeoverStep, format_args!("starting Bitbucket"));
                    // Bitbucket's own startup_timeout governs this step (the supervisor fails it).
                    self.st = St::TakingOver {
                        step: TakeStep::Starting,
                        deadline: far(now),
                    };
                    push(out, Action::Permit { run: true });
                } else {
                    ev(
                        out,
                        Kind::TakeoverFailed,
                        format_args!("before_start hooks failed: {d}"),
                    );
                    self.release(now, ReleaseWhy::TakeoverFailed, out);
                }
            }
            (
                St::Releasing {
                    step: RelStep::Hooks,
                    ..
                },
                Hooks::AfterStop,
            ) => {
                if !ok {
                    ev(
                        out,
                        Kind::ReleaseError,
                        format_args!("after_stop hooks: {d}"),
                    );
                }
                self.release_next(now, RelStep::Hooks, ok, out);
            }
            _ => {}
        }
    }

    fn on_healthy(&mut self, now: Instant, out: &mut Actions) {
        if let St::TakingOver {
            step: TakeStep::Starting,
            ..
        } = self.st
        {
            ev(
                out,
                Kind::TakeoverStep,
                format_args!("Bitbucket RUNNING: adding the VIP"),
            );
            self.st = St::TakingOver {
                step: TakeStep::Vip,
                deadline: now + self.s.step_timeout,
            };
            push(out, Action::AddVip);
        }
    }

    fn on_vip_added(&mut self, now: Instant, ok: bool, d: Detail, out: &mut Actions) {
        if let St::TakingOver {
            step: TakeStep::Vip,
            ..
        } = self.st
        {
            if ok {
                self.st = St::Active;
                self.takeover_retry = None;
                self.takeover_attempt = 0;
                ev(out, Kind::Active, format_args!("serving: {d}"));
            } else {
                ev(out, Kind::VipConflict, format_args!("{d}"));
                self.release(now, ReleaseWhy::TakeoverFailed, out);
            }
        }
    }

    /// Begins (or continues) a release. Order: VIP, Bitbucket, after_stop hooks.
    fn release(&mut self, now: Instant, why: ReleaseWhy, out: &mut Actions) {
        match self.st {
            St::Active | St::TakingOver { .. } => {
                ev(
                    out,
                    Kind::Release,
                    format_args!("releasing the service ({why:?})"),
                );
                self.active_fence = None;
                self.st = St::Releasing {
                    step: RelStep::Vip,
                    deadline: now + self.s.step_timeout,
                    why,
                    errors: 0,
                };
                push(out, Action::RemoveVip);
            }
            St::Releasing {
                step,
                deadline,
                errors,
                why: first,
            } => {
                // A second reason (e.g. shutdown during an escalation) only changes the ending;
                // a failed takeover never becomes a hand-over.
                let why = if first == ReleaseWhy::TakeoverFailed && why.hands_over() {
                    first
                } else {
                    why
                };
                self.st = St::Releasing {
                    step,
                    deadline,
                    why,
                    errors,
                };
            }
            _ if why == ReleaseWhy::Shutdown => push(out, Action::Exit),
            _ => {}
        }
    }

    fn on_vip_removed(&mut self, now: Instant, ok: bool, d: Detail, out: &mut Actions) {
        if let St::Releasing {
            step: RelStep::Vip, ..
        } = self.st
        {
            if !ok {
                ev(
                    out,
                    Kind::ReleaseError,
                    format_args!("removing the VIP: {d}"),
                );
            }
            self.release_next(now, RelStep::Vip, ok, out);
        }
    }

    fn on_stopped(&mut self, now: Instant, out: &mut Actions) {
        if let St::Releasing {
            step: RelStep::Stopping,
            ..
        } = self.st
        {
            self.release_next(now, RelStep::Stopping, true, out);
        }
    }

    /// Moves past release step `done` (best-effort: a failed step is counted, and decides the
    /// ending: a node that cannot prove it released never says so).
    fn release_next(&mut self, now: Instant, done: RelStep, ok: bool, out: &mut Actions) {
        let St::Releasing { why, errors, .. } = self.st else {
            return;
        };
        let errors = errors.saturating_add(u8::from(!ok));
        match done {
            RelStep::Vip => {
                ev(out, Kind::ReleaseStep, format_args!("stopping Bitbucket"));
                self.st = St::Releasing {
                    step: RelStep::Stopping,
                    deadline: now + self.s.release_timeout,
                    why,
                    errors,
                };
                push(out, Action::Permit { run: false });
            }
            RelStep::Stopping => {
                ev(out, Kind::ReleaseStep, format_args!("after_stop hooks"));
                self.st = St::Releasing {
                    step: RelStep::Hooks,
                    deadline: now + self.s.step_timeout,
                    why,
                    errors,
                };
                push(out, Action::RunHooks(Hooks::AfterStop));
            }
            RelStep::Hooks
                if errors > 0
                    && !crate::mutant::active(crate::mutant::Mutant::ReleaseFailedHandover) =>
            {
                ev(out, Kind::ReleaseError, format_args!("released ({why:?}) with {errors} failed step(s): this node cannot prove it stopped serving"));
                self.self_fence(out);
            }
            RelStep::Hooks => {
                ev(
                    out,
                    Kind::Standby,
                    format_args!("released ({why:?}), every step done"),
                );
                self.handed_over_done = why.hands_over();
                self.st = St::Standby;
                if why == ReleaseWhy::TakeoverFailed {
                    let wait = backoff(self.takeover_attempt);
                    self.takeover_attempt += 1;
                    self.takeover_retry = Some(now + wait);
                    ev(
                        out,
                        Kind::TakeoverFailed,
                        format_args!("takeover failed; the next attempt waits {wait:?}"),
                    );
                }
                if self.shutting_down {
                    push(out, Action::Exit);
                }
            }
        }
    }

    fn self_fence(&mut self, out: &mut Actions) {
        if self.st != St::SelfFenced {
            ev(out, Kind::SelfFence, format_args!("this node cannot prove it stopped serving: silent, no longer petting the watchdog; the peer must fence it"));
            self.st = St::SelfFenced;
            self.handed_over_done = false;
            push(out, Action::SelfFence);
        }
    }

    fn isolated(&mut self, now: Instant, out: &mut Actions) {
        match self.st {
            St::Active | St::TakingOver { .. } => {
                ev(
                    out,
                    Kind::Isolated,
                    format_args!("neither peer nor witness reachable: releasing, not fencing"),
                );
                self.release(now, ReleaseWhy::Isolated, out);
            }
            St::Fencing {
                requested: false, ..
            }
            | St::FenceBlocked { .. }
            | St::Booting { .. }
            | St::Standby => {
                if self.st != St::Standby {
                    ev(
                        out,
                        Kind::Isolated,
                        format_args!(
                            "neither peer nor witness reachable: standing by, not fencing"
                        ),
                    );
                }
                self.stand_by(out);
            }
            _ => {}
        }
    }

    fn on_switchover(&mut self, now: Instant, out: &mut Actions) {
        let ready = self.peer.alive
            && self.peer.consent
            && self.peer.role == Role::Standby
            && self.peer.healthy
            && !self.peer.failed
            && !self.peer.maintenance;
        match self.st {
            St::Active if ready => self.release(now, ReleaseWhy::Switchover, out),
            St::Active => ev(
                out,
                Kind::SwitchoverRefused,
                format_args!("the peer is not a healthy standby that answers"),
            ),
            _ => ev(
                out,
                Kind::SwitchoverRefused,
                format_args!("this node is not active"),
            ),
        }
    }

    fn on_shutdown(&mut self, now: Instant, out: &mut Actions) {
        self.shutting_down = true;
        match self.st {
            St::Active | St::TakingOver { .. } | St::Releasing { .. } => {
                self.release(now, ReleaseWhy::Shutdown, out)
            }
            St::SelfFenced => {}
            _ => push(out, Action::Exit),
        }
    }

    fn stand_by(&mut self, out: &mut Actions) {
        if self.st != St::Standby {
            self.st = St::Standby;
            ev(out, Kind::Standby, format_args!("standing by"));
        }
    }
}

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
