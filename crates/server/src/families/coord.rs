//! Coordination commands (`docs/coordination.md`): locks with fencing tokens
//! (LOCK.ACQUIRE/MACQUIRE/RELEASE/RENEW/INFO/FORCE), counting semaphores with weighted
//! permits (SEM.ACQUIRE/RELEASE/RENEW/INFO), the store-side fence check (FENCE.CHECK,
//! DELIFFENCE; SET's IFFENCE option lives in the string family), sessions (SESSION.OPEN/
//! KEEPALIVE/CLOSE/INFO), leader election (ELECT.CAMPAIGN/PROCLAIM/RESIGN/LEADER/OBSERVE)
//! and the AOF's forms of sessions and of the fence counter (SESSION.RESTORE,
//! FENCE.RESTORE).
//!
//! A lock, semaphore or election is a keyspace value (`Value::Lock`); its decisions live
//! in `basalt_engine::types::lock`. This module parses, takes fences from the server-wide
//! counter (`crate::coord`), blocks waiters on the shared registry (`blocking.rs`: FIFO,
//! disconnect cleanup), wakes them when a lock frees, publishes election changes, and
//! logs every change to the AOF as the key's new state (`state_effect`), never as the
//! command, whose tokens are random and whose leases depend on the clock. Lease deadlines
//! are server time.

use crate::cmd::args::{self, is};
use crate::cmd::flags::*;
use crate::cmd::{Command, KeySpec, acl};
use crate::coord::OnExpire;
use crate::error::{self, CmdResult, Error};
use crate::pubsub::notify as ev;
use crate::server::{Ctx, Server};
use basalt_engine::types::LockValue;
use basalt_engine::types::lock::{AcquireReq, Acquired, Holder};
use basalt_engine::{Guard, Value};
use basalt_proto::Frame;
use bytes::Bytes;

/// Longest lease (TTL, WAIT, session TTL, LOCKDELAY) in ms: 10 years. Larger values are
/// refused with [`BAD_MS`], so `now + ttl` never overflows.
pub const MAX_MS: i64 = 10 * 365 * 24 * 3600 * 1000;
/// Error for a TTL/WAIT/LOCKDELAY out of range.
pub const BAD_MS: &str =
    "ERR invalid milliseconds value (must be a positive integer up to 315360000000)";
/// Error for an unknown or expired session.
pub const NO_SESSION: &str = "ERR no such session";
/// Error when the owner holds the lock in the other mode.
pub const MODE_CONFLICT: &str = "ERR owner already holds this lock in the other mode";
/// Error when neither TTL nor SESSION was given.
pub const NEED_LEASE: &str = "ERR LOCK.ACQUIRE needs TTL ms or SESSION sid";
/// Largest semaphore limit.
pub const MAX_PERMITS: i64 = 1 << 30;
/// Error for a semaphore limit out of range.
pub const BAD_LIMIT: &str = "ERR semaphore limit must be between 1 and 1073741824";
/// Error for PERMITS out of range.
pub const BAD_PERMITS: &str = "ERR PERMITS must be between 1 and the semaphore limit";
/// Error when a held semaphore is asked for with another limit.
pub const LIMIT_MISMATCH: &str = "ERR semaphore limit differs from the limit in use";
/// Error for SESSION.RESTORE of an id in use.
pub const SESSION_EXISTS: &str = "ERR session already exists";
/// Most locks one LOCK.MACQUIRE takes together.
pub const MAX_MACQUIRE: usize = 64;
/// Error for a LOCK.MACQUIRE key count out of range.
pub const BAD_NUMKEYS: &str = "ERR the number of keys must be between 1 and 64";
/// Error for a LOCK.MACQUIRE that names a key twice.
pub const DUP_KEY: &str = "ERR LOCK.MACQUIRE names a key twice";
/// Error for a fence that is not a non-negative integer.
pub const BAD_FENCE: &str = "ERR fence is not a non-negative integer";
/// Error for FENCE.RESTORE beyond the last fence a grant may take
/// ([`crate::coord::MAX_FENCE`]).
pub const FENCE_RANGE: &str = "ERR fence must be between 0 and 9223372036854775806";
/// Error for a grant once the fence counter reached [`crate::coord::MAX_FENCE`].
pub const NO_FENCE_LEFT: &str = "ERR no fence left (the last fence is 9223372036854775806)";

const RW: &[&str] = &["RW", "update"];
const RO: &[&str] = &["RO", "access"];

macro_rules! lock_cmd {
    ($($t:tt)*) => {
        $crate::keyed_cmd!(acl::WRITE, "coordination"; $($t)*)
    };
}

macro_rules! sem_cmd {
    ($name:literal, $arity:expr, $flags:expr, $summary:literal, $h:expr) => {
        lock_cmd!(
            $name,
            $arity,
            $flags,
            (1, 1, 1),
            &[KeySpec::single(1, RW)],
            "0.1.0",
            $summary,
            "O(N) where N is the number of holders",
            $h
        )
    };
}

macro_rules! session_cmd {
    ($name:literal, $arity:expr, $flags:expr, $summary:literal, $h:expr) => {
        Command {
            name: $name,
            arity: $arity,
            flags: $flags,
            group: "coordination",
            since: "0.1.0",
            summary: $summary,
            complexity: "O(1)",
            handler: Some($h),
            ..Command::EMPTY
        }
    };
}

