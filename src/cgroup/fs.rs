//! Typed access to the interface files under the managed root.
//!
//! The root directory is opened once; every later access is relative to that
//! descriptor through `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, so no
//! name, symlink or concurrently renamed directory can lead a read or a write
//! outside the managed subtree.
//!
//! Where `openat2` is refused ([`openat2_refused`]: `ENOSYS` on kernels
//! before 5.6 and under seccomp filters that cannot inspect its flags, as
//! systemd's `RestrictSUIDSGID=` from 248; `EPERM` under that filter in
//! systemd 247), the same guarantee comes from a walk: one `openat`
//! per path component with `O_NOFOLLOW`, starting at the root descriptor,
//! refusing `.`/`..`/empty components and any component on another device.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::Mode;
use nix::sys::statfs::{CGROUP2_SUPER_MAGIC, fstatfs};

use super::error::CgroupError;
use super::format;
use super::name::GroupName;
use super::stat::StatFile;
use super::values::ValueError;

/// True when `openat2` answered as a kernel or seccomp filter that refuses
/// the call itself does: `ENOSYS` (before 5.6; systemd 248 and later's
/// filters) or `EPERM` (systemd 247's `RestrictSUIDSGID=` filter). A walk
/// of `O_NOFOLLOW` opens then takes its place; a real permission problem
/// shows up there again, as `EACCES` or `EPERM` of the walk's own opens.
pub(crate) fn openat2_refused(errno: Errno) -> bool {
    matches!(errno, Errno::ENOSYS | Errno::EPERM)
}

/// Extended attribute that marks a group as created by cgmgr (used by `--prune`).
const MANAGED_XATTR: &std::ffi::CStr = c"user.cgmgr.managed";

/// The managed cgroup directory, opened once.
#[derive(Debug)]
pub struct CgroupRoot {
    path: PathBuf,
    dir: OwnedFd,
    /// False once `openat2` was refused: later opens walk instead.
    openat2: AtomicBool,
}

impl CgroupRoot {
    /// Opens `path` and checks that it is on a cgroup2 filesystem.
    pub fn open(path: &Path) -> Result<CgroupRoot, CgroupError> {
        let open_err = |errno| CgroupError::OpenRoot {
            path: path.to_path_buf(),
            errno,
        };
        let dir = nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(open_err)?;
        let fs = fstatfs(&dir).map_err(open_err)?;
        if fs.filesystem_type() != CGROUP2_SUPER_MAGIC {
            return Err(CgroupError::NotCgroup2 {
                path: path.to_path_buf(),
                fs_type: fs.filesystem_type().0,
                expected: CGROUP2_SUPER_MAGIC.0,
            });
        }
        Ok(CgroupRoot {
            path: path.to_path_buf(),
            dir,
            openat2: AtomicBool::new(true),
        })
    }

    /// The root's directory descriptor, for walks that start there.
    pub(super) fn dir_fd(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }

    /// The root's path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The absolute path of a file in a group, for messages.
    pub fn display_path(&self, group: &GroupName, file: &str) -> PathBuf {
        self.path.join(group.file(file))
    }

    /// The absolute path of a group directory, for messages.
    pub fn group_path(&self, group: &GroupName) -> PathBuf {
        if group.is_root() {
            self.path.clone()
        } else {
            self.path.join(group.as_str())
        }
    }

    fn open_beneath(&self, rel: &str, flags: OFlag) -> Result<OwnedFd, Errno> {
        if self.openat2.load(Ordering::Relaxed) {
            let how = OpenHow::new().flags(flags | OFlag::O_CLOEXEC).resolve(
                ResolveFlag::RESOLVE_BENEATH
                    | ResolveFlag::RESOLVE_NO_SYMLINKS
                    | ResolveFlag::RESOLVE_NO_MAGICLINKS
                    | ResolveFlag::RESOLVE_NO_XDEV,
            );
            match openat2(self.dir.as_fd(), rel, how) {
                Err(e) if openat2_refused(e) => self.openat2.store(false, Ordering::Relaxed),
                other => return other,
            }
        }
        open_beneath_by_walk(self.dir.as_fd(), rel, flags)
    }

