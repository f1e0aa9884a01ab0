//! The workload's seccomp filters: compiled in the parent before anything
//! is created (a profile libseccomp rejects is an error, not a late crash),
//! loaded by the workload as its very last step before `execve`.
//!
//! libseccomp (through the `libseccomp` crate) compiles them: it is what
//! runc, crun and youki use for OCI profiles, so a profile means here what it
//! means there (name resolution per architecture, argument comparisons,
//! every action). cgmgr exports the BPF and loads it itself with
//! `seccomp(SECCOMP_SET_MODE_FILTER)`, so the workload process runs no
//! library code between fork and exec.
//!
//! The default is two filters; the kernel applies both, the stricter answer
//! wins:
//! 1. an allow-list of system calls, Docker's default profile without the
//!    calls it grants only with capabilities the workload never holds, and
//!    stricter where Docker is lenient: `keyctl`, `add_key`, `request_key`,
//!    `userfaultfd`, `io_uring_*`, `name_to_handle_at` are refused; `clone`
//!    only without namespace flags and `unshare` not at all, unless
//!    `nested_userns = true`; `clone3` answers ENOSYS (its flags live in
//!    memory a filter cannot read; libc falls back to `clone`); `personality`
//!    only to the values Docker allows; calls through another architecture's
//!    ABI kill the process;
//! 2. argument checks on the low 32 bits the kernel actually reads:
//!    `ioctl(TIOCSTI)` and `ioctl(TIOCLINUX)` (typing into a terminal) and
//!    `socket(AF_PACKET)`, `socket(AF_VSOCK)` answer EPERM.
//!
//! A filter is a list of BPF instructions, 8 bytes each.

use std::io::{Read, Seek};

use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};

use crate::policy::seccomp::{OciAction, OciOp, OciProfile, Seccomp};

use super::error::ExecError;

/// System calls the default filter allows without conditions.
pub const DEFAULT_ALLOW: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "arch_prctl",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "modify_ldt",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "ptrace",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socket",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
];

/// `personality` values the default filter allows (Docker's): PER_LINUX,
/// PER_LINUX32, UNAME26, UNAME26|PER_LINUX32, and the query 0xffffffff.
pub const PERSONALITIES: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// Every `CLONE_NEW*` flag: `clone` with any of them is refused by default.
pub const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

/// `ioctl` requests refused: TIOCSTI (push a character into a terminal's
/// input) and TIOCLINUX (the console's selection buffer does the same).
pub const TTY_INJECTION: [u64; 2] = [0x5412, 0x541C];

/// Socket families refused: AF_PACKET (raw frames) and AF_VSOCK (the host's
/// hypervisor sockets).
pub const SOCKET_FAMILIES_REFUSED: [u64; 2] = [17, 40];

/// BPF programs to load, in order.
#[derive(Debug, Clone, Default)]
pub struct Filters(Vec<Vec<libc::sock_filter>>);

impl Filters {
    /// How many filters.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for `seccomp = "unconfined"`.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Loads every filter into the calling thread; needs no_new_privs (or
    /// CAP_SYS_ADMIN). After this, only what the filters allow works.
    pub fn load(&self) -> Result<(), ExecError> {
        for (i, program) in self.0.iter().enumerate() {
            let fprog = libc::sock_fprog {
                len: u16::try_from(program.len()).map_err(|_| {
                    ExecError::Invalid(format!(
                        "seccomp filter {i} has {} instructions, more than BPF allows",
                        program.len()
                    ))
                })?,
                filter: program.as_ptr().cast_mut(),
            };
            // SAFETY: fprog points to `len` live instructions for the call's
            // duration; the kernel copies them.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    0u32,
                    std::ptr::from_ref(&fprog),
                )
            };
            if rc != 0 {
                return Err(ExecError::Sys {
                    what: format!("seccomp(SECCOMP_SET_MODE_FILTER) of filter {i}"),
                    errno: nix::errno::Errno::last(),
                });
            }
        }
        Ok(())
    }
}

/// Compiles the filters for `setting`.
pub fn compile(setting: &Seccomp, nested_userns: bool) -> Result<Filters, ExecError> {
    let contexts = match setting {
        Seccomp::Unconfined => Vec::new(),
        Seccomp::Default => vec![default_filter(nested_userns)?, argument_filter()?],
        Seccomp::Profile { path, profile } => vec![
            profile_filter(profile).map_err(|e| {
                ExecError::Invalid(format!("seccomp profile {}: {e}", path.display()))
            })?,
            argument_filter()?,
        ],
    };
    contexts
        .iter()
        .map(export)
        .collect::<Result<Vec<_>, _>>()
        .map(Filters)
}

fn lib_err(what: &str) -> impl FnOnce(libseccomp::error::SeccompError) -> ExecError + '_ {
    move |e| ExecError::Invalid(format!("seccomp: {what}: {e}"))
}

