//! The server family: INFO, TIME, CONFIG, SHUTDOWN, LASTSAVE (SAVE and BGSAVE are in
//! the persistence family).

use crate::cmd::args::{self, is};
use crate::cmd::flags::*;
use crate::cmd::{Command, acl};
use crate::error::{self, CmdResult, Error};
use crate::families::keys::help_reply;
use crate::server::Ctx;
use basalt_proto::Frame;
use bytes::Bytes;
use std::sync::atomic::Ordering;

macro_rules! server_cmd {
    ($name:literal, $arity:expr, $flags:expr, $since:literal, $summary:literal, $h:expr) => {
        Command {
            name: $name,
            arity: $arity,
            flags: $flags,
            group: "server",
            since: $since,
            summary: $summary,
            handler: Some($h),
            ..Command::EMPTY
        }
    };
}

const CONFIG_SUBCOMMANDS: &[Command] = &[
    Command {
        complexity: "O(N) when N is the number of configuration parameters provided",
        ..server_cmd!(
            "get",
            -3,
            ADMIN | NOSCRIPT | LOADING | STALE,
            "2.0.0",
            "Returns the effective values of configuration parameters.",
            config_get
        )
    },
    Command {
        complexity: "O(N) when N is the number of configuration parameters provided",
        tips: &["request_policy:all_nodes", "response_policy:all_succeeded"],
        ..server_cmd!(
            "set",
            -4,
            ADMIN | NOSCRIPT | LOADING | STALE,
            "2.0.0",
            "Sets configuration parameters in-flight.",
            config_set
        )
    },
    Command {
        tips: &["request_policy:all_nodes", "response_policy:all_succeeded"],
        ..server_cmd!(
            "resetstat",
            2,
            ADMIN | NOSCRIPT | LOADING | STALE,
            "2.0.0",
            "Resets the server's statistics.",
            config_resetstat
        )
    },
    Command {
        tips: &["request_policy:all_nodes", "response_policy:all_succeeded"],
        ..server_cmd!(
            "rewrite",
            2,
            ADMIN | NOSCRIPT | LOADING | STALE,
            "2.8.0",
            "Persists the effective configuration to file.",
            config_rewrite
        )
    },
    server_cmd!(
        "help",
        2,
        LOADING | STALE,
        "5.0.0",
        "Returns helpful text about the different subcommands.",
        config_help
    ),
];

/// The server family's commands.
pub const COMMANDS: &[Command] = &[
    Command {
        acl: acl::DANGEROUS,
        complexity: "O(1)",
        tips: &[
            "nondeterministic_output",
            "request_policy:all_shards",
            "response_policy:special",
        ],
        ..server_cmd!(
            "info",
            -1,
            LOADING | STALE,
            "1.0.0",
            "Returns information and statistics about the server.",
            info
        )
    },
    Command {
        tips: &["nondeterministic_output"],
        ..server_cmd!(
            "time",
            1,
            LOADING | STALE | FAST,
            "2.6.0",
            "Returns the server time.",
            time
        )
    },
    Command {
        acl: acl::ADMIN | acl::DANGEROUS,
        tips: &["nondeterministic_output"],
        ..server_cmd!(
            "lastsave",
            1,
            LOADING | STALE | FAST,
            "1.0.0",
            "Returns the Unix timestamp of the last successful save to disk.",
            lastsave
        )
    },
    Command {
        complexity: "O(N) when saving, where N is the total number of keys in all databases when saving data, otherwise O(1)",
        ..server_cmd!(
            "shutdown",
            -1,
            ADMIN | NOSCRIPT | LOADING | STALE | NO_MULTI | ALLOW_BUSY,
            "1.0.0",
            "Synchronously saves the database(s) to disk and shuts down the Redis server.",
            shutdown
        )
    },
    Command {
        name: "config",
        arity: -2,
        group: "server",
        since: "2.0.0",
        summary: "A container for server configuration commands.",
        complexity: "Depends on subcommand.",
        subcommands: CONFIG_SUBCOMMANDS,
        ..Command::EMPTY
    },
];

fn info(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let sections: Vec<String> = args[1..]
        .iter()
        .map(|a| args::text(a).to_ascii_lowercase())
        .collect();
    let text = crate::info::render(ctx.srv, &sections);
    Ok(Frame::Verbatim {
        format: *b"txt",
        text: Bytes::from(text),
    })
}

fn time(_ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let us = crate::server::unix_us();
    Ok(Frame::Array(vec![
        Frame::Bulk(Bytes::from((us / 1_000_000).to_string())),
        Frame::Bulk(Bytes::from((us % 1_000_000).to_string())),
    ]))
}

fn lastsave(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    // The server start until the first successful save, as Redis.
    Ok(Frame::Integer(
        ctx.srv.persist.lastsave.load(Ordering::Relaxed) as i64,
    ))
}

