//! `[cluster]` (pair mode): the peer, the heartbeat links, the shared key, and the durations of
//! failure detection.
//!
//! Owns: its keys, their defaults, and the rules within the section (one peer address per
//! listen address, link by link of the same IP family; the witness is an IP address). The
//! durations are recorded for the timing rules, which `timing.rs` checks.
//!
//! Must not: bind or send (`crate::hostcheck` checks the listen addresses are this node's), or
//! read the key's contents.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bbwd_core::timing;
use toml::de::DeTable;

use super::fencing::DEFAULT_FENCE_TIMEOUT;
use super::node::check_name;
use super::values::Zero;
use super::walk::{Checker, Sec};
use super::Cluster;

pub(super) const KEYS: &[&str] = &[
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

/// `heartbeat_interval`: between two heartbeats on each link.
const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(200);
/// `peer_timeout`: silence on every link before the peer counts as gone (R1: at least three
/// heartbeats).
const DEFAULT_PEER_TIMEOUT: Duration = Duration::from_secs(1);
/// `boot_wait` (SPEC): long enough for switches and the peer's bbwd to come up after a power
/// cut of both nodes, short beside a Bitbucket start.
const DEFAULT_BOOT_WAIT: Duration = Duration::from_secs(30);

/// The durations of `[cluster]`.
struct Durations {
    heartbeat_interval: Duration,
    peer_timeout: Duration,
    boot_wait: Duration,
    fence_delay: Duration,
}

impl Checker<'_> {
    /// `[cluster]`: `Some(None)` when not written; `None`: invalid (reported).
    pub(super) fn cluster(&mut self, root: &DeTable<'_>) -> Option<Option<Cluster>> {
        let Some(sec) = self.section(root, "cluster", "cluster") else {
            return (!root.contains_key("cluster")).then_some(None);
        };
        self.unknown_keys(sec, KEYS);
        let peer = self.required(sec, "peer", "\"bb2\"", |peer| {
            check_name(peer).map(|()| peer.to_string())
        });
        let links = self.links(sec);
        let key_file = self.secret_file(sec, "key_file", "\"/etc/bbwd/cluster.key\"");
        let times = self.cluster_durations(sec);
        let preferred_active = self.boolean(sec, "preferred_active", false);
        let witness = self.parsed(sec, "witness", None, |s| match s.parse::<IpAddr>() {
            Ok(ip) if !ip.is_unspecified() => Ok(Some(ip)),
            _ => Err(format!(
                "\"{s}\" is not an IP address (e.g. the router: witness = \"10.0.0.254\")"
            )),
        });
        let (listen, peer_addresses) = links?;
        Some(Some(Cluster {
            peer: peer?,
            listen,
            peer_addresses,
            key_file: key_file?,
            heartbeat_interval: times.heartbeat_interval,
            peer_timeout: times.peer_timeout,
            preferred_active,
            witness: witness?,
            boot_wait: times.boot_wait,
            fence_delay: times.fence_delay,
        }))
    }

    /// `listen` and `peer_addresses`: link i is listen[i] <-> peer_addresses[i], so as many of
    /// each, and link by link of the same IP family. `None`: wrong (reported).
    fn links(&mut self, sec: Sec<'_, '_>) -> Option<(Vec<SocketAddr>, Vec<SocketAddr>)> {
        let listen = self.socket_addrs(sec, "listen", "10.0.0.1:5405");
        let peers = self.socket_addrs(sec, "peer_addresses", "10.0.0.2:5405");
        let ((listen, _), (peers, peers_span)) = (listen?, peers?);
        let at = Some(peers_span.start);
        if listen.len() != peers.len() {
            let message = format!(
                "{} addresses but listen has {}: link i is listen[i] <-> peer_addresses[i], one pair per heartbeat link",
                peers.len(),
                listen.len()
            );
            self.report(sec.key("peer_addresses"), at, message);
            return None;
        }
        let mut ok = true;
        for (i, (l, p)) in listen.iter().zip(peers.iter()).enumerate() {
            if l.is_ipv4() != p.is_ipv4() {
                let message = format!("link {}: {l} and {p} are not of the same IP family", i + 1);
                self.report(sec.key("peer_addresses"), at, message);
                ok = false;
            }
        }
        ok.then_some((listen, peers))
    }

    /// The durations, each recorded for the timing rules R1-R3 (checked in `timing.rs`, not
    /// here). A wrong one is reported and its default stands in.
    fn cluster_durations(&mut self, sec: Sec<'_, '_>) -> Durations {
        let heartbeat_interval =
            self.timed(sec, "heartbeat_interval", DEFAULT_HEARTBEAT_INTERVAL, |t| {
                &mut t.heartbeat_interval
            });
        let peer_timeout = self.timed(sec, "peer_timeout", DEFAULT_PEER_TIMEOUT, |t| {
            &mut t.peer_timeout
        });
        let boot_wait = self.timed(sec, "boot_wait", DEFAULT_BOOT_WAIT, |t| &mut t.boot_wait);
        let fence_delay = self.fence_delay(sec, peer_timeout);
        Durations {
            heartbeat_interval,
            peer_timeout,
            boot_wait,
            fence_delay,
        }
    }

    /// `fence_delay`: no default of its own, derived from `fencing.timeout` (already read) and
    /// `peer_timeout`. Recorded for the timing rules as set or derived.
    fn fence_delay(&mut self, sec: Sec<'_, '_>, peer_timeout: Duration) -> Duration {
        let fence_timeout = self.times.fence_timeout.unwrap_or(DEFAULT_FENCE_TIMEOUT);
        let derived = timing::default_fence_delay(fence_timeout, peer_timeout);
        if sec.get("fence_delay").is_none() {
            self.times.fence_delay = Some(None);
            return derived;
        }
        let (fence_delay, span) = self.duration(sec, "fence_delay", derived, Zero::Refused);
        if span.is_some() {
            self.times.fence_delay = Some(Some(fence_delay));
        }
        fence_delay
    }
}