fn default_filter(nested_userns: bool) -> Result<ScmpFilterContext, ExecError> {
    let mut f = ScmpFilterContext::new(ScmpAction::Errno(libc::EPERM))
        .map_err(lib_err("creating the default filter"))?;
    f.set_act_badarch(ScmpAction::KillProcess)
        .map_err(lib_err("bad-architecture action"))?;
    for name in DEFAULT_ALLOW {
        // Names of another architecture (`_llseek`, `socketcall`...) do
        // not resolve here: nothing to allow.
        if let Ok(nr) = ScmpSyscall::from_name(name) {
            f.add_rule(ScmpAction::Allow, nr)
                .map_err(lib_err(&format!("allowing {name}")))?;
        }
    }
    let personality = syscall("personality")?;
    for value in PERSONALITIES {
        f.add_rule_conditional(
            ScmpAction::Allow,
            personality,
            &[ScmpArgCompare::new(0, ScmpCompareOp::Equal, value)],
        )
        .map_err(lib_err("allowing personality"))?;
    }
    let clone = syscall("clone")?;
    if nested_userns {
        f.add_rule(ScmpAction::Allow, clone)
            .map_err(lib_err("allowing clone"))?;
        f.add_rule(ScmpAction::Allow, syscall("unshare")?)
            .map_err(lib_err("allowing unshare"))?;
    } else {
        f.add_rule_conditional(
            ScmpAction::Allow,
            clone,
            &[ScmpArgCompare::new(
                0,
                ScmpCompareOp::MaskedEqual(CLONE_NAMESPACE_FLAGS),
                0,
            )],
        )
        .map_err(lib_err("allowing clone without namespace flags"))?;
    }
    f.add_rule(ScmpAction::Errno(libc::ENOSYS), syscall("clone3")?)
        .map_err(lib_err("clone3"))?;
    Ok(f)
}

/// Allows everything except the argument values the default refuses,
/// compared on the low 32 bits (the kernel reads these arguments as `int`:
/// a value with high bits set must not slip past a 64-bit comparison).
fn argument_filter() -> Result<ScmpFilterContext, ExecError> {
    let mut f = ScmpFilterContext::new(ScmpAction::Allow)
        .map_err(lib_err("creating the argument filter"))?;
    let low32 = ScmpCompareOp::MaskedEqual(0xffff_ffff);
    for (name, index, values) in [
        ("ioctl", 1, &TTY_INJECTION),
        ("socket", 0, &SOCKET_FAMILIES_REFUSED),
    ] {
        let nr = syscall(name)?;
        for value in values {
            f.add_rule_conditional(
                ScmpAction::Errno(libc::EPERM),
                nr,
                &[ScmpArgCompare::new(index, low32, *value)],
            )
            .map_err(lib_err(&format!("refusing {name} {value:#x}")))?;
        }
    }
    Ok(f)
}

fn profile_filter(p: &OciProfile) -> Result<ScmpFilterContext, String> {
    let errno = |ret: Option<u32>| i32::try_from(ret.unwrap_or(1)).unwrap_or(libc::EPERM);
    let action = |a: OciAction, ret: Option<u32>| match a {
        OciAction::SCMP_ACT_KILL | OciAction::SCMP_ACT_KILL_THREAD => ScmpAction::KillThread,
        OciAction::SCMP_ACT_KILL_PROCESS => ScmpAction::KillProcess,
        OciAction::SCMP_ACT_TRAP => ScmpAction::Trap,
        OciAction::SCMP_ACT_ERRNO => ScmpAction::Errno(errno(ret)),
        OciAction::SCMP_ACT_TRACE => ScmpAction::Trace(u16::try_from(errno(ret)).unwrap_or(1)),
        OciAction::SCMP_ACT_ALLOW => ScmpAction::Allow,
        OciAction::SCMP_ACT_LOG => ScmpAction::Log,
    };
    let default = action(p.default_action, p.default_errno_ret);
    let mut f = ScmpFilterContext::new(default).map_err(|e| e.to_string())?;
    f.set_act_badarch(ScmpAction::KillProcess)
        .map_err(|e| e.to_string())?;
    for rule in &p.syscalls {
        let act = action(rule.action, rule.errno_ret);
        if act == default {
            continue; // libseccomp refuses rules that repeat the default
        }
        let conditions: Vec<ScmpArgCompare> = rule
            .args
            .iter()
            .map(|a| {
                let op = match a.op {
                    OciOp::SCMP_CMP_NE => ScmpCompareOp::NotEqual,
                    OciOp::SCMP_CMP_LT => ScmpCompareOp::Less,
                    OciOp::SCMP_CMP_LE => ScmpCompareOp::LessOrEqual,
                    OciOp::SCMP_CMP_EQ => ScmpCompareOp::Equal,
                    OciOp::SCMP_CMP_GE => ScmpCompareOp::GreaterEqual,
                    OciOp::SCMP_CMP_GT => ScmpCompareOp::Greater,
                    OciOp::SCMP_CMP_MASKED_EQ => ScmpCompareOp::MaskedEqual(a.value),
                };
                let datum = if a.op == OciOp::SCMP_CMP_MASKED_EQ {
                    a.value_two
                } else {
                    a.value
                };
                ScmpArgCompare::new(a.index, op, datum)
            })
            .collect();
        for name in &rule.names {
            let Ok(nr) = ScmpSyscall::from_name(name) else {
                continue; // not a syscall of this architecture, as runc does
            };
            f.add_rule_conditional(act, nr, &conditions)
                .map_err(|e| format!("rule for {name}: {e}"))?;
        }
    }
    Ok(f)
}

