//! The `RL.*` family: `RL.CHECK`, `RL.MCHECK`, `RL.LEASE`, `RL.UNLEASE`, `RL.INFO`,
//! `RL.RESET`.
//!
//! Each limiter is a `Value::RateLimit` (TYPE `ratelimit`, OBJECT ENCODING the
//! algorithm's name) holding its spec and state; the arithmetic is
//! `basalt_engine::rl`. Time is the command's snapshot (`Ctx::now`), never the client's.
//! A limiter that is back to its full limit holds no information, so its key expires at
//! that moment (`reset_after_ms`) and idle limiters cost nothing.
//!
//! Errors are checked before anything is read or written: a bad spec, option or cost
//! never changes a limiter.
//!
//! Limiters are saved in RDB files (and DUMP payloads) as module-type values with
//! Basalt's module id `basalt-rl` (see `basalt_persist::rdb`); Redis cannot load those
//! keys.
//!
//! Leases (`RL.LEASE`) are the same value type with the `lease` kind: the live leases'
//! ids and deadlines. `WAIT` queues the client in the shared waiter registry
//! (`crate::blocking`) like BLPOP; a release, an `RL.RESET` or a deletion signals the
//! key, and a lease expiring signals it through a timed wake-up (`Server::wake_timers`)
//! scheduled by each waiter that finds no place. Places go to waiters in queue order: a
//! grant needs more free places than there are waiters queued before the client.
//!
//! A spec may be `POLICY name` (`families::rl_policy`): it is resolved for the key
//! (first matching override) before any lock is taken. Under a shadow policy a check
//! counts as enforced but always answers `allowed` 1, with `shadow_limited`.

use crate::cmd::flags::*;
use crate::cmd::{BeginSearch, Command, FindKeys, KeySpec, args};
use crate::error::{self, CmdResult, Error};
use crate::pubsub::notify as ev;
use crate::server::Ctx;
use basalt_engine::rl::{Decision, MAX_LIMIT, MAX_WINDOW_MS, Mode, RateLimit, Spec};
use basalt_engine::{Guard, Reason, Value, ValueRef};
use basalt_proto::Frame;
use bytes::Bytes;

/// Most limits one `RL.MCHECK` checks together.
pub const MAX_MCHECK: usize = 64;

const RW_UPDATE: &[&str] = &["RW", "access", "update"];

const MCHECK_KEY_SPECS: &[KeySpec] = &[KeySpec {
    notes: "Each limit is a key followed by its spec; the spec's length depends on its algorithm",
    flags: RW_UPDATE,
    begin: BeginSearch::Unknown,
    find: FindKeys::Unknown,
}];

macro_rules! rl_cmd {
    ($name:literal, $arity:expr, $flags:expr, $keys:expr, $specs:expr, $summary:literal, $h:expr) => {
        Command {
            name: $name,
            arity: $arity,
            flags: $flags,
            keys: $keys,
            key_specs: $specs,
            group: "rate_limit",
            since: "0.1.0",
            summary: $summary,
            complexity: "O(1) (LOG: O(entries expired))",
            handler: Some($h),
            ..Command::EMPTY
        }
    };
}

/// The `RL.*` commands.
pub const COMMANDS: &[Command] = &[
    rl_cmd!(
        "rl.check",
        -4,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RW_UPDATE)],
        "Checks and consumes a rate limit (GCRA, TOKEN, FIXED, SLIDING, LOG) on server time.",
        rl_check
    ),
    Command {
        getkeys: Some(mcheck_keys),
        ..rl_cmd!(
            "rl.mcheck",
            -5,
            WRITE | DENYOOM | MOVABLE_KEYS,
            (0, 0, 0),
            MCHECK_KEY_SPECS,
            "Checks several rate limits atomically: nothing is consumed unless all allow.",
            rl_mcheck
        )
    },
    rl_cmd!(
        "rl.lease",
        -4,
        WRITE | DENYOOM | BLOCKING,
        (1, 1, 1),
        &[KeySpec::single(1, RW_UPDATE)],
        "Takes one of at most max concurrent leases, expiring after ttl_ms; WAIT queues for one.",
        rl_lease
    ),
    rl_cmd!(
        "rl.unlease",
        3,
        WRITE | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RW_UPDATE)],
        "Releases a lease taken with RL.LEASE, waking the first waiter.",
        rl_unlease
    ),
    rl_cmd!(
        "rl.info",
        2,
        READONLY | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, &["RO", "access"])],
        "Describes a rate limiter: its spec and current state.",
        rl_info
    ),
    rl_cmd!(
        "rl.reset",
        2,
        WRITE | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, &["RW", "delete"])],
        "Deletes a rate limiter, restoring its full limit.",
        rl_reset
    ),
];

