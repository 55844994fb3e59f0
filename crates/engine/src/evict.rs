//! Eviction policies: what `maxmemory` removes first, and the per-key metadata each
//! policy keeps.
//!
//! Every key's table node has two metadata fields in its 8-byte header that exist
//! whatever the policy (see `dict.rs`):
//!
//! - the LRU clock: the Unix second of the last access modulo 2^24, Redis's `lru` field
//!   (`OBJECT IDLETIME`, with Redis's wrap-around rule);
//! - `meta`: interpreted by the policy in force. Under an LFU policy it holds Redis's
//!   logarithmic counter (low 8 bits) and the minute of its last decrement (next 16
//!   bits), exactly as Redis packs them into its 24-bit `lru` field. Under the FIFO
//!   policies it holds the key's stamp in its queue (29 bits), a "in the main queue" bit
//!   and a 2-bit hit counter.
//!
//! Policies:
//!
//! - Redis's sampled ones (`allkeys-lru`, `volatile-lru`, `allkeys-lfu`, `volatile-lfu`,
//!   `volatile-ttl`): `maxmemory-samples` keys are sampled per shard visit into a pool of
//!   the 16 best candidates kept across calls (Redis's eviction pool), the best is evicted.
//! - `allkeys-random`, `volatile-random`: a random key.
//! - `allkeys-fifo` (Basalt): the oldest key first, by insertion. One queue of key hashes
//!   per database slice: 8 bytes per key (plus at most a fifth unused).
//! - `allkeys-s3fifo` (Basalt): S3-FIFO (Yang et al., SOSP 2023). New keys enter a small
//!   FIFO (10% of the keys); a key hit while there moves to the main FIFO when it leaves
//!   the small one, else it is evicted and remembered in a ghost table; a key seen in the
//!   ghost table goes straight to the main FIFO. The main FIFO gives each key with hits a
//!   second chance (CLOCK-like, counter of 0..3). One-hit wonders and scans leave through
//!   the small queue without disturbing the main one. Cost: 8 bytes of queue per key (at
//!   most a fifth of a queue's capacity unused) plus a 2-byte ghost fingerprint per
//!   main-queue key: at most 11 bytes per key.
//!
//! The queues store only key hashes; a key's position is implicit (the queue's head
//! stamp plus the offset), and an item is valid only while the key's stamp matches, so
//! deleted keys leave stale items that the queue skips and periodically compacts away.

use std::collections::VecDeque;

/// A `maxmemory-policy`. The first eight are Redis's, in Redis's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum Policy {
    /// Evict the least recently used key among keys with a deadline.
    VolatileLru = 0,
    /// Evict the least frequently used key among keys with a deadline.
    VolatileLfu = 1,
    /// Evict a random key among keys with a deadline.
    VolatileRandom = 2,
    /// Evict the key with the nearest deadline.
    VolatileTtl = 3,
    /// Evict the least recently used key.
    AllkeysLru = 4,
    /// Evict the least frequently used key.
    AllkeysLfu = 5,
    /// Evict a random key.
    AllkeysRandom = 6,
    /// Never evict; refuse commands that may grow memory.
    #[default]
    NoEviction = 7,
    /// Basalt: evict the oldest key (by insertion).
    AllkeysFifo = 8,
    /// Basalt: S3-FIFO (small + main FIFO queues with a ghost table).
    AllkeysS3Fifo = 9,
}

/// Policy names by discriminant.
pub const POLICY_NAMES: &[&str] = &[
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "noeviction",
    "allkeys-fifo",
    "allkeys-s3fifo",
];

/// What a policy keeps in each key's `meta` word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tracking {
    /// Nothing beyond the access time.
    Plain,
    /// Redis's LFU counter and decrement time.
    Lfu,
    /// A FIFO queue stamp.
    Fifo,
    /// S3-FIFO queue stamp, queue bit and hit counter.
    S3Fifo,
}

