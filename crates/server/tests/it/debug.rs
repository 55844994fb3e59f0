//! DEBUG: refused unless `enable-debug-command` allows it, and the subcommands Basalt
//! implements (RELOAD and its options, OBJECT, SLEEP, SET-ACTIVE-EXPIRE, HELP).

use crate::rdb::{ok, run};
use std::time::{Duration, Instant};

const REFUSED: &str = "-ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.\r\n";

fn text(r: Vec<u8>) -> String {
    String::from_utf8(r).expect("utf8")
}

#[test]
fn refused_by_default_and_the_directive_is_immutable() {
    let s = crate::start(&[]);
    let mut c = s.client().unwrap();
    assert_eq!(text(run(&mut c, "DEBUG SLEEP 0")), REFUSED);
    // Arity is checked first, as in Redis.
    assert!(text(run(&mut c, "DEBUG")).starts_with("-ERR wrong number of arguments"));
    assert!(text(run(&mut c, "CONFIG SET enable-debug-command yes")).starts_with("-ERR"));
    assert_eq!(
        text(run(&mut c, "CONFIG GET enable-debug-command")),
        "*2\r\n$20\r\nenable-debug-command\r\n$2\r\nno\r\n"
    );
}

#[test]
fn local_allows_loopback_clients() {
    let s = crate::start(&["--enable-debug-command", "local"]);
    let mut c = s.client().unwrap();
    assert_eq!(text(run(&mut c, "DEBUG SLEEP 0")), "+OK\r\n");
}

#[test]
fn object_lines() {
    let s = crate::start(&["--enable-debug-command", "yes"]);
    let mut c = s.client().unwrap();
    ok(&mut c, "SET s hello");
    ok(&mut c, "SET n 123");
    ok(&mut c, "RPUSH l a b c");
    let line = text(run(&mut c, "DEBUG OBJECT s"));
    assert!(line.starts_with("+Value at:0x"), "{line}");
    assert!(
        line.contains(" refcount:1 encoding:embstr serializedlength:6 lru:"),
        "{line}"
    );
    assert!(line.contains(" lru_seconds_idle:"), "{line}");
    let line = text(run(&mut c, "DEBUG OBJECT n"));
    assert!(
        line.contains(" refcount:2147483647 encoding:int serializedlength:2 "),
        "{line}"
    );
    let line = text(run(&mut c, "DEBUG OBJECT l"));
    assert!(
        line.contains(" encoding:quicklist serializedlength:19 "),
        "{line}"
    );
    assert!(
        line.contains(
            " ql_nodes:1 ql_avg_node:3.00 ql_listpack_max:-2 ql_compressed:0 ql_uncompressed_size:"
        ),
        "{line}"
    );
    assert_eq!(
        text(run(&mut c, "DEBUG OBJECT nokey")),
        "-ERR no such key\r\n"
    );
    assert_eq!(
        text(run(&mut c, "DEBUG OBJECT")),
        "-ERR unknown subcommand or wrong number of arguments for 'OBJECT'. Try DEBUG HELP.\r\n"
    );
    assert_eq!(
        text(run(&mut c, "DEBUG bogus")),
        "-ERR unknown subcommand or wrong number of arguments for 'bogus'. Try DEBUG HELP.\r\n"
    );
    let help = text(run(&mut c, "DEBUG HELP"));
    assert!(help.starts_with("*"), "{help}");
    assert!(help.contains("+SLEEP <seconds>\r\n"), "{help}");
}

#[test]
fn reload_round_trips_and_honours_its_options() {
    let s = crate::start(&["--enable-debug-command", "yes"]);
    let mut c = s.client().unwrap();
    ok(&mut c, "SET a 1");
    ok(&mut c, "RPUSH l x y z");
    ok(&mut c, "PEXPIRE a 100000");
    assert_eq!(text(run(&mut c, "DEBUG RELOAD")), "+OK\r\n");
    assert_eq!(text(run(&mut c, "DBSIZE")), ":2\r\n");
    assert_eq!(
        text(run(&mut c, "LRANGE l 0 -1")),
        "*3\r\n$1\r\nx\r\n$1\r\ny\r\n$1\r\nz\r\n"
    );
    let ttl: i64 = text(run(&mut c, "PTTL a"))
        .trim_start_matches(':')
        .trim()
        .parse()
        .unwrap();
    assert!(ttl > 0 && ttl <= 100_000);
    // NOSAVE reloads the file as it is: a key added since is gone.
    ok(&mut c, "SET later 1");
    assert_eq!(text(run(&mut c, "DEBUG RELOAD NOSAVE")), "+OK\r\n");
    assert_eq!(text(run(&mut c, "EXISTS later")), ":0\r\n");
    // NOFLUSH MERGE keeps keys only in memory and takes the file's version of the rest.
    ok(&mut c, "SET mem 1");
    ok(&mut c, "SET a changed");
    assert_eq!(
        text(run(&mut c, "DEBUG RELOAD NOSAVE NOFLUSH MERGE")),
        "+OK\r\n"
    );
    assert_eq!(text(run(&mut c, "GET a")), "$1\r\n1\r\n");
    assert_eq!(text(run(&mut c, "EXISTS mem")), ":1\r\n");
    assert_eq!(
        text(run(&mut c, "DEBUG RELOAD MERGE NOPE")),
        "-ERR DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.\r\n"
    );
    // NOFLUSH without MERGE and a conflicting key: an error (Redis would exit).
    assert_eq!(
        text(run(&mut c, "DEBUG RELOAD NOSAVE NOFLUSH")),
        "-ERR Error trying to load the RDB dump, check server logs.\r\n"
    );
    // A missing file is an error too.
    std::fs::remove_file(s.dir().expect("scratch dir").join("dump.rdb")).unwrap();
    assert_eq!(
        text(run(&mut c, "DEBUG RELOAD NOSAVE")),
        "-ERR Error trying to load the RDB dump, check server logs.\r\n"
    );
}

#[test]
fn set_active_expire_stops_and_resumes_background_expiry() {
    let s = crate::start(&["--enable-debug-command", "yes", "--hz", "100"]);
    let mut c = s.client().unwrap();
    assert_eq!(text(run(&mut c, "DEBUG SET-ACTIVE-EXPIRE 0")), "+OK\r\n");
    ok(&mut c, "PSETEX k 1 v");
    std::thread::sleep(Duration::from_millis(300));
    // Not read: still counted, since nothing reclaimed it.
    assert_eq!(text(run(&mut c, "DBSIZE")), ":1\r\n");
    assert_eq!(text(run(&mut c, "DEBUG SET-ACTIVE-EXPIRE 1")), "+OK\r\n");
    let t0 = Instant::now();
    while text(run(&mut c, "DBSIZE")) != ":0\r\n" {
        assert!(t0.elapsed() < Duration::from_secs(10), "never expired");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sleep_holds_the_caller_not_other_clients() {
    let s = crate::start(&["--enable-debug-command", "yes", "--threads", "1"]);
    let mut sleeper = s.client().unwrap();
    let mut other = s.client().unwrap();
    sleeper.send(&[b"DEBUG", b"SLEEP", b"2"]).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    // Another client is served while the sleeper waits (even with one worker thread).
    assert_eq!(text(run(&mut other, "PING")), "+PONG\r\n");
    sleeper.set_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(sleeper.read_reply_raw().unwrap(), b"+OK\r\n");
    assert_eq!(text(run(&mut sleeper, "DEBUG SLEEP x")), "+OK\r\n");
    assert!(
        text(run(&mut sleeper, "DEBUG SLEEP 100000")).starts_with("-ERR DEBUG SLEEP is limited")
    );
}
