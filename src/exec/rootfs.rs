//! The workload's root filesystem, set up inside the new mount namespace.
//!
//! Numbered steps, each with its own error (firecracker's jailer style):
//!
//! 1. make every mount a slave of the host's, so nothing we mount leaks out;
//! 2. bind the rootfs onto itself (pivot_root needs a mount point), and make
//!    it and every mount below it read-only, nosuid and nodev (unless
//!    `readonly_root = false`): a run cannot leave anything in the rootfs
//!    for the next run, nor talk through it to a concurrent one;
//! 3. a fresh `/proc` for the new PID namespace (nosuid, noexec, nodev),
//!    with runc's masks: kernel memory, keys and timers hidden, `/proc/sys`,
//!    `/proc/sysrq-trigger` and the other kernel knobs read-only;
//! 4. a minimal `/dev`: tmpfs with null, zero, full, random, urandom, tty
//!    bound from the host, a private devpts instance, the usual symlinks;
//! 5. a tmpfs `/tmp`, then the run's own mounts (binds and tmpfs, see
//!    [`super::mounts`]);
//! 6. `pivot_root` and detach the old root, so no path leads back to the
//!    host (or `chroot`, only when asked: not a security boundary).
//!
//! `/sys` is not mounted: no `/sys/fs/cgroup` inside.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use nix::sys::stat::Mode;

use super::error::{ExecError, Step, step};
use super::kernel::{Host, Kernel};

/// Device nodes bound from the host into the sandbox's `/dev`.
pub const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// How the workload's root is changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootSwitch {
    /// `pivot_root` and detach the old root (the default).
    PivotRoot,
    /// Plain `chroot`: the old root stays reachable to a process with
    /// CAP_SYS_CHROOT; not a security boundary.
    Chroot,
}

/// `/proc` entries hidden from the workload (runc's default masked paths):
/// a file gets `/dev/null` bound over it, a directory an empty read-only tmpfs.
/// `iomem` (the physical memory map) and `cmdline` (the host's boot
/// command line, which may carry secrets) too.
pub const MASKED_PROC: [&str; 11] = [
    "acpi",
    "asound",
    "cmdline",
    "iomem",
    "kcore",
    "keys",
    "latency_stats",
    "timer_list",
    "timer_stats",
    "sched_debug",
    "scsi",
];

/// `/proc` entries made read-only (runc's defaults): without them, uid 0
/// outside a user namespace could write `/proc/sys/kernel/core_pattern` and
/// run a program as root on the host.
pub const READ_ONLY_PROC: [&str; 5] = ["bus", "fs", "irq", "sys", "sysrq-trigger"];

/// Entries that must be real directories in the rootfs: a symlink there
/// would make us mount over whatever it points to.
pub const REQUIRED_DIRS: [&str; 3] = ["proc", "dev", "tmp"];

/// Refuses a rootfs whose `proc`, `dev` or `tmp` is a symlink or missing.
pub fn check(rootfs: &Path) -> Result<(), ExecError> {
    for entry in REQUIRED_DIRS {
        let meta = std::fs::symlink_metadata(rootfs.join(entry));
        let problem = match meta {
            Ok(m) if m.file_type().is_symlink() => {
                "is a symlink, which a mount would follow out of the rootfs"
            }
            Ok(m) if m.is_dir() => continue,
            Ok(_) => "is not a directory",
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "is missing",
            Err(_) => "cannot be inspected (is the rootfs readable by the mapped user?)",
        };
        return Err(ExecError::BadRootfs {
            rootfs: rootfs.to_path_buf(),
            entry,
            problem,
            hint: "make it a plain directory; `cgmgr rootfs build DIR --bin ...` creates proc, dev and tmp",
        });
    }
    Ok(())
}

fn mount_err(
    step: u8,
    what: &'static str,
    target: &Path,
) -> impl FnOnce(nix::errno::Errno) -> ExecError {
    let target = target.to_path_buf();
    move |errno| ExecError::Mount {
        step,
        what,
        target,
        errno,
    }
}

