//! Who owns the cgroup tree, and may cgmgr write under a given root?
//!
//! On a host booted with systemd, systemd owns the cgroup tree: it writes its
//! own view back (a controller another tool enabled at the root is gone after
//! the next `systemctl daemon-reload`, and with it every limit that needed
//! it). The only cgroups another manager may write are those systemd has
//! delegated: a service or scope with `Delegate=yes`, which systemd marks with
//! the `trusted.delegate` extended attribute (`user.delegate` for delegations
//! by an unprivileged user manager). Everything below a delegated cgroup
//! belongs to whoever it was delegated to.
//!
//! Hosts without systemd (OpenRC, busybox init, a container whose cgroup
//! namespace is its own) have no such owner: any root is writable.

use std::ffi::CStr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// The marker systemd puts on the cgroup of a unit with `Delegate=yes`.
const DELEGATE_XATTRS: [&CStr; 2] = [c"trusted.delegate", c"user.delegate"];

/// The directory systemd creates at boot when it is PID 1 (what
/// `sd_booted()` checks).
const SYSTEMD_BOOTED: &str = "/run/systemd/system";

/// The manager that owns the cgroup tree a root is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeOwner {
    /// No manager claims the tree: cgmgr may write anywhere below its root.
    Nobody,
    /// systemd owns the tree and has delegated the cgroup `at` (the managed
    /// root itself or one of its ancestors).
    SystemdDelegated {
        /// The delegated cgroup.
        at: PathBuf,
    },
    /// systemd owns the tree and has not delegated the managed root.
    Systemd,
}

/// Refusal to write into a cgroup systemd owns.
#[derive(Debug, thiserror::Error)]
#[error("{}", refusal(.root, *.user))]
pub struct NotDelegated {
    /// The managed root that was refused.
    pub root: PathBuf,
    /// Refused to a user, not root: the ways forward are their manager's.
    pub user: bool,
}

impl NotDelegated {
    /// The refusal of `root` to this process's user.
    pub fn new(root: PathBuf) -> NotDelegated {
        let user = !nix::unistd::geteuid().is_root();
        NotDelegated { root, user }
    }
}

/// The refusal's text: why, then what root (or a user) can do instead.
fn refusal(root: &Path, user: bool) -> String {
    let root = root.display();
    let (whose, ways) = if user {
        (
            "to you (it is no unit of your user manager with Delegate=yes, and none of its \
             parents is)",
            "    - start your own daemon: `systemctl --user start cgmgr` (the user unit has \
             Delegate=yes; `cgmgr exec`, `status` and `metrics` find its groups by themselves)\n    \
             - point --root at a delegated cgroup: `--root self` inside a user unit with \
             Delegate=yes, or the path of such a unit's cgroup\n    \
             - run in a transient delegated scope: `systemd-run --user --scope -p Delegate=yes \
             cgmgr --root self ...`",
        )
    } else {
        (
            "(neither it nor a parent carries the trusted.delegate mark of a unit with \
             Delegate=yes)",
            "    - run the daemon, which owns a delegated subtree: `systemctl start cgmgr` (its \
             groups live under system.slice/cgmgr.service; `cgmgr exec`, `status` and `metrics` \
             find it by themselves)\n    \
             - point --root at a delegated cgroup: `--root self` inside a unit with Delegate=yes, \
             or the path of such a unit's cgroup\n    \
             - run in a transient delegated scope: `systemd-run --scope -p Delegate=yes cgmgr \
             --root self ...`",
        )
    };
    format!(
        "refusing to write under {root}: systemd manages this host's cgroup tree and has not \
         delegated {root} {whose}. systemd writes its own view back: at the next `systemctl \
         daemon-reload` the controllers cgmgr enabled, and the limits that need them, would \
         silently be gone. Nothing was written.\n  ways forward:\n{ways}"
    )
}

/// Decides whether `root` may be written, on this host.
pub fn check_writable(root: &Path) -> Result<TreeOwner, NotDelegated> {
    let owner = tree_owner(root);
    match owner {
        TreeOwner::Systemd => Err(NotDelegated::new(root.to_path_buf())),
        _ => Ok(owner),
    }
}

