//! Typed readings of the kernel's statistics and event files: `cpu.stat`,
//! `memory.stat`, `memory.events` (and `.local`), `pids.events`, `io.stat`
//! and `cgroup.events`.
//!
//! Each file is parsed once, here, into a struct whose fields are the
//! kernel's keys; `status`, the metrics collector, the exec report, the
//! pressure rules and the freeze/thaw/kill waits read the fields instead of
//! looking keys up by string. (The daemon's limit-event log is the one
//! reader of raw key lists: it logs every counter that rose, including the
//! keys a newer kernel adds.) The parsers
//! are pure functions over `&str`, with one policy for every file:
//! - a key this kernel always writes is required: without it (an empty or
//!   truncated file) the parse fails;
//! - a key that only some kernels or configurations write is an `Option`;
//! - keys a newer kernel adds are ignored;
//! - a line that is not the file's format, or a value that is not a number,
//!   fails the parse. Callers decide whether a failure is an error (the
//!   freeze/thaw/kill waits in `control`, apply's check before removing a
//!   group) or is counted and skipped (metrics).

use super::format;
use super::values::{DevNum, ValueError};

/// A kernel file with a fixed name and a typed reading.
pub trait StatFile: Sized {
    /// The interface file's name inside a cgroup directory.
    const FILE: &'static str;
    /// Parses the whole file.
    fn parse(text: &str) -> Result<Self, ValueError>;
}

