//! The connection family: PING, ECHO, QUIT, HELLO, AUTH, SELECT, RESET and CLIENT.
//!
//! These commands change the calling client's own state (protocol, database, name,
//! authentication, reply mode) or inspect other clients through the registry.

use crate::cmd::args::{self, is};
use crate::cmd::flags::*;
use crate::cmd::{Command, acl};
use crate::error::{self, CmdResult, Error};
use crate::families::keys::{db_index, help_reply};
use crate::server::{Ctx, Pause, ReplyMode};
use basalt_proto::{Frame, Protocol};
use bytes::Bytes;
use std::sync::atomic::Ordering;

macro_rules! conn_cmd {
    ($name:literal, $arity:expr, $flags:expr, $since:literal, $summary:literal, $h:expr) => {
        Command {
            name: $name,
            arity: $arity,
            flags: $flags,
            acl: acl::CONNECTION,
            group: "connection",
            since: $since,
            summary: $summary,
            handler: Some($h),
            ..Command::EMPTY
        }
    };
}

const CLIENT_SUBCOMMANDS: &[Command] = &[
    conn_cmd!(
        "id",
        2,
        NOSCRIPT | LOADING | STALE,
        "5.0.0",
        "Returns the unique client ID of the connection.",
        client_id
    ),
    conn_cmd!(
        "setname",
        3,
        NOSCRIPT | LOADING | STALE,
        "2.6.9",
        "Sets the connection name.",
        client_setname
    ),
    conn_cmd!(
        "getname",
        2,
        NOSCRIPT | LOADING | STALE,
        "2.6.9",
        "Returns the name of the connection.",
        client_getname
    ),
    Command {
        acl: acl::CONNECTION,
        complexity: "O(N) where N is the number of client connections",
        tips: &["nondeterministic_output"],
        ..conn_cmd!(
            "list",
            -2,
            ADMIN | NOSCRIPT | LOADING | STALE,
            "2.4.0",
            "Lists open connections.",
            client_list
        )
    },
    Command {
        tips: &["nondeterministic_output"],
        ..conn_cmd!(
            "info",
            2,
            NOSCRIPT | LOADING | STALE,
            "6.2.0",
            "Returns information about the connection.",
            client_info
        )
    },
    Command {
        complexity: "O(N) where N is the number of client connections",
        ..conn_cmd!(
            "kill",
            -3,
            ADMIN | NOSCRIPT | LOADING | STALE,
            "2.4.0",
            "Terminates open connections.",
            client_kill
        )
    },
    conn_cmd!(
        "setinfo",
        4,
        NOSCRIPT | LOADING | STALE,
        "7.2.0",
        "Sets information specific to the client or connection.",
        client_setinfo
    ),
    conn_cmd!(
        "reply",
        3,
        NOSCRIPT | LOADING | STALE,
        "3.2.0",
        "Instructs the server whether to reply to commands.",
        client_reply
    ),
    conn_cmd!(
        "pause",
        -3,
        ADMIN | NOSCRIPT | LOADING | STALE,
        "3.0.0",
        "Suspends commands processing.",
        client_pause
    ),
    conn_cmd!(
        "unpause",
        2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        "6.2.0",
        "Resumes processing commands from paused clients.",
        client_unpause
    ),
    conn_cmd!(
        "no-evict",
        3,
        ADMIN | NOSCRIPT | LOADING | STALE,
        "7.0.0",
        "Sets the client eviction mode of the connection.",
        client_no_evict
    ),
    conn_cmd!(
        "getredir",
        2,
        NOSCRIPT | LOADING | STALE,
        "6.0.0",
        "Returns the client ID to which the connection's tracking notifications are redirected.",
        client_getredir
    ),
    conn_cmd!(
        "unblock",
        -3,
        ADMIN | NOSCRIPT | LOADING | STALE,
        "5.0.0",
        "Unblocks a client blocked by a blocking command from a different connection.",
        client_unblock
    ),
    conn_cmd!(
        "help",
        2,
        LOADING | STALE,
        "5.0.0",
        "Returns helpful text about the different subcommands.",
        client_help
    ),
];

