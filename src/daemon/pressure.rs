//! Pressure rules: armed as kernel PSI triggers, acted on by one thread.
//!
//! Each `[[group.NAME.pressure]]` rule is one open pressure file holding a
//! trigger ([`crate::cgroup::psi`]). The thread sleeps in `poll` on all of
//! them and on a wake-up pipe; nothing is read on a timer. The loop hands it
//! the rules after every (re)load and reconcile tick ([`Pressure::sync`]).
//! A removed group's file reports `POLLERR`: its rule is armed anew on the
//! group made again (a new inode) at the next sync, and one whose group is
//! still gone is retried at every sync.
//!
//! Deciding ([`Episode`], [`stale_first_event`]) is pure and tested apart:
//! - the kernel fires at most once per window while the stall lasts, so a
//!   stall "persists" while events keep coming about a window apart; a rule
//!   acts once the events cover its `for`;
//! - a trigger can fire right after it is armed, counting stall from before
//!   it existed (the kernel starts the first window from the group's
//!   lifetime total): an event within the first window is believed only if
//!   the stall measured since arming is above the threshold too;
//! - `cpu.pressure` includes time a group spends throttled by its own
//!   `cpu.max`: a throttled group is not contended. The log says how much of
//!   the episode was throttling.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::cgroup::psi::{self, ArmedTrigger, Trigger};
use crate::cgroup::stat::CpuStat;
use crate::cgroup::{CgroupRoot, GroupName};
use crate::policy::model::{PressureAction, PressureRule, PsiKind, PsiResource};

use super::Shared;
use super::log::{Level, log};

/// The running pressure thread.
pub struct Pressure {
    rules: Sender<Vec<(GroupName, PressureRule)>>,
    wake: OwnedFd,
}

impl Pressure {
    /// Starts the thread with no rules.
    pub(super) fn start(root: Arc<CgroupRoot>, shared: Arc<Shared>) -> std::io::Result<Pressure> {
        let (wake_read, wake) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)?;
        let (tx, rx) = channel();
        std::thread::Builder::new()
            .name("pressure".into())
            .spawn(move || Engine::new(root, shared).run(&rx, &wake_read))?;
        Ok(Pressure { rules: tx, wake })
    }

    /// Hands the thread the rules to enforce (all of them, every time): it
    /// keeps the triggers of unchanged rules on unchanged groups, arms the
    /// others, and re-arms those whose group was made again.
    pub fn sync(&self, rules: Vec<(GroupName, PressureRule)>) {
        if self.rules.send(rules).is_ok() {
            // A full pipe already holds a wake-up: nothing lost.
            let _ = nix::unistd::write(&self.wake, b"x");
        }
    }
}

/// Every rule of `set`, with its group.
pub fn rules_of(set: &crate::policy::PolicySet) -> Vec<(GroupName, PressureRule)> {
    set.groups
        .values()
        .flat_map(|g| g.pressure.iter().map(|r| (g.name.clone(), r.clone())))
        .collect()
}

/// One rule and its trigger.
struct Armed {
    group: GroupName,
    rule: PressureRule,
    /// `None` while the group is missing or the trigger was lost.
    trigger: Option<ArmedTrigger>,
    /// Why the last arming failed, logged once per change.
    error: Option<String>,
    armed_at: Instant,
    /// The last reading, at arming or at the last event.
    last: Option<Sample>,
    /// The stall total when the trigger was armed.
    armed_total: Option<u64>,
    episode: Episode,
}

impl Armed {
    /// Logs `what` about this rule at info level, after its group, resource
    /// and kind.
    fn note(&self, what: &str) {
        log(
            Level::Info,
            &format!(
                "pressure: group={} {} {}: {what}",
                self.group,
                self.rule.resource.name(),
                self.rule.kind.name()
            ),
        );
    }
}

/// One reading of a rule's counters.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    /// The watched line's `total=`, µs.
    stall_us: u64,
    /// Its `avg10=`, percent.
    avg10: f64,
    /// `cpu.stat` throttled_usec (cpu rules, when the group has it).
    throttled_us: Option<u64>,
}

/// What an event measured since the previous reading.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Measured {
    /// Stall share, hundredths of a percent.
    share: u32,
    /// The interval it covers.
    over: Duration,
    /// The kernel's 10 s average at the event, percent.
    avg10: f64,
    /// Time throttled by the group's own cpu.max in the interval.
    throttled: Option<Duration>,
}

