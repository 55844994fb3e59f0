//! The server's configuration, compatible with redis.conf and redis-server's command line:
//! loading ([`load`]), CONFIG GET ([`Config::get`]), CONFIG SET ([`Config::set_many`]) and
//! CONFIG REWRITE ([`Config::rewrite`]).
//!
//! Every directive is one entry of the table in `table.rs` (name, aliases, flags, kind,
//! bounds, default); the rest of this module is generic over that table. Values are
//! parsed, bounded, formatted and reported in error messages exactly as Redis 7.0.15 does,
//! so existing config files, scripts and clients see the same answers.
//!
//! This module only computes values: it never changes process state. The server applies
//! what changed (listening sockets, working directory, log level, ...) from the
//! [`ConfigChange`] list that [`Config::set_many`] returns, and from the loaded `Config` at
//! start (including `std::env::set_current_dir(&config.dir)`).

mod load;
mod rewrite;
mod table;
mod value;

#[cfg(test)]
mod tests;

pub use load::{ConfigError, load, load_from};
pub use table::DEFAULT_BIND;

use basalt_engine::glob::glob_match;
use std::path::{Path, PathBuf};
use table::{IMMUTABLE, PROTECTED, SENSITIVE};
use value::error_text;

/// Redis log levels (`loglevel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LogLevel {
    Debug,
    Verbose,
    #[default]
    Notice,
    Warning,
}

impl LogLevel {
    /// Names in Redis 7.0's order (the order of its error message). Redis 7.0.15 has no
    /// `nothing` level (7.2 added it), so neither does Basalt yet.
    pub const NAMES: &'static [&'static str] = &["debug", "verbose", "notice", "warning"];

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    fn from_index(i: usize) -> Self {
        match i {
            0 => LogLevel::Debug,
            1 => LogLevel::Verbose,
            2 => LogLevel::Notice,
            _ => LogLevel::Warning,
        }
    }
}

/// What to do when `maxmemory` is reached (`maxmemory-policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MaxmemoryPolicy {
    VolatileLru,
    VolatileLfu,
    VolatileRandom,
    VolatileTtl,
    AllkeysLru,
    AllkeysLfu,
    AllkeysRandom,
    #[default]
    NoEviction,
    /// Basalt: oldest key first.
    AllkeysFifo,
    /// Basalt: S3-FIFO.
    AllkeysS3Fifo,
}

impl MaxmemoryPolicy {
    /// Names in Redis 7.0's order (the order of its error message), then Basalt's own
    /// (accepted, but not listed in the error text, which stays Redis's word for word).
    pub const NAMES: &'static [&'static str] = basalt_engine::evict::POLICY_NAMES;

    /// The engine's policy.
    pub fn engine(self) -> basalt_engine::Policy {
        basalt_engine::Policy::from_index(self as usize)
    }

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    fn from_index(i: usize) -> Self {
        match i {
            0 => MaxmemoryPolicy::VolatileLru,
            1 => MaxmemoryPolicy::VolatileLfu,
            2 => MaxmemoryPolicy::VolatileRandom,
            3 => MaxmemoryPolicy::VolatileTtl,
            4 => MaxmemoryPolicy::AllkeysLru,
            5 => MaxmemoryPolicy::AllkeysLfu,
            6 => MaxmemoryPolicy::AllkeysRandom,
            8 => MaxmemoryPolicy::AllkeysFifo,
            9 => MaxmemoryPolicy::AllkeysS3Fifo,
            _ => MaxmemoryPolicy::NoEviction,
        }
    }
}

/// When the AOF is fsynced (`appendfsync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AppendFsync {
    /// Once per second, in the background.
    #[default]
    EverySec,
    /// Before every reply to a write (group commit).
    Always,
    /// Never explicitly: the OS decides.
    No,
}

impl AppendFsync {
    /// Names in Redis 7.0's order (the order of its error message).
    pub const NAMES: &'static [&'static str] = &["everysec", "always", "no"];

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    fn from_index(i: usize) -> Self {
        match i {
            1 => AppendFsync::Always,
            2 => AppendFsync::No,
            _ => AppendFsync::EverySec,
        }
    }
}

