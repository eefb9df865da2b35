//! The heartbeat protocol between the two nodes of a pair: the packet codec (encode, decode,
//! HMAC-SHA256 authentication) and the receiver's bookkeeping ([`PeerTracker`]: which links
//! deliver, whether the peer is alive, why packets were dropped).
//!
//! Must not: do I/O or read a clock. Sockets are `bbwd_platform::heartbeat`; the key file is read
//! by the caller (`bbwd_platform::fs::read_secret_file`) and handed to [`Key::new`]; every time
//! is passed in.
//!
//! # Theory of operation
//! Every `heartbeat_interval` the node sends one packet on each link (link i = `listen[i]` ->
//! `peer_addresses[i]`). Each packet carries the sender's view of itself (role, state,
//! Bitbucket health, flags) and is authenticated with HMAC-SHA256 under the shared cluster key.
//! The receiver accepts a packet only if it is authentic, from the configured peer, sent on the
//! link it arrived on, and newer than anything already accepted on that link; anything else is
//! dropped and counted by class ([`Reject`]). The peer is alive while *any* link delivered a valid
//! packet within `peer_timeout`; each link is up while *it* did. Losing one link is an event,
//! not peer loss.
//!
//! ```text
//!  datagram ─ length ─ magic ─ version ─ HMAC ─ fields ─ names ─ link ─ epoch/sequence ─> accepted
//!               │        │        │        │       │        │       │          │
//!           Truncated BadMagic BadVersion Unauth Malformed FromSelf WrongLink Replayed
//!           Oversized                                      WrongPeer           Stale
//! ```
//! The cheap structural checks come first, then the tag (constant-time, `verify_slice`): no field
//! of an unauthenticated packet is ever interpreted.
//!
//! # Packet layout (integers big-endian)
//! Version 2 (168 bytes) is what this build sends; version 1 (144 bytes, bytes 0..108 the same,
//! then 4 reserved zero bytes and the tag at 112) is still accepted and, until the peer's current
//! run has been heard speaking version 2, also sent (see *Compatibility*).
//!
//! | offset | bytes | field | notes |
//! |---:|---:|---|---|
//! | 0 | 4 | magic | `b"BBHB"` |
//! | 4 | 1 | version | 2 (1 for the compatibility copy) |
//! | 5 | 1 | role | [`Role`]: 0 none, 1 standby, 2 active |
//! | 6 | 1 | state | [`State`] code (the SPEC's `state` names) |
//! | 7 | 1 | Bitbucket health | [`Health`] code |
//! | 8 | 2 | flags | [`Flags`]; unknown bits are rejected (a new meaning needs a new version) |
//! | 10 | 1 | link | index of the link the sender sent this copy on |
//! | 11 | 1 | name length | 1..=64 |
//! | 12 | 64 | sender's node name | UTF-8, zero-padded |
//! | 76 | 16 | boot id | random per start of the sender's bbwd (see below) |
//! | 92 | 8 | sequence | per packet, seeded from the sender's wall clock (see below) |
//! | 100 | 8 | sender's wall clock | ms since the Unix epoch; informational only (skew in status) |
//! | 108 | 4 | sender's epoch | v2: bumped each time the sender declared the receiver lost |
//! | 112 | 16 | echoed boot id | v2: the receiver's boot id as the sender last accepted it (zeros: none yet) |
//! | 128 | 4 | echoed epoch | v2: the receiver's epoch as the sender last accepted it |
//! | 132 | 1 | links heard | v2: bit i = the sender heard the receiver on link i within `peer_timeout` |
//! | 133 | 3 | reserved | zero |
//! | 136 | 32 | tag | HMAC-SHA256 over bytes 0..136 (v1: over 0..112, tag at 112) |
//!
//! # Freshness: the receiver's challenge (version 2)
//! Sequence numbers stop a replay *within* one run of the receiver, but a receiver that restarted
//! (or that has declared the peer lost) has no history that an old packet could be checked
//! against. So every packet carries the sender's **challenge** — its boot id and an epoch it
//! bumps whenever it declares the peer lost — and echoes the peer's latest challenge. A packet is
//! **fresh** for the receiver when it echoes the receiver's *current* boot id and epoch: it was
//! sent after the sender heard this run of the receiver since its last loss, so no capture of an
//! earlier exchange can be fresh. The tracker:
//! * counts the peer alive again after a loss (or at start) only on a fresh packet
//!   ([`PeerTracker::alive`]);
//! * gives **consent** ([`PeerTracker::consent`]: the peer's word that it does not serve, or
//!   that it handed the service over) only from a fresh version-2 packet. A version-1 packet
//!   never gives consent: it has no challenge.
//!
//! # Symmetric links (version 2)
//! Each packet says which links the sender hears the receiver on. A link counts as up only if
//! the receiver hears the peer on it *and* the peer says it hears the receiver on it, so both
//! sides see the same link state: with every link lost in one direction, neither side counts the
//! peer alive, and the fence race is the ordinary one (the node holding the service fences at
//! once) rather than the deaf side fencing a healthy active node while it is being heard.
//!
//! # Compatibility (rolling upgrade)
//! A version-2 node accepts version 1 for liveness and role (never for consent, never as fresh),
//! and sends a version-1 copy next to each version-2 packet until it has accepted a version-2
//! packet from the peer's current run. A version-1 node drops the version-2 copies (counted as
//! `bad_version`) and keeps hearing the version-1 ones. So one upgrade step (one node new, one
//! old) never looks like a dead peer; what it loses is consent (a cold start or hand-over
//! waits, or fences, until both speak version 2). The rule, kept for the next version: a
//! receiver speaks the previous version too, a sender sends the previous version's copy until
//! the peer is heard speaking the new one.
//!
//! # Replay and staleness
//! * **Boot id = 16 random bytes per start of bbwd** (not the kernel's `boot_id`). bbwd is
//!   restarted within one kernel boot (upgrade, crash, `Restart=always`); with the kernel's id the
//!   new run would have to continue the old run's sequence, which needs persisted state. A random
//!   id per run names each run's packet stream; the caller draws it
//!   (`bbwd_platform::heartbeat::random_boot_id`).
//! * **Sequence**: the sender numbers every packet it sends (one counter across all links, so
//!   each copy is distinct) starting from its wall clock in microseconds at start. Sequences
//!   therefore keep growing across restarts and reboots of the sender as long as its clock does
//!   not step back by more than the gap between runs.
//! * **Same boot id**: a packet is accepted on link i only if its sequence is greater than the
//!   last one accepted on link i (links are independent, so reordering between links is not a
//!   replay); otherwise `Replayed`. The link index is inside the authenticated bytes, so a packet
//!   captured on one link and injected into another is `WrongLink`, not a fresh packet.
//! * **A new boot id** (the peer's bbwd restarted) is accepted, and replaces the current run,
//!   when its sequence is greater than every sequence seen from the current run (it started
//!   later by the sender's clock). A boot id among the last [`RETIRED_BOOT_IDS`] replaced ones
//!   is always `Stale`. Any other boot id with a lower sequence is `Stale` while the current
//!   run is live, and is accepted once the peer has been silent for `peer_timeout` (the peer is
//!   dead to us anyway): that is how a peer whose clock stepped back (a wrong RTC at boot before
//!   NTP) pairs again. The residual risk, accepted: after the peer went silent, a capture of a
//!   run older than the last [`RETIRED_BOOT_IDS`] runs replays as alive until it runs out. A
//!   receiver that restarts starts with no history and accepts the first run it hears.
//!
//! # Invariants
//! * No allocation after construction: encode writes into the caller's buffer, decode reads
//!   from a slice into a value, the tracker's per-link table is sized once.
//! * Nothing here panics on any input bytes (fuzzed by the tests).
//! * A packet whose tag does not verify changes nothing but the drop counters (`unauthenticated`,
//!   and its link's `dropped`).
//! * A link's sequence never goes backwards within one boot id.

