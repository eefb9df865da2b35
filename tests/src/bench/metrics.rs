//! Cost of a Prometheus scrape of `bbwd run` (BENCHMARKS.md, "Metrics: cost of a Prometheus
//! scrape", the part through the daemon; the render alone is `cargo bench -p bbwd --bench
//! metrics`). A single node supervising the simulator (monitor every 1 s), built with
//! `--features alloc-count` (the counting allocator costs only on allocation, and a scrape
//! makes none, which is what this measures):
//!
//! * client-seen time per scrape: `BENCH_SCRAPES` sequential scrapes, each a new TCP connection,
//!   `GET /metrics`, read until bbwd closes;
//! * bbwd's CPU per scrape: its utime + stime over the burst minus its idle rate (measured over
//!   5 s before the burst), per scrape;
//! * heap allocations in the loop while scraped (the build's exit line: scrape passes are
//!   steady passes);
//! * `VmRSS` with `[metrics]` after the scrapes, against the same node without `[metrics]`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::{
    alloc_count_field, alloc_count_line, clk_tck, cpu_ticks, fixed, knob, say, single_node_config,
    sleep, status_kib, Ctx, Summary, Table, STARTUP,
};
use crate::{free_port, toml_str, Daemon, Scenario};

pub fn run(ctx: &Ctx, _args: &[String]) -> String {
    let scrapes: usize = knob("BENCH_SCRAPES", 2000);
    let bbwd = ctx.alloc_count_bbwd();

    // Without [metrics]: the memory baseline.
    let sc = Scenario::unwatched("bench-metrics-plain").with_bbwd(&bbwd);
    single_node_config(&sc, "bench", "1s", "1s", "", "");
    let mut d = Daemon::start_with_env(&sc, &[("RUST_LOG", "info")]);
    d.wait_state(STARTUP, "running");
    sleep(Duration::from_secs(3));
    let rss_plain = status_kib(d.pid(), "VmRSS").unwrap_or(0);
    d.stop();

    let mport = free_port();
    let sc = Scenario::unwatched("bench-metrics").with_bbwd(&bbwd);
    let section = format!(
        "[metrics]\nlisten = \"127.0.0.1:{mport}\"\ntextfile = {}\n",
        toml_str(&sc.dir.join("scraped.prom").display().to_string())
    );
    single_node_config(&sc, "bench", "1s", "1s", "", &section);
    let mut d = Daemon::start_with_env(&sc, &[("RUST_LOG", "info")]);
    d.wait_state(STARTUP, "running");
    sleep(Duration::from_secs(3));
    let pid = d.pid();
    let tck = clk_tck() as f64;
    // The idle rate first.
    let (c0, t0) = (cpu_ticks(pid), Instant::now());
    sleep(Duration::from_secs(5));
    let (c1, idle_window) = (cpu_ticks(pid), t0.elapsed());
    say("metrics", &format!("{scrapes} sequential scrapes"));
    let burst = Instant::now();
    let mut latencies = Vec::with_capacity(scrapes);
    for _ in 0..scrapes {
        let t = Instant::now();
        scrape(mport, "GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n");
        latencies.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let total = burst.elapsed().as_secs_f64();
    let c2 = cpu_ticks(pid);
    let rss_scraped = status_kib(pid, "VmRSS").unwrap_or(0);
    let reply = scrape(mport, "GET /metrics HTTP/1.0\r\n\r\n");
    let body = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(0, |at| reply.len() - at - 4);
    d.stop();
    let line = alloc_count_line(&sc.bbwd_log());

    let idle_rate = (c1 - c0) as f64 / tck / idle_window.as_secs_f64();
    let burst_cpu = (c2 - c1) as f64 / tck - idle_rate * total;
    let per_scrape_us = burst_cpu.max(0.0) / scrapes as f64 * 1e6;
    let lat = Summary::of(latencies).expect("at least one scrape");
    let mut t = Table::new(&["figure", "value"]);
    t.row([
        "body of one scrape (single node)".to_string(),
        format!("{body} bytes"),
    ]);
    t.row([
        "client-seen time per scrape, loopback, new connection each".to_string(),
        format!(
            "median {} us, p99 {} us ({scrapes} sequential scrapes in {} s)",
            fixed(lat.median(), 0),
            fixed(lat.percentile(99.0), 0),
            fixed(total, 3)
        ),
    ]);
    t.row([
        format!(
            "bbwd CPU per scrape (utime+stime over the burst, idle rate subtracted; clock ticks \
             of {} ms)",
            1000 / clk_tck()
        ),
        format!("~{} us", fixed(per_scrape_us, 0)),
    ]);
    t.row([
        "heap allocations in the loop while scraped".to_string(),
        format!("{} ({line})", alloc_count_field(&line, "steady_allocs")),
    ]);
    t.row([
        "VmRSS with [metrics] (after the scrapes) / without".to_string(),
        format!("{rss_scraped} KiB / {rss_plain} KiB"),
    ]);
    t.render()
}

/// One scrape on a new connection: the whole reply, which must be a 200.
fn scrape(port: u16, request: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the metrics port");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("set_read_timeout");
    s.write_all(request.as_bytes()).expect("send the request");
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("read the reply");
    assert!(
        got.starts_with(b"HTTP/1.1 200") || got.starts_with(b"HTTP/1.0 200"),
        "not a 200: {:?}",
        String::from_utf8_lossy(&got[..got.len().min(100)])
    );
    got
}