/// Who may use a guarded feature (`enable-protected-configs`, `enable-debug-command`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ProtectedAction {
    #[default]
    No,
    Yes,
    /// Only clients connected over loopback or a Unix socket.
    Local,
}

impl ProtectedAction {
    pub const NAMES: &'static [&'static str] = &["no", "yes", "local"];

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// Whether a client (local or not) may perform the action.
    pub fn allows(self, local_client: bool) -> bool {
        match self {
            ProtectedAction::No => false,
            ProtectedAction::Yes => true,
            ProtectedAction::Local => local_client,
        }
    }

    fn from_index(i: usize) -> Self {
        match i {
            0 => ProtectedAction::No,
            1 => ProtectedAction::Yes,
            _ => ProtectedAction::Local,
        }
    }
}

/// One `save <seconds> <changes>` rule: snapshot when at least `changes` writes happened
/// in the last `seconds` seconds. Types are Redis's (`time_t`, `int`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SaveRule {
    pub seconds: i64,
    pub changes: i32,
}

/// The configuration of a running server.
///
/// Fields are public for reading; change them through [`Config::set_many`] so values stay
/// within the bounds the table declares. Field docs name the directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `bind`: addresses to listen on (`*` = all IPv4, `::*` = all IPv6, a leading `-`
    /// marks an address that may fail to bind). Empty means every interface, as in Redis.
    pub bind: Vec<String>,
    /// `port`: TCP port (0 = do not listen on TCP).
    pub port: u16,
    /// `timeout`: close idle clients after this many seconds (0 = never).
    pub timeout: u64,
    /// `tcp-keepalive`: TCP keepalive period in seconds (0 = off).
    pub tcp_keepalive: u64,
    /// `databases` (immutable).
    pub databases: usize,
    /// `maxclients`.
    pub maxclients: usize,
    /// `requirepass`: the default user's password; empty = no password.
    pub requirepass: Vec<u8>,
    /// The `faktory-*` directives (Basalt): the Faktory protocol listener.
    pub faktory: FaktoryConfig,
    /// `loglevel`.
    pub loglevel: LogLevel,
    /// `logfile` (immutable): empty = standard output.
    pub logfile: String,
    /// `pidfile` (immutable): empty = none.
    pub pidfile: String,
    /// `dir`: the working directory, absolute.
    pub dir: PathBuf,
    /// `hz`: background task frequency, always within 1..=500.
    pub hz: u64,
    /// `active-expire-effort`: 1..=10, how much time active expiry may take.
    pub active_expire_effort: u64,
    /// `proto-max-bulk-len`: largest bulk string a client may send, in bytes.
    pub proto_max_bulk_len: u64,
    /// `proto-max-multibulk-len` (Basalt): most arguments in one request.
    pub proto_max_multibulk_len: u64,
    /// `client-query-buffer-limit`: largest query buffer of one client, in bytes.
    pub client_query_buffer_limit: u64,
    /// `daemonize` (immutable): always `false`, Basalt runs in the foreground.
    pub daemonize: bool,
    /// `disable-thp` (immutable): turn transparent huge pages off for the process at
    /// start-up, as Redis does (see `alloc::disable_thp`).
    pub disable_thp: bool,
    /// `save`: snapshot rules (`save <seconds> <changes>` points; empty = none).
    pub save: Vec<SaveRule>,
    /// `dbfilename`: the RDB file's name inside `dir` (never a path).
    pub dbfilename: String,
    /// `rdbcompression`: LZF-compress strings in RDB files and DUMP payloads.
    pub rdbcompression: bool,
    /// `rdbchecksum` (immutable): write and verify the RDB's CRC-64 trailer.
    pub rdbchecksum: bool,
    /// `rdb-save-incremental-fsync`: a snapshot being written is synced every
    /// [`crate::persist::AUTOSYNC_BYTES`], so its dirty pages reach the disk as it goes
    /// rather than all at its end.
    pub rdb_save_incremental_fsync: bool,
    /// `rdb-key-save-delay` (hidden, for tests, as in Redis): microseconds a snapshot or
    /// AOF rewrite sleeps after each key it writes (never with a shard locked); a
    /// negative `-n` sleeps 1 µs every `n` keys.
    pub rdb_key_save_delay: i64,
    /// `save-yield-seconds` (Basalt): a BGSAVE or AOF rewrite thread runs under
    /// SCHED_IDLE, giving way at once to the threads serving clients, until it has run
    /// this long with less than half of it on a CPU (a core that is never idle starves
    /// it); then it shares the CPU at nice 10. 0: always nice 10.
    pub save_yield_seconds: i64,
    /// `stop-writes-on-bgsave-error`: refuse writes (MISCONF) while the last background
    /// save failed and save points are configured.
    pub stop_writes_on_bgsave_error: bool,
    /// `appendonly`: log every write to the AOF.
    pub appendonly: bool,
    /// `appendfilename` (immutable): the AOF files' base name.
    pub appendfilename: String,
    /// `appenddirname` (immutable): the directory of the AOF files, inside `dir`.
    pub appenddirname: String,
    /// `appendfsync`.
    pub appendfsync: AppendFsync,
    /// `no-appendfsync-on-rewrite`: skip fsyncs while a rewrite runs.
    pub no_appendfsync_on_rewrite: bool,
    /// `auto-aof-rewrite-percentage` (0: no automatic rewrite).
    pub auto_aof_rewrite_percentage: i64,
    /// `auto-aof-rewrite-min-size` in bytes.
    pub auto_aof_rewrite_min_size: u64,
    /// `aof-load-truncated`: load an AOF whose last command is torn (and cut it off).
    pub aof_load_truncated: bool,
    /// `aof-use-rdb-preamble`: the base file is an RDB (else RESP commands).
    pub aof_use_rdb_preamble: bool,
    /// `aof-timestamp-enabled`: accepted; Basalt writes no timestamp annotations.
    pub aof_timestamp_enabled: bool,
    /// `aof-rewrite-incremental-fsync`: the same for the base file an AOF rewrite
    /// writes.
    pub aof_rewrite_incremental_fsync: bool,
    /// `maxmemory` in bytes (0 = no limit).
    pub maxmemory: u64,
    /// `maxmemory-policy`.
    pub maxmemory_policy: MaxmemoryPolicy,
    /// `maxmemory-samples`: keys sampled per shard visit by the sampled policies.
    pub maxmemory_samples: u64,
    /// `maxmemory-eviction-tenacity`: 0..=100, the time limit of one eviction run.
    pub maxmemory_eviction_tenacity: u64,
    /// `lfu-log-factor`.
    pub lfu_log_factor: u64,
    /// `lfu-decay-time` (minutes).
    pub lfu_decay_time: u64,
    /// `lazyfree-lazy-eviction`.
    pub lazyfree_lazy_eviction: bool,
    /// `lazyfree-lazy-expire`.
    pub lazyfree_lazy_expire: bool,
    /// `lazyfree-lazy-server-del`.
    pub lazyfree_lazy_server_del: bool,
    /// `lazyfree-lazy-user-del`.
    pub lazyfree_lazy_user_del: bool,
    /// `lazyfree-lazy-user-flush`.
    pub lazyfree_lazy_user_flush: bool,
    /// `busy-reply-threshold` (alias `lua-time-limit`): ms after which a running script
    /// is busy (other clients get `-BUSY`, SCRIPT KILL works); 0 = never.
    pub busy_reply_threshold: u64,
    /// `lua-memory-limit` (Basalt): most bytes each Lua VM may allocate; 0 = no limit.
    pub lua_memory_limit: u64,
    /// `rl-max-policies` (Basalt): most named rate-limit policies (`RL.POLICY SET`).
    pub rl_max_policies: u64,
    /// `coord-max-sessions` (Basalt): most coordination sessions open at once.
    pub max_sessions: u64,
    /// The `job-*` directives (Basalt): limits and defaults of the job queues.
    pub jobs: crate::jobs::JobConfig,
    /// `job-schedule-max` (Basalt): most recurring job schedules (`JOB.SCHEDULE UPSERT`).
    pub job_schedule_max: u64,
    /// `job-schedule-grace-ms` (Basalt): a tick later than this is *missed* (follows the
    /// schedule's `MISSED` policy) instead of fired late.
    pub job_schedule_grace_ms: u64,
    /// `job-schedule-max-fires` (Basalt): most jobs one schedule pushes per cron pass
    /// (a backlog continues on the next pass).
    pub job_schedule_max_fires: u64,
    /// `enable-protected-configs` (immutable): who may CONFIG SET protected directives.
    pub enable_protected_configs: ProtectedAction,
    /// `enable-debug-command` (immutable): who may run DEBUG.
    pub enable_debug_command: ProtectedAction,
    /// `key-load-delay` (hidden, for tests): microseconds slept after each key loaded at
    /// startup; negative: 1 microsecond every -N keys.
    pub key_load_delay: i64,
    /// `threads` (Basalt, immutable): worker threads, 0 = one per core.
    pub threads: usize,
    /// `shards` (Basalt, immutable): keyspace shards, a power of two.
    pub shards: usize,
    /// Collection encoding thresholds (`hash-max-listpack-entries`, ...).
    pub enc: basalt_engine::EncodingLimits,
    /// `notify-keyspace-events`: `crate::pubsub::notify` class bits.
    pub notify_keyspace_events: u32,
    /// `client-output-buffer-limit`, indexed by `crate::pubsub::ObufClass`.
    pub client_obuf_limits: [crate::pubsub::ObufLimit; 3],
    /// The configuration file this was loaded from (absolute), for CONFIG REWRITE.
    config_file: Option<PathBuf>,
}

