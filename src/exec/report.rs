//! `cgmgr exec --report`: what this run used and what the kernel refused
//! it, read from its run group before the group goes away (so concurrent
//! runs in the same group do not blur it), on stderr as text or one JSON
//! object.
//!
//! Two numbers cannot be a run's own and say so: which group's memory limit
//! fired (found by the `oom` count in `memory.events.local` that rose, from
//! the run group up through the managed root), and the time throttled by
//! the group's `cpu.max` (the group's counter during the run: its quota is
//! shared by every run in it).

use std::str::FromStr;
use std::time::Instant;

use serde::Serialize;

use super::limits::{Exceeded, RunLimits};
use super::supervise::RunEnd;
use crate::cgroup::pids;
use crate::cgroup::stat::{CpuStat, IoStat, MemoryEvents, MemoryEventsLocal};
use crate::cgroup::values::{Bytes, Limit};
use crate::cgroup::{CgroupRoot, GroupName};

/// `--report` (text) or `--report=json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    /// Lines on stderr for people.
    Text,
    /// One JSON object on stderr, its last line.
    Json,
}

/// A `--report` value that is neither `text` nor `json`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a report format: use text or json")]
pub struct UnknownReportFormat {
    /// The value given.
    pub value: String,
}

impl FromStr for ReportFormat {
    type Err = UnknownReportFormat;

    fn from_str(s: &str) -> Result<ReportFormat, UnknownReportFormat> {
        match s {
            "text" => Ok(ReportFormat::Text),
            "json" => Ok(ReportFormat::Json),
            _ => Err(UnknownReportFormat {
                value: s.to_string(),
            }),
        }
    }
}

/// What is read before the run starts.
#[derive(Debug, Clone)]
pub struct Baseline {
    started: Instant,
    /// `oom` of `memory.events.local`, for the group and each ancestor
    /// up to the managed root.
    oom_local: Vec<(GroupName, u64)>,
    group_throttled_us: Option<u64>,
    /// The run group's CPU time at the start (a prepared sandbox's build).
    run_cpu_us: u64,
}

impl Baseline {
    /// Reads the counters the report compares against.
    pub fn read(root: &CgroupRoot, group: &GroupName, run: &GroupName) -> Baseline {
        Baseline {
            run_cpu_us: root.stat::<CpuStat>(run).map_or(0, |c| c.usage_usec),
            oom_local: limit_holders(group)
                .into_iter()
                .map(|g| {
                    let n = oom_local(root, &g).unwrap_or(0);
                    (g, n)
                })
                .collect(),
            group_throttled_us: throttled_usec(root, group),
            started: Instant::now(),
        }
    }
}

impl Status {
    /// The name in the JSON report.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Exit => "exit",
            Status::Signal => "signal",
            Status::Time => "time",
            Status::Wall => "wall",
            Status::Memory => "memory",
            Status::Output => "output",
            Status::Internal => "internal",
        }
    }
}

/// A run's verdict, as a judge reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Exited 0.
    Ok,
    /// Exited with another status.
    Exit,
    /// Killed by a signal (not one of the limits below).
    Signal,
    /// Killed past its CPU time limit.
    Time,
    /// Killed past its wall-clock limit.
    Wall,
    /// Killed by the OOM killer, under any memory limit.
    Memory,
    /// Killed by SIGXFSZ: it wrote past its `fsize` limit.
    Output,
    /// cgmgr itself failed (exit 125), the workload may not have run.
    Internal,
}

impl Status {
    /// The verdict of a run that ended as `end`, with `oom_kills` OOM kills.
    pub fn of(end: &RunEnd, oom_kills: u64) -> Status {
        match (end.exceeded, signal_of(end.code)) {
            (Some(Exceeded::Time(_)), _) => Status::Time,
            (Some(Exceeded::Wall(_)), _) => Status::Wall,
            (None, _) if oom_kills > 0 && end.code != 0 => Status::Memory,
            (None, Some(sig)) if sig == libc::SIGXFSZ => Status::Output,
            (None, Some(_)) => Status::Signal,
            (None, None) if end.code == 0 => Status::Ok,
            // cgmgr's own status for a failure before the workload ran.
            (None, None) if end.code == 125 => Status::Internal,
            (None, None) => Status::Exit,
        }
    }
}

