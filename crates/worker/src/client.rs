//! [`Client`]: the job commands as typed methods over one connection.

use crate::conn::{ConnectOptions, Connection};
use crate::job::{FetchedJob, JobInfo};
use crate::reply::{self, Fields};
use crate::{Error, WorkerState};
use basalt_proto::Frame;
use bytes::Bytes;
use serde_json::{Value, json};

/// Options of a push (`JOB.PUSH`'s options; unset ones take the server's defaults).
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// `ID`: the job id (a push with an existing jid is a no-op answering it).
    pub jid: Option<String>,
    /// `DELAY` in ms.
    pub delay_ms: Option<u64>,
    /// `AT`: Unix ms.
    pub at_ms: Option<u64>,
    /// `PRIORITY` 0..9 (higher first).
    pub priority: Option<u8>,
    /// `RETRY`: retries after the first failure.
    pub retry: Option<u32>,
    /// `BACKOFF`.
    pub backoff: Option<Backoff>,
    /// `TIMEOUT`: the visibility timeout of each delivery, ms.
    pub timeout_ms: Option<u64>,
    /// `EXPIRES`: Unix ms.
    pub expires_ms: Option<u64>,
    /// `UNIQUE key FOR ms`.
    pub unique: Option<(String, u64)>,
    /// `DEPENDS`: parent jids.
    pub depends: Vec<String>,
    /// `GROUP`.
    pub group: Option<String>,
    /// `TAGS`.
    pub tags: Vec<String>,
}

/// A retry backoff.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Backoff {
    /// The same delay before every retry.
    Fixed {
        /// Delay in ms.
        ms: u64,
    },
    /// `min(max, base × 2^(k−1))` before retry k, less up to `jitter` of it at random.
    Exponential {
        /// First delay, ms.
        base_ms: u64,
        /// Largest delay, ms.
        max_ms: u64,
        /// 0.0..=1.0.
        jitter: Option<f64>,
    },
}

impl PushOptions {
    fn to_args(&self) -> Vec<Vec<u8>> {
        let mut a: Vec<Vec<u8>> = Vec::new();
        let mut put = |parts: &[&str]| a.extend(parts.iter().map(|p| p.as_bytes().to_vec()));
        if let Some(j) = &self.jid {
            put(&["ID", j]);
        }
        if let Some(d) = self.delay_ms {
            put(&["DELAY", &d.to_string()]);
        }
        if let Some(t) = self.at_ms {
            put(&["AT", &t.to_string()]);
        }
        if let Some(p) = self.priority {
            put(&["PRIORITY", &p.to_string()]);
        }
        if let Some(r) = self.retry {
            put(&["RETRY", &r.to_string()]);
        }
        match self.backoff {
            Some(Backoff::Fixed { ms }) => put(&["BACKOFF", "FIXED", &ms.to_string()]),
            Some(Backoff::Exponential {
                base_ms,
                max_ms,
                jitter,
            }) => {
                put(&["BACKOFF", "EXP", &base_ms.to_string(), &max_ms.to_string()]);
                if let Some(j) = jitter {
                    put(&["JITTER", &j.to_string()]);
                }
            }
            None => {}
        }
        if let Some(t) = self.timeout_ms {
            put(&["TIMEOUT", &t.to_string()]);
        }
        if let Some(e) = self.expires_ms {
            put(&["EXPIRES", &e.to_string()]);
        }
        if let Some((k, ms)) = &self.unique {
            put(&["UNIQUE", k, "FOR", &ms.to_string()]);
        }
        if let Some(g) = &self.group {
            put(&["GROUP", g]);
        }
        if !self.depends.is_empty() {
            put(&["DEPENDS"]);
            for d in &self.depends {
                put(&[d]);
            }
        }
        if !self.tags.is_empty() {
            put(&["TAGS"]);
            for t in &self.tags {
                put(&[t]);
            }
        }
        a
    }
}

/// Options of a fetch.
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    /// `COUNT` (default 1).
    pub count: Option<u32>,
    /// `BLOCK` ms (`Some(0)`: forever; `None`: do not wait).
    pub block_ms: Option<u64>,
    /// `VISIBILITY` ms for these deliveries.
    pub visibility_ms: Option<u64>,
    /// `WORKER` id recorded on the jobs.
    pub worker: Option<String>,
}

/// What `JOB.FAIL` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailOutcome {
    /// `failed` (will retry) or `dead`.
    pub state: String,
    /// When it runs again (Unix ms); `None` when dead.
    pub retry_at: Option<u64>,
}

/// How a failure should be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Retry {
    /// The job's own backoff.
    #[default]
    Backoff,
    /// After this many ms (`RETRY_IN`).
    In(u64),
    /// Never: dead now (`NORETRY`).
    Never,
}

