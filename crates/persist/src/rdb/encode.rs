//! Values to RDB bytes: the object type byte and body Redis 7.0 would write for the same
//! value in the same encoding.
//!
//! | Basalt value | RDB type written |
//! |---|---|
//! | string (`int`, `embstr`, `raw`) | `STRING`: 8/16/32-bit integer form when the text is a canonical integer that fits, else LZF (when it saves at least 4 bytes of a string over 20 bytes and `rdbcompression` is on), else raw |
//! | list | `LIST_QUICKLIST_2`: listpack nodes cut where Redis's `list-max-listpack-size` rule would cut them when pushing the elements in order; elements of 1 GiB or more in plain nodes |
//! | hash `listpack` / `hashtable` | `HASH_LISTPACK` (fields in insertion order) / `HASH` |
//! | set `intset` / other | `SET_INTSET` / `SET` |
//! | sorted set `listpack` / `skiplist` | `ZSET_LISTPACK` (scores as Redis's `d2string` text) / `ZSET_2` (binary doubles, highest score first) |
//! | stream | `STREAM_LISTPACKS_2`: Redis's listpack per node, metadata, groups (see [`super::stream`]) |
//!
//! For the compact encodings the bytes are exactly Redis's (listpack entries encoded as
//! `lpAppend` encodes them, LZF as liblzf compresses), so `DUMP` output can be compared
//! with redis-server byte for byte. Hash tables and sets in table form iterate in
//! Basalt's table order, which differs from Redis's.

use super::{PACKED_THRESHOLD, QUICKLIST_NODE_PACKED, QUICKLIST_NODE_PLAIN, lenc, opcodes, types};
use crate::lzf::Compressor;
use crate::packed::{ListpackWriter, intset_bytes, lp_str_entry_size, string_to_int};
use basalt_engine::types::LockValue;
use basalt_engine::types::list::ListElem;
use basalt_engine::types::set::Member;
use basalt_engine::{StrRef, Value, ValueRef};

/// Choices that change the bytes written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeOptions {
    /// `rdbcompression`: LZF-compress strings longer than 20 bytes when it saves space.
    pub compression: bool,
    /// `list-max-listpack-size`: where list nodes are cut.
    pub list_fill: i64,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            compression: true,
            list_fill: -2,
        }
    }
}

/// Writes values; holds the LZF compressor's table between calls.
pub struct Encoder {
    opts: EncodeOptions,
    lzf: Compressor,
}

