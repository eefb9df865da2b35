//! The cold-standby pair's decision logic: which node serves, and in what order a node takes
//! the service over or gives it up. A pure state machine like `machine.rs` (no I/O, time passed
//! in, actions returned); it sits *above* the single-node supervisor, which it tells whether
//! Bitbucket may run (`Permit`) and which tells it when Bitbucket is healthy, gone, or beyond
//! saving (`Supervisor*` inputs).
//!
//! # Theory of operation
//!
//! ```text
//!   Booting ──peer heard, peer active────────────────────────────────► Standby
//!      │  ──peer heard, nobody active, we are preferred──┐               │  ▲
//!      │                                                 │   peer lost   │  │ released
//!      └──silent for peer_timeout (+ fence delay)──┐     │  (+ delay)    ▼  │
//!                                                  ▼     │           ┌────────┐
//!                 confirm-peer-down ──────────► Fencing ◄────────────┤        │
//!                   (operator)       fence ok │   │ fail            │        │
//!                                             │   ▼                 │        │
//!                                             │ FenceBlocked        │        │
//!                                             │  (retry, backoff,   │        │
//!                                             │   CRITICAL)         │        │
//!                                             ▼                     │        │
//!   TakingOver: before_start hooks -> Permit(run) -> healthy -> AddVip + GARP │
//!                                             │                     │        │
//!                                             ▼                     │        │
//!                                           Active ──restarts exhausted, lost public link,
//!                                             │      isolated (witness), switchover──► Releasing:
//!                                             │                          RemoveVip -> Permit(stop)
//!                                             │                          -> gone -> after_stop hooks
//!                 peer lost: fence it at once ┘        (Bitbucket unkillable => SelfFence)
//! ```
//!
//! * **Never take over without a confirmed fence**, unless the peer itself said, over the
//!   authenticated heartbeat, that it is standby and not serving (cold boot with both alive, or
//!   a switchover handshake), or an operator confirmed it is down.
//! * **Split brain** (both alive, every heartbeat link cut): the node holding the service fences
//!   at once; the other waits `fence_delay` first (the priority-fencing-delay idea), so the
//!   service is not interrupted. While it waits it asks the peer's BMC for the power state
//!   (`QueryPeerPower`): a peer already off is exactly what a fence would confirm, so the usual
//!   case, a dead active node, is taken over at once; only a peer still powered is raced. With a witness, a node that reaches neither its peer nor the
//!   witness is the isolated one: it does not fence; if it serves, it releases.
//! * **Release is best-effort**: every step runs even if an earlier one failed, and all errors
//!   are reported; only a Bitbucket that cannot be stopped ends it, by self-fencing (the
//!   watchdog stops being petted, the node resets, and the peer fences and takes over).
//!
//! # Invariants
//! * `AddVip` is only ever returned in `TakingOver` after Bitbucket was healthy, and
//!   `TakingOver` is only entered after a confirmed fence, a heartbeat-confirmed release by the
//!   peer, or an operator's confirmation.
//! * `Permit { run: true }` is only returned in `TakingOver`; leaving `Active`/`TakingOver`
//!   always passes through `Releasing`, which returns `RemoveVip` before `Permit { run: false }`.

#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use crate::machine::Detail;

/// Most actions one step returns.
pub const MAX_ACTIONS: usize = 8;

/// Actions of one step.
pub type Actions = heapless::Vec<Action, MAX_ACTIONS>;

/// First retry of a failed fence; doubled each time up to `FENCE_BACKOFF_MAX`.
pub const FENCE_BACKOFF_START: Duration = Duration::from_secs(1);
/// Longest wait between fence attempts.
pub const FENCE_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Timing and preferences (from `[cluster]`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The peer is dead to us after this long without a valid heartbeat on any link.
    pub peer_timeout: Duration,
    /// This node wins the fence race and starts active on a cold boot.
    pub preferred_active: bool,
    /// How long the node *not* holding the service waits before fencing (priority delay).
    pub fence_delay: Duration,
    /// Whether a witness address is configured.
    pub witness: bool,
    /// Longest a takeover or release step may take before it counts as failed.
    pub step_timeout: Duration,
}

