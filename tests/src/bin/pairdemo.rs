//! `pairdemo`: the cold-standby pair shown, and its failover measured, on the pair lab
//! (`bbwd_tests::pairlab`: two servers, a switch and a client in network namespaces, each server
//! powered through a real BMC, `ipmi_sim`, whose power-off also cuts the server's links).
//!
//! ```text
//! pairdemo                                  the demo (the second half of scripts/demo.sh)
//! pairdemo bench PEER_TIMEOUT_MS RUNS       failover figures (scripts/bench-failover.sh)
//! ```
//!
//! Both modes run the same sequence: n1 powered on through its BMC alone (its peer is silent, so
//! it fences n2, which is off: confirmed at once, and takes over), then n2 (it hears n1 serve and
//! stands by), the client probing the VIP every 20 ms, then n1 powered off through its BMC. The
//! demo prints what happens (`bbwd status` of both nodes, n2's takeover timeline in ms after the
//! power loss, what the client saw); the bench prints one line per run on stdout:
//! `run N failover_ms F bmc_ms B detect_ms D delay_ms W fence_ms X start_ms S vip_ms V
//! client_ms C answers_from_dead_n1 Z`, where failover is from n1's power loss (the node
//! script's first act) to the end of the first request n2 answered, and the split comes from n2's
//! `fencing.last_takeover` (`at_ms`): detect = power loss -> `peer lost`, delay = -> `fence
//! started` (the fence delay of the node not holding the service; 0 when the peer's BMC already
//! reports it off, which is a confirmed fence without a race), fence = -> `fence confirmed` or
//! `peer already off`, start = -> `bitbucket healthy` (hooks, spawn, first good check), vip = -> `vip
//! added` (ARP probe, add, first GARP), client = -> the client's first answer from n2. A step
//! missing from the timeline prints `na`. `bmc_ms` is ipmi_sim's delay from `ipmitool chassis
//! power off` to the power loss (its 1 s tick), not counted.
//!
//! Must not: act outside the lab (everything runs in its namespaces or is its ipmi_sim).
//!
//! # Invariants
//! * Every wait is bounded (`pairnode::WAIT`, [`FAILOVER_TIMEOUT`], the probe's own bounds).
//! * A test tool: on failure it panics with the lab's diagnostics, and unwinding drops the lab,
//!   which stops the BMCs, kills what ran in its namespaces by PID and deletes them; on success
//!   the lab is dropped the same way. Exit 64 on a bad command line, 1 when the lab cannot run
//!   here (not root, tools missing), 101 on a failed step.
//! * Both modes assert the lab's invariant (at most one VIP holder, at most one Bitbucket, every
//!   20 ms) at the end.

use std::process::{self, Command};
use std::time::{Duration, Instant};

use bbwd_tests::pairlab::{Node, PairLab, Probe, ProbeAttempt, VIP};
use bbwd_tests::pairnode::{
    answered_by, config_path, diagnostics, role_of, set_up_node, status, wait_role, SIM_PORT, WAIT,
};
use bbwd_tests::{bbwd_bin, wait_until};
use serde_json::Value;

/// From n1's power loss to the VIP answering from n2, at most.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);
/// The power-loss stamp is taken just before the node script cuts the links: a request started
/// within this much after it may still be answered by n1.
const DEAD_SLACK: Duration = Duration::from_millis(50);
/// Probe bounds (20 ms apart): long enough for a settle plus a failover.
const PROBE_MAX_ATTEMPTS: usize = 5000;
const PROBE_MAX_FOR: Duration = Duration::from_secs(90);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => {
            ensure_available();
            demo();
        }
        [mode, timeout, runs] if mode == "bench" => {
            let parsed = timeout
                .parse::<u64>()
                .ok()
                // From 3 × the lab's 200 ms heartbeat interval (timing rule R1).
                .filter(|t| (600..=60_000).contains(t))
                .zip(runs.parse::<usize>().ok().filter(|r| (1..=100).contains(r)));
            let Some((peer_timeout_ms, runs)) = parsed else {
                usage();
            };
            ensure_available();
            bench(peer_timeout_ms, runs);
        }
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!("usage: pairdemo                      (the demo)\n       pairdemo bench PEER_TIMEOUT_MS RUNS   (600..=60000)");
    process::exit(64);
}

