//! Job queue commands (`docs/jobs.md`): JOB.PUSH/PUSHB/FETCH/ACK/FAIL/NACK/EXTEND/
//! PROGRESS/CANCEL/GET/WAIT, QUEUE.CONFIG/PAUSE/RESUME/DRAIN/STATS/LIST,
//! DLQ.LIST/REQUEUE/PURGE, WORKER.BEAT/QUIET/TERMINATE/LIST, and the AOF's internal
//! JOB.EFFECT.
//!
//! A queue is a keyspace value (`Value::Queue`) whose decisions live in
//! `basalt_engine::types::queue`; this module parses, draws the random parts (jids,
//! claim tokens, jitter), finds jobs by jid through the server's index (`crate::jobs`),
//! wakes blocked fetchers and waiters, and logs every change to the AOF as its
//! deterministic effect: `JOB.EFFECT <now> <command> <args>` re-runs the command at the
//! time it ran with everything random resolved (a push's jid and its defaults, a fetch
//! as one CLAIM per job with its token, fence and deadline, a failure's retry time).

use crate::cmd::args::{self, is};
use crate::cmd::flags::*;
use crate::cmd::{BeginSearch, Command, FindKeys, KeySpec, acl};
use crate::error::{self, CmdResult, Error};
use crate::jobs::{JobConfig, WorkerState};
use crate::pubsub::notify as ev;
use crate::server::Ctx;
use basalt_engine::types::QueueValue;
use basalt_engine::types::StreamValue;
use basalt_engine::types::queue::{
    Backoff, Changes, ClaimError, ClaimOpts, DEFAULT_PRIORITY, Event, Failed, Job, LoggedClaim,
    MAX_PRIORITY, PushReq, Pushed, QueueConfig, Retention, Retry, State,
};
use basalt_engine::types::stream::{IdRequest, StreamId, Trim, TrimStrategy};
use basalt_engine::{Guard, Value};
use basalt_proto::Frame;
use bytes::Bytes;

/// Longest time argument (ms): 10 years, as the coordination commands.
pub const MAX_MS: u64 = 315_360_000_000;
/// Error for an unknown jid.
pub const NO_JOB: &str = "ERR no such job";
/// Error for a claim token that is not the job's current claim.
pub const STALE: &str = "STALE claim is not current";
/// Error for a missing queue (QUEUE.STATS/PAUSE/RESUME/DRAIN, DLQ.*).
pub const NO_QUEUE: &str = "ERR no such queue";
/// Error for a payload (or RESULT, error, message) over `job-max-payload-bytes`.
pub const TOO_BIG: &str = "ERR job payload exceeds job-max-payload-bytes";
/// Error for an empty or too long jid.
pub const BAD_ID: &str = "ERR invalid job id";
/// Error for DELAY with AT.
pub const DELAY_AT: &str = "ERR DELAY and AT are exclusive";
/// Error for a priority out of range.
pub const BAD_PRIORITY: &str = "ERR PRIORITY must be between 0 and 9";
/// Error for a malformed BACKOFF.
pub const BAD_BACKOFF: &str = "ERR invalid BACKOFF";
/// Error for a RETRY out of range.
pub const BAD_RETRY: &str = "ERR RETRY must be between 0 and 1000000";
/// Error for a progress out of range.
pub const BAD_PROGRESS: &str = "ERR progress must be between 0 and 100";
/// Error for JOB.EFFECT from a client.
pub const INTERNAL: &str = "ERR JOB.EFFECT is internal";
/// Largest RETRY.
pub const MAX_RETRY: i64 = 1_000_000;

const RW: &[&str] = &["RW", "update"];
const RO: &[&str] = &["RO", "access"];

macro_rules! queue_cmd {
    ($name:literal, $arity:expr, $flags:expr, $acl:expr, $summary:literal, $h:expr) => {
        Command {
            name: $name,
            arity: $arity,
            flags: $flags,
            acl: $acl,
            keys: (1, 1, 1),
            key_specs: &[KeySpec::single(1, RW)],
            group: "jobs",
            since: "0.1.0",
            summary: $summary,
            complexity: "O(log N) where N is the number of jobs in the queue",
            handler: Some($h),
            ..Command::EMPTY
        }
    };
}

macro_rules! jid_cmd {
    ($name:literal, $arity:expr, $flags:expr, $acl:expr, $summary:literal, $h:expr) => {
        Command {
            name: $name,
            arity: $arity,
            flags: $flags,
            acl: $acl,
            group: "jobs",
            since: "0.1.0",
            summary: $summary,
            complexity: "O(log N) where N is the number of jobs in the job's queue",
            handler: Some($h),
            ..Command::EMPTY
        }
    };
}

const FETCH_KEY_SPECS: &[KeySpec] = &[KeySpec {
    notes: "The queues run up to the first option name (COUNT, BLOCK, VISIBILITY, WORKER)",
    flags: RW,
    begin: BeginSearch::Index(1),
    find: FindKeys::Unknown,
}];

/// The job family's commands.
pub const COMMANDS: &[Command] = &[
    queue_cmd!(
        "job.push",
        -3,
        WRITE | DENYOOM | FAST,
        acl::WRITE,
        "Pushes a job onto a queue and returns its id. (Basalt)",
        job_push
    ),
    queue_cmd!(
        "job.pushb",
        -4,
        WRITE | DENYOOM,
        acl::WRITE,
        "Pushes several jobs onto a queue; per-job replies. (Basalt)",
        job_pushb
    ),
    Command {
        getkeys: Some(fetch_keys),
        keys: (0, 0, 0),
        key_specs: FETCH_KEY_SPECS,
        flags: WRITE | BLOCKING | MOVABLE_KEYS,
        ..queue_cmd!(
            "job.fetch",
            -2,
            0,
            acl::WRITE,
            "Claims runnable jobs from queues (strict priority, FIFO), optionally blocking. (Basalt)",
            job_fetch
        )
    },
    jid_cmd!(
        "job.ack",
        -3,
        WRITE | FAST,
        acl::WRITE,
        "Completes a claimed job, exactly once per idempotency key. (Basalt)",
        job_ack
    ),
    jid_cmd!(
        "job.fail",
        -4,
        WRITE | FAST,
        acl::WRITE,
        "Fails a claimed job: retried with backoff, or dead. (Basalt)",
        job_fail
    ),
    jid_cmd!(
        "job.nack",
        -3,
        WRITE | FAST,
        acl::WRITE,
        "Gives a claimed job back without counting a failure. (Basalt)",
        job_nack
    ),
    jid_cmd!(
        "job.extend",
        4,
        WRITE | FAST,
        acl::WRITE,
        "Extends a claim's visibility deadline. (Basalt)",
        job_extend
    ),
    jid_cmd!(
        "job.progress",
        -4,
        WRITE | FAST,
        acl::WRITE,
        "Records a claimed job's progress. (Basalt)",
        job_progress
    ),
    jid_cmd!(
        "job.cancel",
        2,
        WRITE | FAST,
        acl::WRITE,
        "Cancels a job that has not finished. (Basalt)",
        job_cancel
    ),
    jid_cmd!(
        "job.get",
        2,
        WRITE | FAST,
        acl::READ,
        "Returns a job's state, attempts, errors, times and result. (Basalt)",
        job_get
    ),
    jid_cmd!(
        "job.wait",
        -2,
        WRITE | BLOCKING,
        acl::READ,
        "Waits until a job finishes and returns it. (Basalt)",
        job_wait
    ),
    jid_cmd!(
        "job.effect",
        -3,
        WRITE | NOSCRIPT | LOADING,
        acl::WRITE | acl::ADMIN | acl::DANGEROUS,
        "Internal: the AOF's deterministic form of a job command. (Basalt)",
        job_effect
    ),
    Command {
        key_specs: &[KeySpec::single(1, RO)],
        ..queue_cmd!(
            "job.events",
            -2,
            READONLY | BLOCKING,
            acl::READ,
            "Reads a queue's event stream ({queue}:events) as XREAD does. (Basalt)",
            job_events
        )
    },
    queue_cmd!(
        "queue.config",
        -2,
        WRITE | DENYOOM,
        acl::WRITE,
        "Sets or shows a queue's rate limit, concurrency limits and retention. (Basalt)",
        queue_config
    ),
    queue_cmd!(
        "queue.pause",
        2,
        WRITE | FAST,
        acl::WRITE,
        "Pauses a queue: fetches skip it. (Basalt)",
        queue_pause
    ),
    queue_cmd!(
        "queue.resume",
        2,
        WRITE | FAST,
        acl::WRITE,
        "Resumes a paused queue. (Basalt)",
        queue_resume
    ),
    queue_cmd!(
        "queue.drain",
        2,
        WRITE,
        acl::WRITE,
        "Removes a queue's scheduled, waiting and failed jobs. (Basalt)",
        queue_drain
    ),
    Command {
        key_specs: &[KeySpec::single(1, RO)],
        ..queue_cmd!(
            "queue.stats",
            2,
            WRITE | FAST,
            acl::READ,
            "Returns a queue's job counts by state. (Basalt)",
            queue_stats
        )
    },
    jid_cmd!(
        "queue.list",
        -1,
        READONLY,
        acl::READ | acl::KEYSPACE,
        "Lists the queues of the selected database. (Basalt)",
        queue_list
    ),
    Command {
        key_specs: &[KeySpec::single(1, RO)],
        ..queue_cmd!(
            "dlq.list",
            -2,
            WRITE,
            acl::READ,
            "Lists a queue's dead jobs. (Basalt)",
            dlq_list
        )
    },
    queue_cmd!(
        "dlq.requeue",
        -3,
        WRITE,
        acl::WRITE,
        "Makes dead jobs waiting again. (Basalt)",
        dlq_requeue
    ),
    queue_cmd!(
        "dlq.purge",
        2,
        WRITE,
        acl::WRITE,
        "Removes a queue's dead jobs. (Basalt)",
        dlq_purge
    ),
    jid_cmd!(
        "worker.beat",
        -2,
        FAST,
        acl::WRITE,
        "A worker's heartbeat; answers ok, quiet or terminate. (Basalt)",
        worker_beat
    ),
    jid_cmd!(
        "worker.quiet",
        2,
        FAST,
        acl::WRITE,
        "Tells a worker to fetch no more jobs. (Basalt)",
        worker_quiet
    ),
    jid_cmd!(
        "worker.terminate",
        2,
        FAST,
        acl::WRITE,
        "Tells a worker to finish and exit. (Basalt)",
        worker_terminate
    ),
    jid_cmd!(
        "worker.list",
        1,
        READONLY,
        acl::READ,
        "Lists the workers that beat recently. (Basalt)",
        worker_list
    ),
];

