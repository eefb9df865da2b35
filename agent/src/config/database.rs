//! `[database]` (optional): the address bbwd connects to, to tell "the database is down" from
//! "Bitbucket is down" (the first is no reason to restart or fail over).
//!
//! Owns: its keys and the form of `address` (`HOST:PORT`).
//!
//! Must not: resolve or connect: the one DNS lookup of `address` is phase 2's (`io.rs`).

use std::net::SocketAddr;
use std::time::Duration;

use toml::de::DeTable;

use super::io::Need;
use super::values::Zero;
use super::walk::Checker;
use super::Database;

pub(super) const KEYS: &[&str] = &["address", "timeout"];

/// `timeout`: one TCP connect.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// `[database]` as the walk reads it: a [`Database`] before phase 2 resolves its address.
pub(super) struct Draft {
    address: String,
    timeout: Duration,
}

impl Draft {
    /// The [`Database`], with `address` as phase 2 resolved it (`None`: it did not: reported).
    pub(super) fn finish(self, resolved: Option<SocketAddr>) -> Option<Database> {
        Some(Database {
            address: self.address,
            resolved: resolved?,
            timeout: self.timeout,
        })
    }
}

impl Checker<'_> {
    /// Outer `None`: invalid (reported); inner `None`: not configured. The address is resolved
    /// in phase 2 (`io.rs`).
    pub(super) fn database(&mut self, root: &DeTable<'_>) -> Option<Option<Draft>> {
        let Some(sec) = self.section(root, "database", "database") else {
            return (!root.contains_key("database")).then_some(None);
        };
        self.unknown_keys(sec, KEYS);
        let address = self.required_string(sec, "address", "\"db.example.com:5432\"");
        let (timeout, _) = self.duration(sec, "timeout", DEFAULT_TIMEOUT, Zero::Refused);
        let (address, span) = address?;
        if let Err(why) = check_host_port(&address) {
            self.report(sec.key("address"), Some(span.start), why);
            return None;
        }
        let need = Need::Resolve(address.clone());
        self.defer(sec.key("address"), Some(span.start), need);
        Some(Some(Draft { address, timeout }))
    }
}

/// `HOST:PORT`, port 1..=65535 (whether HOST resolves is phase 2's question).
fn check_host_port(address: &str) -> Result<(), String> {
    let port_ok = address
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if !port_ok {
        return Err(format!(
            "\"{address}\": expected HOST:PORT, e.g. \"db.example.com:5432\""
        ));
    }
    Ok(())
}
