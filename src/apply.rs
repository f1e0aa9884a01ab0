//! Apply = plan, then write.
//!
//! [`plan`] compares the policies with what the kernel has and lists the
//! steps that would make them equal: tree setup (controllers above the root
//! on hosts no manager claims; evacuate the root, enable
//! controllers top-down), groups to create, files whose value differs,
//! groups to prune. [`execute`] performs the steps in that order and keeps
//! a journal; if the kernel refuses a write midway, everything this run
//! changed is put back, and the error names the file, value and errno.

use std::fmt;

use crate::cgroup::values::Bytes;
use std::collections::BTreeSet;

use crate::cgroup::ancestors::{self, Ancestor};
use crate::cgroup::stat::{CgroupEvents, StatFile};
use crate::cgroup::{CgroupError, CgroupRoot, Controller, GroupName, tree};
use crate::policy::{PolicySet, Setting};

/// What the user asked for on the command line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Remove managed groups that no policy declares any more.
    pub prune: bool,
    /// Proceed with steps that would kill processes (memory.max below usage)
    /// and move processes out of pruned groups.
    pub force: bool,
}

/// One change the apply makes.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Move every process of `from` into the leaf group.
    Evacuate {
        /// The group to empty.
        from: GroupName,
        /// How many processes it held when planned.
        procs: usize,
    },
    /// Enable a controller in a group's `cgroup.subtree_control`.
    Enable {
        /// The group.
        group: GroupName,
        /// The controller.
        controller: Controller,
    },
    /// Enable a controller in a group above the managed root (hosts whose
    /// tree no manager claims), top-down.
    EnableAbove {
        /// The ancestor.
        ancestor: Ancestor,
        /// The controller.
        controller: Controller,
    },
    /// Create a group.
    Create {
        /// The group.
        group: GroupName,
    },
    /// Write a value.
    Write {
        /// The group.
        group: GroupName,
        /// What to write.
        setting: Setting,
        /// The current content, `None` if the group is yet to be created.
        old: Option<String>,
        /// The exact text to write.
        new: String,
        /// Why this write can hurt the group's processes, if it can.
        risk: Option<String>,
    },
    /// Remove a managed group that no policy declares.
    Remove {
        /// The group.
        group: GroupName,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Evacuate { from, procs } => write!(
                f,
                "move {procs} process{} from {from} into {}",
                if *procs == 1 { "" } else { "es" },
                GroupName::leaf()
            ),
            Step::Enable { group, controller } => {
                write!(f, "{}cgroup.subtree_control: +{controller}", prefix(group))
            }
            Step::EnableAbove {
                ancestor,
                controller,
            } => write!(
                f,
                "{}: +{controller} (above the managed root)",
                ancestor.file("cgroup.subtree_control").display()
            ),
            Step::Create { group } => write!(f, "create {group}"),
            Step::Write {
                group,
                setting,
                old,
                new,
                risk,
            } => {
                let old = old
                    .as_ref()
                    .map_or("(new)".to_string(), |o| setting.show_current(o));
                write!(f, "{}{}: {old} -> {new}", prefix(group), setting.file())?;
                if let Some(h) = setting.human() {
                    write!(f, " ({h})")?;
                }
                if let Some(r) = risk {
                    write!(f, "\n    !! {r}")?;
                }
                Ok(())
            }
            Step::Remove { group } => write!(f, "remove {group}"),
        }
    }
}

fn prefix(group: &GroupName) -> String {
    if group.is_root() {
        "(root) ".into()
    } else {
        format!("{group}/")
    }
}

/// The steps of one apply, and the reasons it must not run as is.
#[derive(Debug, Default)]
pub struct Plan {
    /// Steps in execution order.
    pub steps: Vec<Step>,
    /// Problems that stop the apply unless resolved (or `--force`d).
    pub refusals: Vec<String>,
    /// Groups that already match their policy.
    pub unchanged_groups: usize,
}

/// Why an apply did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Reading the current state failed; nothing was written.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// The plan has refusals; nothing was written.
    #[error("refusing to apply; nothing was written:\n{}", .0.iter().map(|r| format!("  - {r}")).collect::<Vec<_>>().join("\n"))]
    Refused(Vec<String>),
    /// A step failed; the steps before it were undone.
    #[error("{failure}\n{rollback}")]
    RolledBack {
        /// The failure.
        failure: CgroupError,
        /// What the rollback did.
        rollback: String,
    },
}

