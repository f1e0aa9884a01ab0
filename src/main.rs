//! The `cgmgr` binary: parses the command line, runs the command, and maps
//! errors to the exit codes of SPEC.md (0 ok, 1 runtime failure, 2 invalid
//! input).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

use cgmgr::apply::{self, Options};
use cgmgr::cgroup::CgroupRoot;
use cgmgr::cgroup::locate::own_cgroup_dir;
use cgmgr::policy::{self, PolicyErrors};

mod cli;
use cli::{ApplyArgs, CheckArgs, Cli, Command};

/// Exit code for invalid input (bad flags, bad policy): nothing was written.
const EXIT_INVALID: u8 = 2;
/// Exit code for runtime failures.
const EXIT_FAILURE: u8 = 1;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_INVALID)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cgmgr: {e:#}");
            if e.downcast_ref::<PolicyErrors>().is_some() {
                ExitCode::from(EXIT_INVALID)
            } else {
                ExitCode::from(EXIT_FAILURE)
            }
        }
    }
}

/// A closed stdout (`cgmgr apply --dry-run | head`) is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Check(args) => check(args),
        Command::Apply(args) => apply_cmd(&cli.root, args),
    }
}

fn check(args: CheckArgs) -> Result<()> {
    let set = policy::load(&args.paths)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ok: {} group(s) valid", set.groups.len())?;
    Ok(())
}

/// Resolves `--root`: a path, or `self` for the cgroup this process is in.
fn resolve_root(root: &str) -> Result<PathBuf> {
    if root != "self" {
        return Ok(PathBuf::from(root));
    }
    let cgroup =
        std::fs::read_to_string("/proc/self/cgroup").context("reading /proc/self/cgroup")?;
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    own_cgroup_dir(&cgroup, &mountinfo).map_err(|e| anyhow::anyhow!("--root self: {e}"))
}

fn apply_cmd(root: &str, args: ApplyArgs) -> Result<()> {
    let set = policy::load(&args.paths)?;
    let root_path = resolve_root(root)?;
    let root = CgroupRoot::open(&root_path)?;
    let opts = Options {
        prune: args.prune,
        force: args.force,
    };
    let plan = apply::plan(&root, &set, opts)?;
    let mut out = std::io::stdout().lock();
    if plan.steps.is_empty() {
        writeln!(
            out,
            "nothing to do: {} group(s) under {} match their policy",
            set.groups.len(),
            root_path.display()
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "plan for {} ({} step(s)):",
        root_path.display(),
        plan.steps.len()
    )?;
    for step in &plan.steps {
        writeln!(out, "  {step}")?;
    }
    if args.dry_run {
        writeln!(out, "dry run: nothing was written")?;
        return Ok(());
    }
    out.flush()?;
    let report = apply::execute(&root, &plan)?;
    writeln!(out, "applied: {} change(s) written", report.performed)?;
    Ok(())
}
