//! The Faktory work protocol listener (`faktory-port`, `docs/faktory.md`), driven by a
//! raw-socket client that speaks FWP exactly as the worker libraries do: the greeting and
//! HELLO (with and without a password), the limits, and jobs pushed, fetched, acked and
//! failed through Faktory while RESP clients see the same jobs through `JOB.*`.

use basalt_proto::Frame;
use basalt_testkit::{RawClient, TestServer, free_port};
use bytes::Bytes;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A server with the Faktory listener on a free port; returns it and that port.
fn start(extra: &[&str]) -> (TestServer, u16) {
    let port = free_port().expect("free port");
    let p = port.to_string();
    let mut args = vec!["--faktory-port", p.as_str()];
    args.extend_from_slice(extra);
    (crate::start(&args), port)
}

/// A reply as Faktory sends it.
#[derive(Debug, PartialEq)]
enum Reply {
    Ok,
    Simple(String),
    Error(String),
    Bulk(String),
    Nil,
}

struct Fwp {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Fwp {
    /// Connects and reads the greeting (the JSON after `+HI `).
    fn connect(port: u16) -> (Fwp, Value) {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut c = Fwp {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        };
        let hi = c.line().expect("greeting");
        let json = hi.strip_prefix("+HI ").expect("HI greeting");
        (c, serde_json::from_str(json).unwrap())
    }

    /// Connects and says HELLO (as a worker with `wid`, or a producer).
    fn hello(port: u16, wid: Option<&str>) -> Fwp {
        let (mut c, hi) = Fwp::connect(port);
        assert!(hi.get("s").is_none(), "no password expected: {hi}");
        let mut h = json!({"v": 2});
        if let Some(w) = wid {
            h = json!({"v": 2, "wid": w, "hostname": "test", "pid": 1, "labels": []});
        }
        assert_eq!(c.cmd(&format!("HELLO {h}")), Reply::Ok);
        c
    }

    fn line(&mut self) -> Option<String> {
        let mut l = String::new();
        match self.r.read_line(&mut l) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(l.trim_end_matches(['\r', '\n']).to_string()),
        }
    }

    fn send(&mut self, line: &str) {
        self.w.write_all(line.as_bytes()).unwrap();
        self.w.write_all(b"\r\n").unwrap();
    }

    fn read(&mut self) -> Option<Reply> {
        let l = self.line()?;
        Some(match l.as_bytes().first() {
            Some(b'+') if l == "+OK" => Reply::Ok,
            Some(b'+') => Reply::Simple(l[1..].to_string()),
            Some(b'-') => Reply::Error(l[1..].to_string()),
            Some(b'$') if l == "$-1" => Reply::Nil,
            Some(b'$') => {
                let n: usize = l[1..].parse().unwrap();
                let mut buf = vec![0; n + 2];
                self.r.read_exact(&mut buf).unwrap();
                buf.truncate(n);
                Reply::Bulk(String::from_utf8(buf).unwrap())
            }
            _ => panic!("unexpected reply line {l:?}"),
        })
    }

    fn cmd(&mut self, line: &str) -> Reply {
        self.send(line);
        self.read().expect("a reply")
    }

    /// True once the server closed the connection.
    fn closed(&mut self) -> bool {
        self.line().is_none()
    }
}

fn resp(port: u16) -> RawClient {
    RawClient::connect_port(port).expect("connect")
}

fn rcmd(c: &mut RawClient, args: &[&str]) -> Frame {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    c.cmd_frame(&args).expect("reply")
}

/// A field of a `JOB.GET` reply (RESP2: a flat array).
fn get_field(reply: &Frame, name: &str) -> Frame {
    let Frame::Array(items) = reply else {
        panic!("not a map: {reply:?}")
    };
    for pair in items.chunks(2) {
        if pair[0] == Frame::Bulk(Bytes::copy_from_slice(name.as_bytes())) {
            return pair[1].clone();
        }
    }
    panic!("no field {name} in {reply:?}")
}

fn text(f: &Frame) -> String {
    match f {
        Frame::Bulk(b) | Frame::Simple(b) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("not text: {other:?}"),
    }
}

fn job(jid: &str, jobtype: &str, extra: Value) -> String {
    let mut j = json!({"jid": jid, "jobtype": jobtype, "args": [1, "two"]});
    if let (Value::Object(j), Value::Object(e)) = (&mut j, extra) {
        j.extend(e);
    }
    j.to_string()
}

