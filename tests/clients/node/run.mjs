#!/usr/bin/env node
// Client-compatibility suite, Node part: ioredis, BullMQ and redlock run unmodified
// against a Redis-compatible server and must see real Redis behaviour; ioredis on Basalt's
// JOB.* commands and faktory-worker on its Faktory port (Basalt-only: skipped with
// CLIENTS_TARGET=redis; BASALT_FAKTORY_PORT is Basalt's `faktory-port`).
//
// Usage: node tests/clients/node/run.mjs --port P [--host H] [--only NAME...]
//                                        [--timeout S] [--list] [--verbose]
//
// Every scenario runs in its own child process with a time limit, so a library that
// hangs on a missing command fails that scenario instead of the whole run. Prints one
// line per scenario (PASS name / FAIL name: reason / XFAIL name: reason for failures
// listed in BASALT_CLIENTS_ALLOW_FAIL / XPASS name for listed scenarios that pass / SKIP
// name for Basalt-only scenarios against Redis) and
// closes with `node: N passed, M failed`, M counting only failures that are not allowed.
// Exit status: 0 when M is 0, 1 otherwise, 2 on a usage or setup problem.
// Install the libraries first: `npm ci` in tests/clients/node.

import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const SELF = fileURLToPath(import.meta.url);
const VERDICT = "@@verdict ";
// The parent kills a scenario process this long after the scenario's own time limit.
const CLEANUP_GRACE_S = 30;
const MODULES = ["./scenarios/ioredis.mjs", "./scenarios/bullmq.mjs", "./scenarios/redlock.mjs",
  "./scenarios/jobs.mjs"];
// Scenarios of Basalt's own features, skipped against Redis (CLIENTS_TARGET=redis).
const BASALT_ONLY = ["jobs.*", "faktory.*"];

function parseArgs(argv) {
  const a = { host: "127.0.0.1", port: null, only: [], timeout: 120, list: false,
    verbose: false, child: null };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i];
    if (v === "--host") a.host = argv[++i];
    else if (v === "--port") a.port = Number(argv[++i]);
    else if (v === "--timeout") a.timeout = Number(argv[++i]);
    else if (v === "--list") a.list = true;
    else if (v === "--verbose" || v === "-v") a.verbose = true;
    else if (v === "--child") a.child = argv[++i];
    else if (v === "--only") {
      while (i + 1 < argv.length && !argv[i + 1].startsWith("--")) a.only.push(argv[++i]);
    } else {
      console.error(`unknown argument ${v}`);
      process.exit(2);
    }
  }
  return a;
}

/** fnmatch-style `*` and `?` patterns. */
function matches(name, pattern) {
  const re = new RegExp("^" + pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*").replace(/\?/g, ".") + "$");
  return re.test(name);
}

async function loadScenarios() {
  const all = [];
  for (const m of MODULES) all.push(...(await import(m)).scenarios);
  return all;
}

async function runChild(args) {
  const { Ctx, withTimeout } = await import("./scenarios/common.mjs");
  const scenarios = new Map(await loadScenarios());
  const ctx = new Ctx(args.host, args.port, args.child);
  let verdict = { ok: true };
  try {
    await withTimeout(scenarios.get(args.child)(ctx), args.timeout * 1000, "scenario");
  } catch (e) {
    console.log(e && e.stack ? e.stack : String(e));
    let reason = e && e.message ? e.message : String(e);
    if (ctx.errors.length) reason += ` [library errors: ${ctx.errors.join("; ")}]`;
    verdict = { ok: false, reason };
  }
  // The verdict comes first: cleanup (closing workers, deleting keys) may itself hang on a
  // broken server, and the parent kills this process if it does.
  console.log("\n" + VERDICT + JSON.stringify(verdict));
  await ctx.cleanup();
  // Libraries may keep timers or sockets open after a failure: the verdict is final.
  process.exit(0);
}

function runOne(name, args) {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [SELF, "--host", args.host, "--port", String(args.port),
      "--timeout", String(args.timeout), "--child", name],
    { stdio: ["ignore", "pipe", "pipe"], detached: true });
    let out = "";
    p.stdout.on("data", (d) => { out += d; });
    p.stderr.on("data", (d) => { out += d; });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try { process.kill(-p.pid, "SIGKILL"); } catch { /* already gone */ }
    }, (args.timeout + CLEANUP_GRACE_S) * 1000);
    p.on("close", (code) => {
      clearTimeout(timer);
      try { process.kill(-p.pid, "SIGKILL"); } catch { /* already gone */ }
      const line = out.split("\n").reverse().find((l) => l.startsWith(VERDICT));
      if (line) {
        const v = JSON.parse(line.slice(VERDICT.length));
        return resolve({ ok: v.ok, reason: v.reason || "", out });
      }
      if (timedOut) return resolve({ ok: false, reason: `timed out after ${args.timeout} s`, out });
      resolve({ ok: false, reason: `scenario process exited with ${code} without a verdict`, out });
    });
  });
}

