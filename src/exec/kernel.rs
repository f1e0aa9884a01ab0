//! The kernel calls that build a sandbox, behind one small trait, so that
//! the order and arguments of the privileged steps (ids, namespaces,
//! quotas, mounts and the root switch, capabilities, `no_new_privs`,
//! seccomp, `execve`) are unit-tested without root: [`Host`] makes the
//! calls; the tests' [`recorder::Recorder`] writes each one down and
//! answers as told.
//!
//! Only the steps that change the process or the mount table go through
//! here; reading a rootfs's entries and creating its `/dev` files stay
//! ordinary file operations.

use std::ffi::{CStr, CString};
use std::os::fd::OwnedFd;
use std::path::Path;

use caps::{CapSet, Capability, CapsHashSet};
use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid};

use super::error::ExecError;
use super::seccomp::Filters;

/// The privileged calls of a sandbox's construction.
pub trait Kernel {
    /// `prctl(PR_SET_PDEATHSIG, SIGKILL)`: die with the parent.
    fn set_pdeathsig(&mut self) -> Result<(), Errno>;
    /// `setresgid(gid, gid, gid)`.
    fn setresgid(&mut self, gid: u32) -> Result<(), Errno>;
    /// `setresuid(uid, uid, uid)`.
    fn setresuid(&mut self, uid: u32) -> Result<(), Errno>;
    /// `setgroups(0, NULL)`.
    fn clear_groups(&mut self) -> Result<(), Errno>;
    /// `unshare(flags)`.
    fn unshare(&mut self, flags: CloneFlags) -> Result<(), Errno>;
    /// `sethostname(name)`.
    fn sethostname(&mut self, name: &str) -> Result<(), Errno>;
    /// Writes `value` to a `/proc/sys` file.
    fn write_sysctl(&mut self, path: &str, value: &str) -> std::io::Result<()>;
    /// `keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL)`: a new anonymous session keyring.
    fn join_session_keyring(&mut self) -> Result<(), Errno>;
    /// Brings `lo` up (`SIOCGIFFLAGS`, then `SIOCSIFFLAGS` with `IFF_UP`).
    fn loopback_up(&mut self) -> Result<(), ExecError>;
    /// `prctl(PR_SET_CHILD_SUBREAPER, 1)`.
    fn set_child_subreaper(&mut self) -> Result<(), Errno>;
    /// Blocks the signals init waits for.
    fn block_signals(&mut self) -> Result<(), Errno>;
    /// Closes every descriptor from `first` up (`close_range`).
    fn close_fds_from(&mut self, first: u32) -> Result<(), Errno>;
    /// Moves `fd` to descriptor 3 (close-on-exec), closing what was there.
    fn move_to_fd3(&mut self, fd: OwnedFd) -> Result<OwnedFd, Errno>;

