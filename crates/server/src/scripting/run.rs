//! Running one script or function: the `redis.call` family bound to the calling client,
//! `KEYS`/`ARGV`, the protected call, and the conversion of its outcome into a reply.
//!
//! Commands called from a script go through `Server::call`, like EXEC's queued
//! commands, after Redis's script checks (unknown command, arity, `noscript`, writes in
//! a read-only script). They run as the calling client with the script's own database
//! (SELECT inside a script does not leak out) and protocol (`redis.setresp`), and they
//! cannot block.

use super::convert::{lua_to_frame, push_bytes, push_error_table, push_frame};
use super::number::fmt_g;
use super::vm::Vm;
use super::{RunState, error};
use crate::cmd::{Lookup, flags};
use crate::error::{CmdResult, Error};
use crate::server::{Client, Ctx, Server};
use basalt_proto::{Frame, Protocol};
use bytes::Bytes;
use mlua::{Function, Lua, MultiValue, Table, Value, ffi};
use std::cell::{Cell, RefCell, UnsafeCell};
use std::ffi::c_int;
use std::sync::atomic::Ordering;

/// What to run and how.
pub struct Spec<'a> {
    /// The compiled script or the function's callback.
    pub func: &'a Function,
    /// SHA1 (EVAL) or function name, for error messages and FUNCTION STATS.
    pub name: &'a str,
    /// An EVAL script (KEYS/ARGV globals) rather than a function (keys, args arguments).
    pub eval: bool,
    /// Write commands are refused.
    pub read_only: bool,
    /// The server was over `maxmemory` when the script started and the script is not
    /// `allow-oom`: its first write, if `denyoom`, is refused.
    pub deny_oom: bool,
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
    deny_oom: bool,
    st: &'a RunState,
    resp3: Cell<bool>,
    db: Cell<usize>,
    /// `redis.set_repl` flags (`REPL_AOF` = 1, `REPL_REPLICA` = 2).
    repl: Cell<i64>,
    /// `KEYS` (or a function's `keys`).
    keys: &'a [Bytes],
    /// `ARGV` (or a function's `args`).
    args: &'a [Bytes],
    /// SHA1 or function name.
    name: &'a str,
    /// The calling command.
    command: &'a [Bytes],
    /// The reply of the last `redis.call`, held here (not in the C function's frame)
    /// while it is pushed: see [`redis_call_raw`].
    reply: UnsafeCell<Option<Frame>>,
    /// Formatting room for reply conversion.
    scratch: UnsafeCell<Vec<u8>>,
    /// A panic caught in a command called from the script, resumed by [`run`].
    panic: Cell<Option<Box<dyn std::any::Any + Send>>>,
}

const UNKNOWN: &str = "ERR Unknown Redis command called from script";
const ARITY: &str = "ERR Wrong number of args calling Redis command from script";
const NOSCRIPT: &str = "ERR This Redis command is not allowed from script";
const READONLY: &str = "ERR Write commands are not allowed from read-only scripts.";
const NO_ARGS: &str = "ERR Please specify at least one argument for this redis lib call";
const BAD_ARG: &str = "ERR Lua redis lib command arguments must be strings or integers";

