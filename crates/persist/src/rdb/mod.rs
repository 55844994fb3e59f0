//! The RDB format, version 10, as redis-server 7.0 writes and reads it.
//!
//! - [`encode`]: values to their RDB bytes (the object types and string encodings Redis
//!   7.0 would choose for Basalt's encoding of each value), shared by snapshots and `DUMP`.
//! - [`decode`]: every object type Redis 7.0 can load (including ziplist, zipmap and
//!   quicklist-of-ziplist encodings of older files) back into Basalt values.
//! - [`stream`]: streams (`STREAM_LISTPACKS_2`), their listpack nodes and groups.
//! - [`file`]: whole files: the `REDIS0010` header, aux fields, `SELECTDB`/`RESIZEDB`,
//!   expire times, `EOF` and the CRC-64 trailer, written as a stream and loaded through
//!   a callback, so the AOF's RDB preamble can reuse both.
//!
//! The reader bounds every allocation by the bytes left in its input, so a bogus length
//! in a corrupt file is an error, never a huge allocation or a panic.

pub mod decode;
pub mod encode;
pub mod file;
pub mod stream;

use std::fmt;

/// The RDB version written (Redis 7.0's `RDB_VERSION`).
pub const RDB_VERSION: u16 = 10;

/// Object types (`RDB_TYPE_*`).
pub mod types {
    pub const STRING: u8 = 0;
    pub const LIST: u8 = 1;
    pub const SET: u8 = 2;
    pub const ZSET: u8 = 3;
    pub const HASH: u8 = 4;
    pub const ZSET_2: u8 = 5;
    pub const MODULE_PRE_GA: u8 = 6;
    pub const MODULE_2: u8 = 7;
    pub const HASH_ZIPMAP: u8 = 9;
    pub const LIST_ZIPLIST: u8 = 10;
    pub const SET_INTSET: u8 = 11;
    pub const ZSET_ZIPLIST: u8 = 12;
    pub const HASH_ZIPLIST: u8 = 13;
    pub const LIST_QUICKLIST: u8 = 14;
    pub const STREAM_LISTPACKS: u8 = 15;
    pub const HASH_LISTPACK: u8 = 16;
    pub const ZSET_LISTPACK: u8 = 17;
    pub const LIST_QUICKLIST_2: u8 = 18;
    pub const STREAM_LISTPACKS_2: u8 = 19;
}

/// Special opcodes (`RDB_OPCODE_*`).
pub mod opcodes {
    pub const FUNCTION2: u8 = 245;
    pub const FUNCTION_PRE_GA: u8 = 246;
    pub const MODULE_AUX: u8 = 247;
    pub const IDLE: u8 = 248;
    pub const FREQ: u8 = 249;
    pub const AUX: u8 = 250;
    pub const RESIZEDB: u8 = 251;
    pub const EXPIRETIME_MS: u8 = 252;
    pub const EXPIRETIME: u8 = 253;
    pub const SELECTDB: u8 = 254;
    pub const EOF: u8 = 255;
}

/// Length-prefix encodings.
pub(crate) mod lenc {
    pub const BITS6: u8 = 0;
    pub const BITS14: u8 = 1;
    pub const BITS32: u8 = 0x80;
    pub const BITS64: u8 = 0x81;
    pub const ENCVAL: u8 = 3;
    pub const INT8: u8 = 0;
    pub const INT16: u8 = 1;
    pub const INT32: u8 = 2;
    pub const LZF: u8 = 3;
}

/// Quicklist node containers in `RDB_TYPE_LIST_QUICKLIST_2`.
pub(crate) const QUICKLIST_NODE_PLAIN: u64 = 1;
pub(crate) const QUICKLIST_NODE_PACKED: u64 = 2;

/// Elements at least this long get a node of their own ("plain" node), as Redis's
/// `packed_threshold` (1 GiB).
pub const PACKED_THRESHOLD: usize = 1 << 30;

