//! Finding the managed root: `--root PATH` or `--root self`.
//!
//! `self` is the cgroup cgmgr runs in (a systemd unit with `Delegate=yes`, a
//! container with a cgroup namespace). It is read from `/proc/self/cgroup`
//! (`0::/path`) and located under the cgroup2 mount found in mountinfo.

use std::path::PathBuf;

/// The directory of the cgroup described by `proc_self_cgroup`, below the
/// cgroup2 mount listed in `mountinfo`.
pub fn own_cgroup_dir(proc_self_cgroup: &str, mountinfo: &str) -> Result<PathBuf, LocateError> {
    let path = proc_self_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or(LocateError::NotInV2)?;
    if path.ends_with(" (deleted)") {
        return Err(LocateError::Removed(path.into()));
    }
    let (mount_root, mount_point) = cgroup2_mount(mountinfo).ok_or(LocateError::NoMount)?;
    // Inside a cgroup namespace the mount's root is "/" and the path is
    // relative to the namespace; otherwise strip the mount's own root.
    let relative = path
        .strip_prefix(mount_root.trim_end_matches('/'))
        .unwrap_or(path);
    let relative = relative.trim_start_matches('/');
    // A process cgmgr evacuated sits in the root's leaf group; `self` then
    // still means the managed root, never the leaf (which must stay a leaf).
    let relative = match relative.rsplit_once('/') {
        Some((parent, crate::cgroup::name::LEAF_GROUP)) => parent,
        None if relative == crate::cgroup::name::LEAF_GROUP => "",
        _ => relative,
    };
    if relative.split('/').any(|s| s == "..") {
        return Err(LocateError::Outside {
            path: path.into(),
            mount: mount_point,
        });
    }
    let dir = PathBuf::from(mount_point);
    Ok(if relative.is_empty() {
        dir
    } else {
        dir.join(relative)
    })
}

/// The first cgroup2 mount in mountinfo's text: its root within the
/// hierarchy and its mount point.
pub fn cgroup2_mount(mountinfo: &str) -> Option<(String, String)> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2").then_some(())?;
        let mut f = left.split_whitespace();
        Some((f.nth(3)?.to_string(), f.next()?.to_string()))
    })
}

/// A mountinfo path field as the path it names: the kernel writes space,
/// tab, newline and backslash as `\ooo`.
pub fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                let v = d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// True when the cgroup2 hierarchy in mountinfo's text was mounted with
/// `pids_localevents` (Linux 6.11+): `pids.events` then counts a refused
/// fork in the forking task's own cgroup, as before 6.11, although
/// `pids.events.local` exists. The option belongs to the hierarchy, so any
/// cgroup2 line of this mount namespace shows it.
pub fn pids_local_events(mountinfo: &str) -> bool {
    mountinfo.lines().any(|line| {
        let Some((_, right)) = line.split_once(" - ") else {
            return false;
        };
        let mut f = right.split_whitespace();
        f.next() == Some("cgroup2")
            && f.nth(1)
                .is_some_and(|opts| opts.split(',').any(|o| o == "pids_localevents"))
    })
}

/// Why this process's own cgroup could not be located.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocateError {
    /// No `0::` line.
    #[error(
        "/proc/self/cgroup has no cgroup v2 line (`0::/path`): this process is not in a cgroup v2 hierarchy"
    )]
    NotInV2,
    /// The cgroup is marked `(deleted)`.
    #[error("the cgroup {0} was removed")]
    Removed(String),
    /// No cgroup2 mount in mountinfo.
    #[error("no cgroup2 filesystem is mounted (see /proc/self/mountinfo)")]
    NoMount,
    /// The path leads above the mount.
    #[error("the cgroup path {path} is outside the cgroup2 mount at {mount}")]
    Outside {
        /// The path in /proc/self/cgroup.
        path: String,
        /// The mount point.
        mount: String,
    },
}

