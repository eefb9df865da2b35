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

pub(super) const DURATION_HELP: &str =
    "expected an integer followed by a unit (ms, s, m, h), e.g. \"250ms\", \"15s\", \"10m\", \"1m30s\"";

/// Parses a duration string: an integer followed by `ms`, `s`, `m` or `h` (`"250ms"`, `"15s"`,
/// `"10m"`); combinations like `"1m30s"` are accepted.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = |why: &str| format!("invalid duration \"{text}\": {why}");
    if text.is_empty() {
        return Err(invalid(DURATION_HELP));
    }
    let bytes = text.as_bytes();
    let mut total_ms: u64 = 0;
    // Rank of the previous unit (h=0 .. ms=3): units must go from largest to smallest, once.
    let mut last_rank: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let digits_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == digits_start {
            return Err(invalid(DURATION_HELP));
        }
        let number: u64 = text[digits_start..i].parse().map_err(|_| {
            invalid(&format!(
                "too long (at most {}h)",
                MAX_DURATION.as_secs() / 3600
            ))
        })?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let (rank, unit_ms) = match &text[unit_start..i] {
            "h" => (0, 3_600_000),
            "m" => (1, 60_000),
            "s" => (2, 1_000),
            "ms" => (3, 1),
            "" if i == bytes.len() => {
                return Err(invalid(&format!(
                    "missing unit after {number}: add ms, s, m or h (e.g. \"{number}s\")"
                )))
            }
            "" if bytes[i] == b'.' => {
                return Err(invalid(
                    "no fractions: use a smaller unit (e.g. \"1500ms\" for 1.5 s)",
                ))
            }
            _ => return Err(invalid(DURATION_HELP)),
        };
        if last_rank.is_some_and(|last| rank <= last) {
            return Err(invalid(
                "units must go from largest to smallest, each once, e.g. \"1m30s\"",
            ));
        }
        last_rank = Some(rank);
        total_ms = number
            .checked_mul(unit_ms)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| {
                invalid(&format!(
                    "too long (at most {}h)",
                    MAX_DURATION.as_secs() / 3600
                ))
            })?;
    }
    let duration = Duration::from_millis(total_ms);
    if duration > MAX_DURATION {
        return Err(invalid(&format!(
            "too long (at most {}h)",
            MAX_DURATION.as_secs() / 3600
        )));
    }
    Ok(duration)
}
