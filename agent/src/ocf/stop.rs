//! `stop`: SIGTERM to Bitbucket's process group, `stop_timeout`, SIGKILL, `kill_timeout`
//! (shortened to Pacemaker's budget left), then the pid file removed; 0 only when the whole
//! group is gone, 1 otherwise (Pacemaker then fences the node).
//!
//! # Invariants
//! * The record is read and removed under the pid-file lock, and removed only if it still names
//!   what was stopped: a start that recorded another process meanwhile gets that one stopped too
//!   (at most [`MAX_STOP_ROUNDS`] rounds).
//!
//! Must not: start anything, or report success while a member of the group remains.

use bbwd_platform::process::{self, GroupSignal};

use crate::config::Config;

use super::agent::{Agent, Outcome};
use super::instance::{find, wait_until, Found};
use super::timeouts::stop_plan;
use super::{OcfCode, PIDFILE_NAME};

/// A stop stops what the record names, again if a racing start recorded another meanwhile; so
/// many rounds at most, then it gives up (a start loop beside it).
const MAX_STOP_ROUNDS: usize = 4;

impl Agent {
    /// Stops what the pid file names and removes the record, only if it still names what was
    /// stopped; a start that recorded another process meanwhile gets that one stopped too.
    pub(super) fn stop(&self) -> Result<Outcome, Outcome> {
        let (cfg, _) = self.load()?;
        let pidfile = cfg.node.state_dir.join(PIDFILE_NAME);
        for _ in 0..MAX_STOP_ROUNDS {
            let found = {
                let _record = self.pidfile_lock(&cfg)?;
                find(&pidfile)
            };
            let stopped = match &found {
                Found::Nothing => return Ok((OcfCode::Success, String::new())),
                Found::Proc(p) => p.record(),
                Found::Stale(record) => *record,
            };
            self.stop_one(&cfg, found)?;
            let _record = self.pidfile_lock(&cfg)?;
            match process::read_pidfile(&pidfile) {
                Ok(Some(now)) if now != stopped => {
                    self.log(
                        "INFO",
                        &format!(
                            "a start recorded Bitbucket pid {} meanwhile: stopping it too",
                            now.pid
                        ),
                    );
                    continue;
                }
                _ => {
                    if let Err(e) = process::remove_pidfile(&pidfile) {
                        self.log("WARN", &e.to_string());
                    }
                    return Ok((OcfCode::Success, "Bitbucket stopped".to_string()));
                }
            }
        }
        Err((
            OcfCode::ErrGeneric,
            format!(
                "starts keep recording a new Bitbucket while this stop stops the last \
                 ({MAX_STOP_ROUNDS} rounds)"
            ),
        ))
    }

    /// SIGTERM, `stop_timeout`, SIGKILL, `kill_timeout` (shortened to Pacemaker's budget left)
    /// to what `find` found; `Err` if its group survives.
    fn stop_one(&self, cfg: &Config, found: Found) -> Result<(), Outcome> {
        let plan = stop_plan(
            cfg.bitbucket.stop_timeout,
            cfg.bitbucket.kill_timeout,
            self.env
                .timeout
                .map(|t| t.saturating_sub(self.started.elapsed())),
        );
        let gone = match found {
            Found::Nothing => true,
            Found::Stale(record) => {
                if process::kill_stale_group(&record) {
                    self.log(
                        "WARN",
                        &format!("SIGKILL to what was left of process group {}", record.pgid),
                    );
                }
                wait_until(plan.kill_wait, || !process::stale_group_alive(&record))
            }
            Found::Proc(mut p) => {
                let pid = p.pid();
                if let Err(e) = p.signal_group(GroupSignal::Term) {
                    self.log("ERROR", &e.to_string());
                }
                self.log(
                    "INFO",
                    &format!(
                        "SIGTERM to Bitbucket pid {pid}'s group; SIGKILL after {}",
                        humantime::format_duration(plan.term_wait)
                    ),
                );
                if wait_until(plan.term_wait, || !p.group_alive()) {
                    true
                } else {
                    self.log(
                        "WARN",
                        &format!("Bitbucket pid {pid} still there: SIGKILL to its group"),
                    );
                    if let Err(e) = p.signal_group(GroupSignal::Kill) {
                        self.log("ERROR", &e.to_string());
                    }
                    wait_until(plan.kill_wait, || !p.group_alive())
                }
            }
        };
        if gone {
            Ok(())
        } else {
            Err((
                OcfCode::ErrGeneric,
                "Bitbucket's process group survives SIGKILL: this node cannot stop it".to_string(),
            ))
        }
    }
}
