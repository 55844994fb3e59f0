//! Lock values: an exclusive or shared (read-write) lock, or a counting semaphore, with
//! fencing tokens.
//!
//! A semaphore is the same value with a `limit` of permits: holders take weighted
//! permits and the sum in use never exceeds the limit. An election is the same value
//! again with one exclusive holder, the leader, whose fence is its *term* and who carries
//! a value it proclaims (TYPE `election`).
//!
//! A lock key holds the current holders and the highest fencing token ever granted on it.
//! Every grant takes a new fence from a counter the caller supplies (the server's
//! process-wide fence counter, which only grows and is persisted), so fences on one key
//! strictly increase with every grant. When the last holder leaves, the value stays as a
//! *tombstone*: no holders, but its fence, so `FENCE.CHECK` still knows the highest fence
//! and a stale holder is still refused.
//!
//! Holders' leases are absolute deadlines in server time (Unix ms), or a session id (the
//! session's expiry releases them). This module only decides; it never reads a clock:
//! every method takes `now`. Expired holders are pruned lazily by every method that looks
//! at the holders, so a read of the value always sees live holders only.

/// One holder of a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The owner name the client chose (a retry by the same owner is idempotent).
    pub owner: Box<[u8]>,
    /// The grant's token, used to release or renew it.
    pub token: Box<[u8]>,
    /// The grant's fencing token.
    pub fence: u64,
    /// Shared (read) hold; exclusive otherwise.
    pub shared: bool,
    /// Reentrant depth: RELEASE must be called this many times.
    pub count: u32,
    /// Permits held (1 for locks).
    pub permits: u32,
    /// Lease deadline in Unix ms (0: held by `session` instead).
    pub expire_at: u64,
    /// The session holding this grant (0: a TTL lease).
    pub session: u64,
    /// An election leader's proclaimed value (empty for locks and semaphores).
    pub value: Box<[u8]>,
}

/// What the caller asks of [`LockValue::acquire`].
#[derive(Debug, Clone, Copy)]
pub struct AcquireReq<'a> {
    /// The owner name.
    pub owner: &'a [u8],
    /// A shared (read) hold.
    pub shared: bool,
    /// Repeated acquires by the same owner nest (each needs a RELEASE).
    pub reentrant: bool,
    /// Lease deadline in Unix ms (0 when `session` is set).
    pub expire_at: u64,
    /// The holding session (0: a TTL lease).
    pub session: u64,
    /// Permits asked for (semaphores; 1 for locks).
    pub permits: u32,
    /// The value a new election leader proclaims (empty for locks and semaphores).
    pub value: &'a [u8],
}

/// The outcome of [`LockValue::acquire`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// Granted (or the owner already held it): token, fence, deadline (0: session).
    Granted {
        /// The grant's token.
        token: Box<[u8]>,
        /// The grant's fencing token.
        fence: u64,
        /// Lease deadline in Unix ms (0: held by a session).
        expire_at: u64,
        /// False when an existing grant was returned (idempotent retry, reentrancy).
        new: bool,
    },
    /// Held by others in a conflicting mode.
    Busy,
    /// The owner holds it in the other mode (shared vs exclusive): no upgrade.
    ModeConflict,
    /// It could be granted, but no fence is left (the counter reached [`MAX_FENCE`]);
    /// nothing changed.
    NoFence,
}

/// The last fence a grant may take: fences are replied as RESP integers (signed 64-bit),
/// kept one below `i64::MAX` so that `fence + 1` never overflows one. The RDB loader
/// refuses a larger fence as corrupt; the server refuses grants once it is reached.
pub const MAX_FENCE: u64 = i64::MAX as u64 - 1;

/// A lock: its live holders and the highest fence granted on it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LockValue {
    fence: u64,
    /// No new grant before this Unix ms (a session's lock-delay after it expired).
    delay_until: u64,
    /// 0 for a lock; the number of permits for a semaphore.
    limit: u32,
    /// An election (`limit` is then 0).
    election: bool,
    holders: Vec<Holder>,
}

