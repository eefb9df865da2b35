//! `[load_balancer]` (mirror-farm node): where HAProxy's agent check asks this node's health.
//!
//! Owns: its one key.
//!
//! Must not: bind (`crate::hostcheck` checks the address is this node's).

use toml::de::DeTable;

use super::walk::Checker;
use super::LoadBalancer;

pub(super) const KEYS: &[&str] = &["haproxy_agent"];

impl Checker<'_> {
    /// `[load_balancer]`: `Some(None)` when not written; `None`: invalid (reported).
    pub(super) fn load_balancer(&mut self, root: &DeTable<'_>) -> Option<Option<LoadBalancer>> {
        let Some(sec) = self.section(root, "load_balancer", "load_balancer") else {
            return (!root.contains_key("load_balancer")).then_some(None);
        };
        self.unknown_keys(sec, KEYS);
        let Some(item) = sec.get("haproxy_agent") else {
            self.missing(sec, "haproxy_agent", "\"0.0.0.0:7777\"");
            return None;
        };
        let haproxy_agent = self.socket_addr(&sec.key("haproxy_agent"), item, "0.0.0.0:7777")?;
        Some(Some(LoadBalancer { haproxy_agent }))
    }
}
