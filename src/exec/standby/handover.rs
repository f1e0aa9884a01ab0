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

/// The steps of a hand-over that are the sandbox's own (privileged).
pub(super) trait Sandbox {
    /// The job for `request`, or why this sandbox does not take it (the
    /// caller is then told `none` and builds its own).
    fn accept(&mut self, request: &Request) -> Result<Job, String>;
    /// Starts `job` with the caller's `stdio` and attributes.
    fn start(&mut self, request: &Request, job: &Job, stdio: Vec<OwnedFd>)
    -> Result<(), ExecError>;
    /// Follows the run to its end (the caller's signals passed on, its
    /// going away ending the run): the status and what the caller prints.
    fn follow(&mut self, conn: &OwnedFd) -> (i32, String);
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
        Err(why) => return end_unrun(ctl, conn, Reply::None { why }, sandbox),
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
    let (code, stderr) = sandbox.follow(conn);
    let _ = send(conn.as_fd(), &Reply::Exit { code, stderr }, &[]);
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
