# cgmgr freeze, thaw and kill: proven by the kernel (CPU time stops while
# frozen, the processes die by SIGKILL, frozen or not), with the errors a
# user meets.
. /lib.sh
P=/etc/cgmgr; mkdir -p $P
cat > $P/batch.toml <<'TOML'
[group.batch]
pids.max = 64

[group."batch/etl"]
TOML
run_cgmgr 0 apply $P
spin() { sh -c "echo \$\$ > $1/cgroup.procs; exec sh -c 'while :; do :; done'" & }
spin $CG/batch/etl; a=$!
spin $CG/batch/etl; b=$!
spin $CG/batch/etl; c=$!
sleep 0.5
usage() { key_of $CG/batch/etl/cpu.stat usage_usec; }

step "freeze: the kernel stops the group"
run_cgmgr 0 freeze batch
expect_eq "$OUT" "batch: frozen" "says frozen"
expect_eq "$(key_of $CG/batch/cgroup.events frozen)" 1 "cgroup.events frozen"
expect_eq "$(key_of $CG/batch/etl/cgroup.events frozen)" 1 "the child is frozen too"
u1=$(usage); sleep 1; u2=$(usage)
expect_eq "$u2" "$u1" "no CPU time used in a second while frozen"

step "thaw of a child under a frozen parent: timeout naming the parent"
run_cgmgr 1 thaw batch/etl --timeout 1
expect_contains "$OUT" "batch/etl is not thawed 1s after writing /sys/fs/cgroup/batch/etl/cgroup.freeze" "names group, state and file"
expect_contains "$OUT" "its ancestor batch is frozen" "names the frozen ancestor"

step "thaw: CPU time runs again"
run_cgmgr 0 thaw batch
expect_eq "$OUT" "batch: thawed" "says thawed"
echo 0 > $CG/batch/etl/cgroup.freeze
u1=$(usage); sleep 1; u2=$(usage)
[ "$u2" -gt "$((u1 + 100000))" ] || fail "no CPU time after thaw: $u1 -> $u2"
echo "ok: $((u2 - u1)) µs of CPU in a second after thaw"

step "kill of a frozen group: every process dies by SIGKILL, the group is empty"
run_cgmgr 0 freeze batch
run_cgmgr 0 kill batch
expect_eq "$OUT" "batch: killed 3 process(es); empty" "says how many"
expect_eq "$(key_of $CG/batch/cgroup.events populated)" 0 "populated 0"
for p in $a $b $c; do wait $p; expect_eq "$?" 137 "process $p killed by SIGKILL"; done
echo 0 > $CG/batch/cgroup.freeze
rmdir $CG/batch/etl || fail "the emptied group cannot be removed"
echo "ok: the emptied group is removable"

step "errors: unknown group (exit 1), bad name (exit 2)"
run_cgmgr 1 kill nope
expect_contains "$OUT" "no group nope under /sys/fs/cgroup" "names the unknown group"
run_cgmgr 2 freeze ../etc
expect_contains "$OUT" "../etc" "names the bad group"
echo PASS
