//! `bbwd status`: asks the running daemon for its report over the control socket; if the
//! daemon is unreachable, makes one itself (probing Bitbucket's `/status` directly) and says
//! the daemon is down. Prints the report (`--json`: as the daemon sent it; else the human
//! form) and ends in its monitoring-plugins level.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | asking the daemon, the report made without it, printing |
//! | `verdict.rs` | the report's level: OK, WARNING, CRITICAL, UNKNOWN |
//! | `render.rs` | the human form |
//!
//! Must not: gather anything the daemon knows (its report is taken as it is), or write an
//! exit code's number (`crate::exit`).

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use bbwd_platform::control;
use bbwd_platform::http::{probe_once, ProbeOutcome, StatusTarget};

use crate::config::{self, Config};
use crate::exit::{Exit, Plugin};
use crate::machine::ProbeText;
use crate::status::{self, Status};

use super::{classify_unreachable, error, mode_word, Error, Unreachable, CLIENT_TIMEOUT};

mod render;
mod verdict;

pub use render::render;
pub use verdict::verdict;

#[cfg(test)]
mod tests;

/// `bbwd status`: asks the daemon; if it is down, probes Bitbucket itself.
pub fn command(path: &Path, json: bool) -> Result<Exit, Error> {
    let cfg = match config::load(path) {
        Ok(c) => c,
        Err(p) => {
            // Not a failure of the command: the answer is UNKNOWN, on stdout as always.
            error::print_config_error(&p);
            if json {
                let v = serde_json::json!({
                    "daemon": "unknown",
                    "state": "unknown",
                    "error": format!("cannot read the config {}", path.display()),
                    "problems": p.to_string().lines().collect::<Vec<_>>(),
                });
                println!("{v:#}");
            } else {
                println!("BBWD UNKNOWN - cannot read the config");
            }
            return Ok(Exit::Plugin(Plugin::Unknown));
        }
    };
    let socket = &cfg.node.control_socket;
    let st = match control::request(socket, br#"{"cmd":"status"}"#, CLIENT_TIMEOUT) {
        Ok(reply) => match serde_json::from_slice::<Status>(&reply) {
            Ok(s) => s,
            Err(e) => {
                let why = serde_json::from_slice::<serde_json::Value>(&reply)
                    .ok()
                    .and_then(|v| v["error"].as_str().map(str::to_string))
                    .unwrap_or_else(|| format!("unreadable reply from the daemon: {e}"));
                unknown_status(&cfg, why)
            }
        },
        Err(e) => match classify_unreachable(&e, socket) {
            Unreachable::Down => daemon_down_status(&cfg),
            Unreachable::Unknown(why) => unknown_status(&cfg, why),
        },
    };
    if json {
        let mut out = std::io::stdout().lock();
        let _ = serde_json::to_writer_pretty(&mut out, &st);
        let _ = writeln!(out);
    } else {
        print!("{}", render(&st));
    }
    Ok(Exit::Plugin(verdict(&st)))
}

/// A report of a daemon whose state this caller cannot know (UNKNOWN): no probe either (a
/// monitoring user without permission must not be told DOWN).
fn unknown_status(cfg: &Config, why: String) -> Status {
    let mut st = daemon_down_status_with(cfg, None);
    st.daemon = "unknown".into();
    st.state = "unknown".into();
    st.daemon_error = Some(why);
    st
}

/// How long `status` waits for Bitbucket's `/status` itself when the daemon is down.
const DIRECT_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// A report made without the daemon: Bitbucket's `/status` probed directly.
fn daemon_down_status(cfg: &Config) -> Status {
    let timeout = cfg.bitbucket.monitor_timeout.min(DIRECT_PROBE_TIMEOUT);
    let probe = StatusTarget::parse(&cfg.bitbucket.status_url)
        .ok()
        .map(|t| (probe_once(&t, timeout), timeout));
    daemon_down_status_with(cfg, probe)
}

fn daemon_down_status_with(cfg: &Config, probe: Option<(ProbeOutcome, Duration)>) -> Status {
    let last_check = probe.as_ref().map(|(p, t)| match p {
        // The CLI's own wait, not the daemon's monitor_timeout.
        ProbeOutcome::Failed(bbwd_platform::http::ProbeFailure::Timeout) => {
            format!("no reply within {} s", t.as_secs_f32())
        }
        p => ProbeText(p).to_string(),
    });
    let probe = probe.map(|(p, _)| p);
    let (state, http_status) = match probe {
        Some(ProbeOutcome::Reply { http_status, state }) => {
            (state.map(|s| s.as_str().to_string()), Some(http_status))
        }
        _ => (None, None),
    };
    Status {
        node: cfg.node.name.clone(),
        mode: mode_word(cfg).into(),
        role: "none".into(),
        state: "stopped".into(),
        daemon: "down".into(),
        bitbucket: status::Bitbucket {
            state,
            http_status,
            pid: None,
            consecutive_failures: 0,
            last_check,
        },
        restarts: 0,
        peer: None,
        vip: None,
        fencing: None,
        watchdog: status::Watchdog {
            device: "unknown".into(),
            armed: false,
            petting: true,
            systemd_interval_ms: None,
            ..Default::default()
        },
        database: None,
        maintenance: None,
        failed: None,
        version: env!("CARGO_PKG_VERSION").into(),
        events: Vec::new(),
        load_balancer: None,
        clock: bbwd_platform::clock::kernel_sync()
            .ok()
            .map(crate::mirror::clock_report),
        daemon_error: None,
        loop_stats: None,
        daemon_run: None,
    }
}
