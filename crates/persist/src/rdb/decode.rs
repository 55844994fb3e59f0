//! RDB bytes to values: a bounded reader and the object loaders for every type Redis 7.0
//! loads.
//!
//! Loaded collections are rebuilt through the engine's own constructors with the
//! encoding limits in force, so they end up in the encoding Basalt (and Redis, on load)
//! would give them: a ziplist hash of 600 fields becomes a `hashtable`, a plain `HASH` of
//! 3 fields a `listpack`.

use super::{QUICKLIST_NODE_PACKED, QUICKLIST_NODE_PLAIN, RdbError, lenc, types};
use crate::crc64::crc64;
use crate::lzf;
use crate::packed::{
    Elem, PackedError, intset_values, listpack_entries, ziplist_entries, zipmap_pairs,
};
use basalt_engine::types::lock::{Holder, LockValue};
use basalt_engine::types::zset::strtod_whole;
use basalt_engine::types::{HashValue, ListValue, SetValue, ZSetValue};
use basalt_engine::{EncodingLimits, StrValue, Value};
use bytes::Bytes;
use std::collections::HashSet;
use std::io::Read;

type Result<T> = std::result::Result<T, RdbError>;

/// A reader over RDB bytes that knows how many bytes are left, so no length read from
/// the input can make it allocate more than the input could still hold. It also keeps
/// the running CRC-64 of everything read.
pub struct Reader<R> {
    inner: R,
    remaining: u64,
    offset: u64,
    crc: u64,
}

/// A length field: a plain length, or a special string encoding.
enum Len {
    Plain(u64),
    Encoded(u8),
}

