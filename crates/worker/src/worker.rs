//! [`Worker`]: runs registered handlers on fetched jobs, with a concurrency limit,
//! heartbeats, visibility extension and graceful shutdown.
//!
//! Shape of a run:
//! - one **fetcher** connection takes jobs (`JOB.FETCH ... BLOCK`, short blocks so a
//!   state change is seen within one block) whenever a concurrency permit is free;
//! - each job runs its handler in its own task; success is `JOB.ACK` (with the handler's
//!   result), an error or a panic is `JOB.FAIL` (the server decides retry or death by the
//!   job's RETRY and BACKOFF: retries are driven by the server, not by the worker);
//! - a **heartbeat** task sends `WORKER.BEAT wid ACTIVE n` and `JOB.EXTEND`s every
//!   in-flight job, so a long handler keeps its claim and a crashed worker's jobs return
//!   to the queue after their visibility timeout;
//! - **shutdown**: `quiet` (from [`Shutdown::quiet`] or a BEAT answering `quiet`) stops
//!   fetching and lets in-flight jobs finish, then `run` returns; `terminate` (from
//!   [`Shutdown::terminate`] or BEAT) does the same but waits at most
//!   `shutdown_timeout`, then aborts the handlers still running and gives their jobs
//!   back (`JOB.NACK`, no failure counted).
//!
//! ACK, FAIL, NACK, EXTEND and BEAT go through one shared control connection
//! (reconnected when it breaks).

use crate::client::{Client, FetchOptions, Retry};
use crate::conn::ConnectOptions;
use crate::job::FetchedJob;
use crate::{Error, WorkerState};
use bytes::Bytes;
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Mutex, Semaphore, watch};
use tokio::task::{AbortHandle, JoinSet};

/// What a handler returns: `Ok(result)` completes the job (the result, if any, is stored
/// with it), `Err` fails the attempt with the error's text.
pub type HandlerResult = Result<Option<Vec<u8>>, Box<dyn std::error::Error + Send + Sync>>;

type BoxFuture = Pin<Box<dyn Future<Output = HandlerResult> + Send>>;
type Handler = Arc<dyn Fn(Job) -> BoxFuture + Send + Sync>;

/// The shared control connection, reconnected when it breaks.
struct Control {
    opts: ConnectOptions,
    client: Mutex<Option<Client>>,
}

/// Runs `$call` (an expression using the connection `$c`) on the control connection; a
/// broken connection is replaced and the call tried once more (the commands sent this
/// way are safe to repeat: a repeated ACK/FAIL of the same claim gets `STALE`, which
/// the caller logs).
macro_rules! control {
    ($control:expr, $c:ident => $call:expr) => {{
        let control: &Control = &$control;
        let mut guard = control.client.lock().await;
        let mut out = Err(Error::Closed);
        for _ in 0..2 {
            if guard.is_none() {
                match Client::connect_with(&control.opts).await {
                    Ok(c) => *guard = Some(c),
                    Err(e) => {
                        out = Err(e);
                        break;
                    }
                }
            }
            let Some($c) = guard.as_mut() else { break };
            out = $call.await;
            match &out {
                Err(Error::Io(_) | Error::Closed | Error::Protocol(_)) => *guard = None,
                _ => break,
            }
        }
        out
    }};
}

/// A job handed to a handler.
#[derive(Clone)]
pub struct Job {
    /// The job id.
    pub jid: String,
    /// The queue it came from.
    pub queue: String,
    /// The envelope's job type.
    pub jobtype: String,
    /// The envelope's arguments.
    pub args: Value,
    /// The whole payload.
    pub payload: Bytes,
    /// This delivery's number (1 for the first).
    pub attempt: i64,
    /// The claim's fence (strictly increasing per queue).
    pub fence: i64,
    /// The last failure's message, on a retry.
    pub last_error: Option<String>,
    token: Bytes,
    control: Arc<Control>,
}

impl Job {
    /// Reports progress (0..=100) with an optional message (`JOB.PROGRESS`).
    pub async fn progress(&self, pct: u8, message: Option<&str>) -> Result<(), Error> {
        control!(self.control, c => c.progress(&self.jid, &self.token, pct, message))
    }
}

/// Asks a running [`Worker`] to stop.
#[derive(Clone)]
pub struct Shutdown(watch::Sender<WorkerState>);

impl Shutdown {
    /// Stop fetching, finish the jobs in flight, then return from `run`.
    pub fn quiet(&self) {
        self.0.send_if_modified(|s| raise(s, WorkerState::Quiet));
    }

