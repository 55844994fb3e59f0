//! Job queues (`docs/jobs.md`): a queue is one keyspace value holding its jobs in every
//! state, its configuration, its dead-letter set and its fence counter.
//!
//! This module only decides; it never reads a clock or draws randomness: every method
//! takes `now` (Unix ms), and the random parts (a claim token, a jitter draw, a generated
//! jid) come from the caller. Time-driven transitions (a delay or retry falling due, a
//! visibility timeout, EXPIRES, retention by age) are computed from stored absolute
//! deadlines by [`QueueValue::advance`], which every operation runs first. Because the
//! transitions are processed in deadline order and depend only on stored times, the
//! state after `advance(t2)` is the same whether or not `advance(t1)` ran before it
//! (t1 ≤ t2): a read that advances the queue needs no log entry, and the AOF replay of
//! the logged operations, each with the time it ran at, rebuilds the same queue.
//!
//! Jobs are stored by a per-queue sequence number (push order); the indexes hold
//! sequence numbers: `ready` (waiting jobs by priority, then the time they became
//! runnable, then push order), `timers` (each job's next time-driven transition),
//! `done` and `dead` (finished jobs by finish time, for retention and the DLQ).

mod codec;

use crate::rl::{Mode, RateLimit, Spec};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

pub use codec::DecodeError;

/// Highest priority (`PRIORITY 0..=9`, higher first; Faktory's scale).
pub const MAX_PRIORITY: u8 = 9;
/// Default priority.
pub const DEFAULT_PRIORITY: u8 = 5;
/// Error message recorded for a visibility timeout.
pub const TIMEOUT_ERROR: &[u8] = b"visibility timeout";
/// Error message recorded for a job cancelled by its EXPIRES.
pub const EXPIRED_ERROR: &[u8] = b"expired";

/// A job's state (`docs/jobs.md`, "Job states and transitions").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Not runnable yet (a future time or unfinished parents).
    Scheduled,
    /// Runnable.
    Waiting,
    /// Claimed by a worker.
    Active,
    /// Failed; runs again at `retry_at`.
    Failed,
    /// Acknowledged.
    Completed,
    /// Failed for good.
    Dead,
    /// Cancelled (JOB.CANCEL, EXPIRES, a dead parent).
    Cancelled,
}

impl State {
    /// The name replies use.
    pub fn name(self) -> &'static str {
        match self {
            State::Scheduled => "scheduled",
            State::Waiting => "waiting",
            State::Active => "active",
            State::Failed => "failed",
            State::Completed => "completed",
            State::Dead => "dead",
            State::Cancelled => "cancelled",
        }
    }

    /// Completed, dead or cancelled.
    pub fn is_finished(self) -> bool {
        matches!(self, State::Completed | State::Dead | State::Cancelled)
    }

    fn code(self) -> u8 {
        self as u8
    }

    fn from_code(c: u64) -> Option<State> {
        Some(match c {
            0 => State::Scheduled,
            1 => State::Waiting,
            2 => State::Active,
            3 => State::Failed,
            4 => State::Completed,
            5 => State::Dead,
            6 => State::Cancelled,
            _ => return None,
        })
    }
}

/// How long to wait before a retry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Backoff {
    /// The same delay before every retry.
    Fixed(u64),
    /// `min(max, base × 2^(k−1))` before retry `k`, minus a random part of up to
    /// `jitter` of it.
    Exp {
        /// First delay (ms).
        base: u64,
        /// Largest delay (ms).
        max: u64,
        /// Fraction 0.0..=1.0 of the delay that may be taken off at random.
        jitter: f64,
    },
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::Exp {
            base: 1000,
            max: 3_600_000,
            jitter: 0.0,
        }
    }
}

impl Backoff {
    /// The delay before retry number `k` (1 for the first retry), given a uniform draw
    /// `r` in `[0, 1)` for the jitter: within `[d − floor(d × jitter), d]`.
    pub fn delay(&self, k: u32, r: f64) -> u64 {
        match *self {
            Backoff::Fixed(ms) => ms,
            Backoff::Exp { base, max, jitter } => {
                let shift = k.saturating_sub(1).min(63);
                let d = base.checked_shl(shift).filter(|v| v >> shift == base);
                let d = d.map_or(max, |d| d.min(max));
                let span = (d as f64 * jitter).floor() as u64;
                let r = r.clamp(0.0, 1.0);
                let off = ((span as f64) * r).floor() as u64;
                d - off.min(span).min(d)
            }
        }
    }
}

/// One job.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Job id.
    pub jid: Box<[u8]>,
    /// Opaque payload.
    pub payload: Box<[u8]>,
    /// Current state.
    pub state: State,
    /// 0..=9, higher first.
    pub priority: u8,
    /// Retries allowed after the first failed attempt.
    pub retry: u32,
    /// Delay before retries.
    pub backoff: Backoff,
    /// Visibility timeout of each delivery (ms).
    pub timeout: u64,
    /// Cancel if not delivered by then (Unix ms; 0: never).
    pub expires: u64,
    /// Unique key and the end of its window (Unix ms).
    pub unique: Option<(Box<[u8]>, u64)>,
    /// Group (GROUP_CONCURRENCY).
    pub group: Option<Box<[u8]>>,
    /// Labels.
    pub tags: Vec<Box<[u8]>>,
    /// Parents (sequence numbers in this queue) not completed yet.
    pub pending: Vec<u64>,
    /// Children waiting for this job.
    pub children: Vec<u64>,
    /// Push time.
    pub created: u64,
    /// When it becomes (or became) runnable.
    pub run_at: u64,
    /// When a failed job runs again (0: not failed).
    pub retry_at: u64,
    /// Deliveries so far.
    pub attempts: u32,
    /// Failed attempts so far (FAIL and visibility timeouts).
    pub failures: u32,
    /// Last delivery time (0: never).
    pub started: u64,
    /// Finish time (0: not finished).
    pub finished: u64,
    /// The active claim's visibility deadline (0: not active).
    pub deadline: u64,
    /// The current or last claim's fence (0: never claimed).
    pub fence: u64,
    /// The current claim's token (empty when not active).
    pub token: Box<[u8]>,
    /// The current or last claim's worker.
    pub worker: Option<Box<[u8]>>,
    /// 0..=100.
    pub progress: u8,
    /// Progress message.
    pub progress_msg: Option<Box<[u8]>>,
    /// ACK's result.
    pub result: Option<Box<[u8]>>,
    /// ACK's idempotency key.
    pub idem: Option<Box<[u8]>>,
    /// Last failure messages, oldest first.
    pub errors: VecDeque<Box<[u8]>>,
}

