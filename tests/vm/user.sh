# cgmgr without root, on a bare cgroup v2 host: uid 1000 gets a subtree
# delegated the kernel's way (the directory and cgroup.procs,
# cgroup.subtree_control, cgroup.threads chowned to it, memory and pids
# enabled above it), as systemd's user@.service does. As that user:
#  1. apply creates the groups with their limits inside the subtree, and
#     nothing outside it;
#  2. exec runs in the user's own uid (one id mapped) and the kernel
#     OOM-kills it at the user's memory.max (137 and the report);
#  3. the user's daemon, recorded in $XDG_RUNTIME_DIR/cgmgr, is found by
#     status and exec from outside the subtree (a prepared sandbox serves);
#  4. outside the subtree: a refusal naming what is missing, nothing
#     written; another uid is not served by the user's daemon.
. /lib.sh
ip link set lo up
echo "u:x:1000:1000::/home/u:/bin/sh" >> /etc/passwd
cgmgr rootfs build /rootfs --bin /bin/busybox >/dev/null || fail "rootfs build"
for a in sh cat id dd sleep true; do ln -sf busybox /rootfs/bin/$a; done
chmod 755 /rootfs
echo "+memory +pids" > $CG/cgroup.subtree_control
U=$CG/u1000
mkdir $U
chown 1000:1000 $U $U/cgroup.procs $U/cgroup.subtree_control $U/cgroup.threads
mkdir -p /home/u/pol /run/user/1000
chown 1000:1000 /run/user/1000 && chmod 700 /run/user/1000
chmod 755 /home/u /home/u/pol
cat > /home/u/pol/u.toml <<'TOML'
[group.box]
memory.max = "32M"
memory.swap.max = "0"
pids.max = 16
[group.box.exec]
rootfs = "/rootfs"
[group.web]
pids.max = 16
[group.web.exec]
rootfs = "/rootfs"
standby = 1
TOML
chmod 644 /home/u/pol/u.toml
# as_user DIR CMD...: CMD as uid 1000 with its runtime directory, started
# in cgroup DIR (empty: where this script runs, outside the subtree).
as_user() {
  dir=$1; shift
  sh -c '[ -z "$0" ] || echo $$ > "$0/cgroup.procs"; exec /usr/bin/setpriv --reuid=1000 --regid=1000 --clear-groups env -i PATH=/bin:/usr/bin XDG_RUNTIME_DIR=/run/user/1000 "$@"' "$dir" "$@"
}

step "apply as the user, inside the delegated subtree"
out=$(as_user $U cgmgr --root self apply /home/u/pol 2>&1); rc=$?
echo "$out"
expect_eq "$rc" 0 "apply as uid 1000"
expect_eq "$(cat $U/box/memory.max)" 33554432 "box's memory.max, inside the subtree"
expect_eq "$(cat $U/box/pids.max)" 16 "box's pids.max"
expect_contains "$(cat $U/cgroup.subtree_control)" "memory" "the user enabled memory in their subtree"
[ -d $CG/box ] && fail "a group was created outside the subtree"
expect_eq "$(stat -c %u $U/box/memory.max)" 1000 "the group's files are the user's"
LEAF=$U/cgmgr.leaf
[ -d $LEAF ] || fail "apply did not make the subtree's leaf"

step "exec as the user: their own uid, one id mapped"
out=$(as_user $LEAF cgmgr exec --policies /home/u/pol --group box -- sh -c 'cat /proc/self/uid_map; id -u' 2>&1); rc=$?
echo "$out"
expect_eq "$rc" 0 "exec as uid 1000"
expect_eq "$(echo "$out" | head -1 | tr -s ' ' | sed 's/^ //')" "0 1000 1" "uid_map: inside 0 is uid 1000, nothing else"

step "exec as the user: OOM-killed at the user's memory.max"
out=$(as_user $LEAF cgmgr exec --policies /home/u/pol --group box --report -- dd if=/dev/zero of=/dev/null bs=64M count=1 2>&1); rc=$?
echo "$out"
expect_eq "$rc" 137 "OOM-killed workload"
expect_contains "$out" "cgmgr:   OOM kills 1 (the memory limit of box)" "the OOM kill, and whose limit"
expect_eq "$(key_of $U/box/memory.events oom_kill)" 1 "the kernel counted the kill in box"

step "the user's daemon, found from outside the subtree"
as_user $LEAF cgmgr --root self daemon --listen 127.0.0.1:9766 /home/u/pol 2>/tmp/udaemon.log &
daemon=$!
wait_for 20 "the user daemon's record" '[ -s /run/user/1000/cgmgr/daemon ]'
wait_for 60 "a prepared sandbox of web" '[ -n "$(prepared_in $U/web)" ]'
expect_eq "$(stat -c %u /run/user/1000/cgmgr/exec.sock)" 1000 "the exec socket is the user's"
out=$(as_user "" cgmgr status 2>&1); rc=$?
echo "$out"
expect_eq "$rc" 0 "status as the user, no --root"
expect_contains "$out" "box" "status lists the user daemon's groups"
out=$(as_user "" cgmgr exec --group web -- cat /proc/self/cgroup 2>&1); rc=$?
echo "$out"
expect_eq "$rc" 0 "exec from outside the subtree, served by the user's daemon"
expect_contains "$out" "0::/" "the run's own cgroup namespace"
expect_contains "$(wget -q -O - http://127.0.0.1:9766/metrics)" 'cgmgr_exec_standby_requests_total{group="web",result="served"} 1' "the daemon counted the served request"

