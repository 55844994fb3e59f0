//! Transaction state: the commands a client queued after MULTI, and the registry of
//! WATCHed keys.
//!
//! WATCH is optimistic locking: a client names keys, and its next EXEC fails (null reply)
//! if any of them was modified in between. Every modification of a key reaches
//! [`Watches::touch`] through the same hook that emits keyspace notifications (one call
//! per modified key, made while the command still holds the key's shard lock), so a
//! touch can never race with the EXEC that checks it: EXEC takes the server's exec gate
//! for writing, which waits until every running command has finished.
//!
//! Lock order: keyspace shards, then the registry's mutex (never the other way round).

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// What a client queued since MULTI.
#[derive(Default)]
pub struct MultiState {
    /// Queued commands: table id and arguments.
    pub queued: Vec<(usize, Vec<Bytes>)>,
    /// A command was refused while queueing: EXEC answers EXECABORT.
    pub aborted: bool,
    /// Bytes held by the queued arguments (counted against `client-query-buffer-limit`).
    pub mem: usize,
    /// The flags of the queued commands, or-ed together as each runs with them (Redis's
    /// `mstate.cmd_flags`): EXEC is refused with MISCONF while writes are denied if one
    /// is `write`, held by CLIENT PAUSE WRITE if one writes or may replicate, refused
    /// with OOM over maxmemory if one is `denyoom`.
    pub flags: u32,
}

impl MultiState {
    /// Queues one command with the flags it runs with.
    pub fn push(&mut self, id: usize, args: &[Bytes], flags: u32) {
        self.mem += args
            .iter()
            .map(|a| a.len() + std::mem::size_of::<Bytes>())
            .sum::<usize>();
        self.flags |= flags;
        self.queued.push((id, args.to_vec()));
    }

    /// True if some queued command has one of `flags`.
    pub fn has(&self, flags: u32) -> bool {
        self.flags & flags != 0
    }
}

/// One client's watch on one key.
#[derive(Default)]
pub struct Watcher {
    /// The owning client's dirty flag.
    client_dirty: Arc<AtomicBool>,
    /// The key was stored but already expired when watched (or SWAPDB put an expired key
    /// in its place): deleting it is no logical change.
    expired: AtomicBool,
    /// Touched while `expired`: EXEC fails only if the key is still stored then.
    touched_expired: AtomicBool,
}

impl Watcher {
    fn touch(&self) {
        if self.expired.load(Ordering::Relaxed) {
            self.touched_expired.store(true, Ordering::Relaxed);
        } else {
            self.client_dirty.store(true, Ordering::Relaxed);
        }
    }
}

/// How a key watched in a database stands when the database is emptied or replaced
/// (FLUSHDB, FLUSHALL, SWAPDB), judged before the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replaced {
    /// The key is stored in the database being emptied (expired or not).
    pub existed: bool,
    /// What takes its place: `None` nothing, `Some(true)` an expired key, `Some(false)`
    /// a live key.
    pub replacement: Option<bool>,
}

/// A client's watched keys.
#[derive(Default)]
pub struct WatchState {
    /// Set when a watched key is modified.
    pub dirty: Arc<AtomicBool>,
    /// Watched keys, each once.
    pub keys: Vec<(usize, Bytes, Arc<Watcher>)>,
}

impl WatchState {
    /// True when the client watches at least one key.
    pub fn is_watching(&self) -> bool {
        !self.keys.is_empty()
    }
}

/// The clients watching each `(db, key)`.
type WatchMap = HashMap<(usize, Bytes), Vec<Arc<Watcher>>>;

/// Every client's watched keys, by key.
#[derive(Default)]
pub struct Watches {
    /// Number of `(db, key)` entries; zero makes [`Watches::touch`] one atomic load.
    count: AtomicUsize,
    map: Mutex<WatchMap>,
}

