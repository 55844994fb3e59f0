// Shared helpers for the Node client-compatibility scenarios.
//
// A scenario is `async (ctx) => {}` that throws on failure and returns on success. It never
// asserts how long something took: waits are bounded by `waitUntil`, which fails with a
// message naming what never happened. Every scenario works under its own random key prefix
// (`ctx.prefix`) and deletes its keys at the end, so scenarios can share one server.

import { randomBytes } from "node:crypto";
import Redis from "ioredis";

// Errors that library objects emitted ('error' events of workers, queues, redlock). One
// scenario runs per process, so a module-level list is the scenario's list. A healthy run
// against Redis emits none; waitUntil stops waiting as soon as one arrives, so a server
// that lacks a command fails the scenario at once instead of at the end of a long wait.
const libraryErrors = [];

/** Records a library error (deduplicated, at most 5) for the failure report. */
export function recordError(label, e) {
  const msg = `${label}: ${e && e.message ? e.message : e}`;
  if (!libraryErrors.includes(msg) && libraryErrors.length < 5) libraryErrors.push(msg);
}

export class Ctx {
  constructor(host, port, name) {
    this.host = host;
    this.port = port;
    this.name = name;
    this.prefix = "cc-" + randomBytes(5).toString("hex");
    this.clients = [];
    this.closers = [];
    this.errors = libraryErrors;
  }

  /** Records 'error' events of a library object (a Worker, Redlock...) for the report. */
  watchErrors(emitter, label) {
    emitter.on("error", (e) => recordError(label, e));
    return emitter;
  }

  /** Connection options for ioredis and BullMQ. */
  get connection() {
    // BullMQ requires maxRetriesPerRequest: null for blocking connections.
    return { host: this.host, port: this.port, maxRetriesPerRequest: null };
  }

  /** A new ioredis client, closed by cleanup(). */
  client(opts = {}) {
    const c = new Redis({ host: this.host, port: this.port, ...opts });
    this.clients.push(c);
    return c;
  }

  key(...parts) {
    return [this.prefix, ...parts].join(":");
  }

  /** Registers an async function cleanup() runs (closing workers, queues...). */
  onCleanup(fn) {
    this.closers.push(fn);
  }

  async cleanup() {
    for (const fn of this.closers.reverse()) {
      try {
        await withTimeout(fn(), 10000, "cleanup step");
      } catch {
        // best effort: the scenario's own outcome is what counts
      }
    }
    const c = new Redis({ host: this.host, port: this.port, lazyConnect: true });
    try {
      await c.connect();
      let cursor = "0";
      do {
        const [next, keys] = await c.scan(cursor, "MATCH", `*${this.prefix}*`, "COUNT", 500);
        cursor = next;
        if (keys.length) await c.del(...keys);
      } while (cursor !== "0");
    } catch {
      // best effort
    }
    c.disconnect();
    for (const cl of this.clients) cl.disconnect();
  }
}

export function expect(got, want, what) {
  const g = JSON.stringify(got);
  const w = JSON.stringify(want);
  if (g !== w) throw new Error(`${what}: expected ${w}, got ${g}`);
}

export function check(cond, what) {
  if (!cond) throw new Error(what);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `pred()` (sync or async) until truthy; fails after `timeoutMs`. `what` names the
 * awaited condition (a string, or a function giving one with details at failure time).
 */
export async function waitUntil(pred, what, timeoutMs = 20000, stepMs = 20) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (libraryErrors.length || Date.now() > deadline) {
      const label = typeof what === "function" ? await what() : what;
      if (libraryErrors.length) throw new Error(`${label}: gave up waiting after a library error`);
      throw new Error(`${label}: still not true after ${Math.round(timeoutMs / 1000)} s`);
    }
    await sleep(stepMs);
  }
}

/** Rejects with a clear message if `promise` does not settle within `ms`. */
export function withTimeout(promise, ms, what) {
  let t;
  const timeout = new Promise((_, reject) => {
    t = setTimeout(() => reject(new Error(`${what}: no answer after ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(t));
}

/** Expects `promise` to reject; returns the error. */
export async function rejects(promise, what) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  throw new Error(`${what}: did not fail`);
}
