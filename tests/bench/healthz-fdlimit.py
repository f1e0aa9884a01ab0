#!/usr/bin/env python3
"""Time to the first `200` of /healthz, start after start, under a low
descriptor limit.

Each start: a fresh scratch subtree of the host's cgroup v2 mount, N
declared groups (created by this start's initial apply), the daemon run
under `prlimit --nofile=LIMIT:LIMIT`; /healthz is probed every 50 ms by a
client that connects (1 s), sends its request and waits 2 s for the answer.
Each probe's outcome is recorded (refused, connect-timeout, no-answer,
closed, or the status line); the start ends at the first 200 or after
DEADLINE seconds. Prints one line per start and the distribution.

    tests/bench/healthz-fdlimit.py BIN [STARTS [GROUPS [LIMIT [DEADLINE]]]]
    tests/bench/healthz-fdlimit.py target/x86_64-unknown-linux-gnu/release/cgmgr 30 2000 256 90
"""

import collections
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time


def mount():
    for line in open("/proc/self/mountinfo"):
        left, right = line.split(" - ", 1)
        if right.split()[0] == "cgroup2":
            return left.split()[4]
    sys.exit("no cgroup2 mount")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def probe(port):
    """One /healthz request: its outcome as a short word."""
    s = socket.socket()
    s.settimeout(1.0)
    try:
        s.connect(("127.0.0.1", port))
    except ConnectionRefusedError:
        return "refused"
    except socket.timeout:
        return "connect-timeout"
    except OSError as e:
        return f"connect-{e.errno}"
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(2.0)
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        return "no-answer" if not data else "partial"
    except ConnectionResetError:
        return "reset" if not data else "partial-reset"
    finally:
        s.close()
    if not data:
        return "closed"
    head, _, body = data.partition(b"\r\n\r\n")
    code = head.split(b" ")[1].decode() if b" " in head else "?"
    return f"{code} {body.decode(errors='replace').strip()[:40]}"


def remove_tree(path):
    for dirpath, _, _ in sorted(os.walk(path), key=lambda w: -w[0].count("/")):
        try:
            os.rmdir(dirpath)
        except OSError:
            pass


def one_start(binary, groups, limit, deadline, n):
    root = os.path.join(mount(), f"cgmgr-bench-fdlimit-{os.getpid()}")
    remove_tree(root)
    os.mkdir(root)
    policies = tempfile.mkdtemp()
    with open(os.path.join(policies, "groups.toml"), "w") as f:
        f.writelines(f"[group.g{i:04}]\n" for i in range(groups))
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="healthz-fdlimit-", suffix=".log", delete=False)
    runtime = tempfile.mkdtemp()
    env = dict(os.environ, CGMGR_RUNTIME_DIR=runtime)
    t0 = time.monotonic()
    daemon = subprocess.Popen(
        ["prlimit", f"--nofile={limit}:{limit}", binary, "daemon", "--root", root,
         "--listen", f"127.0.0.1:{port}", policies],
        stdout=subprocess.DEVNULL, stderr=log, env=env)
    seen = collections.Counter()
    first = {}
    took = None
    while time.monotonic() - t0 < deadline:
        outcome = probe(port)
        seen[outcome] += 1
        first.setdefault(outcome, time.monotonic() - t0)
        if outcome.startswith("200"):
            took = time.monotonic() - t0
            break
        if daemon.poll() is not None:
            break
        time.sleep(0.05)
    fds = len(os.listdir(f"/proc/{daemon.pid}/fd")) if daemon.poll() is None else None
    daemon.send_signal(signal.SIGTERM)
    try:
        daemon.wait(10)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()
    remove_tree(root)
    shutil.rmtree(policies, ignore_errors=True)
    shutil.rmtree(runtime, ignore_errors=True)
    summary = ", ".join(f"{k} x{v} (first {first[k]:.2f}s)" for k, v in seen.items())
    verdict = f"{took:6.2f}s" if took is not None else "  none"
    print(f"start {n:3}: first 200 at {verdict}; fds then {fds}; probes: {summary}; log {log.name}",
          flush=True)
    return took


def main():
    args = sys.argv[1:]
    binary = os.path.abspath(args[0])
    starts = int(args[1]) if len(args) > 1 else 30
    groups = int(args[2]) if len(args) > 2 else 2000
    limit = int(args[3]) if len(args) > 3 else 256
    deadline = float(args[4]) if len(args) > 4 else 90
    times = [one_start(binary, groups, limit, deadline, n + 1) for n in range(starts)]
    ok = sorted(t for t in times if t is not None)
    late = [t for t in ok if t > 60]
    print(f"{starts} starts, {groups} groups, nofile {limit}:{limit}: "
          f"{len(ok)} healthy within {deadline:.0f}s, {len(late)} after 60s, "
          f"{starts - len(ok)} never")
    if ok:
        pick = lambda q: ok[min(len(ok) - 1, int(q * len(ok)))]
        print(f"time to first 200: min {ok[0]:.2f}s, median {pick(0.5):.2f}s, "
              f"p90 {pick(0.9):.2f}s, max {ok[-1]:.2f}s")
    sys.exit(0 if len(ok) == starts and not late else 1)


if __name__ == "__main__":
    main()
