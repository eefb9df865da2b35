//! The fencing procedure against scripted BMC replies.

use super::*;
use crate::machine::detail;

const TIMEOUT: Duration = Duration::from_secs(10);

fn err() -> Reply {
    Reply::Failed(detail("timeout"))
}

/// Drives `p` with `replies` (one per operation asked for), advancing time to each deadline
/// while it waits; returns the operations asked for and the outcome.
fn run(goal: Goal, replies: &[Reply]) -> (Vec<Op>, Option<Outcome>) {
    let mut now = Instant::now();
    let (mut p, first) = Procedure::start(goal, now, TIMEOUT);
    let mut ops = vec![first];
    let mut replies = replies.iter().cloned();
    let mut next = p.on_reply(now, replies.next().expect("a reply"));
    loop {
        match next {
            Next::Done(o) => return (ops, Some(o)),
            Next::Op(op) => {
                ops.push(op);
                match replies.next() {
                    Some(r) => next = p.on_reply(now, r),
                    None => return (ops, None),
                }
            }
            Next::Wait => {
                now = p.deadline();
                next = p.on_tick(now);
            }
        }
    }
}

#[test]
fn off_is_confirmed_by_a_reading_after_the_acknowledged_command() {
    let (ops, out) = run(
        Goal::Off,
        &[
            Reply::Done,
            Reply::Power { on: true },
            Reply::Power { on: false },
        ],
    );
    assert_eq!(ops, vec![Op::PowerOff, Op::Status, Op::Status]);
    assert_eq!(out, Some(Outcome::OffConfirmed));
}

#[test]
fn one_off_reading_is_not_a_fence() {
    // Regression (pair-safety issue, route 4): a single "off" status was taken as a confirmed
    // fence. A refused command followed by one off reading must not confirm.
    let (ops, out) = run(Goal::Off, &[err(), Reply::Power { on: false }]);
    assert_eq!(out, None, "confirmed on one reading: {ops:?}");
    assert_eq!(
        ops.last(),
        Some(&Op::PowerOff),
        "the command is tried again"
    );
}

#[test]
fn a_refused_command_confirms_with_two_readings_a_second_apart() {
    let mut replies = vec![err(), Reply::Power { on: false }, err()];
    // Readings every POLL until OFF_CONFIRM_GAP has passed.
    let polls = (OFF_CONFIRM_GAP.as_millis() / POLL.as_millis()) as usize + 2;
    replies.extend(std::iter::repeat_n(Reply::Power { on: false }, polls));
    let (_, out) = run(Goal::Off, &replies);
    assert_eq!(out, Some(Outcome::OffConfirmed));
}

#[test]
fn an_already_off_node_is_sent_the_command_anyway() {
    let (ops, out) = run(Goal::Off, &[Reply::Done, Reply::Power { on: false }]);
    assert_eq!(ops[0], Op::PowerOff);
    assert_eq!(out, Some(Outcome::OffConfirmed));
}

#[test]
fn an_unreachable_bmc_fails_by_the_deadline() {
    let replies = vec![err(); 1000];
    let (_, out) = run(Goal::Off, &replies);
    match out {
        Some(Outcome::Failed(d)) => assert!(d.contains("timeout"), "{d}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn status_is_one_reading() {
    assert_eq!(
        run(Goal::Status, &[Reply::Power { on: false }]),
        (vec![Op::Status], Some(Outcome::Power { on: false }))
    );
    assert!(matches!(
        run(Goal::Status, &[err()]).1,
        Some(Outcome::Failed(_))
    ));
}

#[test]
fn on_waits_for_the_reading() {
    let (ops, out) = run(
        Goal::On,
        &[
            Reply::Done,
            Reply::Power { on: false },
            Reply::Power { on: true },
        ],
    );
    assert_eq!(ops, vec![Op::PowerOn, Op::Status, Op::Status]);
    assert_eq!(out, Some(Outcome::Power { on: true }));
}

#[test]
fn confirm_off_reads_twice_a_second_apart_and_never_commands() {
    let (ops, out) = run(
        Goal::ConfirmOff,
        &[Reply::Power { on: false }, Reply::Power { on: false }],
    );
    assert_eq!(ops, vec![Op::Status, Op::Status]);
    assert_eq!(out, Some(Outcome::OffConfirmed));
    let (ops, out) = run(
        Goal::ConfirmOff,
        &[Reply::Power { on: false }, Reply::Power { on: true }],
    );
    assert!(!ops.contains(&Op::PowerOff));
    assert_eq!(
        out,
        Some(Outcome::Power { on: true }),
        "powered on meanwhile"
    );
}
