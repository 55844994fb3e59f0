//! Recurring job schedules (`JOB.SCHEDULE`): when a schedule ticks, and which ticks a
//! firing pass must push.
//!
//! A schedule is a *trigger* (a cron expression read in a time zone, or a fixed period)
//! plus the job it pushes on every tick. This module is pure: it never reads a clock,
//! every function takes the time it reasons about (Unix milliseconds). The server keeps
//! the registry ([`Schedules`]) as server state and runs [`due_ticks`] from its cron;
//! tests drive the same function with an injected clock across simulated days.
//!
//! Cron expressions are parsed by `croner` (Vixie cron with seconds, `L`, `W`, `#`,
//! names, `@hourly`-style aliases) and evaluated on `jiff`'s time zone database (the
//! system's tzdb when present, else the copy bundled in the binary). Daylight saving
//! time follows croner's rules (Vixie cron's, with croner's test of a *fixed-time*
//! expression: one value in each of the second, minute and hour fields):
//! - a wall-clock time skipped by a spring-forward change fires once, at the first
//!   instant after the gap, for a fixed-time expression (02:30 on a night that jumps
//!   from 02:00 to 03:00 fires at 03:00); an *interval* expression (a wildcard, step,
//!   list or range in the hour field, as `*/30 * * * *` or `30 1,2 * * *`) has no tick
//!   in the missing hour;
//! - a repeated wall-clock hour (fall back) fires once, at its first occurrence, for a
//!   fixed-time expression (`30 1 * * *`), and on both occurrences for an interval
//!   expression (`*/30 * * * *` ticks four times in New York's repeated hour of
//!   1 November 2026).
//!
//! `EVERY ms` ticks on the multiples of `ms` since the Unix epoch (as BullMQ's `every`),
//! so its ticks do not depend on when the schedule was created or the server started.

use croner::Cron;
use croner::parser::CronParser;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use std::collections::BTreeMap;

/// Longest schedule name, in bytes (the name is part of the jids it pushes).
pub const MAX_NAME_LEN: usize = 100;
/// Longest cron expression, in bytes.
pub const MAX_EXPR_LEN: usize = 256;
/// Longest time zone name, in bytes.
pub const MAX_ZONE_LEN: usize = 64;
/// Most skipped cron ticks counted one by one after an outage (the count saturates
/// there: `skipped` then reads "at least").
pub const MAX_SKIP_COUNT: u64 = 10_000;
/// Largest time a schedule reasons about (Unix ms of 9999-12-31T23:59:59.999Z).
pub const MAX_TIME_MS: u64 = 253_402_300_799_999;

fn is(a: &[u8], word: &str) -> bool {
    a.eq_ignore_ascii_case(word.as_bytes())
}

/// When a schedule ticks.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// A cron expression read in a time zone.
    Cron {
        /// The expression as given.
        expr: String,
        /// The zone's name as given (`None`: UTC, not written back).
        zone_name: Option<String>,
        /// The parsed expression.
        cron: Box<Cron>,
        /// The zone.
        tz: TimeZone,
    },
    /// Every `ms` milliseconds, on the multiples of `ms` since the Unix epoch.
    Every {
        /// The period (at least 1).
        ms: u64,
    },
}

impl PartialEq for Trigger {
    fn eq(&self, other: &Trigger) -> bool {
        self.to_args() == other.to_args()
    }
}

impl Trigger {
    /// Parses a cron expression (5 fields, 6 with seconds first, 7 with a year last, or
    /// an alias such as `@hourly`) and an optional IANA zone name (default UTC).
    pub fn cron(expr: &str, zone: Option<&str>) -> Result<Trigger, String> {
        if expr.len() > MAX_EXPR_LEN {
            return Err(format!("cron expression longer than {MAX_EXPR_LEN} bytes"));
        }
        let cron = CronParser::new()
            .parse(expr)
            .map_err(|e| format!("invalid cron expression '{expr}': {e}"))?;
        let tz = match zone {
            None => TimeZone::UTC,
            Some(z) if z.len() > MAX_ZONE_LEN => {
                return Err(format!("unknown time zone '{z}'"));
            }
            Some(z) => TimeZone::get(z).map_err(|_| format!("unknown time zone '{z}'"))?,
        };
        Ok(Trigger::Cron {
            expr: expr.to_string(),
            zone_name: zone.map(str::to_string),
            cron: Box::new(cron),
            tz,
        })
    }