// ---------------------------------------------------------------------------------
// Helpers

fn cfg(ctx: &Ctx<'_>) -> JobConfig {
    ctx.srv.config.read().jobs
}

fn bulk(b: &[u8]) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(b))
}

fn name(s: &str) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

fn opt_bulk(b: Option<&[u8]>) -> Frame {
    b.map_or(Frame::Null, bulk)
}

fn time_or_neg(t: u64) -> Frame {
    Frame::Integer(if t == 0 { -1 } else { t as i64 })
}

fn num_arg(b: u64) -> Bytes {
    crate::aof::int_arg(b)
}

/// A ms argument in `min..=MAX_MS`, else `ERR <opt> must be between <min> and ...`.
fn ms_arg(arg: &[u8], opt: &str, min: u64) -> Result<u64, Error> {
    match args::int(arg) {
        Ok(v) if v >= min as i64 && v as u64 <= MAX_MS => Ok(v as u64),
        _ => Err(Error::msg(format!(
            "ERR {opt} must be between {min} and {MAX_MS}"
        ))),
    }
}

fn check_size(b: &[u8], c: &JobConfig) -> Result<(), Error> {
    if b.len() as u64 > c.max_payload {
        return Err(Error::msg(TOO_BIG));
    }
    Ok(())
}

/// The queue at `key`: `Ok(None)` if missing, WRONGTYPE if another type.
fn queue_at<'g>(
    g: &'g mut Guard<'_>,
    db: usize,
    key: &[u8],
) -> Result<Option<&'g mut QueueValue>, Error> {
    match g.get(db, key) {
        None => Ok(None),
        Some(e) => match e.into_value_mut() {
            Some(Value::Queue(q)) => Ok(Some(q)),
            _ => Err(Error::msg(error::WRONGTYPE)),
        },
    }
}

/// A new, empty queue with the server's default retention.
fn new_queue(c: &JobConfig) -> QueueValue {
    QueueValue::new(QueueConfig::new(
        Retention {
            count: c.retention_completed_count,
            age: c.retention_completed_ms,
        },
        Retention {
            count: c.retention_dead_count,
            age: c.retention_dead_ms,
        },
        c.max_errors.min(u64::from(u32::MAX)) as u32,
    ))
}

/// The queue at `key`, created if missing (`created` tells).
fn queue_or_create<'g>(
    g: &'g mut Guard<'_>,
    db: usize,
    key: &[u8],
    c: &JobConfig,
    created: &mut bool,
) -> Result<&'g mut QueueValue, Error> {
    if queue_at(g, db, key)?.is_none() {
        g.insert(db, key, Value::from(new_queue(c)), 0);
        *created = true;
    }
    match queue_at(g, db, key)? {
        Some(q) => Ok(q),
        None => Err(Error::msg("ERR queue vanished")),
    }
}

/// A fresh 24-hex-digit jid (96 random bits).
fn new_jid() -> Vec<u8> {
    let mut rng = crate::rand::command_rng();
    format!("{:016x}{:08x}", rng(), rng() as u32).into_bytes()
}

/// A fresh claim token (128 random bits, 32 hex digits).
fn new_token() -> Vec<u8> {
    let mut rng = crate::rand::command_rng();
    format!("{:016x}{:016x}", rng(), rng()).into_bytes()
}

/// The registry key a JOB.WAIT on `jid` blocks on (never a real key: it starts with
/// a NUL byte no client key name needs).
fn wait_key(jid: &[u8]) -> Bytes {
    let mut k = b"\0job-wait\0".to_vec();
    k.extend_from_slice(jid);
    Bytes::from(k)
}

/// The event stream of queue `queue`: `{queue}:events` (a Redis Cluster hash tag, so it
/// lives beside the queue).
pub fn events_key(queue: &[u8]) -> Bytes {
    let mut k = Vec::with_capacity(queue.len() + 9);
    k.push(b'{');
    k.extend_from_slice(queue);
    k.extend_from_slice(b"}:events");
    Bytes::from(k)
}

/// Applies what an engine operation reported: forgets removed jids, wakes blocked
/// fetchers of the queue and the waiters of finished jobs, and appends the events to
/// the queue's event stream.
fn settle(ctx: &mut Ctx<'_>, db: usize, key: &[u8], ch: &Changes) {
    for jid in &ch.removed {
        ctx.srv.jobs.forget(jid, db, key);
    }
    if ch.wake {
        ctx.srv.blocking.signal(db, key);
    }
    if ctx.srv.blocking.blocked_clients() > 0 {
        let dbs = ctx.srv.keyspace.databases();
        for e in &ch.events {
            if matches!(e.event, "completed" | "dead" | "cancelled") {
                let k = wait_key(&e.jid);
                for d in 0..dbs {
                    ctx.srv.blocking.signal(d, &k);
                }
            }
        }
    }
    append_events(ctx, db, key, &ch.events);
    if let Some((dlq, jids)) = &ch.dead_letters
        && ctx.client.id != crate::client::LOADER_CLIENT_ID
    {
        for jid in jids {
            let m = (
                db,
                Bytes::copy_from_slice(key),
                Bytes::copy_from_slice(dlq),
                Bytes::copy_from_slice(jid),
            );
            if DEFERRED.with(|d| d.borrow().is_some()) {
                DEFERRED.with(|d| d.borrow_mut().as_mut().map(|v| v.push(m)));
            } else {
                dead_letter(ctx, m);
            }
        }
    }
}

/// A dead-letter move: (db, source queue, dead-letter queue, jid).
type Move = (usize, Bytes, Bytes, Bytes);

thread_local! {
    /// Moves held back while a command whose own effect kills a job (JOB.FAIL) runs:
    /// the move's effect must follow the command's in the log.
    static DEFERRED: std::cell::RefCell<Option<Vec<Move>>> = const { std::cell::RefCell::new(None) };
}

/// Moves a dead job to its dead-letter queue and logs `JOB.EFFECT now DLQMOVE ...`.
fn dead_letter(ctx: &mut Ctx<'_>, (db, src, dst, jid): Move) {
    if move_dead(ctx, db, &src, &dst, &jid) {
        effect(
            ctx,
            [
                Bytes::from_static(b"DLQMOVE"),
                num_arg(db as u64),
                src,
                dst,
                jid,
            ],
        );
    }
}

/// Moves the dead job `jid` from queue `src` to its dead-letter queue `dst` (created if
/// missing), both shards locked together. False if nothing moved (the job is no longer
/// dead there, `dst` holds another type or already a job with that jid).
fn move_dead(ctx: &mut Ctx<'_>, db: usize, src: &[u8], dst: &[u8], jid: &[u8]) -> bool {
    let c = cfg(ctx);
    let now = ctx.now;
    if src == dst {
        return false;
    }
    let mut g = ctx.srv.keyspace.lock_keys(&[src, dst], now);
    let mut ch_src = Changes::default();
    let mut ch_dst = Changes::default();
    // The destination must be a queue (or missing) before anything is taken.
    if queue_at(&mut g, db, dst).is_err() {
        return false;
    }
    let Ok(Some(q)) = queue_at(&mut g, db, src) else {
        return false;
    };
    let Some(job) = q.take_dead(now, jid, &mut ch_src) else {
        return false;
    };
    let mut created = false;
    let moved = match queue_or_create(&mut g, db, dst, &c, &mut created) {
        Ok(d) => d.insert_dead(now, job.clone(), &mut ch_dst),
        Err(_) => false,
    };
    if !moved {
        // Put it back where it was (cannot fail: the jid was just there).
        if let Ok(Some(q)) = queue_at(&mut g, db, src) {
            q.insert_dead(now, job, &mut Changes::default());
        }
        if created {
            g.remove(db, dst);
        }
        return false;
    }
    drop(g);
    ctx.srv.jobs.record(jid, db, &Bytes::copy_from_slice(dst));
    settle(ctx, db, src, &ch_src);
    settle(ctx, db, dst, &ch_dst);
    ctx.notify_db(ev::GENERIC, "job.dlq", dst, db);
    true
}

