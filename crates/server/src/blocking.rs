//! The one waiter registry behind every blocking command (BLPOP, BZPOPMIN, BLMOVE, ...).
//!
//! A blocked client owns a [`Slot`] queued, in arrival order, under each `(db, key)` it
//! waits on. A write that may let waiters proceed calls [`Registry::signal`], which wakes
//! the first slot of that key's queue. The woken client re-runs its command: on success it
//! leaves every queue and signals its keys again, so the next waiter gets its turn; on
//! failure it keeps its place. Waiters are therefore served in FIFO order per key, and no
//! wake-up is lost. A client that times out, is unblocked or disconnects also leaves and
//! re-signals, passing on any wake-up it absorbed.
//!
//! A wake-up can reach a waiter late: a stream reader woken for nothing passes the turn
//! to the next reader, and by the time that one re-runs, a new entry may have arrived
//! whose signal went to a reader ahead of it. So each slot records whether it holds an
//! unserved wake-up or is re-running ([`Slot::begin_turn`]), signals are sent before the
//! writer releases the key, and a consuming reader checks [`Registry::turn_ahead`] under
//! the key's lock: while a reader ahead of it has its turn, it leaves the entries to that
//! one (which passes the turn on when done), so consumers are served in arrival order.
//!
//! Some waits end by time rather than by a write: an `RL.LEASE` waiter can proceed when
//! a lease expires. [`Timers`] holds those wake-up times; [`run_timers`] signals each key
//! when its time comes, exactly as a write would.

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// [`Slot::turn`] bit: a signal reached the slot and its re-run has not started.
const SIGNALLED: u8 = 1;
/// [`Slot::turn`] bit: the slot's command is re-running after a wake-up.
const RUNNING: u8 = 2;

/// How a blocked client was released by CLIENT UNBLOCK.
pub const UNBLOCK_NONE: u8 = 0;
/// CLIENT UNBLOCK id TIMEOUT: reply as if the timeout expired.
pub const UNBLOCK_TIMEOUT: u8 = 1;
/// CLIENT UNBLOCK id ERROR: reply `-UNBLOCKED`.
pub const UNBLOCK_ERROR: u8 = 2;

/// One blocked client.
pub struct Slot {
    /// The blocked client's id.
    pub client_id: u64,
    /// Woken by signals and CLIENT UNBLOCK.
    pub notify: tokio::sync::Notify,
    /// Set by CLIENT UNBLOCK.
    pub unblock: AtomicU8,
    /// [`SIGNALLED`] and [`RUNNING`]: whether this waiter has its turn.
    turn: AtomicU8,
    db: usize,
    keys: Vec<Bytes>,
}

impl Slot {
    /// Wakes the waiter and marks the wake-up unserved (called under the registry lock,
    /// where [`Registry::turn_ahead`] reads it).
    fn wake(&self) {
        self.turn.fetch_or(SIGNALLED, Ordering::AcqRel);
        self.notify.notify_one();
    }

    /// The waiter starts re-running after a wake-up: it keeps its turn until
    /// [`Slot::end_turn`]. A signal arriving meanwhile marks the slot again (and leaves a
    /// permit for one more re-run).
    pub fn begin_turn(&self) {
        self.turn.fetch_or(RUNNING, Ordering::AcqRel);
        self.turn.fetch_and(!SIGNALLED, Ordering::AcqRel);
    }

    /// The re-run is over (served, or blocked again).
    pub fn end_turn(&self) {
        self.turn.fetch_and(!RUNNING, Ordering::AcqRel);
    }
}

/// All blocked clients, by key and by client id.
#[derive(Default)]
pub struct Registry {
    inner: Mutex<Inner>,
    /// Number of blocked clients: signals are free when it is zero.
    blocked: AtomicUsize,
}

#[derive(Default)]
struct Inner {
    by_key: HashMap<(usize, Bytes), VecDeque<Arc<Slot>>>,
    by_client: HashMap<u64, Arc<Slot>>,
}

