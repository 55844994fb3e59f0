//! `RL.POLICY` over the wire: SET/GET/DEL/LIST and their errors, `rl-max-policies` at
//! its boundary, `RL.CHECK ... POLICY` and `RL.MCHECK` with overrides (first match
//! wins) and shadow mode, and policies kept across restarts (RDB, AOF replay, AOF
//! rewrite with and without an RDB preamble).

use crate::rl::{cmd, err, field, pairs, scratch};
use basalt_proto::Frame;
use basalt_testkit::RawClient;

fn ok(c: &mut RawClient, args: &[&str]) {
    assert_eq!(cmd(c, args), Frame::Simple("OK".into()), "{args:?}");
}

fn bulks(names: &[&str]) -> Frame {
    Frame::Array(
        names
            .iter()
            .map(|n| Frame::Bulk(n.to_string().into()))
            .collect(),
    )
}

#[test]
fn policy_set_get_del_list_and_errors() {
    let server = crate::start(&[]);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    ok(
        &mut c,
        &["RL.POLICY", "SET", "api", "GCRA", "20", "100", "60000"],
    );
    // A spec may also be one argument; options in any order.
    ok(
        &mut c,
        &[
            "RL.POLICY",
            "SET",
            "login",
            "LOG 5 900000",
            "OVERRIDE",
            "login:admin*",
            "LOG",
            "3",
            "900000",
            "SHADOW",
        ],
    );
    assert_eq!(
        cmd(&mut c, &["RL.POLICY", "LIST"]),
        bulks(&["api", "login"])
    );
    assert_eq!(
        cmd(&mut c, &["RL.POLICY", "GET", "login"]),
        Frame::Array(vec![
            Frame::Bulk("spec".into()),
            Frame::Bulk("LOG 5 900000".into()),
            Frame::Bulk("shadow".into()),
            Frame::Integer(1),
            Frame::Bulk("overrides".into()),
            bulks(&["login:admin*", "LOG 3 900000"]),
        ])
    );
    assert_eq!(cmd(&mut c, &["RL.POLICY", "GET", "nope"]), Frame::Null);
    // SET replaces.
    ok(&mut c, &["RL.POLICY", "SET", "api", "FIXED", "10", "1000"]);
    assert_eq!(
        pairs(cmd(&mut c, &["RL.POLICY", "GET", "api"]))[0],
        ("shadow".to_string(), 0)
    );
    assert_eq!(cmd(&mut c, &["RL.POLICY", "DEL", "api"]), Frame::Integer(1));
    assert_eq!(cmd(&mut c, &["RL.POLICY", "DEL", "api"]), Frame::Integer(0));
    assert_eq!(cmd(&mut c, &["RL.POLICY", "LIST"]), bulks(&["login"]));
    let cases: &[(&[&str], &str)] = &[
        (
            &["RL.POLICY", "SET", "p", "GCRA", "1", "1"],
            "ERR GCRA takes 3 arguments",
        ),
        (
            &["RL.POLICY", "SET", "p", "FIXED", "1", "1", "BOGUS"],
            "ERR syntax error",
        ),
        (
            &["RL.POLICY", "SET", "p", "FIXED", "1", "1", "OVERRIDE", "x"],
            "ERR syntax error",
        ),
        (
            &["RL.POLICY", "SET", "p", "LEASE", "1"],
            "ERR unknown rate limit algorithm 'LEASE' (GCRA, TOKEN, FIXED, SLIDING, LOG)",
        ),
        (
            &["RL.CHECK", "k", "POLICY", "nope"],
            "ERR no such rate limit policy 'nope'",
        ),
        (
            &["RL.CHECK", "k", "POLICY"],
            "ERR wrong number of arguments for 'rl.check' command",
        ),
        (&["RL.CHECK", "k", "POLICY", "api", "x"], "ERR syntax error"),
        (
            &["RL.MCHECK", "1", "k", "POLICY", "nope"],
            "ERR no such rate limit policy 'nope'",
        ),
    ];
    for (args, want) in cases {
        assert_eq!(err(&mut c, args), *want, "{args:?}");
    }
    assert_eq!(cmd(&mut c, &["RL.POLICY", "LIST"]), bulks(&["login"]));
    assert_eq!(cmd(&mut c, &["EXISTS", "k"]), Frame::Integer(0));
    // rl-max-policies at its boundary: two allowed, a third refused, replacing is fine.
    ok(&mut c, &["CONFIG", "SET", "rl-max-policies", "2"]);
    ok(&mut c, &["RL.POLICY", "SET", "b", "FIXED", "1", "1000"]);
    assert_eq!(
        err(&mut c, &["RL.POLICY", "SET", "c", "FIXED", "1", "1000"]),
        "ERR too many policies (rl-max-policies is 2)"
    );
    ok(&mut c, &["RL.POLICY", "SET", "b", "FIXED", "2", "1000"]);
    let long = "n".repeat(257);
    assert_eq!(
        err(&mut c, &["RL.POLICY", "SET", &long, "FIXED", "1", "1000"]),
        "ERR policy names must be at most 256 bytes"
    );
    // Policies are not keys.
    ok(&mut c, &["FLUSHALL"]);
    assert_eq!(cmd(&mut c, &["RL.POLICY", "LIST"]), bulks(&["b", "login"]));
}

