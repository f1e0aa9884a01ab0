//! Freezing, thawing and killing a whole group, and waiting until the
//! kernel says it is done.
//!
//! `cgroup.freeze` takes effect asynchronously: the group counts as frozen
//! only when `cgroup.events` says `frozen 1` (every task stopped, also in
//! descendants). `cgroup.kill` (Linux 5.14) sends SIGKILL to every process
//! of the group and its descendants, frozen or not; the group is empty only
//! when `cgroup.events` says `populated 0`, and until then `rmdir` answers
//! `EBUSY`. The kernel signals each change of `cgroup.events` to `poll`
//! (`POLLPRI`), so the wait sleeps until then rather than spinning.

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::error::CgroupError;
use super::fs::CgroupRoot;
use super::name::GroupName;
use super::stat::{CgroupEvents, StatFile};

/// Why a freeze, thaw or kill did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No such group under the root.
    #[error("no group {group} under {root} (cgmgr status lists the managed groups)")]
    UnknownGroup {
        /// The group asked for.
        group: GroupName,
        /// The managed root.
        root: PathBuf,
    },
    /// The kernel lacks the interface file.
    #[error("{path} does not exist: {what} needs Linux {version} or later")]
    Unsupported {
        /// The missing file.
        path: PathBuf,
        /// The operation.
        what: &'static str,
        /// The first kernel that has it.
        version: &'static str,
    },
    /// The group did not reach the state in time.
    #[error("{group} is not {state} {secs}s after writing {path}{why}")]
    Timeout {
        /// The group.
        group: GroupName,
        /// The state waited for (`frozen`, `thawed`, `empty`).
        state: &'static str,
        /// The seconds waited.
        secs: f64,
        /// The file written.
        path: PathBuf,
        /// What is known about why, starting with a separator, or empty.
        why: String,
    },
    /// Without `cgroup.kill`, processes this pid namespace does not show.
    #[error(
        "{path} lists processes outside this process's pid namespace, which cannot be signalled from here without cgroup.kill (Linux 5.14)\n  hint: run the command from the host's pid namespace"
    )]
    HiddenProcesses {
        /// The `cgroup.procs` that lists them.
        path: PathBuf,
    },
    /// Reading or writing failed.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
}

/// `cgmgr freeze`, `thaw` or `kill`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Freeze the group and its descendants.
    Freeze,
    /// Thaw them.
    Thaw,
    /// Kill every process in them.
    Kill,
}

/// Does `action` to `group` and waits for the kernel; returns what
/// happened, as the command prints it (`web: frozen`).
pub fn act(
    root: &CgroupRoot,
    group: &GroupName,
    action: Action,
    timeout: Duration,
) -> Result<String, ControlError> {
    Ok(match action {
        Action::Freeze => {
            freeze(root, group, timeout)?;
            format!("{group}: frozen")
        }
        Action::Thaw => {
            thaw(root, group, timeout)?;
            format!("{group}: thawed")
        }
        Action::Kill => {
            let held = kill(root, group, timeout)?;
            format!("{group}: killed {held} process(es); empty")
        }
    })
}

/// Freezes `group` and waits until the kernel reports it frozen.
pub fn freeze(root: &CgroupRoot, group: &GroupName, timeout: Duration) -> Result<(), ControlError> {
    set_frozen(root, group, true, timeout)
}

/// Thaws `group` and waits until the kernel reports it thawed.
pub fn thaw(root: &CgroupRoot, group: &GroupName, timeout: Duration) -> Result<(), ControlError> {
    set_frozen(root, group, false, timeout)
}

fn set_frozen(
    root: &CgroupRoot,
    group: &GroupName,
    frozen: bool,
    timeout: Duration,
) -> Result<(), ControlError> {
    require(root, group)?;
    write(
        root,
        group,
        "cgroup.freeze",
        if frozen { "1" } else { "0" },
        "freezing",
        "5.2",
    )?;
    let want = Some(u64::from(frozen));
    let reached = wait_for(root, group, timeout, |events| events.frozen == want)?;
    if reached {
        return Ok(());
    }
    let why = if frozen {
        String::new()
    } else {
        frozen_ancestor(root, group)
            .map(|a| format!(": its ancestor {a} is frozen (cgroup.freeze 1); thaw that one"))
            .unwrap_or_default()
    };
    Err(ControlError::Timeout {
        group: group.clone(),
        state: if frozen { "frozen" } else { "thawed" },
        secs: timeout.as_secs_f64(),
        path: root.display_path(group, "cgroup.freeze"),
        why,
    })
}