/// One limit of a check: key, spec (resolved through its policy), cost, and whether
/// the policy is in shadow mode.
struct Limit<'a> {
    key: &'a Bytes,
    spec: Spec,
    cost: i64,
    shadow: bool,
}

/// A spec as written in a command: inline, or `POLICY name`.
enum SpecArg<'a> {
    Inline(Spec),
    Policy(&'a Bytes),
}

/// Parses `ALG args...` or `POLICY name` starting at `argv[i]`; returns it and the next
/// index.
fn parse_spec(argv: &[Bytes], i: usize) -> Result<(SpecArg<'_>, usize), Error> {
    let alg = argv.get(i).ok_or_else(|| Error::msg(error::SYNTAX))?;
    if args::is(alg, "policy") {
        let name = argv.get(i + 1).ok_or_else(|| Error::msg(error::SYNTAX))?;
        return Ok((SpecArg::Policy(name), i + 2));
    }
    let n = Spec::arg_count(alg).ok_or_else(|| {
        Error::msg(format!(
            "ERR unknown rate limit algorithm '{}' (GCRA, TOKEN, FIXED, SLIDING, LOG)",
            String::from_utf8_lossy(alg)
        ))
    })?;
    let rest = argv.get(i + 1..i + 1 + n).ok_or_else(|| {
        Error::msg(format!(
            "ERR {} takes {n} arguments",
            args::text(alg).to_uppercase()
        ))
    })?;
    let a: Vec<&[u8]> = rest.iter().map(|b| b.as_ref()).collect();
    let spec = Spec::parse(alg, &a).map_err(|e| Error::msg(format!("ERR {e}")))?;
    Ok((SpecArg::Inline(spec), i + 1 + n))
}

/// The spec a limit uses for `key`, and whether it is a shadow one: a policy's
/// first matching override, else its spec.
fn resolve(ctx: &Ctx<'_>, key: &[u8], arg: &SpecArg<'_>) -> Result<(Spec, bool), Error> {
    match arg {
        SpecArg::Inline(spec) => Ok((*spec, false)),
        SpecArg::Policy(name) => match ctx.srv.rl_policies.read().get(name) {
            Some(p) => Ok((p.spec_for(key), p.shadow)),
            None => Err(Error::msg(format!(
                "ERR no such rate limit policy '{}'",
                String::from_utf8_lossy(name)
            ))),
        },
    }
}

fn parse_cost(arg: Option<&Bytes>) -> Result<i64, Error> {
    let arg = arg.ok_or_else(|| Error::msg(error::SYNTAX))?;
    match basalt_engine::num::parse_i64(arg) {
        Some(c) if (0..=MAX_LIMIT).contains(&c) => Ok(c),
        _ => Err(Error::msg(format!(
            "ERR COST must be an integer between 0 and {MAX_LIMIT}"
        ))),
    }
}

/// The limiter stored under `key`, if any (WRONGTYPE for other types; an error if it
/// uses another algorithm than `spec`).
fn stored<'g>(
    g: &'g mut Guard<'_>,
    db: usize,
    key: &[u8],
    spec: &Spec,
) -> Result<Option<&'g mut RateLimit>, Error> {
    match g.get(db, key).map(|e| e.into_value_mut()) {
        None => Ok(None),
        Some(Some(Value::RateLimit(r))) => {
            if r.spec().name() != spec.name() {
                return Err(Error::msg(format!(
                    "ERR key holds a {} rate limiter; RL.RESET it to change the algorithm",
                    r.spec().name().to_uppercase()
                )));
            }
            Ok(Some(r))
        }
        Some(_) => Err(Error::msg(error::WRONGTYPE)),
    }
}