fn ensure_available() {
    if !bbwd_tests::pairlab::available() {
        process::exit(1);
    }
}

// ---------------------------------------------------------------------------------------------
// The sequence both modes share

/// Writes both nodes' configs (`heartbeat_interval = 200ms`, `peer_timeout` as given).
fn configure(lab: &PairLab, peer_timeout_ms: u64) {
    for node in Node::BOTH {
        set_up_node(lab, node);
        if peer_timeout_ms != 1000 {
            let path = config_path(lab, node);
            let text = std::fs::read_to_string(&path).expect("read node config");
            let mut edited = text.replace(
                "peer_timeout = \"1s\"",
                &format!("peer_timeout = \"{peer_timeout_ms}ms\""),
            );
            if peer_timeout_ms > 3000 {
                // boot_wait must cover a peer_timeout (timing rule R3).
                edited = edited.replace(
                    "boot_wait = \"3s\"",
                    &format!("boot_wait = \"{peer_timeout_ms}ms\""),
                );
            }
            assert_ne!(text, edited, "peer_timeout not found in {}", path.display());
            std::fs::write(&path, edited).expect("write node config");
        }
    }
}

/// n1 on alone (it fences the silent n2, which is off, and serves), then n2 (it stands by);
/// returns once n2 hears n1 on both links and holds a BMC session to n1's BMC.
fn boot_pair(lab: &PairLab, say: impl Fn(&str)) {
    let t0 = Instant::now();
    say("powering n1 on through its BMC (ipmitool chassis power on)");
    lab.power_on(Node::N1);
    say("  n1 boots alone: its peer is silent for peer_timeout, so it must fence n2 before it may");
    say("  start Bitbucket (n2 is off: the fence is confirmed at once), then it takes over");
    wait_role(lab, Node::N1, "active/running");
    wait_until(WAIT, "the VIP to answer from n1", || {
        answered_by(lab, VIP, Node::N1)
    });
    say(&format!(
        "  n1 is active/running, the VIP answers from n1 ({:.1} s after power on)",
        t0.elapsed().as_secs_f64()
    ));
    say("powering n2 on through its BMC: it hears n1 serving and stands by");
    lab.power_on(Node::N2);
    wait_role(lab, Node::N2, "standby/stopped");
    wait_until(
        WAIT,
        "n2 to hear n1 on both links and reach n1's BMC",
        || {
            let st = status(lab, Node::N2);
            st["peer"]["alive"] == true
                && st["peer"]["links_up"] == 2
                && st["fencing"]["session_up"] == true
        },
    );
    assert_eq!(
        lab.vip_holder(VIP),
        vec![Node::N1],
        "before the fault the VIP is on n1 alone\n{}",
        diagnostics(lab)
    );
}

/// What one failover looked like.
struct Failover {
    /// From `ipmitool chassis power off` returning to the node losing power (ipmi_sim's tick).
    bmc: Duration,
    /// n1's power loss, wall clock, ms since the epoch.
    lost_wall_ms: u64,
    lost: Instant,
    /// Every probe attempt, in start order.
    attempts: Vec<ProbeAttempt>,
    /// n2's `bbwd status --json` once it is active/running.
    status: Value,
}

impl Failover {
    /// The end of the first request n2 answered after the power loss.
    fn first_answer_from_n2(&self) -> &ProbeAttempt {
        Probe::first_ok_from(&self.attempts, Node::N2, self.lost).expect("seen by fail_over")
    }

    fn failover(&self) -> Duration {
        self.first_answer_from_n2().end.duration_since(self.lost)
    }

    /// A step of n2's `fencing.last_takeover`, in ms after the power loss.
    fn step_ms(&self, step: &str) -> Option<i64> {
        timeline(&self.status)
            .into_iter()
            .find(|(s, _)| s == step)
            .map(|(_, at)| at as i64 - self.lost_wall_ms as i64)
    }