impl LockValue {
    /// An unheld lock whose highest fence is `fence` (0: never granted).
    pub fn new(fence: u64) -> LockValue {
        LockValue {
            fence,
            delay_until: 0,
            limit: 0,
            election: false,
            holders: Vec::new(),
        }
    }

    /// An election without a leader.
    pub fn election() -> LockValue {
        LockValue {
            election: true,
            ..LockValue::new(0)
        }
    }

    /// True for an election (TYPE `election`).
    pub fn is_election(&self) -> bool {
        self.election
    }

    /// Marks a value read from a file as an election.
    pub fn set_election(&mut self) {
        debug_assert!(self.limit == 0, "a semaphore is not an election");
        self.election = true;
    }

    /// The election's leader, including one whose lease passed since the last
    /// [`LockValue::prune`].
    pub fn leader(&self) -> Option<&Holder> {
        self.holders.first()
    }

    /// Replaces the value of the leader whose term is `term`; false if `term` is not the
    /// live leader's.
    pub fn proclaim(&mut self, term: u64, value: &[u8], now: u64) -> bool {
        self.prune(now);
        match self.holders.first_mut() {
            Some(h) if h.fence == term => {
                h.value = value.into();
                true
            }
            _ => false,
        }
    }

    /// Ends the leadership of term `term`; the leader that left, or `None` if `term` is
    /// not the live leader's.
    pub fn resign(&mut self, term: u64, now: u64) -> Option<Holder> {
        self.prune(now);
        match self.holders.first() {
            Some(h) if h.fence == term => Some(self.holders.remove(0)),
            _ => None,
        }
    }

    /// An unheld semaphore of `limit` permits (`limit` ≥ 1).
    pub fn semaphore(limit: u32) -> LockValue {
        assert!(limit >= 1, "a semaphore has at least one permit");
        LockValue {
            limit,
            ..LockValue::new(0)
        }
    }

    /// True for a semaphore (TYPE `semaphore`), false for a lock.
    pub fn is_semaphore(&self) -> bool {
        self.limit != 0
    }

    /// The semaphore's number of permits (0 for a lock).
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Changes a semaphore's limit; only while nobody holds it (else false).
    pub fn set_limit(&mut self, limit: u32, now: u64) -> bool {
        self.prune(now);
        if !self.is_semaphore() || limit == 0 || !self.holders.is_empty() {
            return false;
        }
        self.limit = limit;
        true
    }

    /// Permits in use (holders' permits; for a lock, the number of holders).
    pub fn in_use(&self) -> u64 {
        self.holders.iter().map(|h| u64::from(h.permits)).sum()
    }

    /// Rebuilds a lock from its parts (RDB load): `fence` is raised to the highest
    /// holder's fence if it was lower.
    pub fn from_parts(fence: u64, delay_until: u64, limit: u32, holders: Vec<Holder>) -> LockValue {
        let top = holders.iter().map(|h| h.fence).max().unwrap_or(0);
        LockValue {
            fence: fence.max(top),
            delay_until,
            limit,
            election: false,
            holders,
        }
    }

    /// No new grant is made before this Unix ms (0: none); see [`LockValue::delay`].
    pub fn delay_until(&self) -> u64 {
        self.delay_until
    }

    /// Refuses new grants until `until` (Unix ms): the lock-delay Chubby applies when a
    /// holder's session expires, so a holder that is merely slow has time to notice.
    pub fn delay(&mut self, until: u64) {
        self.delay_until = self.delay_until.max(until);
    }

    /// The highest fence ever granted on this lock.
    pub fn fence(&self) -> u64 {
        self.fence
    }

    /// The holders, including any whose lease passed since the last [`LockValue::prune`].
    pub fn holders(&self) -> &[Holder] {
        &self.holders
    }

