//! The rules between sections: which sections make which mode (a pair needs `[fencing]` and
//! `[vip]`; `[vip]` and `[fencing]` need `[cluster]`; a pair is not a mirror-farm node), and a
//! pair that names itself (`cluster.peer` is this node, `[fencing]` is this node's own BMC).
//!
//! Owns: those rules and where each is reported. Runs after every section is read.
//!
//! Must not: re-check a section's own keys: a section that is invalid (already reported) is
//! skipped here, so one mistake is not reported twice.

use toml::de::DeTable;

use super::walk::{key_offset, Checker};
use super::{Cluster, Fencing, IpmiLan, Node, Watchdog};

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
        self.modes(root);
        if let (Some(node), Some(Some(cluster))) = (node, cluster) {
            self.peer_is_not_this_node(root, node, cluster);
        }
        if let (Some(watchdog), Some(Some(fencing))) = (watchdog, fencing) {
            if let Some(own) = &watchdog.ipmi {
                self.fencing_is_not_this_bmc(root, own, fencing);
            }
        }
    }

    /// Which sections go together, by whether they are written: a pair (`[cluster]`) needs
    /// `[fencing]` and `[vip]` and is not a mirror-farm node (`[load_balancer]`); `[vip]` and
    /// `[fencing]` are for a pair only.
    fn modes(&mut self, root: &DeTable<'_>) {
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
            return;
        }
        if root.get("fencing").is_none() {
            self.report(
                "fencing",
                header("cluster"),
                "pair mode needs [fencing]: the standby takes over only after the peer's BMC has confirmed it is off",
            );
        }
        // `bbwd run` cannot serve a pair without an address to move (clients would not follow
        // a takeover): refused here, so that check-config agrees with run.
        if root.get("vip").is_none() {
            self.report(
                "vip",
                header("cluster"),
                "pair mode needs [vip]: the virtual IP clients use moves to the node that serves",
            );
        }
    }

    /// `cluster.peer` names the other node, not this one.
    fn peer_is_not_this_node(&mut self, root: &DeTable<'_>, node: &Node, cluster: &Cluster) {
        if node.name != cluster.peer {
            return;
        }
        let offset = key_offset(root, "cluster.peer");
        self.report(
            "cluster.peer",
            offset,
            format!(
                "\"{}\" is this node's own name (node.name): name the other node of the pair",
                cluster.peer
            ),
        );
    }

    /// No IPMI fence device is this node's own BMC (`[watchdog.ipmi]`): fencing it would reset
    /// the node that fences.
    fn fencing_is_not_this_bmc(&mut self, root: &DeTable<'_>, own: &IpmiLan, fencing: &Fencing) {
        let own_bmc = fencing
            .devices
            .iter()
            .any(|d| d.method == "ipmi" && d.lan.host == own.host && d.lan.port == own.port);
        if !own_bmc {
            return;
        }
        self.report(
            "fencing.host",
            key_offset(root, "fencing.host"),
            format!(
                "{}:{} is this node's own BMC ([watchdog.ipmi]): [fencing] must name the PEER's BMC",
                own.host, own.port
            ),
        );
    }
}
