//! A minimal init for PID 1 of the sandbox's PID namespace: it forwards
//! signals to the workload, reaps every orphan, and exits with the
//! workload's status, upon which the kernel kills whatever is left in the
//! namespace.

use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// Signals passed on to the workload (the ones `cgmgr exec` itself forwards).
pub const FORWARDED: [Signal; 7] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// The signal set init waits on: the forwarded ones and SIGCHLD.
pub fn signal_set() -> SigSet {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    set.add(Signal::SIGCHLD);
    set
}

/// Blocks init's signals, so they queue for `sigwait` (blocked signals are
/// never discarded, even for a PID 1 without handlers). Call before forking
/// the workload so none is lost; the workload unblocks them before execve.
pub fn block_signals() -> nix::Result<()> {
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&signal_set()), None)
}

/// Puts `sig` back to its default action. For dispositions inherited from
/// whoever started cgmgr (or set by the Rust runtime), which survive fork
/// and execve.
pub fn restore_default_action(sig: Signal) -> nix::Result<()> {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, sigaction};
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    // SAFETY: SIG_DFL installs no handler, so no code runs in signal context.
    unsafe { sigaction(sig, &default) }.map(|_| ())
}

/// The exit status for a wait status, as a shell reports it.
pub fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

/// Runs until `workload` exits; returns its exit status.
pub fn run(workload: Pid) -> i32 {
    let set = signal_set();
    loop {
        let Ok(sig) = set.wait() else { continue };
        if sig != Signal::SIGCHLD {
            let _ = kill(workload, sig);
            continue;
        }
        if let Some(code) = reap(workload) {
            return code;
        }
    }
}

/// Reaps every exited child; the workload's status if it was among them.
fn reap(workload: Pid) -> Option<i32> {
    let mut result = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return result,
            Ok(status) if status.pid() == Some(workload) => {
                if let Some(code) = exit_code(status) {
                    result = Some(code);
                }
            }
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell() {
        let pid = Pid::from_raw(2);
        assert_eq!(exit_code(WaitStatus::Exited(pid, 3)), Some(3));
        assert_eq!(
            exit_code(WaitStatus::Signaled(pid, Signal::SIGKILL, false)),
            Some(137)
        );
        assert_eq!(
            exit_code(WaitStatus::Signaled(pid, Signal::SIGTERM, true)),
            Some(143)
        );
        assert_eq!(exit_code(WaitStatus::StillAlive), None);
    }
}
