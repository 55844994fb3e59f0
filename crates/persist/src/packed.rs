//! Redis's packed encodings as they appear inside RDB files: listpack (written and read),
//! intset (written and read), and the older ziplist and zipmap (read only; Redis 7.0
//! still loads them from old files).
//!
//! Readers check every length against the blob they were given and return
//! [`PackedError`] on anything malformed; they never index out of bounds.

use basalt_engine::num::parse_i64;

/// A malformed packed blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedError(pub &'static str);

type Result<T> = std::result::Result<T, PackedError>;

/// One element of a listpack or ziplist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem<'a> {
    /// A string entry.
    Str(&'a [u8]),
    /// An integer entry.
    Int(i64),
}

impl Elem<'_> {
    /// The element as bytes (integers formatted).
    pub fn to_vec(&self) -> Vec<u8> {
        match self {
            Elem::Str(s) => s.to_vec(),
            Elem::Int(i) => itoa::Buffer::new().format(*i).as_bytes().to_vec(),
        }
    }

    /// The element's length as a string.
    pub fn str_len(&self) -> usize {
        match self {
            Elem::Str(s) => s.len(),
            Elem::Int(i) => itoa::Buffer::new().format(*i).len(),
        }
    }
}

/// Listpack's `lpStringToInt64`: Redis's `string2ll` on strings of at most 20 bytes.
pub fn string_to_int(s: &[u8]) -> Option<i64> {
    if s.len() > 20 { None } else { parse_i64(s) }
}

// ---------------------------------------------------------------------------------------
// listpack
// ---------------------------------------------------------------------------------------

const LP_HDR: usize = 6;
const LP_EOF: u8 = 0xff;

/// Builds a listpack byte for byte as Redis's `lpAppend` would.
#[derive(Debug, Clone)]
pub struct ListpackWriter {
    buf: Vec<u8>,
    count: usize,
}

impl Default for ListpackWriter {
    fn default() -> Self {
        ListpackWriter::new()
    }
}

fn backlen_size(l: usize) -> usize {
    match l {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    }
}

fn push_backlen(out: &mut Vec<u8>, l: usize) {
    let l = l as u64;
    match backlen_size(l as usize) {
        1 => out.push(l as u8),
        2 => out.extend_from_slice(&[(l >> 7) as u8, (l & 127) as u8 | 128]),
        3 => out.extend_from_slice(&[
            (l >> 14) as u8,
            ((l >> 7) & 127) as u8 | 128,
            (l & 127) as u8 | 128,
        ]),
        4 => out.extend_from_slice(&[
            (l >> 21) as u8,
            ((l >> 14) & 127) as u8 | 128,
            ((l >> 7) & 127) as u8 | 128,
            (l & 127) as u8 | 128,
        ]),
        _ => out.extend_from_slice(&[
            (l >> 28) as u8,
            ((l >> 21) & 127) as u8 | 128,
            ((l >> 14) & 127) as u8 | 128,
            ((l >> 7) & 127) as u8 | 128,
            (l & 127) as u8 | 128,
        ]),
    }
}

/// Size in bytes a string of `len` bytes takes in a listpack (encoding + data + backlen).
pub fn lp_str_entry_size(len: usize) -> usize {
    let enc = if len < 64 {
        1
    } else if len < 4096 {
        2
    } else {
        5
    };
    enc + len + backlen_size(enc + len)
}