/// Computes the steps that make the tree under `root` match `set`.
pub fn plan(root: &CgroupRoot, set: &PolicySet, opts: Options) -> Result<Plan, ApplyError> {
    let mut plan = Plan::default();
    let unavailable = tree::unavailable(root, &set.controllers())?;
    let unresolved = if unavailable.is_empty() || !tree_is_unclaimed(root) {
        unavailable
    } else {
        plan_above(root, unavailable, &mut plan)?
    };
    tree::refuse_unavailable(root, &unresolved)?;
    let subtree = set.subtree_controllers();
    let page = page_size();

    let root_group = GroupName::root();
    let root_needs = subtree.get(&root_group).cloned().unwrap_or_default();
    let root_enabled = root.subtree_control(&root_group)?;
    let missing_at_root: Vec<Controller> = root_needs
        .iter()
        .copied()
        .filter(|c| !root_enabled.iter().any(|e| e == c.name()))
        .collect();
    if !missing_at_root.is_empty() && !root.is_hierarchy_root() {
        let procs = root.procs(&root_group)?.len();
        if procs > 0 {
            plan.steps.push(Step::Evacuate {
                from: root_group.clone(),
                procs,
            });
        }
    }
    for controller in missing_at_root {
        plan.steps.push(Step::Enable {
            group: root_group.clone(),
            controller,
        });
    }

    for group in set.groups_with_ancestors() {
        let exists = root.exists(&group);
        if !exists {
            plan.steps.push(Step::Create {
                group: group.clone(),
            });
        }
        let enabled = if exists {
            root.subtree_control(&group)?
        } else {
            Vec::new()
        };
        for controller in subtree.get(&group).into_iter().flatten() {
            if !enabled.iter().any(|e| e == controller.name()) {
                plan.steps.push(Step::Enable {
                    group: group.clone(),
                    controller: *controller,
                });
            }
        }
        let Some(policy) = set.groups.get(&group) else {
            continue;
        };
        let before = plan.steps.len();
        for setting in &policy.settings {
            // A group made by hand below a parent that does not enable the
            // setting's controller yet has no such file until this plan's
            // Enable step makes it: there is no old value to read.
            let file_exists = exists && !enables_above(&plan, &group, setting.controller());
            plan_write(root, &group, setting, file_exists, page, &mut plan)?;
        }
        if exists && plan.steps.len() == before {
            plan.unchanged_groups += 1;
        }
    }
    if opts.prune {
        plan_prune(root, set, opts, &mut plan)?;
    }
    if !opts.force {
        plan.refusals
            .extend(plan.steps.iter().filter_map(|s| match s {
                Step::Write {
                    group,
                    setting,
                    risk: Some(r),
                    ..
                } => Some(format!(
                    "{group}/{}: {r}; use --force to apply it anyway",
                    setting.file()
                )),
                _ => None,
            }));
    }
    Ok(plan)
}

/// True when `plan` enables `controller` in the parent of `group`.
fn enables_above(plan: &Plan, group: &GroupName, controller: Controller) -> bool {
    let parent = group.parent().unwrap_or_else(GroupName::root);
    plan.steps.iter().any(|s| {
        matches!(s, Step::Enable { group: g, controller: c } if *g == parent && *c == controller)
    })
}

/// True when no manager claims the tree (no systemd), so that the groups
/// above the managed root may be set up: on a systemd host they are
/// systemd's, and a root it has not delegated is refused instead.
fn tree_is_unclaimed(root: &CgroupRoot) -> bool {
    matches!(
        crate::systemd::owner::tree_owner(root.path()),
        crate::systemd::owner::TreeOwner::Nobody
    )
}

/// Plans enabling `missing` in every ancestor, top-down from the root of the
/// cgroup2 mount; returns the controllers even that root does not have
/// (bound to cgroup v1, or not given to a cgroup namespace), which
/// `tree::refuse_unavailable` then explains.
fn plan_above(
    root: &CgroupRoot,
    missing: BTreeSet<Controller>,
    plan: &mut Plan,
) -> Result<BTreeSet<Controller>, ApplyError> {
    let chain = ancestors::list(root);
    let Some(top) = chain.last() else {
        return Ok(missing);
    };
    let at_top = ancestors::controllers(root, top)?;
    let mut enabled = Vec::with_capacity(chain.len());
    for ancestor in &chain {
        enabled.push(ancestors::subtree_control(root, ancestor)?);
    }
    let mut unresolved = BTreeSet::new();
    for controller in missing {
        if !at_top.iter().any(|c| c == controller.name()) {
            unresolved.insert(controller);
            continue;
        }
        for (ancestor, enabled) in chain.iter().zip(&enabled).rev() {
            if !enabled.iter().any(|c| c == controller.name()) {
                plan.steps.push(Step::EnableAbove {
                    ancestor: ancestor.clone(),
                    controller,
                });
            }
        }
    }
    Ok(unresolved)
}

