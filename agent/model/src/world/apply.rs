//! One transition: [`Model::apply`] carries a [`Choice`] out on a copy of the world (the fault
//! budget and the time of the last fault kept), then checks safety after every transition and
//! progress at the end of a trace.
//!
//! Must not: decide for a node; every decision comes from the real `Node` through `shell`.

use std::fmt::Write as _;

use bbwd_core::machine::{self, detail};
use bbwd_core::node::Input;
use bbwd_core::probe::ExitKind;

use super::{is_fault, BmcMode, Choice, Item, Model, Outcome, Violation, World, LINKS};

impl Model {
    /// Applies `c` to a copy of `w`, then checks the invariants.
    pub fn apply(&self, w: &World, c: Choice, log: &mut Option<String>) -> Outcome {
        let mut w = w.clone();
        let mut v: Option<Violation> = None;
        let fault = is_fault(c);
        if fault {
            w.faults += 1;
            w.last_fault = w.now;
        } else if c != Choice::Next {
            // Recoveries count as the end of a fault episode too.
            w.last_fault = w.now;
        }
        self.transition(&mut w, c, &mut v);
        if let Some(l) = log.as_mut() {
            let _ = write!(l, "");
        }
        if v.is_none() {
            v = self.safety(&w);
        }
        if v.is_none() && self.first_ready(&w).is_none() && self.next_time(&w).is_none() {
            v = self.progress(&w);
        }
        match v {
            Some(v) => Outcome::Bad(w, v),
            None => Outcome::Ok(w),
        }
    }

    /// Carries out `c` on `w` (a violation found on the way is kept in `v`).
    fn transition(&self, w: &mut World, c: Choice, v: &mut Option<Violation>) {
        match c {
            Choice::Next => match self.first_ready(w) {
                Some(k) => self.process_pending(w, k, false, v),
                None => self.advance(w, v),
            },
            Choice::Race(k) => self.process_pending(w, k as usize, false, v),
            Choice::Drop(k) => {
                w.pending.remove(k as usize);
            }
            Choice::Hold(k) => {
                if let Some(Item::Deliver(p)) = w.pending.remove(k as usize) {
                    w.late.push(p);
                }
            }
            Choice::Dup(k) => {
                if let Some(Item::Deliver(p)) = w.pending.get(k as usize) {
                    w.captured.push(p.clone());
                }
                self.process_pending(w, k as usize, false, v);
            }
            Choice::Fail(k) => self.process_pending(w, k as usize, true, v),
            Choice::Late(j) => {
                let p = w.late.remove(j as usize);
                self.process(w, Item::Deliver(p), false, v);
            }
            Choice::Replay(j) => {
                let p = w.captured.remove(j as usize);
                self.process(w, Item::Deliver(p), false, v);
            }
            Choice::PowerOff { n, total } => {
                self.power_off(w, n);
                if total {
                    w.env[n as usize].bmc = BmcMode::Unreachable;
                }
            }
            Choice::PowerOn(n) => self.power_on(w, n),
            Choice::BmcMode(n, m) => w.env[n as usize].bmc = m,
            Choice::BbwdCrash(n) => self.crash_bbwd(w, n),
            Choice::Pause(n) => self.pause_bbwd(w, n),
            Choice::Resume(n) => self.resume_bbwd(w, n, v),
            Choice::BbCrash(n) => self.crash_bitbucket(w, n, v),
            Choice::BbHang(n) => {
                if let Some(bb) = &mut w.env[n as usize].bb {
                    bb.hung = true;
                }
            }
            Choice::BbUnkillable(n) => {
                if let Some(bb) = &mut w.env[n as usize].bb {
                    bb.unkillable = true;
                    bb.hung = true;
                    w.needs_operator = true;
                }
            }
            Choice::BbFailsStart(n) => {
                w.env[n as usize].fails_start = true;
                w.needs_operator = true;
            }
            Choice::Cut { from, link } => w.cut[from as usize][link as usize] = true,
            Choice::CutAll => w.cut = [[true; LINKS]; 2],
            Choice::Heal => w.cut = [[false; LINKS]; 2],
            Choice::Witness(n, ok) => w.env[n as usize].witness_ok = ok,
            Choice::Public(n, up) => {
                w.env[n as usize].public_up = up;
                self.feed(w, n, Input::PublicLink { up }, v);
            }
            Choice::Maintenance(n, on) => {
                let reason = detail("model");
                let input = Input::Sup(machine::Input::Maintenance { on, reason });
                self.feed(w, n, input, v);
            }
            Choice::Switchover(n) => self.feed(w, n, Input::Switchover, v),
            Choice::ConfirmPeerDown(n) => self.feed(w, n, Input::ConfirmPeerDown, v),
        }
    }

    /// Processes pending item `k` now (first in line, or raced ahead), failed if `fail`.
    fn process_pending(&self, w: &mut World, k: usize, fail: bool, v: &mut Option<Violation>) {
        let it = w.pending.remove(k).unwrap();
        self.process(w, it, fail, v);
    }

    /// Bitbucket's leader dies (SIGKILL from outside, the OOM killer): the group lingers until
    /// the supervisor reaps it.
    fn crash_bitbucket(&self, w: &mut World, n: u8, v: &mut Option<Violation>) {
        if let Some(bb) = &mut w.env[n as usize].bb {
            bb.leader_gone = true;
            let code = ExitKind::Signaled(9);
            self.feed(w, n, Input::Sup(machine::Input::Exited { kind: code }), v);
        }
    }
}
