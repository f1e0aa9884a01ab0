//! Every command but `exec` (run from `main.rs`, whose exit code is the
//! workload's): resolve the managed root, call the module that does the
//! work, print its outcome. The work itself lives in the library modules
//! (`apply`, `status`, `cgroup::control`, `daemon`, `metrics`, `doctor`).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use cgmgr::apply::{self, Options};
use cgmgr::cgroup::control::{self, Action};
use cgmgr::cgroup::{CgroupRoot, GroupName, tree};
use cgmgr::error::Error;
use cgmgr::policy;
use cgmgr::root as managed_root;
use cgmgr::systemd::owner;

use crate::cli::{
    ApplyArgs, CheckArgs, Cli, Command, ControlArgs, DaemonArgs, DoctorArgs, RootfsCommand,
    StatusArgs,
};

/// Runs every command but `exec` (whose exit code is the workload's).
pub fn run(cli: Cli) -> Result<(), Error> {
    let root = cli.global.root.as_deref();
    match cli.command {
        Command::Check(args) => check(args),
        Command::Apply(args) => apply_cmd(root, args),
        Command::Exec(_) | Command::Standby(_) => {
            unreachable!("exec and standby are dispatched before run")
        }
        Command::Daemon(args) => daemon_cmd(root, args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "cgmgr", &mut std::io::stdout());
            Ok(())
        }
        Command::Man => {
            use clap::CommandFactory;
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(())
        }
        Command::Status(args) => status_cmd(root, args),
        Command::Metrics => metrics_cmd(root),
        Command::Freeze(args) => control_cmd(root, &args, Action::Freeze),
        Command::Thaw(args) => control_cmd(root, &args, Action::Thaw),
        Command::Kill(args) => control_cmd(root, &args, Action::Kill),
        Command::Doctor(args) => doctor_cmd(root, &args),
        Command::Rootfs(RootfsCommand::Build { dir, bins }) => {
            let copied = cgmgr::exec::build::build(&dir, &bins)?;
            writeln!(
                std::io::stdout(),
                "{}: {} file(s) copied, proc dev tmp etc ready",
                dir.display(),
                copied.len()
            )?;
            Ok(())
        }
    }
}

/// A group named on the command line: exit 2 when the name is invalid.
fn group_arg(name: &str) -> Result<GroupName, Error> {
    GroupName::parse(name).map_err(|e| Error::InvalidInput(format!("group {name:?}: {e}")))
}

fn check(args: CheckArgs) -> Result<(), Error> {
    let set = policy::load(&args.paths)?;
    writeln!(std::io::stdout(), "ok: {} group(s) valid", set.groups.len())?;
    Ok(())
}

/// `cgmgr apply`: refused where a daemon manages the root (its policy
/// directory is the place for changes) and where systemd owns the tree and
/// has not delegated the root; a dry run prints the plan, then the refusal.
fn apply_cmd(root: Option<&str>, args: ApplyArgs) -> Result<(), Error> {
    let set = policy::load(&args.paths)?;
    let root_path = managed_root::resolve(root)?.path;
    if !args.dry_run {
        managed_root::refuse_if_daemon_manages(&root_path)?;
        owner::check_writable(&root_path)?;
    }
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
        if args.dry_run {
            owner::check_writable(&root_path)?;
        }
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
        owner::check_writable(&root_path)?;
        return Ok(());
    }
    out.flush()?;
    let report = apply::execute(&root, &plan)?;
    apply::mark_declared(&root, &set);
    writeln!(out, "applied: {} change(s) written", report.performed)?;
    Ok(())
}

/// `cgmgr daemon`: the initial policy set must be valid (else exit 2).
/// Its root is `--root` or /sys/fs/cgroup, never another daemon's.
fn daemon_cmd(root: Option<&str>, args: DaemonArgs) -> Result<(), Error> {
    let user = !nix::unistd::geteuid().is_root();
    let set = policy::load_for_daemon(std::slice::from_ref(&args.policy_dir), user)?;
    let root_path = match root {
        Some(flag) => managed_root::resolve_flag(flag)?,
        None => PathBuf::from(managed_root::DEFAULT_ROOT),
    };
    owner::check_writable(&root_path)?;
    let root = CgroupRoot::open(&root_path)?;
    let opts = cgmgr::daemon::DaemonOptions {
        root: root_path,
        policy_dir: args.policy_dir,
        listen: args.listen,
        reconcile: Duration::from_secs_f64(args.reconcile),
    };
    cgmgr::daemon::run(root, opts, set)?;
    Ok(())
}

/// `cgmgr status [GROUP]`.
fn status_cmd(root: Option<&str>, args: StatusArgs) -> Result<(), Error> {
    let wanted = args.group.as_deref().map(group_arg).transpose()?;
    let root = CgroupRoot::open(&managed_root::resolve(root)?.path)?;
    let groups = match wanted {
        Some(g) => {
            if !root.exists(&g) {
                return Err(Error::UnknownGroup {
                    group: g.to_string(),
                    root: root.path().to_path_buf(),
                });
            }
            vec![g]
        }
        None => tree::managed_groups(&root)?,
    };
    let opts = cgmgr::status::Options {
        interval: Duration::from_secs_f64(args.interval),
        json: args.json,
        watch: args.watch,
        colour: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    cgmgr::status::show(&root, &groups, opts, &mut std::io::stdout().lock())?;
    Ok(())
}

/// `cgmgr metrics`: one scrape of every managed group, to stdout.
fn metrics_cmd(root: Option<&str>) -> Result<(), Error> {
    let root = CgroupRoot::open(&managed_root::resolve(root)?.path)?;
    let groups = tree::managed_groups(&root)?;
    let text = cgmgr::metrics::Collector::default().scrape(&root, &groups, None);
    std::io::stdout().write_all(text.as_bytes())?;
    Ok(())
}

/// `cgmgr freeze|thaw|kill GROUP`: write, then wait for the kernel.
fn control_cmd(root: Option<&str>, args: &ControlArgs, action: Action) -> Result<(), Error> {
    let group = group_arg(&args.group)?;
    let root_path = managed_root::resolve(root)?.path;
    owner::check_writable(&root_path)?;
    let root = CgroupRoot::open(&root_path)?;
    let done = control::act(&root, &group, action, Duration::from_secs_f64(args.timeout))?;
    writeln!(std::io::stdout(), "{done}")?;
    Ok(())
}

/// `cgmgr doctor`: the report on stdout; exit 1 with the reason when
/// cgmgr cannot work here.
fn doctor_cmd(root: Option<&str>, args: &DoctorArgs) -> Result<(), Error> {
    use cgmgr::doctor::{self, DoctorError, Verdict};
    let root_path = managed_root::resolve(root)?.path;
    let report = doctor::probe::report(&root_path)?;
    let text = if args.json {
        report.json()
    } else {
        report.text()
    };
    std::io::stdout().write_all(text.as_bytes())?;
    match report.verdict {
        Verdict::Works(_) => Ok(()),
        Verdict::Cannot(reasons) => Err(DoctorError::CannotWork { reasons }.into()),
    }
}
