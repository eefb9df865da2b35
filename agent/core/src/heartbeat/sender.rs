//! The sending side: [`Sender`] numbers every packet (one counter across all links, seeded from
//! the wall clock at start) and encodes what this node says about itself ([`Local`]) with what
//! the receiving side adds ([`Talk`]: our challenge, the peer's echoed, the links we hear).
//!
//! Must not: send (the shell does, with the bytes `encode` wrote), or decide what to advertise
//! (the node does).

use super::{
    BootId, Challenge, Flags, Health, Heartbeat, Key, NodeName, Role, State, PACKET_BYTES,
};

/// What the sender says about itself in the next packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Local {
    pub role: Role,
    pub state: State,
    pub health: Health,
    pub flags: Flags,
}

/// What the receiving side adds to each packet the sender sends (version 2): our challenge, the
/// peer's echoed, and the links we hear the peer on. From
/// [`PeerTracker::talk`](super::PeerTracker::talk).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Talk {
    pub epoch: u32,
    pub echo: Challenge,
    pub heard: u8,
}

/// The sending side: our name, this run's boot id and the sequence counter.
#[derive(Debug, Clone, Hash)]
pub struct Sender {
    key: Key,
    name: NodeName,
    boot_id: BootId,
    next_sequence: u64,
}

impl Sender {
    /// `first_sequence`: the wall clock in microseconds at start (see `replay`: sequences
    /// grow across restarts of the sender). `boot_id`: random, drawn once per start.
    pub fn new(key: Key, name: NodeName, boot_id: BootId, first_sequence: u64) -> Sender {
        Sender {
            key,
            name,
            boot_id,
            next_sequence: first_sequence,
        }
    }

    #[cfg_attr(not(test), allow(dead_code))]
    pub fn boot_id(&self) -> BootId {
        self.boot_id
    }

    /// Encodes the next packet for `link` into `buf` (a fresh sequence per call) as `version`
    /// ([`VERSION`](super::VERSION), or [`VERSION_V1`](super::VERSION_V1) for the
    /// compatibility copy, which carries only the v1 flags); returns its length.
    pub fn encode(
        &mut self,
        local: &Local,
        talk: &Talk,
        link: u8,
        wall_ms: u64,
        version: u8,
        buf: &mut [u8; PACKET_BYTES],
    ) -> usize {
        let sequence = self.next_sequence;
        self.next_sequence = self.next_sequence.saturating_add(1);
        let hb = Heartbeat {
            name: self.name,
            boot_id: self.boot_id,
            sequence,
            role: local.role,
            state: local.state,
            health: local.health,
            flags: local.flags,
            link,
            wall_ms,
            version,
            epoch: talk.epoch,
            echo: talk.echo,
            heard: talk.heard,
        };
        self.key.encode(&hb, buf)
    }
}
