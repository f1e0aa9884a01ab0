//! `cgmgr daemon`: apply, then keep enforcing.
//!
//! One loop over one event enum ([`Event`]): policy-file changes and
//! SIGHUP reload, a timer reconciles drift, limit-event notifications are
//! logged, SIGTERM/SIGINT stop (a second one exits at once). HTTP serves
//! `/metrics` and `/healthz` on its own threads from [`Shared`], which the
//! loop only ever locks for a moment: health never waits on a scrape, and
//! concurrent scrapes share one collection ([`Scrape`]).

pub mod health;
pub mod http;
pub mod log;
pub mod pressure;
pub mod standby;
pub mod watch;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use inotify::WatchDescriptor;

use crate::apply::{self, Options, Step};
use crate::cgroup::{CgroupRoot, GroupName, format};
use crate::metrics::Collector;
use crate::metrics::own::OwnMetrics;
use crate::policy::{self, PolicySet};
use crate::runtime::record;
use http::Response;
use log::{Level, log};
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
        "another cgmgr daemon already manages {0} (its lock is held); refusing to run two writers on one subtree"
    )]
    Locked(PathBuf),
    /// Setup failed.
    #[error("{0}")]
    Setup(String),
}

/// State shared with the HTTP threads.
struct Shared {
    /// What the loop last recorded; locked only to copy in or out.
    status: Mutex<Status>,
    /// The daemon's own metrics (atomic counters: no lock).
    own: OwnMetrics,
    /// Beaten by the loop on every turn.
    heartbeat: health::Heartbeat,
    /// The metrics collector and the scrape in flight.
    scrape: Scrape,
}

/// The loop's view for the HTTP threads.
#[derive(Default)]
struct Status {
    groups: Arc<Vec<GroupName>>,
    /// Limit-event files without an inotify watch.
    unwatched_event_files: usize,
    conditions: health::Conditions,
}

impl Shared {
    fn status(&self) -> MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Concurrent scrapes share one collection: a request that arrives while
/// one runs waits for it and gets its text (at most one collection old),
/// instead of queueing for a collection of its own behind it.
#[derive(Default)]
struct Scrape {
    collector: Mutex<Collector>,
    flight: Mutex<Flight>,
    finished: Condvar,
}

#[derive(Default)]
struct Flight {
    running: bool,
    generation: u64,
    last: Arc<String>,
}

impl Scrape {
    fn run(&self, collect: impl FnOnce(&mut Collector) -> String) -> Arc<String> {
        let mut flight = self.flight.lock().unwrap_or_else(PoisonError::into_inner);
        if flight.running {
            let seen = flight.generation;
            while flight.running && flight.generation == seen {
                flight = self
                    .finished
                    .wait(flight)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if flight.generation != seen {
                return flight.last.clone();
            }
            // The one in flight ended without a result: collect here.
        }
        flight.running = true;
        drop(flight);
        let landing = Landing(self);
        let body = Arc::new(collect(
            &mut self
                .collector
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        ));
        let mut flight = self.flight.lock().unwrap_or_else(PoisonError::into_inner);
        flight.last = body.clone();
        flight.generation += 1;
        drop(flight);
        drop(landing);
        body
    }
}

/// Ends a flight, also when the collection panicked: waiters never hang.
struct Landing<'a>(&'a Scrape);

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        let mut flight = self.0.flight.lock().unwrap_or_else(PoisonError::into_inner);
        flight.running = false;
        drop(flight);
        self.0.finished.notify_all();
    }
}

/// Runs until SIGTERM/SIGINT. The initial policy set must be valid and applied.
pub fn run(root: CgroupRoot, opts: DaemonOptions, initial: PolicySet) -> Result<(), DaemonError> {
    let root = Arc::new(root);
    // Held until `run` returns: the lock lives as long as the descriptor.
    let _lock = lock_root(&root, &opts)?;
    raise_nofile_limit();
    let (tx, rx) = channel();
    spawn_signal_thread(tx.clone())?;
    watch::watch_policies(&opts.policy_dir, tx.clone())
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
    };
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
    Ok(())
}

/// A limit-event file's counters by kernel key, as last seen. Logging
/// treats every counter alike, so this stays the file's own key list rather
/// than a typed reading, which would drop the keys cgmgr does not know.
type Counters = Vec<(String, u64)>;

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
}

