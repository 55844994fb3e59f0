//! LZF compression as Redis uses it for RDB strings (liblzf 3.6 with Redis's settings:
//! a 2^16-slot hash table, the "very fast" variant).
//!
//! The compressor reproduces liblzf's choices step by step (hash function, match search,
//! output-space checks), so a string compresses to the same bytes as in redis-server and
//! `DUMP` payloads can be compared byte for byte. One difference is deliberate: liblzf
//! leaves its hash table uninitialised (stack garbage can, rarely, offer a match a clean
//! table would not); here every call starts from an empty table.
//!
//! Format: a control byte `000LLLLL` is a literal run of L+1 bytes; `LLLooooo oooooooo`
//! copies L+2 bytes from `offset+1` bytes back; L = 7 takes an extra length byte
//! (`111ooooo LLLLLLLL oooooooo`, L+7+2 bytes).

const HLOG: u32 = 16;
const HSIZE: usize = 1 << HLOG;
const MAX_LIT: usize = 1 << 5;
const MAX_OFF: usize = 1 << 13;
const MAX_REF: usize = (1 << 8) + (1 << 3);

/// Why a buffer could not be decompressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LzfError {
    /// The output would be larger than the announced length.
    TooBig,
    /// A back reference points before the start, or the input ends inside an item.
    Corrupt,
}

/// A reusable compressor: the hash table is allocated once and invalidated per call by a
/// generation number, so compressing many small strings costs no table clearing.
pub struct Compressor {
    /// `(generation << 32) | position`; an entry of another generation is empty.
    table: Vec<u64>,
    generation: u32,
}

impl Default for Compressor {
    fn default() -> Self {
        Compressor::new()
    }
}

#[inline]
fn idx(h: u32) -> usize {
    // VERY_FAST: ((h >> (3*8 - HLOG)) - h*5) & (HSIZE - 1), in 32-bit unsigned arithmetic.
    ((h >> (24 - HLOG)).wrapping_sub(h.wrapping_mul(5)) as usize) & (HSIZE - 1)
}

impl Compressor {
    /// A compressor with an empty table.
    pub fn new() -> Compressor {
        Compressor {
            table: vec![0; HSIZE],
            generation: 0,
        }
    }

    fn next_generation(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.table.iter_mut().for_each(|e| *e = 0);
            self.generation = 1;
        }
    }

    #[inline]
    fn get(&self, slot: usize) -> usize {
        let e = self.table[slot];
        if (e >> 32) as u32 == self.generation {
            (e & 0xffff_ffff) as usize
        } else {
            0
        }
    }

    #[inline]
    fn set(&mut self, slot: usize, pos: usize) {
        self.table[slot] = (u64::from(self.generation) << 32) | pos as u64;
    }

    /// Compresses `input` into at most `out_len` bytes, as `lzf_compress(in, len, out,
    /// out_len)`; `None` where liblzf returns 0 (the output does not fit, or empty input).
    pub fn compress(&mut self, input: &[u8], out_len: usize) -> Option<Vec<u8>> {
        let n = input.len();
        if n == 0 || out_len == 0 || n > u32::MAX as usize {
            return None;
        }
        self.next_generation();
        // liblzf's checks allow writes a few bytes past `out_end` only where it then fails;
        // the slack keeps those writes in bounds.
        let mut out = vec![0u8; out_len + 8];
        let out_end = out_len;
        let mut ip = 0usize;
        let mut op = 1usize; // start a literal run
        let mut lit = 0usize;
        let mut hval: u32 = if n >= 2 {
            (u32::from(input[0]) << 8) | u32::from(input[1])
        } else {
            0
        };
        while ip + 2 < n {
            hval = (hval << 8) | u32::from(input[ip + 2]);
            let slot = idx(hval);
            let r = self.get(slot);
            self.set(slot, ip);
            if r > 0
                && r < ip
                && ip - r - 1 < MAX_OFF
                && ip + 4 < n
                && input[r] == input[ip]
                && input[r + 1] == input[ip + 1]
                && input[r + 2] == input[ip + 2]
            {
                let off = ip - r - 1;
                let mut len = 2usize;
                let maxlen = (n - ip - len).min(MAX_REF);
                // Stop the literal run (or drop its empty header).
                out[op - lit - 1] = (lit as u8).wrapping_sub(1);
                if lit == 0 {
                    op -= 1;
                }
                if op + 3 + 1 >= out_end {
                    return None;
                }
                'search: {
                    if maxlen > 16 {
                        for _ in 0..16 {
                            len += 1;
                            if input[r + len] != input[ip + len] {
                                break 'search;
                            }
                        }
                    }
                    loop {
                        len += 1;
                        if !(len < maxlen && input[r + len] == input[ip + len]) {
                            break;
                        }
                    }
                }
                len -= 2; // octets - 1 - 1
                ip += 1;
                if len < 7 {
                    out[op] = ((off >> 8) + (len << 5)) as u8;
                    op += 1;
                } else {
                    out[op] = ((off >> 8) + (7 << 5)) as u8;
                    out[op + 1] = (len - 7) as u8;
                    op += 2;
                }
                out[op] = off as u8;
                op += 1;
                lit = 0;
                op += 1; // start a literal run
                ip += len + 1;
                if ip + 2 >= n {
                    break;
                }
                // Re-hash the last two positions of the match (liblzf's VERY_FAST).
                ip -= 2;
                hval = (u32::from(input[ip]) << 8) | u32::from(input[ip + 1]);
                hval = (hval << 8) | u32::from(input[ip + 2]);
                self.set(idx(hval), ip);
                ip += 1;
                hval = (hval << 8) | u32::from(input[ip + 2]);
                self.set(idx(hval), ip);
                ip += 1;
            } else {
                if op >= out_end {
                    return None;
                }
                lit += 1;
                out[op] = input[ip];
                op += 1;
                ip += 1;
                if lit == MAX_LIT {
                    out[op - lit - 1] = (lit - 1) as u8;
                    lit = 0;
                    op += 1;
                }
            }
        }
        if op + 3 > out_end {
            return None;
        }
        while ip < n {
            lit += 1;
            out[op] = input[ip];
            op += 1;
            ip += 1;
            if lit == MAX_LIT {
                out[op - lit - 1] = (lit - 1) as u8;
                lit = 0;
                op += 1;
            }
        }
        out[op - lit - 1] = (lit as u8).wrapping_sub(1);
        if lit == 0 {
            op -= 1;
        }
        out.truncate(op);
        Some(out)
    }
}

