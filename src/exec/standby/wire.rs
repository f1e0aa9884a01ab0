//! The wire: one message per `SOCK_SEQPACKET` packet, descriptors as
//! `SCM_RIGHTS` (attached in [`send_bytes`] and taken in [`recv_bytes`],
//! nowhere else), the sockets' options, and the waits on several
//! descriptors. What the bytes say is [`super::protocol`]'s.

use super::*;

/// Sends one message with `fds` attached (a peer that is gone is `EPIPE`,
/// never SIGPIPE).
pub fn send_bytes(sock: BorrowedFd<'_>, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> Result<(), Errno> {
    let iov = [IoSlice::new(bytes)];
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let rights = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &rights };
    sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None).map(|_| ())
}

/// The size of the next message, without taking it (a peek with
/// `MSG_TRUNC` answers it), so a buffer is no larger than the message.
pub(super) fn next_size(sock: BorrowedFd<'_>, flags: MsgFlags) -> Result<usize, Errno> {
    nix::sys::socket::recv(
        sock.as_raw_fd(),
        &mut [],
        flags | MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC,
    )
}

/// One message: its bytes and the descriptors that came with it.
pub type Packet = (Vec<u8>, Vec<OwnedFd>);

/// One message (its descriptors close-on-exec); `None` at the end of the
/// stream. A message larger than [`MAX_MESSAGE`] is `EMSGSIZE`.
pub fn recv_bytes(sock: BorrowedFd<'_>, flags: MsgFlags) -> Result<Option<Packet>, Errno> {
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
    let _ = try_set_pass_rights(sock, pass);
}

/// [`set_pass_rights`] with the kernel's answer: `ENOPROTOOPT` where the
/// option does not exist (before 6.16).
pub fn try_set_pass_rights(sock: BorrowedFd<'_>, pass: bool) -> Result<(), Errno> {
    let value = libc::c_int::from(pass);
    let len = libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).unwrap_or(4);
    // SAFETY: value is a live c_int of the given size for the call.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_PASSRIGHTS,
            (&raw const value).cast(),
            len,
        )
    };
    if rc == 0 { Ok(()) } else { Err(Errno::last()) }
}

/// Lets a message of up to [`MAX_MESSAGE`] bytes through `sock` (a
/// `SOCK_SEQPACKET` message must fit in its sender's buffer).
pub fn allow_large_messages(sock: BorrowedFd<'_>) {
    let _ = nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::SndBuf, &MAX_MESSAGE);
}

/// Waits until one of `fds` is ready; their `revents`, or `None` at the
/// timeout.
pub(super) fn wait_any(
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
pub(super) fn take_signal(sfd: &SignalFd) -> Option<Signal> {
    let info = sfd.read_signal().ok()??;
    Signal::try_from(i32::try_from(info.ssi_signo).ok()?).ok()
}

pub(super) fn ready(flags: PollFlags) -> bool {
    flags.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
}
