//! Pub/Sub: the channel registry ([`Hub`]), each client's outbox ([`Outbox`]), message
//! fan-out, client output buffer limits, and keyspace notifications.
//!
//! Delivery never waits on a subscriber. A publisher encodes a message once per protocol
//! version (RESP2 array, RESP3 push), then for every subscriber appends the shared
//! `Bytes` to that subscriber's outbox under a short lock and, when the outbox was empty,
//! wakes the subscriber's connection task, which copies what is queued into its write
//! buffer and writes it. A subscriber that does not read lets its outbox grow until the
//! `client-output-buffer-limit` of its class is crossed (hard limit at once, soft limit
//! for longer than its seconds); the publisher then drops the queue, stops queueing for
//! it and kills the connection. Memory per subscriber is therefore bounded by its limit
//! plus one message, and a slow subscriber costs a publisher nothing but the check.
//!
//! Ordering: one outbox per connection, appended in publish order, and the connection
//! writes it in order, so each subscriber sees messages in the order they were published
//! (messages from one publisher, and all messages of one channel). Subscription
//! confirmations go through the same outbox, under the registry's write lock, so a
//! message can never overtake the confirmation of the subscription that delivers it.
//!
//! Lock order: keyspace shard locks may be held while publishing (keyspace
//! notifications); the registry never takes a shard lock.

use crate::client::ClientShared;
use basalt_engine::glob::glob_match;
use basalt_engine::{KeyEvent, KeyEvents};
use basalt_proto::{Frame, Protocol, encode, encode_push};
use bytes::{Bytes, BytesMut};
use indexmap::{IndexMap, IndexSet};
use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Which namespace a subscription lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// SUBSCRIBE / PUBLISH.
    Channel,
    /// PSUBSCRIBE (glob patterns matched against PUBLISH channels).
    Pattern,
    /// SSUBSCRIBE / SPUBLISH (shard channels).
    Shard,
}

impl Kind {
    fn subscribe_word(self) -> &'static [u8] {
        match self {
            Kind::Channel => b"subscribe",
            Kind::Pattern => b"psubscribe",
            Kind::Shard => b"ssubscribe",
        }
    }

    fn unsubscribe_word(self) -> &'static [u8] {
        match self {
            Kind::Channel => b"unsubscribe",
            Kind::Pattern => b"punsubscribe",
            Kind::Shard => b"sunsubscribe",
        }
    }
}

/// A client's own subscriptions, kept by its connection (the registry holds the reverse
/// mapping).
#[derive(Debug, Default)]
pub struct Subscriptions {
    /// SUBSCRIBE channels.
    pub channels: IndexSet<Bytes>,
    /// PSUBSCRIBE patterns.
    pub patterns: IndexSet<Bytes>,
    /// SSUBSCRIBE shard channels.
    pub shard: IndexSet<Bytes>,
}

impl Subscriptions {
    fn set(&mut self, kind: Kind) -> &mut IndexSet<Bytes> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard,
        }
    }

    /// The count a (un)subscribe confirmation carries: channels + patterns for the
    /// classic kinds, shard channels for the shard kind (as Redis 7.0 counts).
    pub fn count(&self, kind: Kind) -> usize {
        match kind {
            Kind::Shard => self.shard.len(),
            _ => self.channels.len() + self.patterns.len(),
        }
    }

    /// True while subscribed to anything: the client is then a `pubsub` client (RESP2
    /// subscribed mode, `flags=P`, the pubsub output buffer class).
    pub fn active(&self) -> bool {
        !(self.channels.is_empty() && self.patterns.is_empty() && self.shard.is_empty())
    }
}

/// Output buffer classes of `client-output-buffer-limit`, in Redis's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObufClass {
    /// Ordinary clients.
    Normal = 0,
    /// Replicas (`slave`/`replica`).
    Replica = 1,
    /// Clients subscribed to a channel, pattern or shard channel.
    Pubsub = 2,
}