#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Size of a version-2 packet, bytes: the largest this build sends (buffers are this size).
pub const PACKET_BYTES: usize = 168;
/// Size of a version-1 packet, bytes (accepted, and sent as the compatibility copy).
pub const PACKET_BYTES_V1: usize = 144;
/// Receive buffers must be larger than a packet so that an oversized datagram is seen as such
/// (the kernel truncates a datagram to the buffer), bytes.
pub const RECV_BUFFER_BYTES: usize = 512;
/// `b"BBHB"`.
pub const MAGIC: [u8; 4] = *b"BBHB";
/// Wire format version this code sends.
pub const VERSION: u8 = 2;
/// The previous version, still accepted and sent as a compatibility copy.
pub const VERSION_V1: u8 = 1;
/// Longest node name, bytes (the config's limit, HOST_NAME_MAX).
pub const MAX_NAME_BYTES: usize = 64;
/// Shortest accepted cluster key, bytes: 128 bits. `openssl rand -hex 32 > cluster.key` makes
/// a good one.
pub const MIN_KEY_BYTES: usize = 16;
/// How many replaced boot ids of the peer the tracker remembers (and refuses).
pub const RETIRED_BOOT_IDS: usize = 8;

const OFF_VERSION: usize = 4;
const OFF_ROLE: usize = 5;
const OFF_STATE: usize = 6;
const OFF_HEALTH: usize = 7;
const OFF_FLAGS: usize = 8;
const OFF_LINK: usize = 10;
const OFF_NAME_LEN: usize = 11;
const OFF_NAME: usize = 12;
const OFF_BOOT_ID: usize = OFF_NAME + MAX_NAME_BYTES; // 76
const OFF_SEQUENCE: usize = OFF_BOOT_ID + 16; // 92
const OFF_WALL_MS: usize = OFF_SEQUENCE + 8; // 100
const OFF_RESERVED_V1: usize = OFF_WALL_MS + 8; // 108
const OFF_TAG_V1: usize = OFF_RESERVED_V1 + 4; // 112
const OFF_EPOCH: usize = OFF_WALL_MS + 8; // 108
const OFF_ECHO_BOOT: usize = OFF_EPOCH + 4; // 112
const OFF_ECHO_EPOCH: usize = OFF_ECHO_BOOT + 16; // 128
const OFF_HEARD: usize = OFF_ECHO_EPOCH + 4; // 132
const OFF_RESERVED: usize = OFF_HEARD + 1; // 133
const OFF_TAG: usize = OFF_RESERVED + 3; // 136
const TAG_BYTES: usize = 32;
const _: () = assert!(OFF_TAG + TAG_BYTES == PACKET_BYTES);
const _: () = assert!(OFF_TAG_V1 + TAG_BYTES == PACKET_BYTES_V1);

