//! A counting global allocator for the benchmark build (`--features alloc-count`): how many heap
//! allocations the event loop makes per pass in steady state. Never in a production build.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

struct Counting;

// SAFETY: forwards every call unchanged to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations since start.
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// Per-pass accounting, reported in the log at exit (`alloc-count: ...`).
///
/// Steady state = a pass in which no event was recorded and no control request was served
/// (events and status replies allocate by design: they are rare, and not the monitoring
/// cycle). Allocations are summed over steady passes and divided by the checks they began.
#[derive(Debug, Default)]
pub struct LoopStats {
    pub steady_passes: u64,
    pub steady_allocs: u64,
    pub steady_checks: u64,
    pub other_passes: u64,
}

impl LoopStats {
    pub fn pass(&mut self, allocs: u64, checks: u64, eventful: bool) {
        if eventful {
            self.other_passes += 1;
        } else {
            self.steady_passes += 1;
            self.steady_allocs += allocs;
            self.steady_checks += checks;
        }
    }

    pub fn report(&self) -> String {
        format!(
            "alloc-count: steady_passes={} steady_checks={} steady_allocs={} other_passes={}",
            self.steady_passes, self.steady_checks, self.steady_allocs, self.other_passes
        )
    }
}
