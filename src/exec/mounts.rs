//! The run's own mounts (`mounts` in the `[exec]` table, `--bind`,
//! `--ro-bind`, `--tmpfs`): made in the child after the rootfs's `/tmp`
//! and before the root switch, parents first.
//!
//! Every source and destination is opened without following a symlink
//! (`openat2` with `RESOLVE_NO_SYMLINKS`, else one `O_NOFOLLOW` step per
//! component) and the mount is made from and onto those descriptors
//! (`/proc/self/fd/N`), so a path swapped for a symlink after the checks
//! cannot redirect it. A destination missing from the rootfs is created
//! only inside a tmpfs of the run (`/tmp`, or a `tmpfs` mount above it):
//! cgmgr never writes into the rootfs on the host.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

use super::error::ExecError;
use super::kernel::Kernel;
use super::spec::ExecFlags;
use crate::policy::ExecConfig;
use crate::policy::run::{self, Mount};

/// The policy's mounts, then the flags' (`--bind`, `--ro-bind`,
/// `--tmpfs`), sorted parents first; two at one place is an error.
pub fn resolve(policy: &ExecConfig, flags: &ExecFlags) -> Result<Vec<Mount>, ExecError> {
    let mut mounts = policy.mounts.clone();
    let flag = |name: &str, value: &str, e: run::RunError| {
        ExecError::Invalid(format!("{name} {value}: {e}"))
    };
    for v in &flags.binds {
        mounts.push(run::parse_bind_flag(v, false).map_err(|e| flag("--bind", v, e))?);
    }
    for v in &flags.ro_binds {
        mounts.push(run::parse_bind_flag(v, true).map_err(|e| flag("--ro-bind", v, e))?);
    }
    for v in &flags.tmpfs {
        mounts.push(run::parse_tmpfs_flag(v).map_err(|e| flag("--tmpfs", v, e))?);
    }
    for (i, m) in mounts.iter().enumerate() {
        if mounts[..i].iter().any(|o| o.at() == m.at()) {
            return Err(ExecError::Invalid(format!(
                "two mounts at {}: keep one of them",
                m.at().display()
            )));
        }
    }
    // Stable: mounts at the same depth keep their order.
    mounts.sort_by_key(|m| m.at().components().count());
    Ok(mounts)
}

/// Whether `at` lies directly inside a tmpfs this run mounts before it:
/// the deepest of the run's mounts above it (its `/tmp` counting as one) is
/// a tmpfs, not a bind, whose content is the host's.
fn in_run_tmpfs(at: &Path, mounts: &[Mount]) -> bool {
    let tmp = Path::new("/tmp");
    let deepest = mounts
        .iter()
        .filter(|m| at != m.at() && at.starts_with(m.at()))
        .max_by_key(|m| m.at().components().count());
    match deepest {
        Some(m) if m.at().components().count() >= 2 || !at.starts_with(tmp) => {
            matches!(m, Mount::Tmpfs { .. })
        }
        _ => at != tmp && at.starts_with(tmp),
    }
}

/// The destinations that must exist in the rootfs (those not inside a
/// tmpfs of the run), each checked without following a symlink; checked
/// before anything is created.
pub fn check_destinations(rootfs: &Path, mounts: &[Mount]) -> Result<(), ExecError> {
    for m in mounts {
        let at = m.at();
        if in_run_tmpfs(at, mounts) {
            continue;
        }
        let mut walked = rootfs.to_path_buf();
        for part in at.components().skip(1) {
            walked.push(part);
            match std::fs::symlink_metadata(&walked) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(ExecError::Invalid(format!(
                        "mount destination {}: {} is a symlink in the rootfs: mounts are never made through one",
                        at.display(),
                        walked.display()
                    )));
                }
                Ok(_) => {}
                Err(_) => {
                    return Err(ExecError::Invalid(format!(
                        "mount destination {} does not exist in the rootfs {}: cgmgr never writes into the rootfs; create it there, or mount it under /tmp or under a tmpfs mount",
                        at.display(),
                        rootfs.display()
                    )));
                }
            }
        }
    }
    Ok(())
}

