//! Lua scripting: EVAL scripts and FUNCTION libraries, with Redis 7.0 semantics.
//!
//! Two sandboxed Lua 5.1 VMs, as in Redis: one for EVAL scripts (cached by SHA1), one
//! for function libraries. Each sits behind a mutex; a script runs while its connection
//! holds the server's exec gate for writing (see `Server::execute`), so no other command
//! runs meanwhile and the mutexes are never contended on the hot path.
//!
//! A running script publishes its state in [`RunState`] (lock-free flags readable by
//! other connections): after `busy-reply-threshold` milliseconds it is *busy*, other
//! clients get `-BUSY` and SCRIPT KILL / FUNCTION KILL / SHUTDOWN NOSAVE act on it. The
//! VM's instruction-count hook notices the kill request.
//!
//! Modules: `vm` (sandbox), `run` (executing a script: `redis.call` and friends),
//! `convert` (Lua ↔ RESP), `functions` (FUNCTION libraries), `dump` (FUNCTION
//! DUMP/RESTORE payloads), and the libraries Redis bundles: `cjson`, `cmsgpack`, `bit`,
//! `structlib` (`struct`).

pub mod args;
pub mod bit;
pub mod cjson;
pub mod cmsgpack;
pub mod convert;
pub mod dump;
pub mod error;
pub mod functions;
pub mod number;
pub mod rand48;
pub mod run;
pub mod structlib;
pub mod vm;

use bytes::Bytes;
use mlua::{Function, HookTriggers, VmState};
use parking_lot::Mutex;
use rand48::Rand48;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// The hook runs every this many VM instructions (Redis uses the same count).
pub const HOOK_INSTRUCTIONS: u32 = 100_000;
/// FUNCTION LOAD gives up after this long (Redis's fixed 500 ms).
pub const LOAD_TIMEOUT_MS: u64 = 500;

/// `-BUSY` while an EVAL script is busy.
pub const BUSY_EVAL: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
/// `-BUSY` while a function is busy.
pub const BUSY_FUNCTION: &str =
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";
/// SCRIPT KILL / FUNCTION KILL when nothing runs.
pub const NOTBUSY: &str = "NOTBUSY No scripts in execution right now.";
/// SCRIPT KILL after the script wrote.
pub const UNKILLABLE: &str = "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.";
/// The error a killed script ends with.
pub const KILLED: &str = "Script killed by user with SCRIPT KILL...";

/// Script flags (`#!lua flags=...` and `redis.register_function` flags).
pub mod flags {
    /// `no-writes`.
    pub const NO_WRITES: u32 = 1 << 0;
    /// `allow-oom`.
    pub const ALLOW_OOM: u32 = 1 << 1;
    /// `allow-stale`.
    pub const ALLOW_STALE: u32 = 1 << 2;
    /// `no-cluster`.
    pub const NO_CLUSTER: u32 = 1 << 3;
    /// `allow-cross-slot-keys`.
    pub const ALLOW_CROSS_SLOT: u32 = 1 << 4;
    /// An EVAL script without shebang (Redis's backward compatible mode).
    pub const EVAL_COMPAT: u32 = 1 << 8;

    /// Flag names in Redis's order.
    pub const NAMES: &[(u32, &str)] = &[
        (NO_WRITES, "no-writes"),
        (ALLOW_OOM, "allow-oom"),
        (ALLOW_STALE, "allow-stale"),
        (NO_CLUSTER, "no-cluster"),
        (ALLOW_CROSS_SLOT, "allow-cross-slot-keys"),
    ];
}

/// Lowercase hex SHA1 of `data` (script ids, `redis.sha1hex`).
pub fn sha1_hex(data: &[u8]) -> String {
    sha1_smol::Sha1::from(data).digest().to_string()
}

/// A cached script's key: its SHA1 as 40 lowercase hex digits.
pub type ScriptId = [u8; 40];

/// The id an EVALSHA / SCRIPT EXISTS argument names (SHA1s are case-insensitive);
/// `None` unless it is 40 bytes long.
pub fn script_id(sha: &[u8]) -> Option<ScriptId> {
    let mut id: ScriptId = sha.try_into().ok()?;
    id.make_ascii_lowercase();
    Some(id)
}

/// The id of a script body.
pub fn body_id(body: &[u8]) -> ScriptId {
    let mut id = [0u8; 40];
    for (pair, byte) in id
        .chunks_exact_mut(2)
        .zip(sha1_smol::Sha1::from(body).digest().bytes())
    {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 15)];
    }
    id
}

