//! A chained hash table keyed by byte strings, the storage of every keyspace shard.
//!
//! Why not `hashbrown`: Redis's `SCAN` promises that every key present for the whole scan
//! is returned at least once, even while the table grows or shrinks between calls, and
//! eviction needs to sample random entries. Both fall out of a power-of-two table of
//! bucket chains iterated with Redis's reverse-binary cursor (Pieter Noordhuis's
//! algorithm): a bucket's entries always move to buckets whose reversed index is not
//! smaller, so a cursor never skips them. Open addressing (hashbrown) moves entries
//! between probe positions and cannot keep that promise.
//!
//! Memory layout (this table holds every key of the server, so bytes per key matter):
//! each entry is ONE heap block, `[next link | value | key bytes]`. The key's name lives
//! inside the node instead of in a second allocation; its length (up to 254 bytes;
//! longer keys store it in the node) and an 8-bit fingerprint of its hash ride in the
//! top 16 bits of the link that points to the node, so lookups skip most chain
//! neighbours without comparing keys; and the node does not store the full hash: the table keeps the
//! keyspace's hasher and recomputes a hash where it needs one (moving entries on resize,
//! confirming a match in the `*_where` lookups, reporting a sampled entry's hash). A
//! 16-byte key with the keyspace's 40-byte `Entry` takes one 64-byte block, where a
//! boxed key and a node with a stored hash took 80 + 16 bytes in two blocks.
//!
//! The caller supplies the key's 64-bit hash (the keyspace computes it once to pick the
//! shard; it must come from the same hasher as the table's, which debug builds check);
//! the table uses its low bits. Resizing is done at once: with many shards per server
//! each table stays small enough for that to be cheap, and the bucket array (8 bytes a
//! bucket) is the only thing reallocated, so growth adds at most 8 bytes per key of
//! transient memory.

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

/// A pointer to a node with, in its top 16 bits, the node's key length (or [`LONG_KEY`])
/// and its hash's [`fingerprint`]. Keeping the length in the link that leads to a node
/// saves four bytes in every node, which is what puts a 16-byte key and its 48-byte node
/// in one 64-byte block; the fingerprint lets a lookup pass over chain neighbours
/// without comparing their keys (the node stores no hash).
struct Tagged<V>(NonNull<Node<V>>);

impl<V> Clone for Tagged<V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V> Copy for Tagged<V> {}

impl<V> Tagged<V> {
    /// The node's address, untagged.
    fn as_ptr(self) -> *mut Node<V> {
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
}

/// A link to the next node of a chain (or a bucket's head).
type Link<V> = Option<Tagged<V>>;

/// The fixed part of a node; the key follows in the same allocation, at
/// [`Node::KEY_OFFSET`], preceded by its length (8 bytes) only for keys of
/// [`LONG_KEY`] bytes or more. Nodes are only ever accessed field by field through raw
/// pointers, never copied or written whole.
#[repr(C)]
struct Node<V> {
    next: Link<V>,
    value: V,
}

impl<V> Node<V> {
    /// Where the key's bytes (or a long key's length) start in a node's block.
    const KEY_OFFSET: usize = std::mem::size_of::<Self>();

    /// Bytes requested for a node with a key of `key_len` bytes.
    const fn block_size(key_len: usize) -> usize {
        let prefix = if key_len >= LONG_KEY { 8 } else { 0 };
        Self::KEY_OFFSET + prefix + key_len
    }

    fn layout(key_len: usize) -> Layout {
        match Layout::from_size_align(Self::block_size(key_len), std::mem::align_of::<Self>()) {
            Ok(l) => l,
            // Only for keys near isize::MAX bytes, which no request can carry.
            Err(_) => panic!("key of {key_len} bytes is too long for a table node"),
        }
    }

