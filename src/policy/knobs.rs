//! The table of policy knobs: every interface file a group may set, with
//! its value type, controller and range, in the order they are written.
//!
//! Parsing (which keys exist, what each accepts), validation (the ranges),
//! the plan (the kernel text, how a current value compares), drift
//! correction and rollback (what to write back) all derive from [`KNOBS`];
//! adding a knob is one entry there, and a unit test holds the README's
//! table of keys to it.

use crate::cgroup::Controller;
use crate::cgroup::values::MAX_CPU_QUOTA_US;
use crate::cgroup::values::{Bytes, CpuMax, CpuSet, IoLimits, IoMaxLine, Limit, ValueError};

/// The kernel's `pids.max` ceiling (`PID_MAX_LIMIT`).
pub const PIDS_MAX_LIMIT: u64 = 4 * 1024 * 1024;

/// What a knob's value is, in a policy and in its kernel file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `"max"`, `"QUOTA PERIOD"` in µs, `"QUOTA"` or `"N%"` of one CPU;
    /// compared as a parsed [`CpuMax`] (`max 100000` equals `"max"`).
    CpuMax,
    /// An integer from `min` to `max`; `expected` says so in an error.
    Integer {
        /// The smallest accepted.
        min: u64,
        /// The largest accepted.
        max: u64,
        /// The words of an error: what would be right.
        expected: &'static str,
    },
    /// Bytes (an integer, or a string with a unit) or `"max"`; written
    /// rounded down to the page size, as the kernel stores it.
    Size,
    /// An integer up to `max`, or `"max"`.
    Count {
        /// The largest accepted.
        max: u64,
    },
    /// `true` or `false`, written `1` or `0`.
    Flag,
    /// A CPU list (`"0-3,8"`); compared as a set (`0-1` equals `0,1`).
    CpuList,
    /// An array of per-device limits, one `io.max` line each; compared
    /// per key of the device's line.
    DeviceLimits,
}

/// How the kernel file holds the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The file's whole content is the value.
    Plain,
    /// The value is the file's `default N` line; other lines (per-device
    /// weights) are not ours.
    DefaultLine,
    /// One line per device; lines of other devices are not ours.
    PerDevice,
}

/// One key a group may set: a kernel interface file.
#[derive(Debug, PartialEq, Eq)]
pub struct Knob {
    /// The policy key, which is the kernel file's name.
    pub key: &'static str,
    /// The controller that provides the file.
    pub controller: Controller,
    /// What it accepts.
    pub kind: Kind,
    /// How the file holds it.
    pub format: Format,
    /// The values accepted, in words, as the README's table of keys says them.
    pub accepts: &'static str,
}

/// A weight: the kernel's range for `cpu.weight` and `io.weight`.
const WEIGHT: Kind = Kind::Integer {
    min: 1,
    max: 10_000,
    expected: "an integer from 1 to 10000",
};

const fn knob(
    key: &'static str,
    controller: Controller,
    kind: Kind,
    accepts: &'static str,
) -> Knob {
    Knob {
        key,
        controller,
        kind,
        format: Format::Plain,
        accepts,
    }
}

