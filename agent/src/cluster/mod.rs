//! Pair mode's I/O around [`bbwd_core::node::Node`]: heartbeats over every link, the peer's
//! BMC, the virtual IP (probe, add, gratuitous ARP, watch, remove), the `[hooks]` and the
//! storage record, the witness and the public link.
//!
//! Owns those platform objects and the translation between them and the node: readiness
//! becomes `node::Input`s (and datagrams `Node::receive` calls), the node's pair actions become
//! operations. Must not decide anything: which BMC operation comes next, what counts as a
//! confirmed fence, what the heartbeats say and when they go out, whether a node found serving
//! resumes: all of that is the node's.
//!
//! The platform objects sit behind the narrow traits of `io.rs` (`Bmc`, `VipOps`,
//! `HeartbeatIo`, `HookRunner`, `RecordStore`), so the translation is unit-tested with the
//! recording fakes of `fake.rs` (`tests.rs`); the daemon uses `Cluster<Real>`, spelled `Cluster`,
//! opened by `open.rs` (the platform objects from the config, and what an earlier run left).
//!
//! # Invariants
//! * Every operation is non-blocking with a deadline: BMC operations run on the IPMI client's
//!   worker, the VIP probe and the hooks are polled, heartbeats are datagrams.
//! * The storage record (`state_dir/storage`) is written before `before_start` hooks run (a
//!   failure to write it fails the hooks) and removed only after `after_stop` hooks succeeded.
//! * No allocation per heartbeat: the send and receive buffers are fixed.

use std::time::{Duration, Instant};

use bbwd_core::fence;
use bbwd_core::node::{Action, Input, Node};
use bbwd_platform::clock;
use bbwd_platform::command::SequenceMode;
use bbwd_platform::ipmi::{Op, Power, PowerAction, Reply};
use bbwd_platform::linkwatch::LinkWatch;
use bbwd_platform::poll::{PollSet, Token, Want};
use bbwd_platform::vip::{AddressWatch, ProbeOutcome, VipError};
use bbwd_platform::witness::Witness;
use log::{error, info, warn};

use crate::heartbeat as hb;
use crate::machine::Detail;
use crate::pair::{self, Hooks};

mod io;
mod open;
pub use io::{
    Bmc, HeartbeatIo, HookRun, HookRunner, Platform, Real, RecordStore, Spawner, StorageFile,
    VipOps,
};
#[cfg(test)]
use open::storage_held_at_open;
pub use open::{Setup, SetupError};

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

/// How long the ARP probe listens before the VIP is added.
pub const PROBE_WINDOW: Duration = Duration::from_millis(100);
/// How often the witness is asked.
pub const WITNESS_INTERVAL: Duration = Duration::from_secs(1);
/// A takeover or release step (hooks, VIP) that takes longer counts as failed.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(120);
/// The BMC session's keep-alive (well below BMCs' ~30-60 s idle timeout).
pub const FENCE_KEEPALIVE: Duration = Duration::from_secs(10);
/// How often the peer's BMC is asked for its power while the peer is heard: a `[fencing]`
/// host that points at another machine is found within this, long before it is needed, and a
/// BMC is asked once a minute at most.
pub const BMC_WATCH: Duration = Duration::from_secs(60);
/// Consecutive missed witness pings (one a second) before the witness counts as unreachable:
/// one lost ICMP echo is common, three in a row is an outage.
pub const WITNESS_MISSES: u32 = 3;
/// The file in `state_dir` recording that `before_start` hooks may be in effect.
pub const STORAGE_RECORD: &str = "storage";

/// Poll registrations of one pass.
#[derive(Default)]
pub struct Tokens {
    links: heapless::Vec<Option<Token>, 8>,
    fence: Option<Token>,
    probe: Option<Token>,
    watch: Option<Token>,
    hooks: Option<Token>,
    witness: Option<Token>,
    link: Option<Token>,
}

enum VipPhase {
    Idle,
    Probing,
    /// Announcing: `left` more frames, the next at `next`.
    Announcing {
        left: u32,
        next: Instant,
    },
}

