//! Stream unit tests and the consumer-group property test.

use super::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

fn lim() -> EncodingLimits {
    EncodingLimits::default()
}

fn id(ms: u64, seq: u64) -> StreamId {
    StreamId::new(ms, seq)
}

fn add(s: &mut StreamValue, i: StreamId) {
    s.add(IdRequest::Exact(i), &[(b"f", b"v")], 0, &lim())
        .unwrap();
}

fn ids(s: &StreamValue, rev: bool) -> Vec<StreamId> {
    s.range(StreamId::MIN, StreamId::MAX, rev)
        .map(|e| e.id)
        .collect()
}

#[test]
fn parse_ids_like_redis() {
    let p = |s: &str| parse_id(s.as_bytes(), 0, false, false).map(|p| p.id);
    assert_eq!(p("5"), Some(id(5, 0)));
    assert_eq!(p("5-3"), Some(id(5, 3)));
    assert_eq!(p("-"), Some(StreamId::MIN));
    assert_eq!(p("+"), Some(StreamId::MAX));
    assert_eq!(p("007-1"), Some(id(7, 1)));
    assert_eq!(p("+7-1"), Some(id(7, 1)));
    assert_eq!(p(" 7"), Some(id(7, 0)));
    assert_eq!(p("5-"), None);
    assert_eq!(p("-5"), None);
    assert_eq!(p("a"), None);
    assert_eq!(p("18446744073709551616"), None);
    assert_eq!(
        p("18446744073709551615-18446744073709551615"),
        Some(StreamId::MAX)
    );
    assert_eq!(parse_id(b"-", 0, true, false), None);
    let star = parse_id(b"5-*", 0, true, true).unwrap();
    assert_eq!((star.id, star.seq_given), (id(5, 0), false));
    assert_eq!(parse_id(b"5-*", 0, true, false), None);
    assert_eq!(
        parse_id(b"9", u64::MAX, false, false).map(|p| p.id),
        Some(id(9, u64::MAX))
    );
}

#[test]
fn ids_grow_and_ranges_work_both_ways() {
    let mut s = StreamValue::new();
    for i in 1..=250 {
        add(&mut s, id(i, 0));
    }
    assert_eq!(s.len(), 250);
    // 100 entries per node by default.
    assert_eq!(s.node_count(), 3);
    assert_eq!(ids(&s, false).len(), 250);
    let r: Vec<_> = s
        .range(id(99, 0), id(102, 0), false)
        .map(|e| e.id)
        .collect();
    assert_eq!(r, vec![id(99, 0), id(100, 0), id(101, 0), id(102, 0)]);
    let r: Vec<_> = s.range(id(99, 0), id(102, 0), true).map(|e| e.id).collect();
    assert_eq!(r, vec![id(102, 0), id(101, 0), id(100, 0), id(99, 0)]);
    assert_eq!(
        s.add(IdRequest::Exact(id(250, 0)), &[(b"a", b"b")], 0, &lim()),
        Err(AddError::IdTooSmall)
    );
    assert_eq!(
        s.add(IdRequest::AutoSeq(250), &[(b"a", b"b")], 0, &lim()),
        Ok(id(250, 1))
    );
    assert_eq!(
        s.add(IdRequest::Auto, &[(b"a", b"b")], 10, &lim()),
        Ok(id(250, 2))
    );
    assert_eq!(
        s.add(IdRequest::Auto, &[(b"a", b"b")], 1000, &lim()),
        Ok(id(1000, 0))
    );
}