/// A directive whose value CONFIG SET changed; the server applies it (rebinding for
/// `bind`/`port`, `set_current_dir` for `dir`, the log filter for `loglevel`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigChange {
    /// Canonical directive name, e.g. `"maxmemory-policy"`.
    pub name: &'static str,
}

/// The Faktory work protocol listener (`docs/faktory.md`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaktoryConfig {
    /// `faktory-port` (immutable): 0 = no Faktory listener; Faktory's own is 7419.
    pub port: u16,
    /// `faktory-bind` (immutable): the address the listener binds.
    pub bind: String,
    /// `faktory-password`: empty = no password (the `HI` greeting asks for none).
    pub password: Vec<u8>,
    /// `faktory-max-line`: longest command line (a `PUSH` with its job) in bytes.
    pub max_line: u64,
    /// `faktory-max-connections`: most Faktory connections open at once.
    pub max_connections: u64,
    /// `faktory-handshake-timeout`: ms a new connection has to complete `HELLO`.
    pub handshake_timeout_ms: u64,
    /// `faktory-retry-backoff`: `faktory` (Faktory's `count⁴ + 15 + rand(30)·(count+1)`
    /// seconds) or `job` (the job's own BACKOFF in the engine, 1 s doubling by default).
    pub retry_backoff_job: bool,
}

