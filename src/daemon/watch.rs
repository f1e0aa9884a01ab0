//! inotify watchers feeding the daemon's event loop.
//!
//! - The policy directory: create, modify, close-write, delete, rename,
//!   including a Kubernetes ConfigMap mount, whose files are symlinks into
//!   `..data`, itself replaced by an atomic rename. A burst of events becomes
//!   one reload after a short quiet period.
//! - Limit events: the kernel signals a modification of `memory.events`,
//!   `pids.events` and `cgroup.events` when a counter changes, so OOM kills
//!   and pids.max hits are logged as they happen, not at the next scrape.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::time::Duration;

use inotify::{Inotify, WatchDescriptor, WatchMask, Watches};

use super::Event;
use crate::cgroup::GroupName;

/// Quiet time after the last policy event before a reload.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// Files whose changes are limit events.
pub const EVENT_FILES: [&str; 3] = ["memory.events", "pids.events", "cgroup.events"];

/// Starts the policy-directory watcher thread.
///
/// What is watched is worked out again after every burst of events, so that
/// it follows what the path means now: the directory itself (found again
/// after `rm -rf` and `mkdir`), its parent (for `mv -T cur.new cur`, where
/// the directory is a symlink swapped by a rename; only events naming it
/// count), the directory the path resolves to, and the directory each policy
/// file resolves to (a Kubernetes `..data` target, a stow- or git-managed
/// file elsewhere). The daemon's reconcile tick compares a digest of the
/// policy files as a backstop for anything inotify cannot see.
pub fn watch_policies(dir: &Path, events: Sender<Event>) -> std::io::Result<()> {
    let mut inotify = Inotify::init()?;
    let mut armed = arm(&mut inotify, dir, &HashMap::new());
    let dir = dir.to_path_buf();
    let name = dir.file_name().map(|n| n.to_os_string());
    std::thread::Builder::new()
        .name("policy-watch".into())
        .spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let relevant =
                    |e: &inotify::Event<&std::ffi::OsStr>,
                     armed: &HashMap<WatchDescriptor, bool>| {
                        match armed.get(&e.wd) {
                            // The parent: only events naming the policy path.
                            Some(true) => e.name.map(|n| n.to_os_string()) == name,
                            _ => true,
                        }
                    };
                let Ok(batch) = inotify.read_events_blocking(&mut buf) else {
                    return;
                };
                let mut changed = batch.into_iter().any(|e| relevant(&e, &armed));
                // Debounce: wait until DEBOUNCE passes without a new event.
                loop {
                    std::thread::sleep(DEBOUNCE);
                    let Ok(more) = inotify.read_events(&mut buf) else {
                        break;
                    };
                    let mut any = false;
                    for e in more {
                        any = true;
                        changed |= relevant(&e, &armed);
                    }
                    if !any {
                        break;
                    }
                }
                armed = arm(&mut inotify, &dir, &armed);
                if changed && events.send(Event::Reload("policy files changed")).is_err() {
                    return;
                }
            }
        })?;
    Ok(())
}

/// (Re)places the watches for the policy path `dir`; returns them, `true`
/// marking the parent directory's watch.
fn arm(
    inotify: &mut Inotify,
    dir: &Path,
    old: &HashMap<WatchDescriptor, bool>,
) -> HashMap<WatchDescriptor, bool> {
    let mask = WatchMask::CREATE
        | WatchMask::MODIFY
        | WatchMask::CLOSE_WRITE
        | WatchMask::DELETE
        | WatchMask::MOVED_TO
        | WatchMask::MOVED_FROM
        | WatchMask::ATTRIB
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF;
    let mut watches = inotify.watches();
    for wd in old.keys() {
        let _ = watches.remove(wd.clone());
    }
    let mut armed = HashMap::new();
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty())
        && let Ok(wd) = watches.add(parent, mask)
    {
        armed.insert(wd, true);
    }
    for target in watch_targets(dir) {
        if let Ok(wd) = watches.add(&target, mask) {
            // A target that is also the parent: every event there counts.
            armed.insert(wd, false);
        }
    }
    armed
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
        })
    }

    /// Watches exactly the event files of `groups` under `root`.
    pub fn set_groups(&mut self, root: &Path, groups: &[GroupName]) {
        for (wd, _) in self.by_wd.drain() {
            let _ = self.watches.remove(wd);
        }
        for group in groups {
            for file in EVENT_FILES {
                let path: PathBuf = root.join(group.file(file));
                if let Ok(wd) = self.watches.add(&path, WatchMask::MODIFY) {
                    self.by_wd.insert(wd, (group.clone(), file));
                }
            }
        }
    }

    /// The group and file a watch descriptor stands for.
    pub fn lookup(&self, wd: &WatchDescriptor) -> Option<&(GroupName, &'static str)> {
        self.by_wd.get(wd)
    }
}
