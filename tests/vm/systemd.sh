# cgmgr on a host whose PID 1 is systemd: the shipped unit, unchanged, with
# the example policies in /etc/cgmgr. Run by tests/vm/run-systemd.sh as the
# unit cgmgr-test.service. Lines starting "MEASURE" are figures.
. /lib.sh
U=$CG/system.slice/cgmgr.service
now() { cut -d' ' -f1 /proc/uptime; }
ms_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%d", (b - a) * 1000 }'; }
show() { systemctl show -p "$2" --value "$1"; }
# wait_for SECS DESCRIPTION COMMAND...: polls COMMAND every 50 ms
wait_for() {
  secs=$1; what=$2; shift 2; t0=$(now)
  until "$@"; do
    [ "$(ms_since "$t0")" -gt $((secs * 1000)) ] && fail "$what: not within ${secs}s"
    sleep 0.05
  done
}
journal() { journalctl -u cgmgr --no-pager -o cat "$@"; }

step "systemd is PID 1 and owns the tree"
expect_eq "$(cat /proc/1/comm)" systemd "PID 1"
[ -d /run/systemd/system ] || fail "no /run/systemd/system"
root_ctl=$(cat $CG/cgroup.subtree_control)
echo "root subtree_control at boot: $root_ctl"

step "control: systemd reverts a foreign group's limits at daemon-reload"
# What the ownership rule protects against, shown on this very host.
echo +cpu > $CG/cgroup.subtree_control
mkdir $CG/foreign
echo "10000 100000" > $CG/foreign/cpu.max
expect_eq "$(cat $CG/foreign/cpu.max)" "10000 100000" "a foreign write at systemd's root"
systemctl daemon-reload
# systemd 247 and 252 write the root's controllers back to what their units
# need; 257 leaves a controller it did not enable alone, but still owns the
# tree (cgmgr refuses either way, below).
systemd_version=$(systemctl --version | awk 'NR == 1 { print $2 }')
if [ "$systemd_version" -lt 257 ]; then
  [ -e $CG/foreign/cpu.max ] && fail "systemd $systemd_version kept the foreign cpu.max: the control does not show the problem"
  echo "ok: after daemon-reload the foreign cpu.max is gone ($(cat $CG/cgroup.subtree_control))"
else
  [ -e $CG/foreign/cpu.max ] || fail "systemd $systemd_version removed the foreign cpu controller: update this control"
  echo "ok: systemd $systemd_version keeps a controller it did not enable ($(cat $CG/cgroup.subtree_control))"
fi
rmdir $CG/foreign
# The root as systemd made it, for the steps below, on every release.
[ "$(cat $CG/cgroup.subtree_control)" = "$root_ctl" ] || echo -cpu > $CG/cgroup.subtree_control \
  || fail "cannot take back the control's +cpu"

step "apply at systemd's root is refused; nothing is written"
before=$(snapshot $CG | grep -v -e '^== .*\.scope/' -e '^/.*\.scope')
for args in "--root $CG /etc/cgmgr" "/etc/cgmgr" "--dry-run --root $CG /etc/cgmgr"; do
  # shellcheck disable=SC2086
  run_cgmgr 1 apply $args
  expect_contains "$OUT" "refusing to write under $CG: systemd manages this host's cgroup tree" "refusal names the cgroup and the owner"
  expect_contains "$OUT" "daemon-reload" "says why"
  expect_contains "$OUT" "systemctl start cgmgr" "way forward: the daemon"
  expect_contains "$OUT" "systemd-run --scope -p Delegate=yes" "way forward: a delegated scope"
done
expect_contains "$OUT" "dry run: nothing was written" "--dry-run prints the plan, then the refusal"
after=$(snapshot $CG | grep -v -e '^== .*\.scope/' -e '^/.*\.scope')
[ "$before" = "$after" ] || { echo "$before" > /tmp/a; echo "$after" > /tmp/b; diff /tmp/a /tmp/b; fail "the refused apply changed the tree"; }
echo "ok: the tree is unchanged"

