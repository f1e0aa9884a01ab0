# cgmgr without root on a whole Debian system: uid 1000 has a real user
# manager (user@1000.service, started by `loginctl enable-linger`), which
# delegates the user's subtree. As that user:
#  1. `systemctl --user start cgmgr` (systemd/user/cgmgr.service unchanged)
#     applies the user's policies in the unit's delegated cgroup (with a
#     pressure rule no user's trigger can have, it fails once, not in a
#     loop, and the journal names the rule);
#  2. `cgmgr status` and `cgmgr exec` find that daemon through its record in
#     $XDG_RUNTIME_DIR/cgmgr, from outside the subtree: a prepared sandbox
#     serves the run, which the kernel OOM-kills at the user's memory.max;
#  3. with the daemon stopped, `cgmgr exec` asks the user manager for a
#     transient scope with Delegate=yes and runs the group inside it;
#  4. useradd granted each user a subordinate range (/etc/subuid): the
#     user's runs map it through the release's newuidmap and newgidmap, a
#     prepared sandbox's and a scope's alike, and a workload run as a
#     subordinate id writes as the range's host id, not as the user;
#  5. a second user (uid 1001) reaches none of it: not the groups, not the
#     daemon's record and socket, not a run.
. /lib.sh
ip link set lo up 2>/dev/null
useradd -m -u 1000 u || fail "useradd u"
useradd -m -u 1001 v || fail "useradd v"
cgmgr rootfs build /srv/rootfs --bin /bin/busybox >/dev/null || fail "rootfs build"
for a in sh cat id dd sleep true touch; do ln -sf busybox /srv/rootfs/bin/$a; done
chmod 755 /srv /srv/rootfs
mkdir -p /srv/pub && chmod 777 /srv/pub
mkdir -p /home/u/.config/systemd/user /home/u/.config/cgmgr
cp /usr/local/share/cgmgr/user/cgmgr.service /home/u/.config/systemd/user/
cat > /home/u/.config/cgmgr/u.toml <<'TOML'
[group.box]
memory.max = "32M"
memory.swap.max = "0"
pids.max = 16
[group.box.exec]
rootfs = "/srv/rootfs"
standby = 1
[group.solo]
pids.max = 8
[group.solo.exec]
rootfs = "/srv/rootfs"
[group.sub]
pids.max = 8
[group.sub.exec]
rootfs = "/srv/rootfs"
uid = 1000
gid = 1000
TOML
chown -R u:u /home/u/.config
# as UID CMD...: CMD as that user, with the environment a login gives.
as() {
  uid=$1; shift
  home=/home/u; [ "$uid" = 1001 ] && home=/home/v
  /usr/bin/setpriv --reuid="$uid" --regid="$uid" --clear-groups env -i PATH=/usr/local/bin:/usr/bin:/bin \
    HOME=$home XDG_RUNTIME_DIR=/run/user/$uid SYSTEMD_PAGER=cat "$@"
}

step "the user's manager, started by linger"
# The test unit runs before sockets.target: the system bus and logind are
# started by hand, as a booted server has them.
for u in dbus.socket dbus.service systemd-logind.service; do
  timeout 60 systemctl start $u || { systemctl list-jobs --no-pager | head -30; systemctl status $u --no-pager | head -20; fail "starting $u"; }
  echo "ok: $u started"
done
timeout 60 loginctl enable-linger u || fail "enable-linger"
echo "ok: linger enabled"
for i in $(seq 20); do
  st=$(timeout 5 systemctl is-active user@1000.service 2>&1); echo "user@1000: $st"
  [ "$st" = active ] && break
  timeout 5 systemctl list-jobs --no-pager 2>&1 | head -8
  sleep 3
done
timeout 10 journalctl --no-pager -n 40 2>&1 | tail -40
[ "$st" = active ] || fail "user@1000.service did not start"
for i in $(seq 30); do
  st=$(as 1000 timeout 10 systemctl --user is-system-running 2>&1); echo "the user manager: $st"
  case "$st" in running|degraded|starting|initializing) break ;; esac
  sleep 2
done
case "$st" in running|degraded|starting|initializing) echo "ok: the user manager answers" ;; *) fail "the user manager does not answer" ;; esac
UM=$(ls -d /sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service)
echo "user@1000.service delegates: $(cat $UM/cgroup.controllers)"
expect_contains "$(cat $UM/cgroup.controllers)" "memory" "the user manager has memory"
expect_contains "$(cat $UM/cgroup.controllers)" "pids" "the user manager has pids"

step "a pressure rule a user's daemon cannot arm: the unit fails once, saying why"
cat > /home/u/.config/cgmgr/zz-bad.toml <<'TOML'
[[group.hot.pressure]]
resource = "memory"
kind = "some"
above = "10%"
window = "500ms"
action = "log"
TOML
chown u:u /home/u/.config/cgmgr/zz-bad.toml
as 1000 timeout 60 systemctl --user daemon-reload || fail "daemon-reload"
as 1000 timeout 60 systemctl --user start cgmgr && fail "a user's daemon started with a 500ms window"
sleep 4   # past RestartSec=2s: a restart would have come
expect_eq "$(as 1000 systemctl --user show -P NRestarts cgmgr)" 0 "exit 2 is not restarted"
expect_eq "$(as 1000 systemctl --user show -P ExecMainStatus cgmgr)" 2 "the daemon's exit status"
wait_for 10 "the journal names the rule" \
  'journalctl --no-pager _SYSTEMD_USER_UNIT=cgmgr.service | grep -F "zz-bad.toml:1:1: a pressure rule of group \`hot\` has window = \"500ms\""'
