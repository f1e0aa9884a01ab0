# Sandbox depth: each block is an attack that worked against an earlier
# cgmgr exec (host root through /proc/sys, the caller's keyring, leaked
# descriptors, late failures leaving groups behind) and must fail now.
. /lib.sh
cgmgr rootfs build /rootfs --bin /bin/busybox >/dev/null || fail "rootfs build"
for a in sh ls cat echo grep wc true sleep; do ln -sf busybox /rootfs/bin/$a; done
cgmgr rootfs build /rootfs --bin /usr/bin/keyring >/dev/null || fail "rootfs build keyring"
echo "+memory +pids" > $CG/cgroup.subtree_control
mkdir -p /etc/cgmgr
cat > /etc/cgmgr/s.toml <<'TOML'
[group.box]
pids.max = 64
[group.box.exec]
rootfs = "/rootfs"

[group.hostroot]
pids.max = 64
[group.hostroot.exec]
rootfs = "/rootfs"
namespaces = ["mount", "pid"]
uid = 0

[group.implicitroot.exec]
rootfs = "/rootfs"
namespaces = ["mount", "pid"]

[group.filtered]
pids.max = 64

[group.nopid.exec]
namespaces = ["user", "mount"]

[group.small]
memory.max = "32M"
memory.swap.max = "0"

[group.nested.exec]
nested_userns = true

[group.open.exec]
seccomp = "unconfined"

[group.custom.exec]
seccomp = "/etc/mkdir-denied.json"

[group.rootinside.exec]
rootfs = "/rootfs"
uid = 0

[group.rootnorootfs.exec]
namespaces = ["mount"]
uid = 0

[group.gidzero.exec]
rootfs = "/rootfs"
uid = 65534
gid = 0

[group.rootfsnopid.exec]
rootfs = "/rootfs"
namespaces = ["mount"]
uid = 65534

