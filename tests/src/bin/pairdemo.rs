//! `pairdemo`: the cold-standby pair shown on the pair lab (`bbwd_tests::pairlab`: two servers,
//! a switch and a client in network namespaces, each server powered through a real BMC,
//! `ipmi_sim`, whose power-off also cuts the server's links). The second half of
//! `scripts/demo.sh`; its failover is measured by the same sequence in `bench failover`
//! (`bbwd_tests::bench::failover`).
//!
//! The sequence (`bbwd_tests::pairnode::{boot_pair, fail_over}`): n1 powered on through its BMC
//! alone (its peer is silent, so it fences n2, which is off: confirmed at once, and takes over),
//! then n2 (it hears n1 serve and stands by), the client probing the VIP every 20 ms, then n1
//! powered off through its BMC. The demo prints what happens: `bbwd status` of both nodes, n2's
//! takeover timeline in ms after the power loss, what the client saw.
//!
//! Must not: act outside the lab (everything runs in its namespaces or is its ipmi_sim).
//!
//! # Invariants
//! * Every wait is bounded (`pairnode::WAIT`, `pairnode::FAILOVER_TIMEOUT`, the probe's own
//!   bounds).
//! * A test tool: on failure it panics with the lab's diagnostics, and unwinding drops the lab,
//!   which stops the BMCs, kills what ran in its namespaces by PID and deletes them; on success
//!   the lab is dropped the same way. Exit 64 on a bad command line, 1 when the lab cannot run
//!   here (not root, tools missing), 101 on a failed step.
//! * It asserts the lab's invariant (at most one VIP holder, at most one Bitbucket, every 20 ms)
//!   at the end.

use std::process::{self, Command};
use std::time::Instant;

use bbwd_tests::bbwd_bin;
use bbwd_tests::pairlab::{Node, PairLab, VIP};
use bbwd_tests::pairnode::{boot_pair, config_path, configure_pair, fail_over, timeline, SIM_PORT};

fn main() {
    if std::env::args().len() > 1 {
        eprintln!("usage: pairdemo    (its failover figures: scripts/bench.sh failover)");
        process::exit(64);
    }
    if !bbwd_tests::pairlab::available() {
        process::exit(1);
    }
    demo();
}

// ---------------------------------------------------------------------------------------------
// The demo

fn demo() {
    let say = |s: &str| println!("{s}");
    let lab = PairLab::up("demo");
    configure_pair(&lab, 1000);
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
