//! The operator's fencing procedure, pure: what `bbwd fence status|off|on|cycle` asks the
//! peer's BMC, in which order, and when it is done (SPEC CLI).
//!
//! Owns the decisions of the by-hand command: read the state first, command only if it differs,
//! confirm the change by polling, read once more after a failed command. Must not: talk to a
//! BMC, sleep or read a clock (time is passed in), or format anything for the operator (its
//! failures carry the platform's error type `E` unchanged).
//!
//! This is not the daemon's fence ([`super::Procedure`]): an operator who asks for `off` and is
//! told `off` by the BMC is answered at once, where a takeover needs an off reading *after* its
//! own acknowledged command.
//!
//! # Theory of operation
//! ```text
//!  Check ──state == want──────────────────────────────────────────► phase done
//!    │ else
//!    ▼
//!  Command ──ok──► Poll (status every POLL) ──state == want──────► phase done
//!    │ error                 │ deadline
//!    ▼                       ▼
//!  Verify (one status) ─► failed (the command's error, or NotConfirmed)
//! ```
//! `cycle` is two phases, off then on, each with the full timeout (the second starts at its
//! Command); `status` is one Check.
//!
//! | action | sequence                                                        | done when           |
//! |--------|-----------------------------------------------------------------|---------------------|
//! | status | one status                                                      | the BMC answered    |
//! | off    | status; if on: power off, then status every [`POLL`]            | the BMC reports off |
//! | on     | status; if off: power on, then status every [`POLL`]            | the BMC reports on  |
//! | cycle  | off (confirmed), then on (confirmed): never a blind chassis cycle | the BMC reports on |
//!
//! # Invariants
//! * At most one operation is outstanding: a new one is asked for only in answer to the last
//!   one's answer, or at [`Run::poll_at`] when none is outstanding.
//! * A phase ends by its deadline: a poll that would go past it ends the run (`NotConfirmed`).

use std::time::{Duration, Instant};

use super::{Op, POLL};

/// What the operator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Status,
    Off,
    On,
    Cycle,
}

impl Action {
    /// The command line's word for it.
    pub fn parse(word: &str) -> Option<Action> {
        Some(match word {
            "status" => Action::Status,
            "off" => Action::Off,
            "on" => Action::On,
            "cycle" => Action::Cycle,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Status => "status",
            Action::Off => "off",
            Action::On => "on",
            Action::Cycle => "cycle",
        }
    }
}

/// A power state, read or wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Power {
    Off,
    On,
}

/// What the platform's answer to an operation says: a power state, or no power state — an
/// acknowledged command (`Err(None)`) or a failure (`Err(Some(e))`).
pub type Answer<E> = Result<Power, Option<E>>;

