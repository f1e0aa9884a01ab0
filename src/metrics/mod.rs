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

use crate::cgroup::stat::{
    CgroupEvents, CpuStat, IoStat, MemoryEvents, MemoryStat, PidsEvents, StatFile,
};
use crate::cgroup::values::{Bytes, CpuMax, Limit};
use crate::cgroup::{CgroupError, CgroupRoot, GroupName, format, pids};
use nix::errno::Errno;

/// Reads groups' files, keeping them open between scrapes.
pub struct Collector {
    groups: HashMap<GroupName, GroupFiles>,
    budget: FdBudget,
    buf: Vec<u8>,
    /// Groups skipped because they vanished mid-scrape.
    pub vanished_total: u64,
    /// Reads whose content did not parse, by file name: their samples are
    /// left out, and counted here rather than dropped silently.
    pub unparsable: std::collections::BTreeMap<&'static str, u64>,
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
            unparsable: std::collections::BTreeMap::new(),
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
            let mut bad = Vec::new();
            let collected = collect_group(
                root,
                group,
                files,
                &mut self.budget,
                &mut self.buf,
                &mut pending,
                &mut bad,
            );
            for file in bad {
                *self.unparsable.entry(file).or_default() += 1;
            }
            match collected {
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
        let help = "Interface files whose content did not parse (a kernel format cgmgr does not know): their samples are missing from that scrape.";
        fam.declare("cgmgr_scrape_unparsable_files_total", Kind::Counter, help);
        for (file, n) in &self.unparsable {
            fam.add(
                "cgmgr_scrape_unparsable_files_total",
                Kind::Counter,
                help,
                &[("file", file)],
                *n as f64,
            );
        }
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
    bad: &mut Vec<&'static str>,
) -> Result<(), Vanished> {
    // Each read borrows `buf` until the next one: parse before reading on.
    macro_rules! read {
        ($file:expr) => {
            files.read(root, group, $file, budget, buf)?
        };
    }
    // A file that is there but does not parse is counted, not ignored.
    macro_rules! parse {
        ($file:expr, $parse:expr) => {
            match read!($file).map($parse) {
                Some(Ok(v)) => Some(v),
                Some(Err(_)) => {
                    bad.push($file);
                    None
                }
                None => None,
            }
        };
    }
    // The typed reading of a statistics file.
    macro_rules! stat {
        ($t:ty) => {
            parse!(<$t>::FILE, <$t>::parse)
        };
    }
    if let Some(stat) = stat!(CpuStat) {
        cpu_stat(group, &stat, out);
    }
    // A group left frozen (by a pressure rule of a daemon since killed, or
    // by hand) holds its processes stopped with nothing else saying so.
    if let Some(frozen) = stat!(CgroupEvents).and_then(|e| e.frozen) {
        push(
            out,
            group,
            "cgmgr_group_frozen",
            Kind::Gauge,
            "1 while the group is frozen (cgroup.events frozen); cgmgr thaw GROUP resumes it.",
            &[],
            frozen as f64,
        );
    }
    if let Some(cores) =
        parse!("cpu.max", |t: &str| t.trim().parse::<CpuMax>()).and_then(|c| c.cores())
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
    let current = parse!("memory.current", |t: &str| t.trim().parse::<u64>());
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
        if let Some(stat) = stat!(MemoryStat) {
            let inactive = stat.inactive_file;
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
    let number = |t: &str| t.trim().parse::<u64>();
    if let Some(peak) = parse!("memory.peak", number) {
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
    if let Some(swap) = parse!("memory.swap.current", number) {
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
    let limit = |t: &str| t.trim().parse::<Limit<Bytes>>();
    let bytes = |l: Limit<Bytes>| l.value().map(|b| b.0 as f64);
    if let Some(max) = parse!("memory.max", limit).and_then(bytes) {
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
    if let Some(high) = parse!("memory.high", limit).and_then(bytes) {
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
    if let Some(events) = stat!(MemoryEvents) {
        for (event, n) in events.counters() {
            push(
                out,
                group,
                "cgmgr_memory_events_total",
                Kind::Counter,
                "memory.events counters: low, high, max, oom, oom_kill, oom_group_kill.",
                &[("event", event)],
                n as f64,
            );
        }
    }
    if let Some(n) = parse!("pids.current", number) {
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
    if let Some(max) = parse!("pids.max", |t: &str| t.trim().parse::<Limit<u64>>())
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
    // Not through the kept-open files: before 6.11 the count is composed
    // from the group's run groups and its ledger (cgroup::pids).
    match pids::refusals(root, group) {
        Ok(Some(n)) => push(
            out,
            group,
            "cgmgr_pids_events_total",
            Kind::Counter,
            "pids.events: forks refused at pids.max (with those of the group's cgmgr exec runs on kernels before 6.11).",
            &[("event", "max")],
            n as f64,
        ),
        Ok(None) => {}
        Err(pids::PidsError::Cgroup(
            CgroupError::Read {
                errno: Errno::ENOENT | Errno::ENODEV,
                ..
            }
            | CgroupError::List {
                errno: Errno::ENOENT | Errno::ENODEV,
                ..
            },
        )) => return Err(Vanished),
        Err(_) => bad.push(PidsEvents::FILE),
    }
    if let Some(stat) = stat!(IoStat) {
        io_stat(group, &stat, out);
    }
    for (resource, file) in [
        ("cpu", "cpu.pressure"),
        ("memory", "memory.pressure"),
        ("io", "io.pressure"),
    ] {
        let Some(psi) = parse!(file, format::psi) else {
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

fn cpu_stat(group: &GroupName, stat: &CpuStat, out: &mut Pending) {
    // (value, metric, help, divisor to seconds or 1 for counts)
    let fields: [(Option<u64>, &'static str, &'static str, f64); 6] = [
        (
            Some(stat.usage_usec),
            "cgmgr_cpu_usage_seconds_total",
            "CPU time used (cpu.stat usage_usec).",
            US_PER_S,
        ),
        (
            Some(stat.user_usec),
            "cgmgr_cpu_user_seconds_total",
            "CPU time in user mode (cpu.stat user_usec).",
            US_PER_S,
        ),
        (
            Some(stat.system_usec),
            "cgmgr_cpu_system_seconds_total",
            "CPU time in kernel mode (cpu.stat system_usec).",
            US_PER_S,
        ),
        (
            stat.nr_periods,
            "cgmgr_cpu_periods_total",
            "Enforcement periods elapsed (cpu.stat nr_periods).",
            1.0,
        ),
        (
            stat.nr_throttled,
            "cgmgr_cpu_throttled_periods_total",
            "Periods in which the group was throttled (cpu.stat nr_throttled).",
            1.0,
        ),
        (
            stat.throttled_usec,
            "cgmgr_cpu_throttled_seconds_total",
            "Time throttled (cpu.stat throttled_usec).",
            US_PER_S,
        ),
    ];
    for (value, name, help, divisor) in fields {
        if let Some(v) = value {
            push(
                out,
                group,
                name,
                Kind::Counter,
                help,
                &[],
                v as f64 / divisor,
            );
        }
    }
}

fn io_stat(group: &GroupName, stat: &IoStat, out: &mut Pending) {
    for d in &stat.devices {
        let device = d.device.to_string();
        push(
            out,
            group,
            "cgmgr_io_read_bytes_total",
            Kind::Counter,
            "Bytes read from the device (io.stat rbytes).",
            &[("device", &device)],
            d.rbytes as f64,
        );
        push(
            out,
            group,
            "cgmgr_io_write_bytes_total",
            Kind::Counter,
            "Bytes written to the device (io.stat wbytes).",
            &[("device", &device)],
            d.wbytes as f64,
        );
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
                ("cgroup.events", "populated 1\nfrozen 0\n"),
            ] {
                std::fs::write(dir.join(file), text).unwrap();
            }
            names.push(GroupName::parse(g).unwrap());
        }
        let root = CgroupRoot::open_unchecked(tmp.path());
        (tmp, root, names)
    }

    /// A file that is there but holds what cgmgr cannot parse (a garbled
    /// read, a future format) is counted by file, its samples left out; a
    /// missing file or an empty io.stat (no device used yet) is no error.
    #[test]
    fn unparsable_files_are_counted_not_dropped_silently() {
        let (tmp, root, groups) = fake_tree(&["web", "db"]);
        std::fs::write(tmp.path().join("web/memory.current"), "lots\n").unwrap();
        std::fs::write(tmp.path().join("db/memory.current"), "").unwrap();
        std::fs::write(tmp.path().join("web/cpu.pressure"), "some avg10=x\n").unwrap();
        std::fs::write(tmp.path().join("web/io.stat"), "").unwrap();
        let mut collector = Collector::with_budget(FdBudget::new(100));
        let text = collector.scrape(&root, &groups, None);
        assert!(
            text.contains("cgmgr_scrape_unparsable_files_total{file=\"memory.current\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("cgmgr_scrape_unparsable_files_total{file=\"cpu.pressure\"} 1\n"),
            "{text}"
        );
        assert!(!text.contains("file=\"io.stat\""), "{text}");
        assert!(
            !text.contains("cgmgr_memory_usage_bytes{group=\"web\"}"),
            "{text}"
        );
        // The rest of the group is still there.
        assert!(
            text.contains("cgmgr_cpu_usage_seconds_total{group=\"web\"}"),
            "{text}"
        );
        // Counters: a second scrape adds to them.
        let text = collector.scrape(&root, &groups, None);
        assert!(
            text.contains("cgmgr_scrape_unparsable_files_total{file=\"memory.current\"} 4\n"),
            "{text}"
        );
    }

    /// A frozen group is exported as such (the kernel's own file content
    /// after `echo 1 > cgroup.freeze` on a populated group).
    #[test]
    fn a_frozen_group_is_exported() {
        let (tmp, root, groups) = fake_tree(&["web", "batch"]);
        std::fs::write(
            tmp.path().join("batch/cgroup.events"),
            "populated 1\nfrozen 1\n",
        )
        .unwrap();
        let text = Collector::with_budget(FdBudget::new(100)).scrape(&root, &groups, None);
        assert!(
            text.contains("cgmgr_group_frozen{group=\"batch\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("cgmgr_group_frozen{group=\"web\"} 0\n"),
            "{text}"
        );
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