/// The coordination family's commands.
pub const COMMANDS: &[Command] = &[
    lock_cmd!(
        "lock.acquire",
        -5,
        WRITE | DENYOOM | BLOCKING,
        (1, 1, 1),
        &[KeySpec::single(1, RW)],
        "0.1.0",
        "Acquires a lock (exclusive or shared) and returns a token, a fencing token and the lease left. (Basalt)",
        "O(N) where N is the number of holders",
        lock_acquire
    ),
    lock_cmd!(
        "lock.macquire",
        -5,
        WRITE | DENYOOM | BLOCKING,
        (0, 0, 0),
        &[KeySpec {
            notes: "",
            flags: RW,
            begin: crate::cmd::BeginSearch::Index(1),
            find: crate::cmd::FindKeys::Keynum {
                keynumidx: 0,
                firstkey: 1,
                step: 1,
            },
        }],
        "0.1.0",
        "Acquires several locks (exclusive or shared), all or none, each with its token and fencing token. (Basalt)",
        "O(N) where N is the number of keys",
        lock_macquire
    ),
    lock_cmd!(
        "lock.release",
        3,
        WRITE | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RW)],
        "0.1.0",
        "Releases a lock grant by its token. (Basalt)",
        "O(N) where N is the number of holders",
        lock_release
    ),
    lock_cmd!(
        "lock.renew",
        4,
        WRITE | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RW)],
        "0.1.0",
        "Extends the lease of a lock grant. (Basalt)",
        "O(N) where N is the number of holders",
        lock_renew
    ),
    lock_cmd!(
        "lock.info",
        2,
        READONLY,
        (1, 1, 1),
        &[KeySpec::single(1, RO)],
        "0.1.0",
        "Returns a lock's fence, holders and number of waiters. (Basalt)",
        "O(N) where N is the number of holders",
        lock_info
    ),
    Command {
        acl: acl::WRITE | acl::ADMIN | acl::DANGEROUS,
        ..lock_cmd!(
            "lock.force",
            2,
            WRITE | ADMIN,
            (1, 1, 1),
            &[KeySpec::single(1, RW)],
            "0.1.0",
            "Drops every holder of a lock, keeping its fence (admin). (Basalt)",
            "O(N) where N is the number of holders",
            lock_force
        )
    },
    lock_cmd!(
        "fence.check",
        3,
        READONLY | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RO)],
        "0.1.0",
        "Returns 1 if a fencing token is not older than the lock's newest grant. (Basalt)",
        "O(N) where N is the number of holders",
        fence_check
    ),
    lock_cmd!(
        "deliffence",
        4,
        WRITE | FAST,
        (1, 2, 1),
        &[
            KeySpec::single(1, &["RM", "delete"]),
            KeySpec::single(2, RO)
        ],
        "0.1.0",
        "Deletes a key if a fencing token may still write under a lock. (Basalt)",
        "O(N) where N is the number of holders",
        deliffence
    ),
    sem_cmd!(
        "sem.acquire",
        -6,
        WRITE | DENYOOM | BLOCKING,
        "Takes weighted permits of a counting semaphore and returns a token, a fencing token and the lease left. (Basalt)",
        sem_acquire
    ),
    sem_cmd!(
        "sem.release",
        3,
        WRITE | FAST,
        "Returns the permits of a semaphore grant by its token. (Basalt)",
        sem_release
    ),
    sem_cmd!(
        "sem.renew",
        4,
        WRITE | FAST,
        "Extends the lease of a semaphore grant. (Basalt)",
        sem_renew
    ),
    sem_cmd!(
        "sem.info",
        2,
        READONLY,
        "Returns a semaphore's limit, permits in use, fence, holders and waiters. (Basalt)",
        sem_info
    ),
    lock_cmd!(
        "elect.campaign",
        -6,
        WRITE | DENYOOM | BLOCKING,
        (1, 1, 1),
        &[KeySpec::single(1, RW)],
        "0.1.0",
        "Campaigns to lead an election; returns whether the candidate leads and the term. (Basalt)",
        "O(1)",
        elect_campaign
    ),
    lock_cmd!(
        "elect.proclaim",
        4,
        WRITE | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RW)],
        "0.1.0",
        "Replaces the value of the leader of a term. (Basalt)",
        "O(1)",
        elect_proclaim
    ),
    lock_cmd!(
        "elect.resign",
        3,
        WRITE | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RW)],
        "0.1.0",
        "Ends the leadership of a term. (Basalt)",
        "O(1)",
        elect_resign
    ),
    lock_cmd!(
        "elect.leader",
        2,
        READONLY | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RO)],
        "0.1.0",
        "Returns an election's leader, value, term and lease left. (Basalt)",
        "O(1)",
        elect_leader
    ),
    lock_cmd!(
        "elect.info",
        2,
        READONLY,
        (1, 1, 1),
        &[KeySpec::single(1, RO)],
        "0.1.0",
        "Returns an election's highest term, its leader, and how many campaigners wait and observers listen. (Basalt)",
        "O(1)",
        elect_info
    ),
    Command {
        acl: acl::PUBSUB | acl::READ,
        ..lock_cmd!(
            "elect.observe",
            2,
            PUBSUB | NOSCRIPT | LOADING | STALE,
            (1, 1, 1),
            &[KeySpec::single(1, RO)],
            "0.1.0",
            "Subscribes to an election's changes (and sends the current leader). (Basalt)",
            "O(1)",
            elect_observe
        )
    },
    session_cmd!(
        "session.open",
        -2,
        WRITE | FAST,
        "Opens a session that holds locks until it expires or is closed. (Basalt)",
        session_open
    ),
    session_cmd!(
        "session.keepalive",
        2,
        WRITE | FAST,
        "Extends a session's lease by its TTL. (Basalt)",
        session_keepalive
    ),
    session_cmd!(
        "session.close",
        2,
        WRITE,
        "Closes a session and releases everything it holds. (Basalt)",
        session_close
    ),
    Command {
        acl: acl::WRITE | acl::ADMIN | acl::DANGEROUS,
        ..session_cmd!(
            "session.restore",
            5,
            WRITE | ADMIN | FAST,
            "Recreates a session with a given id and a full TTL (what the AOF holds). (Basalt)",
            session_restore
        )
    },
    Command {
        acl: acl::WRITE | acl::ADMIN | acl::DANGEROUS,
        ..session_cmd!(
            "fence.restore",
            2,
            WRITE | ADMIN | FAST,
            "Raises the fence counter to at least a value (what the AOF holds). (Basalt)",
            fence_restore
        )
    },
    session_cmd!(
        "session.info",
        2,
        READONLY | FAST,
        "Returns a session's TTL, lease left, lock-delay and held locks. (Basalt)",
        session_info
    ),
];

/// A positive number of ms up to [`MAX_MS`].
fn millis(arg: &[u8]) -> Result<u64, Error> {
    match args::int(arg) {
        Ok(v) if (1..=MAX_MS).contains(&v) => Ok(v as u64),
        _ => Err(Error::msg(BAD_MS)),
    }
}

/// A session id (a positive integer).
fn session_id(arg: &[u8]) -> Result<u64, Error> {
    match args::int(arg) {
        Ok(v) if v > 0 => Ok(v as u64),
        _ => Err(Error::msg(NO_SESSION)),
    }
}

/// The lock at `key`: `Ok(None)` if missing, WRONGTYPE if another type.
fn lock_at<'g>(
    g: &'g mut Guard<'_>,
    db: usize,
    key: &[u8],
) -> Result<Option<&'g mut LockValue>, Error> {
    match g.get(db, key) {
        None => Ok(None),
        Some(e) => match e.into_value_mut() {
            Some(Value::Lock(l)) => Ok(Some(l)),
            _ => Err(Error::msg(error::WRONGTYPE)),
        },
    }
}

/// The lock (`sem` false) or semaphore (`sem` true) at `key`: `Ok(None)` if missing,
/// WRONGTYPE if another type (a semaphore is not a lock and vice versa).
fn lock_of<'g>(
    g: &'g mut Guard<'_>,
    db: usize,
    key: &[u8],
    sem: bool,
) -> Result<Option<&'g mut LockValue>, Error> {
    match lock_at(g, db, key)? {
        Some(l) if l.is_semaphore() != sem || l.is_election() => Err(Error::msg(error::WRONGTYPE)),
        other => Ok(other),
    }
}

/// A fresh grant token: 20 random hex digits (unique per grant; not a secret).
fn new_token() -> Vec<u8> {
    let mut rng = crate::rand::command_rng();
    format!("{:016x}{:04x}", rng(), rng() & 0xffff).into_bytes()
}

/// The AOF effect that sets `key` to its current state (`docs/persistence.md`):
/// `RESTORE key <deadline|0> <payload> REPLACE ABSTTL`, the DUMP payload holding the
/// `basalt-lk` value whose leases are absolute deadlines, so a replay on another clock
/// rebuilds the same holders and fence; `DEL key` if the key is gone.
pub fn state_effect(g: &mut Guard<'_>, db: usize, key: &[u8]) -> Vec<Bytes> {
    let k = Bytes::copy_from_slice(key);
    match g.peek(db, key) {
        Some(e) => {
            let payload = basalt_persist::dump::dump(
                e.value(),
                basalt_persist::rdb::encode::EncodeOptions::default(),
            );
            vec![
                Bytes::from_static(b"RESTORE"),
                k,
                crate::aof::int_arg(e.expire_at()),
                Bytes::from(payload),
                Bytes::from_static(b"REPLACE"),
                Bytes::from_static(b"ABSTTL"),
            ]
        }
        None => vec![Bytes::from_static(b"DEL"), k],
    }
}

/// Records that `key`'s value changed: WATCH learns of it, it counts as one change
/// (`rdb_changes_since_last_save`, save points), and its new state is this command's AOF
/// effect (when the AOF is on).
fn record_change(ctx: &mut Ctx<'_>, g: &mut Guard<'_>, key: &[u8]) {
    ctx.modified(key);
    if ctx.aof_on() {
        let e = state_effect(g, ctx.client.db, key);
        ctx.propagate(e);
    }
}