step "systemctl start cgmgr reaches active through READY=1"
t0=$(now)
systemctl start cgmgr || { journal; systemctl status cgmgr --no-pager; fail "systemctl start cgmgr"; }
echo "MEASURE systemctl_start_ms=$(ms_since "$t0")"
expect_eq "$(systemctl is-active cgmgr)" active "cgmgr.service"
exec_start=$(show cgmgr ExecMainStartTimestampMonotonic)
active=$(show cgmgr ActiveEnterTimestampMonotonic)
echo "MEASURE exec_to_ready_ms=$(( (active - exec_start) / 1000 ))"
expect_eq "$(show cgmgr Type)" notify "Type"
expect_eq "$(show cgmgr Delegate)" yes "Delegate"
expect_eq "$(show cgmgr WatchdogUSec)" 30s "WatchdogSec"
pid=$(show cgmgr MainPID)

step "limits land under system.slice/cgmgr.service/<group>"
expect_eq "$(cat $U/cgmgr.leaf/cgroup.procs)" "$pid" "the daemon moved itself into cgmgr.leaf"
expect_eq "$(cat $U/cgroup.procs)" "" "the unit's own cgroup holds no process"
expect_eq "$(cat $U/sandbox/memory.max)" 67108864 "sandbox memory.max"
expect_eq "$(cat $U/sandbox/cpu.max)" "50000 100000" "sandbox cpu.max"
expect_eq "$(cat $U/sandbox/pids.max)" 32 "sandbox pids.max"
expect_eq "$(cat $U/batch/etl/cpu.max)" "100000 100000" "batch/etl cpu.max"
expect_eq "$(cat $U/batch/memory.max)" 536870912 "batch memory.max"
[ -d $CG/sandbox ] && fail "a group was created at systemd's root"
expect_contains "$(cat /run/cgmgr/daemon)" "root $U" "the daemon's record names its root"
expect_contains "$(cat /run/cgmgr/daemon)" "policies /etc/cgmgr" "and its policy directory"

step "cgmgr exec, status and metrics without --root find the daemon's groups"
cgmgr rootfs build /var/lib/cgmgr/rootfs/sandbox --bin /bin/busybox >/dev/null || fail "rootfs build"
for a in sh cat dd head sleep; do ln -sf busybox /var/lib/cgmgr/rootfs/sandbox/bin/$a; done
out=$(cgmgr exec --group sandbox -- cat /proc/self/cgroup); rc=$?
expect_eq "$rc" 0 "exec status"
expect_contains "$out" "0::/system.slice/cgmgr.service/sandbox/cgmgr.run." "the workload runs in the daemon's group"
cgmgr exec --group sandbox -- dd if=/dev/zero of=/dev/null bs=96M count=1 2>/dev/null
expect_eq "$?" 137 "dd of 96M under the daemon's memory.max 64M: OOM-killed"
events=$(cat $U/sandbox/memory.events)
case "$events" in
  *oom_group_kill*) expect_contains "$events" "oom_group_kill 1" "memory.events: the group was OOM-killed as a whole (memory.oom.group)" ;;
  # Before 5.17 memory.events has no oom_group_kill: one OOM event, and
  # each process the group kill took counted in oom_kill.
  *) echo "$events" | grep -qx "oom 1" && echo "$events" | grep -qE "^oom_kill [1-9]" \
       || fail "memory.events (no oom_group_kill on this kernel): not one OOM with kills: $events"
     echo "ok: memory.events without oom_group_kill: one OOM, $(echo "$events" | grep oom_kill)" ;;