    /// Drops holders whose lease deadline is at or before `now`. True if any left.
    pub fn prune(&mut self, now: u64) -> bool {
        let before = self.holders.len();
        self.holders
            .retain(|h| h.session != 0 || h.expire_at == 0 || h.expire_at > now);
        self.holders.len() != before
    }

    /// The earliest lease deadline among the holders (0: none), when a waiter should
    /// look again even if nobody releases.
    pub fn next_expiry(&self) -> u64 {
        self.holders
            .iter()
            .filter(|h| h.session == 0 && h.expire_at != 0)
            .map(|h| h.expire_at)
            .chain((self.delay_until != 0).then_some(self.delay_until))
            .min()
            .unwrap_or(0)
    }

    /// True if nobody holds the lock (after pruning at `now`).
    pub fn is_free(&mut self, now: u64) -> bool {
        self.prune(now);
        self.holders.is_empty()
    }

    /// True if [`LockValue::acquire`] would grant `req` at `now` (a new grant, or the
    /// owner's existing one in the same mode); changes nothing but pruning.
    pub fn can_acquire(&mut self, req: &AcquireReq<'_>, now: u64) -> bool {
        self.prune(now);
        if let Some(h) = self
            .holders
            .iter()
            .find(|h| crate::bytecmp::eq(&h.owner, req.owner))
        {
            return h.shared == req.shared;
        }
        now >= self.delay_until && self.compatible(req)
    }

    fn compatible(&self, req: &AcquireReq<'_>) -> bool {
        if self.is_semaphore() {
            self.in_use() + u64::from(req.permits) <= u64::from(self.limit)
        } else {
            self.holders.is_empty() || (req.shared && self.holders.iter().all(|h| h.shared))
        }
    }

    /// Tries to grant `req`. `next_fence` returns a fence higher than its argument (the
    /// highest fence of this lock), or `None` when none is left (at most [`MAX_FENCE`]),
    /// and `token` a fresh token; neither is called unless a new grant is made.
    pub fn acquire(
        &mut self,
        req: AcquireReq<'_>,
        now: u64,
        next_fence: impl FnOnce(u64) -> Option<u64>,
        token: impl FnOnce() -> Vec<u8>,
    ) -> Acquired {
        self.prune(now);
        if let Some(h) = self
            .holders
            .iter_mut()
            .find(|h| crate::bytecmp::eq(&h.owner, req.owner))
        {
            if h.shared != req.shared {
                return Acquired::ModeConflict;
            }
            if req.reentrant {
                h.count = h.count.saturating_add(1);
            }
            // A retry (or a nested acquire) refreshes the lease it asked for.
            h.expire_at = req.expire_at;
            h.session = req.session;
            return Acquired::Granted {
                token: h.token.clone(),
                fence: h.fence,
                expire_at: h.expire_at,
                new: false,
            };
        }
        if now < self.delay_until {
            return Acquired::Busy;
        }
        if !self.compatible(&req) {
            return Acquired::Busy;
        }
        let Some(fence) = next_fence(self.fence) else {
            return Acquired::NoFence;
        };
        assert!(
            fence > self.fence && fence <= MAX_FENCE,
            "fences must strictly increase and fit a reply"
        );
        self.fence = fence;
        let token: Box<[u8]> = token().into();
        self.holders.push(Holder {
            owner: req.owner.into(),
            token: token.clone(),
            fence,
            shared: req.shared,
            count: 1,
            permits: req.permits,
            expire_at: req.expire_at,
            session: req.session,
            value: req.value.into(),
        });
        Acquired::Granted {
            token,
            fence,
            expire_at: req.expire_at,
            new: true,
        }
    }

