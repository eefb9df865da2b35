//! RSS of `bbwd run` under a correction every 2 s (BENCHMARKS.md, "Single node: hardening",
//! and the single-node row of "Footprint: the static musl build").
//!
//! The simulator is crashed every 2 s through its admin endpoint; bbwd restarts it each time
//! (`max_restarts` high, the window short, so the budget never runs out). `VmRSS` and `VmHWM`
//! of bbwd are sampled at the start and every minute, with the restarts done so far (the
//! simulator's START lines less the first: bbwd's own events.log rotates at 1 MiB, so it would
//! undercount over an hour). Report: one line per minute, then a summary line starting "after".
//!
//! Measures the shipped bbwd (`$BBWD_BIN` overrides). Argument: SECONDS (default 3600, the
//! hour the hardening issue asks for).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use super::{arg, say, single_node_config, sleep, status_kib, Ctx};
use crate::{http_get, Daemon, Scenario};

const EXTRA: &str = "startup_timeout = \"10s\"\nstop_timeout = \"1s\"\nkill_timeout = \"1s\"\n\
                     max_restarts = 1000\nrestart_window = \"1s\"\n";

pub fn run(ctx: &Ctx, args: &[String]) -> String {
    let secs: u64 = arg(args, 0, "SECONDS", 3600);
    let bbwd = ctx.shipped_bbwd();
    let sc = Scenario::unwatched("bench-rss").with_bbwd(&bbwd);
    single_node_config(&sc, "rss", "500ms", "500ms", EXTRA, "");
    let d = Daemon::start_with_env(&sc, &[("RUST_LOG", "info")]);
    let pid = d.pid();
    let rss = || status_kib(pid, "VmRSS").unwrap_or(0);
    let hwm = || status_kib(pid, "VmHWM").unwrap_or(0);
    let restarts = || sc.sim_starts().len().saturating_sub(1);
    let mut report = String::new();
    let mut line = |s: String| {
        say("rss", &s);
        let _ = writeln!(report, "{s}");
    };
    sleep(Duration::from_secs(3));
    line(format!(
        "bbwd {} pid {pid}; RSS at start: {} KiB",
        bbwd.display(),
        rss()
    ));
    let start = Instant::now();
    let mut crashes = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        // A simulator between crash and restart does not answer: that is the point.
        let _ = http_get(sc.port, "/_sim/crash");
        crashes += 1;
        sleep(Duration::from_secs(2));
        if crashes % 30 == 0 {
            line(format!(
                "{} s: {crashes} crashes sent, {} restarts, RSS {} KiB, VmHWM {} KiB",
                start.elapsed().as_secs(),
                restarts(),
                rss(),
                hwm()
            ));
        }
    }
    sleep(Duration::from_secs(3));
    line(format!(
        "after {secs} s: {crashes} crashes sent, {} restarts done, RSS {} KiB (VmHWM {} KiB)",
        restarts(),
        rss(),
        hwm()
    ));
    drop(d);
    report
}
