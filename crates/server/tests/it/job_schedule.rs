//! `JOB.SCHEDULE` over the wire: UPSERT/GET/LIST/DEL and their errors, `job-schedule-max`
//! at its boundary, schedules (with their progress) kept across restarts (RDB, AOF
//! replay, AOF rewrite with and without an RDB preamble), and recurring jobs arriving in
//! their queue once per tick, across restarts.

use crate::rl::{cmd, err, scratch};
use basalt_proto::Frame;
use basalt_testkit::RawClient;

fn ok(c: &mut RawClient, args: &[&str]) {
    assert_eq!(cmd(c, args), Frame::Simple("OK".into()), "{args:?}");
}

/// A map reply (RESP2 flat array) as (name, value) pairs.
fn map(f: Frame) -> Vec<(String, Frame)> {
    let Frame::Array(items) = f else {
        panic!("not an array: {f:?}")
    };
    items
        .chunks(2)
        .map(|kv| match &kv[0] {
            Frame::Bulk(k) => (String::from_utf8_lossy(k).into_owned(), kv[1].clone()),
            other => panic!("key {other:?}"),
        })
        .collect()
}

fn get<'a>(m: &'a [(String, Frame)], name: &str) -> &'a Frame {
    &m.iter()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("{name} in {m:?}"))
        .1
}

fn int(m: &[(String, Frame)], name: &str) -> i64 {
    match get(m, name) {
        Frame::Integer(n) => *n,
        other => panic!("{name}: {other:?}"),
    }
}

fn bulk(s: &str) -> Frame {
    Frame::Bulk(s.to_string().into())
}

