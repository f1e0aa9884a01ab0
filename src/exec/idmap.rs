//! User namespace id maps, written by the parent (real root) for the child.
//!
//! Root inside maps to an unprivileged range outside, as with subordinate
//! ids (`/etc/subuid`): inside ids 0..65536 are outside BASE..BASE+65536,
//! so nothing the workload does as "root" is root on the host.
//!
//! Each run holds a range of its own while it lives, so two sandboxes
//! never share host ids: not their files, not the kernel's per-user counts
//! (inotify instances, user namespaces). A range is leased by an exclusive
//! `flock` on `/run/cgmgr-ids/SLOT.lock`, held by the run's owner (`cgmgr
//! exec`, or the process serving a prepared sandbox) until the run's group
//! has been ended; the kernel drops the lock when the process ends, however
//! it ends.
//!
//! Three rules keep one run's ids away from the next run:
//! - **The namespace's owner is no id a file can carry.** The kernel gives
//!   every capability in a user namespace to a process of the parent
//!   namespace whose effective uid owns it. Each slot has an owner id of its
//!   own, below the first range ([`FIRST_OWNER`]), which no sandbox maps: a
//!   file a run leaves (a setuid copy of a shell, say) can carry its range's
//!   ids, never its owner's, so running it gives no way into any sandbox's
//!   namespaces. The owner still carries the kernel's per-user counts apart
//!   for each slot.
//! - **Ranges rotate.** A cursor (`/run/cgmgr-ids/cursor`) hands out slots
//!   in turn, so a released range comes back only once the cursor has gone
//!   round all 4,096 slots (held ones are passed over): a run's leftovers
//!   (files in a place the next run can reach) meet its ids again only then.
//! - **A range whose last run still has processes is skipped.** The lease
//!   file records the run's group; a free lock whose recorded group is
//!   still populated (a survivor of a `cgmgr exec` killed by SIGKILL,
//!   without a pid namespace) is not leased until that group is empty.

use std::fs::File;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::sys::stat::Mode;
use std::os::fd::{AsRawFd, BorrowedFd};

use super::error::ExecError;
use super::error::io_errno;
use super::subids::{self, MapEntry, Subordinate};
use crate::cgroup::handle::CgroupHandle;
use crate::cgroup::stat::{CgroupEvents, StatFile};

/// The host id of slot 0's inside root. Inside systemd's range for
/// container ids (524288..1879048191), and far above the ranges `useradd`
/// hands out in `/etc/subuid` (100000 upwards, 65536 per user): a sandbox
/// never shares ids with a user's rootless containers.
pub const FIRST_BASE: u32 = 0x6000_0000;
/// Number of ids mapped.
pub const RANGE: u32 = 65_536;
/// How many runs may hold a range at once (up to 0x6fffffff).
pub const SLOTS: u32 = 4096;
/// The owner of slot 0's user namespace; slot N's is `FIRST_OWNER + N`.
/// The ids just below the first range: no sandbox maps them, so no file a
/// sandbox writes can carry one.
pub const FIRST_OWNER: u32 = FIRST_BASE - SLOTS;

/// A range of host ids leased for one run.
#[derive(Debug)]
pub struct IdRange {
    /// The slot (0..SLOTS).
    pub slot: u32,
    /// The host id inside root maps to.
    pub base: u32,
    lease: Flock<File>,
}

impl IdRange {
    /// The host id that owns (creates) the run's user namespace.
    pub fn owner(&self) -> u32 {
        FIRST_OWNER + self.slot
    }

    /// Records the run group that will hold this range's processes: its
    /// path and its kernel file handle (`dir` is its directory), so that a
    /// later lease, in whatever mount namespace, can tell whether anything
    /// of the run is left. Written before any process enters the group.
    pub fn record(&self, run_group: &Path, dir: BorrowedFd<'_>) -> Result<(), ExecError> {
        let handle = CgroupHandle::of(dir).map_err(|errno| ExecError::Lease {
            what: format!("the file handle of {}", run_group.display()),
            errno,
        })?;
        let text = format!("{}\n{}\n", run_group.display(), handle.to_word());
        self.write_record(&text)
    }

