//! Failover time of bbwd's pair mode on the pair lab (BENCHMARKS.md, "Pair: failover time"),
//! next to keepalived's on the same lab ([`super::keepalived`]).
//!
//! The lab (`pairlab`): two servers, a switch and a client in network namespaces, each server
//! powered through a real BMC (ipmi_sim); each server runs the shipped `bbwd run` in pair mode
//! (`pairnode`'s config: heartbeat on eth0 and eth1, IPMI fencing of the peer's BMC, the VIP
//! 10.77.0.50 on eth0), which runs a Bitbucket simulator. Per run (`pairnode::boot_pair`,
//! `pairnode::fail_over`): n1 powered on alone (it fences the silent n2, which is off, and
//! serves), then n2 (it stands by), then n1 powered off through its BMC (its node script cuts its
//! links, then SIGSTOPs and SIGKILLs everything on it: a power loss). n1 starts after a random
//! delay below 1 s, so that the fault lands at a random point of its heartbeat cycle (ipmi_sim
//! acts at its 1 s tick, and 200 ms heartbeats divide 1 s: a phase lock otherwise).
//!
//! Failover = from the power loss to the end of the first request the client (a GET of the VIP
//! every 20 ms, 1 s timeout each) got answered by n2. The split comes from n2's `bbwd status
//! --json` `fencing.last_takeover[].at_ms`: detect (-> `peer lost`), fence delay (-> `fence
//! started`), fence (-> `fence confirmed` or `peer already off`), start (-> `bitbucket
//! healthy`), VIP (-> `vip added`), client (-> the client's first answer). Also the pair-mode
//! footprint: `VmRSS` of the active and the standby bbwd in steady state, before the fault.
//!
//! Twice: `peer_timeout` 1s (the lab's config) and 600ms, `BENCH_FAILOVER_RUNS` runs each
//! (default 7), each in a fresh lab; then keepalived with as many runs, unless
//! `BENCH_FAILOVER_KEEPALIVED=0` or run by `bench all` (which runs keepalived by itself). The
//! invariant sampler (every 20 ms) must see at most one VIP holder and one Bitbucket throughout.
//! Needs root.

use std::fmt::Write as _;
use std::time::Duration;

use super::{keepalived, knob, require_tools, say, Ctx, Summary, Table};
use crate::pairlab::{Node, PairLab, VIP};
use crate::pairnode::{boot_pair, configure_pair, fail_over};

/// One run's figures, ms (`None`: the step is missing from n2's timeline).
struct Run {
    failover: i64,
    bmc: i64,
    detect: Option<i64>,
    delay: Option<i64>,
    fence: Option<i64>,
    start: Option<i64>,
    vip: Option<i64>,
    client: Option<i64>,
    answers_from_dead: usize,
    rss_active: u64,
    rss_standby: u64,
}

impl Run {
    /// The line `pairdemo bench` printed per run (BENCHMARKS.md quotes them).
    fn line(&self, run: usize) -> String {
        let na = |v: Option<i64>| v.map_or("na".to_string(), |v| v.to_string());
        format!(
            "run {run} failover_ms {} bmc_ms {} detect_ms {} delay_ms {} fence_ms {} start_ms {} \
             vip_ms {} client_ms {} answers_from_dead_n1 {} rss_active_kib {} rss_standby_kib {}",
            self.failover,
            self.bmc,
            na(self.detect),
            na(self.delay),
            na(self.fence),
            na(self.start),
            na(self.vip),
            na(self.client),
            self.answers_from_dead,
            self.rss_active,
            self.rss_standby
        )
    }
}

pub fn run(ctx: &Ctx, _args: &[String]) -> String {
    let runs: usize = knob("BENCH_FAILOVER_RUNS", 7);
    assert!((1..=100).contains(&runs), "BENCH_FAILOVER_RUNS: 1 to 100");
    let bbwd = ctx.shipped_bbwd();
    // The lab's nodes run `$BBWD_BIN` (pairnode): the shipped build unless overridden.
    assert_eq!(
        crate::bbwd_bin(),
        bbwd,
        "BBWD_BIN must name the bbwd measured"
    );
    crate::pairlab::available();
    let t1000 = measure(1000, runs);
    let t600 = measure(600, runs);

    let version = git_describe(ctx);
    let mut t = Table::new(&[
        &format!("bbwd {version}, heartbeat_interval 200ms"),
        "failover, median",
        "range",
        "detect",
        "fence delay",
        "fence",
        "start",
        "VIP",
        "client",
        "runs",
        "answers from n1 after its power loss",
    ]);
    row(&mut t, "peer_timeout 1s", &t1000);
    row(&mut t, "peer_timeout 600ms", &t600);
    let mut report = t.render();
    report.push_str(
        "\n(split columns: medians of each phase, so they need not add up to the median \
         failover)\n\n",
    );
    let all: Vec<&Run> = t1000.iter().chain(&t600).collect();
    let kib = |f: fn(&Run) -> u64| Summary::of(all.iter().map(|r| f(r) as f64));
    if let (Some(a), Some(s)) = (kib(|r| r.rss_active), kib(|r| r.rss_standby)) {
        let _ = writeln!(
            report,
            "Pair-mode RSS (VmRSS of `bbwd run` before the fault, {} runs): active median {:.0} \
             KiB ({:.0} - {:.0}), standby median {:.0} KiB ({:.0} - {:.0})\n",
            a.len(),
            a.median(),
            a.min(),
            a.max(),
            s.median(),
            s.min(),
            s.max()
        );
    }
    report.push_str(
        "Raw runs (ms; bmc_ms = ipmi_sim's delay before the power loss, not counted):\n\n",
    );
    for (label, set) in [("1s   ", &t1000), ("600ms", &t600)] {
        for (i, r) in set.iter().enumerate() {
            let _ = writeln!(report, "    {label} {}", r.line(i + 1));
        }
    }

    let with_keepalived = knob("BENCH_FAILOVER_KEEPALIVED", 1u8) != 0 && !ctx.in_all;
    if with_keepalived {
        require_tools(&["keepalived"]);
        say("failover", "keepalived on the same lab");
        report.push('\n');
        report.push_str(&keepalived::measure_all(runs));
    }
    report
}

