//! `cgmgr daemon`: apply, then keep enforcing.
//!
//! One loop over one event enum ([`Event`]): policy-file changes and
//! SIGHUP reload, a timer reconciles drift, limit-event notifications are
//! logged, SIGTERM/SIGINT stop (a second one exits at once). HTTP serves
//! `/metrics` and `/healthz` on its own threads from [`Shared`], which the
//! loop only ever locks for a moment: health never waits on a scrape, and
//! concurrent scrapes share one collection ([`Scrape`]).
//!
//! This file starts the daemon; the loop (`event_loop`), applying and
//! reloading policies and correcting drift (`reload`), limit events
//! (`limits`), the state the HTTP threads read (`shared`) and the signal
//! thread (`signals`) have files of their own.

pub mod health;
pub mod http;
pub mod log;
pub mod nesting;
pub mod pressure;
pub mod standby;
pub mod watch;

mod event_loop;
mod limits;
mod reload;
mod shared;
mod signals;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use inotify::WatchDescriptor;

use crate::cgroup::{CgroupRoot, GroupName};
use crate::metrics::own::OwnMetrics;
use crate::policy::PolicySet;
use crate::runtime::record;
use limits::Counters;
use log::{Level, log};
use shared::{Scrape, Shared, Status, respond};
use signals::spawn_signal_thread;
use watch::LimitWatcher;

/// What the loop reacts to.
#[derive(Debug)]
pub enum Event {
    /// Re-read the policies (why).
    Reload(&'static str),
    /// A limit-event file changed.
    Limit(WatchDescriptor),
    /// Stop gracefully.
    Stop,
}

/// How the daemon was started.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// The managed root, resolved.
    pub root: PathBuf,
    /// The policy directory.
    pub policy_dir: PathBuf,
    /// Where to serve HTTP.
    pub listen: SocketAddr,
    /// Period of drift correction.
    pub reconcile: Duration,
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Another daemon holds the root.
    #[error(
        "another cgmgr daemon already manages {root} ({holder}; its lock is held); refusing to run two writers on one subtree. Nothing was written"
    )]
    Locked {
        /// The root.
        root: PathBuf,
        /// The lock's holder, from /proc/locks.
        holder: nesting::Holder,
    },
    /// Another daemon's root contains this one's, or lies inside it.
    #[error(
        "another cgmgr daemon ({holder}) manages {their_root}, which {relation} this daemon's root {root}; refusing to run two writers on one subtree (both would write the groups they share). Nothing was written"
    )]
    Nested {
        /// This daemon's root.
        root: PathBuf,
        /// The other daemon's root.
        their_root: PathBuf,
        /// How it stands to this one.
        relation: nesting::Relation,
        /// The other daemon.
        holder: nesting::Holder,
    },
    /// The host's lock table could not be read.
    #[error("reading {path} (to find daemons on nested roots): {source}")]
    Locks {
        /// `/proc/locks`.
        path: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// Setup failed.
    #[error("{0}")]
    Setup(String),
}