#[test]
fn upsert_get_list_del_and_errors() {
    let server = crate::start(&[]);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    ok(
        &mut c,
        &[
            "JOB.SCHEDULE",
            "UPSERT",
            "nightly",
            "reports",
            "CRON",
            "30 2 * * *",
            "TZ",
            "America/New_York",
            "TEMPLATE",
            "{\"r\":1}",
            "PRIORITY",
            "7",
        ],
    );
    ok(&mut c, &["SELECT", "3"]);
    ok(
        &mut c,
        &[
            "JOB.SCHEDULE",
            "upsert",
            "tick",
            "q",
            "every",
            "60000",
            "missed",
            "skip",
            "template",
            "p",
        ],
    );
    assert_eq!(
        cmd(&mut c, &["JOB.SCHEDULE", "LIST"]),
        Frame::Array(vec![bulk("nightly"), bulk("tick")])
    );
    let m = map(cmd(&mut c, &["JOB.SCHEDULE", "GET", "nightly"]));
    assert_eq!(get(&m, "queue"), &bulk("reports"));
    assert_eq!(int(&m, "db"), 0);
    assert_eq!(get(&m, "trigger"), &bulk("cron"));
    assert_eq!(get(&m, "cron"), &bulk("30 2 * * *"));
    assert_eq!(get(&m, "tz"), &bulk("America/New_York"));
    assert_eq!(get(&m, "every"), &Frame::Null);
    assert_eq!(get(&m, "missed"), &bulk("LATEST"));
    assert_eq!(get(&m, "payload"), &bulk("{\"r\":1}"));
    assert_eq!(
        get(&m, "options"),
        &Frame::Array(vec![bulk("PRIORITY"), bulk("7")])
    );
    assert_eq!(int(&m, "last_fired"), -1);
    assert_eq!(get(&m, "last_jid"), &Frame::Null);
    assert_eq!(int(&m, "fired"), 0);
    assert_eq!(get(&m, "last_error"), &Frame::Null);
    // The next tick is 02:30 New York time (06:30 or 07:30 UTC), after creation.
    let (created, next) = (int(&m, "created"), int(&m, "next"));
    assert!(next > created);
    assert!(
        matches!(next % 86_400_000, 23_400_000 | 27_000_000),
        "{next}"
    );
    let m = map(cmd(&mut c, &["JOB.SCHEDULE", "GET", "tick"]));
    assert_eq!(int(&m, "db"), 3);
    assert_eq!(get(&m, "trigger"), &bulk("every"));
    assert_eq!(int(&m, "every"), 60000);
    assert_eq!(get(&m, "missed"), &bulk("SKIP"));
    assert_eq!(int(&m, "next") % 60000, 0);
    assert_eq!(cmd(&mut c, &["JOB.SCHEDULE", "GET", "nope"]), Frame::Null);

    let up = |rest: &[&str]| -> Vec<String> {
        let mut v = vec![
            "JOB.SCHEDULE".to_string(),
            "UPSERT".into(),
            "bad".into(),
            "q".into(),
        ];
        v.extend(rest.iter().map(|s| s.to_string()));
        v
    };
    let cases: &[(&[&str], &str)] = &[
        (
            &["CRON", "0 0 30 2 *", "TEMPLATE", "p"],
            "ERR the schedule never ticks",
        ),
        (
            &["CRON", "0 0 30 2", "TEMPLATE", "p"],
            "ERR invalid cron expression '0 0 30 2'",
        ),
        (
            &["CRON", "61 * * * *", "TEMPLATE", "p"],
            "ERR invalid cron expression",
        ),
        (
            &["CRON", "0 * * * *", "TZ", "Mars/Base", "TEMPLATE", "p"],
            "ERR unknown time zone 'Mars/Base'",
        ),
        (
            &["EVERY", "0", "TEMPLATE", "p"],
            "ERR EVERY must be between 1",
        ),
        (
            &["EVERY", "x", "TEMPLATE", "p"],
            "ERR value is not an integer",
        ),
        (
            &["EVERY", "10", "TEMPLATE"],
            "ERR wrong number of arguments",
        ),
        (
            &["EVERY", "10", "MISSED", "ALL", "TEMPLATE"],
            "ERR syntax error",
        ),
        (
            &["EVERY", "10", "MISSED", "SOME", "TEMPLATE", "p"],
            "ERR syntax error",
        ),
        (
            &["TEMPLATE", "p", "x", "y"],
            "ERR CRON or EVERY is required",
        ),
        (&["EVERY", "10", "FOO", "TEMPLATE", "p"], "ERR syntax error"),
        (
            &["EVERY", "10", "TEMPLATE", "p", "ID", "j"],
            "ERR ID is chosen by the schedule",
        ),
        (
            &["EVERY", "10", "TEMPLATE", "p", "at", "5"],
            "ERR AT is chosen by the schedule",
        ),
        // The template is checked as JOB.PUSH checks a push.
        (
            &["EVERY", "10", "TEMPLATE", "p", "PRIORITY", "10"],
            "ERR PRIORITY must be between 0 and 9",
        ),
        (
            &["EVERY", "10", "TEMPLATE", "p", "BOGUS"],
            "ERR syntax error",
        ),
        (
            &["EVERY", "10", "TEMPLATE", "p", "RETRY"],
            "ERR syntax error",
        ),
    ];
    for (rest, want) in cases {
        let args = up(rest);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let e = err(&mut c, &refs);
        assert!(e.starts_with(want), "{rest:?}: {e}");
    }
    let long = "n".repeat(101);
    let e = err(
        &mut c,
        &[
            "JOB.SCHEDULE",
            "UPSERT",
            &long,
            "q",
            "EVERY",
            "10",
            "TEMPLATE",
            "p",
        ],
    );
    assert!(e.contains("schedule name must be 1 to 100 bytes"), "{e}");
    // The jids `<name>:<tick>` (tick: up to 15 digits) must fit job-max-id-bytes; the
    // payload job-max-payload-bytes.
    ok(&mut c, &["CONFIG", "SET", "job-max-id-bytes", "20"]);
    let up = |c: &mut RawClient, name: &str, payload: &str| {
        cmd(
            c,
            &[
                "JOB.SCHEDULE",
                "UPSERT",
                name,
                "q",
                "EVERY",
                "10",
                "TEMPLATE",
                payload,
            ],
        )
    };
    assert_eq!(up(&mut c, "abcd", "p"), Frame::Simple("OK".into()));
    let Frame::Error(e) = up(&mut c, "abcde", "p") else {
        panic!("a name too long for job-max-id-bytes")
    };
    assert!(e.starts_with(b"ERR schedule name too long"), "{e:?}");
    ok(&mut c, &["CONFIG", "SET", "job-max-payload-bytes", "4"]);
    assert_eq!(up(&mut c, "abcd", "1234"), Frame::Simple("OK".into()));
    assert_eq!(
        up(&mut c, "abcd", "12345"),
        Frame::Error("ERR job payload exceeds job-max-payload-bytes".into())
    );
    assert_eq!(
        cmd(&mut c, &["JOB.SCHEDULE", "DEL", "abcd"]),
        Frame::Integer(1)
    );
    assert!(err(&mut c, &["JOB.SCHEDULE", "UPSERT", "x"]).contains("wrong number of arguments"));
    assert!(err(&mut c, &["JOB.SCHEDULE", "NOPE"]).contains("unknown subcommand"));

    assert_eq!(
        cmd(&mut c, &["JOB.SCHEDULE", "DEL", "tick"]),
        Frame::Integer(1)
    );
    assert_eq!(
        cmd(&mut c, &["JOB.SCHEDULE", "DEL", "tick"]),
        Frame::Integer(0)
    );
    // FLUSHALL leaves schedules alone (server state).
    ok(&mut c, &["FLUSHALL"]);
    assert_eq!(
        cmd(&mut c, &["JOB.SCHEDULE", "LIST"]),
        Frame::Array(vec![bulk("nightly")])
    );
}

