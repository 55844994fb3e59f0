//! maxmemory, eviction policies, OOM refusals, lazy free, MEMORY and OBJECT FREQ on a
//! live server. Limits are set relative to the server's own `used_memory`, so the tests
//! do not depend on how much the process holds at startup.

use basalt_testkit::RawClient;
use std::time::{Duration, Instant};

const OOM: &[u8] = b"-OOM command not allowed when used memory > 'maxmemory'.\r\n";

fn info_field(c: &mut RawClient, section: &str, field: &str) -> u64 {
    let raw = c.cmd(&[b"INFO", section.as_bytes()]).expect("info");
    let text = String::from_utf8_lossy(&raw).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("INFO {section} lacks {field}:\n{text}"))
}

fn used(c: &mut RawClient) -> u64 {
    info_field(c, "memory", "used_memory")
}

fn config_set(c: &mut RawClient, k: &str, v: &str) {
    assert_eq!(
        c.cmd(&[b"CONFIG", b"SET", k.as_bytes(), v.as_bytes()])
            .expect("config set"),
        b"+OK\r\n",
        "CONFIG SET {k} {v}"
    );
}

/// Under noeviction, writes that need memory are refused once over the limit; reads and
/// deletes are still served, and freeing memory lets writes in again.
#[test]
fn noeviction_refuses_denyoom_but_serves_reads_and_deletes() {
    let server = crate::start(&[]);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    let limit = used(&mut c) + 512 * 1024;
    config_set(&mut c, "maxmemory", &limit.to_string());
    let value = vec![b'x'; 1000];
    let mut refused_at = None;
    for i in 0..5000 {
        let r = c
            .cmd(&[b"SET", format!("k{i}").as_bytes(), &value])
            .expect("set");
        if r == OOM {
            refused_at = Some(i);
            break;
        }
        assert_eq!(r, b"+OK\r\n");
    }
    let n = refused_at.expect("never refused a write");
    assert!(n > 100, "refused too early: {n}");
    // Usage exceeds the limit by at most the last write.
    assert!(used(&mut c) <= limit + 4096, "{} > {limit}", used(&mut c));
    // Reads, deletes, and non-denyoom writes are served.
    assert_eq!(c.cmd(&[b"GET", b"k0"]).expect("get").len(), 1000 + 9);
    assert_eq!(c.cmd(&[b"EXISTS", b"k1"]).expect("exists"), b":1\r\n");
    assert_eq!(c.cmd(&[b"LPUSH", b"l", b"a"]).expect("lpush"), OOM);
    assert_eq!(
        c.cmd(&[b"EXPIRE", b"k1", b"100"]).expect("expire"),
        b":1\r\n"
    );
    assert_eq!(c.cmd(&[b"DEL", b"k0"]).expect("del"), b":1\r\n");
    let stats =
        String::from_utf8_lossy(&c.cmd(&[b"INFO", b"everything"]).expect("info")).into_owned();
    assert!(stats.contains("errorstat_OOM:count="), "{stats}");
    assert!(
        stats.contains("cmdstat_lpush:calls=0,usec=0,usec_per_call=0.00,rejected_calls=1"),
        "{stats}"
    );
    // Freeing memory (UNLINK here) lets writes in again.
    for i in 1..n / 2 {
        c.cmd(&[b"UNLINK", format!("k{i}").as_bytes()])
            .expect("unlink");
    }
    assert_eq!(c.cmd(&[b"SET", b"again", b"v"]).expect("set"), b"+OK\r\n");
    assert_eq!(info_field(&mut c, "stats", "evicted_keys"), 0);
}

/// allkeys-* policies and the FIFO ones evict before each write, so used memory never
/// exceeds maxmemory by more than about one value, and the keys keep coming in.
#[test]
fn eviction_keeps_usage_within_one_value_of_the_limit() {
    let server = crate::start(&[]);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    for policy in [
        "allkeys-lru",
        "allkeys-lfu",
        "allkeys-random",
        "allkeys-fifo",
        "allkeys-s3fifo",
        "volatile-ttl",
    ] {
        c.cmd(&[b"FLUSHALL"]).expect("flush");
        config_set(&mut c, "maxmemory", "0");
        config_set(&mut c, "maxmemory-policy", policy);
        let limit = used(&mut c) + 1024 * 1024;
        config_set(&mut c, "maxmemory", &limit.to_string());
        let value = vec![b'v'; 2000];
        for i in 0..3000 {
            let k = format!("{policy}:{i}");
            let r = c
                .cmd(&[b"SET", k.as_bytes(), &value, b"EX", b"1000"])
                .expect("set");
            assert_eq!(r, b"+OK\r\n", "{policy} at {i}");
            if i % 50 == 0 {
                let u = used(&mut c);
                // One value (~2.1 KB with its key and node) plus the INFO reply itself.
                assert!(u <= limit + 8 * 1024, "{policy}: used {u} > limit {limit}");
            }
        }
        let evicted = info_field(&mut c, "stats", "evicted_keys");
        assert!(evicted > 1000, "{policy}: evicted {evicted}");
        c.cmd(&[b"CONFIG", b"RESETSTAT"]).expect("resetstat");
    }
}