    /// Releases one level of the grant with `token`: `Some(0)` when the grant is gone,
    /// `Some(n)` when `n` nested levels remain, `None` if no live grant has that token.
    pub fn release(&mut self, token: &[u8], now: u64) -> Option<u32> {
        self.prune(now);
        let i = self
            .holders
            .iter()
            .position(|h| crate::bytecmp::eq(&h.token, token))?;
        let h = &mut self.holders[i];
        h.count -= 1;
        if h.count == 0 {
            self.holders.remove(i);
            Some(0)
        } else {
            Some(h.count)
        }
    }

    /// Moves the lease deadline of the TTL grant with `token` to `expire_at`. False if no
    /// live grant has that token or it is held by a session.
    pub fn renew(&mut self, token: &[u8], expire_at: u64, now: u64) -> bool {
        self.prune(now);
        match self
            .holders
            .iter_mut()
            .find(|h| crate::bytecmp::eq(&h.token, token) && h.session == 0)
        {
            Some(h) => {
                h.expire_at = expire_at;
                true
            }
            None => false,
        }
    }

    /// Drops every holder (LOCK.FORCE); returns how many there were. The fence stays.
    pub fn force(&mut self, now: u64) -> usize {
        self.prune(now);
        let n = self.holders.len();
        self.holders.clear();
        n
    }

    /// Drops the grants of `session`; returns how many.
    pub fn release_session(&mut self, session: u64) -> usize {
        let before = self.holders.len();
        self.holders.retain(|h| h.session != session);
        before - self.holders.len()
    }

    /// True if `fence` may still write: it is at least the highest fence granted (no
    /// newer grant exists), or it belongs to a live holder (a shared reader whose fence
    /// was overtaken by a later reader's).
    pub fn fence_ok(&mut self, fence: u64, now: u64) -> bool {
        if fence >= self.fence {
            return true;
        }
        self.prune(now);
        self.holders.iter().any(|h| h.fence == fence)
    }

    /// Approximate heap bytes held.
    pub fn heap_size(&self) -> usize {
        self.holders.capacity() * std::mem::size_of::<Holder>()
            + self
                .holders
                .iter()
                .map(|h| h.owner.len() + h.token.len() + h.value.len())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn req(owner: &[u8], shared: bool, expire_at: u64) -> AcquireReq<'_> {
        AcquireReq {
            owner,
            shared,
            reentrant: false,
            expire_at,
            session: 0,
            permits: 1,
            value: b"",
        }
    }

    #[test]
    fn semaphores_never_exceed_their_limit() {
        let mut c = 0;
        let mut l = LockValue::semaphore(3);
        let two = AcquireReq {
            permits: 2,
            ..req(b"a", false, 100)
        };
        assert!(matches!(
            grant(&mut l, two, 0, &mut c),
            Acquired::Granted { .. }
        ));
        assert!(matches!(
            grant(&mut l, req(b"b", false, 100), 0, &mut c),
            Acquired::Granted { .. }
        ));
        assert_eq!(l.in_use(), 3);
        assert_eq!(
            grant(&mut l, req(b"c", false, 100), 0, &mut c),
            Acquired::Busy
        );
        assert!(!l.set_limit(5, 0), "not while held");
        assert!(matches!(
            grant(&mut l, req(b"c", false, 200), 100, &mut c),
            Acquired::Granted { fence: 3, .. }
        ));
        assert!(l.set_limit(5, 200));
        assert_eq!(l.limit(), 5);
    }

    fn grant(l: &mut LockValue, r: AcquireReq<'_>, now: u64, counter: &mut u64) -> Acquired {
        let c = std::cell::Cell::new(*counter);
        let out = l.acquire(
            r,
            now,
            |f| {
                let next = c.get().max(f) + 1;
                (next <= MAX_FENCE).then(|| {
                    c.set(next);
                    next
                })
            },
            || format!("t{}", c.get()).into_bytes(),
        );
        *counter = c.get();
        out
    }

