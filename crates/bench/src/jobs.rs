//! `basalt-bench jobs`: the `basalt-batch` workload of `bench/jobs_pair_load.mjs` in Rust,
//! so that the rate shown is the server's, not the Node client's (which saturates first).
//!
//! Push phase: `JOB.PUSH queue payload` pipelined in chunks of 1000 on one connection.
//! Process phase: `concurrency` threads, one connection each, loop on
//! `JOB.FETCH queue COUNT 100 BLOCK 1000` and send the ACKs of the jobs they got
//! (`JOB.ACK jid token`) in one write, until every job was acknowledged. Prints
//! `jobs_per_s push_ms process_ms` like the Node generator.

use anyhow::{Context, anyhow, bail};
use basalt_proto::{Frame, decode_frame, encode_command};
use bytes::BytesMut;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::time::Instant;

use crate::resp::{ReplyKind, scan_reply};

/// Options of `basalt-bench jobs`.
#[derive(Debug, clap::Args)]
pub struct JobsArgs {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:6379")]
    pub addr: String,
    /// Jobs pushed, then processed.
    #[arg(long, default_value_t = 20_000)]
    pub jobs: usize,
    /// Characters of the payload's `data` string (`{"data":"xxx..."}`).
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Fetch loops, one connection (and thread) each.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
}

/// JOB.PUSH commands per pipelined write in the push phase.
const CHUNK: usize = 1000;
/// Jobs per JOB.FETCH in the process phase.
const FETCH_COUNT: &str = "100";

