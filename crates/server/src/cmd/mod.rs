//! The command table: one declaration per command, grouped by family.
//!
//! Each family module (`families::strings`, `families::keys`, ...) exports a
//! `pub const COMMANDS: &[Command]` next to its handlers. The table below lists the
//! families; nothing else in the server needs editing to add a command. `COMMAND`,
//! `COMMAND INFO/DOCS/GETKEYS`, arity checks, authentication and the per-command
//! statistics all read from these declarations.

pub mod args;
pub mod introspect;

use crate::error::CmdResult;
use crate::families;
use crate::server::{Ctx, Server};
use bytes::Bytes;
use std::collections::HashMap;

/// Declares a keyed command of a family in one line of arguments:
/// `keyed_cmd!(ACL_CATEGORY, "group"; "name", arity, flags, (first, last, step), key_specs,
/// "since", "summary", "complexity", handler)`. Each family wraps it in its own short macro
/// that fixes the category and the group.
#[macro_export]
macro_rules! keyed_cmd {
    ($acl:expr, $group:literal; $name:literal, $arity:expr, $flags:expr, $keys:expr, $specs:expr, $since:literal, $summary:literal, $cx:expr, $h:expr) => {
        $crate::cmd::Command {
            name: $name,
            arity: $arity,
            flags: $flags,
            acl: $acl,
            keys: $keys,
            key_specs: $specs,
            group: $group,
            since: $since,
            summary: $summary,
            complexity: $cx,
            handler: Some($h),
            ..$crate::cmd::Command::EMPTY
        }
    };
}

/// Finds a request's keys with their key-spec flags (Redis's getkeys_proc).
pub type GetKeys = fn(&[Bytes]) -> Vec<(usize, &'static [&'static str])>;