/// Who owns the tree `root` is in, on this host. The root is resolved
/// first (`deleg/../other` is `other`, a symlink is its target), so that
/// the ancestors walked are the real ones.
pub fn tree_owner(root: &Path) -> TreeOwner {
    if !Path::new(SYSTEMD_BOOTED).is_dir() {
        return TreeOwner::Nobody;
    }
    let resolved = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let dirs = cgroup_ancestors(&resolved);
    match delegation_boundary(&dirs, has_delegate_mark) {
        // Delegated to a user's own systemd, which manages it as PID 1
        // manages the root: not ours unless that manager delegates further,
        // which it marks on no cgroup: asked of it, for its own user.
        Some(at) if is_user_manager(&at) => delegated_by_my_manager(&dirs),
        Some(at) => TreeOwner::SystemdDelegated { at },
        None => delegated_by_my_manager(&dirs),
    }
}

/// For a user's cgmgr whose root is in a unit of their own systemd
/// manager: that unit, asked of the manager, if it has `Delegate=yes`.
fn delegated_by_my_manager(dirs: &[PathBuf]) -> TreeOwner {
    let uid = nix::unistd::geteuid().as_raw();
    if uid == 0 {
        return TreeOwner::Systemd;
    }
    let Some((unit, at)) = unit_below_user_manager(dirs, uid) else {
        return TreeOwner::Systemd;
    };
    let delegates = super::dbus::connect_user_manager()
        .ok()
        .and_then(|mut conn| super::dbus::unit_delegates(&mut conn, &unit).ok());
    match delegates {
        Some(true) => TreeOwner::SystemdDelegated { at },
        _ => TreeOwner::Systemd,
    }
}

/// The unit (a `.service` or `.scope`, slices are never delegated) just
/// below `user@UID.service` on the way to the root, and its cgroup: `dirs`
/// is the root first, then its ancestors.
pub fn unit_below_user_manager(dirs: &[PathBuf], uid: u32) -> Option<(String, PathBuf)> {
    let manager = format!("user@{uid}.service");
    let at = dirs
        .iter()
        .position(|d| d.file_name().is_some_and(|n| n == manager.as_str()))?;
    dirs[..at].iter().rev().find_map(|d| {
        let name = d.file_name()?.to_str()?;
        (name.ends_with(".service") || name.ends_with(".scope"))
            .then(|| (name.to_string(), d.clone()))
    })
}

/// `user@UID.service`: the cgroup of a user's systemd instance.
fn is_user_manager(dir: &Path) -> bool {
    dir.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("user@") && n.ends_with(".service"))
}

/// The nearest of `dirs` (the root first, then its ancestors) that carries
/// a delegation mark.
pub fn delegation_boundary(dirs: &[PathBuf], marked: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    dirs.iter().find(|d| marked(d)).cloned()
}