/// Runs steps 1-6 in the current (new) mount namespace, through `k`.
pub(crate) fn enter_with(
    k: &mut dyn Kernel,
    rootfs: &Path,
    switch: RootSwitch,
    read_only: bool,
    mounts: &[crate::policy::run::Mount],
) -> Result<(), ExecError> {
    // Every step names the rootfs as mountinfo does: a symlink in the path
    // as written would hide its mounts from step 2's fallback.
    let real = std::fs::canonicalize(rootfs)
        .map_err(|e| io_err(format!("resolving the rootfs {}", rootfs.display()), e))?;
    let rootfs = real.as_path();
    check(rootfs)?;
    // 1.
    make_slave(k)?;
    // 2.
    k.mount(
        Some(rootfs),
        rootfs,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )
    .map_err(mount_err(2, "bind the rootfs onto itself", rootfs))?;
    // Private: a mount the host makes below the rootfs later (it is often
    // on a shared mount) does not appear in the sandbox, writable.
    k.mount(
        None,
        rootfs,
        None,
        MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        None,
    )
    .map_err(mount_err(2, "make the rootfs's mounts private", rootfs))?;
    if read_only {
        make_read_only(k, rootfs)?;
    }
    // 3.
    mount_proc(k, &rootfs.join("proc"))?;
    // 4.
    populate_dev(k, &rootfs.join("dev"))?;
    // 5.
    let tmp = rootfs.join("tmp");
    k.mount(
        Some(Path::new("tmpfs")),
        &tmp,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777"),
    )
    .map_err(mount_err(5, "mount a tmpfs /tmp", &tmp))?;
    // 5b.
    super::mounts::mount_all(k, rootfs, mounts)?;
    // 6.
    switch_root(k, rootfs, switch)
}

/// Step 1: nothing mounted from here on propagates to the host.
fn make_slave(k: &mut dyn Kernel) -> Result<(), ExecError> {
    let root = Path::new("/");
    k.mount(None, root, None, MsFlags::MS_SLAVE | MsFlags::MS_REC, None)
        .map_err(mount_err(1, "make / a recursive slave", root))
}

/// Step 3: a fresh `/proc` at `proc_dir`, masked.
fn mount_proc(k: &mut dyn Kernel, proc_dir: &Path) -> Result<(), ExecError> {
    let hardened = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    k.mount(
        Some(Path::new("proc")),
        proc_dir,
        Some("proc"),
        hardened,
        None,
    )
    .map_err(mount_err(3, "mount a fresh /proc", proc_dir))?;
    mask_proc(k, proc_dir)
}

/// What step 2 adds to the rootfs's mounts when they are made read-only.
const READ_ONLY: u64 = super::mounts::MOUNT_ATTR_RDONLY
    | super::mounts::MOUNT_ATTR_NOSUID
    | super::mounts::MOUNT_ATTR_NODEV;

/// Step 2's second half: the rootfs's bind mount and every submount it
/// brought along read-only, nosuid, nodev.
fn make_read_only(k: &mut dyn Kernel, rootfs: &Path) -> Result<(), ExecError> {
    let words = Words {
        setattr: "make the rootfs read-only",
        find: "find the rootfs's bind in mountinfo",
        remount: "remount a mount of the rootfs read-only",
    };
    restrict_recursively(k, rootfs, rootfs, READ_ONLY, 2, &words)
}

/// What a [`restrict_recursively`] step says it was doing when it failed.
pub(crate) struct Words {
    /// `mount_setattr`.
    pub setattr: &'static str,
    /// Looking the mount up in mountinfo (the fallback).
    pub find: &'static str,
    /// One remount of the fallback.
    pub remount: &'static str,
}

/// Adds `attrs` (`MOUNT_ATTR_RDONLY`, `_NOSUID`, `_NODEV`) to the mount at
/// `target` and every mount below it: one `mount_setattr` with
/// `AT_RECURSIVE` (Linux 5.12); before it, one remount per mount at or
/// below `point` in mountinfo, each repeating the flags the kernel locks on
/// a mount that came from the host (or it refuses the remount).
pub(crate) fn restrict_recursively(
    k: &mut dyn Kernel,
    target: &Path,
    point: &Path,
    attrs: u64,
    step: u8,
    words: &Words,
) -> Result<(), ExecError> {
    match k.mount_setattr_recursive(target, attrs) {
        Ok(()) => return Ok(()),
        // Before 5.12, or a seccomp filter of the caller's that refuses it.
        Err(nix::errno::Errno::ENOSYS | nix::errno::Errno::EPERM) => {}
        Err(e) => return Err(mount_err(step, words.setattr, point)(e)),
    }
    let mountinfo = k
        .mountinfo()
        .map_err(|e| io_err("reading /proc/self/mountinfo".into(), e))?;
    let points = mounts_at_or_below(&mountinfo, point);
    if !points.iter().any(|p| p == point) {
        // Its own mount must be listed: anything else means the paths do
        // not match, and nothing would be restricted.
        return Err(mount_err(step, words.find, point)(
            nix::errno::Errno::ENOENT,
        ));
    }
    let mut flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND;
    for (attr, flag) in [
        (super::mounts::MOUNT_ATTR_RDONLY, MsFlags::MS_RDONLY),
        (super::mounts::MOUNT_ATTR_NOSUID, MsFlags::MS_NOSUID),
        (super::mounts::MOUNT_ATTR_NODEV, MsFlags::MS_NODEV),
    ] {
        if attrs & attr != 0 {
            flags |= flag;
        }
    }
    for p in points {
        let kept = k.locked_flags(&p);
        k.mount(None, &p, None, flags | kept, None)
            .map_err(mount_err(step, words.remount, &p))?;
    }
    Ok(())
}

