# Runs apart from each other and from host users. Each step is an attack
# that worked against an earlier cgmgr exec (seen on 6.1 and 5.10):
#  1. a host user ran a setuid file a run left and joined that run's user
#     namespace (its owner was the range's first id, which files carry);
#  2. consecutive runs, whatever their group, got the same host ids;
#  3. a survivor of a SIGKILLed cgmgr exec kept its ids while the range was
#     leased again;
#  4. a cgmgr exec in a pid namespace of its own ended other live runs, and
#     on 5.10 (no cgroup.kill) signalled pid 0: its own process group;
#  5. a world-writable directory of a shared rootfs carried files between
#     runs; /proc/cmdline was readable; a rootfs the run's ids cannot reach
#     left a group behind.
. /lib.sh
FIRST_BASE=1610612736
echo "intruder:x:1000:1000::/tmp:/bin/sh" >> /etc/passwd
cgmgr rootfs build /rootfs --bin /bin/busybox >/dev/null || fail "rootfs build"
for a in sh ls cat echo touch mkdir chmod stat sleep; do ln -sf busybox /rootfs/bin/$a; done
mkdir -p /rootfs/var/tmp && chmod 1777 /rootfs/var/tmp
mkdir -p /private/deep && chmod 700 /private
cgmgr rootfs build /private/deep/rootfs --bin /bin/busybox >/dev/null || fail "rootfs build"
echo "+memory +pids" > $CG/cgroup.subtree_control
mkdir -p /etc/cgmgr
cat > /etc/cgmgr/s.toml <<'TOML'
[group.a.exec]
seccomp = "unconfined"
[group.b.exec]
[group.d.exec]
[group.s.exec]
namespaces = ["user", "mount", "uts", "ipc", "net"]
[group.t.exec]
[group.box.exec]
rootfs = "/rootfs"
[group.rw.exec]
rootfs = "/rootfs"
readonly_root = false
[group.link.exec]
rootfs = "/rootfs-link"
[group.hidden.exec]
rootfs = "/private/deep/rootfs"
TOML

# base_of "0 BASE 65536": BASE
base_of() { echo "$1" | awk '{ print $2 }'; }
# wait_file PATH: up to 20 s for PATH to exist
wait_file() { for _ in $(seq 200); do [ -e "$1" ] && return 0; sleep 0.1; done; fail "$1 never appeared"; }
# run_pids GROUP: the processes of GROUP's run groups
run_pids() { cat $CG/$1/cgmgr.run.*/cgroup.procs 2>/dev/null; }

step "item 1: a setuid file a run leaves gives a host user nothing of the run"
cgmgr exec --group a -- sh -c 'cp /usr/bin/ns_intruder /tmp/intruder && chmod 4755 /tmp/intruder && touch /tmp/a-ready; exec sleep 60' &
apid=$!
wait_file /tmp/a-ready
ls -ln /tmp/intruder
victim=$(run_pids a | tail -n1)
[ -n "$victim" ] || fail "run a has no process"
grep -E '^(Uid|Gid)' /proc/$victim/status
out=$(/usr/bin/setpriv --reuid=1000 --regid=1000 --clear-groups /tmp/intruder "$victim" 2>&1); rc=$?
echo "$out"
expect_contains "$out" "start (Uid: 1000 $(base_of "$(cat /proc/$victim/uid_map)")" "the intruder runs with the run's host uid as euid"
expect_contains "$out" "setns user: refused" "the run's user namespace refuses the file's uid"
expect_eq "$rc" 1 "no step into the run succeeded"
expect_contains "$out" "/proc/$victim/root: refused" "its root is out of reach"
kill $apid; wait $apid
rm -f /tmp/intruder /tmp/a-ready

