//! Timing rules: the relations between bbwd's durations that the pair's safety argument rests
//! on, written down once and checked before anything starts (sbd's discipline: a config whose
//! timeouts contradict the safety argument is refused, not run and hoped for).
//!
//! Owns: [`Timings`] (the durations involved), the rules and [`check`], the derived values
//! [`default_fence_delay`] and [`release_deadline`] with their margins. Must not: do I/O, read
//! the environment or a clock, or know where a value came from. `agent/src/config/` builds a
//! [`Timings`] from bbwd.toml, turns each [`Violation`] into a config problem with its line
//! (`bbwd check-config` and `bbwd run` exit 2), and at `bbwd run` passes in systemd's
//! `WATCHDOG_USEC` for R5.
//!
//! # Theory of operation: timing rules
//!
//! The pair is safe because a node takes the service over only after a *confirmed* fence of the
//! peer (its BMC reports it off), an *authenticated* hand-over by the peer over the heartbeat,
//! or an operator's `confirm-peer-down`. The rules below do not make that argument; they make
//! sure the timers around it cannot defeat it (both nodes fencing each other, one blip taken for
//! a death, a hung node coming back with amnesia). `hb` = `cluster.heartbeat_interval`.
//!
//! ```text
//!  links cut ─┐
//!             ├── peer_timeout ──┤ A (holds the service) detects the silence: fences at once
//!             │   (≤ hb apart)   │ ├──────── fencing.timeout ────────┤ B is off (confirmed)
//!             ├── peer_timeout ──┼─┤ B (standby) detects the silence: waits fence_delay
//!                                  ├──────────── fence_delay ──────────────┤ B would fire here
//!                                  R2: B fires only after A's whole attempt had its chance
//! ```
//!
//! * **R1** `cluster.peer_timeout >= 3 × cluster.heartbeat_interval`. One or two lost or late
//!   beats (a dropped datagram, a busy switch, a slow pass of the peer's loop) must not declare
//!   the peer dead: a false "dead" starts a fence race against a healthy node.
//! * **R2** `cluster.fence_delay >= fencing.timeout + cluster.heartbeat_interval`. In a split
//!   brain (both alive, every link cut) the node holding the service fences at once and the
//!   other waits `fence_delay` (the priority delay). Both detect the silence within `hb` of each
//!   other (each heard its last beat less than `hb` before the cut), and the holder's whole
//!   fence attempt, RMCP+ session set-up included, is bounded by `fencing.timeout`. If the
//!   waiting node fired earlier, both BMCs would power their nodes off and nobody would serve.
//!   `fencing.timeout` here stands for the *peer's* `[fencing] timeout`: keep `[cluster]` timings
//!   and `[fencing] timeout` the same on both nodes. Default (`fence_delay` not set):
//!   [`default_fence_delay`] = `fencing.timeout + cluster.peer_timeout`, which satisfies R2
//!   whenever R1 holds (`peer_timeout >= 3 hb > hb`); the surplus (`peer_timeout - hb`) absorbs
//!   the two loops' pass latency and the BMC's own tick.
//! * **R3** `cluster.boot_wait >= cluster.peer_timeout`. A booting node treats a silent peer as
//!   dead only after `boot_wait` (wait-for-all, as corosync's `two_node` does): links, switches
//!   and the peer's own bbwd may still be coming up, and the peer must get at least the one full
//!   `peer_timeout` a running node would get before it is fenced.
//! * **R4** the release deadline. A release (hand-over, escalation, isolation, shutdown) stops
//!   Bitbucket through the supervisor: SIGTERM, `bitbucket.stop_timeout`, SIGKILL,
//!   `bitbucket.kill_timeout`, then "unkillable". [`release_deadline`] = `stop_timeout +
//!   kill_timeout +` [`RELEASE_MARGIN`] is the pair layer's backstop measured from its
//!   `Permit { run: false }`: a release whose stop has not completed by then self-fences (stops
//!   petting the hardware watchdog, the node resets). It is derived, so it cannot contradict
//!   the supervisor; no key to refuse. The margin keeps the backstop from ever firing before the
//!   supervisor's own verdict (see [`RELEASE_MARGIN`]).
//! * **R5** (at `bbwd run`, where systemd's `WATCHDOG_USEC` is known) in pair mode with a
//!   hardware watchdog: systemd's `WatchdogSec > 2 × watchdog.timeout`. A hung loop on a node
//!   that holds the service must reset the node (the hardware watchdog) and not merely get bbwd
//!   restarted by systemd: a restarted bbwd re-adopts Bitbucket and the VIP with none of the
//!   old process's state (a release under way, its deadline, a self-fence decided), while the
//!   peer may be fencing or an operator confirming "down" on the strength of the silence. Why
//!   twice: the loop sends `WATCHDOG=1` every `WatchdogSec/2` and pets the hardware watchdog
//!   every `T/3` (`T` = `watchdog.timeout`), each from the end of a pass. If the loop hangs
//!   just after a pet and just before a keep-alive was due, the hardware fires `T` after the
//!   hang and systemd `WatchdogSec/2` after it: the hardware is first only if `T <
//!   WatchdogSec/2`. (systemd's `RestartSec` adds slack in the hardware's favour; it is not
//!   counted.) A device counts whole seconds, rounded down, so the configured `T` is an upper
//!   bound. Fix: a drop-in (`systemctl edit bbwd`) with `[Service] WatchdogSec=` above twice
//!   the timeout, or a shorter `watchdog.timeout`. The shipped unit's `WatchdogSec=150s` passes
//!   with the default `T = 60s`. Single-node mode is not checked: there a restart of bbwd
//!   (Bitbucket keeps running and is re-adopted) is the better answer to a hung loop, and an
//!   operator may lower `WatchdogSec` in a drop-in to get it.
//!
//! # Not a rule: the hardware watchdog against the peer's fence delay
//! sbd must refuse a watchdog timeout longer than the peer's wait, because sbd's peers take
//! silence plus time as proof of death ("watchdog fencing"). bbwd's peer never does: silence
//! only makes it *try* to fence, and it takes over after the BMC confirms the power off (or an
//! authenticated hand-over, or an operator). A self-fencing node that has not reset yet is
//! either powered off by the peer's fence (safe, whatever the watchdog does) or still talking
//! over the heartbeat (the peer does not take over). So `watchdog.timeout` is not part of the
//! safety argument and is not refused; it only lengthens the outage on the self-fence path
//! (`release_deadline + T + peer_timeout + fence_delay` in the worst case). What *is* reported,
//! as a warning ([`Severity::Warning`], exit 0), is pair mode with no hardware watchdog at all
//! (`watchdog.device = "none"`): then a self-fence resets nothing, and a node whose Bitbucket
//! survives SIGKILL keeps the service down until an operator acts.
//!
//! # Invariants
//! * [`check`] reports each violated rule once, with both keys, both values, the bound and the
//!   reason; it never reports a rule whose inputs are unknown (`None`).
//! * [`default_fence_delay`] of any `Timings` that satisfies R1 satisfies R2.