/// Whether this process is in `group` or below it. Compared by device and
/// inode, walking up from this process's own cgroup directory, never by
/// path: a root given through a symlink (or a bind mount of the hierarchy)
/// names the same directories by other paths. Read anew at each call: the
/// process may have been moved since the last one.
pub fn this_process_is_within(root: &super::CgroupRoot, group: &super::GroupName) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(target) = root
        .open_dir(group)
        .and_then(|fd| nix::sys::stat::fstat(&fd))
    else {
        return false;
    };
    let Ok(own) = own_cgroup_dir(
        &std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default(),
        &std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default(),
    ) else {
        return false;
    };
    own.ancestors().any(|dir| {
        std::fs::metadata(dir).is_ok_and(|m| m.dev() == target.st_dev && m.ino() == target.st_ino)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_fields_are_unescaped() {
        assert_eq!(unescape_mountinfo("a\\011b\\134c"), "a\tb\\c");
        assert_eq!(unescape_mountinfo("/mnt/my\\040cg"), "/mnt/my cg");
        assert_eq!(unescape_mountinfo("trailing\\04"), "trailing\\04");
    }

    /// Real lines: Debian 12's VM, and Debian 13's after
    /// `mount -o remount,pids_localevents /sys/fs/cgroup`.
    #[test]
    fn pids_localevents_is_read_from_the_cgroup2_super_options() {
        let vm61 = include_str!("../../tests/fixtures/kernel/vm-6.1.mountinfo");
        assert!(!pids_local_events(vm61));
        let local = "24 1 0:22 / / rw - tmpfs root rw,mode=755\n\
                     27 24 0:24 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw,nsdelegate,pids_localevents\n";
        assert!(pids_local_events(local));
        let elsewhere = "27 24 0:24 / /pids_localevents rw - tmpfs pids_localevents rw\n";
        assert!(
            !pids_local_events(elsewhere),
            "only the cgroup2 super options count"
        );
    }

    #[test]
    fn host_hybrid_mode() {
        let mountinfo = include_str!("../../tests/fixtures/kernel/host-6.18-hybrid.mountinfo");
        let dir = own_cgroup_dir("1:cpu:/\n0::/user.slice/x.scope\n", mountinfo).unwrap();
        assert_eq!(
            dir,
            PathBuf::from("/sys/fs/cgroup/unified/user.slice/x.scope")
        );
    }

    #[test]
    fn unified_and_namespaced() {
        let mi = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n";
        assert_eq!(
            own_cgroup_dir("0::/\n", mi).unwrap(),
            PathBuf::from("/sys/fs/cgroup")
        );
        assert_eq!(
            own_cgroup_dir("0::/system.slice/cgmgr.service\n", mi).unwrap(),
            PathBuf::from("/sys/fs/cgroup/system.slice/cgmgr.service")
        );
        let bind = "30 23 0:26 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            own_cgroup_dir("0::/docker/abc/inner\n", bind).unwrap(),
            PathBuf::from("/sys/fs/cgroup/inner")
        );
    }

    #[test]
    fn the_leaf_means_its_parent() {
        let mi = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            own_cgroup_dir("0::/cgmgr.leaf\n", mi).unwrap(),
            PathBuf::from("/sys/fs/cgroup")
        );
        assert_eq!(
            own_cgroup_dir("0::/system.slice/cgmgr.service/cgmgr.leaf\n", mi).unwrap(),
            PathBuf::from("/sys/fs/cgroup/system.slice/cgmgr.service")
        );
    }

    #[test]
    fn errors() {
        assert!(
            own_cgroup_dir("1:cpu:/\n", "")
                .unwrap_err()
                .to_string()
                .contains("no cgroup v2 line")
        );
        assert!(
            own_cgroup_dir("0::/\n", "")
                .unwrap_err()
                .to_string()
                .contains("no cgroup2 filesystem")
        );
        let mi = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert!(own_cgroup_dir("0::/../x\n", mi).is_err());
    }
}
