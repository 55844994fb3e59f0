//! Blocking stream reads against a real server: XREAD and XREADGROUP with BLOCK served
//! in arrival order, one XADD serving every XREAD waiter, `$` meaning "after what was
//! there when I blocked", timeouts, disconnects, CLIENT UNBLOCK, and Redis 7.0's errors
//! for XREADGROUP clients whose stream or group disappears while they wait.

use crate::waiting::{client, reply, send, wait_blocked};
use basalt_testkit::RawClient;

fn cmd(c: &mut RawClient, line: &str) -> String {
    String::from_utf8_lossy(&c.cmd_line(line).expect("command")).into_owned()
}

/// The RESP2 reply of XREAD for one stream `s` holding one entry `id f v`.
fn one_entry(key: &str, id: &str) -> String {
    format!(
        "*1\r\n*2\r\n${}\r\n{key}\r\n*1\r\n*2\r\n${}\r\n{id}\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n",
        key.len(),
        id.len()
    )
}

#[test]
fn one_xadd_serves_every_xread_waiter_in_order() {
    let server = crate::start(&[]);
    let mut ctl = client(&server);
    assert_eq!(cmd(&mut ctl, "XADD s 1-0 f v"), "$3\r\n1-0\r\n");
    // The first waiter wants entries after 100-0: it must not swallow the wake-up of
    // the ones queued behind it.
    let mut high = client(&server);
    send(&mut high, "XREAD BLOCK 0 STREAMS s 100-0");
    wait_blocked(&mut ctl, 1);
    let mut waiters: Vec<RawClient> = (0..3).map(|_| client(&server)).collect();
    for (i, w) in waiters.iter_mut().enumerate() {
        send(w, "XREAD BLOCK 0 STREAMS s $");
        wait_blocked(&mut ctl, i + 2);
    }
    assert_eq!(cmd(&mut ctl, "XADD s 2-0 f v"), "$3\r\n2-0\r\n");
    for w in waiters.iter_mut() {
        // `$` was 1-0 when they blocked: they get 2-0 only.
        assert_eq!(reply(w), one_entry("s", "2-0"));
    }
    wait_blocked(&mut ctl, 1);
    assert!(!high.has_pending());
    assert_eq!(cmd(&mut ctl, "XADD s 101-0 f v"), "$5\r\n101-0\r\n");
    assert_eq!(reply(&mut high), one_entry("s", "101-0"));
    wait_blocked(&mut ctl, 0);
    for w in waiters.iter_mut() {
        assert_eq!(cmd(w, "PING"), "+PONG\r\n");
    }
}

#[test]
fn xreadgroup_waiters_share_entries_in_arrival_order() {
    let server = crate::start(&[]);
    let mut ctl = client(&server);
    assert_eq!(cmd(&mut ctl, "XGROUP CREATE s g $ MKSTREAM"), "+OK\r\n");
    let names = ["a", "b", "c"];
    let mut waiters: Vec<RawClient> = (0..3).map(|_| client(&server)).collect();
    for (i, w) in waiters.iter_mut().enumerate() {
        send(
            w,
            &format!("XREADGROUP GROUP g {} BLOCK 0 STREAMS s >", names[i]),
        );
        wait_blocked(&mut ctl, i + 1);
    }
    assert_eq!(cmd(&mut ctl, "XADD s 1-0 f v"), "$3\r\n1-0\r\n");
    assert_eq!(reply(&mut waiters[0]), one_entry("s", "1-0"));
    wait_blocked(&mut ctl, 2);
    assert_eq!(cmd(&mut ctl, "XADD s 2-0 f v"), "$3\r\n2-0\r\n");
    assert_eq!(reply(&mut waiters[1]), one_entry("s", "2-0"));
    assert_eq!(cmd(&mut ctl, "XADD s 3-0 f v"), "$3\r\n3-0\r\n");
    assert_eq!(reply(&mut waiters[2]), one_entry("s", "3-0"));
    wait_blocked(&mut ctl, 0);
    // Each delivery is pending for the consumer that got it.
    let pending = cmd(&mut ctl, "XPENDING s g");
    assert!(
        pending.contains("$1\r\na\r\n$1\r\n1\r\n") && pending.contains("$1\r\nc\r\n$1\r\n1\r\n"),
        "{pending}"
    );
}

