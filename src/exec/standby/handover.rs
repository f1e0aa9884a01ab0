//! A prepared sandbox's side of the conversation: the request the daemon
//! passes on its control socket, then the caller on the connection that
//! came with it (`started`, the stdio, signals, the status). The steps that
//! need root (starting the command, supervising it) are a [`Sandbox`]'s,
//! so the conversation itself is tested in-process over socketpairs.

use super::*;

/// A request with its connection, as the daemon passed it.
pub(super) type Handed = (Request, OwnedFd);

/// What came on the control socket.
#[derive(Debug)]
pub(super) enum Handing {
    /// A request and its connection.
    Handed(Box<Handed>),
    /// Not a request with exactly one descriptor (garbage, another
    /// version: the daemon is this binary, so neither comes from it); its
    /// descriptors are closed.
    Ignored,
    /// The daemon closed the socket, or it failed: the standby ends.
    Gone,
}

/// Takes the next message the daemon sent on `ctl` (without waiting).
pub(super) fn take_handed(ctl: BorrowedFd<'_>) -> Handing {
    match recv::<Request>(ctl, MsgFlags::MSG_DONTWAIT) {
        Ok(Some((request, fds))) => match <[OwnedFd; 1]>::try_from(fds) {
            Ok([conn]) => Handing::Handed(Box::new((request, conn))),
            Err(_) => Handing::Ignored,
        },
        Err(RecvError::Decode(_)) => Handing::Ignored,
        Ok(None) | Err(RecvError::Sys(_)) => Handing::Gone,
    }
}

/// Why a sandbox does not take a request (the caller builds its own).
#[derive(Debug, thiserror::Error)]
pub(super) enum Declined {
    /// What the sandbox was built from is no longer what the policy says.
    #[error("the rootfs or seccomp profile changed since this sandbox was built")]
    Changed,
    /// The request does not fit the sandbox (group, protocol, command).
    #[error(transparent)]
    Request(#[from] ExecError),
}

/// How a served run ended, as its caller learns it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct Ended {
    /// The exit status.
    pub code: i32,
    /// What the caller prints on stderr.
    pub stderr: String,
    /// The JSON report, when asked for (`--report-file`).
    pub report: Option<String>,
}

/// The steps of a hand-over that are the sandbox's own (privileged).
pub(super) trait Sandbox {
    /// The job for `request`, or why this sandbox does not take it (the
    /// caller is then told `none` and builds its own).
    fn accept(&mut self, request: &Request) -> Result<Job, Declined>;
    /// Starts `job` with the caller's `stdio` and attributes.
    fn start(&mut self, request: &Request, job: &Job, stdio: Vec<OwnedFd>)
    -> Result<(), ExecError>;
    /// Follows the run to its end (the caller's signals passed on, its
    /// going away ending the run): the status and what the caller prints.
    fn follow(&mut self, conn: &OwnedFd) -> Ended;
    /// Ends the sandbox without a run.
    fn discard(&mut self);
}

/// Serves `request`, passed with `conn` by the daemon on `ctl`: tells the
/// caller `started`, takes its stdio, runs the command and tells the
/// status; or tells `none` (nothing ran: the caller builds its own) or
/// `failed`. The daemon hears on `ctl` whether the run was taken.
pub(super) fn hand_over(
    ctl: BorrowedFd<'_>,
    conn: &OwnedFd,
    request: &Request,
    sandbox: &mut impl Sandbox,
) -> Result<(), ExecError> {
    let mut job = match sandbox.accept(request) {
        Ok(job) => job,
        Err(why) => {
            let why = why.to_string();
            return end_unrun(ctl, conn, Reply::None { why }, sandbox);
        }
    };
    // The daemon's listener refuses descriptors (see `set_pass_rights`);
    // this connection takes the caller's stdio.
    set_pass_rights(conn.as_fd(), true);
    let _ = send(conn.as_fd(), &Reply::Started, &[]);
    let (open, stdio) = match receive_stdio(conn) {
        Ok(Some(received)) => received,
        Ok(None) => {
            let why = String::new();
            return end_unrun(ctl, conn, Reply::None { why }, sandbox);
        }
        Err(e) => {
            let message = e.to_string();
            return end_unrun(ctl, conn, Reply::Failed { message }, sandbox);
        }
    };
    job.stdio = open;
    sandbox.start(request, &job, stdio)?;
    let _ = send(ctl, &Word::Started, &[]);
    let Ended {
        code,
        stderr,
        report,
    } = sandbox.follow(conn);
    let _ = send(
        conn.as_fd(),
        &Reply::Exit {
            code,
            stderr,
            report,
        },
        &[],
    );
    Ok(())
}

