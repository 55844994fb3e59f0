//! Running one script or function: the `redis.call` family bound to the calling client,
//! `KEYS`/`ARGV`, the protected call, and the conversion of its outcome into a reply.
//!
//! Commands called from a script go through `Server::call`, like EXEC's queued
//! commands, after Redis's script checks (unknown command, arity, `noscript`, writes in
//! a read-only script). They run as the calling client with the script's own database
//! (SELECT inside a script does not leak out) and protocol (`redis.setresp`), and they
//! cannot block.

use super::convert::{error_table, frame_to_lua, lua_to_frame};
use super::number::fmt_g;
use super::vm::Vm;
use super::{RunState, error};
use crate::cmd::{Lookup, flags};
use crate::error::{CmdResult, Error};
use crate::server::{Client, Ctx, Server};
use basalt_proto::{Frame, Protocol};
use bytes::Bytes;
use mlua::{Function, Lua, MultiValue, Table, Value};
use std::cell::{Cell, RefCell};
use std::sync::atomic::Ordering;

/// What to run and how.
pub struct Spec<'a> {
    /// The compiled script or the function's callback.
    pub func: &'a Function,
    /// SHA1 (EVAL) or function name, for error messages and FUNCTION STATS.
    pub name: String,
    /// An EVAL script (KEYS/ARGV globals) rather than a function (keys, args arguments).
    pub eval: bool,
    /// Write commands are refused.
    pub read_only: bool,
    /// The key names.
    pub keys: &'a [Bytes],
    /// The other arguments.
    pub args: &'a [Bytes],
    /// The calling command, for FUNCTION STATS.
    pub command: &'a [Bytes],
}

/// The script's view of the server while it runs.
struct Env<'a> {
    srv: &'a Server,
    client: RefCell<&'a mut Client>,
    now: u64,
    read_only: bool,
    st: &'a RunState,
    resp3: Cell<bool>,
    db: Cell<usize>,
    /// `redis.set_repl` flags (`REPL_AOF` = 1, `REPL_REPLICA` = 2).
    repl: Cell<i64>,
}

const UNKNOWN: &str = "Unknown Redis command called from script";
const ARITY: &str = "Wrong number of args calling Redis command from script";
const NOSCRIPT: &str = "This Redis command is not allowed from script";
const READONLY: &str = "Write commands are not allowed from read-only scripts.";
const NO_ARGS: &str = "Please specify at least one argument for this redis lib call";
const BAD_ARG: &str = "Lua redis lib command arguments must be strings or integers";

impl Env<'_> {
    /// Redis's `scriptCall`: the command's reply, or the script-level refusal.
    fn exec(&self, args: Vec<Bytes>) -> Result<Frame, &'static str> {
        let srv = self.srv;
        let resolved = match srv.commands.lookup(&args) {
            Lookup::Found(r) => r,
            _ => return Err(UNKNOWN),
        };
        let refuse = |msg: &'static str| {
            srv.cmd_stats[resolved.id]
                .rejected
                .fetch_add(1, Ordering::Relaxed);
            srv.count_error(&Error::msg(format!("ERR {msg}")));
            Err(msg)
        };
        if !resolved.cmd.arity_ok(args.len()) {
            return refuse(ARITY);
        }
        let top = resolved.parent.unwrap_or(resolved.cmd);
        if resolved.cmd.has(flags::NOSCRIPT) || top.has(flags::NOSCRIPT) {
            return refuse(NOSCRIPT);
        }
        let writes = resolved.cmd.has(flags::WRITE);
        if self.read_only && (writes || resolved.cmd.has(flags::MAY_REPLICATE)) {
            return refuse(READONLY);
        }
        if writes {
            self.st.wrote.store(true, Ordering::Release);
        }
        let mut guard = self.client.borrow_mut();
        let client: &mut Client = &mut guard;
        let (db, proto) = (client.db, client.proto);
        client.db = self.db.get();
        client.proto = if self.resp3.get() {
            Protocol::Resp3
        } else {
            Protocol::Resp2
        };
        let logged_before = client.aof_exec.as_ref().map(Vec::len);
        let reply = srv.call(client, resolved, &args, self.now);
        if self.repl.get() & 1 == 0
            && let (Some(before), Some(effects)) = (logged_before, client.aof_exec.as_mut())
        {
            // redis.set_repl without REPL_AOF: this command's effects stay out of the AOF.
            effects.truncate(before);
        }
        // A blocking command answered as if timed out; it must not wait.
        client.block = None;
        self.db.set(client.db);
        client.db = db;
        client.proto = proto;
        Ok(reply)
    }
}

