//! What a run may reach and use beyond its rootfs: mounts (binds of host
//! directories and files, sized tmpfs), the network, its CPU and wall
//! time, its resource limits. The same values come from an `[exec]` table
//! and from `cgmgr exec`'s flags; the checks here are the ones both get.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use super::units::{UnitError, parse_count, parse_duration, parse_size};
use crate::cgroup::values::{Bytes, Limit};

/// One mount into the sandbox, made after its `/tmp`, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// A host directory or file bound at `at` (`nosuid,nodev`; submounts
    /// come along, read-only too when the bind is).
    Bind {
        /// The host path: absolute, no symlink in it.
        source: PathBuf,
        /// Where it appears in the sandbox.
        at: PathBuf,
        /// Read-only (`--ro-bind`) or read-write (`--bind`).
        readonly: bool,
    },
    /// A new tmpfs at `at` (`nosuid,nodev`), of at most `size` bytes.
    Tmpfs {
        /// Where it appears in the sandbox.
        at: PathBuf,
        /// Its size limit (`None`: the kernel's default, half of RAM).
        size: Option<Bytes>,
    },
}

impl Mount {
    /// Where it appears in the sandbox.
    pub fn at(&self) -> &Path {
        match self {
            Mount::Bind { at, .. } | Mount::Tmpfs { at, .. } => at,
        }
    }
}

/// The network a run gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// A network namespace of its own with loopback up (the default).
    #[default]
    None,
    /// The host's network namespace.
    Host,
}

impl Network {
    /// Every value with its policy name.
    pub const ALL: [(&'static str, Network); 2] =
        [("none", Network::None), ("host", Network::Host)];

    /// The value of a policy name or flag.
    pub fn from_name(name: &str) -> Option<Network> {
        Network::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }
}

/// A resource limit a run may set: its policy name, the kernel's resource,
/// and whether its value is a size (`"1M"`) or a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    /// The policy name (`fsize`), as `prlimit(1)` spells it.
    pub name: &'static str,
    /// `RLIMIT_*`.
    pub resource: u32,
    /// A size in bytes (else a count).
    pub size: bool,
}

/// Every resource limit a run may set.
pub const RLIMITS: [Rlimit; 7] = [
    Rlimit {
        name: "fsize",
        resource: libc::RLIMIT_FSIZE,
        size: true,
    },
    Rlimit {
        name: "nofile",
        resource: libc::RLIMIT_NOFILE,
        size: false,
    },
    Rlimit {
        name: "stack",
        resource: libc::RLIMIT_STACK,
        size: true,
    },
    Rlimit {
        name: "core",
        resource: libc::RLIMIT_CORE,
        size: true,
    },
    Rlimit {
        name: "as",
        resource: libc::RLIMIT_AS,
        size: true,
    },
    Rlimit {
        name: "memlock",
        resource: libc::RLIMIT_MEMLOCK,
        size: true,
    },
    Rlimit {
        name: "nproc",
        resource: libc::RLIMIT_NPROC,
        size: false,
    },
];

/// The limit of `name`, if it is one.
pub fn rlimit(name: &str) -> Option<Rlimit> {
    RLIMITS.iter().copied().find(|r| r.name == name)
}

/// The names of [`RLIMITS`], for messages.
pub fn rlimit_names() -> Vec<&'static str> {
    RLIMITS.iter().map(|r| r.name).collect()
}

/// File systems whose files are kernel knobs or other runs' controls, not
/// data: never a bind's source (procfs, sysfs, cgroupfs, debugfs, tracefs,
/// securityfs, bpffs, configfs, fusectl).
pub const KERNEL_FILESYSTEMS: [i64; 10] = [
    0x9fa0,      // proc
    0x6265_6572, // sysfs
    0x0027_e0eb, // cgroup
    0x6367_7270, // cgroup2
    0x6462_6720, // debugfs
    0x7472_6163, // tracefs
    0x7363_6673, // securityfs
    0xcafe_4a11, // bpf
    0x6265_6570, // configfs
    0x6573_5546, // fusectl
];

/// The longest time limit a run may ask (a day): longer ones are typos.
pub const MAX_RUN_TIME: Duration = Duration::from_secs(86_400);

