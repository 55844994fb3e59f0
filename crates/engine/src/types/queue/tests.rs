//! Lifecycle tests with an injected clock: every time is an argument.

use super::*;

const KEEP: Retention = Retention {
    count: 1000,
    age: 1_000_000_000,
};

fn queue() -> QueueValue {
    QueueValue::new(QueueConfig::new(KEEP, KEEP, 10))
}

fn req(jid: &str) -> PushReq<'_> {
    PushReq {
        jid: jid.as_bytes(),
        payload: b"p",
        run_at: 0,
        priority: DEFAULT_PRIORITY,
        retry: 3,
        backoff: Backoff::Fixed(1000),
        timeout: 30_000,
        expires: 0,
        unique: None,
        depends: Vec::new(),
        group: None,
        tags: Vec::new(),
    }
}

fn push(q: &mut QueueValue, r: PushReq<'_>, now: u64) -> Pushed {
    let p = q.push(&r, now, &mut Changes::default());
    q.check().unwrap();
    p
}

/// Claims the next job with a token derived from `now`; returns (jid, token).
fn fetch(q: &mut QueueValue, now: u64) -> Option<(String, Vec<u8>)> {
    let token = format!("t{now}-{}", q.fence() + 1).into_bytes();
    let d = q.claim_next(now, ClaimOpts::default(), &token, &mut Changes::default());
    q.check().unwrap();
    d.map(|d| (String::from_utf8(d.jid.to_vec()).unwrap(), token))
}

fn state(q: &QueueValue, jid: &str) -> Option<State> {
    q.job(jid.as_bytes()).map(|j| j.state)
}

#[test]
fn delays_hold_jobs_until_due() {
    let mut q = queue();
    push(
        &mut q,
        PushReq {
            run_at: 5000,
            ..req("a")
        },
        1000,
    );
    assert_eq!(state(&q, "a"), Some(State::Scheduled));
    assert_eq!(fetch(&mut q, 4999), None);
    assert_eq!(q.next_wake(4999), Some(5000));
    assert_eq!(fetch(&mut q, 5000).unwrap().0, "a");
}

#[test]
fn strict_priority_then_fifo() {
    let mut q = queue();
    push(
        &mut q,
        PushReq {
            priority: 1,
            ..req("low")
        },
        10,
    );
    push(&mut q, req("mid1"), 11);
    push(
        &mut q,
        PushReq {
            priority: 9,
            ..req("high")
        },
        12,
    );
    push(&mut q, req("mid2"), 13);
    let order: Vec<String> = (0..4).map(|i| fetch(&mut q, 20 + i).unwrap().0).collect();
    assert_eq!(order, ["high", "mid1", "mid2", "low"]);
}

#[test]
fn fixed_backoff_retries_then_dead() {
    let mut q = queue();
    push(
        &mut q,
        PushReq {
            retry: 2,
            ..req("a")
        },
        0,
    );
    let mut now = 0;
    for k in 1..=2 {
        let (_, tok) = fetch(&mut q, now).unwrap();
        let f = q
            .fail(
                now,
                b"a",
                &tok,
                b"boom",
                Retry::Backoff(0.5),
                &mut Changes::default(),
            )
            .unwrap();
        assert_eq!(f, Failed::RetryAt(now + 1000), "retry {k}");
        assert_eq!(state(&q, "a"), Some(State::Failed));
        assert_eq!(fetch(&mut q, now + 999), None);
        now += 1000;
    }
    let (_, tok) = fetch(&mut q, now).unwrap();
    let f = q
        .fail(
            now,
            b"a",
            &tok,
            b"boom3",
            Retry::Backoff(0.0),
            &mut Changes::default(),
        )
        .unwrap();
    assert_eq!(f, Failed::Dead);
    assert_eq!(state(&q, "a"), Some(State::Dead));
    let j = q.job(b"a").unwrap();
    assert_eq!(j.failures, 3);
    assert_eq!(j.errors.back().map(|e| &**e), Some(&b"boom3"[..]));
    assert_eq!(q.dead_jobs(10).len(), 1);
    assert_eq!(fetch(&mut q, now + 10_000_000), None);
}

