//! The stream value type (`TYPE` → `stream`, `OBJECT ENCODING` → `stream`).
//!
//! Entries live in [`Node`]s, packed blocks of consecutive entries with delta-encoded
//! IDs and shared field names, kept in a `BTreeMap` keyed by each node's master ID (the
//! ID of its first entry): the same shape as Redis's radix tree of listpacks, and split
//! at the same entries (`stream-node-max-bytes`, `stream-node-max-entries`, passed in
//! through [`EncodingLimits`]), so that approximate trimming removes exactly the entries
//! Redis removes.
//!
//! Consumer groups ([`Group`]) hold their pending entries list (PEL) and consumers; the
//! counters Redis 7.0 keeps for lag (`entries-added`, `max-deleted-entry-id`,
//! `recorded-first-entry-id`, a group's `entries-read`) are kept and computed as Redis
//! does. Everything a snapshot needs is readable: [`StreamValue::nodes`] (or
//! [`StreamValue::range`]), [`StreamValue::groups`], and the metadata accessors.
//!
//! The engine reads no clock: every time (delivery times, consumer seen times) is passed
//! in by the caller.

mod group;
mod node;
mod rax;

pub use group::{ClaimOptions, Consumer, Group, Nack};
pub use node::{FLAG_DELETED, FLAG_SAMEFIELDS, FieldIter, Node, RawEntry};

use crate::encoding::EncodingLimits;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Weak};

/// A stream entry ID, `<ms>-<seq>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    /// Milliseconds part.
    pub ms: u64,
    /// Sequence part.
    pub seq: u64,
}

impl StreamId {
    /// `0-0`.
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    /// The largest ID.
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    /// An ID from its parts.
    pub const fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    /// The next ID (Redis's `streamIncrID`); `None` after the last one.
    pub fn incr(self) -> Option<StreamId> {
        if self.seq == u64::MAX {
            if self.ms == u64::MAX {
                None
            } else {
                Some(StreamId::new(self.ms + 1, 0))
            }
        } else {
            Some(StreamId::new(self.ms, self.seq + 1))
        }
    }

    /// The previous ID (Redis's `streamDecrID`); `None` before `0-0`.
    pub fn decr(self) -> Option<StreamId> {
        if self.seq == 0 {
            if self.ms == 0 {
                None
            } else {
                Some(StreamId::new(self.ms - 1, u64::MAX))
            }
        } else {
            Some(StreamId::new(self.ms, self.seq - 1))
        }
    }

    /// True for `0-0`.
    pub fn is_zero(self) -> bool {
        self == StreamId::MIN
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// A parsed ID argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedId {
    /// The ID.
    pub id: StreamId,
    /// False for the `<ms>-*` form (XADD picks the sequence).
    pub seq_given: bool,
}

/// Parses a stream ID argument as Redis's `streamGenericParseIDOrReply`: `-` and `+`
/// (unless `strict`), `<ms>` (sequence `missing_seq`), `<ms>-<seq>`, and with
/// `allow_star_seq` the `<ms>-*` form. The numbers are read like C's `strtoull`.
pub fn parse_id(
    arg: &[u8],
    missing_seq: u64,
    strict: bool,
    allow_star_seq: bool,
) -> Option<ParsedId> {
    if arg.len() > 127 {
        return None;
    }
    // Redis copies the argument into a C string: it ends at the first NUL.
    let arg = match arg.iter().position(|&b| b == 0) {
        Some(i) => &arg[..i],
        None => arg,
    };
    let given = |id| {
        Some(ParsedId {
            id,
            seq_given: true,
        })
    };
    match arg {
        b"-" if !strict => return given(StreamId::MIN),
        b"+" if !strict => return given(StreamId::MAX),
        b"-" | b"+" => return None,
        _ => {}
    }
    let (ms_part, seq_part) = match arg.iter().position(|&b| b == b'-') {
        Some(i) => (&arg[..i], Some(&arg[i + 1..])),
        None => (arg, None),
    };
    let ms = strtoull(ms_part)?;
    match seq_part {
        None => given(StreamId::new(ms, missing_seq)),
        Some(b"*") if allow_star_seq => Some(ParsedId {
            id: StreamId::new(ms, 0),
            seq_given: false,
        }),
        Some(s) => given(StreamId::new(ms, strtoull(s)?)),
    }
}

/// Redis's `string2ull`: a canonical non-negative integer, or else what `strtoull`
/// accepts in full (leading spaces, a sign, leading zeros; a `-` negates modulo 2^64).
fn strtoull(s: &[u8]) -> Option<u64> {
    if let Some(v) = crate::num::parse_i64(s) {
        return u64::try_from(v).ok();
    }
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r') {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        neg = s[i] == b'-';
        i += 1;
    }
    let digits = &s[i..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

/// How XADD picks the new entry's ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdRequest {
    /// `*`: from the clock, or the last ID's successor.
    Auto,
    /// `<ms>-*`: the given milliseconds with the next free sequence.
    AutoSeq(u64),
    /// An explicit ID.
    Exact(StreamId),
}

/// Why XADD could not add an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddError {
    /// The ID is not above the stream's last ID.
    IdTooSmall,
    /// The fields and values together exceed what a node may hold.
    TooLarge,
}

