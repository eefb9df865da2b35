//! Power and bbwd's life on each node: the cold start (both nodes powered on at once), power off
//! (everything on the node stops, its pending work is dropped; the storage record survives only
//! if configured), power on (bbwd starts 200 ms later), a bbwd crash (systemd restarts it after
//! 100 ms, with what still runs: adopted pid, VIP, storage record, persisted overlays) and a
//! start with a fresh run.
//!
//! Must not: keep anything across a power-off that a real reboot would lose.

use std::collections::VecDeque;
use std::time::Duration;

use bbwd_core::machine::detail;
use bbwd_core::node::{Boot, Input, Node};

use super::{Bbwd, BmcMode, Cause, Env, Item, Model, Violation, World, LINKS, MS};

impl Model {
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

    pub(super) fn power_off(&self, w: &mut World, n: u8) {
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
    pub(super) fn power_on(&self, w: &mut World, n: u8) {
        let e = &mut w.env[n as usize];
        if e.bmc == BmcMode::Unreachable {
            e.bmc = BmcMode::Truthful;
        }
        e.restart_at = Some(w.now + MS(200));
    }

    pub(super) fn crash_bbwd(&self, w: &mut World, n: u8) {
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

    pub(super) fn start_bbwd(&self, w: &mut World, n: u8, v: &mut Option<Violation>) {
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

    /// bbwd stops being scheduled (SIGSTOP, a stalled VM): its state is kept, it takes no input;
    /// its socket keeps datagrams until it runs again.
    pub(super) fn pause_bbwd(&self, w: &mut World, n: u8) {
        let e = &mut w.env[n as usize];
        if let Bbwd::Running(nd) = std::mem::replace(&mut e.bbwd, Bbwd::Down) {
            e.bbwd = Bbwd::Paused(nd);
        }
    }

    /// A paused bbwd runs again: ticked at once, and told what changed meanwhile.
    pub(super) fn resume_bbwd(&self, w: &mut World, n: u8, v: &mut Option<Violation>) {
        let e = &mut w.env[n as usize];
        if let Bbwd::Paused(nd) = std::mem::replace(&mut e.bbwd, Bbwd::Down) {
            e.bbwd = Bbwd::Running(nd);
            w.pending.push_back(Item::Tick(n));
            // What changed meanwhile is queued in its sockets (netlink, ICMP): the
            // shell reads it on its first pass.
            let (up, witness) = (e.public_up, e.witness_ok);
            self.feed(w, n, Input::PublicLink { up }, v);
            if self.cfg.witness {
                self.feed(w, n, Input::Witness { reachable: witness }, v);
            }
        }
    }
}
