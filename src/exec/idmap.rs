//! User namespace id maps, written by the parent (real root) for the child.
//!
//! Root inside maps to an unprivileged range outside, as with subordinate
//! ids (`/etc/subuid`): inside ids 0..65536 are outside 100000..165536, so
//! nothing the workload does as "root" is root on the host.

use std::path::PathBuf;

use nix::errno::Errno;
use nix::unistd::Pid;

use super::error::ExecError;

/// First outside id of the range inside ids map to.
pub const OUTSIDE_BASE: u32 = 100_000;
/// Number of ids mapped.
pub const RANGE: u32 = 65_536;

/// The content of `uid_map` and `gid_map`.
pub fn map_line() -> String {
    format!("0 {OUTSIDE_BASE} {RANGE}\n")
}

/// Writes `uid_map`, `setgroups` = deny, then `gid_map` for `pid`.
pub fn write_maps(pid: Pid) -> Result<(), ExecError> {
    write_proc(pid, "uid_map", &map_line())?;
    // deny: the workload can never drop a supplementary group to reach a
    // file that group is denied (and unprivileged gid_map writes need it).
    write_proc(pid, "setgroups", "deny")?;
    write_proc(pid, "gid_map", &map_line())
}

fn write_proc(pid: Pid, file: &str, value: &str) -> Result<(), ExecError> {
    let path = PathBuf::from(format!("/proc/{pid}/{file}"));
    std::fs::write(&path, value).map_err(|e| ExecError::IdMap {
        path,
        value: value.trim().to_string(),
        errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
    })
}
