#!/usr/bin/env bash
# What subordinate ids cost a user's run: N sequential `cgmgr exec -- /bin/busybox true`
# as uid 1000 in a subtree of the host's cgroup v2 core delegated to it, with
# /etc/subuid and /etc/subgid granting a range (newuidmap and newgidmap map it)
# and with no grant (the user's own ids, written by cgmgr itself), interleaved,
# ROUNDS rounds. The grants are bound over /etc in a mount namespace of this
# script's own; the host's files are not touched.
#   tests/bench/subids.sh [BINARY] [N] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-$PWD/target/$(rustc --print host-tuple)/release/cgmgr}
n=${2:-200}
rounds=${3:-3}
base=/sys/fs/cgroup/unified/cgmgr-bench-subids
work=
cleanup() {
  [ -d "$base" ] && find "$base" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null || true
  rmdir "$base" 2>/dev/null || true
  [ -z "$work" ] || rm -rf "$work"
}
trap cleanup EXIT
cleanup
work=$(mktemp -d)
mkdir "$base"
chown 1000:1000 "$base" "$base/cgroup.procs" "$base/cgroup.subtree_control" "$base/cgroup.threads"
chmod 755 "$work"
cp "$bin" "$work/cgmgr"
"$bin" rootfs build "$work/root" --bin /bin/busybox >/dev/null
chmod -R a+rX "$work/root"
printf '[group.me.exec]\nrootfs = "%s"\n' "$work/root" > "$work/p.toml"
cp /etc/passwd "$work/passwd"
grep -q '^[^:]*:[^:]*:1000:' "$work/passwd" || echo 'cgmgr-bench:x:1000:1000::/:/bin/sh' >> "$work/passwd"
echo '1000:300000:65536' > "$work/subuid"
echo '1000:400000:65536' > "$work/subgid"
: > "$work/empty"
chmod 644 "$work"/{p.toml,passwd,subuid,subgid,empty}

# One round (stderr through a pipe: cgmgr refuses to hand a user's run a
# file as its stderr): N runs as uid 1000 with the given files as /etc/subuid and
# /etc/subgid; prints milliseconds per run (wall) and CPU ms per run.
round() {
  local uid_file=$1 gid_file=$2
  unshare -m --propagation private bash -c '
    set -e
    w=$1 u=$2 g=$3 n=$4 base=$5
    mount --bind "$w/passwd" /etc/passwd
    mount --bind "$w/$u" /etc/subuid
    mount --bind "$w/$g" /etc/subgid
    echo $$ > "$base/cgroup.procs"
    exec setpriv --reuid 1000 --regid 1000 --clear-groups env -i PATH=/usr/bin:/bin \
      w="$w" n="$n" bash -ec "
        exec 2> >(cat >&2)
        \"\$w/cgmgr\" exec --policies \"\$w\" --group me -- /bin/busybox true
        read -r _ _ cu0 cs0 < <(cut -d\" \" -f14-17 /proc/\$\$/stat)
        s=\$(date +%s%N)
        for i in \$(seq \$n); do \"\$w/cgmgr\" exec --policies \"\$w\" --group me -- /bin/busybox true; done
        e=\$(date +%s%N)
        read -r _ _ cu cs < <(cut -d\" \" -f14-17 /proc/\$\$/stat)
        tck=\$(getconf CLK_TCK)
        echo \$(( (e - s) / n / 1000 )) \$(( (cu + cs - cu0 - cs0) * 1000000 / tck / n ))
      "
  ' bash "$work" "$uid_file" "$gid_file" "$n" "$base"
}

echo "round  subordinate ids (newuidmap+newgidmap)  own ids (no grant)"
for r in $(seq "$rounds"); do
  read -r sub_us sub_cpu < <(round subuid subgid)
  read -r own_us own_cpu < <(round empty empty)
  printf '%5d  %6d us wall, %5d us CPU          %6d us wall, %5d us CPU\n' \
    "$r" "$sub_us" "$sub_cpu" "$own_us" "$own_cpu"
done
