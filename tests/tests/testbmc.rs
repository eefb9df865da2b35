//! RMCP+ cipher suites 3 and 17, and the client's refusals, against the test BMC
//! (`bbwd_tests::testbmc`).
//!
//! * The responder itself is validated first against an independent client: `ipmitool -I
//!   lanplus -C 17` and `-C 3` log in, read `chassis power status` and do `chassis power off`
//!   through it; a wrong password is refused.
//! * bbwd's client (`bbwd_platform::ipmi`): suite 17 and 3 log in and fence off (confirmed by a
//!   status read); "auto" takes 17 when the BMC lists it and 3 when it lists only 3; a suite
//!   the BMC does not offer and a wrong password are refused; the session is closed.
//! * Hostile modes: a BMC offering only IPMI 1.5 is refused and never receives anything
//!   carrying the password, nor an Open Session or RAKP; an Open Session answer with other
//!   algorithms (none/none) aborts before RAKP 1; a wrong RAKP 2 code aborts before RAKP 3; a
//!   wrong RAKP 4 ICV aborts; forged replies with a bad integrity trailer are dropped, and so
//!   are authenticated replies with an old sequence number.
//! * `bbwd fence status|off` end to end with `cipher_suite = 17` and `"auto"`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use bbwd_platform::ipmi::{
    Bmc, Failure, IpmiClient, Op, Password, Power, PowerAction, Reply, Settings, Target,
    CIPHER_SUITE_AUTO,
};
use bbwd_tests::testbmc::{self, Mode, Options, TestBmc};
use bbwd_tests::{bbwd_bin, free_port, run_bounded, toml_str, TestDir};

/// ipmitool is there, or the test fails saying so (the test is `#[ignore = "needs ..."]`;
/// `scripts/test.sh` runs it with `--include-ignored`).
fn ipmitool_available() -> bool {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("ipmitool").is_file()))
        .unwrap_or(false);
    assert!(found, "ipmitool is missing (scripts/setup.sh installs it)");
    found
}

fn ipmitool(bmc: &TestBmc, suite: &str, password: &str, args: &[&str]) -> Output {
    let port = bmc.port.to_string();
    let mut cmd = Command::new("ipmitool");
    cmd.args(["-I", "lanplus", "-H", "127.0.0.1", "-p", &port])
        .args(["-U", testbmc::USER, "-P", password, "-C", suite])
        // One attempt, short timeout: a refusal must not take ipmitool's default 4 x 2 s.
        .args(["-R", "1", "-N", "2"])
        .args(args);
    run_bounded(cmd, Duration::from_secs(30))
}

fn target(bmc: &TestBmc, suite: u8, password: &str) -> Target {
    Target::Lan(Bmc {
        host: "127.0.0.1".into(),
        port: bmc.port,
        username: testbmc::USER.into(),
        password: Password::new(password.as_bytes()),
        cipher_suite: suite,
    })
}

fn client(bmc: &TestBmc, suite: u8, password: &str) -> IpmiClient {
    let settings = Settings {
        reply_timeout: Duration::from_millis(500),
        keepalive: None,
        keepalive_op: Op::PowerStatus,
    };
    IpmiClient::start(target(bmc, suite, password), settings).expect("client starts")
}

fn power(c: &mut IpmiClient) -> Power {
    match c.call(Op::PowerStatus, Duration::from_secs(5)) {
        Ok(Reply::Power(p)) => p,
        other => panic!("power status: {other:?}"),
    }
}

/// The failure of the first operation of a fresh client.
fn refusal(bmc: &TestBmc, suite: u8, password: &str) -> Failure {
    let mut c = client(bmc, suite, password);
    c.call(Op::PowerStatus, Duration::from_secs(5))
        .expect_err("the session must be refused")
        .failure
}

