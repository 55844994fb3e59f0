//! Jobs as the SDK sees them: [`FetchedJob`] (a delivery, with its claim) and
//! [`JobInfo`] (`JOB.GET`'s view).

use crate::Error;
use crate::reply::Fields;
use basalt_proto::Frame;
use bytes::Bytes;
use serde_json::Value;

/// One delivery of `JOB.FETCH`.
#[derive(Debug, Clone)]
pub struct FetchedJob {
    /// The queue's key.
    pub queue: String,
    /// The job id.
    pub jid: String,
    /// The payload as pushed.
    pub payload: Bytes,
    /// The claim token (ACK/FAIL/NACK/EXTEND/PROGRESS need it).
    pub token: Bytes,
    /// The claim's fence: strictly increasing per queue; pass it to the systems you write
    /// to so a late worker's writes can be refused.
    pub fence: i64,
    /// This delivery's number (1 for the first).
    pub attempt: i64,
    /// Visibility deadline (Unix ms).
    pub deadline: u64,
    /// Priority 0..9.
    pub priority: i64,
    /// The last failure's message, on a retry.
    pub error: Option<String>,
}

impl FetchedJob {
    pub(crate) fn from_frame(f: Frame) -> Result<FetchedJob, Error> {
        let f = Fields::of(f)
            .ok_or_else(|| Error::Protocol("JOB.FETCH: a job is not a map".to_string()))?;
        let need = |name: &str| {
            f.bytes(name)
                .ok_or_else(|| Error::Protocol(format!("JOB.FETCH: a job has no {name}")))
        };
        Ok(FetchedJob {
            queue: String::from_utf8_lossy(&need("queue")?).into_owned(),
            jid: String::from_utf8_lossy(&need("jid")?).into_owned(),
            payload: need("payload")?,
            token: need("token")?,
            fence: f.int("fence").unwrap_or(0),
            attempt: f.int("attempt").unwrap_or(1),
            deadline: f.int("deadline").unwrap_or(0).max(0) as u64,
            priority: f.int("priority").unwrap_or(5),
            error: f.text("error"),
        })
    }

    /// The payload's Faktory envelope, when it holds one: `(jobtype, args)`.
    pub fn envelope(&self) -> Option<(String, Value)> {
        let v: Value = serde_json::from_slice(&self.payload).ok()?;
        let jobtype = v.get("jobtype")?.as_str()?.to_string();
        let args = v.get("args").cloned().unwrap_or(Value::Array(Vec::new()));
        Some((jobtype, args))
    }
}

/// `JOB.GET`'s view of a job (the fields the SDK reads; see docs/jobs.md for all).
#[derive(Debug, Clone)]
pub struct JobInfo {
    /// The job id.
    pub jid: String,
    /// The queue's key.
    pub queue: String,
    /// `scheduled`, `waiting`, `active`, `failed`, `completed`, `dead` or `cancelled`.
    pub state: String,
    /// The payload.
    pub payload: Bytes,
    /// Deliveries so far.
    pub attempts: i64,
    /// Failed attempts so far.
    pub failures: i64,
    /// The ACK's result.
    pub result: Option<Bytes>,
    /// The last failure messages, oldest first.
    pub errors: Vec<String>,
    /// Progress 0..100.
    pub progress: i64,
    /// When a failed job runs again (Unix ms).
    pub retry_at: Option<u64>,
    /// The worker of the current or last claim.
    pub worker: Option<String>,
}

impl JobInfo {
    pub(crate) fn from_frame(f: Frame) -> Result<JobInfo, Error> {
        let f = Fields::of(f)
            .ok_or_else(|| Error::Protocol("JOB.GET did not answer a map".to_string()))?;
        Ok(JobInfo {
            jid: f.text("jid").unwrap_or_default(),
            queue: f.text("queue").unwrap_or_default(),
            state: f.text("state").unwrap_or_default(),
            payload: f.bytes("payload").unwrap_or_default(),
            attempts: f.int("attempts").unwrap_or(0),
            failures: f.int("failures").unwrap_or(0),
            result: f.bytes("result"),
            errors: f.texts("errors"),
            progress: f.int("progress").unwrap_or(0),
            retry_at: f.int("retry_at").map(|t| t as u64),
            worker: f.text("worker"),
        })
    }
}
