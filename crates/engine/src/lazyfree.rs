//! Lazy free: dropping big values on a background thread instead of the request path.
//!
//! Freeing a 10M-element hash takes ten million deallocations; doing that under a shard
//! lock would stall every client of the shard. [`LazyFree`] hands such values (and whole
//! databases emptied by `FLUSHALL ASYNC`) to one freeing thread over a channel. Small
//! values are always dropped in place: a channel send costs more than freeing them
//! (Redis's `LAZYFREE_THRESHOLD` rule, see [`crate::memory::LAZYFREE_THRESHOLD`]).
//!
//! Which deletions are lazy is configuration (`lazyfree-lazy-eviction`, `-expire`,
//! `-server-del`, `-user-del`, `-user-flush`): [`LazyFree::set_flags`]. `UNLINK` and
//! `FLUSHALL ASYNC` are always lazy. Without a started thread (engine tests) everything
//! is dropped in place.

use crate::memory::LAZYFREE_THRESHOLD;
use crate::value::Value;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;

/// Why a value is being deleted; each reason has its own `lazyfree-lazy-*` directive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Reason {
    /// Evicted by maxmemory (`lazyfree-lazy-eviction`).
    Eviction = 1,
    /// Reclaimed after its deadline (`lazyfree-lazy-expire`).
    Expire = 2,
    /// Overwritten or deleted as a side effect of a command (`lazyfree-lazy-server-del`).
    ServerDel = 4,
    /// Deleted by `DEL` (`lazyfree-lazy-user-del`).
    UserDel = 8,
    /// Emptied by `FLUSHALL`/`FLUSHDB` without a mode (`lazyfree-lazy-user-flush`).
    UserFlush = 16,
    /// `UNLINK`, `FLUSHALL ASYNC`: always lazy.
    Always = 128,
}

/// Something for the freeing thread to drop.
pub type Garbage = Box<dyn Send>;

struct Job {
    garbage: Garbage,
    /// Objects it counts for (`lazyfree_pending_objects`).
    objects: usize,
    /// Bytes it holds (subtracted from used memory by the eviction loop while pending).
    bytes: usize,
}

/// The background freeing thread's handle and counters.
#[derive(Default)]
pub struct LazyFree {
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    flags: AtomicU8,
    pending_objects: AtomicUsize,
    pending_bytes: AtomicUsize,
    freed_objects: AtomicU64,
}

impl LazyFree {
    /// Starts the freeing thread (once; later calls do nothing).
    pub fn start(self: &std::sync::Arc<Self>) -> std::io::Result<()> {
        let mut tx = self.tx.lock();
        if tx.is_some() {
            return Ok(());
        }
        let (sender, rx) = mpsc::channel::<Job>();
        let me = std::sync::Arc::downgrade(self);
        std::thread::Builder::new()
            .name("basalt-lazyfree".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    drop(job.garbage);
                    let Some(me) = me.upgrade() else { continue };
                    me.pending_objects.fetch_sub(job.objects, Ordering::Relaxed);
                    me.pending_bytes.fetch_sub(job.bytes, Ordering::Relaxed);
                    me.freed_objects
                        .fetch_add(job.objects as u64, Ordering::Relaxed);
                }
            })?;
        *tx = Some(sender);
        Ok(())
    }

    /// Sets which [`Reason`]s free lazily (a bit per reason).
    pub fn set_flags(&self, flags: u8) {
        self.flags.store(flags, Ordering::Relaxed);
    }

    /// True when deletions for `reason` go to the freeing thread.
    pub fn is_lazy(&self, reason: Reason) -> bool {
        reason == Reason::Always || self.flags.load(Ordering::Relaxed) & reason as u8 != 0
    }

    /// Drops `value` here, or on the freeing thread when `reason` is lazy and the value
    /// is big enough to be worth it. Returns true if it went to the thread.
    pub fn free(&self, value: Value, reason: Reason) -> bool {
        if value.free_effort() <= LAZYFREE_THRESHOLD || !self.is_lazy(reason) {
            return false;
        }
        let bytes = value.mem_usage();
        self.send(Box::new(value), 1, bytes)
    }

    /// Hands arbitrary garbage (a whole emptied table) to the thread, counted as
    /// `objects` pending objects holding `bytes`; drops it here without a thread.
    pub fn send(&self, garbage: Garbage, objects: usize, bytes: usize) -> bool {
        let tx = self.tx.lock();
        let Some(tx) = tx.as_ref() else {
            drop(tx);
            drop(garbage);
            return false;
        };
        self.pending_objects.fetch_add(objects, Ordering::Relaxed);
        self.pending_bytes.fetch_add(bytes, Ordering::Relaxed);
        match tx.send(Job {
            garbage,
            objects,
            bytes,
        }) {
            Ok(()) => true,
            Err(mpsc::SendError(job)) => {
                // The thread is gone (only at shutdown): free here.
                self.pending_objects.fetch_sub(objects, Ordering::Relaxed);
                self.pending_bytes.fetch_sub(bytes, Ordering::Relaxed);
                drop(job);
                false
            }
        }
    }

    /// Objects waiting to be freed (`lazyfree_pending_objects`).
    pub fn pending_objects(&self) -> usize {
        self.pending_objects.load(Ordering::Relaxed)
    }

    /// Bytes waiting to be freed.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes.load(Ordering::Relaxed)
    }

    /// Objects freed by the thread so far (`lazyfreed_objects`).
    pub fn freed_objects(&self) -> u64 {
        self.freed_objects.load(Ordering::Relaxed)
    }

    /// Resets the freed counter (CONFIG RESETSTAT).
    pub fn reset_stats(&self) {
        self.freed_objects.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EncodingLimits;
    use crate::types::SetValue;
    use crate::value::StrValue;
    use std::sync::Arc;

    fn big_set(n: usize) -> Value {
        let lim = EncodingLimits::default();
        let mut s = SetValue::default();
        for i in 0..n {
            s.add(format!("member:{i}").as_bytes(), &lim);
        }
        Value::from(s)
    }

    #[test]
    fn small_values_and_disabled_reasons_free_in_place() {
        let lf = Arc::new(LazyFree::default());
        lf.start().unwrap();
        assert!(!lf.free(Value::Str(StrValue::from_bytes(b"x")), Reason::Always));
        assert!(!lf.free(big_set(1000), Reason::UserDel));
        lf.set_flags(Reason::UserDel as u8);
        assert!(lf.free(big_set(1000), Reason::UserDel));
        assert!(lf.free(big_set(1000), Reason::Always));
        let t0 = std::time::Instant::now();
        while lf.pending_objects() > 0 && t0.elapsed().as_secs() < 10 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(lf.pending_objects(), 0);
        assert_eq!(lf.pending_bytes(), 0);
        assert_eq!(lf.freed_objects(), 2);
    }

    #[test]
    fn without_a_thread_everything_is_dropped_here() {
        let lf = LazyFree::default();
        assert!(!lf.free(big_set(1000), Reason::Always));
        assert_eq!(lf.pending_objects(), 0);
    }
}
