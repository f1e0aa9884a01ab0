# Helpers for test scripts run inside the VM (busybox sh).
CG=/sys/fs/cgroup
STEP=0

fail() { echo "FAIL: $*"; exit 1; }
step() { STEP=$((STEP + 1)); echo "--- $STEP. $*"; }

# expect_eq ACTUAL EXPECTED WHAT
expect_eq() { [ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"; echo "ok: $3 = '$1'"; }
# expect_contains HAYSTACK NEEDLE WHAT
expect_contains() {
  case "$1" in *"$2"*) echo "ok: $3";; *) fail "$3: '$2' not found in: $1";; esac
}
expect_not_contains() {
  case "$1" in *"$2"*) fail "$3: '$2' unexpectedly found in: $1";; *) echo "ok: $3";; esac
}
# wait_for SECONDS WHAT 'COMMAND': until COMMAND (evaluated anew each time)
# succeeds, else fail (the script's own `fail`, if it defines one)
wait_for() {
  secs=$1; what=$2; shift 2; i=0
  while ! eval "$@" >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -gt $((secs * 10)) ] && fail "$what: not within ${secs}s"
    sleep 0.1
  done
  echo "ok: $what"
}
# key_of FILE KEY: the value of KEY in a flat-keyed cgroup file
key_of() { awk -v k="$2" '$1 == k { print $2 }' "$1"; }
# run_cgmgr EXPECTED_EXIT ARGS...: runs cgmgr, keeps output in $OUT
run_cgmgr() {
  want=$1; shift
  OUT=$(cgmgr "$@" 2>&1); rc=$?
  echo "$ cgmgr $*"; echo "$OUT"
  [ "$rc" = "$want" ] || fail "cgmgr $* exited $rc, expected $want"
}
# snapshot DIR: the groups under DIR and the content of every configuration
# file in them (the files cgmgr may write), for before/after comparisons.
# Statistics (cpu.stat, *.pressure, memory.current) change by themselves and
# are left out, as are cgroup.procs (our own shell's children come and go).
snapshot() {
  find "$1" -type d | sort
  find "$1" -type f \( -name cgroup.subtree_control -o -name '*.max' -o -name '*.high' \
    -o -name '*.low' -o -name '*.min' -o -name '*.weight' -o -name cpuset.cpus \
    -o -name memory.oom.group -o -name cpu.max.burst \) | sort | while read -r f; do
    echo "== $f"; cat "$f" 2>/dev/null
  done
}
# prepared_in GROUP_DIR: the run groups of GROUP_DIR holding a prepared
# sandbox (`standby`: init and its waiting workload), one path per line.
prepared_in() {
  for d in "$1"/cgmgr.run.*; do
    [ "$(wc -l < "$d/cgroup.procs" 2>/dev/null)" = 2 ] && echo "$d"
  done
}
