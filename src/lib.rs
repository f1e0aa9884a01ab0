//! cgmgr: a cgroup v2 resource manager and enforcer.
//!
//! - [`policy`]: TOML policies, parsed and validated as a whole.
//! - [`cgroup`]: typed, root-confined access to cgroupfs and the tree setup.
//! - [`apply`]: the plan (desired vs actual) and its transactional write.

pub mod apply;
pub mod cgroup;
pub mod daemon;
pub mod error;
pub mod exec;
pub mod metrics;
pub mod policy;
pub mod root;
pub mod status;
pub mod systemd;
