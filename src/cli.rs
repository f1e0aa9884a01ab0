//! Command-line interface: every command and flag users and scripts rely on.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// A cgroup v2 resource manager and enforcer.
///
/// Sets up the cgroup tree, applies TOML policies to it, and keeps it equal
/// to them.
///
/// Exit codes: 0 success; 1 runtime failure (the kernel refused a write, a
/// group vanished, a refusal that --force would override); 2 invalid input
/// (bad flags or bad policy: nothing was written). `exec`: the command's
/// status (128+N when killed by signal N); 125 when cgmgr failed first, bad
/// flags included; 126 when the command cannot be executed, 127 when it is
/// not found.
#[derive(Debug, Parser)]
#[command(name = "cgmgr", version, about, long_about, max_term_width = 100)]
pub struct Cli {
    /// The options of every command.
    #[command(flatten)]
    pub global: Global,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// The managed cgroup directory. `self` means the cgroup cgmgr itself
    /// runs in (a systemd unit with Delegate=yes, a container). Default: the
    /// root of the cgmgr daemon running on this host, else /sys/fs/cgroup
    /// (`daemon` itself: always /sys/fs/cgroup). Ignored by `check`,
    /// `rootfs`, `completions` and `man`.
    #[arg(long, global = true, env = "CGMGR_ROOT", value_name = "PATH")]
    pub root: Option<String>,
}

/// `cgmgr exec`'s command line alone, for the start of every run: building
/// [`Cli`] builds every subcommand's arguments first, which was half the
/// CPU of a `cgmgr exec` handing its command to a prepared sandbox. It
/// accepts exactly what [`Cli`] accepts for `exec` (the same [`Global`] and
/// [`ExecArgs`]); anything else, `--help` included, is left to [`Cli`],
/// which gives the one help text and the one set of error messages.
#[derive(Debug, Parser)]
#[command(name = "cgmgr", max_term_width = 100)]
pub struct ExecCli {
    /// The options of every command.
    #[command(flatten)]
    pub global: Global,

    /// `exec`, the only command it knows.
    #[command(subcommand)]
    pub command: ExecOnly,
}

