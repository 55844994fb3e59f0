//! FUNCTION libraries: loading (`#!lua name=lib` plus `redis.register_function`),
//! the function index, and what FUNCTION LIST/STATS/DELETE/RESTORE work on.
//!
//! A library's code runs once at load time with a restricted view of the globals (only
//! `redis.register_function`, `redis.log`, the log levels and the version fields; 500 ms
//! at most). The callbacks it registers keep running in the same VM with the ordinary
//! sandboxed globals.

use super::rand48::Rand48;
use super::vm::{Kind, Vm};
use super::{RunState, compile_error_text, error, flags};
use bytes::Bytes;
use mlua::{Function, MultiValue, Table, Value};
use parking_lot::Mutex;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// One registered function.
pub struct FunctionDef {
    /// Its name.
    pub name: String,
    /// `description`, if given.
    pub description: Option<Bytes>,
    /// `flags::*`.
    pub flags: u32,
    /// The callback.
    pub func: Function,
}

/// A loaded library.
pub struct Library {
    /// Its name.
    pub name: String,
    /// The code as loaded (shebang included).
    pub code: Bytes,
    /// Its functions by name.
    pub functions: BTreeMap<String, FunctionDef>,
}

/// The functions VM and every library loaded into it.
pub struct FunctionEngine {
    /// The VM.
    pub vm: Vm,
    /// Libraries by name.
    pub libraries: BTreeMap<String, Library>,
    /// Function name → library name.
    pub index: HashMap<String, String>,
    st: Arc<RunState>,
}

const NAME_RULE: &str = "Library names can only contain letters, numbers, or underscores(_) and must be at least one character long";

fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// The `#!<engine> name=<lib>` line: engine, library name, and where the code starts.
fn metadata(code: &[u8]) -> Result<(String, String, usize), String> {
    if !code.starts_with(b"#!") {
        return Err("Missing library metadata".into());
    }
    let Some(end) = memchr::memchr(b'\n', code) else {
        return Err("Invalid library metadata".into());
    };
    let parts = match basalt_proto::split_args(&code[..end]) {
        Some(p) if !p.is_empty() => p,
        _ => return Err("Invalid library metadata".into()),
    };
    let engine = String::from_utf8_lossy(&parts[0][2..]).into_owned();
    let mut name: Option<String> = None;
    for part in &parts[1..] {
        if part.len() >= 5 && part[..5].eq_ignore_ascii_case(b"name=") {
            if name.is_some() {
                return Err(
                    "Invalid metadata value, name argument was given multiple times".into(),
                );
            }
            name = Some(String::from_utf8_lossy(&part[5..]).into_owned());
            continue;
        }
        return Err(format!(
            "Invalid metadata value given: {}",
            String::from_utf8_lossy(part)
        ));
    }
    let Some(name) = name else {
        return Err("Library name was not given".into());
    };
    Ok((engine, name, end))
}

fn read_flags(t: &Table) -> Option<u32> {
    let mut f = 0;
    let mut i = 1;
    loop {
        let v: Value = t.get(i).ok()?;
        match v {
            Value::Nil => return Some(f),
            other => {
                let s = super::args::to_bytes(&other)?;
                let (bit, _) = flags::NAMES
                    .iter()
                    .find(|(_, n)| n.as_bytes().eq_ignore_ascii_case(&s))?;
                f |= bit;
            }
        }
        i += 1;
    }
}

