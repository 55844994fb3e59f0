//! One stream node: a packed block of consecutive entries, like one of Redis's listpack
//! nodes in the stream's radix tree.
//!
//! Layout of `data`:
//!
//! ```text
//! master fields:  n (varint) | n × (len varint, bytes)
//! each entry:     flags (u8) | ms delta (varint) | seq delta (zigzag varint)
//!                 | SAMEFIELDS ? n × value : (m varint | m × (field, value))
//! ```
//!
//! IDs are deltas from the node's master ID (the ID of its first entry); an entry whose
//! field names equal the master fields stores only its values. Deleted entries stay in
//! place with the DELETED flag until the whole node is dropped, as in Redis.
//!
//! Besides its own bytes the node tracks how large Redis's listpack for the same entries
//! would be (`lp_body` plus the two header counters): Redis decides where one node ends
//! and the next begins from that size (`stream-node-max-bytes`), and approximate
//! trimming (`MAXLEN ~`) removes whole nodes, so replies only match if nodes split at
//! the same entries.

use super::StreamId;

/// Entry flag: deleted (XDEL, exact trimming).
pub const FLAG_DELETED: u8 = 1;
/// Entry flag: same field names as the master entry.
pub const FLAG_SAMEFIELDS: u8 = 2;

/// A packed block of entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    data: Vec<u8>,
    /// Offset of the first entry (after the master fields).
    entries_start: u32,
    /// Number of master fields.
    master_fields: u32,
    /// Live entries.
    pub(super) live: u32,
    /// Entries flagged deleted.
    pub(super) deleted: u32,
    /// Size of Redis's listpack for this node, minus its two header counters.
    lp_body: u64,
}

/// A decoded entry position inside a node.
#[derive(Debug, Clone, Copy)]
pub struct RawEntry {
    /// Offset of the flags byte.
    pub at: usize,
    /// Flags.
    pub flags: u8,
    /// The full ID.
    pub id: StreamId,
    /// Offset of the first field or value.
    pub body: usize,
    /// Offset just past the entry.
    pub end: usize,
}