impl Watches {
    /// Watches `key` in `db` for the client owning `state`; `expired` tells that the key
    /// is stored but already past its deadline.
    pub fn watch(&self, state: &mut WatchState, db: usize, key: &Bytes, expired: bool) {
        if state.keys.iter().any(|(d, k, _)| *d == db && k == key) {
            return;
        }
        let w = Arc::new(Watcher {
            client_dirty: state.dirty.clone(),
            expired: AtomicBool::new(expired),
            touched_expired: AtomicBool::new(false),
        });
        let mut map = self.map.lock();
        let list = map.entry((db, key.clone())).or_default();
        if list.is_empty() {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
        list.push(w.clone());
        state.keys.push((db, key.clone(), w));
    }

    /// Forgets every key the client watches and clears its dirty flag.
    pub fn unwatch_all(&self, state: &mut WatchState) {
        if !state.keys.is_empty() {
            let mut map = self.map.lock();
            for (db, key, w) in state.keys.drain(..) {
                let k = (db, key);
                if let Some(list) = map.get_mut(&k) {
                    list.retain(|x| !Arc::ptr_eq(x, &w));
                    if list.is_empty() {
                        map.remove(&k);
                        self.count.fetch_sub(1, Ordering::Relaxed);
                    }
                }
            }
        }
        state.dirty.store(false, Ordering::Relaxed);
    }

    /// Marks every client watching `key` in `db` as dirty (the key was modified).
    pub fn touch(&self, db: usize, key: &[u8]) {
        if self.count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let map = self.map.lock();
        if let Some(list) = map.get(&(db, Bytes::copy_from_slice(key))) {
            for w in list {
                w.touch();
            }
        }
    }

    /// Touches the keys watched in `db` as Redis's `touchAllWatchedKeysInDb` does when
    /// the database is emptied or swapped: `judge` tells, per watched key, whether it
    /// is stored now and what replaces it.
    pub fn touch_db(&self, db: usize, mut judge: impl FnMut(&[u8]) -> Replaced) {
        if self.count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let map = self.map.lock();
        for ((d, key), list) in map.iter() {
            if *d != db {
                continue;
            }
            let r = judge(key);
            if !r.existed && r.replacement.is_none() {
                continue;
            }
            for w in list {
                if w.expired.load(Ordering::Relaxed) {
                    match r.replacement {
                        // The expired key is gone: no logical change.
                        None => {
                            w.expired.store(false, Ordering::Relaxed);
                            continue;
                        }
                        // Still an expired key.
                        Some(true) => continue,
                        Some(false) => {}
                    }
                } else if !r.existed && r.replacement == Some(true) {
                    // A missing key replaced with an expired one.
                    w.expired.store(true, Ordering::Relaxed);
                    continue;
                }
                w.client_dirty.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Number of distinct watched keys.
    pub fn watched_keys(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}

/// Whether one watched key makes EXEC fail, given how the key stands now: `stored` (in
/// the table, expired or not) and `stale` (stored and past its deadline).
pub fn key_aborts(w: &Watcher, stored: bool, stale: bool) -> bool {
    if w.expired.load(Ordering::Relaxed) {
        // Watched while expired: only a touch that left a key behind counts.
        w.touched_expired.load(Ordering::Relaxed) && stored && !stale
    } else {
        // A live key that expired since WATCH is a modification (Redis's
        // isWatchedKeyExpired).
        stale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn touch_marks_only_watchers_of_that_key_and_db() {
        let w = Watches::default();
        let mut a = WatchState::default();
        let mut b = WatchState::default();
        w.watch(&mut a, 0, &key("x"), false);
        w.watch(&mut b, 1, &key("x"), false);
        w.touch(0, b"y");
        assert!(!a.dirty.load(Ordering::Relaxed));
        w.touch(0, b"x");
        assert!(a.dirty.load(Ordering::Relaxed));
        assert!(!b.dirty.load(Ordering::Relaxed));
    }

    #[test]
    fn unwatch_all_removes_entries_and_clears_the_flag() {
        let w = Watches::default();
        let mut a = WatchState::default();
        let mut b = WatchState::default();
        w.watch(&mut a, 0, &key("x"), false);
        w.watch(&mut a, 0, &key("x"), false);
        w.watch(&mut b, 0, &key("x"), false);
        w.watch(&mut a, 0, &key("z"), false);
        assert_eq!(a.keys.len(), 2);
        assert_eq!(w.watched_keys(), 2);
        w.touch(0, b"x");
        w.unwatch_all(&mut a);
        assert!(!a.dirty.load(Ordering::Relaxed));
        assert!(!a.is_watching());
        assert_eq!(w.watched_keys(), 1);
        // b still watches x; a no longer sees touches.
        b.dirty.store(false, Ordering::Relaxed);
        w.touch(0, b"x");
        assert!(b.dirty.load(Ordering::Relaxed));
        assert!(!a.dirty.load(Ordering::Relaxed));
        w.unwatch_all(&mut b);
        assert_eq!(w.watched_keys(), 0);
    }

    #[test]
    fn touch_db_asks_per_key() {
        let w = Watches::default();
        let mut a = WatchState::default();
        let mut b = WatchState::default();
        w.watch(&mut a, 0, &key("exists"), false);
        w.watch(&mut b, 0, &key("missing"), false);
        w.touch_db(0, |k| Replaced {
            existed: k == b"exists",
            replacement: None,
        });
        assert!(a.dirty.load(Ordering::Relaxed));
        assert!(!b.dirty.load(Ordering::Relaxed));
        let all = |_: &[u8]| Replaced {
            existed: true,
            replacement: None,
        };
        w.touch_db(1, all);
        assert!(!b.dirty.load(Ordering::Relaxed));
    }

    #[test]
    fn expired_watches_follow_redis() {
        let w = Watches::default();
        // Watched while expired; the expired key is then deleted: no change.
        let mut a = WatchState::default();
        w.watch(&mut a, 0, &key("k"), true);
        w.touch(0, b"k");
        assert!(!a.dirty.load(Ordering::Relaxed));
        let (_, _, wa) = &a.keys[0];
        assert!(!key_aborts(wa, false, false));
        // ...but a live key stored by EXEC time counts.
        assert!(key_aborts(wa, true, false));
        // A live watched key that expires by EXEC time aborts even untouched.
        let mut b = WatchState::default();
        w.watch(&mut b, 0, &key("live"), false);
        let (_, _, wb) = &b.keys[0];
        assert!(key_aborts(wb, true, true));
        assert!(!key_aborts(wb, true, false));
        // SWAPDB replacing a missing key with an expired one does not dirty.
        let mut c = WatchState::default();
        w.watch(&mut c, 0, &key("m"), false);
        w.touch_db(0, |k| Replaced {
            existed: false,
            replacement: (k == b"m").then_some(true),
        });
        assert!(!c.dirty.load(Ordering::Relaxed));
        let (_, _, wc) = &c.keys[0];
        assert!(!key_aborts(wc, true, true));
        // ...but a live replacement does.
        w.touch_db(0, |k| Replaced {
            existed: true,
            replacement: (k == b"m").then_some(false),
        });
        assert!(c.dirty.load(Ordering::Relaxed));
    }
}
