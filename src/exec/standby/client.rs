//! `cgmgr exec`'s side: ask the daemon for a prepared sandbox, hand it the
//! command, the caller's stdio and attributes, pass signals on, and take
//! the status.

use super::*;
use crate::exec::report::RunReport;

/// `cgmgr exec` through a prepared sandbox of the running daemon: the
/// workload's exit status, or `None` when no sandbox took the request (no
/// daemon, none ready, an older daemon, a daemon that does not answer in
/// time): the caller then runs it itself. Only for runs that use the
/// daemon's policies without changing the sandbox (no `--policies`,
/// `--root`, `--rootfs`, `--ns`, `--hostname`, `--chroot`); the caller
/// checks that.
pub fn try_run(group: &str, flags: &ExecFlags) -> Option<(i32, Option<String>)> {
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
    let started = std::time::Instant::now();
    for sig in taken {
        let signal = sig as i32;
        let _ = send(sock.as_fd(), &ClientMessage::Signal { signal }, &[]);
    }
    Some(match follow(sock.as_fd(), &sfd) {
        Ending::Exit {
            code,
            stderr,
            report,
        } => {
            eprint!("{stderr}");
            (code, report)
        }
        Ending::Failed(why) => (fail(&why), None),
        Ending::Lost(why) => {
            // The command may have run: 125 would say it never did.
            eprintln!("cgmgr: exec: {why}: the run was killed with it (exit {KILLED})");
            let report = RunReport::lost(group, started.elapsed());
            match flags.report {
                Some(report::ReportFormat::Json) => eprintln!("{}", report.json()),
                Some(report::ReportFormat::Text) => eprint!("{}", report.text()),
                None => {}
            }
            (KILLED, Some(report.json()))
        }
    })
}

/// The status of a run killed by SIGKILL (128 + 9).
const KILLED: i32 = 128 + 9;

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
        report_file: flags.report_file.is_some(),
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
        /// The JSON report, when asked for.
        report: Option<String>,
    },
    /// `cgmgr exec` fails (exit 125) with this.
    Failed(String),
    /// The sandbox went away after the command was handed over, without a
    /// status (its init or the sandbox process was killed): the run was
    /// killed with it.
    Lost(String),
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
                Ok(Some((
                    Reply::Exit {
                        code,
                        stderr,
                        report,
                    },
                    _,
                ))) => Ending::Exit {
                    code,
                    stderr,
                    report,
                },
                Ok(Some((Reply::Failed { message }, _))) => Ending::Failed(message),
                Ok(Some(_)) | Err(RecvError::Decode(_)) => {
                    failed("the prepared sandbox's answer is not understood")
                }
                Ok(None) | Err(RecvError::Sys(_)) => Ending::Lost(
                    "the prepared sandbox ended without telling the workload's exit status".into(),
                ),
            };
        }
        if ready(revents[1])
            && let Some(sig) = take_signal(sfd)
            && sig != Signal::SIGCHLD
        {
            let signal = sig as i32;
            if send(sock, &ClientMessage::Signal { signal }, &[]).is_err() {
                return Ending::Lost("lost the prepared sandbox".into());
            }
        }
    }
}

pub(super) fn fail(why: &str) -> i32 {
    eprintln!("cgmgr: exec: {why}");
    125
}

#[cfg(test)]
mod tests {
    use super::super::handover::tests::{Fake, all_closed, pipe, request};
    use super::*;

    /// A signalfd that never reads (no signal in its set): the client's
    /// loops without touching this process's signals.
    fn no_signals() -> SignalFd {
        SignalFd::new(&nix::sys::signal::SigSet::empty()).unwrap()
    }

    /// The daemon's or sandbox's side as a thread: it takes the request
    /// and then does `then` with its socket.
    fn peer(then: impl FnOnce(OwnedFd) + Send + 'static) -> (OwnedFd, std::thread::JoinHandle<()>) {
        let (client, theirs) = seqpacket_pair().unwrap();
        let handle = std::thread::spawn(move || {
            let got = recv::<Request>(theirs.as_fd(), MsgFlags::empty()).unwrap();
            assert_eq!(got.map(|(r, _)| r), Some(request()));
            then(theirs);
        });
        (client, handle)
    }

    fn ask_peer(then: impl FnOnce(OwnedFd) + Send + 'static) -> bool {
        let (client, handle) = peer(then);
        let asked = ask(client.as_fd(), &request(), &no_signals(), &mut Vec::new());
        handle.join().unwrap();
        asked
    }

