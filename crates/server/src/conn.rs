//! One task per client connection: read, decode every complete request in the buffer,
//! execute them in order, write all replies with one write.
//!
//! Pipelining therefore costs one read and one write per batch. Protocol errors get
//! Redis's `-ERR Protocol error: ...` reply and close only this connection. The query
//! buffer (unparsed bytes plus the arguments of a partly received command) is bounded
//! by `client-query-buffer-limit`; a client that exceeds it is disconnected, as in Redis.
//!
//! Pub/Sub: messages published to this client wait in its outbox (`pubsub::Outbox`);
//! the task copies them into its write buffer after each command (so a client's own
//! PUBLISH or write delivers its push before its reply, as in Redis) and whenever the
//! outbox wakes it while idle. The write buffer plus the outbox are this client's output
//! buffer, bounded by `client-output-buffer-limit`; writes stop at once when the client
//! is killed, so a subscriber stuck on a full socket is closed when it overflows.

use crate::client::ClientShared;
use crate::server::{Attempt, Client, Server, unix_ms};
use basalt_proto::{Frame, RequestDecoder, encode};
use bytes::BytesMut;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Initial read buffer size; grows for large requests.
const READ_CHUNK: usize = 16 * 1024;

/// The peer's and the local address as CLIENT LIST shows them (empty if unknown).
pub(crate) fn addrs(stream: &TcpStream) -> (String, String) {
    let text =
        |a: std::io::Result<std::net::SocketAddr>| a.map(|a| a.to_string()).unwrap_or_default();
    (text(stream.peer_addr()), text(stream.local_addr()))
}

/// Serves one accepted connection until it closes, is killed, or the server stops.
pub async fn serve(srv: Arc<Server>, mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let (peer, local) = addrs(&stream);
    let fd = raw_fd(&stream);
    let id = srv.next_client_id();
    srv.stats
        .connections_received
        .fetch_add(1, Ordering::Relaxed);

    let maxclients = srv.live.maxclients.load(Ordering::Relaxed);
    let full = srv.clients.lock().len() >= maxclients;
    {
        if full {
            srv.stats
                .rejected_connections
                .fetch_add(1, Ordering::Relaxed);
            let _ = stream
                .write_all(b"-ERR max number of clients reached\r\n")
                .await;
            return;
        }
    }
    let shared = Arc::new(ClientShared::new(id, peer, local, fd, unix_ms()));
    {
        let mut clients = srv.clients.lock();
        clients.insert(id, shared.clone());
        srv.stats
            .max_clients_seen
            .fetch_max(clients.len(), Ordering::Relaxed);
        srv.stats.connected.store(clients.len(), Ordering::Relaxed);
    }
    let mut client = Client::new(shared.clone());
    tracing::debug!(id, addr = %shared.addr, "client connected");
    run(&srv, &mut stream, &mut client).await;
    srv.watches.unwatch_all(&mut client.watch);
    srv.pubsub.unsubscribe_all(&mut client.subs, &shared);
    if shared.outbox.overflowed() {
        tracing::warn!(
            "Client {} scheduled to be closed ASAP for overcoming of output buffer limits.",
            shared.info_line(unix_ms(), &srv.commands)
        );
        srv.pubsub
            .obuf_disconnections
            .fetch_add(1, Ordering::Relaxed);
    }
    let _ = stream.shutdown().await;
    {
        let mut clients = srv.clients.lock();
        clients.remove(&id);
        srv.stats.connected.store(clients.len(), Ordering::Relaxed);
    }
    tracing::debug!(id, "client closed");
}

