# An invalid policy set writes nothing: cgroupfs byte-identical afterwards.
. /lib.sh
P=/etc/cgmgr; mkdir -p $P
cat > $P/good.toml <<'TOML'
[group.good]
pids.max = 10
memory.max = "64M"
TOML
cat > $P/bad.toml <<'TOML'
[group.bad]
memory.max = "64MB"
TOML
before=$(snapshot $CG)
run_cgmgr 2 apply $P
expect_contains "$OUT" "bad.toml:2:14" "error names file, line and column"
expect_contains "$OUT" "unknown unit \"MB\"" "error names the value"
expect_contains "$OUT" "nothing was written" "says nothing was written"
[ "$(snapshot $CG)" = "$before" ] || fail "an invalid policy set changed cgroupfs"
[ -d $CG/good ] && fail "the valid file of an invalid set was applied"
echo "ok: cgroupfs byte-identical"
step "an unavailable controller: exit 1, named"
echo "-memory" > $CG/cgroup.subtree_control 2>/dev/null
mkdir $CG/sub
rm $P/bad.toml
run_cgmgr 1 apply --root $CG/sub $P
expect_contains "$OUT" "the memory controller is not available in cgroup v2 at /sys/fs/cgroup/sub" "names the controller"
expect_contains "$OUT" "does not delegate it" "explains why"
echo PASS
