//! Exact-size blocks for keyspace nodes whose size falls between the allocator's size
//! classes.
//!
//! mimalloc (like jemalloc) serves requests from size classes: 8 and 16 bytes, 16-byte steps up to 64
//! bytes, then four classes per doubling (80, 96, 112, 128, ...). A keyspace node is
//! `[link 8 | header 8 | deadline 8 | payload | key]` (`dict.rs`), so the issue's shape
//! with a TTL, a 16-byte key and a 32-byte string, is 72 bytes and would take an 80-byte
//! block: 8 bytes of every such key wasted; a node with a 100-byte string inline and a
//! deadline (136 bytes) would take 160. This module serves the sizes in the gaps of
//! 65..=256 bytes ([`CLASSES`]: 72, 88, 104, 120, then every multiple of 8 from 136 to
//! 248 but 160, 192 and 224; a request is rounded up to a multiple of 8) from chunks of
//! [`CHUNK_BYTES`], each chunk carved into blocks of one size; every other size goes to
//! the allocator as before.
//!
//! Layout and bookkeeping:
//! - A chunk is one allocation of [`CHUNK_BYTES`], aligned to its size, so a block's
//!   chunk is its address rounded down. The chunk starts with a [`Chunk`] header (its
//!   stripe and class, live-block count, a free list threaded through freed blocks, a
//!   bump offset for blocks never used, and links in its class's list of chunks with room).
//! - The chunks are split into [`STRIPES`] stripes, each behind its own mutex; a node is
//!   allocated in the stripe its key hash's top bits pick (the bits that pick the
//!   keyspace shard, so shards on different threads mostly meet different locks), and
//!   freed into its chunk's stripe, from whatever thread drops it (the lazy-free thread,
//!   a snapshot's kept copies).
//! - A chunk whose last block is freed is unmapped at once unless it is
//!   the only chunk of its class and stripe with room (kept so that a key set and
//!   deleted in a loop does not allocate a chunk each time); [`Slab::purge`] (`MEMORY
//!   PURGE`) returns those too.
//!
//! Chunks are mapped from the system (`mmap`), not taken from the allocator: an
//! allocator serves a 256 KiB block aligned to its size as a mapping of its own with a
//! header page in front (mimalloc 3: 260 KiB resident per chunk, 1.2 bytes more per key of
//! a 72-byte node), and a mapping of our own makes only the pages blocks were carved
//! from resident: a chunk's never-used tail costs no memory.
//!
//! Accounting: the server's counting allocator does not see the chunks; each stripe
//! counts its live blocks' bytes ([`Slab::live_bytes`]) and `used_memory` adds them
//! ([`used_bytes`]), so `used_memory` counts a live node as exactly its block
//! ([`block_bytes`]), as the keyspace's own accounting and `MEMORY USAGE` do, and freeing
//! a node lowers it at once (the eviction loop relies on that). Bytes of chunks that are
//! carved but not live (free blocks and headers: [`Slab::spare_bytes`]) show up where an
//! allocator's free pages do: in `used_memory_rss` and the fragmentation ratio. A chunk's
//! never-used tail is not counted there: it was never touched, so it is not resident
//! (with 16 classes in 16 stripes, up to 256 barely used chunks would otherwise read as
//! 64 MiB of fragmentation).

use crate::memory::alloc_size;
use parking_lot::Mutex;
use std::alloc::{Layout, handle_alloc_error};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes of one chunk (also its alignment).
pub const CHUNK_BYTES: usize = 256 << 10;

/// Block sizes the slab serves: the multiples of 8 between 64 and 256 that are not
/// allocator size classes.
pub const CLASSES: [usize; 16] = [
    72, 88, 104, 120, 136, 144, 152, 168, 176, 184, 200, 208, 216, 232, 240, 248,
];

/// Largest block the slab serves.
const MAX_CLASS: usize = CLASSES[CLASSES.len() - 1];

