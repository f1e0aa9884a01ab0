//! The daemon's prepared sandboxes: for each group whose `[exec]` table
//! says `standby = N`, N `cgmgr standby` processes, each holding a run's
//! sandbox built up to the workload's fork (see `exec::standby`), and the
//! socket `cgmgr exec` asks for one on.
//!
//! One thread owns it all and sleeps in `poll` on the listening socket, a
//! wake pipe (the policy changed), the clients that connected and each
//! standby's control socket. A standby says `ready` on its socket once its
//! sandbox is built; the thread passes a client's connection (and stdio) to
//! a ready one, which serves it and exits; its socket's end tells the
//! thread to reap it and build the next. A standby whose group's `[exec]`
//! table changed, or whose group is gone, is retired (SIGTERM: it ends its
//! run) unless it is serving a run. One that fails before it is ready is
//! tried again after a growing pause (0.1 s doubling to 60 s), its reason
//! in the log from its own stderr.
//!
//! The socket is root's alone (mode 0600, and the peer's uid checked): a
//! run through it is what `cgmgr exec`, which needs root, would start.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, Backlog, MsgFlags, SockFlag, SockType, UnixAddr, accept4, bind, listen, socket,
    sockopt,
};

use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

use super::log::{Level, log};
use crate::cgroup::GroupName;
use crate::exec::standby::{
    BuildRequest, PROTOCOL, Reply, Request, Word, recv_plain, send, send_json, seqpacket_pair,
    set_pass_rights,
};
use crate::policy::{ExecConfig, PolicySet};

/// At most this many clients may wait to send their request; more are
/// closed at once (their `cgmgr exec` builds its own sandbox).
const MAX_PENDING: usize = 64;

/// How long a client may take to send its request after connecting.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a request may wait for a sandbox being built when none is
/// ready (building one takes a few milliseconds; `cgmgr exec` building its
/// own would take longer and compete for the same CPUs).
const WAIT_FOR_BUILD: Duration = Duration::from_millis(20);

/// The latest a standby taken by a run is replaced (see [`Slot::owed`]).
const REPLACE_AFTER: Duration = Duration::from_millis(100);

/// The longest pause before trying again a group whose standby failed.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What the policy asks for: per group, its `[exec]` table and how many.
type Desired = BTreeMap<GroupName, (ExecConfig, u32)>;

/// The handle the daemon's loop keeps.
pub struct Standbys {
    desired: Arc<Mutex<Desired>>,
    wake: OwnedFd,
}

impl Standbys {
    /// Binds `socket` and starts the thread. `root` and `policies` are the
    /// daemon's, passed to every `cgmgr standby`.
    pub fn start(
        socket: &Path,
        root: PathBuf,
        policies: PathBuf,
        metrics: Counters,
    ) -> Result<Standbys, StartError> {
        confined_as_the_host()?;
        let listener = listen_on(socket).map_err(|errno| StartError::Listen {
            path: socket.to_path_buf(),
            errno,
        })?;
        let (wake_read, wake) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
                .map_err(StartError::Pipe)?;
        let desired = Arc::new(Mutex::new(Desired::new()));
        let mut pool = Pool {
            root,
            policies,
            listener,
            wake: wake_read,
            desired: desired.clone(),
            slots: BTreeMap::new(),
            leaving: Vec::new(),
            pending: Vec::new(),
            waiting: Vec::new(),
            builder: None,
            stopped: Vec::new(),
            metrics,
            listen_paused: None,
        };
        std::thread::Builder::new()
            .name("standby".into())
            .spawn(move || pool.run())
            .map_err(StartError::Thread)?;
        Ok(Standbys { desired, wake })
    }

    /// Makes `set`'s `standby` counts the wanted ones.
    pub fn sync(&self, set: &PolicySet) {
        let wanted: Desired = set
            .groups
            .iter()
            .filter_map(|(name, group)| {
                let exec = group.exec.as_ref()?;
                let n = exec.standby.filter(|&n| n > 0)?;
                Some((name.clone(), (exec.clone(), n)))
            })
            .collect();
        *self.desired.lock().unwrap_or_else(PoisonError::into_inner) = wanted;
        let _ = nix::unistd::write(&self.wake, b"w");
    }
}