async fn run(srv: &Arc<Server>, stream: &mut TcpStream, client: &mut Client) {
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut out = BytesMut::with_capacity(READ_CHUNK);
    let mut decoder = RequestDecoder::new(srv.proto_limits());
    let shared = client.shared.clone();
    // Besides the socket, the task waits on one flag (`Attention`): raised by a message
    // queued in the outbox, a kill and the shutdown, each also recorded where the loop
    // looks (the outbox, `killed`, the shutdown watch).
    loop {
        if *srv.shutdown.borrow() || shared.killed.load(Ordering::Acquire) {
            return;
        }
        if rbuf.capacity() - rbuf.len() < 1024 {
            rbuf.reserve(READ_CHUNK);
        }
        // Subscribers are never closed for idleness (as in Redis).
        let timeout = if client.subs.active() {
            0
        } else {
            srv.live.timeout_secs.load(Ordering::Relaxed)
        };
        let idle = async {
            if timeout == 0 {
                std::future::pending::<()>().await
            } else {
                tokio::time::sleep(Duration::from_secs(timeout)).await
            }
        };
        // Biased: a kill or shutdown that is already signalled wins over pending input,
        // so a killed client never gets one more reply.
        let n = tokio::select! {
            biased;
            _ = shared.outbox.attention.wait() => {
                if *srv.shutdown.borrow() || shared.killed.load(Ordering::Acquire) {
                    return;
                }
                // Published messages while idle.
                let discard = client.reply == crate::server::ReplyMode::Off;
                shared.outbox.drain_into(&mut out, discard);
                if write_out(srv, stream, &mut out, &shared).await.is_err() {
                    return;
                }
                continue;
            }
            r = stream.read_buf(&mut rbuf) => r,
            _ = idle => {
                tracing::debug!(id = client.id, "closing idle client");
                return;
            }
        };
        match n {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                srv.stats
                    .net_input_bytes
                    .fetch_add(n as u64, Ordering::Relaxed);
            }
        }
        if shared.killed.load(Ordering::Acquire) {
            return;
        }
        decoder.set_limits(srv.proto_limits());
        // One clock read per batch: every command of a pipeline sees the same time, like
        // Redis's cached command time.
        let batch_now = unix_ms();
        let mut close = false;
        loop {
            // Redis limits unauthenticated clients to small requests.
            decoder.set_auth_required(
                !client.authenticated && srv.live.auth_required.load(Ordering::Relaxed),
            );
            match decoder.decode(&mut rbuf) {
                Ok(Some(args)) => {
                    let resolved = match srv.prepare(client, &args) {
                        Ok(r) => r,
                        Err(e) => {
                            if shared.outbox.has_queued() {
                                let discard = client.reply == crate::server::ReplyMode::Off;
                                shared.outbox.drain_into(&mut out, discard);
                            }
                            encode(&srv.reject(client, &args, e), client.proto, &mut out);
                            continue;
                        }
                    };
                    if let Some(e) = srv.check_oom(client, resolved, &args, batch_now) {
                        encode(&srv.reject(client, &args, e), client.proto, &mut out);
                        continue;
                    }
                    // While a script is busy, commands are refused before MULTI queues
                    // them (the transaction then fails), as in Redis.
                    if client.multi.is_some()
                        && let Some(e) = srv.busy_refusal(resolved)
                    {
                        srv.cmd_stats[resolved.id]
                            .rejected
                            .fetch_add(1, Ordering::Relaxed);
                        srv.count_error(&e);
                        encode(&srv.reject(client, &args, e), client.proto, &mut out);
                        continue;
                    }
                    if let Some(reply) = srv.queue_in_multi(client, resolved, &args, batch_now) {
                        encode(&reply, client.proto, &mut out);
                        continue;
                    }
                    let queued_writes = client.multi.as_ref().is_some_and(|m| {
                        m.has(crate::cmd::flags::WRITE | crate::cmd::flags::MAY_REPLICATE)
                    });
                    let mut now = batch_now;
                    if srv.pause_remaining(resolved, &args, queued_writes, now) > 0 {
                        // Flush what is already answered, then wait out the pause.
                        durable(srv, client).await;
                        if write_out(srv, stream, &mut out, &shared).await.is_err() {
                            return;
                        }
                        wait_pause(srv, resolved, &args, queued_writes).await;
                        now = unix_ms();
                    }
                    let mut reply = match srv.try_execute(client, resolved, &args, now) {
                        Attempt::Done(r) => r,
                        Attempt::Wait => {
                            // A transaction or script holds the gate: answer what is
                            // already done, then wait without blocking a worker thread.
                            durable(srv, client).await;
                            if write_out(srv, stream, &mut out, &shared).await.is_err() {
                                return;
                            }
                            execute_gated(srv, client, resolved, &args).await
                        }
                    };
                    if let Some(req) = client.block.take() {
                        // Answer everything before the blocking command, then wait.
                        if shared.outbox.has_queued() {
                            shared.outbox.drain_into(&mut out, false);
                        }
                        durable(srv, client).await;
                        if write_out(srv, stream, &mut out, &shared).await.is_err() {
                            return;
                        }
                        let waited = wait_blocked(
                            srv,
                            stream,
                            &mut rbuf,
                            client,
                            Call {
                                resolved,
                                args: &args,
                                req,
                            },
                        )
                        .await;
                        match waited {
                            Some(r) => reply = r,
                            None => return,
                        }
                    }
                    emit(client, reply, &mut out);
                    if client.close_after_reply {
                        close = true;
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(id = client.id, error = %e.reply_message(), "protocol error");
                    srv.count_error(&crate::error::Error::msg("ERR"));
                    encode(&e.to_frame(), client.proto, &mut out);
                    close = true;
                    break;
                }
            }
        }
        let qbuf = rbuf.len() + decoder.pending_memory();
        shared.qbuf.store(qbuf, Ordering::Relaxed);
        // Commands queued by MULTI count against the same limit: they are requests the
        // server holds on the client's behalf.
        let pending = qbuf + client.multi.as_ref().map_or(0, |m| m.mem);
        let limit = srv.live.query_buffer_limit.load(Ordering::Relaxed);
        if pending as u64 > limit {
            tracing::warn!(
                id = client.id,
                addr = %shared.addr,
                "closing client that reached max query buffer length (qbuf={pending})"
            );
            srv.stats
                .client_query_buffer_limit_disconnections
                .fetch_add(1, Ordering::Relaxed);
            durable(srv, client).await;
            let _ = write_out(srv, stream, &mut out, &shared).await;
            return;
        }
        if let Some(want) = decoder.wanted_capacity() {
            // A large bulk is on its way: make room for all of it at once so it arrives
            // without repeated reallocation.
            let want = want.min(limit as usize);
            if rbuf.capacity() - rbuf.len() < want {
                rbuf.reserve(want);
            }
        }
        if output_limit_reached(srv, client, &out) {
            return;
        }
        // Let the other connections that are ready read and execute first, then write:
        // the replies leave in a burst, as Redis writes them all before it sleeps. Each
        // write straight after its batch woke a client that had gone to sleep meanwhile,
        // and on a VM that wake-up (an interrupt to the client's core) cost ~10% of the
        // server's time at pipeline 16 (docs/benchmarks.md, "Replies in bursts").
        if !out.is_empty() && srv.stats.connected.load(Ordering::Relaxed) > 1 {
            let_peers_run().await;
        }
        durable(srv, client).await;
        if write_out(srv, stream, &mut out, &shared).await.is_err() || close {
            return;
        }
        if rbuf.is_empty() {
            if rbuf.capacity() > 4 * READ_CHUNK {
                // Give back the memory of a past large request.
                rbuf = BytesMut::with_capacity(READ_CHUNK);
            } else {
                rewind(&mut rbuf);
            }
        }
    }
}