use std::fmt;
use std::time::Duration;

/// Most violations one [`check`] returns (one per rule, with room to spare).
pub const MAX_VIOLATIONS: usize = 8;

/// Lost or late beats R1 tolerates: `peer_timeout` must cover this many heartbeat intervals.
pub const BEATS_PER_PEER_TIMEOUT: u32 = 3;

/// R4's margin over `stop_timeout + kill_timeout`: the supervisor notices each of its two
/// deadlines in the loop pass after it (milliseconds apart on a sound loop) and reports
/// "unkillable" itself at `stop_timeout + kill_timeout`. Five seconds is far above that
/// latency and small beside any real stop, so the pair's backstop never pre-empts the
/// supervisor's own verdict; a loop stalled for longer is the watchdog's business (R5).
pub const RELEASE_MARGIN: Duration = Duration::from_secs(5);

/// R5: systemd's `WatchdogSec` must exceed this many hardware watchdog timeouts (bbwd sends
/// `WATCHDOG=1` every `WatchdogSec / 2`; see the module doc).
pub const SYSTEMD_WATCHDOG_FACTOR: u32 = 2;

/// The durations the rules relate, as configured (pair mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// `cluster.heartbeat_interval`.
    pub heartbeat_interval: Duration,
    /// `cluster.peer_timeout`.
    pub peer_timeout: Duration,
    /// `cluster.fence_delay` (set, or [`default_fence_delay`]).
    pub fence_delay: Duration,
    /// `cluster.boot_wait`.
    pub boot_wait: Duration,
    /// `fencing.timeout`: one whole fence attempt, BMC session set-up included.
    pub fence_timeout: Duration,
    /// `bitbucket.stop_timeout`.
    pub stop_timeout: Duration,
    /// `bitbucket.kill_timeout`.
    pub kill_timeout: Duration,
    /// A takeover or release step (hooks, VIP): it fails after this long. Enters no refusal
    /// (a failed step is reported and the release goes on), listed for the worst case.
    pub step_timeout: Duration,
    /// `watchdog.timeout` when a hardware watchdog is configured (`device` not `"none"`).
    pub hardware_watchdog: Option<Duration>,
    /// systemd's `WatchdogSec` (`WATCHDOG_USEC`) when known: only at `bbwd run` under systemd.
    pub systemd_watchdog: Option<Duration>,
}

