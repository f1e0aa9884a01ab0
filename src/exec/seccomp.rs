//! The workload's seccomp filters: the default ones compiled once by the
//! build script (`seccomp_rules`), a profile compiled in the parent before
//! anything is created (one libseccomp rejects is an error, not a late
//! crash); loaded by the workload as its very last step before `execve`.
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

pub use super::seccomp_rules::{
    CLONE_NAMESPACE_FLAGS, DEFAULT_ALLOW, PERSONALITIES, SOCKET_FAMILIES_REFUSED, TTY_INJECTION,
};

/// Why libseccomp refused to compile an OCI profile.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// Creating the filter with the profile's default action failed.
    #[error("{error}")]
    Create {
        /// libseccomp's answer.
        error: libseccomp::error::SeccompError,
    },
    /// Setting the action for calls through another architecture's ABI
    /// failed.
    #[error("{error}")]
    BadArch {
        /// libseccomp's answer.
        error: libseccomp::error::SeccompError,
    },
    /// Adding the profile's rule for a system call failed.
    #[error("rule for {name}: {error}")]
    Rule {
        /// The call's name, as the profile spells it.
        name: String,
        /// libseccomp's answer.
        error: libseccomp::error::SeccompError,
    },
}

/// BPF programs to load, in order.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    programs: Vec<Vec<libc::sock_filter>>,
    /// cgmgr's own filters (or none): known to allow what cgmgr itself
    /// does between loading them and `execve`. A profile may refuse it.
    own: bool,
}

impl Filters {
    /// How many filters.
    pub fn len(&self) -> usize {
        self.programs.len()
    }

    /// True for the default filters and for none: cgmgr's own code may run
    /// under them (they allow every call it makes to receive a command,
    /// take its stdio, set limits and execute).
    pub fn allow_cgmgr(&self) -> bool {
        self.own
    }

    /// True for `seccomp = "unconfined"`.
    pub fn is_empty(&self) -> bool {
        self.programs.is_empty()
    }

