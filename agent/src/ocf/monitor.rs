//! `monitor`: is Bitbucket running here, and healthy? 7 when nothing runs, 0 when `/status`
//! is healthy (or STARTING within `startup_timeout` of the process's start), 1 otherwise.
//!
//! Must not: act on what it finds (a failed monitor is Pacemaker's to act on), or answer 7 for
//! a Bitbucket that runs under bbwd's own daemon (Pacemaker would start a second one elsewhere).

use std::time::Duration;

use bbwd_platform::http::{probe_once, StatusTarget};
use bbwd_platform::process::{self, PidRecord, Supervised};

use crate::config::Config;
use crate::machine::ProbeText;

use super::agent::{Agent, Outcome};
use super::health::{classify, monitor_code, Health};
use super::instance::{daemon_supervises, find, Found};
use super::{OcfCode, PIDFILE_NAME};

impl Agent {
    pub(super) fn monitor(&self) -> Result<Outcome, Outcome> {
        let (cfg, target) = match self.load() {
            Ok(v) => v,
            // A probe on a node where Bitbucket is not set up: it cannot be running there.
            Err((_, msg)) if self.env.is_probe() => {
                return Ok((OcfCode::NotRunning, format!("{msg} (probe: not running)")))
            }
            Err(e) => return Err(e),
        };
        let pidfile = cfg.node.state_dir.join(PIDFILE_NAME);
        match find(&pidfile) {
            Found::Nothing => self.monitor_unrecorded(&cfg, &target),
            Found::Stale(record) => monitor_stale(&record),
            Found::Proc(p) => self.monitor_recorded(&cfg, &target, p),
        }
    }

    /// Nothing recorded: report what runs, whoever started it. A Bitbucket under bbwd's own
    /// daemon here is running (7 would make Pacemaker start a second one elsewhere).
    fn monitor_unrecorded(&self, cfg: &Config, target: &StatusTarget) -> Result<Outcome, Outcome> {
        let Some(why) = daemon_supervises(cfg) else {
            return Ok((OcfCode::NotRunning, String::new()));
        };
        let outcome = probe_once(target, self.probe_timeout(cfg));
        let msg = format!(
            "{why}: Bitbucket runs under bbwd's daemon, not Pacemaker ({}); disable bbwd.service",
            ProbeText(&outcome)
        );
        if classify(&outcome) == Health::Healthy {
            Ok((OcfCode::Success, msg))
        } else {
            Err((OcfCode::ErrGeneric, msg))
        }
    }

    /// The recorded process: gone (7, or 1 while members of its group remain), else its
    /// `/status`.
    fn monitor_recorded(
        &self,
        cfg: &Config,
        target: &StatusTarget,
        mut p: Supervised,
    ) -> Result<Outcome, Outcome> {
        if p.try_collect_exit().is_some() {
            return if p.group_alive() {
                Err((
                    OcfCode::ErrGeneric,
                    format!(
                        "Bitbucket pid {} exited but members of its process group remain",
                        p.pid()
                    ),
                ))
            } else {
                Ok((
                    OcfCode::NotRunning,
                    format!("Bitbucket pid {} exited", p.pid()),
                ))
            };
        }
        let outcome = probe_once(target, self.probe_timeout(cfg));
        let health = classify(&outcome);
        let in_window =
            process::started_ago(&p.record()).is_some_and(|a| a < cfg.bitbucket.startup_timeout);
        let code = monitor_code(health, in_window);
        let msg = match (code, health) {
            (OcfCode::Success, Health::Healthy) => String::new(),
            (OcfCode::Success, _) => format!("pid {}: still starting", p.pid()),
            (_, Health::Starting) => format!(
                "pid {}: still STARTING after bitbucket.startup_timeout ({})",
                p.pid(),
                humantime::format_duration(cfg.bitbucket.startup_timeout)
            ),
            _ => format!("pid {}: /status: {}", p.pid(), ProbeText(&outcome)),
        };
        if code == OcfCode::Success {
            Ok((code, msg))
        } else {
            Err((code, msg))
        }
    }

    /// The probe's wait: `monitor_timeout`, within what is left of Pacemaker's budget.
    fn probe_timeout(&self, cfg: &Config) -> Duration {
        self.budget_left()
            .map_or(cfg.bitbucket.monitor_timeout, |b| {
                b.min(cfg.bitbucket.monitor_timeout)
            })
    }
}

/// The recorded leader is gone: 7, or 1 while members of its process group remain.
fn monitor_stale(record: &PidRecord) -> Result<Outcome, Outcome> {
    if process::stale_group_alive(record) {
        Err((
            OcfCode::ErrGeneric,
            format!(
                "Bitbucket pid {} is gone but members of its process group {} remain",
                record.pid, record.pgid
            ),
        ))
    } else {
        Ok((
            OcfCode::NotRunning,
            format!("recorded Bitbucket pid {} is gone", record.pid),
        ))
    }
}
