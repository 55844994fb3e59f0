//! The `RL.*` limiter: one value type holding a rate limit's parameters and state for
//! five algorithms, with all arithmetic on the server's clock in integer microseconds.
//!
//! [`RateLimit::check`] is a pure function of the state, the spec, the cost and `now`:
//! nothing here reads a clock, so tests inject time, and a write can be propagated as
//! the resulting state. Every product is computed in `i128` and every parameter is
//! bounded by [`Spec::parse`], so no input can overflow or panic.

use std::collections::VecDeque;

/// Largest `limit` (or capacity, or burst) a spec accepts. The sliding log keeps one
/// entry per distinct request time, so this also bounds its memory.
pub const MAX_LIMIT: i64 = 1_000_000;
/// Longest window or period, in milliseconds (about 31.7 years).
pub const MAX_WINDOW_MS: i64 = 1_000_000_000_000;
/// Largest token-bucket refill rate per second.
pub const MAX_RATE: i64 = 1_000_000_000;

/// A limiter's algorithm and parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spec {
    /// GCRA: at most `burst` at once, `rate` per `period_ms` steadily.
    Gcra {
        /// Requests allowed at once (the bucket size).
        burst: i64,
        /// Requests per period.
        rate: i64,
        /// Period in ms.
        period_ms: i64,
    },
    /// Token bucket: `capacity` tokens, refilled continuously at `refill` per second.
    Token {
        /// Bucket size.
        capacity: i64,
        /// Tokens added per second.
        refill: i64,
    },
    /// Fixed window aligned to the epoch: `limit` per `window_ms`.
    Fixed {
        /// Requests per window.
        limit: i64,
        /// Window length in ms.
        window_ms: i64,
    },
    /// Sliding-window counter: the previous window's count weighted by its overlap.
    Sliding {
        /// Requests per window.
        limit: i64,
        /// Window length in ms.
        window_ms: i64,
    },
    /// Exact sliding log of request times.
    Log {
        /// Requests per window.
        limit: i64,
        /// Window length in ms.
        window_ms: i64,
    },
    /// Concurrency limit (`RL.LEASE`): at most `max` live leases, each expiring on its
    /// own deadline. Not an `RL.CHECK` algorithm: [`Spec::parse`] never yields it.
    Lease {
        /// Most live holders.
        max: i64,
    },
}

/// A spec that cannot be parsed: the error text (without `ERR `).
pub type SpecError = String;

fn int(arg: &[u8], what: &str, min: i64, max: i64) -> Result<i64, SpecError> {
    let v = crate::num::parse_i64(arg)
        .ok_or_else(|| format!("{what} is not an integer or out of range"))?;
    if v < min || v > max {
        return Err(format!("{what} must be between {min} and {max}"));
    }
    Ok(v)
}

impl Spec {
    /// Number of arguments after the algorithm name.
    pub fn arg_count(alg: &[u8]) -> Option<usize> {
        match alg.to_ascii_uppercase().as_slice() {
            b"GCRA" => Some(3),
            b"TOKEN" | b"FIXED" | b"SLIDING" | b"LOG" => Some(2),
            _ => None,
        }
    }

    /// Parses `ALG args...` (exactly the algorithm and its arguments).
    pub fn parse(alg: &[u8], a: &[&[u8]]) -> Result<Spec, SpecError> {
        let name = alg.to_ascii_uppercase();
        let want = Spec::arg_count(alg).ok_or_else(|| {
            format!(
                "unknown rate limit algorithm '{}' (GCRA, TOKEN, FIXED, SLIDING, LOG)",
                String::from_utf8_lossy(alg)
            )
        })?;
        if a.len() != want {
            return Err(format!(
                "{} takes {want} arguments",
                String::from_utf8_lossy(&name)
            ));
        }
        Ok(match name.as_slice() {
            b"GCRA" => {
                let s = Spec::Gcra {
                    burst: int(a[0], "burst", 1, MAX_LIMIT)?,
                    rate: int(a[1], "rate", 1, MAX_LIMIT)?,
                    period_ms: int(a[2], "period", 1, MAX_WINDOW_MS)?,
                };
                // The whole burst's time must stay within the longest window, so every
                // TAT product fits 64 bits.
                if s.window_ms() > MAX_WINDOW_MS {
                    return Err(format!(
                        "burst * period / rate must be at most {MAX_WINDOW_MS} ms"
                    ));
                }
                s
            }
            b"TOKEN" => Spec::Token {
                capacity: int(a[0], "capacity", 1, MAX_LIMIT)?,
                refill: int(a[1], "refill_per_second", 1, MAX_RATE)?,
            },
            b"FIXED" => Spec::Fixed {
                limit: int(a[0], "limit", 1, MAX_LIMIT)?,
                window_ms: int(a[1], "window", 1, MAX_WINDOW_MS)?,
            },
            b"SLIDING" => Spec::Sliding {
                limit: int(a[0], "limit", 1, MAX_LIMIT)?,
                window_ms: int(a[1], "window", 1, MAX_WINDOW_MS)?,
            },
            _ => Spec::Log {
                limit: int(a[0], "limit", 1, MAX_LIMIT)?,
                window_ms: int(a[1], "window", 1, MAX_WINDOW_MS)?,
            },
        })
    }

