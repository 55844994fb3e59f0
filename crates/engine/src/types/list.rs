//! The list value type: a deque of packed nodes, Basalt's counterpart of Redis's
//! quicklist.
//!
//! Redis 7.0 stores every list as a quicklist (a linked list of listpacks) and answers
//! `OBJECT ENCODING` with `quicklist` whatever the size (the `listpack` encoding for small
//! lists arrived in 7.2; this was checked on redis-server 7.0.15). Basalt keeps the same
//! idea with its own layout:
//!
//! - A list is a `VecDeque` of nodes; a small list is a single node, so the compact small
//!   encoding and the large one are the same structure seen at different sizes.
//! - A node is one byte buffer holding its elements back to back. Each entry is a forward
//!   varint header (string length, or a zigzag integer for canonical integers such as
//!   `"42"`), the string bytes, and a reversed varint "back length" so the node can be
//!   walked from either end. A three-byte string costs five bytes, a small integer two.
//! - Free space is kept at both ends of a node's buffer (a gap buffer), so pushing and
//!   popping at either end of the list is amortized O(1) without shifting the node.
//! - Nodes are bounded by `list-max-listpack-size` (negative: 4..64 KiB of entries,
//!   positive: an entry count), which is fixed when the list is created, as in Redis. A
//!   node that stops being an end node is shrunk to its exact size.
//!
//! Indexing walks node counts from the nearer end of the list and then entries from the
//! nearer end of the node: O(nodes + node size), never worse than Redis's O(n).

use crate::encoding::EncodingLimits;
use crate::num::parse_i64;
use bytes::Bytes;
use std::collections::VecDeque;
use std::fmt;

/// Node byte limits for `list-max-listpack-size` -1 .. -5.
const SIZE_CLASSES: [usize; 5] = [4096, 8192, 16384, 32768, 65536];

/// Largest node (in bytes) when the limit is an entry count, as Redis's safety limit.
const SAFETY_LIMIT: usize = 8192;

/// Which end of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The head (left, index 0).
    Head,
    /// The tail (right, index -1).
    Tail,
}

/// One element as stored: string bytes, or an integer kept in binary form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListElem<'a> {
    /// Bytes that are not a canonical integer (or too large for the integer form).
    Str(&'a [u8]),
    /// A canonical integer string such as `-17`.
    Int(i64),
}

impl ListElem<'_> {
    /// The element's bytes as a new buffer.
    pub fn to_bytes(&self) -> Bytes {
        self.with_bytes(Bytes::copy_from_slice)
    }

    /// Calls `f` with the element's bytes (an integer formatted on the stack).
    pub fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            ListElem::Str(s) => f(s),
            ListElem::Int(i) => f(itoa::Buffer::new().format(*i).as_bytes()),
        }
    }

    /// True if the element's bytes equal `v`.
    pub fn matches(&self, v: &[u8]) -> bool {
        match self {
            ListElem::Str(s) => crate::bytecmp::eq(s, v),
            // Only canonical integer strings are stored as integers, and a canonical
            // string is the only spelling of its value.
            ListElem::Int(i) => v.len() <= 20 && parse_i64(v) == Some(*i),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Entry encoding
// ---------------------------------------------------------------------------------------

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Writes `v` as a forward LEB128 varint at the start of `out`; returns its length.
fn put_varint(out: &mut [u8], mut v: u64) -> usize {
    let mut i = 0;
    while v >= 0x80 {
        out[i] = (v as u8 & 0x7f) | 0x80;
        v >>= 7;
        i += 1;
    }
    out[i] = v as u8;
    i + 1
}

/// Reads a forward varint at `pos`: (value, length).
fn get_varint(buf: &[u8], pos: usize) -> (u64, usize) {
    let mut v = 0u64;
    let mut shift = 0;
    let mut i = pos;
    loop {
        let b = buf[i];
        v |= u64::from(b & 0x7f) << shift;
        i += 1;
        if b & 0x80 == 0 {
            return (v, i - pos);
        }
        shift += 7;
    }
}

/// Writes `v` as a reversed varint filling `out` exactly (`out.len() == varint_len(v)`):
/// the last byte holds the lowest seven bits, and every byte but the first has its high
/// bit set to say "more bytes before me", so it can be read backwards from its end.
fn put_backlen(out: &mut [u8], mut v: u64) {
    let n = out.len();
    for (k, slot) in out.iter_mut().rev().enumerate() {
        let more = if k + 1 < n { 0x80 } else { 0 };
        *slot = (v as u8 & 0x7f) | more;
        v >>= 7;
    }
}

/// Reads a reversed varint ending at `end` (exclusive): (value, length).
fn get_backlen(buf: &[u8], end: usize) -> (u64, usize) {
    let mut v = 0u64;
    let mut shift = 0;
    let mut i = end;
    loop {
        i -= 1;
        let b = buf[i];
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return (v, end - i);
        }
        shift += 7;
    }
}

/// An element prepared for storing: its header value, string bytes and total size.
struct Encoded<'a> {
    header: u64,
    payload: &'a [u8],
    size: usize,
}