/// A command handler: `args[0]` is the command name as the client sent it.
pub type Handler = fn(&mut Ctx<'_>, &[Bytes]) -> CmdResult;
/// See [`Command::flags_of`].
pub type FlagsOf = fn(&Server, &Command, &[Bytes]) -> u32;

/// Command flags, as `COMMAND INFO` names them.
pub mod flags {
    /// Writes to the keyspace.
    pub const WRITE: u32 = 1 << 0;
    /// Only reads.
    pub const READONLY: u32 = 1 << 1;
    /// May grow memory: refused when over maxmemory under noeviction.
    pub const DENYOOM: u32 = 1 << 2;
    /// Administrative.
    pub const ADMIN: u32 = 1 << 3;
    /// Pub/Sub.
    pub const PUBSUB: u32 = 1 << 4;
    /// Not allowed in scripts.
    pub const NOSCRIPT: u32 = 1 << 5;
    /// May block the client.
    pub const BLOCKING: u32 = 1 << 6;
    /// Allowed while loading the dataset.
    pub const LOADING: u32 = 1 << 7;
    /// Allowed on a stale replica.
    pub const STALE: u32 = 1 << 8;
    /// Not shown in MONITOR.
    pub const SKIP_MONITOR: u32 = 1 << 9;
    /// Not logged in the slow log.
    pub const SKIP_SLOWLOG: u32 = 1 << 10;
    /// Cluster ASKING.
    pub const ASKING: u32 = 1 << 11;
    /// O(1) or O(log N).
    pub const FAST: u32 = 1 << 12;
    /// Allowed before authentication.
    pub const NO_AUTH: u32 = 1 << 13;
    /// May replicate even if it does not write (hidden in COMMAND INFO).
    pub const MAY_REPLICATE: u32 = 1 << 14;
    /// Keys are optional.
    pub const NO_MANDATORY_KEYS: u32 = 1 << 15;
    /// Not allowed inside MULTI.
    pub const NO_MULTI: u32 = 1 << 16;
    /// Key positions depend on the arguments.
    pub const MOVABLE_KEYS: u32 = 1 << 17;
    /// Allowed while a script is busy.
    pub const ALLOW_BUSY: u32 = 1 << 18;
    /// Not allowed during async loading.
    pub const NO_ASYNC_LOADING: u32 = 1 << 19;
    /// Runs alone: `Server::execute` holds the exec gate for writing around it (EXEC,
    /// EVAL, FCALL). Basalt's own, never shown by COMMAND INFO.
    pub const EXCLUSIVE: u32 = 1 << 20;

    /// Names in the order Redis replies with them (MAY_REPLICATE is hidden, as in Redis).
    pub const NAMES: &[(u32, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (PUBSUB, "pubsub"),
        (NOSCRIPT, "noscript"),
        (BLOCKING, "blocking"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (SKIP_MONITOR, "skip_monitor"),
        (SKIP_SLOWLOG, "skip_slowlog"),
        (ASKING, "asking"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        (NO_MANDATORY_KEYS, "no_mandatory_keys"),
        (NO_ASYNC_LOADING, "no_async_loading"),
        (NO_MULTI, "no_multi"),
        (MOVABLE_KEYS, "movablekeys"),
        (ALLOW_BUSY, "allow_busy"),
    ];
}

/// ACL categories, in the order Redis lists them.
pub mod acl {
    /// @keyspace
    pub const KEYSPACE: u32 = 1 << 0;
    /// @read
    pub const READ: u32 = 1 << 1;
    /// @write
    pub const WRITE: u32 = 1 << 2;
    /// @set
    pub const SET: u32 = 1 << 3;
    /// @sortedset
    pub const SORTEDSET: u32 = 1 << 4;
    /// @list
    pub const LIST: u32 = 1 << 5;
    /// @hash
    pub const HASH: u32 = 1 << 6;
    /// @string
    pub const STRING: u32 = 1 << 7;
    /// @bitmap
    pub const BITMAP: u32 = 1 << 8;
    /// @hyperloglog
    pub const HYPERLOGLOG: u32 = 1 << 9;
    /// @geo
    pub const GEO: u32 = 1 << 10;
    /// @stream
    pub const STREAM: u32 = 1 << 11;
    /// @pubsub
    pub const PUBSUB: u32 = 1 << 12;
    /// @admin
    pub const ADMIN: u32 = 1 << 13;
    /// @fast
    pub const FAST: u32 = 1 << 14;
    /// @slow
    pub const SLOW: u32 = 1 << 15;
    /// @blocking
    pub const BLOCKING: u32 = 1 << 16;
    /// @dangerous
    pub const DANGEROUS: u32 = 1 << 17;
    /// @connection
    pub const CONNECTION: u32 = 1 << 18;
    /// @transaction
    pub const TRANSACTION: u32 = 1 << 19;
    /// @scripting
    pub const SCRIPTING: u32 = 1 << 20;

    /// Category names in Redis's order.
    pub const NAMES: &[(u32, &str)] = &[
        (KEYSPACE, "keyspace"),
        (READ, "read"),
        (WRITE, "write"),
        (SET, "set"),
        (SORTEDSET, "sortedset"),
        (LIST, "list"),
        (HASH, "hash"),
        (STRING, "string"),
        (BITMAP, "bitmap"),
        (HYPERLOGLOG, "hyperloglog"),
        (GEO, "geo"),
        (STREAM, "stream"),
        (PUBSUB, "pubsub"),
        (ADMIN, "admin"),
        (FAST, "fast"),
        (SLOW, "slow"),
        (BLOCKING, "blocking"),
        (DANGEROUS, "dangerous"),
        (CONNECTION, "connection"),
        (TRANSACTION, "transaction"),
        (SCRIPTING, "scripting"),
    ];
}

/// Where a key spec starts looking for keys.
#[derive(Debug, Clone, Copy)]
pub enum BeginSearch {
    /// Not describable (SORT's BY/GET/STORE keys): the command's `getkeys` finds them.
    Unknown,
    /// At a fixed argument index.
    Index(i32),
    /// After a keyword, searching from `startfrom` (negative: from the end).
    Keyword {
        /// The keyword, e.g. `STREAMS`.
        keyword: &'static str,
        /// Where to start searching for it.
        startfrom: i32,
    },
}

/// How a key spec finds its keys once it started.
#[derive(Debug, Clone, Copy)]
pub enum FindKeys {
    /// A range: up to `lastkey` (relative; -1 = last argument), every `step`, `limit`.
    Range {
        /// Last key, relative to the first; negative counts from the end.
        lastkey: i32,
        /// Step between keys.
        step: i32,
        /// When lastkey is -1: 0 = all remaining, n = 1/n of the remaining.
        limit: i32,
    },
    /// Keys the spec cannot locate (the command's `getkeys` finds them).
    Unknown,
    /// A count argument followed by keys.
    Keynum {
        /// Index of the count, relative to the begin position.
        keynumidx: i32,
        /// First key, relative to the begin position.
        firstkey: i32,
        /// Step between keys.
        step: i32,
    },
}

/// A Redis 7 key specification.
#[derive(Debug, Clone, Copy)]
pub struct KeySpec {
    /// Free text COMMAND INFO shows (empty: none).
    pub notes: &'static str,
    /// Flags such as `RW`, `access`, `update`.
    pub flags: &'static [&'static str],
    /// Start of the search.
    pub begin: BeginSearch,
    /// Key finding.
    pub find: FindKeys,
}

impl KeySpec {
    /// A single key at `index`.
    pub const fn single(index: i32, flags: &'static [&'static str]) -> KeySpec {
        KeySpec {
            notes: "",
            flags,
            begin: BeginSearch::Index(index),
            find: FindKeys::Range {
                lastkey: 0,
                step: 1,
                limit: 0,
            },
        }
    }

    /// Keys from `index` to the end, every `step`.
    pub const fn rest(index: i32, step: i32, flags: &'static [&'static str]) -> KeySpec {
        KeySpec {
            notes: "",
            flags,
            begin: BeginSearch::Index(index),
            find: FindKeys::Range {
                lastkey: -1,
                step,
                limit: 0,
            },
        }
    }
}

/// One command's declaration.
#[derive(Clone, Copy)]
pub struct Command {
    /// Lowercase name (`get`, or the subcommand name for subcommands).
    pub name: &'static str,
    /// Redis arity: exact count if positive, minimum count if negative (name included).
    pub arity: i32,
    /// `flags::*` bits.
    pub flags: u32,
    /// Explicit ACL categories (`acl::*`); implicit ones are derived from the flags.
    pub acl: u32,
    /// Legacy key positions: first, last, step.
    pub keys: (i32, i32, i32),
    /// Redis 7 key specs.
    pub key_specs: &'static [KeySpec],
    /// Command tips (`nondeterministic_output`, ...).
    pub tips: &'static [&'static str],
    /// Docs group (`string`, `generic`, `connection`, `server`, ...).
    pub group: &'static str,
    /// Version that introduced it.
    pub since: &'static str,
    /// One-line summary.
    pub summary: &'static str,
    /// Time complexity.
    pub complexity: &'static str,
    /// The handler; `None` for container commands (CONFIG, CLIENT, ...).
    pub handler: Option<Handler>,
    /// Subcommands of a container command.
    pub subcommands: &'static [Command],
    /// For commands whose keys the specs cannot describe (Redis's getkeys_proc): the
    /// indexes of the keys in a request, with their key-spec flags.
    pub getkeys: Option<GetKeys>,
    /// For commands whose flags depend on the request (Redis's `getCommandFlags`: EVAL
    /// and FCALL take their script's flags): the flags this request runs with. May
    /// fall back to `flags` when it cannot tell without waiting.
    pub flags_of: Option<FlagsOf>,
}

