//! A run's own limits: its CPU time (every process of the run together,
//! read from the run group's `cpu.stat`, as isolate reads its cgroup), its
//! wall-clock time, and the workload's resource limits. The policy's
//! `[exec]` table gives them, flags override them.

use std::time::{Duration, Instant};

use super::error::ExecError;
use super::spec::ExecFlags;
use crate::cgroup::stat::CpuStat;
use crate::cgroup::{CgroupRoot, GroupName};
use crate::policy::ExecConfig;
use crate::policy::run::{self, Network, RunError};

/// The time limits of one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunLimits {
    /// CPU time, user + system, of the whole run.
    pub time: Option<Duration>,
    /// Monotonic wall-clock time from the start of the workload.
    pub wall: Option<Duration>,
    /// Grace after `time` before the kill.
    pub extra: Duration,
}

/// The limit that ended a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    /// CPU time: the CPU the run had used when it was killed.
    Time(Duration),
    /// Wall time: how long it had run.
    Wall(Duration),
}

impl Exceeded {
    /// The one stderr line that says which limit killed the run.
    pub fn line(self, limits: &RunLimits) -> String {
        let secs = |d: Duration| format!("{:.3}s", d.as_secs_f64());
        match self {
            Exceeded::Time(used) => format!(
                "cgmgr: exec: killed: time limit {} exceeded (cpu {} used)\n",
                secs(limits.time.unwrap_or_default()),
                secs(used)
            ),
            Exceeded::Wall(ran) => format!(
                "cgmgr: exec: killed: wall limit {} exceeded (ran {})\n",
                secs(limits.wall.unwrap_or_default()),
                secs(ran)
            ),
        }
    }
}

/// How often the CPU time is read when the budget left is unknown to be
/// far: the kill comes within this much wall time of the limit, i.e.
/// within this many CPU-seconds per CPU the run can use.
pub const CPU_POLL: Duration = Duration::from_millis(20);

/// A run's limits as its supervisor keeps them: the deadline and the CPU
/// budget.
#[derive(Debug, Clone)]
pub struct Watch {
    limits: RunLimits,
    started: Instant,
    /// The run group's CPU time when the watch started.
    cpu_base: Duration,
}

impl Watch {
    /// The limits of a run that starts now, having used `cpu_base` so far.
    pub fn start(limits: RunLimits, cpu_base: Option<Duration>) -> Watch {
        Watch {
            limits,
            started: Instant::now(),
            cpu_base: cpu_base.unwrap_or_default(),
        }
    }

    /// Whether there is anything to watch.
    pub fn is_active(&self) -> bool {
        self.limits.time.is_some() || self.limits.wall.is_some()
    }

    /// The limits watched.
    pub fn limits(&self) -> &RunLimits {
        &self.limits
    }

    /// The limit exceeded now, given the run's CPU time so far.
    pub fn exceeded(&self, cpu_used: Option<Duration>) -> Option<Exceeded> {
        let ran = self.started.elapsed();
        if self.limits.wall.is_some_and(|w| ran >= w) {
            return Some(Exceeded::Wall(ran));
        }
        let budget = self.limits.time? + self.limits.extra;
        cpu_used
            .map(|used| used.saturating_sub(self.cpu_base))
            .filter(|&used| used >= budget)
            .map(Exceeded::Time)
    }

    /// How long to wait before looking again: until the wall deadline, and
    /// no longer than the CPU budget left could last on `cpus` CPUs (at
    /// least [`CPU_POLL`], re-read as it nears).
    pub fn next_check(&self, cpu_used: Option<Duration>, cpus: u32) -> Option<Duration> {
        let wall_left = self
            .limits
            .wall
            .map(|w| w.saturating_sub(self.started.elapsed()));
        let cpu_left = self.limits.time.map(|t| {
            let used = cpu_used.unwrap_or_default().saturating_sub(self.cpu_base);
            let left = (t + self.limits.extra).saturating_sub(used);
            (left / cpus.max(1))
                .max(CPU_POLL)
                .min(Duration::from_secs(1))
        });
        match (wall_left, cpu_left) {
            (Some(w), Some(c)) => Some(w.min(c)),
            (w, c) => w.or(c),
        }
    }
}

/// The CPU time (user + system) of every process of the run so far.
pub fn cpu_used(root: &CgroupRoot, run: &GroupName) -> Option<Duration> {
    root.stat::<CpuStat>(run)
        .map(|s| Duration::from_micros(s.usage_usec))
}

/// The CPUs a run could spend its budget on: every online CPU (not this
/// process's affinity or quota, which a run need not share).
pub fn usable_cpus() -> u32 {
    // SAFETY: sysconf takes an integer and touches no memory.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    u32::try_from(online).ok().filter(|&n| n > 0).unwrap_or(1)
}

fn flag_err(flag: &str, value: &str, e: RunError) -> ExecError {
    ExecError::Invalid(format!("{flag} {value}: {e}"))
}