/// Largest total of field and value bytes one entry may have (Redis's
/// `STREAM_LISTPACK_MAX_SIZE`).
pub const MAX_ENTRY_BYTES: u64 = 1 << 30;

/// How XADD/XTRIM trim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrimStrategy {
    /// Keep at most this many entries.
    MaxLen(u64),
    /// Drop entries below this ID.
    MinId(StreamId),
}

/// A trimming request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trim {
    /// What to keep.
    pub strategy: TrimStrategy,
    /// `~`: only remove whole nodes.
    pub approx: bool,
    /// Most entries to remove (0: no limit).
    pub limit: u64,
}

/// One entry as iteration yields it.
#[derive(Clone, Copy)]
pub struct EntryRef<'a> {
    /// The entry's ID.
    pub id: StreamId,
    node: &'a Node,
    raw: RawEntry,
}

impl<'a> EntryRef<'a> {
    /// Field/value pairs in insertion order.
    pub fn fields(&self) -> FieldIter<'a> {
        self.node.fields(&self.raw)
    }

    /// Number of field/value pairs.
    pub fn field_count(&self) -> u64 {
        self.node.field_count(&self.raw)
    }
}

/// A callback run when a stream is dropped or moved away (blocked XREADGROUP clients
/// must then be told that their stream is gone).
pub type Watcher = dyn Fn() + Send + Sync;

/// Registered watchers; not cloned with the value and ignored by equality.
#[derive(Default)]
struct Watchers(Vec<Weak<Watcher>>);

impl Clone for Watchers {
    fn clone(&self) -> Self {
        Watchers(Vec::new())
    }
}

impl PartialEq for Watchers {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl fmt::Debug for Watchers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Watchers({})", self.0.len())
    }
}

/// The entries of a stream and the counters Redis keeps beside them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Log {
    nodes: BTreeMap<StreamId, Node>,
    length: u64,
    last_id: StreamId,
    first_id: StreamId,
    max_deleted_id: StreamId,
    entries_added: u64,
}

/// A stream.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamValue {
    log: Log,
    groups: BTreeMap<Box<[u8]>, Group>,
    watchers: Watchers,
}

impl Drop for StreamValue {
    fn drop(&mut self) {
        self.fire_watchers();
    }
}

/// Reverse-iteration state of one node.
struct RevNode<'a> {
    master: StreamId,
    node: &'a Node,
    offsets: Vec<usize>,
}

/// Iterator over live entries in an ID range (see [`Log::range`]).
pub struct RangeIter<'a> {
    nodes: Box<dyn Iterator<Item = (&'a StreamId, &'a Node)> + 'a>,
    rev: bool,
    start: StreamId,
    end: StreamId,
    /// Forward: current node and the offset of its next entry.
    fwd: Option<(StreamId, &'a Node, usize)>,
    /// Reverse: current node and its remaining offsets.
    back: Option<RevNode<'a>>,
    done: bool,
}

impl<'a> Iterator for RangeIter<'a> {
    type Item = EntryRef<'a>;

