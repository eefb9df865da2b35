//! Pair state-machine tests with a fake clock: one or more per pair row of the SPEC failure
//! table, a regression test named after each route to two active nodes that review found, and a
//! randomised check of the invariants. (The exhaustive check of two nodes is `agent/model`.)

use super::*;
use crate::fence::Goal;
use crate::machine::detail;

const FENCE_DELAY: Duration = Duration::from_secs(3);
const BOOT_WAIT: Duration = Duration::from_secs(2);

fn settings(preferred: bool) -> Settings {
    Settings {
        peer_timeout: Duration::from_secs(1),
        preferred_active: preferred,
        name_first: preferred,
        fence_delay: FENCE_DELAY,
        boot_wait: BOOT_WAIT,
        witness: false,
        witness_misses: 3,
        link_hold: Duration::from_secs(1),
        step_timeout: Duration::from_secs(60),
        release_timeout: Duration::from_secs(20),
        bmc_watch: Duration::from_secs(3600),
    }
}

/// The peer as a fresh (consenting) v2 peer would advertise itself.
fn view(alive: bool, role: Role) -> PeerView {
    PeerView {
        alive,
        consent: alive,
        role,
        healthy: true,
        failed: false,
        handed_over: false,
        preferred: false,
        maintenance: false,
    }
}

fn peer(alive: bool, role: Role) -> Input {
    Input::Peer(view(alive, role))
}

fn ok() -> Detail {
    detail("ok")
}

fn confirmed() -> Input {
    Input::Fence(FenceResult::OffConfirmed(detail("off")))
}

fn fence_failed() -> Input {
    Input::Fence(FenceResult::Failed(detail("BMC unreachable")))
}

fn power(on: bool) -> Input {
    Input::Fence(FenceResult::Power {
        on,
        detail: detail("reading"),
    })
}

const FENCE: Action = Action::Fence(Goal::Off);
const QUERY: Action = Action::Fence(Goal::Status);

struct T {
    p: Pair,
    t0: Instant,
    now: Instant,
    log: Vec<(Duration, Action)>,
}

