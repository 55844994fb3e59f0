//! Server-wide state of the job queues (`docs/jobs.md`): the jid index, the workers
//! registry, the multi-queue fetch rotation, and the `job-*` limits.
//!
//! Jobs live inside their queue's value (`basalt_engine::types::queue`). Commands that
//! name only a jid (ACK, FAIL, GET, ...) find the queue through the **jid index**,
//! `jid -> (db, queue key)`. The index is kept true where a queue moves or goes away
//! (RENAME, MOVE, SWAPDB, FLUSH*, DEL/UNLINK, RESTORE REPLACE, retention), as
//! `coord.rs` keeps sessions' holdings; a path that drops a queue silently (its key's
//! expiry, an overwrite by SET) leaves entries behind, so every use verifies that the
//! queue at `(db, key)` still holds the job and drops the entry when it does not.

use basalt_engine::types::QueueValue;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// The `job-*` directives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobConfig {
    /// `job-max-payload-bytes`: payload, RESULT, PROGRESS message, FAIL error.
    pub max_payload: u64,
    /// `job-max-id-bytes`: jid length.
    pub max_id: u64,
    /// `job-max-pushb`: jobs per JOB.PUSHB.
    pub max_pushb: u64,
    /// `job-max-tags`: TAGS per job.
    pub max_tags: u64,
    /// `job-max-depends`: DEPENDS per job.
    pub max_depends: u64,
    /// `job-max-fetch-count`: COUNT of FETCH, DLQ.LIST, JOB.EVENTS.
    pub max_fetch_count: u64,
    /// `job-max-fetch-queues`: queues per FETCH.
    pub max_fetch_queues: u64,
    /// `job-max-errors`: failure messages kept per job.
    pub max_errors: u64,
    /// `job-default-retry`.
    pub default_retry: u64,
    /// `job-default-timeout` (ms).
    pub default_timeout: u64,
    /// `job-events-maxlen` (0: no events).
    pub events_maxlen: u64,
    /// `job-worker-ttl` (ms).
    pub worker_ttl: u64,
    /// `job-retention-completed-count`.
    pub retention_completed_count: u64,
    /// `job-retention-completed-ms`.
    pub retention_completed_ms: u64,
    /// `job-retention-dead-count`.
    pub retention_dead_count: u64,
    /// `job-retention-dead-ms`.
    pub retention_dead_ms: u64,
}

/// A worker's state as WORKER.BEAT answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WorkerState {
    /// Keep working.
    Ok,
    /// Fetch no more.
    Quiet,
    /// Finish or give back in-flight jobs and exit.
    Terminate,
}

impl WorkerState {
    /// The reply word.
    pub fn name(self) -> &'static str {
        match self {
            WorkerState::Ok => "ok",
            WorkerState::Quiet => "quiet",
            WorkerState::Terminate => "terminate",
        }
    }
}

/// One registered worker.
#[derive(Debug, Clone)]
pub struct Worker {
    /// Its state.
    pub state: WorkerState,
    /// Last BEAT (Unix ms).
    pub last_beat: u64,
    /// The ACTIVE count it reported.
    pub active: u64,
}

/// Jid index, workers, fetch rotation.
#[derive(Default)]
pub struct Jobs {
    index: Mutex<HashMap<Bytes, (usize, Bytes)>>,
    workers: Mutex<HashMap<Bytes, Worker>>,
    rotation: AtomicU64,
}

impl Jobs {
    /// Where job `jid` lives, as last recorded (verify before use).
    pub fn locate(&self, jid: &[u8]) -> Option<(usize, Bytes)> {
        self.index.lock().get(jid).cloned()
    }

    /// Records that `jid` lives in queue `key` of `db`.
    pub fn record(&self, jid: &[u8], db: usize, key: &Bytes) {
        self.index
            .lock()
            .insert(Bytes::copy_from_slice(jid), (db, key.clone()));
    }

    /// Forgets `jid` if it is recorded at `(db, key)`.
    pub fn forget(&self, jid: &[u8], db: usize, key: &[u8]) {
        let mut ix = self.index.lock();
        if ix.get(jid).is_some_and(|(d, k)| *d == db && **k == *key) {
            ix.remove(jid);
        }
    }

    /// Forgets every job of queue `q` recorded at `(db, key)` (the queue was deleted).
    pub fn forget_queue(&self, q: &QueueValue, db: usize, key: &[u8]) {
        let mut ix = self.index.lock();
        for jid in q.jids() {
            if ix.get(jid).is_some_and(|(d, k)| *d == db && **k == *key) {
                ix.remove(jid);
            }
        }
    }

