//! `clone3`: the child is born in its namespaces and, with
//! `CLONE_INTO_CGROUP`, already inside its group: no window in which it runs
//! outside the group's limits.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::unistd::Pid;

use super::error::ExecError;

/// `CLONE_INTO_CGROUP` (Linux 5.7).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The kernel's `struct clone_args` (version 2, 88 bytes).
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Which side of the fork we are on.
pub enum Forked {
    /// In the parent: the child's pid, a pidfd of it, and whether the kernel
    /// placed it in the group (false: the caller must move it before
    /// letting it run).
    Parent {
        /// The child, in this process's pid namespace.
        pid: Pid,
        /// A pidfd of the child (`CLONE_PIDFD`): it names the child in any
        /// `/proc`, whichever pid namespace that one shows.
        pidfd: OwnedFd,
        /// Born inside the group.
        placed: bool,
    },
    /// In the child.
    Child,
}

/// `CLONE_PIDFD` (Linux 5.2).
const CLONE_PIDFD: u64 = 0x1000;

/// Set to skip `CLONE_INTO_CGROUP`, so tests can exercise the fallback
/// that kernels before 5.7 take.
pub const FORCE_FALLBACK_ENV: &str = "CGMGR_EXEC_NO_CLONE_INTO_CGROUP";

/// Clones with `ns_flags`, into the cgroup `group_dir` when the kernel
/// supports it. Must be called while the process has a single thread.
///
/// With a new user namespace, the clone is made with the effective uid
/// `owner` (the run's owner id, which no sandbox maps: see
/// [`super::idmap`]), so that the namespace is owned by an id no file can
/// carry, and the kernel counts the namespace, and every user namespace or
/// inotify instance made inside it, against that id's quotas instead of
/// root's: a sandbox cannot exhaust what the host's root needs; the child
/// is still born in the group (see [`clone_as`]). Without
/// `CLONE_INTO_CGROUP` the child is placed by the parent before it runs (it
/// waits on the go pipe). Where the kernel refuses unprivileged user
/// namespaces, the clone is made as root.
pub fn clone_into(
    ns_flags: u64,
    group_dir: BorrowedFd<'_>,
    owner: Option<u32>,
) -> Result<Forked, ExecError> {
    let into = CloneArgs {
        flags: ns_flags | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: u64::try_from(group_dir.as_raw_fd()).unwrap_or(0),
        ..Default::default()
    };
    let plain = CloneArgs {
        flags: ns_flags,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    let use_into = std::env::var_os(FORCE_FALLBACK_ENV).is_none();
    if let Some(owner) = owner.filter(|_| ns_flags & CLONE_NEWUSER != 0)
        && nix::unistd::geteuid().is_root()
    {
        if use_into {
            match clone_as(owner, &into) {
                Ok(forked) => return Ok(mark_placed(forked, true)),
                // Before 5.7, or a cgroup this uid may not enter: the
                // plain clone below.
                Err(Errno::EINVAL | Errno::E2BIG | Errno::EACCES) => {}
                Err(Errno::EPERM | Errno::ENOSPC | Errno::EUSERS) => {}
                Err(errno) => return Err(clone_error(ns_flags, errno)),
            }
        }
        match clone_as(owner, &plain) {
            Ok(forked) => return Ok(mark_placed(forked, false)),
            Err(Errno::EPERM | Errno::EACCES | Errno::ENOSPC | Errno::EUSERS) => {}
            Err(errno) => return Err(clone_error(ns_flags, errno)),
        }
    }
    if !use_into {
        return clone_plain(&plain);
    }
    match raw_clone3(&into) {
        Ok(f) => Ok(mark_placed(f, true)),
        // Before 5.7 the kernel refuses the unknown flag or the larger struct.
        Err(Errno::EINVAL | Errno::E2BIG) => clone_plain(&plain),
        Err(errno) => Err(clone_error(ns_flags, errno)),
    }
}

/// Whether the kernel places a child in the cgroup `group_dir` at birth
/// (`cgmgr doctor`'s probe): a child cloned with `CLONE_INTO_CGROUP` into
/// it exits at once and is reaped here. The errno of a refusal: `EINVAL`
/// or `E2BIG` before 5.7, `ENOSYS` without clone3 (before 5.3, or a
/// seccomp filter), `EACCES`/`EBUSY` for a cgroup this process may not
/// enter. Unlike [`clone_into`] it may be called with other threads
/// running: the child does nothing but `_exit`.
pub fn probe_clone_into(group_dir: BorrowedFd<'_>) -> Result<(), Errno> {
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: u64::try_from(group_dir.as_raw_fd()).map_err(|_| Errno::EBADF)?,
        ..Default::default()
    };
    match raw_clone3(&args)? {
        Forked::Child => {
            // SAFETY: _exit ends the child at once: no destructor, atexit
            // handler or lock of the parent's copied state is touched, so
            // a lock another thread held at the clone cannot matter.
            unsafe { libc::_exit(0) }
        }
        Forked::Parent { pid, .. } => {
            nix::sys::wait::waitpid(pid, None)?;
            Ok(())
        }
    }
}