impl<'a> Encoded<'a> {
    fn new(v: &'a [u8]) -> Encoded<'a> {
        let (header, payload) = match parse_i64(v).map(zigzag) {
            // The header keeps one bit for the kind, so the zigzag value must leave it.
            Some(z) if z < 1 << 63 => ((z << 1) | 1, &v[..0]),
            _ => ((v.len() as u64) << 1, v),
        };
        let body = varint_len(header) + payload.len();
        Encoded {
            header,
            payload,
            size: body + varint_len(body as u64),
        }
    }

    fn write(&self, out: &mut [u8]) {
        debug_assert_eq!(out.len(), self.size);
        let h = put_varint(out, self.header);
        let body = h + self.payload.len();
        out[h..body].copy_from_slice(self.payload);
        put_backlen(&mut out[body..], body as u64);
    }
}

/// Decodes the entry starting at `pos`: the element and where the next entry starts.
fn decode(buf: &[u8], pos: usize) -> (ListElem<'_>, usize) {
    let (h, n) = get_varint(buf, pos);
    let (elem, body) = if h & 1 == 1 {
        (ListElem::Int(unzigzag(h >> 1)), n)
    } else {
        let len = (h >> 1) as usize;
        (ListElem::Str(&buf[pos + n..pos + n + len]), n + len)
    };
    (elem, pos + body + varint_len(body as u64))
}

/// Start of the entry that ends at `end`.
fn entry_start(buf: &[u8], end: usize) -> usize {
    let (body, n) = get_backlen(buf, end);
    end - n - body as usize
}

// ---------------------------------------------------------------------------------------
// Nodes
// ---------------------------------------------------------------------------------------

// Bytes copied while re-laying out nodes (tests check it stays proportional to the
// bytes pushed, i.e. pushes are amortized O(1)).
#[cfg(test)]
thread_local! {
    static MOVED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[inline]
fn note_moved(_bytes: usize) {
    #[cfg(test)]
    MOVED.with(|m| m.set(m.get() + _bytes));
}

/// A packed run of entries: `buf[start..end]` is live, the rest is free space.
#[derive(Clone)]
struct Node {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    count: usize,
}

impl Node {
    /// A node holding exactly `bytes` (whole entries, `count` of them).
    fn from_bytes(bytes: &[u8], count: usize) -> Node {
        Node {
            buf: bytes.into(),
            start: 0,
            end: bytes.len(),
            count,
        }
    }

    fn live(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn bytes(&self) -> usize {
        self.end - self.start
    }

    /// Moves the live bytes into a new buffer of `cap` bytes at offset `at`.
    fn relocate(&mut self, cap: usize, at: usize) {
        let live = self.bytes();
        debug_assert!(at + live <= cap);
        let mut buf = vec![0u8; cap].into_boxed_slice();
        buf[at..at + live].copy_from_slice(self.live());
        note_moved(live);
        self.buf = buf;
        self.start = at;
        self.end = at + live;
    }

    /// Makes room for `need` bytes at the front (`front`) or the back. Growth doubles
    /// (bounded by `max` when that is larger than what is needed), and a buffer with
    /// enough free space on the wrong side is re-centred instead, so a run of pushes
    /// costs amortized O(1) per byte.
    fn reserve(&mut self, need: usize, front: bool, max: usize) {
        let room = if front {
            self.start
        } else {
            self.buf.len() - self.end
        };
        if room >= need {
            return;
        }
        let live = self.bytes();
        let free = self.buf.len() - live;
        if free >= need + live / 4 {
            let spare = (free - need) / 2;
            let at = if front { need + spare } else { spare };
            self.buf.copy_within(self.start..self.end, at);
            note_moved(live);
            self.start = at;
            self.end = at + live;
            return;
        }
        let required = live + need;
        let cap = (required * 2).min(max.max(required)).max(required);
        let at = if front { cap - live } else { 0 };
        self.relocate(cap, at);
    }

    /// Drops the free space (a node that is no longer at an end of the list).
    fn shrink(&mut self) {
        if self.buf.len() != self.bytes() {
            self.relocate(self.bytes(), 0);
        }
    }

    fn push(&mut self, e: &Encoded<'_>, end: End, max: usize) {
        match end {
            End::Head => {
                self.reserve(e.size, true, max);
                let at = self.start - e.size;
                e.write(&mut self.buf[at..self.start]);
                self.start = at;
            }
            End::Tail => {
                self.reserve(e.size, false, max);
                let at = self.end;
                e.write(&mut self.buf[at..at + e.size]);
                self.end = at + e.size;
            }
        }
        self.count += 1;
    }

    /// Removes the entry at the given end and returns its bytes.
    fn pop(&mut self, end: End) -> Bytes {
        debug_assert!(self.count > 0);
        self.count -= 1;
        match end {
            End::Head => {
                let (elem, next) = decode(&self.buf, self.start);
                let out = elem.to_bytes();
                self.start = next;
                out
            }
            End::Tail => {
                let at = entry_start(&self.buf, self.end);
                let out = decode(&self.buf, at).0.to_bytes();
                self.end = at;
                out
            }
        }
    }

    /// Byte offset of the `i`th entry, walking from the nearer end.
    fn offset_of(&self, i: usize) -> usize {
        debug_assert!(i < self.count);
        if i <= self.count / 2 {
            let mut pos = self.start;
            for _ in 0..i {
                pos = decode(&self.buf, pos).1;
            }
            pos
        } else {
            let mut pos = self.end;
            for _ in 0..self.count - i {
                pos = entry_start(&self.buf, pos);
            }
            pos
        }
    }

    /// Replaces `buf[a..b]` (whole entries) with `ins`, changing the count by
    /// `count_delta`. Reallocates to the exact size when the buffer is too small.
    fn splice(&mut self, a: usize, b: usize, ins: &[u8], added: usize, removed: usize) {
        debug_assert!(self.start <= a && a <= b && b <= self.end);
        let new_live = self.bytes() - (b - a) + ins.len();
        if new_live <= self.buf.len() && self.start + new_live <= self.buf.len() {
            // Shift the tail part in place.
            let tail_len = self.end - b;
            self.buf.copy_within(b..self.end, a + ins.len());
            self.buf[a..a + ins.len()].copy_from_slice(ins);
            self.end = a + ins.len() + tail_len;
        } else {
            let mut buf = Vec::with_capacity(new_live);
            buf.extend_from_slice(&self.buf[self.start..a]);
            buf.extend_from_slice(ins);
            buf.extend_from_slice(&self.buf[b..self.end]);
            self.buf = buf.into_boxed_slice();
            self.start = 0;
            self.end = new_live;
        }
        self.count = self.count + added - removed;
    }

    /// Splits off the second half (by bytes, at an entry boundary) as a new exact-size
    /// node; this node is shrunk to its first half.
    fn split(&mut self) -> Node {
        debug_assert!(self.count >= 2);
        let half = self.start + self.bytes() / 2;
        let mut pos = self.start;
        let mut taken = 0;
        // Keep at least one entry on each side.
        while taken < self.count - 1 {
            let next = decode(&self.buf, pos).1;
            if taken > 0 && next > half {
                break;
            }
            pos = next;
            taken += 1;
        }
        let right = Node::from_bytes(&self.buf[pos..self.end], self.count - taken);
        self.end = pos;
        self.count = taken;
        self.shrink();
        right
    }
}

/// Node size policy derived from `list-max-listpack-size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fill(i16);

impl Fill {
    fn from_limits(lim: &EncodingLimits) -> Fill {
        Fill(lim.list_max_listpack_size.clamp(-5, i64::from(i16::MAX)) as i16)
    }

    /// Largest node in bytes.
    fn max_bytes(self) -> usize {
        if self.0 < 0 {
            SIZE_CLASSES[(-self.0) as usize - 1]
        } else {
            SAFETY_LIMIT
        }
    }

    /// True if a node may hold `count` entries in `bytes` bytes.
    fn allows(self, count: usize, bytes: usize) -> bool {
        if self.0 < 0 {
            bytes <= self.max_bytes()
        } else {
            count <= usize::from(self.0.max(1) as u16) && bytes <= SAFETY_LIMIT
        }
    }
}

// ---------------------------------------------------------------------------------------
// The list
// ---------------------------------------------------------------------------------------

/// A list value.
#[derive(Clone)]
pub struct ListValue {
    nodes: VecDeque<Node>,
    len: usize,
    /// Sum of the node buffers' sizes, kept up to date so `heap_size` is O(1).
    alloc: usize,
    fill: Fill,
}

impl Default for ListValue {
    fn default() -> Self {
        ListValue::new(&EncodingLimits::default())
    }
}

impl PartialEq for ListValue {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl fmt::Debug for ListValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl ListValue {
    /// An empty list whose nodes follow `list-max-listpack-size` from `lim` (fixed for
    /// the list's lifetime, as Redis does).
    pub fn new(lim: &EncodingLimits) -> ListValue {
        ListValue {
            nodes: VecDeque::new(),
            len: 0,
            alloc: 0,
            fill: Fill::from_limits(lim),
        }
    }

    /// A list of `items` in order.
    pub fn from_elements<I, T>(items: I, lim: &EncodingLimits) -> ListValue
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let mut l = ListValue::new(lim);
        for it in items {
            l.push(End::Tail, it.as_ref());
        }
        l
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty (an empty collection is deleted from the keyspace).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Redis's `OBJECT ENCODING` name: Redis 7.0 reports `quicklist` for every list.
    pub fn encoding(&self) -> &'static str {
        "quicklist"
    }

    /// Approximate heap bytes held.
    pub fn heap_size(&self) -> usize {
        self.alloc + self.nodes.capacity() * std::mem::size_of::<Node>()
    }

    /// Number of nodes (for tests and memory reports).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Runs `f` on node `i`, keeping the allocation total current.
    fn with_node<R>(&mut self, i: usize, f: impl FnOnce(&mut Node) -> R) -> R {
        let node = &mut self.nodes[i];
        let before = node.buf.len();
        let r = f(node);
        let after = node.buf.len();
        self.alloc = self.alloc + after - before;
        r
    }

    fn insert_node(&mut self, at: usize, node: Node) {
        self.alloc += node.buf.len();
        self.nodes.insert(at, node);
    }

    fn remove_node(&mut self, at: usize) {
        if let Some(n) = self.nodes.remove(at) {
            self.alloc -= n.buf.len();
        }
    }

    /// Adds an element at one end.
    pub fn push(&mut self, end: End, v: &[u8]) {
        let e = Encoded::new(v);
        let fill = self.fill;
        let idx = match end {
            End::Head => 0,
            End::Tail => self.nodes.len().wrapping_sub(1),
        };
        let fits = self
            .nodes
            .get(idx)
            .is_some_and(|n| fill.allows(n.count + 1, n.bytes() + e.size));
        if fits {
            self.with_node(idx, |n| n.push(&e, end, fill.max_bytes()));
        } else {
            if !self.nodes.is_empty() {
                // The old end node becomes an inner node: give back its free space.
                self.with_node(idx, Node::shrink);
            }
            let mut buf = vec![0u8; e.size];
            e.write(&mut buf);
            let node = Node::from_bytes(&buf, 1);
            match end {
                End::Head => self.insert_node(0, node),
                End::Tail => self.insert_node(self.nodes.len(), node),
            }
        }
        self.len += 1;
    }

    /// Removes and returns the element at one end.
    pub fn pop(&mut self, end: End) -> Option<Bytes> {
        let idx = match end {
            End::Head => 0,
            End::Tail => self.nodes.len().checked_sub(1)?,
        };
        let out = self.nodes.get_mut(idx)?.pop(end);
        self.len -= 1;
        if self.nodes[idx].count == 0 {
            self.remove_node(idx);
        }
        Some(out)
    }

    /// Removes up to `n` elements from one end and returns them in pop order.
    pub fn pop_many(&mut self, end: End, n: usize) -> Vec<Bytes> {
        let n = n.min(self.len);
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            match self.pop(end) {
                Some(v) => out.push(v),
                None => break,
            }
        }
        out
    }

    /// The node holding element `index` and the element's position within it.
    fn locate(&self, index: usize) -> Option<(usize, usize)> {
        if index >= self.len {
            return None;
        }
        if index < self.len / 2 {
            let mut skipped = 0;
            for (i, n) in self.nodes.iter().enumerate() {
                if index < skipped + n.count {
                    return Some((i, index - skipped));
                }
                skipped += n.count;
            }
        } else {
            let mut after = self.len;
            for (i, n) in self.nodes.iter().enumerate().rev() {
                let first = after - n.count;
                if index >= first {
                    return Some((i, index - first));
                }
                after = first;
            }
        }
        None
    }

    /// The element at `index` (0-based from the head).
    pub fn get(&self, index: usize) -> Option<Bytes> {
        let (ni, local) = self.locate(index)?;
        let node = &self.nodes[ni];
        Some(decode(&node.buf, node.offset_of(local)).0.to_bytes())
    }

    /// Replaces the element at `index`; false if out of range.
    pub fn set(&mut self, index: usize, v: &[u8]) -> bool {
        let Some((ni, local)) = self.locate(index) else {
            return false;
        };
        let e = Encoded::new(v);
        let mut entry = vec![0u8; e.size];
        e.write(&mut entry);
        self.with_node(ni, |n| {
            let a = n.offset_of(local);
            let b = decode(&n.buf, a).1;
            n.splice(a, b, &entry, 1, 1);
        });
        self.rebalance(ni);
        true
    }

    /// Inserts `v` so that it ends up at `index` (`index == len` appends).
    pub fn insert(&mut self, index: usize, v: &[u8]) {
        if index == 0 {
            return self.push(End::Head, v);
        }
        if index >= self.len {
            return self.push(End::Tail, v);
        }
        let Some((ni, local)) = self.locate(index) else {
            return;
        };
        let e = Encoded::new(v);
        let mut entry = vec![0u8; e.size];
        e.write(&mut entry);
        self.with_node(ni, |n| {
            let a = n.offset_of(local);
            n.splice(a, a, &entry, 1, 0);
        });
        self.len += 1;
        self.rebalance(ni);
    }

    /// After node `ni` changed in the middle: splits it while it is over the limit and
    /// merges it with a neighbour when both fit in one node.
    fn rebalance(&mut self, ni: usize) {
        let fill = self.fill;
        // Nodes ni..=last are the pieces of the changed node.
        let (mut i, mut last) = (ni, ni);
        loop {
            let n = &self.nodes[i];
            if n.count >= 2 && !fill.allows(n.count, n.bytes()) {
                let right = self.with_node(i, Node::split);
                self.insert_node(i + 1, right);
                last += 1;
                // Re-check the left half; the right half comes next.
                continue;
            }
            if i == last {
                break;
            }
            i += 1;
        }
        self.merge_range(ni.saturating_sub(1), last + 1);
    }

    /// Merges adjacent nodes within `from..=to` (clamped) whose union fits a node.
    fn merge_range(&mut self, from: usize, to: usize) {
        let fill = self.fill;
        let mut i = from;
        while i + 1 < self.nodes.len() && i < to {
            let (a, b) = (&self.nodes[i], &self.nodes[i + 1]);
            if fill.allows(a.count + b.count, a.bytes() + b.bytes()) {
                let mut buf = Vec::with_capacity(a.bytes() + b.bytes());
                buf.extend_from_slice(a.live());
                buf.extend_from_slice(b.live());
                let merged = Node::from_bytes(&buf, a.count + b.count);
                self.remove_node(i + 1);
                self.remove_node(i);
                self.insert_node(i, merged);
            } else {
                i += 1;
            }
        }
    }

    /// Removes elements equal to `v`: all of them when `count` is 0, else up to `count`
    /// from the head (`count > 0`) or up to `-count` from the tail. Returns how many.
    pub fn remove_matching(&mut self, v: &[u8], count: i64) -> usize {
        let from_tail = count < 0;
        let mut quota = if count == 0 {
            usize::MAX
        } else {
            usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX)
        };
        let mut removed = 0;
        let order: Vec<usize> = if from_tail {
            (0..self.nodes.len()).rev().collect()
        } else {
            (0..self.nodes.len()).collect()
        };
        let mut touched = Vec::new();
        for ni in order {
            if quota == 0 {
                break;
            }
            // Entry ranges of this node to delete, in ascending order.
            let node = &self.nodes[ni];
            let mut spans: Vec<(usize, usize)> = Vec::new();
            let mut pos = node.start;
            while pos < node.end {
                let (elem, next) = decode(&node.buf, pos);
                if elem.matches(v) {
                    spans.push((pos, next));
                }
                pos = next;
            }
            if spans.is_empty() {
                continue;
            }
            if spans.len() > quota {
                if from_tail {
                    spans.drain(..spans.len() - quota);
                } else {
                    spans.truncate(quota);
                }
            }
            quota -= spans.len();
            removed += spans.len();
            touched.push(ni);
            self.with_node(ni, |n| {
                // Compact in place: copy the kept pieces down over the deleted entries.
                let mut write = spans[0].0;
                for (k, &(_, b)) in spans.iter().enumerate() {
                    let next_a = spans.get(k + 1).map_or(n.end, |s| s.0);
                    n.buf.copy_within(b..next_a, write);
                    write += next_a - b;
                }
                n.end = write;
                n.count -= spans.len();
            });
        }
        self.len -= removed;
        touched.sort_unstable();
        for &ni in touched.iter().rev() {
            if self.nodes[ni].count == 0 {
                self.remove_node(ni);
            }
        }
        if let (Some(&lo), Some(&hi)) = (touched.first(), touched.last()) {
            let lo = lo.saturating_sub(1);
            self.merge_range(lo, hi + 1);
        }
        removed
    }

    /// Removes `head` elements from the head and `tail` from the tail (LTRIM).
    pub fn trim(&mut self, head: usize, tail: usize) {
        if head.saturating_add(tail) >= self.len {
            self.clear();
            return;
        }
        let mut left = head;
        while left > 0 {
            let n = self.nodes[0].count;
            if n <= left {
                self.remove_node(0);
                self.len -= n;
                left -= n;
            } else {
                self.with_node(0, |node| {
                    let cut = node.offset_of(left);
                    node.start = cut;
                    node.count -= left;
                });
                self.len -= left;
                left = 0;
            }
        }
        let mut right = tail;
        while right > 0 {
            let last = self.nodes.len() - 1;
            let n = self.nodes[last].count;
            if n <= right {
                self.remove_node(last);
                self.len -= n;
                right -= n;
            } else {
                self.with_node(last, |node| {
                    let cut = node.offset_of(node.count - right);
                    node.end = cut;
                    node.count -= right;
                });
                self.len -= right;
                right = 0;
            }
        }
    }

    /// Removes every element.
    pub fn clear(&mut self) {
        self.nodes.clear();
        self.len = 0;
        self.alloc = 0;
    }

    /// Iterates from the head.
    pub fn iter(&self) -> Iter<'_> {
        self.iter_from(0)
    }

