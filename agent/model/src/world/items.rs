//! The environment's answers to the work it owes ([`super::Item`]): a datagram delivered, a
//! node ticked (with the spin check: invariant 3), the peer's BMC acting and answering in its
//! mode (truthful, unreachable, slow, lying once), hooks (a failed `after_stop` leaves storage)
//! and VIP steps done or failed.
//!
//! Must not: answer for a node that is off or whose bbwd is not running.

use bbwd_core::fence::{Op, Reply};
use bbwd_core::machine::detail;
use bbwd_core::node::Input;
use bbwd_core::pair::Hooks;

use super::{active, Bbwd, BmcMode, Cause, Item, Model, Packet, Violation, World, MS};

impl Model {
    /// The environment does pending item `it`; with `fail`, a hook or VIP step fails.
    pub(super) fn process(&self, w: &mut World, it: Item, fail: bool, v: &mut Option<Violation>) {
        match it {
            Item::Deliver(p) => self.deliver(w, p, v),
            Item::Tick(n) => self.tick(w, n, v),
            Item::Bmc(n) => self.bmc_answers(w, n, v),
            Item::Hooks(n, phase) => {
                let e = &mut w.env[n as usize];
                let ok = !fail;
                if phase == Hooks::AfterStop && ok {
                    e.storage = false;
                    e.storage_record = false;
                }
                let detail = detail(if ok { "ok" } else { "hook failed" });
                self.feed(w, n, Input::HooksDone { phase, ok, detail }, v);
            }
            Item::VipAdd(n) => {
                let ok = !fail;
                if ok {
                    w.env[n as usize].vip = true;
                }
                let detail = detail(if ok { "added" } else { "add failed" });
                self.feed(w, n, Input::VipAdded { ok, detail }, v);
            }
            Item::VipRemove(n) => {
                let ok = !fail;
                if ok {
                    w.env[n as usize].vip = false;
                }
                let detail = detail(if ok { "removed" } else { "remove failed" });
                self.feed(w, n, Input::VipRemoved { ok, detail }, v);
            }
        }
    }

    /// A datagram reaches node `p.to` (dropped unless it is powered and bbwd runs).
    fn deliver(&self, w: &mut World, p: Packet, v: &mut Option<Violation>) {
        let n = p.to;
        let e = &mut w.env[n as usize];
        if !e.powered {
            return;
        }
        let Bbwd::Running(nd) = &mut e.bbwd else {
            return;
        };
        let (_, acts) = nd.receive(self.at(w.now), p.link as usize, &p.bytes);
        self.take(w, n, acts, Cause::Packet, v);
    }

    /// Node `n` is ticked (a witness ping first, when one is due), then checked for a spin
    /// (invariant 3: after a `Tick` at t, `next_deadline()` is later than t).
    fn tick(&self, w: &mut World, n: u8, v: &mut Option<Violation>) {
        let now = w.now;
        let e = &mut w.env[n as usize];
        if self.witness_on() && e.next_ping <= now {
            e.next_ping = now + MS(200);
            let reachable = e.witness_ok;
            self.feed(w, n, Input::Witness { reachable }, v);
        }
        self.feed(w, n, Input::Tick, v);
        let at = self.at(now);
        let d = active(&w.env[n as usize]).and_then(|nd| nd.next_deadline());
        if d.is_some_and(|d| d <= at) {
            w.spun[n as usize] = Some(now);
            if !self.cfg.allow_spin && v.is_none() {
                let nd = active(&w.env[n as usize]).unwrap();
                *v = Some(Violation {
                    what: format!(
                        "spin: after a Tick at {now:?}, n{} still has next_deadline() = {:?} (pair {:?}, supervisor {:?}): the shell would busy-loop",
                        n + 1,
                        d.unwrap().saturating_duration_since(self.base),
                        nd.pair().and_then(|p| p.next_deadline()).map(|x| x.saturating_duration_since(self.base)),
                        nd.machine().next_deadline().map(|x| x.saturating_duration_since(self.base)),
                    ),
                });
            }
        }
    }

    /// Node `n`'s BMC operation reaches the peer's BMC, which acts and answers in its mode.
    fn bmc_answers(&self, w: &mut World, n: u8, v: &mut Option<Violation>) {
        let peer = 1 - n as usize;
        let Some(op) = w.env[n as usize].bmc_op.take() else {
            return;
        };
        let mode = w.env[peer].bmc;
        let reply = match mode {
            BmcMode::Unreachable => Reply::Failed(detail("BMC unreachable")),
            BmcMode::Truthful | BmcMode::Slow => {
                match op {
                    Op::Status => {}
                    Op::PowerOff => self.power_off(w, peer as u8),
                    Op::PowerOn => {
                        if !w.env[peer].powered && w.env[peer].restart_at.is_none() {
                            self.power_on(w, peer as u8)
                        }
                    }
                }
                if mode == BmcMode::Slow {
                    Reply::Failed(detail("BMC timed out"))
                } else if op == Op::Status {
                    Reply::Power {
                        on: w.env[peer].powered,
                    }
                } else {
                    Reply::Done
                }
            }
            BmcMode::Lying { off_once } => match op {
                Op::Status if off_once && w.env[peer].powered => {
                    w.env[peer].bmc = BmcMode::Lying { off_once: false };
                    Reply::Power { on: false }
                }
                Op::Status => Reply::Power {
                    on: w.env[peer].powered,
                },
                Op::PowerOff => {
                    self.power_off(w, peer as u8);
                    Reply::Done
                }
                Op::PowerOn => {
                    if !w.env[peer].powered && w.env[peer].restart_at.is_none() {
                        self.power_on(w, peer as u8)
                    }
                    Reply::Done
                }
            },
        };
        self.feed(w, n, Input::Bmc(reply), v);
    }
}
