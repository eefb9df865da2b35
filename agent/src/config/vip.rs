//! `[vip]` (pair mode): the address clients use, which moves to the node that serves.
//!
//! Owns: its keys, their defaults, and the form of `address` (`IP/PREFIX`, not an address no
//! service can have) and of `interface` (a Linux interface name).
//!
//! Must not: look at the interfaces (`crate::hostcheck` checks the interface exists).

use std::net::IpAddr;
use std::time::Duration;

use toml::de::DeTable;

use super::values::Zero;
use super::walk::Checker;
use super::Vip;

pub(super) const KEYS: &[&str] = &["address", "interface", "garp_count", "garp_interval"];

/// Longest interface name, bytes (IFNAMSIZ - 1).
const MAX_IFNAME_BYTES: usize = 15;
/// `garp_interval`: between two gratuitous ARPs (unsolicited NAs) after the address is added.
const DEFAULT_GARP_INTERVAL: Duration = Duration::from_millis(200);

impl Checker<'_> {
    /// `[vip]`: `Some(None)` when not written; `None`: invalid (reported).
    pub(super) fn vip(&mut self, root: &DeTable<'_>) -> Option<Option<Vip>> {
        let Some(sec) = self.section(root, "vip", "vip") else {
            return (!root.contains_key("vip")).then_some(None);
        };
        self.unknown_keys(sec, KEYS);
        let address = self.required(sec, "address", "\"10.0.0.50/24\"", |s| {
            parse_cidr(s).map_err(|why| format!("\"{s}\": {why}"))
        });
        let interface = self.required(sec, "interface", "\"eth0\"", check_interface);
        let garp_count = self.integer(sec, "garp_count", 3, 1..=100) as u32;
        let (garp_interval, _) =
            self.duration(sec, "garp_interval", DEFAULT_GARP_INTERVAL, Zero::Allowed);
        let (address, prefix_len) = address?;
        Some(Some(Vip {
            address,
            prefix_len,
            interface: interface?,
            garp_count,
            garp_interval,
        }))
    }
}

/// A Linux interface name: at most 15 bytes, no '/', NUL or white space.
fn check_interface(name: &str) -> Result<String, String> {
    if name.len() > MAX_IFNAME_BYTES
        || name.contains(['/', '\0'])
        || name.chars().any(char::is_whitespace)
    {
        return Err(format!("\"{name}\" is not an interface name (at most {MAX_IFNAME_BYTES} bytes, no '/' or spaces)"));
    }
    Ok(name.to_string())
}

/// `IP/PREFIX`, prefix 1..=32 (IPv4) or 1..=128 (IPv6).
fn parse_cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let Some((ip, prefix)) = s.split_once('/') else {
        return Err("expected IP/PREFIX, e.g. \"10.0.0.50/24\" or \"fd00::50/64\"".to_string());
    };
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| format!("\"{ip}\" is not an IP address"))?;
    if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
        return Err(format!("{ip} cannot be a service address"));
    }
    let max = if ip.is_ipv4() { 32 } else { 128 };
    match prefix.parse::<u8>() {
        Ok(p) if (1..=max).contains(&p) && prefix.bytes().all(|b| b.is_ascii_digit()) => {
            Ok((ip, p))
        }
        _ => Err(format!("prefix \"{prefix}\" must be between 1 and {max}")),
    }
}