    /// Iterates from element `index` towards the tail.
    pub fn iter_from(&self, index: usize) -> Iter<'_> {
        match self.locate(index) {
            Some((ni, local)) => Iter {
                list: self,
                node: ni,
                pos: self.nodes[ni].offset_of(local),
                left: self.len - index,
            },
            None => Iter {
                list: self,
                node: self.nodes.len(),
                pos: 0,
                left: 0,
            },
        }
    }

    /// Iterates from the tail towards the head.
    pub fn iter_rev(&self) -> RevIter<'_> {
        RevIter {
            list: self,
            node: self.nodes.len(),
            pos: 0,
            left: self.len,
        }
    }

    /// Index (from the head) of the first element equal to `v`.
    pub fn position(&self, v: &[u8]) -> Option<usize> {
        self.iter().position(|e| e.matches(v))
    }
}

/// Forward iterator over a list's elements.
pub struct Iter<'a> {
    list: &'a ListValue,
    node: usize,
    pos: usize,
    left: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = ListElem<'a>;

    fn next(&mut self) -> Option<ListElem<'a>> {
        if self.left == 0 {
            return None;
        }
        let mut node = self.list.nodes.get(self.node)?;
        if self.pos >= node.end {
            self.node += 1;
            node = self.list.nodes.get(self.node)?;
            self.pos = node.start;
        }
        let (elem, next) = decode(&node.buf, self.pos);
        self.pos = next;
        self.left -= 1;
        Some(elem)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

