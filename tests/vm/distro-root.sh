#!/usr/bin/env bash
# Makes (once) a Debian root with debootstrap's minbase variant, from the
# host's own Debian mirror, and prints its path. Documentation, manuals and
# apt's caches are left out (the VM holds the tree in RAM).
#
#   tests/vm/distro-root.sh              Debian 12, for the CI-job VM test:
#                                        $CGMGR_VM_CACHE/distro-bookworm
#   tests/vm/distro-root.sh --system S   release S (bullseye, bookworm, trixie)
#                                        with its own systemd as PID 1, for
#                                        tests/vm/run-systemd.sh:
#                                        $CGMGR_VM_CACHE/system-S
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${CGMGR_VM_CACHE:-$here/../../target/vm-cache}
die() { echo "distro-root: $*" >&2; exit 1; }
# shellcheck source=tests/vm/kernel.sh
. "$here/kernel.sh"
suite=bookworm include=
dir=$cache/distro-bookworm
if [ "${1:-}" = --system ]; then
  suite=${2:?usage: distro-root.sh --system SUITE}
  case "$suite" in bullseye|bookworm|trixie) ;; *) die "$suite: expected bullseye, bookworm or trixie" ;; esac
  # dbus: the system bus, which systemd-logind (a user's manager started by
  # linger) and a user manager asking PID 1 to move a process need;
  # libpam-systemd: the PAM session that gives a user manager its
  # XDG_RUNTIME_DIR.
  include=--include=systemd,systemd-sysv,procps,dbus,libpam-systemd,uidmap
  dir=$cache/system-$suite
fi
mkdir -p "$cache"
exec 9>"$cache/distro.lock"
flock 9
# .complete records what the root was made with: another package list
# makes it again.
if [ ! -e "$dir/.complete" ] || [ "$(cat "$dir/.complete")" != "$include" ]; then
  command -v debootstrap >/dev/null || die "missing debootstrap (tests/prereqs.sh installs it)"
  rm -rf "$dir"
  log=$cache/debootstrap-$(basename "$dir").log
  # shellcheck disable=SC2086 # $include is one option or none
  debootstrap --variant=minbase $include "$suite" "$dir" "$(debian_mirror)" >"$log" 2>&1 \
    || { tail -20 "$log" >&2; die "debootstrap of $suite failed (log: $log)"; }
  rm -rf "$dir"/usr/share/{doc,man,info,locale} "$dir"/var/cache/apt/* "$dir"/var/lib/apt/lists/*
  echo "$include" > "$dir/.complete"
fi
echo "$dir"
