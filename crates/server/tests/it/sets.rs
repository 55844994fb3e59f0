//! Set behaviour the golden sequences cannot express: the listpack encoding (a Redis 7.2
//! directive, off by default, so redis-server 7.0.15 cannot record it), complete SSCAN
//! iterations over large hash-table sets while they change, sampling properties of SPOP
//! and SRANDMEMBER, and the bound on SRANDMEMBER's negative counts.

use basalt_proto::Frame;
use basalt_testkit::RawClient;
use std::collections::HashSet;

fn client(port: u16) -> RawClient {
    RawClient::connect_port(port).expect("connect")
}

fn cmd(c: &mut RawClient, args: &[&str]) -> Frame {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    c.cmd_frame(&args).expect("reply")
}

fn text(f: &Frame) -> String {
    match f {
        Frame::Bulk(b) | Frame::Simple(b) | Frame::Error(b) => {
            String::from_utf8_lossy(b).into_owned()
        }
        Frame::Integer(i) => i.to_string(),
        other => panic!("not a string reply: {other:?}"),
    }
}

fn strings(f: &Frame) -> Vec<String> {
    match f {
        Frame::Array(items) | Frame::Set(items) => items.iter().map(text).collect(),
        other => panic!("not an array: {other:?}"),
    }
}

/// Element `i` of an array reply.
fn item(f: &Frame, i: usize) -> &Frame {
    match f {
        Frame::Array(items) => &items[i],
        other => panic!("not an array: {other:?}"),
    }
}

fn encoding(c: &mut RawClient, key: &str) -> String {
    text(&cmd(c, &["OBJECT", "ENCODING", key]))
}

/// Adds `prefix<i>` for `i` in `range` to `key`, in batches.
fn fill(c: &mut RawClient, key: &str, prefix: &str, range: std::ops::Range<usize>) {
    let members: Vec<String> = range.map(|i| format!("{prefix}{i}")).collect();
    for chunk in members.chunks(1000) {
        let mut args = vec!["SADD", key];
        args.extend(chunk.iter().map(String::as_str));
        let added = cmd(c, &args);
        assert_eq!(added, Frame::Integer(chunk.len() as i64));
    }
}

#[test]
fn listpack_encoding_keeps_insertion_order_and_converts() {
    let server = crate::start(&[
        "--set-max-listpack-entries",
        "4",
        "--set-max-listpack-value",
        "8",
    ]);
    let mut c = client(server.port());
    assert_eq!(
        cmd(&mut c, &["SADD", "s", "b", "a", "c"]),
        Frame::Integer(3)
    );
    assert_eq!(encoding(&mut c, "s"), "listpack");
    assert_eq!(strings(&cmd(&mut c, &["SMEMBERS", "s"])), ["b", "a", "c"]);
    assert_eq!(
        strings(item(&cmd(&mut c, &["SSCAN", "s", "0"]), 1)),
        ["b", "a", "c"]
    );
    assert_eq!(cmd(&mut c, &["SREM", "s", "a"]), Frame::Integer(1));
    assert_eq!(cmd(&mut c, &["SADD", "s", "d", "e"]), Frame::Integer(2));
    assert_eq!(
        strings(&cmd(&mut c, &["SMEMBERS", "s"])),
        ["b", "c", "d", "e"]
    );
    assert_eq!(encoding(&mut c, "s"), "listpack");
    // A fifth member crosses set-max-listpack-entries.
    assert_eq!(cmd(&mut c, &["SADD", "s", "f"]), Frame::Integer(1));
    assert_eq!(encoding(&mut c, "s"), "hashtable");
    assert_eq!(cmd(&mut c, &["SCARD", "s"]), Frame::Integer(5));

    // An intset becomes a listpack (sorted integers first) when a short string arrives.
    cmd(&mut c, &["SADD", "n", "3", "1"]);
    assert_eq!(encoding(&mut c, "n"), "intset");
    cmd(&mut c, &["SADD", "n", "x"]);
    assert_eq!(encoding(&mut c, "n"), "listpack");
    assert_eq!(strings(&cmd(&mut c, &["SMEMBERS", "n"])), ["1", "3", "x"]);

    // A member longer than set-max-listpack-value needs a hash table.
    cmd(&mut c, &["SADD", "long", "abcdefghij"]);
    assert_eq!(encoding(&mut c, "long"), "hashtable");
    // More members in one SADD than the listpack may hold: a hash table from the start.
    cmd(&mut c, &["SADD", "many", "a", "b", "c", "d", "e"]);
    assert_eq!(encoding(&mut c, "many"), "hashtable");

    // Set algebra on listpacks.
    cmd(&mut c, &["SADD", "p", "x", "y", "z"]);
    cmd(&mut c, &["SADD", "q", "z", "x"]);
    assert_eq!(strings(&cmd(&mut c, &["SINTER", "q", "p"])), ["z", "x"]);
    assert_eq!(
        cmd(&mut c, &["SINTERSTORE", "pq", "p", "q"]),
        Frame::Integer(2)
    );
    assert_eq!(encoding(&mut c, "pq"), "listpack");
    assert_eq!(strings(&cmd(&mut c, &["SDIFF", "p", "q"])), ["y"]);
    assert_eq!(cmd(&mut c, &["SMOVE", "p", "q", "y"]), Frame::Integer(1));
    assert_eq!(strings(&cmd(&mut c, &["SMEMBERS", "q"])), ["z", "x", "y"]);
    let popped = strings(&cmd(&mut c, &["SPOP", "q", "3"]));
    let popped: HashSet<String> = popped.into_iter().collect();
    assert_eq!(popped, HashSet::from(["x".into(), "y".into(), "z".into()]));
    assert_eq!(cmd(&mut c, &["EXISTS", "q"]), Frame::Integer(0));

    // Turning the directive off at runtime restores Redis 7.0's choice for new sets.
    assert_eq!(
        cmd(&mut c, &["CONFIG", "SET", "set-max-listpack-entries", "0"]),
        Frame::Simple("OK".into())
    );
    cmd(&mut c, &["SADD", "t", "a"]);
    assert_eq!(encoding(&mut c, "t"), "hashtable");
}