/// Backward iterator over a list's elements (tail first).
pub struct RevIter<'a> {
    list: &'a ListValue,
    /// One past the current node; `pos` is the end of the next entry to yield.
    node: usize,
    pos: usize,
    left: usize,
}

impl<'a> Iterator for RevIter<'a> {
    type Item = ListElem<'a>;

    fn next(&mut self) -> Option<ListElem<'a>> {
        if self.left == 0 {
            return None;
        }
        let nodes = &self.list.nodes;
        if self.node == nodes.len() || self.pos <= nodes[self.node].start {
            self.node = self.node.checked_sub(1)?;
            self.pos = nodes[self.node].end;
        }
        let node = &nodes[self.node];
        let at = entry_start(&node.buf, self.pos);
        self.pos = at;
        self.left -= 1;
        Some(decode(&node.buf, at).0)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lim(fill: i64) -> EncodingLimits {
        EncodingLimits {
            list_max_listpack_size: fill,
            ..EncodingLimits::default()
        }
    }

    fn items(l: &ListValue) -> Vec<Vec<u8>> {
        l.iter().map(|e| e.to_bytes().to_vec()).collect()
    }

    fn check(l: &ListValue, model: &[Vec<u8>]) {
        assert_eq!(l.len(), model.len());
        assert_eq!(items(l), model, "forward");
        let mut back: Vec<Vec<u8>> = l.iter_rev().map(|e| e.to_bytes().to_vec()).collect();
        back.reverse();
        assert_eq!(back, model, "backward");
        assert_eq!(l.nodes.iter().map(|n| n.count).sum::<usize>(), l.len);
        assert_eq!(l.alloc, l.nodes.iter().map(|n| n.buf.len()).sum::<usize>());
        assert!(l.nodes.iter().all(|n| n.count > 0), "no empty nodes");
        for n in &l.nodes {
            assert!(
                n.count == 1 || l.fill.allows(n.count, n.bytes()),
                "node over its limit"
            );
        }
    }

