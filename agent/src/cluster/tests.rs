//! The shell's translation between the node's actions/inputs and the platform, driven with the
//! recording fakes (`fake.rs`) and a real `Node`: no root, no peer, no BMC.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bbwd_core::fence;
use bbwd_core::heartbeat::{Key, NodeName, PACKET_BYTES, PACKET_BYTES_V1, VERSION, VERSION_V1};
use bbwd_core::machine;
use bbwd_core::node::{self, Action, Input, Node, PairSettings};
use bbwd_platform::command::{Outcome, SequenceMode, SequenceOutcome, StepResult};
use bbwd_platform::ipmi::{self, Failure, Op, PowerAction, Reply, SubmitError};
use bbwd_platform::poll::PollSet;
use bbwd_platform::vip::{Mac, ProbeOutcome, VipOp};

use super::fake::{Call, Fake, FakeBmc, FakeHooks, FakeLinks, FakeStorage, FakeVip, Shared, World};
use super::{storage_held_at_open, Cluster, Hooks, Parts, Tokens, PROBE_WINDOW};

const LINKS: usize = 2;
const BOOT: u128 = 0x1234_5678_9abc_def0_0fed_cba9_8765_4321;

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

fn pair_settings() -> PairSettings {
    PairSettings {
        pair: bbwd_core::pair::Settings {
            peer_timeout: Duration::from_secs(1),
            preferred_active: true,
            name_first: true,
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
        links: LINKS,
        key: Key::new(b"0123456789abcdef0123456789abcdef").unwrap(),
        me: NodeName::new("n1").unwrap(),
        peer: NodeName::new("n2").unwrap(),
        boot_id: [1; 16],
        first_sequence: 1_000,
        fence_timeout: Duration::from_secs(10),
        fence_cycle: false,
        preferred: true,
    }
}

/// A cluster on the fakes, a real node, and the shared fake world.
struct T {
    now: Instant,
    world: Shared,
    cluster: Cluster<super::fake::Fake>,
    node: Node,
}

impl T {
    fn new() -> T {
        Self::with_boot(node::Boot::default())
    }

    fn with_boot(boot: node::Boot) -> T {
        let now = Instant::now();
        let world: Shared = Rc::new(RefCell::new(World {
            boot_id: Some(BOOT),
            ..World::default()
        }));
        let cluster = Cluster::<Fake>::new(
            Parts {
                node_name: "n1".into(),
                peer_name: "n2".into(),
                before_start: vec![vec!["/bin/mount-storage".into()]],
                after_stop: vec![vec!["/bin/umount-storage".into()]],
                garp_count: 3,
                garp_interval: Duration::from_millis(500),
                links: FakeLinks(world.clone(), LINKS),
                fencer: FakeBmc(world.clone()),
                vip: FakeVip(world.clone()),
                vip_watch: None,
                hook_runner: FakeHooks(world.clone()),
                storage: FakeStorage(world.clone()),
                witness: None,
                link: None,
            },
            now,
        );
        let (node, _) = Node::new(sup_settings(), Some(pair_settings()), boot, now);
        T {
            now,
            world,
            cluster,
            node,
        }
    }

    fn apply(&mut self, a: Action) {
        self.cluster.apply(self.now, &a, &mut self.node);
    }

    /// One loop pass with nothing readable.
    fn service(&mut self) {
        let mut out = Vec::new();
        let set = PollSet::new();
        self.cluster
            .service(self.now, &set, &Tokens::default(), &mut self.node, &mut out);
    }

    fn inputs(&mut self) -> Vec<Input> {
        std::iter::from_fn(|| self.cluster.next_input()).collect()
    }

    /// The calls so far, forgotten.
    fn take_calls(&mut self) -> Vec<Call> {
        std::mem::take(&mut self.world.borrow_mut().calls)
    }

    /// The calls so far without the polls (try_result, advance_probe, hooks' service).
    fn effects(&mut self) -> Vec<Call> {
        self.take_calls()
            .into_iter()
            .filter(|c| {
                !matches!(
                    c,
                    Call::BmcTryResult | Call::VipAdvanceProbe | Call::HooksService
                )
            })
            .collect()
    }
}

fn outcome(ok: bool) -> SequenceOutcome {
    SequenceOutcome {
        steps: vec![StepResult {
            index: 0,
            program: "/bin/umount-storage".into(),
            outcome: if ok {
                Outcome::Success
            } else {
                Outcome::Failed(32)
            },
        }],
        skipped: 0,
    }
}

// ---- BMC -------------------------------------------------------------------------------------

#[test]
fn power_off_is_submitted_with_the_nodes_timeout_and_its_completion_answers_done() {
    let mut t = T::new();
    let timeout = Duration::from_secs(7);
    t.apply(Action::Bmc {
        op: fence::Op::PowerOff,
        timeout,
    });
    assert_eq!(
        t.effects(),
        [Call::BmcSubmit {
            op: Op::Power(PowerAction::Off),
            timeout
        }]
    );
    t.service();
    assert_eq!(t.inputs(), [], "no answer before the BMC's");
    t.world.borrow_mut().bmc_result = Some(Ok(Reply::Done));
    t.service();
    assert_eq!(t.inputs(), [Input::Bmc(fence::Reply::Done)]);
}

#[test]
fn power_status_and_power_on_become_their_ipmi_operations_and_replies() {
    let mut t = T::new();
    let timeout = Duration::from_secs(3);
    t.apply(Action::Bmc {
        op: fence::Op::Status,
        timeout,
    });
    t.world.borrow_mut().bmc_result = Some(Ok(Reply::Power(ipmi::Power::On)));
    t.service();
    assert_eq!(t.inputs(), [Input::Bmc(fence::Reply::Power { on: true })]);
    t.apply(Action::Bmc {
        op: fence::Op::PowerOn,
        timeout,
    });
    let calls = t.effects();
    assert_eq!(
        calls,
        [
            Call::BmcSubmit {
                op: Op::PowerStatus,
                timeout
            },
            Call::BmcSubmit {
                op: Op::Power(PowerAction::On),
                timeout
            }
        ]
    );
}

#[test]
fn a_bmc_error_becomes_a_failed_reply_with_its_detail() {
    let mut t = T::new();
    t.apply(Action::Bmc {
        op: fence::Op::PowerOff,
        timeout: Duration::from_secs(7),
    });
    t.world.borrow_mut().bmc_result = Some(Err(ipmi::Error {
        bmc: "BMC peer-bmc:623".into(),
        op: "chassis power off",
        failure: Failure::Timeout,
    }));
    t.service();
    match t.inputs().as_slice() {
        [Input::Bmc(fence::Reply::Failed(d))] => {
            assert!(d.contains("chassis power off"), "{d}");
            assert!(d.contains("timeout"), "{d}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_refused_submit_answers_failed_at_once() {
    let mut t = T::new();
    t.world.borrow_mut().submit_error = Some(SubmitError::Busy);
    t.apply(Action::Bmc {
        op: fence::Op::PowerOff,
        timeout: Duration::from_secs(7),
    });
    match t.inputs().as_slice() {
        [Input::Bmc(fence::Reply::Failed(d))] => assert!(d.contains("Busy"), "{d}"),
        other => panic!("{other:?}"),
    }
    // Nothing outstanding: a later result is not taken for this operation's.
    t.world.borrow_mut().bmc_result = Some(Ok(Reply::Done));
    t.service();
    assert_eq!(t.inputs(), []);
}

#[test]
fn a_bmc_session_going_down_and_up_is_reported_once_each() {
    let mut t = T::new();
    t.service();
    assert_eq!(
        t.cluster.next_event(),
        None,
        "unknown before the first session attempt"
    );
    t.world.borrow_mut().bmc_health = ipmi::Health {
        up: false,
        last_error: Some(ipmi::Error {
            bmc: "BMC peer-bmc:623".into(),
            op: "open session",
            failure: Failure::BadCredentials,
        }),
        ..ipmi::Health::default()
    };
    t.service();
    t.service();
    match t.cluster.next_event() {
        Some(("fencing_bmc_down", d, true)) => assert!(d.contains("bad credentials"), "{d}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(t.cluster.next_event(), None, "once per change");
    t.world.borrow_mut().bmc_health = ipmi::Health {
        up: true,
        sessions_opened: 1,
        ..ipmi::Health::default()
    };
    t.service();
    assert!(matches!(
        t.cluster.next_event(),
        Some(("fencing_bmc_up", _, false))
    ));
}

/// The fencing object of `bbwd status` carries the device's warning (an unverified Redfish
/// certificate: `insecure = true`) and each device's health.
#[test]
fn status_carries_the_fence_device_warning_and_each_devices_health() {
    let mut t = T::new();
    t.service();
    let (_, _, fencing) = t.cluster.status(t.now, &t.node);
    assert!(fencing["tls_warning"].is_null(), "{fencing:#}");
    t.world.borrow_mut().bmc_warning = Some("TLS certificate NOT verified");
    t.world.borrow_mut().bmc_health = ipmi::Health {
        up: true,
        ..ipmi::Health::default()
    };
    let (_, _, fencing) = t.cluster.status(t.now, &t.node);
    assert_eq!(fencing["tls_warning"], "TLS certificate NOT verified");
    assert_eq!(fencing["devices"][0]["session_up"], true, "{fencing:#}");
    assert_eq!(fencing["devices"][0]["bmc"], fencing["bmc"], "{fencing:#}");
}

// ---- hooks and the storage record ------------------------------------------------------------

#[test]
fn before_start_writes_the_record_with_the_boot_id_before_starting_the_hooks() {
    let mut t = T::new();
    t.apply(Action::RunHooks(Hooks::BeforeStart));
    assert_eq!(
        t.effects(),
        [
            Call::RecordWrite(format!("before_start {BOOT:032x}\n").into_bytes()),
            Call::HooksStart {
                phase: "before_start",
                steps: vec![vec!["/bin/mount-storage".into()]],
                mode: SequenceMode::StopAtFirstFailure,
            },
        ]
    );
    t.service();
    assert_eq!(t.inputs(), [], "no answer while the hooks run");
    t.world.borrow_mut().hooks_outcome = Some(outcome(true));
    t.service();
    assert!(matches!(
        t.inputs().as_slice(),
        [Input::HooksDone {
            phase: Hooks::BeforeStart,
            ok: true,
            ..
        }]
    ));
    assert!(t.world.borrow().record.is_some(), "the record stays");
}

#[test]
fn a_record_that_cannot_be_written_fails_before_start_without_running_any_hook() {
    let mut t = T::new();
    t.world.borrow_mut().record_fail = vec!["write"];
    t.apply(Action::RunHooks(Hooks::BeforeStart));
    match t.inputs().as_slice() {
        [Input::HooksDone {
            phase: Hooks::BeforeStart,
            ok: false,
            detail,
        }] => assert!(detail.contains("cannot record the hooks"), "{detail}"),
        other => panic!("{other:?}"),
    }
    t.service();
    let calls = t.take_calls();
    assert!(
        !calls
            .iter()
            .any(|c| matches!(c, Call::HooksStart { .. } | Call::HooksService)),
        "{calls:?}"
    );
}

#[test]
fn after_stop_success_removes_the_record_after_the_hooks() {
    let mut t = T::new();
    t.world.borrow_mut().record = Some(b"before_start 0\n".to_vec());
    t.apply(Action::RunHooks(Hooks::AfterStop));
    assert_eq!(
        t.effects(),
        [Call::HooksStart {
            phase: "after_stop",
            steps: vec![vec!["/bin/umount-storage".into()]],
            mode: SequenceMode::BestEffort,
        }],
        "no record is written for after_stop, none removed before the hooks end"
    );
    t.world.borrow_mut().hooks_outcome = Some(outcome(true));
    t.service();
    assert_eq!(t.effects(), [Call::RecordRemove]);
    assert!(matches!(
        t.inputs().as_slice(),
        [Input::HooksDone {
            phase: Hooks::AfterStop,
            ok: true,
            ..
        }]
    ));
    assert_eq!(t.world.borrow().record, None);
}

#[test]
fn after_stop_failure_keeps_the_record() {
    let mut t = T::new();
    t.world.borrow_mut().record = Some(b"before_start 0\n".to_vec());
    t.apply(Action::RunHooks(Hooks::AfterStop));
    t.world.borrow_mut().hooks_outcome = Some(outcome(false));
    t.service();
    match t.inputs().as_slice() {
        [Input::HooksDone {
            phase: Hooks::AfterStop,
            ok: false,
            detail,
        }] => assert!(detail.contains("exit status 32"), "{detail}"),
        other => panic!("{other:?}"),
    }
    assert!(!t.effects().contains(&Call::RecordRemove));
    assert!(t.world.borrow().record.is_some());
}

#[test]
fn after_stop_success_whose_record_cannot_be_removed_still_answers_ok_and_keeps_it() {
    let mut t = T::new();
    t.world.borrow_mut().record = Some(b"before_start 0\n".to_vec());
    t.world.borrow_mut().record_fail = vec!["remove"];
    t.apply(Action::RunHooks(Hooks::AfterStop));
    t.world.borrow_mut().hooks_outcome = Some(outcome(true));
    t.service();
    assert!(matches!(
        t.inputs().as_slice(),
        [Input::HooksDone {
            phase: Hooks::AfterStop,
            ok: true,
            ..
        }]
    ));
    // The next start resumes from it: safe.
    assert!(t.world.borrow().record.is_some());
}

#[test]
fn a_record_of_another_boot_is_ignored_and_removed_at_open() {
    let world: Shared = Rc::default();
    world.borrow_mut().boot_id = Some(BOOT);
    world.borrow_mut().record = Some(format!("before_start {:032x}\n", BOOT + 1).into_bytes());
    assert!(!storage_held_at_open(&mut FakeStorage(world.clone())));
    assert_eq!(world.borrow().calls, [Call::RecordRead, Call::RecordRemove]);
    assert_eq!(world.borrow().record, None);
}

#[test]
fn a_record_of_this_boot_is_held_at_open_and_kept() {
    let world: Shared = Rc::default();
    world.borrow_mut().boot_id = Some(BOOT);
    world.borrow_mut().record = Some(format!("before_start {BOOT:032x}\n").into_bytes());
    assert!(storage_held_at_open(&mut FakeStorage(world.clone())));
    assert_eq!(world.borrow().calls, [Call::RecordRead]);
}

#[test]
fn no_record_is_not_held_and_an_unreadable_or_unknown_boot_record_is_decided_safely() {
    let world: Shared = Rc::default();
    world.borrow_mut().boot_id = Some(BOOT);
    assert!(!storage_held_at_open(&mut FakeStorage(world.clone())));
    // Cannot read it: taken as held (resuming is safe, forgetting is not).
    world.borrow_mut().record = Some(format!("before_start {BOOT:032x}\n").into_bytes());
    world.borrow_mut().record_fail = vec!["read"];
    assert!(storage_held_at_open(&mut FakeStorage(world.clone())));
    // This boot's id unknown: no record can be proved current.
    world.borrow_mut().record_fail.clear();
    world.borrow_mut().boot_id = None;
    assert!(!storage_held_at_open(&mut FakeStorage(world.clone())));
}

// ---- the VIP ---------------------------------------------------------------------------------

#[test]
fn add_vip_already_held_announces_only_and_answers_ok() {
    let mut t = T::new();
    t.world.borrow_mut().vip_held = true;
    t.apply(Action::AddVip);
    match t.inputs().as_slice() {
        [Input::VipAdded { ok: true, detail }] => assert!(detail.contains("already held")),
        other => panic!("{other:?}"),
    }
    for _ in 0..5 {
        t.service();
        t.now += Duration::from_millis(500);
    }
    // garp_count announcements, no probe, no add.
    assert_eq!(
        t.effects(),
        [
            Call::VipHeld,
            Call::VipAnnounce,
            Call::VipAnnounce,
            Call::VipAnnounce
        ]
    );
}

#[test]
fn add_vip_probes_first_then_adds_and_announces() {
    let mut t = T::new();
    t.apply(Action::AddVip);
    t.service();
    assert_eq!(t.inputs(), [], "no answer while the probe listens");
    t.world.borrow_mut().probe = Some(ProbeOutcome::Free);
    t.service();
    match t.inputs().as_slice() {
        [Input::VipAdded { ok: true, detail }] => assert!(detail.contains("added")),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        t.effects(),
        [
            Call::VipHeld,
            Call::VipStartProbe {
                window: PROBE_WINDOW
            },
            Call::VipAdd,
            Call::VipAnnounce,
        ]
    );
}

#[test]
fn a_probe_conflict_answers_not_added_without_adding() {
    let mut t = T::new();
    t.apply(Action::AddVip);
    t.world.borrow_mut().probe = Some(ProbeOutcome::Conflict {
        mac: Mac([2, 0, 0, 0, 0, 9]),
    });
    t.service();
    match t.inputs().as_slice() {
        [Input::VipAdded { ok: false, detail }] => {
            assert!(detail.contains("someone else holds the VIP"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
    let calls = t.effects();
    assert!(
        !calls
            .iter()
            .any(|c| matches!(c, Call::VipAdd | Call::VipAnnounce)),
        "{calls:?}"
    );
}

#[test]
fn a_probe_that_cannot_start_answers_not_added() {
    let mut t = T::new();
    t.world.borrow_mut().vip_fail = vec![VipOp::Probe];
    t.apply(Action::AddVip);
    assert!(matches!(
        t.inputs().as_slice(),
        [Input::VipAdded { ok: false, .. }]
    ));
    assert!(!t.effects().contains(&Call::VipAdd));
}

#[test]
fn remove_vip_cancels_the_probe_removes_and_answers() {
    let mut t = T::new();
    t.world.borrow_mut().vip_held = true;
    t.apply(Action::RemoveVip);
    assert_eq!(t.effects(), [Call::VipCancelProbe, Call::VipRemove]);
    match t.inputs().as_slice() {
        [Input::VipRemoved { ok: true, detail }] => assert!(detail.contains("removed")),
        other => panic!("{other:?}"),
    }
    assert!(!t.world.borrow().vip_held);
}

#[test]
fn a_failed_remove_answers_not_removed() {
    let mut t = T::new();
    t.world.borrow_mut().vip_held = true;
    t.world.borrow_mut().vip_fail = vec![VipOp::Remove];
    t.apply(Action::RemoveVip);
    assert!(matches!(
        t.inputs().as_slice(),
        [Input::VipRemoved { ok: false, .. }]
    ));
}

// ---- heartbeats ------------------------------------------------------------------------------

fn sends(calls: &[Call]) -> Vec<(usize, usize)> {
    calls
        .iter()
        .filter_map(|c| match c {
            Call::Send { link, bytes } => Some((*link, bytes.len())),
            _ => None,
        })
        .collect()
}

#[test]
fn heartbeats_go_out_once_per_link_per_version() {
    let mut t = T::new();
    assert_eq!(
        t.node.versions(),
        [VERSION, VERSION_V1],
        "a new run sends both"
    );
    t.apply(Action::SendHeartbeats);
    let calls = t.effects();
    assert_eq!(
        sends(&calls),
        [
            (0, PACKET_BYTES),
            (1, PACKET_BYTES),
            (0, PACKET_BYTES_V1),
            (1, PACKET_BYTES_V1)
        ],
        "version 2 then the v1 copy, each on every link"
    );
    assert_eq!(calls.len(), 4, "{calls:?}");
}

/// Carries out `acts` and every action they lead to, ticking 100 ms when nothing answers, for
/// 20 s of node time (hooks succeed; the supervisor's actions go nowhere).
fn drive(t: &mut T, acts: impl IntoIterator<Item = Action>) {
    let mut todo: Vec<Action> = acts.into_iter().collect();
    for _ in 0..200 {
        for a in std::mem::take(&mut todo) {
            t.apply(a);
        }
        t.world.borrow_mut().hooks_outcome = Some(outcome(true));
        t.service();
        let inputs = t.inputs();
        if inputs.is_empty() {
            t.now += Duration::from_millis(100);
            todo.extend(t.node.step(t.now, Input::Tick));
        }
        for i in inputs {
            todo.extend(t.node.step(t.now, i));
        }
    }
}

#[test]
fn a_silent_node_sends_no_heartbeat() {
    // A resumed node told to shut down whose Bitbucket is never confirmed gone within the
    // release deadline cannot prove it stopped serving: it self-fences.
    let mut t = T::with_boot(node::Boot {
        storage_held: true,
        ..node::Boot::default()
    });
    let acts = t.node.step(t.now, Input::Shutdown);
    drive(&mut t, acts);
    assert!(t.node.self_fenced(), "the scenario must end self-fenced");
    assert!(
        !sends(&t.take_calls()).is_empty(),
        "it sent heartbeats before"
    );
    t.apply(Action::SendHeartbeats);
    assert_eq!(sends(&t.effects()), []);
}
