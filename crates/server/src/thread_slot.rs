//! Per-thread counter slots, for counters bumped on every command by every worker
//! thread: allocated bytes (`alloc.rs`) and command calls (`INFO commandstats`).
//!
//! A shared atomic counter costs a locked read-modify-write per update (on x86 a `lock`
//! prefixed instruction: a full barrier that drains the store buffer, tens of cycles),
//! and the command path had about a dozen of them. Here each of the first
//! [`SHARED`] threads that ask owns one slot and updates it with a plain load and store
//! (still atomic accesses, so readers on other threads see whole values); threads after
//! those share the last slot and update it with `fetch_add` as before. Readers sum the
//! slots. A slot outlives its thread, so nothing counted is ever lost; thread numbers
//! are never reused, so a server whose blocking pool keeps creating threads ends up
//! with most of those on the shared slot, which is only slower, never wrong.

use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, AtomicU64, AtomicUsize, Ordering};

/// Number of slots.
pub const SLOTS: usize = 64;

/// The slot every thread after the first `SHARED` uses, updated with atomic
/// read-modify-writes.
pub const SHARED: usize = SLOTS - 1;

static NEXT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // `const` and without a destructor: readable at any point of a thread's life,
    // including from the global allocator while the thread's other locals are dropped.
    static SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The calling thread's slot.
#[inline]
pub fn current() -> usize {
    SLOT.with(|s| {
        let i = s.get();
        if i != usize::MAX {
            return i;
        }
        let i = NEXT.fetch_add(1, Ordering::Relaxed).min(SHARED);
        s.set(i);
        i
    })
}

/// A value on its own cache line, so that slots written by different threads do not
/// share one.
#[repr(align(64))]
#[derive(Debug, Default)]
pub struct Padded<T>(pub T);

/// Adds `d` to `c`, a counter of slot `slot`, which must be the caller's
/// ([`current`]).
#[inline]
pub fn add_u64(c: &AtomicU64, slot: usize, d: u64) {
    if slot == SHARED {
        c.fetch_add(d, Ordering::Relaxed);
    } else {
        // Only this thread writes this slot: no update can come in between.
        c.store(c.load(Ordering::Relaxed).wrapping_add(d), Ordering::Relaxed);
    }
}

/// Adds `d` (maybe negative) to `c`, a counter of slot `slot`, which must be the
/// caller's ([`current`]).
#[inline]
pub fn add_isize(c: &AtomicIsize, slot: usize, d: isize) {
    if slot == SHARED {
        c.fetch_add(d, Ordering::Relaxed);
    } else {
        c.store(c.load(Ordering::Relaxed).wrapping_add(d), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Many threads (more than there are slots, so some share the last one) each add
    /// to their slot: the sum over the slots is exact.
    #[test]
    fn sums_are_exact_with_owned_and_shared_slots() {
        let slots: Arc<Vec<Padded<AtomicU64>>> =
            Arc::new((0..SLOTS).map(|_| Padded::default()).collect());
        let threads: Vec<_> = (0..SLOTS + 16)
            .map(|_| {
                let slots = slots.clone();
                std::thread::spawn(move || {
                    let me = current();
                    assert_eq!(current(), me, "a thread keeps its slot");
                    for _ in 0..1000 {
                        add_u64(&slots[me].0, me, 1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let sum: u64 = slots.iter().map(|s| s.0.load(Ordering::Relaxed)).sum();
        assert_eq!(sum, (SLOTS as u64 + 16) * 1000);
    }
}
