//! Preparing the tree: controllers and the no-internal-processes rule.
//!
//! In cgroup v2 a group that enables controllers for its children in
//! `cgroup.subtree_control` may not hold processes itself (except the
//! hierarchy's true root). So before enabling a controller at the managed
//! root, every process there is moved into a leaf group; then controllers are
//! enabled one per write, top-down along every path that needs them.

use std::collections::BTreeSet;
use std::fmt;
use std::thread::sleep;
use std::time::Duration;

use nix::errno::Errno;

use super::ancestors::{self, Ancestor};
use super::error::CgroupError;
use super::fs::CgroupRoot;
use super::name::GroupName;

/// A cgroup v2 controller cgmgr can configure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Controller {
    /// `cpuset.*`
    Cpuset,
    /// `cpu.*`
    Cpu,
    /// `io.*`
    Io,
    /// `memory.*`
    Memory,
    /// `pids.*`
    Pids,
}

impl Controller {
    /// The kernel's name of the controller.
    pub fn name(self) -> &'static str {
        match self {
            Controller::Cpuset => "cpuset",
            Controller::Cpu => "cpu",
            Controller::Io => "io",
            Controller::Memory => "memory",
            Controller::Pids => "pids",
        }
    }
}

impl fmt::Display for Controller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How many passes of moving processes are made before giving up.
const MAX_EVACUATION_PASSES: u32 = 1000;
/// How often a transient EINVAL on one pid is retried.
const MAX_EINVAL_RETRIES: u32 = 20;

/// The controllers of `needed` that the managed root's
/// `cgroup.controllers` does not list.
pub fn unavailable(
    root: &CgroupRoot,
    needed: &BTreeSet<Controller>,
) -> Result<BTreeSet<Controller>, CgroupError> {
    let available = root.controllers(&GroupName::root())?;
    Ok(needed
        .iter()
        .copied()
        .filter(|c| !available.iter().any(|a| a == c.name()))
        .collect())
}

/// Fails with a full explanation of each controller of `missing` (found by
/// [`unavailable`], and which nothing planned will make available).
pub fn refuse_unavailable(
    root: &CgroupRoot,
    missing: &BTreeSet<Controller>,
) -> Result<(), CgroupError> {
    if missing.is_empty() {
        return Ok(());
    }
    let available = root.controllers(&GroupName::root())?;
    let proc_cgroups = std::fs::read_to_string("/proc/cgroups").unwrap_or_default();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let euid = nix::unistd::geteuid();
    let user = (!euid.is_root()).then(|| euid.as_raw());
    let reasons: Vec<String> = missing
        .iter()
        .map(|c| {
            explain_missing(
                *c,
                &root.path().display().to_string(),
                &available,
                &proc_cgroups,
                &mountinfo,
                user,
            )
        })
        .collect();
    Err(CgroupError::ControllerUnavailable(reasons.join("\n")))
}

/// Explains why `controller` is not available at `root`: bound to a cgroup
/// v1 hierarchy (from `/proc/cgroups` and mountinfo), or not delegated —
/// to `user` (a uid) by their systemd manager, when cgmgr runs as one.
pub fn explain_missing(
    controller: Controller,
    root: &str,
    available: &[String],
    proc_cgroups: &str,
    mountinfo: &str,
    user: Option<u32>,
) -> String {
    let name = controller.name();
    let have = if available.is_empty() {
        "none".to_string()
    } else {
        available.join(" ")
    };
    let head = format!(
        "the {name} controller is not available in cgroup v2 at {root} (its cgroup.controllers lists: {have})"
    );
    let hierarchy = proc_cgroups.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some(name)).then(|| words.next()?.parse::<u32>().ok())?
    });
    match hierarchy {
        Some(id) if id != 0 => {
            let mount = v1_mount_point(name, mountinfo)
                .map(|m| format!(", mounted at {m}"))
                .unwrap_or_default();
            format!(
                "{head}:\n  it is bound to a cgroup v1 hierarchy (hierarchy {id} in /proc/cgroups{mount}), \
                 and a controller can be in only one hierarchy.\n  \
                 hint: boot with `systemd.unified_cgroup_hierarchy=1` (and without `cgroup_no_v1=`-style \
                 overrides that keep v1) so that {name} is attached to cgroup v2"
            )
        }
        _ => match user {
            Some(uid) => format!(
                "{head}:\n  it is not delegated to uid {uid}.\n  {}",
                user_hint(name)
            ),
            None => format!(
                "{head}:\n  the parent cgroup does not delegate it.\n  \
                 hint: enable it in the parent's cgroup.subtree_control (`echo +{name} > PARENT/cgroup.subtree_control`), \
                 or run cgmgr in a systemd unit with `Delegate=yes`"
            ),
        },
    }
}

