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

use std::time::{Duration, Instant};

use crate::fence::{self, Goal, Next, Procedure};
use crate::heartbeat::{self as hb, Key, NodeName, PeerTracker, Sender};
use crate::machine::{self, Detail, Machine, Report};
use crate::pair::{self, Hooks, Pair, PeerView, Role};

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

/// What a BMC procedure is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum BmcFor {
    /// The pair asked (its answer goes back to it).
    Pair,
    /// `cycle`: powering the fenced peer back on (events only).
    CycleOn,
}

/// Pair mode's parts.
#[derive(Debug, Clone, Hash)]
struct PairSide {
    pair: Pair,
    tracker: PeerTracker,
    sender: Sender,
    interval: Duration,
    next_beat: Instant,
    /// What the heartbeats say about this node.
    local: hb::Local,
    preferred: bool,
    fence_timeout: Duration,
    fence_cycle: bool,
    bmc: Option<(Procedure, BmcFor)>,
    bmc_queued: Option<Goal>,
    /// The pair's last `Local` input.
    local_told: (bool, bool),
}

/// One node. See the module doc.
#[derive(Debug, Clone, Hash)]
pub struct Node {
    sup: Machine,
    pair: Option<PairSide>,
    vip_held: bool,
    storage_held: bool,
    exit: bool,
}

impl Node {
    /// A node at `now`; returns it and its first actions.
    pub fn new(
        sup: machine::Settings,
        pair: Option<PairSettings>,
        boot: Boot,
        now: Instant,
    ) -> (Node, Actions) {
        let adopted = boot.sup.adopted_pid;
        let (m, first) = Machine::new(sup, now, boot.sup);
        let mut out = Actions::new();
        let mut node = Node {
            sup: m,
            pair: None,
            vip_held: boot.vip_held,
            storage_held: boot.storage_held,
            exit: false,
        };
        let mut reports = heapless::Deque::<Report, 8>::new();
        node.take_sup(first, &mut reports, &mut out);
        if let Some(ps) = pair {
            let serving: Option<&str> =
                if crate::mutant::active(crate::mutant::Mutant::AgentRestart) {
                    None
                } else if adopted.is_some() {
                    Some("Bitbucket still running")
                } else if boot.vip_held {
                    Some("the VIP still on the interface")
                } else if boot.storage_held {
                    Some("before_start hooks recorded as in effect")
                } else {
                    None
                };
            let (p, pacts) = Pair::new(ps.pair.clone(), now, serving);
            let tracker = PeerTracker::new(
                ps.key.clone(),
                ps.me,
                ps.boot_id,
                ps.peer,
                ps.links,
                ps.pair.peer_timeout,
            );
            let sender = Sender::new(ps.key, ps.me, ps.boot_id, ps.first_sequence);
            node.pair = Some(PairSide {
                pair: p,
                tracker,
                sender,
                interval: ps.heartbeat_interval,
                next_beat: now,
                local: hb::Local {
                    role: hb::Role::None,
                    state: hb::State::Starting,
                    health: hb::Health::Unknown,
                    flags: hb::Flags::empty(),
                },
                preferred: ps.preferred,
                fence_timeout: ps.fence_timeout,
                fence_cycle: ps.fence_cycle,
                bmc: None,
                bmc_queued: None,
                local_told: (false, false),
            });
            let mut permits = heapless::Deque::<bool, 8>::new();
            let mut pair_exit = false;
            node.take_pair(now, pacts, &mut permits, &mut pair_exit, &mut out);
            while let Some(run) = permits.pop_front() {
                let acts = node.sup.step(now, machine::Input::Permit { run });
                node.take_sup(acts, &mut reports, &mut out);
            }
            node.settle(now, reports, heapless::Deque::new(), &mut out);
        } else {
            node.settle(now, reports, heapless::Deque::new(), &mut out);
        }
        (node, out)
    }

