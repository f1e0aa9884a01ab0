//! The child's side (PID 1 of the new PID namespace): the privileged steps
//! that build the sandbox in order (ids, descriptors, keyring, cgroup
//! namespace, quotas, hostname, loopback, the root), then the fork of the
//! workload, whose init it becomes.

use std::os::fd::{AsFd, OwnedFd};

use nix::sched::CloneFlags;
use nix::unistd::ForkResult;

use super::error::{ExecError, Step, io_errno, step, sys};
use super::kernel::{Host, Kernel};
use super::{ExecSpec, init, rootfs, standby, workload};
use crate::policy::Namespace;

/// Child side (PID 1 of the new PID namespace): returns init's exit status.
pub(crate) fn child_main(spec: &ExecSpec, go: OwnedFd, job: Option<OwnedFd>) -> i32 {
    match child_setup(spec, go, job) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cgmgr: exec: {e}");
            125
        }
    }
}

fn child_setup(spec: &ExecSpec, go: OwnedFd, job: Option<OwnedFd>) -> Result<i32, ExecError> {
    let Some(job) = build(&mut Host, spec, go, job)? else {
        return Ok(125); // the parent died before letting us go
    };
    // SAFETY: this process is single-threaded (a fresh clone of a
    // single-threaded parent), so the forked child may run any code.
    match unsafe { nix::unistd::fork() }.map_err(sys("fork"))? {
        ForkResult::Child => std::process::exit(match job {
            // A prepared sandbox: the workload gets ready, then waits for
            // its command and stdio.
            Some(socket) => standby::run_prepared(socket, &spec.workload),
            None => workload::exec(&spec.workload),
        }),
        ForkResult::Parent { child } => {
            drop(job);
            Ok(init::run(child))
        }
    }
}

/// The sandbox's construction, in order, through `k`:
/// 1. die with the parent, and wait for its go (the id maps are written);
/// 2. become root of the user namespace (first dropping the caller's
///    supplementary groups where the namespace allows it), and arm the
///    death signal again;
/// 3. close every inherited descriptor (a prepared sandbox keeps its socket);
/// 4. a new session keyring;
/// 5. the cgroup namespace, rooted at the run's group;
/// 6. the user namespace's quotas;
/// 7. the hostname, 8. loopback up;
/// 9. the root ([`rootfs`]'s steps), or a fresh `/proc`;
/// 10. subreaper without a pid namespace; 11. init's signals blocked.
///
/// `Ok(None)` when the parent went away before the go: nothing was built.
/// Otherwise the descriptor a prepared sandbox keeps, if any.
pub(crate) fn build(
    k: &mut dyn Kernel,
    spec: &ExecSpec,
    go: OwnedFd,
    job: Option<OwnedFd>,
) -> Result<Option<Option<OwnedFd>>, ExecError> {
    k.set_pdeathsig().map_err(step(Step::DeathSignal))?;
    let mut byte = [0u8; 1];
    if nix::unistd::read(&go, &mut byte) != Ok(1) {
        return Ok(None);
    }
    if spec.has(Namespace::User) {
        if spec.drops_groups() {
            k.clear_groups().map_err(step(Step::ClearGroups))?;
        }
        let (uid, gid) = spec.builder_ids();
        k.setresgid(gid).map_err(step(Step::RootGid(gid)))?;
        k.setresuid(uid).map_err(step(Step::RootUid(uid)))?;
        // A credential change clears the parent-death signal: arm it again,
        // then make sure the parent did not die in between.
        k.set_pdeathsig().map_err(step(Step::DeathSignal))?;
        if parent_gone(&go) {
            return Ok(None);
        }
    }
    drop(go);
    // Whatever the caller left open (a cgroupfs directory, a policy file,
    // an inherited socket) is closed before the sandbox is built, not only
    // in the workload: init lives as long as the workload does. A prepared
    // sandbox keeps the socket its command comes on.
    let job = match job {
        Some(fd) => Some(workload::close_fds_but(k, fd)?),
        None => {
            workload::close_fds_from(k, 3)?;
            None
        }
    };
    k.join_session_keyring()
        .map_err(step(Step::SessionKeyring))?;
    if spec.has(Namespace::Cgroup) {
        // Now, not at clone: the parent may have placed us only after the
        // clone (kernels without CLONE_INTO_CGROUP), and the namespace's
        // root is the cgroup we are in when it is made: the group.
        k.unshare(CloneFlags::CLONE_NEWCGROUP)
            .map_err(step(Step::CgroupNamespace))?;
    }
    // After the last namespace of our own is made.
    if spec.has(Namespace::User) {
        cap_namespace_quotas(k, spec.workload.nested_userns)?;
    }
    if spec.has(Namespace::Uts) {
        k.sethostname(&spec.hostname)
            .map_err(step(Step::Hostname(spec.hostname.clone())))?;
    }
    if spec.has(Namespace::Net) {
        k.loopback_up()?;
    }
    match &spec.rootfs {
        Some(rootfs) => {
            rootfs::enter_with(k, rootfs, spec.switch, spec.readonly_root, &spec.mounts)?
        }
        None if spec.has(Namespace::Mount) && spec.has(Namespace::Pid) => {
            rootfs::remount_proc_with(k)?
        }
        None => {}
    }
    if !spec.has(Namespace::Pid) {
        // Not PID 1: become the reaper of the workload's orphans anyway.
        k.set_child_subreaper().map_err(step(Step::Subreaper))?;
    }
    k.block_signals().map_err(step(Step::BlockSignals))?;
    Ok(Some(job))
}

