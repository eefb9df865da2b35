//! `[metrics]` (optional, any mode): the Prometheus endpoint and/or node_exporter's textfile.
//!
//! Owns: its keys and their rules (at least one of the two; a textfile ends in `.prom`, the
//! only files node_exporter's collector reads).
//!
//! Must not: bind or write (`crate::hostcheck` checks the address is this node's).

use std::path::PathBuf;

use toml::de::DeTable;

use super::walk::{Checker, Sec};
use super::Metrics;

pub(super) const KEYS: &[&str] = &["listen", "textfile"];

impl Checker<'_> {
    /// `[metrics]`: `Some(None)` when not written; `None`: invalid (reported).
    pub(super) fn metrics(&mut self, root: &DeTable<'_>) -> Option<Option<Metrics>> {
        let Some(sec) = self.section(root, "metrics", "metrics") else {
            return (!root.contains_key("metrics")).then_some(None);
        };
        self.unknown_keys(sec, KEYS);
        let listen = match sec.get("listen") {
            Some(item) => self
                .socket_addr(&sec.key("listen"), item, "127.0.0.1:9776")
                .map(Some),
            None => Some(None),
        };
        let textfile = self.textfile(sec);
        let (listen, textfile) = (listen?, textfile?);
        if listen.is_none() && textfile.is_none() {
            self.report(
                "metrics",
                Some(sec.header_offset),
                "[metrics] needs `listen` (e.g. listen = \"127.0.0.1:9776\") or `textfile` \
                 (e.g. textfile = \"/var/lib/prometheus/node-exporter/bbwd.prom\"), or both; \
                 remove the section to switch metrics off",
            );
            return None;
        }
        Some(Some(Metrics { listen, textfile }))
    }

    /// `textfile`: `Some(None)` when not written; `None` when not an absolute path ending in
    /// `.prom` (reported): node_exporter's textfile collector reads `*.prom` files only.
    fn textfile(&mut self, sec: Sec<'_, '_>) -> Option<Option<PathBuf>> {
        if sec.get("textfile").is_none() {
            return Some(None);
        }
        let example = "\"/var/lib/prometheus/node-exporter/bbwd.prom\"";
        let (path, span) = self.path(sec, "textfile", None, example)?;
        if path.extension().is_none_or(|e| e != "prom") {
            self.report(
                sec.key("textfile"),
                Some(span.start),
                format!(
                    "\"{}\": node_exporter's textfile collector reads only files \
                     ending in .prom (e.g. /var/lib/prometheus/node-exporter/bbwd.prom)",
                    path.display()
                ),
            );
            return None;
        }
        Some(Some(path))
    }
}