#[test]
fn sscan_visits_every_member_of_a_changing_large_set() {
    let server = crate::start(&[]);
    let mut c = client(server.port());
    fill(&mut c, "s", "m", 0..5000);
    assert_eq!(encoding(&mut c, "s"), "hashtable");
    let mut seen = HashSet::new();
    let mut cursor = "0".to_string();
    let mut calls = 0;
    loop {
        let reply = cmd(&mut c, &["SSCAN", "s", &cursor, "COUNT", "50"]);
        cursor = text(item(&reply, 0));
        let batch = strings(item(&reply, 1));
        seen.extend(batch);
        calls += 1;
        // Grow the table a lot, then shrink it, while the scan is under way.
        if calls == 5 {
            fill(&mut c, "s", "tmp", 0..20_000);
        }
        if calls == 60 {
            let tmp: Vec<String> = (0..20_000).map(|i| format!("tmp{i}")).collect();
            for chunk in tmp.chunks(1000) {
                let mut args = vec!["SREM", "s"];
                args.extend(chunk.iter().map(String::as_str));
                cmd(&mut c, &args);
            }
        }
        if cursor == "0" {
            break;
        }
        assert!(calls < 100_000, "scan does not terminate");
    }
    for i in 0..5000 {
        assert!(seen.contains(&format!("m{i}")), "SSCAN missed m{i}");
    }
    assert_eq!(cmd(&mut c, &["SCARD", "s"]), Frame::Integer(5000));
}

