//! What this node's heartbeats say: role, state, Bitbucket's health and the flags (hand-over,
//! releasing, preferred, VIP held, maintenance), recomputed after every step; a change goes
//! out at once, otherwise on the heartbeat schedule. Also which versions to send and the
//! encoding into the shell's buffer.
//!
//! Must not: send anything while the pair machine is silent (self-fenced).

use std::time::Instant;

use crate::heartbeat as hb;
use crate::machine;
use crate::pair::Role;

use super::{push, Action, Actions, Node};

impl Node {
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

    /// Recomputes what the heartbeats say; a change goes out at once, otherwise on schedule.
    pub(super) fn advertise(&mut self, now: Instant, out: &mut Actions) {
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
