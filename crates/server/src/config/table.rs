//! The directive table: one entry per configuration directive, with its name, aliases,
//! flags, value kind, bounds and default. Parsing, CONFIG GET/SET, CONFIG REWRITE and the
//! defaults of [`Config`] are all driven by this table, so adding a directive is adding one
//! entry (plus its field in [`Config`] and its line in `docs/configuration.md`).
//!
//! Value kinds follow Redis 7.0's `standardConfig` types (bool, numeric, memory, enum,
//! string, special) and their error texts, word for word.

use super::rewrite::Rewrite;
use super::value::{
    format_memory, parse_memory, parse_strtoll, parse_yes_no, repr, strerror, yes_no,
};
use super::{AppendFsync, Config, LogLevel, MaxmemoryPolicy, ProtectedAction, SaveRule};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

/// CONFIG SET refuses it: "can't set immutable config".
pub const IMMUTABLE: u8 = 1 << 0;
/// CONFIG SET allows it only as `enable-protected-configs` says.
pub const PROTECTED: u8 = 1 << 1;
/// The value is a secret: keep it out of logs, SLOWLOG and MONITOR.
pub const SENSITIVE: u8 = 1 << 2;
/// Basalt's own directive (not in Redis).
pub const BASALT: u8 = 1 << 3;
/// Left out of `CONFIG GET` patterns (an exact name still answers), as Redis's hidden
/// test directives.
pub const HIDDEN: u8 = 1 << 4;

/// Basalt's own values of Redis enum directives (`maxmemory-policy allkeys-s3fifo`):
/// accepted, but left out of the "must be one of" error so it stays Redis's text.
const UNLISTED: &[&str] = &["allkeys-fifo", "allkeys-s3fifo"];

/// One configuration directive.
pub struct Directive {
    /// Canonical (lowercase) name.
    pub name: &'static str,
    /// Other accepted names (CONFIG GET answers under the name asked for).
    pub aliases: &'static [&'static str],
    /// [`IMMUTABLE`], [`PROTECTED`], [`SENSITIVE`], [`BASALT`].
    pub flags: u8,
    pub kind: Kind,
}

type Check<T> = Option<fn(T) -> Result<(), &'static str>>;
type SpecialSet = fn(&mut Config, &[Vec<u8>], &mut SetCtx) -> Result<(), String>;

/// What a directive holds, how it is parsed and where it lives in [`Config`].
pub enum Kind {
    /// `yes` / `no`.
    Bool {
        default: bool,
        check: Check<bool>,
        get: fn(&Config) -> bool,
        set: fn(&mut Config, bool),
    },
    /// A strict integer (`string2ll`: no sign but `-`, no leading zeros) in `min..=max`;
    /// `clamp` silently narrows accepted values afterwards (Redis does that for `hz`).
    Int {
        min: i64,
        max: i64,
        default: i64,
        clamp: Option<(i64, i64)>,
        check: Check<i64>,
        get: fn(&Config) -> i64,
        set: fn(&mut Config, i64),
    },
    /// A byte count with an optional unit (`512mb`), in `min..=max`.
    Memory {
        min: u64,
        max: u64,
        default: u64,
        get: fn(&Config) -> u64,
        set: fn(&mut Config, u64),
    },
    /// One of `names` (any case); stored as the index.
    Enum {
        names: &'static [&'static str],
        default: usize,
        get: fn(&Config) -> usize,
        set: fn(&mut Config, usize),
    },
    /// A string. `get` answers `None` for Redis's NULL strings (empty password, no pid
    /// file): CONFIG REWRITE then drops the directive's lines. `default: None` means the
    /// default is NULL.
    Str {
        default: Option<&'static str>,
        get: fn(&Config) -> Option<Vec<u8>>,
        set: fn(&mut Config, &[u8]) -> Result<(), &'static str>,
    },
    /// Hand-written parsing and formatting (`save`, `bind`, `dir`).
    Special(&'static Special),
}

/// The operations of a [`Kind::Special`] directive.
pub struct Special {
    /// Takes several arguments: `bind a b`, `save 3600 1 300 100`.
    pub multi_arg: bool,
    pub set: SpecialSet,
    pub get: fn(&Config) -> Vec<u8>,
    pub rewrite: fn(&Config, &mut Rewrite),
    pub reset: fn(&mut Config),
}

/// Where a value being set comes from.
#[derive(Debug, Default)]
pub struct SetCtx {
    /// Reading the config file and command line (not CONFIG SET).
    pub loading: bool,
    /// A `save` line was already read: later ones add rules instead of replacing the
    /// defaults.
    pub save_seen: bool,
}

impl Directive {
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    pub fn multi_arg(&self) -> bool {
        matches!(self.kind, Kind::Special(s) if s.multi_arg)
    }

    /// Sets the value from its arguments (one for every kind but multi-argument ones).
    /// The error is Redis's reason text ("argument must be 'yes' or 'no'").
    pub fn set(&self, c: &mut Config, args: &[Vec<u8>], ctx: &mut SetCtx) -> Result<(), String> {
        let arg = match (&self.kind, args) {
            (Kind::Special(s), _) => return (s.set)(c, args, ctx),
            (_, [arg]) => arg.as_slice(),
            _ => return Err("wrong number of arguments".to_string()),
        };
        match &self.kind {
            Kind::Bool {
                check, set: store, ..
            } => {
                let v = parse_yes_no(arg).ok_or("argument must be 'yes' or 'no'")?;
                if let Some(check) = check {
                    check(v)?;
                }
                store(c, v);
            }
            Kind::Int {
                min,
                max,
                clamp,
                check,
                set: store,
                ..
            } => {
                let v = basalt_proto::parse_i64_strict(arg)
                    .ok_or("argument couldn't be parsed into an integer")?;
                if v < *min || v > *max {
                    return Err(format!(
                        "argument must be between {min} and {max} inclusive"
                    ));
                }
                if let Some(check) = check {
                    check(v)?;
                }
                store(c, clamp.map_or(v, |(lo, hi)| v.clamp(lo, hi)));
            }
            Kind::Memory {
                min,
                max,
                set: store,
                ..
            } => {
                let v = parse_memory(arg).ok_or("argument must be a memory value")?;
                if v < *min || v > *max {
                    return Err(format!(
                        "argument must be between {min} and {max} inclusive"
                    ));
                }
                store(c, v);
            }
            Kind::Enum {
                names, set: store, ..
            } => match names
                .iter()
                .position(|n| n.as_bytes().eq_ignore_ascii_case(arg))
            {
                Some(i) => store(c, i),
                None => {
                    let listed: Vec<&str> = names
                        .iter()
                        .copied()
                        .filter(|n| !UNLISTED.contains(n))
                        .collect();
                    return Err(format!(
                        "argument(s) must be one of the following: {}",
                        listed.join(", ")
                    ));
                }
            },
            Kind::Str { set: store, .. } => store(c, arg)?,
            Kind::Special(_) => {}
        }
        Ok(())
    }

