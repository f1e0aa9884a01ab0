//! A group's `pids.max` refusals, true on every kernel.
//!
//! Where a refused fork is counted depends on the kernel (`pids_can_fork`
//! in kernel/cgroup/pids.c):
//! - before 6.11, only in `pids.events` of the forking task's own cgroup.
//!   A `cgmgr exec` run forks in its run group `GROUP/cgmgr.run.PID`, so
//!   the group's own file never moves, and the run group's count goes
//!   away with the run group;
//! - from 6.11, `max` of `pids.events` counts at the cgroup whose limit
//!   refused the fork and every ancestor, and `pids.events.local` exists;
//!   unless the hierarchy is mounted with `pids_localevents`, which brings
//!   back the count in the forking cgroup (read from mountinfo).
//!
//! The file, not the version, tells them apart ([`Counting::of`]). On a
//! hierarchical kernel the group's count is its `pids.events` `max`. On an
//! older one it is composed ([`refusals`]): the group's own count, plus
//! every live run group's (with whatever cgroups the run made below it),
//! plus what ended run groups carried into a ledger before they were
//! removed ([`remove_run`], the one place run groups are removed).
//!
//! The ledger is the extended attribute `user.cgmgr.pids_carried` of the
//! group's directory: it survives cgmgr's restarts, dies with the group,
//! and the group's owner can write it without privileges (a delegated
//! subtree's user; `trusted.*` would need CAP_SYS_ADMIN). It holds a
//! generation, the refusals carried, and the run groups carried but
//! perhaps not removed yet, by name and inode (a cgroup's inode number is
//! its id, never reused while the system runs), so a reader never counts
//! a run twice: the run group that is still there and also carried is
//! skipped. Carries are made under an exclusive `flock` on the group's
//! directory, so two runs ending at once both add theirs; readers take no
//! lock: they read the ledger, then the run groups, then the ledger again,
//! and take the sum only when the generation did not move in between
//! (else they read again). Each step of a carry leaves a state in which the
//! sum is exact, and a reader that reads the ledger first can only miss a
//! run, never count one twice, so the count never exceeds the kernel's
//! own refusals.

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::sys::stat::Mode;

use super::error::CgroupError;
use super::fs::read_fd;
use super::stat::{PidsEvents, StatFile};
use super::{CgroupRoot, GroupName};

/// The prefix of run groups (`cgmgr.` names are cgmgr's own).
pub const RUN_PREFIX: &str = "cgmgr.run.";

/// The extended attribute of a group's directory that holds its ledger.
pub const LEDGER_XATTR: &CStr = c"user.cgmgr.pids_carried";

/// How long a carry waits for another carry of the same group (or anyone
/// else holding a lock on the group's directory) before it gives up and
/// leaves the run group to the next run's reaper, its count intact.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Readings of the ledger and the run groups tried before a reader takes
/// one that may miss a run ended meanwhile (never one that counts twice).
const READ_TRIES: u32 = 8;

/// Deepest cgroup below a run group that is counted (a run may make its own).
const MAX_DEPTH: u32 = 16;

/// How the kernel counts a refused fork.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counting {
    /// At the cgroup whose limit refused it and every ancestor (Linux 6.11+:
    /// `pids.events.local` exists).
    Hierarchical,
    /// Only in the forking task's own cgroup (before 6.11).
    ForkingCgroup,
}

impl Counting {
    /// Probes `group` (which has the pids controller): `pids.events.local`
    /// is there from 6.11 on, where the hierarchy counts up the tree unless
    /// it was mounted with `pids_localevents` (read once per process).
    pub fn of(root: &CgroupRoot, group: &GroupName) -> Counting {
        match root.read_optional(group, "pids.events.local") {
            Ok(None) => Counting::ForkingCgroup,
            _ if mounted_with_local_events() => Counting::ForkingCgroup,
            _ => Counting::Hierarchical,
        }
    }
}