impl Daemon {
    fn state(&self) -> MutexGuard<'_, Status> {
        self.shared.status()
    }

    /// One loop over every event; it also pings systemd's watchdog, so a
    /// loop stuck on one event gets the daemon restarted.
    fn event_loop(&mut self, rx: &Receiver<Event>, limits: &mut LimitWatcher) {
        let mut next_reconcile = Instant::now() + self.opts.reconcile;
        let watchdog = crate::systemd::notify::watchdog_interval();
        let mut next_ping = Instant::now();
        loop {
            self.shared.heartbeat.beat();
            if let Some(every) = watchdog
                && Instant::now() >= next_ping
            {
                notify("WATCHDOG=1");
                next_ping = Instant::now() + every;
            }
            let beat = Instant::now() + health::BEAT_EVERY;
            let due = match watchdog {
                Some(_) => next_reconcile.min(next_ping).min(beat),
                None => next_reconcile.min(beat),
            };
            let wait = due.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(Event::Stop) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                Ok(Event::Reload(why)) => {
                    // Every reload request queued behind this one is served
                    // by this one reload; a stop among them is served now.
                    let Some(Drained {
                        limit_events,
                        asked,
                    }) = drain_reloads(rx)
                    else {
                        return;
                    };
                    // The reconcile tick may have loaded this change already
                    // (it compares the digest): file events then have nothing
                    // left to do. A SIGHUP always reloads, also when it was
                    // queued behind a file event.
                    let digest = self.policy_files_digest();
                    let only_files = why == watch::FILES_CHANGED && !asked;
                    let loaded = only_files
                        && self.state().conditions.reload_error.is_none()
                        && digest == self.policy_digest;
                    if !loaded {
                        self.reload(why, digest, limits);
                    }
                    for wd in limit_events {
                        self.on_limit(&wd, limits);
                    }
                }
                Ok(Event::Limit(wd)) => self.on_limit(&wd, limits),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if Instant::now() >= next_reconcile {
                        let digest = self.policy_files_digest();
                        if digest != self.policy_digest {
                            self.reload("policy files differ from the last reload", digest, limits);
                        }
                        self.reconcile(limits);
                        // Re-arms rules whose group was made again.
                        self.pressure.sync(pressure::rules_of(&self.set));
                        for (group, file) in limits.unwatched().to_vec() {
                            self.limit_event(&group, file);
                        }
                        next_reconcile = Instant::now() + self.opts.reconcile;
                    }
                }
            }
        }
    }

    fn on_limit(&mut self, wd: &WatchDescriptor, limits: &LimitWatcher) {
        if let Some((group, file)) = limits.lookup(wd).cloned() {
            self.limit_event(&group, file);
        }
    }

    /// Applies `set` and makes it the enforced one.
    fn install(&mut self, set: PolicySet, limits: &mut LimitWatcher) -> Result<(), DaemonError> {
        let plan = apply::plan(&self.root, &set, Options::default())
            .map_err(|e| DaemonError::Setup(e.to_string()))?;
        for step in &plan.steps {
            log(Level::Info, &format!("apply: {step}"));
        }
        apply::execute(&self.root, &plan).map_err(|e| DaemonError::Setup(e.to_string()))?;
        self.watch_groups(&set, limits);
        let mut state = self.state();
        let own = &self.shared.own;
        own.policy_groups
            .set(i64::try_from(set.groups.len()).unwrap_or(i64::MAX));
        own.reloads.with_label_values(&["success"]).inc();
        own.last_reload_success.set(unix_now());
        state.groups = Arc::new(set.groups.keys().cloned().collect());
        state.conditions.started = true;
        state.conditions.reload_error = None;
        state.conditions.drift_error = None;
        drop(state);
        self.pressure.sync(pressure::rules_of(&set));
        self.sync_standbys(&set);
        self.set = set;
        Ok(())
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

    fn policy_files_digest(&self) -> u64 {
        crate::policy::digest(std::slice::from_ref(&self.opts.policy_dir))
    }

    /// Reloads the policies; `digest` is that of the files about to be
    /// read, taken by the caller, which compared it.
    fn reload(&mut self, why: &str, digest: u64, limits: &mut LimitWatcher) {
        self.policy_digest = digest;
        log(
            Level::Info,
            &format!(
                "reloading policies from {} ({why})",
                self.opts.policy_dir.display()
            ),
        );
        let result = policy::load(std::slice::from_ref(&self.opts.policy_dir))
            .map_err(|e| e.to_string())
            .and_then(|set| self.install(set, limits).map_err(|e| e.to_string()));
        if let Err(e) = result {
            log(
                Level::Error,
                &format!("reload rejected, the previous policy stays enforced:\n{e}"),
            );
            let mut state = self.state();
            self.shared.own.reloads.with_label_values(&["error"]).inc();
            state.conditions.reload_error = Some(e);
            drop(state);
            // `cgmgr exec` reads the files itself and refuses them: no
            // prepared sandbox may run the old tables meanwhile.
            if let Some(Ok(standbys)) = &self.standbys {
                standbys.sync(&PolicySet::default());
            }
        } else {
            log(Level::Info, "reload succeeded");
        }
    }

    /// Rewrites what drifted from the enforced policy, recreating removed groups.
    fn reconcile(&mut self, limits: &mut LimitWatcher) {
        let set = self.set.clone();
        let plan = match apply::plan(
            &self.root,
            &set,
            Options {
                prune: false,
                force: true,
            },
        ) {
            Ok(p) => p,
            Err(e) => {
                log(Level::Error, &format!("drift check failed: {e}"));
                self.state().conditions.drift_error = Some(format!("drift check failed: {e}"));
                return;
            }
        };
        if plan.steps.is_empty() {
            self.state().conditions.drift_error = None;
            return;
        }
        let mut corrections = Vec::new();
        let mut recreated = false;
        for step in &plan.steps {
            log(Level::Warning, &format!("drift: {step}"));
            match step {
                Step::Write { group, setting, .. } => {
                    corrections.push((group.to_string(), setting.file().to_string()))
                }
                Step::Create { group } => {
                    recreated = true;
                    corrections.push((group.to_string(), "(group)".to_string()));
                }
                _ => {}
            }
        }
        let result = apply::execute(&self.root, &plan);
        let mut state = self.state();
        match result {
            Ok(_) => {
                for key in corrections {
                    self.shared
                        .own
                        .drift_corrections
                        .with_label_values(&[key.0.as_str(), key.1.as_str()])
                        .inc();
                }
                state.conditions.drift_error = None;
            }
            Err(e) => {
                log(Level::Error, &format!("drift correction failed: {e}"));
                state.conditions.drift_error = Some(format!("drift correction failed: {e}"));
            }
        }
        drop(state);
        if recreated {
            self.watch_groups(&set, limits);
        }
    }

    /// After groups were created: marks them managed, watches their
    /// limit-event files, and takes the current counters as the baseline (a
    /// recreated group's counters start again from 0).
    fn watch_groups(&mut self, set: &PolicySet, limits: &mut LimitWatcher) {
        apply::mark_declared(&self.root, set);
        let groups: Vec<GroupName> = set.groups.keys().cloned().collect();
        let failed = limits.set_groups(self.root.path(), &groups);
        let unwatched = limits.unwatched().len();
        let mut state = self.state();
        state.unwatched_event_files = unwatched;
        self.shared
            .own
            .unwatched_event_files
            .set(i64::try_from(unwatched).unwrap_or(i64::MAX));
        drop(state);
        if let Some(e) = failed {
            log(
                Level::Warning,
                &format!(
                    "{unwatched} limit-event file(s) cannot be watched ({e}; see fs.inotify.max_user_watches): \
                     their OOM kills and pids.max hits are logged at each reconcile tick \
                     (every {}s) instead of as they happen",
                    self.opts.reconcile.as_secs_f64()
                ),
            );
        }
        for g in &groups {
            for file in watch::EVENT_FILES {
                let now = self.read_counts(g, file);
                self.counts.insert((g.clone(), file), now);
            }
        }
    }

    /// Every counter of one of [`watch::EVENT_FILES`], by the kernel's key,
    /// known to cgmgr or not (a newer kernel's `max.imposed` is logged too);
    /// none when the file is missing or does not parse.
    fn read_counts(&self, group: &GroupName, file: &str) -> Counters {
        let Ok(Some(text)) = self.root.read_optional(group, file) else {
            return Counters::new();
        };
        format::flat_keyed_pairs(&text)
            .map(|pair| pair.map(|(k, v)| (k.to_string(), v)))
            .collect::<Result<_, _>>()
            .unwrap_or_default()
    }

    /// Logs each counter of `file` that rose since last time, as one line.
    fn limit_event(&mut self, group: &GroupName, file: &'static str) {
        let now = self.read_counts(group, file);
        let before = self
            .counts
            .insert((group.clone(), file), now.clone())
            .unwrap_or_default();
        for (event, value) in &now {
            let value = *value;
            let old = before
                .iter()
                .find(|(e, _)| e == event)
                .map_or(0, |(_, v)| *v);
            if file == "cgroup.events" {
                if value != old {
                    log(
                        Level::Info,
                        &format!("event group={group} file={file} {event}={value}"),
                    );
                }
            } else if value > old {
                let level = if event.starts_with("oom") || file == "pids.events" {
                    Level::Warning
                } else {
                    Level::Info
                };
                log(
                    level,
                    &format!(
                        "event group={group} file={file} event={event} count={} total={value}",
                        value - old
                    ),
                );
            }
        }
    }
}