    /// CONFIG SET's form: multi-argument values are split on single spaces (Redis uses
    /// `sdssplitlen` here, not the quote-aware splitter of the file parser).
    pub fn set_value(&self, c: &mut Config, value: &[u8]) -> Result<(), String> {
        let args: Vec<Vec<u8>> = if self.multi_arg() {
            if value.is_empty() {
                Vec::new()
            } else {
                value.split(|&b| b == b' ').map(<[u8]>::to_vec).collect()
            }
        } else {
            vec![value.to_vec()]
        };
        self.set(c, &args, &mut SetCtx::default())
    }

    /// The value as CONFIG GET shows it.
    pub fn get(&self, c: &Config) -> Vec<u8> {
        match &self.kind {
            Kind::Bool { get, .. } => yes_no(get(c)).as_bytes().to_vec(),
            Kind::Int { get, .. } => get(c).to_string().into_bytes(),
            Kind::Memory { get, .. } => get(c).to_string().into_bytes(),
            Kind::Enum { names, get, .. } => names.get(get(c)).unwrap_or(&"").as_bytes().to_vec(),
            Kind::Str { get, .. } => get(c).unwrap_or_default(),
            Kind::Special(s) => (s.get)(c),
        }
    }

    /// Puts the default value in place.
    pub fn reset(&self, c: &mut Config) {
        match &self.kind {
            Kind::Bool {
                default,
                set: store,
                ..
            } => store(c, *default),
            Kind::Int {
                default,
                set: store,
                ..
            } => store(c, *default),
            Kind::Memory {
                default,
                set: store,
                ..
            } => store(c, *default),
            Kind::Enum {
                default,
                set: store,
                ..
            } => store(c, *default),
            Kind::Str {
                default,
                set: store,
                ..
            } => {
                // Defaults are plain strings every setter accepts.
                let _ = store(c, default.unwrap_or("").as_bytes());
            }
            Kind::Special(s) => (s.reset)(c),
        }
    }

    /// Emits this directive's line(s) into a CONFIG REWRITE, the way Redis decides: lines
    /// already in the file are always updated; new lines are added only for values that
    /// differ from the default.
    pub fn rewrite(&self, c: &Config, st: &mut Rewrite) {
        let name = self.name;
        let (value, force) = match &self.kind {
            Kind::Bool { default, get, .. } => {
                let v = get(c);
                (yes_no(v).as_bytes().to_vec(), v != *default)
            }
            Kind::Int { default, get, .. } => {
                let v = get(c);
                (v.to_string().into_bytes(), v != *default)
            }
            Kind::Memory { default, get, .. } => {
                let v = get(c);
                (format_memory(v).into_bytes(), v != *default)
            }
            Kind::Enum {
                names,
                default,
                get,
                ..
            } => {
                let v = get(c);
                (
                    names.get(v).unwrap_or(&"").as_bytes().to_vec(),
                    v != *default,
                )
            }
            Kind::Str { default, get, .. } => match get(c) {
                None => {
                    st.mark_processed(name);
                    return;
                }
                Some(v) => {
                    let force = default.is_none_or(|d| d.as_bytes() != v.as_slice());
                    (repr(&v), force)
                }
            },
            Kind::Special(s) => {
                (s.rewrite)(c, st);
                return;
            }
        };
        let mut line = format!("{name} ").into_bytes();
        line.extend_from_slice(&value);
        st.rewrite_line(name, line, force);
    }
}

/// Finds a directive by name or alias, in any case.
pub fn lookup(name: &[u8]) -> Option<&'static Directive> {
    TABLE.iter().find(|d| {
        d.name.as_bytes().eq_ignore_ascii_case(name)
            || d.aliases
                .iter()
                .any(|a| a.as_bytes().eq_ignore_ascii_case(name))
    })
}

/// Every name CONFIG GET patterns are matched against (canonical names and aliases).
pub fn all_names() -> impl Iterator<Item = (&'static str, &'static Directive)> {
    TABLE.iter().flat_map(|d| {
        std::iter::once(d.name)
            .chain(d.aliases.iter().copied())
            .map(move |n| (n, d))
    })
}

/// Redis's `pathIsBaseName`: no `/` and not `.` or `..`.
fn is_base_name(v: &[u8]) -> bool {
    !v.contains(&b'/') && v != b"." && v != b".." && !v.is_empty()
}

fn utf8(v: &[u8]) -> Result<String, &'static str> {
    String::from_utf8(v.to_vec()).map_err(|_| "argument must be valid UTF-8 (Basalt)")
}

/// Bounds Redis 7.0 uses for `int`-typed directives.
const INT_MAX: i64 = i32::MAX as i64;
const INT_MIN: i64 = i32::MIN as i64;
const UINT_MAX: i64 = u32::MAX as i64;
const LONG_MAX: u64 = i64::MAX as u64;
const MB: u64 = 1024 * 1024;

/// Basalt's default `bind`: loopback only (Redis's built-in default is `* -::*`).
pub const DEFAULT_BIND: &[&str] = &["127.0.0.1"];
/// Redis's default snapshot rules.
pub const DEFAULT_SAVE: &[SaveRule] = &[
    SaveRule {
        seconds: 3600,
        changes: 1,
    },
    SaveRule {
        seconds: 300,
        changes: 100,
    },
    SaveRule {
        seconds: 60,
        changes: 10000,
    },
];
/// Redis's `CONFIG_BINDADDR_MAX`.
const BIND_MAX: usize = 16;

