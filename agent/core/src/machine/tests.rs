//! State-machine tests with a fake clock: one test (or more) per single-node row of the SPEC
//! failure table, plus a randomised check of the invariants.

use std::time::{Duration, Instant};

use super::*;
use crate::probe::{BbState, ExitKind, ProbeFailure, ProbeOutcome};

const MS: Duration = Duration::from_millis(1);

fn settings() -> Settings {
    Settings {
        monitor_interval: Duration::from_secs(15),
        startup_timeout: Duration::from_secs(600),
        failures_before_action: 2,
        stop_timeout: Duration::from_secs(120),
        kill_timeout: Duration::from_secs(10),
        max_restarts: 1,
        restart_window: Duration::from_secs(3600),
        database: false,
        pair: false,
        watchdog_resets: true,
    }
}

fn running() -> ProbeOutcome {
    reply(200, Some(BbState::Running))
}

fn reply(http_status: u16, state: Option<BbState>) -> ProbeOutcome {
    ProbeOutcome::Reply { http_status, state }
}

/// A machine under test with its fake clock.
struct T {
    m: Machine,
    t0: Instant,
    now: Instant,
    /// Every action returned so far, with the time it was returned.
    log: Vec<(Duration, Action)>,
    /// How `CheckFree` is answered (at once, within the same step): `None` = the port is free.
    occupied: Option<&'static str>,
}

impl T {
    fn new(s: Settings) -> T {
        Self::boot(s, Boot::default())
    }

    fn boot(s: Settings, boot: Boot) -> T {
        let t0 = Instant::now();
        let (m, acts) = Machine::new(s, t0, boot);
        let mut t = T {
            m,
            t0,
            now: t0,
            log: Vec::new(),
            occupied: None,
        };
        t.record(acts);
        t
    }

    /// Logs the actions; a `CheckFree` is answered at once (as `occupied` says) and what that
    /// answer returns is part of the same result.
    fn record(&mut self, acts: Actions) -> Vec<Action> {
        let at = self.now - self.t0;
        self.log.extend(acts.iter().cloned().map(|a| (at, a)));
        let mut all: Vec<Action> = acts.into_iter().collect();
        if all.contains(&Action::CheckFree) {
            let occupied = self.occupied.map(detail);
            let more = self.m.step(self.now, Input::FreeChecked { occupied });
            all.extend(self.record(more));
        }
        all
    }

    fn step(&mut self, input: Input) -> Vec<Action> {
        let acts = self.m.step(self.now, input);
        self.record(acts)
    }

    /// Advances the clock by `d` and ticks.
    fn after(&mut self, d: Duration) -> Vec<Action> {
        self.now += d;
        self.step(Input::Tick)
    }

    /// Runs the clock to the next machine deadline and ticks.
    fn run_to_deadline(&mut self) -> Vec<Action> {
        let d = self.m.next_deadline().expect("a deadline");
        self.now = self.now.max(d);
        self.step(Input::Tick)
    }

    /// Runs to the next check and answers it.
    fn check(&mut self, probe: ProbeOutcome) -> Vec<Action> {
        let acts = self.run_to_deadline();
        assert!(acts.contains(&Action::Check), "no check due: {acts:?}");
        self.step(Input::Checked { probe, db_up: None })
    }

    fn check_db(&mut self, probe: ProbeOutcome, db_up: bool) -> Vec<Action> {
        let acts = self.run_to_deadline();
        assert!(acts.contains(&Action::Check), "no check due: {acts:?}");
        self.step(Input::Checked {
            probe,
            db_up: Some(db_up),
        })
    }

    /// Boot -> Spawn -> Started -> healthy.
    fn running(s: Settings) -> T {
        let mut t = T::new(s);
        assert_eq!(t.log.last().map(|(_, a)| a), Some(&Action::Spawn));
        t.step(Input::Started { pid: 100 });
        t.check(running());
        assert_eq!(t.m.state(), State::Running);
        t
    }

    fn spawns(&self) -> usize {
        self.log.iter().filter(|(_, a)| *a == Action::Spawn).count()
    }

    fn kinds(&self) -> Vec<EventKind> {
        self.log
            .iter()
            .filter_map(|(_, a)| match a {
                Action::Event(k, _) => Some(*k),
                _ => None,
            })
            .collect()
    }
}

fn has_event(acts: &[Action], kind: EventKind) -> bool {
    acts.iter()
        .any(|a| matches!(a, Action::Event(k, _) if *k == kind))
}

// ---- Row: /status 200 with RUNNING, MAINTENANCE or FIRST_RUN => healthy ----

#[test]
fn running_maintenance_and_first_run_are_healthy() {
    for state in [BbState::Running, BbState::Maintenance, BbState::FirstRun] {
        let mut t = T::running(settings());
        for _ in 0..20 {
            let acts = t.check(reply(200, Some(state)));
            assert!(
                !acts.iter().any(|a| matches!(a, Action::Signal(_))),
                "{state:?}: {acts:?}"
            );
        }
        assert_eq!(t.m.state(), State::Running);
        assert_eq!(t.m.view().consecutive_failures, 0);
    }
}

