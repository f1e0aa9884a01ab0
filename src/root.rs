//! Which managed root a command works on, and whether it may write there.
//!
//! The order: `--root PATH` (or `CGMGR_ROOT`) when given, `self` meaning the
//! cgroup cgmgr runs in; else the root of the cgmgr daemon running on this
//! host, found through its record (so `cgmgr exec --group sandbox`, `status`
//! and `metrics` reach the groups of `cgmgr.service`); else `/sys/fs/cgroup`.
//!
//! Writing is refused in two cases: the tree is systemd's and the root is not
//! delegated ([`crate::systemd::owner`]), or a running daemon manages the
//! root (its policy directory is where changes belong: it reloads them).

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::cgroup::locate::own_cgroup_dir;
use crate::runtime::record::{self, DaemonRecord};

/// The root used when neither a flag nor a running daemon names one.
pub const DEFAULT_ROOT: &str = "/sys/fs/cgroup";

/// Where the managed root came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `--root` or `CGMGR_ROOT`.
    Flag,
    /// The running daemon's record.
    Daemon(DaemonRecord),
    /// A user's own cgroup, delegated to them.
    Delegated,
    /// A user with no daemon and no delegated cgroup of their own: only
    /// their systemd manager can give one (a transient scope, for `exec`).
    UserManager,
    /// Nothing named one: [`DEFAULT_ROOT`].
    Default,
}

/// A managed root, resolved.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The cgroup directory.
    pub path: PathBuf,
    /// Where it came from.
    pub source: Source,
}

/// Why a root could not be resolved or may not be written.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    /// `--root self` could not be located.
    #[error("--root self: {0}")]
    SelfUnknown(#[from] crate::cgroup::locate::LocateError),
    /// `/proc/self/cgroup` or `/proc/self/mountinfo` could not be read.
    #[error("--root self: reading {path}: {source}")]
    SelfRead {
        /// The file.
        path: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// Reading the daemon's record failed.
    #[error("finding the running cgmgr daemon: {0}")]
    Record(#[from] record::RecordError),
    /// A daemon manages this root.
    #[error(
        "refusing to apply to {root}: the cgmgr daemon (pid {pid}) manages it with the policies in \
         {policies}. Nothing was written.\n  \
         hint: edit the files in {policies}; the daemon reloads them by itself (or on \
         `systemctl reload cgmgr`). `cgmgr apply --dry-run` shows what would change."
    )]
    DaemonManages {
        /// The refused root.
        root: PathBuf,
        /// The daemon's pid.
        pid: i32,
        /// Its policy directory.
        policies: PathBuf,
    },
    /// A user with no subtree of their own.
    #[error(
        "no cgroup subtree is delegated to uid {uid}: it runs no cgmgr daemon of its own ({record} \
         names none) and its cgroup {own} is not delegated to it. Nothing was written.\n  \
         ways forward:\n    \
         - start your own daemon: `systemctl --user start cgmgr` (its groups are then found by \
         `cgmgr exec`, `status` and `metrics`)\n    \
         - run in a delegated scope: `systemd-run --user --scope -p Delegate=yes cgmgr ...`\n    \
         - without a user manager (`systemctl --user` fails), ask the admin for `loginctl \
         enable-linger {uid}`, or for a cgroup delegated to you (its directory, cgroup.procs, \
         cgroup.subtree_control and cgroup.threads chowned to you), then pass it as --root"
    )]
    NoSubtree {
        /// The user.
        uid: u32,
        /// The record looked for.
        record: String,
        /// The user's own cgroup.
        own: String,
    },
    /// A daemon holds the root's lock but left no record (an older cgmgr,
    /// another runtime directory).
    #[error(
        "refusing to apply to {0}: a cgmgr daemon holds its lock (one writer per subtree). Nothing \
         was written.\n  hint: change that daemon's policy directory instead; it reloads by itself"
    )]
    Locked(PathBuf),
}

/// Resolves the root for a command: `flag` is `--root`/`CGMGR_ROOT`. A
/// user with no subtree of their own is refused ([`RootError::NoSubtree`]).
pub fn resolve(flag: Option<&str>) -> Result<Resolved, RootError> {
    let resolved = resolve_any(flag)?;
    if resolved.source == Source::UserManager {
        return Err(no_subtree(&resolved.path));
    }
    Ok(resolved)
}

