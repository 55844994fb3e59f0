#!/usr/bin/env node
// Load for bench/jobs-pair.sh: push N jobs, then process them all (fetch + complete), and
// print `jobs_per_s push_ms process_ms` for one run.
//
//   node bench/jobs_pair_load.mjs MODE PORT JOBS PAYLOAD_BYTES CONCURRENCY
//
// MODE:
//   bullmq        BullMQ on redis-server: Queue.addBulk in chunks of 1000, then a Worker
//                 with CONCURRENCY and an empty processor until every job completed.
//   basalt        Basalt's JOB.* through ioredis: JOB.PUSH pipelined in chunks of 1000,
//                 then CONCURRENCY loops (one connection each) of
//                 `JOB.FETCH q BLOCK 1000` + `JOB.ACK jid token`: one job at a time per
//                 slot, as a BullMQ worker slot takes one job at a time.
//   basalt-pipe   as basalt, but each loop sends the ACK of its job and the FETCH of the
//                 next in one write (one round trip per job, as BullMQ's worker, whose
//                 completing script hands out the next job).
//   basalt-batch  as basalt, but each loop fetches COUNT 100 and pipelines the ACKs.
//
// Both keep at most 1000 completed jobs (BullMQ removeOnComplete: 1000; Basalt's default
// retention). The payload is `{"data": "xxx..."}` of PAYLOAD_BYTES characters in both.
// Libraries come from tests/clients/node (run `npm ci` there first).

import { createRequire } from "node:module";

const require = createRequire(new URL("../tests/clients/node/package.json", import.meta.url));
const Redis = require("ioredis");

const [mode, portArg, jobsArg, sizeArg, concArg] = process.argv.slice(2);
const port = Number(portArg);
const total = Number(jobsArg);
const size = Number(sizeArg);
const concurrency = Number(concArg);
if (!["bullmq", "basalt", "basalt-pipe", "basalt-batch"].includes(mode) || !port || !total || !concurrency) {
  console.error("usage: jobs_pair_load.mjs bullmq|basalt|basalt-pipe|basalt-batch PORT JOBS PAYLOAD_BYTES CONCURRENCY");
  process.exit(2);
}
const data = { data: "x".repeat(size) };
const queueName = `bench-${process.pid}-${Date.now()}`;
const CHUNK = 1000;

async function bullmq() {
  const { Queue, Worker } = require("bullmq");
  const connection = { host: "127.0.0.1", port, maxRetriesPerRequest: null };
  const q = new Queue(queueName, { connection, defaultJobOptions: { removeOnComplete: 1000 } });
  await q.waitUntilReady();
  const t0 = performance.now();
  for (let i = 0; i < total; i += CHUNK) {
    const n = Math.min(CHUNK, total - i);
    await q.addBulk(Array.from({ length: n }, () => ({ name: "j", data })));
  }
  const t1 = performance.now();
  let done = 0;
  let finish;
  const finished = new Promise((r) => { finish = r; });
  const w = new Worker(queueName, async () => {}, { connection, concurrency, autorun: false });
  w.on("completed", () => {
    done++;
    if (done === total) finish();
  });
  w.run();
  await finished;
  const t2 = performance.now();
  await w.close();
  await q.obliterate({ force: true });
  await q.close();
  return [t1 - t0, t2 - t1];
}

async function basalt(how) {
  const batch = how === "batch";
  const r = new Redis({ host: "127.0.0.1", port });
  const payload = JSON.stringify(data);
  const t0 = performance.now();
  for (let i = 0; i < total; i += CHUNK) {
    const n = Math.min(CHUNK, total - i);
    const p = r.pipeline();
    for (let k = 0; k < n; k++) p.call("JOB.PUSH", queueName, payload);
    const res = await p.exec();
    for (const [err] of res) if (err) throw err;
  }
  const t1 = performance.now();
  let done = 0;
  // The clock stops at the last ACK: loops still blocked in a FETCH on the empty queue
  // (up to its 1 s BLOCK) are not part of the work.
  let acked = 0;
  let t2 = 0;
  const ackedSome = (n) => {
    acked += n;
    if (acked >= total && t2 === 0) t2 = performance.now();
  };
  // One round trip per job: the ACK of the job in hand travels with the next FETCH.
  const pipelined = async () => {
    const c = new Redis({ host: "127.0.0.1", port });
    let held = null;
    while (done < total || held) {
      const p = c.pipeline();
      if (held) p.call("JOB.ACK", held[0], held[1]);
      const fetching = done < total;
      if (fetching) p.call("JOB.FETCH", queueName, "BLOCK", "1000");
      const res = await p.exec();
      for (const [err] of res) if (err) throw err;
      if (held) ackedSome(1);
      held = null;
      const got = fetching ? res[res.length - 1][1] : null;
      if (got) {
        held = fields(got[0]);
        done += 1;
      }
    }
    c.disconnect();
  };
  const loop = async () => {
    const c = new Redis({ host: "127.0.0.1", port });
    while (done < total) {
      const got = batch
        ? await c.call("JOB.FETCH", queueName, "COUNT", "100", "BLOCK", "1000")
        : await c.call("JOB.FETCH", queueName, "BLOCK", "1000");
      if (!got) continue;
      if (got.length === 1) {
        const [jid, token] = fields(got[0]);
        await c.call("JOB.ACK", jid, token);
        ackedSome(1);
      } else {
        const p = c.pipeline();
        for (const j of got) {
          const [jid, token] = fields(j);
          p.call("JOB.ACK", jid, token);
        }
        const res = await p.exec();
        for (const [err] of res) if (err) throw err;
        ackedSome(got.length);
      }
      done += got.length;
    }
    c.disconnect();
  };
  await Promise.all(Array.from({ length: concurrency }, how === "pipe" ? pipelined : loop));
  await r.del(queueName, `{${queueName}}:events`);
  r.disconnect();
  return [t1 - t0, t2 - t1];
}

/** jid and token of a fetched job (a RESP2 flat map). */
function fields(job) {
  let jid;
  let token;
  for (let i = 0; i < job.length; i += 2) {
    if (job[i] === "jid") jid = job[i + 1];
    else if (job[i] === "token") token = job[i + 1];
  }
  return [jid, token];
}

const [pushMs, processMs] = mode === "bullmq" ? await bullmq() : await basalt(mode.slice(7));
const rate = total / ((pushMs + processMs) / 1000);
console.log(`${rate.toFixed(0)} ${pushMs.toFixed(0)} ${processMs.toFixed(0)}`);
process.exit(0);
