//! Every `cgmgr exec` is a run of its own: its processes live in a child
//! group of the policy's group, `GROUP/cgmgr.run.PID` (PID: the `cgmgr exec`
//! process, or the process serving a prepared sandbox). The group's limits
//! still bound all its concurrent runs together (a child group has none of
//! its own); the run group gives each run
//!
//! - an end: when the workload exits, `cgroup.kill` takes whatever it left
//!   (a double-forked daemon without a pid namespace, a process that escaped
//!   its session), and cgmgr waits for `populated 0` before it returns;
//! - its own counters: `memory.events`, `pids.events`, `memory.peak`,
//!   `cpu.stat`, `io.stat` of this run only, read before the group goes away.
//!   Kernels before 6.11 count a refused fork only there, so a run group's
//!   `pids.max` refusals are carried into its group's count before it is
//!   removed ([`pids::remove_run`], on every path that removes one: a run's
//!   end, an abandoned run's reaper, a stale group under this pid's name).
//!
//! A run is alive while its owner holds an exclusive `flock` on the run
//! group's directory; the kernel drops it when the owner ends, however it
//! ends. A run whose owner was killed with SIGKILL leaves its run group
//! unlocked, and the next run in the same group ends it. Liveness is never
//! judged by a pid: a `cgmgr exec` in another pid namespace (a container
//! sharing the host's cgroupfs) sees other owners' pids as absent, or as
//! someone else.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::sys::stat::Mode;

use crate::cgroup::stat::CgroupEvents;
use crate::cgroup::tree::Controller;
use crate::cgroup::{CgroupRoot, GroupName, control, pids, tree};

use super::error::ExecError;
use super::idmap::{IdPlan, RunIds};

pub use crate::cgroup::pids::RUN_PREFIX;

/// How long the processes of a run may take to die after `cgroup.kill`.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// Controllers enabled for run groups when the group has them, so that
/// each run has its own memory, pids and I/O counters.
const ACCOUNTED: [Controller; 3] = [Controller::Memory, Controller::Pids, Controller::Io];

/// One run: its locked run group and, with a user namespace, its leased
/// host ids. Dropping it without [`Run::end`] leaves the group to the next
/// run's reaper.
#[derive(Debug)]
pub struct Run {
    /// The run group (`GROUP/cgmgr.run.PID`).
    pub group: GroupName,
    /// The run group's directory, locked while the run lives.
    lock: Flock<OwnedFd>,
    /// The host ids of its user namespace; a leased range is held until
    /// the run group has been ended.
    pub ids: Option<RunIds>,
}

impl Run {
    /// Begins a run below `group`: ends the runs whose owner is gone,
    /// leases host ids (`user_ns`), then creates and locks the run group,
    /// and records it in the lease before any process enters it. A refused
    /// lease creates nothing. The memory, pids and io controllers are
    /// enabled for the run where `group` has them and holds no process
    /// itself; otherwise the run is only counted in `group`'s counters.
    ///
    /// `user_ns`: how the run's user namespace maps ids, if it has one.
    pub fn begin(
        root: &CgroupRoot,
        group: &GroupName,
        user_ns: Option<&IdPlan>,
    ) -> Result<Run, ExecError> {
        reap_abandoned(root, group);
        let ids = user_ns.map(IdPlan::take).transpose()?;
        enable_accounting(root, group);
        let (run, lock) = create_locked(root, group)?;
        if let Some(RunIds::Leased(ids)) = &ids
            && let Err(e) = ids.record(&root.group_path(&run), lock.as_fd())
        {
            let _ = root.rmdir(&run);
            return Err(e);
        }
        Ok(Run {
            group: run,
            lock,
            ids,
        })
    }

    /// The run group's directory (locked).
    pub fn dir(&self) -> std::os::fd::BorrowedFd<'_> {
        self.lock.as_fd()
    }

    /// Ends the run: kills what is left in its group, waits until it is
    /// empty, removes it, then releases the lock and the ids. `Err` names
    /// what could not be done; the caller reports it without changing the
    /// workload's exit status. A group that could not be emptied keeps the
    /// ids out of other runs' reach (the lease records it).
    pub fn end(self, root: &CgroupRoot) -> Result<(), EndError> {
        end_group(root, &self.group)?;
        // Gone: the next lease of the range need not look for it.
        if let Some(RunIds::Leased(ids)) = &self.ids {
            let _ = ids.clear_record();
        }
        Ok(())
    }
}

fn enable_accounting(root: &CgroupRoot, group: &GroupName) {
    let available = root.controllers(group).unwrap_or_default();
    let enabled = root.subtree_control(group).unwrap_or_default();
    for c in ACCOUNTED {
        if available.iter().any(|a| a == c.name()) && !enabled.iter().any(|e| e == c.name()) {
            // EBUSY: the group holds processes of its own (put there by
            // hand); the run is then counted in the group's counters.
            let _ = root.write_raw(group, "cgroup.subtree_control", &format!("+{}", c.name()));
        }
    }
}

/// Names tried for this process's run group: `cgmgr.run.PID`, then
/// `cgmgr.run.PID-2`... when a live run of the same pid from another pid
/// namespace holds the name.
const NAME_TRIES: u32 = 16;

