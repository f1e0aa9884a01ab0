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
echo PASS