#[test]
fn a_start_becomes_running_only_on_a_healthy_reply() {
    let mut t = T::new(settings());
    t.step(Input::Started { pid: 7 });
    assert_eq!(t.m.state(), State::Starting);
    t.check(ProbeOutcome::Failed(ProbeFailure::Refused));
    assert_eq!(t.m.state(), State::Starting);
    let acts = t.check(running());
    assert!(has_event(&acts, EventKind::Healthy));
    assert_eq!(t.m.state(), State::Running);
    assert_eq!(t.m.view().pid, Some(7));
}

// ---- Row: 503 STARTING / STOPPING ----

#[test]
fn starting_is_healthy_within_startup_timeout_of_a_start() {
    let mut s = settings();
    s.startup_timeout = Duration::from_secs(100);
    let mut t = T::new(s);
    t.step(Input::Started { pid: 7 });
    // STARTING for 45 s: no failure, no correction.
    for _ in 0..3 {
        let acts = t.check(reply(503, Some(BbState::Starting)));
        assert!(acts.iter().all(|a| !matches!(a, Action::Signal(_))));
    }
    t.check(running());
    assert_eq!(t.m.state(), State::Running);
    // An Up Bitbucket that reports STARTING again within the window is still fine...
    let acts = t.check(reply(503, Some(BbState::Starting)));
    assert!(!has_event(&acts, EventKind::CheckFailed));
    // ...but not once startup_timeout has passed since the start (t = 75 s now).
    t.check(running());
    let acts = t.check(reply(503, Some(BbState::Starting)));
    assert!(has_event(&acts, EventKind::CheckFailed), "{acts:?}");
}

#[test]
fn stopping_that_we_did_not_ask_for_is_a_failed_check() {
    let mut t = T::running(settings());
    let acts = t.check(reply(503, Some(BbState::Stopping)));
    assert!(has_event(&acts, EventKind::CheckFailed));
    assert_eq!(t.m.view().consecutive_failures, 1);
}

// ---- Row: any other status, 404, 500, garbage, timeout, refused => failed check ----

#[test]
fn every_kind_of_bad_reply_is_a_failed_check_and_two_trigger_correction() {
    let bad = [
        reply(500, Some(BbState::Error)),
        reply(404, None),
        reply(200, None),
        reply(200, Some(BbState::Other)),
        reply(302, None),
        reply(503, Some(BbState::Running)),
        ProbeOutcome::Failed(ProbeFailure::Malformed),
        ProbeOutcome::Failed(ProbeFailure::TooLarge),
        ProbeOutcome::Failed(ProbeFailure::Timeout),
        ProbeOutcome::Failed(ProbeFailure::Refused),
        ProbeOutcome::Failed(ProbeFailure::Truncated),
        ProbeOutcome::Failed(ProbeFailure::Io(104)),
    ];
    for probe in bad {
        let mut t = T::running(settings());
        let acts = t.check(probe);
        assert!(has_event(&acts, EventKind::CheckFailed), "{probe:?}");
        assert!(
            !acts.contains(&Action::Signal(Sig::Term)),
            "one failure must not act: {probe:?}"
        );
        let acts = t.check(probe);
        assert!(
            has_event(&acts, EventKind::Correcting),
            "{probe:?}: {acts:?}"
        );
        assert!(acts.contains(&Action::Signal(Sig::Term)), "{probe:?}");
        assert_eq!(t.m.state(), State::Correcting);
    }
}

#[test]
fn a_healthy_check_between_failures_resets_the_count() {
    let mut t = T::running(settings());
    t.check(reply(500, Some(BbState::Error)));
    let acts = t.check(running());
    assert!(has_event(&acts, EventKind::Recovered));
    let acts = t.check(reply(500, Some(BbState::Error)));
    assert!(!acts.contains(&Action::Signal(Sig::Term)));
}

// ---- Correction: graceful stop, stop_timeout, SIGKILL, confirm gone, start, check ----

#[test]
fn correction_is_term_then_restart_once_the_group_is_gone() {
    let mut t = T::running(settings());
    t.check(reply(500, Some(BbState::Error)));
    t.check(reply(500, Some(BbState::Error)));
    // Leader exits after SIGTERM; no restart until the whole group is gone.
    let acts = t.step(Input::Exited {
        kind: ExitKind::Exited(0),
    });
    assert!(!acts.contains(&Action::Spawn));
    let acts = t.step(Input::Gone);
    assert_eq!(acts.iter().filter(|a| **a == Action::Spawn).count(), 1);
    let acts = t.step(Input::Started { pid: 101 });
    assert!(has_event(&acts, EventKind::Restart));
    t.check(running());
    assert_eq!(t.m.state(), State::Running);
    assert_eq!(t.m.view().restarts, 1);
}

#[test]
fn a_process_ignoring_sigterm_is_killed_after_stop_timeout() {
    let mut t = T::running(settings());
    t.check(ProbeOutcome::Failed(ProbeFailure::Timeout));
    let acts = t.check(ProbeOutcome::Failed(ProbeFailure::Timeout));
    assert!(acts.contains(&Action::Signal(Sig::Term)));
    let term_at = t.now;
    // Nothing before stop_timeout.
    let acts = t.after(Duration::from_secs(119));
    assert!(!acts.contains(&Action::Signal(Sig::Kill)));
    let acts = t.run_to_deadline();
    assert!(acts.contains(&Action::Signal(Sig::Kill)), "{acts:?}");
    assert_eq!(t.now - term_at, Duration::from_secs(120));
    t.step(Input::Exited {
        kind: ExitKind::Signaled(9),
    });
    let acts = t.step(Input::Gone);
    assert!(acts.contains(&Action::Spawn));
}

