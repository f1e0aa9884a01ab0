# The daemon serves a real Prometheus on the host through QEMU's forwarded
# port, with workloads that make every dashboard series exist: a throttled
# CPU hog (whose throttling is CPU pressure: a dry-run rule counts it), an
# OOM kill, refused forks, a drift correction, runs served by a prepared
# sandbox. The host test
# queries Prometheus, then releases the VM by connecting to port 9999.
. /lib.sh
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net; do
  # 5.10 has virtio_pci_modern_dev inside virtio_pci (the harness ships
  # only the modules the lane's kernel has).
  [ -e /lib/modules/$m.ko ] || continue
  insmod /lib/modules/$m.ko || fail "insmod $m"
done
ip link set lo up
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 || fail "eth0"
mkdir -p /etc/cgmgr
cat > /etc/cgmgr/sandbox.toml <<'TOML'
[group.sandbox]
memory.max = "64M"
memory.high = "48M"
memory.swap.max = "0"
pids.max = 32
cpu.max = "20%"

[[group.sandbox.pressure]]
resource = "cpu"
kind = "some"
above = "50%"
window = "2s"
action = "log"
dry_run = true
TOML
# Prepared sandboxes: one kept ready for box; runs that take it are
# counted as served.
cgmgr rootfs build /rootfs --bin /bin/busybox >/dev/null || fail "rootfs build"
cat > /etc/cgmgr/box.toml <<'TOML'
[group.box]
pids.max = 16
[group.box.exec]
rootfs = "/rootfs"
standby = 1
TOML
cgmgr daemon --listen 0.0.0.0:9765 --reconcile 1 /etc/cgmgr 2>/tmp/daemon.log &
daemon=$!
sleep 1
i=0; until [ -n "$(prepared_in $CG/box)" ]; do
  i=$((i + 1)); [ $i -lt 300 ] || { cat /tmp/daemon.log; fail "no prepared sandbox for box within 30s"; }; sleep 0.1
done
for i in 1 2 3; do
  cgmgr exec --group box -- /bin/busybox true || fail "cgmgr exec --group box"
  sleep 1
done
sh -c "echo \$\$ > $CG/sandbox/cgroup.procs; exec dd if=/dev/zero of=/dev/null bs=100M count=1" 2>/dev/null
sh -c "echo \$\$ > $CG/sandbox/cgroup.procs; for i in \$(seq 40); do sleep 1 & done 2>/dev/null; wait"
echo 99 > $CG/sandbox/pids.max
sh -c "echo \$\$ > $CG/sandbox/cgroup.procs; exec sh -c 'while :; do :; done'" &
hog=$!
echo "workloads started; waiting for the host to release us on port 9999"
nc -l -p 9999 >/dev/null
echo "released"
kill $hog
kill -TERM $daemon; wait $daemon
cat /tmp/daemon.log
echo PASS
