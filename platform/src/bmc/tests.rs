//! The worker's policy against a scripted fake protocol: no network, no BMC.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;
use crate::ipmi::{Power, Target};

/// What the fake's next `open` or `run` does.
#[derive(Debug, Clone)]
enum Step {
    Ok,
    Fail(Failure),
    Panic(&'static str),
    /// Sleeps this long, then succeeds.
    Sleep(Duration),
}

/// Records every call and plays a script of outcomes; an empty script is success.
#[derive(Clone, Default)]
struct Fake {
    script: Arc<Mutex<VecDeque<Step>>>,
    calls: Arc<Mutex<Vec<&'static str>>>,
}

impl Fake {
    fn with(steps: &[Step]) -> Fake {
        let f = Fake::default();
        f.script.lock().unwrap().extend(steps.iter().cloned());
        f
    }

    fn play(&self, call: &'static str) -> Result<(), Failure> {
        self.calls.lock().unwrap().push(call);
        let step = self.script.lock().unwrap().pop_front();
        match step.unwrap_or(Step::Ok) {
            Step::Ok => Ok(()),
            Step::Fail(f) => Err(f),
            Step::Panic(why) => panic!("{why}"),
            Step::Sleep(d) => {
                std::thread::sleep(d);
                Ok(())
            }
        }
    }

    fn calls(&self) -> Vec<&'static str> {
        self.calls.lock().unwrap().clone()
    }
}

impl Protocol for Fake {
    type Session = ();

    const PROFILE: Profile = Profile {
        thread_name: "bbwd-fake-bmc",
        panicked: "the fake",
        ..<Target as Protocol>::PROFILE
    };

    fn open(&self, _reply_timeout: Duration, _deadline: Instant) -> Result<(), Failure> {
        self.play("open")
    }

    fn run(&self, _: &mut (), _op: Op, _: Duration, _: Instant) -> Result<Reply, Failure> {
        self.play("run").map(|()| Reply::Power(Power::On))
    }

    fn close(&self, _: &mut (), _reply_timeout: Duration) {
        self.calls.lock().unwrap().push("close");
    }

    fn op_name(op: Op) -> &'static str {
        op.name()
    }
}

fn cli() -> Settings {
    Settings {
        reply_timeout: Duration::from_millis(200),
        keepalive: None,
        keepalive_op: Op::PowerStatus,
    }
}

fn start(fake: &Fake) -> BmcClient<Fake> {
    BmcClient::spawn(fake.clone(), "BMC fake".into(), cli()).unwrap()
}

#[test]
fn a_panic_in_a_conversation_is_a_failed_operation() {
    let profile = <Target as Protocol>::PROFILE;
    let r: Result<(), Failure> = guarded(&profile, || panic!("truncated RAKP 4"));
    match r {
        Err(Failure::Protocol(why)) => {
            assert!(why.contains("truncated RAKP 4"), "{why}");
            assert!(why.starts_with("the IPMI library failed"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    let r: Result<u8, Failure> = guarded(&profile, || Ok(7));
    assert_eq!(r, Ok(7));
}

#[test]
fn a_panicking_session_is_dropped_and_the_worker_lives_on() {
    let fake = Fake::with(&[Step::Ok, Step::Panic("bad reply")]);
    let mut c = start(&fake);
    let e = c.call(Op::PowerStatus, Duration::from_secs(5)).unwrap_err();
    assert!(
        matches!(&e.failure, Failure::Protocol(why) if why.contains("bad reply")),
        "{e}"
    );
    assert_eq!(e.to_string().split(": ").next(), Some("BMC fake"));
    // The same worker answers the next operation, on a new session.
    assert_eq!(
        c.call(Op::PowerStatus, Duration::from_secs(5)),
        Ok(Reply::Power(Power::On))
    );
    assert_eq!(fake.calls(), ["open", "run", "open", "run"]);
    assert_eq!(c.health().sessions_opened, 2);
    c.close(Duration::from_secs(5));
    assert_eq!(fake.calls().last(), Some(&"close"));
}

#[test]
fn a_failure_on_a_kept_session_is_retried_once_on_a_fresh_one() {
    let fake = Fake::default();
    let mut c = start(&fake);
    assert!(c.call(Op::PowerStatus, Duration::from_secs(5)).is_ok());
    fake.script
        .lock()
        .unwrap()
        .push_back(Step::Fail(Failure::Timeout));
    assert!(c.call(Op::PowerStatus, Duration::from_secs(5)).is_ok());
    assert_eq!(fake.calls(), ["open", "run", "run", "open", "run"]);
    // A final failure is not retried.
    fake.script
        .lock()
        .unwrap()
        .push_back(Step::Fail(Failure::BadCredentials));
    let e = c.call(Op::PowerStatus, Duration::from_secs(5)).unwrap_err();
    assert_eq!(e.failure, Failure::BadCredentials);
    assert_eq!(fake.calls().len(), 6);
}

#[test]
fn a_slow_operation_times_out_at_its_deadline_and_its_late_result_is_discarded() {
    let fake = Fake::with(&[Step::Ok, Step::Sleep(Duration::from_millis(300))]);
    let mut c = start(&fake);
    let now = Instant::now();
    let first = c
        .submit(Op::PowerStatus, now, Duration::from_millis(50))
        .unwrap();
    assert_eq!(
        c.submit(Op::PowerStatus, now, Duration::from_millis(50)),
        Err(SubmitError::Busy)
    );
    let done = loop {
        if let Some(d) = c.try_result(Instant::now()) {
            break d;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(done.id, first);
    assert_eq!(done.result.unwrap_err().failure, Failure::Timeout);
    assert!(Instant::now() < now + Duration::from_millis(300));
    // The next operation gets its own answer, not the first one's late result.
    let second = c
        .submit(Op::GetWatchdog, Instant::now(), Duration::from_secs(5))
        .unwrap();
    let done = loop {
        if let Some(d) = c.try_result(Instant::now()) {
            break d;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!((done.id, done.op), (second, Op::GetWatchdog));
    assert!(done.result.is_ok());
}
