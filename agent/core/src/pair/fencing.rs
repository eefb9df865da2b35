//! Fencing the peer, and reading its power, through its BMC: when a fence starts and who waits
//! (the priority delay; the winner's first shot at boot; none for a peer its BMC already
//! reports off), one BMC procedure at a time (a fence queued behind a running power query), the
//! power watch that finds a `[fencing]` host pointing at another machine, and what each answer
//! decides. Proof 1 of the safety rule (a **confirmed fence**) and proof 3 (the operator's
//! `confirm-peer-down`) lead to a takeover from here only.
//!
//! Must not: take one "off" reading for a fence (only `FenceResult::OffConfirmed` is, and never
//! while the BMC has been seen to report a heartbeating peer off), or fence from a node that is
//! isolated or paused.

use std::time::{Duration, Instant};

use super::state::{Query, St};
use super::{backoff, ev, push, Action, Actions, FenceResult, Kind, Pair};
use crate::fence::Goal;
use crate::machine::Detail;

impl Pair {
    /// Starts fencing the silent peer, from `Booting` or `Standby` (the active node fences from
    /// `Active` directly, at once). Who waits: in `Standby` we do not hold the service, so the
    /// active node (if it is alive and only the links are cut) gets the first shot; at boot
    /// nobody holds it, and the winner goes first.
    pub(super) fn begin_fence(&mut self, now: Instant, booting: bool, out: &mut Actions) {
        if self.paused() {
            if !self.paused_reported {
                self.paused_reported = true;
                ev(
                    out,
                    Kind::FailoverPaused,
                    format_args!(
                        "peer silent, but failover is paused: maintenance on {}",
                        if self.local_maintenance {
                            "this node"
                        } else {
                            "the peer"
                        }
                    ),
                );
            }
            self.stand_by(out);
            return;
        }
        if self.witness_down() {
            // Neither peer nor witness: we are the isolated one; never fence from here.
            self.isolated(now, out);
            return;
        }
        if !self.may_take_over(now) {
            self.stand_by(out);
            return;
        }
        let first_shot = booting && self.winner();
        let wait = if first_shot {
            Duration::ZERO
        } else {
            self.s.fence_delay
        };
        self.st = St::Fencing {
            not_before: now + wait,
            requested: false,
            attempt: 0,
        };
        if wait.is_zero() {
            self.request_fence(now, 0, out);
        } else {
            // A peer whose BMC already reports it off needs no race (the fence still confirms
            // it). Only a peer still powered (maybe alive behind cut links) gets the delay.
            self.query(Query::FastPath, out);
        }
    }

    pub(super) fn request_fence(&mut self, now: Instant, attempt: u32, out: &mut Actions) {
        self.st = St::Fencing {
            not_before: now,
            requested: true,
            attempt,
        };
        ev(
            out,
            Kind::Fence,
            format_args!("fencing the peer (attempt {})", attempt + 1),
        );
        self.fence(Goal::Off, out);
    }

    /// The priority delay of a standby's fence is over: fence, unless what held at the start
    /// of the wait no longer does.
    pub(super) fn on_fence_wait_over(&mut self, now: Instant, attempt: u32, out: &mut Actions) {
        if self.witness_down() {
            self.isolated(now, out);
        } else if self.public_down_since.is_some() || !self.may_take_over(now) {
            // What held at the start of the wait no longer does.
            self.stand_by(out);
        } else {
            self.request_fence(now, attempt, out);
        }
    }

    /// Asks for a fence procedure (queued behind a query that is running).
    pub(super) fn fence(&mut self, goal: Goal, out: &mut Actions) {
        match self.bmc_busy {
            Some(Some(_)) => self.fence_queued = true,
            Some(None) => {} // a fence is already running: its result serves
            None => {
                self.bmc_busy = Some(None);
                push(out, Action::Fence(goal));
            }
        }
    }

    pub(super) fn query(&mut self, why: Query, out: &mut Actions) {
        if self.bmc_busy.is_none() {
            self.bmc_busy = Some(Some(why));
            push(out, Action::Fence(Goal::Status));
        }
    }

    /// While the peer is heard, its BMC is asked for its power every `bmc_watch`: a BMC that
    /// says "off" for a live peer is a misconfiguration found before it is needed.
    pub(super) fn watch_bmc(&mut self, now: Instant, out: &mut Actions) {
        if self.peer.alive
            && self.bmc_busy.is_none()
            && now >= self.next_bmc_watch
            && !matches!(self.st, St::SelfFenced)
        {
            self.next_bmc_watch = now + self.s.bmc_watch;
            self.query(Query::Watch, out);
        }
    }

    pub(super) fn on_fence(&mut self, now: Instant, r: FenceResult, out: &mut Actions) {
        let Some(running) = self.bmc_busy.take() else {
            return;
        };
        match running {
            Some(why) => {
                if let FenceResult::Power { on, detail } = &r {
                    self.on_power(now, why, *on, detail, out);
                }
                if std::mem::take(&mut self.fence_queued) {
                    self.fence(Goal::Off, out);
                }
            }
            None => self.on_fenced(now, r, out),
        }
    }

