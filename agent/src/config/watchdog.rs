//! `[watchdog]` and `[watchdog.ipmi]`: the device that resets this node when bbwd hangs (a
//! watchdog character device, the BMC's own watchdog, or none), its timeout and action.
//!
//! Owns: those keys, their defaults, and the bounds of `timeout` (at least 1 s; at most what a
//! BMC's 16-bit countdown of 100 ms holds).
//!
//! Must not: open the device (`crate::hostcheck` checks that it exists), or read the BMC keys
//! itself: `[watchdog.ipmi]` is read as in `[fencing]` (`bmc.rs`).

use std::path::PathBuf;
use std::time::Duration;

use toml::de::DeTable;

use super::walk::{Checker, Zero};
use super::{Watchdog, WatchdogAction, WatchdogDevice};

pub(super) const WATCHDOG_KEYS: &[&str] = &["device", "timeout", "action", "realtime", "ipmi"];

pub(super) const WATCHDOG_IPMI_KEYS: &[&str] =
    &["host", "port", "username", "password_file", "cipher_suite"];

/// Longest BMC watchdog countdown: 16 bits of 100 ms.
pub(super) const MAX_IPMI_WATCHDOG: Duration = Duration::from_millis(6553 * 1000);

impl Checker<'_> {
    pub(super) fn watchdog(&mut self, root: &DeTable<'_>) -> Option<Watchdog> {
        let Some(sec) = self.section(root, "watchdog", "watchdog") else {
            return (!root.contains_key("watchdog")).then(|| Watchdog {
                device: WatchdogDevice::None,
                timeout: Duration::from_secs(60),
                action: WatchdogAction::Reset,
                realtime: false,
                ipmi: None,
            });
        };
        self.unknown_keys(sec, WATCHDOG_KEYS);
        let mut ok = true;
        let device = match self.string(sec, "device") {
            Some((s, span)) => match s.as_str() {
                "none" => WatchdogDevice::None,
                "ipmi" => WatchdogDevice::Ipmi,
                path if path.starts_with('/') && !path.contains('\0') => {
                    WatchdogDevice::Device(PathBuf::from(path))
                }
                _ => {
                    self.report(
                        sec.key("device"),
                        Some(span.start),
                        format!("\"{s}\": expected \"none\", \"ipmi\" or an absolute device path such as \"/dev/watchdog\""),
                    );
                    ok = false;
                    WatchdogDevice::None
                }
            },
            None => {
                ok &= sec.get("device").is_none();
                WatchdogDevice::None
            }
        };
        let (timeout, timeout_span) =
            self.duration(sec, "timeout", Duration::from_secs(60), Zero::Refused);
        if let Some(span) = timeout_span {
            if timeout < Duration::from_secs(1) {
                self.report(
                    sec.key("timeout"),
                    Some(span.start),
                    "must be at least 1s (watchdogs count in seconds)",
                );
                ok = false;
            } else if device == WatchdogDevice::Ipmi && timeout > MAX_IPMI_WATCHDOG {
                self.report(
                    sec.key("timeout"),
                    Some(span.start),
                    format!(
                        "a BMC watchdog counts at most {}s",
                        MAX_IPMI_WATCHDOG.as_secs()
                    ),
                );
                ok = false;
            }
        }
        let action = match self.string(sec, "action") {
            Some((s, span)) => match s.as_str() {
                "reset" => WatchdogAction::Reset,
                "power_cycle" => WatchdogAction::PowerCycle,
                "power_off" => WatchdogAction::PowerOff,
                _ => {
                    self.report(
                        sec.key("action"),
                        Some(span.start),
                        format!("\"{s}\": expected \"reset\", \"power_cycle\" or \"power_off\""),
                    );
                    ok = false;
                    WatchdogAction::Reset
                }
            },
            None => {
                ok &= sec.get("action").is_none();
                WatchdogAction::Reset
            }
        };
        let realtime = self.boolean(sec, "realtime", false);
        let ipmi = match self.section(sec.table, "ipmi", "watchdog.ipmi") {
            Some(sub) => {
                self.unknown_keys(sub, WATCHDOG_IPMI_KEYS);
                if ok && device != WatchdogDevice::Ipmi {
                    self.report(
                        "watchdog.ipmi",
                        Some(sub.header),
                        "[watchdog.ipmi] is only used with device = \"ipmi\"; set device = \"ipmi\" or remove [watchdog.ipmi]",
                    );
                    ok = false;
                }
                let lan = self.ipmi_lan(sub, "/etc/bbwd/own-bmc.pass", false);
                ok &= lan.is_some();
                lan
            }
            None => {
                ok &= sec.get("ipmi").is_none();
                None
            }
        };
        ok.then_some(Watchdog {
            device,
            timeout,
            action,
            realtime,
            ipmi,
        })
    }
}
