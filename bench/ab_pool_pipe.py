#!/usr/bin/env python3
"""Before/after comparison of the pool and pipe benchmarks of two builds, in one run.

Usage: bench/ab_pool_pipe.py OLD_BUILD NEW_BUILD ROUNDS [OLD_BENCH_PIPE]

Each round runs bench_pipe, bench_dispatch, bench_pool (without its Python peers) and bench_imap
of the old build, then the new, then the old again: the old-vs-old column is the noise of this
machine in this run, which a new-vs-old difference must exceed to mean anything. Prints a
markdown table of medians and bests (lowest time, highest rate), then every round's numbers.
OLD_BENCH_PIPE: bench_pipe compiled against the old library, when the old tree lacks it."""
import os, re, statistics, subprocess, sys

OLD, NEW, ROUNDS = sys.argv[1], sys.argv[2], int(sys.argv[3])
PIPE_OLD = sys.argv[4] if len(sys.argv) > 4 else OLD + '/bench/bench_pipe'
env = dict(os.environ, PATH='/nonexistent')  # no python3: the benches skip their Python peers

def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600).stdout

def measure(build, pipe_bin):
    m = {}
    out = run([pipe_bin, '0.2'])
    for name, key in [('pipe round trip 8 B', 'pipe rtt 8B (us)'), ('pipe stream 64 B', 'pipe 64B (M msg/s)'),
                      ('pipe stream 4 KiB', 'pipe 4KiB (M msg/s)'), ('pipe stream 1 MiB', 'pipe 1MiB (msg/s)')]:
        r = re.search(re.escape(name) + r'\s+median\s+([\d.]+)', out)
        if r: m[key] = float(r.group(1))
    out = run([build + '/bench/bench_dispatch', '0.1'])
    for r in re.finditer(r'^\s+(\d+)\s+(\d+)\s+([\d.]+)\s+(\d+)\s+(\d+)$', out, re.M):
        c = int(r.group(1))
        if c <= 64:
            m['dispatch CPU/chunk, chunk %d (ns)' % c] = float(r.group(2))
    out = run([build + '/bench/bench_pool', '0.1'])
    for name, key in [('apply round trip', 'pool apply rtt (us)'), ('map 1e6 ints, default chunks', 'map_fixed (M/s)'),
                      ('map, chunksize 1', 'map_fixed chunk 1 (M/s)')]:
        r = re.search(re.escape(name) + r'\s+mproc\s+([\d.]+)', out)
        if r: m[key] = float(r.group(1))
    out = run([build + '/bench/bench_imap', '200000'])
    r = re.search(r'mproc imap_lazy.*?([\d.]+) M items/s', out)
    if r: m['imap_lazy (M items/s)'] = float(r.group(1))
    return m

res = {'old': [], 'new': [], 'old2': []}
for i in range(ROUNDS):
    res['old'].append(measure(OLD, PIPE_OLD))
    res['new'].append(measure(NEW, NEW + '/bench/bench_pipe'))
    res['old2'].append(measure(OLD, PIPE_OLD))
    print('round', i + 1, 'done', file=sys.stderr, flush=True)

keys = list(res['old'][0].keys())
print('| case | old median | new median | new/old | old again median | old again/old | old best | new best | old again best |')
print('|---|---|---|---|---|---|---|---|---|')
for k in keys:
    col = {w: [r[k] for r in res[w] if k in r] for w in res}
    med = {w: statistics.median(v) for w, v in col.items()}
    lower = '(us)' in k or '(ns)' in k  # a time: lower is better
    best = {w: (min(v) if lower else max(v)) for w, v in col.items()}
    print('| %s | %.3g | %.3g | %.2f | %.3g | %.2f | %.3g | %.3g | %.3g |' % (
        k, med['old'], med['new'], med['new'] / med['old'], med['old2'], med['old2'] / med['old'],
        best['old'], best['new'], best['old2']))
print()
for k in keys:
    for w in res:
        print('%-36s %-5s %s' % (k, w, ' '.join('%.3g' % r[k] for r in res[w] if k in r)))
