//! Server and client administration over a live connection: INFO fields, CONFIG
//! RESETSTAT, CLIENT LIST/KILL/REPLY/PAUSE/SETNAME, COMMAND introspection.

use basalt_testkit::RawClient;
use std::time::{Duration, Instant};

fn text(b: Vec<u8>) -> String {
    String::from_utf8_lossy(&b).into_owned()
}

#[test]
fn info_reports_redis_fields_and_counters() {
    let server = crate::start(&[]);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    c.cmd(&[b"SET", b"k", b"v"]).expect("set");
    c.cmd(&[b"GET", b"k"]).expect("get");
    c.cmd(&[b"GET", b"missing"]).expect("get");
    c.cmd(&[b"INCR", b"k"]).expect("incr");
    let info = text(c.cmd(&[b"INFO", b"everything"]).expect("info"));
    for field in [
        "redis_version:7.0.15",
        "basalt_version:",
        "connected_clients:1",
        "used_memory:",
        "maxmemory_policy:noeviction",
        "keyspace_hits:1",
        "keyspace_misses:1",
        "cmdstat_get:calls=2",
        "cmdstat_incr:calls=1,",
        "failed_calls=1",
        "errorstat_ERR:count=1",
        "db0:keys=1,expires=0",
    ] {
        assert!(info.contains(field), "INFO lacks {field}:\n{info}");
    }
    assert_eq!(
        c.cmd(&[b"CONFIG", b"RESETSTAT"]).expect("reset"),
        b"+OK\r\n"
    );
    let info = text(c.cmd(&[b"INFO", b"stats", b"commandstats"]).expect("info"));
    assert!(info.contains("keyspace_hits:0"), "{info}");
    assert!(!info.contains("cmdstat_get"), "{info}");
    assert!(
        !info.contains("# Keyspace"),
        "only the requested sections: {info}"
    );
}

/// `disable-thp yes` (the default, as in Redis) turns transparent huge pages off for the
/// server process; `no` leaves the kernel's setting alone.
#[cfg(target_os = "linux")]
#[test]
fn disable_thp_reaches_the_process() {
    let thp_enabled = |pid: u32| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        // Kernels before 6.x have no such line; then there is nothing to check.
        status
            .lines()
            .find_map(|l| l.strip_prefix("THP_enabled:"))
            .map(|v| v.trim() == "1")
    };
    let server = crate::start(&[]);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    assert_eq!(
        c.cmd(&[b"CONFIG", b"GET", b"disable-thp"]).expect("config"),
        b"*2\r\n$11\r\ndisable-thp\r\n$3\r\nyes\r\n"
    );
    assert!(
        text(
            c.cmd(&[b"CONFIG", b"SET", b"disable-thp", b"no"])
                .expect("set")
        )
        .contains("can't set immutable config")
    );
    if let Some(enabled) = thp_enabled(server.pid()) {
        assert!(!enabled, "THP still enabled for the server");
        let kept = crate::start(&["--disable-thp", "no"]);
        assert_eq!(thp_enabled(kept.pid()), thp_enabled(std::process::id()));
    }
}

#[test]
fn client_list_setname_kill() {
    let server = crate::start(&[]);
    let mut a = RawClient::connect_port(server.port()).expect("a");
    let mut b = RawClient::connect_port(server.port()).expect("b");
    assert_eq!(
        a.cmd(&[b"CLIENT", b"SETNAME", b"alpha"]).expect("setname"),
        b"+OK\r\n"
    );
    assert_eq!(
        a.cmd(&[b"CLIENT", b"SETNAME", b"has space"])
            .expect("setname"),
        b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n"
    );
    assert_eq!(
        a.cmd(&[b"CLIENT", b"GETNAME"]).expect("getname"),
        b"$5\r\nalpha\r\n"
    );
    let list = text(b.cmd(&[b"CLIENT", b"LIST"]).expect("list"));
    assert!(list.contains("name=alpha"), "{list}");
    assert!(list.contains("cmd=client|list"), "{list}");
    let id_reply = text(a.cmd(&[b"CLIENT", b"ID"]).expect("id"));
    let id = id_reply.trim_start_matches(':').trim().to_string();
    let killed = b
        .cmd(&[b"CLIENT", b"KILL", b"ID", id.as_bytes()])
        .expect("kill");
    assert_eq!(killed, b":1\r\n");
    assert!(
        a.cmd(&[b"PING"]).is_err(),
        "killed client must be disconnected"
    );
    assert_eq!(b.cmd(&[b"PING"]).expect("b alive"), b"+PONG\r\n");
}

