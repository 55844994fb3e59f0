//! The pubsub family: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE, SSUBSCRIBE,
//! SUNSUBSCRIBE, PUBLISH, SPUBLISH and PUBSUB CHANNELS|NUMSUB|NUMPAT|SHARDCHANNELS|
//! SHARDNUMSUB|HELP.
//!
//! The registry and delivery live in `crate::pubsub`; these handlers only parse. The
//! (un)subscribe commands queue their confirmations (one per channel) in the client's
//! outbox under the registry lock, so no message can overtake them, and send no other
//! reply. Shard channels behave as in a standalone Redis 7.0: a separate namespace with
//! no slot checks.

use crate::cmd::flags::*;
use crate::cmd::{Command, KeySpec, acl};
use crate::error::{CmdResult, Error};
use crate::pubsub::Kind;
use crate::server::Ctx;
use basalt_proto::Frame;
use bytes::Bytes;

macro_rules! ps_cmd {
    ($name:literal, $arity:expr, $flags:expr, $since:literal, $summary:literal, $cx:literal, $h:expr) => {
        Command {
            name: $name,
            arity: $arity,
            flags: $flags,
            acl: acl::PUBSUB,
            group: "pubsub",
            since: $since,
            summary: $summary,
            complexity: $cx,
            handler: Some($h),
            ..Command::EMPTY
        }
    };
}

const NOT_KEY: &[&str] = &["not_key"];
const SUB: u32 = PUBSUB | NOSCRIPT | LOADING | STALE;

/// In the order Redis 7.0 lists them (COMMAND INFO PUBSUB).
const PUBSUB_SUBCOMMANDS: &[Command] = &[
    ps_cmd!(
        "numsub",
        -2,
        PUBSUB | LOADING | STALE,
        "2.8.0",
        "Get the count of subscribers for channels",
        "O(N) for the NUMSUB subcommand, where N is the number of requested channels",
        pubsub_numsub
    ),
    Command {
        acl: 0,
        ..ps_cmd!(
            "help",
            2,
            LOADING | STALE,
            "6.2.0",
            "Show helpful text about the different subcommands",
            "O(1)",
            pubsub_help
        )
    },
    ps_cmd!(
        "shardnumsub",
        -2,
        PUBSUB | LOADING | STALE,
        "7.0.0",
        "Get the count of subscribers for shard channels",
        "O(N) for the SHARDNUMSUB subcommand, where N is the number of requested shard channels",
        pubsub_shardnumsub
    ),
    ps_cmd!(
        "shardchannels",
        -2,
        PUBSUB | LOADING | STALE,
        "7.0.0",
        "List active shard channels",
        "O(N) where N is the number of active shard channels, and assuming constant time pattern matching (relatively short shard channels).",
        pubsub_shardchannels
    ),
    ps_cmd!(
        "channels",
        -2,
        PUBSUB | LOADING | STALE,
        "2.8.0",
        "List active channels",
        "O(N) where N is the number of active channels, and assuming constant time pattern matching (relatively short channels and patterns)",
        pubsub_channels
    ),
    ps_cmd!(
        "numpat",
        2,
        PUBSUB | LOADING | STALE,
        "2.8.0",
        "Get the count of unique patterns pattern subscriptions",
        "O(1)",
        pubsub_numpat
    ),
];

/// The pubsub family's commands.
pub const COMMANDS: &[Command] = &[
    ps_cmd!(
        "subscribe",
        -2,
        SUB,
        "2.0.0",
        "Listen for messages published to the given channels",
        "O(N) where N is the number of channels to subscribe to.",
        subscribe
    ),
    ps_cmd!(
        "unsubscribe",
        -1,
        SUB,
        "2.0.0",
        "Stop listening for messages posted to the given channels",
        "O(N) where N is the number of clients already subscribed to a channel.",
        unsubscribe
    ),
    ps_cmd!(
        "psubscribe",
        -2,
        SUB,
        "2.0.0",
        "Listen for messages published to channels matching the given patterns",
        "O(N) where N is the number of patterns the client is already subscribed to.",
        psubscribe
    ),
    ps_cmd!(
        "punsubscribe",
        -1,
        SUB,
        "2.0.0",
        "Stop listening for messages posted to channels matching the given patterns",
        "O(N+M) where N is the number of patterns the client is already subscribed and M is the number of total patterns subscribed in the system (by any client).",
        punsubscribe
    ),
    Command {
        keys: (1, -1, 1),
        key_specs: &[KeySpec::rest(1, 1, NOT_KEY)],
        ..ps_cmd!(
            "ssubscribe",
            -2,
            SUB,
            "7.0.0",
            "Listen for messages published to the given shard channels",
            "O(N) where N is the number of shard channels to subscribe to.",
            ssubscribe
        )
    },
    Command {
        keys: (1, -1, 1),
        key_specs: &[KeySpec::rest(1, 1, NOT_KEY)],
        ..ps_cmd!(
            "sunsubscribe",
            -1,
            SUB,
            "7.0.0",
            "Stop listening for messages posted to the given shard channels",
            "O(N) where N is the number of clients already subscribed to a shard channel.",
            sunsubscribe
        )
    },
    ps_cmd!(
        "publish",
        3,
        PUBSUB | LOADING | STALE | FAST | MAY_REPLICATE,
        "2.0.0",
        "Post a message to a channel",
        "O(N+M) where N is the number of clients subscribed to the receiving channel and M is the total number of subscribed patterns (by any client).",
        publish
    ),
    Command {
        keys: (1, 1, 1),
        key_specs: &[KeySpec::single(1, NOT_KEY)],
        ..ps_cmd!(
            "spublish",
            3,
            PUBSUB | LOADING | STALE | FAST | MAY_REPLICATE,
            "7.0.0",
            "Post a message to a shard channel",
            "O(N) where N is the number of clients subscribed to the receiving shard channel.",
            spublish
        )
    },
    Command {
        name: "pubsub",
        arity: -2,
        group: "pubsub",
        since: "2.8.0",
        summary: "A container for Pub/Sub commands",
        complexity: "Depends on subcommand.",
        subcommands: PUBSUB_SUBCOMMANDS,
        ..Command::EMPTY
    },
];

