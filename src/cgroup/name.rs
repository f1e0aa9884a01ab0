//! Group names: paths relative to the managed root that can never leave it.
//!
//! A [`GroupName`] is only ever built by [`GroupName::parse`], which enforces
//! the rules (one or more `/`-separated segments of `[A-Za-z0-9_.-]`, none
//! `.` or `..`, none starting with `cgroup.`, a controller prefix or
//! cgmgr's own `cgmgr.`), so any code holding one can join it to the root
//! without further checks.

use std::fmt;

/// Prefixes that name kernel interface files: a group named like this could
/// shadow or be confused with a file such as `memory.max`.
pub const RESERVED_PREFIXES: [&str; 9] = [
    "cgroup.", "cpu.", "cpuset.", "memory.", "io.", "pids.", "hugetlb.", "rdma.", "misc.",
];

/// The prefix of the groups cgmgr makes for itself; never a group name a
/// user may give (a policy's group named like a run would be ended as an
/// abandoned run).
pub const OWN_PREFIX: &str = "cgmgr.";

/// The leaf group that receives the processes of the managed root when
/// controllers must be enabled there (cgroup v2's "no internal processes").
pub const LEAF_GROUP: &str = "cgmgr.leaf";

/// A validated group path such as `sandbox` or `batch/etl`; empty for the root.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupName(String);

impl GroupName {
    /// The managed root itself.
    pub fn root() -> GroupName {
        GroupName(String::new())
    }

    /// The leaf group for evacuated processes.
    pub fn leaf() -> GroupName {
        GroupName(LEAF_GROUP.to_string())
    }

    /// Validates a user-supplied group name, explaining the first broken rule.
    pub fn parse(name: &str) -> Result<GroupName, NameError> {
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.starts_with('/') || name.ends_with('/') {
            return Err(NameError::NotRelative(name.into()));
        }
        for segment in name.split('/') {
            check_segment(name, segment)?;
        }
        if name.split('/').next() == Some(LEAF_GROUP) {
            return Err(NameError::Leaf(name.into()));
        }
        if let Some(segment) = name.split('/').find(|s| s.starts_with(OWN_PREFIX)) {
            return Err(NameError::Reserved {
                name: name.into(),
                segment: segment.into(),
            });
        }
        Ok(GroupName(name.to_string()))
    }

    /// The name as written, `""` for the root.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for the managed root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The parent group (`batch` for `batch/etl`), `None` for the root.
    pub fn parent(&self) -> Option<GroupName> {
        if self.is_root() {
            return None;
        }
        Some(match self.0.rsplit_once('/') {
            Some((parent, _)) => GroupName(parent.to_string()),
            None => GroupName::root(),
        })
    }

    /// The group and its ancestors up to, and including, the root; root first.
    pub fn ancestry(&self) -> Vec<GroupName> {
        let mut chain = vec![self.clone()];
        while let Some(parent) = chain.last().and_then(GroupName::parent) {
            chain.push(parent);
        }
        chain.reverse();
        chain
    }

    /// A child of this group; `segment` must itself be a valid single segment.
    pub fn child(&self, segment: &str) -> Result<GroupName, NameError> {
        check_segment(segment, segment)?;
        Ok(GroupName(self.file(segment)))
    }

    /// The relative path of `file` inside this group, for `openat`-style calls.
    pub fn file(&self, file: &str) -> String {
        if self.is_root() {
            file.to_string()
        } else {
            format!("{}/{file}", self.0)
        }
    }

    /// The relative path of the group directory (`.` for the root).
    pub fn dir(&self) -> &str {
        if self.is_root() { "." } else { &self.0 }
    }
}

fn check_segment(name: &str, segment: &str) -> Result<(), NameError> {
    if segment.is_empty() {
        return Err(NameError::EmptySegment(name.into()));
    }
    if segment == "." || segment == ".." {
        return Err(NameError::WalksOut {
            name: name.into(),
            segment: segment.into(),
        });
    }
    if let Some(bad) = segment
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(NameError::BadChar {
            name: name.into(),
            bad,
        });
    }
    if let Some(prefix) = RESERVED_PREFIXES.iter().find(|p| segment.starts_with(*p)) {
        return Err(NameError::KernelFile {
            name: name.into(),
            segment: segment.into(),
            prefix,
        });
    }
    Ok(())
}

