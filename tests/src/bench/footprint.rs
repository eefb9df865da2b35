//! Footprint of `bbwd run` supervising the Bitbucket simulator, single node (BENCHMARKS.md,
//! "Single node: footprint"):
//!
//! * steady-state resident memory: `VmRSS` (and `VmHWM`) from `/proc/PID/status`, `Pss` from
//!   `smaps_rollup`, after `BENCH_CPU_SECONDS` at `monitor_interval = "1s"`;
//! * CPU time per hour at that interval: utime + stime over the same window, scaled to an hour;
//! * heap allocations per monitoring cycle in steady state: the alloc-count build at a 100 ms
//!   interval for `BENCH_ALLOC_SECONDS`; its exit line sums the allocations of the loop passes
//!   in which no event was recorded and no control request served, and the checks begun in
//!   them;
//! * the size of the stripped release binary.
//!
//! Measures the glibc release build (`target/release/bbwd`) and its alloc-count twin, as the
//! figures in BENCHMARKS.md were taken; the shipped static build's footprint is the `rss`
//! benchmark's.

use std::time::{Duration, Instant};

use super::{
    alloc_count_field, alloc_count_line, clk_tck, cpu_ticks, fixed, knob, pss_kib, say,
    single_node_config, sleep, status_kib, Ctx, Table, STARTUP,
};
use crate::{Daemon, Scenario};

pub fn run(ctx: &Ctx, _args: &[String]) -> String {
    let cpu_seconds: u64 = knob("BENCH_CPU_SECONDS", 120);
    let alloc_seconds: u64 = knob("BENCH_ALLOC_SECONDS", 20);
    let plain = ctx.glibc_bbwd();
    let counting = ctx.alloc_count_bbwd();

    // 1. RSS and CPU at a 1 s interval (the seeds' production interval is 15 s: 15x busier).
    let sc = Scenario::unwatched("bench-cpu").with_bbwd(&plain);
    single_node_config(&sc, "bench", "1s", "1s", "", "");
    let mut d = Daemon::start_with_env(&sc, &[("RUST_LOG", "info")]);
    d.wait_state(STARTUP, "running");
    sleep(Duration::from_secs(3));
    let pid = d.pid();
    say(
        "footprint",
        &format!("RSS and CPU over {cpu_seconds} s at monitor_interval 1s"),
    );
    let (c0, t0) = (cpu_ticks(pid), Instant::now());
    sleep(Duration::from_secs(cpu_seconds));
    let (c1, window) = (cpu_ticks(pid), t0.elapsed());
    let rss = status_kib(pid, "VmRSS").unwrap_or(0);
    let hwm = status_kib(pid, "VmHWM").unwrap_or(0);
    let pss = pss_kib(pid).unwrap_or(0);
    let cpu_per_hour = (c1 - c0) as f64 / clk_tck() as f64 * 3600.0 / window.as_secs_f64();
    d.stop();

    // 2. Allocations per monitoring cycle, at a 100 ms interval to get many cycles quickly.
    say(
        "footprint",
        &format!("allocations over {alloc_seconds} s at monitor_interval 100ms"),
    );
    let sc = Scenario::unwatched("bench-alloc").with_bbwd(&counting);
    single_node_config(&sc, "bench", "100ms", "1s", "", "");
    let mut d = Daemon::start_with_env(&sc, &[("RUST_LOG", "info")]);
    d.wait_state(STARTUP, "running");
    sleep(Duration::from_secs(alloc_seconds));
    d.stop();
    let line = alloc_count_line(&sc.bbwd_log());
    let checks = alloc_count_field(&line, "steady_checks");
    let allocs = alloc_count_field(&line, "steady_allocs");
    let per_cycle = allocs as f64 / checks.max(1) as f64;

    let size = std::fs::metadata(&plain).map(|m| m.len()).unwrap_or(0);
    let mut t = Table::new(&["figure", "value", "goal"]);
    t.row([
        "steady-state RSS of `bbwd run` (VmRSS)".to_string(),
        format!(
            "{rss} KiB ({} MiB); PSS {pss} KiB; peak {hwm} KiB",
            fixed(rss as f64 / 1024.0, 2)
        ),
        "< 3 MiB".to_string(),
    ]);
    t.row([
        "heap allocations per monitoring cycle (steady state)".to_string(),
        format!(
            "{} ({allocs} allocations over {checks} cycles)",
            fixed(per_cycle, 3)
        ),
        "0".to_string(),
    ]);
    t.row([
        "stripped release binary".to_string(),
        format!("{size} bytes ({} MiB)", fixed(size as f64 / 1_048_576.0, 2)),
        "small".to_string(),
    ]);
    t.row([
        "CPU time per hour at monitor_interval = 1s".to_string(),
        format!(
            "{} s (measured over {cpu_seconds} s)",
            fixed(cpu_per_hour, 2)
        ),
        "small".to_string(),
    ]);
    format!(
        "{}\n({line})\n(bbwd: {}; alloc-count: {})\n",
        t.render(),
        plain.display(),
        counting.display()
    )
}