/// The connection family's commands.
pub const COMMANDS: &[Command] = &[
    Command {
        tips: &["request_policy:all_shards", "response_policy:all_succeeded"],
        ..conn_cmd!(
            "ping",
            -1,
            FAST,
            "1.0.0",
            "Returns the server's liveliness response.",
            ping
        )
    },
    conn_cmd!("echo", 2, FAST, "1.0.0", "Returns the given string.", echo),
    conn_cmd!(
        "quit",
        -1,
        ALLOW_BUSY | NOSCRIPT | LOADING | STALE | FAST | NO_AUTH,
        "1.0.0",
        "Closes the connection.",
        quit
    ),
    conn_cmd!(
        "hello",
        -1,
        NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY,
        "6.0.0",
        "Handshakes with the Redis server.",
        hello
    ),
    conn_cmd!(
        "auth",
        -2,
        NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY,
        "1.0.0",
        "Authenticates the connection.",
        auth
    ),
    conn_cmd!(
        "select",
        2,
        LOADING | STALE | FAST,
        "1.0.0",
        "Changes the selected database.",
        select
    ),
    conn_cmd!(
        "reset",
        1,
        NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY,
        "6.2.0",
        "Resets the connection.",
        reset
    ),
    Command {
        name: "client",
        arity: -2,
        group: "connection",
        since: "2.4.0",
        summary: "A container for client connection commands.",
        complexity: "Depends on subcommand.",
        subcommands: CLIENT_SUBCOMMANDS,
        ..Command::EMPTY
    },
];

fn ping(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() <= 2 && ctx.client.proto == Protocol::Resp2 && ctx.client.subs.active() {
        // RESP2 subscribed mode answers in the shape of a message.
        let payload = args.get(1).cloned().unwrap_or_default();
        return Ok(Frame::Array(vec![
            Frame::Bulk(Bytes::from_static(b"pong")),
            Frame::Bulk(payload),
        ]));
    }
    match args.len() {
        1 => Ok(Frame::simple("PONG")),
        2 => Ok(Frame::Bulk(args[1].clone())),
        _ => Err(Error::arity(ctx.fullname)),
    }
}

fn echo(_ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(Frame::Bulk(args[1].clone()))
}

fn quit(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    ctx.client.close_after_reply = true;
    Ok(Frame::ok())
}

/// Checks a password for `user`; the only user is `default` (ACLs come later).
fn check_password(ctx: &Ctx<'_>, user: &[u8], pass: &[u8]) -> bool {
    if user != b"default" {
        return false;
    }
    let cfg = ctx.srv.config.read();
    cfg.requirepass.is_empty() || cfg.requirepass.as_slice() == pass
}

fn auth(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() > 3 {
        return Err(Error::msg(error::SYNTAX));
    }
    let (user, pass) = if args.len() == 2 {
        if ctx.srv.config.read().requirepass.is_empty() {
            return Err(Error::msg(
                "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
            ));
        }
        (&b"default"[..], &args[1][..])
    } else {
        (&args[1][..], &args[2][..])
    };
    if check_password(ctx, user, pass) {
        ctx.client.authenticated = true;
        Ok(Frame::ok())
    } else {
        tracing::debug!("authentication failed for client {}", ctx.client.id);
        Err(Error::msg(error::WRONGPASS))
    }
}

fn hello(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut proto = None;
    let mut i = 1;
    if args.len() >= 2 {
        let v = basalt_engine::num::parse_i64(&args[1])
            .ok_or_else(|| Error::msg("ERR Protocol version is not an integer or out of range"))?;
        if !(2..=3).contains(&v) {
            return Err(Error::msg("NOPROTO unsupported protocol version"));
        }
        proto = Some(if v == 3 {
            Protocol::Resp3
        } else {
            Protocol::Resp2
        });
        i = 2;
    }
    let mut auth: Option<(Bytes, Bytes)> = None;
    let mut setname: Option<Bytes> = None;
    while i < args.len() {
        let more = args.len() - i - 1;
        if is(&args[i], "auth") && more >= 2 {
            auth = Some((args[i + 1].clone(), args[i + 2].clone()));
            i += 3;
        } else if is(&args[i], "setname") && more >= 1 {
            setname = Some(args[i + 1].clone());
            i += 2;
        } else {
            return Err(Error::msg(format!(
                "ERR Syntax error in HELLO option '{}'",
                args::text(&args[i])
            )));
        }
    }
    if let Some((user, pass)) = &auth {
        if !check_password(ctx, user, pass) {
            return Err(Error::msg(error::WRONGPASS));
        }
        ctx.client.authenticated = true;
    }
    if !ctx.client.authenticated && ctx.srv.live.auth_required.load(Ordering::Relaxed) {
        return Err(Error::msg(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
        ));
    }
    if let Some(name) = setname {
        validate_name(&name)?;
        *ctx.client.shared.name.lock() = args::text(&name);
    }
    if let Some(p) = proto {
        ctx.client.proto = p;
        ctx.client
            .shared
            .resp
            .store(if p == Protocol::Resp3 { 3 } else { 2 }, Ordering::Relaxed);
    }
    let proto_num = if ctx.client.proto == Protocol::Resp3 {
        3
    } else {
        2
    };
    Ok(Frame::Map(vec![
        (Frame::bulk(b"server"), Frame::bulk(b"redis")),
        (Frame::bulk(b"version"), Frame::bulk(b"7.0.15")),
        (Frame::bulk(b"proto"), Frame::Integer(proto_num)),
        (Frame::bulk(b"id"), Frame::Integer(ctx.client.id as i64)),
        (Frame::bulk(b"mode"), Frame::bulk(b"standalone")),
        (Frame::bulk(b"role"), Frame::bulk(b"master")),
        (Frame::bulk(b"modules"), Frame::Array(vec![])),
    ]))
}