impl Policy {
    /// The policy with discriminant `i` (`NoEviction` for anything unknown).
    pub fn from_index(i: usize) -> Policy {
        match i {
            0 => Policy::VolatileLru,
            1 => Policy::VolatileLfu,
            2 => Policy::VolatileRandom,
            3 => Policy::VolatileTtl,
            4 => Policy::AllkeysLru,
            5 => Policy::AllkeysLfu,
            6 => Policy::AllkeysRandom,
            8 => Policy::AllkeysFifo,
            9 => Policy::AllkeysS3Fifo,
            _ => Policy::NoEviction,
        }
    }

    /// The configuration name.
    pub fn name(self) -> &'static str {
        POLICY_NAMES[self as usize]
    }

    /// True for the LFU policies (`OBJECT FREQ` works, `OBJECT IDLETIME` does not).
    pub fn is_lfu(self) -> bool {
        matches!(self, Policy::AllkeysLfu | Policy::VolatileLfu)
    }

    /// True for the policies that only evict keys with a deadline.
    pub fn is_volatile(self) -> bool {
        matches!(
            self,
            Policy::VolatileLru
                | Policy::VolatileLfu
                | Policy::VolatileRandom
                | Policy::VolatileTtl
        )
    }

    pub(crate) fn tracking(self) -> Tracking {
        match self {
            Policy::AllkeysLfu | Policy::VolatileLfu => Tracking::Lfu,
            Policy::AllkeysFifo => Tracking::Fifo,
            Policy::AllkeysS3Fifo => Tracking::S3Fifo,
            _ => Tracking::Plain,
        }
    }
}

// ---------------------------------------------------------------------------------------
// LFU: Redis's logarithmic counter (evict.c), bit for bit.
// ---------------------------------------------------------------------------------------

/// The counter a new key starts with, so it is not evicted before it had a chance.
pub const LFU_INIT_VAL: u8 = 5;

/// Redis's `LFUGetTimeInMinutes`: Unix minutes modulo 2^16.
pub fn lfu_minutes(now_ms: u64) -> u16 {
    ((now_ms / 1000 / 60) & 0xFFFF) as u16
}

/// Minutes since `ldt`, with Redis's wrap-around rule (`LFUTimeElapsed`).
pub fn lfu_elapsed(ldt: u16, now_min: u16) -> u64 {
    if now_min >= ldt {
        u64::from(now_min - ldt)
    } else {
        65535 - u64::from(ldt) + u64::from(now_min)
    }
}

/// The counter after decay (`LFUDecrAndReturn`): one point per `decay_time` minutes
/// since the last decrement. `OBJECT FREQ` answers this.
pub fn lfu_decayed(meta: u32, now_min: u16, decay_time: u32) -> u8 {
    let ldt = (meta >> 8) as u16;
    let counter = meta as u8;
    let periods = if decay_time > 0 {
        lfu_elapsed(ldt, now_min) / u64::from(decay_time)
    } else {
        0
    };
    if periods > u64::from(counter) {
        0
    } else {
        counter - periods as u8
    }
}

/// One logarithmic increment (`LFULogIncr`): the counter grows with probability
/// `1 / ((counter - LFU_INIT_VAL) * log_factor + 1)`; `r` is uniform in `[0, 1]`.
pub fn lfu_log_incr(counter: u8, log_factor: u32, r: f64) -> u8 {
    if counter == 255 {
        return 255;
    }
    let base = f64::from(counter.saturating_sub(LFU_INIT_VAL));
    let p = 1.0 / (base * f64::from(log_factor) + 1.0);
    if r < p { counter + 1 } else { counter }
}

/// The `meta` word after an access (`updateLFU`): decay, increment, stamp the minute.
pub fn lfu_touch(meta: u32, now_min: u16, log_factor: u32, decay_time: u32, r: f64) -> u32 {
    let c = lfu_decayed(meta, now_min, decay_time);
    let c = lfu_log_incr(c, log_factor, r);
    lfu_pack(c, now_min)
}

/// The `meta` word of a counter and a minute.
pub fn lfu_pack(counter: u8, now_min: u16) -> u32 {
    (u32::from(now_min) << 8) | u32::from(counter)
}

