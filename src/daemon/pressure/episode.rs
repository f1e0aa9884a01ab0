//! Deciding whether a pressure rule acts, kept pure so it is tested apart:
//! the readings of a rule's counters ([`Sample`]), what an event measured
//! since the previous one ([`Measured`]) and how a log line describes it,
//! the check for a report that counts stall from before its trigger
//! ([`stale_after_arming`]), and the stall that lasts ([`Episode`]).

use std::time::{Duration, Instant};

/// One reading of a rule's counters.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sample {
    pub(super) at: Instant,
    /// The watched line's `total=`, µs.
    pub(super) stall_us: u64,
    /// Its `avg10=`, percent.
    pub(super) avg10: f64,
    /// `cpu.stat` throttled_usec (cpu rules, when the group has it).
    pub(super) throttled_us: Option<u64>,
}

/// What an event measured since the previous reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Measured {
    /// Stall share, hundredths of a percent.
    pub(super) share: u32,
    /// The interval it covers.
    over: Duration,
    /// The kernel's 10 s average at the event, percent.
    avg10: f64,
    /// Time throttled by the group's own cpu.max in the interval.
    throttled: Option<Duration>,
}

/// What `now` measured since `prev`.
pub(super) fn measure(prev: &Sample, now: &Sample) -> Measured {
    let over = now.at.saturating_duration_since(prev.at);
    let wall_us = over.as_micros().max(1);
    let stalled = u128::from(now.stall_us.saturating_sub(prev.stall_us));
    let share = u32::try_from((stalled * 10_000 / wall_us).min(10_000)).unwrap_or(10_000);
    let throttled = match (prev.throttled_us, now.throttled_us) {
        (Some(a), Some(b)) => Some(Duration::from_micros(b.saturating_sub(a))),
        _ => None,
    };
    Measured {
        share,
        over,
        avg10: now.avg10,
        throttled,
    }
}

/// The stall for a log line: measured between readings when they are at
/// most two windows apart, else the kernel's word and its 10 s average;
/// for CPU, how much of that time was cpu.max throttling.
pub(super) fn describe(m: Option<&Measured>, window: Duration) -> String {
    let Some(m) = m else {
        return "unknown".into();
    };
    let stall = if m.over <= window * 2 {
        format!(
            "{}.{:02}% over the last {:.1}s",
            m.share / 100,
            m.share % 100,
            m.over.as_secs_f64()
        )
    } else {
        format!(
            "above the threshold within the last {} (kernel trigger), avg10 {:.2}%",
            crate::policy::parse::show_duration(window),
            m.avg10
        )
    };
    match m.throttled {
        Some(t) => format!(
            "{stall}; throttled {:.2}s of the last {:.1}s by the group's own cpu.max, which is not contention",
            t.as_secs_f64(),
            m.over.as_secs_f64()
        ),
        None => stall,
    }
}

/// True for a report within two windows of arming when less than the
/// threshold has stalled since arming: a new trigger's first window starts
/// from the group's lifetime total, and that growth is carried into the
/// next window, so such a report counts stall from before the trigger.
pub fn stale_after_arming(
    since_armed: Duration,
    window: Duration,
    stalled_since_arming_us: Option<u64>,
    threshold_us: u64,
) -> bool {
    since_armed < window * 2 && stalled_since_arming_us.is_some_and(|s| s < threshold_us)
}

/// A stall that lasts. It begins at a report and continues at each later
/// one whose stall since the previous reading is above the threshold
/// (`continued`); a report without that starts it again. It acts once its
/// reports cover `for` (the first covers the window before it). A `log` or
/// dry run then says nothing more until the stall ends (one decision per
/// stall, not one per window); a kill or freeze ends the stall itself, so
/// the engine starts a fresh episode after one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Episode {
    first: Option<Instant>,
    acted: bool,
}

impl Episode {
    /// Records a report at `now`; true when the rule should act now.
    pub fn on_event(
        &mut self,
        now: Instant,
        window: Duration,
        sustain: Duration,
        continued: bool,
    ) -> bool {
        if !continued {
            *self = Episode::default();
        }
        let first = *self.first.get_or_insert(now);
        !self.acted && now.saturating_duration_since(first) + window >= sustain
    }

