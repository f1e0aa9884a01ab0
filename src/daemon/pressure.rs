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
//! Deciding (`episode`: [`Episode`], [`stale_after_arming`]) is pure and
//! tested apart:
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
//!
//! Carrying a decision out (the freeze or kill, its log line and metric) is
//! in `act`. Triggers are never closed on this thread: closing one waits for
//! an RCU grace period in the kernel, so every trigger the engine lets go of
//! goes to `release`, which closes them concurrently; at stop the daemon
//! waits for that ([`Pressure::stop`]), leaving the process exit nothing to
//! close.

mod act;
mod episode;
mod release;

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::cgroup::psi::{self, ArmedTrigger, Trigger};
use crate::cgroup::stat::CpuStat;
use crate::cgroup::{CgroupRoot, GroupName};
use crate::policy::model::{PressureAction, PressureRule, PsiKind, PsiResource};

use super::Shared;
use super::log::{Level, log};

use act::holds_daemon;
pub use episode::{Episode, stale_after_arming};
use episode::{Sample, measure};
use release::{Held, Releaser};

/// The running pressure thread.
pub struct Pressure {
    rules: Sender<Vec<(GroupName, PressureRule)>>,
    /// The wake-up pipe's only writer; `None` once stopping.
    wake: Option<OwnedFd>,
    /// Says the thread has ended (its triggers all handed to `releaser`).
    ended: Receiver<()>,
    releaser: Releaser<ArmedTrigger>,
}

impl Pressure {
    /// Starts the thread with no rules.
    pub(super) fn start(root: Arc<CgroupRoot>, shared: Arc<Shared>) -> std::io::Result<Pressure> {
        let (wake_read, wake) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)?;
        let (tx, rx) = channel();
        let (ended_tx, ended) = channel();
        let releaser = Releaser::new(release::MAX_THREADS);
        let engine = Engine::new(root, shared, releaser.clone());
        std::thread::Builder::new()
            .name("pressure".into())
            .spawn(move || {
                // `run` consumes the engine: its triggers are released
                // before the end is said.
                engine.run(&rx, &wake_read);
                let _ = ended_tx.send(());
            })?;
        Ok(Pressure {
            rules: tx,
            wake: Some(wake),
            ended,
            releaser,
        })
    }

    /// Hands the thread the rules to enforce (all of them, every time): it
    /// keeps the triggers of unchanged rules on unchanged groups, arms the
    /// others, and re-arms those whose group was made again.
    pub fn sync(&self, rules: Vec<(GroupName, PressureRule)>) {
        let Some(wake) = &self.wake else { return };
        if self.rules.send(rules).is_ok() {
            // A full pipe already holds a wake-up: nothing lost.
            let _ = nix::unistd::write(wake, b"x");
        }
    }

    /// Ends the thread and waits, at most `within`, until every trigger is
    /// closed, so that the process exit (which would close them one grace
    /// period after another) finds none. How many were still open then.
    pub fn stop(&mut self, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        // Closing the pipe's only writer ends the thread's `poll`.
        self.wake = None;
        match self.ended.recv_timeout(within) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {}
            Err(RecvTimeoutError::Timeout) => return usize::MAX,
        }
        self.releaser
            .wait_idle(deadline.saturating_duration_since(Instant::now()))
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
    /// `None` while the group is missing or the trigger was lost; dropping
    /// it hands the trigger to the releaser.
    trigger: Option<Held<ArmedTrigger>>,
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
    releaser: Releaser<ArmedTrigger>,
}

impl Engine {
    fn new(root: Arc<CgroupRoot>, shared: Arc<Shared>, releaser: Releaser<ArmedTrigger>) -> Engine {
        Engine {
            root,
            shared,
            armed: Vec::new(),
            releaser,
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

    /// Keeps what is unchanged, lets go of the rest (their triggers are
    /// closed by the releaser, off this thread), then arms what is new or
    /// not armed: the replaced triggers are on their way out before their
    /// successors are opened.
    fn sync(&mut self, rules: Vec<(GroupName, PressureRule)>) {
        let mut old: Vec<Option<Armed>> = std::mem::take(&mut self.armed)
            .into_iter()
            .map(Some)
            .collect();
        let matched: Vec<Armed> = rules
            .into_iter()
            .enumerate()
            .map(|(i, (group, rule))| take_kept(&mut old, i, group, rule))
            .collect();
        drop(old);
        for mut armed in matched {
            if armed.trigger.is_none() {
                self.arm(&mut armed);
            }
            self.armed.push(armed);
        }
        self.publish_unarmed();
    }

    /// Says how many rules have no trigger: `/healthz` (degraded) and
    /// `cgmgr_pressure_rules_unarmed`.
    fn publish_unarmed(&self) {
        let unarmed = self.armed.iter().filter(|a| a.trigger.is_none()).count();
        self.shared
            .own
            .pressure_rules_unarmed
            .set(i64::try_from(unarmed).unwrap_or(i64::MAX));
        self.shared.status().degraded.unarmed_rules = unarmed;
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
                let t = Held::new(t, &self.releaser);
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

    /// The trigger's file reported an error: the group was removed (its
    /// removal destroyed the trigger; closing the file is left to the
    /// releaser all the same, the one way triggers go).
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
        self.publish_unarmed();
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
}

/// The rule at `i` of the new set: the old one it matches, taken out of
/// `old` with its trigger and state, else a new one not armed yet.
///
/// A live trigger is kept without looking at the group: its removal would
/// have been reported (POLLERR, see `lose`), and a cgroup v2 directory cannot
/// be renamed (EPERM), so the path still names the triggered cgroup. An idle
/// tick costs nothing per rule. One that is not armed keeps its last error,
/// so it is logged once. An unchanged set comes in the same order: the same
/// index is tried first.
fn take_kept(old: &mut [Option<Armed>], i: usize, group: GroupName, rule: PressureRule) -> Armed {
    let keeps = |slot: &Option<Armed>| {
        slot.as_ref()
            .is_some_and(|a| a.group == group && same_rule(&a.rule, &rule))
    };
    let at = if old.get(i).is_some_and(keeps) {
        Some(i)
    } else {
        old.iter().position(keeps)
    };
    match at.and_then(|j| old[j].take()) {
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

fn drain(fd: &OwnedFd) {
    let mut buf = [0u8; 64];
    while matches!(nix::unistd::read(fd, &mut buf), Ok(n) if n > 0) {}
}
