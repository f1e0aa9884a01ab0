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
#
# CGMGR_VM_SUITE picks the Debian release whose kernel is booted: unset or
# `bookworm` (Debian 12, Linux 6.1: the host's own apt sources), or another
# suite of the same mirror, `bullseye` (Debian 11, Linux 5.10) or `trixie`
# (Debian 13, Linux 6.12), read through a private apt state in the cache
# (the host's apt state is not touched). Each suite has a cache of its own:
# CACHE becomes CACHE/SUITE.

# vm_cache CACHE: the cache directory of the suite CGMGR_VM_SUITE names.
vm_cache() {
  case "${CGMGR_VM_SUITE:-bookworm}" in
    bookworm) echo "$1" ;;
    bullseye|trixie) echo "$1/${CGMGR_VM_SUITE}" ;;
    *) die "CGMGR_VM_SUITE=${CGMGR_VM_SUITE}: expected bookworm, bullseye or trixie" ;;
  esac
}

# The host's own Debian mirror (the URIs of its apt sources).
debian_mirror() {
  local mirror
  mirror=$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/*.sources /dev/null 2>/dev/null | head -n1)
  [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^http/) { print $i; exit } }' /etc/apt/sources.list 2>/dev/null)
  echo "${mirror:-http://deb.debian.org/debian}"
}

# The apt options that read SUITE from the host's Debian mirror into a
# private state under DIR (created and updated on first use).
suite_apt() {
  local dir=$1 suite=$2 mirror
  mirror=$(debian_mirror)
  mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main" > "$dir/sources.list"
  APT_OPTS=(-o "Dir::Etc::sourcelist=$dir/sources.list" -o Dir::Etc::sourceparts=- \
    -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache")
  if [ ! -f "$dir/updated" ]; then
    apt-get "${APT_OPTS[@]}" update >/dev/null 2>&1 || die "apt-get update of $suite from $mirror failed"
    touch "$dir/updated"
  fi
}

fetch_kernel() {
  local cache modules pkg work mods m f
  cache=$(vm_cache "$1")
  # 1. The kernel, once, under a lock so parallel tests share one download.
  mkdir -p "$cache"
  exec 9>"$cache/.lock"
  flock 9
  # Modules the tests load: virtio-net (scraping from the host), dummy (a
  # second network interface the sandbox must not see) and loop (a block
  # device whose I/O the io controller counts).
  modules="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net dummy loop"
  # (CACHE/modules/NAME.ko, uncompressed; one a kernel has built in or not
  # split out yet is left out: the guest loads what is there.)
  if [ ! -f "$cache/vmlinuz" ] || [ "$(cat "$cache/modules.list" 2>/dev/null)" != "$modules (uncompressed)" ]; then
    APT_OPTS=()
    if [ "${CGMGR_VM_SUITE:-bookworm}" != bookworm ]; then suite_apt "$cache/apt" "$CGMGR_VM_SUITE"; fi
    pkg=$(apt-cache "${APT_OPTS[@]}" depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    [ -n "$pkg" ] || die "apt-cache does not know linux-image-cloud-amd64 (run apt-get update)"
    work=$(mktemp -d)
    (cd "$work" && apt-get "${APT_OPTS[@]}" download "$pkg" >/dev/null 2>&1) || die "apt-get download $pkg failed"
    dpkg-deb -x "$work"/*.deb "$work/x"
    # shellcheck disable=SC2012 # one directory, named by the package's kernel version
    # (6.12's package keeps them under usr/lib/modules)
    mods=$({ ls -d "$work"/x/lib/modules/* "$work"/x/usr/lib/modules/* 2>/dev/null || true; } | head -n1)
    [ -n "$mods" ] || die "$pkg has no modules directory"
    rm -rf "$cache/modules"
    mkdir -p "$cache/modules"
    for m in $modules; do
      f=$(find "$mods" -name "$m.ko*" | head -n1)
      # Older kernels have some of these built in or not split out yet
      # (5.10 has no virtio_pci_modern_dev): a test that loads one fails.
      if [ -z "$f" ] && [ "${CGMGR_VM_SUITE:-bookworm}" != bookworm ]; then continue; fi
      [ -n "$f" ] || die "module $m is not in $pkg"
      # 6.12 ships modules as .ko.xz; busybox's insmod takes them plain.
      case "$f" in
        *.ko.xz) xz -dc "$f" > "$cache/modules/$m.ko" ;;
        *.ko.zst) zstd -qdc "$f" > "$cache/modules/$m.ko" ;;
        *) cp "$f" "$cache/modules/$m.ko" ;;
      esac
    done
    echo "$modules (uncompressed)" > "$cache/modules.list"
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

# tcg_lost_patch LOG: true when the guest kernel died of QEMU's multi-threaded
# TCG running a stale copy of code the kernel was live-patching ("Oops:
# int3": the breakpoint text_poke_bp had already taken out), before the test
# reported its end. An emulator bug, not the test's: seen about once in 50
# boots of 6.12 on a busy 2-core host. The harness then boots once more.
tcg_lost_patch() {
  tr -d '\r' < "$1" | grep -q "Oops: int3" && ! tr -d '\r' < "$1" | grep -q "^CGMGR-VM-EXIT "
}

