//! Policies: the TOML files users write, parsed and validated as a whole.
//!
//! [`load`] turns paths (files or directories of `*.toml`) into a
//! [`PolicySet`] or the complete list of problems; nothing downstream ever
//! sees an unchecked name or value.

pub mod error;
pub mod knobs;
pub mod model;
pub mod parse;
pub mod run;
pub mod seccomp;
pub mod units;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use error::{PolicyError, PolicyErrors};
pub use model::{ExecConfig, Group, Namespace, PolicySet, Setting};

use crate::cgroup::GroupName;

/// Reads, parses and validates every policy under `paths`.
pub fn load(paths: &[PathBuf]) -> Result<PolicySet, PolicyErrors> {
    let mut errors = Vec::new();
    let files = policy_files(paths, &mut errors);
    let mut set = PolicySet::default();
    let mut seen: BTreeMap<GroupName, Group> = BTreeMap::new();
    for file in files {
        let text = match read_policy_file(&file) {
            Ok(t) => t,
            Err(e) => {
                errors.push(file_error(&file, e.to_string()));
                continue;
            }
        };
        match parse::parse_file(&file, &text) {
            Ok(groups) => {
                for group in groups {
                    if let Some(first) = seen.get(&group.name) {
                        errors.push(PolicyError {
                            file: group.origin.file.clone(),
                            line: group.origin.line,
                            column: group.origin.column,
                            message: format!(
                                "group `{}` is declared twice: first at {}, again here",
                                group.name, first.origin
                            ),
                            hint: Some("merge the two declarations into one".into()),
                        });
                        continue;
                    }
                    seen.insert(group.name.clone(), group);
                }
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    if let Some(e) = too_many_pressure_rules(&seen) {
        errors.push(e);
    }
    if errors.is_empty() {
        set.groups = seen;
        Ok(set)
    } else {
        Err(PolicyErrors(errors))
    }
}

/// The most pressure rules one policy set may declare. Each rule holds an
/// open file in the daemon (reserved from its descriptor budget, see
/// `metrics::reader::FdBudget`) and each group with a rule a kernel monitor
/// thread; a policy set that asks for more is refused rather than left to
/// fail with EMFILE at runtime.
pub const MAX_PRESSURE_RULES: usize = 1024;

/// An error at the first rule over [`MAX_PRESSURE_RULES`], in group order.
fn too_many_pressure_rules(groups: &BTreeMap<GroupName, Group>) -> Option<PolicyError> {
    let total: usize = groups.values().map(|g| g.pressure.len()).sum();
    let first_over = groups
        .values()
        .flat_map(|g| g.pressure.iter())
        .nth(MAX_PRESSURE_RULES)?;
    Some(PolicyError {
        file: first_over.origin.file.clone(),
        line: first_over.origin.line,
        column: first_over.origin.column,
        message: format!(
            "the policy set declares {total} pressure rules; at most {MAX_PRESSURE_RULES} are allowed (this is rule {} in group order)",
            MAX_PRESSURE_RULES + 1
        ),
        hint: Some(
            "put the rules on fewer, higher groups: a rule on a parent watches the stall of all its children".into(),
        ),
    })
}

/// Expands the command-line paths: files as given, directories to their
/// `*.toml` files (sorted; hidden files skipped, symlinks followed, as in a
/// Kubernetes ConfigMap mount).
fn policy_files(paths: &[PathBuf], errors: &mut Vec<PolicyError>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let before = files.len();
            match std::fs::read_dir(path) {
                Ok(entries) => {
                    let mut found: Vec<PathBuf> = entries
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| is_policy_file(p))
                        .collect();
                    found.sort();
                    files.extend(found);
                }
                Err(e) => errors.push(file_error(path, format!("cannot list directory: {e}"))),
            }
            if files.len() == before {
                errors.push(file_error(
                    path,
                    "no *.toml policy files in this directory".into(),
                ));
            }
        } else if path.exists() {
            files.push(path.clone());
        } else {
            errors.push(file_error(path, "no such file or directory".into()));
        }
    }
    files
}

/// A digest of what `load(paths)` would read: the policy files' names and
/// contents (and what could not be read). The daemon compares it on every
/// reconcile tick, a backstop for changes inotify did not report.
pub fn digest(paths: &[PathBuf]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut errors = Vec::new();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for file in policy_files(paths, &mut errors) {
        file.hash(&mut h);
        read_policy_file(&file)
            .map_err(|e| e.to_string())
            .hash(&mut h);
    }
    errors.len().hash(&mut h);
    h.finish()
}

/// Policy files larger than this are refused (40,000 groups take 2 MiB).
pub const MAX_POLICY_BYTES: u64 = 16 << 20;

/// Reads a policy file without ever blocking: only a regular file (a
/// symlink to one is followed, as stow- or git-managed configs have), not on
/// procfs or sysfs (`/proc/kmsg` is "regular" and blocks), at most
/// [`MAX_POLICY_BYTES`].
pub fn read_policy_file(path: &Path) -> Result<String, ReadError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular);
    }
    let fs = nix::sys::statfs::fstatfs(&file).map_err(std::io::Error::from)?;
    if [
        nix::sys::statfs::PROC_SUPER_MAGIC,
        nix::sys::statfs::SYSFS_MAGIC,
    ]
    .contains(&fs.filesystem_type())
    {
        return Err(ReadError::KernelFile);
    }
    if meta.len() > MAX_POLICY_BYTES {
        return Err(ReadError::TooBig(meta.len()));
    }
    let mut text = String::new();
    file.take(MAX_POLICY_BYTES + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_POLICY_BYTES {
        return Err(ReadError::TooBig(text.len() as u64));
    }
    Ok(text)
}