/// What the heartbeat says about the peer (the tracker's summary, fed on every change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerView {
    /// A valid packet arrived on some link within `peer_timeout`.
    pub alive: bool,
    /// The role the peer advertises.
    pub role: Role,
    /// The peer's Bitbucket is healthy (for switchover: the peer must be able to take over).
    pub healthy: bool,
    /// The peer released the service for us (switchover handshake).
    pub handed_over: bool,
}

/// A node's advertised role (also what this node advertises).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Booting,
    Standby,
    Fencing,
    TakingOver,
    Active,
    Releasing,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Booting => "booting",
            Role::Standby => "standby",
            Role::Fencing => "fencing",
            Role::TakingOver => "taking_over",
            Role::Active => "active",
            Role::Releasing => "releasing",
        }
    }
    /// Roles in which a node may run Bitbucket or hold the VIP.
    fn serving(self) -> bool {
        matches!(self, Role::TakingOver | Role::Active | Role::Releasing)
    }
}

/// Why a release happens (decides where it ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseWhy {
    /// Restarts exhausted: hand over to the peer.
    Escalation,
    /// The public link is down: hand over.
    PublicLinkLost,
    /// Neither peer nor witness reachable: we are the isolated one.
    Isolated,
    /// Operator's planned move, by handshake.
    Switchover,
    /// The takeover failed halfway (a hook or the start failed).
    TakeoverFailed,
    /// bbwd is stopping.
    Shutdown,
}

/// Hook phases (`[hooks]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hooks {
    BeforeStart,
    AfterStop,
}

/// Inputs.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Tick,
    /// The heartbeat's view of the peer changed (or is re-stated).
    Peer(PeerView),
    /// `FencePeer` finished: `confirmed` = the BMC reports the peer off.
    FenceDone {
        confirmed: bool,
        detail: Detail,
    },
    HooksDone {
        phase: Hooks,
        ok: bool,
        detail: Detail,
    },
    /// `AddVip` finished (address added and GARPs sent), or failed, or the ARP probe found
    /// another holder.
    VipAdded {
        ok: bool,
        detail: Detail,
    },
    /// `RemoveVip` finished (already gone counts as done).
    VipRemoved {
        ok: bool,
        detail: Detail,
    },
    /// The supervisor reached RUNNING after `Permit { run: true }`.
    SupervisorHealthy,
    /// The supervisor's Bitbucket is stopped and its group gone after `Permit { run: false }`.
    SupervisorStopped,
    /// The supervisor gave up: restarts exhausted (pair mode escalates instead of failing).
    SupervisorEscalates,
    /// The supervisor cannot stop Bitbucket (it survived SIGKILL).
    SupervisorUnkillable,
    /// The start failed for good (exits during startup, never healthy).
    SupervisorStartFailed,
    /// Whether the witness answered lately (only with a witness configured).
    Witness {
        reachable: bool,
    },
    /// The public link (the VIP's interface) has carrier / is up.
    PublicLink {
        up: bool,
    },
    /// Operator: `bbwd switchover`.
    Switchover,
    /// Operator: `bbwd confirm-peer-down`.
    ConfirmPeerDown,
    /// `QueryPeerPower` answered: the peer's BMC reports its power `off` (or on, or it could
    /// not say: `off: false`).
    PeerPower {
        off: bool,
        detail: Detail,
    },
    Shutdown,
}