    /// The algorithm's name (`OBJECT ENCODING`, `RL.INFO`).
    pub fn name(&self) -> &'static str {
        match self {
            Spec::Gcra { .. } => "gcra",
            Spec::Token { .. } => "token",
            Spec::Fixed { .. } => "fixed",
            Spec::Sliding { .. } => "sliding",
            Spec::Log { .. } => "log",
            Spec::Lease { .. } => "lease",
        }
    }

    /// The limit reported to clients: requests allowed at once from a fresh state.
    pub fn limit(&self) -> i64 {
        match *self {
            Spec::Gcra { burst, .. } => burst,
            Spec::Token { capacity, .. } => capacity,
            Spec::Fixed { limit, .. } | Spec::Sliding { limit, .. } | Spec::Log { limit, .. } => {
                limit
            }
            Spec::Lease { max } => max,
        }
    }

    /// The policy window in ms (for the `RateLimit-Policy` header): the time a full
    /// limit takes to replenish.
    pub fn window_ms(&self) -> i64 {
        match *self {
            Spec::Gcra {
                burst,
                rate,
                period_ms,
            } => ((burst as i128 * period_ms as i128) / rate as i128) as i64,
            Spec::Token { capacity, refill } => {
                ((capacity as i128 * 1000 + refill as i128 - 1) / refill as i128) as i64
            }
            Spec::Fixed { window_ms, .. }
            | Spec::Sliding { window_ms, .. }
            | Spec::Log { window_ms, .. } => window_ms,
            // Leases have no window: a holder frees its place when it releases it.
            Spec::Lease { .. } => 0,
        }
    }
}

/// A limiter's state; which variant is used follows the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Theoretical arrival time, µs.
    Gcra { tat: i64 },
    /// Tokens in millionths, as of `at` µs.
    Token { micro: i64, at: i64 },
    /// Count in the window starting at `start` µs.
    Fixed { start: i64, count: i64 },
    /// Counts of the window starting at `start` µs and of the one before it.
    Sliding { start: i64, prev: i64, curr: i64 },
    /// (time µs, cost) of every request still in the window, oldest first.
    Log { entries: VecDeque<(i64, i64)> },
    /// (lease id, deadline µs) of every lease, in grant order (ids increase); expired
    /// ones are pruned on access. `next_id` is the smallest id not yet given out.
    // Boxed: every other state fits 32 bytes, and `RateLimit` stays at 64.
    #[allow(clippy::box_collection)]
    Lease {
        next_id: i64,
        leases: Box<Vec<(i64, i64)>>,
    },
}

/// The `RL.*` value type: a spec and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    spec: Spec,
    state: State,
}

/// What a check, peek or refund answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// True if the request passes (always true for a refund).
    pub allowed: bool,
    /// The spec's limit.
    pub limit: i64,
    /// Requests of cost 1 that would pass right after this one.
    pub remaining: i64,
    /// 0 when allowed; ms until the request could pass; -1 if it never can (cost above
    /// the limit).
    pub retry_after_ms: i64,
    /// ms until the limiter is back to its full limit.
    pub reset_after_ms: i64,
}

/// How a check treats the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Consume `cost` if allowed.
    Consume,
    /// Answer as `Consume` would, store nothing.
    Peek,
    /// Give back `cost` (never below empty).
    Refund,
}

fn ceil_div(a: i128, b: i128) -> i128 {
    debug_assert!(b > 0);
    if a <= 0 { a / b } else { (a + b - 1) / b }
}

fn us_to_ms_ceil(us: i128) -> i64 {
    ceil_div(us, 1000).clamp(0, i64::MAX as i128) as i64
}

impl RateLimit {
    /// A fresh limiter (full limit available).
    pub fn new(spec: Spec, now_us: i64) -> RateLimit {
        let state = match spec {
            Spec::Gcra { .. } => State::Gcra { tat: now_us },
            Spec::Token { capacity, .. } => State::Token {
                micro: capacity * 1_000_000,
                at: now_us,
            },
            Spec::Fixed { .. } => State::Fixed {
                start: now_us,
                count: 0,
            },
            Spec::Sliding { .. } => State::Sliding {
                start: now_us,
                prev: 0,
                curr: 0,
            },
            Spec::Log { .. } => State::Log {
                entries: VecDeque::new(),
            },
            Spec::Lease { .. } => State::Lease {
                next_id: 1,
                leases: Box::default(),
            },
        };
        RateLimit { spec, state }
    }

    /// The spec.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// Uses `spec` from now on. The state is kept when the algorithm is the same (new
    /// parameters apply to it), reset otherwise.
    pub fn set_spec(&mut self, spec: Spec, now_us: i64) {
        if spec.name() == self.spec.name() {
            self.spec = spec;
        } else {
            *self = RateLimit::new(spec, now_us);
        }
    }

    /// Heap bytes beyond the box (the sliding log's entries).
    pub fn heap_size(&self) -> usize {
        match &self.state {
            State::Log { entries } => entries.capacity() * std::mem::size_of::<(i64, i64)>(),
            State::Lease { leases, .. } => {
                std::mem::size_of::<Vec<(i64, i64)>>()
                    + leases.capacity() * std::mem::size_of::<(i64, i64)>()
            }
            _ => 0,
        }
    }

    /// Checks (and in `Consume`/`Refund` mode updates) the limiter for a request of
    /// `cost` at `now_us`. `cost` is at least 0; 0 checks without consuming.
    pub fn check(&mut self, now_us: i64, cost: i64, mode: Mode) -> Decision {
        debug_assert!(cost >= 0);
        let mut next = self.clone();
        next.advance(now_us);
        let limit = self.spec.limit();
        let cost = cost.min(MAX_LIMIT + 1);
        let (allowed, retry) = if mode == Mode::Refund {
            // Refunding more than the limit is refunding everything.
            next.refund(cost.min(limit));
            (true, 0)
        } else if cost > limit {
            (false, -1)
        } else {
            let wait = next.wait_us(now_us, cost);
            if wait == 0 {
                next.consume(now_us, cost);
                (true, 0)
            } else {
                (false, us_to_ms_ceil(wait as i128).max(1))
            }
        };
        let d = Decision {
            allowed,
            limit,
            remaining: next.remaining(now_us),
            retry_after_ms: retry,
            reset_after_ms: us_to_ms_ceil(next.reset_us(now_us) as i128),
        };
        if mode != Mode::Peek && (allowed || mode == Mode::Refund) {
            *self = next;
        }
        d
    }

