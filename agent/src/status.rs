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
    /// Pair mode: the peer's BMC session, a blocked fence, the last takeover's timeline.
    #[serde(default)]
    pub fencing: Option<serde_json::Value>,
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
    /// Mirror-farm node: what HAProxy's agent check is told; `null` without `[load_balancer]`.
    #[serde(default)]
    pub load_balancer: Option<LoadBalancer>,
    /// The kernel's clock synchronisation (adjtimex); `null` when it could not be read.
    #[serde(default)]
    pub clock: Option<Clock>,
    /// Why the daemon's state is not known (`daemon` is `unknown`): a bad config, no permission
    /// on the control socket, all its slots busy. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daemon_error: Option<String>,
    /// The event loop's own pace and its log output (daemon only).
    #[serde(default, rename = "loop", skip_serializing_if = "Option::is_none")]
    pub loop_stats: Option<LoopStats>,
    /// This run of the daemon (`null` when the daemon is down): `bbwd reexec` waits for a new
    /// one to answer.
    #[serde(default)]
    pub daemon_run: Option<DaemonRun>,
}

/// One run of the daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonRun {
    pub pid: u32,
    /// Wall clock at the run's start, ms since the Unix epoch.
    pub started_at_ms: u64,
    /// Started by a re-exec of the previous run (`systemctl reload bbwd`).
    pub reexecuted: bool,
}

