//! The waiting workload: the sandbox's process that took every step before
//! `execve` and waits for its command and stdio.

use super::*;

/// The workload process of a prepared sandbox, forked by init once the
/// sandbox is built: it takes every step of [`workload::exec`] (cgmgr's own
/// filters included; a profile waits), says `ready` on `socket` and waits
/// for the command; then it takes the caller's stdio, ignored signals and
/// limits, loads a profile if it has one, and executes. Returns only on failure, with the exit status to use.
pub fn run_prepared(socket: OwnedFd, base: &Workload) -> i32 {
    // cgmgr's own filters allow every call made from here to execve: they
    // are loaded now, ahead, off the run's path. A profile is loaded last,
    // as for any run (it may refuse what cgmgr does before execve).
    let early = base.seccomp.allow_cgmgr();
    let job = workload::prepare(base, Some(socket)).and_then(|kept| {
        let socket = kept.ok_or_else(|| ExecError::Invalid("the job socket was lost".into()))?;
        if early {
            base.seccomp.load()?;
        }
        await_job(&socket, base)
    });
    match job.and_then(|mut job| job.install().map(|()| job)) {
        Ok(job) if early => workload::execute(&job.workload),
        Ok(job) => workload::finish(&job.workload),
        Err(e) => {
            eprintln!("cgmgr: exec: {e}");
            125
        }
    }
}

/// The command a prepared workload received, ready to run.
pub(super) struct ReadyJob {
    workload: Workload,
    stdio: [Option<OwnedFd>; 3],
    ignored: Vec<i32>,
    rlimits: Vec<(u32, u64, u64)>,
}

/// Says `ready` on `socket` and waits for the command. Everything about
/// the sandbox stays `base`'s.
pub(super) fn await_job(socket: &OwnedFd, base: &Workload) -> Result<ReadyJob, ExecError> {
    send(socket.as_fd(), &Word::Ready, &[]).map_err(sys("telling the standby process"))?;
    let (job, fds) = match recv::<Job>(socket.as_fd(), MsgFlags::empty()) {
        Ok(Some(message)) => message,
        Ok(None) => return Err(ExecError::Invalid("the standby process went away".into())),
        Err(RecvError::Sys(e)) => return Err(sys("recvmsg")(e)),
        Err(RecvError::Decode(e)) => {
            return Err(ExecError::Invalid(format!(
                "a job that does not parse: {e}"
            )));
        }
    };
    let mut fds = fds.into_iter();
    let stdio = job.stdio.map(|open| if open { fds.next() } else { None });
    Ok(ReadyJob {
        workload: Workload {
            argv: job.argv,
            env: job.env,
            ..base.clone()
        },
        stdio,
        ignored: job.ignored,
        rlimits: job.rlimits,
    })
}

impl ReadyJob {
    /// Takes the caller's stdio (closing the received descriptors: only
    /// 0-2 stay open) and ignored signals.
    fn install(&mut self) -> Result<(), ExecError> {
        // First out of 0-2, so that no dup2 below overwrites a source.
        let mut moved = [None; 3];
        for (slot, fd) in moved.iter_mut().zip(std::mem::take(&mut self.stdio)) {
            if let Some(fd) = fd {
                // SAFETY: F_DUPFD_CLOEXEC only makes a new descriptor (>= 10).
                let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
                if new < 0 {
                    return Err(sys("fcntl(F_DUPFD_CLOEXEC)")(Errno::last()));
                }
                *slot = Some(new);
            }
        }
        for (target, fd) in (0..3).zip(moved) {
            match fd {
                Some(fd) => {
                    // SAFETY: dup2 onto 0-2 replaces init's own stdio in
                    // this (forked) process only; `fd` is the copy made
                    // above, ours alone, closed right after.
                    let rc = unsafe { libc::dup2(fd, target) };
                    // SAFETY: as above; nothing uses the copy any more.
                    unsafe { libc::close(fd) };
                    if rc < 0 {
                        return Err(sys(format!("dup2(.., {target})"))(Errno::last()));
                    }
                }
                // SAFETY: closing a standard descriptor the caller did not
                // have open; nothing in this process uses it afterwards.
                None => unsafe {
                    libc::close(target);
                },
            }
        }
        // Every disposition as the caller's: ignored where it ignores,
        // default elsewhere (this process was started by the daemon, whose
        // posix_spawn leaves glibc's internal signals ignored).
        for sig in 1..=libc::SIGRTMAX() {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            let action = if self.ignored.contains(&sig) {
                libc::SIG_IGN
            } else {
                libc::SIG_DFL
            };
            // SAFETY: SIG_IGN and SIG_DFL install no handler.
            unsafe { libc::signal(sig, action) };
        }
        // The caller's limits where this process may take them (raising a
        // hard limit above the daemon's needs CAP_SYS_RESOURCE, which the
        // standby process used when it had it).
        for &(resource, soft, hard) in &self.rlimits {
            set_rlimit(Pid::from_raw(0), resource, soft, hard);
        }
        // Then the run's own, as a direct run sets them over the caller's.
        workload::set_rlimits(&mut crate::exec::kernel::Host, &self.workload.rlimits)
    }
}
