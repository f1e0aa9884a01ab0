//! The last steps before `execve`, in the workload process: a new session
//! (no controlling terminal to inject into with TIOCSTI), ids, capabilities
//! cut to a small set, no new privileges, only fds 0-2, a clean environment,
//! and last the seccomp filters.

use std::ffi::CString;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::stat::Mode;

use caps::{CapSet, Capability};

use super::error::{ExecError, Step, step, sys};
use super::kernel::{Host, Kernel};

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
    /// Resource limits set before `execve`, soft = hard: `(RLIMIT_*, value)`.
    pub rlimits: Vec<(u32, u64)>,
}

/// Prepares the process and executes the workload; returns only on failure,
/// with the exit status to use: 127 command not found, 126 not executable,
/// 125 a setup step failed.
pub fn exec(w: &Workload) -> i32 {
    exec_with(&mut Host, w)
}

/// [`exec`] through `k`.
pub(crate) fn exec_with(k: &mut dyn Kernel, w: &Workload) -> i32 {
    if let Err(e) = prepare_with(k, w, None) {
        eprintln!("cgmgr: exec: {e}");
        return 125;
    }
    finish_with(k, w)
}

/// The last steps, once [`prepare`]d: loads the seccomp filters and
/// executes; returns only on failure, with the exit status to use.
pub fn finish(w: &Workload) -> i32 {
    finish_with(&mut Host, w)
}

fn finish_with(k: &mut dyn Kernel, w: &Workload) -> i32 {
    // Last: from here on only what the filters allow works.
    if let Err(e) = k.load_seccomp(&w.seccomp) {
        eprintln!("cgmgr: exec: {e}");
        return 125;
    }
    execute_with(k, w)
}

/// Executes the command (the filters already loaded); returns only on
/// failure, with the exit status to use: 127 not found, 126 not executable.
pub fn execute(w: &Workload) -> i32 {
    execute_with(&mut Host, w)
}

fn execute_with(k: &mut dyn Kernel, w: &Workload) -> i32 {
    let err = execvpe(k, w);
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
    prepare_with(&mut Host, w, keep)
}

/// [`prepare`] through `k`, in this order: 1. signals back to their
/// defaults, 2. a new session, 3. umask and working directory, 4. the
/// bounding and ambient sets cut, 5. supplementary groups (without a user
/// namespace), gid, uid, 6. the parent-death signal again (the id change
/// cleared it), 7. the capability sets, 8. no new privileges, 9. only fds
/// 0-2 (and `keep`) left open.
pub(crate) fn prepare_with(
    k: &mut dyn Kernel,
    w: &Workload,
    keep: Option<OwnedFd>,
) -> Result<Option<OwnedFd>, ExecError> {
    k.reset_signals().map_err(step(Step::ResetSignals))?;
    k.setsid().map_err(step(Step::NewSession))?;
    k.umask(Mode::from_bits_truncate(0o022));
    k.chdir(&w.cwd)
        .map_err(step(Step::WorkingDirectory(w.cwd.clone())))?;
    drop_bounding_set(k, keep_for(w))?;
    if !w.in_user_ns {
        k.clear_groups().map_err(step(Step::ClearGroups))?;
    }
    k.setresgid(w.gid).map_err(step(Step::Gid(w.gid)))?;
    k.setresuid(w.uid).map_err(step(Step::Uid(w.uid)))?;
    // After the id change, which clears it: die with init.
    k.set_pdeathsig().map_err(step(Step::DeathSignal))?;
    set_rlimits(k, &w.rlimits)?;
    set_caps(k, keep_for(w))?;
    k.set_no_new_privs().map_err(step(Step::NoNewPrivs))?;
    match keep {
        Some(fd) => close_fds_but(k, fd).map(Some),
        None => close_fds_from(k, 3).map(|()| None),
    }
}

