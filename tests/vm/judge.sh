# `cgmgr exec` as an online judge runs it: a submission bound in read-only,
# a sized tmpfs to work in, CPU and wall time limits, memory and pids
# limits, an fsize limit, and the verdict read from --report-file. Every
# verdict is checked, CPU time at a time-limit kill is measured, and the
# same runs go through prepared sandboxes. Then a CI-like job: input bound
# read-only, artifacts written to a read-write bind, nowhere else.
. /lib.sh
fail() { echo "FAIL: $*"; [ -f /tmp/daemon.log ] && { echo "--- daemon log"; cat /tmp/daemon.log; }; exit 1; }
# field FILE NAME: a JSON field's raw value from a one-line report
field() { sed -n "s/.*\"$2\":\\([^,}]*\\).*/\\1/p" "$1" | tr -d '"'; }

cgmgr rootfs build /rootfs --bin /bin/busybox >/dev/null || fail "rootfs build"
for a in sh cat echo sleep dd head kill tar gzip sort wc seq touch ln rm; do ln -sf busybox /rootfs/bin/$a; done
mkdir -p /rootfs/sub /rootfs/work /rootfs/in /rootfs/out /srv/sub /srv/in /srv/out
cat > /srv/sub/ok.sh <<'EOF'
read n < /sub/input; echo "answer $((n * 2))"
EOF
echo 21 > /srv/sub/input
echo 'exit 1' > /srv/sub/wrong.sh
echo 'while :; do :; done' > /srv/sub/spin.sh
echo 'sleep 30' > /srv/sub/sleep.sh
echo 'dd if=/dev/zero of=/dev/null bs=64M count=1' > /srv/sub/memory.sh
echo 'dd if=/dev/zero of=/work/out bs=1k count=512' > /srv/sub/output.sh
echo 'while :; do sleep 5 & done' > /srv/sub/forks.sh
echo 'kill -SEGV $$' > /srv/sub/crash.sh

P=/etc/cgmgr
mkdir -p $P
for g in judge judgep; do
  standby=0; [ $g = judgep ] && standby=2
  cat > $P/$g.toml <<TOML
[group.$g]
memory.max = "32M"
memory.swap.max = "0"
pids.max = 16
[group.$g.exec]
rootfs = "/rootfs"
time_limit = "1s"
wall_limit = "3s"
rlimits = { fsize = "64K", nofile = 32 }
mounts = [{ bind = "/srv/sub", at = "/sub", readonly = true }, { tmpfs = "/work", size = "1M" }]
standby = $standby
TOML
done
cgmgr apply $P >/dev/null || fail "apply"

# judge GROUP SUBMISSION STATUS: runs it, checks the verdict and the exit code
judge() {
  rm -f /tmp/r.json
  out=$(cgmgr exec --group $1 --report-file /tmp/r.json -- sh /sub/$2.sh 2>&1); rc=$?
  [ -s /tmp/r.json ] || fail "$1 $2: no report file (exit $rc): $out"
  got=$(field /tmp/r.json status)
  echo "$1 $2: exit $rc, status $got, cpu $(field /tmp/r.json cpu_seconds)s, wall $(field /tmp/r.json wall_seconds)s, maxrss $(field /tmp/r.json max_rss_bytes)"
  # "held": a fork bomb held by pids.max; its shell gives up (exit 2 in
  # busybox sh) or spins until the CPU or wall limit ends it.
  case "$3:$got" in held:exit|held:time|held:wall) echo "ok: $1: $2's verdict = '$got'";;
    *) expect_eq "$got" "$3" "$1: $2's verdict";; esac
  expect_eq "$(field /tmp/r.json exit_code)" "$rc" "$1: the report's exit code is cgmgr exec's"
  OUT=$out
}