    /// After a `log` or a dry run: a successful one holds until the stall
    /// ends; a failed action is tried again at the next report.
    pub fn acted(&mut self, done: bool) {
        self.acted = done;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_rule_whose_for_is_one_window_acts_at_the_first_event() {
        let mut e = Episode::default();
        assert!(e.on_event(Instant::now(), 2 * S, 2 * S, false));
    }

    #[test]
    fn reports_that_keep_the_stall_above_act_once_they_cover_for() {
        // window 2s, for 4s: reports at 0 and 2s cover [-2s, 2s].
        let t0 = Instant::now();
        let mut e = Episode::default();
        assert!(!e.on_event(t0, 2 * S, 4 * S, false));
        assert!(e.on_event(t0 + 2 * S, 2 * S, 4 * S, true));
        e.acted(true);
        // One decision per stall: not again while it goes on...
        assert!(!e.on_event(t0 + 4 * S, 2 * S, 4 * S, true));
        assert!(!e.on_event(t0 + 6 * S, 2 * S, 4 * S, true));
        // ...but again for a new stall.
        assert!(!e.on_event(t0 + 20 * S, 2 * S, 4 * S, false));
        assert!(e.on_event(t0 + 22 * S, 2 * S, 4 * S, true));
    }

    #[test]
    fn a_failed_action_is_tried_again_at_the_next_report() {
        let t0 = Instant::now();
        let mut e = Episode::default();
        assert!(e.on_event(t0, 2 * S, 2 * S, false));
        e.acted(false);
        assert!(e.on_event(t0 + 2 * S, 2 * S, 2 * S, true));
    }

    #[test]
    fn a_deferred_report_after_a_short_burst_does_not_make_a_stall_last() {
        // A 0.45s burst reported at 0; the kernel reports again at 2s
        // (deferred), though almost nothing stalled since: the episode
        // starts over instead of reaching for = 4s.
        let t0 = Instant::now();
        let mut e = Episode::default();
        assert!(!e.on_event(t0, 2 * S, 4 * S, false));
        assert!(!e.on_event(t0 + 2 * S, 2 * S, 4 * S, false));
        // Slipped reports (4s apart) of a stall that goes on still count.
        assert!(e.on_event(t0 + 6 * S, 2 * S, 4 * S, true));
    }

    #[test]
    fn a_report_soon_after_arming_needs_the_threshold_stalled_since_arming() {
        let w = 2 * S;
        // Armed 0.3s ago; 40 ms stalled since, threshold 400 ms: stale,
        // even though 40 ms in 0.2 s would be a 20% share.
        assert!(stale_after_arming(
            Duration::from_millis(300),
            w,
            Some(40_000),
            400_000
        ));
        assert!(!stale_after_arming(
            Duration::from_millis(300),
            w,
            Some(450_000),
            400_000
        ));
        // The second report, 2.1s after arming, is checked the same way.
        assert!(stale_after_arming(
            Duration::from_millis(2100),
            w,
            Some(10_000),
            400_000
        ));
        // Past two windows the kernel's window no longer reaches back.
        assert!(!stale_after_arming(5 * S, w, Some(0), 400_000));
    }

    #[test]
    fn shares_are_measured_in_hundredths_of_a_percent() {
        let t0 = Instant::now();
        let sample = |at, stall_us, throttled_us| Sample {
            at,
            stall_us,
            avg10: 12.5,
            throttled_us,
        };
        let m = measure(&sample(t0, 1_000, None), &sample(t0 + 2 * S, 501_000, None));
        assert_eq!((m.share, m.over, m.throttled), (2500, 2 * S, None));
        assert_eq!(describe(Some(&m), 2 * S), "25.00% over the last 2.0s");
        // Readings far apart would dilute the share: the kernel's word.
        let m = measure(&sample(t0, 0, None), &sample(t0 + 13 * S, 1_000_000, None));
        assert_eq!(
            describe(Some(&m), 2 * S),
            "above the threshold within the last 2s (kernel trigger), avg10 12.50%"
        );
        // A counter that went backwards (a recreated group) is no stall.
        assert_eq!(
            measure(&sample(t0, 9_000, None), &sample(t0 + S, 10, None)).share,
            0
        );
        // cpu: the throttled time in the same interval.
        let m = measure(
            &sample(t0, 0, Some(100_000)),
            &sample(t0 + 2 * S, 1_800_000, Some(1_900_000)),
        );
        assert_eq!(
            describe(Some(&m), 2 * S),
            "90.00% over the last 2.0s; throttled 1.80s of the last 2.0s by the group's own cpu.max, which is not contention"
        );
    }
}
