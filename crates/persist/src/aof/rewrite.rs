//! A key as the commands that rebuild it: what an AOF base in RESP form holds
//! (`aof-use-rdb-preamble no`), as Redis's `rewriteAppendOnlyFileRio` writes it.
//!
//! | value | commands |
//! |---|---|
//! | string | `SET key value` |
//! | list | `RPUSH key e1 .. e64`, repeated |
//! | hash | `HMSET key f1 v1 .. f64 v64`, repeated |
//! | set | `SADD key m1 .. m64`, repeated |
//! | sorted set | `ZADD key s1 m1 .. s64 m64`, repeated (scores as `%.17g`) |
//! | stream | `XADD key id f v ..` per entry (or `XADD key MAXLEN 0 0-1 x y` when empty), `XSETID key last ENTRIESADDED n MAXDELETEDID id`, per group `XGROUP CREATE key g id ENTRIESREAD n`, per pending entry `XCLAIM key g consumer 0 id TIME t RETRYCOUNT n JUSTID FORCE`, per consumer without pending entries `XGROUP CREATECONSUMER key g consumer` |
//!
//! | RL.* limiter, lock | `RESTORE key 0 <DUMP payload> REPLACE` (a `basalt-rl` or `basalt-lk` module value) |
//!
//! followed by `PEXPIREAT key ms` for a key with a deadline.

use basalt_engine::types::list::ListElem;
use basalt_engine::types::set::Member;
use basalt_engine::{Value, ValueRef};

/// Elements per command (Redis's `AOF_REWRITE_ITEMS_PER_CMD`).
pub const ITEMS_PER_CMD: usize = 64;

fn text(v: impl itoa::Integer) -> Vec<u8> {
    itoa::Buffer::new().format(v).as_bytes().to_vec()
}

fn id_text(id: basalt_engine::types::stream::StreamId) -> Vec<u8> {
    id.to_string().into_bytes()
}

/// Emits batches of `ITEMS_PER_CMD` items as `<cmd> key item..`.
struct Batcher<'a, F: FnMut(Vec<Vec<u8>>)> {
    head: [&'a [u8]; 2],
    cur: Vec<Vec<u8>>,
    items: usize,
    emit: &'a mut F,
}

impl<F: FnMut(Vec<Vec<u8>>)> Batcher<'_, F> {
    fn item(&mut self, parts: impl IntoIterator<Item = Vec<u8>>) {
        if self.cur.is_empty() {
            self.cur.push(self.head[0].to_vec());
            self.cur.push(self.head[1].to_vec());
        }
        self.cur.extend(parts);
        self.items += 1;
        if self.items == ITEMS_PER_CMD {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if !self.cur.is_empty() {
            (self.emit)(std::mem::take(&mut self.cur));
        }
        self.items = 0;
    }
}

