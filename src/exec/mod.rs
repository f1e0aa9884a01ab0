//! `cgmgr exec`: run a command inside its group, in new namespaces and a
//! new root filesystem, under a minimal init.
//!
//! Three processes take part:
//! - the **parent** (`cgmgr exec` itself) makes the run group
//!   (`GROUP/cgmgr.run.PID`), clones the child into it (`clone3` +
//!   `CLONE_INTO_CGROUP`), writes its id maps, lets it go, then forwards
//!   signals and waits; it reports OOM kills and pids.max hits, and ends the
//!   run group (nothing started by the run outlives it);
//! - the **child** is PID 1 of the new PID namespace: it sets the hostname,
//!   brings up loopback, builds the root filesystem, forks the workload and
//!   becomes its init ([`init`]);
//! - the **workload** ([`workload`]) drops everything it must not keep and
//!   executes the command.
//!
//! A prepared sandbox ([`standby`]) is the same run made ahead by the
//! daemon, its workload waiting for the command of a later `cgmgr exec`.

pub mod build;
pub mod error;
pub mod idmap;
pub mod init;
pub mod prepare;
pub mod report;
pub mod rootfs;
pub mod run_group;
pub mod seccomp;
pub mod seccomp_rules;
pub mod spawn;
pub mod standby;
pub mod workload;

use std::collections::BTreeSet;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Gid, Pid, Uid};

pub use error::ExecError;
use error::sys;
use rootfs::RootSwitch;
use workload::Workload;

use crate::cgroup::{CgroupRoot, GroupName};
use crate::policy::{ExecConfig, Namespace};

/// Namespaces used when neither the policy nor `--ns` names any.
pub const DEFAULT_NAMESPACES: [Namespace; 7] = [
    Namespace::Cgroup,
    Namespace::Mount,
    Namespace::Uts,
    Namespace::Ipc,
    Namespace::Net,
    Namespace::Pid,
    Namespace::User,
];

/// Everything `cgmgr exec` needs, resolved from the policy and the flags.
#[derive(Debug, Clone)]
pub struct ExecSpec {
    /// The group the workload is born in.
    pub group: GroupName,
    /// Namespaces to create.
    pub namespaces: BTreeSet<Namespace>,
    /// Root filesystem, if any.
    pub rootfs: Option<PathBuf>,
    /// pivot_root (default) or chroot.
    pub switch: RootSwitch,
    /// The rootfs mounted read-only (default), or writable.
    pub readonly_root: bool,
    /// Hostname in the UTS namespace.
    pub hostname: String,
    /// The command and how it runs.
    pub workload: Workload,
    /// `--report`: the run's report at its end, in this format.
    pub report: Option<report::ReportFormat>,
}

/// Command-line overrides of the `[exec]` policy table.
#[derive(Debug, Clone, Default)]
pub struct ExecFlags {
    /// `--rootfs`
    pub rootfs: Option<PathBuf>,
    /// `--ns`, comma-separated names or `none`
    pub ns: Option<Vec<String>>,
    /// `--hostname`
    pub hostname: Option<String>,
    /// `--env K=V`
    pub env: Vec<String>,
    /// `--chroot`
    pub chroot: bool,
    /// `--report[=json]`
    pub report: Option<report::ReportFormat>,
    /// The command.
    pub argv: Vec<String>,
}

