//! `bbwd ocf ACTION`: bbwd as a Pacemaker OCF resource agent, for clusters that outgrow a pair.
//! Also reached as `/usr/lib/ocf/resource.d/bbwd/bitbucket ACTION` (a symlink to bbwd: `main`
//! dispatches on argv[0]'s file name), which is how Pacemaker calls it.
//!
//! Owns: the five actions (`start`, `stop`, `monitor`, `meta-data`, `validate-all`), which OCF
//! return code each outcome is (their numbers are `crate::exit`'s), the meta-data XML, and the
//! arithmetic that keeps every action inside Pacemaker's own operation timeout
//! (`OCF_RESKEY_CRM_meta_timeout`, ms).
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | the entry point: the action named, the config path, the state files' names |
//! | `env.rs` | what Pacemaker passes in the environment (`OCF_RESKEY_*`) |
//! | `timeouts.rs` | the arithmetic that keeps every action inside Pacemaker's timeout (pure) |
//! | `health.rs` | what a `/status` answer means to the agent (pure) |
//! | `meta_data.rs` | the meta-data XML |
//! | `agent.rs` | one invocation: running an action, loading and validating the config, logging |
//! | `instance.rs` | what runs here: the pid file's process, bbwd's own daemon |
//! | `start.rs`, `stop.rs`, `monitor.rs` | the three actions that act |
//!
//! Must not: supervise. In this mode Pacemaker is the supervisor: each action is one short-lived
//! `bbwd` process that acts and exits; nothing of bbwd keeps running. It never restarts
//! Bitbucket on its own (a failed monitor is Pacemaker's to act on) and never shares a pid file
//! with bbwd's daemon (`ocf-bitbucket.pid`, not `bitbucket.pid`).
//!
//! # Theory of operation
//! ```text
//!  start:   find ─► (running? adopt it) ─► else spawn detached (new session, output to
//!           state_dir/ocf-bitbucket.out) ─► pid file ─► probe /status every STARTUP_POLL
//!           until healthy (0) | leader exits (1) | start window or Pacemaker budget spent (1)
//!  stop:    find ─► SIGTERM group ─► wait term_wait ─► SIGKILL group ─► wait kill_wait
//!           ─► gone: remove pid file (0) | still there (1: Pacemaker fences the node)
//!  monitor: no process (7) | probe: RUNNING/MAINTENANCE/FIRST_RUN (0), STARTING within
//!           startup_timeout of the process's start (0), anything else (1)
//! ```
//! "find" reads `state_dir/ocf-bitbucket.pid` and adopts the process only if its pid *and* start
//! time match, so a recycled pid is never taken for Bitbucket.
//!
//! # Invariants
//! * Every action answers before Pacemaker's timeout: waits end `margin(timeout)` early, and
//!   `stop` sends SIGKILL with at least `min(kill_timeout, budget / 2)` left.
//! * `start` never starts a second instance: it adopts a running one, and kills what is left of
//!   a dead one's process group before starting.
//! * `stop` returns success only when the whole process group is gone.
//! * MAINTENANCE is healthy (a backup never triggers a failover); only `/status` is consulted.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::config;
use crate::exit::Exit;
use crate::exit::OcfCode;

mod agent;
mod env;
mod health;
mod instance;
mod meta_data;
mod monitor;
mod start;
mod stop;
mod timeouts;

use agent::Agent;
use env::OcfEnv;

