//! Giving the service up, in order and best-effort: `RemoveVip`, then `Permit { run: false }`
//! and wait until Bitbucket is gone, then `after_stop` hooks. A failed step is counted and
//! decides the ending: with none, `Standby` (advertising `handed_over` when the reason hands
//! over); with any, or with a Bitbucket not gone within `release_timeout`, `SelfFenced`
//! (silent, the watchdog not petted: the peer's only way in is a confirmed fence). Also the
//! reasons a node releases or stands by: isolation, switchover, shutdown.
//!
//! Upholds the second and third invariants of the module doc ([`super`]).
//!
//! Must not: advertise `handed_over` after a release with a failed step, or say "not serving"
//! once self-fenced.

use std::time::Instant;

use super::state::{RelStep, St};
use super::{backoff, ev, push, Action, Actions, Hooks, Kind, Pair, ReleaseWhy, Role};
use crate::machine::Detail;

impl Pair {
    /// Begins (or continues) a release. Order: VIP, Bitbucket, after_stop hooks.
    pub(super) fn release(&mut self, now: Instant, why: ReleaseWhy, out: &mut Actions) {
        match self.st {
            St::Active | St::TakingOver { .. } => {
                ev(
                    out,
                    Kind::Release,
                    format_args!("releasing the service ({why:?})"),
                );
                self.active_fence = None;
                self.st = St::Releasing {
                    step: RelStep::Vip,
                    deadline: now + self.s.step_timeout,
                    why,
                    errors: 0,
                };
                push(out, Action::RemoveVip);
            }
            St::Releasing {
                step,
                deadline,
                errors,
                why: first,
            } => {
                // A second reason (e.g. shutdown during an escalation) only changes the ending;
                // a failed takeover never becomes a hand-over.
                let why = if first == ReleaseWhy::TakeoverFailed && why.hands_over() {
                    first
                } else {
                    why
                };
                self.st = St::Releasing {
                    step,
                    deadline,
                    why,
                    errors,
                };
            }
            _ if why == ReleaseWhy::Shutdown => push(out, Action::Exit),
            _ => {}
        }
    }

    pub(super) fn on_vip_removed(&mut self, now: Instant, ok: bool, d: Detail, out: &mut Actions) {
        if let St::Releasing {
            step: RelStep::Vip, ..
        } = self.st
        {
            if !ok {
                ev(
                    out,
                    Kind::ReleaseError,
                    format_args!("removing the VIP: {d}"),
                );
            }
            self.release_next(now, RelStep::Vip, ok, out);
        }
    }

    /// `after_stop` hooks finished (a failure is counted): the release's last step.
    pub(super) fn on_after_stop_done(
        &mut self,
        now: Instant,
        ok: bool,
        d: Detail,
        out: &mut Actions,
    ) {
        if let St::Releasing {
            step: RelStep::Hooks,
            ..
        } = self.st
        {
            if !ok {
                ev(
                    out,
                    Kind::ReleaseError,
                    format_args!("after_stop hooks: {d}"),
                );
            }
            self.release_next(now, RelStep::Hooks, ok, out);
        }
    }

    pub(super) fn on_stopped(&mut self, now: Instant, out: &mut Actions) {
        if let St::Releasing {
            step: RelStep::Stopping,
            ..
        } = self.st
        {
            self.release_next(now, RelStep::Stopping, true, out);
        }
    }

    /// A release step did not finish within its deadline. Bitbucket not gone is the end: this
    /// node cannot prove it stopped serving. Any other step counts as failed and the release
    /// goes on.
    pub(super) fn on_release_step_timeout(
        &mut self,
        now: Instant,
        step: RelStep,
        out: &mut Actions,
    ) {
        if step == RelStep::Stopping {
            // Bitbucket is not confirmed gone: this node cannot say it stopped serving.
            ev(
                out,
                Kind::ReleaseError,
                format_args!("Bitbucket not gone within the release deadline"),
            );
            self.self_fence(out);
        } else {
            ev(
                out,
                Kind::ReleaseError,
                format_args!("release step {step:?} timed out"),
            );
            self.release_next(now, step, false, out);
        }
    }

