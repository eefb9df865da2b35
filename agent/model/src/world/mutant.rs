//! The defects the checker must find ([`Mutant`]): each re-enables a known bug in the core
//! (`bbwd_core::mutant`) or a misconfiguration, with the narrow menu of faults that reaches it
//! within the CI budget.
//!
//! Must not: change what an unmutated run explores.

use super::{BmcMode, Choice};

/// Defects re-introduced on purpose (each must make the checker fail).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mutant {
    /// A restarted bbwd is not told what still runs (`Boot::default()`), as the old shell did.
    AgentRestart,
    /// A failed `RemoveVip` is reported as done: the release counts as clean and hands over.
    ReleaseFailedHandover,
    /// The peer's BMC acknowledges power-off without acting and reads "off" once: one reading.
    OneReadingFence,
    /// The witness counts as unreachable after one missed ping.
    WitnessOneMiss,
    /// Both nodes preferred and both believe their name sorts first (no working tie-break).
    BothPreferred,
    /// The shell reuses the boot id across runs: a captured word of the peer is fresh again.
    ReplayedHandover,
}

impl Mutant {
    pub const ALL: [Mutant; 6] = [
        Mutant::AgentRestart,
        Mutant::ReleaseFailedHandover,
        Mutant::OneReadingFence,
        Mutant::WitnessOneMiss,
        Mutant::BothPreferred,
        Mutant::ReplayedHandover,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Mutant::AgentRestart => "agent-restart",
            Mutant::ReleaseFailedHandover => "release-failed-handover",
            Mutant::OneReadingFence => "one-reading-fence",
            Mutant::WitnessOneMiss => "witness-one-miss",
            Mutant::BothPreferred => "both-preferred",
            Mutant::ReplayedHandover => "replayed-handover",
        }
    }
    pub fn about(self) -> &'static str {
        match self {
            Mutant::AgentRestart => "a restarted bbwd that finds Bitbucket/VIP/storage still there does not resume (boots as not serving)",
            Mutant::ReleaseFailedHandover => "a release in which a step failed still hands over",
            Mutant::OneReadingFence => "one off reading (a stale one) taken as a confirmed fence",
            Mutant::WitnessOneMiss => "one missed witness ping is isolation, and a silent peer is re-evaluated only on packets: a takeover abandoned for good",
            Mutant::BothPreferred => "both nodes preferred_active and no tie-break: each takes itself for the winner",
            Mutant::ReplayedHandover => "a packet that does not answer the current challenge counts as consent: a replayed hand-over accepted",
        }
    }
    /// The faults a mutant's run injects (a narrower menu reaches the defect's scenario within
    /// a CI budget; the full menu would find it too, later).
    pub fn menu(self, c: Choice) -> bool {
        match self {
            Mutant::AgentRestart => {
                matches!(
                    c,
                    Choice::BbwdCrash(_) | Choice::PowerOff { total: false, .. }
                )
            }
            Mutant::ReleaseFailedHandover => matches!(c, Choice::Switchover(_) | Choice::Fail(_)),
            Mutant::OneReadingFence => {
                matches!(
                    c,
                    Choice::Pause(_) | Choice::BmcMode(_, BmcMode::Lying { .. })
                )
            }
            Mutant::WitnessOneMiss => matches!(
                c,
                Choice::Witness(..) | Choice::PowerOff { total: false, .. }
            ),
            Mutant::BothPreferred => false,
            Mutant::ReplayedHandover => {
                matches!(c, Choice::Dup(_) | Choice::PowerOff { total: false, .. })
            }
        }
    }
    /// The core defect this mutant re-enables (`bbwd_core::mutant`), if it is one (the witness
    /// mutant is a setting: one miss counts).
    pub fn core(self) -> Option<bbwd_core::mutant::Mutant> {
        use bbwd_core::mutant::Mutant as C;
        match self {
            Mutant::AgentRestart => Some(C::AgentRestart),
            Mutant::ReleaseFailedHandover => Some(C::ReleaseFailedHandover),
            Mutant::OneReadingFence => Some(C::OneReadingFence),
            Mutant::BothPreferred => Some(C::BothPreferred),
            Mutant::ReplayedHandover => Some(C::ReplayedHandover),
            Mutant::WitnessOneMiss => Some(C::WitnessOneMiss),
        }
    }
    pub fn parse(s: &str) -> Option<Mutant> {
        Mutant::ALL.into_iter().find(|m| m.name() == s)
    }
}
