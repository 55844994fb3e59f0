//! MULTI/EXEC/WATCH across clients: which writes of another client break a WATCH
//! (the table was recorded from redis-server 7.0.15: the same setup, WATCH k on one
//! connection, the action on a second, then MULTI PING EXEC), atomicity of EXEC against
//! concurrent clients, blocking commands inside EXEC, and limits.

use crate::start;
use crate::waiting::{client, reply, send, wait_blocked};

/// (name, setup, action by another client, EXEC succeeds).
const WATCH_CASES: &[(&str, &[&str], &[&str], bool)] = &[
    ("set", &["SET k v"], &["SET k v2"], false),
    ("set-same-value", &["SET k v"], &["SET k v"], false),
    ("set-nx-fails", &["SET k v"], &["SET k v2 NX"], true),
    ("set-xx-missing", &[], &["SET k v XX"], true),
    ("del", &["SET k v"], &["DEL k"], false),
    ("del-missing", &[], &["DEL k"], true),
    ("expire", &["SET k v"], &["EXPIRE k 100"], false),
    ("expire-missing", &[], &["EXPIRE k 100"], true),
    ("persist-no-ttl", &["SET k v"], &["PERSIST k"], true),
    ("persist", &["SET k v EX 100"], &["PERSIST k"], false),
    ("incr", &["SET k 1"], &["INCR k"], false),
    ("append", &["SET k a"], &["APPEND k b"], false),
    ("setrange-empty", &["SET k a"], &["SETRANGE k 0 \"\""], true),
    ("getdel", &["SET k a"], &["GETDEL k"], false),
    (
        "getex-persist",
        &["SET k a EX 100"],
        &["GETEX k PERSIST"],
        false,
    ),
    ("get", &["SET k a"], &["GET k"], true),
    ("lpush", &["RPUSH k a"], &["LPUSH k b"], false),
    ("lpushx-missing", &[], &["LPUSHX k b"], true),
    ("lpop-missing", &[], &["LPOP k"], true),
    ("lrem-none", &["RPUSH k a"], &["LREM k 0 zz"], true),
    ("ltrim-noop", &["RPUSH k a"], &["LTRIM k 0 -1"], false),
    ("lset", &["RPUSH k a"], &["LSET k 0 b"], false),
    (
        "rpoplpush-dst",
        &["RPUSH src a"],
        &["RPOPLPUSH src k"],
        false,
    ),
    (
        "lmove-src",
        &["RPUSH k a"],
        &["LMOVE k other LEFT RIGHT"],
        false,
    ),
    ("hset", &["HSET k f v"], &["HSET k f v2"], false),
    (
        "hdel-missing-field",
        &["HSET k f v"],
        &["HDEL k nofield"],
        true,
    ),
    ("hsetnx-exists", &["HSET k f v"], &["HSETNX k f v2"], true),
    ("hincrby", &["HSET k f 1"], &["HINCRBY k f 1"], false),
    ("sadd-existing", &["SADD k a"], &["SADD k a"], true),
    ("sadd-new", &["SADD k a"], &["SADD k b"], false),
    ("srem-missing", &["SADD k a"], &["SREM k zz"], true),
    ("smove-dst", &["SADD src a"], &["SMOVE src k a"], false),
    (
        "sinterstore-empty-dst-missing",
        &[],
        &["SINTERSTORE k nosuch"],
        true,
    ),
    (
        "sinterstore-empty-dst-exists",
        &["SADD k a"],
        &["SINTERSTORE k nosuch"],
        false,
    ),
    ("zadd-same-score", &["ZADD k 1 a"], &["ZADD k 1 a"], true),
    ("zadd-new", &["ZADD k 1 a"], &["ZADD k 2 a"], false),
    ("zincrby", &["ZADD k 1 a"], &["ZINCRBY k 0 a"], true),
    ("zrem-missing", &["ZADD k 1 a"], &["ZREM k zz"], true),
    (
        "zremrangebyscore-none",
        &["ZADD k 1 a"],
        &["ZREMRANGEBYSCORE k 5 6"],
        true,
    ),
    ("zunionstore", &[], &["ZUNIONSTORE k 1 nosuch"], true),
    ("rename-from", &["SET k v"], &["RENAME k other"], false),
    ("rename-to", &["SET src v"], &["RENAME src k"], false),
    (
        "renamenx-to-exists",
        &["SET src v", "SET k v"],
        &["RENAMENX src k"],
        true,
    ),
    ("move", &["SET k v"], &["MOVE k 1"], false),
    ("copy-to", &["SET src v"], &["COPY src k"], false),
    (
        "sort-store",
        &["RPUSH src 2 1"],
        &["SORT src STORE k"],
        false,
    ),
    (
        "sort-store-empty-exists",
        &["RPUSH k 1"],
        &["SORT nosuch STORE k"],
        false,
    ),
    (
        "sort-store-empty-missing",
        &[],
        &["SORT nosuch STORE k"],
        true,
    ),
    ("setbit", &["SET k a"], &["SETBIT k 0 0"], true),
    ("setbit-same", &["SET k a"], &["SETBIT k 1 1"], true),
    ("bitop", &[], &["BITOP OR k nosuch"], true),
    ("bitfield-get", &["SET k a"], &["BITFIELD k GET u8 0"], true),
    ("pfadd-noop", &["PFADD k a"], &["PFADD k a"], true),
    ("pfadd-new", &["PFADD k a"], &["PFADD k b"], false),
    ("pfcount", &["PFADD k a"], &["PFCOUNT k"], false),
    ("pfmerge", &["PFADD k a"], &["PFMERGE k"], false),
    ("geoadd", &[], &["GEOADD k 10 10 m"], false),
    ("touch", &["SET k v"], &["TOUCH k"], true),
    ("object-freq", &["SET k v"], &["OBJECT ENCODING k"], true),
    ("expire-past", &["SET k v"], &["EXPIRE k -1"], false),
    (
        "expire-nx-fails",
        &["SET k v EX 100"],
        &["EXPIRE k 200 NX"],
        true,
    ),
    ("incrbyfloat", &["SET k 1"], &["INCRBYFLOAT k 0"], false),
    ("mset", &[], &["MSET k 1 z 2"], false),
    ("msetnx-fails", &["SET z 1"], &["MSETNX k 1 z 2"], true),
    ("blpop-served", &["RPUSH k a"], &["BLPOP k 1"], false),
    (
        "flushall-other-db",
        &["SET k v"],
        &["SELECT 1", "FLUSHDB"],
        true,
    ),
    ("swapdb-missing-both", &[], &["SWAPDB 0 1"], true),
    ("lpos", &["RPUSH k a"], &["LPOS k a"], true),
    ("srandmember", &["SADD k a"], &["SPOP nosuch"], true),
    ("spop", &["SADD k a b"], &["SPOP k"], false),
    ("zpopmin-missing", &[], &["ZPOPMIN k"], true),
    ("hrandfield", &["HSET k f v"], &["HRANDFIELD k"], true),
    ("restore-like-getset", &["SET k v"], &["GETSET k v"], false),
    (
        "linsert-missing-pivot",
        &["RPUSH k a"],
        &["LINSERT k BEFORE zz b"],
        true,
    ),
    ("setex", &[], &["SETEX k 100 v"], false),
    (
        "psetex-existing",
        &["SET k v"],
        &["PSETEX k 100000 v"],
        false,
    ),
    ("decrby-zero", &["SET k 1"], &["DECRBY k 0"], false),
    ("hdel-last", &["HSET k f v"], &["HDEL k f"], false),
    ("unlink", &["SET k v"], &["UNLINK k"], false),
    ("xadd", &["XADD k 1-1 f v"], &["XADD k * f v"], false),
    (
        "xadd-nomkstream-missing",
        &[],
        &["XADD k NOMKSTREAM * f v"],
        true,
    ),
    (
        "xtrim-none",
        &["XADD k 1-1 f v"],
        &["XTRIM k MAXLEN 10"],
        true,
    ),
    (
        "xtrim-some",
        &["XADD k 1-1 f v", "XADD k 1-2 f v"],
        &["XTRIM k MAXLEN 1"],
        false,
    ),
    ("xdel-missing", &["XADD k 1-1 f v"], &["XDEL k 5-5"], true),
    ("xdel", &["XADD k 1-1 f v"], &["XDEL k 1-1"], false),
    ("xsetid", &["XADD k 1-1 f v"], &["XSETID k 5-5"], true),
    (
        "xgroup-create",
        &["XADD k 1-1 f v"],
        &["XGROUP CREATE k g 0"],
        true,
    ),
    (
        "xgroup-create-mkstream",
        &[],
        &["XGROUP CREATE k g 0 MKSTREAM"],
        false,
    ),
    (
        "xgroup-setid",
        &["XADD k 1-1 f v", "XGROUP CREATE k g 0"],
        &["XGROUP SETID k g $"],
        true,
    ),
    (
        "xgroup-destroy",
        &["XADD k 1-1 f v", "XGROUP CREATE k g 0"],
        &["XGROUP DESTROY k g"],
        true,
    ),
    (
        "xgroup-createconsumer",
        &["XADD k 1-1 f v", "XGROUP CREATE k g 0"],
        &["XGROUP CREATECONSUMER k g c"],
        true,
    ),
    (
        "xgroup-delconsumer",
        &[
            "XADD k 1-1 f v",
            "XGROUP CREATE k g 0",
            "XGROUP CREATECONSUMER k g c",
        ],
        &["XGROUP DELCONSUMER k g c"],
        true,
    ),
    (
        "xreadgroup",
        &["XADD k 1-1 f v", "XGROUP CREATE k g 0"],
        &["XREADGROUP GROUP g c STREAMS k >"],
        true,
    ),
    (
        "xreadgroup-nothing-new-consumer",
        &["XGROUP CREATE k g $ MKSTREAM"],
        &["XREADGROUP GROUP g c STREAMS k >"],
        true,
    ),
    (
        "xack",
        &[
            "XADD k 1-1 f v",
            "XGROUP CREATE k g 0",
            "XREADGROUP GROUP g c STREAMS k >",
        ],
        &["XACK k g 1-1"],
        true,
    ),
    (
        "xclaim",
        &[
            "XADD k 1-1 f v",
            "XGROUP CREATE k g 0",
            "XREADGROUP GROUP g c STREAMS k >",
        ],
        &["XCLAIM k g d 0 1-1"],
        true,
    ),
    (
        "xautoclaim",
        &[
            "XADD k 1-1 f v",
            "XGROUP CREATE k g 0",
            "XREADGROUP GROUP g c STREAMS k >",
        ],
        &["XAUTOCLAIM k g d 0 0"],
        true,
    ),
    ("xread", &["XADD k 1-1 f v"], &["XREAD STREAMS k 0"], true),
    ("xinfo", &["XADD k 1-1 f v"], &["XINFO STREAM k"], true),
];

