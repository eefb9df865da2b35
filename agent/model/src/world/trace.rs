//! Counterexamples for people: one line per node for a state ([`Model::describe`]; the pair's
//! state too with `MODEL_DEBUG`), and each choice as a trace line ([`Model::label`]), with
//! datagrams decoded.
//!
//! Must not: change the world (labels are computed, never applied).

use std::fmt::Write as _;

use bbwd_core::heartbeat::Key;

use super::{Bbwd, Choice, Item, Model, Packet, World};

impl Model {
    /// One line per node for traces.
    pub fn describe(&self, w: &World) -> String {
        let mut s = String::new();
        for (i, e) in w.env.iter().enumerate() {
            let _ = write!(s, "   n{}: ", i + 1);
            if !e.powered {
                let _ = write!(
                    s,
                    "OFF{}",
                    if e.restart_at.is_some() {
                        " (booting)"
                    } else {
                        ""
                    }
                );
            } else {
                match &e.bbwd {
                    Bbwd::Down => s.push_str("bbwd down"),
                    Bbwd::Running(nd) | Bbwd::Paused(nd) => {
                        let v = nd.machine().view();
                        let _ = write!(
                            s,
                            "{}{} sup={} peer_alive={} fenced_self={}",
                            if matches!(e.bbwd, Bbwd::Paused(_)) {
                                "PAUSED "
                            } else {
                                ""
                            },
                            nd.role().map_or("-", |r| r.as_str()),
                            v.state.as_str(),
                            nd.pair().is_some_and(|p| p.peer().alive),
                            nd.self_fenced(),
                        );
                        if std::env::var_os("MODEL_DEBUG").is_some() {
                            let _ = write!(s, "\n      {:?}", nd.pair());
                        }
                    }
                }
                let _ = write!(
                    s,
                    " | world: bb={} vip={} storage={} bmc={:?}",
                    e.bb.map_or("-".to_string(), |b| format!(
                        "{}{}{}",
                        b.pid,
                        if b.hung { ",hung" } else { "" },
                        if b.leader_gone { ",exited" } else { "" }
                    )),
                    e.vip as u8,
                    e.storage as u8,
                    e.bmc
                );
            }
            let _ = write!(s, " record={} run={}", e.storage_record as u8, e.runs);
            s.push('\n');
        }
        s
    }

    /// A choice as a trace line.
    pub fn label(&self, w: &World, c: Choice) -> String {
        let item = |k: u8| {
            w.pending
                .get(k as usize)
                .map(|it| self.item_label(w, it))
                .unwrap_or_default()
        };
        match c {
            Choice::Next => match self.first_ready(w) {
                Some(k) => self.item_label(w, &w.pending[k]),
                None => format!("time -> {:?}", self.next_time(w).unwrap_or_default()),
            },
            Choice::Race(k) => format!("RACE: first {}", item(k)),
            Choice::Drop(k) => format!("LOSE {}", item(k)),
            Choice::Hold(k) => format!("DELAY {}", item(k)),
            Choice::Dup(k) => format!("CAPTURE+{}", item(k)),
            Choice::Fail(k) => format!("FAIL {}", item(k)),
            Choice::Late(j) => format!("late {}", pkt_label(&w.late[j as usize])),
            Choice::Replay(j) => format!("REPLAY {}", pkt_label(&w.captured[j as usize])),
            other => format!("{other:?}"),
        }
    }

    fn item_label(&self, _w: &World, it: &Item) -> String {
        match it {
            Item::Deliver(p) => format!("deliver {}", pkt_label(p)),
            Item::Bmc(n) => format!("n{} BMC answers", n + 1),
            Item::Hooks(n, h) => format!("n{} hooks {h:?} done", n + 1),
            Item::VipAdd(n) => format!("n{} VIP added", n + 1),
            Item::VipRemove(n) => format!("n{} VIP removed", n + 1),
            Item::Tick(n) => format!("n{} tick", n + 1),
        }
    }
}

fn pkt_label(p: &Packet) -> String {
    let d = Key::new(&[0x5a; 32]).unwrap().decode(&p.bytes);
    match d {
        Ok(h) => format!(
            "n{}->n{} link{} v{} run{} seq {} {:?}/{:?} flags {:#x} echo run{} ep{}",
            2 - p.to,
            p.to + 1,
            p.link,
            h.version,
            h.boot_id[2],
            h.sequence % 1_000_000,
            h.role,
            h.state,
            h.flags.bits(),
            h.echo.boot_id[2],
            h.echo.epoch
        ),
        Err(e) => format!("{p:?} ({e})"),
    }
}
