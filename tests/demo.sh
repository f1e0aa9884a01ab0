#!/usr/bin/env bash
# Builds cgmgr, boots a throwaway VM with a real cgroup v2 kernel, applies
# the example policies in policies/ there, and shows the kernel enforcing
# them (an OOM kill, a stopped fork bomb, a throttled CPU hog).
# Works on hosts without cgroup v2 controllers too: nothing runs on the host's cgroups.
set -euo pipefail
cd "$(dirname "$0")/.."
tests/prereqs.sh
cargo build --release --quiet
CGMGR_VM_POLICIES=policies tests/vm/run.sh tests/vm/demo.sh "target/$(rustc --print host-tuple)/release/cgmgr" \
  | grep -v -E '^\s*$|SeaBIOS|iPXE|Booting from|Press Ctrl|^\[ *[0-9.]+\] (reboot|Memory cgroup)|^.\[\?7l'
