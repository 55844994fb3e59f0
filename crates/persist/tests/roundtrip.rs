//! Property test: random datasets of every type, in both small and large encodings,
//! survive write → read unchanged (values, encodings, expire times, databases), with and
//! without compression and checksums; DUMP payloads restore to the same value.

use basalt_engine::types::list::End;
use basalt_engine::types::{HashValue, ListValue, SetValue, ZSetValue};
use basalt_engine::{EncodingLimits, StrValue, Value};
use basalt_persist::dump;
use basalt_persist::rdb::encode::{EncodeOptions, Encoder};
use basalt_persist::rdb::file::{FileWriter, LoadOptions, load};
use bytes::Bytes;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn bytes_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 0..12),
        2 => any::<i64>().prop_map(|i| i.to_string().into_bytes()),
        1 => (0usize..300, any::<u8>()).prop_map(|(n, b)| vec![b; n]),
        1 => proptest::collection::vec(any::<u8>(), 60..200),
    ]
}

fn value_strategy() -> impl Strategy<Value = Value> {
    let lim = EncodingLimits::default();
    prop_oneof![
        bytes_strategy().prop_map(|b| Value::Str(StrValue::from_bytes(&b))),
        proptest::collection::vec(bytes_strategy(), 1..300).prop_map(move |items| {
            let mut l = ListValue::new(&lim);
            for i in &items {
                l.push(End::Tail, i);
            }
            Value::from(l)
        }),
        proptest::collection::vec((bytes_strategy(), bytes_strategy()), 1..600).prop_map(
            move |pairs| {
                let mut h = HashValue::new();
                for (f, v) in &pairs {
                    h.set(f, v, &lim);
                }
                Value::from(h)
            }
        ),
        proptest::collection::vec(bytes_strategy(), 1..600).prop_map(move |m| Value::from(
            SetValue::from_members(m.iter().map(|x| x.as_slice()), &lim)
        )),
        proptest::collection::vec(any::<i16>(), 1..600).prop_map(move |m| {
            let strs: Vec<String> = m.iter().map(|i| i.to_string()).collect();
            Value::from(SetValue::from_members(
                strs.iter().map(|s| s.as_bytes()),
                &lim,
            ))
        }),
        proptest::collection::btree_map(
            bytes_strategy(),
            prop_oneof![
                any::<i32>().prop_map(f64::from),
                -1e300f64..1e300,
                Just(f64::INFINITY)
            ],
            1..300
        )
        .prop_map(move |m| {
            let entries = m.into_iter().map(|(k, s)| (Bytes::from(k), s)).collect();
            Value::from(ZSetValue::from_entries(entries, &lim))
        }),
        stream_strategy(),
    ]
}

/// Streams with random entries (some sharing their node's fields), deletions, trims,
/// groups, deliveries, acks and claims.
fn stream_strategy() -> impl Strategy<Value = Value> {
    use basalt_engine::types::stream::{ClaimOptions, IdRequest, StreamId, Trim, TrimStrategy};
    (
        proptest::collection::vec(
            (
                1u64..4,
                0u64..3,
                proptest::collection::vec((bytes_strategy(), bytes_strategy()), 1..4),
            ),
            0..120,
        ),
        proptest::collection::vec(any::<u16>(), 0..20),
        1u64..40,
        0u64..4,
        proptest::collection::vec((0usize..3, 0usize..5, 1usize..6, any::<bool>()), 0..8),
    )
        .prop_map(|(adds, deletes, node_entries, trim, reads)| {
            let lim = EncodingLimits {
                stream_node_max_entries: node_entries,
                ..EncodingLimits::default()
            };
            let mut s = basalt_engine::types::StreamValue::new();
            let mut id = StreamId::new(1, 0);
            let mut ids = Vec::new();
            for (dms, dseq, pairs) in &adds {
                id = StreamId::new(id.ms + dms, id.seq + dseq);
                let refs: Vec<(&[u8], &[u8])> = pairs
                    .iter()
                    .map(|(f, v)| (f.as_slice(), v.as_slice()))
                    .collect();
                s.add(IdRequest::Exact(id), &refs, 0, &lim).unwrap();
                ids.push(id);
            }
            for d in deletes {
                if !ids.is_empty() {
                    s.delete(ids[d as usize % ids.len()]);
                }
            }
            s.after_delete(true);
            if let Some(keep) = s.len().checked_div(trim) {
                s.trim(&Trim {
                    strategy: TrimStrategy::MaxLen(keep),
                    approx: trim % 2 == 0,
                    limit: 0,
                });
            }
            for g in 0..3u8 {
                s.create_group(&[b'g', g], StreamId::MIN, 0);
            }
            let mut now = 1_700_000_000_000u64;
            for (g, c, count, claim) in reads {
                now += 17;
                let group = [b'g', g as u8];
                let consumer = [b'c', c as u8];
                s.read_group_new(&group, &consumer, count, false, now, |_| {});
                if claim && !ids.is_empty() {
                    s.claim(
                        &group,
                        b"thief",
                        &ids[..ids.len().min(3)],
                        &ClaimOptions::default(),
                        now,
                        |_, _| {},
                    );
                }
            }
            Value::from(s)
        })
}