/// The id as text (error messages, SCRIPT LOAD's reply).
pub fn id_text(id: &ScriptId) -> &str {
    // Ids are ASCII: hex digits from `body_id`, or a looked-up EVALSHA argument equal to
    // one of them.
    std::str::from_utf8(id).unwrap_or_default()
}

/// Parses an EVAL script's `#!lua flags=...` line. Returns the flags and the length of
/// the shebang line (its newline stays in the body, so line numbers do not move).
pub fn shebang_flags(body: &[u8]) -> Result<(u32, usize), String> {
    if !body.starts_with(b"#!") {
        return Ok((flags::EVAL_COMPAT, 0));
    }
    let Some(end) = memchr::memchr(b'\n', body) else {
        return Err("Invalid script shebang".to_string());
    };
    let line = String::from_utf8_lossy(&body[..end]).into_owned();
    let parts = match basalt_proto::split_args(line.as_bytes()) {
        Some(p) if !p.is_empty() => p,
        _ => return Err("Invalid engine in script shebang".to_string()),
    };
    if parts[0].as_slice() != b"#!lua" {
        return Err(format!(
            "Unexpected engine in script shebang: {}",
            String::from_utf8_lossy(&parts[0])
        ));
    }
    let mut f = 0;
    for part in &parts[1..] {
        let Some(list) = part.strip_prefix(b"flags=") else {
            return Err(format!(
                "Unknown lua shebang option: {}",
                String::from_utf8_lossy(part)
            ));
        };
        for name in list.split(|&b| b == b',').filter(|n| !n.is_empty()) {
            match flags::NAMES.iter().find(|(_, n)| n.as_bytes() == name) {
                Some((bit, _)) => f |= bit,
                None => {
                    return Err(format!(
                        "Unexpected flag in script shebang: {}",
                        String::from_utf8_lossy(name)
                    ));
                }
            }
        }
    }
    Ok((f, end))
}

/// What other connections can see of the script that is running.
#[derive(Default)]
pub struct RunState {
    /// A script (or a library load) is executing.
    pub running: AtomicBool,
    /// It has run past `busy-reply-threshold`.
    pub busy: AtomicBool,
    /// SCRIPT KILL / FUNCTION KILL / SHUTDOWN asked it to stop.
    pub kill: AtomicBool,
    /// It called a write command (SCRIPT KILL then refuses).
    pub wrote: AtomicBool,
    /// It is an EVAL script (else a function).
    pub eval: AtomicBool,
    /// It is a FUNCTION LOAD (subject to the load timeout, never busy).
    pub loading: AtomicBool,
    /// `busy-reply-threshold` in ms (0: never busy, never killable).
    pub threshold_ms: AtomicU64,
    /// Name (SHA1 or function name) and arguments of the running script, filled in only
    /// once it turns busy: until then no other client can run a command (they wait for
    /// the exec gate), so nobody could ask; read it only while `busy`.
    pub info: Mutex<Option<RunInfo>>,
    /// `info` holds this run's arguments (cleared at the end of the run).
    info_filled: AtomicBool,
    /// When the running script started, in µs since [`mono_base`].
    started_us: AtomicU64,
    /// When the running script last tried to hand off its worker (ms since its start).
    handoff_ms: AtomicU64,
}

/// The process's monotonic time base for script run times.
fn mono_base() -> Instant {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// Microseconds since [`mono_base`].
fn mono_us() -> u64 {
    mono_base().elapsed().as_micros() as u64
}

/// Argument slots of the run info kept from one run to the next.
const RUN_INFO_KEPT_ARGS: usize = 64;

/// How often a busy script retries handing off its worker.
const HANDOFF_RETRY_MS: u64 = 100;

/// Hands the current tokio worker's other tasks to a fresh thread (tokio's
/// `block_in_place`) so that a busy script does not starve the connections queued on its
/// worker: with one worker thread that is every connection (SCRIPT KILL included); with
/// more, the tasks in the worker's LIFO slot, which other workers cannot steal. The new
/// thread takes the worker over within the short pause given; if it has not yet, the
/// script retries later. Outside a multi-thread runtime this only pauses.
fn hand_off_worker() {
    let pause = || std::thread::sleep(std::time::Duration::from_millis(5));
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(pause)
        }
        _ => {}
    }
}

/// The running script, for FUNCTION STATS and the slow-script log line.
#[derive(Clone)]
pub struct RunInfo {
    /// SHA1 (EVAL) or function name.
    pub name: String,
    /// The calling command's arguments.
    pub command: Vec<Bytes>,
}

