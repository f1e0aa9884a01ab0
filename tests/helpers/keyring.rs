//! Test helper for the session keyring.
//!
//! - `keyring plant CMD [ARG]...`: joins a new session keyring, adds the key
//!   `user:cgmgr-secret` = `s3cret` to it, then executes CMD (the caller of
//!   `cgmgr exec` holding a secret, as a logged-in user's session does);
//! - `keyring probe`: looks for that key from inside the sandbox, tries to
//!   read it, and prints `found ...` (exit 0) or `absent ...` (exit 1).

use std::ffi::CString;
use std::os::unix::process::CommandExt;

const KEY_SPEC_SESSION_KEYRING: libc::c_long = -3;
const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
const KEYCTL_SEARCH: libc::c_long = 10;
const KEYCTL_READ: libc::c_long = 11;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("plant") if args.len() > 1 => plant(&args[1..]),
        Some("probe") => probe(),
        _ => {
            eprintln!("usage: keyring plant CMD [ARG]... | keyring probe");
            std::process::exit(2);
        }
    }
}

fn plant(cmd: &[String]) {
    // SAFETY: a NULL name asks for a new anonymous session keyring.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
    assert!(rc >= 0, "join: {}", std::io::Error::last_os_error());
    let (kind, desc, secret) = (c"user", c"cgmgr-secret", b"s3cret");
    // SAFETY: NUL-terminated strings and a live payload of the length given.
    let key = unsafe {
        libc::syscall(
            libc::SYS_add_key,
            kind.as_ptr(),
            desc.as_ptr(),
            secret.as_ptr(),
            secret.len(),
            KEY_SPEC_SESSION_KEYRING,
        )
    };
    assert!(key >= 0, "add_key: {}", std::io::Error::last_os_error());
    let err = std::process::Command::new(&cmd[0]).args(&cmd[1..]).exec();
    eprintln!("keyring: exec {}: {err}", cmd[0]);
    std::process::exit(127);
}

fn probe() {
    let (kind, desc) = (
        CString::new("user").unwrap(),
        CString::new("cgmgr-secret").unwrap(),
    );
    // SAFETY: NUL-terminated strings; destination keyring 0 (none).
    let key = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_SEARCH,
            KEY_SPEC_SESSION_KEYRING,
            kind.as_ptr(),
            desc.as_ptr(),
            0,
        )
    };
    if key < 0 {
        println!("absent ({})", std::io::Error::last_os_error());
        std::process::exit(1);
    }
    let mut buf = [0u8; 64];
    // SAFETY: buf is live and its length is passed.
    let n = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_READ,
            key,
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    let payload = usize::try_from(n)
        .map(|n| String::from_utf8_lossy(&buf[..n.min(buf.len())]).into_owned())
        .unwrap_or_else(|_| format!("unreadable: {}", std::io::Error::last_os_error()));
    println!("found key {key}: {payload}");
}