    /// Brings the state to `now` (window rolls, refills, log pruning). Does not change
    /// what any later check answers.
    fn advance(&mut self, now: i64) {
        match (&self.spec, &mut self.state) {
            (Spec::Token { capacity, refill }, State::Token { micro, at }) if now > *at => {
                let full = *capacity as i128 * 1_000_000;
                let added = (now - *at) as i128 * *refill as i128;
                *micro = (*micro as i128 + added).min(full) as i64;
                *at = now;
            }
            (Spec::Fixed { window_ms, .. }, State::Fixed { start, count }) => {
                let w = window_ms * 1000;
                let s = now - now.rem_euclid(w);
                if s != *start {
                    *start = s;
                    *count = 0;
                }
            }
            (Spec::Sliding { window_ms, .. }, State::Sliding { start, prev, curr }) => {
                let w = window_ms * 1000;
                let s = now - now.rem_euclid(w);
                if s != *start {
                    *prev = if s - *start == w { *curr } else { 0 };
                    *curr = 0;
                    *start = s;
                }
            }
            (Spec::Log { window_ms, .. }, State::Log { entries }) => {
                let w = window_ms * 1000;
                while entries.front().is_some_and(|&(t, _)| t + w <= now) {
                    entries.pop_front();
                }
            }
            (Spec::Lease { .. }, State::Lease { leases, .. }) => {
                leases.retain(|&(_, deadline)| deadline > now);
            }
            _ => {}
        }
    }

    /// µs until a request of `cost` (≤ limit) passes; 0 if it passes now. The state
    /// has been advanced to `now`.
    fn wait_us(&self, now: i64, cost: i64) -> i64 {
        match (&self.spec, &self.state) {
            (
                &Spec::Gcra {
                    burst,
                    rate,
                    period_ms,
                },
                &State::Gcra { tat },
            ) => {
                let t = gcra_interval(rate, period_ms);
                let tau = t as i128 * burst as i128;
                let new_tat = tat.max(now) as i128 + t as i128 * cost as i128;
                let allow_at = new_tat - tau;
                (allow_at - now as i128).max(0) as i64
            }
            (&Spec::Token { refill, .. }, &State::Token { micro, .. }) => {
                let need = cost as i128 * 1_000_000 - micro as i128;
                if need <= 0 {
                    0
                } else {
                    ceil_div(need, refill as i128) as i64
                }
            }
            (&Spec::Fixed { limit, window_ms }, &State::Fixed { start, count }) => {
                if count + cost <= limit {
                    0
                } else {
                    start + window_ms * 1000 - now
                }
            }
            (&Spec::Sliding { limit, window_ms }, &State::Sliding { start, prev, curr }) => {
                let w = window_ms as i128 * 1000;
                let e = (now - start) as i128;
                let (l, c) = (limit as i128, cost as i128);
                let (p, cu) = (prev as i128, curr as i128);
                // Passes at elapsed x (in this window) when p*(w-x) + (cu+c)*w <= l*w.
                if (cu + c) <= l {
                    if p * (w - e) + (cu + c) * w <= l * w {
                        return 0;
                    }
                    // x >= w - (l - cu - c) * w / p
                    let x = w - ((l - cu - c) * w) / p;
                    return (x - e).max(1) as i64;
                }
                // In the next window, with this one's count as the previous one:
                // cu*(w-x) + c*w <= l*w  →  x >= w - (l - c) * w / cu.
                let x = if cu == 0 { 0 } else { w - ((l - c) * w) / cu };
                (w - e + x.max(0)) as i64
            }
            (&Spec::Log { limit, window_ms }, State::Log { entries }) => {
                let total: i64 = entries.iter().map(|&(_, c)| c).sum();
                if total + cost <= limit {
                    return 0;
                }
                let w = window_ms * 1000;
                let mut freed = 0;
                for &(t, c) in entries {
                    freed += c;
                    if total - freed + cost <= limit {
                        return (t + w - now).max(1);
                    }
                }
                // Unreachable for cost <= limit: freeing every entry makes room.
                w
            }
            (&Spec::Lease { max }, State::Lease { leases, .. }) => {
                if leases.len() as i64 + cost <= max {
                    return 0;
                }
                // The `cost`-th lease to expire frees enough places.
                let mut deadlines: Vec<i64> = leases.iter().map(|&(_, d)| d).collect();
                deadlines.sort_unstable();
                let need = (leases.len() as i64 + cost - max) as usize;
                deadlines.get(need - 1).map_or(0, |&d| (d - now).max(1))
            }
            _ => 0,
        }
    }

    fn consume(&mut self, now: i64, cost: i64) {
        match (&self.spec, &mut self.state) {
            (
                &Spec::Gcra {
                    rate, period_ms, ..
                },
                State::Gcra { tat },
            ) => {
                *tat = (*tat).max(now) + gcra_interval(rate, period_ms) * cost;
            }
            (_, State::Token { micro, .. }) => *micro -= cost * 1_000_000,
            (_, State::Fixed { count, .. }) => *count += cost,
            (_, State::Sliding { curr, .. }) => *curr += cost,
            (_, State::Log { entries }) => {
                if cost == 0 {
                    return;
                }
                match entries.back_mut() {
                    Some((t, c)) if *t == now => *c += cost,
                    _ => entries.push_back((now, cost)),
                }
            }
            // Leases are granted by `lease_acquire` (with a ttl); a check only peeks.
            (_, State::Lease { .. }) => {}
            // The state always follows the spec (`new`, `set_spec`).
            _ => debug_assert!(false, "rate limit state does not match its spec"),
        }
    }

    fn refund(&mut self, cost: i64) {
        match (&self.spec, &mut self.state) {
            (
                &Spec::Gcra {
                    rate, period_ms, ..
                },
                State::Gcra { tat },
            ) => {
                // Never earlier than "full": advance() leaves tat >= the time a full
                // burst was available only through max(tat, now) in checks.
                *tat -= gcra_interval(rate, period_ms) * cost;
            }
            (&Spec::Token { capacity, .. }, State::Token { micro, .. }) => {
                *micro = (*micro + cost * 1_000_000).min(capacity * 1_000_000);
            }
            (_, State::Fixed { count, .. }) => *count = (*count - cost).max(0),
            (_, State::Sliding { curr, .. }) => *curr = (*curr - cost).max(0),
            (_, State::Log { entries }) => {
                let mut left = cost;
                while left > 0 {
                    let Some((_, c)) = entries.back_mut() else {
                        break;
                    };
                    if *c > left {
                        *c -= left;
                        left = 0;
                    } else {
                        left -= *c;
                        entries.pop_back();
                    }
                }
            }
            // Leases are given back by id (`lease_release`).
            (_, State::Lease { .. }) => {}
            // The state always follows the spec (`new`, `set_spec`).
            _ => debug_assert!(false, "rate limit state does not match its spec"),
        }
    }

