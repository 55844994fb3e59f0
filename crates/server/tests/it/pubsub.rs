//! Pub/Sub beyond the golden sequences: output buffer limits with a subscriber that stops
//! reading (the publisher and a fast subscriber must not notice), CLIENT LIST / INFO
//! fields, and fan-out to many subscribers. Waits are bounded polls, never timing
//! assertions.

use crate::waiting::{client, reply, send};
use basalt_testkit::RawClient;
use std::time::Duration;

fn info_field(c: &mut RawClient, section: &str, field: &str) -> String {
    let raw = c.cmd_line(&format!("INFO {section}")).expect("INFO");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let prefix = format!("{field}:");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {field} in INFO {section}"))
        .trim()
        .to_string()
}

/// Polls (bounded) until `f` holds.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("never happened: {what}");
}

fn client_line(ctl: &mut RawClient, id: &str) -> String {
    let raw = ctl.cmd_line(&format!("CLIENT LIST ID {id}")).expect("list");
    String::from_utf8_lossy(&raw).into_owned()
}

fn field<'a>(line: &'a str, name: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name}= in {line}"))
}

#[test]
fn slow_subscriber_is_cut_off_at_the_hard_limit() {
    let server = crate::start(&[]);
    let mut ctl = client(&server);
    // 1 MB hard limit for pubsub clients, no soft limit.
    assert_eq!(
        ctl.cmd_line("CONFIG SET client-output-buffer-limit \"pubsub 1mb 0 0\"")
            .unwrap(),
        b"+OK\r\n"
    );

    // The slow subscriber never reads after its confirmation.
    let mut slow = client(&server);
    let slow_id = String::from_utf8_lossy(&slow.cmd_line("CLIENT ID").unwrap())
        .trim_start_matches(':')
        .trim()
        .to_string();
    assert!(reply_of(&mut slow, "SUBSCRIBE ch").contains("subscribe"));

    // The fast subscriber reads everything on its own thread and reports each message,
    // so the publisher can stay at most a few messages ahead of it (a subscriber that
    // lags by more than the limit would rightly be cut off too).
    let mut fast = client(&server);
    assert!(reply_of(&mut fast, "SUBSCRIBE ch").contains("subscribe"));
    const MESSAGES: usize = 400;
    let (tx, rx) = std::sync::mpsc::channel::<usize>();
    let reader = std::thread::spawn(move || {
        let mut got = 0;
        while got < MESSAGES {
            let r = fast.read_reply_raw().expect("fast subscriber reads");
            assert!(r.starts_with(b"*3\r\n$7\r\nmessage\r\n"));
            got += 1;
            let _ = tx.send(got);
        }
        // Handed back so it stays subscribed.
        (got, fast)
    });
    let mut fast_got = 0;

    // 400 messages of 64 KB: 25 MB, far beyond what the socket buffers plus 1 MB hold.
    let payload = "x".repeat(64 * 1024);
    let mut publisher = client(&server);
    let mut max_omem = 0usize;
    let mut receivers_seen = Vec::new();
    for i in 0..MESSAGES {
        let r = publisher
            .cmd(&[b"PUBLISH", b"ch", payload.as_bytes()])
            .expect("publish never fails");
        let n: i64 = String::from_utf8_lossy(&r)
            .trim()
            .trim_start_matches(':')
            .parse()
            .expect("integer reply");
        receivers_seen.push(n);
        while fast_got + 4 <= i {
            fast_got = rx
                .recv_timeout(Duration::from_secs(20))
                .expect("fast progress");
        }
        if i % 20 == 0 {
            let line = client_line(&mut ctl, &slow_id);
            if line.contains("omem=") {
                max_omem = max_omem.max(field(&line, "omem").parse().unwrap_or(0));
            }
        }
    }
    let (got, _fast) = reader.join().expect("reader");
    assert_eq!(got, MESSAGES);
    // Every PUBLISH counted both subscribers until the slow one was cut off, then one.
    assert!(receivers_seen.iter().all(|&n| n == 1 || n == 2));
    assert_eq!(*receivers_seen.last().unwrap(), 1);
    // Memory stayed bounded: never more than the limit plus one message.
    assert!(
        max_omem <= (1 << 20) + payload.len() + 64,
        "omem {max_omem}"
    );

    eventually("the disconnection is counted", || {
        info_field(
            &mut ctl,
            "stats",
            "client_output_buffer_limit_disconnections",
        ) == "1"
    });
    assert_eq!(info_field(&mut ctl, "stats", "pubsub_channels"), "1");
    eventually("the log names the client", || {
        server
            .log()
            .contains("scheduled to be closed ASAP for overcoming of output buffer limits")
    });
    // The slow subscriber's socket ends (after what was already in flight).
    slow.set_timeout(Duration::from_secs(20)).unwrap();
    while slow.read_reply_raw().is_ok() {}
    assert_eq!(
        ctl.cmd_line("PUBSUB NUMSUB ch").unwrap(),
        b"*2\r\n$2\r\nch\r\n:1\r\n"
    );
}