/// The signal a status of 128+N stands for, as shells read it (init passes
/// the workload's death by signal N on as 128+N).
fn signal_of(code: i32) -> Option<i32> {
    (129..=128 + 64).contains(&code).then(|| code - 128)
}

/// The report of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunReport {
    /// The policy group the run belonged to.
    pub group: String,
    /// The workload's exit status (128+N when killed by signal N).
    pub exit_code: i32,
    /// From before the run group was made to after the workload's end.
    pub wall_seconds: f64,
    /// CPU time in user mode (`cpu.stat` user_usec of the run group).
    pub cpu_user_seconds: Option<f64>,
    /// CPU time in the kernel (system_usec).
    pub cpu_system_seconds: Option<f64>,
    /// The run's largest memory use (`memory.peak`, Linux 5.19).
    pub memory_peak_bytes: Option<u64>,
    /// Bytes read from block devices (`io.stat` rbytes; needs the io controller).
    pub io_read_bytes: Option<u64>,
    /// Bytes written to block devices (wbytes).
    pub io_write_bytes: Option<u64>,
    /// Processes of this run the OOM killer killed.
    pub oom_kills: u64,
    /// The group whose memory limit was reached, when known.
    pub oom_limit_group: Option<String>,
    /// Forks of this run refused by a `pids.max`.
    pub pids_max_refusals: u64,
    /// Time the group was throttled by its `cpu.max` during this run
    /// (shared by every concurrent run of the group).
    pub group_throttled_seconds: Option<f64>,
    /// The verdict (after the fields above, which keep their order).
    pub status: Status,
    /// N when the status is 128+N (the workload was killed by signal N).
    pub exit_signal: Option<i32>,
    /// CPU time, user + system, of every process of the run (`cpu.stat`).
    pub cpu_seconds: Option<f64>,
    /// The largest resident set of any process of the run (`wait4`).
    pub max_rss_bytes: Option<u64>,
    /// Voluntary context switches of the run's processes (`wait4`).
    pub csw_voluntary: Option<u64>,
    /// Involuntary context switches (`wait4`).
    pub csw_involuntary: Option<u64>,
    /// Interface files this kernel does not have at all (as opposed to a
    /// controller not enabled for the group), so that a missing figure
    /// says why: `memory.peak` before Linux 5.19.
    pub kernel_lacks: Vec<&'static str>,
}

/// The limit counters the run already reports (shared with the plain
/// one-line messages of `cgmgr exec`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Refusals {
    /// OOM kills of this run.
    pub oom_kills: u64,
    /// pids.max refusals of this run.
    pub pids_max: u64,
}

/// Reads the run group (before it is removed) and the group.
pub fn collect(
    root: &CgroupRoot,
    group: &GroupName,
    run: &GroupName,
    baseline: &Baseline,
    refusals: Refusals,
) -> RunReport {
    let cpu: Option<CpuStat> = root.stat(run);
    let memory_peak = root
        .read(run, "memory.peak")
        .ok()
        .and_then(|s| s.trim().parse().ok());
    // memory.current is there whenever the controller is enabled: its
    // presence without memory.peak means the kernel has none.
    let kernel_lacks = match memory_peak {
        None if matches!(root.read_optional(run, "memory.current"), Ok(Some(_))) => {
            vec!["memory.peak"]
        }
        _ => Vec::new(),
    };
    let seconds = |us: u64| us as f64 / 1e6;
    let io = root.stat::<IoStat>(run).map(|s| s.total_bytes());
    // Only for this run's own kills: a concurrent run's OOM also raises the
    // group's count.
    let oom_limit_group = (refusals.oom_kills > 0)
        .then(|| {
            baseline
                .oom_local
                .iter()
                .find(|(g, before)| oom_local(root, g).is_some_and(|now| now > *before))
                .map(|(g, _)| display_group(g))
        })
        .flatten();
    RunReport {
        group: group.to_string(),
        status: Status::Ok,
        exit_code: 0,
        exit_signal: None,
        cpu_seconds: cpu.map(|c| seconds(c.usage_usec.saturating_sub(baseline.run_cpu_us))),
        max_rss_bytes: None,
        csw_voluntary: None,
        csw_involuntary: None,
        wall_seconds: baseline.started.elapsed().as_secs_f64(),
        cpu_user_seconds: cpu.map(|c| seconds(c.user_usec)),
        cpu_system_seconds: cpu.map(|c| seconds(c.system_usec)),
        memory_peak_bytes: memory_peak,
        io_read_bytes: io.map(|(r, _)| r),
        io_write_bytes: io.map(|(_, w)| w),
        oom_kills: refusals.oom_kills,
        oom_limit_group,
        pids_max_refusals: refusals.pids_max,
        group_throttled_seconds: baseline.group_throttled_us.and_then(|before| {
            throttled_usec(root, group).map(|now| seconds(now.saturating_sub(before)))
        }),
        kernel_lacks,
    }
}