/// How the event loop keeps its pace, and what its non-blocking log output cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoopStats {
    pub passes: u64,
    /// The longest pass (poll returned to keep-alives sent), ms.
    pub pass_max_ms: u64,
    /// The most a wake-up came after its planned deadline, ms (a stalled or starved loop).
    pub late_max_ms: u64,
    /// Log lines (and their bytes) dropped because stderr did not take them in time.
    pub log_dropped_lines: u64,
    pub log_dropped_bytes: u64,
    pub log_written_bytes: u64,
    /// Output lines that quoted `java.lang.OutOfMemoryError` without being the JVM's own
    /// report (counted, not acted on).
    pub oome_mentions: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadBalancer {
    /// `[load_balancer] haproxy_agent`, where HAProxy's agent check connects.
    pub address: String,
    /// The line answered right now, e.g. `up ready #RUNNING`.
    pub reply: String,
    /// The reply in one word: `up`, `drain`, `down` or `maint`.
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Clock {
    /// False when the kernel says no NTP daemon keeps the clock synchronised (a WARNING on a
    /// mirror-farm node: the seed asks for clocks in sync across mirrors).
    pub synchronized: bool,
    /// The kernel's maximum error estimate, ms.
    pub max_error_ms: u64,
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

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Watchdog {
    /// `none`, a device path, or `ipmi`.
    pub device: String,
    pub armed: bool,
    /// False once the node decided it cannot correct itself (the hardware watchdog, when armed,
    /// will reset it).
    pub petting: bool,
    /// systemd's `WatchdogSec` keep-alive interval in ms, `null` when systemd set none.
    pub systemd_interval_ms: Option<u64>,
    /// The timeout the hardware watchdog really uses (the driver or BMC may round the
    /// configured one), ms; `null` when none is armed.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Time left before the hardware watchdog fires, ms; `null` where it cannot tell.
    #[serde(default)]
    pub time_left_ms: Option<u64>,
    /// Whether the node's last reset was caused by the hardware watchdog; `null` when it
    /// cannot tell (or none is armed).
    #[serde(default)]
    pub last_reset_by_watchdog: Option<bool>,
    /// `[watchdog] realtime` in effect: memory locked, loop at SCHED_FIFO.
    #[serde(default)]
    pub realtime: bool,
    /// Keep-alives sent to the hardware watchdog since bbwd started.
    #[serde(default)]
    pub pets: u64,
    /// Pet latency (end of the loop pass to the keep-alive returned), microseconds: the last
    /// one and the largest since start; `null` before the first pet.
    #[serde(default)]
    pub pet_latency_us_last: Option<u64>,
    #[serde(default)]
    pub pet_latency_us_max: Option<u64>,
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
        if self.daemon == "unknown" {
            return UNKNOWN;
        }
        if self.daemon != "up" {
            return CRITICAL;
        }
        if !self.watchdog.petting {
            return CRITICAL;
        }
        if self.mode == "pair" {
            return self.pair_exit_code();
        }
        match self.state.as_str() {
            "failed" | "stopped" => CRITICAL,
            "starting" | "correcting" | "holding" | "maintenance" => WARNING,
            "running" if self.bitbucket.consecutive_failures > 0 => WARNING,
            "running" if self.mirror_clock_unsynced() => WARNING,
            "running" => OK,
            _ => UNKNOWN,
        }
    }

    /// Pair mode: a standby without Bitbucket is normal. CRITICAL: a blocked fence, a takeover
    /// that keeps failing, a fencing BMC that reports the heard peer off (it is another
    /// machine's), both nodes `preferred_active`, a node that self-fenced. WARNING: a lost
    /// heartbeat link, a BMC session that is down (fencing would fail), failover paused by
    /// maintenance, neither node preferred, a Redfish BMC whose TLS certificate is not verified
    /// (`fencing.tls_warning`, `insecure = true`).
    fn pair_exit_code(&self) -> i32 {
        let fencing = |k: &str| {
            self.fencing
                .as_ref()
                .and_then(|f| f.get(k))
                .and_then(|v| v.as_bool())
        };
        let conflict = self
            .fencing
            .as_ref()
            .and_then(|f| f.get("preference_conflict"))
            .and_then(|v| v.as_str());
        if fencing("blocked") == Some(true)
            || fencing("takeover_blocked") == Some(true)
            || fencing("bmc_mismatch") == Some(true)
            || conflict == Some("both")
            || self.state == "failed"
        {
            return CRITICAL;
        }
        let links = self.peer.as_ref().map(|p| {
            (
                p["links_up"].as_u64().unwrap_or(0),
                p["links_total"].as_u64().unwrap_or(0),
                p["alive"].as_bool().unwrap_or(false),
            )
        });
        let degraded = links.is_some_and(|(up, total, alive)| up < total || !alive)
            || fencing("session_up") == Some(false)
            || fencing("failover_paused") == Some(true)
            || conflict == Some("neither")
            || self
                .fencing
                .as_ref()
                .is_some_and(|f| f.get("tls_warning").is_some_and(|w| w.is_string()));
        let base = match (self.role.as_str(), self.state.as_str()) {
            ("standby", "stopped" | "starting") => OK,
            (_, "running") if self.bitbucket.consecutive_failures == 0 => OK,
            (_, "running" | "starting" | "correcting" | "holding" | "maintenance") => WARNING,
            (_, "fencing" | "taking_over" | "releasing") => WARNING,
            (_, "stopped") => CRITICAL,
            _ => UNKNOWN,
        };
        if base == OK && degraded {
            WARNING
        } else {
            base
        }
    }

    /// A mirror-farm node whose clock the kernel says is not synchronised.
    fn mirror_clock_unsynced(&self) -> bool {
        self.mode == "mirror" && self.clock.as_ref().is_some_and(|c| !c.synchronized)
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
        let daemon = match (self.daemon.as_str(), &self.daemon_error) {
            ("up", _) => String::new(),
            ("unknown", Some(e)) => format!(" (bbwd daemon state unknown: {e})"),
            ("unknown", None) => " (bbwd daemon state unknown)".to_string(),
            _ => " (bbwd daemon DOWN)".to_string(),
        };
        // In a pair the role belongs in the headline: a healthy standby is "stopped" (no
        // Bitbucket here, as it should be), which alone would read like the single-node
        // CRITICAL state.
        let role = match (self.mode.as_str(), self.role.as_str()) {
            ("pair", "standby") => " (standby: Bitbucket runs on the active node)",
            ("pair", "active") => " (active)",
            _ => "",
        };
        let _ = writeln!(
            s,
            "BBWD {word} - {} {}{role}{daemon}: {bb}",
            self.node, self.state
        );
        let _ = writeln!(s, "  mode         {} (role {})", self.mode, self.role);
        let _ = writeln!(s, "  restarts     {} in the current window", self.restarts);
        if let Some(p) = &self.peer {
            let alive = if p["alive"].as_bool() == Some(true) {
                "alive"
            } else {
                "NOT HEARD"
            };
            let _ = writeln!(
                s,
                "  peer         {} {alive} ({}), heartbeat links {}/{} up",
                p["name"].as_str().unwrap_or("?"),
                p["role"].as_str().unwrap_or("unknown"),
                p["links_up"],
                p["links_total"],
            );
        }
        if let Some(v) = &self.vip {
            let held = if v["held"].as_bool() == Some(true) {
                "held here"
            } else {
                "not held here"
            };
            let _ = writeln!(
                s,
                "  vip          {} on {}: {held}",
                v["address"].as_str().unwrap_or("?"),
                v["interface"].as_str().unwrap_or("?")
            );
        }
        if let Some(f) = &self.fencing {
            let session = if f["session_up"].as_bool() == Some(true) {
                "session up"
            } else {
                "SESSION DOWN: fencing would fail"
            };
            let blocked = if f["blocked"].as_bool() == Some(true) {
                ", FENCE FAILED: takeover blocked (bbwd confirm-peer-down)"
            } else {
                ""
            };
            let _ = writeln!(
                s,
                "  fencing      {} {session}{blocked}",
                f["bmc"].as_str().unwrap_or("?")
            );
            let flag = |k: &str| f[k].as_bool() == Some(true);
            if let Some(w) = f["tls_warning"].as_str() {
                let _ = writeln!(s, "  FENCING WARNING: {w}");
            }
            // [[fencing.device]]: each device's own health, in the order they are tried.
            if let Some(devices) = f["devices"].as_array().filter(|d| d.len() > 1) {
                for (i, d) in devices.iter().enumerate() {
                    let state = match (d["session_up"].as_bool(), d["last_error"].as_str()) {
                        (Some(true), _) => "up".to_string(),
                        (_, Some(e)) => format!("DOWN: {e}"),
                        _ => "DOWN".to_string(),
                    };
                    let _ = writeln!(
                        s,
                        "    device {} {} {state}",
                        i + 1,
                        d["bmc"].as_str().unwrap_or("?")
                    );
                }
            }
            if flag("takeover_blocked") {
                let _ = writeln!(
                    s,
                    "  TAKEOVER FAILED: retried with backoff (see the events)"
                );
            }
            if flag("bmc_mismatch") {
                let _ = writeln!(
                    s,
                    "  FENCING BMC MISMATCH: it reports the heard peer off; [fencing] host points at another machine"
                );
            }
            match f["preference_conflict"].as_str() {
                Some("both") => {
                    let _ = writeln!(
                        s,
                        "  BOTH NODES preferred_active: set it on exactly one (the first name wins meanwhile)"
                    );
                }
                Some(_) => {
                    let _ = writeln!(
                        s,
                        "  neither node preferred_active: set it on one (the first name wins meanwhile)"
                    );
                }
                None => {}
            }
            if flag("failover_paused") {
                let _ = writeln!(
                    s,
                    "  failover     PAUSED: maintenance on this node or the peer"
                );
            }
        }
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
        let mut hw = String::new();
        if let Some(t) = wd.timeout_ms {
            let _ = write!(hw, ", timeout {} s", t / 1000);
        }
        if let Some(t) = wd.time_left_ms {
            let _ = write!(hw, ", {} s left", t / 1000);
        }
        if wd.realtime {
            hw.push_str(", realtime");
        }
        if wd.last_reset_by_watchdog == Some(true) {
            hw.push_str("; the LAST RESET WAS CAUSED BY THE WATCHDOG");
        }
        let _ = writeln!(s, "  watchdog     {} {armed}{hw}{petting}{sd}", wd.device);
        if let Some(lb) = &self.load_balancer {
            let _ = writeln!(
                s,
                "  haproxy      {}: agent check on {} answers `{}`",
                lb.state, lb.address, lb.reply
            );
        }
        if let Some(c) = &self.clock {
            let sync = if c.synchronized {
                "synchronised"
            } else {
                "NOT synchronised (start chrony, ntpd or systemd-timesyncd)"
            };
            let _ = writeln!(s, "  clock        {sync}, max error {} ms", c.max_error_ms);
        }
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
            fencing: None,
            watchdog: Watchdog {
                device: "none".into(),
                armed: false,
                petting: true,
                systemd_interval_ms: None,
                ..Default::default()
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
            load_balancer: None,
            clock: None,
            daemon_run: None,
            daemon_error: None,
            loop_stats: None,
        }
    }

    #[test]
    fn an_unsynchronised_clock_warns_on_a_mirror_node_only() {
        let unsynced = Some(Clock {
            synchronized: false,
            max_error_ms: 16_000,
        });
        let synced = Some(Clock {
            synchronized: true,
            max_error_ms: 3,
        });
        // (mode, state, clock) => exit code
        let cases = [
            ("mirror", "running", unsynced.clone(), WARNING),
            ("mirror", "running", synced.clone(), OK),
            ("mirror", "running", None, OK),
            ("single", "running", unsynced.clone(), OK),
            ("pair", "running", unsynced.clone(), OK),
            // Worse verdicts are not softened by the clock.
            ("mirror", "failed", unsynced.clone(), CRITICAL),
            ("mirror", "maintenance", synced, WARNING),
        ];
        for (mode, state, clock, want) in cases {
            let mut s = sample();
            s.mode = mode.into();
            s.state = state.into();
            s.clock = clock.clone();
            assert_eq!(s.exit_code(), want, "{mode} {state} {clock:?}");
        }
        let mut s = sample();
        s.mode = "mirror".into();
        s.clock = unsynced;
        s.load_balancer = Some(LoadBalancer {
            address: "0.0.0.0:7777".into(),
            reply: "up ready #RUNNING".into(),
            state: "up".into(),
        });
        let text = s.render();
        assert!(text.starts_with("BBWD WARNING - bb1 running"), "{text}");
        assert!(text.contains("clock        NOT synchronised"), "{text}");
        assert!(
            text.contains(
                "haproxy      up: agent check on 0.0.0.0:7777 answers `up ready #RUNNING`"
            ),
            "{text}"
        );
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["clock"]["synchronized"], false);
        assert_eq!(v["clock"]["max_error_ms"], 16_000);
        assert_eq!(v["load_balancer"]["state"], "up");
        // Reports from an older daemon (without these fields) still parse.
        let mut old = serde_json::to_value(sample()).unwrap();
        let o = old.as_object_mut().unwrap();
        o.remove("clock");
        o.remove("load_balancer");
        let back: Status = serde_json::from_value(old).unwrap();
        assert_eq!(back.clock, None);
    }

    #[test]
    fn pair_conditions_that_need_an_operator_are_critical_and_pauses_are_warnings() {
        let mut st = sample();
        st.mode = "pair".into();
        st.role = "standby".into();
        st.state = "stopped".into();
        st.peer = Some(serde_json::json!({"alive": true, "links_up": 2, "links_total": 2}));
        let with = |k: &str, v: serde_json::Value| {
            let mut s = st.clone();
            s.fencing = Some(serde_json::json!({ "session_up": true, k: v }));
            s.exit_code()
        };
        assert_eq!(with("blocked", false.into()), OK);
        assert_eq!(with("takeover_blocked", true.into()), CRITICAL);
        assert_eq!(with("bmc_mismatch", true.into()), CRITICAL);
        assert_eq!(with("preference_conflict", "both".into()), CRITICAL);
        assert_eq!(with("preference_conflict", "neither".into()), WARNING);
        assert_eq!(with("failover_paused", true.into()), WARNING);
        // A Redfish fencer whose certificate is not verified (insecure = true): WARNING, and
        // the human form says why; no warning (null) is OK.
        assert_eq!(with("tls_warning", serde_json::Value::Null), OK);
        assert_eq!(
            with("tls_warning", "TLS certificate NOT verified".into()),
            WARNING
        );
        let mut s = st.clone();
        s.fencing = Some(serde_json::json!({ "session_up": true, "tls_warning": "NOT verified" }));
        assert!(
            s.render().contains("FENCING WARNING: NOT verified"),
            "{}",
            s.render()
        );
        // Several devices: each one's health is shown, in order.
        s.fencing = Some(serde_json::json!({ "session_up": false, "devices": [
            { "bmc": "Redfish https://10.0.1.2:443", "session_up": true, "last_error": null },
            { "bmc": "BMC 10.0.2.2:623", "session_up": false, "last_error": "unreachable: no answer" },
        ] }));
        let text = s.render();
        assert!(
            text.contains("device 1 Redfish https://10.0.1.2:443 up")
                && text.contains("device 2 BMC 10.0.2.2:623 DOWN: unreachable: no answer"),
            "{text}"
        );
    }

    /// A healthy standby printed "BBWD OK - bb2 stopped", which reads like the single-node
    /// CRITICAL state: the headline names the role in pair mode.
    #[test]
    fn a_healthy_standby_headline_says_standby() {
        let mut st = sample();
        st.mode = "pair".into();
        st.role = "standby".into();
        st.state = "stopped".into();
        st.bitbucket.pid = None;
        st.bitbucket.last_check = None;
        st.peer = Some(serde_json::json!({"alive": true, "links_up": 2, "links_total": 2}));
        st.fencing = Some(serde_json::json!({ "session_up": true }));
        let text = st.render();
        let headline = text.lines().next().unwrap();
        assert!(
            headline.starts_with("BBWD OK - ")
                && headline.contains("stopped (standby: Bitbucket runs on the active node)"),
            "{headline}"
        );
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
            ("stopped", "unknown", 0, true, UNKNOWN),
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
