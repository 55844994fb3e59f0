//! `DEBUG`, allowed only by `enable-debug-command` (`no` by default, as in Redis 7.0).
//!
//! The subcommands clients and test suites use are implemented: `RELOAD [MERGE]
//! [NOFLUSH] [NOSAVE]`, `OBJECT key`, `SLEEP seconds`, `SET-ACTIVE-EXPIRE 0|1` and
//! `HELP`. The rest of Redis's list (crash helpers, allocator tuning, replication
//! helpers...) answers Redis's unknown-subcommand error.
//!
//! `DEBUG SLEEP` stops the whole of Redis; in Basalt it stops only the calling client's
//! connection, and does so on a thread the runtime has handed its other tasks away from
//! (`block_in_place`), so other clients keep being served meanwhile.

use crate::cmd::args::is;
use crate::cmd::flags::*;
use crate::cmd::{Command, acl};
use crate::error::{CmdResult, Error};
use crate::families::keys::help_reply;
use crate::families::persistence::encode_options;
use crate::server::Ctx;
use basalt_engine::{StrRef, Value, ValueRef};
use basalt_persist::dump;
use basalt_proto::Frame;
use bytes::Bytes;
use std::sync::atomic::Ordering;

/// The refusal Redis 7.0 sends when `enable-debug-command` does not allow the client.
pub const NOT_ALLOWED: &str = "ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.";

/// The longest `DEBUG SLEEP` Basalt accepts, in seconds (a day; longer is an error).
pub const MAX_SLEEP_SECS: f64 = 86_400.0;

/// The debug family's commands.
pub const COMMANDS: &[Command] = &[Command {
    name: "debug",
    arity: -2,
    flags: ADMIN | NOSCRIPT | LOADING | STALE,
    acl: acl::ADMIN | acl::DANGEROUS,
    group: "server",
    since: "1.0.0",
    summary: "A container for debugging commands",
    complexity: "Depends on subcommand.",
    handler: Some(debug),
    ..Command::EMPTY
}];

fn unknown(sub: &[u8]) -> Error {
    Error::msg(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try DEBUG HELP.",
        String::from_utf8_lossy(sub)
    ))
}

fn debug(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let local = crate::families::server::is_loopback(&ctx.client.shared.addr);
    if !ctx.srv.config.read().enable_debug_command.allows(local) {
        return Err(Error::msg(NOT_ALLOWED));
    }
    let sub = &args[1];
    let n = args.len();
    if is(sub, "help") && n == 2 {
        Ok(help())
    } else if is(sub, "reload") {
        reload(ctx, &args[2..])
    } else if is(sub, "object") && n == 3 {
        object(ctx, &args[2])
    } else if is(sub, "sleep") && n == 3 {
        sleep(&args[2])
    } else if is(sub, "set-active-expire") && n == 3 {
        let on = atoi(&args[2]) != 0;
        ctx.srv.live.active_expire.store(on, Ordering::Relaxed);
        Ok(Frame::ok())
    } else {
        Err(unknown(sub))
    }
}

