//! Streams in RDB: `RDB_TYPE_STREAM_LISTPACKS_2` (written and read, Redis 7.0) and
//! `RDB_TYPE_STREAM_LISTPACKS` (read, Redis 5.0 to 6.2).
//!
//! ```text
//! nodes (len) | nodes × (master ID: 16-byte string, big endian ms and seq | listpack string)
//! length | last ID (ms, seq) | first ID | max deleted ID | entries added      (lens; _2 only
//!                                                                            from first ID on)
//! groups (len) | groups × (name | last ID (ms, seq) | entries read (_2 only)
//!                 | PEL: n × (raw 16-byte ID | delivery time (8 bytes LE) | delivery count)
//!                 | consumers: n × (name | seen time (8 bytes LE)
//!                                   | PEL: n × raw 16-byte ID))
//! ```
//!
//! Each node's listpack is the one Redis keeps in its radix tree:
//!
//! ```text
//! master entry: live | deleted | n fields | field × n | 0
//! each entry:   flags | ms - master ms | seq - master seq
//!               | SAMEFIELDS ? value × n : (m | (field | value) × m) | element count
//! ```
//!
//! Basalt's stream nodes split at the same entries as Redis's (see the engine's
//! `stream::node`), so the listpacks written here are byte for byte Redis's, and a
//! stream loaded from Redis keeps Redis's nodes (deleted entries included).

use super::RdbError;
use super::decode::Reader;
use super::encode::{Encoder, write_len};
use crate::packed::{Elem, ListpackWriter, listpack_entries};
use basalt_engine::types::stream::{
    FLAG_DELETED, FLAG_SAMEFIELDS, Group, Node, StreamId, StreamValue,
};
use std::collections::BTreeMap;
use std::io::Read;

type Result<T> = std::result::Result<T, RdbError>;

/// The 16-byte big-endian form of an ID (Redis's `streamEncodeID`), as radix tree keys
/// and PEL entries are stored.
pub fn raw_id(id: StreamId) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&id.ms.to_be_bytes());
    b[8..].copy_from_slice(&id.seq.to_be_bytes());
    b
}

fn id_from_raw(b: &[u8]) -> StreamId {
    let mut ms = [0u8; 8];
    let mut seq = [0u8; 8];
    ms.copy_from_slice(&b[..8]);
    seq.copy_from_slice(&b[8..16]);
    StreamId::new(u64::from_be_bytes(ms), u64::from_be_bytes(seq))
}

/// The listpack Redis keeps for `node` (whose master ID is `master`).
pub fn node_listpack(master: StreamId, node: &Node) -> Vec<u8> {
    let mut lp = ListpackWriter::new();
    lp.push_int(node.live() as i64);
    lp.push_int(node.deleted() as i64);
    lp.push_int(node.master_field_count() as i64);
    for f in node.master_fields() {
        lp.push(f);
    }
    lp.push_int(0);
    for e in node.raw_entries(master) {
        lp.push_int(i64::from(e.flags));
        lp.push_int(e.id.ms.wrapping_sub(master.ms) as i64);
        lp.push_int(e.id.seq.wrapping_sub(master.seq) as i64);
        let same = e.flags & FLAG_SAMEFIELDS != 0;
        let n = node.fields(&e).count() as i64;
        if !same {
            lp.push_int(n);
        }
        for (f, v) in node.fields(&e) {
            if !same {
                lp.push(f);
            }
            lp.push(v);
        }
        lp.push_int(if same { n + 3 } else { 2 * n + 4 });
    }
    lp.finish()
}

fn write_id(out: &mut Vec<u8>, id: StreamId) {
    write_len(out, id.ms);
    write_len(out, id.seq);
}