impl RunState {
    /// The `-BUSY` error to give other clients, if the running script is busy.
    pub fn busy_error(&self) -> Option<&'static str> {
        if !self.busy.load(Ordering::Acquire) {
            return None;
        }
        Some(if self.eval.load(Ordering::Relaxed) {
            BUSY_EVAL
        } else {
            BUSY_FUNCTION
        })
    }

    /// True while a script runs, busy or not.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// SCRIPT KILL (`eval`) / FUNCTION KILL: Redis's `scriptKill`.
    pub fn kill(&self, eval: bool) -> Result<(), &'static str> {
        if !self.running.load(Ordering::Acquire) || self.loading.load(Ordering::Relaxed) {
            return Err(NOTBUSY);
        }
        if self.wrote.load(Ordering::Acquire) {
            return Err(UNKILLABLE);
        }
        let running_eval = self.eval.load(Ordering::Relaxed);
        if eval && !running_eval {
            return Err(BUSY_FUNCTION);
        }
        if !eval && running_eval {
            return Err(BUSY_EVAL);
        }
        self.kill.store(true, Ordering::Release);
        Ok(())
    }

    /// Stops whatever runs, written or not (SHUTDOWN NOSAVE: the process exits anyway).
    pub fn force_kill(&self) {
        if self.running.load(Ordering::Acquire) {
            self.kill.store(true, Ordering::Release);
        }
    }

    /// Marks the start of a run. The run's name and command are copied into the
    /// allocations of the previous run (no allocation per script call).
    pub fn begin(&self, eval: bool, loading: bool) {
        self.started_us.store(mono_us(), Ordering::Relaxed);
        self.kill.store(false, Ordering::Relaxed);
        self.wrote.store(false, Ordering::Relaxed);
        self.busy.store(false, Ordering::Relaxed);
        self.handoff_ms.store(0, Ordering::Relaxed);
        self.eval.store(eval, Ordering::Relaxed);
        self.loading.store(loading, Ordering::Relaxed);
        self.running.store(true, Ordering::Release);
    }

    /// Records the running script's name and arguments for FUNCTION STATS and the
    /// slow-script log line; called (on the script's thread) when it turns busy.
    fn fill_info(&self, name: &str, command: &[Bytes]) {
        let mut info = self.info.lock();
        match info.as_mut() {
            Some(i) => {
                i.name.clear();
                i.name.push_str(name);
                i.command.clear();
                i.command.extend_from_slice(command);
            }
            None => {
                *info = Some(RunInfo {
                    name: name.to_owned(),
                    command: command.to_vec(),
                })
            }
        }
        self.info_filled.store(true, Ordering::Relaxed);
    }

    /// Marks the end of a run. A filled info keeps its allocations for the next run but
    /// lets go of the command's arguments.
    pub fn end(&self) {
        self.running.store(false, Ordering::Release);
        self.busy.store(false, Ordering::Release);
        self.kill.store(false, Ordering::Relaxed);
        self.loading.store(false, Ordering::Relaxed);
        // Only this thread (the script's) sets the flag: a load and a store, no swap.
        if self.info_filled.load(Ordering::Relaxed)
            && let Some(i) = self.info.lock().as_mut()
        {
            self.info_filled.store(false, Ordering::Relaxed);
            if i.command.capacity() > RUN_INFO_KEPT_ARGS {
                i.command = Vec::new();
            } else {
                i.command.clear();
            }
        }
    }

    /// Milliseconds since the running script started.
    pub fn elapsed_ms(&self) -> u64 {
        mono_us().saturating_sub(self.started_us.load(Ordering::Relaxed)) / 1000
    }
}

/// The hook every VM runs: busy detection, kill requests, the FUNCTION LOAD timeout.
fn install_hook(vm: &vm::Vm, st: Arc<RunState>) -> mlua::Result<()> {
    vm.lua.set_hook(
        HookTriggers::new().every_nth_instruction(HOOK_INSTRUCTIONS),
        move |_lua, _debug| {
            if !st.running.load(Ordering::Acquire) {
                return Ok(VmState::Continue);
            }
            if st.loading.load(Ordering::Relaxed) {
                if st.elapsed_ms() > LOAD_TIMEOUT_MS {
                    return Err(error::table("FUNCTION LOAD timeout"));
                }
                return Ok(VmState::Continue);
            }
            if st.kill.load(Ordering::Acquire) {
                tracing::warn!("Lua script killed by user with SCRIPT KILL.");
                return Err(error::table(KILLED));
            }
            let threshold = st.threshold_ms.load(Ordering::Relaxed);
            if st.busy.load(Ordering::Relaxed) {
                let elapsed = st.elapsed_ms();
                let last = st.handoff_ms.load(Ordering::Relaxed);
                if elapsed >= last + HANDOFF_RETRY_MS {
                    st.handoff_ms.store(elapsed, Ordering::Relaxed);
                    hand_off_worker();
                }
            } else if threshold > 0 {
                let elapsed = st.elapsed_ms();
                if elapsed >= threshold {
                    let name = run::with_call(|name, command| {
                        st.fill_info(name, command);
                        name.to_owned()
                    })
                    .unwrap_or_default();
                    let eval = st.eval.load(Ordering::Relaxed);
                    tracing::warn!(
                        "Slow script detected: still in execution after {elapsed} milliseconds. You can try killing the script using the {} command. Script name is: {name}.",
                        if eval { "SCRIPT KILL" } else { "FUNCTION KILL" }
                    );
                    st.busy.store(true, Ordering::Release);
                }
            }
            Ok(VmState::Continue)
        },
    )
}