/// Every knob, in write order. `memory.swap.max` goes before `memory.max`
/// so that lowering both never pushes a group into swap it is about to
/// lose; `cpu.max.burst` after `cpu.max` because the kernel refuses a
/// burst larger than the quota in force.
pub const KNOBS: [Knob; 13] = [
    knob(
        "cpuset.cpus",
        Controller::Cpuset,
        Kind::CpuList,
        "a CPU list: \"0-3,8\"",
    ),
    knob("cpu.weight", Controller::Cpu, WEIGHT, "1..10000"),
    knob(
        "cpu.max",
        Controller::Cpu,
        Kind::CpuMax,
        "\"max\", \"QUOTA PERIOD\" in µs, \"QUOTA\" (period 100000) or \"N%\" of one CPU (\"150%\" = 1.5 CPUs)",
    ),
    knob(
        "cpu.max.burst",
        Controller::Cpu,
        Kind::Integer {
            min: 0,
            max: MAX_CPU_QUOTA_US,
            expected: "an integer number of microseconds",
        },
        "µs, at most the quota in force (quoted: `\"cpu.max.burst\" = 1000`)",
    ),
    knob("memory.min", Controller::Memory, Kind::Size, SIZE),
    knob("memory.low", Controller::Memory, Kind::Size, SIZE),
    knob("memory.swap.max", Controller::Memory, Kind::Size, SIZE),
    knob("memory.high", Controller::Memory, Kind::Size, SIZE),
    knob("memory.max", Controller::Memory, Kind::Size, SIZE),
    knob(
        "memory.oom.group",
        Controller::Memory,
        Kind::Flag,
        "true or false: the whole group is killed on OOM",
    ),
    knob(
        "pids.max",
        Controller::Pids,
        Kind::Count {
            max: PIDS_MAX_LIMIT,
        },
        "0..4194304 or \"max\"",
    ),
    Knob {
        format: Format::DefaultLine,
        ..knob(
            "io.weight",
            Controller::Io,
            WEIGHT,
            "1..10000 (the default weight)",
        )
    },
    Knob {
        format: Format::PerDevice,
        ..knob(
            "io.max",
            Controller::Io,
            Kind::DeviceLimits,
            "per device: rbps, wbps (sizes), riops, wiops (counts), each or \"max\"",
        )
    },
];

const SIZE: &str = "integer bytes, or \"64M\" (K/M/G/T or KiB..TiB, base 1024), or \"max\"";

/// Every key a group table accepts: `description`, the knobs, the `exec`
/// table and the `pressure` rules.
pub const GROUP_KEYS: [&str; KNOBS.len() + 3] = {
    let mut keys = [""; KNOBS.len() + 3];
    keys[0] = "description";
    let mut i = 0;
    while i < KNOBS.len() {
        keys[i + 1] = KNOBS[i].key;
        i += 1;
    }
    keys[KNOBS.len() + 1] = "exec";
    keys[KNOBS.len() + 2] = "pressure";
    keys
};

/// The knob of a policy key.
pub fn find(key: &str) -> Option<&'static Knob> {
    KNOBS.iter().find(|k| k.key == key)
}

/// A validated value of a knob.
#[derive(Debug, Clone, PartialEq)]
pub enum KnobValue {
    /// [`Kind::CpuMax`]
    CpuMax(CpuMax),
    /// [`Kind::Integer`]
    Integer(u64),
    /// [`Kind::Size`]
    Size(Limit<Bytes>),
    /// [`Kind::Count`]
    Count(Limit<u64>),
    /// [`Kind::Flag`]
    Flag(bool),
    /// [`Kind::CpuList`]
    CpuList(CpuSet),
    /// One entry of [`Kind::DeviceLimits`]: one device's line.
    Device(IoMaxLine),
}

/// One interface file value a policy sets.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    /// The knob, from [`KNOBS`].
    pub knob: &'static Knob,
    /// Its value, of the knob's kind.
    pub value: KnobValue,
}

