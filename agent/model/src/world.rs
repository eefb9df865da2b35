//! The world: two real [`Node`]s and the environment around them (power, processes, the VIP,
//! storage, BMCs, the network, operators), its transitions ([`Choice`]) and its invariants.
//!
//! Owns the shell semantics the checker assumes (see the crate doc) and the ghost facts the
//! invariants need (who is really powered, what really runs, which run sent a packet). Must
//! not: reimplement a decision of `bbwd-core`; every decision is the real `Node`'s.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use bbwd_core::fence::{Op, Reply};
use bbwd_core::heartbeat::{self as hb, Key, NodeName};
use bbwd_core::machine::{self, detail, FailReason, Sig};
use bbwd_core::node::{Action, Boot, Input, Node, PairSettings};
use bbwd_core::pair::{self, Hooks, Role};
use bbwd_core::probe::{BbState, ExitKind, ProbeFailure, ProbeOutcome};

/// Heartbeat links.
pub const LINKS: usize = 2;
/// Packets kept for replay / delayed, at most.
const POOL: usize = 2;
/// Most items processed at one instant before the world counts as live-locked.
const SAME_INSTANT_LIMIT: u32 = 400;

const MS: fn(u64) -> Duration = Duration::from_millis;

/// Defects re-introduced on purpose (each must make the checker fail).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mutant {
    /// A restarted bbwd is not told what still runs (`Boot::default()`), as the old shell did.
    AgentRestart,
    /// A failed `RemoveVip` is reported as done: the release counts as clean and hands over.
    ReleaseFailedHandover,
    /// The peer's BMC acknowledges power-off without acting and reads "off" once: one reading.
    OneReadingFence,
    /// The witness counts as unreachable after one missed ping.
    WitnessOneMiss,
    /// Both nodes preferred and both believe their name sorts first (no working tie-break).
    BothPreferred,
    /// The shell reuses the boot id across runs: a captured word of the peer is fresh again.
    ReplayedHandover,
}

impl Mutant {
    pub const ALL: [Mutant; 6] = [
        Mutant::AgentRestart,
        Mutant::ReleaseFailedHandover,
        Mutant::OneReadingFence,
        Mutant::WitnessOneMiss,
        Mutant::BothPreferred,
        Mutant::ReplayedHandover,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Mutant::AgentRestart => "agent-restart",
            Mutant::ReleaseFailedHandover => "release-failed-handover",
            Mutant::OneReadingFence => "one-reading-fence",
            Mutant::WitnessOneMiss => "witness-one-miss",
            Mutant::BothPreferred => "both-preferred",
            Mutant::ReplayedHandover => "replayed-handover",
        }
    }
    pub fn about(self) -> &'static str {
        match self {
            Mutant::AgentRestart => "a restarted bbwd that finds Bitbucket/VIP/storage still there does not resume (boots as not serving)",
            Mutant::ReleaseFailedHandover => "a release in which a step failed still hands over",
            Mutant::OneReadingFence => "one off reading (a stale one) taken as a confirmed fence",
            Mutant::WitnessOneMiss => "one missed witness ping is isolation, and a silent peer is re-evaluated only on packets: a takeover abandoned for good",
            Mutant::BothPreferred => "both nodes preferred_active and no tie-break: each takes itself for the winner",
            Mutant::ReplayedHandover => "a packet that does not answer the current challenge counts as consent: a replayed hand-over accepted",
        }
    }
    /// The faults a mutant's run injects (a narrower menu reaches the defect's scenario within
    /// a CI budget; the full menu would find it too, later).
    pub fn menu(self, c: Choice) -> bool {
        match self {
            Mutant::AgentRestart => {
                matches!(
                    c,
                    Choice::BbwdCrash(_) | Choice::PowerOff { total: false, .. }
                )
            }
            Mutant::ReleaseFailedHandover => matches!(c, Choice::Switchover(_) | Choice::Fail(_)),
            Mutant::OneReadingFence => {
                matches!(
                    c,
                    Choice::Pause(_) | Choice::BmcMode(_, BmcMode::Lying { .. })
                )
            }
            Mutant::WitnessOneMiss => matches!(
                c,
                Choice::Witness(..) | Choice::PowerOff { total: false, .. }
            ),
            Mutant::BothPreferred => false,
            Mutant::ReplayedHandover => {
                matches!(c, Choice::Dup(_) | Choice::PowerOff { total: false, .. })
            }
        }
    }
    /// The core defect this mutant re-enables (`bbwd_core::mutant`), if it is one (the witness
    /// mutant is a setting: one miss counts).
    pub fn core(self) -> Option<bbwd_core::mutant::Mutant> {
        use bbwd_core::mutant::Mutant as C;
        match self {
            Mutant::AgentRestart => Some(C::AgentRestart),
            Mutant::ReleaseFailedHandover => Some(C::ReleaseFailedHandover),
            Mutant::OneReadingFence => Some(C::OneReadingFence),
            Mutant::BothPreferred => Some(C::BothPreferred),
            Mutant::ReplayedHandover => Some(C::ReplayedHandover),
            Mutant::WitnessOneMiss => Some(C::WitnessOneMiss),
        }
    }
    pub fn parse(s: &str) -> Option<Mutant> {
        Mutant::ALL.into_iter().find(|m| m.name() == s)
    }
}

/// What the checker is asked to explore.
#[derive(Debug, Clone)]
pub struct Config {
    /// Faults per trace.
    pub faults: u8,
    /// Virtual time explored, from the cold start.
    pub horizon: Duration,
    /// Progress: this long after the last fault, exactly one node must serve.
    pub progress_bound: Duration,
    pub preferred: [bool; 2],
    pub witness: bool,
    pub fence_cycle: bool,
    /// Hardware watchdog timeout (a self-fenced node resets this long after).
    pub watchdog: Option<Duration>,
    /// `state_dir`'s storage record survives a power-off (it is on disk, as planned). `false`:
    /// the record is per kernel boot (e.g. under /run), so a rebooted node does not resume.
    pub record_survives_reboot: bool,
    /// Tolerate a node whose `next_deadline()` is still `now` after a `Tick` (a busy loop in
    /// the shell): tick it once per instant instead of reporting it.
    pub allow_spin: bool,
    pub mutant: Option<Mutant>,
}

