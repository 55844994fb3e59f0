//! The jobs crash test: producers push 10,000 jobs and workers fetch and acknowledge
//! them while the server (`appendonly yes`, `appendfsync always`) is SIGKILLed several
//! times and restarted on the same directory. Afterwards every acknowledged push is
//! completed, no job was completed twice (no jid got two ACKs accepted by the server),
//! and no job is lost or left behind.
//!
//! Clients behave as real ones do across a crash: a producer re-sends a push whose reply
//! it did not get with the same `ID` (a push of an existing jid is a no-op), and a
//! worker re-sends an ACK whose reply it did not get with the same claim token (if the
//! first one landed, the second gets `STALE` and is not counted). A job whose FETCH
//! reply was lost is delivered again after its visibility timeout.

use basalt_proto::Frame;
use basalt_testkit::{RawClient, TestServer};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const JOBS: usize = 10_000;
const PRODUCERS: usize = 2;
const WORKERS: usize = 3;
const KILLS: usize = 5;

fn start(dir: &str) -> TestServer {
    crate::start(&[
        "--dir",
        dir,
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        // Keep every completed job, so each one can be checked at the end.
        "--job-retention-completed-count",
        "1000000",
    ])
}

/// Connects to the current server, waiting while it is down.
fn connect(port: &AtomicU16, stop: &AtomicBool) -> Option<RawClient> {
    while !stop.load(Ordering::Relaxed) {
        if let Ok(mut c) = RawClient::connect_port(port.load(Ordering::Acquire)) {
            let _ = c.set_timeout(Duration::from_secs(5));
            // The server answers -LOADING until its AOF is replayed.
            if let Ok(Frame::Simple(_)) = c.cmd_frame(&[b"PING"]) {
                return Some(c);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn args(v: &[&str]) -> Vec<Vec<u8>> {
    v.iter().map(|s| s.as_bytes().to_vec()).collect()
}

/// Sends `cmd` until a reply that is not `-LOADING` comes back, reconnecting across
/// crashes. `None` once `stop` is set.
fn call(
    c: &mut Option<RawClient>,
    port: &AtomicU16,
    stop: &AtomicBool,
    cmd: &[Vec<u8>],
) -> Option<Frame> {
    let refs: Vec<&[u8]> = cmd.iter().map(Vec::as_slice).collect();
    loop {
        if c.is_none() {
            *c = Some(connect(port, stop)?);
        }
        match c.as_mut().map(|c| c.cmd_frame(&refs)) {
            Some(Ok(Frame::Error(e))) if e.starts_with(b"LOADING") => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Some(Ok(f)) => return Some(f),
            _ => *c = None,
        }
    }
}

/// The (field, value) pairs of a RESP2 map.
fn field<'a>(m: &'a [Frame], name: &str) -> Option<&'a Frame> {
    m.chunks(2)
        .find(|kv| kv[0] == Frame::Bulk(name.to_string().into()))
        .map(|kv| &kv[1])
}

fn bulk_str(f: Option<&Frame>) -> String {
    match f {
        Some(Frame::Bulk(b)) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("not a bulk: {other:?}"),
    }
}

#[test]
fn jobs_survive_sigkill_exactly_once() {
    let dir = crate::rl::scratch("jobs-crash");
    let d = dir.to_string_lossy().into_owned();
    let mut server = start(&d);
    let port = Arc::new(AtomicU16::new(server.port()));
    let stop = Arc::new(AtomicBool::new(false));
    let pushed = Arc::new(AtomicUsize::new(0));
    // jid -> ACKs the server accepted for it.
    let acks: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let t0 = Instant::now();

    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (port, stop, pushed) = (port.clone(), stop.clone(), pushed.clone());
            std::thread::spawn(move || {
                let mut c = None;
                for i in (p..JOBS).step_by(PRODUCERS) {
                    let jid = format!("job-{i}");
                    let cmd = args(&["JOB.PUSH", "work", &format!("payload-{i}"), "ID", &jid]);
                    match call(&mut c, &port, &stop, &cmd) {
                        Some(Frame::Bulk(b)) => assert_eq!(b, jid.as_bytes()),
                        Some(other) => panic!("push {jid}: {other:?}"),
                        None => return,
                    }
                    pushed.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (port, stop, acks) = (port.clone(), stop.clone(), acks.clone());
            std::thread::spawn(move || {
                let mut c = None;
                let fetch = args(&[
                    "JOB.FETCH",
                    "work",
                    "COUNT",
                    "20",
                    "BLOCK",
                    "100",
                    "VISIBILITY",
                    "2000",
                    "WORKER",
                    &format!("w{w}"),
                ]);
                while !stop.load(Ordering::Relaxed) {
                    let Some(reply) = call(&mut c, &port, &stop, &fetch) else {
                        return;
                    };
                    let jobs = match reply {
                        Frame::Array(jobs) => jobs,
                        Frame::Null | Frame::NullArray => continue,
                        other => panic!("fetch: {other:?}"),
                    };
                    for job in jobs {
                        let Frame::Array(m) = job else {
                            panic!("job {job:?}")
                        };
                        let jid = bulk_str(field(&m, "jid"));
                        let token = bulk_str(field(&m, "token"));
                        // A crash may eat the reply: send the same ACK again until one
                        // comes back.
                        let ack = args(&["JOB.ACK", &jid, &token]);
                        match call(&mut c, &port, &stop, &ack) {
                            Some(Frame::Error(e)) => assert!(
                                e.starts_with(b"STALE"),
                                "ack {jid}: {}",
                                String::from_utf8_lossy(&e)
                            ),
                            Some(_) => *acks.lock().unwrap().entry(jid).or_default() += 1,
                            None => return,
                        }
                    }
                }
            })
        })
        .collect();

    // Crash the server several times while the clients work.
    let mut at_kills = Vec::new();
    for k in 0..KILLS {
        // Kill at evenly spaced points of the producers' progress, so every kill hits
        // the work however fast the machine is.
        let at = (k + 1) * JOBS / (KILLS + 1);
        let waited = Instant::now();
        while pushed.load(Ordering::Relaxed) < at {
            assert!(
                waited.elapsed() < Duration::from_secs(60),
                "pushes stalled before {at}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        server.crash().expect("kill");
        at_kills.push((pushed.load(Ordering::Relaxed), acks.lock().unwrap().len()));
        server = start(&d);
        port.store(server.port(), Ordering::Release);
    }

    // Then let them finish: every push acknowledged and every job completed.
    let mut c = server.client().expect("client");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = pushed.load(Ordering::Relaxed) == JOBS
            && match c.cmd_frame(&[b"QUEUE.STATS", b"work"]).expect("stats") {
                Frame::Array(m) => field(&m, "completed") == Some(&Frame::Integer(JOBS as i64)),
                other => panic!("stats: {other:?}"),
            };
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not finished: {} pushed",
            pushed.load(Ordering::Relaxed)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    for h in producers.into_iter().chain(workers) {
        h.join().expect("client thread");
    }
    let elapsed = t0.elapsed();

    let Frame::Array(stats) = c.cmd_frame(&[b"QUEUE.STATS", b"work"]).expect("stats") else {
        panic!("stats")
    };
    for (state, want) in [
        ("completed", JOBS as i64),
        ("waiting", 0),
        ("active", 0),
        ("scheduled", 0),
        ("failed", 0),
        ("dead", 0),
        ("cancelled", 0),
    ] {
        assert_eq!(
            field(&stats, state),
            Some(&Frame::Integer(want)),
            "{state}: {stats:?}"
        );
    }
    // Each job is there, completed, once.
    let acks = acks.lock().unwrap();
    for i in 0..JOBS {
        let jid = format!("job-{i}");
        let Frame::Array(m) = c.cmd_frame(&[b"JOB.GET", jid.as_bytes()]).expect("get") else {
            panic!("JOB.GET {jid}: missing")
        };
        assert_eq!(bulk_str(field(&m, "state")), "completed", "{jid}");
        assert_eq!(bulk_str(field(&m, "payload")), format!("payload-{i}"));
    }
    // No job was completed twice; every accepted ACK is for a pushed job.
    assert!(
        acks.values().all(|&n| n == 1),
        "a job was acknowledged twice"
    );
    assert!(acks.len() <= JOBS);
    // Almost every ACK reply arrived (only those cut by a crash may be missing).
    assert!(acks.len() >= JOBS - KILLS * WORKERS, "{} acks", acks.len());
    // The kills came while the clients worked (pushed, acknowledged at each kill).
    assert!(
        at_kills.iter().all(|&(p, a)| p < JOBS && a > 0),
        "no kill hit the work: {at_kills:?}"
    );
    eprintln!(
        "jobs crash test: {JOBS} jobs, {KILLS} kills at (pushed, acked) {at_kills:?}, {:.1} s",
        elapsed.as_secs_f64()
    );
    drop(c);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
