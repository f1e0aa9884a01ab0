//! The parent's side of a run: the signals it passes on to init, the grace
//! period a stop signal starts, and the `cgroup.kill` that ends a run which
//! does not stop.

use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use super::init;
use crate::cgroup::{CgroupRoot, GroupName, control};

/// How long a run may take to stop after SIGINT, SIGTERM, SIGHUP or
/// SIGQUIT before `cgroup.kill` ends it: a workload may ignore the signal,
/// stop its init (without a pid namespace they share a uid), or trace it.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// The signals the parent passes on to the run, and SIGCHLD. A forwarded
/// signal the caller ignores is left out, so it stays ignored: `nohup cgmgr
/// exec ...` is not ended by a hangup (the workload inherits the ignore).
pub(crate) fn supervised_signals() -> nix::sys::signal::SigSet {
    let mut set = nix::sys::signal::SigSet::empty();
    for sig in init::FORWARDED {
        if !is_ignored(sig) {
            set.add(sig);
        }
    }
    set.add(Signal::SIGCHLD);
    set
}

fn is_ignored(sig: Signal) -> bool {
    ignored(sig as libc::c_int)
}

/// Whether signal `n` (real-time ones included) is ignored here; glibc's
/// internal signals, which it will not tell, count as not ignored.
pub(crate) fn ignored(n: libc::c_int) -> bool {
    // SAFETY: a zeroed sigaction is a valid out-parameter.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only reads the current one into `old`.
    let read = unsafe { libc::sigaction(n, std::ptr::null(), &mut old) };
    read == 0 && old.sa_sigaction == libc::SIG_IGN
}

/// Waits for init to exit and returns its status, forwarding `signals` to
/// it meanwhile (they are blocked, and taken with `sigtimedwait` as init
/// takes its own: no thread); after a stop signal, kills the run group if
/// the run is still there `STOP_GRACE` later.
pub(crate) fn supervise(pid: Pid, group: RunRef<'_>, signals: &nix::sys::signal::SigSet) -> i32 {
    let mut run = Supervision::new(pid);
    loop {
        if let Some(code) = run.exited() {
            return code;
        }
        match wait_signal(signals, run.time_left()) {
            Some(sig) => run.on_signal(sig, group),
            None => run.on_timeout(group),
        }
    }
}

/// What the parent knows of a run it supervises: init's pid and the grace
/// period a stop signal started.
pub(crate) struct Supervision {
    pid: Pid,
    grace_until: Option<std::time::Instant>,
    killed: bool,
}

impl Supervision {
    /// A run whose init is `pid`.
    pub(crate) fn new(pid: Pid) -> Supervision {
        Supervision {
            pid,
            grace_until: None,
            killed: false,
        }
    }

    /// init's exit status once it has exited (checked before each wait:
    /// init may exit before the wait begins).
    pub(crate) fn exited(&self) -> Option<i32> {
        loop {
            match waitpid(self.pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                Ok(nix::sys::wait::WaitStatus::StillAlive) => return None,
                Ok(status) => {
                    if let Some(code) = init::exit_code(status) {
                        return Some(code);
                    }
                }
                Err(Errno::EINTR) => {}
                Err(_) => return Some(125),
            }
        }
    }

    /// How long until the grace period ends (`None`: no deadline).
    pub(crate) fn time_left(&self) -> Option<Duration> {
        self.grace_until
            .map(|t| t.saturating_duration_since(std::time::Instant::now()))
    }

    /// Passes `sig` on to init (SIGCHLD: nothing, `exited` tells); a stop
    /// signal starts the grace period.
    pub(crate) fn on_signal(&mut self, sig: Signal, run: RunRef<'_>) {
        if sig == Signal::SIGCHLD {
            return;
        }
        let _ = kill(self.pid, sig);
        let stop = matches!(
            sig,
            Signal::SIGINT | Signal::SIGTERM | Signal::SIGHUP | Signal::SIGQUIT
        );
        if stop && self.grace_until.is_none() && !self.killed {
            self.grace_until = Some(std::time::Instant::now() + STOP_GRACE);
        }
        self.on_timeout(run);
    }

    /// Ends the run now, without a word: `cgroup.kill`, and SIGKILL to
    /// init (which ends a pid namespace, also where `cgroup.kill` is
    /// missing).
    pub(crate) fn kill_now(&mut self, run: RunRef<'_>) {
        kill_run_group(run);
        let _ = kill(self.pid, Signal::SIGKILL);
        self.killed = true;
    }

    /// Kills the run group once the grace period is over.
    pub(crate) fn on_timeout(&mut self, run: RunRef<'_>) {
        if self
            .grace_until
            .is_some_and(|t| std::time::Instant::now() >= t)
        {
            if kill_run_group(run) {
                eprintln!(
                    "cgmgr: exec: the run did not stop within {}s of the signal: killed",
                    STOP_GRACE.as_secs()
                );
            }
            self.grace_until = None;
            self.killed = true;
        }
    }
}

/// One signal of `set` (which must be blocked), or `None` at the timeout
/// (none: wait for ever) or on an interruption.
fn wait_signal(set: &nix::sys::signal::SigSet, timeout: Option<Duration>) -> Option<Signal> {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(t.subsec_nanos()),
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `set` is a valid signal set, the info pointer may be null,
    // and `ts_ptr` is null or points to `ts`, alive for the call.
    let n = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), ts_ptr) };
    Signal::try_from(n).ok()
}

/// A run group, as the one kill path takes it.
#[derive(Clone, Copy)]
pub(crate) struct RunRef<'a> {
    /// The managed root.
    pub root: &'a CgroupRoot,
    /// The run group.
    pub group: &'a GroupName,
}

/// Kills every process of the run group ([`control::kill_processes`]:
/// `cgroup.kill`, by hand before Linux 5.14); true when it was done.
pub(crate) fn kill_run_group(run: RunRef<'_>) -> bool {
    control::kill_processes(run.root, run.group).is_ok()
}