step "item 1b: the default seccomp filter refuses setuid and setgid bits"
out=$(cgmgr exec --group d -- sh -c 'cp /usr/bin/ns_intruder /tmp/d-copy; chmod 4755 /tmp/d-copy; echo "u+s=$?"; chmod 2755 /tmp/d-copy; echo "g+s=$?"; chmod 1755 /tmp/d-copy; echo "+t=$?"' 2>&1)
echo "$out"
expect_contains "$out" "u+s=1" "chmod u+s refused"
expect_contains "$out" "g+s=1" "chmod g+s refused"
expect_contains "$out" "+t=0" "other mode bits allowed"
expect_eq "$(stat -c %a /tmp/d-copy)" 1755 "the copy carries no setuid or setgid bit"
rm -f /tmp/d-copy

step "item 2: consecutive runs get distinct host ids, whatever their group"
m1=$(cgmgr exec --group a -- cat /proc/self/uid_map)
m2=$(cgmgr exec --group b -- cat /proc/self/uid_map)
m3=$(cgmgr exec --group a -- cat /proc/self/uid_map)
echo "a: $m1 / b: $m2 / a again: $m3"
[ "$(base_of "$m1")" != "$(base_of "$m2")" ] || fail "runs of a and b share host ids"
[ "$(base_of "$m1")" != "$(base_of "$m3")" ] || fail "two consecutive runs of a share host ids"
[ "$(base_of "$m2")" != "$(base_of "$m3")" ] || fail "runs of b and a share host ids"
echo "ok: three runs, three ranges"
cgmgr exec --group a -- sh -c 'echo secret-of-a > /tmp/a-file; chmod 600 /tmp/a-file'
out=$(cgmgr exec --group b -- cat /tmp/a-file 2>&1); rc=$?
echo "$out"
expect_eq "$rc" 1 "the next run of another group cannot read a's 0600 file"
rm -f /tmp/a-file

step "item 3: a survivor of a SIGKILLed cgmgr exec keeps its range out of other runs"
cgmgr exec --group s -- sh -c 'setsid sleep 1000 </dev/null >/dev/null 2>&1 & touch /tmp/s-ready; exec sleep 1000' &
spid=$!
wait_file /tmp/s-ready
# A live run of the same group, begun before the other one is abandoned
# (a run's start ends its group's abandoned runs): item 4 needs both.
cgmgr exec --group s -- sh -c 'touch /tmp/live-ready; sleep 30' &
live=$!
wait_file /tmp/live-ready
kill -9 $spid; wait $spid 2>/dev/null
sleep 0.5
survivors=$(cat $CG/s/cgmgr.run.$spid/cgroup.procs)
[ -n "$survivors" ] || fail "no survivor in s"
survivor=$(echo "$survivors" | head -n1)
sbase=$(base_of "$(cat /proc/$survivor/uid_map)")
slot=$(( (sbase - FIRST_BASE) / 65536 ))
echo "survivor $survivor holds base $sbase (slot $slot)"
# The next lease would start at the survivor's slot.
echo "$slot" > /run/cgmgr-ids/cursor
m=$(cgmgr exec --group t -- cat /proc/self/uid_map)
echo "t: $m"
[ "$(base_of "$m")" != "$sbase" ] || fail "the survivor's range was leased to a run of t"
echo "ok: the survivor's range was skipped"

step "item 4: a cgmgr exec in another pid namespace leaves live runs and its own process group alone"
out=$(unshare --pid --fork --mount-proc sh -c 'sleep 100 & b=$!; cgmgr exec --group s -- true; echo "rc=$?"; kill -0 $b && echo bystander-alive; kill $b' 2>&1)
echo "$out"
expect_contains "$out" "rc=0" "the run in the other pid namespace ran"
expect_contains "$out" "bystander-alive" "nothing of its own process group was signalled"
expect_not_contains "$out" "abandoned run s/cgmgr.run.$live" "the live run was not taken for abandoned"
if [ -e $CG/s/cgroup.kill ]; then
  expect_contains "$out" "ended the abandoned run s/cgmgr.run.$spid" "the abandoned run was ended with cgroup.kill"
