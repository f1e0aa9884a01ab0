//! What a run is: the policy's `[exec]` table merged with the flags, and
//! every check that can be made before anything is created (ids in the
//! mapped range, host-root consent, the rootfs and the way to it, the
//! standard descriptors, the seccomp profile).

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::error::ExecError;
use super::idmap::IdPlan;
use super::limits::{self, RunLimits};
use super::mounts;
use super::rootfs::{self, RootSwitch};
use super::workload::{self, Workload};
use super::{report, seccomp, subids};
use crate::cgroup::GroupName;
use crate::policy::run::{Mount, Network};
use crate::policy::{ExecConfig, Namespace};

/// Namespaces used when neither the policy nor `--ns` names any.
pub const DEFAULT_NAMESPACES: [Namespace; 7] = [
    Namespace::Cgroup,
    Namespace::Mount,
    Namespace::Uts,
    Namespace::Ipc,
    Namespace::Net,
    Namespace::Pid,
    Namespace::User,
];

/// Everything `cgmgr exec` needs, resolved from the policy and the flags.
#[derive(Debug, Clone)]
pub struct ExecSpec {
    /// The group the workload is born in.
    pub group: GroupName,
    /// Namespaces to create.
    pub namespaces: BTreeSet<Namespace>,
    /// Root filesystem, if any.
    pub rootfs: Option<PathBuf>,
    /// pivot_root (default) or chroot.
    pub switch: RootSwitch,
    /// The rootfs mounted read-only (default), or writable.
    pub readonly_root: bool,
    /// Hostname in the UTS namespace.
    pub hostname: String,
    /// The command and how it runs.
    pub workload: Workload,
    /// `--report`: the run's report at its end, in this format.
    pub report: Option<report::ReportFormat>,
    /// `--report-file`: the JSON report written there at the end.
    pub report_file: Option<PathBuf>,
    /// Mounts made after `/tmp`, parents first.
    pub mounts: Vec<Mount>,
    /// The run's CPU and wall time limits.
    pub limits: RunLimits,
    /// How its user namespace maps ids; `None` without one.
    pub ids: Option<IdPlan>,
}

/// Command-line overrides of the `[exec]` policy table.
#[derive(Debug, Clone, Default)]
pub struct ExecFlags {
    /// `--rootfs`
    pub rootfs: Option<PathBuf>,
    /// `--ns`, comma-separated names or `none`
    pub ns: Option<Vec<String>>,
    /// `--hostname`
    pub hostname: Option<String>,
    /// `--env K=V`
    pub env: Vec<String>,
    /// `--chroot`
    pub chroot: bool,
    /// `--report[=json]`
    pub report: Option<report::ReportFormat>,
    /// `--report-file PATH`
    pub report_file: Option<PathBuf>,
    /// `--bind SRC:DST`, as typed.
    pub binds: Vec<String>,
    /// `--ro-bind SRC:DST`, as typed.
    pub ro_binds: Vec<String>,
    /// `--tmpfs DST[:SIZE]`, as typed.
    pub tmpfs: Vec<String>,
    /// `--network none|host`
    pub network: Option<String>,
    /// `--time-limit`, as typed.
    pub time_limit: Option<String>,
    /// `--wall-limit`, as typed.
    pub wall_limit: Option<String>,
    /// `--extra-time`, as typed.
    pub extra_time: Option<String>,
    /// `--rlimit NAME=VALUE`, as typed.
    pub rlimits: Vec<String>,
    /// The command.
    pub argv: Vec<String>,
}

impl ExecFlags {
    /// Whether a flag asks for what only a sandbox built for this run can
    /// give (mounts, a network, limits of its own): a prepared sandbox is
    /// built from the policy alone.
    pub fn shape_the_sandbox(&self) -> bool {
        !(self.binds.is_empty() && self.ro_binds.is_empty() && self.tmpfs.is_empty())
            || self.network.is_some()
            || self.time_limit.is_some()
            || self.wall_limit.is_some()
            || self.extra_time.is_some()
            || !self.rlimits.is_empty()
    }
}