/// Lua arguments of `redis.call` as command arguments (numbers as `%.17g`).
fn command_args(a: &MultiValue) -> Result<Vec<Bytes>, &'static str> {
    if a.is_empty() {
        return Err(NO_ARGS);
    }
    let mut out = Vec::with_capacity(a.len());
    for v in a.iter() {
        match v {
            Value::String(s) => out.push(Bytes::copy_from_slice(&s.as_bytes())),
            Value::Integer(i) => out.push(Bytes::from(fmt_g(*i as f64, 17))),
            Value::Number(n) => out.push(Bytes::from(fmt_g(*n, 17))),
            _ => return Err(BAD_ARG),
        }
    }
    Ok(out)
}

/// An error raised (redis.call) or returned as a table (redis.pcall).
fn fail(lua: &Lua, msg: &str, raise: bool, counted: bool) -> mlua::Result<Value> {
    let text = error::error_text(msg);
    if raise {
        return Err(mlua::Error::external(error::Raise {
            msg: text,
            table: true,
            ignore_stats: counted,
        }));
    }
    let t = lua.create_table()?;
    t.raw_set("err", text)?;
    if counted {
        t.raw_set("ignore_error_stats_update", true)?;
    }
    Ok(Value::Table(t))
}

/// Lifts the VM's memory limit while Basalt itself builds Lua values (`KEYS`, `ARGV`,
/// command replies), and puts it back when dropped.
///
/// Why: with a limit set, mlua performs every value creation inside its own protected
/// call (a fresh C closure and a `lua_pcall` per string or table slot, about 2,000
/// instructions per value), because an allocation may fail. Without a limit the
/// allocator cannot fail (a real out-of-memory aborts the process anyway), so mlua
/// pushes directly. What Basalt builds is bounded by the request (its arguments) and by
/// one command reply; the script's own allocations stay under the hard limit. If the
/// values built went past the limit, dropping the guard collects garbage, and the
/// script's next allocation fails with "not enough memory" as usual.
struct LimitLifted<'a> {
    lua: &'a Lua,
    limit: usize,
}

impl<'a> LimitLifted<'a> {
    fn new(lua: &'a Lua) -> LimitLifted<'a> {
        let limit = lua.set_memory_limit(0).unwrap_or(0);
        LimitLifted { lua, limit }
    }
}

impl Drop for LimitLifted<'_> {
    fn drop(&mut self) {
        if self.limit == 0 {
            return;
        }
        if self.lua.used_memory() > self.limit {
            let _ = self.lua.gc_collect();
        }
        let _ = self.lua.set_memory_limit(self.limit);
    }
}

fn redis_call(lua: &Lua, env: &Env<'_>, a: MultiValue, raise: bool) -> mlua::Result<Value> {
    let _lifted = LimitLifted::new(lua);
    let args = match command_args(&a) {
        Ok(v) => v,
        Err(msg) => return fail(lua, msg, raise, false),
    };
    match env.exec(args) {
        Err(msg) => fail(lua, msg, raise, true),
        Ok(Frame::Error(e)) => {
            if raise {
                Err(error::command(&format!("-{}", String::from_utf8_lossy(&e))))
            } else {
                Ok(Value::Table(error_table(lua, &e)?))
            }
        }
        Ok(f) => frame_to_lua(lua, &f, env.resp3.get()),
    }
}

fn strings(lua: &Lua, items: &[Bytes]) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(items.len(), 0)?;
    for (i, s) in items.iter().enumerate() {
        t.raw_set(i + 1, lua.create_string(s)?)?;
    }
    Ok(t)
}

thread_local! {
    /// The running script's [`Env`] (type-erased), set by [`run`] for the duration of
    /// the script call on this thread; null otherwise.
    static CURRENT: Cell<*const ()> = const { Cell::new(std::ptr::null()) };
}

/// Clears [`CURRENT`] when the run ends, also on unwinding.
struct CurrentGuard;

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(std::ptr::null()));
    }
}

