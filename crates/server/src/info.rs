//! `INFO`: Redis's sections and field names, filled from Basalt's counters.
//!
//! `redis_version` says 7.0.15 because client libraries gate features on it;
//! `basalt_version` tells the truth. Memory figures come from the counting allocator
//! (`crate::alloc`) and `/proc/self/statm`.

use crate::alloc;
use crate::server::{Server, unix_ms, unix_us};
use parking_lot::Mutex;
use std::fmt::Write;
use std::sync::atomic::Ordering;

/// Redis's `loading_*` fields, shown while the dataset loads.
fn loading_fields(srv: &Server, out: &mut String) {
    let p = &srv.persist;
    let start = p.loading_start.load(Ordering::Relaxed);
    let total = p.loading_total.load(Ordering::Relaxed);
    let loaded = p.loading_loaded.load(Ordering::Relaxed);
    let elapsed = (unix_ms() / 1000).saturating_sub(start);
    let (perc, remaining) = if total > 0 {
        (
            loaded as f64 / total as f64 * 100.0,
            total.saturating_sub(loaded),
        )
    } else {
        (0.0, 1)
    };
    // As Redis: a made-up 1 second in the first second, then the rate so far.
    let eta = if elapsed == 0 {
        1
    } else {
        elapsed.saturating_mul(remaining) / (loaded + 1)
    };
    line(out, "loading_start_time", start);
    line(out, "loading_total_bytes", total);
    line(
        out,
        "loading_rdb_used_mem",
        p.loading_rdb_used_mem.load(Ordering::Relaxed),
    );
    line(out, "loading_loaded_bytes", loaded);
    line(out, "loading_loaded_perc", format!("{perc:.2}"));
    line(out, "loading_eta_seconds", eta);
}

/// Samples kept for the `instantaneous_*` metrics (as Redis's STATS_METRIC_SAMPLES).
const SAMPLES: usize = 16;

/// Rolling samples for instantaneous rates.
#[derive(Default)]
pub struct Metrics {
    last_ms: u64,
    last_ops: u64,
    last_in: u64,
    last_out: u64,
    ops: [f64; SAMPLES],
    input: [f64; SAMPLES],
    output: [f64; SAMPLES],
    idx: usize,
}

impl Metrics {
    fn avg(v: &[f64; SAMPLES]) -> f64 {
        v.iter().sum::<f64>() / SAMPLES as f64
    }
}

/// Memory figures shared by `INFO memory`, `MEMORY STATS` and `MEMORY DOCTOR`.
#[derive(Debug, Default, Clone)]
pub struct MemoryOverview {
    /// Allocated bytes (`used_memory`).
    pub used: u64,
    /// Peak of `used`.
    pub peak: u64,
    /// Resident set size.
    pub rss: u64,
    /// Allocated at startup.
    pub startup: u64,
    /// Bytes of client query buffers.
    pub clients: u64,
    /// Connected clients.
    pub connected: u64,
    /// Per-database accounting.
    pub dbs: Vec<basalt_engine::DbMemory>,
    /// Keys in all databases.
    pub keys: u64,
    /// Keys with a deadline in all databases.
    pub volatile: u64,
    /// Everything that is not data: startup, clients, tables, deadline index, queues.
    pub overhead: u64,
    /// The keyspace's accounted bytes (data plus its overhead).
    pub keyspace: u64,
    /// `maxmemory`.
    pub maxmemory: u64,
    /// Objects waiting for the lazy-free thread.
    pub lazyfree_pending: u64,
    /// Bytes those objects hold.
    pub lazyfree_bytes: u64,
    /// Bytes of the node slab's chunks that hold no key (`allocator_frag_bytes`).
    pub slab_spare: u64,
}

/// Redis's `overhead.hashtable.main` for one database: buckets plus each key's node
/// besides its name and value (link and header, and the deadline of a volatile key).
pub trait MainOverhead {
    /// Bytes of the table itself.
    fn main_overhead(&self) -> usize;
}