/// One connection with a read buffer of the replies not consumed yet.
struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`.
    pos: usize,
}

impl Conn {
    fn connect(addr: &str) -> anyhow::Result<Conn> {
        let s = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
        s.set_nodelay(true)?;
        Ok(Conn {
            s,
            buf: Vec::with_capacity(64 * 1024),
            pos: 0,
        })
    }

    /// Reads more bytes from the socket (compacting the buffer first).
    fn fill(&mut self) -> anyhow::Result<()> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let len = self.buf.len();
        if self.buf.capacity() - len < 16 * 1024 {
            self.buf.reserve(64 * 1024);
        }
        self.buf.resize(self.buf.capacity(), 0);
        let n = self.s.read(&mut self.buf[len..]);
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                self.buf.truncate(len);
                return Err(e.into());
            }
        };
        self.buf.truncate(len + n);
        if n == 0 {
            bail!("the server closed the connection");
        }
        Ok(())
    }

    /// Reads `n` replies, failing on the first error reply; their values are not needed.
    fn skip_replies(&mut self, mut n: usize) -> anyhow::Result<()> {
        while n > 0 {
            match scan_reply(&self.buf[self.pos..]).map_err(|e| anyhow!("{e}"))? {
                Some((len, kind)) => {
                    if let ReplyKind::Error(r) = kind {
                        let at = self.pos + r.start;
                        let line_end = self.buf[at..]
                            .iter()
                            .position(|&b| b == b'\r')
                            .map_or(self.buf.len(), |p| at + p);
                        bail!(
                            "error reply: {}",
                            String::from_utf8_lossy(&self.buf[at..line_end])
                        );
                    }
                    self.pos += len;
                    n -= 1;
                }
                None => self.fill()?,
            }
        }
        Ok(())
    }

    /// Reads one reply, decoded.
    fn frame(&mut self) -> anyhow::Result<Frame> {
        loop {
            if let Some((f, used)) =
                decode_frame(&self.buf[self.pos..], 8).map_err(|e| anyhow!("{e:?}"))?
            {
                self.pos += used;
                if let Frame::Error(e) = &f {
                    bail!("error reply: {}", String::from_utf8_lossy(e));
                }
                return Ok(f);
            }
            self.fill()?;
        }
    }
}

/// The `jid` and `token` of a fetched job (a RESP2 flat map, or a RESP3 map).
fn jid_token(job: &Frame) -> anyhow::Result<(&[u8], &[u8])> {
    let pairs: Vec<(&Frame, &Frame)> = match job {
        Frame::Array(items) => items.chunks_exact(2).map(|p| (&p[0], &p[1])).collect(),
        Frame::Map(pairs) => pairs.iter().map(|(k, v)| (k, v)).collect(),
        other => bail!("a fetched job is not a map: {other:?}"),
    };
    let (mut jid, mut token) = (None, None);
    for (k, v) in pairs {
        if let (Frame::Bulk(k), Frame::Bulk(v)) = (k, v) {
            match &k[..] {
                b"jid" => jid = Some(&v[..]),
                b"token" => token = Some(&v[..]),
                _ => {}
            }
        }
    }
    Ok((
        jid.context("a fetched job has no jid")?,
        token.context("a fetched job has no token")?,
    ))
}

/// One fetch loop: fetch up to 100 jobs, ACK them all in one write, until `done` reaches
/// `total`. The thread that acknowledges the last job sends the time on `finished`.
fn fetch_loop(
    addr: &str,
    queue: &str,
    total: usize,
    done: &AtomicUsize,
    finished: &Sender<Instant>,
) -> anyhow::Result<()> {
    let mut c = Conn::connect(addr)?;
    let mut fetch = BytesMut::new();
    encode_command(
        &[
            b"JOB.FETCH",
            queue.as_bytes(),
            b"COUNT",
            FETCH_COUNT.as_bytes(),
            b"BLOCK",
            b"1000",
        ],
        &mut fetch,
    );
    let mut acks = BytesMut::with_capacity(16 * 1024);
    while done.load(Ordering::Relaxed) < total {
        c.s.write_all(&fetch)?;
        let jobs = match c.frame()? {
            Frame::Array(jobs) => jobs,
            Frame::NullArray | Frame::Null => continue,
            other => bail!("JOB.FETCH answered {other:?}"),
        };
        acks.clear();
        for job in &jobs {
            let (jid, token) = jid_token(job)?;
            encode_command(&[b"JOB.ACK", jid, token], &mut acks);
        }
        c.s.write_all(&acks)?;
        c.skip_replies(jobs.len())?;
        let now_done = done.fetch_add(jobs.len(), Ordering::Relaxed) + jobs.len();
        if now_done >= total && now_done - jobs.len() < total {
            // Only the receiver's end can be gone, and only after an error elsewhere.
            let _ = finished.send(Instant::now());
        }
    }
    Ok(())
}

/// Runs one push + process run and prints `jobs_per_s push_ms process_ms`.
pub fn main(a: &JobsArgs) -> anyhow::Result<()> {
    if a.jobs == 0 || a.concurrency == 0 {
        bail!("--jobs and --concurrency must be positive");
    }
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let queue = format!("bench-{}-{millis}", std::process::id());
    // JSON.stringify({data: "x".repeat(size)}), as the Node generator's payload.
    let payload = format!("{{\"data\":\"{}\"}}", "x".repeat(a.size));
    let mut one = BytesMut::new();
    encode_command(
        &[b"JOB.PUSH", queue.as_bytes(), payload.as_bytes()],
        &mut one,
    );

    let mut r = Conn::connect(&a.addr)?;
    let mut chunk = Vec::with_capacity(one.len() * CHUNK);
    let t0 = Instant::now();
    let mut pushed = 0;
    while pushed < a.jobs {
        let n = CHUNK.min(a.jobs - pushed);
        chunk.clear();
        for _ in 0..n {
            chunk.extend_from_slice(&one);
        }
        r.s.write_all(&chunk)?;
        r.skip_replies(n)?;
        pushed += n;
    }
    let t1 = Instant::now();

    let done = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = std::sync::mpsc::channel();
    let handles: Vec<_> = (0..a.concurrency)
        .map(|_| {
            let (addr, queue) = (a.addr.clone(), queue.clone());
            let (done, tx, total) = (done.clone(), tx.clone(), a.jobs);
            std::thread::spawn(move || fetch_loop(&addr, &queue, total, &done, &tx))
        })
        .collect();
    drop(tx);
    // Every job acknowledged: the end of the process phase. Loops still blocked in a
    // FETCH of the empty queue (up to BLOCK 1000 ms) are not counted in the time.
    let t2 = rx.recv();

    let mut del = BytesMut::new();
    let events = format!("{{{queue}}}:events");
    encode_command(&[b"DEL", queue.as_bytes(), events.as_bytes()], &mut del);
    r.s.write_all(&del)?;
    r.skip_replies(1)?;
    for h in handles {
        h.join().map_err(|_| anyhow!("a fetch loop panicked"))??;
    }
    let t2 = t2.map_err(|_| anyhow!("the fetch loops ended before every job was acknowledged"))?;
    let done = done.load(Ordering::Relaxed);
    if done != a.jobs {
        bail!("{done} jobs acknowledged, {} pushed", a.jobs);
    }

    let push_ms = (t1 - t0).as_secs_f64() * 1000.0;
    let process_ms = (t2 - t1).as_secs_f64() * 1000.0;
    let rate = a.jobs as f64 / ((push_ms + process_ms) / 1000.0);
    println!("{rate:.0} {push_ms:.0} {process_ms:.0}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn bulk(s: &str) -> Frame {
        Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn jid_and_token_from_a_resp2_flat_map() {
        let mut fields = Vec::new();
        for (k, v) in [
            ("queue", "q"),
            ("jid", "j1"),
            ("payload", "{}"),
            ("token", "t1"),
        ] {
            fields.push(bulk(k));
            fields.push(bulk(v));
        }
        fields.push(bulk("fence"));
        fields.push(Frame::Integer(3));
        let job = Frame::Array(fields);
        assert_eq!(jid_token(&job).unwrap(), (&b"j1"[..], &b"t1"[..]));
        assert!(jid_token(&Frame::Array(vec![bulk("jid"), bulk("j")])).is_err());
    }
}