/// Adopts a lock value that arrives by RESTORE (a DUMP payload, an AOF effect or an AOF
/// base): the fence counter is raised to its fence. With `sessions` (the AOF loader's
/// own effects) each session grant is recorded in its session, or dropped if that
/// session does not exist (nothing would release it). Without (a client's RESTORE),
/// every session grant is dropped: a DUMP payload is a copy of the value, and a grant
/// must not be held twice (the session still holds it where it was granted, and a
/// payload from another server names that server's sessions). True if any grant was
/// dropped.
pub fn adopt(
    srv: &Server,
    db: usize,
    key: &[u8],
    l: &mut LockValue,
    now: u64,
    sessions: bool,
) -> bool {
    srv.coord.raise_fence(l.fence());
    let mut dropped = false;
    for sid in session_ids(l) {
        if !sessions || !srv.coord.add_held(sid, db, key, now) {
            dropped |= l.release_session(sid) > 0;
        }
    }
    watch_loaded_leader(srv, db, key, l);
    dropped
}

/// The sessions holding a grant of `l`, each once.
pub fn session_ids(l: &LockValue) -> Vec<u64> {
    let mut v: Vec<u64> = l
        .holders()
        .iter()
        .map(|h| h.session)
        .filter(|s| *s != 0)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// A value moved from `from` to `to` (RENAME, MOVE): if it is a lock, semaphore or
/// election, the sessions holding its grants now hold the key at its new place (their
/// expiry or CLOSE releases it there), and an election's leader lease is watched there.
pub fn moved(srv: &Server, value: &Value, from: (usize, &[u8]), to: (usize, &[u8])) {
    if let Value::Lock(l) = value {
        srv.coord.move_held(&session_ids(l), from, to);
        watch_loaded_leader(srv, to.0, to.1, l);
    }
}

/// A value at `key` of `db` was deleted or replaced (DEL, UNLINK, RESTORE REPLACE, the
/// old destination of RENAME or COPY REPLACE): if it was a lock, semaphore or election,
/// its sessions no longer hold the key.
pub fn removed(srv: &Server, value: &Value, db: usize, key: &[u8]) {
    if let Value::Lock(l) = value {
        srv.coord.drop_held(&session_ids(l), db, key);
    }
}

/// Error for COPY of a lock, semaphore or election that someone holds: Redis's reply
/// when a module type's copy callback declines (a grant belongs to one key).
pub const COPY_HELD: &str = "ERR module key failed to copy";

/// The value COPY writes for `value`: a lock, semaphore or election is copied without
/// holders (its fence, limit and lock-delay stay, so the copy refuses stale fences too),
/// and only while nobody holds it; anything else as it is.
pub fn copy_of(mut v: Value, now: u64) -> Result<Value, Error> {
    if let Value::Lock(l) = &mut v
        && !l.is_free(now)
    {
        return Err(Error::msg(COPY_HELD));
    }
    Ok(v)
}

/// Lets the cron report the end of a loaded election leader's TTL lease.
pub fn watch_loaded_leader(srv: &Server, db: usize, key: &[u8], l: &LockValue) {
    if l.is_election()
        && let Some(h) = l.leader()
        && h.expire_at != 0
    {
        srv.coord.watch_leader_lease(h.expire_at, db, key);
    }
}

struct AcquireArgs {
    permits: u32,
    ttl: Option<u64>,
    session: Option<u64>,
    wait: Option<u64>,
    fair: bool,
    reentrant: bool,
    shared: bool,
}

/// Which command's options [`parse_acquire`] reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    /// LOCK.ACQUIRE: FAIR, REENTRANT, SHARED.
    Lock,
    /// SEM.ACQUIRE: PERMITS, FAIR.
    Sem,
    /// LOCK.MACQUIRE: REENTRANT, SHARED (no FAIR: see `docs/coordination.md`).
    Multi,
    /// ELECT.CAMPAIGN: only the lease and WAIT.
    Elect,
}

/// Parses the options from `args[from]` (TTL or SESSION, WAIT, and those `form` allows).
fn parse_acquire(args: &[Bytes], from: usize, form: Form) -> Result<AcquireArgs, Error> {
    let sem = form == Form::Sem;
    let fair_ok = matches!(form, Form::Lock | Form::Sem);
    let lock_ok = matches!(form, Form::Lock | Form::Multi);
    let mut a = AcquireArgs {
        permits: 1,
        ttl: None,
        session: None,
        wait: None,
        fair: false,
        reentrant: false,
        shared: false,
    };
    let mut i = from;
    while i < args.len() {
        let opt = &args[i];
        let next = args.get(i + 1);
        match next {
            Some(v) if sem && is(opt, "permits") => {
                a.permits = match args::int(v) {
                    Ok(n) if (1..=MAX_PERMITS).contains(&n) => n as u32,
                    _ => return Err(Error::msg(BAD_PERMITS)),
                };
                i += 1;
            }
            Some(v) if is(opt, "ttl") && a.session.is_none() => {
                a.ttl = Some(millis(v)?);
                i += 1;
            }
            Some(v) if is(opt, "session") && a.ttl.is_none() => {
                a.session = Some(session_id(v)?);
                i += 1;
            }
            Some(v) if is(opt, "wait") => {
                // WAIT 0 waits forever, as BLPOP's 0 timeout.
                a.wait = Some(match args::int(v) {
                    Ok(0) => 0,
                    _ => millis(v)?,
                });
                i += 1;
            }
            _ if fair_ok && is(opt, "fair") => a.fair = true,
            _ if lock_ok && is(opt, "reentrant") => a.reentrant = true,
            _ if lock_ok && is(opt, "shared") => a.shared = true,
            _ => return Err(Error::msg(error::SYNTAX)),
        }
        i += 1;
    }
    if a.ttl.is_none() && a.session.is_none() {
        return Err(Error::msg(NEED_LEASE));
    }
    Ok(a)
}

fn grant_reply(token: &[u8], fence: u64, expire_at: u64, now: u64) -> Frame {
    Frame::Array(vec![
        Frame::Bulk(Bytes::copy_from_slice(token)),
        Frame::Integer(fence as i64),
        Frame::Integer(if expire_at == 0 {
            -1
        } else {
            expire_at.saturating_sub(now) as i64
        }),
    ])
}

/// LOCK.ACQUIRE key owner (TTL ms | SESSION sid) [WAIT ms] [FAIR] [REENTRANT] [SHARED]:
/// `[token, fence, ttl-left-ms]` (-1 for a session grant), or a null array when the lock
/// is busy (after WAIT ms when given).
fn lock_acquire(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let a = parse_acquire(args, 3, Form::Lock)?;
    acquire(ctx, &args[1], &args[2], a, 0)
}

/// SEM.ACQUIRE key limit owner [PERMITS n] (TTL ms | SESSION sid) [WAIT ms] [FAIR]: as
/// LOCK.ACQUIRE, granted while the permits in use plus `n` stay within `limit`.
fn sem_acquire(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let limit = match args::int(&args[2]) {
        Ok(n) if (1..=MAX_PERMITS).contains(&n) => n as u32,
        _ => return Err(Error::msg(BAD_LIMIT)),
    };
    let a = parse_acquire(args, 4, Form::Sem)?;
    if a.permits > limit {
        return Err(Error::msg(BAD_PERMITS));
    }
    acquire(ctx, &args[1], &args[3], a, limit)
}

