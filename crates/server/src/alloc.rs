//! A counting wrapper around the allocator (mimalloc by default, the system one without
//! the `mimalloc` feature), so `INFO memory` and (later)
//! `maxmemory` know how many bytes the process holds without allocator-specific APIs.
//!
//! Every allocation adds its size to one relaxed atomic counter; that costs a few
//! nanoseconds and keeps the number exact. The jemalloc feature (later) replaces this.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

/// The allocator name reported as `mem_allocator`.
#[cfg(feature = "mimalloc")]
pub const NAME: &str = "mimalloc";
/// The allocator name reported as `mem_allocator`.
#[cfg(not(feature = "mimalloc"))]
pub const NAME: &str = "libc";

#[cfg(feature = "mimalloc")]
use mimalloc::MiMalloc as Inner;
#[cfg(not(feature = "mimalloc"))]
use std::alloc::System as Inner;

static ALLOCATED: AtomicIsize = AtomicIsize::new(0);
static STARTUP: AtomicUsize = AtomicUsize::new(0);

/// The process's allocator, counted.
pub struct Counting;

// SAFETY: every method forwards to the inner allocator with the caller's layout and pointer
// unchanged; the counter update has no effect on memory safety.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { Inner.alloc(layout) };
        if !p.is_null() {
            ALLOCATED.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { Inner.alloc_zeroed(layout) };
        if !p.is_null() {
            ALLOCATED.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by us with `layout`.
        unsafe { Inner.dealloc(ptr, layout) };
        ALLOCATED.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { Inner.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            ALLOCATED.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Bytes currently allocated by the process.
pub fn allocated() -> usize {
    ALLOCATED.load(Ordering::Relaxed).max(0) as usize
}

/// Records the current allocation as the startup baseline (`used_memory_startup`).
pub fn mark_startup() {
    STARTUP.store(allocated(), Ordering::Relaxed);
}

/// The startup baseline.
pub fn startup() -> u64 {
    STARTUP.load(Ordering::Relaxed) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_allocations() {
        let before = allocated();
        let v: Vec<u8> = Vec::with_capacity(1 << 20);
        // Other test threads allocate too, so only check that our megabyte shows up.
        assert!(allocated() + 4096 >= before + (1 << 20) || allocated() >= 1 << 20);
        drop(v);
    }
}
