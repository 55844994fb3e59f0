//! Faktory's work unit (a JSON object) and its mapping onto Basalt jobs.
//!
//! A pushed job is validated as Faktory validates it (a `jid` of at least 8 characters,
//! a `jobtype`, an `args` array, `reserve_for` at most a day, a valid RFC 3339 `at`),
//! stamped with `created_at`/`enqueued_at`, and stored whole as the Basalt job's payload,
//! with its fields turned into `JOB.PUSH` options:
//!
//! | Faktory field | Basalt |
//! |---|---|
//! | `jid` | `ID jid` |
//! | `queue` (default `default`) | the queue key |
//! | `at` (future) | `AT unix-ms` |
//! | `priority` (0..9) | `PRIORITY p` |
//! | `reserve_for` (s; 60..86400, Faktory's clamp) | `TIMEOUT ms` |
//! | `retry` (default 25; n > 0) | `RETRY n` |
//! | `retry` < 0 (straight to the dead set) | `RETRY 0` |
//! | `retry` 0 (discarded on failure) | `RETRY 0`; FAIL cancels the job instead |
//!
//! On FETCH the payload is handed back with `jid` and `queue` set from the job and, on a
//! re-delivery, Faktory's `failure` object rebuilt from the last error (FAIL stores the
//! failure as JSON in the job's error message).

use serde_json::{Map, Value, json};

/// Faktory's default `retry` (`client.RetryPolicyDefault`).
pub const DEFAULT_RETRY: i64 = 25;
/// Faktory's bounds on `reserve_for`, in seconds.
pub const MIN_RESERVE_SECS: i64 = 60;
/// One day: Faktory refuses a longer `reserve_for` at push.
pub const MAX_RESERVE_SECS: i64 = 86_400;
/// Faktory's `cleanse` limits on a FAIL: `errtype` and `message` lengths, backtrace lines.
pub const MAX_ERRTYPE: usize = 100;
/// See [`MAX_ERRTYPE`].
pub const MAX_MESSAGE: usize = 1000;
/// See [`MAX_ERRTYPE`] (Basalt also cuts each backtrace line at [`MAX_MESSAGE`] bytes).
pub const MAX_BACKTRACE: usize = 50;

/// A validated push: the queue, the jid and the arguments of `JOB.PUSH` after the queue
/// (payload, then options), plus Faktory's `retry` for FAIL.
#[derive(Debug, Clone, PartialEq)]
pub struct Push {
    /// The queue key.
    pub queue: String,
    /// The job id.
    pub jid: String,
    /// The payload (the job's JSON as stored) followed by `JOB.PUSH` options.
    pub args: Vec<Vec<u8>>,
}

/// Validates one Faktory job (already parsed) and builds its push. `now_ms` stamps
/// `created_at` (when missing) and `enqueued_at`. The error is Faktory's message.
pub fn push_from(value: Value, now_ms: u64) -> Result<Push, String> {
    let Value::Object(mut job) = value else {
        return Err("jobs must be JSON objects".to_string());
    };
    let jid = match job.get("jid") {
        Some(Value::String(s)) if s.chars().count() >= 8 => s.clone(),
        _ => return Err("jobs must have a reasonable jid parameter".to_string()),
    };
    match job.get("jobtype") {
        Some(Value::String(s)) if !s.is_empty() => {}
        _ => return Err("jobs must have a jobtype parameter".to_string()),
    }
    match job.get("args") {
        Some(Value::Array(_)) => {}
        _ => return Err("jobs must have an args parameter".to_string()),
    }
    let queue = match job.get("queue") {
        None | Some(Value::Null) => "default".to_string(),
        Some(Value::String(s)) if s.is_empty() => "default".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err("jobs must have a string queue parameter".to_string()),
    };
    job.insert("queue".to_string(), Value::String(queue.clone()));
    let mut opts: Vec<Vec<u8>> = Vec::new();
    let mut opt = |name: &str, v: String| {
        opts.push(name.as_bytes().to_vec());
        opts.push(v.into_bytes());
    };
    opt("ID", jid.clone());
    let reserve = int_field(&job, "reserve_for")?;
    if let Some(r) = reserve {
        if r > MAX_RESERVE_SECS {
            return Err("jobs cannot be reserved for more than one day".to_string());
        }
        // Faktory clamps short reservations to a minute; 0 means its default (30 min).
        if r > 0 {
            opt("TIMEOUT", (r.max(MIN_RESERVE_SECS) * 1000).to_string());
        }
    }
    if let Some(p) = int_field(&job, "priority")? {
        if !(0..=9).contains(&p) {
            return Err("jobs must have a priority between 0 and 9".to_string());
        }
        opt("PRIORITY", p.to_string());
    }
    let retry = int_field(&job, "retry")?.unwrap_or(DEFAULT_RETRY);
    opt("RETRY", retry.max(0).to_string());
    let mut enqueued = now_ms;
    match job.get("at") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.is_empty() => {}
        Some(Value::String(s)) => {
            let at = super::time::parse_ms(s)
                .ok_or_else(|| format!("invalid timestamp for 'at': {s:?}"))?;
            if at > now_ms {
                opt("AT", at.to_string());
                enqueued = at;
            }
        }
        Some(other) => return Err(format!("invalid timestamp for 'at': {other}")),
    }
    if !matches!(job.get("created_at"), Some(Value::String(s)) if !s.is_empty()) {
        job.insert(
            "created_at".to_string(),
            Value::String(super::time::format_ms(now_ms)),
        );
    }
    job.insert(
        "enqueued_at".to_string(),
        Value::String(super::time::format_ms(enqueued)),
    );
    // The stored payload carries Faktory's default explicitly, so FAIL knows it.
    job.insert("retry".to_string(), Value::from(retry));
    let payload = serde_json::to_vec(&Value::Object(job)).map_err(|e| e.to_string())?;
    let mut args = Vec::with_capacity(1 + opts.len());
    args.push(payload);
    args.extend(opts);
    Ok(Push { queue, jid, args })
}

