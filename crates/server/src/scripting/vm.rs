//! A sandboxed Lua 5.1 VM as Redis 7.0 sets one up.
//!
//! Globals are protected: scripts see `_G` as an empty proxy whose reads fall through to
//! the real globals table (a missing name raises "Script attempted to access nonexistent
//! global variable") and whose writes raise "Attempt to modify a readonly table". The
//! library tables (`string`, `math`, `redis`, `cjson`, ...) are proxied the same way.
//! `rawset`, `rawget`, `setmetatable`, `getmetatable` and `pairs` see through the proxies
//! so scripts cannot use them to get around the protection.
//!
//! Only what Redis 7.0.15 exposes is there: no `io`, `os`, `debug`, `package`,
//! `require`, `loadfile`, `dofile`, `print`, `setfenv`/`getfenv` or `newproxy`.
//!
//! Errors: a script runs under `xpcall` with a message handler that turns any error into
//! Redis's error table `{err = "ERR ...", source = "@user_script", line = n}` (the
//! position of the script code that failed, skipping C functions).

use super::rand48::Rand48;
use super::{bit, cjson, cmsgpack, error, structlib};
use mlua::{Function, Lua, LuaOptions, MultiValue, StdLib, Table, Value};
use parking_lot::Mutex;
use std::sync::Arc;

/// Chunk name of Basalt's own Lua helpers (their frames are skipped in error positions).
const INTERNAL: &str = "=basalt";

/// Redis version the Lua API reports (`redis.REDIS_VERSION`).
pub const REDIS_VERSION: &str = "7.0.15";
/// `redis.REDIS_VERSION_NUM`: 0x00MMmmpp.
pub const REDIS_VERSION_NUM: f64 = 458_767.0;

/// Base functions Redis 7.0.15 keeps (the rest of Lua's base library is dropped).
const BUILTINS: &[&str] = &[
    "assert",
    "collectgarbage",
    "error",
    "gcinfo",
    "ipairs",
    "load",
    "loadstring",
    "next",
    "rawequal",
    "select",
    "tonumber",
    "tostring",
    "type",
    "unpack",
    "xpcall",
    "_VERSION",
];

/// Which Redis Lua engine a VM serves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// EVAL scripts: `KEYS`/`ARGV` globals, `redis.breakpoint`/`debug`/`replicate_commands`.
    Eval,
    /// FUNCTION libraries: `redis.register_function` at load time.
    Functions,
}

/// A sandboxed VM and the handles Basalt needs to drive it.
pub struct Vm {
    /// The interpreter.
    pub lua: Lua,
    /// The real globals (behind the proxy).
    pub globals: Table,
    /// The metatable of the `_G` proxy (its `__index` is swapped during FUNCTION LOAD).
    pub proxy_meta: Table,
    /// The real `redis` table.
    pub redis: Table,
    /// The globals a library sees while it loads (functions VM only).
    pub library_api: Option<Table>,
    /// The real `redis` table of `library_api` (`register_function` is set per load).
    pub library_redis: Option<Table>,
    /// `runner(f, is_function)`: calls `f` under `xpcall` with the message handler and
    /// returns `ok, value`; the running script's keys and arguments (`run::params`) are
    /// passed to a function, or set as the `KEYS` and `ARGV` globals of an EVAL script.
    pub runner: Function,
    /// `plain(f)`: `pcall(f)` without message handler (library loading).
    pub plain: Function,
    /// The script PRNG behind `math.random` (Redis's `redisLrand48`).
    pub rng: Arc<Mutex<Rand48>>,
}

