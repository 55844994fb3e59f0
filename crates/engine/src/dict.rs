//! The keyspace's chained hash table: every key of a shard's database slice, each in ONE
//! heap block that also holds its value's small forms, its deadline and its metadata.
//!
//! Why not `hashbrown`: Redis's `SCAN` promises that every key present for the whole scan
//! is returned at least once, even while the table grows or shrinks between calls, and
//! eviction needs to sample random entries. Both fall out of a power-of-two table of
//! bucket chains iterated with Redis's reverse-binary cursor (Pieter Noordhuis's
//! algorithm): a bucket's entries always move to buckets whose reversed index is not
//! smaller, so a cursor never skips them. Open addressing (hashbrown) moves entries
//! between probe positions and cannot keep that promise.
//!
//! Memory layout (this table holds every key of the server, so bytes per key matter).
//! A node is one block:
//!
//! ```text
//! [next link 8 | header 8 | deadline 8, only with a TTL | payload | key length 8, only for keys >= 255 B | key]
//! ```
//!
//! - The header packs the payload's kind (6 bits: 0..=44 an inline string of that many
//!   bytes, Redis's `embstr`; 45 an `i64`, Redis's `int`; 47 an inline `raw` string of up
//!   to 255 bytes after a length byte; 46 a whole [`Value`], for longer `raw` strings and
//!   every other type), a "has deadline" bit, a 24-bit LRU clock (seconds mod 2^24, as
//!   Redis's `lru` field) and the eviction policy's 32-bit word. A `raw` string goes
//!   inline when that block is no bigger than a node with a `Value` plus the string's own
//!   block ([`raw_inline`]; a 100-byte value of a 10-byte key: 128 bytes instead of
//!   64 + 112); one edited in place (APPEND, SETRANGE, SETBIT) becomes a whole `Value`
//!   until it is replaced.
//! - The payload follows the header (or the deadline) at an 8-byte aligned offset, which
//!   a `Value` or an `i64` needs; inline string bytes need none, and the key follows
//!   the payload unaligned.
//! - The key's length (up to 254 bytes; longer keys store it in the node) and an 8-bit
//!   fingerprint of its hash ride in the top 16 bits of the link that points to the node,
//!   so lookups skip most chain neighbours without comparing keys. The node does not store
//!   the full hash: the table keeps the keyspace's hasher and recomputes a hash where it
//!   needs one (moving entries on resize, confirming a match in the `*_where` lookups,
//!   reporting a sampled entry's hash).
//!
//! A 16-byte key holding a 32-byte string takes 8 + 8 + 32 + 16 = 64 bytes, one block of
//! mimalloc's 64-byte class; with a deadline 72. The allocator would serve 72 bytes from
//! its 80-byte class, so blocks whose size falls between its classes (65..=256 bytes
//! rounded up to 8: 72, 88, 104, 120, 136, 144, ...) come from the node slab (`slab.rs`)
//! at their exact size; every other block from the allocator. A change that alters
//! the payload's size or the deadline bit moves the node to a new block in place in its
//! chain ([`Slot`] does it and keeps its handle valid).
//!
//! The caller supplies the key's 64-bit hash (the keyspace computes it once to pick the
//! shard; it must come from the same hasher as the table's, which debug builds check);
//! the table uses its low bits. Resizing is done at once: with many shards per server
//! each table stays small enough for that to be cheap, and the bucket array (8 bytes a
//! bucket) is the only thing reallocated, so growth adds at most 8 bytes per key of
//! transient memory.

use crate::keyspace::Entry;
use crate::memory::alloc_size;
use crate::value::{EMBSTR_MAX, StrValue, Value, ValueRef};
use foldhash::fast::FixedState;
use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};
use std::hash::BuildHasher;
use std::marker::PhantomData;
use std::ptr::NonNull;

// Links keep the key's length in their top 16 bits (below), which needs 64-bit
// pointers whose top 16 bits are zero: true of user-space addresses on x86-64 and
// AArch64 Linux, macOS and Windows (checked for every node allocated).
const _: () = assert!(
    usize::BITS == 64,
    "the keyspace table needs 64-bit pointers"
);

/// Key lengths from this one up are stored in the node (8 bytes before the key) and the
/// link's length byte carries this value instead.
const LONG_KEY: usize = 0xFF;

/// The 8-bit fingerprint of a hash kept in links: bits 40..48, clear of the top bits
/// that pick the shard and of the low bits that pick the bucket.
fn fingerprint(hash: u64) -> usize {
    ((hash >> 40) & 0xFF) as usize
}

/// Bits of a link's address that hold the node's address.
const ADDR_MASK: usize = (1 << 48) - 1;

// The header word.
/// Bits of the payload kind: an inline length (0..=[`EMBSTR_MAX`]), [`KIND_INT`],
/// [`KIND_VALUE`] or [`KIND_RAW`].
const KIND_MASK: u64 = 0x3F;
/// Payload kind: an `i64` (`int` encoding).
const KIND_INT: u64 = 45;
/// Payload kind: a whole [`Value`] (24 bytes).
const KIND_VALUE: u64 = 46;
/// Payload kind: a `raw` string of at most [`RAW_INLINE_MAX`] bytes, stored as its length
/// (one byte) and its bytes.
const KIND_RAW: u64 = 47;

/// Longest `raw` string a node keeps inline (a longer one is a whole [`Value`] whose
/// bytes are a block of their own). Inline, a 100-byte value with a 10-byte key is one
/// 128-byte block; apart it would be a 64-byte node and a 112-byte block.
pub const RAW_INLINE_MAX: usize = u8::MAX as usize;
/// The node stores a deadline (8 bytes after the header).
const TTL_BIT: u64 = 1 << 6;
const ACCESS_SHIFT: u32 = 8;
/// The LRU clock's bits: seconds modulo 2^24, Redis's `LRU_CLOCK_MAX`.
pub const ACCESS_MASK: u32 = (1 << 24) - 1;
const META_SHIFT: u32 = 32;

const _: () = assert!((EMBSTR_MAX as u64) < KIND_INT);
const _: () = assert!(KIND_RAW <= KIND_MASK);
const _: () = assert!(std::mem::size_of::<Value>() == 24);
const _: () = assert!(std::mem::align_of::<Value>() <= 8);

/// Idle seconds of a node last accessed at clock `access`, at `now_secs` (Unix seconds),
/// with Redis's wrap-around rule (`estimateObjectIdleTime`): a clock behind the access
/// time has wrapped once.
pub fn idle_secs(access: u32, now_secs: u64) -> u64 {
    let now = (now_secs as u32) & ACCESS_MASK;
    let a = access & ACCESS_MASK;
    u64::from(if now >= a {
        now - a
    } else {
        now + (ACCESS_MASK - a)
    })
}

/// The LRU clock for Unix second `secs`.
pub fn access_clock(secs: u64) -> u32 {
    (secs as u32) & ACCESS_MASK
}

/// A node's value, moved into a node: an inline string, an integer, or any value.
pub(crate) enum Payload<'a> {
    /// A string of at most [`EMBSTR_MAX`] bytes stored whole (`embstr`).
    Inline(&'a [u8]),
    /// An integer (`int`).
    Int(i64),
    /// A `raw` string of at most [`RAW_INLINE_MAX`] bytes stored whole.
    Raw(&'a [u8]),
    /// Any other value (longer `raw` strings and every other type).
    Value(Value),
}

impl Payload<'_> {
    fn kind(&self) -> u64 {
        match self {
            Payload::Inline(b) => b.len() as u64,
            Payload::Int(_) => KIND_INT,
            Payload::Raw(_) => KIND_RAW,
            Payload::Value(_) => KIND_VALUE,
        }
    }

    /// Bytes the payload takes in a node.
    fn size(&self) -> usize {
        match self {
            Payload::Inline(b) => b.len(),
            Payload::Int(_) => 8,
            Payload::Raw(b) => 1 + b.len(),
            Payload::Value(_) => 24,
        }
    }

    /// Writes the payload at `p`.
    ///
    /// # Safety
    /// `p` must be valid for [`Payload::size`] bytes, 8-byte aligned for `Int` and
    /// `Value`; `p` may overlap the bytes of an `Inline` or `Raw` payload (a node
    /// rewritten in place with its own bytes).
    unsafe fn write(self, p: *mut u8) {
        // SAFETY: per the contract.
        unsafe {
            match self {
                Payload::Inline(b) => std::ptr::copy(b.as_ptr(), p, b.len()),
                Payload::Int(i) => p.cast::<i64>().write(i),
                Payload::Raw(b) => {
                    // The bytes first (a source at `p` is read before the length byte
                    // overwrites it); at most RAW_INLINE_MAX bytes: the length fits.
                    std::ptr::copy(b.as_ptr(), p.add(1), b.len());
                    p.write(b.len() as u8);
                }
                Payload::Value(v) => p.cast::<Value>().write(v),
            }
        }
    }
}

/// Whether a `raw` string of `len` bytes is kept inline in the node of a `key_len`-byte
/// key (with a deadline: `ttl`): when its length fits the length byte and the one block
/// takes no more than a node holding a `Value` plus the string's own block would (above
/// the slab's sizes the allocator's classes are a quarter apart, and a long key can push
/// a node into a coarse class).
pub const fn raw_inline(len: usize, key_len: usize, ttl: bool) -> bool {
    len <= RAW_INLINE_MAX
        && crate::slab::block_bytes(block_size(ttl, 1 + len, key_len))
            <= crate::slab::block_bytes(block_size(ttl, 24, key_len))
                + if len == 0 { 0 } else { alloc_size(len) }
}

/// The payload of a `raw` string's bytes in the node of a `key_len`-byte key (with a
/// deadline: `ttl`): inline when [`raw_inline`] says so, else a whole value owning a copy.
fn raw_payload(b: &[u8], key_len: usize, ttl: bool) -> Payload<'_> {
    if raw_inline(b.len(), key_len, ttl) {
        Payload::Raw(b)
    } else {
        Payload::Value(Value::Str(StrValue::Raw(b.to_vec())))
    }
}

