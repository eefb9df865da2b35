//! The timeout arithmetic, pure: every action answers before Pacemaker's own operation timeout
//! (`OCF_RESKEY_CRM_meta_timeout`), and the meta-data advertises defaults that leave the config's
//! own timeouts whole.
//!
//! Owns the margin kept back from Pacemaker's timeout, the budget an action may use, how long
//! `start` waits and how `stop` spends its time. Must not: read a clock or do I/O (the actions
//! pass the time already spent).
//!
//! # Invariants
//! * An action's waits fit its budget: Pacemaker's timeout less [`margin`].
//! * `stop` keeps `min(kill_timeout, budget / 2)` for the wait after SIGKILL.

use std::time::Duration;

/// Smallest and largest share of Pacemaker's timeout kept back so the agent answers in time.
const MARGIN_MIN: Duration = Duration::from_secs(1);
const MARGIN_MAX: Duration = Duration::from_secs(10);

// The config's defaults (`config/`), from which the meta-data's default timeouts are derived.
// A unit test checks they match what an empty config parses to.
pub(super) const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(600);
pub(super) const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(120);
pub(super) const DEFAULT_KILL_TIMEOUT: Duration = Duration::from_secs(10);
/// Seeds ("Monitoring frequency"): not more often than every 15 s; a 30 s monitor timeout.
const MONITOR_INTERVAL: Duration = Duration::from_secs(15);
const MONITOR_TIMEOUT: Duration = Duration::from_secs(30);
/// Added to the config's own timeouts in the meta-data's start/stop defaults: room for the
/// margin, the process start and the last probe.
const META_SLACK: Duration = Duration::from_secs(60);
const META_STOP_SLACK: Duration = Duration::from_secs(30);

/// What is kept back from Pacemaker's timeout `t`: a tenth, at least 1 s, at most 10 s.
pub fn margin(t: Duration) -> Duration {
    (t / 10).clamp(MARGIN_MIN, MARGIN_MAX)
}

/// The time an action may use: Pacemaker's timeout less the margin; `None` without a timeout.
pub fn budget(pacemaker: Option<Duration>) -> Option<Duration> {
    pacemaker.map(|t| t.saturating_sub(margin(t)))
}

/// How long `start` may wait for a healthy `/status`: what is left of the start window
/// (`startup_timeout` from the process's start), within Pacemaker's budget.
pub fn start_wait(
    startup_timeout: Duration,
    started_ago: Duration,
    pacemaker: Option<Duration>,
) -> Duration {
    let window = startup_timeout.saturating_sub(started_ago);
    budget(pacemaker).map_or(window, |b| window.min(b))
}

/// How `stop` spends its time: SIGTERM, `term_wait`, SIGKILL, `kill_wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopPlan {
    pub term_wait: Duration,
    pub kill_wait: Duration,
}

/// The config's `stop_timeout` and `kill_timeout`, shortened to fit Pacemaker's budget: SIGKILL
/// always goes out with `min(kill_timeout, budget / 2)` left to see the group go.
pub fn stop_plan(
    stop_timeout: Duration,
    kill_timeout: Duration,
    pacemaker: Option<Duration>,
) -> StopPlan {
    let Some(b) = budget(pacemaker) else {
        return StopPlan {
            term_wait: stop_timeout,
            kill_wait: kill_timeout,
        };
    };
    let kill_reserve = kill_timeout.min(b / 2);
    let term_wait = stop_timeout.min(b - kill_reserve);
    StopPlan {
        term_wait,
        kill_wait: kill_timeout.min(b - term_wait),
    }
}

/// Default operation timeouts advertised in the meta-data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaTimeouts {
    pub start: Duration,
    pub stop: Duration,
    pub monitor: Duration,
    pub monitor_interval: Duration,
}

