//! The persistence family: SAVE, BGSAVE, BGREWRITEAOF (server group) and DUMP, RESTORE
//! (generic group). LASTSAVE and SHUTDOWN live in the server family; the snapshot
//! machinery is in `crate::persist`, the AOF's in `crate::aof`, the formats in
//! `basalt-persist`.

use crate::cmd::args::{self, is};
use crate::cmd::flags::*;
use crate::cmd::{Command, KeySpec, acl};
use crate::error::{self, CmdResult, Error};
use crate::pubsub::notify as ev;
use crate::server::Ctx;
use basalt_engine::Value;
use basalt_persist::dump;
use basalt_persist::rdb::encode::EncodeOptions;
use basalt_proto::Frame;
use bytes::Bytes;

/// The persistence family's commands.
pub const COMMANDS: &[Command] = &[
    Command {
        name: "save",
        arity: 1,
        flags: ADMIN | NOSCRIPT | NO_ASYNC_LOADING | NO_MULTI,
        group: "server",
        since: "1.0.0",
        summary: "Synchronously save the dataset to disk",
        complexity: "O(N) where N is the total number of keys in all databases",
        handler: Some(save),
        ..Command::EMPTY
    },
    Command {
        name: "bgsave",
        arity: -1,
        flags: ADMIN | NOSCRIPT | NO_ASYNC_LOADING,
        group: "server",
        since: "1.0.0",
        summary: "Asynchronously save the dataset to disk",
        complexity: "O(1)",
        handler: Some(bgsave),
        ..Command::EMPTY
    },
    Command {
        name: "bgrewriteaof",
        arity: 1,
        flags: ADMIN | NOSCRIPT | NO_ASYNC_LOADING,
        group: "server",
        since: "1.0.0",
        summary: "Asynchronously rewrite the append-only file",
        complexity: "O(1)",
        handler: Some(bgrewriteaof),
        ..Command::EMPTY
    },
    Command {
        tips: &["nondeterministic_output"],
        ..crate::keyed_cmd!(acl::KEYSPACE, "generic";
            "dump",
            2,
            READONLY,
            (1, 1, 1),
            &[KeySpec::single(1, &["RO", "access"])],
            "2.6.0",
            "Return a serialized version of the value stored at the specified key.",
            "O(1) to access the key and additional O(N*M) to serialize it, where N is the number of Redis objects composing the value and M their average size. For small string values the time complexity is thus O(1)+O(1*M) where M is small, so simply O(1).",
            dump_cmd
        )
    },
    crate::keyed_cmd!(acl::KEYSPACE | acl::DANGEROUS, "generic";
        "restore",
        -4,
        WRITE | DENYOOM,
        (1, 1, 1),
        &[KeySpec::single(1, &["OW", "update"])],
        "2.6.0",
        "Create a key using the provided serialized value, previously obtained using DUMP.",
        "O(1) to create the new key and additional O(N*M) to reconstruct the serialized value, where N is the number of Redis objects composing the value and M their average size. For small string values the time complexity is thus O(1)+O(1*M) where M is small, so simply O(1). However for sorted set values the complexity is O(N*M*log(N)) because inserting values into sorted sets is O(log(N)).",
        restore
    ),
];

const IN_PROGRESS: &str = "ERR Background save already in progress";

fn save(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    match crate::persist::save(ctx.srv) {
        Ok(_) => Ok(Frame::ok()),
        Err(None) => Err(Error::msg(IN_PROGRESS)),
        Err(Some(_)) => Err(Error::msg("ERR")),
    }
}

/// Redis's reply to a plain BGSAVE while an AOF rewrite runs.
const OTHER_CHILD: &str = "ERR Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible.";