// ---------------------------------------------------------------------------------------
// FIFO queues (allkeys-fifo, allkeys-s3fifo)
// ---------------------------------------------------------------------------------------

/// Bits of a queue stamp.
pub(crate) const SEQ_MASK: u32 = (1 << 29) - 1;
/// The key is in the main queue (S3-FIFO).
pub(crate) const IN_MAIN: u32 = 1 << 29;
/// Shift of the 2-bit hit counter (S3-FIFO).
pub(crate) const FREQ_SHIFT: u32 = 30;
/// Highest hit counter value.
pub(crate) const FREQ_MAX: u32 = 3;
/// Share of the keys the small queue holds, in percent.
pub(crate) const SMALL_PERCENT: usize = 10;
/// Fewest items a queue grows by.
const QUEUE_MIN_GROWTH: usize = 16;
/// Fewest slots of a ghost table.
const GHOST_MIN: usize = 64;

/// The hit counter of a FIFO `meta` word.
pub(crate) fn fifo_freq(meta: u32) -> u32 {
    meta >> FREQ_SHIFT
}

/// `meta` with one more hit (saturating at [`FREQ_MAX`]).
pub(crate) fn fifo_hit(meta: u32) -> u32 {
    let f = (fifo_freq(meta) + 1).min(FREQ_MAX);
    (meta & !(3 << FREQ_SHIFT)) | (f << FREQ_SHIFT)
}

/// One FIFO queue of key hashes. Item `i` has stamp `head + i` (mod 2^29).
#[derive(Default)]
pub(crate) struct Queue {
    pub items: VecDeque<u64>,
    pub head: u32,
    /// Items whose key is still live and stamped for this queue.
    pub live: usize,
}

impl Queue {
    /// Appends a key; returns its stamp. The queue grows by a quarter at a time (not
    /// by doubling), so at most a fifth of its capacity is unused.
    pub fn push(&mut self, hash: u64) -> u32 {
        let seq = (self.head.wrapping_add(self.items.len() as u32)) & SEQ_MASK;
        let len = self.items.len();
        if len == self.items.capacity() {
            self.items.reserve_exact((len / 4).max(QUEUE_MIN_GROWTH));
        }
        self.items.push_back(hash);
        self.live += 1;
        seq
    }

    /// Takes the oldest item and its stamp. Gives memory back when a fifth of the
    /// capacity is unused (S3-FIFO's small queue holds every key until the first
    /// eviction, then a tenth of them; eviction down to a lower maxmemory): shrinking
    /// to an eighth above the length leaves a tenth of the items to pop before the next
    /// copy, so the copying stays amortized O(1) per pop.
    pub fn pop(&mut self) -> Option<(u64, u32)> {
        let h = self.items.pop_front()?;
        let (len, cap) = (self.items.len(), self.items.capacity());
        if cap > 4 * QUEUE_MIN_GROWTH && len * 5 < cap * 4 {
            self.items.shrink_to(len + len / 8);
        }
        let seq = self.head;
        self.head = (self.head + 1) & SEQ_MASK;
        Some((h, seq))
    }

    /// True when stale items (deleted or re-stamped keys) make up more than a fifth of
    /// the queue. Compaction visits every item once, so its cost stays amortized O(1)
    /// per stale item.
    pub fn needs_compaction(&self) -> bool {
        self.items.len() > self.live + self.live / 4 + 64
    }

    /// Heap bytes of the queue.
    pub fn heap_size(&self) -> usize {
        self.items.capacity() * 8
    }
}

/// The queues of one database slice.
#[derive(Default)]
pub(crate) struct Fifo {
    /// S3-FIFO (false: plain FIFO, which uses only `small`).
    pub s3: bool,
    pub small: Queue,
    pub main: Queue,
    /// Ghost table: 16-bit fingerprints of keys recently evicted from the small queue,
    /// one slot per main-queue key (a newer key overwrites an older one in its slot).
    ghost: Vec<u16>,
}

impl Fifo {
    pub fn new(s3: bool) -> Fifo {
        Fifo {
            s3,
            ..Fifo::default()
        }
    }

