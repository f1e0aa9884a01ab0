//! The error of a whole command, and the exit code each kind maps to:
//! `2` for invalid input (bad flags, bad policy: nothing was written), `1`
//! for a runtime failure. Each variant carries a module's own error, which
//! names the file, the value and the kernel's errno.

use crate::apply::ApplyError;
use crate::cgroup::CgroupError;
use crate::cgroup::control::ControlError;
use crate::daemon::DaemonError;
use crate::doctor::DoctorError;
use crate::exec::build::BuildError;
use crate::policy::PolicyErrors;
use crate::root::RootError;
use crate::systemd::owner::NotDelegated;

/// Exit code for invalid input: nothing was written.
pub const EXIT_INVALID: u8 = 2;
/// Exit code for runtime failures.
pub const EXIT_FAILURE: u8 = 1;
/// `cgmgr exec`: cgmgr failed before the workload ran (as `env`, `docker run`).
pub const EXIT_EXEC_FAILED: u8 = 125;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Invalid input outside policy files (a bad group name on the command line).
    #[error("{0}")]
    InvalidInput(String),
    /// The group named on the command line does not exist.
    #[error("no group {group} under {}", root.display())]
    UnknownGroup {
        /// The group.
        group: String,
        /// The managed root.
        root: std::path::PathBuf,
    },
    /// One or more policy files are invalid.
    #[error(transparent)]
    Policy(#[from] PolicyErrors),
    /// The managed root cannot be resolved or may not be written.
    #[error(transparent)]
    Root(#[from] RootError),
    /// systemd owns the root and has not delegated it.
    #[error(transparent)]
    NotDelegated(#[from] NotDelegated),
    /// Reading or writing cgroupfs failed.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// `apply` refused or failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// `freeze`, `thaw` or `kill` failed.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// The daemon could not start.
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    /// `doctor` could not report, or found that cgmgr cannot work here.
    #[error(transparent)]
    Doctor(#[from] DoctorError),
    /// `rootfs build` failed.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// Writing the command's output failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The exit code of a command that failed with this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::InvalidInput(_) | Error::Policy(_) => EXIT_INVALID,
            _ => EXIT_FAILURE,
        }
    }

    /// A closed stdout (`cgmgr apply --dry-run | head`): not a failure.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_input_is_2_and_the_rest_1() {
        assert_eq!(Error::InvalidInput("x".into()).exit_code(), 2);
        assert_eq!(Error::Policy(PolicyErrors(Vec::new())).exit_code(), 2);
        let io = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        let e = Error::from(io);
        assert_eq!(e.exit_code(), 1);
        assert!(e.is_broken_pipe());
        assert!(!Error::from(DaemonError::Setup("x".into())).is_broken_pipe());
    }
}
