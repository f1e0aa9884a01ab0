//! Prepared sandboxes: runs whose sandbox is built before their command is
//! known, so that `cgmgr exec` only hands over the command.
//!
//! A group whose `[exec]` table says `standby = N` gets N of them from the
//! daemon. Each is an ordinary run ([`super::run`]'s run group, id lease,
//! namespaces, root, masks, quotas, keyring) made by a `cgmgr standby`
//! process that the daemon starts (at nice 19: built with what the runs leave);
//! its init forks the workload, which takes every step before `execve` but
//! the seccomp filters and waits on a socket. `cgmgr exec --group G -- CMD` with
//! the daemon's policies asks the daemon (`exec.sock` beside its record)
//! for a ready one; the daemon passes the connection to it, the standby
//! process then serves that one command exactly as `cgmgr exec` would and
//! exits, and the daemon builds the next. Without a ready sandbox the
//! answer is `none` and `cgmgr exec` builds its own, as without a daemon.
//!
//! What a run gets does not depend on the way it took: the command, the
//! `--env` additions, `--report`, the caller's stdin/stdout/stderr (checked
//! as `cgmgr exec` checks its own), its resource limits, nice value,
//! `oom_score_adj`, CPU affinity and ignored signals; the caller's
//! forwarded signals travel over the connection; a caller that goes away
//! (even by SIGKILL) ends the run, as `cgmgr exec`'s death ends its own.
//!
//! The namespaces are held by the standby process until the caller is told
//! the status, so init's exit does not wait for their teardown.
//!
//! Everything travels as one JSON object per `SOCK_SEQPACKET` message,
//! descriptors as `SCM_RIGHTS`.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixAddr,
    connect, recvmsg, sendmsg, socket,
};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::error::{ExecError, sys};
use super::workload::{self, Workload};
use super::{ExecFlags, ExecSpec, Namespace, Supervision, init, report};
use super::{run_group, start_child};
use crate::cgroup::{CgroupRoot, GroupName};

/// Version of the messages below; a daemon answers `none` to another.
pub const PROTOCOL: u32 = 2;

/// The largest message accepted (argv and environment included); a larger
/// request is run by `cgmgr exec` itself.
const MAX_MESSAGE: usize = 256 * 1024;

/// How long `cgmgr exec` waits for the daemon's first answer.
const FIRST_ANSWER: Duration = Duration::from_secs(10);

/// The daemon's socket for prepared sandboxes: `exec.sock` beside its record.
pub fn socket_path() -> PathBuf {
    crate::runtime::exec_socket_path()
}

/// What `cgmgr exec` asks for: everything of a run that is not the sandbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// [`PROTOCOL`].
    pub v: u32,
    /// The group, as typed.
    pub group: String,
    /// The command.
    pub argv: Vec<String>,
    /// `--env K=V`, as typed.
    pub env: Vec<String>,
    /// `--report`: "text" or "json".
    pub report: Option<String>,
    /// The signals the caller ignores (the workload ignores them too).
    pub ignored: Vec<i32>,
    /// The caller's process attributes the workload inherits.
    pub attrs: Attributes,
}

/// A process's attributes that a workload inherits from `cgmgr exec`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Attributes {
    /// `(resource, soft, hard)` for every resource limit.
    pub rlimits: Vec<(u32, u64, u64)>,
    /// The nice value.
    pub nice: i32,
    /// `/proc/self/oom_score_adj`.
    pub oom_score_adj: Option<i32>,
    /// The CPUs it may run on.
    pub cpus: Vec<usize>,
    /// The scheduling policy and its priority (`sched_getscheduler`).
    pub sched: Option<(i32, i32)>,
    /// The I/O priority (`ioprio_get`).
    pub ioprio: Option<i32>,
}

/// The daemon's or the standby's answer to `cgmgr exec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// No prepared sandbox: build one yourself.
    None {
        /// Why, for `CGMGR_DEBUG`-style troubleshooting.
        why: String,
    },
    /// A prepared sandbox took the request.
    Started,
    /// The run is over and ended; `stderr` is what `cgmgr exec` prints.
    Exit {
        /// The workload's exit status.
        code: i32,
        /// The report or the limit notes.
        stderr: String,
    },
    /// The request was refused before the workload ran (exit 125).
    Failed {
        /// Why.
        message: String,
    },
}

