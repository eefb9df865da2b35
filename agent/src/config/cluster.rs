//! `[cluster]` (pair mode): the peer, the heartbeat links, the shared key, and the durations of
//! failure detection.
//!
//! Owns: its keys, their defaults, and the rules within the section (one peer address per
//! listen address, link by link of the same IP family; the witness is an IP address). The
//! durations are recorded for the timing rules, which `timing.rs` checks.
//!
//! Must not: bind or send (`crate::hostcheck` checks the listen addresses are this node's), or
//! read the key's contents.

use std::net::IpAddr;
use std::time::Duration;

use bbwd_core::timing;
use toml::de::DeTable;

use super::fencing::DEFAULT_FENCE_TIMEOUT;
use super::node::check_name;
use super::walk::{Checker, Zero};
use super::Cluster;

pub(super) const CLUSTER_KEYS: &[&str] = &[
    "peer",
    "listen",
    "peer_addresses",
    "key_file",
    "heartbeat_interval",
    "peer_timeout",
    "preferred_active",
    "witness",
    "boot_wait",
    "fence_delay",
];

/// `[cluster] boot_wait` (SPEC): long enough for switches and the peer's bbwd to come up
/// after a power cut of both nodes, short beside a Bitbucket start.
pub(super) const DEFAULT_BOOT_WAIT: Duration = Duration::from_secs(30);

impl Checker<'_> {
    pub(super) fn cluster(&mut self, root: &DeTable<'_>) -> Option<Option<Cluster>> {
        let Some(sec) = self.section(root, "cluster", "cluster") else {
            return (!root.contains_key("cluster")).then_some(None);
        };
        self.unknown_keys(sec, CLUSTER_KEYS);
        let mut ok = true;
        let peer = match self.required_string(sec, "peer", "\"bb2\"") {
            Some((peer, span)) => match check_name(&peer) {
                Ok(()) => Some(peer),
                Err(why) => {
                    self.report(sec.key("peer"), Some(span.start), why);
                    None
                }
            },
            None => None,
        };
        let listen = self.socket_addrs(sec, "listen", "10.0.0.1:5405");
        let peer_addresses = self.socket_addrs(sec, "peer_addresses", "10.0.0.2:5405");
        if let (Some((listen, _)), Some((peers, peers_span))) = (&listen, &peer_addresses) {
            if listen.len() != peers.len() {
                self.report(
                    sec.key("peer_addresses"),
                    Some(peers_span.start),
                    format!(
                        "{} addresses but listen has {}: link i is listen[i] <-> peer_addresses[i], one pair per heartbeat link",
                        peers.len(),
                        listen.len()
                    ),
                );
                ok = false;
            } else {
                for (i, (l, p)) in listen.iter().zip(peers.iter()).enumerate() {
                    if l.is_ipv4() != p.is_ipv4() {
                        self.report(
                            sec.key("peer_addresses"),
                            Some(peers_span.start),
                            format!("link {}: {l} and {p} are not of the same IP family", i + 1),
                        );
                        ok = false;
                    }
                }
            }
        }
        let key_file = self.secret_file(sec, "key_file", "\"/etc/bbwd/cluster.key\"");
        // The relations between these (timing rules R1-R3) are checked in `timing_rules`.
        let heartbeat_interval =
            self.timed(sec, "heartbeat_interval", Duration::from_millis(200), |t| {
                &mut t.heartbeat_interval
            });
        let peer_timeout = self.timed(sec, "peer_timeout", Duration::from_secs(1), |t| {
            &mut t.peer_timeout
        });
        let boot_wait = self.timed(sec, "boot_wait", DEFAULT_BOOT_WAIT, |t| &mut t.boot_wait);
        // No default of its own: derived from fencing.timeout (already read) and peer_timeout.
        let fence_timeout = self.times.fence_timeout.unwrap_or(DEFAULT_FENCE_TIMEOUT);
        let derived = timing::default_fence_delay(fence_timeout, peer_timeout);
        let fence_delay = match sec.get("fence_delay") {
            None => {
                self.times.fence_delay = Some(None);
                derived
            }
            Some(_) => match self.duration(sec, "fence_delay", derived, Zero::Refused) {
                (d, Some(_)) => {
                    self.times.fence_delay = Some(Some(d));
                    d
                }
                (d, None) => d,
            },
        };
        let preferred_active = self.boolean(sec, "preferred_active", false);
        let witness = match self.string(sec, "witness") {
            Some((s, span)) => match s.parse::<IpAddr>() {
                Ok(ip) if !ip.is_unspecified() => Some(ip),
                _ => {
                    self.report(
                        sec.key("witness"),
                        Some(span.start),
                        format!("\"{s}\" is not an IP address (e.g. the router: witness = \"10.0.0.254\")"),
                    );
                    ok = false;
                    None
                }
            },
            None => {
                ok &= sec.get("witness").is_none();
                None
            }
        };
        if !ok {
            return None;
        }
        Some(Some(Cluster {
            peer: peer?,
            listen: listen?.0,
            peer_addresses: peer_addresses?.0,
            key_file: key_file?,
            heartbeat_interval,
            peer_timeout,
            preferred_active,
            witness,
            boot_wait,
            fence_delay,
        }))
    }
}