fn plan_write(
    root: &CgroupRoot,
    group: &GroupName,
    setting: &Setting,
    exists: bool,
    page: u64,
    plan: &mut Plan,
) -> Result<(), ApplyError> {
    let new = setting.kernel_value(page);
    if !exists {
        plan.steps.push(Step::Write {
            group: group.clone(),
            setting: setting.clone(),
            old: None,
            new,
            risk: None,
        });
        return Ok(());
    }
    let current = root.read(group, setting.file())?;
    let satisfied = setting
        .is_satisfied_by(&current, page)
        .map_err(|e| CgroupError::Format {
            path: root.display_path(group, setting.file()),
            content: current.clone(),
            reason: e.0,
        })?;
    if satisfied {
        return Ok(());
    }
    let risk = memory_risk(root, group, setting)?;
    plan.steps.push(Step::Write {
        group: group.clone(),
        setting: setting.clone(),
        old: Some(current),
        new,
        risk,
    });
    Ok(())
}

/// Lowering `memory.max` below the group's usage makes the kernel reclaim
/// and then OOM-kill: say so, with the numbers.
fn memory_risk(
    root: &CgroupRoot,
    group: &GroupName,
    setting: &Setting,
) -> Result<Option<String>, ApplyError> {
    let Some(limit) = setting.memory_max() else {
        return Ok(None);
    };
    let current: Bytes = root.read_value(group, "memory.current")?;
    Ok((current > limit).then(|| {
        format!(
            "memory.current is {} ({}), above the new memory.max of {}: the kernel will reclaim and may OOM-kill processes",
            current.human(),
            current,
            limit.human()
        )
    }))
}

fn plan_prune(
    root: &CgroupRoot,
    set: &PolicySet,
    opts: Options,
    plan: &mut Plan,
) -> Result<(), ApplyError> {
    let wanted = set.groups_with_ancestors();
    let mut managed = tree::managed_groups(root)?;
    // Deepest first, so children go before their parents.
    managed.sort_by_key(|g| std::cmp::Reverse(g.as_str().matches('/').count()));
    for group in managed.into_iter().filter(|g| !wanted.contains(g)) {
        let procs = root.procs(&group)?.len();
        let populated = populated(root, &group)?;
        if procs > 0 && opts.force {
            plan.steps.push(Step::Evacuate {
                from: group.clone(),
                procs,
            });
        } else if populated {
            plan.refusals.push(format!(
                "{group} is no longer declared but is populated ({procs} processes in it, cgroup.events populated 1); \
                 stop them, or use --prune --force to move them into {}",
                GroupName::leaf()
            ));
            continue;
        }
        plan.steps.push(Step::Remove { group });
    }
    Ok(())
}

fn populated(root: &CgroupRoot, group: &GroupName) -> Result<bool, CgroupError> {
    // A group that vanished since it was listed is an error, not "empty".
    let events = root.read_parsed(group, CgroupEvents::FILE, CgroupEvents::parse)?;
    Ok(events.is_populated())
}

/// The kernel's page size, to which memory limits are rounded.
pub fn page_size() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|p| u64::try_from(p).ok())
        .unwrap_or(4096)
}

/// What a finished apply did.
#[derive(Debug, Default)]
pub struct Report {
    /// Steps performed (writes found already satisfied are not counted).
    pub performed: usize,
}

/// How to undo one performed step.
enum Undo {
    Rmdir(GroupName),
    Restore {
        group: GroupName,
        file: &'static str,
        value: String,
    },
    Disable {
        group: GroupName,
        controller: Controller,
    },
    DisableAbove {
        ancestor: Ancestor,
        controller: Controller,
    },
}

/// Marks every declared group as managed (groups created by someone else
/// and adopted by a policy included), so `cgmgr metrics` and `--prune` know them.
pub fn mark_declared(root: &CgroupRoot, set: &PolicySet) {
    for group in set.groups_with_ancestors() {
        if root.exists(&group)
            && !root.is_managed(&group)
            && let Err(e) = root.mark_managed(&group)
        {
            eprintln!("cgmgr: warning: {e}");
        }
    }
}

