//! One step of the supervisor: [`Machine::step`] hands each input to its handler, then
//! reconciles (`after_step`: start Bitbucket when it should run and nothing does). The tick
//! moves the stop ladder on at its deadlines and asks for the next check when one is due.
//!
//! Must not: start Bitbucket but through the free-port check (`start::verify`), which keeps the
//! invariant "never two instances".

use std::time::Instant;

use super::state::{AfterCheck, Proc, Then};
use super::{event, push, Action, Actions, Db, EventKind, FailReason, Input, Machine, Sig};

impl Machine {
    /// Feeds one input at `now`; returns what to do.
    pub fn step(&mut self, now: Instant, input: Input) -> Actions {
        let mut out = Actions::new();
        match input {
            Input::Tick => self.on_tick(now, &mut out),
            Input::Started { pid } => self.on_started(now, pid, &mut out),
            Input::SpawnFailed { detail } => self.on_spawn_failed(detail, &mut out),
            Input::Checked { probe, db_up } => self.on_checked(now, probe, db_up, &mut out),
            Input::Exited { kind } => self.on_exited(now, kind, &mut out),
            Input::Gone => self.on_gone(&mut out),
            Input::FreeChecked { occupied } => self.on_free_checked(occupied, &mut out),
            Input::OomeLine => self.on_oome_line(now, &mut out),
            Input::Maintenance { on, reason } => self.on_maintenance(now, on, reason, &mut out),
            Input::Reset => self.on_reset(now, &mut out),
            Input::Shutdown => self.on_shutdown(now, &mut out),
            Input::Permit { run } => self.on_permit(now, run, &mut out),
        }
        self.after_step(&mut out);
        out
    }

    fn on_tick(&mut self, now: Instant, out: &mut Actions) {
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
        if self.wants_checks() && !self.check_in_flight && now >= self.next_check {
            self.check_in_flight = true;
            self.next_check = now + self.s.monitor_interval;
            push(out, Action::Check);
        }
    }

    /// Reconciles after every step: start Bitbucket when it should run and nothing runs.
    pub(super) fn after_step(&mut self, out: &mut Actions) {
        if self.proc == Proc::Down
            && self.wants_running()
            && matches!(self.db, Db::NotConfigured | Db::Up)
        {
            self.verify(AfterCheck::Spawn { restart: false }, out);
        }
    }
}
