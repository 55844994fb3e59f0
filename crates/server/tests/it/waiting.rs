//! Helpers shared by the tests of blocking commands (lists, sorted sets, geo): clients with
//! generous timeouts, fire-and-forget sends, and waiting until the server reports a given
//! number of blocked clients (bounded, never a timing assertion).

use basalt_testkit::{RawClient, TestServer};
use std::time::Duration;

/// A client with a timeout long enough for debug builds doing large searches.
pub fn client(server: &TestServer) -> RawClient {
    let mut c = server.client().expect("connect");
    c.set_timeout(Duration::from_secs(20)).expect("timeout");
    c
}

/// Sends a command (redis-cli quoting) without waiting for its reply.
pub fn send(c: &mut RawClient, line: &str) {
    let args = basalt_proto::split_args(line.as_bytes()).expect("split");
    let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
    c.send(&refs).expect("send");
}

/// Reads one reply as text.
pub fn reply(c: &mut RawClient) -> String {
    String::from_utf8_lossy(&c.read_reply_raw().expect("reply")).into_owned()
}

/// Waits (bounded) until the server reports exactly `n` blocked clients.
pub fn wait_blocked(ctl: &mut RawClient, n: usize) {
    let want = format!("blocked_clients:{n}\r\n");
    for _ in 0..1000 {
        let info = ctl.cmd_line("INFO clients").expect("INFO");
        if String::from_utf8_lossy(&info).contains(&want) {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("never reached {n} blocked clients");
}