/// Stores `rl` under `key` until it is full again (`reset_ms` from now), or deletes the
/// key if it already is. Returns the deadline stored (`None`: deleted).
fn store(
    g: &mut Guard<'_>,
    db: usize,
    key: &[u8],
    rl: RateLimit,
    now: u64,
    reset_ms: i64,
) -> Option<(u64, RateLimit)> {
    if reset_ms <= 0 {
        g.delete(db, key, Reason::ServerDel);
        None
    } else {
        let deadline = now.saturating_add(reset_ms as u64);
        g.insert(db, key, Value::RateLimit(Box::new(rl.clone())), deadline);
        Some((deadline, rl))
    }
}

/// Logs a limiter's new state as its AOF effect: `RESTORE key <deadline> <payload>
/// REPLACE ABSTTL` (the DUMP payload holds the `basalt-rl` module value), or `DEL key`
/// when the limiter went back to full. Replaying it never depends on the replaying
/// server's clock.
fn propagate_state(ctx: &mut Ctx<'_>, key: &Bytes, stored: Option<(u64, RateLimit)>) {
    if !ctx.aof_on() {
        return;
    }
    match stored {
        None => ctx.propagate(vec![Bytes::from_static(b"DEL"), key.clone()]),
        Some((deadline, rl)) => {
            let payload = basalt_persist::dump::dump(
                &Value::RateLimit(Box::new(rl)),
                basalt_persist::rdb::encode::EncodeOptions::default(),
            );
            ctx.propagate(vec![
                Bytes::from_static(b"RESTORE"),
                key.clone(),
                crate::aof::int_arg(deadline),
                Bytes::from(payload),
                Bytes::from_static(b"REPLACE"),
                Bytes::from_static(b"ABSTTL"),
            ]);
        }
    }
}

/// A check's reply. Under a shadow policy the request is always `allowed`, and
/// `shadow_limited` tells whether it would have been refused.
fn decision_frame(d: &Decision, spec: &Spec, headers: bool, shadow: bool) -> Frame {
    let mut m = vec![
        (
            Frame::bulk(b"allowed"),
            Frame::Integer(i64::from(d.allowed || shadow)),
        ),
        (Frame::bulk(b"limit"), Frame::Integer(d.limit)),
        (Frame::bulk(b"remaining"), Frame::Integer(d.remaining)),
        (
            Frame::bulk(b"retry_after_ms"),
            Frame::Integer(d.retry_after_ms),
        ),
        (
            Frame::bulk(b"reset_after_ms"),
            Frame::Integer(d.reset_after_ms),
        ),
    ];
    if shadow {
        m.push((
            Frame::bulk(b"shadow_limited"),
            Frame::Integer(i64::from(!d.allowed)),
        ));
    }
    if headers {
        let secs = |ms: i64| (ms + 999) / 1000;
        // draft-ietf-httpapi-ratelimit-headers: RateLimit-Policy and RateLimit fields.
        let policy = format!("\"default\";q={};w={}", d.limit, secs(spec.window_ms()));
        let state = format!(
            "\"default\";r={};t={}",
            d.remaining,
            secs(if d.allowed {
                d.reset_after_ms
            } else {
                d.retry_after_ms.max(0)
            })
        );
        m.push((
            Frame::bulk(b"ratelimit-policy"),
            Frame::bulk(policy.as_bytes()),
        ));
        m.push((Frame::bulk(b"ratelimit"), Frame::bulk(state.as_bytes())));
    }
    Frame::Map(m)
}

fn now_us(ctx: &Ctx<'_>) -> i64 {
    (ctx.now as i64).saturating_mul(1000)
}