/// [`ExecCli`]'s one subcommand.
#[derive(Debug, Subcommand)]
pub enum ExecOnly {
    /// Run a command inside a group.
    Exec(Box<ExecArgs>),
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate policies, print the plan, set up the tree and write what differs.
    Apply(ApplyArgs),
    /// Validate policies only: no cgroup access, no root needed (for CI of policy repos).
    Check(CheckArgs),
    /// Run a command inside a group, in new namespaces and a new root filesystem.
    ///
    /// Isolation comes from the group's [group.NAME.exec] policy table; flags
    /// override it. Exit status: the command's (128+N if killed by signal N);
    /// 125 if cgmgr failed before the command ran, 126 if the command cannot
    /// be executed, 127 if it is not found.
    Exec(Box<ExecArgs>),
    /// Apply, then keep enforcing: hot reload, drift correction, limit events, /metrics and /healthz.
    Daemon(DaemonArgs),
    /// A table of managed groups: usage against limits, throttling, OOM kills.
    Status(StatusArgs),
    /// Print the metrics of every managed group once, in the Prometheus text format.
    Metrics,
    /// Freeze every process of a group and its descendants (cgroup.freeze),
    /// then wait until the kernel reports the group frozen.
    Freeze(ControlArgs),
    /// Thaw a frozen group, then wait until the kernel reports it thawed.
    Thaw(ControlArgs),
    /// Kill every process of a group and its descendants, frozen or not
    /// (cgroup.kill; before Linux 5.14 by hand: freeze, SIGKILL each member,
    /// thaw), then wait until the group is empty.
    Kill(ControlArgs),
    /// What this host offers cgmgr, one row per feature, and what cgmgr
    /// does where one is missing.
    ///
    /// Exit 0 when cgmgr can work here (cgroup2 mounted, the managed root a
    /// cgroup2 directory this process may write, with the cpu, memory or
    /// pids controller, delegated where systemd owns the tree); 1 when it
    /// cannot, with the reason and the fix.
    Doctor(DoctorArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `cgmgr man > /usr/local/share/man/man1/cgmgr.1`.
    Man,
    /// Internal: builds the prepared sandboxes the daemon keeps for `cgmgr
    /// exec` (started by the daemon with its socket as fd 3).
    #[command(hide = true)]
    Standby(StandbyArgs),
    /// Root filesystems for `cgmgr exec`.
    #[command(subcommand)]
    Rootfs(RootfsCommand),
}

/// `cgmgr exec`
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The group to run in (created from its policy if declared and missing).
    #[arg(long, value_name = "NAME")]
    pub group: String,
    /// Where the group's policy is looked up. Default: the running daemon's
    /// policy directory, else /etc/cgmgr.
    #[arg(long, value_name = "DIR")]
    pub policies: Option<PathBuf>,
    /// Root filesystem directory (overrides the policy's `rootfs`).
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,
    /// Namespaces, comma-separated: mount,uts,ipc,net,pid,user,cgroup, or `none`.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub ns: Option<Vec<String>>,
    /// Hostname inside the UTS namespace (default: the policy's, else the group's last segment).
    #[arg(long, value_name = "H")]
    pub hostname: Option<String>,
    /// Set an environment variable (repeatable); added to the policy's `env`.
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Use plain chroot instead of pivot_root. Not a security boundary: a
    /// process with CAP_SYS_CHROOT can walk out of a chroot.
    #[arg(long)]
    pub chroot: bool,
    /// At the end, report this run alone on stderr: wall time, CPU user
    /// and system, memory peak, I/O bytes, OOM kills (and whose memory
    /// limit), pids.max refusals, the group's throttled time. `--report`
    /// writes lines; `--report=json` one JSON object.
    #[arg(
        long,
        value_name = "FORMAT",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "text",
        value_parser = clap::builder::TypedValueParser::map(
            clap::builder::PossibleValuesParser::new(["text", "json"]),
            |s: String| s.parse::<cgmgr::exec::report::ReportFormat>().expect("a listed value"),
        ),
    )]
    pub report: Option<cgmgr::exec::report::ReportFormat>,
    /// Write the run's JSON report (with its verdict, `status`) to PATH.
    #[arg(long, value_name = "PATH")]
    pub report_file: Option<PathBuf>,
    /// Bind a host path read-write at DST (repeatable; after the policy's
    /// `mounts`). nosuid, nodev; SRC is never followed through a symlink.
    #[arg(long = "bind", value_name = "SRC:DST")]
    pub binds: Vec<String>,
    /// Bind a host path read-only at DST, its submounts too (repeatable).
    #[arg(long = "ro-bind", value_name = "SRC:DST")]
    pub ro_binds: Vec<String>,
    /// Mount a tmpfs at DST, of at most SIZE (repeatable).
    #[arg(long = "tmpfs", value_name = "DST[:SIZE]")]
    pub tmpfs: Vec<String>,
    /// `none`: a network namespace of its own, loopback up (the default);
    /// `host`: the host's network.
    #[arg(long, value_name = "none|host")]
    pub network: Option<String>,
    /// CPU time (user + system) of the whole run, e.g. `2s`: killed past it
    /// (and `--extra-time`), exit 137.
    #[arg(long, value_name = "DURATION")]
    pub time_limit: Option<String>,
    /// Wall-clock time of the run, e.g. `10s`: killed past it, exit 137.
    #[arg(long, value_name = "DURATION")]
    pub wall_limit: Option<String>,
    /// Grace after `--time-limit` before the kill, e.g. `0.5s`.
    #[arg(long, value_name = "DURATION")]
    pub extra_time: Option<String>,
    /// A resource limit of the workload, soft and hard (repeatable): fsize,
    /// nofile, stack, core, as, memlock, nproc; e.g. `nofile=64`, `fsize=1M`.
    #[arg(long = "rlimit", value_name = "NAME=VALUE")]
    pub rlimits: Vec<String>,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub cmd: Vec<String>,
}

/// `cgmgr standby` (internal)
#[derive(Debug, Args)]
pub struct StandbyArgs {
    /// The daemon's policy directory.
    #[arg(long, value_name = "DIR")]
    pub policies: PathBuf,
}

/// `cgmgr daemon`
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Address for /metrics and /healthz (loopback by default).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9765")]
    pub listen: std::net::SocketAddr,
    /// Seconds between drift checks (0.1 to 86400).
    #[arg(long, value_name = "SECS", default_value_t = 30.0, value_parser = parse_reconcile)]
    pub reconcile: f64,
    /// The policy directory (watched for changes).
    #[arg(value_name = "POLICY_DIR")]
    pub policy_dir: PathBuf,
}

fn parse_reconcile(s: &str) -> Result<f64, String> {
    seconds_within(s, 0.1, 86400.0)
}

