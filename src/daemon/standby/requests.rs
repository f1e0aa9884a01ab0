//! The clients of `exec.sock`: accepted, their requests read and each
//! either passed with its connection to a ready standby, kept a moment for
//! one being built, or answered `none`.

use super::*;

/// Why a request was not handed to a prepared sandbox (told to the
/// caller, which then builds its own).
#[derive(Debug, thiserror::Error)]
pub(super) enum HandOverError {
    /// The group keeps none.
    #[error("no standby for group {0}")]
    NoStandby(GroupName),
    /// None of them is ready.
    #[error("no standby of group {0} is ready")]
    NoneReady(GroupName),
    /// The request could not be passed on.
    #[error("handing the request over: {0}")]
    Send(Errno),
}

/// What a client's first message asks for.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Asked {
    /// A sandbox of the group, for the request in the bytes (passed on as
    /// they came).
    Sandbox(GroupName, Vec<u8>),
    /// Nothing this daemon serves (answered `none`): why.
    Refused(String),
    /// The client went away before asking: nothing to answer.
    Gone,
}

/// Reads a client's request (without waiting). Descriptors sent along are
/// discarded by the kernel: stdio goes to the sandbox itself, later.
pub(super) fn read_request(conn: BorrowedFd<'_>) -> Asked {
    let bytes = match recv_plain(conn, MsgFlags::MSG_DONTWAIT) {
        Ok(Some(bytes)) => bytes,
        Err(Errno::EMSGSIZE) => {
            return Asked::Refused("a request larger than a prepared sandbox takes".into());
        }
        _ => return Asked::Gone,
    };
    let request = match decode::<Request>(&bytes) {
        Ok(request) => request,
        Err(DecodeError::Version(v)) => {
            let v = v.map_or_else(|| "unknown".to_string(), |v| v.to_string());
            return Asked::Refused(format!("protocol {v} (the daemon speaks {PROTOCOL})"));
        }
        Err(DecodeError::Malformed(_)) => {
            return Asked::Refused("a request that does not parse".into());
        }
    };
    match GroupName::parse(&request.group) {
        Ok(group) => Asked::Sandbox(group, bytes),
        Err(_) => Asked::Refused("not a group name".into()),
    }
}

/// Answers `none`: the caller builds its own sandbox.
pub(super) fn refuse(conn: BorrowedFd<'_>, why: String) {
    let _ = send(conn, &Reply::None { why }, &[]);
}

impl Pool {
    pub(super) fn accept(&mut self) {
        // At most this many per turn: the other descriptors get their turn.
        for _ in 0..MAX_PENDING {
            let conn = match accept4(
                &self.listener,
                SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            ) {
                Ok(conn) => conn,
                Err(Errno::EINTR | Errno::ECONNABORTED) => continue,
                // Out of descriptors: the listener would stay readable and
                // the thread spin; it is not polled for a while.
                Err(Errno::EMFILE | Errno::ENFILE) => {
                    self.listen_paused = Some(Instant::now() + Duration::from_millis(100));
                    return;
                }
                Err(_) => return,
            };
            // Root's alone, whatever the socket file's mode became.
            let root = nix::sys::socket::getsockopt(&conn, sockopt::PeerCredentials)
                .is_ok_and(|c| c.uid() == 0);
            if !root || self.pending.len() >= MAX_PENDING {
                continue;
            }
            // The request usually came with the connection: served now.
            let mut peek = [0u8; 1];
            match nix::sys::socket::recv(
                conn.as_raw_fd(),
                &mut peek,
                MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
            ) {
                Err(Errno::EAGAIN) => self.pending.push(Pending {
                    conn,
                    deadline: Instant::now() + REQUEST_TIMEOUT,
                }),
                _ => self.dispatch(conn),
            }
        }
    }

    /// Passes a client's request to a ready standby of its group, or
    /// answers `none`.
    pub(super) fn dispatch(&mut self, conn: OwnedFd) {
        let why = match read_request(conn.as_fd()) {
            Asked::Gone => return,
            Asked::Refused(why) => why,
            Asked::Sandbox(group, bytes) => match self.hand_over(&group, &bytes, conn.as_fd()) {
                Ok(()) => return,
                Err(_) if self.building(&group) && self.waiting.len() < MAX_PENDING => {
                    self.wait_for_build(group, conn, bytes);
                    return;
                }
                Err(why) => {
                    self.metrics.count(&group, "none");
                    why.to_string()
                }
            },
        };
        refuse(conn.as_fd(), why);
    }

    /// True when a sandbox of `group` is being built, or owed, and the
    /// last build did not fail: worth waiting for.
    pub(super) fn building(&self, group: &GroupName) -> bool {
        self.slots.get(group).is_some_and(|slot| {
            slot.failures == 0 && (slot.members.iter().any(|m| !m.ready) || !slot.owed.is_empty())
        })
    }

    /// Keeps the request until a sandbox of `group` is ready (its owed
    /// replacement is built now), at most [`WAIT_FOR_BUILD`].
    pub(super) fn wait_for_build(&mut self, group: GroupName, conn: OwnedFd, bytes: Vec<u8>) {
        if let Some(slot) = self.slots.get_mut(&group) {
            let now = Instant::now();
            for due in &mut slot.owed {
                *due = now;
            }
        }
        self.waiting.push(Waiting {
            group,
            conn,
            bytes,
            deadline: Instant::now() + WAIT_FOR_BUILD,
        });
    }

    /// Hands the oldest request waiting for `group` to its ready sandbox.
    pub(super) fn serve_waiting(&mut self, group: &GroupName) {
        let Some(i) = self.waiting.iter().position(|w| &w.group == group) else {
            return;
        };
        let w = self.waiting.remove(i);
        if let Err(why) = self.hand_over(group, &w.bytes, w.conn.as_fd()) {
            refuse(w.conn.as_fd(), why.to_string());
        }
    }

    /// Answers `none` to the requests that waited too long.
    pub(super) fn expire_waiting(&mut self, now: Instant) {
        let (expired, kept): (Vec<Waiting>, Vec<Waiting>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|w| w.deadline <= now);
        self.waiting = kept;
        for w in expired {
            self.metrics.count(&w.group, "none");
            let why = format!("no standby of group {} was ready in time", w.group);
            refuse(w.conn.as_fd(), why.to_string());
        }
    }

    /// Passes the request and its connection to a ready standby of `group`.
    pub(super) fn hand_over(
        &mut self,
        group: &GroupName,
        bytes: &[u8],
        conn: BorrowedFd<'_>,
    ) -> Result<(), HandOverError> {
        let Some(slot) = self.slots.get_mut(group) else {
            return Err(HandOverError::NoStandby(group.clone()));
        };
        let mut tried = 0;
        while let Some(i) = slot.members.iter().skip(tried).position(|m| m.ready) {
            let i = i + tried;
            match send_bytes(slot.members[i].ctl.as_fd(), bytes, &[conn]) {
                Ok(()) => {
                    let m = slot.members.swap_remove(i);
                    slot.owed.push(Instant::now() + REPLACE_AFTER);
                    // Counted when it says whether it started the run.
                    self.leaving.push((group.clone(), m));
                    return Ok(());
                }
                // That one died meanwhile: its socket's end removes it;
                // the next one.
                Err(Errno::EPIPE | Errno::ECONNRESET | Errno::ECONNREFUSED | Errno::ENOTCONN) => {}
                // It stays ready for the next request (EMSGSIZE...).
                Err(e) => return Err(HandOverError::Send(e)),
            }
            tried = i + 1;
        }
        Err(HandOverError::NoneReady(group.clone()))
    }
}
