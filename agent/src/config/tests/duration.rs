//! `parse_duration`: every unit, their combinations, and why a bad one is refused.

use super::*;
use crate::config::duration::MAX_DURATION;

#[test]
fn durations_in_every_unit_and_combination() {
    let cases = [
        ("250ms", Duration::from_millis(250)),
        ("15s", Duration::from_secs(15)),
        ("10m", Duration::from_secs(600)),
        ("1h", Duration::from_secs(3600)),
        ("1m30s", Duration::from_secs(90)),
        ("1h2m3s4ms", Duration::from_millis(3_723_004)),
        ("0s", Duration::ZERO),
        ("168h", MAX_DURATION),
    ];
    for (text, want) in cases {
        assert_eq!(parse_duration(text), Ok(want), "{text}");
    }
}

#[test]
fn bad_durations_say_why() {
    let cases = [
        ("15x", "expected an integer followed by a unit"),
        ("15", "missing unit after 15"),
        ("", "expected an integer"),
        ("s", "expected an integer"),
        ("1.5s", "no fractions"),
        ("-1s", "expected an integer"),
        (" 15s", "expected an integer"),
        ("15 s", "expected an integer"),
        ("30s1m", "largest to smallest"),
        ("1s1s", "largest to smallest"),
        ("169h", "too long"),
        ("99999999999999999999s", "too long"),
        ("18446744073709551615h", "too long"),
    ];
    for (text, needle) in cases {
        let err = parse_duration(text).unwrap_err();
        assert!(
            err.starts_with(&format!("invalid duration \"{text}\": ")),
            "{err}"
        );
        assert!(err.contains(needle), "{text}: {err}");
    }
}
