//! inotify watchers feeding the daemon's event loop.
//!
//! - The policy directory: create, modify, close-write, delete, rename,
//!   including a Kubernetes ConfigMap mount, whose files are symlinks into
//!   `..data`, itself replaced by an atomic rename. A burst of events becomes
//!   one reload after a short quiet period.
//! - Limit events: the kernel signals a modification of `memory.events`,
//!   `pids.events` and `cgroup.events` when a counter changes, so OOM kills
//!   and pids.max hits are logged as they happen, not at the next scrape.
//!   Before 6.11 a fork refused in a `cgmgr exec` run changes only its run
//!   group's `pids.events`, so on those kernels each group's directory is
//!   watched too: a run group made there (`IN_CREATE`) gets its
//!   `pids.events` watched as the group's, and a run's count carried into
//!   the group's ledger at its end (`IN_ATTRIB`, the extended attribute)
//!   has the group's count read again.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use inotify::{Inotify, WatchDescriptor, WatchMask, Watches};

use super::Event;
use crate::cgroup::GroupName;
use crate::cgroup::pids::RUN_PREFIX;

/// Quiet time after the last policy event before a reload.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// The reason the watcher gives for a reload.
pub const FILES_CHANGED: &str = "policy files changed";

/// Files whose changes are limit events.
pub const EVENT_FILES: [&str; 3] = ["memory.events", "pids.events", "cgroup.events"];

/// The watches of the policy path: for each, the entry names whose events
/// count (`None`: all of them).
type Armed = HashMap<WatchDescriptor, Option<Vec<std::ffi::OsString>>>;

/// The policy path's watches, shared by the watcher thread (which re-arms
/// them after every burst of events) and the daemon's reconcile tick (which
/// re-arms them too, so a watch that could not be added, say because
/// `fs.inotify.max_user_watches` ran out, is added once it can be).
#[derive(Clone)]
pub struct PolicyWatch {
    dir: PathBuf,
    watches: Watches,
    state: Arc<Mutex<PolicyWatchState>>,
}

struct PolicyWatchState {
    armed: Armed,
    /// Why the last arming could not add every watch.
    failed: Option<String>,
}

impl PolicyWatch {
    /// Places the watches again for what the path means now; returns why
    /// one could not be added (`None`: the path is fully watched).
    pub fn rearm(&self) -> Option<String> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (armed, failed) = arm(&mut self.watches.clone(), &self.dir, &state.armed);
        state.armed = armed;
        state.failed = failed.clone();
        failed
    }

    /// Why the last arming could not add every watch.
    pub fn failure(&self) -> Option<String> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.failed.clone()
    }

    fn is_relevant(&self, e: &inotify::Event<&std::ffi::OsStr>) -> bool {
        // Only events of the current watches count: removing a watch when
        // re-arming queues an IN_IGNORED for it, which must not start
        // another reload (and another re-arm, forever).
        if e.mask.contains(inotify::EventMask::IGNORED) {
            return false;
        }
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match state.armed.get(&e.wd) {
            Some(None) => true,
            // A parent: only events naming the entry of interest.
            Some(Some(names)) => e.name.is_some_and(|n| names.iter().any(|x| x == n)),
            None => false,
        }
    }
}

/// Starts the policy-directory watcher thread.
///
/// What is watched is worked out again after every burst of events, so that
/// it follows what the path means now: the directory itself (found again
/// after `rm -rf` and `mkdir`), its parent (for `mv -T cur.new cur`, where
/// the directory is a symlink swapped by a rename; only events naming it
/// count), the directory the path resolves to, and the directory each policy
/// file resolves to (a Kubernetes `..data` target, a stow- or git-managed
/// file elsewhere). The daemon's reconcile tick compares a digest of the
/// policy files as a backstop for anything inotify cannot see, and re-arms
/// through the returned handle.
pub fn watch_policies(dir: &Path, events: Sender<Event>) -> std::io::Result<PolicyWatch> {
    let mut inotify = Inotify::init()?;
    let watch = PolicyWatch {
        dir: dir.to_path_buf(),
        watches: inotify.watches(),
        state: Arc::new(Mutex::new(PolicyWatchState {
            armed: HashMap::new(),
            failed: None,
        })),
    };
    watch.rearm();
    let handle = watch.clone();
    std::thread::Builder::new()
        .name("policy-watch".into())
        .spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let Ok(batch) = inotify.read_events_blocking(&mut buf) else {
                    return;
                };
                let mut changed = batch.into_iter().any(|e| handle.is_relevant(&e));
                // Debounce: wait until DEBOUNCE passes without a new event.
                loop {
                    std::thread::sleep(DEBOUNCE);
                    let Ok(more) = inotify.read_events(&mut buf) else {
                        break;
                    };
                    let mut any = false;
                    for e in more {
                        any = true;
                        changed |= handle.is_relevant(&e);
                    }
                    if !any {
                        break;
                    }
                }
                handle.rearm();
                if changed && events.send(Event::Reload(FILES_CHANGED)).is_err() {
                    return;
                }
            }
        })?;
    Ok(watch)
}