/// For each multiple of 8 up to [`MAX_CLASS`] (indexed by size / 8): its index in
/// [`CLASSES`], or `u8::MAX` when it is an allocator size class.
const CLASS_INDEX: [u8; MAX_CLASS / 8 + 1] = {
    let mut t = [u8::MAX; MAX_CLASS / 8 + 1];
    let mut c = 0;
    while c < CLASSES.len() {
        assert!(CLASSES[c].is_multiple_of(8) && alloc_size(CLASSES[c]) != CLASSES[c]);
        t[CLASSES[c] / 8] = c as u8;
        c += 1;
    }
    t
};

/// Independent lock domains.
pub const STRIPES: usize = 16;

/// The slab class serving a request of `n` bytes, if any: `n` rounded up to a multiple
/// of 8 is one of [`CLASSES`].
pub const fn class_of(n: usize) -> Option<usize> {
    if n <= 64 || n > MAX_CLASS {
        return None;
    }
    match CLASS_INDEX[n.div_ceil(8)] {
        u8::MAX => None,
        c => Some(c as usize),
    }
}

/// Bytes a keyspace node block of `n` requested bytes takes: its slab class, or the
/// allocator's size class.
///
/// ```
/// use basalt_engine::slab::block_bytes;
/// assert_eq!(block_bytes(64), 64);
/// assert_eq!(block_bytes(65), 72);
/// assert_eq!(block_bytes(72), 72);
/// assert_eq!(block_bytes(73), 80);
/// assert_eq!(block_bytes(121), 128);
/// ```
pub const fn block_bytes(n: usize) -> usize {
    match class_of(n) {
        Some(c) => CLASSES[c],
        None => alloc_size(n),
    }
}

/// The header at the start of every chunk. Only touched with its stripe's lock held,
/// through the raw chunk pointer field by field, never through a `&mut Chunk`: `stripe`
/// is read without the lock by whoever frees a block of the chunk (it never changes).
#[repr(C)]
struct Chunk {
    /// The stripe the chunk belongs to.
    stripe: u32,
    /// Its class (index into [`CLASSES`]).
    class: u32,
    /// Live blocks.
    live: u32,
    /// Offset of the first block never handed out.
    bump: u32,
    /// Freed blocks, each holding the address of the next in its first 8 bytes.
    free: *mut u8,
    /// Neighbours in the class's list of chunks with room (`in_avail`).
    prev: *mut Chunk,
    next: *mut Chunk,
    in_avail: bool,
}

/// Offset of a chunk's first block (the header rounded up to 16 bytes).
const FIRST_BLOCK: usize = (size_of::<Chunk>() + 15) & !15;

const CHUNK_LAYOUT: Layout = match Layout::from_size_align(CHUNK_BYTES, CHUNK_BYTES) {
    Ok(l) => l,
    Err(_) => panic!("bad chunk layout"),
};

/// One class of one stripe: its chunks with a free block.
struct Class {
    avail: *mut Chunk,
}

struct Stripe {
    classes: [Class; CLASSES.len()],
    /// Chunks held.
    chunks: usize,
}

// SAFETY: the raw pointers are chunks owned by the slab and only followed with the
// stripe's mutex held.
unsafe impl Send for Stripe {}

/// A stripe and its spare-byte counter, on a cache line of their own.
#[repr(align(64))]
struct Slot {
    stripe: Mutex<Stripe>,
    /// Bytes of this stripe's chunks that are not live blocks (written with the lock
    /// held, read without).
    spare: AtomicUsize,
    /// Of those, the never-used tails (past each chunk's bump offset).
    tail: AtomicUsize,
    /// Bytes of this stripe's live blocks (likewise).
    live: AtomicUsize,
}

/// A source of exact-size blocks (see the module docs).
pub struct Slab {
    slots: [Slot; STRIPES],
}

/// The slab keyspace nodes come from.
pub static NODES: Slab = Slab::new();

/// Bytes of [`NODES`]' chunks that are not live nodes.
pub fn spare_bytes() -> usize {
    NODES.spare_bytes()
}

/// `allocated()` (the allocator's total, which does not see the chunks) plus the bytes
/// of [`NODES`]' live blocks.
pub fn used_bytes(allocated: impl FnOnce() -> usize) -> usize {
    allocated() + NODES.live_bytes()
}