impl MainOverhead for basalt_engine::DbMemory {
    fn main_overhead(&self) -> usize {
        use basalt_engine::memory::{DEADLINE_BYTES, NODE_BYTES};
        self.table + self.keys * NODE_BYTES + self.volatile * DEADLINE_BYTES + self.eviction
    }
}

impl MemoryOverview {
    /// Reads every figure (locks each shard once; no walk over keys).
    pub fn measure(srv: &Server) -> MemoryOverview {
        let used = alloc::allocated() as u64;
        let peak = srv.peak_memory.fetch_max(used, Ordering::Relaxed).max(used);
        let (clients, connected) = {
            let c = srv.clients.lock();
            (
                c.values()
                    .map(|c| c.qbuf.load(Ordering::Relaxed) as u64)
                    .sum::<u64>(),
                c.len() as u64,
            )
        };
        let dbs = srv.keyspace.db_memory();
        let keys = dbs.iter().map(|d| d.keys as u64).sum();
        let volatile = dbs.iter().map(|d| d.volatile as u64).sum();
        let keyspace: u64 = dbs
            .iter()
            .map(|d| (d.data + d.table + d.expires + d.eviction) as u64)
            .sum();
        let startup = alloc::startup();
        let overhead = startup
            + clients
            + dbs
                .iter()
                .map(|d| (d.main_overhead() + d.expires) as u64)
                .sum::<u64>();
        let lf = srv.keyspace.lazyfree();
        MemoryOverview {
            used,
            peak,
            rss: rss_bytes(),
            startup,
            clients,
            connected,
            dbs,
            keys,
            volatile,
            overhead,
            keyspace,
            maxmemory: srv.live.maxmemory.load(Ordering::Relaxed),
            lazyfree_pending: lf.pending_objects() as u64,
            lazyfree_bytes: lf.pending_bytes() as u64,
            slab_spare: basalt_engine::slab::spare_bytes() as u64,
        }
    }

    /// `used_memory_dataset`: what is not overhead (Redis's definition).
    pub fn dataset(&self) -> u64 {
        self.used.saturating_sub(self.overhead)
    }
}

/// Called from the cron: records the memory peak and the instantaneous rates.
pub fn sample_memory(srv: &Server) {
    let used = alloc::allocated() as u64;
    srv.peak_memory.fetch_max(used, Ordering::Relaxed);
    let now = unix_ms();
    let mut m = srv.metrics.lock();
    let ops = srv.commands_processed();
    let inb = srv.stats.net_input_bytes.load(Ordering::Relaxed);
    let outb = srv.stats.net_output_bytes.load(Ordering::Relaxed);
    if m.last_ms != 0 && now > m.last_ms {
        let dt = (now - m.last_ms) as f64 / 1000.0;
        let i = m.idx;
        m.ops[i] = ops.saturating_sub(m.last_ops) as f64 / dt;
        m.input[i] = inb.saturating_sub(m.last_in) as f64 / dt / 1024.0;
        m.output[i] = outb.saturating_sub(m.last_out) as f64 / dt / 1024.0;
        m.idx = (i + 1) % SAMPLES;
    }
    m.last_ms = now;
    m.last_ops = ops;
    m.last_in = inb;
    m.last_out = outb;
}

/// Creates the metrics state.
pub fn new_metrics() -> Mutex<Metrics> {
    Mutex::new(Metrics::default())
}

/// `1.50M`-style sizes as Redis's bytesToHuman prints them.
pub fn human_bytes(n: u64) -> String {
    let n = n as f64;
    let units = [
        (1024f64.powi(5), "P"),
        (1024f64.powi(4), "T"),
        (1024f64.powi(3), "G"),
        (1024f64.powi(2), "M"),
        (1024f64, "K"),
    ];
    for (size, unit) in units {
        if n >= size {
            return format!("{:.2}{}", n / size, unit);
        }
    }
    format!("{}B", n as u64)
}

/// The process's resident set size (`/proc/self/statm`), 0 if unreadable.
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

