//! `[fencing]` (pair mode): how the peer is fenced. One device (`[fencing]` itself) or several
//! tried in order (`[[fencing.device]]`, Pacemaker's fencing levels), each IPMI (RMCP+) or
//! Redfish; the action and the timeout of one whole attempt are the section's.
//!
//! Owns: those keys, their defaults, and the rules of a device: an IPMI device takes no Redfish
//! key and a Redfish device no cipher suite; a Redfish device checks the BMC's certificate in
//! exactly one way (`ca_file`, `tls_fingerprint`, or `insecure = true`).
//!
//! Must not: talk to a BMC. The keys that reach a BMC are read as for `[watchdog.ipmi]`
//! (`bmc.rs`).

use std::path::PathBuf;
use std::time::Duration;

use toml::de::{DeTable, DeValue};

use super::io::Need;
use super::walk::{Checker, Item, Sec};
use super::{FenceAction, FenceDevice, Fencing, RedfishKeys, RedfishTls};

pub(super) const KEYS: &[&str] = &[
    "method",
    "host",
    "port",
    "username",
    "password_file",
    "cipher_suite",
    "action",
    "timeout",
    // method = "redfish" only:
    "system",
    "ca_file",
    "tls_fingerprint",
    "insecure",
    // several devices, tried in order: [[fencing.device]]
    "device",
];

/// The keys of one fence device (`[fencing]` without `device`, or each `[[fencing.device]]`).
const DEVICE_KEYS: &[&str] = &[
    "method",
    "host",
    "port",
    "username",
    "password_file",
    "cipher_suite",
    "system",
    "ca_file",
    "tls_fingerprint",
    "insecure",
];

/// The keys of `[fencing]` that only `method = "redfish"` uses.
const REDFISH_ONLY_KEYS: &[&str] = &["system", "ca_file", "tls_fingerprint", "insecure"];

/// `timeout`: one whole fence attempt, BMC session set-up included.
pub(super) const DEFAULT_FENCE_TIMEOUT: Duration = Duration::from_secs(10);

const ACTIONS: &[(&str, FenceAction)] = &[("off", FenceAction::Off), ("cycle", FenceAction::Cycle)];
const METHODS: &[(&str, &str)] = &[("ipmi", "ipmi"), ("redfish", "redfish")];

/// What to say when a Redfish device checks the BMC's certificate in no way.
const NO_TLS_CHECK: &str = "method = \"redfish\" needs the BMC's certificate checked: ca_file = the PEM file of the CA that signed it, or tls_fingerprint = \"sha256:...\" of the certificate itself (openssl x509 -noout -fingerprint -sha256); insecure = true only to accept any certificate";