#[test]
fn xreadgroup_waiters_keep_arrival_order_under_back_to_back_xadds() {
    // Consumers woken for nothing pass the turn on; a later one must not take an entry
    // whose wake-up went to a consumer ahead of it.
    let server = crate::start(&[]);
    let mut ctl = client(&server);
    assert_eq!(cmd(&mut ctl, "XGROUP CREATE s g $ MKSTREAM"), "+OK\r\n");
    let n = 8;
    let mut waiters: Vec<RawClient> = (0..n).map(|_| client(&server)).collect();
    for round in 0..5 {
        for (i, w) in waiters.iter_mut().enumerate() {
            send(
                w,
                &format!("XREADGROUP GROUP g c{i} COUNT 1 BLOCK 0 STREAMS s >"),
            );
            wait_blocked(&mut ctl, i + 1);
        }
        // One at a time: each XADD lands while the previous one's wake-ups are still
        // being passed along the queue.
        for i in 0..n {
            assert_eq!(
                cmd(&mut ctl, &format!("XADD s {}-{i} f v", round + 1)),
                format!("$3\r\n{}-{i}\r\n", round + 1)
            );
        }
        for (i, w) in waiters.iter_mut().enumerate() {
            assert_eq!(
                reply(w),
                one_entry("s", &format!("{}-{i}", round + 1)),
                "round {round}, consumer {i}"
            );
        }
        wait_blocked(&mut ctl, 0);
    }
}

#[test]
fn timeouts_reply_null() {
    let server = crate::start(&[]);
    let mut c = client(&server);
    assert_eq!(cmd(&mut c, "XREAD BLOCK 50 STREAMS s $"), "*-1\r\n");
    assert_eq!(cmd(&mut c, "XGROUP CREATE s g $ MKSTREAM"), "+OK\r\n");
    assert_eq!(
        cmd(&mut c, "XREADGROUP GROUP g c BLOCK 50 STREAMS s >"),
        "*-1\r\n"
    );
    cmd(&mut c, "HELLO 3");
    assert_eq!(cmd(&mut c, "XREAD BLOCK 50 STREAMS s $"), "_\r\n");
    let mut ctl = client(&server);
    wait_blocked(&mut ctl, 0);
}

#[test]
fn served_resp3_clients_get_a_map() {
    let server = crate::start(&[]);
    let mut ctl = client(&server);
    let mut w = client(&server);
    cmd(&mut w, "HELLO 3");
    send(&mut w, "XREAD BLOCK 0 STREAMS s $");
    wait_blocked(&mut ctl, 1);
    cmd(&mut ctl, "XADD s 1-0 f v");
    assert_eq!(
        reply(&mut w),
        "%1\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n"
    );
}

#[test]
fn xreadgroup_learns_when_its_stream_or_group_goes_away() {
    let server = crate::start(&[]);
    let mut ctl = client(&server);
    let cases: &[(&str, &str)] = &[
        ("DEL s", "-UNBLOCKED the stream key no longer exists\r\n"),
        ("SET s x", "-UNBLOCKED the stream key no longer exists\r\n"),
        (
            "RENAME s s2",
            "-UNBLOCKED the stream key no longer exists\r\n",
        ),
        ("FLUSHALL", "-UNBLOCKED the stream key no longer exists\r\n"),
        (
            "XGROUP DESTROY s g",
            "-NOGROUP the consumer group this client was blocked on no longer exists\r\n",
        ),
    ];
    for (action, expected) in cases {
        cmd(&mut ctl, "FLUSHALL");
        cmd(&mut ctl, "XADD s 1-0 f v");
        cmd(&mut ctl, "XGROUP CREATE s g $");
        let mut w = client(&server);
        send(&mut w, "XREADGROUP GROUP g c BLOCK 0 STREAMS s >");
        wait_blocked(&mut ctl, 1);
        cmd(&mut ctl, action);
        assert_eq!(reply(&mut w), *expected, "after {action}");
        wait_blocked(&mut ctl, 0);
    }
}

