//! Hash behaviour the golden sequences cannot express: encoding thresholds changed with
//! CONFIG SET, complete HSCAN iterations over large hashes, HRANDFIELD sampling
//! properties, and the bound on HRANDFIELD's negative counts.

use basalt_proto::Frame;
use basalt_testkit::RawClient;
use std::collections::{HashMap, HashSet};

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
        Frame::Array(items) => items.iter().map(text).collect(),
        other => panic!("not an array: {other:?}"),
    }
}

fn encoding(c: &mut RawClient, key: &str) -> String {
    text(&cmd(c, &["OBJECT", "ENCODING", key]))
}

/// Fills `key` with `n` fields `f<i>` = `v<i>`, pipelined in batches.
fn fill(c: &mut RawClient, key: &str, n: usize) {
    let batch = 500;
    let mut i = 0;
    while i < n {
        let end = (i + batch).min(n);
        let mut args = vec!["HSET".to_string(), key.to_string()];
        for j in i..end {
            args.push(format!("f{j}"));
            args.push(format!("v{j}"));
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(cmd(c, &refs), Frame::Integer((end - i) as i64));
        i = end;
    }
}

#[test]
fn encoding_thresholds_follow_config_set() {
    let server = crate::start(&[]);
    let mut c = client(server.port());
    for (k, v) in [
        ("hash-max-listpack-entries", "4"),
        ("hash-max-listpack-value", "8"),
    ] {
        assert_eq!(cmd(&mut c, &["CONFIG", "SET", k, v]), Frame::ok());
    }
    cmd(
        &mut c,
        &["HSET", "h", "a", "1", "b", "2", "c", "3", "d", "4"],
    );
    assert_eq!(encoding(&mut c, "h"), "listpack");
    cmd(&mut c, &["HSET", "h", "e", "5"]);
    assert_eq!(encoding(&mut c, "h"), "hashtable");

    cmd(&mut c, &["HSET", "v", "f", "12345678"]);
    assert_eq!(encoding(&mut c, "v"), "listpack");
    cmd(&mut c, &["HSET", "v", "f", "123456789"]);
    assert_eq!(encoding(&mut c, "v"), "hashtable");

    // Raising the limits later does not convert existing hashes back.
    cmd(
        &mut c,
        &["CONFIG", "SET", "hash-max-listpack-entries", "100"],
    );
    cmd(&mut c, &["HDEL", "h", "a", "b", "c", "d"]);
    assert_eq!(encoding(&mut c, "h"), "hashtable");

    cmd(&mut c, &["CONFIG", "SET", "hash-max-listpack-entries", "0"]);
    cmd(&mut c, &["HSET", "z", "f", "v"]);
    assert_eq!(encoding(&mut c, "z"), "hashtable");
}

#[test]
fn hscan_iterates_a_large_hash_completely() {
    let server = crate::start(&[]);
    let mut c = client(server.port());
    let n = 3000;
    fill(&mut c, "h", n);
    assert_eq!(encoding(&mut c, "h"), "hashtable");
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut cursor = "0".to_string();
    let mut calls = 0;
    loop {
        let reply = cmd(&mut c, &["HSCAN", "h", &cursor, "COUNT", "20"]);
        let Frame::Array(parts) = reply else {
            panic!("HSCAN reply is not an array");
        };
        cursor = text(&parts[0]);
        let items = strings(&parts[1]);
        assert!(
            items.len().is_multiple_of(2),
            "fields and values come in pairs"
        );
        assert!(items.len() < 400, "one step returned {} items", items.len());
        for pair in items.chunks(2) {
            seen.insert(pair[0].clone(), pair[1].clone());
        }
        calls += 1;
        // Mutate the hash while scanning: fields present throughout must still show.
        if calls == 5 {
            for i in 0..2000 {
                cmd(&mut c, &["HSET", "h", &format!("extra{i}"), "x"]);
            }
        }
        if calls == 40 {
            for i in 0..2000 {
                cmd(&mut c, &["HDEL", "h", &format!("extra{i}")]);
            }
        }
        if cursor == "0" {
            break;
        }
    }
    assert!(calls > 10, "the scan of a hashtable is incremental");
    for i in 0..n {
        assert_eq!(
            seen.get(&format!("f{i}")).map(String::as_str),
            Some(format!("v{i}").as_str()),
            "field f{i} missing or with a wrong value"
        );
    }

    // MATCH filters fields, and the values go with them.
    let reply = cmd(
        &mut c,
        &["HSCAN", "h", "0", "COUNT", "100000", "MATCH", "f12?"],
    );
    let Frame::Array(parts) = reply else {
        panic!("HSCAN reply is not an array");
    };
    assert_eq!(text(&parts[0]), "0");
    let items = strings(&parts[1]);
    let got: HashSet<&str> = items.chunks(2).map(|p| p[0].as_str()).collect();
    let want: HashSet<String> = (120..130).map(|i| format!("f{i}")).collect();
    assert_eq!(got, want.iter().map(String::as_str).collect());
}

#[test]
fn hrandfield_samples_from_both_encodings() {
    let server = crate::start(&[]);
    let mut c = client(server.port());
    fill(&mut c, "small", 100);
    fill(&mut c, "big", 1000);
    assert_eq!(encoding(&mut c, "small"), "listpack");
    assert_eq!(encoding(&mut c, "big"), "hashtable");

    for (key, size) in [("small", 100usize), ("big", 1000)] {
        // Distinct fields, as many as asked: few (drawn) or many (whole copy thinned).
        for count in [1usize, 10, size / 2, size - 1] {
            let got = strings(&cmd(&mut c, &["HRANDFIELD", key, &count.to_string()]));
            assert_eq!(got.len(), count, "{key} {count}");
            let distinct: HashSet<&String> = got.iter().collect();
            assert_eq!(distinct.len(), count, "{key} {count}: duplicates");
            assert!(got.iter().all(|f| f.starts_with('f')));
        }
        // Negative counts repeat fields and return exactly that many.
        let got = strings(&cmd(&mut c, &["HRANDFIELD", key, "-3000"]));
        assert_eq!(got.len(), 3000);
        let distinct: HashSet<&String> = got.iter().collect();
        assert!(distinct.len() < 3000 && distinct.len() > size / 2);
        // Values stay with their fields.
        let got = strings(&cmd(&mut c, &["HRANDFIELD", key, "-50", "WITHVALUES"]));
        assert_eq!(got.len(), 100);
        for pair in got.chunks(2) {
            assert_eq!(pair[1], format!("v{}", &pair[0][1..]));
        }
        // Single picks reach every field of the small hash.
        if size == 100 {
            let mut hit = HashSet::new();
            for _ in 0..3000 {
                hit.insert(text(&cmd(&mut c, &["HRANDFIELD", key])));
            }
            assert_eq!(hit.len(), 100, "single picks covered {} fields", hit.len());
        }
    }
}

#[test]
fn hrandfield_refuses_unbounded_negative_counts() {
    let server = crate::start(&[]);
    let mut c = client(server.port());
    cmd(&mut c, &["HSET", "h", "a", "1"]);
    let too_many = (basalt_server::families::hashes::MAX_RANDOM_PICKS + 1).to_string();
    for args in [
        vec!["HRANDFIELD", "h", "-4611686018427387903", "WITHVALUES"],
        vec!["HRANDFIELD", "h", "-9223372036854775807"],
    ] {
        assert_eq!(
            cmd(&mut c, &args),
            Frame::Error("ERR value is out of range".into())
        );
    }
    let neg = format!("-{too_many}");
    assert_eq!(
        cmd(&mut c, &["HRANDFIELD", "h", &neg]),
        Frame::Error("ERR value is out of range".into())
    );
    // A huge positive count is bounded by the hash's size and is fine.
    assert_eq!(
        strings(&cmd(&mut c, &["HRANDFIELD", "h", "9223372036854775807"])),
        vec!["a".to_string()]
    );
    assert_eq!(cmd(&mut c, &["PING"]), Frame::Simple("PONG".into()));
}
