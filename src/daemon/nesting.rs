//! One writer per subtree: a daemon refuses a root that lies inside, or
//! contains, another running daemon's root.
//!
//! Each daemon holds an exclusive `flock` on its own root directory
//! ([`super::lock_root`]). That lock conflicts only with a lock on the same
//! directory, so a daemon on `R` and one on `R/sub` both got theirs and
//! fought over `R/sub`. After taking its lock, a starting daemon reads
//! `/proc/locks` (every lock on the host, with its holder's pid and the
//! locked file's device and inode) and looks for a write `flock` of another
//! process on its root's ancestors up to the cgroup2 mount and, only when
//! the cgroup2 device has such locks at all, on the directories below its
//! root. Locking first and looking second leaves no window: of two daemons
//! starting at once, the one that looks last sees the other's lock (both
//! may refuse; both never run).
//!
//! Run groups (`GROUP/cgmgr.run.PID`) are locked by their `cgmgr exec` run,
//! not by a daemon, and are ignored.

use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::cgroup::pids::RUN_PREFIX;

/// Where the kernel lists the locks held on the host.
pub const PROC_LOCKS: &str = "/proc/locks";

/// A held exclusive `flock`, as `/proc/locks` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlockWrite {
    /// The process that took it, in the reader's pid namespace (0: not
    /// visible from there).
    pub pid: i32,
    /// The locked file's device: major number.
    pub major: u32,
    /// The locked file's device: minor number.
    pub minor: u32,
    /// The locked file's inode.
    pub inode: u64,
}

/// The held exclusive `flock`s of `/proc/locks`'s text. Waiters (`->`),
/// shared locks and the other kinds (POSIX, OFD, leases) are left out;
/// the device is printed `major:minor` in hex, the inode in decimal.
pub fn held_flock_writes(text: &str) -> Vec<FlockWrite> {
    text.lines().filter_map(flock_write).collect()
}

/// `6: FLOCK  ADVISORY  WRITE 30247 00:26:1912356 0 EOF`.
fn flock_write(line: &str) -> Option<FlockWrite> {
    let mut fields = line.split_whitespace();
    fields.next()?.strip_suffix(':')?;
    let (kind, _mode, access) = (fields.next()?, fields.next()?, fields.next()?);
    if kind != "FLOCK" || access != "WRITE" {
        return None;
    }
    let pid = fields.next()?.parse().ok()?;
    let mut id = fields.next()?.splitn(3, ':');
    let major = u32::from_str_radix(id.next()?, 16).ok()?;
    let minor = u32::from_str_radix(id.next()?, 16).ok()?;
    let inode = id.next()?.parse().ok()?;
    Some(FlockWrite {
        pid,
        major,
        minor,
        inode,
    })
}

/// How another daemon's root stands to ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// Its root is an ancestor of ours.
    Contains,
    /// Its root is below ours.
    LiesInside,
}

impl std::fmt::Display for Relation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Relation::Contains => "contains",
            Relation::LiesInside => "lies inside",
        })
    }
}

/// A pid from `/proc/locks`, which shows 0 for a holder outside this pid
/// namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder(pub i32);

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0 > 0 {
            write!(f, "pid {}", self.0)
        } else {
            f.write_str("pid not shown in /proc/locks: another pid namespace")
        }
    }
}

/// Another daemon's root over or under ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nested {
    /// Who holds the lock.
    pub holder: Holder,
    /// The directory it holds locked: its root.
    pub root: PathBuf,
    /// How that root stands to ours.
    pub relation: Relation,
}

/// The locks of others on `root`'s filesystem: all of `locks` on the
/// device `dev` but those of `own_pid` (the lock just taken).
pub fn others_on_device(locks: &[FlockWrite], dev: u64, own_pid: i32) -> Vec<FlockWrite> {
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    locks
        .iter()
        .filter(|l| l.major == major && l.minor == minor && l.pid != own_pid)
        .copied()
        .collect()
}

/// Who holds the lock on the inode `inode` among `locks` (of one device).
pub fn holder_of(locks: &[FlockWrite], inode: u64) -> Option<Holder> {
    locks
        .iter()
        .find(|l| l.inode == inode)
        .map(|l| Holder(l.pid))
}

/// The first lock of `others` (locks on `root`'s device, see
/// [`others_on_device`]) on an ancestor of `root` up to its mount, else on
/// a directory below it. `root` is absolute and resolved.
pub fn find_nested(root: &Path, others: &[FlockWrite]) -> Option<Nested> {
    if others.is_empty() {
        return None;
    }
    ancestor_lock(root, others).or_else(|| descendant_lock(root, others))
}

/// Ancestors while they are on `root`'s device: the cgroup2 mount is the
/// last of them.
fn ancestor_lock(root: &Path, others: &[FlockWrite]) -> Option<Nested> {
    let dev = std::fs::metadata(root).ok()?.dev();
    for dir in root.ancestors().skip(1) {
        let Ok(meta) = std::fs::metadata(dir) else {
            break;
        };
        if meta.dev() != dev {
            break;
        }
        if is_run_group(dir) {
            continue;
        }
        if let Some(holder) = holder_of(others, meta.ino()) {
            return Some(Nested {
                holder,
                root: dir.to_path_buf(),
                relation: Relation::Contains,
            });
        }
    }
    None
}

