//! Errors of cgroup access: each names the file, the value and the errno.

use std::path::PathBuf;

use nix::errno::Errno;

/// A failure to read, write or change a cgroup.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// The managed root could not be opened.
    #[error("cannot open the managed root {path}: {errno}")]
    OpenRoot {
        /// The root path.
        path: PathBuf,
        /// Why.
        errno: Errno,
    },
    /// The managed root is not on a cgroup2 filesystem.
    #[error(
        "{path} is not a cgroup v2 filesystem (statfs type {fs_type:#x}, expected cgroup2 {expected:#x}).\n  \
         hint: point --root at a directory of the cgroup2 mount (see `grep cgroup2 /proc/self/mountinfo`); \
         on a hybrid-mode host that is /sys/fs/cgroup/unified"
    )]
    NotCgroup2 {
        /// The root path.
        path: PathBuf,
        /// The filesystem type found.
        fs_type: i64,
        /// CGROUP2_SUPER_MAGIC.
        expected: i64,
    },
    /// Reading an interface file failed.
    #[error("reading {path}: {errno}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        errno: Errno,
    },
    /// Writing an interface file failed.
    #[error("writing {value:?} to {path}: {errno}{hint}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The value written.
        value: String,
        /// The kernel's answer.
        errno: Errno,
        /// Extra advice, starting with a newline, or empty.
        hint: String,
    },
    /// A file held content we could not parse.
    #[error("{path}: unexpected content {content:?}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What it held.
        content: String,
        /// Why it did not parse.
        reason: String,
    },
    /// Creating a group directory failed.
    #[error("creating group {path}: {errno}")]
    Mkdir {
        /// The group directory.
        path: PathBuf,
        /// Why.
        errno: Errno,
    },
    /// Removing a group directory failed.
    #[error("removing group {path}: {errno}")]
    Rmdir {
        /// The group directory.
        path: PathBuf,
        /// Why.
        errno: Errno,
    },
    /// Listing a group directory failed.
    #[error("listing {path}: {errno}")]
    List {
        /// The group directory.
        path: PathBuf,
        /// Why.
        errno: Errno,
    },
    /// A controller the policies need is not available to the managed root.
    #[error("{0}")]
    ControllerUnavailable(String),
    /// Processes keep appearing in a group that must be emptied.
    #[error(
        "{path}: processes kept appearing after {passes} passes of moving them to {leaf}; is something forking without end?"
    )]
    EvacuationStuck {
        /// The cgroup.procs file.
        path: PathBuf,
        /// Passes made.
        passes: u32,
        /// Where they were moved to.
        leaf: PathBuf,
    },
}
