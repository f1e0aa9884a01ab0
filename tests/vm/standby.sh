# Prepared sandboxes (`standby = N`): a run that takes one is the run
# `cgmgr exec` would have built, and the kernel enforces the group's limits
# on it the same way: an OOM kill under memory.max, refused forks under
# pids.max, host ids of its own, nothing left once cgmgr exec returns or is
# killed.
. /lib.sh
fail() { echo "FAIL: $*"; echo "--- daemon log"; cat /tmp/daemon.log; exit 1; }
prepared() { prepared_in $CG/box; }

cgmgr rootfs build /rootfs --bin /bin/busybox >/dev/null || fail "rootfs build"
for a in sh cat echo sleep dd seq head; do ln -sf busybox /rootfs/bin/$a; done
P=/etc/cgmgr
mkdir -p $P
cat > $P/box.toml <<'TOML'
[group.box]
memory.max = "32M"
memory.swap.max = "0"
pids.max = 24
[group.box.exec]
rootfs = "/rootfs"
standby = 2
TOML
cgmgr daemon --reconcile 1 $P 2>/tmp/daemon.log &
daemon=$!

step "the daemon prepares two sandboxes"
wait_for 30 "two prepared sandboxes" '[ $(prepared | wc -l) -ge 2 ]'
sleep 0.5
idle=$(prepared | head -1)
echo "MEASURE standby memory.current $(cat $idle/memory.current) bytes, pids $(cat $idle/pids.current)"

step "a run takes one, and its replacement is built"
before=$(prepared)
out=$(cgmgr exec --group box -- sh -c 'cat /proc/self/uid_map; echo pid=$$' 2>&1); rc=$?
echo "$out"
expect_eq "$rc" 0 "exit status"
expect_contains "$out" "pid=2" "the workload in its own pid namespace"
taken() { for r in $before; do [ -d $r ] || return 0; done; return 1; }
wait_for 5 "a prepared sandbox was taken" taken
wait_for 30 "two prepared sandboxes again" '[ $(prepared | wc -l) -ge 2 ]'

step "OOM under memory.max: 137, the report says whose limit"
sleep 0.3
before=$(prepared)
out=$(cgmgr exec --group box --report=json -- dd if=/dev/zero of=/dev/null bs=64M count=1 2>&1); rc=$?
echo "$out"
expect_eq "$rc" 137 "OOM-killed workload"
echo "$out" | tail -1 | grep -qE '"oom_kills":[1-9][0-9]*,"oom_limit_group":"box"' || fail "no OOM kill of box in the report"
echo "ok: the report counts the OOM kill under box's memory.max"
wait_for 5 "the OOM-killed run took a prepared sandbox" taken
grep -q "group=box file=memory.events event=oom_kill" /tmp/daemon.log || fail "the daemon did not log the OOM kill"
echo "ok: the daemon logged it"

step "pids.max: forks refused, counted for this run"
wait_for 30 "a prepared sandbox" '[ $(prepared | wc -l) -ge 1 ]'
sleep 0.3
before=$(prepared)
out=$(cgmgr exec --group box --report=json -- sh -c 'for i in $(seq 40); do sleep 1 & done; wait' 2>&1 | tail -1)
echo "$out"
echo "$out" | grep -qE '"pids_max_refusals":[1-9]' || fail "no pids.max refusals in: $out"
echo "ok: this run's pids.max refusals"
wait_for 5 "the run took a prepared sandbox" taken

step "two runs at once: host ids of their own"
wait_for 30 "two prepared sandboxes" '[ $(prepared | wc -l) -ge 2 ]'
sleep 0.3
cgmgr exec --group box -- sh -c 'cat /proc/self/uid_map; sleep 2' > /tmp/a.out 2>&1 &
a=$!
cgmgr exec --group box -- sh -c 'cat /proc/self/uid_map; sleep 2' > /tmp/b.out 2>&1 &
b=$!
wait $a; wait $b
cat /tmp/a.out /tmp/b.out
ida=$(awk '$1 == 0 { print $2 }' /tmp/a.out); idb=$(awk '$1 == 0 { print $2 }' /tmp/b.out)
[ -n "$ida" ] && [ -n "$idb" ] && [ "$ida" != "$idb" ] || fail "the two runs share host ids: '$ida' '$idb'"
echo "ok: distinct host ids $ida and $idb"

