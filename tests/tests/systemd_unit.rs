//! `systemd/bbwd.service` passes `systemd-analyze verify` cleanly and keeps the settings bbwd's
//! behaviour depends on (notify protocol, re-adoption, stop timeout, fd store).

use std::path::PathBuf;
use std::process::Command;

use bbwd_tests::*;

fn unit_text() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../systemd/bbwd.service");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// `Key=value` lines of the unit (comments and sections skipped).
fn settings(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn setting(text: &str, key: &str) -> String {
    let found: Vec<String> = settings(text)
        .into_iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(found.len(), 1, "{key} set exactly once: {found:?}");
    found[0].clone()
}

fn seconds(value: &str) -> u64 {
    value
        .strip_suffix('s')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("expected a plain seconds value like 150s, got {value:?}"))
}

#[test]
fn unit_passes_systemd_analyze_verify_without_warnings() {
    let dir = TestDir::new("systemd_verify");
    let bbwd = bbwd_bin();
    let text = unit_text();
    let exec_start = format!("ExecStart={} run", bbwd.display());
    let exec_reload = format!("ExecReload={} reexec", bbwd.display());
    let patched: String = text
        .lines()
        .map(|l| {
            if l.starts_with("ExecStart=") {
                exec_start.clone()
            } else if l.starts_with("ExecReload=") {
                exec_reload.clone()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    assert!(patched.contains(&exec_start), "unit has an ExecStart= line");
    assert!(
        patched.contains(&exec_reload),
        "unit has ExecReload= (bbwd reexec: upgrades without a failover)"
    );
    let unit = dir.join("bbwd.service");
    std::fs::write(&unit, patched).unwrap();

    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap_or_else(|e| panic!("run systemd-analyze (install systemd): {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let about_unit: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("bbwd.service") || l.contains(&*dir.path().to_string_lossy()))
        .collect();
    assert!(
        out.status.success() && about_unit.is_empty(),
        "systemd-analyze verify: {}\n{stderr}",
        out.status
    );
}

#[test]
fn unit_keeps_the_settings_bbwd_relies_on() {
    let text = unit_text();
    assert_eq!(setting(&text, "Type"), "notify");
    assert_eq!(setting(&text, "ExecStart"), "/usr/sbin/bbwd run");
    assert_eq!(setting(&text, "NotifyAccess"), "main");
    assert_eq!(setting(&text, "Restart"), "always");
    // Re-adoption: a restart of bbwd must not take Bitbucket down with it.
    assert_eq!(setting(&text, "KillMode"), "process");
    // A restarted bbwd gets Bitbucket's output pipe back from the fd store.
    assert!(
        setting(&text, "FileDescriptorStoreMax")
            .parse::<u32>()
            .unwrap()
            >= 1
    );
    // The graceful stop must fit: default stop_timeout 120 s + kill_timeout 10 s.
    assert!(seconds(&setting(&text, "TimeoutStopSec")) > 120 + 10);
    // Timing rule R5 (bbwd_core::timing): in pair mode a hung loop must reset the node through
    // the hardware watchdog before systemd restarts bbwd: WatchdogSec > 2 × the default
    // [watchdog] timeout of 60 s.
    assert!(seconds(&setting(&text, "WatchdogSec")) > 2 * 60);
    // The JVM's /tmp must survive a bbwd restart.
    assert!(!settings(&text)
        .iter()
        .any(|(k, v)| k == "PrivateTmp" && v == "yes"));
    assert_eq!(setting(&text, "StateDirectory"), "bbwd");
    assert_eq!(setting(&text, "RuntimeDirectory"), "bbwd");
    let caps = setting(&text, "CapabilityBoundingSet");
    for needed in ["CAP_SETUID", "CAP_SETGID", "CAP_KILL"] {
        assert!(
            caps.split_whitespace().any(|c| c == needed),
            "{needed} in {caps}"
        );
    }
    // [hooks] that promote and mount Bitbucket's home (the seeds' DRBD design) need
    // CAP_SYS_ADMIN and the host's mount namespace (tests/tests/vm_hooks.rs runs them under
    // real systemd); drbdadm talks generic netlink.
    assert!(
        caps.split_whitespace().any(|c| c == "CAP_SYS_ADMIN"),
        "CAP_SYS_ADMIN in {caps}"
    );
    for namespacing in [
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "PrivateMounts",
        "PrivateDevices",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectControlGroups",
        "ProtectProc",
        "ProcSubset",
        "ReadOnlyPaths",
        "ReadWritePaths",
        "InaccessiblePaths",
        "TemporaryFileSystem",
        "BindPaths",
        "BindReadOnlyPaths",
        "RootDirectory",
        "RootImage",
        "MountFlags",
    ] {
        assert!(
            !settings(&text).iter().any(|(k, _)| k == namespacing),
            "{namespacing}= would put bbwd (and its mount hooks) in a mount namespace of its own"
        );
    }
    let families = setting(&text, "RestrictAddressFamilies");
    assert!(
        families.split_whitespace().any(|f| f == "AF_NETLINK"),
        "AF_NETLINK (drbdadm, the VIP) in {families}"
    );
    assert_eq!(setting(&text, "WantedBy"), "multi-user.target");
}
