#!/usr/bin/env bash
# Installs what the tests and the demo need on a Debian machine, if missing:
# QEMU (the VM tests boot Debian's cloud kernel), a static busybox and cpio
# (the VM's initramfs), util-linux's unshare (cgroup namespaces), prometheus
# (promtool checks the metrics; the server scrapes the VM), systemd
# (systemd-analyze verifies the unit), stress-ng (memory thrash for the
# pressure rules), debootstrap (Debian roots: the CI-job VM test, whole-system VMs), xz-utils and zstd (compressed kernel modules), uidmap (newuidmap/newgidmap: a user's subordinate ids), cargo-fuzz, and kubernetes-validate
# from PyPI (the Kubernetes schemas, offline). The VM kernel itself is fetched by tests/vm/run.sh.
set -euo pipefail
packages=(qemu-system-x86 busybox-static cpio util-linux prometheus systemd libseccomp-dev pkg-config stress-ng debootstrap xz-utils zstd uidmap)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ] || ! apt-cache show linux-image-cloud-amd64 >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || { echo "prereqs: run as root to install: ${missing[*]}" >&2; exit 1; }
  apt-get update -qq
  [ ${#missing[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
# Kubernetes schemas, offline, to validate systemd/kubernetes/cgmgr.yaml.
if ! command -v kubernetes-validate >/dev/null; then
  python3 -m pip install --quiet kubernetes-validate
  if command -v pyenv >/dev/null; then pyenv rehash; fi
fi
echo "prereqs: ok"