impl Config {
    pub fn new(faults: u8, mutant: Option<Mutant>) -> Config {
        Config {
            faults,
            horizon: MS(6000),
            progress_bound: MS(4000),
            preferred: [true, false],
            witness: true,
            fence_cycle: false,
            watchdog: Some(MS(1000)),
            record_survives_reboot: true,
            allow_spin: false,
            mutant,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The environment

/// Bitbucket on one node (the environment's truth).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bb {
    pub pid: i32,
    /// Answers RUNNING from then on (503 STARTING before).
    ready_at: Duration,
    /// The leader exited; the group lingers until the supervisor's SIGKILL reaps it.
    leader_gone: bool,
    /// Checks time out (a hung JVM); SIGTERM is ignored.
    hung: bool,
    /// Survives SIGKILL.
    unkillable: bool,
}

/// How a node's BMC answers (the BMC *of* that node, used by its peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BmcMode {
    Truthful,
    /// Every operation fails.
    Unreachable,
    /// Operations take effect, but their answer is lost (timed out).
    Slow,
    /// Gives one stale "off" reading of a node that is on (a glitch, a reading taken before
    /// a power-on), then answers truthfully; commands are carried out. One reading must never
    /// be a fence (mutant `one-reading-fence`).
    Lying {
        off_once: bool,
    },
}

/// bbwd on one node.
#[derive(Debug, Clone, Hash)]
pub enum Bbwd {
    Running(Box<Node>),
    Paused(Box<Node>),
    /// Crashed (or not yet started after power-on); systemd restarts it at `restart_at`.
    Down,
}

/// One node and its surroundings.
#[derive(Debug, Clone, Hash)]
pub struct Env {
    pub powered: bool,
    pub bbwd: Bbwd,
    /// Runs of bbwd so far (the boot id derives from it).
    pub runs: u8,
    pub boot_id: hb::BootId,
    pub bb: Option<Bb>,
    pub vip: bool,
    pub storage: bool,
    /// `state_dir`'s "before_start hooks in effect" record: survives crashes and power-off.
    pub storage_record: bool,
    /// Persisted supervisor overlays (`state_dir`).
    failed_record: Option<FailReason>,
    maint_record: bool,
    pub bmc: BmcMode,
    /// This node's outstanding BMC op against the peer's BMC.
    bmc_op: Option<Op>,
    /// Bitbucket fails to start here (every start stays STARTING): a fault for good.
    fails_start: bool,
    pub witness_ok: bool,
    pub public_up: bool,
    next_ping: Duration,
    /// systemd restarts bbwd / the node finishes booting / the watchdog fires.
    restart_at: Option<Duration>,
    reset_at: Option<Duration>,
    next_pid: i32,
}

/// A datagram in flight.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Packet {
    pub to: u8,
    pub link: u8,
    pub bytes: Box<[u8]>,
    /// Ghost: the sender's boot id and what the packet claims (for traces and invariants).
    pub from_run: hb::BootId,
}

impl std::fmt::Debug for Packet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "n{}->n{} link{} v{} ({}b)",
            2 - self.to,
            self.to + 1,
            self.link,
            self.bytes[4],
            self.bytes.len()
        )
    }
}

/// Work the environment owes a node, in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Item {
    Deliver(Packet),
    /// Node `n`'s BMC operation answered.
    Bmc(u8),
    Hooks(u8, Hooks),
    VipAdd(u8),
    VipRemove(u8),
    Tick(u8),
}

impl Item {
    fn node(&self) -> u8 {
        match self {
            Item::Deliver(p) => p.to,
            Item::Bmc(n)
            | Item::Hooks(n, _)
            | Item::VipAdd(n)
            | Item::VipRemove(n)
            | Item::Tick(n) => *n,
        }
    }
    fn is_packet(&self) -> bool {
        matches!(self, Item::Deliver(_))
    }
}

/// The world's state.
#[derive(Debug, Clone, Hash)]
pub struct World {
    pub now: Duration,
    pub env: [Env; 2],
    pub pending: VecDeque<Item>,
    /// Delayed packets (delivered later, in any order).
    pub late: Vec<Packet>,
    /// Captured authentic packets (replayable).
    pub captured: Vec<Packet>,
    /// `cut[from][link]`: datagrams from `from` on `link` are lost.
    pub cut: [[bool; LINKS]; 2],
    pub faults: u8,
    /// When the last fault was injected.
    pub last_fault: Duration,
    /// A fault that needs an operator happened (Bitbucket fails to start, unkillable).
    pub needs_operator: bool,
    same_instant: u32,
    /// The instant a node was last ticked with its deadline left in the past (a spin).
    spun: [Option<Duration>; 2],
}

/// One transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Choice {
    /// The deterministic default: the first item, or time to the next deadline.
    Next,
    /// Faults and operator actions.
    Race(u8),
    Drop(u8),
    Hold(u8),
    Dup(u8),
    Fail(u8),
    Late(u8),
    Replay(u8),
    PowerOff {
        n: u8,
        total: bool,
    },
    PowerOn(u8),
    BmcMode(u8, BmcMode),
    BbwdCrash(u8),
    Pause(u8),
    Resume(u8),
    BbCrash(u8),
    BbHang(u8),
    BbUnkillable(u8),
    BbFailsStart(u8),
    Cut {
        from: u8,
        link: u8,
    },
    CutAll,
    Heal,
    Witness(u8, bool),
    Public(u8, bool),
    Maintenance(u8, bool),
    Switchover(u8),
    ConfirmPeerDown(u8),
}

/// A broken invariant.
#[derive(Debug, Clone)]
pub struct Violation {
    pub what: String,
}

/// The outcome of one transition.
pub enum Outcome {
    Ok(World),
    Bad(World, Violation),
}

/// Fixed parts of a run (settings, the base instant).
pub struct Model {
    pub cfg: Config,
    base: Instant,
    key: Key,
}

fn boot_id(n: u8, run: u8, mutant: Option<Mutant>) -> hb::BootId {
    let mut b = [0u8; 16];
    b[0] = 0xb0;
    b[1] = n;
    let _ = mutant;
    b[2] = run;
    b
}

impl Model {
    pub fn new(cfg: Config) -> Model {
        Model {
            cfg,
            base: Instant::now(),
            key: Key::new(&[0x5a; 32]).expect("key"),
        }
    }

    fn at(&self, t: Duration) -> Instant {
        self.base + t
    }

