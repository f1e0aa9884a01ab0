//! The running daemon's record, so that other cgmgr commands find its groups.
//!
//! `cgmgr daemon` writes `/run/cgmgr/daemon` (the directory can be moved with
//! `CGMGR_RUNTIME_DIR`): its pid, managed root, policy directory and listen
//! address, one `key value` line each. It holds an open-file-description
//! write lock on the file for its whole life; the kernel drops the lock when
//! the daemon dies, however it dies (`kill -9` included). A reader asks the
//! kernel whether the lock is held (`F_OFD_GETLK`, which takes no lock and
//! so never disturbs the daemon): no lock means the record is stale.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{FcntlArg, fcntl};

/// Where the record lives unless `CGMGR_RUNTIME_DIR` says otherwise
/// (systemd's `RuntimeDirectory=cgmgr` creates it for the unit).
pub const DEFAULT_RUNTIME_DIR: &str = "/run/cgmgr";

/// What a running daemon tells other cgmgr commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonRecord {
    /// The daemon's pid.
    pub pid: i32,
    /// Its managed root, absolute.
    pub root: PathBuf,
    /// Its policy directory, absolute.
    pub policies: PathBuf,
    /// Where it serves /metrics.
    pub listen: String,
}

/// The record's path on this host: in `CGMGR_RUNTIME_DIR` when set, else
/// in [`DEFAULT_RUNTIME_DIR`] for root and `$XDG_RUNTIME_DIR/cgmgr` for a
/// user (each user's daemon is their own).
pub fn record_path() -> PathBuf {
    runtime_dir(
        nix::unistd::geteuid().as_raw(),
        std::env::var_os("CGMGR_RUNTIME_DIR"),
        std::env::var_os("XDG_RUNTIME_DIR"),
    )
    .join("daemon")
}

/// Where `uid`'s cgmgr keeps its runtime files, given the two variables.
/// A user without `XDG_RUNTIME_DIR` (no login session) gets
/// `/run/user/UID/cgmgr`, where systemd-logind would have put it.
pub fn runtime_dir(
    uid: u32,
    cgmgr: Option<std::ffi::OsString>,
    xdg: Option<std::ffi::OsString>,
) -> PathBuf {
    if let Some(dir) = cgmgr.filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if uid == 0 {
        return PathBuf::from(DEFAULT_RUNTIME_DIR);
    }
    user_runtime_dir(uid, xdg).join("cgmgr")
}

/// A user's runtime directory: `XDG_RUNTIME_DIR` (`xdg`), else
/// `/run/user/UID`, where systemd-logind makes it.
pub fn user_runtime_dir(uid: u32, xdg: Option<std::ffi::OsString>) -> PathBuf {
    xdg.filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from(format!("/run/user/{uid}")), PathBuf::from)
}

/// Held by the daemon: the record stays valid while this lives.
#[derive(Debug)]
pub struct Published {
    _file: File,
}

/// Why the record could not be published.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Creating, locking or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The record file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another live daemon has published its record.
    #[error("{path} names another running daemon (pid {pid}, root {root})")]
    Taken {
        /// The record file.
        path: PathBuf,
        /// That daemon's pid.
        pid: i32,
        /// Its root.
        root: PathBuf,
    },
    /// A path that the one-line format cannot carry.
    #[error("{0:?} contains a newline; not recorded")]
    Unrecordable(PathBuf),
}

impl DaemonRecord {
    /// Writes the record and locks it for the life of the returned value.
    pub fn publish(&self, path: &Path) -> Result<Published, RecordError> {
        let io = |source| RecordError::Io {
            path: path.to_path_buf(),
            source,
        };
        for p in [&self.root, &self.policies] {
            if p.as_os_str().as_encoded_bytes().contains(&b'\n') {
                return Err(RecordError::Unrecordable(p.clone()));
            }
        }
        if let Some(other) = read_record(path)? {
            return Err(RecordError::Taken {
                path: path.to_path_buf(),
                pid: other.pid,
                root: other.root,
            });
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        // A new file, locked and written before it takes the record's name:
        // a reader never sees it half-written or unlocked, and whatever was
        // at the path (a stale record, a lock someone else holds on it) is
        // replaced, not reused.
        let temp = dir.join(format!(".daemon.{}", std::process::id()));
        let _ = std::fs::remove_file(&temp);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&temp)
            .map_err(io)?;
        let written = fcntl(
            file.as_fd(),
            FcntlArg::F_OFD_SETLK(&whole_file(libc::F_WRLCK)),
        )
        .map_err(std::io::Error::from)
        .and_then(|_| file.write_all(self.to_text().as_bytes()))
        .and_then(|()| std::fs::rename(&temp, path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(io(e));
        }
        Ok(Published { _file: file })
    }

    fn to_text(&self) -> String {
        format!(
            "pid {}\nroot {}\npolicies {}\nlisten {}\n",
            self.pid,
            self.root.display(),
            self.policies.display(),
            self.listen
        )
    }

    /// Parses the record's text; `None` when a key is missing or malformed.
    pub fn parse(text: &str) -> Option<DaemonRecord> {
        let value = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
        };
        Some(DaemonRecord {
            pid: value("pid")?.parse().ok()?,
            root: PathBuf::from(value("root")?),
            policies: PathBuf::from(value("policies")?),
            listen: value("listen")?.to_string(),
        })
    }
}

