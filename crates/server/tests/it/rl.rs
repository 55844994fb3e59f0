//! The `RL.*` family over the wire: reply shapes under RESP2 and RESP3, the value type
//! seen by TYPE/OBJECT/MEMORY USAGE, errors that change nothing, and RL.MCHECK's
//! atomicity under 50 concurrent clients. Exactness per algorithm is tested with an
//! injected clock in `basalt_engine::rl`; windows here are an hour long so the real
//! clock cannot change a reply.

use basalt_proto::Frame;
use basalt_testkit::RawClient;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

pub fn cmd(c: &mut RawClient, args: &[&str]) -> Frame {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    c.cmd_frame(&args).expect("reply")
}

/// The integer fields of a RESP2 reply of name/value pairs.
pub fn pairs(f: Frame) -> Vec<(String, i64)> {
    let Frame::Array(items) = f else {
        panic!("not an array: {f:?}")
    };
    items
        .chunks(2)
        .filter_map(|kv| match (&kv[0], &kv[1]) {
            (Frame::Bulk(k), Frame::Integer(v)) => {
                Some((String::from_utf8_lossy(k).into_owned(), *v))
            }
            (Frame::Bulk(_), _) => None,
            other => panic!("not a pair: {other:?}"),
        })
        .collect()
}

pub fn field(f: &[(String, i64)], name: &str) -> i64 {
    f.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("{name} in {f:?}"))
}

fn check(c: &mut RawClient, args: &[&str]) -> [i64; 5] {
    let f = pairs(cmd(c, args));
    [
        "allowed",
        "limit",
        "remaining",
        "retry_after_ms",
        "reset_after_ms",
    ]
    .map(|n| field(&f, n))
}

pub fn err(c: &mut RawClient, args: &[&str]) -> String {
    match cmd(c, args) {
        Frame::Error(e) => String::from_utf8_lossy(&e).into_owned(),
        other => panic!("{args:?}: not an error: {other:?}"),
    }
}

#[test]
fn rl_check_algorithms_and_value_type() {
    let server = crate::start(&[]);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    let hour = "3600000";
    // TOKEN refills at least one token per second of real time, so its wire test only
    // checks the shape; its arithmetic is tested with an injected clock.
    let r = check(&mut c, &["RL.CHECK", "t", "TOKEN", "5", "1"]);
    assert_eq!(r[..4], [1, 5, 4, 0]);
    assert_eq!(
        cmd(&mut c, &["OBJECT", "ENCODING", "t"]),
        Frame::Bulk("token".into())
    );
    for (key, spec) in [
        ("g", vec!["GCRA", "2", "2", hour]),
        ("f", vec!["FIXED", "2", hour]),
        ("s", vec!["SLIDING", "2", hour]),
        ("l", vec!["LOG", "2", hour]),
    ] {
        let mut a = vec!["RL.CHECK", key];
        a.extend(&spec);
        let r = check(&mut c, &a);
        assert_eq!(r[..4], [1, 2, 1, 0], "{spec:?}");
        assert_eq!(check(&mut c, &a)[..4], [1, 2, 0, 0], "{spec:?}");
        let r = check(&mut c, &a);
        assert_eq!(r[..3], [0, 2, 0], "{spec:?}");
        assert!(r[3] > 0, "{spec:?} {r:?}");
        // COST above the limit can never pass.
        let mut big = a.clone();
        big.extend(["COST", "3"]);
        assert_eq!(check(&mut c, &big)[3], -1, "{spec:?}");
        // REFUND gives one back; PEEK shows it without consuming.
        let mut refund = a.clone();
        refund.push("REFUND");
        assert_eq!(check(&mut c, &refund)[..3], [1, 2, 1]);
        let mut peek = a.clone();
        peek.push("PEEK");
        assert_eq!(check(&mut c, &peek)[..3], [1, 2, 0]);
        assert_eq!(check(&mut c, &peek)[..3], [1, 2, 0]);
        assert_eq!(
            cmd(&mut c, &["TYPE", key]),
            Frame::Simple("ratelimit".into())
        );
        let enc = spec[0].to_lowercase();
        assert_eq!(
            cmd(&mut c, &["OBJECT", "ENCODING", key]),
            Frame::Bulk(enc.into_bytes().into())
        );
        assert!(matches!(cmd(&mut c, &["MEMORY", "USAGE", key]), Frame::Integer(n) if n > 0));
        assert!(matches!(cmd(&mut c, &["PTTL", key]), Frame::Integer(n) if n > 0));
        let info = pairs(cmd(&mut c, &["RL.INFO", key]));
        // The refund gave one back and the peeks consumed nothing.
        assert_eq!(field(&info, "remaining"), 1, "{info:?}");
        assert_eq!(cmd(&mut c, &["RL.RESET", key]), Frame::Integer(1));
        assert_eq!(cmd(&mut c, &["RL.RESET", key]), Frame::Integer(0));
        assert_eq!(cmd(&mut c, &["EXISTS", key]), Frame::Integer(0));
    }
    // PEEK on a missing key creates nothing.
    check(&mut c, &["RL.CHECK", "none", "FIXED", "1", "1000", "PEEK"]);
    assert_eq!(cmd(&mut c, &["EXISTS", "none"]), Frame::Integer(0));
    assert_eq!(cmd(&mut c, &["RL.INFO", "none"]), Frame::NullArray);
}