fn rl_check(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let (arg, mut i) = parse_spec(argv, 2)?;
    let mut cost = 1;
    let (mut peek, mut refund, mut headers) = (false, false, false);
    while i < argv.len() {
        let a = &argv[i];
        if args::is(a, "cost") {
            cost = parse_cost(argv.get(i + 1))?;
            i += 2;
            continue;
        } else if args::is(a, "peek") {
            peek = true;
        } else if args::is(a, "refund") {
            refund = true;
        } else if args::is(a, "headers") {
            headers = true;
        } else {
            return Err(Error::msg(error::SYNTAX));
        }
        i += 1;
    }
    if peek && refund {
        return Err(Error::msg("ERR PEEK and REFUND cannot be combined"));
    }
    let (spec, shadow) = resolve(ctx, key, &arg)?;
    let mode = if peek {
        Mode::Peek
    } else if refund {
        Mode::Refund
    } else {
        Mode::Consume
    };
    let db = ctx.client.db;
    let now = ctx.now;
    let t = now_us(ctx);
    let mut g = ctx.srv.keyspace.lock_key(key, now);
    let existing = stored(&mut g, db, key, &spec)?.map(|r| r.clone());
    let existed = existing.is_some();
    let mut rl = existing.unwrap_or_else(|| RateLimit::new(spec, t));
    rl.set_spec(spec, t);
    let d = rl.check(t, cost, mode);
    let changed = match mode {
        Mode::Peek => false,
        Mode::Refund => existed,
        Mode::Consume => d.allowed && (existed || cost > 0),
    };
    if changed {
        let stored = store(&mut g, db, key, rl, now, d.reset_after_ms);
        drop(g);
        ctx.notify(ev::MODULE, "rl.check", key);
        propagate_state(ctx, key, stored);
    } else if ctx.aof_on() {
        ctx.propagate_nothing();
    }
    Ok(decision_frame(&d, &spec, headers, shadow))
}

/// One limit of RL.MCHECK as written: the key's index in argv, the key, its spec, cost.
type MLimit<'a> = (usize, &'a Bytes, SpecArg<'a>, i64);

/// Parses `n key spec [COST c] ...` of RL.MCHECK (a spec may be `POLICY name`).
fn parse_mcheck(argv: &[Bytes]) -> Result<Vec<MLimit<'_>>, Error> {
    let n = match basalt_engine::num::parse_i64(&argv[1]) {
        Some(n) if n >= 1 && n as usize <= MAX_MCHECK => n as usize,
        _ => {
            return Err(Error::msg(format!(
                "ERR the number of limits must be between 1 and {MAX_MCHECK}"
            )));
        }
    };
    let mut limits = Vec::with_capacity(n);
    let mut i = 2;
    for _ in 0..n {
        let key_at = i;
        let key = argv.get(i).ok_or_else(|| Error::msg(error::SYNTAX))?;
        let (spec, next) = parse_spec(argv, i + 1)?;
        i = next;
        let mut cost = 1;
        if argv.get(i).is_some_and(|a| args::is(a, "cost")) {
            cost = parse_cost(argv.get(i + 1))?;
            i += 2;
        }
        limits.push((key_at, key, spec, cost));
    }
    if i != argv.len() {
        return Err(Error::msg(error::SYNTAX));
    }
    Ok(limits)
}

fn mcheck_keys(argv: &[Bytes]) -> Vec<(usize, &'static [&'static str])> {
    match parse_mcheck(argv) {
        Ok(limits) => limits.iter().map(|l| (l.0, RW_UPDATE)).collect(),
        Err(_) => Vec::new(),
    }
}