    /// As `quiet`, but give up on handlers still running after `shutdown_timeout`.
    pub fn terminate(&self) {
        self.0
            .send_if_modified(|s| raise(s, WorkerState::Terminate));
    }
}

/// States only move forward: running → quiet → terminate.
fn raise(current: &mut WorkerState, to: WorkerState) -> bool {
    if to > *current {
        *current = to;
        true
    } else {
        false
    }
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunStats {
    /// Jobs acknowledged.
    pub completed: u64,
    /// Attempts failed (handler error, panic, unknown job type).
    pub failed: u64,
    /// Jobs given back at terminate.
    pub returned: u64,
}

#[derive(Default)]
struct Counters {
    completed: AtomicU64,
    failed: AtomicU64,
    returned: AtomicU64,
}

/// A claim in flight: what the heartbeat extends and terminate gives back.
struct InFlight {
    token: Bytes,
    abort: Option<AbortHandle>,
}

/// A job worker. Build it, register handlers, then `run` it.
///
/// ```no_run
/// # async fn demo() -> Result<(), basalt_worker::Error> {
/// use basalt_worker::{ConnectOptions, Worker};
/// let worker = Worker::new(ConnectOptions::new("127.0.0.1:6379"))
///     .queues(&["default"])
///     .concurrency(4)
///     .register("Add", |job| async move {
///         let sum: i64 = job.args.as_array().into_iter().flatten().filter_map(|v| v.as_i64()).sum();
///         Ok(Some(sum.to_string().into_bytes()))
///     });
/// let shutdown = worker.shutdown_handle();
/// tokio::spawn(async move {
///     let _ = tokio::signal::ctrl_c().await;
///     shutdown.quiet();
/// });
/// worker.run().await?;
/// # Ok(()) }
/// ```
pub struct Worker {
    opts: ConnectOptions,
    queues: Vec<String>,
    handlers: HashMap<String, Handler>,
    concurrency: usize,
    wid: String,
    heartbeat: Duration,
    visibility_ms: u64,
    fetch_block_ms: u64,
    shutdown_timeout: Duration,
    state: watch::Sender<WorkerState>,
}

impl Worker {
    /// A worker for queue `default`, concurrency 10, a random wid, a heartbeat every
    /// 15 s (Faktory's recommendation), a 60 s visibility renewed by each heartbeat, and
    /// 25 s to finish at terminate (Faktory allows 30).
    pub fn new(opts: ConnectOptions) -> Worker {
        let (state, _) = watch::channel(WorkerState::Running);
        let mut rng = seed();
        Worker {
            opts,
            queues: vec!["default".to_string()],
            handlers: HashMap::new(),
            concurrency: 10,
            wid: format!("{:016x}", rng()),
            heartbeat: Duration::from_secs(15),
            visibility_ms: 60_000,
            fetch_block_ms: 1000,
            shutdown_timeout: Duration::from_secs(25),
            state,
        }
    }

    /// Queues to fetch from (the server serves them round robin).
    pub fn queues(mut self, queues: &[&str]) -> Worker {
        self.queues = queues.iter().map(|q| q.to_string()).collect();
        self
    }

    /// Most jobs running at once (at least 1).
    pub fn concurrency(mut self, n: usize) -> Worker {
        self.concurrency = n.max(1);
        self
    }

    /// This worker's id (`WORKER` of its fetches, `WORKER.BEAT`).
    pub fn wid(mut self, wid: impl Into<String>) -> Worker {
        self.wid = wid.into();
        self
    }

    /// The worker's id.
    pub fn worker_id(&self) -> &str {
        &self.wid
    }

    /// How often to beat and extend in-flight jobs.
    pub fn heartbeat(mut self, every: Duration) -> Worker {
        self.heartbeat = every;
        self
    }

    /// The visibility timeout of each delivery, renewed by every heartbeat: keep it
    /// comfortably longer than the heartbeat interval.
    pub fn visibility(mut self, d: Duration) -> Worker {
        self.visibility_ms = (d.as_millis() as u64).max(1);
        self
    }

    /// How long one blocking fetch waits (state changes are seen between fetches).
    pub fn fetch_block(mut self, d: Duration) -> Worker {
        self.fetch_block_ms = (d.as_millis() as u64).max(1);
        self
    }

    /// How long `terminate` waits for running handlers before giving their jobs back.
    pub fn shutdown_timeout(mut self, d: Duration) -> Worker {
        self.shutdown_timeout = d;
        self
    }

    /// Runs `handler` for jobs whose envelope's `jobtype` is `jobtype`.
    pub fn register<F, Fut>(mut self, jobtype: &str, handler: F) -> Worker
    where
        F: Fn(Job) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        let h: Handler = Arc::new(move |job| Box::pin(handler(job)));
        self.handlers.insert(jobtype.to_string(), h);
        self
    }

    /// A handle that stops the worker from another task.
    pub fn shutdown_handle(&self) -> Shutdown {
        Shutdown(self.state.clone())
    }

    /// Fetches and runs jobs until shut down (by the handle or the server's BEAT
    /// answer). Errors only when the first connection cannot be made; later connection
    /// failures are retried.
    pub async fn run(self) -> Result<RunStats, Error> {
        let mut fetcher = Client::connect_with(&self.opts).await?;
        let control = Arc::new(Control {
            opts: self.opts.clone(),
            client: Mutex::new(None),
        });
        let inflight: Arc<std::sync::Mutex<HashMap<String, InFlight>>> = Arc::default();
        let counters = Arc::new(Counters::default());
        let permits = Arc::new(Semaphore::new(self.concurrency));
        let handlers = Arc::new(self.handlers);
        let mut state_rx = self.state.subscribe();
        let beat = tokio::spawn(heartbeat(
            control.clone(),
            inflight.clone(),
            self.state.clone(),
            self.wid.clone(),
            self.heartbeat,
            self.visibility_ms,
        ));
        let queues: Vec<&str> = self.queues.iter().map(String::as_str).collect();
        let fetch = FetchOptions {
            count: Some(1),
            block_ms: Some(self.fetch_block_ms),
            visibility_ms: Some(self.visibility_ms),
            worker: Some(self.wid.clone()),
        };
        let mut tasks = JoinSet::new();
        let mut backoff = Duration::from_millis(50);
        while *state_rx.borrow() == WorkerState::Running {
            let permit = tokio::select! {
                p = permits.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
                _ = state_rx.changed() => continue,
            };
            // Reap finished tasks so the set does not grow.
            while tasks.try_join_next().is_some() {}
            let jobs = match fetcher.fetch(&queues, &fetch).await {
                Ok(jobs) => {
                    backoff = Duration::from_millis(50);
                    jobs
                }
                Err(e) => {
                    tracing::warn!(error = %e, "fetch failed; reconnecting");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    if let Ok(c) = Client::connect_with(&self.opts).await {
                        fetcher = c;
                    }
                    continue;
                }
            };
            let Some(job) = jobs.into_iter().next() else {
                continue;
            };
            inflight.lock().unwrap_or_else(|e| e.into_inner()).insert(
                job.jid.clone(),
                InFlight {
                    token: job.token.clone(),
                    abort: None,
                },
            );
            tasks.spawn(run_job(
                job,
                handlers.clone(),
                control.clone(),
                inflight.clone(),
                counters.clone(),
                permit,
            ));
        }
        drop(fetcher);

        // Drain: quiet waits for every job; terminate (now or later) waits at most
        // `shutdown_timeout`, then gives the rest back.
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            if deadline.is_none() && *state_rx.borrow() == WorkerState::Terminate {
                deadline = Some(tokio::time::Instant::now() + self.shutdown_timeout);
            }
            let until = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                done = tasks.join_next() => if done.is_none() { break },
                _ = state_rx.changed() => {}
                _ = until => {
                    give_back(&control, &inflight, &counters).await;
                    while tasks.join_next().await.is_some() {}
                    break;
                }
            }
        }
        beat.abort();
        Ok(RunStats {
            completed: counters.completed.load(Ordering::Relaxed),
            failed: counters.failed.load(Ordering::Relaxed),
            returned: counters.returned.load(Ordering::Relaxed),
        })
    }
}