    /// Records every job of queue `q` at `(db, key)` (a queue loaded or restored there).
    pub fn adopt_queue(&self, q: &QueueValue, db: usize, key: &[u8]) {
        let key = Bytes::copy_from_slice(key);
        let mut ix = self.index.lock();
        for jid in q.jids() {
            ix.insert(Bytes::copy_from_slice(jid), (db, key.clone()));
        }
    }

    /// Queue `q` moved from `from` to `to` (RENAME, MOVE).
    pub fn move_queue(&self, q: &QueueValue, from: (usize, &[u8]), to: (usize, &[u8])) {
        let key = Bytes::copy_from_slice(to.1);
        let mut ix = self.index.lock();
        for jid in q.jids() {
            if let Some(e) = ix.get_mut(jid)
                && e.0 == from.0
                && *e.1 == *from.1
            {
                *e = (to.0, key.clone());
            }
        }
    }

    /// SWAPDB a b.
    pub fn swap_db(&self, a: usize, b: usize) {
        for (db, _) in self.index.lock().values_mut() {
            if *db == a {
                *db = b;
            } else if *db == b {
                *db = a;
            }
        }
    }

    /// FLUSHDB (`Some(db)`) or FLUSHALL (`None`).
    pub fn flush_db(&self, db: Option<usize>) {
        let mut ix = self.index.lock();
        match db {
            None => ix.clear(),
            Some(d) => ix.retain(|_, (db, _)| *db != d),
        }
    }

    /// Number of jids indexed (INFO, tests).
    pub fn indexed(&self) -> usize {
        self.index.lock().len()
    }

    /// The starting offset of a multi-queue fetch (round robin across calls).
    pub fn next_rotation(&self) -> u64 {
        self.rotation.fetch_add(1, Ordering::Relaxed)
    }

    /// WORKER.BEAT: registers or refreshes `wid`; its state.
    pub fn beat(&self, wid: &[u8], active: Option<u64>, now: u64, ttl: u64) -> WorkerState {
        let mut w = self.workers.lock();
        prune(&mut w, now, ttl);
        let e = w.entry(Bytes::copy_from_slice(wid)).or_insert(Worker {
            state: WorkerState::Ok,
            last_beat: now,
            active: 0,
        });
        e.last_beat = now;
        if let Some(a) = active {
            e.active = a;
        }
        e.state
    }

    /// WORKER.QUIET / WORKER.TERMINATE: moves `wid` forward to `state` (never back).
    pub fn set_state(&self, wid: &[u8], state: WorkerState, now: u64, ttl: u64) {
        let mut w = self.workers.lock();
        prune(&mut w, now, ttl);
        let e = w.entry(Bytes::copy_from_slice(wid)).or_insert(Worker {
            state: WorkerState::Ok,
            last_beat: now,
            active: 0,
        });
        e.state = e.state.max(state);
    }

    /// The state of `wid` (`Ok` when unknown).
    pub fn worker_state(&self, wid: &[u8], now: u64, ttl: u64) -> WorkerState {
        let w = self.workers.lock();
        match w.get(wid) {
            Some(e) if e.last_beat.saturating_add(ttl) > now => e.state,
            _ => WorkerState::Ok,
        }
    }

    /// Every live worker, sorted by id.
    pub fn workers(&self, now: u64, ttl: u64) -> Vec<(Bytes, Worker)> {
        let mut w = self.workers.lock();
        prune(&mut w, now, ttl);
        let mut v: Vec<(Bytes, Worker)> = w.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

fn prune(w: &mut HashMap<Bytes, Worker>, now: u64, ttl: u64) {
    w.retain(|_, e| e.last_beat.saturating_add(ttl) > now);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_move_forward_and_expire() {
        let j = Jobs::default();
        assert_eq!(j.beat(b"w", Some(2), 0, 100), WorkerState::Ok);
        j.set_state(b"w", WorkerState::Terminate, 10, 100);
        j.set_state(b"w", WorkerState::Quiet, 10, 100);
        assert_eq!(j.beat(b"w", None, 20, 100), WorkerState::Terminate);
        assert_eq!(j.workers(50, 100)[0].1.active, 2);
        assert!(j.workers(120, 100).is_empty());
        assert_eq!(j.worker_state(b"w", 120, 100), WorkerState::Ok);
    }

    #[test]
    fn index_follows_moves_swaps_and_flushes() {
        let j = Jobs::default();
        let k = Bytes::from_static(b"q");
        j.record(b"a", 0, &k);
        j.swap_db(0, 3);
        assert_eq!(j.locate(b"a"), Some((3, k.clone())));
        j.forget(b"a", 0, b"q");
        assert!(
            j.locate(b"a").is_some(),
            "a stale forget leaves a moved entry"
        );
        j.flush_db(Some(3));
        assert_eq!(j.locate(b"a"), None);
    }
}
