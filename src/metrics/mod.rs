//! Prometheus metrics: every group metric of SPEC.md, read from the kernel's
//! files on each scrape, plus the manager's own.
//!
//! Reading is tolerant one layer above the parsers: a file the kernel lacks
//! gives no sample, a `max` limit gives no gauge, a group that vanishes
//! mid-scrape is skipped whole and counted.

pub mod families;
pub mod reader;

use std::collections::{BTreeMap, HashMap};

use families::{Families, Kind};
use reader::{GroupFiles, Vanished};

use crate::cgroup::values::{Bytes, CpuMax, Limit};
use crate::cgroup::{CgroupRoot, GroupName, format};

/// What the daemon knows about itself, exported beside the group metrics.
#[derive(Debug, Clone, Default)]
pub struct ManagerStats {
    /// Groups in the loaded policy set.
    pub policy_groups: usize,
    /// Successful reloads.
    pub reloads_success: u64,
    /// Rejected reloads.
    pub reloads_error: u64,
    /// Unix time of the last successful reload, if any.
    pub last_reload_success: Option<f64>,
    /// Values rewritten because they drifted, by (group, file).
    pub drift_corrections: BTreeMap<(String, String), u64>,
}

/// Reads groups' files, keeping them open between scrapes.
#[derive(Default)]
pub struct Collector {
    groups: HashMap<GroupName, GroupFiles>,
    buf: Vec<u8>,
    /// Groups skipped because they vanished mid-scrape.
    pub vanished_total: u64,
}

