//! The Faktory verbs, each translated into Basalt commands run through the connection's
//! [`Session`]. Replies and error texts are Faktory's (`+OK`, a bulk JSON document,
//! `$-1`, `-ERR message`); errors of the job engine (`STALE ...`, `ERR ...`) pass through
//! as they are.

use super::conn::Session;
use super::job::{self, Failure};
use super::{Claim, time};
use crate::server::unix_ms;
use basalt_proto::Frame;
use bytes::Bytes;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How long FETCH waits for a job, as Faktory's server (2 s).
pub const FETCH_BLOCK_MS: u64 = 2000;
/// Jobs per `JOB.PUSHB` when PUSHB sends a batch (well below `job-max-pushb`'s default).
const PUSHB_CHUNK: usize = 100;

fn err(msg: impl Into<String>) -> Frame {
    Frame::error(msg.into())
}

fn ok() -> Frame {
    Frame::Simple(Bytes::from_static(b"OK"))
}

fn cmd(parts: &[&[u8]]) -> Vec<Bytes> {
    parts.iter().map(|p| Bytes::copy_from_slice(p)).collect()
}

/// Runs one Faktory command line (`verb` and the rest after the first space). `None`
/// when the connection must close.
pub async fn dispatch(s: &mut Session<'_>, verb: &[u8], rest: &Bytes) -> Option<Frame> {
    match verb {
        b"PUSH" => push(s, rest).await,
        b"PUSHB" => pushb(s, rest).await,
        b"FETCH" => fetch(s, rest).await,
        b"ACK" => ack(s, rest).await,
        b"FAIL" => fail(s, rest).await,
        b"BEAT" => beat(s, rest).await,
        b"INFO" => info(s).await,
        b"FLUSH" => flush(s).await,
        b"QUEUE" => queue(s, rest).await,
        b"HELLO" => Some(err("ERR HELLO was already received")),
        b"MUTATE" | b"BATCH" | b"TRACK" => Some(err(format!(
            "ERR {} is not supported by Basalt",
            String::from_utf8_lossy(verb)
        ))),
        _ => Some(err(format!(
            "ERR unknown command {}",
            String::from_utf8_lossy(verb)
        ))),
    }
}

/// The fields of a reply map (a RESP3 map, or RESP2's flat array of pairs).
fn fields(frame: &Frame) -> Vec<(&[u8], &Frame)> {
    match frame {
        Frame::Map(pairs) => pairs
            .iter()
            .filter_map(|(k, v)| bulk(k).map(|k| (k, v)))
            .collect(),
        Frame::Array(items) => items
            .chunks(2)
            .filter_map(|p| match p {
                [k, v] => bulk(k).map(|k| (k, v)),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn field<'a>(fields: &[(&[u8], &'a Frame)], name: &str) -> Option<&'a Frame> {
    fields
        .iter()
        .find(|(k, _)| *k == name.as_bytes())
        .map(|(_, v)| *v)
}

fn bulk(f: &Frame) -> Option<&[u8]> {
    match f {
        Frame::Bulk(b) | Frame::Simple(b) => Some(b),
        Frame::Verbatim { text, .. } => Some(text),
        _ => None,
    }
}

fn int(f: Option<&Frame>) -> Option<i64> {
    match f? {
        Frame::Integer(i) => Some(*i),
        other => std::str::from_utf8(bulk(other)?).ok()?.parse().ok(),
    }
}