    fn next(&mut self) -> Option<EntryRef<'a>> {
        if self.done {
            return None;
        }
        loop {
            if self.rev {
                if let Some(cur) = &mut self.back {
                    while let Some(at) = cur.offsets.pop() {
                        let Some(raw) = cur.node.entry_at(cur.master, at) else {
                            continue;
                        };
                        if raw.id > self.end || raw.flags & node::FLAG_DELETED != 0 {
                            continue;
                        }
                        if raw.id < self.start {
                            self.done = true;
                            return None;
                        }
                        return Some(EntryRef {
                            id: raw.id,
                            node: cur.node,
                            raw,
                        });
                    }
                }
                let Some((&master, node)) = self.nodes.next() else {
                    self.done = true;
                    return None;
                };
                self.back = Some(RevNode {
                    master,
                    node,
                    offsets: node.offsets(master),
                });
            } else {
                if let Some((master, node, at)) = &mut self.fwd {
                    while let Some(raw) = node.entry_at(*master, *at) {
                        *at = raw.end;
                        if raw.id > self.end {
                            self.done = true;
                            return None;
                        }
                        if raw.id < self.start || raw.flags & node::FLAG_DELETED != 0 {
                            continue;
                        }
                        return Some(EntryRef {
                            id: raw.id,
                            node,
                            raw,
                        });
                    }
                }
                let Some((&master, node)) = self.nodes.next() else {
                    self.done = true;
                    return None;
                };
                if master > self.end {
                    self.done = true;
                    return None;
                }
                self.fwd = Some((master, node, node.first_offset()));
            }
        }
    }
}

impl Log {
    /// Live entries with IDs in `[start, end]`, ascending or (with `rev`) descending.
    pub fn range(&self, start: StreamId, end: StreamId, rev: bool) -> RangeIter<'_> {
        let nodes: Box<dyn Iterator<Item = (&StreamId, &Node)>> = if rev {
            Box::new(self.nodes.range(..=end).rev())
        } else {
            // Begin with the node that may hold `start`: the last one whose master ID
            // is not above it.
            let from = self
                .nodes
                .range(..=start)
                .next_back()
                .map(|(k, _)| *k)
                .unwrap_or(StreamId::MIN);
            Box::new(self.nodes.range(from..))
        };
        RangeIter {
            nodes,
            rev,
            start,
            end,
            fwd: None,
            back: None,
            done: start > end,
        }
    }

    /// The live entry with this ID.
    pub fn get(&self, id: StreamId) -> Option<EntryRef<'_>> {
        self.range(id, id, false).next()
    }

    /// True if a deleted entry may lie at or after `start` (Redis's
    /// `streamRangeHasTombstones` with an open end).
    fn has_tombstones_from(&self, start: StreamId) -> bool {
        if self.length == 0 || self.max_deleted_id.is_zero() {
            return false;
        }
        if self.first_id > self.max_deleted_id {
            return false;
        }
        start <= self.max_deleted_id
    }

    /// The number of entries added up to and including `id`, when it can be known
    /// (Redis's `streamEstimateDistanceFromFirstEverEntry`).
    pub fn estimate_distance(&self, id: StreamId) -> Option<u64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if self.length == 0 && id <= self.last_id {
            return Some(self.entries_added);
        }
        if id == self.last_id {
            return Some(self.entries_added);
        }
        if id > self.last_id {
            return None;
        }
        if self.max_deleted_id.is_zero() || self.max_deleted_id < self.first_id {
            if id < self.first_id {
                return Some(self.entries_added - self.length);
            }
            if id == self.first_id {
                return Some(self.entries_added - self.length + 1);
            }
        }
        None
    }

    /// Moves a group's last delivered ID to `id` after delivering it, keeping its
    /// `entries-read` as Redis does.
    fn advance(&self, g: &mut Group, id: StreamId) {
        if id <= g.last_id {
            return;
        }
        if g.entries_read >= 0 && !self.has_tombstones_from(id) {
            g.entries_read += 1;
        } else if self.entries_added > 0 {
            g.entries_read = self.estimate_distance(id).map_or(-1, |v| v as i64);
        }
        g.last_id = id;
    }
}

impl StreamValue {
    /// An empty stream.
    pub fn new() -> StreamValue {
        StreamValue::default()
    }

    /// The entries.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// Number of live entries.
    pub fn len(&self) -> u64 {
        self.log.length
    }

    /// True without live entries.
    pub fn is_empty(&self) -> bool {
        self.log.length == 0
    }

    /// The last ID ever generated (`last-generated-id`).
    pub fn last_id(&self) -> StreamId {
        self.log.last_id
    }

    /// The recorded first entry ID (`recorded-first-entry-id`).
    pub fn first_id(&self) -> StreamId {
        self.log.first_id
    }

