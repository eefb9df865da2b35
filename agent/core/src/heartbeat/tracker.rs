//! The receiving side: [`PeerTracker`] accepts or drops each datagram (the codec, then who sent
//! it and on which link, then the replay rules in `replay`), keeps each link's view
//! ([`LinkView`]: up only when heard both ways), decides whether the peer is alive and whether
//! its latest word is consent (*Freshness* in the module doc of [`super`]), bumps our challenge
//! on every loss of the peer, and reports each change once ([`Event`]).
//!
//! Must not: read a clock (every time is passed in) or allocate after construction.

use std::time::{Duration, Instant};

use super::replay::Epoch;
use super::{
    BootId, Challenge, DropCounters, Heartbeat, Key, NodeName, Reject, Talk, RETIRED_BOOT_IDS,
    VERSION,
};

/// One link as the receiver sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct LinkView {
    /// When the last valid packet arrived on this link.
    pub last_valid: Option<Instant>,
    /// Up (heard both ways) as last reported by an event (see [`PeerTracker::next_event`]).
    pub up: bool,
    /// Valid packets received on this link.
    pub accepted: u64,
    /// Packets dropped on this link (any class).
    pub dropped: u64,
    /// Last sequence accepted on this link from the current run of the peer.
    pub(super) last_sequence: Option<u64>,
}

/// Something the caller should log or act on; see [`PeerTracker::next_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Link `0` delivered a valid packet after being down (or for the first time).
    LinkUp(usize),
    /// Link `0` delivered nothing valid for `peer_timeout`.
    LinkDown(usize),
    /// The first valid packet after the peer was lost (or ever).
    PeerAlive,
    /// No link delivered a valid packet for `peer_timeout`.
    PeerLost,
    /// The peer's bbwd started anew (a new boot id was accepted).
    PeerRestarted,
}

/// The receiving side: per-link and overall state of the peer.
///
/// # Invariants
/// * `links.len()` is fixed at construction; no allocation afterwards.
/// * `alive_reported` / `LinkView::up` change only in `next_event`, so each change is reported
///   exactly once.
#[derive(Debug, Clone, Hash)]
pub struct PeerTracker {
    pub(super) key: Key,
    pub(super) me: NodeName,
    /// Our challenge: this run's boot id, and the epoch bumped at every loss of the peer.
    pub(super) mine: Challenge,
    /// The peer's current run has sent version 2.
    pub(super) peer_v2: bool,
    /// The peer's latest challenge (echoed in our packets).
    pub(super) peer_challenge: Challenge,
    /// Links the peer says it hears us on (version 2; all for a version-1 peer).
    pub(super) peer_hears: u8,
    /// The latest version-2 packet echoed our current challenge.
    pub(super) last_fresh: bool,
    /// A fresh packet (or, from a version-1 peer, any packet) arrived since the last loss.
    pub(super) revived: bool,
    pub(super) peer: NodeName,
    pub(super) peer_timeout: Duration,
    pub(super) links: Vec<LinkView>,
    pub(super) epoch: Option<Epoch>,
    pub(super) retired: [BootId; RETIRED_BOOT_IDS],
    pub(super) retired_len: usize,
    pub(super) retired_next: usize,
    pub(super) last_valid: Option<Instant>,
    pub(super) last: Option<Heartbeat>,
    pub(super) counters: DropCounters,
    pub(super) alive_reported: bool,
    pub(super) restart_pending: bool,
    /// Until then, after a pause of ours, the peer's word that it does not hear us is not
    /// believed (it could not have heard us: we sent nothing). See [`PeerTracker::discount`].
    pub(super) grace_until: Option<Instant>,
}