/// A PUSH line for `job(...)`.
fn push(jid: &str, jobtype: &str, extra: Value) -> String {
    format!("PUSH {}", job(jid, jobtype, extra))
}

fn fetched(r: Reply) -> Value {
    match r {
        Reply::Bulk(b) => serde_json::from_str(&b).unwrap(),
        other => panic!("no job fetched: {other:?}"),
    }
}

#[test]
fn greeting_and_hello_without_password() {
    let (server, port) = start(&[]);
    let (mut c, hi) = Fwp::connect(port);
    assert_eq!(hi, json!({"v": 2}));
    assert_eq!(
        c.cmd(r#"HELLO {"hostname":"h","wid":"w-1","pid":42,"labels":["rust"],"v":2}"#),
        Reply::Ok
    );
    // The connection is a client of the server like any other.
    let mut r = resp(server.port());
    let list = text(&rcmd(&mut r, &["CLIENT", "LIST"]));
    assert!(
        list.lines()
            .any(|l| l.contains("lib-name=faktory") && l.contains("name=w-1")),
        "{list}"
    );
    assert_eq!(c.cmd("END"), Reply::Ok);
    assert!(c.closed());
}

#[test]
fn hello_with_password_checks_the_iterated_hash() {
    let (_server, port) = start(&["--faktory-password", "s3cret"]);
    let (mut c, hi) = Fwp::connect(port);
    let iterations = hi["i"].as_u64().expect("i") as u32;
    let salt = hi["s"].as_str().expect("s").to_string();
    assert!((4000..8096).contains(&iterations), "{hi}");
    let good = basalt_server::faktory::conn::pwdhash(b"s3cret", &salt, iterations);
    assert_eq!(
        c.cmd(&format!(r#"HELLO {{"v":2,"pwdhash":"{good}"}}"#)),
        Reply::Ok
    );
    // Past the handshake: commands are served.
    assert_eq!(
        c.cmd("FROB"),
        Reply::Error("ERR unknown command FROB".into())
    );

    // A wrong password, or none, is refused and the connection closed.
    for hello in [
        format!(
            r#"HELLO {{"v":2,"pwdhash":"{}"}}"#,
            basalt_server::faktory::conn::pwdhash(b"wrong", &salt, iterations)
        ),
        r#"HELLO {"v":2}"#.to_string(),
    ] {
        let (mut c, _) = Fwp::connect(port);
        assert_eq!(c.cmd(&hello), Reply::Error("ERR Invalid password".into()));
        assert!(c.closed());
    }
}

#[test]
fn bad_handshakes_unknown_commands_and_malformed_json() {
    let (_server, port) = start(&[]);
    // Anything but HELLO first: an error, then the connection closes.
    let (mut c, _) = Fwp::connect(port);
    assert_eq!(c.cmd("PUSH {}"), Reply::Error("ERR expected HELLO".into()));
    assert!(c.closed());
    let (mut c, _) = Fwp::connect(port);
    match c.cmd("HELLO {not json") {
        Reply::Error(e) => assert!(e.starts_with("ERR invalid JSON in HELLO"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(c.closed());

    let mut c = Fwp::hello(port, None);
    assert_eq!(
        c.cmd("FROB x"),
        Reply::Error("ERR unknown command FROB".into())
    );
    assert_eq!(
        c.cmd("push {}"),
        Reply::Error("ERR unknown command push".into())
    );
    match c.cmd("PUSH {\"jid\":") {
        Reply::Error(e) => assert!(e.starts_with("ERR invalid JSON: "), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        c.cmd(r#"PUSH {"jid":"short","jobtype":"T","args":[]}"#),
        Reply::Error("ERR jobs must have a reasonable jid parameter".into())
    );
    assert_eq!(
        c.cmd(r#"PUSH {"jid":"0123456789","args":[]}"#),
        Reply::Error("ERR jobs must have a jobtype parameter".into())
    );
    assert_eq!(
        c.cmd(r#"PUSH {"jid":"0123456789","jobtype":"T"}"#),
        Reply::Error("ERR jobs must have an args parameter".into())
    );
    assert_eq!(
        c.cmd(r#"PUSH {"jid":"0123456789","jobtype":"T","args":[],"at":"noon"}"#),
        Reply::Error("ERR invalid timestamp for 'at': \"noon\"".into())
    );
    assert_eq!(
        c.cmd("ACK nope"),
        Reply::Error("ERR invalid ACK nope".into())
    );
    assert_eq!(c.cmd("FAIL {}"), Reply::Error("ERR missing JID".into()));
    assert_eq!(c.cmd("BEAT {}"), Reply::Error("ERR invalid BEAT {}".into()));
    assert_eq!(
        c.cmd("QUEUE FREEZE q"),
        Reply::Error("ERR unknown QUEUE subcommand FREEZE".into())
    );
    assert_eq!(
        c.cmd("HELLO {}"),
        Reply::Error("ERR HELLO was already received".into())
    );
    // Errors never close the connection.
    assert_eq!(c.cmd("END"), Reply::Ok);
}

#[test]
fn line_length_limit_at_its_boundary() {
    let (server, port) = start(&[]);
    let mut r = resp(server.port());
    assert_eq!(
        rcmd(&mut r, &["CONFIG", "SET", "faktory-max-line", "1024"]),
        Frame::ok()
    );
    let mut c = Fwp::hello(port, None);
    // Exactly 1024 bytes (without the line end): read and answered.
    let line = format!("FROB {}", "x".repeat(1024 - 5));
    assert_eq!(line.len(), 1024);
    assert_eq!(
        c.cmd(&line),
        Reply::Error("ERR unknown command FROB".into())
    );
    // One more: refused, and the connection closes (the rest cannot be framed).
    let line = format!("FROB {}", "x".repeat(1024 - 4));
    assert_eq!(
        c.cmd(&line),
        Reply::Error("ERR line too long (faktory-max-line is 1024 bytes)".into())
    );
    assert!(c.closed());
}

#[test]
fn connection_limit_at_its_boundary() {
    let (server, port) = start(&["--faktory-max-connections", "2"]);
    let a = Fwp::hello(port, None);
    let _b = Fwp::hello(port, None);
    let (mut c, _) = {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let c = Fwp {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        };
        (c, ())
    };
    assert_eq!(
        c.read(),
        Some(Reply::Error(
            "ERR too many connections (faktory-max-connections is 2)".into()
        ))
    );
    assert!(c.closed());
    // A closed connection frees its place (the server notices the close shortly).
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (mut c, hi) = {
            let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut c = Fwp {
                r: BufReader::new(s.try_clone().unwrap()),
                w: s,
            };
            let first = c.line().unwrap_or_default();
            (c, first)
        };
        if hi.starts_with("+HI ") {
            assert_eq!(c.cmd(r#"HELLO {"v":2}"#), Reply::Ok);
            break;
        }
        assert!(Instant::now() < deadline, "the freed place never came back");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut r = resp(server.port());
    assert_eq!(
        rcmd(&mut r, &["CONFIG", "GET", "faktory-max-connections"]),
        Frame::Array(vec![
            Frame::Bulk(Bytes::from_static(b"faktory-max-connections")),
            Frame::Bulk(Bytes::from_static(b"2"))
        ])
    );
}

#[test]
fn a_silent_connection_is_closed_after_the_handshake_timeout() {
    let (_server, port) = start(&["--faktory-handshake-timeout", "100"]);
    let (mut c, _) = Fwp::connect(port);
    // Nothing sent: the server closes it (the read does not time out first).
    assert!(c.closed());
}

#[test]
fn listener_is_off_by_default() {
    let server = crate::start(&[]);
    let mut r = resp(server.port());
    assert_eq!(
        rcmd(&mut r, &["CONFIG", "GET", "faktory-port"]),
        Frame::Array(vec![
            Frame::Bulk(Bytes::from_static(b"faktory-port")),
            Frame::Bulk(Bytes::from_static(b"0"))
        ])
    );
    match rcmd(&mut r, &["CONFIG", "SET", "faktory-port", "7419"]) {
        Frame::Error(e) => assert!(String::from_utf8_lossy(&e).contains("immutable")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn push_fetch_ack_and_the_job_seen_from_resp() {
    let (server, port) = start(&[]);
    let mut producer = Fwp::hello(port, None);
    let mut worker = Fwp::hello(port, Some("wid-1"));
    let mut r = resp(server.port());
    assert_eq!(
        producer.cmd(&push("jid-00000001", "Add", json!({"custom": {"k": "v"}}))),
        Reply::Ok
    );
    // The job is an ordinary Basalt job: its Faktory JSON is the payload.
    let got = rcmd(&mut r, &["JOB.GET", "jid-00000001"]);
    assert_eq!(text(&get_field(&got, "state")), "waiting");
    assert_eq!(text(&get_field(&got, "queue")), "default");
    let payload: Value = serde_json::from_str(&text(&get_field(&got, "payload"))).unwrap();
    assert_eq!(payload["jobtype"], "Add");
    assert_eq!(payload["custom"]["k"], "v");
    assert!(payload["created_at"].as_str().unwrap().ends_with('Z'));

    let j = fetched(worker.cmd("FETCH default"));
    assert_eq!(j["jid"], "jid-00000001");
    assert_eq!(j["jobtype"], "Add");
    assert_eq!(j["args"], json!([1, "two"]));
    assert_eq!(j["queue"], "default");
    assert!(j.get("failure").is_none());
    let got = rcmd(&mut r, &["JOB.GET", "jid-00000001"]);
    assert_eq!(text(&get_field(&got, "state")), "active");
    assert_eq!(text(&get_field(&got, "worker")), "wid-1");

    // ACK from another connection (clients use pools): by jid alone.
    assert_eq!(producer.cmd(r#"ACK {"jid":"jid-00000001"}"#), Reply::Ok);
    let got = rcmd(&mut r, &["JOB.GET", "jid-00000001"]);
    assert_eq!(text(&get_field(&got, "state")), "completed");
    // A second ACK, or one for a job nobody knows: OK, as Faktory answers.
    assert_eq!(worker.cmd(r#"ACK {"jid":"jid-00000001"}"#), Reply::Ok);
    assert_eq!(worker.cmd(r#"ACK {"jid":"never-pushed"}"#), Reply::Ok);

    // Nothing left: FETCH waits its 2 s and answers nil.
    assert_eq!(worker.cmd("FETCH default"), Reply::Nil);
}

#[test]
fn fetch_takes_queues_in_the_order_given_and_wakes_on_push() {
    let (server, port) = start(&[]);
    let mut p = Fwp::hello(port, None);
    let mut w = Fwp::hello(port, Some("w"));
    assert_eq!(
        p.cmd(&push("low-0000001", "T", json!({"queue": "low"}))),
        Reply::Ok
    );
    assert_eq!(
        p.cmd(&push("crit-000001", "T", json!({"queue": "critical"}))),
        Reply::Ok
    );
    assert_eq!(fetched(w.cmd("FETCH critical low"))["jid"], "crit-000001");
    assert_eq!(fetched(w.cmd("FETCH critical low"))["jid"], "low-0000001");
    // A blocked FETCH is woken by a push from a RESP client.
    w.send("FETCH critical low");
    let mut r = resp(server.port());
    std::thread::sleep(Duration::from_millis(200));
    let payload = job("resp-000001", "T", json!({}));
    assert!(matches!(
        rcmd(&mut r, &["JOB.PUSH", "low", &payload, "ID", "resp-000001"]),
        Frame::Bulk(_)
    ));
    assert_eq!(fetched(w.read().unwrap())["jid"], "resp-000001");
}

#[test]
fn fail_retries_with_failure_details_then_dead() {
    let (server, port) = start(&["--faktory-retry-backoff", "job"]);
    let mut r = resp(server.port());
    let mut w = Fwp::hello(port, Some("w"));
    assert_eq!(
        w.cmd(&push("fails-00001", "Boom", json!({"retry": 1}))),
        Reply::Ok
    );
    let first = fetched(w.cmd("FETCH"));
    assert_eq!(first["jid"], "fails-00001");
    assert_eq!(
        w.cmd(
            r#"FAIL {"jid":"fails-00001","errtype":"RuntimeError","message":"boom","backtrace":["a.rb:1"]}"#
        ),
        Reply::Ok
    );
    let got = rcmd(&mut r, &["JOB.GET", "fails-00001"]);
    assert_eq!(text(&get_field(&got, "state")), "failed");
    // The engine's default backoff (1 s) brings it back; the re-delivery carries
    // Faktory's `failure`.
    let deadline = Instant::now() + Duration::from_secs(20);
    let again = loop {
        if let Reply::Bulk(b) = w.cmd("FETCH default") {
            break serde_json::from_str::<Value>(&b).unwrap();
        }
        assert!(Instant::now() < deadline, "the retry never came");
    };
    assert_eq!(again["jid"], "fails-00001");
    assert_eq!(again["failure"]["errtype"], "RuntimeError");
    assert_eq!(again["failure"]["message"], "boom");
    assert_eq!(again["failure"]["backtrace"], json!(["a.rb:1"]));
    assert_eq!(again["failure"]["retry_count"], 0);
    // retry 1 used up: the second failure makes it dead.
    assert_eq!(
        w.cmd(r#"FAIL {"jid":"fails-00001","errtype":"E","message":"again"}"#),
        Reply::Ok
    );
    let got = rcmd(&mut r, &["JOB.GET", "fails-00001"]);
    assert_eq!(text(&get_field(&got, "state")), "dead");

    // retry 0: discarded at the first failure (not kept in the dead set).
    assert_eq!(
        w.cmd(&push("ephemeral01", "T", json!({"retry": 0}))),
        Reply::Ok
    );
    assert_eq!(fetched(w.cmd("FETCH"))["jid"], "ephemeral01");
    assert_eq!(w.cmd(r#"FAIL {"jid":"ephemeral01"}"#), Reply::Ok);
    let got = rcmd(&mut r, &["JOB.GET", "ephemeral01"]);
    assert_eq!(text(&get_field(&got, "state")), "cancelled");
    // FAIL of a job nobody fetched: Faktory's error.
    assert_eq!(
        w.cmd(r#"FAIL {"jid":"nobody-knows"}"#),
        Reply::Error("ERR Job not found nobody-knows".into())
    );
}

#[test]
fn faktory_backoff_schedules_the_retry_by_its_formula() {
    let (server, port) = start(&[]);
    let mut r = resp(server.port());
    let mut w = Fwp::hello(port, Some("w"));
    assert_eq!(w.cmd(&push("backoff-001", "T", json!({}))), Reply::Ok);
    fetched(w.cmd("FETCH"));
    let before = basalt_server::server::unix_ms();
    assert_eq!(
        w.cmd(r#"FAIL {"jid":"backoff-001","message":"m"}"#),
        Reply::Ok
    );
    let got = rcmd(&mut r, &["JOB.GET", "backoff-001"]);
    let Frame::Integer(retry_at) = get_field(&got, "retry_at") else {
        panic!("{got:?}")
    };
    // First failure: 15 + rand(30) seconds (0⁴ + 15 + rand(30)·1).
    let after = basalt_server::server::unix_ms();
    let retry_at = retry_at as u64;
    assert!(
        retry_at >= before + 15_000 && retry_at <= after + 44_000,
        "{retry_at}"
    );
}

#[test]
fn pushb_reports_per_job_errors() {
    let (server, port) = start(&[]);
    let mut p = Fwp::hello(port, None);
    let batch = format!(
        "[{},{},{}]",
        job("batch-00001", "T", json!({})),
        job("batch-00002", "T", json!({"queue": "other"})),
        r#"{"jid":"batch-00003","args":[]}"#
    );
    match p.cmd(&format!("PUSHB {batch}")) {
        Reply::Bulk(b) => {
            let v: Value = serde_json::from_str(&b).unwrap();
            assert_eq!(
                v,
                json!({"batch-00003": "jobs must have a jobtype parameter"})
            );
        }
        other => panic!("{other:?}"),
    }
    let mut r = resp(server.port());
    for (jid, q) in [("batch-00001", "default"), ("batch-00002", "other")] {
        let got = rcmd(&mut r, &["JOB.GET", jid]);
        assert_eq!(text(&get_field(&got, "queue")), q);
    }
    assert_eq!(rcmd(&mut r, &["JOB.GET", "batch-00003"]), Frame::Null);
}

#[test]
fn beat_reports_quiet_and_terminate_and_quiet_workers_get_nothing() {
    let (server, port) = start(&[]);
    let mut r = resp(server.port());
    let mut w = Fwp::hello(port, Some("beater"));
    assert_eq!(w.cmd(r#"BEAT {"wid":"beater","rss_kb":1}"#), Reply::Ok);
    assert_eq!(w.cmd(&push("quiet-00001", "T", json!({}))), Reply::Ok);
    assert_eq!(rcmd(&mut r, &["WORKER.QUIET", "beater"]), Frame::ok());
    assert_eq!(
        w.cmd(r#"BEAT {"wid":"beater"}"#),
        Reply::Bulk(r#"{"state":"quiet"}"#.into())
    );
    // Quiet: FETCH hands out nothing (the job stays waiting).
    assert_eq!(w.cmd("FETCH"), Reply::Nil);
    let got = rcmd(&mut r, &["JOB.GET", "quiet-00001"]);
    assert_eq!(text(&get_field(&got, "state")), "waiting");
    assert_eq!(rcmd(&mut r, &["WORKER.TERMINATE", "beater"]), Frame::ok());
    assert_eq!(
        w.cmd(r#"BEAT {"wid":"beater"}"#),
        Reply::Bulk(r#"{"state":"terminate"}"#.into())
    );
}

#[test]
fn info_queue_control_and_flush() {
    let (server, port) = start(&[]);
    let mut r = resp(server.port());
    let mut c = Fwp::hello(port, Some("w"));
    for i in 0..3 {
        assert_eq!(
            c.cmd(&push(&format!("info-0000{i}"), "T", json!({"queue": "q1"}))),
            Reply::Ok
        );
    }
    let info: Value = match c.cmd("INFO") {
        Reply::Bulk(b) => serde_json::from_str(&b).unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(info["faktory"]["queues"]["q1"], 3);
    assert_eq!(info["faktory"]["total_enqueued"], 3);
    assert_eq!(info["server"]["description"], "Basalt");

    assert_eq!(c.cmd("QUEUE PAUSE q1 missing"), Reply::Ok);
    assert_eq!(c.cmd("FETCH q1"), Reply::Nil);
    assert_eq!(c.cmd("QUEUE RESUME *"), Reply::Ok);
    assert_eq!(fetched(c.cmd("FETCH q1"))["jid"], "info-00000");
    assert_eq!(c.cmd("QUEUE REMOVE q1"), Reply::Ok);
    assert_eq!(c.cmd("FETCH q1"), Reply::Nil);

    // FLUSH removes queues, and only queues.
    assert_eq!(rcmd(&mut r, &["SET", "plain", "v"]), Frame::ok());
    assert_eq!(c.cmd(&push("flushed-001", "T", json!({}))), Reply::Ok);
    assert_eq!(c.cmd("FLUSH"), Reply::Ok);
    assert_eq!(rcmd(&mut r, &["JOB.GET", "flushed-001"]), Frame::Null);
    assert_eq!(
        rcmd(&mut r, &["GET", "plain"]),
        Frame::Bulk(Bytes::from_static(b"v"))
    );
}

#[test]
fn an_acknowledged_push_survives_a_crash_and_a_prior_claim_is_reported() {
    let (mut server, port) = start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let dir = server
        .dir()
        .expect("scratch dir")
        .to_str()
        .unwrap()
        .to_string();
    let mut c = Fwp::hello(port, Some("w"));
    assert_eq!(c.cmd(&push("durable-001", "T", json!({}))), Reply::Ok);
    assert_eq!(c.cmd(&push("durable-002", "T", json!({}))), Reply::Ok);
    assert_eq!(fetched(c.cmd("FETCH"))["jid"], "durable-001");
    // SIGKILL right after the replies: `appendfsync always` made them durable first.
    server.crash().expect("kill");
    let (after, port) = start(&["--appendonly", "yes", "--dir", &dir]);
    let mut r = resp(after.port());
    let got = rcmd(&mut r, &["JOB.GET", "durable-001"]);
    assert_eq!(text(&get_field(&got, "state")), "active");
    let got = rcmd(&mut r, &["JOB.GET", "durable-002"]);
    assert_eq!(text(&get_field(&got, "state")), "waiting");
    // The claim's token was in the old process's memory: the ACK is refused (the job is
    // delivered again when its reservation ends), as docs/faktory.md says.
    let mut c = Fwp::hello(port, Some("w"));
    match c.cmd(r#"ACK {"jid":"durable-001"}"#) {
        Reply::Error(e) => assert!(e.contains("no claim of job durable-001"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(fetched(c.cmd("FETCH"))["jid"], "durable-002");
    assert_eq!(c.cmd(r#"ACK {"jid":"durable-002"}"#), Reply::Ok);
}

#[test]
fn at_priority_and_reserve_for_become_job_options() {
    let (server, port) = start(&[]);
    let mut r = resp(server.port());
    let mut c = Fwp::hello(port, Some("w"));
    let later = basalt_server::server::unix_ms() + 3_600_000;
    let at = basalt_server::faktory::time::format_ms(later);
    assert_eq!(
        c.cmd(&push("sched-0001", "T", json!({"at": at}))),
        Reply::Ok
    );
    let got = rcmd(&mut r, &["JOB.GET", "sched-0001"]);
    assert_eq!(text(&get_field(&got, "state")), "scheduled");
    assert_eq!(get_field(&got, "run_at"), Frame::Integer(later as i64));
    // Priority orders the queue; reserve_for 30 is clamped to Faktory's minute.
    assert_eq!(
        c.cmd(&push("prio-low01", "T", json!({"priority": 1}))),
        Reply::Ok
    );
    assert_eq!(
        c.cmd(&push(
            "prio-high1",
            "T",
            json!({"priority": 9, "reserve_for": 30})
        )),
        Reply::Ok
    );
    let before = basalt_server::server::unix_ms();
    assert_eq!(fetched(c.cmd("FETCH"))["jid"], "prio-high1");
    let after = basalt_server::server::unix_ms();
    let got = rcmd(&mut r, &["JOB.GET", "prio-high1"]);
    let Frame::Integer(deadline) = get_field(&got, "deadline") else {
        panic!("{got:?}")
    };
    let deadline = deadline as u64;
    assert!(
        deadline >= before + 60_000 && deadline <= after + 60_000,
        "{deadline}"
    );
    assert_eq!(get_field(&got, "priority"), Frame::Integer(9));
}

#[test]
fn job_size_limit_applies_to_the_stored_json() {
    let (server, port) = start(&[]);
    let mut r = resp(server.port());
    assert_eq!(
        rcmd(&mut r, &["CONFIG", "SET", "job-max-payload-bytes", "2000"]),
        Frame::ok()
    );
    let mut c = Fwp::hello(port, None);
    let with_arg = |jid: &str, n: usize| push(jid, "T", json!({"args": ["x".repeat(n)]}));
    // The stored JSON is the pushed job plus created_at, enqueued_at, queue and retry
    // (fixed-size fields): measure it once (jids of one length), then aim at the limit.
    assert_eq!(c.cmd(&with_arg("size-probe", 100)), Reply::Ok);
    let got = rcmd(&mut r, &["JOB.GET", "size-probe"]);
    let probe = text(&get_field(&got, "payload")).len();
    let at_limit = 100 + (2000 - probe);
    assert_eq!(c.cmd(&with_arg("size-limit", at_limit)), Reply::Ok);
    let got = rcmd(&mut r, &["JOB.GET", "size-limit"]);
    assert_eq!(text(&get_field(&got, "payload")).len(), 2000);
    match c.cmd(&with_arg("size-1over", at_limit + 1)) {
        Reply::Error(e) => assert!(e.contains("job-max-payload-bytes"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(rcmd(&mut r, &["JOB.GET", "size-1over"]), Frame::Null);
}

#[test]
fn requirepass_protects_the_faktory_port_when_it_has_no_password_of_its_own() {
    let (_server, port) = start(&["--requirepass", "resp-pw"]);
    let (mut c, hi) = Fwp::connect(port);
    let (i, salt) = (
        hi["i"].as_u64().expect("i") as u32,
        hi["s"].as_str().unwrap().to_string(),
    );
    let hash = basalt_server::faktory::conn::pwdhash(b"resp-pw", &salt, i);
    assert_eq!(
        c.cmd(&format!(r#"HELLO {{"v":2,"pwdhash":"{hash}"}}"#)),
        Reply::Ok
    );
    // faktory-password, when set, is the one asked for instead.
    let (_server, port) = start(&["--requirepass", "resp-pw", "--faktory-password", "fk-pw"]);
    let (mut c, hi) = Fwp::connect(port);
    let (i, salt) = (
        hi["i"].as_u64().unwrap() as u32,
        hi["s"].as_str().unwrap().to_string(),
    );
    let wrong = basalt_server::faktory::conn::pwdhash(b"resp-pw", &salt, i);
    assert_eq!(
        c.cmd(&format!(r#"HELLO {{"v":2,"pwdhash":"{wrong}"}}"#)),
        Reply::Error("ERR Invalid password".into())
    );
}