/// One class's `client-output-buffer-limit <class> <hard> <soft> <seconds>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObufLimit {
    /// Close at once when the pending output reaches this many bytes (0: no limit).
    pub hard: u64,
    /// Close when the pending output stays at or above this many bytes ...
    pub soft: u64,
    /// ... for longer than this many seconds (0 with a soft limit: at the next check
    /// a second later, as in Redis).
    pub seconds: i64,
}

/// Redis's defaults: normal unlimited, replica 256mb/64mb/60, pubsub 32mb/8mb/60.
pub const DEFAULT_OBUF_LIMITS: [ObufLimit; 3] = [
    ObufLimit {
        hard: 0,
        soft: 0,
        seconds: 0,
    },
    ObufLimit {
        hard: 256 << 20,
        soft: 64 << 20,
        seconds: 60,
    },
    ObufLimit {
        hard: 32 << 20,
        soft: 8 << 20,
        seconds: 60,
    },
];

#[derive(Default)]
struct LiveLimit {
    hard: AtomicU64,
    soft: AtomicU64,
    seconds: AtomicU64,
}

/// Messages waiting for a client's connection task, and the accounting behind its
/// output buffer limit.
#[derive(Default)]
pub struct Outbox {
    queue: Mutex<VecDeque<Bytes>>,
    /// Bytes in `queue`.
    queued: AtomicUsize,
    /// Bytes in the connection's write buffer not yet accepted by the socket.
    writing: AtomicUsize,
    /// Wakes the connection task when the queue becomes non-empty, when the client is
    /// killed and when the server shuts down.
    pub attention: crate::attention::Attention,
    /// Unix seconds when the soft limit was first seen exceeded (0: not exceeded).
    soft_since: AtomicU64,
    /// Set once the client overcame its output buffer limit: nothing more is queued.
    overflowed: AtomicBool,
}

impl Outbox {
    /// Pending output: queued messages plus unwritten bytes of the write buffer
    /// (`omem` in CLIENT LIST).
    pub fn pending(&self) -> usize {
        self.queued.load(Ordering::Relaxed) + self.writing.load(Ordering::Relaxed)
    }

    /// Bytes of queued messages.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Number of queued messages (`oll` in CLIENT LIST).
    pub fn queued_messages(&self) -> usize {
        self.queue.lock().len()
    }

    /// True when something is queued (one relaxed load).
    pub fn has_queued(&self) -> bool {
        self.queued.load(Ordering::Relaxed) != 0
    }

    /// True once the client was cut off for overcoming its output buffer limit.
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Acquire)
    }

    /// The connection reports how much of its write buffer is still unwritten.
    pub fn set_writing(&self, bytes: usize) {
        self.writing.store(bytes, Ordering::Relaxed);
    }

    /// Appends everything queued to `out` (or drops it when `discard`: CLIENT REPLY OFF)
    /// and records `out`'s new size as being written.
    pub fn drain_into(&self, out: &mut BytesMut, discard: bool) {
        let mut q = self.queue.lock();
        if !discard {
            let total: usize = q.iter().map(Bytes::len).sum();
            out.reserve(total);
            for m in q.iter() {
                out.extend_from_slice(m);
            }
        }
        q.clear();
        self.queued.store(0, Ordering::Relaxed);
        self.writing.store(out.len(), Ordering::Relaxed);
    }

    /// Like [`Outbox::drain_into`] for the first `n` queued messages only.
    pub fn drain_some_into(&self, out: &mut BytesMut, n: usize, discard: bool) {
        let mut q = self.queue.lock();
        let n = n.min(q.len());
        let mut bytes = 0;
        for m in q.drain(..n) {
            bytes += m.len();
            if !discard {
                out.extend_from_slice(&m);
            }
        }
        self.queued.fetch_sub(bytes, Ordering::Relaxed);
        self.writing.store(out.len(), Ordering::Relaxed);
    }

    /// Queues bytes the client's own command produced (subscription confirmations).
    fn push_own(&self, bytes: Bytes) {
        let mut q = self.queue.lock();
        self.queued.fetch_add(bytes.len(), Ordering::Relaxed);
        q.push_back(bytes);
    }

    /// Queues a published message; returns true if the client must now be closed for
    /// overcoming `limit` (the queue was dropped and nothing more will be queued).
    fn push_message(&self, bytes: &Bytes, limit: ObufLimit) -> bool {
        if self.overflowed.load(Ordering::Relaxed) {
            return false;
        }
        let was_empty;
        {
            let mut q = self.queue.lock();
            was_empty = q.is_empty();
            let queued = self.queued.fetch_add(bytes.len(), Ordering::Relaxed) + bytes.len();
            q.push_back(bytes.clone());
            let used = (queued + self.writing.load(Ordering::Relaxed)) as u64;
            if self.limit_reached(used, limit) {
                self.overflowed.store(true, Ordering::Release);
                q.clear();
                self.queued.store(0, Ordering::Relaxed);
                return true;
            }
        }
        if was_empty {
            self.attention.signal();
        }
        false
    }

    /// Redis's checkClientOutputBufferLimits: the hard limit at once; the soft limit
    /// once it has been exceeded continuously for more than `seconds`.
    pub fn limit_reached(&self, used: u64, limit: ObufLimit) -> bool {
        let hard = limit.hard != 0 && used >= limit.hard;
        let mut soft = limit.soft != 0 && used >= limit.soft;
        if soft {
            let now = crate::server::unix_ms() / 1000;
            let since = self.soft_since.load(Ordering::Relaxed);
            if since == 0 {
                self.soft_since.store(now.max(1), Ordering::Relaxed);
                soft = false;
            } else if now.saturating_sub(since) as i64 <= limit.seconds {
                soft = false;
            }
        } else {
            self.soft_since.store(0, Ordering::Relaxed);
        }
        hard || soft
    }

    /// Marks the client as cut off (the connection checks its own replies this way).
    pub fn set_overflowed(&self) {
        self.overflowed.store(true, Ordering::Release);
        let mut q = self.queue.lock();
        q.clear();
        self.queued.store(0, Ordering::Relaxed);
    }
}