impl RunReport {
    /// The report of a run cgmgr failed to start: status `internal`, exit
    /// 125, nothing measured.
    pub fn internal(group: &str) -> RunReport {
        RunReport {
            group: group.into(),
            status: Status::Internal,
            exit_code: 125,
            exit_signal: None,
            cpu_seconds: None,
            max_rss_bytes: None,
            csw_voluntary: None,
            csw_involuntary: None,
            wall_seconds: 0.0,
            cpu_user_seconds: None,
            cpu_system_seconds: None,
            memory_peak_bytes: None,
            io_read_bytes: None,
            io_write_bytes: None,
            oom_kills: 0,
            oom_limit_group: None,
            pids_max_refusals: 0,
            group_throttled_seconds: None,
            kernel_lacks: Vec::new(),
        }
    }

    /// The report of a run whose prepared sandbox went away after the
    /// command was handed over: killed by SIGKILL with it (exit 137),
    /// nothing measured but the wall time the caller saw.
    pub fn lost(group: &str, wall: std::time::Duration) -> RunReport {
        RunReport {
            status: Status::Signal,
            exit_code: 128 + 9,
            exit_signal: Some(9),
            wall_seconds: wall.as_secs_f64(),
            ..RunReport::internal(group)
        }
    }

    /// Fills in how the run ended: its status, verdict and `wait4` figures.
    pub fn ended(&mut self, end: &RunEnd) {
        self.exit_code = end.code;
        self.exit_signal = signal_of(end.code);
        self.status = Status::of(end, self.oom_kills);
        if let Some(u) = end.rusage {
            let count = |n: libc::c_long| u64::try_from(n).ok();
            // ru_maxrss is in KiB.
            self.max_rss_bytes = count(u.ru_maxrss).map(|kib| kib * 1024);
            self.csw_voluntary = count(u.ru_nvcsw);
            self.csw_involuntary = count(u.ru_nivcsw);
        }
    }

    /// One JSON object (serde_json: every value is finite or null).
    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// Lines for people, each prefixed `cgmgr: `.
    pub fn text(&self) -> String {
        let secs = |v: Option<f64>| v.map_or("?".to_string(), |s| format!("{s:.3}s"));
        let mut lines = vec![
            format!(
                "run report: group {}, exit {}, status {}",
                self.group,
                self.exit_code,
                self.status.name()
            ),
            format!(
                "  wall {:.3}s, cpu {} user + {} system",
                self.wall_seconds,
                secs(self.cpu_user_seconds),
                secs(self.cpu_system_seconds)
            ),
        ];
        lines.push(match self.memory_peak_bytes {
            Some(b) => format!("  memory peak {}", Bytes(b).human()),
            None if self.kernel_lacks.contains(&"memory.peak") => {
                "  memory peak not counted: this kernel has no memory.peak (Linux 5.19 adds it)"
                    .to_string()
            }
            None => format!(
                "  memory peak not counted: the memory controller is not enabled for {}",
                self.group
            ),
        });
        lines.push(match (self.io_read_bytes, self.io_write_bytes) {
            (Some(r), Some(w)) => format!(
                "  io {} read, {} written",
                Bytes(r).human(),
                Bytes(w).human()
            ),
            _ => format!(
                "  io not counted: the io controller is not enabled for {}",
                self.group
            ),
        });
        let limit = self
            .oom_limit_group
            .as_ref()
            .map(|g| format!(" (the memory limit of {g})"))
            .unwrap_or_default();
        lines.push(format!("  OOM kills {}{limit}", self.oom_kills));
        lines.push(format!("  pids.max refusals {}", self.pids_max_refusals));
        if let Some(t) = self.group_throttled_seconds {
            lines.push(format!(
                "  throttled {t:.3}s by the cpu.max of {} (the group's, during this run)",
                self.group
            ));
        }
        lines.iter().map(|l| format!("cgmgr: {l}\n")).collect()
    }
}

