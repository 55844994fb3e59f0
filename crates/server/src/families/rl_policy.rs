//! `RL.POLICY SET|GET|DEL|LIST`: named rate-limit policies used as
//! `RL.CHECK key POLICY name` and in `RL.MCHECK`.
//!
//! Policies are server state (`Server::rl_policies`), not keys: FLUSHALL, SELECT and
//! key expiry do not touch them. They are saved as RDB aux fields (`basalt-rl-policy`,
//! one per policy, holding its `RL.POLICY SET` arguments RESP-encoded): a file without
//! `RL.*` keys then stays loadable by Redis, which skips aux fields it does not know,
//! whereas a module value would need a key to hang on and would make Redis refuse the
//! file. The AOF logs `RL.POLICY SET`/`DEL` as sent (they do not depend on time), and a
//! rewrite writes one `RL.POLICY SET` per policy (or the aux fields in an RDB preamble).
//! The parsing and matching are `basalt_engine::rl_policy`.

use crate::cmd::Command;
use crate::cmd::flags::*;
use crate::error::{CmdResult, Error};
use crate::server::{Ctx, Server};
use basalt_engine::rl_policy::{Policy, spec_words};
use basalt_proto::Frame;
use bytes::Bytes;

/// The RDB aux field holding one policy.
pub const AUX_FIELD: &str = "basalt-rl-policy";

macro_rules! policy_cmd {
    ($name:literal, $arity:expr, $flags:expr, $summary:literal, $h:expr) => {
        Command {
            name: $name,
            arity: $arity,
            flags: $flags,
            group: "rate_limit",
            since: "0.1.0",
            summary: $summary,
            complexity: "O(1) (LIST: O(N) policies)",
            handler: Some($h),
            ..Command::EMPTY
        }
    };
}

const SUBCOMMANDS: &[Command] = &[
    policy_cmd!(
        "set",
        -5,
        WRITE,
        "Creates or replaces a named rate-limit policy: a spec, SHADOW, OVERRIDE pattern spec.",
        policy_set
    ),
    policy_cmd!(
        "get",
        3,
        READONLY | FAST,
        "Describes a named rate-limit policy.",
        policy_get
    ),
    policy_cmd!(
        "del",
        3,
        WRITE | FAST,
        "Deletes a named rate-limit policy.",
        policy_del
    ),
    policy_cmd!(
        "list",
        2,
        READONLY,
        "Lists the names of the rate-limit policies.",
        policy_list
    ),
];

/// The RL.POLICY container.
pub const COMMANDS: &[Command] = &[Command {
    name: "rl.policy",
    arity: -2,
    group: "rate_limit",
    since: "0.1.0",
    summary: "A container for named rate-limit policies",
    complexity: "Depends on subcommand.",
    subcommands: SUBCOMMANDS,
    ..Command::EMPTY
}];

fn parse(args: &[Bytes]) -> Result<Policy, Error> {
    let refs: Vec<&[u8]> = args.iter().map(|a| a.as_ref()).collect();
    Policy::parse(&refs).map_err(|e| Error::msg(format!("ERR {e}")))
}

fn policy_set(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let policy = parse(&argv[3..])?;
    // While loading only the AOF runs commands: what it holds is never refused (the
    // limit may have been lowered since it was written).
    let max = if ctx
        .srv
        .persist
        .loading
        .load(std::sync::atomic::Ordering::Acquire)
    {
        usize::MAX
    } else {
        ctx.srv.config.read().rl_max_policies as usize
    };
    ctx.srv
        .rl_policies
        .write()
        .set(&argv[2], policy, max)
        .map_err(|e| Error::msg(format!("ERR {e}")))?;
    // Server state worth a save, as FUNCTION LOAD is in Redis.
    ctx.changed(1);
    Ok(Frame::ok())
}

fn spec_text(spec: &basalt_engine::rl::Spec) -> Frame {
    let words: Vec<Vec<u8>> = spec_words(spec);
    Frame::Bulk(Bytes::from(words.join(&b' ')))
}

/// `RL.POLICY GET name`: `spec` (as `RL.CHECK` takes it, one string), `shadow` (0/1)
/// and `overrides` (pattern, spec, ...), or a null reply.
fn policy_get(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let policies = ctx.srv.rl_policies.read();
    let Some(p) = policies.get(&argv[2]) else {
        return Ok(Frame::Null);
    };
    let overrides = p
        .overrides
        .iter()
        .flat_map(|(pattern, spec)| [Frame::Bulk(Bytes::from(pattern.clone())), spec_text(spec)])
        .collect();
    Ok(Frame::Map(vec![
        (Frame::bulk(b"spec"), spec_text(&p.spec)),
        (Frame::bulk(b"shadow"), Frame::Integer(i64::from(p.shadow))),
        (Frame::bulk(b"overrides"), Frame::Array(overrides)),
    ]))
}

fn policy_del(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let deleted = ctx.srv.rl_policies.write().del(&argv[2]);
    if deleted {
        ctx.changed(1);
    } else if ctx.aof_on() {
        ctx.propagate_nothing();
    }
    Ok(Frame::Integer(i64::from(deleted)))
}

fn policy_list(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    let names = ctx
        .srv
        .rl_policies
        .read()
        .iter()
        .map(|(name, _)| Frame::Bulk(Bytes::from(name.clone())))
        .collect();
    Ok(Frame::Array(names))
}

/// Every policy as the arguments of the `RL.POLICY SET` that recreates it.
pub fn set_commands(srv: &Server) -> Vec<Vec<Vec<u8>>> {
    srv.rl_policies
        .read()
        .iter()
        .map(|(name, p)| {
            let mut cmd = vec![b"RL.POLICY".to_vec(), b"SET".to_vec(), name.clone()];
            cmd.extend(p.to_args());
            cmd
        })
        .collect()
}

/// The aux field values to save: each policy's name and arguments, RESP-encoded.
pub fn aux_values(srv: &Server) -> Vec<Vec<u8>> {
    basalt_persist::aof::resp::encode_tails(&set_commands(srv), 2)
}

/// Loads one aux field value written by [`aux_values`] (replacing a policy of the same
/// name; the `rl-max-policies` limit is not applied to what a file holds).
pub fn load_aux(srv: &Server, value: &[u8]) -> Result<(), String> {
    let bad = || format!("Invalid {AUX_FIELD} aux field");
    let mut r = basalt_persist::aof::resp::CommandReader::new(value, value.len() as u64, 0);
    let words = r.next_command().map_err(|_| bad())?.ok_or_else(bad)?;
    let (name, rest) = words.split_first().ok_or_else(bad)?;
    let refs: Vec<&[u8]> = rest.iter().map(Vec::as_slice).collect();
    let policy = Policy::parse(&refs).map_err(|e| format!("{}: {e}", bad()))?;
    srv.rl_policies
        .write()
        .set(name, policy, usize::MAX)
        .map_err(|e| format!("{}: {e}", bad()))
}