impl T {
    fn new(s: Settings) -> T {
        T::boot(s, None)
    }
    fn boot(s: Settings, serving: Option<&str>) -> T {
        let t0 = Instant::now();
        let (p, acts) = Pair::new(s, t0, serving);
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
    /// Answers the boot-time power query: the peer is on.
    fn peer_is_on(&mut self) {
        self.step(power(true));
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
        assert!(!a.contains(&Action::AddVip), "no VIP before RUNNING");
        let a = self.step(Input::SupervisorHealthy);
        assert!(a.contains(&Action::AddVip), "{a:?}");
        self.step(Input::VipAdded {
            ok: true,
            detail: ok(),
        });
        assert_eq!(self.p.role(), Role::Active);
    }
    /// Preferred, booted with a peer that is heard and does not serve: takes over on consent.
    fn active() -> T {
        let mut t = T::new(settings(true));
        t.peer_is_on();
        t.step(peer(true, Role::Booting));
        t.complete_takeover();
        t.step(peer(true, Role::Standby));
        t
    }
    fn standby() -> T {
        let mut t = T::new(settings(false));
        t.peer_is_on();
        t.step(peer(true, Role::Active));
        assert_eq!(t.p.role(), Role::Standby);
        t
    }
    /// Releases from Active with every step succeeding or as told.
    fn release_steps(&mut self, vip_ok: bool, hooks_ok: bool) -> Vec<Action> {
        self.step(Input::VipRemoved {
            ok: vip_ok,
            detail: ok(),
        });
        self.step(Input::SupervisorStopped);
        self.step(Input::HooksDone {
            phase: Hooks::AfterStop,
            ok: hooks_ok,
            detail: detail("umount: target is busy"),
        })
    }
    fn count(&self, a: &Action) -> usize {
        self.log.iter().filter(|(_, x)| x == a).count()
    }
    fn kinds(&self) -> Vec<Kind> {
        self.log
            .iter()
            .filter_map(|(_, a)| match a {
                Action::Event(k, _) => Some(*k),
                _ => None,
            })
            .collect()
    }
}

// ---- Row: active node dies or loses power => standby fences it (confirmed off), then takes over ----

#[test]
fn standby_fences_a_dead_active_after_the_delay_then_takes_over_in_order() {
    let mut t = T::standby();
    let a = t.step(peer(false, Role::Active));
    assert!(!a.contains(&FENCE), "the standby waits fence_delay first");
    assert!(a.contains(&QUERY), "but asks the BMC at once");
    t.peer_is_on();
    let a = t.after(FENCE_DELAY - Duration::from_millis(1));
    assert!(!a.contains(&FENCE));
    let a = t.after(Duration::from_millis(1));
    assert!(a.contains(&FENCE), "{a:?}");
    assert!(!a.iter().any(|x| matches!(
        x,
        Action::RunHooks(_) | Action::Permit { .. } | Action::AddVip
    )));
    let a = t.step(confirmed());
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
fn a_silent_peer_whose_bmc_says_off_is_fenced_at_once_to_confirm() {
    let mut t = T::standby();
    t.step(peer(false, Role::Active));
    let a = t.step(power(false));
    assert!(a.contains(&FENCE), "no delay for a peer that is off: {a:?}");
    assert_eq!(
        t.p.role(),
        Role::Fencing,
        "but no takeover on the reading alone"
    );
    t.step(confirmed());
    assert_eq!(t.p.role(), Role::TakingOver);
}

#[test]
fn a_peer_that_answers_again_before_the_fence_is_left_alone() {
    let mut t = T::standby();
    t.step(peer(false, Role::Active));
    t.peer_is_on();
    t.after(Duration::from_secs(1));
    t.step(peer(true, Role::Active));
    t.after(Duration::from_secs(10));
    assert_eq!(t.p.role(), Role::Standby);
    assert_eq!(t.count(&FENCE), 0);
}

#[test]
fn a_fence_already_requested_is_followed_to_its_end() {
    let mut t = T::standby();
    t.step(peer(false, Role::Active));
    t.peer_is_on();
    t.after(FENCE_DELAY);
    t.step(peer(true, Role::Active));
    assert_eq!(t.p.role(), Role::Fencing, "the fence is in flight");
    t.step(confirmed());
    assert_eq!(t.p.role(), Role::TakingOver, "the peer is off now");
}

// ---- Never take over without a confirmed fence ----

#[test]
fn a_failed_fence_blocks_the_takeover_retries_with_backoff_and_yields_to_an_operator() {
    let mut t = T::standby();
    t.step(peer(false, Role::Active));
    t.peer_is_on();
    t.after(FENCE_DELAY);
    let a = t.step(fence_failed());
    assert!(a
        .iter()
        .any(|x| matches!(x, Action::Event(Kind::FenceFailed, _))));
    assert!(t.p.fence_blocked());
    let mut retries = Vec::new();
    for _ in 0..8 {
        let d = t.p.next_deadline().unwrap() - t.now;
        retries.push(d);
        let a = t.after(d);
        assert!(a.contains(&FENCE), "{a:?}");
        t.step(fence_failed());
    }
    assert!(retries.windows(2).all(|w| w[1] >= w[0]), "{retries:?}");
    assert_eq!(*retries.last().unwrap(), BACKOFF_MAX);
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
fn cold_boot_alone_waits_boot_wait_then_fences_before_starting_bitbucket() {
    // Regression (route 7): a booting node fenced after one peer_timeout while links were
    // still coming up.
    let mut t = T::new(settings(true));
    t.peer_is_on();
    let a = t.after(BOOT_WAIT - Duration::from_millis(1));
    assert!(!a.contains(&FENCE), "{a:?}");
    let a = t.after(Duration::from_millis(1));
    assert!(
        a.contains(&FENCE),
        "the winner fences at once after boot_wait"
    );
    assert_eq!(t.count(&Action::Permit { run: true }), 0);
}

#[test]
fn a_booting_node_asks_the_peers_bmc_first() {
    let t = T::new(settings(false));
    assert_eq!(t.count(&QUERY), 1);
    let mut t = t;
    let a = t.step(power(false));
    assert!(
        a.contains(&Action::Fence(Goal::ConfirmOff)),
        "a peer already off: confirmed by reading again, never by a command: {a:?}"
    );
    assert!(!a.contains(&FENCE));
    t.step(confirmed());
    assert_eq!(t.p.role(), Role::TakingOver);
}

#[test]
fn a_booting_node_never_powers_off_a_peer_that_is_being_powered_on() {
    let mut t = T::new(settings(true));
    t.step(power(false));
    t.step(power(true));
    assert_eq!(t.p.role(), Role::Booting, "the peer came on: wait for it");
    assert_eq!(t.count(&FENCE), 0);
}

#[test]
fn cold_boot_alone_non_preferred_waits_the_fence_delay() {
    let mut t = T::new(settings(false));
    t.peer_is_on();
    let a = t.after(BOOT_WAIT);
    assert!(!a.contains(&FENCE));
    t.peer_is_on();
    let a = t.after(FENCE_DELAY);
    assert!(a.contains(&FENCE));
}

#[test]
fn cold_boot_of_both_the_winner_serves_without_fencing() {
    let mut a = T::new(settings(true));
    let mut b = T::new(settings(false));
    a.step(peer(true, Role::Booting));
    b.step(peer(true, Role::Booting));
    assert_eq!(a.p.role(), Role::TakingOver);
    assert_eq!(b.p.role(), Role::Standby);
    assert_eq!(a.count(&FENCE) + b.count(&FENCE), 0);
}

#[test]
fn a_peer_without_consent_is_never_taken_for_not_serving() {
    // A v1 peer, or a word that does not answer our challenge: no cold-start takeover.
    let mut t = T::new(settings(true));
    t.step(Input::Peer(PeerView {
        consent: false,
        ..view(true, Role::Standby)
    }));
    assert_eq!(t.p.role(), Role::Standby);
    t.after(Duration::from_secs(60));
    assert_eq!(t.count(&Action::Permit { run: true }), 0);
}

#[test]
fn a_booting_node_that_hears_an_active_peer_stands_by() {
    let mut t = T::new(settings(true));
    t.step(peer(true, Role::Active));
    assert_eq!(t.p.role(), Role::Standby);
    t.after(Duration::from_secs(10));
    assert_eq!(t.count(&FENCE), 0);
}

#[test]
fn both_nodes_preferred_only_the_first_name_serves_and_it_is_reported() {
    // Regression (route 2): one config copied to both nodes made both serve.
    let mut s1 = settings(true);
    s1.name_first = true;
    let mut s2 = settings(true);
    s2.name_first = false;
    let mut a = T::new(s1);
    let mut b = T::new(s2);
    let peer_pref = Input::Peer(PeerView {
        preferred: true,
        ..view(true, Role::Booting)
    });
    a.step(peer_pref.clone());
    b.step(peer_pref);
    assert_eq!(a.p.role(), Role::TakingOver);
    assert_eq!(b.p.role(), Role::Standby);
    assert!(a.kinds().contains(&Kind::BothPreferred));
    assert!(b.kinds().contains(&Kind::BothPreferred));
    assert_eq!(b.p.preference_conflict(), Some(true));
}

#[test]
fn neither_node_preferred_still_one_serves() {
    let mut s1 = settings(false);
    s1.name_first = true;
    let mut a = T::new(s1);
    a.step(peer(true, Role::Booting));
    assert_eq!(a.p.role(), Role::TakingOver);
    assert!(a.kinds().contains(&Kind::NeitherPreferred));
}

// ---- Resumption after a bbwd restart ----

#[test]
fn agent_restart_on_the_active_resumes_and_never_advertises_not_serving() {
    // Regression (route 1): a restarted bbwd that found its Bitbucket running advertised
    // "booting/standby, not serving"; the peer took over and Bitbucket ran on both nodes.
    let mut t = T::boot(settings(false), Some("Bitbucket still running"));
    assert_eq!(
        t.p.role(),
        Role::TakingOver,
        "serving from the first packet"
    );
    assert_eq!(t.count(&Action::Permit { run: true }), 1);
    assert_eq!(t.count(&QUERY), 0);
    // The preferred peer is heard as a standby: this node keeps the service.
    t.step(peer(true, Role::Standby));
    assert_eq!(t.p.role(), Role::TakingOver);
    let a = t.step(Input::SupervisorHealthy);
    assert!(a.contains(&Action::AddVip));
    t.step(Input::VipAdded {
        ok: true,
        detail: ok(),
    });
    assert_eq!(t.p.role(), Role::Active);
    assert!(t.kinds().contains(&Kind::Resumed));
    assert_eq!(t.count(&Action::RemoveVip), 0, "the VIP is kept");
}

// ---- Row: both alive, heartbeat links cut => exactly one serves ----

#[test]
fn split_brain_the_active_fences_at_once_and_the_standby_waits() {
    let mut active = T::active();
    let mut standby = T::standby();
    let a = active.step(peer(false, Role::Standby));
    assert!(
        a.contains(&FENCE),
        "the node holding the service fences at once"
    );
    assert_eq!(active.p.role(), Role::Active, "and keeps serving meanwhile");
    standby.step(peer(false, Role::Active));
    standby.peer_is_on();
    assert_eq!(standby.count(&FENCE), 0, "the standby waits fence_delay");
    active.step(confirmed());
    assert_eq!(active.p.role(), Role::Active);
}

#[test]
fn the_active_retries_a_failed_fence() {
    // Route 8: a failed fence of the active was not retried.
    let mut t = T::active();
    t.step(peer(false, Role::Standby));
    t.step(fence_failed());
    let d = t.p.next_deadline().unwrap() - t.now;
    let a = t.after(d);
    assert!(a.contains(&FENCE), "{a:?}");
}

// ---- Witness and public link ----

#[test]
fn with_a_witness_the_isolated_active_releases_instead_of_fencing() {
    let mut s = settings(true);
    s.witness = true;
    let mut t = T::new(s);
    t.peer_is_on();
    t.step(peer(true, Role::Booting));
    t.complete_takeover();
    for _ in 0..3 {
        t.step(Input::Witness { reachable: false });
    }
    let a = t.step(peer(false, Role::Standby));
    assert!(!a.contains(&FENCE), "isolated: never fence");
    assert!(a.contains(&Action::RemoveVip), "{a:?}");
    assert_eq!(t.p.role(), Role::Releasing);
}

#[test]
fn one_missed_witness_ping_does_not_abandon_a_takeover_for_good() {
    // Regression (route 5): one lost ping during a takeover made the standby stand by for good.
    let mut s = settings(false);
    s.witness = true;
    let mut t = T::new(s);
    t.peer_is_on();
    t.step(peer(true, Role::Active));
    t.step(Input::Witness { reachable: false });
    t.step(peer(false, Role::Active));
    t.peer_is_on();
    t.after(FENCE_DELAY);
    assert_eq!(t.count(&FENCE), 1, "one miss is not isolation");
    // Even three misses, then the witness back: the silent peer is re-evaluated on a timer.
    let mut s = settings(false);
    s.witness = true;
    let mut t = T::new(s);
    t.peer_is_on();
    t.step(peer(true, Role::Active));
    for _ in 0..3 {
        t.step(Input::Witness { reachable: false });
    }
    t.step(peer(false, Role::Active));
    t.after(Duration::from_secs(10));
    assert_eq!(t.count(&FENCE), 0, "isolated: no fence");
    t.step(Input::Witness { reachable: true });
    t.peer_is_on();
    t.after(FENCE_DELAY);
    assert_eq!(t.count(&FENCE), 1, "re-evaluated once the witness answers");
}

#[test]
fn a_public_link_blip_shorter_than_link_hold_does_not_fail_over() {
    // Regression (route 5): a 300 ms down/up of the active's public link moved the service.
    let mut t = T::active();
    t.step(Input::PublicLink { up: false });
    t.after(Duration::from_millis(300));
    t.step(Input::PublicLink { up: true });
    t.after(Duration::from_secs(5));
    assert_eq!(t.p.role(), Role::Active);
    assert_eq!(t.count(&Action::RemoveVip), 0);
}

#[test]
fn the_active_losing_its_public_link_for_good_fails_over_and_hands_over() {
    let mut t = T::active();
    t.step(Input::PublicLink { up: false });
    let a = t.after(Duration::from_secs(1));
    assert!(a.contains(&Action::RemoveVip), "{a:?}");
    t.release_steps(true, true);
    assert_eq!(t.p.role(), Role::Standby);
    assert!(t.p.handed_over());
}

#[test]
fn a_standby_without_a_public_link_does_not_take_over() {
    let mut t = T::standby();
    t.step(Input::PublicLink { up: false });
    t.after(Duration::from_secs(2));
    t.step(peer(false, Role::Active));
    t.after(Duration::from_secs(60));
    assert_eq!(t.count(&FENCE), 0);
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
    assert!(active.p.handed_over());
    standby.step(Input::Peer(PeerView {
        handed_over: true,
        healthy: false,
        ..view(true, Role::Standby)
    }));
    assert_eq!(standby.p.role(), Role::TakingOver);
    assert_eq!(standby.count(&FENCE), 0);
    // The node that handed over does not grab the service back.
    active.step(peer(true, Role::Standby));
    assert_eq!(active.p.role(), Role::Standby);
    active.step(peer(true, Role::TakingOver));
    active.step(peer(true, Role::Active));
    assert_eq!(active.p.role(), Role::Standby);
}

#[test]
fn a_release_whose_after_stop_hook_failed_never_hands_over() {
    // Regression (route 3): restarts exhausted, `umount` failed, and the standby served while
    // the old active still held the storage.
    let mut t = T::active();
    t.step(Input::SupervisorEscalates);
    let a = t.release_steps(true, false);
    assert!(a.contains(&Action::SelfFence), "{a:?}");
    assert!(!t.p.handed_over());
    assert!(
        t.p.silent(),
        "a node that cannot prove it released goes silent"
    );
}

#[test]
fn a_release_whose_vip_removal_failed_never_hands_over() {
    let mut t = T::active();
    t.step(Input::SupervisorEscalates);
    let a = t.step(Input::VipRemoved {
        ok: false,
        detail: detail("netlink: EPERM"),
    });
    assert!(
        a.contains(&Action::Permit { run: false }),
        "the release keeps going (best effort)"
    );
    t.step(Input::SupervisorStopped);
    let a = t.step(Input::HooksDone {
        phase: Hooks::AfterStop,
        ok: true,
        detail: ok(),
    });
    assert!(a.contains(&Action::SelfFence), "{a:?}");
    assert!(!t.p.handed_over());
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

#[test]
fn a_release_past_its_deadline_self_fences() {
    let mut t = T::active();
    t.step(Input::SupervisorEscalates);
    t.step(Input::VipRemoved {
        ok: true,
        detail: ok(),
    });
    let a = t.after(Duration::from_secs(20));
    assert!(a.contains(&Action::SelfFence), "{a:?}");
}

// ---- Takeover failures ----

#[test]
fn a_failing_before_start_hook_backs_off_and_is_reported() {
    // Regression (route 9): a failing hook looped every ~200 ms while both nodes said OK.
    let mut t = T::standby();
    t.step(peer(false, Role::Active));
    t.peer_is_on();
    t.after(FENCE_DELAY);
    t.step(confirmed());
    let a = t.step(Input::HooksDone {
        phase: Hooks::BeforeStart,
        ok: false,
        detail: detail("drbdadm: failed"),
    });
    assert!(!a.contains(&Action::Permit { run: true }));
    t.release_steps(true, true);
    assert!(t.p.takeover_blocked());
    let n = t.count(&Action::RunHooks(Hooks::BeforeStart));
    t.after(Duration::from_millis(200));
    t.after(Duration::from_millis(200));
    assert_eq!(t.count(&Action::RunHooks(Hooks::BeforeStart)), n, "no loop");
    assert!(t.kinds().contains(&Kind::TakeoverFailed));
}

#[test]
fn a_vip_held_by_someone_else_is_not_taken() {
    let mut t = T::standby();
    t.step(peer(false, Role::Active));
    t.step(power(false));
    t.step(confirmed());
    t.step(Input::HooksDone {
        phase: Hooks::BeforeStart,
        ok: true,
        detail: ok(),
    });
    t.step(Input::SupervisorHealthy);
    let a = t.step(Input::VipAdded {
        ok: false,
        detail: detail("10.0.0.50 answered from aa:bb"),
    });
    assert!(a.contains(&Action::RemoveVip));
    assert_eq!(t.p.role(), Role::Releasing);
}

// ---- Maintenance pauses failover ----

#[test]
fn a_standby_in_maintenance_does_not_fence() {
    // Regression (route 9): a standby in maintenance fenced and took over.
    let mut t = T::standby();
    t.step(Input::Local {
        failed: false,
        maintenance: true,
    });
    t.step(peer(false, Role::Active));
    t.after(Duration::from_secs(60));
    assert_eq!(t.count(&FENCE), 0);
    assert!(t.kinds().contains(&Kind::FailoverPaused));
    t.step(Input::Local {
        failed: false,
        maintenance: false,
    });
    t.peer_is_on();
    t.after(FENCE_DELAY);
    assert_eq!(t.count(&FENCE), 1, "failover resumes when maintenance ends");
}

#[test]
fn the_peers_maintenance_pauses_failover_here() {
    let mut t = T::standby();
    t.step(Input::Peer(PeerView {
        maintenance: true,
        ..view(true, Role::Active)
    }));
    t.step(Input::Peer(PeerView {
        maintenance: true,
        ..view(false, Role::Active)
    }));
    t.after(Duration::from_secs(60));
    assert_eq!(t.count(&FENCE), 0);
}

// ---- The BMC watch ----

#[test]
fn a_bmc_that_reports_a_heard_peer_off_is_not_trusted_to_fence() {
    // Route 4: a [fencing] host pointing at another machine.
    let mut s = settings(false);
    s.bmc_watch = Duration::from_secs(10);
    let mut t = T::new(s);
    t.peer_is_on();
    t.step(peer(true, Role::Active));
    let a = t.after(Duration::from_secs(10));
    assert!(a.contains(&QUERY), "{a:?}");
    t.step(power(false));
    assert!(t.p.bmc_mismatch());
    t.step(peer(false, Role::Active));
    t.step(power(false));
    t.step(confirmed());
    assert_eq!(
        t.p.role(),
        Role::Fencing,
        "a fence through that BMC proves nothing"
    );
    assert_eq!(t.count(&Action::Permit { run: true }), 0);
}

// ---- Switchover and shutdown ----

#[test]
fn switchover_is_refused_unless_the_peer_is_a_healthy_standby_that_answers() {
    let mut t = T::active();
    t.step(Input::Peer(PeerView {
        healthy: false,
        ..view(true, Role::Standby)
    }));
    t.step(Input::Switchover);
    assert_eq!(t.p.role(), Role::Active);
    assert!(t.kinds().contains(&Kind::SwitchoverRefused));
    t.step(Input::Peer(PeerView {
        consent: false,
        ..view(true, Role::Standby)
    }));
    t.step(Input::Switchover);
    assert_eq!(t.p.role(), Role::Active);
    t.step(peer(true, Role::Standby));
    t.step(Input::Switchover);
    assert_eq!(t.p.role(), Role::Releasing);
}

#[test]
fn shutdown_of_the_active_releases_hands_over_then_exits() {
    let mut t = T::active();
    t.step(Input::Shutdown);
    let a = t.release_steps(true, true);
    assert!(a.contains(&Action::Exit));
    assert!(t.p.handed_over());
}

#[test]
fn shutdown_of_a_standby_exits_at_once() {
    let mut t = T::standby();
    let a = t.step(Input::Shutdown);
    assert!(a.contains(&Action::Exit));
}

// ---- Randomised invariants ----

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
/// peer's consenting word; the VIP is removed before Bitbucket is stopped; `handed_over` is
/// only advertised after a clean release.
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
        let mut proof = false;
        let mut permitted = false;
        let mut healthy_since_permit = false;
        let mut vip_held = false;
        let mut release_errors = false;
        for _ in 0..300 {
            let input = match rng.below(17) {
                0 => {
                    let alive = rng.below(2) == 0;
                    let v = PeerView {
                        alive,
                        consent: alive && rng.below(2) == 0,
                        role: roles[rng.below(6) as usize],
                        healthy: rng.below(2) == 0,
                        failed: rng.below(5) == 0,
                        handed_over: rng.below(4) == 0,
                        preferred: rng.below(2) == 0,
                        maintenance: rng.below(6) == 0,
                    };
                    if v.consent && !v.role.serving() && v.role != Role::Fencing {
                        proof = true;
                    }
                    Input::Peer(v)
                }
                1 => {
                    if rng.below(2) == 0 {
                        proof = true;
                        confirmed()
                    } else {
                        fence_failed()
                    }
                }
                2 => Input::HooksDone {
                    phase: Hooks::BeforeStart,
                    ok: rng.below(5) != 0,
                    detail: ok(),
                },
                3 => {
                    let ok_ = rng.below(5) != 0;
                    Input::HooksDone {
                        phase: Hooks::AfterStop,
                        ok: ok_,
                        detail: ok(),
                    }
                }
                4 => {
                    healthy_since_permit |= permitted;
                    Input::SupervisorHealthy
                }
                5 => Input::SupervisorStopped,
                6 => Input::VipAdded {
                    ok: rng.below(4) != 0,
                    detail: ok(),
                },
                7 => {
                    let ok_ = rng.below(4) != 0;
                    Input::VipRemoved {
                        ok: ok_,
                        detail: ok(),
                    }
                }
                8 => Input::SupervisorEscalates,
                9 => Input::Witness {
                    reachable: rng.below(2) == 0,
                },
                10 => Input::PublicLink {
                    up: rng.below(3) != 0,
                },
                11 => Input::Switchover,
                12 => {
                    proof = true;
                    Input::ConfirmPeerDown
                }
                13 => power(rng.below(2) == 0),
                14 => Input::Local {
                    failed: rng.below(8) == 0,
                    maintenance: rng.below(8) == 0,
                },
                _ => {
                    t.now += Duration::from_millis(rng.below(5000));
                    Input::Tick
                }
            };
            let before = t.p.role();
            let acts = t.step(input.clone());
            if !before.serving() && t.p.role() == Role::TakingOver {
                assert!(
                    proof,
                    "seed {seed}: takeover without a proof ({input:?}, from {before:?})"
                );
                proof = false;
            }
            if before != Role::Releasing && t.p.role() == Role::Releasing {
                release_errors = false;
            }
            for a in &acts {
                match a {
                    Action::Event(Kind::ReleaseError, _) => release_errors = true,
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
                            "seed {seed}: Bitbucket stopped with the VIP held"
                        );
                        permitted = false;
                    }
                    _ => {}
                }
            }
            if t.p.handed_over() {
                assert!(
                    !release_errors,
                    "seed {seed}: hand-over after a failed release step"
                );
            }
        }
    }
}