impl Env<'_> {
    /// Redis's `scriptCall`: the command's reply, or the script-level refusal.
    fn exec(&self, args: Vec<Bytes>) -> Result<Frame, &'static str> {
        let srv = self.srv;
        let resolved = match srv.commands.lookup(&args) {
            Lookup::Found(r) => r,
            _ => {
                srv.count_error(&Error::msg(UNKNOWN));
                return Err(UNKNOWN);
            }
        };
        let refuse = |msg: &'static str| {
            srv.cmd_stats[resolved.id]
                .rejected
                .fetch_add(1, Ordering::Relaxed);
            srv.count_error(&Error::msg(msg));
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
        // Redis's `scriptVerifyWriteCommandAllow`: no writes while a failed save or AOF
        // write denies them (the message names which, so it is not static).
        if writes && srv.persist.deny_writes.load(Ordering::Relaxed) {
            let e = Error::msg(crate::persist::misconf(srv));
            srv.cmd_stats[resolved.id]
                .rejected
                .fetch_add(1, Ordering::Relaxed);
            srv.count_error(&e);
            return Ok(e.into_frame());
        }
        // Redis's `scriptVerifyOOM`: over maxmemory at the start, the script may not
        // begin writing with a command that can grow memory; once it has written, it
        // runs to the end (atomicity wins).
        if self.deny_oom
            && resolved.cmd.has(flags::DENYOOM)
            && !self.st.wrote.load(Ordering::Relaxed)
        {
            return refuse(crate::error::OOM);
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

/// The arguments of the running `redis.call` (stack slots 1..=top) as command
/// arguments: strings as they are, numbers formatted with `%.17g`.
///
/// # Safety
/// `state` is the Lua state of a C function call. Nothing here raises a Lua error
/// (`lua_tolstring` is only used on strings, which it does not convert).
unsafe fn command_args(state: *mut ffi::lua_State) -> Result<Vec<Bytes>, &'static str> {
    let n = unsafe { ffi::lua_gettop(state) };
    if n <= 0 {
        return Err(NO_ARGS);
    }
    let mut out = Vec::with_capacity(n as usize);
    for i in 1..=n {
        match unsafe { ffi::lua_type(state, i) } {
            ffi::LUA_TSTRING => {
                let mut len = 0;
                // SAFETY: a string slot; Lua keeps the bytes alive while the slot holds them.
                let p = unsafe { ffi::lua_tolstring(state, i, &mut len) };
                out.push(Bytes::copy_from_slice(unsafe {
                    std::slice::from_raw_parts(p.cast::<u8>(), len)
                }));
            }
            ffi::LUA_TNUMBER => out.push(Bytes::from(fmt_g(
                unsafe { ffi::lua_tonumber(state, i) },
                17,
            ))),
            _ => return Err(BAD_ARG),
        }
    }
    Ok(out)
}

/// What the Rust half of `redis.call` produced (plain data: the Lua half may `longjmp`
/// over the frame that holds it).
#[derive(Clone, Copy)]
enum Called {
    /// The reply waits in [`Env::reply`].
    Reply,
    /// Refused before running: the message, and whether the error was already counted.
    Refused(&'static str, bool),
    /// The command panicked; the payload waits in [`Env::panic`].
    Panicked,
}

/// The Rust half of `redis.call`: reads the arguments, runs the command, parks the
/// reply in the environment. Raises no Lua error.
///
/// # Safety
/// As [`command_args`].
unsafe fn call_command(state: *mut ffi::lua_State, env: &Env<'_>) -> Called {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let args = unsafe { command_args(state) }.map_err(|m| (m, false))?;
        let reply = env.exec(args).map_err(|m| (m, true))?;
        // SAFETY: only this thread's script run touches the slot, never re-entrantly
        // (scripts cannot call EVAL or FCALL), and no reference to it is live here.
        unsafe { *env.reply.get() = Some(reply) };
        Ok(())
    }));
    match outcome {
        Ok(Ok(())) => Called::Reply,
        Ok(Err((msg, counted))) => Called::Refused(msg, counted),
        Err(payload) => {
            env.panic.set(Some(payload));
            Called::Panicked
        }
    }
}

/// Pushes the error table of a refusal (`{err = msg}`, plus `ignore_error_stats_update`
/// when `counted`).
///
/// # Safety
/// As [`push_frame`]: may raise.
unsafe fn push_refusal(state: *mut ffi::lua_State, msg: &str, counted: bool) {
    unsafe {
        ffi::luaL_checkstack(state, 4, c"error reply".as_ptr());
        ffi::lua_createtable(state, 0, 2);
        push_bytes(state, b"err");
        push_bytes(state, msg.as_bytes());
        ffi::lua_rawset(state, -3);
        if counted {
            push_bytes(state, b"ignore_error_stats_update");
            ffi::lua_pushboolean(state, 1);
            ffi::lua_rawset(state, -3);
        }
    }
}