/// What one `poll` saw: the wake-up pipe, and rules by index into `armed`.
#[derive(Default)]
struct Ready {
    woken: bool,
    fired: Vec<usize>,
    lost: Vec<usize>,
}

struct Engine {
    root: Arc<CgroupRoot>,
    shared: Arc<Shared>,
    armed: Vec<Armed>,
}

impl Engine {
    fn new(root: Arc<CgroupRoot>, shared: Arc<Shared>) -> Engine {
        Engine {
            root,
            shared,
            armed: Vec::new(),
        }
    }

    fn run(mut self, rx: &Receiver<Vec<(GroupName, PressureRule)>>, wake: &OwnedFd) {
        loop {
            let Some(Ready { woken, fired, lost }) = self.wait(wake) else {
                return; // the daemon is stopping
            };
            // Before a sync changes the indices: a report is consumed by
            // the poll that saw it.
            for i in lost {
                self.lose(i);
            }
            for i in fired {
                self.on_event(i, Instant::now());
            }
            if woken {
                drain(wake);
                let mut latest = None;
                loop {
                    match rx.try_recv() {
                        Ok(rules) => latest = Some(rules),
                        Err(std::sync::mpsc::TryRecvError::Empty) => break,
                        Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
                    }
                }
                if let Some(rules) = latest {
                    self.sync(rules);
                }
            }
        }
    }