/// Sets each of the run's resource limits, soft and hard. A limit above the
/// hard one cgmgr was given is refused by the kernel (raising it takes
/// CAP_SYS_RESOURCE of the host), named.
pub(crate) fn set_rlimits(k: &mut dyn Kernel, limits: &[(u32, u64)]) -> Result<(), ExecError> {
    for &(resource, value) in limits {
        k.set_rlimit(resource, value)
            .map_err(step(Step::Rlimit { resource, value }))?;
    }
    Ok(())
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
fn drop_bounding_set(k: &mut dyn Kernel, keep: &[Capability]) -> Result<(), ExecError> {
    k.clear_ambient_caps()?;
    for cap in 0..64u8 {
        if keep.iter().any(|c| c.index() == cap) {
            continue;
        }
        match k.drop_bounding_cap(cap) {
            Ok(()) => {}
            // Past the kernel's last capability (they are numbered without
            // gaps), so nothing higher exists either.
            Err(Errno::EINVAL) => break,
            Err(e) => return Err(step(Step::DropBoundingCap(cap))(e)),
        }
    }
    Ok(())
}

/// Sets effective = permitted = `keep`, inheritable = none (effective
/// first: it must stay within permitted at every step).
fn set_caps(k: &mut dyn Kernel, keep: &[Capability]) -> Result<(), ExecError> {
    k.set_caps(CapSet::Effective, keep)?;
    k.set_caps(CapSet::Permitted, keep)?;
    k.set_caps(CapSet::Inheritable, &[])
}

/// Closes every descriptor from `first` up, whatever its CLOEXEC flag:
/// nothing cgmgr or its caller opened (a cgroupfs directory, a policy file)
/// reaches the workload.
pub(crate) fn close_fds_from(k: &mut dyn Kernel, first: u32) -> Result<(), ExecError> {
    k.close_fds_from(first)
        .map_err(step(Step::CloseFrom(first)))
}

/// Closes every descriptor but `keep`, which becomes fd 3 (close-on-exec).
pub(crate) fn close_fds_but(k: &mut dyn Kernel, keep: OwnedFd) -> Result<OwnedFd, ExecError> {
    let kept = k.move_to_fd3(keep).map_err(step(Step::KeepAsFd3))?;
    close_fds_from(k, 4)?;
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
        if user_may_reopen(stat.st_mode, !nix::unistd::geteuid().is_root()) {
            return Err(ExecError::Invalid(format!(
                "{name} (fd {fd}) is a file: a run of yours is you on the host's files, and \
                 through /proc/self/fd/{fd} the workload could open that file again for reading \
                 and writing, whatever the redirection allowed; give it through a pipe instead \
                 (`cat FILE | cgmgr exec ...`, or `cgmgr exec ... | cat > FILE`)"
            )));
        }
    }
    Ok(())
}

/// Whether a standard descriptor of this `mode` would let a user's run
/// (`user`: its ids are the caller's own) reach the file itself: a regular
/// file or a block device reopened through `/proc/self/fd` is opened anew,
/// with the caller's rights on it, not the descriptor's. A root run's
/// workload has unmapped ids there: only what others may do. Pipes,
/// sockets and terminals give nothing more when reopened.
fn user_may_reopen(mode: libc::mode_t, user: bool) -> bool {
    let kind = mode & libc::S_IFMT;
    user && (kind == libc::S_IFREG || kind == libc::S_IFBLK)
}

/// Searches PATH (from the workload's environment) like execvp and executes.
fn execvpe(k: &mut dyn Kernel, w: &Workload) -> Errno {
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
        return exec_path(k, Path::new(cmd), &args, &env);
    }
    let path = w
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map_or(DEFAULT_PATH, |(_, v)| v.as_str());
    let mut result = Errno::ENOENT;
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        match exec_path(k, &Path::new(dir).join(cmd), &args, &env) {
            Errno::ENOENT | Errno::ENOTDIR => {}
            // Remember "found but not executable", keep looking (as execvp).
            e => result = e,
        }
    }
    result
}

