//! The validated policy model: what downstream code (apply, exec, daemon)
//! works with. Values here have passed every check; none is raw TOML.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

pub use super::knobs::Setting;
use crate::cgroup::{Controller, GroupName};

/// Where something was declared: file, 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The policy file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// A namespace `cgmgr exec` can create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Namespace {
    /// Mount namespace.
    Mount,
    /// Hostname and domain name.
    Uts,
    /// System V IPC and POSIX message queues.
    Ipc,
    /// Network stack (only `lo`).
    Net,
    /// Process ids; the workload's init is PID 1.
    Pid,
    /// User and group ids.
    User,
    /// Cgroup root view.
    Cgroup,
}

impl Namespace {
    /// All namespaces, with their policy names.
    pub const ALL: [(&'static str, Namespace); 7] = [
        ("mount", Namespace::Mount),
        ("uts", Namespace::Uts),
        ("ipc", Namespace::Ipc),
        ("net", Namespace::Net),
        ("pid", Namespace::Pid),
        ("user", Namespace::User),
        ("cgroup", Namespace::Cgroup),
    ];

    /// Parses a policy name such as `"net"`.
    pub fn from_name(name: &str) -> Option<Namespace> {
        Namespace::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, ns)| *ns)
    }
}

/// The `[group.NAME.exec]` table: how `cgmgr exec` isolates a workload.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecConfig {
    /// Root filesystem directory.
    pub rootfs: Option<PathBuf>,
    /// Whether the rootfs is mounted read-only (`None`: yes).
    pub readonly_root: Option<bool>,
    /// Namespaces to create; `None` means the default set.
    pub namespaces: Option<BTreeSet<Namespace>>,
    /// Hostname inside a UTS namespace.
    pub hostname: Option<String>,
    /// User id inside.
    pub uid: Option<u32>,
    /// Group id inside.
    pub gid: Option<u32>,
    /// The whole environment of the workload.
    pub env: BTreeMap<String, String>,
    /// Working directory inside the rootfs.
    pub cwd: Option<PathBuf>,
    /// The workload's seccomp filter (`None`: the default filter).
    pub seccomp: Option<super::seccomp::Seccomp>,
    /// Whether the workload may create user namespaces of its own.
    pub nested_userns: Option<bool>,
    /// How many sandboxes the daemon keeps built ahead for this group
    /// (`None`: none).
    pub standby: Option<u32>,
    /// Mounts made into the sandbox after its `/tmp`, in order.
    pub mounts: Vec<super::run::Mount>,
    /// The network (`None`: its own namespace, loopback only).
    pub network: Option<super::run::Network>,
    /// CPU time (user + system) of the whole run.
    pub time_limit: Option<std::time::Duration>,
    /// Wall-clock time of the run.
    pub wall_limit: Option<std::time::Duration>,
    /// Grace after `time_limit` before the kill.
    pub extra_time: Option<std::time::Duration>,
    /// Resource limits of the workload, each at most once.
    pub rlimits: Vec<(super::run::Rlimit, u64)>,
}

/// The resource a pressure rule watches: its `<resource>.pressure` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PsiResource {
    /// `cpu.pressure`: runnable tasks waiting for a CPU, including time
    /// throttled by the group's own `cpu.max`.
    Cpu,
    /// `memory.pressure`: reclaim, refaults, `memory.high` throttling.
    Memory,
    /// `io.pressure`: waiting for block I/O.
    Io,
}

impl PsiResource {
    /// Every resource with its policy name.
    pub const ALL: [(&'static str, PsiResource); 3] = [
        ("cpu", PsiResource::Cpu),
        ("memory", PsiResource::Memory),
        ("io", PsiResource::Io),
    ];

    /// The policy and metric name.
    pub fn name(self) -> &'static str {
        match self {
            PsiResource::Cpu => "cpu",
            PsiResource::Memory => "memory",
            PsiResource::Io => "io",
        }
    }

    /// The group's interface file.
    pub fn file(self) -> &'static str {
        match self {
            PsiResource::Cpu => "cpu.pressure",
            PsiResource::Memory => "memory.pressure",
            PsiResource::Io => "io.pressure",
        }
    }
}

/// Which line of a pressure file a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PsiKind {
    /// At least one task stalled.
    Some,
    /// Every non-idle task stalled at once.
    Full,
}

impl PsiKind {
    /// The kernel's (and the policy's) name.
    pub fn name(self) -> &'static str {
        match self {
            PsiKind::Some => "some",
            PsiKind::Full => "full",
        }
    }
}

