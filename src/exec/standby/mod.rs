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
//!
//! The modules follow the roles: `protocol` the messages and their
//! version, `wire` the sockets and descriptors, `client` `cgmgr exec`'s
//! side, `builder` the `cgmgr standby` process that builds sandboxes,
//! `server` one prepared sandbox, `handover` its conversation with the
//! caller (separate from the privileged steps, so it is tested without
//! root), `waiting` the workload that waits for its command, and
//! `attributes` the caller's process attributes the run takes.

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

/// How long `cgmgr exec` waits for the daemon's first answer, and a
/// sandbox for the caller's stdio after `started`.
pub(super) const FIRST_ANSWER: Duration = Duration::from_secs(10);

mod attributes;
mod builder;
mod client;
mod handover;
mod protocol;
mod server;
mod waiting;
mod wire;

use attributes::*;
pub use builder::*;
pub use client::*;
use handover::*;
pub use protocol::*;
use server::*;
pub use waiting::*;
pub use wire::*;
