//! Pair state-machine tests with a fake clock: one or more per pair row of the SPEC failure
//! table, and a randomised check of the invariants.

use super::*;
use crate::machine::detail;

fn settings(preferred: bool) -> Settings {
    Settings {
        peer_timeout: Duration::from_secs(1),
        preferred_active: preferred,
        fence_delay: Duration::from_secs(3),
        witness: false,
        step_timeout: Duration::from_secs(60),
    }
}

fn peer(alive: bool, role: Role) -> Input {
    Input::Peer(PeerView {
        alive,
        role,
        healthy: true,
        handed_over: false,
    })
}

fn ok() -> Detail {
    detail("ok")
}

struct T {
    p: Pair,
    t0: Instant,
    now: Instant,
    log: Vec<(Duration, Action)>,
}

impl T {
    fn new(s: Settings) -> T {
        let t0 = Instant::now();
        let (p, acts) = Pair::new(s, t0);
        let mut t = T {
            p,
            t0,
            now: t0,
            log: Vec::new(),
        };
        t.rec(acts);
        t
    }
    fn rec(&mut self, acts: Actions) -> Vec<Action> {
        let at = self.now - self.t0;
        self.log.extend(acts.iter().cloned().map(|a| (at, a)));
        acts.into_iter().collect()
    }
    fn step(&mut self, i: Input) -> Vec<Action> {
        let a = self.p.step(self.now, i);
        self.rec(a)
    }
    fn after(&mut self, d: Duration) -> Vec<Action> {
        self.now += d;
        self.step(Input::Tick)
    }
    /// Drives a takeover that has begun to `Active`, asserting the order of its steps.
    fn complete_takeover(&mut self) {
        assert_eq!(self.p.role(), Role::TakingOver);
        let a = self.step(Input::HooksDone {
            phase: Hooks::BeforeStart,
            ok: true,
            detail: ok(),
        });
        assert!(a.contains(&Action::Permit { run: true }), "{a:?}");
        assert!(
            !a.contains(&Action::AddVip),
            "no VIP before Bitbucket is RUNNING"
        );
        let a = self.step(Input::SupervisorHealthy);
        assert!(a.contains(&Action::AddVip), "{a:?}");
        self.step(Input::VipAdded {
            ok: true,
            detail: ok(),
        });
        assert_eq!(self.p.role(), Role::Active);
    }
    /// Booted alone and preferred: fence, confirmed, take over.
    fn active() -> T {
        let mut t = T::new(settings(true));
        let a = t.after(Duration::from_secs(1));
        assert!(a.contains(&Action::FencePeer), "{a:?}");
        t.step(Input::FenceDone {
            confirmed: true,
            detail: ok(),
        });
        t.complete_takeover();
        t.step(peer(true, Role::Standby));
        t
    }
    fn standby() -> T {
        let mut t = T::new(settings(false));
        t.step(peer(true, Role::Active));
        assert_eq!(t.p.role(), Role::Standby);
        t
    }
    fn count(&self, a: &Action) -> usize {
        self.log.iter().filter(|(_, x)| x == a).count()
    }
    fn kinds(&self) -> Vec<Kind> {
        self.log
            .iter()
            .filter_map(|(_, a)| {
                if let Action::Event(k, _) = a {
                    Some(*k)
                } else {
                    None
                }
            })
            .collect()
    }
}

// ---- Row: active node dies or loses power => standby fences it (confirmed off), then takes over ----

#[test]
fn standby_fences_a_dead_active_after_the_delay_then_takes_over_in_order() {
    let mut t = T::standby();
    let a = t.step(peer(false, Role::Active));
    assert!(
        !a.contains(&Action::FencePeer),
        "the standby waits fence_delay first"
    );
    let a = t.after(Duration::from_secs(2));
    assert!(!a.contains(&Action::FencePeer));
    let a = t.after(Duration::from_secs(1));
    assert!(a.contains(&Action::FencePeer), "{a:?}");
    assert!(!a.iter().any(|x| matches!(
        x,
        Action::RunHooks(_) | Action::Permit { .. } | Action::AddVip
    )));
    let a = t.step(Input::FenceDone {
        confirmed: true,
        detail: detail("peer off"),
    });
    assert_eq!(
        a.iter()
            .filter(|x| matches!(x, Action::RunHooks(Hooks::BeforeStart)))
            .count(),
        1
    );
    t.complete_takeover();
    assert!(t.kinds().contains(&Kind::Fenced));
}