/// What `cgmgr exec` sends once a prepared sandbox has taken its request.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientMessage {
    /// Its stdin, stdout, stderr: which were open (those come with the
    /// message, in order). Sent to the sandbox, never through the daemon
    /// (closing a descriptor of a hung file system can block the closer),
    /// and the command starts only once they came: a caller that is gone
    /// by then starts nothing.
    Stdio([bool; 3]),
    /// A signal `cgmgr exec` received, to pass on.
    Signal(i32),
}

/// What the daemon asks its builder for: a sandbox of `group`, whose
/// control socket comes with the message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildRequest {
    /// The group, as the daemon names it.
    pub group: String,
    /// [`crate::policy::ExecConfig::digest`] of the group's `[exec]` table
    /// as the daemon loaded it: the builder builds from that table only.
    pub config: u64,
}

/// What the standby process hands its init.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Job {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    stdio: [bool; 3],
    ignored: Vec<i32>,
    rlimits: Vec<(u32, u64, u64)>,
}

// ---------------------------------------------------------------- wire

/// Sends one message with `fds` attached.
pub fn send(sock: BorrowedFd<'_>, bytes: &[u8], fds: &[RawFd]) -> Result<(), Errno> {
    let iov = [IoSlice::new(bytes)];
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &rights };
    sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None).map(|_| ())
}

/// Sends one JSON message.
pub fn send_json(sock: BorrowedFd<'_>, value: &impl Serialize, fds: &[RawFd]) -> Result<(), Errno> {
    let bytes = serde_json::to_vec(value).map_err(|_| Errno::EINVAL)?;
    send(sock, &bytes, fds)
}

/// The size of the next message, without taking it (a peek with
/// `MSG_TRUNC` answers it), so a buffer is no larger than the message.
fn next_size(sock: BorrowedFd<'_>, flags: MsgFlags) -> Result<usize, Errno> {
    nix::sys::socket::recv(
        sock.as_raw_fd(),
        &mut [],
        flags | MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC,
    )
}

/// One message: its bytes and the descriptors that came with it.
pub type Message = (Vec<u8>, Vec<OwnedFd>);

/// One message (its descriptors close-on-exec); `None` at the end of the
/// stream. A message larger than [`MAX_MESSAGE`] is `EMSGSIZE`.
pub fn recv(sock: BorrowedFd<'_>, flags: MsgFlags) -> Result<Option<Message>, Errno> {
    let size = next_size(sock, flags)?;
    if size > MAX_MESSAGE {
        return Err(Errno::EMSGSIZE);
    }
    let mut buf = vec![0u8; size.max(1)];
    // Room for the most descriptors one message can carry (SCM_MAX_FD),
    // so none is ever installed without being owned here.
    let mut space = nix::cmsg_space!([RawFd; 253]);
    let (len, fds, truncated) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            flags | MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        let mut fds = Vec::new();
        for cmsg in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(raw) = cmsg {
                // SAFETY: the kernel just installed these descriptors in
                // this process for us; nothing else owns them.
                fds.extend(
                    raw.into_iter()
                        .map(|fd| unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }),
                );
            }
        }
        let truncated = msg
            .flags
            .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC);
        (msg.bytes, fds, truncated)
    };
    if truncated {
        return Err(Errno::EMSGSIZE);
    }
    if len == 0 && fds.is_empty() {
        return Ok(None);
    }
    buf.truncate(len);
    Ok(Some((buf, fds)))
}

/// One message without descriptors: any that came with it are discarded
/// by the kernel (no room for them), never installed here, so closing
/// them can never block this process (a descriptor of a hung FUSE or NFS
/// mount blocks its closer). `None` at the end of the stream; a message
/// larger than [`MAX_MESSAGE`] is consumed and answered `EMSGSIZE`.
pub fn recv_plain(sock: BorrowedFd<'_>, flags: MsgFlags) -> Result<Option<Vec<u8>>, Errno> {
    let size = next_size(sock, flags)?;
    let mut buf = vec![0u8; size.clamp(1, MAX_MESSAGE)];
    let len = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        recvmsg::<()>(sock.as_raw_fd(), &mut iov, None, flags)?.bytes
    };
    if size > MAX_MESSAGE {
        return Err(Errno::EMSGSIZE);
    }
    if size == 0 && len == 0 {
        return Ok(None);
    }
    buf.truncate(len);
    Ok(Some(buf))
}