type Data = BTreeMap<(usize, Vec<u8>), (Value, u64)>;

fn dataset() -> impl Strategy<Value = Data> {
    proptest::collection::btree_map(
        (0usize..16, proptest::collection::vec(any::<u8>(), 0..20)),
        (
            value_strategy(),
            prop_oneof![Just(0u64), 1u64..u64::MAX / 2],
        ),
        0..40,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn datasets_survive_a_round_trip(data in dataset(), compression: bool, checksum: bool) {
        let opts = EncodeOptions { compression, list_fill: -2 };
        let mut enc = Encoder::new(opts);
        let mut w = FileWriter::new(Vec::new(), checksum).unwrap();
        for ((db, key), (v, exp)) in &data {
            w.select_db(*db, Some((1, 0))).unwrap();
            let mut buf = Vec::new();
            enc.key_value(&mut buf, key, v, *exp);
            w.write(&buf).unwrap();
        }
        let (file, size) = w.finish().unwrap();
        prop_assert_eq!(size, file.len() as u64);
        let mut back = Data::new();
        let lo = LoadOptions { limits: EncodingLimits::default(), verify_checksum: true };
        let summary = load(&file[..], file.len() as u64, &lo, |k| {
            back.insert((k.db, k.key), (k.value, k.expire_ms));
            Ok(())
        }).unwrap();
        prop_assert_eq!(summary.checksum_verified, checksum);
        prop_assert_eq!(back.len(), data.len());
        for (k, (v, exp)) in &data {
            let (bv, bexp) = &back[k];
            prop_assert_eq!(bv, v);
            prop_assert_eq!(bv.encoding(), v.encoding());
            prop_assert_eq!(bexp, exp);
        }
    }

    #[test]
    fn dump_payloads_restore(v in value_strategy(), compression: bool) {
        let p = dump::dump(&v, EncodeOptions { compression, list_fill: -2 });
        let back = dump::restore(&p, &EncodingLimits::default()).ok().flatten().unwrap();
        prop_assert_eq!(&back, &v);
        prop_assert_eq!(back.encoding(), v.encoding());
    }

    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..400)) {
        let lo = LoadOptions { limits: EncodingLimits::default(), verify_checksum: true };
        let mut file = b"REDIS0010".to_vec();
        file.extend_from_slice(&body);
        let _ = load(&file[..], file.len() as u64, &lo, |_| Ok(()));
        // Payload bodies with a valid footer reach the object decoder.
        let mut p = body.clone();
        p.extend_from_slice(&10u16.to_le_bytes());
        let crc = basalt_persist::crc64::crc64(0, &p);
        p.extend_from_slice(&crc.to_le_bytes());
        let _ = dump::restore(&p, &EncodingLimits::default());
    }
}

#[test]
fn bogus_lengths_do_not_allocate() {
    // A set claiming 2^60 members, a string claiming 4 GiB, an LZF string claiming a huge
    // expansion: each is refused from the bytes left, without allocating.
    let lim = EncodingLimits::default();
    let payload = |body: &[u8]| {
        let mut p = body.to_vec();
        p.extend_from_slice(&10u16.to_le_bytes());
        let crc = basalt_persist::crc64::crc64(0, &p);
        p.extend_from_slice(&crc.to_le_bytes());
        p
    };
    let mut huge_set = vec![2u8, 0x81];
    huge_set.extend_from_slice(&(1u64 << 60).to_be_bytes());
    assert!(dump::restore(&payload(&huge_set), &lim).is_err());
    let huge_str = [0u8, 0x80, 0xff, 0xff, 0xff, 0xff, b'a'];
    assert!(dump::restore(&payload(&huge_str), &lim).is_err());
    let lzf = [0u8, 0xc3, 2, 0x80, 0x7f, 0xff, 0xff, 0xff, 0, b'a'];
    assert!(dump::restore(&payload(&lzf), &lim).is_err());
}
