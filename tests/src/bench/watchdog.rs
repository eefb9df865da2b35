//! Hardware-watchdog figures of `bbwd run` supervising the simulator (BENCHMARKS.md, "Hardware
//! watchdog: realtime cost and pet latency"):
//!
//! * the memory cost of `[watchdog] realtime = true` (mlockall + SCHED_FIFO): `VmRSS`, `Pss`,
//!   `VmLck` and `VmHWM` of the daemon with and without it, after `BENCH_SECONDS`, with
//!   `device = "none"`; the status's `watchdog.realtime`; the supervised Bitbucket's scheduling
//!   policy (it must not inherit SCHED_FIFO);
//! * pet latency (end of a loop pass to `WDIOC_KEEPALIVE` returned, bbwd's own measurement in
//!   `bbwd status --json`) when `BENCH_WATCHDOG_DEVICE` (default /dev/watchdog) exists.
//!   CAUTION: that arms the host's watchdog for the run; bbwd disarms it on exit.
//!
//! Needs root (mlockall, SCHED_FIFO). Measures the shipped bbwd.

use std::path::Path;
use std::time::Duration;

use super::{
    knob, pss_kib, require_root, say, single_node_config, sleep, status_kib, Ctx, Table, STARTUP,
};
use crate::{Daemon, Scenario, Value};

/// What one run saw.
struct Reading {
    rss: u64,
    pss: u64,
    lck: u64,
    hwm: u64,
    child_policy: String,
    realtime: Value,
}

pub fn run(ctx: &Ctx, _args: &[String]) -> String {
    require_root("the watchdog benchmark (mlockall, SCHED_FIFO)");
    let secs: u64 = knob("BENCH_SECONDS", 20);
    let device: String = knob("BENCH_WATCHDOG_DEVICE", "/dev/watchdog".to_string());
    let bbwd = ctx.shipped_bbwd();
    let each = Duration::from_secs(secs);

    let plain = measure(&bbwd, "plain", false, each);
    let rt = measure(&bbwd, "realtime", true, each);

    let latency = if is_char_device(Path::new(&device)) {
        say("watchdog", &format!("pet latency on {device} (armed)"));
        pet_latency(&bbwd, &device, each)
    } else {
        "n/a: no watchdog device on this host (see the qemu guest figure)".to_string()
    };

    let mut t = Table::new(&["figure", "realtime = false", "realtime = true"]);
    t.row([
        "VmRSS of `bbwd run`".to_string(),
        format!("{} KiB", plain.rss),
        format!(
            "{} KiB ({:+} KiB)",
            rt.rss,
            rt.rss as i64 - plain.rss as i64
        ),
    ]);
    t.row([
        "PSS".to_string(),
        format!("{} KiB", plain.pss),
        format!("{} KiB", rt.pss),
    ]);
    t.row([
        "locked (VmLck)".to_string(),
        format!("{} KiB", plain.lck),
        format!("{} KiB", rt.lck),
    ]);
    t.row([
        "peak (VmHWM)".to_string(),
        format!("{} KiB", plain.hwm),
        format!("{} KiB", rt.hwm),
    ]);
    t.row([
        "status `watchdog.realtime`".to_string(),
        plain.realtime.to_string(),
        rt.realtime.to_string(),
    ]);
    t.row([
        "supervised Bitbucket's scheduling policy (`chrt -p`)".to_string(),
        plain.child_policy,
        rt.child_policy,
    ]);
    format!(
        "{}\nPet latency (end of pass to keep-alive returned): {latency}\n",
        t.render()
    )
}

fn config(sc: &Scenario, realtime: bool, device: &str, timeout: &str) {
    let section = format!(
        "[watchdog]\ndevice = {}\ntimeout = \"{timeout}\"\nrealtime = {realtime}\n",
        crate::toml_str(device)
    );
    single_node_config(sc, "bench", "1s", "1s", "", &section);
}

fn measure(bbwd: &Path, name: &str, realtime: bool, each: Duration) -> Reading {
    say(
        "watchdog",
        &format!("realtime = {realtime}, {} s", each.as_secs()),
    );
    let sc = Scenario::unwatched(&format!("bench-wd-{name}")).with_bbwd(bbwd);
    config(&sc, realtime, "none", "60s");
    let mut d = Daemon::start_with_env(&sc, &[("RUST_LOG", "info")]);
    d.wait_state(STARTUP, "running");
    sleep(each);
    let pid = d.pid();
    let child: Option<i32> = std::fs::read_to_string(sc.state_dir().join("bitbucket.pid"))
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok());
    let (_, status) = sc.status_json();
    let r = Reading {
        rss: status_kib(pid, "VmRSS").unwrap_or(0),
        pss: pss_kib(pid).unwrap_or(0),
        lck: status_kib(pid, "VmLck").unwrap_or(0),
        hwm: status_kib(pid, "VmHWM").unwrap_or(0),
        child_policy: child.map_or_else(|| "?".to_string(), policy_name),
        realtime: status["watchdog"]["realtime"].clone(),
    };
    d.stop();
    r
}

fn pet_latency(bbwd: &Path, device: &str, each: Duration) -> String {
    let sc = Scenario::unwatched("bench-wd-dev").with_bbwd(bbwd);
    config(&sc, true, device, "30s");
    let mut d = Daemon::start_with_env(&sc, &[("RUST_LOG", "info")]);
    d.wait_state(STARTUP, "running");
    sleep(each);
    let (_, st) = sc.status_json();
    d.stop();
    let w = &st["watchdog"];
    format!(
        "last {} us, max {} us over {} pets ({}, timeout {} ms, realtime)",
        w["pet_latency_us_last"],
        w["pet_latency_us_max"],
        w["pets"],
        w["device"].as_str().unwrap_or("?"),
        w["timeout_ms"]
    )
}

fn is_char_device(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_char_device())
}

/// The scheduling policy of `pid`, as `chrt -p` names it.
fn policy_name(pid: i32) -> String {
    // SAFETY: sched_getscheduler(2) only reads the policy of a process; no memory is involved.
    let policy = unsafe { libc::sched_getscheduler(pid) };
    match policy {
        libc::SCHED_OTHER => "SCHED_OTHER".to_string(),
        libc::SCHED_FIFO => "SCHED_FIFO".to_string(),
        libc::SCHED_RR => "SCHED_RR".to_string(),
        libc::SCHED_BATCH => "SCHED_BATCH".to_string(),
        libc::SCHED_IDLE => "SCHED_IDLE".to_string(),
        -1 => format!("? ({})", std::io::Error::last_os_error()),
        other => format!("policy {other}"),
    }
}