impl ExecSpec {
    /// Merges the policy's `[exec]` table and the flags (flags win).
    pub fn resolve(
        group: GroupName,
        policy: Option<&ExecConfig>,
        flags: ExecFlags,
    ) -> Result<ExecSpec, ExecError> {
        let policy = policy.cloned().unwrap_or_default();
        let mut namespaces = match &flags.ns {
            Some(names) => parse_namespaces(names)?,
            None => policy
                .namespaces
                .clone()
                .unwrap_or_else(|| DEFAULT_NAMESPACES.into_iter().collect()),
        };
        match limits::network(&policy, &flags)? {
            Some(Network::Host) => namespaces.remove(&Namespace::Net),
            Some(Network::None) => namespaces.insert(Namespace::Net),
            None => false,
        };
        let mounts = mounts::resolve(&policy, &flags)?;
        let run_limits = limits::resolve(&policy, &flags)?;
        let rlimits = limits::rlimits(&policy, &flags)?;
        if let Some(r) = &flags.rootfs
            && !r.is_absolute()
        {
            return Err(ExecError::Invalid(format!(
                "--rootfs {}: must be an absolute path",
                r.display()
            )));
        }
        let rootfs = flags.rootfs.or(policy.rootfs.clone());
        if rootfs.is_none() && !mounts.is_empty() {
            return Err(ExecError::Invalid(
                "mounts need a rootfs to be made in: set `rootfs` in the policy or --rootfs".into(),
            ));
        }
        if rootfs.is_some() && !namespaces.contains(&Namespace::Mount) {
            return Err(ExecError::Invalid(
                "a rootfs needs the mount namespace: add `mount` to --ns or to the policy's namespaces".into(),
            ));
        }
        if rootfs.is_some() && !namespaces.contains(&Namespace::Pid) {
            return Err(ExecError::Invalid(
                "a rootfs needs the pid namespace too: without it the sandbox's /proc lists the \
                 host's processes, and /proc/PID/root of any of them leads out of the rootfs \
                 (with a user namespace, /proc cannot even be mounted); add `pid`"
                    .into(),
            ));
        }
        if let Some(h) = &flags.hostname {
            crate::policy::parse::check_hostname(h)
                .map_err(|e| ExecError::Invalid(format!("--hostname: {e}")))?;
        }
        let default_host = group
            .as_str()
            .rsplit('/')
            .next()
            .unwrap_or("sandbox")
            .to_string();
        let hostname = flags
            .hostname
            .or(policy.hostname.clone())
            .unwrap_or(default_host);
        let mut env = merge_env(policy.env.clone().into_iter().collect(), &flags.env)?;
        if !env.iter().any(|(k, _)| k == "PATH") {
            env.push(("PATH".into(), workload::DEFAULT_PATH.into()));
        }
        let uid = policy.uid.unwrap_or(0);
        let gid = policy.gid.unwrap_or(uid);
        let in_user_ns = namespaces.contains(&Namespace::User);
        let ids = in_user_ns.then(|| id_plan(uid, gid));
        let by_a_user = matches!(ids, Some(IdPlan::Own { .. } | IdPlan::Subordinate(_)));
        if by_a_user && rootfs.is_none() {
            return Err(ExecError::Invalid(format!(
                "group {group}: cgmgr exec run by a user needs a rootfs (`rootfs` in the [exec] \
                 table, or --rootfs DIR): the run's ids are yours, so on the host's own file \
                 system it could rewrite whatever you can, your cgroup subtree's limits \
                 included. Build one with `cgmgr rootfs build DIR --bin PATH...`"
            )));
        }
        if let Some(plan) = &ids {
            plan.check_mapped(uid, gid)
                .map_err(|e| ExecError::Invalid(format!("group {group}: {e}")))?;
        }
        if !in_user_ns && (uid == 0 || gid == 0) {
            check_host_root(&group, &policy, &namespaces, rootfs.is_some())?;
        }
        let cwd = policy.cwd.unwrap_or_else(|| PathBuf::from("/"));
        if let Some(r) = &rootfs {
            check_rootfs(r, &cwd)?;
            mounts::check_destinations(r, &mounts)?;
            // A user's sandbox mounts as the user, who reaches their own
            // directories; a root run's leased ids are nobody's.
            if matches!(ids, Some(IdPlan::Lease)) {
                check_reachable_by_others(r)?;
            }
        }
        let filters = seccomp::compile(
            policy
                .seccomp
                .as_ref()
                .unwrap_or(&crate::policy::seccomp::Seccomp::Default),
            policy.nested_userns.unwrap_or(false),
        )?;
        Ok(ExecSpec {
            group,
            namespaces,
            rootfs,
            readonly_root: policy.readonly_root.unwrap_or(true),
            report: flags.report,
            report_file: flags.report_file,
            mounts,
            limits: run_limits,
            ids,
            switch: if flags.chroot {
                RootSwitch::Chroot
            } else {
                RootSwitch::PivotRoot
            },
            hostname,
            workload: Workload {
                argv: flags.argv,
                env,
                cwd,
                uid,
                gid,
                in_user_ns,
                seccomp: filters,
                nested_userns: policy.nested_userns.unwrap_or(false),
                rlimits,
            },
        })
    }