impl ListpackWriter {
    /// An empty listpack.
    pub fn new() -> ListpackWriter {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&[0; LP_HDR]);
        ListpackWriter { buf, count: 0 }
    }

    /// Entries so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Bytes the finished listpack will take.
    pub fn bytes(&self) -> usize {
        self.buf.len() + 1
    }

    /// Appends bytes, stored as an integer when they are a canonical integer (as Redis).
    pub fn push(&mut self, s: &[u8]) {
        match string_to_int(s) {
            Some(i) => self.push_int(i),
            None => self.push_str(s),
        }
    }

    /// Appends an element.
    pub fn push_elem(&mut self, e: Elem<'_>) {
        match e {
            Elem::Int(i) => self.push_int(i),
            Elem::Str(s) => self.push(s),
        }
    }

    /// Appends an integer entry with the smallest encoding.
    pub fn push_int(&mut self, v: i64) {
        let start = self.buf.len();
        if (0..=127).contains(&v) {
            self.buf.push(v as u8);
        } else if (-4096..=4095).contains(&v) {
            let u = if v < 0 { (1 << 13) + v } else { v } as u16;
            self.buf
                .extend_from_slice(&[(u >> 8) as u8 | 0xc0, (u & 0xff) as u8]);
        } else if (-32768..=32767).contains(&v) {
            self.buf.push(0xf1);
            self.buf.extend_from_slice(&(v as i16).to_le_bytes());
        } else if (-8388608..=8388607).contains(&v) {
            self.buf.push(0xf2);
            self.buf.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
        } else if (-2147483648..=2147483647).contains(&v) {
            self.buf.push(0xf3);
            self.buf.extend_from_slice(&(v as i32).to_le_bytes());
        } else {
            self.buf.push(0xf4);
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
        let len = self.buf.len() - start;
        push_backlen(&mut self.buf, len);
        self.count += 1;
    }

    /// Appends a string entry (never as an integer).
    pub fn push_str(&mut self, s: &[u8]) {
        let start = self.buf.len();
        let len = s.len();
        if len < 64 {
            self.buf.push(0x80 | len as u8);
        } else if len < 4096 {
            self.buf
                .extend_from_slice(&[0xe0 | (len >> 8) as u8, (len & 0xff) as u8]);
        } else {
            self.buf.push(0xf0);
            self.buf.extend_from_slice(&(len as u32).to_le_bytes());
        }
        self.buf.extend_from_slice(s);
        let l = self.buf.len() - start;
        push_backlen(&mut self.buf, l);
        self.count += 1;
    }

    /// The finished listpack: total bytes (u32), entry count (u16, 65535 = unknown),
    /// entries, end byte.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(LP_EOF);
        let total = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&total.to_le_bytes());
        let n = if self.count < 65535 {
            self.count as u16
        } else {
            65535
        };
        self.buf[4..6].copy_from_slice(&n.to_le_bytes());
        self.buf
    }
}

fn take(b: &[u8], pos: usize, n: usize) -> Result<&[u8]> {
    let end = pos
        .checked_add(n)
        .ok_or(PackedError("entry length overflows"))?;
    b.get(pos..end)
        .ok_or(PackedError("entry runs past the end"))
}

fn le_int(b: &[u8]) -> i64 {
    // Sign-extend a little-endian integer of 1..=8 bytes.
    let mut v: u64 = 0;
    for (i, &x) in b.iter().enumerate() {
        v |= u64::from(x) << (8 * i);
    }
    let bits = 8 * b.len() as u32;
    if bits < 64 {
        let shift = 64 - bits;
        ((v << shift) as i64) >> shift
    } else {
        v as i64
    }
}

