#!/usr/bin/env bash
# Boots a throwaway QEMU VM that is a whole Debian system: the release's own
# root (debootstrap minbase with systemd, tests/vm/distro-root.sh --system),
# its own kernel, its own systemd as PID 1; runs one test script inside it,
# as a systemd service.
#
#   CGMGR_VM_SUITE=bullseye|bookworm|trixie tests/vm/run-systemd.sh SCRIPT CGMGR_BINARY [EXTRA_FILE...]
#
# (Debian 11: Linux 5.10, systemd 247; 12: 6.1, 252; 13: 6.12, 257; unset
# means bookworm.) Most real hosts are systemd hosts: systemd owns the cgroup
# tree, delegates subtrees, sandboxes services with seccomp and mount
# namespaces, and rewrites the root's controllers on daemon-reload.
# tests/vm/run.sh cannot show any of that (its PID 1 is a shell), so this VM
# boots systemd and installs cgmgr the way the README tells a user to:
# /usr/local/bin/cgmgr, systemd/cgmgr.service unchanged in
# /etc/systemd/system, policies/*.toml in /etc/cgmgr (or
# $CGMGR_VM_POLICIES/*.toml). The unit is installed, not started: starting it
# is the test's business. EXTRA_FILEs go to /usr/bin unless the release has a
# program of that name (its own is kept); they must be static there, as
# cgmgr is: the host's libraries are not the release's.
#
# Conventions are tests/vm/run.sh's: the kernel cache (tests/vm/kernel.sh),
# /lib.sh and /test.sh, the serial log printed, the test's status on a line
# `CGMGR-VM-EXIT N`, exit 0 only when N is 0, missing prerequisites are
# failures, the VM bounded by $CGMGR_VM_TIMEOUT seconds (default 420). The
# tests' busybox is /bin/busybox, and its applets the release lacks (wget,
# nc...) are in /usr/local/bin.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
script=${1:?usage: run-systemd.sh SCRIPT CGMGR_BINARY [EXTRA_FILE...]}
binary=${2:?usage: run-systemd.sh SCRIPT CGMGR_BINARY [EXTRA_FILE...]}
shift 2
cache=${CGMGR_VM_CACHE:-$repo/target/vm-cache}
timeout_secs=${CGMGR_VM_TIMEOUT:-420}
policies=${CGMGR_VM_POLICIES:-$repo/policies}
suite=${CGMGR_VM_SUITE:-bookworm}

die() { echo "vm: $*" >&2; exit 1; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
secs_since() { local ms=$(( $(now_ms) - $1 )); printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100)); }
for tool in qemu-system-x86_64 cpio ldd apt-get dpkg-deb flock timeout debootstrap; do
  command -v "$tool" >/dev/null || die "missing $tool: run tests/prereqs.sh (see README)"
done
busybox=$(command -v busybox || true)
[ -n "$busybox" ] && file_is_static=$(ldd "$busybox" 2>&1 || true)
case "${file_is_static:-}" in *"not a dynamic"*) ;; *) die "need a static busybox (apt-get install busybox-static)";; esac
[ -f "$repo/systemd/cgmgr.service" ] || die "missing $repo/systemd/cgmgr.service"
compgen -G "$policies/*.toml" >/dev/null || die "no policies in $policies (the unit needs a non-empty /etc/cgmgr)"
is_static() { case "$(ldd "$1" 2>&1 || true)" in *"not a dynamic"*|*"statically linked"*) return 0 ;; *) return 1 ;; esac; }

# 1. The release's kernel and its whole system, each made once and cached.
# shellcheck source=tests/vm/kernel.sh
. "$here/kernel.sh"
fetch_kernel "$cache"
kernel_cache=$(vm_cache "$cache")
system=$(CGMGR_VM_CACHE=$cache "$here/distro-root.sh" --system "$suite") || die "no Debian $suite root"

