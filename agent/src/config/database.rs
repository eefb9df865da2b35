//! `[database]` (optional): the address bbwd connects to, to tell "the database is down" from
//! "Bitbucket is down" (the first is no reason to restart or fail over).
//!
//! Owns: its keys and the form of `address` (`HOST:PORT`).
//!
//! Must not: connect; the one DNS lookup of `address` is all the network it touches.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use toml::de::DeTable;

use super::walk::{Checker, Zero};
use super::Database;

pub(super) const DATABASE_KEYS: &[&str] = &["address", "timeout"];

impl Checker<'_> {
    /// Outer `None`: invalid (reported); inner `None`: not configured.
    pub(super) fn database(&mut self, root: &DeTable<'_>) -> Option<Option<Database>> {
        let Some(sec) = self.section(root, "database", "database") else {
            return (!root.contains_key("database")).then_some(None);
        };
        self.unknown_keys(sec, DATABASE_KEYS);
        let address = self.required_string(sec, "address", "\"db.example.com:5432\"");
        let (timeout, _) = self.duration(sec, "timeout", Duration::from_secs(5), Zero::Refused);
        let (address, span) = address?;
        match resolve(&address) {
            Ok(resolved) => Some(Some(Database {
                address,
                resolved,
                timeout,
            })),
            Err(why) => {
                self.report(sec.key("address"), Some(span.start), why);
                None
            }
        }
    }
}

/// Resolves `host:port` once (the database check connects to the result).
pub(super) fn resolve(address: &str) -> Result<SocketAddr, String> {
    let port_ok = address
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if !port_ok {
        return Err(format!(
            "\"{address}\": expected HOST:PORT, e.g. \"db.example.com:5432\""
        ));
    }
    match address.to_socket_addrs() {
        Ok(mut addrs) => addrs.next().ok_or_else(|| {
            format!("\"{address}\" resolves to no address; fix the name or use an IP address")
        }),
        Err(e) => Err(format!(
            "cannot resolve \"{address}\" ({e}); fix the name or use an IP address"
        )),
    }
}