/// The mount points of mountinfo's text that are `dir` or below it, with
/// the kernel's octal escapes (`\040` for a space) undone.
pub fn mounts_at_or_below(mountinfo: &str, dir: &Path) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(crate::cgroup::locate::unescape_mountinfo(field)))
        .filter(|point| point.starts_with(dir))
        .collect()
}

/// Step 4: `/dev` as a tmpfs with the host's harmless nodes bound in.
fn populate_dev(k: &mut dyn Kernel, dev: &Path) -> Result<(), ExecError> {
    k.mount(
        Some(Path::new("tmpfs")),
        dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=755,size=64k"),
    )
    .map_err(mount_err(4, "mount a tmpfs /dev", dev))?;
    for name in DEVICES {
        let target = dev.join(name);
        std::fs::File::create(&target)
            .map_err(|e| io_err(format!("creating {}", target.display()), e))?;
        let source = PathBuf::from("/dev").join(name);
        k.mount(Some(&source), &target, None, MsFlags::MS_BIND, None)
            .map_err(mount_err(4, "bind a device node from the host", &target))?;
    }
    let pts = dev.join("pts");
    nix::unistd::mkdir(&pts, Mode::from_bits_truncate(0o755))
        .map_err(step(Step::DevptsDir(pts.clone())))?;
    k.mount(
        Some(Path::new("devpts")),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=620"),
    )
    .map_err(mount_err(4, "mount a private devpts", &pts))?;
    let links = [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ];
    for (name, target) in links {
        symlink(target, dev.join(name)).map_err(|e| io_err(format!("symlink /dev/{name}"), e))?;
    }
    Ok(())
}

/// Step 6.
fn switch_root(k: &mut dyn Kernel, rootfs: &Path, switch: RootSwitch) -> Result<(), ExecError> {
    k.chdir(rootfs)
        .map_err(step(Step::IntoRootfs(rootfs.to_path_buf())))?;
    match switch {
        RootSwitch::PivotRoot => match k.pivot_root_here() {
            // pivot_root(".", ".") stacks the old root under the new one at
            // "/"; detaching it leaves no mount that leads back to the host.
            Ok(()) => {
                k.detach(Path::new("."))
                    .map_err(mount_err(6, "detach the old root", rootfs))?
            }
            // The initial ramfs can never be pivoted away from.
            Err(nix::errno::Errno::EINVAL) if root_is_initramfs(k) => move_root(k, rootfs)?,
            Err(e) => return Err(mount_err(6, "pivot_root", rootfs)(e)),
        },
        RootSwitch::Chroot => k.chroot_here().map_err(mount_err(6, "chroot", rootfs))?,
    }
    k.chdir(Path::new("/")).map_err(step(Step::IntoNewRoot))
}

/// Step 6 where `/` is the initial ramfs (diskless and PXE boots, minimal
/// VMs): move the rootfs mount over `/` and chroot into it, as runc does
/// without pivot_root. The old root stays underneath, unreachable: no
/// descriptor leads to it, and the workload has neither CAP_SYS_CHROOT (to
/// walk out of a chroot) nor CAP_SYS_ADMIN (to unmount what covers it).
fn move_root(k: &mut dyn Kernel, rootfs: &Path) -> Result<(), ExecError> {
    k.mount(
        Some(Path::new(".")),
        Path::new("/"),
        None,
        MsFlags::MS_MOVE,
        None,
    )
    .map_err(mount_err(
        6,
        "move the rootfs over the initial ramfs",
        rootfs,
    ))?;
    k.chroot_here()
        .map_err(mount_err(6, "chroot into the moved rootfs", rootfs))
}

/// True when `/` is the kernel's initial ramfs (`rootfs` in mountinfo).
fn root_is_initramfs(k: &mut dyn Kernel) -> bool {
    k.mountinfo().is_ok_and(|m| initramfs_in(&m))
}