    fn on_power(&mut self, now: Instant, why: Query, on: bool, d: &Detail, out: &mut Actions) {
        if self.peer.alive && !on {
            if !self.bmc_mismatch {
                self.bmc_mismatch = true;
                ev(out, Kind::BmcMismatch, format_args!("the peer's BMC reports it off while it heartbeats ({d}): [fencing] points at another machine; no fence is trusted"));
            }
            return;
        }
        if self.peer.alive && on && self.bmc_mismatch {
            self.bmc_mismatch = false;
            ev(
                out,
                Kind::BmcMatches,
                format_args!(
                    "the peer's BMC reports it on while it heartbeats: fencing trusted again"
                ),
            );
        }
        if why == Query::FastPath && !on && !self.peer.alive {
            match self.st {
                St::Fencing {
                    requested: false,
                    attempt,
                    ..
                } => {
                    ev(
                        out,
                        Kind::Fence,
                        format_args!("the peer's BMC reports it off ({d}): fencing to confirm"),
                    );
                    self.request_fence(now, attempt, out);
                }
                St::Booting { .. } if !self.paused() && !self.witness_down() => {
                    // Confirmed by reading it again, not by a command: an operator may be
                    // powering the peer on right now, and a booting node must not undo that.
                    ev(
                        out,
                        Kind::PeerPowerOff,
                        format_args!("booting: the peer's BMC reports it off ({d}): confirming"),
                    );
                    self.st = St::Fencing {
                        not_before: now,
                        requested: true,
                        attempt: 0,
                    };
                    self.fence(Goal::ConfirmOff, out);
                }
                _ => {}
            }
        }
    }

    fn on_fenced(&mut self, now: Instant, r: FenceResult, out: &mut Actions) {
        // One event per outcome, saying what follows from it.
        let mut why = Detail::new();
        let confirmed = match &r {
            FenceResult::OffConfirmed(d) if self.bmc_mismatch => {
                let _ = core::fmt::Write::write_fmt(&mut why, format_args!("{d}, but this BMC has reported the peer off while it heartbeated: not trusted (fix [fencing] or bbwd confirm-peer-down)"));
                false
            }
            FenceResult::OffConfirmed(d) => {
                ev(out, Kind::Fenced, format_args!("peer confirmed off: {d}"));
                true
            }
            FenceResult::Power { on: true, detail } => {
                ev(
                    out,
                    Kind::PeerSeen,
                    format_args!("the peer's BMC reports it on again ({detail}): not fenced"),
                );
                false
            }
            FenceResult::Failed(d) | FenceResult::Power { detail: d, .. } => {
                let _ = core::fmt::Write::write_str(&mut why, d);
                false
            }
        };
        let failed = !confirmed && !matches!(r, FenceResult::Power { on: true, .. });
        match self.st {
            St::Fencing { attempt, .. } => {
                if confirmed {
                    self.take_over(now, out);
                } else if !failed {
                    // `ConfirmOff` (only a booting node asks for it) found the peer powered on
                    // meanwhile: it is booting too; wait for it as a booting node does.
                    self.st = St::Booting {
                        until: self.boot_until,
                    };
                } else {
                    let wait = backoff(attempt);
                    ev(out, Kind::FenceFailed, format_args!("{why}; retry in {wait:?}; no takeover without a confirmed fence (bbwd confirm-peer-down)"));
                    self.st = St::FenceBlocked {
                        retry_at: now + wait,
                        attempt: attempt + 1,
                    };
                }
            }
            St::Active if self.active_fence.is_some() => {
                if confirmed || self.peer.alive {
                    self.active_fence = None;
                } else {
                    // The active retries a failed fence (it keeps serving meanwhile).
                    let wait = backoff(self.active_fence_attempt);
                    self.active_fence_attempt += 1;
                    self.active_fence = Some(Some(now + wait));
                    ev(
                        out,
                        Kind::FenceFailed,
                        format_args!("{why}; still serving; retry in {wait:?}"),
                    );
                }
            }
            _ if failed => ev(out, Kind::FenceFailed, format_args!("{why}")),
            _ => {}
        }
    }

    pub(super) fn on_confirm_peer_down(&mut self, now: Instant, out: &mut Actions) {
        if matches!(
            self.st,
            St::Fencing { .. } | St::FenceBlocked { .. } | St::Booting { .. } | St::Standby
        ) && !self.peer.alive
        {
            ev(
                out,
                Kind::PeerConfirmedDown,
                format_args!("operator confirmed the peer is down"),
            );
            self.takeover_retry = None;
            if self.may_take_over(now) {
                self.take_over(now, out);
            }
        } else {
            ev(
                out,
                Kind::SwitchoverRefused,
                format_args!(
                    "no takeover is waiting on a fence of a silent peer (the peer is heard, or \
                     this node serves)"
                ),
            );
        }
    }
}