fn rl_mcheck(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let limits = parse_mcheck(argv)?
        .into_iter()
        .map(|(_, key, arg, cost)| {
            let (spec, shadow) = resolve(ctx, key, &arg)?;
            Ok(Limit {
                key,
                spec,
                cost,
                shadow,
            })
        })
        .collect::<Result<Vec<Limit<'_>>, Error>>()?;
    let db = ctx.client.db;
    let now = ctx.now;
    let t = now_us(ctx);
    let keys: Vec<&Bytes> = limits.iter().map(|l| l.key).collect();
    let mut g = ctx.srv.keyspace.lock_keys(&keys, now);
    // Working copies, one per distinct key, so a key named twice is charged twice.
    let mut work: Vec<(&Bytes, RateLimit, bool)> = Vec::new();
    let mut decisions = Vec::with_capacity(limits.len());
    for l in &limits {
        let idx = match work.iter().position(|(k, _, _)| *k == l.key) {
            Some(idx) => {
                if work[idx].1.spec().name() != l.spec.name() {
                    return Err(Error::msg(
                        "ERR the same key is named with two different algorithms",
                    ));
                }
                idx
            }
            None => {
                let existing = stored(&mut g, db, l.key, &l.spec)?.map(|r| r.clone());
                let existed = existing.is_some();
                work.push((
                    l.key,
                    existing.unwrap_or_else(|| RateLimit::new(l.spec, t)),
                    existed,
                ));
                work.len() - 1
            }
        };
        let rl = &mut work[idx].1;
        rl.set_spec(l.spec, t);
        decisions.push(rl.check(t, l.cost, Mode::Consume));
    }
    // A shadow limit never refuses: it is charged only when it would itself allow.
    let refused = || {
        decisions
            .iter()
            .zip(&limits)
            .filter(|(d, l)| !d.allowed && !l.shadow)
            .map(|(d, _)| d)
    };
    let allowed = refused().next().is_none();
    let retry = refused().map(|d| d.retry_after_ms).fold(0, |acc, r| {
        if acc == -1 || r == -1 { -1 } else { acc.max(r) }
    });
    let mut touched = Vec::new();
    if allowed {
        for (key, rl, existed) in work {
            let d = {
                let mut probe = rl.clone();
                probe.check(t, 0, Mode::Peek)
            };
            if existed || d.reset_after_ms > 0 {
                let stored = store(&mut g, db, key, rl, now, d.reset_after_ms);
                touched.push((key, stored));
            }
        }
    }
    drop(g);
    if touched.is_empty() && ctx.aof_on() {
        ctx.propagate_nothing();
    }
    for (key, stored) in touched {
        ctx.notify(ev::MODULE, "rl.check", key);
        propagate_state(ctx, key, stored);
    }
    let results = limits
        .iter()
        .zip(&decisions)
        .map(|(l, d)| decision_frame(d, &l.spec, false, l.shadow))
        .collect();
    Ok(Frame::Map(vec![
        (Frame::bulk(b"allowed"), Frame::Integer(i64::from(allowed))),
        (Frame::bulk(b"retry_after_ms"), Frame::Integer(retry)),
        (Frame::bulk(b"results"), Frame::Array(results)),
    ]))
}

fn rl_info(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let t = now_us(ctx);
    let mut g = ctx.srv.keyspace.lock_key(&argv[1], ctx.now);
    let rl = match g.lookup_read(db, &argv[1]).map(|e| e.into_value()) {
        None => return Ok(Frame::NullArray),
        Some(ValueRef::Other(Value::RateLimit(r))) => (**r).clone(),
        Some(_) => return Err(Error::msg(error::WRONGTYPE)),
    };
    drop(g);
    let mut probe = rl.clone();
    let d = probe.check(t, 0, Mode::Peek);
    let spec = *rl.spec();
    let mut m = vec![(
        Frame::bulk(b"algorithm"),
        Frame::bulk(spec.name().to_uppercase().as_bytes()),
    )];
    let params: Vec<(&str, i64)> = match spec {
        Spec::Gcra {
            burst,
            rate,
            period_ms,
        } => vec![("burst", burst), ("rate", rate), ("period_ms", period_ms)],
        Spec::Token { capacity, refill } => {
            vec![("capacity", capacity), ("refill_per_second", refill)]
        }
        Spec::Fixed { limit, window_ms }
        | Spec::Sliding { limit, window_ms }
        | Spec::Log { limit, window_ms } => vec![("limit", limit), ("window_ms", window_ms)],
        Spec::Lease { max } => vec![("max", max)],
    };
    let fields = params
        .into_iter()
        .chain([
            ("remaining", d.remaining),
            ("reset_after_ms", d.reset_after_ms),
        ])
        .chain(rl.state_fields(t));
    for (k, v) in fields {
        m.push((Frame::bulk(k.as_bytes()), Frame::Integer(v)));
    }
    if let Spec::Lease { .. } = spec {
        // Each live lease: its id and the ms it has left.
        let leases = rl
            .live_leases(t)
            .flat_map(|l| {
                [
                    Frame::Integer(l.id),
                    Frame::Integer(us_to_ms_ceil(l.deadline_us - t)),
                ]
            })
            .collect();
        m.push((Frame::bulk(b"leases"), Frame::Array(leases)));
    }
    Ok(Frame::Map(m))
}

