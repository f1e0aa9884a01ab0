//! `cgmgr doctor`: what this host offers cgmgr, one row per feature, and
//! what cgmgr does where one is missing.
//!
//! Kernels differ (5.10 has no `cgroup.kill` and no `memory.peak`, 6.12
//! counts refused forks up the tree, `SO_PASSRIGHTS` came in 6.16), and
//! distributions backport, so every row comes from a probe of the running
//! kernel, never from its version: an interface file seen in a real group,
//! a PSI trigger written and dropped, a child cloned into cgmgr's own
//! cgroup that exits at once, an `openat2` of `/`, a socket option set on a
//! fresh socketpair. The probes change nothing on the host (`probe`); the
//! kernel files they read are parsed by pure functions (`parse`).
//!
//! The verdict ([`verdict`]) says whether cgmgr can work here: a cgroup2
//! hierarchy is mounted, the managed root is a cgroup2 directory this
//! process can read and write, at least one of the cpu, memory and pids
//! controllers is available there, and, on a host whose tree systemd owns,
//! the root is delegated. Anything else is a reason, each with its fix.

pub mod parse;
pub mod probe;

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use crate::systemd::owner::TreeOwner;
use parse::Mode;

/// The feature names of the report, in its order (the JSON contract).
pub const NAMES: [&str; 13] = [
    "cgroup2",
    "cgroup.kill",
    "cgroup.freeze",
    "memory.peak",
    "pids.events.local",
    "psi",
    "psi_triggers",
    "clone_into_cgroup",
    "openat2",
    "user_namespaces",
    "seccomp",
    "so_passrights",
    "systemd",
];

/// One row of the report, as printed and as serialized (fields in this
/// order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Feature {
    /// One of [`NAMES`].
    pub name: &'static str,
    /// Whether this host offers it to this process.
    pub available: bool,
    /// What was seen, where, and the kernel's answer.
    pub detail: String,
    /// What cgmgr does where the feature is missing.
    pub fallback: String,
}

/// A row before it is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Whether this host offers it.
    pub available: bool,
    /// What was seen.
    pub detail: String,
    /// What cgmgr does without it.
    pub fallback: String,
}

impl Row {
    /// A row with its fallback.
    pub fn new(available: bool, detail: impl Into<String>, fallback: impl Into<String>) -> Row {
        Row {
            available,
            detail: detail.into(),
            fallback: fallback.into(),
        }
    }
}

/// Every row, one field per feature: the report's order is fixed by
/// [`Rows::features`] alone, so no probe can reorder or drop a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rows {
    /// The cgroup2 mount, its mode, the managed root's controllers.
    pub cgroup2: Row,
    /// `cgroup.kill`.
    pub cgroup_kill: Row,
    /// `cgroup.freeze`.
    pub cgroup_freeze: Row,
    /// `memory.peak`.
    pub memory_peak: Row,
    /// `pids.events.local` (refused forks counted up the tree).
    pub pids_events_local: Row,
    /// The pressure files.
    pub psi: Row,
    /// PSI triggers, privileged and 2 s windows.
    pub psi_triggers: Row,
    /// `clone3` with `CLONE_INTO_CGROUP`.
    pub clone_into_cgroup: Row,
    /// `openat2`, and a seccomp filter refusing it.
    pub openat2: Row,
    /// Unprivileged user namespaces and their limits.
    pub user_namespaces: Row,
    /// seccomp filters.
    pub seccomp: Row,
    /// `SO_PASSRIGHTS`.
    pub so_passrights: Row,
    /// systemd: its version, the root's delegation.
    pub systemd: Row,
}

impl Rows {
    /// The rows named, in [`NAMES`]' order.
    pub fn features(self) -> Vec<Feature> {
        let rows = [
            self.cgroup2,
            self.cgroup_kill,
            self.cgroup_freeze,
            self.memory_peak,
            self.pids_events_local,
            self.psi,
            self.psi_triggers,
            self.clone_into_cgroup,
            self.openat2,
            self.user_namespaces,
            self.seccomp,
            self.so_passrights,
            self.systemd,
        ];
        NAMES
            .iter()
            .zip(rows)
            .map(|(name, row)| Feature {
                name,
                available: row.available,
                detail: row.detail,
                fallback: row.fallback,
            })
            .collect()
    }
}

