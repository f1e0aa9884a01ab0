//! Runtime state that cgmgr's processes share on one host: where the
//! running daemon's record and the prepared-sandbox socket live, and the
//! descriptor budget of the daemon's HTTP server, which the metrics
//! collector must leave room for. A leaf: commands, the daemon, the
//! metrics and the sandbox code use it, and it uses none of them.

pub mod record;

use std::path::PathBuf;

/// Connections held while they send their request head; past it the
/// oldest is dropped.
pub const HTTP_MAX_PENDING: usize = 1024;
/// Requests the daemon's HTTP server answers at once; past it, 503.
pub const HTTP_MAX_RESPONDERS: usize = 64;
/// Descriptors the HTTP server may hold at most: pending heads, responders,
/// and as many lingering closes as responders.
pub const HTTP_MAX_DESCRIPTORS: usize = HTTP_MAX_PENDING + 2 * HTTP_MAX_RESPONDERS + 1;

/// The socket a daemon serving prepared sandboxes listens on, beside its
/// record.
pub fn exec_socket_path() -> PathBuf {
    record::record_path().with_file_name("exec.sock")
}