/// Runs until SIGTERM/SIGINT. The initial policy set must be valid and applied.
pub fn run(root: CgroupRoot, opts: DaemonOptions, initial: PolicySet) -> Result<(), DaemonError> {
    let root = Arc::new(root);
    // Held until `run` returns: the lock lives as long as the descriptor.
    let _lock = lock_root(&root, &opts)?;
    raise_nofile_limit();
    let (tx, rx) = channel();
    spawn_signal_thread(tx.clone())?;
    let policy_watch = watch::watch_policies(&opts.policy_dir, tx.clone())
        .map_err(|e| DaemonError::Setup(format!("watching {}: {e}", opts.policy_dir.display())))?;
    let mut limits =
        LimitWatcher::start(tx.clone()).map_err(|e| DaemonError::Setup(format!("inotify: {e}")))?;
    let own = OwnMetrics::new()
        .map_err(|e| DaemonError::Setup(format!("registering the daemon's own metrics: {e}")))?;
    let shared = Arc::new(Shared {
        status: Mutex::default(),
        own,
        heartbeat: health::Heartbeat::default(),
        scrape: Scrape::default(),
    });
    let listener = TcpListener::bind(opts.listen)
        .map_err(|e| DaemonError::Setup(format!("listening on {}: {e}", opts.listen)))?;
    // `--listen 127.0.0.1:0` picks a port: log and record the real one.
    let opts = DaemonOptions {
        listen: listener.local_addr().unwrap_or(opts.listen),
        ..opts
    };
    let policy_digest = crate::policy::digest(std::slice::from_ref(&opts.policy_dir));
    let pressure = pressure::Pressure::start(root.clone(), shared.clone())
        .map_err(|e| DaemonError::Setup(format!("starting the pressure thread: {e}")))?;
    let mut daemon = Daemon {
        pressure,
        root: root.clone(),
        opts,
        shared: shared.clone(),
        set: PolicySet::default(),
        counts: BTreeMap::new(),
        policy_digest,
        standbys: None,
        policy_watch,
    };
    daemon.note_policy_watch(None, daemon.policy_watch.failure());
    daemon.install(initial, &mut limits)?;
    let record = publish_record(&daemon.opts);
    // Only a daemon other commands find serves prepared sandboxes.
    daemon.standbys = Some(match &record {
        Some(_) => start_standbys(&daemon.opts, &daemon.shared),
        None => Err(standby::StartError::NotRecorded),
    });
    daemon.sync_standbys(&daemon.set.clone());
    notify("READY=1");
    log(
        Level::Info,
        &format!(
            "serving /metrics and /healthz on http://{}",
            daemon.opts.listen
        ),
    );
    let handler_root = root.clone();
    std::thread::Builder::new()
        .name("http-accept".into())
        .spawn(move || {
            http::serve(
                listener,
                Arc::new(move |path: &str| respond(&handler_root, &shared, path)),
            )
        })
        .map_err(|e| DaemonError::Setup(format!("starting the HTTP thread: {e}")))?;
    daemon.event_loop(&rx, &mut limits);
    notify("STOPPING=1");
    log(
        Level::Info,
        "stopping; groups and workloads are left in place",
    );
    let open = daemon.pressure.stop(RELEASE_AT_STOP);
    if open > 0 {
        log(
            Level::Warning,
            &format!(
                "pressure triggers still open after {}s; the process exit closes the rest",
                RELEASE_AT_STOP.as_secs()
            ),
        );
    }
    Ok(())
}

/// How long a stop waits for the pressure triggers to be closed (1,024 take
/// about 0.3 s on several threads; the exit would close them one by one,
/// 9 s). Well within systemd's stop timeout of the shipped unit (10 s).
const RELEASE_AT_STOP: Duration = Duration::from_secs(5);

struct Daemon {
    /// The pressure rules' thread.
    pressure: pressure::Pressure,
    root: Arc<CgroupRoot>,
    opts: DaemonOptions,
    shared: Arc<Shared>,
    /// The enforced policy set.
    set: PolicySet,
    /// Last seen counters of each limit-event file, to log only increases.
    counts: BTreeMap<(GroupName, &'static str), Counters>,
    /// Digest of the policy files at the last reload (see `policy::digest`).
    policy_digest: u64,
    /// The prepared sandboxes (`standby` in `[exec]` tables), or why this
    /// daemon does not serve them (`None` until the daemon is recorded).
    standbys: Option<Result<standby::Standbys, standby::StartError>>,
    /// The policy path's inotify watches.
    policy_watch: watch::PolicyWatch,
}

impl Daemon {
    fn state(&self) -> MutexGuard<'_, Status> {
        self.shared.status()
    }

    /// Re-arms the policy path's watches (at each reconcile tick): one that
    /// could not be added before may be now.
    fn rearm_policy_watch(&self) {
        let before = self.state().degraded.policy_watch.clone();
        let now = self.policy_watch.rearm();
        self.note_policy_watch(before, now);
    }

    /// Says a change in whether the policy path is fully watched (`before`:
    /// what was said last; `now`: why the last arming failed), in the log
    /// and in `/healthz`.
    fn note_policy_watch(&self, before: Option<String>, now: Option<String>) {
        if now == before {
            return;
        }
        let dir = self.opts.policy_dir.display();
        match &now {
            Some(why) => log(
                Level::Warning,
                &format!(
                    "the policy directory {dir} is not fully watched: {why}; edits are applied at the next reconcile tick (every {}s), which tries the watch again",
                    self.opts.reconcile.as_secs()
                ),
            ),
            None => log(
                Level::Info,
                &format!("watching the policy directory {dir} again"),
            ),
        }
        self.state().degraded.policy_watch = now;
    }

    /// Gives `set`'s `standby` counts to the prepared sandboxes; where this
    /// daemon cannot serve them and a group asks, says why.
    fn sync_standbys(&self, set: &PolicySet) {
        match &self.standbys {
            None => {}
            Some(Ok(standbys)) => standbys.sync(set),
            Some(Err(why)) => {
                let asking: Vec<String> = set
                    .groups
                    .iter()
                    .filter(|(_, g)| {
                        g.exec
                            .as_ref()
                            .and_then(|e| e.standby)
                            .is_some_and(|n| n > 0)
                    })
                    .map(|(name, _)| name.to_string())
                    .collect();
                if !asking.is_empty() {
                    log(
                        Level::Warning,
                        &format!(
                            "not serving prepared sandboxes (`standby`) for {}: {why}",
                            asking.join(", ")
                        ),
                    );
                }
            }
        }
    }
}

