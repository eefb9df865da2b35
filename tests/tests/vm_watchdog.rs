//! A real hardware watchdog: a qemu guest (TCG, Debian's kernel, `tests/src/vm.rs`) with the
//! emulated Intel 6300ESB, running the host-built `bbwd run` with
//! `[watchdog] device = "/dev/watchdog"` and a 10 s timeout, supervising the Bitbucket
//! simulator. qemu reports the watchdog's expiry as the QMP event `WATCHDOG` (action `reset`),
//! which is what tells a watchdog reset from any other reboot of the guest.
//!
//! * healthy bbwd: no reset for more than 3x the timeout; then SIGSTOP bbwd (a hung agent): the
//!   guest is reset within the timeout plus a margin (`vm-measure:` line: SIGSTOP to the event,
//!   as the host saw both; `bench vm`, `tests/src/bench/vm.rs`, collects it);
//! * SIGTERM bbwd: it stops the simulator gracefully, disarms the device with the magic close,
//!   and no reset follows for 2x the timeout.
//!
//! The guest script is `tests/vm/watchdog-guest.sh`; it prints `BBWD-VM:` lines on the console
//! and writes bbwd's log, its status JSON and the simulator's events.log to the share.

use std::time::Duration;

use bbwd_tests::vm::{self, Line, Share, Vm, VmOptions};
use bbwd_tests::*;

/// `[watchdog] timeout` in the guest.
const WD_TIMEOUT: Duration = Duration::from_secs(10);
/// Healthy petting observed before the fault: more than 3x the timeout.
const HEALTHY: Duration = Duration::from_secs(32);
/// How long the guest stays up after a clean stop: 2x the timeout, and some.
const QUIET: Duration = Duration::from_secs(22);
/// Slack on top of the timeout for the reset after SIGSTOP: the host's view of the guest's
/// console and of qemu's timer on a shared 2-core machine under TCG. Measured figures are in
/// BENCHMARKS.md; this bound only has to catch "no reset" or "the driver's 30 s default".
const RESET_MARGIN: Duration = Duration::from_secs(8);
/// Boot, module load and bbwd arming the device (about 5 s; generous for a loaded machine).
const ARM_TIMEOUT: Duration = Duration::from_secs(120);
/// Slack for guest-side sleeps measured by the host.
const SLACK: Duration = Duration::from_secs(60);

/// A running guest and its share. Fields drop in order: qemu is killed before the share goes.
struct Guest {
    vm: Vm,
    share: Share,
}

/// A busybox guest with the i6300esb running `watchdog-guest.sh` in `scenario`.
fn start_guest(name: &str, scenario: &str, healthy: Duration, quiet: Duration) -> Guest {
    let kernel = vm::kernel();
    let share = Share::new(name);
    share.install_binary_with_libs(&bbwd_bin(), "/usr/local/bin/bbwd");
    share.install_binary_with_libs(&bbsim_bin(), "/usr/local/bin/bbsim");
    share.copy(&vm::vm_source_dir().join("watchdog-guest.sh"), "run.sh");
    let params = format!(
        "SCENARIO={scenario}\nWD_TIMEOUT_S={}\nHEALTHY_S={}\nQUIET_S={}\n",
        WD_TIMEOUT.as_secs(),
        healthy.as_secs(),
        quiet.as_secs()
    );
    share.write("params", params.as_bytes());
    let opts = VmOptions {
        i6300esb: true,
        ..VmOptions::busybox()
    };
    let vm = Vm::start(&kernel, &share, &opts);
    Guest { vm, share }
}

/// Diagnostics: console, QMP events, bbwd's log in the guest.
fn context(vm: &Vm, share: &Share) -> String {
    let log = share.out_text("bbwd.log");
    let tail: Vec<&str> = log.lines().rev().take(40).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    format!(
        "{}--- guest bbwd.log (last 40 lines) ---\n{}\n",
        vm.diagnostics(60),
        tail.join("\n")
    )
}

/// Waits for the console line containing `needle`; panics with the context if it does not come.
fn expect_line(vm: &mut Vm, share: &Share, needle: &str, timeout: Duration) -> Line {
    match vm.wait_line(needle, timeout) {
        Some(line) => line,
        None => panic!(
            "no console line {needle:?} within {timeout:?}\n{}",
            context(vm, share)
        ),
    }
}

/// Checks the status JSON bbwd reported once the simulator ran and the device was armed.
fn assert_armed_status(vm: &Vm, share: &Share) {
    let text = share.out_text("status-armed.json");
    let status: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("status-armed.json: {e}: {text:?}\n{}", context(vm, share)));
    assert_eq!(status["watchdog"]["device"], "/dev/watchdog", "{status:#}");
    assert_eq!(status["watchdog"]["armed"], true, "{status:#}");
    assert_eq!(status["state"], "running", "{status:#}");
}

/// The `key=value` word of a `BBWD-VM:` line.
fn word<'l>(line: &'l Line, key: &str) -> Option<&'l str> {
    line.text
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