impl<'a> Reader<&'a [u8]> {
    /// A reader over an in-memory buffer.
    pub fn from_slice(b: &'a [u8]) -> Reader<&'a [u8]> {
        Reader::new(b, b.len() as u64)
    }
}

impl<R: Read> Reader<R> {
    /// A reader over `inner`, which holds `len` more bytes.
    pub fn new(inner: R, len: u64) -> Reader<R> {
        Reader {
            inner,
            remaining: len,
            offset: 0,
            crc: 0,
        }
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Bytes left in the input.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// CRC-64 of the bytes consumed so far.
    pub fn crc(&self) -> u64 {
        self.crc
    }

    /// The underlying reader.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// An error at the current offset.
    pub fn corrupt(&self, what: impl Into<String>) -> RdbError {
        RdbError::Corrupt {
            offset: self.offset,
            what: what.into(),
        }
    }

    fn packed(&self, e: PackedError) -> RdbError {
        self.corrupt(e.0)
    }

    /// Fills `buf` from the input.
    pub fn read_into(&mut self, buf: &mut [u8]) -> Result<()> {
        if buf.len() as u64 > self.remaining {
            return Err(RdbError::Truncated {
                offset: self.offset + self.remaining,
            });
        }
        if let Err(e) = self.inner.read_exact(buf) {
            return Err(if e.kind() == std::io::ErrorKind::UnexpectedEof {
                RdbError::Truncated {
                    offset: self.offset,
                }
            } else {
                RdbError::Io(e)
            });
        }
        self.crc = crc64(self.crc, buf);
        self.remaining -= buf.len() as u64;
        self.offset += buf.len() as u64;
        Ok(())
    }

    /// Reads `n` bytes; fails before allocating if fewer are left.
    pub fn bytes(&mut self, n: u64) -> Result<Vec<u8>> {
        if n > self.remaining {
            return Err(RdbError::Truncated {
                offset: self.offset + self.remaining,
            });
        }
        let mut v = vec![0u8; n as usize];
        self.read_into(&mut v)?;
        Ok(v)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8> {
        let mut b = [0u8; 1];
        self.read_into(&mut b)?;
        Ok(b[0])
    }

    /// A little-endian u64 (expire times).
    pub fn u64_le(&mut self) -> Result<u64> {
        let mut b = [0u8; 8];
        self.read_into(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// A little-endian i32 (old second-resolution expire times).
    pub fn i32_le(&mut self) -> Result<i32> {
        let mut b = [0u8; 4];
        self.read_into(&mut b)?;
        Ok(i32::from_le_bytes(b))
    }

    fn len_or_enc(&mut self) -> Result<Len> {
        let first = self.u8()?;
        match first >> 6 {
            lenc::BITS6 => Ok(Len::Plain(u64::from(first & 0x3f))),
            lenc::BITS14 => {
                let next = self.u8()?;
                Ok(Len::Plain((u64::from(first & 0x3f) << 8) | u64::from(next)))
            }
            lenc::ENCVAL => Ok(Len::Encoded(first & 0x3f)),
            _ => match first {
                lenc::BITS32 => {
                    let mut b = [0u8; 4];
                    self.read_into(&mut b)?;
                    Ok(Len::Plain(u64::from(u32::from_be_bytes(b))))
                }
                lenc::BITS64 => {
                    let mut b = [0u8; 8];
                    self.read_into(&mut b)?;
                    Ok(Len::Plain(u64::from_be_bytes(b)))
                }
                _ => Err(self.corrupt(format!("Unknown length encoding {first} in rdbLoadLen()"))),
            },
        }
    }

    /// A length (an encoded-string marker here is corruption).
    pub fn length(&mut self) -> Result<u64> {
        match self.len_or_enc()? {
            Len::Plain(n) => Ok(n),
            Len::Encoded(_) => Err(self.corrupt("string encoding where a length was expected")),
        }
    }

    /// A string in any of its encodings (raw, integer, LZF).
    pub fn string(&mut self) -> Result<Vec<u8>> {
        match self.len_or_enc()? {
            Len::Plain(n) => self.bytes(n),
            Len::Encoded(e) => {
                let int = match e {
                    lenc::INT8 => i64::from(self.u8()? as i8),
                    lenc::INT16 => {
                        let mut b = [0u8; 2];
                        self.read_into(&mut b)?;
                        i64::from(i16::from_le_bytes(b))
                    }
                    lenc::INT32 => {
                        let mut b = [0u8; 4];
                        self.read_into(&mut b)?;
                        i64::from(i32::from_le_bytes(b))
                    }
                    lenc::LZF => return self.lzf_string(),
                    _ => {
                        return Err(self.corrupt(format!("Unknown RDB string encoding type {e}")));
                    }
                };
                Ok(itoa::Buffer::new().format(int).as_bytes().to_vec())
            }
        }
    }

    fn lzf_string(&mut self) -> Result<Vec<u8>> {
        let clen = self.length()?;
        let len = self.length()?;
        if len == 0 {
            return Err(self.corrupt("LZF string with a decompressed length of 0"));
        }
        if clen > self.remaining {
            return Err(RdbError::Truncated {
                offset: self.offset + self.remaining,
            });
        }
        if len > lzf::max_expansion(clen as usize) as u64 {
            return Err(self.corrupt(format!(
                "LZF string of {clen} bytes cannot expand to {len} bytes"
            )));
        }
        let c = self.bytes(clen)?;
        lzf::decompress(&c, len as usize).map_err(|_| self.corrupt("Invalid LZF compressed string"))
    }

    /// A binary little-endian double (`RDB_TYPE_ZSET_2` scores).
    pub fn binary_double(&mut self) -> Result<f64> {
        let mut b = [0u8; 8];
        self.read_into(&mut b)?;
        Ok(f64::from_le_bytes(b))
    }

    /// A double as old `RDB_TYPE_ZSET` files store it: a length byte (253 nan, 254 inf,
    /// 255 -inf) and that many bytes of text.
    pub fn text_double(&mut self) -> Result<f64> {
        let n = self.u8()?;
        match n {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            _ => {
                let b = self.bytes(u64::from(n))?;
                strtod_whole(&b).ok_or_else(|| self.corrupt("invalid double value"))
            }
        }
    }
}

fn elem_bytes(e: &Elem<'_>) -> Vec<u8> {
    e.to_vec()
}

/// Most words a `basalt-rl` module value holds: algorithm, three parameters, a log
/// length and two words per log entry.
const RL_MAX_WORDS: usize = 5 + 2 * basalt_engine::rl::MAX_LIMIT as usize;

/// Reads the body of an object of RDB type `ty`. `Ok(None)` is an empty collection, which
/// Redis skips with a notice instead of failing the load.
pub fn read_object<R: Read>(
    r: &mut Reader<R>,
    ty: u8,
    lim: &EncodingLimits,
) -> Result<Option<Value>> {
    let v = match ty {
        types::STRING => Value::Str(StrValue::from_bytes(&r.string()?)),
        types::LIST => {
            let n = r.length()?;
            let mut l = ListValue::new(lim);
            for _ in 0..n {
                let s = r.string()?;
                l.push(basalt_engine::types::list::End::Tail, &s);
            }
            Value::from(l)
        }
        types::SET => {
            let n = r.length()?;
            let mut s = SetValue::new();
            for _ in 0..n {
                let m = r.string()?;
                if !s.add(&m, lim) {
                    return Err(r.corrupt("Duplicate set members detected"));
                }
            }
            Value::from(s)
        }
        types::ZSET | types::ZSET_2 => {
            let n = r.length()?;
            let mut entries = Vec::with_capacity(n.min(r.remaining()) as usize);
            for _ in 0..n {
                let m = r.string()?;
                let score = if ty == types::ZSET_2 {
                    r.binary_double()?
                } else {
                    r.text_double()?
                };
                entries.push((Bytes::from(m), score));
            }
            Value::from(zset_from(r, entries, lim)?)
        }
        types::HASH => {
            let n = r.length()?;
            let mut h = HashValue::new();
            for _ in 0..n {
                let f = r.string()?;
                let v = r.string()?;
                if !h.set(&f, &v, lim) {
                    return Err(r.corrupt("Duplicate hash fields detected"));
                }
            }
            Value::from(h)
        }
        types::HASH_ZIPMAP => {
            let blob = r.string()?;
            let pairs = zipmap_pairs(&blob).map_err(|e| r.packed(e))?;
            let mut h = HashValue::new();
            for (f, v) in pairs {
                if !h.set(f, v, lim) {
                    return Err(r.corrupt("Duplicate hash fields detected"));
                }
            }
            Value::from(h)
        }
        types::HASH_ZIPLIST | types::HASH_LISTPACK => {
            let blob = r.string()?;
            let entries = if ty == types::HASH_ZIPLIST {
                ziplist_entries(&blob)
            } else {
                listpack_entries(&blob)
            }
            .map_err(|e| r.packed(e))?;
            if entries.len() % 2 != 0 {
                return Err(r.corrupt("hash listpack with an odd number of entries"));
            }
            let mut h = HashValue::new();
            for pair in entries.chunks_exact(2) {
                if !h.set(&elem_bytes(&pair[0]), &elem_bytes(&pair[1]), lim) {
                    return Err(r.corrupt("Duplicate hash fields detected"));
                }
            }
            Value::from(h)
        }
        types::LIST_ZIPLIST => {
            let blob = r.string()?;
            let entries = ziplist_entries(&blob).map_err(|e| r.packed(e))?;
            Value::from(ListValue::from_elements(
                entries.iter().map(elem_bytes),
                lim,
            ))
        }
        types::SET_INTSET => {
            let blob = r.string()?;
            let vals = intset_values(&blob).map_err(|e| r.packed(e))?;
            let mut s = SetValue::new();
            let mut buf = itoa::Buffer::new();
            for v in vals {
                s.add(buf.format(v).as_bytes(), lim);
            }
            Value::from(s)
        }
        types::ZSET_ZIPLIST | types::ZSET_LISTPACK => {
            let blob = r.string()?;
            let entries = if ty == types::ZSET_ZIPLIST {
                ziplist_entries(&blob)
            } else {
                listpack_entries(&blob)
            }
            .map_err(|e| r.packed(e))?;
            if entries.len() % 2 != 0 {
                return Err(r.corrupt("sorted set listpack with an odd number of entries"));
            }
            let mut pairs = Vec::with_capacity(entries.len() / 2);
            for p in entries.chunks_exact(2) {
                let score = match p[1] {
                    Elem::Int(i) => i as f64,
                    Elem::Str(s) => {
                        strtod_whole(s).ok_or_else(|| r.corrupt("invalid sorted set score"))?
                    }
                };
                pairs.push((Bytes::from(elem_bytes(&p[0])), score));
            }
            Value::from(zset_from(r, pairs, lim)?)
        }
        types::LIST_QUICKLIST | types::LIST_QUICKLIST_2 => {
            let nodes = r.length()?;
            let mut l = ListValue::new(lim);
            for _ in 0..nodes {
                let container = if ty == types::LIST_QUICKLIST_2 {
                    r.length()?
                } else {
                    QUICKLIST_NODE_PACKED
                };
                let blob = r.string()?;
                match container {
                    QUICKLIST_NODE_PLAIN => {
                        l.push(basalt_engine::types::list::End::Tail, &blob);
                    }
                    QUICKLIST_NODE_PACKED => {
                        let entries = if ty == types::LIST_QUICKLIST {
                            ziplist_entries(&blob)
                        } else {
                            listpack_entries(&blob)
                        }
                        .map_err(|e| r.packed(e))?;
                        for e in entries {
                            l.push(basalt_engine::types::list::End::Tail, &elem_bytes(&e));
                        }
                    }
                    other => {
                        return Err(r.corrupt(format!(
                            "Quicklist integrity check failed: unknown node container {other}"
                        )));
                    }
                }
            }
            Value::from(l)
        }
        types::STREAM_LISTPACKS | types::STREAM_LISTPACKS_2 => {
            Value::from(super::stream::read(r, ty == types::STREAM_LISTPACKS_2)?)
        }
        types::MODULE_2 => {
            let id = r.length()?;
            if id == super::BASALT_RL_MODULE_ID {
                let mut words = Vec::new();
                loop {
                    match r.length()? {
                        super::module_opcodes::EOF => break,
                        super::module_opcodes::UINT if words.len() < RL_MAX_WORDS => {
                            words.push(r.length()? as i64)
                        }
                        other => {
                            return Err(r.corrupt(format!(
                                "Invalid basalt-rl module value (opcode {other})"
                            )));
                        }
                    }
                }
                let rl = basalt_engine::rl::RateLimit::from_words(&words)
                    .ok_or_else(|| r.corrupt("Invalid basalt-rl module value"))?;
                return Ok(Some(Value::RateLimit(Box::new(rl))));
            }
            if id == super::BASALT_LK_MODULE_ID {
                return Ok(Some(Value::from(read_lock(r)?)));
            }
            if id == super::BASALT_JQ_MODULE_ID {
                use super::module_opcodes::{EOF, STRING};
                if r.length()? != STRING {
                    return Err(r.corrupt("basalt-jq: expected a string"));
                }
                let bytes = r.string()?;
                if r.length()? != EOF {
                    return Err(r.corrupt("basalt-jq: expected EOF"));
                }
                let q = basalt_engine::types::QueueValue::from_bytes(&bytes)
                    .map_err(|e| r.corrupt(e.to_string()))?;
                return Ok(Some(Value::from(q)));
            }
            return Err(RdbError::Unsupported(format!(
                "The RDB file contains module data I can't load: no matching module type '{}'",
                super::module_type_name(id)
            )));
        }
        types::MODULE_PRE_GA => {
            let id = r.length()?;
            return Err(RdbError::Unsupported(format!(
                "The RDB file contains module data I can't load: no matching module type '{}'",
                super::module_type_name(id)
            )));
        }
        other => {
            return Err(r.corrupt(format!("Unknown RDB encoding type {other}")));
        }
    };
    let empty = match &v {
        Value::Str(_) => false,
        Value::List(l) => l.is_empty(),
        Value::Hash(h) => h.is_empty(),
        Value::Set(s) => s.is_empty(),
        Value::ZSet(z) => z.is_empty(),
        // Redis keeps empty streams (XDEL of every entry, XGROUP CREATE MKSTREAM).
        Value::Stream(_) | Value::RateLimit(_) => false,
        // A lock with no holders is a tombstone that keeps its fence.
        Value::Lock(_) => false,
        // An empty queue keeps its configuration and fence.
        Value::Queue(_) => false,
    };
    Ok(if empty { None } else { Some(v) })
}

/// Highest fence a lock value may hold: the last fence a grant may take (see
/// [`basalt_engine::types::lock::MAX_FENCE`]).
pub const MAX_FENCE: u64 = basalt_engine::types::lock::MAX_FENCE;

/// Reads a lock's module payload (after its id): see `Encoder::lock`.
fn read_lock<R: Read>(r: &mut Reader<R>) -> Result<LockValue> {
    use super::module_opcodes::{EOF, STRING, UINT};
    fn uint<R: Read>(r: &mut Reader<R>) -> Result<u64> {
        match r.length()? {
            UINT => r.length(),
            op => Err(r.corrupt(format!(
                "basalt-lk: expected an unsigned, found opcode {op}"
            ))),
        }
    }
    fn string<R: Read>(r: &mut Reader<R>) -> Result<Vec<u8>> {
        match r.length()? {
            STRING => r.string(),
            op => Err(r.corrupt(format!("basalt-lk: expected a string, found opcode {op}"))),
        }
    }
    let fence = uint(r)?;
    if fence > MAX_FENCE {
        return Err(r.corrupt("basalt-lk: fence out of range"));
    }
    let delay_until = uint(r)?;
    let limit = u32::try_from(uint(r)?).map_err(|_| r.corrupt("basalt-lk: limit out of range"))?;
    let n = uint(r)?;
    let mut holders = Vec::new();
    for _ in 0..n {
        let owner = string(r)?.into();
        let token = string(r)?.into();
        let fence = uint(r)?;
        let shared = uint(r)? != 0;
        let count =
            u32::try_from(uint(r)?).map_err(|_| r.corrupt("basalt-lk: depth out of range"))?;
        let permits =
            u32::try_from(uint(r)?).map_err(|_| r.corrupt("basalt-lk: permits out of range"))?;
        let expire_at = uint(r)?;
        let session = uint(r)?;
        if count == 0 || permits == 0 || (expire_at == 0) == (session == 0) || fence > MAX_FENCE {
            return Err(r.corrupt("basalt-lk: invalid holder"));
        }
        holders.push(Holder {
            owner,
            token,
            fence,
            shared,
            count,
            permits,
            expire_at,
            session,
            value: Box::default(),
        });
    }
    let mut election = false;
    match r.length()? {
        EOF => {}
        // The election section: marker 1, then each holder's value.
        UINT if limit == 0 && r.length()? == 1 => {
            if holders.len() > 1 || holders.iter().any(|h| h.shared) {
                return Err(r.corrupt("basalt-lk: an election has one exclusive leader"));
            }
            for h in holders.iter_mut() {
                h.value = string(r)?.into();
            }
            election = true;
            match r.length()? {
                EOF => {}
                op => {
                    return Err(r.corrupt(format!("basalt-lk: expected EOF, found opcode {op}")));
                }
            }
        }
        op => return Err(r.corrupt(format!("basalt-lk: expected EOF, found opcode {op}"))),
    }
    let mut l = LockValue::from_parts(fence, delay_until, limit, holders);
    if election {
        l.set_election();
    }
    Ok(l)
}

fn zset_from<R: Read>(
    r: &Reader<R>,
    entries: Vec<(Bytes, f64)>,
    lim: &EncodingLimits,
) -> Result<ZSetValue> {
    let mut seen: HashSet<&[u8]> = HashSet::with_capacity(entries.len());
    for (m, s) in &entries {
        if s.is_nan() {
            return Err(r.corrupt("Zset with NAN score detected"));
        }
        if !seen.insert(m) {
            return Err(r.corrupt("Duplicate zset fields detected"));
        }
    }
    drop(seen);
    Ok(ZSetValue::from_entries(entries, lim))
}
