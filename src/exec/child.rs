//! The child's side (PID 1 of the new PID namespace): the privileged steps
//! that build the sandbox in order (ids, descriptors, keyring, cgroup
//! namespace, quotas, hostname, loopback, the root), then the fork of the
//! workload, whose init it becomes.

use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::{ForkResult, Gid, Uid};

use super::error::{ExecError, sys};
use super::{ExecSpec, init, rootfs, standby, workload};
use crate::policy::Namespace;

/// Child side (PID 1 of the new PID namespace): returns init's exit status.
pub(crate) fn child_main(spec: &ExecSpec, go: OwnedFd, job: Option<OwnedFd>) -> i32 {
    match child_setup(spec, go, job) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cgmgr: exec: {e}");
            125
        }
    }
}

fn child_setup(spec: &ExecSpec, go: OwnedFd, job: Option<OwnedFd>) -> Result<i32, ExecError> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(sys("prctl(PR_SET_PDEATHSIG)"))?;
    let mut byte = [0u8; 1];
    if nix::unistd::read(&go, &mut byte) != Ok(1) {
        return Ok(125); // the parent died before letting us go
    }
    if spec.has(Namespace::User) {
        let (uid, gid) = (Uid::from_raw(0), Gid::from_raw(0));
        nix::unistd::setresgid(gid, gid, gid).map_err(sys("setresgid(0) in the user namespace"))?;
        nix::unistd::setresuid(uid, uid, uid).map_err(sys("setresuid(0) in the user namespace"))?;
        // A credential change clears the parent-death signal: arm it again,
        // then make sure the parent did not die in between.
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(sys("prctl(PR_SET_PDEATHSIG)"))?;
        if parent_gone(&go) {
            return Ok(125);
        }
    }
    drop(go);
    // Whatever the caller left open (a cgroupfs directory, a policy file,
    // an inherited socket) is closed before the sandbox is built, not only
    // in the workload: init lives as long as the workload does. A prepared
    // sandbox keeps the socket its command comes on.
    let job = match job {
        Some(fd) => Some(workload::close_fds_but(fd)?),
        None => {
            workload::close_fds_from(3)?;
            None
        }
    };
    new_session_keyring()?;
    if spec.has(Namespace::Cgroup) {
        // Now, not at clone: the parent may have placed us only after the
        // clone (kernels without CLONE_INTO_CGROUP), and the namespace's
        // root is the cgroup we are in when it is made: the group.
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
            .map_err(sys("unshare(CLONE_NEWCGROUP)"))?;
    }
    // After the last namespace of our own is made.
    if spec.has(Namespace::User) {
        cap_namespace_quotas(spec.workload.nested_userns)?;
    }
    if spec.has(Namespace::Uts) {
        nix::unistd::sethostname(&spec.hostname)
            .map_err(sys(format!("sethostname({:?})", spec.hostname)))?;
    }
    if spec.has(Namespace::Net) {
        loopback_up()?;
    }
    match &spec.rootfs {
        Some(rootfs) => rootfs::enter(rootfs, spec.switch, spec.readonly_root)?,
        None if spec.has(Namespace::Mount) && spec.has(Namespace::Pid) => rootfs::remount_proc()?,
        None => {}
    }
    if !spec.has(Namespace::Pid) {
        // Not PID 1: become the reaper of the workload's orphans anyway.
        nix::sys::prctl::set_child_subreaper(true).map_err(sys("prctl(PR_SET_CHILD_SUBREAPER)"))?;
    }
    init::block_signals().map_err(sys("sigprocmask"))?;
    // SAFETY: this process is single-threaded (a fresh clone of a
    // single-threaded parent), so the forked child may run any code.
    match unsafe { nix::unistd::fork() }.map_err(sys("fork"))? {
        ForkResult::Child => std::process::exit(match job {
            // A prepared sandbox: the workload gets ready, then waits for
            // its command and stdio.
            Some(socket) => standby::run_prepared(socket, &spec.workload),
            None => workload::exec(&spec.workload),
        }),
        ForkResult::Parent { child } => {
            drop(job);
            Ok(init::run(child))
        }
    }
}

/// Caps what the sandbox may take of kernel quotas that count against the
/// user who created its user namespace (root), so that one run cannot
/// exhaust them for the host: the limits of the sandbox's own user
/// namespace, which its root may set (CAP_SYS_RESOURCE there) and which
/// every nested namespace also obeys. No nested namespaces at all unless
/// `nested_userns = true`.
fn cap_namespace_quotas(nested_userns: bool) -> Result<(), ExecError> {
    let namespaces = if nested_userns { "16" } else { "0" };
    let limits = [
        ("max_user_namespaces", namespaces),
        ("max_mnt_namespaces", namespaces),
        ("max_net_namespaces", namespaces),
        ("max_pid_namespaces", namespaces),
        ("max_ipc_namespaces", namespaces),
        ("max_uts_namespaces", namespaces),
        ("max_cgroup_namespaces", namespaces),
        ("max_time_namespaces", namespaces),
        ("max_fanotify_groups", "16"),
        ("max_fanotify_marks", "8192"),
        ("max_inotify_instances", "32"),
        ("max_inotify_watches", "65536"),
    ];
    for (name, value) in limits {
        let path = format!("/proc/sys/user/{name}");
        match std::fs::write(&path, value) {
            Ok(()) => {}
            // A kernel without this limit (time namespaces, older kernels).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ExecError::Sys {
                    what: format!("limiting {path} to {value} in the sandbox's user namespace"),
                    errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
                });
            }
        }
    }
    Ok(())
}

/// Joins a new anonymous session keyring: the caller's keys (kept in its
/// session keyring) are out of the workload's reach.
fn new_session_keyring() -> Result<(), ExecError> {
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
    if rc < 0 {
        return Err(ExecError::Sys {
            what: "keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL)".into(),
            errno: Errno::last(),
        });
    }
    Ok(())
}

/// True when the parent closed its end of the go pipe (it exited).
fn parent_gone(go: &OwnedFd) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut fds = [PollFd::new(go.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
        && fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLHUP))
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
    .map_err(sys("socket for SIOCSIFFLAGS"))?;
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
