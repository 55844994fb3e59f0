//! Basalt's storage engine: the sharded keyspace, value types with Redis's encodings,
//! expiry, number parsing with Redis's rules, and the glob matcher.
//!
//! No tokio, no wall clock, no entropy of its own: time and seeds are passed in, so every
//! structure here can be tested deterministically.

pub mod bitops;
pub mod bytecmp;
pub mod dict;
pub mod encoding;
pub mod evict;
pub mod expires;
pub mod geo;
pub mod glob;
pub mod hashing;
pub mod hll;
pub mod keyspace;
pub mod lazyfree;
pub mod ldouble;
pub mod memory;
pub mod num;
pub mod ratelimit;
pub mod rl;
pub mod rl_policy;
pub mod schedule;
pub mod slab;
pub mod types;
pub mod value;

pub use encoding::EncodingLimits;
pub use evict::Policy;
pub use keyspace::{
    DbMemory, Entry, EntryMut, EntryRef, EvictOutcome, EvictStatus, Guard, KeyEvent, KeyEvents,
    Keyspace, KeyspaceConfig, Removal, Shard, ShardStats,
};
pub use lazyfree::{LazyFree, Reason};
pub use value::{StrRef, StrValue, Value, ValueRef};
