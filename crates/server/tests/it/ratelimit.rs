//! CL.THROTTLE and GCRA over the wire. The arithmetic is tested to the microsecond with
//! an injected clock in `basalt_engine::ratelimit`; here the periods are an hour long so
//! the real clock moving during a test cannot change a reply, and the assertions cover
//! reply shapes, stored state, TTLs and every error (each leaving the key untouched).

use basalt_proto::Frame;
use basalt_testkit::RawClient;

fn cmd(c: &mut RawClient, args: &[&str]) -> Frame {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    c.cmd_frame(&args).expect("reply")
}

fn ints(c: &mut RawClient, args: &[&str]) -> Vec<i64> {
    match cmd(c, args) {
        Frame::Array(items) => items
            .into_iter()
            .map(|f| match f {
                Frame::Integer(i) => i,
                other => panic!("{args:?}: not an integer: {other:?}"),
            })
            .collect(),
        other => panic!("{args:?}: not an array: {other:?}"),
    }
}

fn int(c: &mut RawClient, args: &[&str]) -> i64 {
    match cmd(c, args) {
        Frame::Integer(i) => i,
        other => panic!("{args:?}: not an integer: {other:?}"),
    }
}

fn err(c: &mut RawClient, args: &[&str]) -> String {
    match cmd(c, args) {
        Frame::Error(e) => String::from_utf8_lossy(&e).into_owned(),
        other => panic!("{args:?}: not an error: {other:?}"),
    }
}

