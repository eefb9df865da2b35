//! Recent events: a fixed-capacity ring shown by `bbwd status`, stamped with wall-clock time.
//!
//! Owns the ring only; the daemon also appends every event to the event log and hands it to
//! `notify.command`. Must not: allocate when recording (the ring and its details are fixed size).

use crate::machine::Detail;

/// Events kept for `bbwd status` (SPEC: at least 32).
pub const RING_CAPACITY: usize = 64;

/// One recorded event.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub wall_ms: u64,
    /// The event's kind as shown (`EventKind::as_str`, or a pair event's name).
    pub kind: &'static str,
    pub detail: Detail,
}

/// The ring: when full, the oldest event makes room.
#[derive(Debug, Default)]
pub struct Ring {
    buf: heapless::Deque<Record, RING_CAPACITY>,
}

impl Ring {
    pub fn new() -> Ring {
        Ring::default()
    }

    pub fn push(&mut self, rec: Record) {
        if self.buf.is_full() {
            self.buf.pop_front();
        }
        // Cannot fail: room was made above.
        let _ = self.buf.push_back(rec);
    }

    /// Oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Record> {
        self.buf.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::detail;

    #[test]
    fn keeps_the_newest_capacity_events_in_order() {
        let mut r = Ring::new();
        for i in 0..(RING_CAPACITY as u64 + 10) {
            r.push(Record {
                wall_ms: i,
                kind: "check_failed",
                detail: detail("x"),
            });
        }
        let stamps: Vec<u64> = r.iter().map(|e| e.wall_ms).collect();
        assert_eq!(stamps.len(), RING_CAPACITY);
        assert_eq!(stamps[0], 10);
        assert_eq!(*stamps.last().unwrap(), RING_CAPACITY as u64 + 9);
    }
}