/// The rules of the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// R1: `peer_timeout >= 3 × heartbeat_interval`.
    PeerTimeout,
    /// R2: `fence_delay >= fencing.timeout + heartbeat_interval`.
    FenceDelay,
    /// R3: `boot_wait >= peer_timeout`.
    BootWait,
    /// R5: `WatchdogSec > 2 × watchdog.timeout` (pair mode, hardware watchdog).
    SystemdWatchdog,
    /// Warning: pair mode without a hardware watchdog (self-fencing resets nothing).
    NoHardwareWatchdog,
}

impl Rule {
    /// The rule's name in the module doc and the README.
    pub fn id(self) -> &'static str {
        match self {
            Rule::PeerTimeout => "R1",
            Rule::FenceDelay => "R2",
            Rule::BootWait => "R3",
            Rule::SystemdWatchdog => "R5",
            Rule::NoHardwareWatchdog => "W1",
        }
    }

    /// Why the rule exists, in one sentence.
    pub fn reason(self) -> &'static str {
        match self {
            Rule::PeerTimeout => {
                "one or two lost or late heartbeats must not declare the peer dead (that starts a fence race against a healthy node)"
            }
            Rule::FenceDelay => {
                "in a split brain the node holding the service fences at once and its whole fence attempt (BMC session set-up included) is bounded by fencing.timeout, within one heartbeat interval of our own detection; firing earlier lets both nodes fence each other and nobody serves"
            }
            Rule::BootWait => {
                "a booting node must give the peer at least one full peer_timeout (links and the peer's bbwd may still be coming up) before it treats silence as death and fences it"
            }
            Rule::SystemdWatchdog => {
                "a hung loop holding the service must reset the node (hardware watchdog) rather than merely get bbwd restarted by systemd, and systemd's keep-alive comes every WatchdogSec/2"
            }
            Rule::NoHardwareWatchdog => {
                "a node whose Bitbucket survives SIGKILL, or whose release overruns its deadline, self-fences by no longer petting the watchdog; without one it is never reset and the service stays down until an operator acts"
            }
        }
    }
}

/// How a violation is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The config is refused (`check-config` and `run` exit 2).
    Refuse,
    /// Reported, not refused.
    Warning,
}

/// One broken relation: `key` (= `value`) against `other_key` (= `other_value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Violation {
    pub rule: Rule,
    pub severity: Severity,
    /// The key to change (reported at its line); `WatchdogSec` is systemd's, not bbwd.toml's.
    pub key: &'static str,
    pub value: Duration,
    /// The other key of the relation.
    pub other_key: &'static str,
    pub other_value: Duration,
    /// The least `value` the rule accepts (`value` must exceed it for a strict rule).
    pub bound: Duration,
}

impl Violation {
    pub fn reason(&self) -> &'static str {
        self.rule.reason()
    }
}

