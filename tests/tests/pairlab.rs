//! The pair lab itself (`bbwd_tests::pairlab`), before any pair scenario relies on it: a node
//! powered through its real BMC (ipmi_sim) runs its command in its own namespace and serves the
//! client; a power-off through the BMC kills its processes at once and cuts its links; a
//! power-on boots it clean (no address left from its previous life); the peer's namespace
//! reaches the BMC; the invariant sampler sees two VIP holders when there are two; and the lab
//! leaves no namespace and no process behind.
//!
//! Needs root, iproute2, ipmi_sim and ipmitool; under `CI` their absence fails the test.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bbwd_tests::pairlab::{self, Link, Node, PairLab, Probe, VIP};
use bbwd_tests::{bbsim_bin, pid_alive, same_process_alive, start_ticks, wait_until};

const SIM_PORT: u16 = 8080;
/// Generous bounds: the machine is shared; ipmi_sim acts at its 1 s tick.
const SERVE_TIMEOUT: Duration = Duration::from_secs(15);
const POWER_TIMEOUT: Duration = Duration::from_secs(10);

fn bbsim_command(lab: &PairLab, node: Node, bind: Ipv4Addr) -> String {
    format!(
        "exec {} --dir {}/sim-{} --port {SIM_PORT} --bind {bind} --node {}",
        bbsim_bin().display(),
        lab.dir().display(),
        node.name(),
        node.name()
    )
}

/// Processes whose command line names `dir` (the lab's directory: its BMCs, node scripts and
/// simulators all do).
fn processes_naming(dir: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(dir) && pid_alive(pid) {
            pids.push(pid);
        }
    }
    pids
}

