//! `--batch` against a scripted server: a connection's next requests wait until every
//! request of its batch is answered (redis-benchmark's `-P`), while the default closed
//! loop sends a new request as each reply arrives. The server answers all but the last
//! request of each batch, then looks for early requests before answering the last one.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

const BATCH: usize = 4;
const BATCHES: usize = 3;
/// One PING as basalt-bench encodes it.
const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";

/// What the scripted server saw.
struct Seen {
    /// Requests received in all.
    requests: usize,
    /// Requests that arrived while the last one of a batch was still unanswered.
    early: usize,
}

/// Whole PINGs in `buf` (each checked).
fn pings(buf: &[u8]) -> usize {
    let n = buf.len() / PING.len();
    assert!(buf.chunks(PING.len()).take(n).all(|c| c == PING), "{buf:?}");
    n
}

/// Serves one connection: whenever a batch's worth of requests is unanswered, answers
/// all but the last, waits up to `patience` for any further request, then answers every
/// request received.
fn serve(listener: TcpListener, patience: Duration) -> Seen {
    let total = BATCH * BATCHES;
    let (mut s, _) = listener.accept().expect("basalt-bench connects");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut answered = 0;
    let mut early = 0;
    while answered < total {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        while pings(&buf) - answered < BATCH.min(total - answered) {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => panic!("the client stopped after {answered} replies"),
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
            }
        }
        let held = pings(&buf) - 1;
        s.write_all(&b"+PONG\r\n".repeat(held - answered)).unwrap();
        answered = held;
        // Anything that comes now was sent before the batch was fully answered.
        s.set_read_timeout(Some(patience)).unwrap();
        let before = pings(&buf);
        if let Ok(k) = s.read(&mut chunk) {
            buf.extend_from_slice(&chunk[..k]);
        }
        early += pings(&buf) - before;
        let now = pings(&buf);
        s.write_all(&b"+PONG\r\n".repeat(now - answered)).unwrap();
        answered = now;
    }
    Seen {
        requests: pings(&buf),
        early,
    }
}

fn run(batch: bool, patience: Duration) -> (Seen, serde_json::Value) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || serve(listener, patience));
    let json = std::env::temp_dir().join(format!(
        "basalt-bench-batch-{}-{batch}.json",
        std::process::id()
    ));
    let n = (BATCH * BATCHES).to_string();
    let depth = BATCH.to_string();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_basalt-bench"));
    cmd.args(["--port", &port.to_string(), "--clients", "1", "--pipeline"])
        .args([
            depth.as_str(),
            "--requests",
            n.as_str(),
            "--command",
            "PING",
        ])
        .args(["--timeout", "20", "--quiet", "--json"])
        .arg(&json);
    if batch {
        cmd.arg("--batch");
    }
    let out = cmd.output().expect("basalt-bench runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    (server.join().unwrap(), report)
}

#[test]
fn batches_wait_for_every_reply() {
    let (seen, report) = run(true, Duration::from_millis(300));
    assert_eq!(
        seen.early, 0,
        "requests sent before their batch was answered"
    );
    assert_eq!(seen.requests, BATCH * BATCHES);
    assert_eq!(report["requests"], BATCH * BATCHES);
    assert_eq!(report["settings"]["batch"], true);
}

#[test]
fn the_default_loop_refills_as_replies_arrive() {
    // The control: without --batch the answered requests are replaced at once, so the
    // server sees them while it still holds the last reply (it waits as long as needed).
    let (seen, report) = run(false, Duration::from_secs(20));
    assert!(seen.early > 0, "no refill before the batch was answered");
    assert_eq!(report["requests"], BATCH * BATCHES);
    assert_eq!(report["settings"]["batch"], false);
}
