//! Background work run `hz` times per second: active expiry, eviction down to
//! `maxmemory` (after CONFIG SET lowered it), the memory peak, and the save points
//! (`save <seconds> <changes>`).
//!
//! Active expiry walks the shards round-robin, reclaiming due keys from each shard's
//! deadline index, and stops when the time budget of the tick (25% of it, as Redis's
//! slow cycle) is used, so a mass expiry never stalls clients for long.

use crate::server::{Server, unix_ms};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Keys reclaimed per shard visit before checking the time budget again.
const KEYS_PER_VISIT: usize = 64;

/// Runs until aborted by the server's shutdown.
pub async fn run(srv: Arc<Server>) {
    let mut next_shard = 0usize;
    loop {
        let hz = srv.live.hz.load(Ordering::Relaxed).clamp(1, 500);
        let period = Duration::from_millis(1000 / hz);
        tokio::time::sleep(period).await;
        if srv.live.active_expire.load(Ordering::Relaxed) {
            next_shard = active_expire(&srv, next_shard, period / 4);
        }
        crate::evict::cron(&srv, unix_ms(), period / 4);
        crate::info::sample_memory(&srv);
        crate::persist::cron(&srv);
        crate::aof::cron(&srv);
        crate::families::coord::expire_sessions(&srv, unix_ms());
    }
}

/// One active expiry pass within `budget`; returns where the next pass starts.
pub fn active_expire(srv: &Server, start: usize, budget: Duration) -> usize {
    let t0 = Instant::now();
    let n = srv.keyspace.shard_count();
    let mut idle_visits = 0;
    let mut i = start % n;
    loop {
        if idle_visits >= n {
            break;
        }
        if t0.elapsed() >= budget {
            // Due keys remain but this tick's time is used up (Redis's
            // expired_time_cap_reached_count).
            srv.stats
                .expired_time_cap_reached
                .fetch_add(1, Ordering::Relaxed);
            break;
        }
        let now = unix_ms();
        // Never between the commands of an EXEC or a script; and never wait for one
        // (a long script would park this worker thread): try again next tick.
        let Some(gate) = srv.exec_gate.try_read() else {
            break;
        };
        let (removed, more) = srv.keyspace.expire_shard(i, now, KEYS_PER_VISIT);
        drop(gate);
        if removed == 0 || !more {
            idle_visits += 1;
            i = (i + 1) % n;
        } else {
            idle_visits = 0;
        }
    }
    // Redis's expired_stale_perc: a running average (5% new, 95% old) of the share of
    // volatile keys left past their deadline after the pass. Basalt's deadline index
    // is exact, so the share is counted (bounded per database), not sampled.
    let (stale, volatile) = srv.keyspace.stale_sample(unix_ms(), STALE_COUNT_CAP);
    let current = if volatile == 0 {
        0.0
    } else {
        stale as f64 / volatile as f64
    };
    let old = f64::from_bits(srv.stats.expired_stale.load(Ordering::Relaxed));
    srv.stats
        .expired_stale
        .store((current * 0.05 + old * 0.95).to_bits(), Ordering::Relaxed);
    srv.stats
        .expire_cycle_usec
        .fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
    i
}

/// Stale keys counted per database and shard for `expired_stale_perc`: enough to tell a
/// backlog, cheap to count every tick.
const STALE_COUNT_CAP: usize = 1024;