pub static TABLE: &[Directive] = &[
    Directive {
        name: "bind",
        aliases: &[],
        flags: 0,
        kind: Kind::Special(&Special {
            multi_arg: true,
            set: set_bind,
            get: |c| c.bind.join(" ").into_bytes(),
            rewrite: rewrite_bind,
            reset: |c| c.bind = DEFAULT_BIND.iter().map(|s| s.to_string()).collect(),
        }),
    },
    Directive {
        name: "port",
        aliases: &[],
        flags: 0,
        kind: Kind::Int {
            min: 0,
            max: 65535,
            default: 6379,
            clamp: None,
            check: None,
            get: |c| i64::from(c.port),
            set: |c, v| c.port = v as u16,
        },
    },
    Directive {
        name: "timeout",
        aliases: &[],
        flags: 0,
        kind: Kind::Int {
            min: 0,
            max: INT_MAX,
            default: 0,
            clamp: None,
            check: None,
            get: |c| c.timeout as i64,
            set: |c, v| c.timeout = v as u64,
        },
    },
    Directive {
        name: "tcp-keepalive",
        aliases: &[],
        flags: 0,
        kind: Kind::Int {
            min: 0,
            max: INT_MAX,
            default: 300,
            clamp: None,
            check: None,
            get: |c| c.tcp_keepalive as i64,
            set: |c, v| c.tcp_keepalive = v as u64,
        },
    },
    Directive {
        name: "databases",
        aliases: &[],
        flags: IMMUTABLE,
        kind: Kind::Int {
            min: 1,
            max: INT_MAX,
            default: 16,
            clamp: None,
            check: None,
            get: |c| c.databases as i64,
            set: |c, v| c.databases = v as usize,
        },
    },
    Directive {
        name: "maxclients",
        aliases: &[],
        flags: 0,
        kind: Kind::Int {
            min: 1,
            max: UINT_MAX,
            default: 10000,
            clamp: None,
            check: None,
            get: |c| c.maxclients as i64,
            set: |c, v| c.maxclients = v as usize,
        },
    },
    Directive {
        name: "requirepass",
        aliases: &[],
        flags: SENSITIVE,
        kind: Kind::Str {
            default: None,
            get: |c| (!c.requirepass.is_empty()).then(|| c.requirepass.clone()),
            set: |c, v| {
                c.requirepass = v.to_vec();
                Ok(())
            },
        },
    },
    Directive {
        name: "faktory-port",
        aliases: &[],
        flags: BASALT | IMMUTABLE,
        kind: Kind::Int {
            min: 0,
            max: 65535,
            default: 0,
            clamp: None,
            check: None,
            get: |c| i64::from(c.faktory.port),
            set: |c, v| c.faktory.port = v as u16,
        },
    },
    Directive {
        name: "faktory-bind",
        aliases: &[],
        flags: BASALT | IMMUTABLE,
        kind: Kind::Str {
            default: Some("127.0.0.1"),
            get: |c| Some(c.faktory.bind.clone().into_bytes()),
            set: |c, v| {
                let s = std::str::from_utf8(v).map_err(|_| "invalid address")?;
                c.faktory.bind = s.to_string();
                Ok(())
            },
        },
    },
    Directive {
        name: "faktory-password",
        aliases: &[],
        flags: BASALT | SENSITIVE,
        kind: Kind::Str {
            default: None,
            get: |c| (!c.faktory.password.is_empty()).then(|| c.faktory.password.clone()),
            set: |c, v| {
                c.faktory.password = v.to_vec();
                Ok(())
            },
        },
    },
    Directive {
        name: "faktory-max-line",
        aliases: &[],
        flags: BASALT,
        kind: Kind::Memory {
            min: 1024,
            max: 512 * MB,
            default: 4 * MB,
            get: |c| c.faktory.max_line,
            set: |c, v| c.faktory.max_line = v,
        },
    },
    Directive {
        name: "faktory-max-connections",
        aliases: &[],
        flags: BASALT,
        kind: Kind::Int {
            min: 1,
            max: UINT_MAX,
            default: 1000,
            clamp: None,
            check: None,
            get: |c| c.faktory.max_connections as i64,
            set: |c, v| c.faktory.max_connections = v as u64,
        },
    },
    Directive {
        name: "faktory-handshake-timeout",
        aliases: &[],
        flags: BASALT,
        kind: Kind::Int {
            min: 1,
            max: 3_600_000,
            default: 2000,
            clamp: None,
            check: None,
            get: |c| c.faktory.handshake_timeout_ms as i64,
            set: |c, v| c.faktory.handshake_timeout_ms = v as u64,
        },
    },
    Directive {
        name: "faktory-retry-backoff",
        aliases: &[],
        flags: BASALT,
        kind: Kind::Enum {
            names: &["faktory", "job"],
            default: 0,
            get: |c| usize::from(c.faktory.retry_backoff_job),
            set: |c, i| c.faktory.retry_backoff_job = i == 1,
        },
    },
    Directive {
        name: "loglevel",
        aliases: &[],
        flags: 0,
        kind: Kind::Enum {
            names: LogLevel::NAMES,
            default: LogLevel::Notice as usize,
            get: |c| c.loglevel as usize,
            set: |c, i| c.loglevel = LogLevel::from_index(i),
        },
    },
    Directive {
        name: "logfile",
        aliases: &[],
        flags: IMMUTABLE,
        kind: Kind::Str {
            default: Some(""),
            get: |c| Some(c.logfile.as_bytes().to_vec()),
            set: |c, v| {
                c.logfile = utf8(v)?;
                Ok(())
            },
        },
    },
    Directive {
        name: "pidfile",
        aliases: &[],
        flags: IMMUTABLE,
        kind: Kind::Str {
            default: None,
            get: |c| (!c.pidfile.is_empty()).then(|| c.pidfile.as_bytes().to_vec()),
            set: |c, v| {
                c.pidfile = utf8(v)?;
                Ok(())
            },
        },
    },
    Directive {
        name: "dir",
        aliases: &[],
        flags: PROTECTED,
        kind: Kind::Special(&Special {
            multi_arg: false,
            set: set_dir,
            get: |c| c.dir.as_os_str().as_bytes().to_vec(),
            rewrite: |c, st| {
                let mut line = b"dir ".to_vec();
                line.extend_from_slice(&repr(c.dir.as_os_str().as_bytes()));
                st.rewrite_line("dir", line, true);
            },
            reset: |c| c.dir = super::current_dir(),
        }),
    },
    Directive {
        name: "hz",
        aliases: &[],
        flags: 0,
        kind: Kind::Int {
            min: 0,
            max: INT_MAX,
            default: 10,
            // Redis's CONFIG_MIN_HZ / CONFIG_MAX_HZ.
            clamp: Some((1, 500)),
            check: None,
            get: |c| c.hz as i64,
            set: |c, v| c.hz = v as u64,
        },
    },
    Directive {
        // How hard active expiry works (Redis's directive and bounds): scales the
        // slow cycle's share of each tick and the length of the fast cycles run
        // while a backlog of due keys remains (expire.rs, docs/eviction.md).
        name: "active-expire-effort",
        aliases: &[],
        flags: 0,
        kind: Kind::Int {
            min: 1,
            max: 10,
            default: 1,
            clamp: None,
            check: None,
            get: |c| c.active_expire_effort as i64,
            set: |c, v| c.active_expire_effort = v as u64,
        },
    },
    Directive {
        name: "proto-max-bulk-len",
        aliases: &[],
        flags: 0,
        kind: Kind::Memory {
            min: MB,
            max: LONG_MAX,
            default: 512 * MB,
            get: |c| c.proto_max_bulk_len,
            set: |c, v| c.proto_max_bulk_len = v,
        },
    },
    Directive {
        name: "proto-max-multibulk-len",
        aliases: &[],
        flags: BASALT,
        kind: Kind::Int {
            min: 1,
            max: INT_MAX,
            default: INT_MAX,
            clamp: None,
            check: None,
            get: |c| c.proto_max_multibulk_len as i64,
            set: |c, v| c.proto_max_multibulk_len = v as u64,
        },
    },
    Directive {
        name: "client-query-buffer-limit",
        aliases: &[],
        flags: 0,
        kind: Kind::Memory {
            min: MB,
            max: LONG_MAX,
            default: 1024 * MB,
            get: |c| c.client_query_buffer_limit,
            set: |c, v| c.client_query_buffer_limit = v,
        },
    },
    Directive {
        name: "client-output-buffer-limit",
        aliases: &[],
        flags: 0,
        kind: Kind::Special(&Special {
            multi_arg: true,
            set: set_obuf_limits,
            get: get_obuf_limits,
            rewrite: rewrite_obuf_limits,
            reset: |c| c.client_obuf_limits = crate::pubsub::DEFAULT_OBUF_LIMITS,
        }),
    },
    Directive {
        name: "notify-keyspace-events",
        aliases: &[],
        flags: 0,
        kind: Kind::Special(&Special {
            multi_arg: false,
            set: set_notify_events,
            get: |c| crate::pubsub::notify::to_string(c.notify_keyspace_events).into_bytes(),
            rewrite: |c, st| {
                let flags = crate::pubsub::notify::to_string(c.notify_keyspace_events);
                let mut line = b"notify-keyspace-events ".to_vec();
                line.extend_from_slice(&repr(flags.as_bytes()));
                st.rewrite_line(
                    "notify-keyspace-events",
                    line,
                    c.notify_keyspace_events != 0,
                );
            },
            reset: |c| c.notify_keyspace_events = 0,
        }),
    },
    Directive {
        name: "daemonize",
        aliases: &[],
        flags: IMMUTABLE,
        kind: Kind::Bool {
            default: false,
            check: Some(|v| {
                if v {
                    Err(
                        "Basalt does not daemonize: run it in the foreground under a service \
                         manager (daemonize must be 'no')",
                    )
                } else {
                    Ok(())
                }
            }),
            get: |c| c.daemonize,
            set: |c, v| c.daemonize = v,
        },
    },
    Directive {
        name: "disable-thp",
        aliases: &[],
        flags: IMMUTABLE,
        kind: Kind::Bool {
            default: true,
            check: None,
            get: |c| c.disable_thp,
            set: |c, v| c.disable_thp = v,
        },
    },
    Directive {
        name: "save",
        aliases: &[],
        flags: 0,
        kind: Kind::Special(&Special {
            multi_arg: true,
            set: set_save,
            get: |c| {
                let parts: Vec<String> = c
                    .save
                    .iter()
                    .map(|r| format!("{} {}", r.seconds, r.changes))
                    .collect();
                parts.join(" ").into_bytes()
            },
            rewrite: rewrite_save,
            reset: |c| c.save = DEFAULT_SAVE.to_vec(),
        }),
    },
    Directive {
        name: "dbfilename",
        aliases: &[],
        flags: PROTECTED,
        kind: Kind::Str {
            default: Some("dump.rdb"),
            get: |c| Some(c.dbfilename.as_bytes().to_vec()),
            set: |c, v| {
                if v.contains(&b'/') || v.contains(&b'\\') {
                    return Err("dbfilename can't be a path, just a filename");
                }
                c.dbfilename = utf8(v)?;
                Ok(())
            },
        },
    },
    Directive {
        name: "rdbcompression",
        aliases: &[],
        flags: 0,
        kind: Kind::Bool {
            default: true,
            check: None,
            get: |c| c.rdbcompression,
            set: |c, v| c.rdbcompression = v,
        },
    },
    Directive {
        name: "rdbchecksum",
        aliases: &[],
        flags: IMMUTABLE,
        kind: Kind::Bool {
            default: true,
            check: None,
            get: |c| c.rdbchecksum,
            set: |c, v| c.rdbchecksum = v,
        },
    },
    Directive {
        name: "rdb-key-save-delay",
        aliases: &[],
        flags: HIDDEN,
        kind: Kind::Int {
            min: INT_MIN,
            max: INT_MAX,
            default: 0,
            clamp: None,
            check: None,
            get: |c| c.rdb_key_save_delay,
            set: |c, v| c.rdb_key_save_delay = v,
        },
    },
    Directive {
        name: "save-yield-seconds",
        aliases: &[],
        flags: 0,
        kind: Kind::Int {
            min: 0,
            max: 86400,
            default: 5,
            clamp: None,
            check: None,
            get: |c| c.save_yield_seconds,
            set: |c, v| c.save_yield_seconds = v,
        },
    },
    Directive {
        name: "stop-writes-on-bgsave-error",
        aliases: &[],
        flags: 0,
        kind: Kind::Bool {
            default: true,
            check: None,
            get: |c| c.stop_writes_on_bgsave_error,
            set: |c, v| c.stop_writes_on_bgsave_error = v,
        },
    },
    Directive {
        name: "appendonly",
        aliases: &[],
        flags: 0,
        kind: Kind::Bool {
            default: false,
            check: None,
            get: |c| c.appendonly,
            set: |c, v| c.appendonly = v,
        },
    },
    Directive {
        name: "appendfilename",
        aliases: &[],
        flags: IMMUTABLE,
        kind: Kind::Str {
            default: Some("appendonly.aof"),
            get: |c| Some(c.appendfilename.as_bytes().to_vec()),
            set: |c, v| {
                if !is_base_name(v) {
                    return Err("appendfilename can't be a path, just a filename");
                }
                c.appendfilename = utf8(v)?;
                Ok(())
            },
        },
    },
    Directive {
        name: "appenddirname",
        aliases: &[],
        flags: IMMUTABLE,
        kind: Kind::Str {
            default: Some("appendonlydir"),
            get: |c| Some(c.appenddirname.as_bytes().to_vec()),
            set: |c, v| {
                if !is_base_name(v) {
                    return Err("appenddirname can't be a path, just a dirname");
                }
                c.appenddirname = utf8(v)?;
                Ok(())
            },
        },
    },
    Directive {
        name: "appendfsync",
        aliases: &[],
        flags: 0,
        kind: Kind::Enum {
            names: AppendFsync::NAMES,
            default: AppendFsync::EverySec as usize,
            get: |c| c.appendfsync as usize,
            set: |c, i| c.appendfsync = AppendFsync::from_index(i),
        },
    },
    Directive {
        name: "no-appendfsync-on-rewrite",
        aliases: &[],
        flags: 0,
        kind: Kind::Bool {
            default: false,
            check: None,
            get: |c| c.no_appendfsync_on_rewrite,
            set: |c, v| c.no_appendfsync_on_rewrite = v,
        },
    },
    Directive {
        name: "auto-aof-rewrite-percentage",
        aliases: &[],
        flags: 0,
        kind: Kind::Int {
            min: 0,
            max: INT_MAX,
            default: 100,
            clamp: None,
            check: None,
            get: |c| c.auto_aof_rewrite_percentage,
            set: |c, v| c.auto_aof_rewrite_percentage = v,
        },
    },
    Directive {
        name: "auto-aof-rewrite-min-size",
        aliases: &[],
        flags: 0,
        kind: Kind::Memory {
            min: 0,
            max: LONG_MAX,
            default: 64 * 1024 * 1024,
            get: |c| c.auto_aof_rewrite_min_size,
            set: |c, v| c.auto_aof_rewrite_min_size = v,
        },
    },
    Directive {
        name: "aof-load-truncated",
        aliases: &[],
        flags: 0,
        kind: Kind::Bool {
            default: true,
            check: None,
            get: |c| c.aof_load_truncated,
            set: |c, v| c.aof_load_truncated = v,
        },
    },
    Directive {
        name: "aof-use-rdb-preamble",
        aliases: &[],
        flags: 0,
        kind: Kind::Bool {
            default: true,
            check: None,
            get: |c| c.aof_use_rdb_preamble,
            set: |c, v| c.aof_use_rdb_preamble = v,
        },
    },
    Directive {
        name: "aof-timestamp-enabled",
        aliases: &[],
        flags: 0,
        kind: Kind::Bool {
            default: false,
            check: None,
            get: |c| c.aof_timestamp_enabled,
            set: |c, v| c.aof_timestamp_enabled = v,
        },
    },
    Directive {
        name: "rdb-save-incremental-fsync",
        aliases: &[],
        flags: 0,
        kind: Kind::Bool {
            default: true,
            check: None,
            get: |c| c.rdb_save_incremental_fsync,
            set: |c, v| c.rdb_save_incremental_fsync = v,
        },
    },
    Directive {
        name: "aof-rewrite-incremental-fsync",
        aliases: &[],
        flags: 0,
        kind: Kind::Bool {
            default: true,
            check: None,
            get: |c| c.aof_rewrite_incremental_fsync,
            set: |c, v| c.aof_rewrite_incremental_fsync = v,
        },
    },
    Directive {
        name: "maxmemory",
        aliases: &[],
        flags: 0,
        kind: Kind::Memory {
            min: 0,
            max: u64::MAX,
            default: 0,
            get: |c| c.maxmemory,
            set: |c, v| c.maxmemory = v,
        },
    },
    Directive {
        name: "maxmemory-policy",
        aliases: &[],
        flags: 0,
        kind: Kind::Enum {
            names: MaxmemoryPolicy::NAMES,
            default: MaxmemoryPolicy::NoEviction as usize,
            get: |c| c.maxmemory_policy as usize,
            set: |c, i| c.maxmemory_policy = MaxmemoryPolicy::from_index(i),
        },
    },
    Directive {
        name: "maxmemory-samples",
        aliases: &[],
        flags: 0,
        kind: Kind::Int {
            min: 1,
            max: INT_MAX,
            default: 5,
            clamp: None,
            check: None,
            get: |c| c.maxmemory_samples as i64,
            set: |c, v| c.maxmemory_samples = v as u64,
        },
    },
    Directive {
        name: "maxmemory-eviction-tenacity",
        aliases: &[],
        flags: 0,
        kind: Kind::Int {
            min: 0,
            max: 100,
            default: 10,
            clamp: None,
            check: None,
            get: |c| c.maxmemory_eviction_tenacity as i64,
            set: |c, v| c.maxmemory_eviction_tenacity = v as u64,
        },
    },
    Directive {
        name: "lfu-log-factor",
        aliases: &[],
        flags: 0,
        kind: Kind::Int {
            min: 0,
            max: INT_MAX,
            default: 10,
            clamp: None,
            check: None,
            get: |c| c.lfu_log_factor as i64,
            set: |c, v| c.lfu_log_factor = v as u64,
        },
    },
    Directive {
        name: "lfu-decay-time",
        aliases: &[],
        flags: 0,
        kind: Kind::Int {
            min: 0,
            max: INT_MAX,
            default: 1,
            clamp: None,
            check: None,
            get: |c| c.lfu_decay_time as i64,
            set: |c, v| c.lfu_decay_time = v as u64,
        },
    },
    Directive {
        name: "lazyfree-lazy-eviction",
        aliases: &[],
        flags: 0,
        kind: Kind::Bool {
            default: false,
            check: None,
            get: |c| c.lazyfree_lazy_eviction,
            set: |c, v| c.lazyfree_lazy_eviction = v,
        },
    },
    Directive {
        name: "lazyfree-lazy-expire",
        aliases: &[],
        flags: 0,
        kind: Kind::Bool {
            default: false,
            check: None,
            get: |c| c.lazyfree_lazy_expire,
            set: |c, v| c.lazyfree_lazy_expire = v,
        },
    },
    Directive {
        name: "lazyfree-lazy-server-del",
        aliases: &[],
        flags: 0,
        kind: Kind::Bool {
            default: false,
            check: None,
            get: |c| c.lazyfree_lazy_server_del,
            set: |c, v| c.lazyfree_lazy_server_del = v,
        },
    },
    Directive {
        name: "lazyfree-lazy-user-del",
        aliases: &[],
        flags: 0,
        kind: Kind::Bool {
            default: false,
            check: None,
            get: |c| c.lazyfree_lazy_user_del,
            set: |c, v| c.lazyfree_lazy_user_del = v,
        },
    },
    Directive {
        name: "lazyfree-lazy-user-flush",
        aliases: &[],
        flags: 0,
        kind: Kind::Bool {
            default: false,
            check: None,
            get: |c| c.lazyfree_lazy_user_flush,
            set: |c, v| c.lazyfree_lazy_user_flush = v,
        },
    },
    Directive {
        name: "busy-reply-threshold",
        aliases: &["lua-time-limit"],
        flags: 0,
        kind: Kind::Int {
            min: 0,
            max: i64::MAX,
            default: 5000,
            clamp: None,
            check: None,
            get: |c| c.busy_reply_threshold as i64,
            set: |c, v| c.busy_reply_threshold = v as u64,
        },
    },
    Directive {
        name: "lua-memory-limit",
        aliases: &[],
        flags: BASALT,
        kind: Kind::Memory {
            min: 0,
            max: u64::MAX,
            default: 1024 * MB,
            get: |c| c.lua_memory_limit,
            set: |c, v| c.lua_memory_limit = v,
        },
    },
    Directive {
        name: "job-schedule-max",
        aliases: &[],
        flags: BASALT,
        kind: Kind::Int {
            min: 0,
            max: 1_000_000,
            default: 10_000,
            clamp: None,
            check: None,
            get: |c| c.job_schedule_max as i64,
            set: |c, v| c.job_schedule_max = v as u64,
        },
    },
    Directive {
        name: "job-schedule-grace-ms",
        aliases: &[],
        flags: BASALT,
        kind: Kind::Int {
            min: 0,
            max: 315_360_000_000,
            default: 60_000,
            clamp: None,
            check: None,
            get: |c| c.job_schedule_grace_ms as i64,
            set: |c, v| c.job_schedule_grace_ms = v as u64,
        },
    },
    Directive {
        name: "job-schedule-max-fires",
        aliases: &[],
        flags: BASALT,
        kind: Kind::Int {
            min: 1,
            max: 100_000,
            default: 1000,
            clamp: None,
            check: None,
            get: |c| c.job_schedule_max_fires as i64,
            set: |c, v| c.job_schedule_max_fires = v as u64,
        },
    },
    Directive {
        name: "rl-max-policies",
        aliases: &[],
        flags: BASALT,
        kind: Kind::Int {
            min: 0,
            max: 1_000_000,
            default: 1000,
            clamp: None,
            check: None,
            get: |c| c.rl_max_policies as i64,
            set: |c, v| c.rl_max_policies = v as u64,
        },
    },
    Directive {
        name: "coord-max-sessions",
        aliases: &[],
        flags: BASALT,
        kind: Kind::Int {
            min: 1,
            max: 1_000_000_000,
            default: 1_000_000,
            clamp: None,
            check: None,
            get: |c| c.max_sessions as i64,
            set: |c, v| c.max_sessions = v as u64,
        },
    },
    Directive {
        name: "job-max-payload-bytes",
        aliases: &[],
        flags: BASALT,
        kind: Kind::Int {
            min: 1,
            max: 536870912,
            default: 1048576,
            clamp: None,
            check: None,
            get: |c| c.jobs.max_payload as i64,
            set: |c, v| c.jobs.max_payload = v as u64,
        },
    },
    Directive {
        name: "job-max-id-bytes",
        aliases: &[],
        flags: BASALT,
        kind: Kind::Int {
            min: 1,
            max: 65536,
            default: 128,
            clamp: None,
            check: None,
            get: |c| c.jobs.max_id as i64,
            set: |c, v| c.jobs.max_id = v as u64,
        },
    },
    Directive {
        name: "job-max-pushb",
        aliases: &[],
        flags: BASALT,
        kind: Kind::Int {
            min: 1,
            max: 1000000,
            default: 1000,
            clamp: None,
            check: None,
            get: |c| c.jobs.max_pushb as i64,
            set: |c, v| c.jobs.max_pushb = v as u64,
        },
    },
    Directive {
        name: "job-max-tags",
        aliases: &[],
        flags: BASALT,
        kind: Kind::Int {
            min: 0,
            max: 100000,
            default: 16,
            clamp: None,
            check: None,
            get: |c| c.jobs.max_tags as i64,
            set: |c, v| c.jobs.max_tags = v as u64,
        },
    },
    Directive {
        name: "job-max-depends",
        aliases: &[],
        flags: BASALT,
        kind: Kind::Int {
            min: 0,
            max: 100000,
            default: 64,
            clamp: None,
            check: None,
            get: |c| c.jobs.max_depends as i64,
            set: |c, v| c.jobs.max_depends = v as u64,
        },
    },
    Directive {
        name: "job-max-fetch-count",
        aliases: &[],
        flags: BASALT,
        kind: Kind::Int {
            min: 1,
            max: 1000000,
            default: 1000,
            clamp: None,
            check: None,
            get: |c| c.jobs.max_fetch_count as i64,
            set: |c, v| c.jobs.max_fetch_count = v as u64,
        },
    },
    Directive {
        name: "job-max-fetch-queues",
        aliases: &[],
        flags: BASALT,
        kind: Kind::Int {
            min: 1,
            max: 100000,
            default: 64,
            clamp: None,
            check: None,
            get: |c| c.jobs.max_fetch_queues as i64,
            set: |c, v| c.jobs.max_fetch_queues = v as u64,
        },
    },
    Directive {
        name: "job-max-errors",
        aliases: &[],
        flags: BASALT,
        kind: Kind::Int {
            min: 1,
            max: 100000,
            default: 10,
            clamp: None,
            check: None,
            get: |c| c.jobs.max_errors as i64,
            set: |c, v| c.jobs.max_errors = v as u64,
        },
    },
    Directive {
        name: "job-default-retry",
        aliases: &[],
        flags: BASALT,
        kind: Kind::Int {
            min: 0,
            max: 1000000,
            default: 25,
            clamp: None,
            check: None,
            get: |c| c.jobs.default_retry as i64,
            set: |c, v| c.jobs.default_retry = v as u64,
        },
    },
    Directive {
        name: "job-default-timeout",
        aliases: &[],
        flags: BASALT,
        kind: Kind::Int {
            min: 1,
            max: 315360000000,
            default: 1800000,
            clamp: None,
            check: None,
            get: |c| c.jobs.default_timeout as i64,
            set: |c, v| c.jobs.default_timeout = v as u64,
        },
    },
    Directive {
        name: "job-events-maxlen",
        aliases: &[],
        flags: BASALT,
        kind: Kind::Int {
            min: 0,
            max: 1000000000,
            default: 10000,
            clamp: None,
            check: None,
            get: |c| c.jobs.events_maxlen as i64,
            set: |c, v| c.jobs.events_maxlen = v as u64,
        },
    },
    Directive {
        name: "job-worker-ttl",
        aliases: &[],
        flags: BASALT,
        kind: Kind::Int {
            min: 1,
            max: 315360000000,
            default: 60000,
            clamp: None,
            check: None,
            get: |c| c.jobs.worker_ttl as i64,
            set: |c, v| c.jobs.worker_ttl = v as u64,
        },
    },
    Directive {
        name: "job-retention-completed-count",
        aliases: &[],
        flags: BASALT,
        kind: Kind::Int {
            min: 0,
            max: 1000000000000,
            default: 1000,
            clamp: None,
            check: None,
            get: |c| c.jobs.retention_completed_count as i64,
            set: |c, v| c.jobs.retention_completed_count = v as u64,
        },
    },
    Directive {
        name: "job-retention-completed-ms",
        aliases: &[],
        flags: BASALT,
        kind: Kind::Int {
            min: 0,
            max: 315360000000,
            default: 86400000,
            clamp: None,
            check: None,
            get: |c| c.jobs.retention_completed_ms as i64,
            set: |c, v| c.jobs.retention_completed_ms = v as u64,
        },
    },
    Directive {
        name: "job-retention-dead-count",
        aliases: &[],
        flags: BASALT,
        kind: Kind::Int {
            min: 0,
            max: 1000000000000,
            default: 10000,
            clamp: None,
            check: None,
            get: |c| c.jobs.retention_dead_count as i64,
            set: |c, v| c.jobs.retention_dead_count = v as u64,
        },
    },
    Directive {
        name: "job-retention-dead-ms",
        aliases: &[],
        flags: BASALT,
        kind: Kind::Int {
            min: 0,
            max: 315360000000,
            default: 15552000000,
            clamp: None,
            check: None,
            get: |c| c.jobs.retention_dead_ms as i64,
            set: |c, v| c.jobs.retention_dead_ms = v as u64,
        },
    },
    Directive {
        name: "enable-protected-configs",
        aliases: &[],
        flags: IMMUTABLE,
        kind: Kind::Enum {
            names: ProtectedAction::NAMES,
            default: ProtectedAction::No as usize,
            get: |c| c.enable_protected_configs as usize,
            set: |c, i| c.enable_protected_configs = ProtectedAction::from_index(i),
        },
    },
    Directive {
        name: "enable-debug-command",
        aliases: &[],
        flags: IMMUTABLE,
        kind: Kind::Enum {
            names: ProtectedAction::NAMES,
            default: ProtectedAction::No as usize,
            get: |c| c.enable_debug_command as usize,
            set: |c, i| c.enable_debug_command = ProtectedAction::from_index(i),
        },
    },
    Directive {
        // Redis's hidden test directive: microseconds to sleep after each key loaded at
        // startup (negative: 1 microsecond every -N keys), to make the loading state
        // observable in tests.
        name: "key-load-delay",
        aliases: &[],
        flags: HIDDEN,
        kind: Kind::Int {
            min: INT_MIN,
            max: INT_MAX,
            default: 0,
            clamp: None,
            check: None,
            get: |c| c.key_load_delay,
            set: |c, v| c.key_load_delay = v,
        },
    },
    Directive {
        name: "threads",
        aliases: &[],
        flags: IMMUTABLE | BASALT,
        kind: Kind::Int {
            min: 0,
            max: 1024,
            default: 0,
            clamp: None,
            check: None,
            get: |c| c.threads as i64,
            set: |c, v| c.threads = v as usize,
        },
    },
    Directive {
        name: "shards",
        aliases: &[],
        flags: IMMUTABLE | BASALT,
        kind: Kind::Int {
            min: 1,
            max: 65536,
            default: 64,
            clamp: None,
            check: Some(|v| {
                if v.count_ones() == 1 {
                    Ok(())
                } else {
                    Err("argument must be a power of two")
                }
            }),
            get: |c| c.shards as i64,
            set: |c, v| c.shards = v as usize,
        },
    },
    Directive {
        name: "hash-max-listpack-entries",
        aliases: &["hash-max-ziplist-entries"],
        flags: 0,
        kind: Kind::Int {
            min: 0,
            max: LONG_MAX as i64,
            default: 512,
            clamp: None,
            check: None,
            get: |c| c.enc.hash_max_listpack_entries as i64,
            set: |c, v| c.enc.hash_max_listpack_entries = v as usize,
        },
    },
    Directive {
        name: "hash-max-listpack-value",
        aliases: &["hash-max-ziplist-value"],
        flags: 0,
        kind: Kind::Memory {
            min: 0,
            max: LONG_MAX,
            default: 64,
            get: |c| c.enc.hash_max_listpack_value as u64,
            set: |c, v| c.enc.hash_max_listpack_value = v as usize,
        },
    },
    Directive {
        name: "set-max-intset-entries",
        aliases: &[],
        flags: 0,
        kind: Kind::Int {
            min: 0,
            max: LONG_MAX as i64,
            default: 512,
            clamp: None,
            check: None,
            get: |c| c.enc.set_max_intset_entries as i64,
            set: |c, v| c.enc.set_max_intset_entries = v as usize,
        },
    },
    Directive {
        name: "set-max-listpack-entries",
        aliases: &[],
        flags: BASALT,
        kind: Kind::Int {
            min: 0,
            max: LONG_MAX as i64,
            default: 0,
            clamp: None,
            check: None,
            get: |c| c.enc.set_max_listpack_entries as i64,
            set: |c, v| c.enc.set_max_listpack_entries = v as usize,
        },
    },
    Directive {
        name: "set-max-listpack-value",
        aliases: &[],
        flags: BASALT,
        kind: Kind::Memory {
            min: 0,
            max: LONG_MAX,
            default: 64,
            get: |c| c.enc.set_max_listpack_value as u64,
            set: |c, v| c.enc.set_max_listpack_value = v as usize,
        },
    },
    Directive {
        name: "zset-max-listpack-entries",
        aliases: &["zset-max-ziplist-entries"],
        flags: 0,
        kind: Kind::Int {
            min: 0,
            max: LONG_MAX as i64,
            default: 128,
            clamp: None,
            check: None,
            get: |c| c.enc.zset_max_listpack_entries as i64,
            set: |c, v| c.enc.zset_max_listpack_entries = v as usize,
        },
    },
    Directive {
        name: "zset-max-listpack-value",
        aliases: &["zset-max-ziplist-value"],
        flags: 0,
        kind: Kind::Memory {
            min: 0,
            max: LONG_MAX,
            default: 64,
            get: |c| c.enc.zset_max_listpack_value as u64,
            set: |c, v| c.enc.zset_max_listpack_value = v as usize,
        },
    },
    Directive {
        name: "list-max-listpack-size",
        aliases: &["list-max-ziplist-size"],
        flags: 0,
        kind: Kind::Int {
            min: INT_MIN,
            max: INT_MAX,
            default: -2,
            clamp: None,
            check: None,
            get: |c| c.enc.list_max_listpack_size,
            set: |c, v| c.enc.list_max_listpack_size = v,
        },
    },
    Directive {
        name: "list-compress-depth",
        aliases: &[],
        flags: 0,
        kind: Kind::Int {
            min: 0,
            max: INT_MAX,
            default: 0,
            clamp: None,
            check: None,
            get: |c| c.enc.list_compress_depth,
            set: |c, v| c.enc.list_compress_depth = v,
        },
    },
    Directive {
        name: "stream-node-max-bytes",
        aliases: &[],
        flags: 0,
        kind: Kind::Memory {
            min: 0,
            max: LONG_MAX,
            default: 4096,
            get: |c| c.enc.stream_node_max_bytes,
            set: |c, v| c.enc.stream_node_max_bytes = v,
        },
    },
    Directive {
        name: "stream-node-max-entries",
        aliases: &[],
        flags: 0,
        kind: Kind::Int {
            min: 0,
            max: i64::MAX,
            default: 100,
            clamp: None,
            check: None,
            get: |c| c.enc.stream_node_max_entries as i64,
            set: |c, v| c.enc.stream_node_max_entries = v as u64,
        },
    },
];