/// A standby and everything it runs inherit the daemon's process context;
/// a run through one must get what `cgmgr exec` from a shell gets. So the
/// daemon serves them only if it has no seccomp filter and sees the host's
/// mounts (PID 1's mount namespace): systemd's hardening options
/// (`MemoryDenyWriteExecute=`, `RestrictAddressFamilies=`, `PrivateTmp=`,
/// `ProtectSystem=`, ...) would otherwise reach every workload.
fn confined_as_the_host() -> Result<(), StartError> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(StartError::Status)?;
    let filtered = status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .is_some_and(|v| v.trim() != "0");
    let ns = |p: &str| std::fs::metadata(p).map(|m| (m.dev(), m.ino())).ok();
    // PID 1 may be out of reach (a container's init in another user
    // namespace): then there is no host view to compare with.
    let own_mounts = ns("/proc/1/ns/mnt").is_some_and(|host| ns("/proc/self/ns/mnt") != Some(host));
    let why = match (filtered, own_mounts) {
        (false, false) => return Ok(()),
        (true, _) => "this daemon runs under a seccomp filter",
        (false, true) => "this daemon has a mount namespace of its own",
    };
    Err(StartError::Confined(why))
}

/// Why a request was not handed to a prepared sandbox (told to the
/// caller, which then builds its own).
#[derive(Debug, thiserror::Error)]
enum HandOverError {
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

/// Why this daemon serves no prepared sandboxes.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Its own context would reach every workload it prepared.
    #[error(
        "{0} (systemd hardening such as MemoryDenyWriteExecute= or PrivateTmp=), which every workload it prepared would inherit; `cgmgr exec` builds each sandbox itself instead. To serve prepared sandboxes, install systemd/standby.conf as a drop-in of cgmgr.service"
    )]
    Confined(&'static str),
    /// It is not recorded, so no `cgmgr exec` would find it.
    #[error("this daemon is not recorded for other cgmgr commands")]
    NotRecorded,
    /// `/proc/self/status` could not be read.
    #[error("/proc/self/status: {0}")]
    Status(std::io::Error),
    /// The socket could not be made.
    #[error("{}: {errno}", path.display())]
    Listen {
        /// The socket's path.
        path: PathBuf,
        /// Why.
        errno: Errno,
    },
    /// The wake pipe could not be made.
    #[error("pipe2: {0}")]
    Pipe(Errno),
    /// The thread could not be started.
    #[error("starting the standby thread: {0}")]
    Thread(std::io::Error),
}

/// A root-only `SOCK_SEQPACKET` socket at `path` (a stale one replaced).
fn listen_on(path: &Path) -> Result<OwnedFd, Errno> {
    let sock = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))),
    }
    // Bound under a temporary name, made root's alone, then renamed into
    // place: the socket never has its final name with a looser mode (and
    // no process-wide umask is changed under the daemon's other threads).
    let temporary = path.with_extension(format!("new.{}", std::process::id()));
    let _ = std::fs::remove_file(&temporary);
    bind(sock.as_raw_fd(), &UnixAddr::new(&temporary)?)?;
    let placed = std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&temporary, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&temporary);
        return Err(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)));
    }
    // No descriptor can be sent to the daemon: one the daemon dropped
    // would be closed on its thread, and the last close of a file on a
    // hung FUSE or NFS mount blocks (the red team froze the thread so).
    // Connections inherit it; a sandbox re-allows it on the one it takes.
    set_pass_rights(sock.as_fd(), false);
    listen(&sock, Backlog::new(64)?)?;
    Ok(sock)
}

/// One prepared sandbox (a `cgmgr standby` process serving one run), or
/// one being built; its socket's end tells that it is gone.
struct Member {
    ctl: OwnedFd,
    ready: bool,
}

/// The `cgmgr standby` process that builds the sandboxes: one forked child
/// per sandbox, so no sandbox pays for starting cgmgr and reading the
/// policies again.
struct Builder {
    pid: Pid,
    sock: OwnedFd,
}

/// The standbys of one group.
struct Slot {
    config: ExecConfig,
    want: u32,
    members: Vec<Member>,
    /// When the standbys taken by runs are to be replaced: once the run
    /// ends (its entry is then made due), at the latest [`REPLACE_AFTER`]
    /// after it began, so a replacement is not built while the run that
    /// took the standby starts up on the same CPUs.
    owed: Vec<Instant>,
    failures: u32,
    retry_at: Option<Instant>,
}

/// A request waiting for a sandbox of its group being built.
struct Waiting {
    group: GroupName,
    conn: OwnedFd,
    bytes: Vec<u8>,
    deadline: Instant,
}

/// A client that connected and has not sent its request yet.
struct Pending {
    conn: OwnedFd,
    deadline: Instant,
}

