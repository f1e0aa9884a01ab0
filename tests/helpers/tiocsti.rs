//! Test helper: tries to push a character into the input queue of the
//! terminal on stdin (TIOCSTI), the way a sandboxed process would try to
//! type commands into the shell that started it. Prints the outcome;
//! exits 0 if the injection worked, 1 if it was refused. With `--take`, it
//! first makes that terminal its controlling one (TIOCSCTTY), as a session
//! leader can with a terminal no session owns.

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--take") {
        // SAFETY: TIOCSCTTY takes an integer argument, no pointer.
        let rc = unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) };
        let outcome = if rc == 0 {
            "taken".to_string()
        } else {
            std::io::Error::last_os_error().to_string()
        };
        println!("TIOCSCTTY: {outcome}");
    }
    let byte: libc::c_char = 0;
    // SAFETY: TIOCSTI reads one byte from the pointer, which is live.
    let rc = unsafe { libc::ioctl(0, libc::TIOCSTI, &byte) };
    if rc == 0 {
        println!("TIOCSTI: injected");
        std::process::exit(0);
    }
    println!("TIOCSTI: refused ({})", std::io::Error::last_os_error());
    std::process::exit(1);
}
