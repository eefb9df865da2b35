//! The status report as data: what the daemon fills in and sends as its control reply, and
//! what `bbwd status --json` prints (SPEC "Status JSON"). The JSON is these types' serde form,
//! so the daemon and the CLI share one wire format.
//!
//! Owns the types and their field names. Must not: gather the data (the daemon fills a
//! `Status`; the CLI fills one itself when the daemon is down), judge it or render it as text
//! (`cli/status/`: the verdict, hence `bbwd status`'s exit code, and the human form).

use serde::{Deserialize, Serialize};

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

/// A report of a healthy single node, for the tests of the verdict and the human form.
#[cfg(test)]
pub(crate) fn sample() -> Status {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