impl Node {
    /// A node whose master entry has `fields` (the field names of its first entry).
    pub fn new<'a>(fields: impl ExactSizeIterator<Item = &'a [u8]> + Clone) -> Node {
        let n = fields.len();
        let mut data = Vec::new();
        put_varint(&mut data, n as u64);
        let mut lp_body = LP_HEADER + LP_END + lp_int_size(n as i64) + lp_int_size(0);
        for f in fields {
            put_varint(&mut data, f.len() as u64);
            data.extend_from_slice(f);
            lp_body += lp_str_size(f);
        }
        Node {
            entries_start: data.len() as u32,
            data,
            master_fields: n as u32,
            live: 0,
            deleted: 0,
            lp_body: lp_body as u64,
        }
    }

    /// Bytes of Redis's listpack holding the same entries.
    pub fn lp_bytes(&self) -> u64 {
        self.lp_body
            + lp_int_size(i64::from(self.live)) as u64
            + lp_int_size(i64::from(self.deleted)) as u64
    }

    /// Live plus deleted entries.
    pub fn total(&self) -> u64 {
        u64::from(self.live) + u64::from(self.deleted)
    }

    /// Heap bytes held.
    pub fn heap_size(&self) -> usize {
        self.data.capacity()
    }

    /// Gives back spare capacity (a node that will not grow any more).
    pub fn shrink(&mut self) {
        self.data.shrink_to_fit();
    }

    /// The master field names.
    pub fn master_fields(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let mut pos = 0;
        let n = get_varint(&self.data, &mut pos);
        (0..n).map(move |_| get_bytes(&self.data, &mut pos))
    }

    fn same_as_master(&self, pairs: &[(&[u8], &[u8])]) -> bool {
        if pairs.len() != self.master_fields as usize {
            return false;
        }
        self.master_fields()
            .zip(pairs)
            .all(|(m, (f, _))| crate::bytecmp::eq(m, f))
    }

    /// Live entries.
    pub fn live(&self) -> u64 {
        u64::from(self.live)
    }

    /// Entries flagged deleted (still in the node, as in Redis's listpack).
    pub fn deleted(&self) -> u64 {
        u64::from(self.deleted)
    }

    /// Number of master fields.
    pub fn master_field_count(&self) -> u64 {
        u64::from(self.master_fields)
    }

    /// Every entry, deleted ones included, in order (what a snapshot writes).
    pub fn raw_entries(&self, master: StreamId) -> impl Iterator<Item = RawEntry> + '_ {
        let mut at = self.first_offset();
        std::iter::from_fn(move || {
            let e = self.entry_at(master, at)?;
            at = e.end;
            Some(e)
        })
    }

    /// Appends an entry (its ID must be above every ID in the node) and returns its
    /// offset.
    pub fn push(&mut self, master: StreamId, id: StreamId, pairs: &[(&[u8], &[u8])]) -> usize {
        let at = self.data.len();
        let same = self.same_as_master(pairs);
        let flags = if same { FLAG_SAMEFIELDS } else { 0 };
        let ms_delta = id.ms.wrapping_sub(master.ms);
        let seq_delta = id.seq.wrapping_sub(master.seq) as i64;
        self.data.push(flags);
        put_varint(&mut self.data, ms_delta);
        put_varint(&mut self.data, zigzag(seq_delta));
        let mut lp =
            lp_int_size(i64::from(flags)) + lp_int_size(ms_delta as i64) + lp_int_size(seq_delta);
        let n = pairs.len();
        if !same {
            put_varint(&mut self.data, n as u64);
            lp += lp_int_size(n as i64);
        }
        for (f, v) in pairs {
            if !same {
                put_varint(&mut self.data, f.len() as u64);
                self.data.extend_from_slice(f);
                lp += lp_str_size(f);
            }
            put_varint(&mut self.data, v.len() as u64);
            self.data.extend_from_slice(v);
            lp += lp_str_size(v);
        }
        let lp_count = if same { n + 3 } else { 2 * n + 4 };
        lp += lp_int_size(lp_count as i64);
        self.lp_body += lp as u64;
        self.live += 1;
        at
    }

    /// Decodes the entry at `at` (an offset returned by iteration).
    pub fn entry_at(&self, master: StreamId, at: usize) -> Option<RawEntry> {
        if at >= self.data.len() {
            return None;
        }
        let mut pos = at;
        let flags = self.data[pos];
        pos += 1;
        let ms_delta = get_varint(&self.data, &mut pos);
        let seq_delta = unzigzag(get_varint(&self.data, &mut pos));
        let id = StreamId {
            ms: master.ms.wrapping_add(ms_delta),
            seq: master.seq.wrapping_add(seq_delta as u64),
        };
        let body = pos;
        let values = if flags & FLAG_SAMEFIELDS != 0 {
            self.master_fields as u64
        } else {
            get_varint(&self.data, &mut pos) * 2
        };
        for _ in 0..values {
            let len = get_varint(&self.data, &mut pos) as usize;
            pos += len;
        }
        Some(RawEntry {
            at,
            flags,
            id,
            body,
            end: pos,
        })
    }

    /// Offset of the first entry.
    pub fn first_offset(&self) -> usize {
        self.entries_start as usize
    }

    /// Offsets of every entry, deleted ones included, in order.
    pub fn offsets(&self, master: StreamId) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.total() as usize);
        let mut at = self.first_offset();
        while let Some(e) = self.entry_at(master, at) {
            out.push(at);
            at = e.end;
        }
        out
    }

    /// The field/value pairs of an entry.
    pub fn fields<'a>(&'a self, e: &RawEntry) -> FieldIter<'a> {
        let mut pos = e.body;
        let same = e.flags & FLAG_SAMEFIELDS != 0;
        let n = if same {
            self.master_fields as u64
        } else {
            get_varint(&self.data, &mut pos)
        };
        let mut master_pos = 0;
        if same {
            get_varint(&self.data, &mut master_pos);
        }
        FieldIter {
            data: &self.data,
            pos,
            master_pos: if same { Some(master_pos) } else { None },
            left: n,
        }
    }

    /// Number of field/value pairs of an entry.
    pub fn field_count(&self, e: &RawEntry) -> u64 {
        if e.flags & FLAG_SAMEFIELDS != 0 {
            u64::from(self.master_fields)
        } else {
            let mut pos = e.body;
            get_varint(&self.data, &mut pos)
        }
    }

    /// Flags the entry at `at` deleted. Returns false if it already was.
    pub fn mark_deleted(&mut self, at: usize) -> bool {
        if self.data[at] & FLAG_DELETED != 0 {
            return false;
        }
        self.data[at] |= FLAG_DELETED;
        self.live -= 1;
        self.deleted += 1;
        true
    }

    /// The last entry's ID (deleted or not), as Redis's `lpGetEdgeStreamID`.
    pub fn last_id(&self, master: StreamId) -> StreamId {
        let mut at = self.first_offset();
        let mut last = master;
        while let Some(e) = self.entry_at(master, at) {
            last = e.id;
            at = e.end;
        }
        last
    }
}