/// The Faktory work unit a job's payload holds: `jobtype`, `args`, `queue`, plus the
/// `retry` Faktory workers read. Jobs pushed this way run on Faktory workers too.
pub fn envelope(queue: &str, jobtype: &str, args: &Value, retry: Option<u32>) -> Vec<u8> {
    let mut v = json!({ "jobtype": jobtype, "args": args, "queue": queue });
    if let Some(r) = retry {
        v["retry"] = json!(r);
    }
    v.to_string().into_bytes()
}

/// A connection with the job commands as methods. Not shared: open one per task that
/// needs it (a blocking fetch holds its connection).
pub struct Client {
    conn: Connection,
}

impl Client {
    /// Connects to `addr` (`host:port`).
    pub async fn connect(addr: impl Into<String>) -> Result<Client, Error> {
        Client::connect_with(&ConnectOptions::new(addr)).await
    }

    /// Connects with options (password, database).
    pub async fn connect_with(opts: &ConnectOptions) -> Result<Client, Error> {
        Ok(Client {
            conn: Connection::connect(opts).await?,
        })
    }

    /// Runs any command; server errors are `Err(Error::Server)`.
    pub async fn call(&mut self, args: &[&[u8]]) -> Result<Frame, Error> {
        reply::check(self.conn.call(args).await?)
    }

    /// Pushes a job whose payload is the Faktory envelope of `jobtype` and `args` (what
    /// [`crate::Worker`] handlers and Faktory workers run). Returns the jid, or `None`
    /// when a `UNIQUE` key is held by another job.
    pub async fn push(
        &mut self,
        queue: &str,
        jobtype: &str,
        args: Value,
        opts: &PushOptions,
    ) -> Result<Option<String>, Error> {
        let payload = envelope(queue, jobtype, &args, opts.retry);
        self.push_raw(queue, &payload, opts).await
    }

    /// Pushes a job with an opaque payload.
    pub async fn push_raw(
        &mut self,
        queue: &str,
        payload: &[u8],
        opts: &PushOptions,
    ) -> Result<Option<String>, Error> {
        let extra = opts.to_args();
        let mut args: Vec<&[u8]> = vec![b"JOB.PUSH", queue.as_bytes(), payload];
        args.extend(extra.iter().map(Vec::as_slice));
        match self.call(&args).await? {
            Frame::Null => Ok(None),
            f => reply::text(&f)
                .map(Some)
                .ok_or_else(|| Error::Protocol(format!("JOB.PUSH answered {f:?}"))),
        }
    }

    /// Fetches up to `count` jobs from `queues`; empty when none (after `block_ms`).
    pub async fn fetch(
        &mut self,
        queues: &[&str],
        opts: &FetchOptions,
    ) -> Result<Vec<FetchedJob>, Error> {
        let mut owned: Vec<String> = Vec::new();
        if let Some(c) = opts.count {
            owned.extend(["COUNT".to_string(), c.to_string()]);
        }
        if let Some(b) = opts.block_ms {
            owned.extend(["BLOCK".to_string(), b.to_string()]);
        }
        if let Some(v) = opts.visibility_ms {
            owned.extend(["VISIBILITY".to_string(), v.to_string()]);
        }
        if let Some(w) = &opts.worker {
            owned.extend(["WORKER".to_string(), w.clone()]);
        }
        let mut args: Vec<&[u8]> = vec![b"JOB.FETCH"];
        args.extend(queues.iter().map(|q| q.as_bytes()));
        args.extend(owned.iter().map(|s| s.as_bytes()));
        match self.call(&args).await? {
            Frame::Array(jobs) => jobs.into_iter().map(FetchedJob::from_frame).collect(),
            Frame::NullArray | Frame::Null => Ok(Vec::new()),
            f => Err(Error::Protocol(format!("JOB.FETCH answered {f:?}"))),
        }
    }

    /// Completes a job; returns the stored result (the one given, or the first ACK's
    /// for a repeated ACK with the same idempotency key).
    pub async fn ack(
        &mut self,
        jid: &str,
        token: &[u8],
        result: Option<&[u8]>,
        idempotency_key: Option<&str>,
    ) -> Result<Option<Bytes>, Error> {
        let mut args: Vec<&[u8]> = vec![b"JOB.ACK", jid.as_bytes(), token];
        if let Some(r) = result {
            args.extend([b"RESULT".as_slice(), r]);
        }
        if let Some(k) = idempotency_key {
            args.extend([b"IDEMPOTENCY".as_slice(), k.as_bytes()]);
        }
        Ok(reply::bytes(&self.call(&args).await?))
    }

    /// Records a failed attempt.
    pub async fn fail(
        &mut self,
        jid: &str,
        token: &[u8],
        error: &str,
        retry: Retry,
    ) -> Result<FailOutcome, Error> {
        let ms;
        let mut args: Vec<&[u8]> = vec![b"JOB.FAIL", jid.as_bytes(), token, error.as_bytes()];
        match retry {
            Retry::Backoff => {}
            Retry::In(d) => {
                ms = d.to_string();
                args.extend([b"RETRY_IN".as_slice(), ms.as_bytes()]);
            }
            Retry::Never => args.push(b"NORETRY"),
        }
        let f = Fields::of(self.call(&args).await?)
            .ok_or_else(|| Error::Protocol("JOB.FAIL did not answer a map".to_string()))?;
        Ok(FailOutcome {
            state: f.text("state").unwrap_or_default(),
            retry_at: f.int("retry_at").map(|t| t as u64),
        })
    }