fn row(t: &mut Table, label: &str, runs: &[Run]) {
    let med = |f: fn(&Run) -> Option<i64>| {
        Summary::of(runs.iter().filter_map(f).map(|v| v as f64)).map_or("na".to_string(), |s| {
            format!("{:.0} ms", s.median().trunc())
        })
    };
    let Some(f) = Summary::of(runs.iter().map(|r| r.failover as f64)) else {
        t.row([label, "no data"]);
        return;
    };
    t.row([
        label.to_string(),
        format!("**{:.2} s**", f.median() / 1000.0),
        format!("{:.2} - {:.2} s", f.min() / 1000.0, f.max() / 1000.0),
        med(|r| r.detect),
        med(|r| r.delay),
        med(|r| r.fence),
        med(|r| r.start),
        med(|r| r.vip),
        med(|r| r.client),
        runs.len().to_string(),
        runs.iter()
            .map(|r| r.answers_from_dead)
            .sum::<usize>()
            .to_string(),
    ]);
}

/// `runs` failovers at `peer_timeout_ms` on a fresh lab.
fn measure(peer_timeout_ms: u64, runs: usize) -> Vec<Run> {
    let lab = PairLab::up("bench-failover");
    configure_pair(&lab, peer_timeout_ms);
    let sampler = lab.sample_invariants(VIP);
    let n1_cmd_path = lab.bmc(Node::N1).dir.join("node-cmd.sh");
    let n1_cmd = std::fs::read_to_string(&n1_cmd_path).expect("read n1's node command");
    let mut out = Vec::with_capacity(runs);
    for run in 1..=runs {
        say(
            "failover",
            &format!("run {run}/{runs} (peer_timeout {peer_timeout_ms} ms)"),
        );
        // A random start delay below 1 s against the phase lock (module doc).
        let jitter = Duration::from_nanos(u64::from(crate::now_since_epoch().subsec_nanos()));
        std::fs::write(
            &n1_cmd_path,
            format!("sleep {:.3}\n{n1_cmd}", jitter.as_secs_f64()),
        )
        .expect("write n1's node command");
        boot_pair(&lab, |s| say("failover", s));
        let (rss_active, rss_standby) = (bbwd_rss(&lab, Node::N1), bbwd_rss(&lab, Node::N2));
        let f = fail_over(&lab);
        let detect = f.step_ms("peer lost");
        let at = |step: &str| f.step_ms(step);
        let diff = |a: Option<i64>, b: Option<i64>| Some(b? - a?);
        let failover = f.failover().as_millis() as i64;
        // A peer already off per its BMC is taken over without a fence command (the power
        // query confirms it): then there is no delay and "fence" is the query's round trip.
        let fence_start = at("fence started").or(detect);
        let fence_end = at("fence confirmed").or(at("peer already off"));
        let r = Run {
            failover,
            bmc: f.bmc.as_millis() as i64,
            detect: diff(Some(0), detect),
            delay: diff(detect, fence_start),
            fence: diff(fence_start, fence_end),
            start: diff(fence_end, at("bitbucket healthy")),
            vip: diff(at("bitbucket healthy"), at("vip added")),
            client: diff(at("vip added"), Some(failover)),
            answers_from_dead: f.answers_from_dead(),
            rss_active,
            rss_standby,
        };
        say("failover", &r.line(run));
        out.push(r);
        lab.power_off(Node::N2);
    }
    sampler.assert_at_most_one();
    say(
        "failover",
        &format!(
            "at most one VIP holder and one Bitbucket in all {} samples",
            sampler.samples()
        ),
    );
    out
}

/// `VmRSS` of the bbwd in `node`'s namespace, KiB (0 if none).
fn bbwd_rss(lab: &PairLab, node: Node) -> u64 {
    lab.pids_in(&lab.ns(node))
        .into_iter()
        .find(|p| {
            std::fs::read(format!("/proc/{p}/comm"))
                .is_ok_and(|c| c.strip_suffix(b"\n").unwrap_or(&c) == b"bbwd")
        })
        .and_then(|p| super::status_kib(p, "VmRSS"))
        .unwrap_or(0)
}

/// `git describe --always --dirty` of the workspace, or `?`.
fn git_describe(ctx: &Ctx) -> String {
    std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(ctx.workspace())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "?".to_string())
}
