//! The caller's process attributes (limits, nice value, `oom_score_adj`,
//! CPU affinity, scheduling and I/O priority, ignored signals): read by
//! `cgmgr exec`, given to the run's processes by the sandbox.

use super::*;

/// Signals this process ignores that a workload would inherit ignored
/// (SIGPIPE and SIGCHLD are reset for every run).
pub(super) fn ignored_signals() -> Vec<i32> {
    (1..=libc::SIGRTMAX())
        .filter(|&n| ![libc::SIGKILL, libc::SIGSTOP, libc::SIGPIPE, libc::SIGCHLD].contains(&n))
        .filter(|&n| ignored(n))
        .collect()
}

/// This process's limits, nice value, `oom_score_adj` and CPU affinity.
pub(super) fn own_attributes() -> Attributes {
    let rlimits = (0..RLIMIT_COUNT)
        .filter_map(|r| {
            // SAFETY: a zeroed rlimit is a valid out-parameter.
            let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
            // SAFETY: pid 0 is this process; a null new limit only reads.
            let rc = unsafe { libc::prlimit(0, r, std::ptr::null(), &mut lim) };
            (rc == 0).then_some((r, lim.rlim_cur, lim.rlim_max))
        })
        .collect();
    Errno::clear();
    // SAFETY: getpriority takes two integers; -1 is a valid nice value,
    // told from an error by errno.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    let nice = if Errno::last_raw() == 0 { nice } else { 0 };
    let oom_score_adj = std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let cpus = nix::sched::sched_getaffinity(Pid::from_raw(0))
        .map(|set| {
            (0..nix::sched::CpuSet::count())
                .filter(|&c| set.is_set(c).unwrap_or(false))
                .collect()
        })
        .unwrap_or_default();
    // SAFETY: sched_getscheduler and sched_getparam take pid 0 (this
    // process) and, for the latter, a valid out-parameter.
    let sched = unsafe {
        let policy = libc::sched_getscheduler(0);
        let mut param: libc::sched_param = std::mem::zeroed();
        (policy >= 0 && libc::sched_getparam(0, &mut param) == 0)
            .then_some((policy, param.sched_priority))
    };
    // SAFETY: ioprio_get takes two integers (IOPRIO_WHO_PROCESS, 0: this
    // process).
    let ioprio = unsafe { libc::syscall(libc::SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0) };
    Attributes {
        rlimits,
        nice,
        oom_score_adj,
        cpus,
        sched,
        ioprio: i32::try_from(ioprio).ok().filter(|&p| p >= 0),
    }
}

/// `IOPRIO_WHO_PROCESS` of ioprio_get(2).
pub(super) const IOPRIO_WHO_PROCESS: libc::c_int = 1;

/// Sets a process's limit (pid 0: this one) to `soft`/`hard`, or where the
/// hard limit cannot be raised, keeps it and takes the soft one up to it.
pub(super) fn set_rlimit(pid: Pid, resource: u32, soft: u64, hard: u64) {
    let set = |soft: u64, hard: u64| {
        let lim = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        // SAFETY: lim is a valid rlimit for the call; the old value is not
        // asked for.
        unsafe { libc::prlimit(pid.as_raw(), resource, &lim, std::ptr::null_mut()) == 0 }
    };
    if resource >= RLIMIT_COUNT || set(soft, hard) {
        return;
    }
    // SAFETY: a zeroed rlimit is a valid out-parameter.
    let mut now: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: reads the process's limit into `now`.
    if unsafe { libc::prlimit(pid.as_raw(), resource, std::ptr::null(), &mut now) } == 0 {
        set(soft.min(now.rlim_max), now.rlim_max);
    }
}

/// `RLIM_NLIMITS` on Linux.
pub(super) const RLIMIT_COUNT: u32 = 16;

/// Gives a process of the run (init, the waiting workload) the caller's
/// attributes: as root outside the sandbox, which may raise what the
/// sandbox may not.
/// Best effort: a CPU list the group's cpuset forbids is left as it is.
pub(super) fn apply_attributes(pid: Pid, attrs: &Attributes) {
    for &(resource, soft, hard) in &attrs.rlimits {
        set_rlimit(pid, resource, soft, hard);
    }
    let pid_t = libc::id_t::try_from(pid.as_raw()).unwrap_or(0);
    // SAFETY: setpriority takes integers only.
    let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, pid_t, attrs.nice.clamp(-20, 19)) };
    if let Some(adj) = attrs.oom_score_adj {
        let _ = std::fs::write(
            format!("/proc/{pid}/oom_score_adj"),
            adj.clamp(-1000, 1000).to_string(),
        );
    }
    let mut set = nix::sched::CpuSet::new();
    let any = attrs.cpus.iter().filter(|&&c| set.set(c).is_ok()).count();
    if any > 0 {
        let _ = nix::sched::sched_setaffinity(pid, &set);
    }
    if let Some((policy, priority)) = attrs.sched {
        let param = libc::sched_param {
            sched_priority: priority,
        };
        // SAFETY: param is a valid sched_param for the call.
        let _ = unsafe { libc::sched_setscheduler(pid.as_raw(), policy, &param) };
    }
    if let Some(prio) = attrs.ioprio {
        // SAFETY: ioprio_set takes integers only.
        let _ =
            unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, pid.as_raw(), prio) };
    }
}