/// Appends `events` to the queue's event stream, capped at `job-events-maxlen` entries,
/// and logs each as `JOB.EFFECT now EVENTS db key maxlen id fields...` (the ID it got;
/// the database is named because a command on a jid may touch a queue of another
/// database than the client's). Not while the AOF loads: the log holds those effects.
/// A stream key holding another type gets no events.
fn append_events(ctx: &mut Ctx<'_>, db: usize, queue: &[u8], events: &[Event]) {
    let maxlen = cfg(ctx).events_maxlen;
    if events.is_empty() || maxlen == 0 || ctx.client.id == crate::client::LOADER_CLIENT_ID {
        return;
    }
    let key = events_key(queue);
    let entries: Vec<Vec<(&[u8], &[u8])>> = events
        .iter()
        .map(|e| {
            let mut pairs: Vec<(&[u8], &[u8])> =
                vec![(b"event", e.event.as_bytes()), (b"jid", &e.jid)];
            pairs.extend(e.fields.iter().map(|(f, v)| (f.as_bytes(), &v[..])));
            pairs
        })
        .collect();
    let ids = add_entries(ctx, db, &key, maxlen, &entries, None);
    if ctx.aof_on() {
        for (id, pairs) in ids.into_iter().zip(&entries) {
            let mut x = vec![
                Bytes::from_static(b"EVENTS"),
                num_arg(db as u64),
                key.clone(),
                num_arg(maxlen),
                Bytes::from(id.to_string()),
            ];
            for (f, v) in pairs {
                x.push(Bytes::copy_from_slice(f));
                x.push(Bytes::copy_from_slice(v));
            }
            effect(ctx, x);
        }
    }
}

/// Adds entries to stream `key` of `db` (created if missing; nothing if another type),
/// each trimmed to `maxlen`: with IDs from the clock, or the `exact` one (replay).
/// Returns the IDs added.
fn add_entries(
    ctx: &mut Ctx<'_>,
    db: usize,
    key: &Bytes,
    maxlen: u64,
    entries: &[Vec<(&[u8], &[u8])>],
    exact: Option<StreamId>,
) -> Vec<StreamId> {
    let enc = ctx.enc();
    let now = ctx.now;
    let mut g = ctx.srv.keyspace.lock_key(key, now);
    match g
        .get(db, key)
        .map(|e| matches!(e.value().as_other(), Some(Value::Stream(_))))
    {
        Some(false) => return Vec::new(),
        Some(true) => {}
        None => g.insert(db, key, Value::from(StreamValue::new()), 0),
    }
    let Some(Value::Stream(st)) = g.get(db, key).and_then(|e| e.into_value_mut()) else {
        return Vec::new();
    };
    let trim = Trim {
        strategy: TrimStrategy::MaxLen(maxlen),
        approx: false,
        limit: 0,
    };
    let mut ids = Vec::new();
    for pairs in entries {
        let req = exact.map_or(IdRequest::Auto, IdRequest::Exact);
        let Ok(id) = st.add(req, pairs, now, &enc) else {
            break;
        };
        st.trim(&trim);
        ids.push(id);
    }
    st.fire_watchers();
    drop(g);
    if !ids.is_empty() {
        ctx.notify_db(ev::STREAM, "xadd", key, db);
        ctx.srv.blocking.signal(db, key);
    }
    ids
}

/// EVENTS db key maxlen id field value ...: a logged event (see [`append_events`]).
fn events_effect(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let db = args::int(&a[1])
        .ok()
        .filter(|d| *d >= 0 && (*d as usize) < ctx.srv.keyspace.databases())
        .ok_or_else(|| Error::msg(error::DB_OUT_OF_RANGE))? as usize;
    let maxlen = args::int(&a[3])
        .ok()
        .filter(|m| *m > 0)
        .ok_or_else(|| Error::msg(error::NOT_INTEGER))? as u64;
    let id = basalt_engine::types::stream::parse_id(&a[4], 0, true, false)
        .ok_or_else(|| Error::msg("ERR Invalid stream ID specified as stream command argument"))?
        .id;
    let fields = &a[5..];
    if fields.is_empty() || !fields.len().is_multiple_of(2) {
        return Err(Error::msg(error::SYNTAX));
    }
    let pairs: Vec<(&[u8], &[u8])> = fields
        .chunks_exact(2)
        .map(|p| (&p[0][..], &p[1][..]))
        .collect();
    let key = a[2].clone();
    if add_entries(ctx, db, &key, maxlen, &[pairs], Some(id)).is_empty() {
        return Err(Error::msg("ERR JOB.EFFECT EVENTS does not apply"));
    }
    Ok(Frame::ok())
}

/// Logs `JOB.EFFECT <now> <args...>` when the AOF is on.
fn effect(ctx: &mut Ctx<'_>, args: impl IntoIterator<Item = Bytes>) {
    if ctx.aof_on() {
        let mut e = vec![Bytes::from_static(b"JOB.EFFECT"), num_arg(ctx.now)];
        e.extend(args);
        ctx.propagate(e);
    }
}

// ---------------------------------------------------------------------------------
// JOB.PUSH

const PUSH_OPTS: &[&str] = &[
    "ID", "DELAY", "AT", "PRIORITY", "RETRY", "BACKOFF", "TIMEOUT", "EXPIRES", "UNIQUE", "DEPENDS",
    "GROUP", "TAGS",
];

fn is_push_opt(a: &[u8]) -> bool {
    PUSH_OPTS.iter().any(|o| is(a, o))
}

/// A parsed push (owning its arguments).
struct PushArgs {
    payload: Bytes,
    id: Option<Bytes>,
    delay: Option<u64>,
    at: Option<u64>,
    priority: u8,
    retry: u32,
    backoff: Backoff,
    timeout: u64,
    expires: u64,
    unique: Option<(Bytes, u64)>,
    depends: Vec<Bytes>,
    group: Option<Bytes>,
    tags: Vec<Bytes>,
}

/// Parses `payload [options...]`.
fn parse_push(a: &[Bytes], c: &JobConfig) -> Result<PushArgs, Error> {
    let payload = a[0].clone();
    check_size(&payload, c)?;
    let mut p = PushArgs {
        payload,
        id: None,
        delay: None,
        at: None,
        priority: DEFAULT_PRIORITY,
        retry: c.default_retry.min(MAX_RETRY as u64) as u32,
        backoff: Backoff::default(),
        timeout: c.default_timeout,
        expires: 0,
        unique: None,
        depends: Vec::new(),
        group: None,
        tags: Vec::new(),
    };
    let mut i = 1;
    let need = |i: usize, n: usize| {
        if i + n < a.len() + 1 && i + n <= a.len() {
            Ok(())
        } else {
            Err(Error::msg(error::SYNTAX))
        }
    };
    while i < a.len() {
        let o = &a[i];
        i += 1;
        if is(o, "ID") {
            need(i, 1)?;
            let id = &a[i];
            if id.is_empty() || id.len() as u64 > c.max_id {
                return Err(Error::msg(BAD_ID));
            }
            p.id = Some(id.clone());
            i += 1;
        } else if is(o, "DELAY") {
            need(i, 1)?;
            p.delay = Some(ms_arg(&a[i], "DELAY", 0)?);
            i += 1;
        } else if is(o, "AT") {
            need(i, 1)?;
            p.at = Some(ms_arg(&a[i], "AT", 0).or_else(|_| {
                // AT is a Unix time: any non-negative 64-bit value.
                match args::int(&a[i]) {
                    Ok(v) if v >= 0 => Ok(v as u64),
                    _ => Err(Error::msg("ERR AT must be a non-negative Unix time in ms")),
                }
            })?);
            i += 1;
        } else if is(o, "PRIORITY") {
            need(i, 1)?;
            p.priority = match args::int(&a[i]) {
                Ok(v) if (0..=i64::from(MAX_PRIORITY)).contains(&v) => v as u8,
                _ => return Err(Error::msg(BAD_PRIORITY)),
            };
            i += 1;
        } else if is(o, "RETRY") {
            need(i, 1)?;
            p.retry = match args::int(&a[i]) {
                Ok(v) if (0..=MAX_RETRY).contains(&v) => v as u32,
                _ => return Err(Error::msg(BAD_RETRY)),
            };
            i += 1;
        } else if is(o, "BACKOFF") {
            need(i, 2)?;
            let ms = |x: &[u8]| match args::int(x) {
                Ok(v) if v >= 0 && v as u64 <= MAX_MS => Ok(v as u64),
                _ => Err(Error::msg(BAD_BACKOFF)),
            };
            if is(&a[i], "FIXED") {
                p.backoff = Backoff::Fixed(ms(&a[i + 1])?);
                i += 2;
            } else if is(&a[i], "EXP") {
                need(i, 3)?;
                let base = ms(&a[i + 1])?;
                let max = ms(&a[i + 2])?;
                if base > max {
                    return Err(Error::msg(BAD_BACKOFF));
                }
                i += 3;
                let mut jitter = 0.0;
                if i + 1 < a.len() + 1 && i < a.len() && is(&a[i], "JITTER") {
                    need(i, 2)?;
                    jitter = match basalt_engine::num::parse_f64(&a[i + 1]) {
                        Some(f) if (0.0..=1.0).contains(&f) => f,
                        _ => return Err(Error::msg(BAD_BACKOFF)),
                    };
                    i += 2;
                }
                p.backoff = Backoff::Exp { base, max, jitter };
            } else {
                return Err(Error::msg(BAD_BACKOFF));
            }
        } else if is(o, "TIMEOUT") {
            need(i, 1)?;
            p.timeout = ms_arg(&a[i], "TIMEOUT", 1)?;
            i += 1;
        } else if is(o, "EXPIRES") {
            need(i, 1)?;
            p.expires = match args::int(&a[i]) {
                Ok(v) if v > 0 => v as u64,
                _ => return Err(Error::msg("ERR EXPIRES must be a positive Unix time in ms")),
            };
            i += 1;
        } else if is(o, "UNIQUE") {
            need(i, 3)?;
            if !is(&a[i + 1], "FOR") {
                return Err(Error::msg(error::SYNTAX));
            }
            p.unique = Some((a[i].clone(), ms_arg(&a[i + 2], "UNIQUE ... FOR", 1)?));
            i += 3;
        } else if is(o, "DEPENDS") || is(o, "TAGS") {
            let start = i;
            while i < a.len() && !is_push_opt(&a[i]) {
                i += 1;
            }
            if i == start {
                return Err(Error::msg(error::SYNTAX));
            }
            let list: Vec<Bytes> = a[start..i].to_vec();
            if is(o, "DEPENDS") {
                if list.len() as u64 > c.max_depends {
                    return Err(Error::msg(format!(
                        "ERR too many DEPENDS (job-max-depends is {})",
                        c.max_depends
                    )));
                }
                p.depends = list;
            } else {
                if list.len() as u64 > c.max_tags {
                    return Err(Error::msg(format!(
                        "ERR too many TAGS (job-max-tags is {})",
                        c.max_tags
                    )));
                }
                p.tags = list;
            }
        } else if is(o, "GROUP") {
            need(i, 1)?;
            p.group = Some(a[i].clone());
            i += 1;
        } else {
            return Err(Error::msg(error::SYNTAX));
        }
    }
    if p.delay.is_some() && p.at.is_some() {
        return Err(Error::msg(DELAY_AT));
    }
    Ok(p)
}

