# Smoke test of the systemd VM (tests/vm/run-systemd.sh): PID 1 is systemd,
# the journal works, cgmgr.service is installed as a user installs it, and
# systemctl, systemd-run --scope and daemon-reload answer. It prints what it
# sees and asserts only that systemd is PID 1: whether cgmgr.service starts
# is for the scenarios that test it (the journal lines say why it did not).
. /lib.sh

step "PID 1"
comm=$(cat /proc/1/comm)
echo "$comm"
expect_eq "$comm" systemd "PID 1"

step "the root's controllers, as systemd enabled them"
cat $CG/cgroup.subtree_control

step "systemctl is-system-running"
systemctl is-system-running

step "systemctl start cgmgr"
systemctl start cgmgr; echo rc=$?

step "systemctl status cgmgr"
systemctl status cgmgr --no-pager

step "journalctl -u cgmgr"
journalctl -u cgmgr --no-pager -o short-precise

step "systemd-run --scope -p Delegate=yes"
systemd-run --scope -p Delegate=yes /bin/cat /proc/self/cgroup

step "systemctl daemon-reload"
systemctl daemon-reload && echo daemon-reload ok

echo PASS