impl fmt::Display for Violation {
    /// `cluster.fence_delay = 5s must be at least fencing.timeout + cluster.heartbeat_interval
    /// = 10s + 200ms = 10200ms (R2): <reason>`; the caller puts the key in front.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (v, o, b) = (Dur(self.value), Dur(self.other_value), Dur(self.bound));
        let (key, other, id) = (self.key, self.other_key, self.rule.id());
        match self.rule {
            Rule::PeerTimeout => write!(
                f,
                "{key} = {v} must be at least 3 × {other} = 3 × {o} = {b} ({id})"
            )?,
            Rule::FenceDelay => write!(
                f,
                "{key} = {v} must be at least {other} + cluster.heartbeat_interval = {o} + {} = {b} ({id})",
                Dur(self.bound.saturating_sub(self.other_value))
            )?,
            Rule::BootWait => write!(f, "{key} = {v} must be at least {other} = {b} ({id})")?,
            Rule::SystemdWatchdog => write!(
                f,
                "{key} = {v} must be shorter than half of systemd's {other} = {o} ({id}): the unit's WatchdogSec must be more than {b}; add a drop-in (systemctl edit bbwd) with [Service] WatchdogSec= above {b}, or lower {key}"
            )?,
            Rule::NoHardwareWatchdog => write!(
                f,
                "{key} = \"none\" in pair mode ({id}): self-fencing after {other} cannot reset this node; configure a hardware or BMC watchdog"
            )?,
        }
        write!(f, ": {}", self.reason())
    }
}

/// The default `cluster.fence_delay`: `fencing.timeout + cluster.peer_timeout` (R2 with
/// `peer_timeout` standing in for the heartbeat interval: R1 makes it at least `3 hb`).
pub fn default_fence_delay(fence_timeout: Duration, peer_timeout: Duration) -> Duration {
    fence_timeout.saturating_add(peer_timeout)
}

/// R4: how long after `Permit { run: false }` a release's stop of Bitbucket may take before the
/// node self-fences: `stop_timeout + kill_timeout + RELEASE_MARGIN`.
pub fn release_deadline(stop_timeout: Duration, kill_timeout: Duration) -> Duration {
    stop_timeout
        .saturating_add(kill_timeout)
        .saturating_add(RELEASE_MARGIN)
}

/// Checks every rule whose inputs are known; violations in rule order.
pub fn check(t: &Timings) -> heapless::Vec<Violation, MAX_VIOLATIONS> {
    let mut out = heapless::Vec::new();
    let mut add = |v: Violation| {
        // One per rule and fewer rules than MAX_VIOLATIONS: never full.
        let _ = out.push(v);
    };

    // R1
    let r1 = t.heartbeat_interval.saturating_mul(BEATS_PER_PEER_TIMEOUT);
    if t.peer_timeout < r1 {
        add(Violation {
            rule: Rule::PeerTimeout,
            severity: Severity::Refuse,
            key: "cluster.peer_timeout",
            value: t.peer_timeout,
            other_key: "cluster.heartbeat_interval",
            other_value: t.heartbeat_interval,
            bound: r1,
        });
    }
    // R2
    let r2 = t.fence_timeout.saturating_add(t.heartbeat_interval);
    if t.fence_delay < r2 {
        add(Violation {
            rule: Rule::FenceDelay,
            severity: Severity::Refuse,
            key: "cluster.fence_delay",
            value: t.fence_delay,
            other_key: "fencing.timeout",
            other_value: t.fence_timeout,
            bound: r2,
        });
    }
    // R3
    if t.boot_wait < t.peer_timeout {
        add(Violation {
            rule: Rule::BootWait,
            severity: Severity::Refuse,
            key: "cluster.boot_wait",
            value: t.boot_wait,
            other_key: "cluster.peer_timeout",
            other_value: t.peer_timeout,
            bound: t.peer_timeout,
        });
    }
    // R5 (only where systemd's interval is known) and W1.
    match (t.hardware_watchdog, t.systemd_watchdog) {
        (Some(hw), Some(sd)) => {
            let r5 = hw.saturating_mul(SYSTEMD_WATCHDOG_FACTOR);
            if sd <= r5 {
                add(Violation {
                    rule: Rule::SystemdWatchdog,
                    severity: Severity::Refuse,
                    key: "watchdog.timeout",
                    value: hw,
                    other_key: "WatchdogSec",
                    other_value: sd,
                    bound: r5,
                });
            }
        }
        (Some(_), None) => {}
        (None, _) => add(Violation {
            rule: Rule::NoHardwareWatchdog,
            severity: Severity::Warning,
            key: "watchdog.device",
            value: Duration::ZERO,
            other_key: "bitbucket.kill_timeout",
            other_value: t.kill_timeout,
            bound: Duration::ZERO,
        }),
    }
    out
}

