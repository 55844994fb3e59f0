//! Blocking list pops against a real server: FIFO service among clients blocked on one
//! key, timeouts, wake-ups by every kind of write that can fill a list, disconnects and
//! CLIENT UNBLOCK. These need several connections at once, which golden sequences cannot
//! express.

use crate::waiting::{client, reply, send, wait_blocked};
use basalt_testkit::RawClient;

fn cmd(c: &mut RawClient, line: &str) -> Vec<u8> {
    c.cmd_line(line).expect("command")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn waiters_on_one_key_are_served_in_arrival_order() {
    let server = crate::start(&[]);
    let mut ctl = client(&server);
    let mut waiters: Vec<RawClient> = (0..4).map(|_| client(&server)).collect();
    for (i, w) in waiters.iter_mut().enumerate() {
        send(w, "BLPOP q 0");
        wait_blocked(&mut ctl, i + 1);
    }
    // Three elements for four waiters: the first three get one each, in order.
    assert_eq!(text(&cmd(&mut ctl, "RPUSH q a b c")), ":3\r\n");
    assert_eq!(reply(&mut waiters[0]), "*2\r\n$1\r\nq\r\n$1\r\na\r\n");
    assert_eq!(reply(&mut waiters[1]), "*2\r\n$1\r\nq\r\n$1\r\nb\r\n");
    assert_eq!(reply(&mut waiters[2]), "*2\r\n$1\r\nq\r\n$1\r\nc\r\n");
    wait_blocked(&mut ctl, 1);
    assert!(!waiters[3].has_pending());
    assert_eq!(text(&cmd(&mut ctl, "EXISTS q")), ":0\r\n");
    assert_eq!(text(&cmd(&mut ctl, "LPUSH q d")), ":1\r\n");
    assert_eq!(reply(&mut waiters[3]), "*2\r\n$1\r\nq\r\n$1\r\nd\r\n");
    wait_blocked(&mut ctl, 0);
    // Every waiter's connection keeps working afterwards.
    for w in waiters.iter_mut() {
        assert_eq!(text(&cmd(w, "PING")), "+PONG\r\n");
    }
}

#[test]
fn a_waiter_on_several_keys_takes_from_the_key_that_woke_it() {
    crate::waiting::waiter_on_two_keys_takes_from_the_key_that_woke_it(
        &crate::start(&[]),
        ["BLPOP k1 0", "BLPOP k1 k2 0"],
        ["LPUSH k1 x", "LPUSH k2 y"],
        [
            "*2\r\n$2\r\nk1\r\n$1\r\nx\r\n",
            "*2\r\n$2\r\nk2\r\n$1\r\ny\r\n",
        ],
    );
}

#[test]
fn timeouts_reply_null_arrays() {
    let server = crate::start(&[]);
    let mut c = client(&server);
    assert_eq!(text(&cmd(&mut c, "BLPOP nokey 0.05")), "*-1\r\n");
    assert_eq!(text(&cmd(&mut c, "BRPOP a b 0.05")), "*-1\r\n");
    // Redis 7.0 answers a timed-out BLMOVE/BRPOPLPUSH with a null array too.
    assert_eq!(text(&cmd(&mut c, "BLMOVE a b LEFT RIGHT 0.05")), "*-1\r\n");
    assert_eq!(text(&cmd(&mut c, "BRPOPLPUSH a b 0.05")), "*-1\r\n");
    assert_eq!(
        text(&cmd(&mut c, "BLMPOP 0.05 2 a b LEFT COUNT 3")),
        "*-1\r\n"
    );
    c.cmd_line("HELLO 3").expect("hello");
    assert_eq!(text(&cmd(&mut c, "BLPOP nokey 0.05")), "_\r\n");
    assert_eq!(text(&cmd(&mut c, "BLMOVE a b LEFT RIGHT 0.05")), "_\r\n");
    let mut ctl = client(&server);
    wait_blocked(&mut ctl, 0);
}

#[test]
fn every_kind_of_write_wakes_a_waiter() {
    let server = crate::start(&[]);
    let mut ctl = client(&server);
    let mut w = client(&server);
    // (setup, command that fills `k`, expected reply of the waiter's BLPOP k 0)
    let cases: &[(&[&str], &str, &str)] = &[
        (&[], "LPUSH k v1", "v1"),
        (&[], "RPUSH k v2 v3", "v2"),
        (&["RPUSH src v4"], "LMOVE src k LEFT LEFT", "v4"),
        (&["RPUSH src v5"], "RPOPLPUSH src k", "v5"),
        (&["RPUSH src v6"], "BLMOVE src k RIGHT RIGHT 0", "v6"),
        (&["RPUSH src v7"], "LMPOP 1 src LEFT", ""),
        (&["RPUSH tmp v8"], "RENAME tmp k", "v8"),
        (&["RPUSH tmp v9"], "COPY tmp k", "v9"),
    ];
    for (setup, write, want) in cases {
        cmd(&mut ctl, "DEL k src tmp");
        for s in *setup {
            cmd(&mut ctl, s);
        }
        if want.is_empty() {
            // A pop elsewhere must not wake the waiter: it stays blocked.
            send(&mut w, "BLPOP k 0.2");
            wait_blocked(&mut ctl, 1);
            cmd(&mut ctl, write);
            assert_eq!(reply(&mut w), "*-1\r\n", "after {write}");
            continue;
        }
        send(&mut w, "BLPOP k 0");
        wait_blocked(&mut ctl, 1);
        cmd(&mut ctl, write);
        let expected = format!("*2\r\n$1\r\nk\r\n${}\r\n{want}\r\n", want.len());
        assert_eq!(reply(&mut w), expected, "woken by {write}");
        wait_blocked(&mut ctl, 0);
    }
    // MOVE into the waiter's database and SWAPDB wake it too.
    cmd(&mut w, "SELECT 1");
    for (setup, write) in [("RPUSH k m1", "MOVE k 1"), ("RPUSH k m2", "SWAPDB 0 1")] {
        cmd(&mut ctl, "FLUSHALL");
        send(&mut w, "BLPOP k 0");
        wait_blocked(&mut ctl, 1);
        cmd(&mut ctl, setup);
        cmd(&mut ctl, write);
        let got = reply(&mut w);
        assert!(
            got.starts_with("*2\r\n$1\r\nk\r\n$2\r\nm"),
            "{write}: {got}"
        );
        wait_blocked(&mut ctl, 0);
    }
}

#[test]
fn blocking_moves_and_multi_pops_complete_when_woken() {
    let server = crate::start(&[]);
    let mut ctl = client(&server);
    let mut a = client(&server);
    let mut b = client(&server);
    let mut c = client(&server);
    send(&mut a, "BLMOVE src dst RIGHT LEFT 0");
    wait_blocked(&mut ctl, 1);
    send(&mut b, "BRPOPLPUSH src dst 0");
    wait_blocked(&mut ctl, 2);
    send(&mut c, "BLMPOP 0 2 other src LEFT COUNT 5");
    wait_blocked(&mut ctl, 3);
    cmd(&mut ctl, "RPUSH src x y");
    // FIFO on src: a moves y (from the right), b moves x, c finds src empty again.
    assert_eq!(reply(&mut a), "$1\r\ny\r\n");
    assert_eq!(reply(&mut b), "$1\r\nx\r\n");
    wait_blocked(&mut ctl, 1);
    assert_eq!(
        text(&cmd(&mut ctl, "LRANGE dst 0 -1")),
        "*2\r\n$1\r\nx\r\n$1\r\ny\r\n"
    );
    cmd(&mut ctl, "RPUSH src 1 2 3");
    assert_eq!(
        reply(&mut c),
        "*2\r\n$3\r\nsrc\r\n*3\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n"
    );
    assert_eq!(text(&cmd(&mut ctl, "EXISTS src")), ":0\r\n");
    wait_blocked(&mut ctl, 0);
}

#[test]
fn brpop_on_several_keys_wakes_on_any() {
    let server = crate::start(&[]);
    let mut ctl = client(&server);
    let mut w = client(&server);
    send(&mut w, "BRPOP k1 k2 k3 0");
    wait_blocked(&mut ctl, 1);
    cmd(&mut ctl, "RPUSH k3 a b");
    assert_eq!(reply(&mut w), "*2\r\n$2\r\nk3\r\n$1\r\nb\r\n");
    wait_blocked(&mut ctl, 0);
    assert_eq!(text(&cmd(&mut ctl, "LRANGE k3 0 -1")), "*1\r\n$1\r\na\r\n");
}

#[test]
fn a_disconnected_waiter_passes_its_turn_on() {
    let server = crate::start(&[]);
    let mut ctl = client(&server);
    let mut first = client(&server);
    let mut second = client(&server);
    send(&mut first, "BLPOP k 0");
    wait_blocked(&mut ctl, 1);
    send(&mut second, "BLPOP k 0");
    wait_blocked(&mut ctl, 2);
    drop(first);
    wait_blocked(&mut ctl, 1);
    cmd(&mut ctl, "RPUSH k v");
    assert_eq!(reply(&mut second), "*2\r\n$1\r\nk\r\n$1\r\nv\r\n");
    wait_blocked(&mut ctl, 0);
    // Nothing was lost to the disconnected client.
    assert_eq!(text(&cmd(&mut ctl, "EXISTS k")), ":0\r\n");
}

#[test]
fn a_key_of_another_type_keeps_the_waiter_blocked() {
    let server = crate::start(&[]);
    let mut ctl = client(&server);
    let mut w = client(&server);
    send(&mut w, "BLPOP k 0");
    wait_blocked(&mut ctl, 1);
    // RENAME signals k, but k now holds a string: Redis leaves the client blocked.
    cmd(&mut ctl, "SET tmp str");
    assert_eq!(text(&cmd(&mut ctl, "RENAME tmp k")), "+OK\r\n");
    assert_eq!(text(&cmd(&mut ctl, "PING")), "+PONG\r\n");
    wait_blocked(&mut ctl, 1);
    assert!(!w.has_pending());
    cmd(&mut ctl, "DEL k");
    cmd(&mut ctl, "RPUSH k v");
    assert_eq!(reply(&mut w), "*2\r\n$1\r\nk\r\n$1\r\nv\r\n");
    // On the first run (not a wake-up) the wrong type is an error, as in Redis.
    cmd(&mut ctl, "SET s str");
    assert_eq!(
        text(&cmd(&mut w, "BLPOP s 0")),
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
    );
}

#[test]
fn client_unblock_ends_the_wait() {
    let server = crate::start(&[]);
    let mut ctl = client(&server);
    let mut w = client(&server);
    let id = text(&cmd(&mut w, "CLIENT ID"));
    let id = id.trim_start_matches(':').trim_end();
    send(&mut w, "BLPOP k 0");
    wait_blocked(&mut ctl, 1);
    assert_eq!(
        text(&cmd(&mut ctl, &format!("CLIENT UNBLOCK {id}"))),
        ":1\r\n"
    );
    assert_eq!(reply(&mut w), "*-1\r\n");
    send(&mut w, "BLMOVE a b LEFT LEFT 0");
    wait_blocked(&mut ctl, 1);
    assert_eq!(
        text(&cmd(&mut ctl, &format!("CLIENT UNBLOCK {id} ERROR"))),
        ":1\r\n"
    );
    assert_eq!(
        reply(&mut w),
        "-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n"
    );
    wait_blocked(&mut ctl, 0);
}

#[test]
fn pipelined_commands_after_a_blocking_pop_wait_for_it() {
    let server = crate::start(&[]);
    let mut ctl = client(&server);
    let mut w = client(&server);
    w.send_raw(b"BLPOP k 0\r\nPING\r\nLLEN k\r\n")
        .expect("send");
    wait_blocked(&mut ctl, 1);
    assert!(!w.has_pending());
    cmd(&mut ctl, "RPUSH k a b");
    assert_eq!(reply(&mut w), "*2\r\n$1\r\nk\r\n$1\r\na\r\n");
    assert_eq!(reply(&mut w), "+PONG\r\n");
    assert_eq!(reply(&mut w), ":1\r\n");
}

/// A push that lands while a BLPOP that found nothing is not yet queued (another worker
/// thread runs it) must still wake it: the first waiter of a key looks again right after
/// queueing. Pipelining the push right behind the BLPOP on a second connection makes the
/// two race on the server's worker threads; before the fix some rounds hung until the
/// BLPOP's timeout and answered a null array.
#[test]
fn a_push_racing_the_queueing_of_a_blpop_is_not_lost() {
    let server = crate::start(&["--threads", "2"]);
    let mut popper = client(&server);
    let mut pusher = client(&server);
    for round in 0..2000 {
        let key = format!("race:{round}");
        send(&mut popper, &format!("BLPOP {key} 5"));
        send(&mut pusher, &format!("RPUSH {key} v"));
        assert_eq!(reply(&mut pusher), ":1\r\n");
        let got = reply(&mut popper);
        assert_eq!(
            got,
            format!("*2\r\n${}\r\n{key}\r\n$1\r\nv\r\n", key.len()),
            "round {round}"
        );
    }
}
