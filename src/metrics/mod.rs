//! Prometheus metrics: every per-group family cgmgr documents, read from the kernel's
//! files on each scrape, plus the manager's own.
//!
//! Reading is tolerant one layer above the parsers: a file the kernel lacks
//! gives no sample, a `max` limit gives no gauge, a group that vanishes
//! mid-scrape is skipped whole and counted.

pub mod families;
pub mod own;
pub mod reader;

use std::collections::HashMap;

use families::{Families, Kind};
use reader::{FdBudget, GroupFiles, Vanished};

use crate::cgroup::values::{Bytes, CpuMax, Limit};
use crate::cgroup::{CgroupRoot, GroupName, format};

/// Reads groups' files, keeping them open between scrapes.
pub struct Collector {
    groups: HashMap<GroupName, GroupFiles>,
    budget: FdBudget,
    buf: Vec<u8>,
    /// Groups skipped because they vanished mid-scrape.
    pub vanished_total: u64,
}

impl Default for Collector {
    fn default() -> Collector {
        Collector::with_budget(FdBudget::from_rlimit())
    }
}

/// One group's samples, held until the group is read completely.
type Pending = Vec<(&'static str, Kind, &'static str, String, f64)>;

impl Collector {
    /// A collector keeping at most `budget` descriptors open.
    pub fn with_budget(budget: FdBudget) -> Collector {
        Collector {
            groups: HashMap::new(),
            budget,
            buf: Vec::new(),
            vanished_total: 0,
        }
    }

    /// The text exposition of `groups`, then the daemon's own metrics.
    pub fn scrape(
        &mut self,
        root: &CgroupRoot,
        groups: &[GroupName],
        own: Option<&own::OwnMetrics>,
    ) -> String {
        let mut fam = Families::default();
        let wanted: std::collections::HashSet<&GroupName> = groups.iter().collect();
        let dropped: Vec<GroupName> = self
            .groups
            .keys()
            .filter(|g| !wanted.contains(g))
            .cloned()
            .collect();
        for g in dropped {
            if let Some(files) = self.groups.remove(&g) {
                files.release(&mut self.budget);
            }
        }
        for group in groups {
            let files = self.groups.entry(group.clone()).or_default();
            let mut pending = Pending::new();
            match collect_group(
                root,
                group,
                files,
                &mut self.budget,
                &mut self.buf,
                &mut pending,
            ) {
                Ok(()) => {
                    for (name, kind, help, labels, value) in pending {
                        fam.add_rendered(name, kind, help, labels, value);
                    }
                }
                Err(Vanished) => {
                    self.vanished_total += 1;
                    if let Some(files) = self.groups.remove(group) {
                        files.release(&mut self.budget);
                    }
                }
            }
        }
        fam.add(
            "cgmgr_scrape_vanished_groups_total",
            Kind::Counter,
            "Groups skipped because they were removed during a scrape.",
            &[],
            self.vanished_total as f64,
        );
        fam.add(
            "cgmgr_build_info",
            Kind::Gauge,
            "Always 1; the version label says which cgmgr.",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        );
        let mut text = fam.encode();
        if let Some(own) = own {
            text.push_str(&own.encode());
        }
        text
    }
}