impl PeerTracker {
    /// `my_boot_id`: this run's boot id (the one our [`Sender`](super::Sender) sends), the base
    /// of our challenge. Links: at most 8 (one bit each in `links heard`).
    pub fn new(
        key: Key,
        me: NodeName,
        my_boot_id: BootId,
        peer: NodeName,
        links: usize,
        peer_timeout: Duration,
    ) -> PeerTracker {
        PeerTracker {
            key,
            me,
            mine: Challenge {
                boot_id: my_boot_id,
                epoch: 0,
            },
            peer_v2: false,
            peer_challenge: Challenge::default(),
            peer_hears: 0,
            last_fresh: false,
            revived: false,
            peer,
            peer_timeout,
            links: vec![LinkView::default(); links],
            epoch: None,
            retired: [[0; 16]; RETIRED_BOOT_IDS],
            retired_len: 0,
            retired_next: 0,
            last_valid: None,
            last: None,
            counters: DropCounters::default(),
            alive_reported: false,
            restart_pending: false,
            grace_until: None,
        }
    }

    /// Handles one datagram that arrived on `link` at `now`. `Ok` carries the accepted packet;
    /// `Err` the reason it was dropped (already counted). A `link` out of range is `WrongLink`.
    pub fn receive(
        &mut self,
        now: Instant,
        link: usize,
        bytes: &[u8],
    ) -> Result<Heartbeat, Reject> {
        let result = self.check(now, link, bytes);
        match result {
            Ok(hb) => {
                self.counters.accepted = self.counters.accepted.saturating_add(1);
                let view = &mut self.links[link];
                view.accepted = view.accepted.saturating_add(1);
                view.last_valid = Some(now);
                view.last_sequence = Some(hb.sequence);
                self.last_valid = Some(now);
                self.last = Some(hb);
                if hb.version >= VERSION {
                    self.peer_v2 = true;
                    self.peer_challenge = Challenge {
                        boot_id: hb.boot_id,
                        epoch: hb.epoch,
                    };
                    self.last_fresh = hb.echo == self.mine
                        || crate::mutant::active(crate::mutant::Mutant::ReplayedHandover);
                    // The links it hears us on, from a packet that answers us (or while it is
                    // not alive anyway). A version-2 node's version-1 copy may have revived it
                    // first: its first version-2 packet, sent before it heard us, must not
                    // knock it down again (an alive/lost flap that would start a fence).
                    if self.last_fresh || !self.revived {
                        self.peer_hears = hb.heard;
                    }
                    if self.last_fresh {
                        self.revived = true;
                    }
                } else if !self.peer_v2 {
                    // A version-1 peer: no challenge to check, no link report.
                    self.peer_hears = u8::MAX;
                    self.revived = true;
                }
            }
            Err(class) => {
                self.counters.bump(class);
                if let Some(view) = self.links.get_mut(link) {
                    view.dropped = view.dropped.saturating_add(1);
                }
            }
        }
        result
    }

    /// This node could not listen for `unobserved` before `now` (it was paused: see the node's
    /// `pause`): the time each link and the peer were last heard moves forward by it, never past
    /// `now`, so the peer's silence is counted only over time we listened. Only what was still
    /// fresh when we stopped listening moves (a link already down stays down). For one
    /// `peer_timeout` after `now`, the peer's word that it does not hear us on a link is not
    /// believed: it could not hear us while we sent nothing, and it needs our next heartbeats
    /// to say otherwise. Changes no fresh or consent flag: a packet that answers our challenge
    /// is still needed for consent.
    pub fn discount(&mut self, now: Instant, unobserved: Duration) {
        let deaf_from = now.checked_sub(unobserved).unwrap_or(now);
        let peer_timeout = self.peer_timeout;
        let shift = |t: &mut Option<Instant>| {
            if let Some(heard) = *t {
                if deaf_from.saturating_duration_since(heard) < peer_timeout {
                    *t = Some(heard.checked_add(unobserved).map_or(now, |s| s.min(now)));
                }
            }
        };
        for view in &mut self.links {
            shift(&mut view.last_valid);
        }
        shift(&mut self.last_valid);
        self.grace_until = now.checked_add(self.peer_timeout);
    }

    fn in_grace(&self, now: Instant) -> bool {
        self.grace_until.is_some_and(|g| now < g)
    }