/// Creates and locks this process's run group. An unlocked group already
/// under the name is an abandoned run (a reused pid): it is ended first.
fn create_locked(
    root: &CgroupRoot,
    group: &GroupName,
) -> Result<(GroupName, Flock<OwnedFd>), ExecError> {
    let pid = std::process::id();
    let name = |n: u32| match n {
        1 => group.child(&format!("{RUN_PREFIX}{pid}")),
        n => group.child(&format!("{RUN_PREFIX}{pid}-{n}")),
    };
    let mut n = 1;
    for _ in 0..2 * NAME_TRIES {
        let run = name(n)?;
        // 0700: the run's liveness is a lock on this directory, and a lock
        // needs only an open descriptor; anyone who could open it could
        // keep an abandoned run (and its host ids) alive, or take a new
        // run's name from it.
        let made = root
            .mkdir_with_mode(&run, 0o700)
            .map_err(|e| ExecError::Invalid(e.to_string()))?;
        let dir = match root.open_dir(&run) {
            Ok(dir) => dir,
            // Removed between our mkdir and this open by another run's
            // reaper, which listed an abandoned run of the same name (this
            // pid's earlier owner) before we made ours: make it again.
            Err(Errno::ENOENT) => continue,
            Err(errno) => return Err(run_err(root, &run, "opening", errno)),
        };
        let lock = match Flock::lock(dir, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            // A live run of this pid from another pid namespace, or a
            // reaper ending the name's earlier owner: another name.
            Err((_, Errno::EWOULDBLOCK)) => {
                n += 1;
                if n > NAME_TRIES {
                    break;
                }
                continue;
            }
            Err((_, errno)) => return Err(run_err(root, &run, "locking", errno)),
        };
        // A reaper that took the lock between our mkdir and our lock has
        // removed the group by the time we hold it: make it again.
        if !still_there(&lock) {
            continue;
        }
        if made {
            return Ok((run, lock));
        }
        // There before us and nobody's: what an earlier owner with this
        // pid left. Ended under our lock, then made anew.
        if end_group(root, &run).is_err() {
            n += 1;
            if n > NAME_TRIES {
                break;
            }
        }
    }
    let run = name(1)?;
    Err(run_err(
        root,
        &run,
        "no free name for this process's run group",
        Errno::EEXIST,
    ))
}

fn still_there(dir: &Flock<OwnedFd>) -> bool {
    nix::fcntl::openat(
        dir.as_fd(),
        "cgroup.events",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .is_ok()
}

fn run_err(root: &CgroupRoot, run: &GroupName, what: &'static str, errno: Errno) -> ExecError {
    ExecError::RunGroup {
        path: root.group_path(run),
        what,
        errno,
    }
}

/// Kills what is left of a run group, waits until it is empty, carries
/// its pids.max refusals into its group's count and removes it.
fn end_group(root: &CgroupRoot, run: &GroupName) -> Result<(), EndError> {
    if !root.exists(run) {
        return Ok(());
    }
    kill_all(root, run)?;
    Ok(pids::remove_run(root, run)?)
}

/// Why a run group could not be ended.
#[derive(Debug, thiserror::Error)]
pub enum EndError {
    /// Its processes could not be killed, or waited for.
    #[error(transparent)]
    Kill(#[from] control::ControlError),
    /// They were killed, and some are still there.
    #[error("{path} still holds processes {secs}s after they were killed")]
    NotEmpty {
        /// The run group.
        path: std::path::PathBuf,
        /// How long it was waited for.
        secs: u64,
    },
    /// The emptied group could not be removed, or its pids.max refusals
    /// not carried into its group's count (it is then left for the next
    /// run's reaper, its count intact).
    #[error(transparent)]
    Remove(#[from] pids::PidsError),
}

/// Kills what is left of the run ([`control::kill_processes`]: `cgroup.kill`,
/// or by hand on kernels before 5.14), then waits for `populated 0`.
pub fn kill_all(root: &CgroupRoot, run: &GroupName) -> Result<(), EndError> {
    if !populated(root, run) {
        return Ok(());
    }
    control::kill_processes(root, run)?;
    if control::wait_until_empty(root, run, KILL_TIMEOUT)? {
        Ok(())
    } else {
        Err(EndError::NotEmpty {
            path: root.group_path(run),
            secs: KILL_TIMEOUT.as_secs(),
        })
    }
}

fn populated(root: &CgroupRoot, group: &GroupName) -> bool {
    root.stat::<CgroupEvents>(group)
        .is_none_or(|events| events.is_populated())
}

/// Ends and removes the run groups of `group` that no owner holds (their
/// `cgmgr exec` was killed with SIGKILL before it could end its run).
fn reap_abandoned(root: &CgroupRoot, group: &GroupName) {
    let Ok(children) = root.children(group) else {
        return;
    };
    for child in children {
        let is_run = child
            .as_str()
            .rsplit('/')
            .next()
            .is_some_and(|leaf| leaf.starts_with(RUN_PREFIX));
        if !is_run {
            continue;
        }
        let Ok(dir) = root.open_dir(&child) else {
            continue;
        };
        // Held: a live run. Ours now: nobody's; ended while we hold it.
        let Ok(lock) = Flock::lock(dir, FlockArg::LockExclusiveNonblock) else {
            continue;
        };
        if !still_there(&lock) {
            continue;
        }
        match end_group(root, &child) {
            Ok(()) => eprintln!("cgmgr: ended the abandoned run {child} (no cgmgr exec holds it)"),
            Err(e) => eprintln!("cgmgr: could not end the abandoned run {child}: {e}"),
        }
        drop(lock);
    }
}

/// Moves `pid` into the run group (kernels without `CLONE_INTO_CGROUP`).
pub fn place(root: &CgroupRoot, run: &GroupName, pid: i32) -> Result<(), ExecError> {
    tree::move_pid(root, run, pid)
        .map(|_| ())
        .map_err(|e| ExecError::Invalid(format!("placing the workload in its run group: {e}")))
}