/// `redis.call` (`raise`) and `redis.pcall`, as C functions working on the raw stack:
/// Redis's `luaRedisGenericCommand`. Errors are error tables, raised by `redis.call`
/// (the script's message handler adds the position) and returned by `redis.pcall`.
///
/// Why raw: as mlua callbacks, each call spent more instructions on argument and reply
/// conversion (`MultiValue`, reference slots) than on a GET. The Rust work
/// ([`call_command`]) completes before anything is pushed; from then on this frame
/// holds only `Copy` data and borrows, so a Lua error raised while pushing (out of
/// memory under `lua-memory-limit`) may `longjmp` over it to the script's protected call.
///
/// # Safety
/// Called by Lua as a C function.
unsafe fn redis_call_raw(state: *mut ffi::lua_State, raise: bool) -> c_int {
    unsafe {
        let p = CURRENT.with(|c| c.get());
        if p.is_null() {
            push_refusal(
                state,
                "ERR redis.call/pcall can only be called inside a script invocation",
                false,
            );
            ffi::lua_error(state);
        }
        // SAFETY: see `with_env`.
        let env = &*(p as *const Env<'_>);
        let called = call_command(state, env);
        ffi::lua_settop(state, 0);
        match called {
            Called::Reply => {}
            Called::Refused(msg, counted) => {
                push_refusal(state, msg, counted);
                if raise {
                    ffi::lua_error(state);
                }
                return 1;
            }
            Called::Panicked => {
                // `run` resumes the panic once the script has unwound.
                push_refusal(
                    state,
                    "ERR internal error in a command called from script",
                    true,
                );
                ffi::lua_error(state);
            }
        }
        // SAFETY: `call_command` filled the slot; nothing else touches it until the next
        // call, and the scratch buffer is only used here.
        let reply = match &*env.reply.get() {
            Some(r) => r,
            None => return 0,
        };
        let scratch = &mut *env.scratch.get();
        match reply {
            Frame::Error(e) => {
                push_error_table(state, e, true);
                if raise {
                    ffi::lua_error(state);
                }
            }
            f => push_frame(state, f, env.resp3.get(), scratch),
        }
        // Pushed: the reply's memory goes back now rather than at the next call.
        *env.reply.get() = None;
        1
    }
}

unsafe extern "C-unwind" fn lua_redis_call(state: *mut ffi::lua_State) -> c_int {
    unsafe { redis_call_raw(state, true) }
}

unsafe extern "C-unwind" fn lua_redis_pcall(state: *mut ffi::lua_State) -> c_int {
    unsafe { redis_call_raw(state, false) }
}

/// Pushes `items` as an array of strings.
///
/// # Safety
/// As [`push_frame`]: may raise.
unsafe fn push_strings(state: *mut ffi::lua_State, items: &[Bytes]) {
    unsafe {
        ffi::luaL_checkstack(state, 2, c"arguments".as_ptr());
        ffi::lua_createtable(state, items.len().min(i32::MAX as usize) as i32, 0);
        for (i, s) in items.iter().enumerate() {
            push_bytes(state, s);
            ffi::lua_rawseti_(state, -2, (i + 1) as i32);
        }
    }
}

/// `params([globals])` for the runner: the running script's keys and arguments as two
/// fresh tables, returned, or stored as `KEYS` and `ARGV` in the table given (an EVAL
/// script's globals). Built on the raw stack: through mlua, each string and table slot
/// cost a protected call under `lua-memory-limit`. Outside a run the tables are empty.
///
/// # Safety
/// Called by Lua as a C function; only borrows are live while it pushes.
unsafe extern "C-unwind" fn lua_run_params(state: *mut ffi::lua_State) -> c_int {
    unsafe {
        let p = CURRENT.with(|c| c.get());
        let (keys, args): (&[Bytes], &[Bytes]) = if p.is_null() {
            (&[], &[])
        } else {
            // SAFETY: see `with_env`.
            let env = &*(p as *const Env<'_>);
            (env.keys, env.args)
        };
        if ffi::lua_type(state, 1) != ffi::LUA_TTABLE {
            push_strings(state, keys);
            push_strings(state, args);
            return 2;
        }
        for (name, items) in [(&b"KEYS"[..], keys), (b"ARGV", args)] {
            push_bytes(state, name);
            push_strings(state, items);
            ffi::lua_rawset(state, 1);
        }
        0
    }
}

/// The `params` function the VM's runner calls (see [`lua_run_params`]).
pub fn params_function(lua: &Lua) -> mlua::Result<Function> {
    // SAFETY: `lua_run_params` follows the C function protocol and raises only through
    // Lua (with nothing to drop in its frame).
    unsafe { lua.create_c_function(lua_run_params) }
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

/// Calls `f` with the running script's name and calling command (for the run info of
/// a busy script), or returns `None` outside a run.
pub(crate) fn with_call<R>(f: impl FnOnce(&str, &[Bytes]) -> R) -> Option<R> {
    with_env(|env| f(env.name, env.command))
}

/// Installs `redis.call`, `redis.pcall`, `redis.setresp` and `redis.set_repl` in a VM's
/// `redis` table once; they act on the script that is running (see [`run`]) and raise
/// Redis's "can only be called inside a script invocation" otherwise.
pub fn install(lua: &Lua, redis: &Table) -> mlua::Result<()> {
    // SAFETY: both follow the C function protocol; see `redis_call_raw`.
    let (call, pcall) = unsafe {
        (
            lua.create_c_function(lua_redis_call)?,
            lua.create_c_function(lua_redis_pcall)?,
        )
    };
    redis.raw_set("call", call)?;
    redis.raw_set("pcall", pcall)?;
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
    st.begin(spec.eval, false);
    let caller_db = ctx.client.db;
    let last_cmd = ctx.client.shared.last_cmd.load(Ordering::Relaxed);
    ctx.client.in_script = true;
    // The script's writes reach the AOF as their effects, together, like an EXEC's
    // (inside an EXEC they join the EXEC's).
    let own_log = srv.aof.is_on() && ctx.client.aof_exec.is_none();
    if own_log {
        ctx.client.aof_exec = Some(Vec::new());
    }
    let panicked;
    // The script's error came from a command (or `redis.pcall`'s table) and was counted.
    let mut counted = false;
    let outcome = {
        let env = Env {
            srv,
            client: RefCell::new(&mut *ctx.client),
            now,
            read_only: spec.read_only,
            deny_oom: spec.deny_oom,
            st,
            resp3: Cell::new(false),
            db: Cell::new(caller_db),
            repl: Cell::new(3),
            keys: spec.keys,
            args: spec.args,
            name: spec.name,
            command: spec.command,
            reply: UnsafeCell::new(None),
            scratch: UnsafeCell::new(Vec::new()),
            panic: Cell::new(None),
        };
        let result = (|| -> mlua::Result<CmdResult> {
            CURRENT.with(|c| c.set(&env as *const Env<'_> as *const ()));
            let _guard = CurrentGuard;
            let (ok, val): (bool, Value) = vm.runner.call((spec.func, !spec.eval))?;
            counted = matches!(&val, Value::Table(t)
                if t.raw_get::<bool>("ignore_error_stats_update").unwrap_or(false));
            Ok(outcome_of(ok, &val, env.resp3.get(), spec.name))
        })();
        panicked = env.panic.take();
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
    ctx.client.error_counted = counted && outcome.is_err();
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
    if let Some(payload) = panicked {
        // A command called from the script panicked: the script has unwound and the run
        // state is clean; the panic continues as it would have without the script.
        std::panic::resume_unwind(payload);
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

    /// `command_args` on the stack of a C call with arguments `a`.
    fn args_of(lua: &Lua, a: MultiValue) -> Result<Vec<Bytes>, &'static str> {
        let mut out = Err("not called");
        // SAFETY: `exec_raw` calls the closure as a protected C function with `a` on its
        // stack; `command_args` raises nothing.
        let _: MultiValue = unsafe { lua.exec_raw(a, |state| out = command_args(state)) }.unwrap();
        out
    }

    #[test]
    fn numbers_become_arguments_like_redis() {
        let lua = Lua::new();
        let a: MultiValue = lua
            .load("return 'get', 1.5, 100, 0.1, 1e20")
            .eval()
            .unwrap();
        let args = args_of(&lua, a).unwrap();
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
        assert_eq!(args_of(&lua, a), Err(BAD_ARG));
        assert_eq!(args_of(&lua, MultiValue::new()), Err(NO_ARGS));
    }
}