rm /home/u/.config/cgmgr/zz-bad.toml
as 1000 systemctl --user reset-failed cgmgr

step "systemctl --user start cgmgr"
as 1000 timeout 120 systemctl --user start cgmgr || { as 1000 systemctl --user status cgmgr; journalctl --no-pager -n 40; fail "start"; }
UNIT=$UM/app.slice/cgmgr.service
expect_eq "$(cat $UNIT/box/memory.max)" 33554432 "box in the unit's delegated cgroup"
[ -d $CG/box ] || [ -d $UM/box ] && fail "a group outside the unit's cgroup"
expect_eq "$(stat -c %U /run/user/1000/cgmgr/exec.sock)" u "the exec socket is the user's"
wait_for 90 "a prepared sandbox of box" '[ -n "$(prepared_in $UNIT/box)" ]'

step "status and exec as the user find the daemon"
out=$(as 1000 cgmgr status 2>&1); rc=$?
echo "$out"
expect_eq "$rc" 0 "status, no --root"
expect_contains "$out" "box" "the daemon's groups"
out=$(as 1000 cgmgr exec --group box --report -- dd if=/dev/zero of=/dev/null bs=64M count=1 2>&1); rc=$?
echo "$out"
expect_eq "$rc" 137 "OOM-killed at the user's memory.max"
expect_contains "$out" "OOM kills 1 (the memory limit of box)" "the OOM kill, and whose limit"

step "subordinate ids: useradd's grants, mapped by the release's newuidmap"
grep "^[uv]:" /etc/subuid /etc/subgid
expect_contains "$(cat /etc/subuid)" "u:100000:65536" "useradd granted u a uid range"
expect_contains "$(cat /etc/subgid)" "u:100000:65536" "and a gid range"
expect_contains "$(cat /etc/subuid)" "v:165536:65536" "and v another one"
out=$(as 1000 cgmgr exec --group box -- cat /proc/self/uid_map 2>&1); rc=$?
echo "$out"
expect_eq "$rc" 0 "a prepared sandbox's run"
expect_contains "$(echo "$out" | tr -s ' ')" " 1 100000 65535" "the prepared sandbox maps u's range"

step "another user reaches none of it"
out=$(as 1001 cgmgr status 2>&1); rc=$?
echo "$out"
expect_eq "$rc" 1 "v has no subtree of its own"
expect_not_contains "$out" "box" "v does not see u's groups through u's daemon"
out=$(as 1001 env CGMGR_RUNTIME_DIR=/run/user/1000/cgmgr cgmgr exec --group box -- id -u 2>&1); rc=$?
echo "$out"
[ "$rc" = 0 ] && fail "v ran in u's group"
expect_contains "$out" "Permission denied" "u's runtime directory is closed to v"
out=$(as 1001 sh -c "echo max > $UNIT/box/memory.max" 2>&1); rc=$?
[ "$rc" = 0 ] && fail "v rewrote u's limit"
expect_eq "$(cat $UNIT/box/memory.max)" 33554432 "u's limit unchanged"

step "no daemon: exec in a transient scope of the user manager"
as 1000 systemctl --user stop cgmgr || fail "stop"
# Through a pipe: a user's run takes no file as stdout.
( as 1000 cgmgr exec --group solo -- sleep 4 2>&1; echo "rc=$?" ) | cat > /tmp/solo.out &
run=$!
for i in $(seq 60); do
  [ -n "$(find $UM -path "*cgmgr-exec-solo-*.scope/solo/pids.max" 2>/dev/null)" ] && break
  kill -0 $run 2>/dev/null || break
  sleep 1
done
[ -n "$(find $UM -path "*cgmgr-exec-solo-*.scope/solo/pids.max" 2>/dev/null)" ] || {
  cat /tmp/solo.out; timeout 10 journalctl --no-pager -n 30 | tail -30; fail "solo was not made inside a transient scope"; }
echo "ok: solo made inside a transient scope of the user manager"
f=$(find $UM -path "*cgmgr-exec-solo-*.scope/solo/pids.max" | head -1)
echo "$f"
expect_eq "$(cat "$f")" 8 "solo's pids.max, in the scope"
expect_contains "$(as 1000 systemctl --user list-units --no-legend 'cgmgr-exec-solo-*')" "cgmgr exec --group solo" "the user manager knows the scope"
wait $run
cat /tmp/solo.out
expect_contains "$(cat /tmp/solo.out)" "rc=0" "the run in the scope ended well"
out=$(as 1000 cgmgr exec --group sub --bind /srv/pub:/tmp/pub -- sh -c 'id -u; touch /tmp/pub/made' 2>&1); rc=$?
echo "$out"
expect_eq "$rc" 0 "a run as a subordinate id, in a scope"
expect_eq "$(stat -c %u:%g /srv/pub/made)" "100999:100999" "inside 1000 writes as u's range, not as u"
echo PASS