#[test]
fn a_peer_that_answers_again_before_the_fence_is_left_alone() {
    let mut t = T::standby();
    t.step(peer(false, Role::Active));
    t.after(Duration::from_secs(1));
    t.step(peer(true, Role::Active));
    let a = t.after(Duration::from_secs(10));
    assert!(!a.contains(&Action::FencePeer));
    assert_eq!(t.p.role(), Role::Standby);
    assert_eq!(t.count(&Action::FencePeer), 0);
}

// ---- Never take over without a confirmed fence ----

#[test]
fn a_failed_fence_blocks_the_takeover_retries_with_backoff_and_yields_to_an_operator() {
    let mut t = T::standby();
    t.step(peer(false, Role::Active));
    t.after(Duration::from_secs(3));
    let a = t.step(Input::FenceDone {
        confirmed: false,
        detail: detail("BMC unreachable"),
    });
    assert!(a
        .iter()
        .any(|x| matches!(x, Action::Event(Kind::FenceFailed, _))));
    assert!(t.p.fence_blocked());
    let mut retries = Vec::new();
    for _ in 0..8 {
        let d = t.p.next_deadline().unwrap() - t.now;
        retries.push(d);
        let a = t.after(d);
        assert!(a.contains(&Action::FencePeer));
        t.step(Input::FenceDone {
            confirmed: false,
            detail: detail("BMC unreachable"),
        });
    }
    assert!(
        retries.windows(2).all(|w| w[1] >= w[0]),
        "backoff grows: {retries:?}"
    );
    assert_eq!(*retries.last().unwrap(), FENCE_BACKOFF_MAX);
    assert_eq!(t.count(&Action::AddVip), 0);
    assert_eq!(t.count(&Action::Permit { run: true }), 0);
    t.step(Input::ConfirmPeerDown);
    t.complete_takeover();
}

#[test]
fn confirm_peer_down_is_refused_while_the_peer_is_heard() {
    let mut t = T::standby();
    t.step(Input::ConfirmPeerDown);
    assert_eq!(t.p.role(), Role::Standby);
}

// ---- Cold boot ----

#[test]
fn cold_boot_alone_fences_before_starting_bitbucket() {
    let mut t = T::new(settings(true));
    let a = t.after(Duration::from_millis(999));
    assert!(a.is_empty(), "{a:?}");
    let a = t.after(Duration::from_millis(1));
    assert!(
        a.contains(&Action::FencePeer),
        "preferred node fences at once after peer_timeout"
    );
    assert_eq!(t.count(&Action::Permit { run: true }), 0);
}

#[test]
fn cold_boot_alone_non_preferred_waits_the_fence_delay() {
    let mut t = T::new(settings(false));
    let a = t.after(Duration::from_secs(1));
    assert!(!a.contains(&Action::FencePeer));
    let a = t.after(Duration::from_secs(3));
    assert!(a.contains(&Action::FencePeer));
}

#[test]
fn cold_boot_of_both_preferred_serves_without_fencing() {
    let mut a = T::new(settings(true));
    let mut b = T::new(settings(false));
    a.step(peer(true, Role::Booting));
    b.step(peer(true, Role::Booting));
    assert_eq!(a.p.role(), Role::TakingOver);
    assert_eq!(b.p.role(), Role::Standby);
    assert_eq!(a.count(&Action::FencePeer) + b.count(&Action::FencePeer), 0);
}

#[test]
fn a_booting_node_that_hears_an_active_peer_stands_by() {
    let mut t = T::new(settings(true));
    t.step(peer(true, Role::Active));
    assert_eq!(t.p.role(), Role::Standby);
    t.after(Duration::from_secs(10));
    assert_eq!(t.count(&Action::FencePeer), 0);
}

// ---- Row: both alive, heartbeat links cut => exactly one serves ----

#[test]
fn split_brain_the_active_fences_at_once_and_the_standby_waits() {
    let mut active = T::active();
    let mut standby = T::standby();
    let a = active.step(peer(false, Role::Standby));
    assert!(
        a.contains(&Action::FencePeer),
        "the node holding the service fences at once"
    );
    assert_eq!(active.p.role(), Role::Active, "and keeps serving meanwhile");
    standby.step(peer(false, Role::Active));
    assert_eq!(
        standby.count(&Action::FencePeer),
        0,
        "the standby waits fence_delay"
    );
    // The active's fence lands within the delay: the standby is powered off, never fenced anyone.
    active.step(Input::FenceDone {
        confirmed: true,
        detail: ok(),
    });
    assert_eq!(active.p.role(), Role::Active);
    assert_eq!(standby.count(&Action::FencePeer), 0);
}

// ---- Row: active loses the network to the router/peer: the side that can reach the witness wins ----

