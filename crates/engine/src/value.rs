//! Values stored in the keyspace and their encodings.
//!
//! `Value` is the one enum every data type joins; `OBJECT ENCODING` and `TYPE` answer
//! from it with Redis's names. Strings keep Redis's three encodings because clients and
//! tests observe them: `int` for canonical 64-bit integers of up to 20 characters,
//! `embstr` for short strings (up to 44 bytes) that were stored whole, `raw` otherwise
//! or once a string was modified in place (APPEND, SETRANGE).

use crate::num::parse_i64;
use crate::types::{HashValue, ListValue, LockValue, QueueValue, SetValue, StreamValue, ZSetValue};
use std::borrow::Cow;

/// Longest string Redis stores with the `embstr` encoding.
pub const EMBSTR_MAX: usize = 44;

/// What `TYPE` answers for an `RL.*` rate limiter (Basalt's own type; Redis has none).
pub const RATELIMIT_TYPE: &str = "ratelimit";

fn size_of_rl() -> usize {
    std::mem::size_of::<crate::rl::RateLimit>()
}

/// A string value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StrValue {
    /// A canonical integer (`OBJECT ENCODING` → `int`).
    Int(i64),
    /// A short string stored whole (`embstr`).
    Embstr(Box<[u8]>),
    /// Any other string (`raw`).
    Raw(Vec<u8>),
}

impl StrValue {
    /// Encodes bytes as Redis's `tryObjectEncoding` would.
    pub fn from_bytes(b: &[u8]) -> StrValue {
        if b.len() <= 20
            && let Some(i) = parse_i64(b)
        {
            return StrValue::Int(i);
        }
        if b.len() <= EMBSTR_MAX {
            StrValue::Embstr(b.into())
        } else {
            StrValue::Raw(b.to_vec())
        }
    }

    /// A string that is never integer-encoded (Redis's `createStringObject`).
    pub fn from_bytes_no_int(b: &[u8]) -> StrValue {
        if b.len() <= EMBSTR_MAX {
            StrValue::Embstr(b.into())
        } else {
            StrValue::Raw(b.to_vec())
        }
    }

    /// The string's bytes (integers are formatted).
    pub fn as_bytes(&self) -> Cow<'_, [u8]> {
        match self {
            StrValue::Int(i) => Cow::Owned(itoa::Buffer::new().format(*i).as_bytes().to_vec()),
            StrValue::Embstr(b) => Cow::Borrowed(b),
            StrValue::Raw(v) => Cow::Borrowed(v),
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        match self {
            StrValue::Int(i) => itoa::Buffer::new().format(*i).len(),
            StrValue::Embstr(b) => b.len(),
            StrValue::Raw(v) => v.len(),
        }
    }

    /// True for the empty string.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value as an integer if its text is a canonical integer.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            StrValue::Int(i) => Some(*i),
            StrValue::Embstr(b) => parse_i64(b),
            StrValue::Raw(v) => parse_i64(v),
        }
    }

    /// Turns the value into a `raw` string and returns its buffer for in-place edits.
    pub fn make_raw(&mut self) -> &mut Vec<u8> {
        if !matches!(self, StrValue::Raw(_)) {
            let bytes = self.as_bytes().into_owned();
            *self = StrValue::Raw(bytes);
        }
        match self {
            StrValue::Raw(v) => v,
            // Just converted above.
            _ => unreachable!("string converted to raw"),
        }
    }

    /// Redis's encoding name.
    pub fn encoding(&self) -> &'static str {
        match self {
            StrValue::Int(_) => "int",
            StrValue::Embstr(_) => "embstr",
            StrValue::Raw(_) => "raw",
        }
    }

    /// Approximate heap bytes held by the value.
    pub fn heap_size(&self) -> usize {
        match self {
            StrValue::Int(_) => 0,
            StrValue::Embstr(b) => b.len(),
            StrValue::Raw(v) => v.capacity(),
        }
    }
}

