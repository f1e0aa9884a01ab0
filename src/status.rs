//! `cgmgr status`: a table of managed groups — usage against limits, OOM
//! kills, throttling — for a person at a terminal, or JSON for scripts.
//!
//! CPU and throttling are rates, so they come from two readings of
//! `cpu.stat` `--interval` apart (default 1 s), again and again with
//! `--watch`.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::Duration;

use crate::cgroup::stat::{CpuStat, MemoryEvents};
use crate::cgroup::values::{Bytes, CpuMax, Limit};
use crate::cgroup::{CgroupRoot, GroupName, format, pids};

/// One reading of a group's files.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    cpu: Option<CpuStat>,
    procs: Option<u64>,
    cpu_limit: Option<Limit<f64>>,
    memory: Option<u64>,
    memory_high: Option<Limit<u64>>,
    memory_max: Option<Limit<u64>>,
    pids: Option<u64>,
    pids_max: Option<Limit<u64>>,
    memory_events: Option<MemoryEvents>,
    pids_max_refusals: Option<u64>,
    memory_peak: Option<u64>,
    /// memory.current without memory.peak: the kernel has none (before 5.19).
    kernel_lacks_peak: bool,
}

/// What the table shows for one group.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupStatus {
    /// The group.
    pub group: String,
    /// Processes in the group and below (`pids.current`, else `cgroup.procs`).
    pub processes: Option<u64>,
    /// CPU used, in percent of one CPU.
    pub cpu_percent: Option<f64>,
    /// The `cpu.max` limit, in percent of one CPU (`None`: no cpu controller).
    pub cpu_limit_percent: Option<Limit<f64>>,
    /// Share of enforcement periods that were throttled, in percent.
    pub throttled_percent: Option<f64>,
    /// `memory.current`.
    pub memory_bytes: Option<u64>,
    /// `memory.high` (`None`: no memory controller).
    pub memory_high_bytes: Option<Limit<u64>>,
    /// `memory.max`.
    pub memory_max_bytes: Option<Limit<u64>>,
    /// `pids.current`.
    pub pids: Option<u64>,
    /// `pids.max`.
    pub pids_max: Option<Limit<u64>>,
    /// `memory.events oom_kill`.
    pub oom_kills: Option<u64>,
    /// `memory.peak`: the highest `memory.current` since the group was made.
    pub memory_peak_bytes: Option<u64>,
    /// Interface files this kernel has none of (`memory.peak` before 5.19),
    /// so that a missing figure says why.
    pub kernel_lacks: Vec<&'static str>,
    /// Forks refused at `pids.max` ([`pids::refusals`]: with those of the
    /// group's runs, on every kernel).
    pub pids_max_refusals: Option<u64>,
}

/// Reads what the status needs from a group; missing files stay `None`.
pub fn read(root: &CgroupRoot, group: &GroupName) -> Reading {
    let text = |file: &str| root.read_optional(group, file).ok().flatten();
    let number = |file: &str| text(file).and_then(|t| t.trim().parse::<u64>().ok());
    let limit = |file: &str| text(file).and_then(|t| t.trim().parse::<Limit<u64>>().ok());
    let current = text("memory.current");
    let peak = text("memory.peak");
    Reading {
        cpu: root.stat(group),
        procs: text("cgroup.procs")
            .and_then(|t| format::pid_list(&t).ok())
            .map(|p| p.len() as u64),
        cpu_limit: text("cpu.max")
            .and_then(|t| t.trim().parse::<CpuMax>().ok())
            .map(|c| c.cores().map_or(Limit::Max, Limit::Value)),
        memory: current.as_deref().and_then(|t| t.trim().parse().ok()),
        memory_high: limit("memory.high"),
        memory_max: limit("memory.max"),
        pids: number("pids.current"),
        pids_max: limit("pids.max"),
        memory_events: root.stat(group),
        pids_max_refusals: pids::refusals(root, group).ok().flatten(),
        kernel_lacks_peak: current.is_some() && peak.is_none(),
        memory_peak: peak.and_then(|t| t.trim().parse().ok()),
    }
}