impl Vm {
    /// Builds a VM for `kind`.
    pub fn new(kind: Kind, rng: Arc<Mutex<Rand48>>) -> mlua::Result<Vm> {
        let lua = Lua::new_with(
            StdLib::TABLE | StdLib::STRING | StdLib::MATH,
            LuaOptions::new(),
        )?;
        let base = lua.globals();
        let globals = lua.create_table()?;
        for name in BUILTINS {
            globals.raw_set(*name, base.raw_get::<Value>(*name)?)?;
        }
        // Registry of proxies: proxy -> real table (weak keys would be pointless, the
        // proxies live as long as the VM).
        let backing = lua.create_table()?;
        let readonly = lua.create_function(|lua, _: MultiValue| -> mlua::Result<()> {
            Err(error::string(lua, "Attempt to modify a readonly table"))
        })?;
        let make_proxy = |real: &Table| -> mlua::Result<Table> {
            let proxy = lua.create_table()?;
            let meta = lua.create_table()?;
            meta.raw_set("__index", real.clone())?;
            meta.raw_set("__newindex", readonly.clone())?;
            proxy.set_metatable(Some(meta))?;
            backing.raw_set(proxy.clone(), real.clone())?;
            Ok(proxy)
        };

        let math: Table = base.raw_get("math")?;
        let r = rng.clone();
        math.raw_set(
            "random",
            lua.create_function(move |lua, a: MultiValue| {
                let x = r.lock().next_f64();
                random(lua, &a, x)
            })?,
        )?;
        let r = rng.clone();
        math.raw_set(
            "randomseed",
            lua.create_function(move |lua, a: MultiValue| {
                let seed = super::args::int(lua, &a, 1, "randomseed")?;
                r.lock().seed(seed as i32);
                Ok(())
            })?,
        )?;

        let mut libs: Vec<(&str, Table)> = vec![
            ("string", base.raw_get("string")?),
            ("table", base.raw_get("table")?),
            ("math", math),
            ("coroutine", base.raw_get("coroutine")?),
            ("cjson", cjson::open(&lua)?),
            ("cmsgpack", cmsgpack::open(&lua)?),
            ("bit", bit::open(&lua)?),
            ("struct", structlib::open(&lua)?),
        ];
        let redis = lua.create_table()?;
        register_common(&lua, &redis)?;
        if kind == Kind::Eval {
            redis.raw_set(
                "breakpoint",
                lua.create_function(|_, _: MultiValue| Ok(false))?,
            )?;
            redis.raw_set("debug", lua.create_function(|_, _: MultiValue| Ok(()))?)?;
            redis.raw_set(
                "replicate_commands",
                lua.create_function(|_, _: MultiValue| Ok(true))?,
            )?;
        }
        super::run::install(&lua, &redis)?;
        libs.push(("redis", redis.clone()));
        for (name, t) in &libs {
            globals.raw_set(*name, make_proxy(t)?)?;
        }
        // The string metatable's __index goes through the proxy too.
        let string_proxy: Table = globals.raw_get("string")?;
        let string_meta: Option<Table> = lua
            .load("return getmetatable('')")
            .set_name(INTERNAL)
            .eval()?;
        let string_meta_proxy = match string_meta {
            Some(m) => {
                m.raw_set("__index", string_proxy)?;
                Value::Table(make_proxy(&m)?)
            }
            None => Value::Nil,
        };

        // Missing globals raise.
        let missing_meta = lua.create_table()?;
        missing_meta.raw_set(
            "__index",
            lua.create_function(|lua, (_t, k): (Value, Value)| -> mlua::Result<()> {
                let name = super::args::to_bytes(&k).unwrap_or_default();
                Err(error::string(
                    lua,
                    &format!(
                        "Script attempted to access nonexistent global variable '{}'",
                        String::from_utf8_lossy(&name)
                    ),
                ))
            })?,
        )?;
        globals.set_metatable(Some(missing_meta.clone()))?;

        let proxy = lua.create_table()?;
        let proxy_meta = lua.create_table()?;
        proxy_meta.raw_set("__index", globals.clone())?;
        proxy_meta.raw_set("__newindex", readonly.clone())?;
        proxy.set_metatable(Some(proxy_meta.clone()))?;
        backing.raw_set(proxy.clone(), globals.clone())?;
        globals.raw_set("_G", proxy.clone())?;

        // Helpers written in Lua: they see the unprotected base functions as upvalues.
        let errtext = lua.create_function(|_, v: Value| Ok(error::value_text(&v)))?;
        let helpers: Table = lua.load(HELPERS).set_name(INTERNAL).call((
            base.raw_get::<Value>("pcall")?,
            base.raw_get::<Value>("rawset")?,
            base.raw_get::<Value>("rawget")?,
            base.raw_get::<Value>("next")?,
            base.raw_get::<Value>("setmetatable")?,
            base.raw_get::<Value>("getmetatable")?,
            base.raw_get::<Value>("loadstring")?,
            backing.clone(),
            errtext,
            string_meta_proxy,
        ))?;
        for name in [
            "pcall",
            "rawset",
            "rawget",
            "pairs",
            "setmetatable",
            "getmetatable",
            "loadstring",
            "load",
        ] {
            globals.raw_set(name, helpers.raw_get::<Value>(name)?)?;
        }
        let handler = lua.create_function(message_handler)?;
        let (runner, plain): (Function, Function) = lua.load(RUNNER).set_name(INTERNAL).call((
            base.raw_get::<Value>("xpcall")?,
            handler.clone(),
            base.raw_get::<Value>("pcall")?,
            super::run::params_function(&lua)?,
            globals.clone(),
        ))?;
        if kind == Kind::Eval {
            globals.raw_set("__redis__err__handler", handler)?;
        }

        let (library_api, library_redis) = if kind == Kind::Functions {
            let api = lua.create_table()?;
            let lib_redis = lua.create_table()?;
            register_log(&lua, &lib_redis)?;
            lib_redis.set_metatable(Some(missing_meta.clone()))?;
            api.raw_set("redis", make_proxy(&lib_redis)?)?;
            api.set_metatable(Some(missing_meta))?;
            (Some(api), Some(lib_redis))
        } else {
            (None, None)
        };
        lua.set_globals(proxy)?;
        Ok(Vm {
            lua,
            globals,
            proxy_meta,
            redis,
            library_api,
            library_redis,
            runner,
            plain,
            rng,
        })
    }
}

