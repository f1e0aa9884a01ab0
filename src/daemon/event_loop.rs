//! The daemon's event loop: one event at a time, reloads queued together
//! merged into one, the reconcile tick and systemd's watchdog between
//! events.

use std::sync::mpsc::Receiver;
use std::time::Instant;

use inotify::WatchDescriptor;

use super::watch::{self, LimitWatcher};
use super::{Daemon, Event, health, notify, pressure};

impl Daemon {
    /// One loop over every event; it also pings systemd's watchdog, so a
    /// loop stuck on one event gets the daemon restarted.
    pub(super) fn event_loop(&mut self, rx: &Receiver<Event>, limits: &mut LimitWatcher) {
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
                        self.rearm_policy_watch();
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

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
}
