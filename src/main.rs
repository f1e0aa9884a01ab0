//! The `cgmgr` binary: parses the command line, runs the command, and maps
//! errors to cgmgr's exit codes (0 ok, 1 runtime failure, 2 invalid input;
//! `exec`: the workload's status, 125 when cgmgr failed first).

use cgmgr::exec::report::{ReportFile, RunReport};
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use cgmgr::error::{EXIT_EXEC_FAILED, EXIT_INVALID};
use cgmgr::exec::prepare::{self, ExecRequest};

mod cli;
mod commands;
use cli::{Cli, Command, ExecArgs, ExecCli, ExecOnly, StandbyArgs};

fn main() -> ExitCode {
    if let Ok(ExecCli {
        global,
        command: ExecOnly::Exec(args),
    }) = ExecCli::try_parse()
    {
        return exec(global.root, *args);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    let cli = match cli.command {
        Command::Exec(args) => return exec(cli.global.root, *args),
        Command::Standby(args) => return standby(cli.global.root, args),
        _ => cli,
    };
    let daemon = matches!(cli.command, Command::Daemon(_));
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            let code = e.exit_code();
            let text = format!("{:#}", anyhow::Error::from(e));
            if daemon {
                // With the journal's priority: why the service stopped.
                cgmgr::daemon::log::log(cgmgr::daemon::log::Level::Error, &text);
            } else {
                eprintln!("cgmgr: {text}");
            }
            ExitCode::from(code)
        }
    }
}

/// A command line clap refused: exit 2, or 125 for `exec`, whose own
/// failures all exit 125. `--help` and `--version` also come here: exit 0.
fn usage_error(e: &clap::Error) -> ExitCode {
    let _ = e.print();
    if !e.use_stderr() {
        return ExitCode::SUCCESS;
    }
    // Which subcommand was meant, by clap's own best-effort parse.
    let meant = Cli::command().ignore_errors(true).try_get_matches();
    let exec = meant.is_ok_and(|m| m.subcommand_name() == Some("exec"));
    ExitCode::from(if exec { EXIT_EXEC_FAILED } else { EXIT_INVALID })
}

/// `cgmgr exec`: the workload's status, or 125 when cgmgr failed first.
fn exec(root: Option<String>, args: ExecArgs) -> ExitCode {
    let request = ExecRequest {
        root,
        group: args.group,
        policies: args.policies,
        flags: cgmgr::exec::ExecFlags {
            rootfs: args.rootfs,
            ns: args.ns,
            hostname: args.hostname,
            env: args.env,
            chroot: args.chroot,
            report: args.report,
            report_file: args.report_file,
            binds: args.binds,
            ro_binds: args.ro_binds,
            tmpfs: args.tmpfs,
            network: args.network,
            time_limit: args.time_limit,
            wall_limit: args.wall_limit,
            extra_time: args.extra_time,
            rlimits: args.rlimits,
            argv: args.cmd,
        },
    };
    // Opened before anything runs: the run cannot plant what it points to.
    let report_file = match request.flags.report_file.as_deref().map(ReportFile::open) {
        Some(Err(e)) => {
            eprintln!("cgmgr: exec: {e}");
            return ExitCode::from(EXIT_EXEC_FAILED);
        }
        opened => opened.and_then(Result::ok),
    };
    let group = request.group.clone();
    let (code, report) = match through_standby(&request) {
        Some(served) => served,
        None => match prepare::prepare(request)
            .map_err(anyhow::Error::from)
            .and_then(|(root, spec)| Ok(cgmgr::exec::run(&root, &spec)?))
        {
            Ok((code, report)) => (code, report.map(|r| r.json())),
            Err(e) => {
                eprintln!("cgmgr: exec: {e:#}");
                (i32::from(EXIT_EXEC_FAILED), None)
            }
        },
    };
    if let Some(file) = &report_file {
        // A run that failed before it could report still gets a verdict: a
        // judge reads the file, not stderr.
        let json = report.unwrap_or_else(|| RunReport::internal(&group).json());
        if let Err(e) = file.write_json(&json) {
            eprintln!("cgmgr: exec: {e}");
            return ExitCode::from(EXIT_EXEC_FAILED);
        }
    }
    ExitCode::from(u8::try_from(code).unwrap_or(EXIT_EXEC_FAILED))
}

/// A run that takes the daemon's policies as they are may be served by one
/// of its prepared sandboxes (`standby` in the group's `[exec]` table).
fn through_standby(request: &ExecRequest) -> Option<(i32, Option<String>)> {
    let f = &request.flags;
    let as_policy = request.root.is_none()
        && request.policies.is_none()
        && f.rootfs.is_none()
        && f.ns.is_none()
        && f.hostname.is_none()
        && !f.chroot
        && !f.shape_the_sandbox();
    if !as_policy {
        return None;
    }
    cgmgr::exec::standby::try_run(&request.group, f)
}

/// `cgmgr standby`: builds the daemon's prepared sandboxes (fd 3 its socket).
fn standby(root: Option<String>, args: StandbyArgs) -> ExitCode {
    use std::os::fd::FromRawFd;
    // SAFETY: the daemon starts this command with its socket as fd 3 and
    // nothing else in this process owns fd 3.
    let sock = unsafe { std::os::fd::OwnedFd::from_raw_fd(3) };
    match cgmgr::exec::standby::build_server(root, args.policies, &sock) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cgmgr: standby: {e}");
            ExitCode::from(EXIT_EXEC_FAILED)
        }
    }
}