/// Kills every process of `group` and its descendants and waits until it
/// is empty. Returns how many processes the group held.
pub fn kill(
    root: &CgroupRoot,
    group: &GroupName,
    timeout: Duration,
) -> Result<usize, ControlError> {
    require(root, group)?;
    let held = count_processes(root, group);
    kill_processes(root, group)?;
    if wait_until_empty(root, group, timeout)? {
        return Ok(held);
    }
    Err(ControlError::Timeout {
        group: group.clone(),
        state: "empty",
        secs: timeout.as_secs_f64(),
        path: root.display_path(group, "cgroup.kill"),
        why: "; processes in uninterruptible sleep (D state) die only when it ends".into(),
    })
}

/// Waits until `cgroup.events` says `populated 0`; false at the timeout.
pub fn wait_until_empty(
    root: &CgroupRoot,
    group: &GroupName,
    timeout: Duration,
) -> Result<bool, ControlError> {
    wait_for(root, group, timeout, |events| !events.is_populated())
}

fn require(root: &CgroupRoot, group: &GroupName) -> Result<(), ControlError> {
    if group.is_root() || !root.exists(group) {
        return Err(ControlError::UnknownGroup {
            group: group.clone(),
            root: root.path().to_path_buf(),
        });
    }
    Ok(())
}

fn write(
    root: &CgroupRoot,
    group: &GroupName,
    file: &str,
    value: &str,
    what: &'static str,
    version: &'static str,
) -> Result<(), ControlError> {
    match root.write_raw(group, file, value) {
        Ok(()) => Ok(()),
        Err(Errno::ENOENT) if root.exists(group) => Err(ControlError::Unsupported {
            path: root.display_path(group, file),
            what,
            version,
        }),
        Err(errno) => Err(CgroupError::Write {
            path: root.display_path(group, file),
            value: value.to_string(),
            errno,
            hint: String::new(),
        }
        .into()),
    }
}

/// How [`kill_processes`] reached the processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillPath {
    /// `cgroup.kill` (Linux 5.14).
    CgroupKill,
    /// Freeze, SIGKILL each member, thaw (kernels without `cgroup.kill`).
    ByHand,
}

/// Sends SIGKILL to every process of `group` and its descendants, frozen
/// or not, without waiting for them to die: the one kill of cgmgr, for
/// `cgmgr kill`, pressure rules and the end of a run. `cgroup.kill` where
/// the kernel has it; before 5.14, the group is frozen (so that nothing
/// forks away meanwhile), each member of it and of its descendants is
/// killed through a pidfd after its membership is checked again (a reused
/// pid outside the group is never signalled), and it is thawed unless it
/// was frozen before. Processes of another pid namespace (listed as pid 0)
/// cannot be signalled at all there: that is an error, before anything is
/// done.
pub fn kill_processes(root: &CgroupRoot, group: &GroupName) -> Result<KillPath, ControlError> {
    match root.write_raw(group, "cgroup.kill", "1") {
        Ok(()) => return Ok(KillPath::CgroupKill),
        Err(Errno::ENOENT) if root.exists(group) => {}
        Err(errno) => {
            return Err(CgroupError::Write {
                path: root.display_path(group, "cgroup.kill"),
                value: "1".into(),
                errno,
                hint: String::new(),
            }
            .into());
        }
    }
    let groups = subtree(root, group);
    if let Some(hidden) = groups.iter().find(|g| root.has_hidden_processes(g)) {
        return Err(ControlError::HiddenProcesses {
            path: root.display_path(hidden, "cgroup.procs"),
        });
    }
    let was_frozen = freeze_requested(root, group).unwrap_or(false);
    write(
        root,
        group,
        "cgroup.freeze",
        "1",
        "killing without cgroup.kill",
        "5.2",
    )?;
    for _ in 0..KILL_PASSES {
        let mut left = 0;
        for g in &groups {
            for pid in root.procs(g).unwrap_or_default() {
                kill_member(root, g, pid);
                left += 1;
            }
        }
        if left == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // A frozen task takes a fatal signal (cgroup v2's freezer lets it
    // die), so a group frozen before stays frozen, as `cgroup.kill` leaves it.
    if !was_frozen {
        write(
            root,
            group,
            "cgroup.freeze",
            "0",
            "killing without cgroup.kill",
            "5.2",
        )?;
    }
    Ok(KillPath::ByHand)
}

/// Passes of the kill by hand: a member killed in one pass may take a few
/// milliseconds to leave `cgroup.procs`.
const KILL_PASSES: usize = 100;

/// `group` and every group below it, parents first.
fn subtree(root: &CgroupRoot, group: &GroupName) -> Vec<GroupName> {
    let mut all = vec![group.clone()];
    let mut i = 0;
    while i < all.len() {
        all.extend(root.children(&all[i]).unwrap_or_default());
        i += 1;
    }
    all
}

/// Whether `group`'s own `cgroup.freeze` asks for it to be frozen (`None`:
/// the file cannot be read, or the kernel has none).
pub fn freeze_requested(root: &CgroupRoot, group: &GroupName) -> Option<bool> {
    root.read(group, "cgroup.freeze")
        .ok()
        .map(|v| parse_freeze(&v))
}

/// The content of `cgroup.freeze`: `1` frozen, `0` not.
pub fn parse_freeze(content: &str) -> bool {
    content.trim() == "1"
}

/// Sends SIGKILL to `pid` if it is a member of `group`: through a pidfd
/// opened before its membership is checked (again) in `cgroup.procs`, so a
/// pid that was reused by a process outside the group is never signalled.
/// For kernels without `cgroup.kill`, which takes no pid at all.
pub fn kill_member(root: &CgroupRoot, group: &GroupName, pid: i32) {
    if pid <= 0 {
        return;
    }
    // SAFETY: pidfd_open takes a pid and flags and returns a new
    // descriptor or -1; no memory is passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let member = || root.procs(group).is_ok_and(|p| p.contains(&pid));
    if fd < 0 {
        // Before Linux 5.3 there is no pidfd: the membership check just
        // before the signal is all there is.
        if Errno::last() == Errno::ENOSYS && member() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        return;
    }
    let Ok(fd) = i32::try_from(fd) else { return };
    // SAFETY: `fd` was just returned by pidfd_open and is owned by nothing
    // else.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    if member() {
        // SAFETY: a valid pidfd, a signal number, no siginfo, no flags.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
    }
}