/// What a polled descriptor is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Listener,
    Wake,
    Pending(RawFd),
    Member(GroupName, RawFd),
    Leaving(RawFd),
    Builder,
}

struct Pool {
    root: PathBuf,
    policies: PathBuf,
    listener: OwnedFd,
    wake: OwnedFd,
    desired: Arc<Mutex<Desired>>,
    slots: BTreeMap<GroupName, Slot>,
    /// Standbys serving a run, with their group: forgotten when their
    /// socket closes (a retired idle standby is simply dropped).
    leaving: Vec<(GroupName, Member)>,
    pending: Vec<Pending>,
    /// Requests waiting for a sandbox being built, oldest first.
    waiting: Vec<Waiting>,
    /// The process that builds sandboxes, started when one is needed.
    builder: Option<Builder>,
    /// Builders that were let go, reaped once they have exited.
    stopped: Vec<Pid>,
    metrics: Counters,
    /// Not accepting until then (the daemon ran out of descriptors).
    listen_paused: Option<Instant>,
}

/// The daemon's metrics this thread keeps up to date.
pub struct Counters {
    /// `cgmgr_exec_standby_requests_total{group,result}`
    pub requests: prometheus::IntCounterVec,
    /// `cgmgr_exec_standby_ready{group}`
    pub ready: prometheus::IntGaugeVec,
}

impl Counters {
    /// One request of `group`: `served` or `none`.
    fn count(&self, group: &GroupName, result: &str) {
        self.requests
            .with_label_values(&[group.as_str(), result])
            .inc();
    }
}