    /// Requests of cost 1 that pass now (state advanced to `now`).
    fn remaining(&self, now: i64) -> i64 {
        match (&self.spec, &self.state) {
            (
                &Spec::Gcra {
                    burst,
                    rate,
                    period_ms,
                },
                &State::Gcra { tat },
            ) => {
                let t = gcra_interval(rate, period_ms) as i128;
                let used = (tat as i128 - now as i128).max(0);
                ((t * burst as i128 - used) / t).clamp(0, burst as i128) as i64
            }
            (_, &State::Token { micro, .. }) => (micro / 1_000_000).max(0),
            (&Spec::Fixed { limit, .. }, &State::Fixed { count, .. }) => (limit - count).max(0),
            (&Spec::Sliding { limit, window_ms }, &State::Sliding { start, prev, curr }) => {
                let w = window_ms as i128 * 1000;
                let e = (now - start) as i128;
                // floor(l - (p*(w-e)/w + cu)) = floor((l*w - p*(w-e) - cu*w) / w)
                let num = limit as i128 * w - prev as i128 * (w - e) - curr as i128 * w;
                if num <= 0 { 0 } else { (num / w) as i64 }
            }
            (&Spec::Log { limit, .. }, State::Log { entries }) => {
                (limit - entries.iter().map(|&(_, c)| c).sum::<i64>()).max(0)
            }
            (&Spec::Lease { max }, State::Lease { leases, .. }) => {
                (max - leases.len() as i64).max(0)
            }
            _ => 0,
        }
    }

    /// µs until the full limit is available again (state advanced to `now`).
    fn reset_us(&self, now: i64) -> i64 {
        match (&self.spec, &self.state) {
            (_, &State::Gcra { tat }) => (tat - now).max(0),
            (&Spec::Token { capacity, refill }, &State::Token { micro, .. }) => {
                let need = capacity as i128 * 1_000_000 - micro as i128;
                ceil_div(need.max(0), refill as i128) as i64
            }
            (&Spec::Fixed { window_ms, .. }, &State::Fixed { start, count }) => {
                if count == 0 {
                    0
                } else {
                    start + window_ms * 1000 - now
                }
            }
            (&Spec::Sliding { window_ms, .. }, &State::Sliding { start, prev, curr }) => {
                let w = window_ms * 1000;
                if curr > 0 {
                    start + 2 * w - now
                } else if prev > 0 {
                    start + w - now
                } else {
                    0
                }
            }
            (&Spec::Log { window_ms, .. }, State::Log { entries }) => entries
                .back()
                .map_or(0, |&(t, _)| (t + window_ms * 1000 - now).max(0)),
            (_, State::Lease { leases, .. }) => leases
                .iter()
                .map(|&(_, d)| d - now)
                .max()
                .unwrap_or(0)
                .max(0),
            _ => 0,
        }
    }

    /// The state's fields for `RL.INFO`, as (name, value) pairs.
    /// `now_us` counts the live leases of a lease limiter.
    pub fn state_fields(&self, now_us: i64) -> Vec<(&'static str, i64)> {
        match &self.state {
            State::Gcra { tat } => vec![("tat_us", *tat)],
            State::Token { micro, at } => vec![("tokens_micro", *micro), ("updated_us", *at)],
            State::Fixed { start, count } => vec![("window_start_us", *start), ("count", *count)],
            State::Sliding { start, prev, curr } => vec![
                ("window_start_us", *start),
                ("previous", *prev),
                ("current", *curr),
            ],
            State::Log { entries } => vec![
                ("entries", entries.len() as i64),
                ("total", entries.iter().map(|&(_, c)| c).sum()),
            ],
            State::Lease { next_id, .. } => vec![
                ("holders", self.lease_holders(now_us) as i64),
                ("next_id", *next_id),
            ],
        }
    }
}

impl RateLimit {
    /// The limiter as a list of integers (algorithm, parameters, state), for the RDB
    /// module-type codec. [`RateLimit::from_words`] reads it back.
    pub fn to_words(&self) -> Vec<i64> {
        let mut w = match self.spec {
            Spec::Gcra {
                burst,
                rate,
                period_ms,
            } => vec![0, burst, rate, period_ms],
            Spec::Token { capacity, refill } => vec![1, capacity, refill],
            Spec::Fixed { limit, window_ms } => vec![2, limit, window_ms],
            Spec::Sliding { limit, window_ms } => vec![3, limit, window_ms],
            Spec::Log { limit, window_ms } => vec![4, limit, window_ms],
            Spec::Lease { max } => vec![LEASE_KIND, max],
        };
        match &self.state {
            State::Gcra { tat } => w.push(*tat),
            State::Token { micro, at } => w.extend([*micro, *at]),
            State::Fixed { start, count } => w.extend([*start, *count]),
            State::Sliding { start, prev, curr } => w.extend([*start, *prev, *curr]),
            State::Log { entries } => {
                w.push(entries.len() as i64);
                for &(t, c) in entries {
                    w.extend([t, c]);
                }
            }
            State::Lease { next_id, leases } => {
                w.extend([*next_id, leases.len() as i64]);
                for &(id, deadline) in leases.iter() {
                    w.extend([id, deadline]);
                }
            }
        }
        w
    }

