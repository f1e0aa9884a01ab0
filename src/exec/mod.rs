//! `cgmgr exec`: run a command inside its group, in new namespaces and a
//! new root filesystem, under a minimal init.
//!
//! Three processes take part:
//! - the **parent** (`cgmgr exec` itself) makes the run group
//!   (`GROUP/cgmgr.run.PID`), clones the child into it (`clone3` +
//!   `CLONE_INTO_CGROUP`), writes its id maps, lets it go, then forwards
//!   signals and waits; it reports OOM kills and pids.max hits, and ends the
//!   run group (nothing started by the run outlives it);
//! - the **child** is PID 1 of the new PID namespace: it sets the hostname,
//!   brings up loopback, builds the root filesystem, forks the workload and
//!   becomes its init ([`init`]);
//! - the **workload** ([`workload`]) drops everything it must not keep and
//!   executes the command.
//!
//! A prepared sandbox ([`standby`]) is the same run made ahead by the
//! daemon, its workload waiting for the command of a later `cgmgr exec`.

pub mod build;
pub mod error;
pub mod idmap;
pub mod init;
pub mod kernel;
pub mod limits;
pub mod mounts;
pub mod prepare;
pub mod report;
pub mod rootfs;
pub mod run_group;
pub mod seccomp;
pub mod seccomp_rules;
pub mod spawn;
pub mod standby;
pub mod subids;
pub mod workload;

pub mod child;
pub mod spec;
pub mod supervise;

use std::os::fd::{AsFd, OwnedFd};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

pub use error::ExecError;
use error::sys;
pub use spec::{DEFAULT_NAMESPACES, ExecFlags, ExecSpec, merge_env};
pub(crate) use spec::{check_reachable_by_others, check_rootfs};
pub use supervise::STOP_GRACE;
pub(crate) use supervise::{Supervision, ignored, supervised_signals};

use crate::cgroup::{CgroupRoot, GroupName};
use crate::policy::Namespace;

/// Runs the workload in a run group of its own below the spec's group;
/// returns its exit status (128+N when killed by N). Whatever the workload
/// left running is killed before this returns. The process must have a
/// single thread: checked before the clone, an error otherwise.
pub fn run(
    root: &CgroupRoot,
    spec: &ExecSpec,
) -> Result<(i32, Option<report::RunReport>), ExecError> {
    // The run's own host ids come with it, held until its group is ended
    // (below): no process of this run keeps them once another run may
    // lease them.
    let run = run_group::Run::begin(root, &spec.group, spec.ids.as_ref())?;
    // After `begin`, which may first end abandoned runs: their time is not
    // this run's.
    let account = report::Accounting::start(
        root,
        &spec.group,
        &run.group,
        spec.report,
        spec.report_file.is_some(),
        spec.limits,
    );
    let result = run_in(root, spec, &run);
    // Read while the run group still exists.
    let told = result
        .as_ref()
        .ok()
        .map(|end| account.finish(root, &run.group, end));
    if let Err(e) = run.end(root) {
        eprintln!("cgmgr: exec: ending the run: {e}");
    }
    let end = result?;
    let told = told.unwrap_or_default();
    eprint!("{}", told.stderr);
    Ok((end.code, told.report))
}

fn run_in(
    root: &CgroupRoot,
    spec: &ExecSpec,
    run: &run_group::Run,
) -> Result<supervise::RunEnd, ExecError> {
    let started = start_child(root, spec, run, None)?;
    let group = supervise::RunRef {
        root,
        group: &run.group,
    };
    let mut supervision = Supervision::new(started.pid);
    supervision.limit(spec.limits, group);
    let end = supervise::supervise(supervision, group, &started.signals);
    // Held open until now: the child polls it to learn whether we died
    // before its death signal was armed.
    drop(started.go);
    Ok(end)
}

/// A child (init) cloned into its run group and let go.
pub(crate) struct Started {
    /// init's pid.
    pub pid: Pid,
    /// The go pipe's write end, held open while the run lasts (init polls
    /// it to learn whether the parent died before its death signal was
    /// armed).
    pub go: OwnedFd,
    /// The signals the parent blocked before the clone and now supervises.
    pub signals: nix::sys::signal::SigSet,
}

