# `/` is the initial ramfs (diskless and PXE boots): pivot_root cannot move
# away from it, so cgmgr exec moves the rootfs over / and chroots, with the
# same guarantees: the rootfs is all the workload sees, no way back.
. /lib.sh
grep -q " / / .* - rootfs " /proc/self/mountinfo || fail "/ is not the initial ramfs: the harness did not keep it"
echo "ok: / is the initial ramfs"
echo "host secret" > /host-secret
cgmgr rootfs build /rootfs --bin /bin/busybox >/dev/null || fail "rootfs build"
for a in sh ls cat chroot echo; do ln -sf busybox /rootfs/bin/$a; done
mkdir -p /etc/cgmgr
cat > /etc/cgmgr/p.toml <<'TOML'
[group.box.exec]
rootfs = "/rootfs"
seccomp = "unconfined"   # the mount layer alone is under test here
TOML
step "exec into a rootfs"
out=$(cgmgr exec --group box -- sh -c 'ls /; cat /host-secret 2>&1; ls /..; chroot / /bin/true 2>&1; echo end' 2>&1); rc=$?
echo "$out"
expect_eq "$rc" 0 "the run"
expect_contains "$out" "No such file" "the host's files are out of reach"
expect_not_contains "$out" "host secret" "the secret is not read"
expect_not_contains "$out" "init2" "/.. is the rootfs, not the initramfs"
expect_contains "$out" "Operation not permitted" "chroot is refused (no CAP_SYS_CHROOT)"
expect_eq "$(echo "$out" | head -n1)" "bin" "the rootfs is /"
echo PASS