# 2. The initramfs: the release's root as it is, plus what the test needs.
build_start=$(now_ms)
root=$(mktemp -d)
trap 'rm -rf "$root" "$root.cpio"' EXIT
cp -a "$system"/. "$root"/
rm -f "$root/.complete"
chmod 755 "$root"  # it becomes the VM's /: mktemp's 0700 would lock out mapped users
[ -x "$root/lib/systemd/systemd" ] || die "$system has no /lib/systemd/systemd"
mkdir -p "$root"/usr/local/bin "$root"/etc/cgmgr "$root"/newroot
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
  [ -e "$root/usr/bin/$applet" ] || [ -e "$root/usr/sbin/$applet" ] || [ -e "$root/bin/$applet" ] \
    || [ -e "$root/sbin/$applet" ] || ln -s /bin/busybox "$root/usr/local/bin/$applet"
done

# cgmgr installed as the README says, and on the test's PATH (/usr/local/bin
# is on systemd's default PATH, which the test unit inherits).
is_static "$binary" || die "$binary is not static: the release's libraries are not the host's"
cp "$binary" "$root/usr/local/bin/cgmgr"
cp "$repo/systemd/cgmgr.service" "$root/etc/systemd/system/cgmgr.service"
# The drop-in for prepared sandboxes, shipped beside the unit, not installed.
mkdir -p "$root/usr/local/share/cgmgr"
cp "$repo/systemd/standby.conf" "$root/usr/local/share/cgmgr/standby.conf"
# The user unit, for a test that installs it in a user's ~/.config.
mkdir -p "$root/usr/local/share/cgmgr/user"
cp "$repo/systemd/user/cgmgr.service" "$root/usr/local/share/cgmgr/user/cgmgr.service"
cp "$policies"/*.toml "$root/etc/cgmgr/"
for extra in "$@"; do
  name=$(basename "$extra")
  [ -e "$root/usr/bin/$name" ] && continue
  is_static "$extra" || die "$extra is not static and Debian $suite has no $name"
  cp "$extra" "$root/usr/bin/$name"
done
mkdir -p "$root/lib/modules"
cp "$kernel_cache"/modules/* "$root/lib/modules/" 2>/dev/null || true
cp "$here/lib.sh" "$root/lib.sh"
cp "$script" "$root/test.sh"
# An empty machine-id makes systemd generate a transient one (first boot).
: > "$root/etc/machine-id"

# The test as a service, the unit systemd boots into (systemd.unit= on the
# kernel command line: one given to systemd after switch_root is ignored).
# No default dependencies: it runs as soon as the journal is up, without
# waiting for sysinit.target. Type=exec, not oneshot: the unit is active once
# the test is running, so the boot is over as on a server
# (`systemctl is-system-running` answers running, or degraded after a failed
# unit; a oneshot would keep the boot job, and the system "initializing", for
# the whole test and `is-system-running --wait` would never return). When the
# test ends, the unit stops and its Success/FailureAction powers the VM off;
# poweroff-force skips stopping units one by one (slow under TCG). The wrapper
# prints the status line whatever the test does, so the unit itself succeeds.
# The output goes straight to the serial console (StandardOutput=tty), where
# systemctl and journalctl would page through less and hang for
# input: SYSTEMD_PAGER=cat turns paging off, SYSTEMD_COLORS=0 keeps escape
# sequences out of the log. The host's timeout bounds the test, not systemd.
cat > "$root/etc/systemd/system/cgmgr-test.service" <<'UNIT'
[Unit]
Description=cgmgr VM test (tests/vm/run-systemd.sh)
DefaultDependencies=no
Wants=systemd-journald.socket systemd-journald-dev-log.socket systemd-journald.service
After=systemd-journald.socket systemd-journald-dev-log.socket systemd-journald.service
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Service]
Type=exec
ExecStart=/bin/sh /run-test.sh
StandardInput=null
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
WorkingDirectory=/
Environment=HOME=/root SYSTEMD_PAGER=cat SYSTEMD_COLORS=0
UNIT
# The scripts are busybox sh scripts (tests/vm/lib.sh), whatever the
# release's /bin/sh is.
cat > "$root/run-test.sh" <<'WRAPPER'
#!/bin/sh
read -r up _ < /proc/uptime
. /etc/os-release
echo "vm: $PRETTY_NAME, kernel $(uname -r), $(systemctl --version | head -n1), cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
echo "vm: test unit started ${up}s after the kernel"
/bin/busybox sh /test.sh
echo "CGMGR-VM-EXIT $?"
WRAPPER

# Stage 1 moves / from the initramfs onto a tmpfs: pivot_root (cgmgr exec,
# systemd's own namespace setup) refuses to move away from the initial rootfs,
# as on any real system it never has to. systemd mounts /proc, /sys, /dev,
# /run and cgroup2 itself. busybox does the copy: the release's own tools
# want /proc, which is not mounted yet.
cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox mount -t tmpfs -o mode=755 root /newroot
for f in /*; do
  case "$f" in /init|/newroot|/proc|/sys|/dev|/run) ;; *) /bin/busybox cp -a "$f" /newroot/ ;; esac
done
/bin/busybox mkdir -p /newroot/proc /newroot/sys /newroot/dev /newroot/run
exec /bin/busybox switch_root /newroot /lib/systemd/systemd
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet) > "$root.cpio"
build_secs=$(secs_since "$build_start")

# 3. Boot. TCG: nested KVM hangs on these machines (VM.md). quiet keeps the
# kernel's and systemd's console output to warnings and failures (one is
# expected: "Failed to find module 'autofs4'", as the VM has no module tree).
# TERM=dumb: PID 1 takes $TERM from the kernel command line and then writes
# its status lines without colors. systemd.crash_reboot: should PID 1 crash,
# qemu exits (-no-reboot) instead of freezing until the timeout. The
# initramfs is not compressed: under TCG, gunzip in the guest costs more
# (about 2.5 s) than the host saves.
log=$(mktemp)
trap 'rm -rf "$root" "$root.cpio" "$log"' EXIT
take_vm_slot "$cache"
vm_start=$(now_ms)
for attempt in 1 2; do
  set +e
  # shellcheck disable=SC2086 # CGMGR_VM_QEMU_ARGS is a list of arguments
  timeout "$timeout_secs" qemu-system-x86_64 -accel tcg,thread=multi -cpu max -m "${CGMGR_VM_MEM:-2048}" -smp 2 \
    -nographic -no-reboot -kernel "$kernel_cache/vmlinuz" -initrd "$root.cpio" \
    -append "console=ttyS0 quiet panic=-1 oops=panic systemd.unit=cgmgr-test.service systemd.crash_reboot=1 TERM=dumb" \
    ${CGMGR_VM_QEMU_ARGS:-} </dev/null >"$log" 2>&1
  qemu_rc=$?
  set -e
  [ "$attempt" = 1 ] && tcg_lost_patch "$log" || break
  tr -d '\r' < "$log" | tail -n 40
  echo "vm: the guest kernel died of QEMU TCG's stale live-patched code (Oops: int3), not of the test: booting again"
done
vm_secs=$(secs_since "$vm_start")
tr -d '\r' < "$log"
status=$(tr -d '\r' < "$log" | sed -n 's/^CGMGR-VM-EXIT \([0-9]*\)$/\1/p' | tail -n1)
echo "vm: initramfs built in ${build_secs}s, VM ran ${vm_secs}s (qemu exit $qemu_rc)"
[ "$qemu_rc" = 124 ] && die "the VM did not finish within ${timeout_secs}s"
[ -n "$status" ] || die "the VM ended (qemu exit $qemu_rc) without reporting the test's exit status"
[ "$status" = 0 ] || die "$(basename "$script") failed inside the VM (exit $status)"
echo "vm: $(basename "$script") passed"
