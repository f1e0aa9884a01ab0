#!/usr/bin/env bash
# Benchmark of the daemon's /metrics on the host's cgroup v2 core
# (/sys/fs/cgroup/unified: cpu.stat and the pressure files exist there),
# with N groups, against the naive floor of reading the same files with
# open+read+close (cat). Also idle CPU, RSS, and reload latency.
#   tests/bench/metrics.sh 100 1000 10000
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet
bin=$PWD/target/$(rustc --print host-tuple)/release/cgmgr
base=/sys/fs/cgroup/unified/cgmgr-bench
port=9799
cleanup() {
  [ -n "${daemon:-}" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null || true
  [ -d "$base" ] && find "$base" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null || true
  rmdir "$base" 2>/dev/null || true
}
trap cleanup EXIT
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
printf '| groups | files read per scrape | warm scrape (mean of 20) | daemon CPU per scrape | naive open+read+close of the same files | ratio | RSS after scrapes |\n|---:|---:|---:|---:|---:|---:|---:|\n'
for n in "$@"; do
  cleanup; mkdir -p "$base"
  pol=$(mktemp -d)
  for i in $(seq -w 1 "$n"); do printf '[group.g%s]\n' "$i"; done > "$pol/groups.toml"
  "$bin" apply --root "$base" "$pol" >/dev/null
  "$bin" daemon --root "$base" --listen "127.0.0.1:$port" --reconcile 3600 "$pol" 2>/dev/null &
  daemon=$!
  until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; do sleep 0.1; done
  curl -sf -o /dev/null "http://127.0.0.1:$port/metrics"  # warm: files opened
  got=$(curl -sf "http://127.0.0.1:$port/metrics" | grep -c '^cgmgr_cpu_usage_seconds_total{')
  [ "$got" = "$n" ] || { echo "only $got of $n groups in the scrape" >&2; exit 1; }
  t0=$(ticks "$daemon")
  # curl's own time_total: the request, not curl's start-up.
  scrape_ms=$(for _ in $(seq 20); do curl -sf -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$port/metrics"; done \
    | awk '{ s += $1 } END { printf "%.1f", s * 1000 / NR }')
  t1=$(ticks "$daemon")
  cpu_ms=$(awk -v t=$((t1 - t0)) -v hz="$hz" 'BEGIN { printf "%.1f", t * 1000 / hz / 20 }')
  # The files the daemon reads on this host: cpu.stat and the three PSI files.
  files=$(find "$base" -mindepth 2 -maxdepth 2 \( -name cpu.stat -o -name cpu.pressure -o -name memory.pressure -o -name io.pressure \) | sort)
  count=$(echo "$files" | wc -l)
  start=$(date +%s%N); echo "$files" | xargs cat > /dev/null; end=$(date +%s%N)
  naive_ms=$(awk -v ns=$((end - start)) 'BEGIN { printf "%.1f", ns / 1e6 }')
  ratio=$(awk -v a="$scrape_ms" -v b="$naive_ms" 'BEGIN { printf "%.2f", (b ? a / b : 0) }')
  rss=$(awk '/VmRSS/ { print $2 " " $3 }' "/proc/$daemon/status")
  printf '| %s | %s | %s ms | %s ms | %s ms | %s | %s |\n' "$n" "$count" "$scrape_ms" "$cpu_ms" "$naive_ms" "$ratio" "$rss"
  kill "$daemon"; wait "$daemon" 2>/dev/null || true; daemon=
  rm -rf "$pol"
done

# Idle CPU and reload latency, with 1000 groups.
cleanup; mkdir -p "$base"
pol=$(mktemp -d)
for i in $(seq -w 1 1000); do printf '[group.g%s]\n' "$i"; done > "$pol/groups.toml"
"$bin" daemon --root "$base" --listen "127.0.0.1:$port" "$pol" 2>/dev/null &
daemon=$!
until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; do sleep 0.1; done
t0=$(ticks "$daemon"); sleep 20; t1=$(ticks "$daemon")
echo
echo "idle daemon, 1000 groups, 20 s (default --reconcile 30): $((t1 - t0)) CPU ticks of 1/${hz} s; RSS $(awk '/VmRSS/ { print $2 " " $3 }' /proc/$daemon/status)"
for try in 1 2 3 4 5; do
  start=$(date +%s%N)
  printf '[group.new%s]\n' "$try" > "$pol/new$try.toml"
  until [ -d "$base/new$try" ]; do sleep 0.001; done
  end=$(date +%s%N)
  echo "reload latency, file written -> group in the kernel (try $try): $(( (end - start) / 1000000 )) ms"
done
rm -rf "$pol"