type HmacSha256 = Hmac<Sha256>;

// ---------------------------------------------------------------------------------------------
// Field types

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
    fn from_u8(v: u8) -> Option<Role> {
        Some(match v {
            0 => Role::None,
            1 => Role::Standby,
            2 => Role::Active,
            _ => return None,
        })
    }
}

impl State {
    fn from_u8(v: u8) -> Option<State> {
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
    fn from_u8(v: u8) -> Option<Health> {
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
    len: u8,
    bytes: [u8; MAX_NAME_BYTES],
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

/// What one packet says; encoded by [`Key::encode`], returned by [`Key::decode`].
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

// ---------------------------------------------------------------------------------------------
// Errors

/// Why a datagram was dropped. Each class has a counter in [`DropCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Shorter than [`PACKET_BYTES`].
    Truncated,
    /// Longer than [`PACKET_BYTES`].
    Oversized,
    /// Not a bbwd heartbeat.
    BadMagic,
    /// A bbwd heartbeat of a version this build does not speak.
    BadVersion,
    /// The tag does not verify: forged, corrupted, or another key.
    Unauthenticated,
    /// Authentic but not well formed (unknown code or flag, bad name, non-zero reserved bytes).
    Malformed,
    /// Our own name: a loop or a reflection.
    FromSelf,
    /// Another node's name than the configured peer (a third node sharing the key).
    WrongPeer,
    /// Sent on another link than the one it arrived on (crossed cabling, or injected).
    WrongLink,
    /// Not newer than the last packet accepted on this link from the same run.
    Replayed,
    /// From an earlier run of the peer's bbwd than the one we follow.
    Stale,
}

impl Reject {
    pub const ALL: [Reject; 11] = [
        Reject::Truncated,
        Reject::Oversized,
        Reject::BadMagic,
        Reject::BadVersion,
        Reject::Unauthenticated,
        Reject::Malformed,
        Reject::FromSelf,
        Reject::WrongPeer,
        Reject::WrongLink,
        Reject::Replayed,
        Reject::Stale,
    ];

    /// Short name for status output and logs (`snake_case`).
    pub fn name(self) -> &'static str {
        match self {
            Reject::Truncated => "truncated",
            Reject::Oversized => "oversized",
            Reject::BadMagic => "bad_magic",
            Reject::BadVersion => "bad_version",
            Reject::Unauthenticated => "unauthenticated",
            Reject::Malformed => "malformed",
            Reject::FromSelf => "from_self",
            Reject::WrongPeer => "wrong_peer",
            Reject::WrongLink => "wrong_link",
            Reject::Replayed => "replayed",
            Reject::Stale => "stale",
        }
    }
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A key file that cannot be a cluster key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// Fewer than [`MIN_KEY_BYTES`] bytes (after the trailing newline is trimmed).
    TooShort { bytes: usize },
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyError::TooShort { bytes } => write!(
                f,
                "cluster key is {bytes} bytes; at least {MIN_KEY_BYTES} are needed \
                 (e.g. `openssl rand -hex 32`, the same file on both nodes)"
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The codec

/// The cluster key, ready to sign and verify (the HMAC's key schedule is done once here).
#[derive(Clone)]
pub struct Key {
    mac: HmacSha256,
}

/// The key is the same for the whole life of a node: it adds nothing to a state's identity (the
/// model checker hashes nodes).
impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(a)
}

fn be_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

impl Key {
    /// `bytes` = the content of `[cluster] key_file` (as `read_secret_file` returns it).
    pub fn new(bytes: &[u8]) -> Result<Key, KeyError> {
        if bytes.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort { bytes: bytes.len() });
        }
        // HMAC accepts keys of any length: this cannot fail.
        let mac = HmacSha256::new_from_slice(bytes)
            .map_err(|_| KeyError::TooShort { bytes: bytes.len() })?;
        Ok(Key { mac })
    }