// ---- Row: process will not die after SIGKILL => stop petting the watchdog ----

#[test]
fn a_group_surviving_sigkill_stops_petting_and_fails() {
    let mut t = T::running(settings());
    t.check(reply(500, Some(BbState::Error)));
    t.check(reply(500, Some(BbState::Error)));
    t.run_to_deadline(); // stop_timeout -> SIGKILL
    let acts = t.run_to_deadline(); // kill_timeout
    assert!(acts.contains(&Action::StopPetting), "{acts:?}");
    assert!(has_event(&acts, EventKind::Unkillable));
    assert!(has_event(&acts, EventKind::WatchdogStop));
    assert_eq!(t.m.state(), State::Failed);
    assert!(!t.m.petting());
    // No further action: no start, no check, for a long time.
    let acts = t.after(Duration::from_secs(3600));
    assert!(acts.is_empty(), "{acts:?}");
    // It finally dying changes nothing: failed, not petting, no start.
    let acts = t.step(Input::Gone);
    assert!(!acts.contains(&Action::Spawn));
    assert!(!t.m.petting());
    // An operator reset cannot clear a node that must reset (petting stays off).
    assert_eq!(t.spawns(), 1);
}

#[test]
fn remnants_of_a_crashed_group_surviving_sigkill_stop_petting() {
    let mut t = T::running(settings());
    let acts = t.step(Input::Exited {
        kind: ExitKind::Exited(1),
    });
    assert!(acts.contains(&Action::Signal(Sig::Term)));
    let acts = t.run_to_deadline();
    assert!(acts.contains(&Action::Signal(Sig::Kill)));
    let acts = t.run_to_deadline();
    assert!(acts.contains(&Action::StopPetting));
}

/// Issue point 6: the rest of a group whose leader exited was SIGKILLed at once, silently.
#[test]
fn when_the_leader_exits_the_rest_of_its_group_gets_a_graceful_stop_first() {
    let mut t = T::running(settings());
    let acts = t.step(Input::Exited {
        kind: ExitKind::Signaled(11),
    });
    assert!(acts.contains(&Action::Signal(Sig::Term)), "{acts:?}");
    assert!(!acts.contains(&Action::Signal(Sig::Kill)), "{acts:?}");
    let exited = t.now;
    let acts = t.run_to_deadline();
    assert_eq!(
        t.now - exited,
        settings().stop_timeout,
        "SIGKILL after stop_timeout"
    );
    assert!(acts.contains(&Action::Signal(Sig::Kill)), "{acts:?}");
    let said = acts.iter().any(|a| {
        matches!(a, Action::Event(EventKind::Kill, d) if d.contains("after it exited: SIGKILL"))
    });
    assert!(said, "the SIGKILL is said, with why: {acts:?}");
    t.step(Input::Gone);
    assert_eq!(t.spawns(), 2, "then the restart");
}

// ---- Row: Bitbucket crashes => restart at once ----

#[test]
fn a_crash_restarts_at_once_without_waiting_for_a_check() {
    let mut t = T::running(settings());
    t.now += Duration::from_millis(3);
    let acts = t.step(Input::Exited {
        kind: ExitKind::Signaled(11),
    });
    assert!(has_event(&acts, EventKind::Crash));
    assert!(
        acts.contains(&Action::Signal(Sig::Term)),
        "remnants of the group are stopped (gracefully first)"
    );
    let acts = t.step(Input::Gone);
    assert!(
        acts.contains(&Action::Spawn),
        "restart in the same instant: {acts:?}"
    );
    assert_eq!(t.m.view().restarts, 1);
}

// ---- Row: out of memory => restart ----

#[test]
fn exit_status_3_is_an_oome_and_restarts() {
    let mut t = T::running(settings());
    let acts = t.step(Input::Exited {
        kind: ExitKind::Exited(OOME_EXIT_CODE),
    });
    assert!(has_event(&acts, EventKind::Oome));
    assert!(!has_event(&acts, EventKind::Crash));
    let acts = t.step(Input::Gone);
    assert!(acts.contains(&Action::Spawn));
}

#[test]
fn an_oome_line_restarts_a_jvm_that_keeps_running() {
    let mut t = T::running(settings());
    let acts = t.step(Input::OomeLine);
    assert!(has_event(&acts, EventKind::Oome));
    assert!(
        acts.contains(&Action::Signal(Sig::Term)),
        "graceful stop first"
    );
    t.step(Input::Exited {
        kind: ExitKind::Exited(OOME_EXIT_CODE),
    });
    let acts = t.step(Input::Gone);
    assert!(acts.contains(&Action::Spawn));
    // Exactly one oome event for the line + the exit that follows it.
    assert_eq!(
        t.kinds().iter().filter(|k| **k == EventKind::Oome).count(),
        1
    );
}

// ---- Row: database unreachable => nothing; holding; resume when it returns ----

fn db_settings() -> Settings {
    Settings {
        database: true,
        ..settings()
    }
}

