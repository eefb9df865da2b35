//! The pair fault soak's pieces (`tests/src/bin/soak.rs`, `scripts/soak.sh`): a seeded PRNG,
//! the fault kinds with their injection and heal steps on the pair lab, and the fault plan a
//! seed draws.
//!
//! Owns: nothing but what a fault changes inside the lab's namespaces (a node's power through
//! its BMC, signals to the lab's own `bbwd`/`bbsim` processes by PID, links, `ip rule`s, the
//! witness's ICMP setting) and files in the lab's directory. Every injection has a heal that
//! undoes it; heals are idempotent and never panic. Must not: touch the root namespace or any
//! process outside the lab (all PIDs come from `ip netns pids` of a lab namespace).
//!
//! # How each fault is made (and why)
//! * power off / cycle: `ipmitool chassis power off|cycle` against the node's ipmi_sim BMC from
//!   the switch namespace, as the lab's `power` does (not its panicking wrapper: a soak goes
//!   on). Healed by powering it on.
//! * bbwd SIGKILL / SIGSTOP / SIGTERM: the `bbwd` process in the node's namespace, by PID,
//!   leaving its Bitbucket (`bbsim`) running, as systemd's `KillMode=process` does. bbwd is
//!   started again ([`start_bbwd`]) with the node's own power-on command (`node-cmd.sh`, the
//!   lab's), detached with `setsid -f` inside the namespace: a power loss still kills it.
//! * Bitbucket crash / hang / fails-to-start: bbsim's `/_sim/crash`, `/_sim/hang`, and its
//!   `DIR/fail-start` file (the next start exits 1) followed by a crash.
//! * link cuts both ways: `ip link set down` (the lab's `set_link`): one link, or the direct
//!   link plus a blackhole rule for heartbeat UDP on the public link in both nodes (all
//!   heartbeats cut, both alive, the client and the BMCs still reachable).
//! * link cuts one way: this kernel has no `sch_netem` (CONFIG_NET_SCH_NETEM is not set), no tc
//!   actions, and the machine no nft/iptables. A policy-routing rule in the sending node
//!   (`ip rule add to PEER ipproto udp dport 5405 blackhole`) drops exactly one direction of
//!   the heartbeat on that link at the sender, with nothing in the path: the same effect as a
//!   relay that drops one direction, without a relay whose own scheduling on a loaded 2-core
//!   machine could drop heartbeats the soak did not mean to drop.
//! * BMC unreachable: a blackhole rule in one node for its peer's BMC address (that node can
//!   no longer fence; the operator's `ipmitool` in the switch namespace still works).
//! * witness unreachable: the witness is an address on the switch's bridge; the switch
//!   namespace stops answering pings (`net.ipv4.icmp_echo_ignore_all=1`).
//!
//! # Replay
//! [`plan`] draws every fault (kind, which role it targets, link, direction, durations,
//! overlaps) from the seed alone, before the lab exists: the same seed gives the same sequence.
//! Only the node a role names is decided at run time (whichever node is active then).

use std::fmt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::pairlab::{Link, Node, PairLab};
use crate::pairnode::{self, HB_PORT, SIM_PORT};
use crate::{bbwd_bin, kill_pid, pid_alive};

