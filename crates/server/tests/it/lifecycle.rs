//! Server lifecycle and connection limits: config file + overrides, CONFIG SET/GET,
//! maxclients, AUTH, idle timeout, SHUTDOWN and SIGTERM.

use basalt_testkit::RawClient;
use std::io::Write;

#[test]
fn config_file_and_command_line_overrides() {
    let dir = std::env::temp_dir().join(format!("basalt-it-conf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let conf = dir.join("basalt.conf");
    let mut f = std::fs::File::create(&conf).expect("create");
    writeln!(f, "# a comment\nmaxclients 77\nhz 20\ndatabases 4\n").expect("write");
    drop(f);
    let conf_s = conf.to_string_lossy().into_owned();
    let server = crate::start(&[&conf_s, "--hz", "30"]);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    assert_eq!(
        c.cmd(&[b"CONFIG", b"GET", b"maxclients"]).expect("get"),
        b"*2\r\n$10\r\nmaxclients\r\n$2\r\n77\r\n"
    );
    assert_eq!(
        c.cmd(&[b"CONFIG", b"GET", b"hz"]).expect("get"),
        b"*2\r\n$2\r\nhz\r\n$2\r\n30\r\n"
    );
    assert_eq!(c.cmd(&[b"SELECT", b"3"]).expect("select"), b"+OK\r\n");
    assert_eq!(
        c.cmd(&[b"SELECT", b"4"]).expect("select"),
        b"-ERR DB index is out of range\r\n"
    );
    // CONFIG SET of several parameters is atomic: one bad value changes nothing.
    let r = c
        .cmd(&[
            b"CONFIG",
            b"SET",
            b"maxclients",
            b"50",
            b"hz",
            b"notanumber",
        ])
        .expect("set");
    assert!(
        r.starts_with(b"-ERR CONFIG SET failed"),
        "{}",
        String::from_utf8_lossy(&r)
    );
    assert_eq!(
        c.cmd(&[b"CONFIG", b"GET", b"maxclients"]).expect("get"),
        b"*2\r\n$10\r\nmaxclients\r\n$2\r\n77\r\n"
    );
    assert_eq!(
        c.cmd(&[b"CONFIG", b"SET", b"maxclients", b"50", b"hz", b"15"])
            .expect("set"),
        b"+OK\r\n"
    );
    assert_eq!(
        c.cmd(&[b"CONFIG", b"REWRITE"]).expect("rewrite"),
        b"+OK\r\n"
    );
    let text = std::fs::read_to_string(&conf).expect("read back");
    assert!(text.starts_with("# a comment\n"), "{text}");
    assert!(text.contains("maxclients 50"), "{text}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn maxclients_refuses_with_redis_error() {
    let server = crate::start(&["--maxclients", "2"]);
    // The readiness probe's connection may take a moment to be unregistered: retry a
    // refused connection for a bounded time.
    let connect = || {
        for _ in 0..100 {
            let mut c = RawClient::connect_port(server.port()).expect("connect");
            if c.cmd(&[b"PING"]).expect("ping") == b"+PONG\r\n" {
                return c;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("could not get a client slot");
    };
    let _a = connect();
    let _b = connect();
    let mut c = RawClient::connect_port(server.port()).expect("c");
    assert_eq!(
        c.read_reply_raw().expect("c"),
        b"-ERR max number of clients reached\r\n"
    );
}

#[test]
fn requirepass_gates_commands() {
    let server = crate::start(&["--requirepass", "s3cret"]);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    assert_eq!(
        c.cmd(&[b"GET", b"k"]).expect("get"),
        b"-NOAUTH Authentication required.\r\n"
    );
    assert_eq!(
        c.cmd(&[b"AUTH", b"wrong"]).expect("auth"),
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(c.cmd(&[b"AUTH", b"s3cret"]).expect("auth"), b"+OK\r\n");
    assert_eq!(c.cmd(&[b"GET", b"k"]).expect("get"), b"$-1\r\n");
    let mut d = RawClient::connect_port(server.port()).expect("connect");
    let hello = d
        .cmd(&[b"HELLO", b"3", b"AUTH", b"default", b"s3cret"])
        .expect("hello");
    assert!(
        hello.starts_with(b"%7\r\n"),
        "{}",
        String::from_utf8_lossy(&hello)
    );
    assert_eq!(d.cmd(&[b"PING"]).expect("ping"), b"+PONG\r\n");
}

#[test]
fn idle_clients_are_closed_after_timeout() {
    let server = crate::start(&["--timeout", "1"]);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    assert_eq!(c.cmd(&[b"PING"]).expect("ping"), b"+PONG\r\n");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert!(
        c.cmd(&[b"PING"]).is_err(),
        "idle connection should be closed"
    );
}

#[test]
fn shutdown_command_stops_the_server() {
    let mut server = crate::start(&[]);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    c.send(&[b"SHUTDOWN", b"NOSAVE"]).expect("send");
    // No reply: the connection closes.
    assert!(c.read_reply_raw().is_err());
    let status = server.stop().expect("stop");
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status {status:?}"
    );
}

#[test]
fn sigterm_is_a_graceful_shutdown() {
    let mut server = crate::start(&[]);
    let status = server.stop().expect("stop");
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status {status:?}"
    );
    assert!(server.log().contains("ready to exit"), "{}", server.log());
}