    /// A fixed period of `ms` milliseconds (1..=[`MAX_TIME_MS`]).
    pub fn every(ms: u64) -> Result<Trigger, String> {
        if ms == 0 || ms > MAX_TIME_MS {
            return Err("EVERY must be between 1 and 253402300799999 ms".into());
        }
        Ok(Trigger::Every { ms })
    }

    /// The words that recreate this trigger: `CRON expr [TZ zone]` or `EVERY ms`.
    pub fn to_args(&self) -> Vec<Vec<u8>> {
        match self {
            Trigger::Cron {
                expr, zone_name, ..
            } => {
                let mut v = vec![b"CRON".to_vec(), expr.as_bytes().to_vec()];
                if let Some(z) = zone_name {
                    v.push(b"TZ".to_vec());
                    v.push(z.as_bytes().to_vec());
                }
                v
            }
            Trigger::Every { ms } => vec![b"EVERY".to_vec(), ms.to_string().into_bytes()],
        }
    }

    fn zoned(tz: &TimeZone, ms: u64) -> Option<jiff::Zoned> {
        let secs = i64::try_from(ms / 1000).ok()?;
        let ts = Timestamp::from_second(secs).ok()?;
        Some(ts.to_zoned(tz.clone()))
    }

    fn ms_of(z: &jiff::Zoned) -> Option<u64> {
        u64::try_from(z.timestamp().as_millisecond())
            .ok()
            .filter(|&ms| ms <= MAX_TIME_MS)
    }

    /// The first tick strictly after `t` (Unix ms), or `None` when there is none before
    /// [`MAX_TIME_MS`] (or the expression can never match, as `0 0 30 2 *`).
    pub fn next_after(&self, t: u64) -> Option<u64> {
        match self {
            Trigger::Every { ms } => (t / ms)
                .checked_add(1)?
                .checked_mul(*ms)
                .filter(|&n| n <= MAX_TIME_MS),
            Trigger::Cron { cron, tz, .. } => {
                // Cron ticks are whole seconds: the next one after the second `t` is in.
                let z = Self::zoned(tz, t)?;
                Self::ms_of(&cron.find_next_occurrence(&z, false).ok()?)
            }
        }
    }

    /// The latest tick at or before `t` (Unix ms), or `None`.
    pub fn latest_at_or_before(&self, t: u64) -> Option<u64> {
        match self {
            Trigger::Every { ms } => Some(t / ms * ms).filter(|&n| n > 0),
            Trigger::Cron { cron, tz, .. } => {
                let z = Self::zoned(tz, t)?;
                Self::ms_of(&cron.find_previous_occurrence(&z, true).ok()?)
            }
        }
    }

    /// How many ticks lie in `(after, upto]`, counted one by one for cron up to
    /// [`MAX_SKIP_COUNT`].
    fn count_between(&self, after: u64, upto: u64) -> u64 {
        if upto <= after {
            return 0;
        }
        match self {
            Trigger::Every { ms } => upto / ms - after / ms,
            Trigger::Cron { .. } => {
                let mut n = 0;
                let mut t = after;
                while n < MAX_SKIP_COUNT {
                    match self.next_after(t) {
                        Some(next) if next <= upto => {
                            n += 1;
                            t = next;
                        }
                        _ => break,
                    }
                }
                n
            }
        }
    }
}