    /// Moves past release step `done` (best-effort: a failed step is counted, and decides the
    /// ending: a node that cannot prove it released never says so).
    fn release_next(&mut self, now: Instant, done: RelStep, ok: bool, out: &mut Actions) {
        let St::Releasing { why, errors, .. } = self.st else {
            return;
        };
        let errors = errors.saturating_add(u8::from(!ok));
        match done {
            RelStep::Vip => {
                ev(out, Kind::ReleaseStep, format_args!("stopping Bitbucket"));
                self.st = St::Releasing {
                    step: RelStep::Stopping,
                    deadline: now + self.s.release_timeout,
                    why,
                    errors,
                };
                push(out, Action::Permit { run: false });
            }
            RelStep::Stopping => {
                ev(out, Kind::ReleaseStep, format_args!("after_stop hooks"));
                self.st = St::Releasing {
                    step: RelStep::Hooks,
                    deadline: now + self.s.step_timeout,
                    why,
                    errors,
                };
                push(out, Action::RunHooks(Hooks::AfterStop));
            }
            RelStep::Hooks
                if errors > 0
                    && !crate::mutant::active(crate::mutant::Mutant::ReleaseFailedHandover) =>
            {
                ev(out, Kind::ReleaseError, format_args!("released ({why:?}) with {errors} failed step(s): this node cannot prove it stopped serving"));
                self.self_fence(out);
            }
            RelStep::Hooks => {
                ev(
                    out,
                    Kind::Standby,
                    format_args!("released ({why:?}), every step done"),
                );
                self.handed_over_done = why.hands_over();
                self.st = St::Standby;
                if why == ReleaseWhy::TakeoverFailed {
                    let wait = backoff(self.takeover_attempt);
                    self.takeover_attempt += 1;
                    self.takeover_retry = Some(now + wait);
                    ev(
                        out,
                        Kind::TakeoverFailed,
                        format_args!("takeover failed; the next attempt waits {wait:?}"),
                    );
                }
                if self.shutting_down {
                    push(out, Action::Exit);
                }
            }
        }
    }

    pub(super) fn self_fence(&mut self, out: &mut Actions) {
        if self.st != St::SelfFenced {
            ev(out, Kind::SelfFence, format_args!("this node cannot prove it stopped serving: silent, no longer petting the watchdog; the peer must fence it"));
            self.st = St::SelfFenced;
            self.handed_over_done = false;
            push(out, Action::SelfFence);
        }
    }

    pub(super) fn isolated(&mut self, now: Instant, out: &mut Actions) {
        match self.st {
            St::Active | St::TakingOver { .. } => {
                ev(
                    out,
                    Kind::Isolated,
                    format_args!("neither peer nor witness reachable: releasing, not fencing"),
                );
                self.release(now, ReleaseWhy::Isolated, out);
            }
            St::Fencing {
                requested: false, ..
            }
            | St::FenceBlocked { .. }
            | St::Booting { .. }
            | St::Standby => {
                if self.st != St::Standby {
                    ev(
                        out,
                        Kind::Isolated,
                        format_args!(
                            "neither peer nor witness reachable: standing by, not fencing"
                        ),
                    );
                }
                self.stand_by(out);
            }
            _ => {}
        }
    }

    pub(super) fn on_switchover(&mut self, now: Instant, out: &mut Actions) {
        let ready = self.peer.alive
            && self.peer.consent
            && self.peer.role == Role::Standby
            && self.peer.healthy
            && !self.peer.failed
            && !self.peer.maintenance;
        match self.st {
            St::Active if ready => self.release(now, ReleaseWhy::Switchover, out),
            St::Active => ev(
                out,
                Kind::SwitchoverRefused,
                format_args!("the peer is not a healthy standby that answers"),
            ),
            _ => ev(
                out,
                Kind::SwitchoverRefused,
                format_args!("this node is not active"),
            ),
        }
    }

    pub(super) fn on_shutdown(&mut self, now: Instant, out: &mut Actions) {
        self.shutting_down = true;
        match self.st {
            St::Active | St::TakingOver { .. } | St::Releasing { .. } => {
                self.release(now, ReleaseWhy::Shutdown, out)
            }
            St::SelfFenced => {}
            _ => push(out, Action::Exit),
        }
    }

    pub(super) fn stand_by(&mut self, out: &mut Actions) {
        if self.st != St::Standby {
            self.st = St::Standby;
            ev(out, Kind::Standby, format_args!("standing by"));
        }
    }
}