/// What gives a user's subtree `controller`: systemd's user managers get
/// `memory` and `pids` (systemd 247), and `cpu` too from 252; `io` and
/// `cpuset` only with an admin's drop-in for `user@.service`.
fn user_hint(controller: &str) -> String {
    let by_version = match controller {
        "memory" | "pids" => {
            "systemd delegates it to every user manager (247 and later), so the subtree that lacks it \
             is not one systemd delegated: run in a unit or scope with `Delegate=yes` \
             (`systemd-run --user --scope -p Delegate=yes`), or under `systemctl --user start cgmgr`"
        }
        "cpu" => {
            "systemd 252 and later delegate it to user managers; systemd 247 does not, unless the \
             admin adds the drop-in below"
        }
        _ => {
            "systemd never delegates it to user managers by itself: the admin adds the drop-in below"
        }
    };
    format!(
        "{by_version}.\n  the admin's drop-in for every user (then `systemctl daemon-reload` and the \
         user logs in again, or `systemctl restart user@UID.service`):\n    \
         # /etc/systemd/system/user@.service.d/cgmgr-delegate.conf\n    \
         [Service]\n    \
         Delegate=cpu cpuset io memory pids"
    )
}

/// The mount point of the v1 hierarchy that carries `controller`, from
/// `/proc/self/mountinfo` (super options after the ` - ` separator).
pub fn v1_mount_point(controller: &str, mountinfo: &str) -> Option<String> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut right = right.split_whitespace();
        if right.next()? != "cgroup" {
            return None;
        }
        let options = right.nth(1)?;
        options
            .split(',')
            .any(|o| o == controller)
            .then(|| left.split_whitespace().nth(4).map(str::to_string))?
    })
}

/// Moves every process of `from` into `leaf` until a pass finds none.
/// Processes may fork meanwhile, hence the loop; ESRCH (the process exited)
/// is fine; EINVAL can be transient (a process mid-exit) and is retried.
/// Returns how many processes were moved.
pub fn evacuate(
    root: &CgroupRoot,
    from: &GroupName,
    leaf: &GroupName,
) -> Result<usize, CgroupError> {
    root.mkdir(leaf)?;
    let mut moved = 0;
    for _ in 0..MAX_EVACUATION_PASSES {
        let pids = root.procs(from)?;
        if pids.is_empty() {
            return Ok(moved);
        }
        for pid in pids {
            if move_pid(root, leaf, pid)? {
                moved += 1;
            }
        }
    }
    Err(CgroupError::EvacuationStuck {
        path: root.display_path(from, "cgroup.procs"),
        passes: MAX_EVACUATION_PASSES,
        leaf: root.group_path(leaf),
    })
}

/// Moves one process; false when it had already exited.
pub fn move_pid(root: &CgroupRoot, to: &GroupName, pid: i32) -> Result<bool, CgroupError> {
    let value = pid.to_string();
    let mut retries = 0;
    loop {
        match root.write_raw(to, "cgroup.procs", &value) {
            Ok(()) => return Ok(true),
            Err(Errno::ESRCH) => return Ok(false),
            Err(Errno::EINVAL) if retries < MAX_EINVAL_RETRIES => {
                retries += 1;
                sleep(Duration::from_millis(1));
            }
            Err(errno) => {
                return Err(CgroupError::Write {
                    path: root.display_path(to, "cgroup.procs"),
                    value,
                    errno,
                    hint: String::new(),
                });
            }
        }
    }
}