#[test]
fn checks_use_the_policy_overrides_and_shadow_mode() {
    let server = crate::start(&[]);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    let hour = "3600000";
    ok(
        &mut c,
        &[
            "RL.POLICY",
            "SET",
            "api",
            "FIXED",
            "2",
            hour,
            "OVERRIDE",
            "vip:*",
            "FIXED",
            "3",
            hour,
            "OVERRIDE",
            "vip:x*",
            "FIXED",
            "9",
            hour,
        ],
    );
    let check = |c: &mut RawClient, key: &str| pairs(cmd(c, &["RL.CHECK", key, "POLICY", "api"]));
    assert_eq!(field(&check(&mut c, "user:1"), "limit"), 2);
    // The first matching override wins, even when a later one is more specific.
    assert_eq!(field(&check(&mut c, "vip:xyz"), "limit"), 3);
    for _ in 0..3 {
        assert_eq!(field(&check(&mut c, "vip:1"), "allowed"), 1);
    }
    assert_eq!(field(&check(&mut c, "vip:1"), "allowed"), 0);
    // The key holds an ordinary limiter.
    assert_eq!(
        field(&pairs(cmd(&mut c, &["RL.INFO", "vip:1"])), "limit"),
        3
    );
    // Options still apply.
    let r = pairs(cmd(
        &mut c,
        &["RL.CHECK", "user:1", "POLICY", "api", "COST", "2", "PEEK"],
    ));
    assert_eq!(field(&r, "allowed"), 0);
    assert!(r.iter().all(|(k, _)| k != "shadow_limited"));

    // Shadow: the same counting, never a refusal, and shadow_limited says what
    // enforcement would have done.
    ok(
        &mut c,
        &["RL.POLICY", "SET", "soft", "FIXED", "2", hour, "SHADOW"],
    );
    let mut seen = Vec::new();
    for _ in 0..4 {
        let r = pairs(cmd(&mut c, &["RL.CHECK", "s", "POLICY", "soft"]));
        seen.push((
            field(&r, "allowed"),
            field(&r, "remaining"),
            field(&r, "shadow_limited"),
        ));
    }
    assert_eq!(seen, [(1, 1, 0), (1, 0, 0), (1, 0, 1), (1, 0, 1)]);
    assert_eq!(field(&pairs(cmd(&mut c, &["RL.INFO", "s"])), "count"), 2);

    // RL.MCHECK: a shadow limit never refuses the whole; an enforced one does.
    let m = |c: &mut RawClient, args: &[&str]| {
        let mut a = vec!["RL.MCHECK"];
        a.extend(args);
        cmd(c, &a)
    };
    let top = |f: Frame| match f {
        Frame::Array(items) => items[1].clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        top(m(
            &mut c,
            &["2", "s", "POLICY", "soft", "u", "FIXED", "5", hour]
        )),
        Frame::Integer(1)
    );
    assert_eq!(field(&pairs(cmd(&mut c, &["RL.INFO", "u"])), "count"), 1);
    assert_eq!(
        top(m(
            &mut c,
            &[
                "2", "u", "FIXED", "5", hour, "user:1", "POLICY", "api", "COST", "2"
            ]
        )),
        Frame::Integer(0)
    );
    assert_eq!(field(&pairs(cmd(&mut c, &["RL.INFO", "u"])), "count"), 1);
    assert_eq!(
        cmd(
            &mut c,
            &[
                "COMMAND",
                "GETKEYS",
                "RL.MCHECK",
                "2",
                "a",
                "POLICY",
                "soft",
                "COST",
                "2",
                "b",
                "LOG",
                "1",
                "1"
            ]
        ),
        bulks(&["a", "b"])
    );
}

