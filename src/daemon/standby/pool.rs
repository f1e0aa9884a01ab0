//! The pool's state and its thread's loop: the standbys of each group, the
//! clients waiting, and what each polled descriptor's event does.

use super::*;

/// One prepared sandbox (a `cgmgr standby` process serving one run), or
/// one being built; its socket's end tells that it is gone.
pub(super) struct Member {
    pub(super) ctl: OwnedFd,
    pub(super) ready: bool,
}

/// The standbys of one group.
pub(super) struct Slot {
    pub(super) config: ExecConfig,
    pub(super) want: u32,
    pub(super) members: Vec<Member>,
    /// When the standbys taken by runs are to be replaced: once the run
    /// ends (its entry is then made due), at the latest [`REPLACE_AFTER`]
    /// after it began, so a replacement is not built while the run that
    /// took the standby starts up on the same CPUs.
    pub(super) owed: Vec<Instant>,
    pub(super) failures: u32,
    pub(super) retry_at: Option<Instant>,
}

/// A request waiting for a sandbox of its group being built.
pub(super) struct Waiting {
    pub(super) group: GroupName,
    pub(super) conn: OwnedFd,
    pub(super) bytes: Vec<u8>,
    pub(super) deadline: Instant,
}

/// A client that connected and has not sent its request yet.
pub(super) struct Pending {
    pub(super) conn: OwnedFd,
    pub(super) deadline: Instant,
}

/// What a polled descriptor is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Source {
    Listener,
    Wake,
    Pending(RawFd),
    Member(GroupName, RawFd),
    Leaving(RawFd),
    Builder,
}

pub(super) struct Pool {
    pub(super) root: PathBuf,
    pub(super) policies: PathBuf,
    pub(super) listener: OwnedFd,
    pub(super) wake: OwnedFd,
    pub(super) desired: Arc<Mutex<Desired>>,
    pub(super) slots: BTreeMap<GroupName, Slot>,
    /// Standbys serving a run, with their group: forgotten when their
    /// socket closes (a retired idle standby is simply dropped).
    pub(super) leaving: Vec<(GroupName, Member)>,
    pub(super) pending: Vec<Pending>,
    /// Requests waiting for a sandbox being built, oldest first.
    pub(super) waiting: Vec<Waiting>,
    /// The process that builds sandboxes, started when one is needed.
    pub(super) builder: Option<Builder>,
    /// Builders that were let go, reaped once they have exited.
    pub(super) stopped: Vec<Pid>,
    pub(super) metrics: Counters,
    /// Not accepting until then (the daemon ran out of descriptors).
    pub(super) listen_paused: Option<Instant>,
}

