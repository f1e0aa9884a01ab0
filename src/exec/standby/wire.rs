//! The wire: one JSON object (or a bare word) per `SOCK_SEQPACKET` message,
//! descriptors as `SCM_RIGHTS`, and the waits on several descriptors.

use super::*;

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
pub(super) fn next_size(sock: BorrowedFd<'_>, flags: MsgFlags) -> Result<usize, Errno> {
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
