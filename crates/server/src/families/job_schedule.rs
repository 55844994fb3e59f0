//! `JOB.SCHEDULE UPSERT|DEL|GET|LIST`: recurring jobs, pushed by the server on every tick
//! of a cron expression (in a time zone) or a fixed period.
//!
//! Schedules are server state (`Server::schedules`), like rate-limit policies: FLUSHALL
//! does not touch them. The tick math is `basalt_engine::schedule` (pure); the pushing is
//! `crate::schedule` (the cron's firing pass). Persistence:
//! - RDB: one aux field per schedule (`basalt-job-schedule`), holding its
//!   `JOB.SCHEDULE RESTORE` arguments RESP-encoded, so a file stays loadable by Redis;
//! - AOF: `UPSERT` is logged as `RESTORE` (its creation time and cursor are the command's
//!   time, which a replay must not recompute), `DEL` as sent, and every firing pass as one
//!   `MULTI`/`EXEC` of the pushes' effects and an `ADVANCE` of the schedule's progress; a
//!   rewrite writes one `RESTORE` per schedule.
//!
//! `RESTORE` and `ADVANCE` are what files hold; clients may run them (admin, dangerous:
//! moving a cursor forward skips ticks).

use crate::cmd::Command;
use crate::cmd::acl;
use crate::cmd::flags::*;
use crate::error::{self, CmdResult, Error};
use crate::server::{Ctx, Server};
use basalt_engine::schedule::{Progress, Schedule, Spec, Trigger, jid};
use basalt_proto::Frame;
use bytes::Bytes;

/// The RDB aux field holding one schedule.
pub const AUX_FIELD: &str = "basalt-job-schedule";

/// Error for a cron expression that is valid but never matches (`0 0 30 2 *`).
pub const NEVER: &str = "ERR the schedule never ticks";

macro_rules! sched_cmd {
    ($name:literal, $arity:expr, $flags:expr, $summary:literal, $h:expr) => {
        Command {
            name: $name,
            arity: $arity,
            flags: $flags,
            group: "jobs",
            since: "0.1.0",
            summary: $summary,
            complexity: "O(1) (LIST: O(N) schedules)",
            handler: Some($h),
            ..Command::EMPTY
        }
    };
}

const SUBCOMMANDS: &[Command] = &[
    sched_cmd!(
        "upsert",
        -8,
        WRITE | DENYOOM,
        "Creates or replaces a recurring job: name queue (CRON expr [TZ zone] | EVERY ms) [MISSED LATEST|ALL|SKIP] TEMPLATE payload [JOB.PUSH options]. (Basalt)",
        upsert
    ),
    sched_cmd!(
        "del",
        3,
        WRITE | FAST,
        "Deletes a recurring job. (Basalt)",
        del
    ),
    sched_cmd!(
        "get",
        3,
        READONLY | FAST,
        "Describes a recurring job and its progress. (Basalt)",
        get
    ),
    sched_cmd!(
        "list",
        2,
        READONLY,
        "Lists the names of the recurring jobs. (Basalt)",
        list
    ),
    Command {
        acl: acl::WRITE | acl::ADMIN | acl::DANGEROUS,
        ..sched_cmd!(
            "restore",
            -14,
            WRITE | ADMIN,
            "Recreates a recurring job with its progress (what the RDB and AOF hold). (Basalt)",
            restore
        )
    },
    Command {
        acl: acl::WRITE | acl::ADMIN | acl::DANGEROUS,
        ..sched_cmd!(
            "advance",
            8,
            WRITE | ADMIN | FAST,
            "Sets a recurring job's progress (what the AOF logs for a firing). (Basalt)",
            advance
        )
    },
];

/// The JOB.SCHEDULE container.
pub const COMMANDS: &[Command] = &[Command {
    name: "job.schedule",
    arity: -2,
    group: "jobs",
    since: "0.1.0",
    summary: "A container for recurring jobs",
    complexity: "Depends on subcommand.",
    subcommands: SUBCOMMANDS,
    ..Command::EMPTY
}];

fn refs(args: &[Bytes]) -> Vec<&[u8]> {
    args.iter().map(|a| a.as_ref()).collect()
}

fn parse_spec(args: &[Bytes]) -> Result<Spec, Error> {
    Spec::parse(&refs(args)).map_err(|e| Error::msg(format!("ERR {e}")))
}

/// Checks what a schedule will push on each tick: the template's options must be valid
/// `JOB.PUSH` options without `ID` (the schedule chooses the jid) and `AT`, and the jid
/// must fit the jid limit.
fn check_template(srv: &Server, name: &[u8], spec: &Spec) -> Result<(), Error> {
    crate::schedule::check_template(srv, name, spec)
}

fn loading(srv: &Server) -> bool {
    srv.persist
        .loading
        .load(std::sync::atomic::Ordering::Acquire)
}