fn set_bind(c: &mut Config, args: &[Vec<u8>], _: &mut SetCtx) -> Result<(), String> {
    if args.len() > BIND_MAX {
        return Err("Too many bind addresses specified.".to_string());
    }
    // A single empty argument means no address (Redis then listens on every interface).
    let args = if args.len() == 1 && args[0].is_empty() {
        &[][..]
    } else {
        args
    };
    c.bind = args
        .iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    Ok(())
}

fn rewrite_bind(c: &Config, st: &mut Rewrite) {
    if c.bind
        .iter()
        .map(String::as_str)
        .eq(DEFAULT_BIND.iter().copied())
    {
        // At its default the directive disappears from the file, as in Redis.
        st.mark_processed("bind");
        return;
    }
    st.rewrite_line(
        "bind",
        format!("bind {}", c.bind.join(" ")).into_bytes(),
        true,
    );
}

/// Class names as `client-output-buffer-limit` takes them (Redis's getClientTypeByName;
/// `master` exists but has no limits).
fn obuf_class(name: &[u8]) -> Option<usize> {
    let lower = name.to_ascii_lowercase();
    match lower.as_slice() {
        b"normal" => Some(0),
        b"slave" | b"replica" => Some(1),
        b"pubsub" => Some(2),
        _ => None,
    }
}

