//! The composed node: two nodes wired back to back in memory (heartbeats delivered at once, a
//! truthful BMC), with a fake clock. The exhaustive version is `agent/model`.

use std::time::Instant;

use super::*;
use crate::heartbeat::{BootId, Key};
use crate::node;
use crate::pair::Role;
use crate::probe::{BbState, ProbeOutcome};

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

fn sup_settings() -> machine::Settings {
    machine::Settings {
        monitor_interval: Duration::from_secs(1),
        startup_timeout: Duration::from_secs(30),
        failures_before_action: 2,
        stop_timeout: Duration::from_secs(5),
        kill_timeout: Duration::from_secs(2),
        max_restarts: 1,
        restart_window: Duration::from_secs(3600),
        database: false,
        pair: true,
        watchdog_resets: true,
    }
}

fn pair_settings(me: &str, peer: &str, preferred: bool, boot: u8) -> PairSettings {
    PairSettings {
        pair: pair::Settings {
            peer_timeout: Duration::from_secs(1),
            preferred_active: preferred,
            name_first: me < peer,
            fence_delay: Duration::from_secs(11),
            boot_wait: Duration::from_secs(3),
            witness: false,
            witness_misses: 3,
            link_hold: Duration::from_secs(1),
            step_timeout: Duration::from_secs(60),
            release_timeout: Duration::from_secs(12),
            bmc_watch: Duration::from_secs(60),
        },
        heartbeat_interval: Duration::from_millis(200),
        links: 2,
        key: Key::new(KEY).unwrap(),
        me: NodeName::new(me).unwrap(),
        peer: NodeName::new(peer).unwrap(),
        boot_id: [boot; 16] as BootId,
        first_sequence: 1_000 * u64::from(boot),
        fence_timeout: Duration::from_secs(10),
        fence_cycle: false,
        preferred,
    }
}

/// One node and the world around it: its Bitbucket (a pid, healthy once started), its VIP.
struct Host {
    node: Node,
    pid: Option<i32>,
    vip: bool,
    next_pid: i32,
    powered: bool,
    /// Actions not yet carried out.
    todo: Vec<Action>,
}

impl Host {
    fn new(node: Node, acts: Actions) -> Host {
        Host {
            node,
            pid: None,
            vip: false,
            next_pid: 100,
            powered: true,
            todo: acts.into_iter().collect(),
        }
    }
}

struct World {
    now: Instant,
    h: [Host; 2],
    /// Heartbeats in flight: (to, link, bytes).
    wire: Vec<(usize, usize, Vec<u8>)>,
    /// Hosts whose bbwd is paused (SIGSTOP): powered, not stepped, their heartbeats queued.
    paused: [bool; 2],
    /// Heartbeats queued in a paused host's sockets: (to, link, bytes).
    queued: Vec<(usize, usize, Vec<u8>)>,
}

impl World {
    fn new(boot: [node::Boot; 2]) -> World {
        let now = Instant::now();
        let [b1, b2] = boot;
        let (n1, a1) = Node::new(
            sup_settings(),
            Some(pair_settings("n1", "n2", true, 1)),
            b1,
            now,
        );
        let (n2, a2) = Node::new(
            sup_settings(),
            Some(pair_settings("n2", "n1", false, 2)),
            b2,
            now,
        );
        World {
            now,
            h: [Host::new(n1, a1), Host::new(n2, a2)],
            wire: Vec::new(),
            paused: [false; 2],
            queued: Vec::new(),
        }
    }

    /// Whether host `i`'s bbwd runs (powered and not paused).
    fn runs(&self, i: usize) -> bool {
        self.h[i].powered && !self.paused[i]
    }

    /// Host `i`'s bbwd resumes (SIGCONT): its first step is the timer's, as the shell's loop
    /// does after a pause, and only then are the queued heartbeats read.
    fn resume(&mut self, i: usize) {
        self.paused[i] = false;
        let now = self.now;
        let acts = self.h[i].node.step(now, Input::Tick);
        self.h[i].todo.extend(acts);
        self.run(i);
        for (to, link, bytes) in std::mem::take(&mut self.queued) {
            let (_, acts) = self.h[to].node.receive(now, link, &bytes);
            self.h[to].todo.extend(acts);
        }
        self.run(i);
    }