#[test]
fn delete_and_trim() {
    let mut s = StreamValue::new();
    for i in 1..=250 {
        add(&mut s, id(i, 0));
    }
    assert!(s.delete(id(5, 0)));
    assert!(!s.delete(id(5, 0)));
    s.after_delete(false);
    assert_eq!(s.max_deleted_id(), id(5, 0));
    assert_eq!(s.len(), 249);
    // Approximate: only whole nodes (the first holds 99 live entries).
    let n = s.trim(&Trim {
        strategy: TrimStrategy::MaxLen(200),
        approx: true,
        limit: 0,
    });
    assert_eq!(n, 0);
    let n = s.trim(&Trim {
        strategy: TrimStrategy::MaxLen(150),
        approx: true,
        limit: 0,
    });
    assert_eq!(n, 99);
    assert_eq!(s.first_id(), id(101, 0));
    let n = s.trim(&Trim {
        strategy: TrimStrategy::MinId(id(120, 0)),
        approx: false,
        limit: 0,
    });
    assert_eq!(n, 19);
    assert_eq!(s.first_entry().map(|e| e.id), Some(id(120, 0)));
    let n = s.trim(&Trim {
        strategy: TrimStrategy::MaxLen(0),
        approx: false,
        limit: 0,
    });
    assert_eq!(n, 131);
    assert!(s.is_empty());
    assert_eq!(s.first_id(), StreamId::MIN);
    assert_eq!(s.rax_nodes(), 1);
}

#[test]
fn nodes_split_on_bytes() {
    // Checked against redis-server 7.0.15: ten entries with 1010-byte values fill three
    // nodes (four per node), with 1011-byte values four nodes (three per node).
    for (len, nodes) in [(1010, 3), (1011, 4)] {
        let mut s = StreamValue::new();
        let big = vec![b'x'; len];
        for i in 1..=10 {
            s.add(IdRequest::Exact(id(i, 0)), &[(b"f", &big)], 0, &lim())
                .unwrap();
        }
        assert_eq!(s.node_count(), nodes, "value length {len}");
        assert_eq!(s.rax_nodes(), 2 + 2 * nodes);
    }
}

#[test]
fn groups_deliver_ack_and_lag() {
    let mut s = StreamValue::new();
    for i in 1..=5 {
        add(&mut s, id(i, 0));
    }
    assert!(s.create_group(b"g", StreamId::MIN, -1));
    assert!(!s.create_group(b"g", StreamId::MIN, -1));
    assert_eq!(s.lag(s.group(b"g").unwrap()), Some(5));
    let mut got = Vec::new();
    s.read_group_new(b"g", b"alice", 2, false, 100, |e| got.push(e.id));
    assert_eq!(got, vec![id(1, 0), id(2, 0)]);
    let g = s.group(b"g").unwrap();
    assert_eq!(g.entries_read, 2);
    assert_eq!(g.pel().len(), 2);
    assert_eq!(s.lag(g), Some(3));
    // History re-read bumps the delivery count.
    let mut hist = Vec::new();
    s.read_group_history(b"g", b"alice", StreamId::MIN, 0, 200, |i, e| {
        hist.push((i, e.is_some()))
    });
    assert_eq!(hist, vec![(id(1, 0), true), (id(2, 0), true)]);
    assert_eq!(s.group(b"g").unwrap().pel()[&id(1, 0)].delivery_count, 2);
    assert!(s.group_mut(b"g").unwrap().ack(id(1, 0)));
    assert!(!s.group_mut(b"g").unwrap().ack(id(1, 0)));
    // A deleted pending entry comes back as None in history reads.
    assert!(s.delete(id(2, 0)));
    let mut hist = Vec::new();
    s.read_group_history(b"g", b"alice", StreamId::MIN, 0, 300, |i, e| {
        hist.push((i, e.is_some()))
    });
    assert_eq!(hist, vec![(id(2, 0), false)]);
    s.check_groups().unwrap();
}