/// `root` and its ancestors on the same cgroup2 filesystem, the mount point
/// excluded (the hierarchy's root is never delegated).
fn cgroup_ancestors(root: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let Ok(device) = std::fs::metadata(root).map(|m| m.dev()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut dir = root.to_path_buf();
    while let Some(parent) = dir.parent() {
        if std::fs::metadata(parent).map(|m| m.dev()).ok() != Some(device) {
            break;
        }
        out.push(dir.clone());
        dir = parent.to_path_buf();
    }
    out
}

/// True when the directory carries `trusted.delegate=1` or `user.delegate=1`.
fn has_delegate_mark(dir: &Path) -> bool {
    let Ok(file) = std::fs::File::open(dir) else {
        return false;
    };
    DELEGATE_XATTRS.iter().any(|name| {
        let mut buf = [0u8; 8];
        crate::cgroup::fs::read_xattr(file.as_fd(), name, &mut buf)
            .is_some_and(|n| is_true(&buf[..n.min(buf.len())]))
    })
}

/// systemd writes "1"; be liberal in what counts as set.
fn is_true(value: &[u8]) -> bool {
    matches!(value, b"1" | b"1\n" | b"yes" | b"true")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_marked_ancestor_is_the_boundary() {
        let dirs: Vec<PathBuf> = [
            "/sys/fs/cgroup/system.slice/cgmgr.service/sandbox",
            "/sys/fs/cgroup/system.slice/cgmgr.service",
            "/sys/fs/cgroup/system.slice",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        let marked = |p: &Path| p.ends_with("cgmgr.service");
        assert_eq!(
            delegation_boundary(&dirs, marked),
            Some(PathBuf::from("/sys/fs/cgroup/system.slice/cgmgr.service"))
        );
        assert_eq!(delegation_boundary(&dirs[2..], marked), None);
    }

    #[test]
    fn the_unit_below_a_users_manager_is_the_one_asked() {
        let m = "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service";
        let dirs = |root: &str| -> Vec<PathBuf> {
            let mut out = Vec::new();
            let mut p = PathBuf::from(root);
            while p != Path::new("/sys/fs/cgroup") {
                out.push(p.clone());
                p = p.parent().unwrap().to_path_buf();
            }
            out
        };
        let unit = |root: &str, uid| unit_below_user_manager(&dirs(root), uid);
        let svc = format!("{m}/app.slice/cgmgr.service");
        assert_eq!(
            unit(&svc, 1000),
            Some(("cgmgr.service".into(), PathBuf::from(&svc)))
        );
        assert_eq!(
            unit(&format!("{svc}/box/cgmgr.run.7"), 1000),
            Some(("cgmgr.service".into(), PathBuf::from(&svc))),
            "below the unit: the unit is the one that delegates"
        );
        let scope = format!("{m}/app.slice/cgmgr-exec-solo-42.scope");
        assert_eq!(unit(&scope, 1000).unwrap().0, "cgmgr-exec-solo-42.scope");
        assert_eq!(unit(&format!("{m}/app.slice"), 1000), None, "a slice");
        assert_eq!(unit(&svc, 1001), None, "another user's manager");
        assert_eq!(
            unit("/sys/fs/cgroup/system.slice/cgmgr.service", 1000),
            None
        );
    }

    #[test]
    fn a_user_managers_cgroup_is_not_delegated_to_cgmgr() {
        assert!(is_user_manager(Path::new(
            "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service"
        )));
        assert!(!is_user_manager(Path::new(
            "/sys/fs/cgroup/system.slice/cgmgr.service"
        )));
    }

    #[test]
    fn ancestors_stop_at_the_filesystem_boundary() {
        let tmp = tempfile::tempdir().unwrap();
        let deep = tmp.path().join("a/b");
        std::fs::create_dir_all(&deep).unwrap();
        let dirs = cgroup_ancestors(&deep);
        assert_eq!(dirs[0], deep);
        assert_eq!(dirs[1], tmp.path().join("a"));
        assert!(
            dirs.iter().all(|d| d.starts_with("/")),
            "absolute paths only"
        );
    }

    #[test]
    fn a_user_delegate_mark_is_read_back() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("unit");
        std::fs::create_dir(&dir).unwrap();
        assert!(!has_delegate_mark(&dir));
        use std::os::fd::AsRawFd;
        let f = std::fs::File::open(&dir).unwrap();
        // SAFETY: valid descriptor, NUL-terminated name, 1-byte live value.
        let rc = unsafe {
            libc::fsetxattr(
                f.as_raw_fd(),
                c"user.delegate".as_ptr(),
                c"1".as_ptr().cast(),
                1,
                0,
            )
        };
        assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
        assert!(has_delegate_mark(&dir));
    }

    #[test]
    fn the_refusal_names_the_root_and_the_ways_forward() {
        let e = NotDelegated {
            root: PathBuf::from("/sys/fs/cgroup"),
            user: false,
        }
        .to_string();
        for needle in [
            "/sys/fs/cgroup",
            "daemon-reload",
            "Nothing was written",
            "systemctl start cgmgr",
            "--root self",
            "systemd-run --scope -p Delegate=yes",
        ] {
            assert!(e.contains(needle), "{needle}: {e}");
        }
    }

    #[test]
    fn a_user_is_shown_their_own_managers_ways() {
        let e = NotDelegated {
            root: PathBuf::from("/sys/fs/cgroup/user.slice/user-1000.slice/session-3.scope"),
            user: true,
        }
        .to_string();
        for needle in [
            "has not delegated /sys/fs/cgroup/user.slice/user-1000.slice/session-3.scope to you",
            "systemctl --user start cgmgr",
            "systemd-run --user --scope -p Delegate=yes",
        ] {
            assert!(e.contains(needle), "{needle}: {e}");
        }
        for root_only in ["systemctl start", "system.slice", "trusted.delegate"] {
            assert!(!e.contains(root_only), "{root_only}: {e}");
        }
    }
}