#[test]
fn with_a_witness_the_isolated_active_releases_instead_of_fencing() {
    let mut s = settings(true);
    s.witness = true;
    let mut t = T::new(s);
    t.step(peer(true, Role::Booting));
    t.complete_takeover();
    t.step(Input::Witness { reachable: false });
    let a = t.step(peer(false, Role::Standby));
    assert!(!a.contains(&Action::FencePeer), "isolated: never fence");
    assert!(a.contains(&Action::RemoveVip), "{a:?}");
    assert_eq!(t.p.role(), Role::Releasing);
}

#[test]
fn with_a_witness_the_standby_that_reaches_it_fences_and_takes_over() {
    let mut s = settings(false);
    s.witness = true;
    let mut t = T::new(s);
    t.step(peer(true, Role::Active));
    t.step(Input::Witness { reachable: true });
    t.step(peer(false, Role::Active));
    let a = t.after(Duration::from_secs(3));
    assert!(a.contains(&Action::FencePeer));
}

#[test]
fn a_standby_that_reaches_neither_peer_nor_witness_does_not_fence() {
    let mut s = settings(false);
    s.witness = true;
    let mut t = T::new(s);
    t.step(peer(true, Role::Active));
    t.step(Input::Witness { reachable: false });
    t.step(peer(false, Role::Active));
    t.after(Duration::from_secs(60));
    assert_eq!(t.count(&Action::FencePeer), 0);
    assert_eq!(t.p.role(), Role::Standby);
}

#[test]
fn the_active_losing_its_public_link_fails_over() {
    let mut t = T::active();
    let a = t.step(Input::PublicLink { up: false });
    assert!(a.contains(&Action::RemoveVip));
    t.step(Input::VipRemoved {
        ok: true,
        detail: ok(),
    });
    t.step(Input::SupervisorStopped);
    t.step(Input::HooksDone {
        phase: Hooks::AfterStop,
        ok: true,
        detail: ok(),
    });
    assert_eq!(t.p.role(), Role::Standby);
    assert!(t.log.iter().any(|(_, a)| *a
        == Action::Advertise {
            role: Role::Standby,
            handed_over: true
        }));
}

#[test]
fn a_standby_without_a_public_link_does_not_take_over() {
    let mut t = T::standby();
    t.step(Input::PublicLink { up: false });
    t.step(peer(false, Role::Active));
    t.after(Duration::from_secs(60));
    assert_eq!(t.count(&Action::FencePeer), 0);
}

// ---- Row: restarts exhausted on the active => fail over ----

#[test]
fn restarts_exhausted_releases_in_order_and_hands_over_without_a_fence() {
    let mut active = T::active();
    let mut standby = T::standby();
    let a = active.step(Input::SupervisorEscalates);
    assert_eq!(a.iter().filter(|x| **x == Action::RemoveVip).count(), 1);
    assert!(!a.contains(&Action::Permit { run: false }), "VIP first");
    let a = active.step(Input::VipRemoved {
        ok: true,
        detail: ok(),
    });
    assert!(a.contains(&Action::Permit { run: false }));
    let a = active.step(Input::SupervisorStopped);
    assert!(a.contains(&Action::RunHooks(Hooks::AfterStop)));
    active.step(Input::HooksDone {
        phase: Hooks::AfterStop,
        ok: true,
        detail: ok(),
    });
    assert_eq!(active.p.role(), Role::Standby);
    // The standby hears the handover and takes over: no fence, the peer said it let go.
    standby.step(Input::Peer(PeerView {
        alive: true,
        role: Role::Standby,
        healthy: false,
        handed_over: true,
    }));
    assert_eq!(standby.p.role(), Role::TakingOver);
    assert_eq!(standby.count(&Action::FencePeer), 0);
    // The node that handed over does not grab the service back through the preferred rule.
    active.step(peer(true, Role::Standby));
    assert_eq!(active.p.role(), Role::Standby);
    active.step(peer(true, Role::TakingOver));
    active.step(peer(true, Role::Active));
    assert_eq!(active.p.role(), Role::Standby);
}

#[test]
fn release_is_best_effort_and_keeps_going_after_a_failed_step() {
    let mut t = T::active();
    t.step(Input::SupervisorEscalates);
    let a = t.step(Input::VipRemoved {
        ok: false,
        detail: detail("netlink: EPERM"),
    });
    assert!(
        a.contains(&Action::Permit { run: false }),
        "a failed VIP removal does not stop the release"
    );
    t.step(Input::SupervisorStopped);
    let a = t.step(Input::HooksDone {
        phase: Hooks::AfterStop,
        ok: false,
        detail: detail("umount: busy"),
    });
    let Some(Action::Event(Kind::Standby, d)) = a
        .iter()
        .find(|x| matches!(x, Action::Event(Kind::Standby, _)))
    else {
        panic!("{a:?}")
    };
    assert!(d.contains("2 error"), "{d}");
}