/// Aborts the handlers still running and NACKs their jobs.
async fn give_back(
    control: &Control,
    inflight: &std::sync::Mutex<HashMap<String, InFlight>>,
    counters: &Counters,
) {
    let left: Vec<(String, Bytes)> = {
        let mut map = inflight.lock().unwrap_or_else(|e| e.into_inner());
        map.drain()
            .map(|(jid, f)| {
                if let Some(a) = f.abort {
                    a.abort();
                }
                (jid, f.token)
            })
            .collect()
    };
    for (jid, token) in left {
        match control!(control, c => c.nack(&jid, &token, None)) {
            Ok(()) => {
                counters.returned.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(%jid, error = %e, "could not give the job back"),
        }
    }
}

/// Runs one job's handler and reports the outcome.
async fn run_job(
    job: FetchedJob,
    handlers: Arc<HashMap<String, Handler>>,
    control: Arc<Control>,
    inflight: Arc<std::sync::Mutex<HashMap<String, InFlight>>>,
    counters: Arc<Counters>,
    _permit: tokio::sync::OwnedSemaphorePermit,
) {
    let (jobtype, args) = job
        .envelope()
        .unwrap_or_else(|| (String::new(), Value::Null));
    let outcome: Result<Option<Vec<u8>>, String> = match handlers.get(&jobtype) {
        None => Err(format!("no handler registered for jobtype {jobtype:?}")),
        Some(h) => {
            let handed = Job {
                jid: job.jid.clone(),
                queue: job.queue.clone(),
                jobtype: jobtype.clone(),
                args,
                payload: job.payload.clone(),
                attempt: job.attempt,
                fence: job.fence,
                last_error: job.error.clone(),
                token: job.token.clone(),
                control: control.clone(),
            };
            // In its own task: a panic is a failed attempt, and terminate can abort it.
            let task = tokio::spawn(h(handed));
            {
                let mut map = inflight.lock().unwrap_or_else(|e| e.into_inner());
                match map.get_mut(&job.jid) {
                    Some(f) => f.abort = Some(task.abort_handle()),
                    // Given back already (terminate raced the start).
                    None => task.abort(),
                }
            }
            match task.await {
                Ok(Ok(result)) => Ok(result),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) if e.is_cancelled() => return,
                Err(_) => Err("handler panicked".to_string()),
            }
        }
    };
    // Still ours? (terminate gives back what it finds in the map.)
    let claimed = inflight
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&job.jid)
        .is_some();
    if !claimed {
        return;
    }
    let (jid, token) = (job.jid.clone(), job.token.clone());
    let reported = match outcome {
        Ok(result) => control!(control, c => c.ack(&jid, &token, result.as_deref(), None))
            .map(|_| &counters.completed),
        Err(msg) => control!(control, c => c.fail(&jid, &token, &msg, Retry::Backoff))
            .map(|_| &counters.failed),
    };
    match reported {
        Ok(counter) => {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        // STALE: the claim ran out (the job went to another worker); nothing to do.
        Err(e) => tracing::warn!(%jid, error = %e, "could not report the job's outcome"),
    }
}

