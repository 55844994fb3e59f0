//! The byte form of a queue, inside its RDB module value (`basalt-jq`) and DUMP payload.
//!
//! Version byte, then LEB128 integers and length-prefixed byte strings: the
//! configuration, the rate limiter's words, the fence and sequence counters, and every
//! job with all its fields. The indexes are rebuilt on load. Decoding validates
//! everything (states against their fields, references between jobs, lengths against
//! the input left) and answers an error, never a panic, for any input.

use super::*;

const VERSION: u8 = 1;

/// Why bytes are not a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "basalt-jq: {}", self.0)
    }
}

fn bad<T>(what: &str) -> Result<T, DecodeError> {
    Err(DecodeError(what.to_string()))
}

struct W(Vec<u8>);

impl W {
    fn u(&mut self, mut v: u64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(b);
                return;
            }
            self.0.push(b | 0x80);
        }
    }
    fn b(&mut self, s: &[u8]) {
        self.u(s.len() as u64);
        self.0.extend_from_slice(s);
    }
    fn ob(&mut self, s: &Option<Box<[u8]>>) {
        match s {
            None => self.u(0),
            Some(s) => {
                self.u(1);
                self.b(s);
            }
        }
    }
}

struct R<'a>(&'a [u8]);

impl R<'_> {
    fn u(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some((&b, rest)) = self.0.split_first() else {
                return bad("truncated");
            };
            self.0 = rest;
            let part = u64::from(b & 0x7f);
            if i == 9 && part > 1 {
                return bad("integer overflow");
            }
            v |= part << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        bad("integer too long")
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        u32::try_from(self.u()?).or_else(|_| bad("value out of range"))
    }
    /// A count of items each taking at least one byte.
    fn count(&mut self) -> Result<usize, DecodeError> {
        let n = self.u()?;
        if n > self.0.len() as u64 {
            return bad("count beyond the input");
        }
        Ok(n as usize)
    }
    fn b(&mut self) -> Result<Box<[u8]>, DecodeError> {
        let n = self.u()?;
        if n > self.0.len() as u64 {
            return bad("string beyond the input");
        }
        let (s, rest) = self.0.split_at(n as usize);
        self.0 = rest;
        Ok(s.into())
    }
    fn ob(&mut self) -> Result<Option<Box<[u8]>>, DecodeError> {
        match self.u()? {
            0 => Ok(None),
            1 => Ok(Some(self.b()?)),
            _ => bad("bad option flag"),
        }
    }
}