fn exec_path(k: &mut dyn Kernel, path: &Path, args: &[CString], env: &[CString]) -> Errno {
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
        return Errno::EINVAL;
    };
    k.execve(&c_path, args, env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_users_run_takes_no_file_as_stdio() {
        for (mode, user, reopens) in [
            (libc::S_IFREG | 0o444, true, true),
            (libc::S_IFBLK | 0o660, true, true),
            (libc::S_IFIFO | 0o600, true, false),
            (libc::S_IFSOCK | 0o777, true, false),
            (libc::S_IFCHR | 0o620, true, false),
            (libc::S_IFREG | 0o644, false, false),
        ] {
            assert_eq!(user_may_reopen(mode, user), reopens, "{mode:o} user={user}");
        }
    }
    use crate::exec::kernel::recorder::Recorder;
    use crate::policy::seccomp::Seccomp;

    fn workload(uid: u32, in_user_ns: bool) -> Workload {
        Workload {
            argv: vec!["job".into(), "--fast".into()],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            cwd: "/work".into(),
            uid,
            gid: uid + 1,
            in_user_ns,
            seccomp: crate::exec::seccomp::compile(&Seccomp::Default, false).unwrap(),
            nested_userns: false,
            rlimits: vec![(libc::RLIMIT_CORE, 0)],
        }
    }

    fn caps(names: &[&str]) -> String {
        let mut names: Vec<&str> = names.to_vec();
        names.sort_unstable();
        names.join(",")
    }

    /// The workload's last steps, in order: the bounding set cut before
    /// the id change, the capability sets after it (the id change clears
    /// them for a non-zero uid), no_new_privs before the filters, the
    /// filters right before execve, nothing but fds 0-2 left.
    #[test]
    fn the_workload_s_steps_run_in_order_up_to_execve() {
        let mut k = Recorder::default();
        let w = workload(0, true);
        assert_eq!(exec_with(&mut k, &w), 126, "the recorder's execve returns");
        let kept: Vec<u8> = KEPT_CAPS.iter().map(|c| c.index()).collect();
        let mut expected: Vec<String> = [
            "reset_signals",
            "setsid",
            "umask(22)",
            "chdir(/work)",
            "clear_ambient_caps",
        ]
        .map(String::from)
        .to_vec();
        expected.extend(
            (0..=40u8)
                .filter(|c| !kept.contains(c))
                .map(|c| format!("capbset_drop({c})")),
        );
        let names: Vec<String> = KEPT_CAPS.iter().map(ToString::to_string).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        expected.extend([
            "setresgid(1)".to_string(),
            "setresuid(0)".into(),
            "set_pdeathsig(SIGKILL)".into(),
            "prlimit(4, 0)".into(),
            format!("set_caps(Effective, [{}])", caps(&names)),
            format!("set_caps(Permitted, [{}])", caps(&names)),
            "set_caps(Inheritable, [])".into(),
            "no_new_privs".into(),
            "close_range(3, ~0)".into(),
            "seccomp(2 filters)".into(),
            "execve(/usr/bin/job, [\"job\", \"--fast\"])".into(),
            "execve(/bin/job, [\"job\", \"--fast\"])".into(),
        ]);
        assert_eq!(k.calls, expected);
    }

    /// A non-zero uid keeps no capability; uid 0 without a user namespace
    /// (the host's root) loses its supplementary groups and CAP_KILL.
    #[test]
    fn what_the_workload_keeps_follows_its_uid_and_namespace() {
        let mut k = Recorder::default();
        prepare_with(&mut k, &workload(1000, true), None).unwrap();
        assert!(k.calls.contains(&"set_caps(Effective, [])".to_string()));
        assert_eq!(k.position("setgroups"), None);
        let dropped = k
            .calls
            .iter()
            .filter(|c| c.starts_with("capbset_drop"))
            .count();
        assert_eq!(dropped, 41, "every capability up to the kernel's last");

        let mut k = Recorder::default();
        prepare_with(&mut k, &workload(0, false), None).unwrap();
        let groups = k.position("setgroups([])").unwrap();
        assert!(groups < k.position("setresgid").unwrap());
        assert!(k.calls.contains(&"capbset_drop(5)".to_string()));
        let effective = &k.calls[k.position("set_caps(Effective").unwrap()];
        assert!(
            !effective.contains("CAP_KILL") && effective.contains("CAP_CHOWN"),
            "{effective}"
        );
    }

    /// A failed step is the last call: no capability is set after a failed
    /// setresuid, and no command runs after failed filters (exit 125).
    #[test]
    fn a_failed_step_runs_nothing_after_it() {
        let mut k = Recorder::failing("setresuid", Errno::EPERM);
        let err = prepare_with(&mut k, &workload(7, true), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "setresuid(7): EPERM: Operation not permitted"
        );
        assert!(k.calls.last().unwrap().starts_with("setresuid"));

        let mut k = Recorder::failing("seccomp", Errno::EINVAL);
        assert_eq!(exec_with(&mut k, &workload(0, true)), 125);
        assert!(k.calls.last().unwrap().starts_with("seccomp"));
    }

    /// PATH is searched like execvp: not found anywhere is 127; found but
    /// not executable is 126, even when a later directory lacks it; a
    /// command with a `/` is not searched.
    #[test]
    fn the_command_is_searched_in_path_like_execvp() {
        let mut k = Recorder::failing("execve", Errno::ENOENT);
        assert_eq!(execute_with(&mut k, &workload(0, true)), 127);
        assert_eq!(k.calls.len(), 2);

        let mut k = Recorder {
            fail: vec![
                ("execve(/usr/bin".into(), Errno::EACCES),
                ("execve(/bin".into(), Errno::ENOENT),
            ],
            ..Recorder::default()
        };
        assert_eq!(execute_with(&mut k, &workload(0, true)), 126);

        let mut k = Recorder::failing("execve", Errno::ENOENT);
        let mut w = workload(0, true);
        w.argv[0] = "./job".into();
        assert_eq!(execute_with(&mut k, &w), 127);
        assert_eq!(k.calls, ["execve(./job, [\"./job\", \"--fast\"])"]);
    }
}
