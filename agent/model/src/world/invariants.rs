//! The invariants (stated in the crate doc): (1) never Bitbucket, the VIP or storage on both
//! powered nodes, on the world's truth; (2) every `before_start` justified by a proof that is
//! true in the world; and progress at the end of a trace (faults over long enough, exactly one
//! node serving).
//!
//! Must not: trust a node's beliefs; only the environment's truth and the ghost facts count.

use super::{running, Bbwd, BmcMode, Cause, Env, Model, Violation, World};

impl Model {
    /// Invariant 2: a takeover (before_start hooks) only on a proof that is true in the world.
    pub(super) fn justify(&self, w: &World, n: u8, cause: Cause, v: &mut Option<Violation>) {
        let peer = &w.env[1 - n as usize];
        let bad = match cause {
            Cause::Fence => peer
                .powered
                .then(|| "after a fence reported confirmed, yet the peer is powered".to_string()),
            Cause::Operator => peer
                .powered
                .then(|| "on confirm-peer-down, yet the peer is powered".to_string()),
            Cause::Packet | Cause::Other => {
                let nd = running(&w.env[n as usize]).unwrap();
                let last = nd.tracker().and_then(|t| t.last().copied());
                let serving = peer.powered && (peer.bb.is_some() || peer.vip || peer.storage);
                match last {
                    None => Some("on consent, but nothing was ever heard".into()),
                    // The word must come from the peer's latest run (it may have lost power since:
                    // then it serves nothing, which is what it said), or at least answer this
                    // node's current challenge: a run that died after answering it said the truth
                    // when it answered, and its successor has not served since (that would need a
                    // proof of its own, checked when it happens).
                    Some(h)
                        if h.boot_id != peer.boot_id
                            && (serving
                                || nd.tracker().is_none_or(|t| h.echo != t.challenge())) =>
                    {
                        Some(format!("on the word of a run of the peer that is not its current one (heard boot {:02x}{:02x}, peer's run {:02x}{:02x}, peer powered {})", h.boot_id[1], h.boot_id[2], peer.boot_id[1], peer.boot_id[2], peer.powered))
                    }
                    Some(_) if serving => Some("on consent, while the peer really serves".into()),
                    Some(_) => None,
                }
            }
        };
        if let (Some(what), None) = (bad, v.as_ref()) {
            *v = Some(Violation {
                what: format!("n{} takes over unjustified: {what}", n + 1),
            });
        }
    }

    /// Invariant 1, on the world's truth (not the nodes' beliefs).
    pub(super) fn safety(&self, w: &World) -> Option<Violation> {
        let [a, b] = &w.env;
        if !(a.powered && b.powered) {
            return None;
        }
        let what = if a.bb.is_some() && b.bb.is_some() {
            "Bitbucket runs on both nodes"
        } else if a.vip && b.vip {
            "the VIP is on both nodes"
        } else if a.storage && b.storage {
            "before_start hooks (storage) in effect on both nodes"
        } else if serving(a) && serving(b) {
            "both nodes serve (Bitbucket, VIP or storage)"
        } else {
            return None;
        };
        Some(Violation { what: what.into() })
    }

    /// Progress, at the end of a trace: the last fault at least `progress_bound` ago, every
    /// fault healed, one healthy node with a way to the other's BMC (or the other off) ⇒
    /// exactly one node serves (Bitbucket healthy and the VIP held).
    pub(super) fn progress(&self, w: &World) -> Option<Violation> {
        if w.needs_operator || w.now < w.last_fault + self.cfg.progress_bound {
            return None;
        }
        if w.cut.iter().flatten().any(|&x| x) || !w.late.is_empty() {
            return None;
        }
        // A BMC that does not answer (or a node lost with its BMC) pauses failover until an
        // operator confirms: the Theory of Operation's "fence that cannot be confirmed".
        if w.env.iter().any(|e| e.bmc != BmcMode::Truthful) {
            return None;
        }
        for e in &w.env {
            if e.powered
                && (!e.witness_ok
                    || !e.public_up
                    || e.bmc != BmcMode::Truthful
                    || !matches!(e.bbwd, Bbwd::Running(_))
                    || running(e).is_some_and(|nd| {
                        let v = nd.machine().view();
                        v.maintenance.is_some() || v.failed.is_some()
                    }))
            {
                return None;
            }
        }
        if !w.env.iter().any(|e| e.powered) {
            return None;
        }
        let full =
            |e: &Env| e.powered && e.vip && e.bb.is_some_and(|bb| !bb.hung && !bb.leader_gone);
        let n = w.env.iter().filter(|e| full(e)).count();
        (n != 1).then(|| Violation {
            what: format!(
                "progress: faults over for {:?}, yet {} nodes serve",
                w.now - w.last_fault,
                n
            ),
        })
    }
}

fn serving(e: &Env) -> bool {
    e.bb.is_some() || e.vip || e.storage
}