/// Appends the body of a stream as `RDB_TYPE_STREAM_LISTPACKS_2`.
pub fn write(enc: &mut Encoder, out: &mut Vec<u8>, s: &StreamValue) {
    write_len(out, s.node_count());
    for (master, node) in s.nodes() {
        enc.string(out, &raw_id(master));
        let lp = node_listpack(master, node);
        enc.string(out, &lp);
    }
    write_len(out, s.len());
    write_id(out, s.last_id());
    write_id(out, s.first_id());
    write_id(out, s.max_deleted_id());
    write_len(out, s.entries_added());
    write_len(out, s.group_count() as u64);
    for (name, g) in s.groups() {
        enc.string(out, name);
        write_id(out, g.last_id);
        // -1 ("unknown") is saved as its two's complement, as Redis casts it.
        write_len(out, g.entries_read as u64);
        write_len(out, g.pel().len() as u64);
        for (id, nack) in g.pel() {
            out.extend_from_slice(&raw_id(*id));
            out.extend_from_slice(&nack.delivery_time.to_le_bytes());
            write_len(out, nack.delivery_count);
        }
        write_len(out, g.consumer_count() as u64);
        for (cname, c) in g.consumers() {
            enc.string(out, cname);
            out.extend_from_slice(&c.seen_time.to_le_bytes());
            write_len(out, c.pel.len() as u64);
            for id in &c.pel {
                out.extend_from_slice(&raw_id(*id));
            }
        }
    }
}

/// Reads the elements of one node's listpack into a node; returns it with its last
/// entry's ID.
fn read_node<R: Read>(r: &Reader<R>, master: StreamId, blob: &[u8]) -> Result<(Node, StreamId)> {
    let bad = |what: &str| r.corrupt(format!("Stream listpack integrity check failed: {what}"));
    let elems = listpack_entries(blob).map_err(|e| r.corrupt(e.0))?;
    if elems.is_empty() {
        return Err(r.corrupt("Empty listpack inside stream"));
    }
    let mut it = elems.iter();
    let next_int = |it: &mut std::slice::Iter<'_, Elem<'_>>, what: &str| -> Result<i64> {
        match it.next() {
            Some(Elem::Int(i)) => Ok(*i),
            Some(Elem::Str(s)) => basalt_engine::num::parse_i64(s).ok_or_else(|| bad(what)),
            None => Err(bad(what)),
        }
    };
    let live = next_int(&mut it, "master entry count")?;
    let deleted = next_int(&mut it, "master entry deleted count")?;
    let nfields = next_int(&mut it, "master field count")?;
    if live < 0 || deleted < 0 || nfields < 0 || nfields as usize > it.len() {
        return Err(bad("bad master entry"));
    }
    let mut master_fields = Vec::with_capacity(nfields as usize);
    for _ in 0..nfields {
        master_fields.push(it.next().ok_or_else(|| bad("master fields"))?.to_vec());
    }
    if next_int(&mut it, "master terminator")? != 0 {
        return Err(bad("master entry not terminated by 0"));
    }
    let mut node = Node::new(master_fields.iter().map(Vec::as_slice));
    let (mut seen_live, mut seen_deleted) = (0i64, 0i64);
    let mut prev: Option<StreamId> = None;
    while it.len() > 0 {
        let flags = next_int(&mut it, "entry flags")?;
        if !(0..=3).contains(&flags) {
            return Err(bad("unknown entry flags"));
        }
        let ms = master
            .ms
            .wrapping_add(next_int(&mut it, "entry ms delta")? as u64);
        let seq = master
            .seq
            .wrapping_add(next_int(&mut it, "entry seq delta")? as u64);
        let id = StreamId::new(ms, seq);
        if id < master || prev.is_some_and(|p| id <= p) {
            return Err(bad("entry IDs out of order"));
        }
        prev = Some(id);
        let same = flags as u8 & FLAG_SAMEFIELDS != 0;
        let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        if same {
            for f in &master_fields {
                let v = it.next().ok_or_else(|| bad("entry values"))?.to_vec();
                pairs.push((f.clone(), v));
            }
        } else {
            let n = next_int(&mut it, "entry field count")?;
            if n < 0 || n as usize > it.len() {
                return Err(bad("bad entry field count"));
            }
            for _ in 0..n {
                let f = it.next().ok_or_else(|| bad("entry fields"))?.to_vec();
                let v = it.next().ok_or_else(|| bad("entry values"))?.to_vec();
                pairs.push((f, v));
            }
        }
        let n = pairs.len() as i64;
        let want = if same { n + 3 } else { 2 * n + 4 };
        if next_int(&mut it, "entry element count")? != want {
            return Err(bad("bad entry element count"));
        }
        let refs: Vec<(&[u8], &[u8])> = pairs
            .iter()
            .map(|(f, v)| (f.as_slice(), v.as_slice()))
            .collect();
        let at = node.push(master, id, &refs);
        if flags as u8 & FLAG_DELETED != 0 {
            node.mark_deleted(at);
            seen_deleted += 1;
        } else {
            seen_live += 1;
        }
    }
    if seen_live != live || seen_deleted != deleted {
        return Err(bad("entry counts do not match the master entry"));
    }
    let Some(last) = prev else {
        return Err(bad("node without entries"));
    };
    Ok((node, last))
}