/// Processes in the group and its descendants, for the report.
fn count_processes(root: &CgroupRoot, group: &GroupName) -> usize {
    let own = root.procs(group).map(|p| p.len()).unwrap_or(0);
    let below: usize = root
        .children(group)
        .unwrap_or_default()
        .iter()
        .map(|child| count_processes(root, child))
        .sum();
    own + below
}

/// The nearest ancestor of `group` below the root whose own
/// `cgroup.freeze` is 1.
fn frozen_ancestor(root: &CgroupRoot, group: &GroupName) -> Option<GroupName> {
    let mut at = group.parent()?;
    while !at.is_root() {
        if freeze_requested(root, &at)? {
            return Some(at);
        }
        at = at.parent()?;
    }
    None
}

/// Waits until `done` holds for the group's `cgroup.events`, sleeping in
/// `poll` between changes; false at the timeout.
fn wait_for(
    root: &CgroupRoot,
    group: &GroupName,
    timeout: Duration,
    done: impl Fn(&CgroupEvents) -> bool,
) -> Result<bool, ControlError> {
    let read_err = |errno| CgroupError::Read {
        path: root.display_path(group, "cgroup.events"),
        errno,
    };
    let file = root.open_file(group, "cgroup.events").map_err(read_err)?;
    let deadline = Instant::now() + timeout;
    loop {
        let text = read_at_start(&file).map_err(read_err)?;
        let events = CgroupEvents::parse(&text).map_err(|e| CgroupError::Format {
            path: root.display_path(group, "cgroup.events"),
            content: text.clone(),
            reason: e.0,
        })?;
        if done(&events) {
            return Ok(true);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        // A change wakes the poll; the cap keeps a missed wakeup from
        // costing more than 100 ms.
        let wait = PollTimeout::try_from(left.min(Duration::from_millis(100)))
            .unwrap_or(PollTimeout::ZERO);
        let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLPRI)];
        match poll(&mut fds, wait) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(errno) => return Err(read_err(errno).into()),
        }
    }
}