/// Actions.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Fence the peer through its BMC (power off, confirmed); answer `FenceDone`.
    FencePeer,
    /// Ask the peer's BMC for its power state (no command); answer `PeerPower`.
    QueryPeerPower,
    /// Run the hooks of a phase in order; answer `HooksDone`.
    RunHooks(Hooks),
    /// Tell the supervisor whether Bitbucket may run.
    Permit {
        run: bool,
    },
    /// Probe, add the VIP, send GARPs; answer `VipAdded`.
    AddVip,
    /// Remove the VIP; answer `VipRemoved`.
    RemoveVip,
    /// Stop petting the hardware watchdog: the node must reset.
    SelfFence,
    /// Advertise this role (and the handover flag) in heartbeats.
    Advertise {
        role: Role,
        handed_over: bool,
    },
    Event(Kind, Detail),
    /// Everything released after `Shutdown`: the daemon may exit.
    Exit,
}

/// Pair events (the `kind` of status events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    PeerLost,
    PeerSeen,
    Fence,
    Fenced,
    FenceFailed,
    PeerConfirmedDown,
    TakeoverStep,
    Active,
    Release,
    ReleaseStep,
    ReleaseError,
    Standby,
    SelfFence,
    SwitchoverRefused,
    Isolated,
    VipConflict,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::PeerLost => "peer_lost",
            Kind::PeerSeen => "peer_seen",
            Kind::Fence => "fence",
            Kind::Fenced => "fenced",
            Kind::FenceFailed => "fence_failed",
            Kind::PeerConfirmedDown => "peer_confirmed_down",
            Kind::TakeoverStep => "takeover_step",
            Kind::Active => "active",
            Kind::Release => "release",
            Kind::ReleaseStep => "release_step",
            Kind::ReleaseError => "release_error",
            Kind::Standby => "standby",
            Kind::SelfFence => "self_fence",
            Kind::SwitchoverRefused => "switchover_refused",
            Kind::Isolated => "isolated",
            Kind::VipConflict => "vip_conflict",
        }
    }
}

/// Takeover steps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TakeStep {
    Hooks,
    Starting,
    Vip,
}

/// Release steps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RelStep {
    Vip,
    Stopping,
    Hooks,
}

/// The state, carrying its data.
#[derive(Debug, Clone, Copy, PartialEq)]
enum St {
    /// Listening for the peer until `until`.
    Booting {
        until: Instant,
    },
    Standby,
    /// Fence requested (or waiting `not_before` for the priority delay).
    Fencing {
        not_before: Instant,
        requested: bool,
        attempt: u32,
    },
    /// A fence failed; retry at `retry_at`. Only the peer reappearing or an operator ends it.
    FenceBlocked {
        retry_at: Instant,
        attempt: u32,
    },
    TakingOver {
        step: TakeStep,
        deadline: Instant,
    },
    Active {
        fencing_peer: bool,
    },
    Releasing {
        step: RelStep,
        deadline: Instant,
        why: ReleaseWhy,
        errors: u8,
    },
    /// The node could not stop Bitbucket: waiting for the watchdog to reset it.
    SelfFenced,
}

/// The pair machine.
#[derive(Debug)]
pub struct Pair {
    s: Settings,
    st: St,
    peer: PeerView,
    witness_reachable: bool,
    public_up: bool,
    shutting_down: bool,
    /// We released for the peer (switchover, escalation, lost public link) and stay out of its
    /// way until it serves: advertised as `handed_over`, and blocks the preferred-node rule.
    handed_over_done: bool,
}

impl Pair {
    pub fn new(s: Settings, now: Instant) -> (Pair, Actions) {
        let mut out = Actions::new();
        let p = Pair {
            st: St::Booting {
                until: now + s.peer_timeout,
            },
            s,
            peer: PeerView {
                alive: false,
                role: Role::Booting,
                healthy: false,
                handed_over: false,
            },
            witness_reachable: true,
            public_up: true,
            shutting_down: false,
            handed_over_done: false,
        };
        push(
            &mut out,
            Action::Advertise {
                role: Role::Booting,
                handed_over: false,
            },
        );
        (p, out)
    }

    /// The role this node advertises and reports.
    pub fn role(&self) -> Role {
        match self.st {
            St::Booting { .. } => Role::Booting,
            St::Standby | St::SelfFenced => Role::Standby,
            St::Fencing { .. } | St::FenceBlocked { .. } => Role::Fencing,
            St::TakingOver { .. } => Role::TakingOver,
            St::Active { .. } => Role::Active,
            St::Releasing { .. } => Role::Releasing,
        }
    }