/// The running daemon's record: `Ok(None)` when no daemon runs (no file, an
/// empty file, or a stale record whose lock nobody holds).
pub fn running_daemon() -> Result<Option<DaemonRecord>, RecordError> {
    read_record(&record_path())
}

/// [`running_daemon`] for an explicit record path.
pub fn read_record(path: &Path) -> Result<Option<DaemonRecord>, RecordError> {
    let io = |source| RecordError::Io {
        path: path.to_path_buf(),
        source,
    };
    // Never blocks (a FIFO planted there), never follows a symlink.
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    if !file.metadata().map_err(io)?.is_file() {
        return Err(io(std::io::Error::other("not a regular file")));
    }
    // Only the daemon's write lock means "alive": anyone who can read the
    // file can take a read lock on it.
    let mut probe = whole_file(libc::F_RDLCK);
    fcntl(file.as_fd(), FcntlArg::F_OFD_GETLK(&mut probe))
        .map_err(|e| io(std::io::Error::from(e)))?;
    if i32::from(probe.l_type) != libc::F_WRLCK {
        return Ok(None);
    }
    let mut text = String::new();
    file.take(64 * 1024).read_to_string(&mut text).map_err(io)?;
    Ok(DaemonRecord::parse(&text))
}

/// A lock over the whole file (`l_pid` must be 0 for OFD locks).
fn whole_file(kind: i32) -> libc::flock {
    libc::flock {
        l_type: i16::try_from(kind).unwrap_or(0),
        l_whence: i16::try_from(libc::SEEK_SET).unwrap_or(0),
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_user_has_a_runtime_directory_of_their_own() {
        let os = |s: &str| Some(std::ffi::OsString::from(s));
        assert_eq!(
            runtime_dir(0, None, os("/run/user/0")),
            PathBuf::from("/run/cgmgr")
        );
        assert_eq!(
            runtime_dir(1000, None, os("/run/user/1000")),
            PathBuf::from("/run/user/1000/cgmgr")
        );
        assert_eq!(
            runtime_dir(1000, None, None),
            PathBuf::from("/run/user/1000/cgmgr")
        );
        assert_eq!(
            runtime_dir(1000, os(""), os("")),
            PathBuf::from("/run/user/1000/cgmgr")
        );
        assert_eq!(
            runtime_dir(1000, os("/tmp/x"), os("/run/user/1000")),
            PathBuf::from("/tmp/x")
        );
        assert_eq!(runtime_dir(0, os("/tmp/x"), None), PathBuf::from("/tmp/x"));
    }

    fn record() -> DaemonRecord {
        DaemonRecord {
            pid: 42,
            root: PathBuf::from("/sys/fs/cgroup/system.slice/cgmgr.service"),
            policies: PathBuf::from("/etc/cgmgr"),
            listen: "127.0.0.1:9765".into(),
        }
    }

    #[test]
    fn a_published_record_is_found_and_goes_stale_when_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("run/daemon");
        assert_eq!(read_record(&path).unwrap(), None, "no file, no daemon");
        let held = record().publish(&path).unwrap();
        assert_eq!(read_record(&path).unwrap(), Some(record()));
        let second = DaemonRecord {
            pid: 43,
            ..record()
        };
        let e = second.publish(&path).unwrap_err().to_string();
        assert!(e.contains("pid 42"), "{e}");
        drop(held);
        assert!(path.exists(), "the stale file stays");
        assert_eq!(
            read_record(&path).unwrap(),
            None,
            "stale: nobody holds the lock"
        );
        let again = second.publish(&path).unwrap();
        assert_eq!(read_record(&path).unwrap().unwrap().pid, 43);
        drop(again);
    }

    #[test]
    fn a_symlinked_record_is_replaced_not_written_through() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("elsewhere");
        std::fs::write(&target, "keep").unwrap();
        let path = tmp.path().join("daemon");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        assert!(read_record(&path).is_err(), "a symlink is not followed");
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        // publish reads first: the symlink is an error, nothing is written.
        assert!(record().publish(&path).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    }

    #[test]
    fn a_fifo_at_the_record_path_does_not_block() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("daemon");
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        assert!(read_record(&path).is_err());
    }

    #[test]
    fn a_read_lock_of_anyone_does_not_revive_a_stale_record() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("daemon");
        drop(record().publish(&path).unwrap());
        let reader = File::open(&path).unwrap();
        fcntl(
            reader.as_fd(),
            FcntlArg::F_OFD_SETLK(&whole_file(libc::F_RDLCK)),
        )
        .unwrap();
        assert_eq!(
            read_record(&path).unwrap(),
            None,
            "a read lock is not a daemon"
        );
        let held = DaemonRecord { pid: 7, ..record() }.publish(&path).unwrap();
        assert_eq!(
            read_record(&path).unwrap().unwrap().pid,
            7,
            "and blocks no new daemon"
        );
        drop((held, reader));
    }

    #[test]
    fn malformed_text_is_no_record() {
        assert_eq!(DaemonRecord::parse(""), None);
        assert_eq!(
            DaemonRecord::parse("pid x\nroot /\npolicies /\nlisten a\n"),
            None
        );
        assert_eq!(DaemonRecord::parse(&record().to_text()), Some(record()));
    }
}
