//! Metrics rendering cost per scrape: `metrics::render` of a single node's, a mirror node's and
//! a pair node's sample into the scrape server's fixed buffer, with the allocations counted.
//! A measurement for BENCHMARKS.md, not a test: nothing is asserted.
//!
//! Run: `cargo bench -p bbwd --bench metrics` (the release profile). The end-to-end cost of a
//! scrape through the daemon's loop is `scripts/bench.sh metrics` (`tests/src/bench/metrics.rs`).

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bbwd_platform::metrics_server::{Body, MAX_RESPONSE};

// `metrics.rs` names the event kinds as the agent does (`crate::machine`, `crate::pair`).
#[allow(unused_imports)]
use bbwd_core::{machine, pair};

#[path = "../src/metrics.rs"]
#[allow(dead_code, unused_imports)]
mod metrics;

/// The agent's counting global allocator (as in the heartbeat bench).
#[path = "../src/alloc_count.rs"]
#[allow(dead_code)]
mod alloc_count;

/// Renders per timed run.
const RENDERS: u32 = 20_000;
/// Timed runs per figure; the median is reported, with the range.
const RUNS: usize = 7;

fn measure(what: &str, sample: &metrics::Sample<'_>, buf: &mut [u8]) {
    let mut bytes = 0;
    let mut one = |buf: &mut [u8]| {
        let mut body = Body::new(buf);
        let _ = metrics::render(black_box(sample), &mut body);
        assert!(!body.overflowed());
        bytes = body.len();
    };
    for _ in 0..RENDERS / 10 {
        one(buf); // warm-up
    }
    let mut per = Vec::with_capacity(RUNS);
    let allocs_before = alloc_count::allocations();
    for _ in 0..RUNS {
        let start = Instant::now();
        for _ in 0..RENDERS {
            one(buf);
        }
        per.push(start.elapsed() / RENDERS);
    }
    let allocs = alloc_count::allocations() - allocs_before;
    per.sort();
    println!(
        "{what:<34} {bytes:>6} bytes  median {:>6.1} us/render (range {:.1}-{:.1} us, {RUNS} runs of {RENDERS}); {allocs} allocations",
        per[RUNS / 2].as_secs_f64() * 1e6,
        per[0].as_secs_f64() * 1e6,
        per[RUNS - 1].as_secs_f64() * 1e6,
    );
}

fn main() {
    let counters = day_of_counters();
    let single = single_sample(&counters);
    let mirror = metrics::Sample {
        mode: "mirror",
        lb: Some(metrics::Lb {
            reply: "up",
            checks: 123_456,
        }),
        ..single_like(&single)
    };
    let p = pair_after_takeover();
    let pair = metrics::Sample {
        mode: "pair",
        role: "active",
        pair: Some(&p),
        ..single_like(&single)
    };
    let mut buf = vec![0u8; MAX_RESPONSE];
    measure("single node", &single, &mut buf);
    measure("mirror node", &mirror, &mut buf);
    measure("pair node (2 links, a takeover)", &pair, &mut buf);
}

/// The counters of a node that has seen some life: the kinds a day of operation records.
fn day_of_counters() -> metrics::Counters {
    let mut counters = metrics::Counters::default();
    for kind in [
        "daemon_start",
        "start",
        "healthy",
        "check_failed",
        "recovered",
        "correcting",
        "stop",
        "exited",
        "crash",
        "restart",
        "maintenance_on",
        "maintenance_off",
    ] {
        counters.event(kind, "");
    }
    counters.last_check_duration = Some(Duration::from_micros(1234));
    counters
}

/// A single node's sample: Bitbucket running and healthy, the watchdog armed and petted.
fn single_sample(counters: &metrics::Counters) -> metrics::Sample<'_> {
    metrics::Sample {
        version: "0.1.0",
        mode: "single",
        state: "running",
        role: "none",
        http_status: Some(200),
        consecutive_failures: 0,
        watchdog_armed: true,
        petting: true,
        database_reachable: Some(true),
        started_at_ms: 1_795_000_000_000,
        counters,
        pair: None,
        lb: None,
    }
}

/// A pair node's part after a takeover: two links up, every drop reason counted, the
/// takeover's full timeline.
fn pair_after_takeover() -> metrics::Pair {
    let mut p = metrics::Pair {
        peer_alive: true,
        vip_held: true,
        bmc_reachable: Some(true),
        ..Default::default()
    };
    let a: SocketAddr = "10.0.0.1:5405".parse().unwrap();
    let b: SocketAddr = "10.0.0.2:5405".parse().unwrap();
    for _ in 0..2 {
        let _ = p.links.push(metrics::Link {
            up: true,
            local: Some(a),
            peer: Some(b),
        });
    }
    for r in bbwd_core::heartbeat::Reject::ALL {
        let _ = p.dropped.push((r.name(), 17));
    }
    for (i, step) in [
        "peer lost",
        "fence started",
        "fence confirmed",
        "before_start",
        "bitbucket healthy",
        "vip added",
        "active",
    ]
    .into_iter()
    .enumerate()
    {
        let _ = p.takeover.push((step, 1_795_000_000_000 + 700 * i as u64));
    }
    p
}

/// A copy of `s` (the sample is plain data but for its references).
fn single_like<'a>(s: &metrics::Sample<'a>) -> metrics::Sample<'a> {
    metrics::Sample {
        version: s.version,
        mode: s.mode,
        state: s.state,
        role: s.role,
        http_status: s.http_status,
        consecutive_failures: s.consecutive_failures,
        watchdog_armed: s.watchdog_armed,
        petting: s.petting,
        database_reachable: s.database_reachable,
        started_at_ms: s.started_at_ms,
        counters: s.counters,
        pair: s.pair,
        lb: s.lb,
    }
}