/// The pure part of [`root_is_initramfs`], over mountinfo's text.
pub fn initramfs_in(mountinfo: &str) -> bool {
    mountinfo.lines().any(|line| {
        let mut fields = line.split_whitespace();
        let mount_point = fields.nth(4);
        let fs_type = line
            .split_once(" - ")
            .and_then(|(_, right)| right.split_whitespace().next());
        mount_point == Some("/") && fs_type == Some("rootfs")
    })
}

fn io_err(what: String, e: std::io::Error) -> ExecError {
    ExecError::Sys {
        what,
        errno: super::error::io_errno(&e),
    }
}

/// Mounts a fresh `/proc` over the host's, for a PID namespace without a rootfs.
pub fn remount_proc() -> Result<(), ExecError> {
    remount_proc_with(&mut Host)
}

/// [`remount_proc`] through `k`: steps 1 and 3.
pub(crate) fn remount_proc_with(k: &mut dyn Kernel) -> Result<(), ExecError> {
    make_slave(k)?;
    mount_proc(k, Path::new("/proc"))
}

/// Step 3's masks over a fresh `/proc` at `proc_dir`. Entries this kernel
/// does not have are skipped. The read-only remounts repeat the flags the
/// kernel locks on a mount made in a user namespace (nosuid, noexec, nodev),
/// or it refuses them.
fn mask_proc(k: &mut dyn Kernel, proc_dir: &Path) -> Result<(), ExecError> {
    let locked = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    for name in MASKED_PROC {
        let target = proc_dir.join(name);
        let Ok(meta) = std::fs::symlink_metadata(&target) else {
            continue;
        };
        if meta.is_dir() {
            k.mount(
                Some(Path::new("tmpfs")),
                &target,
                Some("tmpfs"),
                locked | MsFlags::MS_RDONLY,
                Some("size=0,mode=555"),
            )
            .map_err(mount_err(3, "mask a /proc directory", &target))?;
        } else {
            k.mount(
                Some(Path::new("/dev/null")),
                &target,
                None,
                MsFlags::MS_BIND,
                None,
            )
            .map_err(mount_err(3, "mask a /proc file with /dev/null", &target))?;
        }
    }
    for name in READ_ONLY_PROC {
        let target = proc_dir.join(name);
        if std::fs::symlink_metadata(&target).is_err() {
            continue;
        }
        k.mount(
            Some(&target),
            &target,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )
        .map_err(mount_err(
            3,
            "bind a /proc entry to make it read-only",
            &target,
        ))?;
        let flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | locked;
        k.mount(None, &target, None, flags, None)
            .map_err(mount_err(3, "remount a /proc entry read-only", &target))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initramfs_is_recognised_in_mountinfo() {
        let ramfs =
            "1 1 0:2 / / rw - rootfs rootfs rw,size=498948k\n22 1 0:20 / /proc rw - proc proc rw\n";
        assert!(initramfs_in(ramfs));
        let disk = include_str!("../../tests/fixtures/kernel/host-6.18-hybrid.mountinfo");
        assert!(!initramfs_in(disk));
    }

    #[test]
    fn mounts_below_the_rootfs_are_found_with_their_escapes() {
        let info = "\
24 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
90 24 8:1 /srv/root /srv/root rw,relatime master:1 - ext4 /dev/sda1 rw
91 90 0:40 / /srv/root/data rw,nosuid master:2 - tmpfs tmpfs rw
92 90 0:41 / /srv/root/my\\040dir ro - tmpfs tmpfs rw
93 24 0:42 / /srv/rootless rw - tmpfs tmpfs rw
";
        let found = mounts_at_or_below(info, Path::new("/srv/root"));
        assert_eq!(
            found,
            [
                PathBuf::from("/srv/root"),
                PathBuf::from("/srv/root/data"),
                PathBuf::from("/srv/root/my dir"),
            ]
        );
    }

    #[test]
    fn refuses_symlinked_proc() {
        let tmp = tempfile::tempdir().unwrap();
        for d in ["dev", "tmp"] {
            std::fs::create_dir(tmp.path().join(d)).unwrap();
        }
        symlink("/proc", tmp.path().join("proc")).unwrap();
        let e = check(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("proc is a symlink"), "{e}");
    }

    #[test]
    fn refuses_missing_dev_and_accepts_plain_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("proc")).unwrap();
        let e = check(tmp.path()).unwrap_err().to_string();
        assert!(
            e.contains("dev is missing") && e.contains("cgmgr rootfs build"),
            "{e}"
        );
        for d in ["dev", "tmp"] {
            std::fs::create_dir(tmp.path().join(d)).unwrap();
        }
        check(tmp.path()).unwrap();
    }
}