/// (Re)places the watches for the policy path `dir`: every directory of
/// [`watch_targets`] (all events count), plus the parent of the path and,
/// when the path is a symlink, the directory its target lives in (only
/// events naming the path, or the target, count there: a swap by rename, a
/// target removed and made again). Also returns why the first watch that
/// could not be added failed.
fn arm(watches: &mut Watches, dir: &Path, old: &Armed) -> (Armed, Option<String>) {
    let mask = WatchMask::CREATE
        | WatchMask::MODIFY
        | WatchMask::CLOSE_WRITE
        | WatchMask::DELETE
        | WatchMask::MOVED_TO
        | WatchMask::MOVED_FROM
        | WatchMask::ATTRIB
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF;
    let mut armed: Armed = HashMap::new();
    let mut failed = None;
    let mut add = |path: &Path| match watches.add(path, mask) {
        Ok(wd) => Some(wd),
        // A target missing now (the directory removed, to be made again)
        // is not a failure: its parent's watch sees it come back.
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => {
            failed.get_or_insert_with(|| add_failure(path, &e));
            None
        }
    };
    let mut named = vec![dir.to_path_buf()];
    if let Ok(link) = std::fs::read_link(dir) {
        named.push(dir.parent().unwrap_or(Path::new("/")).join(link));
    }
    for path in named {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            continue;
        };
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        if let Some(wd) = add(parent)
            && let Some(names) = armed.entry(wd).or_insert_with(|| Some(Vec::new()))
        {
            names.push(name.to_os_string());
        }
    }
    for target in watch_targets(dir) {
        if let Some(wd) = add(&target) {
            // A target that is also a parent above: every event there counts.
            armed.insert(wd, None);
        }
    }
    // Adding a watched inode again returns its watch: only the watches of
    // what is no longer a target are removed.
    for wd in old.keys().filter(|wd| !armed.contains_key(*wd)) {
        let _ = watches.remove(wd.clone());
    }
    (armed, failed)
}

/// Why a watch on `path` could not be added, with the limit to raise when
/// the kernel ran out of watches.
fn add_failure(path: &Path, e: &std::io::Error) -> String {
    let hint = match e.raw_os_error() {
        Some(libc::ENOSPC) => " (fs.inotify.max_user_watches is exhausted)",
        _ => "",
    };
    format!("inotify_add_watch {}: {e}{hint}", path.display())
}

