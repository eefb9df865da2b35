//! What hearing or losing the peer means: the events for a peer seen or lost and for a
//! preference misconfiguration, the active node's fence at once of a peer it lost (or its
//! release when it is cut off from clients too), a booting or standby node's takeover on the
//! peer's **consent** (proof 2 of the safety rule), and the defence in depth when both serve.
//!
//! Must not: take consent from anything but `PeerView::consent` (an authenticated answer to this
//! run's current challenge, decided by the heartbeat tracker), nor take over without the winner
//! rule or the peer's hand-over.

use std::time::Instant;

use super::state::St;
use super::{ev, Actions, Kind, Pair, PeerView, ReleaseWhy, Role};
use crate::fence::Goal;

impl Pair {
    /// The heartbeat's view of the peer changed (or is re-stated).
    pub(super) fn on_peer(&mut self, now: Instant, v: PeerView, out: &mut Actions) {
        let was = self.peer;
        self.peer = v;
        if v.alive && v.role.serving() {
            // The peer serves now: our hand-over is complete.
            self.handed_over_done = false;
        }
        self.report_peer(was, v, out);
        if !v.alive {
            if self.st == St::Active && was.alive {
                self.on_lost_while_active(now, out);
            }
            return;
        }
        match self.st {
            St::Booting { .. } | St::Standby => self.on_heard_waiting(now, v, out),
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

    /// Events for the peer seen or lost, and (once) for both or neither node preferred.
    fn report_peer(&mut self, was: PeerView, v: PeerView, out: &mut Actions) {
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
    }

    /// The active node lost the peer (it was heard until now).
    fn on_lost_while_active(&mut self, now: Instant, out: &mut Actions) {
        if self.public_down_since.is_some() {
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
        if self.active_fence.is_none() && !self.witness_down() {
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

    /// A booting or standby node hears the peer: stand by, or take over on its **consent**
    /// (proof 2): it handed the service over, or it does not serve and this node is the winner.
    fn on_heard_waiting(&mut self, now: Instant, v: PeerView, out: &mut Actions) {
        if v.role.serving() || v.role == Role::Fencing {
            self.stand_by(out);
        } else if v.consent && v.role == Role::Standby && v.handed_over && self.may_take_over(now) {
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
}
