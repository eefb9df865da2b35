//! The timing rules of `bbwd_core::timing`: R1-R3 at load, R5 at start, the warning W1.

use super::*;

/// Timing rule R1 (`bbwd_core::timing`): peer_timeout >= 3 × heartbeat_interval.
#[test]
fn peer_timeout_must_cover_three_heartbeats() {
    let dir = TempDir::new("timeouts");
    let extra = format!("{LINKS}heartbeat_interval = \"1s\"\npeer_timeout = \"2999ms\"\n");
    one_problem(
        &pair(&dir, &extra, ""),
        "cluster.peer_timeout",
        Some(9),
        "cluster.peer_timeout = 2999ms must be at least 3 × cluster.heartbeat_interval = 3 × 1s = 3s (R1): one or two lost",
    );
    // Only heartbeat_interval given: the default peer_timeout (1s) is too short for it;
    // reported at the line of the key that is written. The derived fence_delay is not
    // blamed as well (R2 follows from R1 for it).
    let extra = format!("{LINKS}heartbeat_interval = \"2s\"\n");
    one_problem(
        &pair(&dir, &extra, ""),
        "cluster.peer_timeout",
        Some(8),
        "cluster.peer_timeout = 1s must be at least 3 × cluster.heartbeat_interval = 3 × 2s",
    );
    let c = ok(&pair(
        &dir,
        &format!("{LINKS}heartbeat_interval = \"100ms\"\npeer_timeout = \"300ms\"\n"),
        "",
    ));
    assert_eq!(c.cluster.unwrap().peer_timeout, Duration::from_millis(300));
}

#[test]
fn boot_wait_and_fence_delay_defaults() {
    let dir = TempDir::new("timing-defaults");
    let c = ok(&pair(&dir, LINKS, ""));
    let cl = c.cluster.as_ref().unwrap();
    assert_eq!(cl.boot_wait, Duration::from_secs(30));
    // fencing.timeout (10s) + peer_timeout (1s).
    assert_eq!(cl.fence_delay, Duration::from_secs(11));
    // Derived from the values given, in whatever order the sections come.
    let text = format!(
        "[node]\nname = \"bb1\"\n[fencing]\nhost = \"10.0.1.2\"\nusername = \"fence\"\n\
         password_file = \"{}\"\ntimeout = \"20s\"\n[cluster]\npeer = \"bb2\"\nkey_file = \"{}\"\n\
         {LINKS}peer_timeout = \"3s\"\nboot_wait = \"1m\"\n\
         [vip]\naddress = \"10.0.0.50/24\"\ninterface = \"eth0\"\n",
        dir.secret("p", 0o600),
        dir.secret("k", 0o600)
    );
    let cl = ok(&text).cluster.unwrap();
    assert_eq!(
        (cl.fence_delay, cl.boot_wait),
        (Duration::from_secs(23), Duration::from_secs(60))
    );
    let extra = format!("{LINKS}fence_delay = \"15s\"\nboot_wait = \"5s\"\n");
    let cl = ok(&pair(&dir, &extra, "")).cluster.unwrap();
    assert_eq!(
        (cl.fence_delay, cl.boot_wait),
        (Duration::from_secs(15), Duration::from_secs(5))
    );
}

/// Timing rule R2: fence_delay >= fencing.timeout + heartbeat_interval, refused naming both.
#[test]
fn fence_delay_must_cover_the_peers_whole_fence_attempt() {
    let dir = TempDir::new("fence-delay");
    // Boundary: 10s + 200ms is accepted, a millisecond less is not.
    let at = format!("{LINKS}fence_delay = \"10200ms\"\n");
    assert_eq!(
        ok(&pair(&dir, &at, "")).cluster.unwrap().fence_delay,
        Duration::from_millis(10_200)
    );
    let below = format!("{LINKS}fence_delay = \"10199ms\"\n");
    one_problem(
        &pair(&dir, &below, ""),
        "cluster.fence_delay",
        Some(8),
        "cluster.fence_delay = 10199ms must be at least fencing.timeout + cluster.heartbeat_interval = 10s + 200ms = 10200ms (R2)",
    );
    // A longer fencing.timeout breaks a fence_delay that was fine: both keys named.
    let found = problems(&pair(
        &dir,
        &format!("{LINKS}fence_delay = \"12s\"\n"),
        "timeout = \"30s\"\n",
    ));
    assert_eq!(found.len(), 1, "{found:#?}");
    let text = found[0].to_string();
    assert!(
        text.starts_with("cluster.fence_delay (line 8): ")
            && text.contains("fencing.timeout + cluster.heartbeat_interval = 30s + 200ms"),
        "{text}"
    );
}

