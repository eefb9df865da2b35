//! Why a command of the command line failed, and how that is told to the operator.
//!
//! Owns [`Error`], one variant per way a command fails, each keeping its cause
//! ([`std::error::Error::source`]), and [`report`], the one place a failure is written out: on
//! stderr for the client commands, to the log for `bbwd run` (which logs from its start).
//! Must not: choose exit codes (`crate::exit` maps each variant), or print a command's normal
//! output (the commands do).

use std::path::{Path, PathBuf};
use std::time::Duration;

use bbwd_platform::control;

use bbwd_core::fence::operator::Action;

use crate::config;
use crate::daemon;
use crate::fencing::FenceError;
use crate::hostcheck::{Finding, Severity};

/// Why a command failed. `crate::exit::Exit::of` says which exit code each is.
#[derive(Debug)]
pub enum Error {
    /// Bad usage: what is wrong with the arguments.
    Usage(String),
    /// The config cannot be read or is invalid (a client command or `check-config`).
    Config(config::Problems),
    /// `check-config`: what the config names but this node lacks (the errors among the host
    /// checks' findings).
    HostCheck { path: PathBuf, errors: Vec<Finding> },
    /// `run`: the config is invalid, or its timing rules do not hold; `refusal` says which.
    StartConfig {
        problems: config::Problems,
        refusal: &'static str,
    },
    /// `run`: the config does not fit this node (every finding of the host checks, in order).
    HostRefused { path: PathBuf, found: Vec<Finding> },
    /// `run`: the daemon could not start or its loop failed.
    Daemon(daemon::Error),
    /// The daemon refused an operator request: its reason.
    Refused(String),
    /// The daemon's reply could not be read.
    Reply(serde_json::Error),
    /// The control socket gave no answer.
    Unreachable {
        socket: PathBuf,
        source: control::Error,
    },
    /// `reexec`: the re-executed daemon did not answer within this.
    ReexecTimeout(Duration),
    /// `fence`: the config has no `[fencing]`.
    NoFencing(Action),
    /// `fence`: the action failed.
    Fence { action: Action, source: FenceError },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Usage(why) => f.write_str(why),
            Error::Config(p) => write!(f, "{p}"),
            Error::HostCheck { path, errors } => {
                for (i, e) in errors.iter().enumerate() {
                    if i > 0 {
                        f.write_str("\n")?;
                    }
                    write!(f, "{}: {e}", path.display())?;
                }
                Ok(())
            }
            Error::StartConfig { problems, refusal } => write!(f, "{problems}\n{refusal}"),
            Error::HostRefused { .. } => f.write_str(HOST_REFUSAL),
            Error::Daemon(e) => write!(f, "{e}"),
            Error::Refused(why) => write!(f, "refused: {why}"),
            Error::Reply(e) => write!(f, "unreadable reply from the daemon: {e}"),
            Error::Unreachable { socket, source } => {
                f.write_str(&super::unreachable_reason(source, socket))
            }
            Error::ReexecTimeout(wait) => write!(
                f,
                "the re-executed daemon did not answer within {} s",
                wait.as_secs()
            ),
            Error::NoFencing(action) => write!(
                f,
                "fence {}: no [fencing] section in the config: nothing to fence",
                action.as_str()
            ),
            Error::Fence { action, source } => write!(f, "fence {}: {source}", action.as_str()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Config(p) | Error::StartConfig { problems: p, .. } => Some(p),
            Error::Daemon(e) => Some(e),
            Error::Reply(e) => Some(e),
            Error::Unreachable { source, .. } => Some(source),
            Error::Fence { source, .. } => Some(source),
            Error::Usage(_)
            | Error::HostCheck { .. }
            | Error::HostRefused { .. }
            | Error::Refused(_)
            | Error::ReexecTimeout(_)
            | Error::NoFencing(_) => None,
        }
    }
}

/// The last line `run` logs when the host checks refuse the config.
const HOST_REFUSAL: &str =
    "refusing to start: the config does not fit this node (bbwd check-config lists the same)";

/// How long `run`'s last lines may take to reach stderr (a stalled reader must not hold the
/// exit).
pub const LOG_FLUSH_LIMIT: Duration = Duration::from_secs(1);

/// Tells the operator why the command failed: `run`'s failures go to the log (flushed where
/// the daemon had started to log), a config's problems to stderr as they are, anything else to
/// stderr as `bbwd: REASON`.
pub fn report(e: &Error) {
    match e {
        Error::Config(p) => print_config_error(p),
        Error::HostCheck { path, errors } => {
            for f in errors {
                eprintln!("{}: {f}", path.display());
            }
        }
        Error::StartConfig { problems, refusal } => {
            for line in problems.to_string().lines() {
                log::error!("{line}");
            }
            log::error!("{refusal}");
        }
        Error::HostRefused { path, found } => {
            log_findings(path, found);
            log::error!("{HOST_REFUSAL}");
            bbwd_platform::logger::flush_for(LOG_FLUSH_LIMIT);
        }
        Error::Daemon(d) => {
            log::error!("{d}");
            bbwd_platform::logger::flush_for(LOG_FLUSH_LIMIT);
        }
        other => eprintln!("bbwd: {other}"),
    }
}

/// The host checks' findings in the log, in order: errors as errors, warnings as warnings.
pub fn log_findings(path: &Path, found: &[Finding]) {
    for f in found {
        match f.severity {
            Severity::Error => log::error!("{}: {f}", path.display()),
            Severity::Warning => log::warn!("{}: {f}", path.display()),
        }
    }
}

/// A config error on stderr, ending in a newline.
pub fn print_config_error(p: &dyn std::fmt::Display) {
    let text = p.to_string();
    if text.ends_with('\n') {
        eprint!("{text}");
    } else {
        eprintln!("{text}");
    }
}
