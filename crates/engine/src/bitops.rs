//! Bit operations on string values: the arithmetic behind SETBIT, GETBIT, BITCOUNT,
//! BITPOS, BITOP and BITFIELD.
//!
//! Bitmaps are not a type of their own in Redis: they are string values read as bit
//! arrays, bit 0 being the most significant bit of the first byte. These functions work
//! on plain byte slices so the server can apply them to any string encoding, and they
//! reproduce Redis 7.0's range normalisation and overflow arithmetic exactly (including
//! its two's-complement quirks), because replies are compared byte for byte.

/// The unit of a BITCOUNT/BITPOS range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Offsets count bytes (the default).
    Byte,
    /// Offsets count bits (Redis 7's `BIT`).
    Bit,
}

/// Number of set bits.
pub fn popcount(bytes: &[u8]) -> u64 {
    let mut chunks = bytes.chunks_exact(8);
    let mut n: u64 = 0;
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        n += u64::from(u64::from_ne_bytes(w).count_ones());
    }
    n + chunks
        .remainder()
        .iter()
        .map(|b| u64::from(b.count_ones()))
        .sum::<u64>()
}

/// The bit at `offset` (bits past the end read as 0).
pub fn get_bit(s: &[u8], offset: u64) -> bool {
    let byte = offset >> 3;
    match usize::try_from(byte).ok().and_then(|b| s.get(b)) {
        Some(v) => v & (0x80 >> (offset & 7)) != 0,
        None => false,
    }
}

/// Sets the bit at `offset` (the buffer must already cover it). Returns the old bit.
pub fn set_bit(s: &mut [u8], offset: u64, on: bool) -> bool {
    let byte = (offset >> 3) as usize;
    let mask = 0x80u8 >> (offset & 7);
    let old = s[byte] & mask != 0;
    if on {
        s[byte] |= mask;
    } else {
        s[byte] &= !mask;
    }
    old
}

/// A range after Redis's normalisation: byte positions plus the masks of the bits of the
/// first and last byte that lie outside a BIT range (set bits in a mask are excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ByteRange {
    start: i64,
    end: i64,
    first_neg_mask: u8,
    last_neg_mask: u8,
}

/// Clamps `start..=end` (negative values count from the end) to a string of `len`
/// bytes, in `unit`s, then converts a bit range to bytes plus edge masks. `start > end`
/// in the result means an empty range.
fn normalise(len: usize, start: i64, end: i64, unit: Unit) -> ByteRange {
    let mut total = len as i64;
    if unit == Unit::Bit {
        total <<= 3;
    }
    let mut start = if start < 0 {
        total.wrapping_add(start)
    } else {
        start
    };
    let mut end = if end < 0 {
        total.wrapping_add(end)
    } else {
        end
    };
    start = start.max(0);
    end = end.max(0);
    if end >= total {
        end = total - 1;
    }
    let (mut first_neg_mask, mut last_neg_mask) = (0u8, 0u8);
    if unit == Unit::Bit && start <= end {
        first_neg_mask = !((1u32 << (8 - (start & 7))) - 1) as u8;
        last_neg_mask = ((1u32 << (7 - (end & 7))) - 1) as u8;
        start >>= 3;
        end >>= 3;
    }
    ByteRange {
        start,
        end,
        first_neg_mask,
        last_neg_mask,
    }
}

/// BITCOUNT: the number of set bits of `s`, within `range` (`start`, `end`, unit) if
/// given, with Redis's index rules.
pub fn bitcount(s: &[u8], range: Option<(i64, i64, Unit)>) -> u64 {
    let r = match range {
        None => ByteRange {
            start: 0,
            end: s.len() as i64 - 1,
            first_neg_mask: 0,
            last_neg_mask: 0,
        },
        Some((start, end, unit)) => {
            if start < 0 && end < 0 && start > end {
                return 0;
            }
            normalise(s.len(), start, end, unit)
        }
    };
    if r.start > r.end {
        return 0;
    }
    let (a, b) = (r.start as usize, r.end as usize);
    let mut count = popcount(&s[a..=b]);
    // Bits of the edge bytes outside a BIT range were counted above: take them out.
    count -= u64::from((s[a] & r.first_neg_mask).count_ones());
    count -= u64::from((s[b] & r.last_neg_mask).count_ones());
    count
}