impl Default for Config {
    /// Every directive at its default, `dir` being the process's working directory.
    fn default() -> Self {
        let mut c = Config {
            bind: Vec::new(),
            port: 0,
            timeout: 0,
            tcp_keepalive: 0,
            databases: 0,
            maxclients: 0,
            requirepass: Vec::new(),
            faktory: FaktoryConfig::default(),
            loglevel: LogLevel::default(),
            logfile: String::new(),
            pidfile: String::new(),
            dir: PathBuf::new(),
            hz: 0,
            active_expire_effort: 0,
            proto_max_bulk_len: 0,
            proto_max_multibulk_len: 0,
            client_query_buffer_limit: 0,
            daemonize: false,
            disable_thp: true,
            save: Vec::new(),
            dbfilename: String::new(),
            rdbcompression: true,
            rdbchecksum: true,
            rdb_save_incremental_fsync: true,
            rdb_key_save_delay: 0,
            save_yield_seconds: 5,
            stop_writes_on_bgsave_error: true,
            appendonly: false,
            appendfilename: String::new(),
            appenddirname: String::new(),
            appendfsync: AppendFsync::default(),
            no_appendfsync_on_rewrite: false,
            auto_aof_rewrite_percentage: 0,
            auto_aof_rewrite_min_size: 0,
            aof_load_truncated: true,
            aof_use_rdb_preamble: true,
            aof_timestamp_enabled: false,
            aof_rewrite_incremental_fsync: true,
            maxmemory: 0,
            maxmemory_policy: MaxmemoryPolicy::default(),
            maxmemory_samples: 0,
            maxmemory_eviction_tenacity: 0,
            lfu_log_factor: 0,
            lfu_decay_time: 0,
            lazyfree_lazy_eviction: false,
            lazyfree_lazy_expire: false,
            lazyfree_lazy_server_del: false,
            lazyfree_lazy_user_del: false,
            lazyfree_lazy_user_flush: false,
            busy_reply_threshold: 0,
            lua_memory_limit: 0,
            rl_max_policies: 0,
            max_sessions: 1_000_000,
            jobs: crate::jobs::JobConfig::default(),
            job_schedule_max: 10_000,
            job_schedule_grace_ms: 60_000,
            job_schedule_max_fires: 1000,
            enable_protected_configs: ProtectedAction::default(),
            enable_debug_command: ProtectedAction::default(),
            key_load_delay: 0,
            threads: 0,
            shards: 0,
            enc: basalt_engine::EncodingLimits::default(),
            notify_keyspace_events: 0,
            client_obuf_limits: crate::pubsub::DEFAULT_OBUF_LIMITS,
            config_file: None,
        };
        for d in table::TABLE {
            d.reset(&mut c);
        }
        c
    }
}

