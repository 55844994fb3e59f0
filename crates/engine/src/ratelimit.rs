//! Rate-limit arithmetic: the GCRA of redis-cell's `CL.THROTTLE` and of upstream Redis's
//! `GCRA` command, as pure functions of the stored theoretical arrival time (TAT) and
//! the server's clock.
//!
//! Nothing here reads a clock or touches the keyspace: callers pass the command's time
//! and the stored state, and get back the reply fields and the state to store. That keeps
//! the math testable with an injected clock and lets a write be propagated as its
//! *result* (the new TAT and its absolute deadline), never as a recomputation that
//! would depend on a replica's clock.
//!
//! Both commands store their TAT in a plain string key, exactly as the originals do:
//! redis-cell keeps nanoseconds since the epoch with a relative TTL, upstream Redis keeps
//! microseconds with an absolute `PXAT` deadline. Every intermediate value is checked:
//! an overflow is an error reply, never a panic or a wrapped number.

/// The outcome of one GCRA step, in the caller's time unit (ns for `CL.THROTTLE`, µs
/// for `GCRA`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// True if the request was refused (nothing is stored then).
    pub limited: bool,
    /// The limit reported to the client (max_burst + 1).
    pub limit: i64,
    /// Requests still allowed right now.
    pub remaining: i64,
    /// When limited and the request could ever pass: time until it would. `None`
    /// otherwise (allowed, or asking for more than the whole burst).
    pub retry_after: Option<i64>,
    /// Time until the limiter is back to a full burst (negative only in the refused
    /// cases where the stored TAT is already in the past).
    pub reset_after: i64,
    /// When allowed: the TAT to store.
    pub new_tat: Option<i64>,
}

/// Why a `CL.THROTTLE` request cannot be computed. The `Display` texts are redis-cell's
/// (without the `Cell error: ` prefix the command adds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CellError {
    /// count_per_period or period is zero.
    ZeroRate,
    /// A negative max_burst, count, period or quantity (redis-cell misbehaves on them;
    /// Basalt refuses them).
    Negative,
    /// An intermediate value does not fit 64-bit nanoseconds.
    Overflow,
}

impl std::fmt::Display for CellError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CellError::ZeroRate => "Zero rates are not supported",
            CellError::Negative => "negative values are not supported",
            CellError::Overflow => "rate limit parameters overflow 64-bit nanoseconds",
        })
    }
}

/// Parameters of one `CL.THROTTLE` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CellParams {
    /// Requests allowed at once beyond the steady rate.
    pub max_burst: i64,
    /// Requests per period.
    pub count: i64,
    /// The period in whole seconds.
    pub period_secs: i64,
    /// Cost of this request; 0 peeks.
    pub quantity: i64,
}

/// redis-cell's `RateLimiter::rate_limit` on nanoseconds: `tat` is the stored TAT (`None`
/// if the key is missing), `now` the command's time.
///
/// The emission interval is computed as redis-cell does, `period_ns / count` in `f64`
/// truncated, and `remaining` as its microsecond ratio truncated, so results agree with
/// the module to the nanosecond.
pub fn cell(tat: Option<i64>, now: i64, p: CellParams) -> Result<Outcome, CellError> {
    if p.max_burst < 0 || p.count < 0 || p.period_secs < 0 || p.quantity < 0 {
        return Err(CellError::Negative);
    }
    let period_ns = p
        .period_secs
        .checked_mul(1_000_000_000)
        .ok_or(CellError::Overflow)?;
    if p.count == 0 || period_ns == 0 {
        return Err(CellError::ZeroRate);
    }
    let ei = ((period_ns as f64) / (p.count as f64)) as i64;
    if ei == 0 {
        return Err(CellError::ZeroRate);
    }
    let limit = p.max_burst.checked_add(1).ok_or(CellError::Overflow)?;
    let dvt = ei.checked_mul(limit).ok_or(CellError::Overflow)?;
    let increment = ei.checked_mul(p.quantity).ok_or(CellError::Overflow)?;
    let tat = tat.unwrap_or(now);
    let new_tat = tat
        .max(now)
        .checked_add(increment)
        .ok_or(CellError::Overflow)?;
    let allow_at = new_tat.checked_sub(dvt).ok_or(CellError::Overflow)?;
    let diff = now.checked_sub(allow_at).ok_or(CellError::Overflow)?;
    let (limited, retry_after, ttl, stored) = if diff < 0 {
        let retry = (increment <= dvt).then_some(-diff);
        let ttl = tat.checked_sub(now).ok_or(CellError::Overflow)?;
        (true, retry, ttl, None)
    } else {
        (false, None, new_tat - now, Some(new_tat))
    };
    let next = dvt.checked_sub(ttl).ok_or(CellError::Overflow)?;
    let remaining = if next > -ei {
        ((next / 1000) as f64 / (ei / 1000) as f64) as i64
    } else {
        0
    };
    Ok(Outcome {
        limited,
        limit,
        remaining,
        retry_after,
        reset_after: ttl,
        new_tat: stored,
    })
}