/// Decompresses `input`, which must expand to exactly `out_len` bytes.
pub fn decompress(input: &[u8], out_len: usize) -> Result<Vec<u8>, LzfError> {
    let mut out: Vec<u8> = Vec::with_capacity(out_len);
    let mut ip = 0usize;
    while ip < input.len() {
        let ctrl = usize::from(input[ip]);
        ip += 1;
        if ctrl < 32 {
            let run = ctrl + 1;
            if out.len() + run > out_len {
                return Err(LzfError::TooBig);
            }
            let lit = input.get(ip..ip + run).ok_or(LzfError::Corrupt)?;
            out.extend_from_slice(lit);
            ip += run;
        } else {
            let mut len = ctrl >> 5;
            let mut back = (ctrl & 0x1f) << 8;
            if len == 7 {
                len += usize::from(*input.get(ip).ok_or(LzfError::Corrupt)?);
                ip += 1;
            }
            back += usize::from(*input.get(ip).ok_or(LzfError::Corrupt)?);
            ip += 1;
            let len = len + 2;
            if out.len() + len > out_len {
                return Err(LzfError::TooBig);
            }
            let from = out.len().checked_sub(back + 1).ok_or(LzfError::Corrupt)?;
            // Overlapping copies repeat the pattern, byte by byte.
            for k in 0..len {
                let b = out[from + k];
                out.push(b);
            }
        }
    }
    if out.len() != out_len {
        return Err(LzfError::Corrupt);
    }
    Ok(out)
}

/// The most a compressed buffer of `clen` bytes can expand to (a 3-byte back reference
/// yields 264 bytes), used to refuse absurd lengths before allocating.
pub fn max_expansion(clen: usize) -> usize {
    clen.saturating_mul(MAX_REF)
        .div_ceil(3)
        .saturating_add(MAX_LIT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn repetitive_input_compresses_and_round_trips() {
        let input =
            b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_vec();
        let mut c = Compressor::new();
        let out = c.compress(&input, input.len() - 4).expect("compressible");
        assert!(out.len() < input.len());
        assert_eq!(decompress(&out, input.len()).unwrap(), input);
    }

    #[test]
    fn incompressible_input_fails_like_liblzf() {
        let input: Vec<u8> = (0..64u8).collect();
        assert_eq!(Compressor::new().compress(&input, input.len() - 4), None);
    }

    #[test]
    fn corrupt_inputs_are_errors() {
        assert_eq!(decompress(&[0x05, b'a'], 6), Err(LzfError::Corrupt));
        assert_eq!(decompress(&[0x20, 0x00], 3), Err(LzfError::Corrupt));
        assert_eq!(decompress(&[0x00, b'a'], 0), Err(LzfError::TooBig));
        assert_eq!(decompress(&[0x00, b'a'], 2), Err(LzfError::Corrupt));
    }

    proptest! {
        #[test]
        fn round_trips(data in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), any::<u8>()], 1..3000)) {
            let mut c = Compressor::new();
            if let Some(out) = c.compress(&data, data.len() + 64) {
                prop_assert_eq!(decompress(&out, data.len()).unwrap(), data.clone());
            }
            // The same compressor again gives the same bytes (no state leaks between calls).
            let a = c.compress(&data, data.len() + 64);
            let b = Compressor::new().compress(&data, data.len() + 64);
            prop_assert_eq!(a, b);
        }

        #[test]
        fn decompress_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200), len in 0usize..500) {
            let _ = decompress(&data, len);
        }
    }
}