/// Waits until one of `fds` is ready; their `revents`, or `None` at the
/// timeout.
fn wait_any(
    fds: &[BorrowedFd<'_>],
    timeout: Option<Duration>,
) -> Result<Option<Vec<PollFlags>>, Errno> {
    let mut polled: Vec<PollFd<'_>> = fds
        .iter()
        .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
        .collect();
    let timeout = match timeout {
        None => PollTimeout::NONE,
        Some(t) => PollTimeout::try_from(t).unwrap_or(PollTimeout::MAX),
    };
    match poll(&mut polled, timeout) {
        Ok(0) => Ok(None),
        Ok(_) => Ok(Some(
            polled
                .iter()
                .map(|p| p.revents().unwrap_or(PollFlags::empty()))
                .collect(),
        )),
        Err(Errno::EINTR) => Ok(Some(vec![PollFlags::empty(); fds.len()])),
        Err(e) => Err(e),
    }
}

/// The next signal a signalfd holds (none: nothing to read, or a number
/// that is no signal).
fn take_signal(sfd: &SignalFd) -> Option<Signal> {
    let info = sfd.read_signal().ok()??;
    Signal::try_from(i32::try_from(info.ssi_signo).ok()?).ok()
}

fn ready(flags: PollFlags) -> bool {
    flags.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
}

// -------------------------------------------------------------- client

/// `cgmgr exec` through a prepared sandbox of the running daemon: the
/// workload's exit status, or `None` when no sandbox took the request (no
/// daemon, none ready, an older daemon, a daemon that does not answer in
/// time): the caller then runs it itself. Only for runs that use the
/// daemon's policies without changing the sandbox (no `--policies`,
/// `--root`, `--rootfs`, `--ns`, `--hostname`, `--chroot`); the caller
/// checks that.
pub fn try_run(group: &str, flags: &ExecFlags) -> Option<i32> {
    GroupName::parse(group).ok()?;
    super::merge_env(Vec::new(), &flags.env).ok()?;
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
    let signals = super::supervised_signals();
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
fn connect_to_daemon() -> Option<OwnedFd> {
    let sock = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .ok()?;
    connect(sock.as_raw_fd(), &UnixAddr::new(&socket_path()).ok()?).ok()?;
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
const SO_PASSRIGHTS: libc::c_int = 83;

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
fn started(sock: &OwnedFd, sfd: &SignalFd, taken: &mut Vec<Signal>) -> bool {
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
fn follow(sock: &OwnedFd, sfd: &SignalFd) -> i32 {
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

fn fail(why: &str) -> i32 {
    eprintln!("cgmgr: exec: {why}");
    125
}

/// Signals this process ignores that a workload would inherit ignored
/// (SIGPIPE and SIGCHLD are reset for every run).
fn ignored_signals() -> Vec<i32> {
    (1..=libc::SIGRTMAX())
        .filter(|&n| ![libc::SIGKILL, libc::SIGSTOP, libc::SIGPIPE, libc::SIGCHLD].contains(&n))
        .filter(|&n| super::ignored(n))
        .collect()
}

/// This process's limits, nice value, `oom_score_adj` and CPU affinity.
fn own_attributes() -> Attributes {
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
const IOPRIO_WHO_PROCESS: libc::c_int = 1;

/// Sets a process's limit (pid 0: this one) to `soft`/`hard`, or where the
/// hard limit cannot be raised, keeps it and takes the soft one up to it.
fn set_rlimit(pid: Pid, resource: u32, soft: u64, hard: u64) {
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
const RLIMIT_COUNT: u32 = 16;

/// Gives a process of the run (init, the waiting workload) the caller's
/// attributes: as root outside the sandbox, which may raise what the
/// sandbox may not.
/// Best effort: a CPU list the group's cpuset forbids is left as it is.
fn apply_attributes(pid: Pid, attrs: &Attributes) {
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

// ------------------------------------------------------------- standby

/// The builder, `cgmgr standby` (its socket to the daemon as fd 3): for
/// each [`BuildRequest`], forks a process that [`serve`]s one sandbox of
/// the group on the control socket that came with it. Each group's policy
/// is read and checked once, at its first request (the daemon starts a new
/// builder when the policies change). Returns when the daemon closes the
/// socket; the sandboxes it made live on.
pub fn build_server(
    root: Option<String>,
    policies: std::path::PathBuf,
    sock: &OwnedFd,
) -> Result<(), ExecError> {
    use std::collections::HashMap;
    build_at_low_priority();
    // The children are reaped by the kernel; each one puts SIGCHLD back
    // to its default before it makes its own.
    // SAFETY: SIG_IGN installs no handler.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    // By group and the digest of the `[exec]` table they were built from.
    let mut prepared: HashMap<(String, u64), Prepared> = HashMap::new();
    loop {
        let (bytes, fds) = match recv(sock.as_fd(), MsgFlags::empty()) {
            Ok(Some(message)) => message,
            Ok(None) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(sys("reading the daemon's requests")(e)),
        };
        let (Ok(request), Some(ctl)) = (
            serde_json::from_slice::<BuildRequest>(&bytes),
            fds.into_iter().next(),
        ) else {
            continue;
        };
        let key = (request.group.clone(), request.config);
        // A rootfs or profile changed since: read again (and refused while
        // the daemon's loaded table is not the files').
        if prepared.get(&key).is_some_and(|p| p.built.changed()) {
            prepared.remove(&key);
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = prepared.entry(key.clone()) {
            match prepare_group(&root, &policies, &request) {
                Ok(entry) => {
                    slot.insert(entry);
                }
                Err(e) => {
                    // Its socket closes unanswered: the daemon tries later.
                    eprintln!("cgmgr: standby: group {}: {e}", request.group);
                    continue;
                }
            }
        }
        let Some(entry) = prepared.get(&key) else {
            continue;
        };
        // SAFETY: this process is single-threaded, so the child may run
        // any code.
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Child) => {
                // The builder's socket is the builder's: a sandbox holding
                // it would hide the builder's end from the daemon.
                // SAFETY: this process never uses the socket again and
                // leaves by exit(), which runs no destructor.
                unsafe { libc::close(sock.as_raw_fd()) };
                let code = match serve(&entry.root, &entry.spec, &entry.built, &ctl) {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("cgmgr: standby: group {}: {e}", request.group);
                        125
                    }
                };
                std::process::exit(code);
            }
            Ok(nix::unistd::ForkResult::Parent { .. }) => {}
            Err(e) => eprintln!("cgmgr: standby: fork: {e}"),
        }
    }
}

/// A group's run, resolved and checked once for every sandbox of it, and
/// the files it was resolved from.
struct Prepared {
    root: CgroupRoot,
    spec: ExecSpec,
    built: BuiltFrom,
}

/// Reads the policies and resolves the group's run, as `cgmgr exec` would,
/// if its `[exec]` table is the one the daemon asked for (the files may
/// have changed since the daemon loaded them: then nothing is built).
fn prepare_group(
    root: &Option<String>,
    policies: &std::path::Path,
    request: &BuildRequest,
) -> Result<Prepared, String> {
    let group = GroupName::parse(&request.group).map_err(|e| e.to_string())?;
    let load =
        || -> Result<(crate::policy::PolicySet, Option<crate::policy::ExecConfig>), String> {
            let set = crate::policy::load(&[policies.to_path_buf()]).map_err(|e| e.to_string())?;
            let config = set.groups.get(&group).and_then(|g| g.exec.clone());
            Ok((set, config))
        };
    let (set, config) = load()?;
    let digest = config.clone().unwrap_or_default().digest();
    if digest != request.config {
        return Err(
            "the policy files differ from the daemon's loaded policy (a reload is due)".into(),
        );
    }
    // The identities of the rootfs and profile, taken between two reads
    // that agree: they are the files this table was read from.
    let profile = config.as_ref().and_then(|c| match &c.seccomp {
        Some(crate::policy::seccomp::Seccomp::Profile { path, .. }) => Some(path.clone()),
        _ => None,
    });
    let rootfs = config.as_ref().and_then(|c| c.rootfs.clone());
    let built = BuiltFrom::of(rootfs.into_iter().chain(profile));
    if load()?.1.unwrap_or_default().digest() != digest {
        return Err("the policy files changed while they were read".into());
    }
    let asked = super::prepare::ExecRequest {
        root: root.clone(),
        group: request.group.clone(),
        policies: Some(policies.to_path_buf()),
        flags: ExecFlags::default(),
    };
    let (root, spec) = super::prepare::prepare_with(asked, Some(set)).map_err(|e| e.to_string())?;
    Ok(Prepared { root, spec, built })
}

/// The `cgmgr standby` process: builds a run's sandbox, tells the daemon
/// through `ctl` that it is ready, serves the one request the daemon passes
/// on, and ends the run. `spec` has no command.
fn serve(
    root: &CgroupRoot,
    spec: &ExecSpec,
    built: &BuiltFrom,
    ctl: &OwnedFd,
) -> Result<(), ExecError> {
    // Every sandbox checks its rootfs anew (not `/`, the directories it
    // needs): the group's resolution was cached by the builder.
    if let Some(rootfs) = &spec.rootfs {
        super::check_rootfs(rootfs, &spec.workload.cwd)?;
        if spec.has(Namespace::User) {
            super::check_reachable_by_others(rootfs)?;
        }
    }
    let run = run_group::Run::begin(root, &spec.group, spec.has(Namespace::User))?;
    let served = serve_in(root, spec, built, &run, ctl);
    // A run that served a command was ended before its caller was told.
    if let Err(e) = run.end(root) {
        eprintln!("cgmgr: standby: ending the run: {e}");
    }
    served
}

fn serve_in(
    root: &CgroupRoot,
    spec: &ExecSpec,
    built: &BuiltFrom,
    run_owned: &run_group::Run,
    ctl: &OwnedFd,
) -> Result<(), ExecError> {
    let run = &run_owned.group;
    let (job_here, job_init) = seqpacket_pair().map_err(sys("socketpair"))?;
    let started = start_child(root, spec, run_owned, Some(job_init))?;
    let mut supervision = Supervision::new(started.pid);
    match recv(job_here.as_fd(), MsgFlags::empty()) {
        Ok(Some((bytes, _))) if bytes == b"ready" => {}
        _ => {
            // init reported why on stderr (the daemon's log).
            let _ = nix::sys::signal::kill(started.pid, Signal::SIGKILL);
            let code = wait_exit(&supervision);
            return Err(ExecError::Invalid(format!(
                "the sandbox could not be prepared (init exited with {code})"
            )));
        }
    }
    // Held until the caller is told the status: the namespaces then outlive
    // init's exit, which so does not wait for their teardown (the mount
    // tree's unmount waits for an RCU grace period).
    let held = hold_namespaces(started.pid);
    send(ctl.as_fd(), b"ready", &[]).map_err(sys("telling the daemon"))?;
    let sfd = SignalFd::new(&started.signals).map_err(sys("signalfd"))?;
    let Some((request, conn)) = idle(ctl, &sfd, &job_here, &supervision)? else {
        let _ = nix::sys::signal::kill(started.pid, Signal::SIGKILL);
        wait_exit(&supervision);
        return Ok(());
    };
    let end = |reply: Reply| {
        // The daemon counts by this word whether a sandbox served the run.
        let word: &[u8] = if matches!(reply, Reply::None { .. }) {
            b"declined"
        } else {
            b"started"
        };
        let _ = send(ctl.as_fd(), word, &[]);
        let _ = send_json(conn.as_fd(), &reply, &[]);
        let _ = nix::sys::signal::kill(started.pid, Signal::SIGKILL);
        wait_exit(&supervision);
        Ok(())
    };
    // `none` sends the caller to build its own sandbox, as it would have.
    if built.changed() {
        let why = "the rootfs or seccomp profile changed since this sandbox was built";
        return end(Reply::None { why: why.into() });
    }
    let mut job = match check_request(spec, &request) {
        Ok(job) => job,
        Err(e) => {
            return end(Reply::None { why: e.to_string() });
        }
    };
    if serde_json::to_vec(&job).map_or(true, |b| b.len() > MAX_MESSAGE) {
        let why = "the command and environment are too large to hand over";
        return end(Reply::None { why: why.into() });
    }
    // The daemon's listener refuses descriptors (see `set_pass_rights`);
    // this connection takes the caller's stdio.
    set_pass_rights(conn.as_fd(), true);
    let _ = send_json(conn.as_fd(), &Reply::Started, &[]);
    let (open, stdio) = match receive_stdio(&conn) {
        Ok(Some(received)) => received,
        Ok(None) => {
            return end(Reply::None { why: String::new() });
        }
        Err(e) => {
            let reply = Reply::Failed {
                message: e.to_string(),
            };
            return end(reply);
        }
    };
    job.stdio = open;
    // Built at low priority; the run itself is not: init and the workload
    // take the caller's attributes.
    let workload = workload_pid(root, run, started.pid);
    // SAFETY: setpriority takes integers only; 0 is this process.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 0) };
    for pid in [Some(started.pid), workload].into_iter().flatten() {
        apply_attributes(pid, &request.attrs);
    }
    let format = request.report.as_deref().and_then(|r| r.parse().ok());
    let account = report::Accounting::start(root, &spec.group, format);
    let raw: Vec<RawFd> = stdio.iter().map(AsRawFd::as_raw_fd).collect();
    send_json(job_here.as_fd(), &job, &raw).map_err(sys("handing the command to init"))?;
    drop(stdio);
    let _ = send(ctl.as_fd(), b"started", &[]);
    let code = follow_run(&mut supervision, &started.group_dir, &sfd, &conn);
    let stderr = account.finish(root, run, code);
    // The run is over before its caller learns the status: nothing it
    // started outlives `cgmgr exec`. The empty group is removed after.
    let stderr = match run_group::kill_all(root, run) {
        Ok(()) => stderr,
        Err(e) => format!("{stderr}cgmgr: exec: ending the run: {e}\n"),
    };
    let _ = send_json(conn.as_fd(), &Reply::Exit { code, stderr }, &[]);
    drop((started, held));
    Ok(())
}

/// A request with its connection, as the daemon passed it.
type Handed = (Request, OwnedFd);

/// Waits for the daemon to pass a request on; `None` when the standby is
/// to end instead (the daemon closed `ctl`, a stop signal, init died).
fn idle(
    ctl: &OwnedFd,
    sfd: &SignalFd,
    job: &OwnedFd,
    supervision: &Supervision,
) -> Result<Option<Handed>, ExecError> {
    loop {
        let revents = wait_any(&[ctl.as_fd(), sfd.as_fd(), job.as_fd()], None)
            .map_err(sys("poll"))?
            .unwrap_or_default();
        if revents.first().copied().is_some_and(ready) {
            let Ok(Some((bytes, mut fds))) = recv(ctl.as_fd(), MsgFlags::MSG_DONTWAIT) else {
                return Ok(None);
            };
            let Ok(request) = serde_json::from_slice::<Request>(&bytes) else {
                continue;
            };
            if fds.len() != 1 {
                continue;
            }
            let conn = fds.remove(0);
            return Ok(Some((request, conn)));
        }
        if revents.get(1).copied().is_some_and(ready)
            && let Some(sig) = take_signal(sfd)
            && (matches!(
                sig,
                Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP | Signal::SIGQUIT
            ) || supervision.exited().is_some())
        {
            return Ok(None);
        }
        if revents.get(2).copied().is_some_and(ready) {
            return Ok(None); // init is gone
        }
    }
}

/// The job for the workload, once the request is checked as `cgmgr exec`
/// checks its own command line.
fn check_request(spec: &ExecSpec, request: &Request) -> Result<Job, ExecError> {
    if request.v != PROTOCOL || request.group != spec.group.as_str() {
        return Err(ExecError::Invalid("a request for another sandbox".into()));
    }
    if request.argv.is_empty() {
        return Err(ExecError::Invalid("no command".into()));
    }
    let env = super::merge_env(spec.workload.env.clone(), &request.env)?;
    Ok(Job {
        argv: request.argv.clone(),
        env,
        stdio: [false; 3],
        ignored: request.ignored.clone(),
        rlimits: request.attrs.rlimits.clone(),
    })
}

/// Which of the caller's stdin, stdout, stderr are open, and those.
type CallerStdio = ([bool; 3], Vec<OwnedFd>);

/// Waits (at most [`FIRST_ANSWER`]) for the caller's stdio after
/// `started`, and checks it as `cgmgr exec` checks its own. `Ok(None)`: the
/// caller is gone (nothing is started).
fn receive_stdio(conn: &OwnedFd) -> Result<Option<CallerStdio>, ExecError> {
    let waited = wait_any(&[conn.as_fd()], Some(FIRST_ANSWER)).map_err(sys("poll"))?;
    if !waited.is_some_and(|r| ready(r[0])) {
        return Ok(None);
    }
    let Ok(Some((bytes, fds))) = recv(conn.as_fd(), MsgFlags::MSG_DONTWAIT) else {
        return Ok(None);
    };
    let Ok(ClientMessage::Stdio(open)) = serde_json::from_slice(&bytes) else {
        return Err(ExecError::Invalid("expected the caller's stdio".into()));
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

/// What a prepared sandbox's root and seccomp profile were when it was
/// built: a run takes it only if they are still the same files (a rootfs
/// replaced by a rename, or an edited profile, would give `cgmgr exec`'s
/// own sandbox something else).
#[derive(Debug)]
struct BuiltFrom {
    files: Vec<(PathBuf, Option<FileId>)>,
}

/// Device, inode, size and modification time of a file, and for a regular
/// file a SHA-256 of its content: a profile edited in place within the
/// same second, keeping its size (or with its mtime put back), is another
/// file.
type FileId = (u64, u64, u64, i64, i64, Option<[u8; 32]>);

/// The most of a file that is hashed: policy files and the profiles they
/// name are refused above 16 MiB anyway.
const MAX_HASHED: u64 = 16 << 20;

fn file_id(path: &std::path::Path) -> Option<FileId> {
    use sha2::Digest;
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    let content = m
        .is_file()
        .then(|| {
            let mut text = Vec::new();
            std::fs::File::open(path)
                .and_then(|f| f.take(MAX_HASHED).read_to_end(&mut text))
                .ok()
                .map(|_| sha2::Sha256::digest(&text).into())
        })
        .flatten();
    Some((
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        content,
    ))
}

impl BuiltFrom {
    /// The identities of `paths` now.
    fn of(paths: impl Iterator<Item = PathBuf>) -> BuiltFrom {
        let files = paths
            .map(|p| {
                let id = file_id(&p);
                (p, id)
            })
            .collect();
        BuiltFrom { files }
    }

    /// True when one of the files is not the one the sandbox was built from.
    fn changed(&self) -> bool {
        self.files.iter().any(|(path, id)| file_id(path) != *id)
    }
}

/// Supervises the run until init exits: signals from the connection and
/// from this process's own signalfd are passed on; a connection that
/// closes (the caller died) ends the run at once.
fn follow_run(
    supervision: &mut Supervision,
    run_dir: &OwnedFd,
    sfd: &SignalFd,
    conn: &OwnedFd,
) -> i32 {
    let mut caller_gone = false;
    loop {
        if let Some(code) = supervision.exited() {
            return code;
        }
        let watched: Vec<BorrowedFd<'_>> = if caller_gone {
            vec![sfd.as_fd()]
        } else {
            vec![sfd.as_fd(), conn.as_fd()]
        };
        // EINTR comes back as no event. Any other error of a poll on these
        // descriptors would come back at once every time: rather than spin
        // on it, the run is ended, and init's exit waited for.
        let revents = match wait_any(&watched, supervision.time_left()) {
            Ok(revents) => revents,
            Err(e) => {
                eprintln!("cgmgr: standby: waiting on the run: poll: {e}; ending the run");
                supervision.kill_now(run_dir);
                return wait_exit(supervision);
            }
        };
        let Some(revents) = revents else {
            supervision.on_timeout(run_dir);
            continue;
        };
        if ready(revents[0])
            && let Some(sig) = take_signal(sfd)
        {
            supervision.on_signal(sig, run_dir);
        }
        if !caller_gone && revents.get(1).copied().is_some_and(ready) {
            match recv(conn.as_fd(), MsgFlags::MSG_DONTWAIT) {
                Ok(Some((bytes, _))) => {
                    if let Ok(ClientMessage::Signal(n)) = serde_json::from_slice(&bytes)
                        && let Ok(sig) = Signal::try_from(n)
                        && init::FORWARDED.contains(&sig)
                    {
                        supervision.on_signal(sig, run_dir);
                    }
                }
                Err(Errno::EAGAIN) => {}
                Ok(None) | Err(_) => {
                    // As `cgmgr exec`'s death ends its run (init's
                    // parent-death signal), the caller's ends this one.
                    caller_gone = true;
                    supervision.kill_now(run_dir);
                }
            }
        }
    }
}

/// Builds sandboxes at the lowest priority (nice 19): a sandbox made ahead
/// takes little CPU from the runs in progress; the run that takes one gets
/// the caller's nice value. Not `SCHED_IDLE`: with it, back-to-back runs
/// had 37-49 ms outliers (at nice 19 at most 17 ms), the likely cause a
/// starved builder holding a kernel lock a run waits for (BENCHMARKS.md).
pub fn build_at_low_priority() {
    // SAFETY: setpriority takes integers only; 0 is this process.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
}

/// The prepared workload: the run group's process that is not init.
fn workload_pid(root: &CgroupRoot, run: &GroupName, init: Pid) -> Option<Pid> {
    root.procs(run)
        .ok()?
        .into_iter()
        .find(|&pid| pid != init.as_raw())
        .map(Pid::from_raw)
}

/// Descriptors of init's mount and network namespaces (those that are
/// open), which keep the namespaces alive while they are held.
fn hold_namespaces(pid: Pid) -> Vec<OwnedFd> {
    ["mnt", "net"]
        .iter()
        .filter_map(|ns| {
            std::fs::File::open(format!("/proc/{pid}/ns/{ns}"))
                .ok()
                .map(OwnedFd::from)
        })
        .collect()
}

fn wait_exit(supervision: &Supervision) -> i32 {
    loop {
        if let Some(code) = supervision.exited() {
            return code;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

// ------------------------------------------------------------ workload

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
struct ReadyJob {
    workload: Workload,
    stdio: [Option<OwnedFd>; 3],
    ignored: Vec<i32>,
    rlimits: Vec<(u32, u64, u64)>,
}

/// Says `ready` on `socket` and waits for the command. Everything about
/// the sandbox stays `base`'s.
fn await_job(socket: &OwnedFd, base: &Workload) -> Result<ReadyJob, ExecError> {
    send(socket.as_fd(), b"ready", &[]).map_err(sys("telling the standby process"))?;
    let Some((bytes, fds)) = recv(socket.as_fd(), MsgFlags::empty()).map_err(sys("recvmsg"))?
    else {
        return Err(ExecError::Invalid("the standby process went away".into()));
    };
    let job: Job = serde_json::from_slice(&bytes)
        .map_err(|e| ExecError::Invalid(format!("a job that does not parse: {e}")))?;
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
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A profile rewritten in place with the same size, its modification
    /// time put back, is not the file a sandbox was built from.
    #[test]
    fn a_file_edited_in_place_with_its_size_and_mtime_kept_has_changed() {
        use nix::sys::stat::{UtimensatFlags, utimensat};
        use nix::sys::time::TimeSpec;
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("p.json");
        std::fs::write(&profile, r#"{"defaultAction": "SCMP_ACT_ERRNO"}"#).unwrap();
        let built = BuiltFrom::of([profile.clone(), dir.path().to_path_buf()].into_iter());
        assert!(!built.changed());
        let before = std::fs::metadata(&profile).unwrap();
        std::fs::write(&profile, r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#).unwrap();
        let mtime = TimeSpec::new(before.mtime(), before.mtime_nsec());
        utimensat(
            nix::fcntl::AT_FDCWD,
            &profile,
            &mtime,
            &mtime,
            UtimensatFlags::NoFollowSymlink,
        )
        .unwrap();
        let after = std::fs::metadata(&profile).unwrap();
        assert_eq!(
            (after.ino(), after.size(), after.mtime(), after.mtime_nsec()),
            (
                before.ino(),
                before.size(),
                before.mtime(),
                before.mtime_nsec()
            ),
            "the same inode, size and mtime"
        );
        assert!(built.changed(), "the content changed");
    }
}
