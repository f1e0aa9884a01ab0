# The daemon serves a real Prometheus on the host through QEMU's forwarded
# port, with workloads that make every dashboard series exist: a throttled
# CPU hog (whose throttling is CPU pressure: a dry-run rule counts it), an
# OOM kill, refused forks, a drift correction. The host test
# queries Prometheus, then releases the VM by connecting to port 9999.
. /lib.sh
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net; do
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
cgmgr daemon --listen 0.0.0.0:9765 --reconcile 1 /etc/cgmgr 2>/tmp/daemon.log &
daemon=$!
sleep 1
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