    fn sup_settings(&self) -> machine::Settings {
        machine::Settings {
            monitor_interval: MS(200),
            startup_timeout: MS(800),
            failures_before_action: 2,
            stop_timeout: MS(200),
            kill_timeout: MS(200),
            max_restarts: 1,
            restart_window: MS(10_000),
            database: false,
            pair: true,
            watchdog_resets: self.cfg.watchdog.is_some(),
        }
    }

    fn pair_settings(&self, n: u8, run: u8, now: Duration) -> PairSettings {
        let m = self.cfg.mutant;
        // Mutant `both-preferred`: one config copied to both nodes, and the core's tie-break off.
        let both = m == Some(Mutant::BothPreferred);
        let preferred = both || self.cfg.preferred[n as usize];
        PairSettings {
            pair: pair::Settings {
                peer_timeout: MS(600),
                preferred_active: preferred,
                name_first: n == 0,
                fence_delay: MS(700),
                boot_wait: MS(600),
                witness: self.cfg.witness || m == Some(Mutant::WitnessOneMiss),
                witness_misses: 2,
                link_hold: MS(400),
                step_timeout: MS(400),
                release_timeout: MS(600),
                bmc_watch: MS(3_600_000),
            },
            heartbeat_interval: MS(200),
            links: LINKS,
            key: self.key.clone(),
            me: NodeName::new(if n == 0 { "n1" } else { "n2" }).unwrap(),
            peer: NodeName::new(if n == 0 { "n2" } else { "n1" }).unwrap(),
            boot_id: boot_id(n, run, m),
            first_sequence: 1_000_000 + now.as_micros() as u64,
            fence_timeout: MS(400),
            fence_cycle: self.cfg.fence_cycle,
            preferred,
        }
    }

    /// Both nodes powered on at once, nothing running.
    pub fn initial(&self) -> World {
        let env = |n: u8| Env {
            powered: true,
            bbwd: Bbwd::Down,
            runs: 0,
            boot_id: [0; 16],
            bb: None,
            vip: false,
            storage: false,
            storage_record: false,
            failed_record: None,
            maint_record: false,
            bmc: BmcMode::Truthful,
            bmc_op: None,
            fails_start: false,
            witness_ok: true,
            public_up: true,
            next_ping: Duration::ZERO,
            restart_at: None,
            reset_at: None,
            next_pid: 100 * (n as i32 + 1),
        };
        let mut w = World {
            now: Duration::ZERO,
            env: [env(0), env(1)],
            pending: VecDeque::new(),
            late: Vec::new(),
            captured: Vec::new(),
            cut: [[false; LINKS]; 2],
            faults: 0,
            last_fault: Duration::ZERO,
            needs_operator: false,
            same_instant: 0,
            spun: [None; 2],
        };
        let mut v = None;
        self.start_bbwd(&mut w, 0, &mut v);
        self.start_bbwd(&mut w, 1, &mut v);
        w
    }

    /// Every transition enabled in `w`, the default first.
    pub fn choices(&self, w: &World) -> Vec<Choice> {
        let mut c = Vec::new();
        if self.first_ready(w).is_some() || self.next_time(w).is_some() {
            c.push(Choice::Next);
        }
        // Free: recoveries and the delivery of what a fault held back.
        for j in 0..w.late.len() {
            if w.env[w.late[j].to as usize].powered {
                c.push(Choice::Late(j as u8));
            }
        }
        for j in 0..w.captured.len() {
            c.push(Choice::Replay(j as u8));
        }
        for n in 0..2u8 {
            let e = &w.env[n as usize];
            if !e.powered && e.restart_at.is_none() {
                c.push(Choice::PowerOn(n));
            }
            if matches!(e.bbwd, Bbwd::Paused(_)) {
                c.push(Choice::Resume(n));
            }
            if e.powered && e.bmc != BmcMode::Truthful && !matches!(e.bmc, BmcMode::Lying { .. }) {
                c.push(Choice::BmcMode(n, BmcMode::Truthful));
            }
            if e.powered && !e.witness_ok {
                c.push(Choice::Witness(n, true));
            }
            if e.powered && !e.public_up {
                c.push(Choice::Public(n, true));
            }
            if running(e).is_some_and(|nd| nd.machine().view().maintenance.is_some()) {
                c.push(Choice::Maintenance(n, false));
            }
        }
        if w.cut.iter().flatten().any(|&x| x) {
            c.push(Choice::Heal);
        }
        if w.faults >= self.cfg.faults {
            return c;
        }
        // Faults (each costs one from the budget).
        for k in 0..w.pending.len().min(4) {
            let it = &w.pending[k];
            if k > 0 && self.ready(w, it) {
                c.push(Choice::Race(k as u8));
            }
            if it.is_packet() {
                c.push(Choice::Drop(k as u8));
                if w.late.len() < POOL {
                    c.push(Choice::Hold(k as u8));
                }
                if w.captured.len() < POOL {
                    c.push(Choice::Dup(k as u8));
                }
            }
            if matches!(it, Item::Hooks(..) | Item::VipAdd(_) | Item::VipRemove(_))
                && self.ready(w, it)
            {
                c.push(Choice::Fail(k as u8));
            }
        }
        for n in 0..2u8 {
            let e = &w.env[n as usize];
            if e.powered {
                c.push(Choice::PowerOff { n, total: false });
                c.push(Choice::PowerOff { n, total: true });
                if e.bmc == BmcMode::Truthful {
                    c.push(Choice::BmcMode(n, BmcMode::Unreachable));
                    c.push(Choice::BmcMode(n, BmcMode::Slow));
                    c.push(Choice::BmcMode(n, BmcMode::Lying { off_once: true }));
                }
                if matches!(e.bbwd, Bbwd::Running(_)) {
                    c.push(Choice::BbwdCrash(n));
                    c.push(Choice::Pause(n));
                    let nd = running(e).unwrap();
                    if nd.machine().view().maintenance.is_none() {
                        c.push(Choice::Maintenance(n, true));
                    }
                    if nd.role() == Some(Role::Active) {
                        c.push(Choice::Switchover(n));
                    }
                    if !w.env[1 - n as usize].powered {
                        c.push(Choice::ConfirmPeerDown(n));
                    }
                }
                if let Some(bb) = e.bb {
                    if !bb.leader_gone {
                        c.push(Choice::BbCrash(n));
                        if !bb.hung {
                            c.push(Choice::BbHang(n));
                        }
                        if !bb.unkillable {
                            c.push(Choice::BbUnkillable(n));
                        }
                    }
                }
                if !e.fails_start {
                    c.push(Choice::BbFailsStart(n));
                }
                if self.cfg.witness && e.witness_ok {
                    c.push(Choice::Witness(n, false));
                }
                if e.public_up {
                    c.push(Choice::Public(n, false));
                }
            }
            for link in 0..LINKS as u8 {
                if !w.cut[n as usize][link as usize] {
                    c.push(Choice::Cut { from: n, link });
                }
            }
        }
        if !w.cut.iter().flatten().all(|&x| x) {
            c.push(Choice::CutAll);
        }
        if let Some(m) = self.cfg.mutant {
            c.retain(|&x| !is_fault(x) || m.menu(x));
            if m == Mutant::OneReadingFence {
                // The paused node stays paused: its peer's fence is what is tested.
                c.retain(|&x| !matches!(x, Choice::Resume(_)));
            }
        }
        c
    }

