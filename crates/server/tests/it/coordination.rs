//! Coordination commands Redis 7.0 does not have (so no golden sequence can record them):
//! `SET key value IFEQ old` and `DELIFEQ key value` with Valkey's semantics; locks
//! (also several at once), fencing, semaphores, sessions and leader election, with
//! history checks under contention and restarts from the RDB and the AOF
//! (`docs/coordination.md`).

use basalt_proto::Frame;
use basalt_testkit::RawClient;
use bytes::Bytes;

pub(crate) fn client(port: u16) -> RawClient {
    RawClient::connect_port(port).expect("connect")
}

pub(crate) fn cmd(c: &mut RawClient, args: &[&str]) -> Frame {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    c.cmd_frame(&args).expect("reply")
}

pub(crate) fn bulk(s: &str) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

pub(crate) fn err(c: &mut RawClient, args: &[&str]) -> String {
    match cmd(c, args) {
        Frame::Error(e) => String::from_utf8_lossy(&e).into_owned(),
        other => panic!("{args:?}: not an error: {other:?}"),
    }
}

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

#[test]
fn set_ifeq_writes_only_over_an_equal_string() {
    let server = crate::start(&[]);
    let mut c = client(server.port());
    assert_eq!(cmd(&mut c, &["SET", "k", "a"]), Frame::ok());
    // Different value: not written, nil reply.
    assert_eq!(cmd(&mut c, &["SET", "k", "b", "IFEQ", "x"]), Frame::Null);
    assert_eq!(cmd(&mut c, &["GET", "k"]), bulk("a"));
    assert_eq!(cmd(&mut c, &["SET", "k", "b", "ifeq", "a"]), Frame::ok());
    assert_eq!(cmd(&mut c, &["GET", "k"]), bulk("b"));
    // With GET: the old value either way.
    assert_eq!(
        cmd(&mut c, &["SET", "k", "c", "IFEQ", "b", "GET"]),
        bulk("b")
    );
    assert_eq!(
        cmd(&mut c, &["SET", "k", "d", "IFEQ", "zz", "GET"]),
        bulk("c")
    );
    assert_eq!(cmd(&mut c, &["GET", "k"]), bulk("c"));
    // Integers compare as their text; expiry options apply when written.
    assert_eq!(cmd(&mut c, &["SET", "n", "10"]), Frame::ok());
    assert_eq!(
        cmd(&mut c, &["SET", "n", "11", "IFEQ", "10", "PX", "100000"]),
        Frame::ok()
    );
    assert!(matches!(cmd(&mut c, &["PTTL", "n"]), Frame::Integer(t) if t > 0));
    // A missing key is never created.
    assert_eq!(cmd(&mut c, &["SET", "none", "v", "IFEQ", "v"]), Frame::Null);
    assert_eq!(cmd(&mut c, &["EXISTS", "none"]), Frame::Integer(0));
    // Another type: WRONGTYPE, and the value is kept.
    assert_eq!(cmd(&mut c, &["RPUSH", "l", "x"]), Frame::Integer(1));
    assert_eq!(err(&mut c, &["SET", "l", "v", "IFEQ", "x"]), WRONGTYPE);
    assert_eq!(cmd(&mut c, &["TYPE", "l"]), Frame::Simple("list".into()));
    // IFEQ conflicts with NX and XX, and needs its argument.
    for bad in [
        &["SET", "k", "v", "IFEQ", "c", "NX"][..],
        &["SET", "k", "v", "XX", "IFEQ", "c"],
        &["SET", "k", "v", "IFEQ"],
    ] {
        assert_eq!(err(&mut c, bad), "ERR syntax error");
    }
    assert_eq!(cmd(&mut c, &["GET", "k"]), bulk("c"));
}

#[test]
fn delifeq_deletes_only_an_equal_string() {
    let server = crate::start(&[]);
    let mut c = client(server.port());
    assert_eq!(cmd(&mut c, &["SET", "k", "token-1"]), Frame::ok());
    assert_eq!(cmd(&mut c, &["DELIFEQ", "k", "token-2"]), Frame::Integer(0));
    assert_eq!(cmd(&mut c, &["DELIFEQ", "k", "token-1"]), Frame::Integer(1));
    assert_eq!(cmd(&mut c, &["EXISTS", "k"]), Frame::Integer(0));
    assert_eq!(cmd(&mut c, &["DELIFEQ", "k", "token-1"]), Frame::Integer(0));
    assert_eq!(cmd(&mut c, &["SADD", "s", "m"]), Frame::Integer(1));
    assert_eq!(err(&mut c, &["DELIFEQ", "s", "m"]), WRONGTYPE);
    assert_eq!(
        err(&mut c, &["DELIFEQ", "k"]),
        "ERR wrong number of arguments for 'delifeq' command"
    );
}

// ---- Locks, fencing, sessions -------------------------------------------------------

use crate::waiting::{self, wait_blocked};
use std::time::Duration;

fn int(c: &mut RawClient, args: &[&str]) -> i64 {
    match cmd(c, args) {
        Frame::Integer(i) => i,
        other => panic!("{args:?}: not an integer: {other:?}"),
    }
}

/// A grant: (token, fence, ttl left).
fn grant(f: Frame) -> Option<(String, i64, i64)> {
    match f {
        Frame::Array(v) => match &v[..] {
            [Frame::Bulk(t), Frame::Integer(fence), Frame::Integer(ttl)] => {
                Some((String::from_utf8_lossy(t).into_owned(), *fence, *ttl))
            }
            _ => panic!("bad grant {v:?}"),
        },
        Frame::NullArray | Frame::Null => None,
        other => panic!("bad grant reply {other:?}"),
    }
}

fn acquire(c: &mut RawClient, args: &[&str]) -> Option<(String, i64, i64)> {
    let mut a = vec!["LOCK.ACQUIRE"];
    a.extend_from_slice(args);
    grant(cmd(c, &a))
}

/// A field of a LOCK.INFO / SESSION.INFO map (RESP2: flat array).
fn field(f: &Frame, name: &str) -> Frame {
    let Frame::Array(v) = f else {
        panic!("not a map: {f:?}")
    };
    v.chunks(2)
        .find(|p| p[0] == bulk(name))
        .map(|p| p[1].clone())
        .unwrap_or_else(|| panic!("no {name} in {f:?}"))
}

#[test]
fn locks_grant_exclude_retry_and_nest() {
    let server = crate::start(&[]);
    let mut c = client(server.port());
    let (tok, f1, ttl) = acquire(&mut c, &["lk", "a", "TTL", "100000"]).expect("granted");
    assert_eq!(tok.len(), 20);
    assert!(f1 >= 1 && ttl > 0 && ttl <= 100000);
    assert_eq!(cmd(&mut c, &["TYPE", "lk"]), Frame::Simple("lock".into()));
    // Busy for others (exclusive and shared); a retry by the owner returns the same grant.
    assert_eq!(acquire(&mut c, &["lk", "b", "TTL", "1000"]), None);
    assert_eq!(acquire(&mut c, &["lk", "b", "TTL", "1000", "SHARED"]), None);
    let (tok2, f2, _) = acquire(&mut c, &["lk", "a", "TTL", "100000"]).expect("retry");
    assert_eq!((tok2.as_str(), f2), (tok.as_str(), f1));
    assert_eq!(
        err(&mut c, &["LOCK.ACQUIRE", "lk", "a", "TTL", "10", "SHARED"]),
        "ERR owner already holds this lock in the other mode"
    );
    // Renew, release (a wrong token releases nothing), then the fence is kept.
    assert_eq!(int(&mut c, &["LOCK.RENEW", "lk", &tok, "50000"]), 1);
    assert_eq!(int(&mut c, &["LOCK.RENEW", "lk", "nope", "50000"]), 0);
    assert_eq!(int(&mut c, &["LOCK.RELEASE", "lk", "nope"]), 0);
    assert_eq!(int(&mut c, &["LOCK.RELEASE", "lk", &tok]), 1);
    assert_eq!(int(&mut c, &["LOCK.RELEASE", "lk", &tok]), 0);
    let info = cmd(&mut c, &["LOCK.INFO", "lk"]);
    assert_eq!(field(&info, "fence"), Frame::Integer(f1));
    assert_eq!(field(&info, "mode"), bulk("free"));
    assert_eq!(field(&info, "holders"), Frame::Array(vec![]));
    // Reentrant: nested acquires need as many releases; the fence stays the grant's.
    let (rt, rf, _) = acquire(&mut c, &["lk", "r", "TTL", "100000", "REENTRANT"]).expect("r");
    assert!(rf > f1);
    assert_eq!(
        acquire(&mut c, &["lk", "r", "TTL", "100000", "REENTRANT"]).map(|g| g.1),
        Some(rf)
    );
    assert_eq!(int(&mut c, &["LOCK.RELEASE", "lk", &rt]), 1);
    assert_eq!(
        acquire(&mut c, &["lk", "b", "TTL", "1000"]),
        None,
        "still held once"
    );
    assert_eq!(int(&mut c, &["LOCK.RELEASE", "lk", &rt]), 1);
    // Shared holders coexist; a writer waits; FORCE drops them all.
    let (_, s1, _) = acquire(&mut c, &["lk", "x", "TTL", "100000", "SHARED"]).expect("x");
    let (_, s2, _) = acquire(&mut c, &["lk", "y", "TTL", "100000", "SHARED"]).expect("y");
    assert!(s2 > s1 && s1 > rf);
    assert_eq!(
        field(&cmd(&mut c, &["LOCK.INFO", "lk"]), "mode"),
        bulk("shared")
    );
    assert_eq!(acquire(&mut c, &["lk", "w", "TTL", "1000"]), None);
    assert_eq!(
        int(&mut c, &["FENCE.CHECK", "lk", &s1.to_string()]),
        1,
        "live reader"
    );
    assert_eq!(int(&mut c, &["LOCK.FORCE", "lk"]), 2);
    assert_eq!(int(&mut c, &["FENCE.CHECK", "lk", &s1.to_string()]), 0);
    assert!(acquire(&mut c, &["lk", "w", "TTL", "1000"]).expect("w").1 > s2);
    // Errors: no lease, both leases, bad numbers, wrong type, unknown session.
    assert_eq!(
        err(&mut c, &["LOCK.ACQUIRE", "lk", "o", "WAIT", "10"]),
        "ERR LOCK.ACQUIRE needs TTL ms or SESSION sid"
    );
    assert_eq!(
        err(
            &mut c,
            &["LOCK.ACQUIRE", "lk", "o", "TTL", "10", "SESSION", "1"]
        ),
        "ERR syntax error"
    );
    for bad in ["0", "-5", "x", "315360000001"] {
        assert!(
            err(&mut c, &["LOCK.ACQUIRE", "lk", "o", "TTL", bad])
                .starts_with("ERR invalid milliseconds")
        );
    }
    assert_eq!(
        err(&mut c, &["LOCK.ACQUIRE", "lk", "o", "SESSION", "99"]),
        "ERR no such session"
    );
    assert_eq!(cmd(&mut c, &["SET", "str", "v"]), Frame::ok());
    assert_eq!(
        err(&mut c, &["LOCK.ACQUIRE", "str", "o", "TTL", "10"]),
        WRONGTYPE
    );
    assert_eq!(err(&mut c, &["FENCE.CHECK", "str", "1"]), WRONGTYPE);
    assert_eq!(
        err(&mut c, &["FENCE.CHECK", "lk", "-1"]),
        "ERR fence is not a non-negative integer"
    );
    assert_eq!(int(&mut c, &["FENCE.CHECK", "missing", "1"]), 0);
    assert_eq!(cmd(&mut c, &["LOCK.INFO", "missing"]), Frame::Null);
}