/// What one push answered.
enum PushOutcome {
    Jid(Bytes),
    NotUnique,
}

/// True if `jid` is a live job somewhere other than `(db, key)` (a stale index entry is
/// dropped on the way).
fn exists_elsewhere(ctx: &Ctx<'_>, jid: &[u8], db: usize, key: &[u8]) -> bool {
    let Some((d, k)) = ctx.srv.jobs.locate(jid) else {
        return false;
    };
    if d == db && *k == *key {
        return false;
    }
    let mut g = ctx.srv.keyspace.lock_key(&k, ctx.now);
    let live = matches!(queue_at(&mut g, d, &k), Ok(Some(q)) if q.job(jid).is_some());
    drop(g);
    if !live {
        ctx.srv.jobs.forget(jid, d, &k);
    }
    live
}

/// Pushes one parsed job onto `key` (the caller holds no lock). Logs the effect.
fn push_one(
    ctx: &mut Ctx<'_>,
    key: &Bytes,
    p: &PushArgs,
    raw: &[Bytes],
) -> Result<PushOutcome, Error> {
    let c = cfg(ctx);
    let db = ctx.client.db;
    let now = ctx.now;
    let jid: Bytes = match &p.id {
        Some(id) => {
            if exists_elsewhere(ctx, id, db, key) {
                return Ok(PushOutcome::Jid(id.clone()));
            }
            id.clone()
        }
        None => Bytes::from(new_jid()),
    };
    let run_at = match (p.delay, p.at) {
        (Some(d), _) => now.saturating_add(d),
        (_, Some(at)) => at,
        _ => now,
    };
    let req = PushReq {
        jid: &jid,
        payload: &p.payload,
        run_at,
        priority: p.priority,
        retry: p.retry,
        backoff: p.backoff,
        timeout: p.timeout,
        expires: p.expires,
        unique: p.unique.as_ref().map(|(k, ms)| (&k[..], *ms)),
        depends: p.depends.iter().map(|d| &d[..]).collect(),
        group: p.group.as_deref(),
        tags: p.tags.iter().map(|t| &t[..]).collect(),
    };
    let mut g = ctx.srv.keyspace.lock_key(key, now);
    let mut created = false;
    let q = queue_or_create(&mut g, db, key, &c, &mut created)?;
    let mut ch = Changes::default();
    let outcome = q.push(&req, now, &mut ch);
    if outcome != Pushed::New && created {
        g.remove(db, key);
    }
    drop(g);
    settle(ctx, db, key, &ch);
    match outcome {
        Pushed::New => {
            ctx.srv.jobs.record(&jid, db, key);
            ctx.notify(ev::GENERIC, "job.push", key);
            // The effect: the command as sent plus its resolved jid and defaults (the
            // last occurrence of an option wins).
            let mut e = vec![Bytes::from_static(b"JOB.PUSH"), key.clone()];
            e.extend(raw.iter().cloned());
            e.extend([
                Bytes::from_static(b"ID"),
                jid.clone(),
                Bytes::from_static(b"RETRY"),
                num_arg(u64::from(p.retry)),
                Bytes::from_static(b"TIMEOUT"),
                num_arg(p.timeout),
            ]);
            effect(ctx, e);
            Ok(PushOutcome::Jid(jid))
        }
        Pushed::Exists => Ok(PushOutcome::Jid(jid)),
        Pushed::NotUnique => Ok(PushOutcome::NotUnique),
        Pushed::UnknownParent(p) => Err(Error::msg(format!(
            "ERR unknown parent job {}",
            String::from_utf8_lossy(&p)
        ))),
    }
}

/// JOB.PUSH queue payload [options...]
fn job_push(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let c = cfg(ctx);
    let p = parse_push(&args[2..], &c)?;
    ctx.propagate_nothing();
    Ok(match push_one(ctx, &args[1], &p, &args[2..])? {
        PushOutcome::Jid(j) => Frame::Bulk(j),
        PushOutcome::NotUnique => Frame::Null,
    })
}

/// JOB.PUSHB queue n1 payload1 [options1...] n2 payload2 ...
fn job_pushb(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let c = cfg(ctx);
    let mut jobs: Vec<&[Bytes]> = Vec::new();
    let mut i = 2;
    while i < args.len() {
        let n = match args::int(&args[i]) {
            Ok(n) if n >= 1 && (n as u64) <= (args.len() - i - 1) as u64 => n as usize,
            _ => return Err(Error::msg(error::SYNTAX)),
        };
        jobs.push(&args[i + 1..i + 1 + n]);
        i += 1 + n;
        if jobs.len() as u64 > c.max_pushb {
            return Err(Error::msg(format!(
                "ERR too many jobs in JOB.PUSHB (job-max-pushb is {})",
                c.max_pushb
            )));
        }
    }
    ctx.propagate_nothing();
    let mut out = Vec::with_capacity(jobs.len());
    for raw in jobs {
        let r = parse_push(raw, &c).and_then(|p| push_one(ctx, &args[1], &p, raw));
        out.push(match r {
            Ok(PushOutcome::Jid(j)) => Frame::Bulk(j),
            Ok(PushOutcome::NotUnique) => Frame::Null,
            Err(e) => Frame::Error(Bytes::from(e.0)),
        });
    }
    Ok(Frame::Array(out))
}

// ---------------------------------------------------------------------------------
// JOB.FETCH

const FETCH_OPTS: &[&str] = &["COUNT", "BLOCK", "VISIBILITY", "WORKER"];

fn is_fetch_opt(a: &[u8]) -> bool {
    FETCH_OPTS.iter().any(|o| is(a, o))
}

fn fetch_keys(argv: &[Bytes]) -> Vec<(usize, &'static [&'static str])> {
    (1..argv.len())
        .take_while(|&i| !is_fetch_opt(&argv[i]))
        .map(|i| (i, RW))
        .collect()
}

struct FetchArgs {
    queues: Vec<Bytes>,
    count: usize,
    block: Option<u64>,
    visibility: Option<u64>,
    worker: Option<Bytes>,
}

fn parse_fetch(args: &[Bytes], c: &JobConfig) -> Result<FetchArgs, Error> {
    let n = fetch_keys(args).len();
    if n == 0 {
        return Err(Error::msg(error::SYNTAX));
    }
    if n as u64 > c.max_fetch_queues {
        return Err(Error::msg(format!(
            "ERR too many queues (job-max-fetch-queues is {})",
            c.max_fetch_queues
        )));
    }
    let mut f = FetchArgs {
        queues: args[1..1 + n].to_vec(),
        count: 1,
        block: None,
        visibility: None,
        worker: None,
    };
    let mut i = 1 + n;
    while i < args.len() {
        if i + 1 >= args.len() {
            return Err(Error::msg(error::SYNTAX));
        }
        let (o, v) = (&args[i], &args[i + 1]);
        if is(o, "COUNT") {
            f.count = match args::int(v) {
                Ok(n) if n >= 1 && n as u64 <= c.max_fetch_count => n as usize,
                _ => {
                    return Err(Error::msg(format!(
                        "ERR COUNT must be between 1 and {} (job-max-fetch-count)",
                        c.max_fetch_count
                    )));
                }
            };
        } else if is(o, "BLOCK") {
            f.block = Some(ms_arg(v, "BLOCK", 0)?);
        } else if is(o, "VISIBILITY") {
            f.visibility = Some(ms_arg(v, "VISIBILITY", 1)?);
        } else if is(o, "WORKER") {
            f.worker = Some(v.clone());
        } else {
            return Err(Error::msg(error::SYNTAX));
        }
        i += 2;
    }
    Ok(f)
}