    /// `mount(source, target, fstype, flags, data)`.
    fn mount(
        &mut self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<(), Errno>;
    /// `mount_setattr(target, AT_RECURSIVE, {attr_set})`.
    fn mount_setattr_recursive(&mut self, target: &Path, attr_set: u64) -> Result<(), Errno>;
    /// `umount2(target, MNT_DETACH)`.
    fn detach(&mut self, target: &Path) -> Result<(), Errno>;
    /// `pivot_root(".", ".")`.
    fn pivot_root_here(&mut self) -> Result<(), Errno>;
    /// `chroot(".")`.
    fn chroot_here(&mut self) -> Result<(), Errno>;
    /// `chdir(dir)`.
    fn chdir(&mut self, dir: &Path) -> Result<(), Errno>;
    /// The text of `/proc/self/mountinfo`.
    fn mountinfo(&mut self) -> std::io::Result<String>;
    /// An `O_PATH` descriptor of `relative` below `dir`, no symlink
    /// followed on the way or at the end.
    fn open_no_symlinks(&mut self, dir: &Path, relative: &Path) -> Result<OwnedFd, Errno>;
    /// Creates `relative` below `dir` (its missing parents as directories):
    /// a directory, or an empty file when `dir_point` is false.
    fn make_mount_point(
        &mut self,
        dir: &Path,
        relative: &Path,
        dir_point: bool,
        devs: &[u64],
    ) -> Result<(), Errno>;
    /// Whether the descriptor is a directory's.
    fn is_dir(&mut self, fd: &OwnedFd) -> bool;
    /// `(st_dev, st_ino)` of the descriptor.
    fn identity(&mut self, fd: &OwnedFd) -> Option<(u64, u64)>;
    /// `fstatfs`'s `f_type` of the descriptor's file system.
    fn fs_type(&mut self, fd: &OwnedFd) -> Option<i64>;
    /// The flags of the mount at `point` that the kernel locks and a
    /// remount must repeat (`statvfs`).
    fn locked_flags(&mut self, point: &Path) -> MsFlags;

    /// Unblocks every signal and puts SIGPIPE back to its default action.
    fn reset_signals(&mut self) -> Result<(), Errno>;
    /// `setsid()`: a new session, no controlling terminal.
    fn setsid(&mut self) -> Result<(), Errno>;
    /// `umask(mode)`.
    fn umask(&mut self, mode: Mode);
    /// Clears the ambient capabilities.
    fn clear_ambient_caps(&mut self) -> Result<(), ExecError>;
    /// `prctl(PR_CAPBSET_DROP, cap)`: EINVAL past the kernel's last one.
    fn drop_bounding_cap(&mut self, cap: u8) -> Result<(), Errno>;
    /// Sets one capability set to `caps`.
    fn set_caps(&mut self, set: CapSet, caps: &[Capability]) -> Result<(), ExecError>;
    /// `prctl(PR_SET_NO_NEW_PRIVS, 1)`.
    fn set_no_new_privs(&mut self) -> Result<(), Errno>;
    /// `prlimit(0, resource, {value, value})`: soft and hard.
    fn set_rlimit(&mut self, resource: u32, value: u64) -> Result<(), Errno>;
    /// Loads the seccomp filters.
    fn load_seccomp(&mut self, filters: &Filters) -> Result<(), ExecError>;
    /// `execve(path, args, env)`; returns only on failure.
    fn execve(&mut self, path: &CStr, args: &[CString], env: &[CString]) -> Errno;
}

/// The real kernel.
pub struct Host;

impl Kernel for Host {
    fn set_pdeathsig(&mut self) -> Result<(), Errno> {
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
    }

    fn setresgid(&mut self, gid: u32) -> Result<(), Errno> {
        let gid = Gid::from_raw(gid);
        nix::unistd::setresgid(gid, gid, gid)
    }

    fn setresuid(&mut self, uid: u32) -> Result<(), Errno> {
        let uid = Uid::from_raw(uid);
        nix::unistd::setresuid(uid, uid, uid)
    }

    fn clear_groups(&mut self) -> Result<(), Errno> {
        nix::unistd::setgroups(&[])
    }

    fn unshare(&mut self, flags: CloneFlags) -> Result<(), Errno> {
        nix::sched::unshare(flags)
    }

    fn sethostname(&mut self, name: &str) -> Result<(), Errno> {
        nix::unistd::sethostname(name)
    }

    fn write_sysctl(&mut self, path: &str, value: &str) -> std::io::Result<()> {
        std::fs::write(path, value)
    }

