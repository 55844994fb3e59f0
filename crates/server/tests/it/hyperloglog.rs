//! HyperLogLog behaviour the golden sequences cannot express: estimates for large
//! cardinalities (hundreds of thousands of elements) stay within the error bounds, merges
//! of many dense HLLs count their union, and PFSELFTEST passes.

use basalt_proto::Frame;
use basalt_testkit::RawClient;

fn client(port: u16) -> RawClient {
    RawClient::connect_port(port).expect("connect")
}

fn cmd(c: &mut RawClient, args: &[&str]) -> Frame {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    c.cmd_frame(&args).expect("reply")
}

fn int(c: &mut RawClient, args: &[&str]) -> i64 {
    match cmd(c, args) {
        Frame::Integer(i) => i,
        other => panic!("{args:?}: not an integer: {other:?}"),
    }
}

/// Adds `prefix<i>` for `i` in `range` to `key`, 1000 per command.
fn fill(c: &mut RawClient, key: &str, prefix: &str, range: std::ops::Range<u64>) {
    let elements: Vec<String> = range.map(|i| format!("{prefix}{i}")).collect();
    for chunk in elements.chunks(1000) {
        let mut args = vec!["PFADD", key];
        args.extend(chunk.iter().map(String::as_str));
        assert!(matches!(cmd(c, &args), Frame::Integer(0 | 1)));
    }
}

/// True if `estimate` is within `pct` percent of `exact`.
fn close(estimate: i64, exact: u64, pct: f64) -> bool {
    (estimate as f64 - exact as f64).abs() <= exact as f64 * pct / 100.0
}

#[test]
fn large_cardinalities_stay_within_error_bounds() {
    let server = crate::start(&[]);
    let mut c = client(server.port());
    let mut added = 0u64;
    // Redis's standard error is 0.81%; checked at three standard errors.
    for target in [1_000u64, 10_000, 50_000, 250_000] {
        fill(&mut c, "hll", "el:", added..target);
        added = target;
        let n = int(&mut c, &["PFCOUNT", "hll"]);
        assert!(close(n, target, 2.44), "{target} elements estimated as {n}");
    }
    assert_eq!(
        cmd(&mut c, &["PFDEBUG", "ENCODING", "hll"]),
        Frame::Simple("dense".into())
    );
    assert_eq!(int(&mut c, &["STRLEN", "hll"]), 12304);
    // Adding what is already there changes nothing.
    fill(&mut c, "hll", "el:", 0..1000);
    let before = int(&mut c, &["PFCOUNT", "hll"]);
    assert_eq!(int(&mut c, &["PFADD", "hll", "el:0", "el:999"]), 0);
    assert_eq!(int(&mut c, &["PFCOUNT", "hll"]), before);
}

#[test]
fn merging_many_hlls_counts_the_union() {
    let server = crate::start(&[]);
    let mut c = client(server.port());
    let keys: Vec<String> = (0..8).map(|i| format!("day:{i}")).collect();
    for (i, k) in keys.iter().enumerate() {
        // Overlapping ranges: day i holds users 5000*i .. 5000*i + 10000.
        let start = 5_000 * i as u64;
        fill(&mut c, k, "user:", start..start + 10_000);
        let n = int(&mut c, &["PFCOUNT", k]);
        assert!(close(n, 10_000, 2.44), "{k}: {n}");
    }
    let union = 5_000 * 7 + 10_000;
    let mut args = vec!["PFCOUNT"];
    args.extend(keys.iter().map(String::as_str));
    let counted = int(&mut c, &args);
    assert!(close(counted, union, 2.44), "union estimated as {counted}");
    let mut args = vec!["PFMERGE", "week"];
    args.extend(keys.iter().map(String::as_str));
    assert_eq!(cmd(&mut c, &args), Frame::Simple("OK".into()));
    assert_eq!(int(&mut c, &["PFCOUNT", "week"]), counted);
    // Merging again (the destination is also a source) is idempotent.
    args[1] = "week";
    assert_eq!(cmd(&mut c, &args), Frame::Simple("OK".into()));
    assert_eq!(int(&mut c, &["PFCOUNT", "week"]), counted);
}

#[test]
fn pfselftest_passes() {
    let server = crate::start(&[]);
    let mut c = client(server.port());
    assert_eq!(cmd(&mut c, &["PFSELFTEST"]), Frame::Simple("OK".into()));
}
