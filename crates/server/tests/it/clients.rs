//! A real client library (the `redis` crate) over RESP2 and RESP3, and pipelining.

use redis::AsyncCommands;

async fn exercise(port: u16, resp3: bool) {
    let url = if resp3 {
        format!("redis://127.0.0.1:{port}/?protocol=resp3")
    } else {
        format!("redis://127.0.0.1:{port}/")
    };
    let client = redis::Client::open(url).expect("client");
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let prefix = if resp3 { "r3" } else { "r2" };
    let k = |s: &str| format!("{prefix}:{s}");

    let _: () = con.set(k("a"), "hello").await.expect("set");
    let v: String = con.get(k("a")).await.expect("get");
    assert_eq!(v, "hello");
    let missing: Option<String> = con.get(k("missing")).await.expect("get missing");
    assert_eq!(missing, None);
    let n: i64 = con.incr(k("n"), 5).await.expect("incrby");
    assert_eq!(n, 5);
    let f: f64 = redis::cmd("INCRBYFLOAT")
        .arg(k("f"))
        .arg("1.5")
        .query_async(&mut con)
        .await
        .expect("incrbyfloat");
    assert_eq!(f, 1.5);
    let _: () = con
        .mset(&[(k("m1"), "1"), (k("m2"), "2")])
        .await
        .expect("mset");
    let vals: Vec<Option<String>> = con
        .mget(&[k("m1"), k("m2"), k("nope")])
        .await
        .expect("mget");
    assert_eq!(vals, vec![Some("1".into()), Some("2".into()), None]);
    let ok: bool = con.expire(k("a"), 100).await.expect("expire");
    assert!(ok);
    let ttl: i64 = con.ttl(k("a")).await.expect("ttl");
    assert!((99..=100).contains(&ttl), "ttl {ttl}");
    let exists: i64 = con
        .exists(&[k("a"), k("m1"), k("nope")])
        .await
        .expect("exists");
    assert_eq!(exists, 2);
    let deleted: i64 = con.del(&[k("m1"), k("m2")]).await.expect("del");
    assert_eq!(deleted, 2);

    // A pipeline of 100 commands in one round trip.
    let mut pipe = redis::pipe();
    for i in 0..100 {
        pipe.set(k(&format!("p{i}")), i).ignore();
    }
    pipe.get(k("p42"));
    let (got,): (i64,) = pipe.query_async(&mut con).await.expect("pipeline");
    assert_eq!(got, 42);

    // SCAN sees every key.
    let mut seen = std::collections::HashSet::new();
    {
        let mut iter: redis::AsyncIter<String> =
            con.scan_match(format!("{prefix}:p*")).await.expect("scan");
        while let Some(key) = iter.next_item().await {
            seen.insert(key.expect("scan item"));
        }
    }
    assert_eq!(seen.len(), 100);

    // Typed errors come back as server errors with Redis's text.
    let err = redis::cmd("INCR")
        .arg(k("a"))
        .query_async::<i64>(&mut con)
        .await
        .expect_err("incr on a non-integer");
    assert!(err.to_string().contains("not an integer"), "{err}");

    // COMMAND INFO answers in the shape clients parse.
    let info: redis::Value = redis::cmd("COMMAND")
        .arg("INFO")
        .arg("get")
        .query_async(&mut con)
        .await
        .expect("command info");
    let text = format!("{info:?}");
    assert!(text.contains("readonly"), "{text}");
}

#[tokio::test]
async fn redis_crate_resp2() {
    let server = crate::start(&[]);
    exercise(server.port(), false).await;
}

#[tokio::test]
async fn redis_crate_resp3() {
    let server = crate::start(&[]);
    exercise(server.port(), true).await;
}
