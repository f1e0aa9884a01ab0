//! The `seccomp` key of an `[exec]` table: cgmgr's default filter, none, or
//! an OCI-format JSON profile (the `linux.seccomp` object of an OCI runtime
//! config, as runc, crun and youki read it).
//!
//! A profile is read and checked when the policy is loaded, so a bad one is
//! a policy error naming the policy's file and line, plus the profile's own
//! line and column, and nothing is written.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Profiles larger than this are refused (Docker's default is 20 KiB).
pub const MAX_PROFILE_BYTES: u64 = 1 << 20;

/// What filter the workload gets.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Seccomp {
    /// cgmgr's default filter (see `exec::seccomp`).
    #[default]
    Default,
    /// No filter at all.
    Unconfined,
    /// An OCI profile read from `path`.
    Profile {
        /// Where it was read from.
        path: PathBuf,
        /// Its content, checked.
        profile: OciProfile,
    },
}

/// An OCI `linux.seccomp` object.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OciProfile {
    /// Action for every syscall no rule names.
    pub default_action: OciAction,
    /// errno for `SCMP_ACT_ERRNO`/`SCMP_ACT_TRACE` defaults (EPERM if unset).
    #[serde(default)]
    pub default_errno_ret: Option<u32>,
    /// Architectures (`SCMP_ARCH_X86_64`...); cgmgr filters the native one
    /// and kills calls made through any other.
    #[serde(default)]
    pub architectures: Vec<String>,
    /// seccomp(2) flags; accepted and ignored.
    #[serde(default)]
    pub flags: Vec<String>,
    /// The rules.
    #[serde(default)]
    pub syscalls: Vec<OciSyscall>,
}

/// One rule: every syscall in `names`, when every `args` condition holds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OciSyscall {
    /// Syscall names; names this architecture lacks are skipped, as runc does.
    pub names: Vec<String>,
    /// What happens.
    pub action: OciAction,
    /// errno for `SCMP_ACT_ERRNO`.
    #[serde(default)]
    pub errno_ret: Option<u32>,
    /// Conditions, all of which must hold.
    #[serde(default)]
    pub args: Vec<OciArg>,
    /// Free text.
    #[serde(default)]
    pub comment: Option<String>,
}

/// A condition on one argument.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OciArg {
    /// Argument index, 0 to 5.
    pub index: u32,
    /// The value compared (the mask for `SCMP_CMP_MASKED_EQ`).
    pub value: u64,
    /// The second value (`SCMP_CMP_MASKED_EQ`'s expected value).
    #[serde(default)]
    pub value_two: u64,
    /// The comparison.
    pub op: OciOp,
}

/// OCI actions.
#[allow(missing_docs, non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum OciAction {
    SCMP_ACT_KILL,
    SCMP_ACT_KILL_PROCESS,
    SCMP_ACT_KILL_THREAD,
    SCMP_ACT_TRAP,
    SCMP_ACT_ERRNO,
    SCMP_ACT_TRACE,
    SCMP_ACT_ALLOW,
    SCMP_ACT_LOG,
}

/// OCI comparisons.
#[allow(missing_docs, non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum OciOp {
    SCMP_CMP_NE,
    SCMP_CMP_LT,
    SCMP_CMP_LE,
    SCMP_CMP_EQ,
    SCMP_CMP_GE,
    SCMP_CMP_GT,
    SCMP_CMP_MASKED_EQ,
}

/// Why a `seccomp` value or an OCI profile was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// Neither a name nor an absolute path.
    #[error(
        "{value:?} is not a seccomp setting: \"default\", \"unconfined\" or the absolute path of an OCI JSON profile"
    )]
    NotASetting {
        /// What was written.
        value: String,
    },
    /// The profile cannot be read.
    #[error("seccomp profile {}: {source}", path.display())]
    Read {
        /// The profile.
        path: PathBuf,
        /// The error of `stat`, `open` or `read`.
        source: std::io::Error,
    },
    /// The path is not a regular file.
    #[error("seccomp profile {}: not a regular file", path.display())]
    NotAFile {
        /// The profile.
        path: PathBuf,
    },
    /// Larger than [`MAX_PROFILE_BYTES`].
    #[error("seccomp profile {}: larger than {MAX_PROFILE_BYTES} bytes", path.display())]
    TooLarge {
        /// The profile.
        path: PathBuf,
    },
    /// Not JSON of the OCI format.
    #[error("seccomp profile {}:{line}:{column}: {message}{hint}", path.display())]
    Json {
        /// The profile.
        path: PathBuf,
        /// Where parsing stopped.
        line: usize,
        /// See `line`.
        column: usize,
        /// The JSON parser's words.
        message: String,
        /// What to do about a Docker (moby) profile, or nothing.
        hint: &'static str,
    },
    /// A rule on an argument syscalls do not have.
    #[error("seccomp profile {}: rule for {names:?}: argument index {index} (syscalls have arguments 0 to 5)", path.display())]
    ArgumentIndex {
        /// The profile.
        path: PathBuf,
        /// The rule's syscalls.
        names: Vec<String>,
        /// The index asked.
        index: u32,
    },
    /// A rule that names no syscall.
    #[error("seccomp profile {}: a rule with no `names`", path.display())]
    NoNames {
        /// The profile.
        path: PathBuf,
    },
}

