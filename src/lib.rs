//! cgmgr: a cgroup v2 resource manager and enforcer.
//!
//! - [`policy`]: TOML policies, parsed and validated as a whole.
//! - [`cgroup`]: typed, root-confined access to cgroupfs, typed readings of
//!   the kernel's files, the tree setup, freeze/thaw/kill, PSI triggers.
//! - [`apply`]: the plan (desired vs actual) and its transactional write.
//! - [`exec`]: a run of a command in its group, namespaces and root
//!   filesystem; `rootfs build`.
//! - [`daemon`]: the enforcing loop, pressure rules, `/metrics`, `/healthz`.
//! - [`metrics`]: the Prometheus families, read from the kernel per scrape.
//! - [`status`]: the `cgmgr status` table and JSON.
//! - [`doctor`]: what this host offers cgmgr, and what it does without it.
//! - [`root`]: which managed root a command works on.
//! - [`runtime`]: what cgmgr's processes share on a host: the daemon's
//!   record, the prepared-sandbox socket, the HTTP descriptor budget.
//! - [`systemd`]: living on a host whose tree systemd owns.
//! - [`error`]: a command's error and its exit code.

pub mod apply;
pub mod cgroup;
pub mod daemon;
pub mod doctor;
pub mod error;
pub mod exec;
pub mod metrics;
pub mod policy;
pub mod root;
pub mod runtime;
pub mod status;
pub mod systemd;
