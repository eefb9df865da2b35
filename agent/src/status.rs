//! The status report: the JSON of `bbwd status --json` (SPEC "Status JSON"), its human form, and
//! its exit code (monitoring-plugins convention: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).
//!
//! Owns the wire format between daemon and CLI and the mapping to exit codes, decided here and
//! only here. Must not: gather the data (the daemon fills a `Status`; the CLI fills one itself
//! when the daemon is down).

use serde::{Deserialize, Serialize};

pub const OK: i32 = 0;
pub const WARNING: i32 = 1;
pub const CRITICAL: i32 = 2;
pub const UNKNOWN: i32 = 3;

/// `bbwd status --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub node: String,
    /// `single | pair | mirror`
    pub mode: String,
    /// `active | standby | none`
    pub role: String,
    /// `starting | running | correcting | holding | failed | maintenance | stopped | ...`
    pub state: String,
    /// `up | down`
    pub daemon: String,
    pub bitbucket: Bitbucket,
    /// Restarts within the current `restart_window`.
    pub restarts: u32,
    pub peer: Option<serde_json::Value>,
    pub vip: Option<serde_json::Value>,
    pub watchdog: Watchdog,
    /// `null` when `[database]` is not configured.
    pub database: Option<Database>,
    /// `null` unless an operator set maintenance.
    pub maintenance: Option<Maintenance>,
    /// Why the node waits for an operator (`null` unless `state` is `failed`).
    pub failed: Option<String>,
    pub version: String,
    /// Oldest first, newest last.
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bitbucket {
    /// The `state` of the last `/status` reply (`RUNNING`, ...), `null` without one.
    pub state: Option<String>,
    /// The HTTP status of the last reply, `null` without one.
    pub http_status: Option<u16>,
    pub pid: Option<i32>,
    pub consecutive_failures: u32,
    /// The last check in words (`HTTP 200 RUNNING`, `connection refused`).
    pub last_check: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Watchdog {
    /// `none`, a device path, or `ipmi`.
    pub device: String,
    pub armed: bool,
    /// False once the node decided it cannot correct itself (the hardware watchdog, when armed,
    /// will reset it).
    pub petting: bool,
    /// systemd's `WatchdogSec` keep-alive interval in ms, `null` when systemd set none.
    pub systemd_interval_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Database {
    pub address: String,
    /// `null` before the first check.
    pub reachable: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Maintenance {
    pub reason: String,
    pub since: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub at: String,
    pub kind: String,
    pub detail: String,
}

impl Status {
    /// The exit code for this report.
    pub fn exit_code(&self) -> i32 {
        if self.daemon != "up" {
            return CRITICAL;
        }
        if !self.watchdog.petting {
            return CRITICAL;
        }
        match self.state.as_str() {
            "failed" | "stopped" => CRITICAL,
            "starting" | "correcting" | "holding" | "maintenance" => WARNING,
            "running" if self.bitbucket.consecutive_failures > 0 => WARNING,
            "running" => OK,
            _ => UNKNOWN,
        }
    }

    /// The human form: a monitoring-plugins style first line, then details.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let word = match self.exit_code() {
            OK => "OK",
            WARNING => "WARNING",
            CRITICAL => "CRITICAL",
            _ => "UNKNOWN",
        };
        let mut s = String::new();
        let bb = match (&self.bitbucket.last_check, self.bitbucket.pid) {
            (Some(c), Some(pid)) => format!("Bitbucket {c}, pid {pid}"),
            (Some(c), None) => format!("Bitbucket {c}"),
            (None, Some(pid)) => format!("Bitbucket pid {pid}, not checked yet"),
            (None, None) => "Bitbucket not running".to_string(),
        };
        let daemon = if self.daemon == "up" {
            String::new()
        } else {
            " (bbwd daemon DOWN)".to_string()
        };
        let _ = writeln!(
            s,
            "BBWD {word} - {} {}{daemon}: {bb}",
            self.node, self.state
        );
        let _ = writeln!(s, "  mode         {} (role {})", self.mode, self.role);
        let _ = writeln!(s, "  restarts     {} in the current window", self.restarts);
        if self.bitbucket.consecutive_failures > 0 {
            let _ = writeln!(
                s,
                "  failing      {} consecutive failed checks",
                self.bitbucket.consecutive_failures
            );
        }
        if let Some(f) = &self.failed {
            let _ = writeln!(s, "  FAILED       {f}: fix the cause, then `bbwd reset`");
        }
        if let Some(m) = &self.maintenance {
            let _ = writeln!(s, "  maintenance  since {}: {}", m.since, m.reason);
        }
        if let Some(db) = &self.database {
            let r = match db.reachable {
                Some(true) => "reachable",
                Some(false) => "UNREACHABLE (holding: no correction)",
                None => "not checked yet",
            };
            let _ = writeln!(s, "  database     {} {r}", db.address);
        }
        let wd = &self.watchdog;
        let sd = match wd.systemd_interval_ms {
            Some(ms) => format!("; systemd keep-alive every {ms} ms"),
            None => String::new(),
        };
        let petting = if wd.petting {
            ""
        } else {
            ", NOT PETTING (node cannot correct itself)"
        };
        let armed = if wd.armed { "armed" } else { "not armed" };
        let _ = writeln!(s, "  watchdog     {} {armed}{petting}{sd}", wd.device);
        if !self.events.is_empty() {
            let _ = writeln!(s, "  recent events (newest last):");
            let skip = self.events.len().saturating_sub(12);
            for e in &self.events[skip..] {
                let _ = writeln!(s, "    {} {:<18} {}", e.at, e.kind, e.detail);
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Status {
        Status {
            node: "bb1".into(),
            mode: "single".into(),
            role: "none".into(),
            state: "running".into(),
            daemon: "up".into(),
            bitbucket: Bitbucket {
                state: Some("RUNNING".into()),
                http_status: Some(200),
                pid: Some(1234),
                consecutive_failures: 0,
                last_check: Some("HTTP 200 RUNNING".into()),
            },
            restarts: 0,
            peer: None,
            vip: None,
            watchdog: Watchdog {
                device: "none".into(),
                armed: false,
                petting: true,
                systemd_interval_ms: None,
            },
            database: None,
            maintenance: None,
            failed: None,
            version: "0.1.0".into(),
            events: vec![Event {
                at: "2026-11-22T14:00:00Z".into(),
                kind: "start".into(),
                detail: "pid 1234".into(),
            }],
        }
    }

    #[test]
    fn exit_codes_follow_the_monitoring_plugins_convention() {
        let cases = [
            ("running", "up", 0, true, OK),
            ("running", "up", 1, true, WARNING),
            ("starting", "up", 0, true, WARNING),
            ("correcting", "up", 0, true, WARNING),
            ("holding", "up", 0, true, WARNING),
            ("maintenance", "up", 0, true, WARNING),
            ("failed", "up", 0, true, CRITICAL),
            ("stopped", "up", 0, true, CRITICAL),
            ("running", "down", 0, true, CRITICAL),
            ("running", "up", 0, false, CRITICAL),
            ("bogus", "up", 0, true, UNKNOWN),
        ];
        for (state, daemon, failures, petting, want) in cases {
            let mut s = sample();
            s.state = state.into();
            s.daemon = daemon.into();
            s.bitbucket.consecutive_failures = failures;
            s.watchdog.petting = petting;
            assert_eq!(s.exit_code(), want, "{state} {daemon} {failures} {petting}");
        }
    }

    #[test]
    fn json_has_the_spec_fields_and_round_trips() {
        let s = sample();
        let v: serde_json::Value = serde_json::to_value(&s).unwrap();
        for k in [
            "node",
            "mode",
            "role",
            "state",
            "daemon",
            "bitbucket",
            "restarts",
            "peer",
            "vip",
            "watchdog",
            "events",
        ] {
            assert!(v.get(k).is_some(), "missing {k}");
        }
        assert!(v["peer"].is_null() && v["vip"].is_null());
        for k in ["state", "http_status", "pid", "consecutive_failures"] {
            assert!(v["bitbucket"].get(k).is_some(), "missing bitbucket.{k}");
        }
        assert_eq!(v["watchdog"]["armed"], false);
        let back: Status = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn human_form_starts_with_the_verdict() {
        let s = sample();
        let text = s.render();
        assert!(
            text.starts_with("BBWD OK - bb1 running: Bitbucket HTTP 200 RUNNING, pid 1234"),
            "{text}"
        );
        assert!(text.contains("start"));
    }
}
