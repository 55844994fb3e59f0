//! The load itself: `--threads` OS threads, each running one epoll loop over its share of
//! the `--clients` connections.
//!
//! Closed loop: each connection keeps `--pipeline` requests in flight and sends a new one
//! as each reply arrives (with `--batch`, the next `--pipeline` requests together once all
//! are answered, as redis-benchmark does); latency runs from the send. Open loop
//! (`--rate`): each connection sends on its own [`Schedule`] regardless of replies (up to
//! `--max-inflight` outstanding) and latency runs from the intended send time, so a
//! stalled server is charged in full.
//!
//! Bounded: connects have a timeout, a connection whose replies stop for `--timeout` is
//! dropped and counted, and `--duration` is a hard stop (replies still missing a short
//! grace period after it are counted as lost).

use crate::keys::{KeyGen, KeyPattern, format_key};
use crate::poll::{Epoll, Event, now_ns};
use crate::resp::{ReplyKind, scan_reply};
use crate::rng::Rng;
use crate::schedule::Schedule;
use crate::stats::Stats;
use crate::workload::Workload;
use bytes::BytesMut;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

/// Everything a run needs, already validated.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Server address.
    pub addr: SocketAddr,
    /// Number of connections.
    pub clients: usize,
    /// Number of load threads (event loops).
    pub threads: usize,
    /// Requests in flight per connection (closed loop).
    pub pipeline: usize,
    /// Closed loop: send the next `pipeline` requests only when all are answered.
    pub batch: bool,
    /// Stop after this many measured operations (split over the connections).
    pub requests: Option<u64>,
    /// Stop sending this long after the warm-up (a hard stop).
    pub duration: Option<Duration>,
    /// Load applied but not measured before the measurement window.
    pub warmup: Duration,
    /// What to send.
    pub workload: Workload,
    /// Number of distinct keys.
    pub keyspace: u64,
    /// How keys are drawn.
    pub key_pattern: KeyPattern,
    /// Key name prefix.
    pub key_prefix: Vec<u8>,
    /// Zero-pad key numbers to this many digits.
    pub key_pad: usize,
    /// Value size range (inclusive).
    pub data_size: (usize, usize),
    /// Open loop: total requests per second over all connections.
    pub rate: Option<f64>,
    /// Open loop: most requests in flight per connection.
    pub max_inflight: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// Seed of the Zipf ranks' permutation (which keys are hot).
    pub rank_seed: u64,
    /// A connection with requests in flight and no reply for this long is dropped.
    pub timeout: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Print a progress line per second on stderr.
    pub progress: bool,
    /// End the measurement early when this file exists (`--stop-file`).
    pub stop_file: Option<std::path::PathBuf>,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// Merged statistics of all threads.
    pub stats: Stats,
    /// Length of the measurement window in ns (until the last measured reply).
    pub elapsed_ns: u64,
    /// Connections that were established.
    pub connected: usize,
}

/// Progress counters shared between the load threads and the reporter.
struct Shared {
    replies: AtomicU64,
    errors: AtomicU64,
    open_conns: AtomicU64,
    start_ns: AtomicU64,
    /// When the stop file appeared (ns, 0: not yet): sending ends there.
    stop_ns: AtomicU64,
}

/// How long replies may still arrive after `--duration` before they count as lost.
const DRAIN_GRACE_NS: u64 = 2_000_000_000;
/// Read buffer size per connection (grows for larger replies).
const READ_CHUNK: usize = 64 * 1024;
/// How often every connection is visited for timeouts and deadlines without an event.
const SWEEP_NS: u64 = 10_000_000;