    /// Forgets the run group: the run ended and its group is gone.
    pub fn clear_record(&self) -> Result<(), ExecError> {
        self.write_record("\n")
    }

    fn write_record(&self, text: &str) -> Result<(), ExecError> {
        // Written over the old record, never truncated: the reader takes
        // the first lines. A truncation frees the file's block, which on a
        // disk-backed /run costs a journal update (and a discard) per run.
        let file: &File = &self.lease;
        match nix::sys::uio::pwrite(file, text.as_bytes(), 0) {
            Ok(n) if n == text.len() => Ok(()),
            Ok(_) => Err(Errno::ENOSPC),
            Err(errno) => Err(errno),
        }
        .map_err(|errno| ExecError::Lease {
            what: format!("recording the run group in slot {}", self.slot),
            errno,
        })
    }
}

/// Where the leases live. A fixed place, so every `cgmgr exec` on the host
/// sees the same leases whatever its environment; not inside `/run/cgmgr`,
/// which systemd removes when `cgmgr.service` stops (`RuntimeDirectory=`):
/// a lock file deleted under a running sandbox would let the next run take
/// the same range.
pub const LEASE_DIR: &str = "/run/cgmgr-ids";

/// [`LEASE_DIR`].
pub fn lease_dir() -> PathBuf {
    PathBuf::from(LEASE_DIR)
}