/// Timing rule R3: boot_wait >= peer_timeout.
#[test]
fn boot_wait_must_cover_a_peer_timeout() {
    let dir = TempDir::new("boot-wait");
    let at = format!("{LINKS}peer_timeout = \"5s\"\nboot_wait = \"5s\"\n");
    assert!(parse(&pair(&dir, &at, ""), Path::new(ORIGIN)).is_ok());
    let below = format!("{LINKS}peer_timeout = \"5s\"\nboot_wait = \"4999ms\"\n");
    one_problem(
        &pair(&dir, &below, ""),
        "cluster.boot_wait",
        Some(9),
        "cluster.boot_wait = 4999ms must be at least cluster.peer_timeout = 5s (R3)",
    );
    // boot_wait not written (default 30s): reported at peer_timeout's line.
    let long = format!("{LINKS}peer_timeout = \"31s\"\n");
    one_problem(
        &pair(&dir, &long, ""),
        "cluster.boot_wait",
        Some(8),
        "cluster.boot_wait = 30s must be at least cluster.peer_timeout = 31s",
    );
}

#[test]
fn timing_rules_are_not_checked_on_invalid_values_or_outside_pair_mode() {
    let dir = TempDir::new("timing-invalid");
    // The invalid duration is the one problem: no cascade into R2.
    let extra = format!("{LINKS}fence_delay = \"soon\"\n");
    one_problem(
        &pair(&dir, &extra, ""),
        "cluster.fence_delay",
        Some(8),
        "invalid duration \"soon\"",
    );
    let extra = format!("{LINKS}boot_wait = \"0s\"\n");
    one_problem(
        &pair(&dir, &extra, ""),
        "cluster.boot_wait",
        Some(8),
        "must be greater than zero",
    );
    // A single node with a long kill_timeout and no watchdog: nothing to say.
    let c = ok("[node]\nname = \"bb1\"\n[bitbucket]\nkill_timeout = \"10m\"\n");
    assert_eq!(timings(&c, None), None);
    assert!(warnings(&c).is_empty());
    assert!(check_at_start(&c, Path::new(ORIGIN), Some(Duration::from_secs(1))).is_ok());
}

/// Timing rule R5 (at `bbwd run`): WatchdogSec > 2 × watchdog.timeout in pair mode with a
/// hardware watchdog; the shipped unit's value passes with the default timeout.
#[test]
fn systemd_watchdog_must_leave_the_reset_to_the_hardware_in_pair_mode() {
    let dir = TempDir::new("r5");
    let with_dog = pair(&dir, LINKS, "[watchdog]\ndevice = \"/dev/watchdog\"\n");
    let c = ok(&with_dog);
    let origin = Path::new(ORIGIN);
    let unit = include_str!("../../../../systemd/bbwd.service");
    let shipped = unit
        .lines()
        .find_map(|l| l.strip_prefix("WatchdogSec="))
        .map(|v| parse_duration(v).unwrap());
    assert!(
        check_at_start(&c, origin, shipped).is_ok(),
        "the shipped unit's WatchdogSec ({shipped:?}) with the default watchdog.timeout"
    );
    assert!(check_at_start(&c, origin, Some(Duration::from_millis(120_001))).is_ok());
    assert!(
        check_at_start(&c, origin, None).is_ok(),
        "not under systemd"
    );
    let refused = check_at_start(&c, origin, Some(Duration::from_secs(120))).unwrap_err();
    assert_eq!(refused.problems.len(), 1, "{refused}");
    let line = refused.to_string();
    assert!(
        line.starts_with("/etc/bbwd/bbwd.toml: watchdog.timeout: watchdog.timeout = 60s")
            && line.contains("WatchdogSec = 120s")
            && line.contains("drop-in"),
        "{line}"
    );
    // The BMC watchdog counts too.
    let bmc = ok(&pair(
        &dir,
        LINKS,
        "[watchdog]\ndevice = \"ipmi\"\ntimeout = \"10s\"\n",
    ));
    assert!(check_at_start(&bmc, origin, Some(Duration::from_secs(20))).is_err());
    assert!(check_at_start(&bmc, origin, Some(Duration::from_secs(21))).is_ok());
    // No hardware watchdog: R5 has nothing to order, but W1 warns (and refuses nothing).
    let none = ok(&pair(&dir, LINKS, ""));
    assert!(check_at_start(&none, origin, Some(Duration::from_secs(1))).is_ok());
    let w = warnings(&none);
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].key, "watchdog.device");
    assert!(w[0].message.contains("(W1)"), "{}", w[0]);
    assert!(warnings(&c).is_empty());
}
