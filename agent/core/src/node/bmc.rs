//! The BMC side of pair mode: the fencing procedure ([`crate::fence::Procedure`]) that carries
//! out the pair's `Fence(goal)`, one at a time (a request while `cycle`'s power-on runs is
//! queued), its operations for the shell, and its outcome back to the pair as a `FenceResult`
//! (what counts as a confirmed fence is the procedure's decision).
//!
//! Must not: report a fence as confirmed but on `fence::Outcome::OffConfirmed`.

use std::time::Instant;

use crate::fence::{self, Goal, Next, Procedure};
use crate::pair;

use super::{ev, push, Action, Actions, Node};

/// What a BMC procedure is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum BmcFor {
    /// The pair asked (its answer goes back to it).
    Pair,
    /// `cycle`: powering the fenced peer back on (events only).
    CycleOn,
}

impl Node {
    /// The shell's answer to the outstanding `Action::Bmc`.
    pub(super) fn on_bmc_reply(
        &mut self,
        now: Instant,
        reply: fence::Reply,
        pin: &mut heapless::Deque<pair::Input, 16>,
        out: &mut Actions,
    ) {
        if let Some(ps) = &mut self.pair {
            if let Some((proc, _)) = &mut ps.bmc {
                let next = proc.on_reply(now, reply);
                self.bmc_next(now, next, pin, out);
            }
        }
    }

    /// Starts a BMC procedure, or queues it behind the one running (only `cycle`'s power-on can
    /// be running when the pair asks: the pair itself asks for one at a time).
    pub(super) fn start_bmc(
        &mut self,
        now: Instant,
        goal: Goal,
        purpose: BmcFor,
        out: &mut Actions,
    ) {
        let Some(ps) = &mut self.pair else { return };
        if ps.bmc.is_some() {
            ps.bmc_queued = Some(goal);
            return;
        }
        let (proc, op) = Procedure::start(goal, now, ps.fence_timeout);
        let timeout = proc.deadline().saturating_duration_since(now);
        ps.bmc = Some((proc, purpose));
        push(out, Action::Bmc { op, timeout });
    }

    /// The running procedure's next step.
    pub(super) fn bmc_next(
        &mut self,
        now: Instant,
        next: Next,
        pin: &mut heapless::Deque<pair::Input, 16>,
        out: &mut Actions,
    ) {
        let Some(ps) = &mut self.pair else { return };
        match next {
            Next::Wait => {}
            Next::Op(op) => {
                let timeout = ps
                    .bmc
                    .as_ref()
                    .map(|(p, _)| p.deadline().saturating_duration_since(now))
                    .unwrap_or_default();
                push(out, Action::Bmc { op, timeout });
            }
            Next::Done(outcome) => {
                let Some((_, purpose)) = ps.bmc.take() else {
                    return;
                };
                let cycle = ps.fence_cycle;
                let queued = ps.bmc_queued.take();
                match purpose {
                    BmcFor::Pair => {
                        let confirmed = outcome == fence::Outcome::OffConfirmed;
                        let r = match outcome {
                            fence::Outcome::OffConfirmed => {
                                pair::FenceResult::OffConfirmed(crate::machine::detail(
                                    "power off acknowledged, then off read back",
                                ))
                            }
                            fence::Outcome::Power { on } => pair::FenceResult::Power {
                                on,
                                detail: crate::machine::detail(if on {
                                    "power on"
                                } else {
                                    "power off"
                                }),
                            },
                            fence::Outcome::Failed(d) => pair::FenceResult::Failed(d),
                        };
                        let _ = pin.push_back(pair::Input::Fence(r));
                        if confirmed && cycle {
                            // `cycle` counts as fenced once off is confirmed; on comes after.
                            self.start_bmc(now, Goal::On, BmcFor::CycleOn, out);
                        }
                    }
                    // The details start with `cycle:`: the agent's metrics count fence attempts
                    // from `fenced`/`fence_failed` and leave these power-on steps out by it.
                    BmcFor::CycleOn => match outcome {
                        fence::Outcome::Failed(d) => ev(
                            out,
                            pair::Kind::FenceFailed,
                            format_args!("cycle: powering the peer back on: {d}"),
                        ),
                        _ => ev(
                            out,
                            pair::Kind::Fenced,
                            format_args!("cycle: the peer is powered on again"),
                        ),
                    },
                }
                if let Some(goal) = queued {
                    self.start_bmc(now, goal, BmcFor::Pair, out);
                }
            }
        }
    }
}