#[test]
fn claim_and_autoclaim() {
    let mut s = StreamValue::new();
    for i in 1..=4 {
        add(&mut s, id(i, 0));
    }
    s.create_group(b"g", StreamId::MIN, -1);
    s.read_group_new(b"g", b"a", 0, false, 1000, |_| {});
    let opts = ClaimOptions {
        min_idle: 500,
        ..ClaimOptions::default()
    };
    let mut got = Vec::new();
    s.claim(b"g", b"b", &[id(1, 0)], &opts, 1200, |i, _| got.push(i));
    assert!(got.is_empty(), "not idle long enough");
    s.claim(b"g", b"b", &[id(1, 0)], &opts, 1600, |i, _| got.push(i));
    assert_eq!(got, vec![id(1, 0)]);
    let g = s.group(b"g").unwrap();
    assert_eq!(&*g.pel()[&id(1, 0)].consumer, b"b");
    assert_eq!(g.pel()[&id(1, 0)].delivery_count, 2);
    assert!(s.delete(id(3, 0)));
    let mut got = Vec::new();
    let (next, deleted) = s
        .autoclaim(b"g", b"c", 0, StreamId::MIN, 2, false, 2000, |i, _| {
            got.push(i)
        })
        .unwrap();
    assert_eq!(got, vec![id(1, 0), id(2, 0)]);
    assert_eq!(next, id(3, 0));
    assert!(deleted.is_empty());
    let (next, deleted) = s
        .autoclaim(b"g", b"c", 0, next, 2, false, 2000, |_, _| {})
        .unwrap();
    assert_eq!(deleted, vec![id(3, 0)]);
    assert_eq!(next, StreamId::MIN);
    s.check_groups().unwrap();
}

#[test]
fn watchers_fire_on_drop() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let w: Arc<Watcher> = Arc::new(move || {
        h.fetch_add(1, Ordering::SeqCst);
    });
    let mut s = StreamValue::new();
    s.watch(&w);
    let copy = s.clone();
    drop(copy);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "clones do not carry watchers"
    );
    drop(s);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------------------------------
// Property test: consumer groups never lose a message.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Add,
    Read {
        consumer: u8,
        count: u8,
        noack: bool,
    },
    History {
        consumer: u8,
    },
    Ack {
        pick: u16,
    },
    Claim {
        consumer: u8,
        pick: u16,
        force: bool,
    },
    AutoClaim {
        consumer: u8,
        count: u8,
    },
    DelConsumer {
        consumer: u8,
    },
    Del {
        pick: u16,
    },
    Tick {
        ms: u16,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Add),
        3 => (0u8..3, 0u8..4, any::<bool>())
            .prop_map(|(consumer, count, noack)| Op::Read { consumer, count, noack: noack && count == 1 }),
        1 => (0u8..3).prop_map(|consumer| Op::History { consumer }),
        2 => any::<u16>().prop_map(|pick| Op::Ack { pick }),
        2 => (0u8..3, any::<u16>(), any::<bool>()).prop_map(|(consumer, pick, force)| Op::Claim { consumer, pick, force }),
        1 => (0u8..3, 1u8..5).prop_map(|(consumer, count)| Op::AutoClaim { consumer, count }),
        1 => (0u8..3).prop_map(|consumer| Op::DelConsumer { consumer }),
        1 => any::<u16>().prop_map(|pick| Op::Del { pick }),
        1 => (0u16..100).prop_map(|ms| Op::Tick { ms }),
    ]
}

