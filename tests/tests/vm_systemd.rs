//! Real systemd as PID 1 (a Debian guest under qemu, `tests/src/vm.rs`) runs
//! `systemd/bbwd.service` as shipped, with the host-built `bbwd` at /usr/sbin/bbwd supervising
//! the Bitbucket simulator:
//!
//! * `systemd-analyze verify` of the unit inside the guest is clean;
//! * `systemctl start` returns (Type=notify) only after bbwd's READY=1, and bbwd's STATUS= text
//!   reaches systemd;
//! * a hung bbwd (SIGSTOP) is killed and restarted by systemd's watchdog (WatchdogSec, lowered
//!   by a drop-in to keep the test short), and the simulator survives it and is re-adopted
//!   (same pid: KillMode=process);
//! * `systemctl stop bbwd` stops the simulator gracefully (TERM, then EXIT code=0).
//!
//! The guest script is `tests/vm/systemd-guest.sh`; it writes `key=value` results and the
//! journal to the share, and this test asserts on them. Measured: SIGSTOP to the new bbwd
//! active (`vm-measure:` line; `bench vm`, `tests/src/bench/vm.rs`, collects it).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use bbwd_tests::vm::{self, Share, Vm, VmOptions};
use bbwd_tests::*;

/// WatchdogSec of the test's drop-in (the shipped unit says 30s).
const WATCHDOG_SEC: u64 = 4;
/// Boot to the test's unit: 10-15 s under TCG, with room for a loaded machine.
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
/// The scenario: about WATCHDOG_SEC + RestartSec + a few seconds, with room to spare.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(180);
/// From the guest script's last line to qemu's exit (systemd's poweroff).
const POWEROFF_TIMEOUT: Duration = Duration::from_secs(60);

const GUEST_CONFIG: &str = r#"# /etc/bbwd/bbwd.toml of the systemd guest (tests/tests/vm_systemd.rs)
[node]
name = "vm"

[bitbucket]
status_url = "http://127.0.0.1:7990/status"
command = ["/usr/local/bin/bbsim", "--dir", "/var/lib/bbsim", "--port", "7990", "--starting-for", "1s"]
monitor_interval = "1s"
monitor_timeout = "2s"
startup_timeout = "60s"
stop_timeout = "10s"
kill_timeout = "2s"

[watchdog]
device = "none"
"#;

fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

/// Index of the first line of `lines` containing `needle`.
fn first_line(lines: &[&str], needle: &str) -> Option<usize> {
    lines.iter().position(|l| l.contains(needle))
}

