//! `[metrics]` (optional, any mode): the Prometheus endpoint and/or node_exporter's textfile.
//!
//! Owns: its keys and their rules (at least one of the two; a textfile ends in `.prom`, the
//! only files node_exporter's collector reads).
//!
//! Must not: bind or write (`crate::hostcheck` checks the address is this node's).

use toml::de::DeTable;

use super::walk::Checker;
use super::Metrics;

pub(super) const METRICS_KEYS: &[&str] = &["listen", "textfile"];

impl Checker<'_> {
    pub(super) fn metrics(&mut self, root: &DeTable<'_>) -> Option<Option<Metrics>> {
        let Some(sec) = self.section(root, "metrics", "metrics") else {
            return (!root.contains_key("metrics")).then_some(None);
        };
        self.unknown_keys(sec, METRICS_KEYS);
        let mut ok = true;
        let listen = match sec.get("listen") {
            Some(item) => {
                let addr = self.socket_addr(&sec.key("listen"), item, "127.0.0.1:9776");
                ok &= addr.is_some();
                addr
            }
            None => None,
        };
        let textfile = match sec.get("textfile") {
            Some(_) => {
                let p = self.path(
                    sec,
                    "textfile",
                    None,
                    "\"/var/lib/prometheus/node-exporter/bbwd.prom\"",
                );
                match p {
                    Some((path, span)) if path.extension().is_none_or(|e| e != "prom") => {
                        // node_exporter's textfile collector reads `*.prom` files only.
                        self.report(
                            sec.key("textfile"),
                            Some(span.start),
                            format!(
                                "\"{}\": node_exporter's textfile collector reads only files \
                                 ending in .prom (e.g. /var/lib/prometheus/node-exporter/bbwd.prom)",
                                path.display()
                            ),
                        );
                        ok = false;
                        None
                    }
                    Some((path, _)) => Some(path),
                    None => {
                        ok = false;
                        None
                    }
                }
            }
            None => None,
        };
        if ok && listen.is_none() && textfile.is_none() {
            self.report(
                "metrics",
                Some(sec.header),
                "[metrics] needs `listen` (e.g. listen = \"127.0.0.1:9776\") or `textfile` \
                 (e.g. textfile = \"/var/lib/prometheus/node-exporter/bbwd.prom\"), or both; \
                 remove the section to switch metrics off",
            );
            return None;
        }
        ok.then_some(Some(Metrics { listen, textfile }))
    }
}
