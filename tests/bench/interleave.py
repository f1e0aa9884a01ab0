#!/usr/bin/env python3
"""Interleaved wall-time benchmark: runs each command once per round, in
turn, so that drift in the machine's load hits all of them alike.
usage: interleave.py ROUNDS 'cmd 1' 'cmd 2' ..."""
import os, shlex, statistics, sys, time
rounds = int(sys.argv[1]); cmds = [shlex.split(c) for c in sys.argv[2:]]
times = [[] for _ in cmds]
devnull = os.open(os.devnull, os.O_RDWR)
fa = [(os.POSIX_SPAWN_DUP2, devnull, 1)]
for r in range(rounds + 10):
    for i, c in enumerate(cmds):
        t = time.perf_counter_ns()
        pid = os.posix_spawnp(c[0], c, os.environ, file_actions=fa)
        _, st = os.waitpid(pid, 0)
        dt = (time.perf_counter_ns() - t) / 1e6
        if st != 0: sys.exit(f"{c}: status {st}")
        if r >= 10: times[i].append(dt)
base = statistics.mean(times[-1])
for c, t in zip(sys.argv[2:], times):
    t.sort()
    print(f"{statistics.mean(t):6.2f} ms mean  {statistics.median(t):6.2f} median  p10 {t[len(t)//10]:6.2f}  p90 {t[9*len(t)//10]:6.2f}  x{statistics.mean(t)/base:5.2f}  {c[:90]}")
