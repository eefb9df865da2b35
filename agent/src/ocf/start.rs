//! `start`: Bitbucket running and healthy here, started detached if it was not (a new session,
//! its output in `state_dir/ocf-bitbucket.out`), recorded in the pid file, then `/status`
//! probed every [`STARTUP_POLL`] until healthy (0), the leader exits (1), or the start window
//! or Pacemaker's budget is spent (1).
//!
//! # Invariants
//! * Never a second instance: one start at a time (`ocf-start.lock`), a running one is adopted,
//!   what is left of a dead one's process group is killed first, and nothing may answer on
//!   `status_url` before a new one starts.
//! * A process is spawned and recorded under the pid-file lock, and killed at once if it cannot
//!   be recorded.
//!
//! Must not: start Bitbucket where bbwd's own daemon supervises it.

use std::path::Path;
use std::time::{Duration, Instant};

use bbwd_platform::fs;
use bbwd_platform::http::{probe_once, StatusTarget};
use bbwd_platform::poll::{PollSet, Want};
use bbwd_platform::process::{self, GroupSignal, SpawnSpec, Supervised};

use crate::config::Config;
use crate::machine::ProbeText;

use super::agent::{Agent, Outcome};
use super::health::{classify, Health};
use super::instance::{daemon_supervises, find, wait_until, Found, STOP_POLL};
use super::timeouts::start_wait;
use super::{OcfCode, OUTPUT_NAME, PIDFILE_NAME, START_LOCK_NAME};

/// Between two `/status` probes while waiting for a start. Bitbucket takes minutes to start;
/// one probe a second costs nothing and ends the start soon after it is healthy.
const STARTUP_POLL: Duration = Duration::from_secs(1);
/// How long a start waits for a concurrent one without a Pacemaker timeout to go by.
const DEFAULT_START_LOCK_WAIT: Duration = Duration::from_secs(600);

impl Agent {
    pub(super) fn start(&self) -> Result<Outcome, Outcome> {
        let (cfg, spec, target) = self.validate()?;
        if let Some(why) = daemon_supervises(&cfg) {
            return Err((
                OcfCode::ErrGeneric,
                format!("{why}: bbwd's daemon supervises Bitbucket on this node; under Pacemaker, disable bbwd.service"),
            ));
        }
        fs::ensure_dir(&cfg.node.state_dir, 0o750)
            .map_err(|e| (OcfCode::ErrGeneric, format!("node.state_dir: {e}")))?;
        fs::check_writable(&cfg.node.state_dir).map_err(|e| {
            (
                OcfCode::ErrGeneric,
                format!("node.state_dir is not writable ({e}): refusing to start Bitbucket without a pid file"),
            )
        })?;
        // One start at a time: a second concurrent start waits, then adopts what the first
        // started. Held until the start is over.
        let wait = self.budget_left().unwrap_or(DEFAULT_START_LOCK_WAIT);
        let _lock = fs::StateLock::acquire(&cfg.node.state_dir, START_LOCK_NAME, Some(wait))
            .map_err(|e| {
                (
                    OcfCode::ErrGeneric,
                    format!("another start is under way: {e}"),
                )
            })?;
        let p = self.adopt_or_spawn(&cfg, &spec, &target)?;
        self.wait_healthy(&cfg, &target, p)
    }

    /// The recorded Bitbucket if it runs; else, once whatever is left of an earlier instance is
    /// gone and nothing answers on `status_url`, a new one, spawned and recorded.
    fn adopt_or_spawn(
        &self,
        cfg: &Config,
        spec: &SpawnSpec,
        target: &StatusTarget,
    ) -> Result<Supervised, Outcome> {
        let pidfile = cfg.node.state_dir.join(PIDFILE_NAME);
        let found = match find(&pidfile) {
            Found::Proc(mut p) => match p.try_collect_exit() {
                None => Ok(p),
                Some(_) => Err(Found::Proc(p)),
            },
            other => Err(other),
        };
        let leftover = match found {
            Ok(p) => {
                self.log("INFO", &format!("Bitbucket pid {} already runs", p.pid()));
                return Ok(p);
            }
            Err(leftover) => leftover,
        };
        // Whatever is left of an earlier instance goes before a new one starts.
        self.clear_leftovers(leftover, cfg.bitbucket.kill_timeout)?;
        // Never two: nothing of ours runs, so nothing may answer on status_url.
        if let Ok(s) = std::net::TcpStream::connect_timeout(
            &target.addr,
            cfg.bitbucket.monitor_timeout.min(STARTUP_POLL),
        ) {
            drop(s);
            return Err((
                OcfCode::ErrGeneric,
                format!(
                    "something already accepts connections on {} (bitbucket.status_url) \
                     while no Bitbucket of this agent runs: not starting a second one",
                    target.addr
                ),
            ));
        }
        let _record = self.pidfile_lock(cfg)?;
        self.spawn(cfg, spec, &pidfile)
    }