#[test]
fn writes_by_other_clients_break_watch_like_redis() {
    let server = start(&[]);
    let mut a = client(&server);
    let mut b = client(&server);
    let mut wrong = Vec::new();
    for (name, setup, action, succeeds) in WATCH_CASES {
        a.cmd_line("FLUSHALL").unwrap();
        for c in *setup {
            a.cmd_line(c).unwrap();
        }
        assert_eq!(a.cmd_line("WATCH k").unwrap(), b"+OK\r\n");
        b.cmd_line("SELECT 0").unwrap();
        for c in *action {
            b.cmd_line(c).unwrap();
        }
        assert_eq!(a.cmd_line("MULTI").unwrap(), b"+OK\r\n");
        assert_eq!(a.cmd_line("PING").unwrap(), b"+QUEUED\r\n");
        let exec = a.cmd_line("EXEC").unwrap();
        let ok = exec == b"*1\r\n+PONG\r\n";
        if !ok {
            assert_eq!(exec, b"*-1\r\n", "{name}: unexpected EXEC reply");
        }
        if ok != *succeeds {
            wrong.push(format!("{name}: EXEC succeeded={ok}, redis={succeeds}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn exec_is_atomic_for_other_clients() {
    // One client increments two counters in a transaction many times; another reads
    // both with MGET meanwhile and must never see them differ.
    let server = start(&[]);
    let mut w = client(&server);
    let mut r = client(&server);
    w.cmd_line("MSET a 0 b 0").unwrap();
    const ROUNDS: usize = 300;
    let writer = std::thread::spawn(move || {
        for _ in 0..ROUNDS {
            send(&mut w, "MULTI");
            send(&mut w, "INCR a");
            send(&mut w, "INCR b");
            send(&mut w, "EXEC");
            for _ in 0..3 {
                reply(&mut w);
            }
            let exec = reply(&mut w);
            assert!(exec.starts_with("*2\r\n"), "{exec}");
        }
    });
    let mut reads = 0;
    while !writer.is_finished() || reads == 0 {
        let got = String::from_utf8(r.cmd_line("MGET a b").unwrap()).unwrap();
        let parts: Vec<&str> = got.split("\r\n").collect();
        assert_eq!(parts[2], parts[4], "partial transaction seen: {got:?}");
        reads += 1;
    }
    writer.join().unwrap();
    assert_eq!(
        r.cmd_line("MGET a b").unwrap(),
        format!("*2\r\n$3\r\n{ROUNDS}\r\n$3\r\n{ROUNDS}\r\n").as_bytes()
    );
}

#[test]
fn exec_wakes_clients_blocked_on_its_keys() {
    let server = start(&[]);
    let mut waiter = client(&server);
    let mut ctl = client(&server);
    send(&mut waiter, "BLPOP q 0");
    wait_blocked(&mut ctl, 1);
    let mut tx = client(&server);
    tx.cmd_line("MULTI").unwrap();
    tx.cmd_line("RPUSH q a").unwrap();
    tx.cmd_line("RPUSH q b").unwrap();
    assert_eq!(tx.cmd_line("EXEC").unwrap(), b"*2\r\n:1\r\n:2\r\n");
    assert_eq!(reply(&mut waiter), "*2\r\n$1\r\nq\r\n$1\r\na\r\n");
    assert_eq!(ctl.cmd_line("LRANGE q 0 -1").unwrap(), b"*1\r\n$1\r\nb\r\n");
}

#[test]
fn client_list_shows_transaction_state() {
    let server = start(&[]);
    let mut c = client(&server);
    let line = String::from_utf8(c.cmd_line("CLIENT INFO").unwrap()).unwrap();
    assert!(
        line.contains(" flags=N ") && line.contains(" multi=-1 "),
        "{line}"
    );
    c.cmd_line("SET k v").unwrap();
    c.cmd_line("WATCH k").unwrap();
    let mut other = client(&server);
    other.cmd_line("DEL k").unwrap();
    c.cmd_line("MULTI").unwrap();
    c.cmd_line("SET k v2").unwrap();
    c.cmd_line("GET k").unwrap();
    let list = String::from_utf8(other.cmd_line("CLIENT LIST").unwrap()).unwrap();
    let mine = list
        .lines()
        .find(|l| l.starts_with("id=") && !l.contains("cmd=client|list"))
        .expect("the transaction's client");
    assert!(mine.contains(" flags=xd "), "{mine}");
    assert!(mine.contains(" multi=2 "), "{mine}");
    assert!(mine.contains(" cmd=get "), "{mine}");
    assert!(!mine.contains(" multi-mem=0 "), "{mine}");
    assert_eq!(c.cmd_line("EXEC").unwrap(), b"*-1\r\n");
    let line = String::from_utf8(c.cmd_line("CLIENT INFO").unwrap()).unwrap();
    assert!(
        line.contains(" flags=N ") && line.contains(" multi=-1 "),
        "{line}"
    );
}

#[test]
fn queued_commands_count_against_the_query_buffer_limit() {
    // client-query-buffer-limit's minimum is 1mb: queue just under it, then over.
    let server = start(&["--client-query-buffer-limit", "1mb"]);
    let mut c = client(&server);
    c.cmd_line("MULTI").unwrap();
    let value = vec![b'x'; 100 * 1024];
    for _ in 0..9 {
        assert_eq!(c.cmd(&[b"SET", b"k", &value]).unwrap(), b"+QUEUED\r\n");
    }
    assert_eq!(c.cmd_line("EXEC").unwrap().len(), 5 * 9 + 4);
    c.cmd_line("MULTI").unwrap();
    let mut closed = false;
    for _ in 0..20 {
        match c.cmd(&[b"SET", b"k", &value]) {
            Ok(r) => assert_eq!(r, b"+QUEUED\r\n"),
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    assert!(
        closed,
        "a client queueing past the limit must be disconnected"
    );
    let mut ctl = client(&server);
    let info = String::from_utf8(ctl.cmd_line("INFO stats").unwrap()).unwrap();
    assert!(
        info.contains("client_query_buffer_limit_disconnections:1\r\n"),
        "{info}"
    );
}

#[test]
fn disconnect_forgets_watches_and_queue() {
    let server = start(&[]);
    for _ in 0..3 {
        let mut c = client(&server);
        c.cmd_line("WATCH k1 k2").unwrap();
        c.cmd_line("MULTI").unwrap();
        c.cmd_line("SET k1 v").unwrap();
        drop(c);
    }
    let mut c = client(&server);
    // The dropped clients' queued SETs never ran.
    assert_eq!(c.cmd_line("EXISTS k1").unwrap(), b":0\r\n");
}

/// A refused EXEC answers EXECABORT and INFO errorstats counts EXECABORT, whatever the
/// refusal was (here: the memory limit came into force after the commands were queued;
/// then a denyoom command refused while queueing, counted as OOM, and its EXEC).
/// Recorded from redis-server 7.0.15: EXECABORT 2, OOM 1, total 3.
#[test]
fn refused_exec_is_counted_as_execabort() {
    let server = start(&[]);
    let mut c = client(&server);
    let mut admin = client(&server);
    assert_eq!(c.cmd_line("MULTI").unwrap(), b"+OK\r\n");
    assert_eq!(c.cmd_line("SET k v").unwrap(), b"+QUEUED\r\n");
    assert_eq!(
        admin.cmd_line("CONFIG SET maxmemory 1").unwrap(),
        b"+OK\r\n"
    );
    assert_eq!(
        c.cmd_line("EXEC").unwrap(),
        b"-EXECABORT Transaction discarded because of: OOM command not allowed when used memory > 'maxmemory'.\r\n"
    );
    assert_eq!(c.cmd_line("MULTI").unwrap(), b"+OK\r\n");
    assert_eq!(
        c.cmd_line("SET k v").unwrap(),
        b"-OOM command not allowed when used memory > 'maxmemory'.\r\n"
    );
    assert_eq!(
        c.cmd_line("EXEC").unwrap(),
        b"-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
    assert_eq!(
        admin.cmd_line("CONFIG SET maxmemory 0").unwrap(),
        b"+OK\r\n"
    );
    let stats = String::from_utf8(admin.cmd_line("INFO errorstats").unwrap()).unwrap();
    assert!(stats.contains("errorstat_EXECABORT:count=2\r\n"), "{stats}");
    assert!(stats.contains("errorstat_OOM:count=1\r\n"), "{stats}");
    let info = String::from_utf8(admin.cmd_line("INFO stats").unwrap()).unwrap();
    assert!(info.contains("total_error_replies:3\r\n"), "{info}");
}
