//! Stopping Bitbucket, always gracefully first: SIGTERM, `stop_timeout`, SIGKILL,
//! `kill_timeout`; a group that survives that is `Unkillable` (the node stops petting the
//! watchdog). Also what a leader's exit means (a crash, an OOME exit, a failed start), reaping
//! what is left of its group, what happens once the group is `Gone` (`Then`), and corrections
//! within the restart budget (`max_restarts` within `restart_window`; beyond it, escalate to the
//! pair or fail).
//!
//! Must not: leave `Down` to anything but `Gone` (the whole group gone), so a start never finds
//! an instance still running.

use std::time::Instant;

use crate::probe::ExitKind;

use super::state::{AfterCheck, Proc, Then};
use super::{
    event, push, Action, Actions, EventKind, ExitText, FailReason, Machine, Report, Sig,
    OOME_EXIT_CODE,
};

impl Machine {
    /// Begins a correction: graceful stop, then restart, within the restart budget.
    pub(super) fn correct(
        &mut self,
        now: Instant,
        kind: EventKind,
        why: core::fmt::Arguments<'_>,
        out: &mut Actions,
    ) {
        event(out, kind, why);
        let then = self.restart_or_escalate(now, out);
        self.stop(now, then, out);
    }

    /// Counts a restart if the budget allows one; otherwise escalates.
    fn restart_or_escalate(&mut self, now: Instant, out: &mut Actions) -> Then {
        while let Some(&t) = self.restarts.front() {
            if now.saturating_duration_since(t) >= self.s.restart_window {
                self.restarts.pop_front();
            } else {
                break;
            }
        }
        if (self.restarts.len() as u32) < self.s.max_restarts {
            self.restarts.push_back(now);
            Then::Restart
        } else if self.s.pair {
            let (max, w) = (self.s.max_restarts, self.s.restart_window);
            event(
                out,
                EventKind::RestartsExhausted,
                format_args!("{max} restarts within {w:?} already: failing over to the peer"),
            );
            // Stop here and let the pair layer hand the service over.
            self.permitted = false;
            self.report(out, Report::Escalate);
            Then::StayDown
        } else {
            let (max, w) = (self.s.max_restarts, self.s.restart_window);
            event(
                out,
                EventKind::RestartsExhausted,
                format_args!("{max} restarts within {w:?} already: giving up"),
            );
            Then::Fail(FailReason::RestartsExhausted)
        }
    }

    /// SIGTERM to the group (or, if the leader is already gone, straight to reaping).
    pub(super) fn stop(&mut self, now: Instant, then: Then, out: &mut Actions) {
        let Some(pid) = self.pid() else { return };
        event(
            out,
            EventKind::Stop,
            format_args!("SIGTERM to process group {pid}"),
        );
        push(out, Action::Signal(Sig::Term));
        self.proc = Proc::Stopping {
            pid,
            deadline: now + self.s.stop_timeout,
            then,
            leader_gone: false,
        };
    }

    /// The lifecycle's deadlines: a start not healthy within `startup_timeout` fails (unless
    /// holding or in maintenance), and the stop ladder moves on: SIGTERM ignored -> SIGKILL,
    /// SIGKILL survived -> unkillable, a reaped group's members left -> SIGKILL.
    pub(super) fn on_deadline(&mut self, now: Instant, out: &mut Actions) {
        match self.proc {
            Proc::Starting { deadline, .. } if now >= deadline => {
                if self.may_correct() {
                    let d = self.s.startup_timeout;
                    event(
                        out,
                        EventKind::StartFailed,
                        format_args!("not healthy within startup_timeout {d:?}"),
                    );
                    self.stop(now, Then::Fail(FailReason::StartFailed), out);
                } else if let Proc::Starting { deadline, .. } = &mut self.proc {
                    // Holding or maintenance: no verdict on the start while that lasts.
                    *deadline = now + self.s.startup_timeout;
                }
            }
            Proc::Stopping {
                pid,
                deadline,
                then,
                ..
            } if now >= deadline => {
                let d = self.s.stop_timeout;
                event(
                    out,
                    EventKind::Kill,
                    format_args!("pid {pid} still running {d:?} after SIGTERM: SIGKILL"),
                );
                push(out, Action::Signal(Sig::Kill));
                self.proc = Proc::Killing {
                    pid,
                    deadline: now + self.s.kill_timeout,
                    then,
                };
            }
            Proc::Killing { pid, deadline, .. } if now >= deadline => self.unkillable(pid, out),
            Proc::Reaping {
                pid,
                deadline,
                then,
            } if now >= deadline => {
                let d = self.s.stop_timeout;
                event(
                    out,
                    EventKind::Kill,
                    format_args!(
                        "members of pid {pid}'s process group still run {d:?} after it exited: SIGKILL"
                    ),
                );
                push(out, Action::Signal(Sig::Kill));
                self.proc = Proc::Killing {
                    pid,
                    deadline: now + self.s.kill_timeout,
                    then,
                };
            }
            _ => {}
        }
    }

