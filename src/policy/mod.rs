//! Policies: the TOML files users write, parsed and validated as a whole.
//!
//! [`load`] turns paths (files or directories of `*.toml`) into a
//! [`PolicySet`] or the complete list of problems; nothing downstream ever
//! sees an unchecked name or value.

pub mod error;
pub mod model;
pub mod parse;
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
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                errors.push(file_error(&file, format!("cannot read: {e}")));
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
    if errors.is_empty() {
        set.groups = seen;
        Ok(set)
    } else {
        Err(PolicyErrors(errors))
    }
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