    /// The ids inside the user namespace that build the sandbox (with
    /// every capability there): root where more than one id is mapped, the
    /// workload's own when they are the only ones.
    pub fn builder_ids(&self) -> (u32, u32) {
        self.ids
            .as_ref()
            .and_then(IdPlan::builder_ids)
            .unwrap_or((0, 0))
    }

    /// Whether the sandbox drops the supplementary groups it was started
    /// with, as root of its user namespace ([`IdPlan::allows_setgroups`]).
    pub fn drops_groups(&self) -> bool {
        self.ids.as_ref().is_some_and(IdPlan::allows_setgroups)
    }

    /// Whether the run makes namespace `ns`.
    pub fn has(&self, ns: Namespace) -> bool {
        self.namespaces.contains(&ns)
    }

    /// The `CLONE_NEW*` flags of the namespaces made at the clone.
    pub(crate) fn clone_flags(&self) -> u64 {
        let flag = |ns| match ns {
            Namespace::Mount => libc::CLONE_NEWNS,
            Namespace::Uts => libc::CLONE_NEWUTS,
            Namespace::Ipc => libc::CLONE_NEWIPC,
            Namespace::Net => libc::CLONE_NEWNET,
            Namespace::Pid => libc::CLONE_NEWPID,
            Namespace::User => libc::CLONE_NEWUSER,
            // Unshared by the child once it is in its group (see child_setup).
            Namespace::Cgroup => 0,
        };
        self.namespaces
            .iter()
            .map(|ns| u64::from(flag(*ns).cast_unsigned()))
            .fold(0, |a, b| a | b)
    }
}

/// How a run's user namespace maps ids for this caller: root leases a
/// range; a user maps their subordinate ids where `/etc/subuid` and
/// `/etc/subgid` grant some and the helpers are installed, else their own
/// ids only (saying why, when a grant is there but cannot be used).
fn id_plan(uid: u32, gid: u32) -> IdPlan {
    let euid = nix::unistd::geteuid();
    if euid.is_root() {
        return IdPlan::Lease;
    }
    match subids::lookup(euid.as_raw()) {
        subids::Lookup::Granted(sub) => IdPlan::Subordinate(sub),
        subids::Lookup::NotGranted => IdPlan::Own { uid, gid },
        subids::Lookup::Unusable(why) => {
            eprintln!("cgmgr: exec: note: {why}");
            IdPlan::Own { uid, gid }
        }
    }
}

/// `env` with each `--env K=V` of `flags` set (replacing an earlier K).
pub fn merge_env(
    mut env: Vec<(String, String)>,
    flags: &[String],
) -> Result<Vec<(String, String)>, ExecError> {
    for kv in flags {
        let Some((k, v)) = kv.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(ExecError::Invalid(format!(
                "--env {kv:?}: expected KEY=VALUE"
            )));
        };
        env.retain(|(key, _)| key != k);
        env.push((k.to_string(), v.to_string()));
    }
    Ok(env)
}