/// `client-output-buffer-limit <class> <hard> <soft> <seconds> [...]`: every group is
/// checked before any is applied, so a bad group changes nothing (as in Redis).
fn set_obuf_limits(c: &mut Config, args: &[Vec<u8>], _: &mut SetCtx) -> Result<(), String> {
    if !args.len().is_multiple_of(4) {
        return Err("Wrong number of arguments in buffer limit configuration.".to_string());
    }
    let mut parsed = Vec::with_capacity(args.len() / 4);
    for g in args.chunks_exact(4) {
        let class = obuf_class(&g[0])
            .ok_or("Invalid client class specified in buffer limit configuration.")?;
        const BAD: &str =
            "Error in hard, soft or soft_seconds setting in buffer limit configuration.";
        let hard = parse_memory(&g[1]).ok_or(BAD)?;
        let soft = parse_memory(&g[2]).ok_or(BAD)?;
        let seconds = parse_strtoll(&g[3])
            .filter(|s| (0..i64::MAX).contains(s))
            .ok_or(BAD)?;
        parsed.push((
            class,
            crate::pubsub::ObufLimit {
                hard,
                soft,
                seconds,
            },
        ));
    }
    for (class, limit) in parsed {
        c.client_obuf_limits[class] = limit;
    }
    Ok(())
}

