#!/usr/bin/env python3
"""Client-compatibility suite, Python part: redis-py, RQ, limits and python-redis-lock run
unmodified against a Redis-compatible server and must see real Redis behaviour; redis-py
on Basalt's JOB.* commands and the `faktory` client on its Faktory port (Basalt-only).

Usage:
    python3 tests/clients/run_python.py --port P [--host H] [--only NAME ...]
                                        [--timeout S] [--list] [--verbose]

Every scenario runs in its own child process (and process group) with a time limit, so a
library that hangs on a missing command fails that scenario instead of the whole run.
Prints one line per scenario:

    PASS name
    FAIL name: reason
    XFAIL name: reason      (failed, but listed in BASALT_CLIENTS_ALLOW_FAIL)
    XPASS name              (passed although listed in BASALT_CLIENTS_ALLOW_FAIL)
    SKIP name: reason       (a Basalt-only scenario while CLIENTS_TARGET=redis)

and closes with `python: N passed, M failed`, where M counts only failures that are not
allowed. BASALT_CLIENTS_ALLOW_FAIL holds scenario names separated by commas or
whitespace. CLIENTS_TARGET=redis skips the Basalt-only scenarios (`jobs.*`, `faktory.*`:
native commands Redis does not have); BASALT_FAKTORY_PORT is Basalt's `faktory-port`.
Exit status: 0 when M is 0, 1 otherwise, 2 on a usage or setup problem
(libraries missing, server unreachable). Needs `pip install -r tests/clients/requirements.txt`.
"""

import argparse
import fnmatch
import json
import os
import signal
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
SCEN_DIR = os.path.join(HERE, "python")
MODULES = ["scen_redis_py", "scen_rq", "scen_limits", "scen_redis_lock", "scen_jobs"]
# Scenarios of Basalt's own features, skipped against Redis (CLIENTS_TARGET=redis).
BASALT_ONLY = ["jobs.*", "faktory.*"]
VERDICT = "@@verdict "
# The parent kills a scenario's process group this long after the scenario's own limit.
CLEANUP_GRACE_S = 30


def allowed_failures():
    """Scenario names (fnmatch patterns) from BASALT_CLIENTS_ALLOW_FAIL."""
    raw = os.environ.get("BASALT_CLIENTS_ALLOW_FAIL", "")
    return [n for n in raw.replace(",", " ").split() if n]


def is_allowed(name, patterns):
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def load_scenarios():
    """[(name, fn)] from every scenario module, in suite order."""
    sys.path.insert(0, SCEN_DIR)
    out = []
    for mod in MODULES:
        out.extend(__import__(mod).SCENARIOS)
    return out


class ScenarioTimeout(Exception):
    """Raised in a scenario by SIGALRM when it runs past --timeout."""


def run_child(args):
    """Runs one scenario in this process and prints a verdict line (VERDICT + JSON)."""
    sys.path.insert(0, SCEN_DIR)
    from common import Ctx  # noqa: PLC0415 - only the child needs the libraries

    scenarios = dict(load_scenarios())
    ctx = Ctx(args.host, args.port, args.child)

    def on_alarm(_sig, _frame):
        raise ScenarioTimeout(f"scenario did not finish within {args.timeout:.0f} s")

    # The traceback of the alarm shows where the scenario was stuck.
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(max(1, int(args.timeout)))
    verdict = {"ok": True}
    try:
        scenarios[args.child](ctx)
    except AssertionError as e:
        verdict = {"ok": False, "reason": str(e) or "assertion failed"}
        traceback.print_exc()
    except Exception as e:  # noqa: BLE001 - the library's own error is the reason
        name = type(e).__name__
        if type(e).__module__ not in ("builtins", "__main__"):
            name = f"{type(e).__module__}.{name}"
        verdict = {"ok": False, "reason": f"{name}: {e}"}
        traceback.print_exc()
    signal.alarm(0)
    # The verdict comes first: cleanup may itself hang on a broken server, and the parent
    # kills this process group if it does.
    sys.stderr.flush()
    print("\n" + VERDICT + json.dumps(verdict), flush=True)
    signal.alarm(CLEANUP_GRACE_S)
    try:
        ctx.cleanup()
    except ScenarioTimeout:
        pass
    # Leftover non-daemon threads (a library's renewal thread after a failure) must not
    # keep the child alive.
    os._exit(0)


