//! Known defects the model checker re-introduces to prove it can find them
//! (`scripts/model-check.sh --mutant NAME`). Compiled only with the `mutants` feature, which only
//! `agent/model` turns on; without it [`active`] is a constant `false` and every hook folds away.
//!
//! Each mutant is the exact defect a review found, re-enabled at the line that fixed it. One
//! mutant per process (the model checker runs one at a time).

/// The defects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Mutant {
    /// A restarted bbwd that finds Bitbucket (or the VIP, or the storage) still there does not
    /// resume: it boots as a node that serves nothing (route 1).
    AgentRestart = 1,
    /// A release in which a step failed still hands over (route 3).
    ReleaseFailedHandover = 2,
    /// One "off" reading confirms a fence (route 4).
    OneReadingFence = 3,
    /// Both nodes preferred: no tie-break, each takes itself for the winner (route 2).
    BothPreferred = 4,
    /// A packet that does not answer the receiver's current challenge counts as consent
    /// (route 6: a replayed hand-over accepted).
    ReplayedHandover = 5,
    /// One missed witness ping counts as isolation, and a standby whose peer is silent is
    /// re-evaluated only when a packet arrives (route 5: a takeover abandoned for good).
    WitnessOneMiss = 6,
}

#[cfg(feature = "mutants")]
static ACTIVE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Turns `m` on for this process (the model checker, before it builds any node).
#[cfg(feature = "mutants")]
pub fn set(m: Option<Mutant>) {
    ACTIVE.store(
        m.map_or(0, |m| m as u8),
        std::sync::atomic::Ordering::Relaxed,
    );
}

/// Whether defect `m` is re-introduced.
#[inline]
pub fn active(m: Mutant) -> bool {
    #[cfg(feature = "mutants")]
    {
        ACTIVE.load(std::sync::atomic::Ordering::Relaxed) == m as u8
    }
    #[cfg(not(feature = "mutants"))]
    {
        let _ = m;
        false
    }
}
