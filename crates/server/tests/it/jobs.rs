//! Job queues (`docs/jobs.md`): JOB.*, QUEUE.*, DLQ.*, WORKER.* against a real server —
//! reply shapes in RESP2 and RESP3, exact errors, limits at their boundaries, blocking
//! fetches, claims and stale tokens, history checks under concurrency, the jid index
//! across key moves, and restarts from the RDB and the AOF.

use basalt_proto::Frame;
use basalt_testkit::RawClient;
use bytes::Bytes;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::coordination::{bulk, client, cmd, err};

fn int(c: &mut RawClient, args: &[&str]) -> i64 {
    match cmd(c, args) {
        Frame::Integer(i) => i,
        other => panic!("{args:?}: not an integer: {other:?}"),
    }
}

fn text(f: &Frame) -> String {
    match f {
        Frame::Bulk(b) | Frame::Simple(b) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("not a string: {other:?}"),
    }
}

/// A map reply (RESP3 map, or RESP2 flat array of pairs) as field -> value.
fn map(f: Frame) -> HashMap<String, Frame> {
    match f {
        Frame::Map(pairs) => pairs.into_iter().map(|(k, v)| (text(&k), v)).collect(),
        Frame::Array(items) => {
            assert!(items.len() % 2 == 0, "odd flat map");
            let mut m = HashMap::new();
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                m.insert(text(&k), v);
            }
            m
        }
        other => panic!("not a map: {other:?}"),
    }
}

fn push(c: &mut RawClient, args: &[&str]) -> String {
    let mut a = vec!["JOB.PUSH"];
    a.extend_from_slice(args);
    text(&cmd(c, &a))
}

/// One delivery of a fetch reply.
#[derive(Debug, Clone)]
struct Got {
    queue: String,
    jid: String,
    payload: String,
    token: String,
    fence: i64,
    attempt: i64,
}

fn deliveries(f: Frame) -> Vec<Got> {
    match f {
        Frame::NullArray | Frame::Null => Vec::new(),
        Frame::Array(items) => items
            .into_iter()
            .map(|i| {
                let m = map(i);
                let n = |k: &str| match &m[k] {
                    Frame::Integer(i) => *i,
                    o => panic!("{k}: {o:?}"),
                };
                Got {
                    queue: text(&m["queue"]),
                    jid: text(&m["jid"]),
                    payload: text(&m["payload"]),
                    token: text(&m["token"]),
                    fence: n("fence"),
                    attempt: n("attempt"),
                }
            })
            .collect(),
        other => panic!("not a fetch reply: {other:?}"),
    }
}

fn fetch(c: &mut RawClient, args: &[&str]) -> Vec<Got> {
    let mut a = vec!["JOB.FETCH"];
    a.extend_from_slice(args);
    deliveries(cmd(c, &a))
}

fn fetch1(c: &mut RawClient, q: &str) -> Got {
    let mut v = fetch(c, &[q]);
    assert_eq!(v.len(), 1, "one job from {q}");
    v.remove(0)
}

fn get(c: &mut RawClient, jid: &str) -> HashMap<String, Frame> {
    map(cmd(c, &["JOB.GET", jid]))
}

fn state(c: &mut RawClient, jid: &str) -> String {
    text(&get(c, jid)["state"])
}

fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !check() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "never happened: {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn push_fetch_ack_lifecycle_and_reply_shapes() {
    let s = crate::start(&[]);
    let mut c = client(s.port());
    let jid = push(
        &mut c,
        &["emails", "hello", "TAGS", "a", "b", "GROUP", "g1"],
    );
    assert_eq!(jid.len(), 24);
    assert!(jid.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(
        cmd(&mut c, &["TYPE", "emails"]),
        Frame::Simple("queue".into())
    );
    assert_eq!(
        cmd(&mut c, &["OBJECT", "ENCODING", "emails"]),
        bulk("queue")
    );
    assert!(int(&mut c, &["MEMORY", "USAGE", "emails"]) > 0);
    let g = get(&mut c, &jid);
    assert_eq!(text(&g["state"]), "waiting");
    assert_eq!(text(&g["payload"]), "hello");
    assert_eq!(g["tags"], Frame::Array(vec![bulk("a"), bulk("b")]));
    assert_eq!(g["group"], bulk("g1"));
    assert_eq!(g["started"], Frame::Integer(-1));
    assert_eq!(g["result"], Frame::Null);

    let d = fetch1(&mut c, "emails");
    assert_eq!(
        (d.queue.as_str(), d.jid.as_str(), d.payload.as_str()),
        ("emails", jid.as_str(), "hello")
    );
    assert_eq!((d.fence, d.attempt), (1, 1));
    assert_eq!(state(&mut c, &jid), "active");
    assert_eq!(cmd(&mut c, &["JOB.FETCH", "emails"]), Frame::NullArray);
    assert_eq!(
        cmd(&mut c, &["JOB.PROGRESS", &jid, &d.token, "50", "half way"]),
        Frame::ok()
    );
    assert_eq!(get(&mut c, &jid)["progress"], Frame::Integer(50));
    assert_eq!(
        cmd(&mut c, &["JOB.ACK", &jid, &d.token, "RESULT", "done"]),
        bulk("done")
    );
    let g = get(&mut c, &jid);
    assert_eq!(text(&g["state"]), "completed");
    assert_eq!(g["result"], bulk("done"));
    assert!(matches!(g["finished"], Frame::Integer(t) if t > 0));
    let st = map(cmd(&mut c, &["QUEUE.STATS", "emails"]));
    assert_eq!(st["completed"], Frame::Integer(1));
    assert_eq!(st["fence"], Frame::Integer(1));

    // RESP3: maps are maps; nothing to fetch is a null.
    assert!(matches!(cmd(&mut c, &["HELLO", "3"]), Frame::Map(_)));
    let j2 = push(&mut c, &["emails", "second"]);
    match cmd(&mut c, &["JOB.FETCH", "emails"]) {
        Frame::Array(v) => assert!(matches!(&v[0], Frame::Map(_))),
        other => panic!("{other:?}"),
    }
    assert!(matches!(cmd(&mut c, &["JOB.GET", &j2]), Frame::Map(_)));
    assert_eq!(cmd(&mut c, &["JOB.GET", "nope"]), Frame::Null);
    assert_eq!(cmd(&mut c, &["JOB.FETCH", "emails"]), Frame::Null);
    match cmd(&mut c, &["JOB.FAIL", &j2, "bad", "x"]) {
        Frame::Error(e) => assert_eq!(&e[..], b"STALE claim is not current"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn option_parsing_and_error_strings() {
    let s = crate::start(&[]);
    let mut c = client(s.port());
    let e = |c: &mut RawClient, a: &[&str]| err(c, a);
    assert_eq!(
        e(&mut c, &["JOB.PUSH", "q", "p", "DELAY", "5", "AT", "9"]),
        "ERR DELAY and AT are exclusive"
    );
    assert_eq!(
        e(&mut c, &["JOB.PUSH", "q", "p", "PRIORITY", "10"]),
        "ERR PRIORITY must be between 0 and 9"
    );
    assert_eq!(
        e(&mut c, &["JOB.PUSH", "q", "p", "PRIORITY", "-1"]),
        "ERR PRIORITY must be between 0 and 9"
    );
    assert_eq!(
        e(&mut c, &["JOB.PUSH", "q", "p", "BACKOFF", "EXP", "10", "5"]),
        "ERR invalid BACKOFF"
    );
    assert_eq!(
        e(
            &mut c,
            &[
                "JOB.PUSH", "q", "p", "BACKOFF", "EXP", "1", "5", "JITTER", "1.5"
            ]
        ),
        "ERR invalid BACKOFF"
    );
    assert_eq!(
        e(&mut c, &["JOB.PUSH", "q", "p", "BACKOFF", "LINEAR", "1"]),
        "ERR invalid BACKOFF"
    );
    assert_eq!(
        e(&mut c, &["JOB.PUSH", "q", "p", "RETRY", "1000001"]),
        "ERR RETRY must be between 0 and 1000000"
    );
    assert_eq!(
        e(&mut c, &["JOB.PUSH", "q", "p", "TIMEOUT", "0"]),
        "ERR TIMEOUT must be between 1 and 315360000000"
    );
    assert_eq!(
        e(&mut c, &["JOB.PUSH", "q", "p", "DELAY", "315360000001"]),
        "ERR DELAY must be between 0 and 315360000000"
    );
    assert_eq!(
        e(&mut c, &["JOB.PUSH", "q", "p", "BOGUS"]),
        "ERR syntax error"
    );
    assert_eq!(
        e(&mut c, &["JOB.PUSH", "q", "p", "TAGS"]),
        "ERR syntax error"
    );
    assert_eq!(
        e(&mut c, &["JOB.PUSH", "q", "p", "UNIQUE", "k", "FRO", "5"]),
        "ERR syntax error"
    );
    assert_eq!(
        e(&mut c, &["JOB.PUSH", "q", "p", "ID", ""]),
        "ERR invalid job id"
    );
    assert_eq!(
        e(&mut c, &["JOB.PUSH", "q", "p", "DEPENDS", "ghost"]),
        "ERR unknown parent job ghost"
    );
    assert_eq!(
        cmd(&mut c, &["EXISTS", "q"]),
        Frame::Integer(0),
        "no queue left behind by errors"
    );
    assert_eq!(e(&mut c, &["JOB.ACK", "ghost", "t"]), "ERR no such job");
    assert_eq!(e(&mut c, &["JOB.CANCEL", "ghost"]), "ERR no such job");
    assert_eq!(e(&mut c, &["JOB.WAIT", "ghost"]), "ERR no such job");
    assert_eq!(e(&mut c, &["QUEUE.STATS", "ghost"]), "ERR no such queue");
    assert_eq!(
        e(&mut c, &["JOB.EFFECT", "1", "JOB.CANCEL", "x"]),
        "ERR JOB.EFFECT is internal"
    );
    assert_eq!(e(&mut c, &["JOB.FETCH", "COUNT", "1"]), "ERR syntax error");
    assert_eq!(e(&mut c, &["JOB.FETCH", "q", "COUNT"]), "ERR syntax error");
    cmd(&mut c, &["SET", "str", "x"]);
    assert_eq!(
        e(&mut c, &["JOB.PUSH", "str", "p"]),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    assert_eq!(
        e(&mut c, &["JOB.FETCH", "str"]),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    // Option names are case-insensitive; the last repeated option wins.
    let j = push(
        &mut c,
        &["q", "p", "priority", "1", "PRIORITY", "7", "id", "fixed"],
    );
    assert_eq!(j, "fixed");
    assert_eq!(get(&mut c, "fixed")["priority"], Frame::Integer(7));
    // A push with an existing ID is a no-op answering the jid.
    assert_eq!(push(&mut c, &["other", "p2", "ID", "fixed"]), "fixed");
    assert_eq!(cmd(&mut c, &["EXISTS", "other"]), Frame::Integer(0));
    assert_eq!(text(&get(&mut c, "fixed")["payload"]), "p");
    let d = fetch1(&mut c, "q");
    assert_eq!(
        e(&mut c, &["JOB.PROGRESS", "fixed", &d.token, "101"]),
        "ERR progress must be between 0 and 100"
    );
    assert_eq!(
        e(&mut c, &["JOB.EXTEND", "fixed", &d.token, "0"]),
        "ERR JOB.EXTEND's ms must be between 1 and 315360000000"
    );
    assert_eq!(
        e(&mut c, &["JOB.ACK", "fixed", &d.token, "RESULT"]),
        "ERR syntax error"
    );
}

#[test]
fn limits_at_their_boundaries() {
    let s = crate::start(&[]);
    let mut c = client(s.port());
    for (k, v) in [
        ("job-max-payload-bytes", "10"),
        ("job-max-id-bytes", "4"),
        ("job-max-tags", "2"),
        ("job-max-depends", "1"),
        ("job-max-pushb", "2"),
        ("job-max-fetch-count", "3"),
        ("job-max-fetch-queues", "2"),
    ] {
        assert_eq!(cmd(&mut c, &["CONFIG", "SET", k, v]), Frame::ok(), "{k}");
    }
    assert_eq!(
        cmd(&mut c, &["CONFIG", "GET", "job-max-tags"]),
        Frame::Array(vec![bulk("job-max-tags"), bulk("2")])
    );
    let p10 = "x".repeat(10);
    push(&mut c, &["q", &p10]);
    assert_eq!(
        err(&mut c, &["JOB.PUSH", "q", &"x".repeat(11)]),
        "ERR job payload exceeds job-max-payload-bytes"
    );
    push(&mut c, &["q", "p", "ID", "abcd"]);
    assert_eq!(
        err(&mut c, &["JOB.PUSH", "q", "p", "ID", "abcde"]),
        "ERR invalid job id"
    );
    push(&mut c, &["q", "p", "TAGS", "a", "b"]);
    assert_eq!(
        err(&mut c, &["JOB.PUSH", "q", "p", "TAGS", "a", "b", "c"]),
        "ERR too many TAGS (job-max-tags is 2)"
    );
    push(&mut c, &["q", "p", "DEPENDS", "abcd"]);
    assert_eq!(
        err(&mut c, &["JOB.PUSH", "q", "p", "DEPENDS", "abcd", "abcd"]),
        "ERR too many DEPENDS (job-max-depends is 1)"
    );
    assert!(
        matches!(cmd(&mut c, &["JOB.PUSHB", "q", "1", "a", "1", "b"]), Frame::Array(v) if v.len() == 2)
    );
    assert_eq!(
        err(&mut c, &["JOB.PUSHB", "q", "1", "a", "1", "b", "1", "c"]),
        "ERR too many jobs in JOB.PUSHB (job-max-pushb is 2)"
    );
    assert_eq!(fetch(&mut c, &["q", "COUNT", "3"]).len(), 3);
    assert_eq!(
        err(&mut c, &["JOB.FETCH", "q", "COUNT", "4"]),
        "ERR COUNT must be between 1 and 3 (job-max-fetch-count)"
    );
    assert_eq!(
        err(&mut c, &["JOB.FETCH", "q", "COUNT", "0"]),
        "ERR COUNT must be between 1 and 3 (job-max-fetch-count)"
    );
    fetch(&mut c, &["q", "r"]);
    assert_eq!(
        err(&mut c, &["JOB.FETCH", "q", "r", "s"]),
        "ERR too many queues (job-max-fetch-queues is 2)"
    );
    // The payload limit also bounds RESULT, FAIL's error and PROGRESS's message.
    let d = fetch(&mut c, &["q", "COUNT", "1"]).remove(0);
    let big = "x".repeat(11);
    for a in [
        vec!["JOB.ACK", &d.jid, &d.token, "RESULT", &big],
        vec!["JOB.FAIL", &d.jid, &d.token, &big],
        vec!["JOB.PROGRESS", &d.jid, &d.token, "5", &big],
    ] {
        assert_eq!(
            err(&mut c, &a),
            "ERR job payload exceeds job-max-payload-bytes",
            "{a:?}"
        );
    }
    assert_eq!(
        cmd(&mut c, &["JOB.PROGRESS", &d.jid, &d.token, "5", &p10]),
        Frame::ok()
    );
    // job-max-errors: the last N failure messages are kept (taken by new queues).
    assert_eq!(
        cmd(&mut c, &["CONFIG", "SET", "job-max-errors", "2"]),
        Frame::ok()
    );
    let e = push(&mut c, &["errs", "p", "RETRY", "9"]);
    for i in 0..3 {
        let d = fetch1(&mut c, "errs");
        cmd(
            &mut c,
            &["JOB.FAIL", &e, &d.token, &format!("e{i}"), "RETRY_IN", "0"],
        );
    }
    assert_eq!(
        get(&mut c, &e)["errors"],
        Frame::Array(vec![bulk("e1"), bulk("e2")])
    );
    assert_eq!(get(&mut c, &e)["failures"], Frame::Integer(3));
    assert_eq!(
        err(&mut c, &["CONFIG", "SET", "job-max-payload-bytes", "0"]),
        "ERR CONFIG SET failed (possibly related to argument 'job-max-payload-bytes') - argument must be between 1 and 536870912 inclusive"
    );
}

#[test]
fn pushb_answers_per_job() {
    let s = crate::start(&[]);
    let mut c = client(s.port());
    let r = cmd(
        &mut c,
        &[
            "JOB.PUSHB",
            "q",
            "3",
            "a",
            "ID",
            "ja",
            "2",
            "b",
            "BOGUS",
            "1",
            "c",
            "4",
            "d",
            "DEPENDS",
            "ja",
            "TAGS",
        ],
    );
    let Frame::Array(v) = r else { panic!("{r:?}") };
    assert_eq!(v[0], bulk("ja"));
    assert_eq!(v[1], Frame::Error(Bytes::from_static(b"ERR syntax error")));
    assert!(matches!(&v[2], Frame::Bulk(_)));
    assert_eq!(v[3], Frame::Error(Bytes::from_static(b"ERR syntax error")));
    assert_eq!(
        map(cmd(&mut c, &["QUEUE.STATS", "q"]))["waiting"],
        Frame::Integer(2)
    );
    // A malformed count fails the whole command.
    assert_eq!(
        err(&mut c, &["JOB.PUSHB", "q", "2", "a"]),
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut c, &["JOB.PUSHB", "q", "0", "a"]),
        "ERR syntax error"
    );
}

#[test]
fn priorities_delays_and_fair_multi_queue_fetch() {
    let s = crate::start(&[]);
    let mut c = client(s.port());
    push(&mut c, &["q", "low", "PRIORITY", "1"]);
    push(&mut c, &["q", "mid"]);
    push(&mut c, &["q", "high", "PRIORITY", "9"]);
    push(&mut c, &["q", "later", "DELAY", "200", "PRIORITY", "9"]);
    let order: Vec<String> = fetch(&mut c, &["q", "COUNT", "10"])
        .into_iter()
        .map(|g| g.payload)
        .collect();
    assert_eq!(order, ["high", "mid", "low"]);
    // The delayed job comes when due; a blocking fetch wakes for it.
    let t0 = Instant::now();
    let g = fetch(&mut c, &["q", "BLOCK", "5000"]);
    assert_eq!(g[0].payload, "later");
    assert!(
        t0.elapsed() >= Duration::from_millis(150),
        "not before its time"
    );
    // Fairness: with jobs in both queues, consecutive single fetches alternate.
    for i in 0..4 {
        push(&mut c, &["a", &format!("a{i}")]);
        push(&mut c, &["b", &format!("b{i}")]);
    }
    let from: Vec<String> = (0..8)
        .map(|_| fetch(&mut c, &["a", "b"])[0].queue.clone())
        .collect();
    let a = from.iter().filter(|q| *q == "a").count();
    assert_eq!(a, 4, "{from:?}");
    assert!(from.windows(2).all(|w| w[0] != w[1]), "rotates: {from:?}");
}

#[test]
fn blocking_fetch_is_woken_by_a_push() {
    let s = crate::start(&[]);
    let port = s.port();
    let waiter = std::thread::spawn(move || {
        let mut c = client(port);
        fetch(&mut c, &["q1", "q2", "BLOCK", "0"])
    });
    let mut c = client(port);
    eventually("the fetch blocked", || {
        String::from_utf8_lossy(&c.cmd(&[b"INFO", b"clients"]).unwrap())
            .contains("blocked_clients:1")
    });
    let jid = push(&mut c, &["q2", "wake"]);
    let got = waiter.join().expect("waiter");
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].jid.as_str(), got[0].queue.as_str()),
        (jid.as_str(), "q2")
    );
    // A timed-out block answers the null array.
    assert_eq!(
        cmd(&mut c, &["JOB.FETCH", "q9", "BLOCK", "50"]),
        Frame::NullArray
    );
    // Inside MULTI it does not block.
    cmd(&mut c, &["MULTI"]);
    cmd(&mut c, &["JOB.FETCH", "q9", "BLOCK", "0"]);
    assert_eq!(cmd(&mut c, &["EXEC"]), Frame::Array(vec![Frame::NullArray]));
}

#[test]
fn visibility_timeout_redelivers_and_stale_claims_are_refused() {
    let s = crate::start(&[]);
    let mut c = client(s.port());
    let jid = push(&mut c, &["q", "p", "RETRY", "5"]);
    let first = fetch(&mut c, &["q", "VISIBILITY", "100"]).remove(0);
    assert_eq!(state(&mut c, &jid), "active");
    // Re-delivered after the timeout, with a new token and a higher fence.
    let t0 = Instant::now();
    let second = fetch(&mut c, &["q", "BLOCK", "5000"]).remove(0);
    assert!(t0.elapsed() >= Duration::from_millis(50));
    assert_eq!(second.jid, jid);
    assert_ne!(second.token, first.token);
    assert!(second.fence > first.fence);
    assert_eq!(second.attempt, 2);
    let g = get(&mut c, &jid);
    assert_eq!(g["failures"], Frame::Integer(1));
    assert_eq!(g["errors"], Frame::Array(vec![bulk("visibility timeout")]));
    for a in [
        vec!["JOB.ACK", &jid, &first.token],
        vec!["JOB.FAIL", &jid, &first.token, "e"],
        vec!["JOB.NACK", &jid, &first.token],
        vec!["JOB.EXTEND", &jid, &first.token, "100"],
        vec!["JOB.PROGRESS", &jid, &first.token, "5"],
    ] {
        assert_eq!(err(&mut c, &a), "STALE claim is not current", "{a:?}");
    }
    // EXTEND keeps the claim alive past its first deadline.
    let d = int(&mut c, &["JOB.EXTEND", &jid, &second.token, "60000"]);
    assert!(d > 0);
    assert_eq!(cmd(&mut c, &["JOB.ACK", &jid, &second.token]), Frame::Null);
    assert_eq!(state(&mut c, &jid), "completed");
}

#[test]
fn failures_retry_then_dead_letter() {
    let s = crate::start(&[]);
    let mut c = client(s.port());
    let jid = push(&mut c, &["q", "p", "RETRY", "1", "BACKOFF", "FIXED", "100"]);
    let d = fetch1(&mut c, "q");
    let f = map(cmd(&mut c, &["JOB.FAIL", &jid, &d.token, "boom"]));
    assert_eq!(f["state"], bulk("failed"));
    let at = match f["retry_at"] {
        Frame::Integer(t) => t,
        ref o => panic!("{o:?}"),
    };
    assert_eq!(state(&mut c, &jid), "failed");
    assert_eq!(get(&mut c, &jid)["retry_at"], Frame::Integer(at));
    let d = fetch(&mut c, &["q", "BLOCK", "5000"]).remove(0);
    assert_eq!(d.attempt, 2);
    let f = map(cmd(&mut c, &["JOB.FAIL", &jid, &d.token, "boom2"]));
    assert_eq!(
        (f["state"].clone(), f["retry_at"].clone()),
        (bulk("dead"), Frame::Integer(-1))
    );
    let g = get(&mut c, &jid);
    assert_eq!(g["errors"], Frame::Array(vec![bulk("boom"), bulk("boom2")]));
    let dead = cmd(&mut c, &["DLQ.LIST", "q"]);
    let Frame::Array(dead) = dead else { panic!() };
    assert_eq!(dead.len(), 1);
    assert_eq!(int(&mut c, &["DLQ.REQUEUE", "q", "ALL"]), 1);
    let d = fetch1(&mut c, "q");
    // NORETRY kills at once; RETRY_IN overrides the backoff.
    assert_eq!(
        map(cmd(&mut c, &["JOB.FAIL", &jid, &d.token, "x", "NORETRY"]))["state"],
        bulk("dead")
    );
    assert_eq!(int(&mut c, &["DLQ.PURGE", "q"]), 1);
    assert_eq!(cmd(&mut c, &["JOB.GET", &jid]), Frame::Null);
    let j2 = push(&mut c, &["q", "p", "RETRY", "3"]);
    let d = fetch1(&mut c, "q");
    let f = map(cmd(
        &mut c,
        &["JOB.FAIL", &j2, &d.token, "x", "RETRY_IN", "0"],
    ));
    assert_eq!(f["state"], bulk("failed"));
    assert_eq!(fetch1(&mut c, "q").jid, j2);
}

#[test]
fn ack_is_exactly_once_with_an_idempotency_key() {
    let s = crate::start(&[]);
    let mut c = client(s.port());
    let jid = push(&mut c, &["q", "p"]);
    let d = fetch1(&mut c, "q");
    assert_eq!(
        cmd(
            &mut c,
            &[
                "JOB.ACK",
                &jid,
                &d.token,
                "RESULT",
                "r1",
                "IDEMPOTENCY",
                "k"
            ]
        ),
        bulk("r1")
    );
    assert_eq!(
        cmd(
            &mut c,
            &[
                "JOB.ACK",
                &jid,
                &d.token,
                "RESULT",
                "r2",
                "IDEMPOTENCY",
                "k"
            ]
        ),
        bulk("r1")
    );
    assert_eq!(
        cmd(
            &mut c,
            &["JOB.ACK", &jid, "other-token", "IDEMPOTENCY", "k"]
        ),
        bulk("r1")
    );
    assert_eq!(
        err(&mut c, &["JOB.ACK", &jid, &d.token, "IDEMPOTENCY", "k2"]),
        "STALE claim is not current"
    );
    assert_eq!(
        err(&mut c, &["JOB.ACK", &jid, &d.token]),
        "STALE claim is not current"
    );
    assert_eq!(
        map(cmd(&mut c, &["QUEUE.STATS", "q"]))["completed"],
        Frame::Integer(1)
    );
}

#[test]
fn unique_dependencies_cancel_and_wait() {
    let s = crate::start(&[]);
    let mut c = client(s.port());
    let u = push(&mut c, &["q", "p", "UNIQUE", "user:1", "FOR", "60000"]);
    assert_eq!(
        cmd(
            &mut c,
            &["JOB.PUSH", "q", "p", "UNIQUE", "user:1", "FOR", "60000"]
        ),
        Frame::Null
    );
    assert_eq!(int(&mut c, &["JOB.CANCEL", &u]), 1);
    assert_eq!(int(&mut c, &["JOB.CANCEL", &u]), 0);
    assert_eq!(state(&mut c, &u), "cancelled");
    push(&mut c, &["q", "p", "UNIQUE", "user:1", "FOR", "60000"]);
    assert_eq!(int(&mut c, &["QUEUE.DRAIN", "q"]), 1);

    let parent = push(&mut c, &["q", "parent"]);
    let child = push(&mut c, &["q", "child", "DEPENDS", &parent]);
    assert_eq!(state(&mut c, &child), "scheduled");
    assert_eq!(
        get(&mut c, &child)["depends"],
        Frame::Array(vec![bulk(&parent)])
    );
    let d = fetch1(&mut c, "q");
    assert_eq!(d.jid, parent);
    assert!(
        fetch(&mut c, &["q"]).is_empty(),
        "child waits for its parent"
    );
    // JOB.WAIT blocks until the parent finishes.
    let port = s.port();
    let pj = parent.clone();
    let waiter = std::thread::spawn(move || {
        let mut c = client(port);
        map(cmd(&mut c, &["JOB.WAIT", &pj, "TIMEOUT", "10000"]))
    });
    eventually("the wait blocked", || {
        String::from_utf8_lossy(&c.cmd(&[b"INFO", b"clients"]).unwrap())
            .contains("blocked_clients:1")
    });
    cmd(&mut c, &["JOB.ACK", &parent, &d.token, "RESULT", "ok"]);
    let w = waiter.join().unwrap();
    assert_eq!(w["state"], bulk("completed"));
    assert_eq!(w["result"], bulk("ok"));
    assert_eq!(fetch1(&mut c, "q").jid, child);
    assert_eq!(
        cmd(&mut c, &["JOB.WAIT", &child, "TIMEOUT", "20"]),
        Frame::Null
    );
}

#[test]
fn concurrency_three_never_exceeded_under_ten_workers() {
    let s = crate::start(&[]);
    let mut c = client(s.port());
    assert_eq!(
        cmd(&mut c, &["QUEUE.CONFIG", "cq", "CONCURRENCY", "3"]),
        Frame::ok()
    );
    let cfg = map(cmd(&mut c, &["QUEUE.CONFIG", "cq", "GET"]));
    assert_eq!(cfg["concurrency"], Frame::Integer(3));
    const JOBS: usize = 60;
    for i in 0..JOBS {
        push(&mut c, &["cq", &i.to_string()]);
    }
    // History: each worker records (fence at claim, fence-order of ack) using the
    // server's own counter: the fence of a claim taken while k jobs are active.
    let port = s.port();
    let workers: Vec<_> = (0..10)
        .map(|w| {
            std::thread::spawn(move || {
                let mut c = client(port);
                let mut events = Vec::new();
                let mut done = 0;
                loop {
                    let got = fetch(&mut c, &["cq", "BLOCK", "300", "WORKER", &format!("w{w}")]);
                    let Some(g) = got.into_iter().next() else {
                        break;
                    };
                    let active = match map(cmd(&mut c, &["QUEUE.STATS", "cq"]))["active"] {
                        Frame::Integer(n) => n,
                        _ => -1,
                    };
                    events.push(active);
                    std::thread::sleep(Duration::from_millis(2));
                    assert_eq!(cmd(&mut c, &["JOB.ACK", &g.jid, &g.token]), Frame::Null);
                    done += 1;
                }
                (done, events)
            })
        })
        .collect();
    let mut total = 0;
    for w in workers {
        let (done, events) = w.join().unwrap();
        total += done;
        for a in events {
            assert!((1..=3).contains(&a), "active jobs seen by a holder: {a}");
        }
    }
    assert_eq!(total, JOBS);
    let st = map(cmd(&mut c, &["QUEUE.STATS", "cq"]));
    assert_eq!(st["completed"], Frame::Integer(JOBS as i64));
    assert_eq!(st["active"], Frame::Integer(0));
}

#[test]
fn rate_limited_queue_never_exceeds_its_limit() {
    let s = crate::start(&[]);
    let mut c = client(s.port());
    assert_eq!(
        cmd(&mut c, &["QUEUE.CONFIG", "rq", "RATE", "FIXED", "5", "200"]),
        Frame::ok()
    );
    for i in 0..12 {
        push(&mut c, &["rq", &i.to_string()]);
    }
    // Claims carry their start time in JOB.GET; count per aligned 200 ms window.
    let mut starts = Vec::new();
    let t0 = Instant::now();
    while starts.len() < 12 && t0.elapsed() < Duration::from_secs(20) {
        for g in fetch(&mut c, &["rq", "COUNT", "10", "BLOCK", "1000"]) {
            let m = get(&mut c, &g.jid);
            let Frame::Integer(t) = m["started"] else {
                panic!()
            };
            starts.push(t);
            cmd(&mut c, &["JOB.ACK", &g.jid, &g.token]);
        }
    }
    assert_eq!(starts.len(), 12);
    let mut per: HashMap<i64, usize> = HashMap::new();
    for t in starts {
        *per.entry(t / 200).or_default() += 1;
    }
    assert!(per.values().all(|n| *n <= 5), "{per:?}");
    assert!(per.len() >= 3);
}

#[test]
fn workers_beat_quiet_and_terminate() {
    let s = crate::start(&[]);
    let mut c = client(s.port());
    assert_eq!(
        cmd(&mut c, &["WORKER.BEAT", "w1", "ACTIVE", "2"]),
        Frame::Simple("ok".into())
    );
    push(&mut c, &["q", "p"]);
    assert_eq!(cmd(&mut c, &["WORKER.QUIET", "w1"]), Frame::ok());
    assert_eq!(
        cmd(&mut c, &["WORKER.BEAT", "w1"]),
        Frame::Simple("quiet".into())
    );
    assert_eq!(
        cmd(&mut c, &["JOB.FETCH", "q", "WORKER", "w1"]),
        Frame::NullArray,
        "a quiet worker gets nothing"
    );
    assert_eq!(fetch(&mut c, &["q", "WORKER", "w2"]).len(), 1);
    assert_eq!(cmd(&mut c, &["WORKER.TERMINATE", "w1"]), Frame::ok());
    assert_eq!(
        cmd(&mut c, &["WORKER.BEAT", "w1"]),
        Frame::Simple("terminate".into())
    );
    let Frame::Array(list) = cmd(&mut c, &["WORKER.LIST"]) else {
        panic!()
    };
    let w = map(list[0].clone());
    assert_eq!(
        (w["wid"].clone(), w["state"].clone(), w["active"].clone()),
        (bulk("w1"), bulk("terminate"), Frame::Integer(2))
    );
    assert_eq!(cmd(&mut c, &["QUEUE.LIST"]), Frame::Array(vec![bulk("q")]));
    assert_eq!(cmd(&mut c, &["QUEUE.PAUSE", "q"]), Frame::ok());
    push(&mut c, &["q", "p2"]);
    assert!(fetch(&mut c, &["q"]).is_empty());
    assert_eq!(cmd(&mut c, &["QUEUE.RESUME", "q"]), Frame::ok());
    assert_eq!(fetch(&mut c, &["q"]).len(), 1);
}

#[test]
fn jid_index_follows_the_queue_key() {
    let s = crate::start(&[]);
    let mut c = client(s.port());
    let j = push(&mut c, &["q", "p"]);
    assert_eq!(cmd(&mut c, &["RENAME", "q", "q2"]), Frame::ok());
    assert_eq!(text(&get(&mut c, &j)["queue"]), "q2");
    assert_eq!(int(&mut c, &["MOVE", "q2", "3"]), 1);
    // Found from any database.
    assert_eq!(text(&get(&mut c, &j)["state"]), "waiting");
    cmd(&mut c, &["SELECT", "3"]);
    let d = fetch1(&mut c, "q2");
    cmd(&mut c, &["SELECT", "0"]);
    assert_eq!(cmd(&mut c, &["SWAPDB", "0", "3"]), Frame::ok());
    assert_eq!(cmd(&mut c, &["JOB.ACK", &j, &d.token]), Frame::Null);
    let j2 = push(&mut c, &["other", "p"]);
    assert_eq!(int(&mut c, &["DEL", "other"]), 1);
    assert_eq!(cmd(&mut c, &["JOB.GET", &j2]), Frame::Null);
    // A key overwritten by SET: the stale entry is noticed on use.
    let j3 = push(&mut c, &["over", "p"]);
    cmd(&mut c, &["SET", "over", "x"]);
    assert_eq!(err(&mut c, &["JOB.CANCEL", &j3]), "ERR no such job");
    let j4 = push(&mut c, &["f", "p"]);
    cmd(&mut c, &["FLUSHALL"]);
    assert_eq!(cmd(&mut c, &["JOB.GET", &j4]), Frame::Null);
    // A pushed ID is free again once its job is gone.
    assert_eq!(push(&mut c, &["f", "p", "ID", &j4]), j4);
    assert_eq!(text(&get(&mut c, &j4)["queue"]), "f");
}

#[test]
fn dump_restore_and_queues_are_not_evicted() {
    let s = crate::start(&[]);
    let mut c = client(s.port());
    let j = push(&mut c, &["q", "payload"]);
    let dump = match cmd(&mut c, &["DUMP", "q"]) {
        Frame::Bulk(b) => b,
        o => panic!("{o:?}"),
    };
    cmd(&mut c, &["DEL", "q"]);
    let mut args: Vec<&[u8]> = vec![b"RESTORE", b"q", b"0"];
    args.push(&dump);
    assert_eq!(c.cmd_frame(&args).unwrap(), Frame::ok());
    assert_eq!(text(&get(&mut c, &j)["payload"]), "payload");
    // Garbage payloads are refused.
    let mut bad = dump.to_vec();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x55;
    let args: Vec<&[u8]> = vec![b"RESTORE", b"q3", b"0", &bad];
    assert!(matches!(c.cmd_frame(&args).unwrap(), Frame::Error(_)));
}

/// A queue with jobs in every state, including an active claim.
struct Fixture {
    active: (String, String, i64),
    failed: String,
    delayed: String,
    completed: String,
    dead: String,
}

fn fill(c: &mut RawClient) -> Fixture {
    cmd(c, &["QUEUE.CONFIG", "q", "CONCURRENCY", "5"]);
    let completed = push(c, &["q", "c", "PRIORITY", "9"]);
    let d = fetch1(c, "q");
    cmd(
        c,
        &[
            "JOB.ACK",
            &completed,
            &d.token,
            "RESULT",
            "res",
            "IDEMPOTENCY",
            "k",
        ],
    );
    let dead = push(c, &["q", "d", "PRIORITY", "9"]);
    let d = fetch1(c, "q");
    cmd(c, &["JOB.FAIL", &dead, &d.token, "fatal", "NORETRY"]);
    let failed = push(
        c,
        &[
            "q", "f", "PRIORITY", "9", "BACKOFF", "EXP", "3600000", "7200000", "JITTER", "0.5",
        ],
    );
    let d = fetch1(c, "q");
    cmd(c, &["JOB.FAIL", &failed, &d.token, "transient"]);
    let delayed = push(c, &["q", "later", "DELAY", "3600000"]);
    let a = push(c, &["q", "running", "TIMEOUT", "3600000"]);
    let d = fetch(c, &["q", "WORKER", "w9"]).remove(0);
    assert_eq!(d.jid, a);
    cmd(c, &["JOB.PROGRESS", &a, &d.token, "30", "a third"]);
    Fixture {
        active: (a, d.token, d.fence),
        failed,
        delayed,
        completed,
        dead,
    }
}

fn check_fixture(c: &mut RawClient, f: &Fixture, before: &HashMap<String, HashMap<String, Frame>>) {
    for (jid, g) in before {
        assert_eq!(&get(c, jid), g, "{jid} survived unchanged");
    }
    assert_eq!(state(c, &f.failed), "failed");
    assert_eq!(state(c, &f.delayed), "scheduled");
    assert_eq!(state(c, &f.dead), "dead");
    assert_eq!(
        cmd(c, &["JOB.ACK", &f.completed, "x", "IDEMPOTENCY", "k"]),
        bulk("res")
    );
    // The active claim's token still works, and fences keep growing.
    let (a, tok, fence) = &f.active;
    assert_eq!(cmd(c, &["JOB.ACK", a, tok]), Frame::Null);
    push(c, &["q", "new"]);
    let d = fetch1(c, "q");
    assert!(d.fence > *fence);
    assert_eq!(
        map(cmd(c, &["QUEUE.CONFIG", "q", "GET"]))["concurrency"],
        Frame::Integer(5)
    );
}

fn snapshot(c: &mut RawClient, f: &Fixture) -> HashMap<String, HashMap<String, Frame>> {
    [&f.active.0, &f.failed, &f.delayed, &f.completed, &f.dead]
        .into_iter()
        .map(|j| (j.clone(), get(c, j)))
        .collect()
}

#[test]
fn queues_survive_an_rdb_restart() {
    let dir = crate::rdb::scratch("jobs-rdb");
    let mut s = crate::rdb::start_in(&dir, &["--save", "", "--enable-debug-command", "yes"]);
    let mut c = client(s.port());
    let f = fill(&mut c);
    let before = snapshot(&mut c, &f);
    assert_eq!(cmd(&mut c, &["SAVE"]), Frame::ok());
    s.stop().expect("stop");
    let s2 = crate::rdb::start_in(&dir, &["--save", "", "--enable-debug-command", "yes"]);
    let mut c = client(s2.port());
    check_fixture(&mut c, &f, &before);
    // DEBUG RELOAD too.
    let f2 = {
        cmd(&mut c, &["DEL", "q"]);
        fill(&mut c)
    };
    let before = snapshot(&mut c, &f2);
    assert_eq!(cmd(&mut c, &["DEBUG", "RELOAD"]), Frame::ok());
    check_fixture(&mut c, &f2, &before);
}

#[test]
fn queues_survive_an_aof_restart() {
    for preamble in ["yes", "no"] {
        let dir = crate::rdb::scratch(&format!("jobs-aof-{preamble}"));
        let args = [
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--aof-use-rdb-preamble",
            preamble,
        ];
        let mut s = crate::rdb::start_in(&dir, &args);
        let mut c = client(s.port());
        // Some history before a rewrite (carried by the base), the rest after.
        let early = push(&mut c, &["q", "early"]);
        let pre = fetch1(&mut c, "q");
        assert_eq!(early, pre.jid);
        assert!(matches!(cmd(&mut c, &["BGREWRITEAOF"]), Frame::Simple(_)));
        eventually("the rewrite finished", || {
            crate::rdb::info_field(&mut c, "aof_rewrite_in_progress") == "0"
        });
        let f = fill(&mut c);
        let before = snapshot(&mut c, &f);
        s.stop().expect("stop");
        let s2 = crate::rdb::start_in(&dir, &args);
        let mut c = client(s2.port());
        assert_eq!(
            cmd(&mut c, &["JOB.ACK", &early, &pre.token]),
            Frame::Null,
            "{preamble}"
        );
        check_fixture(&mut c, &f, &before);
    }
}

/// The event names of a JOB.EVENTS / XREAD reply, in order, with their jids.
fn events(f: Frame) -> Vec<(String, String)> {
    let Frame::Array(streams) = f else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for s in streams {
        let Frame::Array(kv) = s else { panic!() };
        let Frame::Array(entries) = &kv[1] else {
            panic!()
        };
        for e in entries {
            let Frame::Array(idf) = e else { panic!() };
            let m = map(idf[1].clone());
            out.push((text(&m["event"]), text(&m["jid"])));
        }
    }
    out
}

#[test]
fn every_state_change_is_an_event() {
    let s = crate::start(&[]);
    let mut c = client(s.port());
    let a = push(&mut c, &["q", "a", "RETRY", "1"]);
    let b = push(&mut c, &["q", "b", "DELAY", "60000"]);
    let d = fetch1(&mut c, "q");
    cmd(&mut c, &["JOB.PROGRESS", &a, &d.token, "10"]);
    cmd(&mut c, &["JOB.FAIL", &a, &d.token, "oops", "RETRY_IN", "0"]);
    let d = fetch1(&mut c, "q");
    cmd(&mut c, &["JOB.ACK", &a, &d.token]);
    cmd(&mut c, &["JOB.CANCEL", &b]);
    let ev = events(cmd(&mut c, &["JOB.EVENTS", "q"]));
    let names: Vec<&str> = ev.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        names,
        [
            "pushed",
            "scheduled",
            "active",
            "progress",
            "failed",
            "waiting",
            "active",
            "completed",
            "cancelled"
        ]
    );
    assert_eq!(ev[0].1, a);
    assert_eq!(ev[8].1, b);
    // The stream is an ordinary stream key, readable with XREAD / XRANGE too.
    assert_eq!(
        cmd(&mut c, &["TYPE", "{q}:events"]),
        Frame::Simple("stream".into())
    );
    assert_eq!(int(&mut c, &["XLEN", "{q}:events"]), 9);
    // COUNT and AFTER page through it.
    let Frame::Array(first) = cmd(&mut c, &["XRANGE", "{q}:events", "-", "+", "COUNT", "2"]) else {
        panic!()
    };
    let Frame::Array(e2) = &first[1] else {
        panic!()
    };
    let id2 = text(&e2[0]);
    let rest = events(cmd(
        &mut c,
        &["JOB.EVENTS", "q", "AFTER", &id2, "COUNT", "3"],
    ));
    assert_eq!(
        rest.iter().map(|(e, _)| e.as_str()).collect::<Vec<_>>(),
        ["active", "progress", "failed"]
    );
    // Capped at job-events-maxlen; 0 turns events off.
    cmd(&mut c, &["CONFIG", "SET", "job-events-maxlen", "3"]);
    push(&mut c, &["q", "c"]);
    assert_eq!(int(&mut c, &["XLEN", "{q}:events"]), 3);
    cmd(&mut c, &["CONFIG", "SET", "job-events-maxlen", "0"]);
    push(&mut c, &["q", "d"]);
    assert_eq!(int(&mut c, &["XLEN", "{q}:events"]), 3);
    // A blocking read is woken by the next change.
    cmd(&mut c, &["CONFIG", "SET", "job-events-maxlen", "100"]);
    let port = s.port();
    let reader = std::thread::spawn(move || {
        let mut c = client(port);
        events(cmd(
            &mut c,
            &["JOB.EVENTS", "q", "AFTER", "$", "BLOCK", "10000"],
        ))
    });
    eventually("the reader blocked", || {
        String::from_utf8_lossy(&c.cmd(&[b"INFO", b"clients"]).unwrap())
            .contains("blocked_clients:1")
    });
    let e = push(&mut c, &["q", "e"]);
    assert_eq!(reader.join().unwrap(), vec![("pushed".to_string(), e)]);
}

