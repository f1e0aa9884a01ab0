//! The `cgmgr standby` side: the builder the daemon starts, one process
//! per prepared sandbox, serving the one request the daemon passes on.

use super::*;

/// The builder, `cgmgr standby` (its socket to the daemon as fd 3): for
/// each [`BuildRequest`], forks a process that [`serve`]s one sandbox of
/// the group on the control socket that came with it. Each group's policy
/// is read and checked once, at its first request (the daemon starts a new
/// builder when the policies change). Returns when the daemon closes the
/// socket; the sandboxes it made live on.
pub fn build_server(
    root: Option<String>,
    policies: std::path::PathBuf,
    sock: &OwnedFd,
) -> Result<(), ExecError> {
    use std::collections::HashMap;
    build_at_low_priority();
    // The children are reaped by the kernel; each one puts SIGCHLD back
    // to its default before it makes its own.
    // SAFETY: SIG_IGN installs no handler.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    // By group and the digest of the `[exec]` table they were built from.
    let mut prepared: HashMap<(String, u64), Prepared> = HashMap::new();
    loop {
        let (bytes, fds) = match recv(sock.as_fd(), MsgFlags::empty()) {
            Ok(Some(message)) => message,
            Ok(None) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(sys("reading the daemon's requests")(e)),
        };
        let (Ok(request), Some(ctl)) = (
            serde_json::from_slice::<BuildRequest>(&bytes),
            fds.into_iter().next(),
        ) else {
            continue;
        };
        let key = (request.group.clone(), request.config);
        // A rootfs or profile changed since: read again (and refused while
        // the daemon's loaded table is not the files').
        if prepared.get(&key).is_some_and(|p| p.built.changed()) {
            prepared.remove(&key);
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = prepared.entry(key.clone()) {
            match prepare_group(&root, &policies, &request) {
                Ok(entry) => {
                    slot.insert(entry);
                }
                Err(e) => {
                    // Its socket closes unanswered: the daemon tries later.
                    eprintln!("cgmgr: standby: group {}: {e}", request.group);
                    continue;
                }
            }
        }
        let Some(entry) = prepared.get(&key) else {
            continue;
        };
        // SAFETY: this process is single-threaded, so the child may run
        // any code.
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Child) => {
                // The builder's socket is the builder's: a sandbox holding
                // it would hide the builder's end from the daemon.
                // SAFETY: this process never uses the socket again and
                // leaves by exit(), which runs no destructor.
                unsafe { libc::close(sock.as_raw_fd()) };
                let code = match serve(&entry.root, &entry.spec, &entry.built, &ctl) {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("cgmgr: standby: group {}: {e}", request.group);
                        125
                    }
                };
                std::process::exit(code);
            }
            Ok(nix::unistd::ForkResult::Parent { .. }) => {}
            Err(e) => eprintln!("cgmgr: standby: fork: {e}"),
        }
    }
}

/// A group's run, resolved and checked once for every sandbox of it, and
/// the files it was resolved from.
pub(super) struct Prepared {
    root: CgroupRoot,
    spec: ExecSpec,
    built: BuiltFrom,
}

/// Reads the policies and resolves the group's run, as `cgmgr exec` would,
/// if its `[exec]` table is the one the daemon asked for (the files may
/// have changed since the daemon loaded them: then nothing is built).
pub(super) fn prepare_group(
    root: &Option<String>,
    policies: &std::path::Path,
    request: &BuildRequest,
) -> Result<Prepared, PrepareGroupError> {
    let group = GroupName::parse(&request.group)?;
    let load = || -> Result<_, PrepareGroupError> {
        let set = crate::policy::load(&[policies.to_path_buf()])?;
        let config = set.groups.get(&group).and_then(|g| g.exec.clone());
        Ok((set, config))
    };
    let (set, config) = load()?;
    let digest = config.clone().unwrap_or_default().digest();
    if digest != request.config {
        return Err(PrepareGroupError::NotLoaded);
    }
    // The identities of the rootfs and profile, taken between two reads
    // that agree: they are the files this table was read from.
    let profile = config.as_ref().and_then(|c| match &c.seccomp {
        Some(crate::policy::seccomp::Seccomp::Profile { path, .. }) => Some(path.clone()),
        _ => None,
    });
    let rootfs = config.as_ref().and_then(|c| c.rootfs.clone());
    let built = BuiltFrom::of(rootfs.into_iter().chain(profile));
    if load()?.1.unwrap_or_default().digest() != digest {
        return Err(PrepareGroupError::Changed);
    }
    let asked = prepare::ExecRequest {
        root: root.clone(),
        group: request.group.clone(),
        policies: Some(policies.to_path_buf()),
        flags: ExecFlags::default(),
    };
    let (root, spec) = prepare::prepare_with(asked, Some(set))?;
    Ok(Prepared { root, spec, built })
}