/// Calls `f` with the running script's environment, or returns `None` outside a run.
fn with_env<R>(f: impl FnOnce(&Env<'_>) -> R) -> Option<R> {
    let p = CURRENT.with(|c| c.get());
    if p.is_null() {
        return None;
    }
    // SAFETY: `run` stores a pointer to its `Env` (a local that outlives the script call)
    // only while it calls the script on this thread, and `CurrentGuard` clears it before
    // the `Env` is dropped. The callbacks run synchronously on this thread inside that
    // call, and only take shared references (the client is behind a `RefCell`).
    let env = unsafe { &*(p as *const Env<'_>) };
    Some(f(env))
}

/// Installs `redis.call`, `redis.pcall`, `redis.setresp` and `redis.set_repl` in a VM's
/// `redis` table once; they act on the script that is running (see [`run`]) and raise
/// Redis's "can only be called inside a script invocation" otherwise.
pub fn install(lua: &Lua, redis: &Table) -> mlua::Result<()> {
    for (name, raise) in [("call", true), ("pcall", false)] {
        redis.raw_set(
            name,
            lua.create_function(move |lua, a: MultiValue| {
                with_env(|env| redis_call(lua, env, a, raise)).unwrap_or_else(|| {
                    Err(error::table(
                        "redis.call/pcall can only be called inside a script invocation",
                    ))
                })
            })?,
        )?;
    }
    redis.raw_set(
        "setresp",
        lua.create_function(|_, a: MultiValue| {
            with_env(|env| {
                if a.len() != 1 {
                    return Err(error::table("redis.setresp() requires one argument."));
                }
                let resp = super::args::to_number(&a[0]).unwrap_or(0.0) as i64;
                if resp != 2 && resp != 3 {
                    return Err(error::table("RESP version must be 2 or 3."));
                }
                env.resp3.set(resp == 3);
                Ok(())
            })
            .unwrap_or_else(|| {
                Err(error::table(
                    "redis.setresp can only be called inside a script invocation",
                ))
            })
        })?,
    )?;
    redis.raw_set(
        "set_repl",
        lua.create_function(|_, a: MultiValue| {
            with_env(|env| {
                if a.len() != 1 {
                    return Err(error::table("redis.set_repl() requires two arguments."));
                }
                let f = super::args::to_number(&a[0]).unwrap_or(0.0) as i64;
                if f & !3 != 0 {
                    return Err(error::table(
                        "Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.",
                    ));
                }
                // REPL_AOF decides whether the commands' effects reach the AOF; there are
                // no replicas yet for REPL_REPLICA.
                env.repl.set(f);
                Ok(())
            })
            .unwrap_or_else(|| {
                Err(error::table(
                    "redis.set_repl can only be called inside a script invocation",
                ))
            })
        })?,
    )?;
    Ok(())
}

/// Runs `spec` on `vm` for the client in `ctx` and returns the reply.
pub fn run(vm: &Vm, ctx: &mut Ctx<'_>, st: &RunState, spec: Spec<'_>) -> CmdResult {
    let srv = ctx.srv;
    let now = ctx.now;
    st.begin(spec.eval, false, spec.name.clone(), spec.command.to_vec());
    let caller_db = ctx.client.db;
    let last_cmd = ctx.client.shared.last_cmd.load(Ordering::Relaxed);
    ctx.client.in_script = true;
    // The script's writes reach the AOF as their effects, together, like an EXEC's
    // (inside an EXEC they join the EXEC's).
    let own_log = srv.aof.is_on() && ctx.client.aof_exec.is_none();
    if own_log {
        ctx.client.aof_exec = Some(Vec::new());
    }
    let outcome = {
        let env = Env {
            srv,
            client: RefCell::new(&mut *ctx.client),
            now,
            read_only: spec.read_only,
            st,
            resp3: Cell::new(false),
            db: Cell::new(caller_db),
            repl: Cell::new(3),
        };
        let lua = &vm.lua;
        let result = (|| -> mlua::Result<CmdResult> {
            let params = {
                let _lifted = LimitLifted::new(lua);
                let keys = strings(lua, spec.keys)?;
                let args = strings(lua, spec.args)?;
                if spec.eval {
                    vm.globals.raw_set("KEYS", keys)?;
                    vm.globals.raw_set("ARGV", args)?;
                    None
                } else {
                    Some((keys, args))
                }
            };
            CURRENT.with(|c| c.set(&env as *const Env<'_> as *const ()));
            let _guard = CurrentGuard;
            let (ok, val): (bool, Value) = match params {
                None => vm.runner.call(spec.func)?,
                Some((keys, args)) => vm.runner.call((spec.func, keys, args))?,
            };
            Ok(outcome_of(ok, &val, env.resp3.get(), &spec.name))
        })();
        match result {
            Ok(r) => r,
            Err(e) => {
                let text = error::plain_text(&e);
                Err(Error::msg(format!(
                    "ERR Error running script {}, {}",
                    spec.name,
                    text.chars().take(100).collect::<String>()
                )))
            }
        }
    };
    if own_log
        && let Some(effects) = ctx.client.aof_exec.take()
        && !effects.is_empty()
    {
        ctx.client.aof_seq = srv.aof.append(&effects);
    }
    // EVAL/FCALL themselves are not logged: their effects are.
    ctx.propagate_nothing();
    let client = &mut *ctx.client;
    client.in_script = false;
    client.db = caller_db;
    client
        .shared
        .db
        .store(caller_db, std::sync::atomic::Ordering::Relaxed);
    client.shared.last_cmd.store(last_cmd, Ordering::Relaxed);
    st.end();
    if matches!(&outcome, Err(e) if e.0.ends_with("not enough memory")) {
        let _ = vm.lua.gc_collect();
        let _ = vm.lua.gc_collect();
    }
    outcome
}

/// The reply for a script's `xpcall` outcome.
fn outcome_of(ok: bool, val: &Value, resp3: bool, name: &str) -> CmdResult {
    if ok {
        return match lua_to_frame(val, resp3) {
            Frame::Error(e) => Err(Error(String::from_utf8_lossy(&e).into_owned())),
            f => Ok(f),
        };
    }
    let t = match val {
        Value::Table(t) => t,
        other => {
            let msg = match other {
                Value::String(s) => s.to_string_lossy(),
                v => error::value_text(v).unwrap_or_else(|| "execution failure".to_string()),
            };
            let msg: String = msg.chars().take(100).collect();
            return Err(Error::msg(clean(&format!(
                "ERR Error running script {name}, {msg}"
            ))));
        }
    };
    let text = |k: &str| -> Option<String> {
        match t.raw_get::<Value>(k).ok()? {
            Value::String(s) => Some(s.to_string_lossy()),
            Value::Integer(i) => Some(i.to_string()),
            Value::Number(n) => Some(fmt_g(n, 14)),
            _ => None,
        }
    };
    let msg = text("err").unwrap_or_else(|| "ERR unknown error".to_string());
    let full = match (text("source"), text("line")) {
        (Some(source), Some(line)) => format!("{msg} script: {name}, on {source}:{line}."),
        _ => msg,
    };
    Err(Error::msg(clean(&full)))
}

fn clean(s: &str) -> String {
    s.trim_end_matches(['\r', '\n'])
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_outside_a_script_run_raises_like_redis() {
        let vm = Vm::new(
            super::super::vm::Kind::Eval,
            std::sync::Arc::new(parking_lot::Mutex::new(
                super::super::rand48::Rand48::default(),
            )),
        )
        .unwrap();
        let f = vm
            .lua
            .load("return redis.call('ping')")
            .into_function()
            .unwrap();
        let (ok, v): (bool, Value) = vm.runner.call(f).unwrap();
        assert!(!ok);
        let t = v.as_table().unwrap();
        assert_eq!(
            t.raw_get::<String>("err").unwrap(),
            "ERR redis.call/pcall can only be called inside a script invocation"
        );
    }

    #[test]
    fn numbers_become_arguments_like_redis() {
        let lua = Lua::new();
        let a: MultiValue = lua
            .load("return 'get', 1.5, 100, 0.1, 1e20")
            .eval()
            .unwrap();
        let args = command_args(&a).unwrap();
        let texts: Vec<&[u8]> = args.iter().map(|b| b.as_ref()).collect();
        assert_eq!(
            texts,
            vec![
                &b"get"[..],
                b"1.5",
                b"100",
                b"0.10000000000000001",
                b"1e+20"
            ]
        );
        let a: MultiValue = lua.load("return 'get', true").eval().unwrap();
        assert_eq!(command_args(&a), Err(BAD_ARG));
        assert_eq!(command_args(&MultiValue::new()), Err(NO_ARGS));
    }
}
