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

/// The HTTP status and text of `/healthz`; `unwatched` is the number of
/// limit-event files inotify cannot watch (read on every tick instead).
pub fn verdict(c: &Conditions, unwatched: usize, since_beat: Duration) -> (u16, String) {
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
    if unwatched > 0 {
        return (
            200,
            format!(
                "ok; degraded: {} limit-event file(s) not watched (inotify watches exhausted), read every reconcile tick\n",
                unwatched
            ),
        );
    }
    (200, "ok\n".into())
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
            verdict(&Conditions::default(), 0, FRESH),
            (503, "starting\n".into())
        );
        assert_eq!(verdict(&healthy(), 0, FRESH), (200, "ok\n".into()));
    }

    #[test]
    fn a_stalled_loop_is_unhealthy_whatever_it_recorded_last() {
        let (code, text) = verdict(&healthy(), 0, STALL_AFTER + Duration::from_secs(1));
        assert_eq!(code, 503);
        assert_eq!(text, "control loop stalled: no progress for 31s\n");
        assert_eq!(
            verdict(&healthy(), 0, STALL_AFTER).0,
            200,
            "at the limit still fine"
        );
    }

    #[test]
    fn a_rejected_reload_until_one_succeeds() {
        let mut c = healthy();
        c.reload_error = Some("a.toml:1:1: bad".into());
        assert_eq!(
            verdict(&c, 0, FRESH),
            (503, "last reload failed: a.toml:1:1: bad\n".into())
        );
        c.reload_error = None;
        assert_eq!(verdict(&c, 0, FRESH).0, 200);
    }

    #[test]
    fn a_failed_drift_check_until_the_next_one_succeeds() {
        let mut c = healthy();
        c.drift_error = Some("drift check failed: EACCES".into());
        assert_eq!(
            verdict(&c, 0, FRESH),
            (503, "drift check failed: EACCES\n".into())
        );
        // The next check found nothing to correct: the daemon clears the
        // error then too (it stayed 503 forever when an empty plan returned
        // before the error was cleared).
        c.drift_error = None;
        assert_eq!(verdict(&c, 0, FRESH).0, 200);
    }

    #[test]
    fn the_reload_error_is_said_before_the_drift_error() {
        let mut c = healthy();
        c.reload_error = Some("bad".into());
        c.drift_error = Some("drift correction failed".into());
        assert_eq!(verdict(&c, 0, FRESH).1, "last reload failed: bad\n");
    }

    #[test]
    fn unwatched_files_are_degraded_but_healthy() {
        let mut c = healthy();
        let (code, text) = verdict(&c, 3, FRESH);
        assert_eq!(code, 200);
        assert!(
            text.starts_with("ok; degraded: 3 limit-event file(s)"),
            "{text}"
        );
        c.reload_error = Some("bad".into());
        assert_eq!(verdict(&c, 3, FRESH).0, 503);
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
