//! PSI triggers: the kernel watches a group's stall for us.
//!
//! Writing `some|full <stall µs> <window µs>` to an open `cpu.pressure`,
//! `memory.pressure` or `io.pressure` ties a trigger to that open file:
//! `poll` then reports `POLLPRI` when the stall within a moving window grows
//! past the threshold, at most once per window, for as long as the file
//! stays open. The kernel accepts windows of 500 ms to 10 s; writers without
//! CAP_SYS_RESOURCE only whole multiples of 2 s. When the group is removed
//! the file reports `POLLERR`, and the trigger is gone for good.

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
        hint: hint(errno),
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

fn hint(errno: Errno) -> String {
    let text = match errno {
        Errno::ENOENT => {
            "this kernel has no such pressure file: it needs CONFIG_PSI (boot with psi=1 where it is off by default)"
        }
        Errno::EOPNOTSUPP => "PSI is disabled on this kernel: boot with psi=1",
        Errno::EPERM => {
            "without CAP_SYS_RESOURCE the kernel takes only windows that are whole multiples of 2s"
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
}