impl Setting {
    /// The interface file this setting writes.
    pub fn file(&self) -> &'static str {
        self.knob.key
    }

    /// The controller that provides the file.
    pub fn controller(&self) -> Controller {
        self.knob.controller
    }

    /// Position in the write order: the knob's place in [`KNOBS`].
    pub fn rank(&self) -> usize {
        KNOBS
            .iter()
            .position(|k| std::ptr::eq(k, self.knob))
            .unwrap_or(KNOBS.len())
    }

    /// The size `memory.max` is lowered or raised to, if this sets one.
    pub fn memory_max(&self) -> Option<Bytes> {
        match (self.knob.key, &self.value) {
            ("memory.max", KnobValue::Size(Limit::Value(b))) => Some(*b),
            _ => None,
        }
    }

    /// The exact text to write. Memory sizes are rounded down to the page
    /// size first, as the kernel stores them, so a re-read compares equal.
    pub fn kernel_value(&self, page_size: u64) -> String {
        match &self.value {
            KnobValue::CpuMax(v) => v.to_string(),
            KnobValue::Integer(v) => v.to_string(),
            KnobValue::Size(Limit::Value(b)) => b.round_down(page_size).to_string(),
            KnobValue::Size(Limit::Max) => "max".into(),
            KnobValue::Count(v) => v.to_string(),
            KnobValue::Flag(v) => u8::from(*v).to_string(),
            KnobValue::CpuList(v) => v.to_string(),
            KnobValue::Device(line) => line.to_string(),
        }
    }

    /// True when the file's current content already has the desired value.
    pub fn is_satisfied_by(&self, current: &str, page_size: u64) -> Result<bool, ValueError> {
        let cur = current.trim();
        Ok(match (&self.value, self.knob.format) {
            (KnobValue::Device(line), _) => line.limits.satisfied_by(&io_max_for(current, line)?),
            (KnobValue::Integer(v), Format::DefaultLine) => {
                u64::from(default_weight(self.knob.key, current)?) == *v
            }
            (KnobValue::CpuList(v), _) => cur.parse::<CpuSet>()? == *v,
            (KnobValue::CpuMax(v), _) => cur.parse::<CpuMax>()? == *v,
            _ => cur == self.kernel_value(page_size),
        })
    }

    /// What to write to put back `current` (the content before our write).
    pub fn restore_value(&self, current: &str) -> Result<String, ValueError> {
        Ok(match (&self.value, self.knob.format) {
            (KnobValue::Device(line), _) => own_part_of_line(current, line)?.to_string(),
            (_, Format::DefaultLine) => default_weight(self.knob.key, current)?.to_string(),
            _ => current.trim().to_string(),
        })
    }

    /// The current value as shown in a plan: one line, in kernel format.
    pub fn show_current(&self, current: &str) -> String {
        match &self.value {
            KnobValue::Device(line) => own_part_of_line(current, line)
                .map(|l| l.to_string())
                .unwrap_or_else(|_| current.trim().to_string()),
            _ => current.trim().replace('\n', "; "),
        }
    }

    /// A human reading of the value for plans, e.g. `32 MiB` or `0.5 CPU`.
    pub fn human(&self) -> Option<String> {
        match &self.value {
            KnobValue::Size(Limit::Value(b)) => Some(b.human()),
            KnobValue::CpuMax(v) => v.cores().map(|c| format!("{c} CPU")),
            _ => None,
        }
    }
}

/// The device's current line in `current`, restricted to the keys `line` sets.
fn own_part_of_line(current: &str, line: &IoMaxLine) -> Result<IoMaxLine, ValueError> {
    Ok(IoMaxLine {
        device: line.device,
        limits: line.limits.restrict_to_keys_of(&io_max_for(current, line)?),
    })
}

/// The limits for `line.device` in an `io.max` file; unlisted devices are unlimited.
fn io_max_for(current: &str, line: &IoMaxLine) -> Result<IoLimits, ValueError> {
    for text in current.lines().filter(|l| !l.trim().is_empty()) {
        let parsed: IoMaxLine = text.parse()?;
        if parsed.device == line.device {
            return Ok(IoLimits { ..parsed.limits });
        }
    }
    Ok(IoLimits::UNLIMITED)
}

