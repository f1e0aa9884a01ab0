# Pressure rules, measured in the VM (run by tests/bench/pressure.sh):
# 1. reaction time, from the moment a group's memory stall crosses 20% of a
#    2 s window to the moment the group is empty: cgmgr's kernel trigger
#    against a 1-second polling loop over the same file (what oomd and
#    systemd-oomd do), same workload (stress-ng thrashing under memory.high),
#    alternating, RUNS times each;
# 2. the daemon's idle CPU with 1,000 armed rules, and the kernel's psimon
#    threads' (one per group with a privileged trigger).
. /lib.sh
ip link set lo up
RUNS=8
P=/etc/cgmgr/p; mkdir -p $P
printf '[group.t]\nmemory.high = "16M"\n\n[[group.t.pressure]]\nresource = "memory"\nkind = "full"\nabove = "20%%"\nwindow = "2s"\naction = "kill"\n\n[group.p]\nmemory.high = "16M"\n' > $P/p.toml
cgmgr daemon --listen 127.0.0.1:9765 $P > /tmp/d.log 2>&1 &
daemon=$!
i=0; until grep -q 'pressure: armed group=t' /tmp/d.log; do i=$((i + 1)); [ $i -lt 100 ] || fail "not armed"; sleep 0.1; done
thrash() {
  sh -c "echo \$\$ > $CG/$1/cgroup.procs; exec stress-ng --vm 1 --vm-bytes 96M --vm-keep --timeout 60" >/dev/null 2>&1 &
}
step "reaction time: trigger vs 1 s polling, $RUNS runs each"
watch() { # watch GROUP ARGS...: psi_watch from before the workload starts, or the evidence when it hangs
  sleep 5  # no stall of the previous run left in the kernel's window
  (sleep 0.2; thrash $1) &
  timeout 60 psi_watch $CG/"$@" || {
    echo 1 > $CG/$1/cgroup.kill
    cat $CG/$1/memory.pressure /tmp/d.log
    fail "$1 was not emptied within 60s"
  }
}
for r in $(seq $RUNS); do
  echo "trigger $r: $(watch t 20 2000)"
  echo "polling $r: $(watch p 20 2000 1000)"
done
kill $daemon; wait $daemon 2>/dev/null

step "idle: 1000 groups, each with an armed memory rule"
rm $P/p.toml
for g in $(seq 1000); do
  printf '[group.g%s]\n[[group.g%s.pressure]]\nresource = "memory"\nkind = "full"\nabove = "20%%"\nwindow = "2s"\naction = "kill"\n' $g $g
done > $P/many.toml
cgmgr daemon --listen 127.0.0.1:9765 $P > /tmp/d.log 2>&1 &
daemon=$!
i=0; until [ "$(grep -c 'pressure: armed' /tmp/d.log)" = 1000 ]; do i=$((i + 1)); [ $i -lt 600 ] || fail "not all armed: $(grep -c 'pressure: armed' /tmp/d.log)"; sleep 0.1; done
sleep 10  # applying and arming settle first
ticks() { awk '{ print $14 + $15 }' "$1"; }
psimon() { for p in $(grep -l '^psimon' /proc/[0-9]*/comm 2>/dev/null); do ticks ${p%/comm}/stat; done | awk '{ s += $1 } END { print s + 0 }'; }
n_psimon=$(grep -l '^psimon' /proc/[0-9]*/comm 2>/dev/null | wc -l)
for t in /proc/$daemon/task/*; do echo "$t $(cat $t/comm) $(ticks $t/stat)"; done > /tmp/t0
k0=$(psimon); sleep 60; k1=$(psimon)
echo "idle 60 s (two reconcile ticks of the default 30 s): $n_psimon psimon threads $((k1 - k0)) ticks (1/100 s), daemon RSS $(awk '/VmRSS/ { print $2, $3 }' /proc/$daemon/status)"
while read -r t name before; do echo "  thread $name: $(( $(ticks $t/stat) - before )) ticks"; done < /tmp/t0
kill $daemon
echo PASS