    /// Reads [`RateLimit::to_words`] back, checking the parameters as `Spec::parse`
    /// does and the state's invariants. `None` for anything malformed.
    pub fn from_words(w: &[i64]) -> Option<RateLimit> {
        let (&alg, rest) = w.split_first()?;
        if alg == LEASE_KIND {
            return RateLimit::lease_from_words(rest);
        }
        let names: [&[u8]; 5] = [b"GCRA", b"TOKEN", b"FIXED", b"SLIDING", b"LOG"];
        let name = *names.get(usize::try_from(alg).ok()?)?;
        let n = Spec::arg_count(name)?;
        let params: Vec<Vec<u8>> = rest
            .get(..n)?
            .iter()
            .map(|v| v.to_string().into_bytes())
            .collect();
        let refs: Vec<&[u8]> = params.iter().map(|p| p.as_slice()).collect();
        let spec = Spec::parse(name, &refs).ok()?;
        let st = &rest[n..];
        let nonneg = |v: i64| (v >= 0).then_some(v);
        let state = match (spec, st) {
            (Spec::Gcra { .. }, &[tat]) => State::Gcra { tat },
            (Spec::Token { capacity, .. }, &[micro, at]) => State::Token {
                micro: nonneg(micro).filter(|&m| m <= capacity * 1_000_000)?,
                at,
            },
            (Spec::Fixed { .. }, &[start, count]) => State::Fixed {
                start,
                count: nonneg(count)?,
            },
            (Spec::Sliding { .. }, &[start, prev, curr]) => State::Sliding {
                start,
                prev: nonneg(prev)?,
                curr: nonneg(curr)?,
            },
            (Spec::Log { limit, .. }, [len, pairs @ ..]) => {
                let len = usize::try_from(*len).ok()?;
                if pairs.len() != len * 2 || len as i64 > limit {
                    return None;
                }
                let entries: VecDeque<(i64, i64)> = pairs.chunks(2).map(|p| (p[0], p[1])).collect();
                let sorted = entries
                    .iter()
                    .zip(entries.iter().skip(1))
                    .all(|(a, b)| a.0 < b.0);
                let total: i64 = entries.iter().map(|&(_, c)| c.max(0)).sum();
                if !sorted || entries.iter().any(|&(_, c)| c <= 0) || total > limit {
                    return None;
                }
                State::Log { entries }
            }
            _ => return None,
        };
        Some(RateLimit { spec, state })
    }
}

/// The first word of a lease limiter's [`RateLimit::to_words`] (the RL.CHECK algorithms
/// are 0..=4). Files written before leases existed never hold it, so they load as before.
pub const LEASE_KIND: i64 = 5;

/// A lease granted by [`RateLimit::lease_acquire`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// The lease's id, for `RL.UNLEASE`.
    pub id: i64,
    /// When it expires, µs.
    pub deadline_us: i64,
}

impl RateLimit {
    /// A concurrency limiter with no holders.
    pub fn new_lease(max: i64) -> RateLimit {
        RateLimit::new(Spec::Lease { max }, 0)
    }

    /// Grants a lease expiring `ttl_us` after `now_us` if fewer than `max` leases are
    /// live (expired ones are dropped first). `Err` carries the µs until the earliest
    /// live lease expires (at least 1), when a place may free up.
    ///
    /// Ids increase and start at the grant time in µs at the least, so a key that
    /// expired and was created again never hands out an id an old holder still has.
    pub fn lease_acquire(&mut self, now_us: i64, ttl_us: i64) -> Result<Lease, i64> {
        self.advance(now_us);
        let (Spec::Lease { max }, State::Lease { next_id, leases }) = (&self.spec, &mut self.state)
        else {
            debug_assert!(false, "lease_acquire on a {} limiter", self.spec.name());
            return Err(-1);
        };
        if leases.len() as i64 >= *max {
            let earliest = leases.iter().map(|&(_, d)| d).min().unwrap_or(now_us);
            return Err((earliest - now_us).max(1));
        }
        let id = (*next_id).max(now_us);
        *next_id = id.saturating_add(1);
        let deadline_us = now_us.saturating_add(ttl_us);
        leases.push((id, deadline_us));
        Ok(Lease { id, deadline_us })
    }

    /// Releases lease `id`; false if it is not live (unknown, released or expired).
    pub fn lease_release(&mut self, now_us: i64, id: i64) -> bool {
        self.advance(now_us);
        let State::Lease { leases, .. } = &mut self.state else {
            return false;
        };
        match leases.iter().position(|&(i, _)| i == id) {
            Some(pos) => {
                leases.remove(pos);
                true
            }
            None => false,
        }
    }

    /// Live leases at `now_us`.
    pub fn lease_holders(&self, now_us: i64) -> usize {
        match &self.state {
            State::Lease { leases, .. } => leases.iter().filter(|&&(_, d)| d > now_us).count(),
            _ => 0,
        }
    }

    /// The live leases at `now_us`, in grant order.
    pub fn live_leases(&self, now_us: i64) -> impl Iterator<Item = Lease> + '_ {
        let leases: &[(i64, i64)] = match &self.state {
            State::Lease { leases, .. } => leases.as_slice(),
            _ => &[],
        };
        leases
            .iter()
            .filter(move |&&(_, d)| d > now_us)
            .map(|&(id, deadline_us)| Lease { id, deadline_us })
    }

    /// The earliest and the latest deadline (µs) of the live leases at `now_us`.
    pub fn lease_deadlines(&self, now_us: i64) -> Option<(i64, i64)> {
        let State::Lease { leases, .. } = &self.state else {
            return None;
        };
        let live = leases.iter().map(|&(_, d)| d).filter(|&d| d > now_us);
        let min = live.clone().min()?;
        Some((min, live.max()?))
    }

    /// Reads the words after [`LEASE_KIND`]: `max next_id n (id deadline)*n`, ids
    /// increasing and below `next_id`, at most `max` leases.
    fn lease_from_words(w: &[i64]) -> Option<RateLimit> {
        let (&[max, next_id, n], pairs) = w.split_first_chunk::<3>()?;
        if !(1..=MAX_LIMIT).contains(&max) || n < 0 || n > max {
            return None;
        }
        if pairs.len() != 2 * n as usize {
            return None;
        }
        let leases: Vec<(i64, i64)> = pairs.chunks(2).map(|p| (p[0], p[1])).collect();
        let increasing = leases.windows(2).all(|p| p[0].0 < p[1].0);
        if !increasing || leases.last().is_some_and(|&(id, _)| id >= next_id) {
            return None;
        }
        Some(RateLimit {
            spec: Spec::Lease { max },
            state: State::Lease {
                next_id,
                leases: Box::new(leases),
            },
        })
    }
}