fn opt_len(b: &Option<Box<[u8]>>) -> usize {
    b.as_ref().map_or(0, |b| alloc(b.len()))
}

fn alloc(n: usize) -> usize {
    crate::memory::alloc_size(n)
}

impl Job {
    /// Heap bytes the job holds as the allocator rounds them (its node included).
    pub fn heap_size(&self) -> usize {
        alloc(std::mem::size_of::<Job>() + 64)
            + alloc(self.jid.len()) * 2
            + alloc(self.payload.len())
            + self.unique.as_ref().map_or(0, |(k, _)| alloc(k.len()))
            + opt_len(&self.group)
            + self.tags.iter().map(|t| alloc(t.len()) + 16).sum::<usize>()
            + alloc(self.pending.len() * 8)
            + alloc(self.children.len() * 8)
            + alloc(self.token.len())
            + opt_len(&self.worker)
            + opt_len(&self.progress_msg)
            + opt_len(&self.result)
            + opt_len(&self.idem)
            + self
                .errors
                .iter()
                .map(|e| alloc(e.len()) + 16)
                .sum::<usize>()
    }

    /// The time of the job's next time-driven transition, if any.
    fn next_timer(&self) -> Option<u64> {
        let exp = (self.expires != 0).then_some(self.expires);
        let at = match self.state {
            State::Scheduled if self.pending.is_empty() => Some(self.run_at),
            State::Scheduled | State::Waiting => None,
            State::Failed => Some(self.retry_at),
            State::Active => return Some(self.deadline),
            _ => return None,
        };
        match (at, exp) {
            (Some(a), Some(e)) => Some(a.min(e)),
            (a, e) => a.or(e),
        }
    }
}

/// Retention of finished jobs: at most `count`, none older than `age` ms after finishing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Most jobs kept.
    pub count: u64,
    /// Longest time kept after finishing (ms).
    pub age: u64,
}

/// A queue's configuration (`QUEUE.CONFIG`).
#[derive(Debug, Clone, PartialEq)]
pub struct QueueConfig {
    /// Most active jobs (0: unlimited).
    pub concurrency: u32,
    /// Most active jobs per group (0: unlimited).
    pub group_concurrency: u32,
    /// Fetches skip the queue.
    pub paused: bool,
    /// Completed and cancelled jobs kept.
    pub retention_done: Retention,
    /// Dead jobs kept.
    pub retention_dead: Retention,
    /// Failure messages kept per job.
    pub max_errors: u32,
    /// The dead-letter queue dead jobs move to (`None`: they stay here).
    pub dlq: Option<Box<[u8]>>,
}

impl QueueConfig {
    /// A configuration with the given defaults.
    pub fn new(retention_done: Retention, retention_dead: Retention, max_errors: u32) -> Self {
        QueueConfig {
            concurrency: 0,
            group_concurrency: 0,
            paused: false,
            retention_done,
            retention_dead,
            max_errors,
            dlq: None,
        }
    }
}

/// A change worth an event (and, for `removed`, worth forgetting the jid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Event name (`pushed`, `active`, `completed`, ...).
    pub event: &'static str,
    /// The job.
    pub jid: Box<[u8]>,
    /// Extra fields.
    pub fields: Vec<(&'static str, Vec<u8>)>,
}

/// A dead-letter queue's key and the jids to move there.
pub type DeadLetters = (Box<[u8]>, Vec<Box<[u8]>>);

/// What an operation did besides its reply: events, and jids removed from the queue.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// State changes in order.
    pub events: Vec<Event>,
    /// Jobs no longer in the queue (retention, drain, purge).
    pub removed: Vec<Box<[u8]>>,
    /// Something changed (a runnable job appeared, a slot freed...): wake fetchers.
    pub wake: bool,
    /// Jobs that died in a queue with a dead-letter queue (`QueueConfig::dlq`), to be
    /// moved there: the DLQ's key and the jids.
    pub dead_letters: Option<DeadLetters>,
}

impl Changes {
    fn ev(&mut self, event: &'static str, jid: &[u8], fields: Vec<(&'static str, Vec<u8>)>) {
        self.events.push(Event {
            event,
            jid: jid.into(),
            fields,
        });
    }
}

fn num(v: u64) -> Vec<u8> {
    v.to_string().into_bytes()
}

/// A push request (see [`QueueValue::push`]).
#[derive(Debug, Clone)]
pub struct PushReq<'a> {
    /// Job id.
    pub jid: &'a [u8],
    /// Payload.
    pub payload: &'a [u8],
    /// Runnable from (Unix ms; ≤ now: at once).
    pub run_at: u64,
    /// 0..=9.
    pub priority: u8,
    /// Retries.
    pub retry: u32,
    /// Backoff.
    pub backoff: Backoff,
    /// Visibility timeout (ms).
    pub timeout: u64,
    /// EXPIRES (0: none).
    pub expires: u64,
    /// UNIQUE key and window length (ms).
    pub unique: Option<(&'a [u8], u64)>,
    /// Parent jids.
    pub depends: Vec<&'a [u8]>,
    /// Group.
    pub group: Option<&'a [u8]>,
    /// Tags.
    pub tags: Vec<&'a [u8]>,
}

