//! Server-wide state of the coordination primitives (`docs/coordination.md`): the fence
//! counter and the sessions.
//!
//! The fence counter only grows. Every grant takes `max(counter, the lock's own highest
//! fence) + 1`, so fences strictly increase per lock even if its key was deleted and
//! created again. The counter is saved in the RDB (aux field `basalt-fence`) and raised on
//! load to the highest fence found, so fences keep growing across restarts.
//!
//! Sessions are leases that hold primitives: when one expires (the cron reaps it within
//! one `hz` period) or is closed, every lock it holds is released, waiters are signalled,
//! and on expiry the lock refuses new grants for the session's LOCKDELAY. They are saved
//! in the RDB too (aux field `basalt-sessions`) and come back with their full TTL.

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

pub use basalt_engine::types::lock::MAX_FENCE;

/// What a session's expiry does to the locks it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnExpire {
    /// Release the grants; the lock keys stay (with their fences).
    Release,
    /// Release the grants and delete lock keys left without holders.
    Delete,
}

/// One session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Lease length in ms (KEEPALIVE extends the deadline to now + ttl).
    pub ttl: u64,
    /// After expiry, the held locks refuse new grants for this many ms.
    pub lockdelay: u64,
    /// What expiry does to the held locks.
    pub on_expire: OnExpire,
    /// Deadline in Unix ms.
    pub expire_at: u64,
    /// The lock keys holding a grant of this session, as `(db, key)`.
    pub held: BTreeSet<(usize, Bytes)>,
}

/// Fence counter and sessions.
#[derive(Default)]
pub struct Coord {
    fence: AtomicU64,
    next_session: AtomicU64,
    sessions: Mutex<HashMap<u64, Session>>,
    /// Lease deadlines of election leaders, so the cron can report a leadership that
    /// lapsed while nobody touched the election.
    leader_leases: Mutex<LeaderLeases>,
}

/// The latest leader lease deadline of each election (one entry per election).
#[derive(Default)]
struct LeaderLeases {
    by_deadline: BTreeSet<(u64, usize, Bytes)>,
    by_name: HashMap<(usize, Bytes), u64>,
}

impl Coord {
    /// A fence above both the counter and `above` (the lock's highest fence), taken; or
    /// `None`, taking nothing, when it would pass [`MAX_FENCE`].
    pub fn next_fence(&self, above: u64) -> Option<u64> {
        let mut cur = self.fence.load(Ordering::Acquire);
        loop {
            let next = cur.max(above).saturating_add(1);
            if next > MAX_FENCE {
                return None;
            }
            match self
                .fence
                .compare_exchange(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(next),
                Err(now) => cur = now,
            }
        }
    }

    /// The highest fence handed out so far.
    pub fn fence(&self) -> u64 {
        self.fence.load(Ordering::Acquire)
    }

    /// Raises the counter to at least `f` (loading an RDB), at most to [`MAX_FENCE`].
    pub fn raise_fence(&self, f: u64) {
        self.fence.fetch_max(f.min(MAX_FENCE), Ordering::AcqRel);
    }

    /// Opens a session and returns its id (ids start at 1 and are never reused), or
    /// `None` when `max` sessions are open already (expired ones the cron has not reaped
    /// yet count).
    pub fn open(
        &self,
        ttl: u64,
        lockdelay: u64,
        on_expire: OnExpire,
        now: u64,
        max: u64,
    ) -> Option<u64> {
        let mut m = self.sessions.lock();
        if m.len() as u64 >= max {
            return None;
        }
        let id = self.next_session.fetch_add(1, Ordering::AcqRel) + 1;
        m.insert(
            id,
            Session {
                ttl,
                lockdelay,
                on_expire,
                expire_at: now.saturating_add(ttl),
                held: BTreeSet::new(),
            },
        );
        Some(id)
    }

    /// Restores a saved session (RDB load) with a full TTL from `now`.
    pub fn restore(&self, id: u64, mut s: Session, now: u64) {
        s.expire_at = now.saturating_add(s.ttl);
        self.next_session.fetch_max(id, Ordering::AcqRel);
        self.sessions.lock().insert(id, s);
    }

    /// Remembers that the leader of election `name` in `db` holds a lease until
    /// `deadline` (replacing the deadline remembered for that election).
    pub fn watch_leader_lease(&self, deadline: u64, db: usize, name: &[u8]) {
        let name = Bytes::copy_from_slice(name);
        let mut l = self.leader_leases.lock();
        if let Some(old) = l.by_name.insert((db, name.clone()), deadline) {
            l.by_deadline.remove(&(old, db, name.clone()));
        }
        l.by_deadline.insert((deadline, db, name));
    }

