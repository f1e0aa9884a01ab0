//! Everything `cgmgr exec` does before it starts the run: resolve the
//! managed root, load the group's policy, check every setting the user gave,
//! and create the group from its policy when it is declared and missing.
//!
//! The checks come first so that bad input leaves nothing behind. On a
//! systemd host with no daemon running (and no root named), the run asks
//! systemd for a transient scope with `Delegate=yes`, as `systemd-run
//! --scope` does, and creates the group inside it, so systemd knows the
//! workload and keeps its limits.

use std::path::PathBuf;

use crate::apply::{self, ApplyError, Options};
use crate::cgroup::{CgroupError, CgroupRoot, GroupName};
use crate::policy::{self, PolicyErrors, PolicySet};
use crate::root::{self, RootError, Source};
use crate::systemd::owner::{self, NotDelegated, TreeOwner};
use crate::systemd::scope::{self, ScopeError};

use super::{ExecError, ExecFlags, ExecSpec};

/// Where `cgmgr exec` run by root looks for policies when neither
/// `--policies` nor a running daemon names a directory.
pub const DEFAULT_POLICY_DIR: &str = "/etc/cgmgr";

/// [`DEFAULT_POLICY_DIR`] for root; for a user, their own
/// (`$XDG_CONFIG_HOME/cgmgr`, else `~/.config/cgmgr`: where the user unit
/// reads them).
pub fn default_policy_dir() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from(DEFAULT_POLICY_DIR);
    }
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    match (var("XDG_CONFIG_HOME"), var("HOME")) {
        (Some(config), _) => config.join("cgmgr"),
        (None, Some(home)) => home.join(".config/cgmgr"),
        (None, None) => PathBuf::from(DEFAULT_POLICY_DIR),
    }
}

/// What the user asked `cgmgr exec` for.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    /// `--root` / `CGMGR_ROOT`.
    pub root: Option<String>,
    /// `--group`, as typed.
    pub group: String,
    /// `--policies`.
    pub policies: Option<PathBuf>,
    /// Everything else on the command line.
    pub flags: ExecFlags,
}

/// Why `cgmgr exec` failed before the workload ran (exit 125).
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The group name is not valid.
    #[error("--group: {0}")]
    Group(String),
    /// The managed root cannot be resolved.
    #[error(transparent)]
    Root(#[from] RootError),
    /// The policy directory holds an invalid policy.
    #[error(transparent)]
    Policy(#[from] PolicyErrors),
    /// A setting is invalid, or the group is unknown.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// systemd would not give the run a delegated scope.
    #[error(transparent)]
    Scope(#[from] ScopeError),
    /// A user with no subtree whose systemd manager gave no scope either.
    #[error("{refused}\n  (a transient scope was asked of your user manager: {why})")]
    NoUserScope {
        /// The refusal, with the ways forward.
        refused: Box<RootError>,
        /// Why the user manager gave none.
        why: Box<ScopeError>,
    },
    /// systemd owns the named root and has not delegated it.
    #[error(transparent)]
    NotDelegated(#[from] NotDelegated),
    /// Opening the root failed.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// Creating the group from its policy failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

/// Resolves the root and the group (creating it from its policy when
/// declared and missing) and merges the policy's `[exec]` table with the
/// flags.
pub fn prepare(request: ExecRequest) -> Result<(CgroupRoot, ExecSpec), PrepareError> {
    prepare_with(request, None)
}

/// [`prepare`] with the policy set already loaded from the request's
/// `--policies` (the standby builder checks what it loaded first).
pub fn prepare_with(
    request: ExecRequest,
    loaded: Option<PolicySet>,
) -> Result<(CgroupRoot, ExecSpec), PrepareError> {
    let group = GroupName::parse(&request.group).map_err(|e| PrepareError::Group(e.to_string()))?;
    // A run started here takes this process's stdio, checked before
    // anything is made. A prepared sandbox's builder (`loaded`) has none of
    // the run's: the caller's descriptors are checked when they arrive.
    if loaded.is_none() {
        super::workload::check_std_fds()?;
    }
    let resolved = root::resolve_any(request.root.as_deref())?;
    let (policies, policies_given) = match (&request.policies, &resolved.source) {
        (Some(dir), _) => (dir.clone(), true),
        (None, Source::Daemon(daemon)) => (daemon.policies.clone(), true),
        (None, _) => (default_policy_dir(), false),
    };
    let set = match loaded {
        Some(set) => set,
        None if policies_given || policies.exists() => {
            policy::load(std::slice::from_ref(&policies))?
        }
        None => PolicySet::default(),
    };
    let declared = set.groups.get(&group).cloned();
    // No subtree, and no policy a scope could be made from: that is the
    // news, before any setting of the group is looked at.
    if resolved.source == Source::UserManager && declared.is_none() {
        return Err(root::no_subtree(&resolved.path).into());
    }
    // Everything the user gave is checked before anything is created.
    let spec = ExecSpec::resolve(
        group.clone(),
        declared.as_ref().and_then(|g| g.exec.as_ref()),
        request.flags,
    )?;
    let unknown = |root: PathBuf| ExecError::UnknownGroup {
        group: group.to_string(),
        policies: policies.display().to_string(),
        root,
    };
    let root_path = match (&resolved.source, owner::tree_owner(&resolved.path)) {
        (Source::UserManager, _) => {
            // The group is declared (checked above): a scope can hold it.
            if let Err(why) = scope::enter_delegated_scope(group.as_str()) {
                return Err(PrepareError::NoUserScope {
                    refused: Box::new(root::no_subtree(&resolved.path)),
                    why: Box::new(why),
                });
            }
            root::resolve_flag("self")?
        }
        (Source::Default, TreeOwner::Systemd) => {
            // A new scope never holds the group: it must be declared.
            if declared.is_none() {
                return Err(unknown(resolved.path).into());
            }
            scope::enter_delegated_scope(group.as_str())?;
            root::resolve_flag("self")?
        }
        (_, TreeOwner::Systemd) => {
            return Err(NotDelegated::new(resolved.path).into());
        }
        _ => resolved.path,
    };
    let root = CgroupRoot::open(&root_path)?;
    if !root.exists(&group) {
        let Some(declared) = declared else {
            return Err(unknown(root_path).into());
        };
        let mut only = PolicySet::default();
        only.groups.insert(group.clone(), declared);
        let plan = apply::plan(&root, &only, Options::default())?;
        apply::execute(&root, &plan)?;
    }
    Ok((root, spec))
}
