//! Clocks. The monotonic clock (`Instant`) drives every decision; the wall clock only stamps
//! events for humans. Must not: sleep, or be read by the agent's state machine (time is passed
//! into it).
//!
//! Also reads (never sets) the kernel's clock-discipline state with `adjtimex(2)`: whether NTP
//! (chrony, ntpd, systemd-timesyncd) keeps the clock synchronised and its maximum error; the
//! mirror-farm seed asks for clocks in sync across mirrors ([`kernel_sync`]).
//!
//! # Invariants
//! * `rfc3339` never allocates and never panics: every `u64` input gives a 20-character string
//!   (times past 9999-12-31T23:59:59Z are clamped to that second).
//! * `kernel_sync` passes `modes = 0`: a read-only call that needs no privilege and changes
//!   nothing; it does not allocate.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Monotonic now. The one place the event loop reads time.
pub fn now() -> Instant {
    Instant::now()
}

/// Wall-clock time in milliseconds since the Unix epoch (for event stamps). A clock set before
/// 1970 reads as 0; one past `u64::MAX` ms (584 million years) saturates.
pub fn wall_ms() -> u64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => u64::try_from(since.as_millis()).unwrap_or(u64::MAX),
        Err(_) => 0,
    }
}

/// Last millisecond that fits the four-digit year of RFC 3339: 9999-12-31T23:59:59.999Z.
const MAX_WALL_MS: u64 = 253_402_300_799_999;

/// A wall-clock time formatted as RFC 3339 UTC with second precision
/// (`2026-11-22T14:00:00Z`). No allocation. Milliseconds are truncated, not rounded; times past
/// year 9999 are clamped to `9999-12-31T23:59:59Z`.
pub fn rfc3339(wall_ms: u64) -> heapless::String<24> {
    let secs = wall_ms.min(MAX_WALL_MS) / 1000;
    let days = secs / 86_400;
    let sec_of_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut out = heapless::String::new();
    // 20 characters always fit in 24: the write cannot fail, and a failure would only shorten
    // the stamp, so the result is deliberately ignored rather than unwrapped.
    let _ = core::fmt::Write::write_fmt(
        &mut out,
        format_args!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
            sec_of_day / 3600,
            sec_of_day % 3600 / 60,
            sec_of_day % 60
        ),
    );
    out
}

/// Proleptic Gregorian date of `days` since 1970-01-01 (Howard Hinnant's `civil_from_days`,
/// restricted to non-negative day counts). Returns (year, month 1..=12, day 1..=31).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so that the leap day is the last day of the (March-based)
    // year; 719_468 is the number of days from 0000-03-01 to 1970-01-01.
    let z = days + 719_468;
    let era = z / 146_097; // 400-year eras of 146_097 days
    let doe = z - era * 146_097; // day of era, 0..=146_096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era, 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of (March-based) year, 0..=365
    let mp = (5 * doy + 2) / 153; // March-based month, 0..=11
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// The kernel's view of clock synchronisation (`adjtimex(2)`, read-only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockSync {
    /// False when the kernel says the clock is not disciplined: `adjtimex` returned
    /// `TIME_ERROR`, or `STA_UNSYNC` is set in its status (no NTP daemon has set the clock, or
    /// the maximum error grew past 16 s).
    pub synchronized: bool,
    /// The kernel's maximum error estimate (`maxerror`), microseconds; never negative.
    pub max_error_us: u64,
}

impl ClockSync {
    /// Interprets `adjtimex`'s return value (clock state), `status` bits and `maxerror` (µs).
    pub fn from_timex(state: i32, status: i32, maxerror_us: i64) -> ClockSync {
        ClockSync {
            synchronized: state != libc::TIME_ERROR && status & libc::STA_UNSYNC == 0,
            max_error_us: u64::try_from(maxerror_us).unwrap_or(0),
        }
    }

    /// `max_error_us` in whole milliseconds (rounded up: an error bound is not understated).
    pub fn max_error_ms(&self) -> u64 {
        self.max_error_us.div_ceil(1000)
    }
}