step "another uid: not served by the user's daemon"
chmod 755 /run/user/1000 /run/user/1000/cgmgr && chmod 777 /run/user/1000/cgmgr/exec.sock
out=$(/usr/bin/setpriv --reuid=1001 --regid=1001 --clear-groups env -i PATH=/bin:/usr/bin CGMGR_RUNTIME_DIR=/run/user/1000/cgmgr cgmgr exec --group web -- id -u 2>&1); rc=$?
echo "$out"
[ "$rc" = 0 ] && fail "uid 1001 was served by uid 1000's daemon"
expect_not_contains "$out" "uid=" "no workload ran for uid 1001"
chmod 700 /run/user/1000

# $! is the subshell that started it: the daemon's pid is in its record.
dpid=$(key_of /run/user/1000/cgmgr/daemon pid)
kill -TERM "$dpid"
wait_for 20 "the user daemon stopped" '! kill -0 $dpid'
wait $daemon
cat /tmp/udaemon.log

step "outside any subtree of theirs: refused, nothing written"
before=$(snapshot $CG)
out=$(as_user "" cgmgr exec --group box -- true 2>&1); rc=$?
echo "$out"
expect_eq "$rc" 125 "exec of a group not declared in ~/.config/cgmgr refused"
expect_contains "$out" "no cgroup subtree is delegated to uid 1000" "the refusal says what is missing"
out=$(as_user "" cgmgr exec --policies /home/u/pol --group box -- true 2>&1); rc=$?
echo "$out"
expect_eq "$rc" 125 "exec of a declared group refused"
expect_contains "$out" "no cgroup subtree is delegated to uid 1000" "the refusal says what is missing"
expect_contains "$out" "a transient scope was asked of your user manager" "and that the user manager was asked"
out=$(as_user "" cgmgr --root $CG apply /home/u/pol 2>&1); rc=$?
echo "$out"
expect_eq "$rc" 1 "apply to a root not delegated to the user"
expect_contains "$out" "EACCES" "the kernel's refusal, named"
expect_eq "$(snapshot $CG)" "$before" "nothing changed in the tree"

step "subordinate ids from /etc/subuid, mapped by newuidmap and newgidmap"
echo "u:100000:65536" > /etc/subuid
echo "u:200000:65536" > /etc/subgid
chmod 4755 /usr/bin/newuidmap /usr/bin/newgidmap
mkdir -p /srv/pub /srv/own && chmod 777 /srv/pub
chown 1000:1000 /srv/own && chmod 700 /srv/own
cat >> /home/u/pol/u.toml <<'TOML'
[group.sub]
memory.max = "32M"
memory.swap.max = "0"
pids.max = 16
[group.sub.exec]
rootfs = "/rootfs"
uid = 1000
gid = 1000
TOML
out=$(as_user $LEAF cgmgr --root self apply /home/u/pol 2>&1) || { echo "$out"; fail "apply with sub"; }
out=$(as_user $LEAF cgmgr exec --policies /home/u/pol --group sub --bind /srv/pub:/tmp/pub --bind /srv/own:/tmp/own -- \
  sh -c 'cat /proc/self/uid_map /proc/self/gid_map; id -u; touch /tmp/pub/made; echo x > /tmp/own/b && echo wrote' 2>&1); rc=$?
echo "$out"
maps=$(echo "$out" | tr -s ' ' | sed 's/^ //')
expect_contains "$maps" "0 1000 1" "inside 0 is the user"
expect_contains "$maps" "1 100000 65535" "inside 1.. is the user's subordinate uid range"
expect_contains "$maps" "1 200000 65535" "and their subordinate gid range"
expect_eq "$(stat -c %u:%g /srv/pub/made)" "100999:200999" "inside 1000 writes as the range's host ids"
expect_not_contains "$out" "wrote" "a subordinate id cannot write the user's private directory"
[ -e /srv/own/b ] && fail "a subordinate id wrote the user's file"
out=$(as_user $LEAF cgmgr exec --policies /home/u/pol --group sub --report -- dd if=/dev/zero of=/dev/null bs=64M count=1 2>&1); rc=$?
echo "$out"
expect_eq "$rc" 137 "OOM-killed under the user's limit, with subordinate ids"
expect_eq "$(key_of $U/sub/memory.events oom_kill)" 1 "the kernel counted the kill in sub"
echo PASS