/// One delivered job as FETCH answers it.
fn delivery_frame(queue: &[u8], j: &Job) -> Frame {
    Frame::Map(vec![
        (name("queue"), bulk(queue)),
        (name("jid"), bulk(&j.jid)),
        (name("payload"), bulk(&j.payload)),
        (name("token"), bulk(&j.token)),
        (name("fence"), Frame::Integer(j.fence as i64)),
        (name("attempt"), Frame::Integer(i64::from(j.attempts))),
        (name("deadline"), Frame::Integer(j.deadline as i64)),
        (name("priority"), Frame::Integer(i64::from(j.priority))),
        (name("error"), opt_bulk(j.errors.back().map(|e| &e[..]))),
    ])
}

/// JOB.FETCH queue [queue ...] [COUNT n] [BLOCK ms] [VISIBILITY ms] [WORKER wid]
fn job_fetch(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let c = cfg(ctx);
    let f = parse_fetch(args, &c)?;
    let db = ctx.client.db;
    let now = ctx.now;
    ctx.propagate_nothing();
    if let Some(w) = &f.worker
        && ctx.srv.jobs.worker_state(w, now, c.worker_ttl) != WorkerState::Ok
    {
        return Ok(Frame::NullArray);
    }
    // Every key must be a queue (or missing) before anything is claimed: an error after
    // a claim would lose it (and its effect).
    for key in &f.queues {
        let mut g = ctx.srv.keyspace.lock_key(key, now);
        queue_at(&mut g, db, key)?;
    }
    let n = f.queues.len();
    let start = (ctx.srv.jobs.next_rotation() % n as u64) as usize;
    let mut out = Vec::new();
    let mut wake: Option<u64> = None;
    let opts = ClaimOpts {
        visibility: f.visibility,
        worker: f.worker.as_deref(),
    };
    for k in 0..n {
        let key = &f.queues[(start + k) % n];
        if out.len() >= f.count {
            break;
        }
        let mut g = ctx.srv.keyspace.lock_key(key, now);
        // (A key that changed type since the check above counts as empty.)
        let Ok(Some(q)) = queue_at(&mut g, db, key) else {
            continue;
        };
        let mut ch = Changes::default();
        let mut claims = Vec::new();
        while out.len() < f.count {
            let token = new_token();
            let Some(d) = q.claim_next(now, opts, &token, &mut ch) else {
                break;
            };
            if let Some(j) = q.job(&d.jid) {
                out.push(delivery_frame(key, j));
            }
            claims.push((d, token));
        }
        if let Some(t) = q.next_wake(now) {
            wake = Some(wake.map_or(t, |w| w.min(t)));
        }
        drop(g);
        settle(ctx, db, key, &ch);
        if !claims.is_empty() {
            ctx.notify(ev::GENERIC, "job.fetch", key);
        }
        for (d, token) in claims {
            let mut e = vec![
                Bytes::from_static(b"CLAIM"),
                key.clone(),
                Bytes::copy_from_slice(&d.jid),
                Bytes::from(token),
                num_arg(d.fence),
                num_arg(d.deadline),
            ];
            if let Some(w) = &f.worker {
                e.push(w.clone());
            }
            effect(ctx, e);
        }
    }
    if !out.is_empty() {
        return Ok(Frame::Array(out));
    }
    match f.block {
        Some(ms) if ctx.can_block() => {
            let deadline = (ms != 0).then(|| now.saturating_add(ms));
            ctx.block_recheck(f.queues, deadline, wake.filter(|w| *w > now))
        }
        _ => Ok(Frame::NullArray),
    }
}

// ---------------------------------------------------------------------------------
// Commands on one job, found by jid

/// Finds job `jid`'s queue and runs `op` on it with the shard locked. `Ok(None)` for an
/// unknown jid (a stale index entry is dropped). Settles the changes.
fn on_job<R>(
    ctx: &mut Ctx<'_>,
    jid: &[u8],
    op: impl FnOnce(&mut QueueValue, &mut Changes) -> R,
) -> Result<Option<(R, usize, Bytes)>, Error> {
    let Some((db, key)) = ctx.srv.jobs.locate(jid) else {
        return Ok(None);
    };
    let mut g = ctx.srv.keyspace.lock_key(&key, ctx.now);
    let q = match queue_at(&mut g, db, &key) {
        Ok(Some(q)) if q.job(jid).is_some() => q,
        _ => {
            drop(g);
            ctx.srv.jobs.forget(jid, db, &key);
            return Ok(None);
        }
    };
    let mut ch = Changes::default();
    let r = op(q, &mut ch);
    drop(g);
    settle(ctx, db, &key, &ch);
    Ok(Some((r, db, key)))
}

fn claim_err(e: ClaimError) -> Error {
    match e {
        ClaimError::NoJob => Error::msg(NO_JOB),
        ClaimError::Stale => Error::msg(STALE),
    }
}

/// Runs a claim-holding operation; logs `JOB.EFFECT now <args>` on success.
fn claim_op<R>(
    ctx: &mut Ctx<'_>,
    args: &[Bytes],
    event: &str,
    op: impl FnOnce(&mut QueueValue, &mut Changes, u64) -> Result<R, ClaimError>,
) -> Result<R, Error> {
    ctx.propagate_nothing();
    let now = ctx.now;
    let (r, db, key) =
        on_job(ctx, &args[1], |q, ch| op(q, ch, now))?.ok_or_else(|| Error::msg(NO_JOB))?;
    let r = r.map_err(claim_err)?;
    ctx.notify_db(ev::GENERIC, event, &key, db);
    Ok(r)
}

/// JOB.ACK jid token [RESULT r] [IDEMPOTENCY key]
fn job_ack(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let c = cfg(ctx);
    let (mut result, mut idem) = (None, None);
    let mut i = 3;
    while i < args.len() {
        if i + 1 >= args.len() {
            return Err(Error::msg(error::SYNTAX));
        }
        if is(&args[i], "RESULT") {
            check_size(&args[i + 1], &c)?;
            result = Some(args[i + 1].clone());
        } else if is(&args[i], "IDEMPOTENCY") {
            check_size(&args[i + 1], &c)?;
            idem = Some(args[i + 1].clone());
        } else {
            return Err(Error::msg(error::SYNTAX));
        }
        i += 2;
    }
    let mut fresh = false;
    let r = claim_op(ctx, args, "job.ack", |q, ch, now| {
        let was_active = q.job(&args[1]).is_some_and(|j| j.state == State::Active);
        let r = q.ack(
            now,
            &args[1],
            &args[2],
            result.as_deref(),
            idem.as_deref(),
            ch,
        );
        fresh = was_active && r.is_ok() && ch.events.iter().any(|e| e.event == "completed");
        r
    })?;
    if fresh {
        let mut e = args.to_vec();
        e[0] = Bytes::from_static(b"JOB.ACK");
        effect(ctx, e);
    }
    Ok(r.map_or(Frame::Null, |r| Frame::Bulk(Bytes::from(r.into_vec()))))
}

/// JOB.FAIL jid token error [RETRY_IN ms | NORETRY]
fn job_fail(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let c = cfg(ctx);
    check_size(&args[3], &c)?;
    let mut retry = None;
    let mut i = 4;
    while i < args.len() {
        if is(&args[i], "NORETRY") {
            retry = Some(Retry::No);
            i += 1;
        } else if is(&args[i], "RETRY_IN") && i + 1 < args.len() {
            retry = Some(Retry::In(ms_arg(&args[i + 1], "RETRY_IN", 0)?));
            i += 2;
        } else {
            return Err(Error::msg(error::SYNTAX));
        }
    }
    let retry = retry.unwrap_or_else(|| {
        let mut rng = crate::rand::command_rng();
        // 53 random bits: a uniform draw in [0, 1).
        Retry::Backoff((rng() >> 11) as f64 / (1u64 << 53) as f64)
    });
    DEFERRED.with(|d| *d.borrow_mut() = Some(Vec::new()));
    let outcome = claim_op(ctx, args, "job.fail", |q, ch, now| {
        q.fail(now, &args[1], &args[2], &args[3], retry, ch)
    });
    let moves = DEFERRED.with(|d| d.borrow_mut().take()).unwrap_or_default();
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            for m in moves {
                dead_letter(ctx, m);
            }
            return Err(e);
        }
    };
    let now = ctx.now;
    let mut e = vec![
        Bytes::from_static(b"JOB.FAIL"),
        args[1].clone(),
        args[2].clone(),
        args[3].clone(),
    ];
    match outcome {
        Failed::RetryAt(t) => {
            e.push(Bytes::from_static(b"RETRY_IN"));
            e.push(num_arg(t.saturating_sub(now)));
        }
        Failed::Dead => e.push(Bytes::from_static(b"NORETRY")),
    }
    effect(ctx, e);
    for m in moves {
        dead_letter(ctx, m);
    }
    let (state, at) = match outcome {
        Failed::RetryAt(t) => ("failed", t as i64),
        Failed::Dead => ("dead", -1),
    };
    Ok(Frame::Map(vec![
        (name("state"), name(state)),
        (name("retry_at"), Frame::Integer(at)),
    ]))
}