/// Adds one sample with the group label (and more labels) to `out`.
fn push(
    out: &mut Pending,
    group: &GroupName,
    name: &'static str,
    kind: Kind,
    help: &'static str,
    extra: &[(&'static str, &str)],
    value: f64,
) {
    let mut labels = vec![("group", group.as_str())];
    labels.extend_from_slice(extra);
    out.push((name, kind, help, families::render_labels(&labels), value));
}

/// Microseconds per second: kernel µs counters are divided by it (a division
/// keeps decimal values exact where a multiplication by 1e-6 would not).
const US_PER_S: f64 = 1e6;

fn collect_group(
    root: &CgroupRoot,
    group: &GroupName,
    files: &mut GroupFiles,
    budget: &mut FdBudget,
    buf: &mut Vec<u8>,
    out: &mut Pending,
) -> Result<(), Vanished> {
    // Each read borrows `buf` until the next one: parse before reading on.
    macro_rules! read {
        ($file:expr) => {
            files.read(root, group, $file, budget, buf)?
        };
    }
    if let Some(text) = read!("cpu.stat") {
        cpu_stat(group, text, out);
    }
    if let Some(cores) = read!("cpu.max")
        .and_then(|t| t.trim().parse::<CpuMax>().ok())
        .and_then(|c| c.cores())
    {
        push(
            out,
            group,
            "cgmgr_cpu_limit_cores",
            Kind::Gauge,
            "CPU limit from cpu.max (quota / period), absent when max.",
            &[],
            cores,
        );
    }
    let current = read!("memory.current").and_then(|t| t.trim().parse::<u64>().ok());
    if let Some(current) = current {
        push(
            out,
            group,
            "cgmgr_memory_usage_bytes",
            Kind::Gauge,
            "memory.current.",
            &[],
            current as f64,
        );
        if let Some(stat) = read!("memory.stat").and_then(|t| format::flat_keyed(t).ok()) {
            let inactive = stat.get("inactive_file").copied().unwrap_or(0);
            push(
                out,
                group,
                "cgmgr_memory_working_set_bytes",
                Kind::Gauge,
                "memory.current minus inactive_file.",
                &[],
                current.saturating_sub(inactive) as f64,
            );
        }
    }
    let gauge_u64 = |text: Option<&str>| text.and_then(|t| t.trim().parse::<u64>().ok());
    if let Some(peak) = gauge_u64(read!("memory.peak")) {
        push(
            out,
            group,
            "cgmgr_memory_peak_bytes",
            Kind::Gauge,
            "memory.peak: the highest usage recorded.",
            &[],
            peak as f64,
        );
    }
    if let Some(swap) = gauge_u64(read!("memory.swap.current")) {
        push(
            out,
            group,
            "cgmgr_memory_swap_usage_bytes",
            Kind::Gauge,
            "memory.swap.current.",
            &[],
            swap as f64,
        );
    }
    let limit = |text: Option<&str>| {
        text.and_then(|t| t.trim().parse::<Limit<Bytes>>().ok())
            .and_then(|l| l.value().map(|b| b.0 as f64))
    };
    if let Some(max) = limit(read!("memory.max")) {
        push(
            out,
            group,
            "cgmgr_memory_limit_bytes",
            Kind::Gauge,
            "memory.max, absent when max.",
            &[],
            max,
        );
    }
    if let Some(high) = limit(read!("memory.high")) {
        push(
            out,
            group,
            "cgmgr_memory_high_bytes",
            Kind::Gauge,
            "memory.high, absent when max.",
            &[],
            high,
        );
    }
    if let Some(events) = read!("memory.events").and_then(|t| format::flat_keyed(t).ok()) {
        for (event, n) in &events {
            push(
                out,
                group,
                "cgmgr_memory_events_total",
                Kind::Counter,
                "memory.events counters: low, high, max, oom, oom_kill, oom_group_kill.",
                &[("event", event)],
                *n as f64,
            );
        }
    }
    if let Some(n) = gauge_u64(read!("pids.current")) {
        push(
            out,
            group,
            "cgmgr_pids_current",
            Kind::Gauge,
            "pids.current.",
            &[],
            n as f64,
        );
    }
    if let Some(max) = read!("pids.max")
        .and_then(|t| t.trim().parse::<Limit<u64>>().ok())
        .and_then(|l| l.value().copied())
    {
        push(
            out,
            group,
            "cgmgr_pids_limit",
            Kind::Gauge,
            "pids.max, absent when max.",
            &[],
            max as f64,
        );
    }
    if let Some(events) = read!("pids.events").and_then(|t| format::flat_keyed(t).ok())
        && let Some(n) = events.get("max")
    {
        push(
            out,
            group,
            "cgmgr_pids_events_total",
            Kind::Counter,
            "pids.events: forks refused at pids.max.",
            &[("event", "max")],
            *n as f64,
        );
    }
    if let Some(lines) = read!("io.stat").and_then(|t| format::nested_keyed(t).ok()) {
        io_stat(group, &lines, out);
    }
    for (resource, file) in [
        ("cpu", "cpu.pressure"),
        ("memory", "memory.pressure"),
        ("io", "io.pressure"),
    ] {
        let Some(psi) = read!(file).and_then(|t| format::psi(t).ok()) else {
            continue;
        };
        for (kind, line) in [("some", Some(psi.some)), ("full", psi.full)] {
            if let Some(line) = line {
                push(
                    out,
                    group,
                    "cgmgr_pressure_seconds_total",
                    Kind::Counter,
                    "Time stalled on the resource (PSI total): some = some tasks waiting, full = all non-idle tasks stalled.",
                    &[("resource", resource), ("kind", kind)],
                    line.total_us as f64 / US_PER_S,
                );
            }
        }
    }
    Ok(())
}

fn cpu_stat(group: &GroupName, text: &str, out: &mut Pending) {
    let Ok(stat) = format::flat_keyed(text) else {
        return;
    };
    // (key, metric, help, divisor to seconds or 1 for counts)
    let fields: [(&str, &'static str, &'static str, f64); 6] = [
        (
            "usage_usec",
            "cgmgr_cpu_usage_seconds_total",
            "CPU time used (cpu.stat usage_usec).",
            US_PER_S,
        ),
        (
            "user_usec",
            "cgmgr_cpu_user_seconds_total",
            "CPU time in user mode (cpu.stat user_usec).",
            US_PER_S,
        ),
        (
            "system_usec",
            "cgmgr_cpu_system_seconds_total",
            "CPU time in kernel mode (cpu.stat system_usec).",
            US_PER_S,
        ),
        (
            "nr_periods",
            "cgmgr_cpu_periods_total",
            "Enforcement periods elapsed (cpu.stat nr_periods).",
            1.0,
        ),
        (
            "nr_throttled",
            "cgmgr_cpu_throttled_periods_total",
            "Periods in which the group was throttled (cpu.stat nr_throttled).",
            1.0,
        ),
        (
            "throttled_usec",
            "cgmgr_cpu_throttled_seconds_total",
            "Time throttled (cpu.stat throttled_usec).",
            US_PER_S,
        ),
    ];
    for (key, name, help, divisor) in fields {
        if let Some(v) = stat.get(key) {
            push(
                out,
                group,
                name,
                Kind::Counter,
                help,
                &[],
                *v as f64 / divisor,
            );
        }
    }
}

fn io_stat(group: &GroupName, lines: &[format::NestedLine], out: &mut Pending) {
    for line in lines {
        for (key, name, help) in [
            (
                "rbytes",
                "cgmgr_io_read_bytes_total",
                "Bytes read from the device (io.stat rbytes).",
            ),
            (
                "wbytes",
                "cgmgr_io_write_bytes_total",
                "Bytes written to the device (io.stat wbytes).",
            ),
        ] {
            if let Some(v) = line
                .fields
                .iter()
                .find(|(k, _)| k == key)
                .and_then(|(_, v)| v.parse::<u64>().ok())
            {
                push(
                    out,
                    group,
                    name,
                    Kind::Counter,
                    help,
                    &[("device", &line.key)],
                    v as f64,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPU_STAT: &str = include_str!("../../tests/fixtures/kernel/vm-6.1-throttled.cpu.stat");
    const MEMORY_EVENTS: &str =
        include_str!("../../tests/fixtures/kernel/vm-6.1-oom.memory.events");
    const PRESSURE: &str = include_str!("../../tests/fixtures/kernel/host-6.18-root.cpu.pressure");

    /// A fake cgroup tree with real kernel file contents.
    fn fake_tree(groups: &[&str]) -> (tempfile::TempDir, CgroupRoot, Vec<GroupName>) {
        let tmp = tempfile::tempdir().unwrap();
        let mut names = Vec::new();
        for g in groups {
            let dir = tmp.path().join(g);
            std::fs::create_dir_all(&dir).unwrap();
            for (file, text) in [
                ("cpu.stat", CPU_STAT),
                ("cpu.max", "20000 100000\n"),
                ("memory.current", "4096\n"),
                ("memory.max", "max\n"),
                ("memory.high", "8192\n"),
                ("memory.events", MEMORY_EVENTS),
                ("pids.current", "3\n"),
                ("pids.max", "max\n"),
                ("cpu.pressure", PRESSURE),
            ] {
                std::fs::write(dir.join(file), text).unwrap();
            }
            names.push(GroupName::parse(g).unwrap());
        }
        let root = CgroupRoot::open_unchecked(tmp.path());
        (tmp, root, names)
    }

    #[test]
    fn exports_values_and_omits_max_limits() {
        let (_tmp, root, groups) = fake_tree(&["web"]);
        let text = Collector::with_budget(FdBudget::new(100)).scrape(&root, &groups, None);
        assert!(
            text.contains("cgmgr_cpu_usage_seconds_total{group=\"web\"} 0.434593\n"),
            "{text}"
        );
        assert!(
            text.contains("cgmgr_cpu_throttled_periods_total{group=\"web\"} 21\n"),
            "{text}"
        );
        assert!(
            text.contains("cgmgr_cpu_limit_cores{group=\"web\"} 0.2\n"),
            "{text}"
        );
        assert!(
            text.contains("cgmgr_memory_events_total{group=\"web\",event=\"oom_kill\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("cgmgr_memory_high_bytes{group=\"web\"} 8192\n"),
            "{text}"
        );
        assert!(
            !text.contains("cgmgr_memory_limit_bytes"),
            "memory.max is max: no gauge\n{text}"
        );
        assert!(
            !text.contains("cgmgr_pids_limit"),
            "pids.max is max: no gauge\n{text}"
        );
        assert!(text.contains("cgmgr_pressure_seconds_total{group=\"web\",resource=\"cpu\",kind=\"some\"} 3.907547\n"), "{text}");
        assert!(
            !text.contains("resource=\"io\""),
            "no io.pressure file: no sample\n{text}"
        );
    }

    #[test]
    fn a_small_fd_budget_costs_speed_not_samples() {
        let (_tmp, root, groups) = fake_tree(&["a", "b", "c"]);
        let mut collector = Collector::with_budget(FdBudget::new(2));
        for _ in 0..2 {
            let text = collector.scrape(&root, &groups, None);
            assert_eq!(
                text.matches("cgmgr_cpu_usage_seconds_total{").count(),
                3,
                "{text}"
            );
        }
        assert_eq!(collector.vanished_total, 0);
    }

    #[test]
    fn a_vanished_group_is_skipped_whole_and_counted() {
        let (tmp, root, groups) = fake_tree(&["a", "b"]);
        std::fs::remove_dir_all(tmp.path().join("b")).unwrap();
        let mut collector = Collector::with_budget(FdBudget::new(100));
        let text = collector.scrape(&root, &groups, None);
        assert!(text.contains("group=\"a\""), "{text}");
        assert!(!text.contains("group=\"b\""), "{text}");
        assert!(
            text.contains("cgmgr_scrape_vanished_groups_total 1\n"),
            "{text}"
        );
    }
}
