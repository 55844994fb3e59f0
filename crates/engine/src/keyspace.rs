//! The keyspace: N shards behind mutexes, each holding every database's slice of keys.
//!
//! A key's shard is chosen by the top bits of its hash; the shard's [`Dict`] uses the low
//! bits. Commands lock the shards they touch through one helper ([`Keyspace::lock_keys`]),
//! always in ascending shard order, so multi-key commands are atomic and never deadlock.
//! A lock is a plain `parking_lot` mutex: callers must not hold a [`Guard`] across an
//! `.await` (the guard is `!Send`, so tokio refuses to compile that).
//!
//! Time is passed in (`now` in Unix milliseconds) and randomness is seeded from the
//! configuration: the engine reads no clock and draws no entropy of its own.
//!
//! Expiry: keys with a deadline are also indexed by `(deadline, key)` per database, so
//! the active cycle reclaims exactly the keys that are due, oldest first, within a key
//! budget per call. Reads check the deadline too (lazy expiry).

use crate::dict::Dict;
use crate::value::Value;
use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};
use smallvec::SmallVec;
use std::collections::BTreeMap;
use std::hash::BuildHasher;

/// Construction parameters of a [`Keyspace`].
#[derive(Debug, Clone)]
pub struct KeyspaceConfig {
    /// Number of shards; rounded up to a power of two.
    pub shards: usize,
    /// Number of databases (`SELECT` indexes).
    pub databases: usize,
    /// Seed of the key hash (per process, so clients cannot predict collisions).
    pub hash_seed: u64,
    /// Seed of the shards' random generators (RANDOMKEY, sampling).
    pub rng_seed: u64,
}

/// One key's stored value and metadata.
#[derive(Debug)]
pub struct Entry {
    /// The value.
    pub value: Value,
    expire_at: u64,
    access_secs: u32,
}

impl Entry {
    /// The Unix-ms deadline, or 0 when the key does not expire.
    pub fn expire_at(&self) -> u64 {
        self.expire_at
    }

    /// Seconds (on the server clock) of the last access, for `OBJECT IDLETIME`.
    pub fn access_secs(&self) -> u32 {
        self.access_secs
    }

    /// Sets the last access time (RESTORE ... IDLETIME, loading an RDB's IDLE field).
    pub fn set_access_secs(&mut self, secs: u32) {
        self.access_secs = secs;
    }
}

/// Counters a shard keeps for INFO.
#[derive(Debug, Default, Clone, Copy)]
pub struct ShardStats {
    /// Keys removed because their deadline passed.
    pub expired_keys: u64,
    /// Successful read lookups.
    pub keyspace_hits: u64,
    /// Failed read lookups.
    pub keyspace_misses: u64,
}

impl ShardStats {
    fn add(&mut self, o: &ShardStats) {
        self.expired_keys += o.expired_keys;
        self.keyspace_hits += o.keyspace_hits;
        self.keyspace_misses += o.keyspace_misses;
    }
}

/// One database's keys within one shard.
#[derive(Default)]
struct Db {
    dict: Dict<Entry>,
    /// Keys with a deadline, as `(deadline, key hash) -> count`. The key itself is not
    /// stored: the table entry is found by its hash and deadline, which keeps the index
    /// at a few bytes per volatile key and makes updates allocation-free. The count covers
    /// the (astronomically rare) keys sharing both hash and deadline.
    expires: BTreeMap<(u64, u64), u32>,
    /// Number of keys in `expires`.
    volatile: usize,
}

impl Db {
    fn clear(&mut self) {
        self.dict.clear();
        self.expires.clear();
        self.volatile = 0;
    }

    fn exp_add(&mut self, at: u64, hash: u64) {
        *self.expires.entry((at, hash)).or_default() += 1;
        self.volatile += 1;
    }

    fn exp_remove(&mut self, at: u64, hash: u64) {
        if let Some(n) = self.expires.get_mut(&(at, hash)) {
            *n -= 1;
            self.volatile -= 1;
            if *n == 0 {
                self.expires.remove(&(at, hash));
            }
        }
    }