/// Calls `f` with the payload a value is stored as in the node of a `key_len`-byte key
/// (with a deadline: `ttl`): `int` strings as an integer, `embstr` strings inline, `raw`
/// strings inline when [`raw_inline`] says so (their buffers are freed afterwards),
/// everything else whole.
pub(crate) fn with_payload<R>(
    v: Value,
    key_len: usize,
    ttl: bool,
    f: impl FnOnce(Payload<'_>) -> R,
) -> R {
    match v {
        Value::Str(StrValue::Int(i)) => f(Payload::Int(i)),
        Value::Str(StrValue::Embstr(b)) if b.len() <= EMBSTR_MAX => f(Payload::Inline(&b)),
        Value::Str(StrValue::Raw(b)) if raw_inline(b.len(), key_len, ttl) => f(Payload::Raw(&b)),
        v => f(Payload::Value(v)),
    }
}

/// A value on its way into a node: an owned [`Value`], or a string's bytes, stored with
/// the encoding Redis's `tryObjectEncoding` picks (what [`StrValue::from_bytes`] makes)
/// without building a `StrValue` first.
pub enum NewValue<'a> {
    /// A value.
    Value(Value),
    /// A string's bytes.
    Bytes(&'a [u8]),
}

impl NewValue<'_> {
    /// Calls `f` with the payload the value is stored as (see [`with_payload`]).
    fn with_payload<R>(self, key_len: usize, ttl: bool, f: impl FnOnce(Payload<'_>) -> R) -> R {
        match self {
            NewValue::Value(v) => with_payload(v, key_len, ttl, f),
            NewValue::Bytes(b) => {
                if b.len() <= 20
                    && let Some(i) = crate::num::parse_i64(b)
                {
                    f(Payload::Int(i))
                } else if b.len() <= EMBSTR_MAX {
                    f(Payload::Inline(b))
                } else {
                    f(raw_payload(b, key_len, ttl))
                }
            }
        }
    }
}

/// Offset of the payload in a node of header `h`.
const fn payload_offset(h: u64) -> usize {
    16 + if h & TTL_BIT != 0 { 8 } else { 0 }
}

/// Bytes requested for a node: link, header, optional deadline, payload, key.
pub const fn block_size(ttl: bool, payload: usize, key_len: usize) -> usize {
    let prefix = if key_len >= LONG_KEY { 8 } else { 0 };
    16 + if ttl { 8 } else { 0 } + payload + prefix + key_len
}

/// Bytes of the payload in the node of a `key_len`-byte key (with a deadline: `ttl`)
/// for a value stored as [`with_payload`] stores it.
pub fn payload_size(v: &Value, key_len: usize, ttl: bool) -> usize {
    match v {
        Value::Str(StrValue::Int(_)) => 8,
        Value::Str(StrValue::Embstr(b)) if b.len() <= EMBSTR_MAX => b.len(),
        Value::Str(StrValue::Raw(b)) if raw_inline(b.len(), key_len, ttl) => 1 + b.len(),
        _ => 24,
    }
}

/// Whether the node of a `key_len`-byte key (with a deadline: `ttl`) keeps `v` as a
/// whole `Value` (whose heap parts are outside the node): everything but integers,
/// `embstr` strings and the `raw` strings [`raw_inline`] picks.
pub fn stored_whole(v: &Value, key_len: usize, ttl: bool) -> bool {
    match v {
        Value::Str(StrValue::Int(_)) => false,
        Value::Str(StrValue::Embstr(b)) => b.len() > EMBSTR_MAX,
        Value::Str(StrValue::Raw(b)) => !raw_inline(b.len(), key_len, ttl),
        _ => true,
    }
}

/// Bytes of the fixed part of every node (chain link and header).
pub const NODE_HEADER_BYTES: usize = 16;

fn layout_of(size: usize) -> Layout {
    match Layout::from_size_align(size, 8) {
        Ok(l) => l,
        // Only for keys near isize::MAX bytes, which no request can carry.
        Err(_) => panic!("node of {size} bytes is too large"),
    }
}

/// A pointer to a node with, in its top 16 bits, the node's key length (or [`LONG_KEY`])
/// and its hash's [`fingerprint`]. Keeping the length in the link that leads to a node
/// saves a length field in every node; the fingerprint lets a lookup pass over chain
/// neighbours without comparing their keys (the node stores no hash).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Tagged(NonNull<u8>);

impl Tagged {
    /// The node's address, untagged.
    fn as_ptr(self) -> *mut u8 {
        self.0.as_ptr().map_addr(|a| a & ADDR_MASK)
    }

    /// The key's length, or [`LONG_KEY`] for keys stored with their length.
    fn len_tag(self) -> usize {
        (self.0.as_ptr().addr() >> 48) & 0xFF
    }

    /// The fingerprint of the key's hash.
    fn fingerprint(self) -> usize {
        self.0.as_ptr().addr() >> 56
    }

    /// The node's `next` link.
    ///
    /// # Safety
    /// The node must be live.
    unsafe fn next(self) -> Link {
        // SAFETY: a live node starts with its link (8-byte aligned block).
        unsafe { *self.as_ptr().cast::<Link>() }
    }

    /// Where the node's `next` link is stored.
    fn next_slot(self) -> *mut Link {
        self.as_ptr().cast::<Link>()
    }

    /// # Safety
    /// The node must be live.
    unsafe fn header(self) -> u64 {
        // SAFETY: the header follows the link, 8-byte aligned.
        unsafe { *self.as_ptr().add(8).cast::<u64>() }
    }

    /// # Safety
    /// The node must be live and exclusively borrowed by the caller.
    unsafe fn set_header(self, h: u64) {
        // SAFETY: as `header`.
        unsafe { *self.as_ptr().add(8).cast::<u64>() = h }
    }

    /// Pointer to the payload.
    ///
    /// # Safety
    /// The node must be live.
    unsafe fn payload(self) -> *mut u8 {
        // SAFETY: the offset stays within the block the header describes.
        unsafe { self.as_ptr().add(payload_offset(self.header())) }
    }

    /// Bytes of the payload.
    ///
    /// # Safety
    /// The node must be live.
    unsafe fn payload_len(self) -> usize {
        // SAFETY: a raw payload starts with its length byte.
        unsafe {
            match self.header() & KIND_MASK {
                KIND_INT => 8,
                KIND_VALUE => 24,
                KIND_RAW => 1 + usize::from(*self.payload()),
                n => n as usize,
            }
        }
    }

    /// The deadline (0: none).
    ///
    /// # Safety
    /// The node must be live.
    unsafe fn deadline(self) -> u64 {
        // SAFETY: with the TTL bit set the deadline sits 8-byte aligned after the header.
        unsafe {
            if self.header() & TTL_BIT != 0 {
                *self.as_ptr().add(16).cast::<u64>()
            } else {
                0
            }
        }
    }

    /// The key stored in the node.
    ///
    /// # Safety
    /// The node must be live, and the slice must not outlive it.
    unsafe fn key<'a>(self) -> &'a [u8] {
        // SAFETY: the key follows the payload (after its length for long keys), and the
        // tag says which.
        unsafe {
            let h = self.header();
            let at = self.as_ptr().add(payload_offset(h) + self.payload_len());
            match self.len_tag() {
                LONG_KEY => {
                    let len = at.cast::<u64>().read_unaligned() as usize;
                    std::slice::from_raw_parts(at.add(8), len)
                }
                len => std::slice::from_raw_parts(at, len),
            }
        }
    }

    /// The value stored in the node.
    ///
    /// # Safety
    /// The node must be live, and the view must not outlive it or a change of it.
    unsafe fn value<'a>(self) -> ValueRef<'a> {
        // SAFETY: the kind in the header says what the payload holds; a `Value` and an
        // `i64` are 8-byte aligned there.
        unsafe {
            let h = self.header();
            let p = self.payload();
            match h & KIND_MASK {
                KIND_INT => ValueRef::Str(crate::value::StrRef::Int(*p.cast::<i64>())),
                KIND_VALUE => (*p.cast::<Value>()).view(),
                KIND_RAW => ValueRef::Str(crate::value::StrRef::Raw(std::slice::from_raw_parts(
                    p.add(1),
                    usize::from(*p),
                ))),
                n => ValueRef::Str(crate::value::StrRef::Embstr(std::slice::from_raw_parts(
                    p, n as usize,
                ))),
            }
        }
    }

    /// The stored `Value` of a node of kind [`KIND_VALUE`].
    ///
    /// # Safety
    /// The node must be live and exclusively borrowed for `'a`.
    unsafe fn value_mut<'a>(self) -> Option<&'a mut Value> {
        // SAFETY: per the contract; the kind check says a `Value` is there.
        unsafe {
            if self.header() & KIND_MASK == KIND_VALUE {
                Some(&mut *self.payload().cast::<Value>())
            } else {
                None
            }
        }
    }

    /// Bytes requested for the node's block.
    ///
    /// # Safety
    /// The node must be live.
    unsafe fn size(self) -> usize {
        // SAFETY: per the contract.
        unsafe {
            let h = self.header();
            block_size(h & TTL_BIT != 0, self.payload_len(), self.key().len())
        }
    }
}

/// A link to the next node of a chain (or a bucket's head).
type Link = Option<Tagged>;

/// Allocates a node holding `key` (whose hash is `hash`), linked to `next`.
fn create(
    key: &[u8],
    hash: u64,
    access: u32,
    meta: u32,
    deadline: u64,
    payload: Payload<'_>,
    next: Link,
) -> Tagged {
    let ttl = deadline != 0;
    let kind = payload.kind();
    let size = block_size(ttl, payload.size(), key.len());
    let raw = alloc_block(size, hash);
    // A set top bit would corrupt the tag: a broken platform assumption, not an error a
    // client could cause.
    assert!(
        raw.addr() & !ADDR_MASK == 0,
        "node address {raw:p} does not fit 48 bits"
    );
    let header = kind
        | if ttl { TTL_BIT } else { 0 }
        | (u64::from(access & ACCESS_MASK) << ACCESS_SHIFT)
        | (u64::from(meta) << META_SHIFT);
    // SAFETY: `raw` is a fresh block of `size` bytes, 8-byte aligned: the link, the
    // header, the deadline (with a TTL), the payload at its aligned offset, then the
    // optional length prefix and the key, exactly as `block_size` counted them.
    unsafe {
        raw.cast::<Link>().write(next);
        raw.add(8).cast::<u64>().write(header);
        if ttl {
            raw.add(16).cast::<u64>().write(deadline);
        }
        let p = raw.add(payload_offset(header));
        let len = payload.size();
        payload.write(p);
        let mut dst = p.add(len);
        if key.len() >= LONG_KEY {
            dst.cast::<u64>().write_unaligned(key.len() as u64);
            dst = dst.add(8);
        }
        std::ptr::copy_nonoverlapping(key.as_ptr(), dst, key.len());
    }
    let tag = key.len().min(LONG_KEY) | (fingerprint(hash) << 8);
    let tagged = raw.map_addr(|a| a | (tag << 48));
    // SAFETY: `raw` is non-null and the tag only sets bits above the address.
    Tagged(unsafe { NonNull::new_unchecked(tagged) })
}

/// A block of `size` bytes (8-byte aligned) for a node whose key hashes to `hash`: from
/// the node slab when `size` falls between the allocator's size classes (a 72-byte node
/// takes 72 bytes there, not 80; see `slab.rs`), else from the allocator.
fn alloc_block(size: usize, hash: u64) -> *mut u8 {
    if let Some(p) = crate::slab::NODES.alloc(size, hash) {
        return p.as_ptr();
    }
    let layout = layout_of(size);
    // SAFETY: the layout has a non-zero size (at least the link and the header).
    let raw = unsafe { alloc(layout) };
    if raw.is_null() {
        handle_alloc_error(layout)
    }
    raw
}

/// Frees a node's block without dropping its payload (moved out before, or trivially
/// droppable).
///
/// # Safety
/// The node must be live and unlinked; it is dangling afterwards.
unsafe fn free_block(node: Tagged) {
    // SAFETY: the size is recomputed from the same header and key as at allocation, so
    // it picks the same source (`alloc_block`): the slab for its sizes (which then
    // allocated it), the allocator with the same layout otherwise.
    unsafe {
        let size = node.size();
        let p = node.as_ptr();
        if crate::slab::class_of(size).is_some() {
            crate::slab::NODES.free(NonNull::new_unchecked(p));
        } else {
            dealloc(p, layout_of(size));
        }
    }
}

/// Frees a node and drops its value.
///
/// # Safety
/// The node must be live and unlinked; it is dangling afterwards.
unsafe fn destroy(node: Tagged) {
    // SAFETY: per the contract the node is owned here: its `Value` (if any) is dropped
    // exactly once, then the block freed.
    unsafe {
        if let Some(v) = node.value_mut() {
            std::ptr::drop_in_place(v);
        }
        free_block(node);
    }
}

/// A read-only view of a stored node, valid while the table is borrowed.
#[derive(Clone, Copy)]
pub struct NodeRef<'a> {
    node: Tagged,
    _table: PhantomData<&'a Dict>,
}

