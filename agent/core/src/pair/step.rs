//! One step of the pair machine: [`Pair::step`] hands each input to its handler, then
//! `evaluate` applies what time and the standing conditions decide after every input: the
//! deadlines of the current state, the isolated or cut-off active, a silent peer re-evaluated,
//! the BMC watch.
//!
//! Must not: start serving except through `take_over` (`takeover`), which only the four proofs
//! of the safety rule (the module doc of [`super`]) reach.

use std::time::Instant;

use super::state::St;
use super::{ev, Actions, Hooks, Input, Kind, Pair, ReleaseWhy};
use crate::fence::Goal;

impl Pair {
    pub fn step(&mut self, now: Instant, input: Input) -> Actions {
        let mut out = Actions::new();
        match input {
            Input::Tick => {}
            Input::Peer(v) => self.on_peer(now, v, &mut out),
            Input::Fence(r) => self.on_fence(now, r, &mut out),
            Input::HooksDone { phase, ok, detail } => match phase {
                Hooks::BeforeStart => self.on_before_start_done(now, ok, detail, &mut out),
                Hooks::AfterStop => self.on_after_stop_done(now, ok, detail, &mut out),
            },
            Input::VipAdded { ok, detail } => self.on_vip_added(now, ok, detail, &mut out),
            Input::VipRemoved { ok, detail } => self.on_vip_removed(now, ok, detail, &mut out),
            Input::SupervisorHealthy => self.on_healthy(now, &mut out),
            Input::SupervisorStopped => self.on_stopped(now, &mut out),
            Input::SupervisorEscalates => self.release(now, ReleaseWhy::Escalation, &mut out),
            Input::SupervisorStartFailed => {
                if let St::TakingOver { .. } | St::Active = self.st {
                    // The seeds: a Bitbucket that fails to start fails on the other node too:
                    // release, stay failed, no hand-over (manual intervention).
                    self.release(now, ReleaseWhy::TakeoverFailed, &mut out);
                }
            }
            Input::SupervisorUnkillable => self.self_fence(&mut out),
            Input::Local {
                failed,
                maintenance,
            } => {
                self.local_failed = failed;
                self.local_maintenance = maintenance;
            }
            Input::Witness { reachable } => {
                self.witness_misses = if reachable {
                    0
                } else {
                    self.witness_misses.saturating_add(1)
                };
            }
            Input::PublicLink { up } => self.on_public_link(now, up, &mut out),
            Input::Switchover => self.on_switchover(now, &mut out),
            Input::ConfirmPeerDown => self.on_confirm_peer_down(now, &mut out),
            Input::Shutdown => self.on_shutdown(now, &mut out),
        }
        self.evaluate(now, &mut out);
        out
    }

    /// What time and the standing conditions decide, after every input: timeouts, the isolated
    /// or cut-off active, a silent peer re-evaluated, the BMC watch.
    fn evaluate(&mut self, now: Instant, out: &mut Actions) {
        if self.takeover_retry.is_some_and(|t| now >= t) {
            // The wait is over (the attempts count stays, CRITICAL, until one succeeds).
            self.takeover_retry = None;
        }
        match self.st {
            St::Booting { until } if now >= until && !self.peer.alive => {
                ev(
                    out,
                    Kind::PeerLost,
                    format_args!("no heartbeat from the peer within boot_wait"),
                );
                self.begin_fence(now, true, out);
            }
            St::Standby
                if !self.peer.alive
                    && !crate::mutant::active(crate::mutant::Mutant::WitnessOneMiss) =>
            {
                self.begin_fence(now, false, out)
            }
            St::Fencing {
                not_before,
                requested: false,
                attempt,
            } if now >= not_before => self.on_fence_wait_over(now, attempt, out),
            St::FenceBlocked { retry_at, attempt } if now >= retry_at => {
                self.request_fence(now, attempt, out);
            }
            St::TakingOver { step, deadline } if now >= deadline => {
                ev(
                    out,
                    Kind::TakeoverFailed,
                    format_args!("takeover step {step:?} timed out"),
                );
                self.release(now, ReleaseWhy::TakeoverFailed, out);
            }
            St::Releasing { step, deadline, .. } if now >= deadline => {
                self.on_release_step_timeout(now, step, out)
            }
            St::Active | St::TakingOver { .. } if self.public_lost(now) => {
                ev(
                    out,
                    Kind::Release,
                    format_args!("public link down for {:?}: failing over", self.s.link_hold),
                );
                self.release(now, ReleaseWhy::PublicLinkLost, out);
            }
            St::Active if !self.peer.alive && self.witness_down() => self.isolated(now, out),
            St::Active => {
                if let Some(Some(at)) = self.active_fence {
                    if now >= at && !self.peer.alive && self.public_down_since.is_none() {
                        self.active_fence = Some(None);
                        self.fence(Goal::Off, out);
                    }
                }
            }
            _ => {}
        }
        self.watch_bmc(now, out);
    }

    /// The public link's carrier changed: note since when it is down (`link_hold` counts from
    /// there; `evaluate` fails over once it has passed).
    fn on_public_link(&mut self, now: Instant, up: bool, out: &mut Actions) {
        if up {
            if self.public_down_since.take().is_some() {
                ev(out, Kind::PublicLink, format_args!("public link up"));
            }
        } else if self.public_down_since.is_none() {
            self.public_down_since = Some(now);
            ev(
                out,
                Kind::PublicLink,
                format_args!(
                    "public link down; failing over if it stays down for {:?}",
                    self.s.link_hold
                ),
            );
        }
    }
}