#[test]
fn schedule_max_at_its_boundary_and_upsert_keeps_progress() {
    let server = crate::start(&["--job-schedule-max", "2"]);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    let up = |c: &mut RawClient, name: &str, every: &str| {
        cmd(
            c,
            &[
                "JOB.SCHEDULE",
                "UPSERT",
                name,
                "q",
                "EVERY",
                every,
                "TEMPLATE",
                "p",
            ],
        )
    };
    assert_eq!(up(&mut c, "a", "3600000"), Frame::Simple("OK".into()));
    assert_eq!(up(&mut c, "b", "3600000"), Frame::Simple("OK".into()));
    assert_eq!(
        up(&mut c, "c", "3600000"),
        Frame::Error("ERR too many schedules (job-schedule-max is 2)".into())
    );
    // Replacing one at the limit is allowed, and keeps its creation time and cursor.
    let before = map(cmd(&mut c, &["JOB.SCHEDULE", "GET", "a"]));
    assert_eq!(up(&mut c, "a", "7200000"), Frame::Simple("OK".into()));
    let after = map(cmd(&mut c, &["JOB.SCHEDULE", "GET", "a"]));
    assert_eq!(int(&after, "every"), 7200000);
    assert_eq!(int(&after, "created"), int(&before, "created"));
    assert_eq!(int(&after, "cursor"), int(&before, "cursor"));
    ok(&mut c, &["CONFIG", "SET", "job-schedule-max", "3"]);
    assert_eq!(up(&mut c, "c", "3600000"), Frame::Simple("OK".into()));
    for (name, bad) in [
        ("job-schedule-max", "-1"),
        ("job-schedule-max-fires", "0"),
        ("job-schedule-grace-ms", "-1"),
    ] {
        assert!(
            matches!(cmd(&mut c, &["CONFIG", "SET", name, bad]), Frame::Error(_)),
            "{name} {bad}"
        );
    }
    ok(&mut c, &["CONFIG", "SET", "job-schedule-max-fires", "1"]);
    ok(&mut c, &["CONFIG", "SET", "job-schedule-grace-ms", "0"]);
}

