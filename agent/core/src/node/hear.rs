//! Hearing the peer: a datagram into the tracker ([`Node::receive`]), the tracker's events
//! (links, the peer's restarts) into pair events, and the tracker's state into the pair's
//! [`PeerView`] (role, consent, health, flags).
//!
//! Must not: judge a packet (the tracker does) or give consent on anything but the tracker's
//! `consent` (a fresh answer to this run's challenge).

use std::time::Instant;

use crate::heartbeat as hb;
use crate::pair::{self, PeerView, Role};

use super::{ev, Actions, Node};

impl Node {
    /// A heartbeat datagram arrived on `link`. Drops are counted by the tracker (see
    /// [`Node::tracker`]); the result says why one was dropped.
    pub fn receive(
        &mut self,
        now: Instant,
        link: usize,
        bytes: &[u8],
    ) -> (Result<(), hb::Reject>, Actions) {
        self.note_awake(now);
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
    pub(super) fn tracker_events(
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
}