/// Parses the `seccomp` value: `"default"`, `"unconfined"` or an absolute
/// path to a profile.
pub fn parse_setting(value: &str) -> Result<Seccomp, ProfileError> {
    match value {
        "default" => Ok(Seccomp::Default),
        "unconfined" => Ok(Seccomp::Unconfined),
        p if p.starts_with('/') => {
            let path = PathBuf::from(p);
            let profile = read_profile(&path)?;
            Ok(Seccomp::Profile { path, profile })
        }
        other => Err(ProfileError::NotASetting {
            value: other.into(),
        }),
    }
}

/// Reads and checks an OCI profile; the error names the profile's line and
/// column where JSON parsing stopped.
pub fn read_profile(path: &Path) -> Result<OciProfile, ProfileError> {
    use std::io::Read;
    let owned = || path.to_path_buf();
    let read = |source| ProfileError::Read {
        path: owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read)?;
    if !meta.is_file() {
        return Err(ProfileError::NotAFile { path: owned() });
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_PROFILE_BYTES + 1).read_to_string(&mut text))
        .map_err(read)?;
    if text.len() as u64 > MAX_PROFILE_BYTES {
        return Err(ProfileError::TooLarge { path: owned() });
    }
    let profile: OciProfile = serde_json::from_str(&text).map_err(|e| {
        let message = e.to_string();
        let hint = if message.contains("archMap") || message.contains("includes") {
            " (moby's `archMap`/`includes`/`excludes` are not part of the OCI format: keep `defaultAction`, `architectures` and `syscalls` with `names`, `action`, `errnoRet`, `args`)"
        } else {
            ""
        };
        ProfileError::Json {
            path: owned(),
            line: e.line(),
            column: e.column(),
            message,
            hint,
        }
    })?;
    for rule in &profile.syscalls {
        if let Some(arg) = rule.args.iter().find(|a| a.index > 5) {
            return Err(ProfileError::ArgumentIndex {
                path: owned(),
                names: rule.names.clone(),
                index: arg.index,
            });
        }
        if rule.names.is_empty() {
            return Err(ProfileError::NoNames { path: owned() });
        }
    }
    Ok(profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings() {
        assert_eq!(parse_setting("default").unwrap(), Seccomp::Default);
        assert_eq!(parse_setting("unconfined").unwrap(), Seccomp::Unconfined);
        let e = parse_setting("strict").unwrap_err().to_string();
        assert!(e.contains("\"default\", \"unconfined\""), "{e}");
        let e = parse_setting("/nonexistent.json").unwrap_err().to_string();
        assert!(e.contains("/nonexistent.json"), "{e}");
    }

    #[test]
    fn an_oci_profile_is_read() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("p.json");
        std::fs::write(
            &p,
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [
                  {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                  {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                   "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
                  {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
                ]}"#,
        )
        .unwrap();
        let profile = read_profile(&p).unwrap();
        assert_eq!(profile.default_action, OciAction::SCMP_ACT_ERRNO);
        assert_eq!(profile.syscalls.len(), 3);
        assert_eq!(profile.syscalls[1].args[0].op, OciOp::SCMP_CMP_MASKED_EQ);
    }

    #[test]
    fn bad_profiles_name_line_and_column() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("p.json");
        std::fs::write(&p, "{\"defaultAction\": \"SCMP_ACT_ALLOW\",\n \"syscalls\": [{\"names\": [\"read\"], \"action\": \"SCMP_ACT_NOPE\"}]}").unwrap();
        let e = read_profile(&p).unwrap_err().to_string();
        assert!(
            e.contains("p.json:2:") && e.contains("SCMP_ACT_NOPE"),
            "{e}"
        );
        std::fs::write(
            &p,
            "{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"archMap\": []}",
        )
        .unwrap();
        let e = read_profile(&p).unwrap_err().to_string();
        assert!(e.contains("not part of the OCI format"), "{e}");
        std::fs::write(&p, r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]}"#).unwrap();
        let e = read_profile(&p).unwrap_err().to_string();
        assert!(e.contains("argument index 6"), "{e}");
        assert!(
            read_profile(tmp.path())
                .unwrap_err()
                .to_string()
                .contains("not a regular file")
        );
    }
}