else
  # Without cgroup.kill (5.10) a process cannot signal what its pid
  # namespace does not show: it says so, and a run from the host's pid
  # namespace ends the abandoned run.
  expect_contains "$out" "could not end the abandoned run s/cgmgr.run.$spid" "the abandoned run is left, with a note"
  expect_contains "$out" "outside this process's pid namespace" "saying why"
  cgmgr exec --group s -- true 2>&1 | grep -q "ended the abandoned run s/cgmgr.run.$spid" || fail "a run of the host's pid namespace did not end it"
fi
sleep 0.5
for p in $survivors; do [ -d /proc/$p ] && fail "survivor $p outlived its abandoned run"; done
[ -e $CG/s/cgmgr.run.$spid ] && fail "the abandoned run group is still there"
echo "ok: the abandoned run was ended"
kill -0 $live || fail "the live run was ended"
kill $live; wait $live; expect_eq "$?" 143 "the live run lived until it was told to stop"

step "item 3b: a host user cannot hold an abandoned run alive with a lock of its own"
cgmgr exec --group s -- sh -c 'setsid sleep 1000 </dev/null >/dev/null 2>&1 & touch /tmp/s2-ready; exec sleep 1000' &
spid=$!
wait_file /tmp/s2-ready
kill -9 $spid; wait $spid 2>/dev/null
expect_eq "$(stat -c %a $CG/s/cgmgr.run.$spid)" 700 "run groups are 0700"
out=$(/usr/bin/setpriv --reuid=1000 --regid=1000 --clear-groups flock -n $CG/s/cgmgr.run.$spid true 2>&1); rc=$?
echo "$out"
[ "$rc" != 0 ] || fail "a host user could lock the run group"
cgmgr exec --group s -- true 2>&1 | grep -q "ended the abandoned run s/cgmgr.run.$spid" || fail "the abandoned run was not ended"
echo "ok: the abandoned run was ended"

step "item 3c: a survivor of a run begun in another mount namespace keeps its range out"
rm -f /tmp/m-ready
unshare --mount sh -c "mkdir -p /mnt/cg && mount --bind $CG /mnt/cg && exec cgmgr --root /mnt/cg exec --group s -- sh -c 'setsid sleep 1000 </dev/null >/dev/null 2>&1 & touch /tmp/m-ready; exec sleep 1000'" &
mpid=$!
wait_file /tmp/m-ready
mrun=$(for d in $CG/s/cgmgr.run.*; do grep -q . $d/cgroup.procs && basename $d; done | head -n1)
kill -9 $mpid; wait $mpid 2>/dev/null
sleep 0.5
msurvivor=$(head -n1 $CG/s/$mrun/cgroup.procs)
[ -n "$msurvivor" ] || fail "no survivor of the other mount namespace's run"
mbase=$(base_of "$(cat /proc/$msurvivor/uid_map)")
echo "$(( (mbase - FIRST_BASE) / 65536 ))" > /run/cgmgr-ids/cursor
m=$(cgmgr exec --group t -- cat /proc/self/uid_map)
echo "survivor base $mbase, t: $m"
[ "$(base_of "$m")" != "$mbase" ] || fail "the survivor's range was leased: its run group's path leads nowhere here"
echo "ok: found by its cgroup handle, the range was skipped"
cgmgr exec --group s -- true 2>/dev/null
[ -d /proc/$msurvivor ] && fail "the survivor outlived its abandoned run"

step "item 6: ids are mapped for the run's own child when /proc shows another pid namespace"
rm -f /tmp/v-ready
/usr/bin/setpriv --reuid=1000 --regid=1000 --clear-groups /usr/bin/unshare --user sh -c 'touch /tmp/v-ready; exec sleep 60' &
victim=$!
wait_file /tmp/v-ready
# The sandbox's init gets the victim's number in the new pid namespace,
# where the host's /proc shows the victim under it.
out=$(unshare --pid --fork sh -c "echo $((victim - 1)) > /proc/sys/kernel/ns_last_pid; exec cgmgr exec --group d -- cat /proc/self/uid_map" 2>&1); rc=$?
echo "$out"
expect_eq "$(cat /proc/$victim/uid_map)" "" "the host user's namespace got no map"
expect_eq "$rc" 0 "the run ran"
expect_contains "$out" " 65536" "with its own map"
kill $victim

