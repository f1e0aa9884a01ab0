//! The live probes of `cgmgr doctor`. None changes the host:
//! - interface files are looked for (`O_PATH`, never read or written) in
//!   groups that exist: the kernel shows `cgroup.kill`, `cgroup.freeze`,
//!   `memory.peak` and `pids.events.local` only in non-root groups, the
//!   last two only where their controller is enabled, so the managed root
//!   (when it is not the hierarchy's root) and the groups below it are
//!   searched first, then the rest of the cgroup2 mount;
//! - PSI triggers are written to a freshly opened pressure file under the
//!   managed root (never elsewhere, nor where systemd has not delegated
//!   it), which is closed at once (the trigger lives only as long as the
//!   open file);
//! - `CLONE_INTO_CGROUP` is a child cloned into the cgroup this process
//!   already runs in, which exits at once;
//! - `openat2` opens `/` as `O_PATH`; `SO_PASSRIGHTS` is set on a fresh
//!   socketpair; seccomp is asked whether an action is available.

use std::collections::VecDeque;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode as FileMode;

use super::parse::{self, CgroupMounts, Mode, ProcStatus, SeccompMode, V2Mount};
use super::{DoctorError, Footing, Report, RootState, Row, Rows, verdict};
use crate::cgroup::psi::{self, Trigger};
use crate::cgroup::{CgroupError, CgroupRoot, GroupName, format};
use crate::systemd::owner::{self, TreeOwner};

/// At most this many groups are looked at when searching for one that
/// shows a file (a host with thousands of units needs no more).
const SEARCH_LIMIT: usize = 256;

/// Probes this host for the managed root `root`.
pub fn report(root: &Path) -> Result<Report, DoctorError> {
    let read = |path: &'static str| {
        std::fs::read_to_string(path).map_err(|source| DoctorError::Read { path, source })
    };
    let mounts = parse::mountinfo(&read("/proc/self/mountinfo")?)?;
    let subsystems = std::fs::read_to_string("/proc/cgroups")
        .map_err(|e| format!("/proc/cgroups: {e}"))
        .and_then(|t| parse::proc_cgroups(&t).map_err(|e| e.to_string()));
    let status = parse::proc_status(&read("/proc/self/status")?)?;
    let own_cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();

    let managed = CgroupRoot::open(root);
    let hierarchy = mounts
        .v2
        .as_ref()
        .and_then(|m| CgroupRoot::open(&m.point).ok());
    // Where non-root groups are looked for: below the managed root first.
    let mut search: Vec<&CgroupRoot> = Vec::new();
    search.extend(managed.as_ref().ok());
    search.extend(hierarchy.as_ref());
    let groups = Groups::new(&search);

    let (footing, cgroup2) = cgroup2_row(root, &mounts, &subsystems, &managed, hierarchy.as_ref());
    let (psi_row, triggers_row) = psi_rows(
        &managed,
        &groups,
        hierarchy.as_ref(),
        &status,
        &footing.owner,
    );
    let rows = Rows {
        cgroup2,
        cgroup_kill: file_row(&groups, None, "cgroup.kill", KILL_FALLBACK),
        cgroup_freeze: file_row(&groups, None, "cgroup.freeze", FREEZE_FALLBACK),
        memory_peak: file_row(&groups, Some("memory"), "memory.peak", PEAK_FALLBACK),
        pids_events_local: file_row(
            &groups,
            Some("pids"),
            "pids.events.local",
            PIDS_LOCAL_FALLBACK,
        ),
        psi: psi_row,
        psi_triggers: triggers_row,
        clone_into_cgroup: clone_row(mounts.v2.as_ref(), &own_cgroup),
        openat2: openat2_row(&status),
        user_namespaces: user_namespaces_row(),
        seccomp: seccomp_row(&status),
        so_passrights: so_passrights_row(),
        systemd: systemd_row(root, &footing.owner),
    };
    Ok(Report {
        features: rows.features(),
        verdict: verdict(&footing),
    })
}

