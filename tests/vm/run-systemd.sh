#!/usr/bin/env bash
# Boots a throwaway QEMU VM whose PID 1 is the real systemd (the host's own
# Debian package) and runs one test script inside it, as a systemd service.
#
#   tests/vm/run-systemd.sh SCRIPT CGMGR_BINARY [EXTRA_FILE...]
#
# Most real hosts are systemd hosts: systemd owns the cgroup tree, delegates
# subtrees, sandboxes services with seccomp and mount namespaces, and rewrites
# the root's controllers on daemon-reload. tests/vm/run.sh cannot show any of
# that (its PID 1 is a shell), so this VM boots systemd and installs cgmgr the
# way the README tells a user to: /usr/local/bin/cgmgr, systemd/cgmgr.service
# unchanged in /etc/systemd/system, policies/*.toml in /etc/cgmgr (or
# $CGMGR_VM_POLICIES/*.toml). The unit is installed, not started: starting it is
# the test's business. EXTRA_FILEs are host binaries copied to /usr/bin.
#
# Conventions are tests/vm/run.sh's: the same cached kernel (tests/vm/kernel.sh),
# /lib.sh and /test.sh, the serial log printed, the test's status on a line
# `CGMGR-VM-EXIT N`, exit 0 only when N is 0, missing prerequisites are
# failures, the VM bounded by $CGMGR_VM_TIMEOUT seconds (default 300).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
script=${1:?usage: run-systemd.sh SCRIPT CGMGR_BINARY [EXTRA_FILE...]}
binary=${2:?usage: run-systemd.sh SCRIPT CGMGR_BINARY [EXTRA_FILE...]}
shift 2
cache=${CGMGR_VM_CACHE:-$repo/target/vm-cache}
timeout_secs=${CGMGR_VM_TIMEOUT:-300}
policies=${CGMGR_VM_POLICIES:-$repo/policies}

die() { echo "vm: $*" >&2; exit 1; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
secs_since() { local ms=$(( $(now_ms) - $1 )); printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100)); }
for tool in qemu-system-x86_64 cpio ldd apt-get dpkg-deb flock timeout; do
  command -v "$tool" >/dev/null || die "missing $tool: run .ci/run or install qemu-system-x86 busybox-static cpio (see README)"
done
busybox=$(command -v busybox || true)
[ -n "$busybox" ] && file_is_static=$(ldd "$busybox" 2>&1 || true)
case "${file_is_static:-}" in *"not a dynamic"*) ;; *) die "need a static busybox (apt-get install busybox-static)";; esac
# The systemd that boots is the host's: Debian 12's systemd 252. Its paths are
# Debian's (rootlibexecdir /lib/systemd, where PID 1 also looks for
# systemd-shutdown, without which poweroff freezes).
systemd_programs="/lib/systemd/systemd /lib/systemd/systemd-shutdown /lib/systemd/systemd-journald /bin/systemctl /bin/journalctl /usr/bin/systemd-run"
for f in $systemd_programs; do
  [ -x "$f" ] || die "missing $f: install systemd (apt-get install systemd)"
done
[ -f "$repo/systemd/cgmgr.service" ] || die "missing $repo/systemd/cgmgr.service"
compgen -G "$policies/*.toml" >/dev/null || die "no policies in $policies (the unit needs a non-empty /etc/cgmgr)"

# 1. The kernel: the one tests/vm/run.sh boots, from the same cache.
# shellcheck source=tests/vm/kernel.sh
. "$here/kernel.sh"
fetch_kernel "$cache"
kernel_cache=$(vm_cache "$cache")

# 2. The initramfs, laid out as Debian 12's merged /usr (/bin, /sbin, /lib,
# /lib64 are links into /usr): systemd 252 marks an unmerged system as tainted,
# and one copy of each library serves ldd's /lib and /usr/lib spellings.
build_start=$(now_ms)
root=$(mktemp -d)
chmod 755 "$root"  # it becomes the VM's /: mktemp's 0700 would lock out mapped users
trap 'rm -rf "$root" "$root.cpio"' EXIT
mkdir -p "$root"/usr/{bin,sbin,lib64,local/bin} "$root"/usr/lib/systemd/system \
  "$root"/{proc,sys,dev,run,tmp,var/tmp,root,newroot} "$root"/etc/{systemd/system,cgmgr}
for d in bin sbin lib lib64; do ln -s "usr/$d" "$root/$d"; done
# PrivateTmp= bind-mounts private directories below both; they must be sticky
# and world-writable like on any host.
chmod 1777 "$root/tmp" "$root/var/tmp"

cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"; done
copy_with_libs() { # copy_with_libs BINARY DIR [NAME]: into DIR, never through a busybox symlink
  local dest
  dest="$root/$2/${3:-$(basename "$1")}"
  rm -f "$dest"
  cp "$1" "$dest"
  # A static binary (cgmgr is one) has no libraries: ldd says so, no path.
  { ldd "$1" || true; } | { grep -o '/[^ ]*' || true; } | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}
