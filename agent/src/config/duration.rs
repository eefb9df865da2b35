//! Duration strings: an integer and a unit, `"250ms"`, `"15s"`, `"10m"`, `"1h"`, or several
//! from largest to smallest, `"1m30s"`.
//!
//! Owns: the one parser of a duration's text and the bound every duration setting shares
//! ([`MAX_DURATION`]).
//!
//! Must not: know keys or sections (the walk names the key in its problem), or guess a unit: a
//! bare `15` is refused with a hint, never read as seconds.

use std::time::Duration;

/// Longest duration any setting accepts: no timer in bbwd needs more than a week, and a bound
/// keeps `Instant + duration` from overflowing anywhere downstream.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

const DURATION_HELP: &str =
    "expected an integer followed by a unit (ms, s, m, h), e.g. \"250ms\", \"15s\", \"10m\", \"1m30s\"";

/// The units, largest first, with their length in milliseconds. In a combination each comes
/// once, in this order.
const UNITS_MS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

/// Parses a duration string: an integer followed by `ms`, `s`, `m` or `h` (`"250ms"`, `"15s"`,
/// `"10m"`); combinations like `"1m30s"` are accepted.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = |why: &str| format!("invalid duration \"{text}\": {why}");
    let too_long = || {
        let max_h = MAX_DURATION.as_secs() / 3600;
        invalid(&format!("too long (at most {max_h}h)"))
    };
    if text.is_empty() {
        return Err(invalid(DURATION_HELP));
    }
    let mut total_ms: u64 = 0;
    // Index in UNITS_MS of the previous unit: units must go from largest to smallest, once.
    let mut last_rank: Option<usize> = None;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid(DURATION_HELP));
        }
        let number: u64 = rest[..digits].parse().map_err(|_| too_long())?;
        let letters = rest[digits..]
            .bytes()
            .take_while(u8::is_ascii_alphabetic)
            .count();
        let unit = &rest[digits..digits + letters];
        rest = &rest[digits + letters..];
        let Some(rank) = UNITS_MS.iter().position(|(name, _)| *name == unit) else {
            return Err(invalid(&not_a_unit(number, unit, rest)));
        };
        if last_rank.is_some_and(|last| rank <= last) {
            return Err(invalid(
                "units must go from largest to smallest, each once, e.g. \"1m30s\"",
            ));
        }
        last_rank = Some(rank);
        total_ms = number
            .checked_mul(UNITS_MS[rank].1)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(too_long)?;
    }
    let duration = Duration::from_millis(total_ms);
    if duration > MAX_DURATION {
        return Err(too_long());
    }
    Ok(duration)
}

/// Why `unit`, after `number` and before `rest`, is not a unit.
fn not_a_unit(number: u64, unit: &str, rest: &str) -> String {
    match (unit, rest.as_bytes().first()) {
        ("", None) => {
            format!("missing unit after {number}: add ms, s, m or h (e.g. \"{number}s\")")
        }
        ("", Some(b'.')) => {
            "no fractions: use a smaller unit (e.g. \"1500ms\" for 1.5 s)".to_string()
        }
        _ => DURATION_HELP.to_string(),
    }
}
