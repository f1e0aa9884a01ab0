//! The `cgmgr` binary: parses the command line, runs the command, and maps
//! errors to cgmgr's exit codes (0 ok, 1 runtime failure, 2 invalid input;
//! `exec`: the workload's status, 125 when cgmgr failed first).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use cgmgr::apply::{self, Options};
use cgmgr::cgroup::CgroupRoot;
use cgmgr::policy::{self, PolicyErrors};
use cgmgr::root::{self as managed_root, Source};
use cgmgr::systemd::owner::{self, TreeOwner};

mod cli;
use cli::{
    ApplyArgs, CheckArgs, Cli, Command, ControlArgs, DaemonArgs, ExecArgs, RootfsCommand,
    StatusArgs,
};

/// Exit code for invalid input (bad flags, bad policy): nothing was written.
const EXIT_INVALID: u8 = 2;
/// Exit code for runtime failures.
const EXIT_FAILURE: u8 = 1;
/// `cgmgr exec`: cgmgr failed before the workload ran (as `docker run`, `env`).
const EXIT_EXEC_FAILED: u8 = 125;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            let invalid = if is_exec_invocation() {
                EXIT_EXEC_FAILED
            } else {
                EXIT_INVALID
            };
            return if e.use_stderr() {
                ExitCode::from(invalid)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if let Command::Exec(args) = cli.command {
        return exec_cmd(cli.root.as_deref(), args);
    }
    let daemon = matches!(cli.command, Command::Daemon(_));
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            if daemon {
                // With the journal's priority: why the service stopped.
                cgmgr::daemon::log::log(cgmgr::daemon::log::Level::Error, &format!("{e:#}"));
            } else {
                eprintln!("cgmgr: {e:#}");
            }
            if e.downcast_ref::<PolicyErrors>().is_some()
                || e.downcast_ref::<InvalidInput>().is_some()
            {
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

/// True when the first subcommand word on the command line is `exec`,
/// whose usage errors exit 125 like every other failure of cgmgr itself.
fn is_exec_invocation() -> bool {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--root" => {
                args.next();
            }
            s if s.starts_with('-') => {}
            s => return s == "exec",
        }
    }
    false
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Check(args) => check(args),
        Command::Apply(args) => apply_cmd(cli.root.as_deref(), args),
        Command::Exec(_) => unreachable!("exec is dispatched before run"),
        Command::Daemon(args) => daemon_cmd(cli.root.as_deref(), args),
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
        Command::Status(args) => status_cmd(cli.root.as_deref(), args),
        Command::Metrics => {
            let root = CgroupRoot::open(&managed_root::resolve(cli.root.as_deref())?.path)?;
            let groups = cgmgr::cgroup::tree::managed_groups(&root)?;
            let text = cgmgr::metrics::Collector::default().scrape(&root, &groups, None);
            std::io::stdout().write_all(text.as_bytes())?;
            Ok(())
        }
        Command::Freeze(args) => control_cmd(cli.root.as_deref(), &args, Control::Freeze),
        Command::Thaw(args) => control_cmd(cli.root.as_deref(), &args, Control::Thaw),
        Command::Kill(args) => control_cmd(cli.root.as_deref(), &args, Control::Kill),
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

/// Invalid input outside policy files (a bad group name): exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct InvalidInput(String);

/// Which of `freeze`, `thaw`, `kill`.
#[derive(Clone, Copy)]
enum Control {
    Freeze,
    Thaw,
    Kill,
}

/// `cgmgr freeze|thaw|kill GROUP`: write, then wait for the kernel.
fn control_cmd(root: Option<&str>, args: &ControlArgs, action: Control) -> Result<()> {
    use cgmgr::cgroup::control;
    let group = cgmgr::cgroup::GroupName::parse(&args.group)
        .map_err(|e| InvalidInput(format!("group {:?}: {e}", args.group)))?;
    let root_path = managed_root::resolve(root)?.path;
    owner::check_writable(&root_path)?;
    let root = CgroupRoot::open(&root_path)?;
    let timeout = std::time::Duration::from_secs_f64(args.timeout);
    let mut out = std::io::stdout().lock();
    match action {
        Control::Freeze => {
            control::freeze(&root, &group, timeout)?;
            writeln!(out, "{group}: frozen")?;
        }
        Control::Thaw => {
            control::thaw(&root, &group, timeout)?;
            writeln!(out, "{group}: thawed")?;
        }
        Control::Kill => {
            let held = control::kill(&root, &group, timeout)?;
            writeln!(out, "{group}: killed {held} process(es); empty")?;
        }
    }
    Ok(())
}