def run_one(name, args):
    """Runs scenario `name` in a child process group. Returns (ok, reason, output)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--host", args.host,
           "--port", str(args.port), "--timeout", str(args.timeout), "--child", name]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    timed_out = False
    try:
        out, _ = p.communicate(timeout=args.timeout + CLEANUP_GRACE_S)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
    finally:
        # Worker processes a scenario started must not outlive it.
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for line in reversed(out.splitlines()):
        if line.startswith(VERDICT):
            verdict = json.loads(line[len(VERDICT):])
            return verdict["ok"], verdict.get("reason", ""), out
    if timed_out:
        return False, f"killed after {args.timeout + CLEANUP_GRACE_S:.0f} s", out
    return False, f"scenario process exited with {p.returncode} without a verdict", out


def one_line(text, limit=300):
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--only", nargs="*", default=[],
                    help="run only scenarios matching these names/patterns")
    ap.add_argument("--timeout", type=float, default=120.0, help="per scenario, seconds")
    ap.add_argument("--list", action="store_true", help="list scenario names and exit")
    ap.add_argument("--verbose", "-v", action="store_true",
                    help="print the output of every failing scenario, allowed or not")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()

    try:
        import faktory  # noqa: F401, PLC0415
        import limits  # noqa: F401, PLC0415
        import redis  # noqa: PLC0415
        import redis_lock  # noqa: F401, PLC0415
        import rq  # noqa: F401, PLC0415
    except ImportError as e:
        print(f"missing library ({e}): pip install -r tests/clients/requirements.txt",
              file=sys.stderr)
        sys.exit(2)

    if args.child:
        run_child(args)
    names = [n for n, _ in load_scenarios()]
    if args.list:
        print("\n".join(names))
        return
    if args.port is None:
        ap.error("--port is required")
    if args.only:
        names = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in args.only)]
        if not names:
            ap.error(f"no scenario matches {args.only}")
    try:
        redis.Redis(host=args.host, port=args.port, socket_timeout=5).ping()
    except redis.RedisError as e:
        print(f"cannot reach {args.host}:{args.port}: {e}", file=sys.stderr)
        sys.exit(2)

    allow = allowed_failures()
    against_redis = os.environ.get("CLIENTS_TARGET", "basalt") == "redis"
    passed, failed, xfailed, xpassed, skipped = 0, [], [], [], 0
    for name in names:
        if against_redis and is_allowed(name, BASALT_ONLY):
            skipped += 1
            print(f"SKIP {name}: Basalt-only (CLIENTS_TARGET=redis)", flush=True)
            continue
        start = time.monotonic()
        ok, reason, out = run_one(name, args)
        secs = time.monotonic() - start
        listed = is_allowed(name, allow)
        if ok:
            passed += 1
            if listed:
                xpassed.append(name)
                print(f"XPASS {name} ({secs:.1f} s): listed in BASALT_CLIENTS_ALLOW_FAIL, "
                      "remove it from the list", flush=True)
            else:
                print(f"PASS {name} ({secs:.1f} s)", flush=True)
            continue
        if listed:
            xfailed.append(name)
            print(f"XFAIL {name}: {one_line(reason)}", flush=True)
        else:
            failed.append(name)
            print(f"FAIL {name}: {one_line(reason)}", flush=True)
        if args.verbose or not listed:
            for line in out.rstrip().splitlines()[-60:]:
                print(f"    | {line}")

    if xfailed:
        print(f"python: {len(xfailed)} known failures allowed by BASALT_CLIENTS_ALLOW_FAIL: "
              + ", ".join(xfailed))
    if xpassed:
        print(f"python: {len(xpassed)} listed in BASALT_CLIENTS_ALLOW_FAIL now pass: "
              + ", ".join(xpassed))
    if skipped:
        print(f"python: {skipped} Basalt-only scenarios skipped (CLIENTS_TARGET=redis)")
    print(f"python: {passed} passed, {len(failed)} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