/// redis-cell's reply rounding of a nanosecond duration to seconds: whole seconds, plus
/// one if the fraction has at least a whole millisecond (`time::Duration`'s
/// `whole_seconds` and `subsec_milliseconds`, both truncating toward zero).
pub fn cell_seconds(ns: i64) -> i64 {
    let secs = ns / 1_000_000_000;
    let sub_ms = (ns % 1_000_000_000) / 1_000_000;
    if sub_ms > 0 { secs + 1 } else { secs }
}

/// Parameters of one upstream `GCRA` call, as parsed by the command.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GcraParams {
    /// max_burst as given (the command adds one).
    pub max_burst: i64,
    /// Tokens per period (≥ 1).
    pub tokens_per_period: i64,
    /// Period in seconds (0 < period < 1e12).
    pub period: f64,
    /// Cost of this request (≥ 1).
    pub tokens: i64,
}

/// Upstream `GCRA`'s overflow errors (texts without the `ERR ` prefix).
pub const GCRA_OVERFLOW_TOKENS: &str = "GCRA limiting uses microsecond accuracy. Combination of period, tokens_per_period and TOKENS would cause an overflow";
/// See [`GCRA_OVERFLOW_TOKENS`].
pub const GCRA_OVERFLOW_BURST: &str = "GCRA limiting uses microsecond accuracy. Combination of period, tokens_per_period and max_burst would cause an overflow";

/// Upstream Redis's `gcraCommand` on microseconds: `tat` is the stored TAT (`None` if
/// the key is missing), `now` the command's time in µs. `remaining`, `retry_after` and
/// `reset_after` of the outcome are in µs; [`gcra_seconds`] rounds them as the reply does.
pub fn gcra(tat: Option<i64>, now: i64, p: GcraParams) -> Result<Outcome, &'static str> {
    let max_burst = if p.max_burst < i64::MAX {
        p.max_burst + 1
    } else {
        p.max_burst
    };
    let tat = tat.unwrap_or(now);
    let period_us = p.period * 1_000_000.0;
    let mut ei = (period_us / p.tokens_per_period as f64 + 0.5) as i64;
    if ei == 0 {
        ei = 1;
    }
    if ei > i64::MAX / p.tokens {
        return Err(GCRA_OVERFLOW_TOKENS);
    }
    if ei > i64::MAX / max_burst {
        return Err(GCRA_OVERFLOW_BURST);
    }
    let variance = ei * max_burst;
    let increment = ei * p.tokens;
    let base = now.max(tat);
    if i64::MAX - base < increment {
        return Err(GCRA_OVERFLOW_TOKENS);
    }
    let new_tat = base + increment;
    let allow_at = new_tat - variance;
    let diff = now.checked_sub(allow_at).ok_or(GCRA_OVERFLOW_BURST)?;
    let (limited, retry_after, ttl, stored) = if diff < 0 {
        let retry = (increment <= variance).then_some(-diff);
        (true, retry, tat - now, None)
    } else {
        (false, None, new_tat - now, Some(new_tat))
    };
    let next = variance - ttl;
    let remaining = if next > -ei { next / ei } else { 0 };
    Ok(Outcome {
        limited,
        limit: max_burst,
        remaining,
        retry_after,
        reset_after: ttl,
        new_tat: stored,
    })
}