/// What the verdict depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footing {
    /// Unified, hybrid or none.
    pub mode: Mode,
    /// Where cgroup2 is mounted.
    pub v2_point: Option<PathBuf>,
    /// The managed root.
    pub root: PathBuf,
    /// What the managed root is.
    pub root_state: RootState,
    /// The controllers available in cgroup v2 for a root there: the
    /// managed root's `cgroup.controllers`, else the mount's.
    pub controllers: Vec<String>,
    /// Controllers bound to a cgroup v1 hierarchy: name, hierarchy id, mount point.
    pub v1_bound: Vec<(String, u32, Option<PathBuf>)>,
    /// Who owns the tree the root is in.
    pub owner: TreeOwner,
    /// This process's effective uid, for messages.
    pub uid: u32,
}

/// The managed root, as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootState {
    /// A cgroup2 directory; whether this process may write it.
    Cgroup2 {
        /// `W_OK` on the directory and its `cgroup.procs`.
        writable: bool,
    },
    /// Not a cgroup2 directory (missing, another filesystem): why.
    Unusable(String),
}

/// Whether cgmgr can work here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It can; what it stands on.
    Works(String),
    /// It cannot: each reason with its fix.
    Cannot(Vec<Reason>),
}

/// Why cgmgr cannot work here, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    /// What is missing.
    pub why: String,
    /// What fixes it.
    pub fix: String,
}

/// The controllers cgmgr's limits need; one of them is enough to work.
pub const CORE_CONTROLLERS: [&str; 3] = ["cpu", "memory", "pids"];

/// The boot option that moves every controller to cgroup v2.
const UNIFIED_FIX: &str = "boot with `systemd.unified_cgroup_hierarchy=1` on the kernel command line (and without `cgroup_no_v1=`-style overrides that keep v1), so that every controller is attached to cgroup v2";