/// Non-root groups to look in, each with the root it was found under:
/// the managed root itself when it is not the hierarchy's root, then the
/// groups below it breadth-first, then those of the whole mount.
struct Groups<'a> {
    found: Vec<(&'a CgroupRoot, GroupName)>,
}

impl<'a> Groups<'a> {
    fn new(roots: &[&'a CgroupRoot]) -> Groups<'a> {
        let mut found = Vec::new();
        for root in roots {
            let mut queue = VecDeque::from([GroupName::root()]);
            while let Some(group) = queue.pop_front() {
                if found.len() >= SEARCH_LIMIT {
                    break;
                }
                if !group.is_root() || !root.is_hierarchy_root() {
                    found.push((*root, group.clone()));
                }
                queue.extend(root.children(&group).unwrap_or_default());
            }
        }
        Groups { found }
    }

    /// The first group that has `controller` enabled (any group for `None`).
    fn with(&self, controller: Option<&str>) -> Option<&(&'a CgroupRoot, GroupName)> {
        self.found.iter().find(|(root, group)| match controller {
            None => true,
            Some(c) => root
                .controllers(group)
                .is_ok_and(|cs| cs.iter().any(|x| x == c)),
        })
    }
}

/// A row for an interface file the kernel shows in non-root groups (with
/// `controller` enabled, for a controller's file).
fn file_row(groups: &Groups<'_>, controller: Option<&str>, file: &str, fallback: &str) -> Row {
    let Some((root, group)) = groups.with(controller) else {
        let missing = match controller {
            None => format!(
                "not seen: there is no group other than the hierarchy's root to look in (the kernel shows {file} only in non-root groups)"
            ),
            Some(c) => format!(
                "not seen: no group has the {c} controller enabled (its parent's cgroup.subtree_control), and {file} is one of its files"
            ),
        };
        return Row::new(false, missing, fallback);
    };
    let dir = root.group_path(group);
    let with = controller
        .map(|c| format!(", which has the {c} controller"))
        .unwrap_or_default();
    match root.has_file(group, file) {
        Ok(true) => Row::new(true, format!("seen in {}", dir.display()), fallback),
        Ok(false) => Row::new(
            false,
            format!(
                "absent from {}{with}: this kernel has no {file}",
                dir.display()
            ),
            fallback,
        ),
        Err(errno) => Row::new(
            false,
            format!("could not look in {}: {errno}", dir.display()),
            fallback,
        ),
    }
}

/// The cgroup2 row, and what the verdict stands on.
fn cgroup2_row(
    root: &Path,
    mounts: &CgroupMounts,
    subsystems: &Result<Vec<parse::Subsystem>, String>,
    managed: &Result<CgroupRoot, CgroupError>,
    hierarchy: Option<&CgroupRoot>,
) -> (Footing, Row) {
    let mode = mounts.mode();
    let v1_bound: Vec<(String, u32, Option<PathBuf>)> = match subsystems {
        Ok(s) => parse::bound_to_v1(s)
            .into_iter()
            .map(|(name, id)| (name.to_string(), id, mounts.v1_point(name).cloned()))
            .collect(),
        Err(_) => Vec::new(),
    };
    let words = |r: Result<Vec<String>, CgroupError>| match r {
        Ok(w) if w.is_empty() => "none".to_string(),
        Ok(w) => w.join(" "),
        Err(e) => format!("unreadable ({e})"),
    };
    let top = GroupName::root();
    let (root_state, controllers, root_text) = match managed {
        Ok(r) => {
            let writable = writable(root);
            let controllers = r.controllers(&top).unwrap_or_default();
            let text = format!(
                "managed root {}: cgroup.controllers {}, enabled for its children (cgroup.subtree_control) {}, {}",
                root.display(),
                words(r.controllers(&top)),
                words(r.subtree_control(&top)),
                if writable {
                    "writable".to_string()
                } else {
                    format!("not writable by uid {}", nix::unistd::geteuid())
                }
            );
            (RootState::Cgroup2 { writable }, controllers, text)
        }
        Err(e) => {
            let why = unusable(e);
            let offers = hierarchy
                .map(|h| format!("; the mount's root offers {}", words(h.controllers(&top))))
                .unwrap_or_default();
            let controllers = hierarchy
                .and_then(|h| h.controllers(&top).ok())
                .unwrap_or_default();
            let text = format!(
                "managed root {}: not a cgroup2 directory ({why}){offers}",
                root.display()
            );
            (RootState::Unusable(why), controllers, text)
        }
    };
    let mut detail = match &mounts.v2 {
        Some(m) => format!(
            "{}: cgroup2 at {}; {root_text}",
            mode.name(),
            m.point.display()
        ),
        None => format!("{}: no cgroup2 mount", mode.name()),
    };
    if !v1_bound.is_empty() {
        let list: Vec<String> = v1_bound
            .iter()
            .map(|(name, id, point)| match point {
                Some(p) => format!("{name} (hierarchy {id}, {})", p.display()),
                None => format!("{name} (hierarchy {id})"),
            })
            .collect();
        detail.push_str(&format!("; bound to cgroup v1: {}", list.join(", ")));
    }
    if let Err(e) = subsystems {
        detail.push_str(&format!("; v1 bindings unknown: {e}"));
    }
    let footing = Footing {
        mode,
        v2_point: mounts.v2.as_ref().map(|m| m.point.clone()),
        root: root.to_path_buf(),
        root_state,
        controllers,
        v1_bound,
        owner: owner::tree_owner(root),
        uid: nix::unistd::geteuid().as_raw(),
    };
    (
        footing,
        Row::new(mode != Mode::None, detail, CGROUP2_FALLBACK),
    )
}

/// Why the managed root cannot be used, in a few words.
fn unusable(e: &CgroupError) -> String {
    match e {
        CgroupError::NotCgroup2 { fs_type, .. } if *fs_type == 0x0102_1994 => "a tmpfs".into(),
        CgroupError::NotCgroup2 { fs_type, .. } => format!("filesystem type {fs_type:#x}"),
        CgroupError::OpenRoot { errno, .. } => format!("cannot open it: {errno}"),
        other => other.to_string(),
    }
}

/// Whether this process may create groups in `root` and move processes
/// into it: write access to the directory and to its `cgroup.procs`.
fn writable(root: &Path) -> bool {
    use nix::unistd::{AccessFlags, access};
    access(root, AccessFlags::W_OK).is_ok()
        && access(&root.join("cgroup.procs"), AccessFlags::W_OK).is_ok()
}

/// The psi and psi_triggers rows: the pressure files of the managed root
/// (else of a group below it, else of the mount's root), and triggers
/// armed on its `cpu.pressure` and dropped.
fn psi_rows(
    managed: &Result<CgroupRoot, CgroupError>,
    groups: &Groups<'_>,
    hierarchy: Option<&CgroupRoot>,
    status: &ProcStatus,
    owner: &TreeOwner,
) -> (Row, Row) {
    let top = GroupName::root();
    let managed = managed.as_ref().ok();
    let mut places: Vec<(&CgroupRoot, GroupName)> = Vec::new();
    places.extend(managed.map(|r| (r, top.clone())));
    places.extend(groups.with(None).map(|(r, g)| (*r, g.clone())));
    places.extend(hierarchy.map(|h| (h, top.clone())));
    // A trigger is a write: armed only under the managed root, as cgmgr
    // arms its own.
    let under_managed = |r: &CgroupRoot| managed.is_some_and(|m| std::ptr::eq(m, r));
    let proc_pressure = if Path::new("/proc/pressure/cpu").exists() {
        "/proc/pressure present"
    } else {
        "/proc/pressure absent"
    };
    let Some((root, group)) = places
        .into_iter()
        .find(|(r, g)| r.has_file(g, "cpu.pressure").unwrap_or(false))
    else {
        let none =
            format!("no cgroup shows cpu.pressure ({proc_pressure}): this kernel has no PSI");
        return (
            Row::new(false, none, PSI_FALLBACK),
            Row::new(
                false,
                "no pressure file to arm a trigger on",
                TRIGGER_FALLBACK,
            ),
        );
    };
    let dir = root.group_path(&group);
    let files: Vec<&str> = ["cpu.pressure", "memory.pressure", "io.pressure"]
        .into_iter()
        .filter(|f| root.has_file(&group, f).unwrap_or(false))
        .collect();
    let psi = match root.read_parsed(&group, "cpu.pressure", format::psi) {
        Ok(_) => Row::new(
            true,
            format!(
                "{} in {} ({proc_pressure})",
                files.join(", "),
                dir.display()
            ),
            PSI_FALLBACK,
        ),
        Err(CgroupError::Read {
            errno: Errno::EOPNOTSUPP,
            ..
        }) => Row::new(
            false,
            format!(
                "{}/cpu.pressure answers EOPNOTSUPP: PSI is disabled (booted with psi=0, or CONFIG_PSI_DEFAULT_DISABLED without psi=1)",
                dir.display()
            ),
            PSI_FALLBACK,
        ),
        Err(e) => Row::new(false, e.to_string(), PSI_FALLBACK),
    };
    if !psi.available {
        let row = Row::new(false, "PSI is not usable here", TRIGGER_FALLBACK);
        return (psi, row);
    }
    if *owner == TreeOwner::Systemd {
        let row = Row::new(
            false,
            "not probed: systemd owns the managed root and has not delegated it (cgmgr writes nothing there, a trigger included)",
            TRIGGER_FALLBACK,
        );
        return (psi, row);
    }
    if !under_managed(root) {
        let row = Row::new(
            false,
            "not probed: no pressure file under the managed root to arm a trigger on (cgmgr writes nowhere else)",
            TRIGGER_FALLBACK,
        );
        return (psi, row);
    }
    let attempt = |window_us: u64| {
        let trigger = Trigger {
            full: false,
            stall_us: window_us / 10,
            window_us,
        };
        // Armed, then closed at once: closing the file removes the trigger.
        match psi::arm(root, &group, "cpu.pressure", trigger) {
            Ok(armed) => {
                drop(armed);
                Ok(())
            }
            Err(CgroupError::Write { errno, .. } | CgroupError::Read { errno, .. }) => Err(errno),
            Err(_) => Err(Errno::EIO),
        }
    };
    let said = |r: Result<(), Errno>| match r {
        Ok(()) => "accepted".to_string(),
        Err(e) => format!("refused ({e})"),
    };
    let privileged = attempt(500_000);
    let unprivileged = attempt(2_000_000);
    let caps = if status.has_cap(parse::CAP_SYS_RESOURCE) {
        "this process holds CAP_SYS_RESOURCE"
    } else {
        "this process lacks CAP_SYS_RESOURCE, which windows that are not a multiple of 2 s need"
    };
    let triggers = Row::new(
        privileged.is_ok() || unprivileged.is_ok(),
        format!(
            "on {}/cpu.pressure: a 500 ms window (privileged) {}, a 2 s window (unprivileged) {}; {caps}",
            dir.display(),
            said(privileged),
            said(unprivileged)
        ),
        TRIGGER_FALLBACK,
    );
    (psi, triggers)
}

/// clone3 with `CLONE_INTO_CGROUP` into the cgroup this process runs in.
fn clone_row(v2: Option<&V2Mount>, proc_self_cgroup: &str) -> Row {
    let Some(mount) = v2 else {
        return Row::new(false, "no cgroup2 mount to clone into", CLONE_FALLBACK);
    };
    let dir = match parse::own_v2_cgroup(proc_self_cgroup, mount) {
        Ok(dir) => dir,
        Err(e) => return Row::new(false, format!("not probed: {e}"), CLONE_FALLBACK),
    };
    let opened = nix::fcntl::open(
        &dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        FileMode::empty(),
    );
    let result = opened.and_then(|fd| crate::exec::spawn::probe_clone_into(fd.as_fd()));
    let dir = dir.display();
    match result {
        Ok(()) => Row::new(
            true,
            format!("a child cloned into {dir} (this process's cgroup) was born there and exited"),
            CLONE_FALLBACK,
        ),
        Err(e @ (Errno::EINVAL | Errno::E2BIG)) => Row::new(
            false,
            format!(
                "clone3 into {dir} refused with {e}: this kernel does not know CLONE_INTO_CGROUP"
            ),
            CLONE_FALLBACK,
        ),
        Err(Errno::ENOSYS) => Row::new(
            false,
            "clone3 refused with ENOSYS: the kernel has no clone3, or a seccomp filter refuses it",
            CLONE_FALLBACK,
        ),
        Err(e) => Row::new(
            false,
            format!("clone3 into {dir} refused with {e}"),
            CLONE_FALLBACK,
        ),
    }
}

/// An `openat2` of `/`: ENOSYS and EPERM told apart, and whether this
/// process runs under a seccomp filter that would explain them.
fn openat2_row(status: &ProcStatus) -> Row {
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
    let result = nix::fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        FileMode::empty(),
    )
    .and_then(|root| nix::fcntl::openat2(&root, ".", how));
    let filtered = status.seccomp == Some(SeccompMode::Filter);
    let filters = match status.seccomp_filters {
        Some(n) => format!("{n} seccomp filter(s)"),
        None => "a seccomp filter".into(),
    };
    let detail = match result {
        Ok(_) => "openat2 of / with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS works".to_string(),
        Err(Errno::ENOSYS) if filtered => format!(
            "refused with ENOSYS by a seccomp filter: this process runs under {filters} (systemd 248 and later answer openat2 so under RestrictSUIDSGID= and other sandboxing options, as they cannot read its flags)"
        ),
        Err(Errno::ENOSYS) => {
            "refused with ENOSYS and no seccomp filter: this kernel has no openat2".into()
        }
        Err(Errno::EPERM) if filtered => format!(
            "refused with EPERM by a seccomp filter: this process runs under {filters} (systemd 247 answers openat2 so under RestrictSUIDSGID=)"
        ),
        Err(e) => format!("refused with {e}"),
    };
    Row::new(result.is_ok(), detail, OPENAT2_FALLBACK)
}

/// The user namespace sysctls.
fn user_namespaces_row() -> Row {
    const MAX: &str = "/proc/sys/user/max_user_namespaces";
    const CLONE: &str = "/proc/sys/kernel/unprivileged_userns_clone";
    const APPARMOR: &str = "/proc/sys/kernel/apparmor_restrict_unprivileged_userns";
    let number = |path: &'static str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|t| parse::sysctl_number(path, &t))
    };
    let max = match number(MAX) {
        None => {
            return Row::new(
                false,
                format!("{MAX} is absent: this kernel has no user namespaces"),
                USERNS_FALLBACK,
            );
        }
        Some(Err(e)) => return Row::new(false, e.to_string(), USERNS_FALLBACK),
        Some(Ok(n)) => n,
    };
    let mut detail = vec![format!("max_user_namespaces {max}")];
    let mut available = max > 0;
    if max == 0 {
        detail.push("none may be created".into());
    }
    match number(CLONE) {
        Some(Ok(0)) => {
            available = false;
            detail.push(
                "kernel.unprivileged_userns_clone 0: only privileged processes may create them"
                    .into(),
            );
        }
        Some(Ok(n)) => detail.push(format!("kernel.unprivileged_userns_clone {n}")),
        Some(Err(e)) => detail.push(e.to_string()),
        None => {}
    }
    match number(APPARMOR) {
        Some(Ok(1)) => {
            available = false;
            detail.push("kernel.apparmor_restrict_unprivileged_userns 1: AppArmor restricts unprivileged ones".into());
        }
        Some(Ok(n)) => detail.push(format!("kernel.apparmor_restrict_unprivileged_userns {n}")),
        Some(Err(e)) => detail.push(e.to_string()),
        None => {}
    }
    if available {
        detail.push("unprivileged ones allowed".into());
    }
    Row::new(available, detail.join("; "), USERNS_FALLBACK)
}

