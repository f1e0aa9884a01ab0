//! The builder, `cgmgr standby`: started by the pool when a sandbox is
//! needed, asked for one sandbox per message.

use super::*;

/// The `cgmgr standby` process that builds the sandboxes: one forked child
/// per sandbox, so no sandbox pays for starting cgmgr and reading the
/// policies again.
pub(super) struct Builder {
    pub(super) pid: Pid,
    pub(super) sock: OwnedFd,
}

impl Pool {
    /// Lets the builder go (it exits when its socket closes; the standbys
    /// it made live on); a new one is started when a sandbox is needed.
    pub(super) fn stop_builder(&mut self) {
        if let Some(b) = self.builder.take() {
            drop(b.sock);
            self.stopped.push(b.pid);
        }
    }

    /// Asks the builder (started if need be) for a sandbox of `group`.
    pub(super) fn build(&mut self, group: &GroupName) -> Result<Member, Errno> {
        let (ctl, theirs) = seqpacket_pair()?;
        let config = self.slots.get(group).map_or(0, |slot| slot.config.digest());
        let request = BuildRequest {
            group: group.to_string(),
            config,
        };
        // A builder that died since its last turn answers EPIPE: one more
        // try with a new one.
        for _ in 0..2 {
            if self.builder.is_none() {
                self.builder = Some(start_builder(&self.root, &self.policies)?);
            }
            let sent = match &self.builder {
                Some(b) => send(b.sock.as_fd(), &request, &[theirs.as_fd()]),
                None => Err(Errno::ESRCH),
            };
            match sent {
                Ok(()) => return Ok(Member { ctl, ready: false }),
                Err(_) => self.stop_builder(),
            }
        }
        Err(Errno::EPIPE)
    }
}

/// Starts the builder, `cgmgr standby`, its socket as fd 3, with
/// `posix_spawn` (the daemon's memory is not copied). The program is this
/// process's own (`/proc/self/exe`): a standby always speaks the daemon's
/// protocol, even after the binary was replaced.
pub(super) fn start_builder(root: &Path, policies: &Path) -> Result<Builder, Errno> {
    use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags, posix_spawn};
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let (ctl, theirs) = seqpacket_pair()?;
    let cstr = |b: &[u8]| CString::new(b).map_err(|_| Errno::EINVAL);
    let args = [
        cstr(b"cgmgr")?,
        cstr(b"--root")?,
        cstr(root.as_os_str().as_bytes())?,
        cstr(b"standby")?,
        cstr(b"--policies")?,
        cstr(policies.as_os_str().as_bytes())?,
    ];
    let env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != "CGMGR_ROOT")
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    let mut actions = PosixSpawnFileActions::init()?;
    actions.add_open(
        0,
        "/dev/null",
        nix::fcntl::OFlag::O_RDONLY,
        nix::sys::stat::Mode::empty(),
    )?;
    actions.add_open(
        1,
        "/dev/null",
        nix::fcntl::OFlag::O_WRONLY,
        nix::sys::stat::Mode::empty(),
    )?;
    // dup2 onto itself would keep close-on-exec: moved off fd 3 first.
    let theirs = if theirs.as_raw_fd() == 3 {
        nix::fcntl::fcntl(&theirs, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(4)).map(|fd| {
            // SAFETY: F_DUPFD_CLOEXEC just made this descriptor for us.
            unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }
        })?
    } else {
        theirs
    };
    actions.add_dup2(theirs.as_raw_fd(), 3)?;
    let mut attr = PosixSpawnAttr::init()?;
    attr.set_sigmask(&nix::sys::signal::SigSet::empty())?;
    // Every signal at its default, glibc's internal ones included (which
    // posix_spawn otherwise leaves ignored, and a workload would inherit).
    // SAFETY: a zeroed sigset_t is valid; setting every bit makes the set
    // of all signals, a valid value for the kernel and for glibc.
    let every = unsafe {
        let mut raw: libc::sigset_t = std::mem::zeroed();
        std::ptr::write_bytes(&raw mut raw, 0xff, 1);
        nix::sys::signal::SigSet::from_sigset_t_unchecked(raw)
    };
    attr.set_sigdefault(&every)?;
    attr.set_flags(
        PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK | PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF,
    )?;
    let pid = posix_spawn(c"/proc/self/exe", &actions, &attr, &args, &env)?;
    drop(theirs);
    Ok(Builder { pid, sock: ctl })
}