/// volatile-* policies evict only keys with a TTL; with none left they refuse denyoom
/// commands like noeviction, as Redis does.
#[test]
fn volatile_policies_evict_only_keys_with_a_ttl() {
    let server = crate::start(&[]);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    config_set(&mut c, "maxmemory-policy", "volatile-lru");
    let value = vec![b'p'; 1000];
    for i in 0..200 {
        c.cmd(&[b"SET", format!("persistent:{i}").as_bytes(), &value])
            .expect("set");
    }
    let limit = used(&mut c) + 256 * 1024;
    config_set(&mut c, "maxmemory", &limit.to_string());
    let mut oom = false;
    for i in 0..3000 {
        let r = c
            .cmd(&[b"SET", format!("v:{i}").as_bytes(), &value, b"EX", b"1000"])
            .expect("set");
        assert_eq!(r, b"+OK\r\n", "volatile keys can always be evicted: {i}");
    }
    assert!(info_field(&mut c, "stats", "evicted_keys") > 1000);
    for i in 0..200 {
        assert_eq!(
            c.cmd(&[b"EXISTS", format!("persistent:{i}").as_bytes()])
                .expect("exists"),
            b":1\r\n",
            "a key without TTL was evicted"
        );
    }
    // Drop every TTL: nothing is evictable any more.
    c.cmd(&[b"FLUSHALL"]).expect("flush");
    config_set(&mut c, "maxmemory", "0");
    let limit = used(&mut c) + 128 * 1024;
    config_set(&mut c, "maxmemory", &limit.to_string());
    for i in 0..2000 {
        let r = c
            .cmd(&[b"SET", format!("p:{i}").as_bytes(), &value])
            .expect("set");
        if r == OOM {
            oom = true;
            break;
        }
    }
    assert!(oom, "volatile-lru without TTL keys must refuse writes");
    assert_eq!(c.cmd(&[b"GET", b"p:0"]).expect("get").len(), 1009);
}

/// CONFIG SET maxmemory below current usage evicts down without any client traffic.
#[test]
fn lowering_maxmemory_evicts_down_promptly() {
    let server = crate::start(&[]);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    let base = used(&mut c);
    let value = vec![b'x'; 1000];
    let mut pipe = Vec::new();
    for i in 0..5000 {
        let k = format!("k{i}");
        pipe.extend_from_slice(
            format!("*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n$1000\r\n", k.len()).as_bytes(),
        );
        pipe.extend_from_slice(&value);
        pipe.extend_from_slice(b"\r\n");
    }
    c.send_raw(&pipe).expect("send");
    for _ in 0..5000 {
        c.read_reply_raw().expect("reply");
    }
    assert!(used(&mut c) > base + 5_000_000);
    config_set(&mut c, "maxmemory-policy", "allkeys-lru");
    let limit = base + 1024 * 1024;
    config_set(&mut c, "maxmemory", &limit.to_string());
    let t0 = Instant::now();
    while used(&mut c) > limit + 16 * 1024 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "still over the limit"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(info_field(&mut c, "stats", "evicted_keys") > 3000);
}

