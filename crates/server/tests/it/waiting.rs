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

/// Twenty rounds of: `b` blocks with `block_b` (one key), `c` with `block_c` (that key and
/// a second one, so it queues behind `b` on the first and first on the second), then
/// `push_first` and `push_second` are sent in one go. As Redis serves each ready key's
/// waiters in order, `b` must get `want_b` and `c` `want_c` (the second key's element),
/// whichever of them re-runs first.
pub fn waiter_on_two_keys_takes_from_the_key_that_woke_it(
    server: &TestServer,
    [block_b, block_c]: [&str; 2],
    [push_first, push_second]: [&str; 2],
    [want_b, want_c]: [&str; 2],
) {
    let mut ctl = client(server);
    for round in 0..20 {
        let mut b = client(server);
        let mut c = client(server);
        send(&mut b, block_b);
        wait_blocked(&mut ctl, 1);
        send(&mut c, block_c);
        wait_blocked(&mut ctl, 2);
        send(&mut ctl, push_first);
        send(&mut ctl, push_second);
        assert_eq!(reply(&mut ctl), ":1\r\n");
        assert_eq!(reply(&mut ctl), ":1\r\n");
        assert_eq!(reply(&mut b), want_b, "round {round}");
        assert_eq!(reply(&mut c), want_c, "round {round}");
        wait_blocked(&mut ctl, 0);
    }
}