    /// The largest ID removed by XDEL (`max-deleted-entry-id`).
    pub fn max_deleted_id(&self) -> StreamId {
        self.log.max_deleted_id
    }

    /// Entries ever added (`entries-added`).
    pub fn entries_added(&self) -> u64 {
        self.log.entries_added
    }

    /// The nodes, by master ID (for snapshots).
    pub fn nodes(&self) -> impl Iterator<Item = (StreamId, &Node)> {
        self.log.nodes.iter().map(|(k, v)| (*k, v))
    }

    /// Number of nodes (`radix-tree-keys`).
    pub fn node_count(&self) -> u64 {
        self.log.nodes.len() as u64
    }

    /// Nodes Redis's radix tree would have (`radix-tree-nodes`).
    pub fn rax_nodes(&self) -> u64 {
        let keys: Vec<StreamId> = self.log.nodes.keys().copied().collect();
        rax::node_count(&keys)
    }

    /// Sets the last ID and, when given, `entries-added` and `max-deleted-entry-id`
    /// (XSETID, snapshot loading).
    pub fn set_meta(
        &mut self,
        last_id: StreamId,
        entries_added: Option<u64>,
        max_deleted_id: Option<StreamId>,
    ) {
        self.log.last_id = last_id;
        if let Some(n) = entries_added {
            self.log.entries_added = n;
        }
        if let Some(m) = max_deleted_id {
            self.log.max_deleted_id = m;
        }
    }

    /// Sets the recorded first ID (snapshot loading).
    pub fn set_first_id(&mut self, id: StreamId) {
        self.log.first_id = id;
    }

    /// Adds a node rebuilt from a snapshot under its master ID, counting its live
    /// entries into the length. The caller guarantees the nodes arrive in ascending
    /// order with non-overlapping ID ranges (the loader checks it). False, with nothing
    /// changed, if a node with this master ID exists or the node holds no entry.
    pub fn restore_node(&mut self, master: StreamId, node: Node) -> bool {
        if node.total() == 0 || self.log.nodes.contains_key(&master) {
            return false;
        }
        self.log.length += u64::from(node.live);
        self.log.nodes.insert(master, node);
        true
    }

    /// Approximate heap bytes.
    pub fn heap_size(&self) -> usize {
        let nodes: usize = self.log.nodes.values().map(|n| n.heap_size() + 64).sum();
        let groups: usize = self.groups.values().map(Group::heap_size).sum();
        nodes + groups
    }

    /// Calls `w` when this stream is dropped or moved away; the stream keeps only a weak
    /// reference, so dropping the `Arc` unregisters it.
    pub fn watch(&mut self, w: &Arc<Watcher>) {
        self.watchers.0.retain(|x| x.strong_count() > 0);
        self.watchers.0.push(Arc::downgrade(w));
    }

    /// Runs and forgets every watcher (the key is going away: RENAME, MOVE, drop).
    pub fn fire_watchers(&mut self) {
        for w in std::mem::take(&mut self.watchers.0) {
            if let Some(f) = w.upgrade() {
                f();
            }
        }
    }