step "served runs one after another: distinct host ids, a rootfs they cannot write"
wait_for 30 "two prepared sandboxes" '[ $(prepared | wc -l) -ge 2 ]'
sleep 0.3
one=$(cgmgr exec --group box -- sh -c 'cat /proc/self/uid_map; echo secret > /var-note 2>&1 || echo refused-write' 2>&1)
wait_for 30 "two prepared sandboxes" '[ $(prepared | wc -l) -ge 2 ]'
two=$(cgmgr exec --group box -- sh -c 'cat /proc/self/uid_map' 2>&1)
echo "$one"; echo "$two"
expect_contains "$one" "refused-write" "a served run cannot write the shared rootfs"
[ -e /rootfs/var-note ] && fail "the served run wrote into the rootfs"
id1=$(echo "$one" | awk '$1 == 0 { print $2 }'); id2=$(echo "$two" | awk '$1 == 0 { print $2 }')
[ -n "$id1" ] && [ "$id1" != "$id2" ] || fail "consecutive served runs share host ids: '$id1' '$id2'"
echo "ok: consecutive served runs: $id1 then $id2"

step "nothing outlives cgmgr exec, killed or not"
wait_for 30 "a prepared sandbox" '[ $(prepared | wc -l) -ge 1 ]'
sleep 0.3
cgmgr exec --group box -- sh -c 'sleep 300 & sleep 300 & echo started; sleep 300' > /tmp/k.out 2>&1 &
client=$!
wait_for 5 "the workload started" 'grep -q started /tmp/k.out'
run=$(for d in $CG/box/cgmgr.run.*; do grep -q . $d/cgroup.procs && [ "$(wc -l < $d/cgroup.procs)" -gt 2 ] && basename $d; done)
[ -n "$run" ] || fail "the busy run group is not found"
echo "the run: $run ($(wc -l < $CG/box/$run/cgroup.procs) processes)"
kill -9 $client
wait_for 5 "the run of the killed cgmgr exec ended" '[ ! -d $CG/box/$run ]'
survivors=$(ps | grep -c '[s]leep 300')
expect_eq "$survivors" 0 "sleep processes left"

step "a prepared sandbox killed mid-run: the run was killed (137), not a cgmgr failure (125)"
wait_for 30 "a prepared sandbox" '[ $(prepared | wc -l) -ge 1 ]'
sleep 0.3
cgmgr exec --group box --report-file /tmp/lost.json -- sh -c 'echo started; sleep 300; echo never' > /tmp/lost.out 2>&1 &
client=$!
wait_for 5 "the workload started" 'grep -q started /tmp/lost.out'
run=$(for d in $CG/box/cgmgr.run.*; do [ "$(wc -l < $d/cgroup.procs)" -gt 2 ] && basename $d; done)
[ -n "$run" ] || fail "the busy run group is not found"
# The sandbox is the `cgmgr standby` process holding the caller's
# connection: the parent of the run's init (pid 1 in its namespace).
standby=
for p in $(cat $CG/box/$run/cgroup.procs); do
  grep -q '^NSpid:.*[[:space:]]1$' /proc/$p/status && standby=$(awk '$1 == "PPid:" { print $2 }' /proc/$p/status)
done
[ -n "$standby" ] || fail "the run's sandbox process is not found"
echo "killing the sandbox process $standby: $(tr '\0' ' ' < /proc/$standby/cmdline)"
kill -9 $standby
wait $client; rc=$?
cat /tmp/lost.out; cat /tmp/lost.json; echo
expect_eq "$rc" 137 "exit status of the run whose sandbox was killed"
expect_contains "$(cat /tmp/lost.out)" "cgmgr: exec: the prepared sandbox ended without telling the workload's exit status: the run was killed with it (exit 137)" "one stderr line says so"
expect_contains "$(cat /tmp/lost.json)" '"status":"signal"' "the report's verdict"
expect_contains "$(cat /tmp/lost.json)" '"exit_signal":9' "the report's signal"

step "a client's descriptors never reach the daemon"
# From 6.16 the socket refuses them (SO_PASSRIGHTS: sendmsg fails); before,
# the daemon reads requests with no room for descriptors, so the kernel
# drops them without installing one in the daemon.
fds() { ls /proc/$daemon/fd | wc -l; }
before_fds=$(fds)
out=$(fd_sender /run/cgmgr/exec.sock 100 2>&1)
echo "$out"
expect_contains "$out" "fd_sender: sent" "the client ran"
case "$out" in
  *"sent 100, refused 0"*) echo "ok: this kernel has no SO_PASSRIGHTS: 20000 descriptors were sent" ;;
  *"sent 0, refused 100"*) echo "ok: the socket refused every descriptor (SO_PASSRIGHTS)" ;;
  *) fail "neither all sent nor all refused: $out" ;;
esac
wait_for 5 "the daemon's descriptors back to $before_fds" '[ $(fds) -le $before_fds ]'
echo "ok: the daemon holds $(fds) descriptors, as before ($before_fds)"
out=$(cgmgr exec --group box -- echo served 2>&1); rc=$?
expect_eq "$rc" 0 "a run after the flood"
expect_contains "$out" "served" "the daemon still serves"

step "a stopped daemon leaves no prepared sandbox behind"
kill -TERM $daemon
wait $daemon
wait_for 5 "every prepared run group removed" '! ls -d $CG/box/cgmgr.run.* 2>/dev/null'
echo PASS
