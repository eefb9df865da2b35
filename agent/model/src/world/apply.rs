//! One transition: [`Model::apply`] carries a [`Choice`] out on a copy of the world (the fault
//! budget and the time of the last fault kept), then checks safety after every transition and
//! progress at the end of a trace.
//!
//! Must not: decide for a node; every decision comes from the real `Node` through `shell`.

use std::fmt::Write as _;

use bbwd_core::machine::{self, detail};
use bbwd_core::node::Input;
use bbwd_core::probe::ExitKind;

use super::{is_fault, Bbwd, BmcMode, Choice, Item, Model, Outcome, Violation, World, LINKS};

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
        match c {
            Choice::Next => match self.first_ready(&w) {
                Some(k) => {
                    let it = w.pending.remove(k).unwrap();
                    self.process(&mut w, it, false, &mut v);
                }
                None => self.advance(&mut w, &mut v),
            },
            Choice::Race(k) => {
                let it = w.pending.remove(k as usize).unwrap();
                self.process(&mut w, it, false, &mut v);
            }
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
                let it = w.pending.remove(k as usize).unwrap();
                self.process(&mut w, it, false, &mut v);
            }
            Choice::Fail(k) => {
                let it = w.pending.remove(k as usize).unwrap();
                self.process(&mut w, it, true, &mut v);
            }
            Choice::Late(j) => {
                let p = w.late.remove(j as usize);
                self.process(&mut w, Item::Deliver(p), false, &mut v);
            }
            Choice::Replay(j) => {
                let p = w.captured.remove(j as usize);
                self.process(&mut w, Item::Deliver(p), false, &mut v);
            }
            Choice::PowerOff { n, total } => {
                self.power_off(&mut w, n);
                if total {
                    w.env[n as usize].bmc = BmcMode::Unreachable;
                }
            }
            Choice::PowerOn(n) => self.power_on(&mut w, n),
            Choice::BmcMode(n, m) => w.env[n as usize].bmc = m,
            Choice::BbwdCrash(n) => self.crash_bbwd(&mut w, n),
            Choice::Pause(n) => {
                let e = &mut w.env[n as usize];
                if let Bbwd::Running(nd) = std::mem::replace(&mut e.bbwd, Bbwd::Down) {
                    e.bbwd = Bbwd::Paused(nd);
                }
            }
            Choice::Resume(n) => {
                let e = &mut w.env[n as usize];
                if let Bbwd::Paused(nd) = std::mem::replace(&mut e.bbwd, Bbwd::Down) {
                    e.bbwd = Bbwd::Running(nd);
                    w.pending.push_back(Item::Tick(n));
                    // What changed meanwhile is queued in its sockets (netlink, ICMP): the
                    // shell reads it on its first pass.
                    let (up, witness) = (e.public_up, e.witness_ok);
                    self.feed(&mut w, n, Input::PublicLink { up }, &mut v);
                    if self.cfg.witness {
                        self.feed(&mut w, n, Input::Witness { reachable: witness }, &mut v);
                    }
                }
            }
            Choice::BbCrash(n) => {
                if let Some(bb) = &mut w.env[n as usize].bb {
                    bb.leader_gone = true;
                    let code = ExitKind::Signaled(9);
                    self.feed(
                        &mut w,
                        n,
                        Input::Sup(machine::Input::Exited { kind: code }),
                        &mut v,
                    );
                }
            }
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
                self.feed(&mut w, n, Input::PublicLink { up }, &mut v);
            }
            Choice::Maintenance(n, on) => {
                let reason = detail("model");
                self.feed(
                    &mut w,
                    n,
                    Input::Sup(machine::Input::Maintenance { on, reason }),
                    &mut v,
                );
            }
            Choice::Switchover(n) => self.feed(&mut w, n, Input::Switchover, &mut v),
            Choice::ConfirmPeerDown(n) => self.feed(&mut w, n, Input::ConfirmPeerDown, &mut v),
        }
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
}