    /// A fence failed and nothing has resolved it: CRITICAL in status.
    pub fn fence_blocked(&self) -> bool {
        matches!(self.st, St::FenceBlocked { .. })
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        match self.st {
            St::Booting { until } => Some(until),
            St::Fencing {
                not_before,
                requested: false,
                ..
            } => Some(not_before),
            St::FenceBlocked { retry_at, .. } => Some(retry_at),
            St::TakingOver { deadline, .. } | St::Releasing { deadline, .. } => Some(deadline),
            _ => None,
        }
    }

    pub fn step(&mut self, now: Instant, input: Input) -> Actions {
        let before = (self.role(), self.handed_over());
        let mut out = Actions::new();
        match input {
            Input::Tick => self.on_tick(now, &mut out),
            Input::Peer(v) => self.on_peer(now, v, &mut out),
            Input::FenceDone { confirmed, detail } => {
                self.on_fenced(now, confirmed, detail, &mut out)
            }
            Input::HooksDone { phase, ok, detail } => {
                self.on_hooks(now, phase, ok, detail, &mut out)
            }
            Input::VipAdded { ok, detail } => self.on_vip_added(now, ok, detail, &mut out),
            Input::VipRemoved { ok, detail } => self.on_vip_removed(now, ok, detail, &mut out),
            Input::SupervisorHealthy => self.on_healthy(now, &mut out),
            Input::SupervisorStopped => self.on_stopped(now, &mut out),
            Input::SupervisorEscalates => self.release(now, ReleaseWhy::Escalation, &mut out),
            Input::SupervisorStartFailed => self.on_start_failed(now, &mut out),
            Input::SupervisorUnkillable => self.self_fence(&mut out),
            Input::Witness { reachable } => {
                self.witness_reachable = reachable;
                self.check_isolation(now, &mut out);
            }
            Input::PublicLink { up } => {
                self.public_up = up;
                if !up && matches!(self.st, St::Active { .. } | St::TakingOver { .. }) {
                    ev(
                        &mut out,
                        Kind::Release,
                        format_args!("public link down: failing over to the peer"),
                    );
                    self.release(now, ReleaseWhy::PublicLinkLost, &mut out);
                }
            }
            Input::Switchover => self.on_switchover(now, &mut out),
            Input::ConfirmPeerDown => self.on_confirm_peer_down(now, &mut out),
            Input::PeerPower { off, detail } => self.on_peer_power(now, off, detail, &mut out),
            Input::Shutdown => self.on_shutdown(now, &mut out),
        }
        let after = (self.role(), self.handed_over());
        if before != after {
            push(
                &mut out,
                Action::Advertise {
                    role: after.0,
                    handed_over: after.1,
                },
            );
        }
        out
    }

    /// The switchover handshake flag: we released for the peer and it may take over unfenced.
    fn handed_over(&self) -> bool {
        matches!(
            self.st,
            St::Releasing {
                why: ReleaseWhy::Switchover | ReleaseWhy::Escalation | ReleaseWhy::PublicLinkLost,
                ..
            }
        ) || (self.handed_over_done && self.st == St::Standby)
    }