/// Why a group name was refused: the first rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// `""`.
    #[error("a group name cannot be empty")]
    Empty,
    /// A leading or trailing `/`.
    #[error("group name {0:?} must be relative to the root, without a leading or trailing `/`")]
    NotRelative(String),
    /// `a//b`.
    #[error("group name {0:?} has an empty segment (`//`)")]
    EmptySegment(String),
    /// A `.` or `..` segment.
    #[error("group name {name:?} contains {segment:?}: names cannot walk out of the root")]
    WalksOut {
        /// The name.
        name: String,
        /// The segment.
        segment: String,
    },
    /// A character outside `[A-Za-z0-9_.-]`.
    #[error(
        "group name {name:?} contains {bad:?}: only letters, digits, `_`, `.` and `-` are allowed in a segment"
    )]
    BadChar {
        /// The name.
        name: String,
        /// The first bad character.
        bad: char,
    },
    /// A segment named like a kernel interface file.
    #[error(
        "group name {name:?}: segment {segment:?} starts with {prefix:?}, which names kernel interface files"
    )]
    KernelFile {
        /// The name.
        name: String,
        /// The segment.
        segment: String,
        /// The prefix it starts with.
        prefix: &'static str,
    },
    /// `cgmgr.leaf` at the top.
    #[error("group name {0:?} is reserved: cgmgr moves the root's processes into `{LEAF_GROUP}`")]
    Leaf(String),
    /// A segment starting with `cgmgr.`.
    #[error(
        "group name {name:?}: {segment:?} is reserved: names starting with `{OWN_PREFIX}` are cgmgr's own (`{LEAF_GROUP}` for the root's processes, `cgmgr.run.*` for the runs of `cgmgr exec`, which cgmgr ends and removes); pick another name"
    )]
    Reserved {
        /// The name.
        name: String,
        /// The segment.
        segment: String,
    },
}

impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_root() {
            f.write_str("(root)")
        } else {
            f.write_str(&self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_names() {
        for n in ["sandbox", "batch/etl", "a.b-c_d/E9", "x.slice"] {
            assert_eq!(GroupName::parse(n).unwrap().as_str(), n);
        }
    }

    #[test]
    fn rejects_escapes_and_kernel_names() {
        let cases = [
            ("", "cannot be empty"),
            ("/abs", "relative to the root"),
            ("a/", "relative to the root"),
            ("a//b", "empty segment"),
            ("..", "walk out"),
            ("a/../b", "walk out"),
            ("a/.", "walk out"),
            ("a b", "' '"),
            ("a\0b", "'\\0'"),
            ("memory.max", "kernel interface files"),
            ("a/cgroup.procs", "kernel interface files"),
            ("cgmgr.leaf", "reserved"),
            ("cgmgr.leaf/x", "reserved"),
            ("a/cgmgr.run.99999", "`cgmgr.run.*` for the runs"),
            ("cgmgr.x", "reserved"),
            ("a/cgmgr.leaf/b", "reserved"),
        ];
        for (name, why) in cases {
            let e = GroupName::parse(name).unwrap_err().to_string();
            assert!(e.contains(why), "{name:?}: {e}");
        }
    }

    #[test]
    fn ancestry_and_files() {
        let g = GroupName::parse("a/b/c").unwrap();
        let names: Vec<_> = g
            .ancestry()
            .iter()
            .map(|g| g.as_str().to_string())
            .collect();
        assert_eq!(names, ["", "a", "a/b", "a/b/c"]);
        assert_eq!(g.file("memory.max"), "a/b/c/memory.max");
        assert_eq!(GroupName::root().file("cgroup.procs"), "cgroup.procs");
        assert!(GroupName::root().child("..").is_err());
        assert_eq!(g.child("d").unwrap().as_str(), "a/b/c/d");
    }
}