    /// Only `started` of this protocol is a hand-over: `none`, a peer gone
    /// after the request, a `started` of protocol 2 or another version and
    /// garbage all send `cgmgr exec` to build its own sandbox.
    #[test]
    fn only_a_started_of_this_protocol_is_a_hand_over() {
        let answer = |bytes: Vec<u8>| move |s: OwnedFd| send_bytes(s.as_fd(), &bytes, &[]).unwrap();
        assert!(ask_peer(answer(encode(&Reply::Started).unwrap())));
        let none = Reply::None { why: "x".into() };
        assert!(!ask_peer(answer(encode(&none).unwrap())));
        assert!(!ask_peer(drop));
        assert!(!ask_peer(answer(b"\"started\"".to_vec())));
        assert!(!ask_peer(answer(br#"{"v":4,"type":"started"}"#.to_vec())));
        assert!(!ask_peer(answer(b"garbage".to_vec())));
    }

    /// A peer gone before the request is even sent: no hand-over.
    #[test]
    fn a_daemon_gone_before_the_request_is_no_hand_over() {
        let (client, theirs) = seqpacket_pair().unwrap();
        drop(theirs);
        assert!(!ask(
            client.as_fd(),
            &request(),
            &no_signals(),
            &mut Vec::new()
        ));
    }

    /// The end of a run as the caller sees it: the status and stderr, a
    /// failure's message, or a sandbox that ended without telling.
    #[test]
    fn the_end_of_a_run_is_its_status_or_a_failure() {
        let end = |reply: Option<Reply>| {
            let (client, theirs) = seqpacket_pair().unwrap();
            if let Some(reply) = reply {
                send(theirs.as_fd(), &reply, &[]).unwrap();
            }
            drop(theirs);
            follow(client.as_fd(), &no_signals())
        };
        let exit = Reply::Exit {
            code: 3,
            stderr: "note\n".into(),
            report: Some("{}".into()),
        };
        let ended = Ending::Exit {
            code: 3,
            stderr: "note\n".into(),
            report: Some("{}".into()),
        };
        assert_eq!(end(Some(exit)), ended);
        let failed = Reply::Failed {
            message: "no".into(),
        };
        assert_eq!(end(Some(failed)), Ending::Failed("no".into()));
        let odd = Ending::Failed("the prepared sandbox's answer is not understood".into());
        assert_eq!(end(Some(Reply::Started)), odd);
        let gone = "the prepared sandbox ended without telling the workload's exit status";
        assert_eq!(end(None), Ending::Lost(gone.into()));
    }

    /// The whole protocol between the real client functions and the real
    /// hand-over (its sandbox a fake): asked, started, the stdio passed,
    /// a signal forwarded, the status and stderr returned; the daemon's
    /// end hears `started`, and no stdio descriptor stays open.
    #[test]
    fn a_client_and_a_sandbox_hand_over_a_run_end_to_end() {
        let (client, conn) = seqpacket_pair().unwrap();
        let (daemon, ctl) = seqpacket_pair().unwrap();
        let sandbox = std::thread::spawn(move || {
            let (request, _) = recv::<Request>(conn.as_fd(), MsgFlags::empty())
                .unwrap()
                .unwrap();
            let mut fake = Fake::default();
            hand_over(ctl.as_fd(), &conn, &request, &mut fake).unwrap();
            fake
        });
        let sfd = no_signals();
        assert!(ask(client.as_fd(), &request(), &sfd, &mut Vec::new()));
        let (read, write) = pipe();
        send_stdio(
            client.as_fd(),
            [Some(write.as_fd()), None, Some(write.as_fd())],
        )
        .unwrap();
        drop(write);
        let signal = Signal::SIGTERM as i32;
        send(client.as_fd(), &ClientMessage::Signal { signal }, &[]).unwrap();
        let ended = Ending::Exit {
            code: 143,
            stderr: "terminated\n".into(),
            report: None,
        };
        assert_eq!(follow(client.as_fd(), &sfd), ended);
        let fake = sandbox.join().unwrap();
        let (job, passed) = fake.started.unwrap();
        assert_eq!((job.stdio, passed), ([true, false, true], 2));
        let word = recv_without_fds::<Word>(daemon.as_fd(), MsgFlags::MSG_DONTWAIT);
        assert_eq!(word.unwrap(), Some(Word::Started));
        assert!(all_closed(&read));
    }

    /// A decline end to end: the client's `ask` is false (it builds its
    /// own sandbox) and nothing started.
    #[test]
    fn a_declined_request_sends_the_client_to_build_its_own() {
        let (client, conn) = seqpacket_pair().unwrap();
        let (_daemon, ctl) = seqpacket_pair().unwrap();
        let sandbox = std::thread::spawn(move || {
            let (request, _) = recv::<Request>(conn.as_fd(), MsgFlags::empty())
                .unwrap()
                .unwrap();
            let mut fake = Fake {
                refuse: Some("stale".into()),
                ..Fake::default()
            };
            hand_over(ctl.as_fd(), &conn, &request, &mut fake).unwrap();
            fake
        });
        assert!(!ask(
            client.as_fd(),
            &request(),
            &no_signals(),
            &mut Vec::new()
        ));
        let fake = sandbox.join().unwrap();
        assert!(fake.started.is_none() && fake.discarded);
    }
}
