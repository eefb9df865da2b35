//! `bbwd-model`: the bounded-exhaustive check of two real [`bbwd_core::node::Node`]s (the
//! production decision code, not a re-model) against a faulty world.
//!
//! # Theory of operation
//! **World** ([`world::World`]) = two `Node`s + the environment's truth per node: powered, bbwd
//! running / paused / down (systemd restarts it 100 ms after a crash), Bitbucket (pid, starting
//! → RUNNING after 300 ms, hung, leader exited, unkillable), the VIP, storage mounted, the
//! `state_dir` storage record, persisted `failed`/maintenance, the node's BMC mode, witness and
//! public link; plus `pending` (a FIFO of work the environment owes: datagrams in flight, BMC,
//! hook and VIP answers, ticks), delayed and captured datagrams, per-direction per-link cuts,
//! the virtual clock (`Instant` = a fixed base + offset), the faults used and when.
//!
//! **Transitions** ([`world::Choice`]): `Next` is the deterministic default (the first pending
//! item, else time jumps to the earliest deadline of either node or environment timer). Every
//! fault costs one from the budget (`--faults K`): race (process item k first), lose / delay /
//! capture (for replay) a datagram, fail a hook or VIP step, power off (through the BMC, or
//! total: the BMC dies too), the BMC unreachable or slow (acts, answer lost), bbwd crash
//! (restart with what still runs: adopted pid, VIP, storage record), bbwd pause, Bitbucket
//! crash / hang / unkillable / fails-to-start, cut one direction of a link or everything,
//! witness or public link down, maintenance on, `switchover`, `confirm-peer-down` (only while
//! the peer is truly off). Recoveries are free (power on, resume, heal, BMC truthful, witness
//! and link up, maintenance off, a late or replayed datagram). `preferred_active` on n1 only;
//! the mutant `both-preferred` covers the misconfiguration.
//!
//! **Shell semantics** (what `agent/src/daemon/` / `agent/src/cluster/` must do): `Spawn`, `Check`,
//! `CheckFree`, `Signal` are answered synchronously from the process state (TERM kills unless
//! hung, KILL unless unkillable; `Exited` then `Gone`); `Bmc` / `RunHooks` / `AddVip` /
//! `RemoveVip` become pending items; the BMC acts on the *peer*; `before_start` sets storage
//! and its record at once (a failed hook may have mounted), `after_stop` ok clears both;
//! `SendHeartbeats` encodes every version on every link; `SelfFence` / `StopPetting` reset the
//! node after the watchdog timeout (1 s); power-on boots bbwd 200 ms later with a fresh run
//! (boot id from a per-node run counter, first sequence from the clock).
//!
//! **Abstracted**: one BMC answer is instantaneous (slowness = its answer lost); hooks and VIP
//! steps take no time unless raced; the database is not configured; no `cycle` fencing, no
//! shutdown, no v1-only peer; timings are scaled down (hb 200 ms, peer_timeout 600 ms,
//! fence_delay 700 ms, boot_wait 600 ms, fencing timeout 400 ms, steps 400 ms).
//!
//! **Invariants** (every state): (1) never Bitbucket, the VIP, or storage on both powered nodes
//! (the world's truth, not beliefs); a second `Spawn` while a group lives is a violation too;
//! (2) every `before_start` (takeover) is justified: after a fence answer the peer is really
//! off; after `confirm-peer-down` the peer is really off; on consent the last word heard is from
//! the peer's latest run and the peer really serves nothing; (3) no spin: after a `Tick` at t a
//! node's `next_deadline()` is later than t. **Progress** (end of each trace, 6 s horizon): if
//! the last fault/recovery was >= 4 s ago, nothing needs an operator (fails-to-start,
//! unkillable), every BMC truthful, links healed, no maintenance/pause, then exactly one node
//! has Bitbucket healthy and the VIP.
//!
//! **Search** ([`search`]): breadth-first by fault count, then depth; visited = 64-bit
//! fingerprints with parent and choice index; traces rebuilt by replay. Then seeded random
//! walks (a fault with probability 1/20 per step, same budget) reach the deeper multi-fault
//! scenarios (a failover, then a restart, then a race) a breadth-first search of the same size
//! cannot. Mutants ([`world::Mutant`]) re-enable a known defect in the core itself
//! (`bbwd_core::mutant`, feature `mutants`, compiled into this crate only), each run with a
//! narrow fault menu so the CI budget reaches it. The storage record is per kernel boot (a
//! power-on finds none); `--persistent-record` re-creates the first defect this checker found.

pub mod search;
pub mod world;

#[cfg(test)]
mod tests {
    use crate::search::{self, Limits};
    use crate::world::{Config, Model, Mutant};

    /// One test (not several): a mutant is process-wide (`bbwd_core::mutant`), so the checks
    /// that set one must not run in parallel with those that need none.
    #[test]
    fn the_fault_free_space_is_complete_and_clean_and_a_mutant_is_caught() {
        bbwd_core::mutant::set(None);
        let m = Model::new(Config::new(0, None));
        let r = search::run(
            &m,
            &Limits {
                max_states: 100_000,
                max_depth: u32::MAX,
                first: false,
            },
        );
        assert!(r.complete, "{} states", r.states);
        assert_eq!(r.violation_count, 0, "{:?}", r.violations);

        let mutant = Mutant::BothPreferred;
        bbwd_core::mutant::set(mutant.core());
        let m = Model::new(Config::new(0, Some(mutant)));
        let r = search::run(
            &m,
            &Limits {
                max_states: 100_000,
                max_depth: u32::MAX,
                first: true,
            },
        );
        bbwd_core::mutant::set(None);
        assert_eq!(r.violation_count, 1);
        assert!(r.violations[0].contains("VIOLATION"), "{}", r.violations[0]);
        assert!(r.violations[0].contains("\n1. "), "a numbered trace");
    }
}