/// The outcome of [`QueueValue::push`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    /// A new job.
    New,
    /// A job with that jid is already in this queue (nothing changed).
    Exists,
    /// Another live job of this queue holds the unique key (nothing changed).
    NotUnique,
    /// A parent is not a job of this queue (nothing changed).
    UnknownParent(Vec<u8>),
}

/// Why a claim-holding operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimError {
    /// No such job in this queue.
    NoJob,
    /// The token is not the current claim's.
    Stale,
}

/// What [`QueueValue::fail`] should do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Retry {
    /// Follow the job's backoff with this jitter draw in `[0, 1)`.
    Backoff(f64),
    /// Retry after this many ms (if retries are left).
    In(u64),
    /// Retry at this Unix ms (the AOF form; the retry count was checked when logged).
    At(u64),
    /// No retry: dead.
    No,
}

/// The outcome of [`QueueValue::fail`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    /// Retries at this Unix ms.
    RetryAt(u64),
    /// Dead.
    Dead,
}

/// A delivery made by [`QueueValue::claim_next`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Job id.
    pub jid: Box<[u8]>,
    /// The claim's fence.
    pub fence: u64,
    /// Visibility deadline.
    pub deadline: u64,
}

/// A claim as the AOF logged it (see [`QueueValue::claim_logged`]).
#[derive(Debug, Clone, Copy)]
pub struct LoggedClaim<'a> {
    /// The job.
    pub jid: &'a [u8],
    /// The claim's token.
    pub token: &'a [u8],
    /// The claim's fence.
    pub fence: u64,
    /// The claim's visibility deadline.
    pub deadline: u64,
    /// The worker.
    pub worker: Option<&'a [u8]>,
}

/// Options of a claim.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClaimOpts<'a> {
    /// Visibility timeout (ms) instead of the job's.
    pub visibility: Option<u64>,
    /// The worker.
    pub worker: Option<&'a [u8]>,
}

/// Counts of jobs by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Scheduled.
    pub scheduled: u64,
    /// Waiting.
    pub waiting: u64,
    /// Active.
    pub active: u64,
    /// Failed (retrying).
    pub failed: u64,
    /// Completed.
    pub completed: u64,
    /// Dead.
    pub dead: u64,
    /// Cancelled.
    pub cancelled: u64,
}

impl Counts {
    fn slot(&mut self, s: State) -> &mut u64 {
        match s {
            State::Scheduled => &mut self.scheduled,
            State::Waiting => &mut self.waiting,
            State::Active => &mut self.active,
            State::Failed => &mut self.failed,
            State::Completed => &mut self.completed,
            State::Dead => &mut self.dead,
            State::Cancelled => &mut self.cancelled,
        }
    }
}

type ReadyKey = (Reverse<u8>, u64, u64);

/// A queue (TYPE `queue`).
#[derive(Debug, Clone)]
pub struct QueueValue {
    config: QueueConfig,
    rate: Option<RateLimit>,
    fence: u64,
    next_seq: u64,
    jobs: BTreeMap<u64, Job>,
    jids: HashMap<Box<[u8]>, u64>,
    ready: BTreeSet<ReadyKey>,
    timers: BTreeSet<(u64, u64)>,
    done: BTreeSet<(u64, u64)>,
    dead: BTreeSet<(u64, u64)>,
    uniques: HashMap<Box<[u8]>, u64>,
    active_groups: HashMap<Box<[u8]>, u32>,
    counts: Counts,
    bytes: usize,
}

impl PartialEq for QueueValue {
    fn eq(&self, o: &QueueValue) -> bool {
        self.config == o.config
            && self.rate == o.rate
            && self.fence == o.fence
            && self.next_seq == o.next_seq
            && self.jobs == o.jobs
    }
}

impl QueueValue {
    /// An empty queue.
    pub fn new(config: QueueConfig) -> QueueValue {
        QueueValue {
            config,
            rate: None,
            fence: 0,
            next_seq: 1,
            jobs: BTreeMap::new(),
            jids: HashMap::new(),
            ready: BTreeSet::new(),
            timers: BTreeSet::new(),
            done: BTreeSet::new(),
            dead: BTreeSet::new(),
            uniques: HashMap::new(),
            active_groups: HashMap::new(),
            counts: Counts::default(),
            bytes: 0,
        }
    }

    /// Heap bytes held (running count, O(1)).
    pub fn heap_size(&self) -> usize {
        self.bytes + self.rate.as_ref().map_or(0, |r| alloc(64 + r.heap_size()))
    }

    /// The configuration.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// The configuration, to change.
    pub fn config_mut(&mut self) -> &mut QueueConfig {
        &mut self.config
    }

    /// The rate limit, if any.
    pub fn rate(&self) -> Option<&RateLimit> {
        self.rate.as_ref()
    }

    /// Sets or clears the rate limit (a new spec starts full).
    pub fn set_rate(&mut self, spec: Option<Spec>, now: u64) {
        if spec.as_ref() == self.rate.as_ref().map(RateLimit::spec) {
            // The same limit again keeps its state (no fresh burst).
            return;
        }
        self.rate = spec.map(|s| RateLimit::new(s, now as i64 * 1000));
    }

    /// The last fence granted.
    pub fn fence(&self) -> u64 {
        self.fence
    }

    /// Counts by state.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Number of jobs (every state).
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// True without jobs.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Every job id, in push order.
    pub fn jids(&self) -> impl Iterator<Item = &[u8]> {
        self.jobs.values().map(|j| &*j.jid)
    }

    /// The job `jid`.
    pub fn job(&self, jid: &[u8]) -> Option<&Job> {
        self.jids.get(jid).and_then(|s| self.jobs.get(s))
    }