#[test]
fn dead_jobs_move_to_the_dead_letter_queue_and_survive_restarts() {
    let dir = crate::rdb::scratch("jobs-dlq");
    let args = [
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ];
    let mut s = crate::rdb::start_in(&dir, &args);
    let mut c = client(s.port());
    assert_eq!(
        err(&mut c, &["QUEUE.CONFIG", "q", "DLQ", "q"]),
        "ERR DLQ must name another queue"
    );
    assert_eq!(
        cmd(&mut c, &["QUEUE.CONFIG", "q", "DLQ", "graveyard"]),
        Frame::ok()
    );
    assert_eq!(
        map(cmd(&mut c, &["QUEUE.CONFIG", "q", "GET"]))["dlq"],
        bulk("graveyard")
    );
    let a = push(&mut c, &["q", "a", "RETRY", "0"]);
    let b = push(&mut c, &["q", "b", "RETRY", "0"]);
    let d = fetch1(&mut c, "q");
    assert_eq!(
        map(cmd(&mut c, &["JOB.FAIL", &a, &d.token, "fatal"]))["state"],
        bulk("dead")
    );
    let g = get(&mut c, &a);
    assert_eq!(
        (g["queue"].clone(), g["state"].clone()),
        (bulk("graveyard"), bulk("dead"))
    );
    assert_eq!(
        map(cmd(&mut c, &["QUEUE.STATS", "q"]))["dead"],
        Frame::Integer(0)
    );
    // A visibility timeout that exhausts the retries moves it too.
    fetch(&mut c, &["q", "VISIBILITY", "20"]);
    std::thread::sleep(Duration::from_millis(40));
    assert_eq!(text(&get(&mut c, &b)["queue"]), "graveyard");
    let Frame::Array(dead) = cmd(&mut c, &["DLQ.LIST", "graveyard"]) else {
        panic!()
    };
    assert_eq!(dead.len(), 2);
    s.stop().expect("stop");
    let s2 = crate::rdb::start_in(&dir, &args);
    let mut c = client(s2.port());
    assert_eq!(text(&get(&mut c, &a)["queue"]), "graveyard");
    assert_eq!(text(&get(&mut c, &b)["state"]), "dead");
    assert_eq!(
        map(cmd(&mut c, &["QUEUE.STATS", "q"]))["dead"],
        Frame::Integer(0)
    );
    assert_eq!(int(&mut c, &["DLQ.REQUEUE", "graveyard", &a]), 1);
    assert_eq!(fetch1(&mut c, "graveyard").jid, a);
    assert_eq!(
        cmd(&mut c, &["QUEUE.CONFIG", "q", "DLQ", "NONE"]),
        Frame::ok()
    );
    assert_eq!(
        map(cmd(&mut c, &["QUEUE.CONFIG", "q", "GET"]))["dlq"],
        Frame::Null
    );
}

