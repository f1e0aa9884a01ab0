//! Test helper: what a host user who runs a file a sandbox left (a setuid
//! copy of this program, say) can do to a sandbox: `ns_intruder PID` tries
//! to join the user namespace, then the mount namespace, of process PID and
//! to open its root, and prints one line per step with the kernel's answer
//! and this process's ids. Exit status 0 when it got into the user
//! namespace, 1 when every step was refused, 2 on bad usage.

use std::os::fd::AsFd;

fn ids() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .filter(|l| l.starts_with("Uid:") || l.starts_with("CapEff:"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("; ")
}

fn join(pid: &str, ns: &str, flag: nix::sched::CloneFlags) -> bool {
    let path = format!("/proc/{pid}/ns/{ns}");
    let result = std::fs::File::open(&path)
        .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0)))
        .and_then(|f| nix::sched::setns(f.as_fd(), flag));
    match result {
        Ok(()) => println!("ns_intruder: setns {ns}: joined ({})", ids()),
        Err(e) => println!("ns_intruder: setns {ns}: refused: {e}"),
    }
    result.is_ok()
}

fn main() {
    let Some(pid) = std::env::args().nth(1) else {
        eprintln!("usage: ns_intruder PID");
        std::process::exit(2);
    };
    println!("ns_intruder: start ({})", ids());
    match std::fs::read_dir(format!("/proc/{pid}/root/")) {
        Ok(_) => println!("ns_intruder: /proc/{pid}/root: opened"),
        Err(e) => println!("ns_intruder: /proc/{pid}/root: refused: {e}"),
    }
    let user = join(&pid, "user", nix::sched::CloneFlags::CLONE_NEWUSER);
    if user {
        join(&pid, "mnt", nix::sched::CloneFlags::CLONE_NEWNS);
    }
    std::process::exit(if user { 0 } else { 1 });
}
