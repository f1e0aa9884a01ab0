# cgmgr doctor on a bare host (busybox init, cgroup2 at /sys/fs/cgroup, no
# systemd), on whichever kernel the lane boots: each row is checked against
# what this kernel really shows (the files themselves, a trigger written by
# the shell), and against what the lane's kernel is known to have.
. /lib.sh

# The value of FIELD of feature NAME in the pretty-printed JSON in $JSON.
field() {
  printf '%s\n' "$JSON" | awk -v n="\"name\": \"$1\"," -v f="\"$2\": " '
    index($0, n) { found = 1 }
    found && index($0, f) { sub(/^[^:]*: /, ""); sub(/,$/, ""); gsub(/^"|"$/, ""); print; exit }'
}
available() { field "$1" available; }
detail() { field "$1" detail; }
# expect_row NAME true|false WHY: the row says so
expect_row() { expect_eq "$(available "$1")" "$2" "$1 available ($3)"; }
yes_if() { if "$@" >/dev/null 2>&1; then echo true; else echo false; fi; }

kernel=$(uname -r)
case "$kernel" in
  5.10.*) lane=5.10 ;;
  6.1.*) lane=6.1 ;;
  6.12.*) lane=6.12 ;;
  *) fail "no expectations for kernel $kernel" ;;
esac
echo "lane: $lane"

step "fixtures: the kernel files doctor parses, as this kernel writes them"
for f in /proc/self/mountinfo /proc/cgroups /proc/self/status; do
  echo "=== FIXTURE $f"; cat "$f"; echo "=== end"
done

step "a pristine tree: cgmgr can work here, and what needs a non-root group is not seen"
run_cgmgr 0 doctor
expect_contains "$OUT" "cgmgr can work here: cgroup2 (unified) at /sys/fs/cgroup" "the verdict line"
expect_eq "$(echo "$OUT" | head -n1 | tr -s ' ')" "FEATURE OK DETAIL" "the table's header"
OUT=$(cgmgr doctor --json); rc=$?
expect_eq "$rc" 0 "doctor --json exit"
JSON=$OUT
expect_row cgroup.kill false "no group but the root to look in"
expect_contains "$(detail cgroup.kill)" "not seen: there is no group other than the hierarchy's root" "said so"

step "with the tree set up: every row against the files"
echo "+cpu +memory +pids" > $CG/cgroup.subtree_control || fail "enabling controllers"
mkdir $CG/probe
OUT=$(cgmgr doctor --json); rc=$?
echo "---DOCTOR-JSON-BEGIN---"; echo "$OUT"; echo "---DOCTOR-JSON-END---"
expect_eq "$rc" 0 "doctor --json exit"
JSON=$OUT
names=$(printf '%s\n' "$JSON" | sed -n 's/^ *"name": "\(.*\)",$/\1/p' | tr '\n' ' ')
expect_eq "$names" "cgroup2 cgroup.kill cgroup.freeze memory.peak pids.events.local psi psi_triggers clone_into_cgroup openat2 user_namespaces seccomp so_passrights systemd " "the rows, in order"
expect_row cgroup2 true "unified"
expect_contains "$(detail cgroup2)" "unified: cgroup2 at /sys/fs/cgroup; managed root /sys/fs/cgroup: cgroup.controllers $(cat $CG/cgroup.controllers), enabled for its children (cgroup.subtree_control) $(cat $CG/cgroup.subtree_control), writable" "cgroup2 detail"
for f in cgroup.kill cgroup.freeze memory.peak pids.events.local; do
  expect_row $f "$(yes_if [ -e $CG/probe/$f ])" "the file in $CG/probe"
done
case $lane in
  5.10) kill=false peak=false local=false ;;
  6.1) kill=true peak=true local=false ;;
  6.12) kill=true peak=true local=true ;;
esac
expect_row cgroup.kill $kill "Linux $lane"
expect_row cgroup.freeze true "Linux $lane"
expect_row memory.peak $peak "Linux $lane"
expect_row pids.events.local $local "Linux $lane"
[ "$kill" = true ] && expect_contains "$(detail cgroup.kill)" "seen in $CG/probe" "where"
[ "$kill" = false ] && expect_contains "$(detail cgroup.kill)" "absent from $CG/probe: this kernel has no cgroup.kill" "where"
psi=$(yes_if cat $CG/cpu.pressure $CG/probe/cpu.pressure)
expect_row psi "$psi" "cat $CG/cpu.pressure $CG/probe/cpu.pressure"
if [ "$psi" = true ]; then
  # The shell arms a trigger on the file doctor used, on a descriptor of its own.
  file=$(detail psi_triggers | sed -n 's/^on \([^:]*\): .*/\1/p')
  [ -n "$file" ] || fail "psi_triggers names no file: $(detail psi_triggers)"
  trigger() { (exec 3<>"$file" && printf '%s\0' "$1" >&3) 2>/dev/null; }
  expect_row psi_triggers "$(yes_if trigger "some 50000 500000")" "a 500 ms trigger from the shell on $file"
  expect_contains "$(detail psi_triggers)" "a 500 ms window (privileged) accepted, a 2 s window (unprivileged) accepted; this process holds CAP_SYS_RESOURCE" "root in the VM: both windows"
fi
expect_row clone_into_cgroup true "clone3 into / of this kernel"
expect_contains "$(detail clone_into_cgroup)" "a child cloned into /sys/fs/cgroup (this process's cgroup)" "into its own cgroup"
expect_row openat2 true "no filter in the busybox VM"
max=$(cat /proc/sys/user/max_user_namespaces)
unpriv=$(cat /proc/sys/kernel/unprivileged_userns_clone 2>/dev/null || echo 1)
expect_row user_namespaces "$(yes_if [ "$max" -gt 0 ] && [ "$unpriv" = 1 ])" "max_user_namespaces $max, unprivileged_userns_clone $unpriv"
expect_contains "$(detail user_namespaces)" "max_user_namespaces $max" "the limit"
expect_row seccomp true "Seccomp: $(awk '/^Seccomp:/ {print $2}' /proc/self/status)"
expect_row so_passrights false "Linux $lane is before 6.16"
expect_contains "$(detail so_passrights)" "ENOPROTOOPT" "the kernel's answer"
expect_row systemd false "busybox is PID 1"

step "--root at a group: its own controllers"
run_cgmgr 0 --root $CG/probe doctor
expect_contains "$OUT" "managed root $CG/probe: cgroup.controllers cpu memory pids, enabled for its children (cgroup.subtree_control) none, writable" "the group's controllers"
[ "$kill" = true ] && expect_contains "$OUT" "seen in $CG/probe" "the managed root is a group itself"

step "where cgmgr cannot work: exit 1 with the reason"
mkdir $CG/probe/bare
run_cgmgr 1 --root $CG/probe/bare doctor
expect_contains "$OUT" "cgmgr cannot work here: none of the cpu, memory and pids controllers is available in cgroup v2 at $CG/probe/bare (cgroup.controllers: none): the parent does not delegate them" "no controller"
expect_contains "$OUT" "Fix: enable them in the parent's cgroup.subtree_control" "the fix"
export CGMGR_ROOT=/tmp
run_cgmgr 1 doctor
unset CGMGR_ROOT
expect_contains "$OUT" "the managed root /tmp is not a cgroup2 directory (a tmpfs)" "CGMGR_ROOT is honoured"
rmdir $CG/probe/bare $CG/probe
echo PASS