    #[test]
    fn exclusive_grants_exclude_and_fences_grow() {
        let mut c = 0;
        let mut l = LockValue::new(0);
        let a = grant(&mut l, req(b"a", false, 100), 0, &mut c);
        assert!(matches!(
            a,
            Acquired::Granted {
                fence: 1,
                new: true,
                ..
            }
        ));
        assert_eq!(
            grant(&mut l, req(b"b", false, 100), 50, &mut c),
            Acquired::Busy
        );
        assert_eq!(
            grant(&mut l, req(b"b", true, 100), 50, &mut c),
            Acquired::Busy
        );
        // Retry by a: the same grant.
        assert!(matches!(
            grant(&mut l, req(b"a", false, 150), 60, &mut c),
            Acquired::Granted {
                fence: 1,
                new: false,
                ..
            }
        ));
        // a's lease (now 150) passes: b gets fence 2; a's fence is stale.
        assert!(matches!(
            grant(&mut l, req(b"b", false, 300), 150, &mut c),
            Acquired::Granted { fence: 2, .. }
        ));
        assert!(!l.fence_ok(1, 160));
        assert!(l.fence_ok(2, 160));
        assert_eq!(l.release(b"t2", 160), Some(0));
        // Tombstone: no holders, fence kept.
        assert!(l.is_free(160));
        assert_eq!(l.fence(), 2);
        assert!(!l.fence_ok(1, 160));
    }

    #[test]
    fn shared_holders_coexist_and_block_writers() {
        let mut c = 0;
        let mut l = LockValue::new(0);
        assert!(matches!(
            grant(&mut l, req(b"r1", true, 100), 0, &mut c),
            Acquired::Granted { .. }
        ));
        assert!(matches!(
            grant(&mut l, req(b"r2", true, 100), 0, &mut c),
            Acquired::Granted { .. }
        ));
        assert_eq!(
            grant(&mut l, req(b"w", false, 100), 0, &mut c),
            Acquired::Busy
        );
        assert_eq!(
            grant(&mut l, req(b"r1", false, 100), 0, &mut c),
            Acquired::ModeConflict
        );
        // r1's fence was overtaken by r2's, but r1 still holds: it may write.
        assert!(l.fence_ok(1, 10));
        assert_eq!(l.force(10), 2);
        assert!(!l.fence_ok(1, 10));
    }

    #[test]
    fn reentrant_grants_nest() {
        let mut c = 0;
        let mut l = LockValue::new(5);
        let r = AcquireReq {
            reentrant: true,
            ..req(b"a", false, 100)
        };
        let Acquired::Granted { token, fence, .. } = grant(&mut l, r, 0, &mut c) else {
            panic!("not granted")
        };
        assert_eq!(fence, 6);
        assert!(matches!(
            grant(&mut l, r, 0, &mut c),
            Acquired::Granted { new: false, .. }
        ));
        assert_eq!(l.release(&token, 1), Some(1));
        assert_eq!(l.release(&token, 1), Some(0));
        assert_eq!(l.release(&token, 1), None);
    }

    #[test]
    fn sessions_hold_until_released() {
        let mut c = 0;
        let mut l = LockValue::new(0);
        let r = AcquireReq {
            session: 9,
            ..req(b"a", false, 0)
        };
        assert!(matches!(
            grant(&mut l, r, 0, &mut c),
            Acquired::Granted { .. }
        ));
        assert!(!l.is_free(u64::MAX - 1));
        assert!(
            !l.renew(b"t1", 10, 0),
            "session grants are not renewed by token"
        );
        assert_eq!(l.release_session(9), 1);
        assert!(l.is_free(0));
        l.delay(100);
        assert_eq!(l.next_expiry(), 100);
        assert_eq!(
            grant(&mut l, req(b"b", false, 500), 99, &mut c),
            Acquired::Busy
        );
        assert!(matches!(
            grant(&mut l, req(b"b", false, 500), 100, &mut c),
            Acquired::Granted { fence: 2, .. }
        ));
    }