impl ExecSpec {
    /// Merges the policy's `[exec]` table and the flags (flags win).
    pub fn resolve(
        group: GroupName,
        policy: Option<&ExecConfig>,
        flags: ExecFlags,
    ) -> Result<ExecSpec, ExecError> {
        let policy = policy.cloned().unwrap_or_default();
        let namespaces = match &flags.ns {
            Some(names) => parse_namespaces(names)?,
            None => policy
                .namespaces
                .clone()
                .unwrap_or_else(|| DEFAULT_NAMESPACES.into_iter().collect()),
        };
        if let Some(r) = &flags.rootfs
            && !r.is_absolute()
        {
            return Err(ExecError::Invalid(format!(
                "--rootfs {}: must be an absolute path",
                r.display()
            )));
        }
        let rootfs = flags.rootfs.or(policy.rootfs.clone());
        if rootfs.is_some() && !namespaces.contains(&Namespace::Mount) {
            return Err(ExecError::Invalid(
                "a rootfs needs the mount namespace: add `mount` to --ns or to the policy's namespaces".into(),
            ));
        }
        if rootfs.is_some() && !namespaces.contains(&Namespace::Pid) {
            return Err(ExecError::Invalid(
                "a rootfs needs the pid namespace too: without it the sandbox's /proc lists the \
                 host's processes, and /proc/PID/root of any of them leads out of the rootfs \
                 (with a user namespace, /proc cannot even be mounted); add `pid`"
                    .into(),
            ));
        }
        if let Some(h) = &flags.hostname {
            crate::policy::parse::check_hostname(h)
                .map_err(|e| ExecError::Invalid(format!("--hostname: {e}")))?;
        }
        let default_host = group
            .as_str()
            .rsplit('/')
            .next()
            .unwrap_or("sandbox")
            .to_string();
        let hostname = flags
            .hostname
            .or(policy.hostname.clone())
            .unwrap_or(default_host);
        let mut env = merge_env(policy.env.clone().into_iter().collect(), &flags.env)?;
        if !env.iter().any(|(k, _)| k == "PATH") {
            env.push(("PATH".into(), workload::DEFAULT_PATH.into()));
        }
        let uid = policy.uid.unwrap_or(0);
        let gid = policy.gid.unwrap_or(uid);
        let in_user_ns = namespaces.contains(&Namespace::User);
        for (what, id) in [("uid", uid), ("gid", gid)] {
            if in_user_ns && id >= idmap::RANGE {
                return Err(ExecError::Invalid(format!(
                    "{what} {id} is outside the user namespace's mapped range 0..{}: pick an id below {}",
                    idmap::RANGE,
                    idmap::RANGE
                )));
            }
        }
        if !in_user_ns && (uid == 0 || gid == 0) {
            check_host_root(&group, &policy, &namespaces, rootfs.is_some())?;
        }
        let cwd = policy.cwd.unwrap_or_else(|| PathBuf::from("/"));
        if let Some(r) = &rootfs {
            check_rootfs(r, &cwd)?;
            if in_user_ns {
                check_reachable_by_others(r)?;
            }
        }
        workload::check_std_fds()?;
        let filters = seccomp::compile(
            policy
                .seccomp
                .as_ref()
                .unwrap_or(&crate::policy::seccomp::Seccomp::Default),
            policy.nested_userns.unwrap_or(false),
        )?;
        Ok(ExecSpec {
            group,
            namespaces,
            rootfs,
            readonly_root: policy.readonly_root.unwrap_or(true),
            report: flags.report,
            switch: if flags.chroot {
                RootSwitch::Chroot
            } else {
                RootSwitch::PivotRoot
            },
            hostname,
            workload: Workload {
                argv: flags.argv,
                env,
                cwd,
                uid,
                gid,
                in_user_ns,
                seccomp: filters,
                nested_userns: policy.nested_userns.unwrap_or(false),
            },
        })
    }

    fn has(&self, ns: Namespace) -> bool {
        self.namespaces.contains(&ns)
    }

    fn clone_flags(&self) -> u64 {
        let flag = |ns| match ns {
            Namespace::Mount => libc::CLONE_NEWNS,
            Namespace::Uts => libc::CLONE_NEWUTS,
            Namespace::Ipc => libc::CLONE_NEWIPC,
            Namespace::Net => libc::CLONE_NEWNET,
            Namespace::Pid => libc::CLONE_NEWPID,
            Namespace::User => libc::CLONE_NEWUSER,
            // Unshared by the child once it is in its group (see child_setup).
            Namespace::Cgroup => 0,
        };
        self.namespaces
            .iter()
            .map(|ns| u64::from(flag(*ns).cast_unsigned()))
            .fold(0, |a, b| a | b)
    }
}

