//! The node slab's chunks follow the keyspace's keys: a flush (in place, or on the
//! lazy-free thread) returns them, keeping at most one empty chunk per stripe, which a
//! purge returns too. A test binary of its own: the slab is process-wide, and the
//! engine's unit tests use it concurrently.

use basalt_engine::slab::{self, CHUNK_BYTES, NODES, STRIPES};
use basalt_engine::{Keyspace, KeyspaceConfig, StrValue, Value};

const KEYS: usize = 50_000;

fn load(ks: &Keyspace) {
    for i in 0..KEYS {
        let k = format!("key:{i:012}");
        // A 16-byte key, a 32-byte value and a deadline: a 72-byte slab node.
        ks.lock_key(k.as_bytes(), 1_000).insert(
            0,
            k.as_bytes(),
            Value::Str(StrValue::from_bytes(&[b'v'; 32])),
            1_000_000,
        );
    }
    let chunks = NODES.chunks();
    assert!(chunks >= KEYS * 72 / CHUNK_BYTES, "{chunks} chunks");
    // Every chunk byte is a live node, spare (carved, or a header) or never used.
    assert_eq!(
        slab::spare_bytes() + NODES.tail_bytes() + KEYS * 72,
        chunks * CHUNK_BYTES
    );
}

#[test]
fn flushes_return_the_chunks() {
    let ks = Keyspace::new(&KeyspaceConfig {
        shards: 16,
        databases: 1,
        hash_seed: 7,
        rng_seed: 9,
    });
    ks.lazyfree().start().expect("lazy-free thread");
    assert_eq!(NODES.chunks(), 0);
    for lazy in [false, true] {
        load(&ks);
        ks.lock_all(1_000).flush_db_with(0, lazy);
        // The lazy-free thread frees the table on its own time: wait for it (bounded).
        for _ in 0..1_000 {
            if ks.lazyfree().pending_objects() == 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(
            ks.lazyfree().pending_objects(),
            0,
            "lazy free never finished"
        );
        let kept = NODES.chunks();
        assert!(kept <= STRIPES, "{kept} chunks kept");
        assert_eq!(slab::spare_bytes() + NODES.tail_bytes(), kept * CHUNK_BYTES);
        assert_eq!(slab::purge(), kept * CHUNK_BYTES);
        assert_eq!(
            (NODES.chunks(), slab::spare_bytes(), NODES.tail_bytes()),
            (0, 0, 0)
        );
    }
}