#[test]
fn exponential_backoff_doubles_up_to_max() {
    let b = Backoff::Exp {
        base: 100,
        max: 1000,
        jitter: 0.0,
    };
    let d: Vec<u64> = (1..=6).map(|k| b.delay(k, 0.7)).collect();
    assert_eq!(d, [100, 200, 400, 800, 1000, 1000]);
    assert_eq!(b.delay(200, 0.0), 1000, "no overflow for late retries");
}

#[test]
fn jitter_stays_within_bounds() {
    let b = Backoff::Exp {
        base: 1000,
        max: 100_000,
        jitter: 0.25,
    };
    for k in 1..=5u32 {
        let d = 1000u64 << (k - 1);
        let lo = d - (d as f64 * 0.25).floor() as u64;
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..100 {
            let r = i as f64 / 100.0;
            let v = b.delay(k, r);
            assert!(v >= lo && v <= d, "k={k} r={r} v={v}");
            seen.insert(v);
        }
        assert_eq!(b.delay(k, 0.0), d);
        assert!(seen.len() > 10, "jitter spreads the delays");
    }
    // Through fail(): the retry time is within the same bounds.
    let mut q = queue();
    push(
        &mut q,
        PushReq {
            backoff: b,
            ..req("a")
        },
        0,
    );
    let (_, tok) = fetch(&mut q, 0).unwrap();
    match q.fail(
        0,
        b"a",
        &tok,
        b"e",
        Retry::Backoff(0.999),
        &mut Changes::default(),
    ) {
        Ok(Failed::RetryAt(t)) => assert!((750..=1000).contains(&t), "{t}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn fail_noretry_and_retry_in() {
    let mut q = queue();
    push(&mut q, req("a"), 0);
    push(&mut q, req("b"), 0);
    let (_, ta) = fetch(&mut q, 0).unwrap();
    let (_, tb) = fetch(&mut q, 0).unwrap();
    let mut c = Changes::default();
    assert_eq!(
        q.fail(1, b"a", &ta, b"x", Retry::No, &mut c),
        Ok(Failed::Dead)
    );
    assert_eq!(
        q.fail(1, b"b", &tb, b"x", Retry::In(50), &mut c),
        Ok(Failed::RetryAt(51))
    );
    assert_eq!(fetch(&mut q, 51).unwrap().0, "b");
}

#[test]
fn visibility_timeout_redelivers_with_a_new_claim() {
    let mut q = queue();
    push(
        &mut q,
        PushReq {
            timeout: 100,
            ..req("a")
        },
        0,
    );
    let (_, t1) = fetch(&mut q, 0).unwrap();
    let f1 = q.job(b"a").unwrap().fence;
    assert_eq!(q.next_wake(50), Some(100));
    // Not yet timed out: nothing else to fetch.
    assert_eq!(fetch(&mut q, 99), None);
    let (_, t2) = fetch(&mut q, 100).unwrap();
    let j = q.job(b"a").unwrap();
    assert_ne!(t1, t2);
    assert!(j.fence > f1);
    assert_eq!(j.attempts, 2);
    assert_eq!(j.failures, 1);
    assert_eq!(&*j.errors[0], TIMEOUT_ERROR);
    // The first worker's ACK is stale; the second's completes.
    let mut c = Changes::default();
    assert_eq!(
        q.ack(101, b"a", &t1, None, None, &mut c),
        Err(ClaimError::Stale)
    );
    assert_eq!(q.extend(101, b"a", &t1, 10, &mut c), Err(ClaimError::Stale));
    assert_eq!(
        q.ack(101, b"a", &t2, Some(b"r"), None, &mut c),
        Ok(Some(b"r"[..].into()))
    );
    assert_eq!(state(&q, "a"), Some(State::Completed));
    assert_eq!(
        q.ack(102, b"zz", &t2, None, None, &mut c),
        Err(ClaimError::NoJob)
    );
}

#[test]
fn timeouts_exhaust_retries() {
    let mut q = queue();
    push(
        &mut q,
        PushReq {
            timeout: 10,
            retry: 1,
            ..req("a")
        },
        0,
    );
    fetch(&mut q, 0).unwrap();
    fetch(&mut q, 10).unwrap();
    assert_eq!(fetch(&mut q, 20), None);
    assert_eq!(state(&q, "a"), Some(State::Dead));
}

#[test]
fn extend_moves_the_deadline() {
    let mut q = queue();
    push(
        &mut q,
        PushReq {
            timeout: 100,
            ..req("a")
        },
        0,
    );
    let (_, t) = fetch(&mut q, 0).unwrap();
    assert_eq!(
        q.extend(90, b"a", &t, 100, &mut Changes::default()),
        Ok(190)
    );
    assert_eq!(fetch(&mut q, 150), None);
    assert_eq!(state(&q, "a"), Some(State::Active));
    q.check().unwrap();
}

#[test]
fn ack_is_exactly_once_with_an_idempotency_key() {
    let mut q = queue();
    push(&mut q, req("a"), 0);
    let (_, t) = fetch(&mut q, 0).unwrap();
    let mut c = Changes::default();
    assert_eq!(
        q.ack(1, b"a", &t, Some(b"42"), Some(b"k1"), &mut c),
        Ok(Some(b"42"[..].into()))
    );
    // A repeat with the same key returns the stored result, any token.
    assert_eq!(
        q.ack(2, b"a", &t, Some(b"43"), Some(b"k1"), &mut c),
        Ok(Some(b"42"[..].into()))
    );
    assert_eq!(
        q.ack(2, b"a", b"other", None, Some(b"k1"), &mut c),
        Ok(Some(b"42"[..].into()))
    );
    // Another key, or none, is stale.
    assert_eq!(
        q.ack(2, b"a", &t, None, Some(b"k2"), &mut c),
        Err(ClaimError::Stale)
    );
    assert_eq!(
        q.ack(2, b"a", &t, None, None, &mut c),
        Err(ClaimError::Stale)
    );
    assert_eq!(q.job(b"a").unwrap().result.as_deref(), Some(&b"42"[..]));
    assert_eq!(q.counts().completed, 1);
}

#[test]
fn unique_window() {
    let mut q = queue();
    let u = |jid| PushReq {
        unique: Some((b"k", 1000)),
        ..req(jid)
    };
    assert_eq!(push(&mut q, u("a"), 0), Pushed::New);
    assert_eq!(push(&mut q, u("b"), 999), Pushed::NotUnique);
    assert_eq!(push(&mut q, u("c"), 1000), Pushed::New, "window over");
    // Completion releases the key early.
    let (j, t) = fetch(&mut q, 1001).unwrap();
    assert_eq!(j, "a");
    let (j2, t2) = fetch(&mut q, 1001).unwrap();
    assert_eq!(j2, "c");
    assert_eq!(push(&mut q, u("d"), 1002), Pushed::NotUnique);
    q.ack(1003, b"c", &t2, None, None, &mut Changes::default())
        .unwrap();
    assert_eq!(push(&mut q, u("d"), 1004), Pushed::New);
    let _ = t;
}

#[test]
fn dependencies_release_only_after_parents_complete() {
    let mut q = queue();
    push(&mut q, req("p1"), 0);
    push(&mut q, req("p2"), 0);
    let r = PushReq {
        depends: vec![b"p1", b"p2"],
        ..req("child")
    };
    assert_eq!(push(&mut q, r, 0), Pushed::New);
    assert_eq!(state(&q, "child"), Some(State::Scheduled));
    assert_eq!(
        push(
            &mut q,
            PushReq {
                depends: vec![b"nope"],
                ..req("x")
            },
            0
        ),
        Pushed::UnknownParent(b"nope".to_vec())
    );
    let (_, t1) = fetch(&mut q, 1).unwrap();
    let (_, t2) = fetch(&mut q, 1).unwrap();
    assert_eq!(fetch(&mut q, 1), None, "child not runnable");
    let mut c = Changes::default();
    q.ack(2, b"p1", &t1, None, None, &mut c).unwrap();
    assert_eq!(state(&q, "child"), Some(State::Scheduled));
    // A failure with retries left does not release it either.
    q.fail(3, b"p2", &t2, b"e", Retry::In(10), &mut c).unwrap();
    assert_eq!(state(&q, "child"), Some(State::Scheduled));
    let (_, t2) = fetch(&mut q, 13).unwrap();
    q.ack(14, b"p2", &t2, None, None, &mut c).unwrap();
    assert_eq!(state(&q, "child"), Some(State::Waiting));
    assert_eq!(fetch(&mut q, 15).unwrap().0, "child");
    // A child of a completed parent is runnable at once.
    push(
        &mut q,
        PushReq {
            depends: vec![b"p1"],
            ..req("late")
        },
        16,
    );
    assert_eq!(state(&q, "late"), Some(State::Waiting));
    q.check().unwrap();
}

#[test]
fn a_dead_or_cancelled_parent_cancels_children() {
    let mut q = queue();
    push(
        &mut q,
        PushReq {
            retry: 0,
            ..req("p")
        },
        0,
    );
    push(
        &mut q,
        PushReq {
            depends: vec![b"p"],
            ..req("c")
        },
        0,
    );
    push(
        &mut q,
        PushReq {
            depends: vec![b"c"],
            ..req("gc")
        },
        0,
    );
    let (_, t) = fetch(&mut q, 1).unwrap();
    q.fail(
        2,
        b"p",
        &t,
        b"e",
        Retry::Backoff(0.0),
        &mut Changes::default(),
    )
    .unwrap();
    assert_eq!(state(&q, "c"), Some(State::Cancelled));
    assert_eq!(state(&q, "gc"), Some(State::Cancelled));
    assert_eq!(&*q.job(b"c").unwrap().errors[0], b"parent p dead");
    push(
        &mut q,
        PushReq {
            depends: vec![b"p"],
            ..req("after")
        },
        3,
    );
    assert_eq!(state(&q, "after"), Some(State::Cancelled));
    q.check().unwrap();
}

#[test]
fn cancellation() {
    let mut q = queue();
    push(&mut q, req("a"), 0);
    push(
        &mut q,
        PushReq {
            run_at: 100,
            ..req("b")
        },
        0,
    );
    let mut c = Changes::default();
    assert_eq!(q.cancel(1, b"b", &mut c), Ok(true));
    assert_eq!(q.cancel(1, b"b", &mut c), Ok(false));
    let (_, t) = fetch(&mut q, 2).unwrap();
    assert_eq!(q.cancel(3, b"a", &mut c), Ok(true));
    assert_eq!(
        q.ack(4, b"a", &t, None, None, &mut c),
        Err(ClaimError::Stale)
    );
    assert_eq!(q.counts().cancelled, 2);
    assert_eq!(q.counts().active, 0);
    assert_eq!(fetch(&mut q, 200), None);
    assert_eq!(q.cancel(5, b"zz", &mut c), Err(ClaimError::NoJob));
}

#[test]
fn expires_cancels_undelivered_jobs() {
    let mut q = queue();
    push(
        &mut q,
        PushReq {
            expires: 50,
            run_at: 100,
            ..req("a")
        },
        0,
    );
    push(
        &mut q,
        PushReq {
            expires: 60,
            ..req("b")
        },
        0,
    );
    assert_eq!(fetch(&mut q, 60), None);
    assert_eq!(state(&q, "a"), Some(State::Cancelled));
    assert_eq!(state(&q, "b"), Some(State::Cancelled));
    assert_eq!(q.job(b"a").unwrap().finished, 50);
}

#[test]
fn retention_by_count_and_age() {
    let mut q = QueueValue::new(QueueConfig::new(
        Retention {
            count: 2,
            age: 1000,
        },
        Retention { count: 1, age: 500 },
        10,
    ));
    let mut removed = Vec::new();
    for (i, jid) in ["a", "b", "c"].iter().enumerate() {
        push(&mut q, req(jid), i as u64);
        let (_, t) = fetch(&mut q, i as u64).unwrap();
        let mut c = Changes::default();
        q.ack(i as u64, jid.as_bytes(), &t, None, None, &mut c)
            .unwrap();
        removed.extend(c.removed);
    }
    assert_eq!(removed, vec![Box::from(&b"a"[..])], "only 2 completed kept");
    assert!(q.job(b"a").is_none());
    let mut c = Changes::default();
    q.advance(1001, &mut c);
    assert_eq!(c.removed, vec![Box::from(&b"b"[..])], "b finished at 1");
    q.advance(1002, &mut c);
    assert!(q.is_empty());
    // Dead jobs: count 1.
    for jid in ["d", "e"] {
        push(
            &mut q,
            PushReq {
                retry: 0,
                ..req(jid)
            },
            2000,
        );
        let (_, t) = fetch(&mut q, 2000).unwrap();
        q.fail(
            2000,
            jid.as_bytes(),
            &t,
            b"x",
            Retry::No,
            &mut Changes::default(),
        )
        .unwrap();
    }
    assert!(q.job(b"d").is_none());
    assert_eq!(state(&q, "e"), Some(State::Dead));
    q.check().unwrap();
}

#[test]
fn concurrency_and_group_limits() {
    let mut q = queue();
    q.config_mut().concurrency = 2;
    for i in 0..4 {
        push(&mut q, req(&format!("j{i}")), 0);
    }
    assert!(fetch(&mut q, 1).is_some());
    let (_, t) = fetch(&mut q, 1).unwrap();
    assert_eq!(fetch(&mut q, 1), None);
    let mut c = Changes::default();
    q.ack(2, b"j1", &t, None, None, &mut c).unwrap();
    assert!(c.wake, "a freed slot wakes fetchers");
    assert!(fetch(&mut q, 2).is_some());

    let mut q = queue();
    q.config_mut().group_concurrency = 1;
    push(
        &mut q,
        PushReq {
            group: Some(b"g"),
            ..req("g1")
        },
        0,
    );
    push(
        &mut q,
        PushReq {
            group: Some(b"g"),
            ..req("g2")
        },
        0,
    );
    push(&mut q, req("free"), 0);
    assert_eq!(fetch(&mut q, 1).unwrap().0, "g1");
    assert_eq!(
        fetch(&mut q, 1).unwrap().0,
        "free",
        "g2 waits for its group"
    );
    assert_eq!(fetch(&mut q, 1), None);
}

#[test]
fn rate_limit_caps_deliveries() {
    let mut q = queue();
    q.set_rate(
        Some(Spec::Fixed {
            limit: 2,
            window_ms: 1000,
        }),
        0,
    );
    for i in 0..5 {
        push(&mut q, req(&format!("j{i}")), 0);
    }
    assert!(fetch(&mut q, 0).is_some());
    assert!(fetch(&mut q, 10).is_some());
    assert_eq!(fetch(&mut q, 20), None);
    assert_eq!(q.next_wake(20), Some(1000));
    assert!(fetch(&mut q, 1000).is_some());
}

#[test]
fn pause_nack_drain_requeue_purge() {
    let mut q = queue();
    push(&mut q, req("a"), 0);
    q.config_mut().paused = true;
    assert_eq!(fetch(&mut q, 1), None);
    q.config_mut().paused = false;
    let (_, t) = fetch(&mut q, 1).unwrap();
    let mut c = Changes::default();
    q.nack(2, b"a", &t, 100, &mut c).unwrap();
    assert_eq!(state(&q, "a"), Some(State::Scheduled));
    assert_eq!(q.job(b"a").unwrap().failures, 0);
    assert_eq!(fetch(&mut q, 50), None);
    let (_, t) = fetch(&mut q, 102).unwrap();
    q.fail(103, b"a", &t, b"x", Retry::No, &mut c).unwrap();
    assert_eq!(q.requeue_dead(104, None, &mut c), 1);
    assert_eq!(state(&q, "a"), Some(State::Waiting));
    let (_, t) = fetch(&mut q, 105).unwrap();
    q.fail(106, b"a", &t, b"x", Retry::No, &mut c).unwrap();
    assert_eq!(q.purge_dead(107, &mut c), 1);
    assert!(q.job(b"a").is_none());
    push(&mut q, req("b"), 200);
    push(
        &mut q,
        PushReq {
            run_at: 900,
            ..req("c")
        },
        200,
    );
    assert_eq!(q.drain(201, &mut c), 2);
    assert!(q.is_empty());
    q.check().unwrap();
}

#[test]
fn advancing_in_steps_equals_advancing_once() {
    // The replay property: reads may advance the queue at any time.
    let build = |steps: &[u64]| {
        let mut q = queue();
        push(
            &mut q,
            PushReq {
                timeout: 30,
                retry: 5,
                ..req("a")
            },
            0,
        );
        push(
            &mut q,
            PushReq {
                run_at: 40,
                priority: 9,
                ..req("b")
            },
            0,
        );
        push(
            &mut q,
            PushReq {
                expires: 70,
                ..req("c")
            },
            0,
        );
        fetch(&mut q, 0).unwrap();
        for &s in steps {
            q.advance(s, &mut Changes::default());
        }
        let d = fetch(&mut q, 100);
        (d, q.to_bytes())
    };
    let once = build(&[]);
    assert_eq!(build(&[10, 31, 45, 69, 71]), once);
    assert_eq!(build(&[100]), once);
}

#[test]
fn byte_form_round_trips_and_refuses_garbage() {
    let mut q = queue();
    q.set_rate(
        Some(Spec::Gcra {
            burst: 5,
            rate: 5,
            period_ms: 1000,
        }),
        0,
    );
    push(
        &mut q,
        PushReq {
            tags: vec![b"t1", b"t2"],
            group: Some(b"g"),
            ..req("a")
        },
        0,
    );
    push(
        &mut q,
        PushReq {
            depends: vec![b"a"],
            unique: Some((b"u", 99)),
            ..req("b")
        },
        0,
    );
    push(
        &mut q,
        PushReq {
            retry: 0,
            ..req("c")
        },
        0,
    );
    let (_, t) = fetch(&mut q, 1).unwrap();
    q.progress(2, b"a", &t, 40, Some(b"half"), &mut Changes::default())
        .unwrap();
    let (_, tc) = fetch(&mut q, 3).unwrap();
    q.fail(4, b"c", &tc, b"x", Retry::No, &mut Changes::default())
        .unwrap();
    let bytes = q.to_bytes();
    let back = QueueValue::from_bytes(&bytes).unwrap();
    assert_eq!(back, q);
    assert_eq!(back.counts(), q.counts());
    assert_eq!(back.heap_size(), q.heap_size());
    // The claim survives: the token still completes the job.
    let mut back = back;
    assert!(
        back.ack(5, b"a", &t, None, None, &mut Changes::default())
            .is_ok()
    );
    assert_eq!(state(&back, "b"), Some(State::Waiting));
    // Every truncation and many corruptions are errors, never panics.
    for n in 0..bytes.len() {
        assert!(QueueValue::from_bytes(&bytes[..n]).is_err(), "prefix {n}");
    }
    let mut seed = 7u64;
    for _ in 0..3000 {
        let mut b = bytes.clone();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let i = (seed as usize) % b.len();
        b[i] ^= (seed >> 32) as u8 | 1;
        if let Ok(q2) = QueueValue::from_bytes(&b) {
            q2.check().unwrap();
        }
    }
}

#[test]
fn memory_count_follows_jobs() {
    let mut q = queue();
    let empty = q.heap_size();
    push(
        &mut q,
        PushReq {
            payload: &[0u8; 5000],
            ..req("a")
        },
        0,
    );
    assert!(q.heap_size() >= empty + 5000);
    let (_, t) = fetch(&mut q, 0).unwrap();
    q.ack(1, b"a", &t, None, None, &mut Changes::default())
        .unwrap();
    q.drain(2, &mut Changes::default());
    let mut c = Changes::default();
    q.config_mut().retention_done.count = 0;
    q.apply_retention(3, &mut c);
    assert!(q.is_empty());
    assert_eq!(q.heap_size(), empty);
}

#[test]
fn dead_letters_move_to_the_dlq() {
    let mut q = queue();
    q.config_mut().dlq = Some(b"dlq"[..].into());
    push(
        &mut q,
        PushReq {
            retry: 0,
            ..req("a")
        },
        0,
    );
    push(
        &mut q,
        PushReq {
            retry: 0,
            timeout: 10,
            ..req("b")
        },
        0,
    );
    let (_, t) = fetch(&mut q, 1).unwrap();
    let mut c = Changes::default();
    q.fail(2, b"a", &t, b"x", Retry::Backoff(0.0), &mut c)
        .unwrap();
    assert_eq!(
        c.dead_letters,
        Some((b"dlq"[..].into(), vec![b"a"[..].into()]))
    );
    // A timeout that kills reports it too.
    fetch(&mut q, 3).unwrap();
    let mut c = Changes::default();
    q.advance(20, &mut c);
    assert_eq!(c.dead_letters.unwrap().1, vec![Box::from(&b"b"[..])]);
    let mut dlq = queue();
    let mut c = Changes::default();
    let j = q.take_dead(21, b"a", &mut c).unwrap();
    assert!(c.removed.is_empty());
    assert!(q.job(b"a").is_none());
    assert!(dlq.insert_dead(21, j.clone(), &mut c));
    assert!(!dlq.insert_dead(21, j, &mut c), "one copy");
    assert_eq!(dlq.job(b"a").unwrap().state, State::Dead);
    assert_eq!(dlq.requeue_dead(22, None, &mut c), 1);
    assert_eq!(fetch(&mut dlq, 23).unwrap().0, "a");
    q.check().unwrap();
    dlq.check().unwrap();
}

/// Random operations keep every index true, and a replay of the same operations at the
/// same times without the interleaved reads (advances) builds the same queue.
#[test]
fn random_operations_keep_invariants_and_replay_exactly() {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut rnd = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for round in 0..40 {
        // (time, op code, argument) log, replayed below without the advances.
        let mut ops: Vec<(u64, u64, u64, bool)> = Vec::new();
        let mut now = 0u64;
        for _ in 0..300 {
            now += rnd(40);
            ops.push((now, rnd(9), rnd(1 << 20), rnd(3) == 0));
        }
        let run = |with_reads: bool| {
            let mut q = queue();
            q.config_mut().concurrency = 4;
            q.config_mut().group_concurrency = 2;
            q.config_mut().retention_done = Retention {
                count: 20,
                age: 2000,
            };
            q.config_mut().retention_dead = Retention {
                count: 10,
                age: 3000,
            };
            let mut active: Vec<(String, Vec<u8>)> = Vec::new();
            let mut n = 0;
            for &(t, op, arg, read) in &ops {
                if with_reads && read {
                    q.advance(t.saturating_sub(arg % 20), &mut Changes::default());
                    q.advance(t, &mut Changes::default());
                }
                let mut c = Changes::default();
                match op {
                    0..=2 => {
                        n += 1;
                        let jid = format!("j{n}");
                        let parent = format!("j{}", arg % n.max(1));
                        let group = format!("g{}", arg % 3);
                        let r = PushReq {
                            run_at: if arg % 4 == 0 { t + arg % 300 } else { 0 },
                            priority: (arg % 10) as u8,
                            retry: (arg % 3) as u32,
                            timeout: 50 + arg % 200,
                            expires: if arg % 7 == 0 { t + arg % 500 } else { 0 },
                            unique: (arg % 5 == 0).then_some((&b"u"[..], 100)),
                            depends: if arg % 6 == 0 {
                                vec![parent.as_bytes()]
                            } else {
                                vec![]
                            },
                            group: (arg % 2 == 0).then_some(group.as_bytes()),
                            ..req(&jid)
                        };
                        q.push(&r, t, &mut c);
                    }
                    3 | 4 => {
                        let tok = format!("t{t}-{arg}").into_bytes();
                        if let Some(d) = q.claim_next(t, ClaimOpts::default(), &tok, &mut c) {
                            active.push((String::from_utf8(d.jid.to_vec()).unwrap(), tok));
                        }
                    }
                    5 if !active.is_empty() => {
                        let (j, tok) = active.remove((arg as usize) % active.len());
                        let _ = q.ack(t, j.as_bytes(), &tok, None, None, &mut c);
                    }
                    6 if !active.is_empty() => {
                        let (j, tok) = active.remove((arg as usize) % active.len());
                        let r = if arg % 2 == 0 {
                            Retry::In(arg % 100)
                        } else {
                            Retry::No
                        };
                        let _ = q.fail(t, j.as_bytes(), &tok, b"e", r, &mut c);
                    }
                    7 if !active.is_empty() => {
                        let (j, tok) = active[(arg as usize) % active.len()].clone();
                        let _ = q.extend(t, j.as_bytes(), &tok, 100, &mut c);
                    }
                    8 => {
                        let _ = q.cancel(t, format!("j{}", arg % n.max(1)).as_bytes(), &mut c);
                    }
                    _ => {}
                }
                q.check()
                    .unwrap_or_else(|e| panic!("round {round} at {t}: {e}"));
                let c2 = q.counts();
                assert!(c2.active <= 4, "concurrency");
            }
            q.advance(now + 10_000, &mut Changes::default());
            q.check().unwrap();
            let back = QueueValue::from_bytes(&q.to_bytes()).unwrap();
            assert_eq!(back, q);
            q.to_bytes()
        };
        assert_eq!(run(true), run(false), "round {round}");
    }
}