    fn join_session_keyring(&mut self) -> Result<(), Errno> {
        const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
        // SAFETY: a NULL name asks for a new anonymous keyring; no other
        // pointer is passed.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_keyctl,
                KEYCTL_JOIN_SESSION_KEYRING,
                std::ptr::null::<libc::c_char>(),
            )
        };
        Errno::result(rc).map(drop)
    }

    fn loopback_up(&mut self) -> Result<(), ExecError> {
        loopback_up()
    }

    fn set_child_subreaper(&mut self) -> Result<(), Errno> {
        nix::sys::prctl::set_child_subreaper(true)
    }

    fn block_signals(&mut self) -> Result<(), Errno> {
        super::init::block_signals()
    }

    fn close_fds_from(&mut self, first: u32) -> Result<(), Errno> {
        // SAFETY: close_range takes two integers and flags; it only closes
        // descriptors, and nothing in this process uses them after this point.
        let rc = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32) };
        Errno::result(rc).map(drop)
    }

    fn move_to_fd3(&mut self, fd: OwnedFd) -> Result<OwnedFd, Errno> {
        use std::os::fd::{AsRawFd, FromRawFd};
        if fd.as_raw_fd() == 3 {
            return Ok(fd);
        }
        // SAFETY: dup3 onto fd 3 closes whatever fd 3 was, which is about
        // to be closed anyway; the new descriptor is owned from here on.
        let rc = unsafe { libc::dup3(fd.as_raw_fd(), 3, libc::O_CLOEXEC) };
        if rc != 3 {
            return Err(Errno::last());
        }
        drop(fd);
        // SAFETY: fd 3 was just made by dup3 and nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(3) })
    }

    fn mount(
        &mut self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<(), Errno> {
        nix::mount::mount(source, target, fstype, flags, data)
    }

    fn mount_setattr_recursive(&mut self, target: &Path, attr_set: u64) -> Result<(), Errno> {
        let attr = MountAttr {
            attr_set,
            attr_clr: 0,
            propagation: 0,
            userns_fd: 0,
        };
        let path =
            CString::new(target.as_os_str().as_encoded_bytes()).map_err(|_| Errno::EINVAL)?;
        // SAFETY: a valid C string, and a live mount_attr of the size passed.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                libc::AT_FDCWD,
                path.as_ptr(),
                libc::AT_RECURSIVE,
                std::ptr::from_ref(&attr),
                std::mem::size_of::<MountAttr>(),
            )
        };
        Errno::result(rc).map(drop)
    }

    fn detach(&mut self, target: &Path) -> Result<(), Errno> {
        nix::mount::umount2(target, MntFlags::MNT_DETACH)
    }

    fn pivot_root_here(&mut self) -> Result<(), Errno> {
        nix::unistd::pivot_root(".", ".")
    }

    fn chroot_here(&mut self) -> Result<(), Errno> {
        nix::unistd::chroot(".")
    }

    fn chdir(&mut self, dir: &Path) -> Result<(), Errno> {
        nix::unistd::chdir(dir)
    }

    fn mountinfo(&mut self) -> std::io::Result<String> {
        std::fs::read_to_string("/proc/self/mountinfo")
    }

    fn open_no_symlinks(&mut self, dir: &Path, relative: &Path) -> Result<OwnedFd, Errno> {
        open_no_symlinks(dir, relative)
    }

    fn make_mount_point(
        &mut self,
        dir: &Path,
        relative: &Path,
        dir_point: bool,
        devs: &[u64],
    ) -> Result<(), Errno> {
        make_mount_point(dir, relative, dir_point, devs)
    }

    fn identity(&mut self, fd: &OwnedFd) -> Option<(u64, u64)> {
        nix::sys::stat::fstat(fd)
            .ok()
            .map(|st| (st.st_dev, st.st_ino))
    }

    fn fs_type(&mut self, fd: &OwnedFd) -> Option<i64> {
        nix::sys::statfs::fstatfs(fd)
            .ok()
            .map(|s| s.filesystem_type().0)
    }

    fn is_dir(&mut self, fd: &OwnedFd) -> bool {
        nix::sys::stat::fstat(fd).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
    }

    fn locked_flags(&mut self, point: &Path) -> MsFlags {
        use nix::sys::statvfs::FsFlags;
        let Ok(st) = nix::sys::statvfs::statvfs(point) else {
            return MsFlags::empty();
        };
        let f = st.flags();
        [
            // A read-only file system stays read-only in a read-write bind.
            (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        ]
        .into_iter()
        .filter(|(st, _)| f.contains(*st))
        .fold(MsFlags::empty(), |acc, (_, ms)| acc | ms)
    }

    fn reset_signals(&mut self) -> Result<(), Errno> {
        use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};
        // Signals blocked by init for sigwait would stay blocked across execve.
        sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
        // The Rust runtime ignores SIGPIPE in cgmgr, and an ignored signal
        // stays ignored across execve: the workload gets the default back,
        // as std::process::Command gives its children (else `yes | head -1`
        // has `yes` fail on EPIPE instead of dying of SIGPIPE).
        super::init::restore_default_action(Signal::SIGPIPE)
    }

    fn setsid(&mut self) -> Result<(), Errno> {
        nix::unistd::setsid().map(drop)
    }

    fn umask(&mut self, mode: Mode) {
        nix::sys::stat::umask(mode);
    }

    fn clear_ambient_caps(&mut self) -> Result<(), ExecError> {
        caps::clear(None, CapSet::Ambient).map_err(|e| ExecError::Sys {
            what: format!("clearing the ambient capabilities: {e}"),
            errno: Errno::last(),
        })
    }

    fn drop_bounding_cap(&mut self, cap: u8) -> Result<(), Errno> {
        // SAFETY: PR_CAPBSET_DROP takes a capability number, no pointers.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
        Errno::result(rc).map(drop)
    }

    fn set_caps(&mut self, set: CapSet, keep: &[Capability]) -> Result<(), ExecError> {
        let value: CapsHashSet = keep.iter().copied().collect();
        caps::set(None, set, &value).map_err(|e| ExecError::Sys {
            what: format!("setting the {set:?} capabilities to {keep:?}: {e}"),
            errno: Errno::last(),
        })
    }

    fn set_no_new_privs(&mut self) -> Result<(), Errno> {
        nix::sys::prctl::set_no_new_privs()
    }

    fn set_rlimit(&mut self, resource: u32, value: u64) -> Result<(), Errno> {
        let limit = libc::rlimit64 {
            rlim_cur: value,
            rlim_max: value,
        };
        // SAFETY: a live rlimit64 for the new value, a null old value;
        // pid 0 is this process.
        let rc = unsafe { libc::prlimit64(0, resource, &limit, std::ptr::null_mut()) };
        Errno::result(rc).map(drop)
    }

    fn load_seccomp(&mut self, filters: &Filters) -> Result<(), ExecError> {
        filters.load()
    }

    fn execve(&mut self, path: &CStr, args: &[CString], env: &[CString]) -> Errno {
        match nix::unistd::execve(path, args, env) {
            Err(e) => e,
            Ok(never) => match never {},
        }
    }
}