/// Returns after the tasks already queued on this worker have had their turn. The task
/// wakes itself, which puts it at the back of the worker's run queue. Unlike
/// `tokio::task::yield_now`, it does not wait for the runtime to poll its I/O driver
/// first: that cost one extra non-blocking `epoll_wait` per scheduler round, and the
/// connections it would find ready are read in the next round anyway.
async fn let_peers_run() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

/// Moves an empty read buffer's start back to the beginning of its allocation, once the
/// requests split off it are gone (they always are between batches, unless a command
/// kept an argument). Each decoded request is split off the front, so without this the
/// next read lands after the last one and a connection's reads walk through all of its
/// 16 KiB before wrapping: with many connections that is a cache miss per line read.
/// Kept at the front, every connection reads into the same few, warm lines, as Redis
/// does by resetting its query buffer.
fn rewind(rbuf: &mut BytesMut) {
    debug_assert!(rbuf.is_empty());
    // Asking for one byte more than the buffer's remaining view makes `try_reclaim`
    // move the (empty) view to the start of the allocation; it never allocates, and
    // does nothing while a split-off request still shares the allocation.
    let _ = rbuf.try_reclaim(rbuf.capacity() + 1);
}

/// Appends a command's reply and whatever its execution queued in the outbox (its own
/// subscription confirmations, messages it published to itself, notifications), in
/// Redis's order: queued pushes first, unless the handler marked an earlier place for
/// its reply (`Ctx::reply_here`).
fn emit(client: &mut Client, reply: Option<Frame>, out: &mut BytesMut) {
    let reply_at = client.reply_at.take();
    let in_outbox = std::mem::take(&mut client.reply_in_outbox);
    // A reply suppressed by CLIENT REPLY OFF/SKIP suppresses the pushes its command
    // queued too (Redis 7.0 does not write pushes to such clients).
    let discard = reply.is_none();
    let reply = if in_outbox { None } else { reply };
    let outbox = &client.shared.outbox;
    if let Some(n) = reply_at {
        if n > 0 {
            outbox.drain_some_into(out, n, discard);
        }
        if let Some(r) = &reply {
            encode(r, client.proto, out);
        }
        if outbox.has_queued() {
            outbox.drain_into(out, discard);
        }
        return;
    }
    if outbox.has_queued() {
        outbox.drain_into(out, discard);
    }
    if let Some(r) = &reply {
        encode(r, client.proto, out);
    }
}

