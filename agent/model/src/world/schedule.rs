//! Scheduling: which pending item is ready (a paused bbwd's socket keeps its datagrams), the next
//! moment something is due (a node's deadline, a witness ping, systemd's restart, the watchdog),
//! and time moving to it (with the live-lock guard: too many items at one instant).
//!
//! Must not: skip a deadline a node asked for, except the instant it was already found spinning.

use std::time::Duration;

use super::{active, Bbwd, Item, Model, Mutant, Violation, World, MS, SAME_INSTANT_LIMIT};

impl Model {
    pub(super) fn ready(&self, w: &World, it: &Item) -> bool {
        let e = &w.env[it.node() as usize];
        match it {
            // A paused bbwd's socket keeps its datagrams until it runs again.
            Item::Deliver(_) => !matches!(e.bbwd, Bbwd::Paused(_)),
            _ => matches!(e.bbwd, Bbwd::Running(_)),
        }
    }

    pub(super) fn first_ready(&self, w: &World) -> Option<usize> {
        w.pending.iter().position(|it| self.ready(w, it))
    }

    /// The next moment something is due (within the horizon).
    pub(super) fn next_time(&self, w: &World) -> Option<Duration> {
        let mut t: Option<Duration> = None;
        let mut min = |x: Duration| t = Some(t.map_or(x, |y: Duration| y.min(x)));
        for (i, e) in w.env.iter().enumerate() {
            if let Some(nd) = active(e) {
                if let Some(d) = nd.next_deadline() {
                    let d = d.saturating_duration_since(self.base);
                    if !(d <= w.now && w.spun[i] == Some(w.now)) {
                        min(d);
                    }
                }
                if self.witness_on() {
                    min(e.next_ping);
                }
            }
            if let Some(r) = e.restart_at {
                min(r);
            }
            if let Some(r) = e.reset_at {
                min(r);
            }
        }
        t.filter(|&t| t <= self.cfg.horizon)
    }

    pub(super) fn witness_on(&self) -> bool {
        self.cfg.witness || self.cfg.mutant == Some(Mutant::WitnessOneMiss)
    }

    pub(super) fn advance(&self, w: &mut World, v: &mut Option<Violation>) {
        let Some(t) = self.next_time(w) else { return };
        if t > w.now {
            w.now = t;
            w.same_instant = 0;
        } else {
            w.same_instant += 1;
            if w.same_instant > SAME_INSTANT_LIMIT && v.is_none() {
                *v = Some(Violation {
                    what: "live-lock: a deadline that never passes".into(),
                });
            }
        }
        let now = w.now;
        for n in 0..2u8 {
            let ni = n as usize;
            if w.env[ni].reset_at.is_some_and(|r| r <= now) {
                // The hardware watchdog fires: the node resets (power-cycles).
                self.power_off(w, n);
                w.env[ni].restart_at = Some(now + MS(200));
                continue;
            }
            if w.env[ni].restart_at.is_some_and(|r| r <= now) {
                w.env[ni].restart_at = None;
                w.env[ni].powered = true;
                self.start_bbwd(w, n, v);
                continue;
            }
            let e = &w.env[ni];
            if let Some(nd) = active(e) {
                let due = (nd.next_deadline().is_some_and(|d| d <= self.at(now))
                    && w.spun[ni] != Some(now))
                    || (self.witness_on() && e.next_ping <= now);
                if due && !w.pending.contains(&Item::Tick(n)) {
                    w.pending.push_back(Item::Tick(n));
                }
            }
        }
    }
}
