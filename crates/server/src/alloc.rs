//! A counting wrapper around the allocator (mimalloc by default, the system one without
//! the `mimalloc` feature), so `INFO memory` and (later)
//! `maxmemory` know how many bytes the process holds without allocator-specific APIs.
//!
//! Every allocation adds its size, rounded up to the allocator's size class
//! ([`basalt_engine::memory::alloc_size`], as Redis counts `malloc_usable_size`), to one
//! relaxed atomic counter; that costs a few nanoseconds. The keyspace's own accounting
//! rounds the same way, so `used_memory` and the dataset figures agree.

use basalt_engine::memory::alloc_size;
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
            ALLOCATED.fetch_add(alloc_size(layout.size()) as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { Inner.alloc_zeroed(layout) };
        if !p.is_null() {
            ALLOCATED.fetch_add(alloc_size(layout.size()) as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by us with `layout`.
        unsafe { Inner.dealloc(ptr, layout) };
        ALLOCATED.fetch_sub(alloc_size(layout.size()) as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { Inner.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            ALLOCATED.fetch_add(
                alloc_size(new_size) as isize - alloc_size(layout.size()) as isize,
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

#[cfg(feature = "mimalloc")]
mod mi {
    use std::ffi::{c_char, c_void};

    // Exported by the mimalloc library the `mimalloc` crate links in.
    unsafe extern "C" {
        pub fn mi_collect(force: bool);
        pub fn mi_stats_print_out(
            out: Option<unsafe extern "C" fn(msg: *const c_char, arg: *mut c_void)>,
            arg: *mut c_void,
        );
    }

    /// Appends one chunk of mimalloc's report to the `String` behind `arg`.
    pub unsafe extern "C" fn collect(msg: *const c_char, arg: *mut c_void) {
        if msg.is_null() || arg.is_null() {
            return;
        }
        // SAFETY: mimalloc passes a NUL-terminated string, and `arg` is the `&mut String`
        // given to `mi_stats_print_out` below, alive for the whole call.
        let (text, out) = unsafe {
            (
                std::ffi::CStr::from_ptr(msg).to_string_lossy(),
                &mut *arg.cast::<String>(),
            )
        };
        out.push_str(&text);
    }
}

/// Asks the allocator to return free pages to the system (`MEMORY PURGE`).
pub fn purge() {
    #[cfg(feature = "mimalloc")]
    // SAFETY: mi_collect takes no pointers; forcing a collection is always allowed.
    unsafe {
        mi::mi_collect(true)
    };
}

/// The allocator's statistics report (`MEMORY MALLOC-STATS`), if it has one.
pub fn stats_text() -> Option<String> {
    #[cfg(feature = "mimalloc")]
    {
        let mut out = String::new();
        // SAFETY: the callback only writes into `out`, which outlives the call.
        unsafe {
            mi::mi_stats_print_out(
                Some(mi::collect),
                std::ptr::from_mut(&mut out).cast::<std::ffi::c_void>(),
            )
        };
        Some(out)
    }
    #[cfg(not(feature = "mimalloc"))]
    None
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

    #[test]
    fn allocator_report_and_purge() {
        purge();
        if let Some(text) = stats_text() {
            assert!(!text.is_empty());
        }
    }
}
