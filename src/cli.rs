//! Command-line interface: the commands and flags of SPEC.md.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// cgmgr — a cgroup v2 resource manager and enforcer.
///
/// Sets up the cgroup tree, applies TOML policies to it, and keeps it equal
/// to them.
///
/// Exit codes: 0 success; 1 runtime failure (the kernel refused a write, a
/// group vanished, a refusal that --force would override); 2 invalid input
/// (bad flags or bad policy: nothing was written).
#[derive(Debug, Parser)]
#[command(name = "cgmgr", version, about, long_about, max_term_width = 100)]
pub struct Cli {
    /// The managed cgroup directory. `self` means the cgroup cgmgr itself
    /// runs in (a systemd unit with Delegate=yes, a container).
    #[arg(
        long,
        global = true,
        env = "CGMGR_ROOT",
        default_value = "/sys/fs/cgroup",
        value_name = "PATH"
    )]
    pub root: String,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate policies, print the plan, set up the tree and write what differs.
    Apply(ApplyArgs),
    /// Validate policies only: no cgroup access, no root needed (for CI of policy repos).
    Check(CheckArgs),
}

/// `cgmgr apply`
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Print the plan only; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Remove groups cgmgr created that no policy declares any more.
    #[arg(long)]
    pub prune: bool,
    /// Apply even when a step would hurt running processes (memory.max below
    /// current usage), and let --prune move processes out of removed groups.
    #[arg(long)]
    pub force: bool,
    /// Policy files, or directories of *.toml files.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// `cgmgr check`
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Policy files, or directories of *.toml files.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}