impl<'a> NodeRef<'a> {
    /// The key.
    pub fn key(&self) -> &'a [u8] {
        // SAFETY: the node is live while the table is borrowed for 'a.
        unsafe { self.node.key() }
    }

    /// The value.
    pub fn value(&self) -> ValueRef<'a> {
        // SAFETY: as `key`.
        unsafe { self.node.value() }
    }

    /// The Unix-ms deadline, or 0.
    pub fn expire_at(&self) -> u64 {
        // SAFETY: as `key`.
        unsafe { self.node.deadline() }
    }

    /// The 24-bit LRU clock of the last access.
    pub fn access(&self) -> u32 {
        // SAFETY: as `key`.
        (unsafe { self.node.header() } >> ACCESS_SHIFT) as u32 & ACCESS_MASK
    }

    /// The eviction policy's word.
    pub fn meta(&self) -> u32 {
        // SAFETY: as `key`.
        (unsafe { self.node.header() } >> META_SHIFT) as u32
    }

    /// Bytes the key costs as the allocator rounds them: its block, plus what its value
    /// holds outside it.
    pub fn mem_bytes(&self) -> usize {
        // SAFETY: as `key`.
        let (size, heap) = unsafe {
            let heap = match self.node.header() & KIND_MASK {
                KIND_VALUE => (*self.node.payload().cast::<Value>()).mem_usage(),
                _ => 0,
            };
            (self.node.size(), heap)
        };
        crate::slab::block_bytes(size) + heap
    }

    /// The node's address (to find it again with [`Dict::get_mut_at`]).
    pub fn addr(&self) -> usize {
        self.node.as_ptr().addr()
    }

    /// An owned copy of the entry (deep for collections).
    pub fn to_entry(&self) -> Entry {
        Entry::from_parts(
            self.value().to_value(),
            self.expire_at(),
            self.access(),
            self.meta(),
        )
    }
}

/// An exclusive handle on a stored node, valid while the table is borrowed mutably.
/// Changes that alter the node's size (a new value, a deadline set or cleared, a string
/// made `raw`) move it to a new block, in place in its chain; the handle follows.
pub struct Slot<'a> {
    dict: &'a mut Dict,
    node: Tagged,
    hash: u64,
}

impl<'a> Slot<'a> {
    /// A read-only view.
    pub fn view(&self) -> NodeRef<'_> {
        NodeRef {
            node: self.node,
            _table: PhantomData,
        }
    }

    /// A read-only view for the whole borrow.
    pub fn into_ref(self) -> NodeRef<'a> {
        NodeRef {
            node: self.node,
            _table: PhantomData,
        }
    }

    /// The key.
    pub fn key(&self) -> &[u8] {
        self.view().key()
    }

    /// The value.
    pub fn value(&self) -> ValueRef<'_> {
        self.view().value()
    }

    /// The deadline (0: none).
    pub fn expire_at(&self) -> u64 {
        self.view().expire_at()
    }

    /// The node's address.
    pub fn addr(&self) -> usize {
        self.node.as_ptr().addr()
    }

    /// The 24-bit LRU clock.
    pub fn access(&self) -> u32 {
        self.view().access()
    }

    /// The eviction policy's word.
    pub fn meta(&self) -> u32 {
        self.view().meta()
    }

    fn update_header(&mut self, f: impl FnOnce(u64) -> u64) {
        // SAFETY: the node is live and exclusively borrowed through `self.dict`.
        unsafe { self.node.set_header(f(self.node.header())) }
    }

    /// Sets the LRU clock (`access` is taken modulo 2^24).
    pub fn set_access(&mut self, access: u32) {
        self.update_header(|h| {
            (h & !(u64::from(ACCESS_MASK) << ACCESS_SHIFT))
                | (u64::from(access & ACCESS_MASK) << ACCESS_SHIFT)
        });
    }

    /// Sets the eviction policy's word.
    pub fn set_meta(&mut self, meta: u32) {
        self.update_header(|h| (h & !(u64::MAX << META_SHIFT)) | (u64::from(meta) << META_SHIFT));
    }

    /// The stored value if it is kept whole (every type but integers and strings kept
    /// inline: `embstr`, and `raw` ones up to [`RAW_INLINE_MAX`] bytes).
    pub fn value_mut(&mut self) -> Option<&mut Value> {
        // SAFETY: the node is live and exclusively borrowed for the returned borrow.
        unsafe { self.node.value_mut() }
    }

    /// [`Slot::value_mut`] for the whole borrow.
    pub fn into_value_mut(self) -> Option<&'a mut Value> {
        // SAFETY: as `value_mut`, for 'a.
        unsafe { self.node.value_mut() }
    }

    /// Makes the value a whole `Value` (a string becomes `raw`: Redis's
    /// `dbUnshareStringValue`) if it is kept inline or as an integer.
    fn make_whole(&mut self) {
        // SAFETY: the node is live.
        let kind = unsafe { self.node.header() } & KIND_MASK;
        if kind == KIND_VALUE {
            return;
        }
        let raw = match self.value() {
            ValueRef::Str(s) => s.as_bytes().into_owned(),
            // Inline and integer payloads are strings.
            ValueRef::Other(_) => return,
        };
        self.rebuild(
            self.expire_at(),
            Payload::Value(Value::Str(StrValue::Raw(raw))),
        );
    }

    /// A string's buffer for in-place edits; the string becomes `raw`. None for other
    /// types.
    pub fn raw_mut(&mut self) -> Option<&mut Vec<u8>> {
        self.make_whole();
        match self.value_mut() {
            Some(Value::Str(s)) => Some(s.make_raw()),
            _ => None,
        }
    }

    /// [`Slot::raw_mut`] for the whole borrow.
    pub fn into_raw_mut(mut self) -> Option<&'a mut Vec<u8>> {
        self.make_whole();
        match self.into_value_mut() {
            Some(Value::Str(s)) => Some(s.make_raw()),
            _ => None,
        }
    }

    /// Overwrites an integer payload with `v` in place (INCR and friends on a counter):
    /// same size, same block. False, with nothing changed, if the payload is not an
    /// integer.
    pub fn set_int_in_place(&mut self, v: i64) -> bool {
        // SAFETY: the node is live and exclusively borrowed through `self`.
        unsafe {
            if self.node.header() & KIND_MASK != KIND_INT {
                return false;
            }
            // An integer payload is an aligned i64 (see `payload_offset`).
            *self.node.payload().cast::<i64>() = v;
        }
        true
    }

    /// Replaces the value, keeping the deadline and the metadata. Returns the old value
    /// when it was kept whole (the caller may free it lazily).
    pub fn set_value(&mut self, v: Value) -> Option<Value> {
        self.replace(NewValue::Value(v), self.expire_at())
    }

    /// Replaces the value and the deadline (0: none), keeping the metadata, in one
    /// rebuild at most. Returns the old value when it was kept whole.
    pub fn replace(&mut self, v: NewValue<'_>, deadline: u64) -> Option<Value> {
        let old = self.take_whole();
        let key_len = self.key().len();
        v.with_payload(key_len, deadline != 0, |p| self.rebuild(deadline, p));
        old
    }

    /// Sets or clears (0) the deadline.
    pub fn set_expire_at(&mut self, deadline: u64) {
        let old = self.expire_at();
        if old == deadline {
            return;
        }
        if old != 0 && deadline != 0 {
            // SAFETY: the node has a deadline field and is exclusively borrowed.
            unsafe { *self.node.as_ptr().add(16).cast::<u64>() = deadline };
            return;
        }
        // The deadline field appears or goes: the node changes size.
        match self.take_whole() {
            Some(v) => self.rebuild(deadline, Payload::Value(v)),
            None => {
                // SAFETY: the node is live; the copy is a plain integer or bytes.
                let (kind, p) = unsafe { (self.node.header() & KIND_MASK, self.node.payload()) };
                if kind == KIND_INT {
                    // SAFETY: an integer payload is an aligned i64.
                    let i = unsafe { *p.cast::<i64>() };
                    self.rebuild(deadline, Payload::Int(i));
                } else {
                    // Copy the inline bytes out: the old block is freed by `rebuild`.
                    let mut buf = [0u8; RAW_INLINE_MAX];
                    let (at, n) = if kind == KIND_RAW {
                        // SAFETY: a raw payload starts with its length byte.
                        (1, usize::from(unsafe { *p }))
                    } else {
                        (0, kind as usize)
                    };
                    // SAFETY: the payload holds `n` string bytes from `at`.
                    buf[..n].copy_from_slice(unsafe { std::slice::from_raw_parts(p.add(at), n) });
                    let b = &buf[..n];
                    let payload = if kind == KIND_RAW {
                        raw_payload(b, self.key().len(), deadline != 0)
                    } else {
                        Payload::Inline(b)
                    };
                    self.rebuild(deadline, payload);
                }
            }
        }
    }

    /// Moves a whole `Value` payload out, leaving an empty inline string in its place
    /// (the caller rebuilds the node right after).
    fn take_whole(&mut self) -> Option<Value> {
        // SAFETY: the node is live and exclusively borrowed; a `Value` payload is moved
        // out once and the kind changed so it is not dropped again.
        unsafe {
            let h = self.node.header();
            if h & KIND_MASK != KIND_VALUE {
                return None;
            }
            let v = self.node.payload().cast::<Value>().read();
            // The block keeps its kind (its size follows from it); the bit says the
            // value is gone.
            self.node.set_header(h | MOVED_BIT);
            Some(v)
        }
    }

    /// Writes the node again with `deadline` and `payload` (keeping key, clock and
    /// metadata), in a new block when the size changes, at the same place in its chain.
    /// A whole `Value` still in the node must have been moved out ([`Slot::take_whole`]).
    fn rebuild(&mut self, deadline: u64, payload: Payload<'_>) {
        let old = self.node;
        // SAFETY: the node is live and exclusively borrowed. With the same deadline field
        // and payload size the block keeps its layout: the payload is written over the
        // old one (whose `Value`, if any, was moved out) and the key stays where it is.
        unsafe {
            let h = old.header();
            let kind = payload.kind();
            let ttl = deadline != 0;
            if (h & TTL_BIT != 0) == ttl
                && old.payload_len() == payload.size()
                && (h & KIND_MASK != KIND_VALUE || h & MOVED_BIT != 0)
            {
                if ttl {
                    *old.as_ptr().add(16).cast::<u64>() = deadline;
                }
                payload.write(old.payload());
                old.set_header((h & !(KIND_MASK | MOVED_BIT)) | kind);
                return;
            }
        }
        // SAFETY: the node is live and exclusively borrowed; its link slot is found by
        // walking its chain from the bucket (it is linked exactly once), the new node
        // takes its place, and the old block is freed with its own layout. A `Value`
        // payload of the old block was moved out before (`MOVED_BIT`), so nothing is
        // dropped twice.
        unsafe {
            let h = old.header();
            let key = old.key();
            let fresh = create(
                key,
                self.hash,
                (h >> ACCESS_SHIFT) as u32 & ACCESS_MASK,
                (h >> META_SHIFT) as u32,
                deadline,
                payload,
                old.next(),
            );
            let link = self.dict.link_to(self.hash, old);
            *link = Some(fresh);
            if h & MOVED_BIT == 0
                && let Some(v) = old.value_mut()
            {
                std::ptr::drop_in_place(v);
            }
            free_block(old);
            self.node = fresh;
        }
    }
}