/// Runs the load described by `cfg` and returns the merged measurements.
pub fn run(cfg: &RunConfig) -> anyhow::Result<RunResult> {
    let clients = cfg.clients.max(1);
    let threads = cfg.threads.clamp(1, clients);
    let cfg = Arc::new(cfg.clone());
    let mut pool = vec![0u8; cfg.data_size.1 + 4096];
    Rng::new(cfg.seed ^ 0xDA7A).fill(&mut pool);
    let pool = Arc::new(pool);
    let shared = Arc::new(Shared {
        replies: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        open_conns: AtomicU64::new(0),
        start_ns: AtomicU64::new(0),
        stop_ns: AtomicU64::new(0),
    });
    let barrier = Arc::new(Barrier::new(threads + 1));
    let mut handles = Vec::with_capacity(threads);
    for t in 0..threads {
        let ids: Vec<u64> = (0..clients as u64)
            .filter(|c| *c as usize % threads == t)
            .collect();
        let (cfg, pool, shared, barrier) =
            (cfg.clone(), pool.clone(), shared.clone(), barrier.clone());
        let h = std::thread::Builder::new()
            .name(format!("load-{t}"))
            .spawn(move || load_thread(&cfg, &pool, &shared, &barrier, ids))?;
        handles.push(h);
    }
    // All threads connect, then the clock starts for everyone at once.
    barrier.wait();
    let start = now_ns();
    shared.start_ns.store(start, Ordering::SeqCst);
    barrier.wait();
    if let Some(path) = cfg.stop_file.clone() {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("stop-file".into())
            .spawn(move || {
                // Ends with the process; one stat every 20 ms costs nothing.
                while shared.stop_ns.load(Ordering::Relaxed) == 0 {
                    if path.exists() {
                        shared.stop_ns.store(now_ns(), Ordering::Relaxed);
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })?;
    }
    if cfg.progress {
        report_progress(&cfg, &shared, &handles, start);
    }
    let mut merged = Stats::new(&cfg.workload.names());
    let mut connected = 0;
    for h in handles {
        match h.join() {
            Ok(Ok((stats, n))) => {
                merged.merge(&stats);
                connected += n;
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => anyhow::bail!("a load thread panicked"),
        }
    }
    Ok(RunResult {
        elapsed_ns: merged.last_completion_ns,
        stats: merged,
        connected,
    })
}

/// One progress line per second until every load thread has finished.
fn report_progress(
    cfg: &RunConfig,
    shared: &Shared,
    handles: &[std::thread::JoinHandle<anyhow::Result<(Stats, usize)>>],
    start: u64,
) {
    let warmup_end = start + cfg.warmup.as_nanos() as u64;
    let mut last_replies = 0;
    let mut next = start + 1_000_000_000;
    while !handles.iter().all(|h| h.is_finished()) {
        std::thread::sleep(Duration::from_millis(20));
        let now = now_ns();
        if now < next {
            continue;
        }
        let replies = shared.replies.load(Ordering::Relaxed);
        let secs = (now - start) as f64 / 1e9;
        let phase = if now < warmup_end { " (warm-up)" } else { "" };
        eprintln!(
            "[{secs:6.1}s] {:>10.0} ops/s  replies {:>11}  errors {:>6}  connections {}{phase}",
            (replies - last_replies) as f64 / ((now - next + 1_000_000_000) as f64 / 1e9),
            replies,
            shared.errors.load(Ordering::Relaxed),
            shared.open_conns.load(Ordering::Relaxed),
        );
        last_replies = replies;
        next = now + 1_000_000_000;
    }
}

/// A request waiting for its reply.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// Send time (closed loop) or intended send time (open loop), ns.
    t: u64,
    cmd: u32,
    key: u64,
    /// Replies still expected before the one that completes the request (the commands
    /// of a multi-command template but its last).
    more: u32,
    /// One of those earlier replies was an error.
    failed: bool,
}

/// One connection's state.
struct Conn {
    stream: TcpStream,
    token: u64,
    rbuf: Vec<u8>,
    rpos: usize,
    rlen: usize,
    wbuf: BytesMut,
    wpos: usize,
    want_write: bool,
    inflight: VecDeque<Pending>,
    followups: VecDeque<u64>,
    keys: KeyGen,
    rng: Rng,
    schedule: Option<Schedule>,
    quota: Option<u64>,
    key_buf: Vec<u8>,
    scratch: Vec<Vec<u8>>,
    last_progress: u64,
    open: bool,
}

/// Timing boundaries of the run, in absolute ns.
struct Window {
    measure_start: u64,
    send_end: u64,
    hard_end: u64,
}

/// The body of one load thread: connect, wait for the common start, run the event loop.
fn load_thread(
    cfg: &RunConfig,
    pool: &[u8],
    shared: &Shared,
    barrier: &Barrier,
    ids: Vec<u64>,
) -> anyhow::Result<(Stats, usize)> {
    crate::poll::tighten_timer_slack();
    let mut stats = Stats::new(&cfg.workload.names());
    let mut streams = Vec::new();
    for id in &ids {
        match connect(cfg) {
            Ok(s) => streams.push((*id, s)),
            Err(e) => stats.conn_error(&format!("connect: {:?}", e.kind())),
        }
    }
    let setup = Epoll::new(streams.len() + 1);
    // Reach both barriers whatever happened, or the other threads would wait forever.
    barrier.wait();
    barrier.wait();
    let mut epoll = setup?;
    let start = shared.start_ns.load(Ordering::SeqCst);
    let measure_start = start + cfg.warmup.as_nanos() as u64;
    let send_end = match cfg.duration {
        Some(d) => measure_start + d.as_nanos() as u64,
        None => u64::MAX,
    };
    let win = Window {
        measure_start,
        send_end,
        hard_end: send_end.saturating_add(DRAIN_GRACE_NS),
    };
    let total_conns = cfg.clients.max(1) as u64;
    let mut conns = Vec::with_capacity(streams.len());
    for (i, (id, stream)) in streams.into_iter().enumerate() {
        let quota = cfg
            .requests
            .map(|n| n / total_conns + u64::from(id < n % total_conns));
        let schedule = cfg.rate.map(|r| {
            Schedule::new(
                start,
                r / total_conns as f64,
                id as f64 / total_conns as f64,
            )
        });
        let keys = KeyGen::new(
            &cfg.key_pattern,
            cfg.keyspace,
            cfg.rank_seed,
            id,
            total_conns,
        )
        .map_err(anyhow::Error::msg)?;
        epoll.add(stream.as_raw_fd(), i as u64, false)?;
        conns.push(Conn {
            stream,
            token: i as u64,
            rbuf: vec![0; READ_CHUNK],
            rpos: 0,
            rlen: 0,
            wbuf: BytesMut::with_capacity(16 * 1024),
            wpos: 0,
            want_write: false,
            inflight: VecDeque::new(),
            followups: VecDeque::new(),
            keys,
            rng: Rng::for_stream(cfg.seed, id),
            schedule,
            quota,
            key_buf: Vec::with_capacity(64),
            scratch: Vec::new(),
            last_progress: start,
            open: true,
        });
    }
    let connected = conns.len();
    shared
        .open_conns
        .fetch_add(connected as u64, Ordering::Relaxed);
    let mut lp = Loop {
        cfg,
        pool,
        shared,
        win,
        stats,
    };
    let mut events: Vec<Event> = Vec::with_capacity(connected + 1);
    let mut open = connected;
    let mut next_sweep = 0u64;
    while open > 0 {
        let now = now_ns();
        // --stop-file: the window ends where the file appeared.
        let stop = shared.stop_ns.load(Ordering::Relaxed);
        if stop != 0 && stop < lp.win.send_end {
            lp.win.send_end = stop.max(lp.win.measure_start);
            lp.win.hard_end = lp.win.send_end.saturating_add(DRAIN_GRACE_NS);
        }
        if cfg.rate.is_some() || now >= next_sweep {
            for c in conns.iter_mut().filter(|c| c.open) {
                lp.service(c, &epoll, now);
                if !c.open {
                    open -= 1;
                }
            }
            next_sweep = now + SWEEP_NS;
        }
        if open == 0 {
            break;
        }
        // Wake for the earliest open-loop send, or the window boundaries.
        let mut wake = next_sweep.min(if now < lp.win.send_end {
            lp.win.send_end
        } else {
            lp.win.hard_end
        });
        if cfg.rate.is_some() {
            for c in conns
                .iter()
                .filter(|c| c.open && c.inflight.len() < cfg.max_inflight)
            {
                if let Some(s) = &c.schedule {
                    wake = wake.min(s.next_due());
                }
            }
        }
        events.clear();
        epoll.wait_until(&mut events, wake)?;
        for ev in &events {
            let Some(c) = conns.get_mut(ev.token as usize) else {
                continue;
            };
            if !c.open {
                continue;
            }
            let now = now_ns();
            if ev.readable {
                lp.on_readable(c, &epoll, now);
            }
            if c.open && ev.writable {
                lp.flush(c, &epoll);
            }
            if c.open {
                lp.service(c, &epoll, now);
            }
            if !c.open {
                open -= 1;
            }
        }
    }
    Ok((lp.stats, connected))
}

fn connect(cfg: &RunConfig) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&cfg.addr, cfg.connect_timeout)?;
    s.set_nodelay(true)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// Per-thread loop state shared by all of the thread's connections.
struct Loop<'a> {
    cfg: &'a RunConfig,
    pool: &'a [u8],
    shared: &'a Shared,
    win: Window,
    stats: Stats,
}