    /// Allocates a node holding `key` (whose hash is `hash`) and `value`, linked to `next`.
    fn create(key: &[u8], hash: u64, value: V, next: Link<V>) -> Tagged<V> {
        let layout = Self::layout(key.len());
        // SAFETY: the layout has a non-zero size (at least `size_of::<Node<V>>()`, and a
        // node holds a pointer).
        let raw = unsafe { alloc(layout) }.cast::<Node<V>>();
        if raw.is_null() {
            handle_alloc_error(layout)
        }
        // A set top bit would corrupt the tag: a broken platform assumption, not an
        // error a client could cause.
        assert!(
            raw.addr() & !ADDR_MASK == 0,
            "node address {raw:p} does not fit 48 bits"
        );
        // SAFETY: `raw` is a fresh block of `block_size(key.len())` bytes aligned for
        // `Node<V>`: the struct fits at the start, then the optional length prefix and
        // the key's bytes at KEY_OFFSET.
        unsafe {
            raw.write(Node { next, value });
            let mut dst = raw.cast::<u8>().add(Self::KEY_OFFSET);
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

    /// The key stored in `node`.
    ///
    /// # Safety
    /// `node` must be a live node made by [`Node::create`], and the slice must not
    /// outlive it.
    unsafe fn key<'a>(node: Tagged<V>) -> &'a [u8] {
        let p = node.as_ptr().cast::<u8>();
        // SAFETY: per the contract, the block holds the key (after its length for long
        // keys) at KEY_OFFSET, and the tag says which.
        unsafe {
            let at = p.add(Self::KEY_OFFSET);
            match node.len_tag() {
                LONG_KEY => {
                    let len = at.cast::<u64>().read_unaligned() as usize;
                    std::slice::from_raw_parts(at.add(8), len)
                }
                len => std::slice::from_raw_parts(at, len),
            }
        }
    }

    /// Frees `node` and returns its value.
    ///
    /// # Safety
    /// `node` must be a live node made by [`Node::create`] and unlinked from every
    /// chain; it is dangling afterwards.
    unsafe fn destroy(node: Tagged<V>) -> V {
        let p = node.as_ptr();
        // SAFETY: per the contract the node is live and owned by the caller: its value
        // is moved out exactly once and the block is freed with the layout it was
        // allocated with (recomputed from the same key length).
        unsafe {
            let layout = Self::layout(Self::key(node).len());
            let value = std::ptr::read(&raw const (*p).value);
            dealloc(p.cast::<u8>(), layout);
            value
        }
    }
}

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

/// Seed of the hasher of tables built with [`Dict::new`].
const DEFAULT_SEED: u64 = 0x5EED_D1C7;

/// A hash table from byte-string keys to `V`, with stable-cursor scanning and random sampling.
pub struct Dict<V> {
    buckets: Vec<Link<V>>,
    len: usize,
    hasher: FixedState,
    /// False while a walk by cursor must not see the table shrink (a keyspace freeze:
    /// see [`Dict::set_shrink`]).
    shrink: bool,
    /// The table owns its nodes (and so its `V`s), as a `Box<Node<V>>` would.
    _owns: PhantomData<Box<Node<V>>>,
}

// SAFETY: a `Dict` owns its nodes exclusively (no node is shared between tables and no
// pointer to one escapes except as borrows tied to `&self`/`&mut self`), exactly like a
// `Vec<Box<(Vec<u8>, V)>>`, so it is `Send`/`Sync` when `V` is.
unsafe impl<V: Send> Send for Dict<V> {}
// SAFETY: see the `Send` impl; shared access only hands out `&V` and `&[u8]`.
unsafe impl<V: Sync> Sync for Dict<V> {}

impl<V> Default for Dict<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> Dict<V> {
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
            _owns: PhantomData,
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

    /// Bytes requested from the allocator for one entry whose key is `key_len` bytes:
    /// the node (chain link, value) and the key's bytes, in one block.
    pub const fn node_size(key_len: usize) -> usize {
        Node::<V>::block_size(key_len)
    }

    /// Bytes of a node besides its key's bytes.
    pub const fn node_header_size() -> usize {
        Node::<V>::KEY_OFFSET
    }

    /// The first node of `hash`'s chain whose fingerprint matches `hash` and for which
    /// `pred` holds.
    fn find(&self, hash: u64, mut pred: impl FnMut(&[u8], &V) -> bool) -> Link<V> {
        if self.buckets.is_empty() {
            return None;
        }
        let fp = fingerprint(hash);
        let mut cur = self.buckets[hash as usize & self.mask()];
        while let Some(node) = cur {
            // SAFETY: every node linked from the table is live while `self` is borrowed.
            unsafe {
                if node.fingerprint() == fp && pred(Node::key(node), &(*node.as_ptr()).value) {
                    return Some(node);
                }
                cur = (*node.as_ptr()).next;
            }
        }
        None
    }

    /// Looks a key up.
    pub fn get(&self, hash: u64, key: &[u8]) -> Option<&V> {
        let node = self.find(hash, |k, _| k == key)?;
        // SAFETY: the node is live for as long as `self` is borrowed.
        Some(unsafe { &(*node.as_ptr()).value })
    }

    /// Looks a key up for modification.
    pub fn get_mut(&mut self, hash: u64, key: &[u8]) -> Option<&mut V> {
        let node = self.find(hash, |k, _| k == key)?;
        // SAFETY: the node is live and `self` is borrowed mutably, so no other
        // reference to its value exists.
        Some(unsafe { &mut (*node.as_ptr()).value })
    }

    /// Looks up the first entry with `hash` for which `pred` holds.
    pub fn get_where(&self, hash: u64, mut pred: impl FnMut(&[u8], &V) -> bool) -> Option<&V> {
        let hasher = self.hasher.clone();
        let node = self.find(hash, |k, v| pred(k, v) && hasher.hash_one(k) == hash)?;
        // SAFETY: the node is live for as long as `self` is borrowed.
        Some(unsafe { &(*node.as_ptr()).value })
    }

    /// Looks up the first entry with `hash` for which `pred` holds, for modification
    /// (used where only a key's hash is known: eviction queues, the deadline index).
    pub fn get_mut_where(
        &mut self,
        hash: u64,
        mut pred: impl FnMut(&[u8], &V) -> bool,
    ) -> Option<(&[u8], &mut V)> {
        let hasher = self.hasher.clone();
        let node = self.find(hash, |k, v| pred(k, v) && hasher.hash_one(k) == hash)?;
        // SAFETY: the node is live and `self` is borrowed mutably; the key and the
        // value are disjoint parts of the block.
        unsafe { Some((Node::key(node), &mut (*node.as_ptr()).value)) }
    }

    /// The value stored at address `addr` in `hash`'s chain (an entry handed out earlier
    /// and found again by identity, as the keyspace does to re-measure a value after a
    /// command changed it). Cheaper than [`Dict::get_mut_where`]: neither keys nor hashes
    /// are compared.
    pub fn get_mut_at(&mut self, hash: u64, addr: usize) -> Option<&mut V> {
        let node = self.find(hash, |_, v| std::ptr::from_ref(v).addr() == addr)?;
        // SAFETY: the node is live and `self` is borrowed mutably, so no other
        // reference to its value exists.
        Some(unsafe { &mut (*node.as_ptr()).value })
    }

    /// Looks a key up and returns the stored key too.
    pub fn get_key_value(&self, hash: u64, key: &[u8]) -> Option<(&[u8], &V)> {
        let node = self.find(hash, |k, _| k == key)?;
        // SAFETY: the node is live for as long as `self` is borrowed.
        unsafe { Some((Node::key(node), &(*node.as_ptr()).value)) }
    }

    /// Inserts or replaces; returns the previous value of the key.
    pub fn insert(&mut self, hash: u64, key: &[u8], value: V) -> Option<V> {
        if let Some(slot) = self.get_mut(hash, key) {
            return Some(std::mem::replace(slot, value));
        }
        self.insert_unique(hash, key, value);
        None
    }

    /// Inserts a key the caller knows is absent (saves the lookup of [`Dict::insert`]).
    pub fn insert_unique(&mut self, hash: u64, key: &[u8], value: V) {
        debug_assert_eq!(hash, self.hash(key), "hash from another hasher");
        debug_assert!(
            self.get(hash, key).is_none(),
            "insert_unique of a present key"
        );
        if self.len >= self.buckets.len() {
            self.resize((self.buckets.len() * 2).max(MIN_BUCKETS));
        }
        let idx = hash as usize & self.mask();
        self.buckets[idx] = Some(Node::create(key, hash, value, self.buckets[idx]));
        self.len += 1;
    }

    /// Unlinks the first node of `hash`'s chain whose fingerprint matches `hash` and for
    /// which `pred` holds.
    fn unlink(&mut self, hash: u64, mut pred: impl FnMut(&[u8], &V) -> bool) -> Link<V> {
        if self.buckets.is_empty() {
            return None;
        }
        let idx = hash as usize & self.mask();
        let fp = fingerprint(hash);
        let mut link: *mut Link<V> = &mut self.buckets[idx];
        // SAFETY: `link` always points at a live link slot (a bucket, or the `next`
        // field of a live node) and `self` is borrowed mutably throughout.
        unsafe {
            while let Some(node) = *link {
                let p = node.as_ptr();
                if node.fingerprint() == fp && pred(Node::key(node), &(*p).value) {
                    *link = (*p).next;
                    self.len -= 1;
                    return Some(node);
                }
                link = &raw mut (*p).next;
            }
        }
        None
    }

    /// Removes a key; returns its value.
    pub fn remove(&mut self, hash: u64, key: &[u8]) -> Option<V> {
        let node = self.unlink(hash, |k, _| k == key)?;
        // SAFETY: the node was just unlinked and is owned here.
        let value = unsafe { Node::destroy(node) };
        self.maybe_shrink();
        Some(value)
    }

    /// Removes the first entry with `hash` for which `pred` holds (used when only the hash
    /// of a key is known, as in the keyspace's deadline index); returns a copy of the
    /// stored key and the value.
    pub fn remove_where(
        &mut self,
        hash: u64,
        mut pred: impl FnMut(&[u8], &V) -> bool,
    ) -> Option<(Box<[u8]>, V)> {
        let hasher = self.hasher.clone();
        let node = self.unlink(hash, |k, v| pred(k, v) && hasher.hash_one(k) == hash)?;
        // SAFETY: the node was just unlinked and is owned here; the key is copied out
        // before the node is freed.
        let (key, value) = unsafe {
            let key: Box<[u8]> = Node::key(node).into();
            (key, Node::destroy(node))
        };
        self.maybe_shrink();
        Some((key, value))
    }

    /// As [`Dict::remove_where`], but hands the stored key (borrowed from the node, which
    /// is freed afterwards) and the value to `f` instead of copying the key out: the
    /// active expiry cycle's path, where a key copy per reclaimed key was an allocation
    /// and a free for nothing.
    pub fn remove_where_with<R>(
        &mut self,
        hash: u64,
        mut pred: impl FnMut(&[u8], &V) -> bool,
        f: impl FnOnce(&[u8], V) -> R,
    ) -> Option<R> {
        let hasher = self.hasher.clone();
        let node = self.unlink(hash, |k, v| pred(k, v) && hasher.hash_one(k) == hash)?;
        // SAFETY: the node was just unlinked and is owned here: the value is moved out
        // once, the key is read while the block is still allocated, and the block is
        // freed exactly once, with the layout recomputed from the same key.
        let out = unsafe {
            let p = node.as_ptr();
            let key = Node::key(node);
            let layout = Node::<V>::layout(key.len());
            let value = std::ptr::read(&raw const (*p).value);
            let out = f(key, value);
            dealloc(p.cast::<u8>(), layout);
            out
        };
        self.maybe_shrink();
        Some(out)
    }

    /// Consumes the table, handing every entry to `f` (order unspecified).
    pub fn into_each(mut self, mut f: impl FnMut(Box<[u8]>, V)) {
        for bucket in self.buckets.iter_mut() {
            let mut cur = bucket.take();
            while let Some(node) = cur {
                // SAFETY: the chain was detached from the table, so each node is owned
                // here; `next` and the key are read before the node is freed.
                let (key, value) = unsafe {
                    cur = (*node.as_ptr()).next;
                    let key: Box<[u8]> = Node::key(node).into();
                    (key, Node::destroy(node))
                };
                f(key, value);
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
                    cur = (*node.as_ptr()).next;
                    drop(Node::destroy(node));
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
        let mut fresh: Vec<Link<V>> = vec![None; new_size];
        let mask = new_size - 1;
        for bucket in self.buckets.iter_mut() {
            let mut cur = bucket.take();
            while let Some(node) = cur {
                // SAFETY: each node of the detached chain is live and relinked exactly
                // once into `fresh`; `next` is read before it is overwritten.
                unsafe {
                    let p = node.as_ptr();
                    cur = (*p).next;
                    let idx = self.hasher.hash_one(Node::key(node)) as usize & mask;
                    (*p).next = fresh[idx];
                    fresh[idx] = Some(node);
                }
            }
        }
        self.buckets = fresh;
    }

    /// Visits the nodes of one chain.
    fn chain(&self, mut cur: Link<V>, mut f: impl FnMut(Tagged<V>)) {
        while let Some(node) = cur {
            // SAFETY: nodes linked from the table are live while `self` is borrowed;
            // `next` is read before `f` sees the node (which it must not unlink).
            unsafe {
                cur = (*node.as_ptr()).next;
            }
            f(node);
        }
    }

    /// Visits every entry (order unspecified).
    pub fn for_each(&self, mut f: impl FnMut(&[u8], &V)) {
        for &head in &self.buckets {
            // SAFETY: the nodes are live while `self` is borrowed.
            self.chain(head, |n| unsafe { f(Node::key(n), &(*n.as_ptr()).value) });
        }
    }

    /// Visits every entry with its hash, for modification (order unspecified).
    pub fn for_each_mut(&mut self, mut f: impl FnMut(u64, &[u8], &mut V)) {
        let hasher = self.hasher.clone();
        for &head in &self.buckets {
            self.chain(head, |n| {
                // SAFETY: the nodes are live and `self` is borrowed mutably, so this is
                // the only reference to each value; key and value are disjoint.
                unsafe {
                    let key = Node::key(n);
                    f(hasher.hash_one(key), key, &mut (*n.as_ptr()).value)
                }
            });
        }
    }

    /// Visits the entries of the bucket at `cursor` and returns the next cursor (0 when
    /// the scan is complete). Every key present from the first call to the last is
    /// visited at least once, whatever resizes happen between calls.
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(&[u8], &V)) -> u64 {
        if self.buckets.is_empty() {
            return 0;
        }
        let mask = self.mask() as u64;
        let head = self.buckets[(cursor & mask) as usize];
        // SAFETY: the nodes are live while `self` is borrowed.
        self.chain(head, |n| unsafe { f(Node::key(n), &(*n.as_ptr()).value) });
        next_cursor(cursor, mask)
    }

    /// A pseudo-random entry: `r1` picks a non-empty bucket (probing from a random
    /// start), `r2` an entry of its chain. Not uniform over keys (long chains are
    /// under-sampled) exactly as Redis's dictGetRandomKey is not.
    pub fn random_entry(&self, r1: u64, r2: u64) -> Option<(&[u8], &V)> {
        self.random_node(r1, r2).map(|(_, k, v)| (k, v))
    }

    /// Like [`Dict::random_entry`], with the entry's hash.
    pub fn random_node(&self, r1: u64, r2: u64) -> Option<(u64, &[u8], &V)> {
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
            let node = found?;
            // SAFETY: the node is live while `self` is borrowed.
            return unsafe {
                let key = Node::key(node);
                Some((self.hasher.hash_one(key), key, &(*node.as_ptr()).value))
            };
        }
        None
    }
}

impl<V> Drop for Dict<V> {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn h(k: &[u8]) -> u64 {
        use std::hash::BuildHasher;
        foldhash::fast::FixedState::with_seed(DEFAULT_SEED).hash_one(k)
    }

    #[test]
    fn insert_get_remove() {
        let mut d = Dict::new();
        for i in 0..1000u32 {
            let k = format!("k{i}");
            assert!(d.insert(h(k.as_bytes()), k.as_bytes(), i).is_none());
        }
        assert_eq!(d.len(), 1000);
        assert_eq!(d.get(h(b"k10"), b"k10"), Some(&10));
        assert_eq!(d.insert(h(b"k10"), b"k10", 99), Some(10));
        assert_eq!(d.len(), 1000);
        for i in 0..1000u32 {
            let k = format!("k{i}");
            assert!(d.remove(h(k.as_bytes()), k.as_bytes()).is_some());
        }
        assert!(d.is_empty());
        assert!(d.bucket_count() <= MIN_BUCKETS);
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
            assert!(d.insert(h(k), k, i).is_none());
        }
        // Force resizes so every node is relinked (and re-tagged links copied).
        for i in 0..100u32 {
            let k = format!("filler{i}");
            d.insert(h(k.as_bytes()), k.as_bytes(), 1000);
        }
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(d.get_key_value(h(k), k), Some((&k[..], &i)));
        }
        let mut seen = 0;
        d.for_each_mut(|hash, k, v| {
            assert_eq!(hash, h(k));
            if *v < 1000 {
                assert_eq!(k, &keys[*v][..]);
                seen += 1;
            }
        });
        assert_eq!(seen, keys.len());
        for (i, k) in keys.iter().enumerate() {
            let (key, v) = d.remove_where(h(k), |_, v| *v == i).expect("present");
            assert_eq!((&key[..], v), (&k[..], i));
        }
        assert_eq!(d.len(), 100);
    }