    /// Writes `hb` as a signed packet of version `hb.version` (1 or 2; anything else is sent as
    /// 2) into `buf`; returns its length. A version-1 packet carries only v1 flag bits.
    pub fn encode(&self, hb: &Heartbeat, buf: &mut [u8; PACKET_BYTES]) -> usize {
        let v1 = hb.version == VERSION_V1;
        buf[..4].copy_from_slice(&MAGIC);
        buf[OFF_VERSION] = if v1 { VERSION_V1 } else { VERSION };
        buf[OFF_ROLE] = hb.role as u8;
        buf[OFF_STATE] = hb.state as u8;
        buf[OFF_HEALTH] = hb.health as u8;
        buf[OFF_FLAGS..OFF_FLAGS + 2].copy_from_slice(&hb.flags.bits().to_be_bytes());
        buf[OFF_LINK] = hb.link;
        buf[OFF_NAME_LEN] = hb.name.len;
        buf[OFF_NAME..OFF_BOOT_ID].copy_from_slice(&hb.name.bytes);
        buf[OFF_BOOT_ID..OFF_SEQUENCE].copy_from_slice(&hb.boot_id);
        buf[OFF_SEQUENCE..OFF_WALL_MS].copy_from_slice(&hb.sequence.to_be_bytes());
        buf[OFF_WALL_MS..OFF_WALL_MS + 8].copy_from_slice(&hb.wall_ms.to_be_bytes());
        let tag_at = if v1 {
            buf[OFF_RESERVED_V1..OFF_TAG_V1].fill(0);
            OFF_TAG_V1
        } else {
            buf[OFF_EPOCH..OFF_ECHO_BOOT].copy_from_slice(&hb.epoch.to_be_bytes());
            buf[OFF_ECHO_BOOT..OFF_ECHO_EPOCH].copy_from_slice(&hb.echo.boot_id);
            buf[OFF_ECHO_EPOCH..OFF_HEARD].copy_from_slice(&hb.echo.epoch.to_be_bytes());
            buf[OFF_HEARD] = hb.heard;
            buf[OFF_RESERVED..OFF_TAG].fill(0);
            OFF_TAG
        };
        let tag = self
            .mac
            .clone()
            .chain_update(&buf[..tag_at])
            .finalize()
            .into_bytes();
        buf[tag_at..tag_at + TAG_BYTES].copy_from_slice(&tag);
        tag_at + TAG_BYTES
    }

