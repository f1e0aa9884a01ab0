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
//! `/run/cgmgr-ids/SLOT.lock`, held by `cgmgr exec` until the run's group
//! has been ended (every process of the run killed); the kernel drops the
//! lock when the process ends, however it ends (its init dies with it,
//! through the parent-death signal), so nothing needs cleaning up.

use std::fs::File;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::sys::stat::Mode;
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

/// Where the leases live. A fixed place, so every `cgmgr exec` on the host
/// sees the same leases whatever its environment; not inside `/run/cgmgr`,
/// which systemd removes when `cgmgr.service` stops (`RuntimeDirectory=`):
/// a lock file deleted under a running sandbox would let the next run take
/// the same range.
pub const LEASE_DIR: &str = "/run/cgmgr-ids";

/// [`LEASE_DIR`].
pub fn lease_dir() -> PathBuf {
    PathBuf::from(LEASE_DIR)
}

/// Leases the first free range. `dir` must be a directory only its owner,
/// this process's user, can write (0700 when created here): anyone else who
/// could delete a held lock file could make two runs share a range.
pub fn lease(dir: &Path) -> Result<IdRange, ExecError> {
    let err = |what: String| move |errno: Errno| ExecError::Sys { what, errno };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io_errno(&e))
        .map_err(err(format!("creating {}", dir.display())))?;
    let dir_fd = nix::fcntl::open(
        dir,
        OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY,
        Mode::empty(),
    )
    .map_err(err(format!("opening {}", dir.display())))?;
    let st = nix::sys::stat::fstat(&dir_fd).map_err(err(format!("stat of {}", dir.display())))?;
    if st.st_uid != nix::unistd::geteuid().as_raw() || st.st_mode & 0o022 != 0 {
        return Err(ExecError::Invalid(format!(
            "{} must be a directory of uid {} that no one else can write (it is uid {}, mode {:o}): \
             it holds the leases that keep two sandboxes from sharing host ids",
            dir.display(),
            nix::unistd::geteuid(),
            st.st_uid,
            st.st_mode & 0o7777
        )));
    }
    for slot in 0..SLOTS {
        let name = format!("{slot}.lock");
        let fd = nix::fcntl::openat(
            &dir_fd,
            name.as_str(),
            OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(err(format!("opening {}", dir.join(&name).display())))?;
        match Flock::lock(File::from(fd), FlockArg::LockExclusiveNonblock) {
            Ok(lease) => {
                return Ok(IdRange {
                    base: FIRST_BASE + slot * RANGE,
                    _lease: lease,
                });
            }
            Err((_, Errno::EWOULDBLOCK)) => continue,
            Err((_, errno)) => {
                return Err(err(format!("locking {}", dir.join(&name).display()))(errno));
            }
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
    fn a_directory_others_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = lease(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("that no one else can write") && e.contains("mode 777"),
            "{e}"
        );
        assert!(!dir.path().join("0.lock").exists(), "nothing created");
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