/// Tells the daemon and the caller how a hand-over ended without a run,
/// and ends the sandbox.
fn end_unrun(
    ctl: BorrowedFd<'_>,
    conn: &OwnedFd,
    reply: Reply,
    sandbox: &mut impl Sandbox,
) -> Result<(), ExecError> {
    // The daemon counts by this word whether a sandbox served the run.
    let word = if matches!(reply, Reply::None { .. }) {
        Word::Declined
    } else {
        Word::Started
    };
    let _ = send(ctl, &word, &[]);
    let _ = send(conn.as_fd(), &reply, &[]);
    sandbox.discard();
    Ok(())
}

/// The job for the workload, once the request is checked as `cgmgr exec`
/// checks its own command line (and found to fit in one message).
pub(super) fn check_request(spec: &ExecSpec, request: &Request) -> Result<Job, ExecError> {
    if request.v != PROTOCOL || request.group != spec.group.as_str() {
        return Err(ExecError::Invalid("a request for another sandbox".into()));
    }
    if request.argv.is_empty() {
        return Err(ExecError::Invalid("no command".into()));
    }
    let env = merge_env(spec.workload.env.clone(), &request.env)?;
    let job = Job {
        argv: request.argv.clone(),
        env,
        stdio: [false; 3],
        ignored: request.ignored.clone(),
        rlimits: request.attrs.rlimits.clone(),
    };
    if encode(&job).map_or(true, |b| b.len() > MAX_MESSAGE) {
        let why = "the command and environment are too large to hand over";
        return Err(ExecError::Invalid(why.into()));
    }
    Ok(job)
}

/// Which of the caller's stdin, stdout, stderr are open, and those.
pub(super) type CallerStdio = ([bool; 3], Vec<OwnedFd>);

/// Waits (at most [`FIRST_ANSWER`]) for the caller's stdio after
/// `started`, and checks it as `cgmgr exec` checks its own. `Ok(None)`: the
/// caller is gone (nothing is started).
pub(super) fn receive_stdio(conn: &OwnedFd) -> Result<Option<CallerStdio>, ExecError> {
    let waited = wait_any(&[conn.as_fd()], Some(FIRST_ANSWER)).map_err(sys("poll"))?;
    if !waited.is_some_and(|r| ready(r[0])) {
        return Ok(None);
    }
    let (open, fds) = match recv::<ClientMessage>(conn.as_fd(), MsgFlags::MSG_DONTWAIT) {
        Ok(Some((ClientMessage::Stdio { open }, fds))) => (open, fds),
        Ok(None) | Err(RecvError::Sys(_)) => return Ok(None),
        Ok(Some((ClientMessage::Signal { .. }, _))) | Err(RecvError::Decode(_)) => {
            return Err(ExecError::Invalid("expected the caller's stdio".into()));
        }
    };
    let announced = open.iter().filter(|&&b| b).count();
    if announced != fds.len() {
        return Err(ExecError::Invalid(format!(
            "{announced} standard descriptors announced, {} received",
            fds.len()
        )));
    }
    let mut passed = fds.iter();
    let borrowed = open.map(|o| {
        if o {
            passed.next().map(AsFd::as_fd)
        } else {
            None
        }
    });
    workload::check_stdio(borrowed)?;
    Ok(Some((open, fds)))
}

/// What the caller did while its run lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CallerEvent {
    /// It passed on a signal the run forwards.
    Signal(Signal),
    /// Nothing to act on (no message yet, garbage, a signal not forwarded).
    Nothing,
    /// It went away: the run ends, as `cgmgr exec`'s death ends its own.
    Gone,
}