/// CONFIG GET's form: `normal 0 0 0 slave 268435456 67108864 60 pubsub ...`.
fn get_obuf_limits(c: &Config) -> Vec<u8> {
    let names = ["normal", "slave", "pubsub"];
    let parts: Vec<String> = names
        .iter()
        .zip(&c.client_obuf_limits)
        .map(|(n, l)| format!("{n} {} {} {}", l.hard, l.soft, l.seconds))
        .collect();
    parts.join(" ").into_bytes()
}

/// One line per class, `replica` spelled the new way, sizes with units; written when the
/// class differs from its default (Redis's rewriteConfigClientOutputBufferLimitOption).
fn rewrite_obuf_limits(c: &Config, st: &mut Rewrite) {
    let names = ["normal", "replica", "pubsub"];
    for ((name, l), d) in names
        .iter()
        .zip(&c.client_obuf_limits)
        .zip(&crate::pubsub::DEFAULT_OBUF_LIMITS)
    {
        let line = format!(
            "client-output-buffer-limit {name} {} {} {}",
            format_memory(l.hard),
            format_memory(l.soft),
            l.seconds
        );
        st.rewrite_line("client-output-buffer-limit", line.into_bytes(), l != d);
    }
}

fn set_notify_events(c: &mut Config, args: &[Vec<u8>], _: &mut SetCtx) -> Result<(), String> {
    let [arg] = args else {
        return Err("wrong number of arguments".to_string());
    };
    c.notify_keyspace_events = crate::pubsub::notify::parse(arg)
        .ok_or("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.")?;
    Ok(())
}

