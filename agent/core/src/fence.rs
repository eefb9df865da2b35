//! The fencing procedure, pure: which BMC operations, in which order, prove that the peer is off.
//!
//! Owns the decision of what counts as a **confirmed** off. The platform carries out one BMC
//! operation at a time ([`Op`]) and answers with a [`Reply`]; this machine says what to do next.
//! Must not: talk to a BMC, sleep or read a clock (time is passed in).
//!
//! # Theory of operation
//! ```text
//!   Off:  PowerOff ──ack──► Status (at once, then every POLL) ──off──► OffConfirmed
//!           │ error            ▲            │ on / error
//!           ▼                  └────────────┘
//!         wait POLL ─► PowerOff again ...        (until `timeout`: Failed)
//!   On:   PowerOn ──ack──► Status ... ──on──► Power { on: true }
//!   Status: Status ─► Power { on } | Failed
//!   ConfirmOff: Status ──off──► wait OFF_CONFIRM_GAP ─► Status ──off──► OffConfirmed
//!                  └──on──► Power { on: true } (no command is ever sent)
//! ```
//! * **One "off" reading is not a fence.** A status that says off proves nothing by itself: the
//!   BMC may be another machine's (a wrong `[fencing] host`), or the reading may be old. Off is
//!   confirmed only by an off reading taken *after* the BMC acknowledged our power-off command,
//!   or — for a BMC that refuses the command on a chassis already off — by two off readings at
//!   least [`OFF_CONFIRM_GAP`] apart after the command was tried.
//! * The power-off command is always sent, also to a node already reported off: it is idempotent
//!   on every BMC we know, and it is what makes the reading that follows mean something.
//! * `cycle` is `Off` (confirmed) followed by `On`; the takeover goes on as soon as off is
//!   confirmed (the caller starts `On` separately).
//!
//! `bbwd fence` (an operator acting by hand) has a procedure of its own, [`operator`].
//!
//! # Invariants
//! * At most one operation is outstanding; `Reply`s that do not match are ignored.
//! * Every procedure ends by its deadline, with an outcome.

use std::time::{Duration, Instant};

use crate::machine::Detail;

pub mod operator;

/// How often the power state is asked while waiting for it to change (as `bbwd fence` does):
/// a confirmed off comes at most this long after the BMC knows, and a BMC is not hurried by more
/// than 20 small requests a second.
pub const POLL: Duration = Duration::from_millis(50);

/// Two off readings this far apart confirm off when the BMC refused the power-off command: a
/// second reading a second later cannot be the same stale answer.
pub const OFF_CONFIRM_GAP: Duration = Duration::from_secs(1);

/// What the procedure is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Goal {
    /// Read the power state (no command).
    Status,
    /// Power the peer off and confirm it.
    Off,
    /// Power the peer on (after a confirmed off, for `action = "cycle"`).
    On,
    /// Confirm that a peer reported off stays off, without a command: two off readings
    /// [`OFF_CONFIRM_GAP`] apart (a booting node must not power off a peer that an operator is
    /// just powering on; a peer that comes on meanwhile ends it with `Power { on: true }`).
    ConfirmOff,
}

/// One BMC operation for the platform to carry out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Status,
    PowerOff,
    PowerOn,
}

/// The platform's answer to an [`Op`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reply {
    /// A status reading.
    Power { on: bool },
    /// A command was acknowledged.
    Done,
    /// The operation failed (unreachable, bad credentials, a completion code, a timeout).
    Failed(Detail),
}

/// How a procedure ended.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// `Status`: the reading.
    Power { on: bool },
    /// `Off`: the peer is confirmed off.
    OffConfirmed,
    /// `Off` or `On` was not reached, or `Status` failed: why.
    Failed(Detail),
}

/// What to do after a step of the procedure.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Next {
    /// Carry out this operation and answer with its reply.
    Op(Op),
    /// Nothing now; call [`Procedure::on_tick`] at [`Procedure::deadline`].
    Wait,
    /// Finished.
    Done(Outcome),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Step {
    /// `op` is outstanding.
    Waiting { op: Op },
    /// Nothing outstanding; `op` goes out at `at`.
    Sleeping { op: Op, at: Instant },
}

/// One run of the procedure. See the module doc.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Procedure {
    goal: Goal,
    step: Step,
    deadline: Instant,
    timeout: Duration,
    /// `Off`: the BMC acknowledged our power-off command.
    acked: bool,
    /// `Off`: when the first off reading after a refused command was taken.
    first_off: Option<Instant>,
    last_error: Option<Detail>,
}

impl Procedure {
    /// Starts `goal` with `timeout` for the whole procedure; returns it and its first operation.
    pub fn start(goal: Goal, now: Instant, timeout: Duration) -> (Procedure, Op) {
        let op = match goal {
            Goal::Status | Goal::ConfirmOff => Op::Status,
            Goal::Off => Op::PowerOff,
            Goal::On => Op::PowerOn,
        };
        (
            Procedure {
                goal,
                step: Step::Waiting { op },
                deadline: now + timeout,
                timeout,
                acked: false,
                first_off: None,
                last_error: None,
            },
            op,
        )
    }

    pub fn goal(&self) -> Goal {
        self.goal
    }

    /// The operation outstanding, if one is.
    pub fn outstanding(&self) -> Option<Op> {
        match self.step {
            Step::Waiting { op } => Some(op),
            Step::Sleeping { .. } => None,
        }
    }

    /// When [`Procedure::on_tick`] is due: the next poll, or the end.
    pub fn deadline(&self) -> Instant {
        match self.step {
            Step::Sleeping { at, .. } => at.min(self.deadline),
            Step::Waiting { .. } => self.deadline,
        }
    }