    /// Applies `c` to a copy of `w`, then checks the invariants.
    pub fn apply(&self, w: &World, c: Choice, log: &mut Option<String>) -> Outcome {
        let mut w = w.clone();
        let mut v: Option<Violation> = None;
        let fault = is_fault(c);
        if fault {
            w.faults += 1;
            w.last_fault = w.now;
        } else if c != Choice::Next {
            // Recoveries count as the end of a fault episode too.
            w.last_fault = w.now;
        }
        match c {
            Choice::Next => match self.first_ready(&w) {
                Some(k) => {
                    let it = w.pending.remove(k).unwrap();
                    self.process(&mut w, it, false, &mut v);
                }
                None => self.advance(&mut w, &mut v),
            },
            Choice::Race(k) => {
                let it = w.pending.remove(k as usize).unwrap();
                self.process(&mut w, it, false, &mut v);
            }
            Choice::Drop(k) => {
                w.pending.remove(k as usize);
            }
            Choice::Hold(k) => {
                if let Some(Item::Deliver(p)) = w.pending.remove(k as usize) {
                    w.late.push(p);
                }
            }
            Choice::Dup(k) => {
                if let Some(Item::Deliver(p)) = w.pending.get(k as usize) {
                    w.captured.push(p.clone());
                }
                let it = w.pending.remove(k as usize).unwrap();
                self.process(&mut w, it, false, &mut v);
            }
            Choice::Fail(k) => {
                let it = w.pending.remove(k as usize).unwrap();
                self.process(&mut w, it, true, &mut v);
            }
            Choice::Late(j) => {
                let p = w.late.remove(j as usize);
                self.process(&mut w, Item::Deliver(p), false, &mut v);
            }
            Choice::Replay(j) => {
                let p = w.captured.remove(j as usize);
                self.process(&mut w, Item::Deliver(p), false, &mut v);
            }
            Choice::PowerOff { n, total } => {
                self.power_off(&mut w, n);
                if total {
                    w.env[n as usize].bmc = BmcMode::Unreachable;
                }
            }
            Choice::PowerOn(n) => self.power_on(&mut w, n),
            Choice::BmcMode(n, m) => w.env[n as usize].bmc = m,
            Choice::BbwdCrash(n) => self.crash_bbwd(&mut w, n),
            Choice::Pause(n) => {
                let e = &mut w.env[n as usize];
                if let Bbwd::Running(nd) = std::mem::replace(&mut e.bbwd, Bbwd::Down) {
                    e.bbwd = Bbwd::Paused(nd);
                }
            }
            Choice::Resume(n) => {
                let e = &mut w.env[n as usize];
                if let Bbwd::Paused(nd) = std::mem::replace(&mut e.bbwd, Bbwd::Down) {
                    e.bbwd = Bbwd::Running(nd);
                    w.pending.push_back(Item::Tick(n));
                    // What changed meanwhile is queued in its sockets (netlink, ICMP): the
                    // shell reads it on its first pass.
                    let (up, witness) = (e.public_up, e.witness_ok);
                    self.feed(&mut w, n, Input::PublicLink { up }, &mut v);
                    if self.cfg.witness {
                        self.feed(&mut w, n, Input::Witness { reachable: witness }, &mut v);
                    }
                }
            }
            Choice::BbCrash(n) => {
                if let Some(bb) = &mut w.env[n as usize].bb {
                    bb.leader_gone = true;
                    let code = ExitKind::Signaled(9);
                    self.feed(
                        &mut w,
                        n,
                        Input::Sup(machine::Input::Exited { kind: code }),
                        &mut v,
                    );
                }
            }
            Choice::BbHang(n) => {
                if let Some(bb) = &mut w.env[n as usize].bb {
                    bb.hung = true;
                }
            }
            Choice::BbUnkillable(n) => {
                if let Some(bb) = &mut w.env[n as usize].bb {
                    bb.unkillable = true;
                    bb.hung = true;
                    w.needs_operator = true;
                }
            }
            Choice::BbFailsStart(n) => {
                w.env[n as usize].fails_start = true;
                w.needs_operator = true;
            }
            Choice::Cut { from, link } => w.cut[from as usize][link as usize] = true,
            Choice::CutAll => w.cut = [[true; LINKS]; 2],
            Choice::Heal => w.cut = [[false; LINKS]; 2],
            Choice::Witness(n, ok) => w.env[n as usize].witness_ok = ok,
            Choice::Public(n, up) => {
                w.env[n as usize].public_up = up;
                self.feed(&mut w, n, Input::PublicLink { up }, &mut v);
            }
            Choice::Maintenance(n, on) => {
                let reason = detail("model");
                self.feed(
                    &mut w,
                    n,
                    Input::Sup(machine::Input::Maintenance { on, reason }),
                    &mut v,
                );
            }
            Choice::Switchover(n) => self.feed(&mut w, n, Input::Switchover, &mut v),
            Choice::ConfirmPeerDown(n) => self.feed(&mut w, n, Input::ConfirmPeerDown, &mut v),
        }
        if let Some(l) = log.as_mut() {
            let _ = write!(l, "");
        }
        if v.is_none() {
            v = self.safety(&w);
        }
        if v.is_none() && self.first_ready(&w).is_none() && self.next_time(&w).is_none() {
            v = self.progress(&w);
        }
        match v {
            Some(v) => Outcome::Bad(w, v),
            None => Outcome::Ok(w),
        }
    }