/// `relative` below `dir` as `O_PATH`, no symlink followed: `openat2`
/// with `RESOLVE_NO_SYMLINKS`, else (before 5.6, or where a seccomp filter
/// refuses it) one `O_NOFOLLOW` open per component, each refused if it is a
/// symlink.
fn open_no_symlinks(dir: &Path, relative: &Path) -> Result<OwnedFd, Errno> {
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag, open, openat2};
    let path_flags = OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
    let base = open(dir, path_flags | OFlag::O_DIRECTORY, Mode::empty())?;
    if relative.as_os_str().is_empty() {
        return Ok(base);
    }
    let how = OpenHow::new()
        .flags(path_flags)
        .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    // With O_PATH | O_NOFOLLOW a symlink at the end is opened, not refused.
    match openat2(&base, relative, how) {
        Ok(fd) => refuse_symlink(fd),
        Err(e) if crate::cgroup::fs::openat2_refused(e) => walk_no_symlinks(base, relative),
        Err(e) => Err(e),
    }
}

/// `fd` unless it is a symlink's (`ELOOP`).
fn refuse_symlink(fd: OwnedFd) -> Result<OwnedFd, Errno> {
    let st = nix::sys::stat::fstat(&fd)?;
    if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        return Err(Errno::ELOOP);
    }
    Ok(fd)
}

/// Creates `relative` below `dir` one component at a time from descriptors,
/// never through a symlink (`O_NOFOLLOW`), and only in a directory on one
/// of `devs` (the run's own tmpfs mounts): a symlink or a rename in the
/// rootfs or in a bind's content cannot have it create anything elsewhere.
/// A directory, or an empty file at the end when `dir_point` is false.
fn make_mount_point(
    dir: &Path,
    relative: &Path,
    dir_point: bool,
    devs: &[u64],
) -> Result<(), Errno> {
    use nix::fcntl::{OFlag, open, openat};
    let dir_flags = OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW | OFlag::O_DIRECTORY;
    let mut fd = open(dir, dir_flags, Mode::empty())?;
    let parts: Vec<_> = relative.components().collect();
    for (i, part) in parts.iter().enumerate() {
        let std::path::Component::Normal(name) = part else {
            return Err(Errno::EXDEV);
        };
        let on_run_tmpfs =
            |fd: &OwnedFd| nix::sys::stat::fstat(fd).is_ok_and(|st| devs.contains(&st.st_dev));
        if i + 1 == parts.len() && !dir_point {
            if !on_run_tmpfs(&fd) {
                return Err(Errno::EXDEV);
            }
            let flags = OFlag::O_WRONLY
                | OFlag::O_CREAT
                | OFlag::O_EXCL
                | OFlag::O_NOFOLLOW
                | OFlag::O_CLOEXEC;
            return match openat(&fd, *name, flags, Mode::from_bits_truncate(0o644)) {
                Ok(_) | Err(Errno::EEXIST) => Ok(()),
                Err(e) => Err(e),
            };
        }
        fd = match openat(&fd, *name, dir_flags, Mode::empty()) {
            Ok(next) => next,
            Err(Errno::ENOENT) => {
                if !on_run_tmpfs(&fd) {
                    return Err(Errno::EXDEV);
                }
                match nix::sys::stat::mkdirat(&fd, *name, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(e),
                }
                openat(&fd, *name, dir_flags, Mode::empty())?
            }
            Err(e) => return Err(e),
        };
    }
    Ok(())
}