/// Why a mount, a limit or one of their flags is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// A destination that is relative or has `..` or `.`.
    #[error("{path:?} must be an absolute path without `.` or `..` components")]
    NotClean {
        /// The path as written.
        path: String,
    },
    /// A destination on `/proc`, `/dev` or `/sys`, or the root itself.
    #[error("{path:?} lies on {under}, which the sandbox sets up itself: mount elsewhere")]
    Reserved {
        /// The path as written.
        path: String,
        /// `/`, `/proc`, `/dev` or `/sys`.
        under: &'static str,
    },
    /// A source that cannot be looked at.
    #[error("{path:?}: {reason}")]
    Source {
        /// The source as written.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A flag that is not `SRC:DST`, `DST[:SIZE]` or `NAME=VALUE`.
    #[error("{value:?}: {expected}")]
    Syntax {
        /// The flag's value.
        value: String,
        /// What it should look like.
        expected: &'static str,
    },
    /// A value with a unit that does not read.
    #[error(transparent)]
    Unit(#[from] UnitError),
    /// An unknown resource limit name.
    #[error("unknown resource limit {name:?}: use one of {}", rlimit_names().join(", "))]
    UnknownRlimit {
        /// The name given.
        name: String,
    },
    /// A time limit of zero or over a day.
    #[error("{value:?} is out of range: more than 0 and at most 24h")]
    TimeRange {
        /// The value as written.
        value: String,
    },
}

/// Checks a mount destination: absolute, no `.`/`..`, not `/` and not on
/// `/proc`, `/dev` or `/sys`.
pub fn check_destination(path: &str) -> Result<PathBuf, RunError> {
    let p = Path::new(path);
    let clean = p.is_absolute()
        && !path.contains('\0')
        && !path.split('/').any(|c| c == "." || c == "..")
        && p.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if !clean {
        return Err(RunError::NotClean { path: path.into() });
    }
    let normal: PathBuf = p.components().collect();
    if normal == Path::new("/") {
        return Err(RunError::Reserved {
            path: path.into(),
            under: "/",
        });
    }
    for under in ["/proc", "/dev", "/sys"] {
        if normal.starts_with(under) {
            return Err(RunError::Reserved {
                path: path.into(),
                under,
            });
        }
    }
    Ok(normal)
}

/// Checks a bind source: absolute, clean, present, and with no symlink on
/// the way (it is opened the same way at run time, so a path swapped for a
/// symlink since is refused then too).
pub fn check_source(path: &str) -> Result<PathBuf, RunError> {
    let p = Path::new(path);
    if !p.is_absolute() || path.contains('\0') || path.split('/').any(|c| c == "." || c == "..") {
        return Err(RunError::NotClean { path: path.into() });
    }
    let normal: PathBuf = p.components().collect();
    let source = |reason: String| RunError::Source {
        path: path.into(),
        reason,
    };
    let mut walked = PathBuf::from("/");
    for part in normal.components().skip(1) {
        walked.push(part);
        let meta = std::fs::symlink_metadata(&walked).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => source(format!("{} does not exist", walked.display())),
            _ => source(format!("{}: {e}", walked.display())),
        })?;
        if meta.file_type().is_symlink() {
            return Err(source(format!(
                "{} is a symlink: name the real path (sources are never followed through a symlink)",
                walked.display()
            )));
        }
    }
    let kernel_fs = nix::sys::statfs::statfs(&normal)
        .is_ok_and(|s| KERNEL_FILESYSTEMS.contains(&s.filesystem_type().0));
    if kernel_fs {
        return Err(source(
            "is on a kernel file system (proc, sys, cgroup, debug...): its files are the host's knobs, never a bind's source".into(),
        ));
    }
    Ok(normal)
}

/// `--bind SRC:DST` or `--ro-bind SRC:DST`.
pub fn parse_bind_flag(value: &str, readonly: bool) -> Result<Mount, RunError> {
    let Some((source, at)) = value.split_once(':') else {
        return Err(RunError::Syntax {
            value: value.into(),
            expected: "write SRC:DST, two absolute paths",
        });
    };
    Ok(Mount::Bind {
        source: check_source(source)?,
        at: check_destination(at)?,
        readonly,
    })
}

/// `--tmpfs DST[:SIZE]`.
pub fn parse_tmpfs_flag(value: &str) -> Result<Mount, RunError> {
    let (at, size) = match value.split_once(':') {
        Some((at, size)) => (at, Some(tmpfs_size(size)?)),
        None => (value, None),
    };
    Ok(Mount::Tmpfs {
        at: check_destination(at)?,
        size,
    })
}

/// A tmpfs size: bytes or a unit, not `max` (the kernel's default is half
/// the RAM; leave the size out for it).
pub fn tmpfs_size(text: &str) -> Result<Bytes, RunError> {
    match parse_size(text)? {
        Limit::Value(b) if b.0 > 0 => Ok(b),
        _ => Err(RunError::Syntax {
            value: text.into(),
            expected: "a tmpfs size is more than 0, like \"64M\" (leave it out for the kernel's default)",
        }),
    }
}