    /// Reclaims one key whose deadline is `<= now`; false when none is due.
    /// Removes one key whose deadline is `<= now` and returns its name.
    fn exp_reclaim_one(&mut self, now: u64) -> Option<Box<[u8]>> {
        let mut first = self.expires.first_entry()?;
        let (at, hash) = *first.key();
        if at > now {
            return None;
        }
        *first.get_mut() -= 1;
        if *first.get() == 0 {
            first.remove();
        }
        self.volatile -= 1;
        let removed = self.dict.remove_where(hash, |_, e| e.expire_at == at);
        debug_assert!(
            removed.is_some(),
            "deadline index out of sync with the table"
        );
        removed.map(|(k, _)| k)
    }
}

/// One shard: a slice of every database.
pub struct Shard {
    dbs: Vec<Db>,
    /// INFO counters.
    pub stats: ShardStats,
    rng: u64,
}

impl Shard {
    fn next_rand(&mut self) -> u64 {
        // xorshift64*: small, fast, good enough for sampling.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Number of keys (including not yet reclaimed expired ones) in `db`.
    pub fn db_len(&self, db: usize) -> usize {
        self.dbs[db].dict.len()
    }

    /// Visits every key of every database in this shard whose deadline is not past
    /// `now`, database by database (snapshots).
    pub fn for_each_live(&self, now: u64, mut f: impl FnMut(usize, &[u8], &Entry)) {
        for (i, d) in self.dbs.iter().enumerate() {
            d.dict.for_each(|k, e| {
                if e.expire_at == 0 || e.expire_at > now {
                    f(i, k, e);
                }
            });
        }
    }

    /// Number of keys with a deadline in `db`.
    pub fn db_volatile(&self, db: usize) -> usize {
        self.dbs[db].volatile
    }

    /// Average remaining TTL information: sum of deadlines of volatile keys is not kept;
    /// this returns the earliest deadline in `db`, if any.
    pub fn earliest_deadline(&self, db: usize) -> Option<u64> {
        self.dbs[db].expires.keys().next().map(|(t, _)| *t)
    }

    /// Active expiry: removes up to `budget` keys whose deadline is `<= now`, across all
    /// databases of this shard, telling `on_expired` each `(db, key)`. Returns how many
    /// were removed and whether due keys remain.
    pub fn expire_cycle(
        &mut self,
        now: u64,
        budget: usize,
        on_expired: &mut dyn FnMut(usize, &[u8]),
    ) -> (usize, bool) {
        let mut removed = 0;
        let mut more = false;
        for (i, db) in self.dbs.iter_mut().enumerate() {
            loop {
                if removed >= budget {
                    more = db.expires.keys().next().is_some_and(|(t, _)| *t <= now);
                    break;
                }
                let Some(key) = db.exp_reclaim_one(now) else {
                    break;
                };
                on_expired(i, &key);
                removed += 1;
            }
        }
        self.stats.expired_keys += removed as u64;
        (removed, more)
    }
}

/// Told `(db, key)` for every key deleted because its deadline passed (lazily by a
/// lookup or actively by the expiry cycle), while the key's shard is still locked.
pub type ExpireHook = Box<dyn Fn(usize, &[u8]) + Send + Sync>;

/// The sharded keyspace.
pub struct Keyspace {
    shards: Box<[Mutex<Shard>]>,
    bits: u32,
    hasher: foldhash::fast::FixedState,
    databases: usize,
    expire_hook: std::sync::OnceLock<ExpireHook>,
}

impl Keyspace {
    /// Builds an empty keyspace.
    pub fn new(cfg: &KeyspaceConfig) -> Keyspace {
        let n = cfg.shards.max(1).next_power_of_two();
        let databases = cfg.databases.max(1);
        let shards = (0..n)
            .map(|i| {
                let mut dbs = Vec::with_capacity(databases);
                dbs.resize_with(databases, Db::default);
                Mutex::new(Shard {
                    dbs,
                    stats: ShardStats::default(),
                    rng: (cfg.rng_seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1,
                })
            })
            .collect();
        Keyspace {
            shards,
            bits: n.trailing_zeros(),
            hasher: foldhash::fast::FixedState::with_seed(cfg.hash_seed),
            databases,
            expire_hook: std::sync::OnceLock::new(),
        }
    }

    /// Installs the hook told about expired keys (once; later calls are ignored).
    pub fn set_expire_hook(&self, hook: ExpireHook) {
        let _ = self.expire_hook.set(hook);
    }

    fn expired(&self, db: usize, key: &[u8]) {
        if let Some(h) = self.expire_hook.get() {
            h(db, key);
        }
    }

    /// One active expiry step on shard `i`: see [`Shard::expire_cycle`]; the expire hook
    /// hears of every removed key.
    pub fn expire_shard(&self, i: usize, now: u64, budget: usize) -> (usize, bool) {
        let mut shard = self.shards[i].lock();
        shard.expire_cycle(now, budget, &mut |db, key| self.expired(db, key))
    }

    /// Number of databases.
    pub fn databases(&self) -> usize {
        self.databases
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The hash of a key.
    pub fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    fn shard_of(&self, hash: u64) -> usize {
        if self.bits == 0 {
            0
        } else {
            (hash >> (64 - self.bits)) as usize
        }
    }

    /// Locks the shards holding `keys` (ascending order, each once).
    pub fn lock_keys<K: AsRef<[u8]>>(&self, keys: &[K], now: u64) -> Guard<'_> {
        let mut idx: SmallVec<[usize; 8]> = keys
            .iter()
            .map(|k| self.shard_of(self.hash(k.as_ref())))
            .collect();
        idx.sort_unstable();
        idx.dedup();
        self.lock_indexes(&idx, now)
    }

    /// Locks the shard holding one key.
    pub fn lock_key(&self, key: &[u8], now: u64) -> Guard<'_> {
        let i = self.shard_of(self.hash(key));
        self.lock_indexes(&[i], now)
    }

