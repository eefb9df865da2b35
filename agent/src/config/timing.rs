//! The timing rules of `bbwd_core::timing` as they apply to a config: R1-R3 at load (each
//! violation reported on the line of the key to change), R5 at `bbwd run` ([`check_at_start`],
//! which needs systemd's `WatchdogSec`), and the durations they relate ([`timings`]).
//!
//! Owns: which durations the walk records for the rules ([`TimingInputs`], through
//! [`Checker::timed`]) and where a violation is reported.
//!
//! Must not: state a rule: `bbwd_core::timing::check` is the one statement of them; this file
//! feeds it and places its verdicts.

use std::path::Path;
use std::time::Duration;

use bbwd_core::timing::{self, Rule, Severity, Timings};
use toml::de::DeTable;

use super::bitbucket::{DEFAULT_KILL_TIMEOUT, DEFAULT_STOP_TIMEOUT};
use super::fencing::DEFAULT_FENCE_TIMEOUT;
use super::values::Zero;
use super::walk::{key_offset, section_offset, Checker, Sec};
use super::{Config, Problem, Problems, WatchdogDevice};

/// What the timing rules need, recorded while the sections are read: `None` when the value was
/// invalid (already reported; the rules involving it are then not checked) or its section is
/// absent.
#[derive(Default)]
pub(super) struct TimingInputs {
    pub(super) heartbeat_interval: Option<Duration>,
    pub(super) peer_timeout: Option<Duration>,
    pub(super) boot_wait: Option<Duration>,
    /// `Some(None)`: not set (derived).
    pub(super) fence_delay: Option<Option<Duration>>,
    pub(super) fence_timeout: Option<Duration>,
    pub(super) stop_timeout: Option<Duration>,
    pub(super) kill_timeout: Option<Duration>,
}

impl Checker<'_> {
    /// A duration of a timing rule: read as [`Checker::duration`] (zero refused) and, when
    /// valid or defaulted, recorded in `self.times` through `slot`.
    pub(super) fn timed(
        &mut self,
        sec: Sec<'_, '_>,
        key: &str,
        default: Duration,
        slot: impl FnOnce(&mut TimingInputs) -> &mut Option<Duration>,
    ) -> Duration {
        let (value, span) = self.duration(sec, key, default, Zero::Refused);
        if span.is_some() || sec.get(key).is_none() {
            *slot(&mut self.times) = Some(value);
        }
        value
    }

    /// The timing rules of `bbwd_core::timing` (pair mode only), each violation reported on
    /// the line of the key to change (or, when that key is not written, of the other key, or
    /// of the section). Not checked when one of the values is itself invalid (reported).
    pub(super) fn timing_rules(&mut self, root: &DeTable<'_>) {
        if !root.contains_key("cluster") {
            return;
        }
        let Some(timings) = self.times.timings(root.contains_key("fencing")) else {
            return;
        };
        let fence_delay_written = self.times.fence_delay.is_some_and(|set| set.is_some());
        for v in timing::check(&timings) {
            if v.severity != Severity::Refuse {
                continue;
            }
            // A derived fence_delay breaks R2 only when peer_timeout < heartbeat_interval,
            // which R1 already reports: do not blame a key the operator did not write.
            if v.rule == Rule::FenceDelay && !fence_delay_written {
                continue;
            }
            let offset = key_offset(root, v.key)
                .or_else(|| key_offset(root, v.other_key))
                .or_else(|| section_offset(root, v.key));
            self.report(v.key, offset, v.to_string());
        }
    }
}

impl TimingInputs {
    /// The durations the load-time rules relate, written or defaulted; `None` when one of them
    /// was invalid (reported). `fencing_written`: without `[fencing]` (reported elsewhere) its
    /// timeout is the default.
    fn timings(&self, fencing_written: bool) -> Option<Timings> {
        let fence_timeout = self
            .fence_timeout
            .or((!fencing_written).then_some(DEFAULT_FENCE_TIMEOUT))?;
        let peer_timeout = self.peer_timeout?;
        Some(Timings {
            heartbeat_interval: self.heartbeat_interval?,
            peer_timeout,
            fence_delay: self
                .fence_delay?
                .unwrap_or(timing::default_fence_delay(fence_timeout, peer_timeout)),
            boot_wait: self.boot_wait?,
            fence_timeout,
            stop_timeout: self.stop_timeout.unwrap_or(DEFAULT_STOP_TIMEOUT),
            kill_timeout: self.kill_timeout.unwrap_or(DEFAULT_KILL_TIMEOUT),
            step_timeout: crate::cluster::STEP_TIMEOUT,
            // Only R5 and the W1 warning use these: R5 at start (`check_at_start`), W1 in
            // `warnings`.
            hardware_watchdog: None,
            systemd_watchdog: None,
        })
    }
}

/// The durations of a pair config for `bbwd_core::timing` (`None` in single and mirror mode),
/// with systemd's `WatchdogSec` when known.
pub fn timings(cfg: &Config, systemd_watchdog: Option<Duration>) -> Option<Timings> {
    let (cluster, fencing) = (cfg.cluster.as_ref()?, cfg.fencing.as_ref()?);
    Some(Timings {
        heartbeat_interval: cluster.heartbeat_interval,
        peer_timeout: cluster.peer_timeout,
        fence_delay: cluster.fence_delay,
        boot_wait: cluster.boot_wait,
        fence_timeout: fencing.timeout,
        stop_timeout: cfg.bitbucket.stop_timeout,
        kill_timeout: cfg.bitbucket.kill_timeout,
        step_timeout: crate::cluster::STEP_TIMEOUT,
        hardware_watchdog: match cfg.watchdog.device {
            WatchdogDevice::None => None,
            WatchdogDevice::Device(_) | WatchdogDevice::Ipmi => Some(cfg.watchdog.timeout),
        },
        systemd_watchdog,
    })
}

/// The timing rule only `bbwd run` can check (R5): in pair mode with a hardware watchdog,
/// systemd's `WatchdogSec` (`WATCHDOG_USEC`, `systemd_watchdog`) must be more than twice
/// `watchdog.timeout`, so that a hung loop holding the service resets the node instead of
/// getting bbwd restarted. `path` names the config in the problems (like [`load`]'s).
pub fn check_at_start(
    cfg: &Config,
    path: &Path,
    systemd_watchdog: Option<Duration>,
) -> Result<(), Problems> {
    let problems: Vec<Problem> = timings(cfg, systemd_watchdog)
        .map(|t| timing::check(&t))
        .unwrap_or_default()
        .iter()
        .filter(|v| v.rule == Rule::SystemdWatchdog && v.severity == Severity::Refuse)
        .map(|v| Problem {
            key: v.key.to_string(),
            line: None,
            message: v.to_string(),
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Problems {
            path: path.to_path_buf(),
            problems,
        })
    }
}