/// The run's time limits: the policy's, each flag replacing its key.
pub fn resolve(policy: &ExecConfig, flags: &ExecFlags) -> Result<RunLimits, ExecError> {
    let flag =
        |name: &str, value: &Option<String>, check: fn(&str) -> Result<Duration, RunError>| {
            value
                .as_deref()
                .map(|v| check(v).map_err(|e| flag_err(name, v, e)))
                .transpose()
        };
    let limits = RunLimits {
        time: flag("--time-limit", &flags.time_limit, run::run_time)?.or(policy.time_limit),
        wall: flag("--wall-limit", &flags.wall_limit, run::run_time)?.or(policy.wall_limit),
        extra: flag("--extra-time", &flags.extra_time, run::extra_time)?
            .or(policy.extra_time)
            .unwrap_or_default(),
    };
    Ok(limits)
}

/// The network asked by `--network` or the policy (`None`: neither said).
pub fn network(policy: &ExecConfig, flags: &ExecFlags) -> Result<Option<Network>, ExecError> {
    match &flags.network {
        Some(name) => Network::from_name(name)
            .map(Some)
            .ok_or_else(|| ExecError::Invalid(format!("--network {name}: use none or host"))),
        None => Ok(policy.network),
    }
}

/// The workload's resource limits: `core` 0 unless set, the policy's, then
/// each `--rlimit` replacing its name. `(RLIMIT_*, value)`.
pub fn rlimits(policy: &ExecConfig, flags: &ExecFlags) -> Result<Vec<(u32, u64)>, ExecError> {
    let core = run::rlimit("core").map(|c| (c, 0));
    let mut limits: Vec<(run::Rlimit, u64)> = core.into_iter().collect();
    let mut set = |limit: run::Rlimit, value: u64| {
        limits.retain(|(l, _)| l.name != limit.name);
        limits.push((limit, value));
    };
    for &(limit, value) in &policy.rlimits {
        set(limit, value);
    }
    for text in &flags.rlimits {
        let (limit, value) =
            run::parse_rlimit_flag(text).map_err(|e| flag_err("--rlimit", text, e))?;
        set(limit, value);
    }
    Ok(limits.into_iter().map(|(l, v)| (l.resource, v)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(time: Option<u64>, wall: Option<u64>, extra: u64) -> RunLimits {
        RunLimits {
            time: time.map(Duration::from_millis),
            wall: wall.map(Duration::from_millis),
            extra: Duration::from_millis(extra),
        }
    }

    #[test]
    fn the_cpu_budget_includes_the_extra_time() {
        let w = Watch::start(limits(Some(1000), None, 500), Some(Duration::ZERO));
        assert_eq!(w.exceeded(Some(Duration::from_millis(1400))), None);
        assert_eq!(
            w.exceeded(Some(Duration::from_millis(1500))),
            Some(Exceeded::Time(Duration::from_millis(1500)))
        );
        assert_eq!(w.exceeded(None), None, "no cpu.stat: no CPU verdict");
    }

    #[test]
    fn checks_come_sooner_as_the_budget_runs_out() {
        let w = Watch::start(limits(Some(2000), None, 0), None);
        assert_eq!(
            w.next_check(Some(Duration::ZERO), 2),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            w.next_check(Some(Duration::from_millis(1800)), 2),
            Some(Duration::from_millis(100))
        );
        assert_eq!(
            w.next_check(Some(Duration::from_millis(1999)), 2),
            Some(CPU_POLL)
        );
        let none = Watch::start(RunLimits::default(), None);
        assert!(!none.is_active());
        assert_eq!(none.next_check(None, 2), None);
    }

    #[test]
    fn the_wall_limit_is_a_deadline() {
        let w = Watch::start(limits(None, Some(30), 0), None);
        assert!(w.next_check(None, 1).unwrap() <= Duration::from_millis(30));
        std::thread::sleep(Duration::from_millis(35));
        assert!(
            matches!(w.exceeded(None), Some(Exceeded::Wall(d)) if d >= Duration::from_millis(30))
        );
        let line = w.exceeded(None).unwrap().line(w.limits());
        assert!(
            line.starts_with("cgmgr: exec: killed: wall limit 0.030s exceeded (ran 0.0"),
            "{line}"
        );
    }

    #[test]
    fn flags_override_the_policy_and_core_is_zero_unless_set() {
        let policy = ExecConfig {
            time_limit: Some(Duration::from_secs(2)),
            extra_time: Some(Duration::from_millis(500)),
            rlimits: vec![(run::rlimit("nofile").unwrap(), 64)],
            ..ExecConfig::default()
        };
        let flags = ExecFlags {
            time_limit: Some("1s".into()),
            rlimits: vec!["nofile=32".into(), "fsize=1M".into()],
            ..ExecFlags::default()
        };
        let l = resolve(&policy, &flags).unwrap();
        assert_eq!(l.time, Some(Duration::from_secs(1)));
        assert_eq!(l.extra, Duration::from_millis(500));
        let r = rlimits(&policy, &flags).unwrap();
        assert_eq!(
            r,
            vec![
                (libc::RLIMIT_CORE, 0),
                (libc::RLIMIT_NOFILE, 32),
                (libc::RLIMIT_FSIZE, 1 << 20)
            ]
        );
        let bad = ExecFlags {
            wall_limit: Some("10".into()),
            ..ExecFlags::default()
        };
        let err = resolve(&policy, &bad).unwrap_err().to_string();
        assert!(
            err.starts_with("--wall-limit 10: \"10\" has no unit"),
            "{err}"
        );
    }
}
