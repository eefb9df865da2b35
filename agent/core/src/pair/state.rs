//! The pair machine's state: [`Pair`] and its internal state `St` (each state carries its
//! data), how a machine starts (resuming when it finds itself serving, else listening for the
//! peer), and what is read off the state without changing it: the advertised role, the status
//! flags, the next deadline, and the conditions the transitions test (winner, witness down,
//! public link lost).
//!
//! Must not: change the state. The transitions are in `step`, `peer`, `fencing`, `takeover`
//! and `release` (`Pair::new` only asks its first power query through `fencing`).

use std::time::Instant;

use super::{ev, far, push, Action, Actions, Kind, PeerView, ReleaseWhy, Role, Settings};

/// Takeover steps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum TakeStep {
    Hooks,
    Starting,
    Vip,
}

/// Release steps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum RelStep {
    Vip,
    Stopping,
    Hooks,
}

/// Why the pair asked for a power reading (what its answer decides).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Query {
    /// Booting or fencing: a peer already off needs no wait (the fence still confirms it).
    FastPath,
    /// The peer is heard: its BMC must say on.
    Watch,
}

/// The state, carrying its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum St {
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
    pub(super) s: Settings,
    pub(super) st: St,
    pub(super) peer: PeerView,
    /// Consecutive missed witness pings.
    pub(super) witness_misses: u32,
    /// When the public link went down (raw), if it is down.
    pub(super) public_down_since: Option<Instant>,
    /// The local supervisor is failed / in maintenance.
    pub(super) local_failed: bool,
    pub(super) local_maintenance: bool,
    pub(super) shutting_down: bool,
    /// We released cleanly for the peer and stay out of its way until it serves: advertised as
    /// `handed_over`.
    pub(super) handed_over_done: bool,
    /// The query (or fence) outstanding, if any; at most one BMC procedure at a time.
    pub(super) bmc_busy: Option<Option<Query>>,
    /// A fence asked for while a query ran: it starts when the query ends.
    pub(super) fence_queued: bool,
    /// Active: the peer is being fenced (at once on loss); a failed fence is retried at `.1`.
    pub(super) active_fence: Option<Option<Instant>>,
    pub(super) active_fence_attempt: u32,
    /// The peer's BMC reported off while the peer was heard: no fence is trusted.
    pub(super) bmc_mismatch: bool,
    pub(super) next_bmc_watch: Instant,
    /// A failed takeover holds further attempts back until then (CRITICAL meanwhile).
    pub(super) takeover_retry: Option<Instant>,
    pub(super) takeover_attempt: u32,
    /// Reported once per episode.
    pub(super) paused_reported: bool,
    pub(super) preference_reported: bool,
    /// When the wait-for-all at start ends.
    pub(super) boot_until: Instant,
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
    pub(super) fn winner(&self) -> bool {
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

    pub(super) fn witness_down(&self) -> bool {
        let needed = if crate::mutant::active(crate::mutant::Mutant::WitnessOneMiss) {
            1
        } else {
            self.s.witness_misses.max(1)
        };
        self.s.witness && self.witness_misses >= needed
    }

    pub(super) fn public_lost(&self, now: Instant) -> bool {
        self.public_down_since
            .is_some_and(|t| now.saturating_duration_since(t) >= self.s.link_hold)
    }
}