fn set_save(c: &mut Config, args: &[Vec<u8>], ctx: &mut SetCtx) -> Result<(), String> {
    const INVALID: &str = "Invalid save parameters";
    let mut args = args;
    // `save ""` clears the rules at once, even in the middle of a config file.
    if args.len() == 1 && args[0].is_empty() {
        c.save.clear();
        args = &[];
    }
    if args.len() % 2 == 1 {
        return Err(INVALID.to_string());
    }
    let mut values = Vec::with_capacity(args.len());
    for (i, arg) in args.iter().enumerate() {
        let v = parse_strtoll(arg).ok_or(INVALID)?;
        // Seconds must be at least 1, changes at least 0.
        if (i % 2 == 0 && v < 1) || (i % 2 == 1 && v < 0) {
            return Err(INVALID.to_string());
        }
        values.push(v);
    }
    // CONFIG SET replaces the rules; in a config file the first `save` line replaces the
    // defaults and later lines add to it.
    if !ctx.loading || !ctx.save_seen {
        c.save.clear();
    }
    if ctx.loading {
        ctx.save_seen = true;
    }
    for pair in values.chunks_exact(2) {
        c.save.push(SaveRule {
            seconds: pair[0],
            // Redis keeps the count in a C int: larger values wrap.
            changes: pair[1] as i32,
        });
    }
    Ok(())
}

