//! Prepared sandboxes: runs whose sandbox is built before their command is
//! known, so that `cgmgr exec` only hands over the command.
//!
//! A group whose `[exec]` table says `standby = N` gets N of them from the
//! daemon. Each is an ordinary run ([`super::run`]'s run group, id lease,
//! namespaces, root, masks, quotas, keyring) made by a `cgmgr standby`
//! process that the daemon starts (at nice 19: built with what the runs leave);
//! its init forks the workload, which takes every step before `execve` but
//! the seccomp filters and waits on a socket. `cgmgr exec --group G -- CMD` with
//! the daemon's policies asks the daemon (`exec.sock` beside its record)
//! for a ready one; the daemon passes the connection to it, the standby
//! process then serves that one command exactly as `cgmgr exec` would and
//! exits, and the daemon builds the next. Without a ready sandbox the
//! answer is `none` and `cgmgr exec` builds its own, as without a daemon.
//!
//! What a run gets does not depend on the way it took: the command, the
//! `--env` additions, `--report`, the caller's stdin/stdout/stderr (checked
//! as `cgmgr exec` checks its own), its resource limits, nice value,
//! `oom_score_adj`, CPU affinity and ignored signals; the caller's
//! forwarded signals travel over the connection; a caller that goes away
//! (even by SIGKILL) ends the run, as `cgmgr exec`'s death ends its own.
//!
//! The namespaces are held by the standby process until the caller is told
//! the status, so init's exit does not wait for their teardown.
//!
//! Everything travels as one JSON object per `SOCK_SEQPACKET` message,
//! descriptors as `SCM_RIGHTS`.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixAddr,
    connect, recvmsg, sendmsg, socket,
};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::error::{ExecError, sys};
use super::supervise::RunRef;
use super::workload::{self, Workload};
use super::{ExecFlags, ExecSpec, Namespace, Supervision, init, report};
use super::{
    check_reachable_by_others, check_rootfs, ignored, merge_env, prepare, supervised_signals,
};
use super::{run_group, start_child};
use crate::cgroup::{CgroupRoot, GroupName};

/// Version of the messages below; a daemon answers `none` to another.
pub const PROTOCOL: u32 = 2;

/// The largest message accepted (argv and environment included); a larger
/// request is run by `cgmgr exec` itself.
pub(super) const MAX_MESSAGE: usize = 256 * 1024;

/// How long `cgmgr exec` waits for the daemon's first answer.
pub(super) const FIRST_ANSWER: Duration = Duration::from_secs(10);

/// What `cgmgr exec` asks for: everything of a run that is not the sandbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// [`PROTOCOL`].
    pub v: u32,
    /// The group, as typed.
    pub group: String,
    /// The command.
    pub argv: Vec<String>,
    /// `--env K=V`, as typed.
    pub env: Vec<String>,
    /// `--report`: "text" or "json".
    pub report: Option<String>,
    /// The signals the caller ignores (the workload ignores them too).
    pub ignored: Vec<i32>,
    /// The caller's process attributes the workload inherits.
    pub attrs: Attributes,
}

/// A process's attributes that a workload inherits from `cgmgr exec`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Attributes {
    /// `(resource, soft, hard)` for every resource limit.
    pub rlimits: Vec<(u32, u64, u64)>,
    /// The nice value.
    pub nice: i32,
    /// `/proc/self/oom_score_adj`.
    pub oom_score_adj: Option<i32>,
    /// The CPUs it may run on.
    pub cpus: Vec<usize>,
    /// The scheduling policy and its priority (`sched_getscheduler`).
    pub sched: Option<(i32, i32)>,
    /// The I/O priority (`ioprio_get`).
    pub ioprio: Option<i32>,
}

/// What a sandbox tells the process that made it (init to its standby
/// process, the standby process to the daemon): one JSON word per message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Word {
    /// Built and waiting for a command.
    Ready,
    /// It took the request handed to it: the run is its.
    Started,
    /// It turned the request down (the caller builds its own sandbox).
    Declined,
}

impl Word {
    /// Sends the word on `sock`.
    pub fn send(self, sock: BorrowedFd<'_>) -> Result<(), Errno> {
        send_json(sock, &self, &[])
    }

    /// The word in a received message; `None` for anything else.
    pub fn parse(bytes: &[u8]) -> Option<Word> {
        serde_json::from_slice(bytes).ok()
    }
}

/// The daemon's or the standby's answer to `cgmgr exec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// No prepared sandbox: build one yourself.
    None {
        /// Why, for `CGMGR_DEBUG`-style troubleshooting.
        why: String,
    },
    /// A prepared sandbox took the request.
    Started,
    /// The run is over and ended; `stderr` is what `cgmgr exec` prints.
    Exit {
        /// The workload's exit status.
        code: i32,
        /// The report or the limit notes.
        stderr: String,
    },
    /// The request was refused before the workload ran (exit 125).
    Failed {
        /// Why.
        message: String,
    },
}

/// What `cgmgr exec` sends once a prepared sandbox has taken its request.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientMessage {
    /// Its stdin, stdout, stderr: which were open (those come with the
    /// message, in order). Sent to the sandbox, never through the daemon
    /// (closing a descriptor of a hung file system can block the closer),
    /// and the command starts only once they came: a caller that is gone
    /// by then starts nothing.
    Stdio([bool; 3]),
    /// A signal `cgmgr exec` received, to pass on.
    Signal(i32),
}

/// What the daemon asks its builder for: a sandbox of `group`, whose
/// control socket comes with the message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildRequest {
    /// The group, as the daemon names it.
    pub group: String,
    /// [`crate::policy::ExecConfig::digest`] of the group's `[exec]` table
    /// as the daemon loaded it: the builder builds from that table only.
    pub config: u64,
}

/// What the standby process hands its init.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Job {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    stdio: [bool; 3],
    ignored: Vec<i32>,
    rlimits: Vec<(u32, u64, u64)>,
}

mod client;
mod server;
mod waiting;
mod wire;

pub use client::*;
pub use server::*;
pub use waiting::*;
pub use wire::*;

#[cfg(test)]
mod tests {
    use super::*;

    /// The words a sandbox says travel as JSON strings, over a real
    /// socketpair; anything else (a bare word, garbage) is no word. The
    /// daemon, its builder and their sandboxes are always one binary
    /// (`/proc/self/exe`), so no older peer speaks bare words.
    #[test]
    fn a_sandbox_s_words_round_trip_and_nothing_else_is_one() {
        let (a, b) = seqpacket_pair().unwrap();
        for word in [Word::Ready, Word::Started, Word::Declined] {
            word.send(a.as_fd()).unwrap();
            let got = recv_plain(b.as_fd(), MsgFlags::empty()).unwrap().unwrap();
            assert_eq!(Word::parse(&got), Some(word));
        }
        assert_eq!(Word::parse(b"\"ready\""), Some(Word::Ready));
        assert_eq!(Word::parse(b"ready"), None);
        assert_eq!(Word::parse(b"{\"exit\":1}"), None);
        assert_eq!(Word::parse(b""), None);
    }
}