/// Redis's output buffer limit check for the client's own replies: when the pending
/// output (write buffer plus outbox) is over the limit of the client's class, the
/// client is closed without writing. Returns true when it must close.
fn output_limit_reached(srv: &Server, client: &Client, out: &BytesMut) -> bool {
    use crate::pubsub::ObufClass;
    let class = if client.subs.active() {
        ObufClass::Pubsub
    } else {
        ObufClass::Normal
    };
    let limit = srv.pubsub.limit(class);
    if limit.hard == 0 && limit.soft == 0 {
        return false;
    }
    let outbox = &client.shared.outbox;
    let used = (out.len() + outbox.queued_bytes()) as u64;
    if outbox.limit_reached(used, limit) {
        outbox.set_overflowed();
        return true;
    }
    false
}

/// Writes `out` completely, stopping at once (with an error) if the client is killed
/// meanwhile, and keeps the outbox's count of unwritten bytes current for the output
/// buffer limit and CLIENT LIST.
/// Holds the replies back until this client's logged writes are as durable as
/// `appendfsync` promises (written to the AOF, or fsynced with `always`). Free when the
/// client logged nothing since the last wait.
pub(crate) async fn durable(srv: &Server, client: &mut Client) {
    let seq = client.aof_seq;
    if seq > client.aof_acked {
        srv.aof.wait(seq).await;
        client.aof_acked = seq;
    }
}

async fn write_out(
    srv: &Server,
    stream: &mut TcpStream,
    out: &mut BytesMut,
    shared: &ClientShared,
) -> std::io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    // The written part is tracked by position, not split off: the buffer's start stays
    // at the front of its allocation, so the next batch's replies go to the same warm
    // cache lines (as Redis's reply buffer, reset to position 0 after each write) instead
    // of walking through the whole allocation.
    let mut done = 0;
    shared.outbox.set_writing(out.len());
    let aborted = || {
        shared.outbox.set_writing(0);
        Err(std::io::ErrorKind::ConnectionAborted.into())
    };
    while done < out.len() {
        // A socket with room takes the bytes at once. Waiting on the write and the kill
        // signal together registers a waiter on the signal and takes it off again (~330
        // instructions per request at pipeline 1, callgrind), so that is only done when
        // the socket is full. A kill already raised still stops the write.
        if shared.killed.load(Ordering::Acquire) {
            return aborted();
        }
        let n = match stream.try_write(&out[done..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => tokio::select! {
                biased;
                _ = shared.kill.notified() => return aborted(),
                r = stream.write(&out[done..]) => r?,
            },
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        srv.stats
            .net_output_bytes
            .fetch_add(n as u64, Ordering::Relaxed);
        done += n;
        shared.outbox.set_writing(out.len() - done);
    }
    out.clear();
    if out.capacity() > 4 * READ_CHUNK {
        *out = BytesMut::with_capacity(READ_CHUNK);
    }
    Ok(())
}

/// Waits until a blocked command can run (it is re-executed on each signal of its keys),
/// times out, or is unblocked. Returns the reply to send (`Some(None)` when the client
/// turned replies off), or `None` when the connection must close (peer gone, killed,
/// shutdown). Bytes the client sends meanwhile are kept in `rbuf` for later.
/// The blocked command: what to re-run and how it asked to wait.
pub(crate) struct Call<'a> {
    pub(crate) resolved: &'a crate::cmd::Resolved,
    pub(crate) args: &'a [bytes::Bytes],
    pub(crate) req: crate::server::BlockRequest,
}

