//! One prepared sandbox: the `cgmgr standby` process the builder forked,
//! which builds the run's sandbox, waits for the request the daemon passes
//! on, serves it (see [`super::handover`]) and ends the run.

use super::*;

/// The `cgmgr standby` process: builds a run's sandbox, tells the daemon
/// through `ctl` that it is ready, serves the one request the daemon passes
/// on, and ends the run. `spec` has no command.
pub(super) fn serve(
    root: &CgroupRoot,
    spec: &ExecSpec,
    built: &BuiltFrom,
    ctl: &OwnedFd,
) -> Result<(), ExecError> {
    // Every sandbox checks its rootfs anew (not `/`, the directories it
    // needs): the group's resolution was cached by the builder.
    if let Some(rootfs) = &spec.rootfs {
        check_rootfs(rootfs, &spec.workload.cwd)?;
        if spec.has(Namespace::User) {
            check_reachable_by_others(rootfs)?;
        }
    }
    let run = run_group::Run::begin(root, &spec.group, spec.ids.as_ref())?;
    let served = serve_in(root, spec, built, &run, ctl);
    // A run that served a command was ended before its caller was told.
    if let Err(e) = run.end(root) {
        eprintln!("cgmgr: standby: ending the run: {e}");
    }
    served
}

/// The sandbox once init is up: waits for a request and serves it.
pub(super) fn serve_in(
    root: &CgroupRoot,
    spec: &ExecSpec,
    built: &BuiltFrom,
    run_owned: &run_group::Run,
    ctl: &OwnedFd,
) -> Result<(), ExecError> {
    let (job_here, job_init) = seqpacket_pair().map_err(sys("socketpair"))?;
    let started = start_child(root, spec, run_owned, Some(job_init))?;
    let supervision = Supervision::new(started.pid);
    match recv_without_fds::<Word>(job_here.as_fd(), MsgFlags::empty()) {
        Ok(Some(Word::Ready)) => {}
        _ => {
            // init reported why on stderr (the daemon's log).
            let _ = nix::sys::signal::kill(started.pid, Signal::SIGKILL);
            let code = wait_exit(&supervision);
            return Err(ExecError::Invalid(format!(
                "the sandbox could not be prepared (init exited with {code})"
            )));
        }
    }
    // Held until the caller is told the status: the namespaces then outlive
    // init's exit, which so does not wait for their teardown (the mount
    // tree's unmount waits for an RCU grace period).
    let held = hold_namespaces(started.pid);
    send(ctl.as_fd(), &Word::Ready, &[]).map_err(sys("telling the daemon"))?;
    let sfd = SignalFd::new(&started.signals).map_err(sys("signalfd"))?;
    let mut sandbox = Standby {
        root,
        spec,
        built,
        run: &run_owned.group,
        init: started.pid,
        supervision,
        job: job_here,
        sfd,
        account: None,
    };
    let Some((request, conn)) = idle(ctl, &sandbox)? else {
        sandbox.discard();
        return Ok(());
    };
    hand_over(ctl.as_fd(), &conn, &request, &mut sandbox)?;
    drop((started, held));
    Ok(())
}

/// A prepared sandbox whose init is up and whose workload waits.
struct Standby<'a> {
    root: &'a CgroupRoot,
    spec: &'a ExecSpec,
    built: &'a BuiltFrom,
    run: &'a GroupName,
    init: Pid,
    supervision: Supervision,
    /// The socket the waiting workload takes its job on.
    job: OwnedFd,
    sfd: SignalFd,
    account: Option<report::Accounting>,
}

impl Sandbox for Standby<'_> {
    fn accept(&mut self, request: &Request) -> Result<Job, Declined> {
        // `none` sends the caller to build its own sandbox, as it would have.
        if self.built.changed() {
            return Err(Declined::Changed);
        }
        Ok(check_request(self.spec, request)?)
    }

    fn start(
        &mut self,
        request: &Request,
        job: &Job,
        stdio: Vec<OwnedFd>,
    ) -> Result<(), ExecError> {
        // Built at low priority; the run itself is not: init and the
        // workload take the caller's attributes.
        let workload = workload_pid(self.root, self.run, self.init);
        // SAFETY: setpriority takes integers only; 0 is this process.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 0) };
        for pid in [Some(self.init), workload].into_iter().flatten() {
            apply_attributes(pid, &request.attrs);
        }
        let format = request.report.as_deref().and_then(|r| r.parse().ok());
        let run = RunRef {
            root: self.root,
            group: self.run,
        };
        self.account = Some(report::Accounting::start(
            self.root,
            &self.spec.group,
            self.run,
            format,
            request.report_file,
            self.spec.limits,
        ));
        self.supervision.limit(self.spec.limits, run);
        let fds: Vec<BorrowedFd<'_>> = stdio.iter().map(AsFd::as_fd).collect();
        send(self.job.as_fd(), job, &fds).map_err(sys("handing the command to init"))
    }

    fn follow(&mut self, conn: &OwnedFd) -> Ended {
        let group = RunRef {
            root: self.root,
            group: self.run,
        };
        let end = follow_run(&mut self.supervision, group, &self.sfd, conn);
        let told = match self.account.take() {
            Some(account) => account.finish(self.root, self.run, &end),
            None => report::Finished::default(),
        };
        let (code, stderr, report) = (end.code, told.stderr, told.report.map(|r| r.json()));
        // The run is over before its caller learns the status: nothing it
        // started outlives `cgmgr exec`. The empty group is removed after.
        let stderr = match run_group::kill_all(self.root, self.run) {
            Ok(()) => stderr,
            Err(e) => format!("{stderr}cgmgr: exec: ending the run: {e}\n"),
        };
        Ended {
            code,
            stderr,
            report,
        }
    }

    fn discard(&mut self) {
        let _ = nix::sys::signal::kill(self.init, Signal::SIGKILL);
        wait_exit(&self.supervision);
    }
}

