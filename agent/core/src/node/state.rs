//! The node: the supervisor, and in pair mode its `PairSide` (the pair machine, the heartbeat
//! tracker and sender, the BMC procedure, what the heartbeats advertise); how a node starts
//! (resuming when it finds itself serving: Bitbucket adopted, the VIP held, storage recorded),
//! its next deadline, and what is read off it without changing it.
//!
//! Must not: change the node outside a step (`Node::new` settles its first actions like a step).

use std::time::{Duration, Instant};

use crate::fence::{Goal, Procedure};
use crate::heartbeat::{self as hb, PeerTracker, Sender};
use crate::machine::{self, Machine, Report};
use crate::pair::{Pair, Role};

use super::bmc::BmcFor;
use super::{Actions, Boot, PairSettings};

/// Pair mode's parts.
#[derive(Debug, Clone, Hash)]
pub(super) struct PairSide {
    pub(super) pair: Pair,
    pub(super) tracker: PeerTracker,
    pub(super) sender: Sender,
    pub(super) interval: Duration,
    pub(super) next_beat: Instant,
    /// What the heartbeats say about this node.
    pub(super) local: hb::Local,
    pub(super) preferred: bool,
    pub(super) fence_timeout: Duration,
    pub(super) fence_cycle: bool,
    pub(super) bmc: Option<(Procedure, BmcFor)>,
    pub(super) bmc_queued: Option<Goal>,
    /// The pair's last `Local` input.
    pub(super) local_told: (bool, bool),
    /// When the node last ran a step (see `pause`).
    pub(super) awake_at: Option<Instant>,
}

/// One node. See the module doc.
#[derive(Debug, Clone, Hash)]
pub struct Node {
    pub(super) sup: Machine,
    pub(super) pair: Option<PairSide>,
    pub(super) vip_held: bool,
    pub(super) storage_held: bool,
    pub(super) exit: bool,
}

impl PairSide {
    /// Pair mode's parts at `now` around the pair machine `pair`: this run's tracker and
    /// sender, nothing advertised yet, a heartbeat due at once.
    fn new(ps: PairSettings, pair: Pair, now: Instant) -> PairSide {
        let tracker = PeerTracker::new(
            ps.key.clone(),
            ps.me,
            ps.boot_id,
            ps.peer,
            ps.links,
            ps.pair.peer_timeout,
        );
        let sender = Sender::new(ps.key, ps.me, ps.boot_id, ps.first_sequence);
        PairSide {
            pair,
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
            awake_at: Some(now),
        }
    }
}

/// What the node found serving at start, if anything (it then resumes instead of advertising
/// "not serving"): Bitbucket adopted, the VIP on its interface, or storage recorded as held.
fn serving_at_start(boot: &Boot) -> Option<&'static str> {
    if crate::mutant::active(crate::mutant::Mutant::AgentRestart) {
        None
    } else if boot.sup.adopted_pid.is_some() {
        Some("Bitbucket still running")
    } else if boot.vip_held {
        Some("the VIP still on the interface")
    } else if boot.storage_held {
        Some("before_start hooks recorded as in effect")
    } else {
        None
    }
}

impl Node {
    /// A node at `now`; returns it and its first actions.
    pub fn new(
        sup: machine::Settings,
        pair: Option<PairSettings>,
        boot: Boot,
        now: Instant,
    ) -> (Node, Actions) {
        let serving = serving_at_start(&boot);
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
            let (p, pacts) = Pair::new(ps.pair.clone(), now, serving);
            node.pair = Some(PairSide::new(ps, p, now));
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
}