/// `redis.log`, the log levels and the version fields (also visible to libraries while
/// they load).
fn register_log(lua: &Lua, t: &Table) -> mlua::Result<()> {
    t.raw_set(
        "log",
        lua.create_function(|lua, a: MultiValue| {
            if a.len() < 2 {
                return Err(error::table("redis.log() requires two arguments or more."));
            }
            let Some(level) = super::args::to_number(&a[0]) else {
                return Err(error::table("First argument must be a number (log level)."));
            };
            let level = level as i64;
            if !(0..=3).contains(&level) {
                return Err(error::table("Invalid debug level."));
            }
            let _ = lua;
            let parts: Vec<String> = a
                .iter()
                .skip(1)
                .filter_map(super::args::to_bytes)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .collect();
            let msg = parts.join(" ");
            match level {
                0 => tracing::debug!(target: "script", "{msg}"),
                1 => tracing::debug!(target: "script", "{msg}"),
                2 => tracing::info!(target: "script", "{msg}"),
                _ => tracing::warn!(target: "script", "{msg}"),
            }
            Ok(())
        })?,
    )?;
    t.raw_set("LOG_DEBUG", 0)?;
    t.raw_set("LOG_VERBOSE", 1)?;
    t.raw_set("LOG_NOTICE", 2)?;
    t.raw_set("LOG_WARNING", 3)?;
    t.raw_set("REDIS_VERSION", REDIS_VERSION)?;
    t.raw_set("REDIS_VERSION_NUM", REDIS_VERSION_NUM)?;
    Ok(())
}

/// The parts of the `redis` table that do not depend on the running script.
fn register_common(lua: &Lua, t: &Table) -> mlua::Result<()> {
    register_log(lua, t)?;
    t.raw_set(
        "sha1hex",
        lua.create_function(|lua, a: MultiValue| {
            if a.len() != 1 {
                return Err(error::table("wrong number of arguments"));
            }
            let data = super::args::to_bytes(&a[0]).unwrap_or_default();
            lua.create_string(super::sha1_hex(&data))
        })?,
    )?;
    for (name, field) in [("error_reply", "err"), ("status_reply", "ok")] {
        t.raw_set(
            name,
            lua.create_function(move |lua, a: MultiValue| {
                let s = match (a.len(), a.front()) {
                    (1, Some(Value::String(s))) => s.as_bytes().to_vec(),
                    _ => {
                        let t = lua.create_table()?;
                        t.raw_set("err", "ERR wrong number or type of arguments")?;
                        return Ok(t);
                    }
                };
                let t = lua.create_table()?;
                if field == "err" {
                    let text = String::from_utf8_lossy(&s);
                    let text = if text.starts_with('-') {
                        text.into_owned()
                    } else {
                        format!("-{text}")
                    };
                    t.raw_set("err", error::error_text(&text))?;
                } else {
                    t.raw_set("ok", lua.create_string(&s)?)?;
                }
                Ok(t)
            })?,
        )?;
    }
    t.raw_set("REPL_NONE", 0)?;
    t.raw_set("REPL_AOF", 1)?;
    t.raw_set("REPL_SLAVE", 2)?;
    t.raw_set("REPL_REPLICA", 2)?;
    t.raw_set("REPL_ALL", 3)?;
    t.raw_set(
        "acl_check_cmd",
        lua.create_function(|_, a: MultiValue| {
            if a.is_empty() {
                return Err(error::table(
                    "Please specify at least one argument for this redis lib call",
                ));
            }
            // Basalt has one user with every permission.
            Ok(true)
        })?,
    )?;
    Ok(())
}

/// `math.random` as Redis implements it, from a draw `r` in [0, 1).
fn random(lua: &Lua, a: &MultiValue, r: f64) -> mlua::Result<f64> {
    match a.len() {
        0 => Ok(r),
        1 => {
            let u = super::args::int(lua, a, 1, "random")?;
            if u < 1 {
                return Err(super::args::arg_error(
                    lua,
                    1,
                    "random",
                    "interval is empty",
                ));
            }
            Ok((r * u as f64).floor() + 1.0)
        }
        2 => {
            let l = super::args::int(lua, a, 1, "random")?;
            let u = super::args::int(lua, a, 2, "random")?;
            if l > u {
                return Err(super::args::arg_error(
                    lua,
                    2,
                    "random",
                    "interval is empty",
                ));
            }
            Ok((r * (u - l + 1) as f64).floor() + l as f64)
        }
        _ => Err(error::string(lua, "wrong number of arguments")),
    }
}