/// Beats every `every` and extends the in-flight claims; a BEAT answering quiet or
/// terminate moves the worker's state.
async fn heartbeat(
    control: Arc<Control>,
    inflight: Arc<std::sync::Mutex<HashMap<String, InFlight>>>,
    state: watch::Sender<WorkerState>,
    wid: String,
    every: Duration,
    visibility_ms: u64,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let claims: Vec<(String, Bytes)> = inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(j, f)| (j.clone(), f.token.clone()))
            .collect();
        let active = claims.len();
        match control!(control, c => c.beat(&wid, Some(active))) {
            Ok(s) => {
                state.send_if_modified(|cur| raise(cur, s));
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
        for (jid, token) in claims {
            if let Err(e) = control!(control, c => c.extend(&jid, &token, visibility_ms)) {
                tracing::debug!(%jid, error = %e, "extend failed (finished meanwhile?)");
            }
        }
    }
}

/// A random 64-bit generator for worker ids (time, pid and a counter, mixed).
fn seed() -> impl FnMut() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x =
        t ^ u64::from(std::process::id()).rotate_left(32) ^ N.fetch_add(1, Ordering::Relaxed);
    move || {
        // splitmix64
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_only_move_forward() {
        let mut s = WorkerState::Running;
        assert!(raise(&mut s, WorkerState::Quiet));
        assert!(!raise(&mut s, WorkerState::Running));
        assert!(raise(&mut s, WorkerState::Terminate));
        assert!(!raise(&mut s, WorkerState::Quiet));
        assert_eq!(s, WorkerState::Terminate);
    }

    #[test]
    fn worker_ids_differ() {
        let a = Worker::new(ConnectOptions::new("x:1"));
        let b = Worker::new(ConnectOptions::new("x:1"));
        assert_ne!(a.worker_id(), b.worker_id());
        assert_eq!(a.worker_id().len(), 16);
    }
}
