#!/usr/bin/env python3
"""Atomic read-modify-writes per request, counted from a callgrind output.

Callgrind counts a `lock`-prefixed instruction as one instruction, but on current x86
each one takes some 10 to 20 cycles and drains the store buffer (a full barrier); this
script shows how many a request executes and where. Record with instruction-level positions, e.g.

    CG_OPTS="--dump-instr=yes --compress-strings=no" ONLY='HSET|HGET' bench/callgrind-pair.sh 20000 0 16

then, for one dumped test (`<kind>.<pid>.out.<n>`, kept in the directory the script
prints):

    bench/callgrind-locked.py /tmp/tmp.X/basalt.123.out.2 20000

(`--compress-strings=no`: later dumps of one run refer to names defined in earlier
ones.) It disassembles every object the dump names (objdump) and sums the executions of
`lock`-prefixed and `xchg` instructions (callgrind records object-relative addresses).
"""
import collections
import re
import subprocess
import sys


def name(table, text):
    """A name from `ob=`/`fn=`: with --compress-strings (the default) the first use reads
    `(id) name` and later ones `(id)`."""
    m = re.match(r"\((\d+)\)\s*(.*)", text.strip())
    if not m:
        return text.strip()
    if m.group(2):
        table[m.group(1)] = m.group(2)
    return table.get(m.group(1), text.strip())


def main():
    dump, requests = sys.argv[1], int(sys.argv[2])
    cost = collections.defaultdict(collections.Counter)
    fn_at = {}
    ob = fn = None
    in_call = False
    npos = 1
    obs, fns = {}, {}
    for line in open(dump, errors="replace"):
        line = line.rstrip("\n")
        if line.startswith("positions:"):
            npos = len(line.split()) - 1
        elif line.startswith("ob="):
            ob = name(obs, line[3:])
        elif line.startswith("fn="):
            fn = name(fns, line[3:])
        elif line.startswith("calls="):
            in_call = True  # the next cost line is the call's inclusive cost
        elif line.startswith("0x"):
            if in_call:
                in_call = False
                continue
            parts = line.split()
            addr = int(parts[0], 16)
            cost[ob][addr] += int(parts[npos]) if len(parts) > npos else 0
            fn_at[(ob, addr)] = fn
    if npos < 2:
        sys.exit("record with --dump-instr=yes (instruction addresses are needed)")
    total = 0
    per = collections.Counter()
    for ob, costs in cost.items():
        if not ob or not ob.startswith("/"):
            continue
        dis = subprocess.run(["objdump", "-d", "--no-show-raw-insn", ob],
                             capture_output=True, text=True).stdout
        for line in dis.splitlines():
            m = re.match(r"^\s+([0-9a-f]+):\s+(lock |xchg)", line)
            if m:
                addr = int(m.group(1), 16)
                if costs.get(addr):
                    total += costs[addr]
                    per[(ob.rsplit("/", 1)[-1], fn_at[(ob, addr)])] += costs[addr]
    print(f"locked read-modify-writes per request: {total / requests:.2f}")
    for (obj, func), n in per.most_common(15):
        print(f"{n / requests:7.2f}  {obj}  {func}", flush=True)


if __name__ == "__main__":
    main()