    fn on_tick(&mut self, now: Instant, out: &mut Actions) {
        match self.st {
            St::Booting { until } if now >= until => {
                // Silence on every link: the peer may be running Bitbucket for all we know.
                ev(
                    out,
                    Kind::PeerLost,
                    format_args!("no heartbeat from the peer within peer_timeout at boot"),
                );
                self.begin_fence(now, out);
            }
            St::Fencing {
                not_before,
                requested: false,
                attempt,
            } if now >= not_before => {
                self.st = St::Fencing {
                    not_before,
                    requested: true,
                    attempt,
                };
                ev(
                    out,
                    Kind::Fence,
                    format_args!("fencing the peer (attempt {})", attempt + 1),
                );
                push(out, Action::FencePeer);
            }
            St::FenceBlocked { retry_at, attempt } if now >= retry_at => {
                self.st = St::Fencing {
                    not_before: now,
                    requested: true,
                    attempt,
                };
                ev(
                    out,
                    Kind::Fence,
                    format_args!("fencing the peer again (attempt {})", attempt + 1),
                );
                push(out, Action::FencePeer);
            }
            St::TakingOver { step, deadline } if now >= deadline => {
                ev(
                    out,
                    Kind::TakeoverStep,
                    format_args!("takeover step {step:?} timed out"),
                );
                self.release(now, ReleaseWhy::TakeoverFailed, out);
            }
            St::Releasing { step, deadline, .. } if now >= deadline => {
                ev(
                    out,
                    Kind::ReleaseError,
                    format_args!("release step {step:?} timed out"),
                );
                self.release_next(now, step, false, out);
            }
            _ => {}
        }
    }

    fn on_peer(&mut self, now: Instant, v: PeerView, out: &mut Actions) {
        let was_alive = self.peer.alive;
        self.peer = v;
        if v.alive && v.role == Role::Active {
            // The peer serves now: our handover is complete.
            self.handed_over_done = false;
        }
        if v.alive && !was_alive {
            ev(
                out,
                Kind::PeerSeen,
                format_args!("peer heard: {}", v.role.as_str()),
            );
        } else if !v.alive && was_alive {
            ev(
                out,
                Kind::PeerLost,
                format_args!("no valid heartbeat on any link for peer_timeout"),
            );
        }
        match self.st {
            St::Booting { .. } if v.alive => {
                if v.role.serving() || v.role == Role::Fencing {
                    self.stand_by(out);
                } else if self.s.preferred_active {
                    // Both alive, neither serving, and the peer says so itself: no fence needed.
                    self.take_over(now, out);
                } else {
                    self.stand_by(out);
                }
            }
            St::Standby if !v.alive => self.begin_fence(now, out),
            St::Standby if v.alive && v.role == Role::Standby && v.handed_over => {
                // The peer released for us (switchover or escalation) and says so.
                self.take_over(now, out);
            }
            St::Standby
                if v.alive
                    && v.role == Role::Standby
                    && !v.handed_over
                    && !self.handed_over_done
                    && self.s.preferred_active =>
            {
                // Two standbys (e.g. after both restarted): the preferred one serves.
                self.take_over(now, out);
            }
            St::Fencing {
                requested: false, ..
            }
            | St::FenceBlocked { .. }
                if v.alive =>
            {
                // The peer is back before we fenced it: no takeover.
                ev(
                    out,
                    Kind::PeerSeen,
                    format_args!("peer answered again before the fence: standing by"),
                );
                self.stand_by(out);
            }
            St::Active {
                fencing_peer: false,
            } if !v.alive => {
                if self.s.witness && !self.witness_reachable {
                    self.isolated(now, out);
                } else {
                    // We hold the service: fence at once, keep serving meanwhile.
                    self.st = St::Active { fencing_peer: true };
                    ev(
                        out,
                        Kind::Fence,
                        format_args!("peer lost while active: fencing it at once"),
                    );
                    push(out, Action::FencePeer);
                }
            }
            _ => {}
        }
    }

    /// Starts fencing the silent peer, from `Booting` or `Standby` (the active node fences from
    /// `Active` directly, at once). Who waits: in `Standby` we do not hold the service, so the
    /// active node (if it is alive and only the links are cut) gets the first shot; at boot
    /// nobody holds it, and `preferred_active` decides who goes first.
    fn begin_fence(&mut self, now: Instant, out: &mut Actions) {
        if self.s.witness && !self.witness_reachable {
            // Neither peer nor witness: we are the isolated one; never fence from here.
            self.isolated(now, out);
            return;
        }
        if !self.public_up {
            ev(
                out,
                Kind::Standby,
                format_args!("peer silent, but our public link is down: not taking over"),
            );
            self.stand_by(out);
            return;
        }
        let first_shot = matches!(self.st, St::Booting { .. }) && self.s.preferred_active;
        let wait = if first_shot {
            Duration::ZERO
        } else {
            self.s.fence_delay
        };
        self.st = St::Fencing {
            not_before: now + wait,
            requested: false,
            attempt: 0,
        };
        if wait.is_zero() {
            self.on_tick(now, out);
        } else {
            // A peer whose BMC already reports it off needs no race: that *is* a confirmed
            // fence. Only a peer still powered (maybe alive behind cut links) gets the delay.
            push(out, Action::QueryPeerPower);
        }
    }

