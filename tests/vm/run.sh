#!/usr/bin/env bash
# Boots a throwaway QEMU VM with Debian's cloud kernel (a real cgroup v2
# kernel with every controller) and runs one test script inside it.
#
#   tests/vm/run.sh SCRIPT CGMGR_BINARY [EXTRA_FILE...]
#
# The kernel is fetched from Debian's packages on first use and cached in
# $CGMGR_VM_CACHE (default: target/vm-cache). The initramfs holds busybox,
# the cgmgr binary with the libraries it links, tests/vm/lib.sh and SCRIPT.
# Exit status: 0 when SCRIPT exited 0 inside the VM, 1 otherwise; the serial
# console log is printed either way. Missing prerequisites are failures.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
script=${1:?usage: run.sh SCRIPT CGMGR_BINARY [EXTRA_FILE...]}
binary=${2:?usage: run.sh SCRIPT CGMGR_BINARY [EXTRA_FILE...]}
shift 2
cache=${CGMGR_VM_CACHE:-$repo/target/vm-cache}
timeout_secs=${CGMGR_VM_TIMEOUT:-300}
# CGMGR_VM_TREE=DIR: a directory tree shipped into the VM at /distro (a
# Debian root for tests that run real distributions); CGMGR_VM_MEM: MiB.
tree=${CGMGR_VM_TREE:-}
mem=${CGMGR_VM_MEM:-1024}

die() { echo "vm: $*" >&2; exit 1; }
for tool in qemu-system-x86_64 cpio ldd apt-get dpkg-deb flock; do
  command -v "$tool" >/dev/null || die "missing $tool: run .ci/run or install qemu-system-x86 busybox-static cpio (see README)"
done
busybox=$(command -v busybox || true)
[ -n "$busybox" ] && file_is_static=$(ldd "$busybox" 2>&1 || true)
case "${file_is_static:-}" in *"not a dynamic"*) ;; *) die "need a static busybox (apt-get install busybox-static)";; esac

# 1. The kernel, once, shared with tests/vm/run-systemd.sh.
# shellcheck source=tests/vm/kernel.sh
. "$here/kernel.sh"
fetch_kernel "$cache"
kernel_cache=$(vm_cache "$cache")

# 2. The initramfs.
root=$(mktemp -d)
chmod 755 "$root"  # it becomes the VM's /: mktemp's 0700 would lock out mapped users
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,etc,root,lib/modules,usr/bin,usr/sbin}
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"; done
copy_with_libs() { # copy_with_libs BINARY DIR: into DIR, never through a busybox symlink
  rm -f "$root/$2/$(basename "$1")"
  cp "$1" "$root/$2/$(basename "$1")"
  # A static binary (cgmgr is one) has no libraries: ldd says so, no path.
  { ldd "$1" || true; } | { grep -o '/[^ ]*' || true; } | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}
copy_with_libs "$binary" bin
# Extra host tools (util-linux unshare...) go to /usr/bin, ahead of busybox in PATH.
for extra in "$@"; do copy_with_libs "$extra" usr/bin; done
cp "$kernel_cache"/modules/* "$root/lib/modules/" 2>/dev/null || true
cp "$here/lib.sh" "$root/lib.sh"
# Policies to ship into the VM at /etc/cgmgr (the demo applies policies/).
if [ -n "${CGMGR_VM_POLICIES:-}" ]; then mkdir -p "$root/etc/cgmgr"; cp "$CGMGR_VM_POLICIES"/*.toml "$root/etc/cgmgr/"; fi
if [ -n "$tree" ]; then
  [ -d "$tree" ] || die "CGMGR_VM_TREE $tree is not a directory"
  cp -a "$tree" "$root/distro"
fi
cp "$script" "$root/test.sh"
echo "root:x:0:0:root:/root:/bin/sh" > "$root/etc/passwd"
# Stage 1 moves / from the initramfs onto a tmpfs: pivot_root (cgmgr exec)
# refuses to move away from the initial rootfs, as on any real system it
# never has to. Stage 2 is the test environment.
cat > "$root/init" <<'INIT'
#!/bin/sh
mount -t tmpfs -o mode=755 root /newroot
cp -a /bin /etc /lib* /usr /root /init2 /lib.sh /test.sh /newroot/ 2>/dev/null
cp -a /lib /newroot/ 2>/dev/null
[ -d /distro ] && cp -a /distro /newroot/
mkdir -p /newroot/proc /newroot/sys /newroot/dev /newroot/tmp
exec switch_root /newroot /init2
INIT
# CGMGR_VM_KEEP_INITRAMFS=1: / stays the initial ramfs, as on diskless and
# PXE-booted hosts, where pivot_root cannot work.
if [ "${CGMGR_VM_KEEP_INITRAMFS:-0}" = 1 ]; then
  printf '#!/bin/sh\nmkdir -p /tmp\nexec /init2\n' > "$root/init"
fi
cat > "$root/init2" <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mkdir -p /sys/fs/cgroup
mount -t cgroup2 cgroup2 /sys/fs/cgroup
export PATH=/usr/bin:/bin HOME=/root
cd /
echo "vm: kernel $(uname -r), cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
sh /test.sh
echo "CGMGR-VM-EXIT $?"
poweroff -f
INIT
chmod +x "$root/init2"
mkdir -p "$root/newroot"
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$root.cpio.gz"
trap 'rm -rf "$root" "$root.cpio.gz"' EXIT

# 3. Boot. TCG: nested KVM hangs on these machines (VM.md).
log=$(mktemp)
take_vm_slot "$cache"
for attempt in 1 2; do
  set +e
  timeout "$timeout_secs" qemu-system-x86_64 -accel tcg,thread=multi -cpu max -m "$mem" -smp 2 \
    -nographic -no-reboot -kernel "$kernel_cache/vmlinuz" -initrd "$root.cpio.gz" \
    -append "console=ttyS0 quiet panic=-1 oops=panic" ${CGMGR_VM_QEMU_ARGS:-} </dev/null >"$log" 2>&1
  qemu_rc=$?
  set -e
  [ "$attempt" = 1 ] && tcg_lost_patch "$log" || break
  tr -d '\r' < "$log" | tail -n 40
  echo "vm: the guest kernel died of QEMU TCG's stale live-patched code (Oops: int3), not of the test: booting again"
done
tr -d '\r' < "$log"
status=$(tr -d '\r' < "$log" | sed -n 's/^CGMGR-VM-EXIT \([0-9]*\)$/\1/p' | tail -n1)
rm -f "$log"
[ "$qemu_rc" = 124 ] && die "the VM did not finish within ${timeout_secs}s"
[ -n "$status" ] || die "the VM ended (qemu exit $qemu_rc) without reporting the test's exit status"
[ "$status" = 0 ] || die "$(basename "$script") failed inside the VM (exit $status)"
echo "vm: $(basename "$script") passed"