step "item 5: the rootfs is read-only by default; /tmp is each run's own"
out=$(cgmgr exec --group box -- sh -c 'touch /var/tmp/x; echo "var=$?"; touch /tmp/x; echo "tmp=$?"; cat /proc/cmdline | wc -c; cat /proc/iomem | wc -c' 2>&1)
echo "$out"
expect_contains "$out" "var=1" "the rootfs refuses writes"
expect_contains "$out" "Read-only file system" "with EROFS"
expect_contains "$out" "tmp=0" "/tmp is writable"
expect_eq "$(echo "$out" | tail -n2 | tr -d ' ' | tr '\n' ' ')" "0 0 " "/proc/cmdline and /proc/iomem are masked"
ln -sfn /rootfs /rootfs-link
mkdir -p /rootfs/data /rootfs/late
mount -t tmpfs data /rootfs/data
mount --make-shared /rootfs/late 2>/dev/null || { mount --bind /rootfs/late /rootfs/late && mount --make-shared /rootfs/late; }
cgmgr exec --group link -- sh -c 'touch /data/x; echo "data=$?"; touch /x; echo "root=$?"; sleep 2; touch /late/z; echo "late=$?"' > /tmp/link.out 2>&1 &
lpid=$!
sleep 1
mount -t tmpfs late /rootfs/late
wait $lpid
cat /tmp/link.out
expect_contains "$(cat /tmp/link.out)" "data=1" "a submount of a rootfs named through a symlink is read-only"
expect_contains "$(cat /tmp/link.out)" "root=1" "and the rootfs itself"
expect_not_contains "$(cat /tmp/link.out)" "late=0" "a host mount made during the run does not reach it writable"
[ -e /rootfs/data/x ] || [ -e /rootfs/late/z ] && fail "the run wrote on the host"
umount /rootfs/late; umount /rootfs/data
out=$(cgmgr exec --group rw -- sh -c 'touch /var/tmp/rw-mark; echo "var=$?"' 2>&1)
expect_contains "$out" "var=0" "readonly_root = false keeps it writable"
rm -f /rootfs/var/tmp/rw-mark

step "item 5b: a rootfs the run's host ids cannot reach is refused before anything is made"
out=$(cgmgr exec --group hidden -- true 2>&1); rc=$?
echo "$out"
expect_eq "$rc" 125 "exit 125"
expect_contains "$out" "/private" "names the directory the run cannot enter"
[ -e $CG/hidden ] && fail "a group was left behind"
echo "ok: no group left behind"

step "item 5c: a refused id lease leaves no run group behind"
chmod 777 /run/cgmgr-ids
out=$(cgmgr exec --group d -- true 2>&1); rc=$?
chmod 700 /run/cgmgr-ids
echo "$out"
expect_eq "$rc" 125 "a loosened lease directory: exit 125"
expect_contains "$out" "that no one else can write" "saying why"
expect_eq "$(ls -d $CG/d/cgmgr.run.* 2>/dev/null)" "" "no run group left behind"
mv /run/cgmgr-ids/cursor /run/cgmgr-ids/cursor.saved
ln -s /etc/passwd /run/cgmgr-ids/cursor
out=$(cgmgr exec --group d -- true 2>&1); rc=$?
rm /run/cgmgr-ids/cursor; mv /run/cgmgr-ids/cursor.saved /run/cgmgr-ids/cursor
echo "$out"
expect_eq "$rc" 125 "a planted symlink: exit 125"
expect_contains "$out" "/run/cgmgr-ids/cursor" "naming it"
expect_eq "$(ls -d $CG/d/cgmgr.run.* 2>/dev/null)" "" "no run group left behind"
grep -q intruder /etc/passwd && ! grep -q 1610 /etc/passwd || fail "the symlink's target was changed"

echo PASS