fn select(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = db_index(ctx, &args[1])?;
    ctx.client.db = db;
    ctx.client.shared.db.store(db, Ordering::Relaxed);
    Ok(Frame::ok())
}

fn reset(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    ctx.srv.end_transaction(ctx.client);
    let shared = ctx.client.shared.clone();
    ctx.srv
        .pubsub
        .unsubscribe_all(&mut ctx.client.subs, &shared);
    let c = &mut *ctx.client;
    c.db = 0;
    c.proto = Protocol::Resp2;
    c.reply = ReplyMode::On;
    c.authenticated = !ctx.srv.live.auth_required.load(Ordering::Relaxed);
    c.shared.db.store(0, Ordering::Relaxed);
    c.shared.resp.store(2, Ordering::Relaxed);
    c.shared.name.lock().clear();
    c.shared.no_evict.store(false, Ordering::Relaxed);
    Ok(Frame::simple("RESET"))
}

fn client_id(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.client.id as i64))
}

/// Client names and SETINFO values: printable ASCII without spaces.
fn validate_name(name: &[u8]) -> Result<(), Error> {
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(Error::msg(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok(())
}

fn client_setname(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    validate_name(&args[2])?;
    *ctx.client.shared.name.lock() = args::text(&args[2]);
    Ok(Frame::ok())
}

fn client_getname(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let name = ctx.client.shared.name.lock();
    Ok(if name.is_empty() {
        Frame::Null
    } else {
        Frame::bulk(name.as_bytes())
    })
}

fn verbatim(text: String) -> Frame {
    Frame::Verbatim {
        format: *b"txt",
        text: Bytes::from(text),
    }
}

fn client_list(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut ids: Option<Vec<u64>> = None;
    // Some(true): only pubsub clients; Some(false): only normal ones.
    let mut want_pubsub: Option<bool> = None;
    let mut i = 2;
    while i < args.len() {
        if is(&args[i], "type") && i + 1 < args.len() {
            let t = &args[i + 1];
            if !(is(t, "normal")
                || is(t, "master")
                || is(t, "replica")
                || is(t, "slave")
                || is(t, "pubsub"))
            {
                return Err(Error::msg(format!(
                    "ERR Unknown client type '{}'",
                    args::text(t)
                )));
            }
            if is(t, "normal") {
                want_pubsub = Some(false);
            } else if is(t, "pubsub") {
                want_pubsub = Some(true);
            } else {
                // No master or replica clients exist until replication arrives.
                ids = Some(Vec::new());
            }
            i += 2;
        } else if is(&args[i], "id") && i + 1 < args.len() {
            let mut list = Vec::new();
            for a in &args[i + 1..] {
                let v = basalt_engine::num::parse_i64(a)
                    .filter(|v| *v > 0)
                    .ok_or_else(|| Error::msg("ERR Invalid client ID"))?;
                list.push(v as u64);
            }
            ids = Some(list);
            i = args.len();
        } else {
            return Err(Error::msg(error::SYNTAX));
        }
    }
    let clients: Vec<_> = ctx.srv.clients.lock().values().cloned().collect();
    let mut out = String::new();
    for c in clients {
        if let Some(ids) = &ids
            && !ids.contains(&c.id)
        {
            continue;
        }
        if want_pubsub.is_some_and(|p| p != c.is_pubsub()) {
            continue;
        }
        out.push_str(&c.info_line(ctx.now, &ctx.srv.commands));
        out.push('\n');
    }
    Ok(verbatim(out))
}

fn client_info(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let mut line = ctx.client.shared.info_line(ctx.now, &ctx.srv.commands);
    line.push('\n');
    Ok(verbatim(line))
}

fn client_kill(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let clients: Vec<_> = ctx.srv.clients.lock().values().cloned().collect();
    if args.len() == 3 {
        // Old form: CLIENT KILL addr:port.
        let addr = args::text(&args[2]);
        return match clients.iter().find(|c| c.addr == addr) {
            Some(c) => {
                if c.id == ctx.client.id {
                    ctx.client.close_after_reply = true;
                } else {
                    c.kill();
                }
                Ok(Frame::ok())
            }
            None => Err(Error::msg("ERR No such client")),
        };
    }
    let mut id: Option<u64> = None;
    let mut addr: Option<String> = None;
    let mut laddr: Option<String> = None;
    // Some(Some(true)): pubsub clients; Some(Some(false)): normal; Some(None): a type
    // no client has yet (master, replica).
    let mut kill_type: Option<Option<bool>> = None;
    let mut user: Option<String> = None;
    let mut skipme = true;
    let mut i = 2;
    while i < args.len() {
        if i + 1 >= args.len() {
            return Err(Error::msg(error::SYNTAX));
        }
        let (opt, val) = (&args[i], &args[i + 1]);
        if is(opt, "id") {
            let v = basalt_engine::num::parse_i64(val)
                .filter(|v| *v > 0)
                .ok_or_else(|| Error::msg("ERR client-id should be greater than 0"))?;
            id = Some(v as u64);
        } else if is(opt, "type") {
            if is(val, "normal") {
                kill_type = Some(Some(false));
            } else if is(val, "pubsub") {
                kill_type = Some(Some(true));
            } else if is(val, "master") || is(val, "replica") || is(val, "slave") {
                kill_type = Some(None);
            } else {
                return Err(Error::msg(format!(
                    "ERR Unknown client type '{}'",
                    args::text(val)
                )));
            }
        } else if is(opt, "addr") {
            addr = Some(args::text(val));
        } else if is(opt, "laddr") {
            laddr = Some(args::text(val));
        } else if is(opt, "user") {
            if val.as_ref() != b"default" {
                return Err(Error::msg(format!(
                    "ERR No such user '{}'",
                    args::text(val)
                )));
            }
            user = Some(args::text(val));
        } else if is(opt, "skipme") {
            if is(val, "yes") {
                skipme = true;
            } else if is(val, "no") {
                skipme = false;
            } else {
                return Err(Error::msg(error::SYNTAX));
            }
        } else {
            return Err(Error::msg(error::SYNTAX));
        }
        i += 2;
    }
    let _ = user;
    let mut killed = 0;
    for c in clients {
        if id.is_some_and(|v| v != c.id)
            || addr.as_ref().is_some_and(|a| *a != c.addr)
            || laddr.as_ref().is_some_and(|a| *a != c.laddr)
            || kill_type.is_some_and(|t| t != Some(c.is_pubsub()))
        {
            continue;
        }
        if c.id == ctx.client.id {
            if skipme {
                continue;
            }
            ctx.client.close_after_reply = true;
        } else {
            c.kill();
        }
        killed += 1;
    }
    Ok(Frame::Integer(killed))
}

fn client_setinfo(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let value = &args[3];
    let target = if is(&args[2], "lib-name") {
        if value.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
            return Err(Error::msg(
                "ERR lib-name cannot contain spaces, newlines or special characters.",
            ));
        }
        &ctx.client.shared.lib_name
    } else if is(&args[2], "lib-ver") {
        if value.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
            return Err(Error::msg(
                "ERR lib-ver cannot contain spaces, newlines or special characters.",
            ));
        }
        &ctx.client.shared.lib_ver
    } else {
        return Err(Error::msg(format!(
            "ERR Unrecognized option '{}'",
            args::text(&args[2])
        )));
    };
    *target.lock() = args::text(value);
    Ok(Frame::ok())
}