esac
out=$(cgmgr exec --group sandbox --report=json -- dd if=/dev/zero of=/dev/null bs=96M count=1 2>&1 | tail -1)
echo "$out"
expect_contains "$out" '"group":"sandbox","exit_code":137,' "--report=json under the unit: this run's exit"
echo "$out" | grep -qE '"oom_kills":[1-9][0-9]*,"oom_limit_group":"sandbox"' || fail "--report=json does not name sandbox's limit: $out"
echo "ok: --report=json names the daemon's group whose limit fired"
run_cgmgr 0 metrics
expect_contains "$OUT" 'cgmgr_memory_limit_bytes{group="sandbox"} 67108864' "metrics from the daemon's root"
run_cgmgr 0 status --interval 0.2 sandbox
expect_contains "$OUT" "sandbox" "status of the daemon's group"

step "freeze, thaw and kill without --root act on the daemon's group"
sh -c "echo \$\$ > $U/batch/etl/cgroup.procs; exec sleep 300" &
sleeper=$!
sleep 0.3
run_cgmgr 0 freeze batch
expect_eq "$(key_of $U/batch/cgroup.events frozen)" 1 "batch frozen under the unit"
run_cgmgr 0 thaw batch
expect_eq "$(key_of $U/batch/cgroup.events frozen)" 0 "batch thawed"
run_cgmgr 0 kill batch
expect_eq "$OUT" "batch: killed 1 process(es); empty" "kill empties the daemon's group"
wait $sleeper; expect_eq "$?" 137 "the sleeper died by SIGKILL"
expect_eq "$(systemctl is-active cgmgr)" active "the daemon is unaffected"
[ -d $U/batch/etl ] || fail "kill removed the group"

step "a pressure rule of the unit's daemon: armed at reload, acts under the unit, logged in the journal"
cat > /etc/cgmgr/hot.toml <<'TOML'
[group.hot]
cpu.max = "10%"

[[group.hot.pressure]]
resource = "cpu"
kind = "some"
above = "50%"
window = "2s"
action = "kill"
TOML
systemctl reload cgmgr || fail "systemctl reload"
wait_for 20 "the rule armed" sh -c "journalctl -u cgmgr --no-pager -o cat | grep -q 'pressure: armed group=hot'"
sh -c "echo \$\$ > $U/hot/cgroup.procs; exec sh -c 'while :; do :; done'" &
hot=$!
wait_for 30 "hot emptied by its rule" sh -c "[ -z \"\$(cat $U/hot/cgroup.procs)\" ]"
wait $hot; expect_eq "$?" 137 "the throttled spinner died by SIGKILL"
expect_contains "$(journal | grep 'pressure: group=hot')" "resource=cpu kind=some" "the decision is in the journal"
expect_contains "$(journal | grep 'pressure: group=hot')" "by the group's own cpu.max, which is not contention" "naming the throttling"
expect_contains "$(journal | grep 'pressure: group=hot')" "action=kill result=done" "and its result"
expect_contains "$(wget -q -O - http://127.0.0.1:9765/metrics)" 'cgmgr_pressure_actions_total{action="kill",group="hot",resource="cpu",result="done"} 1' "counted in the daemon's metrics"
expect_eq "$(systemctl is-active cgmgr)" active "the daemon is unaffected"
rm /etc/cgmgr/hot.toml
systemctl reload cgmgr || fail "systemctl reload"

step "apply against the daemon's root is refused and names its policy directory"
run_cgmgr 1 apply /etc/cgmgr
expect_contains "$OUT" "the cgmgr daemon (pid $pid) manages it with the policies in /etc/cgmgr" "names the daemon"
run_cgmgr 0 apply --dry-run /etc/cgmgr
expect_contains "$OUT" "nothing to do" "a dry run against the daemon's root"

