//! The two-node pair lab: two servers, a switch and a client in network namespaces, each server
//! with a real BMC (`ipmi_sim`) whose chassis power is that server.
//!
//! Owns: the lab's namespaces, links and addresses, the two BMCs (through
//! [`crate::ipmisim::IpmiSim::start_in`]), the node script that is each BMC's "power", and the
//! observers a pair scenario asserts on: which node holds the virtual IP, which node runs a
//! `bbsim` ([`InvariantSampler`], every 20 ms) and what a client sees ([`Probe`], a GET every
//! 20 ms). Must not: touch the root namespace's network (nothing is created there and there are
//! no default routes, so nothing leaves the lab), or end processes it did not start: it signals
//! the ipmi_sim processes it spawned and, by PID, the processes inside its own namespaces.
//!
//! # Topology
//! ```text
//!   PFXsw   switch: bridge br0; BMC 1 on 10.77.0.201:623 and BMC 2 on 10.77.0.202:623 (br0)
//!    |  \______________________________.
//!   s-n1          s-n2                 s-cl
//!    |             |                    |
//!   PFXn1 eth0    PFXn2 eth0           PFXcl eth0 10.77.0.100  (the client)
//!   10.77.0.1     10.77.0.2
//!   eth1 10.78.0.1 ======== eth1 10.78.0.2   (direct link: heartbeat link 2)
//! ```
//! `eth0` is the public link and heartbeat link 1, `eth1` a direct second link. `PFX` is `pl`,
//! the test process's PID and a counter: parallel labs never collide (interface names live in
//! the namespaces, so they are fixed). Servers get `arp_ignore=1`, `arp_announce=2` (a stale
//! holder must not flip the client back) and `ip_nonlocal_bind=1` (a service may bind the VIP
//! before it holds it).
//!
//! # Where the BMCs are (and why)
//! Both BMCs run inside the switch namespace, their RMCP+ addresses on `br0`: the management
//! network of a real pair, reachable from either node over its `eth0` and from the switch
//! namespace (where the harness's own `ipmitool` runs, as an operator's workstation would).
//! A node's power loss cuts that node's links, never its BMC: the survivor can still fence it.
//!
//! # Power
//! Power on = ipmi_sim runs the node script (in the switch namespace). It boots the node: flushes
//! every address and neighbour entry a previous life left (a rebooted server holds no VIP),
//! puts the static addresses back, brings the node's links up (`s-nX` on the switch, `eth1` in
//! the node), then starts the node's command (`set_node_command`) inside the node's namespace.
//! Power off = ipmi_sim's SIGTERM (at its next 1 s tick): the script cuts both links at once and
//! SIGKILLs every process in the node's namespace (a power loss is not graceful), then exits.
//! Processes in a dead node's namespace are gone, its addresses stay configured (as on a dead
//! machine) but unreachable.
//!
//! # Invariants
//! * Every wait and every command is bounded; failures panic with the BMCs' logs.
//! * Drop (also on a failed test): stops the BMCs (ipmi_sim by PID, then the node scripts by
//!   PID), SIGKILLs every process left in the lab's namespaces by PID, deletes the namespaces,
//!   and removes the lab's directory. It never panics.
//! * Observers run on their own threads, which `setns(2)` into lab namespaces; the test thread
//!   never changes namespace.

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::ipmisim::{self, BmcPlacement, IpmiSim};
use crate::{kill_pid, pid_alive, run_bounded, TestDir};

/// A VIP the pair scenarios use (on the public subnet, held by nobody at start).
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 50);
/// The client's address on the public subnet.
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 100);
/// The BMCs' RMCP+ port (the standard one: each BMC has its own address).
pub const BMC_PORT: u16 = 623;
/// How often the invariant sampler and the client probe look.
pub const SAMPLE_PERIOD: Duration = Duration::from_millis(20);
/// Each probe request's own timeout (connect + request + reply).
pub const PROBE_REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// Bound for each `ip`/`ipmitool` command the lab runs.
const CMD_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound for a node to be gone after its BMC said "off" (ipmi_sim's tick plus the script).
const POWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Most concurrent probe requests (20 ms apart with a 1 s timeout each: ~50).
const PROBE_MAX_IN_FLIGHT: usize = 64;

static LAB_SEQ: AtomicU32 = AtomicU32::new(0);

/// One of the two servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Node {
    N1,
    N2,
}

impl Node {
    pub const BOTH: [Node; 2] = [Node::N1, Node::N2];

    /// `"n1"` / `"n2"`: the namespace suffix, the BMC's name, and what `bbsim --node` says.
    pub fn name(self) -> &'static str {
        match self {
            Node::N1 => "n1",
            Node::N2 => "n2",
        }
    }

    pub fn peer(self) -> Node {
        match self {
            Node::N1 => Node::N2,
            Node::N2 => Node::N1,
        }
    }

    fn index(self) -> usize {
        match self {
            Node::N1 => 0,
            Node::N2 => 1,
        }
    }

    /// 1 or 2: the last octet of the node's addresses.
    fn number(self) -> u8 {
        self.index() as u8 + 1
    }
}