/// Every schedule's GET reply but `next` (which depends on the time asked).
fn schedules(c: &mut RawClient) -> Vec<Vec<(String, Frame)>> {
    let Frame::Array(names) = cmd(c, &["JOB.SCHEDULE", "LIST"]) else {
        panic!("LIST")
    };
    names
        .iter()
        .map(|n| {
            let Frame::Bulk(n) = n else { panic!("name") };
            let mut m = map(cmd(
                c,
                &["JOB.SCHEDULE", "GET", &String::from_utf8_lossy(n)],
            ));
            m.retain(|(k, _)| k != "next");
            m
        })
        .collect()
}

/// Defines schedules that will not tick during a test, with progress set.
fn define(c: &mut RawClient) -> Vec<Vec<(String, Frame)>> {
    ok(
        c,
        &[
            "JOB.SCHEDULE",
            "UPSERT",
            "yearly",
            "reports",
            "CRON",
            "0 0 1 1 *",
            "TZ",
            "Europe/Berlin",
            "MISSED",
            "ALL",
            "TEMPLATE",
            "bin\u{0}ary",
            "PRIORITY",
            "7",
            "TAGS",
            "a",
            "b",
        ],
    );
    ok(c, &["SELECT", "2"]);
    ok(
        c,
        &[
            "JOB.SCHEDULE",
            "UPSERT",
            "daily",
            "q2",
            "EVERY",
            "86400000",
            "TEMPLATE",
            "p",
        ],
    );
    // A progress as a firing would leave it (a cursor in 2100: not due during the test).
    assert_eq!(
        cmd(
            c,
            &[
                "JOB.SCHEDULE",
                "ADVANCE",
                "daily",
                "4102444800000",
                "4102444800000",
                "5",
                "2",
                "1"
            ]
        ),
        Frame::Integer(1)
    );
    assert_eq!(
        cmd(
            c,
            &["JOB.SCHEDULE", "ADVANCE", "none", "1", "1", "1", "1", "1"]
        ),
        Frame::Integer(0)
    );
    ok(
        c,
        &[
            "JOB.SCHEDULE",
            "UPSERT",
            "gone",
            "q",
            "EVERY",
            "1000000",
            "TEMPLATE",
            "p",
        ],
    );
    assert_eq!(cmd(c, &["JOB.SCHEDULE", "DEL", "gone"]), Frame::Integer(1));
    schedules(c)
}

