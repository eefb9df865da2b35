//! The IPMI client (`bbwd_platform::ipmi`) against a real BMC (ipmi_sim over RMCP+): what it
//! does about the gaps ipmi-rs had (it carried RMCP+ before), observed from outside.
//!
//! * one session for many operations, so no session slot leaks: after hundreds of operations
//!   the BMC holds one session of ours and ipmitool can still log in;
//! * a BMC that stops answering mid-session: the operation fails with `timeout` by its
//!   deadline, the client reconnects once the BMC answers again, and the late reply to the
//!   lost request is never taken as an answer (a stale "on" after the node went off).

use std::time::{Duration, Instant};

use bbwd_platform::ipmi::{
    Bmc, Failure, IpmiClient, Op, Password, Power, PowerAction, Reply, Settings, Target,
    CIPHER_SUITE_AUTO,
};
use bbwd_tests::ipmisim::{self, IpmiSim, SimOptions};
use bbwd_tests::TestDir;

fn client(sim: &IpmiSim, keepalive: Option<Duration>) -> IpmiClient {
    client_with_suite(sim, keepalive, 3)
}

fn client_with_suite(sim: &IpmiSim, keepalive: Option<Duration>, suite: u8) -> IpmiClient {
    let target = Target::Lan(Bmc {
        host: "127.0.0.1".into(),
        port: sim.port,
        username: ipmisim::USER.into(),
        password: Password::new(ipmisim::PASSWORD.as_bytes()),
        cipher_suite: suite,
    });
    let settings = Settings {
        reply_timeout: Duration::from_millis(500),
        keepalive,
        keepalive_op: Op::PowerStatus,
    };
    IpmiClient::start(target, settings).expect("client starts")
}

fn power(c: &mut IpmiClient) -> Power {
    match c.call(Op::PowerStatus, Duration::from_secs(5)) {
        Ok(Reply::Power(p)) => p,
        other => panic!("power status: {other:?}"),
    }
}

#[test]
#[ignore = "needs ipmi_sim, ipmitool, gcc and libopenipmi-dev (scripts/setup.sh)"]
fn many_operations_use_one_session_and_leak_no_slot() {
    if !ipmisim::tools_available() {
        return;
    }
    let dir = TestDir::new("ipmi_client_leak");
    let sim = IpmiSim::start(
        dir.path(),
        "bmc",
        SimOptions {
            wdfix: false,
            stubborn: false,
        },
    );
    let baseline = sim.active_sessions().expect("ipmitool logs in");
    let mut c = client(&sim, Some(Duration::from_secs(5)));
    for i in 0..300 {
        let op = if i % 3 == 0 {
            Op::GetWatchdog
        } else {
            Op::PowerStatus
        };
        c.call(op, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("operation {i}: {e}\n{}", sim.diagnostics()));
    }
    let h = c.health();
    assert_eq!(h.sessions_opened, 1, "{h:?}");
    assert!(h.up && h.failed == 0, "{h:?}");
    // ipmitool still logs in, and sees exactly one more session than before: ours.
    assert_eq!(sim.active_sessions(), Some(baseline + 1));
    assert_eq!(power(&mut c), Power::On);
}

/// ipmi_sim 2.0.33 offers suites 0-3 and 6, not 17: "auto" reads its list (Get Channel Cipher
/// Suites) and takes 3; asking for 17 is refused with a clear error.
#[test]
#[ignore = "needs ipmi_sim, ipmitool, gcc and libopenipmi-dev (scripts/setup.sh)"]
fn auto_takes_suite_3_on_ipmi_sim_and_17_is_refused_clearly() {
    if !ipmisim::tools_available() {
        return;
    }
    let dir = TestDir::new("ipmi_client_auto");
    let sim = IpmiSim::start(
        dir.path(),
        "bmc",
        SimOptions {
            wdfix: false,
            stubborn: false,
        },
    );
    let mut c = client_with_suite(&sim, None, CIPHER_SUITE_AUTO);
    assert_eq!(power(&mut c), Power::On, "{}", sim.diagnostics());
    let mut c = client_with_suite(&sim, None, 17);
    let e = c
        .call(Op::PowerStatus, Duration::from_secs(5))
        .expect_err("ipmi_sim has no suite 17");
    assert!(
        matches!(&e.failure, Failure::Unsupported(why) if why.contains("refused cipher suite 17")),
        "{e}"
    );
}

