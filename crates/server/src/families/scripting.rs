//! The scripting family: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, SCRIPT, FCALL, FCALL_RO,
//! FUNCTION.
//!
//! EVAL and FCALL run with the exec gate held for writing (flag `EXCLUSIVE`, taken by
//! `Server::execute`), so a script is atomic across shards; the engines live in
//! [`crate::scripting`]. SCRIPT KILL, FUNCTION KILL and FUNCTION STATS are `allow_busy`:
//! they run without the gate while a script is busy.

use crate::cmd::args::{self, is};
use crate::cmd::flags::*;
use crate::cmd::{BeginSearch, Command, FindKeys, KeySpec, acl};
use crate::error::{CmdResult, Error};
use crate::scripting::run::{Spec, run};
use crate::scripting::{self, dump, flags as sflags};
use crate::server::{Ctx, Server};
use basalt_proto::Frame;
use bytes::Bytes;
use std::sync::atomic::Ordering;

/// EVAL-style key spec: a key count at index 2, then the keys.
const fn keynum_spec(notes: &'static str, flags: &'static [&'static str]) -> KeySpec {
    KeySpec {
        notes,
        flags,
        begin: BeginSearch::Index(2),
        find: FindKeys::Keynum {
            keynumidx: 0,
            firstkey: 1,
            step: 1,
        },
    }
}

const RW_NOTE: &str =
    "We cannot tell how the keys will be used so we assume the worst, RW and UPDATE";
const RO_NOTE: &str =
    "We cannot tell how the keys will be used so we assume the worst, RO and ACCESS";
const RW: &[&str] = &["RW", "access", "update"];
const RO: &[&str] = &["RO", "access"];
const EVAL_RW: &[KeySpec] = &[keynum_spec(RW_NOTE, RW)];
const EVALSHA_RW: &[KeySpec] = &[keynum_spec("", RW)];
const EVAL_RO: &[KeySpec] = &[keynum_spec(RO_NOTE, RO)];
const EVALSHA_RO: &[KeySpec] = &[keynum_spec("", RO)];

macro_rules! script_cmd {
    ($name:literal, $arity:expr, $flags:expr, $specs:expr, $since:literal, $summary:literal, $cx:literal, $h:expr) => {
        Command {
            name: $name,
            arity: $arity,
            flags: $flags,
            acl: acl::SCRIPTING,
            key_specs: $specs,
            group: "scripting",
            since: $since,
            summary: $summary,
            complexity: $cx,
            handler: Some($h),
            ..Command::EMPTY
        }
    };
}

const RUN_FLAGS: u32 =
    NOSCRIPT | SKIP_MONITOR | MAY_REPLICATE | NO_MANDATORY_KEYS | STALE | MOVABLE_KEYS | EXCLUSIVE;
const RUN_RO_FLAGS: u32 =
    NOSCRIPT | SKIP_MONITOR | NO_MANDATORY_KEYS | STALE | READONLY | MOVABLE_KEYS | EXCLUSIVE;

const SCRIPT_SUBCOMMANDS: &[Command] = &[
    script_cmd!(
        "debug",
        3,
        NOSCRIPT,
        &[],
        "3.2.0",
        "Sets the debug mode of server-side Lua scripts.",
        "O(1)",
        script_debug
    ),
    Command {
        tips: &[
            "request_policy:all_shards",
            "response_policy:agg_logical_and",
        ],
        ..script_cmd!(
            "exists",
            -3,
            NOSCRIPT,
            &[],
            "2.6.0",
            "Determines whether server-side Lua scripts exist in the script cache.",
            "O(N) with N being the number of scripts to check (so checking a single script is an O(1) operation).",
            script_exists
        )
    },
    Command {
        tips: &["request_policy:all_nodes", "response_policy:all_succeeded"],
        ..script_cmd!(
            "flush",
            -2,
            NOSCRIPT,
            &[],
            "2.6.0",
            "Removes all server-side Lua scripts from the script cache.",
            "O(N) with N being the number of scripts in cache",
            script_flush
        )
    },
    script_cmd!(
        "help",
        2,
        LOADING | STALE,
        &[],
        "5.0.0",
        "Returns helpful text about the different subcommands.",
        "O(1)",
        script_help
    ),
    Command {
        tips: &["request_policy:all_shards", "response_policy:one_succeeded"],
        ..script_cmd!(
            "kill",
            2,
            NOSCRIPT | ALLOW_BUSY,
            &[],
            "2.6.0",
            "Terminates a server-side Lua script during execution.",
            "O(1)",
            script_kill
        )
    },
    Command {
        tips: &["request_policy:all_nodes", "response_policy:all_succeeded"],
        ..script_cmd!(
            "load",
            3,
            NOSCRIPT | STALE,
            &[],
            "2.6.0",
            "Loads a server-side Lua script to the script cache.",
            "O(N) with N being the length in bytes of the script body.",
            script_load
        )
    },
];

const FUNCTION_SUBCOMMANDS: &[Command] = &[
    Command {
        tips: &["request_policy:all_shards", "response_policy:all_succeeded"],
        ..script_cmd!(
            "delete",
            3,
            WRITE | NOSCRIPT,
            &[],
            "7.0.0",
            "Deletes a library and its functions.",
            "O(1)",
            function_delete
        )
    },
    script_cmd!(
        "dump",
        2,
        NOSCRIPT,
        &[],
        "7.0.0",
        "Dumps all libraries into a serialized binary payload.",
        "O(N) where N is the number of functions",
        function_dump
    ),
    Command {
        tips: &["request_policy:all_shards", "response_policy:all_succeeded"],
        ..script_cmd!(
            "flush",
            -2,
            WRITE | NOSCRIPT,
            &[],
            "7.0.0",
            "Deletes all libraries and functions.",
            "O(N) where N is the number of functions deleted",
            function_flush
        )
    },
    script_cmd!(
        "help",
        2,
        LOADING | STALE,
        &[],
        "7.0.0",
        "Returns helpful text about the different subcommands.",
        "O(1)",
        function_help
    ),
    Command {
        tips: &["request_policy:all_shards", "response_policy:one_succeeded"],
        ..script_cmd!(
            "kill",
            2,
            NOSCRIPT | ALLOW_BUSY,
            &[],
            "7.0.0",
            "Terminates a function during execution.",
            "O(1)",
            function_kill
        )
    },
    Command {
        tips: &["nondeterministic_output_order"],
        ..script_cmd!(
            "list",
            -2,
            NOSCRIPT,
            &[],
            "7.0.0",
            "Returns information about all libraries.",
            "O(N) where N is the number of functions",
            function_list
        )
    },
    Command {
        tips: &["request_policy:all_shards", "response_policy:all_succeeded"],
        ..script_cmd!(
            "load",
            -3,
            WRITE | DENYOOM | NOSCRIPT,
            &[],
            "7.0.0",
            "Creates a library.",
            "O(1) (considering compilation time is redundant)",
            function_load
        )
    },
    Command {
        tips: &["request_policy:all_shards", "response_policy:all_succeeded"],
        ..script_cmd!(
            "restore",
            -3,
            WRITE | DENYOOM | NOSCRIPT,
            &[],
            "7.0.0",
            "Restores all libraries from a payload.",
            "O(N) where N is the number of functions on the payload",
            function_restore
        )
    },
    Command {
        tips: &[
            "nondeterministic_output",
            "request_policy:all_shards",
            "response_policy:special",
        ],
        ..script_cmd!(
            "stats",
            2,
            NOSCRIPT | ALLOW_BUSY,
            &[],
            "7.0.0",
            "Returns information about a function during execution.",
            "O(1)",
            function_stats
        )
    },
];

/// The family's commands.
pub const COMMANDS: &[Command] = &[
    Command {
        flags_of: Some(eval_flags),
        ..script_cmd!(
            "eval",
            -3,
            RUN_FLAGS,
            EVAL_RW,
            "2.6.0",
            "Executes a server-side Lua script.",
            "Depends on the script that is executed.",
            eval
        )
    },
    Command {
        flags_of: Some(eval_flags),
        ..script_cmd!(
            "evalsha",
            -3,
            RUN_FLAGS,
            EVALSHA_RW,
            "2.6.0",
            "Executes a server-side Lua script by SHA1 digest.",
            "Depends on the script that is executed.",
            evalsha
        )
    },
    Command {
        flags_of: Some(eval_flags),
        ..script_cmd!(
            "eval_ro",
            -3,
            RUN_RO_FLAGS,
            EVAL_RO,
            "7.0.0",
            "Executes a read-only server-side Lua script.",
            "Depends on the script that is executed.",
            eval_ro
        )
    },
    Command {
        flags_of: Some(eval_flags),
        ..script_cmd!(
            "evalsha_ro",
            -3,
            RUN_RO_FLAGS,
            EVALSHA_RO,
            "7.0.0",
            "Executes a read-only server-side Lua script by SHA1 digest.",
            "Depends on the script that is executed.",
            evalsha_ro
        )
    },
    Command {
        flags_of: Some(fcall_flags),
        ..script_cmd!(
            "fcall",
            -3,
            RUN_FLAGS,
            EVAL_RW,
            "7.0.0",
            "Invokes a function.",
            "Depends on the function that is executed.",
            fcall
        )
    },
    Command {
        flags_of: Some(fcall_flags),
        ..script_cmd!(
            "fcall_ro",
            -3,
            RUN_RO_FLAGS,
            EVAL_RO,
            "7.0.0",
            "Invokes a read-only function.",
            "Depends on the function that is executed.",
            fcall_ro
        )
    },
    Command {
        name: "script",
        arity: -2,
        group: "scripting",
        since: "2.6.0",
        summary: "A container for Lua scripts management commands.",
        complexity: "Depends on subcommand.",
        subcommands: SCRIPT_SUBCOMMANDS,
        ..Command::EMPTY
    },
    Command {
        name: "function",
        arity: -2,
        group: "scripting",
        since: "7.0.0",
        summary: "A container for function commands.",
        complexity: "Depends on subcommand.",
        subcommands: FUNCTION_SUBCOMMANDS,
        ..Command::EMPTY
    },
];

/// Redis's `scriptFlagsToCmdFlags`: a script that declares flags (a shebang, or any
/// function) runs with what it declares instead of the command's `write`, `denyoom`,
/// `stale` and `may-replicate`: `write` unless `no-writes`, `denyoom` unless `no-writes`
/// or `allow-oom`, `stale` with `allow-stale`. A script without flags keeps the
/// command's (EVAL: `may-replicate`, no `denyoom`).
fn script_cmd_flags(cmd_flags: u32, script_flags: u32) -> u32 {
    if script_flags & sflags::EVAL_COMPAT != 0 {
        return cmd_flags;
    }
    let mut f = cmd_flags & !(STALE | DENYOOM | WRITE | MAY_REPLICATE);
    if script_flags & (sflags::ALLOW_OOM | sflags::NO_WRITES) == 0 {
        f |= DENYOOM;
    }
    if script_flags & sflags::NO_WRITES == 0 {
        f |= WRITE;
    }
    if script_flags & sflags::ALLOW_STALE != 0 {
        f |= STALE;
    }
    f
}

/// The flags an EVAL* request runs with (Redis's `evalGetCommandFlags`): those of its
/// script, from the shebang of EVAL's body or from the cached script EVALSHA names. An
/// unknown SHA1 or a bad shebang keeps the command's flags (the handler then fails). So
/// does a script cache held by a running script: a connection never waits for it here
/// (the script's own start checks still apply).
fn eval_flags(srv: &Server, cmd: &Command, args: &[Bytes]) -> u32 {
    let script_flags = if cmd.name.starts_with("evalsha") {
        let Some(id) = scripting::script_id(&args[1]) else {
            return cmd.flags;
        };
        let Some(engine) = srv.scripting.eval.try_lock() else {
            return cmd.flags;
        };
        match engine.scripts.get(&id) {
            Some(script) => script.flags,
            None => return cmd.flags,
        }
    } else {
        match scripting::shebang_flags(&args[1]) {
            Ok((f, _)) => f,
            Err(_) => return cmd.flags,
        }
    };
    script_cmd_flags(cmd.flags, script_flags)
}

/// The flags an FCALL* request runs with (Redis's `fcallGetCommandFlags`): those of the
/// function (functions always have flags). Unknown function, or libraries held by a
/// running function or a load: the command's.
fn fcall_flags(srv: &Server, cmd: &Command, args: &[Bytes]) -> u32 {
    let Some(engine) = srv.scripting.functions.try_lock() else {
        return cmd.flags;
    };
    match engine.function(&String::from_utf8_lossy(&args[1])) {
        Some(f) => script_cmd_flags(cmd.flags, f.flags),
        None => cmd.flags,
    }
}

/// `numkeys` of EVAL/FCALL: the keys and the remaining arguments.
fn split_keys<'a>(
    args: &'a [Bytes],
    bad_number: &str,
) -> Result<(&'a [Bytes], &'a [Bytes]), Error> {
    let n = basalt_engine::num::parse_i64(&args[2]).ok_or_else(|| Error::msg(bad_number))?;
    if n > (args.len() - 3) as i64 {
        return Err(Error::msg(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    if n < 0 {
        return Err(Error::msg("ERR Number of keys can't be negative"));
    }
    let n = n as usize;
    Ok((&args[3..3 + n], &args[3 + n..]))
}

const NOSCRIPT_ERR: &str = "NOSCRIPT No matching script. Please use EVAL.";
const RO_WRITE_FLAG: &str = "ERR Can not execute a script with write flag using *_ro command.";

fn eval_generic(ctx: &mut Ctx<'_>, args: &[Bytes], evalsha: bool, ro: bool) -> CmdResult {
    if evalsha && args[1].len() != 40 {
        return Err(Error::msg(NOSCRIPT_ERR));
    }
    let (keys, argv) = split_keys(args, crate::error::NOT_INTEGER)?;
    let srv = ctx.srv;
    let mut engine = srv.scripting.eval.lock();
    let sha = if evalsha {
        scripting::script_id(&args[1]).ok_or_else(|| Error::msg(NOSCRIPT_ERR))?
    } else {
        scripting::body_id(&args[1])
    };
    if !engine.scripts.contains_key(&sha) {
        if evalsha {
            return Err(Error::msg(NOSCRIPT_ERR));
        }
        engine
            .create(&args[1])
            .map_err(|e| Error::msg(format!("ERR {e}")))?;
    }
    let Some(script) = engine.scripts.get(&sha) else {
        return Err(Error::msg(NOSCRIPT_ERR));
    };
    let compat = script.flags & sflags::EVAL_COMPAT != 0;
    if !compat && script.flags & sflags::NO_WRITES == 0 && ro {
        return Err(Error::msg(RO_WRITE_FLAG));
    }
    if !compat
        && script.flags & (sflags::NO_WRITES | sflags::ALLOW_OOM) == 0
        && srv.over_maxmemory()
    {
        return Err(Error::msg(
            "OOM allow-oom flag is not set on the script, can not run it when used memory > 'maxmemory'",
        ));
    }
    let read_only = ro || (!compat && script.flags & sflags::NO_WRITES != 0);
    let deny_oom = script.flags & sflags::ALLOW_OOM == 0 && srv.over_maxmemory();
    run(
        &engine.vm,
        ctx,
        &srv.scripting.run,
        Spec {
            func: &script.func,
            name: scripting::id_text(&sha),
            eval: true,
            read_only,
            deny_oom,
            keys,
            args: argv,
            command: args,
        },
    )
}

fn eval(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    eval_generic(ctx, args, false, false)
}

fn evalsha(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    eval_generic(ctx, args, true, false)
}

fn eval_ro(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    eval_generic(ctx, args, false, true)
}

fn evalsha_ro(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    eval_generic(ctx, args, true, true)
}

fn fcall_generic(ctx: &mut Ctx<'_>, args: &[Bytes], ro: bool) -> CmdResult {
    let srv = ctx.srv;
    let engine = srv.scripting.functions.lock();
    let name = String::from_utf8_lossy(&args[1]).into_owned();
    let Some(f) = engine.function(&name) else {
        return Err(Error::msg("ERR Function not found"));
    };
    let (keys, argv) = split_keys(args, "ERR Bad number of keys provided")?;
    if f.flags & sflags::NO_WRITES == 0 && ro {
        return Err(Error::msg(RO_WRITE_FLAG));
    }
    if f.flags & (sflags::NO_WRITES | sflags::ALLOW_OOM) == 0 && srv.over_maxmemory() {
        return Err(Error::msg(
            "OOM allow-oom flag is not set on the script, can not run it when used memory > 'maxmemory'",
        ));
    }
    let read_only = ro || f.flags & sflags::NO_WRITES != 0;
    let deny_oom = f.flags & sflags::ALLOW_OOM == 0 && srv.over_maxmemory();
    let func = f.func.clone();
    run(
        &engine.vm,
        ctx,
        &srv.scripting.run,
        Spec {
            func: &func,
            name: &name,
            eval: false,
            read_only,
            deny_oom,
            keys,
            args: argv,
            command: args,
        },
    )
}

fn fcall(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    fcall_generic(ctx, args, false)
}

fn fcall_ro(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    fcall_generic(ctx, args, true)
}

fn help(container: &str, lines: &[&str]) -> Frame {
    let mut out = vec![Frame::Simple(Bytes::from(format!(
        "{container} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    )))];
    out.extend(
        lines
            .iter()
            .chain(["HELP", "    Prints this help."].iter())
            .map(|l| Frame::Simple(Bytes::copy_from_slice(l.as_bytes()))),
    );
    Frame::Array(out)
}

fn script_help(_ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    Ok(help(
        "SCRIPT",
        &[
            "DEBUG (YES|SYNC|NO)",
            "    Set the debug mode for subsequent scripts executed.",
            "EXISTS <sha1> [<sha1> ...]",
            "    Return information about the existence of the scripts in the script cache.",
            "FLUSH [ASYNC|SYNC]",
            "    Flush the Lua scripts cache. Very dangerous on replicas.",
            "    When called without the optional mode argument, the behavior is determined by the",
            "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
            "    * ASYNC: Asynchronously flush the scripts cache.",
            "    * SYNC: Synchronously flush the scripts cache.",
            "KILL",
            "    Kill the currently executing Lua script.",
            "LOAD <script>",
            "    Load a script into the scripts cache without executing it.",
        ],
    ))
}

fn script_debug(_ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if is(&args[2], "no") {
        return Ok(Frame::ok());
    }
    if is(&args[2], "yes") || is(&args[2], "sync") {
        // The Lua debugger (LDB) is not implemented: say so rather than pretend.
        return Err(Error::msg(
            "ERR SCRIPT DEBUG is not supported by this server (Basalt has no Lua debugger)",
        ));
    }
    Err(Error::msg("ERR Use SCRIPT DEBUG YES/SYNC/NO"))
}

fn script_exists(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let engine = ctx.srv.scripting.eval.lock();
    Ok(Frame::Array(
        args[2..]
            .iter()
            .map(|sha| {
                let known =
                    scripting::script_id(sha).is_some_and(|id| engine.scripts.contains_key(&id));
                Frame::Integer(i64::from(known))
            })
            .collect(),
    ))
}

fn script_flush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let ok =
        args.len() == 2 || (args.len() == 3 && (is(&args[2], "sync") || is(&args[2], "async")));
    if !ok {
        return Err(Error::msg(
            "ERR SCRIPT FLUSH only support SYNC|ASYNC option",
        ));
    }
    ctx.srv.scripting.flush_scripts();
    Ok(Frame::ok())
}

fn script_kill(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    ctx.srv
        .scripting
        .run
        .kill(true)
        .map(|()| Frame::ok())
        .map_err(Error::msg)
}

fn script_load(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut engine = ctx.srv.scripting.eval.lock();
    let sha = engine
        .create(&args[2])
        .map_err(|e| Error::msg(format!("ERR {e}")))?;
    Ok(Frame::Bulk(Bytes::copy_from_slice(&sha)))
}

fn function_help(_ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    Ok(help(
        "FUNCTION",
        &[
            "LOAD [REPLACE] <FUNCTION CODE>",
            "    Create a new library with the given library name and code.",
            "DELETE <LIBRARY NAME>",
            "    Delete the given library.",
            "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
            "    Return general information on all the libraries:",
            "    * Library name",
            "    * The engine used to run the Library",
            "    * Library description",
            "    * Functions list",
            "    * Library code (if WITHCODE is given)",
            "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
            "STATS",
            "    Return information about the current function running:",
            "    * Function name",
            "    * Command used to run the function",
            "    * Duration in MS that the function is running",
            "    If no function is running, return nil",
            "    In addition, returns a list of available engines.",
            "KILL",
            "    Kill the current running function.",
            "FLUSH [ASYNC|SYNC]",
            "    Delete all the libraries.",
            "    When called without the optional mode argument, the behavior is determined by the",
            "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
            "    * ASYNC: Asynchronously flush the libraries.",
            "    * SYNC: Synchronously flush the libraries.",
            "DUMP",
            "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
            "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
            "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
            "    control how to handle existing libraries (default APPEND):",
            "    * FLUSH: delete all existing libraries.",
            "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
            "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
            "      libraries with the new libraries (notice that even on this option there is a chance of failure",
            "      in case of functions name collision with another library).",
        ],
    ))
}

fn function_load(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut replace = false;
    let mut pos = 2;
    while pos < args.len() - 1 {
        let a = &args[pos];
        pos += 1;
        if is(a, "replace") {
            replace = true;
            continue;
        }
        return Err(Error::msg(format!(
            "ERR Unknown option given: {}",
            args::text(a)
        )));
    }
    if pos >= args.len() {
        return Err(Error::msg("ERR Function code is missing"));
    }
    let mut engine = ctx.srv.scripting.functions.lock();
    let name = engine
        .load(&args[pos], replace)
        .map_err(|e| Error::msg(format!("ERR {e}")))?;
    drop(engine);
    ctx.srv.scripting.refresh_function_counts();
    // The function libraries changed: one change, as Redis counts it.
    ctx.changed(1);
    Ok(Frame::Bulk(Bytes::from(name)))
}

fn function_delete(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let name = String::from_utf8_lossy(&args[2]).into_owned();
    if ctx.srv.scripting.functions.lock().remove(&name) {
        ctx.srv.scripting.refresh_function_counts();
        // The function libraries changed: one change, as Redis counts it.
        ctx.changed(1);
        Ok(Frame::ok())
    } else {
        Err(Error::msg("ERR Library not found"))
    }
}

fn function_flush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() > 3 {
        return Err(Error::msg(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try FUNCTION HELP.",
            args::text(&args[1]).chars().take(128).collect::<String>()
        )));
    }
    let ok =
        args.len() == 2 || (args.len() == 3 && (is(&args[2], "sync") || is(&args[2], "async")));
    if !ok {
        return Err(Error::msg(
            "ERR FUNCTION FLUSH only supports SYNC|ASYNC option",
        ));
    }
    let fresh = ctx.srv.scripting.new_function_engine();
    *ctx.srv.scripting.functions.lock() = fresh;
    ctx.srv.scripting.refresh_function_counts();
    // The function libraries changed: one change, as Redis counts it.
    ctx.changed(1);
    Ok(Frame::ok())
}

fn function_kill(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    ctx.srv
        .scripting
        .run
        .kill(false)
        .map(|()| Frame::ok())
        .map_err(Error::msg)
}

fn function_list(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut with_code = false;
    let mut pattern: Option<&[u8]> = None;
    let mut i = 2;
    while i < args.len() {
        let a = &args[i];
        if !with_code && is(a, "withcode") {
            with_code = true;
        } else if pattern.is_none() && is(a, "libraryname") {
            if i >= args.len() - 1 {
                return Err(Error::msg("ERR library name argument was not given"));
            }
            i += 1;
            pattern = Some(&args[i]);
        } else {
            return Err(Error::msg(format!(
                "ERR Unknown argument {}",
                args::text(a)
            )));
        }
        i += 1;
    }
    let engine = ctx.srv.scripting.functions.lock();
    let mut libs = Vec::new();
    for lib in engine.libraries.values() {
        if let Some(p) = pattern
            && !basalt_engine::glob::glob_match(p, lib.name.as_bytes(), true)
        {
            continue;
        }
        let functions = lib
            .functions
            .values()
            .map(|f| {
                Frame::Map(vec![
                    (bulk("name"), Frame::Bulk(Bytes::from(f.name.clone()))),
                    (
                        bulk("description"),
                        f.description.clone().map_or(Frame::Null, Frame::Bulk),
                    ),
                    (
                        bulk("flags"),
                        Frame::Set(
                            sflags::NAMES
                                .iter()
                                .filter(|(bit, _)| f.flags & bit != 0)
                                .map(|(_, n)| Frame::Simple(Bytes::from_static(n.as_bytes())))
                                .collect(),
                        ),
                    ),
                ])
            })
            .collect();
        let mut entry = vec![
            (
                bulk("library_name"),
                Frame::Bulk(Bytes::from(lib.name.clone())),
            ),
            (bulk("engine"), bulk("LUA")),
            (bulk("functions"), Frame::Array(functions)),
        ];
        if with_code {
            entry.push((bulk("library_code"), Frame::Bulk(lib.code.clone())));
        }
        libs.push(Frame::Map(entry));
    }
    Ok(Frame::Array(libs))
}

fn bulk(s: &'static str) -> Frame {
    Frame::Bulk(Bytes::from_static(s.as_bytes()))
}

fn function_stats(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let st = &ctx.srv.scripting.run;
    if st.is_running() && st.eval.load(Ordering::Relaxed) {
        return Err(Error::msg(scripting::BUSY_EVAL));
    }
    // The run info is filled in when a script turns busy, before `busy` is set; before
    // that no other client can be running this command.
    let busy = st.is_running() && st.busy.load(Ordering::Acquire);
    let info = if busy { st.info.lock().clone() } else { None };
    let running = match info {
        Some(info) => Frame::Map(vec![
            (bulk("name"), Frame::Bulk(Bytes::from(info.name))),
            (
                bulk("command"),
                Frame::Array(info.command.into_iter().map(Frame::Bulk).collect()),
            ),
            (bulk("duration_ms"), Frame::Integer(st.elapsed_ms() as i64)),
        ]),
        None => Frame::Null,
    };
    // While a script runs (FUNCTION STATS is allowed when busy) the engine is locked by
    // it: report the counts cached at the last change instead of waiting.
    let (libs, funcs) = match ctx.srv.scripting.functions.try_lock() {
        Some(e) => (e.libraries.len(), e.function_count()),
        None => ctx.srv.scripting.function_counts(),
    };
    Ok(Frame::Map(vec![
        (bulk("running_script"), running),
        (
            bulk("engines"),
            Frame::Map(vec![(
                bulk("LUA"),
                Frame::Map(vec![
                    (bulk("libraries_count"), Frame::Integer(libs as i64)),
                    (bulk("functions_count"), Frame::Integer(funcs as i64)),
                ]),
            )]),
        ),
    ]))
}

fn function_dump(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let compression = ctx.srv.config.read().rdbcompression;
    let engine = ctx.srv.scripting.functions.lock();
    let payload = dump::dump(
        engine.libraries.values().map(|l| l.code.as_ref()),
        compression,
    );
    Ok(Frame::Bulk(Bytes::from(payload)))
}

fn function_restore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() > 4 {
        return Err(Error::msg(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try FUNCTION HELP.",
            args::text(&args[1]).chars().take(128).collect::<String>()
        )));
    }
    #[derive(PartialEq)]
    enum Policy {
        Append,
        Replace,
        Flush,
    }
    let policy = match args.get(3) {
        None => Policy::Append,
        Some(a) if is(a, "append") => Policy::Append,
        Some(a) if is(a, "replace") => Policy::Replace,
        Some(a) if is(a, "flush") => Policy::Flush,
        Some(_) => {
            return Err(Error::msg(
                "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
            ));
        }
    };
    let codes = match dump::restore(&args[2]) {
        Ok(c) => c,
        Err(dump::RestoreError::VersionOrChecksum) => {
            return Err(Error::msg("ERR DUMP payload version or checksum are wrong"));
        }
        Err(dump::RestoreError::NotAFunction) => {
            return Err(Error::msg("ERR given type is not a function"));
        }
        Err(dump::RestoreError::Truncated) => {
            return Err(Error::msg("ERR can not read data type"));
        }
    };
    let srv = ctx.srv;
    let mut engine = srv.scripting.functions.lock();
    // Compile every library first (into the live VM, unregistered), then join.
    let mut libs: Vec<scripting::functions::Library> = Vec::new();
    for code in codes {
        let lib = engine
            .compile(&Bytes::from(code))
            .map_err(|e| Error::msg(format!("ERR {e}")))?;
        if libs.iter().any(|l| l.name == lib.name) {
            return Err(Error::msg(format!(
                "ERR Library '{}' already exists",
                lib.name
            )));
        }
        libs.push(lib);
    }
    if policy == Policy::Flush {
        let mut fresh = srv.scripting.new_function_engine();
        let mut recompiled = Vec::new();
        for lib in &libs {
            recompiled.push(
                fresh
                    .compile(&lib.code)
                    .map_err(|e| Error::msg(format!("ERR {e}")))?,
            );
        }
        for lib in recompiled {
            fresh.insert(lib);
        }
        *engine = fresh;
        drop(engine);
        srv.scripting.refresh_function_counts();
        // The function libraries changed: one change, as Redis counts it.
        ctx.changed(1);
        return Ok(Frame::ok());
    }
    for lib in &libs {
        if engine.libraries.contains_key(&lib.name) && policy != Policy::Replace {
            return Err(Error::msg(format!(
                "ERR Library {} already exists",
                lib.name
            )));
        }
    }
    let replaced: Vec<&str> = libs.iter().map(|l| l.name.as_str()).collect();
    for lib in &libs {
        for f in lib.functions.keys() {
            if let Some(owner) = engine.index.get(f)
                && !replaced.contains(&owner.as_str())
            {
                return Err(Error::msg(format!("ERR Function {f} already exists")));
            }
        }
    }
    for lib in libs {
        engine.insert(lib);
    }
    drop(engine);
    srv.scripting.refresh_function_counts();
    // The function libraries changed: one change, as Redis counts it.
    ctx.changed(1);
    Ok(Frame::ok())
}