/// Whether seccomp filters can be loaded: the kernel asked whether
/// `SECCOMP_RET_ERRNO` is an available action (changes nothing).
fn seccomp_row(status: &ProcStatus) -> Row {
    let action: u32 = libc::SECCOMP_RET_ERRNO;
    // SAFETY: SECCOMP_GET_ACTION_AVAIL reads the u32 `action` points to,
    // alive for the call, and changes nothing.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_ACTION_AVAIL,
            0u32,
            std::ptr::from_ref(&action),
        )
    };
    let answer = if rc == 0 { Ok(()) } else { Err(Errno::last()) };
    let own = match (status.seccomp, status.seccomp_filters) {
        (None, _) => "/proc/self/status has no Seccomp: line".to_string(),
        (Some(SeccompMode::Disabled), _) => "this process runs under no filter".into(),
        (Some(SeccompMode::Strict), _) => "this process is in strict mode".into(),
        (Some(SeccompMode::Filter), Some(n)) => format!("this process runs under {n} filter(s)"),
        (Some(SeccompMode::Filter), None) => "this process runs under a filter".into(),
    };
    let nnp = if status.no_new_privs {
        ", no_new_privs set"
    } else {
        ""
    };
    match answer {
        Ok(()) => Row::new(
            true,
            format!("filters can be loaded (SECCOMP_RET_ERRNO available); {own}{nnp}"),
            SECCOMP_FALLBACK,
        ),
        Err(e) => Row::new(
            false,
            format!(
                "seccomp(SECCOMP_GET_ACTION_AVAIL) refused with {e}: no filter mode; {own}{nnp}"
            ),
            SECCOMP_FALLBACK,
        ),
    }
}