    /// Feeds one input at `now`; returns what to do.
    pub fn step(&mut self, now: Instant, input: Input) -> Actions {
        let mut out = Actions::new();
        let mut reports = heapless::Deque::<Report, 8>::new();
        let mut pin = heapless::Deque::<pair::Input, 16>::new();
        match input {
            Input::Tick => {
                let acts = self.sup.step(now, machine::Input::Tick);
                self.take_sup(acts, &mut reports, &mut out);
                if let Some(ps) = &mut self.pair {
                    let _ = pin.push_back(pair::Input::Tick);
                    if let Some((proc, _)) = &mut ps.bmc {
                        if now >= proc.deadline() {
                            let next = proc.on_tick(now);
                            self.bmc_next(now, next, &mut pin, &mut out);
                        }
                    }
                }
                self.tracker_events(now, &mut pin, &mut out);
            }
            Input::Sup(i) => {
                let i = match i {
                    // The node's own: never from the shell.
                    machine::Input::Permit { .. } | machine::Input::Shutdown => {
                        machine::Input::Tick
                    }
                    other => other,
                };
                let acts = self.sup.step(now, i);
                self.take_sup(acts, &mut reports, &mut out);
            }
            Input::Bmc(reply) => {
                if let Some(ps) = &mut self.pair {
                    if let Some((proc, _)) = &mut ps.bmc {
                        let next = proc.on_reply(now, reply);
                        self.bmc_next(now, next, &mut pin, &mut out);
                    }
                }
            }
            Input::HooksDone { phase, ok, detail } => {
                if phase == Hooks::AfterStop && ok {
                    self.storage_held = false;
                }
                let _ = pin.push_back(pair::Input::HooksDone { phase, ok, detail });
            }
            Input::VipAdded { ok, detail } => {
                if !ok {
                    // Nothing was added (a probe conflict or a failed add).
                    self.vip_held = false;
                }
                let _ = pin.push_back(pair::Input::VipAdded { ok, detail });
            }
            Input::VipRemoved { ok, detail } => {
                if ok {
                    self.vip_held = false;
                }
                let _ = pin.push_back(pair::Input::VipRemoved { ok, detail });
            }
            Input::Witness { reachable } => {
                let _ = pin.push_back(pair::Input::Witness { reachable });
            }
            Input::PublicLink { up } => {
                let _ = pin.push_back(pair::Input::PublicLink { up });
            }
            Input::Switchover => {
                let _ = pin.push_back(pair::Input::Switchover);
            }
            Input::ConfirmPeerDown => {
                let _ = pin.push_back(pair::Input::ConfirmPeerDown);
            }
            Input::Shutdown => {
                if self.pair.is_some() {
                    // Release in order first; the supervisor shuts down when that is done.
                    let _ = pin.push_back(pair::Input::Shutdown);
                } else {
                    let acts = self.sup.step(now, machine::Input::Shutdown);
                    self.take_sup(acts, &mut reports, &mut out);
                }
            }
        }
        self.settle(now, reports, pin, &mut out);
        out
    }

    /// A heartbeat datagram arrived on `link`. Drops are counted by the tracker (see
    /// [`Node::tracker`]); the result says why one was dropped.
    pub fn receive(
        &mut self,
        now: Instant,
        link: usize,
        bytes: &[u8],
    ) -> (Result<(), hb::Reject>, Actions) {
        let mut out = Actions::new();
        let Some(ps) = &mut self.pair else {
            return (Err(hb::Reject::WrongPeer), out);
        };
        let r = ps.tracker.receive(now, link, bytes).map(|_| ());
        let mut pin = heapless::Deque::new();
        self.tracker_events(now, &mut pin, &mut out);
        if r.is_ok() {
            let view = self.peer_view(now);
            let _ = pin.push_back(pair::Input::Peer(view));
        }
        self.settle(now, heapless::Deque::new(), pin, &mut out);
        (r, out)
    }