for g in judge judgep; do
  if [ $g = judgep ]; then
    cgmgr daemon --reconcile 1 $P 2>/tmp/daemon.log &
    daemon=$!
    wait_for 30 "prepared sandboxes of judgep" '[ $(prepared_in $CG/judgep | wc -l) -ge 2 ]'
  fi
  step "$g: every verdict"
  judge $g ok ok
  expect_contains "$OUT" "answer 42" "the submission read its bound input"
  judge $g wrong exit
  judge $g spin time
  expect_eq "$rc" 137 "killed by the time limit: 128+9"
  expect_contains "$OUT" "killed: time limit 1.000s exceeded" "one line names the limit"
  cpu=$(field /tmp/r.json cpu_seconds)
  echo "MEASURE $g cpu at the time-limit kill: ${cpu}s"
  awk -v c="$cpu" 'BEGIN { exit !(c >= 1.0 && c <= 1.6) }' || fail "$g: CPU at the kill ${cpu}s is outside 1.0-1.6s"
  judge $g sleep wall
  expect_contains "$OUT" "killed: wall limit 3.000s exceeded" "one line names the wall limit"
  judge $g memory memory
  judge $g output output
  expect_eq "$(field /tmp/r.json exit_signal)" 25 "SIGXFSZ under fsize"
  judge $g forks held
  n=$(field /tmp/r.json pids_max_refusals)
  [ "$n" -gt 0 ] || fail "$g: the fork bomb met no pids.max refusal"
  echo "ok: $g: the fork bomb was held by pids.max ($n refusals)"
  judge $g crash signal
  expect_eq "$(field /tmp/r.json exit_signal)" 11 "$g: the crash's signal"
  expect_eq "$(key_of $CG/$g/cgroup.events populated)" "$([ $g = judgep ] && echo 1 || echo 0)" "$g: nothing left but prepared sandboxes"
done
kill $daemon; wait $daemon

step "the flags override the policy: --time-limit, --rlimit, --wall-limit"
out=$(cgmgr exec --group judge --time-limit 300ms --extra-time 200ms --report-file /tmp/r.json -- sh /sub/spin.sh 2>&1); rc=$?
expect_eq "$rc" 137 "killed"
cpu=$(field /tmp/r.json cpu_seconds)
awk -v c="$cpu" 'BEGIN { exit !(c >= 0.5 && c <= 1.0) }' || fail "CPU at the kill ${cpu}s is outside 0.5-1.0s (300ms + 200ms extra)"
echo "ok: killed at ${cpu}s of CPU"
run_cgmgr 0 exec --group judge --rlimit nofile=7 -- sh -c 'ulimit -n'
expect_eq "$OUT" 7 "--rlimit nofile=7"
run_cgmgr 0 exec --group judge -- sh -c 'ulimit -c'
expect_eq "$OUT" 0 "core is 0 unless set"

step "what a submission may write: the tmpfs only"
run_cgmgr 1 exec --group judge -- sh -c 'touch /sub/x'
run_cgmgr 1 exec --group judge -- sh -c 'touch /bin/x'
run_cgmgr 1 exec --group judge --rlimit fsize=max -- sh -c 'dd if=/dev/zero of=/work/big bs=1k count=2048 2>/dev/null || exit 1'
run_cgmgr 0 exec --group judge --rlimit fsize=max -- sh -c 'dd if=/dev/zero of=/work/half bs=1k count=512 2>/dev/null'

mkdir -p $CG/ci
step "a CI job: input read-only, artifacts to a read-write bind, a sized tmpfs to sort in"
# The run writes with its own leased host ids: the artifacts' directory is
# writable by them (as a shared /tmp is), the input is not.
chmod 1777 /srv/out
seq 1 20000 > /srv/in/numbers
echo "source" > /srv/in/README
run_cgmgr 0 exec --group ci --rootfs /rootfs --ro-bind /srv/in:/in --bind /srv/out:/out --tmpfs /tmp:8M --wall-limit 60s -- \
  sh -c 'sort -rn /in/numbers > /tmp/sorted && head -1 /tmp/sorted > /out/max && cd /in && tar cf - . | gzip > /out/in.tar.gz'