pub(crate) async fn wait_blocked(
    srv: &Arc<Server>,
    stream: &mut TcpStream,
    rbuf: &mut BytesMut,
    client: &mut Client,
    call: Call<'_>,
) -> Option<Option<Frame>> {
    let Call {
        resolved,
        args,
        req,
    } = call;
    use crate::blocking::{UNBLOCK_ERROR, UNBLOCK_TIMEOUT};
    let (slot, first) = srv.blocking.register(client.id, client.db, &req.keys);
    let shared = client.shared.clone();
    let deadline = req.deadline;
    // A write between the command's refusal and the queueing (another worker thread, or
    // this task yielding in `durable`/`write_out`) signalled nobody: look again once.
    // The re-run of a wake-up nobody sent must not be passed on as one.
    let mut own_recheck = req.recheck || first;
    if own_recheck {
        slot.notify.notify_one();
    }
    let mut recheck_at = req.recheck_at;
    let outcome = loop {
        // Sleep to the deadline, or to an earlier recheck (then re-run, not time out).
        let wake_at = match (deadline, recheck_at) {
            (Some(d), Some(r)) => Some(d.min(r)),
            (d, r) => d.or(r),
        };
        let sleep = async {
            match wake_at {
                Some(d) => {
                    let left = d.saturating_sub(unix_ms());
                    tokio::time::sleep(Duration::from_millis(left)).await
                }
                None => std::future::pending::<()>().await,
            }
        };
        if rbuf.capacity() - rbuf.len() < 1024 {
            rbuf.reserve(READ_CHUNK);
        }
        tokio::select! {
            _ = slot.notify.notified() => {
                match slot.unblock.load(Ordering::Acquire) {
                    UNBLOCK_TIMEOUT => match &req.timeout_rerun {
                        Some(last) => {
                            let reply = execute_gated(srv, client, resolved, last).await;
                            client.block = None;
                            break Some(reply);
                        }
                        None => break Some(Some(Frame::NullArray)),
                    },
                    UNBLOCK_ERROR => break Some(Some(Frame::error(
                        "UNBLOCKED client unblocked via CLIENT UNBLOCK",
                    ))),
                    _ => {}
                }
                let rerun = req.rerun.as_deref().unwrap_or(args);
                slot.begin_turn();
                let reply = execute_gated(srv, client, resolved, rerun).await;
                slot.end_turn();
                let recheck = std::mem::take(&mut own_recheck);
                if let Some(again) = client.block.take() {
                    recheck_at = again.recheck_at;
                    // Someone else got there first (or, for a stream, the new entries
                    // were not for us): keep our place and wait again. Stream readers
                    // pass the wake-up on, as one XADD may serve several of them, and
                    // so does a re-run that passed over a key of another type.
                    if (req.pass_on || again.pass_on) && !recheck {
                        srv.blocking.signal_after(&slot);
                    }
                    continue;
                }
                break Some(reply);
            }
            _ = sleep => {
                if recheck_at.is_some() && deadline.is_none_or(|d| unix_ms() < d) {
                    // A recheck: run again; still blocked means wait on.
                    let rerun = req.rerun.as_deref().unwrap_or(args);
                    let reply = execute_gated(srv, client, resolved, rerun).await;
                    match client.block.take() {
                        Some(again) => {
                            recheck_at = again.recheck_at;
                            continue;
                        }
                        None => break Some(reply),
                    }
                }
                match &req.timeout_rerun {
                    // Still queued, so a FIFO resource sees this client in its place.
                    Some(last) => {
                        let reply = execute_gated(srv, client, resolved, last).await;
                        client.block = None;
                        break Some(reply);
                    }
                    None => break Some(Some(Frame::NullArray)),
                }
            }
            r = stream.read_buf(rbuf) => {
                match r {
                    Ok(0) | Err(_) => break None,
                    Ok(n) => {
                        srv.stats.net_input_bytes.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
            }
            _ = shared.outbox.attention.wait() => {
                if *srv.shutdown.borrow() || shared.killed.load(Ordering::Acquire) {
                    break None;
                }
                // A RESP3 subscriber may block: its messages still flow meanwhile.
                let mut out = BytesMut::new();
                let discard = client.reply == crate::server::ReplyMode::Off;
                shared.outbox.drain_into(&mut out, discard);
                if write_out(srv, stream, &mut out, &shared).await.is_err() {
                    break None;
                }
            }
        }
    };
    srv.blocking.unregister(&slot);
    outcome
}

/// Runs one command for a connection that speaks another protocol (the Faktory
/// listener) through the same path as a RESP request: lookup and checks
/// (`Server::prepare`, maxmemory, CLIENT PAUSE), execution under the exec gate, the wait
/// of a blocking command on the shared registry (re-run when its keys are signalled, as
/// for BLPOP), and the hold until its logged effects are durable. Returns the reply, or
/// `None` when the connection must close (peer gone, killed, shutdown) while it waited.
/// `rbuf` keeps whatever the peer sends during a wait.
pub(crate) async fn run_internal(
    srv: &Arc<Server>,
    stream: &mut TcpStream,
    rbuf: &mut BytesMut,
    client: &mut Client,
    args: &[bytes::Bytes],
) -> Option<Frame> {
    let resolved = match srv.prepare(client, args) {
        Ok(r) => r,
        Err(e) => return Some(e.into_frame()),
    };
    let mut now = unix_ms();
    if let Some(e) = srv.check_oom(client, resolved, args, now) {
        return Some(e.into_frame());
    }
    if srv.pause_remaining(resolved, args, false, now) > 0 {
        wait_pause(srv, resolved, args, false).await;
        now = unix_ms();
    }
    let mut reply = match srv.try_execute(client, resolved, args, now) {
        Attempt::Done(r) => r,
        Attempt::Wait => execute_gated(srv, client, resolved, args).await,
    };
    if let Some(req) = client.block.take() {
        reply = wait_blocked(
            srv,
            stream,
            rbuf,
            client,
            Call {
                resolved,
                args,
                req,
            },
        )
        .await?;
    }
    durable(srv, client).await;
    // Internal clients never turn replies off: `None` here is an empty answer.
    Some(reply.unwrap_or(Frame::Null))
}

/// How often a command waiting for the exec gate looks again (besides being woken
/// when a writer releases it): the holder may have become a busy script meanwhile.
const GATE_RECHECK: Duration = Duration::from_millis(10);

/// Runs a command once the exec gate allows it, waiting asynchronously while a
/// transaction or a (not yet busy) script holds it.
pub(crate) async fn execute_gated(
    srv: &Server,
    client: &mut Client,
    resolved: &crate::cmd::Resolved,
    args: &[bytes::Bytes],
) -> Option<Frame> {
    loop {
        let released = srv.gate_released.notified();
        tokio::pin!(released);
        released.as_mut().enable();
        match srv.try_execute(client, resolved, args, unix_ms()) {
            Attempt::Done(reply) => return reply,
            Attempt::Wait => {
                tokio::select! {
                    _ = &mut released => {}
                    _ = tokio::time::sleep(GATE_RECHECK) => {}
                }
            }
        }
    }
}

async fn wait_pause(
    srv: &Server,
    resolved: &crate::cmd::Resolved,
    args: &[bytes::Bytes],
    queued_writes: bool,
) {
    loop {
        let wait = srv.pause_remaining(resolved, args, queued_writes, unix_ms());
        if wait == 0 {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
            _ = srv.unpause.notified() => {}
        }
    }
}

#[cfg(unix)]
fn raw_fd(s: &TcpStream) -> i32 {
    use std::os::fd::AsRawFd;
    s.as_raw_fd()
}

#[cfg(not(unix))]
fn raw_fd(_s: &TcpStream) -> i32 {
    -1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewind_moves_an_empty_buffer_back_to_its_start() {
        let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
        let start = rbuf.as_ptr();
        rbuf.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
        let request = rbuf.split_to(rbuf.len()).freeze();
        assert_ne!(rbuf.as_ptr(), start);
        // A request still alive shares the allocation: nothing moves.
        rewind(&mut rbuf);
        assert_ne!(rbuf.as_ptr(), start);
        assert_eq!(&request[..], b"*1\r\n$4\r\nPING\r\n");
        drop(request);
        rewind(&mut rbuf);
        assert_eq!(rbuf.as_ptr(), start);
        assert!(rbuf.capacity() >= READ_CHUNK);
        // The next read lands at the front.
        rbuf.extend_from_slice(b"x");
        assert_eq!(rbuf.as_ptr(), start);
        assert_eq!(&rbuf[..], b"x");
    }
}
