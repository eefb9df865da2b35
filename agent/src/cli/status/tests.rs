//! The verdict and the human form of status reports.

use super::{render, verdict};
use crate::exit::Plugin;
use crate::status::{sample, Clock, LoadBalancer, Status};

const OK: Plugin = Plugin::Ok;
const WARNING: Plugin = Plugin::Warning;
const CRITICAL: Plugin = Plugin::Critical;
const UNKNOWN: Plugin = Plugin::Unknown;

#[test]
fn an_unsynchronised_clock_warns_on_a_mirror_node_only() {
    let unsynced = Some(Clock {
        synchronized: false,
        max_error_ms: 16_000,
    });
    let synced = Some(Clock {
        synchronized: true,
        max_error_ms: 3,
    });
    // (mode, state, clock) => exit code
    let cases = [
        ("mirror", "running", unsynced.clone(), WARNING),
        ("mirror", "running", synced.clone(), OK),
        ("mirror", "running", None, OK),
        ("single", "running", unsynced.clone(), OK),
        ("pair", "running", unsynced.clone(), OK),
        // Worse verdicts are not softened by the clock.
        ("mirror", "failed", unsynced.clone(), CRITICAL),
        ("mirror", "maintenance", synced, WARNING),
    ];
    for (mode, state, clock, want) in cases {
        let mut s = sample();
        s.mode = mode.into();
        s.state = state.into();
        s.clock = clock.clone();
        assert_eq!(verdict(&s), want, "{mode} {state} {clock:?}");
    }
    let mut s = sample();
    s.mode = "mirror".into();
    s.clock = unsynced;
    s.load_balancer = Some(LoadBalancer {
        address: "0.0.0.0:7777".into(),
        reply: "up ready #RUNNING".into(),
        state: "up".into(),
    });
    let text = render(&s);
    assert!(text.starts_with("BBWD WARNING - bb1 running"), "{text}");
    assert!(text.contains("clock        NOT synchronised"), "{text}");
    assert!(
        text.contains("haproxy      up: agent check on 0.0.0.0:7777 answers `up ready #RUNNING`"),
        "{text}"
    );
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["clock"]["synchronized"], false);
    assert_eq!(v["clock"]["max_error_ms"], 16_000);
    assert_eq!(v["load_balancer"]["state"], "up");
    // Reports from an older daemon (without these fields) still parse.
    let mut old = serde_json::to_value(sample()).unwrap();
    let o = old.as_object_mut().unwrap();
    o.remove("clock");
    o.remove("load_balancer");
    let back: Status = serde_json::from_value(old).unwrap();
    assert_eq!(back.clock, None);
}

#[test]
fn pair_conditions_that_need_an_operator_are_critical_and_pauses_are_warnings() {
    let mut st = sample();
    st.mode = "pair".into();
    st.role = "standby".into();
    st.state = "stopped".into();
    st.peer = Some(serde_json::json!({"alive": true, "links_up": 2, "links_total": 2}));
    let with = |k: &str, v: serde_json::Value| {
        let mut s = st.clone();
        s.fencing = Some(serde_json::json!({ "session_up": true, k: v }));
        verdict(&s)
    };
    assert_eq!(with("blocked", false.into()), OK);
    assert_eq!(with("takeover_blocked", true.into()), CRITICAL);
    assert_eq!(with("bmc_mismatch", true.into()), CRITICAL);
    assert_eq!(with("preference_conflict", "both".into()), CRITICAL);
    assert_eq!(with("preference_conflict", "neither".into()), WARNING);
    assert_eq!(with("failover_paused", true.into()), WARNING);
    // A Redfish fencer whose certificate is not verified (insecure = true): WARNING, and
    // the human form says why; no warning (null) is OK.
    assert_eq!(with("tls_warning", serde_json::Value::Null), OK);
    assert_eq!(
        with("tls_warning", "TLS certificate NOT verified".into()),
        WARNING
    );
    let mut s = st.clone();
    s.fencing = Some(serde_json::json!({ "session_up": true, "tls_warning": "NOT verified" }));
    assert!(
        render(&s).contains("FENCING WARNING: NOT verified"),
        "{}",
        render(&s)
    );
    // Several devices: each one's health is shown, in order.
    s.fencing = Some(serde_json::json!({ "session_up": false, "devices": [
        { "bmc": "Redfish https://10.0.1.2:443", "session_up": true, "last_error": null },
        { "bmc": "BMC 10.0.2.2:623", "session_up": false, "last_error": "unreachable: no answer" },
    ] }));
    let text = render(&s);
    assert!(
        text.contains("device 1 Redfish https://10.0.1.2:443 up")
            && text.contains("device 2 BMC 10.0.2.2:623 DOWN: unreachable: no answer"),
        "{text}"
    );
}

/// A healthy standby printed "BBWD OK - bb2 stopped", which reads like the single-node
/// CRITICAL state: the headline names the role in pair mode.
#[test]
fn a_healthy_standby_headline_says_standby() {
    let mut st = sample();
    st.mode = "pair".into();
    st.role = "standby".into();
    st.state = "stopped".into();
    st.bitbucket.pid = None;
    st.bitbucket.last_check = None;
    st.peer = Some(serde_json::json!({"alive": true, "links_up": 2, "links_total": 2}));
    st.fencing = Some(serde_json::json!({ "session_up": true }));
    let text = render(&st);
    let headline = text.lines().next().unwrap();
    assert!(
        headline.starts_with("BBWD OK - ")
            && headline.contains("stopped (standby: Bitbucket runs on the active node)"),
        "{headline}"
    );
}

#[test]
fn exit_codes_follow_the_monitoring_plugins_convention() {
    let cases = [
        ("running", "up", 0, true, OK),
        ("running", "up", 1, true, WARNING),
        ("starting", "up", 0, true, WARNING),
        ("correcting", "up", 0, true, WARNING),
        ("holding", "up", 0, true, WARNING),
        ("maintenance", "up", 0, true, WARNING),
        ("failed", "up", 0, true, CRITICAL),
        ("stopped", "up", 0, true, CRITICAL),
        ("running", "down", 0, true, CRITICAL),
        ("stopped", "unknown", 0, true, UNKNOWN),
        ("running", "up", 0, false, CRITICAL),
        ("bogus", "up", 0, true, UNKNOWN),
    ];
    for (state, daemon, failures, petting, want) in cases {
        let mut s = sample();
        s.state = state.into();
        s.daemon = daemon.into();
        s.bitbucket.consecutive_failures = failures;
        s.watchdog.petting = petting;
        assert_eq!(verdict(&s), want, "{state} {daemon} {failures} {petting}");
    }
}

#[test]
fn human_form_starts_with_the_verdict() {
    let s = sample();
    let text = render(&s);
    assert!(
        text.starts_with("BBWD OK - bb1 running: Bitbucket HTTP 200 RUNNING, pid 1234"),
        "{text}"
    );
    assert!(text.contains("start"));
}