/// A server's links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// `eth0` on the switch: the public link and heartbeat link 1 (10.77.0.0/24).
    Public,
    /// `eth1`, direct between the servers: heartbeat link 2 (10.78.0.0/24).
    Direct,
}

impl Link {
    pub fn ifname(self) -> &'static str {
        match self {
            Link::Public => "eth0",
            Link::Direct => "eth1",
        }
    }
}

/// Whether the lab can run here (root, iproute2, ipmi_sim and ipmitool): true, or the test
/// fails saying what is missing. Tests that call this are `#[ignore = "needs ..."]`: `scripts/test.sh` runs them with `--include-ignored`; run, they fail when a piece is missing (never pass unrun).
pub fn available() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let missing: Vec<&str> = ["ip", "ipmi_sim", "ipmitool"]
        .into_iter()
        .filter(|t| !on_path(t))
        .collect();
    if root && missing.is_empty() {
        return true;
    }
    let what = format!(
        "the pair lab needs root (have: {root}) and {missing:?} (scripts/setup.sh installs them)"
    );
    panic!("{what}");
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
                .any(|d| d.join(tool).is_file())
        })
        .unwrap_or(false)
}

/// The lab. See the module documentation.
pub struct PairLab {
    /// Name prefix of every namespace (`pl<pid><n>`).
    pub prefix: String,
    dir: TestDir,
    /// Namespaces created so far (deleted on drop, in reverse).
    created: Vec<String>,
    /// BMC of n1 and n2 (`None` until started, and during drop).
    bmcs: [Option<IpmiSim>; 2],
}

impl PairLab {
    /// Builds the lab; both servers are powered off (their BMCs are up). Panics (after
    /// cleaning up what it made) when a step fails.
    pub fn up(name: &str) -> PairLab {
        let n = LAB_SEQ.fetch_add(1, Ordering::Relaxed);
        let mut lab = PairLab {
            prefix: format!("pl{}{}", std::process::id(), n),
            dir: TestDir::new(&format!("pair-{name}")),
            created: Vec::new(),
            bmcs: [None, None],
        };
        lab.build();
        lab
    }

    fn build(&mut self) {
        for suffix in ["sw", "n1", "n2", "cl"] {
            let ns = format!("{}{suffix}", self.prefix);
            ip(&["netns", "add", &ns]);
            self.created.push(ns.clone());
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        let sw = self.switch_ns();
        sysctl(
            &sw,
            &[
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
        );
        ip(&[
            "-n",
            &sw,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
            "mcast_snooping",
            "0",
        ]);
        ip(&["-n", &sw, "link", "set", "br0", "up"]);
        for node in Node::BOTH {
            let addr = format!("{}/24", bmc_addr(node));
            ip(&["-n", &sw, "addr", "add", &addr, "dev", "br0"]);
        }
        // Hosts on the switch: the client is up for good; the servers' switch ports come up
        // when they are powered on.
        let hosts = [
            ("cl", self.client_ns(), CLIENT_ADDR, "02:77:00:00:00:64"),
            (
                "n1",
                self.ns(Node::N1),
                node_ip(Node::N1, Link::Public),
                "02:77:00:00:00:01",
            ),
            (
                "n2",
                self.ns(Node::N2),
                node_ip(Node::N2, Link::Public),
                "02:77:00:00:00:02",
            ),
        ];
        for (short, ns, addr, mac) in &hosts {
            let port = format!("s-{short}");
            ip(&[
                "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                ns,
            ]);
            ip(&["-n", &sw, "link", "set", &port, "master", "br0"]);
            ip(&["-n", ns, "link", "set", "eth0", "address", mac, "up"]);
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "eth0",
            ]);
        }
        ip(&["-n", &sw, "link", "set", "s-cl", "up"]);
        let (n1, n2) = (self.ns(Node::N1), self.ns(Node::N2));
        ip(&[
            "-n", &n1, "link", "add", "eth1", "type", "veth", "peer", "name", "eth1", "netns", &n2,
        ]);
        ip(&[
            "-n",
            &n1,
            "link",
            "set",
            "eth1",
            "address",
            "02:78:00:00:00:01",
        ]);
        ip(&[
            "-n",
            &n2,
            "link",
            "set",
            "eth1",
            "address",
            "02:78:00:00:00:02",
        ]);
        for node in Node::BOTH {
            let ns = self.ns(node);
            let a1 = format!("{}/24", node_ip(node, Link::Direct));
            ip(&["-n", &ns, "addr", "add", &a1, "dev", "eth1"]);
            sysctl(
                &ns,
                &[
                    "net.ipv4.conf.all.arp_ignore=1",
                    "net.ipv4.conf.all.arp_announce=2",
                    "net.ipv4.ip_nonlocal_bind=1",
                ],
            );
        }
        // The BMCs, each powering its node through the node script.
        let script = self.dir.join("node.sh");
        fs::write(&script, NODE_SCRIPT).expect("write node.sh");
        for node in Node::BOTH {
            let bmc_dir = self.dir.join(&format!("bmc-{}", node.name()));
            fs::create_dir_all(&bmc_dir).expect("create bmc dir");
            fs::write(bmc_dir.join("node-cmd.sh"), "# no command set\n").expect("node-cmd.sh");
            let startcmd = format!(
                "/bin/sh {} {} {} s-{} {}/24 {}/24",
                script.display(),
                bmc_dir.display(),
                self.ns(node),
                node.name(),
                node_ip(node, Link::Public),
                node_ip(node, Link::Direct),
            );
            let place = BmcPlacement {
                netns: sw.clone(),
                addr: bmc_addr(node),
                port: BMC_PORT,
                vm_port: 9000 + u16::from(node.number()),
                startcmd,
                power_on_at_start: false,
            };
            self.bmcs[node.index()] = Some(IpmiSim::start_in(self.dir.path(), node.name(), &place));
        }
    }