    #[test]
    fn get_mut_at_finds_an_entry_by_address() {
        let mut d = Dict::new();
        for i in 0..50u32 {
            let k = format!("k{i}");
            d.insert(h(k.as_bytes()), k.as_bytes(), i);
        }
        let addr = std::ptr::from_ref(d.get(h(b"k7"), b"k7").expect("present")).addr();
        *d.get_mut_at(h(b"k7"), addr).expect("found by address") = 700;
        assert_eq!(d.get(h(b"k7"), b"k7"), Some(&700));
        assert!(d.get_mut_at(h(b"k7"), addr + 1).is_none());
        d.remove(h(b"k7"), b"k7");
        assert!(d.get_mut_at(h(b"k7"), addr).is_none());
    }

    #[test]
    fn where_lookups_confirm_the_hash() {
        // A predicate that holds for every entry must still pick the entry with the
        // asked hash, whichever chain the entries share.
        let mut d = Dict::new();
        d.insert(h(b"a"), b"a", 1u32);
        d.insert(h(b"b"), b"b", 1u32);
        for k in [&b"a"[..], b"b"] {
            assert_eq!(d.get_where(h(k), |_, _| true), Some(&1));
            let (key, _) = d.get_mut_where(h(k), |_, _| true).expect("present");
            assert_eq!(key, k);
        }
        let (key, _) = d.remove_where(h(b"b"), |_, _| true).expect("present");
        assert_eq!(&key[..], b"b");
        assert!(d.remove_where(h(b"b"), |_, _| true).is_none());
        assert_eq!(d.get(h(b"a"), b"a"), Some(&1));
    }