impl QueueValue {
    /// The queue's byte form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = W(vec![VERSION]);
        let c = &self.config;
        w.u(u64::from(c.concurrency));
        w.u(u64::from(c.group_concurrency));
        w.u(u64::from(c.paused));
        w.u(c.retention_done.count);
        w.u(c.retention_done.age);
        w.u(c.retention_dead.count);
        w.u(c.retention_dead.age);
        w.u(u64::from(c.max_errors));
        w.ob(&c.dlq);
        match &self.rate {
            None => w.u(0),
            Some(rl) => {
                let words = rl.to_words();
                w.u(1 + words.len() as u64);
                for x in words {
                    w.u(x as u64);
                }
            }
        }
        w.u(self.fence);
        w.u(self.next_seq);
        w.u(self.jobs.len() as u64);
        for (seq, j) in &self.jobs {
            w.u(*seq);
            w.b(&j.jid);
            w.b(&j.payload);
            w.u(u64::from(j.state.code()));
            w.u(u64::from(j.priority));
            w.u(u64::from(j.retry));
            match j.backoff {
                Backoff::Fixed(ms) => {
                    w.u(0);
                    w.u(ms);
                }
                Backoff::Exp { base, max, jitter } => {
                    w.u(1);
                    w.u(base);
                    w.u(max);
                    w.u(jitter.to_bits());
                }
            }
            w.u(j.timeout);
            w.u(j.expires);
            match &j.unique {
                None => w.u(0),
                Some((k, until)) => {
                    w.u(1);
                    w.b(k);
                    w.u(*until);
                }
            }
            w.ob(&j.group);
            w.u(j.tags.len() as u64);
            for t in &j.tags {
                w.b(t);
            }
            w.u(j.pending.len() as u64);
            for p in &j.pending {
                w.u(*p);
            }
            w.u(j.children.len() as u64);
            for c in &j.children {
                w.u(*c);
            }
            for v in [
                j.created, j.run_at, j.retry_at, j.started, j.finished, j.deadline, j.fence,
            ] {
                w.u(v);
            }
            w.u(u64::from(j.attempts));
            w.u(u64::from(j.failures));
            w.b(&j.token);
            w.ob(&j.worker);
            w.u(u64::from(j.progress));
            w.ob(&j.progress_msg);
            w.ob(&j.result);
            w.ob(&j.idem);
            w.u(j.errors.len() as u64);
            for e in &j.errors {
                w.b(e);
            }
        }
        w.0
    }

    /// A queue from its byte form; an error for anything that is not one.
    pub fn from_bytes(bytes: &[u8]) -> Result<QueueValue, DecodeError> {
        let Some((&v, rest)) = bytes.split_first() else {
            return bad("empty");
        };
        if v != VERSION {
            return bad("unknown version");
        }
        let mut r = R(rest);
        let concurrency = r.u32()?;
        let group_concurrency = r.u32()?;
        let paused = match r.u()? {
            0 => false,
            1 => true,
            _ => return bad("bad paused flag"),
        };
        let retention_done = Retention {
            count: r.u()?,
            age: r.u()?,
        };
        let retention_dead = Retention {
            count: r.u()?,
            age: r.u()?,
        };
        let max_errors = r.u32()?;
        let dlq = r.ob()?;
        let mut q = QueueValue::new(QueueConfig {
            dlq,
            concurrency,
            group_concurrency,
            paused,
            retention_done,
            retention_dead,
            max_errors,
        });
        match r.count()? {
            0 => {}
            n => {
                let mut words = Vec::with_capacity(n - 1);
                for _ in 1..n {
                    words.push(r.u()? as i64);
                }
                q.rate = Some(
                    RateLimit::from_words(&words)
                        .ok_or(DecodeError("invalid rate limit".into()))?,
                );
            }
        }
        q.fence = r.u()?;
        q.next_seq = r.u()?;
        let n = r.count()?;
        let mut jobs: Vec<(u64, Job)> = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            let seq = r.u()?;
            if seq == 0 || seq >= q.next_seq {
                return bad("job sequence out of range");
            }
            let jid = r.b()?;
            let payload = r.b()?;
            let state = State::from_code(r.u()?).ok_or(DecodeError("bad state".into()))?;
            let priority = r.u()?;
            if priority > u64::from(MAX_PRIORITY) {
                return bad("bad priority");
            }
            let retry = r.u32()?;
            let backoff = match r.u()? {
                0 => Backoff::Fixed(r.u()?),
                1 => {
                    let base = r.u()?;
                    let max = r.u()?;
                    let jitter = f64::from_bits(r.u()?);
                    if !(0.0..=1.0).contains(&jitter) || base > max {
                        return bad("bad backoff");
                    }
                    Backoff::Exp { base, max, jitter }
                }
                _ => return bad("bad backoff kind"),
            };
            let timeout = r.u()?;
            let expires = r.u()?;
            let unique = match r.u()? {
                0 => None,
                1 => Some((r.b()?, r.u()?)),
                _ => return bad("bad unique flag"),
            };
            let group = r.ob()?;
            let mut tags = Vec::new();
            for _ in 0..r.count()? {
                tags.push(r.b()?);
            }
            let mut pending = Vec::new();
            for _ in 0..r.count()? {
                pending.push(r.u()?);
            }
            let mut children = Vec::new();
            for _ in 0..r.count()? {
                children.push(r.u()?);
            }
            let mut t = [0u64; 7];
            for x in t.iter_mut() {
                *x = r.u()?;
            }
            let [
                created,
                run_at,
                retry_at,
                started,
                finished,
                deadline,
                fence,
            ] = t;
            let attempts = r.u32()?;
            let failures = r.u32()?;
            let token = r.b()?;
            let worker = r.ob()?;
            let progress = r.u()?;
            if progress > 100 {
                return bad("bad progress");
            }
            let progress_msg = r.ob()?;
            let result = r.ob()?;
            let idem = r.ob()?;
            let mut errors = VecDeque::new();
            for _ in 0..r.count()? {
                errors.push_back(r.b()?);
            }
            // The fields each state relies on.
            let active = state == State::Active;
            if active != (deadline != 0) || active == token.is_empty() || fence > q.fence {
                return bad("inconsistent claim");
            }
            if (state == State::Failed) != (retry_at != 0)
                || state.is_finished() != (finished != 0)
                || (state == State::Waiting && !pending.is_empty())
            {
                return bad("inconsistent job state");
            }
            jobs.push((
                seq,
                Job {
                    jid,
                    payload,
                    state,
                    priority: priority as u8,
                    retry,
                    backoff,
                    timeout,
                    expires,
                    unique,
                    group,
                    tags,
                    pending,
                    children,
                    created,
                    run_at,
                    retry_at,
                    attempts,
                    failures,
                    started,
                    finished,
                    deadline,
                    fence,
                    token,
                    worker,
                    progress: progress as u8,
                    progress_msg,
                    result,
                    idem,
                    errors,
                },
            ));
        }
        if !r.0.is_empty() {
            return bad("trailing bytes");
        }
        let seqs: std::collections::HashSet<u64> = jobs.iter().map(|(s, _)| *s).collect();
        if seqs.len() != jobs.len() {
            return bad("duplicate job sequence");
        }
        for (_, j) in &jobs {
            if j.pending
                .iter()
                .chain(&j.children)
                .any(|s| !seqs.contains(s))
            {
                return bad("dangling job reference");
            }
        }
        for (seq, j) in jobs {
            if q.jids.contains_key(&j.jid) {
                return bad("duplicate jid");
            }
            if !j.state.is_finished()
                && let Some((k, _)) = &j.unique
            {
                q.uniques.insert(k.clone(), seq);
            }
            q.insert_job(seq, j);
        }
        q.check().map_err(DecodeError)?;
        Ok(q)
    }
}