fn read_id<R: Read>(r: &mut Reader<R>) -> Result<StreamId> {
    let ms = r.length()?;
    let seq = r.length()?;
    Ok(StreamId::new(ms, seq))
}

fn read_raw_id<R: Read>(r: &mut Reader<R>) -> Result<StreamId> {
    let mut b = [0u8; 16];
    r.read_into(&mut b)?;
    Ok(id_from_raw(&b))
}

/// Reads a stream body of type `STREAM_LISTPACKS` (`v2` false) or
/// `STREAM_LISTPACKS_2`.
pub fn read<R: Read>(r: &mut Reader<R>, v2: bool) -> Result<StreamValue> {
    let mut s = StreamValue::new();
    let nodes = r.length()?;
    let mut prev_last: Option<StreamId> = None;
    for _ in 0..nodes {
        let key = r.string()?;
        if key.len() != 16 {
            return Err(r.corrupt("Stream node key entry is not the size of a stream ID"));
        }
        let master = id_from_raw(&key);
        let blob = r.string()?;
        let (node, last) = read_node(r, master, &blob)?;
        if prev_last.is_some_and(|p| master <= p) {
            return Err(r.corrupt("Stream nodes out of order or overlapping"));
        }
        prev_last = Some(last);
        if !s.restore_node(master, node) {
            return Err(r.corrupt("Listpack re-added with existing key"));
        }
    }
    let length = r.length()?;
    let last_id = read_id(r)?;
    if length != s.len() {
        return Err(r.corrupt(format!(
            "Stream length {length} inconsistent with its {} live entries",
            s.len()
        )));
    }
    if prev_last.is_some_and(|p| p > last_id) {
        return Err(r.corrupt("Stream last ID below its entries"));
    }
    if v2 {
        let first_id = read_id(r)?;
        let max_deleted = read_id(r)?;
        let entries_added = r.length()?;
        s.set_meta(last_id, Some(entries_added), Some(max_deleted));
        s.set_first_id(first_id);
    } else {
        // Redis 7.0 fills the counters older files lack as it does on load.
        let first = s.first_entry().map_or(StreamId::MAX, |e| e.id);
        s.set_meta(last_id, Some(length), Some(StreamId::MIN));
        s.set_first_id(first);
    }
    let groups = r.length()?;
    for _ in 0..groups {
        let name = r.string()?;
        let last = read_id(r)?;
        let entries_read = if v2 {
            r.length()? as i64
        } else {
            s.estimate_distance(last).map_or(-1, |v| v as i64)
        };
        if s.group(&name).is_some() {
            return Err(r.corrupt(format!(
                "Duplicated consumer group name {}",
                String::from_utf8_lossy(&name)
            )));
        }
        let mut g = Group::new(last, entries_read);
        // The global PEL, resolved to consumers as their PELs are read.
        let pel_len = r.length()?;
        let mut pel: BTreeMap<StreamId, (u64, u64, bool)> = BTreeMap::new();
        for _ in 0..pel_len {
            let id = read_raw_id(r)?;
            let time = r.u64_le()?;
            let count = r.length()?;
            if pel.insert(id, (time, count, false)).is_some() {
                return Err(r.corrupt("Duplicated global PEL entry loading stream consumer group"));
            }
        }
        let consumers = r.length()?;
        for _ in 0..consumers {
            let cname = r.string()?;
            let seen = r.u64_le()?;
            if g.consumer(&cname).is_some() {
                return Err(r.corrupt("Duplicate stream consumer detected."));
            }
            g.insert_consumer(&cname, seen);
            let n = r.length()?;
            for _ in 0..n {
                let id = read_raw_id(r)?;
                let Some(entry) = pel.get_mut(&id) else {
                    return Err(r.corrupt("Consumer entry not found in group global PEL"));
                };
                if entry.2 {
                    return Err(r.corrupt(
                        "Duplicated consumer PEL entry  loading a stream consumer group",
                    ));
                }
                entry.2 = true;
                g.insert_pending(id, &cname, entry.0, entry.1);
            }
        }
        if pel.values().any(|e| !e.2) {
            return Err(r.corrupt("Stream CG PEL entry without consumer"));
        }
        s.insert_group(&name, g);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::encode::EncodeOptions;
    use basalt_engine::EncodingLimits;
    use basalt_engine::types::stream::{ClaimOptions, IdRequest};

    fn sample() -> StreamValue {
        let lim = EncodingLimits {
            stream_node_max_entries: 3,
            ..EncodingLimits::default()
        };
        let mut s = StreamValue::new();
        for i in 1..=10u64 {
            let v = i.to_string();
            let fields: Vec<(&[u8], &[u8])> = if i % 4 == 0 {
                vec![(b"other", v.as_bytes())]
            } else {
                vec![(b"f", v.as_bytes()), (b"g", b"text")]
            };
            s.add(IdRequest::Exact(StreamId::new(i, i)), &fields, 0, &lim)
                .unwrap();
        }
        assert!(s.delete(StreamId::new(5, 5)));
        s.after_delete(false);
        s.create_group(b"g1", StreamId::MIN, 0);
        s.create_group(b"g0", StreamId::new(3, 3), -1);
        s.read_group_new(b"g1", b"alice", 2, false, 1000, |_| {});
        s.read_group_new(b"g1", b"bob", 3, false, 2000, |_| {});
        s.claim(
            b"g1",
            b"carol",
            &[StreamId::new(2, 2)],
            &ClaimOptions::default(),
            3000,
            |_, _| {},
        );
        s
    }

    #[test]
    fn streams_round_trip_with_groups_and_tombstones() {
        let s = sample();
        let mut enc = Encoder::new(EncodeOptions::default());
        let mut out = Vec::new();
        write(&mut enc, &mut out, &s);
        let mut r = Reader::from_slice(&out);
        let back = read(&mut r, true).unwrap();
        assert_eq!(r.remaining(), 0);
        assert_eq!(back, s);
        back.check_groups().unwrap();
        // Writing the loaded stream gives the same bytes.
        let mut again = Vec::new();
        write(&mut enc, &mut again, &back);
        assert_eq!(again, out);
    }

    #[test]
    fn truncated_streams_are_errors() {
        let s = sample();
        let mut enc = Encoder::new(EncodeOptions::default());
        let mut out = Vec::new();
        write(&mut enc, &mut out, &s);
        for cut in 0..out.len() {
            let mut r = Reader::from_slice(&out[..cut]);
            assert!(read(&mut r, true).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn raw_ids_are_big_endian() {
        assert_eq!(
            raw_id(StreamId::new(1, 2)),
            [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2]
        );
    }
}