/// A borrowed string value: what a keyspace entry's string looks like without owning it
/// (the keyspace may keep short strings and integers inside its table node, with no
/// `StrValue` to borrow). Same accessors as [`StrValue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrRef<'a> {
    /// A canonical integer (`int`).
    Int(i64),
    /// A short string stored whole (`embstr`).
    Embstr(&'a [u8]),
    /// Any other string (`raw`).
    Raw(&'a [u8]),
}

impl<'a> StrRef<'a> {
    /// The string's bytes (integers are formatted).
    pub fn as_bytes(&self) -> Cow<'a, [u8]> {
        match *self {
            StrRef::Int(i) => Cow::Owned(itoa::Buffer::new().format(i).as_bytes().to_vec()),
            StrRef::Embstr(b) | StrRef::Raw(b) => Cow::Borrowed(b),
        }
    }

    /// The bytes when they are stored (not an integer), without formatting anything.
    pub fn stored_bytes(&self) -> Option<&'a [u8]> {
        match *self {
            StrRef::Int(_) => None,
            StrRef::Embstr(b) | StrRef::Raw(b) => Some(b),
        }
    }

    /// Calls `f` with the string's bytes, formatting an integer on the stack (no
    /// allocation, unlike [`StrRef::as_bytes`] for integers).
    pub fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match *self {
            StrRef::Int(i) => f(itoa::Buffer::new().format(i).as_bytes()),
            StrRef::Embstr(b) | StrRef::Raw(b) => f(b),
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        match *self {
            StrRef::Int(i) => itoa::Buffer::new().format(i).len(),
            StrRef::Embstr(b) | StrRef::Raw(b) => b.len(),
        }
    }

    /// True for the empty string.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value as an integer if its text is a canonical integer.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            StrRef::Int(i) => Some(i),
            StrRef::Embstr(b) | StrRef::Raw(b) => parse_i64(b),
        }
    }

    /// Redis's encoding name.
    pub fn encoding(&self) -> &'static str {
        match self {
            StrRef::Int(_) => "int",
            StrRef::Embstr(_) => "embstr",
            StrRef::Raw(_) => "raw",
        }
    }

    /// An owned copy with the same encoding.
    pub fn to_owned(&self) -> StrValue {
        match *self {
            StrRef::Int(i) => StrValue::Int(i),
            StrRef::Embstr(b) => StrValue::Embstr(b.into()),
            StrRef::Raw(b) => StrValue::Raw(b.to_vec()),
        }
    }
}

impl StrValue {
    /// A borrowed view of the string.
    pub fn view(&self) -> StrRef<'_> {
        match self {
            StrValue::Int(i) => StrRef::Int(*i),
            StrValue::Embstr(b) => StrRef::Embstr(b),
            StrValue::Raw(v) => StrRef::Raw(v),
        }
    }
}

/// A borrowed value of a keyspace entry: a string (which the keyspace may keep inside
/// its table node) or any other type, stored as a [`Value`].
#[derive(Debug, Clone, Copy)]
pub enum ValueRef<'a> {
    /// A string.
    Str(StrRef<'a>),
    /// Any other type (never `Value::Str`).
    Other(&'a Value),
}

impl<'a> ValueRef<'a> {
    /// The name `TYPE` replies with.
    pub fn type_name(&self) -> &'static str {
        match self {
            ValueRef::Str(_) => "string",
            ValueRef::Other(v) => v.type_name(),
        }
    }

    /// The name `OBJECT ENCODING` replies with.
    pub fn encoding(&self) -> &'static str {
        match self {
            ValueRef::Str(s) => s.encoding(),
            ValueRef::Other(v) => v.encoding(),
        }
    }

    /// The string, if the value is one.
    pub fn as_str(&self) -> Option<StrRef<'a>> {
        match *self {
            ValueRef::Str(s) => Some(s),
            ValueRef::Other(_) => None,
        }
    }

    /// The value of another type than string.
    pub fn as_other(&self) -> Option<&'a Value> {
        match *self {
            ValueRef::Str(_) => None,
            ValueRef::Other(v) => Some(v),
        }
    }

    /// True for the collection and Basalt types that eviction must never pick (a held
    /// lock must stay held; a queue's jobs are not a cache).
    pub fn is_unevictable(&self) -> bool {
        matches!(self, ValueRef::Other(Value::Lock(_) | Value::Queue(_)))
    }

    /// An owned copy (a deep clone of collections).
    pub fn to_value(&self) -> Value {
        match self {
            ValueRef::Str(s) => Value::Str(s.to_owned()),
            ValueRef::Other(v) => (*v).clone(),
        }
    }
}

