//! `basalt-bench pubsub`: PUBLISH fan-out throughput. N subscribers on one channel, one
//! publisher pipelining PUBLISH; the result is messages delivered per second (N x
//! published / time until every subscriber has every message).
//!
//! Subscribers are spread over a few reader threads with non-blocking sockets, and
//! count bytes only: every message on the channel has the same length, so a
//! subscriber is done when it has read `messages x length` bytes. That keeps the client
//! side cheap enough for the server to be the bottleneck.

use anyhow::{Context, bail};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Options of `basalt-bench pubsub`.
#[derive(Debug, clap::Args)]
pub struct PubsubArgs {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:6379")]
    pub addr: String,
    /// Subscribers on the channel.
    #[arg(long, default_value_t = 100)]
    pub subscribers: usize,
    /// Messages published.
    #[arg(long, default_value_t = 100_000)]
    pub messages: usize,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 16)]
    pub size: usize,
    /// PUBLISH commands in flight per round trip.
    #[arg(long, default_value_t = 16)]
    pub pipeline: usize,
    /// Reader threads for the subscribers.
    #[arg(long, default_value_t = 2)]
    pub readers: usize,
    /// Print one JSON line instead of text.
    #[arg(long)]
    pub json: bool,
}

const CHANNEL: &str = "bench:pubsub";

fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads until `n` CRLF-terminated lines were received (integer replies, confirmations
/// are read by length instead).
fn read_exact_len(s: &mut TcpStream, n: usize) -> anyhow::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf)?;
    Ok(buf)
}

/// Runs the benchmark and prints the result.
pub fn main(a: &PubsubArgs) -> anyhow::Result<()> {
    if a.subscribers == 0 || a.messages == 0 || a.pipeline == 0 {
        bail!("--subscribers, --messages and --pipeline must be positive");
    }
    let payload = vec![b'x'; a.size];
    let msg_len = command(&[b"message", CHANNEL.as_bytes(), &payload]).len();
    let confirm = b"*3\r\n$9\r\nsubscribe\r\n$12\r\nbench:pubsub\r\n:1\r\n";
    let mut subs = Vec::with_capacity(a.subscribers);
    for _ in 0..a.subscribers {
        let mut s =
            TcpStream::connect(&a.addr).with_context(|| format!("connecting to {}", a.addr))?;
        s.set_nodelay(true)?;
        s.write_all(&command(&[b"SUBSCRIBE", CHANNEL.as_bytes()]))?;
        let got = read_exact_len(&mut s, confirm.len())?;
        if got != confirm {
            bail!(
                "unexpected SUBSCRIBE reply {:?}",
                String::from_utf8_lossy(&got)
            );
        }
        s.set_nonblocking(true)?;
        subs.push(s);
    }
    let want_each = (msg_len * a.messages) as u64;
    let delivered = Arc::new(AtomicU64::new(0));
    let threads = a.readers.clamp(1, a.subscribers);
    let mut groups: Vec<Vec<TcpStream>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, s) in subs.into_iter().enumerate() {
        groups[i % threads].push(s);
    }
    let start = Instant::now();
    let mut handles = Vec::new();
    for group in groups {
        let delivered = delivered.clone();
        handles.push(std::thread::spawn(move || -> anyhow::Result<()> {
            let mut left: Vec<u64> = vec![want_each; group.len()];
            let mut group = group;
            let mut buf = vec![0u8; 256 * 1024];
            let mut remaining = group.len();
            let deadline = Instant::now() + Duration::from_secs(600);
            while remaining > 0 {
                let mut progress = false;
                for (s, l) in group.iter_mut().zip(left.iter_mut()) {
                    if *l == 0 {
                        continue;
                    }
                    match s.read(&mut buf) {
                        Ok(0) => bail!("a subscriber was disconnected"),
                        Ok(n) => {
                            progress = true;
                            let n = (n as u64).min(*l);
                            *l -= n;
                            if *l == 0 {
                                remaining -= 1;
                            }
                            delivered.fetch_add(n, Ordering::Relaxed);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                if !progress {
                    if Instant::now() > deadline {
                        bail!("subscribers stalled");
                    }
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
            Ok(())
        }));
    }
    let mut publisher = TcpStream::connect(&a.addr)?;
    publisher.set_nodelay(true)?;
    let one = command(&[b"PUBLISH", CHANNEL.as_bytes(), &payload]);
    let expect = format!(":{}\r\n", a.subscribers).into_bytes();
    let mut sent = 0;
    while sent < a.messages {
        let k = a.pipeline.min(a.messages - sent);
        let batch: Vec<u8> = one.repeat(k);
        publisher.write_all(&batch)?;
        let replies = read_exact_len(&mut publisher, expect.len() * k)?;
        if replies != expect.repeat(k) {
            bail!(
                "PUBLISH answered {:?}",
                String::from_utf8_lossy(&replies[..replies.len().min(64)])
            );
        }
        sent += k;
    }
    let publish_time = start.elapsed();
    for h in handles {
        h.join().map_err(|_| anyhow::anyhow!("reader panicked"))??;
    }
    let elapsed = start.elapsed();
    let total = (a.subscribers * a.messages) as f64;
    let rate = total / elapsed.as_secs_f64();
    if a.json {
        println!(
            "{{\"subscribers\":{},\"messages\":{},\"size\":{},\"pipeline\":{},\"seconds\":{:.4},\"publish_seconds\":{:.4},\"delivered_per_sec\":{:.0}}}",
            a.subscribers,
            a.messages,
            a.size,
            a.pipeline,
            elapsed.as_secs_f64(),
            publish_time.as_secs_f64(),
            rate
        );
    } else {
        println!(
            "{} subscribers, {} messages of {} B, pipeline {}: {:.3} s, {:.0} messages delivered/s",
            a.subscribers,
            a.messages,
            a.size,
            a.pipeline,
            elapsed.as_secs_f64(),
            rate
        );
    }
    Ok(())
}
