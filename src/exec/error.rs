//! Errors of `cgmgr exec`: one variant per privileged step, each naming the
//! path or value involved and the errno.

use std::path::PathBuf;

use nix::errno::Errno;

/// A failure before the workload ran (exit status 125).
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The group is neither declared nor present.
    #[error(
        "unknown group `{group}`: it is not declared in {policies} and does not exist under {root}\n  hint: declare it in a policy ([group.{group}]) or create it with `cgmgr apply`"
    )]
    UnknownGroup {
        /// The group name.
        group: String,
        /// Where policies were looked for.
        policies: String,
        /// The managed root.
        root: PathBuf,
    },
    /// clone3 failed.
    #[error("clone3 (flags {flags:#x}): {errno}{hint}")]
    Clone {
        /// The flags used.
        flags: u64,
        /// Why.
        errno: Errno,
        /// Advice.
        hint: &'static str,
    },
    /// Writing an id map failed.
    #[error("writing {value:?} to {path}: {errno}")]
    IdMap {
        /// The /proc file.
        path: PathBuf,
        /// The map.
        value: String,
        /// Why.
        errno: Errno,
    },
    /// `newuidmap` or `newgidmap` did not write a run's map.
    #[error(
        "{helper} {args}: {detail}\n  hint: the helper checks the range against /etc/subuid and /etc/subgid, and must be setuid root (`ls -l {helper}`)"
    )]
    IdHelper {
        /// The helper.
        helper: PathBuf,
        /// Its arguments: the pid, then inside, outside and count of each entry.
        args: String,
        /// Its exit status and what it said, or why it did not start.
        detail: String,
    },
    /// A rootfs entry that must be a real directory is a symlink or missing.
    #[error("rootfs {rootfs}: {entry} {problem}\n  hint: {hint}")]
    BadRootfs {
        /// The rootfs.
        rootfs: PathBuf,
        /// The entry (`proc`, `dev`, `tmp`).
        entry: &'static str,
        /// What is wrong.
        problem: &'static str,
        /// How to fix it.
        hint: &'static str,
    },
    /// A mount step failed.
    #[error("step {step} ({what}) on {target}: {errno}")]
    Mount {
        /// Step number in rootfs setup.
        step: u8,
        /// What the step does.
        what: &'static str,
        /// The mount target.
        target: PathBuf,
        /// Why.
        errno: Errno,
    },
    /// A step of the sandbox's construction or of the workload's last
    /// steps failed.
    #[error("{step}: {errno}")]
    Step {
        /// The step, with its argument.
        step: Step,
        /// Why.
        errno: Errno,
    },
    /// Any other system call in the setup failed.
    #[error("{what}: {errno}")]
    Sys {
        /// The call and its argument.
        what: String,
        /// Why.
        errno: Errno,
    },
    /// Leasing a host id range failed.
    #[error("leasing host ids: {what}: {errno}")]
    Lease {
        /// The step and its file.
        what: String,
        /// Why.
        errno: Errno,
    },
    /// The lease directory could be changed by someone else.
    #[error(
        "{dir} must be a directory of uid {uid} that no one else can write (it is uid {found_uid}, mode {mode:o}): it holds the leases that keep two sandboxes from sharing host ids\n  hint: chown {uid} {dir} && chmod 700 {dir}"
    )]
    LeaseDir {
        /// The directory.
        dir: PathBuf,
        /// Who must own it.
        uid: u32,
        /// Who owns it.
        found_uid: u32,
        /// Its mode.
        mode: u32,
    },
    /// Every range is held, or left occupied by a run's survivors.
    #[error(
        "no host id range is free: every one of the {slots} in {dir} is held by a running sandbox ({occupied} of them by runs whose group still holds processes)\n  hint: `cgmgr status` lists the groups; a run group that outlived its cgmgr exec is ended by the next run of its group, or by `cgmgr kill GROUP`",
        slots = super::idmap::SLOTS
    )]
    IdsExhausted {
        /// The lease directory.
        dir: PathBuf,
        /// Free locks skipped because their last run still has processes.
        occupied: u32,
    },
    /// A run group could not be made or locked.
    #[error("run group {path}: {what}: {errno}")]
    RunGroup {
        /// The run group.
        path: PathBuf,
        /// The step.
        what: &'static str,
        /// Why.
        errno: Errno,
    },
    /// A group name cgmgr made is not valid (it never is).
    #[error(transparent)]
    Name(#[from] crate::cgroup::name::NameError),
    /// An invalid flag value.
    #[error("{0}")]
    Invalid(String),
}

