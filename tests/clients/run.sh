#!/usr/bin/env bash
# Client-compatibility suite: real client libraries against a running Redis-compatible
# server. Runs the Python part (redis-py, RQ, limits, python-redis-lock, faktory) and the
# Node part (ioredis, BullMQ, redlock, faktory-worker), prints one line per scenario and
# closes with `clients: N passed, M failed`. Exit status 1 if any scenario failed that is
# not listed in BASALT_CLIENTS_ALLOW_FAIL, 2 on a setup problem (libraries missing,
# server down).
#
# Usage: tests/clients/run.sh --port P [--host H] [--timeout S] [--only NAME...] [-v]
#        (--only takes scenario names or patterns such as 'bullmq.*'; list them with
#        python3 tests/clients/run_python.py --list and node tests/clients/node/run.mjs --list)
#
# Needs: pip install -r tests/clients/requirements.txt; (cd tests/clients/node && npm ci).
# PYTHON and NODE pick the interpreters (default python3, node). CLIENTS_TARGET=redis skips
# the Basalt-only scenarios (jobs.*, faktory.*); BASALT_FAKTORY_PORT is Basalt's
# faktory-port for the faktory.* ones.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-python3}"
node="${NODE:-node}"

if [ $# -eq 0 ]; then
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi

# Each runner gets the same arguments, with --only narrowed to the names that are its own
# (a pattern matching nothing in one language is not an error here).
only=()
rest=()
while [ $# -gt 0 ]; do
  case "$1" in
    --only)
      shift
      while [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; do only+=("$1"); shift; done
      ;;
    *) rest+=("$1"); shift ;;
  esac
done

select_only() { # $1 = file with the runner's scenario names; prints the --only args
  local names="$1" pat n sel=()
  for pat in "${only[@]}"; do
    while IFS= read -r n; do
      # shellcheck disable=SC2053  # the pattern is meant to glob
      if [[ "$n" == $pat ]]; then sel+=("$n"); fi
    done <"$names"
  done
  printf '%s\n' "${sel[@]}"
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0
status=0

run_part() { # $1 = label, rest = runner command
  local label="$1"; shift
  local args=("${rest[@]}")
  if [ ${#only[@]} -gt 0 ]; then
    "$@" --list >"$tmp/names" 2>"$tmp/err" || { cat "$tmp/err" >&2; status=2; return; }
    mapfile -t sel < <(select_only "$tmp/names")
    if [ ${#sel[@]} -eq 0 ] || [ -z "${sel[0]}" ]; then return; fi
    args+=(--only "${sel[@]}")
  fi
  echo "== $label"
  "$@" "${args[@]}" | tee "$tmp/out"
  local rc=${PIPESTATUS[0]}
  local line
  line="$(grep -E "^$label: [0-9]+ passed, [0-9]+ failed$" "$tmp/out" | tail -1)"
  if [ -z "$line" ] || [ "$rc" -eq 2 ]; then
    echo "$label: the runner did not finish (exit $rc)" >&2
    status=2
    return
  fi
  passed=$((passed + $(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')))
  failed=$((failed + $(echo "$line" | sed -E 's/.* ([0-9]+) failed$/\1/')))
}

run_part python "$python" "$here/run_python.py"
run_part node "$node" "$here/node/run.mjs"

if [ -n "${BASALT_CLIENTS_ALLOW_FAIL:-}" ]; then
  echo "clients: allowed to fail (BASALT_CLIENTS_ALLOW_FAIL): $(echo "$BASALT_CLIENTS_ALLOW_FAIL" | tr -s ',\n\t ' ' ')"
fi
echo "clients: $passed passed, $failed failed"
if [ "$status" -ne 0 ]; then exit "$status"; fi
[ "$failed" -eq 0 ]