# systemd's own programs replace busybox's applets of the same name: busybox's
# poweroff/reboot/halt signal PID 1 the way busybox init expects, which
# systemd reads differently (SIGUSR2 dumps its state). On a systemd host they
# are systemctl under another name, as here. busybox's kill stays: the unit's
# ExecReload is /bin/kill.
for f in $systemd_programs; do copy_with_libs "$f" "$(dirname "$f")"; done
for f in poweroff reboot halt; do ln -sf systemctl "$root/bin/$f"; done

# cgmgr installed as the README says, and on the test's PATH (/usr/local/bin
# is on systemd's default PATH, which the test unit inherits).
copy_with_libs "$binary" usr/local/bin cgmgr
cp "$repo/systemd/cgmgr.service" "$root/etc/systemd/system/cgmgr.service"
# The drop-in for prepared sandboxes, shipped beside the unit, not installed.
mkdir -p "$root/usr/local/share/cgmgr"
cp "$repo/systemd/standby.conf" "$root/usr/local/share/cgmgr/standby.conf"
cp "$policies"/*.toml "$root/etc/cgmgr/"
# Extra host tools (util-linux unshare...) go to /usr/bin, replacing busybox's.
for extra in "$@"; do copy_with_libs "$extra" usr/bin; done
mkdir -p "$root/lib/modules"
cp "$kernel_cache"/modules/* "$root/lib/modules/" 2>/dev/null || true
cp "$here/lib.sh" "$root/lib.sh"
cp "$script" "$root/test.sh"

# Units: every target (sysinit, basic, multi-user... which cgmgr.service's
# default dependencies pull in) without their .wants directories, so that
# nothing but what a test starts runs; and journald with its sockets, so that
# services log to a journal as on a server. -.slice, system.slice and
# init.scope are built into systemd 252 (Debian ships no file for them);
# a systemd that ships them gets them copied.
cp -P /lib/systemd/system/*.target "$root/lib/systemd/system/"
for unit in -.slice system.slice init.scope systemd-journald.service systemd-journald.socket systemd-journald-dev-log.socket; do
  if [ -e "/lib/systemd/system/$unit" ]; then cp -P -- "/lib/systemd/system/$unit" "$root/lib/systemd/system/"; fi
done
# An empty machine-id makes systemd generate a transient one (first boot).
: > "$root/etc/machine-id"
cp -L /etc/os-release "$root/etc/os-release"
ln -s ../proc/self/mounts "$root/etc/mtab"
echo "root:x:0:0:root:/root:/bin/sh" > "$root/etc/passwd"
echo "root:x:0:" > "$root/etc/group"

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
# systemctl and journalctl would page through busybox's less and hang for
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
cat > "$root/run-test.sh" <<'WRAPPER'
#!/bin/sh
read -r up _ < /proc/uptime
echo "vm: kernel $(uname -r), $(systemctl --version | head -n1), cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
echo "vm: test unit started ${up}s after the kernel"
sh /test.sh
echo "CGMGR-VM-EXIT $?"
WRAPPER

# Stage 1 moves / from the initramfs onto a tmpfs: pivot_root (cgmgr exec,
# systemd's own namespace setup) refuses to move away from the initial rootfs,
# as on any real system it never has to. systemd mounts /proc, /sys, /dev,
# /run and cgroup2 itself.
cat > "$root/init" <<'INIT'
#!/bin/sh
mount -t tmpfs -o mode=755 root /newroot
for f in /*; do
  case "$f" in /init|/newroot|/proc|/sys|/dev|/run) ;; *) cp -a "$f" /newroot/ ;; esac
done
mkdir -p /newroot/proc /newroot/sys /newroot/dev /newroot/run
exec switch_root /newroot /lib/systemd/systemd
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
set +e
# shellcheck disable=SC2086 # CGMGR_VM_QEMU_ARGS is a list of arguments
timeout "$timeout_secs" qemu-system-x86_64 -accel tcg,thread=multi -cpu max -m 1024 -smp 2 \
  -nographic -no-reboot -kernel "$kernel_cache/vmlinuz" -initrd "$root.cpio" \
  -append "console=ttyS0 quiet panic=-1 oops=panic systemd.unit=cgmgr-test.service systemd.crash_reboot=1 TERM=dumb" \
  ${CGMGR_VM_QEMU_ARGS:-} </dev/null >"$log" 2>&1
qemu_rc=$?
set -e
vm_secs=$(secs_since "$vm_start")
tr -d '\r' < "$log"
status=$(tr -d '\r' < "$log" | sed -n 's/^CGMGR-VM-EXIT \([0-9]*\)$/\1/p' | tail -n1)
echo "vm: initramfs built in ${build_secs}s, VM ran ${vm_secs}s (qemu exit $qemu_rc)"
[ "$qemu_rc" = 124 ] && die "the VM did not finish within ${timeout_secs}s"
[ -n "$status" ] || die "the VM ended (qemu exit $qemu_rc) without reporting the test's exit status"
[ "$status" = 0 ] || die "$(basename "$script") failed inside the VM (exit $status)"
echo "vm: $(basename "$script") passed"
