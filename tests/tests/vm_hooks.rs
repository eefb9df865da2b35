//! The seeds' DRBD design under the shipped unit: `[hooks]` that mount and unmount Bitbucket's
//! home work under `systemd/bbwd.service` as shipped (no drop-in), with real systemd as PID 1
//! (the qemu guest of `tests/src/vm.rs`).
//!
//! A DRBD promote and mount (`drbdadm primary r0`, `mount /dev/drbd0 ...`) needs
//! `CAP_SYS_ADMIN` in bbwd's capability bounding set and the host's mount namespace; a tmpfs
//! mount needs exactly the same (mount(2) checks `CAP_SYS_ADMIN`; a private namespace would hide
//! it), so the guest's `before_start` mounts a tmpfs on `/var/atlassian/application-data/
//! bitbucket` and `after_stop` unmounts it. The guest cannot run DRBD itself (no second node,
//! no module in the image); what the unit decides (the bounding set, no mount namespace) is the
//! same for both.
//!
//! Hooks run in pair mode only, so the guest's bbwd is a pair node whose peer is off: the
//! peer's BMC is a real `ipmi_sim` on this host (node powered off), which the guest reaches as
//! 10.0.2.2 over qemu's user-mode network. The node boots alone, reads the BMC (off), confirms
//! it a second later, runs `before_start` (the mount), starts the Bitbucket simulator with its
//! home on that mount, adds the VIP on the guest's `eth0`; `systemctl stop bbwd` drops the VIP,
//! stops the simulator, runs `after_stop` (the unmount). The guest script
//! (`tests/vm/hooks-guest.sh`) looks with `findmnt` from outside the unit while bbwd serves and
//! after the stop. Against the unit before it granted `CAP_SYS_ADMIN` this test failed: mount
//! said "permission denied", the takeover failed, and the release's umount said "must be
//! superuser to unmount" (the journal must show none of that now). Last, the guest checks the
//! unit's advice for sites without mount hooks: a `CapabilityBoundingSet=~CAP_SYS_ADMIN`
//! drop-in removes it and keeps the rest.
//!
//! Measured: `systemctl start` to serving and the stop (`vm-measure:` line).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bbwd_tests::ipmisim::{self, IpmiSim, SimOptions};
use bbwd_tests::vm::{self, Share, Vm, VmOptions};
use bbwd_tests::*;

/// Boot to the test's unit: 10-15 s under TCG, with room for a loaded machine.
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
/// The scenario: serving within a few seconds (BMC read, the confirming read a second later,
/// hooks, the simulator's 1 s start, the VIP probe), the guest script's own 45 s bound on
/// waiting for it, the stop; with room for a loaded machine.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(240);
/// From the guest script's last line to qemu's exit (systemd's poweroff).
const POWEROFF_TIMEOUT: Duration = Duration::from_secs(60);

/// The guest's address on qemu's user-mode network (slirp's 10.0.2.0/24; the host's loopback
/// is 10.0.2.2 there).
const GUEST_NET: &str = "10.0.2.15/24";
/// Bitbucket's home, as in the seeds: the DRBD volume's mount point.
const HOME_DIR: &str = "/var/atlassian/application-data/bitbucket";

