# shellcheck shell=bash
# Sourced by tests/vm/run.sh and tests/vm/run-systemd.sh: both VMs boot the
# same kernel, so one download serves every test.
#
#   fetch_kernel CACHE
#   take_vm_slot CACHE   (before booting; held until the harness exits)
#
# Leaves CACHE/vmlinuz (Debian's linux-image-cloud-amd64 kernel: a real
# cgroup v2 kernel with every controller), CACHE/modules/*.ko* and
# CACHE/kernel-package. Needs the caller's die() and apt-get, dpkg-deb, flock.
# The lock is taken on fd 9 and released before returning.

fetch_kernel() {
  local cache=$1 modules pkg work mods m f
  # 1. The kernel, once, under a lock so parallel tests share one download.
  mkdir -p "$cache"
  exec 9>"$cache/.lock"
  flock 9
  # Modules the tests load: virtio-net (scraping from the host), dummy (a
  # second network interface the sandbox must not see) and loop (a block
  # device whose I/O the io controller counts).
  modules="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net dummy loop"
  if [ ! -f "$cache/vmlinuz" ] || [ "$(cat "$cache/modules.list" 2>/dev/null)" != "$modules" ]; then
    pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    [ -n "$pkg" ] || die "apt-cache does not know linux-image-cloud-amd64 (run apt-get update)"
    work=$(mktemp -d)
    (cd "$work" && apt-get download "$pkg" >/dev/null 2>&1) || die "apt-get download $pkg failed"
    dpkg-deb -x "$work"/*.deb "$work/x"
    # shellcheck disable=SC2012 # one directory, named by the package's kernel version
    mods=$(ls -d "$work"/x/lib/modules/* | head -n1)
    mkdir -p "$cache/modules"
    for m in $modules; do
      f=$(find "$mods" -name "$m.ko*" | head -n1)
      [ -n "$f" ] || die "module $m is not in $pkg"
      cp "$f" "$cache/modules/"
    done
    echo "$modules" > "$cache/modules.list"
    cp "$work"/x/boot/vmlinuz-* "$cache/vmlinuz.tmp"
    echo "$pkg" > "$cache/kernel-package"
    mv "$cache/vmlinuz.tmp" "$cache/vmlinuz"
    rm -rf "$work"
  fi
  flock -u 9
}

# One VM at a time on this machine. Each guest runs two vCPU threads under
# TCG; two guests on a 2-core host starve each other's vCPUs: a guest whose
# CPU holds a spinlock while its thread waits for the host stalls the other
# (CI once saw both vCPUs of a guest "stuck" in soft lockups for four
# minutes while another VM ran). The lock is on fd 8 and lasts as long as the
# harness's process, so the VM's whole run is covered.
take_vm_slot() {
  exec 8>"$1/.vm-slot.lock"
  flock 8
}
