//! `bbwd fence` over Redfish (BENCHMARKS.md, "Fencing over Redfish: `bbwd fence` against
//! sushy-tools' emulator"): sushy-tools' emulator (`sushy`, fake driver, TLS with a test CA,
//! htpasswd), `BENCH_RUNS` runs (default 7). Each run: the system is powered on, `bbwd fence
//! status` is timed, then `bbwd fence off` while an independent client (curl, `PowerWatch`)
//! reads `PowerState` in a loop, then `off` again when already off.
//!
//! The fake driver makes a new state visible at a whole second (its apply time is `int(now) +
//! 1..11 s`), so the moment the service began to report Off is the whole second between the
//! start of the watcher's last On read and the end of its first Off read; bbwd's lag is its
//! exit minus that moment. A run without such a second is left out (and said so).
//!
//! Measures the shipped bbwd. (Formerly the ignored test `bench_fence_off_over_redfish` in
//! `tests/tests/redfish_fence.rs`.)

use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{fixed, knob, say, sleep, Ctx, Summary, Table};
use crate::sushy::{self, fence_config, Options, PowerWatch, Sushy};
use crate::{run_bounded, toml_str, TestDir};

pub fn run(ctx: &Ctx, _args: &[String]) -> String {
    let runs: usize = knob("BENCH_RUNS", 7);
    let bbwd = ctx.shipped_bbwd();
    sushy::available();
    let dir = TestDir::new("bench-redfish");
    let emu = Sushy::start(dir.path(), &Options::default());
    let system = emu.systems[0].clone();
    let ca = format!(
        "ca_file = {}\n",
        toml_str(&emu.pki.ca.display().to_string())
    );
    let cfg = fence_config(&dir, emu.port, sushy::PASSWORD, &ca, "30s");
    let fence = |action: &str| -> (Output, Duration) {
        let mut cmd = Command::new(&bbwd);
        cmd.args(["fence", action, "-c"]).arg(&cfg);
        let t0 = Instant::now();
        let out = run_bounded(cmd, Duration::from_secs(90));
        (out, t0.elapsed())
    };
    let ok = |out: &Output, want: &str| {
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == want,
            "bbwd fence: exit {:?}, stdout {:?}, stderr {}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            emu.diagnostics()
        );
    };
    let (mut lags, mut totals, mut statuses, mut already) = (vec![], vec![], vec![], vec![]);
    for run in 1..=runs {
        let (out, _) = fence("on");
        ok(&out, "on");
        let (out, took) = fence("status");
        ok(&out, "on");
        statuses.push(ms(took));
        let watch = PowerWatch::start(&emu, &system);
        let (out, took) = fence("off");
        let returned = Instant::now();
        sleep(Duration::from_millis(300));
        let seen = watch.finish();
        ok(&out, "off");
        let last_on = seen.iter().rev().find(|(_, _, s)| s == "On").map(|s| s.0);
        let first_off = seen.iter().find(|(_, _, s)| s == "Off").map(|s| s.1);
        let (Some(on), Some(off)) = (last_on, first_off) else {
            say(
                "redfish",
                &format!("run {run}: the watcher saw no change; left out"),
            );
            continue;
        };
        // The whole second in (last On read, first Off read]: when the service began to say Off.
        let switch = unix_secs(on).floor() + 1.0;
        if switch > unix_secs(off) {
            say(
                "redfish",
                &format!("run {run}: no whole second between the reads; left out"),
            );
            continue;
        }
        let lag_ms = (unix_secs(returned) - switch) * 1000.0;
        say(
            "redfish",
            &format!(
                "run {run}: off {} ms wall, returned {lag_ms:.0} ms after the service began to \
                 report Off",
                took.as_millis()
            ),
        );
        lags.push(lag_ms);
        totals.push(ms(took));
        let (out, took) = fence("off");
        ok(&out, "off");
        already.push(ms(took));
    }
    let mut t = Table::new(&["what", "median ms", "range ms", "runs"]);
    for (name, v) in [
        (
            "`bbwd fence off`, wall (the emulator applies a reset 1-11 s after its 204)",
            totals,
        ),
        (
            "`bbwd fence off`: its exit after the service began to report Off",
            lags,
        ),
        (
            "`bbwd fence status`, wall (process, TCP, TLS handshake, service root, system)",
            statuses,
        ),
        ("`bbwd fence off` when already off, wall", already),
    ] {
        match Summary::of(v) {
            Some(s) => t.row([
                name.to_string(),
                fixed(s.median(), 0),
                format!("{}-{}", fixed(s.min(), 0), fixed(s.max(), 0)),
                s.len().to_string(),
            ]),
            None => t.row([name, "no data", "", "0"]),
        };
    }
    t.render()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `t` on the wall clock, seconds since the epoch.
fn unix_secs(t: Instant) -> f64 {
    let (now_i, now_w) = (Instant::now(), SystemTime::now());
    let wall = now_w - now_i.saturating_duration_since(t);
    wall.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}