    #[test]
    fn entry_round_trips() {
        for v in [
            &b""[..],
            b"a",
            b"0",
            b"-1",
            b"007",
            b"9223372036854775807",
            b"-9223372036854775808",
            b"4611686018427387904",
            b"-4611686018427387905",
            b"12345678901234567890123",
            &[b'x'; 300],
        ] {
            let e = Encoded::new(v);
            let mut buf = vec![0u8; e.size];
            e.write(&mut buf);
            let (elem, next) = decode(&buf, 0);
            assert_eq!(next, buf.len());
            assert_eq!(elem.to_bytes().as_ref(), v);
            assert!(elem.matches(v));
            assert_eq!(entry_start(&buf, buf.len()), 0);
        }
        assert!(matches!(decode(&[3, 1], 0).0, ListElem::Int(-1)));
        assert!(!ListElem::Int(7).matches(b"07"));
        assert!(!ListElem::Int(7).matches(b"+7"));
    }

    #[test]
    fn small_entries_are_compact() {
        assert_eq!(Encoded::new(b"xxx").size, 5);
        assert_eq!(Encoded::new(b"5").size, 2);
        assert_eq!(Encoded::new(b"1000000").size, 5);
        assert_eq!(Encoded::new(&[b'a'; 200]).size, 204);
    }