    /// Removes and returns the elections whose watched leader lease ended at or before
    /// `now`.
    pub fn take_lapsed_leader_leases(&self, now: u64) -> Vec<(usize, Bytes)> {
        let mut l = self.leader_leases.lock();
        let mut out = Vec::new();
        while l.by_deadline.first().is_some_and(|first| first.0 <= now) {
            if let Some((_, db, name)) = l.by_deadline.pop_first() {
                l.by_name.remove(&(db, name.clone()));
                out.push((db, name));
            }
        }
        out
    }

    /// Number of open sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.lock().len()
    }

    /// A copy of session `id` if it is live at `now`.
    pub fn get(&self, id: u64, now: u64) -> Option<Session> {
        self.sessions
            .lock()
            .get(&id)
            .filter(|s| s.expire_at > now)
            .cloned()
    }

    /// Extends a live session to `now + ttl`; returns the ttl, or `None` if it is gone.
    pub fn keepalive(&self, id: u64, now: u64) -> Option<u64> {
        let mut m = self.sessions.lock();
        let s = m.get_mut(&id).filter(|s| s.expire_at > now)?;
        s.expire_at = now.saturating_add(s.ttl);
        Some(s.ttl)
    }

    /// Records that session `id` holds a grant on `key` of `db`. False if the session is
    /// not live (the grant must not be made).
    pub fn add_held(&self, id: u64, db: usize, key: &[u8], now: u64) -> bool {
        match self.sessions.lock().get_mut(&id) {
            Some(s) if s.expire_at > now => {
                s.held.insert((db, Bytes::copy_from_slice(key)));
                true
            }
            _ => false,
        }
    }

    /// Forgets that session `id` holds `key` (its grant was released).
    pub fn remove_held(&self, id: u64, db: usize, key: &[u8]) {
        if let Some(s) = self.sessions.lock().get_mut(&id) {
            s.held.remove(&(db, Bytes::copy_from_slice(key)));
        }
    }

    /// A lock value that holds grants of `sessions` moved from `from` to `to` (RENAME,
    /// MOVE): each session now holds the key at its new place, so its expiry or CLOSE
    /// releases the grant there.
    pub fn move_held(&self, sessions: &[u64], from: (usize, &[u8]), to: (usize, &[u8])) {
        if sessions.is_empty() {
            return;
        }
        let from = (from.0, Bytes::copy_from_slice(from.1));
        let to = (to.0, Bytes::copy_from_slice(to.1));
        let mut m = self.sessions.lock();
        for sid in sessions {
            if let Some(s) = m.get_mut(sid) {
                s.held.remove(&from);
                s.held.insert(to.clone());
            }
        }
    }

    /// Forgets that `sessions` hold `key` of `db`: the value holding their grants was
    /// deleted or replaced (DEL, RESTORE REPLACE, the destination of RENAME).
    pub fn drop_held(&self, sessions: &[u64], db: usize, key: &[u8]) {
        if sessions.is_empty() {
            return;
        }
        let entry = (db, Bytes::copy_from_slice(key));
        let mut m = self.sessions.lock();
        for sid in sessions {
            if let Some(s) = m.get_mut(sid) {
                s.held.remove(&entry);
            }
        }
    }

    /// SWAPDB a b: every held key of database `a` now lives in `b` and vice versa, and so
    /// do the watched leader leases.
    pub fn swap_db(&self, a: usize, b: usize) {
        let swap = |db: usize| {
            if db == a {
                b
            } else if db == b {
                a
            } else {
                db
            }
        };
        for s in self.sessions.lock().values_mut() {
            if s.held.iter().any(|(db, _)| *db == a || *db == b) {
                s.held = std::mem::take(&mut s.held)
                    .into_iter()
                    .map(|(db, k)| (swap(db), k))
                    .collect();
            }
        }
        let mut l = self.leader_leases.lock();
        l.by_deadline = std::mem::take(&mut l.by_deadline)
            .into_iter()
            .map(|(d, db, k)| (d, swap(db), k))
            .collect();
        l.by_name = std::mem::take(&mut l.by_name)
            .into_iter()
            .map(|((db, k), d)| ((swap(db), k), d))
            .collect();
    }

    /// FLUSHDB (`Some(db)`) or FLUSHALL (`None`): the sessions hold nothing there any
    /// more (their grants went with the values) and no leader lease is left to watch.
    pub fn flush_db(&self, db: Option<usize>) {
        let gone = |d: usize| db.is_none_or(|f| f == d);
        for s in self.sessions.lock().values_mut() {
            s.held.retain(|(d, _)| !gone(*d));
        }
        let mut l = self.leader_leases.lock();
        l.by_deadline.retain(|(_, d, _)| !gone(*d));
        l.by_name.retain(|(d, _), _| !gone(*d));
    }

    /// The keys session `id` is recorded as holding (whether each still holds its grant
    /// is for the caller to check).
    pub fn held(&self, id: u64) -> Vec<(usize, Bytes)> {
        self.sessions
            .lock()
            .get(&id)
            .map(|s| s.held.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Removes session `id` (CLOSE, or found expired).
    pub fn take(&self, id: u64) -> Option<Session> {
        self.sessions.lock().remove(&id)
    }

    /// Removes and returns the sessions whose deadline is at or before `now`.
    pub fn take_expired(&self, now: u64) -> Vec<(u64, Session)> {
        let mut m = self.sessions.lock();
        let ids: Vec<u64> = m
            .iter()
            .filter(|(_, s)| s.expire_at <= now)
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter()
            .filter_map(|id| m.remove(&id).map(|s| (id, s)))
            .collect()
    }

    /// Every session (for saving), ordered by id.
    pub fn snapshot(&self) -> Vec<(u64, Session)> {
        let mut v: Vec<(u64, Session)> = self
            .sessions
            .lock()
            .iter()
            .map(|(id, s)| (*id, s.clone()))
            .collect();
        v.sort_by_key(|(id, _)| *id);
        v
    }

    /// The `basalt-sessions` aux field: `id:ttl:lockdelay:R|D` joined by commas (the held
    /// keys are rebuilt from the lock values on load).
    pub fn sessions_aux(&self) -> String {
        sessions_aux_of(&self.snapshot())
    }

    /// Restores a session from an AOF effect or base (`SESSION.RESTORE`) with a full TTL
    /// from `now`; false (nothing changes) if a session with that id exists.
    pub fn restore_new(&self, id: u64, mut s: Session, now: u64) -> bool {
        let mut m = self.sessions.lock();
        if m.contains_key(&id) {
            return false;
        }
        s.expire_at = now.saturating_add(s.ttl);
        self.next_session.fetch_max(id, Ordering::AcqRel);
        m.insert(id, s);
        true
    }

    /// The counter and the sessions at one instant, for an AOF base (the rewrite takes it
    /// with every command stopped, at the same point as the keyspace's frozen view).
    pub fn state(&self) -> CoordState {
        CoordState {
            fence: self.fence(),
            sessions: self.snapshot(),
        }
    }

    /// Parses a `basalt-sessions` aux field; `None` if malformed.
    pub fn parse_sessions_aux(text: &[u8]) -> Option<Vec<(u64, Session)>> {
        let text = std::str::from_utf8(text).ok()?;
        let mut out = Vec::new();
        for item in text.split(',').filter(|s| !s.is_empty()) {
            let mut p = item.split(':');
            let id: u64 = p.next()?.parse().ok()?;
            let ttl: u64 = p.next()?.parse().ok()?;
            let lockdelay: u64 = p.next()?.parse().ok()?;
            let on_expire = match p.next()? {
                "R" => OnExpire::Release,
                "D" => OnExpire::Delete,
                _ => return None,
            };
            if p.next().is_some() || id == 0 || ttl == 0 {
                return None;
            }
            out.push((
                id,
                Session {
                    ttl,
                    lockdelay,
                    on_expire,
                    expire_at: 0,
                    held: BTreeSet::new(),
                },
            ));
        }
        Some(out)
    }
}

/// The coordination state that is not in the keyspace: what an AOF base or an RDB file
/// holds besides the lock values (`docs/persistence.md`).
pub struct CoordState {
    /// The fence counter.
    pub fence: u64,
    /// The sessions, ordered by id.
    pub sessions: Vec<(u64, Session)>,
}

impl CoordState {
    /// The effect form of a session: `SESSION.RESTORE sid ttl lockdelay RELEASE|DELETE`
    /// (it comes back with a full TTL, as from an RDB file).
    pub fn session_command(id: u64, s: &Session) -> Vec<Bytes> {
        vec![
            Bytes::from_static(b"SESSION.RESTORE"),
            crate::aof::int_arg(id),
            crate::aof::int_arg(s.ttl),
            crate::aof::int_arg(s.lockdelay),
            Bytes::from_static(if s.on_expire == OnExpire::Delete {
                b"DELETE"
            } else {
                b"RELEASE"
            }),
        ]
    }

    /// The commands that rebuild this state in a RESP base, before its keys:
    /// `FENCE.RESTORE fence` (when a fence was ever granted), then one `SESSION.RESTORE`
    /// per session.
    pub fn commands(&self) -> Vec<Vec<Bytes>> {
        let mut out = Vec::with_capacity(self.sessions.len() + 1);
        if self.fence > 0 {
            out.push(vec![
                Bytes::from_static(b"FENCE.RESTORE"),
                crate::aof::int_arg(self.fence),
            ]);
        }
        for (id, s) in &self.sessions {
            out.push(Self::session_command(*id, s));
        }
        out
    }

    /// The RDB aux fields that hold this state (`basalt-fence`, `basalt-sessions`), each
    /// only when there is something to hold.
    pub fn aux_fields(&self) -> Vec<(&'static [u8], Vec<u8>)> {
        let mut out = Vec::new();
        if self.fence > 0 {
            out.push((&b"basalt-fence"[..], self.fence.to_string().into_bytes()));
        }
        if !self.sessions.is_empty() {
            out.push((
                &b"basalt-sessions"[..],
                sessions_aux_of(&self.sessions).into_bytes(),
            ));
        }
        out
    }
}

/// `id:ttl:lockdelay:R|D` joined by commas.
fn sessions_aux_of(sessions: &[(u64, Session)]) -> String {
    let mut out = String::new();
    for (id, s) in sessions {
        if !out.is_empty() {
            out.push(',');
        }
        let e = if s.on_expire == OnExpire::Delete {
            'D'
        } else {
            'R'
        };
        out.push_str(&format!("{id}:{}:{}:{e}", s.ttl, s.lockdelay));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_watched_leader_lease_per_election() {
        let c = Coord::default();
        c.watch_leader_lease(100, 0, b"e");
        c.watch_leader_lease(300, 0, b"e");
        c.watch_leader_lease(200, 1, b"e");
        assert!(c.take_lapsed_leader_leases(150).is_empty());
        assert_eq!(
            c.take_lapsed_leader_leases(300),
            vec![(1, Bytes::from_static(b"e")), (0, Bytes::from_static(b"e"))]
        );
        assert!(c.take_lapsed_leader_leases(u64::MAX).is_empty());
    }

    #[test]
    fn fences_only_grow() {
        let c = Coord::default();
        assert_eq!(c.next_fence(0), Some(1));
        assert_eq!(c.next_fence(10), Some(11));
        assert_eq!(c.next_fence(3), Some(12));
        c.raise_fence(5);
        assert_eq!(c.fence(), 12);
        c.raise_fence(20);
        assert_eq!(c.next_fence(0), Some(21));
    }

    #[test]
    fn the_counter_stops_at_the_last_fence() {
        let c = Coord::default();
        c.raise_fence(MAX_FENCE - 2);
        assert_eq!(c.next_fence(0), Some(MAX_FENCE - 1));
        assert_eq!(c.next_fence(MAX_FENCE - 1), Some(MAX_FENCE));
        assert_eq!(c.next_fence(0), None);
        assert_eq!(c.fence(), MAX_FENCE);
        // A lock's own fence at the end is refused too, and the counter never passes it.
        let d = Coord::default();
        assert_eq!(d.next_fence(MAX_FENCE), None);
        d.raise_fence(u64::MAX);
        assert_eq!(d.fence(), MAX_FENCE);
    }

    #[test]
    fn sessions_expire_and_round_trip_through_aux() {
        let c = Coord::default();
        let a = c.open(100, 5, OnExpire::Release, 1000, 10).expect("open");
        let b = c.open(500, 0, OnExpire::Delete, 1000, 10).expect("open");
        assert_eq!((a, b), (1, 2));
        assert!(c.add_held(a, 0, b"k", 1050));
        assert_eq!(c.keepalive(a, 1050), Some(100));
        // Live while the deadline (1150) is ahead, expired at it.
        let gone = c.take_expired(1149);
        assert!(gone.is_empty());
        let gone = c.take_expired(1150);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].0, a);
        assert!(gone[0].1.held.contains(&(0, Bytes::from_static(b"k"))));
        assert_eq!(c.keepalive(a, 1200), None);
        let aux = c.sessions_aux();
        assert_eq!(aux, "2:500:0:D");
        let parsed = Coord::parse_sessions_aux(aux.as_bytes()).expect("parses");
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].1.on_expire, OnExpire::Delete);
        assert!(Coord::parse_sessions_aux(b"1:x:0:R").is_none());
        let d = Coord::default();
        d.restore(7, parsed[0].1.clone(), 0);
        assert_eq!(d.open(1, 0, OnExpire::Release, 0, 2), Some(8));
        assert_eq!(d.open(1, 0, OnExpire::Release, 0, 2), None);
    }
}