/// uid or gid 0 without a user namespace is the host's root. It is run only
/// when the policy itself says so, both ways: its own `namespaces` leave out
/// `user` (a `--ns` that drops it is no consent) and it writes `uid = 0`
/// (or `gid = 0`); and only fully contained: a rootfs, with the mount and
/// pid namespaces, so the /proc masks apply and no host process is in reach.
fn check_host_root(
    group: &GroupName,
    policy: &ExecConfig,
    namespaces: &BTreeSet<Namespace>,
    rootfs: bool,
) -> Result<(), ExecError> {
    let consent = policy
        .namespaces
        .as_ref()
        .is_some_and(|n| !n.contains(&Namespace::User))
        && (policy.uid == Some(0) || policy.gid == Some(0));
    if !consent {
        return Err(ExecError::Invalid(format!(
            "group {group}: without a user namespace, uid or gid 0 in the sandbox is root on the \
             host. Keep `user` in the namespaces (the default set has it) or set non-zero ids; to \
             accept host root, the policy itself must say so: `namespaces` without \"user\" and \
             `uid = 0` in [group.{group}.exec] (a --ns list that drops `user` is not enough)"
        )));
    }
    if !rootfs || !namespaces.contains(&Namespace::Mount) || !namespaces.contains(&Namespace::Pid) {
        return Err(ExecError::Invalid(format!(
            "group {group}: host root runs only inside a rootfs with the mount and pid namespaces \
             (so /proc's kernel knobs are read-only and no host process is in reach); add \
             `rootfs` and \"mount\", \"pid\" to the namespaces"
        )));
    }
    Ok(())
}

/// The rootfs checks that can be made before anything is created, each
/// with its own message: it exists, is a directory, is not the host's own
/// root, has real `proc`, `dev` and `tmp` directories, and holds `cwd`.
pub(crate) fn check_rootfs(
    rootfs: &std::path::Path,
    cwd: &std::path::Path,
) -> Result<(), ExecError> {
    let invalid = |why: String| {
        Err(ExecError::Invalid(format!(
            "rootfs {}: {why}",
            rootfs.display()
        )))
    };
    match std::fs::metadata(rootfs) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return invalid(
                "does not exist; build one with `cgmgr rootfs build DIR --bin ...`".into(),
            );
        }
        Err(e) => return invalid(format!("cannot be inspected: {e}")),
        Ok(m) if !m.is_dir() => return invalid("is not a directory".into()),
        Ok(_) => {}
    }
    if std::fs::canonicalize(rootfs).is_ok_and(|c| c == std::path::Path::new("/")) {
        return invalid(
            "is the host's own root: a sandbox needs a separate directory (`cgmgr rootfs build`)"
                .into(),
        );
    }
    rootfs::check(rootfs)?;
    let inside = rootfs.join(cwd.strip_prefix("/").unwrap_or(cwd));
    match std::fs::symlink_metadata(&inside) {
        // A symlink is resolved inside the new root, by the workload.
        Ok(m) if m.is_dir() || m.file_type().is_symlink() => Ok(()),
        Ok(_) => invalid(format!(
            "the working directory {} is not a directory",
            cwd.display()
        )),
        Err(_) => invalid(format!(
            "the working directory {} does not exist in it",
            cwd.display()
        )),
    }
}

/// With a user namespace, the rootfs is mounted by the run's own host
/// ids, which are nobody's on the host: every directory from `/` to the
/// rootfs, and its `proc`, `dev` and `tmp`, must let others search it, or
/// the run fails at its first mount, after its groups were made.
pub(crate) fn check_reachable_by_others(rootfs: &std::path::Path) -> Result<(), ExecError> {
    use std::os::unix::fs::PermissionsExt;
    let dirs = rootfs
        .ancestors()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .map(std::path::Path::to_path_buf)
        .chain(rootfs::REQUIRED_DIRS.iter().map(|d| rootfs.join(d)));
    for dir in dirs {
        let Ok(meta) = std::fs::metadata(&dir) else {
            continue; // check_rootfs names what is missing
        };
        if meta.permissions().mode() & 0o001 == 0 {
            return Err(ExecError::Invalid(format!(
                "rootfs {}: the sandbox's user namespace maps its root to host ids that are \
                 nobody's, and {} (mode {:o}) does not let others search it, so the sandbox \
                 cannot reach its rootfs; allow it (`chmod o+x {}`) or move the rootfs (for \
                 example under /var/lib/cgmgr/rootfs)",
                rootfs.display(),
                dir.display(),
                meta.permissions().mode() & 0o7777,
                dir.display()
            )));
        }
    }
    Ok(())
}