/// Combines two readings `seconds` apart into the status shown.
pub fn status(group: &GroupName, before: &Reading, after: &Reading, seconds: f64) -> GroupStatus {
    let delta = |a: Option<u64>, b: Option<u64>| Some(b?.saturating_sub(a?));
    let cpu = |r: &Reading, field: fn(&CpuStat) -> Option<u64>| r.cpu.as_ref().and_then(field);
    let cpu_percent = delta(
        cpu(before, |c| Some(c.usage_usec)),
        cpu(after, |c| Some(c.usage_usec)),
    )
    .map(|us| us as f64 / (seconds * 1e6) * 100.0);
    let periods = delta(cpu(before, |c| c.nr_periods), cpu(after, |c| c.nr_periods));
    let throttled = delta(
        cpu(before, |c| c.nr_throttled),
        cpu(after, |c| c.nr_throttled),
    );
    let throttled_percent = match (periods, throttled) {
        (Some(p), Some(t)) if p > 0 => Some(t as f64 / p as f64 * 100.0),
        (Some(_), Some(_)) => Some(0.0),
        _ => None,
    };
    GroupStatus {
        group: group.as_str().to_string(),
        processes: after.pids.or(after.procs),
        cpu_percent,
        cpu_limit_percent: after.cpu_limit.map(|c| match c {
            Limit::Max => Limit::Max,
            Limit::Value(c) => Limit::Value(c * 100.0),
        }),
        throttled_percent,
        memory_bytes: after.memory,
        memory_high_bytes: after.memory_high,
        memory_max_bytes: after.memory_max,
        pids: after.pids,
        pids_max: after.pids_max,
        oom_kills: after.memory_events.map(|e| e.oom_kill),
        memory_peak_bytes: after.memory_peak,
        kernel_lacks: if after.kernel_lacks_peak {
            vec!["memory.peak"]
        } else {
            Vec::new()
        },
        pids_max_refusals: after.pids_max_refusals,
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn bytes(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |b| Bytes(b).human())
}

/// The table; `colour` marks values near or at their limit.
pub fn table(rows: &[GroupStatus], colour: bool) -> String {
    let header = [
        "GROUP",
        "PROCS",
        "CPU%",
        "CPU LIMIT",
        "THROTTLED",
        "MEMORY",
        "PEAK",
        "HIGH",
        "MAX",
        "PIDS",
        "PIDS MAX",
        "OOM KILLS",
        "PIDS REFUSED",
    ];
    let mut cells: Vec<Vec<(String, bool)>> = Vec::new();
    for r in rows {
        let value = |l: Option<Limit<u64>>| l.and_then(|l| l.value().copied());
        let near = |used: Option<u64>, max: Option<u64>| matches!((used, max), (Some(u), Some(m)) if m > 0 && u * 10 >= m * 9);
        let show = |l: Option<Limit<u64>>, f: &dyn Fn(u64) -> String| match l {
            None => "-".to_string(),
            Some(Limit::Max) => "max".to_string(),
            Some(Limit::Value(v)) => f(v),
        };
        let human = |b: u64| Bytes(b).human();
        cells.push(vec![
            (r.group.clone(), false),
            (opt(r.processes), false),
            (
                r.cpu_percent.map_or("-".into(), |c| format!("{c:.1}")),
                false,
            ),
            (
                match r.cpu_limit_percent {
                    None => "-".into(),
                    Some(Limit::Max) => "max".into(),
                    Some(Limit::Value(c)) => format!("{c:.0}%"),
                },
                false,
            ),
            (
                r.throttled_percent
                    .map_or("-".into(), |t| format!("{t:.0}%")),
                r.throttled_percent.is_some_and(|t| t >= 50.0),
            ),
            (
                bytes(r.memory_bytes),
                near(r.memory_bytes, value(r.memory_max_bytes)),
            ),
            (peak(r), false),
            (show(r.memory_high_bytes, &human), false),
            (show(r.memory_max_bytes, &human), false),
            (opt(r.pids), near(r.pids, value(r.pids_max))),
            (show(r.pids_max, &|p| p.to_string()), false),
            (opt(r.oom_kills), r.oom_kills.is_some_and(|k| k > 0)),
            (
                opt(r.pids_max_refusals),
                r.pids_max_refusals.is_some_and(|k| k > 0),
            ),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            cells
                .iter()
                .map(|row| row[i].0.chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (i, h) in header.iter().enumerate() {
        let _ = write!(out, "{h:<w$}  ", w = widths[i]);
    }
    out = out.trim_end().to_string();
    out.push('\n');
    for row in cells {
        let mut line = String::new();
        for (i, (text, alert)) in row.iter().enumerate() {
            let padded = format!("{text:<w$}", w = widths[i]);
            if *alert && colour {
                let _ = write!(line, "\x1b[31;1m{padded}\x1b[0m  ");
            } else {
                let _ = write!(line, "{padded}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if rows.iter().any(|r| r.kernel_lacks.contains(&"memory.peak")) {
        out.push_str("n/a*: this kernel has no memory.peak (Linux 5.19 adds it)\n");
    }
    out
}

/// The PEAK cell: the peak, `n/a*` where the kernel has no `memory.peak`
/// (explained under the table), `-` without the memory controller.
fn peak(r: &GroupStatus) -> String {
    match r.memory_peak_bytes {
        Some(b) => Bytes(b).human(),
        None if r.kernel_lacks.contains(&"memory.peak") => "n/a*".into(),
        None => "-".into(),
    }
}

/// One row of `status --json`: numbers in base units, `null` when unknown,
/// `max`, or not a finite number.
#[derive(serde::Serialize)]
struct JsonRow<'a> {
    group: &'a str,
    processes: Option<u64>,
    cpu_percent: Option<f64>,
    cpu_limit_percent: Option<f64>,
    throttled_percent: Option<f64>,
    memory_bytes: Option<u64>,
    memory_high_bytes: Option<u64>,
    memory_max_bytes: Option<u64>,
    pids: Option<u64>,
    pids_max: Option<u64>,
    oom_kills: Option<u64>,
    pids_max_refusals: Option<u64>,
    memory_peak_bytes: Option<u64>,
    kernel_lacks: &'a [&'static str],
}

/// The rows as a JSON array, one line.
pub fn json(rows: &[GroupStatus]) -> String {
    // Three decimals are what a percentage means here; NaN and infinities
    // (a division by a zero interval) become null, as JSON has no such numbers.
    let pct = |v: Option<f64>| {
        v.filter(|n| n.is_finite())
            .map(|n| (n * 1000.0).round() / 1000.0)
    };
    let lim = |v: Option<Limit<u64>>| v.and_then(|l| l.value().copied());
    let items: Vec<JsonRow<'_>> = rows
        .iter()
        .map(|r| JsonRow {
            group: &r.group,
            processes: r.processes,
            cpu_percent: pct(r.cpu_percent),
            cpu_limit_percent: pct(r.cpu_limit_percent.and_then(|l| l.value().copied())),
            throttled_percent: pct(r.throttled_percent),
            memory_bytes: r.memory_bytes,
            memory_high_bytes: lim(r.memory_high_bytes),
            memory_max_bytes: lim(r.memory_max_bytes),
            pids: r.pids,
            pids_max: lim(r.pids_max),
            oom_kills: r.oom_kills,
            pids_max_refusals: r.pids_max_refusals,
            memory_peak_bytes: r.memory_peak_bytes,
            kernel_lacks: &r.kernel_lacks,
        })
        .collect();
    let mut out = serde_json::to_string(&items).unwrap_or_else(|_| "[]".into());
    out.push('\n');
    out
}

/// How `cgmgr status` shows the groups.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Between the two readings of a rate, and between refreshes.
    pub interval: Duration,
    /// JSON instead of the table.
    pub json: bool,
    /// Refresh until interrupted (the table clears the screen each time).
    pub watch: bool,
    /// Mark values near or at their limit with terminal colours.
    pub colour: bool,
}

/// Reads `groups` twice, `interval` apart, and writes the table or JSON to
/// `out`; with `watch`, goes on until interrupted (Ctrl-C) or until writing
/// fails (a closed pipe).
pub fn show(
    root: &CgroupRoot,
    groups: &[GroupName],
    opts: Options,
    out: &mut impl Write,
) -> io::Result<()> {
    let seconds = opts.interval.as_secs_f64();
    let mut before: Vec<_> = groups.iter().map(|g| read(root, g)).collect();
    loop {
        std::thread::sleep(opts.interval);
        let after: Vec<_> = groups.iter().map(|g| read(root, g)).collect();
        let rows: Vec<_> = groups
            .iter()
            .zip(before.iter().zip(&after))
            .map(|(g, (b, a))| status(g, b, a, seconds))
            .collect();
        let text = if opts.json {
            json(&rows)
        } else {
            table(&rows, opts.colour)
        };
        if opts.watch && !opts.json {
            write!(
                out,
                "\x1b[H\x1b[2J{} — every {seconds}s, Ctrl-C to quit\n\n",
                root.path().display(),
            )?;
        }
        out.write_all(text.as_bytes())?;
        out.flush()?;
        if !opts.watch {
            return Ok(());
        }
        before = after;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(usage: u64, periods: u64, throttled: u64) -> Reading {
        Reading {
            cpu: Some(CpuStat {
                usage_usec: usage,
                nr_periods: Some(periods),
                nr_throttled: Some(throttled),
                ..CpuStat::default()
            }),
            cpu_limit: Some(Limit::Value(0.2)),
            memory: Some(30 << 20),
            memory_high: Some(Limit::Max),
            memory_max: Some(Limit::Value(32 << 20)),
            pids_max: Some(Limit::Max),
            pids: Some(3),
            memory_events: Some(MemoryEvents {
                oom_kill: 1,
                ..MemoryEvents::default()
            }),
            pids_max_refusals: Some(2),
            memory_peak: Some(31 << 20),
            ..Reading::default()
        }
    }

    #[test]
    fn rates_from_two_readings() {
        let g = GroupName::parse("web").unwrap();
        let s = status(
            &g,
            &reading(1_000_000, 10, 0),
            &reading(1_100_000, 15, 4),
            0.5,
        );
        assert_eq!(s.cpu_percent, Some(20.0));
        assert_eq!(s.throttled_percent, Some(80.0));
        assert_eq!(s.cpu_limit_percent, Some(Limit::Value(20.0)));
        assert_eq!(s.processes, Some(3));
    }

    #[test]
    fn table_and_json() {
        let g = GroupName::parse("web").unwrap();
        let s = status(&g, &reading(0, 0, 0), &reading(500_000, 10, 5), 1.0);
        let plain = table(std::slice::from_ref(&s), false);
        assert!(
            plain.starts_with("GROUP  PROCS  CPU%  CPU LIMIT  THROTTLED  MEMORY  "),
            "{plain}"
        );
        assert!(
            plain.contains(
                "web    3      50.0  20%        50%        30 MiB  31 MiB  max   32 MiB  3     max       1          2"
            ),
            "{plain}"
        );
        let coloured = table(std::slice::from_ref(&s), true);
        assert!(
            coloured.contains("\x1b[31;1m30 MiB\x1b[0m"),
            "memory near max is marked:\n{coloured}"
        );
        let j = json(std::slice::from_ref(&s));
        assert!(
            j.starts_with("[{\"group\":\"web\",\"processes\":3,\"cpu_percent\":50.0,\"cpu_limit_percent\":20.0,"),
            "{j}"
        );
        assert!(j.contains("\"memory_high_bytes\":null"), "{j}");
        assert!(
            j.ends_with(
                "\"oom_kills\":1,\"pids_max_refusals\":2,\"memory_peak_bytes\":32505856,\"kernel_lacks\":[]}]\n"
            ),
            "{j}"
        );
        assert!(!plain.contains("n/a"), "{plain}");
        // A kernel without memory.peak (5.10): said so, under the table too.
        let old = status(
            &g,
            &reading(0, 0, 0),
            &Reading {
                memory_peak: None,
                kernel_lacks_peak: true,
                ..reading(500_000, 10, 5)
            },
            1.0,
        );
        let plain = table(std::slice::from_ref(&old), false);
        assert!(plain.contains("30 MiB  n/a*  max"), "{plain}");
        assert!(
            plain.ends_with("n/a*: this kernel has no memory.peak (Linux 5.19 adds it)\n"),
            "{plain}"
        );
        let j = json(std::slice::from_ref(&old));
        assert!(
            j.contains("\"memory_peak_bytes\":null,\"kernel_lacks\":[\"memory.peak\"]"),
            "{j}"
        );
        // A name that needs escaping, and numbers JSON cannot hold.
        let odd = GroupStatus {
            group: "a\"b\\\n".into(),
            cpu_percent: Some(f64::NAN),
            throttled_percent: Some(f64::INFINITY),
            ..s
        };
        let j = json(&[odd]);
        let v: serde_json::Value = serde_json::from_str(&j).expect("valid JSON");
        assert_eq!(v[0]["group"], "a\"b\\\n");
        assert_eq!(v[0]["cpu_percent"], serde_json::Value::Null);
        assert_eq!(v[0]["throttled_percent"], serde_json::Value::Null);
    }
}
