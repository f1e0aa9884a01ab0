//! The messages of every socket, their version, and the one place that
//! turns them into bytes and back.
//!
//! Every message is one JSON object whose `"v"` is [`PROTOCOL`]; the
//! enums are tagged by `"type"` inside it:
//!
//! | socket | one way | the other way |
//! |---|---|---|
//! | `exec.sock` (`cgmgr exec`, the daemon) | [`Request`] | [`Reply::None`] |
//! | a standby's control socket (the daemon) | [`Request`] + the connection | [`Word`] |
//! | the connection (`cgmgr exec`, the sandbox) | [`ClientMessage`] + stdio | [`Reply`] |
//! | the builder's socket (the daemon) | [`BuildRequest`] + a control socket | nothing |
//! | the job socket (the sandbox's workload) | [`Word`] | [`Job`] + stdio |
//!
//! A message of another version is refused before its body is read (so a
//! body whose shape changed with the version is never misread).

use super::*;

/// Version of the messages below; a daemon answers `none` to another.
pub const PROTOCOL: u32 = 3;

/// The largest message accepted (argv and environment included); a larger
/// request is run by `cgmgr exec` itself.
pub(super) const MAX_MESSAGE: usize = 256 * 1024;

/// A message of this protocol: one JSON object, given its `"v"` by
/// [`encode`] and checked by [`decode`].
pub trait Message: Serialize + serde::de::DeserializeOwned {}

/// What `cgmgr exec` asks for: everything of a run that is not the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// [`PROTOCOL`] (the envelope's version, which [`encode`] sets).
    pub v: u32,
    /// The group, as typed.
    pub group: String,
    /// The command.
    pub argv: Vec<String>,
    /// `--env K=V`, as typed.
    pub env: Vec<String>,
    /// `--report`: "text" or "json".
    pub report: Option<String>,
    /// `--report-file`: the JSON report comes back with the status.
    #[serde(default)]
    pub report_file: bool,
    /// The signals the caller ignores (the workload ignores them too).
    pub ignored: Vec<i32>,
    /// The caller's process attributes the workload inherits.
    pub attrs: Attributes,
}

/// A process's attributes that a workload inherits from `cgmgr exec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
/// process, the standby process to the daemon).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Word {
    /// Built and waiting for a command.
    Ready,
    /// It took the request handed to it: the run is its.
    Started,
    /// It turned the request down (the caller builds its own sandbox).
    Declined,
}

/// The daemon's or the standby's answer to `cgmgr exec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
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
        /// The JSON report, when the request asked for `report_file`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        report: Option<String>,
    },
    /// The request was refused before the workload ran (exit 125).
    Failed {
        /// Why.
        message: String,
    },
}

/// What `cgmgr exec` sends once a prepared sandbox has taken its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Its stdin, stdout, stderr: which were open (those come with the
    /// message, in order). Sent to the sandbox, never through the daemon
    /// (closing a descriptor of a hung file system can block the closer),
    /// and the command starts only once they came: a caller that is gone
    /// by then starts nothing.
    Stdio {
        /// Open or not, for fds 0, 1, 2.
        open: [bool; 3],
    },
    /// A signal `cgmgr exec` received, to pass on.
    Signal {
        /// Its number.
        signal: i32,
    },
}

/// What the daemon asks its builder for: a sandbox of `group`, whose
/// control socket comes with the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRequest {
    /// The group, as the daemon names it.
    pub group: String,
    /// [`crate::policy::ExecConfig::digest`] of the group's `[exec]` table
    /// as the daemon loaded it: the builder builds from that table only.
    pub config: u64,
}

/// What the standby process hands its init's waiting workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub(super) argv: Vec<String>,
    pub(super) env: Vec<(String, String)>,
    pub(super) stdio: [bool; 3],
    pub(super) ignored: Vec<i32>,
    pub(super) rlimits: Vec<(u32, u64, u64)>,
}