/// Returns [`NODES`]' empty chunks to the system (`MEMORY PURGE`); bytes returned.
pub fn purge() -> usize {
    NODES.purge()
}

impl Default for Slab {
    fn default() -> Self {
        Self::new()
    }
}

impl Slab {
    /// An empty slab (allocates nothing until the first block).
    pub const fn new() -> Slab {
        Slab {
            slots: [const {
                Slot {
                    stripe: Mutex::new(Stripe {
                        classes: [const {
                            Class {
                                avail: ptr::null_mut(),
                            }
                        }; CLASSES.len()],
                        chunks: 0,
                    }),
                    spare: AtomicUsize::new(0),
                    tail: AtomicUsize::new(0),
                    live: AtomicUsize::new(0),
                }
            }; STRIPES],
        }
    }

    /// Bytes of the chunks held that were handed out (or are headers) but are not live
    /// blocks: the resident spare (never-used tails are not resident and not counted).
    pub fn spare_bytes(&self) -> usize {
        self.slots
            .iter()
            // Read without the lock: the two counters may be a step apart.
            .map(|s| {
                let tail = s.tail.load(Ordering::Relaxed);
                s.spare.load(Ordering::Relaxed).saturating_sub(tail)
            })
            .sum()
    }

    /// Bytes of the chunks held that were never handed out.
    pub fn tail_bytes(&self) -> usize {
        self.slots
            .iter()
            .map(|s| s.tail.load(Ordering::Relaxed))
            .sum()
    }

    /// Bytes of the live blocks.
    pub fn live_bytes(&self) -> usize {
        self.slots
            .iter()
            .map(|s| s.live.load(Ordering::Relaxed))
            .sum()
    }

    /// Chunks held.
    pub fn chunks(&self) -> usize {
        self.slots.iter().map(|s| s.stripe.lock().chunks).sum()
    }

    /// A block for a request of `n` bytes, in the stripe `hint`'s top bits pick; None if
    /// `n` is not a slab size ([`class_of`]). The block is 8-byte aligned and holds
    /// [`block_bytes`]`(n)` bytes.
    pub fn alloc(&self, n: usize, hint: u64) -> Option<NonNull<u8>> {
        let c = class_of(n)?;
        let size = CLASSES[c];
        let s = (hint >> (64 - STRIPES.trailing_zeros())) as usize;
        let slot = &self.slots[s];
        let mut st = slot.stripe.lock();
        if st.classes[c].avail.is_null() {
            add(&slot.spare, CHUNK_BYTES as isize);
            add(&slot.tail, (CHUNK_BYTES - FIRST_BLOCK) as isize);
            st.chunks += 1;
            // Mapping it is a system call: not under the lock.
            drop(st);
            let fresh = new_chunk(s, c);
            st = slot.stripe.lock();
            // SAFETY: a fresh chunk, not in any list; the lock is held.
            unsafe { push_avail(&mut st.classes[c], fresh) };
        }
        let chunk = st.classes[c].avail;
        // SAFETY: `chunk` is a live chunk of this stripe and class with a free block
        // (chunks in the avail list have one); the lock is held, so its header is ours.
        let block = unsafe {
            let free = (*chunk).free;
            let block = if !free.is_null() {
                (*chunk).free = free.cast::<*mut u8>().read();
                free
            } else {
                let bump = (*chunk).bump;
                (*chunk).bump = bump + size as u32;
                add(&slot.tail, -(size as isize));
                chunk.cast::<u8>().add(bump as usize)
            };
            (*chunk).live += 1;
            if (*chunk).free.is_null() && (*chunk).bump as usize + size > CHUNK_BYTES {
                remove_avail(&mut st.classes[c], chunk);
            }
            block
        };
        add(&slot.spare, -(size as isize));
        add(&slot.live, size as isize);
        // SAFETY: a block inside a live chunk, never null.
        Some(unsafe { NonNull::new_unchecked(block) })
    }