#[test]
fn a_paused_client_is_fenced_out() {
    let server = crate::start(&[]);
    let mut a = client(server.port());
    let mut b = client(server.port());
    let (_, fa, _) = acquire(&mut a, &["lk", "a", "TTL", "100"]).expect("a");
    assert_eq!(
        cmd(
            &mut a,
            &["SET", "data", "a1", "IFFENCE", "lk", &fa.to_string()]
        ),
        Frame::ok()
    );
    // a "pauses" (GC, swap) past its lease; b is granted the lock with a higher fence.
    let fb = loop {
        if let Some((_, f, _)) = acquire(&mut b, &["lk", "b", "TTL", "100000", "WAIT", "5000"]) {
            break f;
        }
    };
    assert!(fb > fa);
    // a wakes up and writes with its old fence: refused. b's write goes through.
    assert_eq!(
        cmd(
            &mut a,
            &["SET", "data", "a2", "IFFENCE", "lk", &fa.to_string()]
        ),
        Frame::Null
    );
    assert_eq!(int(&mut a, &["FENCE.CHECK", "lk", &fa.to_string()]), 0);
    assert_eq!(
        int(&mut a, &["DELIFFENCE", "data", "lk", &fa.to_string()]),
        0
    );
    assert_eq!(
        cmd(
            &mut b,
            &["SET", "data", "b1", "IFFENCE", "lk", &fb.to_string()]
        ),
        Frame::ok()
    );
    assert_eq!(cmd(&mut b, &["GET", "data"]), bulk("b1"));
    // The fence stays valid after b's lease passes, until someone newer is granted.
    assert_eq!(int(&mut b, &["FENCE.CHECK", "lk", &fb.to_string()]), 1);
    assert_eq!(
        int(&mut b, &["DELIFFENCE", "data", "lk", &fb.to_string()]),
        1
    );
    assert_eq!(int(&mut b, &["EXISTS", "data"]), 0);
    // IFFENCE needs a lock key that exists and holds a lock.
    assert_eq!(
        cmd(&mut b, &["SET", "data", "x", "IFFENCE", "nolock", "1"]),
        Frame::Null
    );
    assert_eq!(cmd(&mut b, &["SET", "s", "x"]), Frame::ok());
    assert_eq!(
        err(&mut b, &["SET", "data", "x", "IFFENCE", "s", "1"]),
        WRONGTYPE
    );
    assert_eq!(
        err(&mut b, &["SET", "data", "x", "IFFENCE", "lk"]),
        "ERR syntax error"
    );
}

#[test]
fn waiters_are_woken_in_fifo_order_and_disconnects_leave_the_queue() {
    let server = crate::start(&[]);
    let mut ctl = waiting::client(&server);
    let (tok, f0, _) = acquire(&mut ctl, &["lk", "holder", "TTL", "100000"]).expect("held");
    let mut ws: Vec<RawClient> = Vec::new();
    for i in 0..4 {
        let mut w = waiting::client(&server);
        waiting::send(
            &mut w,
            &format!("LOCK.ACQUIRE lk w{i} TTL 100000 WAIT 0 FAIR"),
        );
        wait_blocked(&mut ctl, i + 1);
        ws.push(w);
    }
    assert_eq!(
        field(&cmd(&mut ctl, &["LOCK.INFO", "lk"]), "waiters"),
        Frame::Integer(4)
    );
    // w1 disconnects: it leaves the queue.
    drop(ws.remove(1));
    wait_blocked(&mut ctl, 3);
    assert_eq!(int(&mut ctl, &["LOCK.RELEASE", "lk", &tok]), 1);
    let mut last = f0;
    for (i, w) in ws.iter_mut().enumerate() {
        let g = grant(w.read_reply().expect("reply")).expect("granted");
        assert!(g.1 > last, "fences grow in grant order");
        last = g.1;
        let info = cmd(&mut ctl, &["LOCK.INFO", "lk"]);
        let holders = field(&info, "holders");
        let Frame::Array(h) = holders else { panic!() };
        assert_eq!(field(&h[0], "owner"), bulk(["w0", "w2", "w3"][i]));
        assert_eq!(int(w, &["LOCK.RELEASE", "lk", &g.0]), 1);
    }
}

#[test]
fn a_waiter_gets_the_lock_when_a_lease_passes_silently() {
    let server = crate::start(&[]);
    let mut a = client(server.port());
    let mut b = client(server.port());
    let (_, fa, _) = acquire(&mut a, &["lk", "a", "TTL", "200"]).expect("a");
    // Nobody releases: b is woken at a's deadline (server time), not by a write.
    let (_, fb, _) = acquire(&mut b, &["lk", "b", "TTL", "1000", "WAIT", "0"]).expect("b");
    assert!(fb > fa);
    // WAIT that runs out: null.
    assert_eq!(
        acquire(&mut a, &["lk", "a", "TTL", "1000", "WAIT", "50"]),
        None
    );
    // Inside MULTI a WAIT does not block.
    assert_eq!(cmd(&mut a, &["MULTI"]), Frame::ok());
    assert_eq!(
        cmd(
            &mut a,
            &["LOCK.ACQUIRE", "lk", "a", "TTL", "10", "WAIT", "0"]
        ),
        Frame::Simple("QUEUED".into())
    );
    assert_eq!(cmd(&mut a, &["EXEC"]), Frame::Array(vec![Frame::NullArray]));
}

#[test]
fn sessions_hold_locks_until_they_expire_or_close() {
    let server = crate::start(&["--hz", "100"]);
    let mut ctl = waiting::client(&server);
    let sid = int(&mut ctl, &["SESSION.OPEN", "300", "LOCKDELAY", "100"]);
    assert!(sid >= 1);
    let sids = sid.to_string();
    let (_, f0, ttl) = acquire(&mut ctl, &["lk", "s", "SESSION", &sids]).expect("granted");
    assert_eq!(ttl, -1);
    let (_, _, _) = acquire(&mut ctl, &["lk2", "s", "SESSION", &sids]).expect("granted");
    let info = cmd(&mut ctl, &["SESSION.INFO", &sids]);
    assert_eq!(field(&info, "ttl"), Frame::Integer(300));
    assert_eq!(field(&info, "lockdelay"), Frame::Integer(100));
    assert_eq!(field(&info, "onexpire"), bulk("release"));
    assert_eq!(
        field(&info, "locks"),
        Frame::Array(vec![bulk("lk"), bulk("lk2")])
    );
    assert_eq!(int(&mut ctl, &["SESSION.KEEPALIVE", &sids]), 300);
    // Waiters queue FIFO behind the session's grant.
    let mut ws: Vec<RawClient> = Vec::new();
    for i in 0..3 {
        let mut w = waiting::client(&server);
        waiting::send(
            &mut w,
            &format!("LOCK.ACQUIRE lk w{i} TTL 100000 WAIT 0 FAIR"),
        );
        wait_blocked(&mut ctl, i + 1);
        ws.push(w);
    }
    // No keepalive: the session expires, its locks are released (after LOCKDELAY) and the
    // waiters are served one by one in arrival order.
    let mut last = f0;
    for (i, w) in ws.iter_mut().enumerate() {
        let g = grant(w.read_reply().expect("reply")).expect("granted");
        assert!(g.1 > last);
        last = g.1;
        let Frame::Array(h) = field(&cmd(&mut ctl, &["LOCK.INFO", "lk"]), "holders") else {
            panic!()
        };
        assert_eq!(field(&h[0], "owner"), bulk(&format!("w{i}")));
        assert_eq!(int(w, &["LOCK.RELEASE", "lk", &g.0]), 1);
    }
    assert_eq!(
        err(&mut ctl, &["SESSION.KEEPALIVE", &sids]),
        "ERR no such session"
    );
    assert_eq!(
        err(&mut ctl, &["SESSION.INFO", &sids]),
        "ERR no such session"
    );
    assert_eq!(
        field(&cmd(&mut ctl, &["LOCK.INFO", "lk2"]), "mode"),
        bulk("free")
    );
    // CLOSE releases at once (no lock-delay); ONEXPIRE DELETE removes freed lock keys.
    let s2 = int(&mut ctl, &["SESSION.OPEN", "100000", "LOCKDELAY", "100000"]).to_string();
    acquire(&mut ctl, &["lk3", "s", "SESSION", &s2]).expect("granted");
    assert_eq!(int(&mut ctl, &["SESSION.CLOSE", &s2]), 1);
    assert!(acquire(&mut ctl, &["lk3", "o", "TTL", "1000"]).is_some());
    assert_eq!(
        err(&mut ctl, &["SESSION.CLOSE", &s2]),
        "ERR no such session"
    );
    let s3 = int(&mut ctl, &["SESSION.OPEN", "100", "ONEXPIRE", "DELETE"]).to_string();
    acquire(&mut ctl, &["lk4", "s", "SESSION", &s3]).expect("granted");
    let mut b = waiting::client(&server);
    let g = acquire(&mut b, &["lk4", "b", "TTL", "1000", "WAIT", "0"]).expect("after expiry");
    assert!(g.1 > last);
    for bad in [
        &["SESSION.OPEN", "0"][..],
        &["SESSION.OPEN", "100", "LOCKDELAY"],
        &["SESSION.OPEN", "100", "ONEXPIRE", "KEEP"],
    ] {
        assert!(matches!(cmd(&mut ctl, bad), Frame::Error(_)), "{bad:?}");
    }
}