impl Command {
    /// A template for `..Command::EMPTY` in declarations.
    pub const EMPTY: Command = Command {
        name: "",
        arity: 0,
        flags: 0,
        acl: 0,
        keys: (0, 0, 0),
        key_specs: &[],
        tips: &[],
        group: "generic",
        since: "1.0.0",
        summary: "",
        complexity: "O(1)",
        handler: None,
        subcommands: &[],
        getkeys: None,
        flags_of: None,
    };

    /// True if a flag bit is set.
    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    /// The flags a request of this command runs with (see [`Command::flags_of`]).
    pub fn flags_for(&self, srv: &Server, args: &[Bytes]) -> u32 {
        match self.flags_of {
            Some(f) => f(srv, self, args),
            None => self.flags,
        }
    }

    /// ACL categories including those Redis derives from the flags.
    pub fn acl_categories(&self) -> u32 {
        let mut c = self.acl;
        if self.has(flags::WRITE) {
            c |= acl::WRITE;
        }
        if self.has(flags::READONLY) && c & acl::SCRIPTING == 0 {
            c |= acl::READ;
        }
        if self.has(flags::ADMIN) {
            c |= acl::ADMIN | acl::DANGEROUS;
        }
        if self.has(flags::PUBSUB) {
            c |= acl::PUBSUB;
        }
        if self.has(flags::FAST) {
            c |= acl::FAST;
        }
        if self.has(flags::BLOCKING) {
            c |= acl::BLOCKING;
        }
        if c & acl::FAST == 0 {
            c |= acl::SLOW;
        }
        c
    }