/// A run's time limit: `"2s"`, `"500ms"`; more than 0 and at most a day.
pub fn run_time(text: &str) -> Result<Duration, RunError> {
    let d = parse_duration(text)?;
    if d.is_zero() || d > MAX_RUN_TIME {
        return Err(RunError::TimeRange { value: text.into() });
    }
    Ok(d)
}

/// A grace after the CPU time limit: `"0.5s"`; 0 to a day.
pub fn extra_time(text: &str) -> Result<Duration, RunError> {
    let d = parse_duration(text)?;
    if d > MAX_RUN_TIME {
        return Err(RunError::TimeRange { value: text.into() });
    }
    Ok(d)
}

/// A resource limit's value written as text: a size or count, or `"max"`
/// (`RLIM_INFINITY`).
pub fn rlimit_value(limit: Rlimit, text: &str) -> Result<u64, RunError> {
    let parsed = if limit.size {
        parse_size(text)?.value().map(|b| b.0)
    } else {
        parse_count(text)?.value().copied()
    };
    Ok(parsed.unwrap_or(libc::RLIM_INFINITY))
}

/// `--rlimit NAME=VALUE`.
pub fn parse_rlimit_flag(value: &str) -> Result<(Rlimit, u64), RunError> {
    let Some((name, v)) = value.split_once('=') else {
        return Err(RunError::Syntax {
            value: value.into(),
            expected: "write NAME=VALUE, like nofile=64 or fsize=1M",
        });
    };
    let limit = rlimit(name).ok_or_else(|| RunError::UnknownRlimit { name: name.into() })?;
    Ok((limit, rlimit_value(limit, v)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_are_clean_absolute_and_off_the_kernel_s_trees() {
        assert_eq!(check_destination("/task").unwrap(), PathBuf::from("/task"));
        assert_eq!(check_destination("/out/").unwrap(), PathBuf::from("/out"));
        for bad in ["task", "/a/../etc", "/a/./b", "", "/"] {
            assert!(check_destination(bad).is_err(), "{bad}");
        }
        for (bad, under) in [
            ("/proc/sys", "/proc"),
            ("/dev", "/dev"),
            ("/sys/fs", "/sys"),
        ] {
            assert_eq!(
                check_destination(bad),
                Err(RunError::Reserved {
                    path: bad.into(),
                    under
                })
            );
        }
        assert!(
            check_destination("/procfoo").is_ok(),
            "a sibling, not /proc"
        );
    }

    #[test]
    fn sources_are_refused_through_a_symlink_or_when_missing() {
        let tmp = tempfile::tempdir().unwrap();
        let real = std::fs::canonicalize(tmp.path()).unwrap();
        std::fs::create_dir(real.join("dir")).unwrap();
        std::os::unix::fs::symlink(real.join("dir"), real.join("link")).unwrap();
        let dir = real.join("dir");
        assert_eq!(check_source(dir.to_str().unwrap()).unwrap(), dir);
        let link = real.join("link/x");
        let err = check_source(link.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("is a symlink"), "{err}");
        let gone = real.join("gone");
        let err = check_source(gone.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("gone does not exist"), "{err}");
        assert!(check_source("rel/dir").is_err());
    }

    #[test]
    fn flags_read_as_the_policy_s_keys() {
        assert_eq!(
            parse_tmpfs_flag("/box:64M").unwrap(),
            Mount::Tmpfs {
                at: "/box".into(),
                size: Some(Bytes(64 << 20))
            }
        );
        assert_eq!(
            parse_tmpfs_flag("/box").unwrap(),
            Mount::Tmpfs {
                at: "/box".into(),
                size: None
            }
        );
        assert!(parse_tmpfs_flag("/box:0").is_err());
        assert!(parse_bind_flag("/srv", true).is_err(), "no destination");
        let (limit, v) = parse_rlimit_flag("fsize=1M").unwrap();
        assert_eq!((limit.name, v), ("fsize", 1 << 20));
        assert_eq!(
            parse_rlimit_flag("nofile=max").unwrap().1,
            libc::RLIM_INFINITY
        );
        let err = parse_rlimit_flag("files=3").unwrap_err().to_string();
        assert!(err.contains("fsize, nofile"), "{err}");
        assert!(run_time("0s").is_err());
        assert_eq!(run_time("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(extra_time("0ms").unwrap(), Duration::ZERO);
    }
}
