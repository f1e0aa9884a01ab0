# `cgmgr kill` ends every process of a group and its descendants, frozen or
# not, on every kernel: with cgroup.kill (5.14+) and, before it (Debian 11's
# 5.10), by hand: freeze, SIGKILL each member through a pidfd, thaw.
. /lib.sh
echo "+pids" > $CG/cgroup.subtree_control
mkdir -p $CG/g/child $CG/calm
if [ -e $CG/g/cgroup.kill ]; then echo "this kernel has cgroup.kill"; else echo "this kernel has no cgroup.kill"; fi
start_in() { sh -c "echo \$\$ > $1/cgroup.procs; exec sleep 1000" & }
start_in $CG/g; start_in $CG/g; start_in $CG/g/child; start_in $CG/calm
sleep 0.5
calm=$(cat $CG/calm/cgroup.procs)
# A process that forks as fast as it can: it must not escape the kill.
sh -c "echo \$\$ > $CG/g/child/cgroup.procs; while :; do sleep 100 & done" &
sleep 0.5

step "cgmgr kill of a group with a fork loop in a child"
run_cgmgr 0 kill g --timeout 10
expect_contains "$OUT" "g: killed" "says what it killed"
expect_eq "$(key_of $CG/g/cgroup.events populated)" 0 "g is empty"
expect_eq "$(key_of $CG/g/cgroup.events frozen)" 0 "g is not left frozen"
expect_eq "$(cat $CG/calm/cgroup.procs)" "$calm" "the other group is untouched"
rmdir $CG/g/child $CG/g || fail "the emptied groups cannot be removed"

step "cgmgr kill of a frozen group"
mkdir -p $CG/f
start_in $CG/f; start_in $CG/f
sleep 0.5
run_cgmgr 0 freeze f
run_cgmgr 0 kill f
expect_eq "$(key_of $CG/f/cgroup.events populated)" 0 "the frozen group is empty"
expect_eq "$(cat $CG/f/cgroup.freeze)" 1 "and still asked to be frozen, as it was"
rmdir $CG/f || fail "f cannot be removed"
step "a run that ignores SIGTERM, without a pid namespace, is killed after the grace period"
mkdir -p $CG/s
cgmgr exec --group s --ns user -- sh -c 'trap "" TERM; touch /tmp/s-ready; while :; do sleep 1; done' > /tmp/s.out 2>&1 &
spid=$!
for i in $(seq 100); do [ -e /tmp/s-ready ] && break; sleep 0.1; done
kill -TERM $spid
for i in $(seq 300); do kill -0 $spid 2>/dev/null || break; sleep 0.1; done
kill -0 $spid 2>/dev/null && fail "cgmgr exec still runs 30 s after SIGTERM"
wait $spid; rc=$?
cat /tmp/s.out
expect_contains "$(cat /tmp/s.out)" "did not stop within 10s of the signal: killed" "killed after the grace period"
expect_eq "$(key_of $CG/s/cgroup.events populated)" 0 "nothing of the run is left"
echo "ok: exit $rc"
kill $calm
echo PASS
