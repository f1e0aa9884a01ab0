#!/usr/bin/env bash
# Every test of cgmgr: formatting, lints, unit tests, host CLI tests, the VM
# enforcement tests on a real cgroup v2 kernel, and a bounded fuzz run of
# the policy parser. Needs root (host tests use /sys/fs/cgroup/unified).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
tests/prereqs.sh
echo "== cargo fmt --check"; cargo fmt --check
echo "== cargo clippy"; cargo clippy --all-targets --quiet -- -D warnings
echo "== cargo test (unit, host, VM)"; cargo test --quiet -- --test-threads=2
echo "== systemd unit"; tests/systemd-verify.sh
echo "== fuzz policy parser (${CGMGR_FUZZ_SECS:-60}s)"
(cd tests/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir . -s none policy_parser -- \
  -max_total_time="${CGMGR_FUZZ_SECS:-60}" 2>&1 | grep -E "^(Done|==|SUMMARY)|panicked|ERROR" )
echo "== fuzz the ELF reader of rootfs build (${CGMGR_FUZZ_ELF_SECS:-30}s)"
# Seeded with a real ELF binary of this machine (none is committed).
elf_seed=$(mktemp -d); cp /usr/bin/true "$elf_seed/"
(cd tests/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir . -s none elf_interpreter "$(mktemp -d)" "$elf_seed" -- \
  -max_total_time="${CGMGR_FUZZ_ELF_SECS:-30}" 2>&1 | grep -E "^(Done|==|SUMMARY)|panicked|ERROR" )
echo "== all tests passed in $(( $(date +%s) - start ))s"