#[test]
#[ignore = "needs root, qemu and mmdebstrap (scripts/setup.sh); boots a guest"]
fn shipped_unit_under_real_systemd_ready_watchdog_restart_readoption_graceful_stop() {
    if !vm::vm_prerequisites("vm_systemd") {
        return;
    }
    let kernel = vm::kernel();
    let rootfs = vm::systemd_rootfs();

    let share = Share::new("vm-systemd");
    share.install(&bbwd_bin(), "/usr/sbin/bbwd", 0o755);
    share.install(&bbsim_bin(), "/usr/local/bin/bbsim", 0o755);
    share.install(
        &repo_file("systemd/bbwd.service"),
        "/etc/systemd/system/bbwd.service",
        0o644,
    );
    share.write("sysroot/etc/bbwd/bbwd.toml", GUEST_CONFIG.as_bytes());
    share.write(
        "dropin.conf",
        format!("# test drop-in: a short watchdog keeps the test fast\n[Service]\nWatchdogSec={WATCHDOG_SEC}s\n")
            .as_bytes(),
    );
    share.copy(&vm::vm_source_dir().join("systemd-guest.sh"), "run.sh");

    let mut vm = Vm::start(&kernel, &share, &VmOptions::systemd(rootfs));
    let booted = vm.wait_line("BBWD-VM: boot_uptime=", BOOT_TIMEOUT);
    assert!(
        booted.is_some(),
        "the guest did not boot to bbwd-vmtest.service within {BOOT_TIMEOUT:?}\n{}",
        vm.diagnostics(80)
    );
    let done = vm.wait_line("BBWD-VM: done=1", SCENARIO_TIMEOUT);
    // bbwd-vmtest.service powers the guest off after the script.
    let exit = done.as_ref().and_then(|_| vm.wait_exit(POWEROFF_TIMEOUT));
    let results = share.out_text("result");
    let journal = share.out_text("bbwd.journal");
    let context = || {
        format!(
            "result:\n{results}\n--- bbwd.journal ---\n{journal}\n{}",
            vm.diagnostics(80)
        )
    };
    assert!(
        done.is_some(),
        "the guest script did not finish within {SCENARIO_TIMEOUT:?}\n{}",
        context()
    );
    let r: HashMap<String, String> = vm::key_values(&results).into_iter().collect();
    let get = |k: &str| -> &str {
        r.get(k)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no {k} in the guest's results\n{}", context()))
    };

    // systemd-analyze verify inside the guest, on the unit as shipped (before the drop-in).
    let verify = share.out_text("verify.txt");
    assert_eq!(
        get("verify_rc"),
        "0",
        "systemd-analyze verify failed:\n{verify}"
    );
    let about_unit: Vec<&str> = verify.lines().filter(|l| l.contains("bbwd")).collect();
    assert!(
        about_unit.is_empty(),
        "systemd-analyze verify complains about the unit:\n{verify}"
    );

    // Type=notify: start returned once READY=1 came, and only then was the unit active.
    assert_eq!(get("start_rc"), "0", "systemctl start bbwd\n{}", context());
    assert_eq!(get("active_after_start"), "active", "{}", context());
    let lines: Vec<&str> = journal.lines().collect();
    let ready = first_line(&lines, "READY=1");
    let started = first_line(&lines, "Started bbwd");
    assert!(
        ready.is_some() && started.is_some() && ready < started,
        "the journal must show bbwd's READY=1 notification before systemd's \"Started\" \
         (ready at line {ready:?}, started at line {started:?})\n{}",
        context()
    );

    // bbwd's STATUS= text reached systemd and names the simulator it supervises.
    let sim_pid = get("sim_pid_1");
    assert!(sim_pid.parse::<u32>().is_ok(), "{}", context());
    assert_eq!(
        get("status_text"),
        format!("running: Bitbucket pid {sim_pid}"),
        "StatusText (bbwd's STATUS=)\n{}",
        context()
    );

    // SIGSTOP: systemd's watchdog kills bbwd and restarts it; Bitbucket is re-adopted.
    let pid1 = get("main_pid_1");
    let pid2 = get("main_pid_2");
    assert!(
        pid1 != "0" && pid2 != "0" && pid1 != pid2,
        "MainPID {pid1} -> {pid2}\n{}",
        context()
    );
    assert_eq!(get("active_after_restart"), "active", "{}", context());
    assert!(
        get("restarts_after").parse::<u32>().unwrap_or(0)
            > get("restarts_before").parse::<u32>().unwrap_or(u32::MAX),
        "NRestarts did not grow\n{}",
        context()
    );
    assert!(
        journal.contains("Watchdog timeout"),
        "journal: systemd's watchdog timeout\n{}",
        context()
    );
    assert!(
        journal.contains("Failed with result 'watchdog'"),
        "journal: the unit failed for the watchdog\n{}",
        context()
    );
    assert_eq!(get("sim_alive_after_restart"), "yes", "{}", context());
    assert_eq!(
        get("status_text_2"),
        format!("running: Bitbucket pid {sim_pid}"),
        "the new bbwd supervises the same simulator (re-adopted, not restarted)\n{}",
        context()
    );
    let restart_s: f64 = get("restart_s").parse().expect("restart_s");
    assert!(
        restart_s >= WATCHDOG_SEC as f64 / 2.0,
        "restarted {restart_s} s after SIGSTOP: sooner than the watchdog could have fired\n{}",
        context()
    );
    println!(
        "vm-measure: systemd_sigstop_to_restart_ms={:.0}",
        restart_s * 1000.0
    );

    // systemctl stop: bbwd stops the simulator gracefully, then exits cleanly.
    assert_eq!(get("stop_rc"), "0", "{}", context());
    assert_eq!(get("active_after_stop"), "inactive", "{}", context());
    assert_eq!(get("result_after_stop"), "success", "{}", context());
    assert_eq!(get("sim_alive_after_stop"), "no", "{}", context());
    let sim_events = share.out_text("sim-events.log");
    let events: Vec<(String, String, Option<&str>)> = sim_events
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let pid = w
                .iter()
                .find_map(|x| x.strip_prefix("pid="))
                .unwrap_or("")
                .to_string();
            let code = w.iter().find_map(|x| x.strip_prefix("code="));
            (w.get(1).copied().unwrap_or("").to_string(), pid, code)
        })
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        kinds,
        ["START", "TERM", "EXIT"],
        "one simulator for the whole test, stopped gracefully\nevents.log:\n{sim_events}\n{}",
        context()
    );
    assert!(
        events.iter().all(|e| e.1 == sim_pid),
        "every events.log line is the first simulator's (pid {sim_pid}):\n{sim_events}"
    );
    assert_eq!(events[2].2, Some("0"), "EXIT code=0:\n{sim_events}");

    assert!(exit.is_some(), "the guest did not power off\n{}", context());
}