/// A cached EVAL script.
pub struct Script {
    /// The source as given.
    pub body: Bytes,
    /// Shebang flags (`flags::EVAL_COMPAT` without shebang).
    pub flags: u32,
    /// The compiled chunk.
    pub func: Function,
}

/// The EVAL VM and its script cache.
pub struct EvalEngine {
    /// The VM.
    pub vm: vm::Vm,
    /// SHA1 (lowercase hex) → script.
    pub scripts: HashMap<ScriptId, Script, foldhash::fast::RandomState>,
    /// Bytes of cached script bodies.
    pub body_bytes: usize,
}

impl EvalEngine {
    fn new(rng: Arc<Mutex<Rand48>>, st: Arc<RunState>, mem_limit: u64) -> EvalEngine {
        let vm = vm::Vm::new(vm::Kind::Eval, rng).unwrap_or_else(|e| {
            // Building the sandbox runs only Basalt's own code; failing here is a bug.
            panic!("cannot build the Lua VM: {e}")
        });
        if let Err(e) = install_hook(&vm, st) {
            panic!("cannot install the Lua hook: {e}");
        }
        let _ = vm.lua.set_memory_limit(mem_limit as usize);
        EvalEngine {
            vm,
            scripts: HashMap::default(),
            body_bytes: 0,
        }
    }

    /// Compiles and caches `body` unless cached; returns its SHA1.
    pub fn create(&mut self, body: &Bytes) -> Result<ScriptId, String> {
        let sha = body_id(body);
        if self.scripts.contains_key(&sha) {
            return Ok(sha);
        }
        let (flags, shebang_len) = shebang_flags(body)?;
        let func = self
            .vm
            .lua
            .load(&body[shebang_len..])
            .set_name("@user_script")
            .into_function()
            .map_err(|e| {
                format!(
                    "Error compiling script (new function): {}",
                    compile_error_text(&e)
                )
            })?;
        self.body_bytes += body.len() + 40;
        self.scripts.insert(
            sha,
            Script {
                body: body.clone(),
                flags,
                func,
            },
        );
        Ok(sha)
    }
}

/// The message of a Lua compile error ("user_script:1: unexpected symbol near ...").
pub fn compile_error_text(e: &mlua::Error) -> String {
    match e {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::MemoryError(_) => "not enough memory".to_string(),
        other => error::plain_text(other),
    }
}

/// Everything scripting keeps in the server.
pub struct Scripting {
    /// The EVAL VM and cache.
    pub eval: Mutex<EvalEngine>,
    /// The functions VM and libraries.
    pub functions: Mutex<functions::FunctionEngine>,
    /// The running script, seen by every connection.
    pub run: Arc<RunState>,
    rng: Arc<Mutex<Rand48>>,
    mem_limit: AtomicU64,
    /// Libraries and functions, kept for FUNCTION STATS while a running function holds
    /// the engine.
    counts: Mutex<(usize, usize)>,
    last_memory: Mutex<MemoryInfo>,
}

/// Scripting figures of INFO memory.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryInfo {
    /// Bytes used by the EVAL VM (`used_memory_lua`, `used_memory_vm_eval`).
    pub vm_eval: u64,
    /// Bytes of cached script bodies (`used_memory_scripts_eval`).
    pub scripts_eval: u64,
    /// `number_of_cached_scripts`.
    pub cached_scripts: u64,
    /// Bytes used by the functions VM (`used_memory_vm_functions`).
    pub vm_functions: u64,
    /// Bytes of library code and function metadata (`used_memory_functions`).
    pub functions: u64,
    /// `number_of_functions`.
    pub functions_count: u64,
    /// `number_of_libraries`.
    pub libraries: u64,
}

