#!/usr/bin/env bash
# Stop time and reload stall of a daemon holding N pressure rules, on the
# host's cgroup v2 core (PSI needs no controller): N groups, one rule each
# (cpu some above 30% over 2s, action log; 2 s windows are taken with or
# without CAP_SYS_RESOURCE).
#   tests/bench/pressure-stop.sh BINARY N [N...]
# For each N, RUNS times (default 3):
# - reload stall: every rule changed (30% -> 40%), and as soon as all N are
#   armed again, one more change (g1 -> 45%) and SIGHUP; the time until
#   g1's new rule is armed is how long the pressure thread was busy after
#   the first reload (it arms only between other work);
# - stop: SIGTERM -> the process has exited (`wait`).
set -euo pipefail
bin=$1; shift
runs=${RUNS:-3}
mnt=$(grep ' - cgroup2 ' /proc/self/mountinfo | head -1 | awk '{ print $5 }')
base=$mnt/cgmgr-bench-stop-$$
pol=$(mktemp -d)
log=$(mktemp)
cleanup() {
  [ -n "${daemon:-}" ] && kill -9 "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null || true
  [ -d "$base" ] && find "$base" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null || true
  rmdir "$base" 2>/dev/null || true
  rm -rf "$pol" "$log"
}
trap cleanup EXIT
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
policy() { # N ABOVE [ABOVE of g1]
  for i in $(seq 1 "$1"); do
    above=$2; [ "$i" = 1 ] && above=${3:-$2}
    printf '[group.g%s]\n[[group.g%s.pressure]]\nresource = "cpu"\nkind = "some"\nabove = "%s"\nwindow = "2s"\naction = "log"\n' "$i" "$i" "$above"
  done
}
until_log() { # COUNT PATTERN TIMEOUT_S
  local deadline=$(( $(now_ms) + $3 * 1000 ))
  until [ "$(grep -c -- "$2" "$log" || true)" -ge "$1" ]; do
    [ "$(now_ms)" -lt "$deadline" ] || { echo "timed out waiting for $1 x '$2'" >&2; tail -5 "$log" >&2; exit 1; }
    sleep 0.005
  done
}
printf '| rules | run | reload stall (SIGHUP -> next rule armed) | SIGTERM -> exited |\n|---:|---:|---:|---:|\n'
for n in "$@"; do
  for run in $(seq 1 "$runs"); do
    mkdir -p "$base"
    policy "$n" 30% > "$pol/a.toml"
    "$bin" daemon --root "$base" --listen 127.0.0.1:0 --reconcile 3600 "$pol" 2>"$log" &
    daemon=$!
    until_log "$n" 'pressure: armed' 60
    policy "$n" 40% > "$pol/a.toml"
    until_log "$n" 'cpu some above 40%' 120
    policy "$n" 40% 45% > "$pol/a.toml"
    t0=$(now_ms); kill -HUP "$daemon"
    until_log 1 'armed group=g1 cpu some above 45%' 120
    stall=$(( $(now_ms) - t0 ))
    t0=$(now_ms); kill -TERM "$daemon"; wait "$daemon" || true
    stop=$(( $(now_ms) - t0 )); daemon=
    printf '| %s | %s | %s ms | %s ms |\n' "$n" "$run" "$stall" "$stop"
    find "$base" -mindepth 1 -depth -type d -exec rmdir {} +
    rmdir "$base"
  done
done