    fn serving(&self, i: usize) -> bool {
        self.h[i].powered && (self.h[i].pid.is_some() || self.h[i].vip)
    }

    /// Carries out every pending action of host `i` (replies fed back at once).
    fn run(&mut self, i: usize) {
        for _ in 0..1000 {
            let Some(a) = (if self.h[i].todo.is_empty() {
                None
            } else {
                Some(self.h[i].todo.remove(0))
            }) else {
                return;
            };
            let now = self.now;
            let reply: Option<Input> = match a {
                Action::Sup(machine::Action::Spawn) => {
                    let pid = self.h[i].next_pid;
                    self.h[i].next_pid += 1;
                    self.h[i].pid = Some(pid);
                    Some(Input::Sup(machine::Input::Started { pid }))
                }
                Action::Sup(machine::Action::CheckFree) => {
                    Some(Input::Sup(machine::Input::FreeChecked {
                        occupied: self.h[i]
                            .pid
                            .map(|p| machine::detail(&format!("pid {p} answers"))),
                    }))
                }
                Action::Sup(machine::Action::Check) => Some(Input::Sup(machine::Input::Checked {
                    probe: if self.h[i].pid.is_some() {
                        ProbeOutcome::Reply {
                            http_status: 200,
                            state: Some(BbState::Running),
                        }
                    } else {
                        ProbeOutcome::Failed(crate::probe::ProbeFailure::Refused)
                    },
                    db_up: None,
                })),
                Action::Sup(machine::Action::Signal(_)) => {
                    self.h[i].pid = None;
                    let acts = self.h[i].node.step(
                        now,
                        Input::Sup(machine::Input::Exited {
                            kind: crate::probe::ExitKind::Signaled(15),
                        }),
                    );
                    self.h[i].todo.extend(acts);
                    Some(Input::Sup(machine::Input::Gone))
                }
                Action::Bmc { op, .. } => {
                    let peer = 1 - i;
                    Some(Input::Bmc(match op {
                        fence::Op::Status => fence::Reply::Power {
                            on: self.h[peer].powered,
                        },
                        fence::Op::PowerOff => {
                            self.h[peer].powered = false;
                            self.h[peer].pid = None;
                            self.h[peer].vip = false;
                            fence::Reply::Done
                        }
                        fence::Op::PowerOn => fence::Reply::Done,
                    }))
                }
                Action::RunHooks(phase) => Some(Input::HooksDone {
                    phase,
                    ok: true,
                    detail: machine::detail("ok"),
                }),
                Action::AddVip => {
                    self.h[i].vip = true;
                    Some(Input::VipAdded {
                        ok: true,
                        detail: machine::detail("added"),
                    })
                }
                Action::RemoveVip => {
                    self.h[i].vip = false;
                    Some(Input::VipRemoved {
                        ok: true,
                        detail: machine::detail("removed"),
                    })
                }
                Action::SendHeartbeats => {
                    if self.h[i].powered {
                        let versions = self.h[i].node.versions();
                        for &v in versions {
                            for link in 0..2u8 {
                                let mut buf = [0u8; hb::PACKET_BYTES];
                                let len = self.h[i].node.encode(now, link, 0, v, &mut buf);
                                if len > 0 {
                                    self.wire
                                        .push((1 - i, usize::from(link), buf[..len].to_vec()));
                                }
                            }
                        }
                    }
                    None
                }
                _ => None,
            };
            if let Some(input) = reply {
                let acts = self.h[i].node.step(now, input);
                self.h[i].todo.extend(acts);
            }
        }
        panic!("host {i} never settles");
    }