fn guest_config(bmc_port: u16) -> String {
    format!(
        r#"# /etc/bbwd/bbwd.toml of the hooks guest (tests/tests/vm_hooks.rs): node bb1 of a pair
# whose peer bb2 is powered off.
[node]
name = "bb1"

[bitbucket]
status_url = "http://127.0.0.1:7990/status"
# Bitbucket's home is the mounted filesystem.
command = ["/usr/local/bin/bbsim", "--dir", "{HOME_DIR}", "--port", "7990", "--starting-for", "1s"]
monitor_interval = "1s"
monitor_timeout = "2s"
startup_timeout = "60s"
stop_timeout = "10s"
kill_timeout = "2s"

[watchdog]
device = "none"

[cluster]
peer = "bb2"
listen = ["10.0.2.15:5405"]
# Nobody there: the peer is off (slirp answers no ARP for it, nothing leaves the guest).
peer_addresses = ["10.0.2.16:5405"]
key_file = "/etc/bbwd/cluster.key"
heartbeat_interval = "200ms"
peer_timeout = "1s"
# Short, to keep the test short; at least peer_timeout (timing rule R3).
boot_wait = "1s"
preferred_active = true

[vip]
address = "10.0.2.50/24"
interface = "eth0"

[fencing]                                  # the peer's BMC: ipmi_sim on the host
host = "10.0.2.2"
port = {bmc_port}
username = "{user}"
password_file = "/etc/bbwd/peer-bmc.pass"
cipher_suite = 3
action = "off"
timeout = "10s"

# What the seeds' DRBD hooks do (drbdadm primary + mount; umount + drbdadm secondary), with a
# tmpfs standing in for /dev/drbd0: the mount needs the same capability and namespace;
# after_stop as the README writes it: unmounting what is not mounted (after a before_start that
# failed) counts as done, or the release fails and the node self-fences.
[hooks]
before_start = [["/bin/mount", "-t", "tmpfs", "-o", "size=64m,mode=0755", "bbwd-home", "{HOME_DIR}"]]
after_stop = [["/bin/sh", "-c", "! mountpoint -q \"$0\" || umount \"$0\"", "{HOME_DIR}"]]
"#,
        user = ipmisim::USER,
    )
}

fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

