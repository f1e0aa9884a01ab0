//! What `/healthz` answers, decided in one pure function.
//!
//! The control loop records its conditions (started, the last reload's
//! error, the last drift check's error; the count of unwatched event files
//! is its metric's) and beats a heartbeat on every turn, at least once a
//! second. `/healthz` reads them and never waits on a scrape: a loop stuck
//! on anything shows as stalled instead of healthy.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often the control loop beats when nothing happens.
pub const BEAT_EVERY: Duration = Duration::from_secs(1);

/// A loop that has not beaten for this long is reported stalled (the
/// systemd unit's watchdog has the same period). A reload of 10,000 groups
/// takes well under it.
pub const STALL_AFTER: Duration = Duration::from_secs(30);

/// The control loop's conditions, as it last recorded them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    /// The first policy set is applied.
    pub started: bool,
    /// Why the last reload was rejected (cleared by a successful one).
    pub reload_error: Option<String>,
    /// Why the last drift check or correction failed (cleared by the next
    /// check that succeeds, with or without anything to correct, and by a
    /// successful reload, which applies everything).
    pub drift_error: Option<String>,
}

/// What works, but less well than it should: `/healthz` still answers 200,
/// saying `ok; degraded: ...` with each of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Degraded {
    /// Limit-event files inotify cannot watch (read on every tick instead).
    pub unwatched_event_files: usize,
    /// Why the policy path has no inotify watch (edits are then seen by the
    /// reconcile tick's digest; the watch is tried again at each tick).
    pub policy_watch: Option<String>,
    /// Pressure rules the kernel did not arm.
    pub unarmed_rules: usize,
}

impl Degraded {
    /// One clause per degradation, in a fixed order.
    fn clauses(&self) -> Vec<String> {
        let mut said = Vec::new();
        if let Some(why) = &self.policy_watch {
            said.push(format!(
                "the policy directory is not watched ({why}); edits are seen at the next reconcile tick, which tries the watch again"
            ));
        }
        if self.unwatched_event_files > 0 {
            said.push(format!(
                "{} limit-event file(s) not watched (inotify watches exhausted), read every reconcile tick",
                self.unwatched_event_files
            ));
        }
        if self.unarmed_rules > 0 {
            said.push(format!(
                "{} pressure rule(s) not armed (the daemon's log says why), retried every reconcile tick",
                self.unarmed_rules
            ));
        }
        said
    }
}

/// The HTTP status and text of `/healthz`.
pub fn verdict(c: &Conditions, degraded: &Degraded, since_beat: Duration) -> (u16, String) {
    if !c.started {
        return (503, "starting\n".into());
    }
    if since_beat > STALL_AFTER {
        return (
            503,
            format!(
                "control loop stalled: no progress for {}s\n",
                since_beat.as_secs()
            ),
        );
    }
    if let Some(e) = &c.reload_error {
        return (503, format!("last reload failed: {e}\n"));
    }
    if let Some(e) = &c.drift_error {
        return (503, format!("{e}\n"));
    }
    let clauses = degraded.clauses();
    if clauses.is_empty() {
        (200, "ok\n".into())
    } else {
        (200, format!("ok; degraded: {}\n", clauses.join("; ")))
    }
}

/// The control loop's heartbeat: when it last made progress.
#[derive(Debug)]
pub struct Heartbeat {
    origin: Instant,
    /// Milliseconds after `origin` of the last beat.
    last: AtomicU64,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat {
            origin: Instant::now(),
            last: AtomicU64::new(0),
        }
    }
}

