//! The internal exchanges between the supervisor and the pair machine, run to a standstill
//! after every input: supervisor reports become pair inputs, the pair's permission and exit go
//! back to the supervisor, the supervisor's `failed`/maintenance overlays are told to the pair,
//! and every action meant for the shell is passed on (raising `vip_held` / `storage_held` as it
//! goes). Then the heartbeat is re-advertised.
//!
//! Must not: return a supervisor `Report` or `Exit`, or a pair `Permit`, `Fence` or `Exit`, to the
//! shell: those are settled here.

use std::time::Instant;

use crate::machine::{self, Report};
use crate::pair;

use super::bmc::BmcFor;
use super::{push, Action, Actions, Hooks, Node};

impl Node {
    pub(super) fn take_sup(
        &mut self,
        acts: machine::Actions,
        reports: &mut heapless::Deque<Report, 8>,
        out: &mut Actions,
    ) {
        for a in acts {
            match a {
                machine::Action::Report(r) => {
                    let _ = reports.push_back(r);
                }
                machine::Action::Exit => {
                    self.exit = true;
                    push(out, Action::Exit);
                }
                other => push(out, Action::Sup(other)),
            }
        }
    }

    /// Carries the pair's actions out of the machine: BMC work into the procedure, permission
    /// and exit back to the supervisor (through `permits`, `pair_exit`), the rest to the shell.
    pub(super) fn take_pair(
        &mut self,
        now: Instant,
        acts: pair::Actions,
        permits: &mut heapless::Deque<bool, 8>,
        pair_exit: &mut bool,
        out: &mut Actions,
    ) {
        for a in acts {
            match a {
                pair::Action::Fence(goal) => self.start_bmc(now, goal, BmcFor::Pair, out),
                pair::Action::RunHooks(phase) => {
                    if phase == Hooks::BeforeStart {
                        self.storage_held = true;
                    }
                    push(out, Action::RunHooks(phase));
                }
                pair::Action::Permit { run } => {
                    let _ = permits.push_back(run);
                }
                pair::Action::AddVip => {
                    self.vip_held = true;
                    push(out, Action::AddVip);
                }
                pair::Action::RemoveVip => push(out, Action::RemoveVip),
                pair::Action::SelfFence => push(out, Action::SelfFence),
                pair::Action::Event(k, d) => push(out, Action::Event(k, d)),
                pair::Action::Exit => *pair_exit = true,
            }
        }
    }

    /// Runs the internal exchanges to a standstill, then decides whether a heartbeat is due.
    pub(super) fn settle(
        &mut self,
        now: Instant,
        mut reports: heapless::Deque<Report, 8>,
        mut pin: heapless::Deque<pair::Input, 16>,
        out: &mut Actions,
    ) {
        let mut permits = heapless::Deque::<bool, 8>::new();
        let mut pair_exit = false;
        // Bounded: each round consumes what the previous produced; a machine bug must not hang
        // the loop.
        for _ in 0..64 {
            let mut progressed = false;
            while let Some(i) = pin.pop_front() {
                progressed = true;
                let Some(ps) = &mut self.pair else { continue };
                let acts = ps.pair.step(now, i);
                self.take_pair(now, acts, &mut permits, &mut pair_exit, out);
            }
            while let Some(r) = reports.pop_front() {
                progressed = true;
                let i = match r {
                    Report::Healthy => pair::Input::SupervisorHealthy,
                    Report::Stopped => pair::Input::SupervisorStopped,
                    Report::Escalate => pair::Input::SupervisorEscalates,
                    Report::Unkillable => pair::Input::SupervisorUnkillable,
                    Report::StartFailed => pair::Input::SupervisorStartFailed,
                };
                let _ = pin.push_back(i);
            }
            while let Some(run) = permits.pop_front() {
                progressed = true;
                let acts = self.sup.step(now, machine::Input::Permit { run });
                self.take_sup(acts, &mut reports, out);
            }
            if std::mem::take(&mut pair_exit) {
                // Everything released: the supervisor may shut down (nothing runs any more).
                progressed = true;
                let acts = self.sup.step(now, machine::Input::Shutdown);
                self.take_sup(acts, &mut reports, out);
            }
            if let Some(ps) = &mut self.pair {
                let v = self.sup.view();
                let told = (v.failed.is_some(), v.maintenance.is_some());
                if told != ps.local_told {
                    ps.local_told = told;
                    progressed = true;
                    let _ = pin.push_back(pair::Input::Local {
                        failed: told.0,
                        maintenance: told.1,
                    });
                }
            }
            if !progressed {
                break;
            }
        }
        self.advertise(now, out);
    }
}
