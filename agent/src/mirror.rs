//! Mirror-farm node (seed "Set up and configure a mirror farm"): what bbwd tells the load
//! balancer, and the clock-synchronisation watch the seed asks for.
//!
//! Owns: the pure mapping from the node's state to HAProxy's agent-check reply ([`decide`],
//! [`Verdict::write_line`]), the operator's choice between `drain` and `maint`
//! ([`MaintMode`]), and the pacing and change detection of the kernel clock reading
//! ([`ClockWatch`]). Must not: do I/O (the daemon owns the agent-check server and reads the
//! clock through `bbwd_platform`), or decide anything about Bitbucket itself (the machine does).
//!
//! # The reply
//! HAProxy keeps two states per server, and the reply sets both every time:
//!
//! ```text
//!  operational (health)  up | down       is Bitbucket answering /status healthily right now?
//!  administrative        ready | drain | maint
//!                        drain: no new sessions, sticky ones finish (Bitbucket's MAINTENANCE,
//!                               `bbwd maintenance on`)
//!                        maint: no traffic at all (`bbwd maintenance on --maint`)
//!                        ready: cancels a drain/maint this agent set before; HAProxy keeps an
//!                               agent's drain/maint until the agent itself says ready
//!  reason                "#..." shown by HAProxy in `show stat` (last_agt) and its logs
//! ```
//!
//! | node | health | admin |
//! |---|---|---|
//! | `running`, last check 200 RUNNING / FIRST_RUN | up | ready |
//! | `running`, last check 200 MAINTENANCE (Bitbucket's own) | up | drain |
//! | `maintenance` (operator), Bitbucket healthy | up | drain, or maint with `--maint` |
//! | `maintenance` (operator), Bitbucket stopped or failing | down | drain, or maint |
//! | `starting`, `correcting`, `holding`, `failed`, `stopped` | down | ready |
//! | `running` with a failed check (not yet acted on) | down | ready |
//!
//! # Invariants
//! * `decide` is pure and total; `write_line` never allocates and always produces one
//!   printable-ASCII line that fits the agent-check server's buffer (the reason is cut and
//!   cleaned).
//! * The reply always names a health word, so HAProxy shows the `#` reason (it does only then).

#![forbid(unsafe_code)]

use core::fmt::Write as _;
use std::time::{Duration, Instant};

use bbwd_platform::agentcheck;
use bbwd_platform::clock::ClockSync;
use bbwd_platform::http::{BbState, ProbeOutcome};

use crate::machine::{FailReason, State};

/// How often the kernel's clock state is read: a clock drifts slowly, and a minute is far
/// below any useful NTP alarm threshold. Not every loop pass.
pub const CLOCK_READ_INTERVAL: Duration = Duration::from_secs(60);

/// Longest operator reason carried in the reply, bytes (HAProxy shows it in `show stat`).
const REASON_MAX: usize = 60;

/// What the load balancer is told during operator maintenance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MaintMode {
    /// `drain`: existing and sticky sessions finish, no new ones (the default).
    #[default]
    Drain,
    /// `maint`: no traffic at all, sticky sessions go elsewhere too.
    Maint,
}

/// HAProxy's operational state word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Up,
    Down,
}

/// HAProxy's administrative state word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admin {
    Ready,
    Drain,
    Maint,
}

/// Why: the `#` part of the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Healthy; the `/status` state (RUNNING, FIRST_RUN).
    Running(BbState),
    /// Bitbucket reports its own MAINTENANCE.
    BitbucketMaintenance,
    /// The operator's `bbwd maintenance on`.
    Operator,
    Starting,
    Correcting,
    Holding,
    Failed(Option<FailReason>),
    /// bbwd is stopping Bitbucket (shutdown).
    Stopping,
    /// Checks failing, not yet acted on.
    CheckFailing(u32),
    /// Running, but no healthy `/status` reply to go by.
    Unchecked,
}