fn netns_list() -> String {
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "needs root, iproute2, ipmi_sim and ipmitool: the namespace pair lab"]
fn power_through_the_bmc_runs_serves_kills_and_cuts_the_node() {
    if !pairlab::available() {
        return;
    }
    let lab = PairLab::up("selftest");
    let prefix = lab.prefix.clone();
    let dir = lab.dir().display().to_string();
    let n1_addr = lab.node_addr(Node::N1, Link::Public);
    lab.set_node_command(Node::N1, &bbsim_command(&lab, Node::N1, n1_addr));
    lab.set_node_command(Node::N2, "exec sleep 1000");
    let sampler = lab.sample_invariants(VIP);

    // Both start powered off, and the BMCs say so.
    assert!(!lab.node_on(Node::N1) && !lab.node_on(Node::N2));
    assert!(!lab.power_state(Node::N1), "n1 starts off");
    assert!(
        !lab.switch_port_up(Node::N1),
        "an off node's switch port is down"
    );

    // Power on n1: its bbsim answers the client, from n1.
    lab.power_on(Node::N1);
    assert!(lab.power_state(Node::N1), "BMC says on");
    wait_until(SERVE_TIMEOUT, "n1's bbsim to answer the client", || {
        lab.client_get(n1_addr, SIM_PORT).ok_from(Node::N1)
    });
    assert!(lab.link_up(Node::N1, Link::Public), "n1 eth0 up");
    // With their start times: a PID that comes round again after the power loss is not n1's.
    let n1_pids: Vec<(u32, Option<u64>)> = lab
        .pids_in(&lab.ns(Node::N1))
        .into_iter()
        .map(|pid| (pid, start_ticks(pid)))
        .collect();
    assert!(!n1_pids.is_empty(), "n1 runs its command in its namespace");

    // Power on n2: from n2's namespace its peer's BMC answers (the fencing path), and the
    // direct link has carrier now that both ends are powered.
    lab.power_on(Node::N2);
    let out = lab.ipmitool_from(&lab.ns(Node::N2), Node::N1, &["chassis", "power", "status"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Chassis Power is on"),
        "n2 reaches n1's BMC: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until(SERVE_TIMEOUT, "the direct link to have carrier", || {
        lab.link_up(Node::N1, Link::Direct) && lab.link_up(Node::N2, Link::Direct)
    });

    // n1 takes a VIP (by hand here), then loses power while the client probes it.
    let vip_cidr = format!("{VIP}/24");
    let add = lab.exec_in(Node::N1, &format!("ip addr add {vip_cidr} dev eth0"));
    assert!(add.status.success(), "add VIP on n1");
    assert_eq!(lab.vip_holder(VIP), vec![Node::N1]);
    let probe = lab.probe(n1_addr, SIM_PORT, 1000, Duration::from_secs(20));
    wait_until(SERVE_TIMEOUT, "the probe to see n1", || {
        probe.attempts().iter().any(|a| a.ok_from(Node::N1))
    });
    lab.power(Node::N1, false);
    let off_requested = Instant::now();
    lab.wait_power(Node::N1, false, POWER_TIMEOUT);
    let gone = Instant::now();
    let losses = lab.power_loss_times(Node::N1);
    assert_eq!(losses.len(), 1, "one power loss recorded");
    assert!(losses[0] >= off_requested - Duration::from_millis(50) && losses[0] <= gone);
    for &(pid, ticks) in &n1_pids {
        assert!(
            !same_process_alive(pid, ticks),
            "n1's process {pid} survived its power loss"
        );
    }
    assert!(!lab.power_state(Node::N1), "BMC says off");
    assert!(!lab.switch_port_up(Node::N1), "n1's switch port is cut");
    assert!(
        !lab.link_up(Node::N2, Link::Direct),
        "n2 lost carrier on eth1"
    );
    // The dead node still has its addresses (as a dead machine would), unreachable.
    assert_eq!(lab.vip_holder(VIP), vec![Node::N1]);
    let attempt = lab.client_get(n1_addr, SIM_PORT);
    assert!(
        !attempt.ok(),
        "n1 unreachable after power loss: {attempt:?}"
    );
    std::thread::sleep(Duration::from_millis(300));
    let attempts = probe.finish();
    assert!(
        attempts
            .iter()
            .any(|a| a.ok_from(Node::N1) && a.start < off_requested),
        "the probe saw n1 before the power-off"
    );
    let after: Vec<_> = attempts.iter().filter(|a| a.start > gone).collect();
    assert!(!after.is_empty(), "the probe ran after the power loss");
    assert!(
        after.iter().all(|a| !a.ok()),
        "nothing answers from a powered-off node: {after:?}"
    );

    // Power on again: a clean boot (no VIP from the previous life), serving again.
    lab.power_on(Node::N1);
    wait_until(SERVE_TIMEOUT, "n1's bbsim to answer again", || {
        lab.client_get(n1_addr, SIM_PORT).ok_from(Node::N1)
    });
    assert!(
        lab.vip_holder(VIP).is_empty(),
        "a rebooted node holds no VIP"
    );
    assert!(lab.link_up(Node::N2, Link::Direct), "direct link back");
    assert_eq!(lab.bmc(Node::N1).node_starts(), 2);
    assert!(
        Probe::first_ok_from(&attempts, Node::N2, off_requested).is_none(),
        "n2 runs no bbsim"
    );

    // The real invariants held (one bbsim, at most one VIP holder)...
    sampler.assert_at_most_one();
    assert_eq!(sampler.max_running(), 1, "the sampler saw n1's bbsim");
    assert_eq!(sampler.max_holders(), 1, "the sampler saw the VIP on n1");
    assert_eq!(sampler.errors(), 0);
    drop(sampler);
    // ...and the sampler can see them broken.
    let broken = lab.sample_invariants(VIP);
    for node in Node::BOTH {
        let out = lab.exec_in(node, &format!("ip addr add {vip_cidr} dev eth0"));
        assert!(out.status.success(), "add VIP on {}", node.name());
    }
    wait_until(SERVE_TIMEOUT, "the sampler to see two holders", || {
        broken.max_holders() == 2
    });
    assert!(!broken.violations().is_empty());
    drop(broken);

    // Nothing survives the lab.
    let bmc_pids: Vec<u32> = Node::BOTH.iter().map(|n| lab.bmc(*n).pid()).collect();
    assert!(
        !processes_naming(&dir).is_empty(),
        "the lab's processes name its directory"
    );
    drop(lab);
    for pid in bmc_pids {
        assert!(!pid_alive(pid), "ipmi_sim {pid} survived the lab");
    }
    assert_eq!(processes_naming(&dir), Vec::<u32>::new(), "processes left");
    let left = netns_list();
    assert!(!left.contains(&prefix), "namespaces left: {left}");
}