step "systemctl reload applies an edited policy"
sed -i 's/^pids.max = 32 /pids.max = 20 /' /etc/cgmgr/sandbox.toml
grep -q '^pids.max = 20 ' /etc/cgmgr/sandbox.toml || fail "the edit did not take"
systemctl reload cgmgr || fail "systemctl reload"
wait_for 20 "edited pids.max" sh -c "[ \"\$(cat $U/sandbox/pids.max)\" = 20 ]"
echo "ok: pids.max 32 -> 20"
# Reload latency through systemctl alone: a drifted value (the reconcile
# tick is 30 s away) is restored by the reload.
for i in 1 2 3; do
  echo 7 > $U/sandbox/pids.max
  t0=$(now)
  systemctl reload cgmgr
  wait_for 20 "reload restores pids.max" sh -c "[ \"\$(cat $U/sandbox/pids.max)\" = 20 ]"
  echo "MEASURE systemctl_reload_to_kernel_ms=$(ms_since "$t0")"
done
expect_contains "$(journal)" "reloading policies from /etc/cgmgr (SIGHUP)" "the journal shows the SIGHUP reload"

step "a failed reload is an error in the journal; the policy in force stays"
printf '[group.extra]\npids.max = "lots"\n' > /etc/cgmgr/bad.toml
systemctl reload cgmgr
wait_for 20 "an error entry" sh -c "journalctl -u cgmgr -p err --no-pager -o cat | grep -q 'reload rejected'"
errs=$(journal -p err)
echo "$errs"
expect_contains "$errs" "bad.toml:2:12" "the error names the file, line and column"
expect_not_contains "$errs" "serving /metrics" "info lines are not at error priority"
expect_contains "$(journal -p info)" "serving /metrics" "info lines are in the journal"
expect_eq "$(cat $U/sandbox/pids.max)" 20 "previous policy still enforced"
[ -d $U/extra ] && fail "the invalid set was partly applied"
rm /etc/cgmgr/bad.toml
systemctl reload cgmgr

step "daemon-reload and other units coming and going remove none of cgmgr's limits"
systemd-run --quiet --unit=noise -p CPUQuota=20% -p MemoryMax=50M -p TasksMax=10 /bin/sleep 30 || fail "systemd-run noise"
systemd-run --quiet --scope -p Delegate=yes --unit=noise2 /bin/true || fail "systemd-run --scope"
systemctl daemon-reload
systemctl stop noise
systemctl daemon-reload
expect_eq "$(cat $U/sandbox/memory.max)" 67108864 "sandbox memory.max after daemon-reload"
expect_eq "$(cat $U/sandbox/cpu.max)" "50000 100000" "sandbox cpu.max after daemon-reload"
expect_eq "$(cat $U/sandbox/pids.max)" 20 "sandbox pids.max after daemon-reload"
expect_eq "$(cat $U/batch/etl/cpu.max)" "100000 100000" "batch/etl cpu.max after daemon-reload"
expect_contains "$(cat $U/cgroup.subtree_control)" "cpu" "cpu still enabled in the delegated cgroup"
expect_contains "$(cat $U/cgroup.subtree_control)" "memory" "memory still enabled in the delegated cgroup"
expect_eq "$(systemctl is-active cgmgr)" active "cgmgr still running"
expect_eq "$(show cgmgr NRestarts)" 0 "no restart"

step "the watchdog is fed"
w0=$(show cgmgr WatchdogTimestampMonotonic)
wait_for 40 "a WATCHDOG=1 ping (every 15 s)" sh -c "[ \"\$(systemctl show -p WatchdogTimestampMonotonic --value cgmgr)\" != $w0 ]"
echo "ok: watchdog timestamp moved from $w0 to $(show cgmgr WatchdogTimestampMonotonic)"

step "kill -9: systemd restarts the daemon; its record follows"
kill -9 "$pid"
wait_for 30 "a restarted daemon" sh -c "[ \"\$(systemctl show -p NRestarts --value cgmgr)\" = 1 ] && [ \"\$(systemctl is-active cgmgr)\" = active ]"
pid=$(show cgmgr MainPID)
expect_contains "$(cat /run/cgmgr/daemon)" "pid $pid" "the record names the new daemon"
run_cgmgr 0 metrics
expect_contains "$OUT" 'cgmgr_memory_limit_bytes{group="sandbox"} 67108864' "metrics after the restart"