/// The grant logic of LOCK.ACQUIRE (`limit` 0) and SEM.ACQUIRE (`limit` ≥ 1).
fn acquire(ctx: &mut Ctx<'_>, key: &Bytes, owner: &Bytes, a: AcquireArgs, limit: u32) -> CmdResult {
    let sem = limit > 0;
    let db = ctx.client.db;
    let now = ctx.now;
    let srv = ctx.srv;
    if let Some(sid) = a.session
        && srv.coord.get(sid, now).is_none()
    {
        return Err(Error::msg(NO_SESSION));
    }
    // FAIR: no barging. A re-run waiter goes only on its turn; a newcomer only if
    // nobody is queued.
    let waiting = srv.blocking.is_blocked(ctx.client.id);
    let my_turn = !a.fair
        || if waiting {
            srv.blocking.is_first(db, key, ctx.client.id)
        } else {
            srv.blocking.queue_len(db, key) == 0
        };
    let req = AcquireReq {
        owner,
        permits: a.permits,
        shared: a.shared,
        reentrant: a.reentrant,
        expire_at: a.ttl.map_or(0, |t| now + t),
        session: a.session.unwrap_or(0),
        value: b"",
    };
    let mut g = srv.keyspace.lock_key(key, now);
    let mut created = false;
    let l = match lock_of(&mut g, db, key, sem)? {
        Some(l) => l,
        None => {
            let fresh = if sem {
                LockValue::semaphore(limit)
            } else {
                LockValue::new(0)
            };
            g.insert(db, key, Value::from(fresh), 0);
            created = true;
            match lock_of(&mut g, db, key, sem)? {
                Some(l) => l,
                None => return Err(Error::msg("ERR lock vanished")),
            }
        }
    };
    // A semaphore's limit changes only while nobody holds it.
    let limit_changed = sem && l.limit() != limit;
    if limit_changed && !l.set_limit(limit, now) {
        return Err(Error::msg(LIMIT_MISMATCH));
    }
    // A turn-less FAIR request may still be an idempotent retry by a holder.
    let holds = l.holders().iter().any(|h| *h.owner == **owner);
    let outcome = if my_turn || holds {
        l.acquire(req, now, |f| srv.coord.next_fence(f), new_token)
    } else {
        l.prune(now);
        Acquired::Busy
    };
    match outcome {
        Acquired::Granted {
            token,
            fence,
            expire_at,
            new,
        } => {
            if let Some(sid) = a.session
                && !srv.coord.add_held(sid, db, key, now)
            {
                // The session expired between the check and the grant: undo it.
                if new {
                    l.release(&token, now);
                }
                drop(g);
                return Err(Error::msg(NO_SESSION));
            }
            record_change(ctx, &mut g, key);
            drop(g);
            ctx.reply_here();
            ctx.notify(
                ev::GENERIC,
                if sem { "sem.acquire" } else { "lock.acquire" },
                key,
            );
            if a.shared || sem {
                // The next waiter may fit too (a reader, or permits left).
                srv.blocking.signal(db, key);
            }
            Ok(grant_reply(&token, fence, expire_at, now))
        }
        Acquired::ModeConflict => Err(Error::msg(MODE_CONFLICT)),
        Acquired::NoFence => {
            if created {
                g.remove(db, key);
            } else if limit_changed {
                record_change(ctx, &mut g, key);
                return Err(Error::msg(NO_FENCE_LEFT));
            }
            ctx.propagate_nothing();
            Err(Error::msg(NO_FENCE_LEFT))
        }
        Acquired::Busy => {
            let recheck = l.next_expiry();
            if created {
                // Only reachable for a FAIR newcomer behind a queue on a missing key.
                g.remove(db, key);
            }
            if limit_changed && !created {
                record_change(ctx, &mut g, key);
            } else {
                ctx.propagate_nothing();
            }
            drop(g);
            match a.wait {
                Some(w) if ctx.can_block() => {
                    let deadline = (w != 0).then(|| now + w);
                    ctx.block_recheck(
                        vec![key.clone()],
                        deadline,
                        (recheck > now).then_some(recheck),
                    )
                }
                _ => Ok(Frame::NullArray),
            }
        }
    }
}

/// LOCK.MACQUIRE numkeys key [key ...] owner (TTL ms | SESSION sid) [WAIT ms] [REENTRANT]
/// [SHARED]: grants (exclusive, or shared with SHARED) on every key at once — `[[token, fence, ttl-left-ms], ...]` in key order — or
/// none at all (a null array; after WAIT ms when given, woken whenever one of the keys
/// frees). The keys' shards are locked together, so no command sees a partial state,
/// and the AOF logs the grants as one transaction.
fn lock_macquire(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let n = match args::int(&args[1]) {
        Ok(n) if n >= 1 && n as usize <= MAX_MACQUIRE => n as usize,
        _ => return Err(Error::msg(BAD_NUMKEYS)),
    };
    if args.len() < n + 3 {
        return Err(Error::msg(error::SYNTAX));
    }
    let keys = &args[2..2 + n];
    if keys.iter().enumerate().any(|(i, k)| keys[..i].contains(k)) {
        return Err(Error::msg(DUP_KEY));
    }
    let owner = &args[2 + n];
    let a = parse_acquire(args, 3 + n, Form::Multi)?;
    let db = ctx.client.db;
    let now = ctx.now;
    let srv = ctx.srv;
    if let Some(sid) = a.session
        && srv.coord.get(sid, now).is_none()
    {
        return Err(Error::msg(NO_SESSION));
    }
    let req = AcquireReq {
        owner,
        permits: 1,
        shared: a.shared,
        reentrant: a.reentrant,
        expire_at: a.ttl.map_or(0, |t| now + t),
        session: a.session.unwrap_or(0),
        value: b"",
    };
    let mut g = srv.keyspace.lock_keys(keys, now);
    // First every key is checked; nothing changes unless all can be granted.
    let mut recheck = 0u64;
    let mut all = true;
    for key in keys {
        if let Some(l) = lock_of(&mut g, db, key, false)?
            && !l.can_acquire(&req, now)
        {
            if l.holders().iter().any(|h| *h.owner == **owner) {
                return Err(Error::msg(MODE_CONFLICT));
            }
            all = false;
            let next = l.next_expiry();
            if next > now && (recheck == 0 || next < recheck) {
                recheck = next;
            }
        }
    }
    if !all {
        drop(g);
        ctx.propagate_nothing();
        return match a.wait {
            Some(w) if ctx.can_block() => {
                let deadline = (w != 0).then(|| now + w);
                let r =
                    ctx.block_recheck(keys.to_vec(), deadline, (recheck > now).then_some(recheck));
                // Only the first waiter of a key is woken: one that still cannot take all
                // its keys passes the wake-up on to the next.
                if let Some(b) = ctx.client.block.as_mut() {
                    b.pass_on = true;
                }
                r
            }
            _ => Ok(Frame::NullArray),
        };
    }
    // What each key held before, to put back if the grants cannot all be made (no fence
    // left, or the session expired meanwhile).
    let mut before = Vec::with_capacity(n);
    for key in keys {
        before.push(lock_of(&mut g, db, key, false)?.map(|l| l.clone()));
    }
    let mut grants = Vec::with_capacity(n);
    let mut failed = None;
    for key in keys {
        if lock_of(&mut g, db, key, false)?.is_none() {
            g.insert(db, key, Value::from(LockValue::new(0)), 0);
        }
        let Some(l) = lock_of(&mut g, db, key, false)? else {
            return Err(Error::msg("ERR lock vanished"));
        };
        match l.acquire(req, now, |f| srv.coord.next_fence(f), new_token) {
            Acquired::Granted {
                token,
                fence,
                expire_at,
                ..
            } => grants.push((token, fence, expire_at)),
            Acquired::NoFence => {
                failed = Some(NO_FENCE_LEFT);
                break;
            }
            // Checked above with every shard held.
            Acquired::Busy | Acquired::ModeConflict => {
                unreachable!("LOCK.MACQUIRE: a checked lock refused its grant")
            }
        }
    }
    if failed.is_none()
        && let Some(sid) = a.session
    {
        let registered = keys
            .iter()
            .take_while(|key| srv.coord.add_held(sid, db, key, now))
            .count();
        if registered < n {
            // The session expired meanwhile: it keeps only the keys it held before.
            for (key, old) in keys.iter().zip(&before) {
                if !old
                    .as_ref()
                    .is_some_and(|l| l.holders().iter().any(|h| h.session == sid))
                {
                    srv.coord.remove_held(sid, db, key);
                }
            }
            failed = Some(NO_SESSION);
        }
    }
    if let Some(e) = failed {
        // Undo: every key as it was (nothing created, no grant, no nesting level).
        for (key, old) in keys.iter().zip(before) {
            match old {
                Some(l) => {
                    if let Ok(Some(now_l)) = lock_of(&mut g, db, key, false) {
                        *now_l = l;
                    }
                }
                None => {
                    g.remove(db, key);
                }
            }
        }
        drop(g);
        ctx.propagate_nothing();
        return Err(Error::msg(e));
    }
    for key in keys {
        record_change(ctx, &mut g, key);
    }
    drop(g);
    ctx.reply_here();
    for key in keys {
        ctx.notify(ev::GENERIC, "lock.acquire", key);
        if a.shared {
            // The next waiter may be a reader too.
            srv.blocking.signal(db, key);
        }
    }
    Ok(Frame::Array(
        grants
            .iter()
            .map(|(token, fence, expire_at)| grant_reply(token, *fence, *expire_at, now))
            .collect(),
    ))
}