/// `cgmgr status`: two readings `--interval` apart, then a table or JSON;
/// with `--watch`, again and again.
fn status_cmd(root: Option<&str>, args: StatusArgs) -> Result<()> {
    use cgmgr::status;
    use std::io::IsTerminal;
    let root = CgroupRoot::open(&managed_root::resolve(root)?.path)?;
    let groups = match &args.group {
        Some(g) => {
            let g = cgmgr::cgroup::GroupName::parse(g).map_err(|e| anyhow::anyhow!("{e}"))?;
            if !root.exists(&g) {
                anyhow::bail!("no group {g} under {}", root.path().display());
            }
            vec![g]
        }
        None => cgmgr::cgroup::tree::managed_groups(&root)?,
    };
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let interval = std::time::Duration::from_secs_f64(args.interval);
    let mut before: Vec<_> = groups.iter().map(|g| status::read(&root, g)).collect();
    loop {
        std::thread::sleep(interval);
        let after: Vec<_> = groups.iter().map(|g| status::read(&root, g)).collect();
        let rows: Vec<_> = groups
            .iter()
            .zip(before.iter().zip(&after))
            .map(|(g, (b, a))| status::status(g, b, a, args.interval))
            .collect();
        let text = if args.json {
            status::json(&rows)
        } else {
            status::table(&rows, colour)
        };
        let mut out = std::io::stdout().lock();
        if args.watch && !args.json {
            write!(
                out,
                "\x1b[H\x1b[2J{} — every {}s, Ctrl-C to quit\n\n",
                root.path().display(),
                args.interval
            )?;
        }
        out.write_all(text.as_bytes())?;
        out.flush()?;
        if !args.watch {
            return Ok(());
        }
        before = after;
    }
}

/// `cgmgr daemon`: the initial policy set must be valid (else exit 2).
/// Its root is `--root` or /sys/fs/cgroup, never another daemon's.
fn daemon_cmd(root: Option<&str>, args: DaemonArgs) -> Result<()> {
    let set = policy::load(std::slice::from_ref(&args.policy_dir))?;
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
        reconcile: std::time::Duration::from_secs_f64(args.reconcile),
    };
    cgmgr::daemon::run(root, opts, set)?;
    Ok(())
}

/// `cgmgr exec`: the workload's status, or 125 when cgmgr failed first.
fn exec_cmd(root: Option<&str>, args: ExecArgs) -> ExitCode {
    match prepare_exec(root, args).and_then(|(root, spec)| Ok(cgmgr::exec::run(&root, &spec)?)) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(EXIT_EXEC_FAILED)),
        Err(e) => {
            eprintln!("cgmgr: exec: {e:#}");
            ExitCode::from(EXIT_EXEC_FAILED)
        }
    }
}

/// Resolves the root and the group (creating it from its policy when
/// declared and missing) and merges the policy's `[exec]` table with the
/// flags. With no root named and no daemon running on a systemd host, the
/// run gets a transient delegated scope of its own.
fn prepare_exec(root: Option<&str>, args: ExecArgs) -> Result<(CgroupRoot, cgmgr::exec::ExecSpec)> {
    let group = cgmgr::cgroup::GroupName::parse(&args.group)
        .map_err(|e| anyhow::anyhow!("--group: {e}"))?;
    let resolved = managed_root::resolve(root)?;
    let (policies, policies_given) = match (&args.policies, &resolved.source) {
        (Some(dir), _) => (dir.clone(), true),
        (None, Source::Daemon(daemon)) => (daemon.policies.clone(), true),
        (None, _) => (PathBuf::from("/etc/cgmgr"), false),
    };
    let set = if policies_given || policies.exists() {
        policy::load(std::slice::from_ref(&policies))?
    } else {
        policy::PolicySet::default()
    };
    let declared = set.groups.get(&group).cloned();
    // Everything the user gave is checked before anything is created.
    let flags = cgmgr::exec::ExecFlags {
        rootfs: args.rootfs,
        ns: args.ns,
        hostname: args.hostname,
        env: args.env,
        chroot: args.chroot,
        report: args.report,
        argv: args.cmd,
    };
    let spec = cgmgr::exec::ExecSpec::resolve(
        group.clone(),
        declared.as_ref().and_then(|g| g.exec.as_ref()),
        flags,
    )?;
    let unknown = |root: PathBuf| cgmgr::exec::ExecError::UnknownGroup {
        group: group.to_string(),
        policies: policies.display().to_string(),
        root,
    };
    let root_path = match (&resolved.source, owner::tree_owner(&resolved.path)) {
        (Source::Default, TreeOwner::Systemd) => {
            // A new scope never holds the group: it must be declared.
            if declared.is_none() {
                return Err(unknown(resolved.path).into());
            }
            cgmgr::systemd::scope::enter_delegated_scope(group.as_str())?;
            managed_root::resolve_flag("self")?
        }
        (_, TreeOwner::Systemd) => {
            return Err(owner::NotDelegated {
                root: resolved.path,
            }
            .into());
        }
        _ => resolved.path,
    };
    let root = CgroupRoot::open(&root_path)?;
    if !root.exists(&group) {
        let Some(declared) = &declared else {
            return Err(unknown(root_path).into());
        };
        let mut only = policy::PolicySet::default();
        only.groups.insert(group.clone(), declared.clone());
        let plan = apply::plan(&root, &only, Options::default())?;
        apply::execute(&root, &plan)?;
    }
    Ok((root, spec))
}

fn check(args: CheckArgs) -> Result<()> {
    let set = policy::load(&args.paths)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ok: {} group(s) valid", set.groups.len())?;
    Ok(())
}

/// `cgmgr apply`: refused where a daemon manages the root (its policy
/// directory is the place for changes) and where systemd owns the tree and
/// has not delegated the root; a dry run prints the plan, then the refusal.
fn apply_cmd(root: Option<&str>, args: ApplyArgs) -> Result<()> {
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