    fn deliver(&mut self) {
        for (to, link, bytes) in std::mem::take(&mut self.wire) {
            if !self.h[to].powered {
                continue;
            }
            if self.paused[to] {
                self.queued.push((to, link, bytes));
                continue;
            }
            let now = self.now;
            let (_, acts) = self.h[to].node.receive(now, link, &bytes);
            self.h[to].todo.extend(acts);
        }
    }

    /// Runs for `d` of virtual time in 50 ms steps, checking the invariant throughout.
    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            for i in 0..2 {
                if self.runs(i) {
                    self.run(i);
                }
            }
            self.deliver();
            for i in 0..2 {
                if self.runs(i) {
                    self.run(i);
                }
            }
            assert!(
                !(self.serving(0) && self.serving(1)),
                "both nodes serve at {:?}",
                self.now
            );
            self.now += Duration::from_millis(50);
            for i in 0..2 {
                if self.runs(i) {
                    let now = self.now;
                    let acts = self.h[i].node.step(now, Input::Tick);
                    self.h[i].todo.extend(acts);
                }
            }
        }
    }

    /// bbwd on host `i` restarts: a new node that finds what runs there.
    fn restart_bbwd(&mut self, i: usize, boot_byte: u8) {
        let me = if i == 0 {
            ("n1", "n2", true)
        } else {
            ("n2", "n1", false)
        };
        let boot = node::Boot {
            sup: machine::Boot {
                adopted_pid: self.h[i].pid,
                ..Default::default()
            },
            vip_held: self.h[i].vip,
            storage_held: self.h[i].node.storage_held(),
        };
        let (n, acts) = Node::new(
            sup_settings(),
            Some(pair_settings(me.0, me.1, me.2, boot_byte)),
            boot,
            self.now,
        );
        self.h[i].node = n;
        self.h[i].todo = acts.into_iter().collect();
    }
}

#[test]
fn cold_start_of_both_one_serves_without_a_fence() {
    let mut w = World::new([node::Boot::default(), node::Boot::default()]);
    w.run_for(Duration::from_secs(5));
    assert!(w.serving(0), "the preferred node serves");
    assert!(!w.serving(1));
    assert_eq!(w.h[0].node.role(), Some(Role::Active));
    assert_eq!(w.h[1].node.role(), Some(Role::Standby));
    assert!(w.h[1].powered, "nobody was fenced");
}

#[test]
fn the_standby_fences_a_powered_off_active_and_takes_over() {
    let mut w = World::new([node::Boot::default(), node::Boot::default()]);
    w.run_for(Duration::from_secs(5));
    w.h[0].powered = false;
    w.h[0].pid = None;
    w.h[0].vip = false;
    w.run_for(Duration::from_secs(5));
    assert!(w.serving(1));
    assert_eq!(w.h[1].node.role(), Some(Role::Active));
}

#[test]
fn agent_restart_on_the_non_preferred_active_keeps_one_bitbucket() {
    // Regression (pair-safety issue, route 1), the lab's reproduction: after a failover the
    // non-preferred node is active; its bbwd restarts with Bitbucket left running.
    let mut w = World::new([node::Boot::default(), node::Boot::default()]);
    w.run_for(Duration::from_secs(5));
    // Fail over to n2: n1 is powered off, then on again (it comes back as a standby).
    w.h[0].powered = false;
    w.h[0].pid = None;
    w.h[0].vip = false;
    w.run_for(Duration::from_secs(5));
    assert!(w.serving(1));
    w.h[0].powered = true;
    let now = w.now;
    let (n, acts) = Node::new(
        sup_settings(),
        Some(pair_settings("n1", "n2", true, 7)),
        node::Boot::default(),
        now,
    );
    w.h[0].node = n;
    w.h[0].todo = acts.into_iter().collect();
    w.run_for(Duration::from_secs(5));
    assert_eq!(w.h[0].node.role(), Some(Role::Standby));
    // Now n2's bbwd restarts; Bitbucket and the VIP stay.
    w.restart_bbwd(1, 9);
    assert_eq!(
        w.h[1].node.advertised().map(|l| l.role),
        Some(hb::Role::Active),
        "serving from the first packet"
    );
    w.run_for(Duration::from_secs(10));
    assert!(w.serving(1), "the service stayed on n2");
    assert!(!w.serving(0));
    assert_eq!(w.h[1].node.role(), Some(Role::Active));
}