/// GCRA's emission interval in µs: `period / rate`, at least 1 µs.
fn gcra_interval(rate: i64, period_ms: i64) -> i64 {
    ((period_ms as i128 * 1000) / rate as i128).max(1) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1000;
    const T0: i64 = 1_700_000_000_000 * MS;

    fn spec(alg: &str, args: &[&str]) -> Spec {
        let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        Spec::parse(alg.as_bytes(), &a).unwrap()
    }

    /// Rows: (ms after T0, cost, mode, allowed, remaining, retry_ms, reset_ms).
    fn run(s: Spec, rows: &[(i64, i64, Mode, bool, i64, i64, i64)]) {
        let mut rl = RateLimit::new(s, T0);
        for (i, &(off, cost, mode, allowed, remaining, retry, reset)) in rows.iter().enumerate() {
            let d = rl.check(T0 + off * MS, cost, mode);
            assert_eq!(
                (d.allowed, d.remaining, d.retry_after_ms, d.reset_after_ms),
                (allowed, remaining, retry, reset),
                "{s:?} row {i}"
            );
            assert_eq!(d.limit, s.limit());
        }
    }

    use Mode::*;

    #[test]
    fn gcra_burst_steady_rate_retry() {
        // 3 at once, 1 per second.
        run(
            spec("GCRA", &["3", "1", "1000"]),
            &[
                (0, 1, Consume, true, 2, 0, 1000),
                (0, 2, Consume, true, 0, 0, 3000),
                (0, 1, Consume, false, 0, 1000, 3000),
                (0, 4, Consume, false, 0, -1, 3000),
                (250, 1, Peek, false, 0, 750, 2750),
                (1000, 1, Consume, true, 0, 0, 3000),
                (1000, 1, Refund, true, 1, 0, 2000),
                (1000, 1, Consume, true, 0, 0, 3000),
                (5000, 0, Consume, true, 3, 0, 0),
                (5000, 2, Consume, true, 1, 0, 2000),
            ],
        );
    }

    #[test]
    fn token_bucket() {
        // 5 tokens, 2 per second (one every 500 ms).
        run(
            spec("TOKEN", &["5", "2"]),
            &[
                (0, 5, Consume, true, 0, 0, 2500),
                (0, 1, Consume, false, 0, 500, 2500),
                (200, 1, Peek, false, 0, 300, 2300),
                (500, 1, Consume, true, 0, 0, 2500),
                (500, 6, Consume, false, 0, -1, 2500),
                (1500, 2, Consume, true, 0, 0, 2500),
                (1500, 1, Refund, true, 1, 0, 2000),
                (10_000, 0, Peek, true, 5, 0, 0),
            ],
        );
    }

    #[test]
    fn fixed_window_boundaries() {
        // 3 per second, windows aligned to the epoch (T0 is on a boundary).
        run(
            spec("FIXED", &["3", "1000"]),
            &[
                (0, 2, Consume, true, 1, 0, 1000),
                (999, 1, Consume, true, 0, 0, 1),
                (999, 1, Consume, false, 0, 1, 1),
                (1000, 3, Consume, true, 0, 0, 1000),
                (1400, 1, Refund, true, 1, 0, 600),
                (1400, 2, Consume, false, 1, 600, 600),
                (1400, 1, Consume, true, 0, 0, 600),
                (2000, 0, Peek, true, 3, 0, 0),
            ],
        );
    }

    #[test]
    fn sliding_window_counter() {
        // 10 per second.
        run(
            spec("SLIDING", &["10", "1000"]),
            &[
                (0, 10, Consume, true, 0, 0, 2000),
                (500, 1, Consume, false, 0, 600, 1500),
                // Next window, 250 ms in: previous weighs 0.75 → 7.5 used.
                (1250, 2, Consume, true, 0, 0, 1750),
                // 9.5 used: a request of 1 waits until previous weighs ≤ 0.8 → 1300 ms.
                (1250, 1, Consume, false, 0, 50, 1750),
                (1300, 1, Consume, true, 0, 0, 1700),
                (3000, 0, Peek, true, 10, 0, 0),
            ],
        );
    }

    #[test]
    fn sliding_log_exact() {
        // 3 per second, exact.
        run(
            spec("LOG", &["3", "1000"]),
            &[
                (0, 1, Consume, true, 2, 0, 1000),
                (300, 1, Consume, true, 1, 0, 1000),
                (600, 1, Consume, true, 0, 0, 1000),
                (700, 1, Consume, false, 0, 300, 900),
                (1000, 1, Consume, true, 0, 0, 1000),
                (1000, 2, Consume, false, 0, 600, 1000),
                (1000, 1, Refund, true, 1, 0, 600),
                (1300, 2, Consume, true, 0, 0, 1000),
                (5000, 0, Peek, true, 3, 0, 0),
            ],
        );
    }

    #[test]
    fn spec_errors() {
        let p = |alg: &str, args: &[&str]| {
            let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
            Spec::parse(alg.as_bytes(), &a).unwrap_err()
        };
        assert_eq!(
            p("GCRA", &["2", "1", "1000000000000"]),
            "burst * period / rate must be at most 1000000000000 ms"
        );
        assert!(p("BUCKET", &["1", "1"]).starts_with("unknown rate limit algorithm"));
        assert_eq!(p("GCRA", &["1", "1"]), "GCRA takes 3 arguments");
        assert_eq!(
            p("FIXED", &["0", "1"]),
            "limit must be between 1 and 1000000"
        );
        assert_eq!(
            p("FIXED", &["-1", "1"]),
            "limit must be between 1 and 1000000"
        );
        assert_eq!(
            p("SLIDING", &["1", "x"]),
            "window is not an integer or out of range"
        );
        assert_eq!(
            p("TOKEN", &["1", "0"]),
            "refill_per_second must be between 1 and 1000000000"
        );
    }

    #[test]
    fn words_round_trip_and_reject_garbage() {
        for (alg, args) in [
            ("GCRA", &["3", "1", "1000"][..]),
            ("TOKEN", &["5", "2"][..]),
            ("FIXED", &["3", "1000"][..]),
            ("SLIDING", &["10", "1000"][..]),
            ("LOG", &["3", "1000"][..]),
        ] {
            let mut rl = RateLimit::new(spec(alg, args), T0);
            rl.check(T0, 1, Consume);
            rl.check(T0 + 10 * MS, 1, Consume);
            let w = rl.to_words();
            assert_eq!(RateLimit::from_words(&w), Some(rl.clone()), "{alg}");
            assert_eq!(RateLimit::from_words(&w[..w.len() - 1]), None, "{alg}");
        }
        assert_eq!(RateLimit::from_words(&[]), None);
        assert_eq!(RateLimit::from_words(&[9, 1, 1]), None);
        assert_eq!(RateLimit::from_words(&[2, 0, 1000, 0, 0]), None);
        assert_eq!(RateLimit::from_words(&[2, 5, 1000, 0, -1]), None);
        assert_eq!(RateLimit::from_words(&[4, 1, 1000, 2, 1, 1, 2, 1]), None);
    }

    #[test]
    fn leases_expire_release_and_never_exceed_max() {
        let mut rl = RateLimit::new_lease(2);
        let a = rl.lease_acquire(T0, 1000 * MS).unwrap();
        let b = rl.lease_acquire(T0 + MS, 500 * MS).unwrap();
        assert!(b.id > a.id && a.id >= T0);
        assert_eq!(b.deadline_us, T0 + 501 * MS);
        // Full: the wait is until the earliest deadline (b's).
        assert_eq!(rl.lease_acquire(T0 + MS, 10 * MS), Err(500 * MS));
        assert_eq!(rl.lease_holders(T0 + MS), 2);
        assert_eq!(
            rl.lease_deadlines(T0 + MS),
            Some((T0 + 501 * MS, T0 + 1000 * MS))
        );
        // b expires exactly at its deadline.
        assert_eq!(rl.lease_holders(T0 + 501 * MS), 1);
        let c = rl.lease_acquire(T0 + 501 * MS, 10 * MS).unwrap();
        assert!(c.id > b.id);
        assert!(!rl.lease_release(T0 + 501 * MS, b.id), "expired");
        assert!(rl.lease_release(T0 + 502 * MS, a.id));
        assert!(!rl.lease_release(T0 + 502 * MS, a.id), "released twice");
        // RL.INFO's view through a peek: one holder left, reset at c's deadline.
        let d = rl.clone().check(T0 + 502 * MS, 0, Mode::Peek);
        assert_eq!((d.limit, d.remaining, d.reset_after_ms), (2, 1, 9));
        assert_eq!(rl.state_fields(T0 + 502 * MS)[0], ("holders", 1));
        assert_eq!(rl.live_leases(T0 + 502 * MS).count(), 1);
        // Words round-trip; malformed ones are refused.
        let w = rl.to_words();
        assert_eq!(w[0], LEASE_KIND);
        assert_eq!(RateLimit::from_words(&w), Some(rl.clone()));
        assert_eq!(RateLimit::from_words(&w[..w.len() - 1]), None);
        assert_eq!(RateLimit::from_words(&[LEASE_KIND, 0, 1, 0]), None);
        assert_eq!(
            RateLimit::from_words(&[LEASE_KIND, 1, 5, 2, 1, 1, 2, 1]),
            None
        );
        assert_eq!(
            RateLimit::from_words(&[LEASE_KIND, 2, 2, 2, 1, 1, 1, 1]),
            None
        );
        assert_eq!(RateLimit::from_words(&[LEASE_KIND, 2, 2, 1, 2, 1]), None);
        assert!(RateLimit::from_words(&[LEASE_KIND, 2, 3, 1, 2, 1]).is_some());
    }

    /// Model check: random acquire/release/time steps against a list of (id, deadline);
    /// never more than `max` live leases, and a refusal's wait is exact.
    #[test]
    fn leases_match_a_model() {
        let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for max in 1..5 {
            let mut rl = RateLimit::new_lease(max);
            let mut model: Vec<(i64, i64)> = Vec::new();
            let mut now = T0;
            for _ in 0..2000 {
                now += rnd(20) as i64 * MS;
                model.retain(|&(_, d)| d > now);
                if rnd(3) == 0 && !model.is_empty() {
                    let (id, _) = model.remove(rnd(model.len() as u64) as usize);
                    assert!(rl.lease_release(now, id));
                    continue;
                }
                let ttl = (1 + rnd(100) as i64) * MS;
                match rl.lease_acquire(now, ttl) {
                    Ok(l) => {
                        assert!((model.len() as i64) < max);
                        model.push((l.id, l.deadline_us));
                    }
                    Err(wait) => {
                        assert_eq!(model.len() as i64, max);
                        let earliest = model.iter().map(|&(_, d)| d).min().unwrap();
                        assert_eq!(wait, earliest - now);
                    }
                }
                assert_eq!(rl.lease_holders(now), model.len());
            }
        }
    }

    #[test]
    fn state_stays_small() {
        // docs/ratelimit.md quotes this size as the per-key state of every algorithm.
        assert_eq!(std::mem::size_of::<RateLimit>(), 64);
    }

    #[test]
    fn extremes_do_not_overflow() {
        let specs = [
            spec("GCRA", &["1", "1", "1000000000000"]),
            spec("GCRA", &["1000000", "1000000", "1000000000000"]),
            spec("GCRA", &["1000000", "1000000", "1"]),
            spec("TOKEN", &["1000000", "1"]),
            spec("TOKEN", &["1", "1000000000"]),
            spec("FIXED", &["1000000", "1000000000000"]),
            spec("SLIDING", &["1000000", "1000000000000"]),
            spec("LOG", &["1000000", "1000000000000"]),
        ];
        for s in specs {
            let mut rl = RateLimit::new(s, T0);
            for (off, cost) in [(0, 1_000_000), (0, 1), (1, i64::MAX), (2, 1_000_001)] {
                let d = rl.check(T0 + off, cost, Consume);
                assert!(d.remaining >= 0 && d.reset_after_ms >= 0, "{s:?} {d:?}");
                let _ = rl.check(T0 + off, cost, Refund);
            }
        }
    }

    /// Model check: LOG and FIXED against brute-force models on random request
    /// sequences (time steps in ms, costs, refunds), compared after every step.
    mod model {
        use super::super::*;
        use proptest::prelude::*;

        const T0: i64 = 1_700_000_000_000_000;

        proptest! {
            #[test]
            fn log_matches_a_list_of_admitted_requests(
                limit in 1i64..8,
                window in 1i64..50,
                ops in proptest::collection::vec((0i64..20, 0i64..10, any::<bool>()), 1..200),
            ) {
                let spec = Spec::Log { limit, window_ms: window };
                let mut rl = RateLimit::new(spec, T0);
                let mut admitted: Vec<(i64, i64)> = Vec::new();
                let mut now = T0;
                for (step, cost, refund) in ops {
                    now += step * 1000;
                    let w = window * 1000;
                    admitted.retain(|&(t, _)| t + w > now);
                    let used: i64 = admitted.iter().map(|&(_, c)| c).sum();
                    if refund {
                        rl.check(now, cost, Mode::Refund);
                        let mut left = cost;
                        while left > 0 {
                            let Some(last) = admitted.last_mut() else { break };
                            if last.1 > left { last.1 -= left; left = 0; } else { left -= last.1; admitted.pop(); }
                        }
                        continue;
                    }
                    let d = rl.check(now, cost, Mode::Consume);
                    let fits = used + cost <= limit;
                    prop_assert_eq!(d.allowed, fits);
                    if fits && cost > 0 {
                        admitted.push((now, cost));
                    }
                    let used_after: i64 = admitted.iter().map(|&(_, c)| c).sum();
                    prop_assert_eq!(d.remaining, limit - used_after);
                    if !d.allowed && cost <= limit {
                        // Retrying exactly at retry_after passes, one ms earlier does not.
                        let mut probe = rl.clone();
                        let at = now + d.retry_after_ms * 1000;
                        prop_assert!(probe.check(at, cost, Mode::Peek).allowed);
                        if d.retry_after_ms > 1 {
                            prop_assert!(!probe.check(at - 1000, cost, Mode::Peek).allowed);
                        }
                    }
                }
            }

            #[test]
            fn fixed_matches_a_counter_per_aligned_window(
                limit in 1i64..8,
                window in 1i64..50,
                ops in proptest::collection::vec((0i64..20, 0i64..10), 1..200),
            ) {
                let spec = Spec::Fixed { limit, window_ms: window };
                let mut rl = RateLimit::new(spec, T0);
                let mut counts = std::collections::HashMap::<i64, i64>::new();
                let mut now = T0;
                for (step, cost) in ops {
                    now += step * 1000;
                    let win = now.div_euclid(window * 1000);
                    let c = counts.entry(win).or_insert(0);
                    let d = rl.check(now, cost, Mode::Consume);
                    prop_assert_eq!(d.allowed, *c + cost <= limit);
                    if d.allowed { *c += cost; }
                    prop_assert_eq!(d.remaining, limit - *c);
                }
            }

            #[test]
            fn sliding_never_exceeds_its_limit_per_aligned_window(
                limit in 1i64..8,
                window in 1i64..50,
                ops in proptest::collection::vec((0i64..20, 0i64..4), 1..200),
            ) {
                let spec = Spec::Sliding { limit, window_ms: window };
                let mut rl = RateLimit::new(spec, T0);
                let mut counts = std::collections::HashMap::<i64, i64>::new();
                let mut now = T0;
                for (step, cost) in ops {
                    now += step * 1000;
                    let d = rl.check(now, cost, Mode::Consume);
                    if d.allowed {
                        *counts.entry(now.div_euclid(window * 1000)).or_insert(0) += cost;
                    }
                    prop_assert!(d.remaining >= 0 && d.remaining <= limit);
                }
                // Within one window at most `limit`; across any two adjacent ones at
                // most 2 × limit (the counter's worst case).
                for (&w, &c) in &counts {
                    prop_assert!(c <= limit);
                    prop_assert!(c + counts.get(&(w + 1)).copied().unwrap_or(0) <= 2 * limit);
                }
            }

            #[test]
            fn gcra_and_token_retry_after_is_exact(
                burst in 1i64..8,
                rate in 1i64..10,
                period in 1i64..5000,
                ops in proptest::collection::vec((0i64..2000, 1i64..10), 1..100),
            ) {
                let refill = rate.max(1);
                for spec in [
                    Spec::Gcra { burst, rate, period_ms: period },
                    Spec::Token { capacity: burst, refill },
                ] {
                    let mut rl = RateLimit::new(spec, T0);
                    let mut now = T0;
                    for &(step, cost) in &ops {
                        now += step * 1000;
                        let d = rl.check(now, cost, Mode::Consume);
                        prop_assert!(d.remaining >= 0 && d.remaining <= burst);
                        if !d.allowed && cost <= burst {
                            let mut probe = rl.clone();
                            let at = now + d.retry_after_ms * 1000;
                            prop_assert!(probe.check(at, cost, Mode::Peek).allowed, "{:?} at +{}", spec, d.retry_after_ms);
                            if d.retry_after_ms > 1 {
                                prop_assert!(!probe.check(at - 1000, cost, Mode::Peek).allowed);
                            }
                        }
                    }
                }
            }
        }
    }
}