    /// Polls the wake-up pipe and every trigger. `None` when the pipe's
    /// writer is gone (the daemon is stopping). A failing `poll` (ENOMEM
    /// under the very memory pressure rules watch) is retried a second later.
    fn wait(&self, wake: &OwnedFd) -> Option<Ready> {
        let mut index = Vec::new();
        let mut fds = vec![PollFd::new(wake.as_fd(), PollFlags::POLLIN)];
        for (i, a) in self.armed.iter().enumerate() {
            if let Some(t) = &a.trigger {
                fds.push(PollFd::new(t.file.as_fd(), PollFlags::POLLPRI));
                index.push(i);
            }
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                log(
                    Level::Error,
                    &format!("pressure rules: poll failed: {e}; retrying in 1s"),
                );
                std::thread::sleep(Duration::from_secs(1));
                return Some(Ready::default());
            }
        }
        let revents = |fd: &PollFd<'_>| fd.revents().unwrap_or(PollFlags::empty());
        let pipe = revents(&fds[0]);
        if pipe.contains(PollFlags::POLLHUP) && !pipe.contains(PollFlags::POLLIN) {
            return None;
        }
        let woken = pipe.contains(PollFlags::POLLIN);
        let (mut fired, mut lost) = (Vec::new(), Vec::new());
        for (fd, &i) in fds[1..].iter().zip(&index) {
            let r = revents(fd);
            if r.intersects(PollFlags::POLLERR | PollFlags::POLLNVAL | PollFlags::POLLHUP) {
                lost.push(i);
            } else if r.contains(PollFlags::POLLPRI) {
                fired.push(i);
            }
        }
        Some(Ready { woken, fired, lost })
    }

    /// Keeps what is unchanged, arms the rest; closing a dropped rule's
    /// file disarms its trigger.
    fn sync(&mut self, rules: Vec<(GroupName, PressureRule)>) {
        let mut old: Vec<Option<Armed>> = std::mem::take(&mut self.armed)
            .into_iter()
            .map(Some)
            .collect();
        for (i, (group, rule)) in rules.into_iter().enumerate() {
            // A live trigger is kept without looking at the group: its
            // removal would have been reported (POLLERR, see `lose`), and a
            // cgroup v2 directory cannot be renamed (EPERM), so the path
            // still names the triggered cgroup. An idle tick costs nothing
            // per rule. One that is not armed keeps
            // its last error, so it is logged once. An unchanged set comes
            // in the same order: the same index is tried first.
            let keeps = |slot: &Option<Armed>| {
                slot.as_ref()
                    .is_some_and(|a| a.group == group && same_rule(&a.rule, &rule))
            };
            let at = if old.get(i).is_some_and(keeps) {
                Some(i)
            } else {
                old.iter().position(keeps)
            };
            let kept = at.and_then(|j| old[j].take());
            let mut armed = match kept {
                Some(mut a) => {
                    a.rule = rule; // its origin may have moved
                    a
                }
                None => Armed {
                    group,
                    rule,
                    trigger: None,
                    error: None,
                    armed_at: Instant::now(),
                    last: None,
                    armed_total: None,
                    episode: Episode::default(),
                },
            };
            if armed.trigger.is_none() {
                self.arm(&mut armed);
            }
            self.armed.push(armed);
        }
    }

    fn arm(&self, a: &mut Armed) {
        let trigger = Trigger {
            full: a.rule.kind == PsiKind::Full,
            stall_us: a.rule.threshold_us(),
            window_us: u64::try_from(a.rule.window.as_micros()).unwrap_or(u64::MAX),
        };
        let before = a.error.clone();
        let armed = if a.rule.action != PressureAction::Log
            && !a.rule.dry_run
            && crate::cgroup::locate::this_process_is_within(&self.root, &a.group)
        {
            Err(holds_daemon(a.rule.action))
        } else {
            psi::arm(&self.root, &a.group, a.rule.resource.file(), trigger)
                .map_err(|e| e.to_string())
        };
        match armed {
            Ok(t) => {
                let rearmed = before.is_some();
                a.last = take_sample(&self.root, &a.group, &t, &a.rule);
                a.armed_total = a.last.map(|s| s.stall_us);
                a.trigger = Some(t);
                a.armed_at = Instant::now();
                a.episode = Episode::default();
                a.error = None;
                log(
                    Level::Info,
                    &format!(
                        "pressure: {}armed group={} {} {} above {} over {} for {} action={}{} ({})",
                        if rearmed { "re-" } else { "" },
                        a.group,
                        a.rule.resource.name(),
                        a.rule.kind.name(),
                        a.rule.above_text(),
                        crate::policy::parse::show_duration(a.rule.window),
                        crate::policy::parse::show_duration(a.rule.sustain),
                        a.rule.action.name(),
                        if a.rule.dry_run { " dry_run" } else { "" },
                        a.rule.origin,
                    ),
                );
            }
            Err(e) => {
                if before.as_deref() != Some(e.as_str()) {
                    log(
                        Level::Warning,
                        &format!(
                            "pressure: rule of group {} ({}) is not armed: {e}; retried at each reconcile tick",
                            a.group, a.rule.origin
                        ),
                    );
                }
                a.error = Some(e);
            }
        }
    }

    /// The trigger's file reported an error: the group was removed.
    fn lose(&mut self, i: usize) {
        let a = &mut self.armed[i];
        a.trigger = None;
        a.error = Some("the group was removed".into());
        log(
            Level::Warning,
            &format!(
                "pressure: group {} was removed; its {} rule is armed again when the group is back (next reconcile tick)",
                a.group,
                a.rule.resource.name()
            ),
        );
    }

    fn on_event(&mut self, i: usize, now: Instant) {
        let a = &mut self.armed[i];
        let Some(trigger) = &a.trigger else { return };
        let Some(sample) = take_sample(&self.root, &a.group, trigger, &a.rule) else {
            return;
        };
        let measured = a.last.map(|prev| measure(&prev, &sample));
        a.last = Some(sample);
        let since_arming = a.armed_total.map(|t| sample.stall_us.saturating_sub(t));
        if stale_after_arming(
            now.saturating_duration_since(a.armed_at),
            a.rule.window,
            since_arming,
            a.rule.threshold_us(),
        ) {
            a.note(&format!(
                "a report within two windows of arming, with {:.3}s stalled since arming (the threshold is {:.3}s): the kernel counted stall from before; ignored",
                since_arming.unwrap_or(0) as f64 / 1e6,
                a.rule.threshold_us() as f64 / 1e6,
            ));
            return;
        }
        // The kernel also reports a breach it deferred (at most one report
        // per window), after the stall itself may have ended: the stall
        // continues only if it was above the threshold since the last report.
        let continued = measured.is_some_and(|m| m.share >= a.rule.above);
        if a.episode
            .on_event(now, a.rule.window, a.rule.sustain, continued)
        {
            // A kill or freeze that worked ends the stall: the group's next
            // stall is a new one even if it follows closely.
            let ends_the_stall = a.rule.action != PressureAction::Log && !a.rule.dry_run;
            if ends_the_stall && self.still_frozen(i) {
                self.armed[i].episode = Episode::default();
                return;
            }
            let done = self.act(i, measured);
            let episode = &mut self.armed[i].episode;
            match (done, ends_the_stall) {
                (true, true) => *episode = Episode::default(),
                (done, _) => episode.acted(done),
            }
        }
    }

    /// A freeze rule whose group is still frozen (`cgroup.freeze` 1, by an
    /// earlier decision or by hand) has nothing to do. Tasks sleeping in the
    /// kernel (memory.high throttling, reclaim) reach the freezer only when
    /// they return to user space, so a group can go on reporting stall for
    /// a few windows after it was told to freeze: that is the same stall,
    /// not a second decision.
    fn still_frozen(&self, i: usize) -> bool {
        let a = &self.armed[i];
        if a.rule.action != PressureAction::Freeze {
            return false;
        }
        let frozen =
            crate::cgroup::control::freeze_requested(&self.root, &a.group).unwrap_or(false);
        if frozen {
            a.note("still stalled, already frozen (cgroup.freeze 1): nothing to do");
        }
        frozen
    }

    /// Carries out the rule's action; false when it failed.
    fn act(&mut self, i: usize, measured: Option<Measured>) -> bool {
        let a = &self.armed[i];
        let stops = matches!(a.rule.action, PressureAction::Freeze | PressureAction::Kill);
        let result = if a.rule.dry_run {
            Ok("dry_run")
        } else if stops && crate::cgroup::locate::this_process_is_within(&self.root, &a.group) {
            // Checked again at every decision: the daemon may have been
            // moved into the group since the rule was armed.
            Err(holds_daemon(a.rule.action))
        } else {
            let write = |file, value| {
                self.root
                    .write(&a.group, file, value)
                    .map(|()| "done")
                    .map_err(|e| e.to_string())
            };
            match a.rule.action {
                PressureAction::Log => Ok("done"),
                PressureAction::Freeze => write("cgroup.freeze", "1"),
                PressureAction::Kill => {
                    crate::cgroup::control::kill_processes(&self.root, &a.group)
                        .map(|_| "done")
                        .map_err(|e| e.to_string())
                }
            }
        };
        let (label, level, why) = match &result {
            Ok(r) => (*r, Level::Warning, String::new()),
            Err(e) => ("failed", Level::Error, format!(": {e}")),
        };
        log(
            level,
            &format!(
                "pressure: group={} resource={} kind={} stall={} (above {} for {}) action={} result={label}{why}",
                a.group,
                a.rule.resource.name(),
                a.rule.kind.name(),
                describe(measured.as_ref(), a.rule.window),
                a.rule.above_text(),
                crate::policy::parse::show_duration(a.rule.sustain),
                a.rule.action.name(),
            ),
        );
        self.shared
            .own
            .pressure_actions
            .with_label_values(&[
                a.group.as_str(),
                a.rule.resource.name(),
                a.rule.action.name(),
                label,
            ])
            .inc();
        result.is_ok()
    }
}

