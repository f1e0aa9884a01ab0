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

/// Shorthand for a failed system call described by `what`.
pub fn sys(what: impl Into<String>) -> impl FnOnce(Errno) -> ExecError {
    let what = what.into();
    move |errno| ExecError::Sys { what, errno }
}
