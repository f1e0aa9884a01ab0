#!/usr/bin/env bash
# 1,000 short judge runs, 2 at a time on 2 CPUs, each with CPU and wall time
# limits, rlimits and a JSON verdict: `cgmgr exec` with prepared sandboxes
# against what a user writes today (bwrap under prlimit and timeout, the
# verdict from /usr/bin/time's rusage), and bare bwrap. Then the accuracy of
# cpu_seconds against the rusage of the same runs (direct runs, where
# cgmgr exec waits for the run's init).
#   tests/bench/judge.sh [RUNS]
# JUDGE_DIR (default /tmp/judge-bench) holds the roots, the submission and
# the verdict files both sides write: JUDGE_DIR=/dev/shm/judge-bench keeps
# them on a tmpfs, as a judge's scratch space would be.
# On this host cgroup v2 has no memory or pids controller, so neither side
# sets memory.max or pids.max; the time limits read the v2 core's cpu.stat.
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-1000}
cargo build --release --quiet
cgmgr=$PWD/target/$(rustc --print host-tuple)/release/cgmgr
w=${JUDGE_DIR:-/tmp/judge-bench}
root=/sys/fs/cgroup/unified/judge-bench
rm -rf "$w"; mkdir -p "$w"/{root/proc,root/dev,root/tmp,root/sub,sub,pol,rt,v,b}
chmod 755 "$w" "$w/root"
gcc -static -O2 -o "$w/sub/sol" tests/bench/judge/sol.c
gcc -static -O2 -o "$w/sub/spin" tests/bench/judge/spin.c
echo 21 > "$w/sub/input"
cat > "$w/pol/j.toml" <<TOML
[group.j.exec]
rootfs = "$w/root"
time_limit = "1s"
wall_limit = "3s"
rlimits = { fsize = "1M", nofile = 64 }
mounts = [{ bind = "$w/sub", at = "/sub", readonly = true }]
standby = 2
[group.d.exec]
rootfs = "$w/root"
mounts = [{ bind = "$w/sub", at = "/sub", readonly = true }]
TOML
mkdir -p "$root"
cleanup() {
  [ -n "${daemon:-}" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null || true
  find "$root" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null || true
  rmdir "$root" 2>/dev/null || true
}
trap cleanup EXIT
export CGMGR_RUNTIME_DIR=$w/rt
"$cgmgr" --root "$root" daemon --listen 127.0.0.1:0 "$w/pol" 2>"$w/daemon.log" &
daemon=$!
sleep 3
export w cgmgr
rate() { # rate NAME COMMAND...: runs COMMAND for 1..n, 2 at a time; prints runs/s
  local name=$1; shift
  local t0 t1
  t0=$(date +%s.%N)
  seq "$n" | xargs -P2 -I{} sh -c "$*"
  t1=$(date +%s.%N)
  awk -v n="$n" -v a="$t0" -v b="$t1" -v name="$name" 'BEGIN { printf "%-34s %7.1f runs/s (%.2f s)\n", name, n / (b - a), b - a }'
}
B="bwrap --unshare-all --ro-bind \$w/root / --ro-bind \$w/sub /sub --proc /proc --dev /dev"
for round in 1 2 3; do
  echo "round $round"
  rate "cgmgr exec (prepared), verdict" \
    '"$cgmgr" exec --group j --report-file "$w/v/{}.json" -- /sub/sol < "$w/sub/input" > /dev/null'
  rate "bwrap + prlimit + timeout + time" \
    "/usr/bin/time -o \"\$w/b/{}.json\" -f '{\"exit\":%x,\"maxrss_kb\":%M,\"user\":%U,\"sys\":%S,\"csw_voluntary\":%w,\"csw_involuntary\":%c}' timeout 3 prlimit --cpu=1 --fsize=1048576 --nofile=64 $B /sub/sol < \"\$w/sub/input\" > /dev/null"
  rate "bare bwrap" "$B /sub/sol < \"\$w/sub/input\" > /dev/null"
done
ok=$(grep -l '"status":"ok"' "$w"/v/*.json | wc -l)
echo "verdicts: $ok of $(ls "$w"/v | wc -l) ok"
served=$(curl -s "http://$(grep -o '127.0.0.1:[0-9]*' "$w/daemon.log" | head -1)/metrics" | grep 'standby_requests_total{group="j"' || true)
echo "$served"
echo "accuracy: cpu_seconds (cpu.stat of the run group) against /usr/bin/time of cgmgr exec (its waited-for children: the run's init and workload)"
for ms in 100 300 1000; do
  for i in 1 2 3; do
    /usr/bin/time -o "$w/t" -f '%U %S' "$cgmgr" exec --group d --report-file "$w/a.json" -- /sub/spin "$ms" 2>/dev/null
    rus=$(awk '{ print $1 + $2 }' "$w/t")
    cs=$(sed -n 's/.*"cpu_seconds":\([^,}]*\).*/\1/p' "$w/a.json")
    awk -v ms="$ms" -v r="$rus" -v c="$cs" 'BEGIN { printf "spin %4d ms: cpu_seconds %.3f, rusage %.3f, difference %+.3f s\n", ms, c, r, c - r }'
  done
done
