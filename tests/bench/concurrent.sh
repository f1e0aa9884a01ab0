#!/usr/bin/env bash
# Benchmark of concurrent /metrics scrapes and /healthz under them: N groups
# on the host's cgroup v2 core, C clients scraping back to back for 10 s,
# while one more client asks /healthz every 100 ms.
#   tests/bench/concurrent.sh [BINARY] [GROUPS] [CLIENTS]
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-$PWD/target/$(rustc --print host-tuple)/release/cgmgr}
n=${2:-1000}
clients=${3:-8}
base=/sys/fs/cgroup/unified/cgmgr-bench-conc
port=9798
cleanup() {
  [ -n "${daemon:-}" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null || true
  [ -d "$base" ] && find "$base" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null || true
  rmdir "$base" 2>/dev/null || true
}
trap cleanup EXIT
cleanup; mkdir -p "$base"
pol=$(mktemp -d)
for i in $(seq -w 1 "$n"); do printf '[group.g%s]\n' "$i"; done > "$pol/groups.toml"
"$bin" apply --root "$base" "$pol" >/dev/null
CGMGR_RUNTIME_DIR=$(mktemp -d) "$bin" daemon --root "$base" --listen "127.0.0.1:$port" --reconcile 3600 "$pol" 2>/dev/null &
daemon=$!
until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; do sleep 0.1; done
curl -sf -o /dev/null "http://127.0.0.1:$port/metrics"
python3 - "$port" "$clients" <<'PY'
import http.client, sys, threading, time, statistics
port, clients = int(sys.argv[1]), int(sys.argv[2])
stop = time.time() + 10
scrapes, health = [], []
def get(path):
    t = time.time()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", path); r = c.getresponse(); r.read(); c.close()
    return (time.time() - t) * 1000, r.status
def scraper():
    while time.time() < stop:
        scrapes.append(get("/metrics"))
def prober():
    while time.time() < stop:
        health.append(get("/healthz")); time.sleep(0.1)
ts = [threading.Thread(target=scraper) for _ in range(clients)] + [threading.Thread(target=prober)]
[t.start() for t in ts]; [t.join() for t in ts]
ms = sorted(m for m, s in scrapes if s == 200)
hs = sorted(m for m, s in health if s == 200)
print(f"scrapes: {len(ms)} in 10 s = {len(ms)/10:.1f}/s, median {statistics.median(ms):.0f} ms, p90 {ms[int(len(ms)*0.9)]:.0f} ms")
print(f"/healthz: {len(hs)} of {len(health)} answered 200, median {statistics.median(hs):.1f} ms, max {max(hs):.0f} ms")
PY