/// Start: `startup_timeout` plus slack; stop: longer than `stop_timeout + kill_timeout` by the
/// margin and slack, so `stop_plan` does not have to shorten the config's own timeouts.
pub fn meta_timeouts(startup: Duration, stop: Duration, kill: Duration) -> MetaTimeouts {
    MetaTimeouts {
        start: startup + META_SLACK,
        stop: stop + kill + META_STOP_SLACK,
        monitor: MONITOR_TIMEOUT,
        monitor_interval: MONITOR_INTERVAL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use std::path::Path;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn margin_is_a_tenth_between_one_and_ten_seconds() {
        assert_eq!(margin(S(20)), S(2));
        assert_eq!(margin(S(5)), S(1));
        assert_eq!(margin(S(600)), S(10));
        assert_eq!(budget(Some(S(20))), Some(S(18)));
        assert_eq!(
            budget(Some(Duration::from_millis(500))),
            Some(Duration::ZERO)
        );
        assert_eq!(budget(None), None);
    }

    #[test]
    fn stop_sends_sigkill_before_pacemaker_gives_up() {
        // No Pacemaker timeout (by hand): the config's timeouts as they are.
        assert_eq!(
            stop_plan(S(120), S(10), None),
            StopPlan {
                term_wait: S(120),
                kill_wait: S(10)
            }
        );
        // ocf-tester's 20 s with the defaults: 18 s budget, half of it kept for SIGKILL.
        assert_eq!(
            stop_plan(S(120), S(10), Some(S(20))),
            StopPlan {
                term_wait: S(9),
                kill_wait: S(9)
            }
        );
        // A 60 s budget: the whole kill_timeout is kept.
        assert_eq!(
            stop_plan(S(120), S(10), Some(S(60))),
            StopPlan {
                term_wait: S(44),
                kill_wait: S(10)
            }
        );
        // A tiny budget is split in two.
        assert_eq!(
            stop_plan(S(120), S(10), Some(S(5))),
            StopPlan {
                term_wait: S(2),
                kill_wait: S(2)
            }
        );
        // Short config timeouts are kept.
        assert_eq!(
            stop_plan(S(1), S(1), Some(S(20))),
            StopPlan {
                term_wait: S(1),
                kill_wait: S(1)
            }
        );
        // Whatever the inputs, the plan fits the budget.
        for t in [1, 3, 7, 20, 60, 130, 160, 1000] {
            for stop in [0, 1, 30, 120, 600] {
                for kill in [0, 1, 10, 60] {
                    let p = stop_plan(S(stop), S(kill), Some(S(t)));
                    let b = budget(Some(S(t))).unwrap();
                    assert!(
                        p.term_wait + p.kill_wait <= b,
                        "t={t} stop={stop} kill={kill}"
                    );
                    assert!(p.term_wait <= S(stop) && p.kill_wait <= S(kill));
                    assert!(p.kill_wait >= S(kill).min(b / 2));
                }
            }
        }
    }

    #[test]
    fn start_waits_for_the_rest_of_the_start_window_within_the_budget() {
        assert_eq!(start_wait(S(600), S(0), None), S(600));
        assert_eq!(start_wait(S(600), S(0), Some(S(20))), S(18));
        assert_eq!(start_wait(S(600), S(590), Some(S(660))), S(10));
        assert_eq!(start_wait(S(600), S(900), Some(S(660))), S(0));
    }

    #[test]
    fn default_timeouts_follow_the_seeds_and_leave_stop_its_full_time() {
        let t = meta_timeouts(
            DEFAULT_STARTUP_TIMEOUT,
            DEFAULT_STOP_TIMEOUT,
            DEFAULT_KILL_TIMEOUT,
        );
        assert_eq!(t.monitor, S(30));
        assert_eq!(t.monitor_interval, S(15));
        assert!(t.stop > DEFAULT_STOP_TIMEOUT + DEFAULT_KILL_TIMEOUT);
        assert!(t.start > DEFAULT_STARTUP_TIMEOUT);
        // With the advertised stop timeout, the config's defaults are not shortened.
        assert_eq!(
            stop_plan(DEFAULT_STOP_TIMEOUT, DEFAULT_KILL_TIMEOUT, Some(t.stop)),
            StopPlan {
                term_wait: DEFAULT_STOP_TIMEOUT,
                kill_wait: DEFAULT_KILL_TIMEOUT
            }
        );
        assert_eq!(
            start_wait(DEFAULT_STARTUP_TIMEOUT, S(0), Some(t.start)),
            DEFAULT_STARTUP_TIMEOUT
        );
    }

    #[test]
    fn defaults_match_the_config_defaults() {
        let cfg = config::parse("[node]\nname = \"x\"\n", Path::new("test.toml")).unwrap();
        assert_eq!(cfg.bitbucket.startup_timeout, DEFAULT_STARTUP_TIMEOUT);
        assert_eq!(cfg.bitbucket.stop_timeout, DEFAULT_STOP_TIMEOUT);
        assert_eq!(cfg.bitbucket.kill_timeout, DEFAULT_KILL_TIMEOUT);
        assert_eq!(cfg.bitbucket.monitor_interval, MONITOR_INTERVAL);
        assert_eq!(cfg.bitbucket.monitor_timeout, MONITOR_TIMEOUT);
    }
}