/// `SO_PASSRIGHTS` set on a fresh socketpair.
fn so_passrights_row() -> Row {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    let result = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .and_then(|(a, _b)| crate::exec::standby::try_set_pass_rights(a.as_fd(), true));
    match result {
        Ok(()) => Row::new(
            true,
            "setsockopt(SOL_SOCKET, SO_PASSRIGHTS) accepted on a fresh socketpair: the daemon's exec.sock refuses descriptors at the socket",
            PASSRIGHTS_FALLBACK,
        ),
        Err(Errno::ENOPROTOOPT) => Row::new(
            false,
            "setsockopt(SOL_SOCKET, SO_PASSRIGHTS) on a fresh socketpair: ENOPROTOOPT, this kernel has no such option",
            PASSRIGHTS_FALLBACK,
        ),
        Err(e) => Row::new(
            false,
            format!("setsockopt(SOL_SOCKET, SO_PASSRIGHTS) on a fresh socketpair: {e}"),
            PASSRIGHTS_FALLBACK,
        ),
    }
}

/// How long the running manager may take to say its version.
const MANAGER_REPLY: std::time::Duration = std::time::Duration::from_secs(5);

/// The version `systemctl --version` prints first (`systemd 252
/// (252.39-1~deb12u2)` gives `252.39-1~deb12u2`, else its number).
fn installed_systemd_version() -> Option<String> {
    let out = std::process::Command::new("systemctl")
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    parse::systemctl_version(&String::from_utf8_lossy(&out.stdout))
}