/// The steps of a sandbox's construction (in the child) and of the
/// workload's last steps before `execve`, besides the mounts (which are
/// [`ExecError::Mount`]'s numbered steps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `prctl(PR_SET_PDEATHSIG)`.
    DeathSignal,
    /// `setresgid` to the builder's gid in the user namespace.
    RootGid(u32),
    /// `setresuid` to the builder's uid in the user namespace.
    RootUid(u32),
    /// `close_range(first, ~0)`.
    CloseFrom(u32),
    /// `dup3` of the kept descriptor onto fd 3.
    KeepAsFd3,
    /// A new session keyring.
    SessionKeyring,
    /// `unshare(CLONE_NEWCGROUP)`.
    CgroupNamespace,
    /// One `/proc/sys/user` quota of the sandbox's user namespace.
    NamespaceQuota {
        /// The file.
        path: String,
        /// The limit.
        value: &'static str,
    },
    /// `sethostname`.
    Hostname(String),
    /// `prctl(PR_SET_CHILD_SUBREAPER)`.
    Subreaper,
    /// Init's signals blocked.
    BlockSignals,
    /// The workload's signal mask and SIGPIPE back to their defaults.
    ResetSignals,
    /// `setsid`.
    NewSession,
    /// The workload's working directory.
    WorkingDirectory(PathBuf),
    /// `prctl(PR_CAPBSET_DROP, cap)`.
    DropBoundingCap(u8),
    /// `setgroups([])`.
    ClearGroups,
    /// The workload's `setresgid`.
    Gid(u32),
    /// The workload's `setresuid`.
    Uid(u32),
    /// `prctl(PR_SET_NO_NEW_PRIVS)`.
    NoNewPrivs,
    /// `chdir` into the rootfs before the root switch.
    IntoRootfs(PathBuf),
    /// `chdir /` after the root switch.
    IntoNewRoot,
    /// The directory of the private devpts.
    DevptsDir(PathBuf),
    /// One resource limit of the run.
    Rlimit {
        /// `RLIMIT_*`.
        resource: u32,
        /// Soft and hard.
        value: u64,
    },
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::DeathSignal => f.write_str("prctl(PR_SET_PDEATHSIG)"),
            Step::RootGid(gid) => write!(f, "setresgid({gid}) in the user namespace"),
            Step::RootUid(uid) => write!(f, "setresuid({uid}) in the user namespace"),
            Step::CloseFrom(first) => write!(f, "close_range({first}, ~0)"),
            Step::KeepAsFd3 => f.write_str("dup3(.., 3)"),
            Step::SessionKeyring => f.write_str("keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL)"),
            Step::CgroupNamespace => f.write_str("unshare(CLONE_NEWCGROUP)"),
            Step::NamespaceQuota { path, value } => {
                write!(
                    f,
                    "limiting {path} to {value} in the sandbox's user namespace"
                )
            }
            Step::Hostname(h) => write!(f, "sethostname({h:?})"),
            Step::Subreaper => f.write_str("prctl(PR_SET_CHILD_SUBREAPER)"),
            Step::BlockSignals => f.write_str("sigprocmask"),
            Step::ResetSignals => f.write_str("resetting the signal mask and SIGPIPE"),
            Step::NewSession => f.write_str("setsid"),
            Step::WorkingDirectory(d) => write!(f, "working directory {}", d.display()),
            Step::DropBoundingCap(cap) => write!(f, "prctl(PR_CAPBSET_DROP, {cap})"),
            Step::ClearGroups => f.write_str("setgroups([])"),
            Step::Gid(gid) => write!(f, "setresgid({gid})"),
            Step::Uid(uid) => write!(f, "setresuid({uid})"),
            Step::NoNewPrivs => f.write_str("prctl(PR_SET_NO_NEW_PRIVS)"),
            Step::IntoRootfs(r) => write!(f, "chdir {}", r.display()),
            Step::IntoNewRoot => f.write_str("chdir /"),
            Step::DevptsDir(d) => write!(f, "mkdir {}", d.display()),
            Step::Rlimit { resource, value } => {
                let name = crate::policy::run::RLIMITS
                    .iter()
                    .find(|r| r.resource == *resource)
                    .map_or("?", |r| r.name);
                write!(f, "setting the resource limit {name} to {value}")
            }
        }
    }
}

/// The errno of an I/O error (EIO when it carries none).
pub(crate) fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// Shorthand for a failed [`Step`].
pub fn step(step: Step) -> impl FnOnce(Errno) -> ExecError {
    move |errno| ExecError::Step { step, errno }
}

/// Shorthand for a failed system call described by `what`.
pub fn sys(what: impl Into<String>) -> impl FnOnce(Errno) -> ExecError {
    let what = what.into();
    move |errno| ExecError::Sys { what, errno }
}