    /// The heartbeat versions to send now (the v1 copy, after v2, until the peer's run speaks
    /// v2).
    pub fn versions(&self) -> &'static [u8] {
        match &self.pair {
            Some(ps) if ps.tracker.peer_speaks_v2() => &[hb::VERSION],
            // Version 2 first: a version-2 receiver learns the run speaks it before the copy.
            _ => &[hb::VERSION, hb::VERSION_V1],
        }
    }

    /// Encodes this node's heartbeat for `link` as `version` into `buf`; returns its length
    /// (0 when there is nothing to send: not in pair mode, or silent).
    pub fn encode(
        &mut self,
        now: Instant,
        link: u8,
        wall_ms: u64,
        version: u8,
        buf: &mut [u8; hb::PACKET_BYTES],
    ) -> usize {
        let Some(ps) = &mut self.pair else { return 0 };
        if ps.pair.silent() {
            return 0;
        }
        let talk = ps.tracker.talk(now);
        let mut local = ps.local;
        if version == hb::VERSION_V1 {
            local.flags = local.flags.v1();
        }
        ps.sender.encode(&local, &talk, link, wall_ms, version, buf)
    }

    /// The earliest moment the node needs a `Tick`.
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut d = self.sup.next_deadline();
        if let Some(ps) = &self.pair {
            let beat = (!ps.pair.silent()).then_some(ps.next_beat);
            let bmc = ps.bmc.as_ref().map(|(p, _)| p.deadline());
            d = [
                d,
                ps.pair.next_deadline(),
                ps.tracker.next_deadline(),
                beat,
                bmc,
            ]
            .into_iter()
            .flatten()
            .min();
        }
        d
    }

    pub fn machine(&self) -> &Machine {
        &self.sup
    }

    pub fn pair(&self) -> Option<&Pair> {
        self.pair.as_ref().map(|p| &p.pair)
    }

    pub fn tracker(&self) -> Option<&PeerTracker> {
        self.pair.as_ref().map(|p| &p.tracker)
    }

    /// What the heartbeats say about this node now.
    pub fn advertised(&self) -> Option<hb::Local> {
        self.pair.as_ref().map(|p| p.local)
    }

    /// The pair role (`None` outside pair mode).
    pub fn role(&self) -> Option<Role> {
        self.pair().map(|p| p.role())
    }

    pub fn vip_held(&self) -> bool {
        self.vip_held
    }

    pub fn storage_held(&self) -> bool {
        self.storage_held
    }

    /// This node may be serving: Bitbucket may run, or the VIP or storage may be held.
    pub fn serving(&self) -> bool {
        self.sup.view().pid.is_some() || self.vip_held || self.storage_held
    }

    /// The node stopped petting the watchdog on the pair's account.
    pub fn self_fenced(&self) -> bool {
        self.pair().is_some_and(|p| p.silent())
    }

    /// The node has exited (after `Shutdown`).
    pub fn exited(&self) -> bool {
        self.exit
    }

    /// A BMC operation is outstanding (for the shell's status: the fencing BMC is in use).
    pub fn bmc_busy(&self) -> bool {
        self.pair.as_ref().is_some_and(|p| p.bmc.is_some())
    }

    fn peer_view(&self, now: Instant) -> PeerView {
        let Some(ps) = &self.pair else {
            return PeerView::UNKNOWN;
        };
        let t = &ps.tracker;
        let alive = t.alive(now);
        let Some(h) = t.last() else {
            return PeerView {
                alive,
                ..PeerView::UNKNOWN
            };
        };
        let role = match (h.role, h.state) {
            (hb::Role::None, _) => Role::Booting,
            (hb::Role::Standby, hb::State::Fencing) => Role::Fencing,
            (hb::Role::Standby, _) => Role::Standby,
            (hb::Role::Active, hb::State::TakingOver) => Role::TakingOver,
            (hb::Role::Active, hb::State::Releasing) => Role::Releasing,
            (hb::Role::Active, _) => Role::Active,
        };
        PeerView {
            alive,
            consent: t.consent(now),
            role,
            healthy: !matches!(h.state, hb::State::Failed | hb::State::Maintenance),
            failed: h.state == hb::State::Failed,
            handed_over: h.flags.contains(hb::Flags::SWITCHOVER_REQUEST),
            preferred: h.flags.contains(hb::Flags::PREFERRED_ACTIVE),
            maintenance: h.flags.contains(hb::Flags::MAINTENANCE)
                || h.state == hb::State::Maintenance,
        }
    }

    /// Tracker events (links, restarts, liveness) into pair inputs and events.
    fn tracker_events(
        &mut self,
        now: Instant,
        pin: &mut heapless::Deque<pair::Input, 16>,
        out: &mut Actions,
    ) {
        let Some(ps) = &mut self.pair else { return };
        let mut changed = false;
        while let Some(e) = ps.tracker.next_event(now) {
            changed = true;
            let (up, total) = ps.tracker.links_up(now);
            match e {
                hb::Event::LinkDown(i) => ev(
                    out,
                    pair::Kind::LinkDown,
                    format_args!("heartbeat link {i} lost ({up}/{total} up)"),
                ),
                hb::Event::LinkUp(i) => ev(
                    out,
                    pair::Kind::LinkUp,
                    format_args!("heartbeat link {i} up ({up}/{total} up)"),
                ),
                hb::Event::PeerRestarted => ev(
                    out,
                    pair::Kind::PeerRestarted,
                    format_args!("the peer's bbwd started anew"),
                ),
                hb::Event::PeerAlive | hb::Event::PeerLost => {}
            }
        }
        if changed {
            let view = self.peer_view(now);
            let _ = pin.push_back(pair::Input::Peer(view));
        }
    }

    fn take_sup(
        &mut self,
        acts: machine::Actions,
        reports: &mut heapless::Deque<Report, 8>,
        out: &mut Actions,
    ) {
        for a in acts {
            match a {
                machine::Action::Report(r) => {
                    let _ = reports.push_back(r);
                }
                machine::Action::Exit => {
                    self.exit = true;
                    push(out, Action::Exit);
                }
                other => push(out, Action::Sup(other)),
            }
        }
    }

    /// Carries the pair's actions out of the machine: BMC work into the procedure, permission
    /// and exit back to the supervisor (through `permits`, `pair_exit`), the rest to the shell.
    fn take_pair(
        &mut self,
        now: Instant,
        acts: pair::Actions,
        permits: &mut heapless::Deque<bool, 8>,
        pair_exit: &mut bool,
        out: &mut Actions,
    ) {
        for a in acts {
            match a {
                pair::Action::Fence(goal) => self.start_bmc(now, goal, BmcFor::Pair, out),
                pair::Action::RunHooks(phase) => {
                    if phase == Hooks::BeforeStart {
                        self.storage_held = true;
                    }
                    push(out, Action::RunHooks(phase));
                }
                pair::Action::Permit { run } => {
                    let _ = permits.push_back(run);
                }
                pair::Action::AddVip => {
                    self.vip_held = true;
                    push(out, Action::AddVip);
                }
                pair::Action::RemoveVip => push(out, Action::RemoveVip),
                pair::Action::SelfFence => push(out, Action::SelfFence),
                pair::Action::Event(k, d) => push(out, Action::Event(k, d)),
                pair::Action::Exit => *pair_exit = true,
            }
        }
    }

    /// Starts a BMC procedure, or queues it behind the one running (only `cycle`'s power-on can
    /// be running when the pair asks: the pair itself asks for one at a time).
    fn start_bmc(&mut self, now: Instant, goal: Goal, purpose: BmcFor, out: &mut Actions) {
        let Some(ps) = &mut self.pair else { return };
        if ps.bmc.is_some() {
            ps.bmc_queued = Some(goal);
            return;
        }
        let (proc, op) = Procedure::start(goal, now, ps.fence_timeout);
        let timeout = proc.deadline().saturating_duration_since(now);
        ps.bmc = Some((proc, purpose));
        push(out, Action::Bmc { op, timeout });
    }

    /// The running procedure's next step.
    fn bmc_next(
        &mut self,
        now: Instant,
        next: Next,
        pin: &mut heapless::Deque<pair::Input, 16>,
        out: &mut Actions,
    ) {
        let Some(ps) = &mut self.pair else { return };
        match next {
            Next::Wait => {}
            Next::Op(op) => {
                let timeout = ps
                    .bmc
                    .as_ref()
                    .map(|(p, _)| p.deadline().saturating_duration_since(now))
                    .unwrap_or_default();
                push(out, Action::Bmc { op, timeout });
            }
            Next::Done(outcome) => {
                let Some((_, purpose)) = ps.bmc.take() else {
                    return;
                };
                let cycle = ps.fence_cycle;
                let queued = ps.bmc_queued.take();
                match purpose {
                    BmcFor::Pair => {
                        let confirmed = outcome == fence::Outcome::OffConfirmed;
                        let r = match outcome {
                            fence::Outcome::OffConfirmed => {
                                pair::FenceResult::OffConfirmed(crate::machine::detail(
                                    "power off acknowledged, then off read back",
                                ))
                            }
                            fence::Outcome::Power { on } => pair::FenceResult::Power {
                                on,
                                detail: crate::machine::detail(if on {
                                    "power on"
                                } else {
                                    "power off"
                                }),
                            },
                            fence::Outcome::Failed(d) => pair::FenceResult::Failed(d),
                        };
                        let _ = pin.push_back(pair::Input::Fence(r));
                        if confirmed && cycle {
                            // `cycle` counts as fenced once off is confirmed; on comes after.
                            self.start_bmc(now, Goal::On, BmcFor::CycleOn, out);
                        }
                    }
                    // The details start with `cycle:`: the agent's metrics count fence attempts
                    // from `fenced`/`fence_failed` and leave these power-on steps out by it.
                    BmcFor::CycleOn => match outcome {
                        fence::Outcome::Failed(d) => ev(
                            out,
                            pair::Kind::FenceFailed,
                            format_args!("cycle: powering the peer back on: {d}"),
                        ),
                        _ => ev(
                            out,
                            pair::Kind::Fenced,
                            format_args!("cycle: the peer is powered on again"),
                        ),
                    },
                }
                if let Some(goal) = queued {
                    self.start_bmc(now, goal, BmcFor::Pair, out);
                }
            }
        }
    }

    /// Runs the internal exchanges to a standstill, then decides whether a heartbeat is due.
    fn settle(
        &mut self,
        now: Instant,
        mut reports: heapless::Deque<Report, 8>,
        mut pin: heapless::Deque<pair::Input, 16>,
        out: &mut Actions,
    ) {
        let mut permits = heapless::Deque::<bool, 8>::new();
        let mut pair_exit = false;
        // Bounded: each round consumes what the previous produced; a machine bug must not hang
        // the loop.
        for _ in 0..64 {
            let mut progressed = false;
            while let Some(i) = pin.pop_front() {
                progressed = true;
                let Some(ps) = &mut self.pair else { continue };
                let acts = ps.pair.step(now, i);
                self.take_pair(now, acts, &mut permits, &mut pair_exit, out);
            }
            while let Some(r) = reports.pop_front() {
                progressed = true;
                let i = match r {
                    Report::Healthy => pair::Input::SupervisorHealthy,
                    Report::Stopped => pair::Input::SupervisorStopped,
                    Report::Escalate => pair::Input::SupervisorEscalates,
                    Report::Unkillable => pair::Input::SupervisorUnkillable,
                    Report::StartFailed => pair::Input::SupervisorStartFailed,
                };
                let _ = pin.push_back(i);
            }
            while let Some(run) = permits.pop_front() {
                progressed = true;
                let acts = self.sup.step(now, machine::Input::Permit { run });
                self.take_sup(acts, &mut reports, out);
            }
            if std::mem::take(&mut pair_exit) {
                // Everything released: the supervisor may shut down (nothing runs any more).
                progressed = true;
                let acts = self.sup.step(now, machine::Input::Shutdown);
                self.take_sup(acts, &mut reports, out);
            }
            if let Some(ps) = &mut self.pair {
                let v = self.sup.view();
                let told = (v.failed.is_some(), v.maintenance.is_some());
                if told != ps.local_told {
                    ps.local_told = told;
                    progressed = true;
                    let _ = pin.push_back(pair::Input::Local {
                        failed: told.0,
                        maintenance: told.1,
                    });
                }
            }
            if !progressed {
                break;
            }
        }
        self.advertise(now, out);
    }

    /// Recomputes what the heartbeats say; a change goes out at once, otherwise on schedule.
    fn advertise(&mut self, now: Instant, out: &mut Actions) {
        let v = self.sup.view();
        let vip_held = self.vip_held;
        let Some(ps) = &mut self.pair else { return };
        let role = ps.pair.role();
        let (sup_state, health) = heartbeat_state(&v);
        let state = match role {
            Role::Fencing => hb::State::Fencing,
            Role::TakingOver => hb::State::TakingOver,
            Role::Releasing => hb::State::Releasing,
            _ => sup_state,
        };
        let mut flags = hb::Flags::empty();
        if ps.pair.handed_over() {
            flags = flags | hb::Flags::SWITCHOVER_REQUEST;
        }
        if role == Role::Releasing {
            flags = flags | hb::Flags::RELEASING;
        }
        if ps.preferred {
            flags = flags | hb::Flags::PREFERRED_ACTIVE;
        }
        if vip_held {
            flags = flags | hb::Flags::HOLDS_VIP;
        }
        if v.maintenance.is_some() {
            flags = flags | hb::Flags::MAINTENANCE;
        }
        let local = hb::Local {
            role: match role {
                Role::Booting => hb::Role::None,
                Role::Standby | Role::Fencing => hb::Role::Standby,
                Role::TakingOver | Role::Active | Role::Releasing => hb::Role::Active,
            },
            state,
            health,
            flags,
        };
        if ps.pair.silent() {
            ps.local = local;
            return;
        }
        if local != ps.local || now >= ps.next_beat {
            ps.local = local;
            ps.next_beat = now + ps.interval;
            push(out, Action::SendHeartbeats);
        }
    }
}

/// The supervisor's state and Bitbucket's health as heartbeats carry them.
fn heartbeat_state(v: &machine::View) -> (hb::State, hb::Health) {
    use machine::State;
    let state = match v.state {
        State::Starting => hb::State::Starting,
        State::Running => hb::State::Running,
        State::Correcting => hb::State::Correcting,
        State::Holding => hb::State::Holding,
        State::Failed => hb::State::Failed,
        State::Maintenance => hb::State::Maintenance,
        State::Stopped => hb::State::Stopped,
    };
    let health = match (v.state, v.pid) {
        (_, None) => hb::Health::Stopped,
        (State::Running, Some(_)) if v.consecutive_failures == 0 => hb::Health::Healthy,
        (State::Starting, Some(_)) => hb::Health::Starting,
        _ => hb::Health::Unhealthy,
    };
    (state, health)
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
