//! The pair's event kinds ([`Kind`]): their names in status and `BBWD_EVENT`, and how much each
//! matters to an operator.
//!
//! Must not: decide when an event is emitted (the machine does) or what its detail says.

/// Pair events (the `kind` of status events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    PeerLost,
    PeerSeen,
    Fence,
    Fenced,
    FenceFailed,
    PeerConfirmedDown,
    TakeoverStep,
    TakeoverFailed,
    Resumed,
    Active,
    Release,
    ReleaseStep,
    ReleaseError,
    Standby,
    SelfFence,
    SwitchoverRefused,
    Isolated,
    VipConflict,
    BothPreferred,
    NeitherPreferred,
    FailoverPaused,
    BmcMismatch,
    BmcMatches,
    PublicLink,
    LinkDown,
    LinkUp,
    PeerRestarted,
    PeerPowerOff,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::PeerLost => "peer_lost",
            Kind::PeerSeen => "peer_seen",
            Kind::Fence => "fence",
            Kind::Fenced => "fenced",
            Kind::FenceFailed => "fence_failed",
            Kind::PeerConfirmedDown => "peer_confirmed_down",
            Kind::TakeoverStep => "takeover_step",
            Kind::TakeoverFailed => "takeover_failed",
            Kind::Resumed => "resumed",
            Kind::Active => "active",
            Kind::Release => "release",
            Kind::ReleaseStep => "release_step",
            Kind::ReleaseError => "release_error",
            Kind::Standby => "standby",
            Kind::SelfFence => "self_fence",
            Kind::SwitchoverRefused => "switchover_refused",
            Kind::Isolated => "isolated",
            Kind::VipConflict => "vip_conflict",
            Kind::BothPreferred => "both_preferred",
            Kind::NeitherPreferred => "neither_preferred",
            Kind::FailoverPaused => "failover_paused",
            Kind::BmcMismatch => "fencing_bmc_mismatch",
            Kind::BmcMatches => "fencing_bmc_matches",
            Kind::PublicLink => "public_link",
            Kind::LinkDown => "link_down",
            Kind::LinkUp => "link_up",
            Kind::PeerRestarted => "peer_restarted",
            Kind::PeerPowerOff => "peer_power_off",
        }
    }

    /// How much it matters to an operator (`BBWD_SEVERITY`): critical when the service is down
    /// or the pair's safety needs a person (a fence that fails, a takeover that cannot finish, a
    /// release that failed, a BMC that is not the peer's, two preferred nodes); warning when a
    /// redundancy is lost or a fence happened (the fenced node needs a look).
    pub fn severity(self) -> crate::severity::Severity {
        use crate::severity::Severity;
        match self {
            Kind::FenceFailed
            | Kind::TakeoverFailed
            | Kind::ReleaseError
            | Kind::SelfFence
            | Kind::Isolated
            | Kind::VipConflict
            | Kind::BothPreferred
            | Kind::BmcMismatch => Severity::Critical,
            Kind::Fenced | Kind::PeerConfirmedDown | Kind::PeerPowerOff => Severity::Warning,
            k if k.is_problem() => Severity::Warning,
            _ => Severity::Info,
        }
    }

    /// Events that mean something is wrong (a WARNING or worse; logged as warnings).
    pub fn is_problem(self) -> bool {
        matches!(
            self,
            Kind::PeerLost
                | Kind::FenceFailed
                | Kind::TakeoverFailed
                | Kind::ReleaseError
                | Kind::SelfFence
                | Kind::SwitchoverRefused
                | Kind::Isolated
                | Kind::VipConflict
                | Kind::BothPreferred
                | Kind::NeitherPreferred
                | Kind::FailoverPaused
                | Kind::BmcMismatch
                | Kind::PublicLink
                | Kind::LinkDown
        )
    }
}