/// `pids_localevents` on this mount namespace's cgroup2 hierarchy.
fn mounted_with_local_events() -> bool {
    static LOCAL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *LOCAL.get_or_init(|| {
        std::fs::read_to_string("/proc/self/mountinfo")
            .is_ok_and(|m| super::locate::pids_local_events(&m))
    })
}

/// A run group the ledger has carried, by its name and its cgroup inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarriedRun {
    /// The run group's last path segment (`cgmgr.run.PID`).
    pub name: String,
    /// Its directory's inode number: the cgroup's id.
    pub ino: u64,
}

/// What ended run groups left in their group's ledger.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ledger {
    /// Raised by every change, so that a reader can tell it read a
    /// consistent state.
    pub generation: u64,
    /// Refusals of run groups that were removed.
    pub carried: u64,
    /// Run groups carried whose removal may not have happened yet.
    pub pending: Vec<CarriedRun>,
}

/// A ledger whose text is not the format [`Ledger::parse`] reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LedgerFormatError(pub String);

impl Ledger {
    /// Parses the ledger's text: `generation N`, `carried N` and one
    /// `pending NAME INODE` line per run group carried but not yet removed.
    pub fn parse(text: &str) -> Result<Ledger, LedgerFormatError> {
        let bad = |line: &str, why: &str| LedgerFormatError(format!("line {line:?}: {why}"));
        let number = |line: &str, v: &str| {
            v.parse::<u64>()
                .map_err(|_| bad(line, "the value is not a number"))
        };
        let (mut generation, mut carried) = (None, None);
        let mut pending = Vec::new();
        for line in text.lines().filter(|l| !l.is_empty()) {
            let fields: Vec<&str> = line.split(' ').collect();
            match fields.as_slice() {
                ["generation", v] if generation.is_none() => generation = Some(number(line, v)?),
                ["carried", v] if carried.is_none() => carried = Some(number(line, v)?),
                ["pending", name, ino] => {
                    if !name.starts_with(RUN_PREFIX) || name.contains('/') {
                        return Err(bad(line, "not a run group's name"));
                    }
                    pending.push(CarriedRun {
                        name: (*name).to_string(),
                        ino: number(line, ino)?,
                    });
                }
                _ => return Err(bad(line, "not a ledger line")),
            }
        }
        match (generation, carried) {
            (Some(generation), Some(carried)) => Ok(Ledger {
                generation,
                carried,
                pending,
            }),
            _ => Err(LedgerFormatError(
                "there is no `generation` or no `carried` line".into(),
            )),
        }
    }

    /// The text [`Ledger::parse`] reads back.
    pub fn render(&self) -> String {
        let mut out = format!("generation {}\ncarried {}\n", self.generation, self.carried);
        for run in &self.pending {
            out.push_str(&format!("pending {} {}\n", run.name, run.ino));
        }
        out
    }

    fn is_pending(&self, name: &str, ino: u64) -> bool {
        self.pending.iter().any(|r| r.name == name && r.ino == ino)
    }
}

/// Why a group's refusals could not be counted, or a run group's not carried.
#[derive(Debug, thiserror::Error)]
pub enum PidsError {
    /// A kernel file could not be read, or a group not listed or removed.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// The ledger could not be read.
    #[error("reading the extended attribute {name} of {path}: {errno}")]
    LedgerRead {
        /// The group's directory.
        path: PathBuf,
        /// The attribute.
        name: &'static str,
        /// Why.
        errno: Errno,
    },
    /// The ledger holds what cgmgr did not write.
    #[error("the extended attribute {name} of {path} holds {value:?}: {reason}")]
    LedgerFormat {
        /// The group's directory.
        path: PathBuf,
        /// The attribute.
        name: &'static str,
        /// What it holds.
        value: String,
        /// Why it does not parse.
        reason: String,
    },
    /// The ledger could not be written.
    #[error("writing {value:?} to the extended attribute {name} of {path}: {errno}")]
    LedgerWrite {
        /// The group's directory.
        path: PathBuf,
        /// The attribute.
        name: &'static str,
        /// What was written.
        value: String,
        /// The kernel's answer.
        errno: Errno,
    },
    /// The group's directory could not be locked for a carry.
    #[error("locking {path} to carry the pids.max refusals of {run}: {errno}")]
    Lock {
        /// The group's directory.
        path: PathBuf,
        /// The run group.
        run: String,
        /// Why (EWOULDBLOCK: someone held it for the whole wait).
        errno: Errno,
    },
}