/// Leases the next free range after the cursor whose last run left no
/// process. `dir` must be a directory only its owner, this process's user,
/// can write (0700 when created here): anyone else who could delete a held
/// lock file could make two runs share a range.
pub fn lease(dir: &Path) -> Result<IdRange, ExecError> {
    let dir_fd = open_lease_dir(dir)?;
    let at = |name: &str| dir.join(name).display().to_string();
    let lease_err = |what: String| move |errno: Errno| ExecError::Lease { what, errno };
    // The cursor's lock orders the leases: each takes the slot after the
    // previous one's, whichever `cgmgr exec` made it.
    let cursor = nix::fcntl::openat(
        &dir_fd,
        "cursor",
        OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(lease_err(format!("opening {}", at("cursor"))))?;
    let cursor = Flock::lock(File::from(cursor), FlockArg::LockExclusive)
        .map_err(|(_, errno)| lease_err(format!("locking {}", at("cursor")))(errno))?;
    let start = read_cursor(&cursor);
    let mut occupied = 0;
    for i in 0..SLOTS {
        let slot = (start + i) % SLOTS;
        let name = format!("{slot}.lock");
        let fd = nix::fcntl::openat(
            &dir_fd,
            name.as_str(),
            OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(lease_err(format!("opening {}", at(&name))))?;
        let lease = match Flock::lock(File::from(fd), FlockArg::LockExclusiveNonblock) {
            Ok(lease) => lease,
            Err((_, Errno::EWOULDBLOCK)) => continue,
            Err((_, errno)) => return Err(lease_err(format!("locking {}", at(&name)))(errno)),
        };
        if last_run_has_processes(&lease) {
            occupied += 1;
            continue;
        }
        write_cursor(&cursor, (slot + 1) % SLOTS);
        return Ok(IdRange {
            slot,
            base: FIRST_BASE + slot * RANGE,
            lease,
        });
    }
    Err(ExecError::IdsExhausted {
        dir: dir.to_path_buf(),
        occupied,
    })
}

fn open_lease_dir(dir: &Path) -> Result<std::os::fd::OwnedFd, ExecError> {
    let err = |what: String| move |errno: Errno| ExecError::Lease { what, errno };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io_errno(&e))
        .map_err(err(format!("creating {}", dir.display())))?;
    let dir_fd = nix::fcntl::open(
        dir,
        OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY,
        Mode::empty(),
    )
    .map_err(err(format!("opening {}", dir.display())))?;
    let st = nix::sys::stat::fstat(&dir_fd).map_err(err(format!("stat of {}", dir.display())))?;
    if st.st_uid != nix::unistd::geteuid().as_raw() || st.st_mode & 0o022 != 0 {
        return Err(ExecError::LeaseDir {
            dir: dir.to_path_buf(),
            uid: nix::unistd::geteuid().as_raw(),
            found_uid: st.st_uid,
            mode: st.st_mode & 0o7777,
        });
    }
    Ok(dir_fd)
}

fn read_cursor(file: &File) -> u32 {
    let mut buf = [0u8; 16];
    let n = nix::sys::uio::pread(file, &mut buf, 0).unwrap_or(0);
    std::str::from_utf8(&buf[..n])
        .ok()
        .and_then(|s| s.lines().next())
        .and_then(|s| s.trim().parse::<u32>().ok())
        .map_or(0, |c| c % SLOTS)
}

fn write_cursor(file: &File, next: u32) {
    // Best effort: a cursor that could not be moved only makes the next
    // lease start its search earlier. Fixed width, written in place.
    let text = format!("{next:010}\n");
    let _ = nix::sys::uio::pwrite(file, text.as_bytes(), 0);
}

/// Whether the run group recorded in a free lease still holds processes.
/// A lease that records none (a run that ended) is free, and so is one
/// whose group the kernel says is gone; a group whose state cannot be told
/// (its path leads nowhere here and its handle cannot be opened) is taken
/// for occupied.
fn last_run_has_processes(lease: &File) -> bool {
    let mut buf = vec![0u8; 8192];
    let n = nix::sys::uio::pread(lease, &mut buf, 0).unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]);
    let mut lines = text.lines();
    let Some(path) = lines.next().map(str::trim).filter(|s| s.starts_with('/')) else {
        return false;
    };
    let handle = lines.next().and_then(|w| CgroupHandle::from_word(w.trim()));
    let at_path = || match std::fs::read_to_string(Path::new(path).join("cgroup.events")) {
        Ok(text) => Some(CgroupEvents::parse(&text).ok().map(|e| e.is_populated())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(_) => Some(None),
    };
    match handle.as_ref().map(CgroupHandle::open) {
        Some(Ok(dir)) => populated_in(&dir).unwrap_or(true),
        Some(Err(Errno::ESTALE)) => false,
        // No handle access here (another cgroup2 superblock, no
        // CAP_DAC_READ_SEARCH): the path, where a missing group may only be
        // out of this mount namespace's sight.
        Some(Err(_)) => at_path().flatten().unwrap_or(true),
        // A record without a handle: the path alone, a missing group gone.
        None => at_path().is_some_and(|state| state.unwrap_or(true)),
    }
}

/// `populated` of the group whose directory is `dir`.
fn populated_in(dir: &std::os::fd::OwnedFd) -> Option<bool> {
    let fd = nix::fcntl::openat(
        dir,
        "cgroup.events",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let mut buf = [0u8; 256];
    let n = nix::sys::uio::pread(&fd, &mut buf, 0).ok()?;
    let text = std::str::from_utf8(&buf[..n]).ok()?;
    Some(CgroupEvents::parse(text).ok()?.is_populated())
}

/// How a run's user namespace maps its ids, decided once, when the run's
/// spec is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdPlan {
    /// cgmgr as root: a range leased for the run ([`lease`]).
    Lease,
    /// A user without subordinate ids: the workload's inside `uid` and
    /// `gid` are the caller's own, the only ids mapped.
    Own {
        /// The workload's inside uid.
        uid: u32,
        /// The workload's inside gid.
        gid: u32,
    },
    /// A user granted subordinate ids: inside 0 is the caller, inside
    /// 1..=N the range, written by the setuid helpers.
    Subordinate(Subordinate),
}

impl IdPlan {
    /// The ids inside the namespace that build the sandbox (with every
    /// capability there): its root where more than one id is mapped, the
    /// workload's own ids where they are the only ones.
    pub fn builder_ids(&self) -> Option<(u32, u32)> {
        match self {
            IdPlan::Own { uid, gid } => Some((*uid, *gid)),
            IdPlan::Lease | IdPlan::Subordinate(_) => None,
        }
    }

