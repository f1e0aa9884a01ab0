//! Every `cgmgr exec` is a run of its own: its processes live in a child
//! group of the policy's group, `GROUP/cgmgr.run.PID` (PID: the `cgmgr exec`
//! process). The group's limits still bound all its concurrent runs together
//! (a child group has none of its own); the run group gives each run
//!
//! - an end: when the workload exits, `cgroup.kill` takes whatever it left
//!   (a double-forked daemon without a pid namespace, a process that escaped
//!   its session), and cgmgr waits for `populated 0` before it returns;
//! - its own counters: `memory.events`, `pids.events`, `memory.peak`,
//!   `cpu.stat`, `io.stat` of this run only, read before the group goes away.
//!
//! A run whose `cgmgr exec` was killed with SIGKILL leaves its run group
//! behind; the next run in the same group ends it (its PID is gone).

use std::time::Duration;

use nix::errno::Errno;

use crate::cgroup::stat::CgroupEvents;
use crate::cgroup::tree::Controller;
use crate::cgroup::{CgroupRoot, GroupName, control, tree};

use super::error::ExecError;

/// The prefix of run groups (`cgmgr.` names are cgmgr's own).
pub const RUN_PREFIX: &str = "cgmgr.run.";

/// How long the processes of a run may take to die after `cgroup.kill`.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// Controllers enabled for run groups when the group has them, so that
/// each run has its own memory, pids and I/O counters.
const ACCOUNTED: [Controller; 3] = [Controller::Memory, Controller::Pids, Controller::Io];

/// The run group of this process in `group`.
pub fn name(group: &GroupName) -> Result<GroupName, ExecError> {
    group
        .child(&format!("{RUN_PREFIX}{}", std::process::id()))
        .map_err(ExecError::Invalid)
}

/// Creates this run's group below `group`, after ending the runs whose
/// `cgmgr exec` died without ending them. The memory, pids and io controllers
/// are enabled for it where `group` has them and holds no process itself;
/// otherwise the run still has its own group, only counted in `group`'s
/// counters.
pub fn create(root: &CgroupRoot, group: &GroupName) -> Result<GroupName, ExecError> {
    reap_abandoned(root, group);
    let available = root.controllers(group).unwrap_or_default();
    let enabled = root.subtree_control(group).unwrap_or_default();
    for c in ACCOUNTED {
        if available.iter().any(|a| a == c.name()) && !enabled.iter().any(|e| e == c.name()) {
            // EBUSY: the group holds processes of its own (put there by
            // hand); the run is then counted in the group's counters.
            let _ = root.write_raw(group, "cgroup.subtree_control", &format!("+{}", c.name()));
        }
    }
    let run = name(group)?;
    root.mkdir(&run)
        .map_err(|e| ExecError::Invalid(e.to_string()))?;
    Ok(run)
}

/// Ends the run: kills what is left in its group, waits until the group is
/// empty, and removes it. `Err` names what could not be done; the caller
/// reports it without changing the workload's exit status.
pub fn end(root: &CgroupRoot, run: &GroupName) -> Result<(), String> {
    kill_all(root, run)?;
    root.rmdir(run).map_err(|e| e.to_string())
}

/// Kills what is left of the run: `cgroup.kill` (Linux 5.14), else freeze,
/// SIGKILL every process, thaw; then waits for `populated 0`.
pub fn kill_all(root: &CgroupRoot, run: &GroupName) -> Result<(), String> {
    if !populated(root, run) {
        return Ok(());
    }
    match root.write_raw(run, "cgroup.kill", "1") {
        Ok(()) => {}
        Err(Errno::ENOENT) => kill_by_hand(root, run),
        Err(e) => {
            return Err(format!(
                "{}: {e}",
                root.display_path(run, "cgroup.kill").display()
            ));
        }
    }
    match control::wait_until_empty(root, run, KILL_TIMEOUT) {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!(
            "{} still holds processes {}s after they were killed",
            root.group_path(run).display(),
            KILL_TIMEOUT.as_secs()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// For kernels without `cgroup.kill`: frozen processes cannot fork away
/// while they are killed one by one.
fn kill_by_hand(root: &CgroupRoot, run: &GroupName) {
    let _ = root.write_raw(run, "cgroup.freeze", "1");
    for _ in 0..100 {
        let procs = root.procs(run).unwrap_or_default();
        if procs.is_empty() {
            break;
        }
        for pid in procs {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = root.write_raw(run, "cgroup.freeze", "0");
}

fn populated(root: &CgroupRoot, group: &GroupName) -> bool {
    root.stat::<CgroupEvents>(group)
        .is_none_or(|events| events.is_populated())
}

/// Ends and removes the run groups of `group` whose `cgmgr exec` is gone
/// (killed with SIGKILL before it could end its run).
fn reap_abandoned(root: &CgroupRoot, group: &GroupName) {
    let Ok(children) = root.children(group) else {
        return;
    };
    for child in children {
        let Some(pid) = child
            .as_str()
            .rsplit('/')
            .next()
            .and_then(|leaf| leaf.strip_prefix(RUN_PREFIX))
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        // A pid equal to ours is a stale group from a reused pid: ours is
        // not made yet. EPERM means the process exists.
        let ours = u32::try_from(pid).ok() == Some(std::process::id());
        let alive = !ours
            && matches!(
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
                Ok(()) | Err(Errno::EPERM)
            );
        if !alive && end(root, &child).is_ok() {
            eprintln!(
                "cgmgr: ended the abandoned run {} (its cgmgr exec, pid {pid}, is gone)",
                child
            );
        }
    }
}

/// Moves `pid` into the run group (kernels without `CLONE_INTO_CGROUP`).
pub fn place(root: &CgroupRoot, run: &GroupName, pid: i32) -> Result<(), ExecError> {
    tree::move_pid(root, run, pid)
        .map(|_| ())
        .map_err(|e| ExecError::Invalid(format!("placing the workload in its run group: {e}")))
}
