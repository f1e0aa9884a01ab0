//! The service manager's notification protocol (`sd_notify(3)`): a datagram
//! of `KEY=VALUE` lines to the socket named by `NOTIFY_SOCKET`.
//!
//! Written here rather than taken from the `sd-notify` crate: it is twenty
//! lines over std's Unix datagram socket, with no `unsafe` and no hand-kept
//! constants for the crate to remove, and cgmgr uses three messages of it
//! (READY=1, STOPPING=1, WATCHDOG=1). The crate's watchdog helper reads the
//! same two variables (`WATCHDOG_USEC`, `WATCHDOG_PID`) as
//! [`watchdog_interval`] does.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Sends `state` (e.g. `READY=1`) when started by a service manager;
/// `Ok(false)` when `NOTIFY_SOCKET` is not set.
pub fn notify(state: &str) -> std::io::Result<bool> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let path = path.to_string_lossy().into_owned();
    let addr = match path.strip_prefix('@') {
        Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name.as_bytes())?,
        None => SocketAddr::from_pathname(&path)?,
    };
    UnixDatagram::unbound()?
        .send_to_addr(state.as_bytes(), &addr)
        .map_err(|e| std::io::Error::new(e.kind(), format!("NOTIFY_SOCKET {path}: {e}")))?;
    Ok(true)
}

/// How often to send `WATCHDOG=1`: half of `WatchdogSec=` (systemd's
/// advice), when the watchdog is on for this process.
pub fn watchdog_interval() -> Option<Duration> {
    watchdog_interval_from(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

/// [`watchdog_interval`] over explicit values, for tests.
pub fn watchdog_interval_from(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    if let Some(pid) = pid
        && pid.parse::<u32>().ok() != Some(me)
    {
        return None;
    }
    let usec: u64 = usec?.parse().ok().filter(|&u| u > 0)?;
    Some(Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_is_half_the_timeout_and_only_for_its_pid() {
        assert_eq!(
            watchdog_interval_from(Some("10000000"), None, 5),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            watchdog_interval_from(Some("10000000"), Some("5"), 5),
            Some(Duration::from_secs(5))
        );
        assert_eq!(watchdog_interval_from(Some("10000000"), Some("6"), 5), None);
        assert_eq!(watchdog_interval_from(Some("0"), None, 5), None);
        assert_eq!(watchdog_interval_from(Some("x"), None, 5), None);
        assert_eq!(watchdog_interval_from(None, None, 5), None);
    }
}
