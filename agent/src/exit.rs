//! Every exit code of `bbwd`, and the only place their numbers are written (SPEC "CLI").
//!
//! Owns the [`Exit`] a command ends with and the mapping of each [`cli::Error`] to one: a
//! command says *what* happened (done, refused, an invalid config, a monitoring-plugins level,
//! an OCF code), this file says which number that is, and `main` hands it to the OS. Must not:
//! print anything, or decide what happened (the commands, the status verdict and the OCF agent
//! do).
//!
//! | command | codes |
//! |---|---|
//! | `run` | 0 after a clean stop, 2 for an invalid config (also one that does not fit this node at start-up), 1 for any other failure |
//! | `check-config` | 0 valid, 2 invalid |
//! | `status` | 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (monitoring-plugins convention) |
//! | operator commands (`maintenance`, `reset`, `switchover`, `confirm-peer-down`, `reexec`) | 0 done, 1 refused or failed, 2 bad usage or config |
//! | `fence` | 0 done, 1 failed, 2 bad usage or config (also no `[fencing]`) |
//! | `ocf` | the OCF resource agent API's return codes ([`OcfCode`]) |
//! | anything else | 2 for bad usage |

use std::process::ExitCode;

use crate::cli;

/// How a command ended. See the module doc for the numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done; the config is valid; the daemon stopped cleanly.
    Ok,
    /// The daemon refused an operator request.
    Refused,
    /// The command failed (the daemon unreachable, a fence not confirmed, a set-up failure).
    Failed,
    /// Bad usage (unknown command, a flag that does not go with it).
    Usage,
    /// The config cannot be read, is invalid, or does not fit this node.
    InvalidConfig,
    /// `bbwd status`: the monitoring-plugins level.
    Plugin(Plugin),
    /// `bbwd ocf`: the OCF return code.
    Ocf(OcfCode),
}

impl Exit {
    /// The process exit status.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Refused | Exit::Failed => 1,
            Exit::Usage | Exit::InvalidConfig => 2,
            Exit::Plugin(level) => match level {
                Plugin::Ok => 0,
                Plugin::Warning => 1,
                Plugin::Critical => 2,
                Plugin::Unknown => 3,
            },
            Exit::Ocf(code) => match code {
                OcfCode::Success => 0,
                OcfCode::ErrGeneric => 1,
                OcfCode::ErrArgs => 2,
                OcfCode::ErrUnimplemented => 3,
                OcfCode::ErrInstalled => 5,
                OcfCode::ErrConfigured => 6,
                OcfCode::NotRunning => 7,
            },
        }
    }

    /// What a failed command's error means as an exit.
    pub fn of(e: &cli::Error) -> Exit {
        use cli::Error as E;
        match e {
            E::Usage(_) => Exit::Usage,
            E::Config(_) | E::HostCheck { .. } | E::StartConfig { .. } | E::HostRefused { .. } => {
                Exit::InvalidConfig
            }
            // SPEC: 2 for a config problem, also one only found when the daemon starts.
            E::Daemon(d) if d.is_config() => Exit::InvalidConfig,
            E::Daemon(_) => Exit::Failed,
            E::Refused(_) => Exit::Refused,
            E::Reply(_) | E::Unreachable { .. } | E::ReexecTimeout(_) => Exit::Failed,
            // Nothing to fence is a config matter, like a missing key.
            E::NoFencing(_) => Exit::InvalidConfig,
            E::Fence { .. } => Exit::Failed,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e.code())
    }
}

/// The monitoring-plugins levels of `bbwd status`, from best to worst but `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plugin {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl Plugin {
    /// The word of the status line (`BBWD OK - ...`).
    pub fn word(self) -> &'static str {
        match self {
            Plugin::Ok => "OK",
            Plugin::Warning => "WARNING",
            Plugin::Critical => "CRITICAL",
            Plugin::Unknown => "UNKNOWN",
        }
    }
}

/// OCF return codes (OCF resource agent API, "Return codes"): the ones this agent uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OcfCode {
    Success,
    ErrGeneric,
    ErrArgs,
    ErrUnimplemented,
    ErrInstalled,
    ErrConfigured,
    NotRunning,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ocf_codes_are_the_ocf_numbers() {
        let codes = [
            (OcfCode::Success, 0),
            (OcfCode::ErrGeneric, 1),
            (OcfCode::ErrArgs, 2),
            (OcfCode::ErrUnimplemented, 3),
            (OcfCode::ErrInstalled, 5),
            (OcfCode::ErrConfigured, 6),
            (OcfCode::NotRunning, 7),
        ];
        for (c, n) in codes {
            assert_eq!(Exit::Ocf(c).code(), n, "{c:?}");
        }
    }

    #[test]
    fn status_follows_the_monitoring_plugins_convention() {
        let levels = [
            (Plugin::Ok, 0),
            (Plugin::Warning, 1),
            (Plugin::Critical, 2),
            (Plugin::Unknown, 3),
        ];
        for (l, n) in levels {
            assert_eq!(Exit::Plugin(l).code(), n, "{l:?}");
        }
    }

    #[test]
    fn commands_follow_the_spec() {
        assert_eq!(Exit::Ok.code(), 0);
        assert_eq!(Exit::Refused.code(), 1);
        assert_eq!(Exit::Failed.code(), 1);
        assert_eq!(Exit::Usage.code(), 2);
        assert_eq!(Exit::InvalidConfig.code(), 2);
    }
}