#[test]
fn object_freq_and_idletime_follow_the_policy() {
    let server = crate::start(&[]);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    c.cmd(&[b"SET", b"k", b"v"]).expect("set");
    let freq_err = c.cmd(&[b"OBJECT", b"FREQ", b"k"]).expect("freq");
    assert!(freq_err.starts_with(b"-ERR An LFU maxmemory policy is not selected"));
    assert_eq!(
        c.cmd(&[b"OBJECT", b"IDLETIME", b"k"]).expect("idle"),
        b":0\r\n"
    );
    config_set(&mut c, "maxmemory-policy", "allkeys-lfu");
    c.cmd(&[b"SET", b"n", b"v"]).expect("set");
    assert_eq!(c.cmd(&[b"OBJECT", b"FREQ", b"n"]).expect("freq"), b":5\r\n");
    c.cmd(&[b"GET", b"n"]).expect("get");
    // The first access above LFU_INIT_VAL always counts (p = 1).
    assert_eq!(c.cmd(&[b"OBJECT", b"FREQ", b"n"]).expect("freq"), b":6\r\n");
    for _ in 0..200 {
        c.cmd(&[b"GET", b"n"]).expect("get");
    }
    let f = c.cmd(&[b"OBJECT", b"FREQ", b"n"]).expect("freq");
    let f: u32 = std::str::from_utf8(&f[1..f.len() - 2])
        .unwrap()
        .parse()
        .unwrap();
    assert!((7..40).contains(&f), "{f}");
    let idle_err = c.cmd(&[b"OBJECT", b"IDLETIME", b"n"]).expect("idle");
    assert!(
        idle_err.starts_with(b"-ERR An LFU maxmemory policy is selected, idle time not tracked.")
    );
    config_set(&mut c, "maxmemory-policy", "allkeys-s3fifo");
    assert_eq!(
        c.cmd(&[b"OBJECT", b"IDLETIME", b"n"]).expect("idle"),
        b":0\r\n"
    );
}