fn total_system_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<u64>().ok())
                })
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn cpu_times() -> (f64, f64) {
    #[cfg(unix)]
    {
        // SAFETY: getrusage only writes into the zeroed struct we pass.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: RUSAGE_SELF with a valid pointer is always a valid call.
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } == 0 {
            let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
            return (t(ru.ru_stime), t(ru.ru_utime));
        }
    }
    (0.0, 0.0)
}

/// The sections INFO prints without arguments (and with `default`).
const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "errorstats",
    "cluster",
    "keyspace",
];

/// Builds the INFO text for the requested section names (lowercase).
pub fn render(srv: &Server, requested: &[String]) -> String {
    let mut sections: Vec<&str> = Vec::new();
    let add = |s: &'static str, sections: &mut Vec<&str>| {
        if !sections.contains(&s) {
            sections.push(s);
        }
    };
    let all_sections: Vec<&'static str> = DEFAULT_SECTIONS
        .iter()
        .copied()
        .chain(["commandstats"])
        .collect();
    if requested.is_empty() {
        for s in DEFAULT_SECTIONS {
            add(s, &mut sections);
        }
    }
    for r in requested {
        match r.as_str() {
            "default" => DEFAULT_SECTIONS.iter().for_each(|s| add(s, &mut sections)),
            "all" | "everything" => all_sections.iter().for_each(|s| add(s, &mut sections)),
            other => {
                if let Some(s) = all_sections.iter().find(|s| **s == other) {
                    add(s, &mut sections);
                }
            }
        }
    }
    // Redis prints sections in its own fixed order, whatever the request order.
    let order: Vec<&str> = [
        "server",
        "clients",
        "memory",
        "persistence",
        "stats",
        "replication",
        "cpu",
        "modules",
        "commandstats",
        "errorstats",
        "cluster",
        "keyspace",
    ]
    .into_iter()
    .filter(|s| sections.contains(s))
    .collect();
    let mut out = String::new();
    for (i, s) in order.iter().enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        section(srv, s, &mut out);
    }
    out
}

fn line(out: &mut String, key: &str, value: impl std::fmt::Display) {
    let _ = write!(out, "{key}:{value}\r\n");
}