/// Commands on a jid act on the job's queue in its own database; their effects (events,
/// dead-letter moves) replay there, whatever database the client had selected.
#[test]
fn jid_commands_across_databases_replay_in_the_queue_database() {
    let dir = crate::rdb::scratch("jobs-dbs");
    let args = [
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ];
    let mut s = crate::rdb::start_in(&dir, &args);
    let mut c = client(s.port());
    cmd(&mut c, &["SELECT", "2"]);
    cmd(&mut c, &["QUEUE.CONFIG", "q", "DLQ", "dlq"]);
    let a = push(&mut c, &["q", "a", "RETRY", "0"]);
    let b = push(&mut c, &["q", "b"]);
    let da = fetch1(&mut c, "q");
    let db = fetch1(&mut c, "q");
    cmd(&mut c, &["SELECT", "0"]);
    assert_eq!(
        map(cmd(&mut c, &["JOB.FAIL", &a, &da.token, "x"]))["state"],
        bulk("dead")
    );
    assert_eq!(cmd(&mut c, &["JOB.ACK", &b, &db.token]), Frame::Null);
    assert_eq!(
        int(&mut c, &["EXISTS", "{q}:events", "dlq"]),
        0,
        "nothing in db 0"
    );
    cmd(&mut c, &["SELECT", "2"]);
    let ev_before = cmd(&mut c, &["XRANGE", "{q}:events", "-", "+"]);
    assert_eq!(int(&mut c, &["XLEN", "{q}:events"]), 6);
    assert_eq!(int(&mut c, &["XLEN", "{dlq}:events"]), 1);
    s.stop().expect("stop");
    let s2 = crate::rdb::start_in(&dir, &args);
    let mut c = client(s2.port());
    assert_eq!(int(&mut c, &["EXISTS", "{q}:events", "dlq"]), 0);
    cmd(&mut c, &["SELECT", "2"]);
    assert_eq!(cmd(&mut c, &["XRANGE", "{q}:events", "-", "+"]), ev_before);
    assert_eq!(text(&get(&mut c, &a)["queue"]), "dlq");
    assert_eq!(text(&get(&mut c, &b)["state"]), "completed");
}