#[test]
fn client_reply_off_and_skip() {
    let server = crate::start(&[]);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    c.send(&[b"CLIENT", b"REPLY", b"SKIP"]).expect("skip");
    c.send(&[b"SET", b"a", b"1"]).expect("set");
    // Neither CLIENT REPLY SKIP nor the skipped SET answer; the next command does.
    assert_eq!(c.cmd(&[b"GET", b"a"]).expect("get"), b"$1\r\n1\r\n");
    c.send(&[b"CLIENT", b"REPLY", b"OFF"]).expect("off");
    c.send(&[b"SET", b"b", b"2"]).expect("set");
    assert_eq!(
        c.cmd(&[b"CLIENT", b"REPLY", b"ON"]).expect("on"),
        b"+OK\r\n"
    );
    assert_eq!(c.cmd(&[b"GET", b"b"]).expect("get"), b"$1\r\n2\r\n");
}

#[test]
fn client_pause_write_holds_writes_not_reads() {
    let server = crate::start(&[]);
    let mut admin = RawClient::connect_port(server.port()).expect("admin");
    let mut w = RawClient::connect_port(server.port()).expect("writer");
    assert_eq!(
        admin
            .cmd(&[b"CLIENT", b"PAUSE", b"60000", b"WRITE"])
            .expect("pause"),
        b"+OK\r\n"
    );
    assert_eq!(
        w.cmd(&[b"GET", b"x"]).expect("read while paused"),
        b"$-1\r\n"
    );
    w.send(&[b"SET", b"x", b"1"]).expect("send write");
    w.set_timeout(Duration::from_millis(300)).expect("timeout");
    assert!(
        w.read_reply_raw().is_err(),
        "the write must wait while paused"
    );
    let t = Instant::now();
    assert_eq!(
        admin.cmd(&[b"CLIENT", b"UNPAUSE"]).expect("unpause"),
        b"+OK\r\n"
    );
    w.set_timeout(Duration::from_secs(5)).expect("timeout");
    assert_eq!(w.read_reply_raw().expect("write after unpause"), b"+OK\r\n");
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn command_introspection_matches_redis_shapes() {
    let server = crate::start(&[]);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    let info = c.cmd(&[b"COMMAND", b"INFO", b"get"]).expect("info");
    let expected: &[u8] = b"*1\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*3\r\n+@read\r\n+@string\r\n+@fast\r\n*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+RO\r\n+access\r\n";
    assert!(info.starts_with(expected), "{}", text(info.clone()));
    assert_eq!(
        c.cmd(&[b"COMMAND", b"GETKEYS", b"MSET", b"a", b"1", b"b", b"2"])
            .expect("getkeys"),
        b"*2\r\n$1\r\na\r\n$1\r\nb\r\n"
    );
    assert_eq!(
        c.cmd(&[b"COMMAND", b"GETKEYS", b"PING"]).expect("getkeys"),
        b"-ERR The command has no key arguments\r\n"
    );
    let count = text(c.cmd(&[b"COMMAND", b"COUNT"]).expect("count"));
    let n: i64 = count.trim_start_matches(':').trim().parse().expect("count");
    let list = c
        .cmd(&[b"COMMAND", b"LIST", b"FILTERBY", b"PATTERN", b"config*"])
        .expect("list");
    assert!(text(list).contains("config|get"));
    assert!(n > 50, "COMMAND COUNT {n}");
}