    /// True if the arity accepts `argc` arguments (name included).
    pub fn arity_ok(&self, argc: usize) -> bool {
        let a = self.arity;
        (a > 0 && argc == a as usize) || (a < 0 && argc >= (-a) as usize)
    }
}

/// A resolved command: its declaration, full name (`config|get`) and statistics slot.
pub struct Resolved {
    /// The declaration.
    pub cmd: &'static Command,
    /// `name` or `container|sub`.
    pub fullname: String,
    /// Index into the server's per-command statistics.
    pub id: usize,
    /// The container, for subcommands.
    pub parent: Option<&'static Command>,
}

/// Every family's commands.
pub const FAMILIES: &[&[Command]] = &[
    families::connection::COMMANDS,
    families::strings::COMMANDS,
    families::keys::COMMANDS,
    families::hashes::COMMANDS,
    families::lists::COMMANDS,
    families::sets::COMMANDS,
    families::zsets::COMMANDS,
    families::bitmaps::COMMANDS,
    families::hyperloglog::COMMANDS,
    families::geo::COMMANDS,
    families::streams::COMMANDS,
    families::sort::COMMANDS,
    families::transactions::COMMANDS,
    families::pubsub::COMMANDS,
    families::scripting::COMMANDS,
    families::server::COMMANDS,
    families::persistence::COMMANDS,
    families::debug::COMMANDS,
    families::memory::COMMANDS,
    families::ratelimit::COMMANDS,
    families::rl::COMMANDS,
    families::rl_policy::COMMANDS,
    families::coord::COMMANDS,
    families::jobs::COMMANDS,
    families::job_schedule::COMMANDS,
    introspect::COMMANDS,
];

/// Longest command or subcommand name looked up (longer names cannot match).
const MAX_NAME: usize = 64;

/// ASCII-lowercases `name` into `buf` without allocating (the lookup runs per command).
fn lowercase<'b>(name: &[u8], buf: &'b mut [u8; MAX_NAME]) -> Option<&'b [u8]> {
    let out = buf.get_mut(..name.len())?;
    for (o, c) in out.iter_mut().zip(name) {
        *o = c.to_ascii_lowercase();
    }
    Some(out)
}

/// Names to table ids: byte keys and a fast hasher, since the lookup runs per command.
type NameMap = HashMap<Box<[u8]>, usize, foldhash::fast::FixedState>;

/// The lookup structure built once at startup.
pub struct CommandTable {
    by_name: NameMap,
    entries: Vec<Resolved>,
    /// For each container's top-level id: its subcommands by name.
    subs: HashMap<usize, NameMap>,
}