    /// A key's ghost fingerprint: bits 32..48 of its hash (the top bits pick the shard,
    /// so they are alike within a queue; the low bits pick the slot). Never 0, which
    /// marks an empty slot.
    fn fingerprint(hash: u64) -> u16 {
        ((hash >> 32) as u16) | 1
    }

    /// The ghost slot of a key: its hash's low 32 bits scaled to the table's length.
    fn ghost_slot(&self, hash: u64) -> usize {
        ((u64::from(hash as u32) * self.ghost.len() as u64) >> 32) as usize
    }

    /// Remembers a key evicted from the small queue.
    pub fn ghost_add(&mut self, hash: u64) {
        // As many slots as the main queue has keys (the paper's ghost size), re-sized
        // when that count moves by more than a quarter; re-sizing forgets the ghosts.
        let want = self.main.live.max(GHOST_MIN);
        let len = self.ghost.len();
        if len < want - want / 4 || len > want + want / 4 {
            self.ghost = vec![0; want];
        }
        let slot = self.ghost_slot(hash);
        self.ghost[slot] = Self::fingerprint(hash);
    }

    /// True (and forgets it) when the key was recently evicted from the small queue.
    pub fn ghost_take(&mut self, hash: u64) -> bool {
        if self.ghost.is_empty() {
            return false;
        }
        let slot = self.ghost_slot(hash);
        let fp = Self::fingerprint(hash);
        if self.ghost[slot] == fp {
            self.ghost[slot] = 0;
            true
        } else {
            false
        }
    }

    /// Heap bytes of the queues and the ghost table.
    pub fn heap_size(&self) -> usize {
        self.small.heap_size() + self.main.heap_size() + self.ghost.capacity() * 2
    }