/// Caps what the sandbox may take of kernel quotas that count against the
/// user who created its user namespace (root), so that one run cannot
/// exhaust them for the host: the limits of the sandbox's own user
/// namespace, which its root may set (CAP_SYS_RESOURCE there) and which
/// every nested namespace also obeys. No nested namespaces at all unless
/// `nested_userns = true`.
fn cap_namespace_quotas(k: &mut dyn Kernel, nested_userns: bool) -> Result<(), ExecError> {
    let namespaces = if nested_userns { "16" } else { "0" };
    let limits = [
        ("max_user_namespaces", namespaces),
        ("max_mnt_namespaces", namespaces),
        ("max_net_namespaces", namespaces),
        ("max_pid_namespaces", namespaces),
        ("max_ipc_namespaces", namespaces),
        ("max_uts_namespaces", namespaces),
        ("max_cgroup_namespaces", namespaces),
        ("max_time_namespaces", namespaces),
        ("max_fanotify_groups", "16"),
        ("max_fanotify_marks", "8192"),
        ("max_inotify_instances", "32"),
        ("max_inotify_watches", "65536"),
    ];
    for (name, value) in limits {
        let path = format!("/proc/sys/user/{name}");
        match k.write_sysctl(&path, value) {
            Ok(()) => {}
            // A kernel without this limit (time namespaces, older kernels).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(step(Step::NamespaceQuota { path, value })(io_errno(&e)));
            }
        }
    }
    Ok(())
}