/// The arguments of the `JOB.SCHEDULE RESTORE` that recreates `s`.
pub fn restore_command(name: &[u8], s: &Schedule) -> Vec<Vec<u8>> {
    let mut v = vec![
        b"JOB.SCHEDULE".to_vec(),
        b"RESTORE".to_vec(),
        name.to_vec(),
        s.db.to_string().into_bytes(),
        s.created.to_string().into_bytes(),
    ];
    v.extend(s.progress.to_args());
    v.extend(s.spec.to_args());
    v
}

fn to_bytes(cmd: Vec<Vec<u8>>) -> Vec<Bytes> {
    cmd.into_iter().map(Bytes::from).collect()
}

fn max_schedules(srv: &Server) -> usize {
    if loading(srv) {
        usize::MAX
    } else {
        srv.config.read().job_schedule_max as usize
    }
}

/// `JOB.SCHEDULE UPSERT name queue (CRON expr [TZ zone] | EVERY ms)
/// [MISSED LATEST|ALL|SKIP] TEMPLATE payload [options]`: `OK`. A new schedule ticks
/// strictly after now; replacing one keeps its progress (its cursor), so re-declaring
/// schedules at every deploy neither repeats nor skips a tick.
fn upsert(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let name = &argv[2];
    let spec = parse_spec(&argv[3..])?;
    check_template(ctx.srv, name, &spec)?;
    let now = ctx.now;
    if spec.trigger.next_after(now).is_none() {
        return Err(Error::msg(NEVER));
    }
    let max = max_schedules(ctx.srv);
    let mut all = ctx.srv.schedules.write();
    let (progress, created) = match all.get(name) {
        Some(old) => (old.progress, old.created),
        None => (
            Progress {
                cursor: now,
                ..Progress::default()
            },
            now,
        ),
    };
    let s = Schedule {
        db: ctx.client.db,
        spec,
        progress,
        created,
        last_error: String::new(),
    };
    let cmd = restore_command(name, &s);
    all.put(name, s, max)
        .map_err(|e| Error::msg(format!("ERR {e}")))?;
    drop(all);
    ctx.changed(1);
    if ctx.aof_on() {
        ctx.propagate(to_bytes(cmd));
    }
    Ok(Frame::ok())
}

fn del(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let deleted = ctx.srv.schedules.write().del(&argv[2]);
    if deleted {
        ctx.changed(1);
    } else if ctx.aof_on() {
        ctx.propagate_nothing();
    }
    Ok(Frame::Integer(i64::from(deleted)))
}

fn bulk(b: impl Into<Vec<u8>>) -> Frame {
    Frame::Bulk(Bytes::from(b.into()))
}

fn int_or_minus(n: u64) -> Frame {
    Frame::Integer(if n == 0 { -1 } else { n as i64 })
}

/// `JOB.SCHEDULE GET name`: a map describing the schedule, or nil.
fn get(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let all = ctx.srv.schedules.read();
    let Some(s) = all.get(&argv[2]) else {
        return Ok(Frame::Null);
    };
    let (kind, expr, zone, every) = match &s.spec.trigger {
        Trigger::Cron {
            expr, zone_name, ..
        } => (
            "cron",
            bulk(expr.as_bytes()),
            bulk(zone_name.as_deref().unwrap_or("UTC").as_bytes()),
            Frame::Null,
        ),
        Trigger::Every { ms } => (
            "every",
            Frame::Null,
            Frame::Null,
            Frame::Integer(*ms as i64),
        ),
    };
    let next = s
        .spec
        .trigger
        .next_after(s.progress.cursor)
        .map_or(Frame::Integer(-1), |t| Frame::Integer(t as i64));
    let p = &s.progress;
    let pairs = vec![
        ("name", bulk(argv[2].to_vec())),
        ("queue", bulk(s.spec.queue.clone())),
        ("db", Frame::Integer(s.db as i64)),
        ("trigger", bulk(kind)),
        ("cron", expr),
        ("tz", zone),
        ("every", every),
        ("missed", bulk(s.spec.missed.name())),
        ("payload", bulk(s.spec.payload.clone())),
        (
            "options",
            Frame::Array(s.spec.options.iter().map(|o| bulk(o.clone())).collect()),
        ),
        ("created", Frame::Integer(s.created as i64)),
        ("next", next),
        ("cursor", Frame::Integer(p.cursor as i64)),
        ("last_fired", int_or_minus(p.last_fired)),
        (
            "last_jid",
            if p.last_fired == 0 {
                Frame::Null
            } else {
                bulk(jid(&argv[2], p.last_fired))
            },
        ),
        ("fired", Frame::Integer(p.fired as i64)),
        ("skipped", Frame::Integer(p.skipped as i64)),
        ("errors", Frame::Integer(p.errors as i64)),
        (
            "last_error",
            if s.last_error.is_empty() {
                Frame::Null
            } else {
                bulk(s.last_error.as_bytes())
            },
        ),
    ];
    Ok(Frame::Map(
        pairs.into_iter().map(|(k, v)| (bulk(k), v)).collect(),
    ))
}