fn client_reply(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mode = &args[2];
    if is(mode, "on") {
        ctx.client.reply = ReplyMode::On;
        Ok(Frame::ok())
    } else if is(mode, "off") {
        ctx.client.reply = ReplyMode::Off;
        Ok(Frame::ok())
    } else if is(mode, "skip") {
        if ctx.client.reply == ReplyMode::On {
            ctx.client.reply = ReplyMode::SkipNext;
        }
        Ok(Frame::ok())
    } else {
        Err(Error::msg(error::SYNTAX))
    }
}

fn client_pause(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let ms = basalt_engine::num::parse_i64(&args[2])
        .ok_or_else(|| Error::msg("ERR timeout is not an integer or out of range"))?;
    if ms < 0 {
        return Err(Error::msg("ERR timeout is negative"));
    }
    let write_only = match args.get(3) {
        None => false,
        Some(m) if is(m, "write") => true,
        Some(m) if is(m, "all") => false,
        Some(_) => return Err(Error::msg(error::SYNTAX)),
    };
    if args.len() > 4 {
        return Err(Error::msg(error::SYNTAX));
    }
    let until = ctx.now.saturating_add(ms as u64);
    let mut p = ctx.srv.pause.lock();
    // As in Redis: a pause never shortens an active one, and ALL wins over WRITE.
    if p.until > ctx.now {
        p.until = p.until.max(until);
        p.write_only = p.write_only && write_only;
    } else {
        *p = Pause { until, write_only };
    }
    ctx.srv.pause_until.store(p.until, Ordering::Release);
    Ok(Frame::ok())
}

