# pids.max refusals of `cgmgr exec` runs, counted for their group on every
# kernel. Before 6.11 the kernel counts a refused fork only in the forking
# task's own cgroup, the run group, which goes away at the run's end; from
# 6.11 it counts it at the group whose limit refused it and has
# pids.events.local. Either way the group's count (cgmgr metrics, the
# daemon's /metrics, cgmgr status, the daemon's event log) must equal the
# sum of the runs' own refusals: none lost with a run group, none counted
# twice. Live runs, two runs ending at once, an abandoned run reaped by the
# next one, and a daemon restart.
. /lib.sh
ip link set lo up
fail() { echo "FAIL: $*"; echo "--- daemon log"; cat /tmp/daemon.log; exit 1; }
URL=http://127.0.0.1:9765
SERIES='cgmgr_pids_events_total{group="sandbox",event="max"}'
# cli_count / daemon_count: the group's refusals as `cgmgr metrics` and the
# daemon's /metrics export them.
cli_count() { cgmgr metrics | grep -F "$SERIES " | awk '{ print $2 }'; }
daemon_count() { wget -q -O - $URL/metrics | grep -F "$SERIES " | awk '{ print $2 }'; }
status_count() { cgmgr status sandbox --json --interval 0.1 | sed -n 's/.*"pids_max_refusals":\([0-9]*\).*/\1/p'; }
# report_count FILE: pids_max_refusals of the JSON report on FILE's last line
report_count() { tail -n 1 "$1" | sed -n 's/.*"pids_max_refusals":\([0-9]*\).*/\1/p'; }
# logged_total: the total of the daemon's last pids.events line for sandbox
logged_total() { grep "event group=sandbox file=pids.events event=max" /tmp/daemon.log | tail -n 1 | sed -n 's/.* total=\([0-9]*\).*/\1/p'; }
# refused FILE: the forks refused in a run, as its shell said them (busybox sh
# prints one "can't fork" per refused fork), and as cgmgr said them when the
# group was full before the run's own init could be made (two runs at once:
# "cgmgr: exec: fork: EAGAIN"): the truth every count must equal.
refused() { grep -c -e "can't fork" -e "^cgmgr: .*EAGAIN" "$1"; }
# A fork loop that meets pids.max inside the run; the shell says why it stopped.
BOMB='for i in $(seq 40); do sleep 3 & done'

mkdir -p /etc/cgmgr
cat > /etc/cgmgr/sandbox.toml <<'TOML'
# memory too: the run group then has its own memory and pids counters, and
# the report reads the run's own where the kernel keeps them there.
[group.sandbox]
pids.max = 16
memory.max = "256M"

[group.sandbox.exec]
namespaces = ["uts", "pid", "mount"]
uid = 1000
TOML
echo "kernel $(uname -r)"

step "start the daemon"
cgmgr daemon --reconcile 600 /etc/cgmgr 2>/tmp/daemon.log &
daemon=$!
wait_for 10 "healthz answers 200" 'wget -q -O - $URL/healthz'
expect_eq "$(cat $CG/sandbox/pids.max)" 16 "pids.max applied"
if [ -e $CG/sandbox/pids.events.local ]; then
  HIER=1
  echo "ok: pids.events.local exists: this kernel counts refusals at the limit's group"
else
  HIER=
  echo "ok: no pids.events.local: this kernel counts refusals in the forking task's cgroup"
fi
expect_eq "$(cli_count)" 0 "no refusal yet"

step "a run whose forks pids.max refuses"
cgmgr exec --group sandbox --report=json -- sh -c "$BOMB; wait" 2>/tmp/a.err
cat /tmp/a.err
grep -q "can't fork" /tmp/a.err || fail "no fork failed inside the run"
echo "ok: a fork failed inside the run"
a=$(refused /tmp/a.err)
expect_eq "$(report_count /tmp/a.err)" "$a" "the run's report: the forks its shell saw refused"
ls -d $CG/sandbox/cgmgr.run.* 2>/dev/null && fail "the run group is still there"
echo "MEASURE pids.events of sandbox after the run: $(cat $CG/sandbox/pids.events | tr '\n' ' ')"
expect_eq "$(cli_count)" "$a" "cgmgr metrics: the group's refusals after the run"
expect_eq "$(daemon_count)" "$a" "the daemon's /metrics"
expect_eq "$(status_count)" "$a" "cgmgr status --json"
wait_for 5 "the daemon logged the refusal" '[ "$(logged_total)" = "$a" ]'
grep "event group=sandbox file=pids.events" /tmp/daemon.log
# 6.11+: the kernel's own count of the group is the truth, and not doubled.
[ -n "$HIER" ] && expect_eq "$(cli_count)" "$(key_of $CG/sandbox/pids.events max)" "the kernel's own hierarchical count, once"

step "a live run: counted while it runs, logged before it ends, once after"
cgmgr exec --group sandbox --report=json -- sh -c "($BOMB; wait); sleep 8" 2>/tmp/b.err &
b_pid=$!
wait_for 6 "the live run's refusal is counted" '[ "$(cli_count)" -gt "$a" ]'
live=$(cli_count)
wait_for 5 "the daemon logged it while the run lives" '[ "$(logged_total)" = "$live" ]'
[ -d /proc/$b_pid ] || fail "the run ended before its refusal was seen"
wait $b_pid
grep -q "can't fork" /tmp/b.err || fail "no fork failed inside the live run"
b=$(refused /tmp/b.err)
expect_eq "$(report_count /tmp/b.err)" "$b" "the live run's report"
expect_eq "$(cli_count)" $((a + b)) "after its end: both runs' refusals"
expect_eq "$(daemon_count)" $((a + b)) "the daemon's /metrics"

