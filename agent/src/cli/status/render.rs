//! The human form of a status report (`bbwd status` without `--json`): a monitoring-plugins
//! style first line (`BBWD OK - ...`), then one line per part of the node.
//!
//! Must not: judge the report (the level in the first line is [`super::verdict`]'s) or gather
//! it.

use std::fmt::Write as _;

use crate::status::{Status, Watchdog};

use super::verdict::verdict;

/// The whole text, each line ending in a newline.
pub fn render(st: &Status) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}", headline(st));
    let _ = writeln!(s, "  mode         {} (role {})", st.mode, st.role);
    let _ = writeln!(s, "  restarts     {} in the current window", st.restarts);
    pair_lines(st, &mut s);
    if let Some(f) = &st.fencing {
        fencing_lines(f, &mut s);
    }
    if st.bitbucket.consecutive_failures > 0 {
        let _ = writeln!(
            s,
            "  failing      {} consecutive failed checks",
            st.bitbucket.consecutive_failures
        );
    }
    if let Some(f) = &st.failed {
        let _ = writeln!(s, "  FAILED       {f}: fix the cause, then `bbwd reset`");
    }
    if let Some(m) = &st.maintenance {
        let _ = writeln!(s, "  maintenance  since {}: {}", m.since, m.reason);
    }
    if let Some(db) = &st.database {
        let r = match db.reachable {
            Some(true) => "reachable",
            Some(false) => "UNREACHABLE (holding: no correction)",
            None => "not checked yet",
        };
        let _ = writeln!(s, "  database     {} {r}", db.address);
    }
    let _ = writeln!(s, "{}", watchdog_line(&st.watchdog));
    if let Some(lb) = &st.load_balancer {
        let _ = writeln!(
            s,
            "  haproxy      {}: agent check on {} answers `{}`",
            lb.state, lb.address, lb.reply
        );
    }
    if let Some(c) = &st.clock {
        let sync = if c.synchronized {
            "synchronised"
        } else {
            "NOT synchronised (start chrony, ntpd or systemd-timesyncd)"
        };
        let _ = writeln!(s, "  clock        {sync}, max error {} ms", c.max_error_ms);
    }
    if !st.events.is_empty() {
        let _ = writeln!(s, "  recent events (newest last):");
        let skip = st.events.len().saturating_sub(12);
        for e in &st.events[skip..] {
            let _ = writeln!(s, "    {} {:<18} {}", e.at, e.kind, e.detail);
        }
    }
    s
}

/// `BBWD LEVEL - node state (role) (daemon): Bitbucket ...`, without the newline.
fn headline(st: &Status) -> String {
    let word = verdict(st).word();
    let bb = match (&st.bitbucket.last_check, st.bitbucket.pid) {
        (Some(c), Some(pid)) => format!("Bitbucket {c}, pid {pid}"),
        (Some(c), None) => format!("Bitbucket {c}"),
        (None, Some(pid)) => format!("Bitbucket pid {pid}, not checked yet"),
        (None, None) => "Bitbucket not running".to_string(),
    };
    let daemon = match (st.daemon.as_str(), &st.daemon_error) {
        ("up", _) => String::new(),
        ("unknown", Some(e)) => format!(" (bbwd daemon state unknown: {e})"),
        ("unknown", None) => " (bbwd daemon state unknown)".to_string(),
        _ => " (bbwd daemon DOWN)".to_string(),
    };
    // In a pair the role belongs in the headline: a healthy standby is "stopped" (no
    // Bitbucket here, as it should be), which alone would read like the single-node
    // CRITICAL state.
    let role = match (st.mode.as_str(), st.role.as_str()) {
        ("pair", "standby") => " (standby: Bitbucket runs on the active node)",
        ("pair", "active") => " (active)",
        _ => "",
    };
    format!("BBWD {word} - {} {}{role}{daemon}: {bb}", st.node, st.state)
}

/// Pair mode: the peer and the VIP.
fn pair_lines(st: &Status, s: &mut String) {
    if let Some(p) = &st.peer {
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
    if let Some(v) = &st.vip {
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
}

/// Pair mode: the fencing BMC(s) and whatever blocks or pauses a takeover.
fn fencing_lines(f: &serde_json::Value, s: &mut String) {
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

/// `  watchdog     DEVICE armed, timeout ..., ...`, without the newline.
fn watchdog_line(wd: &Watchdog) -> String {
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
    format!("  watchdog     {} {armed}{hw}{petting}{sd}", wd.device)
}
