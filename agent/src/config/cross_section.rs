//! The rules between sections: which sections make which mode (a pair needs `[fencing]` and
//! `[vip]`; `[vip]` and `[fencing]` need `[cluster]`; a pair is not a mirror-farm node), and a
//! pair that names itself (`cluster.peer` is this node, `[fencing]` is this node's own BMC).
//!
//! Owns: those rules and where each is reported. Runs after every section is read.
//!
//! Must not: re-check a section's own keys: a section that is invalid (already reported) is
//! skipped here, so one mistake is not reported twice.

use toml::de::DeTable;

use super::walk::Checker;
use super::{Cluster, Fencing, Node, Watchdog};

impl Checker<'_> {
    /// Checks that span sections. `None` arguments were invalid (already reported) or absent.
    pub(super) fn cross_section(
        &mut self,
        root: &DeTable<'_>,
        node: Option<&Node>,
        cluster: Option<&Option<Cluster>>,
        watchdog: Option<&Watchdog>,
        fencing: Option<&Option<Fencing>>,
    ) {
        let header = |name: &str| root.get(name).map(|item| item.span().start);
        let cluster_line = header("cluster").map(|o| self.line_of(o));
        if let (Some(cluster_line), Some(lb)) = (cluster_line, header("load_balancer")) {
            self.report(
                "load_balancer",
                Some(lb),
                format!(
                    "[cluster] (line {cluster_line}) and [load_balancer] cannot both be set: a node is \
                     either one of a cold-standby pair or a mirror-farm node; remove one"
                ),
            );
        }
        if cluster_line.is_none() {
            for (name, what) in [
                ("vip", "the virtual IP moves"),
                ("fencing", "the peer is fenced"),
            ] {
                if let Some(offset) = header(name) {
                    self.report(
                        name,
                        Some(offset),
                        format!("[{name}] is only used in pair mode ({what} between the two nodes of [cluster]); add [cluster] or remove [{name}]"),
                    );
                }
            }
        } else {
            if root.get("fencing").is_none() {
                self.report(
                    "fencing",
                    header("cluster"),
                    "pair mode needs [fencing]: the standby takes over only after the peer's BMC has confirmed it is off",
                );
            }
            // `bbwd run` cannot serve a pair without an address to move (clients would not
            // follow a takeover): refused here, so that check-config agrees with run.
            if root.get("vip").is_none() {
                self.report(
                    "vip",
                    header("cluster"),
                    "pair mode needs [vip]: the virtual IP clients use moves to the node that serves",
                );
            }
        }
        if let (Some(node), Some(Some(cluster))) = (node, cluster) {
            if node.name == cluster.peer {
                let offset = root
                    .get("cluster")
                    .and_then(|c| c.get_ref().get("peer"))
                    .map(|item| item.span().start);
                self.report(
                    "cluster.peer",
                    offset,
                    format!("\"{}\" is this node's own name (node.name): name the other node of the pair", cluster.peer),
                );
            }
        }
        if let (Some(watchdog), Some(Some(fencing))) = (watchdog, fencing) {
            if let Some(own) = &watchdog.ipmi {
                let own_bmc = fencing.devices.iter().any(|d| {
                    d.method == "ipmi" && d.lan.host == own.host && d.lan.port == own.port
                });
                if own_bmc {
                    let offset = root
                        .get("fencing")
                        .and_then(|f| f.get_ref().get("host"))
                        .map(|item| item.span().start);
                    self.report(
                        "fencing.host",
                        offset,
                        format!(
                            "{}:{} is this node's own BMC ([watchdog.ipmi]): [fencing] must name the PEER's BMC",
                            own.host, own.port
                        ),
                    );
                }
            }
        }
    }
}