    /// Loads every filter into the calling thread; needs no_new_privs (or
    /// CAP_SYS_ADMIN). After this, only what the filters allow works.
    pub fn load(&self) -> Result<(), ExecError> {
        for (i, program) in self.programs.iter().enumerate() {
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

/// The filters for `setting`: the default ones as the build compiled them,
/// a profile compiled now.
pub fn compile(setting: &Seccomp, nested_userns: bool) -> Result<Filters, ExecError> {
    let arguments = program_from_bytes(PRECOMPILED_ARGUMENTS);
    match setting {
        Seccomp::Unconfined => Ok(Filters {
            programs: Vec::new(),
            own: true,
        }),
        Seccomp::Default => {
            let allow = if nested_userns {
                PRECOMPILED_DEFAULT_NESTED
            } else {
                PRECOMPILED_DEFAULT
            };
            Ok(Filters {
                programs: vec![program_from_bytes(allow), arguments],
                own: true,
            })
        }
        Seccomp::Profile { path, profile } => {
            let ctx = profile_filter(profile).map_err(|e| {
                ExecError::Invalid(format!("seccomp profile {}: {e}", path.display()))
            })?;
            Ok(Filters {
                programs: vec![export(&ctx)?, arguments],
                own: false,
            })
        }
    }
}

/// The default filters, compiled by the build script from `seccomp_rules`.
const PRECOMPILED_DEFAULT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/seccomp-default.bpf"));
const PRECOMPILED_DEFAULT_NESTED: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/seccomp-default-nested.bpf"));
const PRECOMPILED_ARGUMENTS: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/seccomp-arguments.bpf"));

/// BPF instructions from their 8-byte native encoding.
fn program_from_bytes(bytes: &[u8]) -> Vec<libc::sock_filter> {
    bytes
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect()
}

fn lib_err(what: &str) -> impl FnOnce(libseccomp::error::SeccompError) -> ExecError + '_ {
    move |e| ExecError::Invalid(format!("seccomp: {what}: {e}"))
}

fn profile_filter(p: &OciProfile) -> Result<ScmpFilterContext, ProfileError> {
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
    let mut f = ScmpFilterContext::new(default).map_err(|error| ProfileError::Create { error })?;
    f.set_act_badarch(ScmpAction::KillProcess)
        .map_err(|error| ProfileError::BadArch { error })?;
    // Left a linear chain, unlike the default filter (built as a binary
    // tree at build time): a profile is compiled on every run, and building
    // the tree costs libseccomp more than the shorter walk saves the kernel
    // when it attaches the filter (measured: 0.2 ms slower per run with a
    // 355-call allow-list).
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
                .map_err(|error| ProfileError::Rule {
                    name: name.clone(),
                    error,
                })?;
        }
    }
    Ok(f)
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
    Ok(program_from_bytes(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_compiles_to_two_filters_and_unconfined_to_none() {
        let f = compile(&Seccomp::Default, false).unwrap();
        assert_eq!(f.len(), 2);
        assert!(f.programs.iter().all(|p| !p.is_empty() && p.len() < 4096));
        assert!(compile(&Seccomp::Unconfined, false).unwrap().is_empty());
    }

    /// The programs built into the binary are what the rules compile to now.
    #[test]
    fn precompiled_programs_match_the_rules() {
        use super::super::seccomp_rules;
        let fresh = |ctx: Result<ScmpFilterContext, seccomp_rules::RuleError>| {
            export(&ctx.unwrap()).unwrap()
        };
        let same = |a: &[libc::sock_filter], b: &[libc::sock_filter]| {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|(x, y)| (x.code, x.jt, x.jf, x.k) == (y.code, y.jt, y.jf, y.k))
        };
        assert!(same(
            &fresh(seccomp_rules::default_filter(false)),
            &program_from_bytes(PRECOMPILED_DEFAULT)
        ));
        assert!(same(
            &fresh(seccomp_rules::default_filter(true)),
            &program_from_bytes(PRECOMPILED_DEFAULT_NESTED)
        ));
        assert!(same(
            &fresh(seccomp_rules::argument_filter()),
            &program_from_bytes(PRECOMPILED_ARGUMENTS)
        ));
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

    /// Loads `filters` in a forked child (after `no_new_privs`), runs
    /// `probe` there and returns the child's exit code: `probe`'s bits, or
    /// 10 when the filters did not load. The parent only waits.
    fn probe_under(filters: &Filters, probe: impl FnOnce() -> i32) -> i32 {
        // SAFETY: the child only makes raw system calls and exits; it does
        // not allocate or take locks the parent's other threads may hold.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                // SAFETY: no pointers.
                unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
                let code = if filters.load().is_err() { 10 } else { probe() };
                // SAFETY: _exit is always safe.
                unsafe { libc::_exit(code) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                match nix::sys::wait::waitpid(child, None).unwrap() {
                    nix::sys::wait::WaitStatus::Exited(_, code) => code,
                    other => panic!("the probe did not exit: {other:?}"),
                }
            }
        }
    }

    fn errno() -> i32 {
        nix::errno::Errno::last_raw()
    }

    /// An OCI profile (compiled now) does what it says: the refused calls
    /// fail with its errno, the rest run.
    #[test]
    fn a_loaded_profile_refuses_its_calls_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        std::fs::write(
            &path,
            r#"{"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
        )
        .unwrap();
        let profile = crate::policy::seccomp::read_profile(&path).unwrap();
        let filters = compile(&Seccomp::Profile { path, profile }, false).unwrap();
        let target = c"/nonexistent-parent/x";
        let code = probe_under(&filters, || {
            let mut code = 0;
            // SAFETY: a valid C string and integer arguments.
            unsafe {
                // Refused by the filter: EACCES, not the kernel's ENOENT.
                if libc::mkdir(target.as_ptr(), 0o700) != -1 || errno() != libc::EACCES {
                    code |= 1;
                }
                // Allowed: the kernel's own answer.
                if libc::rmdir(target.as_ptr()) != -1 || errno() != libc::ENOENT {
                    code |= 2;
                }
                if libc::syscall(libc::SYS_getpid) <= 0 {
                    code |= 4;
                }
            }
            code
        });
        assert_eq!(
            code, 0,
            "bits: 1 mkdir not refused, 2 rmdir refused, 4 getpid; 10 load"
        );
    }

