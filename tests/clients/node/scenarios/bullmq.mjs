// BullMQ scenarios: delayed, prioritised and retried jobs, workers with concurrency, a
// rate-limited queue and a flow with children. Each asserts that every job completed
// exactly once, in the order BullMQ promises.

import { FlowProducer, Queue, QueueEvents, Worker } from "bullmq";

import { check, expect, waitUntil, withTimeout } from "./common.mjs";

function queue(ctx, suffix) {
  const name = `${ctx.prefix}-${suffix}`;
  const q = new Queue(name, { connection: ctx.connection });
  ctx.watchErrors(q, `queue ${suffix}`);
  ctx.onCleanup(async () => {
    await q.obliterate({ force: true });
    await q.close();
  });
  return q;
}

function worker(ctx, q, processor, opts = {}) {
  const w = new Worker(q.name, processor, { connection: ctx.connection, ...opts });
  ctx.watchErrors(w, "worker");
  ctx.onCleanup(() => w.close(true));
  return w;
}

/** Counts how many times each job id ran; fails on any job that ran twice. */
function onceChecker() {
  const runs = new Map();
  return {
    runs,
    ran(id) {
      runs.set(id, (runs.get(id) || 0) + 1);
    },
    assertOnce(ids, what) {
      const counts = ids.map((id) => runs.get(id) || 0);
      const bad = ids.filter((_, i) => counts[i] !== 1).map((id) => `${id}x${runs.get(id) || 0}`);
      check(bad.length === 0, `${what}: jobs not run exactly once: ${bad.join(", ")}`);
    },
  };
}

async function counts(q) {
  return q.getJobCounts("completed", "failed", "delayed", "wait", "active", "prioritized");
}

async function delayed(ctx) {
  const q = queue(ctx, "delayed");
  const events = new QueueEvents(q.name, { connection: ctx.connection });
  ctx.watchErrors(events, "queue events");
  ctx.onCleanup(() => events.close());
  await events.waitUntilReady();

  const late = await q.add("late", { n: "late" }, { delay: 3000 });
  const sooner = await q.add("sooner", { n: "sooner" }, { delay: 1500 });
  const now = [];
  for (let i = 0; i < 3; i++) now.push(await q.add("now", { n: i }));
  expect(await late.getState(), "delayed", "state of a delayed job");
  expect(await q.getDelayedCount(), 2, "delayed count");

  const order = [];
  const once = onceChecker();
  worker(ctx, q, async (job) => {
    order.push(job.data.n);
    once.ran(job.id);
    return `done-${job.data.n}`;
  }, { concurrency: 1 });

  const result = await withTimeout(late.waitUntilFinished(events, 30000), 35000,
    "waitUntilFinished of the delayed job");
  expect(result, "done-late", "result through QueueEvents");
  expect(order, [0, 1, 2, "sooner", "late"], "processing order");
  once.assertOnce([late.id, sooner.id, ...now.map((j) => j.id)], "delayed queue");
  for (const [job, delay] of [[late, 3000], [sooner, 1500]]) {
    const fresh = await q.getJob(job.id);
    check(fresh.processedOn - fresh.timestamp >= delay,
      `job ${fresh.name} processed ${fresh.processedOn - fresh.timestamp} ms after it was `
      + `added, before its ${delay} ms delay`);
  }
  expect(await counts(q), { completed: 5, failed: 0, delayed: 0, wait: 0, active: 0,
    prioritized: 0 }, "job counts");
}

async function prioritised(ctx) {
  const q = queue(ctx, "prio");
  const jobs = [];
  for (const [n, priority] of [["p5", 5], ["p1", 1], ["p3", 3], ["p2a", 2], ["p4", 4],
    ["p2b", 2], ["p1b", 1]]) {
    jobs.push(await q.add(n, { n }, { priority }));
  }
  expect(await q.getPrioritizedCount(), 7, "prioritized count");
  const order = [];
  const once = onceChecker();
  worker(ctx, q, async (job) => {
    order.push(job.data.n);
    once.ran(job.id);
  }, { concurrency: 1 });
  await waitUntil(async () => (await q.getCompletedCount()) === 7, "7 prioritised jobs done");
  // Lower number first; equal priorities in insertion order.
  expect(order, ["p1", "p1b", "p2a", "p2b", "p3", "p4", "p5"], "processing order");
  once.assertOnce(jobs.map((j) => j.id), "prioritised queue");
}

async function retried(ctx) {
  const q = queue(ctx, "retry");
  const calls = new Map();
  worker(ctx, q, async (job) => {
    const n = (calls.get(job.name) || 0) + 1;
    calls.set(job.name, n);
    if (job.name === "flaky" && n <= 2) throw new Error(`flaky attempt ${n}`);
    if (job.name === "doomed") throw new Error(`doomed attempt ${n}`);
    return `ok after ${n}`;
  }, { concurrency: 1 });
  const flaky = await q.add("flaky", {}, { attempts: 3, backoff: { type: "fixed", delay: 200 } });
  const doomed = await q.add("doomed", {}, {
    attempts: 2, backoff: { type: "exponential", delay: 100 } });
  const fine = await q.add("fine", {}, { attempts: 3 });

  await waitUntil(async () => (await flaky.getState()) === "completed", "flaky job completed");
  await waitUntil(async () => (await doomed.getState()) === "failed", "doomed job failed");
  await waitUntil(async () => (await fine.getState()) === "completed", "fine job completed");
  expect(Object.fromEntries(calls), { flaky: 3, doomed: 2, fine: 1 }, "attempts per job");
  const f = await q.getJob(flaky.id);
  expect(f.returnvalue, "ok after 3", "return value of the flaky job");
  expect(f.attemptsMade, 3, "attemptsMade of the flaky job");
  const d = await q.getJob(doomed.id);
  expect(d.failedReason, "doomed attempt 2", "failedReason");
  expect(d.attemptsMade, 2, "attemptsMade of the doomed job");
  expect(d.stacktrace.length, 2, "stack traces kept for each failed attempt");
  expect(await q.getFailed().then((js) => js.map((j) => j.id)), [doomed.id], "failed set");
}

