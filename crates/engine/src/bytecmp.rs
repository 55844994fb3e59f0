//! Byte-string comparison that never reads outside the strings compared.
//!
//! `[u8] == [u8]` and `[u8]::cmp` call libc's `bcmp`/`memcmp`. glibc's AVX-512 version
//! (`__memcmp_evex_movbe`, picked on this project's machines) compares strings shorter
//! than 32 bytes with one masked 32-byte load per string. When a string ends within 32
//! bytes of a page boundary and the next page is not mapped in yet — the frontier of a
//! fresh mapping, such as the node slab's newest chunk or a new allocator segment — the
//! masked-off part of the load falls in that page and the processor suppresses the fault
//! with a microcode assist: about 160 ns per comparison instead of 2. One key stored there
//! cost a server process 40% of its time answering ZRANGE on it (docs/benchmarks.md,
//! "Ninth sitting"), and which process was hit depended on where its allocations landed.
//!
//! [`eq`] and [`cmp`] read short strings with plain loads inside their bounds and leave
//! strings of 32 bytes and more to libc, whose loads for those stay inside the strings.
//! The comparisons of the collections' lookup paths go through them: keyspace keys, hash
//! fields, set and sorted-set members, list elements, lock owners and tokens, stream
//! master fields. Names kept as keys of `BTreeMap`/`HashMap`s (stream groups and
//! consumers, queue job ids) still compare through libc.

use std::cmp::Ordering;

/// Strings this long or longer are compared by libc.
const SHORT: usize = 32;

/// Eight bytes of `s` from `at` (which must leave eight), most significant first.
#[inline(always)]
fn word(s: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&s[at..at + 8]);
    u64::from_be_bytes(w)
}

/// Four bytes of `s` from `at` (which must leave four).
#[inline(always)]
fn half(s: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&s[at..at + 4]);
    u32::from_be_bytes(w)
}

/// Whether `a` and `b` hold the same bytes.
#[inline]
pub fn eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        SHORT.. => a == b,
        // Two overlapping loads cover every byte: the first and the last eight (or four).
        16..SHORT => {
            word(a, 0) == word(b, 0)
                && word(a, 8) == word(b, 8)
                && word(a, n - 16) == word(b, n - 16)
                && word(a, n - 8) == word(b, n - 8)
        }
        8..16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        4..8 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        1..4 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        0 => true,
    }
}

/// The order of `a` and `b` as `[u8]::cmp` gives it (bytewise, a prefix first).
#[inline]
pub fn cmp(a: &[u8], b: &[u8]) -> Ordering {
    let m = a.len().min(b.len());
    if m >= SHORT {
        return a.cmp(b);
    }
    let mut i = 0;
    while i + 8 <= m {
        let (x, y) = (word(a, i), word(b, i));
        if x != y {
            return x.cmp(&y);
        }
        i += 8;
    }
    while i < m {
        if a[i] != b[i] {
            return a[i].cmp(&b[i]);
        }
        i += 1;
    }
    a.len().cmp(&b.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_length_and_every_differing_position_is_seen() {
        for n in 0..70usize {
            let a: Vec<u8> = (0..n as u8).map(|i| i.wrapping_mul(37)).collect();
            assert!(eq(&a, &a.clone()), "n={n}");
            assert_eq!(cmp(&a, &a.clone()), Ordering::Equal, "n={n}");
            for at in 0..n {
                for delta in [1u8, 0x80, 0xFF] {
                    let mut b = a.clone();
                    b[at] = b[at].wrapping_add(delta);
                    assert!(!eq(&a, &b), "n={n} at={at}");
                    assert_eq!(cmp(&a, &b), a.cmp(&b), "n={n} at={at}");
                    assert_eq!(cmp(&b, &a), b.cmp(&a), "n={n} at={at}");
                }
            }
            // A proper prefix is unequal and sorts first.
            if n > 0 {
                assert!(!eq(&a[..n - 1], &a));
                assert_eq!(cmp(&a[..n - 1], &a), Ordering::Less);
                assert_eq!(cmp(&a, &a[..n - 1]), Ordering::Greater);
            }
        }
    }

    proptest! {
        #[test]
        fn agrees_with_the_slice_operators(
            a in proptest::collection::vec(0u8..4, 0..48),
            b in proptest::collection::vec(0u8..4, 0..48),
        ) {
            prop_assert_eq!(eq(&a, &b), a == b);
            prop_assert_eq!(cmp(&a, &b), a.cmp(&b));
        }
    }
}
