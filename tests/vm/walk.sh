# Path resolution without openat2 (as under systemd's RestrictSUIDSGID=
# filter, or on kernels before 5.6) keeps openat2's guarantee: a bind mount
# of another part of the same cgroup2 filesystem inside the managed root is
# a different mount, and cgmgr neither reads nor writes through it.
. /lib.sh
echo "+pids" > $CG/cgroup.subtree_control
mkdir -p $CG/managed/g $CG/outside
echo 9 > $CG/outside/pids.max
mount --bind $CG/outside $CG/managed/g || fail "bind mount"
cat > /etc/p.toml <<'TOML'
[group.g]
pids.max = 5
[group."g/child"]
pids.max = 3
TOML
check_outside() {
  expect_eq "$(cat $CG/outside/pids.max)" 9 "$1: outside/pids.max untouched"
  [ -d $CG/outside/child ] && fail "$1: a group was created outside the root"
  echo "ok: $1: nothing was created outside"
}

step "control: with openat2, the bind mount is refused"
run_cgmgr 1 --root $CG/managed apply /etc/p.toml
expect_contains "$OUT" "EXDEV" "openat2 answers EXDEV"
check_outside "openat2"

step "the same apply where openat2 is ENOSYS: the walk refuses it too"
# no_openat2 (tests/helpers) runs cgmgr under a filter that answers openat2
# with ENOSYS, as systemd's filter does.
out=$(no_openat2 sh -c 'grep Seccomp: /proc/self/status; cgmgr --root /sys/fs/cgroup/managed apply /etc/p.toml; echo "apply exit $?"' 2>&1)
echo "$out"
expect_contains "$out" "apply exit 1" "the walk fails"
expect_contains "$out" "EXDEV" "with EXDEV, as openat2"
check_outside "walk"

step "openat2 answered with EPERM (systemd 247's filter): the walk again"
# systemd before 248 answers openat2 with EPERM under RestrictSUIDSGID=;
# the shipped unit then could not open its own cgroup.
out=$(no_openat2 --eperm sh -c 'cgmgr --root /sys/fs/cgroup/managed apply /etc/p.toml; echo "apply exit $?"' 2>&1)
echo "$out"
expect_contains "$out" "apply exit 1" "the walk fails"
expect_contains "$out" "EXDEV" "with EXDEV, as openat2, not EPERM"
check_outside "walk after EPERM"
umount $CG/managed/g
mkdir -p $CG/managed/h
cat > /etc/q.toml <<'TOML'
[group.h]
pids.max = 7
[group."h/child"]
pids.max = 3
TOML
out=$(no_openat2 --eperm sh -c 'cgmgr --root /sys/fs/cgroup/managed apply /etc/q.toml; echo "apply exit $?"' 2>&1)
echo "$out"
expect_contains "$out" "apply exit 0" "a plain apply works where openat2 is EPERM"
expect_eq "$(cat $CG/managed/h/child/pids.max)" 3 "h/child/pids.max written through the walk"
echo PASS
