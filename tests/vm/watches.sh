# When fs.inotify.max_user_watches runs out, the daemon says so (log,
# /healthz, a metric) and still logs the limit events of the groups it could
# not watch, at each reconcile tick.
. /lib.sh
ip link set lo up
mkdir -p /etc/cgmgr
for g in a b c d e; do
  printf '[group.%s]\nmemory.max = "32M"\nmemory.swap.max = "0"\npids.max = 64\n' $g >> /etc/cgmgr/p.toml
done
echo 8 > /proc/sys/fs/inotify/max_user_watches
cgmgr daemon --reconcile 1 /etc/cgmgr 2>/tmp/daemon.log &
daemon=$!
i=0; until wget -q -O /tmp/health http://127.0.0.1:9765/healthz; do i=$((i + 1)); [ $i -gt 100 ] && { cat /tmp/daemon.log; fail "daemon not up"; }; sleep 0.2; done
cat /tmp/daemon.log
step "said loudly"
expect_contains "$(cat /tmp/daemon.log)" "cannot be watched" "a warning in the log"
expect_contains "$(cat /tmp/health)" "degraded" "/healthz says degraded"
wget -q -O /tmp/metrics http://127.0.0.1:9765/metrics
n=$(awk '/^cgmgr_limit_events_unwatched_files / { print $2 }' /tmp/metrics)
echo "unwatched files: $n"
[ "${n:-0}" -gt 0 ] || fail "the metric does not count the unwatched files"
step "an OOM kill in an unwatched group is still logged, at the next tick"
sh -c "echo \$\$ > $CG/e/cgroup.procs; exec dd if=/dev/zero of=/dev/null bs=64M count=1" 2>/dev/null
expect_eq "$?" 137 "dd OOM-killed in e"
i=0; until grep -q "event group=e file=memory.events event=oom_kill" /tmp/daemon.log; do
  i=$((i + 1)); [ $i -gt 50 ] && { cat /tmp/daemon.log; fail "the OOM kill in e was never logged"; }; sleep 0.2
done
echo "ok: logged: $(grep 'event group=e file=memory.events event=oom_kill' /tmp/daemon.log)"
kill -TERM $daemon; wait $daemon
echo PASS
