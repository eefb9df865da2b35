//! The tracker's replay and staleness rules: which run of the peer it follows, and which packets
//! of that run are new (per link). `Replayed` and `Stale` are decided here; a new run that
//! replaces the current one is remembered as retired and refused for good.
//!
//! Must not: let a link's sequence go backwards within one boot id, or accept a retired boot id.
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

use std::time::Instant;

use super::{BootId, Challenge, Heartbeat, PeerTracker, Reject, RETIRED_BOOT_IDS};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Epoch {
    pub(super) boot_id: BootId,
    pub(super) max_sequence: u64,
}

impl PeerTracker {
    pub(super) fn check(
        &mut self,
        now: Instant,
        link: usize,
        bytes: &[u8],
    ) -> Result<Heartbeat, Reject> {
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
}