fn reply_of(c: &mut RawClient, line: &str) -> String {
    send(c, line);
    reply(c)
}

#[test]
fn soft_limit_needs_to_last() {
    let server = crate::start(&[]);
    let mut ctl = client(&server);
    // Soft limit 64 KB for 1 second, no hard limit.
    ctl.cmd_line("CONFIG SET client-output-buffer-limit \"pubsub 0 64kb 1\"")
        .unwrap();
    let mut slow = client(&server);
    assert!(reply_of(&mut slow, "SUBSCRIBE ch").contains("subscribe"));
    let payload = "y".repeat(256 * 1024);
    let mut publisher = client(&server);
    // Keep publishing until the soft limit has been exceeded for over a second.
    eventually("soft limit disconnection", || {
        publisher
            .cmd(&[b"PUBLISH", b"ch", payload.as_bytes()])
            .unwrap();
        info_field(
            &mut ctl,
            "stats",
            "client_output_buffer_limit_disconnections",
        ) == "1"
    });
}

#[test]
fn normal_clients_limit_applies_to_replies() {
    let server = crate::start(&[]);
    let mut ctl = client(&server);
    ctl.cmd_line("CONFIG SET client-output-buffer-limit \"normal 100kb 0 0\"")
        .unwrap();
    let big = "z".repeat(200 * 1024);
    ctl.cmd(&[b"SET", b"big", big.as_bytes()]).unwrap();
    let mut c = client(&server);
    // The reply is over the hard limit: the connection is closed instead.
    send(&mut c, "GET big");
    assert!(c.read_reply_raw().is_err());
    assert_eq!(
        info_field(
            &mut ctl,
            "stats",
            "client_output_buffer_limit_disconnections"
        ),
        "1"
    );
    // Small replies are fine.
    let mut d = client(&server);
    assert_eq!(d.cmd_line("PING").unwrap(), b"+PONG\r\n");
}

#[test]
fn client_list_and_info_show_subscriptions() {
    let server = crate::start(&[]);
    let mut ctl = client(&server);
    let mut sub = client(&server);
    let id = String::from_utf8_lossy(&sub.cmd_line("CLIENT ID").unwrap())
        .trim_start_matches(':')
        .trim()
        .to_string();
    send(&mut sub, "SUBSCRIBE a b");
    reply(&mut sub);
    reply(&mut sub);
    send(&mut sub, "PSUBSCRIBE p*");
    reply(&mut sub);
    send(&mut sub, "SSUBSCRIBE s");
    reply(&mut sub);
    let line = client_line(&mut ctl, &id);
    assert_eq!(field(&line, "flags"), "P");
    assert_eq!(field(&line, "sub"), "2");
    assert_eq!(field(&line, "psub"), "1");
    assert_eq!(field(&line, "ssub"), "1");
    assert_eq!(info_field(&mut ctl, "stats", "pubsub_channels"), "2");
    assert_eq!(info_field(&mut ctl, "stats", "pubsub_patterns"), "1");
    assert_eq!(info_field(&mut ctl, "stats", "pubsubshard_channels"), "1");
    let pubsub_only =
        String::from_utf8_lossy(&ctl.cmd_line("CLIENT LIST TYPE pubsub").unwrap()).into_owned();
    assert!(pubsub_only.contains(&format!("id={id} ")));
    assert_eq!(pubsub_only.matches("id=").count(), 1);
    let normal =
        String::from_utf8_lossy(&ctl.cmd_line("CLIENT LIST TYPE normal").unwrap()).into_owned();
    assert!(!normal.contains(&format!("id={id} ")));
    // Disconnecting cleans the registry up.
    drop(sub);
    eventually("registry cleaned up", || {
        info_field(&mut ctl, "stats", "pubsub_channels") == "0"
            && info_field(&mut ctl, "stats", "pubsub_patterns") == "0"
            && info_field(&mut ctl, "stats", "pubsubshard_channels") == "0"
    });
}