/// What the node looks like to the mapping (from the machine's view).
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub state: State,
    /// Bitbucket's process is alive (a pid is supervised).
    pub process: bool,
    pub last_probe: Option<ProbeOutcome>,
    pub consecutive_failures: u32,
    pub failed: Option<FailReason>,
    /// Operator maintenance: its reason and mode.
    pub maintenance: Option<(&'a str, MaintMode)>,
}

/// The decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub health: Health,
    pub admin: Admin,
    pub why: Why,
}

/// `/status` states that mean "serving" (SPEC failure table: healthy).
fn serving(probe: Option<ProbeOutcome>) -> Option<BbState> {
    match probe {
        Some(ProbeOutcome::Reply {
            http_status: 200,
            state: Some(s @ (BbState::Running | BbState::Maintenance | BbState::FirstRun)),
        }) => Some(s),
        _ => None,
    }
}

/// The reply for a node. Pure; see the table in the module documentation.
pub fn decide(i: &Inputs<'_>) -> Verdict {
    let serving_state = serving(i.last_probe);
    let healthy = matches!(i.state, State::Running | State::Maintenance)
        && i.process
        && i.consecutive_failures == 0
        && serving_state.is_some();
    let health = if healthy { Health::Up } else { Health::Down };
    let admin = match i.maintenance {
        Some((_, MaintMode::Maint)) => Admin::Maint,
        Some((_, MaintMode::Drain)) => Admin::Drain,
        None if healthy && serving_state == Some(BbState::Maintenance) => Admin::Drain,
        None => Admin::Ready,
    };
    let why = match i.state {
        State::Failed => Why::Failed(i.failed),
        State::Stopped => Why::Stopping,
        State::Maintenance => Why::Operator,
        State::Holding => Why::Holding,
        State::Starting => Why::Starting,
        State::Correcting => Why::Correcting,
        State::Running if i.consecutive_failures > 0 => Why::CheckFailing(i.consecutive_failures),
        State::Running => match (i.process, serving_state) {
            (true, Some(BbState::Maintenance)) => Why::BitbucketMaintenance,
            (true, Some(s)) => Why::Running(s),
            _ => Why::Unchecked,
        },
    };
    Verdict { health, admin, why }
}

impl Verdict {
    /// The one word `bbwd status` shows (SPEC: `up`, `drain`, `down`, `maint`): the
    /// administrative state when it is not `ready`, else the health.
    pub fn word(&self) -> &'static str {
        match (self.admin, self.health) {
            (Admin::Maint, _) => "maint",
            (Admin::Drain, _) => "drain",
            (Admin::Ready, Health::Up) => "up",
            (Admin::Ready, Health::Down) => "down",
        }
    }

    /// The reply line without its `\n`, e.g. `up ready #RUNNING`. `reason` is the operator's
    /// maintenance reason (cut to `REASON_MAX` bytes, anything but printable ASCII replaced).
    pub fn write_line(&self, reason: &str, out: &mut heapless::String<{ agentcheck::MAX_REPLY }>) {
        out.clear();
        let health = match self.health {
            Health::Up => "up",
            Health::Down => "down",
        };
        let admin = match self.admin {
            Admin::Ready => "ready",
            Admin::Drain => "drain",
            Admin::Maint => "maint",
        };
        // Fits: words + the longest fixed text + REASON_MAX < MAX_REPLY - 1 (tested); a longer
        // text would only be cut.
        let _ = write!(out, "{health} {admin} #");
        let _ = match self.why {
            Why::Running(s) => out.write_str(s.as_str()),
            Why::BitbucketMaintenance => out.write_str("Bitbucket MAINTENANCE"),
            Why::Operator => {
                let _ = out.write_str("bbwd maintenance");
                if !reason.is_empty() {
                    let _ = out.write_str(": ");
                    push_clean(out, reason, REASON_MAX);
                }
                Ok(())
            }
            Why::Starting => out.write_str("starting"),
            Why::Correcting => out.write_str("correcting"),
            Why::Holding => out.write_str("holding: database unreachable"),
            Why::Failed(r) => write!(
                out,
                "failed: {} (manual intervention)",
                r.map_or("unknown", FailReason::as_str)
            ),
            Why::Stopping => out.write_str("bbwd stopping Bitbucket"),
            Why::CheckFailing(n) => write!(out, "check failing ({n} in a row)"),
            Why::Unchecked => out.write_str("no healthy check yet"),
        };
    }
}