    /// True when the next eviction should come from the small queue.
    pub fn evict_from_small(&self) -> bool {
        if !self.s3 {
            return true;
        }
        let total = self.small.live + self.main.live;
        self.small.live > 0
            && (self.main.live == 0 || self.small.live * 100 >= total * SMALL_PERCENT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn policy_names_round_trip() {
        for (i, n) in POLICY_NAMES.iter().enumerate() {
            assert_eq!(Policy::from_index(i).name(), *n);
        }
        assert!(Policy::AllkeysLfu.is_lfu() && !Policy::AllkeysLru.is_lfu());
        assert!(Policy::VolatileTtl.is_volatile() && !Policy::AllkeysS3Fifo.is_volatile());
    }

    #[test]
    fn lfu_matches_redis_examples() {
        // A fresh key: counter 5, no decay within the minute.
        let m = lfu_pack(LFU_INIT_VAL, 100);
        assert_eq!(lfu_decayed(m, 100, 1), 5);
        // Three minutes later with lfu-decay-time 1: 2.
        assert_eq!(lfu_decayed(m, 103, 1), 2);
        // decay-time 0 never decays.
        assert_eq!(lfu_decayed(m, 60_000, 0), 5);
        // Wrap-around of the 16-bit minute clock (Redis's formula: 65535 - ldt + now).
        let m = lfu_pack(10, 65_534);
        assert_eq!(lfu_elapsed(65_534, 1), 2);
        assert_eq!(lfu_decayed(m, 1, 1), 8);
        // Below LFU_INIT_VAL+1 an access always increments.
        assert_eq!(lfu_log_incr(5, 10, 0.999), 6);
        assert_eq!(lfu_log_incr(255, 10, 0.0), 255);
        // At counter 6 with factor 10, p = 1/11.
        assert_eq!(lfu_log_incr(6, 10, 0.09), 7);
        assert_eq!(lfu_log_incr(6, 10, 0.095), 6);
    }

    proptest! {
        /// Growth follows p = 1/((c - 5) * factor + 1): never more than +1 per access,
        /// never past 255, and with r below p it always grows.
        #[test]
        fn lfu_growth_per_formula(c in 0u8..=255, factor in 0u32..1000, r in 0.0f64..1.0) {
            let n = lfu_log_incr(c, factor, r);
            let base = f64::from(c.saturating_sub(LFU_INIT_VAL));
            let p = 1.0 / (base * f64::from(factor) + 1.0);
            if c == 255 {
                prop_assert_eq!(n, 255);
            } else if r < p {
                prop_assert_eq!(n, c + 1);
            } else {
                prop_assert_eq!(n, c);
            }
        }

        /// Decay removes exactly floor(elapsed / decay_time) points, down to 0, and a
        /// touch stamps the current minute.
        #[test]
        fn lfu_decay_per_formula(c in 0u8..=255, ldt in 0u16..=u16::MAX, dt in 0u16..2000,
                                 decay in 0u32..100, factor in 0u32..100, r in 0.0f64..1.0) {
            let now = ldt.wrapping_add(dt);
            let m = lfu_pack(c, ldt);
            let periods = if decay == 0 { 0 } else { lfu_elapsed(ldt, now) / u64::from(decay) };
            let want = u64::from(c).saturating_sub(periods) as u8;
            prop_assert_eq!(lfu_decayed(m, now, decay), want);
            let t = lfu_touch(m, now, factor, decay, r);
            prop_assert_eq!((t >> 8) as u16, now);
            let got = u16::from(t as u8);
            prop_assert!(got == u16::from(want) || got == u16::from(want) + 1);
        }

        /// Many accesses grow the counter roughly logarithmically: with factor 10,
        /// a million hits stay below 255 and ten hits reach at least 6.
        #[test]
        fn lfu_growth_is_logarithmic(seed in any::<u64>()) {
            let mut x = seed | 1;
            let mut rnd = || { x ^= x << 13; x ^= x >> 7; x ^= x << 17; (x >> 11) as f64 / (1u64 << 53) as f64 };
            let mut c = LFU_INIT_VAL;
            for _ in 0..10 { c = lfu_log_incr(c, 10, rnd()); }
            prop_assert!(c >= 6);
            for _ in 0..100_000 { c = lfu_log_incr(c, 10, rnd()); }
            prop_assert!(c < 255 && c > 20, "{}", c);
        }
    }

    #[test]
    fn queue_stamps_follow_positions() {
        let mut q = Queue::default();
        assert_eq!(q.push(10), 0);
        assert_eq!(q.push(11), 1);
        assert_eq!(q.pop(), Some((10, 0)));
        assert_eq!(q.push(12), 2);
        assert_eq!(q.pop(), Some((11, 1)));
        assert_eq!(q.pop(), Some((12, 2)));
        assert_eq!(q.pop(), None);
    }

    /// The ghost table has one slot per main-queue key, and keys spread over its slots:
    /// of n keys added to n slots about 1 - 1/e (63%) keep their slot.
    #[test]
    fn ghost_is_sized_to_the_main_queue() {
        let mut f = Fifo::new(true);
        for i in 0..1000u64 {
            f.main.push(i);
        }
        let mut x = 0x1234_5678_9abc_def0u64;
        let mut keys = Vec::new();
        for _ in 0..1000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            keys.push(x);
            f.ghost_add(x);
        }
        assert_eq!(f.ghost.len(), 1000);
        assert_eq!(f.heap_size(), f.main.items.capacity() * 8 + 2000);
        let found = keys.iter().filter(|&&k| f.ghost_take(k)).count();
        assert!((550..=720).contains(&found), "{found}");
        // Growth is by a quarter: the queue's unused capacity stays under a fifth.
        assert!(f.main.items.capacity() * 4 <= f.main.items.len() * 5 + 64);
    }

    #[test]
    fn ghost_remembers_recent_keys() {
        let mut f = Fifo::new(true);
        assert!(!f.ghost_take(42));
        f.ghost_add(42);
        assert!(f.ghost_take(42));
        assert!(!f.ghost_take(42));
        let m = fifo_hit(fifo_hit(fifo_hit(fifo_hit(7))));
        assert_eq!(fifo_freq(m), 3);
        assert_eq!(m & SEQ_MASK, 7);
    }
}