/// Result of looking up a request's command.
pub enum Lookup<'a> {
    /// Found.
    Found(&'a Resolved),
    /// Unknown command.
    Unknown,
    /// A container whose subcommand is unknown.
    UnknownSub(&'a Resolved),
}

impl CommandTable {
    /// Builds the table from [`FAMILIES`].
    pub fn build() -> CommandTable {
        let mut t = CommandTable {
            by_name: NameMap::default(),
            entries: Vec::new(),
            subs: HashMap::new(),
        };
        for fam in FAMILIES {
            for cmd in fam.iter() {
                let id = t.entries.len();
                debug_assert!(
                    !t.by_name.contains_key(cmd.name.as_bytes()),
                    "command {} declared twice",
                    cmd.name
                );
                t.by_name.insert(cmd.name.as_bytes().into(), id);
                t.entries.push(Resolved {
                    cmd,
                    fullname: cmd.name.to_string(),
                    id,
                    parent: None,
                });
                if !cmd.subcommands.is_empty() {
                    let mut subs = NameMap::default();
                    for sub in cmd.subcommands {
                        let sid = t.entries.len();
                        subs.insert(sub.name.as_bytes().into(), sid);
                        t.entries.push(Resolved {
                            cmd: sub,
                            fullname: format!("{}|{}", cmd.name, sub.name),
                            id: sid,
                            parent: Some(cmd),
                        });
                    }
                    t.subs.insert(id, subs);
                }
            }
        }
        t
    }

    /// Number of statistics slots (commands and subcommands).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no command is declared.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// All entries (top-level and subcommands).
    pub fn entries(&self) -> &[Resolved] {
        &self.entries
    }

    /// Top-level commands.
    pub fn top_level(&self) -> impl Iterator<Item = &Resolved> {
        self.entries.iter().filter(|r| r.parent.is_none())
    }

    /// Looks a top-level command up by (any-case) name.
    pub fn get(&self, name: &[u8]) -> Option<&Resolved> {
        let mut buf = [0u8; MAX_NAME];
        let lower = lowercase(name, &mut buf)?;
        self.by_name.get(lower).map(|&i| &self.entries[i])
    }

    /// Looks up the subcommand `sub` of the container `parent`.
    pub fn get_sub(&self, parent: &Resolved, sub: &[u8]) -> Option<&Resolved> {
        let mut buf = [0u8; MAX_NAME];
        let lower = lowercase(sub, &mut buf)?;
        self.subs
            .get(&parent.id)
            .and_then(|m| m.get(lower))
            .map(|&i| &self.entries[i])
    }

    /// Resolves a request's argument vector to its command (or subcommand).
    pub fn lookup(&self, args: &[Bytes]) -> Lookup<'_> {
        let Some(top) = args.first().and_then(|n| self.get(n)) else {
            return Lookup::Unknown;
        };
        if top.cmd.subcommands.is_empty() || args.len() < 2 {
            return Lookup::Found(top);
        }
        match self.get_sub(top, &args[1]) {
            Some(sub) => Lookup::Found(sub),
            None => Lookup::UnknownSub(top),
        }
    }

    /// Resolves `name` or `container|sub` as `COMMAND INFO/DOCS` take it.
    pub fn by_fullname(&self, name: &[u8]) -> Option<&Resolved> {
        match memchr::memchr(b'|', name) {
            None => self.get(name),
            Some(i) => {
                let top = self.get(&name[..i])?;
                self.get_sub(top, &name[i + 1..])
            }
        }
    }
}