/// An optional integer field; `null` counts as absent, any other non-integer is an error.
fn int_field(job: &Map<String, Value>, name: &str) -> Result<Option<i64>, String> {
    match job.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("jobs must have an integer {name} parameter")),
    }
}

/// Faktory's `retry` of a stored job (its payload), the default when it has none.
pub fn retry_of(payload: &[u8]) -> i64 {
    serde_json::from_slice::<Value>(payload)
        .ok()
        .and_then(|v| v.get("retry").and_then(Value::as_i64))
        .unwrap_or(DEFAULT_RETRY)
}

/// A FAIL's payload after Faktory's `cleanse`: trimmed, bounded, `unknown` when empty.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The job.
    pub jid: String,
    /// The error's class.
    pub errtype: String,
    /// A short description.
    pub message: String,
    /// At most [`MAX_BACKTRACE`] lines.
    pub backtrace: Vec<String>,
}

fn cut(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.is_empty() {
        return "unknown".to_string();
    }
    // At a character boundary at or below `max` bytes.
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Parses a FAIL argument. The error is the reply's message.
pub fn parse_fail(data: &[u8]) -> Result<Failure, String> {
    let invalid = || format!("invalid FAIL {}", String::from_utf8_lossy(data));
    let v: Value = serde_json::from_slice(data).map_err(|_| invalid())?;
    let obj = v.as_object().ok_or_else(invalid)?;
    let text = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or("");
    let jid = text("jid").to_string();
    if jid.is_empty() {
        return Err("missing JID".to_string());
    }
    let backtrace = match obj.get("backtrace") {
        Some(Value::Array(lines)) => lines
            .iter()
            .take(MAX_BACKTRACE)
            .map(|l| match l {
                Value::String(s) => cut(s, MAX_MESSAGE),
                other => cut(&other.to_string(), MAX_MESSAGE),
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok(Failure {
        jid,
        errtype: cut(text("errtype"), MAX_ERRTYPE),
        message: cut(text("message"), MAX_MESSAGE),
        backtrace,
    })
}

impl Failure {
    /// What JOB.FAIL stores as the error: the failure as JSON (with the times Faktory
    /// reports), so a re-delivery can show it in `failure`.
    pub fn to_error(&self, failed_at_ms: u64, next_at_ms: Option<u64>) -> String {
        let mut v = json!({
            "errtype": self.errtype,
            "message": self.message,
            "backtrace": self.backtrace,
            "failed_at": super::time::format_ms(failed_at_ms),
        });
        if let Some(next) = next_at_ms {
            v["next_at"] = Value::String(super::time::format_ms(next));
        }
        v.to_string()
    }
}

/// Faktory's (and Sidekiq's) retry delay after the failure numbered `count` (0 for the
/// first failure): `count⁴ + 15 + rand(30) × (count + 1)` seconds; `rand30` is the
/// random draw in 0..30.
pub fn retry_delay_secs(count: u64, rand30: u64) -> u64 {
    let c = count.min(10_000);
    c.pow(4) + 15 + (rand30 % 30) * (c + 1)
}

/// What a fetched job looks like to a Faktory worker: the stored payload with `jid` and
/// `queue` from the job, and a `failure` when an earlier attempt failed (`attempt` is
/// this delivery's number, `error` the last failure message). A payload that is not a
/// JSON object (a job pushed by a RESP client) is wrapped as
/// `{"jobtype":"","args":[payload]}`: a Faktory worker fails it as an unknown job type.
pub fn fetched(
    jid: &str,
    queue: &str,
    payload: &[u8],
    attempt: i64,
    error: Option<&[u8]>,
) -> Vec<u8> {
    let mut job = match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(m)) => m,
        _ => {
            let mut m = Map::new();
            m.insert("jobtype".to_string(), Value::String(String::new()));
            m.insert(
                "args".to_string(),
                json!([String::from_utf8_lossy(payload)]),
            );
            m
        }
    };
    job.insert("jid".to_string(), Value::String(jid.to_string()));
    job.insert("queue".to_string(), Value::String(queue.to_string()));
    if let Some(err) = error {
        let failures = (attempt - 1).max(1);
        let retry = job
            .get("retry")
            .and_then(Value::as_i64)
            .unwrap_or(DEFAULT_RETRY);
        let mut failure = match serde_json::from_slice::<Value>(err) {
            Ok(Value::Object(m)) if m.contains_key("errtype") => m,
            _ => {
                let mut m = Map::new();
                m.insert("errtype".to_string(), Value::String("unknown".to_string()));
                m.insert(
                    "message".to_string(),
                    Value::String(String::from_utf8_lossy(err).into_owned()),
                );
                m
            }
        };
        failure.insert("retry_count".to_string(), Value::from(failures - 1));
        failure.insert(
            "retry_remaining".to_string(),
            Value::from((retry - failures).max(0)),
        );
        job.insert("failure".to_string(), Value::Object(failure));
    }
    serde_json::to_vec(&Value::Object(job)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    fn push(j: &str) -> Result<Push, String> {
        push_from(serde_json::from_str(j).unwrap(), NOW)
    }

    fn opts(p: &Push) -> Vec<String> {
        p.args[1..]
            .iter()
            .map(|a| String::from_utf8(a.clone()).unwrap())
            .collect()
    }

    #[test]
    fn a_minimal_job_gets_faktorys_defaults() {
        let p = push(r#"{"jid":"0123456789ab","jobtype":"Add","args":[1,2]}"#).unwrap();
        assert_eq!(p.queue, "default");
        assert_eq!(p.jid, "0123456789ab");
        assert_eq!(opts(&p), ["ID", "0123456789ab", "RETRY", "25"]);
        let stored: Value = serde_json::from_slice(&p.args[0]).unwrap();
        assert_eq!(stored["created_at"], "2026-01-01T00:00:00.000Z");
        assert_eq!(stored["enqueued_at"], "2026-01-01T00:00:00.000Z");
        assert_eq!(stored["queue"], "default");
        assert_eq!(stored["retry"], 25);
        assert_eq!(stored["args"], json!([1, 2]));
    }

    #[test]
    fn fields_become_push_options() {
        let p = push(
            r#"{"jid":"abcdefgh","jobtype":"T","args":[],"queue":"crit","priority":9,
                "reserve_for":30,"retry":3,"at":"2026-01-01T00:01:00Z","created_at":"x",
                "custom":{"k":"v"}}"#,
        )
        .unwrap();
        assert_eq!(p.queue, "crit");
        assert_eq!(
            opts(&p),
            [
                "ID",
                "abcdefgh",
                "TIMEOUT",
                "60000",
                "PRIORITY",
                "9",
                "RETRY",
                "3",
                "AT",
                "1767225660000"
            ]
        );
        let stored: Value = serde_json::from_slice(&p.args[0]).unwrap();
        assert_eq!(stored["created_at"], "x");
        assert_eq!(stored["enqueued_at"], "2026-01-01T00:01:00.000Z");
        assert_eq!(stored["custom"]["k"], "v");
        // A time in the past runs now; negative retry goes straight to the dead set.
        let p = push(
            r#"{"jid":"abcdefgh","jobtype":"T","args":[],"at":"2020-01-01T00:00:00Z","retry":-1}"#,
        )
        .unwrap();
        assert_eq!(opts(&p), ["ID", "abcdefgh", "RETRY", "0"]);
    }

    #[test]
    fn invalid_jobs_get_faktorys_errors() {
        for (j, err) in [
            (
                r#"{"jobtype":"T","args":[]}"#,
                "jobs must have a reasonable jid parameter",
            ),
            (
                r#"{"jid":"short","jobtype":"T","args":[]}"#,
                "jobs must have a reasonable jid parameter",
            ),
            (
                r#"{"jid":"abcdefgh","args":[]}"#,
                "jobs must have a jobtype parameter",
            ),
            (
                r#"{"jid":"abcdefgh","jobtype":"T"}"#,
                "jobs must have an args parameter",
            ),
            (
                r#"{"jid":"abcdefgh","jobtype":"T","args":{}}"#,
                "jobs must have an args parameter",
            ),
            (
                r#"{"jid":"abcdefgh","jobtype":"T","args":[],"reserve_for":86401}"#,
                "jobs cannot be reserved for more than one day",
            ),
            (
                r#"{"jid":"abcdefgh","jobtype":"T","args":[],"at":"soon"}"#,
                "invalid timestamp for 'at': \"soon\"",
            ),
            (
                r#"{"jid":"abcdefgh","jobtype":"T","args":[],"priority":10}"#,
                "jobs must have a priority between 0 and 9",
            ),
            (
                r#"{"jid":"abcdefgh","jobtype":"T","args":[],"retry":"x"}"#,
                "jobs must have an integer retry parameter",
            ),
            (r#"[1]"#, "jobs must be JSON objects"),
        ] {
            assert_eq!(push(j).unwrap_err(), err, "{j}");
        }
        // The day itself is accepted.
        assert!(push(r#"{"jid":"abcdefgh","jobtype":"T","args":[],"reserve_for":86400}"#).is_ok());
    }

    #[test]
    fn fail_is_cleansed_as_faktory_does() {
        let long = "x".repeat(2000);
        let f = parse_fail(
            format!(
                r#"{{"jid":"j1","errtype":"  ","message":"{long}","backtrace":[{}]}}"#,
                vec!["\"l\""; 60].join(",")
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(f.errtype, "unknown");
        assert_eq!(f.message.len(), MAX_MESSAGE);
        assert_eq!(f.backtrace.len(), MAX_BACKTRACE);
        assert_eq!(parse_fail(b"{}").unwrap_err(), "missing JID");
        assert_eq!(parse_fail(b"nope").unwrap_err(), "invalid FAIL nope");
    }

    #[test]
    fn retry_delay_follows_the_sidekiq_formula() {
        assert_eq!(retry_delay_secs(0, 0), 15);
        assert_eq!(retry_delay_secs(0, 29), 44);
        assert_eq!(retry_delay_secs(3, 10), 81 + 15 + 40);
        assert_eq!(retry_delay_secs(24, 0), 331_776 + 15);
    }

    #[test]
    fn a_redelivered_job_carries_its_failure() {
        let f = Failure {
            jid: "j".into(),
            errtype: "RuntimeError".into(),
            message: "boom".into(),
            backtrace: vec!["a.rb:1".into()],
        };
        let err = f.to_error(NOW, Some(NOW + 15_000));
        let payload = br#"{"jid":"x","jobtype":"T","args":[],"retry":3}"#;
        let out: Value =
            serde_json::from_slice(&fetched("jid1", "q", payload, 2, Some(err.as_bytes())))
                .unwrap();
        assert_eq!(out["jid"], "jid1");
        assert_eq!(out["queue"], "q");
        assert_eq!(out["failure"]["errtype"], "RuntimeError");
        assert_eq!(out["failure"]["message"], "boom");
        assert_eq!(out["failure"]["retry_count"], 0);
        assert_eq!(out["failure"]["retry_remaining"], 2);
        assert_eq!(out["failure"]["next_at"], "2026-01-01T00:00:15.000Z");
        // A first delivery has no failure; a non-JSON payload is wrapped.
        let out: Value = serde_json::from_slice(&fetched("j", "q", b"raw", 1, None)).unwrap();
        assert_eq!(
            out,
            json!({"jid":"j","queue":"q","jobtype":"","args":["raw"]})
        );
        // A plain error (a visibility timeout, a RESP worker's FAIL) becomes the message.
        let out: Value =
            serde_json::from_slice(&fetched("j", "q", payload, 3, Some(b"timed out"))).unwrap();
        assert_eq!(out["failure"]["errtype"], "unknown");
        assert_eq!(out["failure"]["message"], "timed out");
        assert_eq!(out["failure"]["retry_count"], 1);
    }

    #[test]
    fn retry_of_reads_the_stored_policy() {
        assert_eq!(retry_of(br#"{"retry":0}"#), 0);
        assert_eq!(retry_of(br#"{"jid":"x"}"#), DEFAULT_RETRY);
        assert_eq!(retry_of(b"raw"), DEFAULT_RETRY);
    }
}