/// What a firing pass does with ticks that are later than the grace period (the
/// server was down, or the schedule could not keep up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Missed {
    /// Push one job, for the latest missed tick, and skip the others (the default:
    /// what BullMQ repeatable jobs and Sidekiq-cron users see after downtime, one run
    /// to catch up, never a flood).
    #[default]
    Latest,
    /// Push a job for every missed tick, oldest first (at most `max_fires` per pass).
    All,
    /// Push nothing for missed ticks.
    Skip,
}

impl Missed {
    /// The option word.
    pub fn name(self) -> &'static str {
        match self {
            Missed::Latest => "LATEST",
            Missed::All => "ALL",
            Missed::Skip => "SKIP",
        }
    }

    fn parse(w: &[u8]) -> Option<Missed> {
        [Missed::Latest, Missed::All, Missed::Skip]
            .into_iter()
            .find(|m| is(w, m.name()))
    }
}

/// The result of [`due_ticks`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Due {
    /// The ticks to push a job for, oldest first.
    pub fire: Vec<u64>,
    /// Missed ticks passed over without a job (at least this many for cron, see
    /// [`MAX_SKIP_COUNT`]).
    pub skipped: u64,
    /// The new cursor: every tick at or before it is handled (fired or skipped) once the
    /// ticks in `fire` are pushed.
    pub cursor: u64,
}

/// The ticks a firing pass at `now` must handle, given that every tick at or before
/// `cursor` was handled already.
///
/// A tick `t` with `cursor < t <= now` is *on time* when `now - t < grace` (a firing
/// pass is a little late, the cron runs `hz` times a second) and always fires. A tick
/// late by `grace` or more is *missed*, and `missed` says what happens to it. At most
/// `max_fires` ticks fire (oldest first); the rest stay after the returned cursor for the
/// next pass, so a backlog is worked off over several passes, never dropped.
pub fn due_ticks(
    trigger: &Trigger,
    cursor: u64,
    now: u64,
    missed: Missed,
    grace: u64,
    max_fires: usize,
) -> Due {
    let mut due = Due {
        fire: Vec::new(),
        skipped: 0,
        cursor,
    };
    if now <= cursor || max_fires == 0 {
        return due;
    }
    // Missed ticks are those at or before `cutoff`.
    let cutoff = now.saturating_sub(grace);
    let mut from = cursor;
    if cutoff > cursor && missed != Missed::All {
        if let Some(last_missed) = trigger.latest_at_or_before(cutoff).filter(|&t| t > cursor) {
            match missed {
                Missed::Latest => {
                    due.skipped = trigger.count_between(cursor, last_missed) - 1;
                    due.fire.push(last_missed);
                }
                Missed::Skip => due.skipped = trigger.count_between(cursor, last_missed),
                Missed::All => unreachable!(),
            }
            due.cursor = last_missed;
        }
        from = cutoff.max(cursor);
    }
    let mut t = from;
    while due.fire.len() < max_fires {
        match trigger.next_after(t) {
            Some(next) if next <= now => {
                due.fire.push(next);
                due.cursor = next;
                t = next;
            }
            _ => break,
        }
    }
    due
}

/// What one schedule pushes, and when: the arguments of `JOB.SCHEDULE UPSERT` after the
/// name.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// The queue's key.
    pub queue: Vec<u8>,
    /// When it ticks.
    pub trigger: Trigger,
    /// What happens to ticks missed while the server was down.
    pub missed: Missed,
    /// The payload of every job.
    pub payload: Vec<u8>,
    /// `JOB.PUSH` options given to every job, as given (validated by the server, which
    /// owns JOB.PUSH's parser).
    pub options: Vec<Vec<u8>>,
}

