//! `bbwd fence status|off|on|cycle` through the real binary against a real BMC (ipmi_sim over
//! RMCP+, cipher suite 3), whose chassis power is a simulated node process.
//!
//! * off returns only once the node is really gone (the node process no longer exists when
//!   the command prints `off`); off when already off is success; on and cycle are confirmed;
//! * a wrong password fails with exit 1 and says "bad credentials" (suite 3: suite 0 would
//!   accept any password, and the config refuses it);
//! * an unreachable BMC (nothing answers, or the port is closed) fails with exit 1, saying
//!   "unreachable", within `[fencing] timeout`.

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use bbwd_tests::ipmisim::{self, IpmiSim, SimOptions};
use bbwd_tests::{bbwd_bin, run_bounded, toml_str, TestDir};

/// A pair-mode config whose `[fencing]` names `port` on 127.0.0.1.
fn config(dir: &TestDir, port: u16, password_file: &Path, timeout: &str) -> std::path::PathBuf {
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
         cipher_suite = 3\ntimeout = {}\n",
        toml_str(&format!("{d}/state")),
        toml_str(&format!("{d}/control.sock")),
        ipmisim::free_udp_port(),
        ipmisim::free_udp_port(),
        toml_str(&key.display().to_string()),
        toml_str(ipmisim::USER),
        toml_str(&password_file.display().to_string()),
        toml_str(timeout),
    );
    let path = dir.join("bbwd.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn fence(config: &Path, action: &str) -> (Output, Duration) {
    let mut cmd = Command::new(bbwd_bin());
    cmd.args(["fence", action, "-c"]).arg(config);
    let t0 = Instant::now();
    let out = run_bounded(cmd, Duration::from_secs(60));
    (out, t0.elapsed())
}

fn ok(out: &Output, want: &str, sim: &IpmiSim) {
    assert!(
        out.status.success(),
        "exit {:?}, stderr: {}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr),
        sim.diagnostics()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{want}\n"));
}

#[test]
#[ignore = "needs ipmi_sim, ipmitool, gcc and libopenipmi-dev (scripts/setup.sh)"]
fn fence_status_off_on_cycle_are_confirmed_by_the_bmc() {
    if !ipmisim::tools_available() {
        return;
    }
    let dir = TestDir::new("ipmi_fence_ops");
    let sim = IpmiSim::start(
        dir.path(),
        "peer",
        SimOptions {
            wdfix: false,
            stubborn: false,
        },
    );
    let pw = sim.password_file("peer.pass", ipmisim::PASSWORD);
    let cfg = config(&dir, sim.port, &pw, "10s");

    let (out, _) = fence(&cfg, "status");
    ok(&out, "on", &sim);

    // off: returns once the BMC confirms, which with ipmi_sim means the node process is gone.
    let node = sim.node_pid().expect("node on");
    let (out, took) = fence(&cfg, "off");
    ok(&out, "off", &sim);
    assert!(
        !sim.node_on(),
        "`fence off` returned while node {node} still runs"
    );
    eprintln!("fence off confirmed after {took:?}");

    // Already off: success, nothing else happens.
    let (out, _) = fence(&cfg, "off");
    ok(&out, "off", &sim);
    let (out, _) = fence(&cfg, "status");
    ok(&out, "off", &sim);

    // on: the BMC reports on once it has forked the node, a moment before the node script
    // has written its pid: wait for that.
    let (out, _) = fence(&cfg, "on");
    ok(&out, "on", &sim);
    sim.wait_power(true, Duration::from_secs(5));
    assert_eq!(sim.node_starts(), 2);

    // cycle: off (confirmed), then on: a new node process.
    let before = sim.node_pid().unwrap();
    let (out, _) = fence(&cfg, "cycle");
    ok(&out, "on", &sim);
    sim.wait_power(true, Duration::from_secs(5));
    let after = sim.node_pid().expect("node on after cycle");
    assert_ne!(before, after, "cycle must power the node off and on again");
    assert_eq!(sim.node_starts(), 3);
    let kinds: Vec<String> = sim.node_events().into_iter().map(|(_, k)| k).collect();
    assert_eq!(kinds, ["START", "TERM", "START", "TERM", "START"]);
}

#[test]
#[ignore = "needs ipmi_sim, ipmitool, gcc and libopenipmi-dev (scripts/setup.sh)"]
fn a_wrong_password_fails_with_exit_1_and_says_bad_credentials() {
    if !ipmisim::tools_available() {
        return;
    }
    let dir = TestDir::new("ipmi_fence_badpw");
    let sim = IpmiSim::start(
        dir.path(),
        "peer",
        SimOptions {
            wdfix: false,
            stubborn: false,
        },
    );
    let pw = sim.password_file("wrong.pass", "not-the-password");
    let cfg = config(&dir, sim.port, &pw, "5s");
    for action in ["status", "off"] {
        let (out, _) = fence(&cfg, action);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{action}: {err}");
        assert!(out.stdout.is_empty(), "{action}: nothing on stdout");
        assert!(
            err.contains(&format!("BMC 127.0.0.1:{}", sim.port)) && err.contains("bad credentials"),
            "{action}: {err}"
        );
    }
    assert!(sim.node_on(), "a refused fence must not touch the node");
}

#[test]
#[ignore = "needs ipmi_sim, ipmitool, gcc and libopenipmi-dev (scripts/setup.sh)"]
fn an_unreachable_bmc_fails_within_the_timeout() {
    if !ipmisim::tools_available() {
        return;
    }
    let dir = TestDir::new("ipmi_fence_unreach");
    let pw = dir.join("pw");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&pw, "secret\n").unwrap();
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // Nothing answers: a bound socket that never replies (a BMC that is down or filtered).
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let cfg = config(&dir, silent.local_addr().unwrap().port(), &pw, "2s");
    let (out, took) = fence(&cfg, "off");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("unreachable"), "{err}");
    // The 2 s timeout, plus process start and a generous margin for a loaded machine.
    assert!(took < Duration::from_secs(6), "took {took:?}: {err}");

    // A closed port: refused at once.
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = config(&dir, port, &pw, "2s");
    let (out, _) = fence(&cfg, "status");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("unreachable") && err.contains("refused"),
        "{err}"
    );
}

#[test]
#[ignore = "needs ipmi_sim, ipmitool, gcc and libopenipmi-dev (scripts/setup.sh)"]
fn off_is_never_claimed_before_the_bmc_confirms_it() {
    if !ipmisim::tools_available() {
        return;
    }
    let dir = TestDir::new("ipmi_fence_stubborn");
    // A node that ignores SIGTERM: ipmi_sim kills it 2 ticks later (kill_wait), so the BMC
    // reports "on" for 2-3 s after the off command.
    let sim = IpmiSim::start(
        dir.path(),
        "peer",
        SimOptions {
            wdfix: false,
            stubborn: true,
        },
    );
    let pw = sim.password_file("peer.pass", ipmisim::PASSWORD);
    let cfg = config(&dir, sim.port, &pw, "1s");
    let (out, took) = fence(&cfg, "off");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}\n{}", sim.diagnostics());
    assert!(out.stdout.is_empty(), "no power state is claimed");
    assert!(
        err.contains("power off: not confirmed within fencing.timeout (1000 ms)")
            && err.contains("still reports on"),
        "{err}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    // With time enough, the same command confirms the off once the node is really gone.
    let cfg = config(&dir, sim.port, &pw, "10s");
    let (out, _) = fence(&cfg, "off");
    ok(&out, "off", &sim);
    assert!(!sim.node_on());
}
