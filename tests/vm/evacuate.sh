# Tree setup at a delegated subtree holding processes that keep forking:
# every process lands in the leaf group; none is lost.
. /lib.sh
echo "+cpu +memory +pids" > $CG/cgroup.subtree_control
mkdir $CG/managed
# Long-lived processes we will look for afterwards, plus a process that
# forks short-lived children all the time.
for i in 1 2 3 4 5; do sh -c "echo \$\$ > $CG/managed/cgroup.procs; exec sleep 1000" & done
sh -c "echo \$\$ > $CG/managed/cgroup.procs; while :; do true & sleep 0.01; done" &
forker=$!
sleep 1
pids_before=$(cat $CG/managed/cgroup.procs | sort -n)
echo "in managed before: $(echo $pids_before | wc -w) processes"
cat > /etc/p.toml <<'TOML'
[group.work]
pids.max = 100
memory.max = "64M"
TOML
step "apply at a root with forking processes"
run_cgmgr 0 apply --root $CG/managed /etc/p.toml
expect_contains "$OUT" "from (root) into cgmgr.leaf" "plan announces the evacuation"
expect_eq "$(cat $CG/managed/cgroup.procs)" "" "managed root holds no process"
expect_contains "$(cat $CG/managed/cgroup.subtree_control)" "pids" "pids enabled"
expect_contains "$(cat $CG/managed/cgroup.subtree_control)" "memory" "memory enabled"
expect_eq "$(cat $CG/managed/work/pids.max)" 100 "work pids.max"
step "no process lost"
leaf=$(cat $CG/managed/cgmgr.leaf/cgroup.procs)
for pid in $pids_before; do
  if [ -d /proc/$pid ]; then
    echo "$leaf" | grep -qx "$pid" || fail "process $pid is alive but not in the leaf (it is in $(cat /proc/$pid/cgroup))"
  fi
done
expect_contains "$leaf" "$forker" "the forking process is in the leaf"
kill $forker
step "a second apply has nothing to move"
run_cgmgr 0 apply --root $CG/managed /etc/p.toml
expect_contains "$OUT" "nothing to do" "idempotent"
echo PASS