#[test]
fn boot_waits_for_the_database_before_starting() {
    let mut t = T::new(db_settings());
    assert_eq!(t.spawns(), 0);
    let acts = t.check_db(ProbeOutcome::Failed(ProbeFailure::Refused), false);
    assert!(!acts.contains(&Action::Spawn));
    assert_eq!(t.m.state(), State::Holding);
    let acts = t.check_db(ProbeOutcome::Failed(ProbeFailure::Refused), true);
    assert!(acts.contains(&Action::Spawn), "{acts:?}");
}

#[test]
fn database_down_holds_all_correction_and_resumes_when_it_returns() {
    let mut t = T::new(db_settings());
    t.check_db(ProbeOutcome::Failed(ProbeFailure::Refused), true);
    t.step(Input::Started { pid: 5 });
    t.check_db(running(), true);
    assert_eq!(t.m.state(), State::Running);
    let acts = t.check_db(reply(500, Some(BbState::Error)), false);
    assert!(has_event(&acts, EventKind::DbDown));
    for _ in 0..20 {
        let acts = t.check_db(reply(500, Some(BbState::Error)), false);
        assert!(
            !acts
                .iter()
                .any(|a| matches!(a, Action::Signal(_) | Action::Spawn)),
            "{acts:?}"
        );
        assert_eq!(t.m.state(), State::Holding);
    }
    let acts = t.check_db(reply(500, Some(BbState::Error)), true);
    assert!(has_event(&acts, EventKind::DbUp));
    assert!(
        !acts.contains(&Action::Signal(Sig::Term)),
        "the count starts afresh"
    );
    let acts = t.check_db(reply(500, Some(BbState::Error)), true);
    assert!(
        acts.contains(&Action::Signal(Sig::Term)),
        "correction resumes: {acts:?}"
    );
}

#[test]
fn a_crash_while_holding_is_left_down_until_the_database_returns() {
    let mut t = T::new(db_settings());
    t.check_db(running(), true);
    t.step(Input::Started { pid: 5 });
    t.check_db(running(), true);
    t.check_db(reply(500, Some(BbState::Error)), false);
    let acts = t.step(Input::Exited {
        kind: ExitKind::Exited(1),
    });
    assert!(!has_event(&acts, EventKind::Crash));
    let acts = t.step(Input::Gone);
    assert!(!acts.contains(&Action::Spawn));
    assert_eq!(t.m.state(), State::Holding);
    t.check_db(ProbeOutcome::Failed(ProbeFailure::Refused), false);
    let acts = t.check_db(ProbeOutcome::Failed(ProbeFailure::Refused), true);
    assert!(acts.contains(&Action::Spawn));
    assert_eq!(
        t.m.view().restarts,
        0,
        "not counted against the restart budget"
    );
}

#[test]
fn startup_timeout_does_not_expire_while_holding() {
    let mut s = db_settings();
    s.startup_timeout = Duration::from_secs(60);
    let mut t = T::new(s);
    t.check_db(running(), true);
    t.step(Input::Started { pid: 5 });
    // 10 checks 15 s apart: well past the 60 s startup_timeout.
    for _ in 0..10 {
        let acts = t.check_db(reply(503, Some(BbState::Starting)), false);
        assert!(!has_event(&acts, EventKind::StartFailed));
    }
    assert_eq!(t.m.state(), State::Holding);
    t.check_db(reply(503, Some(BbState::Starting)), true);
    assert_eq!(t.m.state(), State::Starting, "a fresh startup_timeout");
}

// ---- Row: fails to start => stop, failed, notify; no flapping ----

#[test]
fn exiting_during_startup_fails_without_restarting() {
    let mut t = T::new(settings());
    t.step(Input::Started { pid: 9 });
    let acts = t.step(Input::Exited {
        kind: ExitKind::Exited(1),
    });
    assert!(has_event(&acts, EventKind::StartFailed));
    let acts = t.step(Input::Gone);
    assert!(has_event(&acts, EventKind::Failed));
    assert!(!acts.contains(&Action::Spawn));
    assert_eq!(t.m.state(), State::Failed);
    for _ in 0..10 {
        assert!(!t.after(Duration::from_secs(600)).contains(&Action::Spawn));
    }
    assert_eq!(t.spawns(), 1);
}

#[test]
fn unhealthy_past_startup_timeout_is_stopped_and_failed() {
    let mut s = settings();
    s.startup_timeout = Duration::from_secs(60);
    let mut t = T::new(s);
    t.step(Input::Started { pid: 9 });
    let mut acts = Vec::new();
    for _ in 0..5 {
        acts = t.run_to_deadline();
        if acts.contains(&Action::Check) {
            t.step(Input::Checked {
                probe: reply(503, Some(BbState::Starting)),
                db_up: None,
            });
        } else {
            break;
        }
    }
    assert!(has_event(&acts, EventKind::StartFailed), "{acts:?}");
    assert!(acts.contains(&Action::Signal(Sig::Term)));
    t.step(Input::Exited {
        kind: ExitKind::Exited(143),
    });
    let acts = t.step(Input::Gone);
    assert!(has_event(&acts, EventKind::Failed));
    assert_eq!(t.m.state(), State::Failed);
    assert_eq!(t.spawns(), 1);
}

