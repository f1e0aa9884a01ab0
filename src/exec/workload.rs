//! The last steps before `execve`, in the workload process: a new session
//! (no controlling terminal to inject into with TIOCSTI), ids, capabilities
//! cut to a small set, no new privileges, only fds 0-2, a clean environment,
//! and last the seccomp filters.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::stat::{Mode, umask};
use nix::unistd::{Gid, Uid};

use caps::{CapSet, Capability, CapsHashSet};

use super::error::{ExecError, sys};

/// Capabilities the workload keeps (when it runs as uid 0 inside): enough
/// for a root shell to manage its own files and processes; no CAP_SYS_ADMIN,
/// CAP_SYS_CHROOT, CAP_NET_ADMIN, CAP_SYS_PTRACE, CAP_MKNOD.
pub const KEPT_CAPS: [Capability; 9] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FOWNER,
    Capability::CAP_FSETID,
    Capability::CAP_KILL,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
];

/// Capabilities uid 0 keeps without a user namespace, where it is the host's
/// root: [`KEPT_CAPS`] without CAP_KILL (signals to host processes).
pub const KEPT_CAPS_HOST_ROOT: [Capability; 8] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FOWNER,
    Capability::CAP_FSETID,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
];

/// PATH when the policy and flags give none (the common distribution default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the workload runs as and with.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// The complete environment.
    pub env: Vec<(String, String)>,
    /// Working directory (inside the new root).
    pub cwd: PathBuf,
    /// User id (inside).
    pub uid: u32,
    /// Group id (inside).
    pub gid: u32,
    /// Whether the workload is in a user namespace (setgroups is denied there).
    pub in_user_ns: bool,
    /// Seccomp filters, loaded last before `execve`.
    pub seccomp: super::seccomp::Filters,
    /// Whether it may create user namespaces of its own.
    pub nested_userns: bool,
}

/// Prepares the process and executes the workload; returns only on failure,
/// with the exit status to use: 127 command not found, 126 not executable,
/// 125 a setup step failed.
pub fn exec(w: &Workload) -> i32 {
    if let Err(e) = prepare(w, None) {
        eprintln!("cgmgr: exec: {e}");
        return 125;
    }
    finish(w)
}

/// The last steps, once [`prepare`]d: loads the seccomp filters and
/// executes; returns only on failure, with the exit status to use.
pub fn finish(w: &Workload) -> i32 {
    // Last: from here on only what the filters allow works.
    if let Err(e) = w.seccomp.load() {
        eprintln!("cgmgr: exec: {e}");
        return 125;
    }
    execute(w)
}

/// Executes the command (the filters already loaded); returns only on
/// failure, with the exit status to use: 127 not found, 126 not executable.
pub fn execute(w: &Workload) -> i32 {
    let err = execvpe(w);
    let cmd = &w.argv[0];
    eprintln!("cgmgr: exec: {cmd}: {}", err.desc());
    match err {
        Errno::ENOENT | Errno::ENOTDIR => 127,
        _ => 126,
    }
}

/// Everything before the filters: signals, session, working directory,
/// ids, capabilities, no new privileges, and only fds 0-2 left open (and
/// `keep`, moved to fd 3, which is returned).
pub(crate) fn prepare(w: &Workload, keep: Option<OwnedFd>) -> Result<Option<OwnedFd>, ExecError> {
    // Signals blocked by init for sigwait would stay blocked across execve.
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .map_err(sys("sigprocmask"))?;
    // The Rust runtime ignores SIGPIPE in cgmgr, and an ignored signal stays
    // ignored across execve: the workload gets the default back, as
    // std::process::Command gives its children (else `yes | head -1` has
    // `yes` fail on EPIPE instead of dying of SIGPIPE).
    super::init::restore_default_action(Signal::SIGPIPE).map_err(sys("sigaction(SIGPIPE)"))?;
    nix::unistd::setsid().map_err(sys("setsid"))?;
    umask(Mode::from_bits_truncate(0o022));
    nix::unistd::chdir(&w.cwd).map_err(sys(format!("working directory {}", w.cwd.display())))?;
    drop_bounding_set(keep_for(w))?;
    if !w.in_user_ns {
        nix::unistd::setgroups(&[]).map_err(sys("setgroups([])"))?;
    }
    let gid = Gid::from_raw(w.gid);
    let uid = Uid::from_raw(w.uid);
    nix::unistd::setresgid(gid, gid, gid).map_err(sys(format!("setresgid({})", w.gid)))?;
    nix::unistd::setresuid(uid, uid, uid).map_err(sys(format!("setresuid({})", w.uid)))?;
    // After the id change, which clears it: die with init.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(sys("prctl(PR_SET_PDEATHSIG)"))?;
    set_caps(keep_for(w))?;
    nix::sys::prctl::set_no_new_privs().map_err(sys("prctl(PR_SET_NO_NEW_PRIVS)"))?;
    match keep {
        Some(fd) => close_fds_but(fd).map(Some),
        None => close_fds_from(3).map(|()| None),
    }
}

