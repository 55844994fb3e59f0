//! A cheap clock for timing every command (`INFO commandstats`' `usec`).
//!
//! Reading `Instant` costs a `clock_gettime` through the vDSO: timing one command with two
//! of them was ~2% of a pipelined GET and ~6% of an EVALSHA (three timed calls) in a
//! `perf` profile. On x86-64 with an invariant TSC (the same rate in every power state and
//! on every core, CPUID leaf 0x8000_0007), the time-stamp counter is read instead: one
//! instruction. Ticks are summed as they are and turned into microseconds only when
//! reported, at the rate measured between the clock's origin (the server's start) and
//! the report, so no calibration delays the start. Elsewhere ticks are nanoseconds of
//! `Instant`.

use std::sync::OnceLock;
use std::time::Instant;

struct Origin {
    at: Instant,
    /// TSC at `at`, when the TSC is used.
    tsc: Option<u64>,
}

static ORIGIN: OnceLock<Origin> = OnceLock::new();

fn origin() -> &'static Origin {
    ORIGIN.get_or_init(|| Origin {
        at: Instant::now(),
        tsc: tsc(),
    })
}

/// The TSC if it is invariant.
#[cfg(target_arch = "x86_64")]
fn tsc() -> Option<u64> {
    use std::arch::x86_64::{__cpuid, _rdtsc};
    let max_ext = __cpuid(0x8000_0000).eax;
    let invariant = max_ext >= 0x8000_0007 && __cpuid(0x8000_0007).edx & (1 << 8) != 0;
    // SAFETY: RDTSC exists on every x86-64 CPU and only reads the counter.
    invariant.then(|| unsafe { _rdtsc() })
}

#[cfg(not(target_arch = "x86_64"))]
fn tsc() -> Option<u64> {
    None
}

/// Fixes the origin now (the server's start), so the tick rate is measured over the
/// server's whole life.
pub fn init() {
    origin();
}

/// The clock, in ticks.
#[inline]
pub fn now() -> u64 {
    let o = origin();
    #[cfg(target_arch = "x86_64")]
    if o.tsc.is_some() {
        // SAFETY: as in `tsc`.
        return unsafe { std::arch::x86_64::_rdtsc() };
    }
    o.at.elapsed().as_nanos() as u64
}

/// `ticks` (a sum of differences of [`now`]) in microseconds.
pub fn to_micros(ticks: u64) -> u64 {
    let o = origin();
    let Some(tsc0) = o.tsc else {
        return ticks / 1000;
    };
    let nanos = o.at.elapsed().as_nanos();
    let span = u128::from(now().wrapping_sub(tsc0));
    if span == 0 {
        return 0;
    }
    (u128::from(ticks) * nanos / span / 1000) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_convert_to_the_elapsed_microseconds() {
        init();
        assert_eq!(to_micros(0), 0);
        // The interval is at least the sleep and at most what `Instant` saw around it,
        // up to the rate's estimate; preemption between the reads can spoil one attempt.
        let ok = (0..5).any(|_| {
            let outer = Instant::now();
            let t0 = now();
            std::thread::sleep(std::time::Duration::from_millis(20));
            let ticks = now() - t0;
            let most = outer.elapsed().as_micros() as f64;
            let us = to_micros(ticks) as f64;
            us >= 20_000.0 * 0.95 && us <= most * 1.05
        });
        assert!(ok, "ticks disagree with Instant");
    }
}
