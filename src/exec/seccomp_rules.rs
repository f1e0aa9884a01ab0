//! The rules of cgmgr's default seccomp filters, shared by the build
//! script (which compiles them once into BPF, so that `cgmgr exec` does not
//! spend milliseconds in libseccomp on every run) and by the tests that check
//! the compiled programs against a fresh compilation. Depends only on
//! `libseccomp`, `libc` and `thiserror`.

use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};

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

/// The setuid and setgid mode bits (`S_ISUID`, `S_ISGID`): a file a run
/// marks with them would give whoever runs it outside the sandbox the
/// run's host ids.
pub const SET_ID_BITS: [u64; 2] = [0o4000, 0o2000];

/// Calls that take a file mode, and the index of their mode argument.
pub const MODE_ARGUMENTS: [(&str, u32); 8] = [
    ("chmod", 1),
    ("fchmod", 1),
    ("fchmodat", 2),
    ("creat", 1),
    ("open", 2),
    ("openat", 3),
    ("mknod", 1),
    ("mknodat", 2),
];

/// `fchmodat2` (Linux 6.6), by number: the same on every architecture
/// with the unified syscall table, and unknown by name to libseccomp
/// before 2.5.5. Its mode is argument 2.
pub const FCHMODAT2: i32 = 452;

/// `io_uring_setup`, `io_uring_enter`, `io_uring_register` (Linux 5.1), by
/// number: the same on every architecture with the unified syscall table.
pub const IO_URING: [(i32, &str); 3] = [
    (425, "io_uring_setup"),
    (426, "io_uring_enter"),
    (427, "io_uring_register"),
];

/// The first default filter: the allow-list.
pub fn default_filter(nested_userns: bool) -> Result<ScmpFilterContext, RuleError> {
    let mut f = ScmpFilterContext::new(ScmpAction::Errno(libc::EPERM))
        .map_err(lib_err("creating the default filter"))?;
    f.set_act_badarch(ScmpAction::KillProcess)
        .map_err(lib_err("bad-architecture action"))?;
    f.set_ctl_optimize(2).map_err(lib_err("binary tree"))?;
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
pub fn argument_filter() -> Result<ScmpFilterContext, RuleError> {
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
    let with_mode = MODE_ARGUMENTS
        .iter()
        // Calls another architecture does not have (`open`, `creat` on
        // arm64): nothing to refuse.
        .filter_map(|(name, index)| ScmpSyscall::from_name(name).ok().map(|nr| (nr, *index)))
        .chain([(ScmpSyscall::from(FCHMODAT2), 2)]);
    for (nr, index) in with_mode {
        for bit in SET_ID_BITS {
            f.add_rule_conditional(
                ScmpAction::Errno(libc::EPERM),
                nr,
                &[ScmpArgCompare::new(
                    index,
                    ScmpCompareOp::MaskedEqual(bit),
                    bit,
                )],
            )
            .map_err(lib_err(&format!("refusing mode bit {bit:#o}")))?;
        }
    }
    // Its mode is inside `struct open_how`, which a filter cannot read:
    // ENOSYS makes callers fall back to openat, whose mode it can.
    f.add_rule(ScmpAction::Errno(libc::ENOSYS), syscall("openat2")?)
        .map_err(lib_err("openat2"))?;
    // io_uring opens, creates and changes files from a queue in memory no
    // filter sees (IORING_OP_OPENAT takes a mode): refused with every
    // profile too, or a profile that allows it would make setuid files.
    for (nr, name) in IO_URING {
        f.add_rule(ScmpAction::Errno(libc::EPERM), ScmpSyscall::from(nr))
            .map_err(lib_err(name))?;
    }
    Ok(f)
}

/// Why libseccomp refused one of the default filters' rules.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// A step of building a filter (creating it, setting an attribute,
    /// adding a rule) failed.
    #[error("seccomp: {what}: {error}")]
    Rule {
        /// The step, with the call and value it concerns.
        what: String,
        /// libseccomp's answer.
        error: libseccomp::error::SeccompError,
    },
    /// A system call the rules name is unknown to libseccomp on this
    /// architecture.
    #[error("seccomp: {name}: {error}")]
    Syscall {
        /// The call's name.
        name: String,
        /// libseccomp's answer.
        error: libseccomp::error::SeccompError,
    },
}

fn lib_err(what: &str) -> impl FnOnce(libseccomp::error::SeccompError) -> RuleError + '_ {
    move |error| RuleError::Rule {
        what: what.to_string(),
        error,
    }
}

fn syscall(name: &str) -> Result<ScmpSyscall, RuleError> {
    ScmpSyscall::from_name(name).map_err(|error| RuleError::Syscall {
        name: name.to_string(),
        error,
    })
}
