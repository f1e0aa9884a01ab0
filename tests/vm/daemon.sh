# cgmgr daemon with a real workload: metrics equal to the kernel's files,
# limit events as they happen, hot reload (plain edit, ConfigMap symlink
# swap, invalid edit), drift correction, a removed group, hostile HTTP
# clients, SIGHUP, SIGTERM, one instance per root.
. /lib.sh
ip link set lo up
fail() { echo "FAIL: $*"; echo "--- daemon log"; cat /tmp/daemon.log; exit 1; }
URL=http://127.0.0.1:9765
scrape() { wget -q -O - $URL/metrics; }
metric() { scrape | grep -v '^#' | grep -F "$1 " | awk '{ print $2 }'; }
# A Kubernetes ConfigMap mount: files are symlinks into ..data, which is a
# symlink to a timestamped directory, swapped by an atomic rename.
P=/etc/cm
mkdir -p $P/..v1
cat > $P/..v1/sandbox.toml <<'TOML'
[group.sandbox]
memory.max = "32M"
memory.swap.max = "0"
pids.max = 16
cpu.max = "50%"
TOML
ln -s ..v1 $P/..data
ln -s ..data/sandbox.toml $P/sandbox.toml

step "start"
cgmgr daemon --reconcile 1 $P 2>/tmp/daemon.log &
daemon=$!
wait_for 10 "healthz answers 200" 'wget -q -O - $URL/healthz' 
expect_eq "$(cat $CG/sandbox/pids.max)" 16 "policy applied"

step "metrics equal the kernel's files"
sh -c "echo \$\$ > $CG/sandbox/cgroup.procs; exec sleep 1000" &
sleeper=$!
sleep 0.5
expect_eq "$(metric 'cgmgr_memory_limit_bytes{group="sandbox"}')" "$(cat $CG/sandbox/memory.max)" "memory limit"
expect_eq "$(metric 'cgmgr_pids_limit{group="sandbox"}')" "$(cat $CG/sandbox/pids.max)" "pids limit"
expect_eq "$(metric 'cgmgr_pids_current{group="sandbox"}')" "$(cat $CG/sandbox/pids.current)" "pids current"
expect_eq "$(metric 'cgmgr_cpu_limit_cores{group="sandbox"}')" "0.5" "cpu limit cores"
expect_eq "$(metric 'cgmgr_policy_groups')" 1 "policy groups"
expect_eq "$(metric 'cgmgr_policy_reloads_total{result="success"}')" 1 "initial load counted"
cur=$(cat $CG/sandbox/memory.current); got=$(metric 'cgmgr_memory_usage_bytes{group="sandbox"}')
echo "memory.current $cur, metric $got"
[ "$got" -gt 0 ] && [ "$got" -le $((cur * 2)) ] && [ "$cur" -le $((got * 2)) ] || fail "memory usage metric $got far from memory.current $cur"
scrape | grep -q 'cgmgr_pressure_seconds_total{group="sandbox",resource="memory",kind="full"}' || fail "no PSI metric"
scrape | grep -q 'cgmgr_memory_high_bytes{group="sandbox"}' && fail "memory.high is max: no gauge expected"
kill $sleeper

step "an OOM kill: logged as it happens and counted"
sh -c "echo \$\$ > $CG/sandbox/cgroup.procs; exec dd if=/dev/zero of=/dev/null bs=64M count=1"
wait_for 5 "the daemon logged the OOM kill" 'grep -q "event group=sandbox file=memory.events event=oom_kill count=1 total=1" /tmp/daemon.log' 
expect_eq "$(metric 'cgmgr_memory_events_total{group="sandbox",event="oom_kill"}')" 1 "oom_kill counter"

step "a pids.max hit: logged"
sh -c "echo \$\$ > $CG/sandbox/cgroup.procs; for i in \$(seq 30); do sleep 2 & done 2>/dev/null; wait"
wait_for 5 "the daemon logged the pids.max hit" 'grep -q "event group=sandbox file=pids.events event=max" /tmp/daemon.log' 
[ "$(metric 'cgmgr_pids_events_total{group="sandbox",event="max"}')" -gt 0 ] || fail "pids events metric"

step "hot reload: ConfigMap symlink swap"
mkdir $P/..v2
sed 's/pids.max = 16/pids.max = 20/' $P/..v1/sandbox.toml > $P/..v2/sandbox.toml
ln -s ..v2 $P/..data_tmp && mv -T $P/..data_tmp $P/..data
wait_for 5 "pids.max follows the swapped ConfigMap" '[ "$(cat $CG/sandbox/pids.max)" = 20 ]'

