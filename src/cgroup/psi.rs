//! PSI triggers: the kernel watches a group's stall for us.
//!
//! Writing `some|full <stall µs> <window µs>` to an open `cpu.pressure`,
//! `memory.pressure` or `io.pressure` ties a trigger to that open file:
//! `poll` then reports `POLLPRI` when the stall within a moving window grows
//! past the threshold, at most once per window, for as long as the file
//! stays open. The kernel accepts windows of 500 ms to 10 s; a file opened
//! without CAP_SYS_RESOURCE in the effective set only whole multiples of 2 s
//! (EINVAL otherwise; kernels before 6.5 refused such an open with EPERM).
//! When the group is removed the file reports `POLLERR`, and the trigger is
//! gone for good. Closing a trigger's file makes the closer wait for an RCU
//! grace period (`psi_trigger_destroy`): the daemon closes them off its
//! pressure thread, several at once.

use std::fmt;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use nix::errno::Errno;

use super::error::CgroupError;
use super::format::{self, Psi};
use super::fs::CgroupRoot;
use super::name::GroupName;

/// A trigger as the kernel takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trigger {
    /// Watch the `full` line (every non-idle task stalled), else `some`.
    pub full: bool,
    /// Stall in microseconds within the window that fires it.
    pub stall_us: u64,
    /// The window in microseconds.
    pub window_us: u64,
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.full { "full" } else { "some" };
        write!(f, "{kind} {} {}", self.stall_us, self.window_us)
    }
}

/// An open pressure file holding a trigger.
#[derive(Debug)]
pub struct ArmedTrigger {
    /// The open file: poll it for `POLLPRI`; closing it disarms.
    pub file: File,
    /// Its path, for messages.
    pub path: PathBuf,
}

impl ArmedTrigger {
    /// Reads the file through the trigger's own descriptor.
    pub fn read(&self) -> Result<Psi, CgroupError> {
        let mut buf = [0u8; 512];
        let n = self
            .file
            .read_at(&mut buf, 0)
            .map_err(|e| CgroupError::Read {
                path: self.path.clone(),
                errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            })?;
        let text = String::from_utf8_lossy(&buf[..n]);
        format::psi(&text).map_err(|e| CgroupError::Format {
            path: self.path.clone(),
            content: text.into_owned(),
            reason: e.to_string(),
        })
    }
}

/// Arms `trigger` on `group`'s `file` (`memory.pressure`...).
pub fn arm(
    root: &CgroupRoot,
    group: &GroupName,
    file: &str,
    trigger: Trigger,
) -> Result<ArmedTrigger, CgroupError> {
    let path = root.display_path(group, file);
    let value = trigger.to_string();
    let write_err = |errno: Errno| CgroupError::Write {
        path: path.clone(),
        value: value.clone(),
        errno,
        hint: refusal_hint(errno, trigger, holds_sys_resource()),
    };
    // A missing group is said as such, not as a kernel without PSI.
    if !root.exists(group) {
        return Err(CgroupError::Read {
            path: root.group_path(group),
            errno: Errno::ENOENT,
        });
    }
    let opened = root.open_trigger_file(group, file).map_err(write_err)?;
    // Written with its terminator, as the kernel's documentation does:
    // /proc/pressure/* overwrite the last byte written with a NUL (so
    // "... 1000000" would be a window of 100000 µs there); cgroup files
    // terminate the buffer themselves, and stop parsing at the NUL.
    match write_once(&opened, format!("{value}\0").as_bytes()) {
        Ok(()) => Ok(ArmedTrigger { file: opened, path }),
        Err(errno) => Err(write_err(errno)),
    }
}

/// One `write` of the whole trigger: the kernel parses it in one piece.
fn write_once(file: &File, bytes: &[u8]) -> Result<(), Errno> {
    match nix::unistd::write(file, bytes) {
        Ok(n) if n == bytes.len() => Ok(()),
        Ok(_) => Err(Errno::EIO),
        Err(e) => Err(e),
    }
}

/// Whether this process holds CAP_SYS_RESOURCE in its effective set (what
/// the kernel looks at when the pressure file is opened); `None` when
/// `/proc/self/status` cannot be read or parsed.
fn holds_sys_resource() -> Option<bool> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let status = crate::doctor::parse::proc_status(&text).ok()?;
    Some(status.has_cap(crate::doctor::parse::CAP_SYS_RESOURCE))
}

