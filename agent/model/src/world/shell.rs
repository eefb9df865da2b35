//! The shell semantics the checker assumes (`agent/src/daemon/`, `agent/src/cluster/`): a node's
//! actions carried out. `Spawn`, `Check`, `CheckFree` and `Signal` are answered at once from the
//! process state (fed back before the next action); BMC, hook and VIP work becomes pending
//! items; `SendHeartbeats` encodes every version on every link; `SelfFence` / `StopPetting` arm
//! the watchdog reset.
//!
//! Must not: decide anything a node decides; a `Spawn` while a group lives and an unjustified
//! `before_start` are reported as violations here, where they happen.

use std::collections::VecDeque;
use std::time::Duration;

use bbwd_core::heartbeat as hb;
use bbwd_core::machine::{self, detail, Sig};
use bbwd_core::node::{Action, Input};
use bbwd_core::pair::Hooks;
use bbwd_core::probe::{BbState, ExitKind, ProbeFailure, ProbeOutcome};

use super::{Bb, Bbwd, Cause, Env, Item, Model, Packet, Violation, World, LINKS, MS};

impl Model {
    /// Feeds `input` to node `n` (if it is powered and bbwd runs) and carries out what it
    /// returns.
    pub(super) fn feed(&self, w: &mut World, n: u8, input: Input, v: &mut Option<Violation>) {
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
    pub(super) fn take(
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

    /// Carries out one action of node `n`; `cause` is what the step that returned it was fed
    /// (what a takeover it starts must be justified by).
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
            Action::Sup(machine::Action::Spawn) => self.spawn(w, n, sync, v),
            Action::Sup(machine::Action::Check) => {
                let probe = probe(&w.env[ni], now);
                sync.push_back(Input::Sup(machine::Input::Checked { probe, db_up: None }));
            }
            Action::Sup(machine::Action::Signal(sig)) => signal(&mut w.env[ni], sig, sync),
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
            Action::SendHeartbeats => self.send_heartbeats(w, n),
        }
    }

    /// `Spawn`: a new Bitbucket group (RUNNING after 300 ms); a second `Spawn` while a group
    /// lives is a violation.
    fn spawn(&self, w: &mut World, n: u8, sync: &mut VecDeque<Input>, v: &mut Option<Violation>) {
        let now = w.now;
        let e = &mut w.env[n as usize];
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

    /// `SendHeartbeats`: every version on every link, through the cuts, as pending deliveries
    /// (wall clock: a fixed epoch plus the virtual time).
    fn send_heartbeats(&self, w: &mut World, n: u8) {
        let now = w.now;
        let ni = n as usize;
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

/// `Check`: what Bitbucket's `/status` answers now (refused, timed out, STARTING or RUNNING).
fn probe(e: &Env, now: Duration) -> ProbeOutcome {
    match e.bb {
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
    }
}

/// `Signal`: TERM kills unless hung or unkillable, KILL unless unkillable; `Exited` (unless the
/// leader is already gone) then `Gone`. Nothing left: `Gone` at once.
fn signal(e: &mut Env, sig: Sig, sync: &mut VecDeque<Input>) {
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