/// Appends at most `max` bytes of `s`, printable ASCII kept, anything else as `?`.
fn push_clean<const N: usize>(out: &mut heapless::String<N>, s: &str, max: usize) {
    for c in s.chars().take(max) {
        let c = if c == ' ' || c.is_ascii_graphic() {
            c
        } else {
            '?'
        };
        if out.push(c).is_err() {
            return;
        }
    }
}

/// A clock reading as `bbwd status` shows it.
pub fn clock_report(c: ClockSync) -> crate::status::Clock {
    crate::status::Clock {
        synchronized: c.synchronized,
        max_error_ms: c.max_error_ms(),
    }
}

/// The kernel clock reading, paced (`CLOCK_READ_INTERVAL`), with change detection.
#[derive(Debug)]
pub struct ClockWatch {
    next_read: Instant,
    last: Option<ClockSync>,
}

/// A change worth an event: the synchronisation verdict flipped (or was first seen false).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockChange {
    Unsynchronized(ClockSync),
    Synchronized(ClockSync),
}

impl ClockWatch {
    /// A watch whose first reading is due at once.
    pub fn new(now: Instant) -> ClockWatch {
        ClockWatch {
            next_read: now,
            last: None,
        }
    }

    /// When the next reading is due.
    pub fn next_read(&self) -> Instant {
        self.next_read
    }

    /// The latest reading.
    pub fn last(&self) -> Option<ClockSync> {
        self.last
    }