/// Why an RDB file or payload could not be read.
#[derive(Debug)]
pub enum RdbError {
    /// Reading the input failed.
    Io(std::io::Error),
    /// The input ended in the middle of an item.
    Truncated {
        /// Bytes consumed when the input ran out.
        offset: u64,
    },
    /// The input is malformed.
    Corrupt {
        /// Byte offset where the problem was noticed.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// Well formed, but holds something Basalt cannot load (a module type, functions, a
    /// newer RDB version).
    Unsupported(String),
    /// The CRC-64 trailer does not match the content.
    Checksum {
        /// The checksum stored in the file.
        expected: u64,
        /// The checksum of the bytes read.
        got: u64,
    },
}

impl fmt::Display for RdbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RdbError::Io(e) => write!(f, "I/O error reading the RDB: {e}"),
            RdbError::Truncated { offset } => write!(
                f,
                "Short read loading DB (the file ends at offset {offset} in the middle of an item)"
            ),
            RdbError::Corrupt { offset, what } => {
                write!(f, "Internal error in RDB reading offset {offset}: {what}")
            }
            RdbError::Unsupported(what) => f.write_str(what),
            RdbError::Checksum { expected, got } => write!(
                f,
                "Wrong RDB checksum expected: ({expected:x}) got ({got:x}). Aborting now."
            ),
        }
    }
}

impl std::error::Error for RdbError {}

impl From<std::io::Error> for RdbError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            RdbError::Truncated { offset: 0 }
        } else {
            RdbError::Io(e)
        }
    }
}

/// The RDB module-type id of Basalt's `RL.*` limiters: the name `basalt-rl`, encoding
/// version 1. Redis cannot load such keys (it has no module of that name); Basalt loads
/// them as `Value::RateLimit`.
pub const BASALT_RL_MODULE_ID: u64 = module_type_id(b"basalt-rl", 1);

/// The RDB module-type id of Basalt's locks, semaphores and elections
/// (`docs/coordination.md`): the name `basalt-lk`, encoding version 1. redis-server
/// refuses such a file with "no matching module type 'basalt-lk'" rather than misreading
/// it; Basalt loads the keys as `Value::Lock`.
pub const BASALT_LK_MODULE_ID: u64 = module_type_id(b"basalt-lk", 1);

/// The RDB module-type id of Basalt's job queues (`docs/jobs.md`): the name `basalt-jq`,
/// encoding version 1. The value is one string, the queue's byte form
/// (`QueueValue::to_bytes`), validated whole on load.
pub const BASALT_JQ_MODULE_ID: u64 = module_type_id(b"basalt-jq", 1);

/// The 64-bit id of a module type named by nine characters of the module alphabet.
pub const fn module_type_id(name: &[u8; 9], encver: u64) -> u64 {
    let mut id: u64 = 0;
    let mut i = 0;
    while i < 9 {
        let c = name[i];
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            _ => 63,
        };
        id = (id << 6) | v as u64;
        i += 1;
    }
    (id << 10) | (encver & 1023)
}

/// Module value opcodes (`RDB_MODULE_OPCODE_*`).
pub mod module_opcodes {
    /// End of the value.
    pub const EOF: u64 = 0;
    /// An unsigned integer (RM_SaveUnsigned / RM_SaveSigned).
    pub const UINT: u64 = 2;
    /// A string (RM_SaveStringBuffer).
    pub const STRING: u64 = 5;
}

/// The name of a module type from its 64-bit RDB id (nine characters of a 64-symbol
/// alphabet in the top 54 bits; the low 10 bits are the encoding version), for messages.
pub fn module_type_name(id: u64) -> String {
    const CHARS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut name = String::with_capacity(9);
    let mut bits = id >> 10;
    let mut chars = [0u8; 9];
    for c in chars.iter_mut().rev() {
        *c = CHARS[(bits & 63) as usize];
        bits >>= 6;
    }
    name.push_str(std::str::from_utf8(&chars).unwrap_or("?????????"));
    name
}