#[test]
#[ignore = "needs ipmitool (scripts/setup.sh)"]
fn ipmitool_logs_in_through_the_test_bmc_with_suites_17_and_3() {
    if !ipmitool_available() {
        return;
    }
    let bmc = TestBmc::start(Options::default());
    for suite in ["17", "3"] {
        let out = ipmitool(
            &bmc,
            suite,
            testbmc::PASSWORD,
            &["chassis", "power", "status"],
        );
        assert!(
            out.status.success(),
            "-C {suite}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "Chassis Power is on"
        );
    }
    let out = ipmitool(&bmc, "17", testbmc::PASSWORD, &["chassis", "power", "off"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!bmc.power_on(), "ipmitool's off reached the test BMC");
    let out = ipmitool(
        &bmc,
        "3",
        testbmc::PASSWORD,
        &["chassis", "power", "status"],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Chassis Power is off"
    );
    let seen = bmc.seen();
    assert_eq!(seen.suites, [17, 3, 17, 3], "{seen:?}");
    assert_eq!(seen.chassis_controls, [0]);
    assert_eq!(seen.closed, 4, "ipmitool closes each session: {seen:?}");
    assert_eq!(seen.bad_trailers, 0, "{seen:?}");

    // A wrong password: ipmitool refuses the BMC's RAKP 2 (it cannot verify), no session.
    let out = ipmitool(&bmc, "17", "wrong", &["chassis", "power", "status"]);
    assert!(!out.status.success());
    assert_eq!(bmc.seen().sessions, 4);
}

#[test]
fn suite_17_and_3_fence_off_confirmed_and_the_session_is_closed() {
    for suite in [17u8, 3] {
        let bmc = TestBmc::start(Options::default());
        let mut c = client(&bmc, suite, testbmc::PASSWORD);
        assert_eq!(power(&mut c), Power::On);
        c.call(Op::Power(PowerAction::Off), Duration::from_secs(5))
            .expect("power off");
        assert!(!bmc.power_on());
        assert_eq!(power(&mut c), Power::Off);
        assert_eq!(c.health().sessions_opened, 1);
        c.close(Duration::from_secs(2));
        let seen = bmc.seen();
        assert_eq!(seen.suites, [suite], "{seen:?}");
        assert_eq!(seen.chassis_controls, [0]);
        assert_eq!(seen.closed, 1, "Close Session on close: {seen:?}");
        assert!(!seen.password_bytes, "the password is never sent");
    }
}

#[test]
fn auto_prefers_17_and_falls_back_to_3_only_when_17_is_not_listed() {
    let both = TestBmc::start(Options::default());
    let mut c = client(&both, CIPHER_SUITE_AUTO, testbmc::PASSWORD);
    assert_eq!(power(&mut c), Power::On);
    assert_eq!(both.seen().suites, [17]);

    let only3 = TestBmc::start(Options {
        suites: vec![3],
        ..Options::default()
    });
    let mut c = client(&only3, CIPHER_SUITE_AUTO, testbmc::PASSWORD);
    assert_eq!(power(&mut c), Power::On);
    let seen = only3.seen();
    assert_eq!(seen.suites, [3], "{seen:?}");
    assert_eq!(seen.open_sessions, 1, "no attempt with 17 first: {seen:?}");

    // A BMC that cannot list its suites: 17 is asked; 3 only after Open Session refuses 17.
    let unlisted = TestBmc::start(Options {
        suites: vec![3],
        lists_suites: false,
        ..Options::default()
    });
    let mut c = client(&unlisted, CIPHER_SUITE_AUTO, testbmc::PASSWORD);
    assert_eq!(power(&mut c), Power::On);
    let seen = unlisted.seen();
    assert_eq!(
        (seen.open_sessions, &seen.suites[..]),
        (2, &[3u8][..]),
        "{seen:?}"
    );
    let unlisted17 = TestBmc::start(Options {
        lists_suites: false,
        ..Options::default()
    });
    let mut c = client(&unlisted17, CIPHER_SUITE_AUTO, testbmc::PASSWORD);
    assert_eq!(power(&mut c), Power::On);
    assert_eq!(unlisted17.seen().suites, [17]);

    // Suite 3 asked of a BMC that offers only 17: refused, naming the suite.
    let only17 = TestBmc::start(Options {
        suites: vec![17],
        ..Options::default()
    });
    match refusal(&only17, 3, testbmc::PASSWORD) {
        Failure::Unsupported(why) => assert!(why.contains("cipher suite 3"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_wrong_password_is_refused_with_both_suites() {
    let bmc = TestBmc::start(Options::default());
    for suite in [17u8, 3] {
        assert_eq!(
            refusal(&bmc, suite, "not-the-password"),
            Failure::BadCredentials
        );
    }
    let seen = bmc.seen();
    assert_eq!(seen.sessions, 0, "{seen:?}");
    assert!(seen.chassis_controls.is_empty());
}

#[test]
fn a_bmc_offering_only_ipmi_1_5_is_refused_and_never_sees_the_password() {
    let bmc = TestBmc::start(Options {
        mode: Mode::Ipmi15Only,
        ..Options::default()
    });
    for suite in [3u8, 17, CIPHER_SUITE_AUTO] {
        match refusal(&bmc, suite, testbmc::PASSWORD) {
            Failure::Unsupported(why) => {
                assert!(why.contains("does not offer RMCP+ (IPMI 2.0)"), "{why}")
            }
            other => panic!("suite {suite}: {other:?}"),
        }
    }
    let seen = bmc.seen();
    assert!(seen.datagrams >= 3, "the client did ask: {seen:?}");
    assert!(!seen.password_bytes, "{seen:?}");
    assert_eq!(seen.v15_authenticated, 0, "no IPMI 1.5 log-in: {seen:?}");
    assert_eq!((seen.open_sessions, seen.rakps), (0, 0), "{seen:?}");
}

#[test]
fn an_open_session_answer_with_other_algorithms_aborts_before_rakp() {
    let bmc = TestBmc::start(Options {
        mode: Mode::DowngradeAlgorithms,
        ..Options::default()
    });
    for suite in [17u8, 3] {
        match refusal(&bmc, suite, testbmc::PASSWORD) {
            Failure::Insecure(why) => assert!(
                why.contains("with none where cipher suite") && why.contains("asks for HMAC-SHA"),
                "{why}"
            ),
            other => panic!("suite {suite}: {other:?}"),
        }
    }
    let seen = bmc.seen();
    assert_eq!(
        seen.rakps, 0,
        "no RAKP 1 after a downgraded answer: {seen:?}"
    );
}

#[test]
fn wrong_rakp_codes_abort_the_session() {
    let bmc = TestBmc::start(Options {
        mode: Mode::BadRakp2,
        ..Options::default()
    });
    for suite in [17u8, 3] {
        assert_eq!(
            refusal(&bmc, suite, testbmc::PASSWORD),
            Failure::BadCredentials
        );
    }
    // RAKP 1 went out, RAKP 3 never did.
    assert_eq!(bmc.seen().rakps, 2, "{:?}", bmc.seen());

    let bmc = TestBmc::start(Options {
        mode: Mode::BadRakp4,
        ..Options::default()
    });
    for suite in [17u8, 3] {
        match refusal(&bmc, suite, testbmc::PASSWORD) {
            Failure::Insecure(why) => assert!(why.contains("RAKP 4"), "{why}"),
            other => panic!("suite {suite}: {other:?}"),
        }
    }
    assert!(bmc.seen().chassis_controls.is_empty());
}

#[test]
fn a_reply_with_a_bad_integrity_trailer_is_dropped_not_taken() {
    let bmc = TestBmc::start(Options {
        mode: Mode::ForgedReplies,
        ..Options::default()
    });
    for suite in [17u8, 3] {
        let mut c = client(&bmc, suite, testbmc::PASSWORD);
        // Each status read meets a forged "off" first, then the genuine "on".
        for _ in 0..3 {
            assert_eq!(power(&mut c), Power::On, "suite {suite}");
        }
        assert_eq!(c.health().sessions_opened, 1);
    }
    assert!(bmc.seen().forged >= 6, "{:?}", bmc.seen());
}

#[test]
fn an_authenticated_reply_with_an_old_sequence_number_is_dropped_not_taken() {
    let bmc = TestBmc::start(Options {
        mode: Mode::StaleSequence,
        ..Options::default()
    });
    for suite in [17u8, 3] {
        bmc.set_power(true);
        let mut c = client(&bmc, suite, testbmc::PASSWORD);
        assert_eq!(power(&mut c), Power::On, "suite {suite}");
        c.call(Op::Power(PowerAction::Off), Duration::from_secs(5))
            .expect("power off");
        // Each read meets an authentic-looking "on" with sequence number 1 first.
        for _ in 0..3 {
            assert_eq!(power(&mut c), Power::Off, "suite {suite}");
        }
        assert_eq!(c.health().sessions_opened, 1);
    }
    assert!(bmc.seen().forged >= 6, "{:?}", bmc.seen());
}

// ---- `bbwd fence` end to end ----

fn password_file(dir: &TestDir, password: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("bmc.pass");
    std::fs::write(&p, format!("{password}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// A pair-mode config whose `[fencing]` names the test BMC with `cipher_suite` (TOML value).
fn config(dir: &TestDir, port: u16, pw: &Path, suite: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let key = dir.join("cluster.key");
    std::fs::write(&key, [7u8; 32]).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let d = dir.path().display().to_string();
    let text = format!(
        "[node]\nname = \"n1\"\nstate_dir = {}\ncontrol_socket = {}\n\n\
         [cluster]\npeer = \"n2\"\nlisten = [\"127.0.0.1:{}\"]\npeer_addresses = [\"127.0.0.1:{}\"]\nkey_file = {}\n\n\
         [vip]\naddress = \"10.0.0.50/24\"\ninterface = \"lo\"\n\n\
         [fencing]\nmethod = \"ipmi\"\nhost = \"127.0.0.1\"\nport = {port}\nusername = {}\npassword_file = {}\n\
         cipher_suite = {suite}\ntimeout = \"10s\"\n",
        toml_str(&format!("{d}/state")),
        toml_str(&format!("{d}/control.sock")),
        free_port(),
        free_port(),
        toml_str(&key.display().to_string()),
        toml_str(testbmc::USER),
        toml_str(&pw.display().to_string()),
    );
    let path = dir.join("bbwd.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn fence(config: &Path, action: &str) -> Output {
    let mut cmd = Command::new(bbwd_bin());
    cmd.args(["fence", action, "-c"]).arg(config);
    run_bounded(cmd, Duration::from_secs(60))
}

fn says(out: &Output, want: &str) {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{want}\n"));
}

#[test]
fn bbwd_fence_status_and_off_with_suite_17_and_auto() {
    for (suite, name) in [("17", "suite17"), ("\"auto\"", "auto")] {
        let dir = TestDir::new(&format!("testbmc_fence_{name}"));
        let bmc = TestBmc::start(Options::default());
        let cfg = config(
            &dir,
            bmc.port,
            &password_file(&dir, testbmc::PASSWORD),
            suite,
        );
        says(&fence(&cfg, "status"), "on");
        says(&fence(&cfg, "off"), "off");
        assert!(!bmc.power_on());
        says(&fence(&cfg, "status"), "off");
        let seen = bmc.seen();
        assert!(seen.suites.iter().all(|s| *s == 17), "{seen:?}");
        assert_eq!(seen.chassis_controls, [0]);
    }
    // A wrong password: exit 1, "bad credentials", nothing touched.
    let dir = TestDir::new("testbmc_fence_badpw");
    let bmc = TestBmc::start(Options::default());
    let cfg = config(&dir, bmc.port, &password_file(&dir, "not-it"), "17");
    let out = fence(&cfg, "off");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("bad credentials"), "{err}");
    assert!(bmc.power_on());
}