    #[test]
    fn reports_quicklist_like_redis_7_0() {
        let mut l = ListValue::default();
        l.push(End::Tail, b"a");
        assert_eq!(l.encoding(), "quicklist");
    }

    #[test]
    fn push_pop_both_ends_across_nodes() {
        let mut l = ListValue::new(&lim(4));
        let mut model = std::collections::VecDeque::new();
        for i in 0..100 {
            let v = format!("v{i}").into_bytes();
            if i % 3 == 0 {
                l.push(End::Head, &v);
                model.push_front(v);
            } else {
                l.push(End::Tail, &v);
                model.push_back(v);
            }
        }
        assert!(l.node_count() >= 25);
        check(&l, &model.iter().cloned().collect::<Vec<_>>());
        for i in 0..100 {
            let (got, want) = if i % 2 == 0 {
                (l.pop(End::Head), model.pop_front())
            } else {
                (l.pop(End::Tail), model.pop_back())
            };
            assert_eq!(got.map(|b| b.to_vec()), want);
        }
        assert!(l.is_empty());
        assert_eq!(l.node_count(), 0);
        assert_eq!(l.pop(End::Head), None);
        assert_eq!(
            l.heap_size(),
            l.nodes.capacity() * std::mem::size_of::<Node>()
        );
    }