/// Queues are never evicted (also with a TTL under volatile-*), and MEMORY USAGE follows
/// their jobs.
#[test]
fn queues_are_never_evicted_and_memory_follows_jobs() {
    let s = crate::start(&[]);
    let mut c = client(s.port());
    let empty = {
        cmd(&mut c, &["QUEUE.CONFIG", "m", "CONCURRENCY", "0"]);
        int(&mut c, &["MEMORY", "USAGE", "m"])
    };
    let big = "x".repeat(10_000);
    let jids: Vec<String> = (0..10).map(|_| push(&mut c, &["m", &big])).collect();
    let full = int(&mut c, &["MEMORY", "USAGE", "m"]);
    assert!(full >= empty + 100_000, "{empty} -> {full}");
    cmd(
        &mut c,
        &["QUEUE.CONFIG", "m", "RETENTION", "COMPLETED", "0", "0"],
    );
    for j in &jids {
        assert_eq!(int(&mut c, &["JOB.CANCEL", j]), 1);
    }
    assert!(int(&mut c, &["MEMORY", "USAGE", "m"]) < empty + 2000);

    for policy in [
        "allkeys-lru",
        "allkeys-random",
        "allkeys-fifo",
        "volatile-lru",
    ] {
        assert_eq!(cmd(&mut c, &["FLUSHALL"]), Frame::ok());
        cmd(&mut c, &["CONFIG", "SET", "maxmemory", "0"]);
        cmd(&mut c, &["CONFIG", "SET", "maxmemory-policy", policy]);
        for i in 0..50 {
            push(&mut c, &[&format!("q:{i}"), "p"]);
            cmd(&mut c, &["PEXPIRE", &format!("q:{i}"), "600000"]);
        }
        let used: u64 = String::from_utf8_lossy(&c.cmd(&[b"INFO", b"memory"]).unwrap())
            .lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("used_memory");
        cmd(
            &mut c,
            &[
                "CONFIG",
                "SET",
                "maxmemory",
                &(used + 512 * 1024).to_string(),
            ],
        );
        let value = "v".repeat(2000);
        for i in 0..2000 {
            let _ = cmd(&mut c, &["SET", &format!("s:{i}"), &value, "PX", "600000"]);
        }
        for i in 0..50 {
            assert_eq!(
                int(&mut c, &["EXISTS", &format!("q:{i}")]),
                1,
                "{policy}: q:{i} evicted"
            );
        }
    }
    cmd(&mut c, &["CONFIG", "SET", "maxmemory", "0"]);
}

