//! Taking the service over, in order: `before_start` hooks, then `Permit { run: true }` (the
//! supervisor starts Bitbucket), then, once it reports Bitbucket healthy, `AddVip`, then
//! `Active`. A failed or timed-out step releases (`release`): the node is never left half
//! serving.
//!
//! Upholds the first invariant of the module doc ([`super`]): `Permit { run: true }` only in
//! `TakingOver`, `AddVip` only after Bitbucket is healthy.
//!
//! Must not: be entered but on one of the four proofs; `may_take_over` is a further condition
//! (not failed, no maintenance, not shutting down, public link up, no retry wait), never a proof.

use std::time::Instant;

use super::state::{St, TakeStep};
use super::{ev, far, push, Action, Actions, Hooks, Kind, Pair, ReleaseWhy};
use crate::machine::Detail;

impl Pair {
    /// Conditions under which this node may begin serving at all (beyond the proof).
    pub(super) fn may_take_over(&mut self, now: Instant) -> bool {
        !self.local_failed
            && !self.local_maintenance
            && !self.shutting_down
            && !self.public_lost(now)
            && self.takeover_retry.is_none_or(|t| now >= t)
    }

    pub(super) fn take_over(&mut self, now: Instant, out: &mut Actions) {
        self.handed_over_done = false;
        self.paused_reported = false;
        ev(out, Kind::TakeoverStep, format_args!("before_start hooks"));
        self.st = St::TakingOver {
            step: TakeStep::Hooks,
            deadline: now + self.s.step_timeout,
        };
        push(out, Action::RunHooks(Hooks::BeforeStart));
    }

    /// `before_start` hooks finished: start Bitbucket, or release if they failed.
    pub(super) fn on_before_start_done(
        &mut self,
        now: Instant,
        ok: bool,
        d: Detail,
        out: &mut Actions,
    ) {
        if let St::TakingOver {
            step: TakeStep::Hooks,
            ..
        } = self.st
        {
            if ok {
                ev(out, Kind::TakeoverStep, format_args!("starting Bitbucket"));
                // Bitbucket's own startup_timeout governs this step (the supervisor fails it).
                self.st = St::TakingOver {
                    step: TakeStep::Starting,
                    deadline: far(now),
                };
                push(out, Action::Permit { run: true });
            } else {
                ev(
                    out,
                    Kind::TakeoverFailed,
                    format_args!("before_start hooks failed: {d}"),
                );
                self.release(now, ReleaseWhy::TakeoverFailed, out);
            }
        }
    }

    pub(super) fn on_healthy(&mut self, now: Instant, out: &mut Actions) {
        if let St::TakingOver {
            step: TakeStep::Starting,
            ..
        } = self.st
        {
            ev(
                out,
                Kind::TakeoverStep,
                format_args!("Bitbucket RUNNING: adding the VIP"),
            );
            self.st = St::TakingOver {
                step: TakeStep::Vip,
                deadline: now + self.s.step_timeout,
            };
            push(out, Action::AddVip);
        }
    }

    pub(super) fn on_vip_added(&mut self, now: Instant, ok: bool, d: Detail, out: &mut Actions) {
        if let St::TakingOver {
            step: TakeStep::Vip,
            ..
        } = self.st
        {
            if ok {
                self.st = St::Active;
                self.takeover_retry = None;
                self.takeover_attempt = 0;
                ev(out, Kind::Active, format_args!("serving: {d}"));
            } else {
                ev(out, Kind::VipConflict, format_args!("{d}"));
                self.release(now, ReleaseWhy::TakeoverFailed, out);
            }
        }
    }
}