/// Header bit marking a `Value` payload already moved out (the block keeps its size).
const MOVED_BIT: u64 = 1 << 7;

/// A node unlinked from its table: owns its key and value until dropped or taken apart.
pub struct Removed {
    node: Tagged,
}

impl Removed {
    /// A read-only view.
    pub fn view(&self) -> NodeRef<'_> {
        NodeRef {
            node: self.node,
            _table: PhantomData,
        }
    }

    /// The key.
    pub fn key(&self) -> &[u8] {
        self.view().key()
    }

    /// The deadline (0: none).
    pub fn expire_at(&self) -> u64 {
        self.view().expire_at()
    }

    /// The value kept whole, if it is (the others are small strings, freed with the
    /// block).
    pub fn take_value(self) -> Option<Value> {
        // SAFETY: the node is owned here; its `Value` is moved out once, then the block
        // is freed without dropping it.
        unsafe {
            let v = self.node.value_mut().map(|v| std::ptr::read(v));
            free_block(self.node);
            std::mem::forget(self);
            v
        }
    }

    /// The entry as an owned [`Entry`] (short strings get their own allocation).
    pub fn into_entry(self) -> Entry {
        let n = self.view();
        let (expire_at, access, meta) = (n.expire_at(), n.access(), n.meta());
        // SAFETY: the node is owned here.
        let whole = unsafe { self.node.header() } & KIND_MASK == KIND_VALUE;
        let value = if whole {
            match self.take_value() {
                Some(v) => v,
                None => unreachable!("a whole payload holds a value"),
            }
        } else {
            // Inline and integer payloads are strings.
            n.value().to_value()
        };
        Entry::from_parts(value, expire_at, access, meta)
    }
}

impl Drop for Removed {
    fn drop(&mut self) {
        // SAFETY: the node was unlinked and is owned by this handle.
        unsafe { destroy(self.node) }
    }
}

// SAFETY: a `Removed` owns its block exclusively, like a `Box<(Vec<u8>, Value)>`, and
// `Value` is `Send`.
unsafe impl Send for Removed {}

/// Redis's SCAN cursor step for a table of `mask + 1` buckets: increments the cursor's
/// reversed bits over the masked range (the unmasked high bits are set first so the
/// carry runs through them). Shared by every chained table with SCAN (`Dict`, the
/// collection table, the sorted-set index). Returns 0 when the scan is complete.
pub(crate) fn next_cursor(cursor: u64, mask: u64) -> u64 {
    (cursor | !mask)
        .reverse_bits()
        .wrapping_add(1)
        .reverse_bits()
}

/// Smallest number of buckets a non-empty table keeps.
const MIN_BUCKETS: usize = 4;

/// A table doubles when it holds this many keys per bucket (in halves: 3/2), as
/// memcached's does. Buckets cost 8 bytes each and tables double, so a table holds
/// between half and all of this load: with a limit of 1 (Redis's), 8 to 16 bytes of
/// bucket per key (13.4 at 10M keys: 64 shards of 156k keys in 262k buckets each); with
/// 1.5, 5.3 to 10.7. The price is longer chains: a lookup that finds its key visits
/// 1 + load/2 nodes on average (1.75 at most instead of 1.5), though the links'
/// fingerprints spare it the key comparisons.
const MAX_LOAD_HALVES: usize = 3;

/// True if a table of `buckets` buckets holding `len` keys must grow before one more.
const fn must_grow(len: usize, buckets: usize) -> bool {
    len * 2 >= buckets * MAX_LOAD_HALVES
}

/// Seed of the hasher of tables built with [`Dict::new`].
const DEFAULT_SEED: u64 = 0x5EED_D1C7;

/// What a new node holds besides its key.
pub struct NewNode<'a> {
    /// The value.
    pub value: NewValue<'a>,
    /// Unix-ms deadline, or 0.
    pub expire_at: u64,
    /// LRU clock (see [`access_clock`]).
    pub access: u32,
    /// Eviction word.
    pub meta: u32,
}

/// The keyspace's table from byte-string keys to entries, with stable-cursor scanning and
/// random sampling.
pub struct Dict {
    buckets: Vec<Link>,
    len: usize,
    hasher: FixedState,
    /// False while a walk by cursor must not see the table shrink (a keyspace freeze:
    /// see [`Dict::set_shrink`]).
    shrink: bool,
}

// The impls below rely on `Value` being `Send + Sync`.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Value>();
};

// SAFETY: a `Dict` owns its nodes exclusively (no node is shared between tables and no
// pointer to one escapes except as borrows tied to `&self`/`&mut self`), exactly like a
// `Vec<Box<(Vec<u8>, Value)>>`, so it is `Send`/`Sync` as `Value` is (checked above).
unsafe impl Send for Dict {}
// SAFETY: see the `Send` impl; shared access only hands out shared views.
unsafe impl Sync for Dict {}

impl Default for Dict {
    fn default() -> Self {
        Self::new()
    }
}

impl Dict {
    /// An empty table hashing with a fixed seed (allocates nothing until the first
    /// insert). Callers must pass hashes from [`Dict::hash`].
    pub fn new() -> Self {
        Self::with_hasher(FixedState::with_seed(DEFAULT_SEED))
    }

    /// An empty table whose keys' hashes come from `hasher` (the hashes callers pass
    /// must be `hasher.hash_one(key)`).
    pub fn with_hasher(hasher: FixedState) -> Self {
        Dict {
            buckets: Vec::new(),
            len: 0,
            hasher,
            shrink: true,
        }
    }