    /// Locks every shard (whole-keyspace commands: FLUSHDB, DBSIZE, SWAPDB, KEYS ...).
    pub fn lock_all(&self, now: u64) -> Guard<'_> {
        let idx: Vec<usize> = (0..self.shards.len()).collect();
        self.lock_indexes(&idx, now)
    }

    fn lock_indexes(&self, idx: &[usize], now: u64) -> Guard<'_> {
        debug_assert!(idx.windows(2).all(|w| w[0] < w[1]));
        Guard {
            ks: self,
            guards: idx.iter().map(|&i| (i, self.shards[i].lock())).collect(),
            now,
            all: idx.len() == self.shards.len(),
        }
    }

    /// Runs `f` on one shard while holding its lock (expiry cycle, stats).
    pub fn with_shard<R>(&self, i: usize, f: impl FnOnce(&mut Shard) -> R) -> R {
        f(&mut self.shards[i].lock())
    }

    /// Sums every shard's counters.
    pub fn stats(&self) -> ShardStats {
        let mut total = ShardStats::default();
        for s in self.shards.iter() {
            total.add(&s.lock().stats);
        }
        total
    }

    /// Resets the INFO counters (CONFIG RESETSTAT).
    pub fn reset_stats(&self) {
        for s in self.shards.iter() {
            s.lock().stats = ShardStats::default();
        }
    }

    /// Per-database (keys, volatile keys), locking one shard at a time.
    pub fn db_sizes(&self) -> Vec<(usize, usize)> {
        let mut out = vec![(0, 0); self.databases];
        for s in self.shards.iter() {
            let s = s.lock();
            for (db, o) in out.iter_mut().enumerate() {
                o.0 += s.db_len(db);
                o.1 += s.db_volatile(db);
            }
        }
        out
    }

    /// One SCAN step over `db`: visits live keys from `cursor` until about `count` keys
    /// were visited, and returns the next cursor (0 when done). The cursor's low bits name
    /// the shard, the rest is that shard's table cursor, so only one shard is locked at a
    /// time.
    pub fn scan(
        &self,
        db: usize,
        cursor: u64,
        count: usize,
        now: u64,
        mut f: impl FnMut(&[u8], &Entry),
    ) -> u64 {
        let nshards = self.shards.len() as u64;
        let mut shard = cursor & (nshards - 1);
        let mut inner = if self.bits == 0 {
            cursor
        } else {
            cursor >> self.bits
        };
        let mut visited = 0usize;
        let max_steps = count.saturating_mul(10).max(1);
        let mut steps = 0usize;
        loop {
            let guard = self.shards[shard as usize].lock();
            let dict = &guard.dbs[db].dict;
            loop {
                inner = dict.scan(inner, |k, e| {
                    if e.expire_at == 0 || e.expire_at > now {
                        visited += 1;
                        f(k, e);
                    }
                });
                steps += 1;
                if inner == 0 || visited >= count || steps >= max_steps {
                    break;
                }
            }
            drop(guard);
            if inner == 0 {
                shard += 1;
                if shard == nshards {
                    return 0;
                }
            }
            if visited >= count || steps >= max_steps {
                let next = if self.bits == 0 {
                    inner
                } else {
                    (inner << self.bits) | shard
                };
                // A cursor of 0 means "done"; shard 0 with table cursor 0 only occurs at
                // the start, which the loop above never returns.
                return next;
            }
        }
    }
}