fn respond(root: &CgroupRoot, shared: &Shared, path: &str) -> Response {
    match path {
        "/metrics" => {
            let body = shared.scrape.run(|collector| {
                let groups = shared.status().groups.clone();
                collector.scrape(root, &groups, Some(&shared.own))
            });
            Response {
                status: 200,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: String::clone(&body),
            }
        }
        "/healthz" => {
            let (conditions, unwatched) = {
                let status = shared.status();
                (status.conditions.clone(), status.unwatched_event_files)
            };
            let (status, text) = health::verdict(&conditions, unwatched, shared.heartbeat.since());
            Response::text(status, text)
        }
        _ => Response::text(404, "not found: try /metrics or /healthz\n"),
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

/// One daemon per root: an exclusive, non-blocking `flock` on the root
/// directory itself, held as long as the returned descriptor.
fn lock_root(
    root: &CgroupRoot,
    opts: &DaemonOptions,
) -> Result<nix::fcntl::Flock<std::os::fd::OwnedFd>, DaemonError> {
    let dir = root
        .open_dir(&GroupName::root())
        .map_err(|e| DaemonError::Setup(format!("opening {}: {e}", opts.root.display())))?;
    nix::fcntl::Flock::lock(dir, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|_| DaemonError::Locked(opts.root.clone()))
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

fn spawn_signal_thread(tx: Sender<Event>) -> Result<(), DaemonError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGHUP, SIGINT, SIGTERM])
        .map_err(|e| DaemonError::Setup(format!("signal handlers: {e}")))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut stopping = false;
            for sig in signals.forever() {
                if sig == SIGHUP {
                    let _ = tx.send(Event::Reload("SIGHUP"));
                } else if stopping {
                    log(Level::Warning, "second stop signal: exiting now");
                    std::process::exit(1);
                } else {
                    stopping = true;
                    let _ = tx.send(Event::Stop);
                }
            }
        })
        .map_err(|e| DaemonError::Setup(format!("signal thread: {e}")))?;
    Ok(())
}