/// The group and its ancestors up to the managed root, lowest first: the
/// places a memory limit that binds the run can be.
fn limit_holders(group: &GroupName) -> Vec<GroupName> {
    let mut holders = group.ancestry();
    holders.reverse();
    if !holders.iter().any(GroupName::is_root) {
        holders.push(GroupName::root());
    }
    holders
}

fn display_group(g: &GroupName) -> String {
    if g.is_root() {
        "the managed root".into()
    } else {
        g.to_string()
    }
}

fn oom_local(root: &CgroupRoot, group: &GroupName) -> Option<u64> {
    root.stat::<MemoryEventsLocal>(group)
        .map(|local| local.0.oom)
}

/// The group's `cpu.stat` throttled_usec (needs the cpu controller).
fn throttled_usec(root: &CgroupRoot, group: &GroupName) -> Option<u64> {
    root.stat::<CpuStat>(group)?.throttled_usec
}

/// What a run is measured against from its start (the group's counters
/// and, for a report, its usage), and what the run tells at its end: the
/// one finish of direct and prepared runs alike.
#[derive(Debug)]
pub struct Accounting {
    group: GroupName,
    before: LimitCounters,
    baseline: Option<Baseline>,
    format: Option<ReportFormat>,
    limits: RunLimits,
}

/// What a finished run tells: its stderr lines, and its report when one
/// was asked for (`--report`, `--report-file`).
#[derive(Debug, Default)]
pub struct Finished {
    /// What `cgmgr exec` prints on stderr.
    pub stderr: String,
    /// The report, for `--report-file`.
    pub report: Option<RunReport>,
}

impl Accounting {
    /// Taken as the run starts (its command handed over, for a prepared
    /// sandbox) in run group `run`; `report`: a report is wanted even
    /// without `format` (for `--report-file`).
    pub fn start(
        root: &CgroupRoot,
        group: &GroupName,
        run: &GroupName,
        format: Option<ReportFormat>,
        report: bool,
        limits: RunLimits,
    ) -> Accounting {
        Accounting {
            group: group.clone(),
            before: LimitCounters::read(root, group),
            baseline: (format.is_some() || report).then(|| Baseline::read(root, group, run)),
            format,
            limits,
        }
    }

    /// What the run tells once it ended as `end`, read from its run group
    /// `run` (which must still exist): the limit that killed it; the report
    /// with `--report`, else one line per limit the kernel enforced on it.
    pub fn finish(self, root: &CgroupRoot, run: &GroupName, end: &RunEnd) -> Finished {
        let own = OwnCounters::read(root, run);
        let refused = refusals(root, &self.group, &self.before, own);
        let mut stderr = end
            .exceeded
            .map(|e| e.line(&self.limits))
            .unwrap_or_default();
        let report = self.baseline.map(|b| {
            let mut r = collect(root, &self.group, run, &b, refused);
            r.ended(end);
            // A run that used its CPU budget between two checks and ended
            // on its own is over the limit all the same.
            let budget = self
                .limits
                .time
                .map(|t| (t + self.limits.extra).as_secs_f64());
            if let (Some(budget), Some(used), None) = (budget, r.cpu_seconds, end.exceeded)
                && used >= budget
            {
                r.status = Status::Time;
            }
            r
        });
        stderr += &match (&report, self.format) {
            (Some(r), Some(ReportFormat::Text)) => r.text(),
            (Some(r), Some(ReportFormat::Json)) => format!("{}\n", r.json()),
            _ => refusal_lines(root, &self.group, refused),
        };
        Finished { stderr, report }
    }
}

/// The group's limit-event counters, to tell what the kernel did during a run.
#[derive(Debug, Clone, Copy, Default)]
struct LimitCounters {
    oom_kill: u64,
    pids_max: u64,
}