fn client_unpause(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    *ctx.srv.pause.lock() = Pause::default();
    ctx.srv.pause_until.store(0, Ordering::Release);
    ctx.srv.unpause.notify_waiters();
    Ok(Frame::ok())
}

fn client_no_evict(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let on = if is(&args[2], "on") {
        true
    } else if is(&args[2], "off") {
        false
    } else {
        return Err(Error::msg(error::SYNTAX));
    };
    ctx.client.shared.no_evict.store(on, Ordering::Relaxed);
    Ok(Frame::ok())
}

fn client_getredir(_ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    // Client-side caching (CLIENT TRACKING) is not implemented: never redirected.
    Ok(Frame::Integer(-1))
}

fn client_unblock(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let id =
        basalt_engine::num::parse_i64(&args[2]).ok_or_else(|| Error::msg(error::NOT_INTEGER))?;
    let how = match args.get(3) {
        None => crate::blocking::UNBLOCK_TIMEOUT,
        Some(m) if is(m, "timeout") => crate::blocking::UNBLOCK_TIMEOUT,
        Some(m) if is(m, "error") => crate::blocking::UNBLOCK_ERROR,
        Some(_) => {
            return Err(Error::msg(
                "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR",
            ));
        }
    };
    if args.len() > 4 {
        return Err(Error::msg(error::SYNTAX));
    }
    let found = id > 0 && ctx.srv.blocking.unblock(id as u64, how);
    Ok(Frame::Integer(i64::from(found)))
}

fn client_help(_ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    Ok(help_reply(
        "CLIENT",
        &[
            "GETNAME",
            "    Return the name of the current connection.",
            "ID",
            "    Return the ID of the current connection.",
            "INFO",
            "    Return information about the current client connection.",
            "KILL <ip:port>",
            "    Kill connection made from <ip:port>.",
            "KILL <option> <value> [<option> <value> [...]]",
            "    Kill connections. Options are:",
            "    * ADDR (<ip:port>|<unixsocket>:0)",
            "      Kill connections made from the specified address",
            "    * LADDR (<ip:port>|<unixsocket>:0)",
            "      Kill connections made to specified local address",
            "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
            "      Kill connections by type.",
            "    * USER <username>",
            "      Kill connections authenticated by <username>.",
            "    * SKIPME (YES|NO)",
            "      Skip killing current connection (default: yes).",
            "    * ID <client-id>",
            "      Kill connections by client id.",
            "LIST [options ...]",
            "    Return information about client connections. Options:",
            "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
            "      Return clients of specified type.",
            "UNPAUSE",
            "    Stop the current client pause, resuming traffic.",
            "PAUSE <timeout> [WRITE|ALL]",
            "    Suspend all, or just write, clients for <timeout> milliseconds.",
            "REPLY (ON|OFF|SKIP)",
            "    Control the replies sent to the current connection.",
            "SETNAME <name>",
            "    Assign the name <name> to the current connection.",
            "SETINFO <LIB-NAME|LIB-VER> <value>",
            "    Set client meta attributes.",
            "UNBLOCK <clientid> [TIMEOUT|ERROR]",
            "    Unblock the specified blocked client.",
            "NO-EVICT (ON|OFF)",
            "    Protect current client connection from eviction.",
        ],
    ))
}