    /// `passed` tells exactly which keys a walk has visited, across growth, and with
    /// shrinking forbidden the table keeps its buckets when emptied.
    #[test]
    fn passed_matches_what_a_walk_visited_across_growth() {
        let mut d: Dict<u32> = Dict::new();
        d.set_shrink(false);
        let keys: Vec<Vec<u8>> = (0..300u32)
            .map(|i| format!("key{i}").into_bytes())
            .collect();
        for (i, k) in keys.iter().enumerate() {
            d.insert(d.hash(k), k, i as u32);
        }
        for steps in [1usize, 7, 40, 100] {
            let mut seen = std::collections::HashSet::new();
            let mut cursor = 0;
            for _ in 0..steps {
                cursor = d.scan(cursor, |k, _| {
                    seen.insert(k.to_vec());
                });
                assert_ne!(cursor, 0, "the walk ended early");
            }
            let mut grown = d.empty_like();
            std::mem::swap(&mut grown, &mut d);
            // Growth by inserting many keys after the walk started.
            for i in 0..3000u32 {
                let k = format!("more{i}").into_bytes();
                grown.insert(grown.hash(&k), &k, i);
            }
            for k in &keys {
                assert_eq!(Dict::<u32>::passed(grown.hash(k), cursor), seen.contains(k));
            }
            // The rest of the walk visits exactly the keys not passed.
            let mut rest = std::collections::HashSet::new();
            loop {
                cursor = grown.scan(cursor, |k, _| {
                    rest.insert(k.to_vec());
                });
                if cursor == 0 {
                    break;
                }
            }
            for k in &keys {
                assert!(seen.contains(k) != rest.contains(k));
            }
            let buckets = grown.bucket_count();
            for i in 0..3000u32 {
                let k = format!("more{i}").into_bytes();
                grown.remove(grown.hash(&k), &k);
            }
            assert_eq!(grown.bucket_count(), buckets);
            d = grown;
        }
    }