    /// The filters do what they say: a forked child loads them and tries
    /// the calls. Runs as any user.
    #[test]
    fn loaded_filters_refuse_and_allow() {
        let filters = compile(&Seccomp::Default, false).unwrap();
        let code = probe_under(&filters, || {
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
            }
            code
        });
        assert_eq!(
            code, 0,
            "bits: 1 keyctl, 2 unshare, 4 TIOCSTI with high bits, 8 clone3, 16 getpid, 32 AF_PACKET with high bits, 64 AF_VSOCK; 10 load"
        );
    }
    /// No file the workload makes or changes can carry the setuid or
    /// setgid bit, under the default filters and under any profile (the
    /// second filter goes with both): such a file would give whoever runs
    /// it outside the sandbox the run's host ids. io_uring, which could
    /// create one from memory no filter reads, is refused too.
    #[test]
    fn setuid_and_setgid_bits_are_refused_with_any_profile() {
        let dir = tempfile::tempdir().unwrap();
        let profile_path = dir.path().join("allow-all.json");
        std::fs::write(&profile_path, r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#).unwrap();
        let profile = crate::policy::seccomp::read_profile(&profile_path).unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let c = |p: &std::path::Path| std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        let (f, new, node) = (
            c(&file),
            c(&dir.path().join("new")),
            c(&dir.path().join("node")),
        );
        for setting in [
            Seccomp::Default,
            Seccomp::Profile {
                path: profile_path.clone(),
                profile: profile.clone(),
            },
        ] {
            let filters = compile(&setting, false).unwrap();
            let code = probe_under(&filters, || {
                let mut code = 0;
                let refused = |rc: libc::c_long| rc == -1 && errno() == libc::EPERM;
                // SAFETY: valid C strings and integer arguments.
                unsafe {
                    if !refused(libc::chmod(f.as_ptr(), 0o4755).into()) {
                        code |= 1;
                    }
                    if !refused(libc::chmod(f.as_ptr(), 0o2755).into()) {
                        code |= 2;
                    }
                    if libc::chmod(f.as_ptr(), 0o1755) != 0 {
                        code |= 4;
                    }
                    let creat = libc::O_CREAT | libc::O_WRONLY;
                    let opened = libc::syscall(
                        libc::SYS_openat,
                        libc::AT_FDCWD,
                        new.as_ptr(),
                        creat,
                        0o6755,
                    );
                    if !refused(opened) {
                        code |= 8;
                    }
                    let fd = libc::open(f.as_ptr(), libc::O_RDONLY);
                    if !refused(libc::fchmod(fd, 0o4700).into()) {
                        code |= 16;
                    }
                    let at2 = libc::syscall(452, libc::AT_FDCWD, f.as_ptr(), 0o4755, 0);
                    if !refused(at2) {
                        code |= 32;
                    }
                    let mode = libc::S_IFREG | 0o4755;
                    if !refused(libc::mknodat(libc::AT_FDCWD, node.as_ptr(), mode, 0).into()) {
                        code |= 64;
                    }
                    let how = [0u64; 3];
                    let o2 = libc::syscall(
                        libc::SYS_openat2,
                        libc::AT_FDCWD,
                        f.as_ptr(),
                        how.as_ptr(),
                        24,
                    );
                    if o2 != -1 || errno() != libc::ENOSYS {
                        code |= 128;
                    }
                }
                code
            });
            assert_eq!(
                code, 0,
                "{setting:?}: bits: 1 chmod u+s, 2 chmod g+s, 4 chmod +t refused, 8 openat O_CREAT 06755, 16 fchmod u+s, 32 fchmodat2 u+s, 64 mknodat u+s, 128 openat2 not ENOSYS; 10 load"
            );
            // Exit codes hold 8 bits: io_uring in a probe of its own.
            let code = probe_under(&filters, || {
                let params = [0u8; 120];
                // SAFETY: a live, zeroed io_uring_params of its size.
                let rc = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4, params.as_ptr()) };
                i32::from(!(rc == -1 && errno() == libc::EPERM))
            });
            assert_eq!(code, 0, "{setting:?}: io_uring_setup not refused");
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o7000, 0o1000, "only the sticky bit was set");
        assert!(!dir.path().join("new").exists() && !dir.path().join("node").exists());
    }
}