fn bulk(c: &mut RawClient, args: &[&str]) -> Option<String> {
    match cmd(c, args) {
        Frame::Bulk(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        Frame::Null => None,
        other => panic!("{args:?}: not a bulk: {other:?}"),
    }
}

#[test]
fn cl_throttle_burst_then_limited() {
    let server = crate::start(&[]);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    // Burst 2 (limit 3), one request per hour.
    let k = ["CL.THROTTLE", "k", "2", "1", "3600"];
    assert_eq!(ints(&mut c, &k), [0, 3, 2, -1, 3600]);
    assert_eq!(ints(&mut c, &k), [0, 3, 1, -1, 7200]);
    assert_eq!(ints(&mut c, &k), [0, 3, 0, -1, 10800]);
    let r = ints(&mut c, &k);
    assert_eq!(r[..3], [1, 3, 0]);
    assert!((3599..=3600).contains(&r[3]), "{r:?}");
    assert!((10799..=10800).contains(&r[4]), "{r:?}");
    // Quantity 0 peeks: allowed, nothing consumed.
    let r = ints(&mut c, &["CL.THROTTLE", "k", "2", "1", "3600", "0"]);
    assert_eq!(r[..4], [0, 3, 0, -1]);
    // More than the whole burst can never pass: retry-after stays -1.
    let r = ints(&mut c, &["CL.THROTTLE", "fresh", "2", "1", "3600", "4"]);
    assert_eq!(r, [1, 3, 3, -1, 0]);
    assert_eq!(int(&mut c, &["EXISTS", "fresh"]), 0);
    // The state is redis-cell's: a string of nanoseconds with a TTL.
    assert_eq!(cmd(&mut c, &["TYPE", "k"]), Frame::Simple("string".into()));
    let tat: i64 = bulk(&mut c, &["GET", "k"]).unwrap().parse().unwrap();
    let now_ms: i64 = match cmd(&mut c, &["TIME"]) {
        Frame::Array(t) => match &t[0] {
            Frame::Bulk(s) => std::str::from_utf8(s).unwrap().parse::<i64>().unwrap() * 1000,
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    };
    let ahead_s = (tat / 1_000_000 - now_ms) / 1000;
    assert!((10_790..=10_800).contains(&ahead_s), "{ahead_s}");
    let ttl = int(&mut c, &["TTL", "k"]);
    assert!((10_790..=10_800).contains(&ttl), "{ttl}");
}

#[test]
fn cl_throttle_errors_change_nothing() {
    let server = crate::start(&[]);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    assert_eq!(ints(&mut c, &["CL.THROTTLE", "k", "5", "1", "60"])[0], 0);
    let before = bulk(&mut c, &["GET", "k"]);
    let usage =
        "Cell error: Usage: cl.throttle <key> <max_burst> <count per period> <period> [<quantity>]";
    assert_eq!(err(&mut c, &["CL.THROTTLE"]), usage);
    assert_eq!(err(&mut c, &["CL.THROTTLE", "k", "1", "1"]), usage);
    assert_eq!(
        err(&mut c, &["CL.THROTTLE", "k", "1", "1", "1", "1", "1"]),
        usage
    );
    assert_eq!(
        err(&mut c, &["CL.THROTTLE", "k", "x", "1", "60"]),
        "Cell error: Couldn't parse as integer: x"
    );
    assert_eq!(
        err(&mut c, &["CL.THROTTLE", "k", "5", "1", "60", "1.5"]),
        "Cell error: Couldn't parse as integer: 1.5"
    );
    assert_eq!(
        err(&mut c, &["CL.THROTTLE", "k", "5", "0", "60"]),
        "Cell error: Zero rates are not supported"
    );
    assert_eq!(
        err(&mut c, &["CL.THROTTLE", "k", "5", "1", "0"]),
        "Cell error: Zero rates are not supported"
    );
    assert_eq!(
        err(&mut c, &["CL.THROTTLE", "k", "-5", "1", "60"]),
        "Cell error: negative values are not supported"
    );
    assert_eq!(
        err(
            &mut c,
            &["CL.THROTTLE", "k", "5", "1", "9223372036854775807"]
        ),
        "Cell error: rate limit parameters overflow 64-bit nanoseconds"
    );
    assert_eq!(bulk(&mut c, &["GET", "k"]), before);
    cmd(&mut c, &["SET", "s", "abc"]);
    assert_eq!(
        err(&mut c, &["CL.THROTTLE", "s", "5", "1", "60"]),
        "Cell error: invalid digit found in string"
    );
    cmd(&mut c, &["RPUSH", "l", "a"]);
    assert!(err(&mut c, &["CL.THROTTLE", "l", "5", "1", "60"]).starts_with("WRONGTYPE"));
}

#[test]
fn gcra_burst_limits_and_state() {
    let server = crate::start(&[]);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    let k = ["GCRA", "g", "2", "1", "3600"];
    assert_eq!(ints(&mut c, &k), [0, 3, 2, -1, 3600]);
    assert_eq!(
        ints(&mut c, &["GCRA", "g", "2", "1", "3600", "TOKENS", "2"]),
        [0, 3, 0, -1, 10800]
    );
    let r = ints(&mut c, &k);
    assert_eq!(r[..3], [1, 3, 0]);
    assert!((3599..=3600).contains(&r[3]), "{r:?}");
    assert!((10799..=10800).contains(&r[4]), "{r:?}");
    // Fractional period: 0.5 s for 2 tokens, a fresh key.
    assert_eq!(
        ints(&mut c, &["GCRA", "f", "0", "2", "0.5"]),
        [0, 1, 0, -1, 1]
    );
    // The TAT is microseconds, the key expires at TAT / 1000 ms.
    let tat: i64 = bulk(&mut c, &["GET", "g"]).unwrap().parse().unwrap();
    let pexpiretime = int(&mut c, &["PEXPIRETIME", "g"]);
    assert_eq!(pexpiretime, tat / 1000);
}

#[test]
fn gcra_errors_change_nothing() {
    let server = crate::start(&[]);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    assert_eq!(ints(&mut c, &["GCRA", "g", "5", "1", "60"])[0], 0);
    let before = bulk(&mut c, &["GET", "g"]);
    let cases: &[(&[&str], &str)] = &[
        (
            &["GCRA", "g", "1", "1"],
            "ERR wrong number of arguments for 'gcra' command",
        ),
        (
            &["GCRA", "g", "1", "1", "1", "TOKENS", "1", "x"],
            "ERR wrong number of arguments for 'gcra' command",
        ),
        (
            &["GCRA", "g", "x", "1", "1"],
            "ERR value is not an integer or out of range",
        ),
        (
            &["GCRA", "g", "-1", "1", "1"],
            "ERR value is out of range, must be positive",
        ),
        (
            &["GCRA", "g", "1", "0", "1"],
            "ERR value is out of range, value must between 1 and 9223372036854775807",
        ),
        (
            &["GCRA", "g", "1", "1", "x"],
            "ERR value is not a valid float",
        ),
        (
            &["GCRA", "g", "1", "1", "0"],
            "ERR period must be > 0 and < 1e12",
        ),
        (
            &["GCRA", "g", "1", "1", "1e12"],
            "ERR period must be > 0 and < 1e12",
        ),
        (&["GCRA", "g", "1", "1", "1", "FOO"], "ERR syntax error"),
        (
            &["GCRA", "g", "1", "1", "1", "TOKENS"],
            "ERR Missing TOKENS value",
        ),
        (
            &["GCRA", "g", "1", "1", "1", "TOKENS", "0"],
            "ERR value is out of range, value must between 1 and 9223372036854775807",
        ),
        (
            &[
                "GCRA",
                "g",
                "1",
                "1",
                "100000000000",
                "TOKENS",
                "9223372036854775807",
            ],
            "ERR GCRA limiting uses microsecond accuracy. Combination of period, tokens_per_period and TOKENS would cause an overflow",
        ),
        (
            &["GCRA", "g", "9223372036854775806", "1", "100000000000"],
            "ERR GCRA limiting uses microsecond accuracy. Combination of period, tokens_per_period and max_burst would cause an overflow",
        ),
    ];
    for (args, want) in cases {
        assert_eq!(err(&mut c, args), *want, "{args:?}");
    }
    assert_eq!(bulk(&mut c, &["GET", "g"]), before);
    cmd(&mut c, &["SET", "s", "abc"]);
    assert_eq!(
        err(&mut c, &["GCRA", "s", "1", "1", "1"]),
        "ERR Invalid GCRA key"
    );
    cmd(&mut c, &["SET", "s", "-5"]);
    assert_eq!(
        err(&mut c, &["GCRA", "s", "1", "1", "1"]),
        "ERR Negative time is invalid value for GCRA"
    );
    cmd(&mut c, &["RPUSH", "l", "a"]);
    assert!(err(&mut c, &["GCRA", "l", "1", "1", "1"]).starts_with("WRONGTYPE"));
}