/// A run group's own counters, each when the kernel counts it there: OOM
/// kills when the memory controller is enabled for the run, pids.max
/// refusals when the pids controller is and the kernel counts a refused
/// fork in the forking cgroup (before 6.11; from 6.11 it counts it at the
/// group whose limit refused it, not at the run).
#[derive(Debug, Clone, Copy, Default)]
struct OwnCounters {
    oom_kill: Option<u64>,
    pids_max: Option<u64>,
}

impl OwnCounters {
    fn read(root: &CgroupRoot, run: &GroupName) -> OwnCounters {
        OwnCounters {
            oom_kill: root.stat::<MemoryEvents>(run).map(|e| e.oom_kill),
            pids_max: pids::run_refusals(root, run),
        }
    }
}

impl LimitCounters {
    fn read(root: &CgroupRoot, group: &GroupName) -> LimitCounters {
        LimitCounters {
            oom_kill: root.stat::<MemoryEvents>(group).map_or(0, |e| e.oom_kill),
            pids_max: pids::refusals(root, group).ok().flatten().unwrap_or(0),
        }
    }
}

/// This run's OOM kills and pids.max refusals: its own counters where the
/// kernel keeps them, else the group's increase during the run.
fn refusals(
    root: &CgroupRoot,
    group: &GroupName,
    before: &LimitCounters,
    own: OwnCounters,
) -> Refusals {
    let after = if own.oom_kill.is_none() || own.pids_max.is_none() {
        LimitCounters::read(root, group)
    } else {
        LimitCounters::default()
    };
    Refusals {
        oom_kills: own
            .oom_kill
            .unwrap_or_else(|| after.oom_kill.saturating_sub(before.oom_kill)),
        pids_max: own
            .pids_max
            .unwrap_or_else(|| after.pids_max.saturating_sub(before.pids_max)),
    }
}

/// One line for each limit the kernel enforced during the run, for stderr.
fn refusal_lines(root: &CgroupRoot, group: &GroupName, refusals: Refusals) -> String {
    let mut text = String::new();
    let size = |file: &str| {
        root.read_value::<Limit<Bytes>>(group, file)
            .ok()
            .map(|l| match l {
                Limit::Max => "max".to_string(),
                Limit::Value(b) => b.human(),
            })
    };
    if refusals.oom_kills > 0 {
        let max = size("memory.max").unwrap_or_else(|| "?".into());
        let peak = size("memory.peak")
            .map(|p| format!(", peak {p}"))
            .unwrap_or_default();
        text += &format!("cgmgr: {group}: killed by the OOM killer (memory.max {max}{peak})\n");
    }
    if refusals.pids_max > 0 {
        let max = root
            .read(group, "pids.max")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "?".into());
        let n = refusals.pids_max;
        text += &format!("cgmgr: {group}: pids.max ({max}) was reached: {n} fork(s) refused\n");
    }
    text
}

/// `--report-file`: opened before the run starts, written through that
/// descriptor at its end. A file the run could have planted is refused: the
/// path's last component must not be a symlink (`O_NOFOLLOW`), and the file
/// must be a regular file with one link, owned by this process's user. The
/// run then cannot redirect or forge it (write it where the run cannot).
#[derive(Debug)]
pub struct ReportFile {
    file: std::fs::File,
    path: std::path::PathBuf,
}

/// A `--report-file` that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("--report-file {}: {why}", path.display())]
pub struct ReportFileError {
    /// The path given.
    pub path: std::path::PathBuf,
    /// What is wrong.
    pub why: String,
}

