//! Consumer groups: the last delivered ID, the pending entries list (PEL) and the
//! consumers, each with its own PEL.
//!
//! Invariant (checked by the property test): every ID in the group PEL is in exactly
//! one consumer's PEL, the consumer its [`Nack`] names, and every ID in a consumer's PEL
//! is in the group PEL.

use super::StreamId;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// A delivered, not yet acknowledged entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nack {
    /// The consumer it was delivered to.
    pub consumer: Arc<[u8]>,
    /// Unix ms of the last delivery.
    pub delivery_time: u64,
    /// Times delivered.
    pub delivery_count: u64,
}

/// A consumer of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    /// Unix ms the consumer was last seen (read or claimed).
    pub seen_time: u64,
    /// IDs pending for this consumer.
    pub pel: BTreeSet<StreamId>,
}

/// Consumers by name, each with the shared name its PEL entries point to.
type Consumers = BTreeMap<Box<[u8]>, (Arc<[u8]>, Consumer)>;

/// A consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The last ID delivered to the group.
    pub last_id: StreamId,
    /// Entries read by the group (`entries-read`), -1 when unknown.
    pub entries_read: i64,
    pel: BTreeMap<StreamId, Nack>,
    consumers: Consumers,
}

/// XCLAIM's options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClaimOptions {
    /// Only claim entries idle for at least this many ms.
    pub min_idle: i64,
    /// New delivery time (from IDLE or TIME); clamped to `now` when bogus.
    pub delivery_time: Option<i64>,
    /// Set the delivery count to this.
    pub retry_count: Option<u64>,
    /// Create PEL entries for IDs that are not pending.
    pub force: bool,
    /// Reply with IDs only and leave delivery counts alone.
    pub justid: bool,
    /// Move the group's last ID forward to this.
    pub last_id: Option<StreamId>,
}

impl Group {
    /// A group that delivered up to `last_id`.
    pub fn new(last_id: StreamId, entries_read: i64) -> Group {
        Group {
            last_id,
            entries_read,
            pel: BTreeMap::new(),
            consumers: BTreeMap::new(),
        }
    }

    /// The group PEL.
    pub fn pel(&self) -> &BTreeMap<StreamId, Nack> {
        &self.pel
    }

    /// Consumers by name.
    pub fn consumers(&self) -> impl Iterator<Item = (&[u8], &Consumer)> {
        self.consumers.iter().map(|(k, (_, c))| (&**k, c))
    }

    /// Number of consumers.
    pub fn consumer_count(&self) -> usize {
        self.consumers.len()
    }

    /// A consumer by name.
    pub fn consumer(&self, name: &[u8]) -> Option<&Consumer> {
        self.consumers.get(name).map(|(_, c)| c)
    }

    /// Approximate heap bytes.
    pub fn heap_size(&self) -> usize {
        self.pel.len() * 64 + self.consumers.len() * 96
    }

    /// Creates a consumer; false if it exists.
    pub fn create_consumer(&mut self, name: &[u8], now: u64) -> bool {
        if self.consumers.contains_key(name) {
            return false;
        }
        self.consumers.insert(
            name.into(),
            (
                Arc::from(name),
                Consumer {
                    seen_time: now,
                    pel: BTreeSet::new(),
                },
            ),
        );
        true
    }

    /// Adds a restored consumer (snapshot loading); its PEL IDs must be in the group PEL.
    pub fn insert_consumer(&mut self, name: &[u8], seen_time: u64) {
        self.create_consumer(name, seen_time);
    }

    /// Adds a restored pending entry owned by `consumer` (created if missing).
    pub fn insert_pending(&mut self, id: StreamId, consumer: &[u8], time: u64, count: u64) {
        self.create_consumer(consumer, time);
        self.drop_pending(id);
        let (arc, c) = self.consumers.get_mut(consumer).expect("just created");
        c.pel.insert(id);
        self.pel.insert(
            id,
            Nack {
                consumer: arc.clone(),
                delivery_time: time,
                delivery_count: count,
            },
        );
    }

    /// Looks a consumer up, creating it or refreshing its seen time.
    pub fn touch_consumer(&mut self, name: &[u8], now: u64) {
        match self.consumers.get_mut(name) {
            Some((_, c)) => c.seen_time = now,
            None => {
                self.create_consumer(name, now);
            }
        }
    }