/// 50 clients with random pauses contend for one lock with short TTLs. Each holder takes
/// server-time samples that are proven inside its hold (TIME and LOCK.RENEW in one
/// MULTI/EXEC: the renew succeeds only for a live holder). The history must show no two
/// grants' samples overlapping, and fences strictly increasing in grant order.
#[test]
fn fifty_clients_never_hold_an_exclusive_lock_together() {
    let server = crate::start(&[]);
    let port = server.port();
    let threads: Vec<_> = (0..50)
        .map(|i| {
            std::thread::spawn(move || {
                let mut c = client(port);
                c.set_timeout(Duration::from_secs(60)).expect("timeout");
                let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1);
                let mut rnd = move |n: u64| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x % n
                };
                let owner = format!("c{i}");
                let mut history = Vec::new();
                for _ in 0..4 {
                    let Some((tok, fence, _)) =
                        acquire(&mut c, &["res", &owner, "TTL", "30", "WAIT", "30000"])
                    else {
                        continue;
                    };
                    let mut samples = Vec::new();
                    for _ in 0..2 {
                        // A pause that sometimes outlives the lease.
                        std::thread::sleep(Duration::from_millis(rnd(40)));
                        cmd(&mut c, &["MULTI"]);
                        cmd(&mut c, &["TIME"]);
                        cmd(&mut c, &["LOCK.RENEW", "res", &tok, "30"]);
                        let Frame::Array(r) = cmd(&mut c, &["EXEC"]) else {
                            panic!("exec")
                        };
                        if r[1] != Frame::Integer(1) {
                            break; // the lease passed: no longer a holder
                        }
                        let Frame::Array(t) = &r[0] else {
                            panic!("time")
                        };
                        let num = |f: &Frame| match f {
                            Frame::Bulk(b) => {
                                String::from_utf8_lossy(b).parse::<u64>().expect("num")
                            }
                            _ => panic!("time field"),
                        };
                        samples.push(num(&t[0]) * 1_000_000 + num(&t[1]));
                    }
                    cmd(&mut c, &["LOCK.RELEASE", "res", &tok]);
                    if let (Some(&s), Some(&e)) = (samples.first(), samples.last()) {
                        history.push((s, e, fence, owner.clone()));
                    }
                }
                history
            })
        })
        .collect();
    let mut history: Vec<(u64, u64, i64, String)> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("client thread"))
        .collect();
    history.sort();
    assert!(
        history.len() >= 50,
        "too few proven holds: {}",
        history.len()
    );
    for w in history.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        assert!(a.1 <= b.0, "overlapping exclusive holds: {a:?} and {b:?}");
        assert!(b.2 > a.2, "fence did not grow: {a:?} then {b:?}");
    }
}

#[test]
fn locks_fences_and_sessions_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!("basalt-it-coord-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let d = dir.to_string_lossy().into_owned();
    let mut s = crate::start(&["--dir", &d, "--save", ""]);
    let mut c = client(s.port());
    let (tok, f1, _) = acquire(&mut c, &["held", "a", "TTL", "600000"]).expect("a");
    let sid = int(&mut c, &["SESSION.OPEN", "600000", "LOCKDELAY", "5"]).to_string();
    let (_, f2, _) = acquire(&mut c, &["bysession", "s", "SESSION", &sid]).expect("s");
    // A lock whose key is deleted: its fence must not be handed out again.
    let (_, f3, _) = acquire(&mut c, &["gone", "g", "TTL", "600000"]).expect("g");
    assert_eq!(int(&mut c, &["DEL", "gone"]), 1);
    let sem = cmd(
        &mut c,
        &[
            "SEM.ACQUIRE",
            "pool",
            "5",
            "p",
            "PERMITS",
            "3",
            "TTL",
            "600000",
        ],
    );
    assert!(grant(sem).is_some());
    let (_, te) = campaign(&mut c, &["ldr", "c1", "v1", "TTL", "600000"]);
    assert_eq!(cmd(&mut c, &["SAVE"]), Frame::ok());
    s.stop().expect("stop");

    let s2 = crate::start(&["--dir", &d, "--save", ""]);
    let mut c = client(s2.port());
    // The TTL lock is still held by a, with its token and fence.
    assert_eq!(acquire(&mut c, &["held", "b", "TTL", "1000"]), None);
    assert_eq!(
        acquire(&mut c, &["held", "a", "TTL", "600000"]).map(|g| (g.0, g.1)),
        Some((tok.clone(), f1))
    );
    assert_eq!(int(&mut c, &["FENCE.CHECK", "held", &f1.to_string()]), 1);
    // The session came back (full TTL) and still holds its lock.
    assert_eq!(int(&mut c, &["SESSION.KEEPALIVE", &sid]), 600000);
    assert_eq!(acquire(&mut c, &["bysession", "b", "TTL", "1000"]), None);
    assert_eq!(int(&mut c, &["SESSION.CLOSE", &sid]), 1);
    let (_, f4, _) = acquire(&mut c, &["bysession", "b", "TTL", "1000"]).expect("freed");
    assert!(
        f4 > f3 && f3 > f2 && f2 > f1,
        "fences continue upward: {f1} {f2} {f3} {f4}"
    );
    let (_, f5, _) = acquire(&mut c, &["gone", "g2", "TTL", "1000"]).expect("new");
    assert!(f5 > f4);
    // The semaphore kept its limit and held permits.
    let info = cmd(&mut c, &["SEM.INFO", "pool"]);
    assert_eq!(field(&info, "limit"), Frame::Integer(5));
    assert_eq!(field(&info, "in-use"), Frame::Integer(3));
    // The election kept its leader, value and term.
    let Frame::Array(leader) = cmd(&mut c, &["ELECT.LEADER", "ldr"]) else {
        panic!("no leader after the restart")
    };
    assert_eq!(leader[..3], [bulk("c1"), bulk("v1"), Frame::Integer(te)]);
    assert_eq!(
        cmd(&mut c, &["TYPE", "ldr"]),
        Frame::Simple("election".into())
    );
    // New sessions get new ids.
    assert!(int(&mut c, &["SESSION.OPEN", "1000"]) > sid.parse::<i64>().expect("sid"));
    drop(s2);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Held locks are never evicted: allkeys-lru, -random, -fifo and -s3fifo evict the strings
/// around them, never the lock keys.
#[test]
fn locks_are_never_evicted() {
    let server = crate::start(&[]);
    let mut c = client(server.port());
    for policy in [
        "allkeys-lru",
        "allkeys-random",
        "allkeys-fifo",
        "allkeys-s3fifo",
    ] {
        assert_eq!(cmd(&mut c, &["FLUSHALL"]), Frame::ok());
        assert_eq!(
            cmd(&mut c, &["CONFIG", "SET", "maxmemory", "0"]),
            Frame::ok()
        );
        assert_eq!(
            cmd(&mut c, &["CONFIG", "SET", "maxmemory-policy", policy]),
            Frame::ok()
        );
        for i in 0..100 {
            acquire(&mut c, &[&format!("lock:{i}"), "o", "TTL", "600000"]).expect("granted");
        }
        let Frame::Bulk(info) = cmd(&mut c, &["INFO", "memory"]) else {
            panic!("info")
        };
        let used: u64 = String::from_utf8_lossy(&info)
            .lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("used_memory");
        let limit = (used + 512 * 1024).to_string();
        assert_eq!(
            cmd(&mut c, &["CONFIG", "SET", "maxmemory", &limit]),
            Frame::ok()
        );
        let value = "v".repeat(2000);
        for i in 0..2000 {
            assert_eq!(
                cmd(&mut c, &["SET", &format!("s:{i}"), &value]),
                Frame::ok()
            );
        }
        for i in 0..100 {
            assert_eq!(
                acquire(&mut c, &[&format!("lock:{i}"), "other", "TTL", "10"]),
                None,
                "{policy}: lock:{i} was evicted"
            );
        }
    }
}

#[test]
fn semaphores_grant_weighted_permits_up_to_their_limit() {
    let server = crate::start(&[]);
    let mut c = client(server.port());
    let sem = |c: &mut RawClient, args: &[&str]| {
        let mut a = vec!["SEM.ACQUIRE"];
        a.extend_from_slice(args);
        grant(cmd(c, &a))
    };
    let (ta, fa, _) = sem(&mut c, &["pool", "3", "a", "PERMITS", "2", "TTL", "100000"]).expect("a");
    assert_eq!(
        cmd(&mut c, &["TYPE", "pool"]),
        Frame::Simple("semaphore".into())
    );
    let (_, fb, _) = sem(&mut c, &["pool", "3", "b", "TTL", "100000"]).expect("b");
    assert!(fb > fa);
    assert_eq!(sem(&mut c, &["pool", "3", "c", "TTL", "100000"]), None);
    // A retry by a holder is idempotent.
    assert_eq!(
        sem(&mut c, &["pool", "3", "a", "PERMITS", "2", "TTL", "100000"]).map(|g| g.1),
        Some(fa)
    );
    let info = cmd(&mut c, &["SEM.INFO", "pool"]);
    assert_eq!(field(&info, "limit"), Frame::Integer(3));
    assert_eq!(field(&info, "in-use"), Frame::Integer(3));
    assert_eq!(field(&info, "mode"), bulk("held"));
    // The limit cannot change while permits are held.
    assert_eq!(
        err(&mut c, &["SEM.ACQUIRE", "pool", "5", "c", "TTL", "10"]),
        "ERR semaphore limit differs from the limit in use"
    );
    // A waiter for 2 permits is served when a's 2 come back.
    let mut w = waiting::client(&server);
    waiting::send(
        &mut w,
        "SEM.ACQUIRE pool 3 c PERMITS 2 TTL 100000 WAIT 0 FAIR",
    );
    wait_blocked(&mut c, 1);
    assert_eq!(int(&mut c, &["SEM.RELEASE", "pool", &ta]), 1);
    let (_, fc, _) = grant(w.read_reply().expect("reply")).expect("c");
    assert!(fc > fb);
    // Locks and semaphores are different types; the fence check works on both.
    assert_eq!(
        err(&mut c, &["LOCK.ACQUIRE", "pool", "x", "TTL", "10"]),
        WRONGTYPE
    );
    assert_eq!(err(&mut c, &["LOCK.INFO", "pool"]), WRONGTYPE);
    acquire(&mut c, &["lk", "x", "TTL", "1000"]).expect("lock");
    assert_eq!(err(&mut c, &["SEM.INFO", "lk"]), WRONGTYPE);
    assert_eq!(int(&mut c, &["FENCE.CHECK", "pool", &fc.to_string()]), 1);
    // Bad input.
    for (args, e) in [
        (
            &["SEM.ACQUIRE", "s", "0", "o", "TTL", "10"][..],
            "ERR semaphore limit must be between 1 and 1073741824",
        ),
        (
            &["SEM.ACQUIRE", "s", "2", "o", "PERMITS", "3", "TTL", "10"],
            "ERR PERMITS must be between 1 and the semaphore limit",
        ),
        (
            &["SEM.ACQUIRE", "s", "2", "o", "PERMITS", "0", "TTL", "10"],
            "ERR PERMITS must be between 1 and the semaphore limit",
        ),
        (
            &["SEM.ACQUIRE", "s", "2", "o", "TTL", "10", "SHARED"],
            "ERR syntax error",
        ),
    ] {
        assert_eq!(err(&mut c, args), e, "{args:?}");
    }
}

/// 30 clients take 1 or 2 permits of a 4-permit semaphore with short leases and random
/// pauses. Holds are proven by server-time samples (TIME with a successful SEM.RENEW in
/// one MULTI/EXEC); at every sample, the permits of the holds proven around it never
/// exceed the limit.
#[test]
fn semaphore_permits_never_exceed_the_limit_under_contention() {
    let server = crate::start(&[]);
    let port = server.port();
    let threads: Vec<_> = (0..30)
        .map(|i| {
            std::thread::spawn(move || {
                let mut c = client(port);
                c.set_timeout(Duration::from_secs(60)).expect("timeout");
                let mut x: u64 = 0x2545_F491_4F6C_DD1D ^ (i as u64 + 1);
                let mut rnd = move |n: u64| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x % n
                };
                let owner = format!("c{i}");
                let mut history = Vec::new();
                for _ in 0..4 {
                    let permits = (1 + rnd(2)).to_string();
                    let f = cmd(
                        &mut c,
                        &[
                            "SEM.ACQUIRE",
                            "pool",
                            "4",
                            &owner,
                            "PERMITS",
                            &permits,
                            "TTL",
                            "30",
                            "WAIT",
                            "30000",
                        ],
                    );
                    let Some((tok, _, _)) = grant(f) else {
                        continue;
                    };
                    let mut samples = Vec::new();
                    for _ in 0..2 {
                        std::thread::sleep(Duration::from_millis(rnd(40)));
                        cmd(&mut c, &["MULTI"]);
                        cmd(&mut c, &["TIME"]);
                        cmd(&mut c, &["SEM.RENEW", "pool", &tok, "30"]);
                        let Frame::Array(r) = cmd(&mut c, &["EXEC"]) else {
                            panic!("exec")
                        };
                        if r[1] != Frame::Integer(1) {
                            break;
                        }
                        let Frame::Array(t) = &r[0] else {
                            panic!("time")
                        };
                        let num = |f: &Frame| match f {
                            Frame::Bulk(b) => {
                                String::from_utf8_lossy(b).parse::<u64>().expect("num")
                            }
                            _ => panic!("time field"),
                        };
                        samples.push(num(&t[0]) * 1_000_000 + num(&t[1]));
                    }
                    cmd(&mut c, &["SEM.RELEASE", "pool", &tok]);
                    if let (Some(&s), Some(&e)) = (samples.first(), samples.last()) {
                        history.push((s, e, permits.parse::<u64>().expect("permits")));
                    }
                }
                history
            })
        })
        .collect();
    let history: Vec<(u64, u64, u64)> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("client thread"))
        .collect();
    assert!(
        history.len() >= 30,
        "too few proven holds: {}",
        history.len()
    );
    for &(t, _, _) in &history {
        let used: u64 = history
            .iter()
            .filter(|(s, e, _)| *s <= t && t <= *e)
            .map(|(_, _, p)| p)
            .sum();
        assert!(used <= 4, "{used} permits in use at {t}");
    }
}