impl<'a> From<&'a Value> for ValueRef<'a> {
    fn from(v: &'a Value) -> ValueRef<'a> {
        v.view()
    }
}

impl Value {
    /// A borrowed view of the value.
    pub fn view(&self) -> ValueRef<'_> {
        match self {
            Value::Str(s) => ValueRef::Str(s.view()),
            v => ValueRef::Other(v),
        }
    }
}

/// Every type a key can hold. Later data types add variants here.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string.
    Str(StrValue),
    /// A hash. Collections are boxed so a `Value` stays 32 bytes: every key's table node
    /// embeds one, and most keys hold strings.
    Hash(Box<HashValue>),
    /// A list.
    List(Box<ListValue>),
    /// A set.
    Set(Box<SetValue>),
    /// A sorted set.
    ZSet(Box<ZSetValue>),
    /// A stream.
    Stream(Box<StreamValue>),
    /// A rate limiter of the `RL.*` family (Basalt's own type).
    RateLimit(Box<crate::rl::RateLimit>),
    /// A Basalt lock (holders and fencing tokens; `docs/coordination.md`).
    Lock(Box<LockValue>),
    /// A job queue (`docs/jobs.md`; Basalt's own type).
    Queue(Box<QueueValue>),
}

impl From<QueueValue> for Value {
    fn from(v: QueueValue) -> Value {
        Value::Queue(Box::new(v))
    }
}

impl From<LockValue> for Value {
    fn from(v: LockValue) -> Value {
        Value::Lock(Box::new(v))
    }
}

impl From<StreamValue> for Value {
    fn from(v: StreamValue) -> Value {
        Value::Stream(Box::new(v))
    }
}

impl From<HashValue> for Value {
    fn from(v: HashValue) -> Value {
        Value::Hash(Box::new(v))
    }
}

impl From<ListValue> for Value {
    fn from(v: ListValue) -> Value {
        Value::List(Box::new(v))
    }
}

impl From<SetValue> for Value {
    fn from(v: SetValue) -> Value {
        Value::Set(Box::new(v))
    }
}

impl From<ZSetValue> for Value {
    fn from(v: ZSetValue) -> Value {
        Value::ZSet(Box::new(v))
    }
}