/// systemd as this host's manager: its version (asked of the running
/// manager over D-Bus) and whether the managed root is delegated.
fn systemd_row(root: &Path, owner: &TreeOwner) -> Row {
    if *owner == TreeOwner::Nobody {
        return Row::new(
            false,
            "not this host's manager (/run/systemd/system is absent): nothing else claims the cgroup tree",
            SYSTEMD_FALLBACK,
        );
    }
    let named = |v: &str| match parse::systemd_major(v) {
        Some(major) => format!("systemd {major} ({v}"),
        None => format!("systemd ({v}"),
    };
    let version = match crate::systemd::dbus::manager_version(MANAGER_REPLY) {
        Ok(v) => format!("{})", named(&v)),
        // The installed systemctl's own version then: PID 1's unless an
        // upgrade has not been re-executed yet.
        Err(e) => match installed_systemd_version() {
            Some(v) => format!(
                "{}, the installed systemctl's: PID 1 did not answer over D-Bus: {e})",
                named(&v)
            ),
            None => format!("systemd (version unknown: {e})"),
        },
    };
    let delegation = match owner {
        TreeOwner::SystemdDelegated { at } if at == root => {
            format!(
                "the managed root {} is delegated (trusted.delegate)",
                root.display()
            )
        }
        TreeOwner::SystemdDelegated { at } => format!(
            "the managed root {} is delegated (trusted.delegate on {})",
            root.display(),
            at.display()
        ),
        _ => format!(
            "the managed root {} is not delegated: cgmgr refuses to write there",
            root.display()
        ),
    };
    Row::new(
        true,
        format!("{version} manages this host's cgroup tree; {delegation}"),
        SYSTEMD_FALLBACK,
    )
}

