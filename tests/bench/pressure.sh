#!/usr/bin/env bash
# Pressure-rule benchmark in a throwaway VM (see pressure-vm.sh):
#   tests/bench/pressure.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet && cargo build --release --quiet --example psi_watch
out=target/$(rustc --print host-tuple)/release
CGMGR_VM_TIMEOUT=900 tests/vm/run.sh tests/bench/pressure-vm.sh "$out/cgmgr" \
  /usr/bin/stress-ng "$out/examples/psi_watch" | grep -E '^(---|trigger|polling|idle|  thread|FAIL|PASS|cgmgr|some|full)'