/// What was queued behind a reload request.
#[derive(Debug, Default)]
struct Drained {
    /// Limit events, handled after the reload.
    limit_events: Vec<WatchDescriptor>,
    /// Whether a reload was asked for (SIGHUP) rather than only seen in
    /// the files: it must happen even when the files look unchanged.
    asked: bool,
}

/// Takes every event already queued: reloads are merged (one reload serves
/// them all, remembering whether one was asked for), limit events are
/// returned to be handled after it; `None` when a stop is among them.
fn drain_reloads(rx: &Receiver<Event>) -> Option<Drained> {
    let mut drained = Drained::default();
    while let Ok(event) = rx.try_recv() {
        match event {
            Event::Stop => return None,
            Event::Reload(why) => drained.asked |= why != watch::FILES_CHANGED,
            Event::Limit(wd) => drained.limit_events.push(wd),
        }
    }
    Some(drained)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;

    /// A SIGHUP queued behind a file event is not lost in the merge: the
    /// reload it asks for happens even if the files look unchanged.
    #[test]
    fn a_sighup_behind_a_file_event_still_asks_for_a_reload() {
        let (tx, rx) = channel();
        tx.send(Event::Reload(watch::FILES_CHANGED)).unwrap();
        let d = drain_reloads(&rx).unwrap();
        assert!(!d.asked, "file events alone may be found already loaded");
        tx.send(Event::Reload(watch::FILES_CHANGED)).unwrap();
        tx.send(Event::Reload("SIGHUP")).unwrap();
        tx.send(Event::Reload(watch::FILES_CHANGED)).unwrap();
        let d = drain_reloads(&rx).unwrap();
        assert!(d.asked);
        assert!(d.limit_events.is_empty());
        tx.send(Event::Reload("SIGHUP")).unwrap();
        tx.send(Event::Stop).unwrap();
        assert!(drain_reloads(&rx).is_none(), "a stop is served first");
    }
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Eight scrapes arriving together cost one or two collections, not
    /// eight in a row, and all get the text.
    #[test]
    fn concurrent_scrapes_share_a_collection() {
        let scrape = Arc::new(Scrape::default());
        let collections = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (scrape, collections, start) =
                    (scrape.clone(), collections.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    scrape.run(|_| {
                        let n = collections.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(200));
                        format!("collection {n}")
                    })
                })
            })
            .collect();
        for t in threads {
            assert!(t.join().unwrap().starts_with("collection "));
        }
        let n = collections.load(Ordering::SeqCst);
        assert!((1..=2).contains(&n), "{n} collections for 8 scrapes");
    }

    /// A collection that panics does not leave the others waiting forever.
    #[test]
    fn a_panicking_collection_releases_the_waiters() {
        let scrape = Arc::new(Scrape::default());
        let first = {
            let scrape = scrape.clone();
            std::thread::spawn(move || {
                scrape.run(|_| {
                    std::thread::sleep(Duration::from_millis(100));
                    panic!("collector bug")
                })
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        let body = scrape.run(|_| "second".to_string());
        assert_eq!(body.as_str(), "second");
        assert!(first.join().is_err());
    }
}