    /// Deletes a consumer and its pending entries; returns how many it had, or `None`
    /// if there is no such consumer.
    pub fn delete_consumer(&mut self, name: &[u8]) -> Option<usize> {
        let (_, c) = self.consumers.remove(name)?;
        for id in &c.pel {
            self.pel.remove(id);
        }
        Some(c.pel.len())
    }

    /// Records a delivery of `id` to `consumer` (which must exist): a new PEL entry, or
    /// an existing one moved to this consumer with its count reset to 1.
    pub fn deliver(&mut self, id: StreamId, consumer: &[u8], now: u64) {
        self.drop_pending(id);
        if let Some((arc, c)) = self.consumers.get_mut(consumer) {
            c.pel.insert(id);
            self.pel.insert(
                id,
                Nack {
                    consumer: arc.clone(),
                    delivery_time: now,
                    delivery_count: 1,
                },
            );
        }
    }

    /// A history re-read of a pending entry: new delivery time, one more delivery.
    pub fn redeliver(&mut self, id: StreamId, now: u64) {
        if let Some(n) = self.pel.get_mut(&id) {
            n.delivery_time = now;
            n.delivery_count += 1;
        }
    }

    /// Up to `count` (0: all) IDs pending for `consumer` from `start` on.
    pub fn consumer_pending(
        &self,
        consumer: &[u8],
        start: StreamId,
        count: usize,
    ) -> Vec<StreamId> {
        let Some((_, c)) = self.consumers.get(consumer) else {
            return Vec::new();
        };
        let it = c.pel.range(start..).copied();
        if count == 0 {
            it.collect()
        } else {
            it.take(count).collect()
        }
    }

    /// Acknowledges `id`; false if it was not pending.
    pub fn ack(&mut self, id: StreamId) -> bool {
        self.drop_pending(id)
    }

    /// Removes `id` from the group PEL and its consumer's PEL.
    pub fn drop_pending(&mut self, id: StreamId) -> bool {
        let Some(n) = self.pel.remove(&id) else {
            return false;
        };
        if let Some((_, c)) = self.consumers.get_mut(&*n.consumer) {
            c.pel.remove(&id);
        }
        true
    }

    /// True if `id` is pending and was last delivered at least `min_idle` ms before
    /// `now` (always true for `min_idle` 0).
    pub fn idle_enough(&self, id: StreamId, min_idle: i64, now: u64) -> bool {
        match self.pel.get(&id) {
            Some(n) => {
                min_idle <= 0 || (now as i64).wrapping_sub(n.delivery_time as i64) >= min_idle
            }
            None => false,
        }
    }

    /// XCLAIM/XAUTOCLAIM of one entry for `consumer` (which must exist); creates the PEL
    /// entry if missing (FORCE).
    pub fn claim_one(
        &mut self,
        id: StreamId,
        consumer: &[u8],
        time: u64,
        retry_count: Option<u64>,
        justid: bool,
    ) {
        let Some(arc) = self.consumers.get(consumer).map(|(a, _)| a.clone()) else {
            return;
        };
        let nack = self.pel.entry(id).or_insert_with(|| Nack {
            consumer: arc.clone(),
            delivery_time: time,
            delivery_count: 1,
        });
        if *nack.consumer != *consumer {
            if let Some((_, old)) = self.consumers.get_mut(&*nack.consumer) {
                old.pel.remove(&id);
            }
            nack.consumer = arc;
        }
        nack.delivery_time = time;
        match retry_count {
            Some(n) => nack.delivery_count = n,
            None if !justid => nack.delivery_count += 1,
            None => {}
        }
        if let Some((_, c)) = self.consumers.get_mut(consumer) {
            c.pel.insert(id);
        }
    }

    /// Checks the PEL invariant (tests and debug assertions).
    pub fn check(&self) -> Result<(), String> {
        let mut seen = 0;
        for (name, (arc, c)) in &self.consumers {
            if **name != **arc {
                return Err("consumer name mismatch".into());
            }
            for id in &c.pel {
                match self.pel.get(id) {
                    Some(n) if *n.consumer == **name => seen += 1,
                    _ => return Err(format!("{id} in consumer PEL but not owned")),
                }
            }
        }
        if seen != self.pel.len() {
            return Err("group PEL entry without consumer".into());
        }
        Ok(())
    }
}
