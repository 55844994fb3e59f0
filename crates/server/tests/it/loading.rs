//! Startup loading: the server accepts clients before the dataset is loaded; meanwhile
//! commands without the `loading` flag get `-LOADING`, INFO shows `loading:1` and the
//! `loading_*` fields, then the data is there and `loading:0`. The hidden
//! `key-load-delay` directive (as in Redis's tests) stretches the load so it is seen.

use crate::rdb::{info_field, ok, run, scratch};
use basalt_testkit::{RawClient, free_port};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KEYS: usize = 2000;

/// A scratch dir holding a `dump.rdb` of `KEYS` keys, written by Basalt.
fn dir_with_rdb(name: &str) -> std::path::PathBuf {
    let dir = scratch(name);
    let mut s = crate::rdb::start_in(&dir, &[]);
    let mut c = s.client().unwrap();
    let mut pipeline = Vec::new();
    for i in 0..KEYS {
        let k = format!("k{i}");
        pipeline.extend_from_slice(
            format!("*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n$1\r\nv\r\n", k.len()).as_bytes(),
        );
    }
    c.send_raw(&pipeline).unwrap();
    for _ in 0..KEYS {
        c.read_reply_raw().unwrap();
    }
    ok(&mut c, "SAVE");
    s.stop().unwrap();
    dir
}

/// Starts the server on `dir` with a 2 ms per key load delay and `extra`; returns the
/// child and a client connected as soon as it listens.
fn spawn_slow_loader(dir: &std::path::Path, extra: &[&str]) -> (std::process::Child, RawClient) {
    let port = free_port().unwrap();
    let port_s = port.to_string();
    let child = Command::new(env!("CARGO_BIN_EXE_basalt-server"))
        .args(["--port", &port_s, "--bind", "127.0.0.1", "--dir"])
        .arg(dir)
        .args(["--key-load-delay", "2000"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let t0 = Instant::now();
    let c = loop {
        if let Ok(c) = RawClient::connect_port(port) {
            break c;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "never listened");
        std::thread::sleep(Duration::from_millis(10));
    };
    (child, c)
}

#[test]
fn clients_see_loading_then_the_data() {
    let dir = dir_with_rdb("loading");
    let rdb_len = std::fs::metadata(dir.join("dump.rdb")).unwrap().len();
    let (mut child, mut c) = spawn_slow_loader(&dir, &["--save", ""]);
    let t0 = Instant::now();
    // KEYS keys at 2 ms each: the load takes seconds, the checks below microseconds.
    assert_eq!(
        run(&mut c, "GET k1"),
        b"-LOADING Redis is loading the dataset in memory\r\n"
    );
    assert_eq!(
        run(&mut c, "PING"),
        b"-LOADING Redis is loading the dataset in memory\r\n"
    );
    assert_eq!(info_field(&mut c, "loading"), "1");
    assert_eq!(
        info_field(&mut c, "loading_total_bytes"),
        rdb_len.to_string()
    );
    let start: u64 = info_field(&mut c, "loading_start_time").parse().unwrap();
    assert!(start > 0);
    let perc: f64 = info_field(&mut c, "loading_loaded_perc").parse().unwrap();
    assert!((0.0..=100.0).contains(&perc));
    info_field(&mut c, "loading_loaded_bytes");
    info_field(&mut c, "loading_eta_seconds");
    // Every INFO section answers meanwhile (the loader lets the shards go between keys).
    let all = String::from_utf8(run(&mut c, "INFO everything")).unwrap();
    assert!(all.contains("\r\nloading:1\r\n"), "{all}");
    assert!(all.contains("# Keyspace"), "{all}");
    // Commands flagged `loading` run meanwhile.
    assert!(run(&mut c, "CONFIG GET port").starts_with(b"*2"));
    // Then the data.
    while run(&mut c, "PING") != b"+PONG\r\n" {
        assert!(t0.elapsed() < Duration::from_secs(60), "never loaded");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(info_field(&mut c, "loading"), "0");
    assert_eq!(run(&mut c, "DBSIZE"), format!(":{KEYS}\r\n").as_bytes());
    assert_eq!(run(&mut c, "GET k1"), b"$1\r\nv\r\n");
    let info = String::from_utf8(run(&mut c, "INFO persistence")).unwrap();
    assert!(!info.contains("loading_start_time"), "{info}");
    // The hidden directive answers by name only.
    assert_eq!(run(&mut c, "CONFIG GET key-load-*"), b"*0\r\n");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn shutdown_while_loading_never_saves_a_partial_dataset() {
    let dir = dir_with_rdb("loading-shutdown");
    let before = std::fs::read(dir.join("dump.rdb")).unwrap();
    // Default save points: a normal SHUTDOWN would save.
    let (mut child, mut c) = spawn_slow_loader(&dir, &[]);
    assert_eq!(
        run(&mut c, "GET k1"),
        b"-LOADING Redis is loading the dataset in memory\r\n"
    );
    c.send(&[b"SHUTDOWN"]).unwrap();
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status:?}");
    assert_eq!(std::fs::read(dir.join("dump.rdb")).unwrap(), before);
}