    /// Reads a whole interface file.
    pub fn read(&self, group: &GroupName, file: &str) -> Result<String, CgroupError> {
        let read_err = |errno| CgroupError::Read {
            path: self.display_path(group, file),
            errno,
        };
        let fd = self
            .open_beneath(&group.file(file), OFlag::O_RDONLY)
            .map_err(read_err)?;
        read_fd(&fd).map_err(read_err)
    }

    /// Reads a file, `None` when the file (or the group) does not exist.
    pub fn read_optional(
        &self,
        group: &GroupName,
        file: &str,
    ) -> Result<Option<String>, CgroupError> {
        match self.read(group, file) {
            Ok(text) => Ok(Some(text)),
            Err(CgroupError::Read {
                errno: Errno::ENOENT,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads a statistics or event file into its typed reading; `Ok(None)`
    /// when the file (or the group) does not exist, as when its controller
    /// is not enabled.
    pub fn read_stat<T: StatFile>(&self, group: &GroupName) -> Result<Option<T>, CgroupError> {
        match self.read_parsed(group, T::FILE, T::parse) {
            Ok(v) => Ok(Some(v)),
            Err(CgroupError::Read {
                errno: Errno::ENOENT,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// [`CgroupRoot::read_stat`] for reporting, where a file that is
    /// missing, unreadable or unparsable is simply not counted: `None`.
    pub fn stat<T: StatFile>(&self, group: &GroupName) -> Option<T> {
        self.read_stat(group).ok().flatten()
    }

    /// Reads and parses a file with `parse`, naming the file on failure.
    pub fn read_parsed<T>(
        &self,
        group: &GroupName,
        file: &str,
        parse: impl FnOnce(&str) -> Result<T, ValueError>,
    ) -> Result<T, CgroupError> {
        let text = self.read(group, file)?;
        parse(&text).map_err(|e| CgroupError::Format {
            path: self.display_path(group, file),
            content: text.clone(),
            reason: e.0,
        })
    }

    /// Reads a single-value file into a typed value.
    pub fn read_value<T>(&self, group: &GroupName, file: &str) -> Result<T, CgroupError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        self.read_parsed(group, file, |s| {
            s.trim()
                .parse()
                .map_err(|e: T::Err| ValueError(e.to_string()))
        })
    }

    /// Writes `value` to a file in one `write(2)`, as the kernel requires.
    pub fn write(&self, group: &GroupName, file: &str, value: &str) -> Result<(), CgroupError> {
        self.write_raw(group, file, value)
            .map_err(|errno| CgroupError::Write {
                path: self.display_path(group, file),
                value: value.to_string(),
                errno,
                hint: String::new(),
            })
    }

    /// Like [`CgroupRoot::write`] but returns the bare errno, for callers
    /// that treat some errnos as expected (ESRCH while moving processes).
    pub fn write_raw(&self, group: &GroupName, file: &str, value: &str) -> Result<(), Errno> {
        // O_TRUNC as a shell redirection does: cgroupfs ignores it, plain files need it.
        let fd = self.open_beneath(&group.file(file), OFlag::O_WRONLY | OFlag::O_TRUNC)?;
        // An empty write never reaches the kernel's handler; a newline does
        // and means "empty" to every cgroup file that accepts an empty value.
        let bytes = if value.is_empty() { "\n" } else { value };
        let written = nix::unistd::write(&fd, bytes.as_bytes())?;
        if written != bytes.len() {
            return Err(Errno::EIO);
        }
        Ok(())
    }

    /// Opens a group directory (for `CLONE_INTO_CGROUP`), close-on-exec.
    pub fn open_dir(&self, group: &GroupName) -> Result<OwnedFd, Errno> {
        self.open_beneath(group.dir(), OFlag::O_RDONLY | OFlag::O_DIRECTORY)
    }

    /// Opens an interface file for repeated reads (metrics keep these open
    /// and re-read them with `pread` at offset 0), close-on-exec.
    pub fn open_file(&self, group: &GroupName, file: &str) -> Result<std::fs::File, Errno> {
        self.open_beneath(&group.file(file), OFlag::O_RDONLY)
            .map(std::fs::File::from)
    }

    /// Opens an interface file for reading and writing, non-blocking,
    /// close-on-exec: what a PSI trigger needs (it lives on the open file).
    pub fn open_trigger_file(&self, group: &GroupName, file: &str) -> Result<std::fs::File, Errno> {
        self.open_beneath(&group.file(file), OFlag::O_RDWR | OFlag::O_NONBLOCK)
            .map(std::fs::File::from)
    }

    /// Whether a group has the interface file `file`, seen without opening
    /// it for reading or writing (`cgroup.kill` is write-only).
    pub fn has_file(&self, group: &GroupName, file: &str) -> Result<bool, Errno> {
        match self.open_beneath(&group.file(file), OFlag::O_PATH) {
            Ok(_) => Ok(true),
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// True when the group directory exists.
    pub fn exists(&self, group: &GroupName) -> bool {
        self.open_beneath(group.dir(), OFlag::O_RDONLY | OFlag::O_DIRECTORY)
            .is_ok()
    }

    /// Creates a group; an existing one is fine (crash-restart, races).
    /// Returns true when this call created it.
    pub fn mkdir(&self, group: &GroupName) -> Result<bool, CgroupError> {
        self.mkdir_with_mode(group, 0o755)
    }

    /// [`CgroupRoot::mkdir`] with the directory's mode (`0o700`: only its
    /// owner may open it, or anything in it).
    pub fn mkdir_with_mode(&self, group: &GroupName, mode: u32) -> Result<bool, CgroupError> {
        let mkdir_err = |errno| CgroupError::Mkdir {
            path: self.group_path(group),
            errno,
        };
        let (parent_fd, leaf) = self.open_parent(group).map_err(mkdir_err)?;
        match nix::sys::stat::mkdirat(&parent_fd, leaf, Mode::from_bits_truncate(mode)) {
            Ok(()) => Ok(true),
            Err(Errno::EEXIST) => Ok(false),
            Err(errno) => Err(mkdir_err(errno)),
        }
    }

    /// Removes an empty group.
    pub fn rmdir(&self, group: &GroupName) -> Result<(), CgroupError> {
        let rmdir_err = |errno| CgroupError::Rmdir {
            path: self.group_path(group),
            errno,
        };
        let (parent_fd, leaf) = self.open_parent(group).map_err(rmdir_err)?;
        nix::unistd::unlinkat(&parent_fd, leaf, nix::unistd::UnlinkatFlags::RemoveDir)
            .map_err(rmdir_err)
    }

    fn open_parent<'a>(&self, group: &'a GroupName) -> Result<(OwnedFd, &'a str), Errno> {
        let parent = group.parent().ok_or(Errno::EINVAL)?;
        let leaf = group.as_str().rsplit('/').next().unwrap_or_default();
        let fd = self.open_beneath(parent.dir(), OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
        Ok((fd, leaf))
    }

    /// The child groups of `group` whose names are valid group names.
    pub fn children(&self, group: &GroupName) -> Result<Vec<GroupName>, CgroupError> {
        let list_err = |errno| CgroupError::List {
            path: self.group_path(group),
            errno,
        };
        let fd = self
            .open_beneath(group.dir(), OFlag::O_RDONLY | OFlag::O_DIRECTORY)
            .map_err(list_err)?;
        let mut dir = nix::dir::Dir::from_fd(fd).map_err(list_err)?;
        let mut out = Vec::new();
        for entry in dir.iter() {
            let entry = entry.map_err(list_err)?;
            if entry.file_type() != Some(nix::dir::Type::Directory) {
                continue;
            }
            let Ok(name) = entry.file_name().to_str() else {
                continue;
            };
            if let Ok(child) = group.child(name) {
                out.push(child);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Controllers available in a group (`cgroup.controllers`).
    pub fn controllers(&self, group: &GroupName) -> Result<Vec<String>, CgroupError> {
        Ok(format::word_list(&self.read(group, "cgroup.controllers")?))
    }

    /// Controllers enabled for a group's children (`cgroup.subtree_control`).
    pub fn subtree_control(&self, group: &GroupName) -> Result<Vec<String>, CgroupError> {
        Ok(format::word_list(
            &self.read(group, "cgroup.subtree_control")?,
        ))
    }

    /// Processes in a group (`cgroup.procs`) that this process can name:
    /// those of other pid namespaces are listed as 0 by the kernel, and 0
    /// written to `cgroup.procs` or passed to kill(2) would mean this process
    /// or its process group, so they are left out.
    pub fn procs(&self, group: &GroupName) -> Result<Vec<i32>, CgroupError> {
        let all = self.read_parsed(group, "cgroup.procs", format::pid_list)?;
        Ok(all.into_iter().filter(|&pid| pid > 0).collect())
    }

    /// Whether `cgroup.procs` lists processes outside this process's pid
    /// namespace (the kernel writes them as 0).
    pub fn has_hidden_processes(&self, group: &GroupName) -> bool {
        self.read_parsed(group, "cgroup.procs", format::pid_list)
            .is_ok_and(|all| all.contains(&0))
    }

    /// True when the managed root is the hierarchy's true root, which is
    /// exempt from the no-internal-processes rule and has no `cgroup.type`.
    pub fn is_hierarchy_root(&self) -> bool {
        matches!(
            self.read_optional(&GroupName::root(), "cgroup.type"),
            Ok(None)
        )
    }

    /// Marks a group as created by cgmgr.
    pub fn mark_managed(&self, group: &GroupName) -> Result<(), CgroupError> {
        let fd = self
            .open_beneath(group.dir(), OFlag::O_RDONLY | OFlag::O_DIRECTORY)
            .map_err(|errno| CgroupError::Write {
                path: self.group_path(group),
                value: "xattr user.cgmgr.managed=1".into(),
                errno,
                hint: String::new(),
            })?;
        // SAFETY: fd is a valid open descriptor, the name is NUL-terminated and
        // the value pointer/length describe a live 1-byte buffer.
        let rc = unsafe {
            libc::fsetxattr(
                fd.as_raw_fd(),
                MANAGED_XATTR.as_ptr(),
                c"1".as_ptr().cast(),
                1,
                0,
            )
        };
        if rc != 0 {
            return Err(CgroupError::Write {
                path: self.group_path(group),
                value: "xattr user.cgmgr.managed=1".into(),
                errno: Errno::last(),
                hint: String::new(),
            });
        }
        Ok(())
    }

    /// True when the group carries cgmgr's marker.
    pub fn is_managed(&self, group: &GroupName) -> bool {
        let Ok(fd) = self.open_beneath(group.dir(), OFlag::O_RDONLY | OFlag::O_DIRECTORY) else {
            return false;
        };
        let mut buf = [0u8; 4];
        read_xattr(fd.as_fd(), MANAGED_XATTR, &mut buf) == Some(1) && buf[0] == b'1'
    }
}

/// Opens `rel` below `dir` one component at a time, the guarantee of
/// `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV)` without
/// it:
/// - no component may be empty, `.` or `..` (`rel == "."` alone names `dir`
///   itself): EXDEV, as openat2 answers an escape;
/// - every component is opened `O_PATH | O_NOFOLLOW` and its type checked
///   before anything else: a symlink (magic links included) is ELOOP;
/// - every component must be on `dir`'s mount, compared by mount ID (a bind
///   mount of another part of the same filesystem has the same `st_dev`, so
///   the device alone would not do): EXDEV;
/// - the last component must be a directory or a regular file (a FIFO or a
///   device could block or act on open), and only once all of that holds is
///   it reopened with the caller's flags, through `/proc/self/fd`, so that
///   `O_TRUNC` or a write never touches anything the checks did not see.
fn open_beneath_by_walk(dir: BorrowedFd<'_>, rel: &str, flags: OFlag) -> Result<OwnedFd, Errno> {
    let mount = mount_id(dir)?;
    if rel == "." {
        return nix::fcntl::openat(dir, ".", flags | OFlag::O_CLOEXEC, Mode::empty());
    }
    let components: Vec<&str> = rel.split('/').collect();
    if components
        .iter()
        .any(|c| c.is_empty() || *c == "." || *c == "..")
    {
        return Err(Errno::EXDEV);
    }
    let mut current: Option<OwnedFd> = None;
    let last = components.len() - 1;
    for (i, component) in components.iter().enumerate() {
        let at = current.as_ref().map_or(dir, |fd| fd.as_fd());
        let next = nix::fcntl::openat(
            at,
            *component,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let kind = nix::sys::stat::fstat(&next)?.st_mode & libc::S_IFMT;
        if kind == libc::S_IFLNK {
            return Err(Errno::ELOOP);
        }
        if mount_id(next.as_fd())? != mount {
            return Err(Errno::EXDEV);
        }
        match (kind, i == last) {
            (libc::S_IFDIR, _) => {}
            (_, false) => return Err(Errno::ENOTDIR),
            (libc::S_IFREG, true) if !flags.contains(OFlag::O_DIRECTORY) => {}
            (libc::S_IFREG, true) => return Err(Errno::ENOTDIR),
            // FIFOs, sockets, devices: cgroupfs has none, so one is a trap.
            (_, true) => return Err(Errno::ENXIO),
        }
        current = Some(next);
    }
    let checked = current.ok_or(Errno::EINVAL)?;
    reopen(&checked, flags)
}

/// Reopens an `O_PATH` descriptor with real flags through its magic link,
/// and makes sure the result is the very same file.
fn reopen(fd: &OwnedFd, flags: OFlag) -> Result<OwnedFd, Errno> {
    let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let reopened = nix::fcntl::open(link.as_str(), flags | OFlag::O_CLOEXEC, Mode::empty())?;
    let (a, b) = (
        nix::sys::stat::fstat(fd)?,
        nix::sys::stat::fstat(&reopened)?,
    );
    if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino) {
        return Err(Errno::EXDEV);
    }
    Ok(reopened)
}

/// The ID of the mount a descriptor is on: `statx(STATX_MNT_ID)` (Linux
/// 5.8), else the `mnt_id:` line of `/proc/self/fdinfo`.
pub(super) fn mount_id(fd: BorrowedFd<'_>) -> Result<u64, Errno> {
    // SAFETY: statx is all-integer plain data; all-zero is a valid value.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor, an empty NUL-terminated path with
    // AT_EMPTY_PATH, and a live statx buffer.
    let rc = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_MNT_ID,
            &mut stx,
        )
    };
    if rc == 0 && stx.stx_mask & libc::STATX_MNT_ID != 0 {
        return Ok(stx.stx_mnt_id);
    }
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))
        .map_err(|_| Errno::EXDEV)?;
    info.lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or(Errno::EXDEV)
}

/// Reads the extended attribute `name` of `fd` into `buf`: its length, or
/// `None` when it is absent, too long for `buf` or unreadable.
pub fn read_xattr(fd: BorrowedFd<'_>, name: &std::ffi::CStr, buf: &mut [u8]) -> Option<usize> {
    // SAFETY: fd is valid for the call, the name is NUL-terminated and buf
    // is a live buffer of the length passed.
    let n = unsafe {
        libc::fgetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    usize::try_from(n).ok()
}

pub(super) fn read_fd(fd: &OwnedFd) -> Result<String, Errno> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = nix::unistd::read(fd, &mut buf)?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(out).map_err(|_| Errno::EILSEQ)
}

/// Used by tests to build a root over a plain directory, skipping the
/// cgroup2 check (unit tests run on a fake tree in a temp dir).
#[cfg(test)]
impl CgroupRoot {
    pub(crate) fn open_unchecked(path: &Path) -> CgroupRoot {
        let dir =
            nix::fcntl::open(path, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        CgroupRoot {
            path: path.to_path_buf(),
            dir,
            openat2: AtomicBool::new(true),
        }
    }

    /// As [`CgroupRoot::open_unchecked`], resolving by the walk that
    /// replaces `openat2` where a seccomp filter or an old kernel refuses it.
    pub(crate) fn open_unchecked_without_openat2(path: &Path) -> CgroupRoot {
        let root = Self::open_unchecked(path);
        root.openat2.store(false, Ordering::Relaxed);
        root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_cgroup_root() {
        let tmp = tempfile::tempdir().unwrap();
        let e = CgroupRoot::open(tmp.path()).unwrap_err();
        assert!(matches!(e, CgroupError::NotCgroup2 { .. }), "{e}");
        assert!(e.to_string().contains("is not a cgroup v2 filesystem"));
    }

    #[test]
    fn read_stat_missing_is_none_and_garbage_names_the_file() {
        use crate::cgroup::stat::{CpuStat, IoStat};
        let tmp = tempfile::tempdir().unwrap();
        let root = CgroupRoot::open_unchecked(tmp.path());
        let g = GroupName::parse("g").unwrap();
        // The group, then the file, missing: no reading, no error.
        assert_eq!(root.read_stat::<CpuStat>(&g).unwrap(), None);
        std::fs::create_dir(tmp.path().join("g")).unwrap();
        assert_eq!(root.read_stat::<IoStat>(&g).unwrap(), None);
        std::fs::write(tmp.path().join("g/cpu.stat"), "usage_usec lots\n").unwrap();
        let e = root.read_stat::<CpuStat>(&g).unwrap_err().to_string();
        assert!(e.contains("g/cpu.stat") && e.contains("lots"), "{e}");
        std::fs::write(tmp.path().join("g/io.stat"), "").unwrap();
        assert_eq!(
            root.read_stat::<IoStat>(&g).unwrap(),
            Some(IoStat::default())
        );
    }

    /// A fake root on a fresh temp dir for each resolver: openat2, and the
    /// walk used where it is refused.
    fn roots() -> [CgroupRoot; 2] {
        [
            CgroupRoot::open_unchecked(&tempfile::tempdir().unwrap().keep()),
            CgroupRoot::open_unchecked_without_openat2(&tempfile::tempdir().unwrap().keep()),
        ]
    }

    #[test]
    fn never_follows_a_symlink_out() {
        for root in roots() {
            never_follows_a_symlink_out_with(root);
        }
    }

    fn never_follows_a_symlink_out_with(root: CgroupRoot) {
        let tmp = root.path().to_path_buf();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("memory.max"), "secret").unwrap();
        std::os::unix::fs::symlink(outside.path(), tmp.join("evil")).unwrap();
        let g = GroupName::parse("evil").unwrap();
        let e = root.read(&g, "memory.max").unwrap_err();
        assert!(
            matches!(
                e,
                CgroupError::Read {
                    errno: Errno::ELOOP,
                    ..
                }
            ),
            "{e}"
        );
        assert!(root.write(&g, "memory.max", "1").is_err());
        assert_eq!(root.has_file(&g, "memory.max"), Err(Errno::ELOOP));
        assert_eq!(
            std::fs::read_to_string(outside.path().join("memory.max")).unwrap(),
            "secret"
        );
        // A symlinked directory in the middle of a path, and as the group
        // directory itself (mkdir below it, open_dir, listing).
        let nested = GroupName::parse("evil/inner").unwrap();
        assert!(matches!(
            root.read(&nested, "memory.max"),
            Err(CgroupError::Read {
                errno: Errno::ELOOP,
                ..
            })
        ));
        assert!(root.mkdir(&nested).is_err());
        assert!(
            !outside.path().join("inner").exists(),
            "mkdir followed the link"
        );
        assert_eq!(root.open_dir(&g).unwrap_err(), Errno::ELOOP);
        assert!(root.children(&g).is_err());
        // A symlink as the file itself.
        std::fs::create_dir(tmp.join("real")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("memory.max"),
            tmp.join("real/memory.max"),
        )
        .unwrap();
        let real = GroupName::parse("real").unwrap();
        assert!(root.write(&real, "memory.max", "1").is_err());
        assert_eq!(
            std::fs::read_to_string(outside.path().join("memory.max")).unwrap(),
            "secret"
        );
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    /// The walk refuses what openat2's RESOLVE_BENEATH refuses, whatever a
    /// caller passes (group names are validated before, the walk does not
    /// rely on it).
    #[test]
    fn walk_refuses_dot_dot_and_empty_components() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("a")).unwrap();
        std::fs::write(tmp.path().join("a/f"), "x").unwrap();
        let dir = nix::fcntl::open(
            tmp.path(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
        for rel in [
            "..",
            "a/../a/f",
            "../x",
            "a//f",
            "./a/f",
            "a/./f",
            "",
            "/etc/passwd",
        ] {
            assert_eq!(
                open_beneath_by_walk(dir.as_fd(), rel, OFlag::O_RDONLY).unwrap_err(),
                Errno::EXDEV,
                "{rel:?}"
            );
        }
        assert!(open_beneath_by_walk(dir.as_fd(), "a/f", OFlag::O_RDONLY).is_ok());
        assert_eq!(
            open_beneath_by_walk(dir.as_fd(), "a/f/g", OFlag::O_RDONLY).unwrap_err(),
            Errno::ENOTDIR
        );
        assert!(
            open_beneath_by_walk(dir.as_fd(), ".", OFlag::O_RDONLY | OFlag::O_DIRECTORY).is_ok()
        );
    }

    #[test]
    fn read_write_mkdir_on_fake_tree() {
        for root in roots() {
            read_write_mkdir_with(root);
        }
    }

    fn read_write_mkdir_with(root: CgroupRoot) {
        use std::os::unix::fs::PermissionsExt;
        let tmp = root.path().to_path_buf();
        let tmp = TmpPath(&tmp);
        let g = GroupName::parse("a").unwrap();
        assert!(!root.exists(&g));
        assert!(root.mkdir(&g).unwrap());
        assert!(!root.mkdir(&g).unwrap(), "EEXIST is not an error");
        std::fs::write(tmp.path().join("a/pids.max"), "max\n").unwrap();
        assert_eq!(root.read(&g, "pids.max").unwrap(), "max\n");
        root.write(&g, "pids.max", "10").unwrap();
        assert_eq!(root.read(&g, "pids.max").unwrap(), "10");
        assert_eq!(root.read_optional(&g, "nope").unwrap(), None);
        assert_eq!(root.has_file(&g, "pids.max"), Ok(true));
        assert_eq!(root.has_file(&g, "nope"), Ok(false));
        // A write-only file is seen without being opened for reading.
        std::fs::write(tmp.path().join("a/cgroup.kill"), "").unwrap();
        let write_only = std::fs::Permissions::from_mode(0o200);
        std::fs::set_permissions(tmp.path().join("a/cgroup.kill"), write_only).unwrap();
        assert_eq!(root.has_file(&g, "cgroup.kill"), Ok(true));
        let e = root.read_value::<u64>(&g, "pids.max");
        assert_eq!(e.unwrap(), 10);
        std::fs::write(tmp.path().join("a/pids.max"), "ten").unwrap();
        let e = root
            .read_value::<u64>(&g, "pids.max")
            .unwrap_err()
            .to_string();
        assert!(e.contains("a/pids.max") && e.contains("ten"), "{e}");
        assert_eq!(root.children(&GroupName::root()).unwrap(), vec![g]);
        std::fs::remove_dir_all(tmp.path()).unwrap();
    }

    /// Lets the shared test body keep calling `tmp.path()`.
    struct TmpPath<'a>(&'a Path);

    impl TmpPath<'_> {
        fn path(&self) -> &Path {
            self.0
        }
    }
}