/// [`open_no_symlinks`] without `openat2`: one `O_NOFOLLOW` step per
/// component from `base`, a symlink refused with `ELOOP`.
fn walk_no_symlinks(base: OwnedFd, relative: &Path) -> Result<OwnedFd, Errno> {
    use nix::fcntl::{OFlag, openat};
    let path_flags = OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
    let mut fd = base;
    for part in relative.components() {
        let std::path::Component::Normal(name) = part else {
            return Err(Errno::EXDEV);
        };
        fd = refuse_symlink(openat(&fd, name, path_flags, Mode::empty())?)?;
    }
    Ok(fd)
}

/// The kernel's `struct mount_attr` (version 0, 32 bytes).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Brings up `lo` in the new network namespace.
fn loopback_up() -> Result<(), ExecError> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};
    use std::os::fd::AsRawFd;
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(super::error::sys("socket for SIOCSIFFLAGS"))?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = src.cast_signed();
    }
    // SAFETY: req is a live ifreq naming "lo"; SIOCGIFFLAGS fills ifru_flags.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } != 0 {
        return Err(ExecError::Sys {
            what: "SIOCGIFFLAGS lo".into(),
            errno: Errno::last(),
        });
    }
    // IFF_UP is 0x1: it fits the short flags field.
    let up = libc::c_short::try_from(libc::IFF_UP).unwrap_or(1);
    // SAFETY: SIOCGIFFLAGS just initialised the flags member of the union.
    unsafe {
        req.ifr_ifru.ifru_flags |= up;
    }
    // SAFETY: req is a live ifreq naming "lo" with the new flags.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } != 0 {
        return Err(ExecError::Sys {
            what: "SIOCSIFFLAGS lo up".into(),
            errno: Errno::last(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A symlink anywhere on the way, or at the end, is refused by both
    /// ways of opening: a path swapped for a symlink cannot redirect a mount.
    #[test]
    fn no_symlink_is_followed_on_the_way_to_a_mount() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("a/link")).unwrap();
        std::os::unix::fs::symlink("b", root.join("a/last")).unwrap();
        let base = || {
            nix::fcntl::open(
                root,
                nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY,
                Mode::empty(),
            )
            .unwrap()
        };
        assert!(open_no_symlinks(root, Path::new("a/b")).is_ok());
        assert!(walk_no_symlinks(base(), Path::new("a/b")).is_ok());
        for bad in ["a/link/passwd", "a/last"] {
            assert_eq!(
                open_no_symlinks(root, Path::new(bad)).unwrap_err(),
                Errno::ELOOP,
                "{bad}"
            );
            assert_eq!(
                walk_no_symlinks(base(), Path::new(bad)).unwrap_err(),
                Errno::ELOOP,
                "{bad}"
            );
        }
        assert_eq!(
            walk_no_symlinks(base(), Path::new("a/../a")).unwrap_err(),
            Errno::EXDEV
        );
    }

    /// Mount points are made only on the run's tmpfs devices and never
    /// through a symlink: the attack that made files outside the run with
    /// `create_dir_all` (a symlink in a bind's content) fails here.
    #[test]
    fn mount_points_are_made_only_on_the_run_s_tmpfs_and_never_through_a_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.join("tmp")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("tmp/link")).unwrap();
        let dev = nix::sys::stat::stat(root).unwrap().st_dev;
        make_mount_point(root, Path::new("tmp/a/b"), true, &[dev]).unwrap();
        make_mount_point(root, Path::new("tmp/a/f"), false, &[dev]).unwrap();
        assert!(root.join("tmp/a/b").is_dir() && root.join("tmp/a/f").is_file());
        for dir_point in [true, false] {
            let made = make_mount_point(root, Path::new("tmp/link/x"), dir_point, &[dev]);
            assert!(
                matches!(made, Err(Errno::ENOTDIR | Errno::ELOOP)),
                "{made:?}"
            );
        }
        let elsewhere = make_mount_point(root, Path::new("tmp/c"), true, &[dev + 1]);
        assert_eq!(elsewhere, Err(Errno::EXDEV));
        assert_eq!(
            std::fs::read_dir(outside.path()).unwrap().count(),
            0,
            "nothing outside"
        );
    }
}