    /// The lab's directory (BMC state and logs, node logs; anything a test wants to keep).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn ns(&self, node: Node) -> String {
        format!("{}{}", self.prefix, node.name())
    }

    pub fn switch_ns(&self) -> String {
        format!("{}sw", self.prefix)
    }

    pub fn client_ns(&self) -> String {
        format!("{}cl", self.prefix)
    }

    /// All four namespace names.
    pub fn namespaces(&self) -> Vec<String> {
        ["sw", "n1", "n2", "cl"]
            .iter()
            .map(|s| format!("{}{s}", self.prefix))
            .collect()
    }

    /// The server's static address on `link`.
    pub fn node_addr(&self, node: Node, link: Link) -> Ipv4Addr {
        node_ip(node, link)
    }

    /// The RMCP+ address of `node`'s BMC (reachable from both servers and the switch).
    pub fn bmc_addr(&self, node: Node) -> SocketAddr {
        SocketAddr::from((bmc_addr(node), BMC_PORT))
    }

    /// The BMC's administrator (user, password).
    pub fn bmc_credentials(&self) -> (&'static str, &'static str) {
        (ipmisim::USER, ipmisim::PASSWORD)
    }

    /// A 0600 file holding the BMC password (for a `[fencing]` config's `password_file`).
    pub fn bmc_password_file(&self, node: Node) -> PathBuf {
        self.bmc(node)
            .password_file("bmc-password", ipmisim::PASSWORD)
    }

    pub fn bmc(&self, node: Node) -> &IpmiSim {
        self.bmcs[node.index()]
            .as_ref()
            .expect("the lab's BMCs are up")
    }

    /// What the node runs once powered on (shell text run by `/bin/sh` inside the node's
    /// namespace; `exec` it to keep the process tree flat). Read at every power on.
    pub fn set_node_command(&self, node: Node, shell: &str) {
        let path = self.bmc(node).dir.join("node-cmd.sh");
        fs::write(&path, format!("{shell}\n"))
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// When the node lost power, each time (the node script's first act on SIGTERM, before it
    /// cuts the links): the moment a failover is counted from.
    pub fn power_loss_times(&self, node: Node) -> Vec<Instant> {
        self.bmc(node)
            .node_events()
            .into_iter()
            .filter(|(_, kind)| kind == "OFF")
            .map(|(unix_s, _)| instant_of_unix(unix_s))
            .collect()
    }

    /// The node command's stdout and stderr (all lives appended).
    pub fn node_log(&self, node: Node) -> String {
        fs::read_to_string(self.bmc(node).dir.join("node.log")).unwrap_or_default()
    }

    /// `ipmitool` against `node`'s BMC, run in the switch namespace (the operator's station).
    pub fn ipmitool(&self, node: Node, args: &[&str]) -> Output {
        self.ipmitool_from(&self.switch_ns(), node, args)
    }

    /// `ipmitool` against `node`'s BMC, run in namespace `ns` (e.g. the peer server's, to
    /// prove fencing can reach it).
    pub fn ipmitool_from(&self, ns: &str, node: Node, args: &[&str]) -> Output {
        let port = BMC_PORT.to_string();
        let host = bmc_addr(node).to_string();
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns", "exec", ns, "ipmitool", "-I", "lanplus", "-H", &host,
        ])
        .args(["-p", &port, "-U", ipmisim::USER, "-P", ipmisim::PASSWORD])
        .args(["-C", "3", "-N", "1", "-R", "2"])
        .args(args);
        run_bounded(cmd, CMD_TIMEOUT)
    }

    /// Chassis power on/off through the node's BMC (returns when the BMC accepted it; the node
    /// is gone at ipmi_sim's next tick: see [`PairLab::wait_power`]).
    pub fn power(&self, node: Node, on: bool) {
        let out = self.ipmitool(node, &["chassis", "power", if on { "on" } else { "off" }]);
        assert!(
            out.status.success(),
            "ipmitool chassis power {} for {}: {}{}\n{}",
            if on { "on" } else { "off" },
            node.name(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.diagnostics()
        );
    }

    /// Power as the BMC reports it (`chassis power status`).
    pub fn power_state(&self, node: Node) -> bool {
        let out = self.ipmitool(node, &["chassis", "power", "status"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("Chassis Power is"),
            "ipmitool chassis power status for {}: {text}{}",
            node.name(),
            String::from_utf8_lossy(&out.stderr)
        );
        text.contains("Chassis Power is on")
    }

    /// Power as the node script says (its process exists), not as the BMC says.
    pub fn node_on(&self, node: Node) -> bool {
        self.bmc(node).node_on()
    }

    /// Waits (bounded) until the node is on/off; when off, also until no process is left in
    /// its namespace.
    pub fn wait_power(&self, node: Node, on: bool, timeout: Duration) {
        self.bmc(node).wait_power(on, timeout);
        if !on {
            let deadline = Instant::now() + timeout;
            while !self.pids_in(&self.ns(node)).is_empty() {
                assert!(
                    Instant::now() < deadline,
                    "processes left in powered-off {}: {:?}",
                    node.name(),
                    self.pids_in(&self.ns(node))
                );
                std::thread::sleep(SAMPLE_PERIOD);
            }
        }
    }

    /// Powers the node on through its BMC and waits until the node script runs.
    pub fn power_on(&self, node: Node) {
        self.power(node, true);
        self.wait_power(node, true, POWER_TIMEOUT);
    }

    /// Powers the node off through its BMC and waits until it and its processes are gone.
    pub fn power_off(&self, node: Node) {
        self.power(node, false);
        self.wait_power(node, false, POWER_TIMEOUT);
    }

    /// Runs `shell` with `/bin/sh -c` inside the node's namespace (bounded).
    pub fn exec_in(&self, node: Node, shell: &str) -> Output {
        exec_ns(&self.ns(node), shell)
    }

    /// Runs `shell` inside any namespace of the lab (bounded).
    pub fn exec_ns(&self, ns: &str, shell: &str) -> Output {
        exec_ns(ns, shell)
    }

    /// PIDs of the processes inside namespace `ns` (`ip netns pids`).
    pub fn pids_in(&self, ns: &str) -> Vec<u32> {
        pids_in(ns)
    }

    /// Whether `link` of `node` is up and has carrier (from inside the node).
    pub fn link_up(&self, node: Node, link: Link) -> bool {
        let out = exec_ns(
            &self.ns(node),
            &format!("ip -o link show dev {}", link.ifname()),
        );
        let text = String::from_utf8_lossy(&out.stdout);
        out.status.success() && text.contains("state UP") && !text.contains("NO-CARRIER")
    }

    /// Whether the switch port of `node` is up (`s-n1`/`s-n2` in the switch namespace).
    pub fn switch_port_up(&self, node: Node) -> bool {
        let out = exec_ns(
            &self.switch_ns(),
            &format!("ip -o link show dev s-{}", node.name()),
        );
        let text = String::from_utf8_lossy(&out.stdout);
        out.status.success() && text.contains("state UP")
    }

    /// Sets a link of a node down or up by hand (a cut cable, not a power loss): `Public`
    /// is cut on the switch side, `Direct` inside the node.
    pub fn set_link(&self, node: Node, link: Link, up: bool) {
        let state = if up { "up" } else { "down" };
        match link {
            Link::Public => ip(&[
                "-n",
                &self.switch_ns(),
                "link",
                "set",
                &format!("s-{}", node.name()),
                state,
            ]),
            Link::Direct => ip(&["-n", &self.ns(node), "link", "set", "eth1", state]),
        }
    }

    /// Which nodes have `addr` configured (`ip -n NS -4 addr`), whatever their power.
    pub fn vip_holder(&self, addr: Ipv4Addr) -> Vec<Node> {
        Node::BOTH
            .into_iter()
            .filter(|n| {
                let out = exec_ns(&self.ns(*n), "ip -o -4 addr show");
                String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .any(|w| w.split('/').next() == Some(addr.to_string().as_str()))
            })
            .collect()
    }

    /// Starts the background sampler of "at most one VIP holder, at most one bbsim", every
    /// [`SAMPLE_PERIOD`], counting the VIP only on a powered, booted node (see
    /// [`PairLab::sample_invariants_every`]).
    pub fn sample_invariants(&self, vip: Ipv4Addr) -> InvariantSampler {
        self.sample_invariants_every(vip, SAMPLE_PERIOD)
    }

    /// Like [`PairLab::sample_invariants`], every `period` (a long soak samples less often),
    /// and counting the VIP only on a node that is powered and booted: a powered-off node's
    /// namespace keeps the addresses its last life configured (see Power above) but no machine
    /// answers for them, and its next boot flushes them first. Without this, a node fenced
    /// while its bbwd was dead (so nothing removed the VIP before the power loss) would count
    /// as a second holder once the survivor takes over.
    pub fn sample_invariants_every(&self, vip: Ipv4Addr, period: Duration) -> InvariantSampler {
        let events = Node::BOTH.map(|n| Some(self.bmc(n).dir.join("node.events")));
        InvariantSampler::start_with([self.ns(Node::N1), self.ns(Node::N2)], vip, period, events)
    }

    /// One GET of `/status` from the client namespace (1 s timeout).
    pub fn client_get(&self, addr: Ipv4Addr, port: u16) -> ProbeAttempt {
        let ns = self.client_ns();
        let target = SocketAddr::from((addr, port));
        std::thread::spawn(move || {
            let start = Instant::now();
            match enter_netns(&ns) {
                Ok(()) => probe_once(target, start),
                Err(e) => ProbeAttempt {
                    start,
                    end: Instant::now(),
                    code: None,
                    node: None,
                    error: Some(e),
                },
            }
        })
        .join()
        .expect("client_get thread")
    }

    /// Starts the client probe: a GET of `/status` on `addr:port` every 20 ms from the client
    /// namespace, each with a 1 s timeout, at most `max_attempts` and for at most `max_for`.
    pub fn probe(
        &self,
        addr: Ipv4Addr,
        port: u16,
        max_attempts: usize,
        max_for: Duration,
    ) -> Probe {
        Probe::start(
            self.client_ns(),
            SocketAddr::from((addr, port)),
            max_attempts,
            max_for,
        )
    }

    /// The BMCs' logs and node events, for failure messages.
    pub fn diagnostics(&self) -> String {
        let mut text = String::new();
        for (node, bmc) in Node::BOTH.iter().zip(&self.bmcs) {
            if let Some(bmc) = bmc {
                text.push_str(&format!(
                    "=== {}\n{}\n--- node.log:\n{}\n",
                    node.name(),
                    bmc.diagnostics(),
                    self.node_log(*node)
                ));
            }
        }
        text
    }
}

impl Drop for PairLab {
    fn drop(&mut self) {
        // BMCs first (ipmi_sim, then the node scripts it started), so nothing powers a node on
        // again while the namespaces are emptied.
        for bmc in &mut self.bmcs {
            drop(bmc.take());
        }
        let namespaces: Vec<String> = self.created.iter().rev().cloned().collect();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut left = 0;
            for ns in &namespaces {
                for pid in pids_in(ns) {
                    left += 1;
                    kill_pid(pid, libc::SIGKILL);
                }
            }
            if left == 0 || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(SAMPLE_PERIOD);
        }
        for ns in &namespaces {
            let _ = ip_quiet(&["netns", "del", ns]);
        }
    }
}