/// What a [`Cluster`] is built from: the platform objects and the settings it passes on.
pub struct Parts<P: Platform> {
    pub node_name: String,
    pub peer_name: String,
    pub before_start: Vec<Vec<String>>,
    pub after_stop: Vec<Vec<String>>,
    pub garp_count: u32,
    pub garp_interval: Duration,
    pub links: P::Links,
    pub fencer: P::Bmc,
    pub vip: P::Vip,
    pub vip_watch: Option<AddressWatch>,
    pub hook_runner: P::Hooks,
    pub storage: P::Storage,
    pub witness: Option<Witness>,
    pub link: Option<LinkWatch>,
}

/// Pair mode's platform side. See the module doc. `P` is [`Real`] in the daemon, the
/// recording fakes in the unit tests.
pub struct Cluster<P: Platform = Real> {
    node_name: String,
    peer_name: String,
    before_start: Vec<Vec<String>>,
    after_stop: Vec<Vec<String>>,
    garp_count: u32,
    garp_interval: Duration,
    links: P::Links,
    packet: [u8; hb::PACKET_BYTES],
    recv_buf: [u8; hb::RECV_BUFFER_BYTES],
    fencer: P::Bmc,
    /// The BMC operation outstanding.
    bmc_op: Option<fence::Op>,
    /// The fencing BMC's session health as last reported (an event on every change).
    bmc_up: Option<bool>,
    vip: P::Vip,
    vip_watch: Option<AddressWatch>,
    vip_phase: VipPhase,
    hook_runner: P::Hooks,
    hooks: Option<(Hooks, <P::Hooks as HookRunner>::Run)>,
    storage: P::Storage,
    witness: Option<Witness>,
    next_witness: Instant,
    link: Option<LinkWatch>,
    /// The last takeover's timeline (step, wall ms), for `bbwd status`.
    timeline: heapless::Vec<(&'static str, u64), 12>,
    /// A takeover timeline is being written (from the peer's loss or the first fence step).
    timeline_open: bool,
    /// When the peer was last declared lost (wall ms): the first step of the next takeover.
    peer_lost_ms: Option<u64>,
    /// Inputs for the node produced by operations.
    pending: heapless::Deque<Input, 16>,
    /// Events of this layer (kind, detail, is a problem), drained by the daemon.
    events: heapless::Deque<(&'static str, Detail, bool), 8>,
}

impl<P: Platform> Cluster<P> {
    /// A cluster of `parts`, nothing in progress.
    pub fn new(parts: Parts<P>, now: Instant) -> Cluster<P> {
        let Parts {
            node_name,
            peer_name,
            before_start,
            after_stop,
            garp_count,
            garp_interval,
            links,
            fencer,
            vip,
            vip_watch,
            hook_runner,
            storage,
            witness,
            link,
        } = parts;
        Cluster {
            node_name,
            peer_name,
            before_start,
            after_stop,
            garp_count,
            garp_interval,
            links,
            packet: [0; hb::PACKET_BYTES],
            recv_buf: [0; hb::RECV_BUFFER_BYTES],
            fencer,
            bmc_op: None,
            bmc_up: None,
            vip,
            vip_watch,
            vip_phase: VipPhase::Idle,
            hook_runner,
            hooks: None,
            storage,
            witness,
            next_witness: now,
            link,
            timeline: heapless::Vec::new(),
            timeline_open: false,
            peer_lost_ms: None,
            pending: heapless::Deque::new(),
            events: heapless::Deque::new(),
        }
    }

    /// Registers every fd of this pass.
    pub fn register(&self, set: &mut PollSet) -> Tokens {
        let mut t = Tokens::default();
        for fd in (0..self.links.len()).filter_map(|i| self.links.fd(i)) {
            let _ = t.links.push(set.add(fd, Want::Read));
        }
        t.fence = self.fencer.fd().and_then(|fd| set.add(fd, Want::Read));
        t.probe = self.vip.probe_fd().and_then(|fd| set.add(fd, Want::Read));
        t.watch = self
            .vip_watch
            .as_ref()
            .and_then(|w| set.add(w.fd(), Want::Read));
        t.hooks = self
            .hooks
            .as_ref()
            .and_then(|(_, s)| s.fd())
            .and_then(|fd| set.add(fd, Want::Read));
        t.witness = self
            .witness
            .as_ref()
            .and_then(|w| w.fd())
            .and_then(|fd| set.add(fd, Want::Read));
        t.link = self.link.as_ref().and_then(|l| set.add(l.fd(), Want::Read));
        t
    }

    /// The earliest moment the platform side needs the loop (the node has its own).
    pub fn deadline(&self) -> Option<Instant> {
        let announce = match self.vip_phase {
            VipPhase::Announcing { next, .. } => Some(next),
            _ => None,
        };
        [
            self.fencer.deadline(),
            self.vip.probe_deadline(),
            announce,
            self.hooks.as_ref().and_then(|(_, s)| s.deadline()),
            self.witness.as_ref().and_then(|w| w.deadline()),
            self.witness.as_ref().map(|_| self.next_witness),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Handles what happened in this pass: datagrams go to the node at once (its actions into
    /// `out`), every other completion becomes a pending input ([`Cluster::next_input`]).
    pub fn service(
        &mut self,
        now: Instant,
        set: &PollSet,
        t: &Tokens,
        node: &mut Node,
        out: &mut Vec<Action>,
    ) {
        if t.links.iter().any(|tok| set.ready(*tok).any()) {
            self.receive(now, node, out);
        }
        if self.bmc_op.is_some() {
            if let Some(result) = self.fencer.try_result(now) {
                self.bmc_op = None;
                let reply = match result {
                    Ok(Reply::Power(p)) => fence::Reply::Power { on: p == Power::On },
                    Ok(Reply::Done) => fence::Reply::Done,
                    Ok(other) => fence::Reply::Failed(text(&format!(
                        "{}: unexpected reply {other:?}",
                        self.fencer.name()
                    ))),
                    Err(e) => fence::Reply::Failed(text(&e.to_string())),
                };
                self.push(Input::Bmc(reply));
            }
        } else if set.ready(t.fence).any() {
            // Keep-alive health changes and stray results: drain.
            let _ = self.fencer.try_result(now);
        }
        if matches!(self.vip_phase, VipPhase::Probing) {
            if let Some(r) = self.vip.advance_probe(now) {
                self.after_probe(now, r);
            }
        }
        if let VipPhase::Announcing { left, next } = self.vip_phase {
            if now >= next {
                if let Err(e) = self.vip.send_announcement() {
                    warn!("{e}");
                }
                self.vip_phase = if left > 1 {
                    VipPhase::Announcing {
                        left: left - 1,
                        next: now + self.garp_interval,
                    }
                } else {
                    VipPhase::Idle
                };
            }
        }
        if set.ready(t.watch).any() {
            self.on_watch(now, node);
        }
        if let Some((phase, seq)) = &mut self.hooks {
            let phase = *phase;
            if let Some(outcome) = seq.service(now) {
                self.hooks = None;
                let ok = outcome.succeeded();
                let detail = text(&outcome.to_string());
                if phase == Hooks::AfterStop && ok {
                    if let Err(e) = self.storage.remove() {
                        // The record stays: the next start resumes (safe), an operator is told.
                        error!("{e}");
                    }
                }
                self.push(Input::HooksDone { phase, ok, detail });
            }
        }
        self.watch_bmc();
        self.service_witness(now);
        if set.ready(t.link).any() {
            let change = match &mut self.link {
                Some(l) => match l.read() {
                    Ok(Some(state)) => Some(state.usable()),
                    Ok(None) => None,
                    Err(e) => {
                        warn!("{e}");
                        None
                    }
                },
                None => None,
            };
            if let Some(up) = change {
                self.push(Input::PublicLink { up });
            }
        }
    }

    /// The next input an operation produced.
    pub fn next_input(&mut self) -> Option<Input> {
        self.pending.pop_front()
    }

    /// Events of this layer (session health, a VIP put back), drained by the daemon.
    pub fn next_event(&mut self) -> Option<(&'static str, Detail, bool)> {
        self.events.pop_front()
    }

    fn push(&mut self, i: Input) {
        if self.pending.push_back(i).is_err() {
            error!("internal: cluster input queue full; an input was lost");
        }
    }

    fn event(&mut self, kind: &'static str, detail: &str, problem: bool) {
        let _ = self.events.push_back((kind, text(detail), problem));
    }

    /// Carries out one of the node's pair actions (the daemon handles the supervisor's).
    pub fn apply(&mut self, now: Instant, a: &Action, node: &mut Node) {
        match a {
            Action::Bmc { op, timeout } => {
                let ipmi_op = match op {
                    fence::Op::Status => Op::PowerStatus,
                    fence::Op::PowerOff => {
                        self.mark("fence started");
                        Op::Power(PowerAction::Off)
                    }
                    fence::Op::PowerOn => Op::Power(PowerAction::On),
                };
                match self.fencer.submit(ipmi_op, now, *timeout) {
                    Ok(_) => self.bmc_op = Some(*op),
                    Err(e) => self.push(Input::Bmc(fence::Reply::Failed(text(&format!(
                        "{}: {e:?}",
                        self.fencer.name()
                    ))))),
                }
            }
            Action::RunHooks(phase) => self.run_hooks(now, *phase),
            Action::AddVip => {
                self.mark("bitbucket healthy");
                if matches!(self.vip.held(), Ok(true)) {
                    // Resumed with the VIP still on the interface: announce it again only.
                    self.vip_phase = VipPhase::Announcing {
                        left: self.garp_count,
                        next: now,
                    };
                    self.push(Input::VipAdded {
                        ok: true,
                        detail: text(&format!("{} kept (already held), announced", self.vip)),
                    });
                    return;
                }
                match self.vip.start_probe(now, PROBE_WINDOW) {
                    Ok(()) => self.vip_phase = VipPhase::Probing,
                    Err(e) => self.push(Input::VipAdded {
                        ok: false,
                        detail: text(&e.to_string()),
                    }),
                }
            }
            Action::RemoveVip => {
                self.vip.cancel_probe();
                self.vip_phase = VipPhase::Idle;
                let input = match self.vip.remove() {
                    Ok(_) => Input::VipRemoved {
                        ok: true,
                        detail: text(&format!("{} removed", self.vip)),
                    },
                    Err(e) => Input::VipRemoved {
                        ok: false,
                        detail: text(&e.to_string()),
                    },
                };
                self.push(input);
            }
            Action::SendHeartbeats => self.beat(now, node),
            Action::SelfFence => {
                error!("self-fence: no more heartbeats, the hardware watchdog is no longer petted");
            }
            Action::Event(kind, _) => self.on_event(*kind),
            Action::Sup(_) | Action::Exit => {}
        }
    }

    /// Keeps the takeover timeline from the node's events.
    fn on_event(&mut self, kind: pair::Kind) {
        match kind {
            pair::Kind::PeerLost => {
                self.peer_lost_ms = Some(clock::wall_ms());
                self.timeline.clear();
                self.timeline_open = true;
                let _ = self
                    .timeline
                    .push(("peer lost", self.peer_lost_ms.unwrap_or(0)));
            }
            pair::Kind::PeerSeen => self.peer_lost_ms = None,
            pair::Kind::Fenced => self.mark("fence confirmed"),
            pair::Kind::Active => {
                self.mark("active");
                self.timeline_open = false;
            }
            _ => {}
        }
    }

    fn run_hooks(&mut self, now: Instant, phase: Hooks) {
        let (steps, mode, name) = match phase {
            Hooks::BeforeStart => (
                self.before_start.clone(),
                SequenceMode::StopAtFirstFailure,
                "before_start",
            ),
            Hooks::AfterStop => (
                self.after_stop.clone(),
                SequenceMode::BestEffort,
                "after_stop",
            ),
        };
        if phase == Hooks::BeforeStart {
            self.mark(name);
            // The record first: a restarted bbwd must know the storage may be in effect.
            let record = format!(
                "before_start {:032x}\n",
                self.storage.boot_id().unwrap_or(0)
            );
            if let Err(e) = self.storage.write(record.as_bytes()) {
                self.push(Input::HooksDone {
                    phase,
                    ok: false,
                    detail: text(&format!("cannot record the hooks in state_dir: {e}")),
                });
                return;
            }
        }
        let run = self
            .hook_runner
            .start(name, &self.node_name, steps, STEP_TIMEOUT, mode, now);
        self.hooks = Some((phase, run));
    }

    fn receive(&mut self, now: Instant, node: &mut Node, out: &mut Vec<Action>) {
        // Bounded per pass: a flood on the links must not starve the loop.
        for _ in 0..64 {
            match self.links.recv(&mut self.recv_buf) {
                Ok(Some(r)) => {
                    let bytes = &self.recv_buf[..r.len.min(self.recv_buf.len())];
                    let (result, acts) = node.receive(now, r.link, bytes);
                    if let Err(reject) = result {
                        log::debug!(
                            "heartbeat from {} on link {} dropped: {reject}",
                            r.from,
                            r.link
                        );
                    }
                    out.extend(acts);
                }
                Ok(None) => break,
                Err(e) => {
                    warn!("{e}");
                    break;
                }
            }
        }
    }

    fn beat(&mut self, now: Instant, node: &mut Node) {
        let wall = clock::wall_ms();
        for &version in node.versions() {
            for link in 0..self.links.len() {
                let len = node.encode(now, link as u8, wall, version, &mut self.packet);
                if len == 0 {
                    return;
                }
                if let Err(e) = self.links.send(link, &self.packet[..len]) {
                    log::debug!("{e}");
                }
            }
        }
    }

    /// Reports changes of the peer's BMC session: before any failure, status and the events
    /// say whether fencing would work.
    fn watch_bmc(&mut self) {
        let h = self.fencer.health();
        // Not known until the first session attempt has finished.
        if h.sessions_opened == 0 && h.last_error.is_none() {
            return;
        }
        if self.bmc_up != Some(h.up) {
            let first = self.bmc_up.is_none();
            self.bmc_up = Some(h.up);
            if h.up {
                if !first {
                    let d = format!("{}: session up again: fencing works", self.fencer.name());
                    self.event("fencing_bmc_up", &d, false);
                }
            } else {
                let why = h.last_error.map(|e| e.to_string()).unwrap_or_default();
                let d = format!(
                    "{}: not answering, fencing would fail: {why}",
                    self.fencer.name()
                );
                self.event("fencing_bmc_down", &d, true);
            }
        }
    }

    fn service_witness(&mut self, now: Instant) {
        let Some(w) = &mut self.witness else { return };
        if w.in_flight() {
            if let Some(reachable) = w.advance(now) {
                self.push(Input::Witness { reachable });
            }
        } else if now >= self.next_witness {
            self.next_witness = now + WITNESS_INTERVAL;
            w.start(now, WITNESS_INTERVAL / 2);
        }
    }

    fn on_watch(&mut self, now: Instant, node: &Node) {
        let Some(w) = &mut self.vip_watch else { return };
        let held = node.vip_held()
            && matches!(self.vip_phase, VipPhase::Idle | VipPhase::Announcing { .. });
        match w.read() {
            Ok(r)
                if (r.removed || r.overrun) && held && node.role() == Some(pair::Role::Active) =>
            {
                // Only ours to put back while we serve (our own `remove` runs in Releasing).
                if matches!(self.vip.held(), Ok(false)) {
                    self.event(
                        "vip_removed_behind_our_back",
                        "the VIP was removed by someone else: adding it back",
                        true,
                    );
                    match self.vip.add() {
                        Ok(_) => {
                            self.vip_phase = VipPhase::Announcing {
                                left: self.garp_count,
                                next: now,
                            }
                        }
                        Err(e) => error!("{e}"),
                    }
                }
            }
            Ok(_) => {}
            Err(e) => warn!("{e}"),
        }
    }

    fn after_probe(&mut self, now: Instant, r: Result<ProbeOutcome, VipError>) {
        self.vip_phase = VipPhase::Idle;
        let input = match r {
            Ok(ProbeOutcome::Conflict { mac }) => Input::VipAdded {
                ok: false,
                detail: text(&format!(
                    "{} answered from {mac}: someone else holds the VIP",
                    self.vip.address()
                )),
            },
            Ok(ProbeOutcome::Free) => match self.vip.add() {
                Ok(_) => {
                    if let Err(e) = self.vip.send_announcement() {
                        warn!("{e}");
                    }
                    self.mark("vip added");
                    if self.garp_count > 1 {
                        self.vip_phase = VipPhase::Announcing {
                            left: self.garp_count - 1,
                            next: now + self.garp_interval,
                        };
                    }
                    Input::VipAdded {
                        ok: true,
                        detail: text(&format!("{} added, announced", self.vip)),
                    }
                }
                Err(e) => Input::VipAdded {
                    ok: false,
                    detail: text(&e.to_string()),
                },
            },
            Err(e) => Input::VipAdded {
                ok: false,
                detail: text(&e.to_string()),
            },
        };
        self.push(input);
    }

    /// A step of the takeover timeline (a timeline opens at the first step if the peer's loss
    /// did not open it).
    fn mark(&mut self, step: &'static str) {
        if !self.timeline_open {
            self.timeline.clear();
            self.timeline_open = true;
        }
        let _ = self.timeline.push((step, clock::wall_ms()));
        info!("takeover timeline: {step}");
    }

    /// The `peer`, `vip` and `fencing` objects of `bbwd status`.
    pub fn status(
        &self,
        now: Instant,
        node: &Node,
    ) -> (serde_json::Value, serde_json::Value, serde_json::Value) {
        let Some(tracker) = node.tracker() else {
            return (
                serde_json::Value::Null,
                serde_json::Value::Null,
                serde_json::Value::Null,
            );
        };
        let (up, total) = tracker.links_up(now);
        let counters = tracker.counters();
        let links: Vec<serde_json::Value> = (0..total)
            .map(|i| {
                let l = tracker.link(i);
                serde_json::json!({
                    "local": self.links.local_addr(i).map(|a| a.to_string()),
                    "peer": self.links.peer_addr(i).map(|a| a.to_string()),
                    "up": l.is_some_and(|l| l.up),
                    "accepted": l.map(|l| l.accepted),
                    "dropped": l.map(|l| l.dropped),
                })
            })
            .collect();
        let drops: serde_json::Map<String, serde_json::Value> = hb::Reject::ALL
            .iter()
            .map(|r| (r.name().to_string(), counters.get(*r).into()))
            .collect();
        let last = tracker.last();
        let p = node.pair();
        let peer = serde_json::json!({
            "name": self.peer_name,
            "alive": tracker.alive(now),
            "links_up": up,
            "links_total": total,
            "role": last.map(|h| format!("{:?}", h.role).to_lowercase()),
            "state": last.map(|h| format!("{:?}", h.state).to_lowercase()),
            "maintenance": p.map(|p| p.peer().maintenance),
            "protocol": last.map(|h| h.version),
            "links": links,
            "accepted": counters.accepted,
            "dropped": drops,
        });
        let vip = serde_json::json!({
            "address": format!("{}/{}", self.vip.address(), self.vip.prefix_len()),
            "interface": self.vip.interface(),
            "held": node.vip_held(),
        });
        let h = self.fencer.health();
        let fencing = serde_json::json!({
            "bmc": self.fencer.name(),
            "session_up": h.up,
            "tls_warning": self.fencer.warning(),
            "devices": self.fencer.each().into_iter().map(|(bmc, h)| serde_json::json!({
                "bmc": bmc,
                "session_up": h.up,
                "last_error": h.last_error.map(|e| e.to_string()),
            })).collect::<Vec<_>>(),
            "last_error": h.last_error.map(|e| e.to_string()),
            "blocked": p.is_some_and(|p| p.fence_blocked()),
            "takeover_blocked": p.is_some_and(|p| p.takeover_blocked()),
            "bmc_mismatch": p.is_some_and(|p| p.bmc_mismatch()),
            "preference_conflict": p.and_then(|p| p.preference_conflict()).map(|both| if both { "both" } else { "neither" }),
            "failover_paused": p.is_some_and(|p| p.paused()),
            "storage_held": node.storage_held(),
            "last_takeover": self.timeline.iter().map(|(step, ms)| serde_json::json!({
                "step": step, "at": clock::rfc3339(*ms).as_str(), "at_ms": ms,
            })).collect::<Vec<_>>(),
        });
        (peer, vip, fencing)
    }

    /// Pair mode's part of the metrics, into `out` (fixed capacity: no allocation).
    pub fn metrics(&self, now: Instant, node: &Node, out: &mut crate::metrics::Pair) {
        out.links.clear();
        out.dropped.clear();
        out.takeover.clear();
        out.vip_held = node.vip_held();
        out.bmc_reachable = self.bmc_up;
        for &(step, ms) in &self.timeline {
            let _ = out.takeover.push((step, ms));
        }
        let Some(tracker) = node.tracker() else {
            out.peer_alive = false;
            return;
        };
        out.peer_alive = tracker.alive(now);
        let (_, total) = tracker.links_up(now);
        for i in 0..total {
            let _ = out.links.push(crate::metrics::Link {
                up: tracker.link(i).is_some_and(|l| l.up),
                local: self.links.local_addr(i),
                peer: self.links.peer_addr(i),
            });
        }
        let counters = tracker.counters();
        for r in hb::Reject::ALL {
            let _ = out.dropped.push((r.name(), counters.get(r)));
        }
    }

    /// Closes the BMC session (at exit).
    pub fn close(self) {
        self.fencer.close(Duration::from_millis(500));
    }
}

fn text(s: &str) -> Detail {
    crate::machine::detail(s)
}