impl Heartbeat {
    /// Records progress now.
    pub fn beat(&self) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }

    /// Time since the last beat.
    pub fn since(&self) -> Duration {
        let now = self.origin.elapsed();
        now.saturating_sub(Duration::from_millis(self.last.load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Conditions {
        Conditions {
            started: true,
            ..Conditions::default()
        }
    }

    const FRESH: Duration = Duration::from_millis(200);

    #[test]
    fn starting_until_the_first_policy_is_applied() {
        assert_eq!(
            verdict(&Conditions::default(), &Degraded::default(), FRESH),
            (503, "starting\n".into())
        );
        assert_eq!(
            verdict(&healthy(), &Degraded::default(), FRESH),
            (200, "ok\n".into())
        );
    }

    #[test]
    fn a_stalled_loop_is_unhealthy_whatever_it_recorded_last() {
        let (code, text) = verdict(
            &healthy(),
            &Degraded::default(),
            STALL_AFTER + Duration::from_secs(1),
        );
        assert_eq!(code, 503);
        assert_eq!(text, "control loop stalled: no progress for 31s\n");
        assert_eq!(
            verdict(&healthy(), &Degraded::default(), STALL_AFTER).0,
            200,
            "at the limit still fine"
        );
    }

    #[test]
    fn a_rejected_reload_until_one_succeeds() {
        let mut c = healthy();
        c.reload_error = Some("a.toml:1:1: bad".into());
        assert_eq!(
            verdict(&c, &Degraded::default(), FRESH),
            (503, "last reload failed: a.toml:1:1: bad\n".into())
        );
        c.reload_error = None;
        assert_eq!(verdict(&c, &Degraded::default(), FRESH).0, 200);
    }

    #[test]
    fn a_failed_drift_check_until_the_next_one_succeeds() {
        let mut c = healthy();
        c.drift_error = Some("drift check failed: EACCES".into());
        assert_eq!(
            verdict(&c, &Degraded::default(), FRESH),
            (503, "drift check failed: EACCES\n".into())
        );
        // The next check found nothing to correct: the daemon clears the
        // error then too (it stayed 503 forever when an empty plan returned
        // before the error was cleared).
        c.drift_error = None;
        assert_eq!(verdict(&c, &Degraded::default(), FRESH).0, 200);
    }

    #[test]
    fn the_reload_error_is_said_before_the_drift_error() {
        let mut c = healthy();
        c.reload_error = Some("bad".into());
        c.drift_error = Some("drift correction failed".into());
        assert_eq!(
            verdict(&c, &Degraded::default(), FRESH).1,
            "last reload failed: bad\n"
        );
    }

    #[test]
    fn unwatched_files_are_degraded_but_healthy() {
        let mut c = healthy();
        let three = Degraded {
            unwatched_event_files: 3,
            ..Degraded::default()
        };
        let (code, text) = verdict(&c, &three, FRESH);
        assert_eq!(code, 200);
        assert!(
            text.starts_with("ok; degraded: 3 limit-event file(s)"),
            "{text}"
        );
        c.reload_error = Some("bad".into());
        assert_eq!(verdict(&c, &three, FRESH).0, 503);
    }

    #[test]
    fn every_degradation_is_named_in_one_answer() {
        let all = Degraded {
            unwatched_event_files: 2,
            policy_watch: Some("inotify_add_watch /etc/cgmgr: ENOSPC".into()),
            unarmed_rules: 20,
        };
        let (code, text) = verdict(&healthy(), &all, FRESH);
        assert_eq!(code, 200);
        assert!(
            text.starts_with("ok; degraded: the policy directory is not watched (inotify_add_watch /etc/cgmgr: ENOSPC)"),
            "{text}"
        );
        assert!(
            text.contains("; 2 limit-event file(s) not watched"),
            "{text}"
        );
        assert!(text.contains("; 20 pressure rule(s) not armed"), "{text}");
        assert!(text.ends_with("tick\n"), "{text}");
    }

    #[test]
    fn the_heartbeat_measures_time_since_the_last_beat() {
        let beat = Heartbeat::default();
        std::thread::sleep(Duration::from_millis(30));
        assert!(beat.since() >= Duration::from_millis(30));
        beat.beat();
        assert!(beat.since() < Duration::from_millis(30));
    }
}