impl Registry {
    /// Queues a client on `keys` of `db` and returns its slot, and whether it is the
    /// first waiter of at least one of the keys. A signal sent after the command found
    /// nothing but before this call reached nobody for such a key (with someone ahead,
    /// it went to them, and their leaving passes the turn on), so the caller must look
    /// again once.
    pub fn register(&self, client_id: u64, db: usize, keys: &[Bytes]) -> (Arc<Slot>, bool) {
        let mut keys: Vec<Bytes> = keys.to_vec();
        keys.sort();
        keys.dedup();
        let slot = Arc::new(Slot {
            client_id,
            notify: tokio::sync::Notify::new(),
            unblock: AtomicU8::new(UNBLOCK_NONE),
            turn: AtomicU8::new(0),
            db,
            keys,
        });
        let mut inner = self.inner.lock();
        let mut first = false;
        for k in &slot.keys {
            let q = inner.by_key.entry((db, k.clone())).or_default();
            first |= q.is_empty();
            q.push_back(slot.clone());
        }
        inner.by_client.insert(client_id, slot.clone());
        self.blocked.fetch_add(1, Ordering::Release);
        (slot, first)
    }

    /// Removes a slot from every queue and passes its turn on.
    pub fn unregister(&self, slot: &Arc<Slot>) {
        {
            let mut inner = self.inner.lock();
            for k in &slot.keys {
                let key = (slot.db, k.clone());
                if let Some(q) = inner.by_key.get_mut(&key) {
                    q.retain(|s| !Arc::ptr_eq(s, slot));
                    if q.is_empty() {
                        inner.by_key.remove(&key);
                    }
                }
            }
            if inner
                .by_client
                .get(&slot.client_id)
                .is_some_and(|s| Arc::ptr_eq(s, slot))
            {
                inner.by_client.remove(&slot.client_id);
            }
        }
        self.blocked.fetch_sub(1, Ordering::Release);
        for k in &slot.keys {
            self.signal(slot.db, k);
        }
    }

    /// Wakes the first client waiting on `key` in `db`, if any.
    pub fn signal(&self, db: usize, key: &[u8]) {
        if self.blocked.load(Ordering::Acquire) == 0 {
            return;
        }
        let inner = self.inner.lock();
        // Keys are looked up by value; `Bytes::copy_from_slice` only runs when someone
        // is blocked at all.
        if let Some(first) = inner
            .by_key
            .get(&(db, Bytes::copy_from_slice(key)))
            .and_then(|q| q.front())
        {
            first.wake();
        }
    }

    /// Wakes, on each of `slot`'s keys, the waiter queued right after `slot` (a stream
    /// reader that could not use a wake-up passes it on).
    pub fn signal_after(&self, slot: &Arc<Slot>) {
        let inner = self.inner.lock();
        for k in &slot.keys {
            let Some(q) = inner.by_key.get(&(slot.db, k.clone())) else {
                continue;
            };
            if let Some(pos) = q.iter().position(|s| Arc::ptr_eq(s, slot))
                && let Some(next) = q.get(pos + 1)
            {
                next.wake();
            }
        }
    }

    /// Wakes the first waiter of every key of `db` (SWAPDB, FLUSHDB).
    pub fn signal_db(&self, db: usize) {
        if self.blocked.load(Ordering::Acquire) == 0 {
            return;
        }
        let inner = self.inner.lock();
        for ((d, _), q) in inner.by_key.iter() {
            if *d == db
                && let Some(first) = q.front()
            {
                first.wake();
            }
        }
    }

    /// CLIENT UNBLOCK: returns true if the client was blocked.
    pub fn unblock(&self, client_id: u64, how: u8) -> bool {
        let inner = self.inner.lock();
        match inner.by_client.get(&client_id) {
            Some(slot) => {
                slot.unblock.store(how, Ordering::Release);
                slot.notify.notify_one();
                true
            }
            None => false,
        }
    }

    /// True while `client_id` waits here, i.e. when its command is being re-run after
    /// a wake-up (list and zset pops then skip keys of another type, as Redis leaves
    /// such clients blocked instead of failing them).
    pub fn is_blocked(&self, client_id: u64) -> bool {
        self.blocked.load(Ordering::Acquire) != 0
            && self.inner.lock().by_client.contains_key(&client_id)
    }