/// Why the kernel refused `trigger` with `errno`, and what to do, as a
/// `\n  hint: ...` line (empty when there is nothing to add).
/// `sys_resource` is whether the writer holds CAP_SYS_RESOURCE, if known:
/// without it EINVAL most likely means a window that is not a multiple of
/// 2 s, not one out of range.
pub fn refusal_hint(errno: Errno, trigger: Trigger, sys_resource: Option<bool>) -> String {
    let two_s_multiple = trigger.window_us.is_multiple_of(2_000_000);
    let text = match errno {
        Errno::ENOENT => {
            "this kernel has no such pressure file: it needs CONFIG_PSI (boot with psi=1 where it is off by default)"
        }
        Errno::EOPNOTSUPP => "PSI is disabled on this kernel: boot with psi=1",
        Errno::EPERM => {
            "this kernel (before 6.5) takes pressure triggers only from a process with CAP_SYS_RESOURCE: give the daemon CAP_SYS_RESOURCE (later kernels also take them without it, for windows that are a multiple of 2 s)"
        }
        Errno::EINVAL if sys_resource == Some(false) && !two_s_multiple => {
            "the window must be a multiple of 2 s without CAP_SYS_RESOURCE, which this daemon lacks (CapEff in /proc/self/status): give the daemon CAP_SYS_RESOURCE (a root daemon lacks it when its bounding set drops it: systemd's CapabilityBoundingSet=, a container's dropped capabilities) or use a window of 2s, 4s, 6s, 8s or 10s"
        }
        Errno::EINVAL if sys_resource.is_none() && !two_s_multiple => {
            "the kernel refused the trigger: the window must be 500ms to 10s (a multiple of 2 s without CAP_SYS_RESOURCE) and the stall at most the window"
        }
        Errno::EINVAL => {
            "the kernel refused the trigger: the window must be 500ms to 10s and the stall at most the window"
        }
        Errno::EBUSY => "the file already holds a trigger",
        _ => return String::new(),
    };
    format!("\n  hint: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_are_written_as_the_kernel_reads_them() {
        let t = Trigger {
            full: true,
            stall_us: 400_000,
            window_us: 2_000_000,
        };
        assert_eq!(t.to_string(), "full 400000 2000000");
        let t = Trigger {
            full: false,
            stall_us: 50,
            window_us: 500_000,
        };
        assert_eq!(t.to_string(), "some 50 500000");
    }

    /// EINVAL for a 1 s window names the missing capability when the
    /// writer lacks it (it used to blame the 500ms-10s range), and the
    /// range when it holds it; a 2 s window is never blamed on it.
    #[test]
    fn a_refused_window_names_the_missing_capability() {
        let window = |ms: u64| Trigger {
            full: false,
            stall_us: 100_000,
            window_us: ms * 1000,
        };
        let unprivileged = refusal_hint(Errno::EINVAL, window(1000), Some(false));
        assert!(
            unprivileged.starts_with(
                "\n  hint: the window must be a multiple of 2 s without CAP_SYS_RESOURCE, which this daemon lacks"
            ),
            "{unprivileged}"
        );
        assert!(
            unprivileged.contains("give the daemon CAP_SYS_RESOURCE")
                && unprivileged.contains("or use a window of 2s, 4s"),
            "{unprivileged}"
        );
        let privileged = refusal_hint(Errno::EINVAL, window(1000), Some(true));
        assert!(
            privileged.contains("must be 500ms to 10s and"),
            "{privileged}"
        );
        assert!(!privileged.contains("CAP_SYS_RESOURCE"), "{privileged}");
        let two_s = refusal_hint(Errno::EINVAL, window(2000), Some(false));
        assert!(!two_s.contains("CAP_SYS_RESOURCE"), "{two_s}");
        let unknown = refusal_hint(Errno::EINVAL, window(1000), None);
        assert!(
            unknown.contains("(a multiple of 2 s without CAP_SYS_RESOURCE)"),
            "{unknown}"
        );
        let old_kernel = refusal_hint(Errno::EPERM, window(2000), Some(false));
        assert!(old_kernel.contains("before 6.5"), "{old_kernel}");
        assert_eq!(refusal_hint(Errno::EIO, window(2000), Some(false)), "");
    }

    /// The capability is read from this host's real `/proc/self/status`
    /// (root without CAP_SYS_RESOURCE) and a VM root's (with it), through
    /// the doctor's parser.
    #[test]
    fn cap_sys_resource_is_read_from_capeff() {
        use crate::doctor::parse::{CAP_SYS_RESOURCE, proc_status};
        let host = include_str!("../../tests/fixtures/kernel/host-6.18.status");
        let vm = include_str!("../../tests/fixtures/kernel/vm-6.1.status");
        assert!(!proc_status(host).unwrap().has_cap(CAP_SYS_RESOURCE));
        assert!(proc_status(vm).unwrap().has_cap(CAP_SYS_RESOURCE));
    }
}
