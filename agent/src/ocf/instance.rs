//! What runs on this node: the process the agent's pid file names (adopted only if its pid *and*
//! start time match, so a recycled pid is never taken for Bitbucket), and whether bbwd's own
//! daemon supervises Bitbucket here.
//!
//! Owns the reading of `state_dir/ocf-bitbucket.pid` and the wait for a process group to go.
//! Must not: start, signal or record anything (the actions do).

use std::path::Path;
use std::time::{Duration, Instant};

use bbwd_platform::control;
use bbwd_platform::process::{self, PidRecord, Supervised};

use crate::config::Config;

use super::DAEMON_PIDFILE_NAME;

/// Between two looks at the process group while waiting for a stop.
pub(super) const STOP_POLL: Duration = Duration::from_millis(100);
/// How long to wait for bbwd's daemon to answer on its control socket (is it running here?).
const DAEMON_ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// What the pid file leads to.
pub(super) enum Found {
    Nothing,
    /// The recorded process (maybe already exited: a zombie with the right start time).
    Proc(Supervised),
    /// The recorded leader is gone; members of its group may remain.
    Stale(PidRecord),
}

pub(super) fn find(pidfile: &Path) -> Found {
    let record = match process::read_pidfile(pidfile) {
        Ok(Some(r)) => r,
        Ok(None) => return Found::Nothing,
        Err(e) => {
            eprintln!("bbwd-ocf: {e}: ignoring it");
            return Found::Nothing;
        }
    };
    match Supervised::adopt(&record) {
        Ok(Some(p)) => Found::Proc(p),
        Ok(None) => Found::Stale(record),
        Err(e) => {
            eprintln!("bbwd-ocf: cannot look at pid {}: {e}", record.pid);
            Found::Stale(record)
        }
    }
}

/// Polls `done` every `STOP_POLL` for up to `wait`; true once it holds.
pub(super) fn wait_until(wait: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        if done() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep(STOP_POLL.min(deadline - now));
    }
}

/// Whether bbwd's daemon looks after Bitbucket on this node (its pid file names a live
/// process, or it answers on its control socket): the reason, if so.
pub(super) fn daemon_supervises(cfg: &Config) -> Option<String> {
    let pidfile = cfg.node.state_dir.join(DAEMON_PIDFILE_NAME);
    if let Ok(Some(record)) = process::read_pidfile(&pidfile) {
        if let Ok(Some(_)) = Supervised::adopt(&record) {
            return Some(format!(
                "{} names live pid {}",
                pidfile.display(),
                record.pid
            ));
        }
    }
    let socket = &cfg.node.control_socket;
    if control::request(socket, br#"{"cmd":"status"}"#, DAEMON_ASK_TIMEOUT).is_ok() {
        return Some(format!("a bbwd daemon answers on {}", socket.display()));
    }
    None
}