    fn on_fenced(&mut self, now: Instant, confirmed: bool, d: Detail, out: &mut Actions) {
        match self.st {
            St::Fencing {
                requested: true,
                attempt,
                ..
            } => {
                if confirmed {
                    ev(out, Kind::Fenced, format_args!("peer confirmed off: {d}"));
                    self.take_over(now, out);
                } else {
                    let wait = backoff(attempt);
                    ev(out, Kind::FenceFailed, format_args!("{d}; retry in {wait:?}; no takeover without a confirmed fence (bbwd confirm-peer-down)"));
                    self.st = St::FenceBlocked {
                        retry_at: now + wait,
                        attempt: attempt + 1,
                    };
                }
            }
            St::Active { fencing_peer: true } => {
                self.st = St::Active {
                    fencing_peer: false,
                };
                if confirmed {
                    ev(out, Kind::Fenced, format_args!("peer confirmed off: {d}"));
                } else {
                    ev(out, Kind::FenceFailed, format_args!("{d}; still serving"));
                }
            }
            _ => {}
        }
    }

    fn on_peer_power(&mut self, now: Instant, off: bool, d: Detail, out: &mut Actions) {
        if off
            && matches!(
                self.st,
                St::Fencing {
                    requested: false,
                    ..
                }
            )
            && !self.peer.alive
        {
            ev(
                out,
                Kind::Fenced,
                format_args!("peer already off per its BMC: {d}"),
            );
            self.take_over(now, out);
        }
    }

    fn on_confirm_peer_down(&mut self, now: Instant, out: &mut Actions) {
        if matches!(self.st, St::Fencing { .. } | St::FenceBlocked { .. }) && !self.peer.alive {
            ev(
                out,
                Kind::PeerConfirmedDown,
                format_args!("operator confirmed the peer is down"),
            );
            self.take_over(now, out);
        }
    }

    fn take_over(&mut self, now: Instant, out: &mut Actions) {
        self.handed_over_done = false;
        ev(out, Kind::TakeoverStep, format_args!("before_start hooks"));
        self.st = St::TakingOver {
            step: TakeStep::Hooks,
            deadline: now + self.s.step_timeout,
        };
        push(out, Action::RunHooks(Hooks::BeforeStart));
    }

    fn on_hooks(&mut self, now: Instant, phase: Hooks, ok: bool, d: Detail, out: &mut Actions) {
        match (self.st, phase) {
            (
                St::TakingOver {
                    step: TakeStep::Hooks,
                    ..
                },
                Hooks::BeforeStart,
            ) => {
                if ok {
                    ev(out, Kind::TakeoverStep, format_args!("starting Bitbucket"));
                    // Bitbucket's own startup_timeout governs this step (the supervisor fails it).
                    self.st = St::TakingOver {
                        step: TakeStep::Starting,
                        deadline: far(now),
                    };
                    push(out, Action::Permit { run: true });
                } else {
                    ev(
                        out,
                        Kind::TakeoverStep,
                        format_args!("before_start hooks failed: {d}"),
                    );
                    self.release(now, ReleaseWhy::TakeoverFailed, out);
                }
            }
            (
                St::Releasing {
                    step: RelStep::Hooks,
                    ..
                },
                Hooks::AfterStop,
            ) => {
                if !ok {
                    ev(
                        out,
                        Kind::ReleaseError,
                        format_args!("after_stop hooks: {d}"),
                    );
                }
                self.release_next(now, RelStep::Hooks, ok, out);
            }
            _ => {}
        }
    }

