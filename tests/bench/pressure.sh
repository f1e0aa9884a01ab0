#!/usr/bin/env bash
# Pressure-rule benchmark in a throwaway VM (see pressure-vm.sh):
#   tests/bench/pressure.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet && cargo build --release --quiet --example psi_watch
CGMGR_VM_TIMEOUT=900 tests/vm/run.sh tests/bench/pressure-vm.sh target/release/cgmgr \
  /usr/bin/stress-ng target/release/examples/psi_watch | grep -E '^(---|trigger|polling|idle|  thread|FAIL|PASS|cgmgr|some|full)'
