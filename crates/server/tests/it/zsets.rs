//! Sorted sets against a real server where golden sequences cannot reach: blocking pops
//! (FIFO service among clients blocked on one key, timeouts, wake-ups by every kind of
//! write that can fill a sorted set, disconnects, CLIENT UNBLOCK, keys that change type
//! while a client waits) and a sorted set of a million members.

use crate::waiting::{client, reply, send, wait_blocked};
use basalt_testkit::RawClient;
use std::time::Duration;

fn cmd(c: &mut RawClient, line: &str) -> String {
    text(&c.cmd_line(line).expect("command"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The reply of a BZPOPMIN/BZPOPMAX that popped `member` with score `score` from `key`.
fn popped(key: &str, member: &str, score: &str) -> String {
    format!(
        "*3\r\n${}\r\n{key}\r\n${}\r\n{member}\r\n${}\r\n{score}\r\n",
        key.len(),
        member.len(),
        score.len()
    )
}

#[test]
fn a_waiter_on_several_keys_takes_from_the_key_that_woke_it() {
    crate::waiting::waiter_on_two_keys_takes_from_the_key_that_woke_it(
        &crate::start(&[]),
        ["BZPOPMIN z1 0", "BZPOPMIN z1 z2 0"],
        ["ZADD z1 1 x", "ZADD z2 2 y"],
        [&popped("z1", "x", "1"), &popped("z2", "y", "2")],
    );
}

#[test]
fn waiters_on_one_key_are_served_in_arrival_order() {
    let server = crate::start(&[]);
    let mut ctl = client(&server);
    let mut waiters: Vec<RawClient> = (0..4).map(|_| client(&server)).collect();
    for (i, w) in waiters.iter_mut().enumerate() {
        // Mixed commands on the same key still queue in one FIFO.
        send(
            w,
            if i % 2 == 0 {
                "BZPOPMIN z 0"
            } else {
                "BZPOPMAX z 0"
            },
        );
        wait_blocked(&mut ctl, i + 1);
    }
    // Three members for four waiters: the first three get one each, in arrival order.
    assert_eq!(cmd(&mut ctl, "ZADD z 1 a 2 b 3 c"), ":3\r\n");
    assert_eq!(reply(&mut waiters[0]), popped("z", "a", "1"));
    assert_eq!(reply(&mut waiters[1]), popped("z", "c", "3"));
    assert_eq!(reply(&mut waiters[2]), popped("z", "b", "2"));
    wait_blocked(&mut ctl, 1);
    assert!(!waiters[3].has_pending());
    assert_eq!(cmd(&mut ctl, "EXISTS z"), ":0\r\n");
    assert_eq!(cmd(&mut ctl, "ZADD z 5 d"), ":1\r\n");
    assert_eq!(reply(&mut waiters[3]), popped("z", "d", "5"));
    wait_blocked(&mut ctl, 0);
    for w in waiters.iter_mut() {
        assert_eq!(cmd(w, "PING"), "+PONG\r\n");
    }
}

#[test]
fn timeouts_reply_null_arrays() {
    let server = crate::start(&[]);
    let mut c = client(&server);
    assert_eq!(cmd(&mut c, "BZPOPMIN nokey 0.05"), "*-1\r\n");
    assert_eq!(cmd(&mut c, "BZPOPMAX a b 0.05"), "*-1\r\n");
    assert_eq!(cmd(&mut c, "BZMPOP 0.05 2 a b MIN COUNT 3"), "*-1\r\n");
    cmd(&mut c, "HELLO 3");
    assert_eq!(cmd(&mut c, "BZPOPMIN nokey 0.05"), "_\r\n");
    assert_eq!(cmd(&mut c, "BZMPOP 0.05 1 a MAX"), "_\r\n");
    let mut ctl = client(&server);
    wait_blocked(&mut ctl, 0);
}

#[test]
fn every_kind_of_write_wakes_a_waiter() {
    let server = crate::start(&[]);
    let mut ctl = client(&server);
    let mut w = client(&server);
    // (setup, the write that fills `k`, member and score the waiter's BZPOPMIN k 0 gets)
    let cases: &[(&[&str], &str, &str, &str)] = &[
        (&[], "ZADD k 1 a", "a", "1"),
        (&[], "ZADD k INCR 2.5 b", "b", "2.5"),
        (&[], "ZINCRBY k 3 c", "c", "3"),
        (&["ZADD s1 4 d"], "ZUNIONSTORE k 1 s1", "d", "4"),
        (
            &["ZADD s1 5 e", "ZADD s2 1 e"],
            "ZINTERSTORE k 2 s1 s2",
            "e",
            "6",
        ),
        (
            &["ZADD s1 7 f 8 g", "ZADD s2 1 g"],
            "ZDIFFSTORE k 2 s1 s2",
            "f",
            "7",
        ),
        (&["ZADD s1 9 h 10 i"], "ZRANGESTORE k s1 1 1", "i", "10"),
        (&["SADD s1 j"], "ZUNIONSTORE k 1 s1 WEIGHTS 11", "j", "11"),
        (&["ZADD tmp 12 l"], "RENAME tmp k", "l", "12"),
        (&["ZADD tmp 13 m"], "COPY tmp k", "m", "13"),
    ];
    for (setup, write, member, score) in cases {
        cmd(&mut ctl, "DEL k s1 s2 tmp");
        for s in *setup {
            cmd(&mut ctl, s);
        }
        send(&mut w, "BZPOPMIN k 0");
        wait_blocked(&mut ctl, 1);
        cmd(&mut ctl, write);
        assert_eq!(
            reply(&mut w),
            popped("k", member, score),
            "woken by {write}"
        );
        wait_blocked(&mut ctl, 0);
    }
    // Writes that add nothing leave the waiter blocked until its timeout.
    for write in [
        "ZADD k XX 1 a",
        "ZADD k XX INCR 1 a",
        "ZUNIONSTORE k 1 nokey",
    ] {
        cmd(&mut ctl, "DEL k");
        send(&mut w, "BZPOPMIN k 0.2");
        wait_blocked(&mut ctl, 1);
        cmd(&mut ctl, write);
        assert_eq!(reply(&mut w), "*-1\r\n", "after {write}");
    }
    // MOVE into the waiter's database wakes it too.
    cmd(&mut w, "SELECT 1");
    cmd(&mut ctl, "FLUSHALL");
    send(&mut w, "BZPOPMAX k 0");
    wait_blocked(&mut ctl, 1);
    cmd(&mut ctl, "ZADD k 1 x 2 y");
    cmd(&mut ctl, "MOVE k 1");
    assert_eq!(reply(&mut w), popped("k", "y", "2"));
    wait_blocked(&mut ctl, 0);
}

#[test]
fn bzmpop_serves_counts_from_the_first_filled_key() {
    let server = crate::start(&[]);
    let mut ctl = client(&server);
    let mut w = client(&server);
    send(&mut w, "BZMPOP 0 2 a b MAX COUNT 2");
    wait_blocked(&mut ctl, 1);
    cmd(&mut ctl, "ZADD b 1 x 2 y 3 z");
    assert_eq!(
        reply(&mut w),
        "*2\r\n$1\r\nb\r\n*2\r\n*2\r\n$1\r\nz\r\n$1\r\n3\r\n*2\r\n$1\r\ny\r\n$1\r\n2\r\n"
    );
    assert_eq!(cmd(&mut ctl, "ZRANGE b 0 -1"), "*1\r\n$1\r\nx\r\n");
    // RESP3 pairs carry doubles.
    cmd(&mut w, "HELLO 3");
    send(&mut w, "BZMPOP 0 1 c MIN");
    wait_blocked(&mut ctl, 1);
    cmd(&mut ctl, "ZADD c 1.5 q");
    assert_eq!(
        reply(&mut w),
        "*2\r\n$1\r\nc\r\n*1\r\n*2\r\n$1\r\nq\r\n,1.5\r\n"
    );
    wait_blocked(&mut ctl, 0);
}

#[test]
fn a_disconnected_waiter_gives_its_turn_away() {
    let server = crate::start(&[]);
    let mut ctl = client(&server);
    let mut first = client(&server);
    let mut second = client(&server);
    send(&mut first, "BZPOPMIN z 0");
    wait_blocked(&mut ctl, 1);
    send(&mut second, "BZPOPMIN z 0");
    wait_blocked(&mut ctl, 2);
    drop(first);
    wait_blocked(&mut ctl, 1);
    cmd(&mut ctl, "ZADD z 1 a");
    assert_eq!(reply(&mut second), popped("z", "a", "1"));
    wait_blocked(&mut ctl, 0);
    assert_eq!(cmd(&mut ctl, "EXISTS z"), ":0\r\n");
}

#[test]
fn client_unblock_releases_a_zset_waiter() {
    let server = crate::start(&[]);
    let mut ctl = client(&server);
    let mut w = client(&server);
    let id = cmd(&mut w, "CLIENT ID");
    let id = id.trim_start_matches(':').trim_end();
    send(&mut w, "BZPOPMIN z 0");
    wait_blocked(&mut ctl, 1);
    assert_eq!(
        cmd(&mut ctl, &format!("CLIENT UNBLOCK {id} TIMEOUT")),
        ":1\r\n"
    );
    assert_eq!(reply(&mut w), "*-1\r\n");
    send(&mut w, "BZMPOP 0 1 z MIN");
    wait_blocked(&mut ctl, 1);
    assert_eq!(
        cmd(&mut ctl, &format!("CLIENT UNBLOCK {id} ERROR")),
        ":1\r\n"
    );
    assert_eq!(
        reply(&mut w),
        "-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n"
    );
    wait_blocked(&mut ctl, 0);
}

#[test]
fn a_key_that_changes_type_is_skipped_while_waiting() {
    let server = crate::start(&[]);
    let mut ctl = client(&server);
    let mut w = client(&server);
    send(&mut w, "BZPOPMIN a b 0");
    wait_blocked(&mut ctl, 1);
    // `a` becomes a string: Redis leaves the client blocked rather than failing it.
    cmd(&mut ctl, "SET a v");
    cmd(&mut ctl, "ZADD b 1 m");
    assert_eq!(reply(&mut w), popped("b", "m", "1"));
    // A fresh call still fails on the string key, as Redis's first check does.
    assert_eq!(
        cmd(&mut w, "BZPOPMIN a b 0"),
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
    );
}

/// A sorted set of a million members answers rank, range, score, count, pop and update
/// commands correctly. The engine's unit tests count the work of each operation at this
/// size; here the whole batch also runs under the client's read timeout, a bound that an
/// O(n) path per command (about 10^10 steps for the batch) could not meet while the
/// O(log n) paths need a tiny fraction of it.
#[test]
fn a_million_member_sorted_set_stays_responsive() {
    const N: usize = 1_000_000;
    const PER_CMD: usize = 1_000;
    let server = crate::start(&[]);
    let mut c = server.client().expect("connect");
    c.set_timeout(Duration::from_secs(120)).expect("timeout");
    // Members m0..m999999 with score = index, added in pipelined batches.
    for batch in 0..N / PER_CMD {
        let mut args: Vec<Vec<u8>> = vec![b"ZADD".to_vec(), b"big".to_vec()];
        for i in batch * PER_CMD..(batch + 1) * PER_CMD {
            args.push(i.to_string().into_bytes());
            args.push(format!("m{i}").into_bytes());
        }
        let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
        c.send(&refs).expect("send");
    }
    for _ in 0..N / PER_CMD {
        assert_eq!(text(&c.read_reply_raw().expect("reply")), ":1000\r\n");
    }
    assert_eq!(cmd(&mut c, "ZCARD big"), ":1000000\r\n");
    assert_eq!(cmd(&mut c, "OBJECT ENCODING big"), "$8\r\nskiplist\r\n");
    assert_eq!(cmd(&mut c, "ZRANK big m999999"), ":999999\r\n");
    assert_eq!(cmd(&mut c, "ZREVRANK big m0"), ":999999\r\n");
    assert_eq!(
        cmd(&mut c, "ZRANGE big 500000 500001 WITHSCORES"),
        "*4\r\n$7\r\nm500000\r\n$6\r\n500000\r\n$7\r\nm500001\r\n$6\r\n500001\r\n"
    );
    assert_eq!(cmd(&mut c, "ZRANGE big -1 -1"), "*1\r\n$7\r\nm999999\r\n");
    assert_eq!(
        cmd(&mut c, "ZRANGEBYSCORE big (700000 +inf LIMIT 0 1"),
        "*1\r\n$7\r\nm700001\r\n"
    );
    assert_eq!(
        cmd(&mut c, "ZREVRANGEBYSCORE big 250000 -inf LIMIT 1 1"),
        "*1\r\n$7\r\nm249999\r\n"
    );
    assert_eq!(cmd(&mut c, "ZCOUNT big 100 (200"), ":100\r\n");
    assert_eq!(cmd(&mut c, "ZSCORE big m424242"), "$6\r\n424242\r\n");
    assert_eq!(cmd(&mut c, "ZPOPMIN big"), "*2\r\n$2\r\nm0\r\n$1\r\n0\r\n");
    assert_eq!(
        cmd(&mut c, "ZPOPMAX big"),
        "*2\r\n$7\r\nm999999\r\n$6\r\n999999\r\n"
    );
    assert_eq!(cmd(&mut c, "ZREMRANGEBYRANK big 0 9"), ":10\r\n");
    assert_eq!(cmd(&mut c, "ZRANK big m11"), ":0\r\n");
    // A pipelined batch of rank queries and updates in the middle of the set.
    const OPS: usize = 10_000;
    const CHUNK: usize = 500;
    for i in 0..OPS {
        if i % CHUNK == 0 {
            // Send a chunk, then read it back, so neither side's buffers fill up.
            for j in i..(i + CHUNK).min(OPS) {
                let m = format!("m{}", 100_000 + j * 50);
                c.send(&[b"ZINCRBY", b"big", b"0.5", m.as_bytes()])
                    .expect("send");
                c.send(&[b"ZRANK", b"big", m.as_bytes()]).expect("send");
            }
        }
        let score = (100_000 + i * 50) as f64 + 0.5;
        let want = format!("{score}");
        let got = text(&c.read_reply_raw().expect("reply"));
        assert_eq!(got, format!("${}\r\n{want}\r\n", want.len()));
        // m100000+i*50 keeps its rank: it moved by half a point past nobody. Ranks
        // start at m11 (10 removed below it, plus m0 popped).
        let rank = 100_000 + i * 50 - 11;
        assert_eq!(
            text(&c.read_reply_raw().expect("reply")),
            format!(":{rank}\r\n")
        );
    }
    assert_eq!(cmd(&mut c, "ZCARD big"), ":999988\r\n");
}

#[test]
fn zrandmember_bounds_negative_counts() {
    let server = crate::start(&[]);
    let mut c = client(&server);
    cmd(&mut c, "ZADD z 1 a");
    // Within the bound: exactly that many (repeated) picks.
    let got = c
        .cmd_frame(&[b"ZRANDMEMBER", b"z", b"-1000"])
        .expect("reply");
    match got {
        basalt_proto::Frame::Array(items) => assert_eq!(items.len(), 1000),
        other => panic!("unexpected reply {other:?}"),
    }
    // Beyond it, an error instead of an unbounded reply built in memory.
    assert_eq!(
        cmd(&mut c, "ZRANDMEMBER z -4611686018427387903 WITHSCORES"),
        "-ERR value is out of range\r\n"
    );
    assert_eq!(
        cmd(&mut c, "ZRANDMEMBER z -4194305"),
        "-ERR value is out of range\r\n"
    );
}

/// A list popper and a sorted-set popper wait on one key; a ZADD makes it a sorted set.
/// The list popper, first in the queue, cannot be served from it and stays blocked; the
/// wake-up must reach the sorted-set popper behind it (as Redis serves every client
/// whose type fits). Then the key becomes a list again and the list popper is served.
#[test]
fn a_wakeup_the_first_waiter_cannot_use_reaches_the_next() {
    let server = crate::start(&[]);
    let mut ctl = client(&server);
    let mut lister = client(&server);
    let mut zsetter = client(&server);
    let mut mover = client(&server);
    send(&mut lister, "BLPOP k 0");
    wait_blocked(&mut ctl, 1);
    send(&mut mover, "BLMOVE k dst LEFT RIGHT 0");
    wait_blocked(&mut ctl, 2);
    send(&mut zsetter, "BZPOPMIN k 0");
    wait_blocked(&mut ctl, 3);
    assert_eq!(cmd(&mut ctl, "ZADD k 1 m"), ":1\r\n");
    assert_eq!(reply(&mut zsetter), popped("k", "m", "1"));
    wait_blocked(&mut ctl, 2);
    assert!(!lister.has_pending());
    assert!(!mover.has_pending());
    assert_eq!(cmd(&mut ctl, "RPUSH k a b"), ":2\r\n");
    assert_eq!(reply(&mut lister), "*2\r\n$1\r\nk\r\n$1\r\na\r\n");
    assert_eq!(reply(&mut mover), "$1\r\nb\r\n");
    wait_blocked(&mut ctl, 0);
    assert_eq!(cmd(&mut ctl, "LRANGE dst 0 -1"), "*1\r\n$1\r\nb\r\n");
}