[group.baduid.exec]
uid = 65536
[group.badgid.exec]
uid = 1
gid = 70000
[group.norootfs.exec]
rootfs = "/nowhere"
[group.filerootfs.exec]
rootfs = "/etc/passwd"
[group.slash.exec]
rootfs = "/"
[group.userns-nopid.exec]
rootfs = "/rootfs"
namespaces = ["mount", "user"]
TOML
cat > /etc/mkdir-denied.json <<'JSON'
{"defaultAction": "SCMP_ACT_ALLOW",
 "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}
JSON
# refused GROUP EXPECTED-TEXT [ARGS...]: exit 125, the text, no group left.
refused() {
  g=$1; want=$2; shift 2
  out=$(cgmgr exec --group "$g" "$@" -- true 2>&1); rc=$?
  echo "$ cgmgr exec --group $g $* -- true"; echo "$out"
  expect_eq "$rc" 125 "$g: refused before the run"
  expect_contains "$out" "$want" "$g: says why"
  [ -d "$CG/$g" ] && fail "$g: the refused run left its group behind"
  echo "ok: $g: nothing was created"
}

step "1. uid 0 without a user namespace is host root: refused unless written out"
refused implicitroot "without a user namespace, uid or gid 0 in the sandbox is root on the host"
# The shipped sandbox policy writes uid = 0 for root inside its user
# namespace: a --ns list dropping `user` must not turn that into host root.
refused rootinside "a --ns list that drops \`user\` is not enough" --ns mount,uts,ipc,net,pid
refused rootnorootfs "host root runs only inside a rootfs with the mount and pid namespaces"
refused gidzero "uid or gid 0 in the sandbox is root on the host" --ns mount,pid
refused rootfsnopid "a rootfs needs the pid namespace too"
before=$(cat /proc/sys/kernel/core_pattern)
out=$(cgmgr exec --group hostroot -- sh -c '
  echo "|/bin/evil" > /proc/sys/kernel/core_pattern && echo "core_pattern: written";
  echo h > /proc/sysrq-trigger && echo "sysrq: written";
  echo "kcore: $(cat /proc/kcore | wc -c) bytes";
  grep CapEff /proc/self/status' 2>&1)
echo "$out"
expect_eq "$(cat /proc/sys/kernel/core_pattern)" "$before" "the host's core_pattern is untouched"
expect_not_contains "$out" "core_pattern: written" "/proc/sys is read-only"
expect_not_contains "$out" "sysrq: written" "/proc/sysrq-trigger is read-only"
expect_contains "$out" "kcore: 0 bytes" "/proc/kcore is masked"
capeff=$(echo "$out" | awk '/CapEff/ { print $2 }')
[ $(( 0x$capeff & (1 << 5) )) = 0 ] || fail "CAP_KILL kept by host root: CapEff $capeff"
[ $(( 0x$capeff & (1 << 21) )) = 0 ] || fail "CAP_SYS_ADMIN kept: CapEff $capeff"
echo "ok: host root runs with CapEff $capeff (no CAP_KILL, no CAP_SYS_ADMIN)"

step "3. the caller's session keyring stays out of reach"
out=$(keyring plant keyring probe); echo "control: $out"
expect_contains "$out" "found" "control: the key is visible outside the sandbox"
out=$(keyring plant cgmgr exec --group box -- keyring probe 2>&1); rc=$?
echo "$out"
expect_contains "$out" "absent" "the sandbox gets a fresh session keyring"
expect_not_contains "$out" "s3cret" "the secret is not readable"

step "7. descriptors: a directory as stdin is refused; init keeps nothing"
out=$(cgmgr exec --group box -- true < / 2>&1); rc=$?
echo "$out"
expect_eq "$rc" 125 "stdin a directory"
expect_contains "$out" "stdin (fd 0) is a directory" "names the descriptor"
# Seen from the host (the workload may not look into init): every process
# of the run, init included, holds fds 0-2 and nothing else.
cgmgr exec --group box -- sleep 5 7</ 8</sys/fs/cgroup 9>/tmp/held &
run=$!
i=0; until [ "$(cat $CG/box/cgmgr.run.*/cgroup.procs 2>/dev/null | wc -l)" -ge 2 ]; do i=$((i + 1)); [ $i -gt 100 ] && fail "the run did not start"; sleep 0.1; done
sleep 0.5
for pid in $(cat $CG/box/cgmgr.run.*/cgroup.procs); do
  fds=$(ls /proc/$pid/fd | sort -n | tr '\n' ' ')
  echo "pid $pid ($(cat /proc/$pid/comm)): fds $fds"
  expect_eq "$fds" "0 1 2 " "descriptors of $(cat /proc/$pid/comm)"
done
wait $run

step "8. a cgroup namespace by default"
out=$(cgmgr exec --group box -- cat /proc/self/cgroup); rc=$?
expect_eq "$out" "0::/" "the workload sees its group as the root"
[ -d $CG/box ] || fail "box was not created"

step "2. kernel quotas: no nested namespaces by default, a bounded number on request"
out=$(cgmgr exec --group filtered -- sh -c 'cat /proc/sys/user/max_user_namespaces /proc/sys/user/max_inotify_instances /proc/sys/user/max_time_namespaces; /usr/bin/unshare -U true && echo "nested: made"' 2>&1)
echo "$out"
expect_eq "$(echo "$out" | sed -n 1p)" 0 "no user namespaces inside by default"
expect_eq "$(echo "$out" | sed -n 2p)" 32 "inotify instances capped"
expect_eq "$(echo "$out" | sed -n 3p)" 0 "no time namespaces either"
expect_not_contains "$out" "nested: made" "unshare -U refused"
out=$(cgmgr exec --group nested -- sh -c 'cat /proc/sys/user/max_user_namespaces; /usr/bin/unshare -U true && echo "nested: made"' 2>&1)
echo "$out"
expect_eq "$(echo "$out" | sed -n 1p)" 16 "nested_userns = true: a bounded number"
expect_contains "$out" "nested: made" "nested_userns = true allows one"
host_max=$(cat /proc/sys/user/max_user_namespaces)
[ "$host_max" -gt 16 ] || fail "the host's own limit changed: $host_max"
/usr/bin/unshare -U true || fail "root can no longer make a user namespace"
# What a sandbox makes is charged to its own host ids (the user namespace is
# created with the effective uid its root maps to), not to root: with a
# per-user limit of 6, a sandbox holding 5 nested user namespaces (6 with its
# own) leaves root's quota whole, and another sandbox's: each run has host
# ids of its own. (All runs shared 100000..165535 before: the second run's
# user namespace then went over that id's quota, and cgmgr fell back to
# making it as root, charging root after all.)
echo 6 > /proc/sys/user/max_user_namespaces
cgmgr exec --group nested -- sh -c 'cat /proc/self/uid_map; for i in 1 2 3 4 5; do /usr/bin/unshare -U sleep 6 & done; sleep 1; ls -l /proc/*/ns/user 2>/dev/null | wc -l; wait' > /tmp/held.out 2>&1 &
held=$!
sleep 3
/usr/bin/unshare -U true && echo "root: made" > /tmp/root.out || echo "root: refused" > /tmp/root.out
cgmgr exec --group box -- sh -c 'cat /proc/self/uid_map; echo "second sandbox: ran"' > /tmp/second.out 2>&1
echo "exit $?" >> /tmp/second.out
wait $held
echo "$host_max" > /proc/sys/user/max_user_namespaces
cat /tmp/held.out /tmp/root.out
expect_contains "$(cat /tmp/root.out)" "root: made" "root still makes user namespaces while a sandbox holds 5"
cat /tmp/second.out
expect_contains "$(cat /tmp/second.out)" "second sandbox: ran" "another sandbox still runs while the first holds its ids' whole quota"
expect_contains "$(cat /tmp/second.out)" "exit 0" "the second sandbox's exit status"
first_ids=$(awk '$1 == 0 { print $2 }' /tmp/held.out)
second_ids=$(awk '$1 == 0 { print $2 }' /tmp/second.out)
echo "host ids: first sandbox from $first_ids, second from $second_ids"
[ -n "$first_ids" ] && [ -n "$second_ids" ] || fail "no uid_map read"
[ "$first_ids" != "$second_ids" ] || fail "two concurrent sandboxes share host ids from $first_ids"
echo "ok: concurrent sandboxes have host ids of their own"

step "4 and 6. a seccomp filter: Docker's default and stricter"
out=$(cgmgr exec --group filtered -- grep Seccomp: /proc/self/status)
expect_contains "$out" "2" "Seccomp: 2 (filter mode)"
out=$(cgmgr exec --group open -- grep Seccomp: /proc/self/status)
expect_contains "$out" "0" "seccomp = unconfined: no filter"
# A session leader can take a terminal no session owns, then type into it.
# Kernels from 6.2 may refuse TIOCSTI themselves (dev.tty.legacy_tiocsti = 0,
# Debian 13's default): allowed here, the filter alone has to stop it.
legacy=/proc/sys/dev/tty/legacy_tiocsti
[ -e $legacy ] && { echo "legacy_tiocsti was $(cat $legacy)"; echo 1 > $legacy; }
out=$(cgmgr exec --group open -- /usr/bin/tiocsti --take < /dev/ttyS0 2>&1)
echo "control: $out"
expect_contains "$out" "TIOCSTI: injected" "control: without the filter the attack works"
out=$(cgmgr exec --group filtered -- /usr/bin/tiocsti --take < /dev/ttyS0 2>&1)
echo "$out"
expect_contains "$out" "TIOCSTI: refused (Operation not permitted" "TIOCSTI refused by the filter"
out=$(cgmgr exec --group filtered -- keyring probe 2>&1)
expect_contains "$out" "absent (Operation not permitted" "keyctl refused by the filter"
out=$(cgmgr exec --group custom -- sh -c 'mkdir /tmp/x && echo made; echo done' 2>&1)
echo "$out"
expect_contains "$out" "Permission denied" "an OCI profile's errnoRet"
expect_not_contains "$out" "made" "the OCI profile is in force"
printf '[group.badprofile.exec]\nseccomp = "/etc/passwd"\n' > /tmp/badprofile.toml
run_cgmgr 2 check /tmp/badprofile.toml
expect_contains "$OUT" "/tmp/badprofile.toml:2:11" "a bad profile is a policy error at the key's line"
expect_contains "$OUT" "seccomp profile /etc/passwd:1:1" "and names the profile's line and column"

step "5. nothing a run started outlives it, even without a pid namespace"
out=$(cgmgr exec --group nopid -- sh -c 'sh -c "sleep 1000 &"; echo started') ; rc=$?
expect_eq "$rc" 0 "the run"
sleep 0.5
expect_eq "$(pgrep -x 'sleep' | wc -l)" 0 "the double-forked sleep was killed with the run"
expect_eq "$(ls -d $CG/nopid/cgmgr.run.* 2>/dev/null)" "" "and the run's group removed"
# A workload that stops its init (without a pid namespace they share a uid)
# and leaves: a stop signal to cgmgr exec still ends the run, after a grace.
cgmgr exec --group nopid -- sh -c 'sleep 300 & kill -STOP $PPID' 2>/tmp/stopped.err &
stuck=$!
sleep 1.5
kill -TERM $stuck
t0=$(cut -d' ' -f1 /proc/uptime)
wait $stuck
took=$(awk -v a="$t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%d", b - a }')
echo "stopped run ended ${took}s after SIGTERM"
[ "$took" -le 20 ] || fail "the run outlived SIGTERM by ${took}s"
expect_contains "$(cat /tmp/stopped.err)" "killed" "says it killed the run"
expect_eq "$(pgrep -x sleep | wc -l)" 0 "nothing of the run is left"
# Per-run accounting: a run that stays in bounds is not blamed for a
# concurrent run's OOM kill in the same group.
cgmgr exec --group small -- sleep 4 2>/tmp/quiet.err &
quiet=$!
sleep 1
out=$(cgmgr exec --group small -- dd if=/dev/zero of=/dev/null bs=64M count=1 2>&1); rc=$?
echo "$out"
expect_eq "$rc" 137 "the greedy run is OOM-killed"
expect_contains "$out" "killed by the OOM killer" "and told so"
wait $quiet
expect_eq "$?" 0 "the quiet run ends normally"
expect_eq "$(cat /tmp/quiet.err)" "" "the quiet run reports no OOM kill of its own"

step "9. bad input is refused before anything is created, with the reason"
refused baduid "uid 65536 is outside the range 0..=65535 the user namespace maps"
refused badgid "gid 70000 is outside the range 0..=65535 the user namespace maps"
refused norootfs "rootfs /nowhere: does not exist"
refused filerootfs "rootfs /etc/passwd: is not a directory"
refused slash "rootfs /: is the host's own root"
refused userns-nopid "a rootfs needs the pid namespace too"
refused box2 "--rootfs rel: must be an absolute path" --rootfs rel
refused box2 "--hostname" --hostname ""
refused box2 "is not a hostname" --hostname "$(printf 'a\nb')"
refused box2 "is not a hostname" --hostname "$(printf '%065d' 0)"
echo PASS