impl Pool {
    fn run(&mut self) {
        loop {
            self.refill();
            let events = match self.wait() {
                Ok(events) => events,
                Err(e) => {
                    log(Level::Error, &format!("standby: poll: {e}"));
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            };
            for (source, revents) in events {
                self.on_event(source, revents);
            }
            let now = Instant::now();
            self.pending.retain(|p| p.deadline > now);
            self.expire_waiting(now);
            if self.listen_paused.is_some_and(|t| t <= now) {
                self.listen_paused = None;
            }
            self.publish_ready();
            self.stopped.retain(|&pid| {
                matches!(
                    waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)),
                    Ok(WaitStatus::StillAlive)
                )
            });
        }
    }

    /// Polls every descriptor; the ones that are ready.
    fn wait(&self) -> Result<Vec<(Source, PollFlags)>, Errno> {
        // The wake pipe first: a policy change is applied before the
        // requests that came with it are served.
        let mut sources = vec![(Source::Wake, self.wake.as_fd())];
        if self.listen_paused.is_none() {
            sources.push((Source::Listener, self.listener.as_fd()));
        }
        for p in &self.pending {
            sources.push((Source::Pending(p.conn.as_raw_fd()), p.conn.as_fd()));
        }
        for (group, slot) in &self.slots {
            for m in &slot.members {
                sources.push((
                    Source::Member(group.clone(), m.ctl.as_raw_fd()),
                    m.ctl.as_fd(),
                ));
            }
        }
        for (_, m) in &self.leaving {
            sources.push((Source::Leaving(m.ctl.as_raw_fd()), m.ctl.as_fd()));
        }
        if let Some(b) = &self.builder {
            sources.push((Source::Builder, b.sock.as_fd()));
        }
        let mut fds: Vec<PollFd<'_>> = sources
            .iter()
            .map(|(_, fd)| PollFd::new(*fd, PollFlags::POLLIN))
            .collect();
        let timeout = self
            .next_deadline()
            .map(|t| t.saturating_duration_since(Instant::now()));
        let timeout = timeout.map_or(PollTimeout::NONE, |t| {
            PollTimeout::try_from(t.max(Duration::from_millis(1))).unwrap_or(PollTimeout::MAX)
        });
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
        Ok(sources
            .iter()
            .zip(&fds)
            .filter_map(|((source, _), fd)| {
                let revents = fd.revents().unwrap_or(PollFlags::empty());
                (!revents.is_empty()).then(|| (source.clone(), revents))
            })
            .collect())
    }

    fn next_deadline(&self) -> Option<Instant> {
        let retries = self
            .slots
            .values()
            .filter(|s| s.members.len() < s.want as usize)
            .filter_map(|s| s.retry_at);
        let owed = self.slots.values().flat_map(|s| s.owed.iter().copied());
        let requests = self
            .pending
            .iter()
            .map(|p| p.deadline)
            .chain(self.waiting.iter().map(|w| w.deadline));
        // A builder let go is reaped on a later turn.
        let reap = (!self.stopped.is_empty()).then(|| Instant::now() + Duration::from_millis(100));
        let paused = self.listen_paused;
        retries
            .chain(owed)
            .chain(requests)
            .chain(reap)
            .chain(paused)
            .min()
    }

    fn on_event(&mut self, source: Source, revents: PollFlags) {
        match source {
            Source::Wake => self.resync(),
            Source::Listener => self.accept(),
            Source::Pending(fd) => {
                if let Some(i) = self.pending.iter().position(|p| p.conn.as_raw_fd() == fd) {
                    let p = self.pending.swap_remove(i);
                    self.dispatch(p.conn);
                }
            }
            Source::Member(group, fd) => self.on_member(&group, fd, revents),
            Source::Builder => self.stop_builder(),
            Source::Leaving(fd) => {
                if let Some(i) = self
                    .leaving
                    .iter()
                    .position(|(_, m)| m.ctl.as_raw_fd() == fd)
                {
                    // What it did with the request: counted by its word.
                    let said = recv_plain(self.leaving[i].1.ctl.as_fd(), MsgFlags::MSG_DONTWAIT);
                    if let Ok(Some(word)) = &said {
                        let served = Word::parse(word) == Some(Word::Started);
                        let result = if served { "served" } else { "none" };
                        self.metrics.count(&self.leaving[i].0, result);
                        return;
                    }
                    let (group, _) = self.leaving.swap_remove(i);
                    // Its run is over: its replacement is due now.
                    if let Some(slot) = self.slots.get_mut(&group)
                        && let Some(first) = slot.owed.iter_mut().min()
                    {
                        *first = Instant::now();
                    }
                }
            }
        }
    }

    fn publish_ready(&self) {
        for (group, slot) in &self.slots {
            let ready = slot.members.iter().filter(|m| m.ready).count();
            self.metrics
                .ready
                .with_label_values(&[group.as_str()])
                .set(i64::try_from(ready).unwrap_or(i64::MAX));
        }
    }

    /// The policy changed: retire what it no longer asks for.
    fn resync(&mut self) {
        let mut drained = [0u8; 64];
        while matches!(nix::unistd::read(&self.wake, &mut drained), Ok(n) if n > 0) {}
        let desired = self
            .desired
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let groups: Vec<GroupName> = self.slots.keys().cloned().collect();
        let mut changed = false;
        for group in groups {
            let keep = desired.get(&group).is_some_and(|(config, _)| {
                self.slots.get(&group).is_some_and(|s| &s.config == config)
            });
            if !keep && let Some(slot) = self.slots.remove(&group) {
                let _ = self.metrics.ready.remove_label_values(&[group.as_str()]);
                drop(slot.members); // closing its socket ends an idle standby
                changed = true;
            }
        }
        // The builder read the policies when it started: a new one reads
        // the changed tables.
        if changed {
            self.stop_builder();
        }
        for (group, (config, want)) in desired {
            let slot = self.slots.entry(group).or_insert_with(|| Slot {
                config,
                want,
                members: Vec::new(),
                owed: Vec::new(),
                failures: 0,
                retry_at: None,
            });
            slot.want = want;
            let extra = slot.members.len().saturating_sub(want as usize);
            // Closing their sockets ends idle standbys.
            drop(slot.members.drain(..extra).collect::<Vec<_>>());
        }
    }

    /// Lets the builder go (it exits when its socket closes; the standbys
    /// it made live on); a new one is started when a sandbox is needed.
    fn stop_builder(&mut self) {
        if let Some(b) = self.builder.take() {
            drop(b.sock);
            self.stopped.push(b.pid);
        }
    }

    /// Asks the builder (started if need be) for a sandbox of `group`.
    fn build(&mut self, group: &GroupName) -> Result<Member, Errno> {
        let (ctl, theirs) = seqpacket_pair()?;
        let config = self.slots.get(group).map_or(0, |slot| slot.config.digest());
        let request = BuildRequest {
            group: group.to_string(),
            config,
        };
        // A builder that died since its last turn answers EPIPE: one more
        // try with a new one.
        for _ in 0..2 {
            if self.builder.is_none() {
                self.builder = Some(start_builder(&self.root, &self.policies)?);
            }
            let sent = match &self.builder {
                Some(b) => send_json(b.sock.as_fd(), &request, &[theirs.as_raw_fd()]),
                None => Err(Errno::ESRCH),
            };
            match sent {
                Ok(()) => return Ok(Member { ctl, ready: false }),
                Err(_) => self.stop_builder(),
            }
        }
        Err(Errno::EPIPE)
    }

    fn accept(&mut self) {
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
    fn dispatch(&mut self, conn: OwnedFd) {
        // Descriptors sent along are discarded by the kernel: stdio goes to
        // the sandbox itself, later.
        let bytes = match recv_plain(conn.as_fd(), MsgFlags::MSG_DONTWAIT) {
            Ok(Some(bytes)) => bytes,
            Err(Errno::EMSGSIZE) => {
                let why = "a request larger than a prepared sandbox takes".to_string();
                let _ = send_json(conn.as_fd(), &Reply::None { why }, &[]);
                return;
            }
            _ => return,
        };
        let why = match serde_json::from_slice::<Request>(&bytes) {
            Err(_) => "a request that does not parse".to_string(),
            Ok(r) if r.v != PROTOCOL => format!("protocol {} (the daemon speaks {PROTOCOL})", r.v),
            Ok(r) => match GroupName::parse(&r.group) {
                Err(_) => "not a group name".to_string(),
                Ok(group) => match self.hand_over(&group, &bytes, conn.as_fd()) {
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
            },
        };
        let _ = send_json(conn.as_fd(), &Reply::None { why }, &[]);
    }

    /// True when a sandbox of `group` is being built, or owed, and the
    /// last build did not fail: worth waiting for.
    fn building(&self, group: &GroupName) -> bool {
        self.slots.get(group).is_some_and(|slot| {
            slot.failures == 0 && (slot.members.iter().any(|m| !m.ready) || !slot.owed.is_empty())
        })
    }

    /// Keeps the request until a sandbox of `group` is ready (its owed
    /// replacement is built now), at most [`WAIT_FOR_BUILD`].
    fn wait_for_build(&mut self, group: GroupName, conn: OwnedFd, bytes: Vec<u8>) {
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
    fn serve_waiting(&mut self, group: &GroupName) {
        let Some(i) = self.waiting.iter().position(|w| &w.group == group) else {
            return;
        };
        let w = self.waiting.remove(i);
        if let Err(why) = self.hand_over(group, &w.bytes, w.conn.as_fd()) {
            let why = why.to_string();
            let _ = send_json(w.conn.as_fd(), &Reply::None { why }, &[]);
        }
    }

    /// Answers `none` to the requests that waited too long.
    fn expire_waiting(&mut self, now: Instant) {
        let (expired, kept): (Vec<Waiting>, Vec<Waiting>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|w| w.deadline <= now);
        self.waiting = kept;
        for w in expired {
            self.metrics.count(&w.group, "none");
            let why = format!("no standby of group {} was ready in time", w.group);
            let why = why.to_string();
            let _ = send_json(w.conn.as_fd(), &Reply::None { why }, &[]);
        }
    }

    /// Passes the request and its connection to a ready standby of `group`.
    fn hand_over(
        &mut self,
        group: &GroupName,
        bytes: &[u8],
        conn: BorrowedFd<'_>,
    ) -> Result<(), HandOverError> {
        let Some(slot) = self.slots.get_mut(group) else {
            return Err(HandOverError::NoStandby(group.clone()));
        };
        let raw = [conn.as_raw_fd()];
        let mut tried = 0;
        while let Some(i) = slot.members.iter().skip(tried).position(|m| m.ready) {
            let i = i + tried;
            match send(slot.members[i].ctl.as_fd(), bytes, &raw) {
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

    fn on_member(&mut self, group: &GroupName, fd: RawFd, revents: PollFlags) {
        let Some(slot) = self.slots.get_mut(group) else {
            return;
        };
        let Some(i) = slot.members.iter().position(|m| m.ctl.as_raw_fd() == fd) else {
            return;
        };
        if revents.contains(PollFlags::POLLIN)
            && let Ok(Some(bytes)) = recv_plain(slot.members[i].ctl.as_fd(), MsgFlags::MSG_DONTWAIT)
            && Word::parse(&bytes) == Some(Word::Ready)
        {
            slot.members[i].ready = true;
            slot.failures = 0;
            self.serve_waiting(group);
            return;
        }
        // Its socket closed: the standby is gone before serving anything
        // (its reason, if any, is in the log from its stderr).
        let m = slot.members.swap_remove(i);
        if !m.ready {
            slot.failures += 1;
            let pause = backoff(slot.failures);
            slot.retry_at = Some(Instant::now() + pause);
            log(
                Level::Warning,
                &format!(
                    "standby for group {group} could not be prepared; next try in {:.1}s",
                    pause.as_secs_f64()
                ),
            );
        }
    }

    /// Starts standbys where fewer than wanted are alive, but for the
    /// replacements not yet due.
    fn refill(&mut self) {
        let now = Instant::now();
        let groups: Vec<GroupName> = self.slots.keys().cloned().collect();
        for group in groups {
            while let Some(slot) = self.slots.get_mut(&group) {
                slot.owed.retain(|&due| due > now);
                let missing = slot.members.len() + slot.owed.len() < slot.want as usize;
                if !missing || slot.retry_at.is_some_and(|t| t > now) {
                    break;
                }
                let built = self.build(&group);
                let Some(slot) = self.slots.get_mut(&group) else {
                    break;
                };
                match built {
                    Ok(m) => slot.members.push(m),
                    Err(e) => {
                        slot.failures += 1;
                        slot.retry_at = Some(now + backoff(slot.failures));
                        log(
                            Level::Error,
                            &format!("standby for group {group}: starting cgmgr standby: {e}"),
                        );
                        break;
                    }
                }
            }
        }
    }
}

/// The pause after `failures` failures in a row (at least one): 0.1 s
/// after the first, doubling with each further one, at most [`MAX_BACKOFF`].
fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(12);
    let pause = Duration::from_millis(100).saturating_mul(1u32 << doublings);
    pause.min(MAX_BACKOFF)
}

/// Starts the builder, `cgmgr standby`, its socket as fd 3, with
/// `posix_spawn` (the daemon's memory is not copied). The program is this
/// process's own (`/proc/self/exe`): a standby always speaks the daemon's
/// protocol, even after the binary was replaced.
fn start_builder(root: &Path, policies: &Path) -> Result<Builder, Errno> {
    use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags, posix_spawn};
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let (ctl, theirs) = seqpacket_pair()?;
    let cstr = |b: &[u8]| CString::new(b).map_err(|_| Errno::EINVAL);
    let args = [
        cstr(b"cgmgr")?,
        cstr(b"--root")?,
        cstr(root.as_os_str().as_bytes())?,
        cstr(b"standby")?,
        cstr(b"--policies")?,
        cstr(policies.as_os_str().as_bytes())?,
    ];
    let env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != "CGMGR_ROOT")
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    let mut actions = PosixSpawnFileActions::init()?;
    actions.add_open(
        0,
        "/dev/null",
        nix::fcntl::OFlag::O_RDONLY,
        nix::sys::stat::Mode::empty(),
    )?;
    actions.add_open(
        1,
        "/dev/null",
        nix::fcntl::OFlag::O_WRONLY,
        nix::sys::stat::Mode::empty(),
    )?;
    // dup2 onto itself would keep close-on-exec: moved off fd 3 first.
    let theirs = if theirs.as_raw_fd() == 3 {
        nix::fcntl::fcntl(&theirs, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(4)).map(|fd| {
            // SAFETY: F_DUPFD_CLOEXEC just made this descriptor for us.
            unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }
        })?
    } else {
        theirs
    };
    actions.add_dup2(theirs.as_raw_fd(), 3)?;
    let mut attr = PosixSpawnAttr::init()?;
    attr.set_sigmask(&nix::sys::signal::SigSet::empty())?;
    // Every signal at its default, glibc's internal ones included (which
    // posix_spawn otherwise leaves ignored, and a workload would inherit).
    // SAFETY: a zeroed sigset_t is valid; setting every bit makes the set
    // of all signals, a valid value for the kernel and for glibc.
    let every = unsafe {
        let mut raw: libc::sigset_t = std::mem::zeroed();
        std::ptr::write_bytes(&raw mut raw, 0xff, 1);
        nix::sys::signal::SigSet::from_sigset_t_unchecked(raw)
    };
    attr.set_sigdefault(&every)?;
    attr.set_flags(
        PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK | PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF,
    )?;
    let pid = posix_spawn(c"/proc/self/exe", &actions, &attr, &args, &env)?;
    drop(theirs);
    Ok(Builder { pid, sock: ctl })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        // As the README says: 0.1 s after the first failure, doubling.
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(3), Duration::from_millis(400));
        assert_eq!(backoff(40), MAX_BACKOFF);
    }
}