/// True when the parent closed its end of the go pipe (it exited).
fn parent_gone(go: &OwnedFd) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut fds = [PollFd::new(go.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
        && fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLHUP))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::GroupName;
    use crate::exec::kernel::recorder::Recorder;
    use crate::exec::rootfs::RootSwitch;
    use crate::exec::workload::Workload;
    use crate::policy::seccomp::Seccomp;
    use nix::errno::Errno;
    use std::path::{Path, PathBuf};

    /// A rootfs with what `check` asks, plus a masked file, a masked
    /// directory and a read-only directory in its `proc`.
    fn rootfs() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        for dir in ["proc", "dev", "tmp", "proc/acpi", "proc/sys"] {
            std::fs::create_dir(root.join(dir)).unwrap();
        }
        std::fs::write(root.join("proc/kcore"), "").unwrap();
        (tmp, root)
    }

    fn spec(namespaces: &[Namespace], rootfs: Option<&Path>) -> ExecSpec {
        ExecSpec {
            group: GroupName::parse("box").unwrap(),
            namespaces: namespaces.iter().copied().collect(),
            rootfs: rootfs.map(Path::to_path_buf),
            switch: RootSwitch::PivotRoot,
            readonly_root: true,
            hostname: "box".into(),
            workload: Workload {
                argv: vec!["/bin/true".into()],
                env: Vec::new(),
                cwd: "/".into(),
                uid: 0,
                gid: 0,
                in_user_ns: namespaces.contains(&Namespace::User),
                seccomp: crate::exec::seccomp::compile(&Seccomp::Unconfined, false).unwrap(),
                nested_userns: false,
                rlimits: Vec::new(),
            },
            report: None,
            report_file: None,
            mounts: Vec::new(),
            limits: Default::default(),
            ids: namespaces
                .contains(&Namespace::User)
                .then_some(crate::exec::idmap::IdPlan::Lease),
        }
    }

    /// The go pipe with the parent's byte in it; the write end stays open
    /// (the parent is alive) while the returned guard lives.
    fn go_pipe() -> (OwnedFd, OwnedFd) {
        let (read, write) = nix::unistd::pipe().unwrap();
        nix::unistd::write(&write, &[1]).unwrap();
        (read, write)
    }

    /// Every namespace: the default set.
    const ALL: [Namespace; 7] = crate::exec::DEFAULT_NAMESPACES;

    /// Every step of a full sandbox, in order, with its arguments: the
    /// caller's supplementary groups dropped and ids set before anything
    /// else, descriptors closed before the sandbox is
    /// built, the namespace quotas after the last namespace, the rootfs
    /// read-only before /proc, /dev and /tmp are mounted into it, the old
    /// root detached, signals blocked last.
    #[test]
    fn a_full_sandbox_is_built_step_by_step_in_order() {
        let (_tmp, root) = rootfs();
        let spec = spec(&ALL, Some(&root));
        let (go, _parent) = go_pipe();
        let mut k = Recorder::default();
        let job = build(&mut k, &spec, go, None).unwrap();
        assert!(matches!(job, Some(None)));
        let r = root.display();
        let mut expected: Vec<String> = [
            "set_pdeathsig(SIGKILL)",
            "setgroups([])",
            "setresgid(0)",
            "setresuid(0)",
            "set_pdeathsig(SIGKILL)",
            "close_range(3, ~0)",
            "keyctl(JOIN_SESSION_KEYRING)",
            "unshare(CLONE_NEWCGROUP)",
        ]
        .map(String::from)
        .to_vec();
        for name in [
            "max_user_namespaces",
            "max_mnt_namespaces",
            "max_net_namespaces",
            "max_pid_namespaces",
            "max_ipc_namespaces",
            "max_uts_namespaces",
            "max_cgroup_namespaces",
            "max_time_namespaces",
        ] {
            expected.push(format!("write(/proc/sys/user/{name}, 0)"));
        }
        expected.extend([
            "write(/proc/sys/user/max_fanotify_groups, 16)".to_string(),
            "write(/proc/sys/user/max_fanotify_marks, 8192)".into(),
            "write(/proc/sys/user/max_inotify_instances, 32)".into(),
            "write(/proc/sys/user/max_inotify_watches, 65536)".into(),
            "sethostname(box)".into(),
            "loopback_up".into(),
            "mount(-, /, -, MS_REC | MS_SLAVE, -)".into(),
            format!("mount({r}, {r}, -, MS_BIND | MS_REC, -)"),
            format!("mount(-, {r}, -, MS_REC | MS_PRIVATE, -)"),
            format!("mount_setattr({r}, 0x7)"),
            format!("mount(proc, {r}/proc, proc, MS_NOSUID | MS_NODEV | MS_NOEXEC, -)"),
            format!("mount(tmpfs, {r}/proc/acpi, tmpfs, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, size=0,mode=555)"),
            format!("mount(/dev/null, {r}/proc/kcore, -, MS_BIND, -)"),
            format!("mount({r}/proc/sys, {r}/proc/sys, -, MS_BIND | MS_REC, -)"),
            format!("mount(-, {r}/proc/sys, -, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_REMOUNT | MS_BIND, -)"),
            format!("mount(tmpfs, {r}/dev, tmpfs, MS_NOSUID | MS_NOEXEC, mode=755,size=64k)"),
        ]);
        for dev in crate::exec::rootfs::DEVICES {
            expected.push(format!("mount(/dev/{dev}, {r}/dev/{dev}, -, MS_BIND, -)"));
        }
        expected.extend([
            format!("mount(devpts, {r}/dev/pts, devpts, MS_NOSUID | MS_NOEXEC, newinstance,ptmxmode=0666,mode=620)"),
            format!("mount(tmpfs, {r}/tmp, tmpfs, MS_NOSUID | MS_NODEV, mode=1777)"),
            format!("chdir({r})"),
            "pivot_root(., .)".into(),
            "umount2(., MNT_DETACH)".into(),
            "chdir(/)".into(),
            "block_signals".into(),
        ]);
        assert_eq!(k.calls, expected);
    }

    /// A step that fails ends the construction there, and the error names
    /// the step, its target and the errno.
    #[test]
    fn a_failed_step_stops_the_construction_and_is_named() {
        let (_tmp, root) = rootfs();
        let spec = spec(&ALL, Some(&root));
        let (go, _parent) = go_pipe();
        let mut k = Recorder::failing("mount(proc", Errno::EPERM);
        let err = build(&mut k, &spec, go, None).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "step 3 (mount a fresh /proc) on {}/proc: EPERM: Operation not permitted",
                root.display()
            )
        );
        assert!(k.calls.last().unwrap().starts_with("mount(proc"));
        assert_eq!(k.position("block_signals"), None);

        let (go, _parent) = go_pipe();
        let mut k = Recorder::failing("setresuid", Errno::EPERM);
        let err = build(&mut k, &spec, go, None).unwrap_err().to_string();
        assert_eq!(
            err,
            "setresuid(0) in the user namespace: EPERM: Operation not permitted"
        );
        assert_eq!(k.calls.len(), 4, "{:?}", k.calls);
    }

    /// A user's own-id map denies setgroups (the kernel takes their
    /// gid_map only so): the sandbox keeps the caller's groups, which are
    /// the user's own as its ids are, and makes no call that must fail.
    #[test]
    fn a_users_own_id_sandbox_keeps_its_groups() {
        let (_tmp, root) = rootfs();
        let mut spec = spec(&ALL, Some(&root));
        spec.ids = Some(crate::exec::idmap::IdPlan::Own {
            uid: 1000,
            gid: 1000,
        });
        let (go, _parent) = go_pipe();
        let mut k = Recorder::default();
        build(&mut k, &spec, go, None).unwrap();
        assert_eq!(k.position("setgroups"), None, "{:?}", k.calls);
        assert_eq!(k.calls[1], "setresgid(1000)");
    }

    /// A parent gone before its go: nothing is built.
    #[test]
    fn nothing_is_built_when_the_parent_is_gone() {
        let spec = spec(&ALL, None);
        let (read, write) = nix::unistd::pipe().unwrap();
        drop(write);
        let mut k = Recorder::default();
        assert!(build(&mut k, &spec, read, None).unwrap().is_none());
        assert_eq!(k.calls, ["set_pdeathsig(SIGKILL)"]);
    }

    /// Without mount_setattr (before 5.12), every mount at or below the
    /// rootfs in mountinfo is remounted read-only with the flags the
    /// kernel locks on it; mounts elsewhere are left alone.
    #[test]
    fn without_mount_setattr_each_mount_of_the_rootfs_is_remounted() {
        let (_tmp, root) = rootfs();
        let r = root.display();
        let spec = spec(&ALL, Some(&root));
        let (go, _parent) = go_pipe();
        let mut k = Recorder::failing("mount_setattr", Errno::ENOSYS);
        k.mountinfo = format!(
            "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
             90 22 8:1 /srv/r {r} rw,relatime - ext4 /dev/sda1 rw\n\
             91 90 0:5 / {r}/data rw - tmpfs tmpfs rw\n\
             92 22 0:6 / /elsewhere rw - tmpfs tmpfs rw\n"
        );
        build(&mut k, &spec, go, None).unwrap();
        let remount = "MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_REMOUNT | MS_BIND";
        let at = k.position("mount_setattr").unwrap();
        assert_eq!(
            k.calls[at + 1..at + 3],
            [
                format!("mount(-, {r}, -, {remount}, -)"),
                format!("mount(-, {r}/data, -, {remount}, -)"),
            ]
        );
        assert!(k.calls[at + 3].starts_with("mount(proc"));
        assert!(!k.calls.iter().any(|c| c.contains("/elsewhere")));

        // The rootfs's own bind missing from mountinfo: refused, not skipped.
        let (go, _parent) = go_pipe();
        let mut k = Recorder::failing("mount_setattr", Errno::ENOSYS);
        k.mountinfo = "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n".into();
        let err = build(&mut k, &spec, go, None).unwrap_err().to_string();
        assert!(err.contains("find the rootfs's bind in mountinfo"), "{err}");
    }

    /// On the initial ramfs, which pivot_root refuses, the rootfs is moved
    /// over `/` and chrooted into.
    #[test]
    fn on_the_initial_ramfs_the_rootfs_is_moved_over_it() {
        let (_tmp, root) = rootfs();
        let spec = spec(&ALL, Some(&root));
        let (go, _parent) = go_pipe();
        let mut k = Recorder::failing("pivot_root", Errno::EINVAL);
        k.mountinfo = "1 1 0:2 / / rw - rootfs rootfs rw\n".into();
        build(&mut k, &spec, go, None).unwrap();
        let at = k.position("pivot_root").unwrap();
        assert_eq!(
            k.calls[at + 1..],
            [
                "mount(., /, -, MS_MOVE, -)",
                "chroot(.)",
                "chdir(/)",
                "block_signals"
            ]
        );
    }

    /// Without a pid namespace cgmgr's child becomes a subreaper; with a
    /// mount and pid namespace but no rootfs, /proc is mounted afresh;
    /// with neither user nor uts nor net namespace, no ids, hostname or lo.
    #[test]
    fn the_steps_follow_the_namespaces_asked() {
        let (go, _parent) = go_pipe();
        let mut k = Recorder::default();
        build(&mut k, &spec(&[], None), go, None).unwrap();
        assert_eq!(
            k.calls,
            [
                "set_pdeathsig(SIGKILL)",
                "close_range(3, ~0)",
                "keyctl(JOIN_SESSION_KEYRING)",
                "set_child_subreaper",
                "block_signals"
            ]
        );
        let (go, _parent) = go_pipe();
        let mut k = Recorder::default();
        build(
            &mut k,
            &spec(&[Namespace::Mount, Namespace::Pid], None),
            go,
            None,
        )
        .unwrap();
        assert!(k.calls.contains(
            &"mount(proc, /proc, proc, MS_NOSUID | MS_NODEV | MS_NOEXEC, -)".to_string()
        ));
        assert_eq!(k.position("set_child_subreaper"), None);
        assert_eq!(k.position("setresuid"), None);
    }

    /// A quota this kernel lacks (no time namespaces) is skipped; one it
    /// refuses ends the construction, named.
    #[test]
    fn a_missing_quota_is_skipped_and_a_refused_one_named() {
        let spec = spec(&[Namespace::User], None);
        let (go, _parent) = go_pipe();
        let mut k = Recorder::failing("write(/proc/sys/user/max_time", Errno::ENOENT);
        build(&mut k, &spec, go, None).unwrap();
        assert!(
            k.position("write(/proc/sys/user/max_inotify_watches")
                .is_some()
        );

        let (go, _parent) = go_pipe();
        let mut k = Recorder::failing("write(/proc/sys/user/max_net", Errno::EACCES);
        let err = build(&mut k, &spec, go, None).unwrap_err().to_string();
        assert_eq!(
            err,
            "limiting /proc/sys/user/max_net_namespaces to 0 in the sandbox's user namespace: EACCES: Permission denied"
        );
        assert!(k.calls.last().unwrap().contains("max_net_namespaces"));
    }

    /// The run's mounts come after /tmp and before the root switch, each
    /// from and onto a descriptor opened without following symlinks; a
    /// tmpfs first, its mount points created in it, a bind restricted
    /// (nosuid, nodev, read-only) with its submounts.
    #[test]
    fn the_run_s_mounts_are_made_by_descriptor_after_tmp() {
        use crate::policy::run::Mount;
        let (_tmp, root) = rootfs();
        std::fs::create_dir(root.join("task")).unwrap();
        let mut spec = spec(&ALL, Some(&root));
        spec.mounts = vec![
            Mount::Tmpfs {
                at: "/box".into(),
                size: Some(crate::cgroup::values::Bytes(1 << 20)),
            },
            Mount::Bind {
                source: "/srv/in".into(),
                at: "/task".into(),
                readonly: true,
            },
            Mount::Bind {
                source: "/srv/out".into(),
                at: "/box/out".into(),
                readonly: false,
            },
        ];
        let (go, _parent) = go_pipe();
        let mut k = Recorder::default();
        build(&mut k, &spec, go, None).unwrap();
        let r = root.display();
        let from = k.position(&format!("mount(tmpfs, {r}/tmp")).unwrap() + 1;
        let to = k.position(&format!("chdir({r})")).unwrap();
        let fd = |line: &str| line.rsplit(" = ").next().unwrap().to_string();
        let calls: Vec<String> = k.calls[from..to].to_vec();
        let expected = |fds: &[String]| {
            let [tmp, b, b2, src, task, task2, out, dst, dst2] = fds else {
                panic!("{calls:?}");
            };
            vec![
                format!("open({r}/tmp) = {tmp}"),
                format!("open({r}/box) = {b}"),
                format!(
                    "mount(tmpfs, /proc/self/fd/{b}, tmpfs, MS_NOSUID | MS_NODEV, mode=755,size=1048576)"
                ),
                format!("open({r}/box) = {b2}"),
                format!("open(/srv/in) = {src}"),
                format!("open({r}/task) = {task}"),
                format!("mount(/proc/self/fd/{src}, /proc/self/fd/{task}, -, MS_BIND | MS_REC, -)"),
                format!("open({r}/task) = {task2}"),
                format!("mount(-, /proc/self/fd/{task2}, -, MS_REC | MS_PRIVATE, -)"),
                format!("mount_setattr(/proc/self/fd/{task2}, 0x7)"),
                format!("open(/srv/out) = {out}"),
                format!("create dir {r}/box/out"),
                format!("open({r}/box/out) = {dst}"),
                format!("mount(/proc/self/fd/{out}, /proc/self/fd/{dst}, -, MS_BIND | MS_REC, -)"),
                format!("open({r}/box/out) = {dst2}"),
                format!("mount(-, /proc/self/fd/{dst2}, -, MS_REC | MS_PRIVATE, -)"),
                format!("mount_setattr(/proc/self/fd/{dst2}, 0x6)"),
            ]
        };
        let fds: Vec<String> = calls
            .iter()
            .filter(|c| c.starts_with("open("))
            .map(|c| fd(c))
            .collect();
        assert_eq!(calls, expected(&fds));
        assert!(
            !calls
                .iter()
                .any(|c| c.starts_with("create") && c.contains("/task"))
        );
    }
}