#[test]
fn a_command_that_cannot_be_executed_fails() {
    let mut t = T::new(settings());
    let acts = t.step(Input::SpawnFailed {
        detail: detail("no such file"),
    });
    assert!(has_event(&acts, EventKind::Failed));
    assert_eq!(t.m.view().failed, Some(FailReason::SpawnFailed));
    assert!(!t.after(Duration::from_secs(60)).contains(&Action::Spawn));
}

// ---- Row: restarts exhausted (single node: failed, waiting for an operator) ----

#[test]
fn more_than_max_restarts_within_the_window_fails() {
    let mut t = T::running(settings());
    t.step(Input::Exited {
        kind: ExitKind::Exited(1),
    });
    t.step(Input::Gone);
    t.step(Input::Started { pid: 101 });
    t.check(running());
    t.after(Duration::from_secs(600));
    let acts = t.step(Input::Exited {
        kind: ExitKind::Exited(1),
    });
    assert!(has_event(&acts, EventKind::RestartsExhausted), "{acts:?}");
    let acts = t.step(Input::Gone);
    assert!(!acts.contains(&Action::Spawn));
    assert_eq!(t.m.view().failed, Some(FailReason::RestartsExhausted));
    assert_eq!(t.spawns(), 2);
}

#[test]
fn restarts_outside_the_window_do_not_count() {
    let mut t = T::running(settings());
    for i in 0..5 {
        if t.after(Duration::from_secs(3601)).contains(&Action::Check) {
            t.step(Input::Checked {
                probe: running(),
                db_up: None,
            });
        }
        t.step(Input::Exited {
            kind: ExitKind::Exited(1),
        });
        let acts = t.step(Input::Gone);
        assert!(acts.contains(&Action::Spawn), "crash {i}");
        t.step(Input::Started { pid: 200 + i });
        t.check(running());
    }
    assert_eq!(t.m.state(), State::Running);
}

#[test]
fn max_restarts_zero_fails_on_the_first_problem() {
    let s = Settings {
        max_restarts: 0,
        ..settings()
    };
    let mut t = T::running(s);
    t.step(Input::Exited {
        kind: ExitKind::Exited(1),
    });
    t.step(Input::Gone);
    assert_eq!(t.m.state(), State::Failed);
}

#[test]
fn reset_clears_failed_and_starts_again() {
    let mut t = T::new(settings());
    t.step(Input::Started { pid: 9 });
    t.step(Input::Exited {
        kind: ExitKind::Exited(1),
    });
    t.step(Input::Gone);
    assert_eq!(t.m.state(), State::Failed);
    let acts = t.step(Input::Reset);
    assert!(has_event(&acts, EventKind::Reset));
    assert!(acts.contains(&Action::Spawn));
    assert_eq!(t.m.view().failed, None);
}

// ---- Maintenance (operator) ----

#[test]
fn maintenance_pauses_correction_and_off_resumes() {
    let mut t = T::running(settings());
    let acts = t.step(Input::Maintenance {
        on: true,
        reason: detail("upgrade"),
    });
    assert!(has_event(&acts, EventKind::MaintenanceOn));
    assert_eq!(t.m.state(), State::Maintenance);
    for _ in 0..5 {
        let acts = t.check(reply(500, Some(BbState::Error)));
        assert!(!acts.iter().any(|a| matches!(a, Action::Signal(_))));
    }
    // The operator stops Bitbucket for the upgrade: no restart.
    t.step(Input::Exited {
        kind: ExitKind::Exited(0),
    });
    let acts = t.step(Input::Gone);
    assert!(!acts.contains(&Action::Spawn));
    let acts = t.step(Input::Maintenance {
        on: false,
        reason: Detail::new(),
    });
    assert!(has_event(&acts, EventKind::MaintenanceOff));
    assert!(acts.contains(&Action::Spawn), "{acts:?}");
}

#[test]
fn maintenance_persisted_at_boot_does_not_start_bitbucket() {
    let t = T::boot(
        settings(),
        Boot {
            maintenance: Some(detail("backup")),
            ..Boot::default()
        },
    );
    assert_eq!(t.spawns(), 0);
    assert_eq!(t.m.state(), State::Maintenance);
}

#[test]
fn failed_persisted_at_boot_does_not_start_bitbucket() {
    let t = T::boot(
        settings(),
        Boot {
            failed: Some(FailReason::StartFailed),
            ..Boot::default()
        },
    );
    assert_eq!(t.spawns(), 0);
    assert_eq!(t.m.state(), State::Failed);
}

// ---- Re-adoption after a bbwd restart ----

#[test]
fn an_adopted_bitbucket_is_not_started_again() {
    let mut t = T::boot(
        settings(),
        Boot {
            adopted_pid: Some(4242),
            ..Boot::default()
        },
    );
    assert_eq!(t.spawns(), 0);
    assert!(t.kinds().contains(&EventKind::Adopted));
    assert_eq!(t.m.state(), State::Running);
    t.check(running());
    // Its exit status is unknowable; a crash all the same.
    let acts = t.step(Input::Exited {
        kind: ExitKind::Unknown,
    });
    assert!(has_event(&acts, EventKind::Crash));
}

// ---- Shutdown (SIGTERM to bbwd) ----