    /// Checks and parses one datagram. Only structure and authenticity: who sent it and
    /// whether it is fresh is [`PeerTracker::receive`]'s business.
    pub fn decode(&self, bytes: &[u8]) -> Result<Heartbeat, Reject> {
        if bytes.len() < PACKET_BYTES_V1 {
            return Err(Reject::Truncated);
        }
        if bytes.len() > PACKET_BYTES {
            return Err(Reject::Oversized);
        }
        if bytes[..4] != MAGIC {
            return Err(Reject::BadMagic);
        }
        let (version, size, tag_at) = match bytes[OFF_VERSION] {
            VERSION_V1 => (VERSION_V1, PACKET_BYTES_V1, OFF_TAG_V1),
            VERSION => (VERSION, PACKET_BYTES, OFF_TAG),
            _ => return Err(Reject::BadVersion),
        };
        if bytes.len() < size {
            return Err(Reject::Truncated);
        }
        if bytes.len() > size {
            return Err(Reject::Oversized);
        }
        self.mac
            .clone()
            .chain_update(&bytes[..tag_at])
            .verify_slice(&bytes[tag_at..])
            .map_err(|_| Reject::Unauthenticated)?;

        // Authentic from here on; anything odd is the sender's bug, not an attack.
        let role = Role::from_u8(bytes[OFF_ROLE]).ok_or(Reject::Malformed)?;
        let state = State::from_u8(bytes[OFF_STATE]).ok_or(Reject::Malformed)?;
        let health = Health::from_u8(bytes[OFF_HEALTH]).ok_or(Reject::Malformed)?;
        let flags = Flags::from_bits(u16::from_be_bytes([bytes[OFF_FLAGS], bytes[OFF_FLAGS + 1]]))
            .ok_or(Reject::Malformed)?;
        let name_len = usize::from(bytes[OFF_NAME_LEN]);
        if name_len == 0 || name_len > MAX_NAME_BYTES {
            return Err(Reject::Malformed);
        }
        let name_field = &bytes[OFF_NAME..OFF_BOOT_ID];
        if name_field[name_len..].iter().any(|&b| b != 0) {
            return Err(Reject::Malformed);
        }
        if std::str::from_utf8(&name_field[..name_len]).is_err() {
            return Err(Reject::Malformed);
        }
        let reserved = if version == VERSION_V1 {
            &bytes[OFF_RESERVED_V1..OFF_TAG_V1]
        } else {
            &bytes[OFF_RESERVED..OFF_TAG]
        };
        if reserved.iter().any(|&b| b != 0) {
            return Err(Reject::Malformed);
        }
        let mut name = NodeName {
            len: name_len as u8,
            bytes: [0; MAX_NAME_BYTES],
        };
        name.bytes.copy_from_slice(name_field);
        let mut boot_id = [0u8; 16];
        boot_id.copy_from_slice(&bytes[OFF_BOOT_ID..OFF_SEQUENCE]);
        Ok(Heartbeat {
            name,
            boot_id,
            sequence: be_u64(bytes, OFF_SEQUENCE),
            role,
            state,
            health,
            flags,
            link: bytes[OFF_LINK],
            wall_ms: be_u64(bytes, OFF_WALL_MS),
            version,
            epoch: if version == VERSION_V1 {
                0
            } else {
                be_u32(bytes, OFF_EPOCH)
            },
            echo: if version == VERSION_V1 {
                Challenge::default()
            } else {
                let mut boot_id = [0u8; 16];
                boot_id.copy_from_slice(&bytes[OFF_ECHO_BOOT..OFF_ECHO_EPOCH]);
                Challenge {
                    boot_id,
                    epoch: be_u32(bytes, OFF_ECHO_EPOCH),
                }
            },
            heard: if version == VERSION_V1 {
                0
            } else {
                bytes[OFF_HEARD]
            },
        })
    }
}

