//! Applying a policy set: at start and after a reload from the policy
//! files, and again at each reconcile tick for what drifted from it.

use std::sync::Arc;

use crate::apply::{self, Options, Step};
use crate::policy::{self, PolicySet};

use super::log::{Level, log};
use super::watch::LimitWatcher;
use super::{Daemon, DaemonError, pressure, unix_now};

/// Logs each group of `set` that is frozen (`cgroup.freeze` 1) with the way
/// out: a group frozen by a pressure rule of a daemon that was then killed,
/// or by hand, keeps its processes stopped, and nothing else would say so
/// (`cgmgr_group_frozen` exports it too).
fn say_frozen_groups(root: &crate::cgroup::CgroupRoot, set: &PolicySet) {
    for name in set.groups.keys() {
        if crate::cgroup::control::freeze_requested(root, name) == Some(true) {
            log(
                Level::Warning,
                &format!(
                    "group {name} is frozen (cgroup.freeze 1: by a freeze rule, perhaps of an earlier daemon, or by hand); its processes stay stopped until `cgmgr thaw {name}`"
                ),
            );
        }
    }
}

impl Daemon {
    /// Applies `set` and makes it the enforced one.
    pub(super) fn install(
        &mut self,
        set: PolicySet,
        limits: &mut LimitWatcher,
    ) -> Result<(), DaemonError> {
        let plan = apply::plan(&self.root, &set, Options::default())
            .map_err(|e| DaemonError::Setup(e.to_string()))?;
        for step in &plan.steps {
            log(Level::Info, &format!("apply: {step}"));
        }
        apply::execute(&self.root, &plan).map_err(|e| DaemonError::Setup(e.to_string()))?;
        self.watch_groups(&set, limits);
        let mut state = self.state();
        let own = &self.shared.own;
        own.policy_groups
            .set(i64::try_from(set.groups.len()).unwrap_or(i64::MAX));
        own.reloads.with_label_values(&["success"]).inc();
        own.last_reload_success.set(unix_now());
        state.groups = Arc::new(set.groups.keys().cloned().collect());
        state.conditions.started = true;
        state.conditions.reload_error = None;
        state.conditions.drift_error = None;
        drop(state);
        self.pressure.sync(pressure::rules_of(&set));
        self.sync_standbys(&set);
        say_frozen_groups(&self.root, &set);
        self.set = set;
        Ok(())
    }

    pub(super) fn policy_files_digest(&self) -> u64 {
        crate::policy::digest(std::slice::from_ref(&self.opts.policy_dir))
    }

    /// Reloads the policies; `digest` is that of the files about to be
    /// read, taken by the caller, which compared it.
    pub(super) fn reload(&mut self, why: &str, digest: u64, limits: &mut LimitWatcher) {
        self.policy_digest = digest;
        log(
            Level::Info,
            &format!(
                "reloading policies from {} ({why})",
                self.opts.policy_dir.display()
            ),
        );
        let user = !nix::unistd::geteuid().is_root();
        let result = policy::load_for_daemon(std::slice::from_ref(&self.opts.policy_dir), user)
            .map_err(|e| e.to_string())
            .and_then(|set| self.install(set, limits).map_err(|e| e.to_string()));
        if let Err(e) = result {
            log(
                Level::Error,
                &format!("reload rejected, the previous policy stays enforced:\n{e}"),
            );
            let mut state = self.state();
            self.shared.own.reloads.with_label_values(&["error"]).inc();
            state.conditions.reload_error = Some(e);
            drop(state);
            // `cgmgr exec` reads the files itself and refuses them: no
            // prepared sandbox may run the old tables meanwhile.
            if let Some(Ok(standbys)) = &self.standbys {
                standbys.sync(&PolicySet::default());
            }
        } else {
            log(Level::Info, "reload succeeded");
        }
    }

    /// Rewrites what drifted from the enforced policy, recreating removed groups.
    pub(super) fn reconcile(&mut self, limits: &mut LimitWatcher) {
        let set = self.set.clone();
        let plan = match apply::plan(
            &self.root,
            &set,
            Options {
                prune: false,
                force: true,
            },
        ) {
            Ok(p) => p,
            Err(e) => {
                log(Level::Error, &format!("drift check failed: {e}"));
                self.state().conditions.drift_error = Some(format!("drift check failed: {e}"));
                return;
            }
        };
        if plan.steps.is_empty() {
            self.state().conditions.drift_error = None;
            return;
        }
        let mut corrections = Vec::new();
        let mut recreated = false;
        for step in &plan.steps {
            log(Level::Warning, &format!("drift: {step}"));
            match step {
                Step::Write { group, setting, .. } => {
                    corrections.push((group.to_string(), setting.file().to_string()))
                }
                Step::Create { group } => {
                    recreated = true;
                    corrections.push((group.to_string(), "(group)".to_string()));
                }
                _ => {}
            }
        }
        let result = apply::execute(&self.root, &plan);
        let mut state = self.state();
        match result {
            Ok(_) => {
                for key in corrections {
                    self.shared
                        .own
                        .drift_corrections
                        .with_label_values(&[key.0.as_str(), key.1.as_str()])
                        .inc();
                }
                state.conditions.drift_error = None;
            }
            Err(e) => {
                log(Level::Error, &format!("drift correction failed: {e}"));
                state.conditions.drift_error = Some(format!("drift correction failed: {e}"));
            }
        }
        drop(state);
        if recreated {
            self.watch_groups(&set, limits);
        }
    }
}