step "hot reload: a plain new file and an in-place edit"
printf '[group.web]\npids.max = 5\n' > $P/web.toml
wait_for 5 "a new file's group is created" '[ -d $CG/web ]' 
echo 'cpu.weight = 200' >> $P/web.toml
wait_for 5 "an in-place edit is applied" '[ "$(cat $CG/web/cpu.weight)" = 200 ]'
expect_eq "$(metric 'cgmgr_policy_groups')" 2 "policy groups after reload"

step "an invalid edit is rejected whole; the old policy stays"
printf '[group.web]\npids.max = 6\nmemroy.max = "1G"\n' > $P/web.toml
wait_for 5 "/healthz says 503" '! wget -q -O - $URL/healthz' 
expect_eq "$(cat $CG/web/pids.max)" 5 "old value still enforced"
grep -q "web.toml:3:1: unknown key \`memroy.max\`" /tmp/daemon.log || fail "the error is not logged with file:line"
echo "ok: logged with file:line"
[ "$(metric 'cgmgr_policy_reloads_total{result="error"}')" -ge 1 ] || fail "reload error not counted"
printf '[group.web]\npids.max = 6\n' > $P/web.toml
wait_for 5 "fixed: /healthz 200 again" 'wget -q -O - $URL/healthz' 
expect_eq "$(cat $CG/web/pids.max)" 6 "fixed value applied"

step "drift correction"
echo 99 > $CG/sandbox/pids.max
wait_for 5 "a changed value is put back" '[ "$(cat $CG/sandbox/pids.max)" = 20 ]'
expect_eq "$(metric 'cgmgr_drift_corrections_total{file="pids.max",group="sandbox"}')" 1 "drift counted"
grep -q "drift: sandbox/pids.max: 99 -> 20" /tmp/daemon.log || fail "drift not logged"
before=$(metric 'cgmgr_scrape_vanished_groups_total')
rmdir $CG/web
scrape > /tmp/after-rmdir || fail "a scrape failed after a group was removed"
echo "ok: the scrape right after rmdir succeeded"
grep -q 'group="web"' /tmp/after-rmdir && fail "the removed group was in the scrape"
vanished=$(metric 'cgmgr_scrape_vanished_groups_total')
# Every scrape until the daemon recreates it skips and counts it once more.
[ "$vanished" -gt "$before" ] || fail "vanished groups not counted ($before -> $vanished)"
echo "ok: the removed group was skipped and counted ($before -> $vanished)"
wait_for 5 "a removed group is recreated" '[ -d $CG/web ]' 
expect_eq "$(cat $CG/web/pids.max)" 6 "recreated with its values"

step "hostile clients do not block a scrape"
for i in 1 2 3; do sleep 30 | nc 127.0.0.1 9765 >/dev/null & done
out=$(printf 'GARBAGE\r\n\r\n' | nc 127.0.0.1 9765)
expect_contains "$out" "400 Bad Request" "garbage gets 400"
out=$(printf 'GET /nope HTTP/1.1\r\n\r\n' | nc 127.0.0.1 9765)
expect_contains "$out" "404 Not Found" "unknown path gets 404"
timeout 3 wget -q -O /dev/null $URL/metrics || fail "a scrape beside idle connections took over 3s"
echo "ok: scrape answered beside 3 idle connections"

step "SIGHUP reloads"
kill -HUP $daemon
wait_for 5 "SIGHUP reload logged" 'grep -q "(SIGHUP)" /tmp/daemon.log' 

step "one daemon per root"
cgmgr daemon --listen 127.0.0.1:9766 $P 2>/tmp/second.log; rc=$?
expect_eq "$rc" 1 "second instance exit status"
expect_contains "$(cat /tmp/second.log)" "another cgmgr daemon already manages /sys/fs/cgroup" "second instance refused"

echo "---METRICS-BEGIN---"; scrape; echo "---METRICS-END---"

step "SIGTERM stops within a second, leaving groups in place"
kill -TERM $daemon
wait_for 1 "daemon exited" '! kill -0 $daemon' 
wait $daemon; expect_eq "$?" 0 "daemon exit status"
[ -d $CG/sandbox ] || fail "sandbox was removed on stop"
echo "--- daemon log"; cat /tmp/daemon.log
echo PASS
