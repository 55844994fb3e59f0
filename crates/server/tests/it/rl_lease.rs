//! `RL.LEASE` / `RL.UNLEASE` over the wire: the reply, the value type, errors, never more
//! than `max` holders under 50 concurrent clients, FIFO waiters woken by a release, by an
//! expiry and past a disconnected waiter, WAIT inside MULTI, and leases kept across a
//! restart (RDB and AOF). Waits are bounded and no assertion is about timing.

use crate::rl::{cmd, err, field, pairs, scratch};
use crate::waiting::{client, send, wait_blocked};
use basalt_proto::Frame;
use basalt_testkit::RawClient;
use std::sync::{Arc, Mutex};

/// The reply of RL.LEASE (RESP2 pairs) and its lease id, if one was granted.
fn lease(c: &mut RawClient, args: &[&str]) -> (Vec<(String, i64)>, Option<i64>) {
    let f = cmd(c, args);
    let id = lease_id(&f);
    (pairs(f), id)
}

fn lease_id(f: &Frame) -> Option<i64> {
    let Frame::Array(items) = f else {
        panic!("not an array: {f:?}")
    };
    match &items[3] {
        Frame::Integer(id) => Some(*id),
        Frame::Null => None,
        other => panic!("lease_id: {other:?}"),
    }
}

fn read_lease(c: &mut RawClient) -> Option<i64> {
    lease_id(&c.read_reply().expect("reply"))
}