/// The `default N` weight of a weight file such as `io.weight`.
fn default_weight(file: &str, current: &str) -> Result<u32, ValueError> {
    current
        .lines()
        .find_map(|l| l.trim().strip_prefix("default "))
        .and_then(|w| w.trim().parse().ok())
        .ok_or_else(|| ValueError(format!("{file} has no `default N` line: {current:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows of the README's table of group keys: key, controller, accepts.
    fn readme_rows() -> Vec<[String; 3]> {
        let readme = include_str!("../../README.md");
        let table = readme
            .split("<!-- group keys: held to src/policy/knobs.rs by a unit test -->")
            .nth(1)
            .expect("the README has the table of group keys");
        table
            .lines()
            .skip(3)
            .take_while(|l| l.starts_with('|'))
            .map(|l| {
                let cells: Vec<String> = l
                    .trim_matches('|')
                    .split(" | ")
                    .map(|c| c.trim().trim_matches('`').to_string())
                    .collect();
                [cells[0].clone(), cells[1].clone(), cells[2].clone()]
            })
            .collect()
    }

    /// The README's table of keys is this table, row for row, in write order.
    #[test]
    fn the_readme_lists_every_knob_in_write_order() {
        let expected: Vec<[String; 3]> = KNOBS
            .iter()
            .map(|k| {
                [
                    k.key.to_string(),
                    k.controller.name().to_string(),
                    k.accepts.to_string(),
                ]
            })
            .collect();
        assert_eq!(readme_rows(), expected);
    }

    /// Every knob's file belongs to its controller, and keys are unique.
    #[test]
    fn each_knob_is_a_file_of_its_controller() {
        for (i, k) in KNOBS.iter().enumerate() {
            assert!(
                k.key.starts_with(&format!("{}.", k.controller.name())),
                "{}",
                k.key
            );
            assert!(KNOBS[..i].iter().all(|o| o.key != k.key), "{} twice", k.key);
            assert_eq!(find(k.key).map(|f| f.key), Some(k.key));
        }
        assert_eq!(GROUP_KEYS.len(), KNOBS.len() + 3);
        assert!(!GROUP_KEYS.contains(&""));
    }

    fn setting(key: &str, value: KnobValue) -> Setting {
        Setting {
            knob: find(key).unwrap(),
            value,
        }
    }

    /// Current values compare by meaning, not by text, where the kernel
    /// writes them differently from the policy; real file contents.
    #[test]
    fn current_values_compare_as_the_kernel_means_them() {
        let cpu = setting("cpu.max", KnobValue::CpuMax("max".parse().unwrap()));
        assert!(cpu.is_satisfied_by("max 100000\n", 4096).unwrap());
        let cpus = setting("cpuset.cpus", KnobValue::CpuList("0,1".parse().unwrap()));
        assert!(cpus.is_satisfied_by("0-1\n", 4096).unwrap());
        let weight = setting("io.weight", KnobValue::Integer(100));
        assert!(
            weight
                .is_satisfied_by("default 100\n8:0 200\n", 4096)
                .unwrap()
        );
        assert!(!weight.is_satisfied_by("default 50\n", 4096).unwrap());
        assert_eq!(weight.restore_value("default 50\n8:0 200\n").unwrap(), "50");
        let memory = setting("memory.max", KnobValue::Size(Limit::Value(Bytes(10_000))));
        assert_eq!(memory.kernel_value(4096), "8192");
        assert!(memory.is_satisfied_by("8192\n", 4096).unwrap());
        assert_eq!(memory.memory_max(), Some(Bytes(10_000)));
        let oom = setting("memory.oom.group", KnobValue::Flag(true));
        assert_eq!(oom.kernel_value(4096), "1");
        assert_eq!(oom.memory_max(), None);
    }

    /// An `io.max` setting owns only its device's keys: other devices and
    /// keys it leaves out are neither compared nor restored.
    #[test]
    fn an_io_max_setting_owns_only_its_device_s_keys() {
        let line: IoMaxLine = "8:0 rbps=1048576".parse().unwrap();
        let io = setting("io.max", KnobValue::Device(line));
        let current = "8:16 rbps=2 wbps=max riops=max wiops=max\n8:0 rbps=1048576 wbps=5 riops=max wiops=max\n";
        assert!(io.is_satisfied_by(current, 4096).unwrap());
        assert!(!io.is_satisfied_by("", 4096).unwrap());
        assert_eq!(io.restore_value("").unwrap(), "8:0 rbps=max");
        assert_eq!(io.show_current(current), "8:0 rbps=1048576");
    }

    /// Writes go in table order: the plan sorts by rank.
    #[test]
    fn rank_is_the_place_in_the_table() {
        let swap = setting("memory.swap.max", KnobValue::Size(Limit::Max));
        let max = setting("memory.max", KnobValue::Size(Limit::Max));
        assert!(swap.rank() < max.rank());
        assert_eq!(
            setting("cpuset.cpus", KnobValue::CpuList("0".parse().unwrap())).rank(),
            0
        );
    }
}
