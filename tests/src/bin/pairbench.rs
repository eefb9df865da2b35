//! `pairbench`: failover measurements on the pair lab (`bbwd_tests::pairlab`), for
//! `scripts/bench-keepalived.sh` (and, later, the same figures for bbwd's pair mode).
//!
//! ```text
//! pairbench keepalived ADVERT_INT VRRP_VERSION RUNS
//! ```
//!
//! Each run: both servers powered on through their BMCs, each running keepalived (started
//! after a random delay below one advert interval, see `jitter`; VRRP on `eth0`, the VIP on
//! `eth0`; n1 MASTER priority 150, n2 BACKUP 100) and a `bbsim --node NAME` bound to the VIP
//! (`ip_nonlocal_bind`); the client probes the VIP every 20 ms (1 s timeout
//! each); n1 is powered off through its BMC (its node script cuts its links, then SIGSTOPs and
//! SIGKILLs everything on it); the failover time is from that power loss to the end of the first
//! request n2 answered. One line per run on stdout:
//! `run N failover_ms F bmc_ms B rss_n1_kib R1 rss_n2_kib R2 answers_from_dead_n1 D`
//! (`bmc_ms`: from `ipmitool chassis power off` to the power loss, ipmi_sim's tick, not counted
//! in `failover_ms`; `D`: requests started over 50 ms after the power loss that n1 answered, a
//! sanity check that must be 0). Progress and errors go to stderr.
//!
//! Must not: run outside the lab's namespaces (everything it starts runs in them, or is the
//! lab's ipmi_sim). A test tool: panics with the lab's logs on failure (the lab is cleaned
//! up by unwinding), exits 64 on a bad command line.

use std::fs;
use std::process;
use std::time::{Duration, Instant};

use bbwd_tests::pairlab::{Node, PairLab, Probe, VIP};
use bbwd_tests::{bbsim_bin, wait_until};

const SIM_PORT: u16 = 8080;
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(20);
/// The power-loss stamp is taken just before the node script cuts the links (a fork or two
/// earlier): a request started within this much after it may still be answered by n1.
const DEAD_SLACK: Duration = Duration::from_millis(50);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match args.as_slice() {
        [mode, advert, version, runs] if mode == "keepalived" => advert
            .parse::<f64>()
            .ok()
            .filter(|a| *a > 0.0)
            .zip(version.parse::<u8>().ok().filter(|v| *v == 2 || *v == 3))
            .zip(runs.parse::<usize>().ok().filter(|r| *r > 0)),
        _ => None,
    };
    let Some(((advert, version), runs)) = parsed else {
        eprintln!("usage: pairbench keepalived ADVERT_INT 2|3 RUNS");
        process::exit(64);
    };
    if !bbwd_tests::pairlab::available() {
        process::exit(1);
    }
    let lab = PairLab::up("bench-ka");
    for run in 1..=runs {
        for node in Node::BOTH {
            write_keepalived(&lab, node, advert, version, jitter(advert));
        }
        measure(&lab, run, advert);
    }
}

/// A delay in [0, advert) from the clock's nanoseconds. ipmi_sim acts at its 1 s tick, both on
/// power on and power off, so without it the adverts would stay phase-locked to the power loss
/// and every run would hit the same point of the advert cycle.
fn jitter(advert: f64) -> Duration {
    let nanos = bbwd_tests::now_since_epoch().subsec_nanos();
    Duration::from_secs_f64(advert * f64::from(nanos % 1000) / 1000.0)
}

