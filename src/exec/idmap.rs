//! User namespace id maps, written by the parent (real root) for the child.
//!
//! Root inside maps to an unprivileged range outside, as with subordinate
//! ids (`/etc/subuid`): inside ids 0..65536 are outside BASE..BASE+65536,
//! so nothing the workload does as "root" is root on the host.
//!
//! Each run holds a range of its own while it lives, so two sandboxes
//! never share host ids: not their files, not the kernel's per-user counts
//! (inotify instances, user namespaces) that are charged to the host id
//! owning a user namespace. A range is leased by an exclusive `flock` on
//! `/run/cgmgr-ids/SLOT.lock`, held by `cgmgr exec` for the run's life; the
//! kernel drops the lock when the process ends, however it ends (its init
//! dies with it, through the parent-death signal), so no lease outlives its
//! run and nothing needs cleaning up.

use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::unistd::Pid;

use super::error::ExecError;

/// The host id of slot 0's inside root. Inside systemd's range for
/// container ids (524288..1879048191), and far above the ranges `useradd`
/// hands out in `/etc/subuid` (100000 upwards, 65536 per user): a sandbox
/// never shares ids with a user's rootless containers.
pub const FIRST_BASE: u32 = 0x6000_0000;
/// Number of ids mapped.
pub const RANGE: u32 = 65_536;
/// How many runs may hold a range at once (up to 0x6fffffff).
pub const SLOTS: u32 = 4096;

/// A range of host ids leased for one run.
#[derive(Debug)]
pub struct IdRange {
    /// The host id inside root maps to.
    pub base: u32,
    _lease: Flock<File>,
}

/// Where the leases live: `/run/cgmgr-ids` (`$CGMGR_RUNTIME_DIR/ids` when
/// that is set). Not inside `/run/cgmgr`, which systemd removes when
/// `cgmgr.service` stops (`RuntimeDirectory=`): a lock file deleted under a
/// running sandbox would let the next run take the same range.
pub fn lease_dir() -> PathBuf {
    match std::env::var_os("CGMGR_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("ids"),
        None => PathBuf::from("/run/cgmgr-ids"),
    }
}

/// Leases the first free range.
pub fn lease(dir: &Path) -> Result<IdRange, ExecError> {
    let err = |what: String| move |errno: Errno| ExecError::Sys { what, errno };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io_errno(&e))
        .map_err(err(format!("creating {}", dir.display())))?;
    for slot in 0..SLOTS {
        let path = dir.join(format!("{slot}.lock"));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| io_errno(&e))
            .map_err(err(format!("opening {}", path.display())))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lease) => {
                return Ok(IdRange {
                    base: FIRST_BASE + slot * RANGE,
                    _lease: lease,
                });
            }
            Err((_, Errno::EWOULDBLOCK)) => continue,
            Err((_, errno)) => return Err(err(format!("locking {}", path.display()))(errno)),
        }
    }
    Err(ExecError::Sys {
        what: format!(
            "all {SLOTS} host id ranges are held by running sandboxes (leases in {})",
            dir.display()
        ),
        errno: Errno::EBUSY,
    })
}

fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// The content of `uid_map` and `gid_map`.
pub fn map_line(base: u32) -> String {
    format!("0 {base} {RANGE}\n")
}

/// Writes `uid_map`, `setgroups` = deny, then `gid_map` for `pid`.
pub fn write_maps(pid: Pid, base: u32) -> Result<(), ExecError> {
    write_proc(pid, "uid_map", &map_line(base))?;
    // deny: the workload can never drop a supplementary group to reach a
    // file that group is denied (and unprivileged gid_map writes need it).
    write_proc(pid, "setgroups", "deny")?;
    write_proc(pid, "gid_map", &map_line(base))
}

fn write_proc(pid: Pid, file: &str, value: &str) -> Result<(), ExecError> {
    let path = PathBuf::from(format!("/proc/{pid}/{file}"));
    std::fs::write(&path, value).map_err(|e| ExecError::IdMap {
        path,
        value: value.trim().to_string(),
        errno: io_errno(&e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_leases_get_distinct_ranges_and_a_released_one_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = lease(dir.path()).unwrap();
        let b = lease(dir.path()).unwrap();
        assert_eq!(a.base, FIRST_BASE);
        assert_eq!(b.base, FIRST_BASE + RANGE);
        drop(a);
        let c = lease(dir.path()).unwrap();
        assert_eq!(c.base, FIRST_BASE, "the released range is taken again");
        assert_eq!(map_line(b.base), "0 1610678272 65536\n");
        // The last range ends inside the container id range.
        assert!(u64::from(FIRST_BASE) + u64::from(SLOTS) * u64::from(RANGE) <= 0x7000_0000);
    }

    #[test]
    fn a_planted_symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "keep").unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("0.lock")).unwrap();
        let e = lease(dir.path()).unwrap_err().to_string();
        assert!(e.contains("0.lock"), "{e}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    }
}