#[test]
fn groups_retention_expiry_and_batch_dependencies() {
    let s = crate::start(&[]);
    let mut c = client(s.port());
    // GROUP_CONCURRENCY 1: one active job per group.
    cmd(&mut c, &["QUEUE.CONFIG", "g", "GROUP_CONCURRENCY", "1"]);
    push(&mut c, &["g", "a1", "GROUP", "a"]);
    push(&mut c, &["g", "a2", "GROUP", "a"]);
    push(&mut c, &["g", "b1", "GROUP", "b"]);
    let got: Vec<String> = fetch(&mut c, &["g", "COUNT", "10"])
        .into_iter()
        .map(|d| d.payload)
        .collect();
    assert_eq!(got, ["a1", "b1"]);
    // Retention by count, set per queue.
    cmd(
        &mut c,
        &[
            "QUEUE.CONFIG",
            "r",
            "RETENTION",
            "COMPLETED",
            "2",
            "86400000",
        ],
    );
    let mut done = Vec::new();
    for i in 0..4 {
        let j = push(&mut c, &["r", &i.to_string()]);
        let d = fetch1(&mut c, "r");
        cmd(&mut c, &["JOB.ACK", &j, &d.token]);
        done.push(j);
    }
    assert_eq!(cmd(&mut c, &["JOB.GET", &done[0]]), Frame::Null);
    assert_eq!(cmd(&mut c, &["JOB.GET", &done[1]]), Frame::Null);
    assert_eq!(state(&mut c, &done[3]), "completed");
    let cfg = map(cmd(&mut c, &["QUEUE.CONFIG", "r", "GET"]));
    assert_eq!(
        cfg["retention_completed"],
        Frame::Array(vec![Frame::Integer(2), Frame::Integer(86_400_000)])
    );
    // EXPIRES: not delivered in time, cancelled.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let e = push(
        &mut c,
        &[
            "x",
            "p",
            "DELAY",
            "10000",
            "EXPIRES",
            &(now_ms + 30).to_string(),
        ],
    );
    std::thread::sleep(Duration::from_millis(60));
    let g = get(&mut c, &e);
    assert_eq!(g["state"], bulk("cancelled"));
    assert_eq!(g["errors"], Frame::Array(vec![bulk("expired")]));
    // A batch job may depend on an earlier one of the same batch.
    let r = cmd(
        &mut c,
        &[
            "JOB.PUSHB",
            "b",
            "3",
            "p",
            "ID",
            "first",
            "3",
            "c",
            "DEPENDS",
            "first",
        ],
    );
    let Frame::Array(v) = r else { panic!("{r:?}") };
    assert_eq!(v.len(), 2);
    assert_eq!(v[0], bulk("first"));
    let child = text(&v[1]);
    assert_eq!(state(&mut c, &child), "scheduled");
}
