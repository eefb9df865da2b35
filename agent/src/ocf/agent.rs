//! One invocation of the agent: the action, Pacemaker's environment and the config path; runs
//! the action and logs its outcome the way resource agents do (`bbwd-ocf(INSTANCE)[PID]: LEVEL:
//! ACTION MESSAGE` on stderr).
//!
//! Owns loading the config (`load`) and validating it for a start (`validate`: the OCF codes 5
//! and 6), the time left of Pacemaker's budget, and the pid-file lock. Must not: act on
//! Bitbucket (`start.rs`, `stop.rs`, `monitor.rs`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bbwd_platform::fs;
use bbwd_platform::http::StatusTarget;
use bbwd_platform::process::{self, RunAs, SpawnSpec};

use crate::config::{self, Config};

use super::env::OcfEnv;
use super::meta_data::meta_data;
use super::timeouts::budget;
use super::{Action, OcfCode, AGENT_NAME, PIDFILE_LOCK_NAME};

/// How long to wait for the pid-file lock: its holders only spawn, read or write a small file.
const PIDFILE_LOCK_WAIT: Duration = Duration::from_secs(10);

/// One invocation: the action, Pacemaker's environment and the config path.
pub(super) struct Agent {
    pub(super) action: Action,
    pub(super) env: OcfEnv,
    pub(super) config_path: PathBuf,
    pub(super) started: Instant,
}

/// Outcome of an action: the code, and the reason logged with it.
pub(super) type Outcome = (OcfCode, String);

impl Agent {
    pub(super) fn log(&self, level: &str, msg: &str) {
        let instance = self.env.instance.as_deref().unwrap_or(AGENT_NAME);
        eprintln!(
            "bbwd-ocf({instance})[{}]: {level}: {} {msg}",
            std::process::id(),
            self.action.name()
        );
    }

    pub(super) fn run(&self) -> OcfCode {
        let (code, msg) = match self.action {
            Action::MetaData => {
                print!("{}", meta_data());
                return OcfCode::Success;
            }
            Action::ValidateAll => self.validate().map(|_| {
                (
                    OcfCode::Success,
                    format!("{}: valid", self.config_path.display()),
                )
            }),
            Action::Start => self.start(),
            Action::Stop => self.stop(),
            Action::Monitor => self.monitor(),
        }
        .unwrap_or_else(|e| e);
        let level = match code {
            OcfCode::Success => "INFO",
            // Expected answers of a monitor, not problems.
            OcfCode::NotRunning if self.action == Action::Monitor => "INFO",
            _ => "ERROR",
        };
        if !msg.is_empty() {
            self.log(level, &msg);
        }
        code
    }

    /// Loads the config and resolves how to start Bitbucket: 6 when the config is invalid or
    /// describes a pair, 5 when the program or the user is missing.
    pub(super) fn validate(&self) -> Result<(Config, SpawnSpec, StatusTarget), Outcome> {
        let cfg = config::load(&self.config_path).map_err(|problems| {
            for line in problems.to_string().lines() {
                self.log("ERROR", line);
            }
            (
                OcfCode::ErrConfigured,
                format!("{}: invalid config", self.config_path.display()),
            )
        })?;
        if cfg.mode() == config::Mode::Pair {
            return Err((
                OcfCode::ErrConfigured,
                "[cluster] (bbwd's own pair mode) is configured: under Pacemaker, Pacemaker is \
                 the cluster manager; remove [cluster], [vip] and [fencing]"
                    .to_string(),
            ));
        }
        let target = StatusTarget::parse(&cfg.bitbucket.status_url).map_err(|e| {
            (
                OcfCode::ErrConfigured,
                format!("bitbucket.status_url: {}", e.0),
            )
        })?;
        // The same host checks as check-config and run: something not installed here is
        // OCF_ERR_INSTALLED, a config that does not fit this node OCF_ERR_CONFIGURED.
        let found = crate::hostcheck::check(&cfg);
        let mut first_error = None;
        for f in &found {
            match f.severity {
                crate::hostcheck::Severity::Error => {
                    self.log("ERROR", &f.to_string());
                    first_error.get_or_insert(f);
                }
                crate::hostcheck::Severity::Warning => self.log("WARN", &f.to_string()),
            }
        }
        if let Some(f) = first_error {
            let code = match f.kind {
                crate::hostcheck::Kind::Missing => OcfCode::ErrInstalled,
                crate::hostcheck::Kind::Mismatch => OcfCode::ErrConfigured,
            };
            return Err((code, f.to_string()));
        }
        let user = match &cfg.bitbucket.user {
            Some(name) => Some(RunAs::lookup(name).map_err(|e| match e {
                process::Error::UnknownUser(_) => (
                    OcfCode::ErrInstalled,
                    format!("bitbucket.user: {e} on this node"),
                ),
                e => (OcfCode::ErrGeneric, format!("bitbucket.user: {e}")),
            })?),
            None => None,
        };
        // Output goes to a file in OCF mode (nobody drains a pipe between Pacemaker's calls).
        let spec = crate::daemon::spawn_spec(&cfg.bitbucket, user, false);
        Ok((cfg, spec, target))
    }

    /// Loads the config for monitor and stop, which need no program or user.
    pub(super) fn load(&self) -> Result<(Config, StatusTarget), Outcome> {
        let cfg = config::load(&self.config_path).map_err(|problems| {
            for line in problems.to_string().lines() {
                self.log("ERROR", line);
            }
            (
                OcfCode::ErrConfigured,
                format!("{}: invalid config", self.config_path.display()),
            )
        })?;
        let target = StatusTarget::parse(&cfg.bitbucket.status_url).map_err(|e| {
            (
                OcfCode::ErrConfigured,
                format!("bitbucket.status_url: {}", e.0),
            )
        })?;
        Ok((cfg, target))
    }

    /// Time left of Pacemaker's budget for this action (`None`: no timeout given).
    pub(super) fn budget_left(&self) -> Option<Duration> {
        budget(self.env.timeout).map(|b| b.saturating_sub(self.started.elapsed()))
    }

    /// The pid-file lock (`PIDFILE_LOCK_NAME`); `Err` only when another action holds it past
    /// `PIDFILE_LOCK_WAIT`. A lock file that cannot be opened (no `state_dir` yet, a read-only
    /// one) is no lock, not a failure: nothing can be recorded there by a racing start either,
    /// and a stop must not fail on it.
    pub(super) fn pidfile_lock(&self, cfg: &Config) -> Result<Option<fs::StateLock>, Outcome> {
        match fs::StateLock::acquire(
            &cfg.node.state_dir,
            PIDFILE_LOCK_NAME,
            Some(PIDFILE_LOCK_WAIT),
        ) {
            Ok(lock) => Ok(Some(lock)),
            Err(e @ fs::LockError::Held { .. }) => {
                Err((OcfCode::ErrGeneric, format!("the pid file is busy: {e}")))
            }
            Err(fs::LockError::Io(e)) => {
                if cfg.node.state_dir.is_dir() {
                    self.log("WARN", &format!("going on without the pid-file lock: {e}"));
                }
                Ok(None)
            }
        }
    }
}