    /// Waiters queued on `key` of `db` before `client_id` (all of them when the client
    /// is not queued there): the ones a FIFO resource must serve first.
    pub fn waiters_ahead(&self, db: usize, key: &[u8], client_id: u64) -> usize {
        if self.blocked.load(Ordering::Acquire) == 0 {
            return 0;
        }
        let inner = self.inner.lock();
        let Some(q) = inner.by_key.get(&(db, Bytes::copy_from_slice(key))) else {
            return 0;
        };
        q.iter()
            .position(|s| s.client_id == client_id)
            .unwrap_or(q.len())
    }

    /// True if a waiter queued on `key` of `db` before `client_id` holds an unserved
    /// wake-up or is re-running: a consuming reader (XREADGROUP `>`) then leaves new
    /// entries to it. Called under the key's lock; writers signal before releasing it, so
    /// an entry this reader can see has already given the first waiter its turn.
    pub fn turn_ahead(&self, db: usize, key: &[u8], client_id: u64) -> bool {
        if self.blocked.load(Ordering::Acquire) == 0 {
            return false;
        }
        let inner = self.inner.lock();
        let Some(q) = inner.by_key.get(&(db, Bytes::copy_from_slice(key))) else {
            return false;
        };
        q.iter()
            .take_while(|s| s.client_id != client_id)
            .any(|s| s.turn.load(Ordering::Acquire) != 0)
    }

    /// How many clients wait on `key` of `db` (LOCK.INFO's waiters).
    pub fn queue_len(&self, db: usize, key: &[u8]) -> usize {
        if self.blocked.load(Ordering::Acquire) == 0 {
            return 0;
        }
        self.inner
            .lock()
            .by_key
            .get(&(db, Bytes::copy_from_slice(key)))
            .map_or(0, VecDeque::len)
    }

    /// True if `client_id` is the first waiter on `key` of `db` (a FAIR lock waiter may
    /// only take the lock on its turn).
    pub fn is_first(&self, db: usize, key: &[u8], client_id: u64) -> bool {
        self.inner
            .lock()
            .by_key
            .get(&(db, Bytes::copy_from_slice(key)))
            .and_then(|q| q.front())
            .is_some_and(|s| s.client_id == client_id)
    }

    /// Number of blocked clients (INFO `blocked_clients`).
    pub fn blocked_clients(&self) -> usize {
        self.blocked.load(Ordering::Acquire)
    }

    /// Number of keys with at least one waiter (INFO `blocked_keys`... and tests).
    pub fn blocked_keys(&self) -> usize {
        self.inner.lock().by_key.len()
    }
}

/// Keys to signal at given times (Unix ms): wake-ups that no write will cause, such as
/// a lease expiring while clients wait for it. An entry is dropped once signalled; a
/// waiter that still cannot proceed schedules the next time it may.
#[derive(Default)]
pub struct Timers {
    due: Mutex<BTreeSet<(u64, usize, Bytes)>>,
    changed: tokio::sync::Notify,
}

impl Timers {
    /// Signals `key` of `db` at `at_ms` (once; scheduling the same time twice is one
    /// entry).
    pub fn schedule(&self, at_ms: u64, db: usize, key: &[u8]) {
        let first = {
            let mut due = self.due.lock();
            due.insert((at_ms, db, Bytes::copy_from_slice(key)));
            due.first().is_some_and(|f| f.0 == at_ms)
        };
        if first {
            self.changed.notify_one();
        }
    }

    /// Number of pending wake-ups (tests).
    pub fn pending(&self) -> usize {
        self.due.lock().len()
    }

    /// Removes and returns the entries due at `now_ms`, and the next time after them.
    fn take_due(&self, now_ms: u64) -> (Vec<(usize, Bytes)>, Option<u64>) {
        let mut due = self.due.lock();
        let mut out = Vec::new();
        while let Some(first) = due.first() {
            if first.0 > now_ms {
                return (out, Some(first.0));
            }
            if let Some((_, db, key)) = due.pop_first() {
                out.push((db, key));
            }
        }
        (out, None)
    }
}

