//! FUNCTION DUMP / RESTORE payloads in Redis's format: per library the RDB opcode
//! `FUNCTION2` (245) and the library code as an RDB string (LZF-compressed when
//! `rdbcompression` is on and it saves space, as Redis does), then the RDB version (2 bytes,
//! little endian) and the CRC-64 of all that precedes it (8 bytes, little endian).
//!
//! The RDB string and CRC codecs are `basalt-persist`'s, so payloads are byte-identical
//! to redis-server's and restore in both directions.

use basalt_persist::crc64::crc64;
use basalt_persist::rdb::RDB_VERSION;
use basalt_persist::rdb::decode::Reader;
use basalt_persist::rdb::encode::{EncodeOptions, Encoder};

/// `RDB_OPCODE_FUNCTION2`.
pub const OPCODE_FUNCTION2: u8 = 245;
/// `RDB_OPCODE_FUNCTION` (the Redis 7.0 release-candidate layout, not restorable).
pub const OPCODE_FUNCTION: u8 = 246;

/// The payload for `codes` (library codes); `compression` is `rdbcompression`.
pub fn dump<'a>(codes: impl IntoIterator<Item = &'a [u8]>, compression: bool) -> Vec<u8> {
    let mut enc = Encoder::new(EncodeOptions {
        compression,
        ..EncodeOptions::default()
    });
    let mut out = Vec::new();
    for code in codes {
        out.push(OPCODE_FUNCTION2);
        enc.string(&mut out, code);
    }
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(0, &out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Why a payload cannot be restored (Redis's reply for each).
#[derive(Debug, PartialEq, Eq)]
pub enum RestoreError {
    /// Too short, newer RDB version, or a checksum mismatch.
    VersionOrChecksum,
    /// An opcode other than a function.
    NotAFunction,
    /// The data ends early or is malformed.
    Truncated,
}

/// The library codes in a payload.
pub fn restore(payload: &[u8]) -> Result<Vec<Vec<u8>>, RestoreError> {
    if !basalt_persist::dump::verify(payload) {
        return Err(RestoreError::VersionOrChecksum);
    }
    let body = &payload[..payload.len() - 10];
    let mut r = Reader::from_slice(body);
    let mut codes = Vec::new();
    while r.remaining() > 0 {
        let op = r.u8().map_err(|_| RestoreError::Truncated)?;
        if op != OPCODE_FUNCTION2 {
            return Err(RestoreError::NotAFunction);
        }
        codes.push(r.string().map_err(|_| RestoreError::Truncated)?);
    }
    Ok(codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_restore_round_trip() {
        let codes: Vec<&[u8]> = vec![
            b"#!lua name=a\nredis.register_function('fa', function() return 1 end)",
            b"#!lua name=b\ny",
        ];
        for compression in [true, false] {
            let p = dump(codes.iter().copied(), compression);
            let back = restore(&p).unwrap();
            assert_eq!(back, codes.iter().map(|c| c.to_vec()).collect::<Vec<_>>());
            let mut bad = p.clone();
            bad[3] ^= 1;
            assert_eq!(restore(&bad), Err(RestoreError::VersionOrChecksum));
        }
        assert_eq!(restore(b"garbage"), Err(RestoreError::VersionOrChecksum));
    }

    #[test]
    fn dump_is_byte_identical_to_redis() {
        // FUNCTION DUMP of redis-server 7.0.15 after loading this library.
        let code: &[u8] = b"#!lua name=mylib\nredis.register_function('f1', function(keys, args) return {keys[1], args[1]} end)";
        let redis: &[u8] = b"\xf5\xc3@Z@b\x1f#!lua name=mylib\nredis.register_\x0efunction('f1', \xe0\x00\x0e\x13keys, args) return {@\x13\x02[1]\x80\x16 \x08\x05} end)\n\x00\x8d\xcd\xbc-\xd4\x11&\xfe";
        assert_eq!(dump([code], true), redis);
        assert_eq!(restore(redis).unwrap(), vec![code.to_vec()]);
    }
}