#[test]
#[ignore = "needs root, qemu and mmdebstrap (scripts/setup.sh); boots a guest"]
fn i6300esb_healthy_bbwd_keeps_the_guest_up_and_a_hung_bbwd_gets_it_reset() {
    if !vm::vm_prerequisites("vm_watchdog") {
        return;
    }
    let mut guest = start_guest("vm-wd-stop", "stop", HEALTHY, Duration::ZERO);
    let (vm, share) = (&mut guest.vm, &guest.share);

    let armed = expect_line(vm, share, "BBWD-VM: armed", ARM_TIMEOUT);
    assert_armed_status(vm, share);
    // The kernel's view (CONFIG_WATCHDOG_SYSFS): the timer runs with bbwd's timeout.
    assert_eq!(word(&armed, "state"), Some("active"), "{}", armed.text);
    assert_eq!(
        word(&armed, "timeout"),
        Some(WD_TIMEOUT.as_secs().to_string().as_str()),
        "{}",
        armed.text
    );

    // (a) healthy: petted, no reset for more than 3x the timeout.
    let healthy = expect_line(vm, share, "BBWD-VM: healthy-done", HEALTHY + SLACK);
    let healthy_for = healthy.at - armed.at;
    assert!(
        healthy_for >= 3 * WD_TIMEOUT,
        "healthy phase lasted only {healthy_for:?}\n{}",
        context(vm, share)
    );
    assert!(
        vm.events_named("WATCHDOG").is_empty(),
        "the watchdog fired while bbwd was healthy\n{}",
        context(vm, share)
    );
    let status_text = share.out_text("status-healthy.json");
    let status: Value = serde_json::from_str(&status_text).unwrap_or(Value::Null);
    assert_eq!(status["watchdog"]["armed"], true, "{status_text}");
    assert_eq!(
        status["watchdog"]["timeout_ms"],
        WD_TIMEOUT.as_millis() as u64,
        "the effective timeout read back from the driver: {status_text}"
    );
    let pets = status["watchdog"]["pets"].as_u64().unwrap_or(0);
    assert!(
        pets >= 3,
        "{pets} keep-alives in more than 3x the timeout: {status_text}"
    );
    // Informative only: the pet path through the emulated device under TCG.
    println!(
        "vm-measure: i6300esb_pet_latency_us_max={} (over {pets} pets, TCG)",
        status["watchdog"]["pet_latency_us_max"]
    );

    // (b) hung agent: the device is no longer petted and resets the guest.
    let stopped = expect_line(vm, share, "BBWD-VM: stopped", SLACK);
    let event = vm.wait_event("WATCHDOG", WD_TIMEOUT + RESET_MARGIN);
    let Some(event) = event else {
        panic!(
            "no QMP WATCHDOG event within {:?} of SIGSTOP\n{}",
            WD_TIMEOUT + RESET_MARGIN,
            context(vm, share)
        );
    };
    assert_eq!(event.data["action"], "reset", "{}", event.data);
    let latency = event.at.saturating_duration_since(stopped.at);
    // The reset comes one timeout after the last pet, and bbwd pets every timeout/3 (the
    // policy's pace): between 2/3 of the timeout and the timeout after SIGSTOP. Much sooner
    // means the configured timeout was not applied (the upper bound above catches the
    // driver's 30 s default).
    assert!(
        latency >= WD_TIMEOUT / 3,
        "reset {latency:?} after SIGSTOP: sooner than a {WD_TIMEOUT:?} timeout allows\n{}",
        context(vm, share)
    );
    println!(
        "vm-measure: i6300esb_sigstop_to_watchdog_event_ms={}",
        latency.as_millis()
    );
    // -no-reboot: the reset ends qemu; the guest never got to say it was not reset.
    assert!(
        vm.wait_exit(SLACK).is_some(),
        "qemu still running after the watchdog reset\n{}",
        context(vm, share)
    );
    assert!(
        vm.lines()
            .iter()
            .all(|l| !l.text.contains("BBWD-VM: no-reset")),
        "{}",
        context(vm, share)
    );
}

#[test]
#[ignore = "needs root, qemu and mmdebstrap (scripts/setup.sh); boots a guest"]
fn i6300esb_sigterm_bbwd_magic_close_then_no_reset() {
    if !vm::vm_prerequisites("vm_watchdog") {
        return;
    }
    let healthy = Duration::from_secs(3);
    let mut guest = start_guest("vm-wd-term", "term", healthy, QUIET);
    let (vm, share) = (&mut guest.vm, &guest.share);

    expect_line(vm, share, "BBWD-VM: armed", ARM_TIMEOUT);
    assert_armed_status(vm, share);

    // (c) SIGTERM: bbwd stops Bitbucket, then disarms the device (magic close) and exits 0.
    let exited = expect_line(vm, share, "BBWD-VM: exited", healthy + SLACK);
    assert_eq!(word(&exited, "rc"), Some("0"), "{}", exited.text);
    assert_eq!(
        word(&exited, "state-after"),
        Some("inactive"),
        "the kernel still counts down after bbwd's clean stop: {}\n{}",
        exited.text,
        context(vm, share)
    );
    let quiet = expect_line(vm, share, "BBWD-VM: quiet-done", QUIET + SLACK);
    let quiet_for = quiet.at - exited.at;
    assert!(
        quiet_for >= 2 * WD_TIMEOUT,
        "quiet phase lasted only {quiet_for:?}"
    );
    // The guest powers itself off after the quiet phase; still no watchdog.
    assert!(
        vm.wait_exit(SLACK).is_some(),
        "the guest did not power off\n{}",
        context(vm, share)
    );
    assert!(
        vm.events_named("WATCHDOG").is_empty(),
        "the watchdog fired after bbwd's clean stop\n{}",
        context(vm, share)
    );
    assert!(
        vm.events_named("SHUTDOWN")
            .iter()
            .any(|e| e.data["reason"] == "guest-shutdown"),
        "the guest powered off by itself\n{}",
        context(vm, share)
    );
    assert!(
        vm.lines()
            .iter()
            .all(|l| !l.text.contains("watchdog did not stop")),
        "the kernel saw a close without the magic character\n{}",
        context(vm, share)
    );

    // Bitbucket was stopped gracefully before bbwd let go of the watchdog.
    let events = events_log(&share.out("sim"));
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["START", "TERM", "EXIT"], "{events:?}");
    assert_eq!(events[2].code, Some(0), "{events:?}");
}