type Subscribers = IndexMap<u64, Arc<ClientShared>>;

#[derive(Default)]
struct Registry {
    channels: HashMap<Bytes, Subscribers>,
    patterns: IndexMap<Bytes, Subscribers>,
    shard: HashMap<Bytes, Subscribers>,
}

impl Registry {
    fn add(&mut self, kind: Kind, name: &Bytes, client: &Arc<ClientShared>) {
        let map = match kind {
            Kind::Channel => self.channels.entry(name.clone()).or_default(),
            Kind::Pattern => self.patterns.entry(name.clone()).or_default(),
            Kind::Shard => self.shard.entry(name.clone()).or_default(),
        };
        map.insert(client.id, client.clone());
    }

    fn remove(&mut self, kind: Kind, name: &Bytes, id: u64) {
        match kind {
            Kind::Channel => {
                if let Some(s) = self.channels.get_mut(name) {
                    s.shift_remove(&id);
                    if s.is_empty() {
                        self.channels.remove(name);
                    }
                }
            }
            Kind::Pattern => {
                if let Some(s) = self.patterns.get_mut(name) {
                    s.shift_remove(&id);
                    if s.is_empty() {
                        self.patterns.shift_remove(name);
                    }
                }
            }
            Kind::Shard => {
                if let Some(s) = self.shard.get_mut(name) {
                    s.shift_remove(&id);
                    if s.is_empty() {
                        self.shard.remove(name);
                    }
                }
            }
        }
    }
}

/// `notify-keyspace-events` class bits, as Redis numbers them.
pub mod notify {
    /// `K`: publish on `__keyspace@<db>__:<key>`.
    pub const KEYSPACE: u32 = 1 << 0;
    /// `E`: publish on `__keyevent@<db>__:<event>`.
    pub const KEYEVENT: u32 = 1 << 1;
    /// `g`: generic commands (DEL, EXPIRE, RENAME, ...).
    pub const GENERIC: u32 = 1 << 2;
    /// `$`: string commands.
    pub const STRING: u32 = 1 << 3;
    /// `l`: list commands.
    pub const LIST: u32 = 1 << 4;
    /// `s`: set commands.
    pub const SET: u32 = 1 << 5;
    /// `h`: hash commands.
    pub const HASH: u32 = 1 << 6;
    /// `z`: sorted set commands.
    pub const ZSET: u32 = 1 << 7;
    /// `x`: expired keys.
    pub const EXPIRED: u32 = 1 << 8;
    /// `e`: evicted keys.
    pub const EVICTED: u32 = 1 << 9;
    /// `t`: stream commands.
    pub const STREAM: u32 = 1 << 10;
    /// `m`: key misses (not part of `A`).
    pub const KEY_MISS: u32 = 1 << 11;
    /// `d`: module key type events.
    pub const MODULE: u32 = 1 << 13;
    /// `n`: new keys (not part of `A`).
    pub const NEW: u32 = 1 << 14;
    /// `A`: alias for `g$lshzxetd`.
    pub const ALL: u32 =
        GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