/// BGSAVE [SCHEDULE]: a snapshot of one instant (the keyspace is frozen, then written a
/// chunk at a time by a background thread; see `crate::persist`). Only one frozen view
/// exists at a time, so while an AOF rewrite runs a plain BGSAVE is refused and
/// SCHEDULE starts it once the rewrite is over, as Redis does with its one child.
fn bgsave(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    use crate::persist::BgsaveStart;
    if args.len() > 2 || (args.len() == 2 && !is(&args[1], "schedule")) {
        return Err(Error::msg(error::SYNTAX));
    }
    let schedule = args.len() == 2;
    let p = &ctx.srv.persist;
    if p.bgsave_running.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(Error::msg(IN_PROGRESS));
    }
    // Inside EXEC the view would hold half a transaction: like Redis, the cron starts
    // the save after it.
    if ctx.client.in_exec {
        p.bgsave_scheduled
            .store(true, std::sync::atomic::Ordering::Relaxed);
        return Ok(Frame::Simple("Background saving scheduled".into()));
    }
    match crate::persist::bgsave(ctx.srv) {
        BgsaveStart::Started => Ok(Frame::Simple("Background saving started".into())),
        BgsaveStart::RewriteRunning if schedule => {
            p.bgsave_scheduled
                .store(true, std::sync::atomic::Ordering::Relaxed);
            Ok(Frame::Simple("Background saving scheduled".into()))
        }
        BgsaveStart::RewriteRunning => Err(Error::msg(OTHER_CHILD)),
        // A foreground SAVE is running (Redis cannot get here: SAVE blocks it).
        BgsaveStart::Running => Err(Error::msg(IN_PROGRESS)),
        BgsaveStart::Failed => Err(Error::msg("ERR")),
    }
}

/// BGREWRITEAOF: a new base written from a point-in-time view of the dataset, without
/// fork (see `crate::aof`). While a BGSAVE runs (it holds the one frozen view) the
/// rewrite is scheduled and the cron starts it once the save is over, as Redis does.
fn bgrewriteaof(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    use crate::aof::RewriteStart;
    let aof = &ctx.srv.aof;
    if ctx.client.in_exec
        && !aof
            .rewrite_running
            .load(std::sync::atomic::Ordering::Relaxed)
    {
        // As Redis: inside EXEC the rewrite is left to the cron.
        aof.rewrite_scheduled
            .store(true, std::sync::atomic::Ordering::Relaxed);
        return Ok(Frame::Simple(
            "Background append only file rewriting scheduled".into(),
        ));
    }
    match crate::aof::start_rewrite(ctx.srv, false) {
        RewriteStart::Started => Ok(Frame::Simple(
            "Background append only file rewriting started".into(),
        )),
        RewriteStart::BgsaveRunning => {
            ctx.srv
                .aof
                .rewrite_scheduled
                .store(true, std::sync::atomic::Ordering::Relaxed);
            Ok(Frame::Simple(
                "Background append only file rewriting scheduled".into(),
            ))
        }
        RewriteStart::Running => Err(Error::msg(crate::aof::REWRITE_IN_PROGRESS)),
        RewriteStart::Failed => Err(Error::msg(
            "ERR Can't execute an AOF background rewriting. Please check the server logs for more information.",
        )),
    }
}

/// The encoding options DUMP uses (`rdbcompression`, `list-max-listpack-size`).
pub fn encode_options(ctx: &Ctx<'_>) -> EncodeOptions {
    EncodeOptions {
        compression: ctx.srv.config.read().rdbcompression,
        list_fill: ctx.enc().list_max_listpack_size,
    }
}

fn dump_cmd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let opts = encode_options(ctx);
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let Some(e) = g.lookup_read(db, &args[1]) else {
        return Ok(Frame::Null);
    };
    Ok(Frame::Bulk(Bytes::from(dump::dump(e.value(), opts))))
}