    fn on_healthy(&mut self, now: Instant, out: &mut Actions) {
        if let St::TakingOver {
            step: TakeStep::Starting,
            ..
        } = self.st
        {
            ev(
                out,
                Kind::TakeoverStep,
                format_args!("Bitbucket RUNNING: adding the VIP"),
            );
            self.st = St::TakingOver {
                step: TakeStep::Vip,
                deadline: now + self.s.step_timeout,
            };
            push(out, Action::AddVip);
        }
    }

    fn on_start_failed(&mut self, now: Instant, out: &mut Actions) {
        if let St::TakingOver { .. } | St::Active { .. } = self.st {
            // The seeds: Bitbucket failing to start fails on the other node too: no failover.
            self.release(now, ReleaseWhy::TakeoverFailed, out);
        }
    }

    fn on_vip_added(&mut self, now: Instant, ok: bool, d: Detail, out: &mut Actions) {
        if let St::TakingOver {
            step: TakeStep::Vip,
            ..
        } = self.st
        {
            if ok {
                self.st = St::Active {
                    fencing_peer: false,
                };
                ev(out, Kind::Active, format_args!("serving: {d}"));
            } else {
                ev(out, Kind::VipConflict, format_args!("{d}"));
                self.release(now, ReleaseWhy::TakeoverFailed, out);
            }
        }
    }

    /// Begins (or continues) a release. Order: VIP, Bitbucket, after_stop hooks.
    fn release(&mut self, now: Instant, why: ReleaseWhy, out: &mut Actions) {
        match self.st {
            St::Active { .. } | St::TakingOver { .. } => {
                ev(
                    out,
                    Kind::Release,
                    format_args!("releasing the service ({why:?})"),
                );
                self.st = St::Releasing {
                    step: RelStep::Vip,
                    deadline: now + self.s.step_timeout,
                    why,
                    errors: 0,
                };
                push(out, Action::RemoveVip);
            }
            St::Releasing {
                step,
                deadline,
                errors,
                ..
            } => {
                // A second reason (e.g. shutdown during an escalation) only changes the ending.
                self.st = St::Releasing {
                    step,
                    deadline,
                    why,
                    errors,
                };
            }
            _ if why == ReleaseWhy::Shutdown => push(out, Action::Exit),
            _ => {}
        }
    }

    fn on_vip_removed(&mut self, now: Instant, ok: bool, d: Detail, out: &mut Actions) {
        if let St::Releasing {
            step: RelStep::Vip, ..
        } = self.st
        {
            if !ok {
                ev(
                    out,
                    Kind::ReleaseError,
                    format_args!("removing the VIP: {d}"),
                );
            }
            self.release_next(now, RelStep::Vip, ok, out);
        }
    }

    fn on_stopped(&mut self, now: Instant, out: &mut Actions) {
        if let St::Releasing {
            step: RelStep::Stopping,
            ..
        } = self.st
        {
            self.release_next(now, RelStep::Stopping, true, out);
        }
    }

    /// Moves past release step `done` (best-effort: a failed step is counted, not fatal).
    fn release_next(&mut self, now: Instant, done: RelStep, ok: bool, out: &mut Actions) {
        let St::Releasing { why, errors, .. } = self.st else {
            return;
        };
        let errors = errors + u8::from(!ok);
        match done {
            RelStep::Vip => {
                ev(out, Kind::ReleaseStep, format_args!("stopping Bitbucket"));
                // The supervisor's stop_timeout + kill_timeout govern; unkillable self-fences.
                self.st = St::Releasing {
                    step: RelStep::Stopping,
                    deadline: far(now),
                    why,
                    errors,
                };
                push(out, Action::Permit { run: false });
            }
            RelStep::Stopping => {
                ev(out, Kind::ReleaseStep, format_args!("after_stop hooks"));
                self.st = St::Releasing {
                    step: RelStep::Hooks,
                    deadline: now + self.s.step_timeout,
                    why,
                    errors,
                };
                push(out, Action::RunHooks(Hooks::AfterStop));
            }
            RelStep::Hooks => {
                ev(
                    out,
                    Kind::Standby,
                    format_args!("released ({why:?}) with {errors} error(s)"),
                );
                self.handed_over_done = matches!(
                    why,
                    ReleaseWhy::Switchover | ReleaseWhy::Escalation | ReleaseWhy::PublicLinkLost
                );
                self.st = St::Standby;
                if self.shutting_down {
                    push(out, Action::Exit);
                }
            }
        }
    }