/// The group's `pids.max` refusals (`pids.events` `max`, made true on
/// every kernel, see the module's doc); `None` when the group has no
/// pids controller. Every reader of a group's count goes through here.
pub fn refusals(root: &CgroupRoot, group: &GroupName) -> Result<Option<u64>, PidsError> {
    let Some(own) = root.read_stat::<PidsEvents>(group)? else {
        return Ok(None);
    };
    if Counting::of(root, group) == Counting::Hierarchical {
        return Ok(Some(own.max));
    }
    let dir = root.open_dir(group).map_err(|errno| CgroupError::Read {
        path: root.group_path(group),
        errno,
    })?;
    let mut sum = own.max;
    for _ in 0..READ_TRIES {
        let before = read_ledger(root, group, dir.as_fd())?;
        let live = live_runs(root, group, dir.as_fd(), &before)?;
        sum = own.max.saturating_add(before.carried).saturating_add(live);
        if read_ledger(root, group, dir.as_fd())?.generation == before.generation {
            break;
        }
    }
    Ok(Some(sum))
}

/// A run group's own refusals, where the kernel counts them there (before
/// 6.11: every fork refused in the run, whichever limit refused it);
/// `None` on a hierarchical kernel, where a run group's `pids.events`
/// counts only refusals by its own limit, or without a pids controller.
pub fn run_refusals(root: &CgroupRoot, run: &GroupName) -> Option<u64> {
    root.read_stat::<PidsEvents>(run).ok().flatten()?;
    if Counting::of(root, run) == Counting::Hierarchical {
        return None;
    }
    let dir = root.open_dir(run).ok()?;
    subtree_count(root, run, dir.as_fd(), 0).ok()
}

/// Removes the ended (empty) run group `run`: on a kernel that counts
/// refusals in the forking cgroup, first carries its count into its
/// group's ledger, under the group's lock. The one way run groups go away.
pub fn remove_run(root: &CgroupRoot, run: &GroupName) -> Result<(), PidsError> {
    remove_run_with(root, run, |root, run| root.rmdir(run))
}