/// `env` with each `--env K=V` of `flags` set (replacing an earlier K).
pub fn merge_env(
    mut env: Vec<(String, String)>,
    flags: &[String],
) -> Result<Vec<(String, String)>, ExecError> {
    for kv in flags {
        let Some((k, v)) = kv.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(ExecError::Invalid(format!(
                "--env {kv:?}: expected KEY=VALUE"
            )));
        };
        env.retain(|(key, _)| key != k);
        env.push((k.to_string(), v.to_string()));
    }
    Ok(env)
}

/// uid or gid 0 without a user namespace is the host's root. It is run only
/// when the policy itself says so, both ways: its own `namespaces` leave out
/// `user` (a `--ns` that drops it is no consent) and it writes `uid = 0`
/// (or `gid = 0`); and only fully contained: a rootfs, with the mount and
/// pid namespaces, so the /proc masks apply and no host process is in reach.
fn check_host_root(
    group: &GroupName,
    policy: &ExecConfig,
    namespaces: &BTreeSet<Namespace>,
    rootfs: bool,
) -> Result<(), ExecError> {
    let consent = policy
        .namespaces
        .as_ref()
        .is_some_and(|n| !n.contains(&Namespace::User))
        && (policy.uid == Some(0) || policy.gid == Some(0));
    if !consent {
        return Err(ExecError::Invalid(format!(
            "group {group}: without a user namespace, uid or gid 0 in the sandbox is root on the \
             host. Keep `user` in the namespaces (the default set has it) or set non-zero ids; to \
             accept host root, the policy itself must say so: `namespaces` without \"user\" and \
             `uid = 0` in [group.{group}.exec] (a --ns list that drops `user` is not enough)"
        )));
    }
    if !rootfs || !namespaces.contains(&Namespace::Mount) || !namespaces.contains(&Namespace::Pid) {
        return Err(ExecError::Invalid(format!(
            "group {group}: host root runs only inside a rootfs with the mount and pid namespaces \
             (so /proc's kernel knobs are read-only and no host process is in reach); add \
             `rootfs` and \"mount\", \"pid\" to the namespaces"
        )));
    }
    Ok(())
}

/// The rootfs checks that can be made before anything is created, each
/// with its own message: it exists, is a directory, is not the host's own
/// root, has real `proc`, `dev` and `tmp` directories, and holds `cwd`.
pub(crate) fn check_rootfs(
    rootfs: &std::path::Path,
    cwd: &std::path::Path,
) -> Result<(), ExecError> {
    let invalid = |why: String| {
        Err(ExecError::Invalid(format!(
            "rootfs {}: {why}",
            rootfs.display()
        )))
    };
    match std::fs::metadata(rootfs) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return invalid(
                "does not exist; build one with `cgmgr rootfs build DIR --bin ...`".into(),
            );
        }
        Err(e) => return invalid(format!("cannot be inspected: {e}")),
        Ok(m) if !m.is_dir() => return invalid("is not a directory".into()),
        Ok(_) => {}
    }
    if std::fs::canonicalize(rootfs).is_ok_and(|c| c == std::path::Path::new("/")) {
        return invalid(
            "is the host's own root: a sandbox needs a separate directory (`cgmgr rootfs build`)"
                .into(),
        );
    }
    rootfs::check(rootfs)?;
    let inside = rootfs.join(cwd.strip_prefix("/").unwrap_or(cwd));
    match std::fs::symlink_metadata(&inside) {
        // A symlink is resolved inside the new root, by the workload.
        Ok(m) if m.is_dir() || m.file_type().is_symlink() => Ok(()),
        Ok(_) => invalid(format!(
            "the working directory {} is not a directory",
            cwd.display()
        )),
        Err(_) => invalid(format!(
            "the working directory {} does not exist in it",
            cwd.display()
        )),
    }
}