/// The run's mounts, made below `rootfs` (step 5b, after `/tmp`).
pub(crate) fn mount_all(
    k: &mut dyn Kernel,
    rootfs: &Path,
    mounts: &[Mount],
) -> Result<(), ExecError> {
    // The devices of the run's own tmpfs mounts: the only places where a
    // mount point is created.
    let mut devs = Vec::new();
    if !mounts.is_empty() {
        devs.extend(mount_dev(k, rootfs, Path::new("/tmp")));
    }
    for m in mounts {
        let creatable = in_run_tmpfs(m.at(), mounts);
        match m {
            Mount::Bind {
                source,
                at,
                readonly,
            } => bind(
                k,
                rootfs,
                source,
                at,
                *readonly,
                creatable.then_some(&devs[..]),
            )?,
            Mount::Tmpfs { at, size } => {
                tmpfs(k, rootfs, at, *size, creatable.then_some(&devs[..]))?;
                devs.extend(mount_dev(k, rootfs, at));
            }
        }
    }
    Ok(())
}

/// The device of the mount at `at` below `rootfs`.
fn mount_dev(k: &mut dyn Kernel, rootfs: &Path, at: &Path) -> Option<u64> {
    let fd = k
        .open_no_symlinks(rootfs, at.strip_prefix("/").unwrap_or(at))
        .ok()?;
    k.identity(&fd).map(|(dev, _)| dev)
}

fn err(what: &'static str, at: &Path) -> impl FnOnce(nix::errno::Errno) -> ExecError {
    let target = at.to_path_buf();
    move |errno| ExecError::Mount {
        step: 5,
        what,
        target,
        errno,
    }
}

fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// The destination's descriptor below `rootfs`, created first (a directory,
/// or an empty file for a file's bind) when it is inside a tmpfs of the run.
fn destination(
    k: &mut dyn Kernel,
    rootfs: &Path,
    at: &Path,
    dir: bool,
    creatable: Option<&[u64]>,
) -> Result<OwnedFd, ExecError> {
    let relative = at.strip_prefix("/").unwrap_or(at);
    if let Some(devs) = creatable {
        k.make_mount_point(rootfs, relative, dir, devs)
            .map_err(err("create the mount point in the run's tmpfs", at))?;
    }
    k.open_no_symlinks(rootfs, relative)
        .map_err(err("open the mount point without following symlinks", at))
}

fn bind(
    k: &mut dyn Kernel,
    rootfs: &Path,
    source: &Path,
    at: &Path,
    readonly: bool,
    creatable: Option<&[u64]>,
) -> Result<(), ExecError> {
    let relative = source.strip_prefix("/").unwrap_or(source);
    let src = k.open_no_symlinks(Path::new("/"), relative).map_err(err(
        "open the bind's source without following symlinks",
        source,
    ))?;
    if k.fs_type(&src)
        .is_some_and(|t| run::KERNEL_FILESYSTEMS.contains(&t))
    {
        return Err(err(
            "bind a source on a kernel file system (proc, sys, cgroup...)",
            source,
        )(nix::errno::Errno::EACCES));
    }
    let dir = k.is_dir(&src);
    let dst = destination(k, rootfs, at, dir, creatable)?;
    let (src_path, dst_path) = (fd_path(&src), fd_path(&dst));
    k.mount(
        Some(&src_path),
        &dst_path,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )
    .map_err(err("bind", at))?;
    drop(dst);
    // The new mount, by descriptor again, and it must be the bind (its
    // root is the source's inode): a rename in the rootfs since would
    // otherwise have the flags below land on another mount.
    let relative_at = at.strip_prefix("/").unwrap_or(at);
    let mounted = k
        .open_no_symlinks(rootfs, relative_at)
        .map_err(err("open the bind after mounting it", at))?;
    if k.identity(&mounted) != k.identity(&src) {
        return Err(err(
            "find the bind where it was made (the path changed)",
            at,
        )(nix::errno::Errno::ESTALE));
    }
    // Private: a mount the host makes below the source later does not
    // appear in the bind, without its flags.
    k.mount(
        None,
        &fd_path(&mounted),
        None,
        MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        None,
    )
    .map_err(err("make the bind's mounts private", at))?;
    let attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | if readonly { MOUNT_ATTR_RDONLY } else { 0 };
    let words = super::rootfs::Words {
        setattr: "make the bind nosuid, nodev (and read-only if asked), submounts too",
        find: "find the bind in mountinfo",
        remount: "remount a mount of the bind",
    };
    let point = rootfs.join(relative_at);
    super::rootfs::restrict_recursively(k, &fd_path(&mounted), &point, attrs, 5, &words)
}