/// Polls `check` until it holds (the cron reaps expired sessions within one `hz` period).
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let t0 = std::time::Instant::now();
    while !check() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(30),
            "never happened: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn wait_rewrite(c: &mut RawClient) {
    eventually("the AOF rewrite finished", || {
        crate::rdb::info_field(c, "aof_rewrite_in_progress") == "0"
    });
}

/// The AOF holds coordination as deterministic effects: a restart replays the same held
/// locks (absolute deadlines), the fence counter (also past a deleted lock key, carried
/// by the base), the sessions, and the results of a session's expiry. Both base forms.
#[test]
fn locks_fences_and_sessions_survive_an_aof_restart() {
    for preamble in ["yes", "no"] {
        let dir = crate::rdb::scratch(&format!("coord-aof-{preamble}"));
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
        // Before the rewrite: carried by the base.
        let (tok, f1, _) = acquire(&mut c, &["held", "a", "TTL", "600000"]).expect("a");
        let sid = int(&mut c, &["SESSION.OPEN", "600000", "LOCKDELAY", "5"]).to_string();
        let (_, f2, _) = acquire(&mut c, &["bysession", "s", "SESSION", &sid]).expect("s");
        let (_, f3, _) = acquire(&mut c, &["gone", "g", "TTL", "600000"]).expect("g");
        assert_eq!(int(&mut c, &["DEL", "gone"]), 1);
        assert_eq!(
            cmd(&mut c, &["BGREWRITEAOF"]),
            Frame::Simple("Background append only file rewriting started".into())
        );
        wait_rewrite(&mut c);
        // After the rewrite: replayed from the incremental file.
        let sem = cmd(
            &mut c,
            &[
                "SEM.ACQUIRE",
                "pool",
                "5",
                "p",
                "PERMITS",
                "3",
                "TTL",
                "600000",
            ],
        );
        assert!(grant(sem).is_some());
        let (rtok, fr, _) = acquire(&mut c, &["rel", "r", "TTL", "600000"]).expect("r");
        assert_eq!(int(&mut c, &["LOCK.RELEASE", "rel", &rtok]), 1);
        let late = int(&mut c, &["SESSION.OPEN", "600000"]).to_string();
        assert!(acquire(&mut c, &["late", "l", "SESSION", &late]).is_some());
        // A session that expires: its ONEXPIRE DELETE deletes the lock key it held.
        let short = int(&mut c, &["SESSION.OPEN", "100", "ONEXPIRE", "DELETE"]).to_string();
        assert!(acquire(&mut c, &["ephemeral", "e", "SESSION", &short]).is_some());
        eventually("the short session expired", || {
            int(&mut c, &["EXISTS", "ephemeral"]) == 0
        });
        assert_eq!(
            cmd(
                &mut c,
                &["SET", "data", "v", "IFFENCE", "held", &f1.to_string()]
            ),
            Frame::ok()
        );
        let (_, te) = campaign(&mut c, &["ldr", "c1", "v1", "TTL", "600000"]);
        assert_eq!(
            int(&mut c, &["ELECT.PROCLAIM", "ldr", &te.to_string(), "v2"]),
            1
        );
        let multi = grants(cmd(
            &mut c,
            &["LOCK.MACQUIRE", "2", "m1", "m2", "mo", "TTL", "600000"],
        ))
        .expect("both");
        s.stop().expect("stop");

        let s2 = crate::rdb::start_in(&dir, &args);
        let mut c = client(s2.port());
        // The TTL lock is still held by a, with its token and fence.
        assert_eq!(acquire(&mut c, &["held", "b", "TTL", "1000"]), None);
        assert_eq!(
            acquire(&mut c, &["held", "a", "TTL", "600000"]).map(|g| (g.0, g.1)),
            Some((tok.clone(), f1))
        );
        assert_eq!(cmd(&mut c, &["GET", "data"]), bulk("v"));
        // Both sessions came back (full TTL) and hold their locks; the expired one
        // stayed gone, and so did the key its expiry deleted.
        assert_eq!(int(&mut c, &["SESSION.KEEPALIVE", &sid]), 600000);
        assert_eq!(int(&mut c, &["SESSION.KEEPALIVE", &late]), 600000);
        assert!(err(&mut c, &["SESSION.INFO", &short]).contains("no such session"));
        assert_eq!(int(&mut c, &["EXISTS", "ephemeral"]), 0);
        assert_eq!(acquire(&mut c, &["bysession", "b", "TTL", "1000"]), None);
        assert_eq!(acquire(&mut c, &["late", "b", "TTL", "1000"]), None);
        assert_eq!(int(&mut c, &["SESSION.CLOSE", &sid]), 1);
        // Fences continue upward, past the deleted key's and the released lock's.
        let (_, f4, _) = acquire(&mut c, &["bysession", "b", "TTL", "1000"]).expect("freed");
        assert!(
            f4 > fr && fr > f3 && f3 > f2 && f2 > f1,
            "fences continue upward: {f1} {f2} {f3} {fr} {f4}"
        );
        let (_, f5, _) = acquire(&mut c, &["gone", "g2", "TTL", "1000"]).expect("new");
        assert!(f5 > f4);
        let info = cmd(&mut c, &["LOCK.INFO", "rel"]);
        assert_eq!(field(&info, "fence"), Frame::Integer(fr));
        assert_eq!(field(&info, "mode"), bulk("free"));
        let info = cmd(&mut c, &["SEM.INFO", "pool"]);
        assert_eq!(field(&info, "in-use"), Frame::Integer(3));
        // The leader still leads, with its term and proclaimed value.
        let Frame::Array(leader) = cmd(&mut c, &["ELECT.LEADER", "ldr"]) else {
            panic!("no leader after the restart")
        };
        assert_eq!(leader[..3], [bulk("c1"), bulk("v2"), Frame::Integer(te)]);
        let again = grants(cmd(
            &mut c,
            &["LOCK.MACQUIRE", "2", "m1", "m2", "mo", "TTL", "600000"],
        ))
        .expect("still held by mo");
        assert_eq!(
            again.iter().map(|g| (&g.0, g.1)).collect::<Vec<_>>(),
            multi.iter().map(|g| (&g.0, g.1)).collect::<Vec<_>>()
        );
        // New sessions get new ids.
        assert!(int(&mut c, &["SESSION.OPEN", "1000"]) > short.parse::<i64>().expect("sid"));
        drop(s2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn campaign(c: &mut RawClient, args: &[&str]) -> (i64, i64) {
    let mut a = vec!["ELECT.CAMPAIGN"];
    a.extend_from_slice(args);
    match cmd(c, &a) {
        Frame::Array(v) => match &v[..] {
            [Frame::Integer(won), Frame::Integer(term)] => (*won, *term),
            _ => panic!("bad campaign reply {v:?}"),
        },
        other => panic!("bad campaign reply {other:?}"),
    }
}

/// Reads the next published message: (channel, payload), from a RESP2 subscriber or a
/// RESP3 client's push.
fn message(c: &mut RawClient) -> (String, String) {
    let parts = match c.read_reply().expect("message") {
        Frame::Array(v) | Frame::Push(v) => v,
        other => panic!("not a message: {other:?}"),
    };
    let text = |f: &Frame| match f {
        Frame::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("not a bulk: {other:?}"),
    };
    assert_eq!(text(&parts[0]), "message", "{parts:?}");
    (text(&parts[1]), text(&parts[2]))
}

#[test]
fn elections_have_one_leader_and_increasing_terms() {
    let server = crate::start(&[]);
    let mut c = client(server.port());
    let (won, t1) = campaign(&mut c, &["e", "a", "va", "TTL", "60000"]);
    assert_eq!(won, 1);
    assert_eq!(
        cmd(&mut c, &["TYPE", "e"]),
        Frame::Simple("election".into())
    );
    // Another candidate loses (and learns the term); a retry by the leader keeps its term.
    assert_eq!(campaign(&mut c, &["e", "b", "vb", "TTL", "60000"]), (0, t1));
    assert_eq!(
        campaign(&mut c, &["e", "a", "other", "TTL", "60000"]),
        (1, t1)
    );
    let Frame::Array(leader) = cmd(&mut c, &["ELECT.LEADER", "e"]) else {
        panic!("no leader")
    };
    assert_eq!(leader[..3], [bulk("a"), bulk("va"), Frame::Integer(t1)]);
    assert!(matches!(leader[3], Frame::Integer(t) if t > 0 && t <= 60000));
    // PROCLAIM and RESIGN need the leader's term.
    assert_eq!(
        int(&mut c, &["ELECT.PROCLAIM", "e", &(t1 + 1).to_string(), "x"]),
        0
    );
    assert_eq!(
        int(&mut c, &["ELECT.PROCLAIM", "e", &t1.to_string(), "v2"]),
        1
    );
    let Frame::Array(leader) = cmd(&mut c, &["ELECT.LEADER", "e"]) else {
        panic!("no leader")
    };
    assert_eq!(leader[1], bulk("v2"));
    // The term is a fence: the store-side check works with it.
    assert_eq!(int(&mut c, &["FENCE.CHECK", "e", &t1.to_string()]), 1);
    assert_eq!(int(&mut c, &["ELECT.RESIGN", "e", "0"]), 0);
    assert_eq!(int(&mut c, &["ELECT.RESIGN", "e", &t1.to_string()]), 1);
    assert_eq!(int(&mut c, &["ELECT.RESIGN", "e", &t1.to_string()]), 0);
    assert_eq!(cmd(&mut c, &["ELECT.LEADER", "e"]), Frame::Null);
    let (won, t2) = campaign(&mut c, &["e", "b", "vb", "TTL", "60000"]);
    assert_eq!(won, 1);
    assert!(t2 > t1);
    assert_eq!(int(&mut c, &["FENCE.CHECK", "e", &t1.to_string()]), 0);
    // Types and errors.
    assert_eq!(
        err(&mut c, &["LOCK.ACQUIRE", "e", "o", "TTL", "10"]),
        WRONGTYPE
    );
    assert_eq!(cmd(&mut c, &["SET", "s", "v"]), Frame::ok());
    assert_eq!(err(&mut c, &["ELECT.LEADER", "s"]), WRONGTYPE);
    assert_eq!(cmd(&mut c, &["ELECT.LEADER", "missing"]), Frame::Null);
    assert_eq!(
        err(&mut c, &["ELECT.CAMPAIGN", "e", "c", "v", "WAIT", "10"]),
        "ERR ELECT.CAMPAIGN needs TTL ms or SESSION sid"
    );
    assert_eq!(
        err(
            &mut c,
            &["ELECT.CAMPAIGN", "e", "c", "v", "TTL", "10", "SHARED"]
        ),
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut c, &["ELECT.PROCLAIM", "e", "-1", "v"]),
        "ERR term is not a non-negative integer"
    );
}

/// Observers (RESP2 through the channel, RESP3 as pushes) see every change in order;
/// a session's expiry ends leadership and wakes the waiting campaigner, and terms keep
/// increasing across many candidates taking turns.
#[test]
fn observers_see_every_change_and_session_expiry_hands_leadership_on() {
    let server = crate::start(&[]);
    let port = server.port();
    let mut c = client(port);
    let (_, t0) = campaign(&mut c, &["e", "first", "v0", "TTL", "60000"]);
    let mut o2 = client(port);
    match cmd(&mut o2, &["ELECT.OBSERVE", "e"]) {
        Frame::Array(v) => assert_eq!(
            v,
            vec![bulk("subscribe"), bulk("__elect@0__:e"), Frame::Integer(1)]
        ),
        other => panic!("{other:?}"),
    }
    // The current leader comes first.
    assert_eq!(
        message(&mut o2),
        ("__elect@0__:e".into(), format!("leader {t0} 5:first v0"))
    );
    // RESP2: subscribed mode; ELECT.OBSERVE is allowed there.
    assert!(err(&mut o2, &["GET", "x"]).starts_with("ERR Can't execute 'get'"));
    let mut o3 = client(port);
    assert!(matches!(cmd(&mut o3, &["HELLO", "3"]), Frame::Map(_)));
    assert!(matches!(
        cmd(&mut o3, &["ELECT.OBSERVE", "e"]),
        Frame::Push(_)
    ));
    let _ = message(&mut o3);
    // RESP3: other commands still run.
    assert_eq!(cmd(&mut o3, &["PING"]), Frame::Simple("PONG".into()));

    assert_eq!(int(&mut c, &["ELECT.RESIGN", "e", &t0.to_string()]), 1);
    // A session leader; a campaigner waits behind it.
    let sid = int(&mut c, &["SESSION.OPEN", "300"]).to_string();
    let (won, t1) = campaign(&mut c, &["e", "s", "vs", "SESSION", &sid]);
    assert_eq!(won, 1);
    let waiter = std::thread::spawn(move || {
        let mut w = client(port);
        campaign(&mut w, &["e", "w", "vw", "TTL", "60000", "WAIT", "20000"])
    });
    // The session is kept alive until the campaigner waits, then left to expire.
    eventually("the campaigner waits", || {
        assert_eq!(int(&mut c, &["SESSION.KEEPALIVE", &sid]), 300);
        let info = cmd(&mut c, &["INFO", "clients"]);
        let Frame::Bulk(text) = info else {
            panic!("{info:?}")
        };
        String::from_utf8_lossy(&text).contains("blocked_clients:1")
    });
    let (won, t2) = waiter.join().expect("waiter");
    assert_eq!(won, 1, "the session's expiry handed leadership on");
    assert!(t2 > t1 && t1 > t0);
    assert_eq!(
        int(&mut c, &["ELECT.PROCLAIM", "e", &t2.to_string(), "vw2"]),
        1
    );
    // Many candidates taking turns: each wins once, with a higher term every time.
    let mut handles = Vec::new();
    for i in 0..8 {
        handles.push(std::thread::spawn(move || {
            let mut x = client(port);
            let name = format!("n{i}");
            let (won, term) = campaign(&mut x, &["e", &name, "v", "TTL", "60000", "WAIT", "30000"]);
            assert_eq!(won, 1);
            assert_eq!(int(&mut x, &["ELECT.RESIGN", "e", &term.to_string()]), 1);
        }));
    }
    assert_eq!(int(&mut c, &["ELECT.RESIGN", "e", &t2.to_string()]), 1);
    for h in handles {
        h.join().expect("candidate");
    }
    // Both observers saw the same changes, in order: each term elected once, ended
    // before the next began, terms increasing.
    let expect_events = 2 + 4 + 2 * 8;
    for o in [&mut o2, &mut o3] {
        let mut events = Vec::new();
        for _ in 0..expect_events {
            let (ch, m) = message(o);
            assert_eq!(ch, "__elect@0__:e");
            let mut p = m.splitn(3, ' ');
            let event = p.next().expect("event").to_string();
            let term: i64 = p.next().expect("term").parse().expect("term");
            events.push((event, term));
        }
        assert_eq!(events[0], ("resigned".into(), t0));
        assert_eq!(events[1], ("elected".into(), t1));
        assert_eq!(events[2], ("expired".into(), t1));
        assert_eq!(events[3], ("elected".into(), t2));
        assert_eq!(events[4], ("proclaimed".into(), t2));
        assert_eq!(events[5], ("resigned".into(), t2));
        let mut last = t2;
        for pair in events[6..].chunks(2) {
            assert_eq!(pair[0].0, "elected", "{events:?}");
            assert!(pair[0].1 > last, "terms increase: {events:?}");
            assert_eq!(pair[1], ("resigned".into(), pair[0].1), "{events:?}");
            last = pair[0].1;
        }
    }
}

fn grants(f: Frame) -> Option<Vec<(String, i64, i64)>> {
    match f {
        Frame::Array(v) => Some(v.into_iter().map(|g| grant(g).expect("grant")).collect()),
        Frame::NullArray => None,
        other => panic!("bad LOCK.MACQUIRE reply {other:?}"),
    }
}

#[test]
fn macquire_takes_all_locks_or_none() {
    let server = crate::start(&[]);
    let port = server.port();
    let mut c = client(port);
    let (k2tok, _, _) = acquire(&mut c, &["k2", "other", "TTL", "60000"]).expect("k2");
    // One busy key: nothing is taken, nothing is created.
    let args = ["LOCK.MACQUIRE", "3", "k1", "k2", "k3", "me", "TTL", "60000"];
    assert_eq!(grants(cmd(&mut c, &args)), None);
    assert_eq!(int(&mut c, &["EXISTS", "k1", "k3"]), 0);
    assert_eq!(int(&mut c, &["LOCK.RELEASE", "k2", &k2tok]), 1);
    let got = grants(cmd(&mut c, &args)).expect("all free");
    assert_eq!(got.len(), 3);
    assert!(got[0].1 < got[1].1 && got[1].1 < got[2].1, "{got:?}");
    for (key, g) in ["k1", "k2", "k3"].iter().zip(&got) {
        let info = cmd(&mut c, &["LOCK.INFO", key]);
        assert_eq!(field(&info, "fence"), Frame::Integer(g.1));
        assert_eq!(field(&info, "mode"), bulk("exclusive"));
    }
    // A retry returns the same grants.
    let again = grants(cmd(&mut c, &args)).expect("retry");
    assert_eq!(
        again.iter().map(|g| (&g.0, g.1)).collect::<Vec<_>>(),
        got.iter().map(|g| (&g.0, g.1)).collect::<Vec<_>>()
    );
    // WAIT: woken when the last busy key frees.
    assert_eq!(int(&mut c, &["LOCK.RELEASE", "k1", &got[0].0]), 1);
    assert_eq!(int(&mut c, &["LOCK.RELEASE", "k2", &got[1].0]), 1);
    let waiter = std::thread::spawn(move || {
        let mut w = client(port);
        grants(cmd(
            &mut w,
            &[
                "LOCK.MACQUIRE",
                "2",
                "k1",
                "k3",
                "w",
                "TTL",
                "60000",
                "WAIT",
                "20000",
            ],
        ))
    });
    eventually("the waiter blocks", || {
        let Frame::Bulk(text) = cmd(&mut c, &["INFO", "clients"]) else {
            panic!("INFO")
        };
        String::from_utf8_lossy(&text).contains("blocked_clients:1")
    });
    assert_eq!(int(&mut c, &["LOCK.RELEASE", "k3", &got[2].0]), 1);
    let w = waiter
        .join()
        .expect("waiter")
        .expect("granted after the release");
    assert!(w[0].1 > got[2].1 && w[1].1 > w[0].1);
    // Limits and errors.
    assert_eq!(
        err(&mut c, &["LOCK.MACQUIRE", "0", "o", "TTL", "10"]),
        "ERR the number of keys must be between 1 and 64"
    );
    let mut many: Vec<String> = vec!["LOCK.MACQUIRE".into(), "65".into()];
    many.extend((0..65).map(|i| format!("m{i}")));
    many.extend(["o".into(), "TTL".into(), "10000".into()]);
    let many_ref: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
    assert_eq!(
        err(&mut c, &many_ref),
        "ERR the number of keys must be between 1 and 64"
    );
    many[1] = "64".into();
    many.remove(66);
    let many_ref: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
    assert_eq!(grants(cmd(&mut c, &many_ref)).expect("64 keys").len(), 64);
    assert_eq!(
        err(&mut c, &["LOCK.MACQUIRE", "2", "a", "a", "o", "TTL", "10"]),
        "ERR LOCK.MACQUIRE names a key twice"
    );
    assert_eq!(
        err(&mut c, &["LOCK.MACQUIRE", "3", "a", "b", "o"]),
        "ERR syntax error"
    );
    assert_eq!(cmd(&mut c, &["SET", "str", "v"]), Frame::ok());
    assert_eq!(
        err(
            &mut c,
            &["LOCK.MACQUIRE", "2", "fresh", "str", "o", "TTL", "10"]
        ),
        WRONGTYPE
    );
    assert_eq!(int(&mut c, &["EXISTS", "fresh"]), 0);
    assert_eq!(
        cmd(
            &mut c,
            &[
                "COMMAND",
                "GETKEYS",
                "LOCK.MACQUIRE",
                "2",
                "x",
                "y",
                "o",
                "TTL",
                "1"
            ]
        ),
        Frame::Array(vec![bulk("x"), bulk("y")])
    );
}

/// Clients taking overlapping pairs of locks in different orders never deadlock, and
/// while one holds a pair nobody else writes under either lock.
#[test]
fn macquire_is_atomic_under_contention() {
    let server = crate::start(&[]);
    let port = server.port();
    let pairs = [["a", "b"], ["b", "c"], ["c", "a"], ["b", "a"]];
    let mut handles = Vec::new();
    for (i, pair) in pairs.iter().enumerate() {
        let pair = *pair;
        handles.push(std::thread::spawn(move || {
            let mut c = client(port);
            let me = format!("t{i}");
            for _ in 0..25 {
                let args = [
                    "LOCK.MACQUIRE",
                    "2",
                    pair[0],
                    pair[1],
                    &me,
                    "TTL",
                    "60000",
                    "WAIT",
                    "30000",
                ];
                let got = grants(cmd(&mut c, &args)).expect("granted within the wait");
                for k in pair {
                    assert_eq!(
                        cmd(&mut c, &["SET", &format!("owner:{k}"), &me]),
                        Frame::ok()
                    );
                }
                for k in pair {
                    assert_eq!(cmd(&mut c, &["GET", &format!("owner:{k}")]), bulk(&me));
                }
                for (k, g) in pair.iter().zip(&got) {
                    assert_eq!(int(&mut c, &["LOCK.RELEASE", k, &g.0]), 1);
                }
            }
        }));
    }
    for h in handles {
        h.join().expect("client");
    }
}

/// Every change to a lock, semaphore, election or session counts toward
/// `rdb_changes_since_last_save` (so save points see it); a busy or unknown request counts
/// nothing.
#[test]
fn coordination_changes_count_toward_save_points() {
    let server = crate::start(&[]);
    let mut c = client(server.port());
    let changes = |c: &mut RawClient| -> i64 {
        crate::rdb::info_field(c, "rdb_changes_since_last_save")
            .parse()
            .expect("count")
    };
    let (tok, _, _) = acquire(&mut c, &["k", "a", "TTL", "60000", "REENTRANT"]).expect("a");
    let mut last = changes(&mut c);
    let mut step = |c: &mut RawClient, args: &[&str], want: i64| {
        let _ = cmd(c, args);
        let now = changes(c);
        assert_eq!(now - last, want, "{args:?}");
        last = now;
    };
    step(
        &mut c,
        &["LOCK.ACQUIRE", "k", "a", "TTL", "60000", "REENTRANT"],
        1,
    );
    step(&mut c, &["LOCK.ACQUIRE", "k", "b", "TTL", "60000"], 0);
    step(&mut c, &["LOCK.RENEW", "k", &tok, "60000"], 1);
    step(&mut c, &["LOCK.RENEW", "k", "nope", "60000"], 0);
    step(&mut c, &["LOCK.RELEASE", "k", &tok], 1);
    step(&mut c, &["LOCK.RELEASE", "k", &tok], 1);
    step(&mut c, &["LOCK.RELEASE", "k", &tok], 0);
    step(&mut c, &["SESSION.OPEN", "60000"], 1);
    step(&mut c, &["SESSION.KEEPALIVE", "1"], 0);
    step(
        &mut c,
        &["ELECT.CAMPAIGN", "e", "x", "v", "SESSION", "1"],
        1,
    );
    step(&mut c, &["SESSION.CLOSE", "1"], 2);
    step(
        &mut c,
        &["LOCK.MACQUIRE", "2", "m1", "m2", "o", "TTL", "60000"],
        1,
    );
}

/// A TTL leader whose lease passes while nobody touches the election is reported by
/// the cron.
#[test]
fn a_lapsed_ttl_leadership_is_published() {
    let server = crate::start(&[]);
    let mut c = client(server.port());
    let mut o = client(server.port());
    assert!(matches!(
        cmd(&mut o, &["ELECT.OBSERVE", "e"]),
        Frame::Array(_)
    ));
    let (won, t) = campaign(&mut c, &["e", "a", "v", "TTL", "150"]);
    assert_eq!(won, 1);
    assert_eq!(message(&mut o).1, format!("elected {t} 1:a v"));
    assert_eq!(message(&mut o).1, format!("expired {t} 1:a v"));
    assert_eq!(cmd(&mut c, &["ELECT.LEADER", "e"]), Frame::Null);
}

/// `coord-max-sessions` bounds the sessions open at once, at its boundary.
#[test]
fn max_sessions_bounds_open_sessions() {
    let server = crate::start(&["--coord-max-sessions", "2"]);
    let mut c = client(server.port());
    let a = int(&mut c, &["SESSION.OPEN", "60000"]).to_string();
    let _b = int(&mut c, &["SESSION.OPEN", "60000"]);
    assert_eq!(
        err(&mut c, &["SESSION.OPEN", "60000"]),
        "ERR too many sessions (coord-max-sessions is 2)"
    );
    assert_eq!(int(&mut c, &["SESSION.CLOSE", &a]), 0);
    let _c = int(&mut c, &["SESSION.OPEN", "60000"]);
    assert_eq!(
        cmd(&mut c, &["CONFIG", "SET", "coord-max-sessions", "3"]),
        Frame::ok()
    );
    let _d = int(&mut c, &["SESSION.OPEN", "60000"]);
    assert_eq!(
        err(&mut c, &["SESSION.OPEN", "60000"]),
        "ERR too many sessions (coord-max-sessions is 3)"
    );
    assert!(err(&mut c, &["CONFIG", "SET", "coord-max-sessions", "0"]).starts_with("ERR"));
}

/// DEL of a held lock frees it: its waiter is woken at once and gets a higher fence.
#[test]
fn deleting_a_held_lock_wakes_its_waiter() {
    let server = crate::start(&[]);
    let port = server.port();
    let mut c = client(port);
    let (_, f1, _) = acquire(&mut c, &["k", "a", "TTL", "600000"]).expect("a");
    let waiter = std::thread::spawn(move || {
        let mut w = client(port);
        acquire(&mut w, &["k", "b", "TTL", "60000", "WAIT", "20000"])
    });
    eventually("the waiter blocks", || {
        let Frame::Bulk(text) = cmd(&mut c, &["INFO", "clients"]) else {
            panic!("INFO")
        };
        String::from_utf8_lossy(&text).contains("blocked_clients:1")
    });
    assert_eq!(int(&mut c, &["DEL", "k"]), 1);
    let (_, f2, _) = waiter
        .join()
        .expect("waiter")
        .expect("granted after the DEL");
    assert!(f2 > f1);
}

/// The keys a SESSION.INFO reply lists (in the current database).
fn session_locks(c: &mut RawClient, sid: &str) -> Vec<String> {
    let info = cmd(c, &["SESSION.INFO", sid]);
    let Frame::Array(v) = field(&info, "locks") else {
        panic!("locks: {info:?}")
    };
    let mut keys: Vec<String> = v
        .iter()
        .map(|k| match k {
            Frame::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("key {other:?}"),
        })
        .collect();
    keys.sort();
    keys
}

fn mode(c: &mut RawClient, key: &str) -> Frame {
    field(&cmd(c, &["LOCK.INFO", key]), "mode")
}

/// A session releases exactly the grants it holds wherever RENAME, MOVE and SWAPDB put
/// them, and never touches a key that no longer holds its grant (a new lock under the
/// old name, a key RESTOREd over, a flushed database). COPY refuses a held lock and
/// copies a free one without holders; a client's RESTORE keeps no session grant.
#[test]
fn sessions_follow_their_locks_when_keys_move() {
    let server = crate::start(&[]);
    let mut c = client(server.port());
    let sid = int(&mut c, &["SESSION.OPEN", "600000"]).to_string();
    for k in ["a", "b", "c", "d", "e"] {
        assert!(acquire(&mut c, &[k, "o", "SESSION", &sid]).is_some(), "{k}");
    }
    assert_eq!(
        campaign(&mut c, &["el", "o", "v", "SESSION", &sid]).0,
        1,
        "leads"
    );
    assert_eq!(cmd(&mut c, &["SELECT", "3"]), Frame::ok());
    assert!(acquire(&mut c, &["s", "o", "SESSION", &sid]).is_some());
    assert_eq!(cmd(&mut c, &["SELECT", "5"]), Frame::ok());
    assert!(acquire(&mut c, &["f", "o", "SESSION", &sid]).is_some());
    assert_eq!(cmd(&mut c, &["FLUSHDB"]), Frame::ok());
    assert_eq!(session_locks(&mut c, &sid), Vec::<String>::new());
    assert_eq!(cmd(&mut c, &["SELECT", "0"]), Frame::ok());

    // RENAME, then a new lock under the old name held by someone else.
    assert_eq!(cmd(&mut c, &["RENAME", "a", "a2"]), Frame::ok());
    assert!(acquire(&mut c, &["a", "x", "TTL", "600000"]).is_some());
    // RENAME onto a key the session holds: that grant is gone with the old value.
    assert_eq!(cmd(&mut c, &["RENAME", "e", "c"]), Frame::ok());
    assert_eq!(cmd(&mut c, &["MOVE", "b", "1"]), Frame::Integer(1));
    assert_eq!(cmd(&mut c, &["SWAPDB", "3", "4"]), Frame::ok());
    assert_eq!(cmd(&mut c, &["RENAME", "el", "el2"]), Frame::ok());
    // RESTORE over a held lock: the session's grant there is gone; a new holder takes it.
    let Frame::Bulk(payload) = cmd(&mut c, &["DUMP", "a2"]) else {
        panic!("DUMP")
    };
    assert_eq!(cmd(&mut c, &["SET", "str", "v"]), Frame::ok());
    let Frame::Bulk(strdump) = cmd(&mut c, &["DUMP", "str"]) else {
        panic!("DUMP")
    };
    let mut raw = |args: &[&[u8]]| c.cmd_frame(args).expect("reply");
    assert_eq!(
        raw(&[b"RESTORE", b"d", b"0", &strdump, b"REPLACE"]),
        Frame::ok()
    );
    // A client's RESTORE of a held lock's DUMP keeps no session grant: not held twice.
    assert_eq!(raw(&[b"RESTORE", b"a3", b"0", &payload]), Frame::ok());
    assert_eq!(mode(&mut c, "a3"), bulk("free"));
    assert_eq!(int(&mut c, &["DEL", "d"]), 1);
    assert!(acquire(&mut c, &["d", "y", "TTL", "600000"]).is_some());
    // COPY: refused while held, a holder-less copy (same fence) when free.
    assert_eq!(
        err(&mut c, &["COPY", "a2", "copy"]),
        "ERR module key failed to copy"
    );
    assert_eq!(int(&mut c, &["EXISTS", "copy"]), 0);
    // As Redis: an existing destination without REPLACE answers 0 before the copy is tried.
    assert_eq!(int(&mut c, &["COPY", "a2", "c"]), 0);
    let (tok, ft, _) = acquire(&mut c, &["t", "o", "TTL", "600000"]).expect("t");
    assert_eq!(int(&mut c, &["LOCK.RELEASE", "t", &tok]), 1);
    assert_eq!(int(&mut c, &["COPY", "t", "t2"]), 1);
    let info = cmd(&mut c, &["LOCK.INFO", "t2"]);
    assert_eq!(field(&info, "fence"), Frame::Integer(ft));
    assert_eq!(field(&info, "mode"), bulk("free"));

    assert_eq!(session_locks(&mut c, &sid), ["a2", "c", "el2"]);
    // a2, c (e's grant), b in db 1, s in db 4, the leadership of el2.
    assert_eq!(int(&mut c, &["SESSION.CLOSE", &sid]), 5);
    assert_eq!(mode(&mut c, "a2"), bulk("free"));
    assert_eq!(mode(&mut c, "c"), bulk("free"));
    assert_eq!(cmd(&mut c, &["ELECT.LEADER", "el2"]), Frame::Null);
    // The keys that hold others' grants now are untouched.
    assert_eq!(mode(&mut c, "a"), bulk("exclusive"));
    assert_eq!(mode(&mut c, "d"), bulk("exclusive"));
    assert_eq!(cmd(&mut c, &["SELECT", "1"]), Frame::ok());
    assert_eq!(mode(&mut c, "b"), bulk("free"));
    assert_eq!(cmd(&mut c, &["SELECT", "4"]), Frame::ok());
    assert_eq!(mode(&mut c, "s"), bulk("free"));
}

/// A session that expires releases (here: deletes, ONEXPIRE DELETE) the lock under its
/// new name, and leaves alone the lock now under the old name.
#[test]
fn an_expiring_session_finds_its_renamed_lock() {
    let server = crate::start(&[]);
    let mut c = client(server.port());
    let sid = int(&mut c, &["SESSION.OPEN", "300", "ONEXPIRE", "DELETE"]).to_string();
    assert!(acquire(&mut c, &["k", "o", "SESSION", &sid]).is_some());
    assert_eq!(cmd(&mut c, &["RENAME", "k", "k2"]), Frame::ok());
    assert!(acquire(&mut c, &["k", "x", "TTL", "600000"]).is_some());
    eventually("the session expired", || {
        int(&mut c, &["EXISTS", "k2"]) == 0
    });
    assert_eq!(mode(&mut c, "k"), bulk("exclusive"));
}

/// After RENAME, MOVE and SWAPDB, a restart from the RDB and from the AOF (both base
/// forms, before and after a rewrite) still has the session holding its locks where they
/// now live, and SESSION.CLOSE releases them there.
#[test]
fn moved_session_locks_survive_restarts() {
    let moves = |c: &mut RawClient, sid: &str, p: &str| {
        for k in ["a", "b", "s"] {
            let key = format!("{p}{k}");
            assert!(acquire(c, &[&key, "o", "SESSION", sid]).is_some());
        }
        assert_eq!(
            cmd(c, &["RENAME", &format!("{p}a"), &format!("{p}a2")]),
            Frame::ok()
        );
        assert_eq!(cmd(c, &["MOVE", &format!("{p}b"), "1"]), Frame::Integer(1));
        assert_eq!(cmd(c, &["MOVE", &format!("{p}s"), "2"]), Frame::Integer(1));
    };
    let check = |c: &mut RawClient, sid: &str, prefixes: &[&str]| {
        assert_eq!(int(c, &["SESSION.CLOSE", sid]), 3 * prefixes.len() as i64);
        for p in prefixes {
            assert_eq!(cmd(c, &["SELECT", "0"]), Frame::ok());
            assert_eq!(mode(c, &format!("{p}a2")), bulk("free"));
            assert_eq!(cmd(c, &["SELECT", "1"]), Frame::ok());
            assert_eq!(mode(c, &format!("{p}b")), bulk("free"));
            // SWAPDB 2 3 put s in db 3.
            assert_eq!(cmd(c, &["SELECT", "3"]), Frame::ok());
            assert_eq!(mode(c, &format!("{p}s")), bulk("free"));
        }
        assert_eq!(cmd(c, &["SELECT", "0"]), Frame::ok());
    };
    // RDB.
    let dir = crate::rdb::scratch("coord-moves-rdb");
    let args = ["--save", ""];
    let mut s = crate::rdb::start_in(&dir, &args);
    let mut c = client(s.port());
    let sid = int(&mut c, &["SESSION.OPEN", "600000"]).to_string();
    moves(&mut c, &sid, "");
    assert_eq!(cmd(&mut c, &["SWAPDB", "2", "3"]), Frame::ok());
    assert_eq!(cmd(&mut c, &["SAVE"]), Frame::ok());
    s.stop().expect("stop");
    let s2 = crate::rdb::start_in(&dir, &args);
    let mut c = client(s2.port());
    check(&mut c, &sid, &[""]);
    drop(s2);
    let _ = std::fs::remove_dir_all(&dir);
    // AOF: moves before the rewrite (in the base) and after it (replayed).
    for preamble in ["yes", "no"] {
        let dir = crate::rdb::scratch(&format!("coord-moves-aof-{preamble}"));
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
        let sid = int(&mut c, &["SESSION.OPEN", "600000"]).to_string();
        moves(&mut c, &sid, "x");
        assert_eq!(
            cmd(&mut c, &["BGREWRITEAOF"]),
            Frame::Simple("Background append only file rewriting started".into())
        );
        wait_rewrite(&mut c);
        moves(&mut c, &sid, "y");
        assert_eq!(cmd(&mut c, &["SWAPDB", "2", "3"]), Frame::ok());
        // A client's RESTORE of a session-held lock keeps no session grant, also when
        // the AOF is replayed.
        let Frame::Bulk(payload) = cmd(&mut c, &["DUMP", "ya2"]) else {
            panic!("DUMP")
        };
        assert_eq!(
            c.cmd_frame(&[b"RESTORE", b"copy", b"0", &payload])
                .expect("reply"),
            Frame::ok()
        );
        s.stop().expect("stop");
        let s2 = crate::rdb::start_in(&dir, &args);
        let mut c = client(s2.port());
        assert_eq!(mode(&mut c, "copy"), bulk("free"));
        check(&mut c, &sid, &["x", "y"]);
        drop(s2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// FENCE.RESTORE takes fences up to 2^63 - 2, the last fence a grant may take; past it
/// is an error, and once the counter is there grants are refused instead of handing out
/// a fence a reply cannot carry.
#[test]
fn fences_stop_at_the_last_one_a_reply_can_carry() {
    let server = crate::start(&[]);
    let mut c = client(server.port());
    assert_eq!(
        err(&mut c, &["FENCE.RESTORE", "9223372036854775807"]),
        "ERR fence must be between 0 and 9223372036854775806"
    );
    assert_eq!(
        err(&mut c, &["FENCE.RESTORE", "99999999999999999999"]),
        "ERR fence must be between 0 and 9223372036854775806"
    );
    assert_eq!(
        err(&mut c, &["FENCE.RESTORE", "-1"]),
        "ERR fence is not a non-negative integer"
    );
    assert_eq!(
        cmd(&mut c, &["FENCE.RESTORE", "9223372036854775805"]),
        Frame::ok()
    );
    let (_, f, _) = acquire(&mut c, &["k", "a", "TTL", "600000"]).expect("granted");
    assert_eq!(f, 9223372036854775806);
    // An idempotent retry takes no new fence.
    assert_eq!(
        acquire(&mut c, &["k", "a", "TTL", "600000"]).map(|g| g.1),
        Some(f)
    );
    let none = "ERR no fence left (the last fence is 9223372036854775806)";
    assert_eq!(
        err(&mut c, &["LOCK.ACQUIRE", "k2", "b", "TTL", "1000"]),
        none
    );
    assert_eq!(int(&mut c, &["EXISTS", "k2"]), 0, "nothing created");
    assert_eq!(
        err(&mut c, &["SEM.ACQUIRE", "sem", "2", "b", "TTL", "1000"]),
        none
    );
    assert_eq!(
        err(&mut c, &["ELECT.CAMPAIGN", "el", "b", "v", "TTL", "1000"]),
        none
    );
    assert_eq!(
        err(
            &mut c,
            &["LOCK.MACQUIRE", "2", "m1", "m2", "b", "TTL", "1000"]
        ),
        none
    );
    assert_eq!(int(&mut c, &["EXISTS", "m1", "m2", "sem", "el"]), 0);
    assert_eq!(
        cmd(&mut c, &["FENCE.RESTORE", "9223372036854775806"]),
        Frame::ok()
    );
    assert_eq!(int(&mut c, &["FENCE.CHECK", "k", &f.to_string()]), 1);
}

/// LOCK.MACQUIRE with SHARED takes read grants beside other readers, with REENTRANT
/// nests; FAIR is a syntax error.
#[test]
fn macquire_takes_shared_and_reentrant_grants() {
    let server = crate::start(&[]);
    let mut c = client(server.port());
    assert!(acquire(&mut c, &["r1", "reader", "TTL", "600000", "SHARED"]).is_some());
    let m = grants(cmd(
        &mut c,
        &[
            "LOCK.MACQUIRE",
            "2",
            "r1",
            "r2",
            "o",
            "TTL",
            "600000",
            "SHARED",
        ],
    ))
    .expect("readers together");
    assert_eq!(mode(&mut c, "r1"), bulk("shared"));
    assert_eq!(mode(&mut c, "r2"), bulk("shared"));
    // A writer cannot take r2 while o reads it; o asking exclusive is a mode conflict.
    assert_eq!(acquire(&mut c, &["r2", "w", "TTL", "1000"]), None);
    assert_eq!(
        err(&mut c, &["LOCK.MACQUIRE", "1", "r2", "o", "TTL", "1000"]),
        "ERR owner already holds this lock in the other mode"
    );
    // REENTRANT nests on every key: two releases each.
    let args = [
        "LOCK.MACQUIRE",
        "2",
        "x1",
        "x2",
        "n",
        "TTL",
        "600000",
        "REENTRANT",
    ];
    let first = grants(cmd(&mut c, &args)).expect("x");
    let second = grants(cmd(&mut c, &args)).expect("nested");
    let same =
        |g: &Vec<(String, i64, i64)>| g.iter().map(|x| (x.0.clone(), x.1)).collect::<Vec<_>>();
    assert_eq!(same(&first), same(&second), "the same grants, nested");
    for (key, g) in ["x1", "x2"].iter().zip(&first) {
        let info = cmd(&mut c, &["LOCK.INFO", key]);
        let Frame::Array(h) = field(&info, "holders") else {
            panic!("holders")
        };
        assert_eq!(field(&h[0], "count"), Frame::Integer(2));
        assert_eq!(int(&mut c, &["LOCK.RELEASE", key, &g.0]), 1);
        assert_eq!(mode(&mut c, key), bulk("exclusive"));
        assert_eq!(int(&mut c, &["LOCK.RELEASE", key, &g.0]), 1);
        assert_eq!(mode(&mut c, key), bulk("free"));
    }
    assert_eq!(m.len(), 2);
    assert_eq!(
        err(
            &mut c,
            &["LOCK.MACQUIRE", "1", "z", "o", "TTL", "1000", "FAIR"]
        ),
        "ERR syntax error"
    );
}

/// ELECT.INFO: the highest term, the leader, waiting campaigners and observers.
#[test]
fn elect_info_reports_leader_candidates_and_observers() {
    let server = crate::start(&[]);
    let port = server.port();
    let mut c = client(port);
    // Nothing yet: term 0, no leader.
    let info = cmd(&mut c, &["ELECT.INFO", "e"]);
    assert_eq!(field(&info, "term"), Frame::Integer(0));
    assert_eq!(field(&info, "leader"), Frame::Null);
    assert_eq!(field(&info, "candidates"), Frame::Integer(0));
    assert_eq!(field(&info, "observers"), Frame::Integer(0));
    let (_, term) = campaign(&mut c, &["e", "c1", "addr1", "TTL", "600000"]);
    let mut obs = client(port);
    let Frame::Array(_) = cmd(&mut obs, &["ELECT.OBSERVE", "e"]) else {
        panic!("observe")
    };
    let waiter = std::thread::spawn(move || {
        let mut w = client(port);
        campaign(
            &mut w,
            &["e", "c2", "addr2", "TTL", "600000", "WAIT", "20000"],
        )
    });
    eventually("the campaigner waits", || {
        field(&cmd(&mut c, &["ELECT.INFO", "e"]), "candidates") == Frame::Integer(1)
    });
    let info = cmd(&mut c, &["ELECT.INFO", "e"]);
    assert_eq!(field(&info, "term"), Frame::Integer(term));
    assert_eq!(field(&info, "observers"), Frame::Integer(1));
    let leader = field(&info, "leader");
    assert_eq!(field(&leader, "candidate"), bulk("c1"));
    assert_eq!(field(&leader, "value"), bulk("addr1"));
    assert_eq!(field(&leader, "term"), Frame::Integer(term));
    assert_eq!(field(&leader, "session"), Frame::Integer(0));
    assert!(matches!(field(&leader, "ttl"), Frame::Integer(t) if t > 0 && t <= 600000));
    assert_eq!(int(&mut c, &["ELECT.RESIGN", "e", &term.to_string()]), 1);
    let (won, t2) = waiter.join().expect("waiter");
    assert_eq!(won, 1);
    let info = cmd(&mut c, &["ELECT.INFO", "e"]);
    assert_eq!(field(&info, "term"), Frame::Integer(t2));
    assert_eq!(field(&info, "candidates"), Frame::Integer(0));
    assert_eq!(field(&field(&info, "leader"), "candidate"), bulk("c2"));
    assert_eq!(cmd(&mut c, &["SET", "str", "v"]), Frame::ok());
    assert_eq!(err(&mut c, &["ELECT.INFO", "str"]), WRONGTYPE);
    assert!(acquire(&mut c, &["l", "o", "TTL", "1000"]).is_some());
    assert_eq!(err(&mut c, &["ELECT.INFO", "l"]), WRONGTYPE);
}

/// A TTL leadership whose election was renamed, or swapped into another database, is
/// still reported by the cron when its lease lapses, on the channel of its new place.
#[test]
fn a_moved_election_still_reports_its_lapsed_leader() {
    let server = crate::start(&[]);
    let mut c = client(server.port());
    let mut o = client(server.port());
    assert!(matches!(
        cmd(&mut o, &["ELECT.OBSERVE", "e2"]),
        Frame::Array(_)
    ));
    let (won, t) = campaign(&mut c, &["e", "a", "v", "TTL", "300"]);
    assert_eq!(won, 1);
    assert_eq!(cmd(&mut c, &["RENAME", "e", "e2"]), Frame::ok());
    // Nobody touches e2: only the cron can report the end of the lease.
    assert_eq!(
        message(&mut o),
        ("__elect@0__:e2".into(), format!("expired {t} 1:a v"))
    );
    let mut o1 = client(server.port());
    assert_eq!(cmd(&mut o1, &["SELECT", "1"]), Frame::ok());
    assert!(matches!(
        cmd(&mut o1, &["ELECT.OBSERVE", "f"]),
        Frame::Array(_)
    ));
    let (_, t2) = campaign(&mut c, &["f", "b", "w", "TTL", "300"]);
    assert_eq!(cmd(&mut c, &["SWAPDB", "0", "1"]), Frame::ok());
    assert_eq!(
        message(&mut o1),
        ("__elect@1__:f".into(), format!("expired {t2} 1:b w"))
    );
}
