//! Malformed input: every case gets Redis's error reply or a closed connection, and the
//! server keeps serving other clients with bounded memory.

use basalt_testkit::RawClient;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Sends `input` on a fresh connection and returns everything the server wrote until it
/// closed the connection (or a short timeout passed).
fn exchange(port: u16, input: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    // The server may close before reading everything: ignore write errors.
    let _ = s.write_all(input);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    out
}

fn still_serving(port: u16) {
    let mut c = RawClient::connect_port(port).expect("connect");
    assert_eq!(c.cmd(&[b"PING"]).expect("ping"), b"+PONG\r\n");
}

#[test]
fn protocol_errors_reply_like_redis_and_close() {
    let server = crate::start(&[]);
    let port = server.port();
    let cases: &[(&[u8], &[u8])] = &[
        (
            b"*abc\r\n",
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\n$-5\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$99999999999\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n:5\r\n",
            b"-ERR Protocol error: expected '$', got ':'\r\n",
        ),
        (
            b"*3000000000\r\n",
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"SET \"unbalanced\r\n",
            b"-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
        // A command before the error in the same buffer is still executed.
        (
            b"PING\r\n*x\r\n",
            b"+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n",
        ),
    ];
    for (input, expected) in cases {
        let got = exchange(port, input);
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected),
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }
    // A declared 1 GB bulk beyond proto-max-bulk-len.
    let got = exchange(port, b"*2\r\n$3\r\nGET\r\n$1073741824\r\n");
    assert_eq!(got, b"-ERR Protocol error: invalid bulk length\r\n");
    // A huge inline line without a newline.
    let got = exchange(port, &vec![b'a'; 70 * 1024]);
    assert_eq!(got, b"-ERR Protocol error: too big inline request\r\n");
    // A huge count line.
    let mut long_count = b"*".to_vec();
    long_count.extend(std::iter::repeat_n(b'1', 70 * 1024));
    let got = exchange(port, &long_count);
    assert_eq!(got, b"-ERR Protocol error: too big mbulk count string\r\n");
    still_serving(port);
}

#[test]
fn binary_garbage_and_deep_nesting_do_not_hurt_others() {
    let server = crate::start(&[]);
    let port = server.port();
    let mut other = RawClient::connect_port(port).expect("connect");
    assert_eq!(other.cmd(&[b"SET", b"k", b"v"]).expect("set"), b"+OK\r\n");
    // Pseudo-random binary garbage (deterministic).
    let mut x = 0x1234_5678_9abc_def0u64;
    let garbage: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let _ = exchange(port, &garbage);
    // RESP3 nesting is not a request type: the server must reject it, not recurse.
    let deep: Vec<u8> = std::iter::repeat_n(b"*1\r\n".as_slice(), 100_000)
        .flatten()
        .copied()
        .collect();
    let got = exchange(port, &deep);
    assert_eq!(got, b"-ERR Protocol error: expected '$', got '*'\r\n");
    assert_eq!(other.cmd(&[b"GET", b"k"]).expect("get"), b"$1\r\nv\r\n");
}

#[test]
fn inline_commands_work_like_redis_cli_and_telnet() {
    let server = crate::start(&[]);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    c.send_raw(b"SET greeting \"hello world\"\r\nGET greeting\nPING\r\n\r\n")
        .expect("send");
    assert_eq!(c.read_reply_raw().expect("set"), b"+OK\r\n");
    assert_eq!(c.read_reply_raw().expect("get"), b"$11\r\nhello world\r\n");
    assert_eq!(c.read_reply_raw().expect("ping"), b"+PONG\r\n");
}

#[test]
fn large_values_arrive_whole() {
    let server = crate::start(&[]);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    let big = vec![b'x'; 8 * 1024 * 1024];
    assert_eq!(c.cmd(&[b"SET", b"big", &big]).expect("set"), b"+OK\r\n");
    assert_eq!(
        c.cmd(&[b"STRLEN", b"big"]).expect("strlen"),
        format!(":{}\r\n", big.len()).as_bytes()
    );
    let got = c.cmd(&[b"GET", b"big"]).expect("get");
    assert_eq!(got.len(), big.len() + 12);
}

#[test]
fn limits_are_configurable_at_their_boundary() {
    let server = crate::start(&[
        "--proto-max-bulk-len",
        "1mb",
        "--client-query-buffer-limit",
        "2mb",
    ]);
    let port = server.port();
    let mut c = RawClient::connect_port(port).expect("connect");
    let exact = vec![b'a'; 1024 * 1024];
    assert_eq!(
        c.cmd(&[b"SET", b"k", &exact]).expect("set at limit"),
        b"+OK\r\n"
    );
    let got = exchange(
        port,
        format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n", 1024 * 1024 + 1).as_bytes(),
    );
    assert_eq!(got, b"-ERR Protocol error: invalid bulk length\r\n");
    // APPEND beyond proto-max-bulk-len is refused with Redis's error.
    assert_eq!(
        c.cmd(&[b"APPEND", b"k", b"b"]).expect("append"),
        b"-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n"
    );
    // A pipeline whose unparsed bytes exceed client-query-buffer-limit is disconnected
    // without a reply, as Redis does.
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    // One MSET whose arguments add up to 4 MB: the partly parsed command alone exceeds
    // the 2 MB limit before it completes.
    let mut payload = b"*9\r\n$4\r\nMSET\r\n".to_vec();
    for key in [b"a", b"b", b"c", b"d"] {
        payload.extend_from_slice(b"$1\r\n");
        payload.extend_from_slice(key);
        payload.extend_from_slice(b"\r\n$1048576\r\n");
        payload.extend(std::iter::repeat_n(b'z', 1024 * 1024));
        payload.extend_from_slice(b"\r\n");
    }
    let _ = s.write_all(&payload);
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "connection should be closed without a reply");
    still_serving(port);
}

#[test]
fn a_flood_of_empty_arguments_is_bounded_by_the_query_buffer_limit() {
    let server = crate::start(&["--client-query-buffer-limit", "1mb"]);
    let port = server.port();
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _ = s.write_all(b"*2147483647\r\n");
    let chunk: Vec<u8> = b"$0\r\n\r\n".repeat(10_000);
    // 100k empty arguments: no bytes of payload, but each costs bookkeeping memory.
    for _ in 0..10 {
        if s.write_all(&chunk).is_err() {
            break;
        }
    }
    let mut buf = [0u8; 16];
    assert_eq!(
        s.read(&mut buf).unwrap_or(0),
        0,
        "connection should be closed"
    );
    still_serving(port);
}