/// Decides whether cgmgr can work on the host `f` describes.
pub fn verdict(f: &Footing) -> Verdict {
    let root = f.root.display();
    let mut reasons = Vec::new();
    let Some(point) = &f.v2_point else {
        let v1 = if f.v1_bound.is_empty() {
            String::new()
        } else {
            format!(
                " (only cgroup v1 is mounted: {})",
                bound_list(&f.v1_bound, false)
            )
        };
        return Verdict::Cannot(vec![Reason {
            why: format!("no cgroup2 filesystem is mounted{v1}"),
            fix: format!("{UNIFIED_FIX}; or mount it: `mount -t cgroup2 none /sys/fs/cgroup`"),
        }]);
    };
    match &f.root_state {
        RootState::Unusable(why) => reasons.push(Reason {
            why: format!("the managed root {root} is not a cgroup2 directory ({why})"),
            fix: format!(
                "point --root (or CGMGR_ROOT) at a directory of the cgroup2 mount at {}{}",
                point.display(),
                if f.mode == Mode::Hybrid {
                    " (this host is hybrid: that mount is not /sys/fs/cgroup)"
                } else {
                    ""
                }
            ),
        }),
        RootState::Cgroup2 { writable: false } => reasons.push(Reason {
            why: format!("the managed root {root} is not writable by uid {}", f.uid),
            fix: "run cgmgr as root, or point --root at a cgroup delegated to this user (`systemd-run --user --scope -p Delegate=yes cgmgr --root self ...`)".into(),
        }),
        RootState::Cgroup2 { writable: true } => {}
    }
    let core_available = CORE_CONTROLLERS
        .iter()
        .any(|c| f.controllers.iter().any(|have| have == c));
    if !core_available {
        let where_ = match f.root_state {
            RootState::Cgroup2 { .. } => format!("at {root}"),
            RootState::Unusable(_) => format!("at the cgroup2 mount {}", point.display()),
        };
        let have = if f.controllers.is_empty() {
            "none".to_string()
        } else {
            f.controllers.join(" ")
        };
        let bound: Vec<(String, u32, Option<PathBuf>)> = f
            .v1_bound
            .iter()
            .filter(|(name, ..)| CORE_CONTROLLERS.contains(&name.as_str()))
            .cloned()
            .collect();
        let (why, fix) = if bound.is_empty() {
            (
                format!(
                    "none of the cpu, memory and pids controllers is available in cgroup v2 {where_} (cgroup.controllers: {have}): the parent does not delegate them"
                ),
                "enable them in the parent's cgroup.subtree_control (`echo +memory > PARENT/cgroup.subtree_control`), or run cgmgr in a systemd unit with Delegate=yes".to_string(),
            )
        } else {
            (
                format!(
                    "none of the cpu, memory and pids controllers is available in cgroup v2 {where_} (cgroup.controllers: {have}): {} bound to cgroup v1, and a controller can be in only one hierarchy",
                    bound_list(&bound, true)
                ),
                UNIFIED_FIX.to_string(),
            )
        };
        reasons.push(Reason { why, fix });
    }
    if f.owner == TreeOwner::Systemd {
        reasons.push(Reason {
            why: format!(
                "systemd manages this host's cgroup tree and has not delegated {root} (neither it nor a parent carries the trusted.delegate mark of a unit with Delegate=yes): cgmgr refuses to write there"
            ),
            fix: "`systemctl start cgmgr` (its delegated subtree), or --root self inside a unit with Delegate=yes, or `systemd-run --scope -p Delegate=yes cgmgr --root self ...`".into(),
        });
    }
    if !reasons.is_empty() {
        return Verdict::Cannot(reasons);
    }
    let usable: Vec<&str> = f.controllers.iter().map(String::as_str).collect();
    let owner = match &f.owner {
        TreeOwner::Nobody => "no other manager claims the tree".to_string(),
        TreeOwner::SystemdDelegated { at } => {
            format!("systemd has delegated {}", at.display())
        }
        TreeOwner::Systemd => unreachable!("refused above"),
    };
    Verdict::Works(format!(
        "cgroup2 ({}) at {}, the managed root {root} is writable with {} available, {owner}",
        f.mode.name(),
        point.display(),
        usable.join(" ")
    ))
}

/// `cpu (hierarchy 1, /sys/fs/cgroup/cpu), memory (...) are` / `is`.
fn bound_list(bound: &[(String, u32, Option<PathBuf>)], verb: bool) -> String {
    let items: Vec<String> = bound
        .iter()
        .map(|(name, id, point)| match point {
            Some(p) => format!("{name} (hierarchy {id}, mounted at {})", p.display()),
            None => format!("{name} (hierarchy {id})"),
        })
        .collect();
    let list = items.join(", ");
    match (verb, bound.len()) {
        (false, _) => list,
        (true, 1) => format!("{list} is"),
        (true, _) => format!("{list} are"),
    }
}

/// The report: every row and the verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The rows, in [`NAMES`]' order.
    pub features: Vec<Feature>,
    /// Whether cgmgr can work here.
    pub verdict: Verdict,
}

impl Report {
    /// The exit code: 0 when cgmgr can work here, 1 when not.
    pub fn can_work(&self) -> bool {
        matches!(self.verdict, Verdict::Works(_))
    }

    /// `{"features": [...]}`, each row's fields in the order name,
    /// available, detail, fallback.
    pub fn json(&self) -> String {
        #[derive(Serialize)]
        struct Out<'a> {
            features: &'a [Feature],
        }
        let mut text = serde_json::to_string_pretty(&Out {
            features: &self.features,
        })
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        text.push('\n');
        text
    }

    /// The table: one row per feature (its name, yes or no, what was seen;
    /// for a missing one, what cgmgr does instead on the next line), then
    /// the verdict's line.
    pub fn text(&self) -> String {
        let width = NAMES.iter().map(|n| n.len()).max().unwrap_or(0);
        let mut out = format!("{:width$}  {:3}  DETAIL\n", "FEATURE", "OK");
        for f in &self.features {
            let ok = if f.available { "yes" } else { "no" };
            let _ = writeln!(out, "{:width$}  {ok:3}  {}", f.name, f.detail);
            if !f.available {
                let _ = writeln!(out, "{:width$}       without it: {}", "", f.fallback);
            }
        }
        out.push('\n');
        out.push_str(&self.verdict_line());
        out.push('\n');
        out
    }

    /// The last line of the table.
    pub fn verdict_line(&self) -> String {
        match &self.verdict {
            Verdict::Works(how) => format!("cgmgr can work here: {how}"),
            Verdict::Cannot(reasons) => {
                let whys: Vec<&str> = reasons.iter().map(|r| r.why.as_str()).collect();
                let mut fixes: Vec<&str> = Vec::new();
                for r in reasons {
                    if !fixes.contains(&r.fix.as_str()) {
                        fixes.push(&r.fix);
                    }
                }
                format!(
                    "cgmgr cannot work here: {}. Fix: {}.",
                    whys.join("; "),
                    fixes.join("; ")
                )
            }
        }
    }
}

