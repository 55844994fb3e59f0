//! `COMMAND` and its subcommands, generated from the command table with Redis 7.0's
//! reply shapes (client libraries such as redis-py read key positions from them).

use crate::cmd::args::is;
use crate::cmd::flags::*;
use crate::cmd::{BeginSearch, Command, FindKeys, Resolved, acl, flags, key_positions};
use crate::error::{CmdResult, Error};
use crate::families::keys::help_reply;
use crate::server::Ctx;
use basalt_engine::glob::glob_match;
use basalt_proto::Frame;
use bytes::Bytes;

macro_rules! sub {
    ($name:literal, $arity:expr, $since:literal, $summary:literal, $cx:literal, $h:expr) => {
        Command {
            name: $name,
            arity: $arity,
            flags: LOADING | STALE,
            acl: acl::CONNECTION,
            group: "server",
            since: $since,
            summary: $summary,
            complexity: $cx,
            handler: Some($h),
            ..Command::EMPTY
        }
    };
}

const SUBCOMMANDS: &[Command] = &[
    sub!(
        "count",
        2,
        "2.8.13",
        "Returns a count of commands.",
        "O(1)",
        count
    ),
    Command {
        tips: &["nondeterministic_output_order"],
        ..sub!(
            "info",
            -2,
            "2.8.13",
            "Returns information about one, multiple or all commands.",
            "O(N) where N is the number of commands to look up",
            info
        )
    },
    Command {
        tips: &["nondeterministic_output_order"],
        ..sub!(
            "docs",
            -2,
            "7.0.0",
            "Returns documentary information about one, multiple or all commands.",
            "O(N) where N is the number of commands to look up",
            docs
        )
    },
    Command {
        tips: &["nondeterministic_output_order"],
        ..sub!(
            "list",
            -2,
            "7.0.0",
            "Returns a list of command names.",
            "O(N) where N is the total number of Redis commands",
            list
        )
    },
    sub!(
        "getkeys",
        -3,
        "2.8.13",
        "Extracts the key names from an arbitrary command.",
        "O(N) where N is the number of arguments to the command",
        getkeys
    ),
    sub!(
        "getkeysandflags",
        -3,
        "7.0.0",
        "Extracts the key names and access flags for an arbitrary command.",
        "O(N) where N is the number of arguments to the command",
        getkeysandflags
    ),
    sub!(
        "help",
        2,
        "5.0.0",
        "Returns helpful text about the different subcommands.",
        "O(1)",
        help
    ),
];

/// The COMMAND command.
pub const COMMANDS: &[Command] = &[Command {
    name: "command",
    arity: -1,
    flags: LOADING | STALE,
    acl: acl::CONNECTION,
    group: "server",
    since: "2.8.13",
    summary: "Returns detailed information about all commands.",
    complexity: "O(N) where N is the total number of Redis commands",
    tips: &["nondeterministic_output_order"],
    handler: Some(all_info),
    subcommands: SUBCOMMANDS,
    keys: (0, 0, 0),
    key_specs: &[],
    getkeys: None,
    flags_of: None,
}];

fn status_set(items: impl IntoIterator<Item = String>) -> Frame {
    Frame::Set(
        items
            .into_iter()
            .map(|s| Frame::Simple(Bytes::from(s)))
            .collect(),
    )
}

fn bulk(s: &str) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

fn is_movable(cmd: &Command) -> bool {
    cmd.getkeys.is_some()
        || cmd.key_specs.iter().any(|s| {
            !matches!(
                (s.begin, s.find),
                (BeginSearch::Index(_), FindKeys::Range { limit: 0 | 1, .. })
            )
        })
}

fn flag_names(cmd: &Command) -> Vec<String> {
    let mut bits = cmd.flags;
    if is_movable(cmd) {
        bits |= flags::MOVABLE_KEYS;
    }
    flags::NAMES
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| n.to_string())
        .collect()
}