impl Spec {
    /// Parses `queue (CRON expr [TZ zone] | EVERY ms) [MISSED LATEST|ALL|SKIP]
    /// TEMPLATE payload [option ...]`.
    pub fn parse(args: &[&[u8]]) -> Result<Spec, String> {
        let syntax = || "syntax error".to_string();
        let (queue, mut rest) = args.split_first().ok_or_else(syntax)?;
        let mut trigger = None;
        let mut missed = Missed::default();
        loop {
            let Some((word, after)) = rest.split_first() else {
                return Err("TEMPLATE payload is required".into());
            };
            if is(word, "CRON") && trigger.is_none() {
                let (expr, after) = after.split_first().ok_or_else(syntax)?;
                let expr =
                    std::str::from_utf8(expr).map_err(|_| "invalid cron expression".to_string())?;
                let (zone, after) = match after.split_first() {
                    Some((w, a)) if is(w, "TZ") => {
                        let (z, a) = a.split_first().ok_or_else(syntax)?;
                        let z =
                            std::str::from_utf8(z).map_err(|_| "unknown time zone".to_string())?;
                        (Some(z), a)
                    }
                    _ => (None, after),
                };
                trigger = Some(Trigger::cron(expr, zone)?);
                rest = after;
            } else if is(word, "EVERY") && trigger.is_none() {
                let (ms, after) = after.split_first().ok_or_else(syntax)?;
                let ms = std::str::from_utf8(ms)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or_else(|| "value is not an integer or out of range".to_string())?;
                trigger = Some(Trigger::every(ms)?);
                rest = after;
            } else if is(word, "MISSED") {
                let (m, after) = after.split_first().ok_or_else(syntax)?;
                missed = Missed::parse(m).ok_or_else(syntax)?;
                rest = after;
            } else if is(word, "TEMPLATE") {
                let (payload, options) = after.split_first().ok_or_else(syntax)?;
                let trigger = trigger.ok_or_else(|| "CRON or EVERY is required".to_string())?;
                return Ok(Spec {
                    queue: queue.to_vec(),
                    trigger,
                    missed,
                    payload: payload.to_vec(),
                    options: options.iter().map(|o| o.to_vec()).collect(),
                });
            } else {
                return Err(syntax());
            }
        }
    }

    /// The words [`Spec::parse`] reads back into this spec.
    pub fn to_args(&self) -> Vec<Vec<u8>> {
        let mut v = vec![self.queue.clone()];
        v.extend(self.trigger.to_args());
        if self.missed != Missed::default() {
            v.push(b"MISSED".to_vec());
            v.push(self.missed.name().as_bytes().to_vec());
        }
        v.push(b"TEMPLATE".to_vec());
        v.push(self.payload.clone());
        v.extend(self.options.iter().cloned());
        v
    }
}

/// What a schedule has done so far (saved and logged with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Every tick at or before this Unix ms is handled.
    pub cursor: u64,
    /// The last tick a job was pushed for (0: none yet).
    pub last_fired: u64,
    /// Jobs pushed (ticks fired).
    pub fired: u64,
    /// Missed ticks passed over without a job.
    pub skipped: u64,
    /// Ticks whose push failed (the error is logged; the tick is not retried).
    pub errors: u64,
}

impl Progress {
    /// The five numbers, in the order of `JOB.SCHEDULE RESTORE` and `ADVANCE`.
    pub fn to_args(&self) -> Vec<Vec<u8>> {
        [
            self.cursor,
            self.last_fired,
            self.fired,
            self.skipped,
            self.errors,
        ]
        .iter()
        .map(|n| n.to_string().into_bytes())
        .collect()
    }

    /// Reads [`Progress::to_args`]'s five numbers.
    pub fn parse(args: &[&[u8]]) -> Option<Progress> {
        let n: Vec<u64> = args
            .iter()
            .map(|a| std::str::from_utf8(a).ok()?.parse().ok())
            .collect::<Option<_>>()?;
        match n[..] {
            [cursor, last_fired, fired, skipped, errors] => Some(Progress {
                cursor,
                last_fired,
                fired,
                skipped,
                errors,
            }),
            _ => None,
        }
    }
}