/// JOB.NACK jid token [DELAY ms]
fn job_nack(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let delay = match args.len() {
        3 => 0,
        5 if is(&args[3], "DELAY") => ms_arg(&args[4], "DELAY", 0)?,
        _ => return Err(Error::msg(error::SYNTAX)),
    };
    claim_op(ctx, args, "job.nack", |q, ch, now| {
        q.nack(now, &args[1], &args[2], delay, ch)
    })?;
    let mut e = args.to_vec();
    e[0] = Bytes::from_static(b"JOB.NACK");
    effect(ctx, e);
    Ok(Frame::ok())
}

/// JOB.EXTEND jid token ms
fn job_extend(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let ms = ms_arg(&args[3], "JOB.EXTEND's ms", 1)?;
    let d = claim_op(ctx, args, "job.extend", |q, ch, now| {
        q.extend(now, &args[1], &args[2], ms, ch)
    })?;
    let mut e = args.to_vec();
    e[0] = Bytes::from_static(b"JOB.EXTEND");
    effect(ctx, e);
    Ok(Frame::Integer(d as i64))
}

/// JOB.PROGRESS jid token pct [message]
fn job_progress(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() > 5 {
        return Err(Error::msg(error::SYNTAX));
    }
    let pct = match args::int(&args[3]) {
        Ok(v) if (0..=100).contains(&v) => v as u8,
        _ => return Err(Error::msg(BAD_PROGRESS)),
    };
    let msg = args.get(4);
    if let Some(m) = msg {
        check_size(m, &cfg(ctx))?;
    }
    claim_op(ctx, args, "job.progress", |q, ch, now| {
        q.progress(now, &args[1], &args[2], pct, msg.map(|m| &m[..]), ch)
    })?;
    let mut e = args.to_vec();
    e[0] = Bytes::from_static(b"JOB.PROGRESS");
    effect(ctx, e);
    Ok(Frame::ok())
}

/// JOB.CANCEL jid
fn job_cancel(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let done = claim_op(ctx, args, "job.cancel", |q, ch, now| {
        q.cancel(now, &args[1], ch)
    })?;
    if done {
        effect(ctx, [Bytes::from_static(b"JOB.CANCEL"), args[1].clone()]);
    }
    Ok(Frame::Integer(i64::from(done)))
}

/// JOB.GET's map of a job.
fn job_frame(queue: &[u8], q: &QueueValue, j: &Job) -> Frame {
    let arr = |v: Vec<&[u8]>| Frame::Array(v.into_iter().map(bulk).collect());
    Frame::Map(vec![
        (name("jid"), bulk(&j.jid)),
        (name("queue"), bulk(queue)),
        (name("state"), name(j.state.name())),
        (name("payload"), bulk(&j.payload)),
        (name("priority"), Frame::Integer(i64::from(j.priority))),
        (name("group"), opt_bulk(j.group.as_deref())),
        (name("tags"), arr(j.tags.iter().map(|t| &t[..]).collect())),
        (name("attempts"), Frame::Integer(i64::from(j.attempts))),
        (name("failures"), Frame::Integer(i64::from(j.failures))),
        (name("retry"), Frame::Integer(i64::from(j.retry))),
        (name("created"), Frame::Integer(j.created as i64)),
        (name("run_at"), Frame::Integer(j.run_at as i64)),
        (name("started"), time_or_neg(j.started)),
        (name("finished"), time_or_neg(j.finished)),
        (name("deadline"), time_or_neg(j.deadline)),
        (name("fence"), time_or_neg(j.fence)),
        (name("worker"), opt_bulk(j.worker.as_deref())),
        (name("retry_at"), time_or_neg(j.retry_at)),
        (name("expires"), time_or_neg(j.expires)),
        (name("progress"), Frame::Integer(i64::from(j.progress))),
        (
            name("progress_message"),
            opt_bulk(j.progress_msg.as_deref()),
        ),
        (name("result"), opt_bulk(j.result.as_deref())),
        (
            name("errors"),
            arr(j.errors.iter().map(|e| &e[..]).collect()),
        ),
        (name("depends"), arr(q.pending_parents(j))),
    ])
}

/// JOB.GET jid
fn job_get(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    // A read, but it advances the queue to now: only the events that may cause are
    // logged.
    ctx.propagate_nothing();
    let now = ctx.now;
    let jid = args[1].clone();
    // Advance its queue first (a transition may move it to a dead-letter queue, or
    // retention may remove it), then read it where it is now.
    if on_job(ctx, &jid, |q, ch| q.advance(now, ch))?.is_none() {
        return Ok(Frame::Null);
    }
    let Some((db, key)) = ctx.srv.jobs.locate(&jid) else {
        return Ok(Frame::Null);
    };
    let mut g = ctx.srv.keyspace.lock_key(&key, now);
    Ok(match queue_at(&mut g, db, &key) {
        Ok(Some(q)) => match q.job(&jid) {
            Some(j) => job_frame(&key, q, j),
            None => Frame::Null,
        },
        _ => Frame::Null,
    })
}

/// JOB.WAIT jid [TIMEOUT ms]
fn job_wait(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let timeout = match args.len() {
        2 => 0,
        4 if is(&args[2], "TIMEOUT") => ms_arg(&args[3], "TIMEOUT", 0)?,
        _ => return Err(Error::msg(error::SYNTAX)),
    };
    ctx.propagate_nothing();
    let now = ctx.now;
    let jid = args[1].clone();
    let r = on_job(ctx, &jid, |q, ch| {
        q.advance(now, ch);
        q.job(&jid).map(|j| j.state)
    })?;
    let Some((state, _, _)) = r else {
        return Err(Error::msg(NO_JOB));
    };
    match state {
        Some(s) if s.is_finished() => job_get(ctx, &args[..2]),
        // Removed by retention right now: it had finished.
        None => Ok(Frame::Null),
        Some(_) if ctx.can_block() => {
            let deadline = (timeout != 0).then(|| now.saturating_add(timeout));
            // On timeout the command runs once more, answering nil (not BLPOP's null
            // array) when the job is still unfinished.
            ctx.block_fifo(wait_key(&jid), deadline, args.to_vec())
                .map(|_| Frame::Null)
        }
        Some(_) => Ok(Frame::Null),
    }
}

/// JOB.EVENTS queue [AFTER id] [COUNT n] [BLOCK ms]: XREAD of the queue's event stream.
fn job_events(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    // A blocked read re-runs with the XREAD arguments it pinned (`$` resolved).
    if is(&args[0], "XREAD") {
        return crate::families::streams::xread(ctx, args);
    }
    let c = cfg(ctx);
    let mut after = Bytes::from_static(b"0");
    let mut count = 100.min(c.max_fetch_count);
    let mut block = None;
    let mut i = 2;
    while i < args.len() {
        if i + 1 >= args.len() {
            return Err(Error::msg(error::SYNTAX));
        }
        let v = &args[i + 1];
        if is(&args[i], "AFTER") {
            after = v.clone();
        } else if is(&args[i], "COUNT") {
            count = match args::int(v) {
                Ok(n) if n >= 1 && n as u64 <= c.max_fetch_count => n as u64,
                _ => {
                    return Err(Error::msg(format!(
                        "ERR COUNT must be between 1 and {} (job-max-fetch-count)",
                        c.max_fetch_count
                    )));
                }
            };
        } else if is(&args[i], "BLOCK") {
            block = Some(num_arg(ms_arg(v, "BLOCK", 0)?));
        } else {
            return Err(Error::msg(error::SYNTAX));
        }
        i += 2;
    }
    let mut x = vec![
        Bytes::from_static(b"XREAD"),
        Bytes::from_static(b"COUNT"),
        num_arg(count),
    ];
    if let Some(b) = block {
        x.push(Bytes::from_static(b"BLOCK"));
        x.push(b);
    }
    x.extend([Bytes::from_static(b"STREAMS"), events_key(&args[1]), after]);
    crate::families::streams::xread(ctx, &x)
}

// ---------------------------------------------------------------------------------
// JOB.EFFECT (AOF only)