/// What a pressure rule does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PressureAction {
    /// Log and count only.
    Log,
    /// `cgroup.freeze` the group (and its descendants).
    Freeze,
    /// `cgroup.kill` every process of the group and its descendants.
    Kill,
}

impl PressureAction {
    /// Every action with its policy name.
    pub const ALL: [(&'static str, PressureAction); 3] = [
        ("log", PressureAction::Log),
        ("freeze", PressureAction::Freeze),
        ("kill", PressureAction::Kill),
    ];

    /// The policy and metric name.
    pub fn name(self) -> &'static str {
        match self {
            PressureAction::Log => "log",
            PressureAction::Freeze => "freeze",
            PressureAction::Kill => "kill",
        }
    }
}

/// One `[[group.NAME.pressure]]` rule: act when the group's stall share
/// stays above `above` (measured by the kernel over `window`) for `sustain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PressureRule {
    /// The pressure file watched.
    pub resource: PsiResource,
    /// Its `some` or `full` line.
    pub kind: PsiKind,
    /// Share of the window stalled, in hundredths of a percent (2000 = 20%).
    pub above: u32,
    /// The kernel trigger's window, 500 ms to 10 s.
    pub window: std::time::Duration,
    /// How long the stall must last before acting (the policy's `for`);
    /// at least one window.
    pub sustain: std::time::Duration,
    /// What to do.
    pub action: PressureAction,
    /// Log and count the decision, change nothing.
    pub dry_run: bool,
    /// Where the rule was declared.
    pub origin: Origin,
}

impl PressureRule {
    /// The stall threshold in microseconds per window, as the kernel's
    /// trigger takes it.
    pub fn threshold_us(&self) -> u64 {
        let window_us = u64::try_from(self.window.as_micros()).unwrap_or(u64::MAX);
        window_us.saturating_mul(u64::from(self.above)) / 10_000
    }

    /// The share as people write it: `20%`, `2.5%`.
    pub fn above_text(&self) -> String {
        let (whole, part) = (self.above / 100, self.above % 100);
        match part {
            0 => format!("{whole}%"),
            p if p % 10 == 0 => format!("{whole}.{}%", p / 10),
            p => format!("{whole}.{p:02}%"),
        }
    }
}

/// One declared group, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Its path below the managed root.
    pub name: GroupName,
    /// Free text for humans.
    pub description: Option<String>,
    /// The values to enforce, in write order.
    pub settings: Vec<Setting>,
    /// Isolation for `cgmgr exec`.
    pub exec: Option<ExecConfig>,
    /// Pressure rules the daemon arms for this group.
    pub pressure: Vec<PressureRule>,
    /// Where the group was declared.
    pub origin: Origin,
}

/// Every group of a set of policy files, validated as a whole.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicySet {
    /// Groups by name; parents sort before their children.
    pub groups: BTreeMap<GroupName, Group>,
}

impl PolicySet {
    /// Every group that must exist: the declared ones and their ancestors
    /// (below the root), parents first.
    pub fn groups_with_ancestors(&self) -> BTreeSet<GroupName> {
        self.groups
            .keys()
            .flat_map(|g| g.ancestry())
            .filter(|g| !g.is_root())
            .collect()
    }

    /// For each group, the controllers its `cgroup.subtree_control` must
    /// enable: those used by any descendant. Includes the root.
    pub fn subtree_controllers(&self) -> BTreeMap<GroupName, BTreeSet<Controller>> {
        let mut out: BTreeMap<GroupName, BTreeSet<Controller>> = BTreeMap::new();
        for group in self.groups.values() {
            let used: BTreeSet<Controller> =
                group.settings.iter().map(Setting::controller).collect();
            if used.is_empty() {
                continue;
            }
            let mut ancestry = group.name.ancestry();
            ancestry.pop(); // the group itself does not need them for its children
            for ancestor in ancestry {
                out.entry(ancestor)
                    .or_default()
                    .extend(used.iter().copied());
            }
        }
        out
    }

    /// Every controller any policy needs.
    pub fn controllers(&self) -> BTreeSet<Controller> {
        self.groups
            .values()
            .flat_map(|g| g.settings.iter().map(Setting::controller))
            .collect()
    }
}

impl ExecConfig {
    /// A digest of every setting (a seccomp profile's content included),
    /// equal between two processes of the same cgmgr binary for equal
    /// tables: what a prepared sandbox was built from is compared by it.
    pub fn digest(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        format!("{self:?}").hash(&mut h);
        h.finish()
    }
}
