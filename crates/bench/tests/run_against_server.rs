//! End-to-end runs of the `basalt-bench` binary against a real basalt-server started by
//! the test: request counts, error accounting and the cache-aside hit ratio. No timing
//! assertions: how fast the server is belongs in docs/benchmarks.md, not in a test.
//!
//! basalt-server is another package's binary, so it is located with
//! `basalt_testkit::server_binary()` (set `BASALT_SERVER_BIN` to override). `cargo test`
//! on the workspace builds it; when only this crate's tests run, build it first with
//! `cargo build -p basalt-server`.

use basalt_testkit::{Frame, TestServer, server_binary};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn server() -> TestServer {
    let bin = server_binary();
    assert!(
        bin.is_file(),
        "basalt-server is not built at {}: run `cargo build -p basalt-server` (or `cargo test` on \
         the whole workspace), or point BASALT_SERVER_BIN at a binary",
        bin.display()
    );
    TestServer::start(&bin, &[]).expect("basalt-server starts")
}

/// Runs basalt-bench with `args` against `port` and returns (exit success, JSON report).
fn bench(port: u16, args: &[&str]) -> (bool, Value) {
    let json = temp_json();
    let out = Command::new(env!("CARGO_BIN_EXE_basalt-bench"))
        .arg("--port")
        .arg(port.to_string())
        .args(args)
        .arg("--quiet")
        .arg("--json")
        .arg(&json)
        .output()
        .expect("basalt-bench runs");
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let _ = std::fs::remove_file(&json);
    (
        out.status.success(),
        serde_json::from_str(&text).expect("valid JSON"),
    )
}

fn temp_json() -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("basalt-bench-test-{}-{n}.json", std::process::id()))
}

fn count(report: &Value, cmd: &str) -> u64 {
    report["commands"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == cmd))
        .and_then(|c| c["count"].as_u64())
        .unwrap_or(0)
}

fn assert_clean(report: &Value) {
    assert_eq!(report["reply_errors"], serde_json::json!({}), "{report:#}");
    assert_eq!(
        report["connection_errors"],
        serde_json::json!({}),
        "{report:#}"
    );
    assert_eq!(report["lost"], 0, "{report:#}");
}

#[test]
fn closed_loop_mix_sends_exactly_the_requested_operations() {
    let srv = server();
    let args = [
        "--requests",
        "3000",
        "--clients",
        "4",
        "--threads",
        "2",
        "--pipeline",
        "3",
        "--ratio",
        "1:1",
        "--keyspace",
        "200",
        "--data-size",
        "10-40",
    ];
    let (ok, r) = bench(srv.port(), &args);
    assert!(ok);
    assert_clean(&r);
    assert_eq!(r["requests"], 3000);
    assert_eq!(r["connections"], 4);
    let (gets, sets) = (count(&r, "GET"), count(&r, "SET"));
    assert_eq!(gets + sets, 3000);
    // A 1:1 mix over 3000 draws: each side far from zero.
    assert!(gets > 1000 && sets > 1000, "GET {gets}, SET {sets}");
}

#[test]
fn cache_aside_reports_a_plausible_hit_ratio() {
    let srv = server();
    let args = [
        "--cache-aside",
        "--requests",
        "5000",
        "--clients",
        "4",
        "--keyspace",
        "50",
        "--key-pattern",
        "zipf:0.99",
        "--data-size",
        "16",
    ];
    let (ok, r) = bench(srv.port(), &args);
    assert!(ok);
    assert_clean(&r);
    let (hits, misses) = (r["hits"].as_u64().unwrap(), r["misses"].as_u64().unwrap());
    assert_eq!(hits + misses, 5000, "every GET is a hit or a miss");
    assert_eq!(count(&r, "GET"), 5000);
    assert_eq!(count(&r, "SET"), misses, "each miss is followed by one SET");
    // The server starts empty and nothing expires: each of the 50 keys misses at least
    // never and at most once per connection (two connections may miss the same key before
    // either SET lands).
    assert!((1..=50 * 4).contains(&misses), "misses {misses}");
    let ratio = r["hit_ratio"].as_f64().unwrap();
    assert!((0.96..1.0).contains(&ratio), "hit ratio {ratio}");
}