/// Wakes waiters of a lock that may have freed and publishes `event`.
fn freed(ctx: &Ctx<'_>, key: &[u8], event: &str) {
    ctx.notify(ev::GENERIC, event, key);
    ctx.srv.blocking.signal(ctx.client.db, key);
}

/// LOCK.RELEASE key token: 1 if a grant (or one reentrant level) was released, else 0.
fn lock_release(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    release(ctx, args, false)
}

/// SEM.RELEASE key token: 1 if the grant's permits were returned, else 0.
fn sem_release(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    release(ctx, args, true)
}

fn release(ctx: &mut Ctx<'_>, args: &[Bytes], sem: bool) -> CmdResult {
    let db = ctx.client.db;
    let key = &args[1];
    let mut g = ctx.srv.keyspace.lock_key(key, ctx.now);
    let Some(l) = lock_of(&mut g, db, key, sem)? else {
        drop(g);
        ctx.propagate_nothing();
        return Ok(Frame::Integer(0));
    };
    let session = l
        .holders()
        .iter()
        .find(|h| *h.token == *args[2])
        .map(|h| h.session);
    match l.release(&args[2], ctx.now) {
        None => {
            drop(g);
            ctx.propagate_nothing();
            Ok(Frame::Integer(0))
        }
        Some(left) => {
            record_change(ctx, &mut g, key);
            drop(g);
            if left == 0 {
                if let Some(sid) = session.filter(|s| *s != 0) {
                    ctx.srv.coord.remove_held(sid, db, key);
                }
                freed(ctx, key, if sem { "sem.release" } else { "lock.release" });
            }
            Ok(Frame::Integer(1))
        }
    }
}

/// LOCK.RENEW key token ttl_ms: 1 if the TTL grant was extended to now + ttl, else 0.
fn lock_renew(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    renew(ctx, args, false)
}

/// SEM.RENEW key token ttl_ms: as LOCK.RENEW for a semaphore grant.
fn sem_renew(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    renew(ctx, args, true)
}

fn renew(ctx: &mut Ctx<'_>, args: &[Bytes], sem: bool) -> CmdResult {
    let ttl = millis(&args[3])?;
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let Some(l) = lock_of(&mut g, db, &args[1], sem)? else {
        drop(g);
        ctx.propagate_nothing();
        return Ok(Frame::Integer(0));
    };
    let renewed = l.renew(&args[2], ctx.now + ttl, ctx.now);
    if renewed {
        record_change(ctx, &mut g, &args[1]);
    } else {
        ctx.propagate_nothing();
    }
    Ok(Frame::Integer(i64::from(renewed)))
}

/// LOCK.INFO key: a map of fence, mode, delay-left, holders (each a map) and waiters;
/// nil if the key does not exist.
fn lock_info(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    info(ctx, args, false)
}

/// SEM.INFO key: LOCK.INFO's map plus `limit` and `in-use` (permits).
fn sem_info(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    info(ctx, args, true)
}

fn info(ctx: &mut Ctx<'_>, args: &[Bytes], sem: bool) -> CmdResult {
    let db = ctx.client.db;
    let now = ctx.now;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], now);
    let Some(l) = lock_of(&mut g, db, &args[1], sem)? else {
        return Ok(Frame::Null);
    };
    l.prune(now);
    let mode = match l.holders().first() {
        None => "free",
        Some(_) if sem => "held",
        Some(h) if h.shared => "shared",
        Some(_) => "exclusive",
    };
    let b = |s: &str| Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()));
    let holders = l
        .holders()
        .iter()
        .map(|h| {
            Frame::Map(vec![
                (b("owner"), Frame::Bulk(Bytes::copy_from_slice(&h.owner))),
                (b("token"), Frame::Bulk(Bytes::copy_from_slice(&h.token))),
                (b("fence"), Frame::Integer(h.fence as i64)),
                (b("count"), Frame::Integer(i64::from(h.count))),
                (b("permits"), Frame::Integer(i64::from(h.permits))),
                (
                    b("ttl"),
                    Frame::Integer(if h.session != 0 {
                        -1
                    } else {
                        h.expire_at.saturating_sub(now) as i64
                    }),
                ),
                (b("session"), Frame::Integer(h.session as i64)),
            ])
        })
        .collect();
    let fence = l.fence();
    let delay = l.delay_until().saturating_sub(now);
    let (limit, in_use) = (l.limit(), l.in_use());
    drop(g);
    let waiters = ctx.srv.blocking.queue_len(db, &args[1]);
    let mut out = vec![
        (b("fence"), Frame::Integer(fence as i64)),
        (b("mode"), b(mode)),
    ];
    if sem {
        out.push((b("limit"), Frame::Integer(i64::from(limit))));
        out.push((b("in-use"), Frame::Integer(in_use as i64)));
    }
    out.extend([
        (b("delay"), Frame::Integer(delay as i64)),
        (b("holders"), Frame::Array(holders)),
        (b("waiters"), Frame::Integer(waiters as i64)),
    ]);
    Ok(Frame::Map(out))
}

/// LOCK.FORCE key: drops every holder (the fence stays); the number dropped.
fn lock_force(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let key = &args[1];
    let mut g = ctx.srv.keyspace.lock_key(key, ctx.now);
    let Some(l) = lock_of(&mut g, db, key, false)? else {
        drop(g);
        ctx.propagate_nothing();
        return Ok(Frame::Integer(0));
    };
    l.prune(ctx.now);
    let sessions: Vec<u64> = l
        .holders()
        .iter()
        .map(|h| h.session)
        .filter(|s| *s != 0)
        .collect();
    let n = l.force(ctx.now);
    if n > 0 {
        record_change(ctx, &mut g, key);
    } else {
        ctx.propagate_nothing();
    }
    drop(g);
    for sid in sessions {
        ctx.srv.coord.remove_held(sid, db, key);
    }
    if n > 0 {
        freed(ctx, key, "lock.force");
    }
    Ok(Frame::Integer(n as i64))
}

/// Parses a fence argument.
pub fn parse_fence(arg: &[u8]) -> Result<u64, Error> {
    match args::int(arg) {
        Ok(v) if v >= 0 => Ok((v as u64).min(basalt_persist::rdb::decode::MAX_FENCE)),
        _ => Err(Error::msg(BAD_FENCE)),
    }
}