/// Why a group's sandboxes cannot be built now.
#[derive(Debug, thiserror::Error)]
pub enum PrepareGroupError {
    /// The daemon asked for a group name no policy may declare.
    #[error(transparent)]
    Name(#[from] crate::cgroup::name::NameError),
    /// The policy files do not load.
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyErrors),
    /// Their `[exec]` table is not the one the daemon loaded.
    #[error("the policy files differ from the daemon's loaded policy (a reload is due)")]
    NotLoaded,
    /// They changed between two reads.
    #[error("the policy files changed while they were read")]
    Changed,
    /// The run cannot be resolved.
    #[error(transparent)]
    Prepare(#[from] prepare::PrepareError),
}

/// The `cgmgr standby` process: builds a run's sandbox, tells the daemon
/// through `ctl` that it is ready, serves the one request the daemon passes
/// on, and ends the run. `spec` has no command.
pub(super) fn serve(
    root: &CgroupRoot,
    spec: &ExecSpec,
    built: &BuiltFrom,
    ctl: &OwnedFd,
) -> Result<(), ExecError> {
    // Every sandbox checks its rootfs anew (not `/`, the directories it
    // needs): the group's resolution was cached by the builder.
    if let Some(rootfs) = &spec.rootfs {
        check_rootfs(rootfs, &spec.workload.cwd)?;
        if spec.has(Namespace::User) {
            check_reachable_by_others(rootfs)?;
        }
    }
    let run = run_group::Run::begin(root, &spec.group, spec.has(Namespace::User))?;
    let served = serve_in(root, spec, built, &run, ctl);
    // A run that served a command was ended before its caller was told.
    if let Err(e) = run.end(root) {
        eprintln!("cgmgr: standby: ending the run: {e}");
    }
    served
}

pub(super) fn serve_in(
    root: &CgroupRoot,
    spec: &ExecSpec,
    built: &BuiltFrom,
    run_owned: &run_group::Run,
    ctl: &OwnedFd,
) -> Result<(), ExecError> {
    let run = &run_owned.group;
    let (job_here, job_init) = seqpacket_pair().map_err(sys("socketpair"))?;
    let started = start_child(root, spec, run_owned, Some(job_init))?;
    let mut supervision = Supervision::new(started.pid);
    match recv(job_here.as_fd(), MsgFlags::empty()) {
        Ok(Some((bytes, _))) if Word::parse(&bytes) == Some(Word::Ready) => {}
        _ => {
            // init reported why on stderr (the daemon's log).
            let _ = nix::sys::signal::kill(started.pid, Signal::SIGKILL);
            let code = wait_exit(&supervision);
            return Err(ExecError::Invalid(format!(
                "the sandbox could not be prepared (init exited with {code})"
            )));
        }
    }
    // Held until the caller is told the status: the namespaces then outlive
    // init's exit, which so does not wait for their teardown (the mount
    // tree's unmount waits for an RCU grace period).
    let held = hold_namespaces(started.pid);
    Word::Ready
        .send(ctl.as_fd())
        .map_err(sys("telling the daemon"))?;
    let sfd = SignalFd::new(&started.signals).map_err(sys("signalfd"))?;
    let Some((request, conn)) = idle(ctl, &sfd, &job_here, &supervision)? else {
        let _ = nix::sys::signal::kill(started.pid, Signal::SIGKILL);
        wait_exit(&supervision);
        return Ok(());
    };
    let end = |reply: Reply| {
        // The daemon counts by this word whether a sandbox served the run.
        let word = if matches!(reply, Reply::None { .. }) {
            Word::Declined
        } else {
            Word::Started
        };
        let _ = word.send(ctl.as_fd());
        let _ = send_json(conn.as_fd(), &reply, &[]);
        let _ = nix::sys::signal::kill(started.pid, Signal::SIGKILL);
        wait_exit(&supervision);
        Ok(())
    };
    // `none` sends the caller to build its own sandbox, as it would have.
    if built.changed() {
        let why = "the rootfs or seccomp profile changed since this sandbox was built";
        return end(Reply::None { why: why.into() });
    }
    let mut job = match check_request(spec, &request) {
        Ok(job) => job,
        Err(e) => {
            return end(Reply::None { why: e.to_string() });
        }
    };
    if serde_json::to_vec(&job).map_or(true, |b| b.len() > MAX_MESSAGE) {
        let why = "the command and environment are too large to hand over";
        return end(Reply::None { why: why.into() });
    }
    // The daemon's listener refuses descriptors (see `set_pass_rights`);
    // this connection takes the caller's stdio.
    set_pass_rights(conn.as_fd(), true);
    let _ = send_json(conn.as_fd(), &Reply::Started, &[]);
    let (open, stdio) = match receive_stdio(&conn) {
        Ok(Some(received)) => received,
        Ok(None) => {
            return end(Reply::None { why: String::new() });
        }
        Err(e) => {
            let reply = Reply::Failed {
                message: e.to_string(),
            };
            return end(reply);
        }
    };
    job.stdio = open;
    // Built at low priority; the run itself is not: init and the workload
    // take the caller's attributes.
    let workload = workload_pid(root, run, started.pid);
    // SAFETY: setpriority takes integers only; 0 is this process.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 0) };
    for pid in [Some(started.pid), workload].into_iter().flatten() {
        apply_attributes(pid, &request.attrs);
    }
    let format = request.report.as_deref().and_then(|r| r.parse().ok());
    let account = report::Accounting::start(root, &spec.group, format);
    let raw: Vec<RawFd> = stdio.iter().map(AsRawFd::as_raw_fd).collect();
    send_json(job_here.as_fd(), &job, &raw).map_err(sys("handing the command to init"))?;
    drop(stdio);
    let _ = Word::Started.send(ctl.as_fd());
    let group = RunRef { root, group: run };
    let code = follow_run(&mut supervision, group, &sfd, &conn);
    let stderr = account.finish(root, run, code);
    // The run is over before its caller learns the status: nothing it
    // started outlives `cgmgr exec`. The empty group is removed after.
    let stderr = match run_group::kill_all(root, run) {
        Ok(()) => stderr,
        Err(e) => format!("{stderr}cgmgr: exec: ending the run: {e}\n"),
    };
    let _ = send_json(conn.as_fd(), &Reply::Exit { code, stderr }, &[]);
    drop((started, held));
    Ok(())
}

/// A request with its connection, as the daemon passed it.
pub(super) type Handed = (Request, OwnedFd);

/// Waits for the daemon to pass a request on; `None` when the standby is
/// to end instead (the daemon closed `ctl`, a stop signal, init died).
pub(super) fn idle(
    ctl: &OwnedFd,
    sfd: &SignalFd,
    job: &OwnedFd,
    supervision: &Supervision,
) -> Result<Option<Handed>, ExecError> {
    loop {
        let revents = wait_any(&[ctl.as_fd(), sfd.as_fd(), job.as_fd()], None)
            .map_err(sys("poll"))?
            .unwrap_or_default();
        if revents.first().copied().is_some_and(ready) {
            let Ok(Some((bytes, mut fds))) = recv(ctl.as_fd(), MsgFlags::MSG_DONTWAIT) else {
                return Ok(None);
            };
            let Ok(request) = serde_json::from_slice::<Request>(&bytes) else {
                continue;
            };
            if fds.len() != 1 {
                continue;
            }
            let conn = fds.remove(0);
            return Ok(Some((request, conn)));
        }
        if revents.get(1).copied().is_some_and(ready)
            && let Some(sig) = take_signal(sfd)
            && (matches!(
                sig,
                Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP | Signal::SIGQUIT
            ) || supervision.exited().is_some())
        {
            return Ok(None);
        }
        if revents.get(2).copied().is_some_and(ready) {
            return Ok(None); // init is gone
        }
    }
}

/// The job for the workload, once the request is checked as `cgmgr exec`
/// checks its own command line.
pub(super) fn check_request(spec: &ExecSpec, request: &Request) -> Result<Job, ExecError> {
    if request.v != PROTOCOL || request.group != spec.group.as_str() {
        return Err(ExecError::Invalid("a request for another sandbox".into()));
    }
    if request.argv.is_empty() {
        return Err(ExecError::Invalid("no command".into()));
    }
    let env = merge_env(spec.workload.env.clone(), &request.env)?;
    Ok(Job {
        argv: request.argv.clone(),
        env,
        stdio: [false; 3],
        ignored: request.ignored.clone(),
        rlimits: request.attrs.rlimits.clone(),
    })
}

/// Which of the caller's stdin, stdout, stderr are open, and those.
pub(super) type CallerStdio = ([bool; 3], Vec<OwnedFd>);

/// Waits (at most [`FIRST_ANSWER`]) for the caller's stdio after
/// `started`, and checks it as `cgmgr exec` checks its own. `Ok(None)`: the
/// caller is gone (nothing is started).
pub(super) fn receive_stdio(conn: &OwnedFd) -> Result<Option<CallerStdio>, ExecError> {
    let waited = wait_any(&[conn.as_fd()], Some(FIRST_ANSWER)).map_err(sys("poll"))?;
    if !waited.is_some_and(|r| ready(r[0])) {
        return Ok(None);
    }
    let Ok(Some((bytes, fds))) = recv(conn.as_fd(), MsgFlags::MSG_DONTWAIT) else {
        return Ok(None);
    };
    let Ok(ClientMessage::Stdio(open)) = serde_json::from_slice(&bytes) else {
        return Err(ExecError::Invalid("expected the caller's stdio".into()));
    };
    let announced = open.iter().filter(|&&b| b).count();
    if announced != fds.len() {
        return Err(ExecError::Invalid(format!(
            "{announced} standard descriptors announced, {} received",
            fds.len()
        )));
    }
    let mut passed = fds.iter();
    let borrowed = open.map(|o| {
        if o {
            passed.next().map(AsFd::as_fd)
        } else {
            None
        }
    });
    workload::check_stdio(borrowed)?;
    Ok(Some((open, fds)))
}

/// What a prepared sandbox's root and seccomp profile were when it was
/// built: a run takes it only if they are still the same files (a rootfs
/// replaced by a rename, or an edited profile, would give `cgmgr exec`'s
/// own sandbox something else).
#[derive(Debug)]
pub(super) struct BuiltFrom {
    files: Vec<(PathBuf, Option<FileId>)>,
}

/// Device, inode, size and modification time of a file, and for a regular
/// file a SHA-256 of its content: a profile edited in place within the
/// same second, keeping its size (or with its mtime put back), is another
/// file.
pub(super) type FileId = (u64, u64, u64, i64, i64, Option<[u8; 32]>);

/// The most of a file that is hashed: policy files and the profiles they
/// name are refused above 16 MiB anyway.
pub(super) const MAX_HASHED: u64 = 16 << 20;

pub(super) fn file_id(path: &std::path::Path) -> Option<FileId> {
    use sha2::Digest;
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    let content = m
        .is_file()
        .then(|| {
            let mut text = Vec::new();
            std::fs::File::open(path)
                .and_then(|f| f.take(MAX_HASHED).read_to_end(&mut text))
                .ok()
                .map(|_| sha2::Sha256::digest(&text).into())
        })
        .flatten();
    Some((
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        content,
    ))
}

impl BuiltFrom {
    /// The identities of `paths` now.
    fn of(paths: impl Iterator<Item = PathBuf>) -> BuiltFrom {
        let files = paths
            .map(|p| {
                let id = file_id(&p);
                (p, id)
            })
            .collect();
        BuiltFrom { files }
    }