/// With a user namespace, the rootfs is mounted by the run's own host
/// ids, which are nobody's on the host: every directory from `/` to the
/// rootfs, and its `proc`, `dev` and `tmp`, must let others search it, or
/// the run fails at its first mount, after its groups were made.
pub(crate) fn check_reachable_by_others(rootfs: &std::path::Path) -> Result<(), ExecError> {
    use std::os::unix::fs::PermissionsExt;
    let dirs = rootfs
        .ancestors()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .map(std::path::Path::to_path_buf)
        .chain(rootfs::REQUIRED_DIRS.iter().map(|d| rootfs.join(d)));
    for dir in dirs {
        let Ok(meta) = std::fs::metadata(&dir) else {
            continue; // check_rootfs names what is missing
        };
        if meta.permissions().mode() & 0o001 == 0 {
            return Err(ExecError::Invalid(format!(
                "rootfs {}: the sandbox's user namespace maps its root to host ids that are \
                 nobody's, and {} (mode {:o}) does not let others search it, so the sandbox \
                 cannot reach its rootfs; allow it (`chmod o+x {}`) or move the rootfs (for \
                 example under /var/lib/cgmgr/rootfs)",
                rootfs.display(),
                dir.display(),
                meta.permissions().mode() & 0o7777,
                dir.display()
            )));
        }
    }
    Ok(())
}

fn parse_namespaces(names: &[String]) -> Result<BTreeSet<Namespace>, ExecError> {
    if names.len() == 1 && names[0] == "none" {
        return Ok(BTreeSet::new());
    }
    names
        .iter()
        .map(|n| {
            Namespace::from_name(n.trim()).ok_or_else(|| {
                let all: Vec<&str> = Namespace::ALL.iter().map(|(n, _)| *n).collect();
                ExecError::Invalid(format!(
                    "--ns: unknown namespace {n:?}; namespaces are {} (or none)",
                    all.join(", ")
                ))
            })
        })
        .collect()
}

/// Runs the workload in a run group of its own below the spec's group;
/// returns its exit status (128+N when killed by N). Whatever the workload
/// left running is killed before this returns. The process must have a
/// single thread: checked before the clone, an error otherwise.
pub fn run(root: &CgroupRoot, spec: &ExecSpec) -> Result<i32, ExecError> {
    // The run's own host ids come with it, held until its group is ended
    // (below): no process of this run keeps them once another run may
    // lease them.
    let run = run_group::Run::begin(root, &spec.group, spec.has(Namespace::User))?;
    // After `begin`, which may first end abandoned runs: their time is not
    // this run's.
    let account = report::Accounting::start(root, &spec.group, spec.report);
    let result = run_in(root, spec, &run);
    // Read while the run group still exists.
    let told = result
        .as_ref()
        .ok()
        .map(|&code| account.finish(root, &run.group, code));
    if let Err(e) = run.end(root) {
        eprintln!("cgmgr: exec: ending the run: {e}");
    }
    let code = result?;
    eprint!("{}", told.unwrap_or_default());
    Ok(code)
}

fn run_in(root: &CgroupRoot, spec: &ExecSpec, run: &run_group::Run) -> Result<i32, ExecError> {
    let started = start_child(root, spec, run, None)?;
    let code = supervise(started.pid, &started.group_dir, &started.signals);
    // Held open until now: the child polls it to learn whether we died
    // before its death signal was armed.
    drop(started.go);
    Ok(code)
}

/// A child (init) cloned into its run group and let go.
pub(crate) struct Started {
    /// init's pid.
    pub pid: Pid,
    /// The run group's directory: to kill the run if a stop signal is not
    /// enough.
    pub group_dir: OwnedFd,
    /// The go pipe's write end, held open while the run lasts (init polls
    /// it to learn whether the parent died before its death signal was
    /// armed).
    pub go: OwnedFd,
    /// The signals the parent blocked before the clone and now supervises.
    pub signals: nix::sys::signal::SigSet,
}