/// The witness: an address on the switch's bridge (the lab's public subnet).
pub const WITNESS: &str = "10.77.0.254";
/// Bound of each command a fault runs (ipmitool, curl, ip, bbwd status).
pub const CMD_TIMEOUT: Duration = Duration::from_secs(15);
/// Bound for a node's power to change after its BMC accepted the command (ipmi_sim's 1 s tick,
/// the node script, and a busy machine).
pub const POWER_TIMEOUT: Duration = Duration::from_secs(15);
/// Bound for bbwd to exit after SIGTERM: it stops Bitbucket first (lab: `stop_timeout` 2 s +
/// `kill_timeout` 2 s), plus margin.
pub const BBWD_STOP_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// The PRNG

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, seedable, good enough to pick faults.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`; the modulo bias is irrelevant at these sizes).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `lo..=hi` milliseconds.
    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi - lo + 1))
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

// ---------------------------------------------------------------------------------------------
// Fault kinds and the plan

/// What a fault does. Each has its own injection and heal ([`inject`], [`Injected::heal`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Chassis power off through the BMC; healed by power on after the hold.
    PowerOff,
    /// Chassis power cycle through the BMC; healed by waiting until it is on again.
    PowerCycle,
    /// SIGKILL bbwd (Bitbucket keeps running); healed by starting bbwd again after the hold
    /// (systemd's `RestartSec`).
    BbwdKill,
    /// SIGSTOP bbwd for the hold (past `peer_timeout`), then SIGCONT.
    BbwdStop,
    /// SIGTERM bbwd (it stops Bitbucket, then exits), then start it again after the hold.
    BbwdRestart,
    /// Bitbucket exits at once (`/_sim/crash`); bbwd restarts it; nothing to heal.
    BbCrash,
    /// Bitbucket hangs, ignoring SIGTERM (`/_sim/hang`); bbwd kills it; nothing to heal.
    BbHang,
    /// The next Bitbucket start fails (`fail-start`), then a crash; healed by removing the
    /// file (the operator's `bbwd reset` follows if the node went `failed`).
    BbFailStart,
    /// One link down (both ways) on one node; healed by setting it up.
    LinkCut,
    /// Every heartbeat path cut both ways, both nodes alive and the public link kept.
    HeartbeatCut,
    /// One node's heartbeats to its peer dropped (one way), on one link or both.
    OneWayCut,
    /// One node cannot reach its peer's BMC (cannot fence).
    BmcUnreachable,
    /// The witness stops answering pings.
    WitnessUnreachable,
}

impl Kind {
    pub const ALL: [Kind; 13] = [
        Kind::PowerOff,
        Kind::PowerCycle,
        Kind::BbwdKill,
        Kind::BbwdStop,
        Kind::BbwdRestart,
        Kind::BbCrash,
        Kind::BbHang,
        Kind::BbFailStart,
        Kind::LinkCut,
        Kind::HeartbeatCut,
        Kind::OneWayCut,
        Kind::BmcUnreachable,
        Kind::WitnessUnreachable,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::PowerOff => "power-off",
            Kind::PowerCycle => "power-cycle",
            Kind::BbwdKill => "bbwd-kill",
            Kind::BbwdStop => "bbwd-stop",
            Kind::BbwdRestart => "bbwd-restart",
            Kind::BbCrash => "bb-crash",
            Kind::BbHang => "bb-hang",
            Kind::BbFailStart => "bb-fail-start",
            Kind::LinkCut => "link-cut",
            Kind::HeartbeatCut => "heartbeat-cut",
            Kind::OneWayCut => "one-way-cut",
            Kind::BmcUnreachable => "bmc-unreachable",
            Kind::WitnessUnreachable => "witness-unreachable",
        }
    }

    /// Relative weight in the random mix: the faults a real pair sees most (a crash, a power
    /// loss, an agent restart) come most often; every kind is drawn at least every ~20 faults.
    fn weight(self) -> u64 {
        match self {
            Kind::PowerOff | Kind::BbCrash | Kind::BbwdKill => 10,
            Kind::PowerCycle | Kind::BbwdRestart | Kind::LinkCut | Kind::OneWayCut => 8,
            Kind::BbwdStop | Kind::BbHang | Kind::HeartbeatCut => 7,
            Kind::BbFailStart | Kind::BmcUnreachable | Kind::WitnessUnreachable => 6,
        }
    }

    /// Which roles the kind may target (Bitbucket faults need a running Bitbucket).
    fn targets(self) -> &'static [Role] {
        match self {
            Kind::BbCrash | Kind::BbHang | Kind::BbFailStart => &[Role::Active],
            Kind::HeartbeatCut | Kind::WitnessUnreachable => &[Role::Active],
            _ => &[Role::Active, Role::Standby],
        }
    }
}

/// Which node a fault hits, named by its role when the fault is injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Active,
    Standby,
}

/// One planned fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub kind: Kind,
    pub role: Role,
    /// `LinkCut`: the link; `OneWayCut`: one link, or `None` for both.
    pub link: Option<Link>,
    /// How long the fault lasts before its heal (for a kill: the restart delay).
    pub hold: Duration,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let role = match self.role {
            Role::Active => "active",
            Role::Standby => "standby",
        };
        write!(f, "{} {role}", self.kind.name())?;
        match (self.kind, self.link) {
            (Kind::LinkCut | Kind::OneWayCut, Some(l)) => write!(f, " {}", l.ifname())?,
            (Kind::OneWayCut, None) => write!(f, " eth0+eth1")?,
            _ => {}
        }
        write!(f, " hold {:.1}s", self.hold.as_secs_f64())
    }
}

/// One step of the soak: a fault, sometimes with a second one overlapping it (injected during
/// the first's hold, healed before it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub faults: Vec<Fault>,
}

/// Percentage of steps with a second, overlapping fault.
const OVERLAP_PERCENT: u64 = 12;

/// Draws one fault of `kind` (targets, link, hold) from `rng`.
pub fn fault_of(kind: Kind, rng: &mut SplitMix64) -> Fault {
    let targets = kind.targets();
    let role = targets[rng.below(targets.len() as u64) as usize];
    let link = match kind {
        Kind::LinkCut => Some(if rng.chance(50) {
            Link::Public
        } else {
            Link::Direct
        }),
        Kind::OneWayCut => match rng.below(3) {
            0 => Some(Link::Public),
            1 => Some(Link::Direct),
            _ => None,
        },
        _ => None,
    };
    // Holds in ms: long enough for the fault to be noticed (peer_timeout 1 s, fence delay 2 s)
    // and short enough to keep a cycle near 10 s.
    let hold = match kind {
        Kind::PowerOff => rng.millis(2000, 6000),
        Kind::PowerCycle => Duration::ZERO,
        // systemd's RestartSec=2s, give or take.
        Kind::BbwdKill => rng.millis(300, 3000),
        // Past peer_timeout (1 s), sometimes past the fence delay too.
        Kind::BbwdStop => rng.millis(1200, 4000),
        Kind::BbwdRestart => rng.millis(100, 1000),
        Kind::BbCrash => rng.millis(500, 2000),
        Kind::BbHang | Kind::BbFailStart => rng.millis(3000, 6000),
        Kind::LinkCut | Kind::OneWayCut | Kind::HeartbeatCut => rng.millis(1500, 5000),
        Kind::BmcUnreachable | Kind::WitnessUnreachable => rng.millis(2000, 6000),
    };
    Fault {
        kind,
        role,
        link,
        hold,
    }
}

fn weighted_kind(rng: &mut SplitMix64) -> Kind {
    let total: u64 = Kind::ALL.iter().map(|k| k.weight()).sum();
    let mut pick = rng.below(total);
    for k in Kind::ALL {
        if pick < k.weight() {
            return k;
        }
        pick -= k.weight();
    }
    unreachable!("pick < total")
}

/// The soak's steps for `faults` faults, from `seed` alone (see the module doc: replay).
pub fn plan(seed: u64, faults: usize) -> Vec<Step> {
    let mut rng = SplitMix64::new(seed);
    let mut steps = Vec::new();
    let mut count = 0;
    while count < faults {
        let first = fault_of(weighted_kind(&mut rng), &mut rng);
        let mut step = Step {
            faults: vec![first],
        };
        if count + 1 < faults && rng.chance(OVERLAP_PERCENT) {
            let mut kind = weighted_kind(&mut rng);
            while kind == step.faults[0].kind {
                kind = weighted_kind(&mut rng);
            }
            step.faults.push(fault_of(kind, &mut rng));
        }
        count += step.faults.len();
        steps.push(step);
    }
    steps
}

// ---------------------------------------------------------------------------------------------
// Injection and heal

/// A fault in effect: what to undo.
#[derive(Debug, Clone)]
pub struct Injected {
    pub fault: Fault,
    /// The node the fault's role named at injection.
    pub node: Node,
    /// The bbwd PIDs a SIGSTOP froze.
    stopped: Vec<u32>,
    /// `ip rule` specs added in a node (`(node, spec)`), deleted by the heal.
    rules: Vec<(Node, String)>,
    /// The node's boots before the injection (a power cycle is over after one more).
    boots_before: usize,
}

impl Injected {
    /// What the soak prints for it: `power-off n1 (active) hold 3.2s`.
    pub fn describe(&self) -> String {
        let f = self.fault.to_string();
        let (kind, rest) = f.split_once(' ').unwrap_or((&f, ""));
        format!("{kind} {} ({rest})", self.node.name())
    }
}

/// Applies `fault` to `node`. `Err` says what failed (the soak reports it and still heals).
pub fn inject(lab: &PairLab, fault: &Fault, node: Node) -> Result<Injected, (Injected, String)> {
    let mut inj = Injected {
        fault: fault.clone(),
        node,
        stopped: Vec::new(),
        rules: Vec::new(),
        boots_before: lab.bmc(node).node_starts(),
    };
    let result = match fault.kind {
        Kind::PowerOff => power(lab, node, "off"),
        Kind::PowerCycle => power(lab, node, "cycle"),
        Kind::BbwdKill => signal_bbwd(lab, node, libc::SIGKILL).map(|_| ()),
        Kind::BbwdStop => signal_bbwd(lab, node, libc::SIGSTOP).map(|pids| inj.stopped = pids),
        Kind::BbwdRestart => stop_bbwd(lab, node),
        Kind::BbCrash => sim_admin(lab, node, "/_sim/crash"),
        Kind::BbHang => sim_admin(lab, node, "/_sim/hang"),
        Kind::BbFailStart => std::fs::write(fail_start_file(lab, node), "exit\n")
            .map_err(|e| format!("write fail-start: {e}"))
            .and_then(|()| sim_admin(lab, node, "/_sim/crash")),
        Kind::LinkCut => {
            let link = fault.link.unwrap_or(Link::Direct);
            set_link(lab, node, link, false)
        }
        Kind::HeartbeatCut => {
            let mut r = set_link(lab, node, Link::Direct, false);
            for n in Node::BOTH {
                let spec = heartbeat_rule(lab, n, Link::Public);
                r = r.and(add_rule(lab, n, &spec));
                inj.rules.push((n, spec));
            }
            r
        }
        Kind::OneWayCut => {
            let links: &[Link] = match fault.link {
                Some(Link::Public) => &[Link::Public],
                Some(Link::Direct) => &[Link::Direct],
                None => &[Link::Public, Link::Direct],
            };
            let mut r = Ok(());
            for l in links {
                let spec = heartbeat_rule(lab, node, *l);
                r = r.and(add_rule(lab, node, &spec));
                inj.rules.push((node, spec));
            }
            r
        }
        Kind::BmcUnreachable => {
            let spec = format!("to {} blackhole", lab.bmc_addr(node.peer()).ip());
            let r = add_rule(lab, node, &spec);
            inj.rules.push((node, spec));
            r
        }
        Kind::WitnessUnreachable => witness_answers(lab, false),
    };
    match result {
        Ok(()) => Ok(inj),
        Err(e) => Err((inj, e)),
    }
}

impl Injected {
    /// Undoes the fault (idempotent; keeps going after a failed step, reports all failures).
    pub fn heal(&self, lab: &PairLab) -> Result<(), String> {
        let node = self.node;
        let mut errors = Vec::new();
        let mut note = |r: Result<(), String>| {
            if let Err(e) = r {
                errors.push(e);
            }
        };
        match self.fault.kind {
            Kind::PowerOff => note(ensure_on(lab, node)),
            Kind::PowerCycle => {
                // Over once the node booted again (ipmi_sim acts at its next tick).
                let deadline = Instant::now() + POWER_TIMEOUT;
                while lab.bmc(node).node_starts() <= self.boots_before && Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_millis(50));
                }
                note(ensure_on(lab, node));
            }
            Kind::BbwdKill | Kind::BbwdRestart => {
                if lab.node_on(node) && bbwd_pids(lab, node).is_empty() {
                    note(start_bbwd(lab, node));
                }
            }
            Kind::BbwdStop => {
                for pid in &self.stopped {
                    if pid_alive(*pid) {
                        kill_pid(*pid, libc::SIGCONT);
                    }
                }
            }
            Kind::BbCrash | Kind::BbHang => {}
            Kind::BbFailStart => {
                let f = fail_start_file(lab, node);
                if f.exists() {
                    note(std::fs::remove_file(&f).map_err(|e| format!("remove fail-start: {e}")));
                }
            }
            Kind::LinkCut => {
                if lab.node_on(node) {
                    note(set_link(
                        lab,
                        node,
                        self.fault.link.unwrap_or(Link::Direct),
                        true,
                    ));
                }
            }
            Kind::HeartbeatCut => {
                if lab.node_on(node) {
                    note(set_link(lab, node, Link::Direct, true));
                }
            }
            Kind::OneWayCut | Kind::BmcUnreachable => {}
            Kind::WitnessUnreachable => note(witness_answers(lab, true)),
        }
        for (n, spec) in &self.rules {
            note(del_rule(lab, *n, spec));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The lab's pieces a fault uses

/// Runs `cmd` for at most `timeout`, never panicking: `Err` when it cannot run or takes longer
/// (then it is SIGKILLed by PID).
pub fn run_quiet(mut cmd: Command, timeout: Duration) -> Result<Output, String> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn {what}: {e}"))?;
    // Read both pipes on threads so a chatty child cannot block on a full pipe.
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(o) = out.as_mut() {
            let _ = std::io::Read::read_to_end(o, &mut v);
        }
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(e) = err.as_mut() {
            let _ = std::io::Read::read_to_end(e, &mut v);
        }
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                kill_pid(child.id(), libc::SIGKILL);
                let _ = child.wait();
                return Err(format!("{what}: no exit within {timeout:?}"));
            }
            Err(e) => return Err(format!("wait {what}: {e}")),
        }
    };
    Ok(Output {
        status,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    })
}

fn checked(out: Result<Output, String>, what: &str) -> Result<(), String> {
    let out = out?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what}: {}{}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `/bin/sh -c shell` inside namespace `ns`, bounded, never panicking.
pub fn sh_in(ns: &str, shell: &str) -> Result<Output, String> {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, "/bin/sh", "-c", shell]);
    run_quiet(cmd, CMD_TIMEOUT)
}

/// `ipmitool chassis power ACTION` against `node`'s BMC from the switch namespace (the lab's
/// operator station), bounded and never panicking.
pub fn power(lab: &PairLab, node: Node, action: &str) -> Result<(), String> {
    let (user, pass) = lab.bmc_credentials();
    let bmc = lab.bmc_addr(node);
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        &lab.switch_ns(),
        "ipmitool",
        "-I",
        "lanplus",
    ])
    .args(["-H", &bmc.ip().to_string(), "-p", &bmc.port().to_string()])
    .args(["-U", user, "-P", pass, "-C", "3", "-N", "1", "-R", "3"])
    .args(["chassis", "power", action]);
    checked(
        run_quiet(cmd, CMD_TIMEOUT),
        &format!("ipmitool power {action} {}", node.name()),
    )
}

/// Waits (bounded) until the node script runs (`on`) or is gone (`!on`).
pub fn wait_node_power(lab: &PairLab, node: Node, on: bool, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while lab.node_on(node) != on {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// Powers the node on unless it is on, and waits (bounded) until it is.
pub fn ensure_on(lab: &PairLab, node: Node) -> Result<(), String> {
    // A power cycle or an off in progress: let ipmi_sim's tick act first.
    if lab.node_on(node) || wait_node_power(lab, node, true, Duration::from_millis(2500)) {
        return Ok(());
    }
    power(lab, node, "on")?;
    if wait_node_power(lab, node, true, POWER_TIMEOUT) {
        Ok(())
    } else {
        Err(format!("{} not on within {POWER_TIMEOUT:?}", node.name()))
    }
}

fn comm_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim().to_string())
        .unwrap_or_default()
}

/// The live `bbwd` processes in the node's namespace.
pub fn bbwd_pids(lab: &PairLab, node: Node) -> Vec<u32> {
    lab.pids_in(&lab.ns(node))
        .into_iter()
        .filter(|p| comm_of(*p) == "bbwd")
        .collect()
}

fn signal_bbwd(lab: &PairLab, node: Node, sig: i32) -> Result<Vec<u32>, String> {
    let pids = bbwd_pids(lab, node);
    if pids.is_empty() {
        return Err(format!("no bbwd running on {}", node.name()));
    }
    for pid in &pids {
        kill_pid(*pid, sig);
    }
    Ok(pids)
}

/// SIGTERM to bbwd and a bounded wait for it to exit (it stops Bitbucket first).
fn stop_bbwd(lab: &PairLab, node: Node) -> Result<(), String> {
    let pids = signal_bbwd(lab, node, libc::SIGTERM)?;
    let deadline = Instant::now() + BBWD_STOP_TIMEOUT;
    while pids.iter().any(|p| pid_alive(*p)) {
        if Instant::now() >= deadline {
            return Err(format!(
                "bbwd on {} still running {BBWD_STOP_TIMEOUT:?} after SIGTERM",
                node.name()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Starts bbwd on a powered node as its power-on does (the node's `node-cmd.sh`), detached
/// (`setsid -f`) inside its namespace, its output appended to the node's log.
///
/// Only on a node whose current boot has finished its boot step (the node command wrote this
/// power-on's id to `booted`): until then the boot itself starts bbwd, after voiding the last
/// boot's records; a start before that would resume from them (the lab's nodes share one
/// kernel boot id), as no real node can. Seen on a loaded machine, where a boot took longer than
/// the operator's wait.
pub fn start_bbwd(lab: &PairLab, node: Node) -> Result<(), String> {
    let dir = &lab.bmc(node).dir;
    let read = |path: std::path::PathBuf| {
        std::fs::read_to_string(path)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let power = read(dir.join("node.pid"));
    let booted = read(lab.dir().join(node.name()).join("booted"));
    if power.is_empty() || power != booted {
        return Err(format!(
            "{} is still booting (power-on {power:?}, last boot done {booted:?}): not started",
            node.name()
        ));
    }
    let shell = format!(
        "setsid -f /bin/sh {cmd} >> {log} 2>&1 < /dev/null",
        cmd = dir.join("node-cmd.sh").display(),
        log = dir.join("node.log").display()
    );
    checked(
        sh_in(&lab.ns(node), &shell),
        &format!("start bbwd on {}", node.name()),
    )
}

/// A bbsim admin request from inside the node (`curl`, bounded).
fn sim_admin(lab: &PairLab, node: Node, path: &str) -> Result<(), String> {
    let out = sh_in(
        &lab.ns(node),
        &format!("curl -sS -m 3 http://127.0.0.1:{SIM_PORT}{path}"),
    )?;
    if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ok") {
        Ok(())
    } else {
        Err(format!(
            "{path} on {}: no Bitbucket answering ({})",
            node.name(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn fail_start_file(lab: &PairLab, node: Node) -> std::path::PathBuf {
    lab.dir().join(node.name()).join("sim").join("fail-start")
}

fn set_link(lab: &PairLab, node: Node, link: Link, up: bool) -> Result<(), String> {
    let state = if up { "up" } else { "down" };
    let (ns, dev) = match link {
        Link::Public => (lab.switch_ns(), format!("s-{}", node.name())),
        Link::Direct => (lab.ns(node), "eth1".to_string()),
    };
    checked(
        sh_in(&ns, &format!("ip link set {dev} {state}")),
        &format!("link {dev} {state}"),
    )
}

/// The rule dropping `node`'s heartbeats to its peer on `link` (at the sender).
fn heartbeat_rule(lab: &PairLab, node: Node, link: Link) -> String {
    format!(
        "to {} ipproto udp dport {HB_PORT} blackhole",
        lab.node_addr(node.peer(), link)
    )
}

fn add_rule(lab: &PairLab, node: Node, spec: &str) -> Result<(), String> {
    checked(
        sh_in(&lab.ns(node), &format!("ip rule add {spec}")),
        &format!("ip rule add {spec} in {}", node.name()),
    )
}

/// Deletes every copy of the rule (a rule added twice by overlapping faults goes too).
fn del_rule(lab: &PairLab, node: Node, spec: &str) -> Result<(), String> {
    checked(
        sh_in(
            &lab.ns(node),
            &format!("while ip rule del {spec} 2>/dev/null; do :; done; true"),
        ),
        &format!("ip rule del {spec} in {}", node.name()),
    )
}

/// Puts the witness address on the switch's bridge (once, at set-up).
pub fn add_witness(lab: &PairLab) -> Result<(), String> {
    checked(
        sh_in(
            &lab.switch_ns(),
            &format!("ip addr add {WITNESS}/24 dev br0"),
        ),
        "witness address",
    )
}

/// Whether the switch namespace (the witness) answers pings.
fn witness_answers(lab: &PairLab, answer: bool) -> Result<(), String> {
    checked(
        sh_in(
            &lab.switch_ns(),
            &format!(
                "sysctl -qw net.ipv4.icmp_echo_ignore_all={}",
                if answer { 0 } else { 1 }
            ),
        ),
        "witness icmp",
    )
}

/// Writes a node's soak config: the pair lab's (`pairnode::set_up_node`) with the witness.
pub fn set_up_soak_node(lab: &PairLab, node: Node) {
    pairnode::set_up_node(lab, node);
    let path = pairnode::config_path(lab, node);
    let text = std::fs::read_to_string(&path).expect("read config");
    let anchor = "peer_timeout = \"1s\"";
    assert!(text.contains(anchor), "{anchor} in {}", path.display());
    let text = text.replacen(anchor, &format!("{anchor}\nwitness = \"{WITNESS}\""), 1);
    std::fs::write(&path, text).expect("write config");
}

/// `bbwd status --json` of a node, bounded (a SIGSTOPped daemon must not hang the soak):
/// `Value::Null` when it cannot be had.
pub fn status(lab: &PairLab, node: Node) -> serde_json::Value {
    let mut cmd = Command::new(bbwd_bin());
    cmd.args(["status", "--json", "-c"])
        .arg(pairnode::config_path(lab, node));
    run_quiet(cmd, CMD_TIMEOUT)
        .ok()
        .and_then(|o| serde_json::from_slice(&o.stdout).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// `role/state` of a node (`down` when its daemon is not answering, `off` when powered off).
pub fn role_state(lab: &PairLab, node: Node) -> String {
    if !lab.node_on(node) {
        return "off".into();
    }
    let st = status(lab, node);
    if st["daemon"] != "up" {
        return "down".into();
    }
    format!(
        "{}/{}",
        st["role"].as_str().unwrap_or("?"),
        st["state"].as_str().unwrap_or("?")
    )
}

/// `bbwd reset` (the operator's word after a `failed` state), bounded.
pub fn operator_reset(lab: &PairLab, node: Node) -> Result<(), String> {
    let mut cmd = Command::new(bbwd_bin());
    cmd.args(["reset", "-c"])
        .arg(pairnode::config_path(lab, node));
    checked(
        run_quiet(cmd, CMD_TIMEOUT),
        &format!("bbwd reset on {}", node.name()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_plans_the_same_faults_and_another_seed_does_not() {
        assert_eq!(plan(42, 200), plan(42, 200));
        assert_ne!(plan(42, 200), plan(43, 200));
    }

    #[test]
    fn a_plan_has_exactly_the_faults_asked_for_and_covers_every_kind() {
        let steps = plan(7, 1000);
        let faults: Vec<&Fault> = steps.iter().flat_map(|s| &s.faults).collect();
        assert_eq!(faults.len(), 1000);
        for k in Kind::ALL {
            assert!(faults.iter().filter(|f| f.kind == k).count() >= 20, "{k:?}");
        }
        assert!(steps.iter().any(|s| s.faults.len() == 2), "some overlap");
        assert!(steps.iter().all(|s| s.faults.len() <= 2));
    }

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        // First outputs for seed 1234567 of the reference C implementation (Vigna).
        let mut r = SplitMix64::new(1234567);
        assert_eq!(r.next_u64(), 6457827717110365317);
        assert_eq!(r.next_u64(), 3203168211198807973);
    }
}