const CGROUP2_FALLBACK: &str = "none: cgmgr works only through cgroup v2 and writes nothing through v1; commands that touch cgroups fail naming the root, and a controller bound to v1 is named with its hierarchy and the fix (boot with systemd.unified_cgroup_hierarchy=1)";

const KILL_FALLBACK: &str = "cgmgr kill, pressure rules with action = \"kill\" and the end of every run kill by hand: the group is frozen, each member of it and of its descendants is sent SIGKILL through a pidfd after its membership is checked again, then the group is thawed unless it was frozen before; processes of another pid namespace (listed as pid 0) cannot be reached that way, and the kill fails naming the group";

const FREEZE_FALLBACK: &str = "none: cgmgr freeze, cgmgr thaw and pressure rules with action = \"freeze\" fail naming cgroup.freeze, and so does a kill where cgroup.kill is missing too (the kill by hand freezes first)";

const PEAK_FALLBACK: &str = "the run report says \"memory peak not counted: this kernel has no memory.peak\" (--report=json: memory_peak_bytes null, kernel_lacks [\"memory.peak\"]) and an OOM kill's line leaves the peak out; nothing else reads it";

const PIDS_LOCAL_FALLBACK: &str = "cgmgr counts a refused fork where the kernel does, in the forking task's own group, and adds the counts of its cgmgr exec runs to their group: those of live run groups, and those of ended ones, carried into the group's user.cgmgr.pids_carried attribute before a run group is removed; a group's pids.max refusals (metrics, status, the daemon's event log) are then its own and its runs', and a run's report gives its own";