impl Message for Request {}
impl Message for Word {}
impl Message for Reply {}
impl Message for ClientMessage {}
impl Message for BuildRequest {}
impl Message for Job {}

/// Why bytes are not a message of this protocol.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// A message of another version (`None`: it has none, as before
    /// protocol 3).
    #[error("protocol {} (this cgmgr speaks {PROTOCOL})", version_name(.0))]
    Version(Option<u32>),
    /// Not JSON, or not the message expected.
    #[error("a message that does not parse: {0}")]
    Malformed(#[source] serde_json::Error),
}

fn version_name(v: &Option<u32>) -> String {
    v.map_or_else(|| "unknown".to_string(), |v| v.to_string())
}

/// Why a message could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// A message that is no JSON object (a bug: every [`Message`] is one).
    #[error("a message that is not a JSON object")]
    NotAnObject,
    /// serde_json refused it.
    #[error("encoding a message: {0}")]
    Json(#[from] serde_json::Error),
}

/// The bytes of `msg`, its `"v"` set to [`PROTOCOL`].
pub fn encode<M: Message>(msg: &M) -> Result<Vec<u8>, EncodeError> {
    let mut value = serde_json::to_value(msg)?;
    let serde_json::Value::Object(map) = &mut value else {
        return Err(EncodeError::NotAnObject);
    };
    map.insert("v".into(), PROTOCOL.into());
    Ok(serde_json::to_vec(&value)?)
}

/// The message in `bytes`, if it is one of [`PROTOCOL`].
pub fn decode<M: Message>(bytes: &[u8]) -> Result<M, DecodeError> {
    #[derive(Deserialize)]
    struct Version {
        v: Option<u32>,
    }
    let Version { v } = serde_json::from_slice(bytes).map_err(DecodeError::Malformed)?;
    if v != Some(PROTOCOL) {
        return Err(DecodeError::Version(v));
    }
    serde_json::from_slice(bytes).map_err(DecodeError::Malformed)
}