/// Performs the plan's steps in order; on failure undoes what this run did.
pub fn execute(root: &CgroupRoot, plan: &Plan) -> Result<Report, ApplyError> {
    if !plan.refusals.is_empty() {
        return Err(ApplyError::Refused(plan.refusals.clone()));
    }
    let mut journal = Vec::new();
    let mut report = Report::default();
    for step in &plan.steps {
        match perform(root, step, &mut journal) {
            Ok(true) => report.performed += 1,
            Ok(false) => {}
            Err(source) => {
                let rollback = rollback(root, journal);
                return Err(ApplyError::RolledBack {
                    failure: source,
                    rollback,
                });
            }
        }
    }
    Ok(report)
}

/// Performs one step; false when it turned out to be already done.
fn perform(root: &CgroupRoot, step: &Step, journal: &mut Vec<Undo>) -> Result<bool, CgroupError> {
    match step {
        Step::Evacuate { from, .. } => {
            tree::evacuate(root, from, &GroupName::leaf())?;
            Ok(true)
        }
        Step::Enable { group, controller } => {
            if root
                .subtree_control(group)?
                .iter()
                .any(|c| c == controller.name())
            {
                return Ok(false);
            }
            tree::enable(root, group, *controller)?;
            journal.push(Undo::Disable {
                group: group.clone(),
                controller: *controller,
            });
            Ok(true)
        }
        Step::EnableAbove {
            ancestor,
            controller,
        } => {
            if ancestors::subtree_control(root, ancestor)?
                .iter()
                .any(|c| c == controller.name())
            {
                return Ok(false);
            }
            tree::enable_above(root, ancestor, *controller)?;
            journal.push(Undo::DisableAbove {
                ancestor: ancestor.clone(),
                controller: *controller,
            });
            Ok(true)
        }
        Step::Create { group } => {
            let created = root.mkdir(group)?;
            if created {
                journal.push(Undo::Rmdir(group.clone()));
            }
            if let Err(e) = root.mark_managed(group) {
                eprintln!("cgmgr: warning: {e}; `--prune` will not recognise {group} as managed");
            }
            Ok(created)
        }
        Step::Write {
            group,
            setting,
            new,
            ..
        } => {
            let file = setting.file();
            let current = root.read(group, file)?;
            let page = page_size();
            if setting.is_satisfied_by(&current, page).unwrap_or(false) {
                return Ok(false);
            }
            let restore = setting
                .restore_value(&current)
                .map_err(|e| CgroupError::Format {
                    path: root.display_path(group, file),
                    content: current.clone(),
                    reason: e.0,
                })?;
            root.write(group, file, new)?;
            journal.push(Undo::Restore {
                group: group.clone(),
                file,
                value: restore,
            });
            Ok(true)
        }
        Step::Remove { group } => {
            root.rmdir(group)?;
            Ok(true)
        }
    }
}

