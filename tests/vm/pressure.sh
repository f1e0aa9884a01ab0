# Pressure rules proven by the kernel: stress-ng drives a group into memory
# thrash (no swap, memory.high far below its working set) until PSI `full`
# passes the rule's threshold; the daemon's trigger fires and the rule
# kills, counts only (dry_run) or freezes. An idle sibling is never touched.
# A CPU rule on a group throttled by its own cpu.max fires without any
# contention, and the log says how much was throttling.
. /lib.sh
command -v stress-ng >/dev/null || fail "stress-ng is not in the VM (tests/vm.rs passes it)"
ip link set lo up
P=/etc/cgmgr/p; mkdir -p $P
rule() { # rule GROUP ACTION DRY_RUN
  printf '[group.%s]\nmemory.high = "16M"\n\n[[group.%s.pressure]]\nresource = "memory"\nkind = "full"\nabove = "20%%"\nwindow = "2s"\nfor = "4s"\naction = "%s"\ndry_run = %s\n\n' "$1" "$1" "$2" "$3"
}
{
  rule thrash kill false
  rule idle kill false
  rule dry kill true
  rule frz freeze false
  printf '[group.throttled]\ncpu.max = "10%%"\n\n[[group.throttled.pressure]]\nresource = "cpu"\nkind = "some"\nabove = "50%%"\nwindow = "2s"\naction = "log"\n'
} > $P/p.toml
cat $P/p.toml
cgmgr daemon --listen 127.0.0.1:9765 --reconcile 1 $P > /tmp/daemon.log 2>&1 &
DAEMON=$!
i=0; until [ "$(grep -c 'pressure: armed' /tmp/daemon.log)" = 5 ]; do
  i=$((i + 1)); [ $i -lt 100 ] || { cat /tmp/daemon.log; fail "the five rules were not armed"; }; sleep 0.1
done
grep 'pressure: armed' /tmp/daemon.log
in_group() { sh -c "echo \$\$ > $CG/$1/cgroup.procs; exec $2" >/dev/null 2>&1 & }
thrash() { in_group "$1" "stress-ng --vm 1 --vm-bytes 96M --vm-keep --timeout 120"; }
procs() { cat $CG/$1/cgroup.procs | wc -l; }
wait_empty() { # wait_empty GROUP SECS
  i=0; while [ "$(procs $1)" != 0 ]; do
    i=$((i + 1)); [ $i -lt $(($2 * 10)) ] || return 1; sleep 0.1
  done
}
full() { awk '$1 == "full" { print $2 }' $CG/$1/memory.pressure; }
metric() { wget -q -O - http://127.0.0.1:9765/metrics | grep "^cgmgr_pressure_actions_total{" | grep "group=\"$1\""; }

step "a group in memory thrash is killed by its rule; its idle sibling is not"
in_group idle "sleep 600"
thrash thrash
t0=$(date +%s)
sleep 1
[ "$(procs thrash)" -ge 2 ] || fail "stress-ng does not run in thrash"
wait_empty thrash 40 || { cat /tmp/daemon.log; cat $CG/thrash/memory.pressure; fail "thrash was not emptied within 40s"; }
t1=$(date +%s)
echo "ok: thrash emptied $((t1 - t0))s after stress-ng started ($(full thrash) at the end)"
grep "pressure: group=thrash" /tmp/daemon.log
expect_contains "$(grep 'pressure: group=thrash' /tmp/daemon.log)" "resource=memory kind=full stall=" "the decision is logged with the stall"
expect_contains "$(grep 'pressure: group=thrash' /tmp/daemon.log)" "action=kill result=done" "the action and its result"
expect_eq "$(key_of $CG/thrash/memory.events oom_kill)" 0 "no OOM kill: the rule acted, not the kernel"
expect_eq "$(procs idle)" 1 "the idle sibling still runs"
expect_contains "$(metric thrash)" 'resource="memory",result="done"} 1' "counted"

step "the rule acts again on the next stall of the same group"
thrash thrash
sleep 1
wait_empty thrash 40 || { cat /tmp/daemon.log; cat $CG/thrash/memory.pressure; fail "the second stall of thrash was not acted on within 40s"; }
expect_contains "$(metric thrash)" 'resource="memory",result="done"} 2' "counted twice"

step "dry_run: logged and counted, nothing changed"
thrash dry
sleep 1
i=0; until grep -q "pressure: group=dry" /tmp/daemon.log; do
  i=$((i + 1)); [ $i -lt 400 ] || { cat /tmp/daemon.log; fail "the dry run never decided"; }; sleep 0.1
done
grep "pressure: group=dry" /tmp/daemon.log
expect_contains "$(grep 'pressure: group=dry' /tmp/daemon.log)" "action=kill result=dry_run" "logged as a dry run"
[ "$(procs dry)" -ge 2 ] || fail "the dry run stopped stress-ng"
echo "ok: stress-ng still runs"
expect_contains "$(metric dry)" 'result="dry_run"}' "counted as dry_run"
echo 1 > $CG/dry/cgroup.kill

step "freeze: the group is frozen; cgmgr kill then empties the frozen group"
thrash frz
i=0; until [ "$(key_of $CG/frz/cgroup.events frozen)" = 1 ]; do
  i=$((i + 1)); [ $i -lt 400 ] || { cat /tmp/daemon.log; fail "frz was not frozen within 40s"; }; sleep 0.1
done
grep "pressure: group=frz" /tmp/daemon.log
[ "$(procs frz)" -ge 2 ] || fail "frz was killed, not frozen"
echo "ok: frozen, not killed"
u1=$(key_of $CG/frz/cpu.stat usage_usec); sleep 1; u2=$(key_of $CG/frz/cpu.stat usage_usec)
expect_eq "$u2" "$u1" "no CPU time while frozen"
run_cgmgr 0 kill frz
expect_eq "$(procs frz)" 0 "a frozen group killed is empty"
expect_contains "$(metric frz)" 'action="freeze",group="frz",resource="memory",result="done"} 1' "counted"

step "cpu.max throttling is CPU pressure without contention; the log says so"
in_group throttled "sh -c 'while :; do :; done'"
i=0; until grep -q "pressure: group=throttled" /tmp/daemon.log; do
  i=$((i + 1)); [ $i -lt 300 ] || { cat /tmp/daemon.log; cat $CG/throttled/cpu.pressure $CG/throttled/cpu.stat; fail "the throttled group's rule never fired"; }; sleep 0.1
done
grep "pressure: group=throttled" /tmp/daemon.log
line=$(grep 'pressure: group=throttled' /tmp/daemon.log | head -1)
expect_contains "$line" "by the group's own cpu.max, which is not contention" "the log names throttling"
echo "$line" | grep -qE "throttled ([1-9]|0\.[1-9])" || fail "no throttled time in: $line"
echo "ok: the throttled time is counted"
echo 1 > $CG/throttled/cgroup.kill
expect_eq "$(procs idle)" 1 "the idle sibling was never touched"
expect_not_contains "$(cat /tmp/daemon.log)" "group=idle resource" "no decision about idle"
kill $DAEMON
echo PASS