    #[test]
    fn byte_limit_bounds_nodes() {
        let mut l = ListValue::new(&lim(-1));
        for _ in 0..1000 {
            l.push(End::Tail, &[b'z'; 100]);
        }
        assert!(l.nodes.iter().all(|n| n.bytes() <= 4096));
        assert!(l.node_count() >= 1000 * 102 / 4096);
        // A large element gets a node of its own.
        l.push(End::Head, &[b'q'; 10_000]);
        assert_eq!(l.nodes[0].count, 1);
        assert_eq!(l.get(0).map(|b| b.len()), Some(10_000));
    }

    #[test]
    fn index_set_insert_remove_trim() {
        let mut l = ListValue::from_elements(["a", "b", "c", "b", "1", "2"], &lim(2));
        assert_eq!(l.get(3).as_deref(), Some(&b"b"[..]));
        assert_eq!(l.get(6), None);
        assert!(l.set(4, b"x"));
        assert!(!l.set(6, b"x"));
        l.insert(1, b"ins");
        check(&l, &to_vecs(&["a", "ins", "b", "c", "b", "x", "2"]));
        assert_eq!(l.remove_matching(b"b", -1), 1);
        check(&l, &to_vecs(&["a", "ins", "b", "c", "x", "2"]));
        assert_eq!(l.remove_matching(b"nope", 0), 0);
        assert_eq!(l.position(b"c"), Some(3));
        l.trim(1, 2);
        check(&l, &to_vecs(&["ins", "b", "c"]));
        l.trim(3, 0);
        assert!(l.is_empty());
    }

    #[test]
    fn a_million_elements_stay_cheap() {
        const N: usize = 1_000_000;
        let mut l = ListValue::default();
        let mut pushed = 0;
        MOVED.with(|m| m.set(0));
        for i in 0..N {
            let v = format!("item:{i}");
            pushed += v.len();
            l.push(End::Tail, v.as_bytes());
        }
        // Pushes are amortized O(1): bytes re-laid out stay a small multiple of the
        // bytes pushed.
        let moved = MOVED.with(|m| m.get());
        assert!(
            moved <= 4 * pushed,
            "moved {moved} bytes for {pushed} pushed"
        );
        // Nodes are well filled (so index walks visit few nodes) and inner nodes carry
        // no free space (so memory stays close to the payload).
        let live: usize = l.nodes.iter().map(|n| n.bytes()).sum();
        assert!(
            l.node_count() <= live / 4096 + 2,
            "{} nodes",
            l.node_count()
        );
        assert!(l.alloc <= live + 2 * 8192, "alloc {} for {live}", l.alloc);
        assert!(l.heap_size() < 14 * N, "{} bytes", l.heap_size());
        // A queue at both ends of the big list: each step is O(1); an O(n) step would
        // make this loop run ~10^11 operations.
        MOVED.with(|m| m.set(0));
        for i in 0..200_000 {
            l.push(End::Head, format!("new:{i}").as_bytes());
            assert!(l.pop(End::Tail).is_some());
        }
        assert!(MOVED.with(|m| m.get()) <= 4 * 200_000 * 11);
        assert_eq!(l.len(), N);
        assert_eq!(l.get(0).as_deref(), Some(&b"new:199999"[..]));
        // The tail pops took item:800000.. item:999999.
        assert_eq!(l.get(N - 1).as_deref(), Some(&b"item:799999"[..]));
        assert_eq!(l.get(N / 2).as_deref(), Some(&b"item:300000"[..]));
        assert_eq!(l.get(200_000).as_deref(), Some(&b"item:0"[..]));
        assert_eq!(l.iter_from(N - 2).count(), 2);
        assert_eq!(
            l.iter_rev().next().map(|e| e.to_bytes()).as_deref(),
            Some(&b"item:799999"[..])
        );
    }

