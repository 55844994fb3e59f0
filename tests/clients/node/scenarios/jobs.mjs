// Basalt's native job queues from Node: ioredis on the JOB.* commands (plain `call`),
// and the npm `faktory-worker` client and worker on Basalt's Faktory port.
//
// Basalt-only: the runner skips `jobs.*` and `faktory.*` when CLIENTS_TARGET=redis. The
// Faktory scenario needs BASALT_FAKTORY_PORT (`.ci/run` starts basalt-server with
// `--faktory-port`).

import { check, expect, waitUntil } from "./common.mjs";

/** A RESP2 map reply (flat array) as an object. */
function asObject(reply) {
  if (reply === null) return null;
  const o = {};
  for (let i = 0; i < reply.length; i += 2) o[reply[i]] = reply[i + 1];
  return o;
}

async function jobGet(r, jid) {
  return asObject(await r.call("JOB.GET", jid));
}

async function ioredisPushFetchAck(ctx) {
  const r = ctx.client();
  const q = ctx.key("jobs");
  const a = await r.call("JOB.PUSH", q, JSON.stringify({ n: 1 }), "PRIORITY", "2");
  const b = await r.call("JOB.PUSH", q, JSON.stringify({ n: 2 }), "PRIORITY", "8",
    "RETRY", "1", "BACKOFF", "FIXED", "10");
  const jobs = await r.call("JOB.FETCH", q, "COUNT", "2", "WORKER", "node-1");
  const fetched = jobs.map(asObject);
  expect(fetched.map((j) => j.jid), [b, a], "strict priority");
  expect(fetched.map((j) => j.attempt), [1, 1], "first attempts");
  // b fails once (retry 1, 10 ms backoff), then completes; a completes at once.
  const out = asObject(await r.call("JOB.FAIL", b, fetched[0].token, "transient"));
  expect(out.state, "failed", "FAIL with a retry left");
  expect(await r.call("JOB.ACK", a, fetched[1].token, "RESULT", "done-a"), "done-a", "ACK a");
  const again = await waitUntil(async () => {
    const got = await r.call("JOB.FETCH", q);
    return got ? asObject(got[0]) : null;
  }, "b is delivered again after its backoff");
  expect([again.jid, again.attempt, again.error], [b, 2, "transient"], "retried b");
  // An hour from now: later than the default 30 min visibility deadline.
  const newDeadline = await r.call("JOB.EXTEND", b, again.token, "3600000");
  check(newDeadline > again.deadline, `EXTEND moved the deadline (${newDeadline} <= ${again.deadline})`);
  await r.call("JOB.ACK", b, again.token);
  const info = await jobGet(r, b);
  expect([info.state, info.attempts, info.failures, info.errors], ["completed", 2, 1, ["transient"]],
    "b's history");
  const stats = asObject(await r.call("QUEUE.STATS", q));
  expect([stats.completed, stats.waiting, stats.active], [2, 0, 0], "queue stats");
  // WAIT answers at once for a finished job.
  expect(asObject(await r.call("JOB.WAIT", a, "TIMEOUT", "1000")).state, "completed", "JOB.WAIT");
}

async function faktoryWorkerPushProcessRetry(ctx) {
  const { Client, Worker } = await import("faktory-worker");
  const port = Number(process.env.BASALT_FAKTORY_PORT || 0);
  check(port > 0, "BASALT_FAKTORY_PORT is not set (basalt-server --faktory-port)");
  const r = ctx.client();
  // Retries on the engine's backoff (1 s first) instead of Faktory's 15+ s.
  const old = (await r.config("GET", "faktory-retry-backoff"))[1];
  await r.config("SET", "faktory-retry-backoff", "job");
  ctx.onCleanup(() => r.config("SET", "faktory-retry-backoff", old));

  const q = `${ctx.prefix}-fq`;
  const client = new Client({ host: ctx.host, port });
  ctx.onCleanup(() => client.close());
  const push = async (jobtype, args, jid) => {
    const job = client.job(jobtype, ...args);
    job.queue = q;
    job.jid = jid;
    job.retry = 3;
    return job.push();
  };
  const addJid = `${ctx.prefix}-add`;
  const flakyJid = `${ctx.prefix}-flaky`;
  expect(await push("add", [2, 3], addJid), addJid, "PUSH add");
  expect(await push("flaky", [ctx.key("tries")], flakyJid), flakyJid, "PUSH flaky");
  // PUSHB with one bad job: the others are pushed, the bad one is reported.
  const rejected = await client.pushBulk([
    { jid: `${ctx.prefix}-bulk1`, jobtype: "add", args: [1, 1], queue: q, retry: 3 },
    { jid: `${ctx.prefix}-bulk2`, jobtype: "", args: [], queue: q },
  ]);
  check(Object.keys(rejected).length === 1 && rejected[`${ctx.prefix}-bulk2`],
    `PUSHB rejects only the job without a jobtype: ${JSON.stringify(rejected)}`);
  const info = await jobGet(r, addJid);
  expect([info.state, info.queue], ["waiting", q], "a Faktory job seen by JOB.GET");

  const sums = [];
  const worker = new Worker({
    host: ctx.host,
    port,
    queues: [q],
    concurrency: 2,
    registry: {
      add: async (a, b) => {
        sums.push(a + b);
        await r.rpush(ctx.key("sums"), String(a + b));
      },
      flaky: async (key) => {
        if ((await r.incr(key)) === 1) throw new Error("first attempt fails");
      },
    },
  });
  ctx.watchErrors(worker, "faktory worker");
  ctx.onCleanup(() => worker.stop());
  await worker.work();

  for (const jid of [addJid, flakyJid, `${ctx.prefix}-bulk1`]) {
    await waitUntil(async () => (await jobGet(r, jid)).state === "completed",
      async () => `${jid} completed (state ${(await jobGet(r, jid)).state})`, 60000);
  }
  expect((await r.lrange(ctx.key("sums"), 0, -1)).sort(), ["2", "5"], "the worker's results");
  const flaky = await jobGet(r, flakyJid);
  expect([flaky.attempts, flaky.failures], [2, 1], "one failure, then success");
  expect(JSON.parse(flaky.errors[0]).message, "first attempt fails", "the failure reported");
  const infoDoc = await client.info();
  check(infoDoc.server && infoDoc.server.description === "Basalt", "INFO answers Basalt");
}

export const scenarios = [
  ["jobs.ioredis_push_fetch_ack", ioredisPushFetchAck],
  ["faktory.node_worker_push_process_retry", faktoryWorkerPushProcessRetry],
];
