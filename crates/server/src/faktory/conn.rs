//! One Faktory connection: the `HI` greeting, the `HELLO` handshake (with Faktory's
//! iterated SHA-256 password hash when `faktory-password` is set), then one command line
//! at a time until `END`, a closed socket, CLIENT KILL or shutdown.
//!
//! Limits: a line longer than `faktory-max-line` gets `-ERR` and closes the connection
//! (what follows cannot be framed); `HELLO` must arrive within
//! `faktory-handshake-timeout` (Faktory's own server allows 2 s), so half-open
//! connections do not pile up. After HELLO the connection is an ordinary client of the
//! server (CLIENT LIST shows it with `lib-name=faktory`, CLIENT KILL closes it).

use super::{ConnGuard, Faktory, WorkerEntry, commands};
use crate::client::ClientShared;
use crate::server::{Client, Server, unix_ms};
use basalt_proto::Frame;
use bytes::{Bytes, BytesMut};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The protocol version Basalt speaks (`"v"` of `HI`).
pub const PROTOCOL_VERSION: i64 = 2;

/// Faktory's password hash: SHA-256 of `password + salt`, re-hashed (the raw digest)
/// until `iterations` hashes were taken, as lowercase hex.
pub fn pwdhash(password: &[u8], salt: &str, iterations: u32) -> String {
    let mut h = Sha256::new();
    h.update(password);
    h.update(salt.as_bytes());
    let mut digest = h.finalize();
    for _ in 1..iterations.max(1) {
        digest = Sha256::digest(digest);
    }
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares without an early exit, so the time taken does not tell how much matched.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Answers a connection over `faktory-max-connections` with an error and closes it.
pub async fn refuse(mut stream: TcpStream, msg: String, _guard: ConnGuard) {
    let _ = stream.write_all(format!("-{msg}\r\n").as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Why reading a line stopped.
pub enum LineError {
    /// The peer closed the connection or the socket failed.
    Closed,
    /// More than `faktory-max-line` bytes without a line end.
    TooLong,
}

/// Reads one line (without its `\r\n` or `\n`) from `rbuf`, reading the socket as
/// needed. A line longer than `max` bytes (its end not counted) is an error.
pub async fn read_line(
    stream: &mut TcpStream,
    rbuf: &mut BytesMut,
    max: usize,
) -> Result<Bytes, LineError> {
    let mut scanned = 0;
    loop {
        if let Some(i) = memchr::memchr(b'\n', &rbuf[scanned..]) {
            let end = scanned + i;
            let len = if end > 0 && rbuf[end - 1] == b'\r' {
                end - 1
            } else {
                end
            };
            if len > max {
                return Err(LineError::TooLong);
            }
            let mut line = rbuf.split_to(end + 1).freeze();
            line.truncate(len);
            return Ok(line);
        }
        scanned = rbuf.len();
        // `max` bytes and a `\r` may still be a line of `max`.
        if scanned > max + 1 {
            return Err(LineError::TooLong);
        }
        if rbuf.capacity() - rbuf.len() < 4096 {
            rbuf.reserve(16 * 1024);
        }
        match stream.read_buf(rbuf).await {
            Ok(0) | Err(_) => return Err(LineError::Closed),
            Ok(_) => {}
        }
    }
}

/// Encodes a reply as Faktory sends it (RESP2).
pub fn encode(frame: &Frame, out: &mut BytesMut) {
    basalt_proto::encode(frame, basalt_proto::Protocol::Resp2, out);
}

/// What `HELLO` told about the client.
#[derive(Debug, Default)]
pub struct Hello {
    /// The worker id; empty for a producer-only client.
    pub wid: String,
    /// The host name the worker runs on.
    pub hostname: String,
    /// The worker's process id.
    pub pid: i64,
}

/// Checks a `HELLO` line against the greeting's password challenge. The error is the
/// message sent before closing.
pub fn check_hello(
    line: &[u8],
    password: &[u8],
    challenge: Option<(u32, &str)>,
) -> Result<Hello, String> {
    let Some(json) = line.strip_prefix(b"HELLO ") else {
        return Err("ERR expected HELLO".to_string());
    };
    let v: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| format!("ERR invalid JSON in HELLO: {e}"))?;
    let Some(obj) = v.as_object() else {
        return Err("ERR invalid HELLO: expected a JSON object".to_string());
    };
    if let Some((iterations, salt)) = challenge {
        // Faktory hashes once for clients older than protocol version 2.
        let version = obj.get("v").and_then(|v| v.as_i64()).unwrap_or(1);
        let iterations = if version < 2 { 1 } else { iterations };
        let got = obj.get("pwdhash").and_then(|h| h.as_str()).unwrap_or("");
        let want = pwdhash(password, salt, iterations);
        if !same(got.as_bytes(), want.as_bytes()) {
            return Err("ERR Invalid password".to_string());
        }
    }
    let text = |k: &str| {
        obj.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    Ok(Hello {
        wid: text("wid"),
        hostname: text("hostname"),
        pid: obj.get("pid").and_then(|v| v.as_i64()).unwrap_or(0),
    })
}

/// The `HI` line, with a password challenge `(iterations, salt)` when one is set.
pub fn greeting(challenge: Option<(u32, &str)>) -> String {
    match challenge {
        Some((i, s)) => format!("+HI {{\"v\":{PROTOCOL_VERSION},\"i\":{i},\"s\":\"{s}\"}}\r\n"),
        None => format!("+HI {{\"v\":{PROTOCOL_VERSION}}}\r\n"),
    }
}

/// A connection's state after HELLO, handed to the command functions.
pub struct Session<'a> {
    /// The server.
    pub srv: &'a Arc<Server>,
    /// The listener's shared state.
    pub state: &'a Faktory,
    /// The socket (a blocking FETCH watches it for the peer going away).
    pub stream: &'a mut TcpStream,
    /// Bytes read but not yet processed.
    pub rbuf: &'a mut BytesMut,
    /// This connection's client of the server's command path.
    pub client: &'a mut Client,
    /// The worker id from HELLO (empty: a producer).
    pub wid: String,
}

impl Session<'_> {
    /// Runs one Basalt command for this connection; `None` when the connection must
    /// close (it went away while the command waited).
    pub async fn run(&mut self, args: Vec<Bytes>) -> Option<Frame> {
        crate::conn::run_internal(self.srv, self.stream, self.rbuf, self.client, &args).await
    }
}

/// Serves one accepted connection.
pub async fn serve(
    srv: Arc<Server>,
    state: Arc<Faktory>,
    mut stream: TcpStream,
    _guard: ConnGuard,
) {
    let _ = stream.set_nodelay(true);
    let (password, max_line, handshake_ms) = {
        let c = srv.config.read();
        (
            // Without a Faktory password of its own the port is as protected as the RESP
            // one: `requirepass` (if any) is the password.
            if c.faktory.password.is_empty() {
                c.requirepass.clone()
            } else {
                c.faktory.password.clone()
            },
            c.faktory.max_line as usize,
            c.faktory.handshake_timeout_ms,
        )
    };
    // Faktory's server draws 4000..8095 iterations and a random hex salt per connection.
    let mut rng = crate::rand::command_rng();
    let salt = format!("{:x}", rng() >> 1);
    let iterations = 4000 + (rng() % 4096) as u32;
    let challenge = (!password.is_empty()).then_some((iterations, salt.as_str()));
    if stream
        .write_all(greeting(challenge).as_bytes())
        .await
        .is_err()
    {
        return;
    }
    let mut rbuf = BytesMut::with_capacity(16 * 1024);
    let line = tokio::time::timeout(
        Duration::from_millis(handshake_ms),
        read_line(&mut stream, &mut rbuf, max_line),
    )
    .await;
    let hello = match line {
        Err(_) | Ok(Err(LineError::Closed)) => return,
        Ok(Err(LineError::TooLong)) => Err(line_too_long(max_line)),
        Ok(Ok(line)) => check_hello(&line, &password, challenge),
    };
    let hello = match hello {
        Ok(h) => h,
        Err(msg) => {
            let _ = stream.write_all(format!("-{msg}\r\n").as_bytes()).await;
            let _ = stream.shutdown().await;
            return;
        }
    };

    let id = srv.next_client_id();
    let (peer, local) = crate::conn::addrs(&stream);
    let shared = Arc::new(ClientShared::new(id, peer, local, -1, unix_ms()));
    *shared.lib_name.lock() = "faktory".to_string();
    if !hello.wid.is_empty() {
        *shared.name.lock() = hello.wid.clone();
        let mut workers = state.workers.lock();
        let w = workers
            .entry(hello.wid.clone())
            .or_insert_with(|| WorkerEntry {
                connections: 0,
                state: "ok".to_string(),
            });
        w.connections += 1;
    }
    srv.clients.lock().insert(id, shared.clone());
    let mut client = Client::new(shared.clone());
    // The Faktory password (or none) stands in for AUTH on this listener.
    client.authenticated = true;
    tracing::debug!(id, wid = %hello.wid, host = %hello.hostname, pid = hello.pid, "faktory client connected");

    let mut out = BytesMut::new();
    out.extend_from_slice(b"+OK\r\n");
    let mut session = Session {
        srv: &srv,
        state: &state,
        stream: &mut stream,
        rbuf: &mut rbuf,
        client: &mut client,
        wid: hello.wid.clone(),
    };
    lines(&mut session, &shared, &mut out, max_line).await;
    drop(session);

    let _ = stream.shutdown().await;
    srv.clients.lock().remove(&id);
    if !hello.wid.is_empty() {
        let mut workers = state.workers.lock();
        if let Some(w) = workers.get_mut(&hello.wid) {
            w.connections -= 1;
            if w.connections == 0 {
                workers.remove(&hello.wid);
            }
        }
    }
    tracing::debug!(id, "faktory client closed");
}

fn line_too_long(max: usize) -> String {
    format!("ERR line too long (faktory-max-line is {max} bytes)")
}

/// The command loop: write what is answered, read a line, run it.
async fn lines(s: &mut Session<'_>, shared: &ClientShared, out: &mut BytesMut, max_line: usize) {
    let mut shutdown = s.srv.shutdown.subscribe();
    loop {
        if !out.is_empty() {
            if s.stream.write_all(out).await.is_err() {
                return;
            }
            out.clear();
        }
        if *shutdown.borrow() || shared.killed.load(Ordering::Acquire) {
            return;
        }
        let line = tokio::select! {
            biased;
            _ = shared.kill.notified() => return,
            _ = shutdown.changed() => return,
            l = read_line(s.stream, s.rbuf, max_line) => l,
        };
        let line = match line {
            Ok(l) => l,
            Err(LineError::Closed) => return,
            Err(LineError::TooLong) => {
                encode(&Frame::error(line_too_long(max_line)), out);
                let _ = s.stream.write_all(out).await;
                return;
            }
        };
        if line.is_empty() {
            continue;
        }
        s.state.commands.fetch_add(1, Ordering::Relaxed);
        let (verb, rest) = match memchr::memchr(b' ', &line) {
            Some(i) => (line.slice(..i), line.slice(i + 1..)),
            None => (line.clone(), Bytes::new()),
        };
        if verb.as_ref() == b"END" {
            out.extend_from_slice(b"+OK\r\n");
            let _ = s.stream.write_all(out).await;
            return;
        }
        match commands::dispatch(s, &verb, &rest).await {
            Some(reply) => encode(&reply, out),
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pwdhash_iterates_sha256_over_the_digest() {
        // Computed from the definition (sha256 of password + salt, then of each raw
        // digest, hex) with Python's hashlib.
        assert_eq!(
            pwdhash(b"secret", "123456789abc", 1),
            "cf03fdb17215b4f880afdecac2af34c90897453b51047bbb3b69f58d8eb80d38"
        );
        assert_eq!(
            pwdhash(b"secret", "123456789abc", 1735),
            "3482f634969367cc4fa4f0dd56d1b11d1e80ce5936b8827f5e4befb7817d6898"
        );
    }

    #[test]
    fn hello_without_password() {
        let h = check_hello(
            br#"HELLO {"hostname":"h","wid":"w1","pid":7,"labels":["x"],"v":2}"#,
            b"",
            None,
        )
        .unwrap();
        assert_eq!((h.wid.as_str(), h.hostname.as_str(), h.pid), ("w1", "h", 7));
    }

    #[test]
    fn hello_rejects_bad_json_and_other_verbs() {
        assert!(
            check_hello(b"HELLO {", b"", None)
                .unwrap_err()
                .starts_with("ERR invalid JSON")
        );
        assert!(
            check_hello(b"HELLO [1]", b"", None)
                .unwrap_err()
                .contains("JSON object")
        );
        assert_eq!(
            check_hello(b"PUSH {}", b"", None).unwrap_err(),
            "ERR expected HELLO"
        );
    }

    #[test]
    fn hello_checks_the_password_hash() {
        let good = pwdhash(b"pw", "abc", 5);
        let line = format!(r#"HELLO {{"v":2,"pwdhash":"{good}"}}"#);
        assert!(check_hello(line.as_bytes(), b"pw", Some((5, "abc"))).is_ok());
        assert_eq!(
            check_hello(line.as_bytes(), b"other", Some((5, "abc"))).unwrap_err(),
            "ERR Invalid password"
        );
        assert_eq!(
            check_hello(br#"HELLO {"v":2}"#, b"pw", Some((5, "abc"))).unwrap_err(),
            "ERR Invalid password"
        );
        // Protocol version 1 clients hash once.
        let v1 = format!(
            r#"HELLO {{"v":1,"pwdhash":"{}"}}"#,
            pwdhash(b"pw", "abc", 1)
        );
        assert!(check_hello(v1.as_bytes(), b"pw", Some((5, "abc"))).is_ok());
    }

    #[test]
    fn greeting_lines() {
        assert_eq!(greeting(None), "+HI {\"v\":2}\r\n");
        assert_eq!(
            greeting(Some((4001, "ab12"))),
            "+HI {\"v\":2,\"i\":4001,\"s\":\"ab12\"}\r\n"
        );
    }
}