/// Decodes every entry of a listpack, validating the header, each entry's encoding and
/// back length, and the end byte.
pub fn listpack_entries(b: &[u8]) -> Result<Vec<Elem<'_>>> {
    if b.len() < LP_HDR + 1 {
        return Err(PackedError("listpack shorter than its header"));
    }
    let total = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
    if total != b.len() {
        return Err(PackedError("listpack size does not match its header"));
    }
    let declared = u16::from_le_bytes([b[4], b[5]]) as usize;
    let mut out = Vec::with_capacity(declared.min(b.len()));
    let mut pos = LP_HDR;
    loop {
        let Some(&first) = b.get(pos) else {
            return Err(PackedError("listpack without end byte"));
        };
        if first == LP_EOF {
            if pos + 1 != b.len() {
                return Err(PackedError("listpack has bytes after its end"));
            }
            break;
        }
        let (elem, enc_len) = match first {
            0x00..=0x7f => (Elem::Int(i64::from(first)), 1),
            0x80..=0xbf => {
                let n = usize::from(first & 0x3f);
                (Elem::Str(take(b, pos + 1, n)?), 1 + n)
            }
            0xc0..=0xdf => {
                let lo = *take(b, pos + 1, 1)?.first().unwrap_or(&0);
                let u = (u16::from(first & 0x1f) << 8) | u16::from(lo);
                let v = if u >= 1 << 12 {
                    i64::from(u) - (1 << 13)
                } else {
                    i64::from(u)
                };
                (Elem::Int(v), 2)
            }
            0xe0..=0xef => {
                let lo = *take(b, pos + 1, 1)?.first().unwrap_or(&0);
                let n = (usize::from(first & 0x0f) << 8) | usize::from(lo);
                (Elem::Str(take(b, pos + 2, n)?), 2 + n)
            }
            0xf0 => {
                let l = take(b, pos + 1, 4)?;
                let n = u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize;
                (Elem::Str(take(b, pos + 5, n)?), 5 + n)
            }
            0xf1 => (Elem::Int(le_int(take(b, pos + 1, 2)?)), 3),
            0xf2 => (Elem::Int(le_int(take(b, pos + 1, 3)?)), 4),
            0xf3 => (Elem::Int(le_int(take(b, pos + 1, 4)?)), 5),
            0xf4 => (Elem::Int(le_int(take(b, pos + 1, 8)?)), 9),
            _ => return Err(PackedError("invalid listpack entry encoding")),
        };
        let bl = backlen_size(enc_len);
        let back = take(b, pos + enc_len, bl)?;
        let mut expect = Vec::with_capacity(5);
        push_backlen(&mut expect, enc_len);
        if back != expect.as_slice() {
            return Err(PackedError("listpack entry back length mismatch"));
        }
        out.push(elem);
        pos += enc_len + bl;
    }
    if declared != 65535 && declared != out.len() {
        return Err(PackedError(
            "listpack entry count does not match its header",
        ));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// ziplist (read only)
// ---------------------------------------------------------------------------------------

/// Decodes every entry of a ziplist (Redis < 7 encoding of small lists, hashes, zsets).
pub fn ziplist_entries(b: &[u8]) -> Result<Vec<Elem<'_>>> {
    if b.len() < 11 {
        return Err(PackedError("ziplist shorter than its header"));
    }
    let total = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
    if total != b.len() {
        return Err(PackedError("ziplist size does not match its header"));
    }
    let declared = u16::from_le_bytes([b[8], b[9]]) as usize;
    let mut out = Vec::with_capacity(declared.min(b.len()));
    let mut pos = 10;
    let mut prev_len = 0usize;
    loop {
        let Some(&first) = b.get(pos) else {
            return Err(PackedError("ziplist without end byte"));
        };
        if first == 0xff {
            if pos + 1 != b.len() {
                return Err(PackedError("ziplist has bytes after its end"));
            }
            break;
        }
        let start = pos;
        let prevlen = if first < 254 {
            pos += 1;
            usize::from(first)
        } else if first == 254 {
            let p = take(b, pos + 1, 4)?;
            pos += 5;
            u32::from_le_bytes([p[0], p[1], p[2], p[3]]) as usize
        } else {
            return Err(PackedError("invalid ziplist prevlen"));
        };
        if prevlen != prev_len {
            return Err(PackedError("ziplist prevlen mismatch"));
        }
        let enc = *take(b, pos, 1)?.first().unwrap_or(&0);
        let (elem, n) = match enc >> 6 {
            0 => {
                let n = usize::from(enc & 0x3f);
                (Elem::Str(take(b, pos + 1, n)?), 1 + n)
            }
            1 => {
                let lo = *take(b, pos + 1, 1)?.first().unwrap_or(&0);
                let n = (usize::from(enc & 0x3f) << 8) | usize::from(lo);
                (Elem::Str(take(b, pos + 2, n)?), 2 + n)
            }
            2 => {
                if enc != 0x80 {
                    return Err(PackedError("invalid ziplist string encoding"));
                }
                let l = take(b, pos + 1, 4)?;
                let n = u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize;
                (Elem::Str(take(b, pos + 5, n)?), 5 + n)
            }
            _ => match enc {
                0xc0 => (Elem::Int(le_int(take(b, pos + 1, 2)?)), 3),
                0xd0 => (Elem::Int(le_int(take(b, pos + 1, 4)?)), 5),
                0xe0 => (Elem::Int(le_int(take(b, pos + 1, 8)?)), 9),
                0xf0 => (Elem::Int(le_int(take(b, pos + 1, 3)?)), 4),
                0xfe => (Elem::Int(le_int(take(b, pos + 1, 1)?)), 2),
                0xf1..=0xfd => (Elem::Int(i64::from(enc & 0x0f) - 1), 1),
                _ => return Err(PackedError("invalid ziplist entry encoding")),
            },
        };
        pos += n;
        prev_len = pos - start;
        out.push(elem);
    }
    if declared != 65535 && declared != out.len() {
        return Err(PackedError("ziplist entry count does not match its header"));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// intset
// ---------------------------------------------------------------------------------------

/// Builds an intset from strictly ascending integers, with the smallest width that holds
/// them all (as Redis's upgrades leave it).
pub fn intset_bytes(sorted: &[i64]) -> Vec<u8> {
    debug_assert!(sorted.windows(2).all(|w| w[0] < w[1]));
    let width = sorted
        .iter()
        .map(|&v| {
            if i16::try_from(v).is_ok() {
                2
            } else if i32::try_from(v).is_ok() {
                4
            } else {
                8
            }
        })
        .max()
        .unwrap_or(2);
    let mut out = Vec::with_capacity(8 + width * sorted.len());
    out.extend_from_slice(&(width as u32).to_le_bytes());
    out.extend_from_slice(&(sorted.len() as u32).to_le_bytes());
    for &v in sorted {
        out.extend_from_slice(&v.to_le_bytes()[..width]);
    }
    out
}

/// Decodes an intset, checking its width, size and strict order.
pub fn intset_values(b: &[u8]) -> Result<Vec<i64>> {
    if b.len() < 8 {
        return Err(PackedError("intset shorter than its header"));
    }
    let width = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
    if !matches!(width, 2 | 4 | 8) {
        return Err(PackedError("invalid intset encoding"));
    }
    let n = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize;
    if n.checked_mul(width).and_then(|x| x.checked_add(8)) != Some(b.len()) {
        return Err(PackedError("intset size does not match its header"));
    }
    let vals: Vec<i64> = b[8..].chunks_exact(width).map(le_int).collect();
    if vals.windows(2).any(|w| w[0] >= w[1]) {
        return Err(PackedError("intset is not sorted or has duplicates"));
    }
    Ok(vals)
}

// ---------------------------------------------------------------------------------------
// zipmap (read only)
// ---------------------------------------------------------------------------------------

/// Decodes a zipmap (Redis 2.x small hashes) into field/value pairs.
pub fn zipmap_pairs(b: &[u8]) -> Result<Vec<(&[u8], &[u8])>> {
    fn len_at(b: &[u8], pos: &mut usize) -> Result<Option<usize>> {
        let first = *b.get(*pos).ok_or(PackedError("zipmap without end byte"))?;
        match first {
            255 => Ok(None),
            254 => {
                let l = take(b, *pos + 1, 4)?;
                *pos += 5;
                Ok(Some(u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize))
            }
            n => {
                *pos += 1;
                Ok(Some(usize::from(n)))
            }
        }
    }
    if b.is_empty() {
        return Err(PackedError("empty zipmap"));
    }
    let mut pos = 1;
    let mut out = Vec::new();
    loop {
        let Some(klen) = len_at(b, &mut pos)? else {
            if pos + 1 != b.len() {
                return Err(PackedError("zipmap has bytes after its end"));
            }
            break;
        };
        let key = take(b, pos, klen)?;
        pos += klen;
        let Some(vlen) = len_at(b, &mut pos)? else {
            return Err(PackedError("zipmap key without value"));
        };
        let free = usize::from(*take(b, pos, 1)?.first().unwrap_or(&0));
        pos += 1;
        let val = take(b, pos, vlen)?;
        pos += vlen + free;
        out.push((key, val));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn listpack_matches_redis_bytes() {
        // Bytes of a listpack Redis 7.0 builds for ["a", "1", "-1", "hello"].
        let mut w = ListpackWriter::new();
        for s in [&b"a"[..], b"1", b"-1", b"hello"] {
            w.push(s);
        }
        let lp = w.finish();
        assert_eq!(
            lp,
            [
                0x16, 0, 0, 0, 4, 0, 0x81, b'a', 2, 1, 1, 0xdf, 0xff, 2, 0x85, b'h', b'e', b'l',
                b'l', b'o', 6, 0xff
            ]
        );
        let e = listpack_entries(&lp).unwrap();
        assert_eq!(
            e,
            vec![
                Elem::Str(b"a"),
                Elem::Int(1),
                Elem::Int(-1),
                Elem::Str(b"hello")
            ]
        );
    }

    #[test]
    fn intset_widths() {
        assert_eq!(intset_bytes(&[1, 2])[0], 2);
        assert_eq!(intset_bytes(&[1, 70000])[0], 4);
        assert_eq!(intset_bytes(&[i64::MIN, 0])[0], 8);
        assert_eq!(
            intset_values(&intset_bytes(&[-5, 3, 1 << 40])).unwrap(),
            vec![-5, 3, 1 << 40]
        );
        let mut unsorted = intset_bytes(&[1, 3]);
        unsorted[8..10].copy_from_slice(&5i16.to_le_bytes());
        assert!(intset_values(&unsorted).is_err());
    }

    #[test]
    fn ziplist_reads_every_encoding() {
        // Hand-built: "ab", 7 (immediate), 300 (int16), "x"*70 (14-bit length).
        let mut body = Vec::new();
        let mut prev = 0usize;
        let mut entry = |enc: Vec<u8>| {
            let mut e = vec![prev as u8];
            e.extend_from_slice(&enc);
            prev = e.len();
            body.extend_from_slice(&e);
        };
        entry(vec![0x02, b'a', b'b']);
        entry(vec![0xf8]);
        let mut i16e = vec![0xc0];
        i16e.extend_from_slice(&300i16.to_le_bytes());
        entry(i16e);
        let mut long = vec![0x40, 70];
        long.extend_from_slice(&[b'x'; 70]);
        entry(long);
        let mut zl = Vec::new();
        zl.extend_from_slice(&((10 + body.len() + 1) as u32).to_le_bytes());
        zl.extend_from_slice(&0u32.to_le_bytes());
        zl.extend_from_slice(&4u16.to_le_bytes());
        zl.extend_from_slice(&body);
        zl.push(0xff);
        let e = ziplist_entries(&zl).unwrap();
        assert_eq!(e[0], Elem::Str(b"ab"));
        assert_eq!(e[1], Elem::Int(7));
        assert_eq!(e[2], Elem::Int(300));
        assert_eq!(e[3], Elem::Str(&[b'x'; 70]));
    }

    #[test]
    fn zipmap_reads_pairs() {
        let zm = [
            2, 3, b'f', b'o', b'o', 3, 0, b'b', b'a', b'r', 1, b'k', 2, 1, b'v', b'w', 0, 0xff,
        ];
        let p = zipmap_pairs(&zm).unwrap();
        assert_eq!(p, vec![(&b"foo"[..], &b"bar"[..]), (&b"k"[..], &b"vw"[..])]);
    }

    proptest! {
        #[test]
        fn listpack_round_trips(items in proptest::collection::vec(
            prop_oneof![
                any::<i64>().prop_map(|i| i.to_string().into_bytes()),
                (-5000i64..5000).prop_map(|i| i.to_string().into_bytes()),
                proptest::collection::vec(any::<u8>(), 0..5000),
            ], 0..40)) {
            let mut w = ListpackWriter::new();
            for it in &items { w.push(it); }
            let lp = w.finish();
            let back: Vec<Vec<u8>> = listpack_entries(&lp).unwrap().iter().map(|e| e.to_vec()).collect();
            prop_assert_eq!(back, items);
        }

        #[test]
        fn readers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = listpack_entries(&data);
            let _ = ziplist_entries(&data);
            let _ = intset_values(&data);
            let _ = zipmap_pairs(&data);
        }
    }
}