#[test]
fn an_active_cut_off_from_peer_and_clients_releases_and_never_fences() {
    let mut t = T::active();
    t.step(Input::PublicLink { up: false });
    let a = t.step(peer(false, Role::Standby));
    assert!(!a.contains(&FENCE), "{a:?}");
    assert!(a.contains(&Action::RemoveVip), "{a:?}");
}

#[test]
fn a_node_resuming_from_stale_facts_yields_to_an_active_peer() {
    // Found on the lab: a node powered on again re-adopted a dead Bitbucket from a pid file
    // that outlived it, resumed, and restarted Bitbucket next to the active peer.
    let mut t = T::boot(settings(true), Some("Bitbucket still running"));
    let a = t.step(peer(true, Role::Active));
    assert!(a.contains(&Action::RemoveVip), "{a:?}");
    assert_eq!(t.p.role(), Role::Releasing);
    t.release_steps(true, true);
    assert!(!t.p.handed_over(), "no hand-over: the peer already serves");
}

#[test]
fn of_two_active_nodes_the_tie_break_loser_releases() {
    let mut t = T::active();
    // This node is the winner (preferred): it keeps the service.
    t.step(peer(true, Role::Active));
    assert_eq!(t.p.role(), Role::Active);
    let mut s = settings(false);
    s.name_first = false;
    let mut u = T::new(s);
    u.step(peer(true, Role::Booting));
    u.step(Input::Peer(PeerView {
        preferred: true,
        ..view(true, Role::Standby)
    }));
    assert_eq!(u.p.role(), Role::Standby);
}