    /// Parses a flag string (`"KEA"`); `None` on a character Redis does not know.
    pub fn parse(s: &[u8]) -> Option<u32> {
        let mut flags = 0;
        for &c in s {
            flags |= match c {
                b'A' => ALL,
                b'g' => GENERIC,
                b'$' => STRING,
                b'l' => LIST,
                b's' => SET,
                b'h' => HASH,
                b'z' => ZSET,
                b'x' => EXPIRED,
                b'e' => EVICTED,
                b'K' => KEYSPACE,
                b'E' => KEYEVENT,
                b't' => STREAM,
                b'm' => KEY_MISS,
                b'd' => MODULE,
                b'n' => NEW,
                _ => return None,
            };
        }
        Some(flags)
    }

    /// The normalized string CONFIG GET shows (Redis's keyspaceEventsFlagsToString:
    /// with every `A` class set it prints `A` and, like Redis 7.0, omits `n`).
    pub fn to_string(flags: u32) -> String {
        let mut s = String::new();
        if flags & ALL == ALL {
            s.push('A');
        } else {
            for (bit, c) in [
                (GENERIC, 'g'),
                (STRING, '$'),
                (LIST, 'l'),
                (SET, 's'),
                (HASH, 'h'),
                (ZSET, 'z'),
                (EXPIRED, 'x'),
                (EVICTED, 'e'),
                (STREAM, 't'),
                (MODULE, 'd'),
                (NEW, 'n'),
            ] {
                if flags & bit != 0 {
                    s.push(c);
                }
            }
        }
        for (bit, c) in [(KEYSPACE, 'K'), (KEYEVENT, 'E'), (KEY_MISS, 'm')] {
            if flags & bit != 0 {
                s.push(c);
            }
        }
        s
    }
}

/// The registry of channels, patterns and shard channels, the live output buffer
/// limits, and the keyspace notification flags.
#[derive(Default)]
pub struct Hub {
    reg: RwLock<Registry>,
    limits: [LiveLimit; 3],
    notify_flags: AtomicU32,
    /// Clients closed for overcoming their output buffer limit (INFO stats,
    /// `client_output_buffer_limit_disconnections`).
    pub obuf_disconnections: AtomicU64,
}

/// One message encoded lazily, at most once per protocol, straight from the borrowed
/// parts (no intermediate frames).
struct Encoded<'a> {
    parts: &'a [&'a [u8]],
    resp2: Option<Bytes>,
    resp3: Option<Bytes>,
}

impl<'a> Encoded<'a> {
    fn new(parts: &'a [&'a [u8]]) -> Encoded<'a> {
        Encoded {
            parts,
            resp2: None,
            resp3: None,
        }
    }

    fn get(&mut self, resp: u8) -> &Bytes {
        let (slot, proto) = if resp == 3 {
            (&mut self.resp3, Protocol::Resp3)
        } else {
            (&mut self.resp2, Protocol::Resp2)
        };
        let parts = self.parts;
        slot.get_or_insert_with(|| {
            let mut b = BytesMut::new();
            encode_push(parts, proto, &mut b);
            b.freeze()
        })
    }
}

impl Hub {
    /// A hub with Redis's default limits and notifications off.
    pub fn new() -> Hub {
        let hub = Hub::default();
        hub.set_limits(&DEFAULT_OBUF_LIMITS);
        hub
    }