#[cfg(test)]
pub mod recorder {
    //! A [`Kernel`] that records every call, one line each, and answers
    //! `Ok` unless told to fail a call.

    use super::*;

    /// Records calls; fails the first call whose line starts with a
    /// prefix in `fail`, with its errno.
    #[derive(Default)]
    pub struct Recorder {
        /// Every call, in order, as one line.
        pub calls: Vec<String>,
        /// `(line prefix, errno)`: calls to fail.
        pub fail: Vec<(String, Errno)>,
        /// What [`Kernel::mountinfo`] answers.
        pub mountinfo: String,
        /// Whether every opened source is a file (else a directory).
        pub files: bool,
    }

    impl Recorder {
        /// A recorder that fails calls starting with `prefix` with `errno`.
        pub fn failing(prefix: &str, errno: Errno) -> Recorder {
            Recorder {
                fail: vec![(prefix.into(), errno)],
                ..Recorder::default()
            }
        }

        fn call(&mut self, line: String) -> Result<(), Errno> {
            let failed = self
                .fail
                .iter()
                .find(|(prefix, _)| line.starts_with(prefix.as_str()))
                .map(|(_, e)| *e);
            self.calls.push(line);
            failed.map_or(Ok(()), Err)
        }

        /// The index of the first call starting with `prefix`.
        pub fn position(&self, prefix: &str) -> Option<usize> {
            self.calls.iter().position(|c| c.starts_with(prefix))
        }
    }

    /// `MS_BIND | MS_REC`: the names alone, without the type's.
    fn flags(f: impl std::fmt::Debug) -> String {
        let text = format!("{f:?}");
        match text.split_once('(') {
            Some((_, inner)) => inner.trim_end_matches(')').to_string(),
            None => text,
        }
    }