/// The store-side fence check: true if `fence` may write under the lock at `lock_key`
/// (see `LockValue::fence_ok`); false if the key is missing (no fence was ever granted
/// there); WRONGTYPE if it is not a lock.
pub fn check_fence(
    g: &mut Guard<'_>,
    db: usize,
    lock_key: &[u8],
    fence: u64,
) -> Result<bool, Error> {
    let now = g.now();
    Ok(match lock_at(g, db, lock_key)? {
        Some(l) => l.fence_ok(fence, now),
        None => false,
    })
}

/// FENCE.CHECK key fence: 1 if `fence` is at least the newest grant's (or a live
/// holder's), else 0.
fn fence_check(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let fence = parse_fence(&args[2])?;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    Ok(Frame::Integer(i64::from(check_fence(
        &mut g,
        ctx.client.db,
        &args[1],
        fence,
    )?)))
}

/// DELIFFENCE key lockkey fence: deletes `key` (1) if `fence` passes the check against the
/// lock at `lockkey`; 0 if the key is missing or the fence is stale.
fn deliffence(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let fence = parse_fence(&args[3])?;
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_keys(&args[1..3], ctx.now);
    // The check may pass on a live holder's lease, which a replay on another clock could
    // judge differently: the effect is the plain DEL, or nothing.
    if !check_fence(&mut g, db, &args[2], fence)?
        || !g.delete(db, &args[1], basalt_engine::Reason::UserDel)
    {
        drop(g);
        ctx.propagate_nothing();
        return Ok(Frame::Integer(0));
    }
    drop(g);
    if ctx.aof_on() {
        ctx.propagate(vec![Bytes::from_static(b"DEL"), args[1].clone()]);
    }
    ctx.notify(ev::GENERIC, "del", &args[1]);
    Ok(Frame::Integer(1))
}

/// SESSION.OPEN ttl_ms [LOCKDELAY ms] [ONEXPIRE RELEASE|DELETE]: the new session's id.
fn session_open(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let ttl = millis(&args[1])?;
    let mut lockdelay = 0;
    let mut on_expire = OnExpire::Release;
    let mut i = 2;
    while i < args.len() {
        match args.get(i + 1) {
            Some(v) if is(&args[i], "lockdelay") => {
                lockdelay = match args::int(v) {
                    Ok(0) => 0,
                    _ => millis(v)?,
                };
            }
            Some(v) if is(&args[i], "onexpire") && is(v, "release") => {
                on_expire = OnExpire::Release
            }
            Some(v) if is(&args[i], "onexpire") && is(v, "delete") => on_expire = OnExpire::Delete,
            _ => return Err(Error::msg(error::SYNTAX)),
        }
        i += 2;
    }
    let max = ctx.srv.config.read().max_sessions;
    let Some(id) = ctx.srv.coord.open(ttl, lockdelay, on_expire, ctx.now, max) else {
        return Err(Error::msg(format!(
            "ERR too many sessions (coord-max-sessions is {max})"
        )));
    };
    // Sessions are saved with the dataset (RDB aux field), so opening one is a change.
    ctx.changed(1);
    if ctx.aof_on()
        && let Some(s) = ctx.srv.coord.get(id, ctx.now)
    {
        ctx.propagate(crate::coord::CoordState::session_command(id, &s));
    }
    Ok(Frame::Integer(id as i64))
}

/// SESSION.KEEPALIVE sid: the TTL the session was extended by, or an error if it is gone.
fn session_keepalive(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let sid = session_id(&args[1])?;
    // Not logged: a session comes back from the AOF with a full TTL anyway.
    ctx.propagate_nothing();
    match ctx.srv.coord.keepalive(sid, ctx.now) {
        Some(ttl) => Ok(Frame::Integer(ttl as i64)),
        None => Err(Error::msg(NO_SESSION)),
    }
}

/// SESSION.CLOSE sid: releases everything the session holds (no lock-delay); the number
/// of locks released, or an error if there is no such session.
fn session_close(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let sid = session_id(&args[1])?;
    let Some(s) = ctx.srv.coord.take(sid) else {
        return Err(Error::msg(NO_SESSION));
    };
    // The session and each grant it held: changes to what is saved.
    let released = end_session(ctx.srv, sid, s, ctx.now, false, None);
    ctx.changed(1 + released as u64);
    Ok(Frame::Integer(released as i64))
}

/// SESSION.RESTORE sid ttl_ms lockdelay_ms RELEASE|DELETE: recreates a session with a
/// full TTL from now (the AOF's form of SESSION.OPEN; ids opened later stay above it).
/// An error if the session exists.
fn session_restore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let sid = session_id(&args[1])?;
    let ttl = millis(&args[2])?;
    let lockdelay = match args::int(&args[3]) {
        Ok(0) => 0,
        _ => millis(&args[3])?,
    };
    let on_expire = if is(&args[4], "release") {
        OnExpire::Release
    } else if is(&args[4], "delete") {
        OnExpire::Delete
    } else {
        return Err(Error::msg(error::SYNTAX));
    };
    let s = crate::coord::Session {
        ttl,
        lockdelay,
        on_expire,
        expire_at: 0,
        held: Default::default(),
    };
    if !ctx.srv.coord.restore_new(sid, s, ctx.now) {
        return Err(Error::msg(SESSION_EXISTS));
    }
    ctx.changed(1);
    Ok(Frame::ok())
}

/// FENCE.RESTORE fence: raises the fence counter to at least `fence` (never lowers it),
/// so every later grant's fence is above it (the AOF's form of the counter). A fence
/// above [`crate::coord::MAX_FENCE`] is refused ([`FENCE_RANGE`]); at it, no grant is
/// possible any more ([`NO_FENCE_LEFT`]).
fn fence_restore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let fence = match args::int(&args[1]) {
        Ok(v) if v < 0 => return Err(Error::msg(BAD_FENCE)),
        Ok(v) if v as u64 <= crate::coord::MAX_FENCE => v as u64,
        Ok(_) => return Err(Error::msg(FENCE_RANGE)),
        // Beyond i64: still a number, just out of range.
        Err(_) if args[1].iter().all(u8::is_ascii_digit) && !args[1].is_empty() => {
            return Err(Error::msg(FENCE_RANGE));
        }
        Err(_) => return Err(Error::msg(BAD_FENCE)),
    };
    if fence > ctx.srv.coord.fence() {
        ctx.srv.coord.raise_fence(fence);
        ctx.changed(1);
    }
    Ok(Frame::ok())
}

/// SESSION.INFO sid: a map of ttl, lease left, lockdelay, onexpire and the held lock keys.
fn session_info(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let sid = session_id(&args[1])?;
    let Some(s) = ctx.srv.coord.get(sid, ctx.now) else {
        return Err(Error::msg(NO_SESSION));
    };
    let b = |s: &str| Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()));
    let db = ctx.client.db;
    // Only keys whose value still holds a grant of this session (a key that expired or
    // was overwritten since is left out).
    let locks = s
        .held
        .iter()
        .filter(|(d, k)| {
            *d == db && {
                let mut g = ctx.srv.keyspace.lock_key(k, ctx.now);
                matches!(lock_at(&mut g, db, k), Ok(Some(l))
                    if l.holders().iter().any(|h| h.session == sid))
            }
        })
        .map(|(_, k)| Frame::Bulk(k.clone()))
        .collect();
    Ok(Frame::Map(vec![
        (b("ttl"), Frame::Integer(s.ttl as i64)),
        (
            b("expires-in"),
            Frame::Integer(s.expire_at.saturating_sub(ctx.now) as i64),
        ),
        (b("lockdelay"), Frame::Integer(s.lockdelay as i64)),
        (
            b("onexpire"),
            b(if s.on_expire == OnExpire::Delete {
                "delete"
            } else {
                "release"
            }),
        ),
        (b("locks"), Frame::Array(locks)),
    ]))
}