/// Enables `controller` in `group`'s `cgroup.subtree_control`, one write.
/// When `group` is the managed root and not the hierarchy root, processes
/// that arrived since the evacuation make the kernel answer EBUSY: they are
/// moved to the leaf and the write is retried.
pub fn enable(
    root: &CgroupRoot,
    group: &GroupName,
    controller: Controller,
) -> Result<(), CgroupError> {
    let value = format!("+{}", controller.name());
    for _ in 0..MAX_EVACUATION_PASSES {
        match root.write_raw(group, "cgroup.subtree_control", &value) {
            Ok(()) => return Ok(()),
            Err(Errno::EBUSY) if group.is_root() && !root.procs(group)?.is_empty() => {
                evacuate(root, group, &GroupName::leaf())?;
            }
            Err(errno) => {
                let hint = if errno == Errno::EBUSY {
                    format!(
                        "\n  hint: {} holds processes, and cgroup v2 allows no processes in a group whose \
                         children have controllers; move them into a child group",
                        root.group_path(group).display()
                    )
                } else {
                    String::new()
                };
                return Err(CgroupError::Write {
                    path: root.display_path(group, "cgroup.subtree_control"),
                    value,
                    errno,
                    hint,
                });
            }
        }
    }
    Err(CgroupError::EvacuationStuck {
        path: root.display_path(group, "cgroup.procs"),
        passes: MAX_EVACUATION_PASSES,
        leaf: root.group_path(&GroupName::leaf()),
    })
}

/// Every group below the root that carries cgmgr's marker (it created or
/// adopted it), parents before children; the leaf group is not one.
pub fn managed_groups(root: &CgroupRoot) -> Result<Vec<GroupName>, CgroupError> {
    let mut out = Vec::new();
    let mut stack = vec![GroupName::root()];
    while let Some(group) = stack.pop() {
        for child in root.children(&group)? {
            if child == GroupName::leaf() {
                continue;
            }
            if root.is_managed(&child) {
                out.push(child.clone());
            }
            stack.push(child);
        }
    }
    out.sort();
    Ok(out)
}

/// How often a write above the root that the kernel answers with EBUSY is
/// tried: a process passing through an ancestor (a short-lived helper that
/// a supervisor started there) makes it fail for a moment (crun#758).
const ABOVE_EBUSY_TRIES: u32 = 10;

/// Enables `controller` in an ancestor's `cgroup.subtree_control`. The
/// ancestor is not cgmgr's: its processes are never moved; a lasting EBUSY
/// is explained instead.
pub fn enable_above(
    root: &CgroupRoot,
    at: &Ancestor,
    controller: Controller,
) -> Result<(), CgroupError> {
    let value = format!("+{}", controller.name());
    let mut tries = 0;
    loop {
        tries += 1;
        match ancestors::write_subtree_control(root, at, &value) {
            Ok(()) => return Ok(()),
            Err(Errno::EBUSY) if tries < ABOVE_EBUSY_TRIES => sleep(Duration::from_millis(10)),
            Err(errno) => {
                return Err(CgroupError::Write {
                    path: at.file("cgroup.subtree_control"),
                    value,
                    errno,
                    hint: above_hint(root, at, controller, errno),
                });
            }
        }
    }
}

fn above_hint(root: &CgroupRoot, at: &Ancestor, controller: Controller, errno: Errno) -> String {
    let dir = at.path().display();
    let name = controller.name();
    match errno {
        Errno::EBUSY => {
            let held = ancestors::procs(root, at)
                .map(|n| format!(" ({n} now)"))
                .unwrap_or_default();
            format!(
                "\n  hint: {dir} is above the managed root and holds processes{held}; cgroup v2 allows no \
                 processes in a group whose children have controllers (only the hierarchy's root may). \
                 cgmgr does not move processes it does not manage: move them into a child group of {dir}, \
                 or manage a root whose ancestors hold none"
            )
        }
        Errno::EACCES | Errno::EPERM | Errno::EROFS => format!(
            "\n  hint: cgmgr may not write above its managed root here; enable it from outside \
             (`echo +{name} > {dir}/cgroup.subtree_control`) or give cgmgr a root that has {name}"
        ),
        _ => String::new(),
    }
}