#[test]
fn shutdown_stops_bitbucket_gracefully_then_exits() {
    let mut t = T::running(settings());
    let acts = t.step(Input::Shutdown);
    assert!(acts.contains(&Action::Signal(Sig::Term)));
    assert!(!acts.contains(&Action::Exit));
    t.step(Input::Exited {
        kind: ExitKind::Exited(0),
    });
    let acts = t.step(Input::Gone);
    assert!(acts.contains(&Action::Exit));
    assert!(!acts.contains(&Action::Spawn));
}

#[test]
fn shutdown_during_a_correction_does_not_restart() {
    let mut t = T::running(settings());
    t.check(reply(500, Some(BbState::Error)));
    t.check(reply(500, Some(BbState::Error)));
    t.step(Input::Shutdown);
    let acts = t.step(Input::Gone);
    assert!(acts.contains(&Action::Exit));
    assert!(!acts.contains(&Action::Spawn));
}

#[test]
fn shutdown_while_spawning_stops_the_new_process() {
    let mut t = T::new(settings());
    t.step(Input::Shutdown);
    let acts = t.step(Input::Started { pid: 3 });
    assert!(acts.contains(&Action::Signal(Sig::Term)));
    let acts = t.step(Input::Gone);
    assert!(acts.contains(&Action::Exit));
}

#[test]
fn shutdown_with_nothing_running_exits_at_once() {
    let mut t = T::boot(
        settings(),
        Boot {
            failed: Some(FailReason::StartFailed),
            ..Boot::default()
        },
    );
    let acts = t.step(Input::Shutdown);
    assert!(acts.contains(&Action::Exit));
}

// ---- Scheduling ----

#[test]
fn checks_never_overlap_and_follow_the_interval() {
    let mut t = T::running(settings());
    let acts = t.run_to_deadline();
    assert!(acts.contains(&Action::Check));
    // The check is slow (30 s monitor_timeout > 15 s interval): no second check meanwhile.
    for _ in 0..4 {
        assert!(!t.after(Duration::from_secs(10)).contains(&Action::Check));
    }
    t.step(Input::Checked {
        probe: running(),
        db_up: None,
    });
    assert!(
        t.after(MS).contains(&Action::Check),
        "overdue check runs at once"
    );
}

// ---- Invariants under random inputs ----

use bbwd_testkit::Rng;

/// A model of the world: at most one process; the machine must never ask for a second spawn
/// while one lives, and every signal must target a live group.
#[test]
fn random_inputs_never_start_two_instances() {
    for seed in 1..=300u64 {
        let mut rng = Rng::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let s = Settings {
            database: seed % 2 == 0,
            pair: seed % 4 == 1,
            max_restarts: (seed % 3) as u32,
            ..settings()
        };
        let mut t = T::new(s);
        // World state.
        let mut alive = false; // a group exists
        let mut leader = false; // its leader runs
        let mut spawning = t.log.iter().any(|(_, a)| *a == Action::Spawn);
        let mut next_pid = 1000;
        let mut check_pending = false;
        for _ in 0..400 {
            let input = match rng.below(12) {
                0 if spawning => {
                    spawning = false;
                    if rng.below(8) == 0 {
                        Input::SpawnFailed {
                            detail: detail("x"),
                        }
                    } else {
                        alive = true;
                        leader = true;
                        next_pid += 1;
                        Input::Started { pid: next_pid }
                    }
                }
                1 if leader => {
                    leader = false;
                    Input::Exited {
                        kind: ExitKind::Exited(rng.below(4) as i32),
                    }
                }
                2 if alive && !leader && rng.below(2) == 0 => {
                    alive = false;
                    Input::Gone
                }
                3 if check_pending => {
                    check_pending = false;
                    let probe = match rng.below(4) {
                        0 => running(),
                        1 => reply(503, Some(BbState::Starting)),
                        2 => reply(500, Some(BbState::Error)),
                        _ => ProbeOutcome::Failed(ProbeFailure::Timeout),
                    };
                    let db_up = t.m.s.database.then(|| rng.below(4) != 0);
                    Input::Checked { probe, db_up }
                }
                4 => Input::Maintenance {
                    on: rng.below(2) == 0,
                    reason: detail("r"),
                },
                5 if t.m.s.pair => Input::Permit {
                    run: rng.below(3) != 0,
                },
                5 => Input::Reset,
                6 if leader => Input::OomeLine,
                7 if rng.below(30) == 0 => Input::Shutdown,
                _ => {
                    t.now += Duration::from_secs(rng.below(200));
                    Input::Tick
                }
            };
            let acts = t.step(input.clone());
            for a in &acts {
                match a {
                    Action::Spawn => {
                        assert!(
                            !alive && !spawning,
                            "seed {seed}: spawn while a process lives ({input:?})"
                        );
                        spawning = true;
                    }
                    Action::Signal(Sig::Kill) => {
                        // SIGKILL ends every member in this model.
                        leader = false;
                    }
                    Action::Check => {
                        assert!(!check_pending, "seed {seed}: overlapping checks");
                        check_pending = true;
                    }
                    _ => {}
                }
            }
            if !t.m.petting() {
                // After StopPetting the machine never spawns again.
                assert!(!acts.contains(&Action::Spawn));
            }
        }
    }
}

// ---- Pair mode: the supervisor under the pair layer ----