    // ---- scheduling --------------------------------------------------------------------------

    fn ready(&self, w: &World, it: &Item) -> bool {
        let e = &w.env[it.node() as usize];
        match it {
            // A paused bbwd's socket keeps its datagrams until it runs again.
            Item::Deliver(_) => !matches!(e.bbwd, Bbwd::Paused(_)),
            _ => matches!(e.bbwd, Bbwd::Running(_)),
        }
    }

    fn first_ready(&self, w: &World) -> Option<usize> {
        w.pending.iter().position(|it| self.ready(w, it))
    }

    /// The next moment something is due (within the horizon).
    fn next_time(&self, w: &World) -> Option<Duration> {
        let mut t: Option<Duration> = None;
        let mut min = |x: Duration| t = Some(t.map_or(x, |y: Duration| y.min(x)));
        for (i, e) in w.env.iter().enumerate() {
            if let Some(nd) = active(e) {
                if let Some(d) = nd.next_deadline() {
                    let d = d.saturating_duration_since(self.base);
                    if !(d <= w.now && w.spun[i] == Some(w.now)) {
                        min(d);
                    }
                }
                if self.witness_on() {
                    min(e.next_ping);
                }
            }
            if let Some(r) = e.restart_at {
                min(r);
            }
            if let Some(r) = e.reset_at {
                min(r);
            }
        }
        t.filter(|&t| t <= self.cfg.horizon)
    }

    fn witness_on(&self) -> bool {
        self.cfg.witness || self.cfg.mutant == Some(Mutant::WitnessOneMiss)
    }

    fn advance(&self, w: &mut World, v: &mut Option<Violation>) {
        let Some(t) = self.next_time(w) else { return };
        if t > w.now {
            w.now = t;
            w.same_instant = 0;
        } else {
            w.same_instant += 1;
            if w.same_instant > SAME_INSTANT_LIMIT && v.is_none() {
                *v = Some(Violation {
                    what: "live-lock: a deadline that never passes".into(),
                });
            }
        }
        let now = w.now;
        for n in 0..2u8 {
            let ni = n as usize;
            if w.env[ni].reset_at.is_some_and(|r| r <= now) {
                // The hardware watchdog fires: the node resets (power-cycles).
                self.power_off(w, n);
                w.env[ni].restart_at = Some(now + MS(200));
                continue;
            }
            if w.env[ni].restart_at.is_some_and(|r| r <= now) {
                w.env[ni].restart_at = None;
                w.env[ni].powered = true;
                self.start_bbwd(w, n, v);
                continue;
            }
            let e = &w.env[ni];
            if let Some(nd) = active(e) {
                let due = (nd.next_deadline().is_some_and(|d| d <= self.at(now))
                    && w.spun[ni] != Some(now))
                    || (self.witness_on() && e.next_ping <= now);
                if due && !w.pending.contains(&Item::Tick(n)) {
                    w.pending.push_back(Item::Tick(n));
                }
            }
        }
    }

    // ---- the shell ---------------------------------------------------------------------------

    fn process(&self, w: &mut World, it: Item, fail: bool, v: &mut Option<Violation>) {
        let _mutant = self.cfg.mutant;
        match it {
            Item::Deliver(p) => {
                let n = p.to;
                let e = &mut w.env[n as usize];
                if !e.powered {
                    return;
                }
                let Bbwd::Running(nd) = &mut e.bbwd else {
                    return;
                };
                let before = nd.role();
                let (_, acts) = nd.receive(self.at(w.now), p.link as usize, &p.bytes);
                let _ = before;
                self.take(w, n, acts, Cause::Packet, v);
            }
            Item::Tick(n) => {
                let now = w.now;
                let e = &mut w.env[n as usize];
                if self.witness_on() && e.next_ping <= now {
                    e.next_ping = now + MS(200);
                    let reachable = e.witness_ok;
                    self.feed(w, n, Input::Witness { reachable }, v);
                }
                self.feed(w, n, Input::Tick, v);
                let at = self.at(now);
                let d = active(&w.env[n as usize]).and_then(|nd| nd.next_deadline());
                if d.is_some_and(|d| d <= at) {
                    w.spun[n as usize] = Some(now);
                    if !self.cfg.allow_spin && v.is_none() {
                        let nd = active(&w.env[n as usize]).unwrap();
                        *v = Some(Violation {
                            what: format!(
                                "spin: after a Tick at {now:?}, n{} still has next_deadline() = {:?} (pair {:?}, supervisor {:?}): the shell would busy-loop",
                                n + 1,
                                d.unwrap().saturating_duration_since(self.base),
                                nd.pair().and_then(|p| p.next_deadline()).map(|x| x.saturating_duration_since(self.base)),
                                nd.machine().next_deadline().map(|x| x.saturating_duration_since(self.base)),
                            ),
                        });
                    }
                }
            }
            Item::Bmc(n) => {
                let peer = 1 - n as usize;
                let Some(op) = w.env[n as usize].bmc_op.take() else {
                    return;
                };
                let mode = w.env[peer].bmc;
                let reply = match mode {
                    BmcMode::Unreachable => Reply::Failed(detail("BMC unreachable")),
                    BmcMode::Truthful | BmcMode::Slow => {
                        match op {
                            Op::Status => {}
                            Op::PowerOff => self.power_off(w, peer as u8),
                            Op::PowerOn => {
                                if !w.env[peer].powered && w.env[peer].restart_at.is_none() {
                                    self.power_on(w, peer as u8)
                                }
                            }
                        }
                        if mode == BmcMode::Slow {
                            Reply::Failed(detail("BMC timed out"))
                        } else if op == Op::Status {
                            Reply::Power {
                                on: w.env[peer].powered,
                            }
                        } else {
                            Reply::Done
                        }
                    }
                    BmcMode::Lying { off_once } => match op {
                        Op::Status if off_once && w.env[peer].powered => {
                            w.env[peer].bmc = BmcMode::Lying { off_once: false };
                            Reply::Power { on: false }
                        }
                        Op::Status => Reply::Power {
                            on: w.env[peer].powered,
                        },
                        Op::PowerOff => {
                            self.power_off(w, peer as u8);
                            Reply::Done
                        }
                        Op::PowerOn => {
                            if !w.env[peer].powered && w.env[peer].restart_at.is_none() {
                                self.power_on(w, peer as u8)
                            }
                            Reply::Done
                        }
                    },
                };
                self.feed(w, n, Input::Bmc(reply), v);
            }
            Item::Hooks(n, phase) => {
                let e = &mut w.env[n as usize];
                let ok = !fail;
                if phase == Hooks::AfterStop && ok {
                    e.storage = false;
                    e.storage_record = false;
                }
                let detail = detail(if ok { "ok" } else { "hook failed" });
                self.feed(w, n, Input::HooksDone { phase, ok, detail }, v);
            }
            Item::VipAdd(n) => {
                let ok = !fail;
                if ok {
                    w.env[n as usize].vip = true;
                }
                let detail = detail(if ok { "added" } else { "add failed" });
                self.feed(w, n, Input::VipAdded { ok, detail }, v);
            }
            Item::VipRemove(n) => {
                let ok = !fail;
                if ok {
                    w.env[n as usize].vip = false;
                }
                let detail = detail(if ok { "removed" } else { "remove failed" });
                self.feed(w, n, Input::VipRemoved { ok, detail }, v);
            }
        }
    }