    #[test]
    fn elections_have_one_leader_whose_term_is_its_fence() {
        let mut c = 10;
        let mut l = LockValue::election();
        assert!(l.is_election() && !l.is_semaphore());
        let a = AcquireReq {
            value: b"va",
            ..req(b"a", false, 100)
        };
        assert!(matches!(
            grant(&mut l, a, 0, &mut c),
            Acquired::Granted { fence: 11, .. }
        ));
        assert_eq!(
            grant(&mut l, req(b"b", false, 100), 0, &mut c),
            Acquired::Busy
        );
        assert_eq!(l.leader().map(|h| &*h.value), Some(&b"va"[..]));
        assert!(!l.proclaim(10, b"x", 1));
        assert!(l.proclaim(11, b"v2", 1));
        assert_eq!(l.leader().map(|h| &*h.value), Some(&b"v2"[..]));
        assert!(l.resign(10, 1).is_none());
        assert_eq!(l.resign(11, 1).map(|h| h.owner), Some(b"a"[..].into()));
        assert!(l.leader().is_none());
        // The lease of the next leader passes: no leader, nothing to proclaim.
        assert!(matches!(
            grant(&mut l, req(b"b", false, 100), 2, &mut c),
            Acquired::Granted { fence: 12, .. }
        ));
        assert!(!l.proclaim(12, b"late", 100));
        assert!(l.leader().is_none());
    }

    #[test]
    fn no_grant_past_the_last_fence() {
        let mut c = MAX_FENCE - 1;
        let mut l = LockValue::new(0);
        assert!(matches!(
            grant(&mut l, req(b"a", false, 100), 0, &mut c),
            Acquired::Granted {
                fence: MAX_FENCE,
                ..
            }
        ));
        assert_eq!(l.force(0), 1);
        // The counter is spent: nothing changes, the fence stays the last one.
        assert_eq!(
            grant(&mut l, req(b"b", false, 100), 0, &mut c),
            Acquired::NoFence
        );
        assert!(l.holders().is_empty());
        assert_eq!(l.fence(), MAX_FENCE);
        // An idempotent retry takes no fence and still works.
        let mut m = LockValue::new(0);
        let mut d = MAX_FENCE - 1;
        assert!(matches!(
            grant(&mut m, req(b"a", false, 100), 0, &mut d),
            Acquired::Granted { .. }
        ));
        assert!(matches!(
            grant(&mut m, req(b"a", false, 100), 0, &mut d),
            Acquired::Granted {
                fence: MAX_FENCE,
                new: false,
                ..
            }
        ));
    }

    proptest! {
        /// Against a model: at most one exclusive holder, or only shared holders; every
        /// new grant's fence is above every earlier one.
        #[test]
        fn grants_never_conflict(ops in proptest::collection::vec((0u8..4, 0u8..4, any::<bool>(), 1u64..50), 1..200)) {
            let mut c = 0;
            let mut l = LockValue::new(0);
            let mut now = 0;
            let mut last = 0;
            for (op, who, shared, dt) in ops {
                now += dt;
                let owner = [b'a' + who];
                match op {
                    0 | 1 => {
                        if let Acquired::Granted { fence, new: true, .. } =
                            grant(&mut l, req(&owner, shared, now + 40), now, &mut c)
                        {
                            prop_assert!(fence > last);
                            last = fence;
                        }
                    }
                    2 => {
                        let tok = l.holders().iter().find(|h| *h.owner == owner).map(|h| h.token.clone());
                        if let Some(t) = tok { l.release(&t, now); }
                    }
                    _ => { l.prune(now); }
                }
                l.prune(now);
                let hs = l.holders();
                prop_assert!(hs.len() <= 1 || hs.iter().all(|h| h.shared));
                prop_assert!(hs.iter().all(|h| h.expire_at > now));
                prop_assert_eq!(l.fence(), last);
            }
        }
    }
}