/// JOB.EFFECT now command args...: re-runs a logged job command at its time.
fn job_effect(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if ctx.client.id != crate::client::LOADER_CLIENT_ID {
        return Err(Error::msg(INTERNAL));
    }
    let now = args::int(&args[1])
        .ok()
        .filter(|v| *v >= 0)
        .ok_or_else(|| Error::msg(error::NOT_INTEGER))? as u64;
    let saved = ctx.now;
    ctx.now = now;
    let rest = &args[2..];
    let cmd = &rest[0];
    let r = if is(cmd, "CLAIM") {
        claim_effect(ctx, rest)
    } else if is(cmd, "EVENTS") && rest.len() >= 7 {
        events_effect(ctx, rest)
    } else if is(cmd, "DLQMOVE") && rest.len() == 5 {
        let db = args::int(&rest[1])
            .ok()
            .filter(|d| *d >= 0 && (*d as usize) < ctx.srv.keyspace.databases())
            .ok_or_else(|| Error::msg(error::DB_OUT_OF_RANGE))? as usize;
        if move_dead(ctx, db, &rest[2], &rest[3], &rest[4]) {
            Ok(Frame::ok())
        } else {
            Err(Error::msg("ERR JOB.EFFECT DLQMOVE does not apply"))
        }
    } else if is(cmd, "JOB.PUSH") && rest.len() >= 3 {
        job_push(ctx, rest)
    } else if is(cmd, "JOB.ACK") && rest.len() >= 3 {
        job_ack(ctx, rest)
    } else if is(cmd, "JOB.FAIL") && rest.len() >= 4 {
        job_fail(ctx, rest)
    } else if is(cmd, "JOB.NACK") && rest.len() >= 3 {
        job_nack(ctx, rest)
    } else if is(cmd, "JOB.EXTEND") && rest.len() == 4 {
        job_extend(ctx, rest)
    } else if is(cmd, "JOB.PROGRESS") && rest.len() >= 4 {
        job_progress(ctx, rest)
    } else if is(cmd, "JOB.CANCEL") && rest.len() == 2 {
        job_cancel(ctx, rest)
    } else if is(cmd, "QUEUE.CONFIG") && rest.len() >= 2 {
        queue_config(ctx, rest)
    } else if is(cmd, "QUEUE.PAUSE") && rest.len() == 2 {
        queue_pause(ctx, rest)
    } else if is(cmd, "QUEUE.RESUME") && rest.len() == 2 {
        queue_resume(ctx, rest)
    } else if is(cmd, "QUEUE.DRAIN") && rest.len() == 2 {
        queue_drain(ctx, rest)
    } else if is(cmd, "DLQ.REQUEUE") && rest.len() >= 3 {
        dlq_requeue(ctx, rest)
    } else if is(cmd, "DLQ.PURGE") && rest.len() == 2 {
        dlq_purge(ctx, rest)
    } else {
        Err(Error::msg(error::SYNTAX))
    };
    ctx.now = saved;
    r
}

/// CLAIM queue jid token fence deadline [worker]: a logged fetch of one job.
fn claim_effect(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    if !(6..=7).contains(&a.len()) {
        return Err(Error::msg(error::SYNTAX));
    }
    let int = |b: &[u8]| {
        args::int(b)
            .ok()
            .filter(|v| *v >= 0)
            .map(|v| v as u64)
            .ok_or_else(|| Error::msg(error::NOT_INTEGER))
    };
    let (fence, deadline) = (int(&a[4])?, int(&a[5])?);
    let db = ctx.client.db;
    let now = ctx.now;
    let mut g = ctx.srv.keyspace.lock_key(&a[1], now);
    let q = queue_at(&mut g, db, &a[1])?.ok_or_else(|| Error::msg(NO_QUEUE))?;
    let mut ch = Changes::default();
    let claim = LoggedClaim {
        jid: &a[2],
        token: &a[3],
        fence,
        deadline,
        worker: a.get(6).map(|w| &w[..]),
    };
    let ok = q.claim_logged(now, &claim, &mut ch);
    drop(g);
    settle(ctx, db, &a[1], &ch);
    if !ok {
        return Err(Error::msg("ERR JOB.EFFECT CLAIM does not apply"));
    }
    Ok(Frame::ok())
}

// ---------------------------------------------------------------------------------
// QUEUE.*

/// Runs `op` on the existing queue `args[1]` (`ERR no such queue` if missing).
fn on_queue<R>(
    ctx: &mut Ctx<'_>,
    key: &Bytes,
    op: impl FnOnce(&mut QueueValue, &mut Changes, u64) -> R,
) -> Result<R, Error> {
    let db = ctx.client.db;
    let now = ctx.now;
    let mut g = ctx.srv.keyspace.lock_key(key, now);
    let q = queue_at(&mut g, db, key)?.ok_or_else(|| Error::msg(NO_QUEUE))?;
    let mut ch = Changes::default();
    let r = op(q, &mut ch, now);
    drop(g);
    settle(ctx, db, key, &ch);
    Ok(r)
}

/// Logs the command itself at its time (deterministic given `now`).
fn effect_as_sent(ctx: &mut Ctx<'_>, args: &[Bytes], name: &'static [u8]) {
    let mut e = args.to_vec();
    e[0] = Bytes::from_static(name);
    effect(ctx, e);
}

fn retention_frame(r: Retention) -> Frame {
    Frame::Array(vec![
        Frame::Integer(r.count.min(i64::MAX as u64) as i64),
        Frame::Integer(r.age.min(i64::MAX as u64) as i64),
    ])
}

/// QUEUE.CONFIG queue [RATE alg args... | RATE NONE] [CONCURRENCY n]
/// [GROUP_CONCURRENCY n] [RETENTION COMPLETED|DEAD count age-ms] ... | QUEUE.CONFIG queue GET
fn queue_config(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    ctx.propagate_nothing();
    let key = &args[1];
    if args.len() == 3 && is(&args[2], "GET") {
        let db = ctx.client.db;
        let mut g = ctx.srv.keyspace.lock_key(key, ctx.now);
        let q = queue_at(&mut g, db, key)?.ok_or_else(|| Error::msg(NO_QUEUE))?;
        let c = q.config().clone();
        let rate = q.rate().map(|r| {
            let s = r.spec();
            let args = match *s {
                basalt_engine::rl::Spec::Gcra {
                    burst,
                    rate,
                    period_ms,
                } => format!("{burst} {rate} {period_ms}"),
                basalt_engine::rl::Spec::Token { capacity, refill } => {
                    format!("{capacity} {refill}")
                }
                basalt_engine::rl::Spec::Fixed { limit, window_ms }
                | basalt_engine::rl::Spec::Sliding { limit, window_ms }
                | basalt_engine::rl::Spec::Log { limit, window_ms } => {
                    format!("{limit} {window_ms}")
                }
                basalt_engine::rl::Spec::Lease { max } => format!("{max}"),
            };
            format!("{} {args}", s.name().to_ascii_uppercase())
        });
        return Ok(Frame::Map(vec![
            (name("rate"), rate.map_or(Frame::Null, |r| name(&r))),
            (
                name("concurrency"),
                Frame::Integer(i64::from(c.concurrency)),
            ),
            (
                name("group_concurrency"),
                Frame::Integer(i64::from(c.group_concurrency)),
            ),
            (name("dlq"), opt_bulk(c.dlq.as_deref())),
            (name("paused"), Frame::Integer(i64::from(c.paused))),
            (
                name("retention_completed"),
                retention_frame(c.retention_done),
            ),
            (name("retention_dead"), retention_frame(c.retention_dead)),
        ]));
    }
    // Parse everything before changing anything.
    enum Rate {
        Keep,
        Clear,
        Set(basalt_engine::rl::Spec),
    }
    let mut rate = Rate::Keep;
    let (mut conc, mut gconc) = (None, None);
    let (mut ret_done, mut ret_dead) = (None, None);
    let mut dlq: Option<Option<Bytes>> = None;
    let count_arg = |b: &[u8], what: &str| match args::int(b) {
        Ok(v) if (0..=i64::from(u32::MAX)).contains(&v) => Ok(v as u32),
        _ => Err(Error::msg(format!(
            "ERR {what} must be between 0 and 4294967295"
        ))),
    };
    let mut i = 2;
    while i < args.len() {
        let o = &args[i];
        if is(o, "RATE") && i + 1 < args.len() {
            if is(&args[i + 1], "NONE") {
                rate = Rate::Clear;
                i += 2;
                continue;
            }
            let alg = &args[i + 1];
            let n = basalt_engine::rl::Spec::arg_count(alg).unwrap_or(0);
            if i + 2 + n > args.len() {
                return Err(Error::msg(error::SYNTAX));
            }
            let a: Vec<&[u8]> = args[i + 2..i + 2 + n].iter().map(|b| &b[..]).collect();
            let spec = basalt_engine::rl::Spec::parse(alg, &a)
                .map_err(|e| Error::msg(format!("ERR {e}")))?;
            rate = Rate::Set(spec);
            i += 2 + n;
        } else if is(o, "DLQ") && i + 1 < args.len() {
            let d = &args[i + 1];
            if is(d, "NONE") {
                dlq = Some(None);
            } else if d == key {
                return Err(Error::msg("ERR DLQ must name another queue"));
            } else {
                dlq = Some(Some(d.clone()));
            }
            i += 2;
        } else if is(o, "CONCURRENCY") && i + 1 < args.len() {
            conc = Some(count_arg(&args[i + 1], "CONCURRENCY")?);
            i += 2;
        } else if is(o, "GROUP_CONCURRENCY") && i + 1 < args.len() {
            gconc = Some(count_arg(&args[i + 1], "GROUP_CONCURRENCY")?);
            i += 2;
        } else if is(o, "RETENTION") && i + 3 < args.len() {
            let count = args::int(&args[i + 2])
                .ok()
                .filter(|v| *v >= 0)
                .ok_or_else(|| Error::msg("ERR RETENTION count must be non-negative"))?;
            let age = ms_arg(&args[i + 3], "RETENTION age", 0)?;
            let r = Retention {
                count: count as u64,
                age,
            };
            if is(&args[i + 1], "COMPLETED") {
                ret_done = Some(r);
            } else if is(&args[i + 1], "DEAD") {
                ret_dead = Some(r);
            } else {
                return Err(Error::msg(error::SYNTAX));
            }
            i += 4;
        } else {
            return Err(Error::msg(error::SYNTAX));
        }
    }
    let c = cfg(ctx);
    let db = ctx.client.db;
    let now = ctx.now;
    let mut g = ctx.srv.keyspace.lock_key(key, now);
    let mut created = false;
    let q = queue_or_create(&mut g, db, key, &c, &mut created)?;
    match rate {
        Rate::Keep => {}
        Rate::Clear => q.set_rate(None, now),
        Rate::Set(s) => q.set_rate(Some(s), now),
    }
    let qc = q.config_mut();
    if let Some(n) = conc {
        qc.concurrency = n;
    }
    if let Some(n) = gconc {
        qc.group_concurrency = n;
    }
    if let Some(r) = ret_done {
        qc.retention_done = r;
    }
    if let Some(r) = ret_dead {
        qc.retention_dead = r;
    }
    if let Some(d) = dlq {
        qc.dlq = d.map(|d| d.to_vec().into_boxed_slice());
    }
    let mut ch = Changes::default();
    q.apply_retention(now, &mut ch);
    // Looser limits may let blocked fetchers proceed.
    ch.wake = true;
    drop(g);
    settle(ctx, db, key, &ch);
    ctx.notify(ev::GENERIC, "queue.config", key);
    effect_as_sent(ctx, args, b"QUEUE.CONFIG");
    Ok(Frame::ok())
}