/// Sends `msg` on `sock` with `fds` attached.
pub fn send<M: Message>(
    sock: BorrowedFd<'_>,
    msg: &M,
    fds: &[BorrowedFd<'_>],
) -> Result<(), Errno> {
    let bytes = encode(msg).map_err(|_| Errno::EINVAL)?;
    send_bytes(sock, &bytes, fds)
}

/// Why no message was received.
#[derive(Debug, thiserror::Error)]
pub enum RecvError {
    /// The socket failed (`EMSGSIZE`: larger than [`MAX_MESSAGE`]).
    #[error("recvmsg: {0}")]
    Sys(#[from] Errno),
    /// What came is not a message of this protocol (its descriptors are
    /// closed).
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// One message and the descriptors that came with it (close-on-exec);
/// `None` at the end of the stream.
pub fn recv<M: Message>(
    sock: BorrowedFd<'_>,
    flags: MsgFlags,
) -> Result<Option<(M, Vec<OwnedFd>)>, RecvError> {
    let Some((bytes, fds)) = recv_bytes(sock, flags)? else {
        return Ok(None);
    };
    Ok(Some((decode(&bytes)?, fds)))
}

/// One message without descriptors (see [`recv_plain`]).
pub fn recv_without_fds<M: Message>(
    sock: BorrowedFd<'_>,
    flags: MsgFlags,
) -> Result<Option<M>, RecvError> {
    let Some(bytes) = recv_plain(sock, flags)? else {
        return Ok(None);
    };
    Ok(Some(decode(&bytes)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Request {
        Request {
            v: PROTOCOL,
            group: "sb".into(),
            argv: vec!["/bin/true".into()],
            env: vec!["A=1".into()],
            report: Some("json".into()),
            report_file: true,
            ignored: vec![1],
            attrs: Attributes::default(),
        }
    }

    /// Every message round-trips and carries the version.
    #[test]
    fn every_message_carries_the_version_and_round_trips() {
        fn check<M: Message + PartialEq + std::fmt::Debug>(m: M) {
            let bytes = encode(&m).unwrap();
            let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(value["v"], PROTOCOL, "{value}");
            assert_eq!(decode::<M>(&bytes).unwrap(), m);
        }
        check(request());
        for w in [Word::Ready, Word::Started, Word::Declined] {
            check(w);
        }
        check(Reply::None { why: "x".into() });
        check(Reply::Started);
        check(Reply::Exit {
            code: 3,
            stderr: "e".into(),
            report: Some("{\"status\":\"ok\"}".into()),
        });
        check(Reply::Failed {
            message: "m".into(),
        });
        check(ClientMessage::Stdio {
            open: [true, false, true],
        });
        check(ClientMessage::Signal { signal: 15 });
        check(BuildRequest {
            group: "sb".into(),
            config: 7,
        });
        check(Job {
            argv: vec!["a".into()],
            env: vec![("K".into(), "V".into())],
            stdio: [true; 3],
            ignored: vec![],
            rlimits: vec![(7, 1, 2)],
        });
    }

    /// A request serialized as it is (what an older test tool or a script
    /// sends) is the request on the wire.
    #[test]
    fn a_plain_request_is_its_own_envelope() {
        let bytes = serde_json::to_vec(&request()).unwrap();
        assert_eq!(decode::<Request>(&bytes).unwrap(), request());
    }

    /// Another version, an unversioned message (protocol 2's bare words and
    /// replies) and garbage are refused, each for its reason.
    #[test]
    fn other_versions_and_garbage_are_refused() {
        let old = serde_json::to_vec(&Request { v: 2, ..request() }).unwrap();
        assert!(matches!(
            decode::<Request>(&old),
            Err(DecodeError::Version(Some(2)))
        ));
        assert!(matches!(
            decode::<Word>(br#"{"v":4,"type":"ready"}"#),
            Err(DecodeError::Version(Some(4)))
        ));
        assert!(matches!(
            decode::<Reply>(br#"{"none":{"why":""}}"#),
            Err(DecodeError::Version(None))
        ));
        for garbage in [&b"\"ready\""[..], b"ready", b"", b"[3]", b"{\"v\":\"3\"}"] {
            assert!(
                matches!(decode::<Word>(garbage), Err(DecodeError::Malformed(_))),
                "{garbage:?}"
            );
        }
        assert!(matches!(
            decode::<Word>(br#"{"v":3,"type":"exit"}"#),
            Err(DecodeError::Malformed(_))
        ));
        assert_eq!(
            DecodeError::Version(Some(2)).to_string(),
            format!("protocol 2 (this cgmgr speaks {PROTOCOL})")
        );
    }

    /// The words a sandbox says travel over a real socketpair; anything
    /// else (a bare word as protocol 2 said them, garbage) is no word. The
    /// daemon, its builder and their sandboxes are always one binary
    /// (`/proc/self/exe`), so no older peer speaks bare words.
    #[test]
    fn a_sandbox_s_words_round_trip_and_nothing_else_is_one() {
        let (a, b) = seqpacket_pair().unwrap();
        for word in [Word::Ready, Word::Started, Word::Declined] {
            send(a.as_fd(), &word, &[]).unwrap();
            let got = recv_without_fds::<Word>(b.as_fd(), MsgFlags::empty());
            assert_eq!(got.unwrap(), Some(word));
        }
        for other in [&b"\"ready\""[..], b"ready", b"{\"exit\":1}"] {
            send_bytes(a.as_fd(), other, &[]).unwrap();
            let got = recv_without_fds::<Word>(b.as_fd(), MsgFlags::empty());
            assert!(matches!(got, Err(RecvError::Decode(_))), "{other:?}");
        }
        drop(a);
        assert!(matches!(
            recv_without_fds::<Word>(b.as_fd(), MsgFlags::empty()),
            Ok(None)
        ));
    }
}