/// The `Instant` of a wall-clock time (Unix seconds) in the recent past or near future.
pub fn instant_of_unix(unix_s: f64) -> Instant {
    let now = Instant::now();
    let now_unix = crate::now_since_epoch().as_secs_f64();
    let delta = Duration::from_secs_f64((now_unix - unix_s).abs());
    if unix_s <= now_unix {
        now.checked_sub(delta).unwrap_or(now)
    } else {
        now + delta
    }
}

fn node_ip(node: Node, link: Link) -> Ipv4Addr {
    match link {
        Link::Public => Ipv4Addr::new(10, 77, 0, node.number()),
        Link::Direct => Ipv4Addr::new(10, 78, 0, node.number()),
    }
}

fn bmc_addr(node: Node) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 0, 200 + node.number())
}

fn ip(args: &[&str]) {
    let mut cmd = Command::new("ip");
    cmd.args(args);
    let out = run_bounded(cmd, CMD_TIMEOUT);
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ip ARGS` that never panics (for drop): `None` when it cannot run or takes over
/// [`CMD_TIMEOUT`] (then it is SIGKILLed by PID).
fn ip_quiet(args: &[&str]) -> Option<Output> {
    let mut child = Command::new("ip")
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + CMD_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return child.wait_with_output().ok(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                kill_pid(child.id(), libc::SIGKILL);
                let _ = child.wait();
                return None;
            }
        }
    }
}

fn sysctl(ns: &str, settings: &[&str]) {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, "sysctl", "-qw"])
        .args(settings);
    let out = run_bounded(cmd, CMD_TIMEOUT);
    assert!(
        out.status.success(),
        "sysctl in {ns} {settings:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn exec_ns(ns: &str, shell: &str) -> Output {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, "/bin/sh", "-c", shell]);
    run_bounded(cmd, CMD_TIMEOUT)
}

fn pids_in(ns: &str) -> Vec<u32> {
    let Some(out) = ip_quiet(&["netns", "pids", ns]) else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|p| pid_alive(*p))
        .collect()
}

/// Moves the calling thread into network namespace `ns` (by its `/run/netns` name).
fn enter_netns(ns: &str) -> Result<(), String> {
    let path = format!("/run/netns/{ns}");
    let file = fs::File::open(&path).map_err(|e| format!("open {path}: {e}"))?;
    set_netns(&file).map_err(|e| format!("setns {path}: {e}"))
}

fn set_netns(file: &fs::File) -> std::io::Result<()> {
    // SAFETY: setns(2) on an open namespace fd; CLONE_NEWNET changes only the calling thread's
    // network namespace, which is a thread the lab dedicates to this purpose.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Whether the calling thread's network namespace has IPv4 address `addr` on any interface.
fn has_ipv4(addr: Ipv4Addr) -> std::io::Result<bool> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a heap list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let want = u32::from(addr);
    let mut found = false;
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: `cur` is a non-null node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr is non-null and points to a sockaddr of the family it names.
            let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
            if family == libc::AF_INET {
                // SAFETY: family AF_INET means the sockaddr is a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                if u32::from_be(sin.sin_addr.s_addr) == want {
                    found = true;
                }
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `list` came from getifaddrs and is freed exactly once.
    unsafe { libc::freeifaddrs(list) };
    Ok(found)
}

/// The inode of a network namespace file (`/run/netns/NAME` or `/proc/PID/ns/net`).
fn netns_inode(path: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).ok().map(|m| m.ino())
}

/// Whether the node script's last event in `events` (`node.events`) is `BOOTED`.
fn booted(events: &Path) -> bool {
    fs::read_to_string(events)
        .ok()
        .and_then(|t| {
            t.lines()
                .last()
                .and_then(|l| l.split_whitespace().nth(1).map(|k| k == "BOOTED"))
        })
        .unwrap_or(false)
}

/// PIDs of live `bbsim` processes, with the inode of their network namespace.
fn bbsims_with_netns() -> Vec<(u32, u64)> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        match fs::read(format!("/proc/{pid}/comm")) {
            Ok(comm) if comm.strip_suffix(b"\n").unwrap_or(&comm) == b"bbsim" => {}
            _ => continue,
        }
        if let Some(ino) = netns_inode(&format!("/proc/{pid}/ns/net")) {
            if pid_alive(pid) {
                found.push((pid, ino));
            }
        }
    }
    found
}

// ---------------------------------------------------------------------------------------------
// The invariant sampler

#[derive(Default)]
struct SamplerState {
    samples: usize,
    max_holders: usize,
    max_running: usize,
    /// First few samples that broke "at most one" (for the failure message).
    violations: Vec<String>,
    errors: usize,
    /// Runs of consecutive violating samples (a run ends at the first good sample).
    episodes: usize,
    /// Whether the last sample violated.
    in_violation: bool,
    /// The first sample of each episode not yet taken by [`InvariantSampler::take_new_episodes`]
    /// (bounded: a soak drains it every 100 ms).
    new_episodes: Vec<Violation>,
}

/// The first sample of a run of samples that saw two VIP holders or two Bitbucket simulators.
#[derive(Debug, Clone)]
pub struct Violation {
    pub at: Instant,
    /// Nodes holding the VIP (1, 2).
    pub holders: Vec<usize>,
    /// Live `bbsim` processes: (pid, node 1 or 2).
    pub running: Vec<(u32, usize)>,
}

/// Every [`SAMPLE_PERIOD`] (or the period given), on its own thread: which of the two servers has the VIP configured
/// (by `getifaddrs` inside each server's namespace) and which runs a `bbsim` (by /proc: the
/// process's network namespace). Stops on drop.
pub struct InvariantSampler {
    stop: Arc<AtomicBool>,
    state: Arc<Mutex<SamplerState>>,
    thread: Option<JoinHandle<()>>,
}

const MAX_VIOLATIONS_KEPT: usize = 20;
/// Most episodes kept between two [`InvariantSampler::take_new_episodes`] (each is counted
/// anyway).
const MAX_NEW_EPISODES_KEPT: usize = 100;

impl InvariantSampler {
    /// `power_events[i]`: node i's `node.events`; when given, node i counts as a VIP holder
    /// only while its last event is `BOOTED` (after the boot's address flush, before `OFF`).
    fn start_with(
        namespaces: [String; 2],
        vip: Ipv4Addr,
        period: Duration,
        power_events: [Option<PathBuf>; 2],
    ) -> InvariantSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(SamplerState::default()));
        let files: Vec<fs::File> = namespaces
            .iter()
            .map(|ns| {
                let path = format!("/run/netns/{ns}");
                fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"))
            })
            .collect();
        let inodes: Vec<u64> = namespaces
            .iter()
            .map(|ns| netns_inode(&format!("/run/netns/{ns}")).expect("namespace inode"))
            .collect();
        let thread = {
            let (stop, state) = (stop.clone(), state.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let mut holders = Vec::new();
                    let mut errors = 0;
                    for (i, file) in files.iter().enumerate() {
                        match set_netns(file).and_then(|()| has_ipv4(vip)) {
                            Ok(true) if power_events[i].as_deref().is_some_and(|p| !booted(p)) => {}
                            Ok(true) => holders.push(i + 1),
                            Ok(false) => {}
                            Err(_) => errors += 1,
                        }
                    }
                    let running: Vec<(u32, usize)> = bbsims_with_netns()
                        .into_iter()
                        .filter_map(|(pid, ino)| {
                            inodes.iter().position(|i| *i == ino).map(|n| (pid, n + 1))
                        })
                        .collect();
                    {
                        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                        s.samples += 1;
                        s.errors += errors;
                        s.max_holders = s.max_holders.max(holders.len());
                        s.max_running = s.max_running.max(running.len());
                        let bad = holders.len() > 1 || running.len() > 1;
                        if bad && !s.in_violation {
                            s.episodes += 1;
                            if s.new_episodes.len() < MAX_NEW_EPISODES_KEPT {
                                s.new_episodes.push(Violation {
                                    at: Instant::now(),
                                    holders: holders.clone(),
                                    running: running.clone(),
                                });
                            }
                        }
                        s.in_violation = bad;
                        if bad && s.violations.len() < MAX_VIOLATIONS_KEPT {
                            s.violations.push(format!(
                                "t+{:?}: VIP {vip} on nodes {holders:?}, bbsim (pid, node) {running:?}",
                                started.elapsed()
                            ));
                        }
                    }
                    next += period;
                    let now = Instant::now();
                    if next > now {
                        std::thread::sleep(next - now);
                    } else {
                        next = now;
                    }
                }
            })
        };
        InvariantSampler {
            stop,
            state,
            thread: Some(thread),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&SamplerState) -> T) -> T {
        f(&self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Most nodes ever seen holding the VIP at once.
    pub fn max_holders(&self) -> usize {
        self.with(|s| s.max_holders)
    }

    /// Most nodes ever seen running a `bbsim` at once (counting bbsim processes).
    pub fn max_running(&self) -> usize {
        self.with(|s| s.max_running)
    }

    /// Samples taken so far.
    pub fn samples(&self) -> usize {
        self.with(|s| s.samples)
    }

    /// Samples whose namespace look-up failed (should stay 0).
    pub fn errors(&self) -> usize {
        self.with(|s| s.errors)
    }

    /// The first samples that saw two holders or two bbsims.
    pub fn violations(&self) -> Vec<String> {
        self.with(|s| s.violations.clone())
    }

    /// Runs of consecutive samples that saw two holders or two bbsims, so far.
    pub fn episodes(&self) -> usize {
        self.with(|s| s.episodes)
    }

    /// Whether the latest sample saw two holders or two bbsims.
    pub fn in_violation(&self) -> bool {
        self.with(|s| s.in_violation)
    }

    /// The episodes that began since the last call (their first samples), oldest first.
    pub fn take_new_episodes(&self) -> Vec<Violation> {
        std::mem::take(
            &mut self
                .state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .new_episodes,
        )
    }

    /// Panics unless at most one node held the VIP and at most one bbsim ran in every sample,
    /// and the sampler really sampled.
    pub fn assert_at_most_one(&self) {
        self.with(|s| {
            assert!(s.samples > 0, "the invariant sampler took no sample");
            assert!(
                s.max_holders <= 1 && s.max_running <= 1,
                "at most one VIP holder and one Bitbucket: max holders {}, max running {}; {:?}",
                s.max_holders,
                s.max_running,
                s.violations
            );
        });
    }
}

impl Drop for InvariantSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The client probe

/// One probe request.
#[derive(Debug, Clone)]
pub struct ProbeAttempt {
    pub start: Instant,
    pub end: Instant,
    /// HTTP status code, when a reply came.
    pub code: Option<u16>,
    /// `X-Bbsim-Node` of the reply (`bbsim --node NAME`).
    pub node: Option<String>,
    /// What went wrong (connect refused, timed out, ...), when no reply came.
    pub error: Option<String>,
}

impl ProbeAttempt {
    /// A 200 reply.
    pub fn ok(&self) -> bool {
        self.code == Some(200)
    }

    /// A 200 reply from `node`.
    pub fn ok_from(&self, node: Node) -> bool {
        self.ok() && self.node.as_deref() == Some(node.name())
    }
}

/// A client in the client namespace GETting `/status` every [`SAMPLE_PERIOD`], each request
/// with its own [`PROBE_REQUEST_TIMEOUT`] (requests overlap while the target is silent).
/// Bounded in count and time; [`Probe::finish`] (or drop) stops it.
pub struct Probe {
    stop: Arc<AtomicBool>,
    results: Arc<Mutex<Vec<ProbeAttempt>>>,
    thread: Option<JoinHandle<()>>,
}

impl Probe {
    fn start(ns: String, target: SocketAddr, max_attempts: usize, max_for: Duration) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let results = Arc::new(Mutex::new(Vec::with_capacity(max_attempts)));
        let thread = {
            let (stop, results) = (stop.clone(), results.clone());
            std::thread::spawn(move || {
                if let Err(e) = enter_netns(&ns) {
                    let now = Instant::now();
                    results
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(ProbeAttempt {
                            start: now,
                            end: now,
                            code: None,
                            node: None,
                            error: Some(e),
                        });
                    return;
                }
                let began = Instant::now();
                let in_flight = Arc::new(AtomicUsize::new(0));
                let mut workers = Vec::new();
                let mut next = began;
                for _ in 0..max_attempts {
                    if stop.load(Ordering::Relaxed) || began.elapsed() > max_for {
                        break;
                    }
                    if in_flight.load(Ordering::Relaxed) < PROBE_MAX_IN_FLIGHT {
                        let (results, in_flight) = (results.clone(), in_flight.clone());
                        in_flight.fetch_add(1, Ordering::Relaxed);
                        // Threads spawned here inherit this thread's (the client's) namespace.
                        workers.push(std::thread::spawn(move || {
                            let attempt = probe_once(target, Instant::now());
                            results
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(attempt);
                            in_flight.fetch_sub(1, Ordering::Relaxed);
                        }));
                    }
                    next += SAMPLE_PERIOD;
                    let now = Instant::now();
                    if next > now {
                        std::thread::sleep(next - now);
                    }
                    workers.retain(|w| !w.is_finished());
                }
                for w in workers {
                    let _ = w.join();
                }
            })
        };
        Probe {
            stop,
            results,
            thread: Some(thread),
        }
    }

    /// The attempts finished so far, in start order.
    pub fn attempts(&self) -> Vec<ProbeAttempt> {
        let mut v = self
            .results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        v.sort_by_key(|a| a.start);
        v
    }

    /// Whether the probe has stopped on its own (count or time bound reached, all joined).
    pub fn is_finished(&self) -> bool {
        self.thread
            .as_ref()
            .map(|t| t.is_finished())
            .unwrap_or(true)
    }

    /// Stops the probe, waits for requests in flight (at most their timeout), and returns
    /// every attempt in start order.
    pub fn finish(mut self) -> Vec<ProbeAttempt> {
        self.stop_and_join();
        self.attempts()
    }

    /// The first attempt started at or after `after` that `node` answered with 200.
    pub fn first_ok_from(
        attempts: &[ProbeAttempt],
        node: Node,
        after: Instant,
    ) -> Option<&ProbeAttempt> {
        attempts
            .iter()
            .find(|a| a.start >= after && a.ok_from(node))
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// One `GET /status HTTP/1.0` within [`PROBE_REQUEST_TIMEOUT`], from the calling thread's
/// namespace.
fn probe_once(target: SocketAddr, start: Instant) -> ProbeAttempt {
    let result = (|| -> Result<(u16, Option<String>), String> {
        let remaining = |what: &str| {
            PROBE_REQUEST_TIMEOUT
                .checked_sub(start.elapsed())
                .filter(|d| !d.is_zero())
                .ok_or_else(|| format!("timeout ({what})"))
        };
        let mut stream = TcpStream::connect_timeout(&target, remaining("connect")?)
            .map_err(|e| format!("connect: {e}"))?;
        stream
            .set_write_timeout(Some(remaining("write")?))
            .map_err(|e| e.to_string())?;
        stream
            .write_all(b"GET /status HTTP/1.0\r\n\r\n")
            .map_err(|e| format!("write: {e}"))?;
        let mut reply = Vec::with_capacity(512);
        let mut buf = [0u8; 1024];
        loop {
            stream
                .set_read_timeout(Some(remaining("read")?))
                .map_err(|e| e.to_string())?;
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) if reply.len() < 64 * 1024 => reply.extend_from_slice(&buf[..n]),
                Ok(_) => break,
                Err(e) => return Err(format!("read: {e}")),
            }
        }
        let text = String::from_utf8_lossy(&reply);
        let code = text
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("not HTTP: {:?}", text.chars().take(60).collect::<String>()))?;
        let node = text
            .split("\r\n\r\n")
            .next()
            .unwrap_or("")
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("x-bbsim-node")
                    .then(|| v.trim().to_string())
            });
        Ok((code, node))
    })();
    let end = Instant::now();
    match result {
        Ok((code, node)) => ProbeAttempt {
            start,
            end,
            code: Some(code),
            node,
            error: None,
        },
        Err(e) => ProbeAttempt {
            start,
            end,
            code: None,
            node: None,
            error: Some(e),
        },
    }
}

/// ipmi_sim's "power": boots the node on start, and on SIGTERM cuts its links and SIGKILLs
/// everything in its namespace. Runs in the switch namespace.
/// Arguments: BMC dir, node namespace, switch port, eth0 address/len, eth1 address/len.
const NODE_SCRIPT: &str = r#"#!/bin/sh
# A server of the pair lab, as ipmi_sim's startcmd: powered on while this process exists.
dir=$1 ns=$2 port=$3 a0=$4 a1=$5
power_loss() {
  echo "$(date +%s.%N) OFF $$" >> "$dir/node.events"
  # Links first and at once (both NICs lose power), then every process, frozen first so none
  # reacts to another's death: no graceful stop.
  ip link set "$port" down
  ip -n "$ns" link set eth1 down
  pids=$(ip netns pids "$ns")
  [ -n "$pids" ] && kill -STOP $pids && kill -KILL $pids
  echo "$(date +%s.%N) TERM $$" >> "$dir/node.events"
  exit 0
}
trap power_loss TERM INT
# START before the pid file: whoever sees the new pid also finds its START line.
echo "$(date +%s.%N) START $$" >> "$dir/node.events"
echo $$ > "$dir/node.pid"
# Boot: a fresh machine holds only its static addresses and knows no neighbours.
ip -n "$ns" addr flush dev eth0
ip -n "$ns" addr flush dev eth1
ip -n "$ns" addr add "$a0" dev eth0
ip -n "$ns" addr add "$a1" dev eth1
ip -n "$ns" neigh flush all
ip -n "$ns" link set eth0 up
ip -n "$ns" link set eth1 up
ip link set "$port" up
echo "$(date +%s.%N) BOOTED $$" >> "$dir/node.events"
# LAB_BOOT: this start of the node command is a boot (a later restart of bbwd alone is not); its
# value, this power process's pid, names the boot (the node command records it once booted).
LAB_BOOT=$$ ip netns exec "$ns" /bin/sh "$dir/node-cmd.sh" >> "$dir/node.log" 2>&1 < /dev/null &
while :; do sleep 0.2 & wait $!; done
"#;