/// Appends an RDB length.
pub fn write_len(out: &mut Vec<u8>, n: u64) {
    if n < 1 << 6 {
        out.push(n as u8);
    } else if n < 1 << 14 {
        out.push((lenc::BITS14 << 6) | (n >> 8) as u8);
        out.push((n & 0xff) as u8);
    } else if n <= u64::from(u32::MAX) {
        out.push(lenc::BITS32);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(lenc::BITS64);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// The 8/16/32-bit integer form of `v` (`rdbEncodeInteger`), if it fits.
fn encode_int(out: &mut Vec<u8>, v: i64) -> bool {
    let tag = |e: u8| (lenc::ENCVAL << 6) | e;
    if let Ok(b) = i8::try_from(v) {
        out.push(tag(lenc::INT8));
        out.push(b as u8);
    } else if let Ok(s) = i16::try_from(v) {
        out.push(tag(lenc::INT16));
        out.extend_from_slice(&s.to_le_bytes());
    } else if let Ok(w) = i32::try_from(v) {
        out.push(tag(lenc::INT32));
        out.extend_from_slice(&w.to_le_bytes());
    } else {
        return false;
    }
    true
}

/// Redis 7.0's `d2string` for listpack scores: integers in (-2^52, 2^52] as integers,
/// everything else as `%.17g` (`inf`, `-inf`).
pub fn score_text(v: f64, out: &mut Vec<u8>) {
    if v > -4_503_599_627_370_495.0 && v < 4_503_599_627_370_496.0 && v == (v as i64) as f64 {
        out.extend_from_slice(itoa::Buffer::new().format(v as i64).as_bytes());
    } else {
        basalt_proto::format_double(v, out);
    }
}

/// Bytes an element takes in a listpack.
fn lp_entry_size(e: &ListElem<'_>) -> usize {
    let int = match e {
        ListElem::Int(i) => Some(*i),
        ListElem::Str(s) => string_to_int(s),
    };
    match int {
        Some(v) => match v {
            0..=127 => 2,
            -4096..=4095 => 3,
            -32768..=32767 => 4,
            -8388608..=8388607 => 5,
            -2147483648..=2147483647 => 6,
            _ => 10,
        },
        None => match e {
            ListElem::Str(s) => lp_str_entry_size(s.len()),
            ListElem::Int(_) => unreachable!("integers handled above"),
        },
    }
}

fn elem_str_len(e: &ListElem<'_>) -> usize {
    match e {
        ListElem::Str(s) => s.len(),
        ListElem::Int(i) => itoa::Buffer::new().format(*i).len(),
    }
}

/// Redis 7.0's `_quicklistNodeAllowInsert`: may a node of `node_bytes` bytes and `count`
/// entries take one more element of `sz` bytes?
fn node_allows(node_bytes: usize, count: usize, sz: usize, fill: i64) -> bool {
    const LEVELS: [usize; 5] = [4096, 8192, 16384, 32768, 65536];
    const SAFETY: usize = 8192;
    let mut overhead = if sz < 254 { 1 } else { 5 };
    overhead += if sz < 64 {
        1
    } else if sz < 16384 {
        2
    } else {
        5
    };
    let new_sz = node_bytes + sz + overhead;
    if fill < 0 {
        let level = (-fill - 1) as usize;
        if level < LEVELS.len() && new_sz <= LEVELS[level] {
            return true;
        }
    }
    if new_sz > SAFETY {
        return false;
    }
    (count as i64) < fill
}

impl Encoder {
    /// An encoder with `opts`.
    pub fn new(opts: EncodeOptions) -> Encoder {
        Encoder {
            opts,
            lzf: Compressor::new(),
        }
    }

    /// The options in force.
    pub fn options(&self) -> EncodeOptions {
        self.opts
    }

    /// Appends a string as `rdbSaveRawString`: integer form, LZF, or raw.
    pub fn string(&mut self, out: &mut Vec<u8>, s: &[u8]) {
        if s.len() <= 11
            && let Some(v) = string_to_int(s)
            && encode_int(out, v)
        {
            return;
        }
        if self.opts.compression
            && s.len() > 20
            && let Some(c) = self.lzf.compress(s, s.len() - 4)
        {
            out.push((lenc::ENCVAL << 6) | lenc::LZF);
            write_len(out, c.len() as u64);
            write_len(out, s.len() as u64);
            out.extend_from_slice(&c);
            return;
        }
        write_len(out, s.len() as u64);
        out.extend_from_slice(s);
    }

    /// Appends an integer as `rdbSaveLongLongAsStringObject`.
    pub fn int_string(&mut self, out: &mut Vec<u8>, v: i64) {
        if !encode_int(out, v) {
            let mut b = itoa::Buffer::new();
            let s = b.format(v).as_bytes();
            write_len(out, s.len() as u64);
            out.extend_from_slice(s);
        }
    }

    /// The RDB object type of `v` as this encoder writes it.
    pub fn object_type<'a>(v: impl Into<ValueRef<'a>>) -> u8 {
        let v = match v.into() {
            ValueRef::Str(_) => return types::STRING,
            ValueRef::Other(v) => v,
        };
        match v {
            Value::Stream(_) => types::STREAM_LISTPACKS_2,
            Value::RateLimit(_) | Value::Lock(_) | Value::Queue(_) => types::MODULE_2,
            Value::Str(_) => types::STRING,
            Value::List(_) => types::LIST_QUICKLIST_2,
            Value::Hash(h) => {
                if h.encoding() == "listpack" {
                    types::HASH_LISTPACK
                } else {
                    types::HASH
                }
            }
            Value::Set(s) => {
                if s.encoding() == "intset" {
                    types::SET_INTSET
                } else {
                    types::SET
                }
            }
            Value::ZSet(z) => {
                if z.encoding() == "listpack" {
                    types::ZSET_LISTPACK
                } else {
                    types::ZSET_2
                }
            }
        }
    }

    /// Appends the type byte and the body of `v` (what `DUMP` serializes).
    pub fn object<'a>(&mut self, out: &mut Vec<u8>, v: impl Into<ValueRef<'a>>) {
        let v = v.into();
        out.push(Self::object_type(v));
        self.body(out, v);
    }

    /// Appends an expire time (if any), the type, the key and the value: one key of a
    /// snapshot.
    pub fn key_value<'a>(
        &mut self,
        out: &mut Vec<u8>,
        key: &[u8],
        v: impl Into<ValueRef<'a>>,
        expire_ms: u64,
    ) {
        let v = v.into();
        let ty = Self::object_type(v);
        if expire_ms != 0 {
            out.push(opcodes::EXPIRETIME_MS);
            out.extend_from_slice(&expire_ms.to_le_bytes());
        }
        out.push(ty);
        self.string(out, key);
        self.body(out, v);
    }

    /// Appends an aux field (`RDB_OPCODE_AUX key value`).
    pub fn aux(&mut self, out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
        out.push(opcodes::AUX);
        self.string(out, key);
        self.string(out, value);
    }

    /// A lock as a module value: the module id, then opcode-tagged fields (the fence, the
    /// lock-delay deadline, the semaphore limit (0 for a lock), the holder count, each holder's owner, token, fence, shared flag, depth, permits, deadline and
    /// session), then EOF, the layout Redis's module API (`RedisModule_Save*`) writes.
    fn lock(&mut self, out: &mut Vec<u8>, l: &LockValue) {
        use super::module_opcodes::{EOF, STRING, UINT};
        let uint = |out: &mut Vec<u8>, v: u64| {
            write_len(out, UINT);
            write_len(out, v);
        };
        write_len(out, super::BASALT_LK_MODULE_ID);
        uint(out, l.fence());
        uint(out, l.delay_until());
        uint(out, u64::from(l.limit()));
        uint(out, l.holders().len() as u64);
        for h in l.holders() {
            write_len(out, STRING);
            self.string(out, &h.owner);
            write_len(out, STRING);
            self.string(out, &h.token);
            uint(out, h.fence);
            uint(out, u64::from(h.shared));
            uint(out, u64::from(h.count));
            uint(out, u64::from(h.permits));
            uint(out, h.expire_at);
            uint(out, h.session);
        }
        if l.is_election() {
            // The election section: a marker, then each holder's proclaimed value.
            uint(out, 1);
            for h in l.holders() {
                write_len(out, STRING);
                self.string(out, &h.value);
            }
        }
        write_len(out, EOF);
    }

    fn body(&mut self, out: &mut Vec<u8>, v: ValueRef<'_>) {
        let v = match v {
            // Strings are written from their bytes (or integer) where they are stored:
            // saving many string keys allocates nothing per key.
            ValueRef::Str(StrRef::Int(i)) => return self.int_string(out, i),
            ValueRef::Str(StrRef::Embstr(b) | StrRef::Raw(b)) => return self.string(out, b),
            ValueRef::Other(v) => v,
        };
        match v {
            Value::Stream(s) => super::stream::write(self, out, s),
            // A module value (RDB_TYPE_MODULE_2): the module type id, each word as an
            // unsigned-integer opcode, then EOF.
            Value::RateLimit(r) => {
                use super::module_opcodes;
                write_len(out, super::BASALT_RL_MODULE_ID);
                for w in r.to_words() {
                    write_len(out, module_opcodes::UINT);
                    write_len(out, w as u64);
                }
                write_len(out, module_opcodes::EOF);
            }
            Value::Lock(l) => self.lock(out, l),
            // One string: the queue's own byte form (`QueueValue::to_bytes`).
            Value::Queue(q) => {
                use super::module_opcodes::{EOF, STRING};
                write_len(out, super::BASALT_JQ_MODULE_ID);
                write_len(out, STRING);
                self.string(out, &q.to_bytes());
                write_len(out, EOF);
            }
            Value::Str(s) => self.body(out, ValueRef::Str(s.view())),
            Value::List(l) => self.list(out, l),
            Value::Hash(h) => {
                if h.encoding() == "listpack" {
                    let mut lp = ListpackWriter::new();
                    h.for_each(|k, v| {
                        lp.push(k);
                        lp.push(v);
                    });
                    let bytes = lp.finish();
                    self.string(out, &bytes);
                } else {
                    write_len(out, h.len() as u64);
                    h.for_each(|k, v| {
                        self.string(out, k);
                        self.string(out, v);
                    });
                }
            }
            Value::Set(s) => {
                if s.encoding() == "intset" {
                    let mut ints = Vec::with_capacity(s.len());
                    s.for_each(|m| {
                        if let Member::Int(i) = m {
                            ints.push(i);
                        }
                    });
                    let bytes = intset_bytes(&ints);
                    self.string(out, &bytes);
                } else {
                    write_len(out, s.len() as u64);
                    s.for_each(|m| match m {
                        Member::Int(i) => self.int_string(out, i),
                        Member::Bytes(b) => self.string(out, b),
                    });
                }
            }
            Value::ZSet(z) => {
                if z.encoding() == "listpack" {
                    let mut lp = ListpackWriter::new();
                    let mut text = Vec::with_capacity(32);
                    z.walk(0, false, |m, score| {
                        lp.push(m);
                        text.clear();
                        score_text(score, &mut text);
                        lp.push(&text);
                        true
                    });
                    let bytes = lp.finish();
                    self.string(out, &bytes);
                } else {
                    write_len(out, z.len() as u64);
                    // Highest first, as Redis walks the skiplist from its tail.
                    let n = z.len();
                    if n > 0 {
                        z.walk(n - 1, true, |m, score| {
                            self.string(out, m);
                            out.extend_from_slice(&score.to_le_bytes());
                            true
                        });
                    }
                }
            }
        }
    }

    fn list(&mut self, out: &mut Vec<u8>, l: &basalt_engine::types::ListValue) {
        // First pass: where Redis would cut the nodes (count of elements per node, and
        // whether the node is a plain one).
        let fill = self.opts.list_fill;
        let mut nodes: Vec<(usize, bool)> = Vec::new();
        let mut cur: Option<(usize, usize)> = None; // (bytes, count)
        for e in l.iter() {
            let sz = elem_str_len(&e);
            if sz >= PACKED_THRESHOLD {
                if let Some((_, c)) = cur.take() {
                    nodes.push((c, false));
                }
                nodes.push((1, true));
                continue;
            }
            let grow = lp_entry_size(&e);
            match &mut cur {
                Some((bytes, count)) if node_allows(*bytes, *count, sz, fill) => {
                    *bytes += grow;
                    *count += 1;
                }
                _ => {
                    if let Some((_, c)) = cur.take() {
                        nodes.push((c, false));
                    }
                    // An empty listpack is 7 bytes.
                    cur = Some((7 + grow, 1));
                }
            }
        }
        if let Some((_, c)) = cur {
            nodes.push((c, false));
        }
        write_len(out, nodes.len() as u64);
        let mut it = l.iter();
        for (count, plain) in nodes {
            if plain {
                write_len(out, QUICKLIST_NODE_PLAIN);
                if let Some(e) = it.next() {
                    let bytes = ListElem::to_bytes(&e);
                    self.string(out, &bytes);
                }
                continue;
            }
            write_len(out, QUICKLIST_NODE_PACKED);
            let mut lp = ListpackWriter::new();
            for e in it.by_ref().take(count) {
                match e {
                    ListElem::Int(i) => lp.push_int(i),
                    ListElem::Str(s) => lp.push(s),
                }
            }
            let bytes = lp.finish();
            self.string(out, &bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_use_the_shortest_form() {
        let mut out = Vec::new();
        write_len(&mut out, 63);
        write_len(&mut out, 64);
        write_len(&mut out, 16384);
        assert_eq!(out, [63, 0x40, 64, 0x80, 0, 0, 0x40, 0]);
    }

    #[test]
    fn strings_as_redis_saves_them() {
        let mut e = Encoder::new(EncodeOptions::default());
        let mut out = Vec::new();
        e.string(&mut out, b"12");
        assert_eq!(out, [0xc0, 12]);
        out.clear();
        e.string(&mut out, b"-300");
        assert_eq!(out, [0xc1, 0xd4, 0xfe]);
        out.clear();
        e.string(&mut out, b"012");
        assert_eq!(out, [3, b'0', b'1', b'2']);
        out.clear();
        e.string(&mut out, &[b'x'; 40]);
        assert_eq!(out[0], 0xc3, "40 equal bytes compress");
    }

    #[test]
    fn scores_as_d2string() {
        let t = |v: f64| {
            let mut o = Vec::new();
            score_text(v, &mut o);
            String::from_utf8(o).unwrap()
        };
        assert_eq!(t(1.0), "1");
        assert_eq!(t(-0.0), "0");
        assert_eq!(t(1.5), "1.5");
        assert_eq!(t(0.1), "0.10000000000000001");
        assert_eq!(t(f64::INFINITY), "inf");
        assert_eq!(t(f64::NEG_INFINITY), "-inf");
        assert_eq!(t(1e20), "1e+20");
    }
}