/// [`remove_run`] with the removal itself given (unit tests remove a fake
/// tree's directory, or fail).
fn remove_run_with(
    root: &CgroupRoot,
    run: &GroupName,
    rmdir: impl FnOnce(&CgroupRoot, &GroupName) -> Result<(), CgroupError>,
) -> Result<(), PidsError> {
    let Some(group) = run.parent() else {
        return Ok(rmdir(root, run)?);
    };
    let counted = matches!(root.read_optional(&group, "pids.events"), Ok(Some(_)));
    if !counted || Counting::of(root, &group) == Counting::Hierarchical {
        return Ok(rmdir(root, run)?);
    }
    let open_err = |errno| CgroupError::Read {
        path: root.group_path(run),
        errno,
    };
    let run_dir = root.open_dir(run).map_err(open_err)?;
    let ino = nix::sys::stat::fstat(&run_dir).map_err(open_err)?.st_ino;
    let count = subtree_count(root, run, run_dir.as_fd(), 0)?;
    drop(run_dir);
    let name = leaf(run).to_string();
    let group_dir = root.open_dir(&group).map_err(|errno| CgroupError::Read {
        path: root.group_path(&group),
        errno,
    })?;
    let lock = lock_group(root, &group, run, group_dir)?;
    let mut ledger = read_ledger(root, &group, lock.as_fd())?;
    let pending_before = ledger.pending.len();
    ledger
        .pending
        .retain(|r| still_there(lock.as_fd(), &r.name, r.ino));
    let already = ledger.is_pending(&name, ino);
    // Nothing to carry and nothing stale to drop: no write at all (most runs).
    if count == 0 && !already && ledger.pending.len() == pending_before {
        drop(lock);
        return Ok(rmdir(root, run)?);
    }
    // 1. Carried, and marked as still there: readers skip it from now on.
    if !already {
        ledger.carried = ledger.carried.saturating_add(count);
        ledger.pending.push(CarriedRun {
            name: name.clone(),
            ino,
        });
    }
    ledger.generation += 1;
    write_ledger(root, &group, lock.as_fd(), &ledger)?;
    // 2. Removed. A failure puts the count back with the run group.
    if let Err(e) = rmdir(root, run) {
        ledger.carried = ledger.carried.saturating_sub(count);
        ledger.pending.retain(|r| !(r.name == name && r.ino == ino));
        ledger.generation += 1;
        let _ = write_ledger(root, &group, lock.as_fd(), &ledger);
        return Err(e.into());
    }
    // 3. No longer pending. Should this write fail, the entry is dropped by
    // the next carry: no run group has that inode any more.
    ledger.pending.retain(|r| !(r.name == name && r.ino == ino));
    ledger.generation += 1;
    write_ledger(root, &group, lock.as_fd(), &ledger)
}

fn leaf(group: &GroupName) -> &str {
    group.as_str().rsplit('/').next().unwrap_or_default()
}