fn shutdown(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut abort = false;
    let mut force = false;
    let mut mode = crate::persist::ShutdownSave::Default;
    for a in &args[1..] {
        if is(a, "nosave") {
            mode = crate::persist::ShutdownSave::NoSave;
        } else if is(a, "save") {
            mode = crate::persist::ShutdownSave::Save;
        } else if is(a, "now") {
            continue;
        } else if is(a, "force") {
            force = true;
        } else if is(a, "abort") {
            abort = true;
        } else {
            return Err(Error::msg(error::SYNTAX));
        }
    }
    if abort {
        if args.len() > 2 {
            return Err(Error::msg(error::SYNTAX));
        }
        return Err(Error::msg("ERR No shutdown in progress."));
    }
    // While a script is busy only SHUTDOWN NOSAVE may stop the server; the script is
    // stopped where it stands (its writes are not kept anyway).
    let run = &ctx.srv.scripting.run;
    if let Some(busy) = run.busy_error() {
        if !matches!(mode, crate::persist::ShutdownSave::NoSave) {
            return Err(Error::msg(busy));
        }
        run.force_kill();
    }
    if !crate::persist::prepare_shutdown(ctx.srv, mode, force) {
        return Err(Error::msg("ERR Errors trying to SHUTDOWN. Check logs."));
    }
    ctx.srv.request_shutdown();
    // Redis closes the connection without a reply on success.
    ctx.client.close_after_reply = true;
    ctx.client.reply = crate::server::ReplyMode::Skip;
    Ok(Frame::ok())
}

fn config_get(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let patterns: Vec<&[u8]> = args[2..].iter().map(|a| a.as_ref()).collect();
    let pairs = ctx.srv.config.read().get_many(&patterns);
    Ok(Frame::Map(
        pairs
            .into_iter()
            .map(|(k, v)| (Frame::Bulk(Bytes::from(k)), Frame::Bulk(Bytes::from(v))))
            .collect(),
    ))
}

fn config_set(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if !args.len().is_multiple_of(2) {
        return Err(Error::msg(error::SYNTAX));
    }
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = args[2..]
        .chunks_exact(2)
        .map(|p| (p[0].to_vec(), p[1].to_vec()))
        .collect();
    // `enable-protected-configs local` lets loopback clients change protected settings.
    let local = is_loopback(&ctx.client.shared.addr);
    let mut cfg = ctx.srv.config.write();
    let before = cfg.clone();
    let changes = cfg.set_many_from(&pairs, local).map_err(Error::msg)?;
    if changes.iter().any(|c| c.name == "dir")
        && let Err(e) = std::env::set_current_dir(&cfg.dir)
    {
        // Applying failed: the whole CONFIG SET must leave nothing changed.
        *cfg = before;
        let reason = e.to_string();
        let reason = reason
            .split(" (os error")
            .next()
            .unwrap_or(&reason)
            .to_string();
        return Err(Error::msg(crate::config::set_failed("dir", &reason)));
    }
    let appendonly = cfg.appendonly;
    drop(cfg);
    ctx.srv.apply_live_config();
    if changes.iter().any(|c| c.name == "appendonly") {
        // Turning the AOF on writes a base first (in the background), as Redis does.
        crate::aof::set_enabled(ctx.srv, appendonly);
    }
    Ok(Frame::ok())
}

/// Whether a client address (`ip:port`) is a loopback one (`local` guarded features).
pub(crate) fn is_loopback(addr: &str) -> bool {
    addr.parse::<std::net::SocketAddr>()
        .map(|a| a.ip().is_loopback())
        .unwrap_or(false)
}

fn config_resetstat(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let srv = ctx.srv;
    for st in &srv.cmd_stats {
        st.rejected.store(0, Ordering::Relaxed);
        st.failed.store(0, Ordering::Relaxed);
    }
    srv.call_stats.reset();
    srv.error_stats.lock().clear();
    let s = &srv.stats;
    for c in [
        &s.connections_received,
        &s.rejected_connections,
        &s.net_input_bytes,
        &s.net_output_bytes,
        &s.total_error_replies,
        &s.unexpected_error_replies,
        &s.client_query_buffer_limit_disconnections,
        &s.expired_time_cap_reached,
        &s.eviction_usec,
        &s.expire_cycle_usec,
        &s.expired_stale,
    ] {
        c.store(0, Ordering::Relaxed);
    }
    srv.keyspace.reset_stats();
    srv.peak_memory
        .store(crate::alloc::allocated() as u64, Ordering::Relaxed);
    Ok(Frame::ok())
}

fn config_rewrite(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let cfg = ctx.srv.config.read();
    match cfg.rewrite_config_file() {
        Ok(()) => {
            tracing::info!("CONFIG REWRITE executed with success.");
            Ok(Frame::ok())
        }
        Err(e) => {
            tracing::warn!("CONFIG REWRITE failed: {e}");
            Err(Error::msg(e))
        }
    }
}

fn config_help(_ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    Ok(help_reply(
        "CONFIG",
        &[
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>",
            "    Set the configuration <directive> to <value>.",
            "RESETSTAT",
            "    Reset statistics reported by the INFO command.",
            "REWRITE",
            "    Rewrite the configuration file.",
        ],
    ))
}