    /// Frees a block [`Slab::alloc`] of this slab returned.
    ///
    /// # Safety
    /// `p` must come from this slab's `alloc` and not be freed since.
    pub unsafe fn free(&self, p: NonNull<u8>) {
        let p = p.as_ptr();
        let chunk = p.map_addr(|a| a & !(CHUNK_BYTES - 1)).cast::<Chunk>();
        // SAFETY: the block lies in a live chunk aligned to its size, whose header says
        // its stripe; the header is only touched with that stripe's lock held.
        let empty = unsafe {
            let s = ptr::addr_of!((*chunk).stripe).read() as usize;
            let slot = &self.slots[s];
            let mut st = slot.stripe.lock();
            let c = (*chunk).class as usize;
            let size = CLASSES[c];
            p.cast::<*mut u8>().write((*chunk).free);
            (*chunk).free = p;
            (*chunk).live -= 1;
            add(&slot.spare, size as isize);
            add(&slot.live, -(size as isize));
            if !(*chunk).in_avail {
                push_avail(&mut st.classes[c], chunk);
            }
            // An empty chunk goes back unless it is the class's only one with room.
            let empty =
                (*chunk).live == 0 && (st.classes[c].avail != chunk || !(*chunk).next.is_null());
            if empty {
                remove_avail(&mut st.classes[c], chunk);
                st.chunks -= 1;
            }
            empty.then(|| (slot, CHUNK_BYTES - (*chunk).bump as usize))
        };
        if let Some((slot, tail)) = empty {
            // Unlisted and empty: nobody else can reach it. Unmapped without the lock,
            // then uncounted.
            // SAFETY: live, empty and unlisted.
            unsafe { release(chunk) };
            let _st = slot.stripe.lock();
            add(&slot.tail, -(tail as isize));
            add(&slot.spare, -(CHUNK_BYTES as isize));
        }
    }

    /// Returns every empty chunk to the system; bytes returned.
    pub fn purge(&self) -> usize {
        let mut freed = 0;
        for slot in &self.slots {
            let mut st = slot.stripe.lock();
            for c in 0..CLASSES.len() {
                let mut cur = st.classes[c].avail;
                while !cur.is_null() {
                    // SAFETY: chunks in the list are live; `next` is read before the
                    // chunk may be released; the lock is held.
                    unsafe {
                        let next = (*cur).next;
                        if (*cur).live == 0 {
                            remove_avail(&mut st.classes[c], cur);
                            let tail = CHUNK_BYTES - (*cur).bump as usize;
                            release(cur);
                            st.chunks -= 1;
                            add(&slot.tail, -(tail as isize));
                            add(&slot.spare, -(CHUNK_BYTES as isize));
                            freed += CHUNK_BYTES;
                        }
                        cur = next;
                    }
                }
            }
        }
        freed
    }
}

impl Drop for Slab {
    fn drop(&mut self) {
        // Only slabs made by tests are ever dropped (`NODES` is a static); their blocks
        // are all freed by then, so every chunk is empty and in an avail list.
        self.purge();
    }
}

/// Adds `delta` to a counter only written with its stripe's lock held (a plain load and
/// store, no locked instruction).
fn add(counter: &AtomicUsize, delta: isize) {
    let v = counter.load(Ordering::Relaxed);
    counter.store(v.wrapping_add_signed(delta), Ordering::Relaxed);
}

/// Maps `len` bytes of fresh memory from the system; None if refused.
fn map(len: usize) -> Option<*mut u8> {
    // SAFETY: an anonymous private mapping at an address of the kernel's choice touches
    // none of our memory.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    (p != libc::MAP_FAILED).then_some(p.cast())
}

/// Unmaps `len` bytes at `p`.
///
/// # Safety
/// The range must be mapped by [`map`] and nothing in it used afterwards.
unsafe fn unmap(p: *mut u8, len: usize) {
    // SAFETY: per the contract. It can only fail for a range that is not ours.
    let r = unsafe { libc::munmap(p.cast(), len) };
    debug_assert_eq!(r, 0, "munmap");
}