#[test]
fn error_replies_are_counted_by_their_first_word() {
    let srv = server();
    let args = [
        "--command",
        "NOSUCHCOMMAND __key__",
        "--requests",
        "200",
        "--clients",
        "2",
    ];
    let (ok, r) = bench(srv.port(), &args);
    assert!(ok);
    assert_eq!(
        r["reply_errors"],
        serde_json::json!({ "ERR": 200 }),
        "{r:#}"
    );
    assert_eq!(r["commands"][0]["errors"], 200);
    assert_eq!(r["connection_errors"], serde_json::json!({}));
}

#[test]
fn open_loop_with_ttl_and_templates_runs_cleanly() {
    let srv = server();
    let args = [
        "--rate",
        "2000",
        "--duration",
        "0.5",
        "--clients",
        "3",
        "--ttl",
        "60",
        "--command",
        "SET user:__key__ __data__",
        "--command",
        "GET user:__key__",
        "--ratio",
        "1:3",
        "--key-pattern",
        "gaussian",
        "--keyspace",
        "1000",
    ];
    let (ok, r) = bench(srv.port(), &args);
    assert!(ok);
    assert_clean(&r);
    assert!(r["requests"].as_u64().unwrap() > 0);
    assert!(
        r["send_lag_ms"]["p99"].is_number(),
        "open-loop runs report the client's lag"
    );
    let mut c = srv.client().expect("client");
    // The SETs carried the TTL: a key written by the run has one.
    let keys = c.cmd_frame(&[b"KEYS", b"user:*"]).expect("KEYS");
    let Frame::Array(keys) = keys else {
        panic!("KEYS replied {keys:?}")
    };
    let Some(Frame::Bulk(key)) = keys.first() else {
        panic!("the run wrote no user:* key")
    };
    let ttl = c.cmd_frame(&[b"TTL", key]).expect("TTL");
    let Frame::Integer(ttl) = ttl else {
        panic!("TTL replied {ttl:?}")
    };
    assert!((1..=60).contains(&ttl), "TTL {ttl}");
}

#[test]
fn connection_failures_are_reported_not_hung_on() {
    // A port nothing listens on: every connect is refused.
    let port = basalt_testkit::free_port().expect("port");
    let (ok, r) = bench(port, &["--requests", "10", "--clients", "3"]);
    assert!(!ok, "a run without any connection must fail");
    assert_eq!(r["connections"], 0);
    assert_eq!(
        r["connection_errors"]["connect: ConnectionRefused"], 3,
        "{r:#}"
    );
}

/// `--stop-file`: a run with an hour-long `--duration` ends once the file appears (made
/// here after the server has seen some of its commands), replies in flight are
/// awaited, and the report covers what was sent.
#[test]
fn a_stop_file_ends_the_measurement() {
    let s = server();
    let stop = temp_json().with_extension("stop");
    let _ = std::fs::remove_file(&stop);
    let port = s.port();
    let watcher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut c = basalt_testkit::RawClient::connect_port(port).expect("client");
            loop {
                let info = c.cmd(&[b"INFO", b"stats"]).expect("info");
                let text = String::from_utf8_lossy(&info).into_owned();
                let n: u64 = text
                    .lines()
                    .find_map(|l| l.strip_prefix("total_commands_processed:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if n >= 50 {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            std::fs::write(&stop, b"").expect("stop file");
        })
    };
    let (ok, r) = bench(
        port,
        &[
            "--rate",
            "500",
            "--clients",
            "2",
            "--duration",
            "3600",
            "--stop-file",
            stop.to_str().expect("utf-8 path"),
        ],
    );
    watcher.join().expect("watcher");
    let _ = std::fs::remove_file(&stop);
    assert!(ok, "{r:#}");
    assert_clean(&r);
    assert!(r["requests"].as_u64().unwrap_or(0) > 0, "{r:#}");
}
