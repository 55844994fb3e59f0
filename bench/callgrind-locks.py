#!/usr/bin/env python3
"""Locked (lock-prefixed or memory-xchg) instructions executed in a callgrind profile.

Usage: bench/callgrind-locks.py <callgrind.out> [object-suffix]
The profile must come from `CG_OPTS=--dump-instr=yes bench/callgrind-pair.sh ...`, and the
binary it names must not have been rebuilt since (addresses are looked up in it).
Prints the total, the functions that executed them, and with an object suffix
(e.g. basalt-server) the 40 busiest locked instructions with their source lines.
"""
import sys, re, subprocess, collections
path = sys.argv[1]
costs = collections.defaultdict(lambda: collections.Counter())  # obj -> addr -> Ir
obj_names = {}
fn_names = {}
obj = None
addr = 0
skip_next = False
cur_fn = None
fn_of = {}
for line in open(path):
    line = line.rstrip('\n')
    if not line: continue
    m = re.match(r'^(ob|cob)=\((\d+)\)(?: (.*))?$', line)
    if m:
        if m.group(3): obj_names[m.group(2)] = m.group(3)
        if m.group(1) == 'ob': obj = m.group(2)
        continue
    m = re.match(r'^fn=\((\d+)\)(?: (.*))?$', line)
    if m:
        if m.group(2): fn_names[m.group(1)] = m.group(2)
        cur_fn = fn_names.get(m.group(1)); continue
    m = re.match(r'^c?fn=\((\d+)\)(?: (.*))?$', line)
    if m:
        if m.group(2): fn_names[m.group(1)] = m.group(2)
        continue
    if line.startswith('calls='):
        skip_next = True; continue
    if line[0] in '0123456789+-*' or line.startswith('0x'):
        parts = line.split()
        a = parts[0]
        if a.startswith('0x'): addr = int(a, 16)
        elif a.startswith('+'): addr += int(a[1:], 16) if a[1:].startswith('0x') else int(a[1:])
        elif a.startswith('-'): addr -= int(a[1:])
        elif a == '*': pass
        if skip_next:
            skip_next = False; continue
        if len(parts) >= 3:
            costs[obj][addr] += int(parts[2])
            fn_of[(obj, addr)] = cur_fn
total = sum(sum(c.values()) for c in costs.values())
locked_total = 0
byfn = collections.Counter()
for o, c in costs.items():
    name = obj_names.get(o)
    if not name: continue
    try:
        dis = subprocess.run(['objdump', '-d', '--no-show-raw-insn', name], capture_output=True, text=True).stdout
    except Exception:
        continue
    locked = set()
    for l in dis.splitlines():
        m = re.match(r'^\s*([0-9a-f]+):\s+(.*)$', l)
        if not m: continue
        ins = m.group(2)
        if ins.startswith('lock ') or (ins.startswith('xchg') and '(' in ins):
            locked.add(int(m.group(1), 16))
    n = 0
    for a, ir in c.items():
        if a in locked:
            n += ir; byfn[(name.split('/')[-1], fn_of.get((o, a)))] += ir
    locked_total += n
print(f"total Ir {total}, locked instructions executed {locked_total}")
for (o, f), n in byfn.most_common(25):
    print(f"{n:>10} {o} {f}")
# addresses of locked instructions in the binary with their source lines
if len(sys.argv) > 2:
    want = sys.argv[2]
    for o, c in costs.items():
        name = obj_names.get(o)
        if not name or not name.endswith(want): continue
        dis = subprocess.run(['objdump', '-d', '--no-show-raw-insn', name], capture_output=True, text=True).stdout
        locked = {}
        for l in dis.splitlines():
            m = re.match(r'^\s*([0-9a-f]+):\s+(.*)$', l)
            if m and (m.group(2).startswith('lock ') or (m.group(2).startswith('xchg') and '(' in m.group(2))):
                locked[int(m.group(1), 16)] = m.group(2)
        hits = sorted(((ir, a) for a, ir in c.items() if a in locked), reverse=True)[:40]
        addrs = [hex(a) for _, a in hits]
        out = subprocess.run(['addr2line', '-f', '-i', '-C', '-e', name] + addrs, capture_output=True, text=True).stdout
        print(out[:100])
        for (ir, a) in hits:
            src = subprocess.run(['addr2line', '-i', '-e', name, hex(a)], capture_output=True, text=True).stdout.split('\n')
            src = [s.replace('/work/main/', '').replace('/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/', '') for s in src if s]
            print(f"{ir:>8} {hex(a)} {locked[a][:40]:40} {' <- '.join(src[:4])}")
