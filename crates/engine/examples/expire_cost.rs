//! Instructions per key reclaimed by active expiry, for callgrind:
//!
//! ```text
//! cargo build --release -p basalt-engine --example expire_cost
//! valgrind --tool=callgrind --toggle-collect='*expire_shard*' \
//!     target/release/examples/expire_cost 200000
//! ```
//!
//! Fills one database with N keys (16-byte names, 32-byte values) due at the same
//! instant, as `bench/expiry-lag.sh` does, then reclaims them all through
//! [`Keyspace::expire_shard`] in calls of 64 keys. Divide the collected instructions by N.

use basalt_engine::{Keyspace, KeyspaceConfig, StrValue, Value};

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let ks = Keyspace::new(&KeyspaceConfig {
        shards: 16,
        databases: 16,
        hash_seed: 7,
        rng_seed: 9,
    });
    let t0 = 1_000_000u64;
    for i in 0..n {
        let k = format!("vol:{i:012}");
        ks.lock_key(k.as_bytes(), t0).insert(
            0,
            k.as_bytes(),
            Value::Str(StrValue::from_bytes(&[b'x'; 32])),
            t0 + 10,
        );
    }
    let mut reclaimed = 0;
    loop {
        let mut any = false;
        for i in 0..ks.shard_count() {
            let (got, more) = ks.expire_shard(i, t0 + 20, 64);
            reclaimed += got;
            any |= more || got > 0;
        }
        if !any {
            break;
        }
    }
    assert_eq!(reclaimed as u64, n);
    println!("reclaimed {reclaimed}");
}