    fn self_fence(&mut self, out: &mut Actions) {
        if self.st != St::SelfFenced {
            ev(out, Kind::SelfFence, format_args!("Bitbucket cannot be stopped: no longer petting the watchdog; the peer will fence and take over"));
            self.st = St::SelfFenced;
            push(out, Action::SelfFence);
        }
    }

    fn check_isolation(&mut self, now: Instant, out: &mut Actions) {
        if self.s.witness && !self.witness_reachable && !self.peer.alive {
            self.isolated(now, out);
        }
    }

    fn isolated(&mut self, now: Instant, out: &mut Actions) {
        match self.st {
            St::Active { .. } | St::TakingOver { .. } => {
                ev(
                    out,
                    Kind::Isolated,
                    format_args!("neither peer nor witness reachable: releasing, not fencing"),
                );
                self.release(now, ReleaseWhy::Isolated, out);
            }
            St::Fencing { .. } | St::FenceBlocked { .. } | St::Booting { .. } => {
                ev(
                    out,
                    Kind::Isolated,
                    format_args!("neither peer nor witness reachable: standing by, not fencing"),
                );
                self.stand_by(out);
            }
            _ => {}
        }
    }

    fn on_switchover(&mut self, now: Instant, out: &mut Actions) {
        let ready = self.peer.alive && self.peer.role == Role::Standby && self.peer.healthy;
        match self.st {
            St::Active { .. } if ready => self.release(now, ReleaseWhy::Switchover, out),
            St::Active { .. } => ev(
                out,
                Kind::SwitchoverRefused,
                format_args!("the peer is not a healthy standby"),
            ),
            _ => ev(
                out,
                Kind::SwitchoverRefused,
                format_args!("this node is not active"),
            ),
        }
    }

    fn on_shutdown(&mut self, now: Instant, out: &mut Actions) {
        self.shutting_down = true;
        match self.st {
            St::Active { .. } | St::TakingOver { .. } | St::Releasing { .. } => {
                self.release(now, ReleaseWhy::Shutdown, out)
            }
            St::SelfFenced => {}
            _ => push(out, Action::Exit),
        }
    }

    fn stand_by(&mut self, out: &mut Actions) {
        if self.st != St::Standby {
            self.st = St::Standby;
            ev(out, Kind::Standby, format_args!("standing by"));
        }
    }
}

/// A deadline that never comes (the step is governed by the supervisor's own timeouts).
fn far(now: Instant) -> Instant {
    now + Duration::from_secs(10 * 365 * 24 * 3600)
}

fn backoff(attempt: u32) -> Duration {
    FENCE_BACKOFF_START
        .saturating_mul(1 << attempt.min(16))
        .min(FENCE_BACKOFF_MAX)
}

fn push(out: &mut Actions, a: Action) {
    if out.push(a).is_err() {
        debug_assert!(false, "pair::MAX_ACTIONS too small");
    }
}

/// Appends an event; the detail is formatted into fixed capacity (cut when longer).
fn ev(out: &mut Actions, kind: Kind, args: core::fmt::Arguments<'_>) {
    let mut d = Detail::new();
    let _ = core::fmt::Write::write_fmt(&mut d, args);
    push(out, Action::Event(kind, d));
}

#[cfg(test)]
mod tests;