type Pending = Vec<(
    &'static str,
    Kind,
    &'static str,
    Vec<(&'static str, String)>,
    f64,
)>;

impl Collector {
    /// The text exposition of `groups` and `stats`.
    pub fn scrape(
        &mut self,
        root: &CgroupRoot,
        groups: &[GroupName],
        stats: Option<&ManagerStats>,
    ) -> String {
        let mut fam = Families::default();
        self.groups.retain(|g, _| groups.contains(g));
        for group in groups {
            let files = self.groups.entry(group.clone()).or_default();
            let mut pending = Pending::new();
            match collect_group(root, group, files, &mut self.buf, &mut pending) {
                Ok(()) => {
                    for (name, kind, help, labels, value) in pending {
                        let labels: Vec<(&str, &str)> =
                            labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                        fam.add(name, kind, help, &labels, value);
                    }
                }
                Err(Vanished) => {
                    self.vanished_total += 1;
                    self.groups.remove(group);
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
        if let Some(stats) = stats {
            manager_metrics(stats, &mut fam);
        }
        fam.encode()
    }
}

fn manager_metrics(stats: &ManagerStats, fam: &mut Families) {
    fam.add(
        "cgmgr_policy_groups",
        Kind::Gauge,
        "Groups in the loaded policy set.",
        &[],
        stats.policy_groups as f64,
    );
    let reloads = "Policy reloads by result.";
    fam.add(
        "cgmgr_policy_reloads_total",
        Kind::Counter,
        reloads,
        &[("result", "success")],
        stats.reloads_success as f64,
    );
    fam.add(
        "cgmgr_policy_reloads_total",
        Kind::Counter,
        reloads,
        &[("result", "error")],
        stats.reloads_error as f64,
    );
    if let Some(t) = stats.last_reload_success {
        fam.add(
            "cgmgr_policy_last_reload_success_timestamp_seconds",
            Kind::Gauge,
            "Unix time of the last successful policy reload.",
            &[],
            t,
        );
    }
    let help = "Values rewritten because they differed from the policy.";
    fam.declare("cgmgr_drift_corrections_total", Kind::Counter, help);
    for ((group, file), n) in &stats.drift_corrections {
        fam.add(
            "cgmgr_drift_corrections_total",
            Kind::Counter,
            help,
            &[("group", group), ("file", file)],
            *n as f64,
        );
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
    let mut labels = vec![("group", group.as_str().to_string())];
    labels.extend(extra.iter().map(|(k, v)| (*k, (*v).to_string())));
    out.push((name, kind, help, labels, value));
}

const US: f64 = 1e-6;

fn collect_group(
    root: &CgroupRoot,
    group: &GroupName,
    files: &mut GroupFiles,
    buf: &mut Vec<u8>,
    out: &mut Pending,
) -> Result<(), Vanished> {
    let mut read = |file: &'static str, buf: &mut Vec<u8>| -> Result<Option<String>, Vanished> {
        Ok(files.read(root, group, file, buf)?.map(str::to_string))
    };
    if let Some(text) = read("cpu.stat", buf)? {
        cpu_stat(group, &text, out);
    }
    if let Some(cores) = read("cpu.max", buf)?
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
    let current = read("memory.current", buf)?.and_then(|t| t.trim().parse::<u64>().ok());
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
        if let Some(stat) = read("memory.stat", buf)?.and_then(|t| format::flat_keyed(&t).ok()) {
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
    let gauge_u64 = |text: Option<String>| text.and_then(|t| t.trim().parse::<u64>().ok());
    if let Some(peak) = gauge_u64(read("memory.peak", buf)?) {
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
    if let Some(swap) = gauge_u64(read("memory.swap.current", buf)?) {
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
    let limit = |text: Option<String>| {
        text.and_then(|t| t.trim().parse::<Limit<Bytes>>().ok())
            .and_then(|l| l.value().map(|b| b.0 as f64))
    };
    if let Some(max) = limit(read("memory.max", buf)?) {
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
    if let Some(high) = limit(read("memory.high", buf)?) {
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
    if let Some(events) = read("memory.events", buf)?.and_then(|t| format::flat_keyed(&t).ok()) {
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
    if let Some(n) = gauge_u64(read("pids.current", buf)?) {
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
    if let Some(max) = read("pids.max", buf)?
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
    if let Some(events) = read("pids.events", buf)?.and_then(|t| format::flat_keyed(&t).ok())
        && let Some(n) = events.get("max")
    {
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
    }
    if let Some(lines) = read("io.stat", buf)?.and_then(|t| format::nested_keyed(&t).ok()) {
        io_stat(group, &lines, out);
    }
    for resource in ["cpu", "memory", "io"] {
        let file = match resource {
            "cpu" => "cpu.pressure",
            "memory" => "memory.pressure",
            _ => "io.pressure",
        };
        if let Some(psi) = read(file, buf)?.and_then(|t| format::psi(&t).ok()) {
            let help = "Time stalled on the resource (PSI total): some = some tasks waiting, full = all non-idle tasks stalled.";
            push(
                out,
                group,
                "cgmgr_pressure_seconds_total",
                Kind::Counter,
                help,
                &[("resource", resource), ("kind", "some")],
                psi.some.total_us as f64 * US,
            );
            if let Some(full) = psi.full {
                push(
                    out,
                    group,
                    "cgmgr_pressure_seconds_total",
                    Kind::Counter,
                    help,
                    &[("resource", resource), ("kind", "full")],
                    full.total_us as f64 * US,
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
    let fields: [(&str, &'static str, &'static str, f64); 6] = [
        (
            "usage_usec",
            "cgmgr_cpu_usage_seconds_total",
            "CPU time used (cpu.stat usage_usec).",
            US,
        ),
        (
            "user_usec",
            "cgmgr_cpu_user_seconds_total",
            "CPU time in user mode (cpu.stat user_usec).",
            US,
        ),
        (
            "system_usec",
            "cgmgr_cpu_system_seconds_total",
            "CPU time in kernel mode (cpu.stat system_usec).",
            US,
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
            US,
        ),
    ];
    for (key, name, help, scale) in fields {
        if let Some(v) = stat.get(key) {
            push(
                out,
                group,
                name,
                Kind::Counter,
                help,
                &[],
                *v as f64 * scale,
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
