//! Failover baseline: keepalived (Debian's, VRRP) on the pair lab (BENCHMARKS.md, "Pair:
//! baseline for failover (keepalived)"), the figure bbwd's pair mode is measured against
//! ([`super::failover`] runs this after its own runs, on the same machine at the same time).
//!
//! The lab (`pairlab`): two servers, a switch and a client in network namespaces, each server
//! powered through a real BMC (ipmi_sim). Each server runs keepalived (VRRP on eth0, the VIP
//! 10.77.0.50 on eth0; n1 MASTER priority 150, n2 BACKUP 100) and a `bbsim --node NAME` bound to
//! the VIP (`ip_nonlocal_bind`); the client GETs the VIP every 20 ms (1 s timeout each). Per run
//! n1 is powered off through its BMC: its node script cuts its links, then SIGSTOPs and SIGKILLs
//! everything on it (a power loss: nothing graceful, no priority-0 advert). Failover = from that
//! moment to the end of the first request n2 answered. keepalived's RSS is the sum over its
//! processes on a node, before the fault. keepalived starts after a random delay below one
//! advert interval (see `jitter`), so the power loss lands at a random point of the advert
//! cycle.
//!   * `advert_int 1`   (VRRPv2, keepalived's default)
//!   * `advert_int 0.2` (VRRPv3: sub-second adverts need version 3)
//!
//! `BENCH_KA_RUNS` runs each (default 10), each configuration on a fresh lab. Needs root.
//! (Formerly the test-only binary `pairbench`.)

use std::fmt::Write as _;
use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use super::{knob, require_tools, say, Ctx, Summary, Table};
use crate::pairlab::{Node, PairLab, Probe, VIP};
use crate::{bbsim_bin, wait_until};

const SIM_PORT: u16 = 8080;
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(20);
/// The power-loss stamp is taken just before the node script cuts the links (a fork or two
/// earlier): a request started within this much after it may still be answered by n1.
const DEAD_SLACK: Duration = Duration::from_millis(50);

/// One run (`bmc_ms`: from `ipmitool chassis power off` to the power loss, ipmi_sim's tick, not
/// counted in `failover_ms`; `answers_from_dead`: requests started over 50 ms after the power
/// loss that n1 answered, a sanity check that must be 0).
struct KaRun {
    failover_ms: f64,
    bmc_ms: f64,
    rss_kib: [u64; 2],
    answers_from_dead: usize,
}

impl KaRun {
    fn line(&self) -> String {
        format!(
            "failover_ms {:.0} bmc_ms {:.0} rss_n1_kib {} rss_n2_kib {} answers_from_dead_n1 {}",
            self.failover_ms, self.bmc_ms, self.rss_kib[0], self.rss_kib[1], self.answers_from_dead
        )
    }
}

pub fn run(_ctx: &Ctx, _args: &[String]) -> String {
    let runs: usize = knob("BENCH_KA_RUNS", 10);
    assert!(runs > 0, "BENCH_KA_RUNS: at least 1");
    measure_all(runs)
}

/// Both configurations, `runs` runs each: the report.
pub fn measure_all(runs: usize) -> String {
    require_tools(&["keepalived"]);
    crate::pairlab::available();
    say("keepalived", &format!("advert_int 1 (VRRPv2), {runs} runs"));
    let v2 = series(1.0, 2, runs);
    say(
        "keepalived",
        &format!("advert_int 0.2 (VRRPv3), {runs} runs"),
    );
    let v3 = series(0.2, 3, runs);
    let mut t = Table::new(&[
        &format!("keepalived {}", keepalived_version()),
        "failover, median",
        "range",
        "RSS per node n1 / n2 (median)",
        "runs",
        "answers from n1 after its power loss",
    ]);
    for (label, set) in [
        ("advert_int 1, VRRPv2", &v2),
        ("advert_int 0.2, VRRPv3", &v3),
    ] {
        let f = Summary::of(set.iter().map(|r| r.failover_ms));
        let r1 = Summary::of(set.iter().map(|r| r.rss_kib[0] as f64));
        let r2 = Summary::of(set.iter().map(|r| r.rss_kib[1] as f64));
        let (Some(f), Some(r1), Some(r2)) = (f, r1, r2) else {
            t.row([label, "no data"]);
            continue;
        };
        t.row([
            label.to_string(),
            format!("**{:.2} s**", f.median() / 1000.0),
            format!("{:.2} - {:.2} s", f.min() / 1000.0, f.max() / 1000.0),
            format!(
                "{:.1} / {:.1} MiB",
                r1.median() / 1024.0,
                r2.median() / 1024.0
            ),
            set.len().to_string(),
            set.iter()
                .map(|r| r.answers_from_dead)
                .sum::<usize>()
                .to_string(),
        ]);
    }
    let mut report = t.render();
    report.push_str(
        "\nRaw runs (failover_ms, bmc_ms = ipmi_sim's delay before the power loss, not \
         counted):\n\n",
    );
    for (label, set) in [("v2", &v2), ("v3", &v3)] {
        for (i, r) in set.iter().enumerate() {
            let _ = writeln!(report, "    {label} run {} {}", i + 1, r.line());
        }
    }
    report
}

/// `runs` failovers with keepalived at `advert` s, VRRP `version`, on a fresh lab.
fn series(advert: f64, version: u8, runs: usize) -> Vec<KaRun> {
    let lab = PairLab::up("bench-ka");
    (1..=runs)
        .map(|run| {
            for node in Node::BOTH {
                write_keepalived(&lab, node, advert, version, jitter(advert));
            }
            measure(&lab, run, advert)
        })
        .collect()
}

fn keepalived_version() -> String {
    Command::new("keepalived")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            Some(text.lines().next()?.split_whitespace().nth(1)?.to_string())
        })
        .unwrap_or_else(|| "?".to_string())
}

/// A delay in [0, advert) from the clock's nanoseconds. ipmi_sim acts at its 1 s tick, both on
/// power on and power off, so without it the adverts would stay phase-locked to the power loss
/// and every run would hit the same point of the advert cycle.
fn jitter(advert: f64) -> Duration {
    let nanos = crate::now_since_epoch().subsec_nanos();
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

fn measure(lab: &PairLab, run: usize, advert: f64) -> KaRun {
    say("keepalived", &format!("run {run}: powering on n1, then n2"));
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
    lab.power_off(Node::N2);
    let r = KaRun {
        failover_ms: failover_ms.round(),
        bmc_ms: bmc_ms.round(),
        rss_kib: rss,
        answers_from_dead: from_dead,
    };
    say("keepalived", &format!("run {run}: {}", r.line()));
    r
}

/// Panics with the lab's logs: unwinding drops the lab, which cleans everything up.
fn fail(lab: &PairLab, what: &str) -> ! {
    panic!("keepalived: {what}\n{}", lab.diagnostics());
}