    /// Installs the configured output buffer limits.
    pub fn set_limits(&self, limits: &[ObufLimit; 3]) {
        for (live, l) in self.limits.iter().zip(limits) {
            live.hard.store(l.hard, Ordering::Relaxed);
            live.soft.store(l.soft, Ordering::Relaxed);
            live.seconds
                .store(l.seconds.max(0) as u64, Ordering::Relaxed);
        }
    }

    /// The limits of one class.
    pub fn limit(&self, class: ObufClass) -> ObufLimit {
        let l = &self.limits[class as usize];
        ObufLimit {
            hard: l.hard.load(Ordering::Relaxed),
            soft: l.soft.load(Ordering::Relaxed),
            seconds: l.seconds.load(Ordering::Relaxed) as i64,
        }
    }

    /// Installs `notify-keyspace-events` flags.
    pub fn set_notify_flags(&self, flags: u32) {
        self.notify_flags.store(flags, Ordering::Relaxed);
    }

    /// The engine events the flags ask for (for `Keyspace::set_event_mask`).
    pub fn key_event_mask(flags: u32) -> u8 {
        if flags & (notify::KEYSPACE | notify::KEYEVENT) == 0 {
            return 0;
        }
        let mut m = 0;
        for (class, ev) in [
            (notify::NEW, KeyEvent::New),
            (notify::EXPIRED, KeyEvent::Expired),
            (notify::EVICTED, KeyEvent::Evicted),
            (notify::KEY_MISS, KeyEvent::Miss),
        ] {
            if flags & class != 0 {
                m |= ev.bit();
            }
        }
        m
    }

    /// Active channel, pattern and shard channel counts (INFO `pubsub_channels`,
    /// `pubsub_patterns`, `pubsubshard_channels`).
    pub fn counts(&self) -> (usize, usize, usize) {
        let r = self.reg.read();
        (r.channels.len(), r.patterns.len(), r.shard.len())
    }

    /// Subscribes the client to each name and queues one confirmation per name.
    pub fn subscribe(
        &self,
        subs: &mut Subscriptions,
        client: &Arc<ClientShared>,
        proto: Protocol,
        kind: Kind,
        names: &[Bytes],
    ) {
        let mut reg = self.reg.write();
        for name in names {
            if subs.set(kind).insert(name.clone()) {
                reg.add(kind, name, client);
            }
            let count = subs.count(kind);
            client.outbox.push_own(confirmation(
                proto,
                kind.subscribe_word(),
                Some(name),
                count,
            ));
        }
        client.set_sub_counts(subs);
    }

    /// Queues a `message` on `channel` for `client` alone (ELECT.OBSERVE's current
    /// leader, right after its subscription's confirmation).
    pub fn send_own(
        &self,
        client: &Arc<ClientShared>,
        proto: Protocol,
        channel: &[u8],
        message: &[u8],
    ) {
        let frame = Frame::Push(vec![
            Frame::Bulk(Bytes::from_static(b"message")),
            Frame::bulk(channel),
            Frame::bulk(message),
        ]);
        let mut b = BytesMut::new();
        encode(&frame, proto, &mut b);
        client.outbox.push_own(b.freeze());
    }

    /// Unsubscribes from each name (all of the kind when `names` is empty) and queues
    /// the confirmations (`[unsubscribe, nil, count]` when there was nothing to leave).
    pub fn unsubscribe(
        &self,
        subs: &mut Subscriptions,
        client: &Arc<ClientShared>,
        proto: Protocol,
        kind: Kind,
        names: &[Bytes],
    ) {
        let mut reg = self.reg.write();
        let all: Vec<Bytes>;
        let list = if names.is_empty() {
            all = subs.set(kind).iter().cloned().collect();
            &all[..]
        } else {
            names
        };
        for name in list {
            if subs.set(kind).swap_remove(name) {
                reg.remove(kind, name, client.id);
            }
            let count = subs.count(kind);
            client.outbox.push_own(confirmation(
                proto,
                kind.unsubscribe_word(),
                Some(name),
                count,
            ));
        }
        if list.is_empty() {
            client.outbox.push_own(confirmation(
                proto,
                kind.unsubscribe_word(),
                None,
                subs.count(kind),
            ));
        }
        client.set_sub_counts(subs);
    }

