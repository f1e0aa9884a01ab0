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
            // The daemon's own user's alone (root's for the system
            // daemon), whatever the socket file's mode became, and from the
            // daemon's own user namespace: a user's sandbox is that user
            // on the host, and a socket bound into it (even read-only)
            // must not let it start runs of its own.
            let ours =
                nix::sys::socket::getsockopt(&conn, sockopt::PeerCredentials).is_ok_and(|c| {
                    c.uid() == nix::unistd::geteuid().as_raw() && in_our_user_namespace(c.pid())
                });
            if !ours || self.pending.len() >= MAX_PENDING {
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

/// Whether the process `pid` (a client, which waits for its answer, so its
/// pid is not reused meanwhile) is in this process's user namespace. Not
/// known (its /proc entry unreadable) counts as not.
fn in_our_user_namespace(pid: i32) -> bool {
    use std::os::unix::fs::MetadataExt;
    let ns = |p: &str| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    match (
        ns(&format!("/proc/{pid}/ns/user")),
        ns("/proc/self/ns/user"),
    ) {
        (Some(theirs), Some(ours)) => theirs == ours,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::pool::Slot;
    use super::*;
    use crate::exec::standby::{Attributes, ClientMessage, RecvError, recv};

    fn pool() -> Pool {
        let (listener, _) = seqpacket_pair().unwrap();
        let (wake, _) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let metrics = Counters {
            requests: prometheus::IntCounterVec::new(
                prometheus::Opts::new("requests", "requests"),
                &["group", "result"],
            )
            .unwrap(),
            ready: prometheus::IntGaugeVec::new(
                prometheus::Opts::new("ready", "ready"),
                &["group"],
            )
            .unwrap(),
        };
        Pool {
            root: PathBuf::new(),
            policies: PathBuf::new(),
            listener,
            wake,
            desired: Arc::default(),
            slots: BTreeMap::new(),
            leaving: Vec::new(),
            pending: Vec::new(),
            waiting: Vec::new(),
            builder: None,
            stopped: Vec::new(),
            metrics,
            listen_paused: None,
        }
    }

    fn sb() -> GroupName {
        GroupName::parse("sb").unwrap()
    }

    /// Gives the pool a ready standby of `sb`; the standby's end of its
    /// control socket.
    fn ready_standby(pool: &mut Pool) -> OwnedFd {
        let (ctl, theirs) = seqpacket_pair().unwrap();
        let slot = pool.slots.entry(sb()).or_insert_with(|| Slot {
            config: ExecConfig::default(),
            want: 1,
            members: Vec::new(),
            owed: Vec::new(),
            failures: 0,
            retry_at: None,
        });
        slot.members.push(Member { ctl, ready: true });
        theirs
    }

    fn request(v: u32) -> Vec<u8> {
        serde_json::to_vec(&Request {
            v,
            group: "sb".into(),
            argv: vec!["/bin/true".into()],
            env: Vec::new(),
            report: None,
            report_file: false,
            ignored: Vec::new(),
            attrs: Attributes::default(),
        })
        .unwrap()
    }

    fn pipe() -> (OwnedFd, OwnedFd) {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK).unwrap()
    }

    /// True once every copy of the pipe's write end is closed.
    fn all_closed(read: &OwnedFd) -> bool {
        matches!(nix::unistd::read(read, &mut [0u8; 8]), Ok(0))
    }

    /// The client's `bytes` (with `fds`) dispatched: the client's socket.
    fn ask(pool: &mut Pool, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> OwnedFd {
        let (client, conn) = seqpacket_pair().unwrap();
        send_bytes(client.as_fd(), bytes, fds).unwrap();
        pool.dispatch(conn);
        client
    }

    fn answer(client: &OwnedFd) -> Option<Reply> {
        match recv::<Reply>(client.as_fd(), MsgFlags::MSG_DONTWAIT) {
            Ok(Some((reply, fds))) => {
                assert!(fds.is_empty());
                Some(reply)
            }
            Err(RecvError::Sys(Errno::EAGAIN)) => None,
            other => panic!("{other:?}"),
        }
    }

    fn none(why: &str) -> Option<Reply> {
        Some(Reply::None { why: why.into() })
    }

    fn count(pool: &Pool, result: &str) -> u64 {
        pool.metrics
            .requests
            .with_label_values(&["sb", result])
            .get()
    }

    /// The request, as it came, and its connection reach a ready standby;
    /// the daemon answers nothing itself and keeps the standby as leaving.
    #[test]
    fn a_request_is_handed_to_a_ready_standby_with_its_connection() {
        let mut pool = pool();
        let standby = ready_standby(&mut pool);
        let client = ask(&mut pool, &request(PROTOCOL), &[]);
        assert_eq!(answer(&client), None);
        let (got, mut fds) = recv::<Request>(standby.as_fd(), MsgFlags::MSG_DONTWAIT)
            .unwrap()
            .unwrap();
        assert_eq!(got.argv, ["/bin/true"]);
        assert_eq!(fds.len(), 1);
        // The descriptor is the connection: the sandbox answers on it.
        send(fds.remove(0).as_fd(), &Reply::Started, &[]).unwrap();
        assert_eq!(answer(&client), Some(Reply::Started));
        assert!(pool.slots[&sb()].members.is_empty());
        assert_eq!(pool.leaving.len(), 1);
        assert_eq!(pool.slots[&sb()].owed.len(), 1);
    }

    /// Without a standby, or without a ready one, the answer is `none`
    /// and counted.
    #[test]
    fn without_a_ready_standby_the_answer_is_none() {
        let mut pool = pool();
        let client = ask(&mut pool, &request(PROTOCOL), &[]);
        assert_eq!(answer(&client), none("no standby for group sb"));
        let standby = ready_standby(&mut pool);
        drop(standby); // it died meanwhile
        let client = ask(&mut pool, &request(PROTOCOL), &[]);
        assert_eq!(answer(&client), none("no standby of group sb is ready"));
        assert_eq!(count(&pool, "none"), 2);
    }

    /// A request of another version, an unversioned one, garbage and a
    /// bad group name are refused with their reason; the standby stays
    /// ready and hears nothing.
    #[test]
    fn requests_it_cannot_serve_are_refused_with_why() {
        let mut pool = pool();
        let standby = ready_standby(&mut pool);
        let bad_group = String::from_utf8(request(PROTOCOL))
            .unwrap()
            .replace("\"sb\"", "\"../x\"");
        let cases: [(&[u8], String); 4] = [
            (
                &request(2),
                format!("protocol 2 (the daemon speaks {PROTOCOL})"),
            ),
            (
                br#"{"group":"sb"}"#,
                format!("protocol unknown (the daemon speaks {PROTOCOL})"),
            ),
            (b"garbage", "a request that does not parse".into()),
            (bad_group.as_bytes(), "not a group name".into()),
        ];
        for (bytes, why) in cases {
            let client = ask(&mut pool, bytes, &[]);
            assert_eq!(answer(&client), none(&why));
        }
        assert!(pool.slots[&sb()].members[0].ready);
        let heard = recv_plain(standby.as_fd(), MsgFlags::MSG_DONTWAIT);
        assert_eq!(heard, Err(Errno::EAGAIN));
    }

    /// A request larger than [`MAX_MESSAGE`] is refused (`EMSGSIZE`, so
    /// `none`), and the descriptors sent with it are never installed.
    #[test]
    fn an_oversized_request_is_refused_and_its_descriptors_not_kept() {
        let mut pool = pool();
        let _standby = ready_standby(&mut pool);
        let (read, write) = pipe();
        let big = vec![b' '; 256 * 1024 + 1];
        let client = ask(&mut pool, &big, &[write.as_fd(), write.as_fd()]);
        drop(write);
        let why = "a request larger than a prepared sandbox takes";
        assert_eq!(answer(&client), none(why));
        assert!(all_closed(&read), "a descriptor sent along was kept");
        assert!(pool.slots[&sb()].members[0].ready);
    }

    /// Descriptors sent along with a good request are dropped by the
    /// kernel: the standby gets the connection alone.
    #[test]
    fn descriptors_sent_with_a_request_never_reach_the_standby() {
        let mut pool = pool();
        let standby = ready_standby(&mut pool);
        let (read, write) = pipe();
        let _client = ask(&mut pool, &request(PROTOCOL), &[write.as_fd(); 9]);
        drop(write);
        let (_, fds) = recv::<Request>(standby.as_fd(), MsgFlags::MSG_DONTWAIT)
            .unwrap()
            .unwrap();
        assert_eq!(fds.len(), 1);
        assert!(all_closed(&read), "a descriptor sent along was kept");
    }

    /// A client gone before asking gets nothing and takes no standby; one
    /// gone after asking is still handed over (its sandbox then finds the
    /// connection closed and starts nothing).
    #[test]
    fn a_client_gone_before_asking_takes_nothing() {
        let mut pool = pool();
        let standby = ready_standby(&mut pool);
        let (client, conn) = seqpacket_pair().unwrap();
        drop(client);
        pool.dispatch(conn);
        assert!(pool.slots[&sb()].members[0].ready);
        assert!(pool.leaving.is_empty());
        let heard = recv_plain(standby.as_fd(), MsgFlags::MSG_DONTWAIT);
        assert_eq!(heard, Err(Errno::EAGAIN));
        let (client, conn) = seqpacket_pair().unwrap();
        send_bytes(client.as_fd(), &request(PROTOCOL), &[]).unwrap();
        drop(client);
        pool.dispatch(conn);
        let (_, fds) = recv::<Request>(standby.as_fd(), MsgFlags::MSG_DONTWAIT)
            .unwrap()
            .unwrap();
        let conn = fds.into_iter().next().unwrap();
        let said = recv::<ClientMessage>(conn.as_fd(), MsgFlags::MSG_DONTWAIT);
        assert!(matches!(said, Ok(None)), "{said:?}");
    }
}