#[test]
fn rl_check_resp3_map_and_headers() {
    let server = crate::start(&[]);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    cmd(&mut c, &["HELLO", "3"]);
    let f = cmd(
        &mut c,
        &["RL.CHECK", "k", "FIXED", "10", "60000", "HEADERS"],
    );
    let Frame::Map(m) = f else {
        panic!("not a map: {f:?}")
    };
    let names: Vec<String> = m
        .iter()
        .map(|(k, _)| match k {
            Frame::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        [
            "allowed",
            "limit",
            "remaining",
            "retry_after_ms",
            "reset_after_ms",
            "ratelimit-policy",
            "ratelimit"
        ]
    );
    assert_eq!(m[5].1, Frame::Bulk("\"default\";q=10;w=60".into()));
    match &m[6].1 {
        Frame::Bulk(b) => assert!(b.starts_with(b"\"default\";r=9;t="), "{b:?}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn rl_errors_change_nothing() {
    let server = crate::start(&[]);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    check(&mut c, &["RL.CHECK", "k", "FIXED", "5", "3600000"]);
    let cases: &[(&[&str], &str)] = &[
        (
            &["RL.CHECK", "k", "BUCKET", "1", "1"],
            "ERR unknown rate limit algorithm 'BUCKET' (GCRA, TOKEN, FIXED, SLIDING, LOG)",
        ),
        (
            &["RL.CHECK", "k", "GCRA", "1", "1"],
            "ERR GCRA takes 3 arguments",
        ),
        (
            &["RL.CHECK", "k", "FIXED", "0", "1000"],
            "ERR limit must be between 1 and 1000000",
        ),
        (
            &["RL.CHECK", "k", "FIXED", "-5", "1000"],
            "ERR limit must be between 1 and 1000000",
        ),
        (
            &["RL.CHECK", "k", "FIXED", "5", "0"],
            "ERR window must be between 1 and 1000000000000",
        ),
        (
            &["RL.CHECK", "k", "FIXED", "5", "1000", "COST", "-1"],
            "ERR COST must be an integer between 0 and 1000000",
        ),
        (
            &["RL.CHECK", "k", "FIXED", "5", "1000", "COST"],
            "ERR syntax error",
        ),
        (
            &["RL.CHECK", "k", "FIXED", "5", "1000", "BOGUS"],
            "ERR syntax error",
        ),
        (
            &["RL.CHECK", "k", "FIXED", "5", "1000", "PEEK", "REFUND"],
            "ERR PEEK and REFUND cannot be combined",
        ),
        (
            &["RL.CHECK", "k", "LOG", "5", "1000"],
            "ERR key holds a FIXED rate limiter; RL.RESET it to change the algorithm",
        ),
        (
            &["RL.MCHECK", "0", "k", "FIXED", "5", "1000"],
            "ERR the number of limits must be between 1 and 64",
        ),
        (
            &["RL.MCHECK", "2", "k", "FIXED", "5", "1000"],
            "ERR syntax error",
        ),
        (
            &["RL.MCHECK", "1", "k", "FIXED", "5", "1000", "extra"],
            "ERR syntax error",
        ),
    ];
    for (args, want) in cases {
        assert_eq!(err(&mut c, args), *want, "{args:?}");
    }
    let info = pairs(cmd(&mut c, &["RL.INFO", "k"]));
    assert_eq!(field(&info, "count"), 1);
    cmd(&mut c, &["SET", "str", "x"]);
    assert!(err(&mut c, &["RL.CHECK", "str", "FIXED", "5", "1000"]).starts_with("WRONGTYPE"));
    assert!(err(&mut c, &["RL.INFO", "str"]).starts_with("WRONGTYPE"));
    assert!(err(&mut c, &["RL.RESET", "str"]).starts_with("WRONGTYPE"));
}

#[test]
fn rl_mcheck_is_all_or_nothing() {
    let server = crate::start(&[]);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    let spec = |key: &'static str, limit: &'static str| [key, "FIXED", limit, "3600000"];
    let mut args = vec!["RL.MCHECK", "2"];
    args.extend(spec("user", "3"));
    args.extend(spec("ip", "1"));
    let r = pairs_top(cmd(&mut c, &args));
    assert_eq!(r, 1);
    // ip is exhausted: user must not be charged.
    assert_eq!(pairs_top(cmd(&mut c, &args)), 0);
    let info = pairs(cmd(&mut c, &["RL.INFO", "user"]));
    assert_eq!(field(&info, "count"), 1);
    // The same key twice is charged twice.
    let mut twice = vec!["RL.MCHECK", "2"];
    twice.extend(spec("dup", "1"));
    twice.extend(spec("dup", "1"));
    assert_eq!(pairs_top(cmd(&mut c, &twice)), 0);
    assert_eq!(cmd(&mut c, &["EXISTS", "dup"]), Frame::Integer(0));
    assert_eq!(
        cmd(
            &mut c,
            &[
                "COMMAND",
                "GETKEYS",
                "RL.MCHECK",
                "2",
                "a",
                "GCRA",
                "1",
                "1",
                "1",
                "COST",
                "1",
                "b",
                "LOG",
                "1",
                "1"
            ]
        ),
        Frame::Array(vec![Frame::Bulk("a".into()), Frame::Bulk("b".into())])
    );
}

/// The `allowed` field of an RL.MCHECK reply (RESP2).
fn pairs_top(f: Frame) -> i64 {
    let Frame::Array(items) = f else {
        panic!("{f:?}")
    };
    match (&items[0], &items[1]) {
        (Frame::Bulk(k), Frame::Integer(v)) if k.as_ref() == b"allowed" => *v,
        other => panic!("{other:?}"),
    }
}

#[test]
fn rl_mcheck_atomic_under_50_clients() {
    let server = crate::start(&[]);
    let port = server.port();
    // Per-client limit 5, a shared limit of 40 and a global one of 60: with 50 clients
    // making 4 attempts each, the shared limit binds.
    let allowed = Arc::new(AtomicI64::new(0));
    let threads: Vec<_> = (0..50)
        .map(|i| {
            let allowed = allowed.clone();
            std::thread::spawn(move || {
                let mut c = RawClient::connect_port(port).expect("connect");
                let user = format!("user:{}", i % 10);
                for _ in 0..4 {
                    let args = [
                        "RL.MCHECK",
                        "3",
                        &user,
                        "FIXED",
                        "5",
                        "3600000",
                        "shared",
                        "SLIDING",
                        "40",
                        "3600000",
                        "global",
                        "LOG",
                        "60",
                        "3600000",
                    ];
                    if pairs_top(cmd(&mut c, &args)) == 1 {
                        allowed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    let total = allowed.load(Ordering::Relaxed);
    let mut c = RawClient::connect_port(port).expect("connect");
    // A user whose every attempt came after the shared limit was reached was never
    // charged, and its limiter was never created (RL.INFO answers null): it counts 0.
    let users: i64 = (0..10)
        .map(|i| match cmd(&mut c, &["RL.INFO", &format!("user:{i}")]) {
            Frame::NullArray => 0,
            f => field(&pairs(f), "count"),
        })
        .sum();
    let global = field(&pairs(cmd(&mut c, &["RL.INFO", "global"])), "total");
    // Every admitted request was charged to every limit, and no limit was exceeded.
    assert_eq!(users, total);
    assert_eq!(global, total);
    assert!(total <= 40, "{total}");
    // 10 users × 5 = 50 ≥ 40, so the shared limit is reached exactly.
    assert_eq!(total, 40);
}

/// A scratch directory for one test's RDB file.
pub fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("basalt-it-rl-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

#[test]
fn limiters_survive_save_and_restart() {
    let dir = scratch("restart");
    let d = dir.to_string_lossy().into_owned();
    let hour = "3600000";
    let specs: [(&str, &[&str]); 4] = [
        ("g", &["GCRA", "3", "3", hour]),
        ("f", &["FIXED", "3", hour]),
        ("s", &["SLIDING", "3", hour]),
        ("l", &["LOG", "3", hour]),
    ];
    let infos = {
        let server = crate::start(&["--dir", &d, "--save", ""]);
        let mut c = RawClient::connect_port(server.port()).expect("connect");
        for (key, spec) in specs {
            let mut a = vec!["RL.CHECK", key];
            a.extend(spec);
            a.extend(["COST", "2"]);
            assert_eq!(check(&mut c, &a)[..3], [1, 3, 1]);
        }
        // DUMP/RESTORE carry the module value too.
        let Frame::Bulk(dump) = cmd(&mut c, &["DUMP", "l"]) else {
            panic!("DUMP")
        };
        let args: Vec<&[u8]> = vec![b"RESTORE", b"l2", b"0", &dump];
        assert_eq!(
            c.cmd_frame(&args).expect("restore"),
            Frame::Simple("OK".into())
        );
        assert_eq!(cmd(&mut c, &["SAVE"]), Frame::Simple("OK".into()));
        specs.map(|(key, _)| pairs(cmd(&mut c, &["RL.INFO", key])))
    };
    let server = crate::start(&["--dir", &d, "--save", ""]);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    for ((key, spec), before) in specs.iter().zip(infos) {
        assert_eq!(
            cmd(&mut c, &["TYPE", key]),
            Frame::Simple("ratelimit".into())
        );
        let after = pairs(cmd(&mut c, &["RL.INFO", key]));
        // The counters are the same (remaining/reset move with the clock for GCRA).
        for (name, v) in &before {
            if !matches!(name.as_str(), "reset_after_ms" | "remaining") {
                assert_eq!(field(&after, name), *v, "{key} {name}");
            }
        }
        let mut a = vec!["RL.CHECK", key];
        a.extend(*spec);
        a.extend(["COST", "2"]);
        assert_eq!(
            check(&mut c, &a)[0],
            0,
            "{key} must still be charged after restart"
        );
        assert!(matches!(cmd(&mut c, &["PTTL", key]), Frame::Integer(n) if n > 0));
    }
    assert_eq!(
        cmd(&mut c, &["TYPE", "l2"]),
        Frame::Simple("ratelimit".into())
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Everything the rate limiters' state is made of, for comparing across a restart.
fn rl_state(c: &mut RawClient) -> Vec<String> {
    let mut out = Vec::new();
    for key in ["cl", "gc"] {
        out.push(format!("{key}={:?}", cmd(c, &["GET", key])));
    }
    for key in ["g", "f", "s", "l"] {
        let info = pairs(cmd(c, &["RL.INFO", key]));
        let raw: Vec<_> = info
            .into_iter()
            .filter(|(n, _)| !matches!(n.as_str(), "reset_after_ms" | "remaining"))
            .collect();
        out.push(format!("{key}={raw:?}"));
    }
    out
}

#[test]
fn limiters_survive_aof_replay_and_rewrite() {
    let dir = scratch("aof");
    let d = dir.to_string_lossy().into_owned();
    let args = ["--dir", d.as_str(), "--save", "", "--appendonly", "yes"];
    let hour = "3600000";
    let before = {
        let server = crate::start(&args);
        let mut c = RawClient::connect_port(server.port()).expect("connect");
        for _ in 0..3 {
            // The third of each is refused and must log nothing.
            ints_of(cmd(&mut c, &["CL.THROTTLE", "cl", "1", "1", "3600"]));
            ints_of(cmd(&mut c, &["GCRA", "gc", "1", "1", "3600"]));
            for (key, spec) in [
                ("g", ["GCRA", "2", "2", hour].as_slice()),
                ("f", &["FIXED", "2", hour]),
                ("s", &["SLIDING", "2", hour]),
                ("l", &["LOG", "2", hour]),
            ] {
                let mut a = vec!["RL.CHECK", key];
                a.extend(spec);
                check(&mut c, &a);
            }
        }
        let mut m = vec![
            "RL.MCHECK",
            "2",
            "f",
            "FIXED",
            "2",
            hour,
            "x",
            "LOG",
            "5",
            hour,
        ];
        assert_eq!(pairs_top(cmd(&mut c, &m)), 0);
        m[2] = "y"; // a fresh FIXED key instead of the exhausted one
        assert_eq!(pairs_top(cmd(&mut c, &m)), 1);
        rl_state(&mut c)
    };
    // The AOF holds the effects (SET ... PXAT, RESTORE ... ABSTTL), never the
    // time-dependent commands themselves.
    let mut logged = Vec::new();
    for e in std::fs::read_dir(dir.join("appendonlydir")).expect("appendonlydir") {
        logged.extend(std::fs::read(e.expect("entry").path()).expect("read"));
    }
    let has = |needle: &[u8]| {
        logged
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
    };
    for cmd in [
        &b"CL.THROTTLE"[..],
        b"RL.CHECK",
        b"RL.MCHECK",
        b"$4\r\nGCRA",
    ] {
        assert!(
            !has(cmd),
            "{} logged verbatim",
            String::from_utf8_lossy(cmd)
        );
    }
    assert!(has(b"RESTORE") && has(b"PXAT") && has(b"ABSTTL"));
    {
        let server = crate::start(&args);
        let mut c = RawClient::connect_port(server.port()).expect("connect");
        assert_eq!(rl_state(&mut c), before, "after replaying the AOF");
        // The refused MCHECK charged nothing; the allowed one (y and x) both keys.
        assert_eq!(cmd(&mut c, &["EXISTS", "x", "y"]), Frame::Integer(2));
        assert_eq!(field(&pairs(cmd(&mut c, &["RL.INFO", "x"])), "total"), 1);
        assert!(matches!(cmd(&mut c, &["BGREWRITEAOF"]), Frame::Simple(_)));
        // Wait for the rewrite to finish.
        for _ in 0..200 {
            let Frame::Bulk(info) = cmd(&mut c, &["INFO", "persistence"]) else {
                panic!("INFO")
            };
            if String::from_utf8_lossy(&info).contains("aof_rewrite_in_progress:0") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    let server = crate::start(&args);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    assert_eq!(rl_state(&mut c), before, "after loading the rewritten AOF");
    let _ = std::fs::remove_dir_all(&dir);
}

fn ints_of(f: Frame) -> Vec<i64> {
    match f {
        Frame::Array(items) => items
            .into_iter()
            .map(|i| match i {
                Frame::Integer(v) => v,
                other => panic!("{other:?}"),
            })
            .collect(),
        other => panic!("{other:?}"),
    }
}