    /// Live entries with IDs in `[start, end]`, ascending or (with `rev`) descending.
    pub fn range(&self, start: StreamId, end: StreamId, rev: bool) -> RangeIter<'_> {
        self.log.range(start, end, rev)
    }

    /// The first live entry.
    pub fn first_entry(&self) -> Option<EntryRef<'_>> {
        self.range(StreamId::MIN, StreamId::MAX, false).next()
    }

    /// The last live entry.
    pub fn last_entry(&self) -> Option<EntryRef<'_>> {
        self.range(StreamId::MIN, StreamId::MAX, true).next()
    }

    /// The ID of the last live entry, `0-0` when empty (Redis's `streamLastValidID`).
    pub fn last_valid_id(&self) -> StreamId {
        self.last_entry().map_or(StreamId::MIN, |e| e.id)
    }

    /// True if a live entry has this ID.
    pub fn contains(&self, id: StreamId) -> bool {
        self.log.get(id).is_some()
    }

    /// Appends an entry (`pairs` are field/value pairs). `now` is the command's time in
    /// Unix milliseconds, used by [`IdRequest::Auto`].
    pub fn add(
        &mut self,
        req: IdRequest,
        pairs: &[(&[u8], &[u8])],
        now: u64,
        lim: &EncodingLimits,
    ) -> Result<StreamId, AddError> {
        let log = &mut self.log;
        let id = match req {
            IdRequest::Exact(id) => id,
            IdRequest::AutoSeq(ms) => {
                if log.last_id.ms == ms {
                    if log.last_id.seq == u64::MAX {
                        // Redis 7.0 reports this case with the "too large" error.
                        return Err(AddError::TooLarge);
                    }
                    StreamId::new(ms, log.last_id.seq + 1)
                } else {
                    StreamId::new(ms, 0)
                }
            }
            IdRequest::Auto => {
                if now > log.last_id.ms {
                    StreamId::new(now, 0)
                } else {
                    log.last_id.incr().unwrap_or(StreamId::MIN)
                }
            }
        };
        if id <= log.last_id {
            return Err(AddError::IdTooSmall);
        }
        let total: u64 = pairs.iter().map(|(f, v)| (f.len() + v.len()) as u64).sum();
        if total > MAX_ENTRY_BYTES {
            return Err(AddError::TooLarge);
        }
        let max_bytes = match lim.stream_node_max_bytes {
            0 => MAX_ENTRY_BYTES,
            b => b.min(MAX_ENTRY_BYTES),
        };
        let mut tail = log.nodes.iter_mut().next_back();
        if let Some((_, node)) = &mut tail {
            let full = node.lp_bytes() + total >= max_bytes
                || (lim.stream_node_max_entries > 0 && node.total() >= lim.stream_node_max_entries);
            if full {
                node.shrink();
                tail = None;
            }
        }
        match tail {
            Some((&master, node)) => {
                node.push(master, id, pairs);
            }
            None => {
                let mut node = Node::new(pairs.iter().map(|(f, _)| *f));
                node.push(id, id, pairs);
                log.nodes.insert(id, node);
            }
        }
        log.length += 1;
        log.entries_added += 1;
        log.last_id = id;
        if log.length == 1 {
            log.first_id = id;
        }
        Ok(id)
    }

    /// Deletes one entry (XDEL). Returns false if no live entry has this ID. Keeps
    /// `max-deleted-entry-id` up to date; call [`StreamValue::after_delete`] once after
    /// a batch.
    pub fn delete(&mut self, id: StreamId) -> bool {
        let log = &mut self.log;
        let Some((&master, node)) = log.nodes.range_mut(..=id).next_back() else {
            return false;
        };
        let mut at = node.first_offset();
        let mut found = None;
        while let Some(raw) = node.entry_at(master, at) {
            if raw.id >= id {
                if raw.id == id && raw.flags & node::FLAG_DELETED == 0 {
                    found = Some(raw.at);
                }
                break;
            }
            at = raw.end;
        }
        let Some(at) = found else {
            return false;
        };
        if node.live == 1 {
            log.nodes.remove(&master);
        } else {
            node.mark_deleted(at);
        }
        log.length -= 1;
        if id > log.max_deleted_id {
            log.max_deleted_id = id;
        }
        true
    }

    /// After XDEL: refreshes the recorded first ID (`first_removed`: the recorded first
    /// entry was among the deleted ones).
    pub fn after_delete(&mut self, first_removed: bool) {
        if self.log.length == 0 {
            self.log.first_id = StreamId::MIN;
        } else if first_removed {
            self.log.first_id = self.first_entry().map_or(StreamId::MAX, |e| e.id);
        }
    }

    /// Trims the stream as Redis's `streamTrim`; returns the number of entries removed.
    pub fn trim(&mut self, t: &Trim) -> u64 {
        let log = &mut self.log;
        let mut deleted: u64 = 0;
        loop {
            if let TrimStrategy::MaxLen(max) = t.strategy
                && log.length <= max
            {
                break;
            }
            let Some((&master, node)) = log.nodes.iter_mut().next() else {
                break;
            };
            let entries = u64::from(node.live);
            if t.limit > 0 && deleted + entries > t.limit {
                break;
            }
            let remove_node = match t.strategy {
                TrimStrategy::MaxLen(max) => log.length - entries >= max,
                TrimStrategy::MinId(min) => node.last_id(master) < min,
            };
            if remove_node {
                log.nodes.remove(&master);
                log.length -= entries;
                deleted += entries;
                continue;
            }
            if t.approx {
                break;
            }
            // Flag entries of this node deleted, from its start.
            let mut at = node.first_offset();
            while let Some(raw) = node.entry_at(master, at) {
                let stop = match t.strategy {
                    TrimStrategy::MaxLen(max) => log.length <= max,
                    TrimStrategy::MinId(min) => raw.id >= min,
                };
                if stop {
                    break;
                }
                if node.mark_deleted(raw.at) {
                    log.length -= 1;
                    deleted += 1;
                }
                at = raw.end;
            }
            break;
        }
        if self.log.length == 0 {
            self.log.first_id = StreamId::MIN;
        } else if deleted > 0 {
            self.log.first_id = self.first_entry().map_or(StreamId::MAX, |e| e.id);
        }
        deleted
    }

    /// The number of entries added up to and including `id`, when it can be known.
    pub fn estimate_distance(&self, id: StreamId) -> Option<u64> {
        self.log.estimate_distance(id)
    }

    /// A group's lag (`None`: not computable, replied as null).
    pub fn lag(&self, g: &Group) -> Option<i64> {
        let log = &self.log;
        if log.entries_added == 0 {
            return Some(0);
        }
        if g.entries_read >= 0 && !log.has_tombstones_from(g.last_id) {
            return Some(log.entries_added as i64 - g.entries_read);
        }
        log.estimate_distance(g.last_id)
            .map(|read| log.entries_added as i64 - read as i64)
    }

    // -----------------------------------------------------------------------------------
    // Consumer groups
    // -----------------------------------------------------------------------------------

    /// The groups, by name.
    pub fn groups(&self) -> impl Iterator<Item = (&[u8], &Group)> {
        self.groups.iter().map(|(k, v)| (&**k, v))
    }

    /// Number of groups.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// A group by name.
    pub fn group(&self, name: &[u8]) -> Option<&Group> {
        self.groups.get(name)
    }

    /// A group by name, for changes.
    pub fn group_mut(&mut self, name: &[u8]) -> Option<&mut Group> {
        self.groups.get_mut(name)
    }

    /// Creates a group; false if one with this name exists.
    pub fn create_group(&mut self, name: &[u8], last_id: StreamId, entries_read: i64) -> bool {
        if self.groups.contains_key(name) {
            return false;
        }
        self.groups
            .insert(name.into(), Group::new(last_id, entries_read));
        true
    }

    /// Adds a restored group (snapshot loading).
    pub fn insert_group(&mut self, name: &[u8], g: Group) {
        self.groups.insert(name.into(), g);
    }

    /// Removes a group; false if there was none.
    pub fn destroy_group(&mut self, name: &[u8]) -> bool {
        self.groups.remove(name).is_some()
    }

    /// XREADGROUP with `>`: delivers up to `count` (0: all) entries after the group's
    /// last delivered ID to `consumer` (created if missing, only when there is something
    /// to deliver, as in Redis), adding them to the PELs unless `noack`. `emit` receives
    /// each delivered entry. Returns how many were delivered, or `None` if the group
    /// does not exist.
    pub fn read_group_new(
        &mut self,
        group: &[u8],
        consumer: &[u8],
        count: usize,
        noack: bool,
        now: u64,
        mut emit: impl FnMut(EntryRef<'_>),
    ) -> Option<usize> {
        let g = self.groups.get_mut(group)?;
        let Some(start) = g.last_id.incr() else {
            return Some(0);
        };
        let log = &self.log;
        let mut n = 0;
        for e in log.range(start, StreamId::MAX, false) {
            if count > 0 && n == count {
                break;
            }
            if n == 0 {
                g.touch_consumer(consumer, now);
            }
            log.advance(g, e.id);
            if !noack {
                g.deliver(e.id, consumer, now);
            }
            emit(e);
            n += 1;
        }
        Some(n)
    }

    /// XREADGROUP with an ID: the consumer's pending entries after `after`, up to `count`
    /// (0: all). Each is emitted with its entry, or `None` if the entry was deleted;
    /// delivered ones get a new delivery time and one more delivery. The consumer is
    /// created if missing. `None` if the group does not exist.
    pub fn read_group_history(
        &mut self,
        group: &[u8],
        consumer: &[u8],
        after: StreamId,
        count: usize,
        now: u64,
        mut emit: impl FnMut(StreamId, Option<EntryRef<'_>>),
    ) -> Option<usize> {
        let g = self.groups.get_mut(group)?;
        g.touch_consumer(consumer, now);
        let ids = match after.incr() {
            Some(start) => g.consumer_pending(consumer, start, count),
            None => Vec::new(),
        };
        for &id in &ids {
            match self.log.get(id) {
                Some(e) => {
                    g.redeliver(id, now);
                    emit(id, Some(e));
                }
                None => emit(id, None),
            }
        }
        Some(ids.len())
    }

    /// XCLAIM of `ids` for `consumer`, as Redis 7.0 does it: pending entries whose
    /// stream entry is gone are dropped from the PEL; the others (idle long enough, or
    /// created with FORCE) move to `consumer`. Emits each claimed ID with its entry
    /// (`None` with JUSTID). `None` if the group does not exist.
    pub fn claim(
        &mut self,
        group: &[u8],
        consumer: &[u8],
        ids: &[StreamId],
        opts: &ClaimOptions,
        now: u64,
        mut emit: impl FnMut(StreamId, Option<EntryRef<'_>>),
    ) -> Option<()> {
        let g = self.groups.get_mut(group)?;
        if let Some(last) = opts.last_id
            && last > g.last_id
        {
            g.last_id = last;
        }
        let delivery_time = match opts.delivery_time {
            Some(t) if t >= 0 && (t as u64) <= now => t as u64,
            _ => now,
        };
        let mut consumer_ready = false;
        for &id in ids {
            let Some(entry) = self.log.get(id) else {
                g.drop_pending(id);
                continue;
            };
            let known = g.pel().contains_key(&id);
            if !known && !opts.force {
                continue;
            }
            if known && !g.idle_enough(id, opts.min_idle, now) {
                continue;
            }
            if !consumer_ready {
                g.touch_consumer(consumer, now);
                consumer_ready = true;
            }
            g.claim_one(id, consumer, delivery_time, opts.retry_count, opts.justid);
            emit(id, if opts.justid { None } else { Some(entry) });
        }
        Some(())
    }

    /// XAUTOCLAIM: scans the group PEL from `start`, claiming for `consumer` the entries
    /// idle for at least `min_idle` ms, at most `count` of them in at most `count * 10`
    /// steps. Emits the claimed entries (`None` with JUSTID); returns the next cursor
    /// (`0-0` at the end) and the IDs dropped from the PEL because their entries were
    /// deleted, or `None` if the group does not exist.
    #[allow(clippy::too_many_arguments)]
    pub fn autoclaim(
        &mut self,
        group: &[u8],
        consumer: &[u8],
        min_idle: i64,
        start: StreamId,
        count: u64,
        justid: bool,
        now: u64,
        mut emit: impl FnMut(StreamId, Option<EntryRef<'_>>),
    ) -> Option<(StreamId, Vec<StreamId>)> {
        let g = self.groups.get_mut(group)?;
        let mut attempts = count.saturating_mul(10);
        let mut count = count;
        let mut deleted = Vec::new();
        let mut consumer_ready = false;
        // The next PEL position to look at; `None` once past the last possible ID.
        let mut cursor = Some(start);
        loop {
            let Some(from) = cursor else {
                return Some((StreamId::MIN, deleted));
            };
            if attempts == 0 || count == 0 {
                let next = g
                    .pel()
                    .range(from..)
                    .next()
                    .map_or(StreamId::MIN, |(k, _)| *k);
                return Some((next, deleted));
            }
            attempts -= 1;
            let Some(id) = g.pel().range(from..).next().map(|(k, _)| *k) else {
                return Some((StreamId::MIN, deleted));
            };
            cursor = id.incr();
            let Some(entry) = self.log.get(id) else {
                g.drop_pending(id);
                deleted.push(id);
                count -= 1;
                continue;
            };
            if !g.idle_enough(id, min_idle, now) {
                continue;
            }
            if !consumer_ready {
                g.touch_consumer(consumer, now);
                consumer_ready = true;
            }
            g.claim_one(id, consumer, now, None, justid);
            emit(id, if justid { None } else { Some(entry) });
            count -= 1;
        }
    }

    /// Checks every group's PEL invariant.
    pub fn check_groups(&self) -> Result<(), String> {
        for (name, g) in &self.groups {
            g.check()
                .map_err(|e| format!("group {}: {e}", String::from_utf8_lossy(name)))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
