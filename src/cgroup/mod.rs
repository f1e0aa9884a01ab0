//! Everything that touches cgroupfs: names that cannot escape the managed
//! root, typed kernel values, pure parsers of the kernel's file formats, the
//! file access layer and the tree setup (evacuation, `subtree_control`, and
//! the ancestors above the root on hosts no manager claims).

pub mod ancestors;
pub mod control;
pub mod error;
pub mod format;
pub mod fs;
pub mod locate;
pub mod name;
pub mod psi;
pub mod stat;
pub mod tree;
pub mod values;

pub use error::CgroupError;
pub use fs::CgroupRoot;
pub use name::GroupName;
pub use tree::Controller;