fn key_spec_frames(cmd: &Command) -> Frame {
    Frame::Set(
        cmd.key_specs
            .iter()
            .map(|s| {
                let unknown = || {
                    Frame::Map(vec![
                        (bulk("type"), bulk("unknown")),
                        (bulk("spec"), Frame::Map(vec![])),
                    ])
                };
                let begin = match s.begin {
                    BeginSearch::Unknown => unknown(),
                    BeginSearch::Index(i) => Frame::Map(vec![
                        (bulk("type"), bulk("index")),
                        (
                            bulk("spec"),
                            Frame::Map(vec![(bulk("index"), Frame::Integer(i64::from(i)))]),
                        ),
                    ]),
                    BeginSearch::Keyword { keyword, startfrom } => Frame::Map(vec![
                        (bulk("type"), bulk("keyword")),
                        (
                            bulk("spec"),
                            Frame::Map(vec![
                                (bulk("keyword"), bulk(keyword)),
                                (bulk("startfrom"), Frame::Integer(i64::from(startfrom))),
                            ]),
                        ),
                    ]),
                };
                let find = match s.find {
                    FindKeys::Unknown => unknown(),
                    FindKeys::Range {
                        lastkey,
                        step,
                        limit,
                    } => Frame::Map(vec![
                        (bulk("type"), bulk("range")),
                        (
                            bulk("spec"),
                            Frame::Map(vec![
                                (bulk("lastkey"), Frame::Integer(i64::from(lastkey))),
                                (bulk("keystep"), Frame::Integer(i64::from(step))),
                                (bulk("limit"), Frame::Integer(i64::from(limit))),
                            ]),
                        ),
                    ]),
                    FindKeys::Keynum {
                        keynumidx,
                        firstkey,
                        step,
                    } => Frame::Map(vec![
                        (bulk("type"), bulk("keynum")),
                        (
                            bulk("spec"),
                            Frame::Map(vec![
                                (bulk("keynumidx"), Frame::Integer(i64::from(keynumidx))),
                                (bulk("firstkey"), Frame::Integer(i64::from(firstkey))),
                                (bulk("keystep"), Frame::Integer(i64::from(step))),
                            ]),
                        ),
                    ]),
                };
                let mut fields = Vec::with_capacity(4);
                if !s.notes.is_empty() {
                    fields.push((bulk("notes"), bulk(s.notes)));
                }
                fields.push((
                    bulk("flags"),
                    status_set(s.flags.iter().map(|f| f.to_string())),
                ));
                fields.push((bulk("begin_search"), begin));
                fields.push((bulk("find_keys"), find));
                Frame::Map(fields)
            })
            .collect(),
    )
}

fn command_info(r: &Resolved, ctx: &Ctx<'_>) -> Frame {
    let cmd = r.cmd;
    let cats = cmd.acl_categories();
    let subs = ctx
        .srv
        .commands
        .entries()
        .iter()
        .filter(|e| e.parent.is_some_and(|p| std::ptr::eq(p, cmd)))
        .map(|e| command_info(e, ctx))
        .collect();
    Frame::Array(vec![
        bulk(&r.fullname),
        Frame::Integer(i64::from(cmd.arity)),
        status_set(flag_names(cmd)),
        Frame::Integer(i64::from(cmd.keys.0)),
        Frame::Integer(i64::from(cmd.keys.1)),
        Frame::Integer(i64::from(cmd.keys.2)),
        status_set(
            acl::NAMES
                .iter()
                .filter(|(b, _)| cats & b != 0)
                .map(|(_, n)| format!("@{n}")),
        ),
        // Redis 7.0 sends tips as a set of bulk strings, and key specs and subcommands as
        // sets too.
        Frame::Set(cmd.tips.iter().map(|t| bulk(t)).collect()),
        key_spec_frames(cmd),
        Frame::Set(subs),
    ])
}

fn command_docs(r: &Resolved, ctx: &Ctx<'_>) -> Frame {
    let cmd = r.cmd;
    let mut fields = vec![
        (bulk("summary"), bulk(cmd.summary)),
        (bulk("since"), bulk(cmd.since)),
        (bulk("group"), bulk(cmd.group)),
        (bulk("complexity"), bulk(cmd.complexity)),
    ];
    let subs: Vec<(Frame, Frame)> = ctx
        .srv
        .commands
        .entries()
        .iter()
        .filter(|e| e.parent.is_some_and(|p| std::ptr::eq(p, cmd)))
        .map(|e| (bulk(&e.fullname), command_docs(e, ctx)))
        .collect();
    if !subs.is_empty() {
        fields.push((bulk("subcommands"), Frame::Map(subs)));
    }
    Frame::Map(fields)
}

fn all_info(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    all_info_ref(ctx)
}

fn count(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.srv.commands.top_level().count() as i64))
}

fn info(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let ctx = &*ctx;
    if args.len() == 2 {
        return all_info_ref(ctx);
    }
    Ok(Frame::Array(
        args[2..]
            .iter()
            .map(|name| match ctx.srv.commands.by_fullname(name) {
                Some(r) => command_info(r, ctx),
                None => Frame::Null,
            })
            .collect(),
    ))
}

