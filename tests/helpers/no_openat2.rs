//! Test helper: runs a command under a seccomp filter that answers
//! `openat2` with ENOSYS, as systemd's `RestrictSUIDSGID=` filter (from
//! systemd 248) and kernels before 5.6 do, or with EPERM, as that filter
//! did in systemd 247: `no_openat2 [--eperm] CMD [ARG]...`.

use std::os::unix::process::CommandExt;

use libseccomp::{ScmpAction, ScmpFilterContext, ScmpSyscall};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let errno = if args.first().map(String::as_str) == Some("--eperm") {
        args.remove(0);
        libc::EPERM
    } else {
        libc::ENOSYS
    };
    if args.is_empty() {
        eprintln!("usage: no_openat2 [--eperm] CMD [ARG]...");
        std::process::exit(2);
    }
    let mut filter = ScmpFilterContext::new(ScmpAction::Allow).expect("filter");
    filter
        .add_rule(
            ScmpAction::Errno(errno),
            ScmpSyscall::from_name("openat2").expect("openat2"),
        )
        .expect("rule");
    filter.load().expect("loading the filter");
    let err = std::process::Command::new(&args[0]).args(&args[1..]).exec();
    eprintln!("no_openat2: {}: {err}", args[0]);
    std::process::exit(127);
}