    impl Kernel for Recorder {
        fn set_pdeathsig(&mut self) -> Result<(), Errno> {
            self.call("set_pdeathsig(SIGKILL)".into())
        }
        fn setresgid(&mut self, gid: u32) -> Result<(), Errno> {
            self.call(format!("setresgid({gid})"))
        }
        fn setresuid(&mut self, uid: u32) -> Result<(), Errno> {
            self.call(format!("setresuid({uid})"))
        }
        fn clear_groups(&mut self) -> Result<(), Errno> {
            self.call("setgroups([])".into())
        }
        fn unshare(&mut self, f: CloneFlags) -> Result<(), Errno> {
            self.call(format!("unshare({})", flags(f)))
        }
        fn sethostname(&mut self, name: &str) -> Result<(), Errno> {
            self.call(format!("sethostname({name})"))
        }
        fn write_sysctl(&mut self, path: &str, value: &str) -> std::io::Result<()> {
            self.call(format!("write({path}, {value})"))
                .map_err(|e| std::io::Error::from_raw_os_error(e as i32))
        }
        fn join_session_keyring(&mut self) -> Result<(), Errno> {
            self.call("keyctl(JOIN_SESSION_KEYRING)".into())
        }
        fn loopback_up(&mut self) -> Result<(), ExecError> {
            self.call("loopback_up".into())
                .map_err(super::super::error::sys("SIOCSIFFLAGS lo up"))
        }
        fn set_child_subreaper(&mut self) -> Result<(), Errno> {
            self.call("set_child_subreaper".into())
        }
        fn block_signals(&mut self) -> Result<(), Errno> {
            self.call("block_signals".into())
        }
        fn close_fds_from(&mut self, first: u32) -> Result<(), Errno> {
            self.call(format!("close_range({first}, ~0)"))
        }
        fn move_to_fd3(&mut self, fd: OwnedFd) -> Result<OwnedFd, Errno> {
            self.call("dup3(.., 3)".into()).map(|()| fd)
        }
        fn mount(
            &mut self,
            source: Option<&Path>,
            target: &Path,
            fstype: Option<&str>,
            f: MsFlags,
            data: Option<&str>,
        ) -> Result<(), Errno> {
            let source = source.map_or("-".into(), |s| s.display().to_string());
            let line = format!(
                "mount({source}, {}, {}, {}, {})",
                target.display(),
                fstype.unwrap_or("-"),
                flags(f),
                data.unwrap_or("-")
            );
            self.call(line)
        }
        fn mount_setattr_recursive(&mut self, target: &Path, attr_set: u64) -> Result<(), Errno> {
            self.call(format!(
                "mount_setattr({}, {attr_set:#x})",
                target.display()
            ))
        }
        fn detach(&mut self, target: &Path) -> Result<(), Errno> {
            self.call(format!("umount2({}, MNT_DETACH)", target.display()))
        }
        fn pivot_root_here(&mut self) -> Result<(), Errno> {
            self.call("pivot_root(., .)".into())
        }
        fn chroot_here(&mut self) -> Result<(), Errno> {
            self.call("chroot(.)".into())
        }
        fn chdir(&mut self, dir: &Path) -> Result<(), Errno> {
            self.call(format!("chdir({})", dir.display()))
        }
        fn mountinfo(&mut self) -> std::io::Result<String> {
            Ok(self.mountinfo.clone())
        }
        fn open_no_symlinks(&mut self, dir: &Path, relative: &Path) -> Result<OwnedFd, Errno> {
            let line = format!("open({})", dir.join(relative).display());
            self.call(line)?;
            // A real descriptor, so that its number stands for it.
            let fd = nix::fcntl::open(
                "/",
                nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            let n = std::os::fd::AsRawFd::as_raw_fd(&fd);
            self.calls
                .last_mut()
                .expect("just pushed")
                .push_str(&format!(" = {n}"));
            Ok(fd)
        }
        fn make_mount_point(
            &mut self,
            dir: &Path,
            relative: &Path,
            dir_point: bool,
            _devs: &[u64],
        ) -> Result<(), Errno> {
            let kind = if dir_point { "dir" } else { "file" };
            self.call(format!("create {kind} {}", dir.join(relative).display()))
        }
        fn identity(&mut self, _fd: &OwnedFd) -> Option<(u64, u64)> {
            Some((1, 1))
        }
        fn fs_type(&mut self, _fd: &OwnedFd) -> Option<i64> {
            Some(0xef53)
        }
        fn is_dir(&mut self, _fd: &OwnedFd) -> bool {
            !self.files
        }
        fn locked_flags(&mut self, _point: &Path) -> MsFlags {
            MsFlags::MS_NOEXEC
        }
        fn reset_signals(&mut self) -> Result<(), Errno> {
            self.call("reset_signals".into())
        }
        fn setsid(&mut self) -> Result<(), Errno> {
            self.call("setsid".into())
        }
        fn umask(&mut self, mode: Mode) {
            let _ = self.call(format!("umask({:o})", mode.bits()));
        }
        fn clear_ambient_caps(&mut self) -> Result<(), ExecError> {
            self.call("clear_ambient_caps".into())
                .map_err(super::super::error::sys(
                    "clearing the ambient capabilities",
                ))
        }
        fn drop_bounding_cap(&mut self, cap: u8) -> Result<(), Errno> {
            // The kernel's last capability is 40 (CAP_CHECKPOINT_RESTORE).
            if cap > 40 {
                return Err(Errno::EINVAL);
            }
            self.call(format!("capbset_drop({cap})"))
        }
        fn set_caps(&mut self, set: CapSet, caps: &[Capability]) -> Result<(), ExecError> {
            let mut names: Vec<String> = caps.iter().map(ToString::to_string).collect();
            names.sort();
            self.call(format!("set_caps({set:?}, [{}])", names.join(",")))
                .map_err(super::super::error::sys("setting capabilities"))
        }
        fn set_no_new_privs(&mut self) -> Result<(), Errno> {
            self.call("no_new_privs".into())
        }
        fn set_rlimit(&mut self, resource: u32, value: u64) -> Result<(), Errno> {
            self.call(format!("prlimit({resource}, {value})"))
        }
        fn load_seccomp(&mut self, filters: &Filters) -> Result<(), ExecError> {
            self.call(format!("seccomp({} filters)", filters.len()))
                .map_err(super::super::error::sys("seccomp"))
        }
        fn execve(&mut self, path: &CStr, args: &[CString], _env: &[CString]) -> Errno {
            let args: Vec<_> = args.iter().map(|a| a.to_string_lossy()).collect();
            let line = format!("execve({}, {args:?})", path.to_string_lossy());
            // UnknownErrno: the command would have run.
            self.call(line).err().unwrap_or(Errno::UnknownErrno)
        }
    }
}
