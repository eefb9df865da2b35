//! The virtual IP (`bbwd_platform::vip`) against the real kernel, in throwaway network
//! namespaces: netlink add/remove/held (IPv4 and IPv6), gratuitous ARP and unsolicited NA seen
//! by a peer's neighbour table, the ARP / DAD probe, and the address watch.
//!
//! Each test makes its own pair of namespaces (`bbvip<pid><n>a` and `...b`, a veth pair `eth0`
//! between them, fixed MACs) and removes them on drop, also when the test fails. The code under
//! test runs inside a namespace as the `viptool` helper started with `ip netns exec`: a separate
//! process per operation keeps the test process itself in the root namespace and makes every
//! call go through fresh sockets, as a restarted daemon would.
//!
//! Needs root and iproute2; under `CI` their absence fails the test, elsewhere it is reported
//! and the test returns early.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use bbwd_tests::{pid_alive, run_bounded, wait_until};

const VIPTOOL: &str = env!("CARGO_BIN_EXE_viptool");
const MAC_A: &str = "02:b0:00:00:00:0a";
const MAC_B: &str = "02:b0:00:00:00:0b";
/// A MAC nobody has: the peer's neighbour entry starts on it, as if the VIP lived elsewhere.
const MAC_STALE: &str = "02:b0:00:00:00:99";
const CMD_TIMEOUT: Duration = Duration::from_secs(20);
/// Generous: the machine is shared; the kernel normally takes microseconds.
const SEEN_TIMEOUT: Duration = Duration::from_secs(10);

static LAB_SEQ: AtomicU32 = AtomicU32::new(0);

fn available() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let ip = std::path::Path::new("/usr/sbin/ip").is_file()
        || std::path::Path::new("/sbin/ip").is_file();
    if root && ip {
        return true;
    }
    let what = format!(
        "VIP namespace tests need root (have: {root}) and iproute2 (have: {ip}); \
         scripts/setup.sh installs iproute2"
    );
    panic!("{what}");
}

/// Two namespaces joined by a veth pair; deleted on drop.
struct Lab {
    a: String,
    b: String,
    created: Vec<String>,
}