const PSI_FALLBACK: &str = "pressure rules cannot be armed: the daemon logs each one as not armed (with the kernel's answer and a hint: CONFIG_PSI, psi=1) and retries at every reconcile tick; nothing polls instead, and the metrics leave cgmgr_pressure_seconds_total out";

const TRIGGER_FALLBACK: &str = "a pressure rule whose trigger the kernel refuses is not armed: the daemon logs it at warning priority with the kernel's answer and retries at every reconcile tick; nothing polls instead. Without CAP_SYS_RESOURCE the kernel takes only windows that are whole multiples of 2 s (window = \"2s\", \"4s\"...)";

const CLONE_FALLBACK: &str = "cgmgr exec makes a plain clone3 instead, and the child waits on a pipe until the parent has written it into its run group's cgroup.procs: it never runs outside the group, at the cost of one migration per run; without clone3 at all (ENOSYS) cgmgr exec fails before the run (exit 125, \"clone3 needs Linux 5.3 or later\")";

const OPENAT2_FALLBACK: &str = "where openat2 is refused (ENOSYS: a kernel without it, or a seccomp filter that cannot read its flags, as systemd's from 248 on; EPERM: systemd 247's filters), every cgroup file is reached by a walk from the root's descriptor, one openat per component with O_NOFOLLOW (no symlink, no empty, . or .. component, every step on the root's mount), and exec's mount sources and destinations are opened the same way: the same guarantees";

const USERNS_FALLBACK: &str = "a run with a user namespace creates it as the run's owner id (charged to that id's quotas) where the kernel lets an unprivileged id do so, else as root; where none may be created at all (max_user_namespaces 0, a kernel without them) such a run fails before it starts (exit 125, naming max_user_namespaces and kernel.unprivileged_userns_clone); runs without \"user\" in their namespaces are unaffected";