/// Maps [`CHUNK_BYTES`] aligned to their size. The kernel hands out mappings top down,
/// so after the first aligned chunk the next one usually lands right below it, aligned:
/// one mapping. Otherwise twice the size is mapped and the unaligned ends unmapped.
fn map_chunk() -> *mut u8 {
    let fail = || handle_alloc_error(CHUNK_LAYOUT);
    let p = map(CHUNK_BYTES).unwrap_or_else(fail);
    if p.addr().is_multiple_of(CHUNK_BYTES) {
        return p;
    }
    // SAFETY: just mapped, unused.
    unsafe { unmap(p, CHUNK_BYTES) };
    let wide = map(2 * CHUNK_BYTES).unwrap_or_else(fail);
    let head = wide.addr().next_multiple_of(CHUNK_BYTES) - wide.addr();
    // SAFETY: the parts of a fresh mapping outside the aligned chunk, never used.
    unsafe {
        if head > 0 {
            unmap(wide, head);
        }
        let tail = CHUNK_BYTES - head;
        if tail > 0 {
            unmap(wide.add(head + CHUNK_BYTES), tail);
        }
        wide.add(head)
    }
}

/// Allocates a chunk of stripe `s` and class `c`, all blocks never used.
fn new_chunk(s: usize, c: usize) -> *mut Chunk {
    let chunk = map_chunk().cast::<Chunk>();
    // SAFETY: a fresh block of CHUNK_BYTES, aligned for the header.
    unsafe {
        chunk.write(Chunk {
            stripe: s as u32,
            class: c as u32,
            live: 0,
            bump: FIRST_BLOCK as u32,
            free: ptr::null_mut(),
            prev: ptr::null_mut(),
            next: ptr::null_mut(),
            in_avail: false,
        })
    };
    chunk
}

/// Returns an empty chunk, out of every list, to the system.
///
/// # Safety
/// `chunk` must be live, empty and unlisted; it is dangling afterwards.
unsafe fn release(chunk: *mut Chunk) {
    // SAFETY: mapped by `map_chunk` with this size.
    unsafe { unmap(chunk.cast(), CHUNK_BYTES) }
}

/// Puts a chunk at the head of its class's avail list.
///
/// # Safety
/// `chunk` must be live and not in the list; the stripe's lock must be held.
unsafe fn push_avail(class: &mut Class, chunk: *mut Chunk) {
    // SAFETY: per the contract; the old head (if any) is live.
    unsafe {
        (*chunk).prev = ptr::null_mut();
        (*chunk).next = class.avail;
        if !class.avail.is_null() {
            (*class.avail).prev = chunk;
        }
        (*chunk).in_avail = true;
    }
    class.avail = chunk;
}