/// Releases every grant of a session that was removed from the table: on expiry, the
/// locks refuse new grants for its LOCKDELAY and, under ONEXPIRE DELETE, lock keys left
/// without holders are deleted. Waiters are signalled. Returns how many locks it held.
///
/// With `effects`, each changed lock key's new state is added to it as
/// `(db, RESTORE ... | DEL ...)` (see [`state_effect`]).
pub fn end_session(
    srv: &Server,
    sid: u64,
    s: crate::coord::Session,
    now: u64,
    expired: bool,
    mut effects: Option<&mut Vec<(usize, Vec<Bytes>)>>,
) -> usize {
    let mut n = 0;
    for (db, key) in &s.held {
        let mut g = srv.keyspace.lock_key(key, now);
        let Ok(Some(l)) = lock_at(&mut g, *db, key) else {
            continue;
        };
        let leader = l
            .leader()
            .filter(|h| l.is_election() && h.session == sid)
            .cloned();
        if l.release_session(sid) == 0 {
            continue;
        }
        if let Some(h) = leader {
            publish_change(srv, *db, key, "expired", &h);
        }
        n += 1;
        if expired && s.lockdelay > 0 {
            l.delay(now + s.lockdelay);
        }
        let delete = expired && s.on_expire == OnExpire::Delete && l.is_free(now);
        if delete {
            g.remove(*db, key);
        }
        if let Some(out) = effects.as_deref_mut() {
            out.push((*db, state_effect(&mut g, *db, key)));
        }
        drop(g);
        srv.watches.touch(*db, key);
        srv.pubsub.notify(
            ev::GENERIC,
            if delete { "del" } else { "lock.release" },
            key,
            *db,
        );
        srv.blocking.signal(*db, key);
    }
    n
}

