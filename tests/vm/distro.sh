# A CI job in a real distribution's root: Debian 12 (debootstrap minbase,
# shipped at /distro), mounted read-only as the rootfs. The job reads a
# source tree bound read-only, sorts a large file in a sized tmpfs, and
# writes its artifacts (a sorted file, a tarball, their checksums) to a
# read-write bind; it can write nowhere else.
. /lib.sh
[ -e /distro/etc/debian_version ] || fail "no Debian root at /distro"
mkdir -p /srv/src/lib /srv/out $CG/ci
chmod 1777 /srv/out   # written with the run's leased ids
seq 1 200000 | awk '{ print ($1 * 7919) % 200003 }' > /srv/src/numbers
echo 'int main(void) { return 0; }' > /srv/src/lib/main.c
echo "# project" > /srv/src/README
ci() { cgmgr exec --group ci --rootfs /distro --ro-bind /srv/src:/srv --bind /srv/out:/mnt --tmpfs /tmp:64M \
  --wall-limit 120s --report-file /tmp/ci.json -- "$@"; }

step "the job runs in Debian's root, with Debian's tools"
out=$(ci /bin/bash -c 'cat /etc/debian_version; sort --version | head -1; id -u' 2>&1); rc=$?
echo "$out"
expect_eq "$rc" 0 "the job's status"
expect_contains "$out" "12." "Debian 12's root"
expect_contains "$out" "GNU coreutils" "GNU sort, not busybox's"

step "it reads the bound source, works in its tmpfs, writes artifacts to its bind"
out=$(ci /bin/bash -c 'set -e
  sort -n -S 16M -T /tmp /srv/numbers > /tmp/sorted
  head -1 /tmp/sorted > /mnt/min; tail -1 /tmp/sorted > /mnt/max
  tar -C /srv -czf /mnt/src.tar.gz .
  cd /mnt && sha256sum min max src.tar.gz > SHA256SUMS' 2>&1); rc=$?
echo "$out"
expect_eq "$rc" 0 "the job's status"
expect_eq "$(cat /srv/out/min)" "$(sort -n /srv/src/numbers | head -1)" "the smallest number, as the host's sort finds it"
expect_eq "$(cat /srv/out/max)" "$(sort -n /srv/src/numbers | tail -1)" "the largest number"
(cd /srv/out && sha256sum -c SHA256SUMS) || fail "the checksums do not match the artifacts"
gzip -dc /srv/out/src.tar.gz | tar tf - | grep -q lib/main.c || fail "the tarball lacks the source"
echo "ok: the artifacts are whole"
grep -q '"status":"ok"' /tmp/ci.json || fail "verdict: $(cat /tmp/ci.json)"
echo "ok: the report file says ok"

step "it can write nowhere else"
for target in /srv/README /usr/bin/x /etc/x /var/x /root/x /x; do
  out=$(ci /bin/bash -c "echo x > $target" 2>&1); rc=$?
  [ "$rc" = 0 ] && fail "the job wrote $target"
  echo "ok: $target refused ($(echo "$out" | tail -1))"
done
expect_eq "$(cat /srv/src/README)" "# project" "the source is unchanged"
[ -e /distro/x ] && fail "the Debian root was written"
out=$(ci /bin/bash -c 'head -c 80M /dev/zero > /tmp/big' 2>&1); rc=$?
[ "$rc" = 0 ] && fail "the 64M tmpfs took 80M"
expect_contains "$out" "No space left on device" "the tmpfs is bounded by its size"
echo PASS
