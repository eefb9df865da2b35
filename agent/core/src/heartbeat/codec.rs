//! The wire format: the packet layout below, the cluster [`Key`] (the HMAC's key schedule done
//! once), [`Key::encode`] into the caller's buffer and [`Key::decode`] from a datagram.
//!
//! Decoding checks structure first, then the tag (constant time), and only then reads a field:
//! nothing of an unauthenticated packet is ever interpreted, and no input bytes make it panic.
//! Must not: judge who sent a packet or whether it is fresh (that is the tracker's), allocate,
//! or read the key file (the caller hands the bytes to [`Key::new`]).
//!
//! # Packet layout (integers big-endian)
//! Version 2 (168 bytes) is what this build sends; version 1 (144 bytes, bytes 0..108 the same,
//! then 4 reserved zero bytes and the tag at 112) is still accepted and, until the peer's current
//! run has been heard speaking version 2, also sent (see *Compatibility* in the module doc of
//! [`super`]).
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
//! | 76 | 16 | boot id | random per start of the sender's bbwd (see `replay`) |
//! | 92 | 8 | sequence | per packet, seeded from the sender's wall clock (see `replay`) |
//! | 100 | 8 | sender's wall clock | ms since the Unix epoch; informational only (skew in status) |
//! | 108 | 4 | sender's epoch | v2: bumped each time the sender declared the receiver lost |
//! | 112 | 16 | echoed boot id | v2: the receiver's boot id as the sender last accepted it (zeros: none yet) |
//! | 128 | 4 | echoed epoch | v2: the receiver's epoch as the sender last accepted it |
//! | 132 | 1 | links heard | v2: bit i = the sender heard the receiver on link i within `peer_timeout` |
//! | 133 | 3 | reserved | zero |
//! | 136 | 32 | tag | HMAC-SHA256 over bytes 0..136 (v1: over 0..112, tag at 112) |

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{
    Challenge, Heartbeat, NodeName, Reject, MAGIC, MAX_NAME_BYTES, MIN_KEY_BYTES, PACKET_BYTES,
    PACKET_BYTES_V1, VERSION, VERSION_V1,
};
use super::{Flags, Health, Role, State};

pub(super) const OFF_VERSION: usize = 4;
pub(super) const OFF_ROLE: usize = 5;
pub(super) const OFF_STATE: usize = 6;
pub(super) const OFF_HEALTH: usize = 7;
pub(super) const OFF_FLAGS: usize = 8;
pub(super) const OFF_LINK: usize = 10;
pub(super) const OFF_NAME_LEN: usize = 11;
pub(super) const OFF_NAME: usize = 12;
pub(super) const OFF_BOOT_ID: usize = OFF_NAME + MAX_NAME_BYTES; // 76
pub(super) const OFF_SEQUENCE: usize = OFF_BOOT_ID + 16; // 92
pub(super) const OFF_WALL_MS: usize = OFF_SEQUENCE + 8; // 100
pub(super) const OFF_RESERVED_V1: usize = OFF_WALL_MS + 8; // 108
pub(super) const OFF_TAG_V1: usize = OFF_RESERVED_V1 + 4; // 112
pub(super) const OFF_EPOCH: usize = OFF_WALL_MS + 8; // 108
pub(super) const OFF_ECHO_BOOT: usize = OFF_EPOCH + 4; // 112
pub(super) const OFF_ECHO_EPOCH: usize = OFF_ECHO_BOOT + 16; // 128
pub(super) const OFF_HEARD: usize = OFF_ECHO_EPOCH + 4; // 132
pub(super) const OFF_RESERVED: usize = OFF_HEARD + 1; // 133
pub(super) const OFF_TAG: usize = OFF_RESERVED + 3; // 136
pub(super) const TAG_BYTES: usize = 32;
const _: () = assert!(OFF_TAG + TAG_BYTES == PACKET_BYTES);
const _: () = assert!(OFF_TAG_V1 + TAG_BYTES == PACKET_BYTES_V1);

pub(super) type HmacSha256 = Hmac<Sha256>;

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
    /// whether it is fresh is [`PeerTracker::receive`](super::PeerTracker::receive)'s
    /// business.
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
        parse_authentic(bytes, version)
    }
}

/// Reads the fields of a datagram whose tag verified (`version` and length already checked).
/// Authentic from here on: anything odd is the sender's bug, not an attack (`Malformed`).
fn parse_authentic(bytes: &[u8], version: u8) -> Result<Heartbeat, Reject> {
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
