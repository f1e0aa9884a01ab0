//! The cgroups above the managed root, up to the root of its cgroup2 mount.
//!
//! A controller is available in a group only if its parent enables it in
//! `cgroup.subtree_control`. On a host whose tree no manager claims (OpenRC,
//! busybox init, a privileged container with a cgroup namespace of its own),
//! a managed root such as `/sys/fs/cgroup/svc` starts with nothing enabled
//! above it. As runc does, cgmgr then enables each controller the policies
//! need top-down in every ancestor, from the highest one that has it down to
//! the root's parent. On a systemd host it never does: those groups are
//! systemd's (see `crate::systemd::owner`).
//!
//! These are the only writes above the managed root, and only of
//! `+NAME` (and `-NAME` when an apply is rolled back) to
//! `cgroup.subtree_control`. Ancestors are reached by `..` from the root's
//! descriptor, each one checked to be on the root's cgroup2 mount, so no
//! path string is followed and a bind-mounted subtree stops at its mount.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;
use nix::sys::statfs::{CGROUP2_SUPER_MAGIC, fstatfs};

use super::error::CgroupError;
use super::format;
use super::fs::{CgroupRoot, mount_id, read_fd};

/// A cgroup above the managed root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ancestor {
    /// Levels above the managed root: 1 is its parent.
    depth: usize,
    /// Where it is, for messages.
    path: PathBuf,
}

impl Ancestor {
    /// Levels above the managed root: 1 is its parent.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The ancestor's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of one of its files, for messages.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

/// The ancestors of the managed root on its cgroup2 mount, parent first,
/// the mount's root last. Empty when the managed root is the mount's root.
pub fn list(root: &CgroupRoot) -> Vec<Ancestor> {
    let shown = std::fs::canonicalize(root.path()).unwrap_or_else(|_| root.path().to_path_buf());
    let mut out = Vec::new();
    for (depth, path) in shown.ancestors().enumerate().skip(1) {
        if open(root, depth).is_err() {
            break;
        }
        out.push(Ancestor {
            depth,
            path: path.to_path_buf(),
        });
    }
    out
}

/// Opens the ancestor `depth` levels up by walking `..`; `EXDEV` when the
/// walk leaves the root's cgroup2 mount.
fn open(root: &CgroupRoot, depth: usize) -> Result<OwnedFd, Errno> {
    let mount = mount_id(root.dir_fd())?;
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut dir = openat(root.dir_fd(), "..", flags, Mode::empty())?;
    for _ in 1..depth {
        dir = openat(&dir, "..", flags, Mode::empty())?;
    }
    // A descriptor opened with O_PATH serves fstatfs and statx.
    if mount_id(dir.as_fd())? != mount
        || fstatfs(&dir).map(|fs| fs.filesystem_type()) != Ok(CGROUP2_SUPER_MAGIC)
    {
        return Err(Errno::EXDEV);
    }
    Ok(dir)
}

fn open_file(root: &CgroupRoot, at: &Ancestor, file: &str, flags: OFlag) -> Result<OwnedFd, Errno> {
    let dir = open(root, at.depth)?;
    openat(
        &dir,
        file,
        flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

fn read_words(root: &CgroupRoot, at: &Ancestor, file: &str) -> Result<Vec<String>, CgroupError> {
    let read_err = |errno| CgroupError::Read {
        path: at.file(file),
        errno,
    };
    let fd = open_file(root, at, file, OFlag::O_RDONLY).map_err(read_err)?;
    Ok(format::word_list(&read_fd(&fd).map_err(read_err)?))
}

/// The ancestor's `cgroup.controllers`.
pub fn controllers(root: &CgroupRoot, at: &Ancestor) -> Result<Vec<String>, CgroupError> {
    read_words(root, at, "cgroup.controllers")
}

/// The ancestor's `cgroup.subtree_control`.
pub fn subtree_control(root: &CgroupRoot, at: &Ancestor) -> Result<Vec<String>, CgroupError> {
    read_words(root, at, "cgroup.subtree_control")
}

/// How many processes the ancestor holds itself, for the EBUSY diagnosis.
pub fn procs(root: &CgroupRoot, at: &Ancestor) -> Option<usize> {
    let fd = open_file(root, at, "cgroup.procs", OFlag::O_RDONLY).ok()?;
    Some(read_fd(&fd).ok()?.lines().count())
}

/// Writes `+NAME` or `-NAME` to the ancestor's `cgroup.subtree_control`.
pub fn write_subtree_control(root: &CgroupRoot, at: &Ancestor, value: &str) -> Result<(), Errno> {
    let valid = value
        .strip_prefix(['+', '-'])
        .is_some_and(|name| !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase()));
    if !valid {
        return Err(Errno::EINVAL);
    }
    let fd = open_file(root, at, "cgroup.subtree_control", OFlag::O_WRONLY)?;
    let written = nix::unistd::write(&fd, value.as_bytes())?;
    if written != value.len() {
        return Err(Errno::EIO);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_off_cgroupfs_has_no_ancestors() {
        // A fake tree in a temp dir: its parents are not on a cgroup2 mount,
        // so nothing above it may be listed, let alone written.
        let tmp = tempfile::tempdir().unwrap();
        let root = CgroupRoot::open_unchecked(tmp.path());
        assert_eq!(list(&root), Vec::new());
    }

    #[test]
    fn only_enable_and_disable_words_are_written() {
        let tmp = tempfile::tempdir().unwrap();
        let root = CgroupRoot::open_unchecked(tmp.path());
        let at = Ancestor {
            depth: 1,
            path: tmp.path().to_path_buf(),
        };
        for bad in ["memory", "+", "+memory\n+cpu", "+../x", "1"] {
            assert_eq!(
                write_subtree_control(&root, &at, bad),
                Err(Errno::EINVAL),
                "{bad}"
            );
        }
    }
}