impl ReportFile {
    /// Opens (or creates, 0644) `path` for the report.
    pub fn open(path: &std::path::Path) -> Result<ReportFile, ReportFileError> {
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let refuse = |why: String| ReportFileError {
            path: path.to_path_buf(),
            why,
        };
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| refuse(e.to_string()))?;
        let meta = file.metadata().map_err(|e| refuse(e.to_string()))?;
        // SAFETY: geteuid takes nothing and cannot fail.
        let me = unsafe { libc::geteuid() };
        if !meta.file_type().is_file() || meta.nlink() != 1 || meta.uid() != me {
            return Err(refuse(format!(
                "must be a regular file of yours with one link (it is uid {}, {} link(s)): a file someone else made there could redirect or forge the report",
                meta.uid(),
                meta.nlink()
            )));
        }
        Ok(ReportFile {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Replaces the file's content with `json` and a newline.
    pub fn write_json(&self, json: &str) -> Result<(), ReportFileError> {
        use std::os::unix::fs::FileExt;
        let fail = |e: std::io::Error| ReportFileError {
            path: self.path.clone(),
            why: format!("writing the report: {e}"),
        };
        self.file.set_len(0).map_err(fail)?;
        self.file
            .write_all_at(format!("{json}\n").as_bytes(), 0)
            .map_err(fail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_every_field_and_nulls_for_the_unknown() {
        let r = RunReport {
            group: "batch".into(),
            status: Status::Memory,
            exit_code: 137,
            exit_signal: Some(9),
            cpu_seconds: Some(0.5),
            max_rss_bytes: Some(1 << 20),
            csw_voluntary: Some(3),
            csw_involuntary: None,
            wall_seconds: 1.5,
            cpu_user_seconds: Some(0.25),
            cpu_system_seconds: None,
            memory_peak_bytes: Some(67_108_864),
            io_read_bytes: None,
            io_write_bytes: None,
            oom_kills: 1,
            oom_limit_group: Some("batch".into()),
            pids_max_refusals: 0,
            group_throttled_seconds: Some(0.0),
            kernel_lacks: Vec::new(),
        };
        let v: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(v["exit_code"], 137);
        assert_eq!(v["cpu_system_seconds"], serde_json::Value::Null);
        assert_eq!(v["oom_limit_group"], "batch");
        assert_eq!(v["status"], "memory");
        assert_eq!(v.as_object().unwrap().len(), 19);
        assert_eq!(v["kernel_lacks"], serde_json::json!([]));
        let text = r.text();
        assert!(
            text.contains("cgmgr:   OOM kills 1 (the memory limit of batch)"),
            "{text}"
        );
        assert!(text.contains("cgmgr:   memory peak 64 MiB"), "{text}");
        let old_kernel = RunReport {
            memory_peak_bytes: None,
            kernel_lacks: vec!["memory.peak"],
            ..r
        };
        assert!(
            old_kernel.text().contains(
                "memory peak not counted: this kernel has no memory.peak (Linux 5.19 adds it)"
            ),
            "{}",
            old_kernel.text()
        );
    }

    #[test]
    fn formats_parse() {
        assert_eq!("json".parse(), Ok(ReportFormat::Json));
        assert_eq!("text".parse(), Ok(ReportFormat::Text));
        assert!("yaml".parse::<ReportFormat>().is_err());
    }

    /// The message clap and the standby server see is the one it always was.
    #[test]
    fn an_unknown_format_names_the_value_and_the_choices() {
        let e = "yaml".parse::<ReportFormat>().unwrap_err();
        assert_eq!(e.value, "yaml");
        assert_eq!(
            e.to_string(),
            "\"yaml\" is not a report format: use text or json"
        );
    }

    fn end(code: i32, exceeded: Option<Exceeded>) -> RunEnd {
        RunEnd {
            code,
            exceeded,
            rusage: None,
        }
    }

    /// Every verdict from how a run ended: the limit that killed it first,
    /// then an OOM kill, then the signal, then the status.
    #[test]
    fn the_verdict_follows_how_the_run_ended() {
        let second = std::time::Duration::from_secs(1);
        let cases = [
            (end(137, Some(Exceeded::Time(second))), 0, Status::Time),
            (end(137, Some(Exceeded::Wall(second))), 1, Status::Wall),
            (end(137, None), 1, Status::Memory),
            (end(0, None), 1, Status::Ok),
            (end(153, None), 0, Status::Output),
            (end(139, None), 0, Status::Signal),
            (end(137, None), 0, Status::Signal),
            (end(1, None), 0, Status::Exit),
            (end(127, None), 0, Status::Exit),
            (end(125, None), 0, Status::Internal),
        ];
        for (e, ooms, want) in cases {
            assert_eq!(Status::of(&e, ooms), want, "{e:?} with {ooms} OOM kills");
        }
        assert_eq!(signal_of(139), Some(11));
        assert_eq!(signal_of(128), None);
    }
}
