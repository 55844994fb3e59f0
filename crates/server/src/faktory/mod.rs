//! The Faktory work protocol (FWP) on its own listener (`faktory-port`, off by default),
//! so Faktory's worker libraries, in any language, run against Basalt's job engine
//! unchanged.
//!
//! FWP is line based: a client sends `VERB [argument]\r\n` lines (the argument is usually
//! one JSON document) and the server answers in RESP. Nothing here keeps jobs: every
//! command is translated into `JOB.*` / `QUEUE.*` / `WORKER.*` commands and run through
//! the server's own command path (`conn::run_internal`), so a Faktory job is an ordinary
//! Basalt job (its Faktory JSON is the payload, `JOB.GET` shows it) that RESP clients and
//! the Rust worker SDK can push, fetch and inspect too.
//!
//! Modules: [`conn`] (greeting, `HELLO`, the line loop, limits), [`commands`] (one
//! function per verb), [`job`] (the JSON work unit and its mapping), [`time`] (RFC 3339).
//! User documentation: `docs/faktory.md`.

pub mod commands;
pub mod conn;
pub mod job;
pub mod time;

use crate::server::Server;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tokio::net::TcpListener;

/// State shared by the Faktory connections of one server.
#[derive(Default)]
pub struct Faktory {
    /// Connections open now (bounded by `faktory-max-connections`).
    pub connections: AtomicUsize,
    /// Connections refused because the limit was reached.
    pub rejected: AtomicU64,
    /// Commands received after `HELLO` (INFO's `command_count`).
    pub commands: AtomicU64,
    /// Jobs acknowledged through this listener (INFO's `total_processed`).
    pub processed: AtomicU64,
    /// Jobs failed through this listener (INFO's `total_failures`).
    pub failures: AtomicU64,
    /// Claims recorded since the last sweep of expired ones.
    pub claims_since_sweep: AtomicU64,
    /// The claim token of each job fetched through this listener, by jid: Faktory
    /// acknowledges by jid alone, Basalt by jid and claim (so a worker whose claim was
    /// taken over after a visibility timeout cannot complete the job). An entry lives
    /// from FETCH to ACK/FAIL; a jid missing here (fetched before a restart, or on RESP)
    /// is looked up with `JOB.GET`.
    pub claims: Mutex<HashMap<String, Claim>>,
    /// Workers (`wid` of HELLO) with their open connections and the last lifecycle
    /// state BEAT reported (`quiet`/`terminate` stop FETCH from handing out jobs).
    pub workers: Mutex<HashMap<String, WorkerEntry>>,
}

/// What FETCH learnt about a job it handed out, for its ACK or FAIL.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The claim token of `JOB.FETCH`.
    pub token: Bytes,
    /// The delivery's number (1 for the first).
    pub attempt: i64,
    /// The claim's visibility deadline (Unix ms): after it the token is stale anyway.
    pub deadline: u64,
    /// Faktory's `retry` of the job (0: discard on failure).
    pub retry: i64,
}

/// Claims recorded between two sweeps of the expired ones out of [`Faktory::claims`]:
/// the map holds the jobs in flight plus at most this many stale entries per sweep.
const CLAIM_SWEEP_EVERY: u64 = 1024;

/// One worker process known by its `wid`.
#[derive(Debug, Default, Clone)]
pub struct WorkerEntry {
    /// Open connections that said HELLO with this wid.
    pub connections: usize,
    /// The state of the last BEAT reply: `ok`, `quiet` or `terminate`.
    pub state: String,
}

impl Faktory {
    /// Forgets a claim (the job was acknowledged or failed).
    pub fn take_claim(&self, jid: &str) -> Option<Claim> {
        self.claims.lock().remove(jid)
    }

    /// Records a claim; every [`CLAIM_SWEEP_EVERY`] claims, drops those past their
    /// deadline (the job went back to the queue, its token is stale).
    pub fn put_claim(&self, jid: String, claim: Claim, now_ms: u64) {
        let mut claims = self.claims.lock();
        if self.claims_since_sweep.fetch_add(1, Ordering::Relaxed) + 1 >= CLAIM_SWEEP_EVERY {
            self.claims_since_sweep.store(0, Ordering::Relaxed);
            claims.retain(|_, c| c.deadline > now_ms);
        }
        claims.insert(jid, claim);
    }

    /// True when the worker was told to stop fetching (`quiet` or `terminate`).
    pub fn is_quiet(&self, wid: &str) -> bool {
        self.workers
            .lock()
            .get(wid)
            .is_some_and(|w| w.state == "quiet" || w.state == "terminate")
    }
}

/// Binds the Faktory listener if `faktory-port` is set. Returns `Ok(None)` when it is
/// off; a bind failure stops the start like the main port's.
pub fn bind(srv: &Server) -> std::io::Result<Option<TcpListener>> {
    let (port, host) = {
        let c = srv.config.read();
        (c.faktory.port, c.faktory.bind.clone())
    };
    if port == 0 {
        return Ok(None);
    }
    let target = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    match crate::bind(&target) {
        Ok(l) => {
            tracing::info!("Faktory protocol listening on {target}");
            Ok(Some(l))
        }
        Err(e) => {
            tracing::warn!("Failed listening on {target} (faktory-port), aborting: {e}");
            Err(e)
        }
    }
}

/// Accepts Faktory connections until the task is aborted at shutdown; a connection over
/// `faktory-max-connections` gets Faktory-style `-ERR` and is closed.
pub async fn accept_loop(srv: Arc<Server>, state: Arc<Faktory>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let max = srv.config.read().faktory.max_connections as usize;
                let open = state.connections.fetch_add(1, Ordering::AcqRel);
                let guard = ConnGuard(state.clone());
                if open >= max {
                    state.rejected.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(conn::refuse(
                        stream,
                        format!("ERR too many connections (faktory-max-connections is {max})"),
                        guard,
                    ));
                    continue;
                }
                tokio::spawn(conn::serve(srv.clone(), state.clone(), stream, guard));
            }
            Err(e) => {
                tracing::warn!("Accepting Faktory connection: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Counts one open connection; dropped when the connection task ends.
pub struct ConnGuard(Arc<Faktory>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
    }
}
