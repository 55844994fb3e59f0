// ioredis scenarios: commands over every data type, pipelines and MULTI/EXEC, Lua through
// defineCommand (EVALSHA with the NOSCRIPT fallback), and pub/sub.

import { check, expect, rejects, waitUntil } from "./common.mjs";

async function commands(ctx) {
  const r = ctx.client();
  const k = (...p) => ctx.key(...p);

  expect(await r.set(k("s"), "hello", "EX", 100), "OK", "SET EX");
  expect(await r.get(k("s")), "hello", "GET");
  expect(await r.get(k("missing")), null, "GET missing");
  expect(await r.set(k("s"), "x", "NX"), null, "SET NX on an existing key");
  check((await r.ttl(k("s"))) > 90, "TTL after SET EX 100");
  expect(await r.incrby(k("n"), 5), 5, "INCRBY");
  expect(await r.incrbyfloat(k("n"), "0.5"), "5.5", "INCRBYFLOAT");
  const bin = Buffer.from([0, 1, 2, 255, 254, 13, 10]);
  await r.set(k("bin"), bin);
  expect([...(await r.getBuffer(k("bin")))], [...bin], "binary round trip");
  expect(await r.mset({ [k("a")]: "1", [k("b")]: "2" }), "OK", "MSET object");
  expect(await r.mget(k("a"), k("missing"), k("b")), ["1", null, "2"], "MGET");

  expect(await r.hset(k("h"), { f1: "v1", f2: "v2" }), 2, "HSET object");
  expect(await r.hgetall(k("h")), { f1: "v1", f2: "v2" }, "HGETALL");
  expect(await r.hincrby(k("h"), "cnt", 3), 3, "HINCRBY");
  expect(await r.rpush(k("l"), "a", "b", "c"), 3, "RPUSH");
  expect(await r.lrange(k("l"), 0, -1), ["a", "b", "c"], "LRANGE");
  expect(await r.brpoplpush(k("l"), k("l2"), 1), "c", "BRPOPLPUSH");
  expect(await r.blpop(k("nothing"), 0.1), null, "BLPOP timeout");
  expect(await r.sadd(k("set"), "x", "y", "z"), 3, "SADD");
  expect((await r.smembers(k("set"))).sort(), ["x", "y", "z"], "SMEMBERS");
  expect(await r.zadd(k("z"), 1, "one", 2, "two", 3, "three"), 3, "ZADD");
  expect(await r.zrange(k("z"), 0, -1, "WITHSCORES"),
    ["one", "1", "two", "2", "three", "3"], "ZRANGE WITHSCORES");
  expect(await r.zrangebyscore(k("z"), "(1", "+inf", "LIMIT", 0, 1), ["two"],
    "ZRANGEBYSCORE LIMIT");
  expect(await r.zrevrank(k("z"), "one"), 2, "ZREVRANK");

  const err = await rejects(r.lpush(k("h"), "x"), "LPUSH on a hash");
  check(err.message.startsWith("WRONGTYPE"), `WRONGTYPE error, got ${err.message}`);

  const seen = new Set();
  for (let i = 0; i < 30; i++) await r.set(k("scan", i), i);
  await new Promise((resolve, reject) => {
    const s = r.scanStream({ match: k("scan", "*"), count: 7 });
    s.on("data", (keys) => keys.forEach((x) => seen.add(x)));
    s.on("end", resolve);
    s.on("error", reject);
  });
  expect(seen.size, 30, "scanStream keys");
  expect(await r.exists(k("a"), k("b"), k("missing")), 2, "EXISTS count");
  expect(await r.del(k("a"), k("b")), 2, "DEL");
}

async function pipelines(ctx) {
  const r = ctx.client();
  const k = (...p) => ctx.key(...p);

  const p = r.pipeline();
  for (let i = 0; i < 200; i++) p.incr(k("ctr"));
  p.set(k("str"), "abc");
  p.incr(k("str"));
  p.get(k("str"));
  const res = await p.exec();
  expect(res.slice(0, 200).map(([e, v]) => [e, v]),
    Array.from({ length: 200 }, (_, i) => [null, i + 1]), "pipeline INCR replies");
  check(res[201][0] instanceof Error, "error slot inside a pipeline");
  expect(res[202], [null, "abc"], "pipeline reply after an error");

  // MULTI/EXEC
  const tx = await r.multi().set(k("t"), "1").incr(k("t")).lpush(k("tl"), "a").exec();
  expect(tx, [[null, "OK"], [null, 2], [null, 1]], "MULTI/EXEC replies");

  // Runtime error inside EXEC: no rollback.
  const tx2 = await r.multi().set(k("rt"), "x").incr(k("rt")).set(k("rt2"), "y").exec();
  check(tx2[1][0] instanceof Error, "runtime error slot in EXEC");
  expect(await r.get(k("rt2")), "y", "command after the runtime error ran");

  // Queue-time error: EXECABORT, nothing runs.
  const e = await rejects(r.multi().set(k("ab"), "1").call("SET", k("ab")).exec(),
    "transaction with a wrong-arity command");
  check(/EXECABORT/.test(e.message), `EXECABORT expected, got ${e.message}`);
  expect(await r.exists(k("ab")), 0, "EXECABORT ran nothing");

  // WATCH: a write by another client makes EXEC return null.
  const other = ctx.client();
  await r.set(k("w"), "0");
  await r.watch(k("w"));
  await other.set(k("w"), "changed");
  expect(await r.multi().set(k("w"), "mine").exec(), null, "EXEC after a watched write");
  expect(await r.get(k("w")), "changed", "value after the aborted transaction");
  await r.watch(k("w"));
  expect(await r.multi().set(k("w"), "mine").exec(), [[null, "OK"]], "EXEC, key untouched");
}