/// Undoes the journal in reverse; returns a description for the error message.
fn rollback(root: &CgroupRoot, journal: Vec<Undo>) -> String {
    let total = journal.len();
    let mut failures = Vec::new();
    for undo in journal.into_iter().rev() {
        let result = match &undo {
            Undo::Rmdir(group) => root.rmdir(group),
            Undo::Restore { group, file, value } => root.write(group, file, value),
            Undo::Disable { group, controller } => tree::disable(root, group, *controller),
            Undo::DisableAbove {
                ancestor,
                controller,
            } => tree::disable_above(root, ancestor, *controller),
        };
        if let Err(e) = result {
            failures.push(format!("  could not undo: {e}"));
        }
    }
    if failures.is_empty() {
        format!("rolled back: the {total} change(s) this run made before the failure were undone")
    } else {
        format!(
            "rollback incomplete: {} of {total} change(s) could not be undone:\n{}",
            failures.len(),
            failures.join("\n")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::parse::parse_file;

    /// A fake true root (no cgroup.type) with one existing group `web`,
    /// holding kernel-format file contents.
    fn fake_root(web_files: &[(&str, &str)]) -> (tempfile::TempDir, CgroupRoot) {
        let tmp = tempfile::tempdir().unwrap();
        for (file, text) in [
            ("cgroup.controllers", "cpuset cpu io memory pids\n"),
            ("cgroup.subtree_control", "cpuset cpu memory pids\n"),
            ("cgroup.procs", "1\n"),
        ] {
            std::fs::write(tmp.path().join(file), text).unwrap();
        }
        std::fs::create_dir(tmp.path().join("web")).unwrap();
        for (file, text) in web_files {
            std::fs::write(tmp.path().join("web").join(file), text).unwrap();
        }
        let root = CgroupRoot::open_unchecked(tmp.path());
        (tmp, root)
    }

    fn policy(text: &str) -> PolicySet {
        let mut set = PolicySet::default();
        for g in parse_file(std::path::Path::new("t.toml"), text).unwrap() {
            set.groups.insert(g.name.clone(), g);
        }
        set
    }

    #[test]
    fn equal_values_in_kernel_format_give_an_empty_plan() {
        let (_tmp, root) = fake_root(&[
            ("cgroup.subtree_control", ""),
            ("cpu.max", "max 100000\n"),
            ("cpuset.cpus", "0-1\n"),
            ("memory.max", &format!("{}\n", page_size())),
        ]);
        // "0,1" is "0-1"; memory is rounded down to the page size as the kernel does.
        let set = policy(&format!(
            "[group.web]\ncpu.max = \"max\"\ncpuset.cpus = \"1,0\"\nmemory.max = {}\n",
            page_size() + 100
        ));
        let plan = plan(&root, &set, Options::default()).unwrap();
        assert_eq!(plan.steps, Vec::new());
        assert_eq!(plan.unchanged_groups, 1);
    }

    /// A group made with mkdir before its parent enables the controller has
    /// no `io.weight` yet: the plan enables io above it and writes the value,
    /// instead of failing to read a file the kernel has not made.
    #[test]
    fn an_existing_group_gets_a_controller_its_parent_does_not_enable_yet() {
        let (_tmp, root) = fake_root(&[("cgroup.subtree_control", "")]);
        let set = policy("[group.web]\nio.weight = 100\n");
        let plan = plan(&root, &set, Options::default()).unwrap();
        let web = GroupName::parse("web").unwrap();
        assert!(
            matches!(
                &plan.steps[..],
                [
                    Step::Enable { group: g, controller: Controller::Io },
                    Step::Write { group: w, old: None, .. },
                ] if g.is_root() && *w == web
            ),
            "{:?}",
            plan.steps
        );
    }

    #[test]
    fn lowering_memory_max_under_usage_is_refused_unless_forced() {
        let files = [
            ("cgroup.subtree_control", ""),
            ("memory.max", "max\n"),
            ("memory.current", "52428800\n"),
        ];
        let (_tmp, root) = fake_root(&files);
        let set = policy("[group.web]\nmemory.max = \"10M\"\n");
        let refused = plan(&root, &set, Options::default()).unwrap();
        assert_eq!(refused.refusals.len(), 1, "{:?}", refused.refusals);
        assert!(
            refused.refusals[0].contains(
                "memory.current is 50 MiB (52428800), above the new memory.max of 10 MiB"
            ),
            "{:?}",
            refused.refusals
        );
        assert!(matches!(
            execute(&root, &refused),
            Err(ApplyError::Refused(_))
        ));
        assert_eq!(
            std::fs::read_to_string(root.path().join("web/memory.max")).unwrap(),
            "max\n",
            "nothing written"
        );
        let forced = plan(
            &root,
            &set,
            Options {
                force: true,
                prune: false,
            },
        )
        .unwrap();
        assert!(forced.refusals.is_empty());
        execute(&root, &forced).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.path().join("web/memory.max")).unwrap(),
            "10485760"
        );
    }

    #[test]
    fn a_failed_write_rolls_back_what_this_run_wrote() {
        let (tmp, root) = fake_root(&[
            ("cgroup.subtree_control", ""),
            ("pids.max", "max\n"),
            ("memory.max", "max\n"),
        ]);
        // memory.max is written after pids.max; making it a directory makes the write fail.
        std::fs::remove_file(tmp.path().join("web/memory.max")).unwrap();
        std::fs::create_dir(tmp.path().join("web/memory.max")).unwrap();
        std::fs::write(tmp.path().join("web/memory.max/.keep"), "").unwrap();
        let set = policy("[group.web]\npids.max = 5\nmemory.max = \"64M\"\n");
        let steps = vec![
            Step::Write {
                group: GroupName::parse("web").unwrap(),
                setting: set.groups.values().next().unwrap().settings[1].clone(),
                old: None,
                new: "5".into(),
                risk: None,
            },
            Step::Write {
                group: GroupName::parse("web").unwrap(),
                setting: set.groups.values().next().unwrap().settings[0].clone(),
                old: None,
                new: "67108864".into(),
                risk: None,
            },
        ];
        let e = execute(
            &root,
            &Plan {
                steps,
                ..Plan::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("web/memory.max") && e.contains("rolled back: the 1 change(s)"),
            "{e}"
        );
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("web/pids.max")).unwrap(),
            "max",
            "pids.max put back"
        );
    }
}