impl Scripting {
    /// Fresh VMs with `busy-reply-threshold` and `lua-memory-limit` applied.
    pub fn new(threshold_ms: u64, mem_limit: u64) -> Scripting {
        let run = Arc::new(RunState::default());
        run.threshold_ms.store(threshold_ms, Ordering::Relaxed);
        let rng = Arc::new(Mutex::new(Rand48::default()));
        Scripting {
            eval: Mutex::new(EvalEngine::new(rng.clone(), run.clone(), mem_limit)),
            functions: Mutex::new(functions::FunctionEngine::new(
                rng.clone(),
                run.clone(),
                mem_limit,
            )),
            run,
            rng,
            mem_limit: AtomicU64::new(mem_limit),
            counts: Mutex::new((0, 0)),
            last_memory: Mutex::new(MemoryInfo::default()),
        }
    }

    /// Applies new limits (CONFIG SET).
    pub fn configure(&self, threshold_ms: u64, mem_limit: u64) {
        self.run.threshold_ms.store(threshold_ms, Ordering::Relaxed);
        if self.mem_limit.swap(mem_limit, Ordering::Relaxed) != mem_limit {
            let _ = self.eval.lock().vm.lua.set_memory_limit(mem_limit as usize);
            let _ = self
                .functions
                .lock()
                .vm
                .lua
                .set_memory_limit(mem_limit as usize);
        }
    }

    /// SCRIPT FLUSH: a new EVAL VM, empty cache.
    pub fn flush_scripts(&self) {
        let fresh = EvalEngine::new(
            self.rng.clone(),
            self.run.clone(),
            self.mem_limit.load(Ordering::Relaxed),
        );
        *self.eval.lock() = fresh;
    }

    /// Memory and counts for INFO memory. Reads the engines when they are free; while a
    /// script holds one, its figures from the last read are reported.
    pub fn memory(&self) -> MemoryInfo {
        let mut m = self.last_memory.lock();
        if let Some(e) = self.eval.try_lock() {
            m.vm_eval = e.vm.lua.used_memory() as u64;
            m.scripts_eval = e.body_bytes as u64;
            m.cached_scripts = e.scripts.len() as u64;
        }
        if let Some(f) = self.functions.try_lock() {
            m.vm_functions = f.vm.lua.used_memory() as u64;
            m.functions = f
                .libraries
                .values()
                .map(|l| {
                    l.code.len()
                        + l.name.len()
                        + l.functions
                            .values()
                            .map(|d| d.name.len() + d.description.as_ref().map_or(0, |b| b.len()))
                            .sum::<usize>()
                })
                .sum::<usize>() as u64;
            m.functions_count = f.function_count() as u64;
            m.libraries = f.libraries.len() as u64;
        }
        *m
    }

    /// Libraries and functions as of the last change.
    pub fn function_counts(&self) -> (usize, usize) {
        *self.counts.lock()
    }

    /// Records the library and function counts after a change.
    pub fn refresh_function_counts(&self) {
        let counts = {
            let e = self.functions.lock();
            (e.libraries.len(), e.function_count())
        };
        *self.counts.lock() = counts;
    }

    /// A new functions engine (FUNCTION FLUSH, RESTORE FLUSH).
    pub fn new_function_engine(&self) -> functions::FunctionEngine {
        functions::FunctionEngine::new(
            self.rng.clone(),
            self.run.clone(),
            self.mem_limit.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_matches_redis() {
        assert_eq!(sha1_hex(b""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(id_text(&body_id(b"abc")), sha1_hex(b"abc"));
        assert_eq!(
            script_id(b"A9993E364706816ABA3E25717850C26C9CD0D89D"),
            Some(body_id(b"abc"))
        );
        assert_eq!(script_id(b"a9993e"), None);
    }

    #[test]
    fn shebang_parsing() {
        assert_eq!(shebang_flags(b"return 1"), Ok((flags::EVAL_COMPAT, 0)));
        assert_eq!(shebang_flags(b"#!lua\nreturn 1"), Ok((0, 5)));
        assert_eq!(
            shebang_flags(b"#!lua flags=no-writes,allow-oom\nreturn 1"),
            Ok((flags::NO_WRITES | flags::ALLOW_OOM, 31))
        );
        assert_eq!(
            shebang_flags(b"#!lua"),
            Err("Invalid script shebang".to_string())
        );
        assert_eq!(
            shebang_flags(b"#!lua flags=bogus\n"),
            Err("Unexpected flag in script shebang: bogus".to_string())
        );
        assert_eq!(
            shebang_flags(b"#!python\n"),
            Err("Unexpected engine in script shebang: #!python".to_string())
        );
        assert_eq!(
            shebang_flags(b"#!lua name=x\n"),
            Err("Unknown lua shebang option: name=x".to_string())
        );
    }
}
