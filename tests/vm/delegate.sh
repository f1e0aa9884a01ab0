# The systemd unit's set-up: Delegate=yes gives cgmgr the unit's cgroup,
# where systemd starts the main process; `--root self` finds it, and cgmgr
# moves itself into cgmgr.leaf before enabling controllers there.
. /lib.sh
ip link set lo up
echo "+cpu +memory +pids" > $CG/cgroup.subtree_control
mkdir -p $CG/system.slice/cgmgr.service
echo "+cpu +memory +pids" > $CG/system.slice/cgroup.subtree_control
UNIT=$CG/system.slice/cgmgr.service
mkdir -p /etc/cgmgr
cat > /etc/cgmgr/sandbox.toml <<'TOML'
[group.sandbox]
memory.max = "32M"
pids.max = 10
TOML
step "start the daemon inside the unit's cgroup, as systemd does"
sh -c "echo \$\$ > $UNIT/cgroup.procs; exec cgmgr daemon --root self /etc/cgmgr" 2>/tmp/daemon.log &
daemon=$!
i=0; until wget -q -O /dev/null http://127.0.0.1:9765/healthz; do i=$((i + 1)); [ $i -gt 50 ] && { cat /tmp/daemon.log; fail "daemon not up"; }; sleep 0.2; done
cat /tmp/daemon.log
expect_eq "$(cat $UNIT/cgroup.procs)" "" "the unit's own cgroup holds no process"
expect_eq "$(cat $UNIT/cgmgr.leaf/cgroup.procs)" "$daemon" "the daemon moved itself into cgmgr.leaf"
expect_contains "$(cat $UNIT/cgroup.subtree_control)" "memory" "controllers enabled in the delegated cgroup"
expect_eq "$(cat $UNIT/sandbox/memory.max)" 33554432 "sandbox created inside the delegated subtree"
[ -d $CG/sandbox ] && fail "a group was created outside the delegated subtree"
step "exec from inside the unit (as a unit's ExecStartPost would)"
out=$(sh -c "echo \$\$ > $UNIT/cgmgr.leaf/cgroup.procs; exec cgmgr exec --root self --group sandbox --ns user,mount,pid -- cat /proc/self/cgroup")
expect_contains "$out" "0::/system.slice/cgmgr.service/sandbox/cgmgr.run." "workload in the delegated sandbox"
kill -TERM $daemon; wait $daemon
echo PASS