    /// Whether a reading is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        now >= self.next_read
    }

    /// Takes a reading made at `now` (`None`: the read failed; the last reading is forgotten,
    /// so the status shows "unknown" rather than stale data). Returns the change, if any:
    /// the first reading counts as a change only when it is unsynchronised.
    pub fn record(&mut self, now: Instant, reading: Option<ClockSync>) -> Option<ClockChange> {
        self.next_read = now + CLOCK_READ_INTERVAL;
        let before = self.last.map(|c| c.synchronized);
        self.last = reading;
        let r = reading?;
        match (before, r.synchronized) {
            (Some(true) | None, false) => Some(ClockChange::Unsynchronized(r)),
            (Some(false), true) => Some(ClockChange::Synchronized(r)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(code: u16, state: BbState) -> Option<ProbeOutcome> {
        Some(ProbeOutcome::Reply {
            http_status: code,
            state: Some(state),
        })
    }

    fn refused() -> Option<ProbeOutcome> {
        Some(ProbeOutcome::Failed(
            bbwd_platform::http::ProbeFailure::Refused,
        ))
    }

    fn inputs(state: State) -> Inputs<'static> {
        Inputs {
            state,
            process: true,
            last_probe: reply(200, BbState::Running),
            consecutive_failures: 0,
            failed: None,
            maintenance: None,
        }
    }

    fn line(v: &Verdict, reason: &str) -> String {
        let mut out = heapless::String::new();
        v.write_line(reason, &mut out);
        out.to_string()
    }

    #[test]
    fn the_mapping_table() {
        use BbState as B;
        use State as S;
        let op = Some(("upgrade to 9.4", MaintMode::Drain));
        let op_maint = Some(("disk swap", MaintMode::Maint));
        // (state, process, last probe, failures, failed, maintenance) => (word, line)
        #[allow(clippy::type_complexity)]
        let cases: &[(
            State,
            bool,
            Option<ProbeOutcome>,
            u32,
            Option<FailReason>,
            Option<(&str, MaintMode)>,
            &str,
            &str,
        )] = &[
            (
                S::Running,
                true,
                reply(200, B::Running),
                0,
                None,
                None,
                "up",
                "up ready #RUNNING",
            ),
            (
                S::Running,
                true,
                reply(200, B::FirstRun),
                0,
                None,
                None,
                "up",
                "up ready #FIRST_RUN",
            ),
            (
                S::Running,
                true,
                reply(200, B::Maintenance),
                0,
                None,
                None,
                "drain",
                "up drain #Bitbucket MAINTENANCE",
            ),
            (
                S::Maintenance,
                true,
                reply(200, B::Running),
                0,
                None,
                op,
                "drain",
                "up drain #bbwd maintenance: upgrade to 9.4",
            ),
            (
                S::Maintenance,
                true,
                reply(200, B::Running),
                0,
                None,
                op_maint,
                "maint",
                "up maint #bbwd maintenance: disk swap",
            ),
            (
                S::Maintenance,
                false,
                refused(),
                0,
                None,
                op,
                "drain",
                "down drain #bbwd maintenance: upgrade to 9.4",
            ),
            (
                S::Maintenance,
                false,
                refused(),
                0,
                None,
                op_maint,
                "maint",
                "down maint #bbwd maintenance: disk swap",
            ),
            (
                S::Maintenance,
                true,
                reply(500, B::Error),
                1,
                None,
                op,
                "drain",
                "down drain #bbwd maintenance: upgrade to 9.4",
            ),
            (
                S::Maintenance,
                true,
                reply(200, B::Running),
                0,
                None,
                Some(("", MaintMode::Drain)),
                "drain",
                "up drain #bbwd maintenance",
            ),
            (
                S::Starting,
                true,
                reply(503, B::Starting),
                0,
                None,
                None,
                "down",
                "down ready #starting",
            ),
            (
                S::Starting,
                false,
                None,
                0,
                None,
                None,
                "down",
                "down ready #starting",
            ),
            // A crash: the process is gone but the last check was healthy.
            (
                S::Starting,
                false,
                reply(200, B::Running),
                0,
                None,
                None,
                "down",
                "down ready #starting",
            ),
            (
                S::Correcting,
                true,
                reply(200, B::Running),
                0,
                None,
                None,
                "down",
                "down ready #correcting",
            ),
            (
                S::Holding,
                true,
                reply(200, B::Running),
                0,
                None,
                None,
                "down",
                "down ready #holding: database unreachable",
            ),
            (
                S::Failed,
                false,
                refused(),
                0,
                Some(FailReason::StartFailed),
                None,
                "down",
                "down ready #failed: start_failed (manual intervention)",
            ),
            (
                S::Failed,
                false,
                None,
                0,
                None,
                None,
                "down",
                "down ready #failed: unknown (manual intervention)",
            ),
            (
                S::Running,
                true,
                refused(),
                1,
                None,
                None,
                "down",
                "down ready #check failing (1 in a row)",
            ),
            // Bitbucket's MAINTENANCE is not a reason to drain once the checks fail.
            (
                S::Running,
                true,
                reply(200, B::Maintenance),
                1,
                None,
                None,
                "down",
                "down ready #check failing (1 in a row)",
            ),
            (
                S::Stopped,
                true,
                reply(200, B::Running),
                0,
                None,
                None,
                "down",
                "down ready #bbwd stopping Bitbucket",
            ),
            // 200 with a state that is not healthy (e.g. STARTING served with 200) is not up.
            (
                S::Running,
                true,
                reply(200, B::Starting),
                0,
                None,
                None,
                "down",
                "down ready #no healthy check yet",
            ),
        ];
        for (n, (state, process, probe, failures, failed, maint, word, want)) in
            cases.iter().enumerate()
        {
            let v = decide(&Inputs {
                state: *state,
                process: *process,
                last_probe: *probe,
                consecutive_failures: *failures,
                failed: *failed,
                maintenance: *maint,
            });
            let reason = maint.map_or("", |(r, _)| r);
            assert_eq!(v.word(), *word, "case {n}: {v:?}");
            assert_eq!(line(&v, reason), *want, "case {n}: {v:?}");
        }
    }

    #[test]
    fn every_reply_is_a_valid_agent_check_line() {
        // The longest reason, with line breaks and non-ASCII that must not leak into the line.
        let nasty = "x\ny\r\u{e9}#".repeat(40);
        let all_states = [
            State::Starting,
            State::Running,
            State::Correcting,
            State::Holding,
            State::Failed,
            State::Maintenance,
            State::Stopped,
        ];
        let fails = [
            None,
            Some(FailReason::StartFailed),
            Some(FailReason::RestartsExhausted),
            Some(FailReason::Unkillable),
            Some(FailReason::SpawnFailed),
        ];
        for state in all_states {
            for failed in fails {
                for maint in [
                    None,
                    Some((nasty.as_str(), MaintMode::Drain)),
                    Some((nasty.as_str(), MaintMode::Maint)),
                ] {
                    for failures in [0, u32::MAX] {
                        let v = decide(&Inputs {
                            failed,
                            maintenance: maint,
                            consecutive_failures: failures,
                            ..inputs(state)
                        });
                        let text = line(&v, maint.map_or("", |(r, _)| r));
                        let checked =
                            agentcheck::line(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
                        assert!(checked.len() < agentcheck::MAX_REPLY, "{text:?}");
                        let first = text.split_whitespace().next().unwrap();
                        assert!(first == "up" || first == "down", "{text:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn maint_mode_wire_names() {
        assert_eq!(
            serde_json::to_string(&MaintMode::Maint).unwrap(),
            "\"maint\""
        );
        assert_eq!(
            serde_json::from_str::<MaintMode>("\"drain\"").unwrap(),
            MaintMode::Drain
        );
        assert!(serde_json::from_str::<MaintMode>("\"ready\"").is_err());
        assert_eq!(MaintMode::default(), MaintMode::Drain);
    }

    #[test]
    fn clock_watch_paces_reads_and_reports_changes() {
        let t0 = Instant::now();
        let synced = ClockSync {
            synchronized: true,
            max_error_us: 2_000,
        };
        let unsynced = ClockSync {
            synchronized: false,
            max_error_us: 16_000_000,
        };
        let mut w = ClockWatch::new(t0);
        assert!(w.due(t0));
        // A synchronised first reading is no event; an unsynchronised one is.
        assert_eq!(w.record(t0, Some(synced)), None);
        assert!(!w.due(t0 + CLOCK_READ_INTERVAL - Duration::from_millis(1)));
        assert!(w.due(t0 + CLOCK_READ_INTERVAL));
        assert_eq!(w.next_read(), t0 + CLOCK_READ_INTERVAL);
        let t1 = t0 + CLOCK_READ_INTERVAL;
        assert_eq!(
            w.record(t1, Some(unsynced)),
            Some(ClockChange::Unsynchronized(unsynced))
        );
        assert_eq!(
            w.record(t1, Some(unsynced)),
            None,
            "no repeat while unchanged"
        );
        // A failed read forgets the state; the next unsynchronised reading reports again.
        assert_eq!(w.record(t1, None), None);
        assert_eq!(w.last(), None);
        assert_eq!(
            w.record(t1, Some(unsynced)),
            Some(ClockChange::Unsynchronized(unsynced))
        );
        assert_eq!(
            w.record(t1, Some(synced)),
            Some(ClockChange::Synchronized(synced))
        );
        assert_eq!(w.last(), Some(synced));
        let mut first_bad = ClockWatch::new(t0);
        assert_eq!(
            first_bad.record(t0, Some(unsynced)),
            Some(ClockChange::Unsynchronized(unsynced))
        );
    }
}