/// [`resolve`], but a user with no subtree gets [`Source::UserManager`]
/// (their own cgroup as the path): `cgmgr exec` then asks that manager for
/// a delegated scope.
pub fn resolve_any(flag: Option<&str>) -> Result<Resolved, RootError> {
    if let Some(flag) = flag {
        return Ok(Resolved {
            path: resolve_flag(flag)?,
            source: Source::Flag,
        });
    }
    if let Some(daemon) = record::running_daemon()? {
        return Ok(Resolved {
            path: daemon.root.clone(),
            source: Source::Daemon(daemon),
        });
    }
    if nix::unistd::geteuid().is_root() {
        return Ok(Resolved {
            path: PathBuf::from(DEFAULT_ROOT),
            source: Source::Default,
        });
    }
    let own = resolve_flag("self")?;
    let source = if delegated_to_me(&own) {
        Source::Delegated
    } else {
        Source::UserManager
    };
    Ok(Resolved { path: own, source })
}

/// The refusal of a user with no subtree; `own` is their cgroup.
pub fn no_subtree(own: &Path) -> RootError {
    RootError::NoSubtree {
        uid: nix::unistd::geteuid().as_raw(),
        record: record::record_path().display().to_string(),
        own: own.display().to_string(),
    }
}

/// Whether the cgroup `dir` is delegated to this process's user the
/// kernel's way (its directory, `cgroup.procs` and `cgroup.subtree_control`
/// are theirs) and no systemd manager keeps it for itself.
fn delegated_to_me(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::geteuid().as_raw();
    let mine = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.uid() == me);
    mine(dir)
        && mine(&dir.join("cgroup.procs"))
        && mine(&dir.join("cgroup.subtree_control"))
        && crate::systemd::owner::tree_owner(dir) != crate::systemd::owner::TreeOwner::Systemd
}

/// `--root PATH`, or `self` for the cgroup this process is in.
pub fn resolve_flag(flag: &str) -> Result<PathBuf, RootError> {
    if flag != "self" {
        return Ok(PathBuf::from(flag));
    }
    let read = |path: &'static str| {
        std::fs::read_to_string(path).map_err(|source| RootError::SelfRead { path, source })
    };
    Ok(own_cgroup_dir(
        &read("/proc/self/cgroup")?,
        &read("/proc/self/mountinfo")?,
    )?)
}

/// Refuses `cgmgr apply` (not a dry run) where a running daemon manages
/// `root` or a subtree containing it.
pub fn refuse_if_daemon_manages(root: &Path) -> Result<(), RootError> {
    if let Some(daemon) = record::running_daemon()?
        && is_within(root, &daemon.root)
    {
        return Err(RootError::DaemonManages {
            root: root.to_path_buf(),
            pid: daemon.pid,
            policies: daemon.policies,
        });
    }
    if lock_is_held(root) {
        return Err(RootError::Locked(root.to_path_buf()));
    }
    Ok(())
}

/// True when `path` is `base` or below it, compared after resolving both.
fn is_within(path: &Path, base: &Path) -> bool {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    canon(path).starts_with(canon(base))
}

/// The daemon's `flock` on its root directory (one daemon per root).
fn lock_is_held(root: &Path) -> bool {
    let Ok(dir) = std::fs::File::open(root) else {
        return false;
    };
    // SAFETY: flock on a descriptor we own; no pointers. A shared lock taken
    // here is released at once by dropping the descriptor.
    let rc = unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
    rc != 0 && nix::errno::Errno::last() == nix::errno::Errno::EWOULDBLOCK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_compares_resolved_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("unit");
        std::fs::create_dir_all(base.join("sandbox")).unwrap();
        assert!(is_within(&base, &base));
        assert!(is_within(&base.join("sandbox"), &base));
        assert!(is_within(&base.join("sandbox/.."), &base));
        assert!(!is_within(tmp.path(), &base));
        std::os::unix::fs::symlink(&base, tmp.path().join("alias")).unwrap();
        assert!(is_within(&tmp.path().join("alias/sandbox"), &base));
    }

    #[test]
    fn a_flag_wins_over_everything() {
        let r = resolve(Some("/some/where")).unwrap();
        assert_eq!(r.path, PathBuf::from("/some/where"));
        assert_eq!(r.source, Source::Flag);
    }

    #[test]
    fn the_lock_of_a_running_daemon_is_seen() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(!lock_is_held(tmp.path()));
        let held = std::fs::File::open(tmp.path()).unwrap();
        // SAFETY: flock on a descriptor we own.
        assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX) }, 0);
        assert!(lock_is_held(tmp.path()));
        drop(held);
        assert!(!lock_is_held(tmp.path()));
    }
}