/// Position of the first bit equal to `bit` in `bytes`; when looking for a clear bit
/// in all-ones bytes, the position just past them; when looking for a set bit that is
/// not there, -1 (Redis's `redisBitpos`).
fn first_bit(bytes: &[u8], bit: bool) -> i64 {
    let skip = if bit { 0x00 } else { 0xff };
    match bytes.iter().position(|&b| b != skip) {
        Some(i) => {
            let b = if bit { bytes[i] } else { !bytes[i] };
            (i as i64) * 8 + i64::from(b.leading_zeros())
        }
        None if bit => -1,
        None => bytes.len() as i64 * 8,
    }
}

/// BITPOS on an existing string: the first bit equal to `bit` within the optional
/// `start` and `end` (and unit, which needs `end`). Mirrors Redis 7.0, including that a
/// clear bit is found just past the string when no `end` was given.
pub fn bitpos(s: &[u8], bit: bool, start: Option<i64>, end: Option<i64>, unit: Unit) -> i64 {
    let r = match start {
        None => ByteRange {
            start: 0,
            end: s.len() as i64 - 1,
            first_neg_mask: 0,
            last_neg_mask: 0,
        },
        Some(start) => {
            let total = s.len() as i64;
            let end = end.unwrap_or(match unit {
                Unit::Bit => (total << 3) + 7,
                Unit::Byte => total - 1,
            });
            normalise(s.len(), start, end, unit)
        }
    };
    let end_given = end.is_some();
    if r.start > r.end {
        return -1;
    }
    let (mut start, endb) = (r.start, r.end);
    let mut bytes = endb - start + 1;
    let pick = |b: u8, mask: u8| if bit { b & !mask } else { b | mask };
    let pos = 'found: {
        if r.first_neg_mask != 0 {
            let mut c = pick(s[start as usize], r.first_neg_mask);
            if r.last_neg_mask != 0 && bytes == 1 {
                c = pick(c, r.last_neg_mask);
            }
            let pos = first_bit(&[c], bit);
            if bytes == 1 || (pos != -1 && pos != 8) {
                break 'found pos;
            }
            start += 1;
            bytes -= 1;
        }
        let cur = bytes - i64::from(r.last_neg_mask != 0);
        if cur > 0 {
            let a = start as usize;
            let pos = first_bit(&s[a..a + cur as usize], bit);
            if bytes == cur || (pos != -1 && pos != cur << 3) {
                break 'found pos;
            }
            start += cur;
            bytes -= cur;
        }
        first_bit(&[pick(s[endb as usize], r.last_neg_mask)], bit)
    };
    // With an explicit end, a clear bit "found" just past the range is not in it.
    if end_given && !bit && pos == bytes << 3 {
        return -1;
    }
    if pos == -1 { -1 } else { pos + (start << 3) }
}

/// A BITOP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitOp {
    /// AND
    And,
    /// OR
    Or,
    /// XOR
    Xor,
    /// NOT (one source)
    Not,
}

/// BITOP: combines the sources (missing keys are `None`, read as empty strings) into a
/// result as long as the longest source, shorter sources padded with zero bytes.
pub fn bitop(op: BitOp, srcs: &[Option<&[u8]>]) -> Vec<u8> {
    let maxlen = srcs
        .iter()
        .map(|s| s.map_or(0, <[u8]>::len))
        .max()
        .unwrap_or(0);
    let byte = |j: usize, i: usize| srcs[j].and_then(|s| s.get(i)).copied().unwrap_or(0);
    let mut out = Vec::with_capacity(maxlen);
    for i in 0..maxlen {
        let mut v = byte(0, i);
        if op == BitOp::Not {
            v = !v;
        }
        for j in 1..srcs.len() {
            let b = byte(j, i);
            match op {
                BitOp::And => v &= b,
                BitOp::Or => v |= b,
                BitOp::Xor => v ^= b,
                BitOp::Not => {}
            }
        }
        out.push(v);
    }
    out
}

/// BITFIELD overflow behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Wrap around (the default).
    Wrap,
    /// Saturate at the type's limits.
    Sat,
    /// Refuse the operation (the reply is null).
    Fail,
}

/// Reads an unsigned field of `bits` (1..=64) bits at bit `offset`, most significant
/// bit first; bits past the end of `s` read as 0.
pub fn get_unsigned(s: &[u8], offset: u64, bits: u32) -> u64 {
    let mut v: u64 = 0;
    for j in 0..u64::from(bits) {
        v = (v << 1) | u64::from(get_bit(s, offset + j));
    }
    v
}