const CAPPED_INCR = `
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local cap = tonumber(ARGV[1])
if cur + 1 > cap then return {cur, 'capped'} end
redis.call('SET', KEYS[1], cur + 1)
return {cur + 1, 'ok'}
`;

async function defineCommand(ctx) {
  const r = ctx.client();
  const k = (...p) => ctx.key(...p);
  r.defineCommand("cappedIncr", { numberOfKeys: 1, lua: CAPPED_INCR });
  r.defineCommand("hsetAndCount", {
    numberOfKeys: 1,
    lua: "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) return redis.call('HLEN', KEYS[1])",
  });
  r.defineCommand("luaTypes", {
    numberOfKeys: 0,
    lua: "return {1, 'two', 3.99, true, false, {'nested', 7}, redis.status_reply('FINE')}",
  });
  r.defineCommand("luaError", { numberOfKeys: 0, lua: "return redis.error_reply('MYERR custom')" });
  r.defineCommand("callError", { numberOfKeys: 1, lua: "return redis.call('INCR', KEYS[1])" });
  r.defineCommand("pcallError", {
    numberOfKeys: 1,
    lua: "local r = redis.pcall('INCR', KEYS[1]) return r['err']",
  });

  const out = [];
  for (let i = 0; i < 4; i++) out.push(await r.cappedIncr(k("c"), 3));
  expect(out, [[1, "ok"], [2, "ok"], [3, "ok"], [3, "capped"]], "cappedIncr results");
  expect(await r.hsetAndCount(k("h"), "a", "1"), 1, "hsetAndCount");
  expect(await r.hsetAndCount(k("h"), "b", "2"), 2, "hsetAndCount second field");
  // Lua -> RESP conversion: numbers truncate, true -> 1, false -> nil, status -> string.
  expect(await r.luaTypes(), [1, "two", 3, 1, null, ["nested", 7], "FINE"], "Lua reply types");

  const e1 = await rejects(r.luaError(), "redis.error_reply");
  expect(e1.message, "MYERR custom", "error_reply message");
  await r.set(k("str"), "abc");
  const e2 = await rejects(r.callError(k("str")), "redis.call raising");
  check(/ERR value is not an integer or out of range/.test(e2.message),
    `redis.call error text: ${e2.message}`);
  expect(await r.pcallError(k("str")), "ERR value is not an integer or out of range",
    "redis.pcall error table");

  // SCRIPT FLUSH makes EVALSHA fail with NOSCRIPT; ioredis falls back to EVAL.
  expect(await r.script("FLUSH"), "OK", "SCRIPT FLUSH");
  await r.set(k("c"), "0");
  expect(await r.cappedIncr(k("c"), 3), [1, "ok"], "cappedIncr after SCRIPT FLUSH");
  const sha = await r.script("LOAD", CAPPED_INCR);
  expect(await r.script("EXISTS", sha, "0".repeat(40)), [1, 0], "SCRIPT EXISTS");

  // Custom commands inside a pipeline and a transaction.
  const res = await r.pipeline().cappedIncr(k("c"), 3).cappedIncr(k("c"), 3).exec();
  expect(res, [[null, [2, "ok"]], [null, [3, "ok"]]], "cappedIncr in a pipeline");
  const tx = await r.multi().set(k("c"), "0").cappedIncr(k("c"), 1).exec();
  expect(tx, [[null, "OK"], [null, [1, "ok"]]], "cappedIncr in MULTI");
}

async function pubsub(ctx) {
  const pub = ctx.client();
  const sub = ctx.client();
  const got = [];
  sub.on("message", (channel, message) => got.push(["message", channel, message]));
  sub.on("pmessage", (pattern, channel, message) => got.push(["pmessage", pattern, channel, message]));
  expect(await sub.subscribe(ctx.key("ch1"), ctx.key("ch2")), 2, "SUBSCRIBE count");
  expect(await sub.psubscribe(ctx.key("p*")), 3, "PSUBSCRIBE count");
  expect(await pub.publish(ctx.key("ch1"), "a"), 1, "PUBLISH ch1");
  expect(await pub.publish(ctx.key("pq"), "b"), 1, "PUBLISH to the pattern");
  for (let i = 0; i < 20; i++) await pub.publish(ctx.key("ch2"), String(i));
  await waitUntil(() => got.length >= 22, "22 messages delivered");
  expect(got.slice(0, 2), [["message", ctx.key("ch1"), "a"],
    ["pmessage", ctx.key("p*"), ctx.key("pq"), "b"]], "first messages");
  expect(got.slice(2).map((m) => m[2]), Array.from({ length: 20 }, (_, i) => String(i)),
    "message order");
  // (ioredis never resolves a bare unsubscribe(): name the channels.)
  expect(await sub.unsubscribe(ctx.key("ch1"), ctx.key("ch2")), 1, "UNSUBSCRIBE count");
  expect(await sub.punsubscribe(ctx.key("p*")), 0, "PUNSUBSCRIBE count");
  expect(await pub.publish(ctx.key("ch1"), "late"), 0, "PUBLISH after unsubscribing");
  // The connection is usable for ordinary commands again.
  expect(await sub.ping(), "PONG", "PING after leaving subscribed mode");
}

export const scenarios = [
  ["ioredis.commands", commands],
  ["ioredis.pipelines", pipelines],
  ["ioredis.define-command", defineCommand],
  ["ioredis.pubsub", pubsub],
];
