//! Monitoring a running Bitbucket: one check at a time (the `/status` probe and the database
//! connect check, answered together as `Checked`), judged against the SPEC failure table
//! (`Verdict`), the database going down (holding: no correction) and up again, and
//! `OutOfMemoryError` in Bitbucket's own output. `failures_before_action` failed checks in a row
//! begin a correction (`stop`).
//!
//! Must not: correct anything while holding, in maintenance, failed or shutting down
//! (`may_correct`).

use std::time::Instant;

use crate::probe::{BbState, ProbeOutcome};

use super::state::Proc;
use super::{event, push, Action, Actions, Db, EventKind, Machine, ProbeText, Report};

/// How a `/status` reply is judged at a given moment (SPEC failure table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Verdict {
    /// RUNNING, MAINTENANCE, FIRST_RUN.
    Healthy,
    /// 503 STARTING within `startup_timeout` of a start: not a failure, not yet healthy.
    Grace,
    Failed,
}

impl Machine {
    /// A check's answer: the database first (a probe is always judged with a fresh database
    /// state), then the probe: a start that became healthy, or a running Bitbucket judged.
    pub(super) fn on_checked(
        &mut self,
        now: Instant,
        probe: ProbeOutcome,
        db_up: Option<bool>,
        out: &mut Actions,
    ) {
        self.check_in_flight = false;
        self.last_probe = Some(probe);
        self.note_db(now, db_up, out);
        match self.proc {
            Proc::Starting {
                pid, started_at, ..
            } if self.verdict(now, started_at, &probe) == Verdict::Healthy => {
                self.proc = Proc::Up { pid, started_at };
                self.report(out, Report::Healthy);
                self.consecutive_failures = 0;
                event(
                    out,
                    EventKind::Healthy,
                    format_args!("pid {pid}: {}", ProbeText(&probe)),
                );
            }
            Proc::Up { started_at, .. } => self.judge_up(now, started_at, &probe, out),
            _ => {}
        }
    }

    /// The database as the check found it: down is holding (no correction), up again resumes
    /// correction and gives a start its whole `startup_timeout` again.
    fn note_db(&mut self, now: Instant, db_up: Option<bool>, out: &mut Actions) {
        match (db_up, self.db) {
            (Some(false), Db::Unknown | Db::Up) => {
                self.db = Db::Down;
                event(
                    out,
                    EventKind::DbDown,
                    format_args!("database unreachable: holding, no correction"),
                );
            }
            (Some(true), Db::Down) => {
                self.db = Db::Up;
                self.consecutive_failures = 0;
                event(
                    out,
                    EventKind::DbUp,
                    format_args!("database reachable again: correction resumes"),
                );
                if let Proc::Starting { deadline, .. } = &mut self.proc {
                    *deadline = now + self.s.startup_timeout;
                }
            }
            (Some(true), Db::Unknown) => self.db = Db::Up,
            _ => {}
        }
    }

    /// A check of a Bitbucket seen healthy before: recovered, or one more failed check (and a
    /// correction once `failures_before_action` failed in a row).
    fn judge_up(
        &mut self,
        now: Instant,
        started_at: Instant,
        probe: &ProbeOutcome,
        out: &mut Actions,
    ) {
        match self.verdict(now, started_at, probe) {
            Verdict::Healthy | Verdict::Grace => {
                if self.report_healthy && self.verdict(now, started_at, probe) == Verdict::Healthy {
                    self.report_healthy = false;
                    self.report(out, Report::Healthy);
                }
                if self.consecutive_failures > 0 {
                    let n = self.consecutive_failures;
                    event(
                        out,
                        EventKind::Recovered,
                        format_args!("{} after {n} failed checks", ProbeText(probe)),
                    );
                }
                self.consecutive_failures = 0;
            }
            Verdict::Failed => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                let (n, max) = (self.consecutive_failures, self.s.failures_before_action);
                if n <= max {
                    event(
                        out,
                        EventKind::CheckFailed,
                        format_args!("{} ({n}/{max})", ProbeText(probe)),
                    );
                }
                if n >= max && self.may_correct() {
                    self.correct(
                        now,
                        EventKind::Correcting,
                        format_args!("{n} failed checks: {}", ProbeText(probe)),
                        out,
                    );
                }
            }
        }
    }

    /// Judges a probe against the SPEC failure table.
    fn verdict(&self, now: Instant, started_at: Instant, probe: &ProbeOutcome) -> Verdict {
        match *probe {
            ProbeOutcome::Reply {
                http_status: 200,
                state: Some(BbState::Running | BbState::Maintenance | BbState::FirstRun),
            } => Verdict::Healthy,
            ProbeOutcome::Reply {
                http_status: 503,
                state: Some(BbState::Starting),
            } if now < started_at + self.s.startup_timeout => Verdict::Grace,
            // STOPPING is only expected during our own stop, when no check runs.
            _ => Verdict::Failed,
        }
    }

    /// Asks for the next check when one is due (never two at once: a slow check is not
    /// overlapped).
    pub(super) fn schedule_check(&mut self, now: Instant, out: &mut Actions) {
        if self.wants_checks() && !self.check_in_flight && now >= self.next_check {
            self.check_in_flight = true;
            self.next_check = now + self.s.monitor_interval;
            push(out, Action::Check);
        }
    }

    pub(super) fn on_oome_line(&mut self, now: Instant, out: &mut Actions) {
        if matches!(self.proc, Proc::Up { .. } | Proc::Starting { .. }) && self.may_correct() {
            self.correct(
                now,
                EventKind::Oome,
                format_args!("OutOfMemoryError in Bitbucket's output: restart"),
                out,
            );
        }
    }
}