/// Reads a signed (two's complement) field of `bits` (1..=64) bits.
pub fn get_signed(s: &[u8], offset: u64, bits: u32) -> i64 {
    let v = get_unsigned(s, offset, bits);
    if bits < 64 && v & (1u64 << (bits - 1)) != 0 {
        (v | (u64::MAX << bits)) as i64
    } else {
        v as i64
    }
}

/// Writes the low `bits` bits of `value` at bit `offset`; `s` must cover them.
pub fn set_field(s: &mut [u8], offset: u64, bits: u32, value: u64) {
    for j in 0..u64::from(bits) {
        let on = value & (1u64 << (u64::from(bits) - 1 - j)) != 0;
        set_bit(s, offset + j, on);
    }
}

/// Checks `value + incr` against an unsigned field of `bits` (1..=63) bits, as Redis's
/// checkUnsignedBitfieldOverflow: returns whether it overflows and, for WRAP and SAT,
/// the value to store instead.
pub fn unsigned_overflow(value: u64, incr: i64, bits: u32, ow: Overflow) -> (bool, Option<u64>) {
    let max: u64 = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let maxincr = max.wrapping_sub(value) as i64;
    let minincr = (value as i64).wrapping_neg();
    let wrap = || {
        let mask = if bits >= 64 { 0 } else { u64::MAX << bits };
        value.wrapping_add(incr as u64) & !mask
    };
    if value > max || (incr > 0 && incr > maxincr) {
        return match ow {
            Overflow::Wrap => (true, Some(wrap())),
            Overflow::Sat => (true, Some(max)),
            Overflow::Fail => (true, None),
        };
    }
    if incr < 0 && incr < minincr {
        return match ow {
            Overflow::Wrap => (true, Some(wrap())),
            Overflow::Sat => (true, Some(0)),
            Overflow::Fail => (true, None),
        };
    }
    (false, None)
}

