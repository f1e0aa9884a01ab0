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
    let request = request_for(group, flags);
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
    if !ask(sock.as_fd(), &request, &sfd, &mut taken) {
        // Signals taken meanwhile are raised again: blocked, they stay
        // pending for the run `cgmgr exec` builds itself.
        for sig in taken {
            let _ = nix::sys::signal::raise(sig);
        }
        return None;
    }
    // Nothing runs before the stdio came: built here instead.
    send_stdio(sock.as_fd(), own_stdio()).ok()?;
    for sig in taken {
        let signal = sig as i32;
        let _ = send(sock.as_fd(), &ClientMessage::Signal { signal }, &[]);
    }
    Some(match follow(sock.as_fd(), &sfd) {
        Ending::Exit { code, stderr } => {
            eprint!("{stderr}");
            code
        }
        Ending::Failed(why) => fail(&why),
    })
}

/// The request for `flags`' command in a sandbox of `group`, with this
/// process's ignored signals and attributes.
fn request_for(group: &str, flags: &ExecFlags) -> Request {
    Request {
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
    }
}

/// This process's stdin, stdout, stderr: those that are open.
fn own_stdio() -> [Option<BorrowedFd<'static>>; 3] {
    [0, 1, 2].map(|fd| {
        // SAFETY: F_GETFD only asks whether the descriptor is open.
        let open = unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 };
        // SAFETY: the descriptor is open, and nothing in `cgmgr exec`
        // closes its standard descriptors while it asks for a sandbox.
        open.then(|| unsafe { BorrowedFd::borrow_raw(fd) })
    })
}

/// Sends the request and waits for a prepared sandbox to take it: true
/// once one said `started`; false when the daemon answered `none`, closed,
/// or said nothing within [`FIRST_ANSWER`] (no sandbox starts the command
/// after that: it waits for the stdio sent only after `started`). Signals
/// received meanwhile are put in `taken`.
pub(super) fn ask(
    sock: BorrowedFd<'_>,
    request: &Request,
    sfd: &SignalFd,
    taken: &mut Vec<Signal>,
) -> bool {
    if send(sock, request, &[]).is_err() {
        return false;
    }
    let deadline = Instant::now() + FIRST_ANSWER;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some(revents)) = wait_any(&[sock, sfd.as_fd()], Some(left)) else {
            return false;
        };
        if ready(revents[0]) {
            // Another version (an older daemon), `none`, garbage: no.
            return matches!(
                recv::<Reply>(sock, MsgFlags::empty()),
                Ok(Some((Reply::Started, _)))
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

/// Hands the sandbox that took the request the caller's `stdio` (those
/// that are open).
pub(super) fn send_stdio(
    sock: BorrowedFd<'_>,
    stdio: [Option<BorrowedFd<'_>>; 3],
) -> Result<(), Errno> {
    let open = stdio.map(|fd| fd.is_some());
    let fds: Vec<BorrowedFd<'_>> = stdio.into_iter().flatten().collect();
    send(sock, &ClientMessage::Stdio { open }, &fds)
}

/// How a run a prepared sandbox took ended, for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Ending {
    /// The workload's status and what `cgmgr exec` prints.
    Exit {
        /// The status.
        code: i32,
        /// The report or the limit notes.
        stderr: String,
    },
    /// `cgmgr exec` fails (exit 125) with this.
    Failed(String),
}

/// Passes signals on and waits for the end of a run a prepared sandbox
/// took.
pub(super) fn follow(sock: BorrowedFd<'_>, sfd: &SignalFd) -> Ending {
    let failed = |why: &str| Ending::Failed(why.to_string());
    loop {
        let revents = match wait_any(&[sock, sfd.as_fd()], None) {
            Ok(Some(revents)) => revents,
            Ok(None) => continue,
            Err(e) => return failed(&format!("waiting for the prepared sandbox: {e}")),
        };
        if ready(revents[0]) {
            return match recv::<Reply>(sock, MsgFlags::empty()) {
                Ok(Some((Reply::Exit { code, stderr }, _))) => Ending::Exit { code, stderr },
                Ok(Some((Reply::Failed { message }, _))) => Ending::Failed(message),
                Ok(Some(_)) | Err(RecvError::Decode(_)) => {
                    failed("the prepared sandbox's answer is not understood")
                }
                Ok(None) | Err(RecvError::Sys(_)) => {
                    failed("the prepared sandbox ended without telling the workload's exit status")
                }
            };
        }
        if ready(revents[1])
            && let Some(sig) = take_signal(sfd)
            && sig != Signal::SIGCHLD
        {
            let signal = sig as i32;
            if send(sock, &ClientMessage::Signal { signal }, &[]).is_err() {
                return failed("lost the prepared sandbox");
            }
        }
    }
}

pub(super) fn fail(why: &str) -> i32 {
    eprintln!("cgmgr: exec: {why}");
    125
}