/// What the sender says about itself in the next packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Local {
    pub role: Role,
    pub state: State,
    pub health: Health,
    pub flags: Flags,
}

/// What the receiving side adds to each packet the sender sends (version 2): our challenge, the
/// peer's echoed, and the links we hear the peer on. From [`PeerTracker::talk`].
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
    /// `first_sequence`: the wall clock in microseconds at start (see the module doc: sequences
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
    /// ([`VERSION`], or [`VERSION_V1`] for the compatibility copy, which carries only the v1
    /// flags); returns its length.
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

// ---------------------------------------------------------------------------------------------
// The receiver

/// Drop counters, one per [`Reject`] class, plus accepted packets (for `bbwd status`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct DropCounters {
    pub accepted: u64,
    counts: [u64; Reject::ALL.len()],
}

impl DropCounters {
    pub fn get(&self, class: Reject) -> u64 {
        self.counts[class as usize]
    }
    /// Sum of every drop class.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn dropped(&self) -> u64 {
        self.counts.iter().sum()
    }
    fn bump(&mut self, class: Reject) {
        let c = &mut self.counts[class as usize];
        *c = c.saturating_add(1);
    }
}

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
    last_sequence: Option<u64>,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Epoch {
    boot_id: BootId,
    max_sequence: u64,
}

/// The receiving side: per-link and overall state of the peer.
///
/// # Invariants
/// * `links.len()` is fixed at construction; no allocation afterwards.
/// * `alive_reported` / `LinkView::up` change only in `next_event`, so each change is reported
///   exactly once.
#[derive(Debug, Clone, Hash)]
pub struct PeerTracker {
    key: Key,
    me: NodeName,
    /// Our challenge: this run's boot id, and the epoch bumped at every loss of the peer.
    mine: Challenge,
    /// The peer's current run has sent version 2.
    peer_v2: bool,
    /// The peer's latest challenge (echoed in our packets).
    peer_challenge: Challenge,
    /// Links the peer says it hears us on (version 2; all for a version-1 peer).
    peer_hears: u8,
    /// The latest version-2 packet echoed our current challenge.
    last_fresh: bool,
    /// A fresh packet (or, from a version-1 peer, any packet) arrived since the last loss.
    revived: bool,
    peer: NodeName,
    peer_timeout: Duration,
    links: Vec<LinkView>,
    epoch: Option<Epoch>,
    retired: [BootId; RETIRED_BOOT_IDS],
    retired_len: usize,
    retired_next: usize,
    last_valid: Option<Instant>,
    last: Option<Heartbeat>,
    counters: DropCounters,
    alive_reported: bool,
    restart_pending: bool,
}