/// Iterator over an entry's field/value pairs.
pub struct FieldIter<'a> {
    data: &'a [u8],
    pos: usize,
    master_pos: Option<usize>,
    left: u64,
}

impl<'a> Iterator for FieldIter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let field = match &mut self.master_pos {
            Some(mp) => get_bytes(self.data, mp),
            None => get_bytes(self.data, &mut self.pos),
        };
        let value = get_bytes(self.data, &mut self.pos);
        Some((field, value))
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(data: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = data[*pos];
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return v;
        }
        shift += 7;
    }
}

fn get_bytes<'a>(data: &'a [u8], pos: &mut usize) -> &'a [u8] {
    let len = get_varint(data, pos) as usize;
    let s = &data[*pos..*pos + len];
    *pos += len;
    s
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

// ---------------------------------------------------------------------------------------
// Redis listpack sizes (listpack.c): what an element costs, encoding plus back-length.
// ---------------------------------------------------------------------------------------

const LP_HEADER: usize = 6;
const LP_END: usize = 1;

fn lp_backlen_size(l: usize) -> usize {
    if l <= 127 {
        1
    } else if l < 16383 {
        2
    } else if l < 2_097_151 {
        3
    } else if l < 268_435_455 {
        4
    } else {
        5
    }
}

/// Bytes of an integer element.
pub fn lp_int_size(v: i64) -> usize {
    let enc = if (0..=127).contains(&v) {
        1
    } else if (-4096..=4095).contains(&v) {
        2
    } else if (i64::from(i16::MIN)..=i64::from(i16::MAX)).contains(&v) {
        3
    } else if (-8_388_608..=8_388_607).contains(&v) {
        4
    } else if (i64::from(i32::MIN)..=i64::from(i32::MAX)).contains(&v) {
        5
    } else {
        9
    };
    enc + lp_backlen_size(enc)
}

/// Bytes of a string element (stored as an integer when it reads as one).
pub fn lp_str_size(s: &[u8]) -> usize {
    if let Some(v) = crate::num::parse_i64(s) {
        return lp_int_size(v);
    }
    let enc = if s.len() < 64 {
        1 + s.len()
    } else if s.len() < 4096 {
        2 + s.len()
    } else {
        5 + s.len()
    };
    enc + lp_backlen_size(enc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listpack_sizes_follow_redis() {
        assert_eq!(lp_int_size(0), 2);
        assert_eq!(lp_int_size(127), 2);
        assert_eq!(lp_int_size(128), 3);
        assert_eq!(lp_int_size(-1), 3);
        assert_eq!(lp_int_size(40000), 5);
        assert_eq!(lp_int_size(1 << 40), 10);
        assert_eq!(lp_str_size(b"v"), 3);
        assert_eq!(lp_str_size(b"12"), 2);
        assert_eq!(lp_str_size(&[b'a'; 64]), 67);
        assert_eq!(lp_str_size(&[b'a'; 200]), 204);
    }

    #[test]
    fn entries_round_trip() {
        let master = StreamId { ms: 10, seq: 5 };
        let mut n = Node::new([b"a".as_slice(), b"b"].into_iter());
        n.push(master, master, &[(b"a", b"1"), (b"b", b"2")]);
        let id2 = StreamId { ms: 11, seq: 0 };
        n.push(master, id2, &[(b"x", b"y")]);
        let offs = n.offsets(master);
        assert_eq!(offs.len(), 2);
        let e0 = n.entry_at(master, offs[0]).unwrap();
        assert_eq!(e0.id, master);
        assert_eq!(e0.flags, FLAG_SAMEFIELDS);
        let f: Vec<_> = n.fields(&e0).collect();
        assert_eq!(f, vec![(&b"a"[..], &b"1"[..]), (&b"b"[..], &b"2"[..])]);
        let e1 = n.entry_at(master, offs[1]).unwrap();
        assert_eq!(e1.id, id2);
        let f: Vec<_> = n.fields(&e1).collect();
        assert_eq!(f, vec![(&b"x"[..], &b"y"[..])]);
        assert_eq!(n.last_id(master), id2);
        assert!(n.mark_deleted(offs[0]));
        assert!(!n.mark_deleted(offs[0]));
        assert_eq!((n.live, n.deleted), (1, 1));
    }
}