    /// True when one of the files is not the one the sandbox was built from.
    fn changed(&self) -> bool {
        self.files.iter().any(|(path, id)| file_id(path) != *id)
    }
}

/// Supervises the run until init exits: signals from the connection and
/// from this process's own signalfd are passed on; a connection that
/// closes (the caller died) ends the run at once.
pub(super) fn follow_run(
    supervision: &mut Supervision,
    run: RunRef<'_>,
    sfd: &SignalFd,
    conn: &OwnedFd,
) -> i32 {
    let mut caller_gone = false;
    loop {
        if let Some(code) = supervision.exited() {
            return code;
        }
        let watched: Vec<BorrowedFd<'_>> = if caller_gone {
            vec![sfd.as_fd()]
        } else {
            vec![sfd.as_fd(), conn.as_fd()]
        };
        // EINTR comes back as no event. Any other error of a poll on these
        // descriptors would come back at once every time: rather than spin
        // on it, the run is ended, and init's exit waited for.
        let revents = match wait_any(&watched, supervision.time_left()) {
            Ok(revents) => revents,
            Err(e) => {
                eprintln!("cgmgr: standby: waiting on the run: poll: {e}; ending the run");
                supervision.kill_now(run);
                return wait_exit(supervision);
            }
        };
        let Some(revents) = revents else {
            supervision.on_timeout(run);
            continue;
        };
        if ready(revents[0])
            && let Some(sig) = take_signal(sfd)
        {
            supervision.on_signal(sig, run);
        }
        if !caller_gone && revents.get(1).copied().is_some_and(ready) {
            match recv(conn.as_fd(), MsgFlags::MSG_DONTWAIT) {
                Ok(Some((bytes, _))) => {
                    if let Ok(ClientMessage::Signal(n)) = serde_json::from_slice(&bytes)
                        && let Ok(sig) = Signal::try_from(n)
                        && init::FORWARDED.contains(&sig)
                    {
                        supervision.on_signal(sig, run);
                    }
                }
                Err(Errno::EAGAIN) => {}
                Ok(None) | Err(_) => {
                    // As `cgmgr exec`'s death ends its run (init's
                    // parent-death signal), the caller's ends this one.
                    caller_gone = true;
                    supervision.kill_now(run);
                }
            }
        }
    }
}

