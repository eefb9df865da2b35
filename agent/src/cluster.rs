//! Pair mode's I/O around the pure pair machine (`pair.rs`): heartbeats over every link, the
//! peer's BMC for fencing, the virtual IP (probe, add, gratuitous ARP, watch, remove), the
//! `[hooks]`, the witness and the public link.
//!
//! Owns those platform objects and the translation between them and `pair::Pair`: readiness
//! becomes `pair::Input`s, `pair::Action`s become operations. Must not decide anything (the
//! pair machine does) and must not touch the supervisor directly: what the supervisor must do
//! (`Permit`) and what is worth an event go out through [`Outbox`], drained by the daemon.
//!
//! # Invariants
//! * Every operation is non-blocking with a deadline: the fence run and the BMC session live on
//!   the IPMI client's worker, the VIP probe and the hooks are polled, heartbeats are datagrams.
//! * One pair operation of each kind at a time (the machine asks for one; a second request
//!   while one runs is a machine bug, logged and answered as failed).
//! * No allocation per heartbeat: the send and receive buffers are fixed.

use std::time::{Duration, Instant};

use bbwd_platform::clock;
use bbwd_platform::command::{Sequence, SequenceMode};
use bbwd_platform::heartbeat::Links;
use bbwd_platform::ipmi::{IpmiClient, Power};
use bbwd_platform::linkwatch::LinkWatch;
use bbwd_platform::poll::{PollSet, Token, Want};
use bbwd_platform::vip::{AddressWatch, ProbeOutcome, Vip};
use bbwd_platform::witness::Witness;
use log::{error, info, warn};

use crate::config::{Config, FenceAction};
use crate::fence::{self, FenceRun};
use crate::heartbeat as hb;
use crate::machine::{Detail, Report};
use crate::pair::{self, Hooks, Pair, PeerView, Role};

/// How long the ARP probe listens before the VIP is added.
pub const PROBE_WINDOW: Duration = Duration::from_millis(100);
/// How often the witness is asked.
pub const WITNESS_INTERVAL: Duration = Duration::from_secs(1);
/// A takeover or release step (hooks, VIP) that takes longer counts as failed.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(120);
/// The BMC session's keep-alive (well below BMCs' ~30-60 s idle timeout).
pub const FENCE_KEEPALIVE: Duration = Duration::from_secs(10);