    /// Whether the namespace lets its root call setgroups(2), so that the
    /// sandbox drops the supplementary groups it was started with (a
    /// workload run as a leased or subordinate id would otherwise keep the
    /// caller's host groups, and reach what they may on anything mounted
    /// in). Root's maps and newgidmap's leave setgroups allowed; a user's
    /// own-id map must deny it, and there the groups are the caller's own,
    /// as are the run's ids.
    pub fn allows_setgroups(&self) -> bool {
        match self {
            IdPlan::Lease | IdPlan::Subordinate(_) => true,
            IdPlan::Own { .. } => false,
        }
    }

    /// Whether inside `uid` and `gid` are mapped; `Err` says which is not
    /// and what is.
    pub fn check_mapped(&self, uid: u32, gid: u32) -> Result<(), String> {
        let (uid_top, gid_top) = match self {
            IdPlan::Own { .. } => return Ok(()),
            IdPlan::Lease => (RANGE - 1, RANGE - 1),
            IdPlan::Subordinate(s) => (s.uids.count, s.gids.count),
        };
        for (what, id, top) in [("uid", uid, uid_top), ("gid", gid, gid_top)] {
            if id > top {
                let why = match self {
                    IdPlan::Subordinate(_) => "your subordinate ids give the user namespace",
                    _ => "the user namespace maps",
                };
                return Err(format!(
                    "{what} {id} is outside the range 0..={top} {why}: pick an id up to {top}"
                ));
            }
        }
        Ok(())
    }

    /// Takes what the plan needs for one run: a lease, or the caller's ids.
    pub fn take(&self) -> Result<RunIds, ExecError> {
        let host = || {
            (
                nix::unistd::geteuid().as_raw(),
                nix::unistd::getegid().as_raw(),
            )
        };
        Ok(match self {
            IdPlan::Lease => RunIds::Leased(lease(&lease_dir())?),
            IdPlan::Own { uid, gid } => {
                let (host_uid, host_gid) = host();
                RunIds::Own {
                    uid: *uid,
                    gid: *gid,
                    host_uid,
                    host_gid,
                }
            }
            IdPlan::Subordinate(sub) => {
                let (host_uid, host_gid) = host();
                RunIds::Subordinate {
                    host_uid,
                    host_gid,
                    sub: sub.clone(),
                }
            }
        })
    }
}

/// The host ids a run's user namespace maps.
#[derive(Debug)]
pub enum RunIds {
    /// cgmgr as root: a leased range of [`RANGE`] ids, inside root at its
    /// base, the namespace owned by the slot's owner id.
    Leased(IdRange),
    /// cgmgr as a user, who may map nothing but their own ids (as
    /// `bwrap` and `unshare -r` do): the workload's inside `uid` and `gid`
    /// are the caller's euid and egid outside, one id each, and the
    /// namespace is the caller's own.
    Own {
        /// The inside uid (the workload's), mapped to `host_uid`.
        uid: u32,
        /// The inside gid, mapped to `host_gid`.
        gid: u32,
        /// The caller's euid.
        host_uid: u32,
        /// The caller's egid.
        host_gid: u32,
    },
    /// cgmgr as a user granted subordinate ids: inside 0 is the caller's
    /// euid and egid, inside 1.. their ranges; the namespace is the
    /// caller's own.
    Subordinate {
        /// The caller's euid.
        host_uid: u32,
        /// The caller's egid.
        host_gid: u32,
        /// The ranges and their helpers.
        sub: Subordinate,
    },
}

impl RunIds {
    /// The uid that creates (owns) the run's user namespace: the slot's
    /// owner, or `None` for the caller's own.
    pub fn owner(&self) -> Option<u32> {
        match self {
            RunIds::Leased(range) => Some(range.owner()),
            RunIds::Own { .. } | RunIds::Subordinate { .. } => None,
        }
    }

