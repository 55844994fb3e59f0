//! The firing pass of recurring jobs (`JOB.SCHEDULE`), run by the cron `hz` times a
//! second.
//!
//! For each schedule, `basalt_engine::schedule::due_ticks` says which ticks to push
//! (on time, or missed and kept by the schedule's `MISSED` policy). Each tick's job is
//! pushed by running `JOB.PUSH queue payload ID <name>:<tick> options...` through the
//! server's own command path, as an internal client (`SCHEDULER_CLIENT_ID`): the same
//! checks, effects, keyspace notifications and wake-ups of blocked fetchers as a
//! client's push. The jid is deterministic per (schedule, tick), and JOB.PUSH with the
//! jid of an existing job is a no-op, so firing a tick twice (a snapshot taken between
//! a push and the cursor's move, then a restart) pushes one job.
//!
//! Like other background work the pass takes the exec gate for reading (it never runs
//! inside a transaction or script) and, with the AOF on, its order lock: the pushes'
//! effects and the schedule's new progress (`JOB.SCHEDULE ADVANCE`) are appended as one
//! `MULTI`/`EXEC`, so a crash keeps both or neither. Nothing fires while the dataset
//! loads (the cron starts after), while writes are refused (a failed background save
//! with `stop-writes-on-bgsave-error`) or while clients are paused: the ticks wait, and
//! become missed ones if that lasts past the grace period.

use crate::error::Error;
use crate::server::{Client, Server};
use basalt_engine::schedule::{Progress, Spec, due_ticks, jid};
use basalt_proto::Frame;
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The client id of the firing pass's pushes (`CLIENT LIST` never shows it).
pub const SCHEDULER_CLIENT_ID: u64 = u64::MAX - 1;

/// Checks a schedule's template as `JOB.PUSH` checks a push (payload size, every
/// option); `ID` (the schedule chooses the jid) and `AT` (an absolute time, the same for
/// every job) are refused, and the longest jid the schedule can produce must fit
/// `job-max-id-bytes`.
pub fn check_template(srv: &Server, name: &[u8], spec: &Spec) -> Result<(), Error> {
    let mut args = vec![Bytes::copy_from_slice(&spec.payload)];
    args.extend(spec.options.iter().map(|o| Bytes::copy_from_slice(o)));
    let (id, at) = crate::families::jobs::check_template(srv, &args)?;
    for (named, word) in [(id, "ID"), (at, "AT")] {
        if named {
            return Err(Error::msg(format!(
                "ERR {word} is chosen by the schedule (not a TEMPLATE option)"
            )));
        }
    }
    let longest = jid(name, basalt_engine::schedule::MAX_TIME_MS).len() as u64;
    let max_id = srv.config.read().jobs.max_id;
    if longest > max_id {
        return Err(Error::msg(format!(
            "ERR schedule name too long: its jids (<name>:<tick>) would exceed job-max-id-bytes ({max_id})"
        )));
    }
    Ok(())
}

fn internal_client(db: usize) -> Client {
    let mut c = Client::new(Arc::new(crate::client::ClientShared::new(
        SCHEDULER_CLIENT_ID,
        String::new(),
        String::new(),
        -1,
        crate::server::unix_ms(),
    )));
    c.authenticated = true;
    c.db = db;
    c
}

/// The `JOB.PUSH` of one tick.
fn push_args(name: &[u8], spec: &Spec, tick: u64) -> Vec<Bytes> {
    let mut args = vec![
        Bytes::from_static(b"JOB.PUSH"),
        Bytes::copy_from_slice(&spec.queue),
        Bytes::copy_from_slice(&spec.payload),
        Bytes::from_static(b"ID"),
        Bytes::from(jid(name, tick)),
    ];
    args.extend(spec.options.iter().map(|o| Bytes::copy_from_slice(o)));
    args
}

fn advance_args(name: &[u8], p: &Progress) -> Vec<Bytes> {
    let mut v = vec![
        Bytes::from_static(b"JOB.SCHEDULE"),
        Bytes::from_static(b"ADVANCE"),
        Bytes::copy_from_slice(name),
    ];
    v.extend(p.to_args().into_iter().map(Bytes::from));
    v
}

/// One firing pass at `now` (Unix ms). Returns the number of jobs pushed.
pub fn fire_due(srv: &Server, now: u64) -> u64 {
    if srv.schedules.read().is_empty() {
        return 0;
    }
    if srv.persist.loading.load(Ordering::Acquire)
        || srv.persist.deny_writes.load(Ordering::Relaxed)
        || srv.pause_until.load(Ordering::Acquire) > now
    {
        return 0;
    }
    let Some(_gate) = srv.exec_gate.try_read() else {
        return 0;
    };
    let (grace, max_fires) = {
        let c = srv.config.read();
        (c.job_schedule_grace_ms, c.job_schedule_max_fires as usize)
    };
    let logging = srv.aof.is_on();
    // With the AOF on, no write command runs during the pass (they take this lock too):
    // the schedules read below are the ones the pass updates.
    let _order = logging.then(|| srv.aof.order.lock());
    let work: Vec<_> = srv
        .schedules
        .read()
        .due(now)
        .filter_map(|(name, generation, s)| {
            let due = due_ticks(
                &s.spec.trigger,
                s.progress.cursor,
                now,
                s.spec.missed,
                grace,
                max_fires,
            );
            (due.cursor != s.progress.cursor).then(|| {
                (
                    name.clone(),
                    generation,
                    s.db,
                    s.spec.clone(),
                    s.progress,
                    due,
                )
            })
        })
        .collect();
    let mut pushed = 0;
    for (name, generation, db, spec, mut p, due) in work {
        let mut client = internal_client(db);
        // Run as EXEC runs its queue: effects are collected, not appended one by one
        // (the order lock is held here already).
        client.in_exec = true;
        client.aof_exec = Some(Vec::new());
        let mut error = None;
        for &tick in &due.fire {
            let args = push_args(&name, &spec, tick);
            let reply = match srv.prepare(&client, &args) {
                Ok(resolved) => srv.call(&mut client, resolved, &args, now),
                Err(e) => e.into_frame(),
            };
            if let Frame::Error(e) = reply {
                let e = String::from_utf8_lossy(&e).into_owned();
                tracing::warn!(
                    "JOB.SCHEDULE {}: the push for tick {tick} failed: {e}",
                    String::from_utf8_lossy(&name)
                );
                p.errors += 1;
                error = Some(e);
            } else {
                p.fired += 1;
                p.last_fired = tick;
                pushed += 1;
            }
        }
        if due.skipped > 0 {
            tracing::warn!(
                "JOB.SCHEDULE {}: {} missed tick(s) skipped (MISSED {})",
                String::from_utf8_lossy(&name),
                due.skipped,
                spec.missed.name()
            );
        }
        p.cursor = due.cursor;
        p.skipped += due.skipped;
        let mut effects = client.aof_exec.take().unwrap_or_default();
        effects.push((db, advance_args(&name, &p)));
        if logging {
            srv.aof.append(&effects);
        }
        srv.schedules.write().advance(&name, generation, p, error);
        srv.persist.note_changes(1);
    }
    pushed
}