    fn link_fresh(&self, view: &LinkView, now: Instant) -> bool {
        view.last_valid
            .is_some_and(|t| now.saturating_duration_since(t) < self.peer_timeout)
    }

    /// Link `i` is up: heard within `peer_timeout` of `now`, and the peer hears us on it.
    fn link_up(&self, i: usize, now: Instant) -> bool {
        self.link_fresh(&self.links[i], now)
            && (self.peer_hears & (1u8 << (i & 7)) != 0 || self.in_grace(now))
    }

    /// The peer is alive: some link is up both ways, and a fresh packet has arrived since the
    /// last loss (see *Freshness* in the module doc of [`super`]).
    pub fn alive(&self, now: Instant) -> bool {
        self.revived && (0..self.links.len()).any(|i| self.link_up(i, now))
    }

    /// The peer's latest word may be taken as consent (that it does not serve, or that it
    /// handed over): it is alive, and its latest version-2 packet answered our current
    /// challenge.
    pub fn consent(&self, now: Instant) -> bool {
        self.alive(now) && self.peer_v2 && self.last_fresh
    }

    /// The peer's current run speaks version 2 (we may stop sending version-1 copies).
    pub fn peer_speaks_v2(&self) -> bool {
        self.peer_v2
    }

    /// What our next packets carry for the peer: our challenge, its echoed, the links we hear.
    pub fn talk(&self, now: Instant) -> Talk {
        let mut heard = 0u8;
        for (i, v) in self.links.iter().enumerate().take(8) {
            if self.link_fresh(v, now) {
                heard |= 1 << i;
            }
        }
        Talk {
            epoch: self.mine.epoch,
            echo: self.peer_challenge,
            heard,
        }
    }

    /// Our current challenge.
    pub fn challenge(&self) -> Challenge {
        self.mine
    }

    /// (links up, links total) at `now` (up = heard both ways).
    pub fn links_up(&self, now: Instant) -> (usize, usize) {
        let up = (0..self.links.len())
            .filter(|&i| self.link_up(i, now))
            .count();
        (up, self.links.len())
    }

    pub fn link(&self, link: usize) -> Option<&LinkView> {
        self.links.get(link)
    }

    /// The last accepted packet (the peer's latest word about itself).
    pub fn last(&self) -> Option<&Heartbeat> {
        self.last.as_ref()
    }

    pub fn counters(&self) -> &DropCounters {
        &self.counters
    }

    /// The earliest time after `now` at which a link or the peer can time out: the event
    /// loop's wake-up for `next_event`. `None` when nothing is up.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.links
            .iter()
            .filter(|v| v.up)
            .filter_map(|v| v.last_valid)
            .map(|t| t + self.peer_timeout)
            .chain(self.grace_until)
            .min()
    }

    /// The next state change at `now` not yet reported, or `None`. Call until `None` after
    /// receiving packets and at every `next_deadline`. Order: links going down, links coming
    /// up, then the peer (restarted, alive, lost).
    pub fn next_event(&mut self, now: Instant) -> Option<Event> {
        if self.grace_until.is_some_and(|g| now >= g) {
            self.grace_until = None;
        }
        for i in 0..self.links.len() {
            let up = self.link_up(i, now);
            let view = &mut self.links[i];
            if view.up && !up {
                view.up = false;
                return Some(Event::LinkDown(i));
            }
        }
        for i in 0..self.links.len() {
            let up = self.link_up(i, now);
            let view = &mut self.links[i];
            if !view.up && up {
                view.up = true;
                return Some(Event::LinkUp(i));
            }
        }
        if self.restart_pending {
            self.restart_pending = false;
            return Some(Event::PeerRestarted);
        }
        let alive = self.alive(now);
        if alive != self.alive_reported {
            self.alive_reported = alive;
            if !alive {
                // A new challenge: nothing the peer sent before this moment can revive it.
                self.mine.epoch = self.mine.epoch.wrapping_add(1);
                self.revived = false;
                self.last_fresh = false;
            }
            return Some(if alive {
                Event::PeerAlive
            } else {
                Event::PeerLost
            });
        }
        None
    }
}
