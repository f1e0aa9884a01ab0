# The kernel enforces what `cgmgr apply` wrote: an OOM kill at memory.max,
# failed forks at pids.max, throttling at cpu.max.
. /lib.sh
mkdir -p /etc/cgmgr
cat > /etc/cgmgr/limits.toml <<'TOML'
[group.mem]
memory.max = "32M"
memory.swap.max = "0"

[group.forks]
pids.max = 8

[group.cpu20]
cpu.max = "20%"

[group.free]
description = "no limits: the control for the CPU measurement"
TOML

step "apply"
run_cgmgr 0 apply /etc/cgmgr
expect_contains "$OUT" "mem/memory.max: (new) -> 33554432 (32 MiB)" "plan shows memory.max"
expect_eq "$(cat $CG/mem/memory.max)" 33554432 "memory.max"
expect_eq "$(cat $CG/mem/memory.swap.max)" 0 "memory.swap.max"
expect_eq "$(cat $CG/forks/pids.max)" 8 "pids.max"
expect_eq "$(cat $CG/cpu20/cpu.max)" "20000 100000" "cpu.max"

step "memory.max: an allocation beyond it is OOM-killed"
sh -c "echo \$\$ > $CG/mem/cgroup.procs; exec dd if=/dev/zero of=/dev/null bs=64M count=1"
expect_eq "$?" 137 "dd exit status (SIGKILL)"
expect_eq "$(key_of $CG/mem/memory.events oom_kill)" 1 "memory.events oom_kill"
step "memory.max: an allocation below it succeeds"
sh -c "echo \$\$ > $CG/mem/cgroup.procs; exec dd if=/dev/zero of=/dev/null bs=8M count=1" 2>/dev/null
expect_eq "$?" 0 "dd of 8M exit status"

step "pids.max: forks beyond it fail"
out=$(sh -c "echo \$\$ > $CG/forks/cgroup.procs; for i in \$(seq 20); do sleep 5 & done; sleep 1; cat $CG/forks/pids.current; kill \$(jobs -p) 2>/dev/null; wait" 2>&1)
echo "$out" | tail -3
expect_contains "$out" "can't fork" "the shell reports failed forks"
max_events=$(key_of $CG/forks/pids.events max)
[ "$max_events" -gt 0 ] || fail "pids.events max is $max_events, expected > 0"
echo "ok: pids.events max = $max_events"

step "cpu.max 20%: a busy loop gets at most ~25% of wall time"
busy() { # busy GROUP SECONDS: prints cpu usage_usec used during the run and wall usec
  before=$(key_of $CG/$1/cpu.stat usage_usec); t0=$(cut -d' ' -f1 /proc/uptime)
  sh -c "echo \$\$ > $CG/$1/cgroup.procs; exec timeout $2 sh -c 'while :; do :; done'"
  t1=$(cut -d' ' -f1 /proc/uptime); after=$(key_of $CG/$1/cpu.stat usage_usec)
  echo "$((after - before)) $(echo "$t0 $t1" | awk '{ printf "%d", ($2 - $1) * 1000000 }')"
}
set -- $(busy cpu20 4); limited=$1; wall=$2
ratio=$(awk -v u="$limited" -v w="$wall" 'BEGIN { printf "%d", 100 * u / w }')
echo "cpu20: used ${limited}us of ${wall}us wall = ${ratio}%"
[ "$ratio" -le 25 ] || fail "throttled loop used ${ratio}% of wall time, expected <= 25%"
throttled=$(key_of $CG/cpu20/cpu.stat nr_throttled)
[ "$throttled" -gt 0 ] || fail "nr_throttled is $throttled"
echo "ok: nr_throttled = $throttled"
set -- $(busy free 2); free_ratio=$(awk -v u="$1" -v w="$2" 'BEGIN { printf "%d", 100 * u / w }')
echo "control: an unlimited loop used ${free_ratio}% of wall time"
# At least twice the limit: otherwise the host is too busy for the limit
# check to mean anything (other VMs may run beside this one).
[ "$free_ratio" -ge 40 ] || fail "the unlimited control loop got only ${free_ratio}%: the measurement is not meaningful"
step "cgmgr status shows it"
sh -c "echo \$\$ > $CG/cpu20/cgroup.procs; exec timeout 3 sh -c 'while :; do :; done'" &
run_cgmgr 0 status --interval 2
expect_contains "$OUT" "GROUP  PROCS  CPU%  CPU LIMIT  THROTTLED  MEMORY" "table header"
row() { echo "$OUT" | awk -v g="$1" '$1 == g'; }
# PEAK is n/a* where the kernel has no memory.peak (5.10), said under the table.
echo "$(row mem)" | grep -qE "^mem +0 +[0-9.]+ +max +[0-9]+% +[0-9.]+ [KMG]?i?B +([0-9.]+ [KMG]?i?B|n/a\*) +max +32 MiB +[0-9]+ +max +1 +[-0-9]+$" || fail "mem row: $(row mem)"
echo "ok: mem row shows memory.max 32 MiB and 1 OOM kill"
if [ -e $CG/mem/memory.peak ]; then
  echo "$(row mem)" | grep -qE " 3[0-2](\.[0-9])? MiB +max +32 MiB" || fail "mem row: no peak at the limit: $(row mem)"
  echo "ok: the peak, at the limit"
else
  expect_contains "$OUT" "n/a*: this kernel has no memory.peak" "the table says the kernel has no memory.peak"
fi
echo "$(row cpu20)" | awk '{ exit !($3 > 5 && $3 <= 25 && $4 == "20%" && $5 + 0 > 0) }' || fail "cpu20 row: $(row cpu20)"
echo "ok: cpu20 row: CPU% within its 20% limit, throttled"
echo "$(row forks)" | grep -qE " 8 +0 +[1-9][0-9]*$" || fail "forks row: $(row forks)"
echo "ok: forks row shows pids.max 8 and the refused forks"
wait
run_cgmgr 0 status --json mem --interval 0.2
expect_contains "$OUT" '"group":"mem"' "json group"
expect_contains "$OUT" '"memory_max_bytes":33554432' "json memory.max"
expect_contains "$OUT" '"oom_kills":1' "json OOM kills"
out=$(timeout 3 cgmgr status --watch --interval 0.5 mem)
frames=$(printf '%s' "$out" | grep -c 'every 0.5s, Ctrl-C to quit')
[ "$frames" -ge 3 ] || fail "status --watch drew $frames frames in 3 s"
echo "ok: status --watch refreshes ($frames frames in 3 s)"
run_cgmgr 1 status nosuch
expect_contains "$OUT" "no group nosuch" "unknown group"
echo PASS
