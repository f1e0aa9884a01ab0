//! Log lines on stderr that journald and humans both read: plain
//! `cgmgr: message` lines, with a `<N>` syslog priority prefix when stderr is
//! connected to the journal (systemd sets JOURNAL_STREAM), which journald
//! strips and turns into the entry's priority.

use std::io::Write;

/// Severity.
#[derive(Debug, Clone, Copy)]
pub enum Level {
    /// Something failed.
    Error,
    /// Something the operator should know (drift, OOM kills).
    Warning,
    /// Normal operation.
    Info,
}

/// Writes one log entry (may span lines: continuation lines are indented).
pub fn log(level: Level, message: &str) {
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let (prio, tag) = match level {
        Level::Error => (3, "error: "),
        Level::Warning => (4, "warning: "),
        Level::Info => (6, ""),
    };
    let prefix = if journal {
        format!("<{prio}>")
    } else {
        String::new()
    };
    let mut err = std::io::stderr().lock();
    for (i, line) in message.lines().enumerate() {
        let _ = if i == 0 {
            writeln!(err, "{prefix}cgmgr: {tag}{line}")
        } else {
            writeln!(err, "{prefix}cgmgr:   {line}")
        };
    }
}