    fn unkillable(&mut self, pid: i32, out: &mut Actions) {
        let d = self.s.kill_timeout;
        event(
            out,
            EventKind::Unkillable,
            format_args!("process group of pid {pid} survived SIGKILL for {d:?}"),
        );
        self.proc = Proc::Unkillable { pid };
        self.fail(FailReason::Unkillable, out);
        self.report(out, Report::Unkillable);
        if self.petting {
            self.petting = false;
            push(out, Action::StopPetting);
            event(
                out,
                EventKind::WatchdogStop,
                format_args!("the node cannot correct itself: watchdog no longer petted"),
            );
        }
    }

    pub(super) fn on_exited(&mut self, now: Instant, kind: ExitKind, out: &mut Actions) {
        event(out, EventKind::Exited, format_args!("{}", ExitText(kind)));
        match self.proc {
            Proc::Starting { .. } => {
                let then = if self.shutting_down {
                    Then::Shutdown
                } else if self.may_correct() {
                    event(
                        out,
                        EventKind::StartFailed,
                        format_args!("{} during startup", ExitText(kind)),
                    );
                    Then::Fail(FailReason::StartFailed)
                } else {
                    Then::StayDown
                };
                self.reap(now, then, out);
            }
            Proc::Up { .. } => {
                let oome = kind == ExitKind::Exited(OOME_EXIT_CODE);
                let then = if self.shutting_down {
                    Then::Shutdown
                } else if self.may_correct() {
                    if oome {
                        event(
                            out,
                            EventKind::Oome,
                            format_args!("{} (OutOfMemoryError): restart", ExitText(kind)),
                        );
                    } else {
                        event(
                            out,
                            EventKind::Crash,
                            format_args!("{}: restart at once", ExitText(kind)),
                        );
                    }
                    self.restart_or_escalate(now, out)
                } else {
                    Then::StayDown
                };
                self.reap(now, then, out);
            }
            Proc::Stopping {
                ref mut leader_gone,
                ..
            } => *leader_gone = true,
            _ => {}
        }
    }

    /// The leader is gone by itself: what is left of its group gets the same graceful stop as
    /// any stop (SIGTERM, `stop_timeout`, SIGKILL, `kill_timeout`); wait for `Gone`. An empty
    /// group (the usual case) is `Gone` at once and the SIGTERM reaches nobody.
    fn reap(&mut self, now: Instant, then: Then, out: &mut Actions) {
        push(out, Action::Signal(Sig::Term));
        self.proc = Proc::Reaping {
            pid: self.pid().unwrap_or(0),
            deadline: now + self.s.stop_timeout,
            then,
        };
    }

    pub(super) fn on_gone(&mut self, out: &mut Actions) {
        let then = match self.proc {
            Proc::Stopping { then, .. }
            | Proc::Killing { then, .. }
            | Proc::Reaping { then, .. } => then,
            // Died on its own at last; still failed (the watchdog decision stands).
            Proc::Unkillable { .. } => Then::StayDown,
            // Starting/Up: `Exited` precedes `Gone` and moves to Reaping; anything else is stale.
            _ => return,
        };
        // A check still in flight stays so until its `Checked` arrives (each has its own
        // timeout): checks never overlap. The last reply belonged to the process that is gone.
        self.proc = Proc::Down;
        self.last_probe = None;
        match then {
            Then::Restart if self.may_correct() => {
                self.verify(AfterCheck::Spawn { restart: true }, out);
            }
            Then::Fail(reason) => self.fail(reason, out),
            Then::Restart | Then::StayDown | Then::Shutdown => {}
        }
        if !self.permitted && !self.shutting_down {
            // Pair mode: the release's "stop Bitbucket" step is done.
            self.report(out, Report::Stopped);
        }
        if then == Then::Shutdown || self.shutting_down {
            // "Bitbucket stopped" only once /status says so too.
            self.verify(AfterCheck::Exit, out);
        }
    }
}