/// Signals each scheduled key when its time comes. Runs until aborted at shutdown.
pub async fn run_timers(timers: Arc<Timers>, registry: Arc<Registry>) {
    loop {
        let changed = timers.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let now = crate::server::unix_ms();
        let (due, next) = timers.take_due(now);
        for (db, key) in due {
            registry.signal(db, &key);
        }
        match next {
            // Sleep in ms of the same clock the deadlines use; an early wake-up only
            // loops once more.
            Some(at) => {
                let wait = std::time::Duration::from_millis(at.saturating_sub(now).max(1));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = &mut changed => {}
                }
            }
            None => changed.await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_waiter_is_woken_and_turns_pass_on() {
        let r = Registry::default();
        let k = Bytes::from_static(b"k");
        let (a, a_first) = r.register(1, 0, std::slice::from_ref(&k));
        let (b, b_first) = r.register(2, 0, std::slice::from_ref(&k));
        // Only a queue's first waiter must look again after queueing.
        assert!(a_first && !b_first);
        let (c, c_first) = r.register(3, 0, &[k.clone(), Bytes::from_static(b"other")]);
        assert!(c_first, "first on `other`");
        r.unregister(&c);
        assert_eq!(r.blocked_clients(), 2);
        r.signal(0, b"k");
        // a holds the permit; b was not woken.
        tokio::time::timeout(std::time::Duration::from_millis(100), a.notify.notified())
            .await
            .expect("a woken");
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), b.notify.notified())
                .await
                .is_err(),
            "b must wait for its turn"
        );
        // a is served and leaves: b gets the turn.
        r.unregister(&a);
        tokio::time::timeout(std::time::Duration::from_millis(100), b.notify.notified())
            .await
            .expect("b woken after a left");
        r.unregister(&b);
        assert_eq!(r.blocked_clients(), 0);
        assert_eq!(r.blocked_keys(), 0);
    }

    #[test]
    fn a_turn_lasts_from_the_signal_to_the_end_of_the_rerun() {
        let r = Registry::default();
        let k = Bytes::from_static(b"k");
        let (a, _) = r.register(1, 0, std::slice::from_ref(&k));
        let (b, _) = r.register(2, 0, std::slice::from_ref(&k));
        let (_c, _) = r.register(3, 0, std::slice::from_ref(&k));
        assert!(!r.turn_ahead(0, b"k", 3), "nobody signalled yet");
        r.signal(0, b"k");
        assert!(r.turn_ahead(0, b"k", 2) && r.turn_ahead(0, b"k", 3));
        assert!(!r.turn_ahead(0, b"k", 1), "nobody is ahead of the first");
        a.begin_turn();
        assert!(r.turn_ahead(0, b"k", 3), "re-running still holds the turn");
        a.end_turn();
        assert!(!r.turn_ahead(0, b"k", 3));
        // a found nothing and passes the turn to b: c must leave entries to b.
        r.signal_after(&a);
        assert!(!r.turn_ahead(0, b"k", 2) && r.turn_ahead(0, b"k", 3));
        b.begin_turn();
        r.signal(0, b"k");
        b.end_turn();
        assert!(r.turn_ahead(0, b"k", 3), "a's new signal is still unserved");
        assert!(!r.turn_ahead(0, b"other", 3) && !r.turn_ahead(1, b"k", 3));
    }

    #[tokio::test]
    async fn unblock_marks_and_wakes() {
        let r = Registry::default();
        let (s, _) = r.register(7, 3, &[Bytes::from_static(b"x"), Bytes::from_static(b"y")]);
        assert!(r.unblock(7, UNBLOCK_ERROR));
        assert!(!r.unblock(8, UNBLOCK_ERROR));
        s.notify.notified().await;
        assert_eq!(s.unblock.load(Ordering::Acquire), UNBLOCK_ERROR);
        r.unregister(&s);
        assert_eq!(r.blocked_keys(), 0);
    }
}