impl Pool {
    pub(super) fn run(&mut self) {
        loop {
            self.refill();
            let events = match self.wait() {
                Ok(events) => events,
                Err(e) => {
                    log(Level::Error, &format!("standby: poll: {e}"));
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            };
            for (source, revents) in events {
                self.on_event(source, revents);
            }
            let now = Instant::now();
            self.pending.retain(|p| p.deadline > now);
            self.expire_waiting(now);
            if self.listen_paused.is_some_and(|t| t <= now) {
                self.listen_paused = None;
            }
            self.publish_ready();
            self.stopped.retain(|&pid| {
                matches!(
                    waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)),
                    Ok(WaitStatus::StillAlive)
                )
            });
        }
    }

    /// Polls every descriptor; the ones that are ready.
    pub(super) fn wait(&self) -> Result<Vec<(Source, PollFlags)>, Errno> {
        // The wake pipe first: a policy change is applied before the
        // requests that came with it are served.
        let mut sources = vec![(Source::Wake, self.wake.as_fd())];
        if self.listen_paused.is_none() {
            sources.push((Source::Listener, self.listener.as_fd()));
        }
        for p in &self.pending {
            sources.push((Source::Pending(p.conn.as_raw_fd()), p.conn.as_fd()));
        }
        for (group, slot) in &self.slots {
            for m in &slot.members {
                sources.push((
                    Source::Member(group.clone(), m.ctl.as_raw_fd()),
                    m.ctl.as_fd(),
                ));
            }
        }
        for (_, m) in &self.leaving {
            sources.push((Source::Leaving(m.ctl.as_raw_fd()), m.ctl.as_fd()));
        }
        if let Some(b) = &self.builder {
            sources.push((Source::Builder, b.sock.as_fd()));
        }
        let mut fds: Vec<PollFd<'_>> = sources
            .iter()
            .map(|(_, fd)| PollFd::new(*fd, PollFlags::POLLIN))
            .collect();
        let timeout = self
            .next_deadline()
            .map(|t| t.saturating_duration_since(Instant::now()));
        let timeout = timeout.map_or(PollTimeout::NONE, |t| {
            PollTimeout::try_from(t.max(Duration::from_millis(1))).unwrap_or(PollTimeout::MAX)
        });
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
        Ok(sources
            .iter()
            .zip(&fds)
            .filter_map(|((source, _), fd)| {
                let revents = fd.revents().unwrap_or(PollFlags::empty());
                (!revents.is_empty()).then(|| (source.clone(), revents))
            })
            .collect())
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let retries = self
            .slots
            .values()
            .filter(|s| s.members.len() < s.want as usize)
            .filter_map(|s| s.retry_at);
        let owed = self.slots.values().flat_map(|s| s.owed.iter().copied());
        let requests = self
            .pending
            .iter()
            .map(|p| p.deadline)
            .chain(self.waiting.iter().map(|w| w.deadline));
        // A builder let go is reaped on a later turn.
        let reap = (!self.stopped.is_empty()).then(|| Instant::now() + Duration::from_millis(100));
        let paused = self.listen_paused;
        retries
            .chain(owed)
            .chain(requests)
            .chain(reap)
            .chain(paused)
            .min()
    }

    pub(super) fn on_event(&mut self, source: Source, revents: PollFlags) {
        match source {
            Source::Wake => self.resync(),
            Source::Listener => self.accept(),
            Source::Pending(fd) => {
                if let Some(i) = self.pending.iter().position(|p| p.conn.as_raw_fd() == fd) {
                    let p = self.pending.swap_remove(i);
                    self.dispatch(p.conn);
                }
            }
            Source::Member(group, fd) => self.on_member(&group, fd, revents),
            Source::Builder => self.stop_builder(),
            Source::Leaving(fd) => {
                if let Some(i) = self
                    .leaving
                    .iter()
                    .position(|(_, m)| m.ctl.as_raw_fd() == fd)
                {
                    // What it did with the request: counted by its word.
                    let ctl = self.leaving[i].1.ctl.as_fd();
                    let said = recv_plain(ctl, MsgFlags::MSG_DONTWAIT);
                    if let Ok(Some(word)) = &said {
                        let served = decode::<Word>(word).is_ok_and(|w| w == Word::Started);
                        let result = if served { "served" } else { "none" };
                        self.metrics.count(&self.leaving[i].0, result);
                        return;
                    }
                    let (group, _) = self.leaving.swap_remove(i);
                    // Its run is over: its replacement is due now.
                    if let Some(slot) = self.slots.get_mut(&group)
                        && let Some(first) = slot.owed.iter_mut().min()
                    {
                        *first = Instant::now();
                    }
                }
            }
        }
    }

    pub(super) fn publish_ready(&self) {
        for (group, slot) in &self.slots {
            let ready = slot.members.iter().filter(|m| m.ready).count();
            self.metrics
                .ready
                .with_label_values(&[group.as_str()])
                .set(i64::try_from(ready).unwrap_or(i64::MAX));
        }
    }

    /// The policy changed: retire what it no longer asks for.
    pub(super) fn resync(&mut self) {
        let mut drained = [0u8; 64];
        while matches!(nix::unistd::read(&self.wake, &mut drained), Ok(n) if n > 0) {}
        let desired = self
            .desired
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let groups: Vec<GroupName> = self.slots.keys().cloned().collect();
        let mut changed = false;
        for group in groups {
            let keep = desired.get(&group).is_some_and(|(config, _)| {
                self.slots.get(&group).is_some_and(|s| &s.config == config)
            });
            if !keep && let Some(slot) = self.slots.remove(&group) {
                let _ = self.metrics.ready.remove_label_values(&[group.as_str()]);
                drop(slot.members); // closing its socket ends an idle standby
                changed = true;
            }
        }
        // The builder read the policies when it started: a new one reads
        // the changed tables.
        if changed {
            self.stop_builder();
        }
        for (group, (config, want)) in desired {
            let slot = self.slots.entry(group).or_insert_with(|| Slot {
                config,
                want,
                members: Vec::new(),
                owed: Vec::new(),
                failures: 0,
                retry_at: None,
            });
            slot.want = want;
            let extra = slot.members.len().saturating_sub(want as usize);
            // Closing their sockets ends idle standbys.
            drop(slot.members.drain(..extra).collect::<Vec<_>>());
        }
    }

    pub(super) fn on_member(&mut self, group: &GroupName, fd: RawFd, revents: PollFlags) {
        let Some(slot) = self.slots.get_mut(group) else {
            return;
        };
        let Some(i) = slot.members.iter().position(|m| m.ctl.as_raw_fd() == fd) else {
            return;
        };
        if revents.contains(PollFlags::POLLIN)
            && let Ok(Some(Word::Ready)) =
                recv_without_fds::<Word>(slot.members[i].ctl.as_fd(), MsgFlags::MSG_DONTWAIT)
        {
            slot.members[i].ready = true;
            slot.failures = 0;
            self.serve_waiting(group);
            return;
        }
        // Its socket closed: the standby is gone before serving anything
        // (its reason, if any, is in the log from its stderr).
        let m = slot.members.swap_remove(i);
        if !m.ready {
            slot.failures += 1;
            let pause = backoff(slot.failures);
            slot.retry_at = Some(Instant::now() + pause);
            log(
                Level::Warning,
                &format!(
                    "standby for group {group} could not be prepared; next try in {:.1}s",
                    pause.as_secs_f64()
                ),
            );
        }
    }

    /// Starts standbys where fewer than wanted are alive, but for the
    /// replacements not yet due.
    pub(super) fn refill(&mut self) {
        let now = Instant::now();
        let groups: Vec<GroupName> = self.slots.keys().cloned().collect();
        for group in groups {
            while let Some(slot) = self.slots.get_mut(&group) {
                slot.owed.retain(|&due| due > now);
                let missing = slot.members.len() + slot.owed.len() < slot.want as usize;
                if !missing || slot.retry_at.is_some_and(|t| t > now) {
                    break;
                }
                let built = self.build(&group);
                let Some(slot) = self.slots.get_mut(&group) else {
                    break;
                };
                match built {
                    Ok(m) => slot.members.push(m),
                    Err(e) => {
                        slot.failures += 1;
                        slot.retry_at = Some(now + backoff(slot.failures));
                        log(
                            Level::Error,
                            &format!("standby for group {group}: starting cgmgr standby: {e}"),
                        );
                        break;
                    }
                }
            }
        }
    }
}

/// The pause after `failures` failures in a row (at least one): 0.1 s
/// after the first, doubling with each further one, at most [`MAX_BACKOFF`].
pub(super) fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(12);
    let pause = Duration::from_millis(100).saturating_mul(1u32 << doublings);
    pause.min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        // As the README says: 0.1 s after the first failure, doubling.
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(3), Duration::from_millis(400));
        assert_eq!(backoff(40), MAX_BACKOFF);
    }
}
