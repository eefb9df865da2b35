//! Pair mode's operator and security scenarios end to end, each in its own pair lab (two real
//! `bbwd run` in network namespaces, a real ipmi_sim BMC per node, Bitbucket simulators bound
//! to the VIP): a peer whose BMC cannot be reached (no takeover, CRITICAL, then the operator's
//! `bbwd confirm-peer-down`), `bbwd switchover` refused and accepted, and forged or replayed
//! heartbeat datagrams sent from the client namespace (dropped by class, nothing else changes).
//!
//! Outcomes are read through `bbwd status --json` and its exit code, the daemons' events, the
//! VIP's holder and the client; every scenario ends with the lab's invariant sampler ("at most
//! one VIP holder and one Bitbucket at every 20 ms sample"). No timing is asserted: every wait
//! is a generous bound.
//!
//! The forged datagrams are built with the agent's own codec (`bbwd_core::heartbeat`).
//! A real heartbeat to replay is captured with a packet socket inside the receiving node's
//! namespace.
//!
//! Must not: send anything outside the lab's namespaces (datagrams leave from the client
//! namespace or are captured inside a node's), or end processes other than those inside the
//! lab's namespaces, by PID. Needs root, iproute2, ipmi_sim and ipmitool; under `CI` their
//! absence fails the test.

use bbwd_core::heartbeat;

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use bbwd_tests::pairlab::{self, Link, Node, PairLab, VIP};
use bbwd_tests::pairnode::{
    answered_by, config_path, diagnostics, set_up_node, status, wait_role, HB_PORT, WAIT,
};
use bbwd_tests::{bbwd_bin, wait_until};
use heartbeat::{Flags, Health, Heartbeat, Key, NodeName, Role, State, PACKET_BYTES};
use serde_json::Value;

/// `bbwd status` exit codes (SPEC).
const WARNING: i32 = 1;
const CRITICAL: i32 = 2;

/// Runs `bbwd ARGS -c <node's config>` from the test's namespace (the control socket is a path).
fn bbwd(lab: &PairLab, node: Node, args: &[&str]) -> Output {
    Command::new(bbwd_bin())
        .args(args)
        .arg("-c")
        .arg(config_path(lab, node))
        .output()
        .expect("run bbwd")
}

/// `bbwd status --json`: exit code and report.
fn status_with_code(lab: &PairLab, node: Node) -> (i32, Value) {
    let out = bbwd(lab, node, &["status", "--json"]);
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), v)
}