/// Why a policy file was not read (the caller names the file).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Opening or reading it failed.
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    /// A directory, a FIFO, a device.
    #[error("not a regular file: a policy must be a plain file (or a symlink to one)")]
    NotRegular,
    /// On procfs or sysfs.
    #[error("a kernel file (procfs or sysfs), not a policy")]
    KernelFile,
    /// Larger than [`MAX_POLICY_BYTES`].
    #[error(
        "{0} bytes is more than a policy file may hold ({MAX_POLICY_BYTES} bytes); split it into several files"
    )]
    TooBig(u64),
}

fn is_policy_file(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    !name.starts_with('.') && name.ends_with(".toml") && p.is_file()
}

fn file_error(file: &Path, message: String) -> PolicyError {
    PolicyError {
        file: file.to_path_buf(),
        line: 0,
        column: 0,
        message,
        hint: None,
    }
}

/// [`load`] for a daemon; `user`: it runs as a user, not root. The kernel
/// arms a user's PSI trigger only when its window is a whole multiple of
/// 2 s (a user never holds CAP_SYS_RESOURCE), so for a user's daemon any
/// other window is an error naming the rule, found before anything is
/// armed or written.
pub fn load_for_daemon(paths: &[PathBuf], user: bool) -> Result<PolicySet, PolicyErrors> {
    let set = load(paths)?;
    if !user {
        return Ok(set);
    }
    let errors = unarmable_for_a_user(&set);
    if errors.is_empty() {
        Ok(set)
    } else {
        Err(PolicyErrors(errors))
    }
}

/// The pressure rules of `set` whose window a user's trigger cannot have.
pub fn unarmable_for_a_user(set: &PolicySet) -> Vec<PolicyError> {
    const STEP: u128 = 2_000_000;
    let mut errors = Vec::new();
    for group in set.groups.values() {
        for rule in &group.pressure {
            let us = rule.window.as_micros();
            if us % STEP == 0 {
                continue;
            }
            let up = (us / STEP + 1) * 2;
            errors.push(PolicyError {
                file: rule.origin.file.clone(),
                line: rule.origin.line,
                column: rule.origin.column,
                message: format!(
                    "a pressure rule of group `{}` has window = \"{}\": a daemon run by a user \
                     (without CAP_SYS_RESOURCE) can arm PSI triggers only with windows that are \
                     whole multiples of 2s",
                    group.name,
                    parse::show_duration(rule.window)
                ),
                hint: Some(format!(
                    "write window = \"{}s\" (2s, 4s, 6s, 8s or 10s), or run the rule in the system daemon",
                    up.min(10)
                )),
            });
        }
    }
    errors
}

#[cfg(test)]
mod user_window_tests {
    use super::*;

    #[test]
    fn a_users_daemon_refuses_windows_that_are_not_multiples_of_2s() {
        let text = "[[group.a.pressure]]\nresource = \"memory\"\nkind = \"some\"\nabove = \"10%\"\nwindow = \"500ms\"\naction = \"log\"\n\n[[group.a.pressure]]\nresource = \"cpu\"\nkind = \"some\"\nabove = \"10%\"\nwindow = \"4s\"\naction = \"log\"\n\n[[group.b.pressure]]\nresource = \"io\"\nkind = \"full\"\nabove = \"10%\"\nwindow = \"3s\"\naction = \"log\"\n";
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.toml");
        std::fs::write(&file, text).unwrap();
        let paths = [dir.path().to_path_buf()];
        assert!(
            load_for_daemon(&paths, false).is_ok(),
            "root's daemon takes any window"
        );
        let errors = load_for_daemon(&paths, true).unwrap_err().to_string();
        let lines: Vec<&str> = errors.lines().filter(|l| l.contains("p.toml:")).collect();
        assert_eq!(lines.len(), 2, "{errors}");
        assert!(errors.contains("p.toml:1:1"), "{errors}");
        assert!(errors.contains("window = \"500ms\""), "{errors}");
        assert!(errors.contains("window = \"3s\""), "{errors}");
        assert!(errors.contains("write window = \"2s\""), "{errors}");
        assert!(errors.contains("write window = \"4s\""), "{errors}");
        assert!(
            !errors.contains("\"4s\": a daemon"),
            "the 4 s rule is armable: {errors}"
        );
    }
}

#[cfg(test)]
mod read_tests {
    use super::*;

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("p.toml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        assert!(
            read_policy_file(&fifo)
                .unwrap_err()
                .to_string()
                .contains("not a regular file")
        );
    }

    #[test]
    fn a_symlink_to_a_kernel_file_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let link = tmp.path().join("p.toml");
        std::os::unix::fs::symlink("/proc/self/status", &link).unwrap();
        assert!(
            read_policy_file(&link)
                .unwrap_err()
                .to_string()
                .contains("procfs or sysfs")
        );
    }

    #[test]
    fn a_huge_file_is_refused_naming_the_limit() {
        let tmp = tempfile::tempdir().unwrap();
        let big = tmp.path().join("p.toml");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(MAX_POLICY_BYTES + 1)
            .unwrap();
        let e = read_policy_file(&big).unwrap_err().to_string();
        assert!(e.contains(&MAX_POLICY_BYTES.to_string()), "{e}");
    }

    #[test]
    fn a_symlink_to_a_plain_file_is_read() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("real"), "[group.a]\n").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("real"), tmp.path().join("p.toml")).unwrap();
        assert_eq!(
            read_policy_file(&tmp.path().join("p.toml")).unwrap(),
            "[group.a]\n"
        );
    }
}