async function concurrency(ctx) {
  const q = queue(ctx, "conc");
  const n = 60;
  const jobs = await q.addBulk(Array.from({ length: n }, (_, i) => ({ name: "j", data: { i } })));
  const once = onceChecker();
  let active = 0;
  let maxActive = 0;
  let sawConcurrent = false;
  const byWorker = [0, 0];
  const processor = (w) => async (job) => {
    active++;
    maxActive = Math.max(maxActive, active);
    // The first job waits until a second one runs beside it: proof of concurrency that
    // does not depend on timing.
    if (!sawConcurrent) {
      // (maxActive, not active: the second job may have come and gone between polls.)
      await waitUntil(() => maxActive >= 2, "a second job running concurrently", 15000);
      sawConcurrent = true;
    }
    once.ran(job.id);
    byWorker[w]++;
    await new Promise((r) => setImmediate(r));
    active--;
    return job.data.i;
  };
  worker(ctx, q, processor(0), { concurrency: 5 });
  worker(ctx, q, processor(1), { concurrency: 5 });
  await waitUntil(async () => (await q.getCompletedCount()) === n,
    async () => `${n} jobs completed (${JSON.stringify(await counts(q))}, ran ${once.runs.size}, active ${active})`, 60000);
  once.assertOnce(jobs.map((j) => j.id), "two workers with concurrency 5");
  check(maxActive >= 2 && maxActive <= 10, `concurrently active jobs: ${maxActive}`);
  const done = await q.getCompleted(0, n);
  expect(done.map((j) => j.returnvalue).sort((a, b) => a - b), [...Array(n).keys()],
    "return values");
  expect(await counts(q), { completed: n, failed: 0, delayed: 0, wait: 0, active: 0,
    prioritized: 0 }, "job counts");
}

async function rateLimited(ctx) {
  const q = queue(ctx, "rate");
  const max = 3;
  const duration = 1000;
  const n = 9;
  const once = onceChecker();
  const jobs = await q.addBulk(Array.from({ length: n }, (_, i) => ({ name: "r", data: { i } })));
  worker(ctx, q, async (job) => {
    once.ran(job.id);
  }, { concurrency: 3, limiter: { max, duration } });
  await waitUntil(async () => (await q.getCompletedCount()) === n, `${n} jobs completed`, 60000);
  once.assertOnce(jobs.map((j) => j.id), "rate-limited queue");
  const started = (await q.getCompleted(0, n)).map((j) => j.processedOn).sort((a, b) => a - b);
  // With at most `max` jobs per `duration`, n jobs need (n/max - 1) full windows. This is
  // a lower bound the limiter guarantees (a slow server only makes it longer).
  const windows = Math.ceil(n / max) - 1;
  const span = started[n - 1] - started[0];
  check(span >= windows * duration - 100,
    `${n} jobs with limiter ${max}/${duration} ms all started within ${span} ms`);
}

async function flow(ctx) {
  const parents = queue(ctx, "flow-a");
  const leaves = queue(ctx, "flow-b");
  const producer = new FlowProducer({ connection: ctx.connection });
  ctx.watchErrors(producer, "flow producer");
  ctx.onCleanup(() => producer.close());

  const log = [];
  const once = onceChecker();
  const processor = async (job) => {
    log.push(["start", job.data.id]);
    once.ran(job.data.id);
    const kids = Object.values(await job.getChildrenValues()).sort();
    log.push(["end", job.data.id]);
    return kids.length ? `${job.data.id}(${kids.join(",")})` : job.data.id;
  };
  const tree = await producer.add({
    name: "root", queueName: parents.name, data: { id: "root" },
    children: [
      { name: "c1", queueName: leaves.name, data: { id: "c1" } },
      {
        name: "c2", queueName: parents.name, data: { id: "c2" },
        children: [
          { name: "g1", queueName: leaves.name, data: { id: "g1" } },
          { name: "g2", queueName: leaves.name, data: { id: "g2" } },
        ],
      },
      { name: "c3", queueName: leaves.name, data: { id: "c3" } },
    ],
  });
  expect(await tree.job.getState(), "waiting-children", "root state before its children ran");
  worker(ctx, parents, processor, { concurrency: 2 });
  worker(ctx, leaves, processor, { concurrency: 2 });

  await waitUntil(async () => (await tree.job.getState()) === "completed", "root completed");
  once.assertOnce(["root", "c1", "c2", "c3", "g1", "g2"], "flow");
  const at = (ev, id) => log.findIndex(([e, i]) => e === ev && i === id);
  for (const [parent, children] of [["root", ["c1", "c2", "c3"]], ["c2", ["g1", "g2"]]]) {
    for (const c of children) {
      check(at("end", c) < at("start", parent), `${parent} started before child ${c} ended`);
    }
  }
  const root = await parents.getJob(tree.job.id);
  expect(root.returnvalue, "root(c1,c2(g1,g2),c3)", "root result built from children");
}

export const scenarios = [
  ["bullmq.delayed", delayed],
  ["bullmq.prioritised", prioritised],
  ["bullmq.retried", retried],
  ["bullmq.concurrency", concurrency],
  ["bullmq.rate-limited", rateLimited],
  ["bullmq.flow", flow],
];