/// Clones init into the run group, in its namespaces, maps its ids and
/// lets it go. `job`: the socket on which a prepared sandbox's init waits
/// for its command (see [`standby`]); `None` runs `spec`'s own command.
pub(crate) fn start_child(
    root: &CgroupRoot,
    spec: &ExecSpec,
    run: &run_group::Run,
    job: Option<OwnedFd>,
) -> Result<Started, ExecError> {
    // clone3 without a stack, and the child then runs arbitrary code
    // before execve: sound only with no other thread that could hold a
    // lock the child needs (the allocator's, stdio's).
    if let Some(threads) = other_threads() {
        return Err(ExecError::Invalid(format!(
            "cgmgr exec must clone from a single-threaded process; this one has {threads} other thread(s)"
        )));
    }
    let group_dir = run_group_dir(root, run)?;
    let ids = run.ids.as_ref().map(|ids| (ids.base, ids.owner()));
    let (go_read, go_write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("pipe2"))?;
    sigchld_by_default()?;
    // Blocked before the clone: a signal that comes before the parent
    // waits, or before init blocks its own, is queued, not lost. The
    // child's init blocks the same set; the workload clears the mask.
    let signals = supervised_signals();
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_BLOCK,
        Some(&signals),
        None,
    )
    .map_err(sys("sigprocmask"))?;
    match spawn::clone_into(
        spec.clone_flags(),
        group_dir.as_fd(),
        ids.map(|(_, owner)| owner),
    )? {
        spawn::Forked::Child => {
            // The id lease and the run group's lock (owned by `run`) are
            // never dropped here, as the child leaves by exit(): they are
            // on file descriptions the parent shares, and init closes its
            // copies with every fd.
            drop((go_write, group_dir));
            std::process::exit(child_main(spec, go_read, job));
        }
        spawn::Forked::Parent { pid, placed } => {
            drop((go_read, job));
            let id_base = ids.map(|(base, _)| base);
            if let Err(e) = release_child(root, &run.group, pid, placed, id_base, &go_write) {
                let _ = kill(pid, Signal::SIGKILL);
                let _ = waitpid(pid, None);
                return Err(e);
            }
            Ok(Started {
                pid,
                group_dir,
                go: go_write,
                signals,
            })
        }
    }
}

/// How many threads besides this one the process has (`None`: none, or
/// `/proc/self/status` cannot tell, as where /proc is not mounted, which
/// the id maps would fail on anyway).
fn other_threads() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let threads: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))?
        .trim()
        .parse()
        .ok()?;
    (threads > 1).then(|| threads - 1)
}

/// A second descriptor of the run group's directory, for the clone and the
/// supervision's `cgroup.kill`.
fn run_group_dir(root: &CgroupRoot, run: &run_group::Run) -> Result<OwnedFd, ExecError> {
    let fd = nix::fcntl::openat(
        run.dir(),
        ".",
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    );
    fd.map_err(|errno| ExecError::OpenGroup {
        path: root.group_path(&run.group),
        errno,
    })
}

/// Puts SIGCHLD back to its default action before the child is made. A
/// caller that ignores it (the disposition survives execve, and some shells
/// and supervisors leave it so) would make the kernel reap init without
/// telling us, and init, which inherits it, would never learn that the
/// workload exited: the run would hang.
pub(crate) fn sigchld_by_default() -> Result<(), ExecError> {
    init::restore_default_action(Signal::SIGCHLD).map_err(sys("sigaction(SIGCHLD)"))
}

/// Parent side: place the child if the kernel did not, map its ids, let it go.
fn release_child(
    root: &CgroupRoot,
    run: &GroupName,
    pid: Pid,
    placed: bool,
    id_base: Option<u32>,
    go: &OwnedFd,
) -> Result<(), ExecError> {
    // init leads a process group of its own: a signal sent to cgmgr's group
    // (a terminal's ^C) then reaches the run once, forwarded by cgmgr;
    // in cgmgr's group init took it from the group too and passed it on
    // twice. Done before the child is let go, as a shell does for a job.
    nix::unistd::setpgid(pid, pid).map_err(sys("setpgid of the sandbox's init"))?;
    if !placed {
        run_group::place(root, run, pid.as_raw())?;
    }
    if let Some(base) = id_base {
        idmap::write_maps(pid, base)?;
    }
    nix::unistd::write(go, b"1").map_err(sys("releasing the child"))?;
    Ok(())
}