fn event_kinds(st: &Value) -> Vec<String> {
    st["events"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["kind"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn count_kind(st: &Value, kind: &str) -> usize {
    event_kinds(st).iter().filter(|k| *k == kind).count()
}

/// Both nodes configured and powered on; n1 (preferred) serves, n2 stands by, the VIP answers
/// from n1.
fn cold_start(lab: &PairLab) {
    for n in Node::BOTH {
        set_up_node(lab, n);
    }
    lab.power_on(Node::N1);
    lab.power_on(Node::N2);
    wait_role(lab, Node::N1, "active/running");
    wait_role(lab, Node::N2, "standby/stopped");
    wait_until(WAIT, "the VIP to answer from n1", || {
        answered_by(lab, VIP, Node::N1)
    });
}

/// Panics (with the lab's diagnostics) unless `cond` holds within [`WAIT`].
fn wait_for(lab: &PairLab, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for {what}\n{}",
            diagnostics(lab)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------------
// 1. The peer's BMC is unreachable

#[test]
#[ignore = "needs root, iproute2, ipmi_sim and ipmitool: the namespace pair lab"]
fn a_peer_whose_bmc_is_unreachable_is_not_taken_over_until_the_operator_confirms_it_is_down() {
    if !pairlab::available() {
        return;
    }
    let lab = PairLab::up("op-bmc");
    let sampler = lab.sample_invariants(VIP);
    cold_start(&lab);
    let (code, st) = status_with_code(&lab, Node::N2);
    assert_eq!(code, 0, "a healthy standby is OK: {st:#}");
    assert_eq!(st["fencing"]["session_up"], true, "{st:#}");
    // An operator's confirmation means nothing while the peer is heard: refused, no move.
    let out = bbwd(&lab, Node::N2, &["confirm-peer-down"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "confirm-peer-down with n1 alive"
    );
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(
        why.contains("no takeover is waiting"),
        "a clear reason: {why}"
    );
    assert_eq!(status(&lab, Node::N2)["role"], "standby");
    assert_eq!(lab.vip_holder(VIP), vec![Node::N1]);

    // n1's BMC stops answering (frozen mid-session): n2's keep-alive finds the session down,
    // a WARNING (a fence would fail), while n1 goes on serving.
    lab.bmc(Node::N1).freeze();
    wait_for(&lab, "n2 to see n1's BMC session down", || {
        status(&lab, Node::N2)["fencing"]["session_up"] == false
    });
    let (code, st) = status_with_code(&lab, Node::N2);
    assert_eq!(code, WARNING, "BMC session down is a WARNING: {st:#}");
    assert!(
        st["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["kind"] == "fencing_bmc_down")),
        "and an event: {st:#}"
    );
    assert_eq!(st["fencing"]["blocked"], false, "{st:#}");
    assert_eq!(st["role"], "standby", "{st:#}");

    // Now n1 dies without its BMC knowing (the BMC, frozen, still says "on"): every process
    // in its namespace frozen and killed first (so its bbwd cannot release anything), then
    // both links cut.
    kill_all_in(&lab, &lab.ns(Node::N1));
    lab.set_link(Node::N1, Link::Public, false);
    lab.set_link(Node::N1, Link::Direct, false);
    // The dead machine still has the VIP configured, unreachable behind its cut link. It is
    // not a holder any more (nothing can answer from it): take it off, so that the sampler
    // counts only holders that can answer.
    assert_eq!(
        lab.vip_holder(VIP),
        vec![Node::N1],
        "n1 died holding the VIP"
    );
    let out = lab.exec_in(Node::N1, &format!("ip addr del {VIP}/24 dev eth0"));
    assert!(out.status.success(), "remove the dead n1's VIP: {out:?}");

    // n2 must not take over: it tries to fence, fails, is blocked (CRITICAL), and retries with
    // backoff. Throughout: no VIP and no Bitbucket on n2.
    let mut seen = Value::Null;
    wait_for(&lab, "n2 to be blocked with two failed fences", || {
        let (code, st) = status_with_code(&lab, Node::N2);
        assert_ne!(st["role"], "active", "n2 took over unfenced: {st:#}");
        assert_eq!(st["vip"]["held"], false, "n2 took the VIP unfenced: {st:#}");
        assert!(
            st["bitbucket"]["pid"].is_null(),
            "n2 started Bitbucket unfenced: {st:#}"
        );
        let procs = lab.pids_in(&lab.ns(Node::N2));
        assert_eq!(procs.len(), 1, "only n2's bbwd runs on n2: {procs:?}");
        let done = code == CRITICAL
            && st["fencing"]["blocked"] == true
            && count_kind(&st, "fence_failed") >= 2;
        seen = st;
        done
    });
    assert_eq!(seen["state"], "fencing", "{seen:#}");
    assert!(lab.vip_holder(VIP).is_empty(), "nobody holds the VIP");
    assert!(!answered_by(&lab, VIP, Node::N2));
    let details: Vec<&str> = seen["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "fence_failed")
        .filter_map(|e| e["detail"].as_str())
        .collect();
    // Retried with a growing backoff ("...; retry in 1s; ...", then 2s, ...).
    let waits: Vec<&str> = details
        .iter()
        .filter_map(|d| d.split("retry in ").nth(1))
        .filter_map(|rest| rest.split(';').next())
        .collect();
    assert!(waits.len() >= 2, "failed fences are retried: {details:?}");
    assert_ne!(waits[0], waits[1], "with backoff: {details:?}");

    // The operator's word: n2 takes over, the VIP answers from n2.
    let out = bbwd(&lab, Node::N2, &["confirm-peer-down"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "confirm-peer-down: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    wait_role(&lab, Node::N2, "active/running");
    wait_for(&lab, "the VIP to answer from n2", || {
        answered_by(&lab, VIP, Node::N2)
    });
    let (code, st) = status_with_code(&lab, Node::N2);
    assert_eq!(st["fencing"]["blocked"], false, "{st:#}");
    assert_ne!(code, CRITICAL, "{st:#}");
    let kinds = event_kinds(&st);
    let pos = |k: &str| kinds.iter().position(|x| x == k);
    assert!(
        pos("peer_confirmed_down").is_some() && pos("peer_confirmed_down") < pos("active"),
        "operator's confirmation before serving: {kinds:?}"
    );
    assert!(
        !kinds.iter().any(|k| k == "fenced"),
        "never fenced: {kinds:?}"
    );

    lab.bmc(Node::N1).thaw();
    sampler.assert_at_most_one();
    assert_eq!(sampler.max_holders(), 1, "the sampler saw the VIP");
    assert_eq!(sampler.errors(), 0);
}

/// SIGKILLs every process in namespace `ns` (frozen first, as the lab's power loss does).
fn kill_all_in(lab: &PairLab, ns: &str) {
    let pids = lab.pids_in(ns);
    for sig in [libc::SIGSTOP, libc::SIGKILL] {
        for pid in &pids {
            // SAFETY: kill(2) on a PID listed inside the lab's own namespace; no memory involved.
            unsafe { libc::kill(*pid as libc::pid_t, sig) };
        }
    }
    wait_until(WAIT, "the cut-off node's processes to be gone", || {
        lab.pids_in(ns).is_empty()
    });
}

// ---------------------------------------------------------------------------------------------
// 2. Switchover

#[test]
#[ignore = "needs root, iproute2, ipmi_sim and ipmitool: the namespace pair lab"]
fn switchover_is_refused_unless_the_peer_is_a_healthy_standby_and_then_moves_the_service() {
    if !pairlab::available() {
        return;
    }
    let lab = PairLab::up("op-switch");
    let sampler = lab.sample_invariants(VIP);
    cold_start(&lab);

    // Refused on the standby itself.
    let out = bbwd(&lab, Node::N2, &["switchover"]);
    assert_eq!(out.status.code(), Some(1), "switchover on the standby");
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(why.contains("not active"), "{why}");
    // ...and a confirmation asked next gets its own reason, not the switchover's.
    let out = bbwd(&lab, Node::N2, &["confirm-peer-down"]);
    let why = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "confirm-peer-down on the standby"
    );
    assert!(why.contains("no takeover is waiting"), "{why}");

    // Refused while the peer is in maintenance (not a healthy standby): nothing moves.
    let out = bbwd(&lab, Node::N2, &["maintenance", "on", "--reason", "test"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    wait_for(&lab, "n1 to hear n2 is in maintenance", || {
        status(&lab, Node::N1)["peer"]["state"] == "maintenance"
    });
    let out = bbwd(&lab, Node::N1, &["switchover"]);
    let why = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "switchover to a peer in maintenance: {why}"
    );
    assert!(
        why.contains("not a healthy standby"),
        "a clear reason: {why}"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(status(&lab, Node::N1)["role"], "active");
    assert_eq!(lab.vip_holder(VIP), vec![Node::N1]);
    assert!(answered_by(&lab, VIP, Node::N1));

    // The peer powered off: n1 fences it (confirmed off) and keeps serving; refused too.
    let out = bbwd(&lab, Node::N2, &["maintenance", "off"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    lab.power_off(Node::N2);
    wait_for(&lab, "n1 to see its peer gone", || {
        status(&lab, Node::N1)["peer"]["alive"] == false
    });
    let out = bbwd(&lab, Node::N1, &["switchover"]);
    let why = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "switchover to a dead peer: {why}"
    );
    assert!(
        why.contains("not a healthy standby"),
        "a clear reason: {why}"
    );
    assert_eq!(status(&lab, Node::N1)["role"], "active");
    assert!(answered_by(&lab, VIP, Node::N1));

    // The peer back as a healthy standby: accepted. n1 releases, n2 takes over unfenced.
    lab.power_on(Node::N2);
    wait_role(&lab, Node::N2, "standby/stopped");
    wait_for(&lab, "n1 to hear a healthy standby", || {
        let st = status(&lab, Node::N1);
        st["peer"]["alive"] == true && st["peer"]["role"] == "standby"
    });
    let fenced_before = count_kind(&status(&lab, Node::N2), "fenced");
    let probe = lab.probe(VIP, bbwd_tests::pairnode::SIM_PORT, 5000, WAIT);
    wait_for(&lab, "the probe to see n1", || {
        probe.attempts().iter().any(|a| a.ok_from(Node::N1))
    });
    let asked = Instant::now();
    let out = bbwd(&lab, Node::N1, &["switchover"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "switchover to a healthy standby: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    wait_role(&lab, Node::N2, "active/running");
    wait_role(&lab, Node::N1, "standby/stopped");
    wait_for(&lab, "the VIP to answer from n2", || {
        answered_by(&lab, VIP, Node::N2)
    });
    wait_for(&lab, "the probe to see n2", || {
        probe
            .attempts()
            .iter()
            .any(|a| a.start >= asked && a.ok_from(Node::N2))
    });
    let attempts = probe.finish();
    assert!(
        attempts
            .iter()
            .any(|a| a.start >= asked && a.ok_from(Node::N2)),
        "the probe saw n2 after the move"
    );
    assert_eq!(lab.vip_holder(VIP), vec![Node::N2]);
    let st2 = status(&lab, Node::N2);
    assert_eq!(
        count_kind(&st2, "fenced"),
        fenced_before,
        "a switchover takes over without fencing: {st2:#}"
    );
    assert!(
        !event_kinds(&st2)
            .iter()
            .any(|k| k == "fence" || k == "fence_failed"),
        "{st2:#}"
    );
    let st1 = status(&lab, Node::N1);
    assert!(count_kind(&st1, "release") >= 1, "n1 released: {st1:#}");
    // Stays that way (n1, preferred, does not take it back).
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(status(&lab, Node::N1)["role"], "standby");
    assert!(answered_by(&lab, VIP, Node::N2));

    sampler.assert_at_most_one();
    assert_eq!(sampler.max_holders(), 1, "the sampler saw the VIP");
    assert_eq!(sampler.errors(), 0);
}

// ---------------------------------------------------------------------------------------------
// 3. Forged and replayed heartbeats

/// Sends each datagram to `to` from a UDP socket opened in namespace `ns`.
fn send_from(ns: &str, to: SocketAddr, datagrams: Vec<Vec<u8>>) {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .unwrap_or_else(|e| panic!("setns {path}: {e}"));
        let sock = UdpSocket::bind("0.0.0.0:0").expect("bind a UDP socket");
        for d in &datagrams {
            sock.send_to(d, to).expect("send a datagram");
        }
    })
    .join()
    .expect("sender thread");
}

/// Captures, inside namespace `ns`, one heartbeat datagram (its UDP payload) sent from `from`
/// to `to`, with a packet socket (bounded by [`WAIT`]).
fn capture_heartbeat(ns: &str, from: Ipv4Addr, to: SocketAddr) -> Vec<u8> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .unwrap_or_else(|e| panic!("setns {path}: {e}"));
        let proto = (libc::ETH_P_IP as u16).to_be() as libc::c_int;
        // SAFETY: socket(2) with constant arguments; the fd is closed below.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM, proto) };
        assert!(
            fd >= 0,
            "packet socket: {}",
            std::io::Error::last_os_error()
        );
        let tv = libc::timeval {
            tv_sec: 1,
            tv_usec: 0,
        };
        // SAFETY: `tv` is a valid timeval for the duration of the call.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        let deadline = Instant::now() + WAIT;
        let mut buf = [0u8; 2048];
        let found = loop {
            assert!(
                Instant::now() < deadline,
                "no heartbeat {from} -> {to} captured"
            );
            // SAFETY: `buf` is writable for its length.
            let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            let Ok(n) = usize::try_from(n) else { continue };
            let p = &buf[..n];
            if n < 20 || p[0] >> 4 != 4 || p[9] != libc::IPPROTO_UDP as u8 {
                continue;
            }
            let ihl = usize::from(p[0] & 0x0f) * 4;
            let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
            let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
            if n < ihl + 8 || src != from || std::net::IpAddr::V4(dst) != to.ip() {
                continue;
            }
            let dport = u16::from_be_bytes([p[ihl + 2], p[ihl + 3]]);
            let payload = &p[ihl + 8..];
            if dport == to.port() && payload.len() == PACKET_BYTES {
                break payload.to_vec();
            }
        };
        // SAFETY: `fd` is ours and closed once.
        unsafe { libc::close(fd) };
        found
    })
    .join()
    .expect("capture thread")
}

/// Events an accepted forgery would cause (a fence, a release, a takeover, a peer restart).
const UNCHANGED_EVENTS: [&str; 9] = [
    "release",
    "link_down",
    "fence",
    "fenced",
    "fence_failed",
    "peer_restarted",
    "peer_lost",
    "active",
    "standby",
];

fn dropped(st: &Value, class: &str) -> u64 {
    st["peer"]["dropped"][class].as_u64().unwrap_or(0)
}

#[test]
#[ignore = "needs root, iproute2, ipmi_sim and ipmitool: the namespace pair lab"]
fn forged_and_replayed_heartbeats_are_dropped_by_class_and_change_nothing() {
    if !pairlab::available() {
        return;
    }
    let lab = PairLab::up("op-forge");
    let sampler = lab.sample_invariants(VIP);
    cold_start(&lab);
    let target = SocketAddr::from((lab.node_addr(Node::N1, Link::Public), HB_PORT));
    let n2_public = lab.node_addr(Node::N2, Link::Public);

    // A real heartbeat n2 sent n1 on link 0, captured inside n1's namespace (n1 accepted it).
    let captured = capture_heartbeat(&lab.ns(Node::N1), n2_public, target);
    let key_bytes = std::fs::read(lab.dir().join("cluster.key")).expect("cluster key");
    let key = Key::new(key_bytes.strip_suffix(b"\n").unwrap_or(&key_bytes)).unwrap();
    let real = key
        .decode(&captured)
        .expect("the captured heartbeat is authentic");
    assert_eq!(real.name.as_str(), "n2");
    assert_eq!(real.link, 0);

    let before = status(&lab, Node::N1);
    let before2 = status(&lab, Node::N2);
    assert_eq!(before["peer"]["alive"], true, "{before:#}");

    // Forgeries, from the client namespace to n1's heartbeat port on its public address.
    let signed = |key: &Key, hb: &Heartbeat| {
        let mut buf = [0u8; PACKET_BYTES];
        let len = key.encode(hb, &mut buf);
        buf[..len].to_vec()
    };
    let wrong_key = Key::new(b"not-the-cluster-key-0123456789ab").unwrap();
    // A heartbeat that would make n1 stand down if it were believed.
    let takeover = Heartbeat {
        role: Role::Active,
        state: State::Running,
        health: Health::Healthy,
        flags: Flags::WANTS_TAKEOVER | Flags::HOLDS_VIP,
        sequence: real.sequence + 1_000_000,
        ..real
    };
    let mut random = vec![0u8; PACKET_BYTES];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in random.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let mut bbhb_random = random.clone();
    // Magic and version right (a version-2-sized packet), the rest noise: only the tag fails.
    bbhb_random[..5].copy_from_slice(b"BBHB\x02");
    let mut flipped = captured.clone();
    flipped[30] ^= 0x01; // inside the name field: the tag no longer verifies
    let old_run = Heartbeat {
        boot_id: [0x5a; 16],
        sequence: 1,
        ..real
    };
    let n3 = Heartbeat {
        name: NodeName::new("n3").unwrap(),
        sequence: real.sequence + 1_000_000,
        ..real
    };
    let crossed = Heartbeat {
        link: 1,
        sequence: real.sequence + 1_000_000,
        ..real
    };
    let datagrams: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", random[..40].to_vec()),
        ("oversized", [random.clone(), random.clone()].concat()),
        ("bad_magic", random.clone()),
        ("unauthenticated", bbhb_random),
        ("unauthenticated", signed(&wrong_key, &takeover)),
        ("unauthenticated", flipped),
        ("replayed", captured.clone()),
        ("stale", signed(&key, &old_run)),
        ("wrong_peer", signed(&key, &n3)),
        ("wrong_link", signed(&key, &crossed)),
    ];
    send_from(
        &lab.client_ns(),
        target,
        datagrams.iter().map(|(_, d)| d.clone()).collect(),
    );
    // The same real packet replayed to its sender: a reflection.
    let n2_target = SocketAddr::from((n2_public, HB_PORT));
    send_from(&lab.client_ns(), n2_target, vec![captured.clone()]);

    let mut want: Vec<(&str, u64)> = Vec::new();
    for (class, _) in &datagrams {
        match want.iter_mut().find(|(c, _)| c == class) {
            Some((_, n)) => *n += 1,
            None => want.push((class, 1)),
        }
    }
    wait_for(&lab, "n1 to count every injected datagram", || {
        let st = status(&lab, Node::N1);
        want.iter()
            .all(|(class, n)| dropped(&st, class) >= dropped(&before, class) + n)
    });
    wait_for(&lab, "n2 to count its own packet reflected", || {
        dropped(&status(&lab, Node::N2), "from_self") >= 1
    });

    // Nothing else changed: roles, VIP, no fence, the peer still alive on both links.
    std::thread::sleep(Duration::from_secs(2));
    let after = status(&lab, Node::N1);
    for (class, n) in &want {
        assert_eq!(
            dropped(&after, class),
            dropped(&before, class) + n,
            "exactly the injected {class} datagrams: {after:#}"
        );
    }
    assert_eq!(after["role"], "active", "{after:#}");
    assert_eq!(after["state"], "running", "{after:#}");
    assert_eq!(after["peer"]["alive"], true, "{after:#}");
    assert_eq!(after["peer"]["links_up"], 2, "{after:#}");
    let st2 = status(&lab, Node::N2);
    assert_eq!(st2["role"], "standby", "{st2:#}");
    assert_eq!(st2["state"], "stopped", "{st2:#}");
    assert_eq!(st2["peer"]["alive"], true, "{st2:#}");
    for kind in UNCHANGED_EVENTS {
        assert_eq!(
            count_kind(&after, kind),
            count_kind(&before, kind),
            "n1: the injections caused {kind}: {after:#}"
        );
        assert_eq!(
            count_kind(&st2, kind),
            count_kind(&before2, kind),
            "n2: the injections caused {kind}: {st2:#}"
        );
    }
    assert_eq!(lab.vip_holder(VIP), vec![Node::N1]);
    assert!(answered_by(&lab, VIP, Node::N1));

    sampler.assert_at_most_one();
    assert_eq!(sampler.max_holders(), 1, "the sampler saw the VIP");
    assert_eq!(sampler.errors(), 0);
}