/// Walks the directories below `root` (inode numbers from the directory
/// entries, no stat per group); a directory removed meanwhile is skipped.
fn descendant_lock(root: &Path, others: &[FlockWrite]) -> Option<Nested> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = entry.path();
            if !is_run_group(&path)
                && let Some(holder) = holder_of(others, entry.ino())
            {
                return Some(Nested {
                    holder,
                    root: path,
                    relation: Relation::LiesInside,
                });
            }
            stack.push(path);
        }
    }
    None
}

/// A `cgmgr exec` run's group, which its run holds locked.
fn is_run_group(dir: &Path) -> bool {
    dir.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(RUN_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured on this project's 6.18 host (hybrid layout, cgroup2 is
    /// device 0:38, printed `00:26`): line 6 is `flock -x` on a scratch
    /// cgroup directory (inode 1912356, pid 30247), line 1 another
    /// process's flock on a cgroup directory; line 5 has a blocked waiter
    /// (`->`); a shared flock, a POSIX and an OFD lock on ext4 (`fe:00`).
    const CAPTURED: &str = include_str!("../../tests/fixtures/kernel/host-6.18.proc-locks");

    #[test]
    fn held_write_flocks_of_a_real_proc_locks() {
        let locks = held_flock_writes(CAPTURED);
        assert_eq!(
            locks,
            [
                FlockWrite {
                    pid: 30263,
                    major: 0,
                    minor: 38,
                    inode: 1950375
                },
                FlockWrite {
                    pid: 30250,
                    major: 0xfe,
                    minor: 0,
                    inode: 10010734
                },
                FlockWrite {
                    pid: 30247,
                    major: 0,
                    minor: 38,
                    inode: 1912356
                },
            ],
            "the waiter, the shared flock, POSIX and OFD locks are left out"
        );
    }

    #[test]
    fn devices_are_hex_and_the_own_lock_is_not_another_daemons() {
        let locks = held_flock_writes(CAPTURED);
        let cgroup2 = libc::makedev(0, 38);
        let others = others_on_device(&locks, cgroup2, 30263);
        assert_eq!(others.len(), 1);
        assert_eq!(holder_of(&others, 1912356), Some(Holder(30247)));
        assert_eq!(holder_of(&others, 1950375), None, "own pid");
        let ext4 = libc::makedev(0xfe, 0);
        assert_eq!(others_on_device(&locks, ext4, 1)[0].inode, 10010734);
        // A wide minor (printed with more than two digits) and garbage.
        assert_eq!(
            held_flock_writes("1: FLOCK ADVISORY WRITE 7 103:1a3:12 0 EOF\nnot a lock\n"),
            [FlockWrite {
                pid: 7,
                major: 0x103,
                minor: 0x1a3,
                inode: 12
            }]
        );
        assert_eq!(
            Holder(0).to_string(),
            "pid not shown in /proc/locks: another pid namespace"
        );
    }

    /// `tmp/outer/root/inner` and `tmp/outer/root/g/cgmgr.run.9`, locks made
    /// up from their real inodes.
    fn tree() -> (tempfile::TempDir, PathBuf, u64) {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path())
            .unwrap()
            .join("outer/root");
        std::fs::create_dir_all(root.join("inner")).unwrap();
        std::fs::create_dir_all(root.join("g/cgmgr.run.9")).unwrap();
        let dev = std::fs::metadata(&root).unwrap().dev();
        (tmp, root, dev)
    }

    fn lock_on(path: &Path, dev: u64, pid: i32) -> FlockWrite {
        FlockWrite {
            pid,
            major: libc::major(dev),
            minor: libc::minor(dev),
            inode: std::fs::metadata(path).unwrap().ino(),
        }
    }

    #[test]
    fn an_ancestors_lock_and_a_descendants_lock_are_found() {
        let (_tmp, root, dev) = tree();
        let outer = root.parent().unwrap().to_path_buf();
        let found = find_nested(&root, &[lock_on(&outer, dev, 41)]).unwrap();
        assert_eq!(
            found,
            Nested {
                holder: Holder(41),
                root: outer,
                relation: Relation::Contains
            }
        );
        let inner = root.join("inner");
        let found = find_nested(&root, &[lock_on(&inner, dev, 42)]).unwrap();
        assert_eq!(found.root, inner);
        assert_eq!(found.relation, Relation::LiesInside);
        assert_eq!(found.holder.to_string(), "pid 42");
    }

    #[test]
    fn run_groups_siblings_and_the_root_itself_are_no_other_daemon() {
        let (_tmp, root, dev) = tree();
        let sibling = root.parent().unwrap().join("sibling");
        std::fs::create_dir(&sibling).unwrap();
        let locks = [
            lock_on(&root.join("g/cgmgr.run.9"), dev, 9),
            lock_on(&sibling, dev, 10),
            lock_on(&root, dev, 11),
        ];
        assert_eq!(find_nested(&root, &locks), None);
        assert_eq!(find_nested(&root, &[]), None);
    }
}