/// How long a run may take to stop after SIGINT, SIGTERM, SIGHUP or
/// SIGQUIT before `cgroup.kill` ends it: a workload may ignore the signal,
/// stop its init (without a pid namespace they share a uid), or trace it.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// The signals the parent passes on to the run, and SIGCHLD. A forwarded
/// signal the caller ignores is left out, so it stays ignored: `nohup cgmgr
/// exec ...` is not ended by a hangup (the workload inherits the ignore).
pub(crate) fn supervised_signals() -> nix::sys::signal::SigSet {
    let mut set = nix::sys::signal::SigSet::empty();
    for sig in init::FORWARDED {
        if !is_ignored(sig) {
            set.add(sig);
        }
    }
    set.add(Signal::SIGCHLD);
    set
}

fn is_ignored(sig: Signal) -> bool {
    ignored(sig as libc::c_int)
}

/// Whether signal `n` (real-time ones included) is ignored here; glibc's
/// internal signals, which it will not tell, count as not ignored.
pub(crate) fn ignored(n: libc::c_int) -> bool {
    // SAFETY: a zeroed sigaction is a valid out-parameter.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only reads the current one into `old`.
    let read = unsafe { libc::sigaction(n, std::ptr::null(), &mut old) };
    read == 0 && old.sa_sigaction == libc::SIG_IGN
}

/// Waits for init to exit and returns its status, forwarding `signals` to
/// it meanwhile (they are blocked, and taken with `sigtimedwait` as init
/// takes its own: no thread); after a stop signal, kills the run group if
/// the run is still there `STOP_GRACE` later.
fn supervise(pid: Pid, run_dir: &OwnedFd, signals: &nix::sys::signal::SigSet) -> i32 {
    let mut run = Supervision::new(pid);
    loop {
        if let Some(code) = run.exited() {
            return code;
        }
        match wait_signal(signals, run.time_left()) {
            Some(sig) => run.on_signal(sig, run_dir),
            None => run.on_timeout(run_dir),
        }
    }
}

/// What the parent knows of a run it supervises: init's pid and the grace
/// period a stop signal started.
pub(crate) struct Supervision {
    pid: Pid,
    grace_until: Option<std::time::Instant>,
    killed: bool,
}

impl Supervision {
    /// A run whose init is `pid`.
    pub(crate) fn new(pid: Pid) -> Supervision {
        Supervision {
            pid,
            grace_until: None,
            killed: false,
        }
    }

    /// init's exit status once it has exited (checked before each wait:
    /// init may exit before the wait begins).
    pub(crate) fn exited(&self) -> Option<i32> {
        loop {
            match waitpid(self.pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                Ok(nix::sys::wait::WaitStatus::StillAlive) => return None,
                Ok(status) => {
                    if let Some(code) = init::exit_code(status) {
                        return Some(code);
                    }
                }
                Err(Errno::EINTR) => {}
                Err(_) => return Some(125),
            }
        }
    }

    /// How long until the grace period ends (`None`: no deadline).
    pub(crate) fn time_left(&self) -> Option<Duration> {
        self.grace_until
            .map(|t| t.saturating_duration_since(std::time::Instant::now()))
    }

    /// Passes `sig` on to init (SIGCHLD: nothing, `exited` tells); a stop
    /// signal starts the grace period.
    pub(crate) fn on_signal(&mut self, sig: Signal, run_dir: &OwnedFd) {
        if sig == Signal::SIGCHLD {
            return;
        }
        let _ = kill(self.pid, sig);
        let stop = matches!(
            sig,
            Signal::SIGINT | Signal::SIGTERM | Signal::SIGHUP | Signal::SIGQUIT
        );
        if stop && self.grace_until.is_none() && !self.killed {
            self.grace_until = Some(std::time::Instant::now() + STOP_GRACE);
        }
        self.on_timeout(run_dir);
    }

    /// Ends the run now, without a word: `cgroup.kill`, and SIGKILL to
    /// init (which ends a pid namespace, also where `cgroup.kill` is
    /// missing).
    pub(crate) fn kill_now(&mut self, run_dir: &OwnedFd) {
        kill_run_group(run_dir);
        let _ = kill(self.pid, Signal::SIGKILL);
        self.killed = true;
    }