/// A number of seconds within `lo..=hi`.
fn seconds_within(s: &str, lo: f64, hi: f64) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is outside {lo}..={hi} seconds"))
    }
}

/// `cgmgr status`
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this group (default: every group cgmgr manages).
    #[arg(value_name = "GROUP")]
    pub group: Option<String>,
    /// Print JSON (numbers in base units, null for unknown or max) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Refresh like top until interrupted.
    #[arg(long)]
    pub watch: bool,
    /// Seconds between the two readings CPU% is computed from (and between refreshes).
    #[arg(long, value_name = "SECS", default_value_t = 1.0, value_parser = parse_interval)]
    pub interval: f64,
}

fn parse_interval(s: &str) -> Result<f64, String> {
    seconds_within(s, 0.1, 3600.0)
}

/// `cgmgr doctor`
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print `{"features": [{"name", "available", "detail", "fallback"}, ...]}` instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `cgmgr freeze`, `thaw` and `kill`
#[derive(Debug, Args)]
pub struct ControlArgs {
    /// The group (a path relative to the root, e.g. batch/etl).
    #[arg(value_name = "GROUP")]
    pub group: String,
    /// Seconds to wait for the kernel to report the group frozen, thawed or
    /// empty (0.1 to 3600); exit 1 naming the group when it does not.
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = parse_interval)]
    pub timeout: f64,
}

/// `cgmgr rootfs ...`
#[derive(Debug, Subcommand)]
pub enum RootfsCommand {
    /// Build a minimal root filesystem from host binaries and the shared
    /// libraries they need, plus proc, dev, tmp and etc. Idempotent.
    Build {
        /// The directory to build in.
        dir: PathBuf,
        /// Host binaries to include: `--bin A B` or `--bin A --bin B`.
        #[arg(long = "bin", value_name = "PATH", required = true, num_args = 1..)]
        bins: Vec<PathBuf>,
    },
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn both_command_lines_are_well_formed() {
        Cli::command().debug_assert();
        ExecCli::command().debug_assert();
    }

    /// What [`Cli`] makes of `argv` when it is an `exec`, as [`ExecCli`]'s
    /// result would print.
    fn by_cli(argv: &[&str]) -> Option<String> {
        match Cli::try_parse_from(argv).ok()?.command {
            Command::Exec(args) => Some(format!("{args:?}")),
            _ => None,
        }
    }

    fn by_exec_cli(argv: &[&str]) -> Option<String> {
        let ExecOnly::Exec(args) = ExecCli::try_parse_from(argv).ok()?.command;
        Some(format!("{args:?}"))
    }

    #[test]
    fn the_exec_parser_accepts_what_the_full_one_does_and_nothing_else() {
        let lines: &[&[&str]] = &[
            &["cgmgr", "exec", "--group", "j", "--", "/bin/true"],
            &[
                "cgmgr", "--root", "/r", "exec", "--group", "j", "--", "sh", "-c", "x",
            ],
            &[
                "cgmgr",
                "exec",
                "--root=/r",
                "--group",
                "a/b",
                "--report=json",
                "--",
                "x",
            ],
            &[
                "cgmgr",
                "exec",
                "--group",
                "j",
                "--bind",
                "/a:/b",
                "--ro-bind",
                "/c:/d",
                "--tmpfs",
                "/t:64M",
                "--rlimit",
                "nofile=64",
                "--time-limit",
                "1s",
                "--env",
                "A=1",
                "--ns",
                "mount,pid",
                "--",
                "x",
                "--help",
            ],
            &["cgmgr", "exec", "--group", "j"],
            &["cgmgr", "exec", "--help"],
            &["cgmgr", "exec", "--bogus", "--group", "j", "--", "x"],
            &["cgmgr", "--version"],
            &["cgmgr", "status"],
            &["cgmgr", "ex", "--group", "j", "--", "x"],
        ];
        // The first four are valid `exec` lines, the rest are not.
        for (i, argv) in lines.iter().enumerate() {
            assert_eq!(by_exec_cli(argv), by_cli(argv), "{argv:?}");
            assert_eq!(by_cli(argv).is_some(), i < 4, "{argv:?}");
        }
        let root = |argv: &[&str]| ExecCli::try_parse_from(argv).map(|c| c.global.root);
        assert_eq!(
            root(&["cgmgr", "--root", "/r", "exec", "--group", "j", "--", "x"]).unwrap(),
            Cli::try_parse_from(["cgmgr", "--root", "/r", "exec", "--group", "j", "--", "x"])
                .unwrap()
                .global
                .root
        );
    }
}
