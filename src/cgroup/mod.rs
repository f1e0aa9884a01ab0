//! Everything that touches cgroupfs: names that cannot escape the managed
//! root (`name`), typed kernel values (`values`), pure parsers of the
//! kernel's file formats (`format`) and typed readings of its statistics
//! and event files (`stat`), the file access layer (`fs`), the tree setup
//! (`tree`: evacuation, `subtree_control`; `ancestors`: above the root on
//! hosts no manager claims), freeze/thaw/kill (`control`), PSI triggers
//! (`psi`), a group's `pids.max` refusals true on every kernel (`pids`),
//! and finding the cgroup cgmgr runs in for `--root self`
//! (`locate`).

pub mod ancestors;
pub mod control;
pub mod error;
pub mod format;
pub mod fs;
pub mod handle;
pub mod locate;
pub mod name;
pub mod pids;
pub mod psi;
pub mod stat;
pub mod tree;
pub mod values;

pub use error::CgroupError;
pub use fs::CgroupRoot;
pub use name::GroupName;
pub use tree::Controller;