/// Waits for the daemon to pass a request on; `None` when the standby is
/// to end instead (the daemon closed `ctl`, a stop signal, init died).
fn idle(ctl: &OwnedFd, sandbox: &Standby<'_>) -> Result<Option<Handed>, ExecError> {
    loop {
        let watched = [ctl.as_fd(), sandbox.sfd.as_fd(), sandbox.job.as_fd()];
        let revents = wait_any(&watched, None)
            .map_err(sys("poll"))?
            .unwrap_or_default();
        if revents.first().copied().is_some_and(ready) {
            match take_handed(ctl.as_fd()) {
                Handing::Handed(handed) => return Ok(Some(*handed)),
                Handing::Ignored => continue,
                Handing::Gone => return Ok(None),
            }
        }
        if revents.get(1).copied().is_some_and(ready)
            && let Some(sig) = take_signal(&sandbox.sfd)
            && (matches!(
                sig,
                Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP | Signal::SIGQUIT
            ) || sandbox.supervision.exited().is_some())
        {
            return Ok(None);
        }
        if revents.get(2).copied().is_some_and(ready) {
            return Ok(None); // init is gone
        }
    }
}

/// Supervises the run until init exits: signals from the connection and
/// from this process's own signalfd are passed on; a connection that
/// closes (the caller died) ends the run at once.
pub(super) fn follow_run(
    supervision: &mut Supervision,
    run: RunRef<'_>,
    sfd: &SignalFd,
    conn: &OwnedFd,
) -> crate::exec::supervise::RunEnd {
    let mut caller_gone = false;
    loop {
        if let Some(code) = supervision.exited() {
            return supervision.end(code);
        }
        let watched: Vec<BorrowedFd<'_>> = if caller_gone {
            vec![sfd.as_fd()]
        } else {
            vec![sfd.as_fd(), conn.as_fd()]
        };
        // EINTR comes back as no event. Any other error of a poll on these
        // descriptors would come back at once every time: rather than spin
        // on it, the run is ended, and init's exit waited for.
        let revents = match wait_any(&watched, supervision.time_left(run)) {
            Ok(revents) => revents,
            Err(e) => {
                eprintln!("cgmgr: standby: waiting on the run: poll: {e}; ending the run");
                supervision.kill_now(run);
                let code = wait_exit(supervision);
                return supervision.end(code);
            }
        };
        let Some(revents) = revents else {
            supervision.on_timeout(run);
            continue;
        };
        if ready(revents[0])
            && let Some(sig) = take_signal(sfd)
        {
            supervision.on_signal(sig, run);
        }
        if !caller_gone && revents.get(1).copied().is_some_and(ready) {
            match caller_event(conn.as_fd()) {
                CallerEvent::Signal(sig) => supervision.on_signal(sig, run),
                CallerEvent::Nothing => {}
                CallerEvent::Gone => {
                    // As `cgmgr exec`'s death ends its run (init's
                    // parent-death signal), the caller's ends this one.
                    caller_gone = true;
                    supervision.kill_now(run);
                }
            }
        }
    }
}

/// The prepared workload: the run group's process that is not init.
pub(super) fn workload_pid(root: &CgroupRoot, run: &GroupName, init: Pid) -> Option<Pid> {
    root.procs(run)
        .ok()?
        .into_iter()
        .find(|&pid| pid != init.as_raw())
        .map(Pid::from_raw)
}

/// Descriptors of init's mount and network namespaces (those that are
/// open), which keep the namespaces alive while they are held.
pub(super) fn hold_namespaces(pid: Pid) -> Vec<OwnedFd> {
    ["mnt", "net"]
        .iter()
        .filter_map(|ns| {
            std::fs::File::open(format!("/proc/{pid}/ns/{ns}"))
                .ok()
                .map(OwnedFd::from)
        })
        .collect()
}

pub(super) fn wait_exit(supervision: &Supervision) -> i32 {
    loop {
        if let Some(code) = supervision.exited() {
            return code;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
