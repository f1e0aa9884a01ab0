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
pub fn watch_policies(dir: &Path, events: Sender<Event>) -> std::io::Result<()> {
    let mut inotify = Inotify::init()?;
    let mask = WatchMask::CREATE
        | WatchMask::MODIFY
        | WatchMask::CLOSE_WRITE
        | WatchMask::DELETE
        | WatchMask::MOVED_TO
        | WatchMask::MOVED_FROM
        | WatchMask::ATTRIB
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF;
    inotify.watches().add(dir, mask)?;
    let dir = dir.to_path_buf();
    std::thread::Builder::new()
        .name("policy-watch".into())
        .spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let Ok(batch) = inotify.read_events_blocking(&mut buf) else {
                    return;
                };
                let self_gone = batch.into_iter().any(|e| {
                    e.mask
                        .intersects(inotify::EventMask::DELETE_SELF | inotify::EventMask::MOVE_SELF)
                });
                // Debounce: wait until DEBOUNCE passes without a new event.
                loop {
                    std::thread::sleep(DEBOUNCE);
                    let more = inotify
                        .read_events(&mut buf)
                        .map(|mut events| events.next().is_some());
                    if more.unwrap_or(false) {
                        continue;
                    }
                    break;
                }
                if self_gone {
                    // The directory was replaced: watch the new one when it appears.
                    while inotify.watches().add(&dir, mask).is_err() {
                        std::thread::sleep(DEBOUNCE);
                    }
                }
                if events.send(Event::Reload("policy files changed")).is_err() {
                    return;
                }
            }
        })?;
    Ok(())
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