fn write_keepalived(lab: &PairLab, node: Node, advert: f64, version: u8, delay: Duration) {
    let dir = lab.dir().display().to_string();
    let name = node.name();
    let (state, prio) = match node {
        Node::N1 => ("MASTER", 150),
        Node::N2 => ("BACKUP", 100),
    };
    let conf = format!(
        "global_defs {{\n    router_id {name}\n}}\n\
         vrrp_instance VI_1 {{\n    state {state}\n    interface eth0\n    virtual_router_id 77\n    \
         priority {prio}\n    advert_int {advert}\n    version {version}\n    \
         virtual_ipaddress {{\n        {VIP}/24 dev eth0\n    }}\n}}\n"
    );
    let conf_path = lab.dir().join(format!("ka-{name}.conf"));
    fs::write(&conf_path, conf).expect("write keepalived config");
    let pids = format!("{dir}/ka-{name}.pid {dir}/ka-{name}-vrrp.pid {dir}/ka-{name}-chk.pid");
    lab.set_node_command(
        node,
        &format!(
            "rm -f {pids}\nsleep {delay:.3}\n\
             keepalived -n -l -D -f {conf} -p {dir}/ka-{name}.pid -r {dir}/ka-{name}-vrrp.pid \
             -c {dir}/ka-{name}-chk.pid &\n\
             exec {bbsim} --dir {dir}/sim-{name} --port {SIM_PORT} --bind {VIP} --node {name}",
            conf = conf_path.display(),
            bbsim = bbsim_bin().display(),
            delay = delay.as_secs_f64(),
        ),
    );
}

/// Resident set of the keepalived processes in `node`'s namespace, KiB.
fn keepalived_rss_kib(lab: &PairLab, node: Node) -> u64 {
    lab.pids_in(&lab.ns(node))
        .into_iter()
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| c.trim() == "keepalived")
                .unwrap_or(false)
        })
        .filter_map(|pid| fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .sum()
}

fn measure(lab: &PairLab, run: usize, advert: f64) {
    eprintln!("pairbench: run {run}: powering on n1, then n2");
    lab.power_on(Node::N1);
    wait_until(SETTLE_TIMEOUT, "the VIP to answer from n1", || {
        lab.client_get(VIP, SIM_PORT).ok_from(Node::N1)
    });
    lab.power_on(Node::N2);
    // n2 must have heard n1's adverts and settled as BACKUP: a few advert intervals.
    std::thread::sleep(Duration::from_secs_f64(advert * 4.0 + 1.0));
    let holders = lab.vip_holder(VIP);
    if holders != vec![Node::N1] {
        fail(
            lab,
            &format!("before the fault the VIP is on {holders:?}, not n1 alone"),
        );
    }
    let rss = [
        keepalived_rss_kib(lab, Node::N1),
        keepalived_rss_kib(lab, Node::N2),
    ];
    let probe = lab.probe(VIP, SIM_PORT, 5000, Duration::from_secs(60));
    wait_until(SETTLE_TIMEOUT, "the probe to see n1", || {
        probe.attempts().iter().any(|a| a.ok_from(Node::N1))
    });
    let losses_before = lab.power_loss_times(Node::N1).len();
    let asked = Instant::now();
    lab.power(Node::N1, false);
    wait_until(SETTLE_TIMEOUT, "n1 to lose power", || {
        lab.power_loss_times(Node::N1).len() > losses_before
    });
    let lost = lab.power_loss_times(Node::N1)[losses_before];
    let deadline = Instant::now() + FAILOVER_TIMEOUT;
    while Probe::first_ok_from(&probe.attempts(), Node::N2, lost).is_none() {
        if Instant::now() > deadline {
            fail(lab, "the VIP never answered from n2");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let attempts = probe.finish();
    let first = Probe::first_ok_from(&attempts, Node::N2, lost).expect("seen above");
    let failover_ms = first.end.duration_since(lost).as_secs_f64() * 1000.0;
    let bmc_ms = lost.saturating_duration_since(asked).as_secs_f64() * 1000.0;
    let from_dead = attempts
        .iter()
        .filter(|a| a.start > lost + DEAD_SLACK && a.ok_from(Node::N1))
        .count();
    println!(
        "run {run} failover_ms {failover_ms:.0} bmc_ms {bmc_ms:.0} rss_n1_kib {} rss_n2_kib {} \
         answers_from_dead_n1 {from_dead}",
        rss[0], rss[1]
    );
    lab.power_off(Node::N2);
}

/// Panics with the lab's logs: unwinding drops the lab, which cleans everything up.
fn fail(lab: &PairLab, what: &str) -> ! {
    panic!("pairbench: {what}\n{}", lab.diagnostics());
}
