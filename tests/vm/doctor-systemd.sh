# cgmgr doctor on a host whose PID 1 is systemd (tests/vm/run-systemd.sh: the
# lane's whole Debian system, systemd 247, 252 or 257):
# as a plain root command in a unit that is not delegated, and under a unit
# with the shipped cgmgr.service's sandboxing (its seccomp filters refuse
# openat2) and Delegate=yes, with --root self. Each JSON report is printed
# between markers for tests/vm.rs.
. /lib.sh

field() {
  printf '%s\n' "$JSON" | awk -v n="\"name\": \"$1\"," -v f="\"$2\": " '
    index($0, n) { found = 1 }
    found && index($0, f) { sub(/^[^:]*: /, ""); sub(/,$/, ""); gsub(/^"|"$/, ""); print; exit }'
}
expect_row() { expect_eq "$(field "$1" available)" "$2" "$1 available ($3)"; }
show_json() { echo "---DOCTOR-JSON-BEGIN $1---"; echo "$JSON"; echo "---DOCTOR-JSON-END---"; }
# in_unit UNIT ARG...: systemd-run ARG... as the transient service UNIT, and
# wait for its end; its stdout in $JSON, its stderr in $ERR, its exit status
# in $rc. (Not --wait --pipe: those need a D-Bus daemon, which this VM has
# not; systemd-run reaches PID 1 over its private socket.)
in_unit() {
  unit=$1; shift
  systemd-run -q --unit="$unit" -p RemainAfterExit=yes -p StandardOutput=file:/run/$unit.out \
    -p StandardError=file:/run/$unit.err "$@" || fail "systemd-run $unit"
  wait_for 60 "$unit ended" "[ \"\$(systemctl show -p ExecMainExitTimestampMonotonic --value $unit)\" != 0 ]"
  rc=$(systemctl show -p ExecMainStatus --value "$unit")
  JSON=$(cat /run/$unit.out)
  ERR=$(cat /run/$unit.err)
}

systemd=$(systemctl --version | head -n1 | awk '{print $2}')
case "$(uname -r)" in
  5.10.*) kill=false peak=false ;;
  *) kill=true peak=true ;;
esac
# What a filter that cannot read openat2's flags answers: EPERM before 248.
if [ "$systemd" -lt 248 ]; then refusal=EPERM; else refusal=ENOSYS; fi
echo "systemd $systemd, kernel $(uname -r): cgroup.kill $kill, memory.peak $peak, openat2 refused with $refusal"

step "fixture: /proc/self/status under RestrictSUIDSGID=yes"
in_unit status -p RestrictSUIDSGID=yes /bin/cat /proc/self/status
echo "=== FIXTURE restricted-status"
echo "$JSON"
echo "=== end"

step "a plain root command: systemd owns the tree, the default root is not delegated"
JSON=$(cgmgr doctor --json 2>/tmp/err); rc=$?
show_json plain
expect_eq "$rc" 1 "exit"
expect_contains "$(cat /tmp/err)" "cgmgr: cannot work here: systemd manages this host's cgroup tree and has not delegated /sys/fs/cgroup" "stderr gives the reason"
expect_row systemd true "PID 1"
expect_contains "$(field systemd detail)" "systemd $systemd (" "the running manager's version"
expect_contains "$(field systemd detail)" "the managed root /sys/fs/cgroup is not delegated" "no delegation"
expect_row openat2 true "no filter on the test's unit"
expect_row cgroup.kill $kill "system.slice and its units are groups"
expect_row psi_triggers false "no trigger is written where systemd has not delegated"
expect_contains "$(field psi_triggers detail)" "not probed: systemd owns the managed root" "said so"
run_cgmgr 1 doctor
expect_contains "$OUT" "Fix: \`systemctl start cgmgr\`" "the ways forward"

# The shipped unit's sandboxing and Delegate=yes, as systemd-run properties.
set --
while IFS= read -r line; do
  set -- "$@" -p "$line"
done <<EOF
$(sed -n '/^\[Service\]/,/^\[Install\]/p' /etc/systemd/system/cgmgr.service \
  | grep -E '^(NoNewPrivileges|Protect[A-Za-z]*|Private[A-Za-z]*|Restrict[A-Za-z]*|LockPersonality|MemoryDenyWriteExecute|SystemCallArchitectures|Delegate)=')
EOF
echo "unit properties: $*"
expect_contains "$*" "-p RestrictSUIDSGID=yes" "the shipped unit restricts SUID/SGID"
expect_contains "$*" "-p Delegate=yes" "and is delegated"

step "under the shipped unit's sandboxing: openat2 refused by a seccomp filter, the walk instead"
in_unit sandboxed "$@" /usr/local/bin/cgmgr --root self doctor --json
show_json sandboxed
echo "$ERR"
expect_eq "$rc" 0 "exit: cgmgr can work in its delegated cgroup"
expect_row openat2 false "RestrictSUIDSGID="
expect_contains "$(field openat2 detail)" "refused with $refusal by a seccomp filter" "$refusal from the filter (systemd $systemd)"
expect_row seccomp true "filters load"
expect_contains "$(field seccomp detail)" "no_new_privs set" "NoNewPrivileges=yes"
expect_row systemd true "PID 1"
expect_contains "$(field systemd detail)" "systemd $systemd (" "the version"
expect_contains "$(field systemd detail)" "is delegated (trusted.delegate)" "the unit's cgroup is delegated"
expect_contains "$(field cgroup2 detail)" "managed root /sys/fs/cgroup/system.slice/sandboxed.service:" "--root self is the unit's cgroup"
expect_contains "$(field cgroup2 detail)" " memory " "a delegated unit gets the memory controller"
expect_contains "$(field cgroup2 detail)" " pids," "and pids"
expect_row cgroup.kill $kill "the unit's cgroup is a group"
expect_row memory.peak $peak "memory enabled for the unit"
expect_row clone_into_cgroup true "into the unit's cgroup"
expect_row psi_triggers true "armed on the delegated root's own cpu.pressure"
expect_contains "$(field psi_triggers detail)" "on /sys/fs/cgroup/system.slice/sandboxed.service/cpu.pressure:" "where"

step "RestrictSUIDSGID=yes alone, not delegated: exit 1"
in_unit restricted -p RestrictSUIDSGID=yes /usr/local/bin/cgmgr doctor --json
show_json restricted
expect_contains "$ERR" "cgmgr: cannot work here: systemd manages this host's cgroup tree" "the reason on stderr"
expect_eq "$rc" 1 "exit"
expect_row openat2 false "RestrictSUIDSGID="
expect_contains "$(field openat2 detail)" "refused with $refusal by a seccomp filter" "$refusal"
expect_contains "$(field systemd detail)" "is not delegated" "the default root"
echo PASS
