//! The verdict on a status report: its monitoring-plugins level (SPEC: 0 OK, 1 WARNING,
//! 2 CRITICAL, 3 UNKNOWN), decided here and only here; `crate::exit` gives the level its number.
//!
//! Must not: gather the report (the daemon, or `super` when the daemon is down) or print it.

use crate::exit::Plugin;
use crate::status::Status;

const OK: Plugin = Plugin::Ok;
const WARNING: Plugin = Plugin::Warning;
const CRITICAL: Plugin = Plugin::Critical;
const UNKNOWN: Plugin = Plugin::Unknown;

/// The report's monitoring-plugins level (`bbwd status`'s exit code).
pub fn verdict(st: &Status) -> Plugin {
    if st.daemon == "unknown" {
        return UNKNOWN;
    }
    if st.daemon != "up" {
        return CRITICAL;
    }
    if !st.watchdog.petting {
        return CRITICAL;
    }
    if st.mode == "pair" {
        return pair(st);
    }
    match st.state.as_str() {
        "failed" | "stopped" => CRITICAL,
        "starting" | "correcting" | "holding" | "maintenance" => WARNING,
        "running" if st.bitbucket.consecutive_failures > 0 => WARNING,
        "running" if mirror_clock_unsynced(st) => WARNING,
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
fn pair(st: &Status) -> Plugin {
    let fencing = |k: &str| {
        st.fencing
            .as_ref()
            .and_then(|f| f.get(k))
            .and_then(|v| v.as_bool())
    };
    let conflict = st
        .fencing
        .as_ref()
        .and_then(|f| f.get("preference_conflict"))
        .and_then(|v| v.as_str());
    if fencing("blocked") == Some(true)
        || fencing("takeover_blocked") == Some(true)
        || fencing("bmc_mismatch") == Some(true)
        || conflict == Some("both")
        || st.state == "failed"
    {
        return CRITICAL;
    }
    let links = st.peer.as_ref().map(|p| {
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
        || st
            .fencing
            .as_ref()
            .is_some_and(|f| f.get("tls_warning").is_some_and(|w| w.is_string()));
    let base = match (st.role.as_str(), st.state.as_str()) {
        ("standby", "stopped" | "starting") => OK,
        (_, "running") if st.bitbucket.consecutive_failures == 0 => OK,
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
fn mirror_clock_unsynced(st: &Status) -> bool {
    st.mode == "mirror" && st.clock.as_ref().is_some_and(|c| !c.synchronized)
}
