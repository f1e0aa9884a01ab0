#!/usr/bin/env bash
# Checks systemd/cgmgr.service (and with its drop-in systemd/standby.conf),
# and systemd/user/cgmgr.service,
# with systemd-analyze verify. The unit names
# /usr/local/bin/cgmgr; a copy pointing at the built binary is verified, so
# every directive is checked without installing anything. Any output (an
# unknown key, a bad value) is a failure: verify itself exits 0 on warnings.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -eq 0 ]; then cargo build --quiet; fi   # the default binary: the debug build
bin=${1:-$PWD/target/$(rustc --print host-tuple)/debug/cgmgr}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sed "s|/usr/local/bin/cgmgr|$bin|g" systemd/cgmgr.service > "$dir/cgmgr.service"
out=$(systemd-analyze verify --man=no "$dir/cgmgr.service" 2>&1) || { echo "$out"; exit 1; }
[ -z "$out" ] || { echo "systemd-analyze verify systemd/cgmgr.service:"; echo "$out"; exit 1; }
echo "systemd/cgmgr.service: verified"
# With the drop-in for prepared sandboxes, as the README installs it; a
# misspelt key in it is a failure too.
mkdir "$dir/cgmgr.service.d"
cp systemd/standby.conf "$dir/cgmgr.service.d/"
out=$(systemd-analyze verify --man=no "$dir/cgmgr.service" 2>&1) || { echo "$out"; exit 1; }
[ -z "$out" ] || { echo "systemd-analyze verify with systemd/standby.conf:"; echo "$out"; exit 1; }
echo "systemd/standby.conf: verified"
# The user unit, as `systemctl --user` would load it (its own directory:
# same unit name).
mkdir "$dir/user"
sed "s|/usr/local/bin/cgmgr|$bin|g" systemd/user/cgmgr.service > "$dir/user/cgmgr.service"
out=$(systemd-analyze verify --man=no "$dir/user/cgmgr.service" 2>&1) || { echo "$out"; exit 1; }
[ -z "$out" ] || { echo "systemd-analyze verify systemd/user/cgmgr.service:"; echo "$out"; exit 1; }
echo "systemd/user/cgmgr.service: verified"