fn policies(c: &mut RawClient) -> Vec<Frame> {
    let Frame::Array(names) = cmd(c, &["RL.POLICY", "LIST"]) else {
        panic!("LIST")
    };
    let mut out = names.clone();
    for n in names {
        let Frame::Bulk(n) = n else { panic!() };
        out.push(cmd(c, &["RL.POLICY", "GET", &String::from_utf8_lossy(&n)]));
    }
    out
}

fn define(c: &mut RawClient) -> Vec<Frame> {
    ok(c, &["RL.POLICY", "SET", "gone", "FIXED", "1", "1000"]);
    ok(
        c,
        &[
            "RL.POLICY",
            "SET",
            "api",
            "GCRA",
            "20",
            "100",
            "60000",
            "SHADOW",
            "OVERRIDE",
            "a b*",
            "TOKEN",
            "5",
            "2",
        ],
    );
    ok(c, &["RL.POLICY", "SET", "login", "LOG", "5", "900000"]);
    assert_eq!(cmd(c, &["RL.POLICY", "DEL", "gone"]), Frame::Integer(1));
    let p = policies(c);
    assert_eq!(p.len(), 4);
    p
}

#[test]
fn policies_survive_rdb_restart() {
    let dir = scratch("policy-rdb");
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
        let p = define(&mut c);
        ok(&mut c, &["SAVE"]);
        p
    };
    let server = crate::start(&args);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    assert_eq!(policies(&mut c), before);
    // DEBUG RELOAD keeps them too.
    ok(&mut c, &["DEBUG", "RELOAD"]);
    assert_eq!(policies(&mut c), before);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn policies_survive_aof_replay_and_rewrite() {
    crate::rdb::survives_aof_replay_and_rewrite("policy", define, policies);
}

#[test]
fn policies_and_leases_count_as_changes() {
    let server = crate::start(&[]);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    let changes = |c: &mut RawClient| -> u64 {
        crate::rdb::info_field(c, "rdb_changes_since_last_save")
            .parse()
            .expect("a number")
    };
    let cases: &[(u64, &[&str])] = &[
        (1, &["RL.POLICY", "SET", "p", "FIXED", "1", "1000"]),
        (1, &["RL.POLICY", "SET", "p", "FIXED", "2", "1000"]),
        (0, &["RL.POLICY", "SET", "p", "FIXED", "0", "1000"]),
        (1, &["RL.POLICY", "DEL", "p"]),
        (0, &["RL.POLICY", "DEL", "p"]),
        (1, &["RL.LEASE", "k", "1", "600000"]),
        (0, &["RL.LEASE", "k", "1", "600000"]),
        (0, &["RL.UNLEASE", "k", "1"]),
    ];
    for (want, args) in cases {
        let before = changes(&mut c);
        cmd(&mut c, args);
        assert_eq!(changes(&mut c) - before, *want, "{args:?}");
    }
    let Frame::Array(info) = cmd(&mut c, &["RL.INFO", "k"]) else {
        panic!("RL.INFO")
    };
    let Some(Frame::Array(leases)) = info
        .chunks(2)
        .find(|kv| kv[0] == Frame::Bulk("leases".into()))
        .map(|kv| kv[1].clone())
    else {
        panic!("leases")
    };
    let Frame::Integer(id) = leases[0] else {
        panic!("id")
    };
    let before = changes(&mut c);
    assert_eq!(
        cmd(&mut c, &["RL.UNLEASE", "k", &id.to_string()]),
        Frame::Integer(1)
    );
    assert_eq!(changes(&mut c) - before, 1);
}
