//! [`RawClient`]: a blocking RESP client that hands back the exact bytes of each reply.
//!
//! Tests of a Redis-compatible server care about bytes on the wire (a `:1` where Redis sends
//! `#t`, or a missing trailing space in an error, is a bug), so this client never normalizes:
//! it sends multibulk commands or arbitrary bytes, and returns each reply as the raw bytes of
//! one complete frame. Every socket operation is bounded by a timeout so a silent server
//! fails the test instead of hanging it.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use basalt_proto::Frame;
use bytes::BytesMut;

use crate::resp::{self, ReplyError};

/// Nesting limit handed to `basalt_proto::decode_frame`; real replies stay far below it.
const MAX_DEPTH: usize = 128;

/// Read/write/connect timeout of a [`RawClient`] unless changed with
/// [`RawClient::set_timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A blocking, unbuffered-write RESP client over one TCP connection.
#[derive(Debug)]
pub struct RawClient {
    stream: TcpStream,
    /// Bytes received but not yet returned as a reply (pipelined replies, partial frames).
    pending: Vec<u8>,
}

fn invalid(e: ReplyError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl RawClient {
    /// Connects to `addr` with [`DEFAULT_TIMEOUT`] for connecting, reading and writing.
    pub fn connect(addr: SocketAddr) -> io::Result<RawClient> {
        let stream = TcpStream::connect_timeout(&addr, DEFAULT_TIMEOUT)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(DEFAULT_TIMEOUT))?;
        stream.set_write_timeout(Some(DEFAULT_TIMEOUT))?;
        Ok(RawClient {
            stream,
            pending: Vec::new(),
        })
    }

    /// Connects to `127.0.0.1:port`.
    pub fn connect_port(port: u16) -> io::Result<RawClient> {
        RawClient::connect(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// Changes the read and write timeout (`None` is rejected by std; pass a long duration).
    pub fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.stream.set_read_timeout(Some(timeout))?;
        self.stream.set_write_timeout(Some(timeout))
    }

    /// Sends one command as a RESP multibulk array. Does not read the reply.
    pub fn send(&mut self, args: &[&[u8]]) -> io::Result<()> {
        let mut out = BytesMut::new();
        basalt_proto::encode_command(args, &mut out);
        self.stream.write_all(&out)
    }

    /// Sends bytes exactly as given (inline commands, pipelines, malformed input).
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads the exact bytes of the next complete reply: one RESP2 or RESP3 frame, an
    /// attribute together with the frame it precedes, or one push frame.
    ///
    /// Fails with `UnexpectedEof` if the server closes the connection first, `WouldBlock` or
    /// `TimedOut` after the timeout, and `InvalidData` if the bytes are not RESP.
    pub fn read_reply_raw(&mut self) -> io::Result<Vec<u8>> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some(len) = resp::reply_len(&self.pending).map_err(invalid)? {
                let rest = self.pending.split_off(len);
                return Ok(std::mem::replace(&mut self.pending, rest));
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "connection closed by server with {} unparsed bytes",
                        self.pending.len()
                    ),
                ));
            }
            self.pending.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads the next reply and decodes it into a [`Frame`] with
    /// `basalt_proto::decode_frame`.
    pub fn read_reply(&mut self) -> io::Result<Frame> {
        let raw = self.read_reply_raw()?;
        let decoded = basalt_proto::decode_frame(&raw, MAX_DEPTH)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e:?}")))?;
        match decoded {
            Some((frame, used)) if used == raw.len() => Ok(frame),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "reply boundary scanner and basalt_proto::decode_frame disagree on {}",
                    resp::escape(&raw)
                ),
            )),
        }
    }

    /// Sends a command and returns the raw bytes of its reply.
    pub fn cmd(&mut self, args: &[&[u8]]) -> io::Result<Vec<u8>> {
        self.send(args)?;
        self.read_reply_raw()
    }

    /// Sends a command and returns its parsed reply.
    pub fn cmd_frame(&mut self, args: &[&[u8]]) -> io::Result<Frame> {
        self.send(args)?;
        self.read_reply()
    }

    /// Splits `line` with redis-cli quoting (`basalt_proto::split_args`), sends it and
    /// returns the raw reply: `client.cmd_line("SET k \"a b\"")`.
    pub fn cmd_line(&mut self, line: &str) -> io::Result<Vec<u8>> {
        let args = basalt_proto::split_args(line.as_bytes()).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "unbalanced quotes in command line",
            )
        })?;
        let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        self.cmd(&refs)
    }

    /// True if bytes that are not yet returned as a reply were received.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    /// A one-connection fake server: reads `expect` bytes, then writes `chunks` one by one
    /// with a flush between them, so replies arrive split at awkward places.
    fn fake_server(
        expect: usize,
        chunks: Vec<&'static [u8]>,
    ) -> (u16, thread::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut got = vec![0u8; expect];
            s.read_exact(&mut got).unwrap();
            for c in chunks {
                s.write_all(c).unwrap();
                s.flush().unwrap();
                thread::sleep(Duration::from_millis(5));
            }
            got
        });
        (port, handle)
    }

    #[test]
    fn reassembles_split_and_pipelined_replies() {
        let ping = b"*1\r\n$4\r\nPING\r\n";
        let (port, h) = fake_server(
            ping.len(),
            vec![
                b"$5\r\nhel",
                b"lo\r\n+O",
                b"K\r\n|1\r\n+a\r\n+b\r\n:7\r\n>1\r\n+x\r\n",
            ],
        );
        let mut c = RawClient::connect_port(port).unwrap();
        assert_eq!(c.cmd(&[b"PING"]).unwrap(), b"$5\r\nhello\r\n");
        assert_eq!(c.read_reply_raw().unwrap(), b"+OK\r\n");
        assert_eq!(c.read_reply_raw().unwrap(), b"|1\r\n+a\r\n+b\r\n:7\r\n");
        assert_eq!(
            c.read_reply().unwrap(),
            Frame::Push(vec![Frame::simple("x")])
        );
        assert!(!c.has_pending());
        assert_eq!(h.join().unwrap(), ping);
    }

    #[test]
    fn eof_mid_reply_is_an_error() {
        let (port, h) = fake_server(0, vec![b"$10\r\nabc"]);
        let mut c = RawClient::connect_port(port).unwrap();
        h.join().unwrap();
        let err = c.read_reply_raw().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn garbage_is_invalid_data() {
        let (port, h) = fake_server(0, vec![b"hello\r\n"]);
        let mut c = RawClient::connect_port(port).unwrap();
        let err = c.read_reply_raw().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        h.join().unwrap();
    }
}