/// The process's working directory, or `.` if it cannot be read.
fn current_dir() -> PathBuf {
    std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
}

/// `ERR CONFIG SET failed (possibly related to argument '<name>') - <reason>`: the reply when
/// a value is rejected, also for the server when applying a change fails (`port` that
/// cannot be bound: reason `Unable to listen on this port`).
pub fn set_failed(name: &str, reason: &str) -> String {
    format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {reason}")
}

impl Config {
    /// The configuration file given at start (absolute), if any.
    pub fn config_file(&self) -> Option<&Path> {
        self.config_file.as_deref()
    }

    /// The request decoder limits these settings ask for.
    pub fn limits(&self) -> basalt_proto::Limits {
        basalt_proto::Limits {
            max_bulk_len: self.proto_max_bulk_len,
            max_multibulk_len: self.proto_max_multibulk_len,
            ..basalt_proto::Limits::default()
        }
    }

    /// Whether the directive's value is secret (`requirepass`): CONFIG SET arguments for it
    /// must be redacted from logs, SLOWLOG and MONITOR.
    pub fn is_sensitive(name: &[u8]) -> bool {
        table::lookup(name).is_some_and(|d| d.has(SENSITIVE))
    }

    /// CONFIG GET with one pattern: `(name, value)` pairs of the directives whose name
    /// matches the glob (case-insensitive). A pattern without `*`, `?` or `[` is looked up
    /// directly and answered under the name as given (`CONFIG GET PORT` → `PORT`).
    pub fn get(&self, pattern: &[u8]) -> Vec<(String, Vec<u8>)> {
        self.get_many(&[pattern])
    }