#[test]
#[ignore = "needs root, qemu, mmdebstrap and ipmi_sim (scripts/setup.sh); boots a guest"]
fn mount_hooks_work_under_the_shipped_unit_in_pair_mode() {
    if !vm::vm_prerequisites("vm_hooks") || !ipmisim::tools_available() {
        return;
    }
    let t0 = Instant::now();
    let kernel = vm::kernel();
    let rootfs = vm::systemd_rootfs();

    let share = Share::new("vm-hooks");
    // The peer's BMC, its node (the peer) powered off.
    let bmc = IpmiSim::start_off(
        share.test_dir().path(),
        "bb2",
        SimOptions {
            wdfix: false,
            stubborn: false,
        },
    );
    share.install(&bbwd_bin(), "/usr/sbin/bbwd", 0o755);
    share.install(&bbsim_bin(), "/usr/local/bin/bbsim", 0o755);
    share.install(
        &repo_file("systemd/bbwd.service"),
        "/etc/systemd/system/bbwd.service",
        0o644,
    );
    share.write(
        "sysroot/etc/bbwd/bbwd.toml",
        guest_config(bmc.port).as_bytes(),
    );
    let secret = |rel: &str, text: &str| {
        let path = share.test_dir().join(rel);
        std::fs::write(&path, text).expect("write secret");
        path
    };
    share.install(
        &secret("cluster.key", "vm-hooks-cluster-key-0123456789abcdef\n"),
        "/etc/bbwd/cluster.key",
        0o600,
    );
    share.install(
        &secret("peer-bmc.pass", &format!("{}\n", ipmisim::PASSWORD)),
        "/etc/bbwd/peer-bmc.pass",
        0o600,
    );
    share.copy(&vm::vm_source_dir().join("hooks-guest.sh"), "run.sh");

    let opts = VmOptions {
        user_net: Some(GUEST_NET.to_string()),
        ..VmOptions::systemd(rootfs)
    };
    let mut vm = Vm::start(&kernel, &share, &opts);
    let booted = vm.wait_line("BBWD-VM: boot_uptime=", BOOT_TIMEOUT);
    assert!(
        booted.is_some(),
        "the guest did not boot to bbwd-vmtest.service within {BOOT_TIMEOUT:?}\n{}",
        vm.diagnostics(80)
    );
    let done = vm.wait_line("BBWD-VM: done=1", SCENARIO_TIMEOUT);
    let exit = done.as_ref().and_then(|_| vm.wait_exit(POWEROFF_TIMEOUT));
    let results = share.out_text("result");
    let journal = share.out_text("bbwd.journal");
    let status_text = share.out_text("status-serving.json");
    let context = || {
        format!(
            "result:\n{results}\n--- status while serving ---\n{status_text}\n\
             --- bbwd.journal ---\n{journal}\n{}\n{}",
            vm.diagnostics(60),
            bmc.diagnostics()
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

    // The unit as shipped lets mount(8) work. Without CAP_SYS_ADMIN in the bounding set,
    // mount says "permission denied" and umount "must be superuser", and the takeover fails.
    for refused in [
        "must be superuser",
        "permission denied",
        "takeover_failed",
        "release_error",
    ] {
        assert!(
            !journal.contains(refused),
            "{refused:?} in the journal: a hook failed under the shipped unit (no CAP_SYS_ADMIN?)\n{}",
            context()
        );
    }
    assert_eq!(get("eth0"), "up", "{}", context());
    assert_eq!(get("mount_before"), "none", "{}", context());
    assert_eq!(get("start_rc"), "0", "systemctl start bbwd\n{}", context());

    // Serving: active, Bitbucket running, the VIP held, after a confirmed fence of the peer.
    assert_eq!(
        get("serving"),
        "yes",
        "bbwd never served (active, running, VIP held)\n{}",
        context()
    );
    let status: Value = serde_json::from_str(&status_text)
        .unwrap_or_else(|e| panic!("status while serving is not JSON ({e})\n{}", context()));
    assert_eq!(status["role"], "active", "{}", context());
    assert_eq!(status["vip"]["held"], true, "{}", context());
    let steps: Vec<&str> = status["fencing"]["last_takeover"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["step"].as_str()).collect())
        .unwrap_or_default();
    let at = |step: &str| {
        steps
            .iter()
            .position(|s| *s == step)
            .unwrap_or_else(|| panic!("no {step:?} in last_takeover {steps:?}\n{}", context()))
    };
    assert!(
        at("fence confirmed") < at("bitbucket healthy")
            && at("bitbucket healthy") < at("vip added"),
        "takeover order: {steps:?}\n{}",
        context()
    );
    // The fence was a reading of an already-off peer: its node was never powered on.
    assert!(!bmc.node_on(), "{}", context());
    assert_eq!(bmc.node_starts(), 0, "{}", context());

    // The before_start mount is in the host's mount namespace (findmnt from outside the unit),
    // and Bitbucket's home is on it.
    assert_eq!(
        get("mount_serving"),
        "bbwd-home tmpfs",
        "findmnt {HOME_DIR} while bbwd serves\n{}",
        context()
    );
    assert_eq!(get("vip_serving"), "yes", "{}", context());
    assert_eq!(
        get("sim_starts_on_mount"),
        "1",
        "one simulator start, logged on the mounted home\n{}",
        context()
    );

    // The stop: VIP gone, Bitbucket gone, then the after_stop unmount succeeded.
    assert_eq!(get("stop_rc"), "0", "{}", context());
    assert_eq!(get("active_after_stop"), "inactive", "{}", context());
    assert_eq!(get("result_after_stop"), "success", "{}", context());
    assert_eq!(get("sim_alive_after_stop"), "no", "{}", context());
    assert_eq!(get("vip_after_stop"), "no", "{}", context());
    assert_eq!(
        get("mount_after_stop"),
        "none",
        "the after_stop unmount did not happen\n{}",
        context()
    );
    // What the unit's comment tells a site without mount hooks: a drop-in with
    // `CapabilityBoundingSet=~CAP_SYS_ADMIN` removes it and keeps the rest.
    let dropped = get("caps_with_dropin");
    assert!(
        !dropped.contains("cap_sys_admin") && dropped.contains("cap_net_admin"),
        "bounding set with the ~CAP_SYS_ADMIN drop-in: {dropped}\n{}",
        context()
    );
    assert!(
        get("caps_shipped").contains("cap_sys_admin"),
        "{}",
        context()
    );
    assert!(exit.is_some(), "the guest did not power off\n{}", context());

    println!("guest results:\n{results}");
    let serving_s: f64 = get("serving_s").parse().expect("serving_s");
    println!(
        "vm-measure: hooks_start_to_serving_ms={:.0} hooks_stop_ms={:.0} hooks_test_total_ms={}",
        serving_s * 1000.0,
        get("stop_s").parse::<f64>().unwrap_or(0.0) * 1000.0,
        t0.elapsed().as_millis()
    );
}
