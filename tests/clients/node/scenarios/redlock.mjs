// node-redlock scenarios: mutual exclusion between many clients under contention, extend,
// release, and a lock that expires when its holder disappears.

import Redlock, { ExecutionError, ResourceLockedError } from "redlock";

import { check, expect, recordError, rejects, waitUntil } from "./common.mjs";

function redlock(ctx, client, settings = {}) {
  // Bounded retries (about 10 s of contention at most) so that a server that can't run
  // the lock scripts fails the scenario instead of retrying forever.
  const rl = new Redlock([client], { retryCount: 1000, retryDelay: 5, retryJitter: 10,
    ...settings });
  // Redlock emits every failed attempt (ResourceLockedError while contended); only
  // other errors matter for the report.
  rl.on("error", (e) => {
    if (!(e instanceof ResourceLockedError)) recordError("redlock", e);
  });
  return rl;
}

async function mutualExclusion(ctx) {
  const resource = ctx.key("res");
  const counter = ctx.key("counter");
  const inside = ctx.key("inside");
  const clients = 6;
  const perClient = 20;
  let overlaps = 0;

  const run = async () => {
    const r = ctx.client();
    const rl = redlock(ctx, r);
    for (let i = 0; i < perClient; i++) {
      await rl.using([resource], 5000, async () => {
        // A read-modify-write that is exact only under mutual exclusion.
        if ((await r.incr(inside)) !== 1) overlaps++;
        const v = Number((await r.get(counter)) || 0);
        await new Promise((res) => setImmediate(res));
        await r.set(counter, v + 1);
        await r.decr(inside);
      });
    }
  };
  await Promise.all(Array.from({ length: clients }, run));
  const r = ctx.client();
  expect(overlaps, 0, "critical sections that overlapped");
  expect(Number(await r.get(counter)), clients * perClient, "counter after locked increments");
  expect(await r.exists(resource), 0, "lock key after the last release");
}

async function lifecycle(ctx) {
  const r = ctx.client();
  const a = redlock(ctx, ctx.client(), { retryCount: 0 });
  const b = redlock(ctx, ctx.client(), { retryCount: 0 });
  const res = ctx.key("res");

  const lock = await a.acquire([res], 10000);
  const ttl = await r.pttl(res);
  check(ttl > 0 && ttl <= 10000, `PTTL of a 10 s lock: ${ttl}`);
  const e = await rejects(b.acquire([res], 10000), "acquire of a held lock");
  check(e instanceof ExecutionError, `ExecutionError expected, got ${e}`);

  const extended = await lock.extend(60000);
  const ttl2 = await r.pttl(res);
  check(ttl2 > 10000 && ttl2 <= 60000, `PTTL after extend(60000): ${ttl2}`);
  await extended.release();
  expect(await r.exists(res), 0, "lock key after release");
  const l2 = await b.acquire([res], 10000);
  await l2.release();

  // Multi-resource locks are all-or-nothing.
  const held = await a.acquire([ctx.key("r2")], 10000);
  await rejects(b.acquire([ctx.key("r1"), ctx.key("r2")], 10000), "partly held multi lock");
  expect(await r.exists(ctx.key("r1")), 0, "no partial lock left behind");
  await held.release();
  const both = await b.acquire([ctx.key("r1"), ctx.key("r2")], 10000);
  await both.release();

  // A holder that disappears: its lock expires and a waiting client gets it.
  await a.acquire([ctx.key("gone")], 300);
  const waiter = redlock(ctx, ctx.client(), { retryCount: 200, retryDelay: 50 });
  const l3 = await waitUntil(() => waiter.acquire([ctx.key("gone")], 10000),
    "acquire after the holder's lock expired");
  check(l3.value !== undefined, "lock value");
  await l3.release();
}

export const scenarios = [
  ["redlock.mutual-exclusion", mutualExclusion],
  ["redlock.lifecycle", lifecycle],
];