fn section(srv: &Server, name: &str, out: &mut String) {
    let now = unix_ms();
    let uptime = srv.started.elapsed().as_secs();
    match name {
        "server" => {
            out.push_str("# Server\r\n");
            line(out, "redis_version", "7.0.15");
            line(out, "basalt_version", env!("CARGO_PKG_VERSION"));
            line(out, "redis_git_sha1", "00000000");
            line(out, "redis_git_dirty", 0);
            line(out, "redis_build_id", "0");
            line(out, "redis_mode", "standalone");
            line(
                out,
                "os",
                format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            );
            line(out, "arch_bits", usize::BITS);
            line(out, "monotonic_clock", "POSIX clock_gettime");
            line(out, "multiplexing_api", "epoll");
            line(out, "atomicvar_api", "c11-builtin");
            line(out, "gcc_version", "0.0.0");
            line(out, "process_id", std::process::id());
            line(out, "process_supervised", "no");
            line(out, "run_id", &srv.run_id);
            line(out, "tcp_port", srv.port.load(Ordering::Relaxed));
            line(out, "server_time_usec", unix_us());
            line(out, "uptime_in_seconds", uptime);
            line(out, "uptime_in_days", uptime / 86_400);
            let hz = srv.live.hz.load(Ordering::Relaxed);
            line(out, "hz", hz);
            line(out, "configured_hz", hz);
            line(out, "lru_clock", (now / 1000) & ((1 << 24) - 1));
            line(out, "executable", &srv.executable);
            line(
                out,
                "config_file",
                srv.config_file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            );
            line(out, "io_threads_active", 0);
        }
        "clients" => {
            out.push_str("# Clients\r\n");
            let clients = srv.clients.lock();
            let max_q = clients
                .values()
                .map(|c| c.qbuf.load(Ordering::Relaxed))
                .max()
                .unwrap_or(0);
            line(out, "connected_clients", clients.len());
            line(out, "cluster_connections", 0);
            line(
                out,
                "maxclients",
                srv.live.maxclients.load(Ordering::Relaxed),
            );
            line(out, "client_recent_max_input_buffer", max_q);
            line(out, "client_recent_max_output_buffer", 0);
            line(out, "blocked_clients", srv.blocking.blocked_clients());
            line(out, "tracking_clients", 0);
            line(out, "clients_in_timeout_table", 0);
        }
        "memory" => {
            out.push_str("# Memory\r\n");
            let m = MemoryOverview::measure(srv);
            let (used, peak, rss, startup) = (m.used, m.peak, m.rss, m.startup);
            let total = total_system_memory();
            let policy = srv.config.read().maxmemory_policy.as_str();
            let dataset = m.dataset();
            line(out, "used_memory", used);
            line(out, "used_memory_human", human_bytes(used));
            line(out, "used_memory_rss", rss);
            line(out, "used_memory_rss_human", human_bytes(rss));
            line(out, "used_memory_peak", peak);
            line(out, "used_memory_peak_human", human_bytes(peak));
            line(
                out,
                "used_memory_peak_perc",
                format!("{:.2}%", used as f64 * 100.0 / peak.max(1) as f64),
            );
            line(out, "used_memory_overhead", m.overhead);
            line(out, "used_memory_startup", startup);
            line(out, "used_memory_dataset", dataset);
            line(
                out,
                "used_memory_dataset_perc",
                format!(
                    "{:.2}%",
                    dataset as f64 * 100.0 / used.saturating_sub(startup).max(1) as f64
                ),
            );
            line(out, "allocator_allocated", used);
            line(out, "allocator_active", rss);
            line(out, "allocator_resident", rss);
            line(out, "total_system_memory", total);
            line(out, "total_system_memory_human", human_bytes(total));
            let s = srv.scripting.memory();
            let vm_total = s.vm_eval + s.vm_functions;
            let scripts = s.scripts_eval + s.functions;
            line(out, "used_memory_lua", s.vm_eval);
            line(out, "used_memory_vm_eval", s.vm_eval);
            line(out, "used_memory_lua_human", human_bytes(s.vm_eval));
            line(out, "used_memory_scripts_eval", s.scripts_eval);
            line(out, "number_of_cached_scripts", s.cached_scripts);
            line(out, "number_of_functions", s.functions_count);
            line(out, "number_of_libraries", s.libraries);
            line(out, "used_memory_vm_functions", s.vm_functions);
            line(out, "used_memory_vm_total", vm_total);
            line(out, "used_memory_vm_total_human", human_bytes(vm_total));
            line(out, "used_memory_functions", s.functions);
            line(out, "used_memory_scripts", scripts);
            line(out, "used_memory_scripts_human", human_bytes(scripts));
            line(out, "maxmemory", m.maxmemory);
            line(out, "maxmemory_human", human_bytes(m.maxmemory));
            line(out, "maxmemory_policy", policy);
            // Memory mapped but holding no data: the node slab's
            // free and never-used blocks (`used_memory` leaves them out; a key set
            // that shrank leaves chunks partly used until they empty or MEMORY PURGE).
            line(
                out,
                "allocator_frag_ratio",
                format!("{:.2}", (used + m.slab_spare) as f64 / used.max(1) as f64),
            );
            line(out, "allocator_frag_bytes", m.slab_spare);
            line(out, "allocator_rss_ratio", "1.00");
            line(out, "allocator_rss_bytes", 0);
            line(
                out,
                "rss_overhead_ratio",
                format!("{:.2}", rss as f64 / used.max(1) as f64),
            );
            line(out, "rss_overhead_bytes", rss as i64 - used as i64);
            line(
                out,
                "mem_fragmentation_ratio",
                format!("{:.2}", rss as f64 / used.max(1) as f64),
            );
            line(out, "mem_fragmentation_bytes", rss as i64 - used as i64);
            line(out, "mem_not_counted_for_evict", m.lazyfree_bytes);
            line(out, "mem_replication_backlog", 0);
            line(out, "mem_total_replication_buffers", 0);
            line(out, "mem_clients_slaves", 0);
            line(out, "mem_clients_normal", m.clients);
            line(out, "mem_cluster_links", 0);
            line(out, "mem_aof_buffer", 0);
            line(out, "mem_allocator", alloc::NAME);
            line(out, "active_defrag_running", 0);
            line(out, "lazyfree_pending_objects", m.lazyfree_pending);
            line(
                out,
                "lazyfreed_objects",
                srv.keyspace.lazyfree().freed_objects(),
            );
            // Basalt: the keyspace's own accounting (keys, values, tables, indexes).
            line(out, "basalt_keyspace_bytes", m.keyspace);
            line(
                out,
                "basalt_node_slab_chunks",
                basalt_engine::slab::NODES.chunks(),
            );
        }
        "persistence" => {
            out.push_str("# Persistence\r\n");
            let loading = srv.persist.loading.load(Ordering::Acquire);
            line(out, "loading", u8::from(loading));
            line(out, "async_loading", 0);
            line(out, "current_cow_peak", 0);
            line(out, "current_cow_size", 0);
            line(out, "current_cow_size_age", 0);
            line(out, "current_fork_perc", "0.00");
            let p = &srv.persist;
            let running = p.bgsave_running.load(Ordering::Relaxed);
            let (processed, total) = if running {
                (
                    p.keys_processed.load(Ordering::Relaxed),
                    p.keys_total.load(Ordering::Relaxed),
                )
            } else {
                (0, 0)
            };
            line(out, "current_save_keys_processed", processed);
            line(out, "current_save_keys_total", total);
            line(
                out,
                "rdb_changes_since_last_save",
                p.dirty.load(Ordering::Relaxed),
            );
            line(out, "rdb_bgsave_in_progress", u8::from(running));
            line(
                out,
                "rdb_last_save_time",
                p.lastsave.load(Ordering::Relaxed),
            );
            line(
                out,
                "rdb_last_bgsave_status",
                if p.last_status_ok() { "ok" } else { "err" },
            );
            line(
                out,
                "rdb_last_bgsave_time_sec",
                p.last_bgsave_secs.load(Ordering::Relaxed),
            );
            line(out, "rdb_current_bgsave_time_sec", p.current_bgsave_secs());
            line(out, "rdb_saves", p.saves.load(Ordering::Relaxed));
            line(out, "rdb_last_cow_size", 0);
            line(
                out,
                "rdb_last_load_keys_expired",
                p.loaded_expired.load(Ordering::Relaxed),
            );
            line(
                out,
                "rdb_last_load_keys_loaded",
                p.loaded_keys.load(Ordering::Relaxed),
            );
            let a = &srv.aof;
            let enabled = srv.config.read().appendonly;
            let rewriting = a.rewrite_running.load(Ordering::Relaxed);
            line(out, "aof_enabled", u8::from(enabled));
            line(out, "aof_rewrite_in_progress", u8::from(rewriting));
            line(
                out,
                "aof_rewrite_scheduled",
                u8::from(
                    a.enable_pending.load(Ordering::Relaxed)
                        || a.rewrite_scheduled.load(Ordering::Relaxed),
                ),
            );
            line(
                out,
                "aof_last_rewrite_time_sec",
                a.last_rewrite_secs.load(Ordering::Relaxed),
            );
            line(
                out,
                "aof_current_rewrite_time_sec",
                crate::aof::current_rewrite_secs(srv),
            );
            line(
                out,
                "aof_last_bgrewrite_status",
                if a.last_rewrite_ok.load(Ordering::Relaxed) {
                    "ok"
                } else {
                    "err"
                },
            );
            line(out, "aof_rewrites", a.rewrites.load(Ordering::Relaxed));
            line(
                out,
                "aof_rewrites_consecutive_failures",
                a.rewrite_failures.load(Ordering::Relaxed),
            );
            line(
                out,
                "aof_last_write_status",
                if a.last_write_ok.load(Ordering::Relaxed) {
                    "ok"
                } else {
                    "err"
                },
            );
            line(out, "aof_last_cow_size", 0);
            line(out, "module_fork_in_progress", 0);
            line(out, "module_fork_last_cow_size", 0);
            if enabled {
                line(
                    out,
                    "aof_current_size",
                    a.current_size.load(Ordering::Relaxed),
                );
                line(out, "aof_base_size", a.base_size.load(Ordering::Relaxed));
                line(out, "aof_pending_rewrite", 0);
                line(
                    out,
                    "aof_buffer_length",
                    a.buffer_len.load(Ordering::Relaxed),
                );
                line(out, "aof_pending_bio_fsync", 0);
                line(
                    out,
                    "aof_delayed_fsync",
                    a.delayed_fsync.load(Ordering::Relaxed),
                );
            }
            if loading {
                loading_fields(srv, out);
            }
        }
        "stats" => {
            out.push_str("# Stats\r\n");
            let st = &srv.stats;
            let ks = srv.keyspace.stats();
            let (ops, inkb, outkb) = {
                let m = srv.metrics.lock();
                (
                    Metrics::avg(&m.ops),
                    Metrics::avg(&m.input),
                    Metrics::avg(&m.output),
                )
            };
            line(
                out,
                "total_connections_received",
                st.connections_received.load(Ordering::Relaxed),
            );
            line(out, "total_commands_processed", srv.commands_processed());
            line(out, "instantaneous_ops_per_sec", ops.round() as u64);
            line(
                out,
                "total_net_input_bytes",
                st.net_input_bytes.load(Ordering::Relaxed),
            );
            line(
                out,
                "total_net_output_bytes",
                st.net_output_bytes.load(Ordering::Relaxed),
            );
            line(out, "total_net_repl_input_bytes", 0);
            line(out, "total_net_repl_output_bytes", 0);
            line(out, "instantaneous_input_kbps", format!("{inkb:.2}"));
            line(out, "instantaneous_output_kbps", format!("{outkb:.2}"));
            line(out, "instantaneous_input_repl_kbps", "0.00");
            line(out, "instantaneous_output_repl_kbps", "0.00");
            line(
                out,
                "rejected_connections",
                st.rejected_connections.load(Ordering::Relaxed),
            );
            line(out, "sync_full", 0);
            line(out, "sync_partial_ok", 0);
            line(out, "sync_partial_err", 0);
            line(out, "expired_keys", ks.expired_keys);
            let stale = f64::from_bits(st.expired_stale.load(Ordering::Relaxed));
            line(out, "expired_stale_perc", format!("{:.2}", stale * 100.0));
            line(
                out,
                "expired_time_cap_reached_count",
                st.expired_time_cap_reached.load(Ordering::Relaxed),
            );
            line(
                out,
                "expire_cycle_cpu_milliseconds",
                st.expire_cycle_usec.load(Ordering::Relaxed) / 1000,
            );
            line(out, "evicted_keys", ks.evicted_keys);
            line(out, "evicted_clients", 0);
            line(
                out,
                "total_eviction_exceeded_time",
                st.eviction_usec.load(Ordering::Relaxed) / 1000,
            );
            line(out, "current_eviction_exceeded_time", 0);
            line(out, "keyspace_hits", ks.keyspace_hits);
            line(out, "keyspace_misses", ks.keyspace_misses);
            let (channels, patterns, shard) = srv.pubsub.counts();
            line(out, "pubsub_channels", channels);
            line(out, "pubsub_patterns", patterns);
            line(out, "pubsubshard_channels", shard);
            line(out, "latest_fork_usec", 0);
            line(out, "total_forks", 0);
            line(out, "migrate_cached_sockets", 0);
            line(out, "slave_expires_tracked_keys", 0);
            line(out, "active_defrag_hits", 0);
            line(out, "active_defrag_misses", 0);
            line(out, "active_defrag_key_hits", 0);
            line(out, "active_defrag_key_misses", 0);
            line(out, "total_active_defrag_time", 0);
            line(out, "current_active_defrag_time", 0);
            line(out, "tracking_total_keys", 0);
            line(out, "tracking_total_items", 0);
            line(out, "tracking_total_prefixes", 0);
            line(
                out,
                "unexpected_error_replies",
                st.unexpected_error_replies.load(Ordering::Relaxed),
            );
            line(
                out,
                "total_error_replies",
                st.total_error_replies.load(Ordering::Relaxed),
            );
            line(out, "dump_payload_sanitizations", 0);
            line(
                out,
                "total_reads_processed",
                st.net_input_bytes
                    .load(Ordering::Relaxed)
                    .min(srv.commands_processed()),
            );
            line(out, "total_writes_processed", 0);
            line(out, "io_threaded_reads_processed", 0);
            line(out, "io_threaded_writes_processed", 0);
            line(out, "reply_buffer_shrinks", 0);
            line(out, "reply_buffer_expands", 0);
            line(
                out,
                "client_query_buffer_limit_disconnections",
                st.client_query_buffer_limit_disconnections
                    .load(Ordering::Relaxed),
            );
            line(
                out,
                "client_output_buffer_limit_disconnections",
                srv.pubsub.obuf_disconnections.load(Ordering::Relaxed),
            );
        }
        "replication" => {
            out.push_str("# Replication\r\n");
            line(out, "role", "master");
            line(out, "connected_slaves", 0);
            line(out, "master_failover_state", "no-failover");
            line(out, "master_replid", &srv.run_id);
            line(
                out,
                "master_replid2",
                "0000000000000000000000000000000000000000",
            );
            line(out, "master_repl_offset", 0);
            line(out, "second_repl_offset", -1);
            line(out, "repl_backlog_active", 0);
            line(out, "repl_backlog_size", 1_048_576);
            line(out, "repl_backlog_first_byte_offset", 0);
            line(out, "repl_backlog_histlen", 0);
        }
        "cpu" => {
            out.push_str("# CPU\r\n");
            let (sys, user) = cpu_times();
            line(out, "used_cpu_sys", format!("{sys:.6}"));
            line(out, "used_cpu_user", format!("{user:.6}"));
            line(out, "used_cpu_sys_children", "0.000000");
            line(out, "used_cpu_user_children", "0.000000");
        }
        "modules" => out.push_str("# Modules\r\n"),
        "commandstats" => {
            out.push_str("# Commandstats\r\n");
            for r in srv.commands.entries() {
                let st = &srv.cmd_stats[r.id];
                let (calls, usec) = srv.call_stats.get(r.id);
                let rejected = st.rejected.load(Ordering::Relaxed);
                let failed = st.failed.load(Ordering::Relaxed);
                if calls == 0 && rejected == 0 && failed == 0 {
                    continue;
                }
                let per = if calls == 0 {
                    0.0
                } else {
                    usec as f64 / calls as f64
                };
                let _ = write!(
                    out,
                    "cmdstat_{}:calls={calls},usec={usec},usec_per_call={per:.2},rejected_calls={rejected},failed_calls={failed}\r\n",
                    r.fullname
                );
            }
        }
        "errorstats" => {
            out.push_str("# Errorstats\r\n");
            let errs = srv.error_stats.lock();
            let mut codes: Vec<_> = errs.iter().collect();
            codes.sort();
            for (code, n) in codes {
                let _ = write!(out, "errorstat_{code}:count={n}\r\n");
            }
        }
        "cluster" => {
            out.push_str("# Cluster\r\n");
            line(out, "cluster_enabled", 0);
        }
        "keyspace" => {
            out.push_str("# Keyspace\r\n");
            for (db, (keys, expires)) in srv.keyspace.db_sizes().into_iter().enumerate() {
                if keys > 0 {
                    let _ = write!(out, "db{db}:keys={keys},expires={expires},avg_ttl=0\r\n");
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn human_sizes_like_redis() {
        assert_eq!(human_bytes(512), "512B");
        assert_eq!(human_bytes(1024), "1.00K");
        assert_eq!(human_bytes(1536 * 1024), "1.50M");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.00G");
    }
}
