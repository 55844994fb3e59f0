//! The SDK against a real basalt-server (started by basalt-testkit on a free port).
//!
//! basalt-server is another package's binary: `cargo test` on the workspace builds it;
//! when only this crate's tests run, build it first with `cargo build -p basalt-server`
//! (or point `BASALT_SERVER_BIN` at a binary).

use basalt_testkit::{TestServer, server_binary};
use basalt_worker::{
    Backoff, Client, ConnectOptions, FetchOptions, PushOptions, Retry, Worker, WorkerState,
};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

fn server() -> TestServer {
    let bin = server_binary();
    assert!(
        bin.is_file(),
        "basalt-server is not built at {}: run `cargo build -p basalt-server`",
        bin.display()
    );
    TestServer::start(&bin, &[]).expect("basalt-server starts")
}

fn addr(s: &TestServer) -> String {
    format!("127.0.0.1:{}", s.port())
}

/// Runs `worker` until `done` says so (polled), then quiets it and returns its stats.
async fn run_until(worker: Worker, mut done: impl FnMut() -> bool) -> basalt_worker::RunStats {
    let stop = worker.shutdown_handle();
    let run = tokio::spawn(worker.run());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker never got there"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.quiet();
    run.await.expect("joined").expect("run")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_round_trip_push_fetch_progress_ack_get() {
    let s = server();
    let mut c = Client::connect(addr(&s)).await.unwrap();
    let opts = PushOptions {
        jid: Some("rt-1".into()),
        priority: Some(7),
        tags: vec!["a".into()],
        ..Default::default()
    };
    let jid = c.push("q", "Add", json!([1, 2]), &opts).await.unwrap();
    assert_eq!(jid.as_deref(), Some("rt-1"));
    let jobs = c
        .fetch(
            &["q"],
            &FetchOptions {
                worker: Some("w".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    let j = &jobs[0];
    assert_eq!(
        (j.jid.as_str(), j.queue.as_str(), j.attempt, j.priority),
        ("rt-1", "q", 1, 7)
    );
    assert_eq!(j.envelope(), Some(("Add".to_string(), json!([1, 2]))));
    c.progress(&j.jid, &j.token, 50, Some("half"))
        .await
        .unwrap();
    // The default visibility is 30 min: an hour from now is later than the first deadline.
    let deadline = c.extend(&j.jid, &j.token, 3_600_000).await.unwrap();
    assert!(deadline > j.deadline, "{deadline} <= {}", j.deadline);
    let r = c
        .ack(&j.jid, &j.token, Some(b"3"), Some("idem"))
        .await
        .unwrap();
    assert_eq!(r.as_deref(), Some(b"3".as_slice()));
    // The same idempotency key answers the stored result; another token is stale.
    let again = c
        .ack(&j.jid, b"not-the-token", None, Some("idem"))
        .await
        .unwrap();
    assert_eq!(again.as_deref(), Some(b"3".as_slice()));
    let info = c.get("rt-1").await.unwrap().expect("known");
    assert_eq!(info.state, "completed");
    assert_eq!(info.result.as_deref(), Some(b"3".as_slice()));
    assert_eq!(info.progress, 50);
    assert_eq!(info.worker.as_deref(), Some("w"));
    assert!(c.get("nope").await.unwrap().is_none());
    // Nothing left: an empty fetch, not an error.
    assert!(
        c.fetch(&["q"], &FetchOptions::default())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_nack_cancel_and_beat() {
    let s = server();
    let mut c = Client::connect(addr(&s)).await.unwrap();
    let opts = PushOptions {
        retry: Some(1),
        backoff: Some(Backoff::Fixed { ms: 60_000 }),
        ..Default::default()
    };
    let jid = c.push("q", "T", json!([]), &opts).await.unwrap().unwrap();
    let j = c
        .fetch(&["q"], &FetchOptions::default())
        .await
        .unwrap()
        .remove(0);
    let out = c
        .fail(&jid, &j.token, "boom", Retry::Backoff)
        .await
        .unwrap();
    assert_eq!(out.state, "failed");
    assert!(out.retry_at.is_some());
    // A stale claim is a server error.
    match c.ack(&jid, &j.token, None, None).await {
        Err(basalt_worker::Error::Server(e)) => assert!(e.starts_with("STALE"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(c.cancel(&jid).await.unwrap());
    assert_eq!(c.get(&jid).await.unwrap().unwrap().state, "cancelled");

    let jid = c
        .push("q", "T", json!([]), &PushOptions::default())
        .await
        .unwrap()
        .unwrap();
    let j = c
        .fetch(&["q"], &FetchOptions::default())
        .await
        .unwrap()
        .remove(0);
    c.nack(&jid, &j.token, None).await.unwrap();
    assert_eq!(c.get(&jid).await.unwrap().unwrap().state, "waiting");
    let j = c
        .fetch(&["q"], &FetchOptions::default())
        .await
        .unwrap()
        .remove(0);
    let out = c.fail(&jid, &j.token, "fatal", Retry::Never).await.unwrap();
    assert_eq!((out.state.as_str(), out.retry_at), ("dead", None));

    assert_eq!(c.beat("w1", Some(0)).await.unwrap(), WorkerState::Running);
    c.call(&[b"WORKER.QUIET", b"w1"]).await.unwrap();
    assert_eq!(c.beat("w1", None).await.unwrap(), WorkerState::Quiet);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_runs_handlers_within_its_concurrency_limit() {
    let s = server();
    let mut c = Client::connect(addr(&s)).await.unwrap();
    for i in 0..20 {
        c.push("work", "Sleep", json!([i]), &PushOptions::default())
            .await
            .unwrap();
    }
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let (r, p, d) = (running.clone(), peak.clone(), done.clone());
    let worker = Worker::new(ConnectOptions::new(addr(&s)))
        .queues(&["work"])
        .concurrency(3)
        .register("Sleep", move |job| {
            let (r, p, d) = (r.clone(), p.clone(), d.clone());
            async move {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(30)).await;
                r.fetch_sub(1, Ordering::SeqCst);
                d.fetch_add(1, Ordering::SeqCst);
                Ok(Some(job.args[0].to_string().into_bytes()))
            }
        });
    let stats = run_until(worker, || done.load(Ordering::SeqCst) == 20).await;
    assert_eq!(stats.completed, 20);
    assert_eq!(stats.failed, 0);
    let peak = peak.load(Ordering::SeqCst);
    assert!((1..=3).contains(&peak), "peak concurrency {peak}");
    let stats = c.call(&[b"QUEUE.STATS", b"work"]).await.unwrap();
    let text = format!("{stats:?}");
    assert!(text.contains("completed"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_errors_are_retried_by_the_server_then_dead() {
    let s = server();
    let mut c = Client::connect(addr(&s)).await.unwrap();
    let opts = PushOptions {
        retry: Some(1),
        backoff: Some(Backoff::Fixed { ms: 10 }),
        ..Default::default()
    };
    let flaky = c
        .push("r", "Flaky", json!([]), &opts)
        .await
        .unwrap()
        .unwrap();
    let doomed = c
        .push("r", "Doomed", json!([]), &opts)
        .await
        .unwrap()
        .unwrap();
    let unknown = c
        .push("r", "Nobody", json!([]), &opts)
        .await
        .unwrap()
        .unwrap();
    let mut pusher = Client::connect(addr(&s)).await.unwrap();
    let worker = Worker::new(ConnectOptions::new(addr(&s)))
        .queues(&["r"])
        .concurrency(2)
        .register("Flaky", |job| async move {
            if job.attempt == 1 {
                return Err("first try fails".into());
            }
            assert_eq!(job.last_error.as_deref(), Some("first try fails"));
            Ok(None)
        })
        .register("Doomed", |_job| async move { panic!("always") });
    let stop = worker.shutdown_handle();
    let run = tokio::spawn(worker.run());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let states = [
            pusher.get(&flaky).await.unwrap().unwrap().state,
            pusher.get(&doomed).await.unwrap().unwrap().state,
            pusher.get(&unknown).await.unwrap().unwrap().state,
        ];
        if states == ["completed", "dead", "dead"] {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{states:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.quiet();
    let stats = run.await.unwrap().unwrap();
    assert_eq!(stats.completed, 1);
    assert_eq!(stats.failed, 5);
    let info = pusher.get(&flaky).await.unwrap().unwrap();
    assert_eq!((info.attempts, info.failures), (2, 1));
    let info = pusher.get(&doomed).await.unwrap().unwrap();
    assert_eq!(info.errors, ["handler panicked", "handler panicked"]);
    let info = pusher.get(&unknown).await.unwrap().unwrap();
    assert_eq!(
        info.errors[0],
        "no handler registered for jobtype \"Nobody\""
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_a_long_job_claimed() {
    let s = server();
    let mut c = Client::connect(addr(&s)).await.unwrap();
    let jid = c
        .push("h", "Long", json!([]), &PushOptions::default())
        .await
        .unwrap()
        .unwrap();
    let finished = Arc::new(AtomicUsize::new(0));
    let f = finished.clone();
    // A 600 ms visibility renewed every 100 ms outlives a 1.5 s handler.
    let worker = Worker::new(ConnectOptions::new(addr(&s)))
        .queues(&["h"])
        .visibility(Duration::from_millis(600))
        .heartbeat(Duration::from_millis(100))
        .register("Long", move |_job| {
            let f = f.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                f.fetch_add(1, Ordering::SeqCst);
                Ok(None)
            }
        });
    let stats = run_until(worker, || finished.load(Ordering::SeqCst) >= 1).await;
    assert_eq!(stats.completed, 1);
    let info = c.get(&jid).await.unwrap().unwrap();
    assert_eq!((info.state.as_str(), info.attempts), ("completed", 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_quiet_finishes_in_flight_jobs_then_returns() {
    let s = server();
    let mut c = Client::connect(addr(&s)).await.unwrap();
    let jid = c
        .push("s", "Slow", json!([]), &PushOptions::default())
        .await
        .unwrap()
        .unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let st = started.clone();
    let worker = Worker::new(ConnectOptions::new(addr(&s)))
        .queues(&["s"])
        .wid("quiet-me")
        .heartbeat(Duration::from_millis(50))
        .fetch_block(Duration::from_millis(100))
        .register("Slow", move |_job| {
            let st = st.clone();
            async move {
                st.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(500)).await;
                Ok(None)
            }
        });
    let run = tokio::spawn(worker.run());
    while started.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    c.call(&[b"WORKER.QUIET", b"quiet-me"]).await.unwrap();
    // No handle used: the BEAT answer stops it, after the running job finished.
    let stats = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the worker stops")
        .unwrap()
        .unwrap();
    assert_eq!(stats.completed, 1);
    assert_eq!(c.get(&jid).await.unwrap().unwrap().state, "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_gives_back_jobs_still_running_after_the_timeout() {
    let s = server();
    let mut c = Client::connect(addr(&s)).await.unwrap();
    let jid = c
        .push("t", "Stuck", json!([]), &PushOptions::default())
        .await
        .unwrap()
        .unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let st = started.clone();
    let worker = Worker::new(ConnectOptions::new(addr(&s)))
        .queues(&["t"])
        .shutdown_timeout(Duration::from_millis(200))
        .register("Stuck", move |_job| {
            let st = st.clone();
            async move {
                st.fetch_add(1, Ordering::SeqCst);
                std::future::pending::<()>().await;
                Ok(None)
            }
        });
    let stop = worker.shutdown_handle();
    let run = tokio::spawn(worker.run());
    while started.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.terminate();
    let stats = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the worker stops")
        .unwrap()
        .unwrap();
    assert_eq!((stats.completed, stats.returned), (0, 1));
    let info = c.get(&jid).await.unwrap().unwrap();
    assert_eq!((info.state.as_str(), info.failures), ("waiting", 0));
}

/// Jobs cross protocols: a Faktory client's job runs on a `Worker`, and a job pushed
/// with `Client::push` reaches a Faktory worker with its `jobtype` and `args`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_shared_with_faktory_clients() {
    use std::io::{BufRead, BufReader, Read, Write};
    let fport = basalt_testkit::free_port().unwrap();
    let bin = server_binary();
    let s = TestServer::start(&bin, &["--faktory-port", &fport.to_string()]).expect("starts");
    // A Faktory producer/worker over a plain socket.
    let stream = std::net::TcpStream::connect(("127.0.0.1", fport)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    let mut read_line = |r: &mut BufReader<std::net::TcpStream>| {
        line.clear();
        r.read_line(&mut line).unwrap();
        line.trim_end().to_string()
    };
    assert!(read_line(&mut r).starts_with("+HI "));
    w.write_all(b"HELLO {\"v\":2}\r\nPUSH {\"jid\":\"from-faktory\",\"jobtype\":\"Add\",\"args\":[20,22],\"queue\":\"shared\"}\r\n")
        .unwrap();
    assert_eq!(read_line(&mut r), "+OK");
    assert_eq!(read_line(&mut r), "+OK");

    let sums = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = sums.clone();
    let worker = Worker::new(ConnectOptions::new(addr(&s)))
        .queues(&["shared"])
        .register("Add", move |job| {
            let seen = seen.clone();
            async move {
                let sum: i64 = job
                    .args
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|v| v.as_i64())
                    .sum();
                seen.lock().unwrap().push((job.jid.clone(), sum));
                Ok(Some(sum.to_string().into_bytes()))
            }
        });
    let stats = run_until(worker, || !sums.lock().unwrap().is_empty()).await;
    assert_eq!(stats.completed, 1);
    assert_eq!(sums.lock().unwrap()[0], ("from-faktory".to_string(), 42));

    // The other way: pushed from Rust, fetched by the Faktory client.
    let mut c = Client::connect(addr(&s)).await.unwrap();
    let opts = PushOptions {
        jid: Some("from-rust-sdk".into()),
        retry: Some(2),
        ..Default::default()
    };
    c.push("shared", "Mul", json!([6, 7]), &opts).await.unwrap();
    w.write_all(b"FETCH shared\r\n").unwrap();
    let header = read_line(&mut r);
    let n: usize = header.strip_prefix('$').unwrap().parse().unwrap();
    let mut body = vec![0; n + 2];
    r.read_exact(&mut body).unwrap();
    let job: serde_json::Value = serde_json::from_slice(&body[..n]).unwrap();
    assert_eq!(job["jid"], "from-rust-sdk");
    assert_eq!(job["jobtype"], "Mul");
    assert_eq!(job["args"], json!([6, 7]));
    assert_eq!(job["retry"], 2);
    w.write_all(b"ACK {\"jid\":\"from-rust-sdk\"}\r\n").unwrap();
    assert_eq!(read_line(&mut r), "+OK");
    assert_eq!(
        c.get("from-rust-sdk").await.unwrap().unwrap().state,
        "completed"
    );
}
