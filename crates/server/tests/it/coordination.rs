//! Coordination building blocks Redis 7.0 does not have (so no golden sequence can record
//! them): `SET key value IFEQ old` and `DELIFEQ key value`, with Valkey's semantics.

use basalt_proto::Frame;
use basalt_testkit::RawClient;
use bytes::Bytes;

fn client(port: u16) -> RawClient {
    RawClient::connect_port(port).expect("connect")
}

fn cmd(c: &mut RawClient, args: &[&str]) -> Frame {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    c.cmd_frame(&args).expect("reply")
}

fn bulk(s: &str) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

fn err(c: &mut RawClient, args: &[&str]) -> String {
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
    assert_eq!(cmd(&mut c, &["SET", "k", "c", "IFEQ", "b", "GET"]), bulk("b"));
    assert_eq!(cmd(&mut c, &["SET", "k", "d", "IFEQ", "zz", "GET"]), bulk("c"));
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