    /// Kills the run group once the grace period is over.
    pub(crate) fn on_timeout(&mut self, run_dir: &OwnedFd) {
        if self
            .grace_until
            .is_some_and(|t| std::time::Instant::now() >= t)
        {
            if kill_run_group(run_dir) {
                eprintln!(
                    "cgmgr: exec: the run did not stop within {}s of the signal: killed",
                    STOP_GRACE.as_secs()
                );
            }
            self.grace_until = None;
            self.killed = true;
        }
    }
}

/// One signal of `set` (which must be blocked), or `None` at the timeout
/// (none: wait for ever) or on an interruption.
fn wait_signal(set: &nix::sys::signal::SigSet, timeout: Option<Duration>) -> Option<Signal> {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(t.subsec_nanos()),
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `set` is a valid signal set, the info pointer may be null,
    // and `ts_ptr` is null or points to `ts`, alive for the call.
    let n = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), ts_ptr) };
    Signal::try_from(n).ok()
}

/// `cgroup.kill` through the run group's directory descriptor; true when
/// it was written.
pub(crate) fn kill_run_group(dir: &OwnedFd) -> bool {
    nix::fcntl::openat(
        dir,
        "cgroup.kill",
        nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .and_then(|fd| nix::unistd::write(&fd, b"1"))
    .is_ok()
}

/// Child side (PID 1 of the new PID namespace): returns init's exit status.
fn child_main(spec: &ExecSpec, go: OwnedFd, job: Option<OwnedFd>) -> i32 {
    match child_setup(spec, go, job) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cgmgr: exec: {e}");
            125
        }
    }
}

fn child_setup(spec: &ExecSpec, go: OwnedFd, job: Option<OwnedFd>) -> Result<i32, ExecError> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(sys("prctl(PR_SET_PDEATHSIG)"))?;
    let mut byte = [0u8; 1];
    if nix::unistd::read(&go, &mut byte) != Ok(1) {
        return Ok(125); // the parent died before letting us go
    }
    if spec.has(Namespace::User) {
        let (uid, gid) = (Uid::from_raw(0), Gid::from_raw(0));
        nix::unistd::setresgid(gid, gid, gid).map_err(sys("setresgid(0) in the user namespace"))?;
        nix::unistd::setresuid(uid, uid, uid).map_err(sys("setresuid(0) in the user namespace"))?;
        // A credential change clears the parent-death signal: arm it again,
        // then make sure the parent did not die in between.
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(sys("prctl(PR_SET_PDEATHSIG)"))?;
        if parent_gone(&go) {
            return Ok(125);
        }
    }
    drop(go);
    // Whatever the caller left open (a cgroupfs directory, a policy file,
    // an inherited socket) is closed before the sandbox is built, not only
    // in the workload: init lives as long as the workload does. A prepared
    // sandbox keeps the socket its command comes on.
    let job = match job {
        Some(fd) => Some(workload::close_fds_but(fd)?),
        None => {
            workload::close_fds_from(3)?;
            None
        }
    };
    new_session_keyring()?;
    if spec.has(Namespace::Cgroup) {
        // Now, not at clone: the parent may have placed us only after the
        // clone (kernels without CLONE_INTO_CGROUP), and the namespace's
        // root is the cgroup we are in when it is made: the group.
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
            .map_err(sys("unshare(CLONE_NEWCGROUP)"))?;
    }
    // After the last namespace of our own is made.
    if spec.has(Namespace::User) {
        cap_namespace_quotas(spec.workload.nested_userns)?;
    }
    if spec.has(Namespace::Uts) {
        nix::unistd::sethostname(&spec.hostname)
            .map_err(sys(format!("sethostname({:?})", spec.hostname)))?;
    }
    if spec.has(Namespace::Net) {
        loopback_up()?;
    }
    match &spec.rootfs {
        Some(rootfs) => rootfs::enter(rootfs, spec.switch, spec.readonly_root)?,
        None if spec.has(Namespace::Mount) && spec.has(Namespace::Pid) => rootfs::remount_proc()?,
        None => {}
    }
    if !spec.has(Namespace::Pid) {
        // Not PID 1: become the reaper of the workload's orphans anyway.
        nix::sys::prctl::set_child_subreaper(true).map_err(sys("prctl(PR_SET_CHILD_SUBREAPER)"))?;
    }
    init::block_signals().map_err(sys("sigprocmask"))?;
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