/// The `xpcall` message handler: Redis's `__redis__err__handler`.
fn message_handler(lua: &Lua, err: Value) -> mlua::Result<Table> {
    // Redis takes the frame that raised, or its caller when that is a C function; Basalt
    // also steps over its own Lua helpers.
    let mut at = None;
    for level in 1..=8 {
        let frame = lua.inspect_stack(level, |d| {
            let s = d.source();
            let source = s.source.map(|c| c.into_owned()).unwrap_or_default();
            (
                s.what == "C" || source == INTERNAL,
                source,
                d.current_line(),
            )
        });
        let Some((c_like, source, line)) = frame else {
            break;
        };
        if !c_like {
            at = Some((source, line));
            break;
        }
    }
    let t = match err {
        Value::Table(t) => t,
        Value::Error(e) => {
            let t = lua.create_table()?;
            match error::find(&e) {
                Some(r) if r.table => {
                    t.raw_set("err", r.msg.as_str())?;
                    if r.ignore_stats {
                        t.raw_set("ignore_error_stats_update", true)?;
                    }
                }
                Some(r) => t.raw_set("err", format!("ERR {}", r.msg))?,
                None => t.raw_set("err", format!("ERR {}", error::plain_text(&e)))?,
            }
            t
        }
        other => {
            let t = lua.create_table()?;
            let text = match &other {
                Value::Nil => "nil".to_string(),
                Value::Boolean(b) => b.to_string(),
                v => match super::args::to_bytes(v) {
                    Some(b) => String::from_utf8_lossy(&b).into_owned(),
                    None => lua
                        .coerce_string(other.clone())
                        .ok()
                        .flatten()
                        .map(|s| s.to_string_lossy())
                        .unwrap_or_else(|| super::args::type_name(Some(v)).to_string()),
                },
            };
            t.raw_set("err", format!("ERR {text}"))?;
            t
        }
    };
    if let Some((source, line)) = at {
        t.raw_set("source", source)?;
        t.raw_set("line", line.map(|l| l as f64).unwrap_or(-1.0))?;
    }
    Ok(t)
}

const HELPERS: &str = r#"
local pcall0, rawset0, rawget0, next0, setmetatable0, getmetatable0, loadstring0,
      backing, errtext, string_meta = ...
local type, error = type, error
local h = {}
local function fix(ok, ...)
  if ok then return ok, ... end
  local e = ...
  if type(e) == 'table' then
    local m = e.err
    if type(m) == 'string' or type(m) == 'number' then return false, m end
  elseif type(e) == 'userdata' then
    local m = errtext(e)
    if m then return false, m end
  end
  return false, ...
end
h.pcall = function(...) return fix(pcall0(...)) end
h.rawset = function(t, k, v)
  if rawget0(backing, t) then error('Attempt to modify a readonly table', 0) end
  return rawset0(t, k, v)
end
h.rawget = function(t, k)
  local b = rawget0(backing, t)
  if b then return rawget0(b, k) end
  return rawget0(t, k)
end
h.pairs = function(t)
  local b = rawget0(backing, t)
  if b then return function(_, k) return next0(b, k) end, t, nil end
  return next0, t, nil
end
h.setmetatable = function(t, m)
  if rawget0(backing, t) then error('Attempt to modify a readonly table', 0) end
  return setmetatable0(t, m)
end
h.getmetatable = function(t)
  if type(t) == 'string' then return string_meta end
  if rawget0(backing, t) then return nil end
  return getmetatable0(t)
end
local function nobinary(s, name)
  if type(s) == 'string' and s:byte(1) == 27 then
    return nil, 'binary chunks are not allowed'
  end
  return loadstring0(s, name)
end
h.loadstring = nobinary
h.load = function(f, name)
  if type(f) == 'string' then return nobinary(f, name) end
  local parts = {}
  while true do
    local p = f()
    if p == nil or p == '' then break end
    parts[#parts + 1] = p
  end
  return nobinary(table.concat(parts), name or '=(load)')
end
return h
"#;

const RUNNER: &str = r#"
local xpcall, handler, pcall, params, globals = ...
return function(f, is_function)
  if is_function then
    local keys, args = params()
    return xpcall(function() return f(keys, args) end, handler)
  end
  params(globals)
  return xpcall(f, handler)
end, function(f)
  return pcall(f)
end
"#;