function oneLine(s, limit = 300) {
  s = s.split(/\s+/).join(" ").trim();
  return s.length <= limit ? s : s.slice(0, limit - 3) + "...";
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  try {
    await import("ioredis");
    await import("bullmq");
    await import("redlock");
    await import("faktory-worker");
  } catch (e) {
    console.error(`missing library (${e.message}): run npm ci in tests/clients/node`);
    process.exit(2);
  }
  if (args.child) return runChild(args);
  let names = (await loadScenarios()).map(([n]) => n);
  if (args.list) {
    console.log(names.join("\n"));
    return;
  }
  if (!args.port) {
    console.error("--port is required");
    process.exit(2);
  }
  if (args.only.length) {
    names = names.filter((n) => args.only.some((p) => matches(n, p)));
    if (!names.length) {
      console.error(`no scenario matches ${args.only.join(" ")}`);
      process.exit(2);
    }
  }
  const { default: Redis } = await import("ioredis");
  const probe = new Redis({ host: args.host, port: args.port, lazyConnect: true,
    maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on("error", () => {}); // reported below through the rejected connect()
  try {
    await probe.connect();
    await probe.ping();
  } catch (e) {
    console.error(`cannot reach ${args.host}:${args.port}: ${e.message}`);
    process.exit(2);
  }
  probe.disconnect();

  const allow = (process.env.BASALT_CLIENTS_ALLOW_FAIL || "").split(/[\s,]+/).filter(Boolean);
  let passed = 0;
  const failed = [];
  const xfailed = [];
  const xpassed = [];
  const againstRedis = process.env.CLIENTS_TARGET === "redis";
  let skipped = 0;
  for (const name of names) {
    if (againstRedis && BASALT_ONLY.some((p) => matches(name, p))) {
      skipped++;
      console.log(`SKIP ${name}: Basalt-only (CLIENTS_TARGET=redis)`);
      continue;
    }
    const start = Date.now();
    const { ok, reason, out } = await runOne(name, args);
    const secs = ((Date.now() - start) / 1000).toFixed(1);
    const listed = allow.some((p) => matches(name, p));
    if (ok) {
      passed++;
      if (listed) {
        xpassed.push(name);
        console.log(`XPASS ${name} (${secs} s): listed in BASALT_CLIENTS_ALLOW_FAIL, remove it from the list`);
      } else {
        console.log(`PASS ${name} (${secs} s)`);
      }
      continue;
    }
    if (listed) {
      xfailed.push(name);
      console.log(`XFAIL ${name}: ${oneLine(reason)}`);
    } else {
      failed.push(name);
      console.log(`FAIL ${name}: ${oneLine(reason)}`);
    }
    if (args.verbose || !listed) {
      for (const line of out.trimEnd().split("\n").slice(-60)) console.log(`    | ${line}`);
    }
  }
  if (xfailed.length) {
    console.log(`node: ${xfailed.length} known failures allowed by BASALT_CLIENTS_ALLOW_FAIL: ${xfailed.join(", ")}`);
  }
  if (xpassed.length) {
    console.log(`node: ${xpassed.length} listed in BASALT_CLIENTS_ALLOW_FAIL now pass: ${xpassed.join(", ")}`);
  }
  if (skipped) console.log(`node: ${skipped} Basalt-only scenarios skipped (CLIENTS_TARGET=redis)`);
  console.log(`node: ${passed} passed, ${failed.length} failed`);
  process.exit(failed.length ? 1 : 0);
}

main();
