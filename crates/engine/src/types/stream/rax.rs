//! How many nodes Redis's radix tree would have for a stream's node keys, for
//! `XINFO STREAM`'s `radix-tree-nodes`.
//!
//! Redis keys each listpack node by its master ID written as 16 big-endian bytes in a
//! compressed radix tree (rax). Basalt keeps its nodes in a `BTreeMap` instead, and
//! computes the count the canonical compressed trie of the same keys has: the root, one
//! node per branching point, one per child of a branching point, and one per key end.
//! A chain of single-child steps is one compressed node, as rax stores it.

use super::StreamId;

fn key(id: StreamId) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&id.ms.to_be_bytes());
    k[8..].copy_from_slice(&id.seq.to_be_bytes());
    k
}

/// Rax node count for the sorted keys `ids`.
pub fn node_count(ids: &[StreamId]) -> u64 {
    if ids.is_empty() {
        return 1;
    }
    let keys: Vec<[u8; 16]> = ids.iter().map(|&i| key(i)).collect();
    count(&keys, 0)
}

fn lcp(a: &[u8; 16], b: &[u8; 16]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Nodes of the subtree whose rax node starts at `depth` over `keys` (sorted, sharing
/// their first `depth` bytes).
fn count(keys: &[[u8; 16]], depth: usize) -> u64 {
    if depth == 16 {
        return 1;
    }
    let e = lcp(&keys[0], &keys[keys.len() - 1]).max(depth);
    if e > depth {
        // A compressed node down to the next branching point (or the key's end).
        return 1 + count(keys, e);
    }
    // A branching node: one child per distinct byte.
    let mut total = 1;
    let mut start = 0;
    while start < keys.len() {
        let b = keys[start][depth];
        let mut end = start + 1;
        while end < keys.len() && keys[end][depth] == b {
            end += 1;
        }
        total += count(&keys[start..end], depth + 1);
        start = end;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_trees() {
        assert_eq!(node_count(&[]), 1);
        assert_eq!(node_count(&[StreamId { ms: 1, seq: 1 }]), 2);
        // Two keys differing in the last byte: root compressed to byte 15, a branching
        // node, two leaves.
        let ids = [StreamId { ms: 1, seq: 1 }, StreamId { ms: 1, seq: 2 }];
        assert_eq!(node_count(&ids), 4);
    }
}