    fn feed(&self, w: &mut World, n: u8, input: Input, v: &mut Option<Violation>) {
        let cause = match &input {
            Input::Bmc(_) => Cause::Fence,
            Input::ConfirmPeerDown => Cause::Operator,
            _ => Cause::Other,
        };
        let now = self.at(w.now);
        let e = &mut w.env[n as usize];
        if !e.powered {
            return;
        }
        let Bbwd::Running(nd) = &mut e.bbwd else {
            return;
        };
        let acts = nd.step(now, input);
        self.take(w, n, acts, cause, v);
    }

    /// Carries out a node's actions (as the shell does); synchronous answers are fed back.
    fn take(
        &self,
        w: &mut World,
        n: u8,
        acts: bbwd_core::node::Actions,
        cause: Cause,
        v: &mut Option<Violation>,
    ) {
        let mut sync: VecDeque<Input> = VecDeque::new();
        for a in acts {
            self.act(w, n, a, cause, &mut sync, v);
        }
        while let Some(i) = sync.pop_front() {
            let now = self.at(w.now);
            let e = &mut w.env[n as usize];
            let Bbwd::Running(nd) = &mut e.bbwd else {
                return;
            };
            let acts = nd.step(now, i);
            for a in acts {
                self.act(w, n, a, Cause::Other, &mut sync, v);
            }
        }
    }

    fn act(
        &self,
        w: &mut World,
        n: u8,
        a: Action,
        cause: Cause,
        sync: &mut VecDeque<Input>,
        v: &mut Option<Violation>,
    ) {
        let now = w.now;
        let ni = n as usize;
        match a {
            Action::Sup(machine::Action::Spawn) => {
                let e = &mut w.env[ni];
                if e.bb.is_some() && v.is_none() {
                    *v = Some(Violation {
                        what: format!("n{}: Spawn while Bitbucket still runs", n + 1),
                    });
                }
                e.next_pid += 1;
                let pid = e.next_pid;
                e.bb = Some(Bb {
                    pid,
                    ready_at: now + MS(300),
                    leader_gone: false,
                    hung: false,
                    unkillable: false,
                });
                sync.push_back(Input::Sup(machine::Input::Started { pid }));
            }
            Action::Sup(machine::Action::Check) => {
                let e = &w.env[ni];
                let probe = match e.bb {
                    None => ProbeOutcome::Failed(ProbeFailure::Refused),
                    Some(bb) if bb.leader_gone => ProbeOutcome::Failed(ProbeFailure::Refused),
                    Some(bb) if bb.hung => ProbeOutcome::Failed(ProbeFailure::Timeout),
                    Some(bb) if now >= bb.ready_at && !e.fails_start => ProbeOutcome::Reply {
                        http_status: 200,
                        state: Some(BbState::Running),
                    },
                    Some(_) => ProbeOutcome::Reply {
                        http_status: 503,
                        state: Some(BbState::Starting),
                    },
                };
                sync.push_back(Input::Sup(machine::Input::Checked { probe, db_up: None }));
            }
            Action::Sup(machine::Action::Signal(sig)) => {
                let e = &mut w.env[ni];
                match e.bb {
                    None => sync.push_back(Input::Sup(machine::Input::Gone)),
                    Some(bb) => {
                        let dies = match sig {
                            Sig::Term => !bb.hung && !bb.unkillable,
                            Sig::Kill => !bb.unkillable,
                        };
                        if dies {
                            e.bb = None;
                            if !bb.leader_gone {
                                let code = if sig == Sig::Term { 15 } else { 9 };
                                sync.push_back(Input::Sup(machine::Input::Exited {
                                    kind: ExitKind::Signaled(code),
                                }));
                            }
                            sync.push_back(Input::Sup(machine::Input::Gone));
                        }
                    }
                }
            }
            Action::Sup(machine::Action::CheckFree) => {
                // Something answers on status_url's port while a Bitbucket group lives here.
                let occupied = w.env[ni]
                    .bb
                    .map(|bb| detail(&format!("pid {} listens", bb.pid)));
                sync.push_back(Input::Sup(machine::Input::FreeChecked { occupied }));
            }
            Action::Sup(machine::Action::StopPetting) | Action::SelfFence => {
                let e = &mut w.env[ni];
                if let Some(wd) = self.cfg.watchdog {
                    if e.reset_at.is_none() {
                        e.reset_at = Some(now + wd);
                    }
                }
            }
            Action::Sup(_) | Action::Event(..) | Action::Exit => {}
            Action::Bmc { op, .. } => {
                w.env[ni].bmc_op = Some(op);
                w.pending.retain(|it| *it != Item::Bmc(n));
                w.pending.push_back(Item::Bmc(n));
            }
            Action::RunHooks(phase) => {
                if phase == Hooks::BeforeStart {
                    self.justify(w, n, cause, v);
                    let e = &mut w.env[ni];
                    e.storage = true;
                    e.storage_record = true;
                }
                w.pending.push_back(Item::Hooks(n, phase));
            }
            Action::AddVip => w.pending.push_back(Item::VipAdd(n)),
            Action::RemoveVip => w.pending.push_back(Item::VipRemove(n)),
            Action::SendHeartbeats => {
                let nowi = self.at(now);
                let e = &mut w.env[ni];
                let from_run = e.boot_id;
                let Bbwd::Running(nd) = &mut e.bbwd else {
                    return;
                };
                let versions = nd.versions();
                let mut out = Vec::new();
                for link in 0..LINKS as u8 {
                    for &ver in versions {
                        let mut buf = [0u8; hb::PACKET_BYTES];
                        let len = nd.encode(
                            nowi,
                            link,
                            1_700_000_000_000 + now.as_millis() as u64,
                            ver,
                            &mut buf,
                        );
                        if len > 0 && !w.cut[ni][link as usize] {
                            out.push(Packet {
                                to: 1 - n,
                                link,
                                bytes: buf[..len].into(),
                                from_run,
                            });
                        }
                    }
                }
                for p in out {
                    w.pending.push_back(Item::Deliver(p));
                }
            }
        }
    }