/// The capabilities the workload keeps: none for a non-zero uid.
fn keep_for(w: &Workload) -> &'static [Capability] {
    match (w.uid, w.in_user_ns) {
        (0, true) => &KEPT_CAPS,
        (0, false) => &KEPT_CAPS_HOST_ROOT,
        _ => &[],
    }
}

/// Drops every capability not kept from the bounding set, and clears the
/// ambient set, so not even a file capability can bring one back.
///
/// The bounding set is walked by number up to the kernel's last capability
/// (PR_CAPBSET_DROP answers EINVAL past it) rather than over the `caps`
/// crate's list: a capability newer than the crate would otherwise survive.
fn drop_bounding_set(keep: &[Capability]) -> Result<(), ExecError> {
    caps::clear(None, CapSet::Ambient).map_err(|e| ExecError::Sys {
        what: format!("clearing the ambient capabilities: {e}"),
        errno: Errno::last(),
    })?;
    for cap in 0..64u8 {
        if keep.iter().any(|k| k.index() == cap) {
            continue;
        }
        // SAFETY: PR_CAPBSET_DROP takes a capability number, no pointers.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
        // EINVAL: past the kernel's last capability (they are numbered
        // without gaps), so nothing higher exists either.
        if rc != 0 && Errno::last() == Errno::EINVAL {
            break;
        }
        if rc != 0 {
            return Err(ExecError::Sys {
                what: format!("prctl(PR_CAPBSET_DROP, {cap})"),
                errno: Errno::last(),
            });
        }
    }
    Ok(())
}

/// Sets effective = permitted = `keep`, inheritable = none (effective
/// first: it must stay within permitted at every step).
fn set_caps(keep: &[Capability]) -> Result<(), ExecError> {
    let kept: CapsHashSet = keep.iter().copied().collect();
    for (set, value) in [
        (CapSet::Effective, &kept),
        (CapSet::Permitted, &kept),
        (CapSet::Inheritable, &CapsHashSet::new()),
    ] {
        caps::set(None, set, value).map_err(|e| ExecError::Sys {
            what: format!("setting the {set:?} capabilities to {keep:?}: {e}"),
            errno: Errno::last(),
        })?;
    }
    Ok(())
}

/// Closes every descriptor from `first` up, whatever its CLOEXEC flag:
/// nothing cgmgr or its caller opened (a cgroupfs directory, a policy file)
/// reaches the workload.
pub(crate) fn close_fds_from(first: u32) -> Result<(), ExecError> {
    // SAFETY: close_range takes two integers and flags; it only closes
    // descriptors, and nothing in this process uses them after this point.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32) };
    if rc != 0 {
        return Err(ExecError::Sys {
            what: "close_range(3, ~0)".into(),
            errno: Errno::last(),
        });
    }
    Ok(())
}