    /// Allows or forbids shrinking on removal (growth is always allowed). A walk by
    /// [`Dict::scan`] cursor that must know exactly which keys it has passed forbids it:
    /// with growth only, a key of hash `h` has been passed iff the walk is over or
    /// `h.reverse_bits() < cursor.reverse_bits()` (see [`Dict::passed`]). Allowing it
    /// again shrinks the table if it is sparse.
    pub fn set_shrink(&mut self, allow: bool) {
        self.shrink = allow;
        if allow {
            self.maybe_shrink();
        }
    }

    /// Whether a walk by [`Dict::scan`] that has reached `cursor` (not 0: a walk whose
    /// last call returned 0 is over and has passed every key) has visited the bucket of a
    /// key of hash `hash`, provided the table has not shrunk since the walk began.
    ///
    /// Buckets are visited in increasing order of their reversed index. A cursor the
    /// walk returned for a table of `2^k` buckets has only its low `k` bits set, so
    /// its reversed value is a multiple of `2^(64-k)`; a bucket of the (same or grown)
    /// table of `2^j >= 2^k` buckets has been visited iff its reversed index is below the
    /// cursor's, and that index is the top `j` bits of the reversed hash, so comparing the
    /// whole reversed hash gives the same answer, whatever growth happened since.
    pub fn passed(hash: u64, cursor: u64) -> bool {
        hash.reverse_bits() < cursor.reverse_bits()
    }

    /// An empty table with the same hasher as this one.
    pub fn empty_like(&self) -> Self {
        Self::with_hasher(self.hasher.clone())
    }

    /// The hash of `key` as this table computes it.
    pub fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the table holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of buckets (a power of two, or zero).
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    fn mask(&self) -> usize {
        self.buckets.len().wrapping_sub(1)
    }