step "prepared sandboxes: not under the unit's hardening, served with systemd/standby.conf"
cat > /etc/cgmgr/quick.toml <<'TOML'
[group.quick]
memory.max = "64M"
memory.swap.max = "0"
pids.max = 16
[group.quick.exec]
rootfs = "/var/lib/cgmgr/rootfs/sandbox"
standby = 1
TOML
systemctl reload cgmgr || fail "systemctl reload"
journal_has() { journal | grep -qF "$1"; }
wait_for 10 "the refusal in the journal" journal_has 'not serving prepared sandboxes (`standby`) for quick' 
expect_contains "$(journal)" "this daemon runs under a seccomp filter" "why: the unit's hardening reaches what it starts"
out=$(cgmgr exec --group quick -- sh -c 'echo served') || fail "exec without a prepared sandbox"
expect_eq "$out" served "cgmgr exec builds the sandbox itself meanwhile"
mkdir -p /etc/systemd/system/cgmgr.service.d
cp /usr/local/share/cgmgr/standby.conf /etc/systemd/system/cgmgr.service.d/
systemctl daemon-reload
systemctl restart cgmgr || { journal; fail "restart with the drop-in"; }
expect_eq "$(awk '/^Seccomp:/ { print $2 }' /proc/$(show cgmgr MainPID)/status)" 0 "seccomp mode of the daemon with the drop-in"
has_prepared() { [ -n "$(prepared_in $U/quick)" ]; }
wait_for 20 "a prepared sandbox under the unit" has_prepared
sleep 0.5
ready=$(prepared_in $U/quick)
echo "prepared: $ready"
cgmgr exec --group quick -- dd if=/dev/zero of=/dev/null bs=96M count=1 2>/dev/null
expect_eq "$?" 137 "dd of 96M through a prepared sandbox, under quick's memory.max 64M: OOM-killed"
wait_for 5 "the run took the prepared sandbox" sh -c "! [ -d $ready ]"
expect_contains "$(cat $U/quick/memory.events)" "oom_kill 1" "the kernel counted the OOM kill in quick"
wait_for 20 "a new prepared sandbox" has_prepared
expect_not_contains "$(journal)" "could not be prepared" "no standby failed"

step "a judge's runs under the unit: verdicts from the report file, direct and prepared"
mkdir -p /srv/sub /var/lib/cgmgr/rootfs/sandbox/sub /var/lib/cgmgr/rootfs/sandbox/work
echo 'while :; do :; done' > /srv/sub/spin.sh
cat > /etc/cgmgr/judge.toml <<'TOML'
[group.judge]
memory.max = "32M"
pids.max = 16
[group.judge.exec]
rootfs = "/var/lib/cgmgr/rootfs/sandbox"
time_limit = "1s"
wall_limit = "5s"
mounts = [{ bind = "/srv/sub", at = "/sub", readonly = true }, { tmpfs = "/work", size = "1M" }]
standby = 1
TOML
systemctl reload cgmgr || fail "systemctl reload"
has_judge() { [ -n "$(prepared_in $U/judge)" ]; }
wait_for 20 "a prepared judge sandbox under the unit" has_judge
ready=$(prepared_in $U/judge)
cgmgr exec --group judge --report-file /tmp/r.json -- sh /sub/spin.sh 2>/tmp/judge.err
expect_eq "$?" 137 "the spinning submission is killed"
expect_contains "$(cat /tmp/r.json)" '"status":"time"' "its verdict, through the prepared sandbox"
expect_contains "$(cat /tmp/judge.err)" "killed: time limit 1.000s exceeded" "the line that names the limit"
wait_for 5 "the run took the prepared sandbox" sh -c "! [ -d $ready ]"
cgmgr exec --group judge --wall-limit 1s --report-file /tmp/r.json -- sleep 10 2>/dev/null
expect_eq "$?" 137 "a direct run (its own flag) killed at its wall limit"
expect_contains "$(cat /tmp/r.json)" '"status":"wall"' "its verdict"
out=$(cgmgr exec --group judge -- sh -c 'touch /sub/x 2>&1; echo hi > /work/y && cat /work/y')
expect_contains "$out" "Read-only file system" "the submission's bind is read-only"
expect_contains "$out" "hi" "the tmpfs is writable"
rm /etc/cgmgr/judge.toml
systemctl reload cgmgr || fail "systemctl reload"