    fn to_vecs(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(bool, Vec<u8>),
        Pop(bool),
        Set(usize, Vec<u8>),
        Insert(usize, Vec<u8>),
        Remove(Vec<u8>, i64),
        Trim(usize, usize),
        Get(usize),
        IterFrom(usize),
    }

    fn value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => prop::sample::select(vec!["a", "b", "c", "0", "-5", "123456", "xyz"])
                .prop_map(|s| s.as_bytes().to_vec()),
            2 => (-1000i64..1000).prop_map(|i| i.to_string().into_bytes()),
            1 => prop::collection::vec(any::<u8>(), 0..40),
            1 => (0usize..700).prop_map(|n| vec![b'L'; n]),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (any::<bool>(), value()).prop_map(|(h, v)| Op::Push(h, v)),
            2 => any::<bool>().prop_map(Op::Pop),
            1 => (0usize..200, value()).prop_map(|(i, v)| Op::Set(i, v)),
            1 => (0usize..200, value()).prop_map(|(i, v)| Op::Insert(i, v)),
            1 => (value(), -3i64..3).prop_map(|(v, c)| Op::Remove(v, c)),
            1 => (0usize..8, 0usize..8).prop_map(|(h, t)| Op::Trim(h, t)),
            1 => (0usize..200).prop_map(Op::Get),
            1 => (0usize..200).prop_map(Op::IterFrom),
        ]
    }

    fn apply(l: &mut ListValue, m: &mut Vec<Vec<u8>>, op: &Op) {
        match op {
            Op::Push(head, v) => {
                if *head {
                    l.push(End::Head, v);
                    m.insert(0, v.clone());
                } else {
                    l.push(End::Tail, v);
                    m.push(v.clone());
                }
            }
            Op::Pop(head) => {
                let (got, want) = if *head {
                    (l.pop(End::Head), (!m.is_empty()).then(|| m.remove(0)))
                } else {
                    (l.pop(End::Tail), m.pop())
                };
                assert_eq!(got.map(|b| b.to_vec()), want);
            }
            Op::Set(i, v) => {
                let ok = l.set(*i, v);
                assert_eq!(ok, *i < m.len());
                if ok {
                    m[*i] = v.clone();
                }
            }
            Op::Insert(i, v) => {
                let i = (*i).min(m.len());
                l.insert(i, v);
                m.insert(i, v.clone());
            }
            Op::Remove(v, c) => {
                let n = l.remove_matching(v, *c);
                let mut want = 0;
                let quota = if *c == 0 {
                    usize::MAX
                } else {
                    c.unsigned_abs() as usize
                };
                if *c < 0 {
                    let mut k = m.len();
                    while k > 0 && want < quota {
                        k -= 1;
                        if m[k] == *v {
                            m.remove(k);
                            want += 1;
                        }
                    }
                } else {
                    let mut k = 0;
                    while k < m.len() && want < quota {
                        if m[k] == *v {
                            m.remove(k);
                            want += 1;
                        } else {
                            k += 1;
                        }
                    }
                }
                assert_eq!(n, want);
            }
            Op::Trim(h, t) => {
                l.trim(*h, *t);
                if h + t >= m.len() {
                    m.clear();
                } else {
                    m.truncate(m.len() - t);
                    m.drain(..*h);
                }
            }
            Op::Get(i) => {
                assert_eq!(l.get(*i).map(|b| b.to_vec()), m.get(*i).cloned());
            }
            Op::IterFrom(i) => {
                let got: Vec<Vec<u8>> = l.iter_from(*i).map(|e| e.to_bytes().to_vec()).collect();
                let want: Vec<Vec<u8>> = m.iter().skip(*i).cloned().collect();
                assert_eq!(got, want);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn behaves_like_a_vec(fill in prop::sample::select(vec![-1i64, -2, 1, 3, 16]),
                              ops in prop::collection::vec(op(), 1..250)) {
            let mut l = ListValue::new(&lim(fill));
            let mut m: Vec<Vec<u8>> = Vec::new();
            for o in &ops {
                apply(&mut l, &mut m, o);
                check(&l, &m);
            }
            let copy = l.clone();
            prop_assert_eq!(copy, l);
        }
    }
}
