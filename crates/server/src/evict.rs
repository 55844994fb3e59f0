//! `maxmemory`: deciding when to evict, and how long one run may take.
//!
//! Used memory is the counting allocator's figure (`INFO used_memory`, as Redis compares
//! zmalloc's), minus what the lazy-free thread is still about to free, so a big UNLINK
//! does not make the server evict more. The keyspace picks victims by the policy and
//! counts the bytes they held (its own exact accounting), stopping when they cover the
//! excess, so a run does not wait on the allocator's figure to move.
//!
//! Runs happen before every command while over the limit (Redis's `processCommand`
//! order, [`crate::server::Server::check_oom`]): a `denyoom` command is refused with
//! `-OOM` only when nothing could be evicted. A run is bounded by `maxmemory-eviction-tenacity`'s time limit; if it stops
//! there the command proceeds and the cron continues the work every tick, which is also
//! how `CONFIG SET maxmemory` below current usage shrinks the dataset promptly.

use crate::alloc;
use crate::server::Server;
use basalt_engine::EvictStatus;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Bytes the server counts against `maxmemory` now.
pub fn used_for_limit(srv: &Server) -> u64 {
    let pending = srv.keyspace.lazyfree().pending_bytes() as u64;
    (alloc::allocated() as u64).saturating_sub(pending)
}

/// Redis's `evictionTimeLimitUs`: linear 0..500 µs up to tenacity 10, then +15% per
/// step, unlimited at 100.
pub fn time_limit(tenacity: u64) -> Option<Duration> {
    if tenacity <= 10 {
        return Some(Duration::from_micros(50 * tenacity));
    }
    if tenacity < 100 {
        return Some(Duration::from_micros(
            (500.0 * 1.15f64.powf(tenacity as f64 - 10.0)) as u64,
        ));
    }
    None
}

/// Evicts until used memory is within `maxmemory` or the time limit passes. Returns the
/// status Redis's `performEvictions` would (`Done` also when under the limit).
pub fn perform(srv: &Server, now: u64) -> EvictStatus {
    let max = srv.live.maxmemory.load(Ordering::Relaxed);
    if max == 0 {
        return EvictStatus::Done;
    }
    let used = used_for_limit(srv);
    if used <= max {
        return EvictStatus::Done;
    }
    let samples = srv.live.maxmemory_samples.load(Ordering::Relaxed) as usize;
    let limit = time_limit(srv.live.eviction_tenacity.load(Ordering::Relaxed));
    let start = Instant::now();
    let out = srv.keyspace.evict((used - max) as usize, now, samples, || {
        limit.is_none_or(|l| start.elapsed() < l)
    });
    srv.stats
        .eviction_usec
        .fetch_add(start.elapsed().as_micros() as u64, Ordering::Relaxed);
    out.status
}

/// Called from the cron: keeps evicting in the background while over the limit (after
/// `CONFIG SET maxmemory` lowered it, or a run stopped at its time limit).
pub fn cron(srv: &Server, now: u64, budget: Duration) {
    let t0 = Instant::now();
    while t0.elapsed() < budget {
        // Never between the commands of an EXEC or a script, and never wait for one (a
        // long script would park this worker thread): the next tick tries again.
        let Some(gate) = srv.exec_gate.try_read() else {
            break;
        };
        let status = perform(srv, now);
        drop(gate);
        if status != EvictStatus::Running {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_limits_follow_redis() {
        assert_eq!(time_limit(0), Some(Duration::ZERO));
        assert_eq!(time_limit(10), Some(Duration::from_micros(500)));
        assert_eq!(time_limit(11), Some(Duration::from_micros(575)));
        assert!(time_limit(99).is_some_and(|d| d > Duration::from_secs(60)));
        assert_eq!(time_limit(100), None);
    }
}
