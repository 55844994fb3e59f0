//! `DUMP` / `RESTORE` payloads: an RDB object (type byte and body), the RDB version as
//! two little-endian bytes, and the CRC-64 of everything before it (8 bytes, little
//! endian), exactly as Redis 7.0's `createDumpPayload` builds them.

use crate::crc64::crc64;
use crate::rdb::decode::{Reader, read_object};
use crate::rdb::encode::{EncodeOptions, Encoder};
use crate::rdb::{RDB_VERSION, RdbError};
use basalt_engine::{EncodingLimits, Value};

/// Why a payload was refused, mapped to Redis's two error replies.
#[derive(Debug)]
pub enum RestoreError {
    /// "DUMP payload version or checksum are wrong"
    VersionOrChecksum,
    /// "Bad data format" (with the reason, for logs).
    BadFormat(RdbError),
}

/// The serialized form of `v`.
pub fn dump<'a>(v: impl Into<basalt_engine::ValueRef<'a>>, opts: EncodeOptions) -> Vec<u8> {
    let mut enc = Encoder::new(opts);
    let mut out = Vec::with_capacity(64);
    enc.object(&mut out, v);
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(0, &out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Checks the footer of a payload as Redis's `verifyDumpPayload`: at least 10 bytes, an
/// RDB version Basalt can read, and a matching CRC-64 (a zero CRC is not special here).
pub fn verify(payload: &[u8]) -> bool {
    if payload.len() < 10 {
        return false;
    }
    let footer = &payload[payload.len() - 10..];
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    if version > RDB_VERSION {
        return false;
    }
    let crc = crc64(0, &payload[..payload.len() - 8]);
    crc.to_le_bytes() == footer[2..10]
}

/// The value a payload holds. `Ok(None)`: a well-formed empty collection (Redis answers
/// "Bad data format" for it too, which the caller decides).
pub fn restore(payload: &[u8], limits: &EncodingLimits) -> Result<Option<Value>, RestoreError> {
    if !verify(payload) {
        return Err(RestoreError::VersionOrChecksum);
    }
    // As in Redis, the decoder reads from the whole payload: a body whose last string
    // runs into the footer is accepted (redis-server 7.0.15 restores such a payload).
    let mut r = Reader::from_slice(payload);
    let ty = r.u8().map_err(RestoreError::BadFormat)?;
    read_object(&mut r, ty, limits).map_err(RestoreError::BadFormat)
}

#[cfg(test)]
mod tests {
    use super::*;
    use basalt_engine::StrValue;
    use basalt_engine::types::{HashValue, ListValue, SetValue, ZSetValue};
    use bytes::Bytes;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// `DUMP` replies of redis-server 7.0.15 for the same values (`redis-cli --raw DUMP`).
    fn redis_cases() -> Vec<(Value, &'static str)> {
        let lim = EncodingLimits::default();
        let mut h = HashValue::new();
        h.set(b"f1", b"v1", &lim);
        h.set(b"f2", b"2", &lim);
        let z = ZSetValue::from_entries(
            vec![
                (Bytes::from_static(b"a"), 1.0),
                (Bytes::from_static(b"b"), 2.5),
                (Bytes::from_static(b"c"), -0.0),
                (Bytes::from_static(b"d"), 1e20),
                (Bytes::from_static(b"e"), f64::INFINITY),
            ],
            &lim,
        );
        let s = |b: &[u8]| Value::Str(StrValue::from_bytes(b));
        vec![
            (s(b"hello"), "000568656c6c6f0a006372df766534200a"),
            (s(b"12345"), "00c139300a009d94ea2793fc08b9"),
            (
                s(&[b'a'; 60]),
                "00c3093c016161e02f000161610a00a67e08b217d09780",
            ),
            (
                s(b"abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz"),
                "00c32d3e1f6162636465666768696a6b6c6d6e6f707172737475767778797a303132333435043637383961e00e2301797a0a003f4c44db08371794",
            ),
            (
                s(b"99999999999"),
                "000b39393939393939393939390a0023b048fb0edbef7f",
            ),
            (
                Value::from(ListValue::from_elements(
                    [&b"a"[..], b"1", b"-1", b"hello", b"300", b"70000"],
                    &lim,
                )),
                "1201021e1e00000006008161020101dfff028568656c6c6f06c12c02f270110104ff0a00311acae52479bc38",
            ),
            (
                Value::from(h),
                "10151500000004008266310382763103826632030201ff0a005c5ea813feec1ff5",
            ),
            (
                Value::from(SetValue::from_members([&b"1"[..], b"5", b"-3"], &lim)),
                "0b0e0200000003000000fdff010005000a007e2b589563748fa4",
            ),
            (
                Value::from(SetValue::from_members([&b"1"[..], b"70000"], &lim)),
                "0b10040000000200000001000000701101000a002735436efd6656c4",
            ),
            (
                Value::from(z),
                "112b2b0000000a008163020001816102010181620283322e35048164028531652b32300681650283696e6604ff0a00cea14116350b845b",
            ),
        ]
    }

    #[test]
    fn dump_is_byte_identical_to_redis() {
        for (v, want) in redis_cases() {
            let got = dump(&v, EncodeOptions::default());
            assert_eq!(got, hex(want), "{v:?}");
        }
    }

    #[test]
    fn redis_payloads_restore_to_the_same_values() {
        let lim = EncodingLimits::default();
        for (v, payload) in redis_cases() {
            let back = restore(&hex(payload), &lim).unwrap().unwrap();
            assert_eq!(back, v);
            assert_eq!(back.encoding(), v.encoding());
        }
    }

    #[test]
    fn bad_footers_are_refused() {
        let lim = EncodingLimits::default();
        let mut p = hex("000568656c6c6f0a006372df766534200a");
        assert!(matches!(
            restore(&p[..9], &lim),
            Err(RestoreError::VersionOrChecksum)
        ));
        let last = p.len() - 1;
        p[last] ^= 1;
        assert!(matches!(
            restore(&p, &lim),
            Err(RestoreError::VersionOrChecksum)
        ));
        // Version 11 (Redis 7.2) is newer than what Basalt reads.
        let mut v11 = dump(
            &Value::Str(StrValue::from_bytes(b"x")),
            EncodeOptions::default(),
        );
        let n = v11.len();
        v11[n - 10] = 11;
        let crc = crc64(0, &v11[..n - 8]);
        v11[n - 8..].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            restore(&v11, &lim),
            Err(RestoreError::VersionOrChecksum)
        ));
    }
}
