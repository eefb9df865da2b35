//! A pause of this node is not the peer's silence: when the node was not run for a while
//! (bbwd stopped by SIGSTOP, a VM or container frozen, the machine swapping, a long scheduling
//! stall), the heartbeats the peer sent meanwhile are still queued in the sockets, unread. Timing
//! the peer out on the first step after such a pause would take our own deafness for the peer's
//! death: the soak found an active node that, resumed after 12 s, fenced "at once" the standby
//! that was at that very moment fencing it (its priority delay ran out), and both nodes went
//! off.
//!
//! Owns: noticing the pause (a gap between two steps longer than [`PAUSE_BEATS`] heartbeat
//! intervals: the shell wakes at least once an interval, to send a heartbeat) and telling the
//! tracker how long it did not listen ([`PeerTracker::discount`]). The peer then gets the
//! `peer_timeout` of observation it would have had, and the queued heartbeats are read before
//! anything is judged.
//!
//! Must not: shorten anything or invent a heartbeat. The discount only delays a *loss* by at
//! most the pause; it never makes the peer fresh (consent still needs a packet that answers
//! this run's challenge), so no takeover or hand-over can rest on it. A peer that really died
//! during the pause is declared lost at most `peer_timeout` after the resume.
//!
//! [`PeerTracker::discount`]: crate::heartbeat::PeerTracker::discount

use std::time::Instant;

use super::Node;

/// Heartbeat intervals between two steps beyond which the node counts itself paused. Between
/// steps the shell sleeps at most one interval (the next heartbeat is due); two allows for a
/// late wake-up on a loaded machine without calling it a pause, and stays under the three
/// intervals `peer_timeout` must cover (timing rule R1).
pub const PAUSE_BEATS: u32 = 2;

impl Node {
    /// Called first in every step and receive: notes that the node runs at `now`, and if it had
    /// not run for more than [`PAUSE_BEATS`] intervals, discounts the time it could not listen
    /// (all of the gap but the one interval it may sleep) from the peer's silence.
    pub(super) fn note_awake(&mut self, now: Instant) {
        let Some(ps) = &mut self.pair else {
            return;
        };
        if let Some(before) = ps.awake_at {
            let gap = now.saturating_duration_since(before);
            if gap > ps.interval * PAUSE_BEATS {
                ps.tracker.discount(now, gap - ps.interval);
            }
        }
        ps.awake_at = Some(now);
    }
}