#[test]
fn lease_reply_value_type_and_errors() {
    let server = crate::start(&[]);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    let hour = "3600000";
    let (r, a) = lease(&mut c, &["RL.LEASE", "k", "2", hour]);
    let a = a.expect("granted");
    assert_eq!(
        ["acquired", "max", "holders", "ttl_ms", "retry_after_ms"].map(|n| field(&r, n)),
        [1, 2, 1, 3_600_000, 0]
    );
    let (_, b) = lease(&mut c, &["RL.LEASE", "k", "2", "1800000"]);
    let b = b.expect("granted");
    assert!(b > a);
    let (r, none) = lease(&mut c, &["RL.LEASE", "k", "2", hour]);
    assert_eq!(none, None);
    assert_eq!(
        ["acquired", "max", "holders", "ttl_ms"].map(|n| field(&r, n)),
        [0, 2, 2, 0]
    );
    // Refused until b, the earliest, expires.
    let retry = field(&r, "retry_after_ms");
    assert!(retry > 1_700_000 && retry <= 1_800_000, "{retry}");
    assert_eq!(
        cmd(&mut c, &["TYPE", "k"]),
        Frame::Simple("ratelimit".into())
    );
    assert_eq!(
        cmd(&mut c, &["OBJECT", "ENCODING", "k"]),
        Frame::Bulk("lease".into())
    );
    assert!(matches!(cmd(&mut c, &["MEMORY", "USAGE", "k"]), Frame::Integer(n) if n > 0));
    // The key lives as long as its last lease.
    assert!(matches!(cmd(&mut c, &["PTTL", "k"]), Frame::Integer(n) if n > 1_800_000));
    let info = pairs(cmd(&mut c, &["RL.INFO", "k"]));
    assert_eq!(
        ["max", "remaining", "holders"].map(|n| field(&info, n)),
        [2, 0, 2]
    );
    let Frame::Array(info) = cmd(&mut c, &["RL.INFO", "k"]) else {
        panic!("RL.INFO")
    };
    let leases = info
        .chunks(2)
        .find(|kv| kv[0] == Frame::Bulk("leases".into()))
        .map(|kv| kv[1].clone());
    let Some(Frame::Array(leases)) = leases else {
        panic!("leases in {info:?}")
    };
    assert_eq!(leases.len(), 4);
    assert_eq!(leases[0], Frame::Integer(a));
    assert_eq!(leases[2], Frame::Integer(b));
    // A smaller max applies at once; a larger one too.
    let (r, _) = lease(&mut c, &["RL.LEASE", "k", "1", hour]);
    assert_eq!(field(&r, "acquired"), 0);
    assert_eq!(
        cmd(&mut c, &["RL.UNLEASE", "k", &a.to_string()]),
        Frame::Integer(1)
    );
    assert_eq!(
        cmd(&mut c, &["RL.UNLEASE", "k", &a.to_string()]),
        Frame::Integer(0)
    );
    assert_eq!(
        cmd(&mut c, &["RL.UNLEASE", "k", "12345"]),
        Frame::Integer(0)
    );
    assert_eq!(
        cmd(&mut c, &["RL.UNLEASE", "nokey", "1"]),
        Frame::Integer(0)
    );
    assert_eq!(
        cmd(&mut c, &["RL.UNLEASE", "k", &b.to_string()]),
        Frame::Integer(1)
    );
    // No holder left: the key is gone.
    assert_eq!(cmd(&mut c, &["EXISTS", "k"]), Frame::Integer(0));

    cmd(&mut c, &["RL.CHECK", "f", "FIXED", "5", hour]);
    cmd(&mut c, &["SET", "s", "x"]);
    let cases: &[(&[&str], &str)] = &[
        (
            &["RL.LEASE", "k", "0", "1000"],
            "ERR max must be an integer between 1 and 1000000",
        ),
        (
            &["RL.LEASE", "k", "1000001", "1000"],
            "ERR max must be an integer between 1 and 1000000",
        ),
        (
            &["RL.LEASE", "k", "1", "0"],
            "ERR ttl_ms must be an integer between 1 and 1000000000000",
        ),
        (
            &["RL.LEASE", "k", "1", "x"],
            "ERR ttl_ms must be an integer between 1 and 1000000000000",
        ),
        (
            &["RL.LEASE", "k", "1", "10", "WAIT", "-1"],
            "ERR WAIT must be an integer between 0 and 1000000000000",
        ),
        (&["RL.LEASE", "k", "1", "10", "WAIT"], "ERR syntax error"),
        (
            &["RL.LEASE", "k", "1", "10", "NOWAIT", "1"],
            "ERR syntax error",
        ),
        (
            &["RL.LEASE", "f", "1", "10"],
            "ERR key holds a FIXED rate limiter; RL.RESET it to change the algorithm",
        ),
        (
            &["RL.UNLEASE", "f", "1"],
            "ERR key holds a FIXED rate limiter, not leases",
        ),
        (
            &["RL.UNLEASE", "k", "x"],
            "ERR value is not an integer or out of range",
        ),
    ];
    for (args, want) in cases {
        assert_eq!(err(&mut c, args), *want, "{args:?}");
    }
    assert!(err(&mut c, &["RL.LEASE", "s", "1", "10"]).starts_with("WRONGTYPE"));
    assert!(err(&mut c, &["RL.UNLEASE", "s", "1"]).starts_with("WRONGTYPE"));
    assert_eq!(cmd(&mut c, &["EXISTS", "k"]), Frame::Integer(0));
    // An RL.CHECK on a lease key names the kind.
    lease(&mut c, &["RL.LEASE", "k", "1", hour]);
    assert_eq!(
        err(&mut c, &["RL.CHECK", "k", "FIXED", "1", "10"]),
        "ERR key holds a LEASE rate limiter; RL.RESET it to change the algorithm"
    );
}

#[test]
fn lease_resp3_map() {
    let server = crate::start(&[]);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    cmd(&mut c, &["HELLO", "3"]);
    let Frame::Map(m) = cmd(&mut c, &["RL.LEASE", "k", "1", "60000"]) else {
        panic!("not a map")
    };
    let names: Vec<Frame> = m.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(
        names,
        [
            "acquired",
            "lease_id",
            "max",
            "holders",
            "ttl_ms",
            "retry_after_ms"
        ]
        .map(|n| Frame::Bulk(n.into()))
    );
    let Frame::Map(m) = cmd(&mut c, &["RL.LEASE", "k", "1", "60000"]) else {
        panic!("not a map")
    };
    assert_eq!(m[0].1, Frame::Integer(0));
    assert_eq!(m[1].1, Frame::Null);
}