    /// The entries (inside, outside, count) of `uid_map` and `gid_map`.
    pub fn map_entries(&self) -> (Vec<MapEntry>, Vec<MapEntry>) {
        match self {
            RunIds::Leased(range) => (vec![(0, range.base, RANGE)], vec![(0, range.base, RANGE)]),
            RunIds::Own {
                uid,
                gid,
                host_uid,
                host_gid,
            } => (vec![(*uid, *host_uid, 1)], vec![(*gid, *host_gid, 1)]),
            RunIds::Subordinate {
                host_uid,
                host_gid,
                sub,
            } => (
                subids::map_entries(*host_uid, sub.uids).to_vec(),
                subids::map_entries(*host_gid, sub.gids).to_vec(),
            ),
        }
    }

    /// The lines of `uid_map` and `gid_map`.
    pub fn map_lines(&self) -> (String, String) {
        let (uids, gids) = self.map_entries();
        (map_text(&uids), map_text(&gids))
    }
}

/// The text of an id map: one `INSIDE OUTSIDE COUNT` line per entry.
fn map_text(entries: &[MapEntry]) -> String {
    entries
        .iter()
        .map(|(inside, outside, count)| format!("{inside} {outside} {count}\n"))
        .collect()
}

/// Writes the id maps of the process `pidfd` names: `uid_map` and
/// `gid_map` by root for a leased range, through newuidmap and newgidmap
/// for subordinate ids (setgroups stays allowed for both: the sandbox drops
/// its supplementary groups itself), and `uid_map`, `setgroups` = deny,
/// `gid_map` for a user's own ids (the kernel takes a user's gid_map only
/// so). Its number in `/proc` is read from the pidfd's own entry
/// there (`Pid:` of `/proc/self/fdinfo/FD`, which the kernel gives in the
/// pid namespace of that `/proc`): the pid clone3 returned is the one of
/// this process's namespace, and a `cgmgr exec` started in a pid namespace
/// of its own under the host's `/proc` would write another process's maps
/// with it (a host user's fresh user namespace would get the range).
pub fn write_maps(pidfd: BorrowedFd<'_>, ids: &RunIds) -> Result<(), ExecError> {
    let pid = pid_in_proc(pidfd)?;
    match ids {
        RunIds::Subordinate { sub, .. } => {
            let (uids, gids) = ids.map_entries();
            // The two maps are independent: the helpers run side by side,
            // so a run waits for one helper's start-up, not two in a row.
            let uid_helper = Helper::spawn(&sub.newuidmap, pid, &uids);
            let gid_helper = Helper::spawn(&sub.newgidmap, pid, &gids);
            let (uid_done, gid_done) = (
                uid_helper.and_then(Helper::wait),
                gid_helper.and_then(Helper::wait),
            );
            uid_done.and(gid_done)
        }
        RunIds::Leased(_) => {
            let (uid_map, gid_map) = ids.map_lines();
            write_proc(pid, "uid_map", &uid_map)?;
            write_proc(pid, "gid_map", &gid_map)
        }
        RunIds::Own { .. } => {
            let (uid_map, gid_map) = ids.map_lines();
            write_proc(pid, "uid_map", &uid_map)?;
            write_proc(pid, "setgroups", "deny")?;
            write_proc(pid, "gid_map", &gid_map)
        }
    }
}

/// The arguments of `newuidmap`/`newgidmap`: the pid, then each entry's
/// inside, outside and count.
pub fn helper_args(pid: i32, entries: &[MapEntry]) -> Vec<String> {
    std::iter::once(pid.to_string())
        .chain(
            entries
                .iter()
                .flat_map(|(i, o, c)| [i.to_string(), o.to_string(), c.to_string()]),
        )
        .collect()
}

/// A setuid id map helper started for one map.
struct Helper {
    helper: PathBuf,
    args: Vec<String>,
    child: std::process::Child,
}