    /// Invariant 2: a takeover (before_start hooks) only on a proof that is true in the world.
    fn justify(&self, w: &World, n: u8, cause: Cause, v: &mut Option<Violation>) {
        let peer = &w.env[1 - n as usize];
        let bad = match cause {
            Cause::Fence => peer
                .powered
                .then(|| "after a fence reported confirmed, yet the peer is powered".to_string()),
            Cause::Operator => peer
                .powered
                .then(|| "on confirm-peer-down, yet the peer is powered".to_string()),
            Cause::Packet | Cause::Other => {
                let nd = running(&w.env[n as usize]).unwrap();
                let last = nd.tracker().and_then(|t| t.last().copied());
                let serving = peer.powered && (peer.bb.is_some() || peer.vip || peer.storage);
                match last {
                    None => Some("on consent, but nothing was ever heard".into()),
                    // The word must come from the peer's latest run (it may have lost power since:
                    // then it serves nothing, which is what it said), or at least answer this
                    // node's current challenge: a run that died after answering it said the truth
                    // when it answered, and its successor has not served since (that would need a
                    // proof of its own, checked when it happens).
                    Some(h)
                        if h.boot_id != peer.boot_id
                            && (serving
                                || nd.tracker().is_none_or(|t| h.echo != t.challenge())) =>
                    {
                        Some(format!("on the word of a run of the peer that is not its current one (heard boot {:02x}{:02x}, peer's run {:02x}{:02x}, peer powered {})", h.boot_id[1], h.boot_id[2], peer.boot_id[1], peer.boot_id[2], peer.powered))
                    }
                    Some(_) if serving => Some("on consent, while the peer really serves".into()),
                    Some(_) => None,
                }
            }
        };
        if let (Some(what), None) = (bad, v.as_ref()) {
            *v = Some(Violation {
                what: format!("n{} takes over unjustified: {what}", n + 1),
            });
        }
    }

    // ---- power, bbwd -------------------------------------------------------------------------

    fn power_off(&self, w: &mut World, n: u8) {
        let e = &mut w.env[n as usize];
        if !e.powered {
            return;
        }
        e.powered = false;
        e.bbwd = Bbwd::Down;
        e.bb = None;
        e.vip = false;
        e.storage = false;
        if !self.cfg.record_survives_reboot {
            e.storage_record = false;
        }
        e.bmc_op = None;
        e.reset_at = None;
        e.restart_at = None;
        e.witness_ok = true;
        e.public_up = true;
        w.pending.retain(|it| it.node() != n);
        w.late.retain(|p| p.to != n);
    }

    /// Power on: the node boots; bbwd starts 200 ms later.
    fn power_on(&self, w: &mut World, n: u8) {
        let e = &mut w.env[n as usize];
        if e.bmc == BmcMode::Unreachable {
            e.bmc = BmcMode::Truthful;
        }
        e.restart_at = Some(w.now + MS(200));
    }

    fn crash_bbwd(&self, w: &mut World, n: u8) {
        let e = &mut w.env[n as usize];
        if let Bbwd::Running(nd) | Bbwd::Paused(nd) = &e.bbwd {
            let view = nd.machine().view();
            e.failed_record = view.failed.filter(|f| f.persistent());
            e.maint_record = view.maintenance.is_some();
        }
        e.bbwd = Bbwd::Down;
        e.bmc_op = None;
        e.restart_at = Some(w.now + MS(100));
        w.pending.retain(|it| it.node() != n || it.is_packet());
    }

    fn start_bbwd(&self, w: &mut World, n: u8, v: &mut Option<Violation>) {
        let now = w.now;
        let e = &mut w.env[n as usize];
        e.runs = e.runs.saturating_add(1);
        let ps = self.pair_settings(n, e.runs, now);
        e.boot_id = ps.boot_id;
        e.next_ping = now;
        // (Mutant `agent-restart` is the core's: the node ignores what it finds.)
        let boot = {
            let mut b = Boot {
                vip_held: e.vip,
                storage_held: e.storage_record,
                ..Boot::default()
            };
            b.sup.adopted_pid = e.bb.filter(|bb| !bb.leader_gone).map(|bb| bb.pid);
            b.sup.failed = e.failed_record;
            b.sup.maintenance = e.maint_record.then(|| detail("model"));
            b
        };
        let (nd, acts) = Node::new(self.sup_settings(), Some(ps), boot, self.at(now));
        e.bbwd = Bbwd::Running(Box::new(nd));
        self.take(w, n, acts, Cause::Other, v);
    }

    // ---- invariants --------------------------------------------------------------------------

    /// Invariant 1, on the world's truth (not the nodes' beliefs).
    fn safety(&self, w: &World) -> Option<Violation> {
        let [a, b] = &w.env;
        if !(a.powered && b.powered) {
            return None;
        }
        let what = if a.bb.is_some() && b.bb.is_some() {
            "Bitbucket runs on both nodes"
        } else if a.vip && b.vip {
            "the VIP is on both nodes"
        } else if a.storage && b.storage {
            "before_start hooks (storage) in effect on both nodes"
        } else if serving(a) && serving(b) {
            "both nodes serve (Bitbucket, VIP or storage)"
        } else {
            return None;
        };
        Some(Violation { what: what.into() })
    }