// ---- Row: process will not die after SIGKILL => self-fence ----

#[test]
fn a_release_that_cannot_stop_bitbucket_self_fences() {
    let mut t = T::active();
    t.step(Input::SupervisorEscalates);
    t.step(Input::VipRemoved {
        ok: true,
        detail: ok(),
    });
    let a = t.step(Input::SupervisorUnkillable);
    assert!(a.contains(&Action::SelfFence));
    assert!(t
        .after(Duration::from_secs(3600))
        .iter()
        .all(|a| !matches!(a, Action::Permit { run: true } | Action::AddVip)));
}

// ---- Takeover failures ----

#[test]
fn a_failed_before_start_hook_releases_without_starting() {
    let mut t = T::standby();
    t.step(peer(false, Role::Active));
    t.after(Duration::from_secs(3));
    t.step(Input::FenceDone {
        confirmed: true,
        detail: ok(),
    });
    let a = t.step(Input::HooksDone {
        phase: Hooks::BeforeStart,
        ok: false,
        detail: detail("drbdadm: failed"),
    });
    assert!(!a.contains(&Action::Permit { run: true }));
    assert!(
        a.contains(&Action::RemoveVip),
        "release runs every step (the VIP is not held: idempotent)"
    );
}

#[test]
fn a_vip_held_by_someone_else_is_not_taken() {
    let mut t = T::new(settings(true));
    t.step(peer(true, Role::Booting));
    t.step(Input::HooksDone {
        phase: Hooks::BeforeStart,
        ok: true,
        detail: ok(),
    });
    t.step(Input::SupervisorHealthy);
    let a = t.step(Input::VipAdded {
        ok: false,
        detail: detail("10.0.0.50 answered from 52:54:00:00:00:09"),
    });
    assert!(a
        .iter()
        .any(|x| matches!(x, Action::Event(Kind::VipConflict, _))));
    assert_ne!(t.p.role(), Role::Active);
}

// ---- Switchover ----

#[test]
fn switchover_is_refused_unless_the_peer_is_a_healthy_standby() {
    let mut t = T::active();
    t.step(Input::Peer(PeerView {
        alive: true,
        role: Role::Standby,
        healthy: false,
        handed_over: false,
    }));
    let a = t.step(Input::Switchover);
    assert!(a
        .iter()
        .any(|x| matches!(x, Action::Event(Kind::SwitchoverRefused, _))));
    assert_eq!(t.p.role(), Role::Active);
    t.step(peer(true, Role::Standby));
    let a = t.step(Input::Switchover);
    assert!(a.contains(&Action::RemoveVip));
    assert!(a.contains(&Action::Advertise {
        role: Role::Releasing,
        handed_over: true
    }));
}

// ---- Shutdown ----

#[test]
fn shutdown_of_the_active_releases_then_exits() {
    let mut t = T::active();
    let a = t.step(Input::Shutdown);
    assert!(a.contains(&Action::RemoveVip));
    assert!(!a.contains(&Action::Exit));
    t.step(Input::VipRemoved {
        ok: true,
        detail: ok(),
    });
    t.step(Input::SupervisorStopped);
    let a = t.step(Input::HooksDone {
        phase: Hooks::AfterStop,
        ok: true,
        detail: ok(),
    });
    assert!(a.contains(&Action::Exit));
}

#[test]
fn shutdown_of_a_standby_exits_at_once() {
    let mut t = T::standby();
    assert!(t.step(Input::Shutdown).contains(&Action::Exit));
}