fn pair_settings() -> Settings {
    Settings {
        pair: true,
        ..settings()
    }
}

fn reports(acts: &[Action]) -> Vec<Report> {
    acts.iter()
        .filter_map(|a| {
            if let Action::Report(r) = a {
                Some(*r)
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn in_pair_mode_nothing_starts_until_the_pair_layer_permits_it() {
    let mut t = T::new(pair_settings());
    assert_eq!(t.spawns(), 0);
    assert!(t.after(Duration::from_secs(3600)).is_empty());
    let acts = t.step(Input::Permit { run: true });
    assert!(acts.contains(&Action::Spawn));
    t.step(Input::Started { pid: 10 });
    let acts = t.check(running());
    assert_eq!(reports(&acts), vec![Report::Healthy]);
}

#[test]
fn taking_the_permission_back_stops_bitbucket_gracefully_and_reports_it() {
    let mut t = T::new(pair_settings());
    t.step(Input::Permit { run: true });
    t.step(Input::Started { pid: 10 });
    t.check(running());
    let acts = t.step(Input::Permit { run: false });
    assert!(acts.contains(&Action::Signal(Sig::Term)));
    t.step(Input::Exited {
        kind: ExitKind::Exited(0),
    });
    let acts = t.step(Input::Gone);
    assert_eq!(reports(&acts), vec![Report::Stopped]);
    assert!(!acts.contains(&Action::Spawn));
    // Already stopped: reported at once.
    let acts = t.step(Input::Permit { run: false });
    assert_eq!(reports(&acts), vec![Report::Stopped]);
}

#[test]
fn in_pair_mode_exhausted_restarts_escalate_instead_of_failing() {
    let mut t = T::new(pair_settings());
    t.step(Input::Permit { run: true });
    t.step(Input::Started { pid: 10 });
    t.check(running());
    t.step(Input::Exited {
        kind: ExitKind::Exited(1),
    });
    t.step(Input::Gone);
    t.step(Input::Started { pid: 11 });
    t.check(running());
    let acts = t.step(Input::Exited {
        kind: ExitKind::Exited(1),
    });
    assert_eq!(reports(&acts), vec![Report::Escalate]);
    let acts = t.step(Input::Gone);
    assert_eq!(reports(&acts), vec![Report::Stopped]);
    assert!(
        !acts.contains(&Action::Spawn),
        "the peer takes over, not us"
    );
    assert_eq!(t.m.view().failed, None, "not failed: handed over");
}

#[test]
fn in_pair_mode_a_failed_start_is_reported_and_fails_the_node() {
    let mut t = T::new(pair_settings());
    t.step(Input::Permit { run: true });
    t.step(Input::Started { pid: 10 });
    let acts = t.step(Input::Exited {
        kind: ExitKind::Exited(1),
    });
    assert!(has_event(&acts, EventKind::StartFailed));
    let acts = t.step(Input::Gone);
    assert_eq!(reports(&acts), vec![Report::StartFailed]);
    assert_eq!(t.m.state(), State::Failed);
}

#[test]
fn in_pair_mode_an_unkillable_group_is_reported() {
    let mut t = T::new(pair_settings());
    t.step(Input::Permit { run: true });
    t.step(Input::Started { pid: 10 });
    t.check(running());
    t.step(Input::Permit { run: false });
    t.run_to_deadline();
    let acts = t.run_to_deadline();
    assert!(reports(&acts).contains(&Report::Unkillable), "{acts:?}");
    assert!(acts.contains(&Action::StopPetting));
}

#[test]
fn a_single_node_never_reports_to_a_pair_layer() {
    let mut t = T::running(settings());
    t.step(Input::Exited {
        kind: ExitKind::Exited(1),
    });
    t.step(Input::Gone);
    t.step(Input::Started { pid: 11 });
    t.check(running());
    t.step(Input::Exited {
        kind: ExitKind::Exited(1),
    });
    t.step(Input::Gone);
    assert!(t.log.iter().all(|(_, a)| !matches!(a, Action::Report(_))));
}

// ---- Single-node hardening (never two Bitbuckets, fail safe, honest state) ----

/// Issue point 3: a child that escaped the process group still answers on /status; a start
/// would make a second Bitbucket.
#[test]
fn a_child_that_escapes_the_process_group_blocks_the_next_start() {
    let mut t = T::running(settings());
    t.occupied = Some("127.0.0.1:7990 accepts connections");
    t.step(Input::Exited {
        kind: ExitKind::Exited(1),
    });
    let acts = t.step(Input::Gone);
    assert!(acts.contains(&Action::CheckFree), "{acts:?}");
    assert!(!acts.contains(&Action::Spawn), "{acts:?}");
    assert!(has_event(&acts, EventKind::StartRefused));
    assert_eq!(t.m.state(), State::Failed);
    assert_eq!(t.m.view().failed, Some(FailReason::AlreadyServing));
    assert!(
        !FailReason::AlreadyServing.persistent(),
        "checked afresh after a restart"
    );
    // The operator ends the stray copy and resets: checked again, then started.
    t.occupied = None;
    let acts = t.step(Input::Reset);
    assert!(
        acts.contains(&Action::CheckFree) && acts.contains(&Action::Spawn),
        "{acts:?}"
    );
    // An answer nobody asked for changes nothing.
    let acts = t.step(Input::FreeChecked {
        occupied: Some(detail("HTTP 200 RUNNING")),
    });
    assert!(acts.is_empty(), "a stray answer is ignored: {acts:?}");
}

#[test]
fn a_start_is_refused_when_status_already_answers_at_boot() {
    let t0 = Instant::now();
    let (mut m, acts) = Machine::new(settings(), t0, Boot::default());
    assert_eq!(acts.as_slice(), &[Action::CheckFree]);
    assert_eq!(m.state(), State::Starting);
    let acts = m.step(
        t0,
        Input::FreeChecked {
            occupied: Some(detail("/status answers HTTP 200 RUNNING")),
        },
    );
    assert!(!acts.contains(&Action::Spawn));
    assert!(has_event(&acts, EventKind::StartRefused));
    assert_eq!(m.state(), State::Failed);
}

/// Issue point 3: stop said "Bitbucket stopped" while /status still answered RUNNING.
#[test]
fn stop_says_stopped_only_when_status_no_longer_answers() {
    let mut t = T::running(settings());
    t.step(Input::Shutdown);
    t.step(Input::Exited {
        kind: ExitKind::Exited(143),
    });
    t.occupied = Some("/status still answers HTTP 200 RUNNING");
    let acts = t.step(Input::Gone);
    assert!(has_event(&acts, EventKind::Escaped), "{acts:?}");
    assert!(!has_event(&acts, EventKind::Stopped), "{acts:?}");
    assert!(acts.contains(&Action::Exit));
    let mut t = T::running(settings());
    t.step(Input::Shutdown);
    t.step(Input::Exited {
        kind: ExitKind::Exited(143),
    });
    let acts = t.step(Input::Gone);
    assert!(has_event(&acts, EventKind::Stopped) && acts.contains(&Action::Exit));
}

/// Issue point 11: a corrupt `failed` file was silently dropped (and Bitbucket started), while a
/// corrupt `maintenance` file kept maintenance.
#[test]
fn a_corrupt_failed_file_stays_failed_as_a_corrupt_maintenance_file_stays_in_maintenance() {
    assert_eq!(boot_failed(Persisted::Missing), None);
    assert_eq!(
        boot_failed(Persisted::Text("restarts_exhausted\n")),
        Some(FailReason::RestartsExhausted)
    );
    for bad in [
        Persisted::Text("\u{0}garbage"),
        Persisted::Text(""),
        Persisted::Unreadable,
    ] {
        assert_eq!(
            boot_failed(bad),
            Some(FailReason::UnreadableState),
            "{bad:?}"
        );
        assert!(boot_maintenance(bad), "{bad:?}");
    }
    assert!(!boot_maintenance(Persisted::Missing));
    assert!(FailReason::UnreadableState.persistent());
    assert_eq!(
        FailReason::parse(FailReason::UnreadableState.as_str()),
        Some(FailReason::UnreadableState)
    );
    let t = T::boot(
        settings(),
        Boot {
            failed: boot_failed(Persisted::Unreadable),
            ..Boot::default()
        },
    );
    assert_eq!(t.spawns(), 0);
    assert_eq!(t.m.state(), State::Failed);
}

/// Issue point 12: re-adopted in the middle of a start, status said "running ... 503 STARTING".
#[test]
fn after_readoption_in_the_middle_of_a_start_the_state_is_starting() {
    let mut t = T::boot(
        settings(),
        Boot {
            adopted_pid: Some(77),
            ..Boot::default()
        },
    );
    assert_eq!(t.spawns(), 0);
    t.check(reply(503, Some(BbState::Starting)));
    assert_eq!(t.m.state(), State::Starting);
    t.check(running());
    assert_eq!(t.m.state(), State::Running);
}

/// Issue point 13: `device = "none"`: bbwd stayed failed after an unkillable episode ended, and
/// `reset` answered "the watchdog will do it" though there was none.
#[test]
fn without_a_watchdog_reset_recovers_once_an_unkillable_group_is_really_gone() {
    let s = Settings {
        watchdog_resets: false,
        ..settings()
    };
    let mut t = T::running(s);
    t.check(reply(500, Some(BbState::Error)));
    t.check(reply(500, Some(BbState::Error)));
    t.run_to_deadline();
    let acts = t.run_to_deadline();
    assert!(acts.contains(&Action::StopPetting));
    assert_eq!(t.m.reset_refused(), Some(ResetRefused::StillThere));
    assert!(
        t.step(Input::Reset).is_empty(),
        "not while it is still there"
    );
    t.step(Input::Gone);
    assert_eq!(t.m.reset_refused(), None);
    let acts = t.step(Input::Reset);
    assert!(acts.contains(&Action::ResumePetting), "{acts:?}");
    assert!(acts.contains(&Action::Spawn), "{acts:?}");
    assert!(t.m.petting());
    // With a watchdog, the node reset stands.
    let mut t = T::running(settings());
    t.check(reply(500, Some(BbState::Error)));
    t.check(reply(500, Some(BbState::Error)));
    t.run_to_deadline();
    t.run_to_deadline();
    t.step(Input::Gone);
    assert_eq!(t.m.reset_refused(), Some(ResetRefused::WatchdogResets));
}