impl PeerTracker {
    /// `my_boot_id`: this run's boot id (the one our [`Sender`] sends), the base of our
    /// challenge. Links: at most 8 (one bit each in `links heard`).
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

    fn check(&mut self, now: Instant, link: usize, bytes: &[u8]) -> Result<Heartbeat, Reject> {
        let hb = self.key.decode(bytes)?;
        if hb.name == self.me {
            return Err(Reject::FromSelf);
        }
        if hb.name != self.peer {
            return Err(Reject::WrongPeer);
        }
        if usize::from(hb.link) != link || link >= self.links.len() {
            return Err(Reject::WrongLink);
        }
        match self.epoch {
            Some(ref mut epoch) if epoch.boot_id == hb.boot_id => {
                let view = &self.links[link];
                if view.last_sequence.is_some_and(|last| hb.sequence <= last) {
                    return Err(Reject::Replayed);
                }
                epoch.max_sequence = epoch.max_sequence.max(hb.sequence);
            }
            Some(epoch) => {
                if self.retired[..self.retired_len].contains(&hb.boot_id) {
                    return Err(Reject::Stale);
                }
                let newer = hb.sequence > epoch.max_sequence;
                let silent = self
                    .last_valid
                    .is_none_or(|t| now.saturating_duration_since(t) >= self.peer_timeout);
                if !newer && !silent {
                    return Err(Reject::Stale);
                }
                self.retired[self.retired_next] = epoch.boot_id;
                self.retired_next = (self.retired_next + 1) % RETIRED_BOOT_IDS;
                self.retired_len = (self.retired_len + 1).min(RETIRED_BOOT_IDS);
                self.new_epoch(&hb);
                self.restart_pending = true;
            }
            None => self.new_epoch(&hb),
        }
        Ok(hb)
    }

    fn new_epoch(&mut self, hb: &Heartbeat) {
        self.epoch = Some(Epoch {
            boot_id: hb.boot_id,
            max_sequence: hb.sequence,
        });
        for view in &mut self.links {
            view.last_sequence = None;
        }
        // A new run of the peer: nothing it said before is consent; its version is learnt
        // anew. A run that replaced a live one (a bbwd restart, an upgrade's re-exec) stays
        // alive while it has not yet answered our challenge: it is genuine (authenticated,
        // and newer than anything the old run sent, or it would be `Stale`), so the peer does
        // not look lost for the round trip its first answer takes; only consent waits for it.
        let was_alive = self.alive_reported;
        self.peer_v2 = false;
        self.peer_challenge = Challenge::default();
        self.last_fresh = false;
        if !was_alive {
            self.peer_hears = 0;
            self.revived = false;
        }
    }

    fn link_fresh(&self, view: &LinkView, now: Instant) -> bool {
        view.last_valid
            .is_some_and(|t| now.saturating_duration_since(t) < self.peer_timeout)
    }

    /// Link `i` is up: heard within `peer_timeout` of `now`, and the peer hears us on it.
    fn link_up(&self, i: usize, now: Instant) -> bool {
        self.link_fresh(&self.links[i], now) && self.peer_hears & (1u8 << (i & 7)) != 0
    }

    /// The peer is alive: some link is up both ways, and a fresh packet has arrived since the
    /// last loss (see *Freshness*).
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
            .min()
    }

    /// The next state change at `now` not yet reported, or `None`. Call until `None` after
    /// receiving packets and at every `next_deadline`. Order: links going down, links coming
    /// up, then the peer (restarted, alive, lost).
    pub fn next_event(&mut self, now: Instant) -> Option<Event> {
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

#[cfg(test)]
mod tests;
