//! A cgroup named by its kernel file handle (`name_to_handle_at`) rather
//! than by a path: the handle is the cgroup's 64-bit id, the same in every
//! mount namespace and never reused while the system runs, so a process
//! whose `/sys/fs/cgroup` differs from the one that recorded the cgroup
//! (another mount namespace, a `--root` through a bind mount or a symlink)
//! still finds it, or learns that it is gone (`ESTALE`).

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

use nix::errno::Errno;

/// Bytes of a handle's payload: cgroup2 (kernfs) handles carry the 64-bit
/// id (`FILEID_KERNFS`).
const MAX_HANDLE: usize = 16;

/// A cgroup's file handle: its type and payload, as the kernel gave them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupHandle {
    kind: i32,
    bytes: Vec<u8>,
}

impl CgroupHandle {
    /// The handle of the directory `dir` (a cgroup's).
    pub fn of(dir: BorrowedFd<'_>) -> Result<CgroupHandle, Errno> {
        let mut raw = RawHandle::empty();
        let mut mount_id: libc::c_int = 0;
        // SAFETY: an open directory, an empty path with AT_EMPTY_PATH, a
        // live file_handle whose handle_bytes says how much room follows,
        // and a live int for the mount id.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_name_to_handle_at,
                dir.as_raw_fd(),
                c"".as_ptr(),
                std::ptr::from_mut(&mut raw),
                std::ptr::from_mut(&mut mount_id),
                libc::AT_EMPTY_PATH,
            )
        };
        Errno::result(rc)?;
        let n = usize::try_from(raw.handle_bytes).map_err(|_| Errno::EOVERFLOW)?;
        Ok(CgroupHandle {
            kind: raw.handle_type,
            bytes: raw.f_handle.get(..n).ok_or(Errno::EOVERFLOW)?.to_vec(),
        })
    }

    /// The cgroup's directory, opened through the cgroup2 hierarchy this
    /// process sees (`ESTALE`: the cgroup was removed). Needs
    /// CAP_DAC_READ_SEARCH.
    pub fn open(&self) -> Result<OwnedFd, Errno> {
        let mount = cgroup2_mount_point().ok_or(Errno::ENODEV)?;
        let mount = nix::fcntl::open(
            &mount,
            nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )?;
        let mut raw = RawHandle::empty();
        raw.handle_bytes = u32::try_from(self.bytes.len()).map_err(|_| Errno::EINVAL)?;
        raw.handle_type = self.kind;
        raw.f_handle
            .get_mut(..self.bytes.len())
            .ok_or(Errno::EINVAL)?
            .copy_from_slice(&self.bytes);
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
        // SAFETY: an open mount descriptor and a live, filled file_handle.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_open_by_handle_at,
                mount.as_raw_fd(),
                std::ptr::from_mut(&mut raw),
                flags,
            )
        };
        let fd = Errno::result(fd)?;
        let fd = i32::try_from(fd).map_err(|_| Errno::EBADF)?;
        // SAFETY: a descriptor just returned by the kernel, owned by
        // nothing else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// One word: `TYPE:HEX`.
    pub fn to_word(&self) -> String {
        let hex: String = self.bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("{}:{hex}", self.kind)
    }

    /// The inverse of [`CgroupHandle::to_word`].
    pub fn from_word(word: &str) -> Option<CgroupHandle> {
        let (kind, hex) = word.split_once(':')?;
        if hex.len() % 2 != 0 || hex.len() > 2 * MAX_HANDLE {
            return None;
        }
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        Some(CgroupHandle {
            kind: kind.parse().ok()?,
            bytes,
        })
    }
}

/// The kernel's `struct file_handle` with room for a cgroup's payload.
#[repr(C)]
struct RawHandle {
    handle_bytes: u32,
    handle_type: i32,
    f_handle: [u8; MAX_HANDLE],
}

impl RawHandle {
    fn empty() -> RawHandle {
        RawHandle {
            handle_bytes: u32::try_from(MAX_HANDLE).unwrap_or(0),
            handle_type: 0,
            f_handle: [0; MAX_HANDLE],
        }
    }
}

/// Where this process sees a cgroup2 hierarchy mounted (the first in its
/// mountinfo).
fn cgroup2_mount_point() -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    super::locate::cgroup2_mount(&mountinfo).map(|(_, point)| PathBuf::from(point))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_survives_its_word() {
        let h = CgroupHandle {
            kind: 0xfe,
            bytes: vec![0x2a, 0, 0, 0, 1, 0, 0, 0],
        };
        assert_eq!(h.to_word(), "254:2a00000001000000");
        assert_eq!(CgroupHandle::from_word(&h.to_word()), Some(h));
        assert_eq!(CgroupHandle::from_word("254:2a0"), None);
        assert_eq!(CgroupHandle::from_word("x:00"), None);
        assert_eq!(CgroupHandle::from_word("254"), None);
    }
}
