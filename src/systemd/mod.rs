//! Living on a host whose cgroup tree systemd owns.
//!
//! - [`owner`]: is the tree systemd's, and has it delegated the managed root?
//! - [`notify`]: the service manager's notification socket (READY=1,
//!   STOPPING=1, WATCHDOG=1).
//! - [`scope`]: a transient scope with `Delegate=yes` for `cgmgr exec` when
//!   no daemon runs (systemd's D-Bus API, as `systemd-run --scope` uses it).

pub mod dbus;
pub mod notify;
pub mod owner;
pub mod scope;
