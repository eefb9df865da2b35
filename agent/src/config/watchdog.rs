//! `[watchdog]` and `[watchdog.ipmi]`: the device that resets this node when bbwd hangs (a
//! watchdog character device, the BMC's own watchdog, or none), its timeout and action.
//!
//! Owns: those keys, their defaults, and the bounds of `timeout` (at least 1 s; at most what a
//! BMC's 16-bit countdown of 100 ms holds).
//!
//! Must not: open the device (`crate::hostcheck` checks that it exists), or read the BMC keys
//! itself: `[watchdog.ipmi]` is read as a fence device's are (`bmc.rs`).

use std::path::PathBuf;
use std::time::Duration;

use toml::de::DeTable;

use super::values::Zero;
use super::walk::{Checker, Sec};
use super::{IpmiLan, Watchdog, WatchdogAction, WatchdogDevice};

pub(super) const KEYS: &[&str] = &["device", "timeout", "action", "realtime", "ipmi"];
pub(super) const IPMI_KEYS: &[&str] =
    &["host", "port", "username", "password_file", "cipher_suite"];

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Shortest timeout: watchdogs count in whole seconds.
const MIN_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest BMC watchdog countdown: 16 bits of 100 ms.
const MAX_IPMI_WATCHDOG: Duration = Duration::from_millis(6553 * 1000);
const ACTIONS: &[(&str, WatchdogAction)] = &[
    ("reset", WatchdogAction::Reset),
    ("power_cycle", WatchdogAction::PowerCycle),
    ("power_off", WatchdogAction::PowerOff),
];

impl Checker<'_> {
    /// `[watchdog]`; `None`: invalid (reported).
    pub(super) fn watchdog(&mut self, root: &DeTable<'_>) -> Option<Watchdog> {
        let Some(sec) = self.section(root, "watchdog", "watchdog") else {
            return (!root.contains_key("watchdog")).then_some(Watchdog {
                device: WatchdogDevice::None,
                timeout: DEFAULT_TIMEOUT,
                action: WatchdogAction::Reset,
                realtime: false,
                ipmi: None,
            });
        };
        self.unknown_keys(sec, KEYS);
        let device = self.parsed(sec, "device", WatchdogDevice::None, device);
        let timeout = self.watchdog_timeout(sec, device.as_ref());
        let action = self.keyword(sec, "action", WatchdogAction::Reset, ACTIONS);
        let realtime = self.boolean(sec, "realtime", false);
        // [watchdog.ipmi] beside another device is worth saying only when the rest is right.
        let misplaced = timeout.is_some()
            && action.is_some()
            && device
                .as_ref()
                .is_some_and(|device| *device != WatchdogDevice::Ipmi);
        let ipmi = self.watchdog_ipmi(sec, misplaced);
        Some(Watchdog {
            device: device?,
            timeout: timeout?,
            action: action?,
            realtime,
            ipmi: ipmi?,
        })
    }

    /// `timeout`: at least 1 s, and for the BMC's watchdog at most what it can count. `None`:
    /// out of those bounds (reported). A value that is not a duration at all is reported by the
    /// getter and the default stands in.
    fn watchdog_timeout(
        &mut self,
        sec: Sec<'_, '_>,
        device: Option<&WatchdogDevice>,
    ) -> Option<Duration> {
        let (timeout, span) = self.duration(sec, "timeout", DEFAULT_TIMEOUT, Zero::Refused);
        let Some(span) = span else {
            return Some(timeout);
        };
        let why = if timeout < MIN_TIMEOUT {
            "must be at least 1s (watchdogs count in seconds)".to_string()
        } else if device == Some(&WatchdogDevice::Ipmi) && timeout > MAX_IPMI_WATCHDOG {
            let max_s = MAX_IPMI_WATCHDOG.as_secs();
            format!("a BMC watchdog counts at most {max_s}s")
        } else {
            return Some(timeout);
        };
        self.report(sec.key("timeout"), Some(span.start), why);
        None
    }

    /// `[watchdog.ipmi]`: `Some(None)` when not written; `None` when invalid or `misplaced`
    /// (written beside a device other than `ipmi`; reported).
    fn watchdog_ipmi(&mut self, sec: Sec<'_, '_>, misplaced: bool) -> Option<Option<IpmiLan>> {
        let Some(sub) = self.section(sec.table, "ipmi", "watchdog.ipmi") else {
            return sec.get("ipmi").is_none().then_some(None);
        };
        self.unknown_keys(sub, IPMI_KEYS);
        if misplaced {
            self.report(
                "watchdog.ipmi",
                Some(sub.header_offset),
                "[watchdog.ipmi] is only used with device = \"ipmi\"; set device = \"ipmi\" or remove [watchdog.ipmi]",
            );
        }
        let lan = self.ipmi_lan(sub, "/etc/bbwd/own-bmc.pass", false);
        if misplaced {
            return None;
        }
        Some(Some(lan?))
    }
}

/// `device`: `none`, `ipmi`, or an absolute device path.
fn device(s: &str) -> Result<WatchdogDevice, String> {
    match s {
        "none" => Ok(WatchdogDevice::None),
        "ipmi" => Ok(WatchdogDevice::Ipmi),
        path if path.starts_with('/') && !path.contains('\0') => {
            Ok(WatchdogDevice::Device(PathBuf::from(path)))
        }
        _ => Err(format!(
            "\"{s}\": expected \"none\", \"ipmi\" or an absolute device path such as \"/dev/watchdog\""
        )),
    }
}
