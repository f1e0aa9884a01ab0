//! `cgmgr exec`'s side: ask the daemon for a prepared sandbox, hand it the
//! command, the caller's stdio and attributes, pass signals on, and take
//! the status.

use super::*;

/// `cgmgr exec` through a prepared sandbox of the running daemon: the
/// workload's exit status, or `None` when no sandbox took the request (no
/// daemon, none ready, an older daemon, a daemon that does not answer in
/// time): the caller then runs it itself. Only for runs that use the
/// daemon's policies without changing the sandbox (no `--policies`,
/// `--root`, `--rootfs`, `--ns`, `--hostname`, `--chroot`); the caller
/// checks that.
pub fn try_run(group: &str, flags: &ExecFlags) -> Option<i32> {
    GroupName::parse(group).ok()?;
    merge_env(Vec::new(), &flags.env).ok()?;
    crate::runtime::record::running_daemon().ok()??;
    let sock = connect_to_daemon()?;
    let request = Request {
        v: PROTOCOL,
        group: group.to_string(),
        argv: flags.argv.clone(),
        env: flags.env.clone(),
        report: flags.report.map(|r| match r {
            report::ReportFormat::Text => "text".to_string(),
            report::ReportFormat::Json => "json".to_string(),
        }),
        ignored: ignored_signals(),
        attrs: own_attributes(),
    };
    // Blocked before anything is asked, so none is lost; taken from a
    // signalfd while the run lasts. The direct run blocks the same set.
    let signals = supervised_signals();
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_BLOCK,
        Some(&signals),
        None,
    )
    .ok()?;
    let sfd = SignalFd::new(&signals).ok()?;
    let mut taken = Vec::new();
    let sent = send_json(sock.as_fd(), &request, &[]).is_ok();
    if !(sent && started(&sock, &sfd, &mut taken)) {
        // Signals taken meanwhile are raised again: blocked, they stay
        // pending for the run `cgmgr exec` builds itself.
        for sig in taken {
            let _ = nix::sys::signal::raise(sig);
        }
        return None;
    }
    let stdio = [0, 1, 2].map(|fd| {
        // SAFETY: F_GETFD only asks whether the descriptor is open.
        unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
    });
    let fds: Vec<RawFd> = (0..3)
        .zip(stdio)
        .filter(|&(_, open)| open)
        .map(|(fd, _)| fd)
        .collect();
    if send_json(sock.as_fd(), &ClientMessage::Stdio(stdio), &fds).is_err() {
        // Nothing runs before the stdio came: built here instead.
        return None;
    }
    for sig in taken {
        let _ = send_json(sock.as_fd(), &ClientMessage::Signal(sig as i32), &[]);
    }
    Some(follow(&sock, &sfd))
}

/// A connection to the daemon's socket, or `None` (no socket, a full
/// backlog: `connect` would wait).
pub(super) fn connect_to_daemon() -> Option<OwnedFd> {
    let sock = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .ok()?;
    connect(
        sock.as_raw_fd(),
        &UnixAddr::new(&crate::runtime::exec_socket_path()).ok()?,
    )
    .ok()?;
    let flags = nix::fcntl::fcntl(&sock, nix::fcntl::FcntlArg::F_GETFL).ok()?;
    let blocking = nix::fcntl::OFlag::from_bits_truncate(flags) & !nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(&sock, nix::fcntl::FcntlArg::F_SETFL(blocking)).ok()?;
    allow_large_messages(sock.as_fd());
    Some(sock)
}

/// A connected pair of `SOCK_SEQPACKET` sockets (close-on-exec) that
/// carry messages of up to [`MAX_MESSAGE`] bytes both ways.
pub fn seqpacket_pair() -> Result<(OwnedFd, OwnedFd), Errno> {
    let (a, b) = nix::sys::socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    allow_large_messages(a.as_fd());
    allow_large_messages(b.as_fd());
    Ok((a, b))
}

/// `SO_PASSRIGHTS` (Linux 6.16): whether the socket accepts `SCM_RIGHTS`.
pub(super) const SO_PASSRIGHTS: libc::c_int = 83;

/// Lets `sock` receive descriptors, or refuses them (the sender's
/// `sendmsg` fails). Without the option (kernels before 6.16) nothing
/// changes: descriptors are then received and dropped unread.
pub fn set_pass_rights(sock: BorrowedFd<'_>, pass: bool) {
    let value = libc::c_int::from(pass);
    let len = libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).unwrap_or(4);
    // SAFETY: value is a live c_int of the given size for the call.
    let _ = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_PASSRIGHTS,
            (&raw const value).cast(),
            len,
        )
    };
}

/// Lets a message of up to [`MAX_MESSAGE`] bytes through `sock` (a
/// `SOCK_SEQPACKET` message must fit in its sender's buffer).
pub fn allow_large_messages(sock: BorrowedFd<'_>) {
    let _ = nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::SndBuf, &MAX_MESSAGE);
}

/// Waits for a prepared sandbox to take the request: true once one said
/// `started`; false when the daemon answered `none`, closed, or said
/// nothing within [`FIRST_ANSWER`] (no sandbox starts the command after
/// that: it waits for the stdio sent only after `started`).
pub(super) fn started(sock: &OwnedFd, sfd: &SignalFd, taken: &mut Vec<Signal>) -> bool {
    let deadline = Instant::now() + FIRST_ANSWER;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some(revents)) = wait_any(&[sock.as_fd(), sfd.as_fd()], Some(left)) else {
            return false;
        };
        if ready(revents[0]) {
            return matches!(
                recv(sock.as_fd(), MsgFlags::empty()),
                Ok(Some((bytes, _))) if serde_json::from_slice::<Reply>(&bytes).is_ok_and(|r| r == Reply::Started)
            );
        }
        if ready(revents[1])
            && let Some(sig) = take_signal(sfd)
            && sig != Signal::SIGCHLD
        {
            taken.push(sig);
        }
    }
}

/// Passes signals on and waits for the end of a run a prepared sandbox
/// took; its exit status.
pub(super) fn follow(sock: &OwnedFd, sfd: &SignalFd) -> i32 {
    loop {
        let revents = match wait_any(&[sock.as_fd(), sfd.as_fd()], None) {
            Ok(Some(revents)) => revents,
            Ok(None) => continue,
            Err(e) => return fail(&format!("waiting for the prepared sandbox: {e}")),
        };
        if ready(revents[0]) {
            match recv(sock.as_fd(), MsgFlags::empty()) {
                Ok(Some((bytes, _))) => match serde_json::from_slice::<Reply>(&bytes) {
                    Ok(Reply::Exit { code, stderr }) => {
                        eprint!("{stderr}");
                        return code;
                    }
                    Ok(Reply::Failed { message }) => return fail(&message),
                    _ => return fail("the prepared sandbox's answer is not understood"),
                },
                Ok(None) | Err(_) => {
                    return fail(
                        "the prepared sandbox ended without telling the workload's exit status",
                    );
                }
            }
        }
        if ready(revents[1])
            && let Some(sig) = take_signal(sfd)
            && sig != Signal::SIGCHLD
            && send_json(sock.as_fd(), &ClientMessage::Signal(sig as i32), &[]).is_err()
        {
            return fail("lost the prepared sandbox");
        }
    }
}

pub(super) fn fail(why: &str) -> i32 {
    eprintln!("cgmgr: exec: {why}");
    125
}

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
