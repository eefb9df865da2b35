//! `[vip]` (pair mode): the address clients use, which moves to the node that serves.
//!
//! Owns: its keys, their defaults, and the form of `address` (`IP/PREFIX`, not an address no
//! service can have) and of `interface` (a Linux interface name).
//!
//! Must not: look at the interfaces (`crate::hostcheck` checks the interface exists).

use std::net::IpAddr;
use std::time::Duration;

use toml::de::DeTable;

use super::walk::{Checker, Zero};
use super::Vip;

pub(super) const VIP_KEYS: &[&str] = &["address", "interface", "garp_count", "garp_interval"];

/// Longest interface name, bytes (IFNAMSIZ - 1).
pub(super) const MAX_IFNAME_BYTES: usize = 15;

impl Checker<'_> {
    pub(super) fn vip(&mut self, root: &DeTable<'_>) -> Option<Option<Vip>> {
        let Some(sec) = self.section(root, "vip", "vip") else {
            return (!root.contains_key("vip")).then_some(None);
        };
        self.unknown_keys(sec, VIP_KEYS);
        let address = match self.required_string(sec, "address", "\"10.0.0.50/24\"") {
            Some((s, span)) => match parse_cidr(&s) {
                Ok(v) => Some(v),
                Err(why) => {
                    self.report(
                        sec.key("address"),
                        Some(span.start),
                        format!("\"{s}\": {why}"),
                    );
                    None
                }
            },
            None => None,
        };
        let interface = match self.required_string(sec, "interface", "\"eth0\"") {
            Some((name, span)) => {
                if name.len() > MAX_IFNAME_BYTES
                    || name.contains(['/', '\0'])
                    || name.chars().any(char::is_whitespace)
                {
                    self.report(
                        sec.key("interface"),
                        Some(span.start),
                        format!("\"{name}\" is not an interface name (at most {MAX_IFNAME_BYTES} bytes, no '/' or spaces)"),
                    );
                    None
                } else {
                    Some(name)
                }
            }
            None => None,
        };
        let garp_count = self.integer(sec, "garp_count", 3, 1..=100) as u32;
        let (garp_interval, _) = self.duration(
            sec,
            "garp_interval",
            Duration::from_millis(200),
            Zero::Allowed,
        );
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

/// `IP/PREFIX`, prefix 1..=32 (IPv4) or 1..=128 (IPv6).
pub(super) fn parse_cidr(s: &str) -> Result<(IpAddr, u8), String> {
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
