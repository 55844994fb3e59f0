//! The MEMORY command: USAGE, STATS, DOCTOR, PURGE, MALLOC-STATS, HELP.
//!
//! Numbers come from the keyspace's incremental accounting (per key: node, name and
//! value as the allocator rounds them; per database: buckets and deadline index) and
//! from the counting allocator (`alloc.rs`). Nothing walks the keyspace.

use crate::alloc;
use crate::cmd::args::is;
use crate::cmd::flags::*;
use crate::cmd::{Command, KeySpec, acl};
use crate::error::{self, CmdResult, Error};
use crate::info::{MainOverhead, MemoryOverview, human_bytes};
use crate::server::Ctx;
use basalt_engine::num::parse_i64;
use basalt_proto::Frame;
use bytes::Bytes;

const RO: &[&str] = &["RO"];

const SUBCOMMANDS: &[Command] = &[
    Command {
        name: "doctor",
        arity: 2,
        acl: acl::SLOW,
        group: "server",
        since: "4.0.0",
        summary: "Outputs memory problems report",
        complexity: "O(1)",
        tips: &[
            "nondeterministic_output",
            "request_policy:all_shards",
            "response_policy:special",
        ],
        handler: Some(doctor),
        ..Command::EMPTY
    },
    Command {
        name: "help",
        arity: 2,
        flags: LOADING | STALE,
        acl: acl::SLOW,
        group: "server",
        since: "4.0.0",
        summary: "Show helpful text about the different subcommands",
        complexity: "O(1)",
        handler: Some(help),
        ..Command::EMPTY
    },
    Command {
        name: "malloc-stats",
        arity: 2,
        acl: acl::SLOW,
        group: "server",
        since: "4.0.0",
        summary: "Show allocator internal stats",
        complexity: "Depends on how much memory is allocated, could be slow",
        tips: &[
            "nondeterministic_output",
            "request_policy:all_shards",
            "response_policy:special",
        ],
        handler: Some(malloc_stats),
        ..Command::EMPTY
    },
    Command {
        name: "purge",
        arity: 2,
        acl: acl::SLOW,
        group: "server",
        since: "4.0.0",
        summary: "Ask the allocator to release memory",
        complexity: "Depends on how much memory is allocated, could be slow",
        tips: &["request_policy:all_shards", "response_policy:all_succeeded"],
        handler: Some(purge),
        ..Command::EMPTY
    },
    Command {
        name: "stats",
        arity: 2,
        acl: acl::SLOW,
        group: "server",
        since: "4.0.0",
        summary: "Show memory usage details",
        complexity: "O(1)",
        tips: &[
            "nondeterministic_output",
            "request_policy:all_shards",
            "response_policy:special",
        ],
        handler: Some(stats),
        ..Command::EMPTY
    },
    Command {
        name: "usage",
        arity: -3,
        flags: READONLY,
        acl: acl::READ | acl::SLOW,
        keys: (2, 2, 1),
        key_specs: &[KeySpec::single(2, RO)],
        group: "server",
        since: "4.0.0",
        summary: "Estimate the memory usage of a key",
        complexity: "O(N) where N is the number of samples.",
        handler: Some(usage),
        ..Command::EMPTY
    },
];

/// The MEMORY container.
pub const COMMANDS: &[Command] = &[Command {
    name: "memory",
    arity: -2,
    group: "server",
    since: "4.0.0",
    summary: "A container for memory diagnostics commands",
    complexity: "Depends on subcommand.",
    subcommands: SUBCOMMANDS,
    ..Command::EMPTY
}];

/// `MEMORY USAGE key [SAMPLES count]`: the key's node, name and value in bytes. Every
/// type keeps an exact running size, so SAMPLES is checked but changes nothing (Redis
/// samples nested values; 0 means all, which is what Basalt always reports).
fn usage(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut j = 3;
    while j < args.len() {
        if is(&args[j], "samples") && j + 1 < args.len() {
            let n = parse_i64(&args[j + 1]).ok_or_else(|| Error::msg(error::NOT_INTEGER))?;
            if n < 0 {
                return Err(Error::msg(error::SYNTAX));
            }
            j += 2;
        } else {
            return Err(Error::msg(error::SYNTAX));
        }
    }
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[2], ctx.now);
    Ok(match g.mem_usage(db, &args[2]) {
        Some(n) => Frame::Integer(n as i64),
        None => Frame::Null,
    })
}

fn int(n: u64) -> Frame {
    Frame::Integer(n.min(i64::MAX as u64) as i64)
}

fn pair(k: &str, v: Frame) -> (Frame, Frame) {
    (Frame::bulk(k.as_bytes()), v)
}

