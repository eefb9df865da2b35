//! Why a datagram was dropped ([`Reject`], one class per check that can fail, in the order of
//! the diagram in the module doc of [`super`]), and the receiver's counters of each class
//! ([`DropCounters`], for `bbwd status`).
//!
//! Must not: decide a class (the codec and the tracker do).

/// Why a datagram was dropped. Each class has a counter in [`DropCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Shorter than [`PACKET_BYTES`](super::PACKET_BYTES).
    Truncated,
    /// Longer than [`PACKET_BYTES`](super::PACKET_BYTES).
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
    pub(super) fn bump(&mut self, class: Reject) {
        let c = &mut self.counts[class as usize];
        *c = c.saturating_add(1);
    }
}