expect_eq "$(cat /srv/out/max)" 20000 "the artifact came out"
owner=$(stat -c %u /srv/out/max)
[ "$owner" -ge 1610612736 ] || fail "the artifact belongs to uid $owner, not to the run's leased range"
echo "ok: the artifact belongs to the run's leased uid $owner"
gzip -dc /srv/out/in.tar.gz | tar tf - | grep -q README || fail "the tarball lacks the input"
echo "ok: the tarball holds the input"
run_cgmgr 1 exec --group ci --rootfs /rootfs --ro-bind /srv/in:/in -- sh -c 'touch /in/README'
expect_eq "$(cat /srv/in/README)" source "the read-only input is unchanged"
run_cgmgr 1 exec --group ci --rootfs /rootfs --bind /srv/out:/out -- sh -c 'touch /bin/x'

step "the report file cannot be redirected by the run, nor planted before it"
sum=$(md5sum < /etc/passwd)
# A directory the run may change entries of (not sticky): it swaps the
# report's name for a symlink to /etc/passwd while it runs.
mkdir -p /srv/open; chmod 777 /srv/open
run_cgmgr 0 exec --group ci --rootfs /rootfs --bind /srv/open:/out --report-file /srv/open/r.json -- \
  sh -c 'rm -f /out/r.json; ln -s /etc/passwd /out/r.json'
expect_eq "$(md5sum < /etc/passwd)" "$sum" "/etc/passwd untouched by a symlink the run put at the report's path"
ln -s /etc/passwd /srv/out/planted.json
run_cgmgr 125 exec --group ci --rootfs /rootfs --report-file /srv/out/planted.json -- true
ln /etc/passwd /srv/out/linked.json
run_cgmgr 125 exec --group ci --rootfs /rootfs --report-file /srv/out/linked.json -- true
expect_contains "$OUT" "one link" "a hard link to another file is refused"
expect_eq "$(md5sum < /etc/passwd)" "$sum" "/etc/passwd untouched by planted links"

step "mount points are made only in the run's own tmpfs, never through a bind's symlink"
mkdir -p /srv/evil /srv/victim; chmod 1777 /srv/victim
ln -s /etc /srv/evil/link; ln -s /srv/victim /srv/evil/vlink; echo x > /srv/f
cat > $P/nouser.toml <<'TOML'
[group.nouser.exec]
rootfs = "/rootfs"
namespaces = ["mount", "pid", "uts", "ipc", "net", "cgroup"]
uid = 1000
TOML
run_cgmgr 125 exec --group nouser --policies $P --bind /srv/evil:/tmp/e --ro-bind /srv/f:/tmp/e/link/nologin -- true
[ -e /etc/nologin ] && fail "root created /etc/nologin through the bind's symlink"
echo "ok: nothing made in /etc (no user namespace: the child is the host's root)"
run_cgmgr 125 exec --group ci --rootfs /rootfs --bind /srv/evil:/tmp/e --ro-bind /srv/f:/tmp/e/vlink/made -- true
[ -e /srv/victim/made ] && fail "a mount point was made in /srv/victim through the bind's symlink"
echo "ok: nothing made in /srv/victim (with a user namespace)"
run_cgmgr 125 exec --group ci --rootfs /rootfs --ro-bind /proc/sys:/in -- true
expect_contains "$OUT" "kernel file system" "a /proc source is refused"

step "bad mounts are refused before anything is made (125)"
ln -s /etc /srv/link
run_cgmgr 125 exec --group ci --rootfs /rootfs --bind /srv/link:/in -- true
expect_contains "$OUT" "/srv/link is a symlink" "a symlinked source"
run_cgmgr 125 exec --group ci --rootfs /rootfs --tmpfs /proc/x -- true
expect_contains "$OUT" "lies on /proc" "a destination on /proc"
run_cgmgr 125 exec --group ci --rootfs /rootfs --bind /srv/in:/nowhere -- true
expect_contains "$OUT" "does not exist in the rootfs" "a destination missing from the rootfs"
[ -e /rootfs/nowhere ] && fail "the rootfs was written"
ln -s /etc /rootfs/etc-link
run_cgmgr 125 exec --group ci --rootfs /rootfs --bind /srv/in:/etc-link -- true
expect_contains "$OUT" "is a symlink in the rootfs" "a symlinked destination"
echo PASS