fn parse_namespaces(names: &[String]) -> Result<BTreeSet<Namespace>, ExecError> {
    if names.len() == 1 && names[0] == "none" {
        return Ok(BTreeSet::new());
    }
    names
        .iter()
        .map(|n| {
            Namespace::from_name(n.trim()).ok_or_else(|| {
                let all: Vec<&str> = Namespace::ALL.iter().map(|(n, _)| *n).collect();
                ExecError::Invalid(format!(
                    "--ns: unknown namespace {n:?}; namespaces are {} (or none)",
                    all.join(", ")
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str) -> GroupName {
        GroupName::parse(name).unwrap()
    }

    fn flags(argv: &[&str]) -> ExecFlags {
        ExecFlags {
            argv: argv.iter().map(|a| a.to_string()).collect(),
            ..ExecFlags::default()
        }
    }

    fn err(g: &str, policy: &ExecConfig, f: ExecFlags) -> String {
        ExecSpec::resolve(group(g), Some(policy), f)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn the_defaults_of_a_group_without_a_policy() {
        let spec = ExecSpec::resolve(group("batch/etl"), None, flags(&["true"])).unwrap();
        assert_eq!(spec.namespaces, DEFAULT_NAMESPACES.into_iter().collect());
        assert_eq!(spec.hostname, "etl", "the group's last segment");
        assert!(spec.readonly_root);
        assert_eq!(spec.switch, RootSwitch::PivotRoot);
        assert_eq!(spec.workload.uid, 0);
        assert!(spec.workload.in_user_ns);
        assert!(
            spec.workload
                .env
                .iter()
                .any(|(k, v)| k == "PATH" && v == workload::DEFAULT_PATH)
        );
    }

    #[test]
    fn flags_override_the_policy() {
        let policy = ExecConfig {
            hostname: Some("box".into()),
            env: [
                ("A".to_string(), "1".to_string()),
                ("PATH".into(), "/bin".into()),
            ]
            .into(),
            readonly_root: Some(false),
            ..ExecConfig::default()
        };
        let mut f = flags(&["true"]);
        f.hostname = Some("other".into());
        f.env = vec!["A=2".into(), "B=3".into()];
        f.ns = Some(vec!["user".into(), "uts".into()]);
        let spec = ExecSpec::resolve(group("g"), Some(&policy), f).unwrap();
        assert_eq!(spec.hostname, "other");
        assert!(!spec.readonly_root);
        assert_eq!(spec.namespaces, [Namespace::User, Namespace::Uts].into());
        let env: Vec<(&str, &str)> = spec
            .workload
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(env, [("PATH", "/bin"), ("A", "2"), ("B", "3")]);
    }

    #[test]
    fn bad_flags_are_named() {
        let none = ExecConfig::default();
        let mut f = flags(&["true"]);
        f.ns = Some(vec!["mount".into(), "bogus".into()]);
        assert!(err("g", &none, f).contains("unknown namespace \"bogus\"; namespaces are"));
        let mut f = flags(&["true"]);
        f.rootfs = Some("relative/root".into());
        assert!(err("g", &none, f).contains("--rootfs relative/root: must be an absolute path"));
        let mut f = flags(&["true"]);
        f.hostname = Some("no spaces".into());
        assert!(err("g", &none, f).contains("--hostname"));
        let mut f = flags(&["true"]);
        f.env = vec!["=x".into()];
        assert!(err("g", &none, f).contains("expected KEY=VALUE"));
    }

    #[test]
    fn ids_must_lie_in_the_mapped_range() {
        let policy = ExecConfig {
            uid: Some(super::super::idmap::RANGE),
            ..ExecConfig::default()
        };
        let e = err("g", &policy, flags(&["true"]));
        assert!(
            e.contains("uid 65536 is outside the range 0..=65535 the user namespace maps"),
            "{e}"
        );
    }

    #[test]
    fn host_root_needs_the_policy_s_own_consent_and_a_contained_root() {
        // A --ns list that drops `user` from a sandbox meant for root inside
        // a user namespace is no consent.
        let inside = ExecConfig {
            uid: Some(0),
            ..ExecConfig::default()
        };
        let mut f = flags(&["true"]);
        f.ns = Some(vec!["mount".into(), "pid".into()]);
        let e = err("g", &inside, f);
        assert!(
            e.contains("is root on the host") && e.contains("is not enough"),
            "{e}"
        );
        // The policy consents, but there is no rootfs.
        let consent = ExecConfig {
            uid: Some(0),
            namespaces: Some([Namespace::Mount, Namespace::Pid].into()),
            ..ExecConfig::default()
        };
        let e = err("g", &consent, flags(&["true"]));
        assert!(e.contains("host root runs only inside a rootfs"), "{e}");
    }

    #[test]
    fn a_rootfs_needs_the_mount_and_pid_namespaces() {
        let policy = ExecConfig {
            rootfs: Some("/nonexistent-rootfs".into()),
            namespaces: Some([Namespace::User, Namespace::Pid].into()),
            ..ExecConfig::default()
        };
        assert!(err("g", &policy, flags(&["true"])).contains("a rootfs needs the mount namespace"));
        let policy = ExecConfig {
            namespaces: Some([Namespace::User, Namespace::Mount].into()),
            ..policy
        };
        assert!(err("g", &policy, flags(&["true"])).contains("needs the pid namespace too"));
        let policy = ExecConfig {
            namespaces: None,
            ..policy
        };
        assert!(err("g", &policy, flags(&["true"])).contains("does not exist; build one"));
    }

    /// A rootfs under a directory others cannot search is refused, naming
    /// that directory; one whose every step is searchable passes.
    #[test]
    fn a_rootfs_others_cannot_reach_is_named() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("deep/rootfs");
        for d in ["proc", "dev", "tmp"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        let mode = |p: &std::path::Path, m| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        };
        mode(dir.path(), 0o755);
        mode(&dir.path().join("deep"), 0o750);
        let e = check_reachable_by_others(&rootfs).unwrap_err().to_string();
        assert!(
            e.contains(&format!("{} (mode 750)", dir.path().join("deep").display())),
            "{e}"
        );
        mode(&dir.path().join("deep"), 0o751);
        mode(&rootfs.join("tmp"), 0o700);
        let e = check_reachable_by_others(&rootfs).unwrap_err().to_string();
        assert!(e.contains("rootfs/tmp (mode 700)"), "{e}");
        mode(&rootfs.join("tmp"), 0o1777);
        check_reachable_by_others(&rootfs).unwrap();
    }

    /// The flags of real work: each bad one named with its value, before
    /// anything is created; `--network host` drops the network namespace;
    /// mounts need a rootfs.
    #[test]
    fn real_work_flags_are_checked_and_named() {
        let none = ExecConfig::default();
        let with = |edit: fn(&mut ExecFlags)| {
            let mut f = flags(&["true"]);
            edit(&mut f);
            f
        };
        type Edit = fn(&mut ExecFlags);
        let cases: [(Edit, &str); 6] = [
            (
                |f| f.tmpfs = vec!["box".into()],
                "--tmpfs box: \"box\" must be an absolute path",
            ),
            (
                |f| f.binds = vec!["/srv:/dev/x".into()],
                "--bind /srv:/dev/x: \"/dev/x\" lies on /dev",
            ),
            (
                |f| f.network = Some("bridge".into()),
                "--network bridge: use none or host",
            ),
            (
                |f| f.time_limit = Some("2".into()),
                "--time-limit 2: \"2\" has no unit",
            ),
            (
                |f| f.rlimits = vec!["files=1".into()],
                "--rlimit files=1: unknown resource limit \"files\"",
            ),
            (|f| f.tmpfs = vec!["/box".into()], "mounts need a rootfs"),
        ];
        for (edit, want) in cases {
            let e = err("g", &none, with(edit));
            assert!(e.starts_with(want), "{e}");
        }
        let host =
            ExecSpec::resolve(group("g"), None, with(|f| f.network = Some("host".into()))).unwrap();
        assert!(!host.has(Namespace::Net));
        let own = ExecSpec::resolve(group("g"), None, with(|f| f.time_limit = Some("1s".into())))
            .unwrap();
        assert!(own.has(Namespace::Net));
        assert_eq!(own.limits.time, Some(std::time::Duration::from_secs(1)));
        assert!(with(|f| f.rlimits = vec!["nofile=8".into()]).shape_the_sandbox());
        assert!(!with(|f| f.report_file = Some("/r.json".into())).shape_the_sandbox());
    }
}