fn rl_reset(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&argv[1], ctx.now);
    match g.get(db, &argv[1]).map(|e| e.into_value()) {
        None => return Ok(Frame::Integer(0)),
        Some(ValueRef::Other(Value::RateLimit(_))) => {}
        Some(_) => return Err(Error::msg(error::WRONGTYPE)),
    }
    g.delete(db, &argv[1], Reason::ServerDel);
    drop(g);
    ctx.notify(ev::GENERIC, "del", &argv[1]);
    // A reset lease limiter has every place free.
    ctx.signal_ready(db, &argv[1]);
    Ok(Frame::Integer(1))
}

fn us_to_ms_ceil(us: i64) -> i64 {
    (us.max(0) + 999) / 1000
}

/// Parses an integer argument of RL.LEASE in `min..=max`.
fn bounded(arg: &[u8], what: &str, min: i64, max: i64) -> Result<i64, Error> {
    match basalt_engine::num::parse_i64(arg) {
        Some(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(Error::msg(format!(
            "ERR {what} must be an integer between {min} and {max}"
        ))),
    }
}

/// Stores a lease limiter until its last lease expires, or deletes it when it has none
/// left; logs the effect either way.
fn store_leases(ctx: &mut Ctx<'_>, g: &mut Guard<'_>, key: &Bytes, rl: RateLimit, t: i64) {
    let db = ctx.client.db;
    let stored = match rl.lease_deadlines(t) {
        Some((_, last)) => {
            let deadline = us_to_ms_ceil(last) as u64;
            g.insert(db, key, Value::RateLimit(Box::new(rl.clone())), deadline);
            Some((deadline, rl))
        }
        None => {
            g.delete(db, key, Reason::ServerDel);
            None
        }
    };
    propagate_state(ctx, key, stored);
}

/// `RL.LEASE key max ttl_ms [WAIT ms]`: takes a lease if fewer than `max` are live and
/// no waiter queued earlier is owed the free place. Otherwise answers `acquired` 0, or
/// with `WAIT` queues the client (at most `ms`, 0 meaning no limit) until a lease is
/// released, reset or expires. Inside MULTI and scripts `WAIT` does not block.
fn rl_lease(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let max = bounded(&argv[2], "max", 1, MAX_LIMIT)?;
    let ttl_ms = bounded(&argv[3], "ttl_ms", 1, MAX_WINDOW_MS)?;
    let wait = match &argv[4..] {
        [] => None,
        [w, ms] if args::is(w, "wait") => Some(bounded(ms, "WAIT", 0, MAX_WINDOW_MS)?),
        _ => return Err(Error::msg(error::SYNTAX)),
    };
    let spec = Spec::Lease { max };
    let db = ctx.client.db;
    let now = ctx.now;
    let t = now_us(ctx);
    let mut g = ctx.srv.keyspace.lock_key(key, now);
    let existing = stored(&mut g, db, key, &spec)?.map(|r| r.clone());
    let mut rl = existing.unwrap_or_else(|| RateLimit::new_lease(max));
    rl.set_spec(spec, t);
    let ahead = ctx.srv.blocking.waiters_ahead(db, key, ctx.client.id);
    let free = (max - rl.lease_holders(t) as i64).max(0);
    let granted = if free > ahead as i64 {
        rl.lease_acquire(t, ttl_ms * 1000).ok()
    } else {
        None
    };
    let holders = rl.lease_holders(t) as i64;
    let earliest = rl.lease_deadlines(t).map(|(first, _)| first);
    if let Some(lease) = granted {
        store_leases(ctx, &mut g, key, rl, t);
        drop(g);
        // Waiters still queued learn of this lease's expiry from its timer.
        if ctx.srv.blocking.waiters_ahead(db, key, u64::MAX) > 0 {
            let at = us_to_ms_ceil(lease.deadline_us) as u64;
            ctx.srv.wake_timers.schedule(at, db, key);
        }
        ctx.notify(ev::MODULE, "rl.lease", key);
        return Ok(lease_frame(Some(lease.id), max, holders, ttl_ms, 0));
    }
    drop(g);
    if ctx.aof_on() {
        ctx.propagate_nothing();
    }
    if let (Some(ms), true) = (wait, ctx.can_block()) {
        // Whichever comes first wakes the queue's head: a release (signalled by the
        // releaser) or the earliest lease's expiry (signalled by the timer).
        if let Some(first) = earliest {
            ctx.srv
                .wake_timers
                .schedule(us_to_ms_ceil(first) as u64, db, key);
        }
        let deadline = (ms > 0).then(|| now.saturating_add(ms as u64));
        return ctx.block_fifo(key.clone(), deadline, argv[..4].to_vec());
    }
    let retry = earliest.map_or(0, |first| us_to_ms_ceil(first - t).max(1));
    Ok(lease_frame(None, max, holders, 0, retry))
}

/// RL.LEASE's reply: a map under RESP3, the same pairs flat under RESP2.
fn lease_frame(id: Option<i64>, max: i64, holders: i64, ttl_ms: i64, retry: i64) -> Frame {
    Frame::Map(vec![
        (
            Frame::bulk(b"acquired"),
            Frame::Integer(i64::from(id.is_some())),
        ),
        (
            Frame::bulk(b"lease_id"),
            id.map_or(Frame::Null, Frame::Integer),
        ),
        (Frame::bulk(b"max"), Frame::Integer(max)),
        (Frame::bulk(b"holders"), Frame::Integer(holders)),
        (Frame::bulk(b"ttl_ms"), Frame::Integer(ttl_ms)),
        (Frame::bulk(b"retry_after_ms"), Frame::Integer(retry)),
    ])
}

/// `RL.UNLEASE key lease_id`: 1 if the lease was live and is now released (the first
/// waiter is woken), 0 otherwise.
fn rl_unlease(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let id =
        basalt_engine::num::parse_i64(&argv[2]).ok_or_else(|| Error::msg(error::NOT_INTEGER))?;
    let db = ctx.client.db;
    let t = now_us(ctx);
    let mut g = ctx.srv.keyspace.lock_key(key, ctx.now);
    let rl = match g.get(db, key).map(|e| e.into_value_mut()) {
        None => None,
        Some(Some(Value::RateLimit(r))) if matches!(r.spec(), Spec::Lease { .. }) => Some(r),
        Some(Some(Value::RateLimit(r))) => {
            return Err(Error::msg(format!(
                "ERR key holds a {} rate limiter, not leases",
                r.spec().name().to_uppercase()
            )));
        }
        Some(_) => return Err(Error::msg(error::WRONGTYPE)),
    };
    let mut rl = match rl {
        Some(r) => (**r).clone(),
        None => {
            if ctx.aof_on() {
                ctx.propagate_nothing();
            }
            return Ok(Frame::Integer(0));
        }
    };
    if !rl.lease_release(t, id) {
        if ctx.aof_on() {
            ctx.propagate_nothing();
        }
        return Ok(Frame::Integer(0));
    }
    store_leases(ctx, &mut g, key, rl, t);
    drop(g);
    ctx.notify(ev::MODULE, "rl.unlease", key);
    ctx.signal_ready(db, key);
    Ok(Frame::Integer(1))
}