fn all_info_ref(ctx: &Ctx<'_>) -> CmdResult {
    Ok(Frame::Array(
        ctx.srv
            .commands
            .top_level()
            .map(|r| command_info(r, ctx))
            .collect(),
    ))
}

fn docs(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let ctx = &*ctx;
    let mut out = Vec::new();
    if args.len() == 2 {
        for r in ctx.srv.commands.top_level() {
            out.push((bulk(&r.fullname), command_docs(r, ctx)));
        }
    } else {
        for name in &args[2..] {
            if let Some(r) = ctx.srv.commands.by_fullname(name) {
                out.push((bulk(&r.fullname), command_docs(r, ctx)));
            }
        }
    }
    Ok(Frame::Map(out))
}

fn list(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    enum Filter {
        None,
        Module,
        AclCat(u32),
        Pattern(Bytes),
    }
    let filter = match args.len() {
        2 => Filter::None,
        5 if is(&args[2], "filterby") => {
            let (kind, value) = (&args[3], &args[4]);
            if is(kind, "module") {
                Filter::Module
            } else if is(kind, "aclcat") {
                let cat = acl::NAMES
                    .iter()
                    .find(|(_, n)| value.eq_ignore_ascii_case(n.as_bytes()))
                    .map(|(b, _)| *b);
                match cat {
                    Some(b) => Filter::AclCat(b),
                    None => Filter::Module, // unknown category: nothing matches
                }
            } else if is(kind, "pattern") {
                Filter::Pattern(value.clone())
            } else {
                return Err(Error::msg(crate::error::SYNTAX));
            }
        }
        _ => return Err(Error::msg(crate::error::SYNTAX)),
    };
    let names = ctx
        .srv
        .commands
        .entries()
        .iter()
        .filter(|r| match &filter {
            Filter::None => true,
            Filter::Module => false,
            Filter::AclCat(b) => r.cmd.acl_categories() & b != 0,
            Filter::Pattern(p) => glob_match(p, r.fullname.as_bytes(), true),
        })
        .map(|r| bulk(&r.fullname))
        .collect();
    Ok(Frame::Array(names))
}

fn resolve_keys(
    ctx: &Ctx<'_>,
    args: &[Bytes],
) -> Result<Vec<(usize, &'static [&'static str])>, Error> {
    let target = &args[2..];
    let resolved = match ctx.srv.commands.lookup(target) {
        crate::cmd::Lookup::Found(r) => r,
        _ => return Err(Error::msg("ERR Invalid command specified")),
    };
    let cmd = resolved.cmd;
    // Specs of channels (SSUBSCRIBE, SPUBLISH) are flagged `not_key`: no keys then.
    if cmd.getkeys.is_none() && cmd.key_specs.iter().all(|s| s.flags.contains(&"not_key")) {
        return Err(Error::msg("ERR The command has no key arguments"));
    }
    if !cmd.arity_ok(target.len()) {
        return Err(Error::msg(
            "ERR Invalid number of arguments specified for command",
        ));
    }
    let keys = key_positions(cmd, target);
    if keys.is_empty() && !cmd.has(NO_MANDATORY_KEYS) {
        return Err(Error::msg("ERR Invalid arguments specified for command"));
    }
    Ok(keys.into_iter().map(|(i, f)| (i + 2, f)).collect())
}

fn getkeys(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let keys = resolve_keys(ctx, args)?;
    Ok(Frame::Array(
        keys.into_iter()
            .map(|(i, _)| Frame::Bulk(args[i].clone()))
            .collect(),
    ))
}

fn getkeysandflags(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let keys = resolve_keys(ctx, args)?;
    Ok(Frame::Array(
        keys.into_iter()
            .map(|(i, f)| {
                Frame::Array(vec![
                    Frame::Bulk(args[i].clone()),
                    status_set(f.iter().map(|s| s.to_string())),
                ])
            })
            .collect(),
    ))
}

fn help(_ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    Ok(help_reply(
        "COMMAND",
        &[
            "(no subcommand)",
            "    Return details about all Redis commands.",
            "COUNT",
            "    Return the total number of commands in this Redis server.",
            "LIST",
            "    Return a list of all commands in this Redis server.",
            "INFO [<command-name> ...]",
            "    Return details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "DOCS [<command-name> ...]",
            "    Return documentation details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "GETKEYS <full-command>",
            "    Return the keys from a full Redis command.",
            "GETKEYSANDFLAGS <full-command>",
            "    Return the keys and the access flags from a full Redis command.",
        ],
    ))
}