fn sub(ctx: &mut Ctx<'_>, kind: Kind, names: &[Bytes], subscribe: bool) -> CmdResult {
    let shared = ctx.client.shared.clone();
    let proto = ctx.client.proto;
    let hub = &ctx.srv.pubsub;
    if subscribe {
        hub.subscribe(&mut ctx.client.subs, &shared, proto, kind, names);
    } else {
        hub.unsubscribe(&mut ctx.client.subs, &shared, proto, kind, names);
    }
    ctx.client.reply_in_outbox = true;
    // Never sent: the confirmations are in the outbox.
    Ok(Frame::Null)
}

fn subscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    sub(ctx, Kind::Channel, &args[1..], true)
}

fn unsubscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    sub(ctx, Kind::Channel, &args[1..], false)
}

fn psubscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    sub(ctx, Kind::Pattern, &args[1..], true)
}

fn punsubscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    sub(ctx, Kind::Pattern, &args[1..], false)
}

fn ssubscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    sub(ctx, Kind::Shard, &args[1..], true)
}

fn sunsubscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    sub(ctx, Kind::Shard, &args[1..], false)
}

fn publish(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let n = ctx.srv.pubsub.publish(&args[1], &args[2], false);
    Ok(Frame::Integer(n as i64))
}

fn spublish(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let n = ctx.srv.pubsub.publish(&args[1], &args[2], true);
    Ok(Frame::Integer(n as i64))
}

/// `ERR unknown subcommand or wrong number of arguments for 'CHANNELS'. Try PUBSUB HELP.`
fn syntax(sub: &[u8]) -> Error {
    Error::msg(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
        String::from_utf8_lossy(sub)
    ))
}

fn channel_list(ctx: &mut Ctx<'_>, args: &[Bytes], shard: bool) -> CmdResult {
    if args.len() > 3 {
        return Err(syntax(&args[1]));
    }
    let pattern = args.get(2).map(|p| &p[..]);
    let list = ctx.srv.pubsub.channels(pattern, shard);
    Ok(Frame::Array(list.into_iter().map(Frame::Bulk).collect()))
}

fn pubsub_channels(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    channel_list(ctx, args, false)
}

fn pubsub_shardchannels(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    channel_list(ctx, args, true)
}

fn numsub(ctx: &mut Ctx<'_>, args: &[Bytes], shard: bool) -> CmdResult {
    let mut out = Vec::with_capacity((args.len() - 2) * 2);
    for ch in &args[2..] {
        out.push(Frame::Bulk(ch.clone()));
        out.push(Frame::Integer(ctx.srv.pubsub.numsub(ch, shard) as i64));
    }
    Ok(Frame::Array(out))
}

fn pubsub_numsub(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    numsub(ctx, args, false)
}

fn pubsub_shardnumsub(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    numsub(ctx, args, true)
}

fn pubsub_numpat(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.srv.pubsub.numpat() as i64))
}

fn pubsub_help(_ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let lines = [
        "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CHANNELS [<pattern>]",
        "    Return the currently active channels matching a <pattern> (default: '*').",
        "NUMPAT",
        "    Return number of subscriptions to patterns.",
        "NUMSUB [<channel> ...]",
        "    Return the number of subscribers for the specified channels, excluding",
        "    pattern subscriptions(default: no channels).",
        "SHARDCHANNELS [<pattern>]",
        "    Return the currently active shard level channels matching a <pattern> (default: '*').",
        "SHARDNUMSUB [<shardchannel> ...]",
        "    Return the number of subscribers for the specified shard level channel(s)",
        "HELP",
        "    Prints this help.",
    ];
    Ok(Frame::Array(
        lines
            .iter()
            .map(|l| Frame::Simple(Bytes::from_static(l.as_bytes())))
            .collect(),
    ))
}
