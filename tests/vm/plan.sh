# Apply as a transaction: nested groups, dry run, idempotence, old -> new,
# refusal to lower memory.max under usage, rollback, prune.
. /lib.sh
P=/etc/cgmgr; mkdir -p $P
cat > $P/nested.toml <<'TOML'
[group.batch]
cpu.max = "150%"
memory.max = "512M"
pids.max = 256

[group."batch/etl"]
memory.high = "256M"
memory.max = "384M"
pids.max = 128
TOML

step "dry run writes nothing"
before=$(snapshot $CG)
run_cgmgr 0 apply --dry-run $P
expect_contains "$OUT" "create batch/etl" "plan creates the nested group"
expect_contains "$OUT" "(root) cgroup.subtree_control: +memory" "plan enables memory at the root"
expect_contains "$OUT" "batch/cgroup.subtree_control: +pids" "plan enables pids in batch"
expect_contains "$OUT" "dry run: nothing was written" "dry run says so"
[ -d $CG/batch ] && fail "dry run created a group"
[ "$(snapshot $CG)" = "$before" ] || fail "dry run changed cgroupfs"

step "nested apply: controllers top-down"
run_cgmgr 0 apply $P
expect_eq "$(cat $CG/batch/etl/memory.max)" 402653184 "batch/etl memory.max"
expect_eq "$(cat $CG/batch/etl/pids.max)" 128 "batch/etl pids.max"
expect_contains "$(cat $CG/batch/cgroup.subtree_control)" "memory" "batch enables memory for etl"
expect_eq "$(cat $CG/batch/cpu.max)" "150000 100000" "batch cpu.max"

step "second apply writes nothing and says so"
before=$(snapshot $CG/batch)
run_cgmgr 0 apply $P
expect_contains "$OUT" "nothing to do: 2 group(s)" "idempotent re-apply"
[ "$(snapshot $CG/batch)" = "$before" ] || fail "re-apply changed something"

step "a changed value is shown old -> new and only it is written"
sed -i 's/pids.max = 128/pids.max = 64/' $P/nested.toml
run_cgmgr 0 apply $P
expect_contains "$OUT" "batch/etl/pids.max: 128 -> 64" "plan shows old -> new"
expect_contains "$OUT" "applied: 1 change(s) written" "one write"
expect_eq "$(cat $CG/batch/etl/pids.max)" 64 "new pids.max"

step "memory.max below current usage is refused without --force"
sh -c "echo \$\$ > $CG/batch/etl/cgroup.procs; dd if=/dev/zero of=/tmp/fill bs=1M count=24 2>/dev/null; exec sleep 1000" &
hog=$!
sleep 1
usage=$(cat $CG/batch/etl/memory.current)
echo "batch/etl memory.current = $usage"
sed -i 's/memory.max = "384M"/memory.max = "4M"/; s/memory.high = "256M"/memory.high = "max"/' $P/nested.toml
run_cgmgr 1 apply $P
expect_contains "$OUT" "refusing to apply; nothing was written" "refusal"
expect_contains "$OUT" "above the new memory.max of 4 MiB" "names the usage and the limit"
expect_contains "$OUT" "use --force" "suggests --force"
expect_eq "$(cat $CG/batch/etl/memory.max)" 402653184 "memory.max unchanged"
run_cgmgr 0 apply --force $P
expect_eq "$(cat $CG/batch/etl/memory.max)" 4194304 "forced memory.max"
kill $hog 2>/dev/null; wait $hog 2>/dev/null; rm -f /tmp/fill

step "a refused write midway is rolled back"
cat > $P/zz-bad.toml <<'TOML'
[group.newgroup]
pids.max = 10

[group.zz]
cpuset.cpus = "7"
TOML
before=$(snapshot $CG)
run_cgmgr 1 apply $P
expect_contains "$OUT" "writing \"7\" to /sys/fs/cgroup/zz/cpuset.cpus" "names the file and value"
expect_contains "$OUT" "ERANGE" "names the errno"
expect_contains "$OUT" "rolled back" "reports the rollback"
[ -d $CG/newgroup ] && fail "newgroup was left behind"
[ -d $CG/zz ] && fail "zz was left behind"
[ "$(snapshot $CG)" = "$before" ] || { snapshot $CG > /tmp/after; echo "$before" > /tmp/before; diff /tmp/before /tmp/after; fail "rollback left changes"; }
echo "ok: cgroupfs identical to before the failed apply"
rm $P/zz-bad.toml

step "prune removes undeclared managed groups, refuses populated ones"
cat > $P/extra.toml <<'TOML'
[group.old]
pids.max = 5
[group.busy]
pids.max = 5
TOML
run_cgmgr 0 apply $P
mkdir $CG/foreign
sh -c "echo \$\$ > $CG/busy/cgroup.procs; exec sleep 1000" &
sleeper=$!
rm $P/extra.toml
run_cgmgr 1 apply --prune $P
expect_contains "$OUT" "busy is no longer declared but is populated" "populated group refused"
[ -d $CG/old ] || fail "a refused prune still removed old"
kill $sleeper; wait $sleeper 2>/dev/null
run_cgmgr 0 apply --prune $P
expect_contains "$OUT" "remove old" "plan removes old"
[ -d $CG/old ] && fail "old still exists"
[ -d $CG/busy ] && fail "busy still exists"
[ -d $CG/foreign ] || fail "prune removed a group cgmgr did not create"
[ -d $CG/batch/etl ] || fail "prune removed a declared group"

step "a group removed behind cgmgr's back is recreated"
rmdir $CG/batch/etl
run_cgmgr 0 apply $P
[ -d $CG/batch/etl ] || fail "etl not recreated"
expect_eq "$(cat $CG/batch/etl/pids.max)" 64 "recreated etl pids.max"

step "crash-restart: a group created but never written is completed"
cat > $P/crash.toml <<'TOML'
[group.crashed]
pids.max = 7
TOML
mkdir $CG/crashed
run_cgmgr 0 apply $P
expect_contains "$OUT" "crashed/pids.max: max -> 7" "existing group is adopted and written"
expect_eq "$(cat $CG/crashed/pids.max)" 7 "crashed pids.max"
echo PASS