/// Regression (the soak, seed 20261212 step 60): the active's bbwd was stopped (SIGSTOP) for
/// 12 s. The standby timed it out and waited its fence delay; the active, resumed just before
/// that delay ran out, timed the standby out on its first step, before reading the heartbeats
/// queued in its sockets, and fenced it "at once" while being fenced: both nodes went off.
#[test]
fn a_paused_active_resumed_does_not_fence_a_peer_it_did_not_listen_to() {
    let mut w = World::new([node::Boot::default(), node::Boot::default()]);
    w.run_for(Duration::from_secs(5));
    assert!(w.serving(0));
    w.paused[0] = true;
    // The standby loses n1 after peer_timeout (1 s) and waits fence_delay (11 s): resume
    // half a second before it would fire.
    w.run_for(Duration::from_millis(11_500));
    assert!(w.h[0].powered, "not fenced yet");
    w.resume(0);
    w.run_for(Duration::from_secs(10));
    assert!(w.h[1].powered, "the resumed active fenced its standby");
    assert!(
        w.h[0].powered,
        "the active answered the standby's challenge in time"
    );
    assert!(w.serving(0));
    assert_eq!(w.h[0].node.role(), Some(Role::Active));
    assert_eq!(w.h[1].node.role(), Some(Role::Standby));
}

/// The other side of the pause rule: a peer that really died while this node was paused is
/// still declared lost soon after the resume (within the grace of one `peer_timeout` and the
/// `peer_timeout` itself), and fenced.
#[test]
fn a_paused_active_resumed_still_loses_a_standby_that_died_meanwhile() {
    let mut w = World::new([node::Boot::default(), node::Boot::default()]);
    w.run_for(Duration::from_secs(5));
    w.paused[0] = true;
    w.run_for(Duration::from_millis(100));
    w.h[1].powered = false;
    w.run_for(Duration::from_millis(700));
    w.resume(0);
    let resumed = w.now;
    assert!(
        w.h[0].node.tracker().unwrap().alive(resumed),
        "not judged at once"
    );
    w.run_for(Duration::from_millis(2_100));
    let now = w.now;
    assert!(!w.h[0].node.tracker().unwrap().alive(now), "lost by now");
    assert!(w.serving(0));
    assert_eq!(w.h[0].node.role(), Some(Role::Active));
}

#[test]
fn a_self_fenced_node_sends_nothing() {
    let mut w = World::new([node::Boot::default(), node::Boot::default()]);
    w.run_for(Duration::from_secs(5));
    let now = w.now;
    let mut n = w.h[1].node.clone();
    let mut buf = [0u8; hb::PACKET_BYTES];
    assert!(
        n.encode(now, 0, 0, hb::VERSION, &mut buf) > 0,
        "a healthy node heartbeats"
    );
    // The supervisor reports Bitbucket unkillable: the pair self-fences (the whole report path
    // is the pair's own test); from then on the node is silent.
    let p = n.pair.as_mut().unwrap();
    let acts = p.pair.step(now, pair::Input::SupervisorUnkillable);
    assert!(acts.contains(&pair::Action::SelfFence));
    assert_eq!(n.encode(now, 0, 0, hb::VERSION, &mut buf), 0);
    assert!(n.self_fenced());
}

#[test]
fn the_v1_copy_goes_out_until_the_peer_speaks_v2() {
    let w0 = World::new([node::Boot::default(), node::Boot::default()]);
    assert_eq!(w0.h[0].node.versions(), &[hb::VERSION, hb::VERSION_V1]);
    let mut w = w0;
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.h[0].node.versions(), &[hb::VERSION]);
}