// ---- Invariants under random inputs ----

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Whatever happens: the VIP is added only after Bitbucket was permitted and healthy in this
/// takeover; a takeover begins only after a confirmed fence, an operator's confirmation, or the
/// peer's own word that it does not serve; the VIP is removed before Bitbucket is stopped.
#[test]
fn random_inputs_keep_the_takeover_and_release_order() {
    let roles = [
        Role::Booting,
        Role::Standby,
        Role::Fencing,
        Role::TakingOver,
        Role::Active,
        Role::Releasing,
    ];
    for seed in 1..=400u64 {
        let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
        let mut s = settings(seed % 2 == 0);
        s.witness = seed % 3 == 0;
        let mut t = T::new(s);
        let mut fence_confirmed = false;
        let mut peer_released = false;
        let mut permitted = false;
        let mut healthy_since_permit = false;
        let mut vip_held = false;
        for _ in 0..300 {
            let input = match rng.below(17) {
                0 => {
                    let v = PeerView {
                        alive: rng.below(2) == 0,
                        role: roles[rng.below(6) as usize],
                        healthy: rng.below(2) == 0,
                        handed_over: rng.below(4) == 0,
                    };
                    if v.alive && !v.role.serving() && v.role != Role::Fencing {
                        peer_released = true;
                    }
                    Input::Peer(v)
                }
                1 => {
                    let c = rng.below(2) == 0;
                    fence_confirmed |= c;
                    Input::FenceDone {
                        confirmed: c,
                        detail: ok(),
                    }
                }
                2 => Input::HooksDone {
                    phase: Hooks::BeforeStart,
                    ok: rng.below(5) != 0,
                    detail: ok(),
                },
                3 => Input::HooksDone {
                    phase: Hooks::AfterStop,
                    ok: rng.below(5) != 0,
                    detail: ok(),
                },
                4 => {
                    healthy_since_permit |= permitted;
                    Input::SupervisorHealthy
                }
                5 => Input::SupervisorStopped,
                6 => Input::VipAdded {
                    ok: rng.below(4) != 0,
                    detail: ok(),
                },
                7 => Input::VipRemoved {
                    ok: rng.below(4) != 0,
                    detail: ok(),
                },
                8 => Input::SupervisorEscalates,
                9 => Input::Witness {
                    reachable: rng.below(2) == 0,
                },
                10 => Input::PublicLink {
                    up: rng.below(3) != 0,
                },
                11 => Input::Switchover,
                12 => {
                    fence_confirmed = true;
                    Input::ConfirmPeerDown
                }
                13 => {
                    let off = rng.below(2) == 0;
                    fence_confirmed |= off;
                    Input::PeerPower { off, detail: ok() }
                }
                _ => {
                    t.now += Duration::from_millis(rng.below(5000));
                    Input::Tick
                }
            };
            let before = t.p.role();
            let acts = t.step(input.clone());
            if before != Role::TakingOver && t.p.role() == Role::TakingOver {
                assert!(
                    fence_confirmed || peer_released,
                    "seed {seed}: takeover without a fence or the peer's word ({input:?})"
                );
                fence_confirmed = false;
                peer_released = false;
            }
            for a in &acts {
                match a {
                    Action::Permit { run: true } => {
                        assert_eq!(t.p.role(), Role::TakingOver, "seed {seed}");
                        permitted = true;
                        healthy_since_permit = false;
                    }
                    Action::AddVip => {
                        assert!(
                            permitted && healthy_since_permit,
                            "seed {seed}: VIP before RUNNING"
                        );
                        vip_held = true;
                    }
                    Action::RemoveVip => vip_held = false,
                    Action::Permit { run: false } => {
                        assert!(
                            !vip_held,
                            "seed {seed}: Bitbucket stopped while the VIP is still held"
                        );
                        permitted = false;
                    }
                    _ => {}
                }
            }
        }
    }
}

// ---- A peer already off needs no fence race ----

#[test]
fn a_standby_whose_silent_peer_is_already_off_takes_over_without_waiting_the_delay() {
    let mut t = T::standby();
    let a = t.step(peer(false, Role::Active));
    assert!(a.contains(&Action::QueryPeerPower), "{a:?}");
    assert!(!a.contains(&Action::FencePeer));
    let a = t.step(Input::PeerPower {
        off: true,
        detail: detail("power off"),
    });
    assert!(a
        .iter()
        .any(|x| matches!(x, Action::Event(Kind::Fenced, _))));
    assert_eq!(
        t.p.role(),
        Role::TakingOver,
        "no delay, no fence command: off is off"
    );
    t.complete_takeover();
}

#[test]
fn a_silent_peer_still_powered_gets_the_delay_and_the_fence() {
    let mut t = T::standby();
    t.step(peer(false, Role::Active));
    let a = t.step(Input::PeerPower {
        off: false,
        detail: detail("power on"),
    });
    assert!(!a.iter().any(|x| matches!(x, Action::RunHooks(_))), "{a:?}");
    assert_eq!(t.p.role(), Role::Fencing);
    let a = t.after(Duration::from_secs(3));
    assert!(a.contains(&Action::FencePeer));
}

#[test]
fn a_late_power_answer_after_the_peer_came_back_changes_nothing() {
    let mut t = T::standby();
    t.step(peer(false, Role::Active));
    t.step(peer(true, Role::Active));
    t.step(Input::PeerPower {
        off: true,
        detail: detail("power off"),
    });
    assert_eq!(t.p.role(), Role::Standby);
}