/// Takes a chunk out of its class's avail list.
///
/// # Safety
/// `chunk` must be live and in the list; the stripe's lock must be held.
unsafe fn remove_avail(class: &mut Class, chunk: *mut Chunk) {
    // SAFETY: per the contract; its neighbours are live members of the same list.
    unsafe {
        let (prev, next) = ((*chunk).prev, (*chunk).next);
        if prev.is_null() {
            class.avail = next;
        } else {
            (*prev).next = next;
        }
        if !next.is_null() {
            (*next).prev = prev;
        }
        (*chunk).prev = ptr::null_mut();
        (*chunk).next = ptr::null_mut();
        (*chunk).in_avail = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn per_chunk(size: usize) -> usize {
        (CHUNK_BYTES - FIRST_BLOCK) / size
    }

    #[test]
    fn classes_fill_the_allocators_gaps() {
        for n in 0..=400 {
            let b = block_bytes(n);
            match class_of(n) {
                Some(c) => {
                    assert_eq!(b, CLASSES[c]);
                    assert!(b >= n && b < n + 8, "{n}");
                    assert_ne!(alloc_size(b), b, "{b} is an allocator class");
                }
                None => assert_eq!(b, alloc_size(n), "{n}"),
            }
        }
        assert_eq!(class_of(72), Some(0));
        assert_eq!(class_of(71), Some(0));
        assert_eq!(class_of(80), None);
        assert_eq!(class_of(120), Some(3));
        assert_eq!(class_of(129), Some(4));
        assert_eq!(class_of(160), None);
        assert_eq!(class_of(248), Some(15));
        assert_eq!(class_of(249), None);
        // Every multiple of 8 in 72..=256 is a slab class or an allocator class.
        for r in (72..=256).step_by(8) {
            assert!(class_of(r).is_some() != (alloc_size(r) == r), "{r}");
        }
    }

    /// Blocks are distinct, aligned, inside their chunks, keep what is written to them,
    /// and the spare-byte count is always chunks minus live blocks (against a map of
    /// live blocks, random allocations and frees).
    #[test]
    fn behaves_like_a_map_of_live_blocks() {
        let slab = Slab::new();
        let mut live: HashMap<usize, (NonNull<u8>, usize, u64)> = HashMap::new();
        let mut rng = 0x1234_5678_9ABC_DEF0u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for step in 0..60_000u64 {
            let r = next();
            if live.is_empty() || r % 5 < 3 {
                let n = [65, 72, 81, 88, 100, 104, 113, 120][(r >> 8) as usize % 8];
                let p = slab.alloc(n, next()).expect("a slab size");
                let a = p.as_ptr().addr();
                assert_eq!(a % 8, 0);
                assert!(a % CHUNK_BYTES >= FIRST_BLOCK);
                assert!(a % CHUNK_BYTES + block_bytes(n) <= CHUNK_BYTES);
                // SAFETY: a fresh block of at least `n` bytes.
                unsafe {
                    p.as_ptr().cast::<u64>().write(step);
                    p.as_ptr().add(n - 1).write(step as u8);
                }
                assert!(
                    live.insert(a, (p, n, step)).is_none(),
                    "block handed out twice"
                );
            } else {
                let a = *live
                    .keys()
                    .nth((r >> 8) as usize % live.len())
                    .expect("some");
                let (p, n, stamp) = live.remove(&a).expect("present");
                // SAFETY: the block is live; the values were written at allocation.
                unsafe {
                    assert_eq!(p.as_ptr().cast::<u64>().read(), stamp);
                    assert_eq!(p.as_ptr().add(n - 1).read(), stamp as u8);
                    slab.free(p);
                }
            }
            if step % 97 == 0 {
                let live_bytes: usize = live.values().map(|&(_, n, _)| block_bytes(n)).sum();
                assert_eq!(
                    slab.spare_bytes() + slab.tail_bytes() + live_bytes,
                    slab.chunks() * CHUNK_BYTES,
                    "step {step}"
                );
                assert!(
                    slab.spare_bytes() >= slab.chunks() * FIRST_BLOCK,
                    "step {step}"
                );
                assert_eq!(slab.live_bytes(), live_bytes, "step {step}");
            }
        }
        for (_, (p, _, _)) in live.drain() {
            // SAFETY: every remaining block is live.
            unsafe { slab.free(p) };
        }
        // At most one empty chunk kept per class and stripe; purge returns them.
        assert!(slab.chunks() <= STRIPES * CLASSES.len());
        let kept = slab.chunks();
        assert_eq!(slab.purge(), kept * CHUNK_BYTES);
        assert_eq!(
            (slab.chunks(), slab.spare_bytes(), slab.tail_bytes()),
            (0, 0, 0)
        );
    }

    #[test]
    fn freed_blocks_are_reused_and_empty_chunks_released() {
        let slab = Slab::new();
        assert!(
            slab.alloc(64, 0).is_none(),
            "an allocator class is not served"
        );
        let n = per_chunk(72);
        // Fill one chunk exactly, then one block of a second chunk.
        let mut first: Vec<NonNull<u8>> =
            (0..n).map(|_| slab.alloc(72, 0).expect("slab")).collect();
        assert_eq!(slab.chunks(), 1);
        let extra = slab.alloc(72, 0).expect("slab");
        assert_eq!(slab.chunks(), 2);
        // A freed block is the next one handed out (its chunk regains room).
        let b = first.pop().expect("some");
        // SAFETY: live blocks of this slab.
        unsafe { slab.free(b) };
        assert_eq!(slab.alloc(72, 0), Some(b));
        first.push(b);
        // Another stripe gets its own chunk.
        let other = slab.alloc(72, u64::MAX).expect("slab");
        assert_eq!(slab.chunks(), 3);
        // Emptying the full first chunk releases it: the second one still has room.
        for b in first {
            // SAFETY: live blocks of this slab.
            unsafe { slab.free(b) };
        }
        assert_eq!(slab.chunks(), 2);
        // The last chunk with room is kept when emptied, until a purge.
        // SAFETY: live blocks of this slab.
        unsafe {
            slab.free(extra);
            slab.free(other);
        }
        assert_eq!(slab.chunks(), 2);
        // The second chunk of stripe 0 and stripe 15's chunk carved one block each.
        assert_eq!(slab.spare_bytes(), 2 * (FIRST_BLOCK + 72));
        assert_eq!(slab.spare_bytes() + slab.tail_bytes(), 2 * CHUNK_BYTES);
        assert_eq!(slab.purge(), 2 * CHUNK_BYTES);
        assert_eq!((slab.chunks(), slab.spare_bytes()), (0, 0));
    }

    /// Resident 4 KiB pages of `len` bytes at `p` (Linux's `mincore`).
    fn resident_pages(p: *mut u8, len: usize) -> usize {
        let mut vec = vec![0u8; len.div_ceil(4096)];
        // SAFETY: `p` is page-aligned (a chunk) and `vec` has a byte per page.
        let r = unsafe { libc::mincore(p.cast(), len, vec.as_mut_ptr()) };
        assert_eq!(r, 0, "mincore");
        vec.iter().filter(|&&b| b & 1 == 1).count()
    }

    /// A chunk is a mapping of its own, aligned to its size, and only the pages blocks
    /// were handed out from are resident: its never-used tail costs no memory.
    #[test]
    fn a_chunk_is_resident_only_where_blocks_were_handed_out() {
        let slab = Slab::new();
        let blocks: Vec<NonNull<u8>> = (0..100)
            .map(|_| slab.alloc(104, 0).expect("slab"))
            .collect();
        let chunk = blocks[0].as_ptr().map_addr(|a| a & !(CHUNK_BYTES - 1));
        assert!(
            blocks
                .iter()
                .all(|b| b.as_ptr().map_addr(|a| a & !(CHUNK_BYTES - 1)) == chunk)
        );
        for b in &blocks {
            // SAFETY: live 104-byte blocks.
            unsafe { b.as_ptr().write_bytes(0xCD, 104) };
        }
        let touched = (FIRST_BLOCK + 100 * 104).div_ceil(4096);
        assert_eq!(resident_pages(chunk, CHUNK_BYTES), touched);
        assert_eq!(slab.live_bytes(), 100 * 104);
        for b in blocks {
            // SAFETY: live blocks of this slab.
            unsafe { slab.free(b) };
        }
        assert_eq!(slab.live_bytes(), 0);
        assert_eq!(slab.purge(), CHUNK_BYTES);
    }

    #[test]
    fn blocks_freed_on_other_threads_go_back_to_their_chunk() {
        let slab = std::sync::Arc::new(Slab::new());
        let blocks: Vec<usize> = (0..10_000u64)
            .map(|i| {
                let p = slab
                    .alloc(88, i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
                    .expect("slab");
                p.as_ptr().expose_provenance()
            })
            .collect();
        let s2 = slab.clone();
        std::thread::spawn(move || {
            for a in blocks {
                // SAFETY: live blocks of this slab, exposed above.
                unsafe { s2.free(NonNull::new_unchecked(ptr::with_exposed_provenance_mut(a))) };
            }
        })
        .join()
        .expect("freeing thread");
        assert!(slab.chunks() <= STRIPES);
        slab.purge();
        assert_eq!((slab.chunks(), slab.spare_bytes()), (0, 0));
    }
}