#[test]
fn xread_stays_blocked_when_its_stream_is_deleted_or_replaced() {
    let server = crate::start(&[]);
    let mut ctl = client(&server);
    cmd(&mut ctl, "XADD s 1-0 f v");
    cmd(&mut ctl, "XGROUP CREATE s g $");
    // An XREADGROUP client queued first: its error must not strand the XREAD client.
    let mut grp = client(&server);
    send(&mut grp, "XREADGROUP GROUP g c BLOCK 0 STREAMS s >");
    wait_blocked(&mut ctl, 1);
    let mut w = client(&server);
    send(&mut w, "XREAD BLOCK 0 STREAMS s 1-0");
    wait_blocked(&mut ctl, 2);
    cmd(&mut ctl, "SET s x");
    assert_eq!(
        reply(&mut grp),
        "-UNBLOCKED the stream key no longer exists\r\n"
    );
    wait_blocked(&mut ctl, 1);
    assert!(!w.has_pending());
    cmd(&mut ctl, "DEL s");
    cmd(&mut ctl, "XADD s 2-0 f v");
    assert_eq!(reply(&mut w), one_entry("s", "2-0"));
    wait_blocked(&mut ctl, 0);
}

#[test]
fn disconnected_waiters_leave_and_pass_their_turn_on() {
    let server = crate::start(&[]);
    let mut ctl = client(&server);
    cmd(&mut ctl, "XGROUP CREATE s g $ MKSTREAM");
    let mut gone = client(&server);
    send(&mut gone, "XREADGROUP GROUP g gone BLOCK 0 STREAMS s >");
    wait_blocked(&mut ctl, 1);
    let mut w = client(&server);
    send(&mut w, "XREADGROUP GROUP g here BLOCK 0 STREAMS s >");
    wait_blocked(&mut ctl, 2);
    drop(gone);
    wait_blocked(&mut ctl, 1);
    cmd(&mut ctl, "XADD s 1-0 f v");
    assert_eq!(reply(&mut w), one_entry("s", "1-0"));
    wait_blocked(&mut ctl, 0);
    // The consumer that disconnected never got anything, and was never created.
    let consumers = cmd(&mut ctl, "XINFO GROUPS s");
    assert!(consumers.contains("consumers\r\n:1\r\n"), "{consumers}");
}

#[test]
fn client_unblock_releases_stream_readers() {
    let server = crate::start(&[]);
    let mut ctl = client(&server);
    let mut w = client(&server);
    let id = cmd(&mut w, "CLIENT ID");
    let id = id.trim_start_matches(':').trim_end();
    send(&mut w, "XREAD BLOCK 0 STREAMS s $");
    wait_blocked(&mut ctl, 1);
    assert_eq!(cmd(&mut ctl, &format!("CLIENT UNBLOCK {id}")), ":1\r\n");
    assert_eq!(reply(&mut w), "*-1\r\n");
    send(&mut w, "XREAD BLOCK 0 STREAMS s $");
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
fn a_blocked_reader_without_count_gets_at_most_1000_entries() {
    let server = crate::start(&[]);
    let mut ctl = client(&server);
    let mut w = client(&server);
    send(&mut w, "XREAD BLOCK 0 STREAMS s 0");
    wait_blocked(&mut ctl, 1);
    // One MULTI-less batch: many entries land before the waiter runs.
    let mut batch = Vec::new();
    for i in 1..=1500 {
        batch.extend_from_slice(
            format!(
                "*5\r\n$4\r\nXADD\r\n$1\r\ns\r\n${}\r\n{i}-0\r\n$1\r\nf\r\n$1\r\nv\r\n",
                format!("{i}-0").len()
            )
            .as_bytes(),
        );
    }
    ctl.send_raw(&batch).expect("send");
    for _ in 0..1500 {
        ctl.read_reply_raw().expect("reply");
    }
    let got = reply(&mut w);
    let entries = got.matches("$1\r\nf\r\n").count();
    assert!((1..=1000).contains(&entries), "{entries} entries");
}