/// Reads what the caller sent on `conn` (without waiting).
pub(super) fn caller_event(conn: BorrowedFd<'_>) -> CallerEvent {
    match recv::<ClientMessage>(conn, MsgFlags::MSG_DONTWAIT) {
        Ok(Some((ClientMessage::Signal { signal }, _))) => match Signal::try_from(signal) {
            Ok(sig) if init::FORWARDED.contains(&sig) => CallerEvent::Signal(sig),
            _ => CallerEvent::Nothing,
        },
        Ok(Some(_)) | Err(RecvError::Decode(_) | RecvError::Sys(Errno::EAGAIN)) => {
            CallerEvent::Nothing
        }
        Ok(None) | Err(RecvError::Sys(_)) => CallerEvent::Gone,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A sandbox without root: it records what the hand-over asked of it;
    /// its "run" ends with 143 on the caller's SIGTERM, or 137 when the
    /// caller goes away (as the real one kills the run then).
    #[derive(Default)]
    pub(in super::super) struct Fake {
        pub refuse: Option<String>,
        pub started: Option<(Job, usize)>,
        pub signals: Vec<Signal>,
        pub caller_gone: bool,
        pub discarded: bool,
    }

    impl Sandbox for Fake {
        fn accept(&mut self, request: &Request) -> Result<Job, Declined> {
            match self.refuse.clone() {
                Some(why) => Err(Declined::Request(ExecError::Invalid(why))),
                None => Ok(Job {
                    argv: request.argv.clone(),
                    env: Vec::new(),
                    stdio: [false; 3],
                    ignored: request.ignored.clone(),
                    rlimits: Vec::new(),
                }),
            }
        }

        fn start(&mut self, _: &Request, job: &Job, stdio: Vec<OwnedFd>) -> Result<(), ExecError> {
            self.started = Some((job.clone(), stdio.len()));
            Ok(())
        }

        fn follow(&mut self, conn: &OwnedFd) -> Ended {
            let ended = |code, stderr: &str| Ended {
                code,
                stderr: stderr.into(),
                report: None,
            };
            loop {
                let waited = wait_any(&[conn.as_fd()], Some(Duration::from_secs(5)));
                assert!(matches!(waited, Ok(Some(_))), "the caller said nothing");
                match caller_event(conn.as_fd()) {
                    CallerEvent::Signal(Signal::SIGTERM) => return ended(143, "terminated\n"),
                    CallerEvent::Signal(sig) => self.signals.push(sig),
                    CallerEvent::Nothing => {}
                    CallerEvent::Gone => {
                        self.caller_gone = true;
                        return ended(137, "");
                    }
                }
            }
        }

        fn discard(&mut self) {
            self.discarded = true;
        }
    }

    pub(in super::super) fn request() -> Request {
        Request {
            v: PROTOCOL,
            group: "sb".into(),
            argv: vec!["/bin/true".into()],
            env: Vec::new(),
            report: None,
            report_file: false,
            ignored: Vec::new(),
            attrs: Attributes::default(),
        }
    }

    /// A pipe (close-on-exec, non-blocking): a descriptor to pass around
    /// whose read end tells whether any copy of the write end is still
    /// open anywhere (a leak), robust against the other tests' descriptors.
    pub(in super::super) fn pipe() -> (OwnedFd, OwnedFd) {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK).unwrap()
    }

    /// True once every copy of the pipe's write end is closed.
    pub(in super::super) fn all_closed(read: &OwnedFd) -> bool {
        matches!(nix::unistd::read(read, &mut [0u8; 8]), Ok(0))
    }

    /// The sockets of one hand-over: the daemon's and the sandbox's ends
    /// of the control socket, the caller's and the sandbox's of the
    /// connection.
    struct Sockets {
        daemon: OwnedFd,
        ctl: OwnedFd,
        caller: OwnedFd,
        conn: OwnedFd,
    }

    fn sockets() -> Sockets {
        let (daemon, ctl) = seqpacket_pair().unwrap();
        let (caller, conn) = seqpacket_pair().unwrap();
        Sockets {
            daemon,
            ctl,
            caller,
            conn,
        }
    }

    fn serve(s: &Sockets, fake: &mut Fake) {
        hand_over(s.ctl.as_fd(), &s.conn, &request(), fake).unwrap();
    }

    fn replies(caller: &OwnedFd) -> Vec<Reply> {
        std::iter::from_fn(
            || match recv::<Reply>(caller.as_fd(), MsgFlags::MSG_DONTWAIT) {
                Ok(Some((reply, fds))) => {
                    assert!(fds.is_empty());
                    Some(reply)
                }
                _ => None,
            },
        )
        .collect()
    }

    fn words(daemon: &OwnedFd) -> Vec<Word> {
        std::iter::from_fn(|| {
            recv_without_fds::<Word>(daemon.as_fd(), MsgFlags::MSG_DONTWAIT).ok()?
        })
        .collect()
    }

    fn stdio_message(open: [bool; 3]) -> ClientMessage {
        ClientMessage::Stdio { open }
    }

    /// The whole conversation: `started`, the stdio (two descriptors),
    /// a forwarded signal, the status and stderr; the daemon hears
    /// `started`; the stdio passed is closed once the run has it.
    #[test]
    fn a_hand_over_starts_the_run_and_tells_its_status_and_stderr() {
        let s = sockets();
        let (read, write) = pipe();
        let fds = [write.as_fd(), write.as_fd()];
        send(s.caller.as_fd(), &stdio_message([true, false, true]), &fds).unwrap();
        drop(write);
        let signal = Signal::SIGINT as i32;
        send(s.caller.as_fd(), &ClientMessage::Signal { signal }, &[]).unwrap();
        let signal = Signal::SIGTERM as i32;
        send(s.caller.as_fd(), &ClientMessage::Signal { signal }, &[]).unwrap();
        let mut fake = Fake::default();
        serve(&s, &mut fake);
        let exit = Reply::Exit {
            code: 143,
            stderr: "terminated\n".into(),
            report: None,
        };
        assert_eq!(replies(&s.caller), [Reply::Started, exit]);
        assert_eq!(words(&s.daemon), [Word::Started]);
        let (job, passed) = fake.started.unwrap();
        assert_eq!((job.stdio, passed), ([true, false, true], 2));
        assert_eq!(fake.signals, [Signal::SIGINT]);
        assert!(!fake.discarded && !fake.caller_gone);
        assert!(all_closed(&read), "a stdio descriptor was kept");
    }

    /// A sandbox that does not take the request says `none` (first and
    /// only), tells the daemon `declined`, and starts nothing.
    #[test]
    fn a_declined_request_is_answered_none_and_starts_nothing() {
        let s = sockets();
        let mut fake = Fake {
            refuse: Some("stale".into()),
            ..Fake::default()
        };
        serve(&s, &mut fake);
        let none = Reply::None {
            why: "stale".into(),
        };
        assert_eq!(replies(&s.caller), [none]);
        assert_eq!(words(&s.daemon), [Word::Declined]);
        assert!(fake.started.is_none() && fake.discarded);
    }

    /// A caller gone before the sandbox answered (after its request, which
    /// the daemon passed on) starts nothing: `declined`.
    #[test]
    fn a_caller_gone_after_its_request_starts_nothing() {
        let s = sockets();
        drop(s.caller);
        let mut fake = Fake::default();
        hand_over(s.ctl.as_fd(), &s.conn, &request(), &mut fake).unwrap();
        assert_eq!(words(&s.daemon), [Word::Declined]);
        assert!(fake.started.is_none() && fake.discarded);
    }

    /// A caller gone after `started`, before its stdio, starts nothing.
    #[test]
    fn a_caller_gone_after_started_starts_nothing() {
        let s = sockets();
        let caller = s.caller;
        let client = std::thread::spawn(move || {
            let got = recv::<Reply>(caller.as_fd(), MsgFlags::empty()).unwrap();
            assert_eq!(got.map(|(r, _)| r), Some(Reply::Started));
            drop(caller);
        });
        let mut fake = Fake::default();
        hand_over(s.ctl.as_fd(), &s.conn, &request(), &mut fake).unwrap();
        client.join().unwrap();
        assert_eq!(words(&s.daemon), [Word::Declined]);
        assert!(fake.started.is_none() && fake.discarded);
    }

    /// A caller gone right after its stdio: the run starts (the stdio
    /// came) and ends at once for the caller's going; its stdio is closed.
    #[test]
    fn a_caller_gone_after_its_stdio_ends_the_run() {
        let s = sockets();
        let (read, write) = pipe();
        send(
            s.caller.as_fd(),
            &stdio_message([true; 3]),
            &[write.as_fd(); 3],
        )
        .unwrap();
        drop((write, s.caller));
        let mut fake = Fake::default();
        hand_over(s.ctl.as_fd(), &s.conn, &request(), &mut fake).unwrap();
        assert_eq!(words(&s.daemon), [Word::Started]);
        assert_eq!(fake.started.map(|(_, n)| n), Some(3));
        assert!(fake.caller_gone);
        assert!(all_closed(&read));
    }

    /// A caller gone during the run (after passing a signal) ends it.
    #[test]
    fn a_caller_gone_during_the_run_ends_it() {
        let s = sockets();
        let caller = s.caller;
        let client = std::thread::spawn(move || {
            let got = recv::<Reply>(caller.as_fd(), MsgFlags::empty()).unwrap();
            assert_eq!(got.map(|(r, _)| r), Some(Reply::Started));
            send(caller.as_fd(), &stdio_message([false; 3]), &[]).unwrap();
            let signal = Signal::SIGHUP as i32;
            send(caller.as_fd(), &ClientMessage::Signal { signal }, &[]).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            drop(caller);
        });
        let mut fake = Fake::default();
        hand_over(s.ctl.as_fd(), &s.conn, &request(), &mut fake).unwrap();
        client.join().unwrap();
        assert_eq!(words(&s.daemon), [Word::Started]);
        assert_eq!(fake.signals, [Signal::SIGHUP]);
        assert!(fake.caller_gone && fake.started.is_some());
    }

    /// Stdio that is not what it announces, or no stdio message at all,
    /// fails the run before it starts (exit 125 for the caller), and the
    /// descriptors that came are closed.
    #[test]
    fn stdio_that_does_not_match_its_announcement_fails_the_run() {
        let cases: [(&[u8], usize, &str); 3] = [
            (
                br#"{"v":3,"type":"stdio","open":[true,true,true]}"#,
                1,
                "3 standard descriptors announced, 1 received",
            ),
            (
                br#"{"v":3,"type":"signal","signal":15}"#,
                0,
                "expected the caller's stdio",
            ),
            (b"garbage", 2, "expected the caller's stdio"),
        ];
        for (bytes, n, message) in cases {
            let s = sockets();
            let (read, write) = pipe();
            send_bytes(s.caller.as_fd(), bytes, &vec![write.as_fd(); n]).unwrap();
            drop(write);
            let mut fake = Fake::default();
            serve(&s, &mut fake);
            let failed = Reply::Failed {
                message: message.into(),
            };
            assert_eq!(replies(&s.caller), [Reply::Started, failed]);
            assert!(fake.started.is_none() && fake.discarded);
            assert!(all_closed(&read), "{message}: a descriptor was kept");
        }
    }

    /// On the control socket: a request with its one connection is taken;
    /// with no descriptor, with two, of another version, or garbage it is
    /// ignored and whatever came with it closed; the daemon gone ends it.
    #[test]
    fn only_a_request_with_exactly_one_connection_is_taken() {
        let (daemon, ctl) = seqpacket_pair().unwrap();
        let good = encode(&request()).unwrap();
        let old = serde_json::to_vec(&Request { v: 2, ..request() }).unwrap();
        let (read, write) = pipe();
        for (bytes, n) in [(&good, 0), (&good, 2), (&old, 1), (&b"{".to_vec(), 1)] {
            send_bytes(daemon.as_fd(), bytes, &vec![write.as_fd(); n]).unwrap();
            assert!(matches!(take_handed(ctl.as_fd()), Handing::Ignored));
        }
        send_bytes(daemon.as_fd(), &good, &[write.as_fd()]).unwrap();
        drop(write);
        assert!(!all_closed(&read), "a copy travels");
        let Handing::Handed(handed) = take_handed(ctl.as_fd()) else {
            panic!("not taken");
        };
        assert_eq!(handed.0, request());
        drop(handed);
        assert!(
            all_closed(&read),
            "a descriptor of an ignored message was kept"
        );
        drop(daemon);
        assert!(matches!(take_handed(ctl.as_fd()), Handing::Gone));
    }

    /// What the caller says during the run: forwarded signals only; a
    /// closed connection is its going away.
    #[test]
    fn only_forwarded_signals_and_the_caller_s_going_count_during_the_run() {
        let (caller, conn) = seqpacket_pair().unwrap();
        assert_eq!(caller_event(conn.as_fd()), CallerEvent::Nothing);
        for (signal, event) in [
            (Signal::SIGTERM as i32, CallerEvent::Signal(Signal::SIGTERM)),
            (Signal::SIGKILL as i32, CallerEvent::Nothing),
            (9999, CallerEvent::Nothing),
        ] {
            send(caller.as_fd(), &ClientMessage::Signal { signal }, &[]).unwrap();
            assert_eq!(caller_event(conn.as_fd()), event, "{signal}");
        }
        send_bytes(
            caller.as_fd(),
            br#"{"v":2,"type":"signal","signal":15}"#,
            &[],
        )
        .unwrap();
        assert_eq!(caller_event(conn.as_fd()), CallerEvent::Nothing);
        drop(caller);
        assert_eq!(caller_event(conn.as_fd()), CallerEvent::Gone);
    }
}