/// Key positions of a request, from the command's key specs (COMMAND GETKEYS).
/// Returns `(index, flags)` pairs.
pub fn key_positions(cmd: &Command, args: &[Bytes]) -> Vec<(usize, &'static [&'static str])> {
    if let Some(getkeys) = cmd.getkeys {
        return getkeys(args);
    }
    let argc = args.len() as i64;
    let mut out = Vec::new();
    for spec in cmd.key_specs {
        if spec.flags.contains(&"not_key") {
            // Shard channels are declared as keys for cluster routing, not as keys.
            continue;
        }
        let first = match spec.begin {
            BeginSearch::Unknown => continue,
            BeginSearch::Index(i) => i64::from(i),
            BeginSearch::Keyword { keyword, startfrom } => {
                let found = if startfrom >= 0 {
                    (i64::from(startfrom)..argc)
                        .find(|&i| args[i as usize].eq_ignore_ascii_case(keyword.as_bytes()))
                } else {
                    let start = argc + i64::from(startfrom);
                    (1..=start.max(0))
                        .rev()
                        .find(|&i| args[i as usize].eq_ignore_ascii_case(keyword.as_bytes()))
                };
                match found {
                    Some(i) => i + 1,
                    None => continue,
                }
            }
        };
        if first >= argc || first < 1 {
            continue;
        }
        match spec.find {
            FindKeys::Unknown => {}
            FindKeys::Range {
                lastkey,
                step,
                limit,
            } => {
                let last = if lastkey >= 0 {
                    first + i64::from(lastkey)
                } else if limit > 1 {
                    first + (argc - first) / i64::from(limit) - 1
                } else {
                    argc + i64::from(lastkey)
                };
                let step = i64::from(step.max(1));
                let mut i = first;
                while i <= last && i < argc {
                    out.push((i as usize, spec.flags));
                    i += step;
                }
            }
            FindKeys::Keynum {
                keynumidx,
                firstkey,
                step,
            } => {
                let numidx = first + i64::from(keynumidx);
                if numidx >= argc {
                    continue;
                }
                let Some(n) = basalt_engine::num::parse_i64(&args[numidx as usize]) else {
                    continue;
                };
                let step = i64::from(step.max(1));
                let mut i = first + i64::from(firstkey);
                for _ in 0..n.max(0) {
                    if i >= argc {
                        break;
                    }
                    out.push((i as usize, spec.flags));
                    i += step;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_is_well_formed() {
        let t = CommandTable::build();
        assert!(t.len() > 50);
        for r in t.entries() {
            let c = r.cmd;
            assert!(!c.name.is_empty());
            assert_eq!(
                c.name,
                c.name.to_ascii_lowercase(),
                "{} not lowercase",
                c.name
            );
            assert!(c.arity != 0, "{} has no arity", r.fullname);
            assert!(
                c.handler.is_some() || !c.subcommands.is_empty(),
                "{}: only containers may lack a handler",
                r.fullname
            );
            assert!(
                !(c.has(flags::WRITE) && c.has(flags::READONLY)),
                "{} is both write and readonly",
                r.fullname
            );
            if c.keys.0 > 0 {
                assert!(
                    !c.key_specs.is_empty(),
                    "{} has keys but no key specs",
                    r.fullname
                );
            }
        }
    }

    #[test]
    fn lookup_resolves_subcommands_case_insensitively() {
        let t = CommandTable::build();
        let args = [Bytes::from_static(b"CoNfIg"), Bytes::from_static(b"GET")];
        match t.lookup(&args) {
            Lookup::Found(r) => assert_eq!(r.fullname, "config|get"),
            _ => panic!("config get not found"),
        }
        let args = [Bytes::from_static(b"config"), Bytes::from_static(b"nope")];
        assert!(matches!(t.lookup(&args), Lookup::UnknownSub(_)));
        assert!(matches!(
            t.lookup(&[Bytes::from_static(b"nope")]),
            Lookup::Unknown
        ));
    }

    #[test]
    fn key_positions_follow_specs() {
        let t = CommandTable::build();
        let mset = t.get(b"mset").expect("mset").cmd;
        let args: Vec<Bytes> = ["MSET", "a", "1", "b", "2"]
            .iter()
            .map(|s| Bytes::from(s.to_string()))
            .collect();
        let pos: Vec<usize> = key_positions(mset, &args)
            .into_iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(pos, vec![1, 3]);
    }
}