#[test]
fn fan_out_reaches_every_subscriber_in_order() {
    let server = crate::start(&[]);
    let mut subs: Vec<RawClient> = (0..50)
        .map(|_| {
            let mut c = client(&server);
            send(&mut c, "SUBSCRIBE ch");
            reply(&mut c);
            c
        })
        .collect();
    let mut p = client(&server);
    for i in 0..100 {
        assert_eq!(p.cmd_line(&format!("PUBLISH ch m{i}")).unwrap(), b":50\r\n");
    }
    for c in subs.iter_mut() {
        for i in 0..100 {
            let m = format!("m{i}");
            let want = format!("*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n${}\r\n{m}\r\n", m.len());
            assert_eq!(String::from_utf8_lossy(&c.read_reply_raw().unwrap()), want);
        }
    }
}

#[test]
fn subscribers_are_not_closed_for_idleness() {
    let server = crate::start(&["--timeout", "1"]);
    let mut sub = client(&server);
    send(&mut sub, "SUBSCRIBE ch");
    reply(&mut sub);
    let mut idle = client(&server);
    assert_eq!(idle.cmd_line("PING").unwrap(), b"+PONG\r\n");
    // The idle normal client is closed after a second; the subscriber stays.
    eventually("idle client closed", || {
        idle.set_timeout(Duration::from_millis(50)).unwrap();
        matches!(idle.read_reply_raw(), Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof)
    });
    let mut ctl = client(&server);
    assert_eq!(ctl.cmd_line("PUBLISH ch x").unwrap(), b":1\r\n");
    assert!(reply(&mut sub).contains("message"));
}

#[test]
fn evicted_keys_are_notified() {
    let server = crate::start(&[]);
    let mut ctl = client(&server);
    ctl.cmd_line("CONFIG SET notify-keyspace-events Ee")
        .unwrap();
    let mut sub = client(&server);
    send(&mut sub, "SUBSCRIBE __keyevent@0__:evicted");
    reply(&mut sub);
    ctl.cmd_line("CONFIG SET maxmemory-policy allkeys-random")
        .unwrap();
    let used: u64 = info_field(&mut ctl, "memory", "used_memory")
        .parse()
        .unwrap();
    ctl.cmd_line(&format!("CONFIG SET maxmemory {}", used + 512 * 1024))
        .unwrap();
    let value = "v".repeat(1024);
    for i in 0..2000 {
        ctl.cmd(&[b"SET", format!("key:{i}").as_bytes(), value.as_bytes()])
            .unwrap();
    }
    // Lift the limit before counting: on a loaded machine one eviction run can stop at
    // its time limit and the cron finish the job after the last write.
    ctl.cmd_line("CONFIG SET maxmemory 0").unwrap();
    let evicted: u64 = info_field(&mut ctl, "stats", "evicted_keys")
        .parse()
        .unwrap();
    assert!(evicted > 0);
    // One message per evicted key, naming it.
    for _ in 0..evicted {
        let m = reply(&mut sub);
        assert!(m.starts_with("*3\r\n$7\r\nmessage\r\n$22\r\n__keyevent@0__:evicted\r\n"));
        assert!(m.contains("key:"), "{m}");
    }
    assert_eq!(
        ctl.cmd_line("PUBLISH __keyevent@0__:evicted end").unwrap(),
        b":1\r\n"
    );
    assert!(reply(&mut sub).ends_with("$3\r\nend\r\n"));
}

#[test]
fn resp3_subscriber_gets_messages_while_blocked_and_after() {
    let server = crate::start(&[]);
    let mut sub = client(&server);
    let mut ctl = client(&server);
    sub.cmd_line("HELLO 3").unwrap();
    assert!(reply_of(&mut sub, "SUBSCRIBE ch").starts_with(">3\r\n"));
    // Published while idle, before blocking.
    assert_eq!(ctl.cmd_line("PUBLISH ch m0").unwrap(), b":1\r\n");
    assert!(reply(&mut sub).ends_with("$2\r\nm0\r\n"));
    send(&mut sub, "BLPOP q 0");
    crate::waiting::wait_blocked(&mut ctl, 1);
    // Published while blocked: delivered at once, the BLPOP still waits.
    for i in 1..=3 {
        assert_eq!(
            ctl.cmd_line(&format!("PUBLISH ch m{i}")).unwrap(),
            b":1\r\n"
        );
        assert!(reply(&mut sub).ends_with(&format!("$2\r\nm{i}\r\n")));
    }
    ctl.cmd_line("RPUSH q x").unwrap();
    assert_eq!(reply(&mut sub), "*2\r\n$1\r\nq\r\n$1\r\nx\r\n");
    // And idle again afterwards.
    assert_eq!(ctl.cmd_line("PUBLISH ch m4").unwrap(), b":1\r\n");
    assert!(reply(&mut sub).ends_with("$2\r\nm4\r\n"));
}