/// What the daemon must carry out or record after a cluster call.
#[derive(Debug, Default)]
pub struct Outbox {
    /// The supervisor's permission changed.
    pub permit: Option<bool>,
    /// Events to record (kind, detail, is a problem).
    pub events: heapless::Deque<(&'static str, Detail, bool), 16>,
    /// The pair released everything after `Shutdown`.
    pub exit: bool,
}

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

/// Pair mode's platform side. See the module doc.
pub struct Cluster {
    pair: Pair,
    node: String,
    peer_name: String,
    fence_action: fence::Action,
    fence_timeout: Duration,
    before_start: Vec<Vec<String>>,
    after_stop: Vec<Vec<String>>,
    heartbeat_interval: Duration,
    garp_count: u32,
    garp_interval: Duration,
    links: Links,
    tracker: hb::PeerTracker,
    sender: hb::Sender,
    local: hb::Local,
    preferred: bool,
    next_beat: Instant,
    packet: [u8; hb::PACKET_BYTES],
    recv_buf: [u8; hb::RECV_BUFFER_BYTES],
    fencer: IpmiClient,
    fence_run: Option<FenceRun>,
    /// The running `fence_run` is only a power-status query (`QueryPeerPower`).
    fence_query: bool,
    /// A fence was asked for while the query ran: it starts when the query ends.
    fence_queued: bool,
    /// The takeover timeline was begun by the power query (the fence continues it).
    fence_query_done: bool,
    /// The fencing BMC's session health as last reported (an event on every change).
    bmc_up: Option<bool>,
    vip: Vip,
    vip_watch: Option<AddressWatch>,
    vip_phase: VipPhase,
    vip_held: bool,
    hooks: Option<(Hooks, Sequence)>,
    witness: Option<Witness>,
    next_witness: Instant,
    link: Option<LinkWatch>,
    self_fenced: bool,
    /// The last takeover's timeline (step, wall ms), for `bbwd status`.
    timeline: heapless::Vec<(&'static str, u64), 12>,
    /// When the peer was last declared lost (wall ms): the first step of the next takeover.
    peer_lost_ms: Option<u64>,
    out: Outbox,
    /// Inputs produced while applying actions.
    pending: heapless::Deque<pair::Input, 8>,
}

/// Why pair mode cannot start.
pub type SetupError = String;

impl Cluster {
    /// Opens everything pair mode needs; any failure names the key it comes from.
    pub fn new(cfg: &Config, now: Instant) -> Result<Cluster, SetupError> {
        let c = cfg.cluster.as_ref().ok_or("[cluster] missing")?;
        let v = cfg.vip.as_ref().ok_or("[cluster] needs [vip]")?;
        let f = cfg.fencing.as_ref().ok_or("[cluster] needs [fencing]")?;
        let key_bytes = bbwd_platform::fs::read_secret_file(&c.key_file)
            .map_err(|e| format!("cluster.key_file: {e}"))?;
        let key = hb::Key::new(&key_bytes).map_err(|e| format!("cluster.key_file: {e}"))?;
        let me = hb::NodeName::new(&cfg.node.name).ok_or("node.name: not a valid node name")?;
        let peer = hb::NodeName::new(&c.peer).ok_or("cluster.peer: not a valid node name")?;
        let links = Links::bind(&c.listen, &c.peer_addresses)
            .map_err(|e| format!("cluster.listen: {e}"))?;
        let boot_id =
            bbwd_platform::heartbeat::random_boot_id().map_err(|e| format!("heartbeat: {e}"))?;
        let first_sequence = clock::wall_ms().saturating_mul(1000);
        let fencer = IpmiClient::start(
            fence::target(f).map_err(|e| format!("fencing: {e}"))?,
            fence::settings(f, Some(FENCE_KEEPALIVE)),
        )
        .map_err(|e| format!("fencing: {e}"))?;
        let vip =
            Vip::open(&v.interface, v.address, v.prefix_len).map_err(|e| format!("vip: {e}"))?;
        let vip_watch = match vip.watch() {
            Ok(w) => Some(w),
            Err(e) => {
                warn!("vip: cannot watch the address: {e}");
                None
            }
        };
        let witness = match c.witness {
            Some(addr) => Some(Witness::new(addr).map_err(|e| format!("cluster.witness: {e}"))?),
            None => None,
        };
        let link = match LinkWatch::open(&v.interface) {
            Ok(l) => Some(l),
            Err(e) => return Err(format!("vip.interface: {e}")),
        };
        let settings = pair::Settings {
            peer_timeout: c.peer_timeout,
            preferred_active: c.preferred_active,
            fence_delay: fence_delay(c.peer_timeout),
            witness: c.witness.is_some(),
            step_timeout: STEP_TIMEOUT,
        };
        let (pair, first) = Pair::new(settings, now);
        let mut cl = Cluster {
            pair,
            node: cfg.node.name.clone(),
            peer_name: c.peer.clone(),
            fence_action: match f.action {
                FenceAction::Off => fence::Action::Off,
                FenceAction::Cycle => fence::Action::Cycle,
            },
            fence_timeout: f.timeout,
            before_start: cfg.hooks.before_start.clone(),
            after_stop: cfg.hooks.after_stop.clone(),
            heartbeat_interval: c.heartbeat_interval,
            garp_count: v.garp_count,
            garp_interval: v.garp_interval,
            tracker: hb::PeerTracker::new(key.clone(), me, peer, links.len(), c.peer_timeout),
            sender: hb::Sender::new(key, me, boot_id, first_sequence),
            links,
            local: hb::Local {
                role: hb::Role::None,
                state: hb::State::Starting,
                health: hb::Health::Unknown,
                flags: hb::Flags::empty(),
            },
            preferred: c.preferred_active,
            next_beat: now,
            packet: [0; hb::PACKET_BYTES],
            recv_buf: [0; hb::RECV_BUFFER_BYTES],
            fencer,
            fence_run: None,
            fence_query: false,
            fence_queued: false,
            fence_query_done: false,
            bmc_up: None,
            vip,
            vip_watch,
            vip_phase: VipPhase::Idle,
            vip_held: false,
            hooks: None,
            witness,
            next_witness: now,
            link,
            self_fenced: false,
            timeline: heapless::Vec::new(),
            peer_lost_ms: None,
            out: Outbox::default(),
            pending: heapless::Deque::new(),
        };
        // A VIP left configured by a crashed bbwd on this node is not held by the service: the
        // pair decides afresh, and the release path removes it.
        match cl.vip.held() {
            Ok(true) => {
                warn!(
                    "vip {}: still configured from an earlier run: removing it",
                    cl.vip
                );
                if let Err(e) = cl.vip.remove() {
                    error!("{e}");
                }
            }
            Ok(false) => {}
            Err(e) => warn!("{e}"),
        }
        cl.apply(now, first);
        Ok(cl)
    }