    /// Leaves every subscription without confirmations (RESET, disconnect).
    pub fn unsubscribe_all(&self, subs: &mut Subscriptions, client: &Arc<ClientShared>) {
        if !subs.active() {
            return;
        }
        let mut reg = self.reg.write();
        for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
            for name in subs.set(kind).drain(..) {
                reg.remove(kind, &name, client.id);
            }
        }
        client.set_sub_counts(subs);
    }

    /// Delivers `message` to the subscribers of `channel` and of every pattern matching
    /// it (PUBLISH), or of the shard channel (SPUBLISH). Returns the number of
    /// deliveries, as PUBLISH replies.
    pub fn publish(&self, channel: &[u8], message: &[u8], shard: bool) -> usize {
        let limit = self.limit(ObufClass::Pubsub);
        let reg = self.reg.read();
        let mut receivers = 0;
        let mut cut_off: Vec<Arc<ClientShared>> = Vec::new();
        let subscribers = if shard {
            reg.shard.get(channel)
        } else {
            reg.channels.get(channel)
        };
        if let Some(subs) = subscribers {
            let kind: &'static [u8] = if shard { b"smessage" } else { b"message" };
            let parts = [kind, channel, message];
            let mut enc = Encoded::new(&parts);
            for c in subs.values() {
                let bytes = enc.get(c.resp.load(Ordering::Relaxed));
                if c.outbox.push_message(bytes, limit) {
                    cut_off.push(c.clone());
                }
                receivers += 1;
            }
        }
        if !shard {
            for (pattern, subs) in &reg.patterns {
                if !glob_match(pattern, channel, false) {
                    continue;
                }
                let parts: [&[u8]; 4] = [b"pmessage", pattern, channel, message];
                let mut enc = Encoded::new(&parts);
                for c in subs.values() {
                    let bytes = enc.get(c.resp.load(Ordering::Relaxed));
                    if c.outbox.push_message(bytes, limit) {
                        cut_off.push(c.clone());
                    }
                    receivers += 1;
                }
            }
        }
        drop(reg);
        for c in cut_off {
            // The connection task logs and counts it when it wakes up.
            c.kill();
        }
        receivers
    }

    /// Active channels (or shard channels) matching `pattern` (all when `None`).
    pub fn channels(&self, pattern: Option<&[u8]>, shard: bool) -> Vec<Bytes> {
        let reg = self.reg.read();
        let map = if shard { &reg.shard } else { &reg.channels };
        map.keys()
            .filter(|c| pattern.is_none_or(|p| glob_match(p, c, false)))
            .cloned()
            .collect()
    }

    /// Subscriber count of a channel (or shard channel), patterns excluded.
    pub fn numsub(&self, channel: &[u8], shard: bool) -> usize {
        let reg = self.reg.read();
        let map = if shard { &reg.shard } else { &reg.channels };
        map.get(channel).map_or(0, IndexMap::len)
    }

    /// Number of distinct patterns subscribed to.
    pub fn numpat(&self) -> usize {
        self.reg.read().patterns.len()
    }

    /// The `notify-keyspace-events` flags in force.
    #[inline]
    pub fn notify_flags(&self) -> u32 {
        self.notify_flags.load(Ordering::Relaxed)
    }

    /// Publishes a keyspace notification (Redis's notifyKeyspaceEvent): `event` on
    /// `__keyspace@<db>__:<key>` when `K` is on, `key` on `__keyevent@<db>__:<event>`
    /// when `E` is on; nothing unless `class` is enabled.
    #[inline]
    pub fn notify(&self, class: u32, event: &str, key: &[u8], db: usize) {
        let flags = self.notify_flags();
        if flags & class == 0 {
            return;
        }
        self.notify_slow(flags, event, key, db);
    }

    #[cold]
    fn notify_slow(&self, flags: u32, event: &str, key: &[u8], db: usize) {
        let mut db_buf = itoa::Buffer::new();
        let db = db_buf.format(db).as_bytes();
        if flags & notify::KEYSPACE != 0 {
            let mut ch = Vec::with_capacity(16 + db.len() + key.len());
            ch.extend_from_slice(b"__keyspace@");
            ch.extend_from_slice(db);
            ch.extend_from_slice(b"__:");
            ch.extend_from_slice(key);
            self.publish(&ch, event.as_bytes(), false);
        }
        if flags & notify::KEYEVENT != 0 {
            let mut ch = Vec::with_capacity(16 + db.len() + event.len());
            ch.extend_from_slice(b"__keyevent@");
            ch.extend_from_slice(db);
            ch.extend_from_slice(b"__:");
            ch.extend_from_slice(event.as_bytes());
            self.publish(&ch, key, false);
        }
    }
}

