# The daemon serves a real Prometheus on the host through QEMU's forwarded
# port; the host test queries Prometheus and then releases the VM by
# connecting to port 9999.
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
pids.max = 32
TOML
cgmgr daemon --listen 0.0.0.0:9765 /etc/cgmgr 2>/tmp/daemon.log &
echo "daemon started; waiting for the host to release us on port 9999"
nc -l -p 9999 >/dev/null
echo "released"
kill -TERM %1; wait
cat /tmp/daemon.log
echo PASS
