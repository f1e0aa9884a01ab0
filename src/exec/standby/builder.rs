//! The builder, `cgmgr standby`: started by the daemon, it reads each
//! group's policy once and forks one process per prepared sandbox.

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
        // Garbage, or a message of another version (the daemon is this
        // binary: never), is dropped with its descriptors.
        let (request, fds) = match recv::<BuildRequest>(sock.as_fd(), MsgFlags::empty()) {
            Ok(Some(message)) => message,
            Ok(None) => return Ok(()),
            Err(RecvError::Sys(Errno::EINTR) | RecvError::Decode(_)) => continue,
            Err(RecvError::Sys(e)) => return Err(sys("reading the daemon's requests")(e)),
        };
        let Some(ctl) = fds.into_iter().next() else {
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
    let binds: Vec<PathBuf> = config
        .iter()
        .flat_map(|c| &c.mounts)
        .filter_map(|m| match m {
            crate::policy::run::Mount::Bind { source, .. } => Some(source.clone()),
            crate::policy::run::Mount::Tmpfs { .. } => None,
        })
        .collect();
    let built = BuiltFrom::of(rootfs.into_iter().chain(profile)).with_binds(binds);
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

/// Builds sandboxes at the lowest priority (nice 19): a sandbox made ahead
/// takes little CPU from the runs in progress; the run that takes one gets
/// the caller's nice value. Not `SCHED_IDLE`: with it, back-to-back runs
/// had 37-49 ms outliers (at nice 19 at most 17 ms), the likely cause a
/// starved builder holding a kernel lock a run waits for (BENCHMARKS.md).
pub fn build_at_low_priority() {
    // SAFETY: setpriority takes integers only; 0 is this process.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
}

/// What a prepared sandbox's root and seccomp profile were when it was
/// built: a run takes it only if they are still the same files (a rootfs
/// replaced by a rename, or an edited profile, would give `cgmgr exec`'s
/// own sandbox something else).
#[derive(Debug)]
pub(super) struct BuiltFrom {
    files: Vec<(PathBuf, Option<FileId>)>,
    /// Bind sources by device and inode only: their content may change
    /// (new submissions), but a path renamed to another directory (a
    /// rotated `current`) is another source.
    binds: Vec<(PathBuf, Option<(u64, u64)>)>,
}

fn dev_ino(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
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
    pub(super) fn of(paths: impl Iterator<Item = PathBuf>) -> BuiltFrom {
        let files = paths
            .map(|p| {
                let id = file_id(&p);
                (p, id)
            })
            .collect();
        BuiltFrom {
            files,
            binds: Vec::new(),
        }
    }

    /// With the bind sources `paths`, as they are now.
    pub(super) fn with_binds(mut self, paths: Vec<PathBuf>) -> BuiltFrom {
        self.binds = paths
            .into_iter()
            .map(|p| {
                let id = dev_ino(&p);
                (p, id)
            })
            .collect();
        self
    }

    /// True when one of the files or bind sources is not the one the
    /// sandbox was built from.
    pub(super) fn changed(&self) -> bool {
        self.files.iter().any(|(path, id)| file_id(path) != *id)
            || self.binds.iter().any(|(path, id)| dev_ino(path) != *id)
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

    /// A bind source renamed away and replaced (a judge's rotated
    /// `current`) is another source; new files in it are not.
    #[test]
    fn a_rotated_bind_source_has_changed_and_new_content_has_not() {
        let dir = tempfile::tempdir().unwrap();
        let current = dir.path().join("current");
        std::fs::create_dir(&current).unwrap();
        let built = BuiltFrom::of(std::iter::empty()).with_binds(vec![current.clone()]);
        std::fs::write(current.join("sol"), "1").unwrap();
        assert!(!built.changed(), "new content, same source");
        std::fs::rename(&current, dir.path().join("old")).unwrap();
        std::fs::create_dir(&current).unwrap();
        assert!(built.changed(), "a rotated source");
    }
}
