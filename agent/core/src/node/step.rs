//! One step of the node: [`Node::step`] hands each shell input to the part it concerns (the
//! supervisor, the pair machine, the BMC procedure, the tracker's timeouts), then settles.
//!
//! Must not: pass the shell a `Permit` or `Shutdown` for the supervisor (those are the node's
//! own), or let the shell's VIP and hook answers lower `vip_held` / `storage_held` but on success.

use std::time::Instant;

use crate::machine::{self, Report};
use crate::pair;

use super::{Actions, Hooks, Input, Node};

impl Node {
    /// Feeds one input at `now`; returns what to do.
    pub fn step(&mut self, now: Instant, input: Input) -> Actions {
        self.note_awake(now);
        let mut out = Actions::new();
        let mut reports = heapless::Deque::<Report, 8>::new();
        let mut pin = heapless::Deque::<pair::Input, 16>::new();
        match input {
            Input::Tick => self.on_tick(now, &mut reports, &mut pin, &mut out),
            Input::Sup(i) => {
                let i = match i {
                    // The node's own: never from the shell.
                    machine::Input::Permit { .. } | machine::Input::Shutdown => {
                        machine::Input::Tick
                    }
                    other => other,
                };
                let acts = self.sup.step(now, i);
                self.take_sup(acts, &mut reports, &mut out);
            }
            Input::Bmc(reply) => self.on_bmc_reply(now, reply, &mut pin, &mut out),
            Input::HooksDone { phase, ok, detail } => {
                if phase == Hooks::AfterStop && ok {
                    self.storage_held = false;
                }
                let _ = pin.push_back(pair::Input::HooksDone { phase, ok, detail });
            }
            Input::VipAdded { ok, detail } => {
                if !ok {
                    // Nothing was added (a probe conflict or a failed add).
                    self.vip_held = false;
                }
                let _ = pin.push_back(pair::Input::VipAdded { ok, detail });
            }
            Input::VipRemoved { ok, detail } => {
                if ok {
                    self.vip_held = false;
                }
                let _ = pin.push_back(pair::Input::VipRemoved { ok, detail });
            }
            Input::Witness { reachable } => {
                let _ = pin.push_back(pair::Input::Witness { reachable });
            }
            Input::PublicLink { up } => {
                let _ = pin.push_back(pair::Input::PublicLink { up });
            }
            Input::Switchover => {
                let _ = pin.push_back(pair::Input::Switchover);
            }
            Input::ConfirmPeerDown => {
                let _ = pin.push_back(pair::Input::ConfirmPeerDown);
            }
            Input::Shutdown => {
                if self.pair.is_some() {
                    // Release in order first; the supervisor shuts down when that is done.
                    let _ = pin.push_back(pair::Input::Shutdown);
                } else {
                    let acts = self.sup.step(now, machine::Input::Shutdown);
                    self.take_sup(acts, &mut reports, &mut out);
                }
            }
        }
        self.settle(now, reports, pin, &mut out);
        out
    }

    /// Time passed: the supervisor's deadlines, the pair's, the BMC procedure's, and the
    /// tracker's timeouts (links and the peer lost).
    fn on_tick(
        &mut self,
        now: Instant,
        reports: &mut heapless::Deque<Report, 8>,
        pin: &mut heapless::Deque<pair::Input, 16>,
        out: &mut Actions,
    ) {
        let acts = self.sup.step(now, machine::Input::Tick);
        self.take_sup(acts, reports, out);
        if let Some(ps) = &mut self.pair {
            let _ = pin.push_back(pair::Input::Tick);
            if let Some((proc, _)) = &mut ps.bmc {
                if now >= proc.deadline() {
                    let next = proc.on_tick(now);
                    self.bmc_next(now, next, pin, out);
                }
            }
        }
        self.tracker_events(now, pin, out);
    }
}