/// Why `cgmgr doctor` could not report, or why cgmgr cannot work here.
#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    /// A file every row depends on could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// A file every row depends on is not shaped as the kernel writes it.
    #[error(transparent)]
    Parse(#[from] parse::ParseError),
    /// The verdict: cgmgr cannot work here (the report was printed).
    #[error("cannot work here: {}", reasons.iter().map(|r| r.why.as_str()).collect::<Vec<_>>().join("; "))]
    CannotWork {
        /// Each reason and its fix.
        reasons: Vec<Reason>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(available: bool) -> Row {
        Row::new(available, "seen", "instead")
    }

    fn rows() -> Rows {
        Rows {
            cgroup2: row(true),
            cgroup_kill: row(false),
            cgroup_freeze: row(true),
            memory_peak: row(true),
            pids_events_local: row(false),
            psi: row(true),
            psi_triggers: row(true),
            clone_into_cgroup: row(true),
            openat2: row(true),
            user_namespaces: row(true),
            seccomp: row(true),
            so_passrights: row(false),
            systemd: row(false),
        }
    }

    fn hybrid_host() -> Footing {
        let bound = |name: &str, id, point: &str| (name.to_string(), id, Some(point.into()));
        Footing {
            mode: Mode::Hybrid,
            v2_point: Some("/sys/fs/cgroup/unified".into()),
            root: "/sys/fs/cgroup".into(),
            root_state: RootState::Unusable("a tmpfs, not cgroup2".into()),
            controllers: vec!["hugetlb".into()],
            v1_bound: vec![
                bound("cpuset", 3, "/sys/fs/cgroup/cpuset"),
                bound("cpu", 1, "/sys/fs/cgroup/cpu"),
                bound("memory", 4, "/sys/fs/cgroup/memory"),
                bound("pids", 8, "/sys/fs/cgroup/pids"),
            ],
            owner: TreeOwner::Nobody,
            uid: 0,
        }
    }

    fn unified_host() -> Footing {
        Footing {
            mode: Mode::Unified,
            v2_point: Some("/sys/fs/cgroup".into()),
            root: "/sys/fs/cgroup".into(),
            root_state: RootState::Cgroup2 { writable: true },
            controllers: ["cpuset", "cpu", "io", "memory", "pids"]
                .map(String::from)
                .to_vec(),
            v1_bound: Vec::new(),
            owner: TreeOwner::Nobody,
            uid: 0,
        }
    }

    #[test]
    fn rows_come_out_named_in_the_contracts_order() {
        let features = rows().features();
        let names: Vec<&str> = features.iter().map(|f| f.name).collect();
        assert_eq!(names, NAMES);
        assert_eq!(
            features.iter().filter(|f| !f.available).count(),
            4,
            "each row keeps its own value"
        );
        assert!(!features[1].available && features[1].name == "cgroup.kill");
    }

    #[test]
    fn json_has_exactly_the_four_fields_in_order() {
        let report = Report {
            features: rows().features(),
            verdict: Verdict::Works("fine".into()),
        };
        let json = report.json();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let obj = v.as_object().unwrap();
        assert_eq!(obj.keys().collect::<Vec<_>>(), ["features"]);
        let first = &v["features"][0];
        assert_eq!(first["name"], "cgroup2");
        assert_eq!(first["available"], true);
        // Field order in the text itself (serde_json's map sorts keys).
        let at = |k: &str| json.find(&format!("\"{k}\"")).unwrap();
        assert!(at("name") < at("available") && at("available") < at("detail"));
        assert!(at("detail") < at("fallback"));
        assert_eq!(v["features"].as_array().unwrap().len(), 13);
    }

    #[test]
    fn the_hybrid_host_cannot_work_and_is_told_why() {
        let Verdict::Cannot(reasons) = verdict(&hybrid_host()) else {
            panic!("a hybrid host with cpu, memory and pids in v1 works?");
        };
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(
            reasons[0]
                .why
                .contains("the managed root /sys/fs/cgroup is not a cgroup2 directory"),
            "{reasons:?}"
        );
        assert!(
            reasons[0].fix.contains(
                "a directory of the cgroup2 mount at /sys/fs/cgroup/unified (this host is hybrid"
            ),
            "{reasons:?}"
        );
        let v1 = &reasons[1].why;
        assert!(
            v1.contains("cpu (hierarchy 1, mounted at /sys/fs/cgroup/cpu), memory (hierarchy 4, mounted at /sys/fs/cgroup/memory), pids (hierarchy 8, mounted at /sys/fs/cgroup/pids) are bound to cgroup v1"),
            "{v1}"
        );
        assert!(
            !v1.contains("cpuset"),
            "only the controllers the verdict needs: {v1}"
        );
        assert!(v1.contains("cgroup.controllers: hugetlb"), "{v1}");
        assert!(
            reasons[1]
                .fix
                .contains("systemd.unified_cgroup_hierarchy=1")
        );
        // A root inside the v2 mount: the v1 binding alone.
        let mut inside = hybrid_host();
        inside.root = "/sys/fs/cgroup/unified/x".into();
        inside.root_state = RootState::Cgroup2 { writable: true };
        inside.controllers.clear();
        let Verdict::Cannot(reasons) = verdict(&inside) else {
            panic!("works without a controller")
        };
        assert_eq!(reasons.len(), 1);
        assert!(
            reasons[0]
                .why
                .contains("at /sys/fs/cgroup/unified/x (cgroup.controllers: none)")
        );
    }

    /// The verdict from this host's captured files: its mountinfo,
    /// /proc/cgroups and the v2 root's cgroup.controllers and
    /// cgroup.subtree_control, for a root in its v2 mount.
    #[test]
    fn the_captured_hybrid_host_names_its_v1_controllers() {
        let k = |f: &str| {
            std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/fixtures/kernel")
                    .join(f),
            )
            .unwrap()
        };
        let mounts = parse::mountinfo(&k("host-6.18-hybrid.mountinfo")).unwrap();
        let subsystems = parse::proc_cgroups(&k("host-6.18-hybrid.proc-cgroups")).unwrap();
        let controllers =
            crate::cgroup::format::word_list(&k("host-6.18-hybrid-root.cgroup.controllers"));
        assert_eq!(controllers, ["hugetlb"]);
        let enabled =
            crate::cgroup::format::word_list(&k("host-6.18-hybrid-root.cgroup.subtree_control"));
        assert!(enabled.is_empty(), "{enabled:?}");
        let footing = Footing {
            mode: mounts.mode(),
            v2_point: mounts.v2.as_ref().map(|m| m.point.clone()),
            root: "/sys/fs/cgroup/unified/box".into(),
            root_state: RootState::Cgroup2 { writable: true },
            controllers,
            v1_bound: parse::bound_to_v1(&subsystems)
                .into_iter()
                .map(|(n, id)| (n.to_string(), id, mounts.v1_point(n).cloned()))
                .collect(),
            owner: TreeOwner::Nobody,
            uid: 0,
        };
        let Verdict::Cannot(r) = verdict(&footing) else {
            panic!("the hybrid host works?")
        };
        assert_eq!(r.len(), 1);
        assert!(r[0].why.contains("(cgroup.controllers: hugetlb): cpu (hierarchy 1, mounted at /sys/fs/cgroup/cpu), memory (hierarchy 4, mounted at /sys/fs/cgroup/memory), pids (hierarchy 8, mounted at /sys/fs/cgroup/pids) are bound to cgroup v1"), "{r:?}");
    }

    #[test]
    fn a_unified_host_works_with_one_core_controller() {
        let Verdict::Works(how) = verdict(&unified_host()) else {
            panic!("a unified root host cannot work?")
        };
        assert!(how.contains("cgroup2 (unified) at /sys/fs/cgroup"), "{how}");
        assert!(how.contains("cpuset cpu io memory pids available"), "{how}");
        let mut pids_only = unified_host();
        pids_only.controllers = vec!["pids".into()];
        assert!(matches!(verdict(&pids_only), Verdict::Works(_)));
        let mut none = unified_host();
        none.controllers = vec!["cpuset".into(), "io".into()];
        let Verdict::Cannot(r) = verdict(&none) else {
            panic!("works with cpuset and io only")
        };
        assert!(
            r[0].why.contains("the parent does not delegate them"),
            "{r:?}"
        );
        assert!(r[0].fix.contains("Delegate=yes"));
    }

    #[test]
    fn not_writable_not_mounted_and_not_delegated_are_reasons() {
        let mut ro = unified_host();
        ro.root_state = RootState::Cgroup2 { writable: false };
        ro.uid = 1000;
        let Verdict::Cannot(r) = verdict(&ro) else {
            panic!()
        };
        assert!(r[0].why.contains("not writable by uid 1000"), "{r:?}");

        let mut none = unified_host();
        none.mode = Mode::None;
        none.v2_point = None;
        none.v1_bound = vec![("memory".into(), 4, None)];
        let Verdict::Cannot(r) = verdict(&none) else {
            panic!()
        };
        assert_eq!(r.len(), 1);
        assert!(
            r[0].why.contains(
                "no cgroup2 filesystem is mounted (only cgroup v1 is mounted: memory (hierarchy 4))"
            ),
            "{r:?}"
        );

        let mut owned = unified_host();
        owned.owner = TreeOwner::Systemd;
        let Verdict::Cannot(r) = verdict(&owned) else {
            panic!()
        };
        assert!(
            r[0].why.contains("has not delegated /sys/fs/cgroup"),
            "{r:?}"
        );
        assert!(r[0].fix.contains("systemctl start cgmgr"));

        let mut delegated = unified_host();
        delegated.owner = TreeOwner::SystemdDelegated {
            at: "/sys/fs/cgroup/system.slice/x.service".into(),
        };
        let Verdict::Works(how) = verdict(&delegated) else {
            panic!()
        };
        assert!(how.contains("systemd has delegated /sys/fs/cgroup/system.slice/x.service"));
    }

    #[test]
    fn the_table_shows_fallbacks_of_missing_rows_and_ends_with_the_verdict() {
        let report = Report {
            features: rows().features(),
            verdict: verdict(&hybrid_host()),
        };
        let text = report.text();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("FEATURE")
                && lines[0].contains("OK")
                && lines[0].ends_with("DETAIL")
        );
        assert!(
            lines[1].starts_with("cgroup2") && lines[1].contains(" yes  seen"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("cgroup.kill") && lines[2].contains(" no   seen"),
            "{text}"
        );
        assert!(
            lines[3].trim_start().starts_with("without it: instead"),
            "{text}"
        );
        assert!(lines[4].starts_with("cgroup.freeze"), "{text}");
        let last = lines.last().unwrap();
        assert!(
            last.starts_with("cgmgr cannot work here: the managed root"),
            "{last}"
        );
        assert!(last.contains(". Fix: point --root"), "{last}");
        assert_eq!(
            last.matches("systemd.unified_cgroup_hierarchy=1").count(),
            1,
            "one fix said once: {last}"
        );
        assert!(!report.can_work());
        let e = DoctorError::CannotWork {
            reasons: match report.verdict {
                Verdict::Cannot(r) => r,
                Verdict::Works(_) => unreachable!(),
            },
        };
        assert!(
            e.to_string()
                .starts_with("cannot work here: the managed root"),
            "{e}"
        );
    }
}
