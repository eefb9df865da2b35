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
//! # Invariants
//! * No allocation after construction: encode writes into the caller's buffer, decode reads
//!   from a slice into a value, the tracker's per-link table is sized once.
//! * Nothing here panics on any input bytes (fuzzed by the tests).
//! * A packet whose tag does not verify changes nothing but the drop counters (`unauthenticated`,
//!   and its link's `dropped`).
//! * A link's sequence never goes backwards within one boot id.
//!
//! # Where it is
//! The byte layout (*Packet layout*) is documented with the codec, in `codec`; the rules for
//! which run of the peer is followed and which packets are new (*Replay and staleness*) with
//! the code that applies them, in `replay`.
//!
//! * `fields`: what a packet says ([`Heartbeat`] and its field types: role, state, health, flags,
//!   node name, boot id, challenge).
//! * `codec`: the packet layout, the cluster [`Key`], encode and decode (authentication first).
//! * `reject`: why a datagram was dropped ([`Reject`]) and the drop counters.
//! * `sender`: the sending side ([`Sender`]: sequence numbers, what each packet carries).
//! * `tracker`: the receiving side ([`PeerTracker`]: links, liveness, consent, events).
//! * `replay`: the tracker's replay and staleness rules (which run of the peer to follow).

#![forbid(unsafe_code)]

mod codec;
mod fields;
mod reject;
mod replay;
mod sender;
mod tracker;

pub use codec::{Key, KeyError};
pub use fields::{BootId, Challenge, Flags, Health, Heartbeat, NodeName, Role, State};
pub use reject::{DropCounters, Reject};
pub use sender::{Local, Sender, Talk};
pub use tracker::{Event, LinkView, PeerTracker};

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

#[cfg(test)]
mod tests;
