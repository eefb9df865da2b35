//! What one `/status` answer means to the agent, pure (seeds: "Monitoring frequency" and the
//! status page's states).
//!
//! Owns the classification (healthy, starting, unhealthy) and `monitor`'s answer for a running
//! process. Must not: probe (the actions do) or look at anything but `/status`: MAINTENANCE is
//! healthy, so a backup never triggers a failover.

use bbwd_platform::http::{BbState, ProbeOutcome};

use super::OcfCode;

/// What one `/status` answer means to the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// 200 with RUNNING, MAINTENANCE (e.g. a backup) or FIRST_RUN.
    Healthy,
    /// 503 STARTING.
    Starting,
    /// Anything else: another state, 404, 500, garbage, a timeout, a refused connection.
    Unhealthy,
}

pub fn classify(outcome: &ProbeOutcome) -> Health {
    match *outcome {
        ProbeOutcome::Reply {
            http_status: 200,
            state: Some(BbState::Running | BbState::Maintenance | BbState::FirstRun),
        } => Health::Healthy,
        ProbeOutcome::Reply {
            http_status: 503,
            state: Some(BbState::Starting),
        } => Health::Starting,
        _ => Health::Unhealthy,
    }
}

/// `monitor`'s answer for a running process: STARTING is fine only within the start window.
pub fn monitor_code(health: Health, in_start_window: bool) -> OcfCode {
    match health {
        Health::Healthy => OcfCode::Success,
        Health::Starting if in_start_window => OcfCode::Success,
        Health::Starting | Health::Unhealthy => OcfCode::ErrGeneric,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bbwd_platform::http::ProbeFailure;

    fn reply(code: u16, state: Option<BbState>) -> ProbeOutcome {
        ProbeOutcome::Reply {
            http_status: code,
            state,
        }
    }

    #[test]
    fn monitor_follows_the_seeds() {
        use BbState::*;
        for healthy in [Running, Maintenance, FirstRun] {
            assert_eq!(classify(&reply(200, Some(healthy))), Health::Healthy);
            assert_eq!(monitor_code(Health::Healthy, false), OcfCode::Success);
        }
        assert_eq!(classify(&reply(503, Some(Starting))), Health::Starting);
        assert_eq!(monitor_code(Health::Starting, true), OcfCode::Success);
        assert_eq!(monitor_code(Health::Starting, false), OcfCode::ErrGeneric);
        for bad in [
            reply(503, Some(Stopping)),
            reply(500, Some(Error)),
            reply(404, None),
            reply(200, Some(Other)),
            reply(200, None),
            reply(503, Some(Running)),
            ProbeOutcome::Failed(ProbeFailure::Refused),
            ProbeOutcome::Failed(ProbeFailure::Timeout),
            ProbeOutcome::Failed(ProbeFailure::Malformed),
        ] {
            assert_eq!(classify(&bad), Health::Unhealthy, "{bad:?}");
        }
        assert_eq!(monitor_code(Health::Unhealthy, true), OcfCode::ErrGeneric);
    }
}