/// One schedule: what it pushes, in which database, and its progress.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// The database of its queue (the one selected by the client that created it).
    pub db: usize,
    /// What and when.
    pub spec: Spec,
    /// What it has done.
    pub progress: Progress,
    /// Unix ms of its creation.
    pub created: u64,
    /// The last push error (empty: none).
    pub last_error: String,
}

/// The deterministic jid of the job a schedule pushes for one tick:
/// `<name>:<tick-ms>`, so a repeated or replayed fire of the same tick is a no-op.
pub fn jid(name: &[u8], tick: u64) -> Vec<u8> {
    let mut j = name.to_vec();
    j.push(b':');
    j.extend_from_slice(tick.to_string().as_bytes());
    j
}

/// The schedules by name. Changes bump a generation, so a firing pass that read a
/// schedule can tell whether it was replaced or deleted meanwhile.
///
/// Each entry also caches its next tick after its cursor, so a firing pass skips a
/// schedule that is not due with one comparison instead of a cron search.
#[derive(Debug, Default)]
pub struct Schedules {
    map: BTreeMap<Vec<u8>, Entry>,
    generation: u64,
}

#[derive(Debug)]
struct Entry {
    generation: u64,
    schedule: Schedule,
    /// `schedule.spec.trigger.next_after(schedule.progress.cursor)`.
    next: Option<u64>,
}

impl Entry {
    fn new(generation: u64, schedule: Schedule) -> Entry {
        let next = schedule.spec.trigger.next_after(schedule.progress.cursor);
        Entry {
            generation,
            schedule,
            next,
        }
    }
}

impl Schedules {
    /// Number of schedules.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The schedule called `name`.
    pub fn get(&self, name: &[u8]) -> Option<&Schedule> {
        self.map.get(name).map(|e| &e.schedule)
    }

    /// The schedule called `name` with its generation.
    pub fn get_gen(&self, name: &[u8]) -> Option<(u64, &Schedule)> {
        self.map.get(name).map(|e| (e.generation, &e.schedule))
    }

    /// Creates or replaces `name` (refused, as `Err`, when it is new and `max` exist).
    pub fn put(&mut self, name: &[u8], s: Schedule, max: usize) -> Result<(), String> {
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(format!("schedule name must be 1 to {MAX_NAME_LEN} bytes"));
        }
        if !self.map.contains_key(name) && self.map.len() >= max {
            return Err(format!("too many schedules (job-schedule-max is {max})"));
        }
        self.generation += 1;
        self.map
            .insert(name.to_vec(), Entry::new(self.generation, s));
        Ok(())
    }

    /// Updates the progress of `name` if it is still generation `generation` (and its
    /// last error, when `error` is given).
    pub fn advance(
        &mut self,
        name: &[u8],
        generation: u64,
        p: Progress,
        error: Option<String>,
    ) -> bool {
        match self.map.get_mut(name) {
            Some(e) if e.generation == generation => {
                e.schedule.progress = p;
                if let Some(err) = error {
                    e.schedule.last_error = err;
                }
                e.next = e.schedule.spec.trigger.next_after(p.cursor);
                true
            }
            _ => false,
        }
    }

    /// Deletes `name`; true if it existed.
    pub fn del(&mut self, name: &[u8]) -> bool {
        self.map.remove(name).is_some()
    }

    /// Every schedule, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&Vec<u8>, &Schedule)> {
        self.map.iter().map(|(k, e)| (k, &e.schedule))
    }

    /// The schedules with a tick at or before `now` after their cursor, with their
    /// generations, by name.
    pub fn due(&self, now: u64) -> impl Iterator<Item = (&Vec<u8>, u64, &Schedule)> {
        self.map
            .iter()
            .filter(move |(_, e)| e.next.is_some_and(|n| n <= now))
            .map(|(k, e)| (k, e.generation, &e.schedule))
    }

    /// Removes every schedule.
    pub fn clear(&mut self) {
        self.map.clear();
    }
}

#[cfg(test)]
mod tests;
