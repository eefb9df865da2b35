//! Mirror farm (BENCHMARKS.md, "Mirror farm: crash to HAProxy taking the node out"): how fast a
//! real HAProxy takes a mirror node out after Bitbucket crashes, through bbwd's agent check
//! (`agent-inter 200ms`), and how fast it is back in after bbwd restarted Bitbucket.
//!
//! The set-up of the end-to-end test `tests/tests/mirror_haproxy.rs` (`haproxy::mirror_node`,
//! `haproxy::Haproxy`): two `bbwd run` mirror nodes on loopback, each supervising a simulator
//! that answers STARTING for 1 s after a start, HAProxy with `check inter 1s fall 3 rise 2` and
//! `agent-check agent-inter 200ms` on both, and a client GETting `/status` through HAProxy every
//! 20 ms. `BENCH_MIRROR_RUNS` rounds (default 20), each: `GET /_sim/crash` on node 1's
//! simulator, then HAProxy's `show stat` polled every 10 ms until the server is `DOWN` (through
//! the agent check), then until it is `UP`. Reported: min, median, max and mean of both, and
//! what the client saw over the rounds.
//!
//! Measures the glibc release build (`target/release/bbwd`), as the figures were first taken.

use std::time::{Duration, Instant};

use super::{fixed, knob, require_tools, say, Ctx, Summary, Table};
use crate::haproxy::{self, mirror_node, ClientLoop, Haproxy};
use crate::{sim_admin, Daemon, Scenario};

/// Bound for anything HAProxy or bbwd should do in well under a second.
const SOON: Duration = Duration::from_secs(15);

pub fn run(ctx: &Ctx, _args: &[String]) -> String {
    let rounds: usize = knob("BENCH_MIRROR_RUNS", 20);
    assert!(rounds > 0, "BENCH_MIRROR_RUNS: at least 1");
    require_tools(&["haproxy"]);
    let bbwd = ctx.glibc_bbwd();
    let (a, a_agent) = mirror_node(Scenario::unwatched("bench-mirror-a").with_bbwd(&bbwd));
    let (b, b_agent) = mirror_node(Scenario::unwatched("bench-mirror-b").with_bbwd(&bbwd));
    let mut da = Daemon::start(&a);
    let mut db = Daemon::start(&b);
    for d in [&mut da, &mut db] {
        d.wait_for(SOON, "running and answering `up` to HAProxy", |s| {
            s["state"] == "running" && s["load_balancer"]["state"] == "up"
        });
    }
    let proxy =
        Haproxy::start_mirrors_up(a.dir.path(), [(a.port, a_agent), (b.port, b_agent)], SOON);
    let client = ClientLoop::start(
        proxy.port,
        "/status",
        Duration::from_millis(20),
        1_000_000,
        Duration::from_secs(24 * 3600),
    );
    let (mut to_down, mut to_up) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let start = Instant::now();
        sim_admin(a.port, "/_sim/crash");
        let (row, _) = proxy.wait_server("m1", SOON, "DOWN after the crash", |r| {
            r["status"].starts_with("DOWN")
        });
        let down = start.elapsed();
        assert!(
            row["last_agt"].starts_with("via agent : down"),
            "HAProxy took the node out other than through the agent check: {row:?}"
        );
        let (_, up) =
            proxy.wait_server("m1", SOON, "UP after the restart", |r| r["status"] == "UP");
        say(
            "mirror",
            &format!(
                "round {round} crash_to_down_ms={} down_to_up_ms={}",
                down.as_millis(),
                up.as_millis()
            ),
        );
        to_down.push(down.as_millis() as f64);
        to_up.push(up.as_millis() as f64);
    }
    let report = client.finish();
    drop(proxy);
    drop((da, db));

    let mut t = Table::new(&[
        &format!(
            "figure ({rounds} crash rounds, agent-inter {}, HAProxy {})",
            haproxy::AGENT_INTER,
            haproxy_version()
        ),
        "min",
        "median",
        "max",
        "mean",
    ]);
    for (label, v) in [
        (
            "crash -> HAProxy marks the server DOWN (via the agent check)",
            to_down,
        ),
        (
            "DOWN -> UP again (bbwd restarted Bitbucket, first healthy /status, next agent check)",
            to_up,
        ),
    ] {
        let s = Summary::of(v).expect("at least one round");
        t.row([
            label.to_string(),
            format!("{} ms", fixed(s.min(), 0)),
            format!("{} ms", fixed(s.median(), 1).trim_end_matches(".0")),
            format!("{} ms", fixed(s.max(), 0)),
            format!("{} ms", fixed(s.mean(), 0)),
        ]);
    }
    format!(
        "{}\nclient through HAProxy: {} ok, {} failed in {:.1} s (requests through HAProxy \
         during the crash rounds)\n",
        t.render(),
        report.ok,
        report.failures.len(),
        report.elapsed.as_secs_f64()
    )
}

fn haproxy_version() -> String {
    std::process::Command::new("haproxy")
        .arg("-v")
        .output()
        .ok()
        .and_then(|o| {
            let out = String::from_utf8_lossy(&o.stdout).into_owned();
            Some(out.lines().next()?.split_whitespace().nth(2)?.to_string())
        })
        .unwrap_or_else(|| "?".to_string())
}