/// The agent's name: the symlink's file name and `<resource-agent name=...>`.
pub const AGENT_NAME: &str = "bitbucket";
/// The pid file in `state_dir`; the daemon's is `bitbucket.pid`, so the two never share one.
pub const PIDFILE_NAME: &str = "ocf-bitbucket.pid";
/// Bitbucket's stdout/stderr in `state_dir` (the previous start's is kept as `.1`).
pub const OUTPUT_NAME: &str = "ocf-bitbucket.out";
/// The daemon's pid file name (see `daemon/`): a live process there means bbwd's daemon
/// supervises Bitbucket on this node, and the agent must not start a second one.
const DAEMON_PIDFILE_NAME: &str = "bitbucket.pid";
/// Held (flock) for the whole of a `start`, so that concurrent starts start one process.
const START_LOCK_NAME: &str = "ocf-start.lock";
/// Held (flock) briefly: by a `start` while it spawns and records Bitbucket, by a `stop` while it
/// reads the record and while it removes it. So a stop never misses a process spawned but not
/// yet recorded, and never removes a record it did not stop (a start racing a stop once had its
/// fresh record removed: a Bitbucket that ran, unrecorded, with `monitor` saying 7).
const PIDFILE_LOCK_NAME: &str = "ocf-pidfile.lock";

/// The actions this agent implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Monitor,
    MetaData,
    ValidateAll,
}

impl Action {
    /// The action named by Pacemaker: an empty one is a usage error (2); any other name
    /// (`notify`, `promote`, `reload`, `migrate_to`, ...) is unimplemented (3), as OCF asks.
    pub fn parse(name: &str) -> Result<Action, OcfCode> {
        match name {
            "start" => Ok(Action::Start),
            "stop" => Ok(Action::Stop),
            "monitor" => Ok(Action::Monitor),
            "meta-data" => Ok(Action::MetaData),
            "validate-all" => Ok(Action::ValidateAll),
            "" => Err(OcfCode::ErrArgs),
            _ => Err(OcfCode::ErrUnimplemented),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Monitor => "monitor",
            Action::MetaData => "meta-data",
            Action::ValidateAll => "validate-all",
        }
    }
}

/// When bbwd runs as the agent symlink (argv[0]'s file name is `bitbucket`), the action
/// Pacemaker passes as argv[1] (empty when missing).
pub fn called_as_agent() -> Option<String> {
    let mut args = std::env::args_os();
    let argv0 = args.next()?;
    if Path::new(&argv0).file_name()? != AGENT_NAME {
        return None;
    }
    Some(
        args.next()
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap_or_default(),
    )
}

/// `bbwd ocf ACTION` (with `-c PATH` when given) or the `bitbucket` symlink: the exit code.
/// The config is `-c`, else `OCF_RESKEY_config`, else `$BBWD_CONFIG`, else the default.
pub fn main(action: &str, config_flag: Option<PathBuf>) -> Exit {
    let env = OcfEnv::from_process();
    let action = match Action::parse(action) {
        Ok(a) => a,
        Err(code) => {
            if code == OcfCode::ErrArgs {
                eprintln!(
                    "usage: {AGENT_NAME} start|stop|monitor|meta-data|validate-all \
                     (or bbwd ocf ACTION); parameter OCF_RESKEY_config"
                );
            } else {
                eprintln!("bbwd-ocf: action `{action}` is not implemented");
            }
            return Exit::Ocf(code);
        }
    };
    let config_path = config_flag
        .or_else(|| env.config.clone())
        .or_else(|| std::env::var_os("BBWD_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH));
    Exit::Ocf(
        Agent {
            action,
            env,
            config_path,
            started: Instant::now(),
        }
        .run(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_parse_and_the_rest_is_unimplemented_or_a_usage_error() {
        assert_eq!(Action::parse("start"), Ok(Action::Start));
        assert_eq!(Action::parse("stop"), Ok(Action::Stop));
        assert_eq!(Action::parse("monitor"), Ok(Action::Monitor));
        assert_eq!(Action::parse("meta-data"), Ok(Action::MetaData));
        assert_eq!(Action::parse("validate-all"), Ok(Action::ValidateAll));
        for other in [
            "notify",
            "promote",
            "demote",
            "reload",
            "migrate_to",
            "status",
            "x",
        ] {
            assert_eq!(
                Action::parse(other),
                Err(OcfCode::ErrUnimplemented),
                "{other}"
            );
        }
        assert_eq!(Action::parse(""), Err(OcfCode::ErrArgs));
    }
}