    /// Requests n1 answered that started clearly after its power loss (must be 0).
    fn answers_from_dead(&self) -> usize {
        self.attempts
            .iter()
            .filter(|a| a.start > self.lost + DEAD_SLACK && a.ok_from(Node::N1))
            .count()
    }
}

/// Powers n1 off through its BMC while the client probes the VIP; returns once the VIP
/// answered from n2 and n2 is active/running.
fn fail_over(lab: &PairLab) -> Failover {
    let probe = lab.probe(VIP, SIM_PORT, PROBE_MAX_ATTEMPTS, PROBE_MAX_FOR);
    wait_until(WAIT, "the probe to see n1", || {
        probe.attempts().iter().any(|a| a.ok_from(Node::N1))
    });
    let losses_before = off_stamps(lab).len();
    let asked = Instant::now();
    lab.power(Node::N1, false);
    wait_until(WAIT, "n1 to lose power (ipmi_sim's next tick)", || {
        off_stamps(lab).len() > losses_before
    });
    let lost_unix_s = off_stamps(lab)[losses_before];
    let lost = lab.power_loss_times(Node::N1)[losses_before];
    let deadline = lost + FAILOVER_TIMEOUT;
    while Probe::first_ok_from(&probe.attempts(), Node::N2, lost).is_none() {
        if Instant::now() > deadline {
            panic!(
                "pairdemo: the VIP never answered from n2 within {FAILOVER_TIMEOUT:?} of n1's \
                 power loss (n2 is {})\n{}",
                role_of(lab, Node::N2),
                diagnostics(lab)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let attempts = probe.finish();
    wait_role(lab, Node::N2, "active/running");
    lab.wait_power(Node::N1, false, WAIT);
    Failover {
        bmc: lost.saturating_duration_since(asked),
        lost_wall_ms: (lost_unix_s * 1000.0) as u64,
        lost,
        attempts,
        status: status(lab, Node::N2),
    }
}

/// n1's power-loss stamps (unix seconds) from its node script, oldest first.
fn off_stamps(lab: &PairLab) -> Vec<f64> {
    lab.bmc(Node::N1)
        .node_events()
        .into_iter()
        .filter(|(_, kind)| kind == "OFF")
        .map(|(unix_s, _)| unix_s)
        .collect()
}

/// `fencing.last_takeover` as (step, wall ms). Needs `at_ms` (millisecond wall clock) on each
/// step; a step without it is left out.
fn timeline(st: &Value) -> Vec<(String, u64)> {
    st["fencing"]["last_takeover"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .filter_map(|s| Some((s["step"].as_str()?.to_string(), s["at_ms"].as_u64()?)))
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// The demo

fn demo() {
    let say = |s: &str| println!("{s}");
    let lab = PairLab::up("demo");
    configure(&lab, 1000);
    let p = &lab.prefix;
    say("== the pair lab: network namespaces, nothing outside them is touched");
    say(&format!(
        "   {p}sw  the switch (bridge) and both BMCs: ipmi_sim on {} (n1's) and {} (n2's)",
        lab.bmc_addr(Node::N1),
        lab.bmc_addr(Node::N2)
    ));
    for node in Node::BOTH {
        say(&format!(
            "   {}  server {}: eth0 {} (public, heartbeat 1), eth1 {} (direct, heartbeat 2)",
            lab.ns(node),
            node.name(),
            lab.node_addr(node, bbwd_tests::pairlab::Link::Public),
            lab.node_addr(node, bbwd_tests::pairlab::Link::Direct)
        ));
    }
    say(&format!(
        "   {p}cl  the client, {}; the VIP is {VIP}, Bitbucket (the simulator) on :{SIM_PORT}",
        bbwd_tests::pairlab::CLIENT_ADDR
    ));
    say("   a server's \"power\" is its BMC: power on starts bbwd there (which starts the simulator);");
    say("   power off cuts both its links and SIGKILLs everything in it, as a power cut does");
    say("   (heartbeat_interval 200ms, peer_timeout 1s, fencing: IPMI lanplus to the peer's BMC)");
    let sampler = lab.sample_invariants(VIP);
    println!();
    boot_pair(&lab, say);

    println!();
    say("== the pair running: bbwd status on n1, then on n2");
    print_status(&lab, Node::N1);
    print_status(&lab, Node::N2);
    print_get(&lab, "before the fault");

    println!();
    say("== POWER LOSS: `ipmitool chassis power off` to n1's BMC, the client GETting the VIP every 20 ms");
    let f = fail_over(&lab);
    say(&format!(
        "   n1 lost power {:.2} s after the command (ipmi_sim acts at its 1 s tick); times below are from that moment",
        f.bmc.as_secs_f64()
    ));
    println!();
    say("== n2's takeover timeline (bbwd status --json: fencing.last_takeover, at_ms)");
    let steps = timeline(&f.status);
    if steps.is_empty() {
        say("   (no at_ms in fencing.last_takeover: this bbwd reports steps to the second only)");
        say(&format!("   {:#}", f.status["fencing"]["last_takeover"]));
    }
    for (step, at) in &steps {
        say(&format!(
            "   +{:>5} ms  {step}",
            *at as i64 - f.lost_wall_ms as i64
        ));
    }
    let attempts = &f.attempts;
    let last_n1 = attempts
        .iter()
        .filter(|a| a.ok_from(Node::N1))
        .map(|a| a.end)
        .max();
    let first = f.first_answer_from_n2();
    let failed = attempts
        .iter()
        .filter(|a| a.start >= f.lost && a.start < first.start && !a.ok())
        .count();
    say(&format!(
        "   +{:>5} ms  the client's first answer from n2 through the VIP",
        f.failover().as_millis()
    ));
    say("== what the client saw (a GET every 20 ms, 1 s timeout each)");
    if let Some(last) = last_n1 {
        say(&format!(
            "   last answer from n1 at {:+} ms, first from n2 at +{} ms, {failed} requests failed in between; \
             answers from n1 after its power loss: {}",
            signed_ms(last, f.lost),
            f.failover().as_millis(),
            f.answers_from_dead()
        ));
    }
    println!();
    say("== n2's recent events (bbwd status --json: events, RFC 3339 to the second)");
    if let Some(events) = f.status["events"].as_array() {
        let skip = events.len().saturating_sub(10);
        for e in &events[skip..] {
            say(&format!(
                "   {}  {:<16} {}",
                e["at"].as_str().unwrap_or("?"),
                e["kind"].as_str().unwrap_or("?"),
                e["detail"].as_str().unwrap_or("")
            ));
        }
    }
    println!();
    say("== after the takeover: bbwd status on n2, and n1 (its bbwd is gone with its power)");
    print_status(&lab, Node::N2);
    print_status(&lab, Node::N1);
    let out = lab.ipmitool(Node::N1, &["chassis", "power", "status"]);
    say(&format!(
        "   n1's BMC (ipmitool chassis power status): {}",
        String::from_utf8_lossy(&out.stdout).trim()
    ));
    print_get(&lab, "after the takeover");
    println!();
    sampler.assert_at_most_one();
    say(&format!(
        "== at every sample (every 20 ms, {} samples) at most one node held the VIP and at most one ran Bitbucket",
        sampler.samples()
    ));
    drop(sampler);
    say("== cleaning up: BMCs stopped, the lab's processes killed by PID, namespaces deleted");
    drop(lab);
    say("== pair demo done");
}

fn signed_ms(t: Instant, origin: Instant) -> i128 {
    if t >= origin {
        t.duration_since(origin).as_millis() as i128
    } else {
        -(origin.duration_since(t).as_millis() as i128)
    }
}

/// `bbwd status` (human) of a node, indented. Its exit code is the status's (WARNING,
/// CRITICAL), not a failure of the demo.
fn print_status(lab: &PairLab, node: Node) {
    println!(
        "-- {}: bbwd status -c {}",
        node.name(),
        config_path(lab, node).display()
    );
    let out = Command::new(bbwd_bin())
        .args(["status", "-c"])
        .arg(config_path(lab, node))
        .output()
        .expect("run bbwd status");
    for line in String::from_utf8_lossy(&out.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&out.stderr).lines())
    {
        println!("   {line}");
    }
    println!("   (exit status {})", out.status.code().unwrap_or(-1));
}

/// One client GET through the VIP from the client namespace, printed.
fn print_get(lab: &PairLab, when: &str) {
    let a = lab.client_get(VIP, SIM_PORT);
    let what = match (&a.code, &a.node, &a.error) {
        (Some(code), Some(node), _) => format!("HTTP {code} from {node}"),
        (Some(code), None, _) => format!("HTTP {code}"),
        (None, _, Some(e)) => format!("no answer: {e}"),
        (None, _, None) => "no answer".to_string(),
    };
    println!(
        "== client ({when}): GET http://{VIP}:{SIM_PORT}/status from the client namespace: {what} ({} ms)",
        a.end.duration_since(a.start).as_millis()
    );
}

// ---------------------------------------------------------------------------------------------
// The bench

fn bench(peer_timeout_ms: u64, runs: usize) {
    let lab = PairLab::up("bench-failover");
    configure(&lab, peer_timeout_ms);
    let sampler = lab.sample_invariants(VIP);
    let n1_cmd_path = lab.bmc(Node::N1).dir.join("node-cmd.sh");
    let n1_cmd = std::fs::read_to_string(&n1_cmd_path).expect("read n1's node command");
    for run in 1..=runs {
        eprintln!("pairdemo: run {run}/{runs} (peer_timeout {peer_timeout_ms} ms)");
        // ipmi_sim powers nodes on and off at its 1 s tick, and 200 ms heartbeats divide 1 s:
        // without a random start delay n1's last heartbeat would always leave at the same point
        // before its power loss (a phase lock), and detection would always be the worst case.
        let jitter = Duration::from_nanos(u64::from(bbwd_tests::now_since_epoch().subsec_nanos()));
        std::fs::write(
            &n1_cmd_path,
            format!("sleep {:.3}\n{n1_cmd}", jitter.as_secs_f64()),
        )
        .expect("write n1's node command");
        boot_pair(&lab, |s| eprintln!("pairdemo: {s}"));
        // Pair-mode footprint in steady state: the active (n1) and the standby (n2).
        let rss = |node: Node| {
            lab.pids_in(&lab.ns(node))
                .into_iter()
                .find(|p| {
                    std::fs::read(format!("/proc/{p}/comm"))
                        .is_ok_and(|c| c.strip_suffix(b"\n").unwrap_or(&c) == b"bbwd")
                })
                .and_then(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
                .and_then(|st| {
                    st.lines()
                        .find(|l| l.starts_with("VmRSS:"))
                        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                })
                .unwrap_or(0)
        };
        let (rss_active, rss_standby) = (rss(Node::N1), rss(Node::N2));
        let f = fail_over(&lab);
        let detect = f.step_ms("peer lost");
        let at = |step: &str| f.step_ms(step);
        let diff = |a: Option<i64>, b: Option<i64>| match (a, b) {
            (Some(a), Some(b)) => (b - a).to_string(),
            _ => "na".to_string(),
        };
        let failover_ms = f.failover().as_millis() as i64;
        // A peer already off per its BMC is taken over without a fence command (the power
        // query confirms it): then there is no delay and "fence" is the query's round trip.
        let fence_start = at("fence started").or(detect);
        let fence_end = at("fence confirmed").or(at("peer already off"));
        println!(
            "run {run} failover_ms {failover_ms} bmc_ms {} detect_ms {} delay_ms {} fence_ms {} \
             start_ms {} vip_ms {} client_ms {} answers_from_dead_n1 {} rss_active_kib {} \
             rss_standby_kib {}",
            f.bmc.as_millis(),
            diff(Some(0), detect),
            diff(detect, fence_start),
            diff(fence_start, fence_end),
            diff(fence_end, at("bitbucket healthy")),
            diff(at("bitbucket healthy"), at("vip added")),
            diff(at("vip added"), Some(failover_ms)),
            f.answers_from_dead(),
            rss_active,
            rss_standby,
        );
        lab.power_off(Node::N2);
    }
    sampler.assert_at_most_one();
    eprintln!(
        "pairdemo: at most one VIP holder and one Bitbucket in all {} samples",
        sampler.samples()
    );
}