fn tmpfs(
    k: &mut dyn Kernel,
    rootfs: &Path,
    at: &Path,
    size: Option<crate::cgroup::values::Bytes>,
    creatable: Option<&[u64]>,
) -> Result<(), ExecError> {
    let dst = destination(k, rootfs, at, true, creatable)?;
    let data = match size {
        Some(b) => format!("mode=755,size={}", b.0),
        None => "mode=755".into(),
    };
    k.mount(
        Some(Path::new("tmpfs")),
        &fd_path(&dst),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(&data),
    )
    .map_err(err("mount a tmpfs", at))
}

/// `mount_setattr` attributes.
pub(crate) const MOUNT_ATTR_RDONLY: u64 = 0x1;
/// See [`MOUNT_ATTR_RDONLY`].
pub(crate) const MOUNT_ATTR_NOSUID: u64 = 0x2;
/// See [`MOUNT_ATTR_RDONLY`].
pub(crate) const MOUNT_ATTR_NODEV: u64 = 0x4;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::values::Bytes;

    fn bind(source: &str, at: &str, readonly: bool) -> Mount {
        Mount::Bind {
            source: source.into(),
            at: at.into(),
            readonly,
        }
    }

    #[test]
    fn mounts_are_made_parents_first_and_once_per_place() {
        let policy = ExecConfig {
            mounts: vec![bind("/srv", "/box/in", true)],
            ..ExecConfig::default()
        };
        let flags = ExecFlags {
            tmpfs: vec!["/box:1M".into()],
            ..ExecFlags::default()
        };
        let m = resolve(&policy, &flags).unwrap();
        assert_eq!(
            m,
            vec![
                Mount::Tmpfs {
                    at: "/box".into(),
                    size: Some(Bytes(1 << 20))
                },
                bind("/srv", "/box/in", true)
            ]
        );
        assert!(in_run_tmpfs(Path::new("/box/in"), &m));
        assert!(!in_run_tmpfs(Path::new("/box"), &m));
        assert!(in_run_tmpfs(Path::new("/tmp/x"), &m));
        // A bind between: its content is the host's, nothing is made in it.
        let between = [
            bind("/srv/evil", "/tmp/e", false),
            bind("/srv/f", "/tmp/e/link/x", true),
        ];
        assert!(in_run_tmpfs(Path::new("/tmp/e"), &between));
        assert!(!in_run_tmpfs(Path::new("/tmp/e/link/x"), &between));
        let deeper = [
            Mount::Tmpfs {
                at: "/work".into(),
                size: None,
            },
            bind("/srv", "/work/in", false),
        ];
        assert!(!in_run_tmpfs(Path::new("/work/in/deep"), &deeper));
        assert!(!in_run_tmpfs(Path::new("/tmp"), &m), "/tmp itself is there");
        let twice = ExecFlags {
            tmpfs: vec!["/box".into(), "/box:2M".into()],
            ..ExecFlags::default()
        };
        assert!(
            resolve(&ExecConfig::default(), &twice)
                .unwrap_err()
                .to_string()
                .contains("two mounts at /box")
        );
        let bad = ExecFlags {
            ro_binds: vec!["/srv:/proc/x".into()],
            ..ExecFlags::default()
        };
        let e = resolve(&ExecConfig::default(), &bad)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--ro-bind /srv:/proc/x: \"/proc/x\" lies on /proc"),
            "{e}"
        );
    }

    #[test]
    fn destinations_outside_a_run_tmpfs_must_exist_in_the_rootfs() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("task")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("etc")).unwrap();
        let ok = [bind("/srv", "/task", true), bind("/srv", "/tmp/new", false)];
        check_destinations(root, &ok).unwrap();
        let e = check_destinations(root, &[bind("/srv", "/out", false)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist in the rootfs"), "{e}");
        let e = check_destinations(root, &[bind("/srv", "/etc/x", false)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("is a symlink in the rootfs"), "{e}");
    }
}