/// Disables a controller in an ancestor again (used to roll back).
pub fn disable_above(
    root: &CgroupRoot,
    at: &Ancestor,
    controller: Controller,
) -> Result<(), CgroupError> {
    let value = format!("-{}", controller.name());
    ancestors::write_subtree_control(root, at, &value).map_err(|errno| CgroupError::Write {
        path: at.file("cgroup.subtree_control"),
        value,
        errno,
        hint: String::new(),
    })
}

/// Disables a controller again (used to roll back).
pub fn disable(
    root: &CgroupRoot,
    group: &GroupName,
    controller: Controller,
) -> Result<(), CgroupError> {
    root.write(
        group,
        "cgroup.subtree_control",
        &format!("-{}", controller.name()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROC_CGROUPS: &str =
        include_str!("../../tests/fixtures/kernel/host-6.18-hybrid.proc-cgroups");
    const MOUNTINFO: &str = include_str!("../../tests/fixtures/kernel/host-6.18-hybrid.mountinfo");

    #[test]
    fn explains_v1_binding_on_a_hybrid_host() {
        let msg = explain_missing(
            Controller::Memory,
            "/sys/fs/cgroup/unified",
            &["hugetlb".to_string()],
            PROC_CGROUPS,
            MOUNTINFO,
            None,
        );
        assert!(
            msg.contains("the memory controller is not available in cgroup v2"),
            "{msg}"
        );
        assert!(msg.contains("lists: hugetlb"), "{msg}");
        assert!(msg.contains("bound to a cgroup v1 hierarchy (hierarchy 4 in /proc/cgroups, mounted at /sys/fs/cgroup/memory)"), "{msg}");
        assert!(msg.contains("systemd.unified_cgroup_hierarchy=1"), "{msg}");
    }

    #[test]
    fn explains_missing_delegation() {
        let proc_cgroups = "#subsys_name\thierarchy\tnum_cgroups\tenabled\npids\t0\t5\t1\n";
        let msg = explain_missing(
            Controller::Pids,
            "/sys/fs/cgroup/x",
            &[],
            proc_cgroups,
            "",
            None,
        );
        assert!(msg.contains("lists: none"), "{msg}");
        assert!(msg.contains("does not delegate it"), "{msg}");
        assert!(
            msg.contains("echo +pids > PARENT/cgroup.subtree_control"),
            "{msg}"
        );
    }

    /// A user's subtree: what their systemd gives, per version, and the
    /// admin's drop-in for what it never gives.
    #[test]
    fn explains_what_a_users_systemd_delegates() {
        let proc_cgroups =
            "#subsys_name\thierarchy\tnum_cgroups\tenabled\nio\t0\t5\t1\ncpu\t0\t5\t1\n";
        let at =
            "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/cgmgr.service";
        let have = ["memory".to_string(), "pids".to_string()];
        let io = explain_missing(Controller::Io, at, &have, proc_cgroups, "", Some(1000));
        assert!(
            io.contains("the io controller is not available in cgroup v2"),
            "{io}"
        );
        assert!(io.contains("not delegated to uid 1000"), "{io}");
        assert!(io.contains("never delegates it to user managers"), "{io}");
        assert!(
            io.contains("/etc/systemd/system/user@.service.d/cgmgr-delegate.conf"),
            "{io}"
        );
        assert!(io.contains("Delegate=cpu cpuset io memory pids"), "{io}");
        let cpu = explain_missing(Controller::Cpu, at, &have, proc_cgroups, "", Some(1000));
        assert!(cpu.contains("systemd 252 and later delegate it"), "{cpu}");
        assert!(!cpu.contains("PARENT/cgroup.subtree_control"), "{cpu}");
    }

    #[test]
    fn finds_v1_mounts() {
        assert_eq!(
            v1_mount_point("pids", MOUNTINFO).as_deref(),
            Some("/sys/fs/cgroup/pids")
        );
        assert_eq!(
            v1_mount_point("cpu", MOUNTINFO).as_deref(),
            Some("/sys/fs/cgroup/cpu")
        );
        assert_eq!(v1_mount_point("hugetlb", MOUNTINFO), None);
    }
}
