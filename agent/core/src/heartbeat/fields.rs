//! What one packet says ([`Heartbeat`]) and the types of its fields: the sender's [`Role`],
//! [`State`] and Bitbucket [`Health`] (with their wire codes), the [`Flags`] the pair's
//! handshakes ride on, the sender's [`NodeName`], the run's [`BootId`] and the [`Challenge`].
//!
//! Must not: know the byte layout (that is `codec`'s) or judge a packet (`tracker`).

use super::MAX_NAME_BYTES;

/// The sender's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    None = 0,
    Standby = 1,
    Active = 2,
}

/// The sender's state (the SPEC's status `state` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Starting = 0,
    Running = 1,
    Correcting = 2,
    Holding = 3,
    Failed = 4,
    Maintenance = 5,
    Stopped = 6,
    Fencing = 7,
    TakingOver = 8,
    Releasing = 9,
}

/// The sender's view of its own Bitbucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Health {
    /// Not checked yet, or not running here (a standby).
    Unknown = 0,
    Healthy = 1,
    Starting = 2,
    Unhealthy = 3,
    Stopped = 4,
}

impl Role {
    pub(super) fn from_u8(v: u8) -> Option<Role> {
        Some(match v {
            0 => Role::None,
            1 => Role::Standby,
            2 => Role::Active,
            _ => return None,
        })
    }
}

impl State {
    pub(super) fn from_u8(v: u8) -> Option<State> {
        Some(match v {
            0 => State::Starting,
            1 => State::Running,
            2 => State::Correcting,
            3 => State::Holding,
            4 => State::Failed,
            5 => State::Maintenance,
            6 => State::Stopped,
            7 => State::Fencing,
            8 => State::TakingOver,
            9 => State::Releasing,
            _ => return None,
        })
    }
}

impl Health {
    pub(super) fn from_u8(v: u8) -> Option<Health> {
        Some(match v {
            0 => Health::Unknown,
            1 => Health::Healthy,
            2 => Health::Starting,
            3 => Health::Unhealthy,
            4 => Health::Stopped,
            _ => return None,
        })
    }
}

/// Flag bits of a heartbeat (the pair's handshakes ride on them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Flags(u16);

// The wire format defines every bit; this version sends SWITCHOVER_REQUEST (hand-over),
// RELEASING, HOLDS_VIP and PREFERRED_ACTIVE, and accepts all of them from a peer.
#[allow(dead_code)]
impl Flags {
    /// The sender intends to take over (it does not hear an active node, or it was asked to).
    pub const WANTS_TAKEOVER: Flags = Flags(1 << 0);
    /// The sender is releasing the service (VIP removed or being removed, Bitbucket stopping).
    pub const RELEASING: Flags = Flags(1 << 1);
    /// Switchover handshake: the active asks the standby to take over.
    pub const SWITCHOVER_REQUEST: Flags = Flags(1 << 2);
    /// Switchover handshake: the standby accepts (it is healthy and ready).
    pub const SWITCHOVER_ACCEPT: Flags = Flags(1 << 3);
    /// The sender holds the virtual IP.
    pub const HOLDS_VIP: Flags = Flags(1 << 4);
    /// The sender has `preferred_active = true`.
    pub const PREFERRED_ACTIVE: Flags = Flags(1 << 5);
    /// The sender is in maintenance (`bbwd maintenance on`): no failover.
    pub const MAINTENANCE: Flags = Flags(1 << 6);
    /// Every bit this version knows.
    pub const KNOWN: Flags = Flags((1 << 7) - 1);

    /// Every bit version 1 knows (a version-1 receiver rejects a packet with any other).
    pub const KNOWN_V1: Flags = Flags((1 << 7) - 1);

    pub const fn empty() -> Flags {
        Flags(0)
    }
    /// Only the bits a version-1 receiver accepts (for the compatibility copy).
    pub const fn v1(self) -> Flags {
        Flags(self.0 & Flags::KNOWN_V1.0)
    }
    pub const fn bits(self) -> u16 {
        self.0
    }
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
    /// `None` if `bits` has a bit this version does not know.
    pub const fn from_bits(bits: u16) -> Option<Flags> {
        if bits & !Flags::KNOWN.0 == 0 {
            Some(Flags(bits))
        } else {
            None
        }
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

/// A node name as carried in a packet: 1..=64 bytes of UTF-8, stored inline.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeName {
    pub(super) len: u8,
    pub(super) bytes: [u8; MAX_NAME_BYTES],
}

impl NodeName {
    /// `None` if `name` is empty or longer than [`MAX_NAME_BYTES`].
    pub fn new(name: &str) -> Option<NodeName> {
        let b = name.as_bytes();
        if b.is_empty() || b.len() > MAX_NAME_BYTES {
            return None;
        }
        let mut bytes = [0u8; MAX_NAME_BYTES];
        bytes[..b.len()].copy_from_slice(b);
        Some(NodeName {
            len: b.len() as u8,
            bytes,
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    pub fn as_str(&self) -> &str {
        // Only ever built from a `&str` or from bytes checked with `from_utf8`.
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }
}

impl std::fmt::Debug for NodeName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// The random id of one run of a node's bbwd.
pub type BootId = [u8; 16];

/// What one packet says; encoded by [`Key::encode`](super::Key::encode), returned by
/// [`Key::decode`](super::Key::decode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Heartbeat {
    pub name: NodeName,
    pub boot_id: BootId,
    pub sequence: u64,
    pub role: Role,
    pub state: State,
    pub health: Health,
    pub flags: Flags,
    /// The link this copy was sent on.
    pub link: u8,
    /// Sender's wall clock, ms since the Unix epoch (informational).
    pub wall_ms: u64,
    /// Wire version it came in (or goes out) as.
    pub version: u8,
    /// The sender's challenge epoch (v2; 0 in v1).
    pub epoch: u32,
    /// The receiver's challenge as the sender last heard it (v2; zeros in v1).
    pub echo: Challenge,
    /// Bit i: the sender hears the receiver on link i (v2; 0 in v1).
    pub heard: u8,
}

/// A node's challenge: its run's boot id and the epoch it bumps on every loss of the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Challenge {
    pub boot_id: BootId,
    pub epoch: u32,
}