    /// The jids of a job's pending parents.
    pub fn pending_parents(&self, j: &Job) -> Vec<&[u8]> {
        j.pending
            .iter()
            .filter_map(|s| self.jobs.get(s).map(|p| &*p.jid))
            .collect()
    }

    /// The earliest time at which something becomes runnable or a claim times out:
    /// blocked fetchers re-check then. Includes the rate limit's next permit when it is
    /// what holds runnable jobs back.
    pub fn next_wake(&self, now: u64) -> Option<u64> {
        let t = self.timers.first().map(|&(t, _)| t);
        let r = if !self.ready.is_empty() {
            self.rate.as_ref().and_then(|rl| {
                let mut rl = rl.clone();
                let d = rl.check(now as i64 * 1000, 1, Mode::Peek);
                (!d.allowed && d.retry_after_ms > 0).then(|| now + d.retry_after_ms as u64)
            })
        } else {
            None
        };
        match (t, r) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ----- bookkeeping -----

    fn set_state(&mut self, seq: u64, to: State) {
        let Some(j) = self.jobs.get_mut(&seq) else {
            return;
        };
        let from = j.state;
        if from == to {
            return;
        }
        *self.counts.slot(from) -= 1;
        *self.counts.slot(to) += 1;
        // Leaving an index.
        match from {
            State::Waiting => {
                self.ready.remove(&(Reverse(j.priority), j.run_at, seq));
            }
            State::Active => {
                if let Some(g) = &j.group
                    && let Some(n) = self.active_groups.get_mut(g)
                {
                    *n -= 1;
                    if *n == 0 {
                        self.active_groups.remove(g);
                    }
                }
            }
            State::Completed | State::Cancelled => {
                self.done.remove(&(j.finished, seq));
            }
            State::Dead => {
                self.dead.remove(&(j.finished, seq));
            }
            _ => {}
        }
        j.state = to;
        match to {
            State::Waiting => {
                self.ready.insert((Reverse(j.priority), j.run_at, seq));
            }
            State::Active => {
                if let Some(g) = &j.group {
                    *self.active_groups.entry(g.clone()).or_insert(0) += 1;
                }
            }
            State::Completed | State::Cancelled => {
                self.done.insert((j.finished, seq));
            }
            State::Dead => {
                self.dead.insert((j.finished, seq));
            }
            _ => {}
        }
        if to.is_finished()
            && let Some((k, _)) = &j.unique
            && self.uniques.get(k) == Some(&seq)
        {
            self.uniques.remove(k);
        }
    }

    fn unset_timer(&mut self, seq: u64) {
        if let Some(t) = self.jobs.get(&seq).and_then(Job::next_timer) {
            self.timers.remove(&(t, seq));
        }
    }

    fn set_timer(&mut self, seq: u64) {
        if let Some(t) = self.jobs.get(&seq).and_then(Job::next_timer) {
            self.timers.insert((t, seq));
        }
    }

    /// Changes job `seq` through `f`, keeping its timer entry and the byte count true.
    fn edit<R>(&mut self, seq: u64, f: impl FnOnce(&mut QueueValue, u64) -> R) -> R {
        self.unset_timer(seq);
        let before = self.jobs.get(&seq).map_or(0, Job::heap_size);
        let r = f(self, seq);
        self.rebyte(seq, before);
        self.set_timer(seq);
        r
    }

    fn insert_job(&mut self, seq: u64, mut j: Job) {
        self.bytes += j.heap_size();
        self.jids.insert(j.jid.clone(), seq);
        // Enter the state's index through set_state from a state without an index.
        let state = j.state;
        j.state = State::Scheduled;
        *self.counts.slot(State::Scheduled) += 1;
        self.jobs.insert(seq, j);
        self.set_state(seq, state);
        self.set_timer(seq);
    }

    fn remove_job(&mut self, seq: u64, out: &mut Changes) {
        self.unset_timer(seq);
        self.set_state(seq, State::Cancelled);
        if let Some(j) = self.jobs.remove(&seq) {
            self.done.remove(&(j.finished, seq));
            *self.counts.slot(State::Cancelled) -= 1;
            self.bytes = self.bytes.saturating_sub(j.heap_size());
            self.jids.remove(&j.jid);
            if let Some((k, _)) = &j.unique
                && self.uniques.get(k) == Some(&seq)
            {
                self.uniques.remove(k);
            }
            // Unlink from parents' children lists (a child removed before its parents
            // finished: DRAIN).
            for p in &j.pending {
                if let Some(pj) = self.jobs.get_mut(p) {
                    pj.children.retain(|c| *c != seq);
                }
            }
            out.removed.push(j.jid);
        }
    }

    // ----- time -----

    /// Runs every time-driven transition due at or before `now`, in deadline order, and
    /// applies retention by age.
    pub fn advance(&mut self, now: u64, out: &mut Changes) {
        while let Some(&(t, seq)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.pop_first();
            let before = self.jobs.get(&seq).map(|j| j.state);
            self.fire(seq, t, out);
            // Every due timer makes a transition; a job left as it was would loop.
            let after = self.jobs.get(&seq).map(|j| j.state);
            debug_assert!(
                before != after || after.is_none(),
                "a due timer changed nothing"
            );
            if before != after {
                self.set_timer(seq);
            }
        }
        self.retain_by_age(now, out);
    }

    /// The transition of job `seq` due at `t` (its timer entry is already removed).
    fn fire(&mut self, seq: u64, t: u64, out: &mut Changes) {
        let Some(j) = self.jobs.get(&seq) else {
            return;
        };
        let state = j.state;
        let expires = j.expires;
        let expired = expires != 0 && expires <= t;
        match state {
            State::Scheduled | State::Waiting | State::Failed if expired => {
                self.finish(seq, State::Cancelled, expires, Some(EXPIRED_ERROR), out);
            }
            State::Scheduled if j.pending.is_empty() && j.run_at <= t => {
                let jid = j.jid.clone();
                self.set_state(seq, State::Waiting);
                out.wake = true;
                out.ev("waiting", &jid, vec![]);
            }
            State::Failed if j.retry_at <= t => {
                let at = j.retry_at;
                let jid = j.jid.clone();
                if let Some(j) = self.jobs.get_mut(&seq) {
                    j.run_at = at;
                    j.retry_at = 0;
                }
                self.set_state(seq, State::Waiting);
                out.wake = true;
                out.ev("waiting", &jid, vec![]);
            }
            State::Active if j.deadline <= t => {
                let deadline = j.deadline;
                let dead = j.failures >= j.retry;
                let before = j.heap_size();
                let max_errors = self.config.max_errors;
                if let Some(j) = self.jobs.get_mut(&seq) {
                    j.failures += 1;
                    push_error(&mut j.errors, TIMEOUT_ERROR, max_errors);
                    j.token = Box::default();
                    j.deadline = 0;
                }
                self.rebyte(seq, before);
                out.ev("timedout", &self.jobs[&seq].jid.clone(), vec![]);
                out.wake = true;
                if dead {
                    self.finish(seq, State::Dead, deadline, None, out);
                } else {
                    if let Some(j) = self.jobs.get_mut(&seq) {
                        j.run_at = deadline;
                    }
                    self.set_state(seq, State::Waiting);
                }
            }
            _ => {}
        }
    }

    fn rebyte(&mut self, seq: u64, before: usize) {
        let after = self.jobs.get(&seq).map_or(0, Job::heap_size);
        self.bytes = (self.bytes + after).saturating_sub(before);
    }

    /// Moves job `seq` to a finished state at time `at` (timer already handled by the
    /// caller), releasing children or cancelling them, and applying retention by count.
    fn finish(&mut self, seq: u64, to: State, at: u64, error: Option<&[u8]>, out: &mut Changes) {
        debug_assert!(to.is_finished());
        let max_errors = self.config.max_errors;
        let Some(j) = self.jobs.get_mut(&seq) else {
            return;
        };
        let before = j.heap_size();
        j.finished = at;
        j.deadline = 0;
        j.retry_at = 0;
        j.token = Box::default();
        if let Some(e) = error {
            push_error(&mut j.errors, e, max_errors);
        }
        let jid = j.jid.clone();
        let children = std::mem::take(&mut j.children);
        let state_before = j.state;
        self.rebyte(seq, before);
        if state_before == State::Active {
            out.wake = true; // a concurrency slot freed
        }
        self.set_state(seq, to);
        let mut fields = Vec::new();
        if let Some(e) = error {
            fields.push(("error", e.to_vec()));
        }
        out.ev(to.name(), &jid, fields);
        if to == State::Dead
            && let Some(d) = &self.config.dlq
        {
            out.dead_letters
                .get_or_insert_with(|| (d.clone(), Vec::new()))
                .1
                .push(jid.clone());
        }
        for c in children {
            self.parent_finished(c, seq, to, &jid, at, out);
        }
        self.retain_by_count(to, out);
    }

    /// Parent `parent` of job `child` finished as `how` at `at`.
    fn parent_finished(
        &mut self,
        child: u64,
        parent: u64,
        how: State,
        pjid: &[u8],
        at: u64,
        out: &mut Changes,
    ) {
        let Some(c) = self.jobs.get(&child) else {
            return;
        };
        if c.state != State::Scheduled {
            return;
        }
        self.unset_timer(child);
        if how == State::Completed {
            if let Some(c) = self.jobs.get_mut(&child) {
                c.pending.retain(|p| *p != parent);
                if c.pending.is_empty() {
                    c.run_at = c.run_at.max(at);
                    if c.run_at <= at {
                        let jid = c.jid.clone();
                        self.set_state(child, State::Waiting);
                        out.wake = true;
                        out.ev("waiting", &jid, vec![]);
                    }
                }
            }
            self.set_timer(child);
        } else {
            let mut msg = b"parent ".to_vec();
            msg.extend_from_slice(pjid);
            msg.push(b' ');
            msg.extend_from_slice(how.name().as_bytes());
            self.finish(child, State::Cancelled, at, Some(&msg), out);
        }
    }

    fn retain_by_count(&mut self, to: State, out: &mut Changes) {
        let (limit, dead) = match to {
            State::Dead => (self.config.retention_dead.count, true),
            _ => (self.config.retention_done.count, false),
        };
        loop {
            let set = if dead { &self.dead } else { &self.done };
            if set.len() as u64 <= limit {
                break;
            }
            let Some(&(_, seq)) = set.first() else { break };
            self.remove_job(seq, out);
        }
    }

    fn retain_by_age(&mut self, now: u64, out: &mut Changes) {
        for dead in [false, true] {
            let age = if dead {
                self.config.retention_dead.age
            } else {
                self.config.retention_done.age
            };
            loop {
                let set = if dead { &self.dead } else { &self.done };
                match set.first() {
                    Some(&(f, seq)) if f.saturating_add(age) <= now => self.remove_job(seq, out),
                    _ => break,
                }
            }
        }
    }

    /// Applies a changed retention now (count and age).
    pub fn apply_retention(&mut self, now: u64, out: &mut Changes) {
        self.retain_by_count(State::Completed, out);
        self.retain_by_count(State::Dead, out);
        self.retain_by_age(now, out);
    }

    // ----- operations -----

    /// Pushes a job. Nothing changes unless the outcome is [`Pushed::New`].
    pub fn push(&mut self, req: &PushReq<'_>, now: u64, out: &mut Changes) -> Pushed {
        self.advance(now, out);
        if self.jids.contains_key(req.jid) {
            return Pushed::Exists;
        }
        let mut pending = Vec::new();
        for p in &req.depends {
            match self.jids.get(*p) {
                Some(&s) => {
                    if !pending.contains(&s) {
                        pending.push(s);
                    }
                }
                None => return Pushed::UnknownParent(p.to_vec()),
            }
        }
        if let Some((k, _)) = req.unique
            && let Some(&holder) = self.uniques.get(k)
            && let Some(h) = self.jobs.get(&holder)
            && !h.state.is_finished()
            && h.unique.as_ref().is_some_and(|(_, until)| *until > now)
        {
            return Pushed::NotUnique;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        // A parent already dead or cancelled cancels the child at once; completed
        // parents are already satisfied.
        let mut doomed = None;
        pending.retain(|s| match self.jobs[s].state {
            State::Completed => false,
            State::Dead | State::Cancelled => {
                doomed.get_or_insert(*s);
                true
            }
            _ => true,
        });
        let run_at = req.run_at.max(now);
        let state = if pending.is_empty() && run_at <= now {
            State::Waiting
        } else {
            State::Scheduled
        };
        let job = Job {
            jid: req.jid.into(),
            payload: req.payload.into(),
            state,
            priority: req.priority.min(MAX_PRIORITY),
            retry: req.retry,
            backoff: req.backoff,
            timeout: req.timeout,
            expires: req.expires,
            unique: req.unique.map(|(k, ms)| (k.into(), now.saturating_add(ms))),
            group: req.group.map(Into::into),
            tags: req.tags.iter().map(|t| (*t).into()).collect(),
            pending: pending.clone(),
            children: Vec::new(),
            created: now,
            run_at,
            retry_at: 0,
            attempts: 0,
            failures: 0,
            started: 0,
            finished: 0,
            deadline: 0,
            fence: 0,
            token: Box::default(),
            worker: None,
            progress: 0,
            progress_msg: None,
            result: None,
            idem: None,
            errors: VecDeque::new(),
        };
        if let Some((k, _)) = req.unique {
            self.uniques.insert(k.into(), seq);
        }
        for p in pending.iter().filter(|p| Some(*p) != doomed.as_ref()) {
            if let Some(pj) = self.jobs.get_mut(p) {
                let before = pj.heap_size();
                pj.children.push(seq);
                self.rebyte(*p, before);
            }
        }
        self.insert_job(seq, job);
        let mut fields = vec![("priority", num(u64::from(req.priority)))];
        if state == State::Scheduled {
            fields.push(("run_at", num(run_at)));
        }
        out.ev(
            if state == State::Waiting {
                "pushed"
            } else {
                "scheduled"
            },
            req.jid,
            fields,
        );
        if state == State::Waiting {
            out.wake = true;
        }
        if let Some(p) = doomed {
            let pj = self.jobs[&p].clone();
            self.unset_timer(seq);
            self.parent_finished(seq, p, pj.state, &pj.jid, now, out);
            self.set_timer(seq);
        }
        // An EXPIRES already passed.
        self.advance(now, out);
        Pushed::New
    }

    /// Why the queue cannot hand out a job now (paused, concurrency or rate).
    fn blocked(&self, now: u64) -> bool {
        if self.config.paused {
            return true;
        }
        if self.config.concurrency > 0 && self.counts.active >= u64::from(self.config.concurrency) {
            return true;
        }
        if let Some(rl) = &self.rate {
            let mut rl = rl.clone();
            if !rl.check(now as i64 * 1000, 1, Mode::Peek).allowed {
                return true;
            }
        }
        false
    }

    /// Claims the next runnable job (strict priority, then FIFO), respecting pause,
    /// CONCURRENCY, GROUP_CONCURRENCY and RATE; `token` becomes the claim's token.
    pub fn claim_next(
        &mut self,
        now: u64,
        opts: ClaimOpts<'_>,
        token: &[u8],
        out: &mut Changes,
    ) -> Option<Delivery> {
        self.advance(now, out);
        if self.blocked(now) {
            return None;
        }
        let gc = self.config.group_concurrency;
        let seq = self.ready.iter().find_map(|&(_, _, seq)| {
            let j = &self.jobs[&seq];
            match &j.group {
                Some(g) if gc > 0 => {
                    (self.active_groups.get(g).copied().unwrap_or(0) < gc).then_some(seq)
                }
                _ => Some(seq),
            }
        })?;
        Some(self.grant(seq, now, opts, token, out))
    }

    fn grant(
        &mut self,
        seq: u64,
        now: u64,
        opts: ClaimOpts<'_>,
        token: &[u8],
        out: &mut Changes,
    ) -> Delivery {
        if let Some(rl) = &mut self.rate {
            rl.check(now as i64 * 1000, 1, Mode::Consume);
        }
        self.fence += 1;
        let fence = self.fence;
        self.edit(seq, |q, seq| {
            if let Some(j) = q.jobs.get_mut(&seq) {
                let timeout = opts.visibility.unwrap_or(j.timeout);
                j.deadline = now.saturating_add(timeout);
                j.attempts += 1;
                j.started = now;
                j.fence = fence;
                j.token = token.into();
                if let Some(w) = opts.worker {
                    j.worker = Some(w.into());
                }
            }
            q.set_state(seq, State::Active);
        });
        let j = &self.jobs[&seq];
        let mut fields = vec![("attempt", num(u64::from(j.attempts)))];
        if let Some(w) = &j.worker {
            fields.push(("worker", w.to_vec()));
        }
        out.ev("active", &j.jid.clone(), fields);
        Delivery {
            jid: j.jid.clone(),
            fence,
            deadline: j.deadline,
        }
    }

    /// Claims job `jid` as a logged claim did (the AOF replay of a fetch): `deadline` is
    /// the claim's visibility deadline, `fence` must be the next fence. False (nothing
    /// changed) when the job is not waiting or the fence does not follow.
    pub fn claim_logged(&mut self, now: u64, c: &LoggedClaim<'_>, out: &mut Changes) -> bool {
        self.advance(now, out);
        let Some(&seq) = self.jids.get(c.jid) else {
            return false;
        };
        if self.jobs[&seq].state != State::Waiting || c.fence != self.fence + 1 || c.deadline < now
        {
            return false;
        }
        let opts = ClaimOpts {
            visibility: Some(c.deadline - now),
            worker: c.worker,
        };
        self.grant(seq, now, opts, c.token, out);
        true
    }

    /// The active job `jid` claimed with `token` (after advancing to `now`).
    fn claimed(
        &mut self,
        now: u64,
        jid: &[u8],
        token: &[u8],
        out: &mut Changes,
    ) -> Result<u64, ClaimError> {
        self.advance(now, out);
        let &seq = self.jids.get(jid).ok_or(ClaimError::NoJob)?;
        let j = &self.jobs[&seq];
        if j.state != State::Active || *j.token != *token {
            return Err(ClaimError::Stale);
        }
        Ok(seq)
    }

    /// Completes the active job. The stored result is returned; a completed job whose
    /// idempotency key equals `idem` answers its stored result again.
    pub fn ack(
        &mut self,
        now: u64,
        jid: &[u8],
        token: &[u8],
        result: Option<&[u8]>,
        idem: Option<&[u8]>,
        out: &mut Changes,
    ) -> Result<Option<Box<[u8]>>, ClaimError> {
        let seq = match self.claimed(now, jid, token, out) {
            Ok(s) => s,
            Err(ClaimError::Stale) => {
                let j = self.job(jid).ok_or(ClaimError::NoJob)?;
                if j.state == State::Completed
                    && let (Some(a), Some(b)) = (&j.idem, idem)
                    && **a == *b
                {
                    return Ok(j.result.clone());
                }
                return Err(ClaimError::Stale);
            }
            Err(e) => return Err(e),
        };
        self.unset_timer(seq);
        let before = self.jobs[&seq].heap_size();
        if let Some(j) = self.jobs.get_mut(&seq) {
            j.result = result.map(Into::into);
            j.idem = idem.map(Into::into);
        }
        self.rebyte(seq, before);
        let r = self.jobs[&seq].result.clone();
        self.finish(seq, State::Completed, now, None, out);
        Ok(r)
    }

    /// Fails the active job: retried per `retry` if retries are left, else dead.
    pub fn fail(
        &mut self,
        now: u64,
        jid: &[u8],
        token: &[u8],
        error: &[u8],
        retry: Retry,
        out: &mut Changes,
    ) -> Result<Failed, ClaimError> {
        let seq = self.claimed(now, jid, token, out)?;
        self.unset_timer(seq);
        let max_errors = self.config.max_errors;
        let before = self.jobs[&seq].heap_size();
        let j = self.jobs.get_mut(&seq).ok_or(ClaimError::NoJob)?;
        j.failures += 1;
        let left = j.failures <= j.retry;
        let at = match retry {
            Retry::No => None,
            Retry::At(t) => Some(t.max(now)),
            _ if !left => None,
            Retry::In(ms) => Some(now.saturating_add(ms)),
            Retry::Backoff(r) => Some(now.saturating_add(j.backoff.delay(j.failures, r))),
        };
        let Some(at) = at else {
            self.rebyte(seq, before);
            self.finish(seq, State::Dead, now, Some(error), out);
            return Ok(Failed::Dead);
        };
        push_error(&mut j.errors, error, max_errors);
        j.retry_at = at;
        j.deadline = 0;
        j.token = Box::default();
        let jid = j.jid.clone();
        let failures = j.failures;
        self.rebyte(seq, before);
        self.set_state(seq, State::Failed);
        self.set_timer(seq);
        out.wake = true;
        out.ev(
            "failed",
            &jid,
            vec![
                ("error", error.to_vec()),
                ("attempt", num(u64::from(failures))),
                ("retry_at", num(at)),
            ],
        );
        // A retry due now is waiting at once.
        self.advance(now, out);
        Ok(Failed::RetryAt(at))
    }

    /// Gives the active job back without counting a failure: waiting (or scheduled for
    /// `delay` ms).
    pub fn nack(
        &mut self,
        now: u64,
        jid: &[u8],
        token: &[u8],
        delay: u64,
        out: &mut Changes,
    ) -> Result<(), ClaimError> {
        let seq = self.claimed(now, jid, token, out)?;
        self.edit(seq, |q, seq| {
            if let Some(j) = q.jobs.get_mut(&seq) {
                j.token = Box::default();
                j.deadline = 0;
                j.run_at = now.saturating_add(delay);
            }
            q.set_state(
                seq,
                if delay == 0 {
                    State::Waiting
                } else {
                    State::Scheduled
                },
            );
        });
        out.wake = true;
        out.ev("nacked", jid, vec![]);
        Ok(())
    }

    /// Moves the active claim's deadline to `now + ms`; returns it.
    pub fn extend(
        &mut self,
        now: u64,
        jid: &[u8],
        token: &[u8],
        ms: u64,
        out: &mut Changes,
    ) -> Result<u64, ClaimError> {
        let seq = self.claimed(now, jid, token, out)?;
        let d = now.saturating_add(ms);
        self.edit(seq, |q, seq| {
            if let Some(j) = q.jobs.get_mut(&seq) {
                j.deadline = d;
            }
        });
        Ok(d)
    }

    /// Records progress of the active job.
    pub fn progress(
        &mut self,
        now: u64,
        jid: &[u8],
        token: &[u8],
        pct: u8,
        msg: Option<&[u8]>,
        out: &mut Changes,
    ) -> Result<(), ClaimError> {
        let seq = self.claimed(now, jid, token, out)?;
        self.edit(seq, |q, seq| {
            if let Some(j) = q.jobs.get_mut(&seq) {
                j.progress = pct.min(100);
                j.progress_msg = msg.map(Into::into);
            }
        });
        let mut fields = vec![("progress", num(u64::from(pct)))];
        if let Some(m) = msg {
            fields.push(("message", m.to_vec()));
        }
        out.ev("progress", jid, fields);
        Ok(())
    }

    /// Cancels a job that is not finished: `Ok(true)`; `Ok(false)` if it already was.
    pub fn cancel(&mut self, now: u64, jid: &[u8], out: &mut Changes) -> Result<bool, ClaimError> {
        self.advance(now, out);
        let &seq = self.jids.get(jid).ok_or(ClaimError::NoJob)?;
        if self.jobs[&seq].state.is_finished() {
            return Ok(false);
        }
        self.unset_timer(seq);
        self.finish(seq, State::Cancelled, now, None, out);
        Ok(true)
    }

    /// Removes every scheduled, waiting and failed job; returns how many.
    pub fn drain(&mut self, now: u64, out: &mut Changes) -> u64 {
        self.advance(now, out);
        let seqs: Vec<u64> = self
            .jobs
            .iter()
            .filter(|(_, j)| matches!(j.state, State::Scheduled | State::Waiting | State::Failed))
            .map(|(s, _)| *s)
            .collect();
        for &s in &seqs {
            self.remove_job(s, out);
        }
        seqs.len() as u64
    }

    /// Dead jobs, oldest death first, at most `count`.
    pub fn dead_jobs(&self, count: usize) -> Vec<&Job> {
        self.dead
            .iter()
            .take(count)
            .filter_map(|(_, s)| self.jobs.get(s))
            .collect()
    }

    /// Makes dead jobs waiting again (all of them when `jids` is `None`); returns how many.
    pub fn requeue_dead(&mut self, now: u64, jids: Option<&[&[u8]]>, out: &mut Changes) -> u64 {
        self.advance(now, out);
        let seqs: Vec<u64> = match jids {
            None => self.dead.iter().map(|(_, s)| *s).collect(),
            Some(list) => list
                .iter()
                .filter_map(|j| self.jids.get(*j).copied())
                .filter(|s| self.jobs[s].state == State::Dead)
                .collect(),
        };
        let mut n = 0;
        for seq in seqs {
            if self.jobs.get(&seq).map(|j| j.state) != Some(State::Dead) {
                continue;
            }
            self.edit(seq, |q, seq| {
                if let Some(j) = q.jobs.get_mut(&seq) {
                    j.failures = 0;
                    j.run_at = now;
                }
                q.set_state(seq, State::Waiting);
                if let Some(j) = q.jobs.get_mut(&seq) {
                    j.finished = 0;
                }
            });
            let jid = self.jobs[&seq].jid.clone();
            out.ev("requeued", &jid, vec![]);
            n += 1;
        }
        if n > 0 {
            out.wake = true;
        }
        n
    }

    /// Takes the dead job `jid` out of the queue (to move it to a dead-letter queue).
    pub fn take_dead(&mut self, now: u64, jid: &[u8], out: &mut Changes) -> Option<Job> {
        self.advance(now, out);
        let &seq = self.jids.get(jid)?;
        if self.jobs[&seq].state != State::Dead {
            return None;
        }
        let j = self.jobs[&seq].clone();
        self.remove_job(seq, out);
        out.removed.pop();
        Some(j)
    }

    /// Adds a dead job taken from another queue (this queue is its dead-letter queue):
    /// it keeps its history; its dependencies and unique key stay behind. False (nothing
    /// changed) if a job with its jid is already here.
    pub fn insert_dead(&mut self, now: u64, mut j: Job, out: &mut Changes) -> bool {
        self.advance(now, out);
        if self.jids.contains_key(&j.jid) {
            return false;
        }
        j.state = State::Dead;
        j.pending.clear();
        j.children.clear();
        j.unique = None;
        j.token = Box::default();
        j.deadline = 0;
        j.retry_at = 0;
        if j.finished == 0 {
            j.finished = now;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let jid = j.jid.clone();
        self.insert_job(seq, j);
        out.ev("dead", &jid, vec![]);
        self.retain_by_count(State::Dead, out);
        true
    }

    /// Removes every dead job; returns how many.
    pub fn purge_dead(&mut self, now: u64, out: &mut Changes) -> u64 {
        self.advance(now, out);
        let seqs: Vec<u64> = self.dead.iter().map(|(_, s)| *s).collect();
        for &s in &seqs {
            self.remove_job(s, out);
        }
        seqs.len() as u64
    }

    /// Checks the internal indexes against the jobs (tests and the loader).
    pub fn check(&self) -> Result<(), String> {
        let mut c = Counts::default();
        for (s, j) in &self.jobs {
            *c.slot(j.state) += 1;
            if self.jids.get(&j.jid) != Some(s) {
                return Err("jid index".into());
            }
            if (j.state == State::Waiting)
                != self.ready.contains(&(Reverse(j.priority), j.run_at, *s))
            {
                return Err("ready index".into());
            }
            if let Some(t) = j.next_timer()
                && !self.timers.contains(&(t, *s))
            {
                return Err("timer index".into());
            }
        }
        if c != self.counts || self.jids.len() != self.jobs.len() {
            return Err("counts".into());
        }
        if self.timers.len()
            != self
                .jobs
                .values()
                .filter(|j| j.next_timer().is_some())
                .count()
        {
            return Err("stray timers".into());
        }
        Ok(())
    }
}

fn push_error(errors: &mut VecDeque<Box<[u8]>>, e: &[u8], max: u32) {
    errors.push_back(e.into());
    while errors.len() > max as usize {
        errors.pop_front();
    }
}

#[cfg(test)]
mod tests;