fn rewrite_save(c: &Config, st: &mut Rewrite) {
    // Always written (even at the default), one rule per line; `save ""` keeps an empty
    // rule set from falling back to the defaults on the next start.
    if c.save.is_empty() {
        st.rewrite_line("save", b"save \"\"".to_vec(), true);
    } else {
        for r in &c.save {
            let line = format!("save {} {}", r.seconds, r.changes);
            st.rewrite_line("save", line.into_bytes(), true);
        }
    }
    st.mark_processed("save");
}

/// `dir` changes the working directory in Redis (relative paths are relative to the
/// current one). Here the new directory is checked and stored as an absolute path; the
/// server process changes into it (at start and on [`super::ConfigChange`]).
fn set_dir(c: &mut Config, args: &[Vec<u8>], _: &mut SetCtx) -> Result<(), String> {
    let [arg] = args else {
        return Err("wrong number of arguments".to_string());
    };
    let not_found = || strerror(&std::io::Error::from_raw_os_error(libc::ENOENT));
    if arg.is_empty() {
        return Err(not_found());
    }
    let target = c
        .dir
        .join(PathBuf::from(std::ffi::OsString::from_vec(arg.clone())));
    let resolved = std::fs::canonicalize(&target).map_err(|e| strerror(&e))?;
    if !resolved.is_dir() {
        return Err(strerror(&std::io::Error::from_raw_os_error(libc::ENOTDIR)));
    }
    c.dir = resolved;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_lowercase_and_found() {
        let mut seen = std::collections::HashSet::new();
        for (name, d) in all_names() {
            assert_eq!(name, name.to_ascii_lowercase(), "{name}");
            assert!(seen.insert(name), "duplicate name {name}");
            assert!(std::ptr::eq(lookup(name.as_bytes()).unwrap(), d));
            assert!(std::ptr::eq(
                lookup(name.to_ascii_uppercase().as_bytes()).unwrap(),
                d
            ));
        }
        assert!(lookup(b"no-such-directive").is_none());
    }

    #[test]
    fn every_default_is_accepted_by_its_own_parser() {
        // The default, as CONFIG GET shows it, must parse back to the same value:
        // otherwise CONFIG SET of a value read with CONFIG GET would fail.
        let c = Config::default();
        for d in TABLE {
            let shown = d.get(&c);
            let mut copy = c.clone();
            d.set_value(&mut copy, &shown)
                .unwrap_or_else(|e| panic!("{}: {e}", d.name));
            assert_eq!(d.get(&copy), shown, "{}", d.name);
        }
    }

    #[test]
    fn enum_names_match_their_rust_enums() {
        for (i, n) in LogLevel::NAMES.iter().enumerate() {
            assert_eq!(LogLevel::from_index(i).as_str(), *n);
        }
        for (i, n) in MaxmemoryPolicy::NAMES.iter().enumerate() {
            assert_eq!(MaxmemoryPolicy::from_index(i).as_str(), *n);
        }
        for (i, n) in ProtectedAction::NAMES.iter().enumerate() {
            assert_eq!(ProtectedAction::from_index(i).as_str(), *n);
        }
    }
}