/// C's `atoi`: leading blanks, an optional sign, digits; anything else ends the number.
fn atoi(b: &[u8]) -> i64 {
    let s = String::from_utf8_lossy(b);
    let s = s.trim_start();
    let (neg, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut v: i64 = 0;
    for c in rest.bytes().take_while(u8::is_ascii_digit) {
        v = v.saturating_mul(10).saturating_add(i64::from(c - b'0'));
    }
    if neg { -v } else { v }
}

/// C's `strtod` on the longest numeric prefix (0 when there is none), as Redis parses
/// `DEBUG SLEEP`'s argument.
fn strtod(b: &[u8]) -> f64 {
    let s = String::from_utf8_lossy(b);
    let s = s.trim_start();
    (1..=s.len())
        .rev()
        .filter(|&i| s.is_char_boundary(i))
        .find_map(|i| s[..i].parse::<f64>().ok())
        .unwrap_or(0.0)
}

fn reload(ctx: &mut Ctx<'_>, opts: &[Bytes]) -> CmdResult {
    let (mut save, mut flush, mut merge) = (true, true, false);
    for o in opts {
        if is(o, "merge") {
            merge = true;
        } else if is(o, "noflush") {
            flush = false;
        } else if is(o, "nosave") {
            save = false;
        } else {
            return Err(Error::msg(
                "ERR DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.",
            ));
        }
    }
    match crate::persist::debug_reload(ctx.srv, save, flush, merge) {
        Ok(()) => Ok(Frame::ok()),
        Err(e) => {
            tracing::warn!("DEBUG RELOAD: {e}");
            Err(Error::msg(
                "ERR Error trying to load the RDB dump, check server logs.",
            ))
        }
    }
}

fn sleep(arg: &[u8]) -> CmdResult {
    let secs = strtod(arg);
    if !secs.is_finite() || secs > MAX_SLEEP_SECS {
        return Err(Error::msg(format!(
            "ERR DEBUG SLEEP is limited to {MAX_SLEEP_SECS} seconds in Basalt"
        )));
    }
    if secs > 0.0 {
        let d = std::time::Duration::from_secs_f64(secs);
        let multi = tokio::runtime::Handle::try_current()
            .map(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
            .unwrap_or(false);
        if multi {
            tokio::task::block_in_place(|| std::thread::sleep(d));
        } else {
            std::thread::sleep(d);
        }
    }
    Ok(Frame::ok())
}

/// `DEBUG OBJECT key`: Redis's line. `serializedlength` is the length of the value in
/// RDB form (what DUMP holds but the type byte and footer); `lru` is the access clock in
/// seconds modulo 2^24 as Redis's LRU clock. Lists add Redis's `ql_*` fields computed from
/// Basalt's nodes (`ql_compressed` is always 0: Basalt does not compress list nodes).
fn object(ctx: &mut Ctx<'_>, key: &[u8]) -> CmdResult {
    let opts = encode_options(ctx);
    let db = ctx.client.db;
    let now_secs = ctx.now / 1000;
    let mut g = ctx.srv.keyspace.lock_key(key, ctx.now);
    let Some(e) = g.peek(db, key) else {
        return Err(Error::msg("ERR no such key"));
    };
    let refcount: i64 = match e.value() {
        ValueRef::Str(StrRef::Int(i)) if (0..10_000).contains(&i) => i64::from(i32::MAX),
        _ => 1,
    };
    let serialized = dump::dump(e.value(), opts).len().saturating_sub(11);
    let access = e.access_secs();
    let mut line = format!(
        "Value at:{:p} refcount:{refcount} encoding:{} serializedlength:{serialized} lru:{} lru_seconds_idle:{}",
        value_address(e.value()),
        e.value().encoding(),
        access,
        e.idle_secs(now_secs * 1000),
    );
    if let ValueRef::Other(Value::List(l)) = e.value() {
        let nodes = l.node_count();
        let avg = if nodes == 0 {
            0.0
        } else {
            l.len() as f64 / nodes as f64
        };
        line.push_str(&format!(
            " ql_nodes:{nodes} ql_avg_node:{avg:.2} ql_listpack_max:{} ql_compressed:0 ql_uncompressed_size:{}",
            opts.list_fill,
            l.heap_size()
        ));
    }
    Ok(Frame::Simple(Bytes::from(line)))
}

fn help() -> Frame {
    help_reply(
        "DEBUG",
        &[
            "OBJECT <key>",
            "    Show low level info about `key` and associated value.",
            "RELOAD [option ...]",
            "    Save the RDB on disk and reload it back to memory. Valid <option> values:",
            "    * MERGE: conflicting keys will be loaded from RDB.",
            "    * NOFLUSH: the existing database will not be removed before load, but",
            "      conflicting keys will generate an error.",
            "    * NOSAVE: the database will be loaded from an existing RDB file.",
            "    Examples:",
            "    * DEBUG RELOAD: verify that the server is able to persist, flush and reload",
            "      the database.",
            "    * DEBUG RELOAD NOSAVE: replace the current database with the contents of an",
            "      existing RDB file.",
            "    * DEBUG RELOAD NOSAVE NOFLUSH MERGE: add the contents of an existing RDB",
            "      file to the database.",
            "SET-ACTIVE-EXPIRE <0|1>",
            "    Setting it to 0 disables expiring keys in background when they are not",
            "    accessed (otherwise the Redis behavior). Setting it to 1 reenables back the",
            "    default.",
            "SLEEP <seconds>",
            "    Stop the server for <seconds>. Decimals allowed.",
        ],
    )
}

/// The address DEBUG OBJECT prints for a value: where its data lives (a string's bytes,
/// a collection's box), or null for an integer kept in place.
fn value_address(v: ValueRef<'_>) -> *const u8 {
    match v {
        ValueRef::Other(v) => std::ptr::from_ref(v).cast(),
        ValueRef::Str(s) => s.stored_bytes().map_or(std::ptr::null(), <[u8]>::as_ptr),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atoi_like_c() {
        assert_eq!(atoi(b"1"), 1);
        assert_eq!(atoi(b"2"), 2);
        assert_eq!(atoi(b" -3x"), -3);
        assert_eq!(atoi(b"x"), 0);
    }

    #[test]
    fn strtod_like_c() {
        assert_eq!(strtod(b"0.5"), 0.5);
        assert_eq!(strtod(b"x"), 0.0);
        assert_eq!(strtod(b"1.5abc"), 1.5);
    }
}