fn name(c: u8) -> Vec<u8> {
    vec![b'c', b'0' + c]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Every delivered entry is acknowledged (or deliberately dropped: NOACK reads,
    /// consumer deletion, XDEL) or pending in exactly one consumer's PEL, and delivery
    /// counts never go down.
    #[test]
    fn consumer_groups_never_lose_messages(ops in proptest::collection::vec(op(), 1..120)) {
        let mut s = StreamValue::new();
        s.create_group(b"g", StreamId::MIN, 0);
        let mut now = 1_000u64;
        let mut next_ms = 1u64;
        // Model: id -> state.
        let mut undelivered: BTreeSet<StreamId> = BTreeSet::new();
        let mut settled: BTreeSet<StreamId> = BTreeSet::new();
        let mut counts: BTreeMap<StreamId, u64> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Add => {
                    let i = s.add(IdRequest::Exact(id(next_ms, 0)), &[(b"f", b"v")], now, &lim()).unwrap();
                    next_ms += 1;
                    undelivered.insert(i);
                }
                Op::Read { consumer, count, noack } => {
                    let before: BTreeSet<StreamId> = s.group(b"g").unwrap().pel().keys().copied().collect();
                    let mut got = Vec::new();
                    s.read_group_new(b"g", &name(consumer), count as usize, noack, now, |e| got.push(e.id));
                    let g = s.group(b"g").unwrap();
                    for i in got {
                        // Entries past the group's last ID are new, unless FORCE made
                        // them pending already.
                        let was_new = undelivered.remove(&i);
                        let was_settled = settled.remove(&i);
                        prop_assert!(was_new || was_settled || before.contains(&i), "{} delivered twice", i);
                        if !g.pel().contains_key(&i) {
                            settled.insert(i);
                        }
                        if before.contains(&i) {
                            // As in Redis, a new delivery of an entry that FORCE made
                            // pending starts its count again.
                            counts.remove(&i);
                        }
                    }
                }
                Op::History { consumer } => {
                    s.read_group_history(b"g", &name(consumer), StreamId::MIN, 0, now, |_, _| {});
                }
                Op::Ack { pick } => {
                    let pel: Vec<StreamId> = s.group(b"g").unwrap().pel().keys().copied().collect();
                    if !pel.is_empty() {
                        let i = pel[pick as usize % pel.len()];
                        prop_assert!(s.group_mut(b"g").unwrap().ack(i));
                        settled.insert(i);
                    }
                }
                Op::Claim { consumer, pick, force } => {
                    let all: Vec<StreamId> = s.range(StreamId::MIN, StreamId::MAX, false).map(|e| e.id).collect();
                    if !all.is_empty() {
                        let i = all[pick as usize % all.len()];
                        let pending = s.group(b"g").unwrap().pel().contains_key(&i);
                        let opts = ClaimOptions { force, min_idle: 10, ..ClaimOptions::default() };
                        s.claim(b"g", &name(consumer), &[i], &opts, now, |_, _| {});
                        if force && !pending && s.group(b"g").unwrap().pel().contains_key(&i) {
                            // FORCE made an entry pending: it leaves the other states.
                            undelivered.remove(&i);
                            settled.remove(&i);
                        }
                    }
                }
                Op::AutoClaim { consumer, count } => {
                    let (_, deleted) = s.autoclaim(b"g", &name(consumer), 5, StreamId::MIN, count as u64, false, now, |_, _| {}).unwrap();
                    for i in deleted {
                        settled.insert(i);
                    }
                }
                Op::DelConsumer { consumer } => {
                    let before: BTreeSet<StreamId> = s.group(b"g").unwrap().consumer(&name(consumer))
                        .map(|c| c.pel.clone()).unwrap_or_default();
                    s.group_mut(b"g").unwrap().delete_consumer(&name(consumer));
                    settled.extend(before);
                }
                Op::Del { pick } => {
                    let all: Vec<StreamId> = s.range(StreamId::MIN, StreamId::MAX, false).map(|e| e.id).collect();
                    if !all.is_empty() {
                        let i = all[pick as usize % all.len()];
                        prop_assert!(s.delete(i));
                        if undelivered.remove(&i) {
                            settled.insert(i);
                        }
                    }
                }
                Op::Tick { ms } => now += u64::from(ms),
            }
            s.check_groups().map_err(TestCaseError::fail)?;
            let g = s.group(b"g").unwrap();
            // Every added entry is in exactly one state.
            for i in 1..next_ms {
                let i = id(i, 0);
                let pending = g.pel().contains_key(&i);
                let states = usize::from(undelivered.contains(&i)) + usize::from(pending) + usize::from(settled.contains(&i));
                prop_assert!(states == 1, "{} in {} states", i, states);
            }
            let mut now_counts = BTreeMap::new();
            for (i, n) in g.pel() {
                let before = counts.get(i).copied().unwrap_or(0);
                prop_assert!(n.delivery_count >= before, "{} count went down", i);
                now_counts.insert(*i, n.delivery_count);
            }
            counts = now_counts;
        }
    }
}