/// Clones init into the run group, in its namespaces, maps its ids and
/// lets it go. `job`: the socket on which a prepared sandbox's init waits
/// for its command (see [`standby`]); `None` runs `spec`'s own command.
pub(crate) fn start_child(
    root: &CgroupRoot,
    spec: &ExecSpec,
    run: &run_group::Run,
    job: Option<OwnedFd>,
) -> Result<Started, ExecError> {
    // clone3 without a stack, and the child then runs arbitrary code
    // before execve: sound only with no other thread that could hold a
    // lock the child needs (the allocator's, stdio's).
    if let Some(threads) = other_threads() {
        return Err(ExecError::Invalid(format!(
            "cgmgr exec must clone from a single-threaded process; this one has {threads} other thread(s)"
        )));
    }
    let (go_read, go_write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("pipe2"))?;
    sigchld_by_default()?;
    // Blocked before the clone: a signal that comes before the parent
    // waits, or before init blocks its own, is queued, not lost. The
    // child's init blocks the same set; the workload clears the mask.
    let signals = supervised_signals();
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_BLOCK,
        Some(&signals),
        None,
    )
    .map_err(sys("sigprocmask"))?;
    // Born in the run group, through the descriptor that holds its lock.
    let owner = run.ids.as_ref().and_then(idmap::RunIds::owner);
    match spawn::clone_into(spec.clone_flags(), run.dir(), owner)? {
        spawn::Forked::Child => {
            // The id lease and the run group's lock (owned by `run`) are
            // never dropped here, as the child leaves by exit(): they are
            // on file descriptions the parent shares, and init closes its
            // copies with every fd.
            drop(go_write);
            std::process::exit(child::child_main(spec, go_read, job));
        }
        spawn::Forked::Parent { pid, pidfd, placed } => {
            drop((go_read, job));
            let released = release_child(
                root,
                &run.group,
                (pid, pidfd.as_fd()),
                placed,
                run.ids.as_ref(),
                &go_write,
            );
            if let Err(e) = released {
                let _ = kill(pid, Signal::SIGKILL);
                let _ = waitpid(pid, None);
                return Err(e);
            }
            Ok(Started {
                pid,
                go: go_write,
                signals,
            })
        }
    }
}

/// How many threads besides this one the process has (`None`: none, or
/// `/proc/self/status` cannot tell, as where /proc is not mounted, which
/// the id maps would fail on anyway).
fn other_threads() -> Option<usize> {
    other_threads_in(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// [`other_threads`] of a `/proc/PID/status` text.
fn other_threads_in(status: &str) -> Option<usize> {
    let threads: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))?
        .trim()
        .parse()
        .ok()?;
    (threads > 1).then(|| threads - 1)
}

/// Puts SIGCHLD back to its default action before the child is made. A
/// caller that ignores it (the disposition survives execve, and some shells
/// and supervisors leave it so) would make the kernel reap init without
/// telling us, and init, which inherits it, would never learn that the
/// workload exited: the run would hang.
pub(crate) fn sigchld_by_default() -> Result<(), ExecError> {
    init::restore_default_action(Signal::SIGCHLD).map_err(sys("sigaction(SIGCHLD)"))
}

/// Parent side: place the child if the kernel did not, map its ids, let it go.
fn release_child(
    root: &CgroupRoot,
    run: &GroupName,
    (pid, pidfd): (Pid, std::os::fd::BorrowedFd<'_>),
    placed: bool,
    ids: Option<&idmap::RunIds>,
    go: &OwnedFd,
) -> Result<(), ExecError> {
    // init leads a process group of its own: a signal sent to cgmgr's group
    // (a terminal's ^C) then reaches the run once, forwarded by cgmgr;
    // in cgmgr's group init took it from the group too and passed it on
    // twice. Done before the child is let go, as a shell does for a job.
    nix::unistd::setpgid(pid, pid).map_err(sys("setpgid of the sandbox's init"))?;
    if !placed {
        run_group::place(root, run, pid.as_raw())?;
    }
    if let Some(ids) = ids {
        idmap::write_maps(pidfd, ids)?;
    }
    nix::unistd::write(go, b"1").map_err(sys("releasing the child"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The count is the status file's `Threads:` less this one; a lone
    /// thread has none besides it. Real `/proc/self/status` lines.
    #[test]
    fn other_threads_are_counted() {
        let status = "Name:\tcgmgr\nUmask:\t0022\nState:\tR (running)\nTgid:\t4242\nThreads:\t3\nSigQ:\t0/7823\n";
        assert_eq!(other_threads_in(status), Some(2));
        assert_eq!(
            other_threads_in(&status.replace("Threads:\t3", "Threads:\t1")),
            None
        );
        assert_eq!(other_threads_in("Name:\tcgmgr\n"), None, "no Threads: line");
    }

    /// Live: the harness runs each test on a thread of its own, so this
    /// process is never single-threaded here, and a thread spawned here is
    /// among those counted. (The exact count is the parser's test: other
    /// tests' threads come and go meanwhile.)
    #[test]
    fn a_live_second_thread_is_seen() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || rx.recv());
        assert!(
            other_threads().is_some_and(|n| n >= 2),
            "this test's thread and the spawned one"
        );
        drop(tx);
        let _ = t.join();
    }
}