fn restore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut replace = false;
    let mut absttl = false;
    let mut idle: Option<i64> = None;
    let mut freq: Option<i64> = None;
    let mut j = 4;
    while j < args.len() {
        let more = args.len() - j - 1;
        if is(&args[j], "replace") {
            replace = true;
        } else if is(&args[j], "absttl") {
            absttl = true;
        } else if is(&args[j], "idletime") && more >= 1 && freq.is_none() {
            let v = args::int(&args[j + 1])?;
            if v < 0 {
                return Err(Error::msg("ERR Invalid IDLETIME value, must be >= 0"));
            }
            idle = Some(v);
            j += 1;
        } else if is(&args[j], "freq") && more >= 1 && idle.is_none() {
            let v = args::int(&args[j + 1])?;
            if !(0..=255).contains(&v) {
                return Err(Error::msg(
                    "ERR Invalid FREQ value, must be >= 0 and <= 255",
                ));
            }
            freq = Some(v);
            j += 1;
        } else {
            return Err(Error::msg(error::SYNTAX));
        }
        j += 1;
    }
    let key = &args[1];
    let db = ctx.client.db;
    let limits = ctx.enc();
    let now = ctx.now;
    let mut g = ctx.srv.keyspace.lock_key(key, now);
    if !replace && g.exists(db, key) {
        return Err(Error::msg("BUSYKEY Target key name already exists."));
    }
    let ttl = args::int(&args[2])?;
    if ttl < 0 {
        return Err(Error::msg("ERR Invalid TTL value, must be >= 0"));
    }
    let mut value = match dump::restore(&args[3], &limits) {
        Ok(Some(v)) => v,
        Ok(None) => return Err(Error::msg("ERR Bad data format")),
        Err(dump::RestoreError::VersionOrChecksum) => {
            return Err(Error::msg("ERR DUMP payload version or checksum are wrong"));
        }
        Err(dump::RestoreError::BadFormat(e)) => {
            tracing::debug!("RESTORE: bad payload: {e}");
            return Err(Error::msg("ERR Bad data format"));
        }
    };
    let old = if replace { g.remove(db, key) } else { None };
    let deleted = match old {
        Some(old) => {
            crate::families::coord::removed(ctx.srv, &old.value, db, key);
            crate::families::jobs::removed(ctx.srv, &old.value, db, key);
            true
        }
        None => false,
    };
    let mut expire_at = 0u64;
    if ttl != 0 {
        let at = if absttl {
            ttl
        } else {
            ttl.saturating_add(now as i64)
        };
        if at <= now as i64 {
            // Already expired: the key is not created (an old one was deleted by REPLACE,
            // which Redis reports as `del`).
            if deleted {
                ctx.notify(ev::GENERIC, "del", key);
            }
            drop(g);
            // Logged as the deletion, if REPLACE deleted anything.
            if ctx.aof_on() {
                if deleted {
                    ctx.propagate(vec![Bytes::from_static(b"DEL"), key.clone()]);
                } else {
                    ctx.propagate_nothing();
                }
            }
            return Ok(Frame::ok());
        }
        expire_at = at as u64;
    }
    // A lock keeps the fence counter above its fence; its session grants are kept only
    // from the AOF's own effects (`docs/coordination.md`).
    let mut dropped = false;
    if let Value::Lock(l) = &mut value {
        let loader = ctx.client.id == crate::client::LOADER_CLIENT_ID;
        dropped = crate::families::coord::adopt(ctx.srv, db, key, l, now, loader);
    }
    crate::families::jobs::adopt(ctx.srv, &value, db, key);
    g.insert(db, key, value, expire_at);
    // Both were checked non-negative (FREQ at most 255) while parsing.
    g.restore_usage(db, key, idle.map(|i| i as u64), freq.map(|f| f as u8));
    ctx.notify(ev::GENERIC, "restore", key);
    // Session grants dropped from the payload: the AOF logs the value as restored (a
    // replay by the loader would keep the payload's grants).
    let effect =
        (dropped && ctx.aof_on()).then(|| crate::families::coord::state_effect(&mut g, db, key));
    drop(g);
    ctx.signal_ready(db, key);
    if let Some(e) = effect {
        ctx.propagate(e);
    } else if ctx.aof_on() && ttl != 0 && !absttl {
        // Logged with the absolute deadline, as Redis does.
        let mut effect = args.to_vec();
        effect[2] = crate::aof::int_arg(expire_at);
        effect.push(Bytes::from_static(b"ABSTTL"));
        ctx.propagate(effect);
    }
    Ok(Frame::ok())
}