impl KeyEvents for Hub {
    fn key_event(&self, db: usize, key: &[u8], event: KeyEvent) {
        match event {
            KeyEvent::New => self.notify(notify::NEW, "new", key, db),
            KeyEvent::Expired => self.notify(notify::EXPIRED, "expired", key, db),
            KeyEvent::Evicted => self.notify(notify::EVICTED, "evicted", key, db),
            KeyEvent::Miss => self.notify(notify::KEY_MISS, "keymiss", key, db),
        }
    }
}

/// A `[subscribe|unsubscribe|..., channel or nil, count]` confirmation, a push in RESP3.
fn confirmation(proto: Protocol, word: &'static [u8], name: Option<&Bytes>, count: usize) -> Bytes {
    let frame = Frame::Push(vec![
        Frame::Bulk(Bytes::from_static(word)),
        name.map_or(Frame::Null, |n| Frame::Bulk(n.clone())),
        Frame::Integer(count as i64),
    ]);
    let mut b = BytesMut::new();
    encode(&frame, proto, &mut b);
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_flags_round_trip_like_redis() {
        let cases: &[(&str, &str)] = &[
            ("KEA", "AKE"),
            ("gE", "gE"),
            ("$lshzxetdK", "$lshzxetdK"),
            ("Am", "Am"),
            ("An", "A"),
            ("AmnKE", "AKEm"),
            ("Kx", "xK"),
            ("xedKE", "xedKE"),
            ("", ""),
            ("KA", "AK"),
            ("n", "n"),
            ("Kn", "nK"),
            ("gnE", "gnE"),
            ("g$lshzxetd", "A"),
        ];
        for (input, shown) in cases {
            let f = notify::parse(input.as_bytes()).unwrap();
            assert_eq!(notify::to_string(f), *shown, "{input}");
        }
        assert_eq!(notify::parse(b"q"), None);
        assert_eq!(notify::parse(b"KEq"), None);
    }

    #[test]
    fn limits_hard_and_soft() {
        let o = Outbox::default();
        let hard = ObufLimit {
            hard: 100,
            soft: 0,
            seconds: 0,
        };
        assert!(!o.limit_reached(99, hard));
        assert!(o.limit_reached(100, hard));
        let soft = ObufLimit {
            hard: 0,
            soft: 50,
            seconds: 1000,
        };
        // First time over the soft limit only starts the clock.
        assert!(!o.limit_reached(60, soft));
        assert!(!o.limit_reached(60, soft));
        // Dropping below resets it.
        assert!(!o.limit_reached(10, soft));
        assert_eq!(o.soft_since.load(Ordering::Relaxed), 0);
        // A soft limit of 0 seconds closes on the first check more than a second later;
        // simulate the clock by back-dating the start.
        let zero = ObufLimit {
            hard: 0,
            soft: 50,
            seconds: 0,
        };
        assert!(!o.limit_reached(60, zero));
        o.soft_since.store(1, Ordering::Relaxed);
        assert!(o.limit_reached(60, zero));
    }

    #[test]
    fn encoded_once_per_protocol() {
        let parts: [&[u8]; 3] = [b"message", b"c", b"m"];
        let mut e = Encoded::new(&parts);
        let a = e.get(2).clone();
        let b = e.get(3).clone();
        assert_eq!(&a[..], b"*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n");
        assert_eq!(&b[..], b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n");
        // Same allocation handed out again.
        assert_eq!(e.get(2).as_ptr(), a.as_ptr());
    }
}
