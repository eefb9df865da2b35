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

use std::time::Duration;

use toml::de::{DeTable, DeValue};

use super::io::Need;
use super::walk::{Checker, Sec};
use super::{FenceAction, FenceDevice, Fencing, RedfishKeys, RedfishTls};

pub(super) const FENCING_KEYS: &[&str] = &[
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
pub(super) const DEVICE_KEYS: &[&str] = &[
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
pub(super) const REDFISH_ONLY_KEYS: &[&str] = &["system", "ca_file", "tls_fingerprint", "insecure"];

/// `[fencing] timeout`: one whole fence attempt, BMC session set-up included.
pub(super) const DEFAULT_FENCE_TIMEOUT: Duration = Duration::from_secs(10);

impl Checker<'_> {
    pub(super) fn fencing(&mut self, root: &DeTable<'_>) -> Option<Option<Fencing>> {
        let Some(sec) = self.section(root, "fencing", "fencing") else {
            return (!root.contains_key("fencing")).then_some(None);
        };
        self.unknown_keys(sec, FENCING_KEYS);
        let mut ok = true;
        // The devices: `[[fencing.device]]` in order, or the single device of `[fencing]`.
        let devices: Vec<Option<FenceDevice>> = match sec.get("device") {
            None => vec![self.fence_device(sec)],
            Some(item) => {
                for key in DEVICE_KEYS {
                    if let Some(k) = sec.get(key) {
                        self.at(
                            sec.key(key),
                            k,
                            format!("with [[fencing.device]], {key} belongs in each device (only action and timeout stay in [fencing])"),
                        );
                        ok = false;
                    }
                }
                match item.get_ref() {
                    DeValue::Array(list) if !list.is_empty() => list
                        .iter()
                        .map(|d| match d.get_ref() {
                            DeValue::Table(table) => {
                                let dsec = Sec {
                                    name: "fencing.device",
                                    table,
                                    header: d.span().start,
                                };
                                self.unknown_keys(dsec, DEVICE_KEYS);
                                self.fence_device(dsec)
                            }
                            _ => {
                                self.wrong_type(
                                    "fencing.device".to_string(),
                                    d,
                                    "a table ([[fencing.device]])",
                                );
                                None
                            }
                        })
                        .collect(),
                    _ => {
                        self.wrong_type(
                            "fencing.device".to_string(),
                            item,
                            "a non-empty array of tables ([[fencing.device]])",
                        );
                        vec![None]
                    }
                }
            }
        };
        let action = match self.string(sec, "action") {
            Some((a, span)) => match a.as_str() {
                "off" => FenceAction::Off,
                "cycle" => FenceAction::Cycle,
                _ => {
                    self.report(
                        sec.key("action"),
                        Some(span.start),
                        format!("\"{a}\": expected \"off\" or \"cycle\""),
                    );
                    ok = false;
                    FenceAction::Off
                }
            },
            None => {
                ok &= sec.get("action").is_none();
                FenceAction::Off
            }
        };
        let timeout = self.timed(sec, "timeout", DEFAULT_FENCE_TIMEOUT, |t| {
            &mut t.fence_timeout
        });
        if !ok {
            return None;
        }
        let devices: Vec<FenceDevice> = devices.into_iter().collect::<Option<_>>()?;
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

    /// One fence device's keys (`[fencing]` itself, or one `[[fencing.device]]`).
    pub(super) fn fence_device(&mut self, sec: Sec<'_, '_>) -> Option<FenceDevice> {
        let mut ok = true;
        let method = match self.string(sec, "method") {
            Some((m, _)) if m == "ipmi" || m == "redfish" => m,
            Some((m, span)) => {
                self.report(
                    sec.key("method"),
                    Some(span.start),
                    format!("\"{m}\": expected \"ipmi\" or \"redfish\""),
                );
                ok = false;
                m
            }
            None => {
                ok &= sec.get("method").is_none();
                "ipmi".to_string()
            }
        };
        let is_redfish = method == "redfish";
        let lan = self.ipmi_lan(sec, "/etc/bbwd/peer-bmc.pass", is_redfish);
        let redfish = if is_redfish {
            if sec.get("cipher_suite").is_some() {
                self.report(
                    sec.key("cipher_suite"),
                    sec.get("cipher_suite").map(|i| i.span().start),
                    "cipher_suite is an IPMI key: remove it with method = \"redfish\"",
                );
                ok = false;
            }
            let keys = self.redfish_keys(sec);
            ok &= keys.is_some();
            keys
        } else {
            for key in REDFISH_ONLY_KEYS {
                if let Some(item) = sec.get(key) {
                    self.at(
                        sec.key(key),
                        item,
                        format!("{key} is a Redfish key: it needs method = \"redfish\""),
                    );
                    ok = false;
                }
            }
            None
        };
        if !ok {
            return None;
        }
        // The suite (3, 17 or "auto") is read and checked with the other RMCP+ keys.
        let lan = lan?;
        Some(FenceDevice {
            method,
            cipher_suite: lan.cipher_suite,
            lan,
            redfish,
        })
    }

    /// `system` and the certificate check of `method = "redfish"`: exactly one of `ca_file`
    /// (a PEM file of CA certificates, read in phase 2), `tls_fingerprint` (`sha256:` and 32 bytes in
    /// hex), `insecure = true`.
    pub(super) fn redfish_keys(&mut self, sec: Sec<'_, '_>) -> Option<RedfishKeys> {
        let mut ok = true;
        let system = match self.string(sec, "system") {
            Some((s, span)) => {
                if !s.starts_with("/redfish/v1/")
                    || s.chars()
                        .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
                {
                    self.report(
                        sec.key("system"),
                        Some(span.start),
                        format!("\"{s}\": expected the ComputerSystem's path, e.g. \"/redfish/v1/Systems/1\""),
                    );
                    ok = false;
                }
                Some(s)
            }
            None => {
                ok &= sec.get("system").is_none();
                None
            }
        };
        let ca_file = if sec.get("ca_file").is_some() {
            match self.path(sec, "ca_file", None, "\"/etc/bbwd/peer-bmc-ca.pem\"") {
                Some((path, span)) => {
                    // Read and parsed in phase 2 (`io.rs`).
                    let need = Need::CaFile(path.clone());
                    self.defer(sec.key("ca_file"), Some(span.start), need);
                    Some(path)
                }
                None => {
                    ok = false;
                    None
                }
            }
        } else {
            None
        };
        let fingerprint = match self.string(sec, "tls_fingerprint") {
            Some((text, span)) => match bbwd_platform::redfish::parse_fingerprint(&text) {
                Ok(f) => Some(f),
                Err(e) => {
                    self.report(sec.key("tls_fingerprint"), Some(span.start), e);
                    ok = false;
                    None
                }
            },
            None => {
                ok &= sec.get("tls_fingerprint").is_none();
                None
            }
        };
        let insecure = self.boolean(sec, "insecure", false);
        let given = usize::from(sec.get("ca_file").is_some())
            + usize::from(sec.get("tls_fingerprint").is_some())
            + usize::from(insecure);
        if given > 1 {
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
            return None;
        }
        if given == 0 {
            self.report(
                sec.key("ca_file"),
                Some(sec.header),
                "method = \"redfish\" needs the BMC's certificate checked: ca_file = the PEM file of the CA that signed it, or tls_fingerprint = \"sha256:...\" of the certificate itself (openssl x509 -noout -fingerprint -sha256); insecure = true only to accept any certificate",
            );
            return None;
        }
        let tls = match (ca_file, fingerprint) {
            (Some(path), _) => RedfishTls::CaFile(path),
            (None, Some(f)) => RedfishTls::Fingerprint(f),
            (None, None) if insecure => RedfishTls::Insecure,
            (None, None) => return None,
        };
        ok.then_some(RedfishKeys { system, tls })
    }
}