    /// Progress, at the end of a trace: the last fault at least `progress_bound` ago, every
    /// fault healed, one healthy node with a way to the other's BMC (or the other off) ⇒
    /// exactly one node serves (Bitbucket healthy and the VIP held).
    fn progress(&self, w: &World) -> Option<Violation> {
        if w.needs_operator || w.now < w.last_fault + self.cfg.progress_bound {
            return None;
        }
        if w.cut.iter().flatten().any(|&x| x) || !w.late.is_empty() {
            return None;
        }
        // A BMC that does not answer (or a node lost with its BMC) pauses failover until an
        // operator confirms: the Theory of Operation's "fence that cannot be confirmed".
        if w.env.iter().any(|e| e.bmc != BmcMode::Truthful) {
            return None;
        }
        for e in &w.env {
            if e.powered
                && (!e.witness_ok
                    || !e.public_up
                    || e.bmc != BmcMode::Truthful
                    || !matches!(e.bbwd, Bbwd::Running(_))
                    || running(e).is_some_and(|nd| {
                        let v = nd.machine().view();
                        v.maintenance.is_some() || v.failed.is_some()
                    }))
            {
                return None;
            }
        }
        if !w.env.iter().any(|e| e.powered) {
            return None;
        }
        let full =
            |e: &Env| e.powered && e.vip && e.bb.is_some_and(|bb| !bb.hung && !bb.leader_gone);
        let n = w.env.iter().filter(|e| full(e)).count();
        (n != 1).then(|| Violation {
            what: format!(
                "progress: faults over for {:?}, yet {} nodes serve",
                w.now - w.last_fault,
                n
            ),
        })
    }

    /// One line per node for traces.
    pub fn describe(&self, w: &World) -> String {
        let mut s = String::new();
        for (i, e) in w.env.iter().enumerate() {
            let _ = write!(s, "   n{}: ", i + 1);
            if !e.powered {
                let _ = write!(
                    s,
                    "OFF{}",
                    if e.restart_at.is_some() {
                        " (booting)"
                    } else {
                        ""
                    }
                );
            } else {
                match &e.bbwd {
                    Bbwd::Down => s.push_str("bbwd down"),
                    Bbwd::Running(nd) | Bbwd::Paused(nd) => {
                        let v = nd.machine().view();
                        let _ = write!(
                            s,
                            "{}{} sup={} peer_alive={} fenced_self={}",
                            if matches!(e.bbwd, Bbwd::Paused(_)) {
                                "PAUSED "
                            } else {
                                ""
                            },
                            nd.role().map_or("-", |r| r.as_str()),
                            v.state.as_str(),
                            nd.pair().is_some_and(|p| p.peer().alive),
                            nd.self_fenced(),
                        );
                        if std::env::var_os("MODEL_DEBUG").is_some() {
                            let _ = write!(s, "\n      {:?}", nd.pair());
                        }
                    }
                }
                let _ = write!(
                    s,
                    " | world: bb={} vip={} storage={} bmc={:?}",
                    e.bb.map_or("-".to_string(), |b| format!(
                        "{}{}{}",
                        b.pid,
                        if b.hung { ",hung" } else { "" },
                        if b.leader_gone { ",exited" } else { "" }
                    )),
                    e.vip as u8,
                    e.storage as u8,
                    e.bmc
                );
            }
            let _ = write!(s, " record={} run={}", e.storage_record as u8, e.runs);
            s.push('\n');
        }
        s
    }

    /// A choice as a trace line.
    pub fn label(&self, w: &World, c: Choice) -> String {
        let item = |k: u8| {
            w.pending
                .get(k as usize)
                .map(|it| self.item_label(w, it))
                .unwrap_or_default()
        };
        match c {
            Choice::Next => match self.first_ready(w) {
                Some(k) => self.item_label(w, &w.pending[k]),
                None => format!("time -> {:?}", self.next_time(w).unwrap_or_default()),
            },
            Choice::Race(k) => format!("RACE: first {}", item(k)),
            Choice::Drop(k) => format!("LOSE {}", item(k)),
            Choice::Hold(k) => format!("DELAY {}", item(k)),
            Choice::Dup(k) => format!("CAPTURE+{}", item(k)),
            Choice::Fail(k) => format!("FAIL {}", item(k)),
            Choice::Late(j) => format!("late {}", pkt_label(&w.late[j as usize])),
            Choice::Replay(j) => format!("REPLAY {}", pkt_label(&w.captured[j as usize])),
            other => format!("{other:?}"),
        }
    }

    fn item_label(&self, _w: &World, it: &Item) -> String {
        match it {
            Item::Deliver(p) => format!("deliver {}", pkt_label(p)),
            Item::Bmc(n) => format!("n{} BMC answers", n + 1),
            Item::Hooks(n, h) => format!("n{} hooks {h:?} done", n + 1),
            Item::VipAdd(n) => format!("n{} VIP added", n + 1),
            Item::VipRemove(n) => format!("n{} VIP removed", n + 1),
            Item::Tick(n) => format!("n{} tick", n + 1),
        }
    }
}

fn pkt_label(p: &Packet) -> String {
    let d = Key::new(&[0x5a; 32]).unwrap().decode(&p.bytes);
    match d {
        Ok(h) => format!(
            "n{}->n{} link{} v{} run{} seq {} {:?}/{:?} flags {:#x} echo run{} ep{}",
            2 - p.to,
            p.to + 1,
            p.link,
            h.version,
            h.boot_id[2],
            h.sequence % 1_000_000,
            h.role,
            h.state,
            h.flags.bits(),
            h.echo.boot_id[2],
            h.echo.epoch
        ),
        Err(e) => format!("{p:?} ({e})"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    Fence,
    Operator,
    Packet,
    Other,
}

fn running(e: &Env) -> Option<&Node> {
    match &e.bbwd {
        Bbwd::Running(nd) | Bbwd::Paused(nd) => Some(nd),
        Bbwd::Down => None,
    }
}

fn active(e: &Env) -> Option<&Node> {
    match &e.bbwd {
        Bbwd::Running(nd) => Some(nd),
        _ => None,
    }
}

fn serving(e: &Env) -> bool {
    e.bb.is_some() || e.vip || e.storage
}

/// A choice that costs one from the fault budget (recoveries and deliveries are free).
pub fn is_fault(c: Choice) -> bool {
    !matches!(
        c,
        Choice::Next
            | Choice::Late(_)
            | Choice::Replay(_)
            | Choice::PowerOn(_)
            | Choice::Resume(_)
            | Choice::Heal
            | Choice::BmcMode(_, BmcMode::Truthful)
            | Choice::Witness(_, true)
            | Choice::Public(_, true)
            | Choice::Maintenance(_, false)
    )
}

/// The state's fingerprint.
pub fn fingerprint(w: &World) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    w.hash(&mut h);
    h.finish()
}