step "two runs ending at once"
cgmgr exec --group sandbox --report=json -- sh -c "$BOMB; wait; sleep 1" 2>/tmp/c.err &
c_pid=$!
cgmgr exec --group sandbox --report=json -- sh -c "$BOMB; wait; sleep 1" 2>/tmp/d.err &
d_pid=$!
wait $c_pid; wait $d_pid
c=$(refused /tmp/c.err); d=$(refused /tmp/d.err)
echo "refused: $c and $d; reports: $(report_count /tmp/c.err) and $(report_count /tmp/d.err)"
echo "--- first run's stderr"; cat /tmp/c.err; echo "--- second run's stderr"; cat /tmp/d.err; echo "---"
if [ -z "$HIER" ]; then
  # Each run's own count, from its run group.
  expect_eq "$(report_count /tmp/c.err)" "$c" "the first run's report, its own"
  expect_eq "$(report_count /tmp/d.err)" "$d" "the second run's report, its own"
else
  # 6.11+ counts no refusal at the run: a report gives the group's rise
  # during the run, its own refusals and the concurrent run's.
  for f in c d; do
    r=$(report_count /tmp/$f.err)
    [ "$r" -ge "$(refused /tmp/$f.err)" ] && [ "$r" -le $((c + d)) ] || fail "report $f: $r outside $(refused /tmp/$f.err)..$((c + d))"
  done
  echo "ok: each report holds its own refusals, at most both runs'"
fi
expect_eq "$(cli_count)" $((a + b + c + d)) "every run's refusals, none lost, none twice"

step "an abandoned run: counted while it is left, carried when the next run reaps it"
before=$(cli_count)
cgmgr exec --group sandbox -- sh -c "($BOMB; wait); sleep 60" 2>/tmp/e.err &
e_pid=$!
wait_for 6 "the run's refusal is counted" '[ "$(cli_count)" -gt "$before" ]'
kill -9 $e_pid; wait $e_pid 2>/dev/null
left=$(ls -d $CG/sandbox/cgmgr.run.* 2>/dev/null)
[ -n "$left" ] || fail "the killed run left no run group"
wait_for 5 "the abandoned run's processes are gone" "grep -q 'populated 0' $left/cgroup.events"
e=$(refused /tmp/e.err)
expect_eq "$(cli_count)" $((before + e)) "the abandoned run's refusals counted while it is left"
cgmgr exec --group sandbox -- true 2>/tmp/f.err
grep -q "ended the abandoned run" /tmp/f.err || fail "the next run did not end the abandoned one: $(cat /tmp/f.err)"
[ -d "$left" ] && fail "the abandoned run group is still there"
expect_eq "$(cli_count)" $((before + e)) "after the reap: counted once"
total=$(cli_count)
wait_for 5 "the daemon's log reached the total" '[ "$(logged_total)" = "$total" ]'

step "a daemon restart keeps the count"
kill $daemon; wait $daemon
cgmgr daemon --reconcile 600 /etc/cgmgr 2>>/tmp/daemon.log &
daemon=$!
wait_for 10 "healthz answers 200 again" 'wget -q -O - $URL/healthz'
expect_eq "$(daemon_count)" "$total" "the restarted daemon's /metrics"
expect_eq "$(status_count)" "$total" "cgmgr status --json"
[ -n "$HIER" ] && expect_eq "$total" "$(key_of $CG/sandbox/pids.events max)" "the kernel's own count, once"
echo "MEASURE forks refused $a+$b+$c+$d+$e, group count $total, sandbox/pids.events $(cat $CG/sandbox/pids.events | tr '\n' ' ')"
kill $daemon; wait $daemon

step "6.11+ mounted with pids_localevents: counted in the forking cgroup again"
# The mount option makes pids.events count a refused fork in the forking
# task's own cgroup, as before 6.11, though pids.events.local exists.
if [ -n "$HIER" ]; then
  mount -o remount,pids_localevents $CG || fail "remount with pids_localevents"
  grep " - cgroup2 " /proc/self/mountinfo
  before=$(cli_count)
  cgmgr exec --group sandbox --report=json -- sh -c "$BOMB; wait" 2>/tmp/f.err
  f=$(refused /tmp/f.err)
  [ "$f" -gt 0 ] || fail "no fork failed inside the run"
  expect_eq "$(report_count /tmp/f.err)" "$f" "the run's report: the forks its shell saw refused"
  expect_eq "$(cli_count)" $((before + f)) "cgmgr metrics: the group's count rose by the run's refusals"
  echo "MEASURE pids_localevents: forks refused $f, group count $before -> $(cli_count), sandbox/pids.events $(cat $CG/sandbox/pids.events | tr '\n' ' ')"
else
  echo "ok: no pids.events.local, no pids_localevents option on this kernel"
fi
echo PASS
