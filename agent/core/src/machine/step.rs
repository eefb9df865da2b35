//! One step of the supervisor: [`Machine::step`] hands each input to its handler, then
//! reconciles (`after_step`: start Bitbucket when it should run and nothing does). The tick
//! moves the stop ladder on at its deadlines and asks for the next check when one is due.
//!
//! Must not: start Bitbucket but through the free-port check (`start::verify`), which keeps the
//! invariant "never two instances".

use std::time::Instant;

use super::state::{AfterCheck, Proc};
use super::{Actions, Db, Input, Machine};

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

    /// Time passed: the lifecycle's deadline (`stop`), then a check if one is due (`monitor`).
    fn on_tick(&mut self, now: Instant, out: &mut Actions) {
        self.on_deadline(now, out);
        self.schedule_check(now, out);
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