    /// Gives a job back without counting a failure.
    pub async fn nack(
        &mut self,
        jid: &str,
        token: &[u8],
        delay_ms: Option<u64>,
    ) -> Result<(), Error> {
        let d;
        let mut args: Vec<&[u8]> = vec![b"JOB.NACK", jid.as_bytes(), token];
        if let Some(ms) = delay_ms {
            d = ms.to_string();
            args.extend([b"DELAY".as_slice(), d.as_bytes()]);
        }
        self.call(&args).await.map(|_| ())
    }

    /// Pushes the claim's visibility deadline to `now + ms`; returns the new deadline.
    pub async fn extend(&mut self, jid: &str, token: &[u8], ms: u64) -> Result<u64, Error> {
        let ms = ms.to_string();
        let f = self
            .call(&[b"JOB.EXTEND", jid.as_bytes(), token, ms.as_bytes()])
            .await?;
        reply::int(&f)
            .map(|d| d as u64)
            .ok_or_else(|| Error::Protocol(format!("JOB.EXTEND answered {f:?}")))
    }

    /// Reports progress (0..=100) with an optional message.
    pub async fn progress(
        &mut self,
        jid: &str,
        token: &[u8],
        pct: u8,
        message: Option<&str>,
    ) -> Result<(), Error> {
        let pct = pct.to_string();
        let mut args: Vec<&[u8]> = vec![b"JOB.PROGRESS", jid.as_bytes(), token, pct.as_bytes()];
        if let Some(m) = message {
            args.push(m.as_bytes());
        }
        self.call(&args).await.map(|_| ())
    }

    /// Cancels a job; `false` when it had already finished.
    pub async fn cancel(&mut self, jid: &str) -> Result<bool, Error> {
        Ok(reply::int(&self.call(&[b"JOB.CANCEL", jid.as_bytes()]).await?) == Some(1))
    }

    /// A job's state and history; `None` for an unknown jid.
    pub async fn get(&mut self, jid: &str) -> Result<Option<JobInfo>, Error> {
        match self.call(&[b"JOB.GET", jid.as_bytes()]).await? {
            Frame::Null | Frame::NullArray => Ok(None),
            f => JobInfo::from_frame(f).map(Some),
        }
    }

    /// A worker heartbeat (`WORKER.BEAT`): what the server wants the worker to do.
    pub async fn beat(&mut self, wid: &str, active: Option<usize>) -> Result<WorkerState, Error> {
        let n;
        let mut args: Vec<&[u8]> = vec![b"WORKER.BEAT", wid.as_bytes()];
        if let Some(a) = active {
            n = a.to_string();
            args.extend([b"ACTIVE".as_slice(), n.as_bytes()]);
        }
        let f = self.call(&args).await?;
        match reply::text(&f)
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("ok") => Ok(WorkerState::Running),
            Some("quiet") => Ok(WorkerState::Quiet),
            Some("terminate") => Ok(WorkerState::Terminate),
            _ => Err(Error::Protocol(format!("WORKER.BEAT answered {f:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(o: &PushOptions) -> Vec<String> {
        o.to_args()
            .into_iter()
            .map(|a| String::from_utf8(a).unwrap())
            .collect()
    }

    #[test]
    fn push_options_become_job_push_arguments() {
        assert!(words(&PushOptions::default()).is_empty());
        let o = PushOptions {
            jid: Some("j1".into()),
            delay_ms: Some(5),
            priority: Some(9),
            retry: Some(3),
            backoff: Some(Backoff::Exponential {
                base_ms: 100,
                max_ms: 1000,
                jitter: Some(0.5),
            }),
            timeout_ms: Some(60_000),
            unique: Some(("u".into(), 10)),
            depends: vec!["p1".into(), "p2".into()],
            group: Some("g".into()),
            tags: vec!["t".into()],
            ..Default::default()
        };
        assert_eq!(
            words(&o),
            [
                "ID", "j1", "DELAY", "5", "PRIORITY", "9", "RETRY", "3", "BACKOFF", "EXP", "100",
                "1000", "JITTER", "0.5", "TIMEOUT", "60000", "UNIQUE", "u", "FOR", "10", "GROUP",
                "g", "DEPENDS", "p1", "p2", "TAGS", "t"
            ]
        );
    }

    #[test]
    fn the_envelope_is_faktorys_work_unit() {
        let e: Value =
            serde_json::from_slice(&envelope("q", "Add", &json!([1, 2]), Some(2))).unwrap();
        assert_eq!(
            e,
            json!({"jobtype": "Add", "args": [1, 2], "queue": "q", "retry": 2})
        );
    }
}