fn set_paused(ctx: &mut Ctx<'_>, args: &[Bytes], paused: bool) -> CmdResult {
    ctx.propagate_nothing();
    on_queue(ctx, &args[1], |q, ch, _| {
        q.config_mut().paused = paused;
        ch.wake = !paused;
    })?;
    ctx.notify(
        ev::GENERIC,
        if paused {
            "queue.pause"
        } else {
            "queue.resume"
        },
        &args[1],
    );
    effect_as_sent(
        ctx,
        args,
        if paused {
            b"QUEUE.PAUSE"
        } else {
            b"QUEUE.RESUME"
        },
    );
    Ok(Frame::ok())
}

/// QUEUE.PAUSE queue
fn queue_pause(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    set_paused(ctx, args, true)
}

/// QUEUE.RESUME queue
fn queue_resume(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    set_paused(ctx, args, false)
}

/// QUEUE.DRAIN queue
fn queue_drain(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    counted_op(ctx, args, "queue.drain", b"QUEUE.DRAIN", |q, ch, now| {
        q.drain(now, ch)
    })
}

/// A queue operation answering how many jobs it changed: notified (`event`) and logged
/// as sent (`name`) only when it changed some.
fn counted_op(
    ctx: &mut Ctx<'_>,
    args: &[Bytes],
    event: &str,
    name: &'static [u8],
    op: impl FnOnce(&mut QueueValue, &mut Changes, u64) -> u64,
) -> CmdResult {
    ctx.propagate_nothing();
    let n = on_queue(ctx, &args[1], op)?;
    if n > 0 {
        ctx.notify(ev::GENERIC, event, &args[1]);
        effect_as_sent(ctx, args, name);
    }
    Ok(Frame::Integer(n as i64))
}

/// QUEUE.STATS queue
fn queue_stats(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    ctx.propagate_nothing();
    let (c, paused, fence) = on_queue(ctx, &args[1], |q, ch, now| {
        q.advance(now, ch);
        (q.counts(), q.config().paused, q.fence())
    })?;
    let n = |v: u64| Frame::Integer(v as i64);
    Ok(Frame::Map(vec![
        (name("scheduled"), n(c.scheduled)),
        (name("waiting"), n(c.waiting)),
        (name("active"), n(c.active)),
        (name("failed"), n(c.failed)),
        (name("completed"), n(c.completed)),
        (name("dead"), n(c.dead)),
        (name("cancelled"), n(c.cancelled)),
        (name("paused"), Frame::Integer(i64::from(paused))),
        (name("fence"), n(fence)),
    ]))
}

/// QUEUE.LIST [pattern]
fn queue_list(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() > 2 {
        return Err(Error::msg(error::SYNTAX));
    }
    let pattern = args.get(1).cloned();
    let db = ctx.client.db;
    let mut names = Vec::new();
    let mut cursor = 0u64;
    loop {
        let next = ctx.srv.keyspace.scan(db, cursor, 1000, ctx.now, |k, e| {
            if matches!(e.value().as_other(), Some(Value::Queue(_)))
                && pattern
                    .as_ref()
                    .is_none_or(|p| basalt_engine::glob::glob_match(p, k, false))
            {
                names.push(Bytes::copy_from_slice(k));
            }
        });
        if next == 0 {
            break;
        }
        cursor = next;
    }
    names.sort();
    Ok(Frame::Array(names.into_iter().map(Frame::Bulk).collect()))
}

// ---------------------------------------------------------------------------------
// DLQ.*

/// DLQ.LIST queue [COUNT n]
fn dlq_list(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let c = cfg(ctx);
    let count = match args.len() {
        2 => 100.min(c.max_fetch_count) as usize,
        4 if is(&args[2], "COUNT") => match args::int(&args[3]) {
            Ok(n) if n >= 1 && n as u64 <= c.max_fetch_count => n as usize,
            _ => {
                return Err(Error::msg(format!(
                    "ERR COUNT must be between 1 and {} (job-max-fetch-count)",
                    c.max_fetch_count
                )));
            }
        },
        _ => return Err(Error::msg(error::SYNTAX)),
    };
    ctx.propagate_nothing();
    let key = args[1].clone();
    on_queue(ctx, &key, |q, ch, now| {
        q.advance(now, ch);
        Frame::Array(
            q.dead_jobs(count)
                .into_iter()
                .map(|j| job_frame(&key, q, j))
                .collect(),
        )
    })
}

/// DLQ.REQUEUE queue (jid [jid ...] | ALL)
fn dlq_requeue(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let all = args.len() == 3 && is(&args[2], "ALL");
    let jids: Vec<&[u8]> = args[2..].iter().map(|b| &b[..]).collect();
    counted_op(ctx, args, "dlq.requeue", b"DLQ.REQUEUE", |q, ch, now| {
        q.requeue_dead(now, if all { None } else { Some(&jids) }, ch)
    })
}

/// DLQ.PURGE queue
fn dlq_purge(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    counted_op(ctx, args, "dlq.purge", b"DLQ.PURGE", |q, ch, now| {
        q.purge_dead(now, ch)
    })
}

// ---------------------------------------------------------------------------------
// WORKER.*

/// WORKER.BEAT wid [ACTIVE n]
fn worker_beat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let active = match args.len() {
        2 => None,
        4 if is(&args[2], "ACTIVE") => Some(
            args::int(&args[3])
                .ok()
                .filter(|v| *v >= 0)
                .ok_or_else(|| Error::msg("ERR ACTIVE must be a non-negative integer"))?
                as u64,
        ),
        _ => return Err(Error::msg(error::SYNTAX)),
    };
    let ttl = cfg(ctx).worker_ttl;
    let s = ctx.srv.jobs.beat(&args[1], active, ctx.now, ttl);
    Ok(Frame::Simple(Bytes::from_static(s.name().as_bytes())))
}

/// WORKER.QUIET wid
fn worker_quiet(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let ttl = cfg(ctx).worker_ttl;
    ctx.srv
        .jobs
        .set_state(&args[1], WorkerState::Quiet, ctx.now, ttl);
    Ok(Frame::ok())
}

/// WORKER.TERMINATE wid
fn worker_terminate(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let ttl = cfg(ctx).worker_ttl;
    ctx.srv
        .jobs
        .set_state(&args[1], WorkerState::Terminate, ctx.now, ttl);
    Ok(Frame::ok())
}

/// WORKER.LIST
fn worker_list(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let ttl = cfg(ctx).worker_ttl;
    Ok(Frame::Array(
        ctx.srv
            .jobs
            .workers(ctx.now, ttl)
            .into_iter()
            .map(|(wid, w)| {
                Frame::Map(vec![
                    (name("wid"), Frame::Bulk(wid)),
                    (name("state"), name(w.state.name())),
                    (name("last_beat"), Frame::Integer(w.last_beat as i64)),
                    (name("active"), Frame::Integer(w.active as i64)),
                ])
            })
            .collect(),
    ))
}

// ---------------------------------------------------------------------------------
// Hooks for the key commands and loaders

/// A queue value arrived at `(db, key)` (RDB load, RESTORE, the AOF base): index its jobs.
pub fn adopt(srv: &crate::server::Server, value: &Value, db: usize, key: &[u8]) {
    if let Value::Queue(q) = value {
        srv.jobs.adopt_queue(q, db, key);
    }
}

/// A value at `(db, key)` was deleted or replaced: forget its jobs if it was a queue.
pub fn removed(srv: &crate::server::Server, value: &Value, db: usize, key: &[u8]) {
    if let Value::Queue(q) = value {
        srv.jobs.forget_queue(q, db, key);
    }
}

/// A value moved (RENAME, MOVE): its jobs now live at `to`.
pub fn moved(srv: &crate::server::Server, value: &Value, from: (usize, &[u8]), to: (usize, &[u8])) {
    if let Value::Queue(q) = value {
        srv.jobs.move_queue(q, from, to);
    }
}

/// Checks a `JOB.SCHEDULE` template (`payload [options...]`) as JOB.PUSH checks a push;
/// answers whether its options name `ID` and `AT` (which a schedule chooses itself).
pub fn check_template(srv: &crate::server::Server, args: &[Bytes]) -> Result<(bool, bool), Error> {
    let c = srv.config.read().jobs;
    let p = parse_push(args, &c)?;
    Ok((p.id.is_some(), p.at.is_some()))
}