fn list(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    let names = ctx
        .srv
        .schedules
        .read()
        .iter()
        .map(|(name, _)| bulk(name.clone()))
        .collect();
    Ok(Frame::Array(names))
}

fn uint(a: &[u8]) -> Result<u64, Error> {
    std::str::from_utf8(a)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| Error::msg(error::NOT_INTEGER))
}

/// `JOB.SCHEDULE RESTORE name db created cursor last_fired fired skipped errors
/// <UPSERT's arguments after the name>`: recreates a schedule exactly (replacing one of
/// the same name).
fn restore(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let name = &argv[2];
    let db = uint(&argv[3])? as usize;
    if db >= ctx.srv.keyspace.databases() {
        return Err(Error::msg(error::DB_OUT_OF_RANGE));
    }
    let created = uint(&argv[4])?;
    let progress =
        Progress::parse(&refs(&argv[5..10])).ok_or_else(|| Error::msg(error::NOT_INTEGER))?;
    let spec = parse_spec(&argv[10..])?;
    let s = Schedule {
        db,
        spec,
        progress,
        created,
        last_error: String::new(),
    };
    let max = max_schedules(ctx.srv);
    ctx.srv
        .schedules
        .write()
        .put(name, s, max)
        .map_err(|e| Error::msg(format!("ERR {e}")))?;
    ctx.changed(1);
    Ok(Frame::ok())
}

/// `JOB.SCHEDULE ADVANCE name cursor last_fired fired skipped errors`: sets the
/// schedule's progress; 1, or 0 when there is no such schedule.
fn advance(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let p = Progress::parse(&refs(&argv[3..8])).ok_or_else(|| Error::msg(error::NOT_INTEGER))?;
    let mut all = ctx.srv.schedules.write();
    let done = match all.get_gen(&argv[2]) {
        Some((generation, _)) => all.advance(&argv[2], generation, p, None),
        None => false,
    };
    drop(all);
    if done {
        ctx.changed(1);
    } else if ctx.aof_on() {
        ctx.propagate_nothing();
    }
    Ok(Frame::Integer(i64::from(done)))
}

/// Every schedule as the `JOB.SCHEDULE RESTORE` that recreates it (AOF rewrite).
pub fn restore_commands(srv: &Server) -> Vec<Vec<Vec<u8>>> {
    srv.schedules
        .read()
        .iter()
        .map(|(name, s)| restore_command(name, s))
        .collect()
}

/// The aux field values to save: each schedule's RESTORE arguments (after `RESTORE`),
/// RESP-encoded. Taken *before* the keyspace is walked or frozen: a firing pass in
/// between leaves a cursor behind a pushed job, which a later fire of the same tick
/// finds (its jid exists) and skips; the other order could lose a job.
pub fn aux_values(srv: &Server) -> Vec<Vec<u8>> {
    aux_of(&restore_commands(srv))
}

/// [`restore_commands`]' output as aux field values (their arguments after
/// `JOB.SCHEDULE RESTORE`).
pub fn aux_of(cmds: &[Vec<Vec<u8>>]) -> Vec<Vec<u8>> {
    basalt_persist::aof::resp::encode_tails(cmds, 2)
}

/// Loads one aux field value written by [`aux_values`] (replacing a schedule of the same
/// name; `job-schedule-max` is not applied to what a file holds).
pub fn load_aux(srv: &Server, value: &[u8]) -> Result<(), String> {
    let bad = || format!("Invalid {AUX_FIELD} aux field");
    let mut r = basalt_persist::aof::resp::CommandReader::new(value, value.len() as u64, 0);
    let words = r.next_command().map_err(|_| bad())?.ok_or_else(bad)?;
    if words.len() < 12 {
        return Err(bad());
    }
    let w: Vec<&[u8]> = words.iter().map(Vec::as_slice).collect();
    let num = |a: &[u8]| -> Result<u64, String> {
        std::str::from_utf8(a)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)
    };
    let db = num(w[1])? as usize;
    if db >= srv.keyspace.databases() {
        return Err(format!("{}: database {db} out of range", bad()));
    }
    let created = num(w[2])?;
    let progress = Progress::parse(&w[3..8]).ok_or_else(bad)?;
    let spec = Spec::parse(&w[8..]).map_err(|e| format!("{}: {e}", bad()))?;
    let s = Schedule {
        db,
        spec,
        progress,
        created,
        last_error: String::new(),
    };
    srv.schedules
        .write()
        .put(w[0], s, usize::MAX)
        .map_err(|e| format!("{}: {e}", bad()))
}