#[test]
fn never_more_than_max_holders_under_50_clients() {
    let server = crate::start(&[]);
    let port = server.port();
    const MAX: i64 = 3;
    // Two views of the history. On the server: a poller reads RL.INFO (the live leases
    // at server time, under the key's lock) throughout. On the clients: each releasing
    // client's hold is an interval from the grant's reply to sending the release, inside
    // the server's own [grant, release], so more than MAX overlapping client intervals
    // would prove the server overlapped too. One client in five abandons its lease (a
    // crashed holder): it expires after 20 ms, and only the expiry timer wakes waiters.
    let live = Arc::new(Mutex::new((0i64, 0i64))); // (live now, most ever)
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut c = RawClient::connect_port(port).expect("connect");
            let mut samples = 0;
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                let Frame::Array(info) = cmd(&mut c, &["RL.INFO", "pool"]) else {
                    continue;
                };
                for kv in info.chunks(2) {
                    match (&kv[0], &kv[1]) {
                        (Frame::Bulk(n), Frame::Integer(h)) if n.as_ref() == b"holders" => {
                            assert!(*h <= MAX, "{h} holders at server time")
                        }
                        (Frame::Bulk(n), Frame::Array(l)) if n.as_ref() == b"leases" => {
                            assert!(l.len() as i64 <= 2 * MAX, "{l:?}")
                        }
                        _ => {}
                    }
                }
                samples += 1;
            }
            samples
        })
    };
    let threads: Vec<_> = (0..50)
        .map(|i| {
            let live = live.clone();
            std::thread::spawn(move || {
                let mut c = RawClient::connect_port(port).expect("connect");
                c.set_timeout(std::time::Duration::from_secs(60))
                    .expect("timeout");
                let abandons = i % 5 == 0;
                let ttl = if abandons { "20" } else { "600000" };
                let mut granted = 0;
                for _ in 0..4 {
                    let (r, id) = lease(&mut c, &["RL.LEASE", "pool", "3", ttl, "WAIT", "0"]);
                    let id = id.unwrap_or_else(|| panic!("WAIT 0 returned without a lease: {r:?}"));
                    assert!(field(&r, "holders") <= MAX);
                    granted += 1;
                    if abandons {
                        continue;
                    }
                    {
                        let mut l = live.lock().expect("lock");
                        l.0 += 1;
                        l.1 = l.1.max(l.0);
                        assert!(l.0 <= MAX, "{} holders", l.0);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    live.lock().expect("lock").0 -= 1;
                    assert_eq!(
                        cmd(&mut c, &["RL.UNLEASE", "pool", &id.to_string()]),
                        Frame::Integer(1)
                    );
                }
                granted
            })
        })
        .collect();
    let total: i64 = threads.into_iter().map(|t| t.join().expect("client")).sum();
    done.store(true, std::sync::atomic::Ordering::Release);
    assert!(poller.join().expect("poller") > 0);
    assert_eq!(total, 200);
    assert!(live.lock().expect("lock").1 >= 1);
    // The abandoned leases expire; then the key is gone.
    let mut c = RawClient::connect_port(port).expect("connect");
    for _ in 0..1000 {
        if cmd(&mut c, &["EXISTS", "pool"]) == Frame::Integer(0) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    panic!("the abandoned leases never expired");
}

#[test]
fn waiters_are_served_in_order_and_past_a_disconnect() {
    let server = crate::start(&[]);
    let mut ctl = client(&server);
    let mut prev = lease(&mut ctl, &["RL.LEASE", "k", "1", "600000"])
        .1
        .expect("granted");
    let mut waiters: Vec<RawClient> = (0..4).map(|_| client(&server)).collect();
    for (i, w) in waiters.iter_mut().enumerate() {
        send(w, "RL.LEASE k 1 600000 WAIT 0");
        wait_blocked(&mut ctl, i + 1);
    }
    // The second waiter hangs up: it leaves the queue.
    drop(waiters.remove(1));
    wait_blocked(&mut ctl, 3);
    // A place freed inside a transaction is owed to the queue's head: a newcomer in
    // the same EXEC (no waiter can run in between) is refused.
    cmd(&mut ctl, &["MULTI"]);
    cmd(&mut ctl, &["RL.UNLEASE", "k", &prev.to_string()]);
    cmd(&mut ctl, &["RL.LEASE", "k", "1", "600000"]);
    let Frame::Array(replies) = cmd(&mut ctl, &["EXEC"]) else {
        panic!("EXEC")
    };
    assert_eq!(replies[0], Frame::Integer(1));
    assert_eq!(lease_id(&replies[1]), None);
    // Each release goes to the head of the queue, in arrival order; a read from the
    // wrong client would wait for a reply that never comes.
    for (n, w) in waiters.iter_mut().enumerate() {
        if n > 0 {
            assert_eq!(
                cmd(&mut ctl, &["RL.UNLEASE", "k", &prev.to_string()]),
                Frame::Integer(1)
            );
        }
        prev = read_lease(w).expect("the queue's head gets the lease");
        wait_blocked(&mut ctl, 2 - n);
    }
    let info = pairs(cmd(&mut ctl, &["RL.INFO", "k"]));
    assert_eq!(field(&info, "holders"), 1);
    // CLIENT UNBLOCK ... TIMEOUT answers as a WAIT running out: the usual reply.
    let mut w = client(&server);
    let Frame::Integer(id) = cmd(&mut w, &["CLIENT", "ID"]) else {
        panic!("CLIENT ID")
    };
    send(&mut w, "RL.LEASE k 1 600000 WAIT 0");
    wait_blocked(&mut ctl, 1);
    let unblock = ["CLIENT", "UNBLOCK", &id.to_string(), "TIMEOUT"];
    assert_eq!(cmd(&mut ctl, &unblock), Frame::Integer(1));
    assert_eq!(read_lease(&mut w), None);
    // Deleting the key frees every place and wakes the queue (DEL, then RL.RESET).
    for delete in ["DEL", "RL.RESET"] {
        send(&mut w, "RL.LEASE k 1 600000 WAIT 0");
        wait_blocked(&mut ctl, 1);
        assert_eq!(cmd(&mut ctl, &[delete, "k"]), Frame::Integer(1));
        read_lease(&mut w).expect("the waiter gets the freed place");
        wait_blocked(&mut ctl, 0);
    }
}

#[test]
fn an_expiring_lease_wakes_the_first_waiter() {
    let server = crate::start(&[]);
    let mut ctl = client(&server);
    lease(&mut ctl, &["RL.LEASE", "k", "1", "200"])
        .1
        .expect("granted");
    let mut a = client(&server);
    let mut b = client(&server);
    send(&mut a, "RL.LEASE k 1 600000 WAIT 0");
    wait_blocked(&mut ctl, 1);
    send(&mut b, "RL.LEASE k 1 600000 WAIT 0");
    wait_blocked(&mut ctl, 2);
    // Nobody releases: the expiry's timer wakes a, and b keeps waiting.
    let got = read_lease(&mut a).expect("a gets the expired lease's place");
    wait_blocked(&mut ctl, 1);
    let info = pairs(cmd(&mut ctl, &["RL.INFO", "k"]));
    assert_eq!(field(&info, "holders"), 1);
    assert_eq!(
        cmd(&mut ctl, &["RL.UNLEASE", "k", &got.to_string()]),
        Frame::Integer(1)
    );
    read_lease(&mut b).expect("then b");
    // WAIT with a limit answers the usual reply when it runs out.
    let (r, none) = lease(&mut ctl, &["RL.LEASE", "k", "1", "600000", "WAIT", "50"]);
    assert_eq!(
        (field(&r, "acquired"), field(&r, "holders"), none),
        (0, 1, None)
    );
    wait_blocked(&mut ctl, 0);
}

#[test]
fn wait_does_not_block_in_multi_or_scripts() {
    let server = crate::start(&[]);
    let mut c = client(&server);
    lease(&mut c, &["RL.LEASE", "k", "1", "600000"])
        .1
        .expect("granted");
    cmd(&mut c, &["MULTI"]);
    cmd(&mut c, &["RL.LEASE", "k", "1", "600000", "WAIT", "0"]);
    let Frame::Array(replies) = cmd(&mut c, &["EXEC"]) else {
        panic!("EXEC")
    };
    assert_eq!(lease_id(&replies[0]), None);
    let f = cmd(
        &mut c,
        &[
            "EVAL",
            "return redis.call('RL.LEASE', KEYS[1], 1, 600000, 'WAIT', 0)[2]",
            "1",
            "k",
        ],
    );
    assert_eq!(f, Frame::Integer(0));
}

fn holders_and_ttls(c: &mut RawClient) -> (i64, Vec<i64>) {
    let Frame::Array(info) = cmd(c, &["RL.INFO", "k"]) else {
        panic!("RL.INFO")
    };
    let mut holders = -1;
    let mut leases = Vec::new();
    for kv in info.chunks(2) {
        match (&kv[0], &kv[1]) {
            (Frame::Bulk(n), Frame::Integer(v)) if n.as_ref() == b"holders" => holders = *v,
            (Frame::Bulk(n), Frame::Array(l)) if n.as_ref() == b"leases" => {
                leases = l
                    .iter()
                    .map(|f| match f {
                        Frame::Integer(v) => *v,
                        other => panic!("{other:?}"),
                    })
                    .collect()
            }
            _ => {}
        }
    }
    (holders, leases)
}

/// Leases survive a restart with their deadlines: ids equal, ttl not grown.
fn leases_survive(args: &[&str], dir: &std::path::Path, save: bool) {
    let before = {
        let server = crate::start(args);
        let mut c = RawClient::connect_port(server.port()).expect("connect");
        for ttl in ["600000", "1200000"] {
            lease(&mut c, &["RL.LEASE", "k", "3", ttl])
                .1
                .expect("granted");
        }
        let (_, gone) = lease(&mut c, &["RL.LEASE", "k", "3", "600000"]);
        let gone = gone.expect("granted");
        assert_eq!(
            cmd(&mut c, &["RL.UNLEASE", "k", &gone.to_string()]),
            Frame::Integer(1)
        );
        if save {
            assert_eq!(cmd(&mut c, &["SAVE"]), Frame::Simple("OK".into()));
        }
        holders_and_ttls(&mut c)
    };
    let server = crate::start(args);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    let after = holders_and_ttls(&mut c);
    assert_eq!(after.0, 2);
    assert_eq!(before.0, 2);
    for (i, (b, a)) in before.1.iter().zip(&after.1).enumerate() {
        if i % 2 == 0 {
            assert_eq!(a, b, "lease ids");
        } else {
            assert!(a <= b && *a > b - 60_000, "ttl {b} then {a}");
        }
    }
    // Still counted: one place left of three.
    lease(&mut c, &["RL.LEASE", "k", "3", "1000"])
        .1
        .expect("third");
    assert_eq!(lease(&mut c, &["RL.LEASE", "k", "3", "1000"]).1, None);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn leases_survive_rdb_restart() {
    let dir = scratch("lease-rdb");
    let d = dir.to_string_lossy().into_owned();
    leases_survive(&["--dir", &d, "--save", ""], &dir, true);
}

#[test]
fn leases_survive_aof_restart() {
    let dir = scratch("lease-aof");
    let d = dir.to_string_lossy().into_owned();
    leases_survive(
        &["--dir", &d, "--save", "", "--appendonly", "yes"],
        &dir,
        false,
    );
}