    fn view(&self, node: Tagged) -> NodeRef<'_> {
        NodeRef {
            node,
            _table: PhantomData,
        }
    }

    fn slot(&mut self, node: Tagged, hash: u64) -> Slot<'_> {
        Slot {
            dict: self,
            node,
            hash,
        }
    }

    /// The first node of `hash`'s chain whose fingerprint matches `hash` and for which
    /// `pred` holds.
    fn find(&self, hash: u64, mut pred: impl FnMut(NodeRef<'_>) -> bool) -> Link {
        if self.buckets.is_empty() {
            return None;
        }
        let fp = fingerprint(hash);
        let mut cur = self.buckets[hash as usize & self.mask()];
        while let Some(node) = cur {
            if node.fingerprint() == fp && pred(self.view(node)) {
                return Some(node);
            }
            // SAFETY: every node linked from the table is live while `self` is borrowed.
            cur = unsafe { node.next() };
        }
        None
    }

    /// The link slot (a bucket or a node's `next`) that points at `node`, which must be
    /// in `hash`'s chain.
    fn link_to(&mut self, hash: u64, node: Tagged) -> &mut Link {
        let idx = hash as usize & self.mask();
        let mut link: *mut Link = &mut self.buckets[idx];
        // SAFETY: `link` always points at a live link slot (a bucket, or the `next` field
        // of a live node of this chain) and `self` is borrowed mutably throughout.
        unsafe {
            while let Some(n) = *link {
                if n.as_ptr() == node.as_ptr() {
                    return &mut *link;
                }
                link = n.next_slot();
            }
        }
        // A handle to a node that is not in its chain: a bug in this module.
        unreachable!("node not found in its chain")
    }

    /// Looks a key up.
    pub fn get(&self, hash: u64, key: &[u8]) -> Option<NodeRef<'_>> {
        let node = self.find(hash, |n| crate::bytecmp::eq(n.key(), key))?;
        Some(self.view(node))
    }

    /// Looks a key up for modification.
    pub fn get_mut(&mut self, hash: u64, key: &[u8]) -> Option<Slot<'_>> {
        let node = self.find(hash, |n| crate::bytecmp::eq(n.key(), key))?;
        Some(self.slot(node, hash))
    }

    /// Looks up the first entry with `hash` for which `pred` holds.
    pub fn get_where(
        &self,
        hash: u64,
        mut pred: impl FnMut(NodeRef<'_>) -> bool,
    ) -> Option<NodeRef<'_>> {
        let hasher = self.hasher.clone();
        let node = self.find(hash, |n| pred(n) && hasher.hash_one(n.key()) == hash)?;
        Some(self.view(node))
    }

    /// The first node whose hash has the low `bits` bits of `low` and for which `pred`
    /// holds, with its full hash. Those bits pick the node's bucket when the table has
    /// at most `2^bits` buckets; a larger table is searched in every bucket they could
    /// pick (`2^(k - bits)` of them for `2^k` buckets: slower, still exact). Links'
    /// fingerprints come from other bits, so every node of those chains is offered to
    /// `pred` (put the cheap test there: the hash is computed only for nodes it accepts).
    fn find_low(
        &self,
        low: u64,
        bits: u32,
        mut pred: impl FnMut(NodeRef<'_>) -> bool,
    ) -> Option<(u64, Tagged)> {
        let n = self.buckets.len();
        if n == 0 {
            return None;
        }
        let low_mask = if bits >= 64 {
            u64::MAX
        } else {
            (1u64 << bits) - 1
        };
        let low = low & low_mask;
        let mask = self.mask();
        // Bucket indexes agreeing with `low` on its bits: `low` plus every combination of
        // the bucket bits above them.
        let (first, step, count) = if (mask as u64) <= low_mask {
            (low as usize & mask, 0, 1)
        } else {
            (low as usize, 1usize << bits, n >> bits)
        };
        for i in 0..count {
            let mut cur = self.buckets[first + i * step];
            while let Some(node) = cur {
                let view = self.view(node);
                if pred(view) {
                    let full = self.hasher.hash_one(view.key());
                    if full & low_mask == low {
                        return Some((full, node));
                    }
                }
                // SAFETY: every node linked from the table is live while `self` is
                // borrowed.
                cur = unsafe { node.next() };
            }
        }
        None
    }

    /// Looks up the first entry whose hash has the low `bits` bits of `low` and for which
    /// `pred` holds; returns its full hash too (the deadline index keeps 22 hash bits).
    pub fn get_where_low(
        &self,
        low: u64,
        bits: u32,
        pred: impl FnMut(NodeRef<'_>) -> bool,
    ) -> Option<(u64, NodeRef<'_>)> {
        let (full, node) = self.find_low(low, bits, pred)?;
        Some((full, self.view(node)))
    }

    /// As [`Dict::get_where_low`], removing the entry.
    pub fn remove_where_low(
        &mut self,
        low: u64,
        bits: u32,
        pred: impl FnMut(NodeRef<'_>) -> bool,
    ) -> Option<(u64, Removed)> {
        let (full, node) = self.find_low(low, bits, pred)?;
        let addr = node.as_ptr().addr();
        let node = self.unlink(full, |n| n.addr() == addr)?;
        self.maybe_shrink();
        Some((full, Removed { node }))
    }

    /// Looks up the first entry with `hash` for which `pred` holds, for modification
    /// (used where only a key's hash is known: eviction queues, the deadline index).
    pub fn get_mut_where(
        &mut self,
        hash: u64,
        mut pred: impl FnMut(NodeRef<'_>) -> bool,
    ) -> Option<Slot<'_>> {
        let hasher = self.hasher.clone();
        let node = self.find(hash, |n| pred(n) && hasher.hash_one(n.key()) == hash)?;
        Some(self.slot(node, hash))
    }

    /// The node at address `addr` in `hash`'s chain (an entry handed out earlier and
    /// found again by identity, as the keyspace does to re-measure a value after a
    /// command changed it). Cheaper than [`Dict::get_mut_where`]: neither keys nor hashes
    /// are compared.
    pub fn get_mut_at(&mut self, hash: u64, addr: usize) -> Option<Slot<'_>> {
        let node = self.find(hash, |n| n.addr() == addr)?;
        Some(self.slot(node, hash))
    }

    /// Inserts a key the caller knows is absent (saves a lookup) and returns the new
    /// node.
    pub fn insert_unique(&mut self, hash: u64, key: &[u8], new: NewNode<'_>) -> NodeRef<'_> {
        debug_assert_eq!(hash, self.hash(key), "hash from another hasher");
        debug_assert!(
            self.get(hash, key).is_none(),
            "insert_unique of a present key"
        );
        if must_grow(self.len, self.buckets.len()) {
            self.resize((self.buckets.len() * 2).max(MIN_BUCKETS));
        }
        let idx = hash as usize & self.mask();
        let next = self.buckets[idx];
        let node = new.value.with_payload(key.len(), new.expire_at != 0, |p| {
            create(key, hash, new.access, new.meta, new.expire_at, p, next)
        });
        self.buckets[idx] = Some(node);
        self.len += 1;
        self.view(node)
    }

    /// Unlinks the first node of `hash`'s chain whose fingerprint matches `hash` and for
    /// which `pred` holds.
    fn unlink(&mut self, hash: u64, mut pred: impl FnMut(NodeRef<'_>) -> bool) -> Link {
        if self.buckets.is_empty() {
            return None;
        }
        let idx = hash as usize & self.mask();
        let fp = fingerprint(hash);
        let mut link: *mut Link = &mut self.buckets[idx];
        // SAFETY: `link` always points at a live link slot (a bucket, or the `next`
        // field of a live node) and `self` is borrowed mutably throughout.
        unsafe {
            while let Some(node) = *link {
                if node.fingerprint() == fp && pred(self.view(node)) {
                    *link = node.next();
                    self.len -= 1;
                    return Some(node);
                }
                link = node.next_slot();
            }
        }
        None
    }

    /// Removes a key; returns its node.
    pub fn remove(&mut self, hash: u64, key: &[u8]) -> Option<Removed> {
        let node = self.unlink(hash, |n| crate::bytecmp::eq(n.key(), key))?;
        self.maybe_shrink();
        Some(Removed { node })
    }

    /// Removes the first entry with `hash` for which `pred` holds (used when only the hash
    /// of a key is known, as in the keyspace's deadline index).
    pub fn remove_where(
        &mut self,
        hash: u64,
        mut pred: impl FnMut(NodeRef<'_>) -> bool,
    ) -> Option<Removed> {
        let hasher = self.hasher.clone();
        let node = self.unlink(hash, |n| pred(n) && hasher.hash_one(n.key()) == hash)?;
        self.maybe_shrink();
        Some(Removed { node })
    }

    /// Consumes the table, handing every node to `f` (order unspecified).
    pub fn into_each(mut self, mut f: impl FnMut(Removed)) {
        for bucket in self.buckets.iter_mut() {
            let mut cur = bucket.take();
            while let Some(node) = cur {
                // SAFETY: the chain was detached from the table, so each node is owned
                // here; `next` is read before the node is handed over.
                cur = unsafe { node.next() };
                f(Removed { node });
            }
        }
        self.len = 0;
    }

    /// Removes every entry and releases the buckets.
    pub fn clear(&mut self) {
        for bucket in self.buckets.iter_mut() {
            let mut cur = bucket.take();
            while let Some(node) = cur {
                // SAFETY: the chain was detached from the table, so each node is owned
                // here; `next` is read before the node is freed.
                unsafe {
                    cur = node.next();
                    destroy(node);
                }
            }
        }
        self.buckets = Vec::new();
        self.len = 0;
    }

    fn maybe_shrink(&mut self) {
        let n = self.buckets.len();
        if self.shrink && n > MIN_BUCKETS && self.len * 8 < n {
            let target = self.len.next_power_of_two().max(MIN_BUCKETS);
            self.resize(target);
        }
    }

    fn resize(&mut self, new_size: usize) {
        debug_assert!(new_size.is_power_of_two());
        let mut fresh: Vec<Link> = vec![None; new_size];
        let mask = new_size - 1;
        for bucket in self.buckets.iter_mut() {
            let mut cur = bucket.take();
            while let Some(node) = cur {
                // SAFETY: each node of the detached chain is live and relinked exactly
                // once into `fresh`; `next` is read before it is overwritten.
                unsafe {
                    cur = node.next();
                    let idx = self.hasher.hash_one(node.key()) as usize & mask;
                    *node.next_slot() = fresh[idx];
                    fresh[idx] = Some(node);
                }
            }
        }
        self.buckets = fresh;
    }

    /// Visits the nodes of one chain.
    fn chain(&self, mut cur: Link, mut f: impl FnMut(Tagged)) {
        while let Some(node) = cur {
            // SAFETY: nodes linked from the table are live while `self` is borrowed;
            // `next` is read before `f` sees the node (which it must not unlink).
            cur = unsafe { node.next() };
            f(node);
        }
    }

    /// Visits every entry (order unspecified).
    pub fn for_each(&self, mut f: impl FnMut(NodeRef<'_>)) {
        for &head in &self.buckets {
            self.chain(head, |n| f(self.view(n)));
        }
    }

    /// Visits every entry with its hash and sets its eviction word to what `f` returns
    /// (order unspecified).
    pub fn for_each_meta(&mut self, mut f: impl FnMut(u64, NodeRef<'_>) -> u32) {
        let hasher = self.hasher.clone();
        for &head in &self.buckets {
            self.chain(head, |n| {
                let view = self.view(n);
                let meta = f(hasher.hash_one(view.key()), view);
                // SAFETY: the node is live and `self` is borrowed mutably; the view is no
                // longer used.
                unsafe {
                    let h = n.header();
                    n.set_header((h & !(u64::MAX << META_SHIFT)) | (u64::from(meta) << META_SHIFT));
                }
            });
        }
    }

    /// Visits the entries of the bucket at `cursor` and returns the next cursor (0 when
    /// the scan is complete). Every key present from the first call to the last is
    /// visited at least once, whatever resizes happen between calls.
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(NodeRef<'_>)) -> u64 {
        if self.buckets.is_empty() {
            return 0;
        }
        let mask = self.mask() as u64;
        let head = self.buckets[(cursor & mask) as usize];
        self.chain(head, |n| f(self.view(n)));
        next_cursor(cursor, mask)
    }

    /// A pseudo-random entry with its hash: `r1` picks a non-empty bucket (probing from
    /// a random start), `r2` an entry of its chain. Not uniform over keys (long chains
    /// are under-sampled) exactly as Redis's dictGetRandomKey is not.
    pub fn random_node(&self, r1: u64, r2: u64) -> Option<(u64, NodeRef<'_>)> {
        if self.len == 0 {
            return None;
        }
        let n = self.buckets.len();
        let start = r1 as usize & (n - 1);
        for i in 0..n {
            let idx = (start + i) & (n - 1);
            let head = self.buckets[idx];
            if head.is_none() {
                continue;
            }
            let mut chain_len = 0u64;
            self.chain(head, |_| chain_len += 1);
            let mut pick = r2 % chain_len;
            let mut found = None;
            self.chain(head, |node| {
                if pick == 0 && found.is_none() {
                    found = Some(node);
                }
                pick = pick.wrapping_sub(1);
            });
            let node = self.view(found?);
            return Some((self.hasher.hash_one(node.key()), node));
        }
        None
    }
}

impl Drop for Dict {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ListValue;
    use crate::value::StrRef;
    use std::collections::{HashMap, HashSet};

    fn h(k: &[u8]) -> u64 {
        FixedState::with_seed(DEFAULT_SEED).hash_one(k)
    }

    fn new(value: Value, expire_at: u64) -> NewNode<'static> {
        NewNode {
            value: NewValue::Value(value),
            expire_at,
            access: 7,
            meta: 0xDEAD_BEEF,
        }
    }

    fn int(i: i64) -> Value {
        Value::Str(StrValue::Int(i))
    }

    fn emb(b: &[u8]) -> Value {
        Value::Str(StrValue::Embstr(b.into()))
    }

    fn raw(b: &[u8]) -> Value {
        Value::Str(StrValue::Raw(b.to_vec()))
    }

    fn list(n: usize) -> Value {
        let lim = crate::EncodingLimits::default();
        Value::from(ListValue::from_elements(
            (0..n).map(|i| format!("e{i}")),
            &lim,
        ))
    }

    fn put(d: &mut Dict, k: &[u8], v: Value, at: u64) {
        if let Some(r) = d.remove(h(k), k) {
            drop(r);
        }
        d.insert_unique(h(k), k, new(v, at));
    }

    fn get(d: &Dict, k: &[u8]) -> Option<(Value, u64)> {
        d.get(h(k), k)
            .map(|n| (n.value().to_value(), n.expire_at()))
    }

    /// The block a node takes, from its own header and key.
    fn size(d: &Dict, k: &[u8]) -> usize {
        let n = d.get(h(k), k).expect("present");
        // SAFETY: the node is live while `d` is borrowed.
        unsafe { n.node.size() }
    }

    #[test]
    fn every_payload_kind_round_trips_with_and_without_deadline() {
        let values = [
            int(0),
            int(i64::MIN),
            int(i64::MAX),
            emb(b""),
            emb(b"x"),
            emb(&[b'v'; 24]),
            emb(&[b'v'; 32]),
            emb(&[b'v'; EMBSTR_MAX]),
            raw(b""),
            raw(b"12"),
            raw(&[b'r'; 100]),
            raw(&[b'r'; RAW_INLINE_MAX]),
            raw(&[b'r'; RAW_INLINE_MAX + 1]),
            raw(&[b'r'; 1000]),
            list(3),
        ];
        let mut d = Dict::new();
        for (i, v) in values.iter().enumerate() {
            for at in [0, 1_700_000_000_000u64] {
                let k = format!("key:{i}:{at}");
                put(&mut d, k.as_bytes(), v.clone(), at);
            }
        }
        for (i, v) in values.iter().enumerate() {
            for at in [0, 1_700_000_000_000u64] {
                let k = format!("key:{i}:{at}");
                assert_eq!(get(&d, k.as_bytes()), Some((v.clone(), at)), "{k}");
                let n = d.get(h(k.as_bytes()), k.as_bytes()).expect("present");
                assert_eq!(n.value().encoding(), v.encoding());
                assert_eq!((n.access(), n.meta()), (7, 0xDEAD_BEEF));
                assert_eq!(n.key(), k.as_bytes());
                let e = d
                    .remove(h(k.as_bytes()), k.as_bytes())
                    .expect("present")
                    .into_entry();
                assert_eq!((&e.value, e.expire_at()), (v, at));
                put(&mut d, k.as_bytes(), v.clone(), at);
            }
        }
        // The issue's shape: a 16-byte key with a 32-byte string in 64 bytes, 72 with a
        // deadline; integers take 8 bytes; other values a 24-byte `Value`.
        let k = b"key:000000000001";
        put(&mut d, k, emb(&[b'v'; 32]), 0);
        assert_eq!(size(&d, k), 64);
        put(&mut d, k, emb(&[b'v'; 32]), 5);
        assert_eq!(size(&d, k), 72);
        put(&mut d, k, int(5), 0);
        assert_eq!(size(&d, k), 16 + 8 + 16);
        put(&mut d, k, list(2), 0);
        assert_eq!(size(&d, k), 16 + 24 + 16);
        // A raw string of up to RAW_INLINE_MAX bytes is its length byte and its bytes;
        // a longer one a 24-byte `Value` (its bytes elsewhere).
        put(&mut d, k, raw(&[b'r'; 100]), 0);
        assert_eq!(size(&d, k), 16 + 1 + 100 + 16);
        put(&mut d, k, raw(&[b'r'; 100]), 5);
        assert_eq!(size(&d, k), 16 + 8 + 1 + 100 + 16);
        put(&mut d, k, raw(&[b'r'; RAW_INLINE_MAX + 1]), 0);
        assert_eq!(size(&d, k), 16 + 24 + 16);
    }

    #[test]
    fn an_inline_raw_string_is_made_whole_for_edits() {
        let mut d = Dict::new();
        let k = b"key:1";
        for at in [0, 9] {
            put(&mut d, k, raw(&[b'r'; 100]), at);
            let mut s = d.get_mut(h(k), k).expect("present");
            assert!(s.value_mut().is_none(), "kept inline");
            s.raw_mut().expect("a string").extend_from_slice(b"++");
            assert!(matches!(s.value_mut(), Some(Value::Str(StrValue::Raw(b))) if b.len() == 102));
            let mut want = vec![b'r'; 100];
            want.extend_from_slice(b"++");
            assert_eq!(get(&d, k), Some((raw(&want), at)));
            assert_eq!(size(&d, k), 16 + if at == 0 { 0 } else { 8 } + 24 + 5);
        }
    }

    #[test]
    fn deadline_set_and_cleared_moves_the_node_and_keeps_the_rest() {
        let mut d = Dict::new();
        let values = [
            int(-3),
            emb(b"hello"),
            emb(&[b'z'; EMBSTR_MAX]),
            raw(b"r"),
            raw(&[b'q'; RAW_INLINE_MAX]),
            raw(&[b'q'; RAW_INLINE_MAX + 1]),
            list(5),
        ];
        for (i, v) in values.iter().enumerate() {
            let k = format!("k{i}").into_bytes();
            put(&mut d, &k, v.clone(), 0);
            // Neighbours in the same chain must survive the relinking.
            for j in 0..20 {
                put(&mut d, format!("n{i}:{j}").as_bytes(), int(j), 0);
            }
            let before = size(&d, &k);
            let mut s = d.get_mut(h(&k), &k).expect("present");
            s.set_access(99);
            s.set_meta(1234);
            let addr = s.addr();
            s.set_expire_at(5_000);
            assert_ne!(s.addr(), addr, "a node gaining a deadline moves");
            assert_eq!(s.expire_at(), 5_000);
            s.set_expire_at(6_000);
            assert_eq!(s.expire_at(), 6_000);
            assert_eq!(size(&d, &k), before + 8);
            assert_eq!(get(&d, &k), Some((v.clone(), 6_000)));
            let mut s = d.get_mut(h(&k), &k).expect("present");
            s.set_expire_at(0);
            assert_eq!((s.access(), s.meta()), (99, 1234));
            assert_eq!(size(&d, &k), before);
            assert_eq!(get(&d, &k), Some((v.clone(), 0)));
            for j in 0..20 {
                let n = format!("n{i}:{j}");
                assert_eq!(get(&d, n.as_bytes()), Some((int(j), 0)));
            }
        }
    }

    #[test]
    fn int_inline_and_raw_transitions() {
        let mut d = Dict::new();
        let k = b"counter";
        put(&mut d, k, int(41), 9_000);
        let mut s = d.get_mut(h(k), k).expect("present");
        // INCR: an integer replaced by an integer stays in place.
        let addr = s.addr();
        assert!(s.set_value(int(42)).is_none());
        assert_eq!(s.addr(), addr);
        assert!(matches!(s.value(), ValueRef::Str(StrRef::Int(42))));
        // The in-place integer write: same block, new value, deadline kept.
        assert!(s.set_int_in_place(43));
        assert_eq!(s.addr(), addr);
        assert!(matches!(s.value(), ValueRef::Str(StrRef::Int(43))));
        assert_eq!(s.expire_at(), 9_000);
        assert!(s.set_value(int(42)).is_none());
        // APPEND: the string becomes raw (a whole value), keeping its deadline.
        s.raw_mut().expect("a string").extend_from_slice(b"abc");
        assert_eq!(s.value().encoding(), "raw");
        assert_eq!(s.expire_at(), 9_000);
        // SET of a short string again: inline, and the raw buffer is handed back.
        let old = s.set_value(emb(b"short"));
        assert_eq!(old, Some(raw(b"42abc")));
        assert_eq!(s.value().encoding(), "embstr");
        // Not an integer: the in-place write refuses and changes nothing.
        assert!(!s.set_int_in_place(7));
        assert_eq!(s.value().encoding(), "embstr");
        // A whole value replaced by an inline string of the same size stays in place.
        assert!(s.set_value(list(1)).is_none());
        let addr = s.addr();
        let old = s.set_value(emb(&[b'q'; 24]));
        assert!(matches!(old, Some(Value::List(_))));
        assert_eq!(s.addr(), addr);
        assert_eq!(s.value_mut(), None);
        assert_eq!(get(&d, k), Some((emb(&[b'q'; 24]), 9_000)));
        // Raw edits of a value that is not a string are refused.
        put(&mut d, k, list(2), 0);
        assert!(d.get_mut(h(k), k).expect("present").raw_mut().is_none());
        assert!(d.get_mut(h(k), k).expect("present").value_mut().is_some());
    }

    #[test]
    fn idle_time_follows_redis_wrap_around() {
        let now = 1_700_000_000u64;
        assert_eq!(idle_secs(access_clock(now - 30), now), 30);
        assert_eq!(idle_secs(access_clock(now), now), 0);
        // The clock wrapped between the access and now (Redis's estimateObjectIdleTime).
        let at = (1u64 << 24) * 101 - 10;
        assert_eq!(idle_secs(access_clock(at), at + 25), 25 - 1);
        assert_eq!(access_clock(at + 25), 15);
    }

    #[test]
    fn keys_of_every_length_class_round_trip() {
        // Around the boundary where the length moves from the link's tag into the node.
        let lens = [
            0usize,
            1,
            16,
            17,
            LONG_KEY - 1,
            LONG_KEY,
            LONG_KEY + 1,
            200_000,
        ];
        let mut d = Dict::new();
        let keys: Vec<Vec<u8>> = lens
            .iter()
            .enumerate()
            .map(|(i, &n)| (0..n).map(|j| (i * 31 + j) as u8).collect())
            .collect();
        for (i, k) in keys.iter().enumerate() {
            put(
                &mut d,
                k,
                emb(format!("v{i}").as_bytes()),
                (i as u64 % 2) * 77,
            );
        }
        // Force resizes so every node is relinked (and re-tagged links copied).
        for i in 0..100u32 {
            put(&mut d, format!("filler{i}").as_bytes(), int(1000), 0);
        }
        for (i, k) in keys.iter().enumerate() {
            let v = emb(format!("v{i}").as_bytes());
            assert_eq!(get(&d, k), Some((v.clone(), (i as u64 % 2) * 77)));
            // Moving a long-keyed node keeps its key.
            let mut s = d.get_mut(h(k), k).expect("present");
            s.set_expire_at(if i % 2 == 0 { 5 } else { 0 });
            s.raw_mut().expect("string").push(b'!');
            assert_eq!(s.key(), &k[..]);
        }
        let mut seen = 0;
        d.for_each_meta(|hash, n| {
            assert_eq!(hash, h(n.key()));
            if n.value().encoding() == "raw" {
                seen += 1;
            }
            n.meta()
        });
        assert_eq!(seen, keys.len());
        for k in &keys {
            let r = d
                .remove_where(h(k), |n| n.value().encoding() == "raw")
                .expect("present");
            assert_eq!(r.key(), &k[..]);
        }
        assert_eq!(d.len(), 100);
    }

    #[test]
    fn get_mut_at_finds_an_entry_by_address() {
        let mut d = Dict::new();
        for i in 0..50 {
            put(&mut d, format!("k{i}").as_bytes(), int(i), 0);
        }
        let addr = d.get(h(b"k7"), b"k7").expect("present").addr();
        let mut s = d.get_mut_at(h(b"k7"), addr).expect("found by address");
        s.set_value(int(700));
        assert_eq!(get(&d, b"k7"), Some((int(700), 0)));
        assert!(d.get_mut_at(h(b"k7"), addr + 1).is_none());
        d.remove(h(b"k7"), b"k7");
        assert!(d.get_mut_at(h(b"k7"), addr).is_none());
    }

    /// A table doubles at 1.5 keys per bucket: it always holds between 0.75 and 1.5.
    #[test]
    fn tables_hold_three_quarters_to_one_and_a_half_keys_per_bucket() {
        let mut d = Dict::new();
        for i in 0..5_000usize {
            put(&mut d, format!("k{i}").as_bytes(), int(i as i64), 0);
            let (len, n) = (i + 1, d.bucket_count());
            assert!(len * 2 <= n * 3, "{len} keys in {n} buckets");
            if n > MIN_BUCKETS {
                assert!(len * 4 > n * 3, "{len} keys in {n} buckets");
            }
        }
        assert_eq!(d.bucket_count(), 4096);
    }

    #[test]
    fn where_lookups_confirm_the_hash() {
        // A predicate that holds for every entry must still pick the entry with the
        // asked hash, whichever chain the entries share.
        let mut d = Dict::new();
        put(&mut d, b"a", int(1), 0);
        put(&mut d, b"b", int(1), 0);
        for k in [&b"a"[..], b"b"] {
            assert_eq!(d.get_where(h(k), |_| true).map(|n| n.key()), Some(k));
            assert_eq!(d.get_mut_where(h(k), |_| true).expect("present").key(), k);
        }
        let r = d.remove_where(h(b"b"), |_| true).expect("present");
        assert_eq!(r.key(), b"b");
        assert!(d.remove_where(h(b"b"), |_| true).is_none());
        assert_eq!(get(&d, b"a"), Some((int(1), 0)));
    }

    /// Lookups by the low bits of a hash (the deadline index's) find exactly the entries
    /// a full scan finds, with tables smaller and larger than `2^bits` buckets (larger
    /// ones are searched in every bucket the bits could pick).
    #[test]
    fn low_bit_lookups_agree_with_a_scan_at_any_table_size() {
        for bits in [0u32, 2, 5, 22] {
            let mut d = Dict::new();
            let keys: Vec<Vec<u8>> = (0..800).map(|i| format!("k{i}").into_bytes()).collect();
            for (i, k) in keys.iter().enumerate() {
                put(&mut d, k, int(i as i64), 1_000 + (i as u64 % 7));
            }
            assert!(d.bucket_count() > 1 << bits.min(9), "{bits}");
            let low_mask = (1u64 << bits) - 1;
            for (i, k) in keys.iter().enumerate() {
                let at = 1_000 + (i as u64 % 7);
                let (full, n) = d
                    .get_where_low(h(k), bits, |n| n.expire_at() == at)
                    .expect("found");
                // Any entry with the same deadline and the same low bits answers.
                assert_eq!(full, h(n.key()));
                assert_eq!(full & low_mask, h(k) & low_mask);
                assert_eq!(n.expire_at(), at);
                // A deadline no key has finds nothing.
                assert!(
                    d.get_where_low(h(k), bits, |n| n.expire_at() == 5)
                        .is_none()
                );
            }
            // Removing by low bits empties the table with every key accounted for once.
            let mut seen = HashSet::new();
            for (i, k) in keys.iter().enumerate() {
                let at = 1_000 + (i as u64 % 7);
                let (full, r) = d
                    .remove_where_low(h(k), bits, |n| n.expire_at() == at)
                    .expect("one key left per entry");
                assert_eq!(full, h(r.key()));
                assert!(seen.insert(r.key().to_vec()));
            }
            assert!(d.is_empty());
        }
    }

    /// `passed` tells exactly which keys a walk has visited, across growth, and with
    /// shrinking forbidden the table keeps its buckets when emptied.
    #[test]
    fn passed_matches_what_a_walk_visited_across_growth() {
        let mut d = Dict::new();
        d.set_shrink(false);
        let keys: Vec<Vec<u8>> = (0..300u32)
            .map(|i| format!("key{i}").into_bytes())
            .collect();
        for (i, k) in keys.iter().enumerate() {
            put(&mut d, k, int(i as i64), 0);
        }
        for steps in [1usize, 7, 40, 100] {
            let mut seen = HashSet::new();
            let mut cursor = 0;
            for _ in 0..steps {
                cursor = d.scan(cursor, |n| {
                    seen.insert(n.key().to_vec());
                });
                assert_ne!(cursor, 0, "the walk ended early");
            }
            // Growth by inserting many keys after the walk started.
            for i in 0..3000u32 {
                put(&mut d, format!("more{i}").as_bytes(), int(1), 0);
            }
            for k in &keys {
                assert_eq!(Dict::passed(d.hash(k), cursor), seen.contains(k));
            }
            // The rest of the walk visits exactly the keys not passed.
            let mut rest = HashSet::new();
            loop {
                cursor = d.scan(cursor, |n| {
                    rest.insert(n.key().to_vec());
                });
                if cursor == 0 {
                    break;
                }
            }
            for k in &keys {
                assert!(seen.contains(k) != rest.contains(k));
            }
            let buckets = d.bucket_count();
            for i in 0..3000u32 {
                let k = format!("more{i}");
                d.remove(h(k.as_bytes()), k.as_bytes());
            }
            assert_eq!(d.bucket_count(), buckets);
        }
    }

    #[test]
    fn scan_sees_every_stable_key_across_growth_shrink_and_moves() {
        let mut d = Dict::new();
        let stable: Vec<String> = (0..500).map(|i| format!("stable{i}")).collect();
        for k in &stable {
            put(&mut d, k.as_bytes(), emb(b"v"), 0);
        }
        let mut seen = HashSet::new();
        let mut cursor = 0u64;
        let mut step = 0u32;
        loop {
            cursor = d.scan(cursor, |n| {
                seen.insert(n.key().to_vec());
            });
            step += 1;
            // Grow the table a lot, move nodes, then shrink it, in the middle of the scan.
            if step == 3 {
                for i in 0..5000 {
                    put(&mut d, format!("tmp{i}").as_bytes(), int(i), 0);
                }
                for k in &stable {
                    let mut s = d.get_mut(h(k.as_bytes()), k.as_bytes()).expect("present");
                    s.set_expire_at(99);
                }
            }
            if step == 40 {
                for i in 0..5000 {
                    let k = format!("tmp{i}");
                    d.remove(h(k.as_bytes()), k.as_bytes());
                }
            }
            if cursor == 0 {
                break;
            }
        }
        for k in &stable {
            assert!(seen.contains(k.as_bytes()), "scan missed {k}");
        }
    }

    #[test]
    fn random_node_finds_entries() {
        let mut d = Dict::new();
        assert!(d.random_node(1, 2).is_none());
        for i in 0..100 {
            put(&mut d, format!("k{i}").as_bytes(), int(i), 0);
        }
        let mut seen = HashSet::new();
        for i in 0..2000u64 {
            let (hash, n) = d
                .random_node(i.wrapping_mul(0x9E37_79B9_7F4A_7C15), i)
                .expect("non-empty");
            assert_eq!(hash, h(n.key()));
            seen.insert(n.key().to_vec());
        }
        assert!(seen.len() > 50, "sampling covered only {}", seen.len());
    }

    #[test]
    fn removed_nodes_free_or_hand_over_their_values() {
        let mut d = Dict::new();
        put(&mut d, b"l", list(100), 3);
        put(&mut d, b"s", emb(b"small"), 0);
        put(&mut d, b"i", int(9), 0);
        let r = d.remove(h(b"l"), b"l").expect("present");
        assert_eq!(r.expire_at(), 3);
        assert!(matches!(r.take_value(), Some(Value::List(_))));
        assert!(
            d.remove(h(b"s"), b"s")
                .expect("present")
                .take_value()
                .is_none()
        );
        let e = d.remove(h(b"i"), b"i").expect("present").into_entry();
        assert_eq!(e.value, int(9));
        put(&mut d, b"x", raw(b"kept"), 0);
        let mut all = Vec::new();
        d.into_each(|r| all.push(r.into_entry().value));
        assert_eq!(all, vec![raw(b"kept")]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Set(u8, u8, u64),
        SetValue(u8, u8),
        Append(u8),
        Expire(u8, u64),
        Remove(u8),
        Get(u8),
    }

    fn value_of(n: u8) -> Value {
        match n % 6 {
            0 => int(i64::from(n) - 100),
            1 => emb(&vec![b'a'; usize::from(n) % (EMBSTR_MAX + 1)]),
            2 => emb(b""),
            // Both sides of RAW_INLINE_MAX.
            3 => raw(&vec![b'r'; (usize::from(n) * 2) ^ usize::from(n & 1)]),
            4 => list(usize::from(n % 4)),
            _ => emb(&[b'x'; EMBSTR_MAX]),
        }
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0u8..48, any::<u8>(), 0u64..3).prop_map(|(k, v, t)| Op::Set(k, v, t)),
            (0u8..48, any::<u8>()).prop_map(|(k, v)| Op::SetValue(k, v)),
            (0u8..48).prop_map(Op::Append),
            (0u8..48, 0u64..3).prop_map(|(k, t)| Op::Expire(k, t)),
            (0u8..48).prop_map(Op::Remove),
            (0u8..48).prop_map(Op::Get),
        ]
    }

    proptest::proptest! {
        /// Random operations against a `HashMap<key, (value, deadline)>` model: every
        /// payload kind, deadlines set and cleared (nodes moved), in-place string edits,
        /// long and short keys; compared after every step and by a full walk.
        #[test]
        fn behaves_like_a_hashmap(ops in proptest::collection::vec(op(), 1..300)) {
            let mut d = Dict::new();
            let mut m: HashMap<Vec<u8>, (Value, u64)> = HashMap::new();
            let key = |k: u8| -> Vec<u8> {
                if k % 8 == 7 {
                    vec![k; LONG_KEY + usize::from(k)]
                } else {
                    format!("key:{k}").into_bytes()
                }
            };
            for op in ops {
                match op {
                    Op::Set(k, v, t) => {
                        let k = key(k);
                        put(&mut d, &k, value_of(v), t * 1000);
                        m.insert(k, (value_of(v), t * 1000));
                    }
                    Op::SetValue(k, v) => {
                        let k = key(k);
                        if let Some(mut s) = d.get_mut(h(&k), &k) {
                            s.set_value(value_of(v));
                        }
                        if let Some(e) = m.get_mut(&k) {
                            e.0 = value_of(v);
                        }
                    }
                    Op::Append(k) => {
                        let k = key(k);
                        let got = d.get_mut(h(&k), &k).and_then(|mut s| s.raw_mut().map(|b| { b.push(b'+'); }));
                        let want = m.get_mut(&k).and_then(|e| match &mut e.0 {
                            Value::Str(s) => {
                                s.make_raw().push(b'+');
                                Some(())
                            }
                            _ => None,
                        });
                        proptest::prop_assert_eq!(got, want);
                    }
                    Op::Expire(k, t) => {
                        let k = key(k);
                        if let Some(mut s) = d.get_mut(h(&k), &k) {
                            s.set_expire_at(t * 7);
                        }
                        if let Some(e) = m.get_mut(&k) {
                            e.1 = t * 7;
                        }
                    }
                    Op::Remove(k) => {
                        let k = key(k);
                        let got = d.remove(h(&k), &k).map(|r| {
                            let e = r.into_entry();
                            { let at = e.expire_at(); (e.value, at) }
                        });
                        proptest::prop_assert_eq!(got, m.remove(&k));
                    }
                    Op::Get(k) => {
                        let k = key(k);
                        proptest::prop_assert_eq!(get(&d, &k), m.get(&k).cloned());
                    }
                }
                proptest::prop_assert_eq!(d.len(), m.len());
            }
            let mut all = HashMap::new();
            let mut sizes = Vec::new();
            d.for_each(|n| {
                let v = n.value().to_value();
                // The block's size is what the accounting computes for its content
                // (a string edited in place stays a whole `Value` until it is replaced).
                // SAFETY: the node is live while `d` is borrowed.
                let (size, whole) = unsafe { (n.node.size(), n.node.header() & KIND_MASK == KIND_VALUE) };
                let payload = if whole { 24 } else { payload_size(&v, n.key().len(), n.expire_at() != 0) };
                sizes.push((size, block_size(n.expire_at() != 0, payload, n.key().len())));
                all.insert(n.key().to_vec(), (v, n.expire_at()));
            });
            for (got, want) in sizes {
                proptest::prop_assert_eq!(got, want);
            }
            proptest::prop_assert_eq!(all, m);
        }
    }
}