/// `MEMORY STATS`: Redis's fields, in Redis's order.
fn stats(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let m = MemoryOverview::measure(ctx.srv);
    let mut out = vec![
        pair("peak.allocated", int(m.peak)),
        pair("total.allocated", int(m.used)),
        pair("startup.allocated", int(m.startup)),
        pair("replication.backlog", int(0)),
        pair("clients.slaves", int(0)),
        pair("clients.normal", int(m.clients)),
        pair("cluster.links", int(0)),
        pair("aof.buffer", int(0)),
        pair("lua.caches", int(0)),
        pair("functions.caches", int(0)),
    ];
    for (i, d) in m.dbs.iter().enumerate() {
        if d.keys == 0 {
            continue;
        }
        out.push(pair(
            &format!("db.{i}"),
            Frame::Map(vec![
                pair("overhead.hashtable.main", int(d.main_overhead() as u64)),
                pair("overhead.hashtable.expires", int(d.expires as u64)),
                pair("overhead.hashtable.slot-to-keys", int(0)),
            ]),
        ));
    }
    let net = m.used.saturating_sub(m.startup);
    let frag = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    out.extend([
        pair("overhead.total", int(m.overhead)),
        pair("keys.count", int(m.keys)),
        pair(
            "keys.bytes-per-key",
            int(net.checked_div(m.keys).unwrap_or(0)),
        ),
        pair("dataset.bytes", int(m.dataset())),
        pair(
            "dataset.percentage",
            Frame::Double(frag(m.dataset() * 100, net.max(1))),
        ),
        pair("peak.percentage", Frame::Double(frag(m.used * 100, m.peak))),
        pair("allocator.allocated", int(m.used)),
        pair("allocator.active", int(m.rss)),
        pair("allocator.resident", int(m.rss)),
        pair("allocator-fragmentation.ratio", Frame::Double(1.0)),
        pair("allocator-fragmentation.bytes", int(0)),
        pair("allocator-rss.ratio", Frame::Double(1.0)),
        pair("allocator-rss.bytes", int(0)),
        pair("rss-overhead.ratio", Frame::Double(frag(m.rss, m.used))),
        pair(
            "rss-overhead.bytes",
            Frame::Integer(m.rss as i64 - m.used as i64),
        ),
        pair("fragmentation", Frame::Double(frag(m.rss, m.used))),
        pair(
            "fragmentation.bytes",
            Frame::Integer(m.rss as i64 - m.used as i64),
        ),
    ]);
    Ok(Frame::Map(out))
}

/// `MEMORY DOCTOR`: Redis's report format, with Basalt's checks.
fn doctor(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let m = MemoryOverview::measure(ctx.srv);
    let text = doctor_report(&m, ctx.srv.config.read().maxmemory_policy.as_str());
    Ok(Frame::Verbatim {
        format: *b"txt",
        text: Bytes::from(text),
    })
}