    #[test]
    fn remove_where_with_lends_the_key_and_frees_every_length_class() {
        let mut d = Dict::new();
        let keys: Vec<Vec<u8>> = [0usize, 5, LONG_KEY - 1, LONG_KEY, LONG_KEY + 9]
            .iter()
            .map(|&n| vec![b'k'; n])
            .collect();
        for (i, k) in keys.iter().enumerate() {
            d.insert(h(k), k, i);
        }
        for (i, k) in keys.iter().enumerate() {
            let got = d.remove_where_with(h(k), |_, v| *v == i, |key, v| (key.to_vec(), v));
            assert_eq!(got, Some((k.clone(), i)));
            assert!(d.remove_where_with(h(k), |_, _| true, |_, _| ()).is_none());
        }
        assert_eq!(d.len(), 0);
    }

    #[test]
    fn scan_sees_every_stable_key_across_growth_and_shrink() {
        let mut d = Dict::new();
        let stable: Vec<String> = (0..500).map(|i| format!("stable{i}")).collect();
        for k in &stable {
            d.insert(h(k.as_bytes()), k.as_bytes(), ());
        }
        let mut seen = HashSet::new();
        let mut cursor = 0u64;
        let mut step = 0u32;
        loop {
            cursor = d.scan(cursor, |k, _| {
                seen.insert(k.to_vec());
            });
            step += 1;
            // Grow the table a lot, then shrink it, in the middle of the scan.
            if step == 3 {
                for i in 0..5000 {
                    let k = format!("tmp{i}");
                    d.insert(h(k.as_bytes()), k.as_bytes(), ());
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
    fn random_entry_finds_entries() {
        let mut d = Dict::new();
        assert!(d.random_entry(1, 2).is_none());
        for i in 0..100u32 {
            let k = format!("k{i}");
            d.insert(h(k.as_bytes()), k.as_bytes(), i);
        }
        let mut seen = HashSet::new();
        for i in 0..2000u64 {
            let (_, v) = d
                .random_entry(i.wrapping_mul(0x9E37_79B9_7F4A_7C15), i)
                .expect("non-empty");
            seen.insert(*v);
        }
        assert!(seen.len() > 50, "sampling covered only {}", seen.len());
    }

    proptest::proptest! {
        #[test]
        fn behaves_like_a_hashmap(ops in proptest::collection::vec((0u8..3, 0u16..64, 0u32..1000), 1..400)) {
            let mut d = Dict::new();
            let mut m = HashMap::new();
            for (op, key, val) in ops {
                let k = format!("key{key}");
                let hk = h(k.as_bytes());
                match op {
                    0 => { proptest::prop_assert_eq!(d.insert(hk, k.as_bytes(), val), m.insert(k, val)); }
                    1 => { proptest::prop_assert_eq!(d.remove(hk, k.as_bytes()), m.remove(&k)); }
                    _ => { proptest::prop_assert_eq!(d.get(hk, k.as_bytes()), m.get(&k)); }
                }
                proptest::prop_assert_eq!(d.len(), m.len());
            }
            let mut all = Vec::new();
            d.for_each(|k, v| all.push((k.to_vec(), *v)));
            proptest::prop_assert_eq!(all.len(), m.len());
        }
    }
}