fn text(f: Option<&Frame>) -> String {
    f.and_then(bulk)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

/// PUSH {job}: validate as Faktory does, then `JOB.PUSH`.
async fn push(s: &mut Session<'_>, rest: &Bytes) -> Option<Frame> {
    let value: Value = match serde_json::from_slice(rest) {
        Ok(v) => v,
        Err(e) => return Some(err(format!("ERR invalid JSON: {e}"))),
    };
    let p = match job::push_from(value, unix_ms()) {
        Ok(p) => p,
        Err(e) => return Some(err(format!("ERR {e}"))),
    };
    let mut args = cmd(&[b"JOB.PUSH", p.queue.as_bytes()]);
    args.extend(p.args.into_iter().map(Bytes::from));
    Some(match s.run(args).await? {
        Frame::Error(e) => Frame::Error(e),
        _ => ok(),
    })
}

/// PUSHB [{job}, ...]: one `JOB.PUSHB` per queue (in chunks); answers `{}` or a map of
/// jid to error for the jobs that were not pushed.
async fn pushb(s: &mut Session<'_>, rest: &Bytes) -> Option<Frame> {
    let jobs: Vec<Value> = match serde_json::from_slice(rest) {
        Ok(Value::Array(v)) => v,
        Ok(_) => return Some(err("ERR invalid JSON: expected an array of jobs")),
        Err(e) => return Some(err(format!("ERR invalid JSON: {e}"))),
    };
    let now = unix_ms();
    let mut errors: Map<String, Value> = Map::new();
    // Queue -> its valid pushes, in order.
    let mut by_queue: BTreeMap<String, Vec<job::Push>> = BTreeMap::new();
    for value in jobs {
        let jid = value
            .get("jid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        match job::push_from(value, now) {
            Ok(p) => by_queue.entry(p.queue.clone()).or_default().push(p),
            Err(e) => {
                errors.insert(jid, Value::String(e));
            }
        }
    }
    for (queue, pushes) in by_queue {
        for chunk in pushes.chunks(PUSHB_CHUNK) {
            let mut args = cmd(&[b"JOB.PUSHB", queue.as_bytes()]);
            for p in chunk {
                args.push(Bytes::from(p.args.len().to_string()));
                args.extend(p.args.iter().cloned().map(Bytes::from));
            }
            match s.run(args).await? {
                Frame::Array(replies) => {
                    for (p, r) in chunk.iter().zip(replies) {
                        if let Frame::Error(e) = r {
                            errors.insert(
                                p.jid.clone(),
                                Value::String(String::from_utf8_lossy(&e).into_owned()),
                            );
                        }
                    }
                }
                Frame::Error(e) => {
                    let e = String::from_utf8_lossy(&e).into_owned();
                    for p in chunk {
                        errors.insert(p.jid.clone(), Value::String(e.clone()));
                    }
                }
                _ => {}
            }
        }
    }
    Some(Frame::Bulk(Bytes::from(Value::Object(errors).to_string())))
}

/// FETCH [queue ...]: the queues in the order given (Faktory's strict order), then a
/// wait of up to 2 s on all of them. `$-1` when nothing came.
async fn fetch(s: &mut Session<'_>, rest: &Bytes) -> Option<Frame> {
    if !s.wid.is_empty() && s.state.is_quiet(&s.wid) {
        // A quiet or terminating worker gets no work; Faktory answers after its 2 s wait
        // so such a worker does not spin.
        tokio::time::sleep(Duration::from_millis(FETCH_BLOCK_MS)).await;
        return Some(Frame::Null);
    }
    let mut queues: Vec<Bytes> = rest
        .split(|&b| b == b' ')
        .filter(|q| !q.is_empty())
        .map(Bytes::copy_from_slice)
        .collect();
    if queues.is_empty() {
        queues.push(Bytes::from_static(b"default"));
    }
    let worker: Vec<Bytes> = if s.wid.is_empty() {
        Vec::new()
    } else {
        vec![Bytes::from_static(b"WORKER"), Bytes::from(s.wid.clone())]
    };
    if queues.len() > 1 {
        for q in &queues {
            let mut args = vec![Bytes::from_static(b"JOB.FETCH"), q.clone()];
            args.extend(worker.iter().cloned());
            let reply = s.run(args).await?;
            if let Some(job) = deliver(s, &reply) {
                return Some(job);
            }
        }
    }
    let mut args = vec![Bytes::from_static(b"JOB.FETCH")];
    args.extend(queues);
    args.push(Bytes::from_static(b"BLOCK"));
    args.push(Bytes::from(FETCH_BLOCK_MS.to_string()));
    args.extend(worker);
    let started = std::time::Instant::now();
    let reply = s.run(args).await?;
    if let Some(job) = deliver(s, &reply) {
        return Some(job);
    }
    // Nothing at once means the engine refused this worker (quieted by `WORKER.QUIET`
    // before its next BEAT told us): wait out the 2 s as Faktory does, so it does not spin.
    let waited = started.elapsed();
    let block = Duration::from_millis(FETCH_BLOCK_MS);
    if waited < block {
        tokio::time::sleep(block - waited).await;
    }
    Some(Frame::Null)
}

/// Turns a `JOB.FETCH` reply into the Faktory job to send (recording its claim), or
/// `None` when it holds no job. Errors pass through.
fn deliver(s: &Session<'_>, reply: &Frame) -> Option<Frame> {
    let first = match reply {
        Frame::Array(jobs) => jobs.first()?,
        Frame::Error(_) => return Some(reply.clone()),
        _ => return None,
    };
    let f = fields(first);
    let jid = text(field(&f, "jid"));
    let queue = text(field(&f, "queue"));
    let payload = field(&f, "payload").and_then(bulk).unwrap_or_default();
    let attempt = int(field(&f, "attempt")).unwrap_or(1);
    let error = field(&f, "error").and_then(bulk);
    let token = field(&f, "token").and_then(bulk).unwrap_or_default();
    let claim = Claim {
        token: Bytes::copy_from_slice(token),
        attempt,
        deadline: int(field(&f, "deadline")).unwrap_or(0).max(0) as u64,
        retry: job::retry_of(payload),
    };
    let body = job::fetched(&jid, &queue, payload, attempt, error);
    s.state.put_claim(jid, claim, unix_ms());
    Some(Frame::Bulk(Bytes::from(body)))
}

/// The jid of an ACK/BEAT-style single-field JSON hash.
fn jid_of(rest: &[u8], key: &str) -> Option<String> {
    let v: Value = serde_json::from_slice(rest).ok()?;
    Some(v.get(key)?.as_str()?.to_string())
}

/// What to answer for a jid with no claim recorded here (never fetched through this
/// listener, fetched before a restart, or already acknowledged): Faktory answers OK
/// for a job it does not know, so unknown and finished jobs are OK.
async fn unclaimed(s: &mut Session<'_>, jid: &str, verb: &str) -> Option<Frame> {
    let reply = s.run(cmd(&[b"JOB.GET", jid.as_bytes()])).await?;
    let f = fields(&reply);
    let state = text(field(&f, "state"));
    Some(match state.as_str() {
        "" if verb == "FAIL" => err(format!("ERR Job not found {jid}")),
        "" | "completed" | "dead" | "cancelled" => ok(),
        _ => err(format!(
            "ERR no claim of job {jid} is known to this server (fetched before a restart?); \
             it is delivered again when its reservation ends"
        )),
    })
}

/// ACK {"jid": ...}: `JOB.ACK` with the claim FETCH recorded.
async fn ack(s: &mut Session<'_>, rest: &Bytes) -> Option<Frame> {
    let Some(jid) = jid_of(rest, "jid") else {
        return Some(err(format!(
            "ERR invalid ACK {}",
            String::from_utf8_lossy(rest)
        )));
    };
    let Some(claim) = s.state.take_claim(&jid) else {
        return unclaimed(s, &jid, "ACK").await;
    };
    let args = vec![
        Bytes::from_static(b"JOB.ACK"),
        Bytes::from(jid.clone()),
        claim.token,
    ];
    Some(match s.run(args).await? {
        Frame::Error(e) if e.starts_with(b"ERR no such job") => ok(),
        Frame::Error(e) => Frame::Error(e),
        _ => {
            s.state.processed.fetch_add(1, Ordering::Relaxed);
            ok()
        }
    })
}

/// FAIL {"jid", "errtype", "message", "backtrace"}: `JOB.FAIL` with Faktory's backoff
/// as `RETRY_IN` (or the job's own backoff with `faktory-retry-backoff job`); the engine
/// counts the retries and dead-letters the job when they are used up. A job pushed with
/// `retry: 0` is discarded (`JOB.CANCEL`), as Faktory does.
async fn fail(s: &mut Session<'_>, rest: &Bytes) -> Option<Frame> {
    let failure: Failure = match job::parse_fail(rest) {
        Ok(f) => f,
        Err(e) => return Some(err(format!("ERR {e}"))),
    };
    let Some(claim) = s.state.take_claim(&failure.jid) else {
        return unclaimed(s, &failure.jid, "FAIL").await;
    };
    s.state.failures.fetch_add(1, Ordering::Relaxed);
    let jid = Bytes::from(failure.jid.clone());
    if claim.retry == 0 {
        let reply = s.run(vec![Bytes::from_static(b"JOB.CANCEL"), jid]).await?;
        return Some(match reply {
            Frame::Error(e) => Frame::Error(e),
            _ => ok(),
        });
    }
    let now = unix_ms();
    let job_backoff = s.srv.config.read().faktory.retry_backoff_job;
    let mut args = vec![Bytes::from_static(b"JOB.FAIL"), jid, claim.token];
    if job_backoff {
        // The engine applies the job's BACKOFF; `next_at` is in its reply, not known here.
        args.push(Bytes::from(failure.to_error(now, None)));
    } else {
        let count = (claim.attempt - 1).max(0) as u64;
        let mut rng = crate::rand::command_rng();
        let delay_ms = job::retry_delay_secs(count, rng() % 30) * 1000;
        args.push(Bytes::from(failure.to_error(now, Some(now + delay_ms))));
        args.push(Bytes::from_static(b"RETRY_IN"));
        args.push(Bytes::from(delay_ms.to_string()));
    }
    Some(match s.run(args).await? {
        Frame::Error(e) => Frame::Error(e),
        _ => ok(),
    })
}

/// BEAT {"wid": ...}: `WORKER.BEAT`; `+OK`, or `{"state":"quiet"|"terminate"}`.
async fn beat(s: &mut Session<'_>, rest: &Bytes) -> Option<Frame> {
    let Some(wid) = jid_of(rest, "wid").filter(|w| !w.is_empty()) else {
        return Some(err(format!(
            "ERR invalid BEAT {}",
            String::from_utf8_lossy(rest)
        )));
    };
    let reply = s.run(cmd(&[b"WORKER.BEAT", wid.as_bytes()])).await?;
    let state = match &reply {
        Frame::Error(_) => return Some(reply),
        other => text(Some(other)).to_ascii_lowercase(),
    };
    if let Some(w) = s.state.workers.lock().get_mut(&wid) {
        w.state = state.clone();
    }
    Some(match state.as_str() {
        "quiet" | "terminate" => Frame::Bulk(Bytes::from(json!({ "state": state }).to_string())),
        _ => ok(),
    })
}

/// The queue keys of database 0 (`QUEUE.LIST`).
async fn queue_names(s: &mut Session<'_>) -> Option<Result<Vec<Bytes>, Frame>> {
    Some(match s.run(cmd(&[b"QUEUE.LIST"])).await? {
        Frame::Array(names) => Ok(names
            .iter()
            .filter_map(|n| bulk(n).map(Bytes::copy_from_slice))
            .collect()),
        Frame::Error(e) => Err(Frame::Error(e)),
        _ => Ok(Vec::new()),
    })
}

/// INFO: Faktory's server state document, from `QUEUE.LIST`/`QUEUE.STATS`.
async fn info(s: &mut Session<'_>) -> Option<Frame> {
    let names = match queue_names(s).await? {
        Ok(n) => n,
        Err(e) => return Some(e),
    };
    let mut queues = Map::new();
    let mut total = 0i64;
    for name in &names {
        let reply = s
            .run(vec![Bytes::from_static(b"QUEUE.STATS"), name.clone()])
            .await?;
        let f = fields(&reply);
        let waiting = int(field(&f, "waiting")).unwrap_or(0);
        total += waiting;
        queues.insert(
            String::from_utf8_lossy(name).into_owned(),
            Value::from(waiting),
        );
    }
    let now = unix_ms();
    let secs = now / 1000 % 86_400;
    let doc = json!({
        "now": time::format_ms(now),
        "server_utc_time": format!("{:02}:{:02}:{:02} UTC", secs / 3600, secs / 60 % 60, secs % 60),
        "faktory": {
            "total_failures": s.state.failures.load(Ordering::Relaxed),
            "total_processed": s.state.processed.load(Ordering::Relaxed),
            "total_enqueued": total,
            "total_queues": names.len(),
            "queues": queues,
            "tasks": {},
        },
        "server": {
            "description": "Basalt",
            "faktory_version": env!("CARGO_PKG_VERSION"),
            "uptime": s.srv.started.elapsed().as_secs(),
            "connections": s.state.connections.load(Ordering::Relaxed),
            "command_count": s.state.commands.load(Ordering::Relaxed),
            "used_memory_mb": crate::alloc::allocated() / (1024 * 1024),
        },
    });
    Some(Frame::Bulk(Bytes::from(doc.to_string())))
}

/// FLUSH: deletes every queue of database 0 (with its jobs and event stream). Other
/// keys are not touched (Faktory flushes a Redis that holds only its own data).
async fn flush(s: &mut Session<'_>) -> Option<Frame> {
    let names = match queue_names(s).await? {
        Ok(n) => n,
        Err(e) => return Some(e),
    };
    if !names.is_empty() {
        let mut args = vec![Bytes::from_static(b"DEL")];
        for n in names {
            let mut events = b"{".to_vec();
            events.extend_from_slice(&n);
            events.extend_from_slice(b"}:events");
            args.push(n);
            args.push(Bytes::from(events));
        }
        if let Frame::Error(e) = s.run(args).await? {
            return Some(Frame::Error(e));
        }
    }
    s.state.claims.lock().clear();
    Some(ok())
}

/// QUEUE PAUSE|RESUME|REMOVE name... | *: `QUEUE.PAUSE`, `QUEUE.RESUME`, `QUEUE.DRAIN`
/// (REMOVE empties the queue of its pending jobs, as Faktory's). Missing queues are
/// skipped, as Faktory does.
async fn queue(s: &mut Session<'_>, rest: &Bytes) -> Option<Frame> {
    let mut words = rest.split(|&b| b == b' ').filter(|w| !w.is_empty());
    let sub: &[u8] = match words.next() {
        Some(w) => w,
        None => {
            return Some(err(
                "ERR QUEUE needs PAUSE, RESUME or REMOVE and queue names",
            ));
        }
    };
    let command: &'static [u8] = match sub {
        b"PAUSE" => b"QUEUE.PAUSE",
        b"RESUME" => b"QUEUE.RESUME",
        b"REMOVE" => b"QUEUE.DRAIN",
        other => {
            return Some(err(format!(
                "ERR unknown QUEUE subcommand {}",
                String::from_utf8_lossy(other)
            )));
        }
    };
    let named: Vec<Bytes> = words.map(Bytes::copy_from_slice).collect();
    if named.is_empty() {
        return Some(err(
            "ERR QUEUE needs PAUSE, RESUME or REMOVE and queue names",
        ));
    }
    let names = if named.iter().any(|n| n.as_ref() == b"*") {
        match queue_names(s).await? {
            Ok(n) => n,
            Err(e) => return Some(e),
        }
    } else {
        named
    };
    for name in names {
        match s.run(vec![Bytes::from_static(command), name]).await? {
            Frame::Error(e) if e.starts_with(b"ERR no such queue") => {}
            Frame::Error(e) => return Some(Frame::Error(e)),
            _ => {}
        }
    }
    Some(ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_read_maps_and_flat_arrays() {
        let map = Frame::Map(vec![
            (
                Frame::Bulk(Bytes::from_static(b"jid")),
                Frame::Bulk(Bytes::from_static(b"j1")),
            ),
            (
                Frame::Bulk(Bytes::from_static(b"attempt")),
                Frame::Integer(2),
            ),
        ]);
        let f = fields(&map);
        assert_eq!(text(field(&f, "jid")), "j1");
        assert_eq!(int(field(&f, "attempt")), Some(2));
        let flat = Frame::Array(vec![
            Frame::Bulk(Bytes::from_static(b"deadline")),
            Frame::Bulk(Bytes::from_static(b"17")),
        ]);
        let f = fields(&flat);
        assert_eq!(int(field(&f, "deadline")), Some(17));
        assert_eq!(field(&f, "missing"), None);
    }

    #[test]
    fn jid_of_reads_one_string_field() {
        assert_eq!(jid_of(br#"{"jid":"abc"}"#, "jid").as_deref(), Some("abc"));
        assert_eq!(jid_of(br#"{"jid":1}"#, "jid"), None);
        assert_eq!(jid_of(b"{", "jid"), None);
    }
}