/// Why the run failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure<E> {
    /// An operation failed: the first status, or a command and the status read after it.
    Bmc(E),
    /// The first status was answered without a power state.
    NoPowerState,
    /// The BMC kept reporting the other state until the phase's timeout.
    NotConfirmed {
        want: Power,
        timeout: Duration,
        /// The last failed operation of the phase, if one failed.
        last_error: Option<E>,
    },
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next<E> {
    /// Carry out this operation (within [`Run::deadline`]) and answer with its outcome.
    Submit(Op),
    /// Nothing now: wait for the outstanding operation's answer, or until [`Run::poll_at`].
    Wait,
    /// Finished: the power state reached (or read), or why not.
    Done(Result<Power, Failure<E>>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Check,
    Command,
    Verify,
    Poll,
}

/// One run of an [`Action`]. See the module doc.
#[derive(Debug, Clone)]
pub struct Run<E> {
    /// What is left to reach, in order (`status`: empty).
    targets: heapless::Vec<Power, 2>,
    step: Step,
    timeout: Duration,
    deadline: Instant,
    next_poll: Option<Instant>,
    last_error: Option<E>,
}

impl<E> Run<E> {
    /// Starts `action` with `timeout` per phase; returns it and its first operation (a status).
    pub fn start(action: Action, timeout: Duration, now: Instant) -> (Run<E>, Op) {
        let mut targets = heapless::Vec::new();
        let _ = match action {
            Action::Status => Ok(()),
            Action::Off => targets.push(Power::Off),
            Action::On => targets.push(Power::On),
            Action::Cycle => targets
                .push(Power::Off)
                .and_then(|_| targets.push(Power::On)),
        };
        let run = Run {
            targets,
            step: Step::Check,
            timeout,
            deadline: now + timeout,
            next_poll: None,
            last_error: None,
        };
        (run, Op::Status)
    }

    /// The current phase's deadline: an operation asked for now must end by it.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// When the next status poll is due (nothing is outstanding meanwhile).
    pub fn poll_at(&self) -> Option<Instant> {
        self.next_poll
    }

    /// Time passed: the poll's status request once it is due.
    pub fn on_tick(&mut self, now: Instant) -> Next<E> {
        match self.next_poll {
            Some(at) if now >= at => {
                self.next_poll = None;
                Next::Submit(Op::Status)
            }
            _ => Next::Wait,
        }
    }

    /// The answer to the outstanding operation.
    pub fn on_answer(&mut self, now: Instant, answer: Answer<E>) -> Next<E> {
        let want = self.targets.first().copied();
        match (self.step, answer) {
            // `status`: the answer is the result.
            (Step::Check, Ok(p)) if want.is_none() => Next::Done(Ok(p)),
            (Step::Check | Step::Verify | Step::Poll, Ok(p)) if Some(p) == want => {
                self.phase_done(now)
            }
            (Step::Check, Ok(_)) => {
                self.step = Step::Command;
                Next::Submit(command(want.unwrap_or(Power::Off)))
            }
            (Step::Check, Err(e)) => Next::Done(Err(match e {
                Some(e) => Failure::Bmc(e),
                None => Failure::NoPowerState,
            })),
            (Step::Command, Ok(_) | Err(None)) => {
                // Carried out; the BMC has not had time to change yet: poll.
                self.step = Step::Poll;
                self.next_poll = Some(now + POLL);
                Next::Wait
            }
            (Step::Command, Err(Some(e))) => {
                // The command may have been carried out even so (a lost reply): the state
                // decides.
                self.last_error = Some(e);
                self.step = Step::Verify;
                Next::Submit(Op::Status)
            }
            (Step::Verify, _) => Next::Done(Err(match self.last_error.take() {
                Some(e) => Failure::Bmc(e),
                None => self.not_confirmed(want.unwrap_or(Power::Off)),
            })),
            (Step::Poll, other) => {
                if let Err(Some(e)) = other {
                    // A failed poll is not the end: the next one uses a fresh session.
                    self.last_error = Some(e);
                }
                if now + POLL >= self.deadline {
                    return Next::Done(Err(self.not_confirmed(want.unwrap_or(Power::Off))));
                }
                self.next_poll = Some(now + POLL);
                Next::Wait
            }
        }
    }

    fn not_confirmed(&mut self, want: Power) -> Failure<E> {
        Failure::NotConfirmed {
            want,
            timeout: self.timeout,
            last_error: self.last_error.take(),
        }
    }

    /// The current target is reached: the next phase, or the end.
    fn phase_done(&mut self, now: Instant) -> Next<E> {
        let reached = self.targets.remove(0);
        let Some(&next) = self.targets.first() else {
            return Next::Done(Ok(reached));
        };
        // `cycle`: off is confirmed; now on, with a fresh timeout.
        self.deadline = now + self.timeout;
        self.last_error = None;
        self.step = Step::Command;
        Next::Submit(command(next))
    }
}

/// The command that makes the power `want`.
fn command(want: Power) -> Op {
    match want {
        Power::On => Op::PowerOn,
        Power::Off => Op::PowerOff,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(2);

    /// Drives a run with `answers` (one per operation asked for, `None` ends the script),
    /// advancing time to each poll; returns the operations asked for and the result.
    fn drive(
        action: Action,
        answers: &[Answer<&'static str>],
    ) -> (Vec<Op>, Option<Result<Power, Failure<&'static str>>>) {
        let mut now = Instant::now();
        let (mut run, first) = Run::start(action, TIMEOUT, now);
        let mut ops = vec![first];
        let mut answers = answers.iter().cloned();
        let mut next = run.on_answer(now, answers.next().expect("an answer"));
        loop {
            match next {
                Next::Done(r) => return (ops, Some(r)),
                Next::Submit(op) => {
                    ops.push(op);
                    match answers.next() {
                        Some(a) => next = run.on_answer(now, a),
                        None => return (ops, None),
                    }
                }
                Next::Wait => {
                    now = run.poll_at().expect("waits only for a poll here");
                    next = run.on_tick(now);
                }
            }
        }
    }

    #[test]
    fn actions_parse() {
        for a in ["status", "off", "on", "cycle"] {
            assert_eq!(Action::parse(a).unwrap().as_str(), a);
        }
        assert_eq!(Action::parse("reboot"), None);
    }

    #[test]
    fn status_is_one_reading() {
        let (ops, r) = drive(Action::Status, &[Ok(Power::On)]);
        assert_eq!(ops, [Op::Status]);
        assert_eq!(r, Some(Ok(Power::On)));
        let (_, r) = drive(Action::Status, &[Err(Some("unreachable"))]);
        assert_eq!(r, Some(Err(Failure::Bmc("unreachable"))));
        let (_, r) = drive(Action::Status, &[Err(None)]);
        assert_eq!(r, Some(Err(Failure::NoPowerState)));
    }

    #[test]
    fn already_off_is_done_without_a_command() {
        let (ops, r) = drive(Action::Off, &[Ok(Power::Off)]);
        assert_eq!(ops, [Op::Status]);
        assert_eq!(r, Some(Ok(Power::Off)));
    }

    #[test]
    fn off_is_commanded_then_polled_until_the_bmc_reports_it() {
        let (ops, r) = drive(
            Action::Off,
            &[Ok(Power::On), Err(None), Ok(Power::On), Ok(Power::Off)],
        );
        assert_eq!(ops, [Op::Status, Op::PowerOff, Op::Status, Op::Status]);
        assert_eq!(r, Some(Ok(Power::Off)));
    }

    #[test]
    fn a_failed_command_is_judged_by_one_more_reading() {
        // Carried out even so (a lost reply): done.
        let (ops, r) = drive(
            Action::Off,
            &[Ok(Power::On), Err(Some("lost")), Ok(Power::Off)],
        );
        assert_eq!(ops, [Op::Status, Op::PowerOff, Op::Status]);
        assert_eq!(r, Some(Ok(Power::Off)));
        // Not carried out: the command's error.
        let (_, r) = drive(
            Action::Off,
            &[Ok(Power::On), Err(Some("refused")), Ok(Power::On)],
        );
        assert_eq!(r, Some(Err(Failure::Bmc("refused"))));
    }

    #[test]
    fn a_state_that_never_changes_is_not_confirmed_within_the_timeout() {
        let mut answers = vec![Ok(Power::Off), Err(None)];
        answers.extend(std::iter::repeat_n(Ok(Power::Off), 100));
        answers.insert(3, Err(Some("one poll lost")));
        let (ops, r) = drive(Action::On, &answers);
        assert_eq!(ops[..3], [Op::Status, Op::PowerOn, Op::Status]);
        // Polls every POLL within the timeout, no more.
        let polls = ops.len() - 2;
        assert!(polls as u32 <= (TIMEOUT.as_millis() / POLL.as_millis()) as u32);
        assert_eq!(
            r,
            Some(Err(Failure::NotConfirmed {
                want: Power::On,
                timeout: TIMEOUT,
                last_error: Some("one poll lost"),
            }))
        );
    }

    #[test]
    fn cycle_is_off_confirmed_then_on_confirmed() {
        let (ops, r) = drive(
            Action::Cycle,
            &[
                Ok(Power::On),
                Err(None),
                Ok(Power::Off),
                Err(None),
                Ok(Power::On),
            ],
        );
        assert_eq!(
            ops,
            [
                Op::Status,
                Op::PowerOff,
                Op::Status,
                Op::PowerOn,
                Op::Status
            ]
        );
        assert_eq!(r, Some(Ok(Power::On)));
    }

    #[test]
    fn one_operation_at_a_time_and_nothing_while_waiting_to_poll() {
        let now = Instant::now();
        let (mut run, _) = Run::<()>::start(Action::Off, TIMEOUT, now);
        assert_eq!(
            run.on_answer(now, Ok(Power::On)),
            Next::Submit(Op::PowerOff)
        );
        assert_eq!(run.on_answer(now, Err(None)), Next::Wait);
        let at = run.poll_at().unwrap();
        assert_eq!(at, now + POLL);
        assert_eq!(run.on_tick(now), Next::Wait, "not yet due");
        assert_eq!(run.on_tick(at), Next::Submit(Op::Status));
        assert_eq!(run.poll_at(), None);
    }
}