step "systemctl stop is clean within the unit's timeout"
t0=$(now)
systemctl stop cgmgr
ms=$(ms_since "$t0")
echo "MEASURE systemctl_stop_ms=$ms"
[ "$ms" -lt 10000 ] || fail "stop took ${ms} ms (TimeoutStopSec=10s)"
expect_eq "$(show cgmgr Result)" success "Result"
expect_eq "$(show cgmgr ExecMainStatus)" 0 "exit status"
expect_contains "$(journal)" "stopping; groups and workloads are left in place" "the daemon logged its stop"
[ -e /run/cgmgr/daemon ] && fail "the runtime directory outlived the unit"

step "exec with no daemon: a transient scope with Delegate=yes"
run_cgmgr 125 exec --group nosuch -- true
expect_contains "$OUT" "nosuch" "an undeclared group is named"
expect_eq "$(systemctl list-units --all --no-legend 'cgmgr-exec-*' | wc -l)" 0 "and no scope was asked for"
out=$(cgmgr exec --group sandbox -- cat /proc/self/cgroup); rc=$?
expect_eq "$rc" 0 "exec status"
case "$out" in
  0::/system.slice/cgmgr-exec-sandbox-*.scope/sandbox/cgmgr.run.*) echo "ok: workload in $out";;
  *) fail "workload not in a cgmgr-exec scope: $out";;
esac
cgmgr exec --group sandbox -- sleep 8 &
execpid=$!
scope=cgmgr-exec-sandbox-$execpid.scope
S=$CG/system.slice/$scope
wait_for 20 "the scope's group" test -f $S/sandbox/memory.max
expect_eq "$(systemctl is-active $scope)" active "the scope is a running unit"
expect_eq "$(show $scope Delegate)" yes "Delegate=yes"
expect_contains "$(systemctl status $scope --no-pager)" "sleep" "systemctl status shows the workload"
expect_eq "$(cat $S/sandbox/memory.max)" 67108864 "limits in the scope"
systemctl daemon-reload
expect_eq "$(cat $S/sandbox/memory.max)" 67108864 "limits in the scope after daemon-reload"
expect_eq "$(cat $S/sandbox/pids.max)" 20 "pids.max in the scope after daemon-reload"
wait $execpid
expect_eq "$?" 0 "the sleeping workload's status"
wait_for 20 "the scope goes away with its workload" sh -c "! [ -d $S ]"
expect_eq "$(systemctl is-active $scope)" inactive "the scope is gone"
cgmgr exec --group sandbox -- dd if=/dev/zero of=/dev/null bs=96M count=1 2>/dev/null
expect_eq "$?" 137 "OOM-killed by the scope's group limit"
wait_for 20 "every run's scope to go away" sh -c "! ls -d $CG/system.slice/cgmgr-exec-* 2>/dev/null"

step "a daemon that cannot start says why, at error priority"
nc -l -p 9765 >/dev/null 2>&1 &
squatter=$!
sleep 0.3
systemctl start cgmgr && fail "cgmgr started though its port is taken"
wait_for 20 "the reason in the journal" sh -c "journalctl -u cgmgr -p err --no-pager -o cat | grep -q 'listening on 127.0.0.1:9765'"
expect_contains "$(journal -p err)" "listening on 127.0.0.1:9765" "the daemon's last words, at error priority"
systemctl stop cgmgr
kill $squatter
echo PASS
