//! How much an event matters to an operator: `BBWD_SEVERITY` for `notify.command`, and the
//! `severity` field of the event log, so that a mail or pager script can skip the routine
//! (`healthy`, `link_up`) and page on what needs a person.
//!
//! Owns: the three levels and their words. Each event vocabulary (the supervisor's
//! [`crate::machine::EventKind`], the pair's [`crate::pair::Kind`]) says which level each of its
//! kinds has, next to its list of kinds, so a new kind cannot be added without one.
//!
//! | level | meaning | e.g. |
//! |---|---|---|
//! | `info` | routine; nothing to do | `start`, `healthy`, `standby`, `link_up` |
//! | `warning` | something went wrong and bbwd is correcting it, or a redundancy is lost | `crash`, `peer_lost`, `link_down`, `fenced` |
//! | `critical` | service down or at risk until a person acts | `failed`, `unkillable`, `fence_failed`, `takeover_failed`, `both_preferred` |

/// How much an event matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Severity;
    use crate::machine::EventKind;
    use crate::pair::Kind;

    /// A mail script that skips `info` still hears of every problem: whatever is logged as a
    /// warning is at least `warning`, and what needs a person is `critical`.
    #[test]
    fn problems_are_never_info_and_what_needs_a_person_is_critical() {
        for k in [
            EventKind::CheckFailed,
            EventKind::Crash,
            EventKind::Oome,
            EventKind::DbDown,
            EventKind::LoopStall,
            EventKind::WatchdogResetLastBoot,
        ] {
            assert_eq!(k.severity(), Severity::Warning, "{}", k.as_str());
        }
        for k in [
            EventKind::Failed,
            EventKind::RestartsExhausted,
            EventKind::Unkillable,
            EventKind::StartFailed,
            EventKind::Escaped,
        ] {
            assert!(k.is_problem());
            assert_eq!(k.severity(), Severity::Critical, "{}", k.as_str());
        }
        for k in [EventKind::Healthy, EventKind::Start, EventKind::DbUp] {
            assert_eq!(k.severity(), Severity::Info, "{}", k.as_str());
        }
        for k in [
            Kind::FenceFailed,
            Kind::TakeoverFailed,
            Kind::ReleaseError,
            Kind::BothPreferred,
            Kind::BmcMismatch,
            Kind::SelfFence,
        ] {
            assert!(k.is_problem());
            assert_eq!(k.severity(), Severity::Critical, "{}", k.as_str());
        }
        for k in [
            Kind::PeerLost,
            Kind::LinkDown,
            Kind::Fenced,
            Kind::FailoverPaused,
        ] {
            assert_eq!(k.severity(), Severity::Warning, "{}", k.as_str());
        }
        for k in [Kind::LinkUp, Kind::Active, Kind::Standby, Kind::PeerSeen] {
            assert!(!k.is_problem());
            assert_eq!(k.severity(), Severity::Info, "{}", k.as_str());
        }
        assert_eq!(
            [Severity::Info, Severity::Warning, Severity::Critical].map(Severity::as_str),
            ["info", "warning", "critical"]
        );
    }
}