/// Rules equal in everything but where they were written.
fn same_rule(a: &PressureRule, b: &PressureRule) -> bool {
    (
        a.resource, a.kind, a.above, a.window, a.sustain, a.action, a.dry_run,
    ) == (
        b.resource, b.kind, b.above, b.window, b.sustain, b.action, b.dry_run,
    )
}

fn take_sample(
    root: &CgroupRoot,
    group: &GroupName,
    t: &ArmedTrigger,
    rule: &PressureRule,
) -> Option<Sample> {
    let psi = t.read().ok()?;
    let line = match rule.kind {
        PsiKind::Some => psi.some,
        PsiKind::Full => psi.full?,
    };
    let throttled_us = match rule.resource {
        PsiResource::Cpu => root.stat::<CpuStat>(group).and_then(|s| s.throttled_usec),
        _ => None,
    };
    Some(Sample {
        at: Instant::now(),
        stall_us: line.total_us,
        avg10: line.avg10,
        throttled_us,
    })
}

fn measure(prev: &Sample, now: &Sample) -> Measured {
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
fn describe(m: Option<&Measured>, window: Duration) -> String {
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

fn drain(fd: &OwnedFd) {
    let mut buf = [0u8; 64];
    while matches!(nix::unistd::read(fd, &mut buf), Ok(n) if n > 0) {}
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

/// Why a freeze or kill rule does not act on a group that holds the daemon.
fn holds_daemon(action: PressureAction) -> String {
    format!(
        "the group holds cgmgr's own daemon; a {} would stop the daemon itself (use action = \"log\" or dry_run there)",
        action.name()
    )
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