/// `CLONE_NEWUSER`.
const CLONE_NEWUSER: u64 = 0x1000_0000;

/// clone3 made with effective uid `owner`; root is back in the parent before
/// this returns (the real and saved uids stay 0, so the permitted
/// capabilities survive the round trip).
///
/// The filesystem uid stays 0 meanwhile: the kernel checks the write
/// permission on the target's `cgroup.procs` for `CLONE_INTO_CGROUP` with
/// the fsuid, while the new user namespace is owned by, and charged to, the
/// euid. Being born in the group spares the parent a migration, which
/// waits for an RCU grace period (milliseconds on every run).
fn clone_as(owner: u32, args: &CloneArgs) -> Result<Forked, Errno> {
    use nix::unistd::{Uid, setfsuid, setresuid};
    let keep = Uid::from_raw(u32::MAX); // -1: unchanged
    setresuid(keep, Uid::from_raw(owner), keep)?;
    setfsuid(Uid::from_raw(0));
    let forked = raw_clone3(args);
    if let Ok(Forked::Child) = forked {
        return Ok(Forked::Child);
    }
    // In the parent, whatever clone3 answered: root again.
    setresuid(keep, Uid::from_raw(0), keep).map_err(|_| Errno::EPERM)?;
    forked
}

/// The fallback: a plain clone3; the parent moves the child into the group
/// while the child waits on the go pipe.
fn clone_plain(plain: &CloneArgs) -> Result<Forked, ExecError> {
    raw_clone3(plain)
        .map(|f| mark_placed(f, false))
        .map_err(|errno| clone_error(plain.flags, errno))
}

fn mark_placed(f: Forked, placed: bool) -> Forked {
    match f {
        Forked::Parent { pid, pidfd, .. } => Forked::Parent { pid, pidfd, placed },
        Forked::Child => Forked::Child,
    }
}

fn clone_error(flags: u64, errno: Errno) -> ExecError {
    let hint = match errno {
        Errno::ENOSYS => "\n  hint: clone3 needs Linux 5.3 or later",
        Errno::EPERM | Errno::ENOSPC | Errno::EUSERS => {
            "\n  hint: namespaces may be disabled or exhausted (see /proc/sys/user/max_user_namespaces, kernel.unprivileged_userns_clone)"
        }
        // The kernel lets a user's process enter a cgroup only when it may
        // write cgroup.procs of the common ancestor of where it is and
        // where it goes: from outside the delegated subtree it may not.
        Errno::EACCES if !nix::unistd::geteuid().is_root() => {
            "\n  hint: a user's cgmgr exec can start a run only from inside the subtree delegated to \
             it (the kernel moves an unprivileged process only within a subtree it owns): run it \
             in a delegated scope (`systemd-run --user --scope -p Delegate=yes cgmgr exec ...`), \
             or give the group `standby = N` in its [exec] table so that your daemon, which lives \
             in the subtree, serves the run"
        }
        _ => "",
    };
    ExecError::Clone { flags, errno, hint }
}

fn raw_clone3(args: &CloneArgs) -> Result<Forked, Errno> {
    let mut pidfd: libc::c_int = -1;
    let args = CloneArgs {
        flags: args.flags | CLONE_PIDFD,
        pidfd: std::ptr::from_mut(&mut pidfd) as u64,
        ..*args
    };
    // SAFETY: args points to a live, correctly laid out clone_args of the
    // size passed, whose pidfd field points to `pidfd`, alive for the call;
    // no stack is given, so the child continues on a copy of our stack
    // exactly as after fork(2). The caller guarantees a single thread, so
    // the child inherits no lock held by another thread.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            std::ptr::from_ref(&args),
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(Errno::last()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent {
            pid: Pid::from_raw(i32::try_from(pid).map_err(|_| Errno::EOVERFLOW)?),
            // SAFETY: the kernel stored a new descriptor in `pidfd` for a
            // successful CLONE_PIDFD clone; nothing else owns it.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
            placed: false,
        }),
    }
}