/// Checks `value + incr` against a signed field of `bits` (1..=64) bits, as Redis's
/// checkSignedBitfieldOverflow (with its wrapping intermediate arithmetic).
pub fn signed_overflow(value: i64, incr: i64, bits: u32, ow: Overflow) -> (bool, Option<i64>) {
    let max: i64 = if bits == 64 {
        i64::MAX
    } else {
        (1i64 << (bits - 1)) - 1
    };
    let min = -max - 1;
    let maxincr = (max as u64).wrapping_sub(value as u64) as i64;
    let minincr = min.wrapping_sub(value);
    let wrap = || {
        let mut c = (value as u64).wrapping_add(incr as u64);
        if bits < 64 {
            let mask = u64::MAX << bits;
            if c & (1u64 << (bits - 1)) != 0 {
                c |= mask;
            } else {
                c &= !mask;
            }
        }
        c as i64
    };
    if value > max || (bits != 64 && incr > maxincr) || (value >= 0 && incr > 0 && incr > maxincr) {
        return match ow {
            Overflow::Wrap => (true, Some(wrap())),
            Overflow::Sat => (true, Some(max)),
            Overflow::Fail => (true, None),
        };
    }
    if value < min || (bits != 64 && incr < minincr) || (value < 0 && incr < 0 && incr < minincr) {
        return match ow {
            Overflow::Wrap => (true, Some(wrap())),
            Overflow::Sat => (true, Some(min)),
            Overflow::Fail => (true, None),
        };
    }
    (false, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn to_bits(s: &[u8]) -> Vec<bool> {
        (0..s.len() as u64 * 8).map(|i| get_bit(s, i)).collect()
    }

    /// BITCOUNT on a model: a Vec<bool>, with the documented index rules.
    fn model_count(bits: &[bool], range: Option<(i64, i64, Unit)>) -> u64 {
        let Some((start, end, unit)) = range else {
            return bits.iter().filter(|&&b| b).count() as u64;
        };
        let len = match unit {
            Unit::Byte => bits.len() as i64 / 8,
            Unit::Bit => bits.len() as i64,
        };
        if start < 0 && end < 0 && start > end {
            return 0;
        }
        let s = if start < 0 {
            (len + start).max(0)
        } else {
            start
        };
        let e = if end < 0 { (len + end).max(0) } else { end }.min(len - 1);
        if s > e {
            return 0;
        }
        let (lo, hi) = match unit {
            Unit::Byte => (s * 8, e * 8 + 7),
            Unit::Bit => (s, e),
        };
        (lo..=hi).filter(|&i| bits[i as usize]).count() as u64
    }

    /// BITPOS on a model.
    fn model_pos(
        bits: &[bool],
        bit: bool,
        start: Option<i64>,
        end: Option<i64>,
        unit: Unit,
    ) -> i64 {
        let len = match unit {
            Unit::Byte => bits.len() as i64 / 8,
            Unit::Bit => bits.len() as i64,
        };
        let s = start.unwrap_or(0);
        let e = end.unwrap_or(len - 1);
        let s = if s < 0 { (len + s).max(0) } else { s };
        let e = if e < 0 { (len + e).max(0) } else { e }.min(len - 1);
        if s > e {
            return -1;
        }
        let (lo, hi) = match unit {
            Unit::Byte => (s * 8, e * 8 + 7),
            Unit::Bit => (s, e),
        };
        match (lo..=hi).find(|&i| bits[i as usize] == bit) {
            Some(i) => i,
            // Without an end, the string continues with clear bits.
            None if !bit && end.is_none() => hi + 1,
            None => -1,
        }
    }

    #[test]
    fn bitcount_examples_from_redis_docs() {
        let s = b"foobar";
        assert_eq!(bitcount(s, None), 26);
        assert_eq!(bitcount(s, Some((0, 0, Unit::Byte))), 4);
        assert_eq!(bitcount(s, Some((1, 1, Unit::Byte))), 6);
        assert_eq!(bitcount(s, Some((1, 1, Unit::Bit))), 1);
        assert_eq!(bitcount(s, Some((5, 30, Unit::Bit))), 17);
        assert_eq!(bitcount(b"", None), 0);
    }

    #[test]
    fn bitpos_examples_from_redis_docs() {
        let s = [0xffu8, 0xf0, 0x00];
        assert_eq!(bitpos(&s, false, None, None, Unit::Byte), 12);
        let s = [0x00u8, 0xff, 0xf0];
        assert_eq!(bitpos(&s, true, Some(0), None, Unit::Byte), 8);
        assert_eq!(bitpos(&s, true, Some(2), None, Unit::Byte), 16);
        assert_eq!(bitpos(&s, true, Some(2), Some(-1), Unit::Byte), 16);
        assert_eq!(bitpos(&s, true, Some(7), Some(15), Unit::Bit), 8);
        assert_eq!(bitpos(&[0u8; 3], true, None, None, Unit::Byte), -1);
        assert_eq!(bitpos(&[0xffu8], false, None, None, Unit::Byte), 8);
        assert_eq!(bitpos(&[0xffu8], false, Some(0), Some(-1), Unit::Byte), -1);
    }

    #[test]
    fn bitfield_overflow_matches_redis() {
        // INCRBY u2 100 1 on 3 (the docs' example) wraps to 0 / saturates at 3.
        assert_eq!(unsigned_overflow(3, 1, 2, Overflow::Wrap), (true, Some(0)));
        assert_eq!(unsigned_overflow(3, 1, 2, Overflow::Sat), (true, Some(3)));
        assert_eq!(unsigned_overflow(3, 1, 2, Overflow::Fail), (true, None));
        assert_eq!(unsigned_overflow(1, -2, 8, Overflow::Sat), (true, Some(0)));
        assert_eq!(
            unsigned_overflow(1, -2, 8, Overflow::Wrap),
            (true, Some(255))
        );
        assert_eq!(unsigned_overflow(1, 1, 8, Overflow::Wrap), (false, None));
        // SET u8 -1 is value 2^64-1 > max.
        assert_eq!(
            unsigned_overflow(u64::MAX, 0, 8, Overflow::Wrap),
            (true, Some(255))
        );
        assert_eq!(
            signed_overflow(127, 1, 8, Overflow::Wrap),
            (true, Some(-128))
        );
        assert_eq!(signed_overflow(127, 1, 8, Overflow::Sat), (true, Some(127)));
        assert_eq!(
            signed_overflow(-128, -1, 8, Overflow::Sat),
            (true, Some(-128))
        );
        assert_eq!(
            signed_overflow(-128, -1, 8, Overflow::Wrap),
            (true, Some(127))
        );
        assert_eq!(
            signed_overflow(i64::MAX, 1, 64, Overflow::Wrap),
            (true, Some(i64::MIN))
        );
        assert_eq!(
            signed_overflow(i64::MAX, 0, 64, Overflow::Wrap),
            (false, None)
        );
        assert_eq!(signed_overflow(5, -3, 4, Overflow::Fail), (false, None));
    }

    #[test]
    fn fields_round_trip() {
        let mut s = vec![0u8; 10];
        set_field(&mut s, 3, 13, 0x1abc);
        assert_eq!(get_unsigned(&s, 3, 13), 0x1abc);
        set_field(&mut s, 5, 64, u64::MAX - 5);
        assert_eq!(get_unsigned(&s, 5, 64), u64::MAX - 5);
        assert_eq!(get_signed(&s, 5, 64), -6);
        set_field(&mut s, 0, 4, 0b1000);
        assert_eq!(get_signed(&s, 0, 4), -8);
        // Past the end reads zeros.
        assert_eq!(get_unsigned(&[0xff], 4, 8), 0xf0);
    }

    #[test]
    fn bitop_pads_with_zeros() {
        let a: &[u8] = b"\xff\x0f";
        let b: &[u8] = b"\x0f";
        assert_eq!(bitop(BitOp::And, &[Some(a), Some(b)]), vec![0x0f, 0x00]);
        assert_eq!(bitop(BitOp::Or, &[Some(a), None]), vec![0xff, 0x0f]);
        assert_eq!(bitop(BitOp::Xor, &[Some(a), Some(b)]), vec![0xf0, 0x0f]);
        assert_eq!(bitop(BitOp::Not, &[Some(a)]), vec![0x00, 0xf0]);
        assert!(bitop(BitOp::Or, &[None, None]).is_empty());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Set(u64, bool),
        Field(u64, u32, u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u64..200, any::<bool>()).prop_map(|(o, b)| Op::Set(o, b)),
            (0u64..200, 1u32..=64, any::<u64>()).prop_map(|(o, b, v)| Op::Field(o, b, v)),
        ]
    }

    fn unit() -> impl Strategy<Value = Unit> {
        prop_oneof![Just(Unit::Byte), Just(Unit::Bit)]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Random SETBIT/BITFIELD SET writes against a Vec<bool>, then every read
        /// (GETBIT, field reads, BITCOUNT, BITPOS with random ranges) against the model.
        #[test]
        fn bitmap_matches_vec_bool_model(
            ops in prop::collection::vec(op(), 1..40),
            ranges in prop::collection::vec((-300i64..300, -300i64..300, unit()), 1..10),
        ) {
            let mut s: Vec<u8> = Vec::new();
            let mut model: Vec<bool> = Vec::new();
            for op in &ops {
                match *op {
                    Op::Set(off, on) => {
                        let need = (off / 8 + 1) as usize;
                        if s.len() < need { s.resize(need, 0); }
                        while model.len() < need * 8 { model.push(false); }
                        let old = set_bit(&mut s, off, on);
                        prop_assert_eq!(old, model[off as usize]);
                        model[off as usize] = on;
                    }
                    Op::Field(off, bits, v) => {
                        let need = ((off + u64::from(bits) - 1) / 8 + 1) as usize;
                        if s.len() < need { s.resize(need, 0); }
                        while model.len() < need * 8 { model.push(false); }
                        set_field(&mut s, off, bits, v);
                        for j in 0..u64::from(bits) {
                            model[(off + j) as usize] = v >> (u64::from(bits) - 1 - j) & 1 == 1;
                        }
                        let mask = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
                        prop_assert_eq!(get_unsigned(&s, off, bits), v & mask);
                    }
                }
                prop_assert_eq!(to_bits(&s), model.clone());
            }
            prop_assert_eq!(bitcount(&s, None), model_count(&model, None));
            for &(a, b, u) in &ranges {
                prop_assert_eq!(bitcount(&s, Some((a, b, u))), model_count(&model, Some((a, b, u))));
                for bit in [false, true] {
                    prop_assert_eq!(
                        bitpos(&s, bit, Some(a), Some(b), u),
                        model_pos(&model, bit, Some(a), Some(b), u),
                        "bitpos {} {} {} {:?}", bit, a, b, u
                    );
                    prop_assert_eq!(
                        bitpos(&s, bit, Some(a), None, Unit::Byte),
                        model_pos(&model, bit, Some(a), None, Unit::Byte)
                    );
                }
            }
            for bit in [false, true] {
                prop_assert_eq!(bitpos(&s, bit, None, None, Unit::Byte), model_pos(&model, bit, None, None, Unit::Byte));
            }
        }
    }
}