const SECCOMP_FALLBACK: &str = "none: a run with seccomp = \"default\" or a profile fails when its filters are loaded, before its command executes; only seccomp = \"unconfined\" runs without them";

const PASSRIGHTS_FALLBACK: &str = "the daemon's exec.sock cannot refuse descriptors at the socket: it reads every request with no room for descriptors, so the kernel discards any that were sent and none is ever installed in the daemon; a prepared sandbox, the one place that takes descriptors (the caller's stdio), checks that their number is what the caller announced and refuses O_PATH descriptors and directories";

const SYSTEMD_FALLBACK: &str = "with no systemd, cgmgr is the tree's only manager: it enables the controllers its policies need above its root, top-down, and cgmgr exec makes its group directly; under systemd it writes only delegated subtrees (Delegate=yes) and asks systemd for a transient delegated scope for cgmgr exec";

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake tree in a temp dir: `a` (a non-root group with the memory
    /// controller and cgroup.kill), `b` (pids, no pids.events.local).
    fn fake_tree() -> (tempfile::TempDir, CgroupRoot) {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path();
        std::fs::write(p.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        for (dir, controllers, files) in [
            (
                "a",
                "memory\n",
                &["cgroup.kill", "memory.peak", "cgroup.type"][..],
            ),
            ("b", "pids\n", &["pids.events", "cgroup.type"]),
        ] {
            std::fs::create_dir(p.join(dir)).unwrap();
            std::fs::write(p.join(dir).join("cgroup.controllers"), controllers).unwrap();
            for f in files {
                std::fs::write(p.join(dir).join(f), "").unwrap();
            }
        }
        let root = CgroupRoot::open_unchecked(p);
        (tmp, root)
    }

    #[test]
    fn files_are_looked_for_in_groups_with_their_controller() {
        let (tmp, root) = fake_tree();
        // A fake root has no cgroup.type: it counts as the hierarchy's root.
        let groups = Groups::new(&[&root]);
        let names: Vec<&str> = groups.found.iter().map(|(_, g)| g.as_str()).collect();
        assert_eq!(
            names,
            ["a", "b"],
            "the hierarchy's root is never a candidate"
        );
        let kill = file_row(&groups, None, "cgroup.kill", KILL_FALLBACK);
        assert!(kill.available, "{kill:?}");
        assert_eq!(
            kill.detail,
            format!("seen in {}", tmp.path().join("a").display())
        );
        let peak = file_row(&groups, Some("memory"), "memory.peak", PEAK_FALLBACK);
        assert!(peak.available, "{peak:?}");
        let local = file_row(
            &groups,
            Some("pids"),
            "pids.events.local",
            PIDS_LOCAL_FALLBACK,
        );
        assert!(!local.available);
        assert_eq!(
            local.detail,
            format!(
                "absent from {}, which has the pids controller: this kernel has no pids.events.local",
                tmp.path().join("b").display()
            )
        );
        let io = file_row(&groups, Some("io"), "io.stat", "x");
        assert!(!io.available);
        assert!(
            io.detail
                .starts_with("not seen: no group has the io controller enabled"),
            "{io:?}"
        );
        assert_eq!(io.fallback, "x");
    }

    #[test]
    fn a_lone_root_has_nothing_to_look_in_unless_it_is_not_the_hierarchys() {
        let tmp = tempfile::tempdir().unwrap();
        let root = CgroupRoot::open_unchecked(tmp.path());
        let groups = Groups::new(&[&root]);
        let row = file_row(&groups, None, "cgroup.kill", KILL_FALLBACK);
        assert!(!row.available);
        assert!(
            row.detail
                .contains("no group other than the hierarchy's root"),
            "{row:?}"
        );
        // A managed root below the hierarchy's root is a group itself.
        std::fs::write(tmp.path().join("cgroup.type"), "domain\n").unwrap();
        std::fs::write(tmp.path().join("cgroup.freeze"), "0\n").unwrap();
        let groups = Groups::new(&[&root]);
        let row = file_row(&groups, None, "cgroup.freeze", FREEZE_FALLBACK);
        assert!(row.available, "{row:?}");
    }
}