/// Declares a struct for a flat-keyed file (`key value` per line) whose
/// field names are the kernel's keys: `required` fields are `u64`, the
/// `optional` ones `Option<u64>`.
macro_rules! flat_keyed_file {
    (
        $(#[$meta:meta])*
        $name:ident = $file:literal {
            required: { $($(#[$rdoc:meta])* $req:ident),* $(,)? }
            optional: { $($(#[$odoc:meta])* $opt:ident),* $(,)? }
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct $name {
            $($(#[$rdoc])* pub $req: u64,)*
            $($(#[$odoc])* pub $opt: Option<u64>,)*
        }

        impl StatFile for $name {
            const FILE: &'static str = $file;
            fn parse(text: &str) -> Result<Self, ValueError> {
                $(let mut $req = None;)*
                $(let mut $opt = None;)*
                for pair in format::flat_keyed_pairs(text) {
                    let (key, value) = pair?;
                    match key {
                        $(stringify!($req) => $req = Some(value),)*
                        $(stringify!($opt) => $opt = Some(value),)*
                        _ => {} // a newer kernel's key
                    }
                }
                Ok($name {
                    $($req: $req.ok_or_else(|| missing_key(stringify!($req)))?,)*
                    $($opt,)*
                })
            }
        }

        impl $name {
            /// Every counter this kernel wrote that cgmgr knows, by its key,
            /// in the kernel's order: for code that treats them alike (one
            /// metric label per key).
            pub fn counters(&self) -> Vec<(&'static str, u64)> {
                #[allow(unused_mut)] // for files without optional keys
                let mut out = vec![$((stringify!($req), self.$req)),*];
                $(if let Some(v) = self.$opt {
                    out.push((stringify!($opt), v));
                })*
                out
            }
        }
    };
}

fn missing_key(key: &str) -> ValueError {
    ValueError(format!("there is no `{key}` line"))
}

flat_keyed_file! {
    /// `cpu.stat`: CPU time, and the bandwidth counters of `cpu.max` when the
    /// cpu controller is enabled for the group.
    CpuStat = "cpu.stat" {
        required: {
            /// CPU time used, in µs.
            usage_usec,
            /// In user mode, µs.
            user_usec,
            /// In the kernel, µs.
            system_usec,
        }
        optional: {
            /// Enforcement periods elapsed (cpu controller only).
            nr_periods,
            /// Periods in which the group was throttled.
            nr_throttled,
            /// Time throttled, in µs.
            throttled_usec,
        }
    }
}

flat_keyed_file! {
    /// `memory.events`: how often each memory boundary was hit, counted for
    /// the group and its descendants.
    MemoryEvents = "memory.events" {
        required: {
            /// Reclaimed while under `memory.low` protection.
            low,
            /// Throttled and reclaimed above `memory.high`.
            high,
            /// Usage reached `memory.max`.
            max,
            /// Allocations that failed at the limit (the OOM killer was invoked).
            oom,
            /// Processes the OOM killer killed.
            oom_kill,
        }
        optional: {
            /// Whole-group OOM kills (`memory.oom.group`, Linux 5.17+).
            oom_group_kill,
        }
    }
}

/// `memory.events.local`: the events of [`MemoryEvents`] counted for the
/// group alone (where the limit that was hit lives).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryEventsLocal(pub MemoryEvents);

impl StatFile for MemoryEventsLocal {
    const FILE: &'static str = "memory.events.local";
    fn parse(text: &str) -> Result<Self, ValueError> {
        MemoryEvents::parse(text).map(MemoryEventsLocal)
    }
}

flat_keyed_file! {
    /// `pids.events`.
    PidsEvents = "pids.events" {
        required: {
            /// Forks refused because `pids.max` was reached.
            max,
        }
        optional: {}
    }
}

flat_keyed_file! {
    /// `memory.stat`: the parts of memory use the readers need.
    MemoryStat = "memory.stat" {
        required: {
            /// Anonymous memory (heap, stacks, tmpfs-free private pages).
            anon,
            /// Page cache.
            file,
            /// Page cache on the active LRU list.
            active_file,
            /// Page cache on the inactive LRU list: reclaimable first, so
            /// left out of the working set.
            inactive_file,
        }
        optional: {}
    }
}

flat_keyed_file! {
    /// `cgroup.events`: whether the group (with descendants) has processes,
    /// and whether it is frozen.
    CgroupEvents = "cgroup.events" {
        required: {
            /// 1 while any process is in the group or below.
            populated,
        }
        optional: {
            /// 1 once the group is frozen (Linux 5.2+).
            frozen,
        }
    }
}

impl CgroupEvents {
    /// Any process in the group or below.
    pub fn is_populated(&self) -> bool {
        self.populated != 0
    }
}

/// One device line of `io.stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoDeviceStat {
    /// The block device.
    pub device: DevNum,
    /// Bytes read.
    pub rbytes: u64,
    /// Bytes written.
    pub wbytes: u64,
    /// Read operations.
    pub rios: u64,
    /// Write operations.
    pub wios: u64,
    /// Bytes discarded (Linux 5.0+).
    pub dbytes: Option<u64>,
    /// Discard operations.
    pub dios: Option<u64>,
}

/// `io.stat`: one line per device the kernel tracks for the group. Empty
/// until the group has a device (its first block io, or an `io.max` written
/// for one), so an empty file is a valid reading; a device with no io yet
/// has a line with its number and no counters (Linux 5.15+ prints them only
/// when one is non-zero), read as zeros.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IoStat {
    /// The devices, in the kernel's order.
    pub devices: Vec<IoDeviceStat>,
}

impl IoStat {
    /// Bytes read and written, summed over every device.
    pub fn total_bytes(&self) -> (u64, u64) {
        self.devices.iter().fold((0, 0), |(r, w), d| {
            (r.saturating_add(d.rbytes), w.saturating_add(d.wbytes))
        })
    }
}

impl StatFile for IoStat {
    const FILE: &'static str = "io.stat";
    fn parse(text: &str) -> Result<Self, ValueError> {
        let devices = format::nested_keyed(text)?
            .iter()
            .map(io_device)
            .collect::<Result<_, _>>()?;
        Ok(IoStat { devices })
    }
}

fn io_device(line: &format::NestedLine) -> Result<IoDeviceStat, ValueError> {
    let field = |key: &str| -> Result<Option<u64>, ValueError> {
        let Some((_, v)) = line.fields.iter().find(|(k, _)| k == key) else {
            return Ok(None);
        };
        v.parse().map(Some).map_err(|_| {
            ValueError(format!(
                "{key}={v:?} of device {} is not a number",
                line.key
            ))
        })
    };
    // A device with no io yet has none of the four counters.
    let idle = ["rbytes", "wbytes", "rios", "wios"]
        .iter()
        .all(|k| line.fields.iter().all(|(f, _)| f != k));
    let required = |key: &str| {
        if idle {
            return Ok(0);
        }
        field(key)?.ok_or_else(|| ValueError(format!("device line {:?} has no `{key}=`", line.key)))
    };
    Ok(IoDeviceStat {
        device: line.key.parse()?,
        rbytes: required("rbytes")?,
        wbytes: required("wbytes")?,
        rios: required("rios")?,
        wios: required("wios")?,
        dbytes: field("dbytes")?,
        dios: field("dios")?,
    })
}

#[cfg(test)]
mod tests {
    //! Each file is tested on real contents captured from a kernel (see
    //! tests/fixtures/kernel/capture-vm.sh) and in four failure modes:
    //! missing (in `fs`), empty, garbage, and a newer kernel's extra keys.
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/kernel/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// A kernel file with one more line, as a newer kernel writes it.
    fn with_extra(text: &str, line: &str) -> String {
        format!("{text}{line}\n")
    }

    fn garbage_fails<T: StatFile + std::fmt::Debug>(valid: &str) {
        let first = valid.lines().next().unwrap();
        let key = first.split_whitespace().next().unwrap();
        for bad in [
            format!("{key} x\n"),
            format!("{key} -1\n"),
            format!("{key} 1 2\n"),
            format!("{key}\n"),
            "\u{0}\u{1}binary\n".to_string(),
        ] {
            let text = valid.replacen(first, bad.trim_end(), 1);
            let err = T::parse(&text).expect_err(&format!("{} accepted {bad:?}", T::FILE));
            assert!(!err.0.is_empty());
        }
    }

    #[test]
    fn cpu_stat_with_throttling() {
        let s = CpuStat::parse(&fixture("vm-6.1-fx.cpu.stat")).unwrap();
        assert_eq!(s.usage_usec, 978_817);
        assert_eq!((s.user_usec, s.system_usec), (95_283, 883_534));
        assert_eq!(s.nr_periods, Some(57));
        assert_eq!(s.nr_throttled, Some(47));
        assert_eq!(s.throttled_usec, Some(4_153_152));
    }

    #[test]
    fn cpu_stat_without_the_cpu_controller_and_with_a_newer_key() {
        // The host's 6.18 root: no bandwidth counters, and `nice_usec`,
        // which 6.1 does not write.
        let text = fixture("host-6.18-root.cpu.stat");
        assert!(text.contains("nice_usec"));
        let s = CpuStat::parse(&text).unwrap();
        assert_eq!(s.usage_usec, 33_980_451);
        assert_eq!((s.nr_periods, s.throttled_usec), (None, None));
        assert_eq!(s.counters().len(), 3);
    }

    #[test]
    fn cpu_stat_empty_and_garbage_fail() {
        assert_eq!(
            CpuStat::parse("").unwrap_err().0,
            "there is no `usage_usec` line"
        );
        garbage_fails::<CpuStat>(&fixture("vm-6.1-fx.cpu.stat"));
    }

    #[test]
    fn memory_events_after_an_oom_kill() {
        let e = MemoryEvents::parse(&fixture("vm-6.1-fx.memory.events")).unwrap();
        assert_eq!((e.oom, e.oom_kill, e.oom_group_kill), (1, 1, Some(0)));
        assert_eq!(e.max, 36);
        let local = MemoryEventsLocal::parse(&fixture("vm-6.1-fx.memory.events.local")).unwrap();
        assert_eq!(local.0, e);
        let keys: Vec<_> = e.counters().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            ["low", "high", "max", "oom", "oom_kill", "oom_group_kill"]
        );
    }

    #[test]
    fn memory_events_before_5_17_and_with_a_newer_key() {
        let text = fixture("vm-6.1-fx.memory.events");
        let old: String = text
            .lines()
            .filter(|l| !l.starts_with("oom_group_kill"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(MemoryEvents::parse(&old).unwrap().oom_group_kill, None);
        let newer = MemoryEvents::parse(&with_extra(&text, "some_new_event 3")).unwrap();
        assert_eq!(newer, MemoryEvents::parse(&text).unwrap());
    }

    #[test]
    fn memory_events_empty_and_garbage_fail() {
        assert!(MemoryEvents::parse("").is_err());
        assert!(MemoryEvents::parse("low 0\nhigh 0\n").is_err());
        garbage_fails::<MemoryEvents>(&fixture("vm-6.1-fx.memory.events"));
    }

    #[test]
    fn pids_events() {
        let text = fixture("vm-6.1-fx.pids.events");
        assert_eq!(PidsEvents::parse(&text).unwrap().max, 1);
        // Newer kernels add `max.imposed` (forks refused by an ancestor's limit).
        let newer = PidsEvents::parse(&with_extra(&text, "max.imposed 4")).unwrap();
        assert_eq!(newer.max, 1);
        assert!(PidsEvents::parse("").is_err());
        garbage_fails::<PidsEvents>(&text);
    }

    #[test]
    fn memory_stat() {
        let text = fixture("vm-6.1-fx.memory.stat");
        let s = MemoryStat::parse(&text).unwrap();
        assert_eq!((s.anon, s.file, s.inactive_file), (53_248, 0, 0));
        // Each field comes from its own line, not a neighbour's.
        let cached = text.replace("\ninactive_file 0\n", "\ninactive_file 4096\n");
        assert_eq!(MemoryStat::parse(&cached).unwrap().inactive_file, 4096);
        assert_eq!(MemoryStat::parse(&cached).unwrap().active_file, 0);
        let newer = MemoryStat::parse(&with_extra(&text, "zswap 0")).unwrap();
        assert_eq!(newer, s);
        assert!(MemoryStat::parse("").is_err());
        garbage_fails::<MemoryStat>(&text);
    }

    #[test]
    fn cgroup_events() {
        let text = fixture("vm-6.1-fx.cgroup.events");
        let e = CgroupEvents::parse(&text).unwrap();
        assert!(!e.is_populated());
        assert_eq!(e.frozen, Some(0));
        assert_eq!(
            CgroupEvents::parse("populated 1\nfrozen 1\n")
                .unwrap()
                .frozen,
            Some(1)
        );
        assert_eq!(CgroupEvents::parse("populated 1\n").unwrap().frozen, None);
        assert!(CgroupEvents::parse("").is_err());
        garbage_fails::<CgroupEvents>(&text);
    }

    #[test]
    fn io_stat_of_a_loop_device() {
        let text = fixture("vm-6.1-fx.io.stat");
        let s = IoStat::parse(&text).unwrap();
        assert_eq!(s.devices.len(), 1);
        let d = s.devices[0];
        assert_eq!(d.device, DevNum { major: 7, minor: 0 });
        assert_eq!(
            (d.rbytes, d.wbytes, d.rios, d.wios),
            (8_388_608, 2_097_152, 12, 2)
        );
        assert_eq!(d.dbytes, Some(0));
        assert_eq!(s.total_bytes(), (8_388_608, 2_097_152));
    }

    #[test]
    fn io_stat_sums_devices_and_ignores_newer_fields() {
        // A second device line with the fields io.cost and io.latency add.
        let text = with_extra(
            &fixture("vm-6.1-fx.io.stat"),
            "8:0 rbytes=8192 wbytes=0 rios=2 wios=0 dbytes=0 dios=0 cost.vrate=100.00 use_delay=0 delay_nsec=0",
        );
        let s = IoStat::parse(&text).unwrap();
        assert_eq!(s.total_bytes(), (8_388_608 + 8192, 2_097_152));
        // A device with no io yet (an io.max written for it): no counters,
        // or only another policy's fields.
        let idle = "8:16 \n8:0 rbytes=1 wbytes=2 rios=1 wios=1\n8:32 cost.vrate=100.00\n";
        let idle = IoStat::parse(idle).unwrap();
        assert_eq!(idle.devices.len(), 3);
        assert_eq!((idle.devices[0].rbytes, idle.devices[0].wios), (0, 0));
        assert_eq!(idle.total_bytes(), (1, 2));
        // Before 5.0: no discard fields.
        let old = IoStat::parse("8:0 rbytes=1 wbytes=2 rios=1 wios=1\n").unwrap();
        assert_eq!(old.devices[0].dbytes, None);
    }

    #[test]
    fn io_stat_empty_is_no_io_and_garbage_fails() {
        assert_eq!(IoStat::parse("").unwrap(), IoStat::default());
        for bad in [
            "7:0 rbytes=x wbytes=0 rios=0 wios=0\n",
            "7:0 rbytes\n",
            "sda rbytes=1 wbytes=1 rios=1 wios=1\n",
            // Some counters but not all: not the kernel's format.
            "7:0 wbytes=1 rios=1 wios=1\n",
        ] {
            assert!(IoStat::parse(bad).is_err(), "{bad:?}");
        }
    }
}