/// Upstream's `ceil(us / 1000000.)` for the reply's seconds.
pub fn gcra_seconds(us: i64) -> i64 {
    (us as f64 / 1_000_000.0).ceil() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;
    const MS: i64 = 1_000_000;

    fn cp(max_burst: i64, count: i64, period_secs: i64, quantity: i64) -> CellParams {
        CellParams {
            max_burst,
            count,
            period_secs,
            quantity,
        }
    }

    /// Runs `CL.THROTTLE` steps against one key; each row is (offset from start in ns,
    /// quantity, limited, remaining, reset_after ns, retry_after ns or -1 s).
    fn run_cell(max_burst: i64, count: i64, period: i64, rows: &[(i64, i64, bool, i64, i64, i64)]) {
        let start = 1_700_000_000 * S;
        let mut tat = None;
        for (i, &(off, q, limited, remaining, reset, retry)) in rows.iter().enumerate() {
            let o = cell(tat, start + off, cp(max_burst, count, period, q)).unwrap();
            assert_eq!(o.limited, limited, "row {i}");
            assert_eq!(o.limit, max_burst + 1, "row {i}");
            assert_eq!(o.remaining, remaining, "row {i}");
            assert_eq!(o.reset_after, reset, "row {i}");
            assert_eq!(o.retry_after.unwrap_or(-S), retry, "row {i}");
            if let Some(t) = o.new_tat {
                tat = Some(t);
            }
        }
    }

    #[test]
    fn cell_matches_redis_cell_test_table() {
        // redis-cell's own `it_rate_limits` table: limit 5 (burst 4), 1 per second.
        run_cell(
            4,
            1,
            1,
            &[
                (0, 6, true, 5, 0, -S),
                (0, 1, false, 4, S, -S),
                (0, 1, false, 3, 2 * S, -S),
                (0, 1, false, 2, 3 * S, -S),
                (0, 1, false, 1, 4 * S, -S),
                (0, 1, false, 0, 5 * S, -S),
                (0, 1, true, 0, 5 * S, S),
                (3000 * MS, 1, false, 2, 3000 * MS, -S),
                (3100 * MS, 1, false, 1, 3900 * MS, -S),
                (4000 * MS, 1, false, 1, 4000 * MS, -S),
                (8000 * MS, 1, false, 4, 1000 * MS, -S),
                (9500 * MS, 1, false, 4, 1000 * MS, -S),
                (9500 * MS, 0, false, 4, S, -S),
                (9500 * MS, 2, false, 2, 3 * S, -S),
                (9500 * MS, 5, true, 2, 3 * S, 3 * S),
            ],
        );
    }

    #[test]
    fn cell_readme_example() {
        // `CL.THROTTLE user123 15 30 60 1` on a fresh key → 0 16 15 -1 2.
        let o = cell(None, 5 * S, cp(15, 30, 60, 1)).unwrap();
        assert!(!o.limited);
        assert_eq!((o.limit, o.remaining, o.retry_after), (16, 15, None));
        assert_eq!(cell_seconds(o.reset_after), 2);
    }

    #[test]
    fn cell_seconds_rounds_like_redis_cell() {
        assert_eq!(cell_seconds(0), 0);
        assert_eq!(cell_seconds(S), 1);
        assert_eq!(cell_seconds(S + MS), 2);
        // Less than a whole millisecond of fraction does not round up.
        assert_eq!(cell_seconds(S + MS - 1), 1);
        assert_eq!(cell_seconds(-S / 2), 0);
        assert_eq!(cell_seconds(-3 * S / 2), -1);
    }

    #[test]
    fn cell_steady_rate_at_the_limit() {
        // 10 per 10 s, no burst: one request per second passes, the next one in the
        // same second is refused with the exact wait.
        let start = 1_000 * S;
        let p = cp(0, 10, 10, 1);
        let mut tat = None;
        for sec in 0..20 {
            let now = start + sec * S;
            let o = cell(tat, now, p).unwrap();
            assert!(!o.limited, "second {sec}");
            tat = o.new_tat;
            let o = cell(tat, now + 250 * MS, p).unwrap();
            assert!(o.limited);
            assert_eq!(o.retry_after, Some(750 * MS));
            assert_eq!(o.remaining, 0);
        }
    }

    #[test]
    fn cell_errors() {
        assert_eq!(cell(None, 0, cp(1, 0, 1, 1)), Err(CellError::ZeroRate));
        assert_eq!(cell(None, 0, cp(1, 1, 0, 1)), Err(CellError::ZeroRate));
        assert_eq!(cell(None, 0, cp(-1, 1, 1, 1)), Err(CellError::Negative));
        assert_eq!(cell(None, 0, cp(1, 1, 1, -1)), Err(CellError::Negative));
        assert_eq!(
            cell(None, 0, cp(1, 1, i64::MAX, 1)),
            Err(CellError::Overflow)
        );
        assert_eq!(
            cell(None, 0, cp(i64::MAX, 1, 1, 1)),
            Err(CellError::Overflow)
        );
        assert_eq!(
            cell(None, 0, cp(1, 1, 1, i64::MAX)),
            Err(CellError::Overflow)
        );
    }

    fn gp(max_burst: i64, tpp: i64, period: f64, tokens: i64) -> GcraParams {
        GcraParams {
            max_burst,
            tokens_per_period: tpp,
            period,
            tokens,
        }
    }

    const US: i64 = 1_000_000;

    #[test]
    fn gcra_table() {
        // max_burst 4 (limit 5), 1 token per second; rows: (offset µs, tokens, limited,
        // remaining, retry seconds, reset seconds), as upstream's reply reports them.
        let start = 1_700_000_000 * US;
        let rows: &[(i64, i64, bool, i64, i64, i64)] = &[
            (0, 1, false, 4, -1, 1),
            (0, 1, false, 3, -1, 2),
            (0, 3, false, 0, -1, 5),
            (0, 1, true, 0, 1, 5),
            // More than the whole burst can never pass: retry stays -1.
            (0, 6, true, 0, -1, 5),
            (1_500_000, 1, false, 0, -1, 5),
            (1_600_000, 1, true, 0, 1, 5),
            (10_000_000, 1, false, 4, -1, 1),
            // Fractional: 0.25 s already elapsed of the 1 s interval.
            (10_250_000, 2, false, 2, -1, 3),
        ];
        let mut tat = None;
        for (i, &(off, tokens, limited, remaining, retry, reset)) in rows.iter().enumerate() {
            let o = gcra(tat, start + off, gp(4, 1, 1.0, tokens)).unwrap();
            assert_eq!(o.limited, limited, "row {i}");
            assert_eq!(o.limit, 5, "row {i}");
            assert_eq!(o.remaining, remaining, "row {i}");
            assert_eq!(o.retry_after.map_or(-1, gcra_seconds), retry, "row {i}");
            assert_eq!(gcra_seconds(o.reset_after), reset, "row {i}");
            if let Some(t) = o.new_tat {
                tat = Some(t);
            }
        }
    }

    #[test]
    fn gcra_fractional_period_and_rounding() {
        // 3 tokens per 0.5 s: emission interval round(166666.67) = 166667 µs.
        let o = gcra(None, 10 * US, gp(0, 3, 0.5, 1)).unwrap();
        assert_eq!(o.new_tat, Some(10 * US + 166_667));
        assert_eq!(o.reset_after, 166_667);
        let o2 = gcra(o.new_tat, 10 * US + 1, gp(0, 3, 0.5, 1)).unwrap();
        assert!(o2.limited);
        assert_eq!(o2.retry_after, Some(166_666));
        assert_eq!(o2.retry_after.map(gcra_seconds), Some(1));
        // A sub-microsecond interval counts as one microsecond.
        let o = gcra(None, 10 * US, gp(0, 10_000_000, 1.0, 1)).unwrap();
        assert_eq!(o.reset_after, 1);
    }

    #[test]
    fn gcra_overflow_errors() {
        assert_eq!(
            gcra(None, US, gp(0, 1, 1e11, i64::MAX / 1000)),
            Err(GCRA_OVERFLOW_TOKENS)
        );
        assert_eq!(
            gcra(None, US, gp(i64::MAX / 1000, 1, 1e11, 1)),
            Err(GCRA_OVERFLOW_BURST)
        );
        // max_burst = LONG_MAX is not incremented (upstream's guard).
        assert_eq!(
            gcra(None, US, gp(i64::MAX, 1_000_000, 1.0, 1)).map(|o| o.limit),
            Ok(i64::MAX)
        );
        assert_eq!(
            gcra(Some(i64::MAX - 10), US, gp(0, 1, 1.0, 1)),
            Err(GCRA_OVERFLOW_TOKENS)
        );
    }
}