fn syscall(name: &str) -> Result<ScmpSyscall, ExecError> {
    ScmpSyscall::from_name(name).map_err(lib_err(name))
}

/// The BPF program of a filter context, through a memfd (libseccomp 2.5
/// exports to a descriptor only).
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>, ExecError> {
    let fd =
        nix::sys::memfd::memfd_create(c"cgmgr-seccomp", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .map_err(super::error::sys("memfd_create for the seccomp filter"))?;
    ctx.export_bpf(&fd)
        .map_err(lib_err("exporting the filter"))?;
    let mut file = std::fs::File::from(fd);
    let mut bytes = Vec::new();
    file.rewind()
        .and_then(|()| file.read_to_end(&mut bytes))
        .map_err(|e| ExecError::Invalid(format!("seccomp: reading the exported filter: {e}")))?;
    Ok(bytes
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_compiles_to_two_filters_and_unconfined_to_none() {
        let f = compile(&Seccomp::Default, false).unwrap();
        assert_eq!(f.len(), 2);
        assert!(f.0.iter().all(|p| !p.is_empty() && p.len() < 4096));
        assert!(compile(&Seccomp::Unconfined, false).unwrap().is_empty());
    }

    #[test]
    fn refused_calls_are_not_in_the_allow_list() {
        for name in [
            "keyctl",
            "add_key",
            "request_key",
            "unshare",
            "clone3",
            "userfaultfd",
            "mount",
            "umount2",
            "pivot_root",
            "setns",
            "bpf",
            "perf_event_open",
            "kexec_load",
            "init_module",
            "finit_module",
            "delete_module",
            "reboot",
            "swapon",
            "acct",
            "open_by_handle_at",
            "name_to_handle_at",
            "io_uring_setup",
            "chroot",
            "syslog",
            "process_vm_readv",
            "process_vm_writev",
            "fsopen",
            "move_mount",
            "open_tree",
        ] {
            assert!(!DEFAULT_ALLOW.contains(&name), "{name}");
        }
        let mut sorted = DEFAULT_ALLOW.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            DEFAULT_ALLOW.len(),
            "duplicates in DEFAULT_ALLOW"
        );
    }

    /// The filters do what they say: a forked child loads them and tries
    /// the calls (the parent only waits). Runs as any user.
    #[test]
    fn loaded_filters_refuse_and_allow() {
        let filters = compile(&Seccomp::Default, false).unwrap();
        // SAFETY: the child only makes raw system calls and exits; it does
        // not allocate or take locks the parent's other threads may hold.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                // SAFETY: no pointers.
                unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
                if filters.load().is_err() {
                    // SAFETY: _exit is always safe.
                    unsafe { libc::_exit(10) };
                }
                let errno = || nix::errno::Errno::last_raw();
                let mut code = 0;
                // SAFETY: raw calls with integer arguments or NULL pointers;
                // each is refused by the filter before the kernel reads them.
                unsafe {
                    if libc::syscall(libc::SYS_keyctl, 0, 0, 0) != -1 || errno() != libc::EPERM {
                        code |= 1;
                    }
                    if libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER) != -1
                        || errno() != libc::EPERM
                    {
                        code |= 2;
                    }
                    let sti = (1u64 << 32) | 0x5412;
                    if libc::syscall(libc::SYS_ioctl, 0, sti, 0) != -1 || errno() != libc::EPERM {
                        code |= 4;
                    }
                    if libc::syscall(libc::SYS_clone3, 0, 0) != -1 || errno() != libc::ENOSYS {
                        code |= 8;
                    }
                    if libc::syscall(libc::SYS_getpid) <= 0 {
                        code |= 16;
                    }
                    let packet = (1i64 << 32) | i64::from(libc::AF_PACKET);
                    if libc::syscall(libc::SYS_socket, packet, libc::SOCK_RAW, 0) != -1
                        || errno() != libc::EPERM
                    {
                        code |= 32;
                    }
                    if libc::syscall(libc::SYS_socket, libc::AF_VSOCK, libc::SOCK_STREAM, 0) != -1
                        || errno() != libc::EPERM
                    {
                        code |= 64;
                    }
                    libc::_exit(code);
                }
            }
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(
                    status,
                    nix::sys::wait::WaitStatus::Exited(child, 0),
                    "bits: 1 keyctl, 2 unshare, 4 TIOCSTI with high bits, 8 clone3, 16 getpid, 32 AF_PACKET with high bits, 64 AF_VSOCK; 10 load"
                );
            }
        }
    }
}