#[test]
#[ignore = "needs ipmi_sim, ipmitool, gcc and libopenipmi-dev (scripts/setup.sh)"]
fn a_bmc_that_stops_answering_mid_session_times_out_then_the_client_reconnects() {
    if !ipmisim::tools_available() {
        return;
    }
    let dir = TestDir::new("ipmi_client_freeze");
    let sim = IpmiSim::start(
        dir.path(),
        "bmc",
        SimOptions {
            wdfix: false,
            stubborn: false,
        },
    );
    let mut c = client(&sim, None);
    assert_eq!(power(&mut c), Power::On);
    assert_eq!(c.health().sessions_opened, 1);

    // The BMC stops answering: the status request is lost for now; the operation fails with
    // `timeout` by its deadline (its late reply, "on", comes after the thaw).
    sim.freeze();
    let t0 = Instant::now();
    let e = c
        .call(Op::PowerStatus, Duration::from_millis(1500))
        .expect_err("a frozen BMC cannot answer");
    let took = t0.elapsed();
    sim.thaw();
    assert_eq!(e.failure, Failure::Timeout, "{e}");
    assert!(
        took < Duration::from_secs(4),
        "deadline 1.5 s, took {took:?}"
    );

    // The node goes off behind the client's back.
    let out = sim.ipmitool(&["chassis", "power", "off"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sim.wait_power(false, Duration::from_secs(10));

    // A naive session would now read the late "on". The client reconnects and sees "off".
    assert_eq!(power(&mut c), Power::Off);
    let h = c.health();
    assert!(
        h.sessions_opened >= 2,
        "a fresh session after the timeout: {h:?}"
    );
    assert!(h.up, "{h:?}");

    // And it can act again: power on through the new session.
    c.call(Op::Power(PowerAction::On), Duration::from_secs(5))
        .expect("power on");
    sim.wait_power(true, Duration::from_secs(10));
    assert_eq!(power(&mut c), Power::On);
}

#[test]
#[ignore = "needs ipmi_sim, ipmitool, gcc and libopenipmi-dev (scripts/setup.sh)"]
fn the_keepalive_notices_a_dead_bmc_and_reconnects_with_backoff() {
    if !ipmisim::tools_available() {
        return;
    }
    let dir = TestDir::new("ipmi_client_keepalive");
    let sim = IpmiSim::start(
        dir.path(),
        "bmc",
        SimOptions {
            wdfix: false,
            stubborn: false,
        },
    );
    let c = client(&sim, Some(Duration::from_millis(300)));
    let wait = |what: &str, cond: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !cond() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {:?}",
                c.health()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // The keep-alive opens the session on its own.
    wait("the session to come up", &|| c.health().up);
    sim.freeze();
    wait("the keep-alive to notice", &|| !c.health().up);
    let down = c.health();
    assert!(down.last_error.is_some(), "{down:?}");
    sim.thaw();
    wait("the session to come back", &|| c.health().up);
    let h = c.health();
    // Backoff: a handful of attempts in these seconds, not a loop.
    assert!(h.sessions_opened >= 2 && h.sessions_opened <= 10, "{h:?}");
}

/// Runs `ip ARGS` (in the calling thread's network namespace); panics on failure.
fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A send error on an open session (here EACCES from a `prohibit` routing rule, as a lost route
/// or a firewall gives) is a failed operation naming it (ipmi-rs, which carried RMCP+ before,
/// panicked here: the regression this test was written for), and the next operation works on a
/// fresh session once the network is back. (A panic inside BMC code would still be a failed
/// operation: the worker's `catch_unwind`, unit-tested in `platform/src/ipmi/mod.rs`.)
///
/// Root only (a network namespace of this test's own thread, with its own loopback and
/// routing rules; nothing outside it is touched). Under CI root is required.
#[test]
#[ignore = "needs root, ipmi_sim, ipmitool, gcc and libopenipmi-dev: a network namespace of the test's own"]
fn a_send_error_mid_session_is_a_failed_operation_not_a_crash() {
    if !ipmisim::tools_available() {
        return;
    }
    bbwd_testkit::require_root("a network namespace of the test's own");
    let dir = TestDir::new("ipmi_client_panic");
    let path = dir.path().to_path_buf();
    // Everything runs on one thread that moved into a new network namespace: ipmi_sim, the
    // node and the client's worker thread inherit it; the namespace goes with them.
    let t = std::thread::spawn(move || {
        // SAFETY: unshare(2) with CLONE_NEWNET only moves this thread into a new namespace.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "unshare(CLONE_NEWNET): {}",
            std::io::Error::last_os_error()
        );
        ip(&["link", "set", "lo", "up"]);
        // Rules before the local table, so that a `prohibit` rule can hit loopback traffic.
        ip(&["rule", "add", "prio", "100", "table", "local"]);
        ip(&["rule", "del", "prio", "0", "table", "local"]);

        let sim = IpmiSim::start(
            &path,
            "bmc",
            SimOptions {
                wdfix: false,
                stubborn: false,
            },
        );
        let mut c = client(&sim, None);
        assert_eq!(power(&mut c), Power::On);

        let port = sim.port.to_string();
        let rule = [
            "to",
            "127.0.0.1",
            "ipproto",
            "udp",
            "dport",
            port.as_str(),
            "prohibit",
        ];
        ip(&[&["rule", "add", "prio", "1"][..], &rule[..]].concat());
        let e = c
            .call(Op::PowerStatus, Duration::from_secs(3))
            .expect_err("sends are refused");
        assert!(
            matches!(&e.failure, Failure::Unreachable(why) if why.contains("send")),
            "the send error comes back as a failed operation: {e}"
        );
        ip(&["rule", "del", "prio", "1"]);

        // The network is back: a fresh session, the right answer.
        assert_eq!(power(&mut c), Power::On);
        let h = c.health();
        assert!(h.sessions_opened >= 2 && h.up, "{h:?}");
        drop(c);
        drop(sim);
    });
    t.join().expect("the test thread itself must not panic");
}
