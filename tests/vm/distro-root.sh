#!/usr/bin/env bash
# Makes (once) a minimal Debian 12 root with debootstrap's minbase variant,
# cached in $CGMGR_VM_CACHE/distro-bookworm, for the VM test of a CI job in
# a real distribution's root; prints its path. Documentation, manuals and
# apt's lists are left out (the VM holds the tree in RAM).
#   tests/vm/distro-root.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${CGMGR_VM_CACHE:-$here/../../target/vm-cache}
dir=$cache/distro-bookworm
mkdir -p "$cache"
exec 9>"$cache/distro.lock"
flock 9
if [ ! -e "$dir/.complete" ]; then
  command -v debootstrap >/dev/null || { echo "distro-root: missing debootstrap (tests/prereqs.sh installs it)" >&2; exit 1; }
  rm -rf "$dir"
  debootstrap --variant=minbase bookworm "$dir" http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1 \
    || { tail -20 "$cache/debootstrap.log" >&2; echo "distro-root: debootstrap failed" >&2; exit 1; }
  rm -rf "$dir"/usr/share/{doc,man,info,locale} "$dir"/var/cache/apt/* "$dir"/var/lib/apt/lists/*
  touch "$dir/.complete"
fi
echo "$dir"
