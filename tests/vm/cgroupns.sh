# Inside a cgroup namespace, as in `docker run --privileged`: the namespace
# root is not the hierarchy root, holds our own shell, and is managed as /.
. /lib.sh
echo "+cpu +memory +pids" > $CG/cgroup.subtree_control
mkdir $CG/ctr
cat > /etc/p.toml <<'TOML'
[group.sandbox]
memory.max = "32M"
memory.swap.max = "0"
pids.max = 16
TOML
step "apply inside a new cgroup + mount namespace"
echo $$ > $CG/ctr/cgroup.procs
/usr/bin/unshare --cgroup --mount sh -c '
  umount /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup || exit 10
  echo "inside: /proc/self/cgroup = $(cat /proc/self/cgroup)"
  [ "$(cat /proc/self/cgroup)" = "0::/" ] || exit 11
  cgmgr apply /etc/p.toml || exit 12
  cgmgr apply --root self /etc/p.toml | grep -q "nothing to do" || exit 13
  sh -c "echo \$\$ > /sys/fs/cgroup/sandbox/cgroup.procs; exec dd if=/dev/zero of=/dev/null bs=64M count=1"
  echo "dd exit $?"
'
rc=$?
echo $$ > $CG/cgroup.procs
expect_eq "$rc" 0 "commands inside the namespace"
step "seen from the host"
expect_eq "$(cat $CG/ctr/sandbox/memory.max)" 33554432 "ctr/sandbox/memory.max"
expect_contains "$(cat $CG/ctr/cgroup.subtree_control)" "memory" "controllers enabled at the namespace root"
expect_eq "$(key_of $CG/ctr/sandbox/memory.events oom_kill)" 1 "OOM kill inside the namespaced group"
echo PASS