/// Caps what the sandbox may take of kernel quotas that count against the
/// user who created its user namespace (root), so that one run cannot
/// exhaust them for the host: the limits of the sandbox's own user
/// namespace, which its root may set (CAP_SYS_RESOURCE there) and which
/// every nested namespace also obeys. No nested namespaces at all unless
/// `nested_userns = true`.
fn cap_namespace_quotas(nested_userns: bool) -> Result<(), ExecError> {
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
        match std::fs::write(&path, value) {
            Ok(()) => {}
            // A kernel without this limit (time namespaces, older kernels).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ExecError::Sys {
                    what: format!("limiting {path} to {value} in the sandbox's user namespace"),
                    errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
                });
            }
        }
    }
    Ok(())
}

/// Joins a new anonymous session keyring: the caller's keys (kept in its
/// session keyring) are out of the workload's reach.
fn new_session_keyring() -> Result<(), ExecError> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: a NULL name asks for a new anonymous keyring; no other
    // pointer is passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
    if rc < 0 {
        return Err(ExecError::Sys {
            what: "keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL)".into(),
            errno: Errno::last(),
        });
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

/// Brings up `lo` in the new network namespace.
fn loopback_up() -> Result<(), ExecError> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};
    use std::os::fd::AsRawFd;
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(sys("socket for SIOCSIFFLAGS"))?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = src.cast_signed();
    }
    // SAFETY: req is a live ifreq naming "lo"; SIOCGIFFLAGS fills ifru_flags.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } != 0 {
        return Err(ExecError::Sys {
            what: "SIOCGIFFLAGS lo".into(),
            errno: Errno::last(),
        });
    }
    // IFF_UP is 0x1: it fits the short flags field.
    let up = libc::c_short::try_from(libc::IFF_UP).unwrap_or(1);
    // SAFETY: SIOCGIFFLAGS just initialised the flags member of the union.
    unsafe {
        req.ifr_ifru.ifru_flags |= up;
    }
    // SAFETY: req is a live ifreq naming "lo" with the new flags.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } != 0 {
        return Err(ExecError::Sys {
            what: "SIOCSIFFLAGS lo up".into(),
            errno: Errno::last(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test harness runs each test on a thread of its own: this
    /// process is never single-threaded here, and a second thread shows.
    #[test]
    fn other_threads_are_counted() {
        let before = other_threads().unwrap_or(0);
        assert!(before >= 1, "the harness's main thread is another thread");
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || rx.recv());
        assert_eq!(other_threads(), Some(before + 1));
        drop(tx);
        let _ = t.join();
    }

    /// A rootfs under a directory others cannot search is refused, naming
    /// that directory; one whose every step is searchable passes.
    #[test]
    fn a_rootfs_others_cannot_reach_is_named() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("deep/rootfs");
        for d in ["proc", "dev", "tmp"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        let mode = |p: &std::path::Path, m| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        };
        mode(dir.path(), 0o755);
        mode(&dir.path().join("deep"), 0o750);
        let e = check_reachable_by_others(&rootfs).unwrap_err().to_string();
        assert!(
            e.contains(&format!("{} (mode 750)", dir.path().join("deep").display())),
            "{e}"
        );
        mode(&dir.path().join("deep"), 0o751);
        mode(&rootfs.join("tmp"), 0o700);
        let e = check_reachable_by_others(&rootfs).unwrap_err().to_string();
        assert!(e.contains("rootfs/tmp (mode 700)"), "{e}");
        mode(&rootfs.join("tmp"), 0o1777);
        check_reachable_by_others(&rootfs).unwrap();
    }
}
