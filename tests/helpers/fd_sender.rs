//! Test helper: a hostile client of the daemon's exec socket that sends
//! descriptors: `fd_sender SOCKET COUNT` connects COUNT times and sends one
//! message each, a request the daemon does not know carrying 200
//! descriptors of `/dev/null`, then reads the answer. Prints one line:
//! how many messages the kernel took, how many it refused and why (a
//! socket that refuses descriptors, `SO_PASSRIGHTS` from Linux 6.16, makes
//! `sendmsg` fail with EPERM), and how many connections got an answer.
//! Exit status 0, or 2 on bad usage or when it cannot connect at all.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, RawFd};

use nix::sys::socket::{
    AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr, connect, recv, sendmsg,
    socket,
};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(path), Some(count)) = (
        args.first(),
        args.get(1).and_then(|n| n.parse::<u32>().ok()),
    ) else {
        eprintln!("usage: fd_sender SOCKET COUNT");
        std::process::exit(2);
    };
    let files: Vec<std::fs::File> = (0..200)
        .map(|_| std::fs::File::open("/dev/null").expect("/dev/null"))
        .collect();
    let fds: Vec<RawFd> = files.iter().map(|f| f.as_raw_fd()).collect();
    let addr = UnixAddr::new(path.as_str()).expect("socket path");
    let (mut sent, mut refused, mut answered, mut last_error) = (0, 0, 0, String::new());
    for _ in 0..count {
        let sock = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .expect("socket");
        if let Err(e) = connect(sock.as_raw_fd(), &addr) {
            eprintln!("fd_sender: connect {path}: {e}");
            std::process::exit(2);
        }
        let payload = br#"{"v":3,"type":"no such request"}"#;
        let cmsg = [ControlMessage::ScmRights(&fds)];
        match sendmsg::<()>(
            sock.as_raw_fd(),
            &[IoSlice::new(payload)],
            &cmsg,
            MsgFlags::empty(),
            None,
        ) {
            Ok(_) => sent += 1,
            Err(e) => {
                refused += 1;
                last_error = e.to_string();
            }
        }
        let mut buf = [0u8; 4096];
        if recv(sock.as_raw_fd(), &mut buf, MsgFlags::empty()).is_ok_and(|n| n > 0) {
            answered += 1;
        }
    }
    println!("fd_sender: sent {sent}, refused {refused} ({last_error}), answered {answered}");
}