impl Checker<'_> {
    /// `[fencing]`: `Some(None)` when not written; `None`: invalid (reported).
    pub(super) fn fencing(&mut self, root: &DeTable<'_>) -> Option<Option<Fencing>> {
        let Some(sec) = self.section(root, "fencing", "fencing") else {
            return (!root.contains_key("fencing")).then_some(None);
        };
        self.unknown_keys(sec, KEYS);
        let devices = self.fence_devices(sec);
        let action = self.keyword(sec, "action", FenceAction::Off, ACTIONS);
        let timeout = self.timed(sec, "timeout", DEFAULT_FENCE_TIMEOUT, |t| {
            &mut t.fence_timeout
        });
        let (devices, action) = (devices?, action?);
        let first = devices.first()?.clone();
        Some(Some(Fencing {
            method: first.method,
            lan: first.lan,
            redfish: first.redfish,
            cipher_suite: first.cipher_suite,
            devices,
            action,
            timeout,
        }))
    }

    /// The devices in the order they are tried: each `[[fencing.device]]`, or the single
    /// device of `[fencing]` itself. Every device is read (and its problems reported) before
    /// `None` says one was wrong.
    fn fence_devices(&mut self, sec: Sec<'_, '_>) -> Option<Vec<FenceDevice>> {
        let Some(item) = sec.get("device") else {
            return Some(vec![self.fence_device(sec)?]);
        };
        // With a list, the device keys belong in each device.
        let mut misplaced = false;
        for key in DEVICE_KEYS {
            if let Some(k) = sec.get(key) {
                let message = format!("with [[fencing.device]], {key} belongs in each device (only action and timeout stay in [fencing])");
                self.at(sec.key(key), k, message);
                misplaced = true;
            }
        }
        let devices: Vec<Option<FenceDevice>> = match item.get_ref() {
            DeValue::Array(list) if !list.is_empty() => {
                list.iter().map(|d| self.listed_device(d)).collect()
            }
            _ => {
                let expected = "a non-empty array of tables ([[fencing.device]])";
                self.wrong_type("fencing.device".to_string(), item, expected);
                vec![None]
            }
        };
        if misplaced {
            return None;
        }
        devices.into_iter().collect()
    }

    /// One `[[fencing.device]]`.
    fn listed_device(&mut self, item: &Item<'_>) -> Option<FenceDevice> {
        let DeValue::Table(table) = item.get_ref() else {
            let expected = "a table ([[fencing.device]])";
            self.wrong_type("fencing.device".to_string(), item, expected);
            return None;
        };
        let sec = Sec {
            name: "fencing.device",
            table,
            header_offset: item.span().start,
        };
        self.unknown_keys(sec, DEVICE_KEYS);
        self.fence_device(sec)
    }

    /// One fence device's keys (`[fencing]` itself, or one `[[fencing.device]]`).
    fn fence_device(&mut self, sec: Sec<'_, '_>) -> Option<FenceDevice> {
        let method = self.keyword(sec, "method", "ipmi", METHODS);
        let is_redfish = method == Some("redfish");
        let lan = self.ipmi_lan(sec, "/etc/bbwd/peer-bmc.pass", is_redfish);
        let redfish = if is_redfish {
            self.redfish_device(sec).map(Some)
        } else {
            self.no_redfish_keys(sec).then_some(None)
        };
        let (method, redfish) = (method?, redfish?);
        // The suite (3, 17 or "auto") is read and checked with the other RMCP+ keys.
        let lan = lan?;
        Some(FenceDevice {
            method: method.to_string(),
            cipher_suite: lan.cipher_suite,
            lan,
            redfish,
        })
    }

    /// An IPMI device: false when it has Redfish keys (each reported).
    fn no_redfish_keys(&mut self, sec: Sec<'_, '_>) -> bool {
        let mut ok = true;
        for key in REDFISH_ONLY_KEYS {
            if let Some(item) = sec.get(key) {
                let message = format!("{key} is a Redfish key: it needs method = \"redfish\"");
                self.at(sec.key(key), item, message);
                ok = false;
            }
        }
        ok
    }

    /// A Redfish device's own keys; `None` when wrong, or when it has an IPMI cipher suite
    /// (reported).
    fn redfish_device(&mut self, sec: Sec<'_, '_>) -> Option<RedfishKeys> {
        let suite = sec.get("cipher_suite");
        if let Some(item) = suite {
            let message = "cipher_suite is an IPMI key: remove it with method = \"redfish\"";
            self.at(sec.key("cipher_suite"), item, message);
        }
        let keys = self.redfish_keys(sec);
        if suite.is_some() {
            return None;
        }
        keys
    }

    /// `system` and the certificate check of `method = "redfish"`: exactly one of `ca_file`
    /// (a PEM file of CA certificates, read in phase 2), `tls_fingerprint` (`sha256:` and 32
    /// bytes in hex), `insecure = true`.
    fn redfish_keys(&mut self, sec: Sec<'_, '_>) -> Option<RedfishKeys> {
        let system = self.parsed(sec, "system", None, |s| {
            check_system(s).map(|()| Some(s.to_string()))
        });
        let ca_file = self.ca_file(sec);
        let fingerprint = self.parsed(sec, "tls_fingerprint", None, |text| {
            bbwd_platform::redfish::parse_fingerprint(text).map(Some)
        });
        let insecure = self.boolean(sec, "insecure", false);
        if !self.one_tls_check(sec, insecure) {
            return None;
        }
        let tls = match (ca_file?, fingerprint?) {
            (Some(path), _) => RedfishTls::CaFile(path),
            (None, Some(fingerprint)) => RedfishTls::Fingerprint(fingerprint),
            (None, None) => RedfishTls::Insecure,
        };
        Some(RedfishKeys {
            system: system?,
            tls,
        })
    }

    /// `ca_file`: `Some(None)` when not written; `None` when not an absolute path (reported).
    /// The file is read and parsed in phase 2 (`io.rs`).
    fn ca_file(&mut self, sec: Sec<'_, '_>) -> Option<Option<PathBuf>> {
        if sec.get("ca_file").is_none() {
            return Some(None);
        }
        let (path, span) = self.path(sec, "ca_file", None, "\"/etc/bbwd/peer-bmc-ca.pem\"")?;
        self.defer(
            sec.key("ca_file"),
            Some(span.start),
            Need::CaFile(path.clone()),
        );
        Some(Some(path))
    }

    /// Exactly one of `ca_file`, `tls_fingerprint` and `insecure = true` is given; false (and
    /// reported) otherwise.
    fn one_tls_check(&mut self, sec: Sec<'_, '_>, insecure: bool) -> bool {
        let given = usize::from(sec.get("ca_file").is_some())
            + usize::from(sec.get("tls_fingerprint").is_some())
            + usize::from(insecure);
        match given {
            1 => true,
            0 => {
                self.report(sec.key("ca_file"), Some(sec.header_offset), NO_TLS_CHECK);
                false
            }
            _ => {
                let key = if insecure {
                    "insecure"
                } else {
                    "tls_fingerprint"
                };
                self.report(
                    sec.key(key),
                    sec.get(key).map(|i| i.span().start),
                    "give exactly one of ca_file, tls_fingerprint and insecure = true",
                );
                false
            }
        }
    }
}

/// `system`: the ComputerSystem's path, `/redfish/v1/...`, without spaces, `?` or `#`.
fn check_system(s: &str) -> Result<(), String> {
    if !s.starts_with("/redfish/v1/")
        || s.chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
    {
        return Err(format!(
            "\"{s}\": expected the ComputerSystem's path, e.g. \"/redfish/v1/Systems/1\""
        ));
    }
    Ok(())
}