#[test]
fn random_picks_cover_the_set() {
    let server = crate::start(&[]);
    let mut c = client(server.port());
    let all: HashSet<String> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    cmd(&mut c, &["SADD", "s", "a", "b", "c", "d", "e"]);
    let mut seen = HashSet::new();
    for _ in 0..300 {
        seen.insert(text(&cmd(&mut c, &["SRANDMEMBER", "s"])));
    }
    assert_eq!(seen, all, "single picks reach every member");
    for _ in 0..20 {
        let distinct = strings(&cmd(&mut c, &["SRANDMEMBER", "s", "3"]));
        assert_eq!(distinct.len(), 3);
        assert_eq!(distinct.iter().collect::<HashSet<_>>().len(), 3);
        let repeated = strings(&cmd(&mut c, &["SRANDMEMBER", "s", "-20"]));
        assert_eq!(repeated.len(), 20);
        assert!(repeated.iter().all(|m| all.contains(m)));
    }
    // Popping one at a time returns each member once and empties the key.
    let mut popped = HashSet::new();
    for _ in 0..5 {
        assert!(popped.insert(text(&cmd(&mut c, &["SPOP", "s"]))));
    }
    assert_eq!(popped, all);
    assert_eq!(cmd(&mut c, &["EXISTS", "s"]), Frame::Integer(0));

    // A large set: distinct picks of every size class, and SPOP with a count.
    fill(&mut c, "big", "m", 0..3000);
    for count in ["10", "1500", "2999"] {
        let picks = strings(&cmd(&mut c, &["SRANDMEMBER", "big", count]));
        let n: usize = count.parse().expect("count");
        assert_eq!(picks.len(), n);
        assert_eq!(picks.iter().collect::<HashSet<_>>().len(), n, "distinct");
    }
    let mut left: HashSet<String> = (0..3000).map(|i| format!("m{i}")).collect();
    for count in ["10", "2500", "1000"] {
        for m in strings(&cmd(&mut c, &["SPOP", "big", count])) {
            assert!(left.remove(&m), "{m} popped twice or never added");
        }
    }
    assert!(left.is_empty());
    assert_eq!(cmd(&mut c, &["EXISTS", "big"]), Frame::Integer(0));
}

#[test]
fn srandmember_refuses_unbounded_negative_counts() {
    let server = crate::start(&[]);
    let mut c = client(server.port());
    cmd(&mut c, &["SADD", "s", "a"]);
    let too_many = format!("-{}", basalt_server::families::sets::MAX_RANDOM_PICKS + 1);
    for count in ["-9223372036854775807", too_many.as_str()] {
        assert_eq!(
            cmd(&mut c, &["SRANDMEMBER", "s", count]),
            Frame::Error("ERR value is out of range".into())
        );
    }
    // A missing key answers as Redis does, whatever the count.
    assert_eq!(
        cmd(&mut c, &["SRANDMEMBER", "nokey", "-9223372036854775807"]),
        Frame::Array(Vec::new())
    );
    // A huge positive count is bounded by the set's size.
    assert_eq!(
        strings(&cmd(&mut c, &["SRANDMEMBER", "s", "9223372036854775807"])),
        ["a"]
    );
    assert_eq!(cmd(&mut c, &["PING"]), Frame::Simple("PONG".into()));
}

#[test]
fn large_set_algebra() {
    let server = crate::start(&[]);
    let mut c = client(server.port());
    fill(&mut c, "a", "m", 0..20_000);
    fill(&mut c, "b", "m", 10_000..30_000);
    assert_eq!(
        cmd(&mut c, &["SINTERCARD", "2", "a", "b"]),
        Frame::Integer(10_000)
    );
    assert_eq!(
        cmd(&mut c, &["SINTERCARD", "2", "a", "b", "LIMIT", "5"]),
        Frame::Integer(5)
    );
    assert_eq!(
        cmd(&mut c, &["SUNIONSTORE", "u", "a", "b"]),
        Frame::Integer(30_000)
    );
    assert_eq!(
        cmd(&mut c, &["SDIFFSTORE", "d", "a", "b"]),
        Frame::Integer(10_000)
    );
    assert_eq!(
        cmd(&mut c, &["SINTERSTORE", "i", "a", "b"]),
        Frame::Integer(10_000)
    );
    let inter: HashSet<String> = strings(&cmd(&mut c, &["SMEMBERS", "i"]))
        .into_iter()
        .collect();
    assert_eq!(inter.len(), 10_000);
    assert!(inter.contains("m10000") && inter.contains("m19999") && !inter.contains("m9999"));
    // The sources are intact after the multi-key commands.
    assert_eq!(cmd(&mut c, &["SCARD", "a"]), Frame::Integer(20_000));
    assert_eq!(cmd(&mut c, &["SCARD", "b"]), Frame::Integer(20_000));
    assert_eq!(cmd(&mut c, &["SISMEMBER", "a", "m0"]), Frame::Integer(1));
}