    /// CONFIG GET with several patterns: each directive appears once, under the first
    /// spelling that matched it.
    pub fn get_many(&self, patterns: &[&[u8]]) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<(String, Vec<u8>)> = Vec::new();
        let seen = |out: &[(String, Vec<u8>)], name: &[u8]| {
            out.iter()
                .any(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name))
        };
        for &pattern in patterns {
            if !pattern.iter().any(|b| matches!(b, b'*' | b'?' | b'[')) {
                if seen(&out, pattern) {
                    continue;
                }
                if let Some(d) = table::lookup(pattern) {
                    out.push((String::from_utf8_lossy(pattern).into_owned(), d.get(self)));
                }
                continue;
            }
            for (name, d) in table::all_names() {
                if d.has(table::HIDDEN) {
                    continue;
                }
                if !seen(&out, name.as_bytes()) && glob_match(pattern, name.as_bytes(), true) {
                    out.push((name.to_string(), d.get(self)));
                }
            }
        }
        out
    }

    /// CONFIG SET from a client that is not local (see [`Config::set_many_from`]).
    pub fn set_many(&mut self, pairs: &[(Vec<u8>, Vec<u8>)]) -> Result<Vec<ConfigChange>, String> {
        self.set_many_from(pairs, false)
    }

    /// CONFIG SET `name value [name value ...]`, all or nothing: on error nothing changes and
    /// the error is Redis's reply text (with `ERR `). `local_client` tells whether the caller
    /// is connected over loopback or a Unix socket (for `enable-protected-configs local`).
    ///
    /// Returns the directives whose value actually changed, in argument order. If applying
    /// one fails, the server restores a copy of the `Config` taken before the call and
    /// replies with [`set_failed`].
    pub fn set_many_from(
        &mut self,
        pairs: &[(Vec<u8>, Vec<u8>)],
        local_client: bool,
    ) -> Result<Vec<ConfigChange>, String> {
        // Check every name first; the first problem in argument order is the one reported.
        let mut targets: Vec<&'static table::Directive> = Vec::with_capacity(pairs.len());
        for (name, _) in pairs {
            let Some(d) = table::lookup(name) else {
                return Err(format!(
                    "ERR Unknown option or number of arguments for CONFIG SET - '{}'",
                    error_text(name)
                ));
            };
            let reason = if d.has(IMMUTABLE) {
                Some("can't set immutable config")
            } else if d.has(PROTECTED) && !self.enable_protected_configs.allows(local_client) {
                Some("can't set protected config")
            } else if targets.iter().any(|t| std::ptr::eq(*t, d)) {
                Some("duplicate parameter")
            } else {
                None
            };
            if let Some(reason) = reason {
                // These errors name the argument as the client typed it.
                return Err(set_failed(&error_text(name), reason));
            }
            targets.push(d);
        }
        let before = self.clone();
        let mut changes = Vec::new();
        for (d, (_, value)) in targets.iter().zip(pairs) {
            let old = d.get(self);
            if let Err(reason) = d.set_value(self, value) {
                *self = before;
                // Value errors name the directive by its canonical name.
                return Err(set_failed(d.name, &reason));
            }
            if d.get(self) != old {
                changes.push(ConfigChange { name: d.name });
            }
        }
        Ok(changes)
    }

    /// CONFIG REWRITE into the file this configuration was loaded from; the error is the
    /// reply text (`ERR The server is running without a config file`,
    /// `ERR Rewriting config file: <reason>`).
    pub fn rewrite_config_file(&self) -> Result<(), String> {
        let Some(path) = &self.config_file else {
            return Err("ERR The server is running without a config file".to_string());
        };
        self.rewrite(path)
            .map_err(|e| format!("ERR Rewriting config file: {}", value::strerror(&e)))
    }

    /// Rewrites the configuration file at `path` like Redis's CONFIG REWRITE: the file is
    /// read again, comments and line order are kept, lines of known directives are updated
    /// in place, directives absent from the file are appended (after a
    /// `# Generated by CONFIG REWRITE` line) when they differ from the default, lines no
    /// longer needed become blank, and unknown lines are kept commented out as `# ??? `.
    /// The new file replaces the old one atomically.
    pub fn rewrite(&self, path: &Path) -> std::io::Result<()> {
        rewrite::rewrite_file(self, path)
    }
}
