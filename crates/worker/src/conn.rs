//! One RESP connection to a Basalt server: send a command, read its reply.
//!
//! Requests are encoded with `basalt_proto::encode_command`, replies decoded with
//! `basalt_proto::decode_frame` (RESP2, which every reply of the job commands has a
//! shape in). A reply larger than [`MAX_REPLY_BYTES`] closes the connection with an
//! error instead of growing the buffer without end.

use crate::Error;
use basalt_proto::{Frame, decode_frame, encode_command};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest reply a connection accepts (a `JOB.FETCH COUNT 1000` of 1 MiB payloads fits).
pub const MAX_REPLY_BYTES: usize = 1 << 31;
/// Nesting depth accepted in replies.
const MAX_DEPTH: usize = 64;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `host:port`.
    pub addr: String,
    /// Sent as `AUTH` (with `username` when set) after connecting.
    pub password: Option<String>,
    /// ACL user for `AUTH`.
    pub username: Option<String>,
    /// Database selected after connecting (queues are keys of one database).
    pub db: u32,
}

impl ConnectOptions {
    /// Database 0, no password.
    pub fn new(addr: impl Into<String>) -> ConnectOptions {
        ConnectOptions {
            addr: addr.into(),
            password: None,
            username: None,
            db: 0,
        }
    }
}

/// A connected RESP client.
pub struct Connection {
    stream: TcpStream,
    rbuf: BytesMut,
    wbuf: BytesMut,
}

impl Connection {
    /// Connects, authenticates and selects the database as `opts` say.
    pub async fn connect(opts: &ConnectOptions) -> Result<Connection, Error> {
        let stream = TcpStream::connect(&opts.addr).await?;
        let _ = stream.set_nodelay(true);
        let mut c = Connection {
            stream,
            rbuf: BytesMut::with_capacity(16 * 1024),
            wbuf: BytesMut::with_capacity(1024),
        };
        if let Some(pw) = &opts.password {
            let reply = match &opts.username {
                Some(u) => c.call(&[b"AUTH", u.as_bytes(), pw.as_bytes()]).await?,
                None => c.call(&[b"AUTH", pw.as_bytes()]).await?,
            };
            crate::reply::check(reply)?;
        }
        if opts.db != 0 {
            let db = opts.db.to_string();
            crate::reply::check(c.call(&[b"SELECT", db.as_bytes()]).await?)?;
        }
        Ok(c)
    }

    /// Sends one command and returns its reply (an error reply is a `Frame::Error`, not
    /// an `Err`: callers decide what a server error means).
    pub async fn call(&mut self, args: &[&[u8]]) -> Result<Frame, Error> {
        self.wbuf.clear();
        encode_command(args, &mut self.wbuf);
        self.stream.write_all(&self.wbuf).await?;
        loop {
            match decode_frame(&self.rbuf, MAX_DEPTH) {
                Ok(Some((frame, used))) => {
                    let _ = self.rbuf.split_to(used);
                    return Ok(frame);
                }
                Ok(None) => {}
                Err(e) => return Err(Error::Protocol(format!("{e:?}"))),
            }
            if self.rbuf.len() > MAX_REPLY_BYTES {
                return Err(Error::Protocol("reply too large".to_string()));
            }
            self.rbuf.reserve(16 * 1024);
            if self.stream.read_buf(&mut self.rbuf).await? == 0 {
                return Err(Error::Closed);
            }
        }
    }
}
