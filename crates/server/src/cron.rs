//! Background work run `hz` times per second: eviction down to `maxmemory` (after
//! CONFIG SET lowered it), the memory peak, returning free allocator memory to the system
//! (checked ten times a second: [`crate::alloc::Decay`]), the save points (`save <seconds> <changes>`),
//! the AOF's periodic work, coordination sessions' deadlines and recurring jobs' ticks.
//!
//! Active expiry is its own task ([`crate::expire`]): under a backlog it runs more often
//! than this tick.

use crate::server::{Server, unix_ms};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Runs until aborted by the server's shutdown.
pub async fn run(srv: Arc<Server>) {
    let mut decay = crate::alloc::Decay::default();
    let mut ticks = 0u64;
    loop {
        let hz = srv.live.hz.load(Ordering::Relaxed).clamp(1, 500);
        let period = Duration::from_millis(1000 / hz);
        tokio::time::sleep(period).await;
        ticks += 1;
        // Ten times a second (every tick at the default hz of 10).
        if ticks.is_multiple_of((hz / 10).max(1)) {
            let used = crate::alloc::allocated() as u64;
            decay.check(
                unix_ms(),
                crate::info::rss_bytes(),
                used,
                crate::info::rss_bytes,
            );
        }
        crate::evict::cron(&srv, unix_ms(), period / 4);
        crate::info::sample_memory(&srv);
        crate::persist::cron(&srv);
        crate::aof::cron(&srv);
        crate::families::coord::expire_sessions(&srv, unix_ms());
        crate::schedule::fire_due(&srv, unix_ms());
    }
}