impl Loop<'_> {
    /// Sends what is due, flushes, and closes the connection when it is finished, timed
    /// out or past the hard stop.
    fn service(&mut self, c: &mut Conn, epoll: &Epoll, now: u64) {
        if now >= self.win.hard_end {
            // Cut off by --duration: what is still in flight is lost, not an error.
            self.stats.lost += c.inflight.len() as u64;
            self.close(c, epoll);
            return;
        }
        let timeout = self.cfg.timeout.as_nanos() as u64;
        if !c.inflight.is_empty() && now.saturating_sub(c.last_progress) > timeout {
            self.fail(c, epoll, "timeout");
            return;
        }
        self.fill(c, now);
        self.flush(c, epoll);
        let sending_over = now >= self.win.send_end || c.quota == Some(0);
        if c.open
            && sending_over
            && c.inflight.is_empty()
            && c.followups.is_empty()
            && c.wpos >= c.wbuf.len()
        {
            self.close(c, epoll);
        }
    }

    /// Queues the requests that may be sent now.
    fn fill(&mut self, c: &mut Conn, now: u64) {
        let open_loop = c.schedule.is_some();
        let limit = if open_loop {
            self.cfg.max_inflight
        } else {
            self.cfg.pipeline.max(1)
        };
        let wl = &self.cfg.workload;
        if c.inflight.is_empty() {
            // The reply timeout runs from the first request sent after an idle period.
            c.last_progress = now;
        } else if self.cfg.batch && !open_loop {
            return;
        }
        while c.inflight.len() < limit {
            if let Some(key) = c.followups.pop_front() {
                // Cache-aside: the SET after a miss goes out at once, outside the schedule.
                if now >= self.win.send_end {
                    c.followups.clear();
                    break;
                }
                let set = wl.cache_aside.map_or(0, |(_, s)| s);
                self.push(c, set, key, now);
                continue;
            }
            if now >= self.win.send_end || c.quota == Some(0) {
                break;
            }
            let intended = match &mut c.schedule {
                Some(s) => match s.take_due(now) {
                    Some(t) => t,
                    None => break,
                },
                None => now,
            };
            if c.schedule.is_some() && intended >= self.win.measure_start {
                // How late the client itself was: large values mean the load generator,
                // not the server, limited the open-loop rate.
                self.stats
                    .send_lag
                    .saturating_record((now - intended).max(1));
            }
            if intended >= self.win.measure_start
                && let Some(q) = &mut c.quota
            {
                *q -= 1;
            }
            let cmd = match wl.cache_aside {
                Some((get, _)) => get,
                None => wl.pick(c.rng.next_u64()),
            };
            let key = if wl.templates[cmd].uses_key() {
                c.keys.next(&mut c.rng)
            } else {
                0
            };
            self.push(c, cmd, key, intended);
        }
    }

    /// Encodes one request into the connection's write buffer.
    fn push(&mut self, c: &mut Conn, cmd: usize, key: u64, t: u64) {
        let (lo, hi) = self.cfg.data_size;
        let len = if hi > lo {
            lo + c.rng.below((hi - lo + 1) as u64) as usize
        } else {
            lo
        };
        let off = c.rng.below((self.pool.len() - len + 1) as u64) as usize;
        let data = &self.pool[off..off + len];
        format_key(&mut c.key_buf, &self.cfg.key_prefix, key, self.cfg.key_pad);
        self.cfg.workload.templates[cmd].encode(&c.key_buf, data, &mut c.scratch, &mut c.wbuf);
        c.inflight.push_back(Pending {
            t,
            cmd: cmd as u32,
            key,
            more: (self.cfg.workload.templates[cmd].replies() - 1) as u32,
            failed: false,
        });
    }

    /// Writes as much of the write buffer as the socket takes.
    fn flush(&mut self, c: &mut Conn, epoll: &Epoll) {
        while c.wpos < c.wbuf.len() {
            match c.stream.write(&c.wbuf[c.wpos..]) {
                Ok(0) => {
                    self.fail(c, epoll, "write: connection closed");
                    return;
                }
                Ok(n) => c.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.fail(c, epoll, &format!("write: {:?}", e.kind()));
                    return;
                }
            }
        }
        let pending = c.wpos < c.wbuf.len();
        if !pending {
            c.wbuf.clear();
            c.wpos = 0;
        }
        if pending != c.want_write {
            c.want_write = pending;
            if epoll
                .modify(c.stream.as_raw_fd(), c.token, pending)
                .is_err()
            {
                self.fail(c, epoll, "epoll");
            }
        }
    }

    /// Reads what arrived and accounts every complete reply.
    fn on_readable(&mut self, c: &mut Conn, epoll: &Epoll, now: u64) {
        if c.rlen == c.rbuf.len() {
            // A reply larger than the buffer: make room.
            let grown = c.rbuf.len() * 2;
            c.rbuf.resize(grown, 0);
        }
        match c.stream.read(&mut c.rbuf[c.rlen..]) {
            Ok(0) => {
                self.fail(c, epoll, "closed by server");
                return;
            }
            Ok(n) => c.rlen += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                return;
            }
            Err(e) => {
                self.fail(c, epoll, &format!("read: {:?}", e.kind()));
                return;
            }
        }
        c.last_progress = now;
        let mut replies = 0u64;
        let mut errors = 0u64;
        let since_start = now.saturating_sub(self.win.measure_start);
        loop {
            let (len, kind) = match scan_reply(&c.rbuf[c.rpos..c.rlen]) {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    self.fail(c, epoll, &e.to_string());
                    return;
                }
            };
            let Some(front) = c.inflight.front_mut() else {
                self.fail(c, epoll, "protocol error: reply without a request");
                return;
            };
            if front.more > 0 {
                // An earlier command of a multi-command request.
                front.more -= 1;
                if let ReplyKind::Error(r) = &kind {
                    front.failed = true;
                    if front.t >= self.win.measure_start {
                        let (a, b) = (c.rpos + r.start, c.rpos + r.end);
                        self.stats.reply_error(&c.rbuf[a..b]);
                    }
                }
                c.rpos += len;
                continue;
            }
            let Some(p) = c.inflight.pop_front() else {
                continue;
            };
            replies += 1;
            let is_error = p.failed || matches!(kind, ReplyKind::Error(_));
            let cache_get =
                self.cfg.workload.cache_aside.map(|(get, _)| get) == Some(p.cmd as usize);
            if cache_get && kind == ReplyKind::Null {
                // Fill the cache on every miss, warm-up included.
                c.followups.push_back(p.key);
            }
            if p.t >= self.win.measure_start {
                self.stats.record(
                    p.cmd as usize,
                    now.saturating_sub(p.t),
                    since_start,
                    is_error,
                );
                if let ReplyKind::Error(r) = &kind {
                    errors += 1;
                    let (a, b) = (c.rpos + r.start, c.rpos + r.end);
                    self.stats.reply_error(&c.rbuf[a..b]);
                }
                if cache_get {
                    match kind {
                        ReplyKind::Null => self.stats.misses += 1,
                        ReplyKind::Value => self.stats.hits += 1,
                        ReplyKind::Error(_) => {}
                    }
                }
            }
            c.rpos += len;
        }
        if c.rpos == c.rlen {
            c.rpos = 0;
            c.rlen = 0;
        } else if c.rpos > c.rbuf.len() / 2 {
            c.rbuf.copy_within(c.rpos..c.rlen, 0);
            c.rlen -= c.rpos;
            c.rpos = 0;
        }
        self.shared.replies.fetch_add(replies, Ordering::Relaxed);
        if errors > 0 {
            self.shared.errors.fetch_add(errors, Ordering::Relaxed);
        }
    }

    /// Drops a connection after a failure, counting the failure and its lost requests.
    fn fail(&mut self, c: &mut Conn, epoll: &Epoll, why: &str) {
        if !c.open {
            return;
        }
        self.stats.conn_error(why);
        self.stats.lost += c.inflight.len() as u64;
        self.shared.errors.fetch_add(1, Ordering::Relaxed);
        c.inflight.clear();
        c.followups.clear();
        self.close(c, epoll);
    }

    /// Closes a connection and stops watching it.
    fn close(&mut self, c: &mut Conn, epoll: &Epoll) {
        if !c.open {
            return;
        }
        let _ = epoll.delete(c.stream.as_raw_fd());
        let _ = c.stream.shutdown(std::net::Shutdown::Both);
        c.open = false;
        self.shared.open_conns.fetch_sub(1, Ordering::Relaxed);
    }
}