/// `redis.register_function`'s arguments, positional or named.
fn register_args(a: &MultiValue) -> Result<(Bytes, Option<Bytes>, Function, u32), &'static str> {
    match a.len() {
        1 => {
            let Value::Table(t) = &a[0] else {
                return Err(
                    "calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).",
                );
            };
            let (mut name, mut desc, mut cb, mut fl) = (None, None, None, 0);
            for pair in t.pairs::<Value, Value>() {
                let Ok((k, v)) = pair else {
                    return Err(
                        "named argument key given to redis.register_function is not a string",
                    );
                };
                let Some(key) = super::args::to_bytes(&k) else {
                    return Err(
                        "named argument key given to redis.register_function is not a string",
                    );
                };
                let key = String::from_utf8_lossy(&key).to_ascii_lowercase();
                match key.as_str() {
                    "function_name" => match super::args::to_bytes(&v) {
                        Some(b) => name = Some(Bytes::from(b)),
                        None => {
                            return Err(
                                "function_name argument given to redis.register_function must be a string",
                            );
                        }
                    },
                    "description" => match super::args::to_bytes(&v) {
                        Some(b) => desc = Some(Bytes::from(b)),
                        None => {
                            return Err(
                                "description argument given to redis.register_function must be a string",
                            );
                        }
                    },
                    "callback" => match v {
                        Value::Function(f) => cb = Some(f),
                        _ => {
                            return Err(
                                "callback argument given to redis.register_function must be a function",
                            );
                        }
                    },
                    "flags" => match v {
                        Value::Table(ft) => match read_flags(&ft) {
                            Some(f) => fl = f,
                            None => return Err("unknown flag given"),
                        },
                        _ => {
                            return Err(
                                "flags argument to redis.register_function must be a table representing function flags",
                            );
                        }
                    },
                    _ => return Err("unknown argument given to redis.register_function"),
                }
            }
            let Some(name) = name else {
                return Err("redis.register_function must get a function name argument");
            };
            let Some(cb) = cb else {
                return Err("redis.register_function must get a callback argument");
            };
            Ok((name, desc, cb, fl))
        }
        2 => {
            let Some(name) = super::args::to_bytes(&a[0]) else {
                return Err("first argument to redis.register_function must be a string");
            };
            let Value::Function(f) = &a[1] else {
                return Err("second argument to redis.register_function must be a function");
            };
            Ok((Bytes::from(name), None, f.clone(), 0))
        }
        _ => Err("wrong number of arguments to redis.register_function"),
    }
}

impl FunctionEngine {
    /// An empty engine with a fresh VM.
    pub fn new(rng: Arc<Mutex<Rand48>>, st: Arc<RunState>, mem_limit: u64) -> FunctionEngine {
        let vm = Vm::new(Kind::Functions, rng).unwrap_or_else(|e| {
            // Building the sandbox runs only Basalt's own code; failing here is a bug.
            panic!("cannot build the Lua VM: {e}")
        });
        if let Err(e) = super::install_hook(&vm, st.clone()) {
            panic!("cannot install the Lua hook: {e}");
        }
        let _ = vm.lua.set_memory_limit(mem_limit as usize);
        FunctionEngine {
            vm,
            libraries: BTreeMap::new(),
            index: HashMap::new(),
            st,
        }
    }

    /// Number of functions in every library.
    pub fn function_count(&self) -> usize {
        self.index.len()
    }