impl Helper {
    /// Starts `helper` for `pid`, with nothing of ours in its environment;
    /// its complaint is kept for the error.
    fn spawn(helper: &Path, pid: i32, entries: &[MapEntry]) -> Result<Helper, ExecError> {
        let args = helper_args(pid, entries);
        match std::process::Command::new(helper)
            .args(&args)
            .env_clear()
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
        {
            Ok(child) => Ok(Helper {
                helper: helper.to_path_buf(),
                args,
                child,
            }),
            Err(e) => Err(helper_failed(helper, &args, e.to_string())),
        }
    }

    /// Waits for the helper; an error names it, its arguments and what it
    /// said.
    fn wait(self) -> Result<(), ExecError> {
        let out = self
            .child
            .wait_with_output()
            .map_err(|e| helper_failed(&self.helper, &self.args, e.to_string()))?;
        if out.status.success() {
            return Ok(());
        }
        let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(helper_failed(
            &self.helper,
            &self.args,
            format!("{} ({said})", out.status),
        ))
    }
}

fn helper_failed(helper: &Path, args: &[String], detail: String) -> ExecError {
    ExecError::IdHelper {
        helper: helper.to_path_buf(),
        args: args.join(" "),
        detail,
    }
}

/// The number `/proc` knows the process of `pidfd` by.
fn pid_in_proc(pidfd: BorrowedFd<'_>) -> Result<i32, ExecError> {
    let path = format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd());
    let text = std::fs::read_to_string(&path).map_err(|e| ExecError::Sys {
        what: format!("reading {path}"),
        errno: io_errno(&e),
    })?;
    match fdinfo_pid(&text) {
        Some(pid) if pid > 0 => Ok(pid),
        // 0: the child is not in that /proc's pid namespace; -1: gone.
        _ => Err(ExecError::Invalid(
            "the /proc mounted here shows another pid namespace than the one cgmgr exec runs in, \
             where the sandbox's id maps cannot be found; give cgmgr exec a /proc of its own pid \
             namespace (`unshare --pid --fork --mount-proc`)"
                .into(),
        )),
    }
}

/// The `Pid:` field of a pidfd's fdinfo.
pub fn fdinfo_pid(text: &str) -> Option<i32> {
    text.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse().ok())
}

