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

mod builder;
mod pool;
mod requests;

use builder::Builder;
use pool::{Member, Pending, Pool, Waiting};

use super::log::{Level, log};
use crate::cgroup::GroupName;
use crate::exec::standby::{
    BuildRequest, DecodeError, PROTOCOL, Reply, Request, Word, decode, recv_plain,
    recv_without_fds, send, send_bytes, seqpacket_pair, set_pass_rights,
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