/// The doctor's report for a memory overview (separate for tests).
pub fn doctor_report(m: &MemoryOverview, policy: &str) -> String {
    if m.used < 5 * 1024 * 1024 {
        return "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I will be back to our programming as soon as I finished rebooting.\n".into();
    }
    let mut issues: Vec<String> = Vec::new();
    if m.peak as f64 / m.used as f64 > 1.5 {
        issues.push(format!(
            " * Peak memory: In the past this instance used more than 150% the memory that is currently using ({} peak, {} now). The allocator is normally not able to release memory after a peak, so you can expect to see a big fragmentation ratio, however this is actually harmless and is only due to the memory peak, and if the Redis instance Resident Set Size (RSS) is currently bigger than expected, the memory will be used as soon as you fill the Redis instance with more data. If the memory peak was only occasional and you want to try to reclaim memory, please try the MEMORY PURGE command, otherwise the only other option is to shutdown and restart the instance.\n\n",
            human_bytes(m.peak),
            human_bytes(m.used)
        ));
    }
    if m.rss > m.used && m.rss as f64 / m.used as f64 > 1.4 && m.rss - m.used > 10 << 20 {
        issues.push(format!(
            " * High total RSS: This instance has a memory fragmentation and RSS overhead greater than 1.4 (this means that the Resident Set Size of the Basalt process is much larger than the sum of the logical allocations Basalt performed: {} resident for {} allocated). This problem is usually due either to a large peak memory (check if there is a peak memory entry above in the report) or may result from a workload that causes the allocator to fragment memory a lot. Try MEMORY PURGE.\n\n",
            human_bytes(m.rss),
            human_bytes(m.used)
        ));
    }
    if m.connected > 0 && m.clients / m.connected > 200 * 1024 {
        issues.push(format!(
            " * Big client buffers: The clients input buffers use on average {} per client. This may result from clients pipelining very large requests or sending big values; check CLIENT LIST and client-query-buffer-limit.\n\n",
            human_bytes(m.clients / m.connected)
        ));
    }
    if m.maxmemory > 0 && m.used > m.maxmemory {
        let what = if policy == "noeviction" {
            "maxmemory-policy is noeviction, so writes that need memory are refused with -OOM. Raise maxmemory, delete keys, or choose an eviction policy (allkeys-lru, or Basalt's allkeys-s3fifo for caches)."
        } else if policy.starts_with("volatile") && m.volatile == 0 {
            "the policy only evicts keys with a TTL and no key has one, so writes that need memory are refused with -OOM. Set TTLs or choose an allkeys-* policy."
        } else {
            "eviction is running; if used memory stays above the limit, the memory is held outside the dataset (client buffers, pending lazy frees)."
        };
        issues.push(format!(
            " * Over maxmemory: {} used with maxmemory {}: {what}\n\n",
            human_bytes(m.used),
            human_bytes(m.maxmemory)
        ));
    }
    if m.slab_spare > 16 << 20 && m.slab_spare > m.used / 4 {
        issues.push(format!(
            " * Node slab fragmentation: {} of the chunks that hold keys' table nodes hold no key ({} in use). Chunks go back to the system only when all their nodes are gone: this follows deleting or expiring most of many keys that were written together. MEMORY PURGE returns the empty chunks now; the rest fills again as keys are written, or compacts on a restart from a snapshot.\n\n",
            human_bytes(m.slab_spare),
            human_bytes(m.used)
        ));
    }
    if m.lazyfree_pending > 1_000_000 {
        issues.push(format!(
            " * Lazy free backlog: {} objects wait to be freed by the background thread. Very large UNLINK or FLUSHALL ASYNC bursts cause this; it drains by itself.\n\n",
            m.lazyfree_pending
        ));
    }
    if issues.is_empty() {
        return "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.\n".into();
    }
    let mut s =
        String::from("Sam, I detected a few issues in this Basalt instance memory implants:\n\n");
    for i in issues {
        s.push_str(&i);
    }
    s.push_str("I'm here to keep you safe, Sam. I want to help you.\n");
    s
}

/// `MEMORY PURGE`: asks mimalloc to return freed pages to the system.
fn purge(_ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    alloc::purge();
    Ok(Frame::ok())
}

/// `MEMORY MALLOC-STATS`: the allocator's own statistics report.
fn malloc_stats(_ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let text = alloc::stats_text()
        .unwrap_or_else(|| "Stats not supported for the current allocator".into());
    Ok(Frame::Verbatim {
        format: *b"txt",
        text: Bytes::from(text),
    })
}

/// `MEMORY HELP`: Redis 7.0 writes its last line as "Prints this help." (other
/// containers say "Print"), so the reply is built here rather than with `help_reply`.
fn help(_ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let lines = [
        "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "DOCTOR",
        "    Return memory problems reports.",
        "MALLOC-STATS",
        "    Return internal statistics report from the memory allocator.",
        "PURGE",
        "    Attempt to purge dirty pages for reclamation by the allocator.",
        "STATS",
        "    Return information about the memory usage of the server.",
        "USAGE <key> [SAMPLES <count>]",
        "    Return memory in bytes used by <key> and its value. Nested values are",
        "    sampled up to <count> times (default: 5, 0 means sample all).",
        "HELP",
        "    Prints this help.",
    ];
    Ok(Frame::Array(
        lines
            .iter()
            .map(|l| Frame::Simple(Bytes::from_static(l.as_bytes())))
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overview(used: u64) -> MemoryOverview {
        MemoryOverview {
            used,
            peak: used,
            rss: used,
            startup: 1 << 20,
            ..MemoryOverview::default()
        }
    }

    #[test]
    fn doctor_reports_like_redis() {
        assert!(
            doctor_report(&overview(1 << 20), "noeviction")
                .starts_with("Hi Sam, this instance is empty")
        );
        assert!(
            doctor_report(&overview(100 << 20), "noeviction")
                .starts_with("Hi Sam, I can't find any memory issue")
        );
        let mut m = overview(100 << 20);
        m.peak = 300 << 20;
        m.maxmemory = 50 << 20;
        let r = doctor_report(&m, "noeviction");
        assert!(
            r.contains(" * Peak memory:") && r.contains(" * Over maxmemory:"),
            "{r}"
        );
        assert!(r.contains("-OOM"));
        assert!(r.ends_with("I want to help you.\n"));
        let mut m = overview(100 << 20);
        m.slab_spare = 20 << 20;
        assert!(
            !doctor_report(&m, "noeviction").contains("slab"),
            "a fifth is fine"
        );
        m.slab_spare = 40 << 20;
        assert!(doctor_report(&m, "noeviction").contains(" * Node slab fragmentation:"));
    }
}