/// Locked shards; all keyspace reads and writes go through it.
pub struct Guard<'a> {
    ks: &'a Keyspace,
    // Most commands lock one or two shards: keep those guards inline (no allocation).
    guards: SmallVec<[(usize, MutexGuard<'a, Shard>); 2]>,
    now: u64,
    all: bool,
}

impl<'a> Guard<'a> {
    /// The time (Unix ms) this guard judges expiry by.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// The keyspace this guard locks into.
    pub fn keyspace(&self) -> &'a Keyspace {
        self.ks
    }

    fn shard_mut(&mut self, hash: u64) -> &mut Shard {
        let i = self.ks.shard_of(hash);
        if self.all {
            return &mut self.guards[i].1;
        }
        let pos = self.guards.iter().position(|(s, _)| *s == i);
        match pos {
            Some(p) => &mut self.guards[p].1,
            // Touching a key whose shard was not locked is a bug in a command handler.
            None => panic!("keyspace: key's shard {i} was not locked by this command"),
        }
    }

    /// Looks a key up, removing it first if it has expired, and records the access.
    pub fn get(&mut self, db: usize, key: &[u8]) -> Option<&mut Entry> {
        self.lookup(db, key, true)
    }

    /// Looks a key up without counting it as an access (OBJECT IDLETIME).
    pub fn peek(&mut self, db: usize, key: &[u8]) -> Option<&Entry> {
        self.lookup(db, key, false).map(|e| &*e)
    }

    fn lookup(&mut self, db: usize, key: &[u8], touch: bool) -> Option<&mut Entry> {
        self.lookup_inner(db, key, touch, false)
    }

    fn lookup_inner(
        &mut self,
        db: usize,
        key: &[u8],
        touch: bool,
        count: bool,
    ) -> Option<&mut Entry> {
        let ks = self.ks;
        let hash = ks.hash(key);
        let now = self.now;
        let shard = self.shard_mut(hash);
        let d = &mut shard.dbs[db];
        let expired = match d.dict.get(hash, key) {
            None => {
                if count {
                    shard.stats.keyspace_misses += 1;
                }
                return None;
            }
            Some(e) => e.expire_at != 0 && e.expire_at <= now,
        };
        if expired {
            if let Some((_, e)) = d.dict.remove(hash, key) {
                d.exp_remove(e.expire_at, hash);
            }
            shard.stats.expired_keys += 1;
            ks.expired(db, key);
            if count {
                shard.stats.keyspace_misses += 1;
            }
            return None;
        }
        if count {
            shard.stats.keyspace_hits += 1;
        }
        let e = shard.dbs[db].dict.get_mut(hash, key)?;
        if touch {
            e.access_secs = (now / 1000) as u32;
        }
        Some(e)
    }

    /// Like [`Guard::get`], and counts a keyspace hit or miss (read commands).
    pub fn lookup_read(&mut self, db: usize, key: &[u8]) -> Option<&mut Entry> {
        self.lookup_inner(db, key, true, true)
    }

    /// Whether the key is stored, judged without removing or counting anything:
    /// `None` not stored, `Some(true)` stored but past its deadline, `Some(false)` live
    /// (WATCH and EXEC, which must tell expired-but-stored keys apart like Redis).
    pub fn stored(&mut self, db: usize, key: &[u8]) -> Option<bool> {
        let hash = self.ks.hash(key);
        let now = self.now;
        let shard = self.shard_mut(hash);
        shard.dbs[db]
            .dict
            .get(hash, key)
            .map(|e| e.expire_at != 0 && e.expire_at <= now)
    }

    /// True if the key exists (and has not expired).
    pub fn exists(&mut self, db: usize, key: &[u8]) -> bool {
        self.get(db, key).is_some()
    }

    /// Stores `value` under `key` with deadline `expire_at` (0: none), replacing any old
    /// value and deadline.
    pub fn insert(&mut self, db: usize, key: &[u8], value: Value, expire_at: u64) {
        let hash = self.ks.hash(key);
        let now = self.now;
        let shard = self.shard_mut(hash);
        let d = &mut shard.dbs[db];
        let entry = Entry {
            value,
            expire_at,
            access_secs: (now / 1000) as u32,
        };
        // One lookup; the deadline index is touched only when a deadline changes.
        if let Some(slot) = d.dict.get_mut(hash, key) {
            let old = std::mem::replace(slot, entry).expire_at;
            if old != expire_at {
                if old != 0 {
                    d.exp_remove(old, hash);
                }
                if expire_at != 0 {
                    d.exp_add(expire_at, hash);
                }
            }
            return;
        }
        if expire_at != 0 {
            d.exp_add(expire_at, hash);
        }
        d.dict.insert_unique(hash, key.into(), entry);
    }

    /// Removes a key; returns its entry if it existed (an expired key counts as absent).
    pub fn remove(&mut self, db: usize, key: &[u8]) -> Option<Entry> {
        // One table lookup: take the entry out, then judge its deadline.
        let ks = self.ks;
        let hash = ks.hash(key);
        let now = self.now;
        let shard = self.shard_mut(hash);
        let d = &mut shard.dbs[db];
        let (_, e) = d.dict.remove(hash, key)?;
        if e.expire_at != 0 {
            d.exp_remove(e.expire_at, hash);
            if e.expire_at <= now {
                shard.stats.expired_keys += 1;
                ks.expired(db, key);
                return None;
            }
        }
        Some(e)
    }

    /// Sets or clears (0) a live key's deadline. Returns false if the key does not exist.
    pub fn set_expire(&mut self, db: usize, key: &[u8], expire_at: u64) -> bool {
        let Some(old) = self.get(db, key).map(|e| e.expire_at) else {
            return false;
        };
        let hash = self.ks.hash(key);
        let d = &mut self.shard_mut(hash).dbs[db];
        if old != expire_at {
            if old != 0 {
                d.exp_remove(old, hash);
            }
            if expire_at != 0 {
                d.exp_add(expire_at, hash);
            }
        }
        if let Some(e) = d.dict.get_mut(hash, key) {
            e.expire_at = expire_at;
        }
        true
    }

    /// Keys in `db` across the locked shards (expired but unreclaimed keys included, as
    /// Redis's DBSIZE counts them).
    pub fn db_len(&self, db: usize) -> usize {
        self.guards.iter().map(|(_, s)| s.db_len(db)).sum()
    }

    /// Visits every live key of `db` in the locked shards.
    pub fn for_each_key(&self, db: usize, mut f: impl FnMut(&[u8], &Entry)) {
        let now = self.now;
        for (_, s) in &self.guards {
            s.dbs[db].dict.for_each(|k, e| {
                if e.expire_at == 0 || e.expire_at > now {
                    f(k, e);
                }
            });
        }
    }

    /// Empties `db` in the locked shards (all shards for FLUSHDB).
    pub fn flush_db(&mut self, db: usize) {
        for (_, s) in self.guards.iter_mut() {
            s.dbs[db].clear();
        }
    }

    /// Swaps two databases in every locked shard (SWAPDB locks all).
    pub fn swap_db(&mut self, a: usize, b: usize) {
        debug_assert!(self.all, "SWAPDB must lock every shard");
        for (_, s) in self.guards.iter_mut() {
            s.dbs.swap(a, b);
        }
    }

    /// A random live key of `db` among the locked shards, or None if there is none.
    pub fn random_key(&mut self, db: usize) -> Option<Bytes> {
        // Bounded retries: a database full of expired keys must not loop forever.
        for _ in 0..100 {
            let total: usize = self.db_len(db);
            if total == 0 {
                return None;
            }
            let r = self.guards[0].1.next_rand();
            let mut pick = (r % total as u64) as usize;
            let mut chosen = 0;
            for (pos, (_, s)) in self.guards.iter().enumerate() {
                let n = s.db_len(db);
                if pick < n {
                    chosen = pos;
                    break;
                }
                pick -= n;
            }
            let shard = &mut self.guards[chosen].1;
            let (r1, r2) = (shard.next_rand(), shard.next_rand());
            let key = shard.dbs[db]
                .dict
                .random_entry(r1, r2)
                .map(|(k, _)| Bytes::copy_from_slice(k))?;
            if self.get(db, &key).is_some() {
                return Some(key);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::StrValue;

    fn ks() -> Keyspace {
        Keyspace::new(&KeyspaceConfig {
            shards: 8,
            databases: 4,
            hash_seed: 1,
            rng_seed: 2,
        })
    }

    fn s(v: &str) -> Value {
        Value::Str(StrValue::from_bytes(v.as_bytes()))
    }

    #[test]
    fn lazy_expiry_hides_and_reclaims() {
        let ks = ks();
        let mut g = ks.lock_keys(&[b"a", b"b"], 1_000);
        g.insert(0, b"a", s("1"), 2_000);
        g.insert(0, b"b", s("2"), 0);
        assert!(g.exists(0, b"a"));
        drop(g);
        let mut g = ks.lock_keys(&[b"a", b"b"], 2_000);
        assert!(!g.exists(0, b"a"));
        assert!(g.exists(0, b"b"));
        drop(g);
        assert_eq!(ks.stats().expired_keys, 1);
        assert_eq!(ks.db_sizes()[0], (1, 0));
    }

    #[test]
    fn active_expiry_respects_budget() {
        let ks = ks();
        let keys: Vec<String> = (0..100).map(|i| format!("k{i}")).collect();
        let mut g = ks.lock_all(0);
        for k in &keys {
            g.insert(1, k.as_bytes(), s("v"), 10);
        }
        drop(g);
        let mut removed = 0;
        for i in 0..ks.shard_count() {
            removed += ks.with_shard(i, |sh| sh.expire_cycle(5, 1000, &mut |_, _| {}).0);
        }
        assert_eq!(removed, 0, "nothing is due at t=5");
        for i in 0..ks.shard_count() {
            let (n, _) = ks.with_shard(i, |sh| sh.expire_cycle(10, 3, &mut |_, _| {}));
            assert!(n <= 3);
            removed += n;
        }
        for i in 0..ks.shard_count() {
            removed += ks.with_shard(i, |sh| sh.expire_cycle(10, 1000, &mut |_, _| {}).0);
        }
        assert_eq!(removed, 100);
        assert_eq!(ks.db_sizes()[1], (0, 0));
    }

    #[test]
    fn set_expire_and_overwrite_keep_index_consistent() {
        let ks = ks();
        let mut g = ks.lock_all(0);
        g.insert(0, b"k", s("v"), 100);
        assert!(g.set_expire(0, b"k", 200));
        g.insert(0, b"k", s("w"), 0);
        assert_eq!(g.get(0, b"k").map(|e| e.expire_at()), Some(0));
        assert!(!g.set_expire(0, b"missing", 5));
        drop(g);
        assert_eq!(ks.db_sizes()[0], (1, 0));
    }

    #[test]
    fn scan_covers_all_shards() {
        let ks = ks();
        let mut g = ks.lock_all(0);
        for i in 0..1000 {
            g.insert(2, format!("key{i}").as_bytes(), s("v"), 0);
        }
        drop(g);
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        loop {
            cursor = ks.scan(2, cursor, 10, 0, |k, _| {
                seen.insert(k.to_vec());
            });
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(seen.len(), 1000);
    }

    #[test]
    fn swap_and_flush() {
        let ks = ks();
        let mut g = ks.lock_all(0);
        g.insert(0, b"a", s("1"), 0);
        g.swap_db(0, 3);
        assert!(!g.exists(0, b"a"));
        assert!(g.exists(3, b"a"));
        assert_eq!(g.random_key(3).as_deref(), Some(&b"a"[..]));
        g.flush_db(3);
        assert_eq!(g.db_len(3), 0);
        assert_eq!(g.random_key(3), None);
    }
}