/// Publishes where this daemon's groups and policies are, for `cgmgr exec`,
/// `status`, `metrics` and `apply`. Failing to is logged, not fatal: the
/// daemon still enforces; commands then need `--root`.
fn publish_record(opts: &DaemonOptions) -> Option<record::Published> {
    let absolute = |p: &std::path::Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let record = record::DaemonRecord {
        pid: i32::try_from(std::process::id()).unwrap_or(0),
        root: absolute(&opts.root),
        policies: absolute(&opts.policy_dir),
        listen: opts.listen.to_string(),
    };
    let path = record::record_path();
    match record.publish(&path) {
        Ok(held) => Some(held),
        Err(e) => {
            log(
                Level::Warning,
                &format!(
                    "not recording this daemon for other cgmgr commands: {e}; they need --root {}",
                    opts.root.display()
                ),
            );
            None
        }
    }
}

/// Starts serving prepared sandboxes; failing to is not fatal (`cgmgr
/// exec` then builds each sandbox itself): the reason is logged when a
/// group asks for them.
fn start_standbys(
    opts: &DaemonOptions,
    shared: &Shared,
) -> Result<standby::Standbys, standby::StartError> {
    let absolute = |p: &std::path::Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let socket = crate::runtime::exec_socket_path();
    let metrics = standby::Counters {
        requests: shared.own.standby_requests.clone(),
        ready: shared.own.standby_ready.clone(),
    };
    standby::Standbys::start(
        &socket,
        absolute(&opts.root),
        absolute(&opts.policy_dir),
        metrics,
    )
}

/// One daemon per subtree: an exclusive, non-blocking `flock` on the root
/// directory itself, held as long as the returned descriptor; then no other
/// daemon's lock on an ancestor or a descendant of the root (see
/// [`nesting`]). Runs before anything is written to the tree.
fn lock_root(
    root: &CgroupRoot,
    opts: &DaemonOptions,
) -> Result<nix::fcntl::Flock<std::os::fd::OwnedFd>, DaemonError> {
    let dir = root
        .open_dir(&GroupName::root())
        .map_err(|e| DaemonError::Setup(format!("opening {}: {e}", opts.root.display())))?;
    let meta = nix::sys::stat::fstat(&dir)
        .map_err(|e| DaemonError::Setup(format!("stat {}: {e}", opts.root.display())))?;
    let (dev, inode) = (meta.st_dev, meta.st_ino);
    let own = i32::try_from(std::process::id()).unwrap_or(0);
    let lock = match nix::fcntl::Flock::lock(dir, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(lock) => lock,
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            let others = nesting::others_on_device(&read_locks()?, dev, own);
            return Err(DaemonError::Locked {
                root: opts.root.clone(),
                holder: nesting::holder_of(&others, inode).unwrap_or(nesting::Holder(0)),
            });
        }
        Err((_, e)) => {
            return Err(DaemonError::Setup(format!(
                "locking {}: {e}",
                opts.root.display()
            )));
        }
    };
    let others = nesting::others_on_device(&read_locks()?, dev, own);
    let resolved = std::fs::canonicalize(&opts.root).unwrap_or_else(|_| opts.root.clone());
    match nesting::find_nested(&resolved, &others) {
        None => Ok(lock),
        Some(n) => Err(DaemonError::Nested {
            root: opts.root.clone(),
            their_root: n.root,
            relation: n.relation,
            holder: n.holder,
        }),
    }
}

/// The held write `flock`s of the host.
fn read_locks() -> Result<Vec<nesting::FlockWrite>, DaemonError> {
    std::fs::read_to_string(nesting::PROC_LOCKS)
        .map(|text| nesting::held_flock_writes(&text))
        .map_err(|source| DaemonError::Locks {
            path: nesting::PROC_LOCKS,
            source,
        })
}

/// Raises RLIMIT_NOFILE: metrics keep each group's files open. As root the
/// hard limit itself is raised to the kernel's `fs.nr_open`; otherwise the
/// soft limit goes up to the hard one. Files beyond the limit are still
/// read, the slow way (see `metrics::reader`).
fn raise_nofile_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    if let Some(n) = nr_open
        && setrlimit(Resource::RLIMIT_NOFILE, n, n).is_ok()
    {
        return;
    }
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// Tells the service manager (Type=notify) about a state change, when it
/// listens: READY=1, STOPPING=1, WATCHDOG=1.
fn notify(state: &str) {
    if let Err(e) = crate::systemd::notify::notify(state) {
        log(Level::Warning, &format!("{state}: {e}"));
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