/// The cron's share: reports election leaders whose lease passed, and ends the sessions
/// whose lease passed. Never between the commands of
/// an EXEC or a script, and never while the AOF rewrite takes its point in time (both hold
/// the exec gate); with the AOF on, each expiry is logged as one transaction:
/// `SESSION.CLOSE sid`, then the new state of every lock it held (the lock-delay and
/// ONEXPIRE DELETE are time-dependent, so they are logged as their results).
pub fn expire_sessions(srv: &Server, now: u64) {
    let Some(_gate) = srv.exec_gate.try_read() else {
        return;
    };
    let logging = srv.aof.is_on();
    let _order = logging.then(|| srv.aof.order.lock());
    // A TTL leader whose lease passed is dropped (deterministic: nothing to log) and its
    // end published, and the next campaigner woken, even if nobody touches the election.
    for (db, name) in srv.coord.take_lapsed_leader_leases(now) {
        let mut g = srv.keyspace.lock_key(&name, now);
        let _ = election_at(srv, &mut g, db, &name);
        drop(g);
        srv.blocking.signal(db, &name);
    }
    for (sid, s) in srv.coord.take_expired(now) {
        let mut effects = vec![(
            0,
            vec![
                Bytes::from_static(b"SESSION.CLOSE"),
                crate::aof::int_arg(sid),
            ],
        )];
        let released = end_session(srv, sid, s, now, true, logging.then_some(&mut effects));
        srv.persist.note_changes(1 + released as u64);
        if logging {
            srv.aof.append(&effects);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Leader election
// ---------------------------------------------------------------------------------------

/// The pub/sub channel where an election's changes are published:
/// `__elect@<db>__:<name>` (as Redis names its keyspace channels).
pub fn elect_channel(db: usize, name: &[u8]) -> Bytes {
    let mut c = format!("__elect@{db}__:").into_bytes();
    c.extend_from_slice(name);
    Bytes::from(c)
}

/// Publishes one change of an election: `<event> <term> <candidate length>:<candidate>
/// <value>` (binary-safe: the candidate is length-prefixed, the value is the rest).
/// Called with the election's shard locked, so observers see the changes of one
/// election in the order they happened.
fn publish_change(srv: &Server, db: usize, name: &[u8], event: &str, h: &Holder) {
    srv.pubsub
        .publish(&elect_channel(db, name), &change_message(event, h), false);
}

/// `<event> <term> <candidate length>:<candidate> <value>`.
fn change_message(event: &str, h: &Holder) -> Vec<u8> {
    let mut m = format!("{event} {} {}:", h.fence, h.owner.len()).into_bytes();
    m.extend_from_slice(&h.owner);
    m.push(b' ');
    m.extend_from_slice(&h.value);
    m
}

/// The election at `key`, with a leader whose lease passed dropped (and published as
/// `expired`): `Ok(None)` if missing, WRONGTYPE if another type.
fn election_at<'g>(
    srv: &Server,
    g: &'g mut Guard<'_>,
    db: usize,
    key: &[u8],
) -> Result<Option<&'g mut LockValue>, Error> {
    let now = g.now();
    match lock_at(g, db, key)? {
        None => Ok(None),
        Some(l) if !l.is_election() => Err(Error::msg(error::WRONGTYPE)),
        Some(l) => {
            let before = l.leader().cloned();
            if l.prune(now)
                && let Some(h) = before
            {
                publish_change(srv, db, key, "expired", &h);
            }
            Ok(Some(l))
        }
    }
}

/// Error for ELECT.CAMPAIGN without a lease.
pub const ELECT_NEED_LEASE: &str = "ERR ELECT.CAMPAIGN needs TTL ms or SESSION sid";

/// ELECT.CAMPAIGN name candidate value (TTL ms | SESSION sid) [WAIT ms]: `[1, term]` when
/// `candidate` leads (a new term, or its own current one on a retry, which refreshes the
/// lease), `[0, term]` when another leads (term 0: nobody, but others were queued first);
/// with WAIT it blocks, first come first served, until it leads (then `[1, term]`) or the
/// wait ends (a null array).
fn elect_campaign(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let a = parse_acquire(args, 4, Form::Elect).map_err(|e| {
        if e.0 == NEED_LEASE {
            Error::msg(ELECT_NEED_LEASE)
        } else {
            e
        }
    })?;
    let (name, candidate, value) = (&args[1], &args[2], &args[3]);
    let db = ctx.client.db;
    let now = ctx.now;
    let srv = ctx.srv;
    if let Some(sid) = a.session
        && srv.coord.get(sid, now).is_none()
    {
        return Err(Error::msg(NO_SESSION));
    }
    // First come, first served: a re-run waiter goes only on its turn, a newcomer only
    // if nobody is queued.
    let my_turn = if srv.blocking.is_blocked(ctx.client.id) {
        srv.blocking.is_first(db, name, ctx.client.id)
    } else {
        srv.blocking.queue_len(db, name) == 0
    };
    let mut g = srv.keyspace.lock_key(name, now);
    let created = match election_at(srv, &mut g, db, name)? {
        Some(_) => false,
        None => {
            g.insert(db, name, Value::from(LockValue::election()), 0);
            true
        }
    };
    let Some(l) = election_at(srv, &mut g, db, name)? else {
        return Err(Error::msg("ERR election vanished"));
    };
    let leads = l.leader().is_some_and(|h| *h.owner == **candidate);
    let outcome = if my_turn || leads {
        let req = AcquireReq {
            owner: candidate,
            permits: 1,
            shared: false,
            reentrant: false,
            expire_at: a.ttl.map_or(0, |t| now + t),
            session: a.session.unwrap_or(0),
            value,
        };
        l.acquire(req, now, |f| srv.coord.next_fence(f), new_token)
    } else {
        Acquired::Busy
    };
    match outcome {
        Acquired::Granted {
            token, fence, new, ..
        } => {
            if let Some(sid) = a.session
                && !srv.coord.add_held(sid, db, name, now)
            {
                if new {
                    l.release(&token, now);
                }
                return Err(Error::msg(NO_SESSION));
            }
            if new && let Some(h) = l.leader() {
                publish_change(srv, db, name, "elected", h);
            }
            if let Some(t) = a.ttl {
                srv.coord.watch_leader_lease(now + t, db, name);
            }
            record_change(ctx, &mut g, name);
            drop(g);
            ctx.reply_here();
            ctx.notify(ev::GENERIC, "elect.campaign", name);
            Ok(Frame::Array(vec![
                Frame::Integer(1),
                Frame::Integer(fence as i64),
            ]))
        }
        // Only a leader's own mode could conflict, and campaigns are all exclusive.
        Acquired::ModeConflict => Err(Error::msg(MODE_CONFLICT)),
        Acquired::NoFence => {
            if created {
                g.remove(db, name);
            }
            drop(g);
            ctx.propagate_nothing();
            Err(Error::msg(NO_FENCE_LEFT))
        }
        Acquired::Busy => {
            let recheck = l.next_expiry();
            let term = l.leader().map_or(0, |h| h.fence);
            if created {
                // Only reachable for a newcomer behind a queue on a missing key.
                g.remove(db, name);
            }
            drop(g);
            ctx.propagate_nothing();
            match a.wait {
                Some(w) if ctx.can_block() => {
                    let deadline = (w != 0).then(|| now + w);
                    ctx.block_recheck(
                        vec![name.clone()],
                        deadline,
                        (recheck > now).then_some(recheck),
                    )
                }
                _ => Ok(Frame::Array(vec![
                    Frame::Integer(0),
                    Frame::Integer(term as i64),
                ])),
            }
        }
    }
}

/// A term argument (a fence).
fn term_arg(arg: &[u8]) -> Result<u64, Error> {
    parse_fence(arg).map_err(|_| Error::msg(BAD_TERM))
}

/// Error for a term that is not a non-negative integer.
pub const BAD_TERM: &str = "ERR term is not a non-negative integer";

/// ELECT.PROCLAIM name term value: 1 if `term` is the live leader's and its value is now
/// `value`, else 0.
fn elect_proclaim(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let term = term_arg(&args[2])?;
    let (db, now, srv) = (ctx.client.db, ctx.now, ctx.srv);
    let name = &args[1];
    let mut g = srv.keyspace.lock_key(name, now);
    let done = match election_at(srv, &mut g, db, name)? {
        Some(l) => {
            let done = l.proclaim(term, &args[3], now);
            if done && let Some(h) = l.leader() {
                publish_change(srv, db, name, "proclaimed", h);
            }
            done
        }
        None => false,
    };
    if done {
        record_change(ctx, &mut g, name);
        drop(g);
        ctx.notify(ev::GENERIC, "elect.proclaim", name);
    } else {
        drop(g);
        ctx.propagate_nothing();
    }
    Ok(Frame::Integer(i64::from(done)))
}

/// ELECT.RESIGN name term: 1 if `term` was the live leader's and leadership ended (the
/// next campaigner is woken), else 0.
fn elect_resign(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let term = term_arg(&args[2])?;
    let (db, now, srv) = (ctx.client.db, ctx.now, ctx.srv);
    let name = &args[1];
    let mut g = srv.keyspace.lock_key(name, now);
    let left = match election_at(srv, &mut g, db, name)? {
        Some(l) => l.resign(term, now),
        None => None,
    };
    let Some(h) = left else {
        drop(g);
        ctx.propagate_nothing();
        return Ok(Frame::Integer(0));
    };
    publish_change(srv, db, name, "resigned", &h);
    record_change(ctx, &mut g, name);
    drop(g);
    if h.session != 0 {
        srv.coord.remove_held(h.session, db, name);
    }
    ctx.notify(ev::GENERIC, "elect.resign", name);
    srv.blocking.signal(db, name);
    Ok(Frame::Integer(1))
}

/// ELECT.LEADER name: `[candidate, value, term, ttl-left-ms]` (-1 for a session's
/// leadership), or nil when nobody leads.
fn elect_leader(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (db, now, srv) = (ctx.client.db, ctx.now, ctx.srv);
    let mut g = srv.keyspace.lock_key(&args[1], now);
    let Some(l) = election_at(srv, &mut g, db, &args[1])? else {
        return Ok(Frame::Null);
    };
    Ok(match l.leader() {
        None => Frame::Null,
        Some(h) => Frame::Array(vec![
            Frame::Bulk(Bytes::copy_from_slice(&h.owner)),
            Frame::Bulk(Bytes::copy_from_slice(&h.value)),
            Frame::Integer(h.fence as i64),
            Frame::Integer(if h.session != 0 {
                -1
            } else {
                h.expire_at.saturating_sub(now) as i64
            }),
        ]),
    })
}

/// ELECT.INFO name: a map of `term` (the highest term granted, 0 if none), `leader` (nil,
/// or a map of candidate, value, term, ttl, session), `candidates` (campaigners waiting
/// with WAIT) and `observers` (clients subscribed to the election's channel). Also for
/// a name that holds no election yet (term 0, no leader: campaigners may wait and
/// observers listen before the first campaign); WRONGTYPE for another type.
fn elect_info(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (db, now, srv) = (ctx.client.db, ctx.now, ctx.srv);
    let name = &args[1];
    let mut g = srv.keyspace.lock_key(name, now);
    let (term, leader) = match election_at(srv, &mut g, db, name)? {
        Some(l) => (l.fence(), l.leader().cloned()),
        None => (0, None),
    };
    drop(g);
    let b = |s: &str| Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()));
    let leader = match leader {
        None => Frame::Null,
        Some(h) => Frame::Map(vec![
            (b("candidate"), Frame::Bulk(Bytes::from(h.owner.to_vec()))),
            (b("value"), Frame::Bulk(Bytes::from(h.value.to_vec()))),
            (b("term"), Frame::Integer(h.fence as i64)),
            (
                b("ttl"),
                Frame::Integer(if h.session != 0 {
                    -1
                } else {
                    h.expire_at.saturating_sub(now) as i64
                }),
            ),
            (b("session"), Frame::Integer(h.session as i64)),
        ]),
    };
    let candidates = srv.blocking.queue_len(db, name);
    let observers = srv.pubsub.numsub(&elect_channel(db, name), false);
    Ok(Frame::Map(vec![
        (b("term"), Frame::Integer(term as i64)),
        (b("leader"), leader),
        (b("candidates"), Frame::Integer(candidates as i64)),
        (b("observers"), Frame::Integer(observers as i64)),
    ]))
}

/// ELECT.OBSERVE name: subscribes to the election's channel ([`elect_channel`]) as
/// SUBSCRIBE does (RESP3: push messages beside other replies; RESP2: subscribed mode),
/// then, if someone leads, sends this client a `leader <term> <len>:<candidate> <value>`
/// message. Done with the election's shard locked, so no change slips between the two.
fn elect_observe(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (db, now, srv) = (ctx.client.db, ctx.now, ctx.srv);
    let name = &args[1];
    let mut g = srv.keyspace.lock_key(name, now);
    let current = election_at(srv, &mut g, db, name)?.and_then(|l| l.leader().cloned());
    let channel = elect_channel(db, name);
    let shared = ctx.client.shared.clone();
    let proto = ctx.client.proto;
    srv.pubsub.subscribe(
        &mut ctx.client.subs,
        &shared,
        proto,
        crate::pubsub::Kind::Channel,
        std::slice::from_ref(&channel),
    );
    if let Some(h) = current {
        srv.pubsub
            .send_own(&shared, proto, &channel, &change_message("leader", &h));
    }
    drop(g);
    ctx.client.reply_in_outbox = true;
    // Never sent: the confirmation (and the current leader) are in the outbox.
    Ok(Frame::Null)
}