/// Takes the group directory's exclusive lock, waiting at most [`LOCK_WAIT`].
fn lock_group(
    root: &CgroupRoot,
    group: &GroupName,
    run: &GroupName,
    dir: OwnedFd,
) -> Result<Flock<OwnedFd>, PidsError> {
    let deadline = Instant::now() + LOCK_WAIT;
    let mut dir = dir;
    loop {
        match Flock::lock(dir, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((back, Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                dir = back;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err((_, errno)) => {
                return Err(PidsError::Lock {
                    path: root.group_path(group),
                    run: run.to_string(),
                    errno,
                });
            }
        }
    }
}

/// Whether `dir` has a child directory `name` with inode `ino`.
fn still_there(dir: BorrowedFd<'_>, name: &str, ino: u64) -> bool {
    nix::sys::stat::fstatat(dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
        .is_ok_and(|st| st.st_ino == ino && st.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

/// The sum of the refusals of `group`'s live run groups that the ledger
/// has not carried yet.
fn live_runs(
    root: &CgroupRoot,
    group: &GroupName,
    dir: BorrowedFd<'_>,
    ledger: &Ledger,
) -> Result<u64, PidsError> {
    let mut sum = 0u64;
    for (name, sub) in subdirs(root, group, dir)? {
        if !name.starts_with(RUN_PREFIX) {
            continue;
        }
        let ino = nix::sys::stat::fstat(&sub)
            .map_err(|errno| CgroupError::Read {
                path: root.group_path(group).join(&name),
                errno,
            })?
            .st_ino;
        if ledger.is_pending(&name, ino) {
            continue;
        }
        let Ok(run) = group.child(&name) else {
            continue;
        };
        sum = sum.saturating_add(subtree_count(root, &run, sub.as_fd(), 0)?);
    }
    Ok(sum)
}

/// `pids.events` `max` of the cgroup open as `dir` (named `group`, for
/// messages) and of every cgroup below it. A cgroup removed meanwhile
/// counts 0 (its run was carried, which the reader's generation check sees).
fn subtree_count(
    root: &CgroupRoot,
    group: &GroupName,
    dir: BorrowedFd<'_>,
    depth: u32,
) -> Result<u64, PidsError> {
    let path = || root.display_path(group, PidsEvents::FILE);
    let mut sum = match nix::fcntl::openat(
        dir,
        PidsEvents::FILE,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => match read_fd(&fd) {
            Ok(text) => {
                PidsEvents::parse(&text)
                    .map_err(|e| CgroupError::Format {
                        path: path(),
                        content: text.clone(),
                        reason: e.0,
                    })?
                    .max
            }
            Err(Errno::ENODEV | Errno::ENOENT) => 0,
            Err(errno) => {
                return Err(CgroupError::Read {
                    path: path(),
                    errno,
                }
                .into());
            }
        },
        Err(Errno::ENOENT | Errno::ENODEV) => 0,
        Err(errno) => {
            return Err(CgroupError::Read {
                path: path(),
                errno,
            }
            .into());
        }
    };
    if depth >= MAX_DEPTH {
        return Ok(sum);
    }
    for (name, sub) in subdirs(root, group, dir)? {
        let Ok(child) = group.child(&name) else {
            continue;
        };
        sum = sum.saturating_add(subtree_count(root, &child, sub.as_fd(), depth + 1)?);
    }
    Ok(sum)
}

/// The child directories of `dir`, opened (without following a symlink);
/// one removed between the listing and its open is left out.
fn subdirs(
    root: &CgroupRoot,
    group: &GroupName,
    dir: BorrowedFd<'_>,
) -> Result<Vec<(String, OwnedFd)>, PidsError> {
    let list_err = |errno| CgroupError::List {
        path: root.group_path(group),
        errno,
    };
    let mut listing = match nix::dir::Dir::openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(listing) => listing,
        Err(Errno::ENOENT | Errno::ENODEV) => return Ok(Vec::new()),
        Err(errno) => return Err(list_err(errno).into()),
    };
    let mut out = Vec::new();
    for entry in listing.iter() {
        let entry = entry.map_err(list_err)?;
        if entry.file_type() != Some(nix::dir::Type::Directory) {
            continue;
        }
        let Ok(name) = entry.file_name().to_str() else {
            continue;
        };
        if name == "." || name == ".." {
            continue;
        }
        match nix::fcntl::openat(
            dir,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => out.push((name.to_string(), fd)),
            Err(Errno::ENOENT | Errno::ENODEV) => {}
            Err(errno) => return Err(list_err(errno).into()),
        }
    }
    Ok(out)
}

fn ledger_name() -> &'static str {
    LEDGER_XATTR.to_str().unwrap_or("user.cgmgr.pids_carried")
}

/// The group's ledger; an empty one when it has none yet.
fn read_ledger(
    root: &CgroupRoot,
    group: &GroupName,
    dir: BorrowedFd<'_>,
) -> Result<Ledger, PidsError> {
    let read_err = |errno| PidsError::LedgerRead {
        path: root.group_path(group),
        name: ledger_name(),
        errno,
    };
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: dir is a valid descriptor for the call, the name is
        // NUL-terminated and buf is a live buffer of the length passed.
        let n = unsafe {
            libc::fgetxattr(
                dir.as_raw_fd(),
                LEDGER_XATTR.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if let Ok(n) = usize::try_from(n) {
            buf.truncate(n);
            break;
        }
        match Errno::last() {
            Errno::ENODATA => return Ok(Ledger::default()),
            // Grew past the buffer: the kernel's limit for a value is 64 KiB.
            Errno::ERANGE if buf.len() < 1 << 16 => buf.resize(1 << 16, 0),
            errno => return Err(read_err(errno)),
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    Ledger::parse(&text).map_err(|e| PidsError::LedgerFormat {
        path: root.group_path(group),
        name: ledger_name(),
        value: text,
        reason: e.0,
    })
}

fn write_ledger(
    root: &CgroupRoot,
    group: &GroupName,
    dir: BorrowedFd<'_>,
    ledger: &Ledger,
) -> Result<(), PidsError> {
    let value = ledger.render();
    // SAFETY: dir is a valid descriptor for the call, the name is
    // NUL-terminated and the value pointer and length describe `value`,
    // alive until the call returns.
    let rc = unsafe {
        libc::fsetxattr(
            dir.as_raw_fd(),
            LEDGER_XATTR.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc != 0 {
        return Err(PidsError::LedgerWrite {
            path: root.group_path(group),
            name: ledger_name(),
            value,
            errno: Errno::last(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! On fake trees (plain directories whose files hold real kernel
    //! contents); the fake's `pids.events.local` decides the kernel kind.
    use super::*;
    use std::path::Path;

    const PIDS_EVENTS: &str = include_str!("../../tests/fixtures/kernel/vm-6.1-fx.pids.events");

    fn events(max: u64) -> String {
        // The fixture's own line, with another count.
        PIDS_EVENTS.replace("max 1", &format!("max {max}"))
    }

    struct Fake {
        tmp: tempfile::TempDir,
        root: CgroupRoot,
    }

    impl Fake {
        /// A group `sandbox` with the pids controller; `hierarchical`:
        /// the kernel has `pids.events.local`.
        fn new(hierarchical: bool) -> Fake {
            let tmp = tempfile::tempdir().unwrap();
            let fake = Fake {
                root: CgroupRoot::open_unchecked(tmp.path()),
                tmp,
            };
            fake.group("sandbox", 0);
            if hierarchical {
                std::fs::write(fake.path("sandbox/pids.events.local"), events(0)).unwrap();
            }
            fake
        }

        fn path(&self, rel: &str) -> std::path::PathBuf {
            self.tmp.path().join(rel)
        }

        /// Makes `rel` a cgroup whose `pids.events` says `max`.
        fn group(&self, rel: &str, max: u64) -> GroupName {
            std::fs::create_dir_all(self.path(rel)).unwrap();
            std::fs::write(self.path(&format!("{rel}/pids.events")), events(max)).unwrap();
            name(rel)
        }

        fn count(&self) -> u64 {
            refusals(&self.root, &sandbox()).unwrap().unwrap()
        }

        fn ledger(&self) -> Ledger {
            let dir = self.root.open_dir(&sandbox()).unwrap();
            read_ledger(&self.root, &sandbox(), dir.as_fd()).unwrap()
        }
    }

    fn sandbox() -> GroupName {
        GroupName::parse("sandbox").unwrap()
    }

    /// A path below the root, run groups included (`cgmgr.` names are
    /// cgmgr's own: made by `child`, never by `parse`).
    fn name(rel: &str) -> GroupName {
        rel.split('/')
            .try_fold(GroupName::root(), |g, seg| g.child(seg))
            .unwrap()
    }

    fn remove_fake(root: &CgroupRoot, run: &GroupName) -> Result<(), CgroupError> {
        std::fs::remove_dir_all(root.group_path(run)).map_err(|_| CgroupError::Rmdir {
            path: root.group_path(run),
            errno: Errno::EIO,
        })
    }

    #[test]
    fn ledger_round_trip_and_bad_text() {
        let l = Ledger {
            generation: 7,
            carried: 12,
            pending: vec![CarriedRun {
                name: "cgmgr.run.42".into(),
                ino: 4711,
            }],
        };
        assert_eq!(Ledger::parse(&l.render()).unwrap(), l);
        assert_eq!(
            Ledger::parse("generation 0\ncarried 0\n").unwrap(),
            Ledger::default()
        );
        for bad in [
            "",
            "generation 1\n",
            "generation x\ncarried 1\n",
            "generation 1\ncarried 1\npending ../../etc 1\n",
            "generation 1\ncarried 1\npending cgmgr.run.1/x 1\n",
            "generation 1\ncarried 1\npending cgmgr.run.1\n",
            "generation 1\ncarried -1\n",
            "generation 1\ngeneration 2\ncarried 1\n",
            "generation 1\ncarried 1\nsomething else\n",
        ] {
            assert!(Ledger::parse(bad).is_err(), "{bad:?}");
        }
    }

    /// Old kernels: the group's own count, plus its live runs' (and what
    /// they made below them), plus what ended runs carried; a child group
    /// that is not a run keeps its own count.
    #[test]
    fn old_kernel_composes_own_live_and_carried() {
        let f = Fake::new(false);
        std::fs::write(f.path("sandbox/pids.events"), events(2)).unwrap();
        f.group("sandbox/cgmgr.run.10", 3);
        f.group("sandbox/cgmgr.run.10/inner", 1);
        f.group("sandbox/cgmgr.run.11", 0);
        f.group("sandbox/child", 50);
        assert_eq!(f.count(), 2 + 3 + 1);
        assert_eq!(
            run_refusals(&f.root, &name("sandbox/cgmgr.run.10")),
            Some(4)
        );
        // Ended: carried, removed, counted once.
        let run = name("sandbox/cgmgr.run.10");
        remove_run_with(&f.root, &run, remove_fake).unwrap();
        assert!(!f.path("sandbox/cgmgr.run.10").exists());
        assert_eq!(f.count(), 6);
        let l = f.ledger();
        assert_eq!((l.carried, l.pending.len()), (4, 0));
        // A run without refusals leaves the ledger alone.
        let generation = l.generation;
        let quiet = name("sandbox/cgmgr.run.11");
        remove_run_with(&f.root, &quiet, remove_fake).unwrap();
        assert_eq!(f.ledger().generation, generation);
        assert_eq!(f.count(), 6);
    }

    /// 6.11+: the group's pids.events is already hierarchical: no summing,
    /// no ledger, and a run group's own file is not the run's count.
    #[test]
    fn hierarchical_kernel_reads_the_file_and_keeps_no_ledger() {
        let f = Fake::new(true);
        std::fs::write(f.path("sandbox/pids.events"), events(5)).unwrap();
        let run = f.group("sandbox/cgmgr.run.10", 0);
        std::fs::write(f.path("sandbox/cgmgr.run.10/pids.events.local"), events(0)).unwrap();
        assert_eq!(f.count(), 5);
        assert_eq!(run_refusals(&f.root, &run), None);
        remove_run_with(&f.root, &run, remove_fake).unwrap();
        assert_eq!(f.count(), 5);
        let dir = f.root.open_dir(&sandbox()).unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(
            crate::cgroup::fs::read_xattr(dir.as_fd(), LEDGER_XATTR, &mut buf),
            None,
            "no ledger on a hierarchical kernel"
        );
    }

    /// Between the carry and the removal (and if cgmgr dies there) the run
    /// group is both there and carried: counted once. An abandoned run left
    /// in that state and reaped later is not carried again.
    #[test]
    fn a_carried_run_still_there_counts_once_and_a_reaped_one_is_not_carried_twice() {
        let f = Fake::new(false);
        let run = f.group("sandbox/cgmgr.run.10", 3);
        let seen = std::cell::Cell::new(0);
        let err = remove_run_with(&f.root, &run, |root, _| {
            seen.set(refusals(root, &sandbox()).unwrap().unwrap());
            // cgmgr killed here: the run group stays, pending.
            Err(CgroupError::Rmdir {
                path: root.group_path(&run),
                errno: Errno::EBUSY,
            })
        });
        assert_eq!(seen.get(), 3, "while carried and still there");
        assert!(err.is_err());
        // The failed removal put the count back with the run group.
        assert_eq!(f.count(), 3);
        assert_eq!(f.ledger().carried, 0);
        // A crash between the carry and the removal: pending, still there.
        let dir = f.root.open_dir(&sandbox()).unwrap();
        let ino = std::fs::metadata(f.path("sandbox/cgmgr.run.10"))
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .unwrap();
        let crashed = Ledger {
            generation: 9,
            carried: 3,
            pending: vec![CarriedRun {
                name: "cgmgr.run.10".into(),
                ino,
            }],
        };
        write_ledger(&f.root, &sandbox(), dir.as_fd(), &crashed).unwrap();
        assert_eq!(f.count(), 3);
        // The next run's reaper ends it: removed, not carried again.
        remove_run_with(&f.root, &run, remove_fake).unwrap();
        assert_eq!(f.count(), 3);
        let l = f.ledger();
        assert_eq!((l.carried, l.pending.len()), (3, 0));
        // A run group made again under the same name is a new run.
        f.group("sandbox/cgmgr.run.10", 2);
        assert_eq!(f.count(), 5);
    }

    /// Two runs ending at once: both counts reach the ledger.
    #[test]
    fn concurrent_carries_lose_nothing() {
        let f = Fake::new(false);
        let runs: Vec<GroupName> = (0..8)
            .map(|i| f.group(&format!("sandbox/cgmgr.run.{}", 100 + i), i + 1))
            .collect();
        let expected: u64 = (1..=8).sum();
        assert_eq!(f.count(), expected);
        let path = f.tmp.path().to_path_buf();
        let threads: Vec<_> = runs
            .into_iter()
            .map(|run| {
                let path = path.clone();
                std::thread::spawn(move || {
                    // Each run has its own cgmgr exec, with its own root.
                    let root = CgroupRoot::open_unchecked(&path);
                    remove_run_with(&root, &run, |root, run| {
                        std::thread::sleep(Duration::from_millis(2));
                        remove_fake(root, run)
                    })
                    .unwrap();
                })
            })
            .collect();
        // A reader meanwhile never sees more than the truth.
        for _ in 0..50 {
            assert!(f.count() <= expected);
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(f.count(), expected);
        assert_eq!(f.ledger().carried, expected);
    }

    /// A carry waits for the group's lock and gives up naming it, leaving
    /// the run group (and its count) for a later reaper.
    #[test]
    fn a_held_lock_leaves_the_run_group_and_its_count() {
        let f = Fake::new(false);
        let run = f.group("sandbox/cgmgr.run.10", 3);
        let held = Flock::lock(
            f.root.open_dir(&sandbox()).unwrap(),
            FlockArg::LockExclusiveNonblock,
        )
        .unwrap();
        let started = Instant::now();
        let e = remove_run_with(&f.root, &run, remove_fake).unwrap_err();
        assert!(started.elapsed() >= LOCK_WAIT);
        assert!(
            matches!(
                e,
                PidsError::Lock {
                    errno: Errno::EWOULDBLOCK,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("sandbox"), "{e}");
        drop(held);
        assert!(Path::new(&f.path("sandbox/cgmgr.run.10")).exists());
        assert_eq!(f.count(), 3);
    }

    /// A ledger someone else wrote is an error naming the file and value;
    /// a failed write names the errno.
    #[test]
    fn ledger_errors_name_the_directory_and_value() {
        let f = Fake::new(false);
        let dir = f.root.open_dir(&sandbox()).unwrap();
        // SAFETY: a valid descriptor, a NUL-terminated name and a live value.
        let rc = unsafe {
            libc::fsetxattr(
                dir.as_raw_fd(),
                LEDGER_XATTR.as_ptr(),
                c"lots".as_ptr().cast(),
                4,
                0,
            )
        };
        assert_eq!(rc, 0, "{}", Errno::last());
        let e = refusals(&f.root, &sandbox()).unwrap_err().to_string();
        assert!(
            e.contains("user.cgmgr.pids_carried") && e.contains("sandbox") && e.contains("lots"),
            "{e}"
        );
        // An O_PATH descriptor carries no attribute calls: EBADF.
        let path_only = nix::fcntl::open(&f.path("sandbox"), OFlag::O_PATH, Mode::empty()).unwrap();
        let e =
            write_ledger(&f.root, &sandbox(), path_only.as_fd(), &Ledger::default()).unwrap_err();
        assert!(matches!(e, PidsError::LedgerWrite { .. }), "{e}");
        assert!(e.to_string().contains("generation 0"), "{e}");
    }
}