/// Builds sandboxes at the lowest priority (nice 19): a sandbox made ahead
/// takes little CPU from the runs in progress; the run that takes one gets
/// the caller's nice value. Not `SCHED_IDLE`: with it, back-to-back runs
/// had 37-49 ms outliers (at nice 19 at most 17 ms), the likely cause a
/// starved builder holding a kernel lock a run waits for (BENCHMARKS.md).
pub fn build_at_low_priority() {
    // SAFETY: setpriority takes integers only; 0 is this process.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
}

/// The prepared workload: the run group's process that is not init.
pub(super) fn workload_pid(root: &CgroupRoot, run: &GroupName, init: Pid) -> Option<Pid> {
    root.procs(run)
        .ok()?
        .into_iter()
        .find(|&pid| pid != init.as_raw())
        .map(Pid::from_raw)
}

/// Descriptors of init's mount and network namespaces (those that are
/// open), which keep the namespaces alive while they are held.
pub(super) fn hold_namespaces(pid: Pid) -> Vec<OwnedFd> {
    ["mnt", "net"]
        .iter()
        .filter_map(|ns| {
            std::fs::File::open(format!("/proc/{pid}/ns/{ns}"))
                .ok()
                .map(OwnedFd::from)
        })
        .collect()
}

pub(super) fn wait_exit(supervision: &Supervision) -> i32 {
    loop {
        if let Some(code) = supervision.exited() {
            return code;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A profile rewritten in place with the same size, its modification
    /// time put back, is not the file a sandbox was built from.
    #[test]
    fn a_file_edited_in_place_with_its_size_and_mtime_kept_has_changed() {
        use nix::sys::stat::{UtimensatFlags, utimensat};
        use nix::sys::time::TimeSpec;
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("p.json");
        std::fs::write(&profile, r#"{"defaultAction": "SCMP_ACT_ERRNO"}"#).unwrap();
        let built = BuiltFrom::of([profile.clone(), dir.path().to_path_buf()].into_iter());
        assert!(!built.changed());
        let before = std::fs::metadata(&profile).unwrap();
        std::fs::write(&profile, r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#).unwrap();
        let mtime = TimeSpec::new(before.mtime(), before.mtime_nsec());
        utimensat(
            nix::fcntl::AT_FDCWD,
            &profile,
            &mtime,
            &mtime,
            UtimensatFlags::NoFollowSymlink,
        )
        .unwrap();
        let after = std::fs::metadata(&profile).unwrap();
        assert_eq!(
            (after.ino(), after.size(), after.mtime(), after.mtime_nsec()),
            (
                before.ino(),
                before.size(),
                before.mtime(),
                before.mtime_nsec()
            ),
            "the same inode, size and mtime"
        );
        assert!(built.changed(), "the content changed");
    }
}
