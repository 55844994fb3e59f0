//! The transactions family: MULTI, EXEC, DISCARD, WATCH, UNWATCH.
//!
//! MULTI starts queueing: the connection answers `+QUEUED` to every later command but
//! these five, QUIT and RESET ([`crate::server::Server::queue_in_multi`]). A command
//! refused while queueing (unknown, wrong arity, not allowed in a transaction) makes EXEC
//! answer EXECABORT. EXEC runs with the server's exec gate held for writing, so the queued
//! commands run with no other command in between (on any shard), then checks the WATCHed
//! keys and runs the queue. Runtime errors of queued commands are returned in place; the
//! other commands still run (nothing is rolled back), as in Redis.

use crate::cmd::flags::*;
use crate::cmd::{Command, KeySpec, acl};
use crate::error::{CmdResult, Error};
use crate::server::Ctx;
use crate::transaction::{MultiState, key_aborts};
use basalt_proto::Frame;
use bytes::Bytes;
use std::sync::atomic::Ordering;

const RO: &[&str] = &["RO"];

macro_rules! tx_cmd {
    ($name:literal, $arity:expr, $flags:expr, $since:literal, $summary:literal, $cx:literal, $h:expr) => {
        Command {
            name: $name,
            arity: $arity,
            flags: $flags,
            acl: acl::TRANSACTION,
            group: "transactions",
            since: $since,
            summary: $summary,
            complexity: $cx,
            handler: Some($h),
            ..Command::EMPTY
        }
    };
}

/// The family's commands.
pub const COMMANDS: &[Command] = &[
    tx_cmd!(
        "multi",
        1,
        NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        "1.2.0",
        "Mark the start of a transaction block",
        "O(1)",
        multi
    ),
    tx_cmd!(
        "exec",
        1,
        NOSCRIPT | LOADING | STALE | SKIP_SLOWLOG | EXCLUSIVE,
        "1.2.0",
        "Execute all commands issued after MULTI",
        "Depends on commands in the transaction",
        exec
    ),
    tx_cmd!(
        "discard",
        1,
        NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        "2.0.0",
        "Discard all commands issued after MULTI",
        "O(N), when N is the number of queued commands",
        discard
    ),
    Command {
        keys: (1, -1, 1),
        key_specs: &[KeySpec::rest(1, 1, RO)],
        ..tx_cmd!(
            "watch",
            -2,
            NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
            "2.2.0",
            "Watch the given keys to determine execution of the MULTI/EXEC block",
            "O(1) for every key.",
            watch
        )
    },
    tx_cmd!(
        "unwatch",
        1,
        NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        "2.2.0",
        "Forget about all watched keys",
        "O(1)",
        unwatch
    ),
];

fn multi(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(Error::msg("ERR MULTI calls can not be nested"));
    }
    ctx.client.multi = Some(MultiState::default());
    ctx.client.shared.multi.store(0, Ordering::Relaxed);
    Ok(Frame::ok())
}

fn discard(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    if ctx.client.multi.is_none() {
        return Err(Error::msg("ERR DISCARD without MULTI"));
    }
    ctx.srv.end_transaction(ctx.client);
    Ok(Frame::ok())
}

/// True when a WATCHed key was modified, or expired, since WATCH.
fn watch_broken(ctx: &Ctx<'_>) -> bool {
    let w = &ctx.client.watch;
    if w.dirty.load(Ordering::Relaxed) {
        return true;
    }
    w.keys.iter().any(|(db, key, watcher)| {
        let stored = ctx.srv.keyspace.lock_key(key, ctx.now).stored(*db, key);
        key_aborts(watcher, stored.is_some(), stored == Some(true))
    })
}

fn exec(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    if ctx.client.multi.is_none() {
        return Err(Error::msg("ERR EXEC without MULTI"));
    }
    // EXEC is EXCLUSIVE: `Server::execute` holds the exec gate for writing, so no other
    // command runs until the transaction is done, and touches of watched keys by
    // commands that ran before are complete.
    let srv = ctx.srv;
    let broken = watch_broken(ctx);
    let Some(state) = srv.end_transaction(ctx.client) else {
        return Err(Error::msg("ERR EXEC without MULTI"));
    };
    if state.aborted {
        return Err(Error::msg(
            "EXECABORT Transaction discarded because of previous errors.",
        ));
    }
    if broken {
        return Ok(Frame::NullArray);
    }
    let mut replies = Vec::with_capacity(state.queued.len());
    ctx.client.in_exec = true;
    // The effects are collected and logged together, as MULTI ... EXEC.
    let logging = srv.aof.is_on();
    if logging {
        ctx.client.aof_exec = Some(Vec::new());
    }
    for (id, args) in &state.queued {
        let resolved = &srv.commands.entries()[*id];
        let reply = srv.call(ctx.client, resolved, args, ctx.now);
        // Blocking commands answer at once inside a transaction; a handler that asked to
        // block anyway gets the timeout reply it already returned.
        ctx.client.block = None;
        // Reply placement marks are for top-level replies: inside EXEC, confirmations
        // queued by SUBSCRIBE and notifications go out before the EXEC array (Redis
        // writes them inside it, see docs/messaging.md), and the element is kept.
        ctx.client.reply_in_outbox = false;
        ctx.client.reply_at = None;
        replies.push(reply);
    }
    ctx.client.in_exec = false;
    if let Some(effects) = ctx.client.aof_exec.take()
        && !effects.is_empty()
    {
        ctx.client.aof_seq = srv.aof.append(&effects);
    }
    // EXEC itself is not logged: its effects are.
    ctx.propagate_nothing();
    Ok(Frame::Array(replies))
}

fn watch(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(Error::msg("ERR WATCH inside MULTI is not allowed"));
    }
    let db = ctx.client.db;
    for key in &args[1..] {
        let stored = ctx.srv.keyspace.lock_key(key, ctx.now).stored(db, key);
        ctx.srv
            .watches
            .watch(&mut ctx.client.watch, db, key, stored == Some(true));
    }
    Ok(Frame::ok())
}

fn unwatch(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    ctx.srv.watches.unwatch_all(&mut ctx.client.watch);
    Ok(Frame::ok())
}
