//! Rust client and worker SDK for Basalt's native job queues.
//!
//! Basalt keeps durable job queues in the server (`JOB.*`, `QUEUE.*`, `WORKER.*`,
//! documented in `docs/jobs.md`). This crate speaks them over plain RESP (its own small
//! connection on `basalt-proto` and tokio; no Redis client library):
//!
//! - [`Client`]: push (with every `JOB.PUSH` option), fetch, ack, fail, nack, extend,
//!   progress, cancel, get, beat — one typed method per command.
//! - [`Worker`]: register async handlers by job type; it fetches with a concurrency
//!   limit, heartbeats (`WORKER.BEAT`) and extends the visibility of jobs in flight,
//!   reports success (`JOB.ACK`) or failure (`JOB.FAIL`, the server applies the job's
//!   retry policy and dead-letters it when retries run out), and shuts down gracefully:
//!   quiet → finish in-flight jobs → return, also when the server's BEAT answer says
//!   `quiet` or `terminate`.
//!
//! Jobs carry Faktory's work unit in their payload (`{"jobtype": ..., "args": [...]}`),
//! so a job pushed with [`Client::push`] runs on a Faktory worker connected to Basalt's
//! Faktory port (`docs/faktory.md`), and a job pushed by a Faktory client runs on a
//! [`Worker`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), basalt_worker::Error> {
//! use basalt_worker::{Client, PushOptions};
//! use serde_json::json;
//! let mut client = Client::connect("127.0.0.1:6379").await?;
//! let opts = PushOptions { retry: Some(3), ..Default::default() };
//! let jid = client.push("default", "Add", json!([1, 2]), &opts).await?;
//! # Ok(()) }
//! ```

mod client;
mod conn;
mod job;
mod reply;
mod worker;

pub use client::{Backoff, Client, FailOutcome, FetchOptions, PushOptions, Retry, envelope};
pub use conn::{ConnectOptions, Connection, MAX_REPLY_BYTES};
pub use job::{FetchedJob, JobInfo};
pub use worker::{HandlerResult, Job, RunStats, Shutdown, Worker};

/// What can go wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The server closed the connection.
    #[error("connection closed")]
    Closed,
    /// A reply that is not what the command answers.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The server answered an error (`STALE claim is not current`, `ERR no such job`...).
    #[error("{0}")]
    Server(String),
}

/// What the server wants a worker to do (`WORKER.BEAT`'s answer); states only move
/// forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WorkerState {
    /// Fetch and run jobs.
    Running,
    /// Fetch nothing more; finish the jobs in flight.
    Quiet,
    /// Finish or give back the jobs in flight, and exit.
    Terminate,
}
