# The demo: apply the example policies on a real cgroup v2 kernel and watch
# the kernel enforce them.
. /lib.sh
step "cgmgr check /etc/cgmgr (the repository's policies/)"
run_cgmgr 0 check /etc/cgmgr
step "cgmgr apply --dry-run: the plan"
run_cgmgr 0 apply --dry-run /etc/cgmgr
step "cgmgr apply"
run_cgmgr 0 apply /etc/cgmgr
step "cgmgr apply again: nothing to do"
run_cgmgr 0 apply /etc/cgmgr
step "a 100 MiB allocation in sandbox (memory.max 64M, no swap)"
sh -c "echo \$\$ > $CG/sandbox/cgroup.procs; exec dd if=/dev/zero of=/dev/null bs=100M count=1"
echo "exit status $? ; sandbox memory.events: $(tr '\n' ' ' < $CG/sandbox/memory.events)"
step "fork bomb in sandbox (pids.max 32)"
sh -c "echo \$\$ > $CG/sandbox/cgroup.procs; for i in \$(seq 100); do sleep 3 & done 2>/dev/null; wait"
echo "sandbox pids.events: $(cat $CG/sandbox/pids.events)"
while [ "$(cat $CG/sandbox/pids.current)" != 0 ]; do sleep 0.5; done
step "CPU hog in sandbox for 3 s (cpu.max 50%)"
sh -c "echo \$\$ > $CG/sandbox/cgroup.procs; exec timeout 3 sh -c 'while :; do :; done'"
echo "sandbox cpu.stat: $(grep -E 'usage_usec|nr_throttled' $CG/sandbox/cpu.stat | tr '\n' ' ')"
step "cgmgr exec into the sandbox (policies/sandbox.toml [exec]: rootfs, all namespaces)"
cgmgr rootfs build /var/lib/cgmgr/rootfs/sandbox --bin /bin/busybox
for a in sh ls ps id hostname cat dd; do ln -sf busybox /var/lib/cgmgr/rootfs/sandbox/bin/$a; done
cgmgr exec --group sandbox -- sh -c 'echo "hostname $(hostname), pid $$, $(id)"; ps; cat /proc/self/uid_map'
step "cgmgr exec: an allocation past memory.max"
cgmgr exec --group sandbox -- dd if=/dev/zero of=/dev/null bs=100M count=1
echo "exit status $?"
step "cgmgr status"
cgmgr status --interval 0.5
step "cgmgr metrics (excerpt)"
cgmgr metrics | grep -E '^cgmgr_(memory_events_total\{group="sandbox",event="oom_kill"\}|pids_events_total|cpu_throttled_periods_total|memory_limit_bytes|pids_limit)'
echo PASS