/// A duration as a config value would write it: `"200ms"`, `"10s"`, `"10200ms"`.
#[derive(Debug, Clone, Copy)]
pub struct Dur(pub Duration);

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms % 1000 == 0 {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }
    const fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// The lab's pair (heartbeat 200 ms, peer 1 s, fence 10 s) with defaults elsewhere: valid.
    fn good() -> Timings {
        Timings {
            heartbeat_interval: ms(200),
            peer_timeout: s(1),
            fence_delay: default_fence_delay(s(10), s(1)),
            boot_wait: s(30),
            fence_timeout: s(10),
            stop_timeout: s(120),
            kill_timeout: s(10),
            step_timeout: s(120),
            hardware_watchdog: Some(s(60)),
            systemd_watchdog: Some(s(150)),
        }
    }

    fn rules(t: &Timings) -> Vec<Rule> {
        check(t).iter().map(|v| v.rule).collect()
    }

    #[test]
    fn defaults_and_lab_values_pass() {
        assert_eq!(rules(&good()), []);
        assert_eq!(good().fence_delay, s(11));
    }

    #[test]
    fn r1_peer_timeout_at_least_three_heartbeats() {
        let at = Timings {
            peer_timeout: ms(600),
            ..good()
        };
        assert_eq!(rules(&at), []);
        let below = Timings {
            peer_timeout: ms(599),
            ..good()
        };
        let v = check(&below);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(
            (v[0].rule, v[0].key, v[0].other_key, v[0].bound),
            (
                Rule::PeerTimeout,
                "cluster.peer_timeout",
                "cluster.heartbeat_interval",
                ms(600)
            )
        );
        assert_eq!(v[0].severity, Severity::Refuse);
    }

    #[test]
    fn r2_fence_delay_covers_the_other_nodes_whole_attempt() {
        let at = Timings {
            fence_delay: ms(10_200),
            ..good()
        };
        assert_eq!(rules(&at), []);
        let below = Timings {
            fence_delay: ms(10_199),
            ..good()
        };
        let v = check(&below);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(
            (v[0].rule, v[0].key, v[0].other_key, v[0].value, v[0].bound),
            (
                Rule::FenceDelay,
                "cluster.fence_delay",
                "fencing.timeout",
                ms(10_199),
                ms(10_200)
            )
        );
        // Today's derivation from peer_timeout alone (2 × 1 s, at most 5 s) is refused.
        let old = Timings {
            fence_delay: s(2),
            ..good()
        };
        assert_eq!(rules(&old), [Rule::FenceDelay]);
    }

    #[test]
    fn default_fence_delay_satisfies_r2_whenever_r1_holds() {
        for hb in [1, 7, 50, 200, 999, 5_000] {
            for fence in [1, 500, 10_000, 60_000] {
                let t = Timings {
                    heartbeat_interval: ms(hb),
                    peer_timeout: ms(hb * 3),
                    fence_delay: default_fence_delay(ms(fence), ms(hb * 3)),
                    fence_timeout: ms(fence),
                    boot_wait: ms(hb * 3),
                    ..good()
                };
                assert_eq!(rules(&t), [], "hb {hb} ms, fence {fence} ms");
            }
        }
    }

    #[test]
    fn r3_boot_wait_at_least_peer_timeout() {
        let at = Timings {
            boot_wait: s(1),
            ..good()
        };
        assert_eq!(rules(&at), []);
        let below = Timings {
            boot_wait: ms(999),
            ..good()
        };
        let v = check(&below);
        assert_eq!(
            (v[0].rule, v[0].key, v[0].other_key, v.len()),
            (
                Rule::BootWait,
                "cluster.boot_wait",
                "cluster.peer_timeout",
                1
            )
        );
    }

    #[test]
    fn r4_release_deadline_is_stop_plus_kill_plus_margin() {
        assert_eq!(release_deadline(s(120), s(10)), s(135));
        assert_eq!(release_deadline(s(2), s(2)), s(9));
        assert_eq!(RELEASE_MARGIN, s(5));
        // Never overflows, whatever a caller passes.
        assert_eq!(release_deadline(Duration::MAX, s(1)), Duration::MAX);
    }

    #[test]
    fn r5_systemd_watchdog_more_than_twice_the_hardware_one() {
        let above = Timings {
            systemd_watchdog: Some(ms(120_001)),
            ..good()
        };
        assert_eq!(rules(&above), []);
        let at = Timings {
            systemd_watchdog: Some(s(120)),
            ..good()
        };
        let v = check(&at);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(
            (v[0].rule, v[0].key, v[0].other_key, v[0].value, v[0].bound),
            (
                Rule::SystemdWatchdog,
                "watchdog.timeout",
                "WatchdogSec",
                s(60),
                s(120)
            )
        );
        // The old shipped unit (30 s) against the default 60 s: refused.
        let old_unit = Timings {
            systemd_watchdog: Some(s(30)),
            ..good()
        };
        assert_eq!(rules(&old_unit), [Rule::SystemdWatchdog]);
        // Unknown (check-config, or not under systemd): not checked.
        let unknown = Timings {
            systemd_watchdog: None,
            ..good()
        };
        assert_eq!(rules(&unknown), []);
    }

    #[test]
    fn no_hardware_watchdog_in_pair_mode_is_only_a_warning() {
        let t = Timings {
            hardware_watchdog: None,
            systemd_watchdog: Some(s(1)),
            ..good()
        };
        let v = check(&t);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(
            (v[0].rule, v[0].severity, v[0].key),
            (
                Rule::NoHardwareWatchdog,
                Severity::Warning,
                "watchdog.device"
            )
        );
    }

    #[test]
    fn every_rule_broken_at_once_is_reported_in_order() {
        let t = Timings {
            heartbeat_interval: s(1),
            peer_timeout: s(2),
            fence_delay: s(1),
            boot_wait: s(1),
            systemd_watchdog: Some(s(30)),
            ..good()
        };
        assert_eq!(
            rules(&t),
            [
                Rule::PeerTimeout,
                Rule::FenceDelay,
                Rule::BootWait,
                Rule::SystemdWatchdog
            ]
        );
    }

    #[test]
    fn messages_name_both_keys_the_values_and_the_reason() {
        let t = Timings {
            heartbeat_interval: ms(500),
            peer_timeout: s(1),
            fence_delay: s(5),
            boot_wait: ms(500),
            systemd_watchdog: Some(s(30)),
            ..good()
        };
        let text: Vec<String> = check(&t).iter().map(|v| v.to_string()).collect();
        assert_eq!(
            text[0],
            format!(
                "cluster.peer_timeout = 1s must be at least 3 × cluster.heartbeat_interval = 3 × 500ms = 1500ms (R1): {}",
                Rule::PeerTimeout.reason()
            )
        );
        assert!(text[1].starts_with(
            "cluster.fence_delay = 5s must be at least fencing.timeout + cluster.heartbeat_interval = 10s + 500ms = 10500ms (R2): "
        ), "{}", text[1]);
        assert!(
            text[2].starts_with(
                "cluster.boot_wait = 500ms must be at least cluster.peer_timeout = 1s (R3): "
            ),
            "{}",
            text[2]
        );
        assert!(text[3].contains("watchdog.timeout = 60s"), "{}", text[3]);
        assert!(text[3].contains("WatchdogSec = 30s"), "{}", text[3]);
        assert!(text[3].contains("drop-in"), "{}", text[3]);
        for (line, v) in text.iter().zip(check(&t).iter()) {
            assert!(line.contains(v.key) && line.contains(v.other_key), "{line}");
            assert!(line.ends_with(v.reason()), "{line}");
        }
    }

    #[test]
    fn durations_print_as_config_values() {
        assert_eq!(Dur(ms(200)).to_string(), "200ms");
        assert_eq!(Dur(s(10)).to_string(), "10s");
        assert_eq!(Dur(ms(10_200)).to_string(), "10200ms");
        assert_eq!(Dur(Duration::ZERO).to_string(), "0s");
    }
}