#[test]
fn schedules_survive_rdb_restart() {
    let dir = scratch("sched-rdb");
    let d = dir.to_string_lossy().into_owned();
    let args = [
        "--dir",
        d.as_str(),
        "--save",
        "",
        "--enable-debug-command",
        "yes",
    ];
    let before = {
        let server = crate::start(&args);
        let mut c = RawClient::connect_port(server.port()).expect("connect");
        let s = define(&mut c);
        ok(&mut c, &["SAVE"]);
        s
    };
    assert_eq!(before.len(), 2);
    let server = crate::start(&args);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    assert_eq!(schedules(&mut c), before);
    ok(&mut c, &["DEBUG", "RELOAD"]);
    assert_eq!(schedules(&mut c), before);
    // BGSAVE too.
    assert!(matches!(cmd(&mut c, &["BGSAVE"]), Frame::Simple(_)));
    crate::rdb::wait_info_zero(&mut c, "rdb_bgsave_in_progress");
    drop(c);
    drop(server);
    let server = crate::start(&args);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    assert_eq!(schedules(&mut c), before);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn schedules_survive_aof_replay_and_rewrite() {
    crate::rdb::survives_aof_replay_and_rewrite("sched", define, schedules);
}

/// The ticks of the jobs in `queue` pushed by schedule `name` (from their jids
/// `<name>:<tick>`), fetched and left active, sorted.
fn fetch_ticks(c: &mut RawClient, queue: &str, name: &str) -> Vec<u64> {
    let mut ticks = Vec::new();
    loop {
        let f = cmd(c, &["JOB.FETCH", queue, "COUNT", "1000"]);
        let Frame::Array(jobs) = f else {
            break;
        };
        if jobs.is_empty() {
            break;
        }
        for j in jobs {
            let m = map(j);
            let Frame::Bulk(jid) = get(&m, "jid") else {
                panic!("jid in {m:?}")
            };
            let jid = String::from_utf8_lossy(jid).into_owned();
            let tick = jid
                .strip_prefix(&format!("{name}:"))
                .and_then(|t| t.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("jid {jid}"));
            assert_eq!(get(&m, "payload"), &bulk("job-payload"));
            ticks.push(tick);
        }
    }
    ticks.sort_unstable();
    ticks
}

/// Waits until schedule `name` has fired `n` more jobs than `from`; returns the count.
fn wait_fired(c: &mut RawClient, name: &str, from: i64, n: i64) -> i64 {
    let t0 = std::time::Instant::now();
    loop {
        let fired = int(&map(cmd(c, &["JOB.SCHEDULE", "GET", name])), "fired");
        if fired >= from + n {
            return fired;
        }
        assert!(
            t0.elapsed().as_secs() < 30,
            "{name} fired {fired}, waiting for {}",
            from + n
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// An `EVERY 200` schedule pushes one job per tick into its queue, and keeps doing so
/// across SIGKILLs with the AOF (`appendfsync always`, one after a rewrite) and across
/// crashes after a `SAVE` and a `BGSAVE` (RDB only): the jobs' ticks are consecutive multiples of 200 ms, none twice,
/// none missing (the restarts are well within the grace period).
#[test]
fn every_200ms_jobs_arrive_once_across_restarts() {
    for mode in ["aof", "rdb"] {
        let dir = scratch(&format!("sched-fire-{mode}"));
        let d = dir.to_string_lossy().into_owned();
        let mut args = vec!["--dir", d.as_str(), "--save", ""];
        if mode == "aof" {
            args.extend(["--appendonly", "yes", "--appendfsync", "always"]);
        }
        let mut s = crate::start(&args);
        let mut c = s.client().expect("client");
        ok(
            &mut c,
            &[
                "JOB.SCHEDULE",
                "UPSERT",
                "beat",
                "pulse",
                "EVERY",
                "200",
                "TEMPLATE",
                "job-payload",
                "PRIORITY",
                "3",
            ],
        );
        let created = int(
            &map(cmd(&mut c, &["JOB.SCHEDULE", "GET", "beat"])),
            "created",
        );
        let mut fired = wait_fired(&mut c, "beat", 0, 4);
        for round in 0..2 {
            match (mode, round) {
                ("rdb", 0) => ok(&mut c, &["SAVE"]),
                ("rdb", _) => {
                    assert!(matches!(cmd(&mut c, &["BGSAVE"]), Frame::Simple(_)));
                    crate::rdb::wait_info_zero(&mut c, "rdb_bgsave_in_progress");
                }
                // A rewrite while the schedule fires: its base holds the schedule as it
                // was at the rewrite's point in time, the new incremental file the rest.
                (_, 0) => {
                    assert!(matches!(cmd(&mut c, &["BGREWRITEAOF"]), Frame::Simple(_)));
                    crate::rdb::wait_info_zero(&mut c, "aof_rewrite_in_progress");
                }
                _ => {}
            }
            // With the RDB, fires after the save are lost with the crash, and fire again.
            wait_fired(&mut c, "beat", fired, 2);
            drop(c);
            s.crash().expect("kill");
            s = crate::start(&args);
            c = s.client().expect("client");
            let after = int(&map(cmd(&mut c, &["JOB.SCHEDULE", "GET", "beat"])), "fired");
            fired = wait_fired(&mut c, "beat", after, 4);
        }
        // Read the counters, stop the schedule, then look at every job it pushed (a pass
        // between the GET and the DEL may push one more).
        let fired = int(&map(cmd(&mut c, &["JOB.SCHEDULE", "GET", "beat"])), "fired").max(fired);
        assert_eq!(
            cmd(&mut c, &["JOB.SCHEDULE", "DEL", "beat"]),
            Frame::Integer(1)
        );
        let ticks = fetch_ticks(&mut c, "pulse", "beat");
        let n = ticks.len() as i64;
        assert!(n >= 12, "{mode}: {n} jobs");
        assert!(ticks[0] > created as u64 && ticks[0] - (created as u64) <= 200);
        for w in ticks.windows(2) {
            assert_eq!(
                w[1] - w[0],
                200,
                "{mode}: a gap or a duplicate in {ticks:?}"
            );
        }
        if mode == "aof" {
            // Pushes and the cursor are logged together: the count is exact.
            assert!(
                n == fired || n == fired + 1,
                "{mode}: {n} jobs, fired {fired}"
            );
        } else {
            // A tick fired between the save's schedule snapshot and its walk of the
            // keys is in the file with an older cursor: it fires again, as a no-op.
            assert!(n <= fired + 1, "{mode}: {n} jobs, fired {fired}");
        }
        drop(c);
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// After an outage longer than the grace period, `MISSED LATEST` pushes one job for the
/// latest missed tick and counts the others as skipped, `MISSED ALL` pushes them all:
/// every tick between the first and the last job is either a job or counted skipped.
#[test]
fn missed_ticks_follow_the_policy_after_an_outage() {
    for policy in ["LATEST", "ALL", "SKIP"] {
        let dir = scratch(&format!("sched-missed-{policy}"));
        let d = dir.to_string_lossy().into_owned();
        let args = [
            "--dir",
            d.as_str(),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--job-schedule-grace-ms",
            "150",
        ];
        let mut s = crate::start(&args);
        let mut c = s.client().expect("client");
        ok(
            &mut c,
            &[
                "JOB.SCHEDULE",
                "UPSERT",
                "m",
                "mq",
                "EVERY",
                "100",
                "MISSED",
                policy,
                "TEMPLATE",
                "job-payload",
            ],
        );
        wait_fired(&mut c, "m", 0, 3);
        drop(c);
        s.crash().expect("kill");
        std::thread::sleep(std::time::Duration::from_millis(1200));
        s = crate::start(&args);
        c = s.client().expect("client");
        let before = int(&map(cmd(&mut c, &["JOB.SCHEDULE", "GET", "m"])), "fired");
        wait_fired(&mut c, "m", before, 3);
        // Read what it did, then stop it.
        let m = map(cmd(&mut c, &["JOB.SCHEDULE", "GET", "m"]));
        assert_eq!(
            cmd(&mut c, &["JOB.SCHEDULE", "DEL", "m"]),
            Frame::Integer(1)
        );
        let (fired, skipped) = (int(&m, "fired"), int(&m, "skipped"));
        let ticks = fetch_ticks(&mut c, "mq", "m");
        let gaps: i64 = ticks
            .windows(2)
            .map(|w| ((w[1] - w[0]) / 100) as i64 - 1)
            .sum();
        // Every tick from the first job to the last is a job or counted as skipped; a
        // pass between the GET and the DEL may have pushed one more.
        assert!(
            ticks.len() as i64 == fired || ticks.len() as i64 == fired + 1,
            "{policy}: {} jobs, fired {fired}",
            ticks.len()
        );
        assert!(
            gaps == skipped || ticks.len() as i64 == fired + 1,
            "{policy}: gaps {gaps}, skipped {skipped}"
        );
        match policy {
            "ALL" => assert_eq!((gaps, skipped), (0, 0), "{policy}: {ticks:?}"),
            // About 12 ticks were missed (1.2 s down, 100 ms period).
            _ => assert!(skipped >= 5, "{policy}: {ticks:?}"),
        }
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
