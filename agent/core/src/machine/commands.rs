//! What the machine is told from outside the process lifecycle: the pair layer's permission
//! (`Permit`), the operator's maintenance and reset, and shutdown (stop Bitbucket gracefully,
//! then exit).
//!
//! Must not: clear `failed` while the node waits for its watchdog to reset it, or while an
//! unkillable group is still there (`reset_refused`).

use std::time::Instant;

use super::state::{Proc, Then};
use super::{detail, event, push, Action, Actions, Detail, EventKind, Machine, Report};

impl Machine {
    pub(super) fn on_permit(&mut self, now: Instant, run: bool, out: &mut Actions) {
        self.permitted = run;
        if run {
            // A takeover starts afresh: the budget counts restarts on this node's watch.
            self.restarts.clear();
            // Already running (adopted by a restarted bbwd): the pair hears of its health at the
            // next good check.
            self.report_healthy = matches!(self.proc, Proc::Up { .. });
            return;
        }
        self.report_healthy = false;
        match &mut self.proc {
            Proc::Starting { .. } | Proc::Up { .. } => self.stop(now, Then::StayDown, out),
            Proc::Stopping { then, .. }
            | Proc::Killing { then, .. }
            | Proc::Reaping { then, .. } => {
                if *then == Then::Restart {
                    *then = Then::StayDown;
                }
            }
            Proc::Down => self.report(out, Report::Stopped),
            // Spawning: `Started` stops it (not permitted any more). Verifying: `FreeChecked`
            // does not start it. Unkillable: reported.
            Proc::Spawning { .. } | Proc::Verifying { .. } | Proc::Unkillable { .. } => {}
        }
    }

    pub(super) fn on_maintenance(
        &mut self,
        now: Instant,
        on: bool,
        reason: Detail,
        out: &mut Actions,
    ) {
        if on {
            // No reason given: keep the one of a maintenance already on (a `--maint` relabel
            // must not lose "upgrade to 9.4"), else say who asked.
            let reason = match (reason.is_empty(), &self.maintenance) {
                (true, Some(current)) => current.clone(),
                (true, None) => detail("operator"),
                (false, _) => reason,
            };
            if self.maintenance.is_none() {
                event(out, EventKind::MaintenanceOn, format_args!("{reason}"));
            }
            self.maintenance = Some(reason);
        } else if self.maintenance.take().is_some() {
            self.consecutive_failures = 0;
            self.next_check = now;
            event(
                out,
                EventKind::MaintenanceOff,
                format_args!("automatic correction resumes"),
            );
        }
    }

    pub(super) fn on_reset(&mut self, now: Instant, out: &mut Actions) {
        // A node that stopped petting its watchdog is about to be reset: nothing to clear.
        // Without a hardware watchdog, nothing will reset it: once the group is really gone,
        // the operator's reset recovers.
        if self.reset_refused().is_some() {
            return;
        }
        if !self.petting {
            self.petting = true;
            push(out, Action::ResumePetting);
        }
        self.failed = None;
        self.restarts.clear();
        self.consecutive_failures = 0;
        self.next_check = now;
        event(
            out,
            EventKind::Reset,
            format_args!("operator cleared the failure"),
        );
    }

    pub(super) fn on_shutdown(&mut self, now: Instant, out: &mut Actions) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        event(
            out,
            EventKind::Shutdown,
            format_args!("stopping Bitbucket, then bbwd"),
        );
        match &mut self.proc {
            Proc::Starting { .. } | Proc::Up { .. } => self.stop(now, Then::Shutdown, out),
            Proc::Stopping { then, .. }
            | Proc::Killing { then, .. }
            | Proc::Reaping { then, .. } => *then = Then::Shutdown,
            Proc::Down => self.finish_shutdown(out),
            // Spawning: `Started` stops it at once. Verifying: `FreeChecked` ends it.
            // Unkillable: wait for the watchdog.
            Proc::Spawning { .. } | Proc::Verifying { .. } | Proc::Unkillable { .. } => {}
        }
    }

    pub(super) fn finish_shutdown(&mut self, out: &mut Actions) {
        event(out, EventKind::Stopped, format_args!("Bitbucket stopped"));
        push(out, Action::Exit);
    }
}
