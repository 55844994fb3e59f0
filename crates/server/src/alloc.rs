//! A counting wrapper around the allocator (mimalloc by default, the system one without
//! the `mimalloc` feature), so `INFO memory` and (later)
//! `maxmemory` know how many bytes the process holds without allocator-specific APIs.
//!
//! Every allocation adds its size, rounded up to the allocator's size class
//! ([`basalt_engine::memory::alloc_size`], as Redis counts `malloc_usable_size`), to the
//! allocating thread's counter slot ([`crate::thread_slot`]: a plain load and store, no
//! locked instruction); a free subtracts it from the freeing thread's slot, and
//! [`allocated`] sums the slots. The keyspace's own accounting rounds the same way, so
//! `used_memory` and the dataset figures agree.

use crate::thread_slot::{self, Padded, SLOTS};
use basalt_engine::memory::alloc_size;
use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

/// The allocator name reported as `mem_allocator`.
#[cfg(feature = "mimalloc")]
pub const NAME: &str = "mimalloc";
/// The allocator name reported as `mem_allocator`.
#[cfg(not(feature = "mimalloc"))]
pub const NAME: &str = "libc";

#[cfg(not(feature = "mimalloc"))]
use std::alloc::System as Inner;

/// mimalloc, called through its C API.
///
/// Not the `mimalloc` crate's `GlobalAlloc`: that always calls `mi_malloc_aligned(size,
/// align)`, and mimalloc 3 serves an aligned request from its fast path only while the
/// size class's current page has a free block at hand; otherwise it over-allocates
/// `size + align - 1` bytes, one size class up. Rust asks for 8-byte alignment for almost
/// every struct, so a 48-byte hash-table node cost 64 bytes and an 80-byte keyspace node
/// 96 (measured: one million 48-byte, 8-aligned allocations took 64 MB of RSS). Every
/// mimalloc block of at least 16 bytes is 16-byte aligned, and smaller blocks are
/// aligned to their power-of-two size class, so for alignments up to 16 that do not
/// exceed the size plain `mi_malloc` gives the alignment for free - the same rule Rust's
/// `System` allocator applies to `malloc`.
#[cfg(feature = "mimalloc")]
struct Inner;

/// Largest alignment plain `mi_malloc` guarantees (mimalloc's `MI_MAX_ALIGN_SIZE`).
#[cfg(feature = "mimalloc")]
const MI_MIN_ALIGN: usize = 16;

#[cfg(feature = "mimalloc")]
fn plain(align: usize, size: usize) -> bool {
    align <= MI_MIN_ALIGN && align <= size
}

