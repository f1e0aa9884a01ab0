//! The parent's side of a run: the signals it passes on to init, the grace
//! period a stop signal starts, and the `cgroup.kill` that ends a run which
//! does not stop.

use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::init;
use super::limits::{self, Exceeded, RunLimits, Watch};
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

/// Waits for init to exit and returns how the run ended, forwarding
/// `signals` to it meanwhile (they are blocked, and taken with
/// `sigtimedwait` as init takes its own: no thread); after a stop signal,
/// kills the run group if the run is still there `STOP_GRACE` later; kills
/// it at once past its time limits.
pub(crate) fn supervise(
    mut run: Supervision,
    group: RunRef<'_>,
    signals: &nix::sys::signal::SigSet,
) -> RunEnd {
    loop {
        if let Some(code) = run.exited() {
            return run.end(code);
        }
        match wait_signal(signals, run.time_left(group)) {
            Some(sig) => run.on_signal(sig, group),
            None => run.on_timeout(group),
        }
    }
}

/// How a run ended: its status, the limit that killed it, and what the
/// kernel counted for init and every process it waited for.
#[derive(Debug, Clone, Copy)]
pub struct RunEnd {
    /// The exit status (128+N when killed by signal N).
    pub code: i32,
    /// The run's time limit that killed it, if one did.
    pub exceeded: Option<Exceeded>,
    /// `wait4`'s resource usage of init (its waited-for descendants included).
    pub rusage: Option<libc::rusage>,
}

impl RunEnd {
    /// A run that ended with `code` and nothing else known.
    pub fn code(code: i32) -> RunEnd {
        RunEnd {
            code,
            exceeded: None,
            rusage: None,
        }
    }
}

/// What the parent knows of a run it supervises: init's pid, the grace
/// period a stop signal started, the run's time limits.
pub(crate) struct Supervision {
    pid: Pid,
    grace_until: Option<std::time::Instant>,
    killed: bool,
    watch: Option<Watch>,
    cpus: u32,
    exceeded: Option<Exceeded>,
    rusage: std::cell::Cell<Option<libc::rusage>>,
}

impl Supervision {
    /// A run whose init is `pid`, without time limits (yet).
    pub(crate) fn new(pid: Pid) -> Supervision {
        Supervision {
            pid,
            grace_until: None,
            killed: false,
            watch: None,
            cpus: limits::usable_cpus(),
            exceeded: None,
            rusage: std::cell::Cell::new(None),
        }
    }

    /// Starts watching `limits` from now, the run's CPU time counted from
    /// what `run` has used so far (a prepared sandbox's build is not the
    /// run's).
    pub(crate) fn limit(&mut self, limits: RunLimits, run: RunRef<'_>) {
        let watch = Watch::start(limits, limits::cpu_used(run.root, run.group));
        self.watch = watch.is_active().then_some(watch);
    }

    /// init's exit status once it has exited (checked before each wait:
    /// init may exit before the wait begins).
    pub(crate) fn exited(&self) -> Option<i32> {
        loop {
            let mut status = 0;
            // SAFETY: a live rusage to fill and a live int for the status;
            // WNOHANG makes this a check.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: as above; the pointers outlive the call.
            let rc =
                unsafe { libc::wait4(self.pid.as_raw(), &mut status, libc::WNOHANG, &mut usage) };
            match rc {
                0 => return None,
                n if n == self.pid.as_raw() => {
                    let Ok(ws) = nix::sys::wait::WaitStatus::from_raw(self.pid, status) else {
                        return Some(125);
                    };
                    if let Some(code) = init::exit_code(ws) {
                        self.rusage.set(Some(usage));
                        return Some(code);
                    }
                }
                _ if Errno::last() == Errno::EINTR => {}
                _ => return Some(125),
            }
        }
    }

    /// The end of a run that exited with `code`.
    pub(crate) fn end(&self, code: i32) -> RunEnd {
        RunEnd {
            code,
            exceeded: self.exceeded,
            rusage: self.rusage.get(),
        }
    }

    /// How long until the next thing to do: the grace period's end, a
    /// time limit's check (`None`: nothing, wait for ever).
    pub(crate) fn time_left(&self, run: RunRef<'_>) -> Option<Duration> {
        let grace = self
            .grace_until
            .map(|t| t.saturating_duration_since(std::time::Instant::now()));
        let limit = self
            .watch
            .as_ref()
            .and_then(|w| w.next_check(limits::cpu_used(run.root, run.group), self.cpus));
        match (grace, limit) {
            (Some(g), Some(l)) => Some(g.min(l)),
            (g, l) => g.or(l),
        }
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

    /// Kills the run past a time limit, or once the grace period is over.
    pub(crate) fn on_timeout(&mut self, run: RunRef<'_>) {
        if !self.killed
            && let Some(watch) = &self.watch
            && let Some(exceeded) = watch.exceeded(limits::cpu_used(run.root, run.group))
        {
            self.exceeded = Some(exceeded);
            self.watch = None;
            self.kill_now(run);
            return;
        }
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