/// Closes every descriptor but `keep`, which becomes fd 3 (close-on-exec).
pub(crate) fn close_fds_but(keep: OwnedFd) -> Result<OwnedFd, ExecError> {
    let kept = if keep.as_raw_fd() == 3 {
        keep
    } else {
        // SAFETY: dup3 onto fd 3 closes whatever fd 3 was, which is about
        // to be closed anyway; the new descriptor is owned from here on.
        let rc = unsafe { libc::dup3(keep.as_raw_fd(), 3, libc::O_CLOEXEC) };
        if rc != 3 {
            return Err(sys("dup3(.., 3)")(Errno::last()));
        }
        drop(keep);
        // SAFETY: fd 3 was just made by dup3 and nothing else owns it.
        unsafe { OwnedFd::from_raw_fd(3) }
    };
    close_fds_from(4)?;
    Ok(kept)
}

/// Refuses standard descriptors that reach outside the sandbox by path: a
/// directory (`/proc/self/fd/0/..` walks the host's tree from it) or an
/// `O_PATH` descriptor. Closed ones are fine: the workload gets none.
pub fn check_std_fds() -> Result<(), ExecError> {
    let std = [0, 1, 2].map(|fd| {
        // Asked of the raw number first: a BorrowedFd may only be made of
        // a descriptor that is open.
        // SAFETY: F_GETFD takes no argument and touches no memory; on a
        // closed descriptor it answers EBADF.
        let open = unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1;
        // SAFETY: fd is open (just checked), and this single-threaded
        // check neither closes nor keeps it: it stays open while borrowed.
        open.then(|| unsafe { BorrowedFd::borrow_raw(fd) })
    });
    check_stdio(std)
}

/// [`check_std_fds`] for the descriptors a caller passed (`None`: closed).
pub fn check_stdio(fds: [Option<BorrowedFd<'_>>; 3]) -> Result<(), ExecError> {
    for (fd, (borrowed, name)) in fds
        .into_iter()
        .zip(["stdin", "stdout", "stderr"])
        .enumerate()
    {
        let Some(borrowed) = borrowed else { continue };
        let flags = match nix::fcntl::fcntl(borrowed, nix::fcntl::FcntlArg::F_GETFL) {
            Ok(f) => nix::fcntl::OFlag::from_bits_truncate(f),
            Err(Errno::EBADF) => continue,
            Err(e) => return Err(sys(format!("fcntl({name}, F_GETFL)"))(e)),
        };
        let refuse = |what: &str| {
            Err(ExecError::Invalid(format!(
                "{name} (fd {fd}) is {what}: through /proc/self/fd/{fd} it would hand the workload \
                 a path into the host's filesystem; redirect it from a file, a pipe or a terminal"
            )))
        };
        if flags.contains(nix::fcntl::OFlag::O_PATH) {
            return refuse("an O_PATH descriptor");
        }
        let stat = nix::sys::stat::fstat(borrowed).map_err(sys(format!("fstat({name})")))?;
        if stat.st_mode & libc::S_IFMT == libc::S_IFDIR {
            return refuse("a directory");
        }
    }
    Ok(())
}

/// Searches PATH (from the workload's environment) like execvp and executes.
fn execvpe(w: &Workload) -> Errno {
    let Ok(args) = w
        .argv
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
    else {
        return Errno::EINVAL;
    };
    let Ok(env) = w
        .env
        .iter()
        .map(|(k, v)| CString::new(format!("{k}={v}")))
        .collect::<Result<Vec<_>, _>>()
    else {
        return Errno::EINVAL;
    };
    let cmd = &w.argv[0];
    if cmd.contains('/') {
        return exec_path(Path::new(cmd), &args, &env);
    }
    let path = w
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map_or(DEFAULT_PATH, |(_, v)| v.as_str());
    let mut result = Errno::ENOENT;
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        match exec_path(&Path::new(dir).join(cmd), &args, &env) {
            Errno::ENOENT | Errno::ENOTDIR => {}
            // Remember "found but not executable", keep looking (as execvp).
            e => result = e,
        }
    }
    result
}

fn exec_path(path: &Path, args: &[CString], env: &[CString]) -> Errno {
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
        return Errno::EINVAL;
    };
    match nix::unistd::execve(&c_path, args, env) {
        Err(e) => e,
        Ok(never) => match never {},
    }
}