/// Reads the kernel's clock-synchronisation state: `adjtimex(2)` with `modes = 0`.
pub fn kernel_sync() -> std::io::Result<ClockSync> {
    // SAFETY: `timex` is a plain C struct of integers (and padding) for which all-zero bytes
    // are a valid value; `modes = 0` asks the kernel to change nothing.
    let mut t: libc::timex = unsafe { std::mem::zeroed() };
    t.modes = 0;
    // SAFETY: `t` is a valid, exclusively borrowed `timex` for the duration of the call; the
    // kernel only writes within it.
    let state = unsafe { libc::adjtimex(&mut t) };
    if state < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // `c_long` is `i64` on 64-bit targets and `i32` on 32-bit ones.
    #[allow(clippy::useless_conversion)]
    let maxerror = i64::from(t.maxerror);
    Ok(ClockSync::from_timex(state, t.status, maxerror))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch() {
        assert_eq!(rfc3339(0).as_str(), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn milliseconds_are_truncated() {
        assert_eq!(rfc3339(999).as_str(), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_000).as_str(), "1970-01-01T00:00:01Z");
        assert_eq!(rfc3339(86_399_999).as_str(), "1970-01-01T23:59:59Z");
        assert_eq!(rfc3339(86_400_000).as_str(), "1970-01-02T00:00:00Z");
    }

    #[test]
    fn spec_example() {
        // `date -u -d @1795356000` => Sun Nov 22 14:00:00 UTC 2026
        assert_eq!(rfc3339(1_795_356_000_000).as_str(), "2026-11-22T14:00:00Z");
    }

    #[test]
    fn leap_days() {
        // 2000 is a leap year (divisible by 400): 2000-02-29 exists.
        assert_eq!(rfc3339(951_782_400_000).as_str(), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(951_868_799_000).as_str(), "2000-02-29T23:59:59Z");
        assert_eq!(rfc3339(951_868_800_000).as_str(), "2000-03-01T00:00:00Z");
        // 2024-02-29T12:34:56Z
        assert_eq!(rfc3339(1_709_210_096_000).as_str(), "2024-02-29T12:34:56Z");
        // 2100 is not a leap year: Feb 28 is followed by Mar 1.
        assert_eq!(rfc3339(4_107_456_000_000).as_str(), "2100-02-28T00:00:00Z");
        assert_eq!(rfc3339(4_107_542_400_000).as_str(), "2100-03-01T00:00:00Z");
    }

    #[test]
    fn year_boundaries() {
        assert_eq!(rfc3339(946_684_799_000).as_str(), "1999-12-31T23:59:59Z");
        assert_eq!(rfc3339(946_684_800_000).as_str(), "2000-01-01T00:00:00Z");
        // 2038-01-19T03:14:08Z: one second past the 32-bit time_t limit.
        assert_eq!(rfc3339(2_147_483_648_000).as_str(), "2038-01-19T03:14:08Z");
    }

    #[test]
    fn far_future_is_clamped_without_panicking() {
        assert_eq!(rfc3339(MAX_WALL_MS).as_str(), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(u64::MAX).as_str(), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn every_day_round_trips_through_the_date() {
        // Walk day by day from 1970 to 2400 and check the date advances like a calendar.
        let (mut y, mut m, mut d) = (1970u64, 1u64, 1u64);
        for days in 0..(430 * 366) {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let month_len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > month_len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn wall_clock_is_after_2020() {
        // 2020-01-01T00:00:00Z; catches a unit mistake (seconds instead of milliseconds).
        let ms = wall_ms();
        assert!(ms > 1_577_836_800_000, "wall_ms() = {ms}");
        assert!(ms < MAX_WALL_MS);
    }

    #[test]
    fn clock_sync_follows_the_kernel_state_and_status() {
        // (adjtimex return value, status bits, maxerror µs) => (synchronized, max_error_ms)
        let cases = [
            (libc::TIME_OK, 0, 5_000, true, 5),
            (libc::TIME_OK, libc::STA_PLL, 1, true, 1),
            (libc::TIME_INS, 0, 0, true, 0),
            (libc::TIME_OK, libc::STA_UNSYNC, 16_000_000, false, 16_000),
            (libc::TIME_ERROR, 0, 1_000, false, 1),
            (libc::TIME_ERROR, libc::STA_UNSYNC, 1_500, false, 2),
            (libc::TIME_OK, 0, -1, true, 0),
        ];
        for (state, status, maxerror, synced, ms) in cases {
            let c = ClockSync::from_timex(state, status, maxerror);
            assert_eq!(
                (c.synchronized, c.max_error_ms()),
                (synced, ms),
                "{state} {status:#x} {maxerror}"
            );
        }
    }

    #[test]
    fn kernel_sync_reads_without_privilege_or_change() {
        let a = kernel_sync().expect("adjtimex(modes = 0)");
        let b = kernel_sync().expect("adjtimex(modes = 0)");
        // Nothing was changed by reading: the synchronisation verdict is stable between reads
        // (a real NTP daemon could flip it, but not within microseconds).
        assert_eq!(a.synchronized, b.synchronized);
        // The kernel caps maxerror at NTP_PHASE_LIMIT-ish values (16 s) plus growth; anything
        // beyond an hour would be a unit mistake.
        assert!(a.max_error_us < 3_600_000_000, "{a:?}");
    }
}