    /// Probes `/status` every [`STARTUP_POLL`] until healthy (0), the leader exits (1), or the
    /// rest of the start window or Pacemaker's budget is spent (1).
    fn wait_healthy(
        &self,
        cfg: &Config,
        target: &StatusTarget,
        mut p: Supervised,
    ) -> Result<Outcome, Outcome> {
        let ago = process::started_ago(&p.record()).unwrap_or_default();
        let wait = start_wait(cfg.bitbucket.startup_timeout, ago, self.env.timeout);
        let deadline = Instant::now() + wait;
        let mut set = PollSet::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let timeout = cfg.bitbucket.monitor_timeout.min(left.max(STOP_POLL));
            let outcome = probe_once(target, timeout);
            if classify(&outcome) == Health::Healthy {
                return Ok((
                    OcfCode::Success,
                    format!(
                        "Bitbucket pid {} is healthy ({})",
                        p.pid(),
                        ProbeText(&outcome)
                    ),
                ));
            }
            if let Some(exit) = p.try_collect_exit() {
                return Err((
                    OcfCode::ErrGeneric,
                    format!(
                        "Bitbucket pid {} exited during start ({exit:?}); its output is in {}",
                        p.pid(),
                        cfg.node.state_dir.join(OUTPUT_NAME).display()
                    ),
                ));
            }
            let now = Instant::now();
            if now >= deadline {
                let why = if ago + wait >= cfg.bitbucket.startup_timeout {
                    "bitbucket.startup_timeout"
                } else {
                    "Pacemaker's start timeout"
                };
                return Err((
                    OcfCode::ErrGeneric,
                    format!(
                        "Bitbucket pid {} not healthy before {why} ran out; last /status: {}",
                        p.pid(),
                        ProbeText(&outcome)
                    ),
                ));
            }
            // Sleep until the next probe, or until the leader exits.
            set.clear();
            if let Some(fd) = p.pidfd() {
                let _ = set.add(fd, Want::Read);
            }
            let _ = set.wait(Some(STARTUP_POLL.min(deadline - now)));
        }
    }

    /// Starts Bitbucket detached and records it; Bitbucket's previous output becomes `.1`.
    fn spawn(&self, cfg: &Config, spec: &SpawnSpec, pidfile: &Path) -> Result<Supervised, Outcome> {
        let output = cfg.node.state_dir.join(OUTPUT_NAME);
        let _ = std::fs::rename(&output, cfg.node.state_dir.join(format!("{OUTPUT_NAME}.1")));
        let p = Supervised::spawn_detached(spec, &output)
            .map_err(|e| (OcfCode::ErrGeneric, e.to_string()))?;
        if let Err(e) = process::write_pidfile(pidfile, &p.record()) {
            // Unrecorded, it could never be stopped: take it down again at once.
            let _ = p.signal_group(GroupSignal::Kill);
            return Err((OcfCode::ErrGeneric, e.to_string()));
        }
        self.log(
            "INFO",
            &format!(
                "started Bitbucket pid {}: {:?}",
                p.pid(),
                cfg.bitbucket.command
            ),
        );
        Ok(p)
    }

    /// Kills what is left of an instance whose leader is gone, and waits for it to go.
    fn clear_leftovers(&self, found: Found, kill_timeout: Duration) -> Result<(), Outcome> {
        let wait = self
            .budget_left()
            .map_or(kill_timeout, |left| left.min(kill_timeout));
        let gone = match found {
            Found::Nothing => true,
            Found::Stale(record) => {
                if process::kill_stale_group(&record) {
                    self.log(
                        "WARN",
                        &format!("killed what was left of process group {}", record.pgid),
                    );
                }
                wait_until(wait, || !process::stale_group_alive(&record))
            }
            Found::Proc(mut p) => {
                if p.group_alive() {
                    let _ = p.signal_group(GroupSignal::Kill);
                    self.log(
                        "WARN",
                        &format!("killed what was left of process group {}", p.record().pgid),
                    );
                }
                wait_until(wait, || !p.group_alive())
            }
        };
        if gone {
            Ok(())
        } else {
            Err((
                OcfCode::ErrGeneric,
                "members of an earlier Bitbucket's process group survive SIGKILL".to_string(),
            ))
        }
    }
}
