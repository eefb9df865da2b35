//! VIP move (BENCHMARKS.md, "VIP move: netlink add + first gratuitous ARP on the wire"): the
//! time from "start adding the VIP" until the first announcement is on the wire, seen by a
//! receiver in another network namespace. Two namespaces joined by a veth pair, the lab's
//! sysctls (`arp_ignore=1`, `arp_announce=2`); `BENCH_VIP_RUNS` runs each (default 30),
//! `BENCH_VIP_GAP_MS` apart (default 100).
//!
//! * bbwd: `bbwd_platform::vip` with its sockets already open, as the daemon holds them
//!   (`viptool takeover`: netlink RTM_NEWADDR + one GARP from the open packet socket), IPv4 and
//!   IPv6 (RTM_NEWADDR nodad + unsolicited NA); also its in-process time for add + send;
//! * baseline: `ip addr add` + Habets' `arping -U -S VIP -i eth0 -c1 -w0 VIP`, started from one
//!   bash inside the namespace (t0 = `$EPOCHREALTIME`, no fork).
//!
//! "On the wire" = the receiver's kernel timestamp (`viptool listen`: `SO_TIMESTAMPNS`,
//! CLOCK_REALTIME, which all namespaces share) of the frame arriving over the veth pair, minus
//! t0 taken by the mover just before it starts. Needs root.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

use super::{fixed, knob, require_root, require_tools, say, Ctx, Summary, Table};
use crate::{kill_pid, run_bounded, viptool_bin};

const V4: &str = "10.80.0.50";
const V6: &str = "fd00:80::50";

pub fn run(_ctx: &Ctx, _args: &[String]) -> String {
    require_root("the VIP benchmark (network namespaces)");
    require_tools(&["ip", "arping", "bash"]);
    let runs: usize = knob("BENCH_VIP_RUNS", 30);
    let gap_ms: u64 = knob("BENCH_VIP_GAP_MS", 100);
    let viptool = viptool_bin();
    let lab = Namespaces::up();
    let (a, b) = (&lab.a, &lab.b);

    say("vip", &format!("bbwd, IPv4, {runs} runs"));
    let rx = Listener::start(b, &viptool, V4, runs);
    let tx4 = pairs(&lab.exec(
        a,
        &[
            &viptool.display().to_string(),
            "takeover",
            "eth0",
            &format!("{V4}/24"),
            &runs.to_string(),
            &gap_ms.to_string(),
        ],
    ));
    let rx4 = rx.finish();
    let wire4 = differences_us(tx4.iter().map(|p| p.0), &rx4);
    let inproc: Vec<f64> = tx4.iter().map(|p| (p.1 - p.0) as f64 / 1000.0).collect();

    say("vip", &format!("bbwd, IPv6, {runs} runs"));
    let rx = Listener::start(b, &viptool, V6, runs);
    let tx6 = pairs(&lab.exec(
        a,
        &[
            &viptool.display().to_string(),
            "takeover",
            "eth0",
            &format!("{V6}/64"),
            &runs.to_string(),
            &gap_ms.to_string(),
        ],
    ));
    let wire6 = differences_us(tx6.iter().map(|p| p.0), &rx.finish());

    say("vip", &format!("ip addr add + arping -U, {runs} runs"));
    let rx = Listener::start(b, &viptool, V4, runs);
    let script = format!(
        "for _ in $(seq {runs}); do\n\
           ip addr del {V4}/24 dev eth0 2>/dev/null || true\n\
           sleep {gap}\n\
           t0=$EPOCHREALTIME\n\
           ip addr add {V4}/24 dev eth0\n\
           arping -q -U -S {V4} -i eth0 -c1 -w0 {V4} >/dev/null 2>&1 || true\n\
           echo \"${{t0/./}}000\"\n\
         done\n\
         ip addr del {V4}/24 dev eth0",
        gap = gap_ms as f64 / 1000.0
    );
    let txb: Vec<u128> = lab
        .exec(a, &["bash", "-c", &script])
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let wireb = differences_us(txb.into_iter(), &rx.finish());

    let mut t = Table::new(&[
        &format!("figure ({runs} runs each, {gap_ms} ms apart)"),
        "median",
        "p90",
        "range",
        "runs",
    ]);
    for (label, v) in [
        ("bbwd: netlink add + first GARP, on the wire (IPv4)", wire4),
        (
            "bbwd: netlink add + GARP send, in process (both syscalls returned)",
            inproc,
        ),
        (
            "bbwd: netlink add (nodad) + first unsolicited NA, on the wire (IPv6)",
            wire6,
        ),
        (
            "baseline: ip addr add + arping -U, on the wire (IPv4)",
            wireb,
        ),
    ] {
        match Summary::of(v) {
            Some(s) => t.row([
                label.to_string(),
                format!("{} us", fixed(s.median(), 1)),
                format!("{} us", fixed(s.percentile(90.0), 1)),
                format!("{} - {} us", fixed(s.min(), 1), fixed(s.max(), 1)),
                s.len().to_string(),
            ]),
            None => t.row([label, "no data", "", "", "0"]),
        };
    }
    t.render()
}

