//! Starting Bitbucket: the free-port check before every start (`CheckFree`: something already
//! answering on `status_url` is a second Bitbucket, refused), the spawn and its answer, and
//! `failed` (manual intervention) when a start cannot be made.
//!
//! Must not: return `Spawn` but from `Down` through a free-port check that found nothing.

use std::time::Instant;

use super::state::{AfterCheck, Proc, Then};
use super::{event, push, Action, Actions, Detail, EventKind, FailReason, Machine, Report};

impl Machine {
    /// Asks whether anything answers on `status_url` before `next`.
    pub(super) fn verify(&mut self, next: AfterCheck, out: &mut Actions) {
        self.proc = Proc::Verifying { next };
        push(out, Action::CheckFree);
    }

    pub(super) fn on_free_checked(&mut self, occupied: Option<Detail>, out: &mut Actions) {
        let Proc::Verifying { next } = self.proc else {
            // A stray answer: the loop only checks on request.
            return;
        };
        self.proc = Proc::Down;
        match (next, occupied) {
            (AfterCheck::Exit, None) => self.finish_shutdown(out),
            (AfterCheck::Exit, Some(what)) => {
                event(
                    out,
                    EventKind::Escaped,
                    format_args!(
                        "Bitbucket's process group is gone but {what}: a process escaped the group"
                    ),
                );
                push(out, Action::Exit);
            }
            (AfterCheck::Spawn { .. }, _) if self.shutting_down => self.finish_shutdown(out),
            (AfterCheck::Spawn { .. }, _) if !self.wants_running() => {
                if !self.permitted {
                    self.report(out, Report::Stopped);
                }
            }
            (AfterCheck::Spawn { restart }, None) => {
                self.proc = Proc::Spawning { restart };
                push(out, Action::Spawn);
            }
            (AfterCheck::Spawn { .. }, Some(what)) => {
                event(
                    out,
                    EventKind::StartRefused,
                    format_args!("not starting a second Bitbucket: {what}"),
                );
                self.fail(FailReason::AlreadyServing, out);
            }
        }
    }

    pub(super) fn on_started(&mut self, now: Instant, pid: i32, out: &mut Actions) {
        let restart = match self.proc {
            Proc::Spawning { restart } => restart,
            // A stray answer: the loop only spawns on request.
            _ => return,
        };
        self.consecutive_failures = 0;
        self.proc = Proc::Starting {
            pid,
            started_at: now,
            deadline: now + self.s.startup_timeout,
        };
        // The first check comes one interval after the start (Bitbucket needs time to bind).
        self.next_check = now + self.s.monitor_interval;
        if restart {
            let (n, max, w) = (
                self.restarts.len(),
                self.s.max_restarts,
                self.s.restart_window,
            );
            event(
                out,
                EventKind::Restart,
                format_args!("restart {n}/{max} within {w:?}: pid {pid}"),
            );
        } else {
            event(out, EventKind::Start, format_args!("started pid {pid}"));
        }
        if self.shutting_down {
            self.stop(now, Then::Shutdown, out);
        } else if !self.permitted {
            // The pair layer took the permission back while we were spawning.
            self.stop(now, Then::StayDown, out);
        }
    }

    pub(super) fn on_spawn_failed(&mut self, detail: Detail, out: &mut Actions) {
        if !matches!(self.proc, Proc::Spawning { .. }) {
            return;
        }
        self.proc = Proc::Down;
        event(out, EventKind::StartFailed, format_args!("{detail}"));
        self.fail(FailReason::SpawnFailed, out);
        if self.shutting_down {
            self.finish_shutdown(out);
        }
    }

    pub(super) fn fail(&mut self, reason: FailReason, out: &mut Actions) {
        if self.failed.is_none() {
            if matches!(reason, FailReason::StartFailed | FailReason::SpawnFailed) {
                self.report(out, Report::StartFailed);
            }
            self.failed = Some(reason);
            event(
                out,
                EventKind::Failed,
                format_args!(
                    "{}: manual intervention needed (bbwd reset)",
                    reason.as_str()
                ),
            );
        }
    }
}