#[cfg(feature = "mimalloc")]
// SAFETY: every method returns memory from mimalloc with at least the layout's size and
// alignment (see `plain`), or null, and frees only pointers mimalloc returned.
unsafe impl GlobalAlloc for Inner {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        use libmimalloc_sys as ffi;
        // SAFETY: plain C allocation calls; the result is checked by the caller.
        unsafe {
            if plain(layout.align(), layout.size()) {
                ffi::mi_malloc(layout.size()).cast()
            } else {
                ffi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        use libmimalloc_sys as ffi;
        // SAFETY: as in `alloc`.
        unsafe {
            if plain(layout.align(), layout.size()) {
                ffi::mi_zalloc(layout.size()).cast()
            } else {
                ffi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from mimalloc (aligned or not, `mi_free` takes both).
        unsafe { libmimalloc_sys::mi_free(ptr.cast()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        use libmimalloc_sys as ffi;
        // SAFETY: `ptr` came from mimalloc with `layout`; the new block keeps the
        // alignment by the same rule as `alloc`.
        unsafe {
            if plain(layout.align(), new_size) {
                ffi::mi_realloc(ptr.cast(), new_size).cast()
            } else {
                ffi::mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast()
            }
        }
    }
}

/// Bytes allocated minus bytes freed, per thread slot (a slot may go negative: a thread
/// may free what another allocated).
static ALLOCATED: [Padded<AtomicIsize>; SLOTS] = [const { Padded(AtomicIsize::new(0)) }; SLOTS];

/// Counts `delta` bytes for the calling thread.
#[inline]
fn count(delta: isize) {
    let slot = thread_slot::current();
    thread_slot::add_isize(&ALLOCATED[slot].0, slot, delta);
}
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
            count(alloc_size(layout.size()) as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { Inner.alloc_zeroed(layout) };
        if !p.is_null() {
            count(alloc_size(layout.size()) as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by us with `layout`.
        unsafe { Inner.dealloc(ptr, layout) };
        count(-(alloc_size(layout.size()) as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { Inner.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(alloc_size(new_size) as isize - alloc_size(layout.size()) as isize);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Bytes currently allocated by the process (`used_memory`): the allocator's total plus
/// the keyspace's node slab's live blocks (`basalt_engine::slab` maps its chunks from the
/// system and hands out exact-size node blocks), so a node counts as its block, as in
/// the keyspace's own accounting, and freeing one lowers the figure at once (the chunks'
/// spare bytes show in RSS and the fragmentation ratio instead).
pub fn allocated() -> usize {
    basalt_engine::slab::used_bytes(|| {
        let sum: isize = ALLOCATED
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .fold(0, isize::wrapping_add);
        sum.max(0) as usize
    })
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
    use std::ffi::{c_char, c_int, c_long, c_void};

    // Exported by the mimalloc library `libmimalloc-sys` links in.
    /// `mi_option_purge_delay` in mimalloc 3's `mi_option_t`.
    pub const PURGE_DELAY: c_int = 15;

    unsafe extern "C" {
        pub fn mi_collect(force: bool);
        pub fn mi_option_set(option: c_int, value: c_long);
        #[cfg(test)]
        pub fn mi_option_get(option: c_int) -> c_long;
        #[cfg(test)]
        pub fn mi_malloc(size: usize) -> *mut c_void;
        #[cfg(test)]
        pub fn mi_usable_size(p: *const c_void) -> usize;
        #[cfg(test)]
        pub fn mi_free(p: *mut c_void);
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

/// Returns the node slab's empty chunks to the allocator, and asks the allocator to
/// return free pages to the system (`MEMORY PURGE`).
pub fn purge() {
    basalt_engine::slab::purge();
    #[cfg(feature = "mimalloc")]
    // SAFETY: mi_collect takes no pointers; forcing a collection is always allowed.
    unsafe {
        mi::mi_collect(true)
    };
}

/// Asks the allocator to return the free memory it keeps for reuse to the system, without
/// forcing (mimalloc's `mi_collect(false)`: pages whose purge delay has passed). A no-op
/// with the system allocator.
pub fn collect() {
    #[cfg(feature = "mimalloc")]
    // SAFETY: mi_collect takes no pointers.
    unsafe {
        mi::mi_collect(false)
    };
}

/// RSS growth over `used_memory` that makes [`Decay`] collect.
pub const DECAY_SLACK: u64 = 1 << 20;
/// Shortest time between two collections (ms).
pub const DECAY_MIN_WAIT_MS: u64 = 100;
/// Longest, after collections that returned little (ms).
pub const DECAY_MAX_WAIT_MS: u64 = 60_000;

/// Returns free allocator memory to the system after it piles up, as jemalloc's
/// background decay does for Redis: mimalloc purges a freed page only once its purge
/// delay has passed and some later allocation or collection looks, so memory freed just
/// before the server went idle (connection buffers, a table's old bucket array after it
/// grew) would stay resident until `MEMORY PURGE`. The cron checks ten times a second:
/// when RSS less `used_memory` is [`DECAY_SLACK`] above the smallest such gap seen (the
/// binary, stacks and thread caches of the fresh server, at first), collect. A
/// collection that returns less than half the slack (the gap is fragmentation, not
/// free pages) doubles the wait before the next one, up to [`DECAY_MAX_WAIT_MS`], so a
/// gap that cannot shrink costs one collection a minute; one that returns more resets it.
#[derive(Debug)]
pub struct Decay {
    floor: Option<u64>,
    next_ms: u64,
    wait_ms: u64,
    /// Collections made.
    pub collections: u64,
}

impl Default for Decay {
    fn default() -> Self {
        Decay {
            floor: None,
            next_ms: 0,
            wait_ms: DECAY_MIN_WAIT_MS,
            collections: 0,
        }
    }
}

impl Decay {
    /// One check at `now_ms`, given RSS and `used_memory` now and a way to read RSS
    /// again after collecting. Returns true if it collected.
    pub fn check(
        &mut self,
        now_ms: u64,
        rss: u64,
        used: u64,
        rss_after: impl FnOnce() -> u64,
    ) -> bool {
        let gap = rss.saturating_sub(used);
        let floor = self.floor.map_or(gap, |f| f.min(gap));
        self.floor = Some(floor);
        if gap < floor.saturating_add(DECAY_SLACK) || now_ms < self.next_ms {
            return false;
        }
        collect();
        self.collections += 1;
        let returned = rss.saturating_sub(rss_after());
        self.wait_ms = if returned >= DECAY_SLACK / 2 {
            DECAY_MIN_WAIT_MS
        } else {
            (self.wait_ms * 2).min(DECAY_MAX_WAIT_MS)
        };
        self.next_ms = now_ms + self.wait_ms;
        true
    }
}

/// mimalloc 3 purges freed pages a second after they are freed (`purge_delay` 1000 ms;
/// mimalloc 2 waited 10 ms): a table that grew a second ago still holds its old bucket
/// array's pages. The server sets mimalloc 2's 10 ms unless `MIMALLOC_PURGE_DELAY` is
/// set. Call before serving.
pub fn configure() {
    #[cfg(feature = "mimalloc")]
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets an integer option; takes no pointers.
        unsafe { mi::mi_option_set(mi::PURGE_DELAY, 10) };
    }
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

/// Turns transparent huge pages off for this process (Redis's `disable-thp`), so that
/// memory is resident in 4 KiB pages as it is touched. mimalloc asks for huge pages on
/// its arenas (`madvise(MADV_HUGEPAGE)`), which the kernel honours unless THP is `never`:
/// RSS then grows in 2 MiB steps, and `khugepaged` may fill a partly used 2 MiB range
/// with a whole huge page. Redis disables THP for the latency of copy-on-write after
/// fork; Basalt for both reasons. Applies to memory faulted in from now on, so the
/// server calls it before loading any data. Returns false if the kernel refused.
pub fn disable_thp() -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE takes plain integer arguments and touches no memory
        // of ours; the call only sets a flag on the process.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        true
    }
}

/// True if transparent huge pages are disabled for this process (Linux only).
pub fn thp_disabled() -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_GET_THP_DISABLE takes plain integer arguments and reads a flag.
        unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every size from 1 to 4 KiB and a few large ones, at every alignment up to 64:
    /// blocks come back aligned (through `mi_malloc` or the aligned calls), zeroed when
    /// asked, and keep their bytes across `realloc`.
    #[test]
    fn alignment_holds_for_all_small_sizes() {
        let sizes = (1..=4096).chain([8191, 8192, 65_537, 1 << 20]);
        for size in sizes {
            for align in [1usize, 2, 4, 8, 16, 32, 64] {
                let layout = Layout::from_size_align(size, align).expect("layout");
                // SAFETY: non-zero size; freed below with the same layout.
                unsafe {
                    let p = GLOBAL.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "alloc {size} align {align}");
                    p.write_bytes(0xAB, size);
                    let grown = size * 2 + 8;
                    let q = GLOBAL.realloc(p, layout, grown);
                    assert!(!q.is_null());
                    assert_eq!(q as usize % align, 0, "realloc {size} align {align}");
                    assert!((0..size).all(|i| *q.add(i) == 0xAB));
                    GLOBAL.dealloc(q, Layout::from_size_align(grown, align).expect("layout"));
                    let z = GLOBAL.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0, "zeroed {size} align {align}");
                    assert!((0..size).all(|i| *z.add(i) == 0));
                    GLOBAL.dealloc(z, layout);
                }
            }
        }
    }

    #[test]
    fn thp_can_be_disabled() {
        // The flag is process-wide and only affects page faults; setting it in the test
        // process is harmless.
        assert!(disable_thp());
        #[cfg(target_os = "linux")]
        assert!(thp_disabled());
    }

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

    /// The decay collects only when RSS outgrows `used_memory` by the slack past the
    /// smallest gap seen, and backs off while collections return little.
    #[test]
    fn decay_collects_when_the_gap_grows_past_the_slack() {
        const M: u64 = 1 << 20;
        let mut d = Decay::default();
        let never = || -> u64 { panic!("no collection expected") };
        // The first check only learns the gap (the binary, stacks: 10 MiB).
        assert!(!d.check(0, 20 * M, 10 * M, never));
        // Data grows with the gap unchanged; a gap just under the slack: no.
        assert!(!d.check(100, 60 * M, 50 * M, never));
        assert!(!d.check(200, 61 * M - 1, 50 * M, never));
        // The gap shrinks: the floor follows it down (9 MiB).
        assert!(!d.check(300, 59 * M, 50 * M, never));
        assert!(!d.check(400, 60 * M - 1, 50 * M, never));
        // 1 MiB over the floor: collect; it returned 1 MiB, so the next may come 100 ms on.
        assert!(d.check(500, 60 * M, 50 * M, || 59 * M));
        assert!(!d.check(550, 61 * M, 51 * M - 1, never));
        assert!(d.check(600, 61 * M, 51 * M - 1, || 60 * M));
        // Collections that return nothing wait twice as long each time.
        assert!(d.check(700, 62 * M, 51 * M, || 62 * M));
        assert!(!d.check(800, 62 * M, 51 * M, never));
        assert!(d.check(900, 62 * M, 51 * M, || 62 * M));
        assert!(!d.check(1200, 62 * M, 51 * M, never));
        assert!(d.check(1300, 62 * M, 51 * M, || 62 * M));
        assert_eq!(d.collections, 5);
        // ... up to a minute; one that returns memory resets the wait.
        let mut now = 1300;
        for _ in 0..20 {
            now += DECAY_MAX_WAIT_MS;
            assert!(d.check(now, 62 * M, 51 * M, || 62 * M));
        }
        assert_eq!(d.wait_ms, DECAY_MAX_WAIT_MS);
        now += DECAY_MAX_WAIT_MS;
        assert!(d.check(now, 62 * M, 51 * M, || 60 * M));
        assert_eq!(d.wait_ms, DECAY_MIN_WAIT_MS);
    }

    /// `alloc_size` (what `used_memory` and the keyspace's accounting count) is the size
    /// mimalloc really hands out, for every request up to 64 KiB.
    #[cfg(feature = "mimalloc")]
    #[test]
    fn alloc_size_is_mimallocs_block_size() {
        for n in 1..=65_536usize {
            // SAFETY: a plain allocation, measured and freed at once.
            let usable = unsafe {
                let p = mi::mi_malloc(n);
                assert!(!p.is_null());
                let u = mi::mi_usable_size(p);
                mi::mi_free(p);
                u
            };
            assert_eq!(alloc_size(n), usable, "request of {n} bytes");
        }
    }

    /// Index 15 of mimalloc's options is the purge delay (mimalloc 3's default: 1000 ms;
    /// this test binary does not call `configure`).
    #[cfg(feature = "mimalloc")]
    #[test]
    fn the_purge_delay_option_is_where_configure_sets_it() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // SAFETY: reads an integer option.
            assert_eq!(unsafe { mi::mi_option_get(mi::PURGE_DELAY) }, 1000);
        }
    }
}