    /// Compiles and runs a library's code, collecting what it registers. Does not touch
    /// the loaded libraries.
    pub fn compile(&self, code: &Bytes) -> Result<Library, String> {
        let (engine, name, end) = metadata(code)?;
        if !engine.eq_ignore_ascii_case("lua") {
            return Err(format!("Engine '{engine}' not found"));
        }
        if !valid_name(name.as_bytes()) {
            return Err(NAME_RULE.into());
        }
        let vm = &self.vm;
        let func = vm
            .lua
            .load(&code[end..])
            .set_name("@user_function")
            .into_function()
            .map_err(|e| format!("Error compiling function: {}", compile_error_text(&e)))?;
        let registered: RefCell<BTreeMap<String, FunctionDef>> = RefCell::new(BTreeMap::new());
        let (Some(api), Some(lib_redis)) = (&vm.library_api, &vm.library_redis) else {
            return Err("Engine 'LUA' not found".into());
        };
        let _ = vm.proxy_meta.raw_set("__index", api.clone());
        self.st.begin(false, true);
        let outcome: mlua::Result<(bool, Value)> = vm.lua.scope(|scope| {
            let reg = &registered;
            lib_redis.raw_set(
                "register_function",
                scope.create_function(move |_, a: MultiValue| {
                    let (fname, description, func, fl) = register_args(&a).map_err(error::table)?;
                    if !valid_name(&fname) {
                        return Err(error::table(NAME_RULE));
                    }
                    let fname = String::from_utf8_lossy(&fname).into_owned();
                    let mut map = reg.borrow_mut();
                    if map.contains_key(&fname) {
                        return Err(error::table("Function already exists in the library"));
                    }
                    map.insert(
                        fname.clone(),
                        FunctionDef {
                            name: fname,
                            description,
                            flags: fl,
                            func,
                        },
                    );
                    Ok(())
                })?,
            )?;
            vm.runner_plain().call(func)
        });
        self.st.end();
        let _ = lib_redis.raw_set("register_function", Value::Nil);
        let _ = vm.proxy_meta.raw_set("__index", vm.globals.clone());
        let (ok, err) = outcome
            .map_err(|e| format!("Error registering functions: ERR {}", error::plain_text(&e)))?;
        if !ok {
            let msg = match &err {
                Value::Table(t) => match t.raw_get::<Value>("err") {
                    Ok(Value::String(s)) => s.to_string_lossy(),
                    _ => "ERR unknown error".to_string(),
                },
                Value::String(s) => format!("ERR {}", s.to_string_lossy()),
                other => match error::find_in(other) {
                    Some(r) if r.table => r.msg.clone(),
                    Some(r) => format!("ERR {}", r.msg),
                    None => format!(
                        "ERR {}",
                        error::value_text(other).unwrap_or_else(|| "unknown error".into())
                    ),
                },
            };
            return Err(format!("Error registering functions: {msg}"));
        }
        let functions = registered.into_inner();
        if functions.is_empty() {
            return Err("No functions registered".into());
        }
        Ok(Library {
            name,
            code: code.clone(),
            functions,
        })
    }

    /// FUNCTION LOAD: compiles `code` and adds (or with `replace`, swaps in) its library.
    pub fn load(&mut self, code: &Bytes, replace: bool) -> Result<String, String> {
        if let Ok((_, name, _)) = metadata(code)
            && self.libraries.contains_key(&name)
            && !replace
        {
            return Err(format!("Library '{name}' already exists"));
        }
        let lib = self.compile(code)?;
        for f in lib.functions.keys() {
            if let Some(owner) = self.index.get(f)
                && *owner != lib.name
            {
                return Err(format!("Function {f} already exists"));
            }
        }
        let name = lib.name.clone();
        self.insert(lib);
        Ok(name)
    }

    /// Adds a library (replacing one of the same name) and indexes its functions.
    pub fn insert(&mut self, lib: Library) {
        self.remove(&lib.name);
        for f in lib.functions.keys() {
            self.index.insert(f.clone(), lib.name.clone());
        }
        self.libraries.insert(lib.name.clone(), lib);
    }

    /// Removes a library; false if there is none of that name.
    pub fn remove(&mut self, name: &str) -> bool {
        let Some(lib) = self.libraries.remove(name) else {
            return false;
        };
        for f in lib.functions.keys() {
            self.index.remove(f);
        }
        true
    }

    /// The function named `name`.
    pub fn function(&self, name: &str) -> Option<&FunctionDef> {
        let lib = self.index.get(name)?;
        self.libraries.get(lib)?.functions.get(name)
    }
}

impl Vm {
    /// `plain(f)`: `pcall(f)` without message handler (library loading).
    pub fn runner_plain(&self) -> Function {
        self.plain.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_errors_follow_redis() {
        assert_eq!(
            metadata(b"return 1").unwrap_err(),
            "Missing library metadata"
        );
        assert_eq!(metadata(b"#!lua").unwrap_err(), "Invalid library metadata");
        assert_eq!(
            metadata(b"#!lua name=x name=y\n").unwrap_err(),
            "Invalid metadata value, name argument was given multiple times"
        );
        assert_eq!(
            metadata(b"#!lua foo=bar\n").unwrap_err(),
            "Invalid metadata value given: foo=bar"
        );
        assert_eq!(
            metadata(b"#!lua\n").unwrap_err(),
            "Library name was not given"
        );
        assert_eq!(
            metadata(b"#!lua name=lib\nx").unwrap(),
            ("lua".to_string(), "lib".to_string(), 14)
        );
    }
}