/// The directories whose changes may change the policy set: the path, what
/// it resolves to, and the directory each `*.toml` entry resolves into.
pub fn watch_targets(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    if let Ok(real) = std::fs::canonicalize(dir) {
        out.push(real);
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "toml")
                && let Ok(target) = std::fs::canonicalize(&path)
                && let Some(parent) = target.parent()
            {
                out.push(parent.to_path_buf());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Watches the limit-event files of the managed groups.
pub struct LimitWatcher {
    watches: Watches,
    by_wd: HashMap<WatchDescriptor, (GroupName, &'static str)>,
    /// Group directories watched for run groups and ledger changes (kernels
    /// that count a refused fork only in the forking cgroup).
    dirs: HashMap<WatchDescriptor, GroupName>,
    /// The `pids.events` of run groups, by group and run group name.
    runs: HashMap<WatchDescriptor, (GroupName, String)>,
    /// Event files no watch could be added for (`fs.inotify.max_user_watches`
    /// ran out): read on every reconcile tick instead.
    unwatched: Vec<(GroupName, &'static str)>,
}

impl LimitWatcher {
    /// Starts the watcher thread; events arrive as [`Event::Limit`].
    pub fn start(events: Sender<Event>) -> std::io::Result<LimitWatcher> {
        let mut inotify = Inotify::init()?;
        let watches = inotify.watches();
        std::thread::Builder::new()
            .name("limit-watch".into())
            .spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match inotify.read_events_blocking(&mut buf) {
                        Ok(batch) => {
                            for e in batch {
                                if events.send(Event::Limit(e.wd.clone())).is_err() {
                                    return;
                                }
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(_) => return,
                    }
                }
            })?;
        Ok(LimitWatcher {
            watches,
            by_wd: HashMap::new(),
            dirs: HashMap::new(),
            runs: HashMap::new(),
            unwatched: Vec::new(),
        })
    }

    /// Watches exactly the event files of `groups` under `root`. Returns
    /// the first error of the files that could not be watched because
    /// inotify's watch limit ran out (they are read on the reconcile tick).
    pub fn set_groups(&mut self, root: &Path, groups: &[GroupName]) -> Option<std::io::Error> {
        let old: Vec<WatchDescriptor> = self
            .by_wd
            .drain()
            .map(|(wd, _)| wd)
            .chain(self.dirs.drain().map(|(wd, _)| wd))
            .chain(self.runs.drain().map(|(wd, _)| wd))
            .collect();
        for wd in old {
            let _ = self.watches.remove(wd);
        }
        self.unwatched.clear();
        let mut first_error = None;
        for group in groups {
            for file in EVENT_FILES {
                let path: PathBuf = root.join(group.file(file));
                match self.watches.add(&path, WatchMask::MODIFY) {
                    Ok(wd) => {
                        self.by_wd.insert(wd, (group.clone(), file));
                    }
                    // No such file: the controller is off for the group.
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => {
                        self.unwatched.push((group.clone(), file));
                        first_error.get_or_insert(e);
                    }
                }
            }
            if let Err(e) = self.watch_group_dir(root, group) {
                self.unwatched.push((group.clone(), "pids.events"));
                first_error.get_or_insert(e);
            }
        }
        first_error
    }

    /// On kernels that count a refused fork only in the forking cgroup
    /// (no `pids.events.local`): watches the group's directory and the
    /// `pids.events` of its run groups.
    fn watch_group_dir(&mut self, root: &Path, group: &GroupName) -> std::io::Result<()> {
        let dir = root.join(group.dir());
        if !dir.join("pids.events").exists() || dir.join("pids.events.local").exists() {
            return Ok(());
        }
        let mask =
            WatchMask::CREATE | WatchMask::ATTRIB | WatchMask::ONLYDIR | WatchMask::DONT_FOLLOW;
        match self.watches.add(&dir, mask) {
            Ok(wd) => {
                self.dirs.insert(wd, group.clone());
            }
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
        self.watch_runs(root, group)
    }

    /// Watches the `pids.events` of every run group of `group` as the
    /// group's own, and forgets the run groups that are gone.
    pub fn watch_runs(&mut self, root: &Path, group: &GroupName) -> std::io::Result<()> {
        let dir = root.join(group.dir());
        let mut present = Vec::new();
        for entry in std::fs::read_dir(&dir)?.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if !name.starts_with(RUN_PREFIX) || group.child(&name).is_err() {
                continue;
            }
            let file = dir.join(&name).join("pids.events");
            match self
                .watches
                .add(&file, WatchMask::MODIFY | WatchMask::DONT_FOLLOW)
            {
                Ok(wd) => {
                    self.runs.insert(wd, (group.clone(), name.clone()));
                }
                // Ended meanwhile, or no pids controller for runs.
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            present.push(name);
        }
        // The kernel dropped the watches of removed run groups.
        self.runs
            .retain(|_, (g, run)| g != group || present.contains(run));
        Ok(())
    }

    /// The group whose directory `wd` watches, if it is one.
    pub fn dir_group(&self, wd: &WatchDescriptor) -> Option<GroupName> {
        self.dirs.get(wd).cloned()
    }

    /// The event files that have no watch, read on the reconcile tick.
    pub fn unwatched(&self) -> &[(GroupName, &'static str)] {
        &self.unwatched
    }

    /// The group and file a watch descriptor stands for: a run group's
    /// `pids.events` and a group's directory stand for the group's
    /// `pids.events`.
    pub fn lookup(&self, wd: &WatchDescriptor) -> Option<(GroupName, &'static str)> {
        if let Some(found) = self.by_wd.get(wd) {
            return Some(found.clone());
        }
        self.runs
            .get(wd)
            .map(|(g, _)| g)
            .or_else(|| self.dirs.get(wd))
            .map(|g| (g.clone(), "pids.events"))
    }
}