fn write_proc(pid: i32, file: &str, value: &str) -> Result<(), ExecError> {
    let path = PathBuf::from(format!("/proc/{pid}/{file}"));
    std::fs::write(&path, value).map_err(|e| ExecError::IdMap {
        path,
        value: value.trim().to_string(),
        errno: io_errno(&e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_rotate_so_a_released_range_is_not_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let a = lease(dir.path()).unwrap();
        let b = lease(dir.path()).unwrap();
        assert_eq!(a.base, FIRST_BASE);
        assert_eq!(b.base, FIRST_BASE + RANGE);
        drop(a);
        let c = lease(dir.path()).unwrap();
        assert_eq!(c.slot, 2, "the released slot 0 waits for its turn");
        let lines = RunIds::Leased(b).map_lines();
        assert_eq!(lines.0, "0 1610678272 65536\n");
        assert_eq!(lines.1, "0 1610678272 65536\n");
        // The cursor wraps around: after the last slot comes slot 0 again.
        std::fs::write(dir.path().join("cursor"), format!("{}\n", SLOTS - 1)).unwrap();
        let d = lease(dir.path()).unwrap();
        assert_eq!(d.slot, SLOTS - 1);
        let e = lease(dir.path()).unwrap();
        assert_eq!(e.slot, 0);
        // The last range ends inside the container id range.
        assert!(u64::from(FIRST_BASE) + u64::from(SLOTS) * u64::from(RANGE) <= 0x7000_0000);
    }

    fn granted() -> Subordinate {
        Subordinate {
            uids: subids::SubRange {
                start: 100_000,
                count: 65_535,
            },
            gids: subids::SubRange {
                start: 200_000,
                count: 1000,
            },
            newuidmap: "/usr/bin/newuidmap".into(),
            newgidmap: "/usr/bin/newgidmap".into(),
        }
    }

    /// A user's run with subordinate ids: inside 0 is the caller, inside
    /// 1.. the range, each map as the helpers are asked for it.
    #[test]
    fn a_subordinate_map_puts_the_caller_at_inside_root() {
        let ids = RunIds::Subordinate {
            host_uid: 1000,
            host_gid: 1000,
            sub: granted(),
        };
        assert_eq!(ids.owner(), None, "the namespace is the caller's own");
        assert_eq!(
            ids.map_lines(),
            (
                "0 1000 1\n1 100000 65535\n".to_string(),
                "0 1000 1\n1 200000 1000\n".to_string()
            )
        );
        let (uids, _) = ids.map_entries();
        assert_eq!(
            helper_args(4242, &uids),
            ["4242", "0", "1000", "1", "1", "100000", "65535"]
        );
        let own = RunIds::Own {
            uid: 7,
            gid: 8,
            host_uid: 1000,
            host_gid: 1001,
        };
        assert_eq!(
            own.map_lines(),
            ("7 1000 1\n".to_string(), "8 1001 1\n".to_string())
        );
    }

    /// Which ids a plan lets the workload run as, and who builds.
    #[test]
    fn each_plan_maps_its_own_ids() {
        let sub = IdPlan::Subordinate(granted());
        assert_eq!(sub.check_mapped(65_535, 1000), Ok(()));
        let e = sub.check_mapped(1000, 1001).unwrap_err();
        assert!(
            e.contains("gid 1001 is outside the range 0..=1000 your subordinate ids"),
            "{e}"
        );
        assert!(sub.check_mapped(65_536, 0).is_err());
        assert_eq!(sub.builder_ids(), None, "inside root builds");
        assert!(IdPlan::Lease.check_mapped(65_535, 65_535).is_ok());
        assert!(IdPlan::Lease.check_mapped(65_536, 0).is_err());
        let own = IdPlan::Own { uid: 1000, gid: 5 };
        assert_eq!(own.check_mapped(4_000_000, 4_000_000), Ok(()));
        assert_eq!(
            own.builder_ids(),
            Some((1000, 5)),
            "the one id mapped builds"
        );
    }

    #[test]
    fn the_pid_of_a_pidfd_is_read_from_its_fdinfo() {
        // A pidfd's fdinfo as 6.1 writes it.
        let text =
            "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\nPid:\t4242\nNSpid:\t4242\t3\n";
        assert_eq!(fdinfo_pid(text), Some(4242));
        assert_eq!(fdinfo_pid("Pid:\t0\n"), Some(0));
        assert_eq!(fdinfo_pid("pos:\t0\n"), None);
        // Ours, for real: this process's own pidfd.
        // SAFETY: pidfd_open of our own pid, no memory passed.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, std::process::id(), 0) };
        let fd = i32::try_from(fd).unwrap();
        assert!(fd >= 0);
        // SAFETY: a descriptor just returned, owned by nothing else.
        let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        use std::os::fd::AsFd;
        assert_eq!(
            pid_in_proc(fd.as_fd()).unwrap(),
            i32::try_from(std::process::id()).unwrap()
        );
    }

    #[test]
    fn owners_are_ids_no_range_maps() {
        let dir = tempfile::tempdir().unwrap();
        let a = lease(dir.path()).unwrap();
        assert_eq!(a.owner(), 0x5fff_f000);
        for slot in [0, SLOTS - 1] {
            let owner = FIRST_OWNER + slot;
            assert!(
                owner < FIRST_BASE,
                "slot {slot}'s owner is below every range"
            );
            assert!(owner >= 524_288, "inside systemd's container id range");
        }
    }

    /// A fake run group: a directory with a `cgroup.events` as the kernel
    /// writes it.
    fn run_group(dir: &Path, populated: bool) -> PathBuf {
        let g = dir.join("cg/s/cgmgr.run.424");
        std::fs::create_dir_all(&g).unwrap();
        let events = format!("populated {}\nfrozen 0\n", u8::from(populated));
        std::fs::write(g.join("cgroup.events"), events).unwrap();
        g
    }

    #[test]
    fn a_free_range_whose_last_run_has_processes_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let leases = dir.path().join("ids");
        let survivor = run_group(dir.path(), true);
        let a = lease(&leases).unwrap();
        // A fake tree has no cgroup handle: the record's path alone.
        let path_only = |a: &IdRange, p: &Path| a.write_record(&format!("{}\n", p.display()));
        path_only(&a, &survivor).unwrap();
        assert_eq!(
            std::fs::read_to_string(leases.join("0.lock")).unwrap(),
            format!("{}\n", survivor.display())
        );
        // A shorter record over a longer one: the first line counts.
        path_only(&a, Path::new("/nonexistent/x")).unwrap();
        assert!(!last_run_has_processes(&a.lease));
        path_only(&a, &survivor).unwrap();
        drop(a); // cgmgr exec killed: the lock is gone, the survivor not
        std::fs::write(leases.join("cursor"), "0\n").unwrap();
        let b = lease(&leases).unwrap();
        assert_eq!(b.slot, 1, "slot 0's run group still holds processes");
        drop(b);
        // Once the group is empty (or removed), slot 0 is free again.
        std::fs::write(survivor.join("cgroup.events"), "populated 0\nfrozen 0\n").unwrap();
        std::fs::write(leases.join("cursor"), "0\n").unwrap();
        assert_eq!(lease(&leases).unwrap().slot, 0);
        std::fs::remove_dir_all(dir.path().join("cg")).unwrap();
        std::fs::write(leases.join("cursor"), "0\n").unwrap();
        assert_eq!(lease(&leases).unwrap().slot, 0);
    }

    #[test]
    fn a_cleared_record_frees_the_range_and_an_unresolvable_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let leases = dir.path().join("ids");
        let a = lease(&leases).unwrap();
        // A handle this process cannot open, and a path that leads nowhere
        // here (another mount namespace's): occupied.
        a.write_record("/elsewhere/s/cgmgr.run.7\n-1:00\n").unwrap();
        assert!(last_run_has_processes(&a.lease));
        a.clear_record().unwrap();
        assert!(!last_run_has_processes(&a.lease), "a run that ended");
    }

    #[test]
    fn a_record_that_cannot_be_read_keeps_the_range_out() {
        let dir = tempfile::tempdir().unwrap();
        let leases = dir.path().join("ids");
        let g = run_group(dir.path(), false);
        std::fs::write(g.join("cgroup.events"), "garbage\n").unwrap();
        let a = lease(&leases).unwrap();
        a.write_record(&format!("{}\n", g.display())).unwrap();
        drop(a);
        std::fs::write(leases.join("cursor"), "0\n").unwrap();
        assert_eq!(lease(&leases).unwrap().slot, 1);
    }

    #[test]
    fn a_garbled_cursor_starts_at_slot_zero() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path()).unwrap();
        std::fs::write(dir.path().join("cursor"), "x\n").unwrap();
        assert_eq!(lease(dir.path()).unwrap().slot, 0);
        std::fs::write(dir.path().join("cursor"), "99999\n").unwrap();
        assert_eq!(lease(dir.path()).unwrap().slot, 99999 % SLOTS);
    }

    #[test]
    fn a_directory_others_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = lease(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("that no one else can write") && e.contains("mode 777"),
            "{e}"
        );
        assert!(!dir.path().join("0.lock").exists(), "nothing created");
        assert!(!dir.path().join("cursor").exists(), "nothing created");
    }

    #[test]
    fn a_planted_symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "keep").unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("0.lock")).unwrap();
        let e = lease(dir.path()).unwrap_err().to_string();
        assert!(e.contains("0.lock"), "{e}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        std::fs::remove_file(dir.path().join("0.lock")).unwrap();
        std::fs::remove_file(dir.path().join("cursor")).unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("cursor")).unwrap();
        let e = lease(dir.path()).unwrap_err().to_string();
        assert!(e.contains("cursor"), "{e}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    }
}
