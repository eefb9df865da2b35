//! End-to-end, on this host (no VM): the parts of the hardware-watchdog integration that need no
//! watchdog device. The device itself (arming, keep-alive, reset, magic close) is proven in a
//! qemu guest with a real i6300esb: `vm_watchdog.rs`.
//!
//! * `[watchdog] realtime = true`: the running daemon is SCHED_FIFO with its memory locked, and
//!   the Bitbucket it supervises is SCHED_OTHER with nothing locked;
//! * a configured watchdog that cannot be armed stops bbwd from starting (before it starts
//!   Bitbucket), naming the key, the device and the operation.

use std::time::Duration;

use bbwd_tests::*;

const WAIT: Duration = Duration::from_secs(20);

/// `/proc/PID/stat` field 41 (`policy`): 0 SCHED_OTHER, 1 SCHED_FIFO.
fn sched_policy(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    // The command name (field 2) may contain spaces: count from the closing parenthesis.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    rest.split(' ')
        .nth(41 - 3)
        .expect("policy field")
        .parse()
        .expect("policy")
}

/// `VmLck` of `/proc/PID/status`, KiB.
fn locked_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmLck:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmLck")
}

#[test]
#[ignore = "needs root: mlockall, SCHED_FIFO"]
fn realtime_hardens_bbwd_but_not_bitbucket() {
    bbwd_testkit::require_root("mlockall, SCHED_FIFO");
    let sc = Scenario::new("wd-realtime");
    let text = format!(
        "{}\n[watchdog]\ndevice = \"none\"\nrealtime = true\n",
        sc.config_text()
    );
    sc.write_config_text(&text);
    let mut d = Daemon::start(&sc);
    let st = d.wait_state(WAIT, "running");
    assert_eq!(st["watchdog"]["realtime"], true, "{}", sc.diagnostics());
    assert_eq!(st["watchdog"]["armed"], false);
    let bbwd = d.pid();
    let bitbucket = st["bitbucket"]["pid"].as_u64().expect("bitbucket pid") as u32;
    assert_eq!(sched_policy(bbwd), 1, "bbwd runs SCHED_FIFO");
    assert!(locked_kib(bbwd) > 0, "bbwd's memory is locked");
    assert_eq!(
        sched_policy(bitbucket),
        0,
        "Bitbucket must not inherit SCHED_FIFO"
    );
    assert_eq!(
        locked_kib(bitbucket),
        0,
        "Bitbucket must not inherit locked memory"
    );
    // The notify command (another child, through a different spawn path) too: it ran for the
    // events so far; its policy is checked by the platform's unit tests, here only that it ran.
    assert!(!sc.notify_lines().is_empty(), "notify.command ran");
    let status = d.stop();
    assert!(status.success(), "{status:?}\n{}", sc.diagnostics());
    sc.assert_never_two_sims();
}

#[test]
fn realtime_off_by_default() {
    let sc = Scenario::new("wd-realtime-off");
    let mut d = Daemon::start(&sc);
    let st = d.wait_state(WAIT, "running");
    assert_eq!(st["watchdog"]["realtime"], false);
    assert_eq!(sched_policy(d.pid()), 0);
    assert_eq!(st["watchdog"]["timeout_ms"], serde_json::Value::Null);
    assert_eq!(
        st["watchdog"]["last_reset_by_watchdog"],
        serde_json::Value::Null
    );
    d.stop();
}

/// A device that is not there, a regular file, and a character device that is not a watchdog:
/// bbwd exits 2 (a config that does not fit this node) before it starts Bitbucket (an unarmed
/// watchdog the operator asked for is not silently ignored), naming the key, the device and what
/// failed; the file is left untouched. The first two are found by the host checks that
/// check-config runs too; /dev/null only when the device is opened.
#[test]
fn a_watchdog_that_cannot_be_armed_stops_the_start() {
    for (name, what) in [
        ("missing", "does not exist"),
        ("plain-file", "not a character device"),
        ("dev-null", "WDIOC_GETSUPPORT"),
    ] {
        let sc = Scenario::new(&format!("wd-unarmable-{name}"));
        let path = match name {
            "plain-file" => {
                let p = sc.dir.join("plain-file");
                std::fs::write(&p, b"data").unwrap();
                p
            }
            "dev-null" => "/dev/null".into(),
            _ => sc.dir.join("no-such-watchdog"),
        };
        let text = format!(
            "{}\n[watchdog]\ndevice = {}\ntimeout = \"10s\"\n",
            sc.config_text(),
            toml_str(&path.display().to_string())
        );
        sc.write_config_text(&text);
        let out = sc.bbwd(&["run"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains("watchdog.device"), "{name}: {stderr}");
        assert!(
            stderr.contains(&path.display().to_string()),
            "{name}: {stderr}"
        );
        assert!(stderr.contains(what), "{name}: expected {what:?}: {stderr}");
        assert!(
            sc.sim_starts().is_empty(),
            "{name}: Bitbucket must not be started without the watchdog"
        );
        if name == "plain-file" {
            assert_eq!(std::fs::read(&path).unwrap(), b"data");
        }
    }
}
