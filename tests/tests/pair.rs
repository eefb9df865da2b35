//! The cold-standby pair end to end: two real `bbwd run` in the pair lab (network namespaces,
//! a real ipmi_sim BMC per node whose power is that node), Bitbucket simulators bound to the VIP.
//! At every moment at most one node holds the VIP and at most one runs Bitbucket (sampled every
//! 20 ms by the lab).
//!
//! Needs root, iproute2, ipmi_sim and ipmitool; under `CI` their absence fails the test.

use bbwd_tests::pairlab::{self, Node, PairLab, VIP};
use bbwd_tests::pairnode::{answered_by, diagnostics, set_up_node, status, wait_role, WAIT};
use bbwd_tests::wait_until;

#[test]
#[ignore = "needs root, iproute2, ipmi_sim and ipmitool: the namespace pair lab"]
fn cold_start_then_the_active_loses_power_and_the_standby_fences_and_takes_over() {
    if !pairlab::available() {
        return;
    }
    let lab = PairLab::up("pair");
    for n in Node::BOTH {
        set_up_node(&lab, n);
    }
    let sampler = lab.sample_invariants(VIP);

    // Cold start of both: the preferred node serves, the other stands by; no fence needed
    // (each hears the other say it does not serve).
    lab.power_on(Node::N1);
    lab.power_on(Node::N2);
    wait_role(&lab, Node::N1, "active/running");
    wait_role(&lab, Node::N2, "standby/stopped");
    wait_until(WAIT, "the VIP to answer from n1", || {
        answered_by(&lab, VIP, Node::N1)
    });
    assert_eq!(lab.vip_holder(VIP), vec![Node::N1]);
    let st = status(&lab, Node::N2);
    assert_eq!(st["peer"]["alive"], true, "{st:#}");
    assert_eq!(st["peer"]["links_up"], 2, "{st:#}");
    assert_eq!(st["vip"]["held"], false, "{st:#}");

    // The active node loses power (through its BMC, as a power cut would): the standby notices,
    // fences it (confirmed off: it is), and takes over; the VIP answers from n2.
    lab.power_off(Node::N1);
    wait_role(&lab, Node::N2, "active/running");
    wait_until(WAIT, "the VIP to answer from n2", || {
        answered_by(&lab, VIP, Node::N2)
    });
    let st = status(&lab, Node::N2);
    let kinds: Vec<&str> = st["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    let pos = |k: &str| kinds.iter().position(|x| *x == k);
    let (fenced, active) = (pos("fenced"), pos("active"));
    assert!(
        fenced.is_some() && active.is_some() && fenced < active,
        "fence confirmed before serving: {kinds:?}"
    );
    assert!(
        !st["fencing"]["last_takeover"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{st:#}"
    );

    sampler.assert_at_most_one();
    assert!(sampler.samples() > 50, "the sampler ran");
    drop(sampler);
    let _ = diagnostics;
}