fn read_at_start(file: &std::fs::File) -> Result<String, Errno> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 512];
    let n = file
        .read_at(&mut buf, 0)
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_told_to_freeze_is_frozen_whether_or_not_it_settled() {
        // cgroup.freeze as the kernel shows it before and after `echo 1`.
        assert!(parse_freeze("1\n"));
        assert!(!parse_freeze("0\n"));
        assert!(!parse_freeze(""));
    }

    /// A fake tree without `cgroup.kill` (Linux before 5.14): every member
    /// of the group and of its child is killed through the fallback, the
    /// group is frozen meanwhile and thawed after, and a process outside the
    /// group whose pid is not listed is left alone.
    #[test]
    fn without_cgroup_kill_members_are_killed_by_hand_and_others_left() {
        let dir = tempfile::tempdir().unwrap();
        let g = dir.path().join("g");
        std::fs::create_dir_all(g.join("child")).unwrap();
        let spawn = || {
            std::process::Command::new("sleep")
                .arg("60")
                .spawn()
                .unwrap()
        };
        let (mut a, mut b, mut outsider) = (spawn(), spawn(), spawn());
        std::fs::write(g.join("cgroup.procs"), format!("{}\n", a.id())).unwrap();
        std::fs::write(g.join("child/cgroup.procs"), format!("{}\n", b.id())).unwrap();
        std::fs::write(g.join("child/cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        std::fs::write(g.join("cgroup.freeze"), "0\n").unwrap();
        let root = CgroupRoot::open_unchecked(dir.path());
        let group = GroupName::parse("g").unwrap();
        // The fake cgroup.procs does not empty itself: the passes run out.
        assert_eq!(kill_processes(&root, &group).unwrap(), KillPath::ByHand);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(a.wait().unwrap().signal(), Some(libc::SIGKILL));
        assert_eq!(b.wait().unwrap().signal(), Some(libc::SIGKILL));
        assert!(outsider.try_wait().unwrap().is_none(), "the outsider lives");
        assert_eq!(
            std::fs::read_to_string(g.join("cgroup.freeze")).unwrap(),
            "0"
        );
        let _ = outsider.kill();
        let _ = outsider.wait();
    }

    #[test]
    fn without_cgroup_kill_hidden_processes_are_an_error_and_nothing_is_done() {
        let dir = tempfile::tempdir().unwrap();
        let g = dir.path().join("g");
        std::fs::create_dir_all(&g).unwrap();
        std::fs::write(g.join("cgroup.procs"), "0\n0\n").unwrap();
        std::fs::write(g.join("cgroup.freeze"), "0\n").unwrap();
        let root = CgroupRoot::open_unchecked(dir.path());
        let e = kill_processes(&root, &GroupName::parse("g").unwrap()).unwrap_err();
        assert!(
            e.to_string()
                .contains("outside this process's pid namespace"),
            "{e}"
        );
        assert_eq!(
            std::fs::read_to_string(g.join("cgroup.freeze")).unwrap(),
            "0\n",
            "not frozen"
        );
    }

    /// A fake group whose cgroup.events never changes: the wait ends at
    /// the timeout, and the error names the group, the state and the file.
    #[test]
    fn a_group_that_never_freezes_times_out_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("batch");
        std::fs::create_dir(&dir).unwrap();
        // Real content of a populated, unfrozen group (Linux 6.1).
        std::fs::write(dir.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        std::fs::write(dir.join("cgroup.freeze"), "0\n").unwrap();
        let root = CgroupRoot::open_unchecked(tmp.path());
        let group = GroupName::parse("batch").unwrap();
        let err = freeze(&root, &group, Duration::from_millis(250)).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("batch is not frozen 0.25s after writing "),
            "{text}"
        );
        assert!(text.ends_with("batch/cgroup.freeze"), "{text}");
    }

    #[test]
    fn thaw_names_the_frozen_ancestor() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("batch/etl");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(tmp.path().join("batch/cgroup.freeze"), "1\n").unwrap();
        std::fs::write(dir.join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
        std::fs::write(dir.join("cgroup.freeze"), "1\n").unwrap();
        let root = CgroupRoot::open_unchecked(tmp.path());
        let group = GroupName::parse("batch/etl").unwrap();
        let text = thaw(&root, &group, Duration::from_millis(100))
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("its ancestor batch is frozen (cgroup.freeze 1); thaw that one"),
            "{text}"
        );
    }

    #[test]
    fn an_unknown_group_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let root = CgroupRoot::open_unchecked(tmp.path());
        let group = GroupName::parse("nope").unwrap();
        let text = kill(&root, &group, Duration::from_secs(1))
            .unwrap_err()
            .to_string();
        assert!(text.starts_with("no group nope under "), "{text}");
    }

    #[test]
    fn a_kernel_without_cgroup_kill_or_freeze_is_named() {
        // Before 5.2 the group has neither cgroup.kill nor cgroup.freeze
        // (before 5.14 only the first is missing: killed by hand, above).
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("old");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        std::fs::write(dir.join("cgroup.procs"), "").unwrap();
        let root = CgroupRoot::open_unchecked(tmp.path());
        let group = GroupName::parse("old").unwrap();
        let text = kill(&root, &group, Duration::from_secs(1))
            .unwrap_err()
            .to_string();
        assert!(text.contains("needs Linux 5.2 or later"), "{text}");
    }
}