/// `T0_NS T1_NS` lines of `viptool takeover`.
fn pairs(out: &str) -> Vec<(u128, u128)> {
    out.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.parse().ok()?, w.next()?.parse().ok()?))
        })
        .collect()
}

/// (rx - t0) in microseconds, run by run (as many as both sides have).
fn differences_us(t0s: impl Iterator<Item = u128>, rx: &[u128]) -> Vec<f64> {
    t0s.zip(rx)
        .map(|(t0, rx)| (*rx as f64 - t0 as f64) / 1000.0)
        .collect()
}

/// Two namespaces `bbvbPIDa` and `bbvbPIDb` joined by a veth pair; deleted on drop.
struct Namespaces {
    a: String,
    b: String,
}

impl Namespaces {
    fn up() -> Namespaces {
        let p = format!("bbvb{}", std::process::id());
        let lab = Namespaces {
            a: format!("{p}a"),
            b: format!("{p}b"),
        };
        let (a, b) = (lab.a.as_str(), lab.b.as_str());
        for ns in [a, b] {
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        ip(&[
            "-n", a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", b,
        ]);
        ip(&[
            "-n",
            a,
            "link",
            "set",
            "eth0",
            "address",
            "02:80:00:00:00:0a",
            "up",
        ]);
        ip(&[
            "-n",
            b,
            "link",
            "set",
            "eth0",
            "address",
            "02:80:00:00:00:0b",
            "up",
        ]);
        ip(&["-n", a, "addr", "add", "10.80.0.1/24", "dev", "eth0"]);
        ip(&["-n", b, "addr", "add", "10.80.0.2/24", "dev", "eth0"]);
        ip(&[
            "-n",
            a,
            "addr",
            "add",
            "fd00:80::1/64",
            "dev",
            "eth0",
            "nodad",
        ]);
        ip(&[
            "-n",
            b,
            "addr",
            "add",
            "fd00:80::2/64",
            "dev",
            "eth0",
            "nodad",
        ]);
        for ns in [a, b] {
            lab.exec(
                ns,
                &[
                    "sysctl",
                    "-qw",
                    "net.ipv4.conf.all.arp_ignore=1",
                    "net.ipv4.conf.all.arp_announce=2",
                ],
            );
        }
        lab
    }

    /// Runs `argv` inside `ns` to completion; its stdout. Fails the benchmark on an error.
    fn exec(&self, ns: &str, argv: &[&str]) -> String {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).args(argv);
        let out = run_bounded(cmd, std::time::Duration::from_secs(300));
        assert!(
            out.status.success(),
            "{argv:?} in {ns}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn ip(args: &[&str]) {
    let out = run_bounded(
        {
            let mut c = Command::new("ip");
            c.args(args);
            c
        },
        std::time::Duration::from_secs(20),
    );
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `viptool listen` in the receiving namespace: ready once it printed `ready`; ended (by PID)
/// on drop if still running.
struct Listener {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Listener {
    fn start(ns: &str, viptool: &Path, addr: &str, runs: usize) -> Listener {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(viptool)
            .args(["listen", "eth0", addr, "120000", &runs.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start viptool listen");
        let mut out = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut first = String::new();
        // viptool prints `ready` at once, or exits (then the read returns nothing).
        let _ = out.read_line(&mut first);
        assert!(
            first.trim() == "ready",
            "viptool listen did not get ready: {first:?}"
        );
        Listener { child, out }
    }

    /// Waits for the listener (it stops after `runs` frames or its timeout): the kernel receive
    /// stamps, ns.
    fn finish(mut self) -> Vec<u128> {
        let mut rest = String::new();
        let _ = self.out.read_to_string(&mut rest);
        let _ = self.child.wait();
        rest.lines().filter_map(|l| l.trim().parse().ok()).collect()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            kill_pid(self.child.id(), libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}