impl Value {
    /// The name `TYPE` replies with.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Hash(_) => "hash",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
            Value::Stream(_) => "stream",
            Value::RateLimit(_) => RATELIMIT_TYPE,
            Value::Lock(l) if l.is_semaphore() => "semaphore",
            Value::Lock(l) if l.is_election() => "election",
            Value::Lock(_) => "lock",
            Value::Queue(_) => "queue",
        }
    }

    /// The name `OBJECT ENCODING` replies with.
    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Str(s) => s.encoding(),
            Value::Hash(v) => v.encoding(),
            Value::List(v) => v.encoding(),
            Value::Set(v) => v.encoding(),
            Value::ZSet(v) => v.encoding(),
            Value::Stream(_) => "stream",
            Value::RateLimit(r) => r.spec().name(),
            Value::Lock(l) if l.is_semaphore() => "semaphore",
            Value::Lock(l) if l.is_election() => "election",
            Value::Lock(_) => "lock",
            Value::Queue(_) => "queue",
        }
    }

    /// Heap bytes the value holds as the allocator rounds them, in O(1): the string's
    /// buffer, or a collection's box plus its running byte count. The keyspace's memory
    /// accounting adds this to each key's node and name (see `memory.rs`).
    pub fn mem_usage(&self) -> usize {
        use crate::memory::alloc_size;
        use std::mem::size_of;
        match self {
            Value::Str(StrValue::Int(_)) => 0,
            Value::Str(StrValue::Embstr(b)) => alloc_size(b.len()),
            Value::Str(StrValue::Raw(v)) => alloc_size(v.capacity()),
            Value::Hash(v) => alloc_size(size_of::<HashValue>()) + v.heap_size(),
            Value::List(v) => alloc_size(size_of::<ListValue>()) + v.heap_size(),
            Value::Set(v) => alloc_size(size_of::<SetValue>()) + v.heap_size(),
            Value::ZSet(v) => alloc_size(size_of::<ZSetValue>()) + v.heap_size(),
            // Not O(1) yet: StreamValue sums its nodes (see the report of issue 5).
            Value::Stream(v) => alloc_size(size_of::<StreamValue>()) + v.heap_size(),
            Value::RateLimit(r) => {
                alloc_size(size_of::<crate::rl::RateLimit>()) + alloc_size(r.heap_size())
            }
            Value::Lock(v) => alloc_size(size_of::<LockValue>()) + v.heap_size(),
            Value::Queue(v) => alloc_size(size_of::<QueueValue>()) + v.heap_size(),
        }
    }

    /// About how many deallocations dropping the value takes (Redis's
    /// `lazyfreeGetFreeEffort`): one for strings and compact encodings, the element or
    /// node count for the large ones.
    pub fn free_effort(&self) -> usize {
        match self {
            Value::Str(_) => 1,
            Value::List(v) => v.node_count().max(1),
            Value::Hash(v) if v.encoding() == "hashtable" => v.len(),
            Value::Set(v) if v.encoding() == "hashtable" => v.len(),
            Value::ZSet(v) if v.encoding() == "skiplist" => v.len(),
            // One listpack node per ~100 entries.
            Value::Stream(v) => (v.len() / 100) as usize + 1,
            Value::Queue(v) => v.len().max(1),
            _ => 1,
        }
    }

    /// Approximate heap bytes held by the value.
    pub fn heap_size(&self) -> usize {
        match self {
            Value::Str(s) => s.heap_size(),
            Value::Hash(v) => v.heap_size(),
            Value::List(v) => v.heap_size(),
            Value::Set(v) => v.heap_size(),
            Value::ZSet(v) => v.heap_size(),
            Value::Stream(v) => v.heap_size(),
            Value::RateLimit(r) => size_of_rl() + r.heap_size(),
            Value::Lock(v) => v.heap_size(),
            Value::Queue(v) => v.heap_size(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_stay_small() {
        // Every key's table node embeds a Value: keep it at a string's size.
        assert!(
            std::mem::size_of::<Value>() <= 32,
            "{}",
            std::mem::size_of::<Value>()
        );
    }

    #[test]
    fn encodings_match_redis_rules() {
        assert_eq!(StrValue::from_bytes(b"123").encoding(), "int");
        assert_eq!(
            StrValue::from_bytes(b"-9223372036854775808").encoding(),
            "int"
        );
        assert_eq!(
            StrValue::from_bytes(b"9223372036854775808").encoding(),
            "embstr"
        );
        assert_eq!(StrValue::from_bytes(b"0123").encoding(), "embstr");
        assert_eq!(StrValue::from_bytes(&[b'a'; 44]).encoding(), "embstr");
        assert_eq!(StrValue::from_bytes(&[b'a'; 45]).encoding(), "raw");
        let mut v = StrValue::from_bytes(b"12");
        v.make_raw().extend_from_slice(b"3");
        assert_eq!(v.encoding(), "raw");
        assert_eq!(v.as_bytes().as_ref(), b"123");
        assert_eq!(v.as_i64(), Some(123));
        assert_eq!(StrValue::Int(-42).len(), 3);
    }
}