/// Calls `emit` with each command that rebuilds `key` holding `value` with deadline
/// `expire_ms` (0: none).
pub fn key_commands<'a>(
    key: &[u8],
    value: impl Into<ValueRef<'a>>,
    expire_ms: u64,
    mut emit: impl FnMut(Vec<Vec<u8>>),
) {
    let k = key.to_vec();
    let value = match value.into() {
        ValueRef::Str(s) => {
            emit(vec![b"SET".to_vec(), k.clone(), s.as_bytes().into_owned()]);
            return expire_tail(key, expire_ms, emit);
        }
        ValueRef::Other(v) => v,
    };
    match value {
        Value::Str(s) => emit(vec![b"SET".to_vec(), k.clone(), s.as_bytes().into_owned()]),
        Value::List(l) => {
            let mut b = Batcher {
                head: [b"RPUSH", key],
                cur: Vec::new(),
                items: 0,
                emit: &mut emit,
            };
            for e in l.iter() {
                b.item([ListElem::to_bytes(&e).to_vec()]);
            }
            b.flush();
        }
        Value::Hash(h) => {
            let mut b = Batcher {
                head: [b"HMSET", key],
                cur: Vec::new(),
                items: 0,
                emit: &mut emit,
            };
            h.for_each(|f, v| b.item([f.to_vec(), v.to_vec()]));
            b.flush();
        }
        Value::Set(s) => {
            let mut b = Batcher {
                head: [b"SADD", key],
                cur: Vec::new(),
                items: 0,
                emit: &mut emit,
            };
            s.for_each(|m| match m {
                Member::Int(i) => b.item([text(i)]),
                Member::Bytes(m) => b.item([m.to_vec()]),
            });
            b.flush();
        }
        Value::ZSet(z) => {
            let mut b = Batcher {
                head: [b"ZADD", key],
                cur: Vec::new(),
                items: 0,
                emit: &mut emit,
            };
            z.walk(0, false, |m, score| {
                let mut s = Vec::with_capacity(24);
                basalt_proto::format_double(score, &mut s);
                b.item([s, m.to_vec()]);
                true
            });
            b.flush();
        }
        // Basalt's RL.* limiters and locks have no Redis command that rebuilds them:
        // RESTORE of their DUMP payload (an RDB module value, see
        // `rdb::BASALT_RL_MODULE_ID`, `rdb::BASALT_LK_MODULE_ID`, `rdb::BASALT_JQ_MODULE_ID`).
        Value::RateLimit(_) | Value::Lock(_) | Value::Queue(_) => emit(vec![
            b"RESTORE".to_vec(),
            k.clone(),
            b"0".to_vec(),
            crate::dump::dump(value, crate::rdb::encode::EncodeOptions::default()),
            b"REPLACE".to_vec(),
        ]),
        Value::Stream(s) => {
            if s.is_empty() {
                emit(vec![
                    b"XADD".to_vec(),
                    k.clone(),
                    b"MAXLEN".to_vec(),
                    b"0".to_vec(),
                    b"0-1".to_vec(),
                    b"x".to_vec(),
                    b"y".to_vec(),
                ]);
            } else {
                for e in s.range(
                    basalt_engine::types::stream::StreamId::MIN,
                    basalt_engine::types::stream::StreamId::MAX,
                    false,
                ) {
                    let mut cmd = vec![b"XADD".to_vec(), k.clone(), id_text(e.id)];
                    for (f, v) in e.fields() {
                        cmd.push(f.to_vec());
                        cmd.push(v.to_vec());
                    }
                    emit(cmd);
                }
            }
            emit(vec![
                b"XSETID".to_vec(),
                k.clone(),
                id_text(s.last_id()),
                b"ENTRIESADDED".to_vec(),
                text(s.entries_added()),
                b"MAXDELETEDID".to_vec(),
                id_text(s.max_deleted_id()),
            ]);
            for (name, g) in s.groups() {
                emit(vec![
                    b"XGROUP".to_vec(),
                    b"CREATE".to_vec(),
                    k.clone(),
                    name.to_vec(),
                    id_text(g.last_id),
                    b"ENTRIESREAD".to_vec(),
                    text(g.entries_read),
                ]);
                for (cname, c) in g.consumers() {
                    if c.pel.is_empty() {
                        emit(vec![
                            b"XGROUP".to_vec(),
                            b"CREATECONSUMER".to_vec(),
                            k.clone(),
                            name.to_vec(),
                            cname.to_vec(),
                        ]);
                        continue;
                    }
                    for id in &c.pel {
                        let Some(nack) = g.pel().get(id) else {
                            continue;
                        };
                        emit(vec![
                            b"XCLAIM".to_vec(),
                            k.clone(),
                            name.to_vec(),
                            cname.to_vec(),
                            b"0".to_vec(),
                            id_text(*id),
                            b"TIME".to_vec(),
                            text(nack.delivery_time),
                            b"RETRYCOUNT".to_vec(),
                            text(nack.delivery_count),
                            b"JUSTID".to_vec(),
                            b"FORCE".to_vec(),
                        ]);
                    }
                }
            }
        }
    }
    expire_tail(key, expire_ms, emit);
}

/// The PEXPIREAT that gives the rebuilt key its deadline, if it has one.
fn expire_tail(key: &[u8], expire_ms: u64, mut emit: impl FnMut(Vec<Vec<u8>>)) {
    if expire_ms != 0 {
        emit(vec![b"PEXPIREAT".to_vec(), key.to_vec(), text(expire_ms)]);
    }
}
