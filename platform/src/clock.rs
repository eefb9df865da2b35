//! Clocks. The monotonic clock (`Instant`) drives every decision; the wall clock only stamps
//! events for humans. Must not: sleep, or be read by the agent's state machine (time is passed
//! into it).

use std::time::Instant;

/// Monotonic now. The one place the event loop reads time.
pub fn now() -> Instant {
    Instant::now()
}

/// Wall-clock time in milliseconds since the Unix epoch (for event stamps).
pub fn wall_ms() -> u64 {
    todo!("SystemTime::now() as ms since epoch")
}

/// A wall-clock time formatted as RFC 3339 UTC with second precision
/// (`2026-11-22T14:00:00Z`). No allocation.
pub fn rfc3339(wall_ms: u64) -> heapless::String<24> {
    let _ = wall_ms;
    todo!("civil-from-days conversion; tests against known dates incl. leap years")
}