impl Lab {
    fn new() -> Lab {
        let n = LAB_SEQ.fetch_add(1, Ordering::Relaxed);
        let base = format!("bbvip{}{}", std::process::id(), n);
        let mut lab = Lab {
            a: format!("{base}a"),
            b: format!("{base}b"),
            created: Vec::new(),
        };
        for ns in [lab.a.clone(), lab.b.clone()] {
            ip(&["netns", "add", &ns]);
            lab.created.push(ns.clone());
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        let (a, b) = (lab.a.clone(), lab.b.clone());
        ip(&[
            "-n", &a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", &b,
        ]);
        ip(&["-n", &a, "link", "set", "eth0", "address", MAC_A, "up"]);
        ip(&["-n", &b, "link", "set", "eth0", "address", MAC_B, "up"]);
        ip(&["-n", &a, "addr", "add", "10.79.0.1/24", "dev", "eth0"]);
        ip(&["-n", &b, "addr", "add", "10.79.0.2/24", "dev", "eth0"]);
        ip(&[
            "-n",
            &a,
            "addr",
            "add",
            "fd00:79::1/64",
            "dev",
            "eth0",
            "nodad",
        ]);
        ip(&[
            "-n",
            &b,
            "addr",
            "add",
            "fd00:79::2/64",
            "dev",
            "eth0",
            "nodad",
        ]);
        // The server sysctls of the lab notes, so the tests run under what production uses.
        for ns in [&a, &b] {
            sysctl(ns, "net.ipv4.conf.all.arp_ignore=1");
            sysctl(ns, "net.ipv4.conf.all.arp_announce=2");
        }
        lab
    }

    /// Runs `viptool ARGS` inside `ns`; returns (exit code, stdout, stderr).
    fn viptool(&self, ns: &str, args: &[&str]) -> (i32, String, String) {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, VIPTOOL]).args(args);
        let out: Output = run_bounded(cmd, CMD_TIMEOUT);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        )
    }

    /// `viptool ARGS` in `ns` that must succeed; its stdout.
    fn ok(&self, ns: &str, args: &[&str]) -> String {
        let (code, out, err) = self.viptool(ns, args);
        assert_eq!(
            code, 0,
            "viptool {args:?} in {ns}: stdout {out:?}, stderr {err:?}"
        );
        out
    }

    /// The peer's neighbour entry for `addr`: its lladdr, if any.
    fn neighbour_mac(&self, ns: &str, addr: &str) -> Option<String> {
        let out = ip(&["-n", ns, "neigh", "show", addr, "dev", "eth0"]);
        let words: Vec<&str> = out.split_whitespace().collect();
        words
            .iter()
            .position(|w| *w == "lladdr")
            .and_then(|i| words.get(i + 1))
            .map(|s| s.to_string())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting the namespaces removes the veth pair too. No process is left inside: every
        // viptool is waited for (run_bounded) or ended by its guard before the lab drops.
        for ns in &self.created {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn ip(args: &[&str]) -> String {
    let mut cmd = Command::new("ip");
    cmd.args(args);
    let out = run_bounded(cmd, CMD_TIMEOUT);
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sysctl(ns: &str, setting: &str) {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, "sysctl", "-qw", setting]);
    let out = run_bounded(cmd, CMD_TIMEOUT);
    assert!(out.status.success(), "sysctl {setting} in {ns}");
}

/// A long-running viptool (the watch); SIGKILLed by PID on drop if still running.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    fn start(ns: &str, args: &[&str]) -> Running {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, VIPTOOL])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn viptool");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running { child, lines }
    }

    fn expect_line(&self, want: &str) {
        let mut seen = Vec::new();
        loop {
            match self.lines.recv_timeout(SEEN_TIMEOUT) {
                Ok(line) if line == want => return,
                Ok(line) => seen.push(line),
                Err(_) => panic!("viptool never printed {want:?}; printed {seen:?}"),
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if pid_alive(self.child.id()) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "needs root and iproute2: network namespaces"]
fn ipv4_add_remove_and_held_are_idempotent_and_the_address_is_labelled() {
    if !available() {
        return;
    }
    let lab = Lab::new();
    let vip = ["eth0", "10.79.0.50/24"];
    let with = |cmd: &'static str| -> Vec<&'static str> {
        let mut v = vec![cmd];
        v.extend_from_slice(&vip);
        v
    };
    assert_eq!(lab.ok(&lab.a, &with("held")), "not-held");
    assert_eq!(lab.ok(&lab.a, &with("add")), "added");
    assert_eq!(lab.ok(&lab.a, &with("add")), "already-held");
    assert_eq!(lab.ok(&lab.a, &with("held")), "held");
    let shown = ip(&["-n", &lab.a, "-4", "addr", "show", "dev", "eth0"]);
    let line = shown
        .lines()
        .find(|l| l.contains("10.79.0.50/24"))
        .unwrap_or_else(|| panic!("VIP not in `ip addr`: {shown}"));
    assert!(line.trim_end().ends_with("eth0:bbwd"), "label: {line}");
    // The peer does not see it as its own.
    assert_eq!(lab.ok(&lab.b, &with("held")), "not-held");
    assert_eq!(lab.ok(&lab.a, &with("remove")), "removed");
    assert_eq!(lab.ok(&lab.a, &with("remove")), "already-gone");
    assert_eq!(lab.ok(&lab.a, &with("held")), "not-held");
    let shown = ip(&["-n", &lab.a, "-4", "addr", "show", "dev", "eth0"]);
    assert!(!shown.contains("10.79.0.50"), "still there: {shown}");
    assert!(
        shown.contains("10.79.0.1/24"),
        "removed the wrong address: {shown}"
    );
}

#[test]
#[ignore = "needs root and iproute2: network namespaces"]
fn ipv6_add_is_nodad_and_idempotent() {
    if !available() {
        return;
    }
    let lab = Lab::new();
    assert_eq!(
        lab.ok(&lab.a, &["held", "eth0", "fd00:79::50/64"]),
        "not-held"
    );
    assert_eq!(lab.ok(&lab.a, &["add", "eth0", "fd00:79::50/64"]), "added");
    assert_eq!(
        lab.ok(&lab.a, &["add", "eth0", "fd00:79::50/64"]),
        "already-held"
    );
    assert_eq!(lab.ok(&lab.a, &["held", "eth0", "fd00:79::50/64"]), "held");
    let shown = ip(&["-n", &lab.a, "-6", "addr", "show", "dev", "eth0"]);
    let line = shown
        .lines()
        .find(|l| l.contains("fd00:79::50/64"))
        .unwrap_or_else(|| panic!("VIP not in `ip addr`: {shown}"));
    assert!(line.contains("nodad"), "{line}");
    assert!(!line.contains("tentative"), "usable at once: {line}");
    assert_eq!(
        lab.ok(&lab.a, &["remove", "eth0", "fd00:79::50/64"]),
        "removed"
    );
    assert_eq!(
        lab.ok(&lab.a, &["remove", "eth0", "fd00:79::50/64"]),
        "already-gone"
    );
    assert_eq!(
        lab.ok(&lab.a, &["held", "eth0", "fd00:79::50/64"]),
        "not-held"
    );
}

#[test]
#[ignore = "needs root and iproute2: network namespaces"]
fn gratuitous_arp_moves_the_peers_neighbour_entry_to_our_mac() {
    if !available() {
        return;
    }
    let lab = Lab::new();
    // arp_accept=0: a GARP only updates an entry the peer already has. Make one pointing at
    // the old holder's MAC, as after the VIP lived elsewhere.
    ip(&[
        "-n",
        &lab.b,
        "neigh",
        "replace",
        "10.79.0.50",
        "lladdr",
        MAC_STALE,
        "dev",
        "eth0",
        "nud",
        "stale",
    ]);
    assert_eq!(
        lab.neighbour_mac(&lab.b, "10.79.0.50").as_deref(),
        Some(MAC_STALE)
    );
    assert_eq!(lab.ok(&lab.a, &["add", "eth0", "10.79.0.50/24"]), "added");
    assert_eq!(
        lab.ok(&lab.a, &["announce", "eth0", "10.79.0.50/24", "1", "0"]),
        "sent 1"
    );
    wait_until(SEEN_TIMEOUT, "the peer's entry to move to our MAC", || {
        lab.neighbour_mac(&lab.b, "10.79.0.50").as_deref() == Some(MAC_A)
    });
}

#[test]
#[ignore = "needs root and iproute2: network namespaces"]
fn unsolicited_na_moves_the_peers_neighbour_entry_to_our_mac() {
    if !available() {
        return;
    }
    let lab = Lab::new();
    ip(&[
        "-n",
        &lab.b,
        "neigh",
        "replace",
        "fd00:79::50",
        "lladdr",
        MAC_STALE,
        "dev",
        "eth0",
        "nud",
        "stale",
    ]);
    assert_eq!(
        lab.neighbour_mac(&lab.b, "fd00:79::50").as_deref(),
        Some(MAC_STALE)
    );
    assert_eq!(lab.ok(&lab.a, &["add", "eth0", "fd00:79::50/64"]), "added");
    // The kernel drops an NA with a bad checksum or hop limit: the move proves both right.
    assert_eq!(
        lab.ok(&lab.a, &["announce", "eth0", "fd00:79::50/64", "2", "20"]),
        "sent 2"
    );
    wait_until(
        SEEN_TIMEOUT,
        "the peer's IPv6 entry to move to our MAC",
        || lab.neighbour_mac(&lab.b, "fd00:79::50").as_deref() == Some(MAC_A),
    );
}

#[test]
#[ignore = "needs root and iproute2: network namespaces"]
fn arp_probe_reports_the_holder_and_free_otherwise() {
    if !available() {
        return;
    }
    let lab = Lab::new();
    assert_eq!(
        lab.ok(&lab.a, &["probe", "eth0", "10.79.0.50/24", "300"]),
        "free"
    );
    ip(&["-n", &lab.b, "addr", "add", "10.79.0.50/24", "dev", "eth0"]);
    assert_eq!(
        lab.ok(&lab.a, &["probe", "eth0", "10.79.0.50/24", "3000"]),
        format!("conflict {MAC_B}")
    );
    // Another address in the same subnet is still free.
    assert_eq!(
        lab.ok(&lab.a, &["probe", "eth0", "10.79.0.51/24", "300"]),
        "free"
    );
    // A probe never claims the address: the holder keeps it, the prober did not add it.
    assert_eq!(lab.ok(&lab.b, &["held", "eth0", "10.79.0.50/24"]), "held");
    assert_eq!(
        lab.ok(&lab.a, &["held", "eth0", "10.79.0.50/24"]),
        "not-held"
    );
}

#[test]
#[ignore = "needs root and iproute2: network namespaces"]
fn ipv6_probe_reports_the_holder_and_free_otherwise() {
    if !available() {
        return;
    }
    let lab = Lab::new();
    assert_eq!(
        lab.ok(&lab.a, &["probe", "eth0", "fd00:79::50/64", "300"]),
        "free"
    );
    ip(&[
        "-n",
        &lab.b,
        "addr",
        "add",
        "fd00:79::50/64",
        "dev",
        "eth0",
        "nodad",
    ]);
    assert_eq!(
        lab.ok(&lab.a, &["probe", "eth0", "fd00:79::50/64", "3000"]),
        format!("conflict {MAC_B}")
    );
    assert_eq!(
        lab.ok(&lab.a, &["probe", "eth0", "fd00:79::51/64", "300"]),
        "free"
    );
}

#[test]
#[ignore = "needs root and iproute2: network namespaces"]
fn the_watch_reports_our_address_removed_behind_our_back() {
    if !available() {
        return;
    }
    let lab = Lab::new();
    for (vip, other, family) in [
        ("10.79.0.50/24", "10.79.0.60/24", "-4"),
        ("fd00:79::50/64", "fd00:79::60/64", "-6"),
    ] {
        assert_eq!(lab.ok(&lab.a, &["add", "eth0", vip]), "added");
        let watch = Running::start(&lab.a, &["watch", "eth0", vip, "20000"]);
        watch.expect_line("ready");
        // Changes to other addresses are not ours: only the removal below may end the watch.
        ip(&["-n", &lab.a, family, "addr", "add", other, "dev", "eth0"]);
        ip(&["-n", &lab.a, family, "addr", "del", other, "dev", "eth0"]);
        ip(&["-n", &lab.a, family, "addr", "del", vip, "dev", "eth0"]);
        watch.expect_line("removed");
        assert_eq!(lab.ok(&lab.a, &["held", "eth0", vip]), "not-held");
    }
}

#[test]
#[ignore = "needs root and iproute2: network namespaces"]
fn errors_name_the_operation_interface_and_address() {
    if !available() {
        return;
    }
    let lab = Lab::new();
    let (code, out, err) = lab.viptool(&lab.a, &["add", "nosuch0", "10.79.0.50/24"]);
    assert_eq!(code, 3, "stdout {out:?} stderr {err:?}");
    assert!(
        err.contains("open") && err.contains("nosuch0") && err.contains("10.79.0.50"),
        "{err}"
    );
    assert!(err.contains("no such interface"), "{err}");
    // A prefix that does not fit the family is refused before any socket is opened.
    let (code, _, err) = lab.viptool(&lab.a, &["add", "eth0", "10.79.0.50/33"]);
    assert_eq!(code, 3);
    assert!(err.contains("prefix length 33"), "{err}");
}