    /// Registers every fd of this pass.
    pub fn register(&self, set: &mut PollSet) -> Tokens {
        let mut t = Tokens::default();
        for fd in self.links.fds() {
            let _ = t.links.push(set.add(fd, Want::Read));
        }
        t.fence = set.add(self.fencer.fd(), Want::Read);
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

    /// The earliest moment pair mode needs the loop.
    pub fn deadline(&self) -> Option<Instant> {
        let announce = match self.vip_phase {
            VipPhase::Announcing { next, .. } => Some(next),
            _ => None,
        };
        [
            Some(self.next_beat),
            self.pair.next_deadline(),
            self.tracker.next_deadline(),
            self.fence_run
                .as_ref()
                .and_then(|r| r.wake_at(&self.fencer)),
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

    /// Handles what happened in this pass, then time: heartbeats due, deadlines.
    pub fn service(&mut self, now: Instant, set: &PollSet, t: &Tokens) {
        if t.links.iter().any(|tok| set.ready(*tok).any()) {
            self.receive(now);
        }
        while let Some(ev) = self.tracker.next_event(now) {
            self.on_tracker_event(now, ev);
        }
        let finished = match &mut self.fence_run {
            Some(run) => run.advance(&mut self.fencer, now),
            None => {
                if set.ready(t.fence).any() {
                    // Keep-alive health changes and stray results: drain.
                    let _ = self.fencer.try_result(now);
                }
                None
            }
        };
        if let Some(result) = finished {
            self.fence_run = None;
            if std::mem::take(&mut self.fence_query) {
                let (off, detail) = match &result {
                    Ok(p) => (
                        *p == Power::Off,
                        format!("{}: power {}", self.fencer.name(), p.as_str()),
                    ),
                    Err(e) => (false, e.to_string()),
                };
                if off {
                    self.mark("peer already off");
                }
                self.feed(
                    now,
                    pair::Input::PeerPower {
                        off,
                        detail: text(&detail),
                    },
                );
                if std::mem::take(&mut self.fence_queued) {
                    self.start_fence(now);
                }
            } else {
                let input = match result {
                    Ok(p) => {
                        self.mark("fence confirmed");
                        pair::Input::FenceDone {
                            confirmed: true,
                            detail: text(&format!("{}: power {}", self.fencer.name(), p.as_str())),
                        }
                    }
                    Err(e) => pair::Input::FenceDone {
                        confirmed: false,
                        detail: text(&e.to_string()),
                    },
                };
                self.feed(now, input);
            }
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
            self.on_watch(now);
        }
        if let Some((phase, seq)) = &mut self.hooks {
            let phase = *phase;
            if let Some(outcome) = seq.service(now) {
                self.hooks = None;
                let ok = outcome.succeeded();
                let detail = text(&outcome.to_string());
                self.feed(now, pair::Input::HooksDone { phase, ok, detail });
            }
        }
        self.watch_bmc();
        self.service_witness(now);
        if set.ready(t.link).any() {
            let change = match &mut self.link {
                Some(l) => match l.read() {
                    Ok(Some(state)) => Some((state.usable(), l.interface().to_string())),
                    Ok(None) => None,
                    Err(e) => {
                        warn!("{e}");
                        None
                    }
                },
                None => None,
            };
            if let Some((up, name)) = change {
                let word = if up { "up" } else { "DOWN" };
                self.event("public_link", &format!("{name}: {word}"), !up);
                self.feed(now, pair::Input::PublicLink { up });
            }
        }
        let acts = self.pair.step(now, pair::Input::Tick);
        self.apply(now, acts);
        self.drain(now);
        if now >= self.next_beat {
            self.beat(now);
        }
    }

    /// Feeds a supervisor report.
    pub fn supervisor(&mut self, now: Instant, r: Report) {
        let input = match r {
            Report::Healthy => pair::Input::SupervisorHealthy,
            Report::Stopped => pair::Input::SupervisorStopped,
            Report::Escalate => pair::Input::SupervisorEscalates,
            Report::Unkillable => pair::Input::SupervisorUnkillable,
            Report::StartFailed => pair::Input::SupervisorStartFailed,
        };
        self.feed(now, input);
    }

    /// Operator and signal inputs (`Switchover`, `ConfirmPeerDown`, `Shutdown`).
    pub fn feed(&mut self, now: Instant, input: pair::Input) {
        let acts = self.pair.step(now, input);
        self.apply(now, acts);
        self.drain(now);
    }

    /// What the daemon must do now.
    pub fn outbox(&mut self) -> &mut Outbox {
        &mut self.out
    }

    /// The pair machine asked to self-fence (stop petting the hardware watchdog).
    pub fn self_fenced(&self) -> bool {
        self.self_fenced
    }

    pub fn role(&self) -> Role {
        self.pair.role()
    }

    /// Heartbeat contents that come from the supervisor (state, Bitbucket health).
    pub fn set_local(&mut self, state: hb::State, health: hb::Health) {
        if !matches!(
            self.local.state,
            hb::State::Fencing | hb::State::TakingOver | hb::State::Releasing
        ) {
            self.local.state = state;
        }
        self.local.health = health;
    }

    /// The `peer`, `vip` and `fencing` objects of `bbwd status`, and the links' state.
    pub fn status(
        &self,
        now: Instant,
    ) -> (serde_json::Value, serde_json::Value, serde_json::Value) {
        let (up, total) = self.tracker.links_up(now);
        let counters = self.tracker.counters();
        let links: Vec<serde_json::Value> = (0..total)
            .map(|i| {
                let l = self.tracker.link(i);
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
        let last = self.tracker.last();
        let peer = serde_json::json!({
            "name": self.peer_name,
            "alive": self.tracker.alive(now),
            "links_up": up,
            "links_total": total,
            "role": last.map(|h| format!("{:?}", h.role).to_lowercase()),
            "state": last.map(|h| format!("{:?}", h.state).to_lowercase()),
            "links": links,
            "accepted": counters.accepted,
            "dropped": drops,
        });
        let vip = serde_json::json!({
            "address": format!("{}/{}", self.vip.address(), self.vip.prefix_len()),
            "interface": self.vip.interface(),
            "held": self.vip_held,
        });
        let h = self.fencer.health();
        let fencing = serde_json::json!({
            "bmc": self.fencer.name(),
            "session_up": h.up,
            "last_error": h.last_error.map(|e| e.to_string()),
            "blocked": self.pair.fence_blocked(),
            "last_takeover": self.timeline.iter().map(|(step, ms)| serde_json::json!({
                "step": step, "at": clock::rfc3339(*ms).as_str(), "at_ms": ms,
            })).collect::<Vec<_>>(),
        });
        (peer, vip, fencing)
    }

    fn receive(&mut self, now: Instant) {
        // Bounded per pass: a flood on the links must not starve the loop.
        for _ in 0..64 {
            match self.links.recv(&mut self.recv_buf) {
                Ok(Some(r)) => {
                    let bytes = &self.recv_buf[..r.len.min(self.recv_buf.len())];
                    if let Err(reject) = self.tracker.receive(now, r.link, bytes) {
                        log::debug!(
                            "heartbeat from {} on link {} dropped: {reject}",
                            r.from,
                            r.link
                        );
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    warn!("{e}");
                    break;
                }
            }
        }
        self.feed_peer(now);
    }

    fn feed_peer(&mut self, now: Instant) {
        let view = self.peer_view(now);
        let acts = self.pair.step(now, pair::Input::Peer(view));
        self.apply(now, acts);
    }

    fn peer_view(&self, now: Instant) -> PeerView {
        let alive = self.tracker.alive(now);
        let Some(h) = self.tracker.last() else {
            return PeerView {
                alive,
                role: Role::Booting,
                healthy: false,
                handed_over: false,
            };
        };
        let role = match (h.role, h.state) {
            (hb::Role::None, _) => Role::Booting,
            (hb::Role::Standby, hb::State::Fencing) => Role::Fencing,
            (hb::Role::Standby, _) => Role::Standby,
            (hb::Role::Active, hb::State::TakingOver) => Role::TakingOver,
            (hb::Role::Active, hb::State::Releasing) => Role::Releasing,
            (hb::Role::Active, _) => Role::Active,
        };
        PeerView {
            alive,
            role,
            healthy: !matches!(h.state, hb::State::Failed | hb::State::Maintenance),
            handed_over: h.flags.contains(hb::Flags::SWITCHOVER_REQUEST),
        }
    }

    fn on_tracker_event(&mut self, now: Instant, ev: hb::Event) {
        match ev {
            hb::Event::LinkDown(i) => {
                let (up, total) = self.tracker.links_up(now);
                self.event(
                    "link_down",
                    &format!("heartbeat link {i} lost ({up}/{total} up)"),
                    true,
                );
            }
            hb::Event::LinkUp(i) => self.event("link_up", &format!("heartbeat link {i} up"), false),
            hb::Event::PeerRestarted => {
                self.event("peer_restarted", "the peer's bbwd started anew", false)
            }
            hb::Event::PeerAlive | hb::Event::PeerLost => {}
        }
        self.feed_peer(now);
    }

    fn beat(&mut self, now: Instant) {
        self.next_beat = now + self.heartbeat_interval;
        let wall = clock::wall_ms();
        for link in 0..self.links.len() {
            self.sender
                .encode(&self.local, link as u8, wall, &mut self.packet);
            if let Err(e) = self.links.send(link, &self.packet) {
                log::debug!("{e}");
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
                    self.event(
                        "fencing_bmc_up",
                        &format!("{}: session up again: fencing works", self.fencer.name()),
                        false,
                    );
                }
            } else {
                let why = h.last_error.map(|e| e.to_string()).unwrap_or_default();
                self.event(
                    "fencing_bmc_down",
                    &format!(
                        "{}: not answering, fencing would fail: {why}",
                        self.fencer.name()
                    ),
                    true,
                );
            }
        }
    }

    fn service_witness(&mut self, now: Instant) {
        let Some(w) = &mut self.witness else { return };
        if w.in_flight() {
            if let Some(reachable) = w.advance(now) {
                let acts = self.pair.step(now, pair::Input::Witness { reachable });
                self.apply(now, acts);
            }
        } else if now >= self.next_witness {
            self.next_witness = now + WITNESS_INTERVAL;
            w.start(now, WITNESS_INTERVAL / 2);
        }
    }

    fn on_watch(&mut self, now: Instant) {
        let Some(w) = &mut self.vip_watch else { return };
        match w.read() {
            Ok(r) if (r.removed || r.overrun) && self.vip_held => {
                // Only ours to put back while we hold it (our own `remove` clears vip_held first).
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

    fn after_probe(&mut self, now: Instant, r: Result<ProbeOutcome, bbwd_platform::vip::VipError>) {
        self.vip_phase = VipPhase::Idle;
        let input = match r {
            Ok(ProbeOutcome::Conflict { mac }) => pair::Input::VipAdded {
                ok: false,
                detail: text(&format!(
                    "{} answered from {mac}: someone else holds the VIP",
                    self.vip.address()
                )),
            },
            Ok(ProbeOutcome::Free) => match self.vip.add() {
                Ok(_) => {
                    self.vip_held = true;
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
                    pair::Input::VipAdded {
                        ok: true,
                        detail: text(&format!("{} added, announced", self.vip)),
                    }
                }
                Err(e) => pair::Input::VipAdded {
                    ok: false,
                    detail: text(&e.to_string()),
                },
            },
            Err(e) => pair::Input::VipAdded {
                ok: false,
                detail: text(&e.to_string()),
            },
        };
        self.feed(now, input);
    }

    /// Starts the configured fence action against the peer (the takeover timeline starts here
    /// unless the peer's loss started it).
    fn start_fence(&mut self, now: Instant) {
        if !self.fence_query_done {
            self.begin_timeline();
        }
        self.fence_query_done = false;
        self.mark("fence started");
        self.fence_run = Some(FenceRun::start(
            &mut self.fencer,
            self.fence_action,
            self.fence_timeout,
            now,
        ));
    }

    /// A new takeover timeline: cleared, starting with the moment the peer was lost if it was.
    fn begin_timeline(&mut self) {
        self.timeline.clear();
        if let Some(ms) = self.peer_lost_ms {
            let _ = self.timeline.push(("peer lost", ms));
        }
    }

    /// Carries out the pair machine's actions.
    fn apply(&mut self, now: Instant, acts: pair::Actions) {
        for a in acts {
            match a {
                pair::Action::FencePeer => {
                    if self.fence_query {
                        // The status query is still out: the fence follows it.
                        self.fence_queued = true;
                    } else if self.fence_run.is_some() || self.fencer.busy() {
                        let _ = self.pending.push_back(pair::Input::FenceDone {
                            confirmed: false,
                            detail: text("a fence is already running"),
                        });
                    } else {
                        self.start_fence(now);
                    }
                }
                pair::Action::QueryPeerPower => {
                    if self.fence_run.is_none() && !self.fencer.busy() {
                        self.begin_timeline();
                        self.fence_query = true;
                        self.fence_query_done = true;
                        self.fence_run = Some(FenceRun::start(
                            &mut self.fencer,
                            fence::Action::Status,
                            self.fence_timeout,
                            now,
                        ));
                    }
                }
                pair::Action::RunHooks(phase) => {
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
                        // A takeover without a fence (hand-over, switchover, cold start with
                        // both alive) starts its own timeline; after a fence it continues it.
                        let fenced = self.timeline.last().is_some_and(|(step, _)| {
                            matches!(*step, "fence confirmed" | "peer already off")
                        });
                        if !fenced {
                            self.begin_timeline();
                        }
                        self.mark(name);
                    }
                    let mut seq = Sequence::new(name, &self.node, steps, STEP_TIMEOUT, mode);
                    seq.start(now);
                    self.hooks = Some((phase, seq));
                }
                pair::Action::Permit { run } => {
                    if run {
                        self.mark("start bitbucket");
                    }
                    self.out.permit = Some(run);
                }
                pair::Action::AddVip => {
                    // AddVip follows the supervisor's healthy report at once.
                    self.mark("bitbucket healthy");
                    match self.vip.start_probe(now, PROBE_WINDOW) {
                        Ok(()) => self.vip_phase = VipPhase::Probing,
                        Err(e) => {
                            let _ = self.pending.push_back(pair::Input::VipAdded {
                                ok: false,
                                detail: text(&e.to_string()),
                            });
                        }
                    }
                }
                pair::Action::RemoveVip => {
                    self.vip.cancel_probe();
                    self.vip_phase = VipPhase::Idle;
                    self.vip_held = false;
                    let input = match self.vip.remove() {
                        Ok(_) => pair::Input::VipRemoved {
                            ok: true,
                            detail: text(&format!("{} removed", self.vip)),
                        },
                        Err(e) => pair::Input::VipRemoved {
                            ok: false,
                            detail: text(&e.to_string()),
                        },
                    };
                    let _ = self.pending.push_back(input);
                }
                pair::Action::SelfFence => {
                    self.self_fenced = true;
                    error!("self-fence: the hardware watchdog is no longer petted");
                }
                pair::Action::Advertise { role, handed_over } => {
                    self.local.role = match role {
                        Role::Booting => hb::Role::None,
                        Role::Standby | Role::Fencing => hb::Role::Standby,
                        Role::TakingOver | Role::Active | Role::Releasing => hb::Role::Active,
                    };
                    self.local.state = match role {
                        Role::Fencing => hb::State::Fencing,
                        Role::TakingOver => hb::State::TakingOver,
                        Role::Releasing => hb::State::Releasing,
                        Role::Booting => hb::State::Starting,
                        Role::Standby => hb::State::Stopped,
                        Role::Active => hb::State::Running,
                    };
                    let mut flags = hb::Flags::empty();
                    if handed_over {
                        flags = flags | hb::Flags::SWITCHOVER_REQUEST;
                    }
                    if role == Role::Releasing {
                        flags = flags | hb::Flags::RELEASING;
                    }
                    if self.preferred {
                        flags = flags | hb::Flags::PREFERRED_ACTIVE;
                    }
                    if self.vip_held {
                        flags = flags | hb::Flags::HOLDS_VIP;
                    }
                    self.local.flags = flags;
                    if role == Role::Active {
                        self.mark("active");
                    }
                    // Tell the peer at once: role changes must not wait for the next beat.
                    self.next_beat = now;
                }
                pair::Action::Event(kind, detail) => {
                    let problem = matches!(
                        kind,
                        pair::Kind::PeerLost
                            | pair::Kind::FenceFailed
                            | pair::Kind::ReleaseError
                            | pair::Kind::SelfFence
                            | pair::Kind::SwitchoverRefused
                            | pair::Kind::Isolated
                            | pair::Kind::VipConflict
                    );
                    match kind {
                        pair::Kind::PeerLost => self.peer_lost_ms = Some(clock::wall_ms()),
                        pair::Kind::PeerSeen => self.peer_lost_ms = None,
                        _ => {}
                    }
                    let _ = self.out.events.push_back((kind.as_str(), detail, problem));
                }
                pair::Action::Exit => self.out.exit = true,
            }
        }
    }

    fn drain(&mut self, now: Instant) {
        while let Some(input) = self.pending.pop_front() {
            let acts = self.pair.step(now, input);
            self.apply(now, acts);
        }
    }

    fn event(&mut self, kind: &'static str, detail: &str, problem: bool) {
        let _ = self.out.events.push_back((kind, text(detail), problem));
    }

    fn mark(&mut self, step: &'static str) {
        let _ = self.timeline.push((step, clock::wall_ms()));
        info!("takeover timeline: {step}");
    }

    /// Closes the BMC session (at exit).
    pub fn close(self) {
        self.fencer.close(Duration::from_millis(500));
    }
}

/// The priority delay (how long the node *not* holding the service waits before fencing): the
/// node holding it detects the loss within a heartbeat interval of us and its fence powers us
/// off in ~0.2-1.1 s (a BMC's tick), so two `peer_timeout`s, at least 1.5 s, at most 5 s.
pub fn fence_delay(peer_timeout: Duration) -> Duration {
    (peer_timeout * 2).clamp(Duration::from_millis(1500), Duration::from_secs(5))
}

fn text(s: &str) -> Detail {
    crate::machine::detail(s)
}
