//! The transitions ([`Choice`]) enabled in a state: `Next` (the deterministic default) first,
//! then the free ones (recoveries, late and replayed datagrams), then, within the fault budget,
//! the faults (each costs one: [`is_fault`]). A mutant's run keeps only its menu of faults.
//!
//! The order of the list is part of the search (choice indices are recorded in the visited
//! table and replayed for traces): must not change it without expecting other state counts.

use super::{running, Bbwd, BmcMode, Item, Model, Mutant, World, LINKS, POOL};
use bbwd_core::pair::Role;

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

impl Model {
    /// Every transition enabled in `w`, the default first.
    pub fn choices(&self, w: &World) -> Vec<Choice> {
        let mut c = Vec::new();
        if self.first_ready(w).is_some() || self.next_time(w).is_some() {
            c.push(Choice::Next);
        }
        self.free_choices(w, &mut c);
        if w.faults >= self.cfg.faults {
            return c;
        }
        // Faults (each costs one from the budget).
        self.item_faults(w, &mut c);
        for n in 0..2u8 {
            self.node_faults(w, n, &mut c);
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

    /// Free choices: recoveries, and the delivery of what a fault held back.
    fn free_choices(&self, w: &World, c: &mut Vec<Choice>) {
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
    }

    /// Faults on the first pending items: a race, a lost, delayed or captured datagram, a
    /// failed hook or VIP step.
    fn item_faults(&self, w: &World, c: &mut Vec<Choice>) {
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
    }

    /// Faults of node `n` and its surroundings (power, BMC, bbwd, Bitbucket, witness, public
    /// link, operators), then the cuts of its outgoing links.
    fn node_faults(&self, w: &World, n: u8, c: &mut Vec<Choice>) {
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
