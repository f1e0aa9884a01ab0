# A managed root below groups that enable nothing for their children, on a
# host no manager claims (busybox init): cgmgr enables the controllers
# top-down in every ancestor, as steps of the plan, rolled back on failure;
# an ancestor holding processes is explained, never emptied by cgmgr.
. /lib.sh
P=/etc/cgmgr; mkdir -p $P
cat > $P/limits.toml <<'TOML'
[group.mem]
memory.max = "32M"
memory.swap.max = "0"

[group.forks]
pids.max = 8
TOML
R=$CG/svc/team
mkdir -p $R
# Nothing enabled anywhere: the state of a fresh boot before any manager.
for c in memory pids cpu io cpuset; do echo "-$c" > $CG/cgroup.subtree_control 2>/dev/null; done
expect_eq "$(cat $CG/svc/cgroup.controllers)" "" "svc starts with no controller"

step "dry run: the steps above the root are in the plan, nothing is written"
before=$(snapshot $CG)
run_cgmgr 0 apply --dry-run --root $R $P
expect_contains "$OUT" "/sys/fs/cgroup/cgroup.subtree_control: +memory (above the managed root)" "plans the hierarchy root"
expect_contains "$OUT" "/sys/fs/cgroup/svc/cgroup.subtree_control: +memory (above the managed root)" "plans the parent"
expect_contains "$OUT" "/sys/fs/cgroup/svc/cgroup.subtree_control: +pids (above the managed root)" "plans pids too"
[ "$(snapshot $CG)" = "$before" ] || fail "the dry run changed cgroupfs"
echo "ok: dry run wrote nothing"

step "an ancestor holding a process: EBUSY explained, everything rolled back"
sleep 300 &
squatter=$!
echo $squatter > $CG/svc/cgroup.procs
before=$(snapshot $CG)
run_cgmgr 1 apply --root $R $P
expect_contains "$OUT" "/sys/fs/cgroup/svc/cgroup.subtree_control" "names the ancestor's file"
expect_contains "$OUT" "EBUSY" "names the errno"
expect_contains "$OUT" "holds processes (1 now)" "says why"
expect_contains "$OUT" "rolled back" "reports the rollback"
[ "$(snapshot $CG)" = "$before" ] || { snapshot $CG > /tmp/after; echo "$before" > /tmp/before; diff /tmp/before /tmp/after; fail "rollback left changes"; }
expect_eq "$(cat $CG/svc/cgroup.procs)" "$squatter" "cgmgr did not move the ancestor's process"
kill $squatter; wait $squatter 2>/dev/null

step "a refused write later in the plan rolls the ancestors back too"
cat > $P/zz-bad.toml <<'TOML'
[group.zz]
cpuset.cpus = "7"
TOML
before=$(snapshot $CG)
run_cgmgr 1 apply --root $R $P
expect_contains "$OUT" "/sys/fs/cgroup/cgroup.subtree_control: +cpuset (above the managed root)" "planned cpuset above"
expect_contains "$OUT" "ERANGE" "the later write failed"
expect_contains "$OUT" "rolled back" "reports the rollback"
[ "$(snapshot $CG)" = "$before" ] || { snapshot $CG > /tmp/after; echo "$before" > /tmp/before; diff /tmp/before /tmp/after; fail "rollback left changes above the root"; }
echo "ok: ancestors' subtree_control as before"
rm $P/zz-bad.toml

step "apply: ancestors set up top-down, the limits enforced by the kernel"
run_cgmgr 0 apply --root $R $P
expect_contains "$(cat $CG/cgroup.subtree_control)" "memory" "hierarchy root enables memory"
expect_contains "$(cat $CG/svc/cgroup.subtree_control)" "pids" "svc enables pids"
expect_contains "$(cat $R/cgroup.subtree_control)" "memory" "the managed root enables memory"
sh -c "echo \$\$ > $R/mem/cgroup.procs; exec dd if=/dev/zero of=/dev/null bs=64M count=1"
expect_eq "$?" 137 "dd beyond memory.max is OOM-killed"
expect_eq "$(key_of $R/mem/memory.events oom_kill)" 1 "memory.events oom_kill"
out=$(sh -c "echo \$\$ > $R/forks/cgroup.procs; for i in \$(seq 20); do sleep 5 & done; kill \$(jobs -p) 2>/dev/null; wait" 2>&1)
expect_contains "$out" "can't fork" "forks beyond pids.max fail"

step "second apply: nothing to do"
run_cgmgr 0 apply --root $R $P
expect_contains "$OUT" "nothing to do" "idempotent"
echo PASS
