//! Limit events: the counters of each group's limit-event files (OOM
//! kills, `pids.max` refusals, `cgroup.events`), baselined when the groups
//! are watched and logged as they rise.

use inotify::WatchDescriptor;

use crate::apply;
use crate::cgroup::stat::{PidsEvents, StatFile};
use crate::cgroup::{GroupName, format, pids};
use crate::policy::PolicySet;

use super::Daemon;
use super::log::{Level, log};
use super::watch::{self, LimitWatcher};

/// A limit-event file's counters by kernel key, as last seen. Logging
/// treats every counter alike, so this stays the file's own key list rather
/// than a typed reading, which would drop the keys cgmgr does not know.
pub(super) type Counters = Vec<(String, u64)>;

impl Daemon {
    /// Logs what rose in the limit-event file `wd` watches, if any. A
    /// group directory's event (a run group made, a run's count carried)
    /// has its run groups watched anew and the group's count read again.
    pub(super) fn on_limit(&mut self, wd: &WatchDescriptor, limits: &mut LimitWatcher) {
        if let Some(group) = limits.dir_group(wd)
            && let Err(e) = limits.watch_runs(self.root.path(), &group)
        {
            log(
                Level::Warning,
                &format!(
                    "cannot watch the run groups of {group} ({e}): their pids.max refusals are logged when each run ends"
                ),
            );
        }
        if let Some((group, file)) = limits.lookup(wd) {
            self.limit_event(&group, file);
        }
    }

    /// After groups were created: marks them managed, watches their
    /// limit-event files, and takes the current counters as the baseline (a
    /// recreated group's counters start again from 0).
    pub(super) fn watch_groups(&mut self, set: &PolicySet, limits: &mut LimitWatcher) {
        apply::mark_declared(&self.root, set);
        let groups: Vec<GroupName> = set.groups.keys().cloned().collect();
        let failed = limits.set_groups(self.root.path(), &groups);
        let unwatched = limits.unwatched().len();
        let mut state = self.state();
        state.degraded.unwatched_event_files = unwatched;
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
    /// none when the file is missing or does not parse. `max` of
    /// `pids.events` is the group's count made true on every kernel
    /// ([`pids::refusals`]: with its runs' refusals before 6.11).
    fn read_counts(&self, group: &GroupName, file: &str) -> Counters {
        let Ok(Some(text)) = self.root.read_optional(group, file) else {
            return Counters::new();
        };
        let mut counts: Counters = format::flat_keyed_pairs(&text)
            .map(|pair| pair.map(|(k, v)| (k.to_string(), v)))
            .collect::<Result<_, _>>()
            .unwrap_or_default();
        if file == PidsEvents::FILE {
            match pids::refusals(&self.root, group) {
                Ok(Some(n)) => {
                    for (key, value) in &mut counts {
                        if key == "max" {
                            *value = n;
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => log(Level::Warning, &format!("{group}: pids.max refusals: {e}")),
            }
        }
        counts
    }

    /// Logs each counter of `file` that rose since last time, as one line.
    pub(super) fn limit_event(&mut self, group: &GroupName, file: &'static str) {
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