/// UNLINK and FLUSHALL ASYNC hand big values to the freeing thread.
#[test]
fn unlink_and_async_flush_free_in_the_background() {
    let server = crate::start(&[]);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    let mut pipe = Vec::new();
    for i in 0..20_000 {
        let f = format!("field:{i}");
        pipe.extend_from_slice(
            format!(
                "*4\r\n$4\r\nHSET\r\n$1\r\nh\r\n${}\r\n{f}\r\n$1\r\nv\r\n",
                f.len()
            )
            .as_bytes(),
        );
    }
    c.send_raw(&pipe).expect("send");
    for _ in 0..20_000 {
        c.read_reply_raw().expect("reply");
    }
    let before = used(&mut c);
    assert_eq!(
        c.cmd(&[b"UNLINK", b"h", b"nokey"]).expect("unlink"),
        b":1\r\n"
    );
    assert_eq!(c.cmd(&[b"EXISTS", b"h"]).expect("exists"), b":0\r\n");
    let t0 = Instant::now();
    while info_field(&mut c, "memory", "lazyfreed_objects") < 1 {
        assert!(t0.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(info_field(&mut c, "memory", "lazyfree_pending_objects"), 0);
    assert!(
        used(&mut c) + 500_000 < before,
        "the hash's memory came back"
    );
    for i in 0..1000 {
        c.cmd(&[b"SET", format!("k{i}").as_bytes(), b"v"])
            .expect("set");
    }
    assert_eq!(c.cmd(&[b"FLUSHALL", b"ASYNC"]).expect("flush"), b"+OK\r\n");
    assert_eq!(c.cmd(&[b"DBSIZE"]).expect("dbsize"), b":0\r\n");
    while info_field(&mut c, "memory", "lazyfreed_objects") < 1001 {
        assert!(t0.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(c.cmd(&[b"FLUSHDB", b"SYNC"]).expect("flush"), b"+OK\r\n");
    assert_eq!(
        c.cmd(&[b"FLUSHDB", b"LAZY"]).expect("flush"),
        b"-ERR syntax error\r\n"
    );
}

/// `MEMORY USAGE` of an existing key.
fn usage(c: &mut RawClient, key: &[u8]) -> u64 {
    let r = c.cmd(&[b"MEMORY", b"USAGE", key]).expect("usage");
    std::str::from_utf8(&r[1..r.len() - 2])
        .expect("utf-8")
        .parse()
        .expect("an integer reply")
}

/// The raw `OBJECT ENCODING` reply.
fn encoding(c: &mut RawClient, key: &[u8]) -> Vec<u8> {
    c.cmd(&[b"OBJECT", b"ENCODING", key]).expect("encoding")
}

#[test]
fn memory_usage_and_stats() {
    let server = crate::start(&[]);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    c.cmd(&[b"SET", b"foo", b"bar"]).expect("set");
    // One block: link and header (16), the embstr value's 3 bytes and the key's 3: 22
    // bytes, the allocator's 32-byte class.
    assert_eq!(usage(&mut c, b"foo"), 32);
    // A deadline adds 8 bytes to the block; an integer takes 8.
    c.cmd(&[b"EXPIRE", b"foo", b"100"]).expect("expire");
    assert_eq!(usage(&mut c, b"foo"), 32);
    c.cmd(&[b"SET", b"foo", b"12345"]).expect("set");
    assert_eq!(usage(&mut c, b"foo"), 32);
    // APPEND makes it `raw`: a 24-byte value in the block (16 + 24 + 3 = 43, the
    // 48-byte class) and its buffer outside (grown to 10 bytes: 16).
    c.cmd(&[b"APPEND", b"foo", b"6"]).expect("append");
    assert_eq!(encoding(&mut c, b"foo"), b"$3\r\nraw\r\n");
    assert_eq!(usage(&mut c, b"foo"), 64);
    // A 100-byte string is `raw` and lives in the block after a length byte:
    // 16 + 1 + 100 + 3 = 120 bytes, a slab class; a deadline makes it 128.
    let v100 = vec![b'v'; 100];
    c.cmd(&[b"SET", b"foo", &v100]).expect("set");
    assert_eq!(encoding(&mut c, b"foo"), b"$3\r\nraw\r\n");
    assert_eq!(usage(&mut c, b"foo"), 120);
    c.cmd(&[b"EXPIRE", b"foo", b"100"]).expect("expire");
    assert_eq!(usage(&mut c, b"foo"), 128);
    let mut want = b"$100\r\n".to_vec();
    want.extend_from_slice(&v100);
    want.extend_from_slice(b"\r\n");
    assert_eq!(c.cmd(&[b"GET", b"foo"]).expect("get"), want);
    // Edited in place it keeps its deadline and becomes a buffer of its own.
    c.cmd(&[b"SETRANGE", b"foo", b"98", b"xyz"])
        .expect("setrange");
    assert_eq!(
        c.cmd(&[b"GETRANGE", b"foo", b"96", b"-1"])
            .expect("getrange"),
        b"$5\r\nvvxyz\r\n"
    );
    assert_eq!(c.cmd(&[b"TTL", b"foo"]).expect("ttl"), b":100\r\n");
    // 16 + 8 + 24 + 3 = 51 bytes of block (64) and at least 100 of buffer (112).
    let edited = usage(&mut c, b"foo");
    assert!(edited >= 64 + 112, "{edited}");
    assert_eq!(
        c.cmd(&[b"MEMORY", b"USAGE", b"nokey"]).expect("usage"),
        b"$-1\r\n"
    );
    let big = vec![b'x'; 10_000];
    c.cmd(&[b"SET", b"big", &big]).expect("set");
    let u = c
        .cmd(&[b"MEMORY", b"USAGE", b"big", b"SAMPLES", b"0"])
        .expect("usage");
    let u: u64 = std::str::from_utf8(&u[1..u.len() - 2])
        .unwrap()
        .parse()
        .unwrap();
    assert!((10_000..10_000 + 2600).contains(&u), "{u}");
    let stats =
        String::from_utf8_lossy(&c.cmd(&[b"MEMORY", b"STATS"]).expect("stats")).into_owned();
    for f in [
        "peak.allocated",
        "db.0",
        "overhead.hashtable.main",
        "keys.count",
        "dataset.bytes",
        "fragmentation.bytes",
    ] {
        assert!(stats.contains(f), "MEMORY STATS lacks {f}: {stats}");
    }
    let doctor = c.cmd(&[b"MEMORY", b"DOCTOR"]).expect("doctor");
    assert!(
        doctor.starts_with(b"$"),
        "{:?}",
        String::from_utf8_lossy(&doctor)
    );
    assert_eq!(c.cmd(&[b"MEMORY", b"PURGE"]).expect("purge"), b"+OK\r\n");
    assert!(
        c.cmd(&[b"MEMORY", b"MALLOC-STATS"])
            .expect("stats")
            .starts_with(b"$")
    );
}

/// 100k keys with mixed TTLs disappear after their deadlines without being accessed.
#[test]
fn hundred_thousand_keys_with_mixed_ttls_expire_without_access() {
    let server = crate::start(&[]);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    let mut pipe = Vec::new();
    let n = 100_000;
    let mut persistent = 0;
    for i in 0..n {
        let k = format!("key:{i}");
        if i % 10 == 0 {
            persistent += 1;
            pipe.extend_from_slice(
                format!("*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n$1\r\nv\r\n", k.len()).as_bytes(),
            );
        } else {
            let ms = (100 + (i * 37) % 1400).to_string();
            pipe.extend_from_slice(
                format!(
                    "*5\r\n$3\r\nSET\r\n${}\r\n{k}\r\n$1\r\nv\r\n$2\r\nPX\r\n${}\r\n{ms}\r\n",
                    k.len(),
                    ms.len()
                )
                .as_bytes(),
            );
        }
    }
    c.send_raw(&pipe).expect("send");
    for _ in 0..n {
        c.read_reply_raw().expect("reply");
    }
    let t0 = Instant::now();
    loop {
        let ks =
            String::from_utf8_lossy(&c.cmd(&[b"INFO", b"keyspace"]).expect("info")).into_owned();
        if ks.contains(&format!("db0:keys={persistent},expires=0")) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "not reclaimed: {ks}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        info_field(&mut c, "stats", "expired_keys"),
        (n - persistent) as u64
    );
    assert_eq!(info_field(&mut c, "stats", "keyspace_misses"), 0);
}

/// Keys whose node comes from the node slab (a 16-byte key, a 32-byte value and a TTL:
/// 72 bytes, between the allocator's 64 and 80-byte classes) count as exactly their
/// block in MEMORY USAGE and `used_memory`, deleting them lowers `used_memory` at once
/// (the slab keeps their chunks), and eviction under a limit keeps about the limit's
/// worth of them instead of emptying the keyspace.
#[test]
fn slab_nodes_count_exactly_in_used_memory_and_eviction() {
    let server = crate::start(&[]);
    let mut c = RawClient::connect_port(server.port()).expect("connect");
    let value = [b'v'; 32];
    let key = |i: usize| format!("key:{i:012}").into_bytes();
    let base = used(&mut c);
    let n = 20_000;
    for i in 0..n {
        c.cmd(&[b"SET", &key(i), &value, b"EX", b"1000"])
            .expect("set");
    }
    assert_eq!(
        c.cmd(&[b"MEMORY", b"USAGE", &key(0)]).expect("usage"),
        b":72\r\n"
    );
    let loaded = used(&mut c);
    let per_key = (loaded - base) as f64 / n as f64;
    // The 72-byte block, a bucket pointer and an index entry (about 6 bytes); not the
    // 80-byte class.
    assert!(
        (72.0..72.0 + 8.0 * 2.0 + 12.0).contains(&per_key),
        "{per_key} B per key"
    );
    for i in 0..n / 2 {
        c.cmd(&[b"DEL", &key(i)]).expect("del");
    }
    let after_del = used(&mut c);
    // Their blocks, give or take the few bytes other allocations (the connection's
    // buffers, counters) move meanwhile; kept chunks would free nothing.
    assert!(
        loaded - after_del >= (n / 2 * 72) as u64 * 99 / 100,
        "deleting {} slab nodes freed only {} bytes",
        n / 2,
        loaded - after_del
    );
    c.cmd(&[b"FLUSHALL"]).expect("flush");
    assert_eq!(c.cmd(&[b"MEMORY", b"PURGE"]).expect("purge"), b"+OK\r\n");
    let flushed = used(&mut c);
    assert!(
        flushed < base + 256 * 1024,
        "base {base}, after flush {flushed}"
    );

    config_set(&mut c, "maxmemory-policy", "allkeys-lru");
    let limit = flushed + 2 * 1024 * 1024;
    config_set(&mut c, "maxmemory", &limit.to_string());
    for i in 0..100_000 {
        c.cmd(&[b"SET", &key(i), &value, b"EX", b"1000"])
            .expect("set");
    }
    let u = used(&mut c);
    assert!(u <= limit + 8 * 1024, "used {u} > limit {limit}");
    let keys = c.cmd(&[b"DBSIZE"]).expect("dbsize");
    let keys: u64 = std::str::from_utf8(&keys[1..keys.len() - 2])
        .expect("utf8")
        .parse()
        .expect("integer");
    // 2 MiB hold about 23,000 such keys; eviction must not empty the keyspace.
    assert!(keys > 15_000, "only {keys} keys left under a 2 MiB budget");
    assert!(info_field(&mut c, "stats", "evicted_keys") > 50_000);
}