    /// Time passed.
    pub fn on_tick(&mut self, now: Instant) -> Next {
        if now >= self.deadline {
            return Next::Done(self.failed());
        }
        match self.step {
            Step::Sleeping { op, at } if now >= at => {
                self.step = Step::Waiting { op };
                Next::Op(op)
            }
            _ => Next::Wait,
        }
    }

    /// The reply to the outstanding operation.
    pub fn on_reply(&mut self, now: Instant, reply: Reply) -> Next {
        let Step::Waiting { op } = self.step else {
            return Next::Wait;
        };
        if let Reply::Failed(d) = &reply {
            self.last_error = Some(d.clone());
        }
        match (self.goal, op, reply) {
            (Goal::Status, _, Reply::Power { on }) => Next::Done(Outcome::Power { on }),
            (Goal::Status, _, Reply::Done) => Next::Done(Outcome::Failed(crate::machine::detail(
                "the BMC answered a status request without a power state",
            ))),
            (Goal::Status, _, Reply::Failed(d)) => Next::Done(Outcome::Failed(d)),
            (Goal::ConfirmOff, _, Reply::Power { on: true }) => {
                Next::Done(Outcome::Power { on: true })
            }
            (Goal::ConfirmOff, _, Reply::Power { on: false }) => match self.first_off {
                Some(t) if now.saturating_duration_since(t) >= OFF_CONFIRM_GAP => {
                    Next::Done(Outcome::OffConfirmed)
                }
                Some(t) => self.sleep(t + OFF_CONFIRM_GAP, Op::Status),
                None => {
                    self.first_off = Some(now);
                    self.sleep(now + OFF_CONFIRM_GAP, Op::Status)
                }
            },
            (Goal::ConfirmOff, _, Reply::Failed(d)) => Next::Done(Outcome::Failed(d)),
            (Goal::ConfirmOff, _, Reply::Done) => Next::Done(Outcome::Failed(
                crate::machine::detail("the BMC answered a status request without a power state"),
            )),
            // The command: acknowledged (any answer that is not an error), or refused.
            (Goal::Off, Op::PowerOff, Reply::Failed(_)) => self.poll(now, Op::Status),
            (Goal::Off, Op::PowerOff, _)
                if crate::mutant::active(crate::mutant::Mutant::OneReadingFence) =>
            {
                // The old shortcut: read the state first; the command is never needed.
                self.poll(now, Op::Status)
            }
            (Goal::Off, Op::PowerOff, _) => {
                // Read back at once: a node already off (the common case: a dead peer) is
                // confirmed by this first reading; one that is going down is polled.
                self.acked = true;
                self.step = Step::Waiting { op: Op::Status };
                Next::Op(Op::Status)
            }
            (Goal::On, Op::PowerOn, Reply::Failed(_)) => self.poll(now, Op::PowerOn),
            (Goal::On, Op::PowerOn, _) => self.poll(now, Op::Status),
            // Readings.
            (Goal::Off, Op::Status, Reply::Power { on: false }) => {
                if self.acked || crate::mutant::active(crate::mutant::Mutant::OneReadingFence) {
                    return Next::Done(Outcome::OffConfirmed);
                }
                match self.first_off {
                    Some(t) if now.saturating_duration_since(t) >= OFF_CONFIRM_GAP => {
                        Next::Done(Outcome::OffConfirmed)
                    }
                    Some(_) => self.poll(now, Op::Status),
                    None => {
                        self.first_off = Some(now);
                        // Try the command once more: an acknowledgement confirms sooner.
                        self.poll(now, Op::PowerOff)
                    }
                }
            }
            (Goal::Off, Op::Status, Reply::Power { on: true }) => {
                // Still on (or on again): the command is re-sent only if it was never taken.
                let op = if self.acked { Op::Status } else { Op::PowerOff };
                self.first_off = None;
                self.poll(now, op)
            }
            (Goal::Off, Op::Status, _) => self.poll(now, Op::Status),
            (Goal::On, Op::Status, Reply::Power { on: true }) => {
                Next::Done(Outcome::Power { on: true })
            }
            (Goal::On, Op::Status, _) => self.poll(now, Op::Status),
            // A reply to an operation this goal never sends: ignore it, keep waiting.
            _ => Next::Wait,
        }
    }

    fn sleep(&mut self, at: Instant, op: Op) -> Next {
        if at >= self.deadline {
            return Next::Done(self.failed());
        }
        self.step = Step::Sleeping { op, at };
        Next::Wait
    }

    fn poll(&mut self, now: Instant, op: Op) -> Next {
        if now + POLL >= self.deadline {
            return Next::Done(self.failed());
        }
        self.step = Step::Sleeping { op, at: now + POLL };
        Next::Wait
    }

    fn failed(&mut self) -> Outcome {
        let mut d = Detail::new();
        let want = match self.goal {
            Goal::Off => "off",
            Goal::On => "on",
            Goal::Status => "a power state",
            Goal::ConfirmOff => "off twice",
        };
        let _ = core::fmt::Write::write_fmt(
            &mut d,
            format_args!(
                "BMC did not confirm {want} within {:?}{}{}",
                self.timeout,
                if self.last_error.as_ref().is_some_and(|e| !e.is_empty()) {
                    ": last error: "
                } else {
                    ""
                },
                self.last_error.as_deref().unwrap_or("")
            ),
        );
        Outcome::Failed(d)
    }
}

#[cfg(test)]
mod tests;
